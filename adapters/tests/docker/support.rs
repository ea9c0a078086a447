//! What the Docker tests share: the engine, images built here, guards that remove what a test
//! created even when it fails, and probes that measure a fault from the host.
//!
//! **No registry is reachable** where these tests run and the engine starts with no images, so
//! every image is built locally, `FROM scratch`, by `chaoshub_adapters::docker::image` (the
//! same in-memory builder the adapter uses for its helper image):
//! - the *target image* holds the host's static busybox (`apt-get install busybox-static`,
//!   done by `scripts/install-test-deps.sh`) as `/bin/busybox` with `sh`, `httpd`, `nc`,
//!   `wget` and `sleep` links; its default command serves `/www` over HTTP on port 8080. Its tag
//!   is a hash of its content, so it is built once and reused (it is not removed);
//! - the *helper image* is built by the adapter from the `chaos-agent` binary of this build.
//!
//! Every container, volume and network a test creates is named `chtest-<pid>-<n>-…` and labelled
//! `dev.chaoshub.test=<pid>`, and its guard removes it on drop (with the `docker` CLI, which
//! works from `Drop` without an async runtime). Traffic goes only to loopback and to these
//! containers.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bollard::Docker;
use chaoshub_adapters::docker::image::{build_image, ImageContext};
use chaoshub_adapters::{Environment, FaultRequest, Injection};
use chaoshub_schema::environment::EnvironmentSpec;
use chaoshub_schema::Target;
use serde_json::Value;

pub const TEST_LABEL: &str = "dev.chaoshub.test";
const BUSYBOX: &str = "/usr/bin/busybox";
/// The size of `/www/big.bin` in the target image.
pub const BIG_FILE_BYTES: usize = 2 << 20;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test process and call.
pub fn unique(role: &str) -> String {
    format!(
        "chtest-{}-{}-{role}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn docker() -> Docker {
    Docker::connect_with_unix_defaults()
        .expect("the Docker engine socket /var/run/docker.sock is needed by these tests")
}

pub fn env() -> Environment {
    Environment {
        name: "local-docker".into(),
        spec: EnvironmentSpec {
            adapter: "docker".into(),
            endpoint: Some("unix:///var/run/docker.sock".into()),
            description: None,
            labels: Default::default(),
            settings: Default::default(),
        },
    }
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI is needed by the tests' cleanup guards")
}

/// Runs the docker CLI and returns stdout, panicking with stderr on failure.
pub fn docker_cli(args: &[&str]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The target image (see the module comment), built once per content.
pub async fn target_image() -> String {
    static TAG: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    TAG.get_or_init(|| async {
        assert!(
            Path::new(BUSYBOX).exists(),
            "{BUSYBOX} is missing: run scripts/install-test-deps.sh (busybox-static)"
        );
        let mut context = ImageContext::new();
        context
            .add_host_binary(Path::new(BUSYBOX), "/bin/busybox")
            .unwrap();
        for applet in [
            "sh", "httpd", "nc", "wget", "nslookup", "sleep", "cat", "ls", "ip", "ping",
        ] {
            context.add_symlink(&format!("/bin/{applet}"), "busybox");
        }
        context.add_file("/www/index.html", b"chaoshub target\n".to_vec(), 0o644);
        // Downloaded to measure a bandwidth limit.
        context.add_file("/www/big.bin", vec![0x5a; BIG_FILE_BYTES], 0o644);
        context.add_file("/tmp/.keep", Vec::new(), 0o644);
        context.instruction("EXPOSE 8080");
        context.instruction(
            "CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]",
        );
        let tag = format!("chaoshub-test/target:{}", context.content_hash().unwrap());
        if docker().inspect_image(&tag).await.is_err() {
            build_image(&docker(), &tag, &context)
                .await
                .unwrap_or_else(|e| panic!("building the target image: {e}"));
        }
        tag
    })
    .await
    .clone()
}

/// A container the test created; removed (with its anonymous volumes) on drop.
pub struct ContainerGuard {
    pub name: String,
    pub id: String,
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = cli(&["rm", "-f", "-v", &self.name]);
    }
}

/// Options for a target container.
#[derive(Default)]
pub struct Run<'a> {
    pub labels: &'a [(&'a str, &'a str)],
    pub restart: Option<&'a str>,
    pub network: Option<&'a str>,
    pub alias: Option<&'a str>,
    pub command: Option<&'a [&'a str]>,
    /// `--add-host NAME:ADDRESS` (`host-gateway` is the engine's gateway to the host).
    pub add_host: Option<&'a str>,
}

