//! Console bench: every page's server render time and first-load size with 10,000 experiments
//! in the store (issue 19's budget: under 50 ms server time and under 100 kB transferred).
//!
//! The store is seeded directly with 10,000 finished, failed and aborted experiments (five
//! kinds, three namespaces, two target records and five events each, a tenth archived), then
//! the real hub starts on it with the real `webhook` adapter and the fsfault plugin, and ten
//! experiments are submitted so the overview lists ten faults in force. A console session
//! (the admin token through the login form) then loads each page on one kept-alive loopback
//! connection: warm-up requests first, then timed ones.
//!
//! "Render time" is the client's time from sending the request to the last byte of the body on
//! loopback, so it is an upper bound of the server's time. "First load" is the page plus the
//! stylesheet, scripts and icon it links, as a browser with an empty cache fetches them: on the
//! wire (the hub gzips those files for a client that accepts it; pages are not compressed)
//! and uncompressed.
//!
//! Run: `cargo bench --workspace --bench console_render` (add `-- --quick` for a short run).
//! Exits non-zero when a page is over either budget. Results: docs/benchmarks.md.

use std::time::{Duration, Instant};

use chaoshub::config::HubConfig;
use chaoshub::store::{ExperimentRow, NewEvent, SqliteStore, Store};
use chaoshub_testkit::bench::{linked_static_files, percentile, FsFaultPlugin};
use serde_json::{json, Value};

const SEEDED: usize = 10_000;
const RUNNING: usize = 10;
const BUDGET_MS: f64 = 50.0;
const BUDGET_BYTES: usize = 100_000;
const KINDS: [&str; 5] = [
    "NetworkChaos",
    "PodChaos",
    "StressChaos",
    "PhysicalMachineChaos",
    "HTTPChaos",
];
const NAMESPACES: [&str; 3] = ["default", "team-a", "team-b"];

