//! Test network namespaces: a hub reachable from namespace A over a veth pair, and namespace B
//! joined to A by a second pair, all on 198.19.0.0/16 (inside the 198.18.0.0/15 test range).
//! Everything is removed on drop, also when the test fails. Measurements run in threads that
//! entered a namespace with `setns`, so no tool has to be installed for them.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs `ip …` and panics with its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2) is needed");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Output of a command run inside a namespace (empty when the tool is missing).
pub fn in_ns_cmd(ns: &str, program: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .output();
    match out {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(_) => String::new(),
    }
}

/// Runs `f` in a thread that entered the network namespace `ns`.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("setns {path}: {e}"));
        f()
    })
    .join()
    .expect("namespace thread panicked")
}

/// Two namespaces: A (where the agent runs, 198.19.S.2 towards the hub at 198.19.S.1, and
/// 198.19.S.5 towards B) and B (198.19.S.6).
pub struct Topology {
    pub a: String,
    pub b: String,
    pub hub_ip: String,
    pub a_ip: String,
    pub b_ip: String,
    /// A's end of the A–B pair (the interface a fault towards B names).
    pub a_to_b_dev: String,
    host_veth: String,
}

impl Topology {
    pub fn new() -> Topology {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        // Distinct per process and per test, so parallel tests and runs never share names.
        let slot = (std::process::id() % 40) * 6 + n;
        let third = slot % 250;
        let a = format!("chx-a-{}-{n}", std::process::id());
        let b = format!("chx-b-{}-{n}", std::process::id());
        let host_veth = format!("cxh{}x{n}", std::process::id() % 100000);
        let a_veth = format!("cxa{}x{n}", std::process::id() % 100000);
        let p_veth = format!("cxp{}x{n}", std::process::id() % 100000);
        let q_veth = format!("cxq{}x{n}", std::process::id() % 100000);
        let topo = Topology {
            a: a.clone(),
            b: b.clone(),
            hub_ip: format!("198.19.{third}.1"),
            a_ip: format!("198.19.{third}.5"),
            b_ip: format!("198.19.{third}.6"),
            a_to_b_dev: p_veth.clone(),
            host_veth: host_veth.clone(),
        };
        // The guard exists before anything is created, so a failure half-way still cleans up.
        ip(&["netns", "add", &a]);
        ip(&["netns", "add", &b]);
        ip(&[
            "link", "add", &host_veth, "type", "veth", "peer", "name", &a_veth,
        ]);
        ip(&["link", "set", &a_veth, "netns", &a]);
        ip(&[
            "addr",
            "add",
            &format!("198.19.{third}.1/30"),
            "dev",
            &host_veth,
        ]);
        ip(&["link", "set", &host_veth, "up"]);
        ip(&[
            "-n",
            &a,
            "addr",
            "add",
            &format!("198.19.{third}.2/30"),
            "dev",
            &a_veth,
        ]);
        ip(&["-n", &a, "link", "set", &a_veth, "up"]);
        ip(&["-n", &a, "link", "set", "lo", "up"]);
        ip(&[
            "link", "add", &p_veth, "type", "veth", "peer", "name", &q_veth,
        ]);
        ip(&["link", "set", &p_veth, "netns", &a]);
        ip(&["link", "set", &q_veth, "netns", &b]);
        ip(&[
            "-n",
            &a,
            "addr",
            "add",
            &format!("198.19.{third}.5/30"),
            "dev",
            &p_veth,
        ]);
        ip(&["-n", &a, "link", "set", &p_veth, "up"]);
        ip(&[
            "-n",
            &b,
            "addr",
            "add",
            &format!("198.19.{third}.6/30"),
            "dev",
            &q_veth,
        ]);
        ip(&["-n", &b, "link", "set", &q_veth, "up"]);
        ip(&["-n", &b, "link", "set", "lo", "up"]);
        topo
    }

    /// Everything of ours in A's kernel tables: qdiscs other than the defaults, nftables tables
    /// and iptables rules that name chaoshub. Empty when clean.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for line in in_ns_cmd(&self.a, "tc", &["qdisc", "show"]).lines() {
            if ["tbf", "htb", "netem", "prio", "ingress", "ifb"]
                .iter()
                .any(|k| line.contains(k))
            {
                out.push(format!("qdisc: {line}"));
            }
        }
        for line in in_ns_cmd(&self.a, "nft", &["list", "tables"]).lines() {
            if line.to_ascii_lowercase().contains("chaoshub") {
                out.push(format!("nft: {line}"));
            }
        }
        for line in in_ns_cmd(&self.a, "iptables-save", &[]).lines() {
            if line.to_ascii_lowercase().contains("chaoshub") || line.contains("NFQUEUE") {
                out.push(format!("iptables: {line}"));
            }
        }
        out
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_veth])
            .stderr(Stdio::null())
            .status();
    }
}