/// Starts a container of the target image and waits until it runs.
pub async fn run_target(role: &str, opts: Run<'_>) -> ContainerGuard {
    let image = target_image().await;
    let name = unique(role);
    let test_label = format!("{TEST_LABEL}={}", std::process::id());
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        name.clone(),
        "--label".into(),
        test_label,
    ];
    for (k, v) in opts.labels {
        args.extend(["--label".into(), format!("{k}={v}")]);
    }
    if let Some(r) = opts.restart {
        args.extend(["--restart".into(), r.into()]);
    }
    if let Some(n) = opts.network {
        args.extend(["--network".into(), n.into()]);
    }
    if let Some(a) = opts.alias {
        args.extend(["--network-alias".into(), a.into()]);
    }
    if let Some(h) = opts.add_host {
        args.extend(["--add-host".into(), h.into()]);
    }
    args.push(image);
    if let Some(cmd) = opts.command {
        args.extend(cmd.iter().map(|s| s.to_string()));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let id = docker_cli(&refs);
    let guard = ContainerGuard { name, id };
    if opts.command.is_none() {
        // The default command serves HTTP; wait until it answers, so tests start from a
        // working service.
        let network = opts.network.unwrap_or("bridge");
        let start = Instant::now();
        loop {
            let ip = address(&guard, network);
            if !ip.is_empty() && http_get(&ip, Duration::from_millis(500)).is_ok() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "container {} does not serve HTTP on {ip}:8080",
                guard.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    guard
}

/// A temporary image; removed on drop.
pub struct ImageGuard {
    pub tag: String,
}

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = cli(&["rmi", "-f", &self.tag]);
    }
}

/// A user-defined network; removed on drop.
pub struct NetworkGuard {
    pub name: String,
}

impl NetworkGuard {
    pub fn create() -> NetworkGuard {
        let name = unique("net");
        docker_cli(&[
            "network",
            "create",
            "--label",
            &format!("{TEST_LABEL}={}", std::process::id()),
            &name,
        ]);
        NetworkGuard { name }
    }
}

impl Drop for NetworkGuard {
    fn drop(&mut self) {
        let _ = cli(&["network", "rm", &self.name]);
    }
}

/// Removes the injection's journal volume and helpers if a test failed before recovering.
pub struct InjectionGuard {
    pub injection_id: String,
}

impl Drop for InjectionGuard {
    fn drop(&mut self) {
        let filter = format!("label=dev.chaoshub.injection={}", self.injection_id);
        let ids = cli(&["ps", "-aq", "--filter", &filter]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = cli(&["rm", "-f", id]);
        }
        let _ = cli(&[
            "volume",
            "rm",
            "-f",
            &format!("chaoshub-{}", self.injection_id),
        ]);
    }
}

/// A fault request for a manifest, with a deadline `secs` from now.
pub fn request(yaml: &str, injection_id: &str, secs: i64) -> FaultRequest {
    let manifest = chaoshub_schema::parse_one(yaml).unwrap();
    let actions = manifest.fault().unwrap().actions();
    FaultRequest {
        experiment_uid: injection_id.into(),
        injection_id: injection_id.into(),
        name: "t".into(),
        namespace: "default".into(),
        manifest: Arc::new(manifest),
        actions,
        deadline: Some(chrono::Utc::now() + chrono::Duration::seconds(secs)),
    }
}

