//! Authentication overhead bench: what checking the bearer token (and auditing the request)
//! adds per request on the submit path, through the real hub in-process (SQLite store on
//! disk) and an in-bench adapter that answers at once, so the hub is what is measured.
//!
//! Two hubs run side by side: one with `auth.mode = "none"` (loopback) and one with tokens.
//! Requests alternate between them in small rounds so that load on the machine affects both
//! alike. Measured per request, from send to the full answer:
//! - `POST /api/v1/experiments` (submit: validate, capabilities, store; with tokens also the
//!   token lookup and the audit entry);
//! - `GET /api/v1/experiments/{uid}` (a read: the token lookup and the scope check only).
//!
//! Run: `cargo bench -p chaoshub --bench auth_overhead` (`-- --quick` for a short run).
//! Results: docs/benchmarks.md, section "Authentication overhead".

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use chaoshub::config::HubConfig;
use chaoshub_adapters::{
    Adapter, AdapterError, AdapterRegistry, Environment, FaultRequest, Injection, InjectionState,
};
use chaoshub_schema::api::Capability;
use chaoshub_schema::{Target, ValidationErrors};
use serde_json::{json, Value};

#[derive(Default)]
struct InstantAdapter {
    active: Mutex<HashSet<String>>,
}

#[async_trait]
impl Adapter for InstantAdapter {
    fn adapter_type(&self) -> &'static str {
        "instant"
    }
    fn description(&self) -> &'static str {
        "bench adapter"
    }
    fn capabilities(&self) -> Vec<Capability> {
        vec![Capability::new("NetworkChaos", "delay")]
    }
    fn validate_environment(&self, _env: &Environment) -> Result<(), ValidationErrors> {
        Ok(())
    }
    async fn environment_capabilities(
        &self,
        _env: &Environment,
    ) -> Result<Vec<Capability>, AdapterError> {
        Ok(self.capabilities())
    }
    async fn discover(&self, env: &Environment) -> Result<Vec<Target>, AdapterError> {
        Ok(vec![Target {
            environment: env.name.clone(),
            adapter: "instant".into(),
            kind: "host".into(),
            id: "t".into(),
            name: "t".into(),
            namespace: None,
            labels: [("app".to_string(), "web".to_string())].into(),
            annotations: Default::default(),
        }])
    }
    async fn inject(
        &self,
        _env: &Environment,
        fault: &FaultRequest,
        _target: &Target,
    ) -> Result<Value, AdapterError> {
        self.active
            .lock()
            .unwrap()
            .insert(fault.injection_id.clone());
        Ok(Value::Null)
    }
    async fn status(
        &self,
        _env: &Environment,
        injection: &Injection,
    ) -> Result<InjectionState, AdapterError> {
        Ok(
            if self
                .active
                .lock()
                .unwrap()
                .contains(&injection.injection_id)
            {
                InjectionState::Active
            } else {
                InjectionState::Absent
            },
        )
    }
    async fn recover(&self, _env: &Environment, injection: &Injection) -> Result<(), AdapterError> {
        self.active.lock().unwrap().remove(&injection.injection_id);
        Ok(())
    }
}

struct BenchHub {
    _hub: chaoshub::server::RunningHub,
    _dir: tempfile::TempDir,
    url: String,
    client: reqwest::Client,
    submit_ms: Vec<f64>,
    read_ms: Vec<f64>,
}

async fn start(mode: &str) -> BenchHub {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HubConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.auth.mode = mode.into();
    let mut registry = AdapterRegistry::builtin();
    registry.register(Arc::new(InstantAdapter::default()));
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
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let url = hub.url();
    let env = client
        .post(format!("{url}/api/v1/environments"))
        .header("content-type", "application/yaml")
        .body("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: bench}\nspec: {adapter: instant}\n")
        .send()
        .await
        .unwrap();
    assert!(env.status().is_success(), "{}", env.text().await.unwrap());
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn line(name: &str, off: &[f64], on: &[f64]) {
    let mut off = off.to_vec();
    let mut on = on.to_vec();
    off.sort_by(|a, b| a.partial_cmp(b).unwrap());
    on.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (p50_off, p99_off) = (percentile(&off, 50.0), percentile(&off, 99.0));
    let (p50_on, p99_on) = (percentile(&on, 50.0), percentile(&on, 99.0));
    println!(
        "{name:<28} n={:<5} none: p50={p50_off:>6.3}ms p99={p99_off:>7.3}ms   token: p50={p50_on:>6.3}ms p99={p99_on:>7.3}ms   added: p50={:>+6.3}ms p99={:>+7.3}ms",
        on.len(),
        p50_on - p50_off,
        p99_on - p99_off
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, per_round) = if quick { (10, 20) } else { (40, 50) };
    let mut off = start("none").await;
    let mut on = start("token").await;
    // Warm both (connection pools, SQLite caches).
    off.round(1_000_000, 20).await;
    on.round(1_000_000, 20).await;
    off.submit_ms.clear();
    off.read_ms.clear();
    on.submit_ms.clear();
    on.read_ms.clear();
    for r in 0..rounds {
        let start = r * per_round;
        if r % 2 == 0 {
            off.round(start, per_round).await;
            on.round(start, per_round).await;
        } else {
            on.round(start, per_round).await;
            off.round(start, per_round).await;
        }
    }
    line("submit (POST experiments)", &off.submit_ms, &on.submit_ms);
    line("read (GET experiment)", &off.read_ms, &on.read_ms);
}
