//! Processes under test: the hub binary and the fsfault plugin, each behind a guard that kills
//! it and removes its files even when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const T: Duration = Duration::from_secs(20);

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `chaoshub` binary of this build: next to the test executable's `deps/` folder. When the
/// test runs alone (`cargo test -p chaoshub-e2e`) it may not be built yet, so build it once.
pub fn hub_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let bin = profile_dir.join("chaoshub");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-p", "chaoshub", "--bin", "chaoshub"])
            .current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
            .status()
            .expect("cannot run cargo to build the chaoshub binary");
        assert!(status.success(), "building the chaoshub binary failed");
        assert!(
            bin.exists(),
            "chaoshub binary not found at {}",
            bin.display()
        );
        bin
    })
    .clone()
}

fn wait_for_file(path: &Path, what: &str, child: &mut Child) -> String {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.trim().is_empty() {
                return text.trim().to_string();
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        assert!(start.elapsed() < T, "{what} did not start within {T:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Admin tokens of the hubs this test process started, by URL: `Api::new` and the CLI
/// helpers send them, as a user would after reading `<data-dir>/admin.token`.
fn tokens() -> &'static std::sync::Mutex<std::collections::HashMap<String, String>> {
    static TOKENS: OnceLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
        OnceLock::new();
    TOKENS.get_or_init(Default::default)
}

/// Installs ring as the process's rustls provider: reqwest is built without one of its own
/// (`rustls-no-provider`, which keeps aws-lc-rs out of the tree) and panics building a client
/// when none is installed. A provider installed earlier is kept.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The admin token of the hub at `url` (started by this test process), if any.
pub fn token_for(url: &str) -> Option<String> {
    tokens()
        .lock()
        .unwrap()
        .get(url.trim_end_matches('/'))
        .cloned()
}

/// A running hub process on port 0 with its own data dir.
pub struct HubProcess {
    pub child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    /// The admin token the hub wrote to `<data-dir>/data/admin.token`.
    pub token: String,
}

impl HubProcess {
    pub fn start(data_dir: &Path) -> HubProcess {
        Self::start_listening(data_dir, "127.0.0.1:0")
    }

    /// A hub on another address (agents in test network namespaces reach it on the host end of
    /// their veth pair).
    pub fn start_listening(data_dir: &Path, listen: &str) -> HubProcess {
        Self::start_configured(data_dir, listen, "", "", &[], &[])
    }

    /// A replica of a highly available hub: `top_level` holds its `[store]` (the shared
    /// PostgreSQL URL) and `[replica]` tables; `env` more environment variables.
    pub fn start_replica(data_dir: &Path, top_level: &str, env: &[(&str, &str)]) -> HubProcess {
        Self::start_replica_on(data_dir, "127.0.0.1:0", top_level, env)
    }

    /// [`Self::start_replica`] listening on `listen` (`top_level` may be empty: a hub on its
    /// own store with environment variables such as `CHAOSHUB_FAILPOINTS`).
    pub fn start_replica_on(
        data_dir: &Path,
        listen: &str,
        top_level: &str,
        env: &[(&str, &str)],
    ) -> HubProcess {
        Self::start_configured(data_dir, listen, top_level, "", &[], env)
    }

    /// Sends a signal by name (`STOP`, `CONT`) to the hub process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits until the process ends on its own (a failpoint's SIGKILL); `false` when it is
    /// still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let started = std::time::Instant::now();
        while started.elapsed() < timeout {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A hub serving the project's template catalog (`catalog/`), as `chaoshub serve` run from
    /// the checkout does.
    pub fn start_with_catalog(data_dir: &Path) -> HubProcess {
        Self::start_with_catalog_dir(data_dir, &workspace_root().join("catalog"))
    }

    /// With `catalog_dir` set to `catalog` (a copy, when a test writes templates into it).
    pub fn start_with_catalog_dir(data_dir: &Path, catalog: &Path) -> HubProcess {
        Self::start_configured(
            data_dir,
            "127.0.0.1:0",
            &format!("catalog_dir = {:?}\n", catalog.display().to_string()),
            "",
            &[],
            &[],
        )
    }

    /// With more `serve` flags; `--tls-self-signed` makes the URL https://.
    pub fn start_with(data_dir: &Path, listen: &str, extra: &[&str]) -> HubProcess {
        Self::start_configured(data_dir, listen, "", "", extra, &[])
    }

    /// Started through `launcher` (a command given the hub's command line as its arguments,
    /// e.g. one that enters a mount namespace first and ends in `exec "$@"`), with `env`.
    pub fn start_launched(data_dir: &Path, launcher: &[&str], env: &[(&str, &str)]) -> HubProcess {
        Self::start_full(data_dir, "127.0.0.1:0", "", "", &[], env, launcher)
    }

    /// A hub with extra `[engine]` settings (TOML lines).
    pub fn start_with_engine(data_dir: &Path, listen: &str, engine_extra: &str) -> HubProcess {
        Self::start_configured(data_dir, listen, "", engine_extra, &[], &[])
    }

    /// `top_level` is TOML placed before the `[engine]` table of the generated config,
    /// `engine_extra` TOML lines inside it; `extra` are more `serve` flags, `env` more
    /// environment variables.
    fn start_configured(
        data_dir: &Path,
        listen: &str,
        top_level: &str,
        engine_extra: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> HubProcess {
        Self::start_full(data_dir, listen, top_level, engine_extra, extra, env, &[])
    }

    fn start_full(
        data_dir: &Path,
        listen: &str,
        top_level: &str,
        engine_extra: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        launcher: &[&str],
    ) -> HubProcess {
        let addr_file = data_dir.join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let config = data_dir.join("hub.toml");
        std::fs::write(&config, format!("listen = \"{listen}\"\n{top_level}[engine]\nresync_interval_ms = 200\nrecovery_retry_ms = 200\n{engine_extra}")).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("hub.log"))
            .unwrap();
        let mut command = match launcher.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(hub_binary());
                c
            }
            None => Command::new(hub_binary()),
        };
        let mut child = command
            // The hub's local-CLI note goes under the test's own directory.
            .env("CHAOSHUB_RUNTIME_DIR", data_dir.join("runtime"))
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(data_dir.join("data"))
            .arg("--addr-file")
            .arg(&addr_file)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start the chaoshub binary");
        let addr = wait_for_file(&addr_file, "the hub", &mut child);
        let token = wait_for_file(&data_dir.join("data/admin.token"), "the hub", &mut child);
        let scheme = if extra.contains(&"--tls-self-signed") {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://{addr}");
        tokens().lock().unwrap().insert(url.clone(), token.clone());
        HubProcess {
            child,
            url,
            data_dir: data_dir.to_path_buf(),
            token,
        }
    }

    /// SIGKILL: no shutdown code of the hub runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("hub.log")).unwrap_or_default()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- hub log ---\n{}", self.log());
        }
    }
}

