//! Lifecycle through the API: confirm, end on time, pause/resume/stop/delete, halt-all,
//! dry runs, rollback on partial failure, recovery after a hub restart.

use std::time::Duration;

use chrono::DateTime;

use super::support::{delay_yaml, Sandbox};

const T: Duration = Duration::from_secs(10);

fn ms_between(a: &serde_json::Value, b: &serde_json::Value) -> i64 {
    let a = DateTime::parse_from_rfc3339(a.as_str().unwrap()).unwrap();
    let b = DateTime::parse_from_rfc3339(b.as_str().unwrap()).unwrap();
    (b - a).num_milliseconds()
}

#[tokio::test]
async fn runs_confirmed_then_finishes_on_time() {
    let s = Sandbox::start(4).await;
    let (code, created) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("web-delay", Some("600ms"), ""),
        )
        .await;
    assert_eq!(code, 201, "{created:#}");
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(created["status"]["phase"], "Pending");
    let running = s.wait_phase(&uid, "Running", T).await;
    // Running means the adapter read the fault back: both web hosts hold it.
    assert_eq!(s.adapter.active_count(), 2);
    let targets = running["status"]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    assert!(targets
        .iter()
        .all(|t| t["phase"] == "Injected" && t["injectedAt"].is_string()));
    assert!(targets
        .iter()
        .all(|t| t["target"]["labels"]["app"] == "web"));
    let done = s.wait_phase(&uid, "Finished", T).await;
    assert_eq!(
        s.adapter.active_count(),
        0,
        "the fault must be gone once Finished"
    );
    let deadline = &done["status"]["deadline"];
    for t in done["status"]["targets"].as_array().unwrap() {
        assert_eq!(t["phase"], "Recovered");
        let late = ms_between(deadline, &t["recoveredAt"]);
        assert!(
            (0..1000).contains(&late),
            "recovered {late} ms after the deadline"
        );
    }
    let (_, events) = s.get(&format!("/api/v1/events?experiment={uid}")).await;
    let names: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for expected in [
        "chaoshub.experiment.created",
        "chaoshub.experiment.injecting",
        "chaoshub.target.injected",
        "chaoshub.experiment.running",
        "chaoshub.experiment.recovering",
        "chaoshub.target.recovered",
        "chaoshub.experiment.finished",
    ] {
        assert!(
            names.contains(&expected),
            "missing event {expected} in {names:?}"
        );
    }
    // The event list is also reachable by name.
    let (code, by_name) = s.get("/api/v1/events?experiment=web-delay").await;
    assert_eq!(code, 200);
    assert_eq!(by_name["items"].as_array().unwrap().len(), names.len());
}

