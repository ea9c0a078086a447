//! The `docker` adapter through the real hub binary against the real Docker engine: a hub
//! killed with SIGKILL mid-experiment unpauses its target on time after a restart; a hub killed
//! for good has its pause undone on time by the engine-side watchdog container; and a container
//! that disappears mid-experiment ends the experiment with a per-target error instead of
//! leaving it stuck.
//!
//! No registry is reachable here, so the target image is built locally `FROM scratch` with the
//! docker CLI from the host's static busybox (`busybox-static`, installed by
//! scripts/install-test-deps.sh): `httpd` serves port 8080. Containers are named and labelled
//! per test (`chtest-e2e-<pid>-<n>`) and removed by guards even when a test fails.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::support::*;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub(super) fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI and a Docker engine are needed by the docker e2e tests");
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The busybox httpd image, built once per test process from a temporary context directory.
fn target_image() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let busybox = Path::new("/usr/bin/busybox");
        assert!(
            busybox.exists(),
            "/usr/bin/busybox is missing: run scripts/install-test-deps.sh (busybox-static)"
        );
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.path().join("rootfs/www")).unwrap();
        std::fs::copy(busybox, bin.join("busybox")).unwrap();
        std::fs::write(dir.path().join("rootfs/www/index.html"), "chaoshub target\n").unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nCOPY rootfs/ /\nCMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
        )
        .unwrap();
        let tag = "chaoshub-test/target-e2e:busybox".to_string();
        docker(&["build", "-q", "-t", &tag, &dir.path().to_string_lossy()]);
        tag
    })
}

/// A target container, removed on drop.
pub(super) struct Container {
    name: String,
}

impl Container {
    pub(super) fn run(group: &str) -> Container {
        let name = format!(
            "chtest-e2e-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &format!("chtest-group={group}"),
            target_image(),
        ]);
        Container { name }
    }

    /// A target container of this name (no group label), replacing one of the same name that
    /// an earlier run of the test that owns the name left behind.
    pub(super) fn run_named(name: &str) -> Container {
        let _ = Command::new("docker").args(["rm", "-f", name]).output();
        docker(&["run", "-d", "--name", name, target_image()]);
        Container {
            name: name.to_string(),
        }
    }

    pub(super) fn paused(&self) -> bool {
        docker(&["inspect", "-f", "{{.State.Paused}}", &self.name]) == "true"
    }

    fn ip(&self) -> String {
        docker(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.IPAddress}}",
            &self.name,
        ])
    }

    /// The median of a few TCP connect times from the host to its port 8080.
    pub(super) fn connect_rtt(&self) -> Duration {
        let addr: std::net::SocketAddr = format!("{}:8080", self.ip()).parse().unwrap();
        let mut samples: Vec<Duration> = (0..5)
            .filter_map(|_| {
                let start = Instant::now();
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                    .ok()
                    .map(|_| start.elapsed())
            })
            .collect();
        assert!(
            !samples.is_empty(),
            "{} does not accept connections",
            self.name
        );
        samples.sort();
        samples[samples.len() / 2]
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

/// Removes whatever journal volumes and helpers an experiment's injections left, if a test
/// fails before the hub recovered them.
pub(super) struct ExperimentLeftovers {
    pub(super) uid: String,
}

impl Drop for ExperimentLeftovers {
    fn drop(&mut self) {
        if self.uid.is_empty() {
            return;
        }
        // Helpers and watchdogs first: a volume in use cannot be removed.
        let containers = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("name=chaoshub-{}", self.uid),
            ])
            .output();
        if let Ok(out) = containers {
            for c in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["rm", "-f", c]).output();
            }
        }
        let volumes = Command::new("docker")
            .args([
                "volume",
                "ls",
                "-q",
                "--filter",
                &format!("name=chaoshub-{}", self.uid),
            ])
            .output();
        if let Ok(out) = volumes {
            for v in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker")
                    .args(["volume", "rm", "-f", v])
                    .output();
            }
        }
    }
}

