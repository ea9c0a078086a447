//! The `native` adapter: runs NetworkChaos, StressChaos and PhysicalMachineChaos on hosts
//! through `chaos-agent` daemons that dialled the hub (DESIGN.md §4, §5).
//!
//! An environment `{adapter: native}` holds every agent registered with `--env <name>`; each
//! agent is a target of kind `host` with its `--label`s. The adapter translates the manifest
//! (`mapping.rs`, pure) and sends inject / status / recover commands through the hub's
//! [`AgentLink`]. Every fault carries a lease (the experiment's deadline): the agent removes it
//! itself when the lease ends, hub or no hub.

pub mod link;
pub mod mapping;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chaoshub_schema::agent::AgentFault;
use chaoshub_schema::api::Capability;
use chaoshub_schema::{Spec, Target, ValidationErrors};
use chrono::Utc;
use serde_json::{json, Value};

use crate::adapter::{
    Adapter, AdapterError, Candidates, Environment, FaultRequest, Injection, InjectionState,
};
pub use link::{
    AgentCallError, AgentHost, AgentLink, AgentOp, AgentReply, AgentSummary, HostQuery,
};
use mapping::MappingError;

/// How long one agent command may take (an injection spawns host commands and reads them back).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// The lease given to a fault whose experiment has no deadline (never, in practice: the hub
/// gives every fault one); the hub renews it while the experiment runs.
const DEFAULT_LEASE: chrono::Duration = chrono::Duration::seconds(60);

pub struct NativeAdapter {
    link: Arc<dyn AgentLink>,
}

impl NativeAdapter {
    pub fn new(link: Arc<dyn AgentLink>) -> Self {
        NativeAdapter { link }
    }

    /// Host targets of `environment` from the registry's answer (inventory size, agents).
    fn host_candidates(
        environment: &str,
        (inventory, hosts): (usize, Vec<AgentHost>),
    ) -> Candidates {
        Candidates {
            inventory,
            targets: hosts
                .into_iter()
                .map(|a| Self::agent_target(environment, a))
                .collect(),
        }
    }

    fn agent_target(env: &str, a: AgentHost) -> Target {
        let mut labels: BTreeMap<String, String> = a.labels;
        labels.insert("chaoshub.dev/hostname".into(), a.hostname);
        labels.insert(
            "chaoshub.dev/agent-health".into(),
            if a.healthy { "healthy" } else { "unhealthy" }.to_string(),
        );
        Target {
            environment: env.to_string(),
            adapter: "native".to_string(),
            kind: "host".to_string(),
            id: a.name.clone(),
            name: a.name,
            namespace: None,
            labels,
            annotations: BTreeMap::new(),
        }
    }

    /// Addresses of the agents a NetworkChaos `target` selector picks (label equality).
    fn peer_addresses(&self, env: &str, fault: &FaultRequest) -> Vec<String> {
        let Spec::NetworkChaos(spec) = &fault.manifest.spec else {
            return Vec::new();
        };
        let Some(target) = &spec.target else {
            return Vec::new();
        };
        let wanted = target.selector.to_target_selector();
        // The registry's label index answers without copying every agent.
        let query = HostQuery {
            names: None,
            labels: wanted
                .label_selectors
                .iter()
                .map(|(k, v)| (k.clone(), vec![v.clone()]))
                .collect(),
        };
        if let Some(addresses) = self.link.addresses_where(env, &query) {
            return addresses.iter().map(|ip| host_cidr(ip)).collect();
        }
        self.link
            .agents(env)
            .into_iter()
            .filter(|a| {
                wanted
                    .label_selectors
                    .iter()
                    .all(|(k, v)| a.labels.get(k) == Some(v))
            })
            .flat_map(|a| a.addresses.into_iter().map(|ip| host_cidr(&ip)))
            .collect()
    }
}

/// The agent opt-in a fault needs (`chaos-agent serve --allow NAME`), if any.
fn opt_in_of(fault: &AgentFault) -> Option<&'static str> {
    match fault {
        AgentFault::UserDefined(_) => Some("user-defined"),
        AgentFault::Clock(_) => Some("clock"),
        AgentFault::HostPower(_) => Some("host-power"),
        _ => None,
    }
}

