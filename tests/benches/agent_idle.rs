//! An agent at rest (issue 21, goal 4): `chaos-agent serve` connected to a real `chaoshub serve`,
//! no faults, measured over a 60 s window from /proc:
//! - CPU time (utime + stime of the whole process, in clock ticks of 10 ms; and the sum of its
//!   threads' `schedstat` run time, in ns) as a share of one core;
//! - wake-ups: voluntary + involuntary context switches of all its threads, per second (a count
//!   that does not depend on how loaded the machine is);
//! - resident memory (VmRSS) and its peak (VmHWM).
//!
//! Needs the release binaries of this checkout:
//! `cargo build --release -p chaoshub --bin chaoshub -p chaos-agent --bin chaos-agent`
//! (or `CHAOSHUB_BIN` / `CHAOS_AGENT_BIN`). Run:
//! `cargo bench -p chaoshub-e2e --bench agent_idle` (`-- --quick`: a 20 s window).
//! Results: docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn binary(var: &str, name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(var) {
        return PathBuf::from(path);
    }
    // This bench runs from <target>/release/deps/.
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join(name);
    if !path.exists() {
        eprintln!(
            "{} not found: build it first with `cargo build --release -p chaoshub --bin chaoshub -p chaos-agent --bin chaos-agent`, or set {var}",
            path.display()
        );
        std::process::exit(1);
    }
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_file(path: &Path, what: &str) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.trim().is_empty() {
                return text.trim().to_string();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What /proc says about a process at one instant.
struct Sample {
    ticks: u64,
    run_ns: u64,
    switches: u64,
}

fn sample(pid: u32) -> Sample {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let mut run_ns = 0;
    let mut switches = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) {
            run_ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
            for line in status.lines() {
                if line.starts_with("voluntary_ctxt_switches:")
                    || line.starts_with("nonvoluntary_ctxt_switches:")
                {
                    switches += line
                        .split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
    }
    Sample {
        ticks,
        run_ns,
        switches,
    }
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let window = Duration::from_secs(if quick { 20 } else { 60 });
    let hub_bin = binary("CHAOSHUB_BIN", "chaoshub");
    let agent_bin = binary("CHAOS_AGENT_BIN", "chaos-agent");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n").unwrap();
    let addr_file = dir.path().join("addr");
    let _hub = Killed(
        Command::new(&hub_bin)
            .env("CHAOSHUB_RUNTIME_DIR", dir.path().join("runtime"))
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--addr-file")
            .arg(&addr_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chaoshub serve starts"),
    );
    let hub_url = format!("http://{}", wait_for_file(&addr_file, "the hub"));
    let token = wait_for_file(&dir.path().join("data/admin.token"), "the hub");
    // reqwest is built without a rustls provider of its own (`rustls-no-provider`).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::new();
    // The agent's environment, and a join token it is admitted with (as an operator would).
    let registered = client
        .post(format!("{hub_url}/api/v1/environments"))
        .bearer_auth(&token)
        .header("content-type", "application/yaml")
        .body("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: idle}\nspec: {adapter: native}\n")
        .send()
        .expect("the hub answers");
    assert_eq!(
        registered.status().as_u16(),
        201,
        "registering environment idle"
    );
    let join: serde_json::Value = client
        .post(format!("{hub_url}/api/v1/environments/idle/join-tokens"))
        .bearer_auth(&token)
        .send()
        .and_then(|r| r.json())
        .expect("a join token");
    let join_file = dir.path().join("join.token");
    std::fs::write(&join_file, join["token"].as_str().expect("the join token")).unwrap();
    let state = dir.path().join("agent-state");
    std::fs::create_dir_all(&state).unwrap();
    let agent = Killed(
        Command::new(&agent_bin)
            .args([
                "serve",
                "--hub",
                &hub_url,
                "--env",
                "idle",
                "--name",
                "idle-bench",
            ])
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--state-dir")
            .arg(&state)
            .arg("--join-token-file")
            .arg(&join_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chaos-agent serve starts"),
    );
    let pid = agent.0.id();
    let started = Instant::now();
    loop {
        let agents: serde_json::Value = client
            .get(format!("{hub_url}/api/v1/agents"))
            .bearer_auth(&token)
            .send()
            .and_then(|r| r.json())
            .unwrap_or_default();
        let healthy = agents["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["name"] == "idle-bench" && a["health"] == "healthy");
        if healthy {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the agent did not register as healthy: {agents}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Start-up work (mechanism probing, registration) is over before the window opens.
    std::thread::sleep(Duration::from_secs(3));
    let before = sample(pid);
    std::thread::sleep(window);
    let after = sample(pid);
    let secs = window.as_secs_f64();
    let tick_pct = (after.ticks - before.ticks) as f64 * 10.0 / (secs * 1000.0) * 100.0;
    let run_pct = (after.run_ns - before.run_ns) as f64 / (secs * 1e9) * 100.0;
    println!(
        "agent_idle: chaos-agent serve connected to chaoshub serve, no faults, {:.0} s window",
        secs
    );
    println!(
        "  CPU {run_pct:.3} % of one core (threads' run time), {tick_pct:.3} % (clock ticks, 10 ms each: {} ticks)",
        after.ticks - before.ticks
    );
    println!(
        "  wake-ups (context switches, all threads): {:.1}/s",
        (after.switches - before.switches) as f64 / secs
    );
    println!(
        "  resident: {:.1} MiB now, {:.1} MiB peak",
        status_kib(pid, "VmRSS:") as f64 / 1024.0,
        status_kib(pid, "VmHWM:") as f64 / 1024.0
    );
}
