//! The `ProxyChaos` kind (`chaoshub.dev/v1alpha1`): Toxiproxy toxics.
//!
//! The action names a Toxiproxy toxic type and a block of the same name carries its attributes,
//! named and measured as Toxiproxy does (milliseconds, KB/s, bytes, microseconds for `slicer`).

use serde::{Deserialize, Serialize};

use crate::chaosmesh::common::check_pod_common;
use crate::chaosmesh::selector::PodSelectorSpec;
use crate::error::{join_path, ValidationErrors};
use crate::fault::FaultSpec;
use crate::selector::{SelectorMode, TargetSelector};
use crate::validate::Validate;

/// The toxic type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProxyChaosAction {
    Latency,
    Down,
    Bandwidth,
    SlowClose,
    Timeout,
    ResetPeer,
    Slicer,
    LimitData,
}

impl ProxyChaosAction {
    pub const ALL: &'static [ProxyChaosAction] = &[
        Self::Latency,
        Self::Down,
        Self::Bandwidth,
        Self::SlowClose,
        Self::Timeout,
        Self::ResetPeer,
        Self::Slicer,
        Self::LimitData,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Latency => "latency",
            Self::Down => "down",
            Self::Bandwidth => "bandwidth",
            Self::SlowClose => "slow_close",
            Self::Timeout => "timeout",
            Self::ResetPeer => "reset_peer",
            Self::Slicer => "slicer",
            Self::LimitData => "limit_data",
        }
    }
}

/// Which direction of the proxied connection the toxic applies to.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ToxicStream {
    Upstream,
    #[default]
    Downstream,
    /// Two toxics, one per direction.
    Both,
}

fn default_toxicity() -> f64 {
    1.0
}

/// `spec` of a `ProxyChaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyChaosSpec {
    pub action: ProxyChaosAction,
    pub mode: SelectorMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Which proxies (targets of kind `proxy`) to hit; proxy names are target names.
    pub selector: PodSelectorSpec,
    /// Default `downstream`.
    #[serde(default)]
    pub stream: ToxicStream,
    /// Probability, 0 to 1, that the toxic applies to a connection. Default 1.0.
    #[serde(default = "default_toxicity")]
    #[schemars(range(min = 0, max = 1))]
    pub toxicity: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyToxic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<BandwidthToxic>,
    #[serde(
        rename = "slow_close",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub slow_close: Option<SlowCloseToxic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TimeoutToxic>,
    #[serde(
        rename = "reset_peer",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reset_peer: Option<ResetPeerToxic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slicer: Option<SlicerToxic>,
    #[serde(
        rename = "limit_data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub limit_data: Option<LimitDataToxic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// The registered environment (a Toxiproxy server) that runs this experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// `latency`: delay data by `latency` ± `jitter` milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencyToxic {
    /// Milliseconds.
    pub latency: i64,
    /// Milliseconds. Default 0.
    #[serde(default)]
    pub jitter: i64,
}

/// `bandwidth`: limit to `rate` KB/s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BandwidthToxic {
    /// KB/s.
    pub rate: i64,
}

/// `slow_close`: delay the TCP close by `delay` milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlowCloseToxic {
    /// Milliseconds.
    pub delay: i64,
}

/// `timeout`: stop all data and close after `timeout` milliseconds (0: never close).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutToxic {
    /// Milliseconds.
    pub timeout: i64,
}

/// `reset_peer`: reset the connection (TCP RST) after `timeout` milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPeerToxic {
    /// Milliseconds.
    pub timeout: i64,
}

/// `slicer`: slice data into small bits, optionally delaying between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlicerToxic {
    /// Average size of a slice, bytes.
    pub average_size: i64,
    /// Variation of the slice size, bytes (less than `average_size`). Default 0.
    #[serde(default)]
    pub size_variation: i64,
    /// Delay between slices, microseconds. Default 0.
    #[serde(default)]
    pub delay: i64,
}

/// `limit_data`: close the connection after `bytes` bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitDataToxic {
    pub bytes: i64,
}

