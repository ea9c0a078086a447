//! The conformance matrix: which (kind, action, notable option) each adapter runs, derived from
//! the adapters' own declarations — their `capabilities()`, `not_applicable()` and the pure
//! `check_fault()` the hub runs at submission — so the matrix, the 422s and the catalog's
//! adapter lists cannot disagree with what a submission really gets.
//!
//! Each [`Row`] is a small Chaos Mesh (or chaoshub) manifest exercising one action, or one
//! option of it; a cell is what the adapter's submission checks say about that manifest.

use std::sync::Arc;

use chaoshub_schema::environment::EnvironmentSpec;
use chaoshub_schema::Manifest;
use serde::Serialize;

use crate::{Adapter, AdapterError, Environment, FaultRequest};

/// One row of the matrix: a kind, an action and optionally one notable option of it.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub kind: &'static str,
    pub action: &'static str,
    /// The option this row exercises (`reorder`, `externalTargets host name`…); empty for the
    /// action with its required fields only.
    pub option: &'static str,
    /// `apiVersion` and `spec` of the sample manifest, as YAML (`kind` and `metadata` are added).
    pub api_version: &'static str,
    pub spec: &'static str,
}

impl Row {
    /// `Kind/action` or `Kind/action (option)`: the stable id measured figures refer to.
    pub fn id(&self) -> String {
        if self.option.is_empty() {
            format!("{}/{}", self.kind, self.action)
        } else {
            format!("{}/{} ({})", self.kind, self.action, self.option)
        }
    }

    /// The sample manifest, parsed and validated as a submission would be.
    pub fn manifest(&self) -> Result<Manifest, chaoshub_schema::ValidationErrors> {
        let spec = self
            .spec
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>();
        chaoshub_schema::parse_one(&format!(
            "apiVersion: {}\nkind: {}\nmetadata: {{name: conformance, namespace: default}}\nspec:\n{spec}",
            self.api_version, self.kind
        ))
    }
}

const CM: &str = "chaos-mesh.org/v1alpha1";
const HUB: &str = "chaoshub.dev/v1alpha1";

macro_rules! row {
    ($kind:literal, $action:literal, $option:literal, $api:expr, $spec:expr) => {
        Row {
            kind: $kind,
            action: $action,
            option: $option,
            api_version: $api,
            spec: $spec,
        }
    };
}