/// Capabilities an agent offers only when started with an opt-in: listed for the environment
/// whatever its agents say, so that a submission reaches `check_fault`, which names the agents
/// that lack the opt-in instead of a generic "not supported".
const OPT_IN_CAPABILITIES: [(&str, &str); 2] = [
    ("PhysicalMachineChaos", "user_defined"),
    ("PhysicalMachineChaos", "clock"),
];

/// Whether an agent is one the fault's selector can pick (explicit names, label equality).
fn may_select(selector: &chaoshub_schema::selector::TargetSelector, a: &AgentSummary) -> bool {
    if !selector.names.is_empty() {
        return selector.names.values().flatten().any(|n| n == &a.name);
    }
    selector
        .label_selectors
        .iter()
        .all(|(k, v)| a.labels.get(k) == Some(v))
}

/// Labels the adapter sets on every target itself (over any agent label of the same key): the
/// registry's index knows only the agents' own labels, so a clause on these narrows nothing.
const TARGET_LABELS: [&str; 2] = ["chaoshub.dev/hostname", "chaoshub.dev/agent-health"];

/// The agents a selector may match, as a [`HostQuery`]: every agent it matches satisfies the
/// query (the query may let through more; the hub applies the whole selector afterwards). Only
/// clauses an agent's own labels or name decide are used: equality labels, `In` expressions,
/// node, node label and phase clauses (all labels of a host target) and name fields; the rest
/// narrow nothing here.
pub fn host_query(selector: &chaoshub_schema::selector::TargetSelector) -> HostQuery {
    // A host target has no namespace: a selector naming namespaces matches none.
    if !selector.namespaces.is_empty() {
        return HostQuery {
            names: Some(Default::default()),
            labels: Vec::new(),
        };
    }
    // Explicit names select exactly those (by name or id, both the agent's name); the other
    // fields are not consulted.
    if !selector.names.is_empty() {
        return HostQuery {
            names: Some(selector.names.values().flatten().cloned().collect()),
            labels: Vec::new(),
        };
    }
    let mut query = HostQuery::default();
    let mut label = |key: String, values: Vec<String>| {
        if !TARGET_LABELS.contains(&key.as_str()) {
            query.labels.push((key, values));
        }
    };
    for (k, v) in &selector.label_selectors {
        label(k.clone(), vec![v.clone()]);
    }
    for r in &selector.expression_selectors {
        if r.operator == "In" {
            label(r.key.clone(), r.values.clone());
        }
    }
    if !selector.nodes.is_empty() {
        label("node".into(), selector.nodes.clone());
    }
    for (k, v) in &selector.node_selectors {
        label(format!("node.{k}"), vec![v.clone()]);
    }
    if !selector.pod_phase_selectors.is_empty() {
        label("phase".into(), selector.pod_phase_selectors.clone());
    }
    for (field, value) in &selector.field_selectors {
        if matches!(field.as_str(), "id" | "name" | "metadata.name") {
            let names = query.names.get_or_insert_with(|| [value.clone()].into());
            names.retain(|n| n == value);
        }
    }
    query
}

fn host_cidr(ip: &str) -> String {
    if ip.contains('/') {
        ip.to_string()
    } else if ip.contains(':') {
        format!("{ip}/128")
    } else {
        format!("{ip}/32")
    }
}

fn mapping_error(e: MappingError) -> AdapterError {
    match e {
        MappingError::Invalid { path, message } => {
            AdapterError::Rejected(format!("{path}: {message}"))
        }
        MappingError::Unsupported {
            kind,
            action,
            message,
        } => AdapterError::Unsupported {
            kind,
            action,
            message,
        },
    }
}

fn call_error(env: &str, e: AgentCallError) -> AdapterError {
    match e {
        AgentCallError::NotConnected { agent } => AdapterError::Unreachable {
            environment: env.to_string(),
            endpoint: format!("agent {agent}"),
            message: "the agent is not connected to the hub".to_string(),
        },
        // The agent went away mid-call (restarting, or its stream broke): the command may or
        // may not have been applied, and the agent's journal removes it if it restarts.
        AgentCallError::Dropped { agent } => AdapterError::Unreachable {
            environment: env.to_string(),
            endpoint: format!("agent {agent}"),
            message: "the connection dropped while waiting for the answer".to_string(),
        },
        other => AdapterError::Failed(other.to_string()),
    }
}

