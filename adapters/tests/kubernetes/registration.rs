//! Registration: the cluster's version, Chaos Mesh's served kinds, and the permissions the
//! credentials lack, named by verb, resource and namespace.

use chaoshub_adapters::kubernetes::KubernetesAdapter;
use chaoshub_adapters::{Adapter, AdapterError};
use chaoshub_schema::api::Capability;
use serde_json::json;

use super::support::{environment, limited_kubeconfig, plain_server, server, TestNamespace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_reports_version_chaos_mesh_kinds_and_nothing_missing_for_an_admin() {
    let Some(server) = server() else { return };
    let adapter = KubernetesAdapter::new();
    let env = environment("k8s-admin", &server.kubeconfig, json!({}));
    adapter.validate_environment(&env).unwrap();
    let report = adapter.cluster_report(&env).await.unwrap();
    assert_eq!(report.version, "v1.26.1");
    assert!(report.chaos_mesh);
    let kinds: Vec<&str> = report
        .served_kinds
        .iter()
        .map(|k| k.kind.as_str())
        .collect();
    for kind in ["NetworkChaos", "PodChaos", "StressChaos"] {
        assert!(kinds.contains(&kind), "{kind} not in {kinds:?}");
    }
    let network = report.served("NetworkChaos").unwrap();
    assert_eq!(network.resource, "networkchaos");
    assert!(network.namespaced);
    assert!(
        report.missing_permissions.is_empty(),
        "{:?}",
        report.missing_permissions
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // The capabilities follow what the cluster serves: NetworkChaos yes, IOChaos (CRD not
    // installed here) no, native pod-kill yes.
    let caps = adapter.environment_capabilities(&env).await.unwrap();
    assert!(caps.contains(&Capability::new("NetworkChaos", "delay")));
    assert!(caps.contains(&Capability::new("PodChaos", "pod-kill")));
    assert!(!caps.contains(&Capability::new("IOChaos", "latency")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_limited_token_has_its_missing_permissions_named() {
    let Some(server) = server() else { return };
    let allowed = TestNamespace::create(server, "rbac-in").await;
    let other = TestNamespace::create(server, "rbac-out").await;
    let kubeconfig = limited_kubeconfig(
        server,
        &allowed.name,
        json!([
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["chaos-mesh.org"], "resources": ["networkchaos"],
             "verbs": ["create", "patch", "get", "list", "watch", "delete"]}
        ]),
    )
    .await;
    let adapter = KubernetesAdapter::new();
    let env = environment(
        "k8s-limited",
        &kubeconfig,
        json!({"namespaces": [allowed.name, other.name]}),
    );
    let report = adapter.cluster_report(&env).await.unwrap();
    let missing: Vec<String> = report
        .missing_permissions
        .iter()
        .map(ToString::to_string)
        .collect();
    // In its own namespace only pods' delete is missing; in the other, everything.
    assert!(missing.contains(&format!("delete pods in namespace {}", allowed.name)));
    assert!(!missing.contains(&format!("list pods in namespace {}", allowed.name)));
    assert!(!missing
        .iter()
        .any(|m| m.contains("networkchaos") && m.ends_with(&allowed.name)));
    for verb in ["create", "patch", "get", "list", "watch", "delete"] {
        assert!(
            missing.contains(&format!(
                "{verb} networkchaos.chaos-mesh.org in namespace {}",
                other.name
            )),
            "{verb} missing from {missing:?}"
        );
    }
    assert!(missing.contains(&format!(
        "create podchaos.chaos-mesh.org in namespace {}",
        allowed.name
    )));
    assert!(
        report.problems.iter().any(|p| p.contains("lack")),
        "{:?}",
        report.problems
    );
    // The environment's matrix leaves out what cannot be done everywhere it acts.
    let caps = adapter.environment_capabilities(&env).await.unwrap();
    assert!(
        !caps.contains(&Capability::new("NetworkChaos", "delay")),
        "{caps:?}"
    );
    assert!(
        !caps.contains(&Capability::new("PodChaos", "pod-kill")),
        "{caps:?}"
    );

    // Limited to its own namespace, the same token can run NetworkChaos there.
    let env = environment(
        "k8s-limited",
        &kubeconfig,
        json!({"namespaces": [allowed.name]}),
    );
    let caps = adapter.environment_capabilities(&env).await.unwrap();
    assert!(
        caps.contains(&Capability::new("NetworkChaos", "delay")),
        "{caps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_chaos_mesh_is_reported_as_such() {
    let Some(server) = plain_server() else { return };
    let adapter = KubernetesAdapter::new();
    let env = environment(
        "k8s-plain",
        &server.kubeconfig,
        json!({"mode": "chaos-mesh"}),
    );
    let report = adapter.cluster_report(&env).await.unwrap();
    assert_eq!(report.version, "v1.26.1");
    assert!(!report.chaos_mesh);
    assert!(report.served_kinds.is_empty());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("Chaos Mesh's CRDs are not installed")),
        "{:?}",
        report.problems
    );
    assert!(adapter
        .environment_capabilities(&env)
        .await
        .unwrap()
        .is_empty());
    // In auto mode, what is left is native pod-kill.
    let env = environment("k8s-plain", &server.kubeconfig, json!({}));
    assert_eq!(
        adapter.environment_capabilities(&env).await.unwrap(),
        vec![Capability::new("PodChaos", "pod-kill")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_unreadable_cluster_is_said_so() {
    let adapter = KubernetesAdapter::new();
    let dir = tempfile::tempdir().unwrap();
    // A kubeconfig pointing at a closed loopback port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = dir.path().join("closed.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let env = environment("k8s-closed", &path, json!({}));
    match adapter.cluster_report(&env).await {
        Err(AdapterError::Unreachable { endpoint, .. }) => {
            assert!(endpoint.contains(&port.to_string()), "{endpoint}")
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    let env = environment("k8s-missing", &dir.path().join("absent"), json!({}));
    let error = adapter.cluster_report(&env).await.unwrap_err().to_string();
    assert!(error.contains("cannot read kubeconfig"), "{error}");
    let env = environment("k8s-ctx", &path, json!({"context": "nope"}));
    let error = adapter.cluster_report(&env).await.unwrap_err().to_string();
    assert!(error.contains("nope"), "{error}");
}
