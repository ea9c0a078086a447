//! Large-store bench (issue 21, goal 5): with 1,000,000 events and 100,000 experiments in the
//! store, listing experiments with filters and pagination, reading one experiment with its
//! events, and the Prometheus scrape each stay under 20 ms at p99.
//!
//! The store is a real SQLite store on disk, seeded before the hub opens it through the store's
//! own API: each experiment with its creation event in one transaction
//! (`Store::insert_experiment`, as the hub stores a submission), the other events in
//! transactions of 10,000 (`Store::append_events`). The experiments are ended (finished,
//! failed, aborted: the engine has nothing to do with them), spread over five kinds, three
//! namespaces and four environments, a seventh of them archived; each has two target records
//! and ten events. The real hub then starts on that store and a real HTTP client asks it over
//! loopback, one request at a time on one kept-alive connection with the admin token: warm-up
//! requests first, then timed ones, request sent to last byte of the body.
//!
//! Run: `cargo bench --workspace --bench large_store` (the goal's size), or add `-- --quick`
//! (a tenth of it: 10,000 experiments and 100,000 events). Exits non-zero when a goal query is
//! over 20 ms at p99. `-- --rounds N` sets the timed requests per query (500 by default, 200
//! with `--quick`, never fewer than 200). Results: docs/benchmarks.md.

use std::path::Path;
use std::time::Instant;

use chaoshub::config::HubConfig;
use chaoshub::store::{ExperimentRow, NewEvent, SqliteStore, Store};
use chaoshub_testkit::bench::percentile;
use serde_json::{json, Value};

const BUDGET_MS: f64 = 20.0;
const EVENTS_PER_EXPERIMENT: usize = 10;
const KINDS: [&str; 5] = [
    "NetworkChaos",
    "PodChaos",
    "StressChaos",
    "PhysicalMachineChaos",
    "HTTPChaos",
];
const NAMESPACES: [&str; 3] = ["default", "team-a", "team-b"];
const ENVIRONMENTS: [&str; 4] = ["lab-a", "lab-b", "lab-c", "lab-d"];
/// The nine events after `created`, as an experiment with two targets records them.
const LIFECYCLE: [(&str, &str); 9] = [
    ("injecting", "injecting into 2 target(s)"),
    ("target.injected", "web-0 injected"),
    ("target.injected", "web-1 injected"),
    ("running", "2 of 2 fault(s) confirmed in place"),
    ("probe.passed", "steady state holds"),
    ("recovering", "duration elapsed"),
    ("target.recovered", "web-0 recovered"),
    ("target.recovered", "web-1 recovered"),
    ("finished", "2 fault(s) removed"),
];

/// 2026-11-01T00:00:00Z plus `secs`, as RFC 3339.
fn ts(secs: u64) -> String {
    chrono::DateTime::from_timestamp(1_793_491_200 + secs as i64, 0)
        .expect("a time in range")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn uid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn kind(i: usize) -> &'static str {
    KINDS[i % KINDS.len()]
}

fn namespace(i: usize) -> &'static str {
    NAMESPACES[i % NAMESPACES.len()]
}

/// Shifted so that environment, kind and namespace are not in lockstep.
fn environment(i: usize) -> &'static str {
    ENVIRONMENTS[(i / 7) % ENVIRONMENTS.len()]
}

fn archived(i: usize) -> bool {
    i % 7 == 3
}

fn name(i: usize) -> String {
    format!("{}-{i}", kind(i).to_lowercase())
}

