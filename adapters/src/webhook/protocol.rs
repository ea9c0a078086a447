//! Wire types of the plugin protocol `v1` (docs/plugins.md). JSON, camelCase.
//!
//! These live here rather than in `chaoshub-schema` because only this adapter speaks them: the
//! hub's REST API never carries them, and plugins are written against docs/plugins.md.

use std::collections::BTreeMap;

use chaoshub_schema::api::Capability;
use chaoshub_schema::Target;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this adapter speaks; plugins must answer it in `describe`.
pub const PROTOCOL_VERSION: &str = "v1";

pub const DESCRIBE_PATH: &str = "v1/describe";
pub const TARGETS_PATH: &str = "v1/targets";
pub const INJECT_PATH: &str = "v1/inject";
pub const STATUS_PATH: &str = "v1/status";
pub const RECOVER_PATH: &str = "v1/recover";

/// `GET /v1/describe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeResponse {
    pub name: String,
    pub version: String,
    pub protocol: String,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
}

/// One target as a plugin lists it; the adapter adds `environment` and `adapter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginTarget {
    pub kind: String,
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl PluginTarget {
    pub fn into_target(self, environment: &str, adapter: &str) -> Target {
        Target {
            environment: environment.to_string(),
            adapter: adapter.to_string(),
            kind: self.kind,
            id: self.id,
            name: self.name,
            namespace: self.namespace,
            labels: self.labels,
            annotations: self.annotations,
        }
    }
}

/// `GET /v1/targets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetsResponse {
    pub targets: Vec<PluginTarget>,
}

/// `POST /v1/inject`. Plugins must treat a repeated `injectionId` as the same fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectRequest {
    pub injection_id: String,
    pub experiment_uid: String,
    pub name: String,
    pub namespace: String,
    pub kind: String,
    pub actions: Vec<String>,
    /// The experiment's `spec` exactly as Chaos Mesh spells it.
    pub spec: Value,
    pub target: Target,
    /// When the hub wants the fault gone (RFC 3339); the plugin removes it by itself at
    /// `deadline` plus its own grace period. `null` when the experiment has no duration.
    pub deadline: Option<chrono::DateTime<chrono::Utc>>,
}

/// Answer to `POST /v1/inject`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectResponse {
    /// Whatever the plugin needs to find the fault again; handed back on status and recover.
    #[serde(default)]
    pub details: Value,
}

/// `POST /v1/status` and `POST /v1/recover`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectionRef {
    pub injection_id: String,
    pub target: Target,
    /// What inject answered; `null` when the hub crashed before it got the answer.
    pub details: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginState {
    Active,
    Absent,
    Unknown,
}

/// Answer to `POST /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    pub state: PluginState,
    #[serde(default)]
    pub message: Option<String>,
}

/// The body of every 4xx/5xx answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: PluginError,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginError {
    pub code: String,
    pub message: String,
}
