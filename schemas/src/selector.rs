//! Target selection types shared by every kind: Chaos Mesh's selector fields mapped onto one
//! adapter-neutral shape, and the selection modes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How many of the matching targets an experiment hits (Chaos Mesh `mode` + `value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum SelectorMode {
    /// One target picked at random.
    #[serde(rename = "one")]
    One,
    /// Every matching target.
    #[serde(rename = "all")]
    All,
    /// `value` targets picked at random (`value` is a count).
    #[serde(rename = "fixed")]
    Fixed,
    /// `value` percent of the targets, rounded down, picked at random.
    #[serde(rename = "fixed-percent")]
    FixedPercent,
    /// A random percentage between 0 and `value` of the targets.
    #[serde(rename = "random-max-percent")]
    RandomMaxPercent,
}

impl SelectorMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SelectorMode::One => "one",
            SelectorMode::All => "all",
            SelectorMode::Fixed => "fixed",
            SelectorMode::FixedPercent => "fixed-percent",
            SelectorMode::RandomMaxPercent => "random-max-percent",
        }
    }

    /// Whether the mode needs a `value`.
    pub fn needs_value(self) -> bool {
        matches!(
            self,
            SelectorMode::Fixed | SelectorMode::FixedPercent | SelectorMode::RandomMaxPercent
        )
    }
}

/// A Kubernetes-style set-based requirement (`expressionSelectors`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// The adapter-neutral selector the hub applies to every adapter's inventory. Each Chaos Mesh
/// selector shape (`PodSelectorSpec`, `PhysicalMachineSelectorSpec`, …) converts into this.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetSelector {
    /// Targets whose namespace is one of these (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Explicit names per namespace (Chaos Mesh `pods` / `physicalMachines`); when present,
    /// only these targets are candidates. A target without a namespace matches any key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub names: BTreeMap<String, Vec<String>>,
    /// Every label must be present with this value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub label_selectors: BTreeMap<String, String>,
    /// Every requirement must hold on the labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expression_selectors: Vec<LabelSelectorRequirement>,
    /// Every annotation must be present with this value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotation_selectors: BTreeMap<String, String>,
    /// Field selectors (`metadata.name=x`, `kind=container`…) matched against the target's
    /// own fields: `id`, `name`, `kind`, `namespace`, `metadata.name`, `metadata.namespace`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_selectors: BTreeMap<String, String>,
    /// Node names (Chaos Mesh `nodes`); matched against the `node` label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Node labels (Chaos Mesh `nodeSelectors`); matched against `node.<key>` labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selectors: BTreeMap<String, String>,
    /// Pod phases (Chaos Mesh `podPhaseSelectors`); matched against the `phase` label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_phase_selectors: Vec<String>,
}
