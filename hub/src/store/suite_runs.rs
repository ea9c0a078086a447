//! Suite runs: the journal of each `Suite` run, kept so runs can be listed and read back
//! (`GET /api/v1/suites/runs`). A run is written whole on every change; journals are small.

use chaoshub_schema::suite::{SuiteRun, SuiteRunSummary};

use super::StoreError;

pub trait SuiteRunStore: Send + Sync {
    /// Inserts or replaces a run's journal.
    fn put_suite_run(&self, run: &SuiteRun) -> Result<(), StoreError>;
    fn get_suite_run(&self, id: &str) -> Result<Option<SuiteRun>, StoreError>;
    /// The newest runs first, at most `limit`.
    fn list_suite_runs(&self, limit: usize) -> Result<Vec<SuiteRunSummary>, StoreError>;
}
