//! The SQLite store's durability and upkeep: lifecycle transitions fsynced (measured with
//! strace on the WAL), event retention by age and row cap, and store calls that never stall
//! the async runtime's other tasks.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chaoshub::store::{ExperimentRow, NewEvent, SqliteStore, Store};
use chaoshub_schema::api::{DesiredState, ExperimentPhase, ExperimentStatus};

fn row(uid: &str, phase: ExperimentPhase) -> ExperimentRow {
    ExperimentRow {
        seq: 0,
        uid: uid.into(),
        name: uid.into(),
        namespace: "default".into(),
        kind: "NetworkChaos".into(),
        api_version: "chaos-mesh.org/v1alpha1".into(),
        metadata: Default::default(),
        spec: serde_json::json!({}),
        status: ExperimentStatus {
            phase,
            desired: DesiredState::Run,
            reason: None,
            environment: "env".into(),
            adapter: "memory".into(),
            actions: vec!["delay".into()],
            created_at: chaoshub::time::now_rfc3339(),
            started_at: None,
            deadline: None,
            remaining_ms: None,
            ended_at: None,
            next_phase: None,
            matched: 0,
            targets: Vec::new(),
            archived: false,
            schedule: None,
            workflow: None,
            created_by: None,
            drift: None,
        },
        desired_reason: None,
    }
}

fn event(uid: Option<&str>, n: usize) -> NewEvent {
    NewEvent {
        name: "chaoshub.test.event".into(),
        experiment_uid: uid.map(str::to_string),
        message: format!("event {n}"),
        attributes: BTreeMap::new(),
        ..Default::default()
    }
}

/// The fsyncs of files under `dir` that `f` causes, counted by strace attached to this process
/// (every thread). `None`, with the reason printed, when strace cannot run here.
fn fsyncs_under(dir: &std::path::Path, f: impl FnOnce()) -> Option<usize> {
    let log = dir.join("strace.log");
    let mut strace = match Command::new("strace")
        .args(["-f", "-y", "-qq", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&log)
        .args(["-p", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIP fsync count: strace cannot run ({e}); install strace to measure");
            return None;
        }
    };
    // strace writes nothing until it has attached; give it a moment, then check it is alive.
    std::thread::sleep(Duration::from_millis(500));
    if let Ok(Some(status)) = strace.try_wait() {
        eprintln!("SKIP fsync count: strace could not attach ({status})");
        return None;
    }
    f();
    std::thread::sleep(Duration::from_millis(200));
    let _ = Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status();
    let _ = strace.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let needle = dir.to_string_lossy().to_string();
    Some(
        text.lines()
            .filter(|l| l.contains(&needle) && l.contains("chaoshub.db"))
            .count(),
    )
}

/// `lifecycle` (the default): every lifecycle transition fsyncs the WAL, so the intent stored
/// before an adapter call and the injection recorded after it survive power loss; plain event
/// appends do not pay an fsync each. `normal` fsyncs none of them.
#[test]
fn lifecycle_transitions_fsync_the_wal_and_plain_event_appends_do_not() {
    let n = 20;
    let measure = |mode: &str| -> Option<(usize, usize, Duration)> {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), mode).unwrap();
        store
            .insert_experiment(
                &row("exp", ExperimentPhase::Pending),
                &event(Some("exp"), 0),
            )
            .unwrap();
        let mut status = row("exp", ExperimentPhase::Injecting).status;
        let mut took = Duration::ZERO;
        let transitions = fsyncs_under(dir.path(), || {
            let started = Instant::now();
            for i in 0..n {
                status.phase = if i % 2 == 0 {
                    ExperimentPhase::Injecting
                } else {
                    ExperimentPhase::Running
                };
                store
                    .update_status("exp", &status, &[event(Some("exp"), i)])
                    .unwrap();
            }
            took = started.elapsed();
        })?;
        let appends = fsyncs_under(dir.path(), || {
            for i in 0..n {
                store.append_events(&[event(None, i)]).unwrap();
            }
        })?;
        Some((transitions, appends, took))
    };
    let Some((lifecycle, lifecycle_appends, lifecycle_took)) = measure("lifecycle") else {
        return;
    };
    let Some((normal, normal_appends, normal_took)) = measure("normal") else {
        return;
    };
    eprintln!(
        "{n} transitions: lifecycle {lifecycle} fsyncs in {lifecycle_took:?}, normal {normal} \
         fsyncs in {normal_took:?}; {n} event appends: lifecycle {lifecycle_appends}, normal \
         {normal_appends}"
    );
    assert!(
        lifecycle >= n,
        "every lifecycle transition is fsynced: {lifecycle} fsyncs for {n}"
    );
    assert!(
        lifecycle_appends < n,
        "plain event appends are not fsynced one by one: {lifecycle_appends}"
    );
    assert!(normal < n, "normal does not fsync per commit: {normal}");
}

