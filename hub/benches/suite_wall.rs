//! `chaoshub run` of a one-case suite against the time its fault and probes take (issue 21,
//! goal 7).
//!
//! The hub runs in-process (SQLite on disk, auth on as shipped) and is already up; the real
//! Toxiproxy server relays a small HTTP upstream the bench serves. The suite has one case: a
//! ProxyChaos latency of 200 ms for 300 ms on that proxy, with one HTTP steady-state probe
//! through the proxy checked before, during and after the fault. Each round runs the real
//! `chaoshub run` binary as a child process and measures:
//! - its wall time, from spawn to exit;
//! - its CPU time (user + system, read from /proc while it is a zombie, before it is reaped);
//! - the hub's CPU time over the round (this process, minus nothing: the bench's own work is
//!   one spawn and a few /proc reads);
//! - the probe time the run journal records (sum of `durationMs` of every probe result), so the
//!   goal (wall ≤ fault duration + probe time + 50 ms) can be read off each round.
//!
//! Needs the Toxiproxy server (`chaoshub_testkit::toxiproxy_server()`).
//!
//! Run: `cargo bench -p chaoshub --bench suite_wall` (`-- --quick`: 3 rounds instead of 7).
//! Results: docs/benchmarks.md.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chaoshub::config::HubConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FAULT_MS: f64 = 300.0;

struct Toxiproxy(Child);

