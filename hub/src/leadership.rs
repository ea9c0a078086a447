//! Which replica runs the engine: a lease in the shared store, renewed, with a fencing token.
//!
//! A hub on its own store (SQLite) is always the leader; nothing here runs. Several hubs on one
//! shared store (PostgreSQL, `Store::shared`) compete for the lease named [`ENGINE_LEASE`]: the
//! holder runs every engine and controller pass, the others serve the API, the console and
//! the event streams, and take over when the lease runs out (docs/operations.md).
//!
//! Two guards keep a replica that lost the lease without knowing it (paused, cut off) from
//! acting on what it no longer owns:
//! - **local expiry:** leadership ends on this process's monotonic clock at the time of the last
//!   renewal request sent plus the lease minus a safety margin, whether or not the store could
//!   be asked; before every adapter call the engine checks it ([`Leadership::is_leader`]), so a
//!   replica frozen past its lease touches no far side when it wakes;
//! - **fencing:** each grant carries a token that grows with every change of holder, and every
//!   write made by an engine pass carries it ([`crate::store::fence`]); the store refuses a
//!   write whose token is not the current one (`StoreError::Fenced`), and the pass that met the
//!   refusal steps its replica down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::watch;

use crate::store::{LeaseGrant, Store, StoreError};

/// The lease the engine's leader holds.
pub const ENGINE_LEASE: &str = "engine";

/// The liveness lease every replica holds under its own name (`holder`): what it runs outside
/// the engine (a suite run) is its own while this lease lives.
pub fn replica_lease(holder: &str) -> String {
    format!("replica:{holder}")
}

/// `[replica]` in hub.toml: how this hub takes part when its store is shared.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    /// This replica's name in the lease and in logs. Default: the host name and process id.
    #[serde(default)]
    pub id: Option<String>,
    /// The URL other replicas' clients and agents are sent to while this replica leads
    /// (`https://hub-1.example:8080`). Default: none (agents then try their other `--hub`s).
    #[serde(default)]
    pub advertise_url: Option<String>,
    /// How long a grant lasts without renewal. Default 3000 ms: a dead leader is replaced
    /// within this plus one renewal interval.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// How often the lease is renewed (and, by followers, tried). Default 1000 ms; at most a
    /// third of `lease_ms`.
    #[serde(default = "default_renew_ms")]
    pub renew_ms: u64,
}

fn default_lease_ms() -> u64 {
    3000
}

fn default_renew_ms() -> u64 {
    1000
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            id: None,
            advertise_url: None,
            lease_ms: default_lease_ms(),
            renew_ms: default_renew_ms(),
        }
    }
}

impl ReplicaConfig {
    pub fn check(&self) -> Result<(), String> {
        if !(500..=600_000).contains(&self.lease_ms) {
            return Err(format!(
                "replica.lease_ms: {} is outside 500..=600000",
                self.lease_ms
            ));
        }
        if self.renew_ms == 0 || self.renew_ms * 3 > self.lease_ms {
            return Err(format!(
                "replica.renew_ms: {} must be above 0 and at most a third of replica.lease_ms ({})",
                self.renew_ms, self.lease_ms
            ));
        }
        if let Some(url) = &self.advertise_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "replica.advertise_url: {url:?} is not an http:// or https:// URL"
                ));
            }
        }
        if let Some(id) = &self.id {
            if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
                return Err("replica.id: 1 to 128 printable characters".into());
            }
        }
        Ok(())
    }

    /// This replica's name: the configured one, or host name and process id.
    pub fn replica_id(&self) -> String {
        self.id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "hub".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

/// What this replica is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Runs the engine until `until` (this process's clock) unless renewed before.
    Leader { token: i64, until: Instant },
    /// Another replica (or none yet) holds the lease.
    Follower { leader: Option<LeaderInfo> },
}

/// The replica holding the lease, as the store says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaderInfo {
    pub id: String,
    /// Its `replica.advertise_url`, if it set one.
    pub url: Option<String>,
}

/// This replica's part in leadership; cheap to ask.
pub struct Leadership {
    id: String,
    /// The name in the lease: `id#nonce`, unique to this process, so a replica restarted under
    /// the same `replica.id` (or two given one id by mistake) never share a grant.
    holder: String,
    advertise_url: Option<String>,
    lease: Duration,
    renew: Duration,
    /// Whether the store is shared; a lone hub leads forever and never asks the store.
    shared: bool,
    role: watch::Sender<Role>,
}

