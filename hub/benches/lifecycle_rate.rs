//! Lifecycle rate (issue 21, goal 2): how many whole experiments per second the hub carries end
//! to end, and how many events per second it stores, on its SQLite store on disk at the default
//! durability (`store.synchronous = "lifecycle"`: every status change is fsynced before the hub
//! acts on it or reports it).
//!
//! Through the real hub in-process, with auth on as shipped and an in-bench adapter that answers
//! every call at once (so the hub is what is measured):
//! - `events/s`: single events recorded by 16 threads at once (`Engine::record`: the store
//!   append, the SSE broadcast, the metrics), and by one thread alone;
//! - `experiments/s`: whole experiments, `clients` at a time: `POST /api/v1/experiments` of a
//!   NetworkChaos on 4 targets, select, inject + confirm each, run 10 ms, recover each, finish;
//!   each client waits for its experiment's `chaoshub.experiment.finished` event before it
//!   submits the next. At the end every experiment must be `Finished` with all its events
//!   stored.
//!
//! Run: `cargo bench -p chaoshub --bench lifecycle_rate` (`-- --quick`: fewer experiments).
//! Results: docs/benchmarks.md, section "Lifecycle rate".

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chaoshub::config::HubConfig;
use chaoshub::events::hub_event;
use chaoshub::store::EventFilter;
use serde_json::{json, Value};
use tokio::sync::oneshot;

#[path = "common/instant_adapter.rs"]
mod instant_adapter;

/// The process's CPU time (user + system) so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

/// The durability the bench runs with (the variable, or the default).
fn engine_sync() -> String {
    std::env::var("CHAOSHUB_BENCH_SYNCHRONOUS").unwrap_or_else(|_| "lifecycle (default)".into())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Who waits for which experiment's end; ends seen before anyone waited are kept.
#[derive(Default)]
struct Finishes {
    waiting: HashMap<String, oneshot::Sender<()>>,
    seen: HashSet<String>,
}

fn manifest(i: usize) -> Value {
    json!({
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "NetworkChaos",
        "metadata": {"name": format!("rate-{i}")},
        "spec": {"environment": "bench", "action": "delay", "mode": "all",
                 "selector": {"labelSelectors": {"app": "web"}},
                 "delay": {"latency": "10ms"}, "duration": "10ms"}
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (events, experiments, clients) = if quick {
        (5_000, 600, 64)
    } else {
        (20_000, 3_000, 64)
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = HubConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    // `CHAOSHUB_BENCH_SYNCHRONOUS=normal` (or `full`) instead of the default `lifecycle`.
    if let Ok(level) = std::env::var("CHAOSHUB_BENCH_SYNCHRONOUS") {
        config.store.synchronous = level;
    }
    let (hub, url, client) = instant_adapter::start_hub(config, clients).await;
    let engine = hub.hub.engine.clone();
    println!(
        "lifecycle rate: SQLite on disk, store.synchronous = {}, {} cores",
        engine_sync(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Events: one thread, then 16 at once.
    for threads in [1usize, 16] {
        let per = events / threads;
        let started = Instant::now();
        let cpu = cpu_time();
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let engine = engine.clone();
                tokio::task::spawn_blocking(move || {
                    for i in 0..per {
                        engine
                            .record(&[hub_event("chaoshub.bench.event", format!("{t}/{i}"))])
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        let wall = started.elapsed().as_secs_f64();
        println!(
            "events, {threads:>2} thread(s): {:>6} stored in {:.2} s = {:>8.0} events/s, CPU {:.1} µs/event",
            per * threads,
            wall,
            (per * threads) as f64 / wall,
            (cpu_time() - cpu).as_secs_f64() * 1e6 / (per * threads) as f64
        );
    }

    // Experiments: `clients` at a time, each waiting for its own end.
    let finishes = Arc::new(Mutex::new(Finishes::default()));
    {
        let mut rx = engine.subscribe();
        let finishes = Arc::clone(&finishes);
        let engine = engine.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(e) if e.name == chaoshub::events::EXPERIMENT_FINISHED => {
                        let Some(uid) = e.experiment_uid else {
                            continue;
                        };
                        let mut f = finishes.lock().unwrap();
                        match f.waiting.remove(&uid) {
                            Some(tx) => {
                                let _ = tx.send(());
                            }
                            None => {
                                f.seen.insert(uid);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Missed some: ask the store about everyone still waiting.
                        let waiting: Vec<String> =
                            finishes.lock().unwrap().waiting.keys().cloned().collect();
                        for uid in waiting {
                            let done = matches!(
                                engine.store().get_experiment(&uid),
                                Ok(Some(row)) if row.status.phase.is_terminal()
                            );
                            if done {
                                if let Some(tx) = finishes.lock().unwrap().waiting.remove(&uid) {
                                    let _ = tx.send(());
                                }
                            }
                        }
                    }
                    Err(_) => return,
                }
            }
        });
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let cpu = cpu_time();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            let next = Arc::clone(&next);
            let finishes = Arc::clone(&finishes);
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= experiments {
                        return done;
                    }
                    let t0 = Instant::now();
                    let response = client
                        .post(format!("{url}/api/v1/experiments"))
                        .json(&manifest(i))
                        .send()
                        .await
                        .unwrap();
                    assert!(
                        response.status().is_success(),
                        "submit: {}",
                        response.status()
                    );
                    let created: Value = response.json().await.unwrap();
                    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
                    let (tx, rx) = oneshot::channel();
                    {
                        let mut f = finishes.lock().unwrap();
                        if !f.seen.remove(&uid) {
                            f.waiting.insert(uid.clone(), tx);
                        } else {
                            let _ = tx.send(());
                        }
                    }
                    tokio::time::timeout(Duration::from_secs(60), rx)
                        .await
                        .unwrap_or_else(|_| panic!("experiment {uid} did not finish in 60 s"))
                        .unwrap();
                    done.push((uid, t0.elapsed().as_secs_f64() * 1000.0));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu).as_secs_f64();
    let mut latencies: Vec<f64> = all.iter().map(|(_, ms)| *ms).collect();
    latencies.sort_by(f64::total_cmp);
    println!(
        "experiments, {clients} clients: {} in {:.2} s = {:.1} experiments/s end to end; submit→finished p50 {:.1} ms, p99 {:.1} ms; CPU {:.2} ms/experiment",
        all.len(),
        wall,
        all.len() as f64 / wall,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        cpu * 1000.0 / all.len() as f64
    );

    // Every experiment Finished, with its events stored.
    let store = engine.store();
    let mut events_stored = 0;
    for (uid, _) in &all {
        let row = store.get_experiment(uid).unwrap().expect("stored");
        assert_eq!(
            row.status.phase.as_str(),
            "Finished",
            "experiment {uid} ended {:?}",
            row.status.phase
        );
        let events = store
            .list_events(&EventFilter {
                experiment_uid: Some(uid.clone()),
                limit: 1000,
                ..Default::default()
            })
            .unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.name == chaoshub::events::EXPERIMENT_FINISHED),
            "experiment {uid} has no finished event stored"
        );
        events_stored += events.len();
    }
    println!(
        "checked: {} experiments Finished, {} events stored ({:.1} per experiment)",
        all.len(),
        events_stored,
        events_stored as f64 / all.len() as f64
    );
    hub.shutdown().await;
}