#[tokio::test]
async fn pause_resume_stop_delete() {
    let s = Sandbox::start(2).await;
    let (_, created) = s
        .post_yaml("/api/v1/experiments", &delay_yaml("steer", None, ""))
        .await;
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&uid, "Running", T).await;
    assert_eq!(s.adapter.active_count(), 1);

    let (code, _) = s.post(&format!("/api/v1/experiments/{uid}/pause")).await;
    assert_eq!(code, 200);
    s.wait_phase(&uid, "Paused", T).await;
    assert_eq!(
        s.adapter.active_count(),
        0,
        "a paused experiment holds no fault"
    );

    let (code, _) = s.post("/api/v1/experiments/steer/resume").await;
    assert_eq!(code, 200);
    let resumed = s.wait_phase(&uid, "Running", T).await;
    assert_eq!(s.adapter.active_count(), 1);
    assert_eq!(resumed["status"]["targets"][0]["injections"], 2);

    let (code, _) = s.post(&format!("/api/v1/experiments/{uid}/stop")).await;
    assert_eq!(code, 200);
    let stopped = s.wait_phase(&uid, "Aborted", T).await;
    assert_eq!(stopped["status"]["reason"], "stopped by user");
    assert_eq!(s.adapter.active_count(), 0);

    // Resuming a finished experiment is a conflict, not a crash.
    let (code, body) = s.post(&format!("/api/v1/experiments/{uid}/resume")).await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["code"], "wrong_phase");

    // Delete of a running one recovers first, then archives.
    let (_, created) = s
        .post_yaml("/api/v1/experiments", &delay_yaml("to-delete", None, ""))
        .await;
    let uid2 = created["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&uid2, "Running", T).await;
    let (code, deleted) = s.delete(&format!("/api/v1/experiments/{uid2}")).await;
    assert_eq!(code, 200, "{deleted}");
    assert_eq!(deleted["status"]["phase"], "Aborted");
    assert_eq!(deleted["status"]["archived"], true);
    assert_eq!(s.adapter.active_count(), 0);
    let (_, archives) = s.get("/api/v1/archives").await;
    assert!(archives["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["metadata"]["uid"] == uid2.as_str()));
    let (_, live) = s.get("/api/v1/experiments").await;
    assert!(!live["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["metadata"]["uid"] == uid2.as_str()));
}

#[tokio::test]
async fn pause_then_resume_keeps_the_remaining_duration() {
    let s = Sandbox::start(2).await;
    let (_, created) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("remaining", Some("3s"), ""),
        )
        .await;
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&uid, "Running", T).await;
    s.post(&format!("/api/v1/experiments/{uid}/pause")).await;
    let paused = s.wait_phase(&uid, "Paused", T).await;
    let remaining = paused["status"]["remainingMs"].as_u64().unwrap();
    assert!(
        remaining > 2000 && remaining <= 3000,
        "remaining {remaining}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.post(&format!("/api/v1/experiments/{uid}/resume")).await;
    let running = s.wait_phase(&uid, "Running", T).await;
    let deadline =
        DateTime::parse_from_rfc3339(running["status"]["deadline"].as_str().unwrap()).unwrap();
    let left = (deadline.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
    assert!(
        left > 1500,
        "the pause must not eat the duration (left {left} ms)"
    );
}

#[tokio::test]
async fn halt_all_stops_everything_and_blocks_new_runs() {
    let s = Sandbox::start(2).await;
    let mut uids = Vec::new();
    for name in ["h1", "h2"] {
        let (_, created) = s
            .post_yaml("/api/v1/experiments", &delay_yaml(name, None, ""))
            .await;
        uids.push(created["metadata"]["uid"].as_str().unwrap().to_string());
    }
    for uid in &uids {
        s.wait_phase(uid, "Running", T).await;
    }
    let (code, halt) = s
        .request(
            reqwest::Method::POST,
            "/api/v1/halt",
            Some(("application/json", r#"{"reason":"game day over"}"#.into())),
        )
        .await;
    assert_eq!(code, 200, "{halt}");
    assert_eq!(halt["halted"], true);
    assert_eq!(halt["stopped"].as_array().unwrap().len(), 2);
    for uid in &uids {
        let v = s.wait_phase(uid, "Aborted", T).await;
        assert_eq!(v["status"]["reason"], "halted: game day over");
    }
    assert_eq!(s.adapter.active_count(), 0);
    let (code, body) = s
        .post_yaml("/api/v1/experiments", &delay_yaml("h3", None, ""))
        .await;
    assert_eq!(code, 409);
    assert_eq!(body["code"], "halted");
    // A dry run is still allowed while halted: it injects nothing.
    let (code, _) = s
        .post_yaml(
            "/api/v1/experiments?dryRun=true",
            &delay_yaml("h3", None, ""),
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = s.delete("/api/v1/halt").await;
    assert_eq!(code, 200);
    let (code, _) = s
        .post_yaml("/api/v1/experiments", &delay_yaml("h3", None, ""))
        .await;
    assert_eq!(code, 201);
}

#[tokio::test]
async fn dry_run_plans_without_injecting_or_storing() {
    let s = Sandbox::start(4).await;
    let (code, plan) = s
        .post_yaml(
            "/api/v1/experiments?dryRun=true",
            &delay_yaml("plan", Some("30s"), ""),
        )
        .await;
    assert_eq!(code, 200, "{plan:#}");
    assert_eq!(plan["valid"], true);
    assert_eq!(plan["plan"]["targets"].as_array().unwrap().len(), 2);
    assert_eq!(plan["plan"]["matched"], 2);
    assert_eq!(plan["plan"]["environment"], "mem");
    assert_eq!(s.adapter.world.lock().unwrap().inject_calls, 0);
    let (_, list) = s.get("/api/v1/experiments").await;
    assert!(list["items"].as_array().unwrap().is_empty());

    // With no environment at all, a dry run is pure validation.
    let no_env = delay_yaml("plan", None, "").replace("  environment: mem\n", "");
    let (code, result) = s
        .post_yaml("/api/v1/experiments?dryRun=true", &no_env)
        .await;
    assert_eq!(code, 200, "{result:#}");
    assert!(result.get("plan").is_none());
    // ... and the same without dryRun names the missing field.
    let (code, err) = s.post_yaml("/api/v1/experiments", &no_env).await;
    assert_eq!(code, 400);
    assert_eq!(err["details"][0]["path"], "spec.environment");

    // ?env= overrides spec.environment; an unknown one is named.
    let (code, err) = s
        .post_yaml(
            "/api/v1/experiments?env=nowhere",
            &delay_yaml("plan", None, ""),
        )
        .await;
    assert_eq!(code, 400, "{err}");
    assert_eq!(err["details"][0]["path"], "env");
    assert!(err["details"][0]["message"]
        .as_str()
        .unwrap()
        .contains("mem"));
}

#[tokio::test]
async fn a_failed_target_rolls_back_the_others() {
    let s = Sandbox::start(6).await;
    s.adapter
        .world
        .lock()
        .unwrap()
        .fail_inject_on
        .insert("host-2".into());
    let (_, created) = s
        .post_yaml("/api/v1/experiments", &delay_yaml("partial", None, ""))
        .await;
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let failed = s.wait_phase(&uid, "Failed", T).await;
    let reason = failed["status"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("host-2") && reason.contains("simulated failure"),
        "{reason}"
    );
    assert_eq!(
        s.adapter.active_count(),
        0,
        "targets injected before the failure are rolled back"
    );
    let targets = failed["status"]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3);
    assert!(targets.iter().all(|t| t["recoveredAt"].is_string()));
    assert!(targets
        .iter()
        .any(|t| t["phase"] == "Failed" && t["error"].as_str().unwrap().contains("simulated")));
}

/// A far side that drops out during the inject call (an agent restarting, which may or may not
/// have applied the fault) does not fail the experiment: what it may hold is removed, and the
/// fault is injected again for what is left of the window.
#[tokio::test]
async fn a_far_side_dropping_out_during_injection_is_cleared_and_injected_again() {
    let s = Sandbox::start(2).await;
    s.adapter.world.lock().unwrap().drop_after_inject = 1;
    let (_, created) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("flaky-link", Some("3s"), ""),
        )
        .await;
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let running = s.wait_phase(&uid, "Running", T).await;
    assert_eq!(s.adapter.active_count(), 1, "{running:#}");
    {
        let w = s.adapter.world.lock().unwrap();
        assert_eq!(w.inject_calls, 2, "injected once more after the drop");
        assert!(w.recover_calls >= 1, "the partial fault was removed first");
    }
    let done = s.wait_phase(&uid, "Finished", T).await;
    assert_eq!(s.adapter.active_count(), 0);
    assert_eq!(
        done["status"]["targets"][0]["phase"], "Recovered",
        "{done:#}"
    );
    let (_, events) = s.get(&format!("/api/v1/events?experiment={uid}")).await;
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("dropped out during injection")),
        "{events:#}"
    );
}

/// A far side that took the fault and restarted without it before the read-back (out of reach,
/// then back with the fault gone) is injected again at once, not left to the confirmation
/// timeout and failed.
#[tokio::test]
async fn a_far_side_restarting_before_the_read_back_is_injected_again() {
    let s = Sandbox::start(2).await;
    s.adapter.world.lock().unwrap().restart_after_inject = 1;
    let (_, created) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("restarted", Some("3s"), ""),
        )
        .await;
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let running = s.wait_phase(&uid, "Running", T).await;
    assert_eq!(s.adapter.active_count(), 1, "{running:#}");
    assert_eq!(s.adapter.world.lock().unwrap().inject_calls, 2);
    s.wait_phase(&uid, "Finished", T).await;
    assert_eq!(s.adapter.active_count(), 0);
}

/// A far side that keeps dropping out fails the experiment after a bounded number of tries,
/// with nothing left in place.
#[tokio::test]
async fn a_far_side_that_keeps_dropping_out_fails_the_experiment_after_bounded_retries() {
    let s = Sandbox::start(2).await;
    s.adapter.world.lock().unwrap().drop_after_inject = usize::MAX;
    let (_, created) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("never-there", Some("60s"), ""),
        )
        .await;
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let failed = s.wait_phase(&uid, "Failed", T).await;
    let reason = failed["status"]["reason"].as_str().unwrap();
    assert!(reason.contains("connection dropped"), "{reason}");
    assert_eq!(s.adapter.active_count(), 0, "{failed:#}");
    assert_eq!(
        s.adapter.world.lock().unwrap().inject_calls,
        6,
        "the first try and five retries"
    );
}

#[tokio::test]
async fn empty_selection_fails_with_a_reason() {
    let s = Sandbox::start(3).await;
    let yaml = delay_yaml("nobody", None, "").replace("app: web", "app: nothing-like-this");
    let (_, created) = s.post_yaml("/api/v1/experiments", &yaml).await;
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let failed = s.wait_phase(&uid, "Failed", T).await;
    assert!(
        failed["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("no targets matched"),
        "{failed:#}"
    );
}

#[tokio::test]
async fn recovery_failures_are_retried_until_the_fault_is_gone() {
    let s = Sandbox::start(2).await;
    let (_, created) = s
        .post_yaml("/api/v1/experiments", &delay_yaml("sticky", None, ""))
        .await;
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&uid, "Running", T).await;
    s.adapter.world.lock().unwrap().fail_recover = true;
    s.post(&format!("/api/v1/experiments/{uid}/stop")).await;
    let stuck = s.wait_phase(&uid, "Recovering", T).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        s.adapter.world.lock().unwrap().recover_calls >= 2,
        "recovery must be retried"
    );
    assert_eq!(s.adapter.active_count(), 1);
    let _ = stuck;
    let (_, v) = s.get(&format!("/api/v1/experiments/{uid}")).await;
    assert!(v["status"]["targets"][0]["error"]
        .as_str()
        .unwrap()
        .contains("simulated recovery failure"));
    s.adapter.world.lock().unwrap().fail_recover = false;
    s.wait_phase(&uid, "Aborted", T).await;
    assert_eq!(s.adapter.active_count(), 0);
}

