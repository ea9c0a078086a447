//! `AWSChaos`: stop or restart an EC2 instance, detach an EBS volume.

use serde::{Deserialize, Serialize};

use super::common::{check_duration, check_environment, cloud_fault_accessors, require};
use crate::error::{join_path, ValidationErrors};
use crate::fault::FaultSpec;
use crate::validate::Validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AWSChaosAction {
    Ec2Stop,
    Ec2Restart,
    DetachVolume,
}

impl AWSChaosAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ec2Stop => "ec2-stop",
            Self::Ec2Restart => "ec2-restart",
            Self::DetachVolume => "detach-volume",
        }
    }
}

/// `spec` of an `AWSChaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AWSChaosSpec {
    pub action: AWSChaosAction,
    pub aws_region: String,
    pub ec2_instance: String,
    /// EBS volume id (detach-volume).
    #[serde(rename = "volumeID", default, skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
    /// Device name of the volume (detach-volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// AWS endpoint override (tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Kubernetes secret with the AWS credentials.
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

impl Validate for AWSChaosSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        check_duration(self.duration.as_deref(), path, "duration", errors);
        check_environment(self.environment.as_deref(), path, errors);
        for (field, value) in [
            ("awsRegion", &self.aws_region),
            ("ec2Instance", &self.ec2_instance),
        ] {
            if value.trim().is_empty() {
                errors.push(join_path(path, field), "must not be empty");
            }
        }
        if self.action == AWSChaosAction::DetachVolume {
            let why = "when action is detach-volume";
            require(&self.volume_id, path, "volumeID", why, errors);
            require(&self.device_name, path, "deviceName", why, errors);
        }
    }
}

impl FaultSpec for AWSChaosSpec {
    fn actions(&self) -> Vec<String> {
        vec![self.action.as_str().to_string()]
    }
    cloud_fault_accessors!();
}
