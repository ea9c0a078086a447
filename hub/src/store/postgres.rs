//! The PostgreSQL store (`store.url = "postgres://…"`), for hubs that share one database.
//!
//! The `Store` trait is synchronous and is called from async handlers, while the synchronous
//! `postgres` client runs a runtime of its own and must not be driven from inside one. So the
//! store owns a few dedicated threads, each with its own connection: a call hands a closure to
//! a free worker and waits for its answer (in [`offload`], like SQLite's calls, so a
//! multi-threaded runtime's worker is not held). A worker whose connection broke reconnects on
//! its next call.
//!
//! Semantics are SQLite's, statement for statement. One difference needs care: SQLite has a
//! single writer, so event ids become visible in order; PostgreSQL hands out identity values
//! to concurrent transactions that may commit in another order, and a reader following
//! `after_id` could skip an event committed late with a smaller id. Every write transaction
//! therefore takes one transaction-scoped advisory lock first ([`WRITE_LOCK`]): writers are
//! serialized as in SQLite, ids are committed in order, and the name check of
//! `insert_experiment` cannot race.

mod agent_auth;
mod auth;
pub mod connection;
mod replication;
pub mod schema;
mod suite_runs;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use chaoshub_schema::api::{
    DesiredState, EnvironmentObject, EventRecord, ExperimentStatus, HaltStatus,
};
use postgres::types::ToSql;
use postgres::{Client, GenericClient, Row, Statement, Transaction};

use super::sqlite::{desired_as_str, offload};
use super::{
    EventFilter, ExperimentCount, ExperimentFilter, ExperimentRow, NewEvent, Store, StoreError,
};
use connection::PgTarget;

/// Transaction advisory lock taken by every write (see the module's doc).
const WRITE_LOCK: i64 = 0x6368_616f_7302;
const TERMINAL: &str = "('Finished','Failed','Aborted')";
/// Connections (and threads) per store.
const WORKERS: usize = 4;

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

pub struct PgStore {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    target: Arc<PgTarget>,
    /// Names this store's own notifications, so its listener skips them (`replication`).
    origin: String,
    /// Ends the change listener's thread when the store is dropped.
    listening: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.target.display)
            .finish()
    }
}

/// A connection unused for this long is checked (one round trip) before its next call, so a
/// database restart or a connection a proxy dropped meanwhile costs no failed call.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// One worker thread's connection, opened on first use and again after it broke.
struct Worker {
    target: Arc<PgTarget>,
    client: Option<Client>,
    last_used: std::time::Instant,
}

impl Worker {
    fn broken(&self) -> bool {
        self.client.as_ref().is_some_and(|c| c.is_closed())
    }

    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.broken() {
            self.client = None;
        }
        let idle = self.last_used.elapsed() >= IDLE_CHECK;
        self.last_used = std::time::Instant::now();
        if idle {
            if let Some(client) = &mut self.client {
                if client.is_valid(std::time::Duration::from_secs(2)).is_err() {
                    tracing::info!(url = %self.target.display, "PostgreSQL connection lost while idle; reconnecting");
                    self.client = None;
                }
            }
        }
        if self.client.is_none() {
            // Statements of a previous connection do not exist on the new one.
            PREPARED.with(|m| m.borrow_mut().clear());
            let mut client = self.target.connect()?;
            // A replica frozen or cut off in the middle of a transaction must not hold the write
            // lock (and so every other replica's writes) for longer than this.
            client.batch_execute("SET idle_in_transaction_session_timeout = '10s'")?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }
}

thread_local! {
    /// Statements prepared on this worker thread's connection, by their SQL. Only fixed
    /// statements go here (a query built from a filter would grow it without bound); a
    /// parameterized query prepared once costs one round trip a call instead of two.
    static PREPARED: RefCell<HashMap<String, Statement>> = RefCell::new(HashMap::new());
}