impl Drop for Toxiproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tiny HTTP/1.1 upstream answering `200 ok` to every request (keep-alive).
async fn serve_upstream(listener: tokio::net::TcpListener) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut seen = Vec::new();
            loop {
                let n = match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                seen.extend_from_slice(&buf[..n]);
                while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                    seen.drain(..end + 4);
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if socket.write_all(answer).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// utime + stime of a process in ms, from /proc/<pid>/stat; and its state letter.
fn cpu_ms(pid: u32) -> Option<(char, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields resume after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some((state, ticks * 10.0))
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn probe_ms(journal: &Value) -> f64 {
    let mut total = 0.0;
    for case in journal["cases"].as_array().into_iter().flatten() {
        for stage in ["before", "during", "after"] {
            for r in case["steadyState"][stage].as_array().into_iter().flatten() {
                total += r["durationMs"].as_f64().unwrap_or(0.0);
            }
        }
    }
    total
}

fn probe_count(journal: &Value) -> usize {
    journal["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|case| {
            ["before", "during", "after"]
                .iter()
                .map(|s| case["steadyState"][s].as_array().map_or(0, Vec::len))
                .sum::<usize>()
        })
        .sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 3 } else { 7 };
    let Some(binary) = chaoshub_testkit::toxiproxy_server() else {
        std::process::exit(0);
    };
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_port = upstream.local_addr().unwrap().port();
    tokio::spawn(serve_upstream(upstream));
    let api_port = free_port();
    let toxiproxy = Toxiproxy(
        Command::new(binary)
            .args(["-host", "127.0.0.1", "-port", &api_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the Toxiproxy server starts"),
    );
    let toxiproxy_url = format!("http://127.0.0.1:{api_port}");
    chaoshub_adapters::install_crypto_provider();
    let plain = reqwest::Client::builder()
        .user_agent("chaoshub-bench")
        .build()
        .unwrap();
    let started = Instant::now();
    while plain
        .get(format!("{toxiproxy_url}/version"))
        .send()
        .await
        .is_err()
    {
        assert!(started.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let proxy_port = free_port();
    let r = plain
        .post(format!("{toxiproxy_url}/proxies"))
        .json(
            &json!({"name": "web", "listen": format!("127.0.0.1:{proxy_port}"),
            "upstream": format!("127.0.0.1:{upstream_port}")}),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let dir = tempfile::tempdir().unwrap();
    let config = HubConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().join("data"),
        ..Default::default()
    };
    let hub = chaoshub::server::start(config).await.unwrap();
    let base = hub.url();
    let token = std::fs::read_to_string(dir.path().join("data").join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let client = reqwest::Client::new();
    let env = format!("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: proxies}}\nspec: {{adapter: toxiproxy, endpoint: \"{toxiproxy_url}\"}}\n");
    let r = client
        .post(format!("{base}/api/v1/environments"))
        .bearer_auth(&token)
        .header("content-type", "application/yaml")
        .body(env)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let suite = dir.path().join("suite.yaml");
    std::fs::write(
        &suite,
        format!(
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Suite\nmetadata: {{name: latency}}\nspec:\n  environments: [proxies]\n  steadyState:\n    probes:\n      - name: web-ok\n        http: {{url: \"http://127.0.0.1:{proxy_port}/\", timeout: 2s, expect: {{status: 200}}}}\n  experiments:\n    - name: slow-web\n      expect: hold\n      manifest: {{apiVersion: chaoshub.dev/v1alpha1, kind: ProxyChaos, metadata: {{name: slow-web}}, spec: {{action: latency, mode: all, selector: {{labelSelectors: {{name: web}}}}, latency: {{latency: 200, jitter: 0}}, duration: 300ms}}}}\n"
        ),
    )
    .unwrap();
    let journal_path = dir.path().join("run.json");

    let mut walls = Vec::new();
    let mut cli_cpu = Vec::new();
    let mut hub_cpu = Vec::new();
    let mut probes = Vec::new();
    println!("suite_wall: one case, ProxyChaos latency 200 ms for 300 ms, HTTP probe before/during/after");
    for round in 0..rounds + 1 {
        let hub_before = cpu_ms(std::process::id()).unwrap().1;
        let t0 = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_chaoshub"))
            .arg("run")
            .arg(&suite)
            .arg("--json")
            .arg(&journal_path)
            .env("CHAOSHUB_SERVER", &base)
            .env("CHAOSHUB_TOKEN", &token)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        // Until it is a zombie: its CPU times are final then, and still readable.
        let (wall, cpu) = loop {
            match cpu_ms(pid) {
                Some(('Z', cpu)) => break (t0.elapsed().as_secs_f64() * 1000.0, cpu),
                Some(_) => tokio::time::sleep(Duration::from_micros(500)).await,
                None => panic!("chaoshub run vanished before it could be read"),
            }
        };
        let status = child.wait().unwrap();
        assert!(status.success(), "chaoshub run failed: {status}");
        let hub_after = cpu_ms(std::process::id()).unwrap().1;
        let journal: Value =
            serde_json::from_str(&std::fs::read_to_string(&journal_path).unwrap()).unwrap();
        assert_eq!(journal["phase"], "Passed", "{journal}");
        let p = probe_ms(&journal);
        println!(
            "  round {round}{}: wall {wall:>7.1} ms, probes {p:>6.1} ms ({} results), budget (fault + probes + 50 ms) {:>6.1} ms, CLI CPU {cpu:>5.1} ms, hub CPU {:>5.1} ms",
            if round == 0 { " (warm-up)" } else { "" },
            probe_count(&journal),
            FAULT_MS + p + 50.0,
            hub_after - hub_before
        );
        if round > 0 {
            walls.push(wall);
            cli_cpu.push(cpu);
            hub_cpu.push(hub_after - hub_before);
            probes.push(p);
        }
    }
    let (w, p) = (median(&walls), median(&probes));
    println!(
        "median of {rounds}: wall {w:.1} ms; fault {FAULT_MS:.0} ms + probes {p:.1} ms + 50 ms = {:.1} ms budget ({}); CLI CPU {:.1} ms; hub CPU {:.1} ms per run",
        FAULT_MS + p + 50.0,
        if w <= FAULT_MS + p + 50.0 { "met" } else { "missed" },
        median(&cli_cpu),
        median(&hub_cpu)
    );
    hub.shutdown().await;
    drop(toxiproxy);
}