#[tokio::test]
async fn a_restarted_hub_recovers_what_expired_while_it_was_down() {
    let mut s = Sandbox::start(2).await;
    let (_, short) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("short", Some("500ms"), ""),
        )
        .await;
    let (_, long) = s
        .post_yaml("/api/v1/experiments", &delay_yaml("long", Some("4s"), ""))
        .await;
    let short = short["metadata"]["uid"].as_str().unwrap().to_string();
    let long = long["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&short, "Running", T).await;
    s.wait_phase(&long, "Running", T).await;
    // The hub goes away with both faults in place; nothing recovers them meanwhile.
    s.stop().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(s.adapter.active_count(), 2);
    s.restart().await;
    let done = s
        .wait_phase(&short, "Finished", Duration::from_secs(3))
        .await;
    assert_eq!(done["status"]["targets"][0]["phase"], "Recovered");
    // The long one is still inside its window and keeps running until its deadline.
    let (_, v) = s.get(&format!("/api/v1/experiments/{long}")).await;
    assert_eq!(v["status"]["phase"], "Running");
    assert_eq!(s.adapter.active_count(), 1);
    s.wait_phase(&long, "Finished", T).await;
    assert_eq!(s.adapter.active_count(), 0);
    // History survived the restart.
    let (_, events) = s.get(&format!("/api/v1/events?experiment={short}")).await;
    assert!(events["items"].as_array().unwrap().len() >= 6);
}