/// `sql` prepared on this thread's connection, once per connection.
fn prepared(c: &mut impl GenericClient, sql: &str) -> Result<Statement, StoreError> {
    if let Some(statement) = PREPARED.with(|m| m.borrow().get(sql).cloned()) {
        return Ok(statement);
    }
    let statement = c.prepare(sql)?;
    PREPARED.with(|m| m.borrow_mut().insert(sql.to_string(), statement.clone()));
    Ok(statement)
}

/// Whether `e` means the connection is gone (closed, or the server ending it: an administrator,
/// a shutdown, a restart still in progress), so the call may be tried on a new one.
fn connection_lost(e: &StoreError) -> bool {
    use postgres::error::SqlState;
    match e {
        StoreError::Postgres(e) => {
            e.is_closed()
                || e.code().is_some_and(|code| {
                    [
                        SqlState::ADMIN_SHUTDOWN,
                        SqlState::CRASH_SHUTDOWN,
                        SqlState::CANNOT_CONNECT_NOW,
                    ]
                    .contains(code)
                })
        }
        _ => false,
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl PgStore {
    /// Connects to `url`, applies the schema migrations this binary has and the database lacks,
    /// and refuses a database whose schema is newer than this binary knows.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let target = Arc::new(PgTarget::parse(url)?);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for n in 0..WORKERS {
            let rx = Arc::clone(&rx);
            let mut worker = Worker {
                target: Arc::clone(&target),
                client: None,
                last_used: std::time::Instant::now(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("chaoshub-pg-{n}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for the next job.
                    let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    job(&mut worker);
                })
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot start a store thread: {e}"))
                })?;
            threads.push(handle);
        }
        let store = Self {
            jobs: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
            target,
            origin: format!("{:016x}", rand::random::<u64>()),
            listening: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        };
        let found = store.call(schema::migrate)?;
        tracing::info!(
            url = %store.target.display,
            schema_found = found,
            schema = schema::known_version(),
            "PostgreSQL store ready"
        );
        Ok(store)
    }

    /// The URL without its password.
    pub fn display_url(&self) -> &str {
        &self.target.display
    }

    /// Runs `f` on a worker's connection and waits for its answer.
    pub(in crate::store) fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.on_worker(move |worker| f(worker.client()?))
    }

    /// Like [`Self::call`] for a call that may safely run twice (a read, an idempotent write):
    /// when it fails because the connection broke, it runs once more on a new connection.
    fn read<R: Send + 'static>(
        &self,
        f: impl Fn(&mut Client) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.on_worker(move |worker| match f(worker.client()?) {
            Err(e) if worker.broken() || connection_lost(&e) => {
                worker.client = None;
                f(worker.client()?)
            }
            other => other,
        })
    }

    fn on_worker<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Worker) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |worker: &mut Worker| {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(worker)));
            let result = match result {
                Ok(r) => r,
                Err(_) => {
                    // The connection may be mid-transaction: start over with a new one.
                    worker.client = None;
                    Err(StoreError::Unavailable(
                        "a PostgreSQL store call panicked".into(),
                    ))
                }
            };
            // The server's "terminating connection" can arrive before the client has seen the
            // socket close: either way this connection is done.
            if worker.broken() || result.as_ref().err().is_some_and(connection_lost) {
                worker.client = None;
            }
            let _ = reply_tx.send(result);
        });
        {
            let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            let sender = jobs
                .as_ref()
                .ok_or_else(|| StoreError::Unavailable("the store is closed".into()))?;
            sender
                .send(job)
                .map_err(|_| StoreError::Unavailable("the store's threads have ended".into()))?;
        }
        offload(|| reply_rx.recv())
            .map_err(|_| StoreError::Unavailable("the store's thread ended".into()))?
    }

    /// Runs `f` in a write transaction that holds [`WRITE_LOCK`]. Inside an engine pass the
    /// transaction first checks the pass's fence (`store::fence`) against the lease, so a
    /// replica that lost the lease writes nothing.
    fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.write_notifying(None, f)
    }

    /// [`Self::write`], telling the other replicas what changed (`NOTIFY`, sent at commit).
    fn write_notifying<R: Send + 'static>(
        &self,
        change: Option<super::StoreChange>,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        // Read here, on the caller's task: the worker thread has no task-local.
        let fence = super::fence::current();
        let notice = change.map(|c| replication::payload(&self.origin, &c));
        self.call(move |client| {
            let mut tx = client.transaction()?;
            // A simple query: one round trip, where a parameterized one takes two.
            tx.batch_execute(&format!("SELECT pg_advisory_xact_lock({WRITE_LOCK})"))?;
            if let Some(fence) = &fence {
                replication::check_fence(&mut tx, fence)?;
            }
            let out = f(&mut tx)?;
            if let Some(notice) = &notice {
                tx.execute("SELECT pg_notify($1, $2)", &[&replication::CHANNEL, notice])?;
            }
            tx.commit()?;
            Ok(out)
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listening
            .store(false, std::sync::atomic::Ordering::SeqCst);
        // Closing the channel ends each worker after its current job; their connections close.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

const EXPERIMENT_COLUMNS: &str =
    "seq, uid, name, namespace, kind, api_version, metadata, spec, status, archived, desired, desired_reason";

fn desired_from_str(s: &str) -> Option<DesiredState> {
    match s {
        "Run" => Some(DesiredState::Run),
        "Pause" => Some(DesiredState::Pause),
        "Stop" => Some(DesiredState::Stop),
        _ => None,
    }
}

fn decode_experiment(row: &Row) -> Result<ExperimentRow, StoreError> {
    let uid: String = row.try_get(1)?;
    let status: String = row.try_get(8)?;
    let desired: String = row.try_get(10)?;
    let mut status = serde_json::from_str::<ExperimentStatus>(&status)
        .map_err(|e| corrupt(&format!("experiment {uid} status"), e))?;
    // As in SQLite: intent and archive flag have their own columns, so an engine status write
    // never overwrites a pause, stop or delete that arrived meanwhile.
    status.archived = row.try_get(9)?;
    status.desired = desired_from_str(&desired)
        .ok_or_else(|| corrupt(&format!("experiment {uid} desired state"), &desired))?;
    let metadata: String = row.try_get(6)?;
    let spec: String = row.try_get(7)?;
    Ok(ExperimentRow {
        seq: row.try_get(0)?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| corrupt(&format!("experiment {uid} metadata"), e))?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| corrupt(&format!("experiment {uid} spec"), e))?,
        status,
        desired_reason: row.try_get(11)?,
        name: row.try_get(2)?,
        namespace: row.try_get(3)?,
        kind: row.try_get(4)?,
        api_version: row.try_get(5)?,
        uid,
    })
}

