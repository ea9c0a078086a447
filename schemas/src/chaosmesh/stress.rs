//! `StressChaos`: CPU and memory stressors (stress-ng).

use serde::{Deserialize, Serialize};

use super::common::{check_pod_common, check_range, check_size, common_fault_accessors};
use super::selector::PodSelectorSpec;
use crate::error::{join_path, ValidationErrors};
use crate::fault::FaultSpec;
use crate::selector::{SelectorMode, TargetSelector};
use crate::validate::Validate;

/// `spec` of a `StressChaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StressChaosSpec {
    pub mode: SelectorMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub selector: PodSelectorSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stressors: Option<Stressors>,
    /// Raw stress-ng arguments, an alternative to `stressors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stressng_stressors: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_cluster: Option<String>,
    /// chaoshub: the registered environment that runs this experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stressors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CPUStressor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStressor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CPUStressor {
    /// Number of workers.
    #[schemars(range(max = 8192))]
    pub workers: i64,
    /// Percent load per worker (0 is a sleep, 100 full load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub load: Option<i64>,
    /// Extra stress-ng options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

fn default_oom_score_adj() -> i64 {
    0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemoryStressor {
    #[schemars(range(max = 8192))]
    pub workers: i64,
    /// Bytes per worker (`256MB`, `1GB`) or a percentage of total memory (`50%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// `oom_score_adj` of the stress process.
    #[serde(default = "default_oom_score_adj")]
    #[schemars(range(min = -1000, max = 1000))]
    pub oom_score_adj: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Validate for StressChaosSpec {
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
        let has_cpu = self.stressors.as_ref().is_some_and(|s| s.cpu.is_some());
        let has_memory = self.stressors.as_ref().is_some_and(|s| s.memory.is_some());
        let has_ng = self
            .stressng_stressors
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty());
        if !has_cpu && !has_memory && !has_ng {
            errors.push(
                join_path(path, "stressors"),
                "needs at least one stressor: stressors.cpu, stressors.memory or stressngStressors",
            );
        }
        let sp = join_path(path, "stressors");
        if let Some(cpu) = self.stressors.as_ref().and_then(|s| s.cpu.as_ref()) {
            let p = join_path(&sp, "cpu");
            check_range(Some(cpu.workers), 1, 8192, &p, "workers", errors);
            check_range(cpu.load, 0, 100, &p, "load", errors);
        }
        if let Some(mem) = self.stressors.as_ref().and_then(|s| s.memory.as_ref()) {
            let p = join_path(&sp, "memory");
            check_range(Some(mem.workers), 1, 8192, &p, "workers", errors);
            check_range(
                Some(mem.oom_score_adj),
                -1000,
                1000,
                &p,
                "oomScoreAdj",
                errors,
            );
            check_size(mem.size.as_deref(), &p, "size", errors);
        }
    }
}

impl FaultSpec for StressChaosSpec {
    fn actions(&self) -> Vec<String> {
        let mut actions = Vec::new();
        if let Some(s) = &self.stressors {
            if s.cpu.is_some() {
                actions.push("cpu".to_string());
            }
            if s.memory.is_some() {
                actions.push("memory".to_string());
            }
        }
        if self.stressng_stressors.is_some() {
            actions.push("stress-ng".to_string());
        }
        actions
    }
    fn target_selector(&self) -> Option<TargetSelector> {
        Some(self.selector.to_target_selector())
    }
    common_fault_accessors!();
}
