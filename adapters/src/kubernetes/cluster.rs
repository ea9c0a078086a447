//! What registration checks in a cluster: the server's version, whether Chaos Mesh's CRDs are
//! installed and which of its kinds they serve, and which permissions the hub's credentials
//! lack (SelfSubjectAccessReview, per verb, resource and namespace).

use futures_util::future::join_all;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use serde::Serialize;

use super::client::{api_code, Cluster};
use super::config::{KubernetesConfig, Mode};
use crate::AdapterError;

/// Chaos Mesh's API group and version.
pub const CHAOS_MESH_GROUP: &str = "chaos-mesh.org";
pub const CHAOS_MESH_VERSION: &str = "v1alpha1";

/// Verbs the federation mode uses on a Chaos Mesh kind: server-side apply (`patch`, and
/// `create` for a new object), reading back and watching, and deleting at recovery.
pub const FEDERATION_VERBS: &[&str] = &["create", "patch", "get", "list", "watch", "delete"];
/// Verbs the native mode uses on pods: selection, reading back, `pod-kill`.
pub const NATIVE_POD_VERBS: &[&str] = &["get", "list", "watch", "delete"];

/// One Chaos Mesh kind the cluster serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServedKind {
    pub kind: String,
    /// The resource name in URLs (`networkchaos`).
    pub resource: String,
    pub namespaced: bool,
}

/// A permission the credentials lack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingPermission {
    pub verb: String,
    /// `""` for the core group.
    pub group: String,
    pub resource: String,
    /// `None`: cluster-wide (every namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl std::fmt::Display for MissingPermission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let resource = if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        match &self.namespace {
            Some(ns) => write!(f, "{} {resource} in namespace {ns}", self.verb),
            None => write!(f, "{} {resource} in every namespace", self.verb),
        }
    }
}

/// What registration found out about a cluster.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReport {
    pub server: String,
    /// `gitVersion` of `/version` (`v1.26.1`).
    pub version: String,
    /// Whether Chaos Mesh's API group is served.
    pub chaos_mesh: bool,
    /// The installed Chaos Mesh's version (`2.6.3`), from its controller-manager Deployment;
    /// `Err` says why it is not known.
    pub chaos_mesh_version: Result<String, String>,
    pub served_kinds: Vec<ServedKind>,
    /// The configured mode (`auto`, `chaos-mesh`, `native`).
    pub mode: &'static str,
    /// The namespaces checked (empty: cluster-wide).
    pub namespaces: Vec<String>,
    pub missing_permissions: Vec<MissingPermission>,
    /// Problems in plain words (a `chaos-mesh` mode without Chaos Mesh, …).
    pub problems: Vec<String>,
}

impl ClusterReport {
    pub fn served(&self, kind: &str) -> Option<&ServedKind> {
        self.served_kinds.iter().find(|k| k.kind == kind)
    }

    /// Whether every verb on `resource` of `group` is allowed wherever the hub acts.
    pub fn allowed(&self, group: &str, resource: &str, verbs: &[&str]) -> bool {
        !self
            .missing_permissions
            .iter()
            .any(|m| m.group == group && m.resource == resource && verbs.contains(&m.verb.as_str()))
    }
}

/// The Chaos Mesh kinds the cluster serves (none when the group is not installed).
pub async fn served_kinds(cluster: &Cluster) -> Result<Vec<ServedKind>, AdapterError> {
    let group_version = format!("{CHAOS_MESH_GROUP}/{CHAOS_MESH_VERSION}");
    match tokio::time::timeout(
        super::client::REQUEST_TIMEOUT,
        cluster.client.list_api_group_resources(&group_version),
    )
    .await
    {
        Ok(Ok(list)) => Ok(list
            .resources
            .into_iter()
            .filter(|r| !r.name.contains('/'))
            .map(|r| ServedKind {
                kind: r.kind,
                resource: r.name,
                namespaced: r.namespaced,
            })
            .collect()),
        Ok(Err(e)) if api_code(&e) == Some(404) => Ok(Vec::new()),
        Ok(Err(e)) => Err(cluster.error(&format!("discovering {group_version}"), e)),
        Err(_) => Err(AdapterError::Unreachable {
            environment: cluster.environment.clone(),
            endpoint: cluster.server.clone(),
            message: format!("discovering {group_version}: no answer"),
        }),
    }
}

