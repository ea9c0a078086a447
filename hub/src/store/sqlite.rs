//! The embedded SQLite store (WAL), the zero-setup default.

use std::path::Path;

use chaoshub_schema::api::{
    DesiredState, EnvironmentObject, EventRecord, ExperimentStatus, HaltStatus,
};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    EventFilter, ExperimentCount, ExperimentFilter, ExperimentRow, NewEvent, Store, StoreError,
};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS experiments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    namespace TEXT NOT NULL,
    kind TEXT NOT NULL,
    api_version TEXT NOT NULL,
    environment TEXT NOT NULL,
    phase TEXT NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,
    desired TEXT NOT NULL DEFAULT 'Run',
    desired_reason TEXT,
    metadata TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS experiments_phase ON experiments(phase);
CREATE INDEX IF NOT EXISTS experiments_name ON experiments(namespace, name);
-- The experiment list (`list_experiments`: newest first, archived or not, at most one page).
-- Each index holds the list's order (seq) right after its filter, so a page is read from the
-- newest entry on and the reading stops when the page is full; the other filter columns
-- follow, so a combination of filters is checked in the index without reading the rows it
-- rejects. `list_experiments` names the index to use (`list_index`).
CREATE INDEX IF NOT EXISTS experiments_list ON experiments(archived, seq, phase, kind, namespace, environment);
CREATE INDEX IF NOT EXISTS experiments_list_kind ON experiments(archived, kind, seq, phase, namespace, environment);
CREATE INDEX IF NOT EXISTS experiments_list_environment ON experiments(archived, environment, seq, phase, kind, namespace);
CREATE INDEX IF NOT EXISTS experiments_list_namespace ON experiments(archived, namespace, seq, phase, kind, environment);
CREATE INDEX IF NOT EXISTS experiments_list_phase ON experiments(archived, phase, seq, kind, namespace, environment);
-- Experiments the engine may still have work for (`active_experiments`, the events the
-- retention keeps): a few rows however many have ended. SQLite uses a partial index for a
-- query whose WHERE has the index's condition word for word, as those queries do.
CREATE INDEX IF NOT EXISTS experiments_active ON experiments(seq) WHERE phase NOT IN ('Finished','Failed','Aborted');
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    name TEXT NOT NULL,
    experiment_uid TEXT,
    environment TEXT,
    target TEXT,
    message TEXT NOT NULL,
    attributes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_experiment ON events(experiment_uid, id);
-- `?since=` on the event list and stream, and the retention's `DELETE … WHERE time < ?`.
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE TABLE IF NOT EXISTS environments (
    name TEXT PRIMARY KEY,
    object TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS suite_runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    suite TEXT NOT NULL,
    phase TEXT NOT NULL,
    created_at TEXT NOT NULL,
    journal TEXT NOT NULL
);
"#;

/// Experiments counted by archive flag, phase, kind and environment, kept by triggers in the
/// transaction of every change to an experiment: the Prometheus scrape reads a few rows
/// instead of counting every stored experiment (`count_experiments`). A row whose count falls
/// to 0 stays, and is left out when read. Created with its triggers, and filled from the
/// experiments already stored, in one transaction the first time a store is opened by a hub
/// that has it (`SqliteStore::init`).
const COUNTS_SCHEMA: &str = r#"
CREATE TABLE experiment_counts (
    archived INTEGER NOT NULL,
    phase TEXT NOT NULL,
    kind TEXT NOT NULL,
    environment TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (archived, phase, kind, environment)
) WITHOUT ROWID;
INSERT INTO experiment_counts (archived, phase, kind, environment, count)
    SELECT archived, phase, kind, environment, COUNT(*) FROM experiments
    GROUP BY archived, phase, kind, environment;
CREATE TRIGGER experiment_counts_insert AFTER INSERT ON experiments BEGIN
    INSERT INTO experiment_counts (archived, phase, kind, environment, count)
        VALUES (NEW.archived, NEW.phase, NEW.kind, NEW.environment, 1)
        ON CONFLICT DO UPDATE SET count = count + 1;
END;
CREATE TRIGGER experiment_counts_delete AFTER DELETE ON experiments BEGIN
    UPDATE experiment_counts SET count = count - 1
        WHERE archived = OLD.archived AND phase = OLD.phase AND kind = OLD.kind
          AND environment = OLD.environment;