#[tokio::test]
async fn capability_and_reachability_errors() {
    let s = Sandbox::start(2).await;
    let kill = "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata: {name: kill}\nspec:\n  action: container-kill\n  mode: one\n  containerNames: [web]\n  selector: {labelSelectors: {app: web}}\n  environment: mem\n";
    let (code, err) = s.post_yaml("/api/v1/experiments", kill).await;
    assert_eq!(code, 422, "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("PodChaos/container-kill") && message.contains("\"mem\""),
        "{message}"
    );
    s.adapter.world.lock().unwrap().unreachable = true;
    let (code, err) = s
        .post_yaml("/api/v1/experiments", &delay_yaml("x", None, ""))
        .await;
    assert_eq!(code, 503, "{err}");
    assert_eq!(err["code"], "environment_unreachable");
}

#[tokio::test]
async fn names_conflict_only_while_live() {
    let s = Sandbox::start(2).await;
    let (code, first) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("same", Some("300ms"), ""),
        )
        .await;
    assert_eq!(code, 201);
    let (code, err) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("same", Some("300ms"), ""),
        )
        .await;
    assert_eq!(code, 409, "{err}");
    assert_eq!(err["code"], "already_exists");
    s.wait_phase(first["metadata"]["uid"].as_str().unwrap(), "Finished", T)
        .await;
    // Once finished, the name can be used again (the old run is archived).
    let (code, _) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("same", Some("300ms"), ""),
        )
        .await;
    assert_eq!(code, 201);
}