/// Asks the API server whether the credentials may `verb` `resource` in `namespace`.
pub async fn may(
    cluster: &Cluster,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> Result<bool, AdapterError> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_string()),
                group: Some(group.to_string()),
                resource: Some(resource.to_string()),
                namespace: namespace.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(cluster.client.clone());
    let answer = cluster
        .call(
            &format!("SelfSubjectAccessReview for {verb} {resource}"),
            api.create(&PostParams::default(), &review),
        )
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// Every (verb, resource, namespace) of `wanted` the credentials lack, checked concurrently.
pub async fn missing(
    cluster: &Cluster,
    wanted: &[(&str, &str, &str)],
    namespaces: &[String],
) -> Result<Vec<MissingPermission>, AdapterError> {
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    let mut checks = Vec::new();
    for scope in &scopes {
        for (verb, group, resource) in wanted {
            checks.push(async move {
                may(cluster, verb, group, resource, *scope)
                    .await
                    .map(|allowed| {
                        (!allowed).then(|| MissingPermission {
                            verb: verb.to_string(),
                            group: group.to_string(),
                            resource: resource.to_string(),
                            namespace: scope.map(str::to_string),
                        })
                    })
            });
        }
    }
    let mut out = Vec::new();
    for result in join_all(checks).await {
        if let Some(m) = result? {
            out.push(m);
        }
    }
    Ok(out)
}