END;
CREATE TRIGGER experiment_counts_update AFTER UPDATE OF archived, phase, kind, environment
    ON experiments
    WHEN OLD.archived IS NOT NEW.archived OR OLD.phase IS NOT NEW.phase
      OR OLD.kind IS NOT NEW.kind OR OLD.environment IS NOT NEW.environment
BEGIN
    UPDATE experiment_counts SET count = count - 1
        WHERE archived = OLD.archived AND phase = OLD.phase AND kind = OLD.kind
          AND environment = OLD.environment;
    INSERT INTO experiment_counts (archived, phase, kind, environment, count)
        VALUES (NEW.archived, NEW.phase, NEW.kind, NEW.environment, 1)
        ON CONFLICT DO UPDATE SET count = count + 1;
END;
"#;

mod agent_auth;
mod auth;
mod group;
mod suite_runs;

/// The terminal phases, as `experiments_active` (in `SCHEMA`) spells them: the queries that
/// leave them out must say `phase NOT IN {TERMINAL}` word for word to use that index.
const TERMINAL: &str = "('Finished','Failed','Aborted')";

/// The namesakes a new experiment archives. The index is named: left alone, SQLite may take
/// a list index for `archived = 0` and read a fifth of the table on every submission.
const NAMESAKES: &str = "SELECT uid, status FROM experiments INDEXED BY experiments_name WHERE namespace = ?1 AND kind = ?2 AND name = ?3 AND archived = 0";

/// The index `list_experiments` reads: the first filter present of kind, environment,
/// namespace and phase (phase last: most stored experiments share one ended phase), else
/// the list's own. Named rather than left to SQLite, which, with no statistics, may pick the
/// least selective of several equally good-looking indexes.
fn list_index(filter: &ExperimentFilter) -> &'static str {
    if filter.kind.is_some() {
        "experiments_list_kind"
    } else if filter.environment.is_some() {
        "experiments_list_environment"
    } else if filter.namespace.is_some() {
        "experiments_list_namespace"
    } else if filter.phase.is_some() {
        "experiments_list_phase"
    } else {
        "experiments_list"
    }
}

/// How SQLite syncs commits to disk (`store.synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// No fsync per commit (WAL, `synchronous=NORMAL`): survives a killed hub, and may lose
    /// the last commits on power loss.
    Normal,
    /// `synchronous=FULL` for lifecycle transitions (a new experiment, every status change
    /// — the intent stored before an adapter call, the injection recorded after it — the
    /// user's pause/stop/delete, halt-all), `NORMAL` for the rest (event appends without a
    /// status change, environments, suite journals). An fsync of the WAL also makes
    /// every earlier commit durable, so nothing a transition depends on is left behind.
    Lifecycle,
    /// `synchronous=FULL` for every commit.
    Full,
}

impl Durability {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "normal" => Some(Self::Normal),
            "lifecycle" => Some(Self::Lifecycle),
            "full" => Some(Self::Full),
            _ => None,
        }
    }
}

pub struct SqliteStore {
    /// The writer connection with its group commit, and the read connections.
    group: group::GroupCommit,
}

/// Runs a synchronous SQLite call so that it never holds up an async runtime worker: on a
/// multi-threaded runtime the worker hands its other tasks to the runtime for the duration
/// (`block_in_place`), so a slow disk or a busy lock costs only this task. Elsewhere (no
/// runtime, a current-thread runtime in tests, a blocking thread) it simply runs.
pub(super) fn offload<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn now() -> String {
    crate::time::now_rfc3339()
}