pub fn injection(fault: &FaultRequest, target: &Target, details: Value) -> Injection {
    Injection {
        experiment_uid: fault.experiment_uid.clone(),
        injection_id: fault.injection_id.clone(),
        kind: fault.kind().into(),
        actions: fault.actions.clone(),
        target: target.clone(),
        details,
    }
}

/// A target container labelled `app: web` serving HTTP (the tests' usual target).
pub async fn run_web() -> ContainerGuard {
    run_target(
        "web",
        Run {
            labels: &[("app", "web")],
            ..Run::default()
        },
    )
    .await
}

/// A second container, labelled `app: peer`, on the default bridge: the other end of a
/// target-selector or partition test.
pub async fn run_peer() -> ContainerGuard {
    run_target(
        "peer",
        Run {
            labels: &[("app", "peer")],
            ..Run::default()
        },
    )
    .await
}

/// A fresh injection id with the guard that removes whatever the injection left.
pub fn guarded_injection_id() -> (String, InjectionGuard) {
    let id = injection_id();
    let guard = InjectionGuard {
        injection_id: id.clone(),
    };
    (id, guard)
}

/// A fresh injection id (the hub's are `<uid>-<index>`).
pub fn injection_id() -> String {
    unique("inj")
}

/// The discovered target of a container.
pub async fn target_of(container: &ContainerGuard) -> Target {
    use chaoshub_adapters::Adapter;
    let adapter = chaoshub_adapters::docker::DockerAdapter::new();
    let targets = adapter.discover(&env()).await.unwrap();
    targets
        .into_iter()
        .find(|t| t.id == container.id)
        .unwrap_or_else(|| panic!("container {} not discovered", container.name))
}

/// The container's address on a network (`bridge` for the default one).
pub fn address(container: &ContainerGuard, network: &str) -> String {
    docker_cli(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
        &container.name,
    ])
}

pub fn inspect(container: &ContainerGuard, format: &str) -> String {
    docker_cli(&["inspect", "-f", format, &container.name])
}

/// One HTTP GET of `/` from the host with a timeout; the time it took, or why it failed.
pub fn http_get(ip: &str, timeout: Duration) -> Result<Duration, String> {
    use std::io::{Read, Write};
    let addr: SocketAddr = format!("{ip}:8080").parse().map_err(|e| format!("{e}"))?;
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    stream
        .read_to_string(&mut body)
        .map_err(|e| e.to_string())?;
    if !body.contains("chaoshub target") {
        return Err(format!("unexpected answer: {body:?}"));
    }
    Ok(start.elapsed())
}

/// An HTTP GET of `/` from inside a container to `ip` (busybox `nc`; its static `wget` cannot
/// run the resolver code of static glibc and crashes), with a 1 s timeout.
pub fn fetch_from(from: &ContainerGuard, ip: &str) -> bool {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 {ip} 8080");
    Command::new("docker")
        .args(["exec", &from.name, "sh", "-c", &script])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("chaoshub target"))
        .unwrap_or(false)
}

/// Downloads `/big.bin` from the target's HTTP server: the body's size and how long it took.
pub fn download_big(ip: &str, timeout: Duration) -> Result<(usize, Duration), String> {
    use std::io::{Read, Write};
    let addr: SocketAddr = format!("{ip}:8080").parse().map_err(|e| format!("{e}"))?;
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream
        .write_all(b"GET /big.bin HTTP/1.0\r\nHost: t\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let elapsed = start.elapsed();
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| answer.len() - at - 4)
        .ok_or("no HTTP header in the answer")?;
    Ok((body, elapsed))
}

/// What a host socket received of datagrams sent from inside a container.
#[derive(Debug, Default, Clone, Copy)]
pub struct UdpTally {
    pub sent: usize,
    /// Distinct sequence numbers received intact.
    pub intact: usize,
    /// Intact copies beyond the first of a sequence number.
    pub duplicates: usize,
    /// Datagrams whose payload differed from what was sent.
    pub damaged: usize,
}

impl UdpTally {
    /// Datagrams that never arrived intact, in percent of those sent.
    pub fn lost_pct(&self) -> f64 {
        100.0 * (self.sent - self.intact) as f64 / self.sent as f64
    }
}

