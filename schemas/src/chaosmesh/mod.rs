//! Chaos Mesh kinds (`chaos-mesh.org/v1alpha1`).
//! PLACEHOLDER: loosely typed until the typed models land.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ValidationErrors;
use crate::manifest::FaultSpec;
use crate::selector::{SelectorMode, TargetSelector};
use crate::validate::Validate;

macro_rules! placeholder {
    ($($name:ident),*) => { $(
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
        pub struct $name {
            #[serde(flatten)]
            pub fields: BTreeMap<String, Value>,
        }
        impl Validate for $name {
            fn validate(&self, _path: &str, _errors: &mut ValidationErrors) {}
        }
        impl FaultSpec for $name {
            fn actions(&self) -> Vec<String> {
                self.fields.get("action").and_then(|v| v.as_str()).map(|s| vec![s.to_string()]).unwrap_or_default()
            }
            fn target_selector(&self) -> Option<TargetSelector> {
                let labels = self.fields.get("selector")?.get("labelSelectors")?.clone();
                Some(TargetSelector { label_selectors: serde_json::from_value(labels).ok()?, ..Default::default() })
            }
            fn mode(&self) -> Option<SelectorMode> {
                serde_json::from_value(self.fields.get("mode")?.clone()).ok()
            }
            fn value(&self) -> Option<&str> {
                self.fields.get("value")?.as_str()
            }
            fn duration(&self) -> Option<&str> {
                self.fields.get("duration")?.as_str()
            }
            fn environment(&self) -> Option<&str> {
                self.fields.get("environment").or_else(|| self.fields.get("remoteCluster"))?.as_str()
            }
            fn set_environment(&mut self, env: &str) {
                self.fields.insert("environment".into(), Value::String(env.into()));
            }
        }
    )* };
}

placeholder!(
    NetworkChaosSpec, PodChaosSpec, StressChaosSpec, IOChaosSpec, TimeChaosSpec, HTTPChaosSpec,
    DNSChaosSpec, PhysicalMachineChaosSpec, KernelChaosSpec, JVMChaosSpec, AWSChaosSpec,
    GCPChaosSpec, AzureChaosSpec, BlockChaosSpec, ScheduleSpec, WorkflowSpec, StatusCheckSpec,
    PhysicalMachineSpec, RemoteClusterSpec
);
