//! Persistence: experiments, environments, the event log and the halt switch.
//!
//! The hub owns all state; adapters hold none. The trait keeps the engine and the API
//! independent of the database: SQLite embedded (the default) or PostgreSQL (`store.url`), for
//! hubs that share one database.

pub mod agent_auth;
pub mod auth;
pub mod fence;
pub mod migrate;
pub mod postgres;
mod sqlite;
mod suite_runs;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chaoshub_schema::api::{
    DesiredState, EnvironmentObject, EventRecord, ExperimentObject, ExperimentStatus, HaltStatus,
};
use chaoshub_schema::meta::ObjectMeta;
use serde_json::Value;

pub use agent_auth::AgentAuthStore;
pub use auth::{AuditFilter, AuthStore, NewAudit, TokenRow};
pub use postgres::PgStore;
pub use sqlite::{Durability, SqliteStore};
pub use suite_runs::SuiteRunStore;

/// A console session as a shared store keeps it. The session id itself is not stored (only its
/// SHA-256), and the API token only sealed with a key that lives in the person's cookie, so
/// the database alone yields neither a usable cookie nor a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub id_hash: String,
    /// The API token sealed (ChaCha20-Poly1305, hex); none with `auth.mode = "none"`.
    pub sealed_token: Option<String>,
    pub csrf: String,
    pub name: String,
    pub role: String,
    /// How long ago it was last used (on the database's clock); zero when writing.
    pub idle_for: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Conflict(String),
    /// A write of an engine pass whose lease another replica now holds (`fence`).
    #[error("fenced: {0}")]
    Fenced(String),
    #[error("cannot create data directory {path}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("PostgreSQL error")]
    Postgres(#[from] ::postgres::Error),
    /// `target` is the URL without its password.
    #[error("cannot connect to PostgreSQL at {target}")]
    Connect {
        target: String,
        source: ::postgres::Error,
    },
    #[error("the PostgreSQL database has schema version {found}, newer than this chaoshub knows ({known}); run the chaoshub release that migrated it, or a newer one")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Config(String),
}

/// Opens the store `url` names: `None` (or `sqlite:`, `sqlite:PATH`) is the embedded SQLite
/// database under `data_dir` (or in PATH), `postgres://…` a PostgreSQL database.
pub fn open(
    url: Option<&str>,
    data_dir: &Path,
    synchronous: &str,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match StoreUrl::parse(url)? {
        StoreUrl::Sqlite(None) => Arc::new(SqliteStore::open(data_dir, synchronous)?),
        StoreUrl::Sqlite(Some(dir)) => Arc::new(SqliteStore::open(&dir, synchronous)?),
        StoreUrl::Postgres(url) => Arc::new(PgStore::connect(&url)?),
    })
}

/// What `store.url` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// The embedded database, in the data directory (`None`) or in this directory.
    Sqlite(Option<std::path::PathBuf>),
    Postgres(String),
}

impl StoreUrl {
    /// Errors name the accepted forms and never repeat a password.
    pub fn parse(url: Option<&str>) -> Result<Self, StoreError> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(Self::Sqlite(None));
        };
        if postgres::connection::is_postgres_url(url) {
            postgres::connection::PgTarget::parse(url)?;
            return Ok(Self::Postgres(url.to_string()));
        }
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            return Ok(Self::Sqlite(
                (!path.is_empty()).then(|| std::path::PathBuf::from(path)),
            ));
        }
        Err(StoreError::Config(format!(
            "store.url {:?} is not sqlite:DATA_DIR or a postgres:// / postgresql:// URL",
            postgres::connection::redact(url)
        )))
    }
}

/// An experiment as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentRow {
    /// Insertion order; pagination and "newest first" use it.
    pub seq: i64,
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub kind: String,
    pub api_version: String,
    pub metadata: ObjectMeta,
    /// `spec` as accepted (defaults applied, `environment` resolved).
    pub spec: Value,
    pub status: ExperimentStatus,
    /// Why the user asked for the desired state (`stopped by user`, `halted: …`).
    pub desired_reason: Option<String>,
}

impl ExperimentRow {
    pub fn to_object(&self) -> ExperimentObject {
        ExperimentObject {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            metadata: self.metadata.clone(),
            spec: self.spec.clone(),
            status: self.status.clone(),
        }
    }
}

/// Filters of `GET /api/v1/experiments`.
#[derive(Debug, Clone, Default)]
pub struct ExperimentFilter {
    pub phase: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub environment: Option<String>,
    pub archived: bool,
    /// Only rows with `seq` below this (the `continue` token).
    pub before_seq: Option<i64>,
    pub limit: usize,
}