/// Every row of the matrix. A new action or option an adapter learns gets its row here.
pub const ROWS: &[Row] = &[
    row!("NetworkChaos", "delay", "", CM, "action: delay\nmode: all\nselector: {labelSelectors: {app: web}}\ndelay: {latency: 100ms}\nduration: 30s"),
    row!("NetworkChaos", "delay", "jitter, correlation", CM, "action: delay\nmode: all\nselector: {labelSelectors: {app: web}}\ndelay: {latency: 100ms, jitter: 10ms, correlation: '25'}\nduration: 30s"),
    row!("NetworkChaos", "delay", "reorder", CM, "action: delay\nmode: all\nselector: {labelSelectors: {app: web}}\ndelay: {latency: 20ms, reorder: {reorder: '25', correlation: '0', gap: 5}}\nduration: 30s"),
    row!("NetworkChaos", "delay", "direction both, target selector", CM, "action: delay\nmode: all\nselector: {labelSelectors: {app: web}}\ndirection: both\ntarget: {mode: all, selector: {labelSelectors: {app: db}}}\ndelay: {latency: 100ms}\nduration: 30s"),
    row!("NetworkChaos", "delay", "externalTargets address", CM, "action: delay\nmode: all\nselector: {labelSelectors: {app: web}}\ndelay: {latency: 100ms}\nexternalTargets: ['198.51.100.7']\nduration: 30s"),
    row!("NetworkChaos", "delay", "externalTargets host name", CM, "action: delay\nmode: all\nselector: {labelSelectors: {app: web}}\ndelay: {latency: 100ms}\nexternalTargets: [api.example.com]\nduration: 30s"),
    row!("NetworkChaos", "loss", "", CM, "action: loss\nmode: all\nselector: {labelSelectors: {app: web}}\nloss: {loss: '25'}\nduration: 30s"),
    row!("NetworkChaos", "loss", "externalTargets address", CM, "action: loss\nmode: all\nselector: {labelSelectors: {app: web}}\nloss: {loss: '25'}\nexternalTargets: ['198.51.100.7']\nduration: 30s"),
    row!("NetworkChaos", "duplicate", "", CM, "action: duplicate\nmode: all\nselector: {labelSelectors: {app: web}}\nduplicate: {duplicate: '20'}\nduration: 30s"),
    row!("NetworkChaos", "corrupt", "", CM, "action: corrupt\nmode: all\nselector: {labelSelectors: {app: web}}\ncorrupt: {corrupt: '20'}\nduration: 30s"),
    row!("NetworkChaos", "bandwidth", "", CM, "action: bandwidth\nmode: all\nselector: {labelSelectors: {app: web}}\nbandwidth: {rate: 1mbps, limit: 20971520, buffer: 10000}\nduration: 30s"),
    row!("NetworkChaos", "partition", "externalTargets address", CM, "action: partition\nmode: all\nselector: {labelSelectors: {app: web}}\nexternalTargets: ['198.51.100.7']\nduration: 30s"),
    row!("NetworkChaos", "partition", "externalTargets host name", CM, "action: partition\nmode: all\nselector: {labelSelectors: {app: web}}\nexternalTargets: [api.example.com]\nduration: 30s"),
    row!("NetworkChaos", "netem", "delay and loss at once", CM, "action: netem\nmode: all\nselector: {labelSelectors: {app: web}}\ndelay: {latency: 100ms}\nloss: {loss: '10'}\nduration: 30s"),
    row!("StressChaos", "cpu", "", CM, "mode: all\nselector: {labelSelectors: {app: web}}\nstressors: {cpu: {workers: 1, load: 50}}\nduration: 30s"),
    row!("StressChaos", "memory", "", CM, "mode: all\nselector: {labelSelectors: {app: web}}\nstressors: {memory: {workers: 1, size: 256MB}}\nduration: 30s"),
    row!("PodChaos", "pod-kill", "", CM, "action: pod-kill\nmode: one\nselector: {labelSelectors: {app: web}}"),
    row!("PodChaos", "pod-failure", "", CM, "action: pod-failure\nmode: one\nselector: {labelSelectors: {app: web}}\nduration: 30s"),
    row!("PodChaos", "container-kill", "", CM, "action: container-kill\nmode: one\nselector: {labelSelectors: {app: web}}\ncontainerNames: [web]"),
    row!("HTTPChaos", "abort", "", CM, "mode: all\nselector: {labelSelectors: {listener: ingress}}\ntarget: Request\nport: 80\nabort: true\nduration: 30s"),
    row!("HTTPChaos", "delay", "", CM, "mode: all\nselector: {labelSelectors: {listener: ingress}}\ntarget: Request\nport: 80\ndelay: 100ms\nduration: 30s"),
    row!("HTTPChaos", "replace", "", CM, "mode: all\nselector: {labelSelectors: {listener: ingress}}\ntarget: Request\nport: 80\nreplace: {code: 503}\nduration: 30s"),
    row!("TimeChaos", "time-offset", "", CM, "mode: one\nselector: {labelSelectors: {app: web}}\ntimeOffset: '-5m'\nduration: 30s"),
    row!("DNSChaos", "error", "", CM, "action: error\nmode: all\nselector: {labelSelectors: {app: web}}\npatterns: ['api.example.*']\nduration: 30s"),
    row!("DNSChaos", "random", "", CM, "action: random\nmode: all\nselector: {labelSelectors: {app: web}}\npatterns: ['api.example.*']\nduration: 30s"),
    row!("IOChaos", "latency", "", CM, "action: latency\nmode: one\nselector: {labelSelectors: {app: web}}\nvolumePath: /data\ndelay: 100ms\npercent: 50\nduration: 30s"),
    row!("IOChaos", "fault", "", CM, "action: fault\nmode: one\nselector: {labelSelectors: {app: web}}\nvolumePath: /data\nerrno: 5\npercent: 50\nduration: 30s"),
    row!("PhysicalMachineChaos", "stress-cpu", "", CM, "action: stress-cpu\nmode: all\nselector: {labelSelectors: {app: web}}\nstress-cpu: {workers: 1, load: 50}\nduration: 30s"),
    row!("PhysicalMachineChaos", "network-delay", "", CM, "action: network-delay\nmode: all\nselector: {labelSelectors: {app: web}}\nnetwork-delay: {device: eth0, latency: 100ms}\nduration: 30s"),
    row!("PhysicalMachineChaos", "network-dns", "", CM, "action: network-dns\nmode: all\nselector: {labelSelectors: {app: web}}\nnetwork-dns: {dns-domain-name: '*'}\nduration: 30s"),
    row!("PhysicalMachineChaos", "disk-write-payload", "", CM, "action: disk-write-payload\nmode: all\nselector: {labelSelectors: {app: web}}\ndisk-write-payload: {path: /tmp, size: 100MB, payload-process-num: 1}\nduration: 30s"),
    row!("PhysicalMachineChaos", "process", "", CM, "action: process\nmode: all\nselector: {labelSelectors: {app: web}}\nprocess: {process: nginx, signal: 9}\nduration: 30s"),
    row!("PhysicalMachineChaos", "clock", "", CM, "action: clock\nmode: all\nselector: {labelSelectors: {app: web}}\nclock: {time-offset: '-5m'}\nduration: 30s"),
    row!("ProxyChaos", "latency", "", HUB, "action: latency\nmode: all\nselector: {labelSelectors: {name: redis}}\nlatency: {latency: 100}\nduration: 30s"),
    row!("ProxyChaos", "down", "", HUB, "action: down\nmode: all\nselector: {labelSelectors: {name: redis}}\nduration: 30s"),
];