/// A TCP echo server and a UDP packet counter in a namespace.
pub struct PeerServices {
    stop: Arc<AtomicBool>,
    pub udp_received: Arc<AtomicU64>,
    pub tcp: SocketAddr,
    pub udp: SocketAddr,
}

impl PeerServices {
    pub fn start(ns: &str, ip: &str) -> PeerServices {
        let stop = Arc::new(AtomicBool::new(false));
        let udp_received = Arc::new(AtomicU64::new(0));
        let tcp: SocketAddr = format!("{ip}:7000").parse().unwrap();
        let udp: SocketAddr = format!("{ip}:7001").parse().unwrap();
        let (s1, s2, count) = (stop.clone(), stop.clone(), udp_received.clone());
        let (ns1, ns2) = (ns.to_string(), ns.to_string());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let ready2 = ready_tx.clone();
        std::thread::spawn(move || {
            in_ns(&ns1, move || {
                let listener = TcpListener::bind(tcp).unwrap();
                listener.set_nonblocking(true).unwrap();
                ready_tx.send(()).unwrap();
                while !s1.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((mut conn, _)) => {
                            let stop = s1.clone();
                            std::thread::spawn(move || {
                                conn.set_nonblocking(false).unwrap();
                                conn.set_nodelay(true).unwrap();
                                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                                let mut buf = [0u8; 64];
                                while !stop.load(Ordering::SeqCst) {
                                    match conn.read(&mut buf) {
                                        Ok(0) | Err(_) => break,
                                        Ok(n) => {
                                            if conn.write_all(&buf[..n]).is_err() {
                                                break;
                                            }
                                        }
                                    }
                                }
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        });
        std::thread::spawn(move || {
            in_ns(&ns2, move || {
                let sock = UdpSocket::bind(udp).unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                ready2.send(()).unwrap();
                let mut buf = [0u8; 1500];
                while !s2.load(Ordering::SeqCst) {
                    if sock.recv_from(&mut buf).is_ok() {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        PeerServices {
            stop,
            udp_received,
            tcp,
            udp,
        }
    }
}

impl Drop for PeerServices {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Median TCP round trip (1-byte echo) from namespace `ns` to `to`, over `n` round trips on one
/// connection.
pub fn median_rtt(ns: &str, to: SocketAddr, n: usize) -> Duration {
    in_ns(ns, move || {
        let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
        conn.set_nodelay(true).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut samples = Vec::with_capacity(n);
        let mut buf = [0u8; 1];
        for _ in 0..n {
            let t = Instant::now();
            conn.write_all(b"x").unwrap();
            conn.read_exact(&mut buf).unwrap();
            samples.push(t.elapsed());
        }
        samples.sort();
        samples[n / 2]
    })
}

/// Sends `n` UDP datagrams from namespace `ns` to `to`, paced so queues never overflow.
pub fn send_udp(ns: &str, to: SocketAddr, n: usize) {
    in_ns(ns, move || {
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        for i in 0..n {
            let _ = sock.send_to(&(i as u32).to_be_bytes(), to);
            if i % 20 == 19 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    })
}

/// The `chaos-agent` binary of this build (built on first use when the test runs alone).
pub fn agent_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let bin = profile_dir.join("chaos-agent");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-p", "chaos-agent", "--bin", "chaos-agent"])
            .current_dir(root)
            .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
            .status()
            .expect("cannot run cargo to build chaos-agent");
        assert!(status.success(), "building chaos-agent failed");
        bin
    })
    .clone()
}

/// A `chaos-agent serve` process inside a namespace; killed on drop.
pub struct AgentProcess {
    pub child: Child,
    pub log: PathBuf,
}

impl AgentProcess {
    /// `extra` holds further flags: `--join-token-file F`, `--allow user-defined`, `--ca-file F`.
    pub fn start(
        ns: &str,
        hub_url: &str,
        env: &str,
        name: &str,
        state_dir: &Path,
        extra: &[&str],
    ) -> AgentProcess {
        std::fs::create_dir_all(state_dir).unwrap();
        let log = state_dir.join(format!("agent-{}.log", NEXT.fetch_add(1, Ordering::SeqCst)));
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(agent_binary())
            .args(["serve", "--hub", hub_url, "--env", env, "--name", name])
            .args(["--label", "role=app", "--state-dir"])
            .arg(state_dir)
            .args(extra)
            .env("CHAOS_AGENT_LOG", "info")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("cannot start chaos-agent");
        AgentProcess { child, log }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            // Already ended (killed by the test and reaped): nothing to stop.
            if std::thread::panicking() {
                eprintln!("--- agent log ---\n{}", self.log());
            }
            return;
        }
        // SIGTERM first: a clean agent removes its faults itself.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- agent log ---\n{}", self.log());
        }
    }
}