impl ProxyChaosSpec {
    /// Every toxic block, by its field name, and whether it is set.
    pub fn blocks(&self) -> [(&'static str, bool); 7] {
        [
            ("latency", self.latency.is_some()),
            ("bandwidth", self.bandwidth.is_some()),
            ("slow_close", self.slow_close.is_some()),
            ("timeout", self.timeout.is_some()),
            ("reset_peer", self.reset_peer.is_some()),
            ("slicer", self.slicer.is_some()),
            ("limit_data", self.limit_data.is_some()),
        ]
    }

    /// The toxic's attributes as Toxiproxy's API takes them (`attributes` of a toxic).
    pub fn toxic_attributes(&self) -> serde_json::Value {
        let block = match self.action {
            ProxyChaosAction::Latency => serde_json::to_value(&self.latency),
            ProxyChaosAction::Bandwidth => serde_json::to_value(&self.bandwidth),
            ProxyChaosAction::SlowClose => serde_json::to_value(&self.slow_close),
            ProxyChaosAction::Timeout => serde_json::to_value(&self.timeout),
            ProxyChaosAction::ResetPeer => serde_json::to_value(&self.reset_peer),
            ProxyChaosAction::Slicer => serde_json::to_value(&self.slicer),
            ProxyChaosAction::LimitData => serde_json::to_value(&self.limit_data),
            ProxyChaosAction::Down => Ok(serde_json::Value::Null),
        };
        match block {
            Ok(serde_json::Value::Null) | Err(_) => serde_json::Value::Object(Default::default()),
            Ok(v) => v,
        }
    }
}

fn non_negative(value: i64, path: &str, field: &str, unit: &str, errors: &mut ValidationErrors) {
    if value < 0 {
        errors.push(
            join_path(path, field),
            format!("must be 0 or more {unit}; got {value}"),
        );
    }
}

impl Validate for ProxyChaosSpec {
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
        if !(0.0..=1.0).contains(&self.toxicity) || self.toxicity.is_nan() {
            errors.push(
                join_path(path, "toxicity"),
                format!("must be a probability from 0 to 1; got {}", self.toxicity),
            );
        }
        let action = self.action.as_str();
        for (name, set) in self.blocks() {
            if name == action && !set {
                errors.push(
                    join_path(path, name),
                    format!("is required when action is {action} (the toxic's attributes)"),
                );
            } else if name != action && set {
                errors.push(
                    join_path(path, name),
                    format!("is only used when action is {name}; remove it (action is {action})"),
                );
            }
        }
        if let Some(t) = &self.latency {
            let p = join_path(path, "latency");
            non_negative(t.latency, &p, "latency", "milliseconds", errors);
            non_negative(t.jitter, &p, "jitter", "milliseconds", errors);
        }
        if let Some(t) = &self.bandwidth {
            non_negative(
                t.rate,
                &join_path(path, "bandwidth"),
                "rate",
                "KB/s",
                errors,
            );
        }
        if let Some(t) = &self.slow_close {
            non_negative(
                t.delay,
                &join_path(path, "slow_close"),
                "delay",
                "milliseconds",
                errors,
            );
        }
        if let Some(t) = &self.timeout {
            non_negative(
                t.timeout,
                &join_path(path, "timeout"),
                "timeout",
                "milliseconds",
                errors,
            );
        }
        if let Some(t) = &self.reset_peer {
            let p = join_path(path, "reset_peer");
            non_negative(t.timeout, &p, "timeout", "milliseconds", errors);
        }
        if let Some(t) = &self.slicer {
            let p = join_path(path, "slicer");
            if t.average_size < 1 {
                errors.push(
                    join_path(&p, "average_size"),
                    format!("must be at least 1 byte; got {}", t.average_size),
                );
            }
            non_negative(t.size_variation, &p, "size_variation", "bytes", errors);
            non_negative(t.delay, &p, "delay", "microseconds", errors);
            if t.size_variation >= t.average_size && t.average_size >= 1 {
                errors.push(
                    join_path(&p, "size_variation"),
                    "must be smaller than average_size",
                );
            }
        }
        if let Some(t) = &self.limit_data {
            non_negative(
                t.bytes,
                &join_path(path, "limit_data"),
                "bytes",
                "bytes",
                errors,
            );
        }
    }
}

impl FaultSpec for ProxyChaosSpec {
    fn actions(&self) -> Vec<String> {
        vec![self.action.as_str().to_string()]
    }
    fn target_selector(&self) -> Option<TargetSelector> {
        Some(self.selector.to_target_selector())
    }
    fn mode(&self) -> Option<SelectorMode> {
        Some(self.mode)
    }
    fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }
    fn duration(&self) -> Option<&str> {
        self.duration.as_deref()
    }
    fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }
    fn set_environment(&mut self, env: &str) {
        self.environment = Some(env.to_string());
    }
}
