//! Chaos Mesh's pod selection, over pods read from the cluster (pure: the pods and nodes are
//! passed in). Native mode selects with it, so a manifest picks the same pods whether Chaos
//! Mesh or the hub runs it; the hub then applies the mode (`one`, `fixed`, …) as Chaos Mesh
//! does.
//!
//! Semantics kept from Chaos Mesh 2.x:
//! - `namespaces` empty means the experiment's own namespace (Chaos Mesh's defaulting webhook
//!   writes it into the selector);
//! - `pods` (names per namespace) selects exactly those pods, and the other fields are not
//!   consulted;
//! - `labelSelectors`, `expressionSelectors` (In, NotIn, Exists, DoesNotExist),
//!   `annotationSelectors` and `fieldSelectors` must all hold;
//! - `nodes` and the nodes matched by `nodeSelectors` together form the set of nodes a pod must
//!   run on, when either is given;
//! - `podPhaseSelectors` restricts the pod's `status.phase`.

use std::collections::{BTreeMap, BTreeSet};

use chaoshub_schema::selector::{LabelSelectorRequirement, TargetSelector};
use k8s_openapi::api::core::v1::{Node, Pod};

/// The pods of `pods` the selector matches, in their given order.
pub fn select_pods<'a>(
    selector: &TargetSelector,
    default_namespace: &str,
    pods: &'a [Pod],
    nodes: &[Node],
) -> Vec<&'a Pod> {
    pods.iter()
        .filter(|pod| pod_matches(selector, default_namespace, pod, nodes))
        .collect()
}

/// Whether one pod is selected.
pub fn pod_matches(
    selector: &TargetSelector,
    default_namespace: &str,
    pod: &Pod,
    nodes: &[Node],
) -> bool {
    let meta = &pod.metadata;
    let name = meta.name.as_deref().unwrap_or_default();
    let namespace = meta.namespace.as_deref().unwrap_or("default");
    if !selector.names.is_empty() {
        return selector
            .names
            .get(namespace)
            .is_some_and(|names| names.iter().any(|n| n == name));
    }
    let in_namespace = if selector.namespaces.is_empty() {
        namespace == default_namespace
    } else {
        selector.namespaces.iter().any(|n| n == namespace)
    };
    if !in_namespace {
        return false;
    }
    let empty = BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    if !selector
        .label_selectors
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    if !selector
        .expression_selectors
        .iter()
        .all(|r| requirement_holds(r, labels))
    {
        return false;
    }
    if !selector
        .annotation_selectors
        .iter()
        .all(|(k, v)| annotations.get(k) == Some(v))
    {
        return false;
    }
    if !selector
        .field_selectors
        .iter()
        .all(|(k, v)| pod_field(pod, k).as_deref() == Some(v.as_str()))
    {
        return false;
    }
    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    if !selector.nodes.is_empty() || !selector.node_selectors.is_empty() {
        let mut allowed: BTreeSet<&str> = selector.nodes.iter().map(String::as_str).collect();
        if !selector.node_selectors.is_empty() {
            for n in nodes {
                let node_labels = n.metadata.labels.as_ref().unwrap_or(&empty);
                if selector
                    .node_selectors
                    .iter()
                    .all(|(k, v)| node_labels.get(k) == Some(v))
                {
                    if let Some(node_name) = n.metadata.name.as_deref() {
                        allowed.insert(node_name);
                    }
                }
            }
        }
        if !node.is_some_and(|n| allowed.contains(n)) {
            return false;
        }
    }
    if !selector.pod_phase_selectors.is_empty() {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if !phase.is_some_and(|p| selector.pod_phase_selectors.iter().any(|w| w == p)) {
            return false;
        }
    }
    true
}

/// The value of a pod field the API server's field selectors support for pods.
pub fn pod_field(pod: &Pod, field: &str) -> Option<String> {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    match field {
        "metadata.name" => pod.metadata.name.clone(),
        "metadata.namespace" => pod.metadata.namespace.clone(),
        "spec.nodeName" => Some(spec.and_then(|s| s.node_name.clone()).unwrap_or_default()),
        "spec.restartPolicy" => spec.and_then(|s| s.restart_policy.clone()),
        "spec.schedulerName" => spec.and_then(|s| s.scheduler_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.phase" => status.and_then(|s| s.phase.clone()),
        "status.podIP" => Some(status.and_then(|s| s.pod_ip.clone()).unwrap_or_default()),
        "status.nominatedNodeName" => Some(
            status
                .and_then(|s| s.nominated_node_name.clone())
                .unwrap_or_default(),
        ),
        _ => None,
    }
}

fn requirement_holds(req: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&req.key);
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| req.values.contains(v)),
        "NotIn" => value.is_none_or(|v| !req.values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, name: &str, labels: serde_json::Value, node: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "labels": labels,
                         "annotations": {"team": name}},
            "spec": {"containers": [{"name": "c", "image": "i"}], "nodeName": node},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    fn selector(value: serde_json::Value) -> TargetSelector {
        serde_json::from_value(value).unwrap()
    }

    fn names(selected: Vec<&Pod>) -> Vec<String> {
        selected
            .into_iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn chaos_mesh_semantics() {
        let pods = vec![
            pod(
                "shop",
                "a",
                json!({"app": "web", "tier": "1"}),
                "n1",
                "Running",
            ),
            pod("shop", "b", json!({"app": "web"}), "n2", "Pending"),
            pod("shop", "c", json!({"app": "db"}), "n1", "Running"),
            pod("other", "d", json!({"app": "web"}), "n1", "Running"),
        ];
        let nodes: Vec<Node> = vec![serde_json::from_value(
            json!({"metadata": {"name": "n2", "labels": {"zone": "z2"}}}),
        )
        .unwrap()];
        let pick = |s: serde_json::Value| names(select_pods(&selector(s), "shop", &pods, &nodes));
        // Empty namespaces: the experiment's own namespace only.
        assert_eq!(pick(json!({"labelSelectors": {"app": "web"}})), ["a", "b"]);
        assert_eq!(
            pick(json!({"namespaces": ["shop", "other"], "labelSelectors": {"app": "web"}})),
            ["a", "b", "d"]
        );
        assert_eq!(
            pick(json!({"expressionSelectors": [{"key": "tier", "operator": "DoesNotExist"}]})),
            ["b", "c"]
        );
        assert_eq!(
            pick(
                json!({"expressionSelectors": [{"key": "app", "operator": "NotIn", "values": ["web"]}]})
            ),
            ["c"]
        );
        assert_eq!(pick(json!({"annotationSelectors": {"team": "c"}})), ["c"]);
        assert_eq!(
            pick(json!({"fieldSelectors": {"spec.nodeName": "n1"}})),
            ["a", "c"]
        );
        assert_eq!(
            pick(json!({"fieldSelectors": {"status.phase": "Pending"}})),
            ["b"]
        );
        assert_eq!(pick(json!({"podPhaseSelectors": ["Running"]})), ["a", "c"]);
        assert_eq!(
            pick(json!({"nodes": ["n1"], "labelSelectors": {"app": "web"}})),
            ["a"]
        );
        // nodes and nodeSelectors together: the union of the nodes they name.
        assert_eq!(
            pick(json!({"nodes": ["n1"], "nodeSelectors": {"zone": "z2"}})),
            ["a", "b", "c"]
        );
        assert_eq!(pick(json!({"nodeSelectors": {"zone": "z2"}})), ["b"]);
        // An explicit pod list wins over everything else.
        assert_eq!(
            pick(json!({"names": {"other": ["d"]}, "labelSelectors": {"app": "db"}})),
            ["d"]
        );
    }
}
