//! What the hub adds to a fault, side by side with the far side's own cost (issue 21, goal 1).
//!
//! One bench run, rounds interleaved so the machine's load falls on both sides alike:
//! - **direct**: a latency toxic added to the real Toxiproxy server and read back
//!   (`POST /proxies/web/toxics` + `GET /proxies/web/toxics/{name}`) over one kept-alive
//!   connection;
//! - **hub**: the same fault as a ProxyChaos submitted to the real hub (in-process, SQLite store
//!   on disk, auth on as shipped), from the start of `POST /api/v1/experiments` until its
//!   `chaoshub.experiment.running` event arrives on `GET /api/v1/events/stream` (SSE).
//!
//! Each hub round is stopped and its recovery awaited before the next round, so the phase
//! spans recorded between a submission and its event belong to that submission alone: the
//! bench prints, per submission, how many times each span ran and its mean wall time (the hub's
//! own `tracing` spans: `hub.submit`, `engine.pass`, `engine.discover`, `engine.inject`,
//! `engine.confirm`, `engine.save`, `toxiproxy.call`, …). Counts do not depend on the machine's
//! load; durations do.
//!
//! Needs the Toxiproxy server (`chaoshub_testkit::toxiproxy_server()`: `$TOXIPROXY_SERVER`, PATH
//! or `../shared/tools/toxiproxy/toxiproxy-server`).
//!
//! Run: `cargo bench -p chaoshub --bench submit_latency` (`-- --quick` for 30 rounds instead of
//! 200). Results: docs/benchmarks.md.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chaoshub::config::HubConfig;
use chaoshub_testkit::bench::percentile;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Per span name: how many closed, and their total wall time (creation to close).
#[derive(Default, Clone)]
struct SpanTotals(BTreeMap<&'static str, (u64, Duration)>);

impl SpanTotals {
    fn since(&self, before: &SpanTotals) -> SpanTotals {
        let mut out = BTreeMap::new();
        for (name, (count, total)) in &self.0 {
            let (c0, t0) = before.0.get(name).copied().unwrap_or_default();
            if count > &c0 {
                out.insert(*name, (count - c0, total.saturating_sub(t0)));
            }
        }
        SpanTotals(out)
    }

    fn add(&mut self, other: &SpanTotals) {
        for (name, (count, total)) in &other.0 {
            let entry = self.0.entry(name).or_default();
            entry.0 += count;
            entry.1 += *total;
        }
    }
}

/// A `tracing` layer that times every span from creation to close.
#[derive(Clone, Default)]
struct SpanTimer(Arc<Mutex<SpanTotals>>);

struct Created(Instant);

impl SpanTimer {
    fn snapshot(&self) -> SpanTotals {
        self.0.lock().unwrap().clone()
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanTimer {
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Created(Instant::now()));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(elapsed) = span.extensions().get::<Created>().map(|c| c.0.elapsed()) else {
            return;
        };
        let mut totals = self.0.lock().unwrap();
        let entry = totals.0.entry(span.name()).or_default();
        entry.0 += 1;
        entry.1 += elapsed;
    }
}

fn summary(name: &str, values: &[f64]) -> (f64, f64) {
    let mut values = values.to_vec();
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (p50, p99) = (percentile(&values, 50.0), percentile(&values, 99.0));
    println!(
        "{name:<44} n={:<4} p50={p50:>7.3} ms p90={:>7.3} ms p99={p99:>7.3} ms max={:>7.3} ms",
        values.len(),
        percentile(&values, 90.0),
        values.last().copied().unwrap_or(f64::NAN)
    );
    (p50, p99)
}

/// The Toxiproxy server, killed when dropped.
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

async fn start_toxiproxy(client: &reqwest::Client) -> (Toxiproxy, String) {
    let Some(binary) = chaoshub_testkit::toxiproxy_server() else {
        // The locator said why (and panics under CI=true).
        std::process::exit(0);
    };
    let port = free_port();
    let child = Command::new(binary)
        .args(["-host", "127.0.0.1", "-port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the Toxiproxy server starts");
    let server = Toxiproxy(child);
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while client.get(format!("{base}/version")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "Toxiproxy did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The user's proxy; its upstream need not answer for toxics to be added and read back.
    let upstream = free_port();
    let r = client
        .post(format!("{base}/proxies"))
        .json(&json!({"name": "web", "listen": "127.0.0.1:0", "upstream": format!("127.0.0.1:{upstream}")}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "proxy created: {}", r.status());
    (server, base)
}

/// One direct round: add a latency toxic and read it back; then remove it (not timed).
async fn direct_round(client: &reqwest::Client, base: &str, i: usize) -> f64 {
    let name = format!("direct-{i}");
    let toxic = json!({"name": name, "type": "latency", "stream": "downstream", "toxicity": 1.0,
        "attributes": {"latency": 200, "jitter": 0}});
    let t0 = Instant::now();
    let r = client
        .post(format!("{base}/proxies/web/toxics"))
        .json(&toxic)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    r.bytes().await.unwrap();
    let r = client
        .get(format!("{base}/proxies/web/toxics/{name}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["attributes"]["latency"], 200);
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let r = client
        .delete(format!("{base}/proxies/web/toxics/{name}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    ms
}

/// An event as it came off the SSE stream, with the instant it was read.
struct Seen {
    name: String,
    uid: Option<String>,
    at: Instant,
}

/// Reads the hub's SSE stream and forwards every event with the instant its last line arrived.
async fn follow_events(mut response: reqwest::Response, tx: mpsc::UnboundedSender<Seen>) {
    let mut buffer = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let at = Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut name = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            let Some(name) = name else { continue };
            let uid = serde_json::from_str::<Value>(&data)
                .ok()
                .and_then(|v| v["experimentUid"].as_str().map(str::to_string));
            if tx.send(Seen { name, uid, at }).is_err() {
                return;
            }
        }
    }
}

async fn wait_for(rx: &mut mpsc::UnboundedReceiver<Seen>, uid: &str, names: &[&str]) -> Instant {
    loop {
        let seen = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("an event within 30 s")
            .expect("the event stream stays open");
        if seen.uid.as_deref() == Some(uid) {
            if names.contains(&seen.name.as_str()) {
                return seen.at;
            }
            assert!(
                seen.name != "chaoshub.experiment.failed",
                "experiment {uid} failed (see its events)"
            );
        }
    }
}

fn proxy_chaos(i: usize) -> String {
    format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: ProxyChaos\nmetadata: {{name: hub-{i}}}\nspec:\n  environment: proxies\n  action: latency\n  mode: all\n  selector: {{labelSelectors: {{name: web}}}}\n  latency: {{latency: 200, jitter: 0}}\n  duration: 60s\n"
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let timer = SpanTimer::default();
    tracing_subscriber::registry().with(timer.clone()).init();
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 30 } else { 200 };
    let warmup = 5;

    chaoshub_adapters::install_crypto_provider();
    let direct = reqwest::Client::builder()
        .user_agent("chaoshub-bench")
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let (_toxiproxy, toxiproxy_url) = start_toxiproxy(&direct).await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = HubConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().join("data"),
        ..Default::default()
    };
    // `CHAOSHUB_BENCH_SYNCHRONOUS=normal` shows what the lifecycle fsyncs cost.
    if let Ok(level) = std::env::var("CHAOSHUB_BENCH_SYNCHRONOUS") {
        config.store.synchronous = level;
    }
    println!("store.synchronous = {}", config.store.synchronous);
    let hub = chaoshub::server::start(config).await.unwrap();
    let base = hub.url();
    let token = std::fs::read_to_string(dir.path().join("data").join("admin.token")).unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", token.trim()).parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let env = format!("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: proxies}}\nspec: {{adapter: toxiproxy, endpoint: \"{toxiproxy_url}\"}}\n");
    let r = client
        .post(format!("{base}/api/v1/environments"))
        .header("content-type", "application/yaml")
        .body(env)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "environment registered");
    let stream = client
        .get(format!("{base}/api/v1/events/stream"))
        .send()
        .await
        .unwrap();
    assert!(stream.status().is_success());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let follower = tokio::spawn(follow_events(stream, tx));

    let mut direct_ms = Vec::new();
    let mut hub_ms = Vec::new();
    let mut spans = SpanTotals::default();
    for i in 0..warmup + rounds {
        let d = direct_round(&direct, &toxiproxy_url, i).await;

        let before = timer.snapshot();
        let t0 = Instant::now();
        let resp = client
            .post(format!("{base}/api/v1/experiments"))
            .header("content-type", "application/yaml")
            .body(proxy_chaos(i))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "submitted: {}", resp.status());
        let created: Value = resp.json().await.unwrap();
        let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
        let running = wait_for(&mut rx, &uid, &["chaoshub.experiment.running"]).await;
        let h = (running - t0).as_secs_f64() * 1000.0;
        let round_spans = timer.snapshot().since(&before);

        let r = client
            .post(format!("{base}/api/v1/experiments/{uid}/stop"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        wait_for(&mut rx, &uid, &["chaoshub.experiment.aborted"]).await;
        if i >= warmup {
            direct_ms.push(d);
            hub_ms.push(h);
            spans.add(&round_spans);
        }
    }

    println!(
        "submit_latency: {rounds} rounds after {warmup} warm-up, Toxiproxy 2.12 latency toxic"
    );
    let (d50, d99) = summary("direct: add toxic + read back", &direct_ms);
    let (h50, h99) = summary("hub: submit -> running event (SSE)", &hub_ms);
    println!(
        "{:<44} p50={:>7.3} ms p99={:>7.3} ms",
        "added by the hub",
        h50 - d50,
        h99 - d99
    );
    println!("per submission (spans closed between the POST and its running event):");
    let n = rounds as f64;
    for (name, (count, total)) in &spans.0 {
        println!(
            "  {name:<28} {:>6.2} per submission, mean {:>8.3} ms each",
            *count as f64 / n,
            total.as_secs_f64() * 1000.0 / (*count).max(1) as f64
        );
    }
    // The open event stream would hold the hub's graceful shutdown.
    follower.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), hub.shutdown()).await;
}
