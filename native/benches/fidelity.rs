//! Fault fidelity (issue 21, goal 6): what the agent's faults do, against what was asked, and
//! the NFQUEUE delay engine's added jitter and throughput ceiling.
//!
//! `cargo bench -p chaos-agent --bench fidelity` (`-- --quick`: fewer samples). Needs root. The
//! bench drives the agent's fault table in-process (as `chaos-agent serve` does: plan, journal,
//! apply, read back) between two network namespaces it creates and deletes (a veth pair on
//! 198.18.251.0/30; the host's interfaces are never touched):
//!
//! - **delay** 10 / 50 / 100 / 200 ms: one-way delay of UDP datagrams from A to B, timed in
//!   this process (sender and receiver share one monotonic clock), median against the
//!   baseline, and the added jitter (standard deviation beyond the baseline's);
//! - **loss** 10 / 30 / 50 %: share of datagrams that did not arrive;
//! - **bandwidth** 8 / 32 Mbit/s: TCP goodput received in B;
//! - **CPU** 1 worker at load 50 / 100: CPU time of the stress processes per second;
//! - **NFQUEUE ceiling**: datagrams at rising rates through a 100 ms delay: delivered share and
//!   one-way delay p50 / p99 per rate.
//!
//! Goal: delay within ± (2 % + 1 ms), loss and CPU within ± 2 points. Results:
//! docs/benchmarks.md, section "Fault fidelity".

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chaos_agent::daemon::faults::FaultTable;
use chaos_agent::injectors::{self, InjectorOptions};
use chaos_agent::journal::Journal;
use chaoshub_schema::agent::{
    AgentFault, CpuStress, NetnsRef, NetworkAction, NetworkFault, StressFault,
};

const A_IP: &str = "198.18.251.1";
const B_IP: &str = "198.18.251.2";
const ECHO_PORT: u16 = 7000;
const SINK_PORT: u16 = 7001;

/// Two namespaces joined by a veth pair, deleted on drop (also when the bench panics).
struct Lab {
    a: String,
    b: String,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip").args(args).status().map(|s| s.success());
    assert!(matches!(ok, Ok(true)), "ip {}", args.join(" "));
}

impl Lab {
    fn new() -> Lab {
        let id = std::process::id();
        let lab = Lab {
            a: format!("chaoshub-fid-a-{id}"),
            b: format!("chaoshub-fid-b-{id}"),
        };
        ip(&["netns", "add", &lab.a]);
        ip(&["netns", "add", &lab.b]);
        ip(&[
            "-n", &lab.a, "link", "add", "fa", "type", "veth", "peer", "name", "fb",
        ]);
        ip(&["-n", &lab.a, "link", "set", "fb", "netns", &lab.b]);
        ip(&[
            "-n",
            &lab.a,
            "addr",
            "add",
            &format!("{A_IP}/30"),
            "dev",
            "fa",
        ]);
        ip(&[
            "-n",
            &lab.b,
            "addr",
            "add",
            &format!("{B_IP}/30"),
            "dev",
            "fb",
        ]);
        for (ns, dev) in [(&lab.a, "fa"), (&lab.b, "fb")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        lab
    }
}

/// Runs `f` on a thread inside namespace `ns`.
fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("setns {path}: {e}"));
        f()
    })
}

/// What B received: datagrams counted, with their one-way delays (from the send time each
/// carries, on this process's clock), and TCP bytes.
struct Receiver {
    epoch: Instant,
    datagrams: AtomicU64,
    delays_us: Mutex<Vec<u64>>,
    tcp_bytes: AtomicU64,
    stop: AtomicBool,
}

impl Receiver {
    fn start(lab: &Lab) -> Arc<Receiver> {
        let rx = Arc::new(Receiver {
            epoch: Instant::now(),
            datagrams: AtomicU64::new(0),
            delays_us: Mutex::new(Vec::new()),
            tcp_bytes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let udp = Arc::clone(&rx);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let ready = ready_tx.clone();
        in_ns(&lab.b, move || {
            let socket = UdpSocket::bind((B_IP, ECHO_PORT)).unwrap();
            // Room for a burst of 100 ms at the highest rate, so the receiver is not what drops.
            let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(8 << 20);
            socket
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            ready.send(()).unwrap();
            let mut buf = [0u8; 64];
            while !udp.stop.load(Ordering::Relaxed) {
                let Ok(n) = socket.recv(&mut buf) else {
                    continue;
                };
                if n < 8 {
                    continue;
                }
                let sent = u64::from_le_bytes(buf[..8].try_into().unwrap());
                let now = udp.epoch.elapsed().as_micros() as u64;
                udp.datagrams.fetch_add(1, Ordering::Relaxed);
                udp.delays_us.lock().unwrap().push(now.saturating_sub(sent));
            }
        });
        let tcp = Arc::clone(&rx);
        in_ns(&lab.b, move || {
            let listener = TcpListener::bind((B_IP, SINK_PORT)).unwrap();
            ready_tx.send(()).unwrap();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let tcp = Arc::clone(&tcp);
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = std::io::Read::read(&mut conn, &mut buf) {
                        if n == 0 {
                            break;
                        }
                        tcp.tcp_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                });
            }
        });
        ready_rx.recv().unwrap();
        ready_rx.recv().unwrap();
        rx
    }

