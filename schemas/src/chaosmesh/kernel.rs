//! `KernelChaos`: fail kernel requests (BPF-based fail injection).

use serde::{Deserialize, Serialize};

use super::common::{check_pod_common, check_range, common_fault_accessors};
use super::selector::PodSelectorSpec;
use crate::error::{join_path, ValidationErrors};
use crate::fault::FaultSpec;
use crate::selector::{SelectorMode, TargetSelector};
use crate::validate::Validate;

/// `spec` of a `KernelChaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KernelChaosSpec {
    pub mode: SelectorMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub selector: PodSelectorSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_names: Vec<String>,
    pub fail_kern_request: FailKernRequest,
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
pub struct FailKernRequest {
    /// What to fail: 0 slab allocations, 1 page allocations, 2 bio.
    #[schemars(range(min = 0, max = 2))]
    pub failtype: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callchain: Vec<Frame>,
    /// Percent probability of failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub probability: Option<i32>,
    /// Maximum number of failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub times: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Frame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funcname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<String>,
}

impl Validate for KernelChaosSpec {
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
        let p = join_path(path, "failKernRequest");
        let req = &self.fail_kern_request;
        check_range(Some(req.failtype.into()), 0, 2, &p, "failtype", errors);
        check_range(
            req.probability.map(i64::from),
            0,
            100,
            &p,
            "probability",
            errors,
        );
        check_range(
            req.times.map(i64::from),
            0,
            i64::from(i32::MAX),
            &p,
            "times",
            errors,
        );
    }
}

impl FaultSpec for KernelChaosSpec {
    fn actions(&self) -> Vec<String> {
        vec!["fail-kern-request".to_string()]
    }
    fn target_selector(&self) -> Option<TargetSelector> {
        Some(self.selector.to_target_selector())
    }
    common_fault_accessors!();
}
