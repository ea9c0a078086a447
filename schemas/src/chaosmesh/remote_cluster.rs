//! `RemoteCluster`: another Kubernetes cluster Chaos Mesh injects into.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{join_path, ValidationErrors};
use crate::meta::check_dns_name;
use crate::validate::Validate;

/// `spec` of a `RemoteCluster`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteClusterSpec {
    /// Namespace Chaos Mesh is installed into in the remote cluster.
    pub namespace: String,
    /// Chaos Mesh version to install. The CRD marks it required, but Chaos Mesh's own
    /// `remote-cluster.yaml` example omits it, so chaoshub accepts its absence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub kube_config: RemoteClusterKubeConfig,
    /// Helm values overriding the installation (free-form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_override: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteClusterKubeConfig {
    pub secret_ref: RemoteClusterSecretRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteClusterSecretRef {
    pub name: String,
    pub namespace: String,
    pub key: String,
}

impl Validate for RemoteClusterSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        if let Err(e) = check_dns_name(&self.namespace) {
            errors.push(join_path(path, "namespace"), e);
        }
        let p = join_path(&join_path(path, "kubeConfig"), "secretRef");
        let r = &self.kube_config.secret_ref;
        for (field, value) in [
            ("name", &r.name),
            ("namespace", &r.namespace),
            ("key", &r.key),
        ] {
            if value.trim().is_empty() {
                errors.push(join_path(&p, field), "must not be empty");
            }
        }
    }
}