/// The fsfault plugin serving one target directory `web` (label tier=frontend) and one `db`.
pub struct Plugin {
    pub child: Child,
    pub url: String,
    pub web_dir: PathBuf,
    pub db_dir: PathBuf,
    log: PathBuf,
}

impl Plugin {
    pub fn start(root: &Path, grace_secs: u64) -> Plugin {
        Self::start_with_labels(root, grace_secs, &[])
    }

    /// The plugin with more target labels (`ID:KEY=VALUE`, e.g. `web:app=web` for catalog
    /// templates that select by `app`).
    pub fn start_with_labels(root: &Path, grace_secs: u64, extra_labels: &[&str]) -> Plugin {
        let web_dir = root.join("web");
        let db_dir = root.join("db");
        let state = root.join("plugin-state");
        for d in [&web_dir, &db_dir, &state] {
            std::fs::create_dir_all(d).unwrap();
        }
        let port_file = root.join("plugin.port");
        let _ = std::fs::remove_file(&port_file);
        let log = root.join("plugin.log");
        let script = workspace_root().join("examples/plugins/fsfault/fsfault.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--listen", "127.0.0.1:0", "--port-file"])
            .arg(&port_file)
            .arg("--target")
            .arg(format!("web={}", web_dir.display()))
            .arg("--target")
            .arg(format!("db={}", db_dir.display()))
            .args([
                "--label",
                "web:tier=frontend",
                "--label",
                "db:tier=storage",
                "--state-dir",
            ])
            .arg(&state)
            .args(["--grace-secs", &grace_secs.to_string()])
            .args(extra_labels.iter().flat_map(|l| ["--label", l]))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("python3 is needed to run the fsfault plugin (install python3)");
        let port = wait_for_file(&port_file, "the fsfault plugin", &mut child);
        Plugin {
            child,
            url: format!("http://127.0.0.1:{port}"),
            web_dir,
            db_dir,
            log,
        }
    }

    /// Fill files the plugin created in the web target.
    pub fn fill_files(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = std::fs::read_dir(&self.web_dir)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("chaoshub-fill-")
            })
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        out.sort();
        out
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- plugin log ---\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// A small blocking JSON client.
pub struct Api {
    pub base: String,
    client: reqwest::blocking::Client,
}

