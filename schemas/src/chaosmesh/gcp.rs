//! `GCPChaos`: stop or reset a GCE instance, detach disks.

use serde::{Deserialize, Serialize};

use super::common::{check_duration, check_environment, cloud_fault_accessors};
use crate::error::{join_path, ValidationErrors};
use crate::fault::FaultSpec;
use crate::validate::Validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GCPChaosAction {
    NodeStop,
    NodeReset,
    DiskLoss,
}

impl GCPChaosAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NodeStop => "node-stop",
            Self::NodeReset => "node-reset",
            Self::DiskLoss => "disk-loss",
        }
    }
}

/// `spec` of a `GCPChaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GCPChaosSpec {
    pub action: GCPChaosAction,
    pub project: String,
    pub zone: String,
    pub instance: String,
    /// Disks to detach (disk-loss).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_names: Vec<String>,
    /// Kubernetes secret with the GCP credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_cluster: Option<String>,
    /// chaoshub: the registered environment that runs this experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl Validate for GCPChaosSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        check_duration(self.duration.as_deref(), path, "duration", errors);
        check_environment(self.environment.as_deref(), path, errors);
        for (field, value) in [
            ("project", &self.project),
            ("zone", &self.zone),
            ("instance", &self.instance),
        ] {
            if value.trim().is_empty() {
                errors.push(join_path(path, field), "must not be empty");
            }
        }
        if self.action == GCPChaosAction::DiskLoss && self.device_names.is_empty() {
            errors.push(
                join_path(path, "deviceNames"),
                "must list at least one disk when action is disk-loss",
            );
        }
    }
}

impl FaultSpec for GCPChaosSpec {
    fn actions(&self) -> Vec<String> {
        vec![self.action.as_str().to_string()]
    }
    cloud_fault_accessors!();
}
