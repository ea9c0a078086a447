//! `suite_runs` in PostgreSQL: one row per run, the journal as JSON text.

use chaoshub_schema::suite::{SuiteRun, SuiteRunSummary};

use super::{corrupt, PgStore};
use crate::store::suite_runs::{taken_over, SuiteRunStore};
use crate::store::StoreError;

impl SuiteRunStore for PgStore {
    fn put_suite_run(&self, run: &SuiteRun) -> Result<(), StoreError> {
        let journal = serde_json::to_string(run).map_err(|e| corrupt("suite run", e))?;
        let (id, suite, phase, created_at, owner) = (
            run.id.clone(),
            run.suite.clone(),
            run.phase.as_str().to_string(),
            run.created_at.clone(),
            run.replica.clone(),
        );
        self.write(move |tx| {
            let changed = tx.execute(
                "INSERT INTO suite_runs (id, suite, phase, created_at, journal) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET phase = excluded.phase, journal = excluded.journal
                 WHERE (suite_runs.journal::jsonb ->> 'replica') IS NOT DISTINCT FROM $6",
                &[&id, &suite, &phase, &created_at, &journal, &owner],
            )?;
            if changed == 0 {
                return Err(taken_over(&id));
            }
            Ok(())
        })
    }

    fn claim_suite_run(&self, run: &SuiteRun, previous: Option<&str>) -> Result<bool, StoreError> {
        let journal = serde_json::to_string(run).map_err(|e| corrupt("suite run", e))?;
        let (id, phase, previous) = (
            run.id.clone(),
            run.phase.as_str().to_string(),
            previous.map(str::to_string),
        );
        self.write(move |tx| {
            let changed = tx.execute(
                "UPDATE suite_runs SET phase = $2, journal = $3
                 WHERE id = $1 AND (journal::jsonb ->> 'replica') IS NOT DISTINCT FROM $4",
                &[&id, &phase, &journal, &previous],
            )?;
            Ok(changed == 1)
        })
    }

    fn running_suite_runs(&self) -> Result<Vec<SuiteRun>, StoreError> {
        self.read(move |c| {
            let mut out = Vec::new();
            for r in c.query(
                "SELECT id, journal FROM suite_runs WHERE phase = 'Running' ORDER BY seq",
                &[],
            )? {
                let id: String = r.try_get(0)?;
                let text: String = r.try_get(1)?;
                out.push(
                    serde_json::from_str(&text)
                        .map_err(|e| corrupt(&format!("suite run {id}"), e))?,
                );
            }
            Ok(out)
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
