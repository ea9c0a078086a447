//! Agent benchmarks (a bench binary, `cargo bench -p chaos-agent --bench agent`):
//!
//! 1. inject→confirmed latency per fault type: `FaultTable::inject` (plan, journal with fsync,
//!    apply, read back) and `recover`, 20 rounds each, in a scratch network namespace the bench
//!    creates and removes (network faults never touch the host's interfaces);
//! 2. idle cost of the daemon: `chaos-agent serve` without a hub, its resident memory and CPU
//!    time over 10 s.
//!
//! Needs root (network namespaces, tc, iptables). Results go to docs/benchmarks.md.

use std::process::Command;
use std::time::{Duration, Instant};

use chaos_agent::daemon::faults::FaultTable;
use chaos_agent::injectors::{self, InjectorOptions};
use chaos_agent::journal::Journal;
use chaoshub_schema::agent::{
    AgentFault, CpuStress, FileAction, FileFault, MemoryStress, NetnsRef, NetworkAction,
    NetworkFault, StressFault,
};

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip").args(args).status().map(|s| s.success());
    assert!(matches!(ok, Ok(true)), "ip {}", args.join(" "));
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 5 } else { 20 };
    let ns = Netns(format!("chaoshub-bench-{}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    ip(&[
        "-n", &ns.0, "link", "add", "bench0", "type", "veth", "peer", "name", "bench1",
    ]);
    ip(&[
        "-n",
        &ns.0,
        "addr",
        "add",
        "198.18.250.1/30",
        "dev",
        "bench0",
    ]);
    ip(&[
        "-n",
        &ns.0,
        "addr",
        "add",
        "198.18.250.2/30",
        "dev",
        "bench1",
    ]);
    ip(&["-n", &ns.0, "link", "set", "bench0", "up"]);
    ip(&["-n", &ns.0, "link", "set", "bench1", "up"]);
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
    let netns = NetnsRef::Path(format!("/run/netns/{}", ns.0));

    let state = tempfile::tempdir().unwrap();
    let mechanisms = injectors::probe_mechanisms();
    let table = FaultTable::new(
        injectors::all(&mechanisms, &InjectorOptions::default(), state.path()),
        Journal::open(state.path()).unwrap(),
        mechanisms,
    );
    let net = |action: NetworkAction, tune: &dyn Fn(&mut NetworkFault)| {
        let mut f = NetworkFault::new(action);
        f.netns = Some(netns.clone());
        f.device = Some("bench0".into());
        f.filter.cidrs = vec!["198.18.250.2/32".into()];
        tune(&mut f);
        AgentFault::Network(f)
    };
    let file_path = state.path().join("victim.txt");
    std::fs::write(&file_path, "hello\n").unwrap();
    let cases: Vec<(&str, AgentFault)> = vec![
        (
            "network/delay",
            net(NetworkAction::Delay, &|f| f.latency_ms = 100.0),
        ),
        (
            "network/loss",
            net(NetworkAction::Loss, &|f| f.percent = 30.0),
        ),
        ("network/partition", net(NetworkAction::Partition, &|_| {})),
        (
            "network/bandwidth",
            net(NetworkAction::Bandwidth, &|f| {
                f.rate_bps = 8_000_000;
                f.limit_bytes = 20_000;
                f.buffer_bytes = 10_000;
            }),
        ),
        (
            "stress/cpu",
            AgentFault::Stress(StressFault {
                cpu: Some(CpuStress {
                    workers: 1,
                    load_pct: 50,
                }),
                memory: None,
            }),
        ),
        (
            "stress/memory",
            AgentFault::Stress(StressFault {
                cpu: None,
                memory: Some(MemoryStress {
                    size_bytes: Some(32 << 20),
                    percent: None,
                    workers: 1,
                }),
            }),
        ),
        (
            "file/append",
            AgentFault::File(FileFault {
                action: FileAction::Append,
                path: file_path.display().to_string(),
                data: Some("chaos\n".into()),
                count: Some(1),
                mode: None,
                origin: None,
                dest: None,
            }),
        ),
    ];
    println!("| fault | mechanism | n | inject→confirmed p50 | p90 | max | recover p50 |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (label, fault) in cases {
        let mut inject = Vec::new();
        let mut recover = Vec::new();
        let mut mechanism = String::new();
        for i in 0..rounds {
            let id = format!("bench-{label}-{i}");
            let lease = chrono::Utc::now() + chrono::Duration::seconds(60);
            let t = Instant::now();
            match table.inject(&id, fault.clone(), lease) {
                Ok(s) => mechanism = s.mechanism,
                Err(e) => {
                    println!("| {label} | refused: {e} | | | | | |");
                    break;
                }
            }
            inject.push(t.elapsed());
            let t = Instant::now();
            table.recover(&id).unwrap();
            recover.push(t.elapsed());
        }
        if inject.is_empty() {
            continue;
        }
        inject.sort();
        recover.sort();
        println!(
            "| {label} | {mechanism} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
            inject.len(),
            percentile(&inject, 0.5).as_secs_f64() * 1000.0,
            percentile(&inject, 0.9).as_secs_f64() * 1000.0,
            inject.last().unwrap().as_secs_f64() * 1000.0,
            percentile(&recover, 0.5).as_secs_f64() * 1000.0,
        );
    }
    drop(table);

    // Idle daemon: RSS and CPU over a window, without a hub.
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("chaos-agent"))
        .unwrap();
    if !bin.exists() {
        println!("\n(idle daemon not measured: build the binary first with `cargo build --release -p chaos-agent`)");
        return;
    }
    let daemon_state = tempfile::tempdir().unwrap();
    let mut child = Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(daemon_state.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let ticks = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        f.get(11).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
    };
    let window = if quick { 3 } else { 10 };
    let before = ticks(child.id());
    std::thread::sleep(Duration::from_secs(window));
    let used = ticks(child.id()) - before;
    let rss = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .unwrap_or("VmRSS: ?")
        .to_string();
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "\nidle daemon ({}): {rss}; CPU {:.2} % of one core over {window} s",
        bin.display(),
        used as f64 / (window as f64 * 100.0) * 100.0
    );
}