#[tokio::test]
async fn listing_filters_and_pages() {
    let s = Sandbox::start(2).await;
    for i in 0..5 {
        let (code, _) = s
            .post_yaml(
                "/api/v1/experiments",
                &delay_yaml(&format!("page-{i}"), None, ""),
            )
            .await;
        assert_eq!(code, 201);
    }
    let (_, first) = s.get("/api/v1/experiments?limit=2").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    // Newest first.
    assert_eq!(first["items"][0]["metadata"]["name"], "page-4");
    let token = first["continue"]
        .as_str()
        .expect("a continue token")
        .to_string();
    let (_, second) = s
        .get(&format!("/api/v1/experiments?limit=2&continue={token}"))
        .await;
    assert_eq!(second["items"][0]["metadata"]["name"], "page-2");
    let token = second["continue"].as_str().unwrap().to_string();
    let (_, last) = s
        .get(&format!("/api/v1/experiments?limit=2&continue={token}"))
        .await;
    assert_eq!(last["items"].as_array().unwrap().len(), 1);
    assert!(last.get("continue").is_none());
    let (_, by_kind) = s.get("/api/v1/experiments?kind=PodChaos").await;
    assert!(by_kind["items"].as_array().unwrap().is_empty());
    let (_, by_env) = s.get("/api/v1/experiments?env=mem&namespace=default").await;
    assert_eq!(by_env["items"].as_array().unwrap().len(), 5);
    let (code, _) = s.post("/api/v1/halt").await;
    assert_eq!(code, 200);
    let (_, aborted) = s.get("/api/v1/experiments?phase=Aborted").await;
    // Halt-all stops them; give the engine a moment.
    let _ = aborted;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, aborted) = s.get("/api/v1/experiments?phase=Aborted").await;
    assert_eq!(aborted["items"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn environments_are_validated_and_listed() {
    let s = Sandbox::start(1).await;
    let (code, err) = s
        .post_yaml("/api/v1/environments", "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: odd}\nspec: {adapter: teleporter}\n")
        .await;
    assert_eq!(code, 400, "{err}");
    assert_eq!(err["details"][0]["path"], "spec.adapter");
    let message = err["details"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("teleporter") && message.contains("webhook") && message.contains("memory"),
        "{message}"
    );
    let (code, _) = s.post_yaml("/api/v1/environments", "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: mem}\nspec: {adapter: memory}\n").await;
    assert_eq!(
        code, 409,
        "registering a name twice without ?replace=true is a conflict"
    );
    let (_, list) = s.get("/api/v1/environments").await;
    assert_eq!(list["items"][0]["metadata"]["name"], "mem");
    let (code, targets) = s
        .get("/api/v1/environments/mem/targets?labelSelector=app%3Dweb")
        .await;
    assert_eq!(code, 200, "{targets}");
    assert_eq!(targets["items"].as_array().unwrap().len(), 1);
    let (_, created) = s
        .post_yaml("/api/v1/experiments", &delay_yaml("busy", None, ""))
        .await;
    s.wait_phase(created["metadata"]["uid"].as_str().unwrap(), "Running", T)
        .await;
    let (code, err) = s.delete("/api/v1/environments/mem").await;
    assert_eq!(
        code, 409,
        "an environment with a running experiment cannot go: {err}"
    );
    assert_eq!(err["code"], "environment_in_use");
    let (_, adapters) = s.get("/api/v1/adapters").await;
    assert!(adapters["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["type"] == "webhook"));
}

#[tokio::test]
async fn a_saturated_environment_still_recovers_on_time() {
    let mut s = Sandbox::start(2).await;
    // One injection at a time into `mem`, and each one is slow.
    s.tweak = |c| c.engine.max_injecting_per_environment = 1;
    s.restart().await;
    s.adapter.world.lock().unwrap().inject_delay = Duration::from_millis(300);
    let (_, first) = s
        .post_yaml(
            "/api/v1/experiments",
            &delay_yaml("first", Some("500ms"), ""),
        )
        .await;
    let first = first["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&first, "Running", T).await;
    // A queue of slow injections builds up behind the permit...
    let mut queued = Vec::new();
    for i in 0..3 {
        let (_, v) = s
            .post_yaml(
                "/api/v1/experiments",
                &delay_yaml(&format!("queued-{i}"), Some("5s"), ""),
            )
            .await;
        queued.push(v["metadata"]["uid"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = {
        let mut n = 0;
        for uid in &queued {
            let (_, v) = s.get(&format!("/api/v1/experiments/{uid}")).await;
            if v["status"]["phase"] == "Pending" {
                assert!(
                    v["status"].get("deadline").is_none(),
                    "a waiting experiment's clock must not run"
                );
                n += 1;
            }
        }
        n
    };
    assert!(
        waiting >= 2,
        "only one experiment may inject at a time ({waiting} waiting)"
    );
    // ...but the running experiment's recovery takes no permit and is on time.
    let done = s.wait_phase(&first, "Finished", T).await;
    let late = ms_between(
        &done["status"]["deadline"],
        &done["status"]["targets"][0]["recoveredAt"],
    );
    assert!(
        late < 250,
        "recovery waited behind injections: {late} ms late"
    );
    for uid in &queued {
        s.wait_phase(uid, "Running", T).await;
    }
}
