//! `Workflow`: serial, parallel, scheduled and conditional compositions of chaos.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schedule::check_embedded;
use super::*;
use crate::duration::parse_duration;
use crate::error::{join_path, ValidationErrors};
use crate::fault::FaultSpec;
use crate::validate::Validate;

/// `templateType` of a workflow template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum WorkflowTemplateType {
    Serial,
    Parallel,
    Suspend,
    Task,
    Schedule,
    StatusCheck,
    AWSChaos,
    AzureChaos,
    BlockChaos,
    DNSChaos,
    GCPChaos,
    HTTPChaos,
    IOChaos,
    JVMChaos,
    KernelChaos,
    NetworkChaos,
    PhysicalMachineChaos,
    PodChaos,
    StressChaos,
    TimeChaos,
}

/// `spec` of a `Workflow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Name of the template the workflow starts with.
    pub entry: String,
    pub templates: Vec<WorkflowTemplate>,
    /// chaoshub: the registered environment the workflow's chaos runs in, unless a template's
    /// chaos names its own (`environment` / `remoteCluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// One node template of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowTemplate {
    pub name: String,
    pub template_type: WorkflowTemplateType,
    /// How long the node may run (`240s`); required for Suspend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// Templates run by a Serial or Parallel node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    /// Branches chosen after a Task node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditional_branches: Vec<ConditionalBranch>,
    /// A custom task (a container) for Task nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Box<ScheduleSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_check: Option<Box<StatusCheckSpec>>,
    /// Abort the workflow when the status check fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_with_status_check: Option<bool>,
    #[serde(rename = "awsChaos", default, skip_serializing_if = "Option::is_none")]
    pub aws_chaos: Option<Box<AWSChaosSpec>>,
    #[serde(
        rename = "azureChaos",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub azure_chaos: Option<Box<AzureChaosSpec>>,
    #[serde(
        rename = "blockChaos",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub block_chaos: Option<Box<BlockChaosSpec>>,
    #[serde(rename = "dnsChaos", default, skip_serializing_if = "Option::is_none")]
    pub dns_chaos: Option<Box<DNSChaosSpec>>,
    #[serde(rename = "gcpChaos", default, skip_serializing_if = "Option::is_none")]
    pub gcp_chaos: Option<Box<GCPChaosSpec>>,
    #[serde(rename = "httpChaos", default, skip_serializing_if = "Option::is_none")]
    pub http_chaos: Option<Box<HTTPChaosSpec>>,
    #[serde(rename = "ioChaos", default, skip_serializing_if = "Option::is_none")]
    pub io_chaos: Option<Box<IOChaosSpec>>,
    #[serde(rename = "jvmChaos", default, skip_serializing_if = "Option::is_none")]
    pub jvm_chaos: Option<Box<JVMChaosSpec>>,
    #[serde(
        rename = "kernelChaos",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kernel_chaos: Option<Box<KernelChaosSpec>>,
    #[serde(
        rename = "networkChaos",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network_chaos: Option<Box<NetworkChaosSpec>>,
    #[serde(
        rename = "physicalmachineChaos",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub physicalmachine_chaos: Option<Box<PhysicalMachineChaosSpec>>,
    #[serde(rename = "podChaos", default, skip_serializing_if = "Option::is_none")]
    pub pod_chaos: Option<Box<PodChaosSpec>>,
    #[serde(
        rename = "stressChaos",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stress_chaos: Option<Box<StressChaosSpec>>,
    #[serde(rename = "timeChaos", default, skip_serializing_if = "Option::is_none")]
    pub time_chaos: Option<Box<TimeChaosSpec>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConditionalBranch {
    /// The template spawned when `expression` is true.
    pub target: String,
    /// Boolean expression over the task's result; empty means always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// A custom task: a Kubernetes container (kept free-form) plus volumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Task {
    /// A Kubernetes `Container`; must at least have a `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<BTreeMap<String, Value>>")]
    pub container: Option<Value>,
    /// Kubernetes `Volume`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<BTreeMap<String, Value>>")]
    pub volumes: Vec<Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl WorkflowTemplate {
    /// The embedded chaos specs: (field name, kind name, spec if set).
    pub fn embedded(&self) -> Vec<(&'static str, &'static str, Option<&dyn Validate>)> {
        vec![
            (
                "awsChaos",
                "AWSChaos",
                self.aws_chaos.as_deref().map(|s| s as &dyn Validate),
            ),
            (
                "azureChaos",
                "AzureChaos",
                self.azure_chaos.as_deref().map(|s| s as &dyn Validate),
            ),
            (
                "blockChaos",
                "BlockChaos",
                self.block_chaos.as_deref().map(|s| s as &dyn Validate),
            ),
            (
                "dnsChaos",
                "DNSChaos",
                self.dns_chaos.as_deref().map(|s| s as &dyn Validate),
            ),
            (
                "gcpChaos",
                "GCPChaos",
                self.gcp_chaos.as_deref().map(|s| s as &dyn Validate),
            ),
            (
                "httpChaos",
                "HTTPChaos",
                self.http_chaos.as_deref().map(|s| s as &dyn Validate),
            ),
            (
                "ioChaos",
                "IOChaos",
                self.io_chaos.as_deref().map(|s| s as &dyn Validate),
            ),
            (
                "jvmChaos",
                "JVMChaos",
                self.jvm_chaos.as_deref().map(|s| s as &dyn Validate),
            ),
            (
                "kernelChaos",
                "KernelChaos",
                self.kernel_chaos.as_deref().map(|s| s as &dyn Validate),
            ),
            (
                "networkChaos",
                "NetworkChaos",
                self.network_chaos.as_deref().map(|s| s as &dyn Validate),
            ),
            (
                "physicalmachineChaos",
                "PhysicalMachineChaos",
                self.physicalmachine_chaos
                    .as_deref()
                    .map(|s| s as &dyn Validate),
            ),
            (
                "podChaos",
                "PodChaos",
                self.pod_chaos.as_deref().map(|s| s as &dyn Validate),
            ),
            (
                "stressChaos",
                "StressChaos",
                self.stress_chaos.as_deref().map(|s| s as &dyn Validate),
            ),
            (
                "timeChaos",
                "TimeChaos",
                self.time_chaos.as_deref().map(|s| s as &dyn Validate),
            ),
        ]
    }

    /// The embedded fault spec of the given kind name, if set.
    pub fn embedded_fault(&self, kind: &str) -> Option<&dyn FaultSpec> {
        match kind {
            "AWSChaos" => self.aws_chaos.as_deref().map(|s| s as &dyn FaultSpec),
            "AzureChaos" => self.azure_chaos.as_deref().map(|s| s as &dyn FaultSpec),
            "BlockChaos" => self.block_chaos.as_deref().map(|s| s as &dyn FaultSpec),
            "DNSChaos" => self.dns_chaos.as_deref().map(|s| s as &dyn FaultSpec),
            "GCPChaos" => self.gcp_chaos.as_deref().map(|s| s as &dyn FaultSpec),
            "HTTPChaos" => self.http_chaos.as_deref().map(|s| s as &dyn FaultSpec),
            "IOChaos" => self.io_chaos.as_deref().map(|s| s as &dyn FaultSpec),
            "JVMChaos" => self.jvm_chaos.as_deref().map(|s| s as &dyn FaultSpec),
            "KernelChaos" => self.kernel_chaos.as_deref().map(|s| s as &dyn FaultSpec),
            "NetworkChaos" => self.network_chaos.as_deref().map(|s| s as &dyn FaultSpec),
            "PhysicalMachineChaos" => self
                .physicalmachine_chaos
                .as_deref()
                .map(|s| s as &dyn FaultSpec),
            "PodChaos" => self.pod_chaos.as_deref().map(|s| s as &dyn FaultSpec),
            "StressChaos" => self.stress_chaos.as_deref().map(|s| s as &dyn FaultSpec),
            "TimeChaos" => self.time_chaos.as_deref().map(|s| s as &dyn FaultSpec),
            _ => None,
        }
    }

    /// The kind name of `templateType`.
    pub fn type_name(&self) -> String {
        serde_json::to_value(self.template_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

impl Validate for WorkflowSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        super::common::check_environment(self.environment.as_deref(), path, errors);
        let names: BTreeSet<&str> = self.templates.iter().map(|t| t.name.as_str()).collect();
        if !names.contains(self.entry.as_str()) {
            errors.push(
                join_path(path, "entry"),
                format!(
                    "names no template: {:?} (templates: {})",
                    self.entry,
                    names.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        if self.templates.is_empty() {
            errors.push(
                join_path(path, "templates"),
                "must list at least one template",
            );
        }
        let mut seen = BTreeSet::new();
        for (i, template) in self.templates.iter().enumerate() {
            let p = format!("{}[{i}]", join_path(path, "templates"));
            if !seen.insert(template.name.as_str()) {
                errors.push(
                    join_path(&p, "name"),
                    format!("duplicate template name {:?}", template.name),
                );
            }
            template.validate(&p, errors);
            for (c, child) in template.children.iter().enumerate() {
                if !names.contains(child.as_str()) {
                    errors.push(
                        format!("{}[{c}]", join_path(&p, "children")),
                        format!("names no template: {child:?}"),
                    );
                }
            }
            for (b, branch) in template.conditional_branches.iter().enumerate() {
                if !names.contains(branch.target.as_str()) {
                    errors.push(
                        join_path(
                            &format!("{}[{b}]", join_path(&p, "conditionalBranches")),
                            "target",
                        ),
                        format!("names no template: {:?}", branch.target),
                    );
                }
            }
        }
    }
}

impl Validate for WorkflowTemplate {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        if self.name.trim().is_empty() {
            errors.push(join_path(path, "name"), "must not be empty");
        }
        if let Some(deadline) = &self.deadline {
            if let Err(e) = parse_duration(deadline) {
                errors.push(join_path(path, "deadline"), e);
            }
        }
        let kind = self.type_name();
        // Only a chaos template uses an embedded chaos spec; check_embedded reports any other.
        check_embedded(&self.embedded(), &kind, "templateType", path, errors);
        let need = |present: bool, field: &str, errors: &mut ValidationErrors| {
            if !present {
                errors.push(
                    join_path(path, field),
                    format!("is required when templateType is {kind}"),
                );
            }
        };
        let unused = |present: bool, field: &str, errors: &mut ValidationErrors| {
            if present {
                errors.push(
                    join_path(path, field),
                    format!("is not used when templateType is {kind}"),
                );
            }
        };
        match self.template_type {
            WorkflowTemplateType::Serial | WorkflowTemplateType::Parallel => {
                need(!self.children.is_empty(), "children", errors)
            }
            WorkflowTemplateType::Suspend => need(self.deadline.is_some(), "deadline", errors),
            WorkflowTemplateType::Task => need(self.task.is_some(), "task", errors),
            WorkflowTemplateType::Schedule => need(self.schedule.is_some(), "schedule", errors),
            WorkflowTemplateType::StatusCheck => {
                need(self.status_check.is_some(), "statusCheck", errors)
            }
            _ => {}
        }
        if !matches!(
            self.template_type,
            WorkflowTemplateType::Serial | WorkflowTemplateType::Parallel
        ) {
            unused(!self.children.is_empty(), "children", errors);
        }
        if self.template_type != WorkflowTemplateType::Task {
            unused(self.task.is_some(), "task", errors);
            unused(
                !self.conditional_branches.is_empty(),
                "conditionalBranches",
                errors,
            );
        }
        if self.template_type != WorkflowTemplateType::Schedule {
            unused(self.schedule.is_some(), "schedule", errors);
        }
        if self.template_type != WorkflowTemplateType::StatusCheck {
            unused(self.status_check.is_some(), "statusCheck", errors);
        }
        if let Some(schedule) = &self.schedule {
            let p = join_path(path, "schedule");
            if schedule.workflow.is_some() {
                errors.push(
                    join_path(&p, "workflow"),
                    "a workflow's schedule cannot run a workflow",
                );
            }
            schedule.validate(&p, errors);
        }
        if let Some(check) = &self.status_check {
            check.validate(&join_path(path, "statusCheck"), errors);
        }
        if let Some(task) = &self.task {
            let has_name = task
                .container
                .as_ref()
                .and_then(|c| c.get("name"))
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !has_name {
                errors.push(
                    join_path(&join_path(path, "task"), "container"),
                    "must be a container with a name",
                );
            }
        }
    }
}