/// What an adapter's submission checks say about one sample manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "message", rename_all = "kebab-case")]
pub enum Verdict {
    /// Every check passes: a submission is accepted.
    Supported,
    /// Refused, with the adapter's message (a 422 or 400 at submission).
    Refused(String),
    /// Refused because the far side has nothing the fault could act on; the message says why.
    NotApplicable(String),
    /// The adapter's matrix comes from the environment (plugins): no static answer.
    Dynamic,
}

/// The environment the checks run against: the adapter with no endpoint and no settings, which
/// is every adapter's default configuration.
pub fn example_environment(adapter: &dyn Adapter) -> Environment {
    Environment {
        name: "conformance".into(),
        spec: EnvironmentSpec {
            adapter: adapter.adapter_type().into(),
            endpoint: None,
            description: None,
            labels: Default::default(),
            settings: Default::default(),
        },
    }
}

/// The adapter's verdict on `manifest`, from its static declarations and `check_fault` alone
/// (pure; nothing is reached). Environment-side gaps (an agent's opt-in) are not seen here.
pub fn verdict(adapter: &dyn Adapter, manifest: &Manifest) -> Verdict {
    if adapter.dynamic_capabilities() {
        return Verdict::Dynamic;
    }
    let kind = manifest.kind().as_str();
    let actions = manifest.fault().map(|f| f.actions()).unwrap_or_default();
    let capabilities = adapter.capabilities();
    for action in &actions {
        if !capabilities.contains(&chaoshub_schema::api::Capability::new(kind, action.clone())) {
            if let Some(why) = adapter.not_applicable(kind, action) {
                return Verdict::NotApplicable(why.to_string());
            }
            let mut message = format!(
                "the {} adapter does not run {kind}/{action}",
                adapter.adapter_type()
            );
            if let Some(alt) = adapter.alternative(kind, action) {
                message.push_str("; ");
                message.push_str(alt);
            }
            return Verdict::Refused(message);
        }
    }
    let manifest = Arc::new(manifest.clone());
    let request = FaultRequest {
        experiment_uid: "conformance".into(),
        injection_id: "conformance-0".into(),
        name: manifest.metadata.name.clone().unwrap_or_default(),
        namespace: manifest.metadata.namespace_or_default().to_string(),
        manifest: Arc::clone(&manifest),
        actions,
        deadline: None,
    };
    match adapter.check_fault(&example_environment(adapter), &request) {
        Ok(()) => Verdict::Supported,
        Err(AdapterError::Unsupported { message, .. }) => Verdict::Refused(message),
        Err(other) => Verdict::Refused(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_a_valid_manifest_of_its_kind_and_action() {
        let mut ids = std::collections::BTreeSet::new();
        for row in ROWS {
            let m = row
                .manifest()
                .unwrap_or_else(|e| panic!("{}: {e}", row.id()));
            assert_eq!(m.kind().as_str(), row.kind, "{}", row.id());
            let actions = m.fault().map(|f| f.actions()).unwrap_or_default();
            assert!(
                actions.iter().any(|a| a == row.action),
                "{}: actions {actions:?}",
                row.id()
            );
            assert!(ids.insert(row.id()), "duplicate row {}", row.id());
        }
    }
}