/// 2026-11-01T00:00:00Z plus `secs`, as RFC 3339.
fn ts(secs: u64) -> String {
    chrono::DateTime::from_timestamp(1_793_491_200 + secs as i64, 0)
        .expect("a time in range")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One stored, ended experiment: `i` picks its kind, namespace, phase and times.
fn seeded_row(i: usize) -> ExperimentRow {
    let kind = KINDS[i % KINDS.len()];
    let namespace = NAMESPACES[i % NAMESPACES.len()];
    let name = format!("{}-{i}", kind.to_lowercase());
    let uid = format!("00000000-0000-4000-8000-{i:012}");
    let start = i as u64 * 60;
    let phase = match i % 10 {
        0 => "Failed",
        1 => "Aborted",
        _ => "Finished",
    };
    let targets: Vec<Value> = (0..2)
        .map(|t| {
            json!({
                "target": {"environment": "fs-lab", "adapter": "webhook", "kind": "file",
                           "id": format!("web-{t}"), "name": format!("web-{t}"),
                           "labels": {"tier": "frontend"}},
                "injectionId": format!("{uid}-{t}"),
                "phase": if phase == "Failed" { "Failed" } else { "Recovered" },
                "injections": 1,
                "injectedAt": ts(start + 1),
                "recoveredAt": ts(start + 31),
            })
        })
        .collect();
    let status = json!({
        "phase": phase,
        "desired": "Run",
        "reason": if phase == "Failed" { Some("the adapter refused the injection") } else { None },
        "environment": "fs-lab",
        "adapter": "webhook",
        "actions": ["delay"],
        "createdAt": ts(start),
        "startedAt": ts(start + 1),
        "deadline": ts(start + 31),
        "endedAt": ts(start + 31),
        "matched": 2,
        "targets": targets,
        "archived": i % 10 == 9,
    });
    let metadata = json!({
        "name": name, "namespace": namespace, "uid": uid,
        "labels": {"team": namespace, "suite": format!("nightly-{}", i % 7)},
        "creationTimestamp": ts(start),
    });
    ExperimentRow {
        seq: 0,
        uid,
        name,
        namespace: namespace.into(),
        kind: kind.into(),
        api_version: "chaos-mesh.org/v1alpha1".into(),
        metadata: serde_json::from_value(metadata).unwrap(),
        spec: json!({
            "environment": "fs-lab", "action": "delay", "mode": "all",
            "selector": {"labelSelectors": {"tier": "frontend"}},
            "delay": {"latency": "100ms", "jitter": "10ms"}, "duration": "30s",
        }),
        status: serde_json::from_value(status).unwrap(),
        desired_reason: None,
    }
}

/// Seeds the store in `data_dir` before the hub opens it; returns a finished experiment's uid.
fn seed(data_dir: &std::path::Path) -> String {
    let store = SqliteStore::open(data_dir, "normal").unwrap();
    let t0 = Instant::now();
    let mut events = Vec::new();
    for i in 0..SEEDED {
        let row = seeded_row(i);
        let event = |name: &str, message: &str| NewEvent {
            name: format!("chaoshub.experiment.{name}"),
            experiment_uid: Some(row.uid.clone()),
            environment: Some("fs-lab".into()),
            message: message.into(),
            ..Default::default()
        };
        store
            .insert_experiment(&row, &event("created", "created by the bench's seed"))
            .unwrap();
        events.push(event("injecting", "injecting into 2 target(s)"));
        events.push(event("running", "2 of 2 fault(s) confirmed in place"));
        events.push(event("recovering", "duration elapsed"));
        events.push(event("finished", "2 fault(s) removed"));
        if events.len() >= 2_000 {
            store.append_events(&events).unwrap();
            events.clear();
        }
    }
    store.append_events(&events).unwrap();
    println!(
        "seeded {SEEDED} experiments and {} events in {:.1} s",
        SEEDED * 5,
        t0.elapsed().as_secs_f64()
    );
    seeded_row(SEEDED / 2).uid
}

/// The experiments in `phase` (the first page, newest first).
async fn in_phase(api: &reqwest::Client, base: &str, phase: &str) -> Vec<Value> {
    let page: Value = api
        .get(format!("{base}/api/v1/experiments?phase={phase}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (warmup, rounds) = if quick { (3, 20) } else { (10, 200) };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let finished_uid = seed(&data_dir);
    let plugin = FsFaultPlugin::start(&dir.path().join("plugin"));
    let config = HubConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: data_dir.clone(),
        catalog_dir: chaoshub_testkit::workspace_root().join("catalog"),
        ..Default::default()
    };
    let hub = chaoshub::server::start(config).await.unwrap();
    let base = hub.url();
    let token = std::fs::read_to_string(data_dir.join("admin.token")).unwrap();
    let api = {
        let mut headers = reqwest::header::HeaderMap::new();
        let bearer = format!("Bearer {}", token.trim());
        headers.insert(reqwest::header::AUTHORIZATION, bearer.parse().unwrap());
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap()
    };
    let post_yaml = |path: &str, body: String| {
        api.post(format!("{base}{path}"))
            .header("content-type", "application/yaml")
            .body(body)
            .send()
    };
    let env = format!("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: fs-lab}}\nspec: {{adapter: webhook, endpoint: \"{}\"}}\n", plugin.url);
    let r = post_yaml("/api/v1/environments", env).await.unwrap();
    assert!(r.status().is_success(), "environment: {}", r.status());
    let mut running_uid = String::new();
    for i in 0..RUNNING {
        let manifest = format!("apiVersion: chaos-mesh.org/v1alpha1\nkind: PhysicalMachineChaos\nmetadata: {{name: in-force-{i}}}\nspec:\n  action: disk-fill\n  mode: all\n  selector: {{labelSelectors: {{tier: frontend}}}}\n  disk-fill: {{size: 4kB}}\n  duration: 10m\n");
        let r: Value = post_yaml("/api/v1/experiments?env=fs-lab", manifest)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        running_uid = r["metadata"]["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("not created: {r}"))
            .to_string();
    }
    // Until all ten are Running, so every page shows them in force.
    let started = Instant::now();
    loop {
        let running = in_phase(&api, &base, "Running").await.len();
        if running == RUNNING {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{running} of {RUNNING} running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A console session, as a browser gets one: the token through the login form.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = browser
        .post(format!("{base}/login"))
        .form(&[("token", token.trim()), ("next", "/")])
        .send()
        .await
        .unwrap();
    let cookie = login
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("the login sets a session cookie")
        .to_string();

    let pages = [
        ("overview", "/".to_string()),
        ("experiments", "/experiments".to_string()),
        (
            "experiments, filtered",
            "/experiments?phase=Finished&kind=NetworkChaos&namespace=team-a".to_string(),
        ),
        (
            "experiments, archived",
            "/experiments?archived=1".to_string(),
        ),
        ("experiment, ended", format!("/experiments/{finished_uid}")),
        ("experiment, running", format!("/experiments/{running_uid}")),
        ("new experiment", "/new".to_string()),
        ("catalog", "/catalog".to_string()),
        ("catalog, template", "/catalog/network-delay".to_string()),
        ("environments", "/environments".to_string()),
        ("conformance matrix", "/conformance".to_string()),
        ("schedules and workflows", "/orchestration".to_string()),
        ("workflow builder", "/workflows/new".to_string()),
        ("suites", "/suites".to_string()),
    ];
    println!(
        "\n{SEEDED} experiments stored, {RUNNING} in force; {rounds} timed loads per page after {warmup} warm-up\n"
    );
    println!("| page | p50 ms | p99 ms | max ms | HTML bytes | first load, bytes on the wire | first load, uncompressed |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut over = Vec::new();
    for (label, path) in &pages {
        let mut times = Vec::new();
        let mut html = String::new();
        for round in 0..warmup + rounds {
            let t0 = Instant::now();
            let r = browser
                .get(format!("{base}{path}"))
                .header(reqwest::header::COOKIE, &cookie)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body = r.text().await.unwrap();
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(status, 200, "{path}: {}", &body[..body.len().min(300)]);
            if round >= warmup {
                times.push(ms);
            }
            html = body;
        }
        // What a browser with an empty cache fetches with the page, as Chromium asks for it
        // (gzip accepted): the bytes on the wire, and the same files uncompressed.
        let (mut wire, mut plain) = (html.len(), html.len());
        for asset in linked_static_files(&html) {
            let r = browser
                .get(format!("{base}{asset}"))
                .header(reqwest::header::COOKIE, &cookie)
                .header(reqwest::header::ACCEPT_ENCODING, "gzip, deflate, br")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{asset}");
            let gzipped = r
                .headers()
                .get(reqwest::header::CONTENT_ENCODING)
                .is_some_and(|v| v == "gzip");
            let bytes = r.bytes().await.unwrap();
            wire += bytes.len();
            plain += if gzipped {
                let r = browser.get(format!("{base}{asset}")).send().await.unwrap();
                r.bytes().await.unwrap().len()
            } else {
                bytes.len()
            };
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let p50 = percentile(&times, 50.0);
        println!(
            "| {label} (`{path}`) | {p50:.2} | {:.2} | {:.2} | {} | {wire} | {plain} |",
            percentile(&times, 99.0),
            times.last().copied().unwrap_or(f64::NAN),
            html.len()
        );
        if p50 > BUDGET_MS || wire > BUDGET_BYTES {
            over.push(format!("{path}: p50 {p50:.1} ms, {wire} bytes"));
        }
    }
    // Remove the ten faults before the plugin goes: the halt stops them, then wait for Ended.
    let r = api
        .post(format!("{base}/api/v1/halt"))
        .json(&json!({"reason": "bench done"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "halt: {}", r.status());
    let stopping = Instant::now();
    loop {
        let aborted = in_phase(&api, &base, "Aborted")
            .await
            .iter()
            .filter(|e| {
                e["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("in-force-"))
            })
            .count();
        if aborted == RUNNING {
            break;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(30),
            "{aborted} of {RUNNING} stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    hub.shutdown().await;
    drop(plugin);
    if !over.is_empty() {
        eprintln!("\nover budget ({BUDGET_MS} ms p50, {BUDGET_BYTES} bytes):");
        for o in &over {
            eprintln!("  {o}");
        }
        std::process::exit(1);
    }
    println!("\nevery page within {BUDGET_MS} ms at p50 and {BUDGET_BYTES} bytes on first load");
}
