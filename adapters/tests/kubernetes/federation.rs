//! Chaos Mesh federation against the real API server, with the stand-in controller playing
//! Chaos Mesh's part.

use std::time::Duration;

use chaoshub_adapters::kubernetes::{
    object_name, KubernetesAdapter, EXPERIMENT_UID_LABEL, FEDERATION_TARGET_KIND, FIELD_MANAGER,
    PAUSE_ANNOTATION, RECORDS_FINALIZER,
};
use chaoshub_adapters::{Adapter, AdapterError, Injection, InjectionState, Selection};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::{json, Value};

use super::standin::StandInChaosMeshController;
use super::support::{
    admin_client, create_pod, environment, fault, limited_kubeconfig, manifest, server,
    TestNamespace,
};

fn network_chaos() -> ApiResource {
    ApiResource {
        group: "chaos-mesh.org".into(),
        version: "v1alpha1".into(),
        api_version: "chaos-mesh.org/v1alpha1".into(),
        kind: "NetworkChaos".into(),
        plural: "networkchaos".into(),
    }
}

/// The unchanged example of the shared Chaos Mesh corpus.
fn delay_example() -> Option<String> {
    let dir = chaoshub_testkit::shared_dir("reference/chaos-mesh/examples")?;
    Some(std::fs::read_to_string(dir.join("network-delay-example.yaml")).unwrap())
}

fn injection_of(
    fault: &chaoshub_adapters::FaultRequest,
    target: chaoshub_schema::Target,
    details: Value,
) -> Injection {
    Injection {
        experiment_uid: fault.experiment_uid.clone(),
        injection_id: fault.injection_id.clone(),
        kind: fault.kind().into(),
        actions: fault.actions.clone(),
        target,
        details,
    }
}

