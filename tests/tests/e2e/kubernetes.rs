//! SIGKILL of the real `chaoshub` binary while it federates Chaos Mesh experiments to a real
//! kube-apiserver v1.26.1 (etcd + kube-apiserver by `kube-testserver`, with Chaos Mesh's CRDs;
//! a SKIP line without `../shared`, a failure under `CI=true`). Chaos Mesh's controller cannot
//! run here: the adapter tests' `StandInChaosMeshController` (adapters/tests/kubernetes/
//! standin.rs, a stand-in said so in its name) writes the status and finalizer Chaos Mesh
//! writes. Objects are named after the injection id, so the restarted hub finds and removes
//! exactly its own: nothing is left behind.

use std::time::Duration;

use kube::api::{Api as KubeApi, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use serde_json::json;

use super::support::*;

#[path = "../../../adapters/tests/kubernetes/support.rs"]
#[allow(dead_code)]
pub(super) mod k8s;
#[path = "../../../adapters/tests/kubernetes/standin.rs"]
#[allow(dead_code)]
pub(super) mod standin;

pub(super) fn network_chaos() -> ApiResource {
    ApiResource {
        group: "chaos-mesh.org".into(),
        version: "v1alpha1".into(),
        api_version: "chaos-mesh.org/v1alpha1".into(),
        kind: "NetworkChaos".into(),
        plural: "networkchaos".into(),
    }
}

pub(super) fn delay(name: &str, namespace: &str, duration: &str) -> String {
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  action: delay\n  mode: all\n  selector: {{labelSelectors: {{app: web}}}}\n  delay: {{latency: 40ms}}\n  duration: {duration}\n  remoteCluster: cluster-k\n"
    )
}

/// A namespace of the shared API server with two `app: web` pods and the stand-in for Chaos
/// Mesh's controller watching its NetworkChaos objects (gate closed), on a runtime of its own.
/// Fields drop in order: the stand-in and the namespace before the runtime.
pub(super) struct Cluster {
    pub standin: standin::StandInChaosMeshController,
    pub ns: k8s::TestNamespace,
    pub client: kube::Client,
    pub rt: tokio::runtime::Runtime,
}

impl Cluster {
    pub fn start(server: &k8s::TestServer, role: &str) -> Cluster {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let ns = rt.block_on(k8s::TestNamespace::create(server, role));
        let client = rt.block_on(k8s::admin_client(&server.kubeconfig));
        for pod in ["web-0", "web-1"] {
            rt.block_on(k8s::create_pod(
                &client,
                &ns.name,
                pod,
                json!({"app": "web"}),
                None,
            ));
        }
        let standin = {
            let _runtime = rt.enter();
            standin::StandInChaosMeshController::start(
                client.clone(),
                "NetworkChaos",
                "networkchaos",
                &ns.name,
            )
        };
        Cluster {
            standin,
            ns,
            client,
            rt,
        }
    }
}