fn udp_payload(seq: usize) -> Vec<u8> {
    let mut p = format!("chaoshub-{seq:06}-").into_bytes();
    p.resize(256, b'z');
    p
}

/// Sends `count` UDP datagrams from inside `container`'s network namespace (a thread of this
/// test enters it through `/proc/PID/ns/net`, so they leave through the container's `eth0`,
/// where a helper's rules act) to a socket of the host on the network's gateway, and tallies
/// what arrived. Needs root, as the Docker tests do anyway.
pub fn udp_from(container: &ContainerGuard, network: &str, count: usize) -> UdpTally {
    use std::collections::HashMap;
    use std::net::UdpSocket;
    let gateway = inspect(
        container,
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").Gateway}}}}"),
    );
    let pid = inspect(container, "{{.State.Pid}}");
    let receiver = UdpSocket::bind(format!("{gateway}:0")).expect("bind on the gateway");
    receiver
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let to = receiver.local_addr().unwrap();
    let ns = format!("/proc/{pid}/ns/net");
    let sender = std::thread::spawn(move || {
        let file = std::fs::File::open(&ns).unwrap_or_else(|e| panic!("{ns}: {e}"));
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("setns {ns}: {e}"));
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        for seq in 0..count {
            // A rule that drops in the output hook fails the send itself (EPERM): that
            // datagram is lost like any other, so errors are not fatal here.
            let _ = socket.send_to(&udp_payload(seq), to);
            // Paced, so that neither queue nor socket buffer drops anything on its own.
            std::thread::sleep(Duration::from_micros(500));
        }
    });
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut damaged = 0;
    let mut buf = [0u8; 2048];
    let mut quiet_since = Instant::now();
    loop {
        match receiver.recv(&mut buf) {
            Ok(n) => {
                quiet_since = Instant::now();
                let data = &buf[..n];
                let seq = std::str::from_utf8(data.get(9..15).unwrap_or_default())
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok())
                    .filter(|&seq| seq < count && udp_payload(seq) == data);
                match seq {
                    Some(seq) => *seen.entry(seq).or_default() += 1,
                    None => damaged += 1,
                }
            }
            Err(_) => {
                // Delayed copies may still come: stop after a quiet second once all are sent.
                if sender.is_finished() && quiet_since.elapsed() > Duration::from_secs(1) {
                    break;
                }
            }
        }
    }
    sender.join().expect("the sending thread panicked");
    UdpTally {
        sent: count,
        intact: seen.len(),
        duplicates: seen.values().map(|n| n - 1).sum(),
        damaged,
    }
}

/// TCP connect times to the target's HTTP port (one SYN / SYN-ACK round trip each).
pub fn connect_times(ip: &str, count: usize, timeout: Duration) -> Vec<Option<Duration>> {
    let addr: SocketAddr = format!("{ip}:8080").parse().unwrap();
    (0..count)
        .map(|_| {
            let start = Instant::now();
            let ok = TcpStream::connect_timeout(&addr, timeout).is_ok();
            ok.then(|| start.elapsed())
        })
        .collect()
}

pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The test environment with this build's `chaos-agent` for the helper image (network and
/// stress helpers, and the watchdog of pauses, disconnects and squeezes).
pub fn agent_env() -> Environment {
    let mut env = env();
    env.spec.settings.insert(
        "agent_binary".into(),
        agent_binary().to_string_lossy().into_owned().into(),
    );
    env
}

/// The containers (helpers, watchdog) an injection has on the engine, running or not.
pub fn helpers_of(injection_id: &str) -> Vec<String> {
    docker_cli(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=dev.chaoshub.injection={injection_id}"),
    ])
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