impl SqliteStore {
    /// Opens (creating) `<data_dir>/chaoshub.db`.
    pub fn open(data_dir: &Path, synchronous: &str) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join("chaoshub.db");
        let conn = Connection::open(&path)?;
        Self::init(conn, synchronous, Some(path))
    }

    /// An in-memory store for tests and benchmarks.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?, "normal", None)
    }

    fn init(
        mut conn: Connection,
        synchronous: &str,
        path: Option<std::path::PathBuf>,
    ) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let durability = Durability::parse(synchronous).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "store.synchronous {synchronous:?} is not one of normal, lifecycle, full"
            ))
        })?;
        conn.pragma_update(None, "synchronous", group::initial_synchronous(durability))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(auth::AUTH_SCHEMA)?;
        conn.execute_batch(agent_auth::SCHEMA)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let counted: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'experiment_counts')",
            [],
            |r| r.get(0),
        )?;
        if !counted {
            tx.execute_batch(COUNTS_SCHEMA)?;
        }
        tx.commit()?;
        Ok(Self {
            group: group::GroupCommit::new(conn, durability, path),
        })
    }

    pub fn durability(&self) -> Durability {
        self.group.durability()
    }

    /// One lifecycle transition, committed with `synchronous=FULL` unless the store was
    /// opened `normal` (see [`Durability`]); concurrent writes share one commit
    /// (`group.rs`), and this returns only once the transition is durable.
    fn transition<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        offload(|| self.group.write(true, f))
    }

    /// A write without a status change (events, audit entries, last-used times), committed
    /// with the store's own `synchronous` setting, sharing commits like transitions.
    fn batched<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        offload(|| self.group.write(false, f))
    }

    /// The writer connection alone (any open batch committed first), for the writes that
    /// run their own transaction.
    fn lock(&self) -> group::Exclusive<'_> {
        self.group.exclusive()
    }

    /// A connection that sees only committed data; reads never hold up writes.
    fn read(&self) -> Result<group::Reader<'_>, StoreError> {
        self.group.read()
    }

    /// Transactions committed and writes made durable through group commit so far.
    pub fn commit_stats(&self) -> (u64, u64) {
        let s = &self.group.stats;
        (
            s.commits.load(std::sync::atomic::Ordering::Relaxed),
            s.writes.load(std::sync::atomic::Ordering::Relaxed),
        )
    }
}

struct RawExperiment {
    seq: i64,
    uid: String,
    name: String,
    namespace: String,
    kind: String,
    api_version: String,
    metadata: String,
    spec: String,
    status: String,
    archived: bool,
    desired: String,
    desired_reason: Option<String>,
}

fn row_to_experiment(row: &Row<'_>) -> rusqlite::Result<RawExperiment> {
    Ok(RawExperiment {
        seq: row.get(0)?,
        uid: row.get(1)?,
        name: row.get(2)?,
        namespace: row.get(3)?,
        kind: row.get(4)?,
        api_version: row.get(5)?,
        metadata: row.get(6)?,
        spec: row.get(7)?,
        status: row.get(8)?,
        archived: row.get(9)?,
        desired: row.get(10)?,
        desired_reason: row.get(11)?,
    })
}

fn desired_from_str(s: &str) -> Option<DesiredState> {
    match s {
        "Run" => Some(DesiredState::Run),
        "Pause" => Some(DesiredState::Pause),
        "Stop" => Some(DesiredState::Stop),
        _ => None,
    }
}

pub(super) fn desired_as_str(d: DesiredState) -> &'static str {
    match d {
        DesiredState::Run => "Run",
        DesiredState::Pause => "Pause",
        DesiredState::Stop => "Stop",
    }
}

fn decode_experiment(raw: RawExperiment) -> Result<ExperimentRow, StoreError> {
    let RawExperiment {
        seq,
        uid,
        name,
        namespace,
        kind,
        api_version,
        metadata,
        spec,
        status,
        archived,
        desired,
        desired_reason,
    } = raw;
    let mut status = serde_json::from_str::<ExperimentStatus>(&status)
        .map_err(|e| corrupt(&format!("experiment {uid} status"), e))?;
    // The user's intent and the archive flag live in their own columns so the engine's status
    // writes can never overwrite a pause, stop or delete that arrived meanwhile.
    status.archived = archived;
    status.desired = desired_from_str(&desired)
        .ok_or_else(|| corrupt(&format!("experiment {uid} desired state"), &desired))?;
    Ok(ExperimentRow {
        seq,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| corrupt(&format!("experiment {uid} metadata"), e))?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| corrupt(&format!("experiment {uid} spec"), e))?,
        status,
        desired_reason,
        uid,
        name,
        namespace,
        kind,
        api_version,
    })
}

const EXPERIMENT_COLUMNS: &str =
    "seq, uid, name, namespace, kind, api_version, metadata, spec, status, archived, desired, desired_reason";