/// The experiment's deadline, from its status.
fn deadline_of(experiment: &serde_json::Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(experiment["status"]["deadline"].as_str().unwrap())
        .unwrap()
}

/// The helper and watchdog containers of an experiment's injections, running or not.
fn injection_containers(uid: &str) -> String {
    docker(&["ps", "-aq", "--filter", &format!("name=chaoshub-{uid}")])
}

fn journal_volumes(uid: &str) -> Vec<String> {
    docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("name=chaoshub-{uid}"),
    ])
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

/// Registers the local engine as `engine`. `watchdog` says whether pauses get their
/// engine-side deadline (the watchdog container, built from this build's `chaos-agent`).
pub(super) fn register_docker(api: &Api, watchdog: bool) {
    let yaml = format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: engine}}\nspec:\n  adapter: docker\n  endpoint: unix:///var/run/docker.sock\n  settings:\n    watchdog: {watchdog}\n    agent_binary: {}\n",
        super::netns::agent_binary().display()
    );
    let (code, v) = api.post("/api/v1/environments?replace=true", Some(&yaml));
    assert!(code == 201 || code == 200, "registering docker failed: {v}");
}

pub(super) fn pod_failure(name: &str, group: &str, duration: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata:\n  name: {name}\nspec:\n  environment: engine\n  action: pod-failure\n  mode: all\n  selector:\n    labelSelectors: {{chtest-group: {group}}}\n  duration: {duration}\n"
    )
}

pub(super) fn group() -> String {
    format!(
        "g{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

#[test]
fn hub_killed_mid_pause_unpauses_on_time_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let group = group();
    let web = Container::run(&group);
    let mut hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);
    // This one tests the hub's own recovery after a restart: no watchdog.
    register_docker(&api, false);
    let targets = api.get("/api/v1/environments/engine/targets").to_string();
    assert!(targets.contains(&web.name), "{targets}");

    let (code, created) = api.post(
        "/api/v1/experiments",
        Some(&pod_failure("freeze", &group, "5s")),
    );
    assert_eq!(code, 201, "{created}");
    let uid = uid(&created);
    let _leftovers = ExperimentLeftovers { uid: uid.clone() };
    let running = api.wait_phase(&uid, "Running", T);
    assert!(web.paused());
    assert_eq!(
        journal_volumes(&uid).len(),
        1,
        "the injection is journalled"
    );
    let deadline = deadline_of(&running);

    hub.kill9();
    // The deadline passes while the hub is dead: with no watchdog, nothing else unpauses it.
    std::thread::sleep(Duration::from_secs(6));
    assert!(web.paused(), "only the hub may unpause it here");

    let restarted = Instant::now();
    let hub2 = HubProcess::start(dir.path());
    let api = Api::new(&hub2.url);
    let finished = api.wait_phase(&uid, "Finished", T);
    let took = restarted.elapsed();
    assert!(!web.paused(), "unpaused after the restart");
    eprintln!(
        "hub restarted {:?} after the deadline; unpaused {took:?} after the restart",
        chrono::Utc::now().signed_duration_since(deadline)
    );
    assert!(
        took < Duration::from_secs(3),
        "recovered {took:?} after restart"
    );
    assert_eq!(finished["status"]["targets"][0]["phase"], "Recovered");
    assert!(
        journal_volumes(&uid).is_empty(),
        "the journal volume is removed"
    );
}

