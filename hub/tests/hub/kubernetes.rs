//! The `kubernetes` adapter driven by the hub through the REST API, against a real
//! kube-apiserver v1.26.1 (etcd + kube-apiserver started by `kube-testserver`; a SKIP line
//! without `../shared`, a failure under `CI=true`), with the adapter tests' support and their
//! stand-in for Chaos Mesh's controller (`adapters/tests/kubernetes/standin.rs`, said so in
//! its name): an unchanged NetworkChaos of the shared examples is `Running` only once the
//! stand-in reports it injected, its target records are the stand-in's, and it is deleted at
//! its deadline; native mode refuses NetworkChaos without an agent image with a 422.
//!
//! The example names no namespace, so it runs in `default`: this binary's API server is its
//! own, and this is the only test using that namespace there.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject};
use kube::discovery::ApiResource;
use serde_json::{json, Value};

use super::support::Sandbox;

#[path = "../../../adapters/tests/kubernetes/support.rs"]
#[allow(dead_code)]
mod k8s;
#[path = "../../../adapters/tests/kubernetes/standin.rs"]
mod standin;

use standin::StandInChaosMeshController;

fn network_chaos() -> ApiResource {
    ApiResource {
        group: "chaos-mesh.org".into(),
        version: "v1alpha1".into(),
        api_version: "chaos-mesh.org/v1alpha1".into(),
        kind: "NetworkChaos".into(),
        plural: "networkchaos".into(),
    }
}

/// Removes the pods this test made in `default`, also when it fails.
struct DefaultPods {
    kubeconfig: std::path::PathBuf,
}

impl Drop for DefaultPods {
    fn drop(&mut self) {
        let kubeconfig = self.kubeconfig.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let client = k8s::admin_client(&kubeconfig).await;
                    let pods: Api<Pod> = Api::namespaced(client, "default");
                    let _ = pods
                        .delete_collection(
                            &DeleteParams::default().grace_period(0),
                            &kube::api::ListParams::default().labels("chaoshub-test=hub"),
                        )
                        .await;
                })
        })
        .join()
        .unwrap();
    }
}

/// Registers the kubernetes environment `name` on `hub`: the test server's cluster in
/// federation mode, Chaos Mesh's confirmation awaited for `confirm_timeout_ms`.
async fn register_cluster(
    hub: &Sandbox,
    kubeconfig: &std::path::Path,
    name: &str,
    confirm_timeout_ms: u64,
) {
    let env = format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: {name}}}\nspec:\n  adapter: kubernetes\n  settings: {{kubeconfig: {}, mode: chaos-mesh, confirm_timeout_ms: {confirm_timeout_ms}}}\n",
        kubeconfig.display()
    );
    let (status, body) = hub.post_yaml("/api/v1/environments", &env).await;
    assert_eq!(status, 201, "{body}");
}

/// Submits NetworkChaos `slow-web` (50 ms delay for 120 s on the pods labelled app=web of
/// `namespace`) with `route` (`environment: …` or `remoteCluster: …`) and waits until it is
/// Running; returns its uid and the name of the Chaos Mesh object the hub applied.
async fn run_delay(hub: &Sandbox, namespace: &str, route: &str) -> (String, String) {
    let manifest = format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: slow-web, namespace: {namespace}}}\nspec:\n  action: delay\n  mode: all\n  selector: {{labelSelectors: {{app: web}}}}\n  delay: {{latency: 50ms}}\n  duration: 120s\n  {route}\n"
    );
    let (status, created) = hub.post_yaml("/api/v1/experiments", &manifest).await;
    assert_eq!(status, 201, "{created}");
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    hub.wait_phase(&uid, "Running", Duration::from_secs(20))
        .await;
    let name = format!("chaoshub-{uid}-0");
    (uid, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_network_chaos_is_federated_confirmed_by_chaos_mesh_and_removed_at_its_deadline(
) {
    let Some(server) = k8s::server() else { return };
    let Some(examples) = chaoshub_testkit::shared_dir("reference/chaos-mesh/examples") else {
        return;
    };
    let text = std::fs::read_to_string(examples.join("network-delay-example.yaml")).unwrap();
    let client = k8s::admin_client(&server.kubeconfig).await;
    let _cleanup = DefaultPods {
        kubeconfig: server.kubeconfig.clone(),
    };
    for pod in ["tikv-0", "tikv-1"] {
        k8s::create_pod(
            &client,
            "default",
            pod,
            json!({"app.kubernetes.io/component": "tikv", "chaoshub-test": "hub"}),
            None,
        )
        .await;
    }
    let standin = StandInChaosMeshController::start(
        client.clone(),
        "NetworkChaos",
        "networkchaos",
        "default",
    );

    let hub = Sandbox::start(0).await;
    register_cluster(&hub, &server.kubeconfig, "cluster-a", 20000).await;
    let (status, caps) = hub.get("/api/v1/environments/cluster-a/capabilities").await;
    assert_eq!(status, 200, "{caps}");
    assert!(caps.to_string().contains("NetworkChaos"), "{caps}");

    // The dry run names the one target: the Chaos Mesh object (Chaos Mesh selects the pods).
    let (status, plan) = hub
        .post_yaml("/api/v1/experiments?env=cluster-a&dryRun=true", &text)
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(
        plan["plan"]["targets"][0]["kind"],
        json!("chaos-mesh"),
        "{plan}"
    );

    let (status, created) = hub
        .post_yaml("/api/v1/experiments?env=cluster-a", &text)
        .await;
    assert_eq!(status, 201, "{created}");
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &network_chaos());
    let name = format!("chaoshub-{uid}-0");
    let started = std::time::Instant::now();
    while api.get_opt(&name).await.unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(20), "never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Applied, but Chaos Mesh has not injected: not Running.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, now) = hub.get(&format!("/api/v1/experiments/{uid}")).await;
    assert_eq!(now["status"]["phase"], json!("Injecting"), "{now:#}");

    standin.open_gate();
    let running = hub
        .wait_phase(&uid, "Running", Duration::from_secs(20))
        .await;
    let records: Vec<Value> = running["status"]["targets"][0]["details"]["records"]
        .as_array()
        .unwrap()
        .clone();
    let ids: Vec<String> = records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, standin.recorded(&name));
    assert_eq!(ids.len(), 1, "mode one");

    // The example's duration is 10 s: at the deadline the object is deleted and the
    // experiment finishes once Chaos Mesh let it go.
    let finished = hub
        .wait_phase(&uid, "Finished", Duration::from_secs(30))
        .await;
    assert_eq!(
        finished["status"]["targets"][0]["phase"],
        json!("Recovered")
    );
    assert!(api.get_opt(&name).await.unwrap().is_none());
    drop(standin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_network_chaos_without_an_agent_image_is_a_422() {
    // Submission reads the environment's capabilities from the cluster (permissions), so the
    // cluster must answer; the one without Chaos Mesh.
    let Some(server) = k8s::plain_server() else {
        return;
    };
    let hub = Sandbox::start(0).await;
    let kubeconfig = &server.kubeconfig;
    let env = format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: pods}}\nspec:\n  adapter: kubernetes\n  settings: {{kubeconfig: {}, mode: native}}\n",
        kubeconfig.display()
    );
    let (status, body) = hub.post_yaml("/api/v1/environments", &env).await;
    assert_eq!(status, 201, "{body}");
    let manifest = "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: d, namespace: default}\nspec:\n  action: delay\n  mode: all\n  selector: {labelSelectors: {app: web}}\n  delay: {latency: 10ms}\n  environment: pods\n";
    let (status, body) = hub.post_yaml("/api/v1/experiments", manifest).await;
    assert_eq!(status, 422, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("spec.settings.agent_image"), "{message}");
}

