//! Running a workflow's StatusCheck node.
//!
//! The probe itself belongs to `crate::probes` (shared with suites' steady-state checks); this
//! file only adapts its outcome to what a workflow node needs.

use chaoshub_schema::chaosmesh::StatusCheckSpec;
use tokio::sync::watch;

/// How a status check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    pub succeeded: bool,
    pub reason: String,
}

/// Runs the check until it reaches a verdict or `cancel` turns true (a cancelled check counts
/// as passed: nothing went wrong while it ran).
pub async fn run(spec: &StatusCheckSpec, cancel: watch::Receiver<bool>) -> CheckOutcome {
    let outcome = crate::probes::statuscheck::run_status_check(spec, cancel).await;
    CheckOutcome {
        succeeded: outcome.succeeded,
        reason: outcome.reason,
    }
}
