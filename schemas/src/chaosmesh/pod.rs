//! `PodChaos`: pod-kill, pod-failure, container-kill.

use serde::{Deserialize, Serialize};

use super::common::{check_pod_common, common_fault_accessors, index_path};
use super::selector::PodSelectorSpec;
use crate::error::{join_path, ValidationErrors};
use crate::fault::FaultSpec;
use crate::selector::{SelectorMode, TargetSelector};
use crate::validate::Validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PodChaosAction {
    PodKill,
    PodFailure,
    ContainerKill,
}

impl PodChaosAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PodKill => "pod-kill",
            Self::PodFailure => "pod-failure",
            Self::ContainerKill => "container-kill",
        }
    }
}

/// `spec` of a `PodChaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodChaosSpec {
    pub action: PodChaosAction,
    pub mode: SelectorMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub selector: PodSelectorSpec,
    /// The containers to kill (container-kill).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_names: Vec<String>,
    /// Seconds the pod is given to terminate gracefully (pod-kill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub grace_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_cluster: Option<String>,
    /// chaoshub: the registered environment that runs this experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl Validate for PodChaosSpec {
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
        if self.action == PodChaosAction::ContainerKill && self.container_names.is_empty() {
            errors.push(
                join_path(path, "containerNames"),
                "must list at least one container when action is container-kill",
            );
        }
        for (i, name) in self.container_names.iter().enumerate() {
            if name.trim().is_empty() {
                errors.push(index_path(path, "containerNames", i), "must not be empty");
            }
        }
        if let Some(grace) = self.grace_period {
            if grace < 0 {
                errors.push(join_path(path, "gracePeriod"), "must be 0 or more seconds");
            }
        }
    }
}

impl FaultSpec for PodChaosSpec {
    fn actions(&self) -> Vec<String> {
        vec![self.action.as_str().to_string()]
    }
    fn target_selector(&self) -> Option<TargetSelector> {
        Some(self.selector.to_target_selector())
    }
    common_fault_accessors!();
}
