//! The whole path with a real plugin: apply → Running (confirmed by the plugin reading the
//! file back) → the duration ends → the file is gone → Finished; steering; halt; dry run.

use std::time::{Duration, Instant};

use super::support::*;

#[test]
fn a_disk_fill_runs_confirmed_and_is_removed_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = Plugin::start(dir.path(), 120);
    let hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);
    register_plugin(&api, "fs-lab", &plugin);

    let (code, created) = api.post(
        "/api/v1/experiments",
        Some(&fill_yaml("fill-web", "fs-lab", Some("2s"), "1MB")),
    );
    assert_eq!(code, 201, "{created}");
    let uid = uid(&created);
    let running = api.wait_phase(&uid, "Running", T);
    // The real side effect: exactly one fill file of exactly 1 MB in the web target only.
    let files = plugin.fill_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].1, 1_000_000);
    assert!(
        files[0].0.contains(&uid),
        "the file is named after the injection id: {files:?}"
    );
    assert_eq!(
        std::fs::read_dir(&plugin.db_dir).unwrap().count(),
        0,
        "db was not selected"
    );
    assert_eq!(running["status"]["targets"][0]["target"]["name"], "web");

    let finished = api.wait_phase(&uid, "Finished", T);
    assert!(
        plugin.fill_files().is_empty(),
        "the fault must be gone once Finished"
    );
    let deadline =
        chrono::DateTime::parse_from_rfc3339(finished["status"]["deadline"].as_str().unwrap())
            .unwrap();
    let recovered = chrono::DateTime::parse_from_rfc3339(
        finished["status"]["targets"][0]["recoveredAt"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let late = (recovered - deadline).num_milliseconds();
    assert!(
        (0..1000).contains(&late),
        "recovered {late} ms after the deadline"
    );
}

#[test]
fn pause_resume_stop_delete_halt_and_dry_run_with_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = Plugin::start(dir.path(), 120);
    let hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);
    register_plugin(&api, "fs-lab", &plugin);

    // Dry run: the plan names the web target and nothing is written.
    let (code, plan) = api.post(
        "/api/v1/experiments?dryRun=true",
        Some(&fill_yaml("plan", "fs-lab", None, "1MB")),
    );
    assert_eq!(code, 200, "{plan}");
    assert_eq!(plan["plan"]["targets"][0]["name"], "web");
    assert!(plugin.fill_files().is_empty());
    assert!(api.get("/api/v1/experiments")["items"]
        .as_array()
        .unwrap()
        .is_empty());

    let (_, created) = api.post(
        "/api/v1/experiments",
        Some(&fill_yaml("steer", "fs-lab", None, "64kB")),
    );
    let id = uid(&created);
    api.wait_phase(&id, "Running", T);
    assert_eq!(plugin.fill_files().len(), 1);

    api.post(&format!("/api/v1/experiments/{id}/pause"), None);
    api.wait_phase(&id, "Paused", T);
    assert!(plugin.fill_files().is_empty(), "paused: no fault in place");

    api.post(&format!("/api/v1/experiments/{id}/resume"), None);
    api.wait_phase(&id, "Running", T);
    assert_eq!(plugin.fill_files().len(), 1, "resumed: the fault is back");

    api.post(&format!("/api/v1/experiments/{id}/stop"), None);
    api.wait_phase(&id, "Aborted", T);
    assert!(plugin.fill_files().is_empty());

    let (code, deleted) = api.call(
        reqwest::Method::DELETE,
        &format!("/api/v1/experiments/{id}"),
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(deleted["status"]["archived"], true);

    // Halt-all stops what runs and refuses what comes.
    let (_, created) = api.post(
        "/api/v1/experiments",
        Some(&fill_yaml("halted", "fs-lab", None, "64kB")),
    );
    let id = uid(&created);
    api.wait_phase(&id, "Running", T);
    let (code, _) = api.post("/api/v1/halt", None);
    assert_eq!(code, 200);
    api.wait_phase(&id, "Aborted", T);
    assert!(plugin.fill_files().is_empty());
    let (code, refused) = api.post(
        "/api/v1/experiments",
        Some(&fill_yaml("after-halt", "fs-lab", None, "64kB")),
    );
    assert_eq!(code, 409);
    assert_eq!(refused["code"], "halted");
    api.call(reqwest::Method::DELETE, "/api/v1/halt", None);

    // A plugin error (path outside the target) surfaces in the experiment's status.
    let bad = fill_yaml("escape", "fs-lab", None, "64kB")
        .replace("size: 64kB", "size: 64kB\n    path: ../../etc");
    let (code, created) = api.post("/api/v1/experiments", Some(&bad));
    assert_eq!(code, 201, "{created}");
    let failed = api.wait_phase(&uid(&created), "Failed", T);
    let reason = failed["status"]["reason"].as_str().unwrap();
    assert!(reason.contains("outside"), "{reason}");
}

#[test]
fn an_unreachable_plugin_is_a_503_and_a_dead_plugin_fails_the_run_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let mut plugin = Plugin::start(dir.path(), 120);
    let hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);
    register_plugin(&api, "fs-lab", &plugin);
    let _ = plugin.child.kill();
    let _ = plugin.child.wait();
    let start = Instant::now();
    let (code, err) = api.post(
        "/api/v1/experiments",
        Some(&fill_yaml("nobody-home", "fs-lab", None, "1kB")),
    );
    assert_eq!(code, 503, "{err}");
    assert_eq!(err["code"], "environment_unreachable");
    assert!(err["message"].as_str().unwrap().contains("fs-lab"));
    assert!(start.elapsed() < Duration::from_secs(15));
}
