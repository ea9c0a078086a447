//! Acceptance tests of the network injector: real faults in real network namespaces, with the
//! effect measured.
//!
//! Each test builds two namespaces joined by a veth pair (`veth0` on both sides):
//! the target `A` (198.18.0.1/24) and the peer `B` (198.18.0.2/24 and 198.18.0.3/24), applies a
//! fault through `NetworkInjector` targeting `/run/netns/A`, measures it with traffic between
//! the two, removes it, measures again, and checks that nothing of ours is left. Traffic never
//! leaves the test namespaces. Needs root, iproute2, nftables and iptables (see
//! scripts/install-test-deps.sh); without root the tests fail with a message saying so.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chaos_agent::inject::{Injector, Plan, Worker};
use chaos_agent::network::{probe_mechanisms, NetworkInjector, NetworkUndo};
use chaoshub_schema::agent::{
    AgentFault, KernelMechanisms, NetnsRef, NetworkAction, NetworkFault, TrafficDirection,
};

const A_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const B_IP2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);

fn mechanisms() -> &'static KernelMechanisms {
    static PROBED: OnceLock<KernelMechanisms> = OnceLock::new();
    PROBED.get_or_init(|| {
        assert!(
            nix_is_root(),
            "the network acceptance tests need root (network namespaces, tc, nftables)"
        );
        probe_mechanisms()
    })
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a command (in namespace `ns` when given) and returns stdout; panics with stderr on
/// failure.
fn sh(ns: Option<&str>, program: &str, args: &[&str]) -> String {
    let output = match ns {
        Some(ns) => Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .output(),
        None => Command::new(program).args(args).output(),
    }
    .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} in {ns:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Two namespaces joined by a veth pair; deleted on drop (also when the test panics).
struct Topology {
    a: String,
    b: String,
}

impl Topology {
    fn new(tag: &str) -> Topology {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let base = format!("chn-{tag}-{}-{n}", std::process::id());
        let topo = Topology {
            a: format!("{base}-a"),
            b: format!("{base}-b"),
        };
        sh(None, "ip", &["netns", "add", &topo.a]);
        sh(None, "ip", &["netns", "add", &topo.b]);
        sh(
            None,
            "ip",
            &[
                "-n", &topo.a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0",
                "netns", &topo.b,
            ],
        );
        for (ns, addrs) in [
            (&topo.a, vec!["198.18.0.1/24"]),
            (&topo.b, vec!["198.18.0.2/24", "198.18.0.3/24"]),
        ] {
            for addr in addrs {
                sh(None, "ip", &["-n", ns, "addr", "add", addr, "dev", "veth0"]);
            }
            sh(None, "ip", &["-n", ns, "link", "set", "veth0", "up"]);
            sh(None, "ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        // Wait until both ends report carrier, so the first datagrams are not lost.
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let up = [&topo.a, &topo.b].iter().all(|ns| {
                sh(None, "ip", &["-n", ns, "-o", "link", "show", "veth0"]).contains("LOWER_UP")
            });
            if up {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        topo
    }

    fn a_path(&self) -> String {
        format!("/run/netns/{}", self.a)
    }

    fn b_path(&self) -> String {
        format!("/run/netns/{}", self.b)
    }

    /// A fault of `action` targeting namespace A.
    fn fault(&self, action: NetworkAction) -> NetworkFault {
        let mut f = NetworkFault::new(action);
        f.netns = Some(NetnsRef::Path(self.a_path()));
        f
    }

    /// Asserts that no qdisc, nftables table, iptables rule or ifb device of ours is left in A.
    fn assert_clean(&self) {
        let ns = Some(self.a.as_str());
        let tables = sh(ns, "nft", &["list", "tables"]);
        assert!(
            !tables.contains("chaoshub_"),
            "nftables table left behind: {tables}"
        );
        for binary in ["iptables", "ip6tables"] {
            let rules = sh(ns, binary, &["-w", "-S"]);
            assert!(
                !rules.to_lowercase().contains("chaoshub"),
                "{binary} rules left behind: {rules}"
            );
        }
        let qdiscs = sh(ns, "tc", &["qdisc", "show"]);
        for line in qdiscs.lines() {
            let handle = line.split_whitespace().nth(2).unwrap_or("");
            // The kernel's defaults have handle 0:; anything else here would be ours.
            assert_eq!(handle, "0:", "qdisc left behind: {line}");
        }
        let links = sh(ns, "ip", &["-o", "link", "show"]);
        assert!(!links.contains("chb"), "ifb device left behind: {links}");
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Runs `f` on a new thread that has entered the namespace at `path`.
fn in_ns<T: Send + 'static>(path: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = path.to_string();
    std::thread::spawn(move || {
        chaos_agent::network::netns::enter_current_thread(&path).expect("enter namespace");
        f()
    })
}

/// One applied fault.
struct Active {
    plan: Plan,
    worker: Option<Box<dyn Worker>>,
}

fn apply(injector: &NetworkInjector, id: &str, fault: NetworkFault) -> Active {
    let fault = AgentFault::Network(fault);
    let plan = injector
        .plan(id, &fault)
        .unwrap_or_else(|e| panic!("plan {id}: {e}"));
    let applied = injector
        .apply(&plan, &fault)
        .unwrap_or_else(|e| panic!("apply {id}: {e}"));
    assert!(
        injector.verify(&plan).expect("verify"),
        "verify must read the fault back after apply ({})",
        plan.mechanism
    );
    Active {
        plan,
        worker: applied.worker,
    }
}

fn remove(injector: &NetworkInjector, active: Active) {
    if let Some(worker) = active.worker {
        worker.stop();
    }
    injector.remove(&active.plan).expect("remove");
    assert!(
        !injector.verify(&active.plan).expect("verify after remove"),
        "verify must report the fault gone after remove"
    );
    // Idempotent: a second removal (a replayed journal) is fine.
    injector.remove(&active.plan).expect("second remove");
}

fn injector() -> NetworkInjector {
    NetworkInjector::real(mechanisms().clone())
}

// ---- traffic -------------------------------------------------------------------------------

/// Sends `count` numbered UDP datagrams from namespace `from` to `to_addr:port` (received in
/// namespace `to`), and returns the sequence numbers received, in arrival order, plus how many
/// arrived with a damaged payload.
fn udp_run(from: &str, to: &str, to_addr: Ipv4Addr, port: u16, count: u32) -> (Vec<u32>, u32) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = in_ns(to, move || {
        let socket = UdpSocket::bind((to_addr, port)).expect("bind receiver");
        socket
            .set_read_timeout(Some(Duration::from_millis(400)))
            .unwrap();
        let _ = ready_tx.send(());
        let mut seqs = Vec::new();
        let mut damaged = 0;
        let mut buf = [0u8; 256];
        while let Ok(n) = socket.recv(&mut buf) {
            if n != 64 {
                damaged += 1;
                continue;
            }
            let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let expected = payload(seq);
            if buf[..64] != expected[..] {
                damaged += 1;
            } else {
                seqs.push(seq);
            }
        }
        (seqs, damaged)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(2))
        .expect("receiver ready");
    in_ns(from, move || {
        let socket = UdpSocket::bind("0.0.0.0:0").expect("bind sender");
        for seq in 0..count {
            // ENETUNREACH / EPERM while a partition drops packets are expected.
            let _ = socket.send_to(&payload(seq), (to_addr, port));
            if seq % 50 == 49 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    })
    .join()
    .unwrap();
    receiver.join().unwrap()
}

fn payload(seq: u32) -> [u8; 64] {
    let mut p = [0u8; 64];
    p[..4].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p.iter_mut().enumerate().skip(4) {
        *b = (i as u8).wrapping_mul(7) ^ (seq as u8);
    }
    p
}

/// A TCP echo server in namespace `ns`, stopped on drop.
struct EchoServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    fn start(ns: &str, addr: Ipv4Addr, port: u16) -> EchoServer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = in_ns(ns, move || {
            let listener = TcpListener::bind((addr, port)).expect("bind echo server");
            listener.set_nonblocking(true).unwrap();
            let _ = ready_tx.send(());
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let flag = Arc::clone(&flag);
                        std::thread::spawn(move || {
                            stream.set_nonblocking(false).unwrap();
                            stream.set_nodelay(true).unwrap();
                            stream
                                .set_read_timeout(Some(Duration::from_millis(200)))
                                .unwrap();
                            let mut buf = [0u8; 65536];
                            while !flag.load(Ordering::SeqCst) {
                                match stream.read(&mut buf) {
                                    Ok(0) => break,
                                    Ok(n) => {
                                        if stream.write_all(&buf[..n]).is_err() {
                                            break;
                                        }
                                    }
                                    Err(e)
                                        if e.kind() == std::io::ErrorKind::WouldBlock
                                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                                    Err(_) => break,
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(2))
            .expect("echo server ready");
        EchoServer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Round-trip times in milliseconds of `count` small echoes over one TCP connection from
/// namespace `ns` to `addr:port`.
fn tcp_rtts(ns: &str, addr: Ipv4Addr, port: u16, count: usize) -> Vec<f64> {
    in_ns(ns, move || {
        let mut stream =
            TcpStream::connect_timeout(&SocketAddr::from((addr, port)), Duration::from_secs(3))
                .expect("connect to echo server");
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut samples = Vec::with_capacity(count);
        let mut buf = [0u8; 16];
        for i in 0..count {
            let msg = [i as u8; 16];
            let start = Instant::now();
            stream.write_all(&msg).expect("send echo");
            stream.read_exact(&mut buf).expect("read echo");
            samples.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        samples
    })
    .join()
    .unwrap()
}

fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[s.len() / 2]
}

/// Bytes per second of a bulk TCP transfer from `from` to `to_addr:port` in `to`, measured at
/// the receiver after a warm-up (so the token bucket's initial burst does not count).
/// The best of up to three shaped-throughput samples (ports `port`, `port + 10`, `port + 20`),
/// stopping at the first that reaches `floor` bytes/s. A rate limiter that over-restricts is
/// low every time; a sample starved of CPU by the tests running beside it on a small machine is
/// low once. The band asserted on the result stays the same.
fn shaped_throughput(
    from: &str,
    to: &str,
    to_addr: Ipv4Addr,
    port: u16,
    secs: f64,
    floor: f64,
) -> f64 {
    let mut best: f64 = 0.0;
    for attempt in 0..3u16 {
        let sample = tcp_throughput(from, to, to_addr, port + 10 * attempt, secs);
        best = best.max(sample);
        if best >= floor {
            break;
        }
        eprintln!(
            "throughput sample {:.2} Mbit/s below the band; measuring again",
            sample * 8.0 / 1e6
        );
    }
    best
}

fn tcp_throughput(from: &str, to: &str, to_addr: Ipv4Addr, port: u16, secs: f64) -> f64 {
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = in_ns(to, move || {
        let listener = TcpListener::bind((to_addr, port)).expect("bind sink");
        let _ = ready_tx.send(());
        let (mut stream, _) = listener.accept().expect("accept");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let warmup = Duration::from_millis(500);
        let start = Instant::now();
        let mut counted = 0u64;
        let mut measure_start = None;
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let elapsed = start.elapsed();
            if elapsed >= warmup {
                let t0 = *measure_start.get_or_insert(Instant::now());
                counted += n as u64;
                if t0.elapsed().as_secs_f64() >= secs {
                    return counted as f64 / t0.elapsed().as_secs_f64();
                }
            }
        }
        match measure_start {
            Some(t0) => counted as f64 / t0.elapsed().as_secs_f64(),
            None => 0.0,
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(2))
        .expect("sink ready");
    let total = secs + 1.0;
    let sender = in_ns(from, move || {
        let mut stream = TcpStream::connect((to_addr, port)).expect("connect sink");
        let chunk = vec![0x5au8; 1 << 16];
        let start = Instant::now();
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        while start.elapsed().as_secs_f64() < total {
            if stream.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let rate = receiver.join().unwrap();
    let _ = sender.join();
    rate
}

// ---- tests ---------------------------------------------------------------------------------

#[test]
fn probe_reports_this_kernel_and_delay_falls_back_to_nfqueue() {
    let started = Instant::now();
    let fresh = probe_mechanisms();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "probe took {elapsed:?}");
    // What the probe must say, established independently in a namespace of our own.
    let topo = Topology::new("probe");
    let netem_here = Command::new("ip")
        .args([
            "netns", "exec", &topo.a, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay",
            "1ms",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap();
    assert_eq!(fresh.netem, netem_here, "probe: {fresh:?}");
    for (name, ok) in [
        ("tbf", fresh.tbf),
        ("htb", fresh.htb),
        ("u32", fresh.u32_filter),
        ("nftables", fresh.nftables),
        ("nft numgen", fresh.nft_numgen),
        ("iptables", fresh.iptables),
        ("iptables statistic", fresh.iptables_statistic),
        ("nfqueue", fresh.nfqueue),
    ] {
        assert!(
            ok,
            "this test machine must offer {name}; probe notes: {:?}",
            fresh.notes
        );
    }
    // No scratch namespace is left behind.
    let namespaces = sh(None, "ip", &["netns", "list"]);
    assert!(!namespaces.contains("chaoshub-probe"), "{namespaces}");

    let mut delay = topo.fault(NetworkAction::Delay);
    delay.latency_ms = 10.0;
    let plan = injector()
        .plan("probe-delay", &AgentFault::Network(delay))
        .unwrap();
    let expected = if fresh.netem { "tc-netem" } else { "nfqueue" };
    assert_eq!(plan.mechanism, expected);
    injector().remove(&plan).unwrap();
    eprintln!(
        "probe: {elapsed:?}, netem={} → delay via {}",
        fresh.netem, plan.mechanism
    );
}

#[test]
fn delay_adds_100ms_to_tcp_round_trips() {
    let topo = Topology::new("delay");
    let _server = EchoServer::start(&topo.b_path(), B_IP, 7000);
    let baseline = median(&tcp_rtts(&topo.a_path(), B_IP, 7000, 40));

    let inj = injector();
    let mut f = topo.fault(NetworkAction::Delay);
    f.latency_ms = 100.0;
    let active = apply(&inj, "delay-100", f);
    // Whichever this kernel has is the one used; the other path is measured by the e2e test
    // with `--disable-mechanism netem`.
    let expected = if mechanisms().netem {
        "tc-netem"
    } else {
        "nfqueue"
    };
    eprintln!(
        "netem {}: delay via {}",
        mechanisms().netem,
        active.plan.mechanism
    );
    assert_eq!(active.plan.mechanism, expected);
    let delayed = median(&tcp_rtts(&topo.a_path(), B_IP, 7000, 20));
    remove(&inj, active);
    let after = median(&tcp_rtts(&topo.a_path(), B_IP, 7000, 40));
    eprintln!(
        "delay: baseline {baseline:.3} ms, with 100 ms delay {delayed:.3} ms, after {after:.3} ms"
    );
    let added = delayed - baseline;
    assert!(
        (90.0..=110.0).contains(&added),
        "added {added:.2} ms, expected 100 ± 10 %"
    );
    assert!(
        after < baseline + 5.0,
        "after removal {after:.3} ms vs baseline {baseline:.3} ms"
    );
    topo.assert_clean();
}

#[test]
fn jitter_spreads_round_trips() {
    let topo = Topology::new("jitter");
    let _server = EchoServer::start(&topo.b_path(), B_IP, 7000);
    let inj = injector();
    let mut f = topo.fault(NetworkAction::Delay);
    f.latency_ms = 50.0;
    f.jitter_ms = 20.0;
    let active = apply(&inj, "jitter", f);
    let samples = tcp_rtts(&topo.a_path(), B_IP, 7000, 40);
    remove(&inj, active);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let sd =
        (samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / samples.len() as f64).sqrt();
    let min = samples.iter().cloned().fold(f64::MAX, f64::min);
    let max = samples.iter().cloned().fold(0.0, f64::max);
    eprintln!("jitter: 50 ± 20 ms → mean {mean:.1} ms, sd {sd:.1} ms, min {min:.1}, max {max:.1}");
    assert!((42.0..=60.0).contains(&mean), "mean {mean:.1} ms");
    assert!(sd > 6.0, "jitter must spread round trips, sd {sd:.2} ms");
    assert!(min < 40.0 && max > 60.0, "range {min:.1}–{max:.1} ms");
    // The engine never holds a packet for less than 30 ms; the top end also carries
    // scheduling noise of a busy CI machine, so it is bounded loosely.
    assert!(
        min >= 29.0 && max <= 95.0,
        "range {min:.1}–{max:.1} ms beyond 50 ± 20 ms"
    );
    topo.assert_clean();
}

#[test]
fn loss_drops_30_percent_of_udp() {
    let topo = Topology::new("loss");
    let inj = injector();
    let mut f = topo.fault(NetworkAction::Loss);
    f.percent = 30.0;
    let active = apply(&inj, "loss-30", f);
    let mechanism = active.plan.mechanism.clone();
    let (seqs, _) = udp_run(&topo.a_path(), &topo.b_path(), B_IP, 6000, 3000);
    remove(&inj, active);
    let loss = 100.0 * (1.0 - seqs.len() as f64 / 3000.0);
    let (after, _) = udp_run(&topo.a_path(), &topo.b_path(), B_IP, 6001, 1000);
    eprintln!("loss via {mechanism}: {loss:.1} % of 3000 datagrams lost; after removal {} of 1000 arrived", after.len());
    assert!(
        (25.0..=35.0).contains(&loss),
        "loss {loss:.1} %, expected 30 ± 5"
    );
    assert_eq!(after.len(), 1000);
    topo.assert_clean();
}

#[test]
fn loss_through_the_nfqueue_engine_with_correlation() {
    let topo = Topology::new("lossq");
    let inj = injector();
    let mut f = topo.fault(NetworkAction::Loss);
    f.percent = 30.0;
    f.correlation_pct = 25.0;
    let active = apply(&inj, "loss-corr", f);
    let mechanism = active.plan.mechanism.clone();
    let (seqs, _) = udp_run(&topo.a_path(), &topo.b_path(), B_IP, 6000, 2000);
    remove(&inj, active);
    let loss = 100.0 * (1.0 - seqs.len() as f64 / 2000.0);
    eprintln!("correlated loss via {mechanism}: {loss:.1} % of 2000 lost");
    let expected = if mechanisms().netem {
        "tc-netem"
    } else {
        "nfqueue"
    };
    assert_eq!(mechanism, expected);
    // Correlation makes losses bursty but keeps their long-run rate.
    assert!(
        (24.0..=36.0).contains(&loss),
        "loss {loss:.1} %, expected 30 ± 6"
    );
    topo.assert_clean();
}

#[test]
fn partition_to_blocks_egress_only() {
    let topo = Topology::new("part");
    let inj = injector();
    let mut f = topo.fault(NetworkAction::Partition);
    f.filter.cidrs = vec!["198.18.0.2".into()];
    f.filter.direction = TrafficDirection::To;
    let active = apply(&inj, "partition-to", f);
    let (out, _) = udp_run(&topo.a_path(), &topo.b_path(), B_IP, 6000, 200);
    let (inbound, _) = udp_run(&topo.b_path(), &topo.a_path(), A_IP, 6001, 200);
    let (other_peer, _) = udp_run(&topo.a_path(), &topo.b_path(), B_IP2, 6002, 200);
    remove(&inj, active);
    let (out_after, _) = udp_run(&topo.a_path(), &topo.b_path(), B_IP, 6003, 200);
    eprintln!(
        "partition to 198.18.0.2: egress {} / 200, ingress {} / 200, other peer {} / 200, after removal {} / 200",
        out.len(),
        inbound.len(),
        other_peer.len(),
        out_after.len()
    );
    assert_eq!(out.len(), 0, "egress to the peer must be blocked");
    assert_eq!(inbound.len(), 200, "ingress must still work");
    assert_eq!(other_peer.len(), 200, "other peers are not partitioned");
    assert_eq!(out_after.len(), 200);
    topo.assert_clean();
}

#[test]
fn partition_from_blocks_ingress_only() {
    let topo = Topology::new("partf");
    let inj = injector();
    let mut f = topo.fault(NetworkAction::Partition);
    f.filter.direction = TrafficDirection::From;
    let active = apply(&inj, "partition-from", f);
    let (out, _) = udp_run(&topo.a_path(), &topo.b_path(), B_IP, 6000, 200);
    let (inbound, _) = udp_run(&topo.b_path(), &topo.a_path(), A_IP, 6001, 200);
    remove(&inj, active);
    eprintln!(
        "partition from all: egress {} / 200, ingress {} / 200",
        out.len(),
        inbound.len()
    );
    assert_eq!(out.len(), 200);
    assert_eq!(inbound.len(), 0);
    topo.assert_clean();
}

#[test]
fn port_blackhole_blocks_only_the_port() {
    let topo = Topology::new("bh");
    let inj = injector();
    let mut f = topo.fault(NetworkAction::PortBlackhole);
    f.filter.local_ports = vec![7001];
    f.filter.direction = TrafficDirection::From;
    let active = apply(&inj, "blackhole", f);
    let (blocked, _) = udp_run(&topo.b_path(), &topo.a_path(), A_IP, 7001, 200);
    let (open, _) = udp_run(&topo.b_path(), &topo.a_path(), A_IP, 7002, 200);
    remove(&inj, active);
    let (after, _) = udp_run(&topo.b_path(), &topo.a_path(), A_IP, 7001, 200);
    eprintln!(
        "blackhole :7001 → {} / 200; :7002 → {} / 200; after {} / 200",
        blocked.len(),
        open.len(),
        after.len()
    );
    assert_eq!(blocked.len(), 0);
    assert_eq!(open.len(), 200);
    assert_eq!(after.len(), 200);
    topo.assert_clean();
}

#[test]
fn bandwidth_limits_bulk_tcp_to_the_rate() {
    let topo = Topology::new("bw");
    let inj = injector();
    let mut f = topo.fault(NetworkAction::Bandwidth);
    f.rate_bps = 8_000_000;
    f.buffer_bytes = 20_000;
    f.limit_bytes = 200_000;
    f.device = Some("veth0".into());
    let active = apply(&inj, "bw-8mbit", f);
    let shaped = shaped_throughput(&topo.a_path(), &topo.b_path(), B_IP, 7100, 2.0, 0.85e6);
    let mechanism = active.plan.mechanism.clone();
    remove(&inj, active);
    let free = tcp_throughput(&topo.a_path(), &topo.b_path(), B_IP, 7101, 0.5);
    let mbit = shaped * 8.0 / 1e6;
    eprintln!("bandwidth via {mechanism}: 8 Mbit/s → {mbit:.2} Mbit/s goodput; after removal {:.0} Mbit/s", free * 8.0 / 1e6);
    // Goodput excludes TCP/IP/Ethernet headers (~4 % at full frames), still within 15 %.
    assert!(
        (6.8..=9.2).contains(&mbit),
        "{mbit:.2} Mbit/s not within 8 ± 15 %"
    );
    assert!(
        free > shaped * 3.0,
        "after removal the link must be fast again"
    );
    topo.assert_clean();
}

#[test]
fn bandwidth_to_one_peer_leaves_the_others_alone() {
    let topo = Topology::new("bwpeer");
    let inj = injector();
    let mut f = topo.fault(NetworkAction::Bandwidth);
    f.rate_bps = 8_000_000;
    f.buffer_bytes = 20_000;
    f.filter.cidrs = vec!["198.18.0.2".into()];
    f.filter.protocol = Some("tcp".into());
    let active = apply(&inj, "bw-peer", f);
    let mechanism = active.plan.mechanism.clone();
    let shaped = shaped_throughput(&topo.a_path(), &topo.b_path(), B_IP, 7103, 2.0, 0.85e6);
    let other = tcp_throughput(&topo.a_path(), &topo.b_path(), B_IP2, 7104, 0.5);
    remove(&inj, active);
    let mbit = shaped * 8.0 / 1e6;
    eprintln!(
        "bandwidth via {mechanism} to 198.18.0.2: {mbit:.2} Mbit/s; to 198.18.0.3: {:.0} Mbit/s",
        other * 8.0 / 1e6
    );
    assert_eq!(mechanism, "tc-htb");
    assert!(
        (6.8..=9.2).contains(&mbit),
        "{mbit:.2} Mbit/s not within 8 ± 15 %"
    );
    assert!(other > shaped * 3.0, "the other peer must not be shaped");
    topo.assert_clean();
}

#[test]
fn bandwidth_from_shapes_ingress_through_ifb() {
    if !mechanisms().ingress_ifb {
        panic!(
            "this test machine must offer ifb and the ingress qdisc: {:?}",
            mechanisms().notes
        );
    }
    let topo = Topology::new("bwin");
    let inj = injector();
    let mut f = topo.fault(NetworkAction::Bandwidth);
    f.rate_bps = 8_000_000;
    f.buffer_bytes = 20_000;
    f.limit_bytes = 200_000;
    f.filter.direction = TrafficDirection::From;
    let active = apply(&inj, "bw-in", f);
    let shaped = shaped_throughput(&topo.b_path(), &topo.a_path(), A_IP, 7102, 2.0, 0.85e6);
    remove(&inj, active);
    let mbit = shaped * 8.0 / 1e6;
    eprintln!("ingress bandwidth 8 Mbit/s → {mbit:.2} Mbit/s");
    assert!(
        (6.8..=9.2).contains(&mbit),
        "{mbit:.2} Mbit/s not within 8 ± 15 %"
    );
    topo.assert_clean();
}

#[test]
fn duplicate_sends_extra_copies() {
    let topo = Topology::new("dup");
    let inj = injector();
    let mut f = topo.fault(NetworkAction::Duplicate);
    f.percent = 50.0;
    let active = apply(&inj, "dup-50", f);
    let (seqs, _) = udp_run(&topo.a_path(), &topo.b_path(), B_IP, 6000, 1000);
    remove(&inj, active);
    let distinct: HashSet<u32> = seqs.iter().copied().collect();
    let extra = 100.0 * (seqs.len() - distinct.len()) as f64 / 1000.0;
    eprintln!(
        "duplicate 50 %: {} datagrams received for {} sent ({extra:.1} % duplicates)",
        seqs.len(),
        distinct.len()
    );
    assert_eq!(distinct.len(), 1000, "nothing is lost");
    assert!(
        (42.0..=58.0).contains(&extra),
        "duplicates {extra:.1} %, expected 50 ± 8"
    );
    topo.assert_clean();
}

#[test]
fn corrupt_damages_the_chosen_share() {
    let topo = Topology::new("corrupt");
    let inj = injector();
    let mut f = topo.fault(NetworkAction::Corrupt);
    f.percent = 40.0;
    let active = apply(&inj, "corrupt-40", f);
    let (seqs, damaged) = udp_run(&topo.a_path(), &topo.b_path(), B_IP, 6000, 1000);
    remove(&inj, active);
    // A corrupted datagram is either dropped by a checksum check or delivered damaged.
    let hit = 100.0 * (1000 - seqs.len()) as f64 / 1000.0;
    eprintln!(
        "corrupt 40 %: {} intact, {damaged} damaged, {hit:.1} % hit",
        seqs.len()
    );
    assert!(
        (32.0..=48.0).contains(&hit),
        "corrupted {hit:.1} %, expected 40 ± 8"
    );
    topo.assert_clean();
}

#[test]
fn reorder_delivers_out_of_order() {
    let topo = Topology::new("reorder");
    let inj = injector();
    let mut f = topo.fault(NetworkAction::Reorder);
    f.percent = 50.0;
    f.latency_ms = 20.0;
    let active = apply(&inj, "reorder", f);
    let (seqs, _) = udp_run(&topo.a_path(), &topo.b_path(), B_IP, 6000, 500);
    remove(&inj, active);
    let mut max = None;
    let mut out_of_order = 0;
    for s in &seqs {
        match max {
            Some(m) if *s < m => out_of_order += 1,
            _ => max = Some(*s),
        }
    }
    eprintln!(
        "reorder 50 %: {} received, {out_of_order} out of order",
        seqs.len()
    );
    assert_eq!(seqs.len(), 500);
    assert!(
        out_of_order >= 100,
        "only {out_of_order} of 500 arrived out of order"
    );
    topo.assert_clean();
}

#[test]
fn nic_down_takes_the_link_down_and_back_up() {
    let topo = Topology::new("nic");
    let a = Some(topo.a.as_str());
    sh(
        a,
        "ip",
        &["route", "add", "198.19.0.0/24", "via", "198.18.0.2"],
    );
    let inj = injector();
    let mut f = topo.fault(NetworkAction::NicDown);
    f.device = Some("veth0".into());
    let active = apply(&inj, "nic-down", f);
    let link = sh(a, "ip", &["-o", "link", "show", "veth0"]);
    assert!(!link.contains(",UP") && !link.contains("<UP"), "{link}");
    let (during, _) = udp_run(&topo.a_path(), &topo.b_path(), B_IP, 6000, 50);
    remove(&inj, active);
    let link = sh(a, "ip", &["-o", "link", "show", "veth0"]);
    assert!(link.contains(",UP") || link.contains("<UP"), "{link}");
    let routes = sh(a, "ip", &["route", "show"]);
    assert!(
        routes.contains("198.19.0.0/24 via 198.18.0.2"),
        "static route restored: {routes}"
    );
    // The carrier comes back asynchronously.
    std::thread::sleep(Duration::from_millis(300));
    let (after, _) = udp_run(&topo.a_path(), &topo.b_path(), B_IP, 6001, 50);
    eprintln!(
        "nic down: {} / 50 during, {} / 50 after",
        during.len(),
        after.len()
    );
    assert_eq!(during.len(), 0);
    assert_eq!(after.len(), 50);
    topo.assert_clean();
}

/// A DNS server answering every A query with 203.0.113.7, on B_IP:53, until `stop`.
fn dns_server(topo: &Topology, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let handle = in_ns(&topo.b_path(), move || {
        let socket = UdpSocket::bind((B_IP, 53)).expect("bind dns server");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let _ = ready_tx.send(());
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::SeqCst) {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let mut reply = buf[..n].to_vec();
            reply[2] = 0x81;
            reply[3] = 0x80;
            reply[6..8].copy_from_slice(&1u16.to_be_bytes());
            reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 7]);
            let _ = socket.send_to(&reply, peer);
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(2))
        .expect("dns server ready");
    handle
}

/// Looks `name` up against B's server from namespace A; returns (rcode, first A address).
fn dns_lookup(topo: &Topology, name: &'static str) -> Option<(u8, Option<Ipv4Addr>)> {
    in_ns(&topo.a_path(), move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        socket.send_to(&q, (B_IP, 53)).unwrap();
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).ok()?;
        let rcode = buf[3] & 0x0f;
        let answers = u16::from_be_bytes([buf[6], buf[7]]);
        let addr = (answers > 0 && n >= q.len() + 16).then(|| {
            let a = &buf[q.len() + 12..q.len() + 16];
            Ipv4Addr::new(a[0], a[1], a[2], a[3])
        });
        Some((rcode, addr))
    })
    .join()
    .unwrap()
}

#[test]
fn dns_fault_fails_matching_names_only() {
    let topo = Topology::new("dns");
    let stop = Arc::new(AtomicBool::new(false));
    let server = dns_server(&topo, Arc::clone(&stop));
    let answer = Some((0, Some(Ipv4Addr::new(203, 0, 113, 7))));
    assert_eq!(dns_lookup(&topo, "blocked.example.com"), answer);

    let inj = injector();
    let mut f = topo.fault(NetworkAction::Dns);
    f.dns_patterns = vec!["blocked.*".into()];
    f.dns_mode = Some("error".into());
    let active = apply(&inj, "dns-error", f);
    let blocked = dns_lookup(&topo, "blocked.example.com");
    let allowed = dns_lookup(&topo, "allowed.example.com");
    remove(&inj, active);

    let mut f = topo.fault(NetworkAction::Dns);
    f.dns_patterns = vec!["*.example.com".into()];
    f.dns_mode = Some("random".into());
    let active = apply(&inj, "dns-random", f);
    let random = dns_lookup(&topo, "www.example.com");
    remove(&inj, active);
    let after = dns_lookup(&topo, "blocked.example.com");
    stop.store(true, Ordering::SeqCst);
    let _ = server.join();
    eprintln!("dns: blocked {blocked:?}, allowed {allowed:?}, random {random:?}, after {after:?}");
    assert_eq!(blocked, Some((2, None)), "matching name answered SERVFAIL");
    assert_eq!(allowed, answer);
    let (rcode, addr) = random.expect("random mode still answers");
    assert_eq!(rcode, 0);
    assert_ne!(
        addr,
        Some(Ipv4Addr::new(203, 0, 113, 7)),
        "random mode changes the address"
    );
    assert_eq!(after, answer);
    topo.assert_clean();
}

#[test]
fn two_faults_removing_one_leaves_the_other() {
    let topo = Topology::new("two");
    let inj = injector();
    let mut partition = topo.fault(NetworkAction::Partition);
    partition.filter.cidrs = vec!["198.18.0.3".into()];
    let p = apply(&inj, "two-partition", partition);
    let mut loss = topo.fault(NetworkAction::Loss);
    loss.filter.cidrs = vec!["198.18.0.2".into()];
    loss.percent = 50.0;
    let l = apply(&inj, "two-loss", loss);
    let (to_b, _) = udp_run(&topo.a_path(), &topo.b_path(), B_IP, 6000, 1000);
    let (to_b2, _) = udp_run(&topo.a_path(), &topo.b_path(), B_IP2, 6001, 200);
    let loss_plan = l.plan.clone();
    remove(&inj, l);
    assert!(
        inj.verify(&p.plan).unwrap(),
        "the partition is still in place"
    );
    assert!(!inj.verify(&loss_plan).unwrap());
    let (to_b_after, _) = udp_run(&topo.a_path(), &topo.b_path(), B_IP, 6002, 500);
    let (to_b2_after, _) = udp_run(&topo.a_path(), &topo.b_path(), B_IP2, 6003, 200);
    let tables = sh(Some(&topo.a), "nft", &["list", "tables"]);
    remove(&inj, p);
    eprintln!(
        "two faults: to .2 {} / 1000 (50 % loss), to .3 {} / 200 (partition); after removing loss: .2 {} / 500, .3 {} / 200",
        to_b.len(),
        to_b2.len(),
        to_b_after.len(),
        to_b2_after.len()
    );
    assert!((400..=600).contains(&to_b.len()));
    assert_eq!(to_b2.len(), 0);
    assert_eq!(to_b_after.len(), 500);
    assert_eq!(
        to_b2_after.len(),
        0,
        "removing the loss must not lift the partition"
    );
    assert_eq!(tables.matches("chaoshub_").count(), 1, "{tables}");
    topo.assert_clean();
}

#[test]
fn user_qdisc_table_and_rules_survive() {
    let topo = Topology::new("user");
    let a = Some(topo.a.as_str());
    // The user's own objects.
    sh(a, "nft", &["add table inet user_table\nadd chain inet user_table c { type filter hook input priority 0; policy accept; }\nadd rule inet user_table c tcp dport 9999 counter accept"]);
    sh(
        a,
        "iptables",
        &[
            "-w",
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            "9998",
            "-m",
            "comment",
            "--comment",
            "user-rule",
            "-j",
            "ACCEPT",
        ],
    );
    sh(
        a,
        "tc",
        &[
            "qdisc", "add", "dev", "veth0", "root", "handle", "1:", "tbf", "rate", "100mbit",
            "burst", "64kb", "limit", "256kb",
        ],
    );
    let snapshot = || {
        (
            sh(a, "nft", &["list", "table", "inet", "user_table"]),
            sh(a, "iptables", &["-w", "-S", "INPUT"]),
            sh(a, "tc", &["qdisc", "show", "dev", "veth0"]),
        )
    };
    let before = snapshot();

    let inj = injector();
    // A tc fault on a device with the user's root qdisc is refused, naming it.
    let mut bw = topo.fault(NetworkAction::Bandwidth);
    bw.rate_bps = 1_000_000;
    bw.device = Some("veth0".into());
    let err = inj
        .plan("user-bw", &AgentFault::Network(bw))
        .expect_err("must refuse to replace a user's qdisc");
    assert!(err.to_string().contains("tbf 1:"), "{err}");

    // Firewall-based faults coexist with the user's table and rules.
    let mut partition = topo.fault(NetworkAction::Partition);
    partition.filter.cidrs = vec!["198.18.0.3".into()];
    let p = apply(&inj, "user-partition", partition);
    let mut delay = topo.fault(NetworkAction::Delay);
    delay.latency_ms = 5.0;
    let d = apply(&inj, "user-delay", delay);
    let no_nft = KernelMechanisms {
        nftables: false,
        nft_numgen: false,
        ..mechanisms().clone()
    };
    let ipt = NetworkInjector::real(no_nft);
    let mut loss = topo.fault(NetworkAction::Loss);
    loss.percent = 10.0;
    let l = apply(&ipt, "user-loss", loss);
    assert_eq!(l.plan.mechanism, "iptables-statistic");
    remove(&ipt, l);
    remove(&inj, d);
    remove(&inj, p);
    let after = snapshot();
    assert_eq!(before.0, after.0, "user's nft table changed");
    assert_eq!(before.1, after.1, "user's iptables rules changed");
    assert_eq!(
        before.2.split_whitespace().take(3).collect::<Vec<_>>(),
        after.2.split_whitespace().take(3).collect::<Vec<_>>(),
        "user's qdisc changed"
    );
    assert!(after.2.contains("tbf 1: root"));
}

#[test]
fn remove_after_an_agent_restart_works_from_the_plan_alone() {
    let topo = Topology::new("restart");
    let _server = EchoServer::start(&topo.b_path(), B_IP, 7000);
    let inj = injector();
    let mut f = topo.fault(NetworkAction::Delay);
    f.latency_ms = 50.0;
    let active = apply(&inj, "restart-delay", f);
    // The journal holds the plan as JSON; the agent dies and its worker with it.
    let journalled = serde_json::to_string(&active.plan).unwrap();
    if let Some(worker) = active.worker {
        worker.stop();
    }
    drop(inj);
    let plan: Plan = serde_json::from_str(&journalled).unwrap();
    let undo: NetworkUndo = serde_json::from_value(plan.undo.clone()).unwrap();
    let restarted = injector();
    if undo.engine.is_some() {
        assert!(
            !restarted.verify(&plan).unwrap(),
            "a dead worker fails verification"
        );
        // --queue-bypass: with the worker gone, traffic flows undelayed even before removal.
        let rtt = median(&tcp_rtts(&topo.a_path(), B_IP, 7000, 10));
        assert!(rtt < 20.0, "rtt {rtt:.2} ms with the queue unbound");
    }
    restarted.remove(&plan).expect("remove from the journal");
    topo.assert_clean();
}
