//! The `Environment` kind (`chaoshub.dev/v1alpha1`): a registered target system.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `spec` of an `Environment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentSpec {
    /// Adapter type that drives this environment: `webhook`, `native`, `docker`, `ssm`,
    /// `toxiproxy`, `envoy`, `kubernetes`.
    pub adapter: String,
    /// Where the adapter reaches the environment (URL); meaning depends on the adapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Free text shown in listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Labels of the environment itself (used by suites and probes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Adapter-specific settings; each adapter validates its own.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl crate::validate::Validate for EnvironmentSpec {
    fn validate(&self, path: &str, errors: &mut crate::error::ValidationErrors) {
        if self.adapter.trim().is_empty() {
            errors.push(
                crate::error::join_path(path, "adapter"),
                "must name an adapter type",
            );
        }
        if let Some(endpoint) = &self.endpoint {
            if endpoint.trim().is_empty() {
                errors.push(
                    crate::error::join_path(path, "endpoint"),
                    "must not be empty when given",
                );
            }
        }
    }
}