impl Api {
    /// A client of a hub this test started, with its admin token.
    pub fn new(base: &str) -> Api {
        Self::with_token(base, token_for(base).as_deref())
    }

    /// A client sending this token (or none).
    pub fn with_token(base: &str, token: Option<&str>) -> Api {
        Self::build(base, token, None)
    }

    /// A client of a TLS hub this test started, trusting only the PEM CA at `ca_file`, with
    /// the hub's admin token.
    pub fn with_ca(base: &str, ca_file: &Path) -> Api {
        Self::build(base, token_for(base).as_deref(), Some(ca_file))
    }

    fn build(base: &str, token: Option<&str>, ca_file: Option<&Path>) -> Api {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
            );
        }
        install_crypto_provider();
        let mut client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(40))
            .default_headers(headers);
        if let Some(ca_file) = ca_file {
            let pem = std::fs::read(ca_file).unwrap();
            client = client.tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()]);
        }
        Api {
            base: base.to_string(),
            client: client.build().unwrap(),
        }
    }

    pub fn call(&self, method: reqwest::Method, path: &str, yaml: Option<&str>) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = yaml {
            req = req
                .header("content-type", "application/yaml")
                .body(body.to_string());
        }
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("request to {path} failed: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (
            status,
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("non-JSON answer {status}: {text}")),
        )
    }

    pub fn get(&self, path: &str) -> Value {
        let (code, v) = self.call(reqwest::Method::GET, path, None);
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }

    pub fn post(&self, path: &str, yaml: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, yaml)
    }

    pub fn experiment(&self, uid: &str) -> Value {
        self.get(&format!("/api/v1/experiments/{uid}"))
    }

    pub fn wait_phase(&self, uid: &str, phase: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let v = self.experiment(uid);
            if v["status"]["phase"] == phase {
                return v;
            }
            assert!(
                start.elapsed() < timeout,
                "experiment did not reach {phase} in {timeout:?}: {v:#}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn register_plugin(api: &Api, name: &str, plugin: &Plugin) {
    let yaml = format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: {name}}}\nspec:\n  adapter: webhook\n  endpoint: {}\n  settings: {{timeout_ms: 3000}}\n",
        plugin.url
    );
    let (code, v) = api.post("/api/v1/environments?replace=true", Some(&yaml));
    assert!(
        code == 201 || code == 200,
        "registering the plugin failed: {v}"
    );
}

pub fn fill_yaml(name: &str, env: &str, duration: Option<&str>, size: &str) -> String {
    let duration = duration
        .map(|d| format!("  duration: {d}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PhysicalMachineChaos\nmetadata: {{name: {name}}}\nspec:\n  environment: {env}\n  action: disk-fill\n  mode: all\n  selector:\n    labelSelectors: {{tier: frontend}}\n  disk-fill:\n    size: {size}\n{duration}"
    )
}

/// A free TCP port on `ip` (bound and let go: whoever is started with it binds it a moment
/// later).
pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// The toxics of proxy `proxy` on a real Toxiproxy server, read through its API.
pub fn toxics(server: &chaoshub_testkit::toxiproxy::ToxiproxyServer, proxy: &str) -> Vec<Value> {
    install_crypto_provider();
    reqwest::blocking::get(format!("{}/proxies/{proxy}/toxics", server.url))
        .and_then(|r| r.json::<Value>())
        .map(|v| v.as_array().cloned().unwrap_or_default())
        .unwrap_or_else(|e| panic!("reading the toxics of {proxy}: {e}"))
}

/// Waits until the hub behind `api` lists agent `name` of `env` with `health`, and returns its
/// listing; panics after `within` with the listing and `log()` (the agent's log).
pub fn wait_agent_health(
    api: &Api,
    env: &str,
    name: &str,
    health: &str,
    within: Duration,
    log: impl Fn() -> String,
) -> Value {
    let start = Instant::now();
    loop {
        let v = api.get(&format!("/api/v1/agents?env={env}"));
        if let Some(a) = v["items"]
            .as_array()
            .and_then(|items| items.iter().find(|a| a["name"] == name))
        {
            if a["health"] == health {
                return a.clone();
            }
        }
        assert!(
            start.elapsed() < within,
            "agent {name} never became {health} within {within:?}: {v:#}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn uid(v: &Value) -> String {
    v["metadata"]["uid"]
        .as_str()
        .unwrap_or_else(|| panic!("no uid in {v}"))
        .to_string()
}
