//! Schedules through the API, on a manual clock: fire instants, concurrency policies, history
//! pruning, restart catch-up and misses, and submission errors.

use std::sync::Arc;
use std::time::Duration;

use chaoshub::time::ManualClock;
use serde_json::Value;

use super::support::{restart_clocked, start_clocked, Sandbox};

const T: Duration = Duration::from_secs(10);
/// Midnight, 2030-01-01 UTC: every `*/10` second mark is a fire time of the schedules below.
const START: &str = "2030-01-01T00:00:00Z";

fn clock() -> Arc<ManualClock> {
    ManualClock::new(chaoshub::time::parse(START).unwrap())
}

fn unix(t: &str) -> i64 {
    chaoshub::time::parse(t).unwrap().timestamp()
}

fn schedule_yaml(name: &str, extra: &str, chaos_duration: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: Schedule\nmetadata:\n  name: {name}\nspec:\n  schedule: \"*/10 * * * * *\"\n  type: NetworkChaos\n  environment: mem\n{extra}  networkChaos:\n    action: delay\n    mode: all\n    selector:\n      labelSelectors:\n        app: web\n    delay:\n      latency: 50ms\n    duration: {chaos_duration}\n"
    )
}

async fn submit(s: &Sandbox, yaml: &str) -> String {
    let (code, body) = s.post_yaml("/api/v1/experiments", yaml).await;
    assert_eq!(code, 201, "{body:#}");
    let uid = body["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&uid, "Running", T).await;
    uid
}

async fn status(s: &Sandbox, uid: &str) -> Value {
    s.get(&format!("/api/v1/experiments/{uid}")).await.1
}

/// Waits until the schedule's history holds `n` runs with uids, and returns the status.
async fn wait_runs(s: &Sandbox, uid: &str, n: usize) -> Value {
    let start = std::time::Instant::now();
    loop {
        let v = status(s, uid).await;
        let runs = v["status"]["schedule"]["history"]
            .as_array()
            .map(|h| h.iter().filter(|r| r["uid"].is_string()).count())
            .unwrap_or(0);
        if runs == n {
            return v;
        }
        assert!(
            start.elapsed() < T,
            "schedule {uid} did not reach {n} runs: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The schedule's runs among all experiments (archived too), by name.
async fn run_names(s: &Sandbox, schedule: &str) -> Vec<String> {
    let mut names = Vec::new();
    for archived in ["false", "true"] {
        let (_, page) = s
            .get(&format!(
                "/api/v1/experiments?kind=NetworkChaos&archived={archived}&limit=1000"
            ))
            .await;
        for item in page["items"].as_array().unwrap() {
            let name = item["metadata"]["name"].as_str().unwrap();
            if name.starts_with(&format!("{schedule}-")) {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    names
}

/// Gives the hub time to act on something it should *not* do (a fire that must not happen).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn event_names(s: &Sandbox, uid: &str) -> Vec<(String, String)> {
    let (_, events) = s.get(&format!("/api/v1/events?experiment={uid}")).await;
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn fires_exactly_at_each_instant_as_the_clock_moves() {
    let clock = clock();
    let s = start_clocked(4, Arc::clone(&clock)).await;
    let uid = submit(
        &s,
        &schedule_yaml("tick", "  concurrencyPolicy: Allow\n", "2s"),
    )
    .await;
    let v = status(&s, &uid).await;
    assert_eq!(
        v["status"]["schedule"]["nextScheduledTime"],
        "2030-01-01T00:00:10.000Z"
    );
    clock.advance(Duration::from_millis(9_999));
    settle().await;
    assert!(run_names(&s, "tick").await.is_empty(), "fired early");

    clock.advance(Duration::from_millis(1));
    let v = wait_runs(&s, &uid, 1).await;
    let first = format!("tick-{}", unix("2030-01-01T00:00:10Z"));
    assert_eq!(run_names(&s, "tick").await, std::slice::from_ref(&first));
    let run = &v["status"]["schedule"]["history"][0];
    assert_eq!(run["scheduledTime"], "2030-01-01T00:00:10.000Z");
    assert_eq!(run["name"], first);
    // The run is an ordinary experiment linked to its schedule.
    let child = status(&s, run["uid"].as_str().unwrap()).await;
    assert_eq!(child["metadata"]["labels"]["chaoshub.dev/parent"], uid);
    assert_eq!(child["spec"]["environment"], "mem");
    s.wait_phase(run["uid"].as_str().unwrap(), "Running", T)
        .await;

    clock.advance(Duration::from_secs(10));
    wait_runs(&s, &uid, 2).await;
    settle().await;
    assert_eq!(
        run_names(&s, "tick").await,
        [first, format!("tick-{}", unix("2030-01-01T00:00:20Z"))]
    );
    let events = event_names(&s, &uid).await;
    assert_eq!(
        events
            .iter()
            .filter(|(n, _)| n == "chaoshub.schedule.fired")
            .count(),
        2
    );
}

#[tokio::test]
async fn forbid_skips_while_a_run_is_active_and_allow_does_not() {
    let clock = clock();
    let s = start_clocked(4, Arc::clone(&clock)).await;
    let forbid = submit(
        &s,
        &schedule_yaml("forbid", "  concurrencyPolicy: Forbid\n", "60s"),
    )
    .await;
    let allow = submit(
        &s,
        &schedule_yaml("allow", "  concurrencyPolicy: Allow\n", "60s"),
    )
    .await;
    clock.advance(Duration::from_secs(10));
    let v = wait_runs(&s, &forbid, 1).await;
    s.wait_phase(
        v["status"]["schedule"]["history"][0]["uid"]
            .as_str()
            .unwrap(),
        "Running",
        T,
    )
    .await;
    wait_runs(&s, &allow, 1).await;

    clock.advance(Duration::from_secs(10));
    wait_runs(&s, &allow, 2).await;
    let start = std::time::Instant::now();
    loop {
        let v = status(&s, &forbid).await;
        if v["status"]["schedule"]["skipped"] == 1 {
            break;
        }
        assert!(start.elapsed() < T, "Forbid did not record a skip: {v:#}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    settle().await;
    assert_eq!(run_names(&s, "forbid").await.len(), 1);
    assert_eq!(run_names(&s, "allow").await.len(), 2);
    let events = event_names(&s, &forbid).await;
    let skip = events
        .iter()
        .find(|(n, _)| n == "chaoshub.schedule.skipped")
        .expect("a skipped event");
    assert!(skip.1.contains("concurrencyPolicy is Forbid"), "{}", skip.1);
    assert!(skip
        .1
        .contains(&format!("forbid-{}", unix("2030-01-01T00:00:10Z"))));

    // Once the active run has ended (its 60 s pass on the clock), Forbid fires again.
    clock.advance(Duration::from_secs(50));
    let first = v["status"]["schedule"]["history"][0]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_phase(&first, "Finished", T).await;
    clock.advance(Duration::from_secs(10));
    let start = std::time::Instant::now();
    while run_names(&s, "forbid").await.len() < 2 {
        assert!(start.elapsed() < T, "Forbid never fired again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn history_limit_archives_old_finished_runs() {
    let clock = clock();
    let s = start_clocked(4, Arc::clone(&clock)).await;
    let uid = submit(
        &s,
        &schedule_yaml(
            "hist",
            "  concurrencyPolicy: Allow\n  historyLimit: 2\n",
            "1s",
        ),
    )
    .await;
    for n in 1..=4 {
        clock.advance(Duration::from_secs(10));
        // Each run is Running before the next tick, so its 1 s ends on the next advance.
        let start = std::time::Instant::now();
        loop {
            let v = status(&s, &uid).await;
            let history = v["status"]["schedule"]["history"]
                .as_array()
                .unwrap()
                .clone();
            let newest = history
                .last()
                .and_then(|r| r["uid"].as_str())
                .map(str::to_string);
            let fired = history
                .last()
                .is_some_and(|r| r["scheduledTime"] == format!("2030-01-01T00:00:{}0.000Z", n));
            if let (true, Some(newest)) = (fired, newest) {
                s.wait_phase(&newest, "Running", T).await;
                break;
            }
            assert!(start.elapsed() < T, "run {n} not created: {v:#}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    clock.advance(Duration::from_secs(2));
    let start = std::time::Instant::now();
    loop {
        let v = status(&s, &uid).await;
        let history = v["status"]["schedule"]["history"].as_array().unwrap();
        if history.len() == 2 && history.iter().all(|r| r["phase"] == "Finished") {
            assert_eq!(history[0]["scheduledTime"], "2030-01-01T00:00:30.000Z");
            break;
        }
        assert!(start.elapsed() < T, "history not pruned to 2: {v:#}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, archived) = s
        .get("/api/v1/experiments?kind=NetworkChaos&archived=true")
        .await;
    let archived: Vec<&str> = archived["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(archived.len(), 2, "{archived:?}");
    assert!(archived.contains(&format!("hist-{}", unix("2030-01-01T00:00:10Z")).as_str()));
    assert_eq!(s.adapter.active_count(), 0);
}

#[tokio::test]
async fn restart_catches_up_once_within_the_deadline_and_records_misses_beyond_it() {
    let clock = clock();
    let mut s = start_clocked(4, Arc::clone(&clock)).await;
    let uid = submit(
        &s,
        &schedule_yaml(
            "nightly",
            "  concurrencyPolicy: Allow\n  startingDeadlineSeconds: 5\n",
            "1s",
        ),
    )
    .await;
    clock.advance(Duration::from_secs(10));
    wait_runs(&s, &uid, 1).await;

    // Down across :20, back at :23 — three seconds late, within the 5 s deadline: one catch-up.
    s.stop().await;
    clock.advance(Duration::from_secs(13));
    restart_clocked(&mut s, Arc::clone(&clock)).await;
    wait_runs(&s, &uid, 2).await;
    settle().await;
    let names = run_names(&s, "nightly").await;
    assert_eq!(
        names,
        [
            format!("nightly-{}", unix("2030-01-01T00:00:10Z")),
            format!("nightly-{}", unix("2030-01-01T00:00:20Z")),
        ]
    );
    // Another restart with no time passing fires nothing again.
    restart_clocked(&mut s, Arc::clone(&clock)).await;
    settle().await;
    assert_eq!(
        run_names(&s, "nightly").await.len(),
        2,
        "double fire after restart"
    );
    assert_eq!(status(&s, &uid).await["status"]["schedule"]["missed"], 0);

    // Down from :23 to 01:07: :30 … 01:00 all passed, the latest 7 s late — beyond the
    // deadline. Nothing fires; all four are recorded as missed.
    s.stop().await;
    clock.advance(Duration::from_secs(44));
    restart_clocked(&mut s, Arc::clone(&clock)).await;
    let start = std::time::Instant::now();
    let v = loop {
        let v = status(&s, &uid).await;
        if v["status"]["schedule"]["missed"] == 4 {
            break v;
        }
        assert!(start.elapsed() < T, "misses not recorded: {v:#}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        v["status"]["schedule"]["lastScheduledTime"],
        "2030-01-01T00:01:00.000Z"
    );
    assert_eq!(
        v["status"]["schedule"]["nextScheduledTime"],
        "2030-01-01T00:01:10.000Z"
    );
    settle().await;
    assert_eq!(run_names(&s, "nightly").await.len(), 2);
    let events = event_names(&s, &uid).await;
    let missed = events
        .iter()
        .find(|(n, _)| n == "chaoshub.schedule.missed")
        .expect("a missed event");
    for t in ["00:00:30", "00:00:40", "00:00:50", "00:01:00"] {
        assert!(
            missed.1.contains(&format!("2030-01-01T{t}.000Z")),
            "{}",
            missed.1
        );
    }
    // And it carries on at the next instant.
    clock.advance(Duration::from_secs(3));
    wait_runs(&s, &uid, 3).await;
}

#[tokio::test]
async fn a_run_recorded_but_not_created_before_a_crash_is_created_exactly_once() {
    let clock = clock();
    let mut s = start_clocked(4, Arc::clone(&clock)).await;
    let uid = submit(
        &s,
        &schedule_yaml("crashy", "  concurrencyPolicy: Allow\n", "1s"),
    )
    .await;
    // Simulate the crash window: the fire time and the run's intent are stored, the run is not
    // created. The hub is stopped first so nothing acts on the store meanwhile.
    let store = Arc::clone(s.hub.as_ref().unwrap().hub.engine.store());
    s.stop().await;
    let mut row = store.get_experiment(&uid).unwrap().unwrap();
    let mut schedule = row.status.schedule.clone().unwrap();
    schedule.last_scheduled_time = Some("2030-01-01T00:00:10.000Z".into());
    schedule.history.push(chaoshub_schema::api::ScheduleRun {
        scheduled_time: "2030-01-01T00:00:10.000Z".into(),
        name: format!("crashy-{}", unix("2030-01-01T00:00:10Z")),
        uid: None,
        phase: None,
        error: None,
    });
    row.status.schedule = Some(schedule);
    store.update_status(&uid, &row.status, &[]).unwrap();
    drop(store);
    clock.advance(Duration::from_secs(11));
    restart_clocked(&mut s, Arc::clone(&clock)).await;
    wait_runs(&s, &uid, 1).await;
    restart_clocked(&mut s, Arc::clone(&clock)).await;
    settle().await;
    assert_eq!(
        run_names(&s, "crashy").await,
        [format!("crashy-{}", unix("2030-01-01T00:00:10Z"))]
    );
}

#[tokio::test]
async fn stopping_a_schedule_stops_its_runs() {
    let clock = clock();
    let s = start_clocked(4, Arc::clone(&clock)).await;
    let uid = submit(
        &s,
        &schedule_yaml("halting", "  concurrencyPolicy: Allow\n", "60s"),
    )
    .await;
    clock.advance(Duration::from_secs(10));
    let v = wait_runs(&s, &uid, 1).await;
    let run = v["status"]["schedule"]["history"][0]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_phase(&run, "Running", T).await;
    assert_eq!(s.adapter.active_count(), 2);
    let (code, _) = s.post(&format!("/api/v1/experiments/{uid}/stop")).await;
    assert_eq!(code, 200);
    s.wait_phase(&uid, "Aborted", T).await;
    s.wait_phase(&run, "Aborted", T).await;
    assert_eq!(s.adapter.active_count(), 0);
    clock.advance(Duration::from_secs(10));
    settle().await;
    assert_eq!(run_names(&s, "halting").await.len(), 1);
}

#[tokio::test]
async fn bad_schedules_are_refused_with_field_paths() {
    let s = Sandbox::start(2).await;
    let cases = [
        ("\"61 * * * *\"", 400, "spec.schedule"),
        ("\"TZ=Asia/Tokyo 0 3 * * *\"", 400, "spec.schedule"),
        ("\"@every soon\"", 400, "spec.schedule"),
    ];
    for (expr, code, path) in cases {
        let yaml = schedule_yaml("bad", "", "1s").replace("\"*/10 * * * * *\"", expr);
        let (got, body) = s.post_yaml("/api/v1/experiments", &yaml).await;
        assert_eq!(got, code, "{expr}: {body:#}");
        let paths: Vec<&str> = body["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["path"].as_str().unwrap())
            .collect();
        assert!(paths.contains(&path), "{expr}: {body:#}");
    }
    // A kind the environment cannot run: the same 422 as a single experiment, with its place.
    let yaml = "apiVersion: chaos-mesh.org/v1alpha1\nkind: Schedule\nmetadata: {name: corrupt}\nspec:\n  schedule: \"@every 1m\"\n  type: NetworkChaos\n  environment: mem\n  networkChaos:\n    action: corrupt\n    mode: all\n    selector: {labelSelectors: {app: web}}\n    corrupt: {corrupt: \"40\"}\n";
    let (code, body) = s.post_yaml("/api/v1/experiments", yaml).await;
    assert_eq!(code, 422, "{body:#}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("spec.networkChaos") && message.contains("NetworkChaos/corrupt"),
        "{message}"
    );
    // No environment anywhere: 400 naming where to put one.
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &schedule_yaml("noenv", "", "1s").replace("  environment: mem\n", ""),
        )
        .await;
    assert_eq!(code, 400, "{body:#}");
    assert_eq!(body["details"][0]["path"], "spec.networkChaos.environment");
}

fn every_yaml(name: &str, every: &str, extra: &str, chaos_duration: &str) -> String {
    schedule_yaml(name, extra, chaos_duration)
        .replace("\"*/10 * * * * *\"", &format!("\"{every}\""))
}

fn at(t: &Value) -> chrono::DateTime<chrono::Utc> {
    chaoshub::time::parse(t.as_str().unwrap_or_else(|| panic!("not a time: {t}"))).unwrap()
}

/// `@every` is anchored to the first fire time: runs that start and end between fires (each
/// a pass over the schedule) never move the grid, and `nextScheduledTime` stays on it.
#[tokio::test]
async fn every_stays_on_its_grid_while_runs_come_and_go_on_a_manual_clock() {
    let clock = clock();
    let s = start_clocked(4, Arc::clone(&clock)).await;
    let uid = submit(&s, &every_yaml("grid", "@every 3s", "", "1s")).await;
    let start = chaoshub::time::parse(START).unwrap();
    let grid = |k: i64| start + chrono::Duration::seconds(3 * k);
    let v = status(&s, &uid).await;
    assert_eq!(at(&v["status"]["schedule"]["nextScheduledTime"]), grid(1));
    for k in 1..=10 {
        // To the fire time: from the last run's end (one second past the previous fire).
        clock.set(grid(k));
        let v = wait_runs(&s, &uid, k as usize).await;
        let history = v["status"]["schedule"]["history"].as_array().unwrap();
        let run = history.last().unwrap();
        assert_eq!(at(&run["scheduledTime"]), grid(k), "{v:#}");
        let child = s
            .wait_phase(run["uid"].as_str().unwrap(), "Running", T)
            .await;
        let late = at(&child["status"]["startedAt"]) - grid(k);
        assert!(
            late >= chrono::Duration::zero() && late <= chrono::Duration::milliseconds(100),
            "run {k} started {late} after its fire time"
        );
        assert_eq!(
            at(&status(&s, &uid).await["status"]["schedule"]["nextScheduledTime"]),
            grid(k + 1)
        );
        // The run ends one second later; the schedule's pass over that must not move the grid.
        clock.set(grid(k) + chrono::Duration::seconds(1));
        s.wait_phase(run["uid"].as_str().unwrap(), "Finished", T)
            .await;
        let started = std::time::Instant::now();
        loop {
            let v = status(&s, &uid).await;
            let ended = v["status"]["schedule"]["history"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["uid"] == run["uid"] && r["phase"] == "Finished");
            if ended {
                assert_eq!(
                    at(&v["status"]["schedule"]["nextScheduledTime"]),
                    grid(k + 1),
                    "a pass between fires moved the grid: {v:#}"
                );
                break;
            }
            assert!(
                started.elapsed() < T,
                "the schedule never saw run {k} end: {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let names = run_names(&s, "grid").await;
    let expected: Vec<String> = (1..=10)
        .map(|k| format!("grid-{}", grid(k).timestamp()))
        .collect();
    assert_eq!(names, expected);
}

/// A fire time Forbid skipped stays skipped: when the active run ends between fires, the next
/// run is the next grid time, not the skipped one fired late.
#[tokio::test]
async fn every_keeps_a_forbid_skip_skipped_and_the_grid_intact() {
    let clock = clock();
    let s = start_clocked(4, Arc::clone(&clock)).await;
    let uid = submit(
        &s,
        &every_yaml("skip", "@every 3s", "  concurrencyPolicy: Forbid\n", "4s"),
    )
    .await;
    let start = chaoshub::time::parse(START).unwrap();
    let grid = |k: i64| start + chrono::Duration::seconds(3 * k);
    clock.set(grid(1));
    let v = wait_runs(&s, &uid, 1).await;
    let first = v["status"]["schedule"]["history"][0]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_phase(&first, "Running", T).await;
    // 00:00:06: the 4 s run is still active, so Forbid skips this fire time.
    clock.set(grid(2));
    let started = std::time::Instant::now();
    while status(&s, &uid).await["status"]["schedule"]["skipped"] != 1 {
        assert!(started.elapsed() < T, "no skip recorded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // 00:00:07: the run ends; the skipped 00:00:06 is not fired late.
    clock.set(grid(1) + chrono::Duration::seconds(4));
    s.wait_phase(&first, "Finished", T).await;
    settle().await;
    let v = status(&s, &uid).await;
    assert_eq!(run_names(&s, "skip").await.len(), 1, "{v:#}");
    assert_eq!(at(&v["status"]["schedule"]["nextScheduledTime"]), grid(3));
    clock.set(grid(3));
    let v = wait_runs(&s, &uid, 2).await;
    assert_eq!(
        at(&v["status"]["schedule"]["history"][1]["scheduledTime"]),
        grid(3)
    );
}

/// The same on the real clock: ten `@every 3s` fires, each run (one second long) starting
/// within 100 ms of its grid time, and every `nextScheduledTime` seen on the grid.
#[tokio::test]
async fn every_fires_on_its_grid_on_the_real_clock() {
    let s = Sandbox::start(4).await;
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &every_yaml("real", "@every 3s", "  historyLimit: 20\n", "1s"),
        )
        .await;
    assert_eq!(code, 201, "{body:#}");
    let uid = body["metadata"]["uid"].as_str().unwrap().to_string();
    let v = s.wait_phase(&uid, "Running", T).await;
    let first = at(&v["status"]["schedule"]["nextScheduledTime"]);
    let on_grid = |t: chrono::DateTime<chrono::Utc>| {
        let off = (t - first).num_milliseconds();
        off >= 0 && off % 3000 == 0
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(3 * 10 + 10);
    loop {
        let v = status(&s, &uid).await;
        let schedule = &v["status"]["schedule"];
        if let Some(next) = schedule["nextScheduledTime"].as_str() {
            let next = chaoshub::time::parse(next).unwrap();
            assert!(
                on_grid(next),
                "nextScheduledTime {next} is off the grid from {first}"
            );
        }
        let runs: Vec<&Value> = schedule["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["uid"].is_string())
            .collect();
        if runs.len() >= 10 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ten runs did not happen in time: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.post(&format!("/api/v1/experiments/{uid}/stop")).await;
    let v = s.wait_phase(&uid, "Aborted", T).await;
    let runs = v["status"]["schedule"]["history"].as_array().unwrap();
    assert!(runs.len() >= 10, "{v:#}");
    for (k, run) in runs.iter().take(10).enumerate() {
        let scheduled = at(&run["scheduledTime"]);
        assert_eq!(
            scheduled,
            first + chrono::Duration::seconds(3 * k as i64),
            "run {k} is off the grid: {v:#}"
        );
        let child = status(&s, run["uid"].as_str().unwrap()).await;
        let late = at(&child["status"]["startedAt"]) - scheduled;
        assert!(
            late >= chrono::Duration::zero() && late <= chrono::Duration::milliseconds(100),
            "run {k} started {late} after its fire time {scheduled}"
        );
    }
}