    fn reset(&self) {
        self.datagrams.store(0, Ordering::Relaxed);
        self.delays_us.lock().unwrap().clear();
    }
}

/// Sends `count` datagrams from A to B at `rate` per second, each carrying its send time, then
/// waits `settle` for the last ones to arrive.
fn send(lab: &Lab, rx: &Arc<Receiver>, count: u64, rate: f64, settle: Duration) {
    let epoch = rx.epoch;
    in_ns(&lab.a, move || {
        let socket = UdpSocket::bind((A_IP, 0)).unwrap();
        let to: SocketAddr = format!("{B_IP}:{ECHO_PORT}").parse().unwrap();
        let start = Instant::now();
        for i in 0..count {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let mut payload = [0u8; 32];
            payload[..8].copy_from_slice(&(epoch.elapsed().as_micros() as u64).to_le_bytes());
            let _ = socket.send_to(&payload, to);
        }
    })
    .join()
    .unwrap();
    std::thread::sleep(settle);
}

fn sorted(mut v: Vec<u64>) -> Vec<f64> {
    v.sort_unstable();
    v.into_iter().map(|us| us as f64 / 1000.0).collect()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn stddev(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// CPU ticks (10 ms) used so far by each process whose command name starts with `stress-ng`.
fn stress_ticks() -> std::collections::HashMap<u32, u64> {
    let mut ticks = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.contains("(stress-ng") {
            continue;
        }
        let f: Vec<&str> = rest.split_whitespace().collect();
        let used = f.get(11).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        ticks.insert(pid, used);
    }
    ticks
}

/// Ticks used between two readings (a process that started in between counts from zero).
fn ticks_between(
    before: &std::collections::HashMap<u32, u64>,
    after: &std::collections::HashMap<u32, u64>,
) -> u64 {
    after
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum()
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "within"
    } else {
        "**outside**"
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let samples: u64 = if quick { 300 } else { 1000 };
    let lab = Lab::new();
    let rx = Receiver::start(&lab);
    let state = tempfile::tempdir().unwrap();
    let mechanisms = injectors::probe_mechanisms();
    let table = FaultTable::new(
        injectors::all(&mechanisms, &InjectorOptions::default(), state.path()),
        Journal::open(state.path()).unwrap(),
        mechanisms,
    );
    let netns = NetnsRef::Path(format!("/run/netns/{}", lab.a));
    let net = |action: NetworkAction, tune: &dyn Fn(&mut NetworkFault)| {
        let mut f = NetworkFault::new(action);
        f.netns = Some(netns.clone());
        f.device = Some("fa".into());
        f.filter.cidrs = vec![format!("{B_IP}/32")];
        tune(&mut f);
        AgentFault::Network(f)
    };
    let lease = || chrono::Utc::now() + chrono::Duration::seconds(600);
    let mut n = 0;
    let mut held = |fault: AgentFault, body: &mut dyn FnMut()| -> String {
        n += 1;
        let id = format!("fidelity-{n}");
        let mechanism = table.inject(&id, fault, lease()).expect("inject").mechanism;
        body();
        table.recover(&id).expect("recover");
        mechanism
    };

    // Delay: one-way, against the baseline.
    let rate = 200.0;
    rx.reset();
    send(&lab, &rx, samples, rate, Duration::from_millis(300));
    let base = sorted(std::mem::take(&mut *rx.delays_us.lock().unwrap()));
    let base_median = pct(&base, 0.5);
    let base_sd = stddev(&base);
    println!(
        "baseline one-way delay A→B: median {base_median:.3} ms, sd {base_sd:.3} ms ({} datagrams)",
        base.len()
    );
    println!("\n| fault | asked | observed | error | goal | mechanism | added jitter (sd) | n |");
    println!("|---|---:|---:|---:|---|---|---:|---:|");
    for ms in [10.0, 50.0, 100.0, 200.0] {
        rx.reset();
        let mechanism = held(
            net(NetworkAction::Delay, &|f| f.latency_ms = ms),
            &mut || {
                send(
                    &lab,
                    &rx,
                    samples,
                    rate,
                    Duration::from_millis(ms as u64 + 300),
                );
            },
        );
        let got = sorted(std::mem::take(&mut *rx.delays_us.lock().unwrap()));
        let added = pct(&got, 0.5) - base_median;
        let tolerance = ms * 0.02 + 1.0;
        let jitter = (stddev(&got).powi(2) - base_sd.powi(2)).max(0.0).sqrt();
        println!(
            "| delay | {ms} ms | +{added:.2} ms | {:+.2} ms | ± {tolerance:.1} ms: {} | {mechanism} | {jitter:.3} ms | {} |",
            added - ms,
            verdict((added - ms).abs() <= tolerance),
            got.len()
        );
    }

    // Loss: the share that never arrived.
    let loss_n = samples * 5;
    for percent in [10.0, 30.0, 50.0] {
        rx.reset();
        let mechanism = held(
            net(NetworkAction::Loss, &|f| f.percent = percent),
            &mut || {
                send(&lab, &rx, loss_n, 5000.0, Duration::from_millis(300));
            },
        );
        let arrived = rx.datagrams.load(Ordering::Relaxed);
        let lost = 100.0 * (1.0 - arrived as f64 / loss_n as f64);
        // One standard error of the observed share, for reading the error.
        let se = 100.0 * ((percent / 100.0) * (1.0 - percent / 100.0) / loss_n as f64).sqrt();
        println!(
            "| loss | {percent} % | {lost:.1} % | {:+.1} points (1 s.e. = {se:.1}) | ± 2 points: {} | {mechanism} | | {loss_n} |",
            lost - percent,
            verdict((lost - percent).abs() <= 2.0)
        );
    }

    // Bandwidth: TCP goodput into B.
    let window = if quick { 2 } else { 4 };
    for mbit in [8u64, 32] {
        let mut mbps = 0.0;
        let mechanism = held(
            net(NetworkAction::Bandwidth, &|f| {
                f.rate_bps = mbit * 1_000_000;
                f.limit_bytes = 64_000;
                f.buffer_bytes = 16_000;
            }),
            &mut || {
                let stop = Arc::new(AtomicBool::new(false));
                let sender_stop = Arc::clone(&stop);
                let sender = in_ns(&lab.a, move || {
                    let mut conn = TcpStream::connect((B_IP, SINK_PORT)).unwrap();
                    let chunk = vec![0u8; 16 * 1024];
                    while !sender_stop.load(Ordering::Relaxed) {
                        if std::io::Write::write_all(&mut conn, &chunk).is_err() {
                            break;
                        }
                    }
                });
                // Skip the first second (slow start, the bucket's burst).
                std::thread::sleep(Duration::from_secs(1));
                let start_bytes = rx.tcp_bytes.load(Ordering::Relaxed);
                let t = Instant::now();
                std::thread::sleep(Duration::from_secs(window));
                let bytes = rx.tcp_bytes.load(Ordering::Relaxed) - start_bytes;
                mbps = bytes as f64 * 8.0 / t.elapsed().as_secs_f64() / 1e6;
                stop.store(true, Ordering::Relaxed);
                // The sender ends once the fault is gone and its writes go through.
                drop(sender);
            },
        );
        let error = 100.0 * (mbps - mbit as f64) / mbit as f64;
        println!(
            "| bandwidth | {mbit} Mbit/s | {mbps:.2} Mbit/s | {error:+.1} % | (TCP goodput; headers excluded) | {mechanism} | | {window} s |"
        );
    }

    // CPU: time the stress processes use per second, per worker.
    for load in [50u32, 100] {
        let mut used = 0.0;
        let mechanism = held(
            AgentFault::Stress(StressFault {
                cpu: Some(CpuStress {
                    workers: 1,
                    load_pct: load,
                }),
                memory: None,
            }),
            &mut || {
                std::thread::sleep(Duration::from_millis(500));
                let before = stress_ticks();
                let t = Instant::now();
                std::thread::sleep(Duration::from_secs(window));
                used = ticks_between(&before, &stress_ticks()) as f64 / t.elapsed().as_secs_f64();
            },
        );
        println!(
            "| CPU (1 worker) | {load} % | {used:.1} % | {:+.1} points | ± 2 points: {} | {mechanism} | | {window} s |",
            used - load as f64,
            verdict((used - load as f64).abs() <= 2.0)
        );
    }

    // The NFQUEUE delay engine (or whatever this kernel's delay mechanism is) at rising rates.
    println!("\ndelay engine at 100 ms, rising rates ({window} s each):");
    println!("| rate (datagrams/s) | sent | delivered | one-way p50 | p99 | max | mechanism |");
    println!("|---:|---:|---:|---:|---:|---:|---|");
    for rate in [1_000u64, 5_000, 10_000, 20_000, 40_000] {
        rx.reset();
        let count = rate * window;
        let mechanism = held(
            net(NetworkAction::Delay, &|f| f.latency_ms = 100.0),
            &mut || {
                send(&lab, &rx, count, rate as f64, Duration::from_millis(600));
            },
        );
        let got = sorted(std::mem::take(&mut *rx.delays_us.lock().unwrap()));
        println!(
            "| {rate} | {count} | {:.1} % | {:.1} ms | {:.1} ms | {:.1} ms | {mechanism} |",
            100.0 * got.len() as f64 / count as f64,
            pct(&got, 0.5),
            pct(&got, 0.99),
            got.last().copied().unwrap_or(f64::NAN)
        );
    }
    rx.stop.store(true, Ordering::Relaxed);
    drop(table);
}