/// Retention: events older than the cut-off go, then all but the newest `max_rows`; events of
/// an experiment that has not ended stay whatever their age.
#[test]
fn the_event_log_is_pruned_by_age_and_row_cap_but_keeps_running_experiments() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), "lifecycle").unwrap();
    store
        .insert_experiment(
            &row("running", ExperimentPhase::Running),
            &event(Some("running"), 0),
        )
        .unwrap();
    store
        .insert_experiment(
            &row("done", ExperimentPhase::Finished),
            &event(Some("done"), 0),
        )
        .unwrap();
    for i in 0..50 {
        store.append_events(&[event(None, i)]).unwrap();
        store.append_events(&[event(Some("done"), i)]).unwrap();
        store.append_events(&[event(Some("running"), i)]).unwrap();
    }
    let count = |uid: Option<&str>| {
        store
            .list_events(&chaoshub::store::EventFilter {
                experiment_uid: uid.map(str::to_string),
                limit: 10_000,
                ..Default::default()
            })
            .unwrap()
            .len()
    };
    assert_eq!(count(None), 152);
    // Nothing is older than a day ago.
    let day_ago = chaoshub::time::format(chrono::Utc::now() - chrono::Duration::days(1));
    assert_eq!(store.prune_events(&day_ago, 0).unwrap(), 0);
    // A cap of 60: the newest 60 events stay, plus every event of the running experiment.
    let deleted = store.prune_events(&day_ago, 60).unwrap();
    eprintln!("row cap 60: deleted {deleted}");
    assert_eq!(
        count(Some("running")),
        51,
        "a running experiment keeps its events"
    );
    assert!(count(None) <= 60 + 51, "{}", count(None));
    // Everything is older than a second from now: only the running experiment's events stay.
    let soon = chaoshub::time::format(chrono::Utc::now() + chrono::Duration::seconds(1));
    store.prune_events(&soon, 0).unwrap();
    assert_eq!(count(None), 51);
    assert_eq!(count(Some("done")), 0);
}

/// A store call held up (here: another connection holds SQLite's write lock for 1 s) must not
/// stall the runtime's other tasks, even with a single worker thread: the call leaves the
/// worker (`block_in_place`) instead of blocking it.
#[test]
fn a_slow_store_call_does_not_stall_the_runtimes_other_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), "lifecycle").unwrap());
    store
        .insert_experiment(
            &row("exp", ExperimentPhase::Pending),
            &event(Some("exp"), 0),
        )
        .unwrap();
    let blocker = rusqlite::Connection::open(dir.path().join("chaoshub.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1000));
        blocker.execute_batch("COMMIT").unwrap();
    });
    let (write_took, tick_took) = runtime.block_on(async move {
        let started = Instant::now();
        let writer = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let status = row("exp", ExperimentPhase::Injecting).status;
                store
                    .update_status("exp", &status, &[event(Some("exp"), 1)])
                    .unwrap();
                started.elapsed()
            })
        };
        // Let the writer take the worker first.
        tokio::task::yield_now().await;
        let tick = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            started.elapsed()
        });
        (writer.await.unwrap(), tick.await.unwrap())
    });
    release.join().unwrap();
    eprintln!("store write took {write_took:?}; a 20 ms timer task finished after {tick_took:?}");
    assert!(
        write_took >= Duration::from_millis(900),
        "the write waited for the lock"
    );
    assert!(
        tick_took < Duration::from_millis(500),
        "another task was stalled {tick_took:?} behind a blocked store call"
    );
}
