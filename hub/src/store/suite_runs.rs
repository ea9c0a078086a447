//! Suite runs: the journal of each `Suite` run, kept so runs can be listed and read back
//! (`GET /api/v1/suites/runs`). A run is written whole on every change; journals are small.

use chaoshub_schema::suite::{SuiteRun, SuiteRunSummary};

use super::StoreError;

/// The refusal of a journal write from a process that no longer owns the run.
pub(crate) fn taken_over(id: &str) -> StoreError {
    StoreError::Fenced(format!(
        "suite run {id} is owned by another replica now (it was taken over)"
    ))
}

pub trait SuiteRunStore: Send + Sync {
    /// Inserts or replaces a run's journal. A stored run is replaced only by a journal naming
    /// the same owner (`replica`; none on a lone hub): a write from any other process is
    /// refused with [`StoreError::Fenced`], because the run has been taken over
    /// ([`claim_suite_run`](Self::claim_suite_run)) since that process last wrote.
    fn put_suite_run(&self, run: &SuiteRun) -> Result<(), StoreError>;
    /// Takes over a stored run: replaces its journal (whose `replica` names the new owner) only
    /// while the stored run is still owned by `previous`. False when it is not (another replica
    /// took it first, or its owner wrote a new owner since).
    fn claim_suite_run(&self, run: &SuiteRun, previous: Option<&str>) -> Result<bool, StoreError>;
    /// Every run still `Running`, oldest first.
    fn running_suite_runs(&self) -> Result<Vec<SuiteRun>, StoreError>;
    fn get_suite_run(&self, id: &str) -> Result<Option<SuiteRun>, StoreError>;
    /// The newest runs first, at most `limit`.
    fn list_suite_runs(&self, limit: usize) -> Result<Vec<SuiteRunSummary>, StoreError>;
}
