//! `IOChaos`: file system latency, faults, attribute overrides and data mistakes.

use serde::{Deserialize, Serialize};

use super::common::{
    check_duration, check_pod_common, check_range, common_fault_accessors, require,
};
use super::selector::PodSelectorSpec;
use crate::error::{join_path, ValidationErrors};
use crate::fault::FaultSpec;
use crate::selector::{SelectorMode, TargetSelector};
use crate::validate::Validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum IOChaosAction {
    #[serde(rename = "latency")]
    Latency,
    #[serde(rename = "fault")]
    Fault,
    #[serde(rename = "attrOverride")]
    AttrOverride,
    #[serde(rename = "mistake")]
    Mistake,
}

impl IOChaosAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Latency => "latency",
            Self::Fault => "fault",
            Self::AttrOverride => "attrOverride",
            Self::Mistake => "mistake",
        }
    }
}

fn default_percent() -> i64 {
    100
}

/// `spec` of an `IOChaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IOChaosSpec {
    pub action: IOChaosAction,
    pub mode: SelectorMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub selector: PodSelectorSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_names: Vec<String>,
    /// Mount path of the volume to inject into.
    pub volume_path: String,
    /// Files affected (glob); empty means every file of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// I/O methods affected (`read`, `write`, `open`…); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Percentage of matching operations that are affected.
    #[serde(default = "default_percent")]
    pub percent: i64,
    /// Latency added by action latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    /// errno returned by action fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    /// Attributes returned by action attrOverride.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attr: Option<AttrOverrideSpec>,
    /// Wrong data returned by action mistake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mistake: Option<MistakeSpec>,
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
pub struct Timespec {
    pub sec: i64,
    pub nsec: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttrOverrideSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ino: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atime: Option<Timespec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<Timespec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctime: Option<Timespec>,
    /// File type (`regular`, `directory`, `symlink`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perm: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nlink: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MistakeFilling {
    Zero,
    Random,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MistakeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filling: Option<MistakeFilling>,
    /// There will be 1 to maxOccurrences segments of wrong data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_occurrences: Option<i64>,
    /// Maximum length in bytes of each wrong segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_length: Option<i64>,
}

impl Validate for IOChaosSpec {
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
        if self.volume_path.trim().is_empty() {
            errors.push(join_path(path, "volumePath"), "must not be empty");
        }
        check_range(Some(self.percent), 0, 100, path, "percent", errors);
        check_duration(self.delay.as_deref(), path, "delay", errors);
        match self.action {
            IOChaosAction::Latency => {
                require(&self.delay, path, "delay", "when action is latency", errors)
            }
            IOChaosAction::Fault => match self.errno {
                None => errors.push(join_path(path, "errno"), "is required when action is fault"),
                Some(e) if e <= 0 => errors.push(
                    join_path(path, "errno"),
                    format!("must be a positive errno (e.g. 5 for EIO); got {e}"),
                ),
                Some(_) => {}
            },
            IOChaosAction::AttrOverride => require(
                &self.attr,
                path,
                "attr",
                "when action is attrOverride",
                errors,
            ),
            IOChaosAction::Mistake => {
                require(
                    &self.mistake,
                    path,
                    "mistake",
                    "when action is mistake",
                    errors,
                );
                if let Some(m) = &self.mistake {
                    let p = join_path(path, "mistake");
                    require(&m.filling, &p, "filling", "(zero or random)", errors);
                    check_range(m.max_occurrences, 1, i64::MAX, &p, "maxOccurrences", errors);
                    check_range(m.max_length, 1, i64::MAX, &p, "maxLength", errors);
                }
            }
        }
    }
}

impl FaultSpec for IOChaosSpec {
    fn actions(&self) -> Vec<String> {
        vec![self.action.as_str().to_string()]
    }
    fn target_selector(&self) -> Option<TargetSelector> {
        Some(self.selector.to_target_selector())
    }
    common_fault_accessors!();
}
