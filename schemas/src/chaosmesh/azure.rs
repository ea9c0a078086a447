//! `AzureChaos`: stop or restart a VM, detach a data disk.

use serde::{Deserialize, Serialize};

use super::common::{check_duration, check_environment, cloud_fault_accessors, require};
use crate::error::{join_path, ValidationErrors};
use crate::fault::FaultSpec;
use crate::validate::Validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AzureChaosAction {
    VmStop,
    VmRestart,
    DiskDetach,
}

impl AzureChaosAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VmStop => "vm-stop",
            Self::VmRestart => "vm-restart",
            Self::DiskDetach => "disk-detach",
        }
    }
}

/// `spec` of an `AzureChaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureChaosSpec {
    pub action: AzureChaosAction,
    #[serde(rename = "subscriptionID")]
    pub subscription_id: String,
    pub resource_group_name: String,
    pub vm_name: String,
    /// Data disk to detach (disk-detach).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_name: Option<String>,
    /// Logical unit number of the data disk (disk-detach).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lun: Option<i64>,
    /// Kubernetes secret with the Azure credentials.
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

impl Validate for AzureChaosSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        check_duration(self.duration.as_deref(), path, "duration", errors);
        check_environment(self.environment.as_deref(), path, errors);
        for (field, value) in [
            ("subscriptionID", &self.subscription_id),
            ("resourceGroupName", &self.resource_group_name),
            ("vmName", &self.vm_name),
        ] {
            if value.trim().is_empty() {
                errors.push(join_path(path, field), "must not be empty");
            }
        }
        if self.action == AzureChaosAction::DiskDetach {
            let why = "when action is disk-detach";
            require(&self.disk_name, path, "diskName", why, errors);
            require(&self.lun, path, "lun", why, errors);
        }
    }
}

impl FaultSpec for AzureChaosSpec {
    fn actions(&self) -> Vec<String> {
        vec![self.action.as_str().to_string()]
    }
    cloud_fault_accessors!();
}
