//! `suite_runs` in PostgreSQL: one row per run, the journal as JSON text.

use chaoshub_schema::suite::{SuiteRun, SuiteRunSummary};

use super::{corrupt, PgStore};
use crate::store::suite_runs::SuiteRunStore;
use crate::store::StoreError;

impl SuiteRunStore for PgStore {
    fn put_suite_run(&self, run: &SuiteRun) -> Result<(), StoreError> {
        let journal = serde_json::to_string(run).map_err(|e| corrupt("suite run", e))?;
        let (id, suite, phase, created_at) = (
            run.id.clone(),
            run.suite.clone(),
            run.phase.as_str().to_string(),
            run.created_at.clone(),
        );
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO suite_runs (id, suite, phase, created_at, journal) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET phase = excluded.phase, journal = excluded.journal",
                &[&id, &suite, &phase, &created_at, &journal],
            )?;
            Ok(())
        })
    }

    fn get_suite_run(&self, id: &str) -> Result<Option<SuiteRun>, StoreError> {
        let id = id.to_string();
        self.read(move |c| {
            let Some(r) = c.query_opt("SELECT journal FROM suite_runs WHERE id = $1", &[&id])?
            else {
                return Ok(None);
            };
            let text: String = r.try_get(0)?;
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| corrupt(&format!("suite run {id}"), e))
        })
    }

    fn list_suite_runs(&self, limit: usize) -> Result<Vec<SuiteRunSummary>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        self.read(move |c| {
            let mut out = Vec::new();
            for r in c.query(
                "SELECT id, journal FROM suite_runs ORDER BY seq DESC LIMIT $1",
                &[&limit],
            )? {
                let id: String = r.try_get(0)?;
                let text: String = r.try_get(1)?;
                let run: SuiteRun = serde_json::from_str(&text)
                    .map_err(|e| corrupt(&format!("suite run {id}"), e))?;
                out.push(run.summary_line());
            }
            Ok(out)
        })
    }
}