/// Waits until `done` holds for the object of that name (`None`: absent).
fn wait_object(
    rt: &tokio::runtime::Runtime,
    api: &KubeApi<DynamicObject>,
    name: &str,
    what: &str,
    done: impl Fn(Option<&DynamicObject>) -> bool,
) {
    let started = std::time::Instant::now();
    loop {
        let object = rt.block_on(api.get_opt(name)).unwrap();
        if done(object.as_ref()) {
            return;
        }
        assert!(started.elapsed() < T, "{what}: {object:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigkill_mid_federated_experiment_leaves_no_chaos_mesh_object_after_restart() {
    install_crypto_provider();
    let Some(server) = k8s::server() else { return };
    let Cluster {
        standin,
        ns,
        client,
        rt,
    } = Cluster::start(server, "crash");
    let objects: KubeApi<DynamicObject> =
        KubeApi::namespaced_with(client.clone(), &ns.name, &network_chaos());

    let dir = tempfile::tempdir().unwrap();
    let mut hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);
    let env = format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: cluster-k}}\nspec:\n  adapter: kubernetes\n  settings: {{kubeconfig: {}, mode: chaos-mesh, confirm_timeout_ms: 20000}}\n",
        server.kubeconfig.display()
    );
    let (code, body) = api.post("/api/v1/environments", Some(&env));
    assert_eq!(code, 201, "{body}");

    // 1. Killed mid-injection: applied, Chaos Mesh has not confirmed yet (gate closed).
    let (code, created) = api.post(
        "/api/v1/experiments",
        Some(&delay("interrupted", &ns.name, "60s")),
    );
    assert_eq!(code, 201, "{created}");
    let interrupted = uid(&created);
    let interrupted_object = format!("chaoshub-{interrupted}-0");
    wait_object(&rt, &objects, &interrupted_object, "never applied", |o| {
        o.is_some()
    });
    let first_uid = rt
        .block_on(objects.get(&interrupted_object))
        .unwrap()
        .metadata
        .uid;
    hub.kill9();
    standin.open_gate();

    // The restarted hub removes what the interrupted injection left, then injects it again
    // under the same name, confirmed by Chaos Mesh.
    let mut hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);
    let running = api.wait_phase(&interrupted, "Running", T);
    assert_eq!(running["status"]["targets"][0]["phase"], "Injected");
    let again = rt.block_on(objects.get(&interrupted_object)).unwrap();
    assert_ne!(
        again.metadata.uid, first_uid,
        "the interrupted object was removed and applied anew"
    );

    // 2. Killed while a short experiment runs: its deadline passes while the hub is down.
    let (code, created) = api.post("/api/v1/experiments", Some(&delay("short", &ns.name, "3s")));
    assert_eq!(code, 201, "{created}");
    let short = uid(&created);
    let short_object = format!("chaoshub-{short}-0");
    api.wait_phase(&short, "Running", T);
    hub.kill9();
    std::thread::sleep(Duration::from_millis(3500));
    assert!(
        rt.block_on(objects.get_opt(&short_object))
            .unwrap()
            .is_some(),
        "no one but the hub removes it"
    );
    let hub = HubProcess::start(dir.path());
    let api = Api::new(&hub.url);
    let finished = api.wait_phase(&short, "Finished", T);
    assert_eq!(finished["status"]["targets"][0]["phase"], "Recovered");
    wait_object(&rt, &objects, &short_object, "left behind", |o| o.is_none());
    // The long one survived both restarts, the same object, and is removed at its stop.
    assert_eq!(api.experiment(&interrupted)["status"]["phase"], "Running");
    assert_eq!(
        rt.block_on(objects.get(&interrupted_object))
            .unwrap()
            .metadata
            .uid,
        again.metadata.uid
    );
    let (code, _) = api.post(&format!("/api/v1/experiments/{interrupted}/stop"), None);
    assert_eq!(code, 200);
    api.wait_phase(&interrupted, "Aborted", T);
    let left = rt
        .block_on(objects.list(&ListParams::default().labels("chaoshub.dev/experiment-uid")))
        .unwrap();
    assert!(
        left.items.is_empty(),
        "Chaos Mesh objects left behind: {:?}",
        left.items
            .iter()
            .map(|o| o.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    drop(hub);
    drop(standin);
    drop(ns);
}

/// A hub running in a pod reaches its own cluster with no kubeconfig: the in-cluster service
/// account. The pod is simulated for the real `chaoshub` binary: it runs in a mount namespace of
/// its own where a tmpfs over `/run` holds `secrets/kubernetes.io/serviceaccount/{token,ca.crt,
/// namespace}` (the test server's token and CA, as the kubelet would mount them), with
/// `KUBERNETES_SERVICE_HOST`/`_PORT` naming the API server. Nothing is written outside the
/// namespace. An environment registered without `kubeconfig` reports the cluster reachable, and
/// a dry run lists the pod Chaos Mesh's selector would pick.
#[test]
fn a_hub_in_a_pod_uses_the_in_cluster_service_account() {
    install_crypto_provider();
    let Some(server) = k8s::server() else { return };
    let kubeconfig: serde_json::Value = {
        let text = std::fs::read_to_string(&server.kubeconfig).unwrap();
        chaoshub_schema::document::yaml_documents(&text)
            .unwrap()
            .remove(0)
    };
    let cluster = &kubeconfig["clusters"][0]["cluster"];
    let url = cluster["server"].as_str().unwrap().to_string();
    let ca = cluster["certificate-authority"]
        .as_str()
        .expect("the test server's kubeconfig names its CA file")
        .to_string();
    let token = kubeconfig["users"][0]["user"]["token"]
        .as_str()
        .expect("the test server's kubeconfig carries a token")
        .to_string();
    let port = url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ns = rt.block_on(k8s::TestNamespace::create(server, "incluster"));
    let client = rt.block_on(k8s::admin_client(&server.kubeconfig));
    rt.block_on(k8s::create_pod(
        &client,
        &ns.name,
        "web-0",
        json!({"app": "web"}),
        None,
    ));

    let script = "set -e\n\
        mount -t tmpfs -o mode=0755 tmpfs /run\n\
        d=/run/secrets/kubernetes.io/serviceaccount\n\
        mkdir -p \"$d\"\n\
        cp \"$SA_CA\" \"$d/ca.crt\"\n\
        printf %s \"$SA_TOKEN\" > \"$d/token\"\n\
        printf default > \"$d/namespace\"\n\
        unset SA_CA SA_TOKEN\n\
        exec \"$@\"\n";
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::start_launched(
        dir.path(),
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
            "sh",
        ],
        &[
            ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
            ("KUBERNETES_SERVICE_PORT", &port),
            ("SA_CA", &ca),
            ("SA_TOKEN", &token),
        ],
    );
    // The secrets exist only in the hub's namespace.
    assert!(
        !std::path::Path::new("/run/secrets/kubernetes.io/serviceaccount/token").exists(),
        "the service account leaked onto the host"
    );
    let api = Api::new(&hub.url);
    let env = "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: in-pod}\nspec:\n  adapter: kubernetes\n  settings: {mode: chaos-mesh}\n";
    let (code, body) = api.post("/api/v1/environments", Some(env));
    assert_eq!(code, 201, "{body}\n{}", hub.log());
    let started = std::time::Instant::now();
    let status = loop {
        let list = api.get("/api/v1/environments");
        let env = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["metadata"]["name"] == "in-pod")
            .cloned()
            .unwrap();
        if env["status"]["reachable"] == true {
            break env["status"].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never reachable: {env:#}\n{}",
            hub.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let plan = format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: dry, namespace: {}}}\nspec:\n  action: delay\n  mode: all\n  selector: {{labelSelectors: {{app: web}}}}\n  delay: {{latency: 10ms}}\n  environment: in-pod\n",
        ns.name
    );
    let (code, plan) = api.post("/api/v1/experiments?dryRun=true", Some(&plan));
    assert_eq!(code, 200, "{plan}");
    assert_eq!(plan["plan"]["farSide"]["matched"], 1, "{plan:#}");
    assert_eq!(
        plan["plan"]["farSide"]["targets"][0]["name"], "web-0",
        "{plan:#}"
    );
    eprintln!(
        "\nin-cluster: a hub with only a service account (token and CA under /run/secrets in its own mount namespace, KUBERNETES_SERVICE_HOST/PORT) reached {url}: {status}; its dry run matched the pod"
    );
}
