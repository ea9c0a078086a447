//! `BlockChaos`: block device I/O delay.

use serde::{Deserialize, Serialize};

use super::common::{check_duration, check_percent_str, check_pod_common, common_fault_accessors};
use super::selector::PodSelectorSpec;
use crate::error::{join_path, ValidationErrors};
use crate::fault::FaultSpec;
use crate::selector::{SelectorMode, TargetSelector};
use crate::validate::Validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BlockChaosAction {
    Delay,
}

/// `spec` of a `BlockChaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockChaosSpec {
    pub action: BlockChaosAction,
    pub mode: SelectorMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub selector: PodSelectorSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_names: Vec<String>,
    /// The volume whose block device is delayed.
    pub volume_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<BlockDelaySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_cluster: Option<String>,
    /// chaoshub: the registered environment that runs this experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockDelaySpec {
    /// Latency of every I/O request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
}

impl Validate for BlockChaosSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        check_pod_common(
            self.mode,
            self.value.as_deref(),
            &self.selector,
            self.duration.as_deref(),
            self.environment.as_deref(),
            path,
            errors,
        );
        if self.volume_name.trim().is_empty() {
            errors.push(join_path(path, "volumeName"), "must not be empty");
        }
        match &self.delay {
            None => errors.push(join_path(path, "delay"), "is required when action is delay"),
            Some(delay) => {
                let p = join_path(path, "delay");
                if delay.latency.is_none() {
                    errors.push(join_path(&p, "latency"), "is required when action is delay");
                }
                check_duration(delay.latency.as_deref(), &p, "latency", errors);
                check_duration(delay.jitter.as_deref(), &p, "jitter", errors);
                check_percent_str(delay.correlation.as_deref(), &p, "correlation", errors);
            }
        }
    }
}

impl FaultSpec for BlockChaosSpec {
    fn actions(&self) -> Vec<String> {
        vec!["delay".to_string()]
    }
    fn target_selector(&self) -> Option<TargetSelector> {
        Some(self.selector.to_target_selector())
    }
    common_fault_accessors!();
}