#[test]
fn hub_killed_mid_pause_within_the_window_unpauses_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let group = group();
    let web = Container::run(&group);
    let mut hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);
    register_docker(&api, false);
    let (_, created) = api.post(
        "/api/v1/experiments",
        Some(&pod_failure("freeze-long", &group, "8s")),
    );
    let uid = uid(&created);
    let _leftovers = ExperimentLeftovers { uid: uid.clone() };
    api.wait_phase(&uid, "Running", T);
    hub.kill9();
    std::thread::sleep(Duration::from_secs(1));
    let hub2 = HubProcess::start(dir.path());
    let api = Api::new(&hub2.url);
    assert_eq!(api.experiment(&uid)["status"]["phase"], "Running");
    assert!(web.paused(), "still in its window: still paused");
    let finished = api.wait_phase(&uid, "Finished", T);
    assert!(!web.paused());
    let deadline = deadline_of(&finished);
    let recovered = chrono::DateTime::parse_from_rfc3339(
        finished["status"]["targets"][0]["recoveredAt"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let late = recovered.signed_duration_since(deadline);
    eprintln!("unpaused {late:?} after the deadline");
    assert!(
        late < chrono::Duration::seconds(2),
        "unpaused {late:?} late"
    );
}

#[test]
fn hub_killed_for_good_mid_pause_is_unpaused_on_time_by_the_engine_side_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let group = group();
    let web = Container::run(&group);
    let mut hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);
    register_docker(&api, true);
    // The first watchdog builds the helper image (seconds, in a debug build): a short
    // experiment first, so the measured one starts with the image in place.
    let (code, warm) = api.post(
        "/api/v1/experiments",
        Some(&pod_failure("warm-up", &group, "1s")),
    );
    assert_eq!(code, 201, "{warm}");
    let warm_uid = uid(&warm);
    let _warm_leftovers = ExperimentLeftovers {
        uid: warm_uid.clone(),
    };
    let start = Instant::now();
    while !matches!(
        api.experiment(&warm_uid)["status"]["phase"].as_str(),
        Some("Finished" | "Failed")
    ) {
        assert!(start.elapsed() < Duration::from_secs(180), "warm-up stuck");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, created) = api.post(
        "/api/v1/experiments",
        Some(&pod_failure("freeze-orphan", &group, "5s")),
    );
    assert_eq!(code, 201, "{created}");
    let uid = uid(&created);
    let _leftovers = ExperimentLeftovers { uid: uid.clone() };
    let running = api.wait_phase(&uid, "Running", T);
    assert!(web.paused());
    let deadline = deadline_of(&running);
    let injected = api.experiment(&uid);
    assert_eq!(
        injected["status"]["targets"][0]["details"]["watchdog"]["armed"], true,
        "{injected}"
    );

    hub.kill9();
    // No hub from here on: the watchdog container undoes the pause one second past the deadline.
    let start = Instant::now();
    while web.paused() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still paused without the hub"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let late = chrono::Utc::now().signed_duration_since(deadline);
    eprintln!("hub dead: unpaused by the watchdog {late:?} after the deadline");
    assert!(
        late >= chrono::Duration::zero() && late < chrono::Duration::milliseconds(3_500),
        "unpaused {late:?} after the deadline"
    );

    // A hub that comes back much later finds nothing to undo and cleans up after the watchdog.
    let hub2 = HubProcess::start(dir.path());
    let api = Api::new(&hub2.url);
    let finished = api.wait_phase(&uid, "Finished", T);
    assert_eq!(finished["status"]["targets"][0]["phase"], "Recovered");
    assert!(
        journal_volumes(&uid).is_empty(),
        "the journal volume is removed"
    );
    let watchdogs = injection_containers(&uid);
    assert!(
        watchdogs.trim().is_empty(),
        "the watchdog is removed: {watchdogs}"
    );
}