/// Waits until `check` holds, or panics naming `what`.
pub async fn eventually(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "{what} did not happen within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the injection's journal volume exists.
pub fn journal_exists(injection_id: &str) -> bool {
    cli(&["volume", "inspect", &format!("chaoshub-{injection_id}")])
        .status
        .success()
}

/// The static chaos-agent of this build, for the helper image: built once by cargo.
pub fn agent_binary() -> &'static Path {
    static BIN: OnceLock<std::path::PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // An agent built elsewhere can be given, as the adapter itself takes it.
        if let Some(path) = std::env::var_os("CHAOSHUB_AGENT_BINARY").filter(|p| !p.is_empty()) {
            return std::path::PathBuf::from(path);
        }
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-p", "chaos-agent", "--bin", "chaos-agent"])
            .current_dir(root)
            .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
            .status()
            .expect("cannot run cargo to build chaos-agent");
        assert!(status.success(), "building chaos-agent failed");
        let bin = profile_dir.join("chaos-agent");
        // The helper contract needs the agent's standalone foreground CLI.
        let help = Command::new(&bin)
            .args(["attack", "network", "--help"])
            .output();
        assert!(
            help.is_ok_and(|o| o.status.success()),
            "{} has no `attack network` command: the helper tests need chaos-agent's \
             standalone `attack … --foreground -o json` CLI (the native agent issue)",
            bin.display()
        );
        bin
    })
    .as_path()
}

/// A file of a container's own cgroup, on cgroup v1 (`v1` = (controller, file)) or v2 (`v2`
/// file of the unified hierarchy), found from `/proc/<pid>/cgroup` of its main process, so
/// the tests measure the same thing whatever the driver (cgroupfs, systemd) and version.
/// `None` (with the reason printed) when the container has no such file.
pub fn cgroup_file(container: &str, v1: (&str, &str), v2: &str) -> Option<std::path::PathBuf> {
    let pid = docker_cli(&["inspect", "-f", "{{.State.Pid}}", container]);
    let text = match std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("no cgroup file for {container}: /proc/{pid}/cgroup: {e}");
            return None;
        }
    };
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let candidate = if controllers.is_empty() {
            std::path::Path::new("/sys/fs/cgroup")
                .join(path.trim_start_matches('/'))
                .join(v2)
        } else if controllers.split(',').any(|c| c == v1.0) {
            std::path::Path::new("/sys/fs/cgroup")
                .join(v1.0)
                .join(path.trim_start_matches('/'))
                .join(v1.1)
        } else {
            continue;
        };
        if candidate.exists() {
            return Some(candidate);
        }
    }
    eprintln!("no cgroup file {v1:?} / {v2} for {container} in:\n{text}");
    None
}

/// A cgroup file's first number (`usage_usec` lines of `cpu.stat` included).
pub fn cgroup_number(path: &std::path::Path) -> Option<i64> {
    let text = std::fs::read_to_string(path).ok()?;
    let first = text.lines().next()?;
    first.split_whitespace().last()?.parse().ok()
}

/// CPU time used by a container's cgroup, in nanoseconds (v1 `cpuacct.usage`, v2 `cpu.stat`
/// `usage_usec`).
pub fn cgroup_cpu_ns(container: &str) -> Option<i64> {
    let path = cgroup_file(container, ("cpuacct", "cpuacct.usage"), "cpu.stat")?;
    let n = cgroup_number(&path)?;
    Some(if path.ends_with("cpu.stat") {
        n * 1000
    } else {
        n
    })
}

/// Memory charged to a container's cgroup, in bytes (v1 `memory.usage_in_bytes`, v2
/// `memory.current`).
pub fn cgroup_memory_bytes(container: &str) -> Option<i64> {
    cgroup_number(&cgroup_file(
        container,
        ("memory", "memory.usage_in_bytes"),
        "memory.current",
    )?)
}

/// Whether a stress helper is nested below its target's cgroup (cgroup v1 with the cgroupfs
/// driver; see `helper::nested_cgroup`), so the target's own accounting holds the stress.
pub fn helpers_nest_in_target_cgroup() -> bool {
    docker_cli(&["info", "--format", "{{.CgroupDriver}} {{.CgroupVersion}}"]) == "cgroupfs 1"
}
