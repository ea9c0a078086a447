//! `suite_runs` in SQLite: one row per run, the journal as JSON (table in `SCHEMA`).

use chaoshub_schema::suite::{SuiteRun, SuiteRunSummary};
use rusqlite::{params, OptionalExtension};

use super::{corrupt, offload, SqliteStore};
use crate::store::suite_runs::{taken_over, SuiteRunStore};
use crate::store::StoreError;

impl SuiteRunStore for SqliteStore {
    fn put_suite_run(&self, run: &SuiteRun) -> Result<(), StoreError> {
        offload(|| {
            let journal = serde_json::to_string(run).map_err(|e| corrupt("suite run", e))?;
            let conn = self.lock();
            let changed = conn.execute(
                "INSERT INTO suite_runs (id, suite, phase, created_at, journal) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET phase = excluded.phase, journal = excluded.journal
                 WHERE json_extract(suite_runs.journal, '$.replica') IS ?6",
                params![run.id, run.suite, run.phase.as_str(), run.created_at, journal, run.replica],
            )?;
            if changed == 0 {
                return Err(taken_over(&run.id));
            }
            Ok(())
        })
    }

    fn claim_suite_run(&self, run: &SuiteRun, previous: Option<&str>) -> Result<bool, StoreError> {
        offload(|| {
            let journal = serde_json::to_string(run).map_err(|e| corrupt("suite run", e))?;
            let conn = self.lock();
            let changed = conn.execute(
                "UPDATE suite_runs SET phase = ?2, journal = ?3
                 WHERE id = ?1 AND json_extract(journal, '$.replica') IS ?4",
                params![run.id, run.phase.as_str(), journal, previous],
            )?;
            Ok(changed == 1)
        })
    }

    fn running_suite_runs(&self) -> Result<Vec<SuiteRun>, StoreError> {
        offload(|| {
            let conn = self.read()?;
            let mut stmt = conn.prepare(
                "SELECT id, journal FROM suite_runs WHERE phase = 'Running' ORDER BY seq",
            )?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, text) = row?;
                out.push(
                    serde_json::from_str(&text)
                        .map_err(|e| corrupt(&format!("suite run {id}"), e))?,
                );
            }
            Ok(out)
        })
    }

    fn get_suite_run(&self, id: &str) -> Result<Option<SuiteRun>, StoreError> {
        offload(|| {
            let conn = self.read()?;
            let text: Option<String> = conn
                .query_row(
                    "SELECT journal FROM suite_runs WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()?;
            text.map(|t| {
                serde_json::from_str(&t).map_err(|e| corrupt(&format!("suite run {id}"), e))
            })
            .transpose()
        })
    }

    fn list_suite_runs(&self, limit: usize) -> Result<Vec<SuiteRunSummary>, StoreError> {
        offload(|| {
            let conn = self.read()?;
            let mut stmt =
                conn.prepare("SELECT id, journal FROM suite_runs ORDER BY seq DESC LIMIT ?1")?;
            let rows = stmt.query_map(params![limit as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, text) = row?;
                let run: SuiteRun = serde_json::from_str(&text)
                    .map_err(|e| corrupt(&format!("suite run {id}"), e))?;
                out.push(run.summary_line());
            }
            Ok(out)
        })
    }
}