#[test]
fn hub_killed_mid_network_delay_the_helper_ends_it_on_time_and_a_restart_removes_the_helper() {
    let dir = tempfile::tempdir().unwrap();
    let group = group();
    let web = Container::run(&group);
    let mut hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);
    register_docker(&api, true);
    let base = web.connect_rtt();
    let yaml = format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata:\n  name: slow\nspec:\n  environment: engine\n  action: delay\n  mode: all\n  selector:\n    labelSelectors: {{chtest-group: {group}}}\n  delay:\n    latency: 100ms\n  duration: 30s\n"
    );
    let (code, created) = api.post("/api/v1/experiments", Some(&yaml));
    assert_eq!(code, 201, "{created}");
    let uid = uid(&created);
    let _leftovers = ExperimentLeftovers { uid: uid.clone() };
    // The first helper may build the helper image first (seconds in a debug build).
    let running = api.wait_phase(&uid, "Running", Duration::from_secs(120));
    let deadline = deadline_of(&running);
    let delayed = web.connect_rtt();
    assert!(
        delayed >= base + Duration::from_millis(90),
        "delayed: {base:?} → {delayed:?}"
    );

    hub.kill9();
    // The agent in the helper holds the delay only until the deadline (its --duration).
    let start = Instant::now();
    while web.connect_rtt() > base + Duration::from_millis(20) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the delay outlives its deadline"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let late = chrono::Utc::now().signed_duration_since(deadline);
    eprintln!(
        "hub dead: delay {base:?} → {delayed:?}, removed by the helper {late:?} after the deadline"
    );
    assert!(
        late < chrono::Duration::milliseconds(3_000),
        "removed {late:?} after the deadline"
    );

    let restarted = Instant::now();
    let hub2 = HubProcess::start(dir.path());
    let api = Api::new(&hub2.url);
    let finished = api.wait_phase(&uid, "Finished", T);
    assert_eq!(finished["status"]["targets"][0]["phase"], "Recovered");
    let helpers = injection_containers(&uid);
    assert!(
        helpers.trim().is_empty(),
        "the helper is removed: {helpers}"
    );
    assert!(journal_volumes(&uid).is_empty());
    eprintln!(
        "restarted hub finished the experiment {:?} after its start",
        restarted.elapsed()
    );
}

#[test]
fn a_container_that_disappears_ends_with_a_per_target_error_not_a_stuck_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let group = group();
    let stays = Container::run(&group);
    let goes = Container::run(&group);
    let hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);
    register_docker(&api, false);

    // Removed while its fault is in place: recovery has nothing to restore for it and the
    // experiment still ends (stopped by the user here), with the other target unpaused.
    let (_, created) = api.post(
        "/api/v1/experiments",
        Some(&pod_failure("vanish-running", &group, "60s")),
    );
    let uid1 = uid(&created);
    let _l1 = ExperimentLeftovers { uid: uid1.clone() };
    api.wait_phase(&uid1, "Running", T);
    assert!(stays.paused() && goes.paused());
    docker(&["rm", "-f", &goes.name]);
    let (code, v) = api.post(&format!("/api/v1/experiments/{uid1}/stop"), None);
    assert!(code < 300, "{v}");
    let ended = api.wait_phase(&uid1, "Aborted", T);
    assert!(!stays.paused());
    assert!(journal_volumes(&uid1).is_empty(), "{ended:#}");

    // Removed while the experiment is paused: resuming re-injects into the same targets, and
    // the one that is gone fails with an error that names it; the rest is rolled back.
    let goes = Container::run(&group);
    let (_, created) = api.post(
        "/api/v1/experiments",
        Some(&pod_failure("vanish-paused", &group, "60s")),
    );
    let uid2 = uid(&created);
    let _l2 = ExperimentLeftovers { uid: uid2.clone() };
    api.wait_phase(&uid2, "Running", T);
    let (code, v) = api.post(&format!("/api/v1/experiments/{uid2}/pause"), None);
    assert!(code < 300, "{v}");
    api.wait_phase(&uid2, "Paused", T);
    assert!(!stays.paused() && !goes.paused());
    docker(&["rm", "-f", &goes.name]);
    let started = Instant::now();
    let (code, v) = api.post(&format!("/api/v1/experiments/{uid2}/resume"), None);
    assert!(code < 300, "{v}");
    let failed = api.wait_phase(&uid2, "Failed", T);
    eprintln!(
        "failed {:?} after resume: {}",
        started.elapsed(),
        failed["status"]["reason"]
    );
    let targets = failed["status"]["targets"].as_array().unwrap();
    let gone = targets
        .iter()
        .find(|t| t["target"]["name"] == goes.name.as_str())
        .expect("the vanished target keeps its record");
    let error = gone["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("no longer exists") && error.contains(&goes.name),
        "a clear per-target error: {gone:#}"
    );
    assert!(!stays.paused(), "the other target is rolled back");
    assert!(journal_volumes(&uid2).is_empty());
}