/// The registration check: version, Chaos Mesh, permissions.
pub async fn report(
    cluster: &Cluster,
    config: &KubernetesConfig,
    runs: fn(&str) -> bool,
) -> Result<ClusterReport, AdapterError> {
    let version = cluster
        .call("reading /version", cluster.client.apiserver_version())
        .await?;
    let served = served_kinds(cluster).await?;
    let mut wanted: Vec<(&str, &str, &str)> = Vec::new();
    if config.mode != Mode::ChaosMesh {
        wanted.extend(NATIVE_POD_VERBS.iter().map(|v| (*v, "", "pods")));
    }
    let mut problems = Vec::new();
    if config.mode != Mode::Native {
        for kind in served.iter().filter(|k| runs(&k.kind)) {
            for verb in FEDERATION_VERBS {
                wanted.push((verb, CHAOS_MESH_GROUP, kind.resource.as_str()));
            }
        }
        if served.is_empty() && config.mode == Mode::ChaosMesh {
            problems.push(format!(
                "mode chaos-mesh, but the cluster does not serve {CHAOS_MESH_GROUP}/{CHAOS_MESH_VERSION} \
                 (Chaos Mesh's CRDs are not installed): no kind can run"
            ));
        }
    }
    let missing_permissions = missing(cluster, &wanted, &config.namespaces).await?;
    let chaos_mesh_version = if served.is_empty() {
        Err("Chaos Mesh is not installed".to_string())
    } else {
        chaos_mesh_version(cluster).await?
    };
    if !missing_permissions.is_empty() {
        problems.push(format!(
            "the credentials lack {} permission(s): {}",
            missing_permissions.len(),
            missing_permissions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    Ok(ClusterReport {
        server: cluster.server.clone(),
        version: version.git_version,
        chaos_mesh: !served.is_empty(),
        chaos_mesh_version,
        served_kinds: served,
        mode: config.mode.as_str(),
        namespaces: config.namespaces.clone(),
        missing_permissions,
        problems,
    })
}

/// The labels Chaos Mesh's Helm chart puts on its controller-manager Deployment.
const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
const NAME_LABEL: &str = "app.kubernetes.io/name";
const VERSION_LABEL: &str = "app.kubernetes.io/version";
const CHART_LABEL: &str = "helm.sh/chart";

/// The version of the Chaos Mesh installed in the cluster, read from its controller-manager
/// Deployment (any namespace; label `app.kubernetes.io/component=controller-manager` and
/// `app.kubernetes.io/name=chaos-mesh`, or the chart's name `chaos-controller-manager`): its
/// `app.kubernetes.io/version` label, else the `helm.sh/chart` label (`chaos-mesh-2.6.3`), else
/// its image's tag. `Ok(Err(why))` when it cannot be told: the credentials may not list
/// Deployments cluster-wide, or there is none (CRDs installed without the controller).
pub async fn chaos_mesh_version(cluster: &Cluster) -> Result<Result<String, String>, AdapterError> {
    use k8s_openapi::api::apps::v1::Deployment;
    let api: Api<Deployment> = Api::all(cluster.client.clone());
    let params =
        kube::api::ListParams::default().labels(&format!("{COMPONENT_LABEL}=controller-manager"));
    let list = match tokio::time::timeout(super::client::REQUEST_TIMEOUT, api.list(&params)).await {
        Ok(Ok(list)) => list,
        Ok(Err(e)) if api_code(&e) == Some(403) => {
            return Ok(Err(
                "unknown: the credentials may not list deployments.apps in every namespace \
                 (Chaos Mesh's controller-manager Deployment tells its version)"
                    .into(),
            ))
        }
        Ok(Err(e)) => return Err(cluster.error("listing controller-manager Deployments", e)),
        Err(_) => {
            return Err(AdapterError::Unreachable {
                environment: cluster.environment.clone(),
                endpoint: cluster.server.clone(),
                message: "listing controller-manager Deployments: no answer".into(),
            })
        }
    };
    let found = list.items.into_iter().find(|d| {
        let labels = d.metadata.labels.clone().unwrap_or_default();
        labels.get(NAME_LABEL).map(String::as_str) == Some("chaos-mesh")
            || d.metadata.name.as_deref() == Some("chaos-controller-manager")
    });
    let Some(deployment) = found else {
        return Ok(Err(
            "unknown: no Chaos Mesh controller-manager Deployment found (its CRDs are installed; \
             is its controller?)"
                .into(),
        ));
    };
    Ok(version_of(&deployment).ok_or_else(|| {
        "unknown: Chaos Mesh's controller-manager Deployment carries no version label or image tag"
            .to_string()
    }))
}

fn version_of(deployment: &k8s_openapi::api::apps::v1::Deployment) -> Option<String> {
    let labels = deployment.metadata.labels.clone().unwrap_or_default();
    if let Some(v) = labels.get(VERSION_LABEL).filter(|v| !v.is_empty()) {
        return Some(v.trim_start_matches('v').to_string());
    }
    if let Some(v) = labels
        .get(CHART_LABEL)
        .and_then(|c| c.strip_prefix("chaos-mesh-"))
        .filter(|v| !v.is_empty())
    {
        return Some(v.replace('_', "+"));
    }
    let image = deployment
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()?;
    // `registry:5000/chaos-mesh/chaos-mesh:v2.6.3`: the tag follows the last `:` after the
    // last `/`.
    let last = image.rsplit('/').next()?;
    let tag = last.split_once(':')?.1;
    let tag = tag.split('@').next().unwrap_or(tag);
    (!tag.is_empty() && tag != "latest").then(|| tag.trim_start_matches('v').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(
        labels: serde_json::Value,
        image: &str,
    ) -> k8s_openapi::api::apps::v1::Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "chaos-controller-manager", "labels": labels},
            "spec": {"selector": {}, "template": {"spec": {"containers": [
                {"name": "chaos-mesh", "image": image}
            ]}}}
        }))
        .unwrap()
    }

    #[test]
    fn the_version_comes_from_the_labels_then_the_image_tag() {
        let d = deployment(
            serde_json::json!({"app.kubernetes.io/version": "2.6.3", "helm.sh/chart": "chaos-mesh-2.6.2"}),
            "ghcr.io/chaos-mesh/chaos-mesh:v2.6.1",
        );
        assert_eq!(version_of(&d).as_deref(), Some("2.6.3"));
        let d = deployment(
            serde_json::json!({"helm.sh/chart": "chaos-mesh-2.7.0_rc1"}),
            "ghcr.io/chaos-mesh/chaos-mesh:v2.6.1",
        );
        assert_eq!(version_of(&d).as_deref(), Some("2.7.0+rc1"));
        let d = deployment(
            serde_json::json!({}),
            "registry:5000/chaos-mesh/chaos-mesh:v2.6.1",
        );
        assert_eq!(version_of(&d).as_deref(), Some("2.6.1"));
        let d = deployment(serde_json::json!({}), "registry:5000/chaos-mesh/chaos-mesh");
        assert_eq!(version_of(&d), None);
        let d = deployment(serde_json::json!({}), "chaos-mesh:latest");
        assert_eq!(version_of(&d), None);
    }
}
