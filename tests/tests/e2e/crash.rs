//! Kill -9 the hub mid-experiment, start it again on the same data dir: the fault whose
//! deadline passed while it was down is removed at once, and the history is intact.

use std::time::{Duration, Instant};

use super::support::*;

#[test]
fn sigkill_mid_experiment_then_restart_recovers_on_time() {
    let dir = tempfile::tempdir().unwrap();
    // A long grace, so only the hub (not the plugin's own dead man's switch) can remove it.
    let plugin = Plugin::start(dir.path(), 300);
    let mut hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);
    register_plugin(&api, "fs-lab", &plugin);
    let (_, short) = api.post(
        "/api/v1/experiments",
        Some(&fill_yaml("short", "fs-lab", Some("2s"), "10kB")),
    );
    let (_, long) = api.post(
        "/api/v1/experiments",
        Some(&fill_yaml("long", "fs-lab", Some("8s"), "20kB")),
    );
    let (short, long) = (uid(&short), uid(&long));
    api.wait_phase(&short, "Running", T);
    api.wait_phase(&long, "Running", T);
    let events_before = api.get(&format!("/api/v1/events?experiment={short}"))["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(plugin.fill_files().len(), 2);

    hub.kill9();
    // While the hub is dead the short experiment's deadline passes; nothing removes its fault.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        plugin.fill_files().len(),
        2,
        "no one but the hub may remove the fault here"
    );

    let restarted_at = Instant::now();
    let hub2 = HubProcess::start(dir.path());
    let api = Api::new(&hub2.url);
    let done = api.wait_phase(&short, "Finished", T);
    let recovery_time = restarted_at.elapsed();
    assert!(
        recovery_time < Duration::from_secs(3),
        "recovered {recovery_time:?} after restart"
    );
    let files = plugin.fill_files();
    assert_eq!(
        files.len(),
        1,
        "only the expired fault is removed: {files:?}"
    );
    assert_eq!(files[0].1, 20_000);
    // History is intact and continues.
    let events = api.get(&format!("/api/v1/events?experiment={short}"))["items"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        events.len() > events_before,
        "events before the crash plus the recovery"
    );
    assert_eq!(events[0]["name"], "chaoshub.experiment.created");
    assert_eq!(done["status"]["targets"][0]["phase"], "Recovered");

    // The long one is still in its window: it keeps running and ends on time.
    assert_eq!(api.experiment(&long)["status"]["phase"], "Running");
    let finished = api.wait_phase(&long, "Finished", T);
    assert!(plugin.fill_files().is_empty());
    let deadline =
        chrono::DateTime::parse_from_rfc3339(finished["status"]["deadline"].as_str().unwrap())
            .unwrap();
    let recovered = chrono::DateTime::parse_from_rfc3339(
        finished["status"]["targets"][0]["recoveredAt"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!((recovered - deadline).num_milliseconds() < 1000);
}

#[test]
fn sigkill_during_injection_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = Plugin::start(dir.path(), 300);
    // Kill at several points around injection; every restart must converge with no stray fault.
    for round in 0..4u64 {
        let mut hub = HubProcess::start(dir.path());
        let api = Api::new(&hub.url);
        register_plugin(&api, "fs-lab", &plugin);
        let name = format!("race-{round}");
        let (code, created) = api.post(
            "/api/v1/experiments",
            Some(&fill_yaml(&name, "fs-lab", Some("1s"), "5MB")),
        );
        assert_eq!(code, 201, "{created}");
        let id = uid(&created);
        std::thread::sleep(Duration::from_millis(round * 15));
        hub.kill9();
        let hub2 = HubProcess::start(dir.path());
        let api = Api::new(&hub2.url);
        let v = api.wait_phase(&id, "Finished", T);
        assert!(
            plugin.fill_files().is_empty(),
            "round {round}: a fault was left behind: {v:#}"
        );
        drop(hub2);
    }
}