/// One stored, ended experiment: `i` picks its kind, namespace, environment, phase and times.
fn seeded_row(i: usize) -> ExperimentRow {
    let (kind, namespace, environment) = (kind(i), namespace(i), environment(i));
    let uid = uid(i);
    let start = i as u64 * 60;
    let phase = match i % 10 {
        0 => "Failed",
        1 => "Aborted",
        _ => "Finished",
    };
    let targets: Vec<Value> = (0..2)
        .map(|t| {
            json!({
                "target": {"environment": environment, "adapter": "webhook", "kind": "file",
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
        "environment": environment,
        "adapter": "webhook",
        "actions": ["delay"],
        "createdAt": ts(start),
        "startedAt": ts(start + 1),
        "deadline": ts(start + 31),
        "endedAt": ts(start + 31),
        "matched": 2,
        "targets": targets,
        "archived": archived(i),
    });
    let metadata = json!({
        "name": name(i), "namespace": namespace, "uid": uid,
        "labels": {"team": namespace, "suite": format!("nightly-{}", i % 7)},
        "creationTimestamp": ts(start),
    });
    ExperimentRow {
        seq: 0,
        uid,
        name: name(i),
        namespace: namespace.into(),
        kind: kind.into(),
        api_version: "chaos-mesh.org/v1alpha1".into(),
        metadata: serde_json::from_value(metadata).unwrap(),
        spec: json!({
            "environment": environment, "action": "delay", "mode": "all",
            "selector": {"labelSelectors": {"tier": "frontend"}},
            "delay": {"latency": "100ms", "jitter": "10ms"}, "duration": "30s",
        }),
        status: serde_json::from_value(status).unwrap(),
        desired_reason: None,
    }
}

fn event(i: usize, name: &str, message: &str) -> NewEvent {
    NewEvent {
        name: format!("chaoshub.experiment.{name}"),
        experiment_uid: Some(uid(i)),
        environment: Some(environment(i).into()),
        target: name
            .starts_with("target.")
            .then(|| message.split(' ').next().unwrap_or_default().to_string()),
        message: message.into(),
        ..Default::default()
    }
}

/// The database file's size once its write-ahead log is checkpointed into it.
fn store_bytes(data_dir: &Path) -> u64 {
    let conn = rusqlite::Connection::open(data_dir.join("chaoshub.db")).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let page: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    (pages * page) as u64
}

/// Seeds the store in `data_dir` before the hub opens it; returns the file size after the
/// experiments alone and after the events too.
fn seed(data_dir: &Path, experiments: usize, events: usize) -> (u64, u64) {
    let store = SqliteStore::open(data_dir, "normal").unwrap();
    let t0 = Instant::now();
    for i in 0..experiments {
        store
            .insert_experiment(
                &seeded_row(i),
                &event(i, "created", "created by the bench's seed"),
            )
            .unwrap();
    }
    let experiments_secs = t0.elapsed().as_secs_f64();
    let with_experiments = store_bytes(data_dir);
    let t1 = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    // The creation events are stored; the rest go round the lifecycle, experiment by experiment.
    for n in 0..events.saturating_sub(experiments) {
        let i = n / LIFECYCLE.len() % experiments;
        let (name, message) = LIFECYCLE[n % LIFECYCLE.len()];
        batch.push(event(i, name, message));
        if batch.len() == 10_000 {
            store.append_events(&batch).unwrap();
            batch.clear();
        }
    }
    store.append_events(&batch).unwrap();
    let events_secs = t1.elapsed().as_secs_f64();
    // The hub prunes the event log at start (30 days, at most 1,000,000 events): time the same
    // pass here, on the full store, so its cost is in the output and not in the measurements.
    let t2 = Instant::now();
    let pruned = store
        .prune_events(
            "0000",
            chaoshub::config::StoreConfig::default().event_max_rows,
        )
        .unwrap();
    let prune_ms = t2.elapsed().as_secs_f64() * 1000.0;
    drop(store);
    println!(
        "seeded through the store's API: {experiments} experiments in {experiments_secs:.1} s (one transaction each, with its creation event), {events} events in all ({:.1} s for the rest, 10,000 per transaction); the retention pass (cap 1,000,000 events) took {prune_ms:.0} ms and deleted {pruned}",
        events_secs
    );
    (with_experiments, store_bytes(data_dir))
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), for the record of the run.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// One row of the results table.
struct Measured {
    label: String,
    path: String,
    times: Vec<f64>,
    items: usize,
    bytes: usize,
    goal: bool,
}

impl Measured {
    fn print(&mut self) {
        self.times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "| {} (`{}`) | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            self.label,
            self.path,
            self.times.len(),
            percentile(&self.times, 50.0),
            percentile(&self.times, 90.0),
            percentile(&self.times, 99.0),
            self.times.last().copied().unwrap_or(f64::NAN),
            self.items,
            self.bytes,
        );
    }

    fn p99(&self) -> f64 {
        percentile(&self.times, 99.0)
    }
}

/// GETs `path` and returns the time to the last byte, the body's length and the parsed body.
async fn get(api: &reqwest::Client, base: &str, path: &str) -> (f64, usize, Value) {
    let t0 = Instant::now();
    let r = api.get(format!("{base}{path}")).send().await.unwrap();
    let status = r.status();
    let body = r.bytes().await.unwrap();
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(
        status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (ms, body.len(), value)
}

fn items(value: &Value) -> usize {
    value["items"].as_array().map_or(0, Vec::len)
}

/// Times `rounds` GETs of the path `path_of(round)` makes, after `warmup` untimed ones.
async fn measure(
    api: &reqwest::Client,
    base: &str,
    label: &str,
    warmup: usize,
    rounds: usize,
    goal: bool,
    path_of: impl Fn(usize) -> String,
) -> Measured {
    let mut m = Measured {
        label: label.to_string(),
        path: path_of(0),
        times: Vec::with_capacity(rounds),
        items: 0,
        bytes: 0,
        goal,
    };
    for round in 0..warmup + rounds {
        let (ms, bytes, value) = get(api, base, &path_of(round)).await;
        if round >= warmup {
            m.times.push(ms);
        }
        m.items = items(&value);
        m.bytes = bytes;
    }
    m
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (experiments, events) = if quick {
        (10_000, 100_000)
    } else {
        (100_000, 1_000_000)
    };
    assert_eq!(events, experiments * EVENTS_PER_EXPERIMENT);
    // `--rounds N`: timed requests per query (at least 200), for a shorter run at full size.
    let rounds_arg = std::env::args()
        .skip_while(|a| a != "--rounds")
        .nth(1)
        .map(|n| n.parse::<usize>().expect("--rounds takes a number"));
    let (warmup, rounds) = if quick { (10, 200) } else { (20, 500) };
    let rounds = rounds_arg.map_or(rounds, |n| n.max(200));
    println!("load average at start: {}", load_average());
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (experiments_bytes, store_bytes) = seed(&data_dir, experiments, events);
    let archived_count = (0..experiments).filter(|&i| archived(i)).count();
    println!(
        "store file: {store_bytes} bytes ({:.1} MB) for {experiments} experiments ({archived_count} archived) and {events} events: {} bytes per experiment with its {EVENTS_PER_EXPERIMENT} events ({} bytes per experiment alone, {} per event)",
        store_bytes as f64 / 1e6,
        store_bytes / experiments as u64,
        experiments_bytes / experiments as u64,
        (store_bytes - experiments_bytes) / (events - experiments) as u64,
    );

    let config = HubConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: data_dir.clone(),
        ..Default::default()
    };
    let hub = chaoshub::server::start(config).await.unwrap();
    let base = hub.url();
    // The admin token the hub wrote on first start, as a local user would read it.
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

    // A continue token deep in the list: the oldest tenth is behind it.
    let deep = (experiments / 10).to_string();
    // Different experiments round by round, spread over the whole store.
    let spread = |round: usize| (round * 7_919 + 13) % experiments;
    let mut results = Vec::new();
    let lists: Vec<(&str, String)> = vec![
        ("list, no filter", String::new()),
        ("list, phase", "phase=Failed".into()),
        ("list, kind", "kind=StressChaos".into()),
        ("list, namespace", "namespace=team-b".into()),
        ("list, environment", "env=lab-c".into()),
        (
            "list, all four filters",
            "phase=Aborted&kind=HTTPChaos&namespace=team-a&env=lab-b".into(),
        ),
        ("list, a kind no experiment has", "kind=IOChaos".into()),
        ("list, a phase no experiment is in", "phase=Running".into()),
        ("list, archived", "archived=true".into()),
        ("list, archived, kind", "archived=true&kind=PodChaos".into()),
        ("list, deep page", format!("continue={deep}")),
        (
            "list, deep page, kind",
            format!("kind=NetworkChaos&continue={deep}"),
        ),
        (
            "list, deep page, all four filters",
            format!("phase=Finished&kind=PodChaos&namespace=default&env=lab-d&continue={deep}"),
        ),
    ];
    for (label, query) in &lists {
        let path = format!("/api/v1/experiments?{query}");
        results.push(measure(&api, &base, label, warmup, rounds, true, |_| path.clone()).await);
    }
    results.push(
        measure(
            &api,
            &base,
            "archives, environment",
            warmup,
            rounds,
            true,
            |_| "/api/v1/archives?env=lab-a".to_string(),
        )
        .await,
    );
    results.push(
        measure(
            &api,
            &base,
            "list, 1,000 a page (the most a page holds)",
            warmup,
            rounds,
            false,
            |_| "/api/v1/experiments?limit=1000".to_string(),
        )
        .await,
    );

    // Every page of the unfiltered list, following the continue tokens to the end.
    let mut walk = Measured {
        label: "list, every page by continue token".to_string(),
        path: "/api/v1/experiments?continue=…".to_string(),
        times: Vec::new(),
        items: 0,
        bytes: 0,
        goal: true,
    };
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(token) => format!("/api/v1/experiments?continue={token}"),
            None => "/api/v1/experiments".to_string(),
        };
        let (ms, bytes, value) = get(&api, &base, &path).await;
        walk.times.push(ms);
        walk.items += items(&value);
        walk.bytes = walk.bytes.max(bytes);
        match value["continue"].as_str() {
            Some(token) => next = Some(token.to_string()),
            None => break,
        }
    }
    assert_eq!(
        walk.items,
        experiments - archived_count,
        "the walk saw every experiment not archived"
    );
    results.push(walk);

    results.push(
        measure(
            &api,
            &base,
            "one experiment by uid",
            warmup,
            rounds,
            true,
            |r| format!("/api/v1/experiments/{}", uid(spread(r))),
        )
        .await,
    );
    results.push(
        measure(
            &api,
            &base,
            "one experiment by name",
            warmup,
            rounds,
            true,
            |r| {
                let i = spread(r);
                format!("/api/v1/experiments/{}?namespace={}", name(i), namespace(i))
            },
        )
        .await,
    );
    results.push(
        measure(&api, &base, "its events", warmup, rounds, true, |r| {
            format!("/api/v1/events?experiment={}", uid(spread(r)))
        })
        .await,
    );
    results.push(
        measure(
            &api,
            &base,
            "Prometheus scrape",
            warmup,
            rounds,
            true,
            |_| "/metrics".to_string(),
        )
        .await,
    );
    hub.shutdown().await;
    drop(dir);
    println!("load average at the end: {}", load_average());

    println!(
        "\n{experiments} experiments, {events} events; {rounds} timed requests per query after {warmup} warm-up (the walk: one request per page)\n"
    );
    println!("| query | n | p50 ms | p90 ms | p99 ms | max ms | items | bytes |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut over = Vec::new();
    for m in &mut results {
        m.print();
        if m.goal && m.p99() > BUDGET_MS {
            over.push(format!("{} ({}): p99 {:.1} ms", m.label, m.path, m.p99()));
        }
    }
    if !over.is_empty() {
        eprintln!("\nover the goal ({BUDGET_MS} ms p99):");
        for o in &over {
            eprintln!("  {o}");
        }
        std::process::exit(1);
    }
    println!("\nevery goal query within {BUDGET_MS} ms at p99");
}
