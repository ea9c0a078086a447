//! The hub's side of the agent connection, as the `native` adapter sees it.
//!
//! Agents dial the hub over gRPC; the hub keeps their streams. The adapter stays a stateless
//! translator: it asks this trait for the agents of an environment and sends one command to
//! one agent, and never learns about streams, heartbeats or the proto.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use chaoshub_schema::agent::{AgentFault, AgentFaultStatus, KernelMechanisms};
use chrono::{DateTime, Utc};

/// One registered agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSummary {
    pub name: String,
    pub environment: String,
    pub labels: BTreeMap<String, String>,
    pub addresses: Vec<String>,
    pub hostname: String,
    pub version: String,
    /// `Kind/action` pairs it can run.
    pub capabilities: Vec<String>,
    /// The opt-ins it was started with (`user-defined`, `host-power`, `clock`).
    pub allowed: Vec<String>,
    pub mechanisms: KernelMechanisms,
    /// Connected and heartbeating on time.
    pub healthy: bool,
    /// Its stream is open (it may still be late with heartbeats).
    pub connected: bool,
    pub last_heartbeat: Option<DateTime<Utc>>,
}

/// An agent as a target needs it: what discovery copies for each agent of a fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentHost {
    pub name: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    /// Connected and heartbeating on time.
    pub healthy: bool,
}

/// Which agents of an environment to look up ([`AgentLink::hosts_where`]): every clause must
/// hold. The native adapter builds it from a target selector so that the agents it returns are
/// a superset of those the selector matches; the hub then applies the selector itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostQuery {
    /// Only agents with one of these names (`None`: any name).
    pub names: Option<BTreeSet<String>>,
    /// Each `(key, values)`: the agent has label `key` with one of `values`.
    pub labels: Vec<(String, Vec<String>)>,
}

/// A command for one agent.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentOp {
    Inject {
        fault_id: String,
        fault: Box<AgentFault>,
        lease_until: DateTime<Utc>,
    },
    Recover {
        fault_id: String,
    },
    Status {
        fault_id: String,
    },
}

/// An agent's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentReply {
    Ok(Option<Box<AgentFaultStatus>>),
    /// The agent refused or failed: `kind` is `unsupported`, `invalid`, `not-found`,
    /// `conflict` or `failed`.
    Refused {
        kind: String,
        message: String,
    },
}

/// Why a command did not reach an agent or got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentCallError {
    #[error("agent {agent:?} is not connected to the hub")]
    NotConnected { agent: String },
    #[error("agent {agent:?} did not answer within {timeout:?}")]
    Timeout { agent: String, timeout: Duration },
    #[error("agent {agent:?}: the connection dropped while waiting for the answer")]
    Dropped { agent: String },
}

#[async_trait]
pub trait AgentLink: Send + Sync {
    /// Agents registered in an environment (connected or not yet forgotten).
    fn agents(&self, environment: &str) -> Vec<AgentSummary>;

    /// The same agents, with only what a target is made of. Target discovery runs at every
    /// injection and dry run: over thousands of agents, copying each one's capabilities,
    /// mechanisms and addresses as well cost more than the rest of the injection.
    fn hosts(&self, environment: &str) -> Vec<AgentHost> {
        self.agents(environment)
            .into_iter()
            .map(|a| AgentHost {
                name: a.name,
                hostname: a.hostname,
                labels: a.labels,
                healthy: a.healthy,
            })
            .collect()
    }

    /// The agents of `environment` that satisfy `query`, in name order (as `hosts` lists them),
    /// with how many agents the environment has. `None` when the link cannot look them up
    /// without listing every agent: the caller then filters `hosts`. The default says `None`.
    fn hosts_where(&self, environment: &str, query: &HostQuery) -> Option<(usize, Vec<AgentHost>)> {
        let _ = (environment, query);
        None
    }

    /// At most `limit` agents of `environment` after the one named `after`, in name order, with
    /// how many agents the environment has; `None` when the link cannot list a range without
    /// listing every agent (the default).
    fn hosts_page(
        &self,
        environment: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Option<(usize, Vec<AgentHost>)> {
        let _ = (environment, after, limit);
        None
    }

    /// The names of the agents of `environment` that satisfy `query` and were not started
    /// with the opt-in `allow` (`chaos-agent serve --allow NAME`), in name order; `None` when
    /// the link cannot look them up without listing every agent (the default).
    fn lacking_opt_in(
        &self,
        environment: &str,
        query: &HostQuery,
        allow: &str,
    ) -> Option<Vec<String>> {
        let _ = (environment, query, allow);
        None
    }

    /// The addresses of the agents of `environment` that satisfy `query`, in name order; `None`
    /// when the link cannot look them up without listing every agent (the default).
    fn addresses_where(&self, environment: &str, query: &HostQuery) -> Option<Vec<String>> {
        let _ = (environment, query);
        None
    }

    /// Every `Kind/action` pair some agent of the environment offers, sorted, each once; `None`
    /// when it has no agent. Checked at every submission.
    fn offered_capabilities(&self, environment: &str) -> Option<Vec<String>> {
        let agents = self.agents(environment);
        if agents.is_empty() {
            return None;
        }
        let offered: std::collections::BTreeSet<String> =
            agents.into_iter().flat_map(|a| a.capabilities).collect();
        Some(offered.into_iter().collect())
    }

    /// Sends one command and waits for its answer.
    async fn call(
        &self,
        environment: &str,
        agent: &str,
        op: AgentOp,
        timeout: Duration,
    ) -> Result<AgentReply, AgentCallError>;
}
