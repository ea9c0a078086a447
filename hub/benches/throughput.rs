//! Hub throughput bench: submit→confirmed latency, experiments per second and recovery
//! lateness, through the real hub (in-process, SQLite store on disk) and the real `webhook`
//! adapter driving the Python fsfault plugin (a real file per fault).
//!
//! Run: `cargo bench -p chaoshub --bench throughput` (add `-- --quick` for a short run).
//! Results and how to read them: docs/benchmarks.md.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chaoshub::config::HubConfig;
use chaoshub_testkit::bench::{percentile, FsFaultPlugin};
use serde_json::Value;

fn summary(name: &str, mut values: Vec<f64>, unit: &str) {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{name:<38} n={:<5} p50={:>8.2}{unit} p90={:>8.2}{unit} p99={:>8.2}{unit} max={:>8.2}{unit}",
        values.len(),
        percentile(&values, 50.0),
        percentile(&values, 90.0),
        percentile(&values, 99.0),
        values.last().copied().unwrap_or(f64::NAN)
    );
}

fn manifest(name: &str, duration: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PhysicalMachineChaos\nmetadata: {{name: {name}}}\nspec:\n  environment: fs-lab\n  action: disk-fill\n  mode: all\n  selector: {{labelSelectors: {{tier: frontend}}}}\n  disk-fill: {{size: 4kB}}\n  duration: {duration}\n"
    )
}