fn insert_events(
    tx: &mut impl GenericClient,
    events: &[NewEvent],
) -> Result<Vec<EventRecord>, StoreError> {
    let mut out = Vec::with_capacity(events.len());
    if events.is_empty() {
        return Ok(out);
    }
    let stmt = prepared(
        tx,
        "INSERT INTO events (time, name, experiment_uid, environment, target, message, attributes) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )?;
    for event in events {
        let time = crate::time::now_rfc3339();
        let attributes =
            serde_json::to_string(&event.attributes).map_err(|e| corrupt("event attributes", e))?;
        let id: i64 = tx
            .query_one(
                &stmt,
                &[
                    &time,
                    &event.name,
                    &event.experiment_uid,
                    &event.environment,
                    &event.target,
                    &event.message,
                    &attributes,
                ],
            )?
            .try_get(0)?;
        out.push(EventRecord {
            id,
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

/// Parameters built up with a query (`$n` in order).
#[derive(Default)]
struct Params(Vec<Box<dyn ToSql + Sync + Send>>);

impl Params {
    /// Adds a value; returns its placeholder.
    fn push(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

impl Store for PgStore {
    fn insert_experiment(
        &self,
        row: &ExperimentRow,
        event: &NewEvent,
    ) -> Result<(ExperimentRow, Vec<EventRecord>), StoreError> {
        let row = row.clone();
        let event = event.clone();
        self.write_notifying(Some(super::StoreChange::Experiment(row.uid.clone())), move |tx| {
            let live = prepared(
                tx,
                &format!(
                    "SELECT uid, phase FROM experiments WHERE namespace = $1 AND kind = $2 AND name = $3 AND phase NOT IN {TERMINAL}"
                ),
            )?;
            let existing = tx.query_opt(&live, &[&row.namespace, &row.kind, &row.name])?;
            if let Some(existing) = existing {
                let uid: String = existing.try_get(0)?;
                let phase: String = existing.try_get(1)?;
                return Err(StoreError::Conflict(format!(
                    "{} {}/{} already exists and is {phase} (uid {uid}); stop or delete it first, or use metadata.generateName",
                    row.kind, row.namespace, row.name
                )));
            }
            // A finished namesake is archived so the name can be reused, as a re-run in CI expects.
            let namesakes = prepared(
                tx,
                "SELECT uid, status FROM experiments WHERE namespace = $1 AND kind = $2 AND name = $3 AND NOT archived",
            )?;
            let finished = tx.query(&namesakes, &[&row.namespace, &row.kind, &row.name])?;
            for r in finished {
                let uid: String = r.try_get(0)?;
                let status: String = r.try_get(1)?;
                let mut status: ExperimentStatus = serde_json::from_str(&status)
                    .map_err(|e| corrupt(&format!("experiment {uid} status"), e))?;
                status.archived = true;
                let text = serde_json::to_string(&status).map_err(|e| corrupt("status", e))?;
                tx.execute(
                    "UPDATE experiments SET archived = TRUE, status = $2 WHERE uid = $1",
                    &[&uid, &text],
                )?;
            }
            let metadata =
                serde_json::to_string(&row.metadata).map_err(|e| corrupt("metadata", e))?;
            let spec = serde_json::to_string(&row.spec).map_err(|e| corrupt("spec", e))?;
            let status = serde_json::to_string(&row.status).map_err(|e| corrupt("status", e))?;
            let insert = prepared(
                tx,
                "INSERT INTO experiments (uid, name, namespace, kind, api_version, environment, phase, archived, metadata, spec, status, desired) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING seq",
            )?;
            let seq: i64 = tx
                .query_one(
                    &insert,
                    &[
                        &row.uid,
                        &row.name,
                        &row.namespace,
                        &row.kind,
                        &row.api_version,
                        &row.status.environment,
                        &row.status.phase.as_str(),
                        &row.status.archived,
                        &metadata,
                        &spec,
                        &status,
                        &desired_as_str(row.status.desired),
                    ],
                )?
                .try_get(0)?;
            let events = insert_events(tx, std::slice::from_ref(&event))?;
            let mut stored = row;
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
        let uid = uid.to_string();
        let phase = status.phase.as_str();
        let text = serde_json::to_string(status).map_err(|e| corrupt("status", e))?;
        let events = events.to_vec();
        self.write_notifying(
            Some(super::StoreChange::Experiment(uid.clone())),
            move |tx| {
                let update = prepared(
                    tx,
                    "UPDATE experiments SET phase = $2, status = $3 WHERE uid = $1",
                )?;
                let changed = tx.execute(&update, &[&uid, &phase, &text])?;
                if changed == 0 {
                    return Err(StoreError::Corrupt(format!(
                        "experiment {uid} vanished from the store"
                    )));
                }
                insert_events(tx, &events)
            },
        )
    }

    fn set_desired(
        &self,
        uid: &str,
        desired: DesiredState,
        reason: Option<&str>,
        events: &[NewEvent],
    ) -> Result<Vec<EventRecord>, StoreError> {
        let uid = uid.to_string();
        let desired = desired_as_str(desired);
        let reason = reason.map(str::to_string);
        let events = events.to_vec();
        self.write_notifying(Some(super::StoreChange::Experiment(uid.clone())), move |tx| {
            // A stop is final: only a stop may overwrite a stop (see SQLite's).
            let update = prepared(
                tx,
                "UPDATE experiments SET desired = $2, desired_reason = $3 WHERE uid = $1 AND (desired <> 'Stop' OR $2 = 'Stop')",
            )?;
            let changed = tx.execute(&update, &[&uid, &desired, &reason])?;
            if changed == 0 {
                return Err(StoreError::Conflict(format!(
                    "experiment {uid} is being stopped; it can no longer be paused or resumed"
                )));
            }
            insert_events(tx, &events)
        })
    }

    fn set_archived(&self, uid: &str, events: &[NewEvent]) -> Result<Vec<EventRecord>, StoreError> {
        let uid = uid.to_string();
        let events = events.to_vec();
        self.write_notifying(
            Some(super::StoreChange::Experiment(uid.clone())),
            move |tx| {
                tx.execute(
                    "UPDATE experiments SET archived = TRUE WHERE uid = $1",
                    &[&uid],
                )?;
                insert_events(tx, &events)
            },
        )
    }

    fn get_experiment(&self, uid: &str) -> Result<Option<ExperimentRow>, StoreError> {
        let uid = uid.to_string();
        self.read(move |c| {
            let select = prepared(
                c,
                &format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE uid = $1"),
            )?;
            c.query_opt(&select, &[&uid])?
                .as_ref()
                .map(decode_experiment)
                .transpose()
        })
    }

    fn find_experiment_by_name(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ExperimentRow>, StoreError> {
        let (namespace, name) = (namespace.to_string(), name.to_string());
        self.read(move |c| {
            c.query_opt(
                &format!(
                    "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE namespace = $1 AND name = $2 ORDER BY archived ASC, seq DESC LIMIT 1"
                ),
                &[&namespace, &name],
            )?
            .as_ref()
            .map(decode_experiment)
            .transpose()
        })
    }

    fn list_experiments(
        &self,
        filter: &ExperimentFilter,
    ) -> Result<Vec<ExperimentRow>, StoreError> {
        let mut params = Params::default();
        let mut sql = format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE archived = {}",
            params.push(filter.archived)
        );
        for (column, value) in [
            ("phase", &filter.phase),
            ("kind", &filter.kind),
            ("namespace", &filter.namespace),
            ("environment", &filter.environment),
        ] {
            if let Some(value) = value {
                sql.push_str(&format!(" AND {column} = {}", params.push(value.clone())));
            }
        }
        if let Some(before) = filter.before_seq {
            sql.push_str(&format!(" AND seq < {}", params.push(before)));
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT {}", filter.limit.max(1)));
        self.read(move |c| {
            c.query(&sql, &params.refs())?
                .iter()
                .map(decode_experiment)
                .collect()
        })
    }

    fn active_experiments(&self) -> Result<Vec<ExperimentRow>, StoreError> {
        self.read(|c| {
            c.query(
                &format!(
                    "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE phase NOT IN {TERMINAL} ORDER BY seq ASC"
                ),
                &[],
            )?
            .iter()
            .map(decode_experiment)
            .collect()
        })
    }

    fn count_experiments(&self) -> Result<Vec<ExperimentCount>, StoreError> {
        self.read(|c| {
            c.query(
                "SELECT phase, kind, environment, COUNT(*) FROM experiments WHERE NOT archived GROUP BY phase, kind, environment ORDER BY phase, kind, environment",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(ExperimentCount {
                    phase: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    environment: r.try_get(2)?,
                    count: r.try_get::<_, i64>(3)?.max(0) as u64,
                })
            })
            .collect()
        })
    }

    fn append_events(&self, events: &[NewEvent]) -> Result<Vec<EventRecord>, StoreError> {
        let events = events.to_vec();
        self.write_notifying(Some(super::StoreChange::Events(0)), move |tx| {
            insert_events(tx, &events)
        })
    }

    fn prune_events(&self, older_than: &str, max_rows: u64) -> Result<u64, StoreError> {
        let older_than = older_than.to_string();
        self.write(move |tx| {
            let kept = format!(
                "(experiment_uid IS NULL OR experiment_uid NOT IN \
                 (SELECT uid FROM experiments WHERE phase NOT IN {TERMINAL}))"
            );
            let mut deleted = tx.execute(
                &format!("DELETE FROM events WHERE time < $1 AND {kept}"),
                &[&older_than],
            )?;
            if max_rows > 0 {
                // The id of the newest event beyond the cap, if there are more than it allows.
                let cut = tx.query_opt(
                    "SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET $1",
                    &[&(max_rows.min(i64::MAX as u64) as i64)],
                )?;
                if let Some(cut) = cut {
                    let cut: i64 = cut.try_get(0)?;
                    deleted += tx.execute(
                        &format!("DELETE FROM events WHERE id <= $1 AND {kept}"),
                        &[&cut],
                    )?;
                }
            }
            Ok(deleted)
        })
    }

    fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
        let mut params = Params::default();
        let mut sql = "SELECT id, time, name, experiment_uid, environment, target, message, attributes FROM events WHERE TRUE".to_string();
        if let Some(uid) = &filter.experiment_uid {
            sql.push_str(&format!(
                " AND experiment_uid = {}",
                params.push(uid.clone())
            ));
        }
        if let Some(after) = filter.after_id {
            sql.push_str(&format!(" AND id > {}", params.push(after)));
        }
        if let Some(since) = &filter.since {
            sql.push_str(&format!(" AND time >= {}", params.push(since.clone())));
        }
        sql.push_str(&format!(" ORDER BY id ASC LIMIT {}", filter.limit.max(1)));
        self.read(move |c| {
            let mut out = Vec::new();
            for r in c.query(&sql, &params.refs())? {
                let id: i64 = r.try_get(0)?;
                let attributes: String = r.try_get(7)?;
                out.push(EventRecord {
                    id,
                    time: r.try_get(1)?,
                    name: r.try_get(2)?,
                    experiment_uid: r.try_get(3)?,
                    environment: r.try_get(4)?,
                    target: r.try_get(5)?,
                    message: r.try_get(6)?,
                    attributes: serde_json::from_str(&attributes)
                        .map_err(|e| corrupt(&format!("event {id}"), e))?,
                });
            }
            Ok(out)
        })
    }

    fn put_environment(&self, env: &EnvironmentObject, replace: bool) -> Result<bool, StoreError> {
        let name = env.metadata.name.clone().unwrap_or_default();
        let text = serde_json::to_string(env).map_err(|e| corrupt("environment", e))?;
        self.write_notifying(Some(super::StoreChange::Other), move |tx| {
            let existed = tx
                .query_opt("SELECT 1 FROM environments WHERE name = $1", &[&name])?
                .is_some();
            if existed && !replace {
                return Ok(true);
            }
            tx.execute(
                "INSERT INTO environments (name, object) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET object = excluded.object",
                &[&name, &text],
            )?;
            Ok(existed)
        })
    }

    fn get_environment(&self, name: &str) -> Result<Option<EnvironmentObject>, StoreError> {
        let name = name.to_string();
        self.read(move |c| {
            let Some(r) =
                c.query_opt("SELECT object FROM environments WHERE name = $1", &[&name])?
            else {
                return Ok(None);
            };
            let text: String = r.try_get(0)?;
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| corrupt(&format!("environment {name}"), e))
        })
    }

    fn list_environments(&self) -> Result<Vec<EnvironmentObject>, StoreError> {
        self.read(|c| {
            let mut out = Vec::new();
            for r in c.query("SELECT name, object FROM environments ORDER BY name", &[])? {
                let name: String = r.try_get(0)?;
                let text: String = r.try_get(1)?;
                out.push(
                    serde_json::from_str(&text)
                        .map_err(|e| corrupt(&format!("environment {name}"), e))?,
                );
            }
            Ok(out)
        })
    }

    fn delete_environment(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.write_notifying(Some(super::StoreChange::Other), move |tx| {
            Ok(tx.execute("DELETE FROM environments WHERE name = $1", &[&name])? > 0)
        })
    }

    fn halt_status(&self) -> Result<HaltStatus, StoreError> {
        self.read(
            |c| match c.query_opt("SELECT value FROM settings WHERE key = 'halt'", &[])? {
                Some(r) => {
                    let text: String = r.try_get(0)?;
                    serde_json::from_str(&text).map_err(|e| corrupt("halt setting", e))
                }
                None => Ok(HaltStatus::default()),
            },
        )
    }

    fn set_halt(&self, status: &HaltStatus) -> Result<(), StoreError> {
        let text = serde_json::to_string(status).map_err(|e| corrupt("halt", e))?;
        self.write_notifying(Some(super::StoreChange::Other), move |tx| {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES ('halt', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&text],
            )?;
            Ok(())
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        url: Option<&str>,
        ttl: std::time::Duration,
    ) -> Result<Option<super::LeaseGrant>, StoreError> {
        let (name, holder, url) = (
            name.to_string(),
            holder.to_string(),
            url.map(str::to_string),
        );
        self.write(move |tx| replication::acquire(tx, &name, &holder, url.as_deref(), ttl))
    }

    fn lease_holder(&self, name: &str) -> Result<Option<super::LeaseHolder>, StoreError> {
        let name = name.to_string();
        self.read(move |client| replication::holder(client, &name))
    }

    fn release_lease(&self, name: &str, holder: &str, token: i64) -> Result<(), StoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |tx| replication::release(tx, &name, &holder, token))
    }

    fn put_agent_directory(
        &self,
        upsert: &[chaoshub_schema::api::AgentInfo],
        remove: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut rows = Vec::with_capacity(upsert.len());
        for info in upsert {
            let text = serde_json::to_string(info).map_err(|e| corrupt("agent directory", e))?;
            rows.push((info.environment.clone(), info.name.clone(), text));
        }
        let remove = remove.to_vec();
        self.write(move |tx| replication::publish_agents(tx, &rows, &remove))
    }

    fn agent_directory(
        &self,
        environment: Option<&str>,
    ) -> Result<Vec<chaoshub_schema::api::AgentInfo>, StoreError> {
        let environment = environment.map(str::to_string);
        let texts = self.read(move |client| replication::agents(client, environment.as_deref()))?;
        texts
            .iter()
            .map(|(text, stale)| {
                let mut info: chaoshub_schema::api::AgentInfo =
                    serde_json::from_str(text).map_err(|e| corrupt("agent directory", e))?;
                // No leader has vouched for it lately: its health is unknown, so not healthy.
                if *stale && info.health == "healthy" {
                    info.health = "unhealthy".into();
                }
                Ok(info)
            })
            .collect()
    }

    fn agents_with_credentials(
        &self,
    ) -> Result<Option<std::collections::HashSet<(String, String)>>, StoreError> {
        self.read(|c| {
            let mut out = std::collections::HashSet::new();
            for r in c.query("SELECT environment, name FROM agent_credentials", &[])? {
                out.insert((r.try_get(0)?, r.try_get(1)?));
            }
            Ok(Some(out))
        })
    }

    fn put_console_session(&self, session: &super::StoredSession) -> Result<(), StoreError> {
        let session = session.clone();
        self.write(move |tx| replication::put_session(tx, &session))
    }

    fn console_session(
        &self,
        id_hash: &str,
        idle: std::time::Duration,
    ) -> Result<Option<super::StoredSession>, StoreError> {
        let id_hash = id_hash.to_string();
        self.read(move |client| replication::session(client, &id_hash, idle))
    }

    fn touch_console_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let id_hash = id_hash.to_string();
        self.write(move |tx| replication::touch_session(tx, &id_hash))
    }

    fn delete_console_session(
        &self,
        id_hash: &str,
        idle: std::time::Duration,
    ) -> Result<(), StoreError> {
        let id_hash = id_hash.to_string();
        self.write(move |tx| replication::delete_session(tx, &id_hash, idle))
    }

    fn prune_liveness_leases(&self, grace: std::time::Duration) -> Result<u64, StoreError> {
        self.write(move |tx| replication::prune_liveness(tx, grace))
    }

    fn watch_changes(
        &self,
        sink: Arc<dyn Fn(super::StoreChange) + Send + Sync>,
    ) -> Result<(), StoreError> {
        replication::listen(
            Arc::clone(&self.target),
            self.origin.clone(),
            Arc::clone(&self.listening),
            sink,
        )
    }
}