/// Two clusters (two API servers, one with Chaos Mesh's CRDs and one without) in one suite:
/// the same native `pod-kill` runs in both, and the JUnit report names both environments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_suite_runs_the_same_experiment_on_two_clusters() {
    let Some(first) = k8s::server() else { return };
    let Some(second) = k8s::plain_server() else {
        return;
    };
    let name = format!("k8s-suite-{}", std::process::id());
    let ns_a = k8s::TestNamespace::create_named(first, &name).await;
    let ns_b = k8s::TestNamespace::create_named(second, &name).await;
    for (server, ns) in [(first, &ns_a), (second, &ns_b)] {
        let client = k8s::admin_client(&server.kubeconfig).await;
        for pod in ["victim-0", "victim-1", "bystander"] {
            let app = if pod == "bystander" {
                "other"
            } else {
                "victim"
            };
            k8s::create_pod(&client, &ns.name, pod, json!({"app": app}), Some("node-a")).await;
        }
    }
    // The steady state: a local service that keeps answering (the pods are not real).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });

    let hub = Sandbox::start(0).await;
    for (env, server) in [("cluster-a", first), ("cluster-b", second)] {
        let yaml = format!(
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: {env}}}\nspec:\n  adapter: kubernetes\n  settings: {{kubeconfig: {}, mode: native}}\n",
            server.kubeconfig.display()
        );
        let (status, body) = hub.post_yaml("/api/v1/environments", &yaml).await;
        assert_eq!(status, 201, "{body}");
    }
    let suite = format!(
        r#"
apiVersion: chaoshub.dev/v1alpha1
kind: Suite
metadata: {{name: two-clusters}}
spec:
  environments: [cluster-a, cluster-b]
  steadyState:
    interval: 200ms
    probes:
      - name: service-up
        tcp: {{address: "127.0.0.1:{port}", timeout: 500ms}}
  timeouts: {{recovery: 10s}}
  experiments:
    - name: kill-victims
      expect: hold
      manifest: {{apiVersion: chaos-mesh.org/v1alpha1, kind: PodChaos, metadata: {{name: kill, namespace: {name}}}, spec: {{action: pod-kill, mode: all, gracePeriod: 5, selector: {{labelSelectors: {{app: victim}}}}, duration: 1s}}}}
"#
    );
    let (code, started) = hub.post_yaml("/api/v1/suites", &suite).await;
    assert_eq!(code, 202, "{started:#}");
    let id = started["id"].as_str().unwrap().to_string();
    let begun = std::time::Instant::now();
    let run: chaoshub_schema::suite::SuiteRun = loop {
        let (code, v) = hub.get(&format!("/api/v1/suites/runs/{id}")).await;
        assert_eq!(code, 200, "{v:#}");
        let run: chaoshub_schema::suite::SuiteRun = serde_json::from_value(v.clone()).unwrap();
        if run.phase != chaoshub_schema::suite::SuiteRunPhase::Running {
            break run;
        }
        assert!(begun.elapsed() < Duration::from_secs(60), "{v:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run.summary.passed, 2, "{run:#?}");
    for case in &run.cases {
        let mut killed: Vec<String> = case.experiments[0]
            .targets
            .iter()
            .map(|t| t.target.name.clone())
            .collect();
        killed.sort();
        assert_eq!(killed, ["victim-0", "victim-1"], "{}", case.environment);
    }
    // In each cluster exactly the victims are terminating, with the grace period.
    for (server, ns) in [(first, &ns_a), (second, &ns_b)] {
        let client = k8s::admin_client(&server.kubeconfig).await;
        let pods: Api<Pod> = Api::namespaced(client, &ns.name);
        for pod in pods.list(&Default::default()).await.unwrap().items {
            let victim = pod.metadata.name.as_deref().unwrap().starts_with("victim");
            assert_eq!(pod.metadata.deletion_timestamp.is_some(), victim);
            if victim {
                assert_eq!(pod.metadata.deletion_grace_period_seconds, Some(5));
            }
        }
    }
    let xml = chaoshub::suites::junit::render(&run);
    assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
    assert!(
        xml.contains("name=\"cluster-a\"") && xml.contains("name=\"cluster-b\""),
        "{xml}"
    );
    accept.abort();
}

/// Chaos Mesh's controller-manager Deployment as its Helm chart labels it (it never runs: no
/// scheduler, no kubelet); deleted with its namespace when dropped, also when the test fails.
struct ChaosMeshDeployment {
    namespace: Option<k8s::TestNamespace>,
    kubeconfig: std::path::PathBuf,
}

impl ChaosMeshDeployment {
    async fn create(server: &'static k8s::TestServer, version: &str) -> Self {
        let namespace =
            k8s::TestNamespace::create_named(server, &format!("chaos-mesh-{}", std::process::id()))
                .await;
        let client = k8s::admin_client(&server.kubeconfig).await;
        let api: Api<Deployment> = Api::namespaced(client, &namespace.name);
        let labels = json!({
            "app.kubernetes.io/name": "chaos-mesh",
            "app.kubernetes.io/instance": "chaos-mesh",
            "app.kubernetes.io/component": "controller-manager",
            "app.kubernetes.io/version": version,
            "helm.sh/chart": format!("chaos-mesh-{version}"),
        });
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "chaos-controller-manager", "labels": labels},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/component": "controller-manager"}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/component": "controller-manager"}},
                    "spec": {"containers": [{"name": "chaos-mesh",
                        "image": format!("ghcr.io/chaos-mesh/chaos-mesh:v{version}")}]}
                }
            }
        }))
        .unwrap();
        api.create(&Default::default(), &deployment).await.unwrap();
        Self {
            namespace: Some(namespace),
            kubeconfig: server.kubeconfig.clone(),
        }
    }
}