fn insert_events(conn: &Connection, events: &[NewEvent]) -> Result<Vec<EventRecord>, StoreError> {
    let mut out = Vec::with_capacity(events.len());
    let mut stmt = conn.prepare_cached(
        "INSERT INTO events (time, name, experiment_uid, environment, target, message, attributes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for event in events {
        let time = now();
        let attributes =
            serde_json::to_string(&event.attributes).map_err(|e| corrupt("event attributes", e))?;
        stmt.execute(params![
            time,
            event.name,
            event.experiment_uid,
            event.environment,
            event.target,
            event.message,
            attributes
        ])?;
        out.push(EventRecord {
            id: conn.last_insert_rowid(),
            time,
            name: event.name.clone(),
            experiment_uid: event.experiment_uid.clone(),
            environment: event.environment.clone(),
            target: event.target.clone(),
            message: event.message.clone(),
            attributes: event.attributes.clone(),
        });
    }
    Ok(out)
}

impl Store for SqliteStore {
    fn insert_experiment(
        &self,
        row: &ExperimentRow,
        event: &NewEvent,
    ) -> Result<(ExperimentRow, Vec<EventRecord>), StoreError> {
        self.transition(|tx| {
            let existing: Option<(String, String)> = tx
                .query_row(
                    &format!(
                        "SELECT uid, phase FROM experiments WHERE namespace = ?1 AND kind = ?2 AND name = ?3 AND phase NOT IN {TERMINAL}"
                    ),
                    params![row.namespace, row.kind, row.name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((uid, phase)) = existing {
                return Err(StoreError::Conflict(format!(
                    "{} {}/{} already exists and is {phase} (uid {uid}); stop or delete it first, or use metadata.generateName",
                    row.kind, row.namespace, row.name
                )));
            }
            // A finished namesake is archived so the name can be reused, as a re-run in CI expects.
            let finished: Vec<(String, String)> = {
                let mut stmt = tx.prepare(
                    NAMESAKES,
                )?;
                let rows = stmt.query_map(params![row.namespace, row.kind, row.name], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
                rows.collect::<Result<_, _>>()?
            };
            for (uid, status) in finished {
                let mut status: ExperimentStatus = serde_json::from_str(&status)
                    .map_err(|e| corrupt(&format!("experiment {uid} status"), e))?;
                status.archived = true;
                let text = serde_json::to_string(&status).map_err(|e| corrupt("status", e))?;
                tx.execute(
                    "UPDATE experiments SET archived = 1, status = ?2 WHERE uid = ?1",
                    params![uid, text],
                )?;
            }
            let metadata = serde_json::to_string(&row.metadata).map_err(|e| corrupt("metadata", e))?;
            let spec = serde_json::to_string(&row.spec).map_err(|e| corrupt("spec", e))?;
            let status = serde_json::to_string(&row.status).map_err(|e| corrupt("status", e))?;
            tx.execute(
                "INSERT INTO experiments (uid, name, namespace, kind, api_version, environment, phase, archived, metadata, spec, status, desired) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    row.uid,
                    row.name,
                    row.namespace,
                    row.kind,
                    row.api_version,
                    row.status.environment,
                    row.status.phase.as_str(),
                    row.status.archived,
                    metadata,
                    spec,
                    status,
                    desired_as_str(row.status.desired)
                ],
            )?;
            let seq = tx.last_insert_rowid();
            let events = insert_events(tx, std::slice::from_ref(event))?;
            let mut stored = row.clone();
            stored.seq = seq;
            Ok((stored, events))
        })
    }

    fn update_status(
        &self,
        uid: &str,
        status: &ExperimentStatus,
        events: &[NewEvent],
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.transition(|tx| {
            let text = serde_json::to_string(status).map_err(|e| corrupt("status", e))?;
            let changed = tx.execute(
                "UPDATE experiments SET phase = ?2, status = ?3 WHERE uid = ?1",
                params![uid, status.phase.as_str(), text],
            )?;
            if changed == 0 {
                return Err(StoreError::Corrupt(format!(
                    "experiment {uid} vanished from the store"
                )));
            }
            let records = insert_events(tx, events)?;
            Ok(records)
        })
    }

    fn set_desired(
        &self,
        uid: &str,
        desired: DesiredState,
        reason: Option<&str>,
        events: &[NewEvent],
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.transition(|tx| {
            // A stop is final: a pause or resume racing with it (or with halt-all) must not undo
            // it, so only a stop may overwrite a stop.
            let changed = tx.execute(
                "UPDATE experiments SET desired = ?2, desired_reason = ?3 WHERE uid = ?1 AND (desired <> 'Stop' OR ?2 = 'Stop')",
                params![uid, desired_as_str(desired), reason],
            )?;
            if changed == 0 {
                return Err(StoreError::Conflict(format!(
                    "experiment {uid} is being stopped; it can no longer be paused or resumed"
                )));
            }
            let records = insert_events(tx, events)?;
            Ok(records)
        })
    }

    fn set_archived(&self, uid: &str, events: &[NewEvent]) -> Result<Vec<EventRecord>, StoreError> {
        self.transition(|tx| {
            tx.execute(
                "UPDATE experiments SET archived = 1 WHERE uid = ?1",
                params![uid],
            )?;
            let records = insert_events(tx, events)?;
            Ok(records)
        })
    }

    fn get_experiment(&self, uid: &str) -> Result<Option<ExperimentRow>, StoreError> {
        offload(|| {
            let conn = self.read()?;
            let raw = conn
                .query_row(
                    &format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE uid = ?1"),
                    params![uid],
                    row_to_experiment,
                )
                .optional()?;
            raw.map(decode_experiment).transpose()
        })
    }

    fn find_experiment_by_name(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ExperimentRow>, StoreError> {
        offload(|| {
            let conn = self.read()?;
            let raw = conn
                .query_row(
                    &format!(
                        "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE namespace = ?1 AND name = ?2 ORDER BY archived ASC, seq DESC LIMIT 1"
                    ),
                    params![namespace, name],
                    row_to_experiment,
                )
                .optional()?;
            raw.map(decode_experiment).transpose()
        })
    }

    fn list_experiments(
        &self,
        filter: &ExperimentFilter,
    ) -> Result<Vec<ExperimentRow>, StoreError> {
        offload(|| {
            let conn = self.read()?;
            let (sql, args) = list_query(filter);
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), row_to_experiment)?;
            let raws: Vec<RawExperiment> = rows.collect::<Result<_, _>>()?;
            raws.into_iter().map(decode_experiment).collect()
        })
    }

    fn active_experiments(&self) -> Result<Vec<ExperimentRow>, StoreError> {
        offload(|| {
            let conn = self.read()?;
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE phase NOT IN {TERMINAL} ORDER BY seq ASC"
            ))?;
            let rows = stmt.query_map([], row_to_experiment)?;
            let raws: Vec<RawExperiment> = rows.collect::<Result<_, _>>()?;
            raws.into_iter().map(decode_experiment).collect()
        })
    }

    fn count_experiments(&self) -> Result<Vec<ExperimentCount>, StoreError> {
        offload(|| {
            let conn = self.read()?;
            let mut stmt = conn.prepare_cached(
                "SELECT phase, kind, environment, count FROM experiment_counts WHERE archived = 0 AND count > 0 ORDER BY phase, kind, environment",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(ExperimentCount {
                    phase: r.get(0)?,
                    kind: r.get(1)?,
                    environment: r.get(2)?,
                    count: r.get::<_, i64>(3)?.max(0) as u64,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn append_events(&self, events: &[NewEvent]) -> Result<Vec<EventRecord>, StoreError> {
        self.batched(|conn| insert_events(conn, events))
    }

    fn prune_events(&self, older_than: &str, max_rows: u64) -> Result<u64, StoreError> {
        offload(|| {
            let mut conn = self.lock();
            let tx = conn.transaction()?;
            let kept = format!(
                "(experiment_uid IS NULL OR experiment_uid NOT IN \
                 (SELECT uid FROM experiments WHERE phase NOT IN {TERMINAL}))"
            );
            let mut deleted = tx.execute(
                &format!("DELETE FROM events WHERE time < ?1 AND {kept}"),
                params![older_than],
            )?;
            if max_rows > 0 {
                // The id of the newest event beyond the cap, if there are more than it allows.
                let cut: Option<i64> = tx
                    .query_row(
                        "SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?1",
                        params![max_rows as i64],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(cut) = cut {
                    deleted += tx.execute(
                        &format!("DELETE FROM events WHERE id <= ?1 AND {kept}"),
                        params![cut],
                    )?;
                }
            }
            tx.commit()?;
            Ok(deleted as u64)
        })
    }

    fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
        offload(|| {
            let conn = self.read()?;
            let mut sql = "SELECT id, time, name, experiment_uid, environment, target, message, attributes FROM events WHERE 1=1".to_string();
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(uid) = &filter.experiment_uid {
                args.push(uid.clone().into());
                sql.push_str(&format!(" AND experiment_uid = ?{}", args.len()));
            }
            if let Some(after) = filter.after_id {
                args.push(after.into());
                sql.push_str(&format!(" AND id > ?{}", args.len()));
            }
            if let Some(since) = &filter.since {
                args.push(since.clone().into());
                sql.push_str(&since_clause(args.len()));
            }
            sql.push_str(&format!(" ORDER BY id ASC LIMIT {}", filter.limit.max(1)));
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, time, name, experiment_uid, environment, target, message, attributes) =
                    row?;
                out.push(EventRecord {
                    id,
                    time,
                    name,
                    experiment_uid,
                    environment,
                    target,
                    message,
                    attributes: serde_json::from_str(&attributes)
                        .map_err(|e| corrupt(&format!("event {id}"), e))?,
                });
            }
            Ok(out)
        })
    }

    fn put_environment(&self, env: &EnvironmentObject, replace: bool) -> Result<bool, StoreError> {
        offload(|| {
            let conn = self.lock();
            let name = env.metadata.name.clone().unwrap_or_default();
            let text = serde_json::to_string(env).map_err(|e| corrupt("environment", e))?;
            let existed = conn
                .query_row(
                    "SELECT 1 FROM environments WHERE name = ?1",
                    params![name],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if existed && !replace {
                return Ok(true);
            }
            conn.execute(
                "INSERT INTO environments (name, object) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET object = excluded.object",
                params![name, text],
            )?;
            Ok(existed)
        })
    }

    fn get_environment(&self, name: &str) -> Result<Option<EnvironmentObject>, StoreError> {
        offload(|| {
            let conn = self.read()?;
            let text: Option<String> = conn
                .query_row(
                    "SELECT object FROM environments WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?;
            text.map(|t| {
                serde_json::from_str(&t).map_err(|e| corrupt(&format!("environment {name}"), e))
            })
            .transpose()
        })
    }

    fn list_environments(&self) -> Result<Vec<EnvironmentObject>, StoreError> {
        offload(|| {
            let conn = self.read()?;
            let mut stmt =
                conn.prepare_cached("SELECT name, object FROM environments ORDER BY name")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (name, text) = row?;
                out.push(
                    serde_json::from_str(&text)
                        .map_err(|e| corrupt(&format!("environment {name}"), e))?,
                );
            }
            Ok(out)
        })
    }

    fn delete_environment(&self, name: &str) -> Result<bool, StoreError> {
        offload(|| {
            let conn = self.lock();
            Ok(conn.execute("DELETE FROM environments WHERE name = ?1", params![name])? > 0)
        })
    }

    fn halt_status(&self) -> Result<HaltStatus, StoreError> {
        offload(|| {
            let conn = self.read()?;
            let text: Option<String> = conn
                .query_row("SELECT value FROM settings WHERE key = 'halt'", [], |r| {
                    r.get(0)
                })
                .optional()?;
            match text {
                Some(t) => serde_json::from_str(&t).map_err(|e| corrupt("halt setting", e)),
                None => Ok(HaltStatus::default()),
            }
        })
    }

    fn set_halt(&self, status: &HaltStatus) -> Result<(), StoreError> {
        self.transition(|conn| {
            let text = serde_json::to_string(status).map_err(|e| corrupt("halt", e))?;
            conn.execute(
                "INSERT INTO settings (key, value) VALUES ('halt', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![text],
            )?;
            Ok(())
        })
    }
}

/// The query of one page of `list_experiments`, with its arguments.
fn list_query(filter: &ExperimentFilter) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = format!(
        "SELECT {EXPERIMENT_COLUMNS} FROM experiments INDEXED BY {} WHERE archived = ?1",
        list_index(filter)
    );
    let mut args: Vec<rusqlite::types::Value> = vec![(filter.archived as i64).into()];
    let mut add = |clause: &str, value: rusqlite::types::Value| {
        args.push(value);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    };
    if let Some(phase) = &filter.phase {
        add("phase =", phase.clone().into());
    }
    if let Some(kind) = &filter.kind {
        add("kind =", kind.clone().into());
    }
    if let Some(ns) = &filter.namespace {
        add("namespace =", ns.clone().into());
    }
    if let Some(env) = &filter.environment {
        add("environment =", env.clone().into());
    }
    if let Some(before) = filter.before_seq {
        add("seq <", before.into());
    }
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT {}", filter.limit.max(1)));
    (sql, args)
}

/// `time >= ?n` for the event list, written so that SQLite finds the first matching event
/// through the `events_time` index (forced: left alone, SQLite walks the ids from the oldest
/// to find the minimum) and reads on by id from there: on its own the condition,
/// with `ORDER BY id`, makes SQLite scan the whole log from the oldest event. Exactly the same
/// rows: every event with `time >= ?n` has an id at least the smallest such id.
fn since_clause(n: usize) -> String {
    format!(" AND id >= (SELECT MIN(id) FROM events INDEXED BY events_time WHERE time >= ?{n}) AND time >= ?{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conn: &Connection, sql: &str, args: Vec<rusqlite::types::Value>) -> Vec<String> {
        conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    fn experiment(i: usize, phase: &str, kind: &str, environment: &str) -> ExperimentRow {
        let name = format!("e-{i}");
        ExperimentRow {
            seq: 0,
            uid: format!("uid-{i}"),
            name: name.clone(),
            namespace: ["default", "team-a"][i % 2].into(),
            kind: kind.into(),
            api_version: "chaos-mesh.org/v1alpha1".into(),
            metadata: serde_json::from_value(serde_json::json!({"name": name})).unwrap(),
            spec: serde_json::json!({"action": "delay"}),
            status: serde_json::from_value(serde_json::json!({
                "phase": phase, "desired": "Run", "environment": environment,
                "adapter": "memory", "actions": ["delay"],
                "createdAt": "2026-01-01T00:00:00Z", "matched": 0, "targets": [],
                "archived": false,
            }))
            .unwrap(),
            desired_reason: None,
        }
    }

    /// Every filter of the experiment list, alone, together and with a continue token, reads
    /// its page from an index in the list's order: no scan of the table, no sort.
    #[test]
    fn experiment_lists_read_an_index_in_list_order() {
        let store = SqliteStore::in_memory().unwrap();
        let conn = store.lock();
        let some = |v: &str| Some(v.to_string());
        let mut filters = vec![ExperimentFilter::default()];
        for (phase, kind, namespace, environment) in [
            (some("Failed"), None, None, None),
            (None, some("PodChaos"), None, None),
            (None, None, some("team-a"), None),
            (None, None, None, some("lab")),
            (
                some("Failed"),
                some("PodChaos"),
                some("team-a"),
                some("lab"),
            ),
            (some("Failed"), None, some("team-a"), None),
        ] {
            filters.push(ExperimentFilter {
                phase,
                kind,
                namespace,
                environment,
                ..Default::default()
            });
        }
        for mut filter in filters {
            for (archived, before_seq) in [(false, None), (true, None), (false, Some(1_000))] {
                filter.archived = archived;
                filter.before_seq = before_seq;
                filter.limit = 101;
                let (sql, args) = list_query(&filter);
                let steps = plan(&conn, &sql, args);
                assert!(
                    steps.len() == 1
                        && steps[0].starts_with("SEARCH experiments USING INDEX")
                        && steps[0].contains(list_index(&filter)),
                    "{filter:?}: {steps:?}"
                );
            }
        }
    }

    /// A submission looks its namesakes up by namespace and name, not through a list index.
    #[test]
    fn namesakes_are_found_by_name() {
        let store = SqliteStore::in_memory().unwrap();
        let conn = store.lock();
        let steps = plan(
            &conn,
            NAMESAKES,
            vec![
                "default".to_string().into(),
                "NetworkChaos".to_string().into(),
                "a".to_string().into(),
            ],
        );
        assert!(
            steps.len() == 1 && steps[0].contains("experiments_name (namespace=? AND name=?)"),
            "{steps:?}"
        );
    }

    /// The engine's active experiments and the events the retention keeps are found through
    /// the partial index of experiments not ended, not by reading every stored experiment.
    #[test]
    fn active_experiments_are_read_through_their_index() {
        let store = SqliteStore::in_memory().unwrap();
        let conn = store.lock();
        for sql in [
            format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE phase NOT IN {TERMINAL} ORDER BY seq ASC"),
            format!("SELECT uid FROM experiments WHERE phase NOT IN {TERMINAL}"),
        ] {
            let steps = plan(&conn, &sql, Vec::new());
            assert!(
                steps.iter().all(|s| s.contains("experiments_active") && !s.contains("TEMP B-TREE")),
                "{sql}: {steps:?}"
            );
        }
    }

    /// The counts the triggers keep are what counting the stored experiments gives, through
    /// inserts, status changes, archiving a namesake and a delete; and a store from before
    /// the counts existed has them filled when it is opened.
    #[test]
    fn experiment_counts_follow_every_change_and_are_filled_on_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let counted = |store: &SqliteStore| -> Vec<(String, String, String, u64)> {
            store
                .count_experiments()
                .unwrap()
                .into_iter()
                .map(|c| (c.phase, c.kind, c.environment, c.count))
                .collect()
        };
        let grouped = |store: &SqliteStore| -> Vec<(String, String, String, u64)> {
            let conn = store.lock();
            let mut stmt = conn
                .prepare("SELECT phase, kind, environment, COUNT(*) FROM experiments WHERE archived = 0 GROUP BY phase, kind, environment ORDER BY phase, kind, environment")
                .unwrap();
            stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
        };
        let store = SqliteStore::open(dir.path(), "normal").unwrap();
        let created = |name: &str| NewEvent {
            name: name.into(),
            ..Default::default()
        };
        for i in 0..12 {
            let kind = ["NetworkChaos", "PodChaos"][i % 2];
            let environment = ["lab-a", "lab-b", "lab-c"][i % 3];
            store
                .insert_experiment(&experiment(i, "Running", kind, environment), &created("c"))
                .unwrap();
        }
        assert_eq!(counted(&store), grouped(&store));
        for i in 0..6 {
            let mut row = store.get_experiment(&format!("uid-{i}")).unwrap().unwrap();
            row.status.phase = chaoshub_schema::api::ExperimentPhase::Finished;
            store.update_status(&row.uid, &row.status, &[]).unwrap();
            // A status write in the same phase changes no count.
            store.update_status(&row.uid, &row.status, &[]).unwrap();
        }
        store.set_archived("uid-1", &[]).unwrap();
        // A re-run of an ended experiment archives its namesake.
        let mut rerun = experiment(2, "Pending", "NetworkChaos", "lab-c");
        rerun.uid = "uid-2-again".into();
        store.insert_experiment(&rerun, &created("c")).unwrap();
        store
            .lock()
            .execute("DELETE FROM experiments WHERE uid = 'uid-7'", [])
            .unwrap();
        let expected = grouped(&store);
        assert_eq!(counted(&store), expected);
        assert!(expected.iter().any(|c| c.0 == "Finished"), "{expected:?}");

        // A store written before the counts existed: no table, no triggers.
        store
            .lock()
            .execute_batch(
                "DROP TRIGGER experiment_counts_insert; DROP TRIGGER experiment_counts_delete;
                 DROP TRIGGER experiment_counts_update; DROP TABLE experiment_counts;",
            )
            .unwrap();
        drop(store);
        let store = SqliteStore::open(dir.path(), "normal").unwrap();
        assert_eq!(counted(&store), expected);
        drop(store);
        // Opened again, the counts are neither filled twice nor lost.
        let store = SqliteStore::open(dir.path(), "normal").unwrap();
        assert_eq!(counted(&store), expected);
    }

    /// The event list's `?since=` and the retention's delete use the index on `time`, not a
    /// scan of the whole event log.
    #[test]
    fn time_filters_on_events_use_the_time_index() {
        let store = SqliteStore::in_memory().unwrap();
        let conn = store.lock();
        for sql in [
            format!(
                "EXPLAIN QUERY PLAN SELECT id FROM events WHERE 1=1{} ORDER BY id ASC LIMIT 100",
                since_clause(1)
            ),
            "EXPLAIN QUERY PLAN DELETE FROM events WHERE time < ?1".to_string(),
        ] {
            let plan: Vec<String> = conn
                .prepare(&sql)
                .unwrap()
                .query_map(["2026-01-01T00:00:00Z"], |r| r.get::<_, String>(3))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            assert!(
                plan.iter().any(|step| step.contains("events_time")),
                "{sql}: {plan:?}"
            );
        }
    }
}