/// Submits one experiment and returns its uid.
async fn submit(client: &reqwest::Client, base: &str, name: &str, duration: &str) -> String {
    let resp: Value = client
        .post(format!("{base}/api/v1/experiments"))
        .header("content-type", "application/yaml")
        .body(manifest(name, duration))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["metadata"]["uid"]
        .as_str()
        .expect("created")
        .to_string()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (sequential, batch) = if quick { (30, 60) } else { (200, 400) };
    let dir = tempfile::tempdir().unwrap();
    let plugin = FsFaultPlugin::start(&dir.path().join("plugin"));
    let plugin_url = plugin.url.clone();
    let mut config = HubConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().join("data"),
        ..Default::default()
    };
    config.limits.max_targets = 10;
    // `CHAOSHUB_BENCH_STORE=postgres`: the same run on a throwaway PostgreSQL (Debian's, started
    // by testkit as an unprivileged user) instead of the embedded SQLite store.
    let _database = match std::env::var("CHAOSHUB_BENCH_STORE").as_deref() {
        Ok("postgres") => {
            let server = chaoshub_testkit::postgres::shared().expect(
                "CHAOSHUB_BENCH_STORE=postgres needs PostgreSQL (scripts/install-test-deps.sh)",
            );
            let db = server.create_database();
            config.store.url = Some(db.url.clone());
            println!("store: PostgreSQL {} (one replica)", db.url);
            Some(db)
        }
        _ => {
            println!("store: SQLite (synchronous = {})", config.store.synchronous);
            None
        }
    };
    let hub = chaoshub::server::start(config).await.unwrap();
    // On a shared store the engine runs once this replica holds the engine lease.
    while !hub.hub.engine.leadership().is_leader() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let base = hub.url();
    // The admin token the hub wrote on first start, as a local user would read it.
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
    let env = format!("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: fs-lab}}\nspec: {{adapter: webhook, endpoint: \"{plugin_url}\"}}\n");
    let r = client
        .post(format!("{base}/api/v1/environments"))
        .header("content-type", "application/yaml")
        .body(env)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let mut events = hub.hub.engine.subscribe();

    // 1. Submit → confirmed: one experiment at a time, from the POST to the `running` event.
    let mut latencies = Vec::new();
    for i in 0..sequential {
        let t0 = Instant::now();
        let uid = submit(&client, &base, &format!("seq-{i}"), "60s").await;
        loop {
            let e = events.recv().await.unwrap();
            if e.experiment_uid.as_deref() == Some(uid.as_str())
                && e.name == "chaoshub.experiment.running"
            {
                break;
            }
        }
        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
        client
            .post(format!("{base}/api/v1/experiments/{uid}/stop"))
            .send()
            .await
            .unwrap();
    }
    // Let the stops finish before the throughput run.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 2. Throughput: a burst of short experiments, 16 submitters at once, until all Finished.
    let t0 = Instant::now();
    let mut submitted = Vec::new();
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let client = client.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut uids = Vec::new();
            for i in (worker..batch).step_by(16) {
                uids.push(submit(&client, &base, &format!("burst-{i}"), "200ms").await);
            }
            uids
        }));
    }
    for t in tasks {
        submitted.extend(t.await.unwrap());
    }
    let submit_secs = t0.elapsed().as_secs_f64();
    // Poll the store through the API (the live event channel would lag behind a burst).
    let wanted: HashSet<String> = submitted.iter().cloned().collect();
    loop {
        let page: Value = client
            .get(format!("{base}/api/v1/experiments?limit=1000"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut done = 0;
        for item in page["items"].as_array().unwrap() {
            let uid = item["metadata"]["uid"].as_str().unwrap();
            if !wanted.contains(uid) {
                continue;
            }
            match item["status"]["phase"].as_str().unwrap() {
                "Finished" => done += 1,
                "Failed" | "Aborted" => panic!("an experiment did not finish: {}", item["status"]),
                _ => {}
            }
        }
        if done == wanted.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let total_secs = t0.elapsed().as_secs_f64();

    // 3. Recovery lateness of the burst: recoveredAt − deadline per target.
    let mut lateness = Vec::new();
    for uid in &submitted {
        let v: Value = client
            .get(format!("{base}/api/v1/experiments/{uid}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let deadline =
            chrono::DateTime::parse_from_rfc3339(v["status"]["deadline"].as_str().unwrap())
                .unwrap();
        for t in v["status"]["targets"].as_array().unwrap() {
            let rec =
                chrono::DateTime::parse_from_rfc3339(t["recoveredAt"].as_str().unwrap()).unwrap();
            lateness.push((rec - deadline).num_microseconds().unwrap() as f64 / 1000.0);
        }
    }

    // 4. Light load: experiments of 1 s submitted one every 50 ms (about 20 in force at once),
    // recovery lateness measured per target.
    let light = if quick { 20 } else { 60 };
    let mut light_uids = Vec::new();
    for i in 0..light {
        light_uids.push(submit(&client, &base, &format!("light-{i}"), "1s").await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut light_lateness = Vec::new();
    for uid in &light_uids {
        let v = loop {
            let v: Value = client
                .get(format!("{base}/api/v1/experiments/{uid}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match v["status"]["phase"].as_str().unwrap() {
                "Finished" => break v,
                "Failed" | "Aborted" => panic!("an experiment did not finish: {}", v["status"]),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let deadline =
            chrono::DateTime::parse_from_rfc3339(v["status"]["deadline"].as_str().unwrap())
                .unwrap();
        for t in v["status"]["targets"].as_array().unwrap() {
            let rec =
                chrono::DateTime::parse_from_rfc3339(t["recoveredAt"].as_str().unwrap()).unwrap();
            light_lateness.push((rec - deadline).num_microseconds().unwrap() as f64 / 1000.0);
        }
    }

    println!("chaoshub hub bench (webhook adapter + fsfault plugin; store as printed above)");
    summary("submit→confirmed Running (sequential)", latencies, "ms");
    println!(
        "{:<38} {} experiments: submitted in {:.2}s ({:.1}/s), all Finished after {:.2}s ({:.1} experiments/s end to end)",
        "burst of 200ms experiments (16 clients)",
        submitted.len(),
        submit_secs,
        submitted.len() as f64 / submit_secs,
        total_secs,
        submitted.len() as f64 / total_secs
    );
    summary("recovery lateness, burst (overload)", lateness, "ms");
    summary("recovery lateness, light load", light_lateness, "ms");
    hub.shutdown().await;
}