/// An event not yet stored.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub name: String,
    pub experiment_uid: Option<String>,
    pub environment: Option<String>,
    pub target: Option<String>,
    pub message: String,
    pub attributes: BTreeMap<String, String>,
}

/// Filters of `GET /api/v1/events`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub experiment_uid: Option<String>,
    pub after_id: Option<i64>,
    pub since: Option<String>,
    pub limit: usize,
}

/// How many experiments (not archived) are in one phase, of one kind, in one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentCount {
    pub phase: String,
    pub kind: String,
    pub environment: String,
    pub count: u64,
}

/// Suite runs, tokens, the audit trail and the agents' join tokens and credentials are kept by
/// the same store (`SuiteRunStore`, `AuthStore`, `AgentAuthStore`: supertraits so that
/// `Arc<dyn Store>` reaches them).
pub trait Store: Send + Sync + SuiteRunStore + AuthStore + AgentAuthStore {
    /// Stores a new experiment with its creation event. A live (not archived, not terminal)
    /// experiment of the same namespace/kind/name is a conflict; a terminal one is archived.
    fn insert_experiment(
        &self,
        row: &ExperimentRow,
        event: &NewEvent,
    ) -> Result<(ExperimentRow, Vec<EventRecord>), StoreError>;
    /// Replaces an experiment's status and appends events, atomically.
    fn update_status(
        &self,
        uid: &str,
        status: &ExperimentStatus,
        events: &[NewEvent],
    ) -> Result<Vec<EventRecord>, StoreError>;
    /// Records the user's intent (pause, resume, stop) without touching the engine's status.
    fn set_desired(
        &self,
        uid: &str,
        desired: DesiredState,
        reason: Option<&str>,
        events: &[NewEvent],
    ) -> Result<Vec<EventRecord>, StoreError>;
    fn set_archived(&self, uid: &str, events: &[NewEvent]) -> Result<Vec<EventRecord>, StoreError>;
    fn get_experiment(&self, uid: &str) -> Result<Option<ExperimentRow>, StoreError>;
    /// The newest not-archived experiment with this name (any kind) in the namespace.
    fn find_experiment_by_name(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ExperimentRow>, StoreError>;
    fn list_experiments(&self, filter: &ExperimentFilter)
        -> Result<Vec<ExperimentRow>, StoreError>;
    /// Every experiment the engine may still have work for (not in a terminal phase).
    fn active_experiments(&self) -> Result<Vec<ExperimentRow>, StoreError>;
    /// Experiments (not archived) counted by phase, kind and environment (for `/metrics`).
    /// The default reads rows; stores override it with an aggregate query.
    fn count_experiments(&self) -> Result<Vec<ExperimentCount>, StoreError> {
        let rows = self.list_experiments(&ExperimentFilter {
            limit: 1_000_000,
            ..Default::default()
        })?;
        let mut counts: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for row in rows {
            *counts
                .entry((
                    row.status.phase.as_str().to_string(),
                    row.kind,
                    row.status.environment,
                ))
                .or_default() += 1;
        }
        Ok(counts
            .into_iter()
            .map(|((phase, kind, environment), count)| ExperimentCount {
                phase,
                kind,
                environment,
                count,
            })
            .collect())
    }

    fn append_events(&self, events: &[NewEvent]) -> Result<Vec<EventRecord>, StoreError>;
    /// Retention of the event log: deletes events stored before `older_than` (RFC 3339 UTC),
    /// then all but the newest `max_rows` (0: no cap). Events of experiments that have not
    /// ended are kept whatever their age. Returns how many were deleted. The default keeps
    /// everything.
    fn prune_events(&self, older_than: &str, max_rows: u64) -> Result<u64, StoreError> {
        let _ = (older_than, max_rows);
        Ok(0)
    }
    fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError>;

    /// Inserts or replaces an environment; returns whether it existed.
    fn put_environment(&self, env: &EnvironmentObject, replace: bool) -> Result<bool, StoreError>;
    fn get_environment(&self, name: &str) -> Result<Option<EnvironmentObject>, StoreError>;
    fn list_environments(&self) -> Result<Vec<EnvironmentObject>, StoreError>;
    fn delete_environment(&self, name: &str) -> Result<bool, StoreError>;

    fn halt_status(&self) -> Result<HaltStatus, StoreError>;
    fn set_halt(&self, status: &HaltStatus) -> Result<(), StoreError>;

    /// Whether several hubs (replicas) share this store: then they compete for leases and see
    /// each other's changes through [`Store::watch_changes`]. A store of one hub (SQLite) is
    /// not shared, and the defaults below make that hub the holder of every lease.
    fn shared(&self) -> bool {
        false
    }
    /// Takes the lease `name` for `holder`, or renews it when `holder` has it, for `ttl` on
    /// the store's own clock; `None` while another holder's grant has not run out. A new holder
    /// gets a token greater than every earlier one (the fence of its writes).
    fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        url: Option<&str>,
        ttl: std::time::Duration,
    ) -> Result<Option<LeaseGrant>, StoreError> {
        let _ = (name, holder, url, ttl);
        Ok(Some(LeaseGrant { token: 0 }))
    }
    /// Who holds the lease `name` now (an unexpired grant), if anyone.
    fn lease_holder(&self, name: &str) -> Result<Option<LeaseHolder>, StoreError> {
        let _ = name;
        Ok(None)
    }
    /// Gives the lease back (a replica shutting down), if `holder` still has it with `token`.
    fn release_lease(&self, name: &str, holder: &str, token: i64) -> Result<(), StoreError> {
        let _ = (name, holder, token);
        Ok(())
    }
    /// The engine leader's view of the agents connected to it (health and connection as the
    /// leader judged them), kept for the other replicas to serve: `upsert` replaces those
    /// agents' entries, `remove` (environment, name) deletes entries. A store of one hub keeps
    /// none: its hub is always the leader and reads its own registry.
    fn put_agent_directory(
        &self,
        upsert: &[chaoshub_schema::api::AgentInfo],
        remove: &[(String, String)],
    ) -> Result<(), StoreError> {
        let _ = (upsert, remove);
        Ok(())
    }
    /// The agents the leader last published, optionally of one environment, by environment
    /// and name; an entry no leader has written for 20 s is never reported healthy.
    fn agent_directory(
        &self,
        environment: Option<&str>,
    ) -> Result<Vec<chaoshub_schema::api::AgentInfo>, StoreError> {
        let _ = environment;
        Ok(Vec::new())
    }
    /// Every (environment, name) holding an agent credential, on a shared store (the leader
    /// ends the streams of agents an admin removed through another replica); `None` on a store
    /// of one hub, whose removals end the stream in the same process.
    fn agents_with_credentials(
        &self,
    ) -> Result<Option<std::collections::HashSet<(String, String)>>, StoreError> {
        Ok(None)
    }
    /// Keeps a console session for every replica (a shared store only; a hub alone keeps its
    /// sessions in memory). Replaces a session with the same `id_hash`.
    fn put_console_session(&self, session: &StoredSession) -> Result<(), StoreError> {
        let _ = session;
        Ok(())
    }
    /// The session with this id hash, if it was used within `idle`; the time since it was
    /// last used comes back in `idle_for`.
    fn console_session(
        &self,
        id_hash: &str,
        idle: std::time::Duration,
    ) -> Result<Option<StoredSession>, StoreError> {
        let _ = (id_hash, idle);
        Ok(None)
    }
    /// Marks a session as used now.
    fn touch_console_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let _ = id_hash;
        Ok(())
    }
    /// Ends a session (sign-out), and deletes every session unused for `idle`.
    fn delete_console_session(
        &self,
        id_hash: &str,
        idle: std::time::Duration,
    ) -> Result<(), StoreError> {
        let _ = (id_hash, idle);
        Ok(())
    }
    /// Deletes replicas' liveness leases that ran out more than `grace` ago (each replica
    /// process leaves one behind); the number deleted. Never touches the engine lease.
    fn prune_liveness_leases(&self, grace: std::time::Duration) -> Result<u64, StoreError> {
        let _ = grace;
        Ok(0)
    }
    /// Calls `sink` for every change another replica commits (a shared store's notifications),
    /// from a thread of the store's own, until the process ends. A store of one hub has no
    /// other writer and never calls it.
    fn watch_changes(
        &self,
        sink: Arc<dyn Fn(StoreChange) + Send + Sync>,
    ) -> Result<(), StoreError> {
        let _ = sink;
        Ok(())
    }
}

/// A lease granted by [`Store::acquire_lease`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseGrant {
    /// Greater for every new holder: the fencing token of its writes.
    pub token: i64,
}

/// The holder of a lease, as [`Store::lease_holder`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub holder: String,
    pub url: Option<String>,
    pub token: i64,
}

/// A change another replica committed to a shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChange {
    /// An experiment was created or its desired state, status or archive flag changed.
    Experiment(String),
    /// Events were appended (the newest id).
    Events(i64),
    /// Something else (environments, halt, tokens): readers re-read what they cache.
    Other,
}