impl Drop for ChaosMeshDeployment {
    fn drop(&mut self) {
        let Some(namespace) = self.namespace.take() else {
            return;
        };
        let kubeconfig = self.kubeconfig.clone();
        let name = namespace.name.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let client = k8s::admin_client(&kubeconfig).await;
                    let api: Api<Deployment> = Api::namespaced(client, &name);
                    let _ = api
                        .delete("chaos-controller-manager", &DeleteParams::default())
                        .await;
                })
        })
        .join()
        .unwrap();
        drop(namespace);
    }
}

/// Polls the environment until its status is there.
async fn status_of(hub: &Sandbox, name: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (code, env) = hub.get(&format!("/api/v1/environments/{name}")).await;
        assert_eq!(code, 200, "{env}");
        if !env["status"].is_null() {
            return env;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no status: {env:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /api/v1/environments` shows each cluster's reachability, server version and Chaos
/// Mesh version (from the controller-manager Deployment Chaos Mesh's chart creates): one
/// cluster with Chaos Mesh, one without, one whose API server does not answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_list_shows_each_clusters_reachability_and_chaos_mesh_version() {
    let Some(with) = k8s::server() else { return };
    let Some(without) = k8s::plain_server() else {
        return;
    };
    let _chaos_mesh = ChaosMeshDeployment::create(with, "2.6.3").await;
    // The same credentials aimed at a port nothing listens on.
    let dead = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&with.kubeconfig).unwrap();
    let server_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("server:"))
        .unwrap()
        .to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let dead_kubeconfig = dead.path().join("kubeconfig");
    std::fs::write(
        &dead_kubeconfig,
        text.replace(
            &server_line,
            &format!("    server: https://127.0.0.1:{port}"),
        ),
    )
    .unwrap();

    let hub = Sandbox::start(0).await;
    for (name, kubeconfig) in [
        ("with-chaos-mesh", with.kubeconfig.as_path()),
        ("without-chaos-mesh", without.kubeconfig.as_path()),
        ("gone", dead_kubeconfig.as_path()),
    ] {
        let yaml = format!(
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: {name}}}\nspec:\n  adapter: kubernetes\n  settings: {{kubeconfig: {}}}\n",
            kubeconfig.display()
        );
        let (status, body) = hub.post_yaml("/api/v1/environments", &yaml).await;
        assert_eq!(status, 201, "{body}");
    }
    let a = status_of(&hub, "with-chaos-mesh").await;
    assert_eq!(a["status"]["reachable"], json!(true), "{a:#}");
    assert_eq!(
        a["status"]["details"]["serverVersion"],
        json!("v1.26.1"),
        "{a:#}"
    );
    assert_eq!(a["status"]["details"]["chaosMesh"], json!(true), "{a:#}");
    assert_eq!(
        a["status"]["details"]["chaosMeshVersion"],
        json!("2.6.3"),
        "{a:#}"
    );
    assert!(
        a["status"]["details"]["servedKinds"]
            .as_array()
            .unwrap()
            .contains(&json!("NetworkChaos")),
        "{a:#}"
    );
    assert!(a["status"]["checkedAt"].is_string(), "{a:#}");

    let b = status_of(&hub, "without-chaos-mesh").await;
    assert_eq!(b["status"]["reachable"], json!(true), "{b:#}");
    assert_eq!(b["status"]["details"]["chaosMesh"], json!(false), "{b:#}");
    assert_eq!(
        b["status"]["details"]["chaosMeshVersion"],
        Value::Null,
        "{b:#}"
    );
    assert!(b["status"]["details"]["chaosMeshVersionUnknown"]
        .as_str()
        .unwrap()
        .contains("not installed"));

    let c = status_of(&hub, "gone").await;
    assert_eq!(c["status"]["reachable"], json!(false), "{c:#}");
    let problem = c["status"]["problems"][0].as_str().unwrap();
    assert!(problem.contains("unreachable"), "{problem}");

    // The list carries the same statuses; the sandbox's memory adapter reports none.
    let (code, list) = hub.get("/api/v1/environments").await;
    assert_eq!(code, 200);
    let reachable: Vec<(String, Value)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["metadata"]["name"].as_str().unwrap().to_string(),
                e["status"]["reachable"].clone(),
            )
        })
        .collect();
    assert_eq!(
        reachable,
        [
            ("gone".to_string(), json!(false)),
            ("mem".to_string(), Value::Null),
            ("with-chaos-mesh".to_string(), json!(true)),
            ("without-chaos-mesh".to_string(), json!(true)),
        ]
    );
}

/// The hub's own pause of a federated experiment sets Chaos Mesh's pause annotation on the
/// applied object (it is not deleted), and the experiment is `Paused` only once Chaos Mesh
/// (the stand-in) reports `Paused`; resume removes the annotation and it runs again once Chaos
/// Mesh reports it injected, for what was left of its window (also after a hub restart while
/// paused); a stop while paused deletes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hubs_pause_of_a_federated_experiment_is_chaos_meshs_pause_annotation() {
    let Some(server) = k8s::server() else { return };
    let ns = k8s::TestNamespace::create(server, "pause").await;
    let client = k8s::admin_client(&server.kubeconfig).await;
    for pod in ["web-0", "web-1"] {
        k8s::create_pod(&client, &ns.name, pod, json!({"app": "web"}), None).await;
    }
    let standin =
        StandInChaosMeshController::start(client.clone(), "NetworkChaos", "networkchaos", &ns.name);
    standin.open_gate();
    let mut hub = Sandbox::start(0).await;
    register_cluster(&hub, &server.kubeconfig, "cluster-p", 20000).await;
    let (uid, name) = run_delay(&hub, &ns.name, "remoteCluster: cluster-p").await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &network_chaos());
    let uid_of = |o: &DynamicObject| o.metadata.uid.clone().unwrap();
    let applied = uid_of(&api.get(&name).await.unwrap());

    // Chaos Mesh has not acted on the annotation yet: the hub waits, still Running.
    standin.honour_pauses(false);
    let (status, body) = hub.post(&format!("/api/v1/experiments/{uid}/pause")).await;
    assert_eq!(status, 200, "{body}");
    let started = std::time::Instant::now();
    loop {
        let object = api.get(&name).await.unwrap();
        let annotations = object.metadata.annotations.clone().unwrap_or_default();
        if annotations
            .get("experiment.chaos-mesh.org/pause")
            .map(String::as_str)
            == Some("true")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never annotated"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, now) = hub.get(&format!("/api/v1/experiments/{uid}")).await;
    assert_eq!(now["status"]["phase"], json!("Running"), "{now:#}");

    standin.honour_pauses(true);
    let paused = hub
        .wait_phase(&uid, "Paused", Duration::from_secs(20))
        .await;
    // Paused in place: the same object, Chaos Mesh's records recovered, the target held.
    let object = serde_json::to_value(api.get(&name).await.unwrap()).unwrap();
    assert_eq!(object["metadata"]["uid"], json!(applied));
    let paused_condition = object["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == json!("Paused"))
        .unwrap()
        .clone();
    assert_eq!(paused_condition["status"], json!("True"), "{object:#}");
    assert_eq!(
        paused["status"]["targets"][0]["phase"],
        json!("Injected"),
        "{paused:#}"
    );
    let remaining = paused["status"]["remainingMs"].as_u64().unwrap();
    assert!(remaining > 100_000 && remaining <= 120_000, "{paused:#}");

    // A restarted hub keeps it paused in place: nothing is applied or deleted.
    hub.restart().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, after) = hub.get(&format!("/api/v1/experiments/{uid}")).await;
    assert_eq!(after["status"]["phase"], json!("Paused"), "{after:#}");
    assert_eq!(uid_of(&api.get(&name).await.unwrap()), applied);

    // Resume: the annotation goes, Chaos Mesh injects again, the window continues.
    let (status, body) = hub.post(&format!("/api/v1/experiments/{uid}/resume")).await;
    assert_eq!(status, 200, "{body}");
    let running = hub
        .wait_phase(&uid, "Running", Duration::from_secs(20))
        .await;
    let object = api.get(&name).await.unwrap();
    assert_eq!(uid_of(&object), applied, "the object was never re-created");
    assert!(!object
        .metadata
        .annotations
        .unwrap_or_default()
        .contains_key("experiment.chaos-mesh.org/pause"));
    assert_eq!(running["status"]["targets"][0]["injections"], json!(1));
    assert!(running["status"]["deadline"].is_string(), "{running:#}");

    // Paused again, then stopped while paused: the object is deleted.
    let (status, _) = hub.post(&format!("/api/v1/experiments/{uid}/pause")).await;
    assert_eq!(status, 200);
    hub.wait_phase(&uid, "Paused", Duration::from_secs(20))
        .await;
    let (status, _) = hub.post(&format!("/api/v1/experiments/{uid}/stop")).await;
    assert_eq!(status, 200);
    let aborted = hub
        .wait_phase(&uid, "Aborted", Duration::from_secs(20))
        .await;
    assert_eq!(
        aborted["status"]["targets"][0]["phase"],
        json!("Recovered"),
        "{aborted:#}"
    );
    assert!(api.get_opt(&name).await.unwrap().is_none());
    drop(standin);
}

/// Chaos Mesh's `RemoteCluster` registers (and, applied again, updates) a kubernetes
/// environment of its name from the kubeconfig file its `chaoshub.dev/kubeconfig` annotation
/// names; one with only Chaos Mesh's Secret reference is a 400 naming
/// `spec.kubeConfig.secretRef` and saying why; `spec.remoteCluster` then routes a PodChaos to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_cluster_registers_an_environment_that_spec_remote_cluster_routes_to() {
    let Some(server) = k8s::plain_server() else {
        return;
    };
    let ns = k8s::TestNamespace::create(server, "remote").await;
    let client = k8s::admin_client(&server.kubeconfig).await;
    for pod in ["victim-0", "bystander"] {
        let app = pod.split('-').next().unwrap();
        k8s::create_pod(&client, &ns.name, pod, json!({"app": app}), Some("node-a")).await;
    }
    let hub = Sandbox::start(0).await;
    let remote = |annotations: &str| {
        format!(
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: RemoteCluster\nmetadata:\n  name: cluster-r\n  labels: {{region: eu}}\n{annotations}spec:\n  namespace: chaos-mesh\n  version: 2.6.3\n  kubeConfig:\n    secretRef: {{name: cluster-r-kubeconfig, namespace: default, key: kubeconfig}}\n"
        )
    };

    // Only Chaos Mesh's Secret reference: the hub cannot read it, and says so.
    let (status, body) = hub.post_yaml("/api/v1/environments", &remote("")).await;
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(
        body["details"][0]["path"],
        json!("spec.kubeConfig.secretRef"),
        "{body:#}"
    );
    let message = body["details"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("cannot read Secret default/cluster-r-kubeconfig")
            && message.contains("chaoshub.dev/kubeconfig"),
        "{message}"
    );
    let (status, _) = hub.get("/api/v1/environments/cluster-r").await;
    assert_eq!(status, 404);
    // A relative path is named too.
    let (status, body) = hub
        .post_yaml(
            "/api/v1/environments",
            &remote("  annotations: {chaoshub.dev/kubeconfig: kubeconfig}\n"),
        )
        .await;
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(
        body["details"][0]["path"],
        json!("metadata.annotations[\"chaoshub.dev/kubeconfig\"]"),
        "{body:#}"
    );

    // With the kubeconfig's path: a kubernetes environment of the same name.
    let with_path = remote(&format!(
        "  annotations: {{chaoshub.dev/kubeconfig: {}}}\n",
        server.kubeconfig.display()
    ));
    let (status, env) = hub.post_yaml("/api/v1/environments", &with_path).await;
    assert_eq!(status, 201, "{env:#}");
    assert_eq!(env["spec"]["adapter"], json!("kubernetes"));
    assert_eq!(
        env["spec"]["settings"]["kubeconfig"],
        json!(server.kubeconfig.display().to_string())
    );
    assert_eq!(env["metadata"]["labels"]["region"], json!("eu"));
    // Applied again (changed): updated in place, not a 409.
    let changed = with_path.replace("region: eu", "region: us");
    let (status, env) = hub.post_yaml("/api/v1/environments", &changed).await;
    assert_eq!(status, 200, "{env:#}");
    assert_eq!(env["metadata"]["labels"]["region"], json!("us"));
    let status_now = status_of(&hub, "cluster-r").await;
    assert_eq!(
        status_now["status"]["reachable"],
        json!(true),
        "{status_now:#}"
    );
    // It registers environments; it is not an experiment.
    let (status, body) = hub.post_yaml("/api/v1/experiments", &with_path).await;
    assert_eq!(status, 400, "{body:#}");
    assert!(
        body["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("/api/v1/environments"),
        "{body:#}"
    );

    // spec.remoteCluster routes an unchanged Chaos Mesh manifest to it (no Chaos Mesh there:
    // mode auto runs pod-kill natively).
    let manifest = format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata: {{name: kill, namespace: {}}}\nspec:\n  action: pod-kill\n  mode: all\n  gracePeriod: 3\n  selector: {{labelSelectors: {{app: victim}}}}\n  remoteCluster: cluster-r\n",
        ns.name
    );
    let (status, created) = hub.post_yaml("/api/v1/experiments", &manifest).await;
    assert_eq!(status, 201, "{created:#}");
    assert_eq!(created["status"]["environment"], json!("cluster-r"));
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let running = hub
        .wait_phase(&uid, "Running", Duration::from_secs(20))
        .await;
    assert_eq!(
        running["status"]["targets"][0]["target"]["name"],
        json!("victim-0"),
        "{running:#}"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let victim = pods.get("victim-0").await.unwrap();
    assert_eq!(victim.metadata.deletion_grace_period_seconds, Some(3));
    assert!(pods
        .get("bystander")
        .await
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_none());
    let (status, _) = hub.post(&format!("/api/v1/experiments/{uid}/stop")).await;
    assert_eq!(status, 200);
    hub.wait_phase(&uid, "Aborted", Duration::from_secs(20))
        .await;
}

/// When Chaos Mesh does not report the pause within `confirm_timeout_ms`, the hub removes the
/// object instead (a pause never leaves the fault in force), says why in its events, and
/// resume applies it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_chaos_mesh_does_not_report_removes_the_object_instead() {
    let Some(server) = k8s::server() else { return };
    let ns = k8s::TestNamespace::create(server, "pause-late").await;
    let client = k8s::admin_client(&server.kubeconfig).await;
    k8s::create_pod(&client, &ns.name, "web-0", json!({"app": "web"}), None).await;
    let standin =
        StandInChaosMeshController::start(client.clone(), "NetworkChaos", "networkchaos", &ns.name);
    standin.open_gate();
    standin.honour_pauses(false);
    let hub = Sandbox::start(0).await;
    register_cluster(&hub, &server.kubeconfig, "cluster-q", 1500).await;
    let (uid, name) = run_delay(&hub, &ns.name, "environment: cluster-q").await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &network_chaos());
    let first = api.get(&name).await.unwrap().metadata.uid;

    let (status, _) = hub.post(&format!("/api/v1/experiments/{uid}/pause")).await;
    assert_eq!(status, 200);
    let paused = hub
        .wait_phase(&uid, "Paused", Duration::from_secs(20))
        .await;
    assert_eq!(
        paused["status"]["targets"][0]["phase"],
        json!("Recovered"),
        "{paused:#}"
    );
    assert!(api.get_opt(&name).await.unwrap().is_none());
    let (_, events) = hub.get(&format!("/api/v1/events?experiment={uid}")).await;
    assert!(
        events.to_string().contains("pausing in place failed"),
        "{events:#}"
    );

    let (status, _) = hub.post(&format!("/api/v1/experiments/{uid}/resume")).await;
    assert_eq!(status, 200);
    hub.wait_phase(&uid, "Running", Duration::from_secs(20))
        .await;
    let again = api.get(&name).await.unwrap().metadata.uid;
    assert_ne!(again, first, "applied anew");
    let (status, _) = hub.post(&format!("/api/v1/experiments/{uid}/stop")).await;
    assert_eq!(status, 200);
    hub.wait_phase(&uid, "Aborted", Duration::from_secs(20))
        .await;
    assert!(api.get_opt(&name).await.unwrap().is_none());
    drop(standin);
}

/// Waits until `check` holds for the experiment, or panics after `timeout` with its state.
async fn wait_until(
    hub: &Sandbox,
    uid: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (_, now) = hub.get(&format!("/api/v1/experiments/{uid}")).await;
        if check(&now) {
            return now;
        }
        assert!(
            started.elapsed() < timeout,
            "not within {timeout:?}: {now:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Drift through the watch, with the periodic read-back turned off
/// (`engine.verify_interval_ms = 0`, so only the adapter's watch can make the hub look): the
/// federated object deleted behind the hub's back is applied again within a couple of seconds
/// (the time is printed), a spec change by another field manager is noticed and reinjected
/// (the spec is the manifest's again, no other manager owns a field of it), and under
/// `chaoshub.dev/on-drift: fail` the same change fails the experiment and deletes the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_object_deleted_or_edited_behind_the_hubs_back_is_noticed_through_the_watch() {
    let Some(server) = k8s::server() else { return };
    let ns = k8s::TestNamespace::create(server, "drift").await;
    let client = k8s::admin_client(&server.kubeconfig).await;
    k8s::create_pod(&client, &ns.name, "web-0", json!({"app": "web"}), None).await;
    let standin =
        StandInChaosMeshController::start(client.clone(), "NetworkChaos", "networkchaos", &ns.name);
    standin.open_gate();
    let hub = Sandbox::start_with(0, |c| c.engine.verify_interval_ms = 0).await;
    register_cluster(&hub, &server.kubeconfig, "cluster-d", 20000).await;
    let manifest = |name: &str, annotations: &str| {
        format!(
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: {name}, namespace: {}{annotations}}}\nspec:\n  action: delay\n  mode: all\n  selector: {{labelSelectors: {{app: web}}}}\n  delay: {{latency: 50ms}}\n  duration: 120s\n  environment: cluster-d\n",
            ns.name
        )
    };
    let (status, created) = hub
        .post_yaml("/api/v1/experiments", &manifest("drifting", ""))
        .await;
    assert_eq!(status, 201, "{created}");
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    hub.wait_phase(&uid, "Running", Duration::from_secs(20))
        .await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &network_chaos());
    let name = format!("chaoshub-{uid}-0");
    let first = api.get(&name).await.unwrap().metadata.uid.unwrap();
    // Let the watch start (it is armed on the next scan after Running).
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Deleted behind the hub's back: applied again, confirmed again, recorded as drift.
    let deleted_at = std::time::Instant::now();
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    let back = wait_until(&hub, &uid, Duration::from_secs(15), |v| {
        v["status"]["drift"]["reinjections"] == json!(1)
            && v["status"]["targets"][0]["phase"] == json!("Injected")
    })
    .await;
    let took = deleted_at.elapsed();
    eprintln!("drift: deleted object applied again and confirmed after {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(back["status"]["phase"], json!("Running"), "{back:#}");
    assert!(
        back["status"]["targets"][0]["driftedAt"].is_string(),
        "{back:#}"
    );
    assert_eq!(
        back["status"]["targets"][0]["injections"],
        json!(2),
        "{back:#}"
    );
    let second = api.get(&name).await.unwrap().metadata.uid.unwrap();
    assert_ne!(second, first, "applied anew");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The spec changed by another field manager: noticed, and the manifest's spec put back.
    let edited_at = std::time::Instant::now();
    let edit = kube::api::PatchParams {
        field_manager: Some("someone-else".into()),
        ..Default::default()
    };
    api.patch(
        &name,
        &edit,
        &kube::api::Patch::Merge(json!({"spec": {"delay": {"latency": "900ms"}}})),
    )
    .await
    .unwrap();
    let back = wait_until(&hub, &uid, Duration::from_secs(15), |v| {
        v["status"]["drift"]["reinjections"] == json!(2)
            && v["status"]["targets"][0]["phase"] == json!("Injected")
    })
    .await;
    let took = edited_at.elapsed();
    eprintln!("drift: spec edited by another field manager, put back and confirmed after {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let message = back["status"]["drift"]["lastDriftMessage"].to_string();
    assert!(message.contains("put back"), "{back:#}");
    let (_, events) = hub.get(&format!("/api/v1/events?experiment={uid}")).await;
    assert!(
        events
            .to_string()
            .contains("\\\"someone-else\\\" (Update) owns spec.delay"),
        "{events:#}"
    );
    let object = serde_json::to_value(api.get(&name).await.unwrap()).unwrap();
    assert_eq!(
        object["spec"]["delay"]["latency"],
        json!("50ms"),
        "{object:#}"
    );
    assert!(!object.to_string().contains("someone-else"), "{object:#}");
    let (status, _) = hub.post(&format!("/api/v1/experiments/{uid}/stop")).await;
    assert_eq!(status, 200);
    hub.wait_phase(&uid, "Aborted", Duration::from_secs(20))
        .await;
    assert!(api.get_opt(&name).await.unwrap().is_none());

    // on_drift: fail — the same change fails the experiment, and the object is removed.
    let (status, created) = hub
        .post_yaml(
            "/api/v1/experiments",
            &manifest("strict", ", annotations: {chaoshub.dev/on-drift: fail}"),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let strict = created["metadata"]["uid"].as_str().unwrap().to_string();
    hub.wait_phase(&strict, "Running", Duration::from_secs(20))
        .await;
    let strict_name = format!("chaoshub-{strict}-0");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let edited_at = std::time::Instant::now();
    api.patch(
        &strict_name,
        &edit,
        &kube::api::Patch::Merge(json!({"spec": {"mode": "one"}})),
    )
    .await
    .unwrap();
    let failed = hub
        .wait_phase(&strict, "Failed", Duration::from_secs(15))
        .await;
    eprintln!(
        "drift: on_drift fail ended the experiment after {:?}",
        edited_at.elapsed()
    );
    let reason = failed["status"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("changed by someone else") && reason.contains("on_drift: fail"),
        "{reason}"
    );
    assert_eq!(failed["status"]["drift"]["drifts"], json!(1), "{failed:#}");
    assert!(api.get_opt(&strict_name).await.unwrap().is_none());
    drop(standin);
}

/// A dry run of a federated experiment lists the pods Chaos Mesh's selector would pick there
/// now (the native selector over the cluster's real pods: namespaces, labels, expressions,
/// annotations, fields, pod phases; then the mode), next to the one target the hub injects
/// (the Chaos Mesh object); nothing is applied to the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_dry_run_lists_the_pods_chaos_meshs_selector_would_pick() {
    let Some(server) = k8s::server() else { return };
    let ns = k8s::TestNamespace::create(server, "dry").await;
    let client = k8s::admin_client(&server.kubeconfig).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    for (pod, labels) in [
        ("web-0", json!({"app": "web", "tier": "front"})),
        ("web-1", json!({"app": "web", "tier": "back"})),
        ("web-2", json!({"app": "web", "tier": "batch"})),
        ("db-0", json!({"app": "db", "tier": "back"})),
    ] {
        k8s::create_pod(&client, &ns.name, pod, labels, None).await;
    }
    let merge = kube::api::PatchParams::default();
    for pod in ["web-0", "web-1", "db-0"] {
        pods.patch(
            pod,
            &merge,
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": {"team": "a"}}})),
        )
        .await
        .unwrap();
    }
    // No kubelet here: the phase is written as a kubelet would, through the status.
    pods.patch_status(
        "web-0",
        &merge,
        &kube::api::Patch::Merge(json!({"status": {"phase": "Running"}})),
    )
    .await
    .unwrap();

    let hub = Sandbox::start(0).await;
    let env = format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: cluster-dry}}\nspec:\n  adapter: kubernetes\n  settings: {{kubeconfig: {}, mode: chaos-mesh}}\n",
        server.kubeconfig.display()
    );
    let (status, body) = hub.post_yaml("/api/v1/environments", &env).await;
    assert_eq!(status, 201, "{body}");
    let dry_run = |selector: &str, mode: &str| {
        format!(
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: dry, namespace: {}}}\nspec:\n  action: delay\n  {mode}\n  selector: {selector}\n  delay: {{latency: 10ms}}\n  environment: cluster-dry\n",
            ns.name
        )
    };
    let names = |plan: &Value| -> Vec<String> {
        let mut names: Vec<String> = plan["plan"]["farSide"]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    let cases = [
        // Labels, expressions and annotations together.
        (
            format!("{{namespaces: [{}], labelSelectors: {{app: web}}, expressionSelectors: [{{key: tier, operator: In, values: [front, back]}}], annotationSelectors: {{team: a}}}}", ns.name),
            "mode: all",
            2,
            vec!["web-0", "web-1"],
        ),
        // Pod phases.
        (
            "{labelSelectors: {app: web}, podPhaseSelectors: [Running]}".to_string(),
            "mode: all",
            1,
            vec!["web-0"],
        ),
        // Fields.
        (
            "{fieldSelectors: {metadata.name: db-0}}".to_string(),
            "mode: all",
            1,
            vec!["db-0"],
        ),
        // Pods by name.
        (
            format!("{{pods: {{{}: [web-2, db-0]}}}}", ns.name),
            "mode: all",
            2,
            vec!["db-0", "web-2"],
        ),
    ];
    for (selector, mode, matched, expected) in cases {
        let (status, plan) = hub
            .post_yaml("/api/v1/experiments?dryRun=true", &dry_run(&selector, mode))
            .await;
        assert_eq!(status, 200, "{selector}: {plan}");
        assert_eq!(
            plan["plan"]["targets"][0]["kind"],
            json!("chaos-mesh"),
            "{plan:#}"
        );
        assert_eq!(
            plan["plan"]["farSide"]["selectedBy"],
            json!("Chaos Mesh"),
            "{plan:#}"
        );
        assert_eq!(
            plan["plan"]["farSide"]["matched"],
            json!(matched),
            "{selector}: {plan:#}"
        );
        assert_eq!(names(&plan), expected, "{selector}: {plan:#}");
    }
    // The mode picks among the matched pods: fixed 2 of the three web pods.
    let (status, plan) = hub
        .post_yaml(
            "/api/v1/experiments?dryRun=true",
            &dry_run("{labelSelectors: {app: web}}", "mode: fixed\n  value: '2'"),
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["plan"]["farSide"]["matched"], json!(3), "{plan:#}");
    assert_eq!(names(&plan).len(), 2, "{plan:#}");
    // Nothing matched: said so, with no pods listed.
    let (status, plan) = hub
        .post_yaml(
            "/api/v1/experiments?dryRun=true",
            &dry_run("{labelSelectors: {app: nothing}}", "mode: all"),
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["plan"]["farSide"]["matched"], json!(0), "{plan:#}");
    assert!(
        plan["warnings"].to_string().contains("matches nothing"),
        "{plan:#}"
    );
    // A dry run applies nothing.
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &network_chaos());
    assert!(api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

/// Chaos Mesh picks the pods in federation mode, so the hub holds what its selector matches to
/// the guardrails before applying anything: a selector matching a pod labelled protected, or
/// one listed in `settings.protected_targets`, is a 422 naming the pod, and a mode that could
/// pick more pods than `settings.max_targets` is a 422 naming the cap; a dry run warns; nothing
/// reaches the cluster. A selector that leaves them out is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_selections_are_held_to_the_guardrails_before_anything_is_applied() {
    let Some(server) = k8s::server() else { return };
    let ns = k8s::TestNamespace::create(server, "guard").await;
    let client = k8s::admin_client(&server.kubeconfig).await;
    for (pod, labels) in [
        (
            "web-0",
            json!({"app": "web", "chaoshub.dev/protected": "true"}),
        ),
        ("web-1", json!({"app": "web"})),
        ("api-0", json!({"app": "api"})),
        ("api-1", json!({"app": "api"})),
        ("api-2", json!({"app": "api"})),
        ("db-0", json!({"app": "db"})),
    ] {
        k8s::create_pod(&client, &ns.name, pod, labels, None).await;
    }
    let hub = Sandbox::start(0).await;
    let env = format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: cluster-guard}}\nspec:\n  adapter: kubernetes\n  settings: {{kubeconfig: {}, mode: chaos-mesh, protected_targets: [db-0], max_targets: 2}}\n",
        server.kubeconfig.display()
    );
    let (status, body) = hub.post_yaml("/api/v1/environments", &env).await;
    assert_eq!(status, 201, "{body}");
    let chaos = |name: &str, app: &str, mode: &str| {
        format!(
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: {name}, namespace: {}}}\nspec:\n  action: delay\n  {mode}\n  selector: {{namespaces: [{}], labelSelectors: {{app: {app}}}}}\n  delay: {{latency: 10ms}}\n  duration: 30s\n  environment: cluster-guard\n",
            ns.name, ns.name
        )
    };
    let objects: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns.name, &network_chaos());
    for (name, app, mode, code, needles) in [
        (
            "labelled",
            "web",
            "mode: one",
            "protected_target",
            vec!["web-0", "chaoshub.dev/protected=true"],
        ),
        (
            "listed",
            "db",
            "mode: all",
            "protected_target",
            vec!["db-0", "settings.protected_targets"],
        ),
        (
            "too-many",
            "api",
            "mode: all",
            "blast_radius",
            vec!["3 target(s)", "at most 2"],
        ),
    ] {
        let (status, body) = hub
            .post_yaml("/api/v1/experiments", &chaos(name, app, mode))
            .await;
        assert_eq!(status, 422, "{name}: {body}");
        assert_eq!(body["code"], json!(code), "{name}: {body}");
        let message = body["message"].as_str().unwrap();
        for needle in needles {
            assert!(
                message.contains(needle),
                "{name}: {needle:?} not in {message:?}"
            );
        }
        let (status, plan) = hub
            .post_yaml("/api/v1/experiments?dryRun=true", &chaos(name, app, mode))
            .await;
        assert_eq!(status, 200, "{name}: {plan}");
        if code == "protected_target" {
            assert!(
                plan["warnings"]
                    .to_string()
                    .contains("a real run would be refused"),
                "{name}: {plan:#}"
            );
        }
    }
    let (_, list) = hub.get("/api/v1/experiments").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "nothing stored: {list:#}"
    );
    assert!(
        objects
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "nothing applied"
    );
    // Two of the api pods are within the cap, and the unprotected web pod named alone is no
    // protected selection.
    let by_name = format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: web-one, namespace: {}}}\nspec:\n  action: delay\n  mode: all\n  selector: {{pods: {{{}: [web-1]}}}}\n  delay: {{latency: 10ms}}\n  duration: 30s\n  environment: cluster-guard\n",
        ns.name, ns.name
    );
    for manifest in [
        chaos("two-api", "api", "mode: fixed\n  value: '2'"),
        by_name,
    ] {
        let (status, body) = hub
            .post_yaml("/api/v1/experiments?dryRun=true", &manifest)
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(
            !body["warnings"].to_string().contains("would be refused"),
            "{body:#}"
        );
    }
}