/// Acceptance: an unchanged NetworkChaos appears in the cluster, applied by `chaoshub`; it is
/// confirmed only once the stand-in reports it injected; its records are the pods the stand-in
/// recorded; it pauses and resumes through the annotation; recovery deletes it past Chaos
/// Mesh's finalizer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_chaos_runs_only_once_chaos_mesh_reports_it_injected() {
    let Some(server) = server() else { return };
    let Some(text) = delay_example() else { return };
    let ns = TestNamespace::create(server, "fed").await;
    let client = admin_client(&server.kubeconfig).await;
    for pod in ["tikv-0", "tikv-1", "tikv-2"] {
        create_pod(
            &client,
            &ns.name,
            pod,
            json!({"app.kubernetes.io/component": "tikv"}),
            None,
        )
        .await;
    }
    create_pod(
        &client,
        &ns.name,
        "pd-0",
        json!({"app.kubernetes.io/component": "pd"}),
        None,
    )
    .await;
    let standin =
        StandInChaosMeshController::start(client.clone(), "NetworkChaos", "networkchaos", &ns.name);

    let adapter = KubernetesAdapter::new();
    let env = environment(
        "k8s-fed",
        &server.kubeconfig,
        json!({"mode": "chaos-mesh", "confirm_timeout_ms": 20000}),
    );
    let manifest = manifest(&text, &ns.name);
    let Selection::Final(targets) = adapter.select(&env, &manifest).await.unwrap() else {
        panic!("federation leaves selection to Chaos Mesh")
    };
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].kind, FEDERATION_TARGET_KIND);
    let target = targets[0].clone();
    let fault = fault(manifest, &ns.name, "0b5a6c2e-8d1f-4a51-9c7e-3f2d1e0a9b88");
    adapter.check_fault(&env, &fault).unwrap();

    let inject = {
        let (env, fault, target) = (env.clone(), fault.clone(), target.clone());
        tokio::spawn(async move { KubernetesAdapter::new().inject(&env, &fault, &target).await })
    };
    // The object appears, applied by chaoshub, named after the injection id, spec unchanged.
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &network_chaos());
    let name = object_name(&fault.injection_id);
    let object = wait(&api, &name, |o| o.pointer("/status/conditions").is_some()).await;
    assert_eq!(
        object["metadata"]["labels"][EXPERIMENT_UID_LABEL],
        json!(fault.experiment_uid)
    );
    let managers: Vec<(String, String)> = object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap().to_string(),
                m["operation"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        managers.contains(&(FIELD_MANAGER.to_string(), "Apply".to_string())),
        "{managers:?}"
    );
    assert_eq!(object["spec"]["action"], json!("delay"));
    assert_eq!(object["spec"]["mode"], json!("one"));
    assert_eq!(object["spec"]["delay"]["latency"], json!("90ms"));
    assert_eq!(
        object["spec"]["selector"]["labelSelectors"]["app.kubernetes.io/component"],
        json!("tikv")
    );
    assert!(
        object["spec"].get("remoteCluster").is_none()
            && object["spec"].get("environment").is_none()
    );
    assert_eq!(object["metadata"]["finalizers"], json!([RECORDS_FINALIZER]));

    // Chaos Mesh has selected but not injected: not confirmed.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !inject.is_finished(),
        "confirmed before Chaos Mesh reported it injected"
    );
    let early = injection_of(&fault, target.clone(), Value::Null);
    assert!(matches!(
        adapter.status(&env, &early).await.unwrap(),
        InjectionState::Unknown(_)
    ));

    standin.open_gate();
    let details = tokio::time::timeout(Duration::from_secs(20), inject)
        .await
        .expect("confirmed after the stand-in reported AllInjected")
        .unwrap()
        .unwrap();
    let recorded = standin.recorded(&name);
    assert_eq!(recorded.len(), 1, "mode one");
    let records: Vec<String> = details["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(records, recorded);
    assert_eq!(details["records"][0]["namespace"], json!(ns.name));
    assert_eq!(details["records"][0]["phase"], json!("Injected"));
    assert_eq!(details["object"]["name"], json!(name));
    let injection = injection_of(&fault, target.clone(), details);
    assert_eq!(
        adapter.status(&env, &injection).await.unwrap(),
        InjectionState::Active
    );

    // Pause and resume through Chaos Mesh's annotation.
    adapter.pause(&env, &injection).await.unwrap();
    let object = api.get(&name).await.unwrap();
    assert_eq!(
        object
            .metadata
            .annotations
            .unwrap()
            .get(PAUSE_ANNOTATION)
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        adapter.status(&env, &injection).await.unwrap(),
        InjectionState::Absent
    );
    adapter.resume(&env, &injection).await.unwrap();
    let object = api.get(&name).await.unwrap();
    assert!(!object
        .metadata
        .annotations
        .unwrap_or_default()
        .contains_key(PAUSE_ANNOTATION));
    assert_eq!(
        adapter.status(&env, &injection).await.unwrap(),
        InjectionState::Active
    );
    let value = serde_json::to_value(api.get(&name).await.unwrap()).unwrap();
    let record = &value["status"]["experiment"]["containerRecords"][0];
    assert_eq!(
        (
            record["injectedCount"].as_u64(),
            record["recoveredCount"].as_u64()
        ),
        (Some(2), Some(1))
    );

    // At the deadline the engine recovers: deleted, and gone only past the finalizer.
    adapter.recover(&env, &injection).await.unwrap();
    assert!(api.get_opt(&name).await.unwrap().is_none());
    assert_eq!(
        adapter.status(&env, &injection).await.unwrap(),
        InjectionState::Absent
    );
    // Idempotent.
    adapter.recover(&env, &injection).await.unwrap();
}

/// After a crash the hub may hold no details at all: the object is found by the injection id,
/// and a recovery that Chaos Mesh cannot finish (its finalizer stays) is reported, not assumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_after_a_crash_finds_the_object_and_waits_for_the_finalizer() {
    let Some(server) = server() else { return };
    let ns = TestNamespace::create(server, "crash").await;
    let client = admin_client(&server.kubeconfig).await;
    create_pod(&client, &ns.name, "web-0", json!({"app": "web"}), None).await;
    let standin =
        StandInChaosMeshController::start(client.clone(), "NetworkChaos", "networkchaos", &ns.name);
    standin.open_gate();
    let adapter = KubernetesAdapter::new();
    let env = environment(
        "k8s-crash",
        &server.kubeconfig,
        json!({"mode": "auto", "confirm_timeout_ms": 1500}),
    );
    let manifest = manifest(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: loss}\nspec:\n  action: loss\n  mode: all\n  selector: {labelSelectors: {app: web}}\n  loss: {loss: '50'}\n  duration: 1m\n",
        &ns.name,
    );
    let Selection::Final(targets) = adapter.select(&env, &manifest).await.unwrap() else {
        panic!("auto mode federates a kind the cluster serves")
    };
    let fault = fault(manifest, &ns.name, "5d0c1b3a-1111-4e2f-8a9b-0c1d2e3f4a5b");
    adapter.inject(&env, &fault, &targets[0]).await.unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &network_chaos());
    let name = object_name(&fault.injection_id);
    assert!(api.get_opt(&name).await.unwrap().is_some());

    // The stand-in is gone (Chaos Mesh down): the finalizer stays, recovery says so.
    drop(standin);
    let crashed = injection_of(&fault, targets[0].clone(), Value::Null);
    let error = adapter
        .recover(&env, &crashed)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(RECORDS_FINALIZER), "{error}");
    assert!(
        api.get_opt(&name).await.unwrap().is_some(),
        "still there, terminating"
    );
    // Chaos Mesh back: the retried recovery completes.
    let standin =
        StandInChaosMeshController::start(client.clone(), "NetworkChaos", "networkchaos", &ns.name);
    adapter.recover(&env, &crashed).await.unwrap();
    assert!(api.get_opt(&name).await.unwrap().is_none());
    drop(standin);
}

