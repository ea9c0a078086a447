//! Authentication overhead bench: what checking the bearer token (and auditing the request)
//! adds per request on the submit path, through the real hub in-process (SQLite store on
//! disk) and an in-bench adapter that answers at once, so the hub is what is measured.
//!
//! Three hubs run side by side: one with `auth.mode = "none"` (loopback), one with tokens, and
//! one with tokens behind TLS (`tls.self_signed`, the client trusting its CA; one kept-alive
//! connection, so the handshake is paid once and what is measured is TLS per request).
//! Requests alternate between them in small rounds so that load on the machine affects all
//! alike. Measured per request, from send to the full answer:
//! - `POST /api/v1/experiments` (submit: validate, capabilities, store; with tokens also the
//!   token lookup and the audit entry);
//! - `GET /api/v1/experiments/{uid}` (a read: the token lookup and the scope check only).
//!
//! Run: `cargo bench -p chaoshub --bench auth_overhead` (`-- --quick` for a short run).
//! Results: docs/benchmarks.md, section "Authentication overhead".

use std::sync::Arc;
use std::time::Instant;

use chaoshub::config::HubConfig;
use chaoshub_adapters::AdapterRegistry;
use chaoshub_testkit::bench::percentile;
use serde_json::{json, Value};

#[path = "common/instant_adapter.rs"]
mod instant_adapter;
use instant_adapter::InstantAdapter;

struct BenchHub {
    _hub: chaoshub::server::RunningHub,
    _dir: tempfile::TempDir,
    url: String,
    client: reqwest::Client,
    submit_ms: Vec<f64>,
    read_ms: Vec<f64>,
}

async fn start(mode: &str, tls: bool) -> BenchHub {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HubConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.auth.mode = mode.into();
    config.tls.self_signed = tls;
    let mut registry = AdapterRegistry::builtin();
    registry.register(Arc::new(InstantAdapter::with_targets(1)));
    let hub = chaoshub::server::start_with(config, registry)
        .await
        .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(token) = std::fs::read_to_string(dir.path().join("admin.token")) {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", token.trim()).parse().unwrap(),
        );
    }
    let mut client = reqwest::Client::builder().default_headers(headers);
    if let Some(ca) = &hub.tls_ca_file {
        let pem = std::fs::read(ca).unwrap();
        client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    let client = client.build().unwrap();
    let url = hub.url();
    instant_adapter::register_environment(&client, &url).await;
    BenchHub {
        _hub: hub,
        _dir: dir,
        url,
        client,
        submit_ms: Vec::new(),
        read_ms: Vec::new(),
    }
}

impl BenchHub {
    async fn round(&mut self, start: usize, n: usize) {
        for i in start..start + n {
            // Experiments that never start injecting (a paused hub would be another code
            // path): a long duration; the engine's work happens off the request path.
            let manifest = json!({
                "apiVersion": "chaos-mesh.org/v1alpha1",
                "kind": "NetworkChaos",
                "metadata": {"name": format!("bench-{i}")},
                "spec": {"environment": "bench", "action": "delay", "mode": "all",
                         "selector": {"labelSelectors": {"app": "web"}},
                         "delay": {"latency": "10ms"}, "duration": "1h"}
            });
            let t0 = Instant::now();
            let response = self
                .client
                .post(format!("{}/api/v1/experiments", self.url))
                .json(&manifest)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            let created: Value = response.json().await.unwrap();
            self.submit_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            let uid = created["metadata"]["uid"].as_str().unwrap();
            let t0 = Instant::now();
            let response = self
                .client
                .get(format!("{}/api/v1/experiments/{uid}", self.url))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let _ = response.bytes().await.unwrap();
            self.read_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
    }
}

/// One row: `base` and `with` side by side, and what `with` adds.
fn line(name: &str, labels: (&str, &str), base: &[f64], with: &[f64]) {
    let mut base = base.to_vec();
    let mut with = with.to_vec();
    base.sort_by(|a, b| a.partial_cmp(b).unwrap());
    with.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (p50_b, p99_b) = (percentile(&base, 50.0), percentile(&base, 99.0));
    let (p50_w, p99_w) = (percentile(&with, 50.0), percentile(&with, 99.0));
    println!(
        "{name:<28} n={:<5} {}: p50={p50_b:>6.3}ms p99={p99_b:>7.3}ms   {}: p50={p50_w:>6.3}ms p99={p99_w:>7.3}ms   added: p50={:>+6.3}ms p99={:>+7.3}ms",
        with.len(),
        labels.0,
        labels.1,
        p50_w - p50_b,
        p99_w - p99_b
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, per_round) = if quick { (10, 20) } else { (40, 50) };
    chaoshub_adapters::install_crypto_provider();
    let mut hubs = [
        start("none", false).await,
        start("token", false).await,
        start("token", true).await,
    ];
    // Warm all (connection pools, the TLS session, SQLite caches).
    for hub in hubs.iter_mut() {
        hub.round(1_000_000, 20).await;
        hub.submit_ms.clear();
        hub.read_ms.clear();
    }
    for r in 0..rounds {
        let start = r * per_round;
        // Rotate the order each round, so none is always first after a pause.
        for k in 0..hubs.len() {
            let i = (r + k) % hubs.len();
            hubs[i].round(start, per_round).await;
        }
    }
    let [off, on, tls] = &hubs;
    line(
        "submit (POST experiments)",
        ("none", "token"),
        &off.submit_ms,
        &on.submit_ms,
    );
    line(
        "read (GET experiment)",
        ("none", "token"),
        &off.read_ms,
        &on.read_ms,
    );
    line(
        "submit (POST experiments)",
        ("token", "token+tls"),
        &on.submit_ms,
        &tls.submit_ms,
    );
    line(
        "read (GET experiment)",
        ("token", "token+tls"),
        &on.read_ms,
        &tls.read_ms,
    );
}