/// The first Docker experiment on an engine without the helper image: the environment is
/// registered and a 4 s pod-failure submitted at once, while the hub is still building the
/// image in the background. The experiment waits (Pending, with a reason and a
/// `chaoshub.experiment.waiting` event) instead of starting its clock, then holds the pause for
/// its full duration and finishes — it used to end Failed ("not confirmed … absent") because
/// the watchdog, armed after the build, undid the pause before it was read back.
///
/// "Without the helper image" without deleting anything other tests use: the environment
/// builds from its own copy of `chaos-agent`, whose fingerprint no image on the engine has.
/// The image built for it is removed at the end.
#[test]
fn the_first_experiment_on_a_fresh_engine_waits_for_the_helper_image_and_holds_its_duration() {
    struct ImageGuard(Option<String>);
    impl Drop for ImageGuard {
        fn drop(&mut self) {
            if let Some(image) = &self.0 {
                let _ = Command::new("docker").args(["rmi", "-f", image]).output();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let agent_copy = dir.path().join("reliab-fresh-agent");
    std::fs::copy(super::netns::agent_binary(), &agent_copy).unwrap();
    let group = group();
    let web = Container::run(&group);
    let hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);
    let yaml = format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: engine}}\nspec:\n  adapter: docker\n  endpoint: unix:///var/run/docker.sock\n  settings:\n    watchdog: true\n    agent_binary: {}\n",
        agent_copy.display()
    );
    let (code, v) = api.post("/api/v1/environments", Some(&yaml));
    assert_eq!(code, 201, "{v}");
    let (code, created) = api.post(
        "/api/v1/experiments",
        Some(&pod_failure("first-on-fresh", &group, "4s")),
    );
    assert_eq!(code, 201, "{created}");
    let uid = uid(&created);
    let _leftovers = ExperimentLeftovers { uid: uid.clone() };
    let submitted = Instant::now();
    let running = api.wait_phase(&uid, "Running", Duration::from_secs(180));
    let _image = ImageGuard(
        running["status"]["targets"][0]["details"]["watchdog"]["image"]
            .as_str()
            .map(str::to_string),
    );
    eprintln!("Running {:?} after submission", submitted.elapsed());
    assert!(web.paused(), "paused once Running");
    let paused_from = Instant::now();
    while web.paused() {
        assert!(
            paused_from.elapsed() < Duration::from_secs(20),
            "still paused long after the 4 s duration"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let unpaused = chrono::Utc::now();
    let held = paused_from.elapsed();
    let finished = api.wait_phase(&uid, "Finished", T);
    // The clock started at injection, after the wait: the pause must last until the deadline.
    let early = deadline_of(&running).signed_duration_since(unpaused);
    eprintln!(
        "pause seen for {held:?} after Running, ended {} ms before the deadline; {}",
        early.num_milliseconds(),
        finished["status"]["phase"]
    );
    assert!(
        early < chrono::Duration::milliseconds(300),
        "the pause ended {early} before the deadline"
    );
    let events = api.get(&format!("/api/v1/events?experiment={uid}"));
    let names: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    eprintln!("events: {names:?}");
    assert!(
        names.contains(&"chaoshub.experiment.waiting"),
        "the wait for the helper image is visible: {events:#}"
    );
}
