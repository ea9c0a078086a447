//! `NetworkChaos`: netem delay / loss / duplicate / corrupt, bandwidth, partition.

use serde::{Deserialize, Serialize};

use super::common::{
    check_duration, check_mode_value, check_percent_str, check_pod_common, check_range, check_rate,
    common_fault_accessors,
};
use super::selector::PodSelectorSpec;
use crate::error::{join_path, ValidationErrors};
use crate::fault::FaultSpec;
use crate::selector::{SelectorMode, TargetSelector};
use crate::validate::Validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkChaosAction {
    Netem,
    Delay,
    Loss,
    Duplicate,
    Corrupt,
    Partition,
    Bandwidth,
}

impl NetworkChaosAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Netem => "netem",
            Self::Delay => "delay",
            Self::Loss => "loss",
            Self::Duplicate => "duplicate",
            Self::Corrupt => "corrupt",
            Self::Partition => "partition",
            Self::Bandwidth => "bandwidth",
        }
    }
}

/// Which traffic is affected, relative to the selected pods and `target`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    #[default]
    To,
    From,
    Both,
}

/// `spec` of a `NetworkChaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkChaosSpec {
    pub action: NetworkChaosAction,
    pub mode: SelectorMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub selector: PodSelectorSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Applies to netem actions and partition. Default `to`.
    #[serde(default)]
    pub direction: Direction,
    /// The other side of the traffic (pods), for partition and directional netem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<NetworkTarget>,
    /// Targets outside the cluster: IPs or host names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_targets: Vec<String>,
    /// The network device to affect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The device to affect on the target side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<DelaySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<LossSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<DuplicateSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<CorruptSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<BandwidthSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateSpec>,
    /// Chaos Mesh's remote cluster; chaoshub treats it as an alias of `environment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_cluster: Option<String>,
    /// chaoshub: the registered environment that runs this experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// `spec.target`: the pods on the other side of the affected traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkTarget {
    pub mode: SelectorMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub selector: PodSelectorSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DelaySpec {
    /// Added latency, e.g. `90ms`.
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h)$"))]
    pub latency: String,
    /// Correlation with the previous packet, percent as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h)$"))]
    pub jitter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<ReorderSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReorderSpec {
    /// Percentage of packets sent immediately (out of order), as a string.
    pub reorder: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
    pub gap: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LossSpec {
    /// Percentage of packets dropped, as a string (`"25"`).
    pub loss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DuplicateSpec {
    /// Percentage of packets duplicated, as a string.
    pub duplicate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorruptSpec {
    /// Percentage of packets corrupted, as a string.
    pub corrupt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
}

/// Token bucket filter settings (tc tbf).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BandwidthSpec {
    /// The speed knob: `100kbps`, `1mbit`…
    pub rate: String,
    /// Bytes that can be queued waiting for tokens.
    #[schemars(range(min = 1))]
    pub limit: u32,
    /// Maximum bytes that tokens can be available for instantaneously.
    #[schemars(range(min = 1))]
    pub buffer: u32,
    /// Maximum depletion rate of the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peakrate: Option<u64>,
    /// Size of the peakrate bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minburst: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateSpec {
    pub rate: String,
}

impl Validate for NetworkChaosSpec {
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
        let action = self.action.as_str();
        let need = |present: bool, field: &str, errors: &mut ValidationErrors| {
            if !present {
                errors.push(
                    join_path(path, field),
                    format!("is required when action is {action}"),
                );
            }
        };
        match self.action {
            NetworkChaosAction::Delay => need(self.delay.is_some(), "delay", errors),
            NetworkChaosAction::Loss => need(self.loss.is_some(), "loss", errors),
            NetworkChaosAction::Duplicate => need(self.duplicate.is_some(), "duplicate", errors),
            NetworkChaosAction::Corrupt => need(self.corrupt.is_some(), "corrupt", errors),
            NetworkChaosAction::Bandwidth => need(self.bandwidth.is_some(), "bandwidth", errors),
            NetworkChaosAction::Netem => {
                let any = self.delay.is_some()
                    || self.loss.is_some()
                    || self.duplicate.is_some()
                    || self.corrupt.is_some()
                    || self.rate.is_some();
                if !any {
                    errors.push(
                        path.to_string(),
                        "action netem needs at least one of delay, loss, duplicate, corrupt, rate",
                    );
                }
            }
            NetworkChaosAction::Partition => {}
        }
        if let Some(delay) = &self.delay {
            let p = join_path(path, "delay");
            check_duration(Some(&delay.latency), &p, "latency", errors);
            check_duration(delay.jitter.as_deref(), &p, "jitter", errors);
            check_percent_str(delay.correlation.as_deref(), &p, "correlation", errors);
            if let Some(reorder) = &delay.reorder {
                let r = join_path(&p, "reorder");
                check_percent_str(Some(&reorder.reorder), &r, "reorder", errors);
                check_percent_str(reorder.correlation.as_deref(), &r, "correlation", errors);
                check_range(Some(reorder.gap), 0, i64::from(i32::MAX), &r, "gap", errors);
            }
        }
        if let Some(loss) = &self.loss {
            let p = join_path(path, "loss");
            check_percent_str(Some(&loss.loss), &p, "loss", errors);
            check_percent_str(loss.correlation.as_deref(), &p, "correlation", errors);
        }
        if let Some(dup) = &self.duplicate {
            let p = join_path(path, "duplicate");
            check_percent_str(Some(&dup.duplicate), &p, "duplicate", errors);
            check_percent_str(dup.correlation.as_deref(), &p, "correlation", errors);
        }
        if let Some(corrupt) = &self.corrupt {
            let p = join_path(path, "corrupt");
            check_percent_str(Some(&corrupt.corrupt), &p, "corrupt", errors);
            check_percent_str(corrupt.correlation.as_deref(), &p, "correlation", errors);
        }
        if let Some(bw) = &self.bandwidth {
            let p = join_path(path, "bandwidth");
            check_rate(&bw.rate, &p, "rate", errors);
            check_range(
                Some(i64::from(bw.limit)),
                1,
                i64::from(i32::MAX),
                &p,
                "limit",
                errors,
            );
            check_range(
                Some(i64::from(bw.buffer)),
                1,
                i64::from(i32::MAX),
                &p,
                "buffer",
                errors,
            );
        }
        if let Some(rate) = &self.rate {
            check_rate(&rate.rate, &join_path(path, "rate"), "rate", errors);
        }
        if let Some(target) = &self.target {
            let p = join_path(path, "target");
            check_mode_value(target.mode, target.value.as_deref(), &p, errors);
            target.selector.validate(&join_path(&p, "selector"), errors);
        }
        // Chaos Mesh's webhook: traffic *from* a target needs that target to be named.
        if self.target.is_none() && matches!(self.direction, Direction::From | Direction::Both) {
            errors.push(
                join_path(path, "direction"),
                "from and both need spec.target (the pods on the other side of the traffic)",
            );
        }
        for (i, t) in self.external_targets.iter().enumerate() {
            if t.trim().is_empty() {
                errors.push(
                    format!("{}[{i}]", join_path(path, "externalTargets")),
                    "must not be empty",
                );
            }
        }
    }
}

impl FaultSpec for NetworkChaosSpec {
    fn actions(&self) -> Vec<String> {
        vec![self.action.as_str().to_string()]
    }
    fn target_selector(&self) -> Option<TargetSelector> {
        Some(self.selector.to_target_selector())
    }
    common_fault_accessors!();
}
