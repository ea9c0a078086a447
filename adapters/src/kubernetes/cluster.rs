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
        served_kinds: served,
        mode: config.mode.as_str(),
        namespaces: config.namespaces.clone(),
        missing_permissions,
        problems,
    })
}