fn refused(kind: &str, message: String, fault: &FaultRequest) -> AdapterError {
    match kind {
        "unsupported" => AdapterError::Unsupported {
            kind: fault.kind().to_string(),
            action: fault.actions.join(","),
            message,
        },
        "invalid" => AdapterError::Rejected(message),
        _ => AdapterError::Failed(message),
    }
}

#[async_trait]
impl Adapter for NativeAdapter {
    fn adapter_type(&self) -> &'static str {
        "native"
    }

    fn description(&self) -> &'static str {
        "hosts running chaos-agent (network, stress, process, disk, file, clock and host faults)"
    }

    fn capabilities(&self) -> Vec<Capability> {
        let mut caps = Vec::new();
        for a in [
            "delay",
            "loss",
            "duplicate",
            "corrupt",
            "bandwidth",
            "partition",
        ] {
            caps.push(Capability::new("NetworkChaos", a));
        }
        for a in ["cpu", "memory"] {
            caps.push(Capability::new("StressChaos", a));
        }
        for a in ["error", "random"] {
            caps.push(Capability::new("DNSChaos", a));
        }
        for a in [
            "stress-cpu",
            "stress-mem",
            "disk-fill",
            "disk-read-payload",
            "disk-write-payload",
            "network-delay",
            "network-loss",
            "network-corrupt",
            "network-duplicate",
            "network-partition",
            "network-bandwidth",
            "network-dns",
            "network-down",
            "process",
            "file-create",
            "file-modify",
            "file-delete",
            "file-rename",
            "file-append",
            "file-replace",
            "clock",
            "user_defined",
        ] {
            caps.push(Capability::new("PhysicalMachineChaos", a));
        }
        caps
    }

    fn not_applicable(&self, kind: &str, _action: &str) -> Option<&'static str> {
        match kind {
            "PodChaos" => Some("an agent's target is a whole host, which has no pods or containers to kill or pause"),
            "ProxyChaos" => Some("the agent is not a proxy; toxics live in a Toxiproxy server"),
            "AWSChaos" | "GCPChaos" | "AzureChaos" => Some("cloud control-plane faults are made through the cloud's API, not on a host"),
            _ => None,
        }
    }

    fn alternative(&self, kind: &str, action: &str) -> Option<&'static str> {
        Some(match (kind, action) {
            ("TimeChaos", _) => "use PhysicalMachineChaos action clock (host-wide clock skew, for agents started with --allow clock); per-process clocks are not skewed by the agent",
            ("PodChaos", _) => "use PhysicalMachineChaos action process to kill or stop processes on the host",
            ("NetworkChaos", "netem") => "run one experiment per effect (delay, loss, duplicate, corrupt)",
            ("IOChaos", _) => "use PhysicalMachineChaos disk-read-payload / disk-write-payload for I/O load; the agent does not inject I/O latency or errors",
            ("HTTPChaos", _) => "use an envoy environment in front of the service, or NetworkChaos delay / loss on the host",
            ("ProxyChaos", _) => "use a toxiproxy environment, or NetworkChaos on the host",
            ("StressChaos", "stress-ng") => "use stressors.cpu / stressors.memory",
            _ => return None,
        })
    }

    fn capability_gap(&self, env: &Environment, capability: &Capability) -> Option<String> {
        let wanted = format!("{}/{}", capability.kind, capability.action);
        let agents = self.link.agents(&env.name);
        if agents.is_empty() || !self.capabilities().contains(capability) {
            return None;
        }
        let lacking: Vec<&str> = agents
            .iter()
            .filter(|a| !a.capabilities.contains(&wanted))
            .map(|a| a.name.as_str())
            .collect();
        // The opt-in families (clock, user_defined) are always offered and refused by
        // `check_fault` naming the `--allow` flag; what remains is a kernel without the mechanism.
        Some(format!(
            "the native adapter supports it, but agent {} does not offer it: its kernel lacks the \
             mechanism (see `chaos-agent mechanisms` on that host)",
            lacking.join(", ")
        ))
    }

    fn validate_environment(&self, env: &Environment) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if env.spec.endpoint.as_deref().is_some_and(|e| !e.is_empty()) {
            errors.push(
                "spec.endpoint",
                "the native adapter has no endpoint: agents dial the hub (chaos-agent serve --hub <hub URL> --env <environment>)",
            );
        }
        for key in env.spec.settings.keys() {
            if crate::HUB_SETTINGS.contains(&key.as_str()) {
                continue;
            }
            errors.push(
                format!("spec.settings.{key}"),
                "unknown setting (the native adapter has no settings)",
            );
        }
        errors.into_result()
    }

    async fn environment_capabilities(
        &self,
        env: &Environment,
    ) -> Result<Vec<Capability>, AdapterError> {
        // What the agents measured at start, intersected with what the adapter maps; with no
        // agent connected yet, the static matrix (so experiments can be prepared ahead).
        let Some(offered) = self.link.offered_capabilities(&env.name) else {
            return Ok(self.capabilities());
        };
        let offered: std::collections::BTreeSet<String> = offered
            .into_iter()
            .chain(OPT_IN_CAPABILITIES.iter().map(|(k, a)| format!("{k}/{a}")))
            .collect();
        Ok(self
            .capabilities()
            .into_iter()
            .filter(|c| offered.contains(&format!("{}/{}", c.kind, c.action)))
            .collect())
    }

    async fn discover(&self, env: &Environment) -> Result<Vec<Target>, AdapterError> {
        Ok(self
            .link
            .hosts(&env.name)
            .into_iter()
            .map(|a| Self::agent_target(&env.name, a))
            .collect())
    }

    fn candidates(
        &self,
        env: &Environment,
        selector: &chaoshub_schema::selector::TargetSelector,
    ) -> Option<Candidates> {
        let found = self.link.hosts_where(&env.name, &host_query(selector))?;
        Some(Self::host_candidates(&env.name, found))
    }

    fn inventory_page(
        &self,
        env: &Environment,
        after: Option<&str>,
        limit: usize,
    ) -> Option<Candidates> {
        // A host target's id is its agent's name: name order is id order.
        let found = self.link.hosts_page(&env.name, after, limit)?;
        Some(Self::host_candidates(&env.name, found))
    }

    fn check_fault(&self, env: &Environment, fault: &FaultRequest) -> Result<(), AdapterError> {
        // Peers are resolved at injection; here a placeholder keeps a `target` selector from
        // being reported as "matched nobody" before agents are even asked.
        let placeholder = ["198.18.255.255/32".to_string()];
        let agent_fault =
            mapping::to_agent_fault(&fault.manifest, &placeholder).map_err(mapping_error)?;
        // Dangerous families run only on agents started to allow them: refuse now, naming the
        // agents the selector may pick that lack the opt-in. (The agent refuses as well; with no
        // agent connected yet, that refusal at injection is what remains.)
        let Some(opt_in) = opt_in_of(&agent_fault) else {
            return Ok(());
        };
        let selector = fault
            .manifest
            .spec
            .fault()
            .and_then(|f| f.target_selector())
            .unwrap_or_default();
        // `may_select` as a query the registry's index answers without copying every agent.
        let query = if selector.names.is_empty() {
            HostQuery {
                names: None,
                labels: selector
                    .label_selectors
                    .iter()
                    .map(|(k, v)| (k.clone(), vec![v.clone()]))
                    .collect(),
            }
        } else {
            HostQuery {
                names: Some(selector.names.values().flatten().cloned().collect()),
                labels: Vec::new(),
            }
        };
        let lacking: Vec<String> = match self.link.lacking_opt_in(&env.name, &query, opt_in) {
            Some(names) => names,
            None => self
                .link
                .agents(&env.name)
                .into_iter()
                .filter(|a| may_select(&selector, a) && !a.allowed.iter().any(|x| x == opt_in))
                .map(|a| a.name)
                .collect(),
        };
        if lacking.is_empty() {
            return Ok(());
        }
        let agents = if lacking.len() == 1 {
            format!("agent {}", lacking[0])
        } else {
            format!("agents {}", lacking.join(", "))
        };
        Err(AdapterError::Unsupported {
            kind: fault.kind().to_string(),
            action: fault.actions.join(","),
            message: format!(
                "{agents} {} not started with --allow {opt_in} (start it with `chaos-agent serve --allow {opt_in}`, or select only agents that were)",
                if lacking.len() == 1 { "was" } else { "were" }
            ),
        })
    }

    fn plan_details(&self, env: &Environment, fault: &FaultRequest, target: &Target) -> Value {
        let peers = self.peer_addresses(&env.name, fault);
        match mapping::to_agent_fault(&fault.manifest, &peers) {
            Ok(f) => json!({"agent": target.id, "fault": f}),
            Err(e) => json!({"agent": target.id, "error": e.to_string()}),
        }
    }

    async fn inject(
        &self,
        env: &Environment,
        fault: &FaultRequest,
        target: &Target,
    ) -> Result<Value, AdapterError> {
        let peers = self.peer_addresses(&env.name, fault);
        let agent_fault =
            mapping::to_agent_fault(&fault.manifest, &peers).map_err(mapping_error)?;
        let lease_until = fault.deadline.unwrap_or_else(|| Utc::now() + DEFAULT_LEASE);
        let reply = self
            .link
            .call(
                &env.name,
                &target.id,
                AgentOp::Inject {
                    fault_id: fault.injection_id.clone(),
                    fault: Box::new(agent_fault),
                    lease_until,
                },
                COMMAND_TIMEOUT,
            )
            .await
            .map_err(|e| call_error(&env.name, e))?;
        match reply {
            AgentReply::Ok(Some(status)) => Ok(json!({
                "agent": target.id,
                "faultId": fault.injection_id,
                "fault": status.label,
                "mechanism": status.mechanism,
                "leaseUntil": status.lease_until,
                "state": status.state,
            })),
            AgentReply::Ok(None) => Err(AdapterError::Failed(
                "the agent confirmed the injection without a status".to_string(),
            )),
            AgentReply::Refused { kind, message } => Err(refused(&kind, message, fault)),
        }
    }

    async fn status(
        &self,
        env: &Environment,
        injection: &Injection,
    ) -> Result<InjectionState, AdapterError> {
        let reply = self
            .link
            .call(
                &env.name,
                &injection.target.id,
                AgentOp::Status {
                    fault_id: injection.injection_id.clone(),
                },
                COMMAND_TIMEOUT,
            )
            .await;
        Ok(match reply {
            Ok(AgentReply::Ok(Some(s))) if s.state == "active" => InjectionState::Active,
            Ok(AgentReply::Ok(Some(s))) => InjectionState::Unknown(
                s.error
                    .unwrap_or_else(|| format!("the agent reports the fault {}", s.state)),
            ),
            Ok(AgentReply::Ok(None)) => InjectionState::Unknown("no status returned".into()),
            Ok(AgentReply::Refused { kind, .. }) if kind == "not-found" => InjectionState::Absent,
            Ok(AgentReply::Refused { message, .. }) => InjectionState::Unknown(message),
            // Not connected, or the stream broke mid-call: the engine tells a far side that
            // dropped out (and may come back without the fault) from a slow answer.
            Err(e @ (AgentCallError::NotConnected { .. } | AgentCallError::Dropped { .. })) => {
                return Err(call_error(&env.name, e))
            }
            Err(e) => InjectionState::Unknown(e.to_string()),
        })
    }

    async fn recover(&self, env: &Environment, injection: &Injection) -> Result<(), AdapterError> {
        let reply = self
            .link
            .call(
                &env.name,
                &injection.target.id,
                AgentOp::Recover {
                    fault_id: injection.injection_id.clone(),
                },
                COMMAND_TIMEOUT,
            )
            .await;
        match reply {
            Ok(AgentReply::Ok(_)) => Ok(()),
            Ok(AgentReply::Refused { kind, .. }) if kind == "not-found" => Ok(()),
            Ok(AgentReply::Refused { message, .. }) => Err(AdapterError::Failed(message)),
            Err(AgentCallError::NotConnected { agent }) => {
                // The agent's own lease removes the fault at its deadline, connected or not, and
                // its journal removes it at its next start. Once that lease has passed there is
                // nothing left for the hub to do; before that, keep retrying.
                let lease = injection
                    .details
                    .get("leaseUntil")
                    .and_then(|v| serde_json::from_value::<chrono::DateTime<Utc>>(v.clone()).ok());
                match lease {
                    Some(lease) if lease < Utc::now() => {
                        tracing::info!(agent = %agent, injection = %injection.injection_id, "agent unreachable but its lease has ended; the agent removed the fault itself");
                        Ok(())
                    }
                    _ => Err(call_error(
                        &env.name,
                        AgentCallError::NotConnected { agent },
                    )),
                }
            }
            Err(e) => Err(call_error(&env.name, e)),
        }
    }
}
