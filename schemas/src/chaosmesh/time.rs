//! `TimeChaos`: shifts the clocks a process sees.

use serde::{Deserialize, Serialize};

use super::common::{check_pod_common, check_signed_duration, common_fault_accessors, index_path};
use super::selector::PodSelectorSpec;
use crate::error::ValidationErrors;
use crate::fault::FaultSpec;
use crate::selector::{SelectorMode, TargetSelector};
use crate::validate::Validate;

/// Clock ids Chaos Mesh can shift.
pub const CLOCK_IDS: &[&str] = &[
    "CLOCK_REALTIME",
    "CLOCK_MONOTONIC",
    "CLOCK_PROCESS_CPUTIME_ID",
    "CLOCK_THREAD_CPUTIME_ID",
    "CLOCK_MONOTONIC_RAW",
    "CLOCK_REALTIME_COARSE",
    "CLOCK_MONOTONIC_COARSE",
    "CLOCK_BOOTTIME",
    "CLOCK_REALTIME_ALARM",
    "CLOCK_BOOTTIME_ALARM",
];

/// `spec` of a `TimeChaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeChaosSpec {
    pub mode: SelectorMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub selector: PodSelectorSpec,
    /// The shift, possibly negative: `-5m`, `1h30m`, `-10m100ns`.
    pub time_offset: String,
    /// Affected clocks; Chaos Mesh defaults to `CLOCK_REALTIME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clock_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_cluster: Option<String>,
    /// chaoshub: the registered environment that runs this experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl Validate for TimeChaosSpec {
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
        check_signed_duration(Some(&self.time_offset), path, "timeOffset", errors);
        for (i, id) in self.clock_ids.iter().enumerate() {
            if !CLOCK_IDS.contains(&id.as_str()) {
                errors.push(
                    index_path(path, "clockIds", i),
                    format!("unknown clock {id:?} (known: {})", CLOCK_IDS.join(", ")),
                );
            }
        }
    }
}

impl FaultSpec for TimeChaosSpec {
    fn actions(&self) -> Vec<String> {
        vec!["time-offset".to_string()]
    }
    fn target_selector(&self) -> Option<TargetSelector> {
        Some(self.selector.to_target_selector())
    }
    common_fault_accessors!();
}
