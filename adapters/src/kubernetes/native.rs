//! Native mode: the hub acts on pods itself, without Chaos Mesh. Pods are targets (id: the pod's
//! UID, so a pod recreated under the same name is a different target); `pod-kill` deletes the
//! selected pod with the manifest's grace period, with the UID as precondition so it never
//! deletes a successor of the same name.

use chaoshub_schema::Target;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use serde_json::{json, Value};

use super::client::{api_code, Cluster};
use crate::AdapterError;

pub const TARGET_KIND: &str = "pod";

/// The pods of `namespaces` (every namespace when empty).
pub async fn list_pods(cluster: &Cluster, namespaces: &[String]) -> Result<Vec<Pod>, AdapterError> {
    let mut pods = Vec::new();
    if namespaces.is_empty() {
        let api: Api<Pod> = Api::all(cluster.client.clone());
        let list = cluster
            .call("listing pods", api.list(&ListParams::default()))
            .await?;
        pods.extend(list.items);
    } else {
        for ns in namespaces {
            let api: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
            let list = cluster
                .call(
                    &format!("listing pods in namespace {ns}"),
                    api.list(&ListParams::default()),
                )
                .await?;
            pods.extend(list.items);
        }
    }
    pods.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    Ok(pods)
}

pub async fn list_nodes(cluster: &Cluster) -> Result<Vec<Node>, AdapterError> {
    let api: Api<Node> = Api::all(cluster.client.clone());
    Ok(cluster
        .call("listing nodes", api.list(&ListParams::default()))
        .await?
        .items)
}

/// A pod as a target of the environment.
pub fn target_of(environment: &str, pod: &Pod) -> Target {
    let meta = &pod.metadata;
    Target {
        environment: environment.to_string(),
        adapter: super::ADAPTER_TYPE.into(),
        kind: TARGET_KIND.into(),
        id: meta.uid.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        namespace: meta.namespace.clone(),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
    }
}

/// `pod-kill`: deletes the pod with the grace period, only if it still has the target's UID.
/// A pod already gone (or replaced) counts as killed, so a repeated inject is a no-op.
pub async fn kill_pod(
    cluster: &Cluster,
    target: &Target,
    grace_period_seconds: i64,
) -> Result<Value, AdapterError> {
    let namespace = target.namespace.as_deref().unwrap_or("default");
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(grace_period_seconds.max(0) as u32),
        preconditions: Some(Preconditions {
            uid: Some(target.id.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let context = format!("deleting pod {namespace}/{}", target.name);
    let outcome = match tokio::time::timeout(
        super::client::REQUEST_TIMEOUT,
        api.delete(&target.name, &params),
    )
    .await
    {
        Ok(Ok(_)) => "deleted",
        // 404: gone; 409: the name now belongs to another pod (the UID precondition failed).
        Ok(Err(e)) if matches!(api_code(&e), Some(404 | 409)) => "already gone",
        Ok(Err(e)) => return Err(cluster.error(&context, e)),
        Err(_) => {
            return Err(AdapterError::Unreachable {
                environment: cluster.environment.clone(),
                endpoint: cluster.server.clone(),
                message: format!("{context}: no answer"),
            })
        }
    };
    Ok(json!({
        "mode": "native",
        "action": "pod-kill",
        "namespace": namespace,
        "pod": target.name,
        "uid": target.id,
        "gracePeriodSeconds": grace_period_seconds,
        "outcome": outcome,
    }))
}

/// Whether the pod the target names is gone or going (deleted, terminating, or replaced by
/// another pod of the same name).
pub async fn pod_killed(cluster: &Cluster, target: &Target) -> Result<bool, AdapterError> {
    let namespace = target.namespace.as_deref().unwrap_or("default");
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    let pod = cluster
        .call(
            &format!("reading pod {namespace}/{}", target.name),
            api.get_opt(&target.name),
        )
        .await?;
    Ok(match pod {
        None => true,
        Some(pod) => {
            pod.metadata.uid.as_deref() != Some(target.id.as_str())
                || pod.metadata.deletion_timestamp.is_some()
        }
    })
}