/// Acceptance (RBAC): a token limited to one namespace is refused in another before anything
/// is applied there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_limited_token_is_refused_before_anything_is_applied() {
    let Some(server) = server() else { return };
    let allowed = TestNamespace::create(server, "lim-in").await;
    let other = TestNamespace::create(server, "lim-out").await;
    let kubeconfig = limited_kubeconfig(
        server,
        &allowed.name,
        json!([{"apiGroups": ["chaos-mesh.org"], "resources": ["networkchaos"],
                "verbs": ["create", "patch", "get", "list", "watch", "delete"]}]),
    )
    .await;
    let adapter = KubernetesAdapter::new();
    // The environment does not restrict namespaces: only the token does.
    let env = environment(
        "k8s-lim",
        &kubeconfig,
        json!({"mode": "chaos-mesh", "confirm_timeout_ms": 2000}),
    );
    let manifest = manifest(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: cut}\nspec:\n  action: partition\n  mode: all\n  selector: {labelSelectors: {app: web}}\n  direction: to\n",
        &other.name,
    );
    let fault = fault(
        manifest,
        &other.name,
        "77aa88bb-1234-4cde-8f00-aabbccddeeff",
    );
    let Selection::Final(targets) = adapter.select(&env, &fault.manifest).await.unwrap() else {
        panic!("federation")
    };
    match adapter.inject(&env, &fault, &targets[0]).await {
        Err(AdapterError::Rejected(message)) => {
            assert!(message.contains(&other.name), "{message}");
            assert!(message.contains("networkchaos"), "{message}");
            assert!(message.contains("nothing was applied"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let admin = admin_client(&server.kubeconfig).await;
    let api: Api<DynamicObject> = Api::namespaced_with(admin, &other.name, &network_chaos());
    assert!(api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty());

    // With the environment's namespaces set, the same submission is refused without any call.
    let env = environment(
        "k8s-lim",
        &kubeconfig,
        json!({"mode": "chaos-mesh", "namespaces": [allowed.name]}),
    );
    let error = adapter.check_fault(&env, &fault).unwrap_err();
    assert!(matches!(error, AdapterError::Rejected(_)), "{error}");
}

/// Someone else took over a field chaoshub applies: server-side apply answers 409 and the
/// adapter reports the conflict instead of overwriting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_taken_over_by_another_manager_is_a_reported_conflict() {
    let Some(server) = server() else { return };
    let ns = TestNamespace::create(server, "conflict").await;
    let client = admin_client(&server.kubeconfig).await;
    let standin =
        StandInChaosMeshController::start(client.clone(), "NetworkChaos", "networkchaos", &ns.name);
    standin.open_gate();
    create_pod(&client, &ns.name, "web-0", json!({"app": "web"}), None).await;
    let adapter = KubernetesAdapter::new();
    let env = environment(
        "k8s-conflict",
        &server.kubeconfig,
        json!({"mode": "chaos-mesh", "confirm_timeout_ms": 10000}),
    );
    let manifest = manifest(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: d}\nspec:\n  action: delay\n  mode: all\n  selector: {labelSelectors: {app: web}}\n  delay: {latency: 10ms}\n",
        &ns.name,
    );
    let fault = fault(manifest, &ns.name, "c0ffee00-0000-4000-8000-000000000001");
    let Selection::Final(targets) = adapter.select(&env, &fault.manifest).await.unwrap() else {
        panic!("federation")
    };
    adapter.inject(&env, &fault, &targets[0]).await.unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &network_chaos());
    let name = object_name(&fault.injection_id);
    api.patch(
        &name,
        &PatchParams::apply("kubectl").force(),
        &Patch::Apply(
            json!({"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaos",
            "metadata": {"name": name}, "spec": {"delay": {"latency": "500ms"}}}),
        ),
    )
    .await
    .unwrap();
    match adapter.inject(&env, &fault, &targets[0]).await {
        Err(AdapterError::Rejected(message)) => assert!(message.contains("conflict"), "{message}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let injection = injection_of(&fault, targets[0].clone(), Value::Null);
    adapter.recover(&env, &injection).await.unwrap();
    drop(standin);
}

/// Waits (polling is fine in a test) until the object exists and `done` holds.
async fn wait(api: &Api<DynamicObject>, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        if let Some(o) = api.get_opt(name).await.unwrap() {
            let v = serde_json::to_value(o).unwrap();
            if done(&v) {
                return v;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{name} never got there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The drift watch: quiet while the object is the hub's (Chaos Mesh's status writes and
/// finalizer are not drift), and it returns at once when another field manager takes over a
/// spec field (a forced server-side apply), naming the manager and the field; the read-back
/// then says `Changed` with the same words; a deletion ends a fresh watch as `Absent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drift_watch_wakes_on_a_foreign_spec_change_and_on_deletion_only() {
    let Some(server) = server() else { return };
    let ns = TestNamespace::create(server, "watch").await;
    let client = admin_client(&server.kubeconfig).await;
    let standin =
        StandInChaosMeshController::start(client.clone(), "NetworkChaos", "networkchaos", &ns.name);
    standin.open_gate();
    create_pod(&client, &ns.name, "web-0", json!({"app": "web"}), None).await;
    let adapter = KubernetesAdapter::new();
    let env = environment(
        "k8s-watch",
        &server.kubeconfig,
        json!({"mode": "chaos-mesh", "confirm_timeout_ms": 10000}),
    );
    let manifest = manifest(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: d}\nspec:\n  action: delay\n  mode: all\n  selector: {labelSelectors: {app: web}}\n  delay: {latency: 10ms}\n",
        &ns.name,
    );
    let fault = fault(manifest, &ns.name, "c0ffee00-0000-4000-8000-0000000000d1");
    let Selection::Final(targets) = adapter.select(&env, &fault.manifest).await.unwrap() else {
        panic!("federation")
    };
    let details = adapter.inject(&env, &fault, &targets[0]).await.unwrap();
    let injection = injection_of(&fault, targets[0].clone(), details);
    assert!(adapter.watches_drift(&injection));
    assert_eq!(
        adapter.status(&env, &injection).await.unwrap(),
        InjectionState::Active
    );
    let quiet = tokio::time::timeout(
        Duration::from_millis(1500),
        adapter.watch_drift(&env, &injection),
    )
    .await;
    assert!(quiet.is_err(), "woke without a change: {quiet:?}");

    let watch = {
        let (env, injection) = (env.clone(), injection.clone());
        tokio::spawn(async move { KubernetesAdapter::new().watch_drift(&env, &injection).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &network_chaos());
    let name = object_name(&fault.injection_id);
    let changed_at = std::time::Instant::now();
    api.patch(
        &name,
        &PatchParams::apply("kubectl").force(),
        &Patch::Apply(
            json!({"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaos",
            "metadata": {"name": name}, "spec": {"delay": {"latency": "500ms"}}}),
        ),
    )
    .await
    .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), watch)
        .await
        .expect("the watch saw the change")
        .unwrap()
        .unwrap();
    eprintln!(
        "drift watch: a forced apply by another manager seen after {:?}",
        changed_at.elapsed()
    );
    assert!(
        seen.contains("\"kubectl\" (Apply) owns spec.delay"),
        "{seen}"
    );
    match adapter.status(&env, &injection).await.unwrap() {
        InjectionState::Changed(m) => assert!(m.contains("\"kubectl\""), "{m}"),
        other => panic!("expected Changed, got {other:?}"),
    }

    adapter.recover(&env, &injection).await.unwrap();
    let gone = tokio::time::timeout(
        Duration::from_secs(5),
        adapter.watch_drift(&env, &injection),
    )
    .await
    .expect("a deleted object is drift at once")
    .unwrap();
    assert!(gone.contains("deleted"), "{gone}");
    assert_eq!(
        adapter.status(&env, &injection).await.unwrap(),
        InjectionState::Absent
    );
    drop(standin);
}
