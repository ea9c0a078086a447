//! `JVMChaos`: faults injected into a JVM through Byteman.

use serde::{Deserialize, Serialize};

use super::common::{check_pod_common, check_port, common_fault_accessors, require};
use super::selector::PodSelectorSpec;
use crate::error::{join_path, ValidationErrors};
use crate::fault::FaultSpec;
use crate::selector::{SelectorMode, TargetSelector};
use crate::validate::Validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum JVMChaosAction {
    #[serde(rename = "latency")]
    Latency,
    #[serde(rename = "return")]
    Return,
    #[serde(rename = "exception")]
    Exception,
    #[serde(rename = "stress")]
    Stress,
    #[serde(rename = "gc")]
    Gc,
    #[serde(rename = "ruleData")]
    RuleData,
    #[serde(rename = "mysql")]
    Mysql,
}

impl JVMChaosAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Latency => "latency",
            Self::Return => "return",
            Self::Exception => "exception",
            Self::Stress => "stress",
            Self::Gc => "gc",
            Self::RuleData => "ruleData",
            Self::Mysql => "mysql",
        }
    }
}

/// `spec` of a `JVMChaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JVMChaosSpec {
    pub action: JVMChaosAction,
    pub mode: SelectorMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub selector: PodSelectorSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_names: Vec<String>,
    /// Java class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Method of the Java class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Latency in milliseconds (action latency, mysql).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<i64>,
    /// Value returned (action return).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_value: Option<String>,
    /// Exception thrown (action exception, mysql).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// CPU cores to load (action stress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_count: Option<i64>,
    /// Memory type to fill, `stack` or `heap` (action stress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_type: Option<String>,
    /// Byteman rule text (action ruleData).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_data: Option<String>,
    /// Byteman rule name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port of the agent server (Chaos Mesh default 9277).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// PID of the Java process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// mysql-connector-java major version, `5` or `8` (action mysql).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql_connector_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_cluster: Option<String>,
    /// chaoshub: the registered environment that runs this experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl Validate for JVMChaosSpec {
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
        check_port(self.port.map(i64::from), path, "port", errors);
        let why = format!("when action is {}", self.action.as_str());
        match self.action {
            JVMChaosAction::Latency => {
                require(&self.class, path, "class", &why, errors);
                require(&self.method, path, "method", &why, errors);
                require(&self.latency, path, "latency", &why, errors);
            }
            JVMChaosAction::Return => {
                require(&self.class, path, "class", &why, errors);
                require(&self.method, path, "method", &why, errors);
                require(&self.return_value, path, "returnValue", &why, errors);
            }
            JVMChaosAction::Exception => {
                require(&self.class, path, "class", &why, errors);
                require(&self.method, path, "method", &why, errors);
                require(&self.exception, path, "exception", &why, errors);
            }
            JVMChaosAction::Stress => {
                if self.cpu_count.is_none() && self.mem_type.is_none() {
                    errors.push(path.to_string(), "action stress needs cpuCount or memType");
                }
                if let Some(mem) = &self.mem_type {
                    if mem != "stack" && mem != "heap" {
                        errors.push(
                            join_path(path, "memType"),
                            format!("must be stack or heap; got {mem:?}"),
                        );
                    }
                }
            }
            JVMChaosAction::Gc => {}
            JVMChaosAction::RuleData => require(&self.rule_data, path, "ruleData", &why, errors),
            JVMChaosAction::Mysql => {
                require(
                    &self.mysql_connector_version,
                    path,
                    "mysqlConnectorVersion",
                    &why,
                    errors,
                );
                if self.exception.is_none() && self.latency.is_none() {
                    errors.push(path.to_string(), "action mysql needs exception or latency");
                }
                if let Some(v) = &self.mysql_connector_version {
                    if v != "5" && v != "8" {
                        errors.push(
                            join_path(path, "mysqlConnectorVersion"),
                            format!("must be \"5\" or \"8\"; got {v:?}"),
                        );
                    }
                }
            }
        }
        if let Some(latency) = self.latency {
            if latency < 0 {
                errors.push(join_path(path, "latency"), "must be 0 or more milliseconds");
            }
        }
    }
}

impl FaultSpec for JVMChaosSpec {
    fn actions(&self) -> Vec<String> {
        vec![self.action.as_str().to_string()]
    }
    fn target_selector(&self) -> Option<TargetSelector> {
        Some(self.selector.to_target_selector())
    }
    common_fault_accessors!();
}
