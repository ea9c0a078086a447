//! `DNSChaos`: DNS errors or random answers for matching domains.

use serde::{Deserialize, Serialize};

use super::common::{check_pod_common, common_fault_accessors, index_path};
use super::selector::PodSelectorSpec;
use crate::error::ValidationErrors;
use crate::fault::FaultSpec;
use crate::selector::{SelectorMode, TargetSelector};
use crate::validate::Validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DNSChaosAction {
    Error,
    Random,
}

impl DNSChaosAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Random => "random",
        }
    }
}

/// `spec` of a `DNSChaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DNSChaosSpec {
    pub action: DNSChaosAction,
    pub mode: SelectorMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub selector: PodSelectorSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_names: Vec<String>,
    /// Domain patterns (`?` and a trailing `*` are placeholders); empty means every domain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_cluster: Option<String>,
    /// chaoshub: the registered environment that runs this experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl Validate for DNSChaosSpec {
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
        for (i, pattern) in self.patterns.iter().enumerate() {
            let p = index_path(path, "patterns", i);
            if pattern.trim().is_empty() {
                errors.push(p, "must not be empty");
            } else if pattern.find('*').is_some_and(|at| at != pattern.len() - 1) {
                errors.push(
                    p,
                    format!("{pattern:?}: * is only allowed at the end of a pattern"),
                );
            }
        }
    }
}

impl FaultSpec for DNSChaosSpec {
    fn actions(&self) -> Vec<String> {
        vec![self.action.as_str().to_string()]
    }
    fn target_selector(&self) -> Option<TargetSelector> {
        Some(self.selector.to_target_selector())
    }
    common_fault_accessors!();
}
