//! Running containers as targets, and the peers a network fault's `spec.target` names.
//!
//! A container's own labels become target labels unchanged, so `labelSelectors` written for
//! compose labels work as they are; the adapter adds `name`, `image`, `networks`,
//! `network.<name>` (its address there), `compose.project` / `compose.service`, and `phase:
//! Running` for `podPhaseSelectors`. Containers chaoshub created (helpers) are never targets.

use std::collections::BTreeMap;

use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptions;
use chaoshub_schema::chaosmesh::selector::PodSelectorSpec;
use chaoshub_schema::Target;

use super::client::DockerClient;
use super::image::ROLE_LABEL;
use crate::{AdapterError, Environment};

pub const COMPOSE_PROJECT: &str = "com.docker.compose.project";
pub const COMPOSE_SERVICE: &str = "com.docker.compose.service";

/// The container's name without Docker's leading slash.
pub fn container_name(names: &[String], id: &str) -> String {
    names
        .first()
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_else(|| id.chars().take(12).collect())
}

fn to_target(env: &Environment, summary: ContainerSummary) -> Option<Target> {
    let id = summary.id?;
    let mut labels: BTreeMap<String, String> =
        summary.labels.unwrap_or_default().into_iter().collect();
    if labels.contains_key(ROLE_LABEL) {
        return None;
    }
    let name = container_name(summary.names.as_deref().unwrap_or_default(), &id);
    labels.insert("name".into(), name.clone());
    if let Some(image) = summary.image {
        labels.insert("image".into(), image);
    }
    let networks = summary
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default();
    let mut names: Vec<&String> = networks.keys().collect();
    names.sort();
    labels.insert(
        "networks".into(),
        names
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(","),
    );
    for (network, endpoint) in &networks {
        if let Some(ip) = endpoint.ip_address.as_ref().filter(|ip| !ip.is_empty()) {
            labels.insert(format!("network.{network}"), ip.clone());
        }
    }
    for (from, to) in [
        (COMPOSE_PROJECT, "compose.project"),
        (COMPOSE_SERVICE, "compose.service"),
    ] {
        if let Some(v) = labels.get(from).cloned() {
            labels.insert(to.into(), v);
        }
    }
    labels.insert("phase".into(), "Running".into());
    Some(Target {
        environment: env.name.clone(),
        adapter: super::ADAPTER_TYPE.into(),
        kind: "container".into(),
        id,
        name,
        namespace: None,
        labels,
        annotations: Default::default(),
    })
}

/// Every running container that is not one of chaoshub's own.
pub async fn discover(
    client: &DockerClient,
    env: &Environment,
) -> Result<Vec<Target>, AdapterError> {
    let mut filters = std::collections::HashMap::new();
    filters.insert("status".to_string(), vec!["running".to_string()]);
    let options = ListContainersOptions {
        all: false,
        filters: Some(filters),
        ..Default::default()
    };
    let containers = client
        .docker()
        .list_containers(Some(options))
        .await
        .map_err(|e| client.error("listing containers", e))?;
    let mut targets: Vec<Target> = containers
        .into_iter()
        .filter_map(|c| to_target(env, c))
        .collect();
    targets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(targets)
}

/// Whether a container matches a network fault's `spec.target` selector. The adapter cannot use
/// the hub's selection code, so this covers what a peer selector needs on Docker: `pods`
/// (names or ids), `labelSelectors` and `expressionSelectors`; other clauses are refused when
/// the plan is checked.
pub fn peer_matches(selector: &PodSelectorSpec, target: &Target) -> bool {
    if !selector.pods.is_empty() {
        return selector
            .pods
            .values()
            .any(|names| names.contains(&target.name) || names.contains(&target.id));
    }
    let labels_ok = selector
        .label_selectors
        .iter()
        .all(|(k, v)| target.labels.get(k) == Some(v));
    let expressions_ok = selector.expression_selectors.iter().all(|r| {
        let value = target.labels.get(&r.key);
        match r.operator.as_str() {
            "In" => value.is_some_and(|v| r.values.contains(v)),
            "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

/// The addresses of a target on every network, from its `network.<name>` labels.
pub fn addresses(target: &Target) -> Vec<String> {
    target
        .labels
        .iter()
        .filter(|(k, _)| k.starts_with("network."))
        .map(|(_, v)| v.clone())
        .collect()
}