/// How often the leader deletes old liveness leases, and how long after running out they go.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const PRUNE_GRACE: Duration = Duration::from_secs(3600);

/// Leadership ends this long before the lease would, on the local clock: room for the renewal
/// round trip and clock rate differences between replicas.
fn margin(lease: Duration) -> Duration {
    (lease / 5).max(Duration::from_millis(100))
}

impl Leadership {
    /// A hub alone on its store: the leader, for good, with token 0.
    pub fn sole() -> Arc<Self> {
        Arc::new(Self {
            id: "sole".into(),
            holder: "sole".into(),
            advertise_url: None,
            lease: Duration::MAX,
            renew: Duration::MAX,
            shared: false,
            role: watch::Sender::new(Role::Leader {
                token: 0,
                until: far_future(),
            }),
        })
    }

    /// A replica on a shared store: a follower until its first grant.
    pub fn replica(config: &ReplicaConfig) -> Arc<Self> {
        let id = config.replica_id();
        Arc::new(Self {
            holder: format!("{id}#{:08x}", rand::random::<u32>()),
            id,
            advertise_url: config.advertise_url.clone(),
            lease: Duration::from_millis(config.lease_ms),
            renew: Duration::from_millis(config.renew_ms),
            shared: true,
            role: watch::Sender::new(Role::Follower { leader: None }),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The name this process holds the lease under (see the field).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    pub fn shared(&self) -> bool {
        self.shared
    }

    /// How often the lease is renewed (`replica.renew_ms`); work that follows leadership, such
    /// as taking over suite runs of dead replicas, looks this often.
    pub fn renew_interval(&self) -> Duration {
        self.renew
    }

    /// Whether this replica may run engine passes and call adapters now.
    pub fn is_leader(&self) -> bool {
        matches!(&*self.role.borrow(), Role::Leader { until, .. } if Instant::now() < *until)
    }

    /// The fencing token of the current grant, while leader.
    pub fn token(&self) -> Option<i64> {
        match &*self.role.borrow() {
            Role::Leader { token, until } if Instant::now() < *until => Some(*token),
            _ => None,
        }
    }

    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    /// Changes of role (the engine loop waits on it while a follower).
    pub fn subscribe(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    /// The leader as this replica last saw it: itself, or who the store named.
    pub fn leader(&self) -> Option<LeaderInfo> {
        match &*self.role.borrow() {
            Role::Leader { .. } => Some(LeaderInfo {
                id: self.id.clone(),
                url: self.advertise_url.clone(),
            }),
            Role::Follower { leader } => leader.clone(),
        }
    }

    /// Gives up leadership at once (a write was fenced: another replica holds the lease).
    pub fn step_down(&self, why: &str) {
        if !self.shared {
            return;
        }
        let was_leader = matches!(&*self.role.borrow(), Role::Leader { .. });
        if was_leader {
            tracing::warn!(replica = %self.id, reason = why, "stepping down as engine leader");
            self.role.send_replace(Role::Follower { leader: None });
        }
    }

    /// One round: asks the store for the lease (a grant to the holder renews it).
    fn round(&self, store: &dyn Store) -> Result<(), StoreError> {
        // This replica's own liveness, whoever leads.
        store.acquire_lease(
            &replica_lease(&self.holder),
            &self.holder,
            self.advertise_url.as_deref(),
            self.lease,
        )?;
        let asked = Instant::now();
        let grant: Option<LeaseGrant> = store.acquire_lease(
            ENGINE_LEASE,
            &self.holder,
            self.advertise_url.as_deref(),
            self.lease,
        )?;
        match grant {
            Some(grant) => {
                let until = asked + self.lease.saturating_sub(margin(self.lease));
                let before = self.role.borrow().clone();
                if !matches!(before, Role::Leader { token, .. } if token == grant.token) {
                    tracing::info!(replica = %self.id, token = grant.token, "took the engine lease: this replica now runs the engine");
                }
                self.role.send_replace(Role::Leader {
                    token: grant.token,
                    until,
                });
            }
            None => {
                let holder = store.lease_holder(ENGINE_LEASE)?.map(|h| LeaderInfo {
                    id: h.holder.split('#').next().unwrap_or_default().to_string(),
                    url: h.url,
                });
                let was_leader = matches!(&*self.role.borrow(), Role::Leader { .. });
                if was_leader {
                    tracing::warn!(replica = %self.id, leader = ?holder, "lost the engine lease to another replica");
                }
                self.role.send_replace(Role::Follower { leader: holder });
            }
        }
        Ok(())
    }

    /// Renews or tries the lease every `renew_ms` until shutdown; gives it back on the way out
    /// so another replica takes over at once rather than after the lease.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>, mut shutdown: watch::Receiver<bool>) {
        if !self.shared {
            return;
        }
        let mut pruned_at: Option<Instant> = None;
        loop {
            let me = Arc::clone(&self);
            let s = Arc::clone(&store);
            let outcome = tokio::task::spawn_blocking(move || me.round(s.as_ref())).await;
            // The leader clears out liveness leases of replica processes long gone, hourly.
            if self.is_leader() && pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                pruned_at = Some(Instant::now());
                let s = Arc::clone(&store);
                match tokio::task::spawn_blocking(move || s.prune_liveness_leases(PRUNE_GRACE))
                    .await
                {
                    Ok(Ok(n)) if n > 0 => {
                        tracing::info!(
                            deleted = n,
                            "pruned liveness leases of replicas gone for over an hour"
                        )
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune old liveness leases"),
                    Err(e) => tracing::error!(error = %e, "pruning liveness leases panicked"),
                }
            }
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    // The store cannot be asked: leadership lapses on the local clock by itself.
                    tracing::warn!(replica = %self.id, error = %e, "cannot renew or take the engine lease");
                }
                Err(e) => tracing::error!(error = %e, "the lease round panicked"),
            }
            // A lapsed lease ends leadership even when no round could say so.
            if !self.is_leader() && matches!(&*self.role.borrow(), Role::Leader { .. }) {
                self.step_down("the lease ran out before it could be renewed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.renew) => {}
                _ = shutdown.changed() => {
                    if let Some(token) = self.token() {
                        let (me, s) = (Arc::clone(&self), Arc::clone(&store));
                        let _ = tokio::task::spawn_blocking(move || {
                            s.release_lease(ENGINE_LEASE, &me.holder, token)
                        })
                        .await;
                    }
                    let (me, s) = (Arc::clone(&self), Arc::clone(&store));
                    let _ = tokio::task::spawn_blocking(move || {
                        // The liveness lease is this process's alone: its token is 1.
                        s.release_lease(&replica_lease(&me.holder), &me.holder, 1)
                    })
                    .await;
                    self.role.send_replace(Role::Follower { leader: None });
                    return;
                }
            }
        }
    }
}

fn far_future() -> Instant {
    // About 30 years: never reached by a running process.
    Instant::now() + Duration::from_secs(60 * 60 * 24 * 365 * 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sole_hub_always_leads_with_token_zero() {
        let l = Leadership::sole();
        assert!(l.is_leader());
        assert_eq!(l.token(), Some(0));
        l.step_down("ignored");
        assert!(l.is_leader());
    }

    #[test]
    fn replica_settings_are_checked_naming_the_field() {
        let mut c = ReplicaConfig::default();
        assert!(c.check().is_ok());
        c.renew_ms = 2000;
        assert!(c.check().unwrap_err().contains("replica.renew_ms"));
        c.renew_ms = 1000;
        c.lease_ms = 100;
        assert!(c.check().unwrap_err().contains("replica.lease_ms"));
        c.lease_ms = 3000;
        c.advertise_url = Some("hub-1:8080".into());
        assert!(c.check().unwrap_err().contains("replica.advertise_url"));
    }

    #[test]
    fn a_replica_leads_only_until_its_local_expiry() {
        let l = Leadership::replica(&ReplicaConfig::default());
        assert!(!l.is_leader());
        l.role.send_replace(Role::Leader {
            token: 7,
            until: Instant::now() + Duration::from_millis(50),
        });
        assert_eq!(l.token(), Some(7));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!l.is_leader(), "expired on the local clock");
        assert_eq!(l.token(), None);
        l.step_down("fenced");
        assert_eq!(l.role(), Role::Follower { leader: None });
    }
}
