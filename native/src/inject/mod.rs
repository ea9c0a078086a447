//! The injector contract every fault family implements (network, stress, process, disk, file,
//! clock, host power, user-defined).
//!
//! The daemon drives each fault in four steps, and the order is what keeps the host clean:
//! 1. `plan` — pure apart from reads: decide exactly what will be created, named after the fault
//!    id (an nftables table `chaoshub_<id>`, a tc qdisc handle, an iptables comment
//!    `chaoshub:<id>`, a backup file path, the pids to signal…). The plan is written to the
//!    journal *before* anything changes on the host.
//! 2. `apply` — make the change; may return a live [`Worker`] (an NFQUEUE loop, stress threads,
//!    child processes) that the daemon keeps until removal.
//! 3. `verify` — read back that the fault is in place (the qdisc / rule / process state exists).
//! 4. `remove` — undo exactly what the plan names, idempotently, from the plan alone: it must
//!    work after an agent restart, when the worker is gone and only the journal remains. It
//!    never touches anything the plan does not name (a user's own qdiscs, rules, processes).

use chaoshub_schema::agent::AgentFault;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Errors of injectors.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The host lacks what the fault needs; `feature` names it (`sch_netem`, `stress-ng`,
    /// `CAP_SYS_TIME`…).
    #[error("{message} (missing: {feature})")]
    Unsupported { feature: String, message: String },
    /// The fault's parameters cannot be applied (bad pid, path outside the allowed roots, …).
    #[error("invalid fault: {0}")]
    Invalid(String),
    /// A host command failed; `stderr` is trimmed.
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

impl InjectError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        InjectError::Io {
            context: context.into(),
            source,
        }
    }
}

/// What will be (or was) created for one fault; journalled before `apply`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The fault id (the hub's injection id, or a generated one for standalone use).
    pub id: String,
    /// The mechanism chosen (`tc-netem`, `nfqueue`, `nft-numgen`, `iptables-statistic`,
    /// `tc-tbf`, `threads`, `stress-ng`, `sigstop`, …) — shown in the fault's status.
    pub mechanism: String,
    /// Injector-specific record of everything to remove, enough for `remove` after a restart.
    pub undo: Value,
}

/// A live part of a fault that runs inside the agent (or as its children).
pub trait Worker: Send {
    /// Whether it still runs (a dead NFQUEUE loop means the delay is no longer delivered).
    fn is_alive(&self) -> bool;
    /// The value in force as measured (CPU load %, bytes held, packets delayed…), if known.
    fn measured(&self) -> Option<f64> {
        None
    }
    /// Stops it; called before `remove`. Must not block for long (≤ 1 s).
    fn stop(self: Box<Self>);
}

/// Result of `apply`.
pub struct Applied {
    pub worker: Option<Box<dyn Worker>>,
    /// A replacement for `Plan::undo` learned while applying (for example the pids of spawned
    /// stress-ng processes); the daemon rewrites the journal entry with it.
    pub undo_update: Option<Value>,
}

impl Applied {
    pub fn nothing_running() -> Self {
        Applied {
            worker: None,
            undo_update: None,
        }
    }
}

/// One fault family.
pub trait Injector: Send + Sync {
    /// Whether this injector handles the fault.
    fn handles(&self, fault: &AgentFault) -> bool;
    fn plan(&self, id: &str, fault: &AgentFault) -> Result<Plan, InjectError>;
    fn apply(&self, plan: &Plan, fault: &AgentFault) -> Result<Applied, InjectError>;
    fn verify(&self, plan: &Plan) -> Result<bool, InjectError>;
    fn remove(&self, plan: &Plan) -> Result<(), InjectError>;
}

/// Runs host commands (tc, nft, iptables, ip…). The real one spawns processes; tests of pure
/// planning logic use a recording fake.
pub trait CommandRunner: Send + Sync {
    /// Runs `program args…`, optionally inside the network namespace at `netns` (a path such as
    /// `/run/netns/x` or `/proc/PID/ns/net`), and returns stdout.
    fn run(&self, netns: Option<&str>, program: &str, args: &[&str])
        -> Result<String, InjectError>;
}

/// A short, name-safe form of a fault id for kernel object names (iptables comments, log
/// prefixes and interface names are short): 16 hex digits of a 64-bit FNV-1a hash of the whole
/// id, so two ids that share a prefix (`<uid>-0`, `<uid>-1`) never collide.
pub fn short_id(id: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}
