//! Chaos Mesh selectors: `PodSelectorSpec` (pods, containers) and `PhysicalMachineSelectorSpec`,
//! their validation, and their conversion to the adapter-neutral `TargetSelector`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{join_path, ValidationErrors};
use crate::selector::{LabelSelectorRequirement, TargetSelector};
use crate::validate::Validate;

use super::common::index_path;

/// Chaos Mesh `PodSelectorSpec`: which pods (targets) an experiment may hit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSelectorSpec {
    /// Namespaces the objects belong to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Node names the objects must run on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Explicit pods: namespace → pod names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pods: BTreeMap<String, Vec<String>>,
    /// Labels of the nodes the objects must run on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selectors: BTreeMap<String, String>,
    /// Field selectors (`metadata.name=x`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_selectors: BTreeMap<String, String>,
    /// Labels every selected object must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub label_selectors: BTreeMap<String, String>,
    /// Set-based label requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expression_selectors: Vec<LabelSelectorRequirement>,
    /// Annotations every selected object must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotation_selectors: BTreeMap<String, String>,
    /// Pod phases (`Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_phase_selectors: Vec<String>,
}

/// Chaos Mesh `PhysicalMachineSelectorSpec`: which `PhysicalMachine` objects to hit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PhysicalMachineSelectorSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Explicit machines: namespace → `PhysicalMachine` names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub physical_machines: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_selectors: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub label_selectors: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expression_selectors: Vec<LabelSelectorRequirement>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotation_selectors: BTreeMap<String, String>,
}

const POD_PHASES: &[&str] = &["Pending", "Running", "Succeeded", "Failed", "Unknown"];

/// Checks `expressionSelectors`: known operators, `values` present for `In`/`NotIn` and absent
/// for `Exists`/`DoesNotExist`.
pub(crate) fn check_expressions(
    expressions: &[LabelSelectorRequirement],
    path: &str,
    errors: &mut ValidationErrors,
) {
    for (i, req) in expressions.iter().enumerate() {
        let item = index_path(path, "expressionSelectors", i);
        if req.key.trim().is_empty() {
            errors.push(join_path(&item, "key"), "must not be empty");
        }
        match req.operator.as_str() {
            "In" | "NotIn" => {
                if req.values.is_empty() {
                    errors.push(
                        join_path(&item, "values"),
                        format!("must list at least one value for operator {}", req.operator),
                    );
                }
            }
            "Exists" | "DoesNotExist" => {
                if !req.values.is_empty() {
                    errors.push(
                        join_path(&item, "values"),
                        format!("must be empty for operator {}", req.operator),
                    );
                }
            }
            other => errors.push(
                join_path(&item, "operator"),
                format!("must be one of In, NotIn, Exists, DoesNotExist; got {other:?}"),
            ),
        }
    }
}

fn check_names(map: &BTreeMap<String, Vec<String>>, path: &str, errors: &mut ValidationErrors) {
    for (namespace, names) in map {
        let ns_path = join_path(path, namespace);
        if names.is_empty() {
            errors.push(ns_path.clone(), "must list at least one name");
        }
        for (i, name) in names.iter().enumerate() {
            if name.trim().is_empty() {
                errors.push(format!("{ns_path}[{i}]"), "must not be empty");
            }
        }
    }
}

impl Validate for PodSelectorSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        check_expressions(&self.expression_selectors, path, errors);
        check_names(&self.pods, &join_path(path, "pods"), errors);
        for (i, phase) in self.pod_phase_selectors.iter().enumerate() {
            if !POD_PHASES.contains(&phase.as_str()) {
                errors.push(
                    index_path(path, "podPhaseSelectors", i),
                    format!("must be one of {}; got {phase:?}", POD_PHASES.join(", ")),
                );
            }
        }
    }
}

impl Validate for PhysicalMachineSelectorSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        check_expressions(&self.expression_selectors, path, errors);
        check_names(
            &self.physical_machines,
            &join_path(path, "physicalMachines"),
            errors,
        );
    }
}

impl PodSelectorSpec {
    /// The adapter-neutral selector: `pods` become `names`.
    pub fn to_target_selector(&self) -> TargetSelector {
        TargetSelector {
            namespaces: self.namespaces.clone(),
            names: self.pods.clone(),
            label_selectors: self.label_selectors.clone(),
            expression_selectors: self.expression_selectors.clone(),
            annotation_selectors: self.annotation_selectors.clone(),
            field_selectors: self.field_selectors.clone(),
            nodes: self.nodes.clone(),
            node_selectors: self.node_selectors.clone(),
            pod_phase_selectors: self.pod_phase_selectors.clone(),
        }
    }
}

impl PhysicalMachineSelectorSpec {
    /// The adapter-neutral selector: `physicalMachines` become `names`.
    pub fn to_target_selector(&self) -> TargetSelector {
        TargetSelector {
            namespaces: self.namespaces.clone(),
            names: self.physical_machines.clone(),
            label_selectors: self.label_selectors.clone(),
            expression_selectors: self.expression_selectors.clone(),
            annotation_selectors: self.annotation_selectors.clone(),
            field_selectors: self.field_selectors.clone(),
            ..TargetSelector::default()
        }
    }
}

impl From<&PodSelectorSpec> for TargetSelector {
    fn from(s: &PodSelectorSpec) -> Self {
        s.to_target_selector()
    }
}

impl From<&PhysicalMachineSelectorSpec> for TargetSelector {
    fn from(s: &PhysicalMachineSelectorSpec) -> Self {
        s.to_target_selector()
    }
}
