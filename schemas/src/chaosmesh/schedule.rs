//! `Schedule`: runs an embedded chaos (or workflow) on a cron schedule.

use serde::{Deserialize, Serialize};

use super::*;
use crate::duration::parse_duration;
use crate::error::{join_path, ValidationErrors};
use crate::fault::FaultSpec;
use crate::validate::Validate;

/// `spec.type` of a `Schedule`: the kind of object it creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ScheduleType {
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
    Workflow,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum ConcurrencyPolicy {
    #[default]
    Forbid,
    Allow,
}

/// `spec` of a `Schedule`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Cron expression (`*/5 * * * *`) or descriptor (`@hourly`, `@every 5s`).
    pub schedule: String,
    /// The kind created on each tick; its embedded spec field must be set.
    #[serde(rename = "type")]
    pub schedule_type: ScheduleType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub history_limit: Option<i64>,
    /// Whether a new run may start while the previous one is still running. Default `Forbid`.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_deadline_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<Box<WorkflowSpec>>,
    /// chaoshub: the registered environment the scheduled chaos runs in, unless the embedded
    /// chaos names its own (`environment` / `remoteCluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
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

impl ScheduleSpec {
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

    /// The kind name of `spec.type`.
    pub fn type_name(&self) -> String {
        serde_json::to_value(self.schedule_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// Checks that exactly the embedded spec named by `kind` is set, and validates it.
pub(crate) fn check_embedded(
    embedded: &[(&'static str, &'static str, Option<&dyn Validate>)],
    kind: &str,
    type_field: &str,
    path: &str,
    errors: &mut ValidationErrors,
) {
    for (field, embedded_kind, spec) in embedded {
        let field_path = join_path(path, field);
        match spec {
            Some(spec) if *embedded_kind == kind => spec.validate(&field_path, errors),
            Some(_) => errors.push(
                field_path,
                format!("is not used when {type_field} is {kind}; remove it or set {type_field}: {embedded_kind}"),
            ),
            None if *embedded_kind == kind => {
                errors.push(field_path, format!("is required when {type_field} is {kind}"))
            }
            None => {}
        }
    }
}

/// Checks a cron expression as Chaos Mesh's scheduler (robfig/cron) reads it.
pub(crate) fn check_cron(text: &str, path: &str, errors: &mut ValidationErrors) {
    let text = text.trim();
    let result: Result<(), String> = if let Some(every) = text.strip_prefix("@every ") {
        parse_duration(every).map(|_| ())
    } else if text.starts_with('@') {
        match text {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight"
            | "@hourly" => Ok(()),
            _ => Err(format!(
                "unknown descriptor {text:?} (use @yearly, @monthly, @weekly, @daily, @hourly or @every <duration>)"
            )),
        }
    } else {
        let body = match text.split_once(' ') {
            Some((tz, rest)) if tz.starts_with("TZ=") || tz.starts_with("CRON_TZ=") => rest,
            _ => text,
        };
        let fields: Vec<&str> = body.split_whitespace().collect();
        let chars_ok = fields.iter().all(|f| {
            f.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '/' | ',' | '-' | '?'))
        });
        // Six fields carry a leading seconds field (the hub's scheduler reads both forms).
        if !(fields.len() == 5 || fields.len() == 6) || !chars_ok {
            Err(format!(
                "must be a cron expression with 5 fields (minute hour day month weekday) or 6 with leading seconds, e.g. \"*/5 * * * *\", or @every <duration>; got {text:?}"
            ))
        } else {
            Ok(())
        }
    };
    if let Err(e) = result {
        errors.push(path.to_string(), e);
    }
}

impl Validate for ScheduleSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        check_cron(&self.schedule, &join_path(path, "schedule"), errors);
        super::common::check_environment(self.environment.as_deref(), path, errors);
        if let Some(limit) = self.history_limit {
            if limit < 1 {
                errors.push(join_path(path, "historyLimit"), "must be at least 1");
            }
        }
        if let Some(secs) = self.starting_deadline_seconds {
            if secs < 0 {
                errors.push(
                    join_path(path, "startingDeadlineSeconds"),
                    "must be 0 or more",
                );
            }
        }
        let kind = self.type_name();
        check_embedded(&self.embedded(), &kind, "type", path, errors);
        let workflow_path = join_path(path, "workflow");
        match (&self.workflow, self.schedule_type) {
            (Some(workflow), ScheduleType::Workflow) => workflow.validate(&workflow_path, errors),
            (None, ScheduleType::Workflow) => {
                errors.push(workflow_path, "is required when type is Workflow")
            }
            (Some(_), _) => errors.push(
                workflow_path,
                format!("is not used when type is {kind}; remove it or set type: Workflow"),
            ),
            (None, _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_expressions() {
        let check = |text| {
            let mut errors = ValidationErrors::new();
            check_cron(text, "spec.schedule", &mut errors);
            errors.is_empty()
        };
        assert!(check("@every 5s"));
        assert!(check("@hourly"));
        assert!(check("*/5 * * * *"));
        assert!(check("CRON_TZ=UTC 0 3 * * MON-FRI"));
        assert!(!check("@every soon"));
        assert!(!check("@sometimes"));
        assert!(!check("* * *"));
    }
}
