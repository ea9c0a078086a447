//! Agents connected to the hub: `chaos-agent` daemons dial the hub's gRPC service (`grpc.rs`,
//! on the hub's one listen port), register, heartbeat and take commands on the same stream.
//! This registry keeps their streams and health in memory — an agent re-registers after a hub
//! restart — and implements the `native` adapter's [`AgentLink`].
//!
//! Lease renewal: a fault is sent with a lease of at most the lease window (`LEASE_WINDOW`, or
//! `engine.agent_lease_secs`) past now (or its real deadline if sooner); the renewal loop
//! extends leases of faults still wanted, so an open-ended fault outlives a dead hub by at most
//! the window. Which faults are wanted is rebuilt from the store at start and on every agent
//! (re)connection: `Running` experiments of `native` environments and their `Injected`
//! targets. Memory is only a cache of it, so a restarted hub keeps renewing what it left
//! running instead of letting the agents remove it while the hub still says `Running`.

pub mod directory;
pub mod grpc;
pub mod join;
pub mod usage;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaoshub_schema::api::{ExperimentPhase, TargetPhase};

use async_trait::async_trait;
use chaoshub_adapters::native::{
    AgentCallError, AgentHost, AgentLink, AgentOp, AgentReply, AgentSummary, HostQuery,
};
use chaoshub_schema::agent::proto::{
    command, hub_message, Command, CommandReply, HubMessage, Inject, Recover, Renew, Status,
};
use chaoshub_schema::agent::AgentFaultStatus;
pub use chaoshub_schema::api::{AgentInfo, AgentUsage};
use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, oneshot, Notify};

use crate::store::Store;

/// How often agents heartbeat, and how many missed beats make one unhealthy.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1000);
pub const MISSED_BEATS_UNHEALTHY: u32 = 3;
/// The longest lease handed out; renewed while the fault is wanted.
pub const LEASE_WINDOW: chrono::Duration = chrono::Duration::seconds(30);

/// What goes down an agent's stream, boxed: a channel allocates its first block of 32 slots
/// when it is made, and one agent holds a channel for as long as it is connected. A slot of
/// `Result<HubMessage, Status>` is over 200 bytes, so unboxed that block was about 7 KB per
/// agent (70 MB for 10,000 agents) for a channel that carries a few commands a minute.
pub(crate) type Outbound = Box<Result<HubMessage, tonic::Status>>;

struct Session {
    id: u64,
    sender: mpsc::Sender<Outbound>,
    pending: HashMap<String, oneshot::Sender<CommandReply>>,
}

struct AgentEntry {
    info: AgentInfo,
    session: Option<Session>,
    /// The host's usage at each heartbeat, oldest first, at most [`USAGE_SAMPLES`].
    usage: usage::UsageSeries,
}

pub use usage::USAGE_SAMPLES;

/// A fault the hub wants kept: renewed until its deadline.
#[derive(Debug, Clone)]
struct WantedLease {
    environment: String,
    agent: String,
    deadline: DateTime<Utc>,
    lease_until: DateTime<Utc>,
}

/// The agents of one environment by name, and an index of them by label.
///
/// Target discovery at every injection, dry run and `…/targets` call asks for the agents a
/// selector may pick; with thousands of agents, a selector naming one (`host-id: web-17`) is a
/// lookup in `by_label` and a check of the few candidates instead of a copy of every agent.
#[derive(Default)]
struct EnvAgents {
    agents: BTreeMap<String, AgentEntry>,
    /// Label key → value → the names of the agents carrying it. An agent's labels change only
    /// when it (re)registers or is removed ([`EnvAgents::insert`], [`EnvAgents::remove`]); a
    /// disconnected agent stays listed, and indexed, until removed.
    by_label: HashMap<String, HashMap<String, BTreeSet<String>>>,
}

impl EnvAgents {
    fn index(&mut self, name: &str, labels: &BTreeMap<String, String>) {
        for (key, value) in labels {
            self.by_label
                .entry(key.clone())
                .or_default()
                .entry(value.clone())
                .or_default()
                .insert(name.to_string());
        }
    }

    fn unindex(&mut self, name: &str, labels: &BTreeMap<String, String>) {
        for (key, value) in labels {
            let Some(values) = self.by_label.get_mut(key) else {
                continue;
            };
            if let Some(names) = values.get_mut(value) {
                names.remove(name);
                if names.is_empty() {
                    values.remove(value);
                }
            }
            if values.is_empty() {
                self.by_label.remove(key);
            }
        }
    }

    /// Adds or replaces an agent, keeping the index in step; returns the entry replaced.
    fn insert(&mut self, entry: AgentEntry) -> Option<AgentEntry> {
        let name = entry.info.name.clone();
        let old = self.remove(&name);
        self.index(&name, &entry.info.labels);
        self.agents.insert(name, entry);
        old
    }

    fn remove(&mut self, name: &str) -> Option<AgentEntry> {
        let old = self.agents.remove(name)?;
        self.unindex(name, &old.info.labels);
        Some(old)
    }

    /// The names of the agents with label `key` set to one of `values`, from the index.
    fn labelled(&self, key: &str, values: &[String]) -> BTreeSet<&str> {
        let Some(by_value) = self.by_label.get(key) else {
            return BTreeSet::new();
        };
        values
            .iter()
            .filter_map(|v| by_value.get(v))
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// How many agents [`EnvAgents::labelled`] would return, without collecting them.
    fn labelled_count(&self, key: &str, values: &[String]) -> usize {
        self.by_label.get(key).map_or(0, |by_value| {
            let distinct: BTreeSet<&String> = values.iter().collect();
            distinct
                .into_iter()
                .filter_map(|v| by_value.get(v))
                .map(BTreeSet::len)
                .sum()
        })
    }

    /// The agents that satisfy `query`, in name order: the smallest set the index (or the
    /// query's names) gives, then every clause checked on each candidate.
    fn matching(&self, query: &HostQuery) -> Vec<&AgentEntry> {
        let holds = |e: &AgentEntry| {
            query
                .names
                .as_ref()
                .is_none_or(|names| names.contains(&e.info.name))
                && query
                    .labels
                    .iter()
                    .all(|(k, vs)| e.info.labels.get(k).is_some_and(|v| vs.contains(v)))
        };
        // The narrowest clause decides which agents are looked at.
        let narrowest = query
            .labels
            .iter()
            .map(|(k, vs)| (self.labelled_count(k, vs), Some((k, vs))))
            .chain(query.names.as_ref().map(|n| (n.len(), None)))
            .min_by_key(|(count, _)| *count);
        match narrowest {
            None => self.agents.values().filter(|e| holds(e)).collect(),
            Some((_, Some((key, values)))) => self
                .labelled(key, values)
                .into_iter()
                .filter_map(|name| self.agents.get(name))
                .filter(|e| holds(e))
                .collect(),
            Some((_, None)) => query
                .names
                .iter()
                .flatten()
                .filter_map(|name| self.agents.get(name))
                .filter(|e| holds(e))
                .collect(),
        }
    }
}

#[derive(Default)]
struct Inner {
    /// By environment, then by name: listings come out in (environment, name) order and a page
    /// of them is a range, not a sort of every agent.
    agents: BTreeMap<String, EnvAgents>,
    leases: HashMap<String, WantedLease>,
    /// Per environment, every capability its agents offer (`AgentLink::offered_capabilities`,
    /// asked at every submission): kept until an agent of it (re)registers or is removed, the
    /// only changes to what its agents offer.
    offered: HashMap<String, Vec<String>>,
}

impl Inner {
    fn entry(&self, environment: &str, name: &str) -> Option<&AgentEntry> {
        self.agents.get(environment)?.agents.get(name)
    }

    fn entry_mut(&mut self, environment: &str, name: &str) -> Option<&mut AgentEntry> {
        self.agents.get_mut(environment)?.agents.get_mut(name)
    }

    /// Forgets an agent; an environment left without agents is dropped.
    fn remove_entry(&mut self, environment: &str, name: &str) -> Option<AgentEntry> {
        let env = self.agents.get_mut(environment)?;
        let old = env.remove(name);
        if env.agents.is_empty() {
            self.agents.remove(environment);
        }
        old
    }
}

/// One page of agents ([`AgentRegistry::page`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentPage {
    pub items: Vec<AgentInfo>,
    /// Whether agents follow the last of `items`.
    pub more: bool,
    /// How many agents the listing has in all pages.
    pub total: usize,
}

/// The registry of agents.
pub struct AgentRegistry {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    /// The longest lease handed out at once.
    lease_window: chrono::Duration,
    /// Where the faults the hub wants kept are recorded (none: only what this process injected).
    store: Option<Arc<dyn Store>>,
    /// Woken when an agent (re)connects: its leases are rebuilt and renewed at once.
    reconnected: Notify,
    /// Every (re)connection, as (environment, agent): the engine reads back the faults it
    /// holds there (drift detection), since the agent may have restarted without them.
    connections: broadcast::Sender<AgentConnected>,
    /// Set on a replica of several: while it does not lead, agents are read from the directory
    /// the leader publishes (`directory`), since they hold their streams to the leader.
    leadership: std::sync::OnceLock<Arc<crate::leadership::Leadership>>,
}

/// An agent that (re)connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConnected {
    pub environment: String,
    pub agent: String,
}

impl Default for AgentRegistry {
    fn default() -> Self {
        AgentRegistry {
            inner: Mutex::default(),
            next_id: AtomicU64::new(0),
            lease_window: LEASE_WINDOW,
            store: None,
            reconnected: Notify::new(),
            connections: broadcast::channel(64).0,
            leadership: std::sync::OnceLock::new(),
        }
    }
}

/// A fault recorded in the store as in place on an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAgentFault {
    pub fault_id: String,
    pub environment: String,
    pub agent: String,
    pub deadline: DateTime<Utc>,
}

/// Every fault the store says is in place on an agent: the `Injected` targets of `Running`
/// experiments in environments of adapter `native`, with their deadlines.
pub fn stored_agent_faults(
    store: &dyn Store,
) -> Result<Vec<StoredAgentFault>, crate::store::StoreError> {
    let mut native_envs: HashMap<String, bool> = HashMap::new();
    let mut out = Vec::new();
    for row in store.active_experiments()? {
        if row.status.phase != ExperimentPhase::Running {
            continue;
        }
        let Some(deadline) = row.status.deadline.as_deref().and_then(crate::time::parse) else {
            continue;
        };
        let env = &row.status.environment;
        let native = match native_envs.get(env) {
            Some(n) => *n,
            None => {
                let n = store
                    .get_environment(env)?
                    .is_some_and(|e| e.spec.adapter == "native");
                native_envs.insert(env.clone(), n);
                n
            }
        };
        if !native {
            continue;
        }
        for record in &row.status.targets {
            if record.phase == TargetPhase::Injected {
                out.push(StoredAgentFault {
                    fault_id: record.injection_id.clone(),
                    environment: env.clone(),
                    agent: record.target.id.clone(),
                    deadline,
                });
            }
        }
    }
    Ok(out)
}

impl AgentRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A registry whose wanted leases are rebuilt from `store`, handing out leases of at most
    /// `lease_window`.
    pub fn with_store(store: Arc<dyn Store>, lease_window: Duration) -> Arc<Self> {
        Arc::new(AgentRegistry {
            lease_window: chrono::Duration::from_std(lease_window).unwrap_or(LEASE_WINDOW),
            store: Some(store),
            ..Self::default()
        })
    }

    /// Adds every fault the store records as in place on an agent to the leases to renew (a
    /// newly added one is renewed at the next tick: how long the agent still holds it is
    /// unknown). Returns how many were added.
    pub fn rebuild_leases(&self) -> usize {
        let Some(store) = &self.store else {
            return 0;
        };
        let faults = match stored_agent_faults(store.as_ref()) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the faults to renew from the store");
                return 0;
            }
        };
        let now = Utc::now();
        let mut inner = self.lock();
        let mut added = 0;
        for f in faults {
            if f.deadline <= now || inner.leases.contains_key(&f.fault_id) {
                continue;
            }
            inner.leases.insert(
                f.fault_id,
                WantedLease {
                    environment: f.environment,
                    agent: f.agent,
                    deadline: f.deadline,
                    lease_until: now,
                },
            );
            added += 1;
        }
        added
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn health(info: &AgentInfo, connected: bool, now: DateTime<Utc>) -> &'static str {
        if !connected {
            return "disconnected";
        }
        let limit = chrono::Duration::from_std(HEARTBEAT_INTERVAL * MISSED_BEATS_UNHEALTHY)
            .unwrap_or(chrono::Duration::seconds(3));
        match info.last_heartbeat.or(info.connected_since) {
            Some(t) if now - t <= limit => "healthy",
            _ => "unhealthy",
        }
    }

    /// Makes the registry one replica's of several (see the field).
    pub fn set_leadership(&self, leadership: Arc<crate::leadership::Leadership>) {
        let _ = self.leadership.set(leadership);
    }

    /// What `pick` gives for each agent of `environment` the index offers for `query`, flattened;
    /// `None` on a follower (no index there).
    fn collect_matching<T, I: IntoIterator<Item = T>>(
        &self,
        environment: &str,
        query: &HostQuery,
        pick: impl Fn(&AgentEntry) -> I,
    ) -> Option<Vec<T>> {
        if self.follows() {
            return None;
        }
        let inner = self.lock();
        Some(
            inner
                .agents
                .get(environment)
                .map(|env| env.matching(query).into_iter().flat_map(&pick).collect())
                .unwrap_or_default(),
        )
    }

    /// Whether this replica reads agents from the directory (a follower on a shared store).
    fn follows(&self) -> bool {
        self.store.is_some()
            && self
                .leadership
                .get()
                .is_some_and(|l| l.shared() && !l.is_leader())
    }

    /// The store's directory, when this replica is a follower on a shared store.
    fn follower_view(&self, environment: Option<&str>) -> Option<Vec<AgentInfo>> {
        if !self.follows() {
            return None;
        }
        let store = self.store.as_ref()?;
        match store.agent_directory(environment) {
            Ok(list) => Some(list),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the agent directory the leader publishes");
                Some(Vec::new())
            }
        }
    }

    /// Every agent, optionally of one environment, with health computed now (on a follower
    /// replica: as the leader last published them).
    pub fn list(&self, environment: Option<&str>) -> Vec<AgentInfo> {
        if let Some(list) = self.follower_view(environment) {
            return list;
        }
        self.local_list(environment)
    }

    /// One agent, with health computed now (on a follower replica: as the leader last
    /// published it). A lookup, not a scan: a console page or a client polls one agent of
    /// thousands.
    pub fn get(&self, environment: &str, name: &str) -> Option<AgentInfo> {
        if let Some(list) = self.follower_view(Some(environment)) {
            return list.into_iter().find(|a| a.name == name);
        }
        let now = Utc::now();
        let inner = self.lock();
        Some(Self::shown(inner.entry(environment, name)?, now))
    }

    /// An entry as a target needs it.
    fn host(e: &AgentEntry, now: DateTime<Utc>) -> AgentHost {
        AgentHost {
            name: e.info.name.clone(),
            hostname: e.info.hostname.clone(),
            labels: e.info.labels.clone(),
            healthy: Self::health(&e.info, e.session.is_some(), now) == "healthy",
        }
    }

    /// An entry as listed: its info with connection and health as of `now`.
    fn shown(e: &AgentEntry, now: DateTime<Utc>) -> AgentInfo {
        let mut info = e.info.clone();
        info.connected = e.session.is_some();
        info.health = Self::health(&e.info, info.connected, now).to_string();
        info
    }

    /// The agents whose streams this process holds, by environment and name.
    pub(crate) fn local_list(&self, environment: Option<&str>) -> Vec<AgentInfo> {
        let now = Utc::now();
        let inner = self.lock();
        match environment {
            Some(env) => inner
                .agents
                .get(env)
                .into_iter()
                .flat_map(|e| e.agents.values())
                .map(|e| Self::shown(e, now))
                .collect(),
            None => inner
                .agents
                .values()
                .flat_map(|e| e.agents.values())
                .map(|e| Self::shown(e, now))
                .collect(),
        }
    }

    /// At most `limit` agents (at least one) after `after` (an (environment, name) of an
    /// earlier page), in (environment, name) order, of one environment or of every one that
    /// `visible` allows, with health computed now. Only the page is copied: the agents are
    /// kept in that order, so a page is a range of the map, not a sort of every agent.
    pub fn page(
        &self,
        environment: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
        visible: &dyn Fn(&str) -> bool,
    ) -> AgentPage {
        let limit = limit.max(1);
        let allowed = |env: &str| environment.is_none_or(|e| e == env) && visible(env);
        if let Some(list) = self.follower_view(environment) {
            let listed: Vec<AgentInfo> = list
                .into_iter()
                .filter(|a| allowed(&a.environment))
                .collect();
            let total = listed.len();
            let mut items: Vec<AgentInfo> = listed
                .into_iter()
                .filter(|a| {
                    after.is_none_or(|(e, n)| (a.environment.as_str(), a.name.as_str()) > (e, n))
                })
                .take(limit + 1)
                .collect();
            let more = items.len() > limit;
            items.truncate(limit);
            return AgentPage { items, more, total };
        }
        use std::ops::Bound;
        let now = Utc::now();
        let inner = self.lock();
        let total = inner
            .agents
            .iter()
            .filter(|(env, _)| allowed(env))
            .map(|(_, e)| e.agents.len())
            .sum();
        let envs = match after {
            Some((env, _)) => inner
                .agents
                .range::<str, _>((Bound::Included(env), Bound::Unbounded)),
            None => inner.agents.range::<str, _>(..),
        };
        let mut items = Vec::with_capacity(limit.min(total) + 1);
        'envs: for (env, agents) in envs.filter(|(env, _)| allowed(env)) {
            let names = match after {
                Some((after_env, name)) if after_env == env.as_str() => agents
                    .agents
                    .range::<str, _>((Bound::Excluded(name), Bound::Unbounded)),
                _ => agents.agents.range::<str, _>(..),
            };
            for e in names.map(|(_, e)| e) {
                if items.len() > limit {
                    break 'envs;
                }
                items.push(Self::shown(e, now));
            }
        }
        drop(inner);
        let more = items.len() > limit;
        items.truncate(limit);
        AgentPage { items, more, total }
    }

    /// Registers (or re-registers) an agent's stream; returns the session id. A newer stream of
    /// the same agent replaces the older one (a reconnect after a network blip).
    pub(crate) fn connect(&self, mut info: AgentInfo, sender: mpsc::Sender<Outbound>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Utc::now();
        info.connected = true;
        info.connected_since = Some(now);
        info.last_heartbeat = Some(now);
        let key = (info.environment.clone(), info.name.clone());
        let mut inner = self.lock();
        inner.offered.remove(&key.0);
        // Its leases are renewed at once: after a hub restart or a long blip the agent may be
        // close to removing faults the hub still wants.
        for lease in inner.leases.values_mut() {
            if lease.environment == key.0 && lease.agent == key.1 {
                lease.lease_until = lease.lease_until.min(now);
            }
        }
        // A reconnecting agent keeps its usage series (a chart spanning a blip stays whole);
        // its labels may have changed, and the index follows them.
        let agents = inner.agents.entry(key.0.clone()).or_default();
        let usage = agents
            .remove(&key.1)
            .map(|old| old.usage)
            .unwrap_or_default();
        agents.insert(AgentEntry {
            info,
            session: Some(Session {
                id,
                sender,
                pending: HashMap::new(),
            }),
            usage,
        });
        drop(inner);
        self.reconnected.notify_one();
        let _ = self.connections.send(AgentConnected {
            environment: key.0,
            agent: key.1,
        });
        id
    }

    /// Agents (re)connecting from now on.
    pub fn subscribe_connections(&self) -> broadcast::Receiver<AgentConnected> {
        self.connections.subscribe()
    }

    pub(crate) fn heartbeat(
        &self,
        env: &str,
        name: &str,
        session: u64,
        active_faults: u32,
        usage: Option<chaoshub_schema::agent::proto::HostUsage>,
    ) {
        let now = Utc::now();
        let mut inner = self.lock();
        if let Some(e) = inner.entry_mut(env, name) {
            if e.session.as_ref().is_some_and(|s| s.id == session) {
                e.info.last_heartbeat = Some(now);
                e.info.active_faults = active_faults;
                if let Some(u) = usage {
                    // The latest sample as kept, so the list and the series agree.
                    e.info.usage = Some(e.usage.push(now, &u));
                }
            }
        }
    }

    /// An agent's usage samples at or after `since` (all kept ones without it), oldest first;
    /// `None` for an agent the hub does not know.
    pub fn usage(
        &self,
        env: &str,
        name: &str,
        since: Option<DateTime<Utc>>,
    ) -> Option<Vec<AgentUsage>> {
        // A follower has the leader's last sample only.
        if let Some(list) = self.follower_view(Some(env)) {
            let agent = list.into_iter().find(|a| a.name == name)?;
            return Some(
                agent
                    .usage
                    .into_iter()
                    .filter(|u| since.is_none_or(|t| u.at >= t))
                    .collect(),
            );
        }
        let inner = self.lock();
        Some(inner.entry(env, name)?.usage.since(since))
    }

    pub(crate) fn reply(&self, env: &str, name: &str, session: u64, reply: CommandReply) {
        let mut inner = self.lock();
        if let Some(e) = inner.entry_mut(env, name) {
            if let Some(s) = e.session.as_mut().filter(|s| s.id == session) {
                if let Some(tx) = s.pending.remove(&reply.command_id) {
                    let _ = tx.send(reply);
                }
            }
        }
    }

    /// The stream ended: pending calls fail at once (their senders drop).
    pub(crate) fn disconnect(&self, env: &str, name: &str, session: u64) {
        let mut inner = self.lock();
        if let Some(e) = inner.entry_mut(env, name) {
            if e.session.as_ref().is_some_and(|s| s.id == session) {
                e.session = None;
                e.info.connected = false;
            }
        }
    }

    /// Forgets an agent and ends its stream (an admin removed it); false when unknown.
    pub fn remove(&self, environment: &str, name: &str) -> bool {
        let mut inner = self.lock();
        inner.offered.remove(environment);
        inner
            .leases
            .retain(|_, l| !(l.environment == environment && l.agent == name));
        inner.remove_entry(environment, name).is_some()
    }

    async fn send(
        &self,
        environment: &str,
        agent: &str,
        op: command::Op,
        timeout: Duration,
    ) -> Result<CommandReply, AgentCallError> {
        let command_id = format!("c{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        let (tx, rx) = oneshot::channel();
        let sender = {
            let mut inner = self.lock();
            let session = inner
                .entry_mut(environment, agent)
                .and_then(|e| e.session.as_mut())
                .ok_or_else(|| AgentCallError::NotConnected {
                    agent: agent.to_string(),
                })?;
            session.pending.insert(command_id.clone(), tx);
            session.sender.clone()
        };
        let msg = HubMessage {
            msg: Some(hub_message::Msg::Command(Command {
                command_id: command_id.clone(),
                // The session is the one of (environment, agent): a command never reaches an
                // agent of another environment, and the agent checks this field as well.
                environment: environment.to_string(),
                op: Some(op),
            })),
        };
        if sender.send(Box::new(Ok(msg))).await.is_err() {
            return Err(AgentCallError::NotConnected {
                agent: agent.to_string(),
            });
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(AgentCallError::Dropped {
                agent: agent.to_string(),
            }),
            Err(_) => {
                let mut inner = self.lock();
                if let Some(s) = inner
                    .entry_mut(environment, agent)
                    .and_then(|e| e.session.as_mut())
                {
                    s.pending.remove(&command_id);
                }
                Err(AgentCallError::Timeout {
                    agent: agent.to_string(),
                    timeout,
                })
            }
        }
    }

    /// Extends the leases of faults still wanted; called every few seconds.
    pub async fn renew_leases(&self) {
        let now = Utc::now();
        let due: Vec<(String, WantedLease)> = {
            let mut inner = self.lock();
            inner.leases.retain(|_, l| l.deadline > now);
            inner
                .leases
                .iter()
                .filter(|(_, l)| {
                    l.lease_until < l.deadline && l.lease_until - now < self.lease_window / 2
                })
                .map(|(id, l)| (id.clone(), l.clone()))
                .collect()
        };
        for (fault_id, lease) in due {
            let new_until = (now + self.lease_window).min(lease.deadline);
            let op = command::Op::Renew(Renew {
                fault_id: fault_id.clone(),
                lease_until_unix_ms: new_until.timestamp_millis(),
            });
            match self
                .send(&lease.environment, &lease.agent, op, Duration::from_secs(5))
                .await
            {
                Ok(r) if r.ok => {
                    if let Some(l) = self.lock().leases.get_mut(&fault_id) {
                        l.lease_until = new_until;
                    }
                }
                Ok(r) => {
                    tracing::warn!(fault = %fault_id, agent = %lease.agent, error = %r.error, "lease renewal refused");
                    if r.error_kind == "not-found" {
                        self.lock().leases.remove(&fault_id);
                    }
                }
                Err(e) => {
                    tracing::warn!(fault = %fault_id, error = %e, "lease renewal failed; will retry")
                }
            }
        }
    }

    /// Rebuilds the wanted leases from the store, then runs `renew_leases` every second (at
    /// once when an agent connects, after rebuilding again) until shutdown.
    pub async fn renewal_loop(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let added = self.rebuild_leases();
        if added > 0 {
            tracing::info!(faults = added, "agent leases rebuilt from the store");
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.reconnected.notified() => {
                    let added = self.rebuild_leases();
                    if added > 0 {
                        tracing::info!(faults = added, "agent leases rebuilt from the store");
                    }
                }
                _ = shutdown.changed() => return,
            }
            self.renew_leases().await;
        }
    }
}

fn to_reply(r: CommandReply) -> AgentReply {
    if r.ok {
        let status = if r.status_json.is_empty() {
            None
        } else {
            serde_json::from_str::<AgentFaultStatus>(&r.status_json)
                .ok()
                .map(Box::new)
        };
        AgentReply::Ok(status)
    } else {
        AgentReply::Refused {
            kind: r.error_kind,
            message: r.error,
        }
    }
}

#[async_trait]
impl AgentLink for AgentRegistry {
    fn agents(&self, environment: &str) -> Vec<AgentSummary> {
        self.list(Some(environment))
            .into_iter()
            .map(|a| AgentSummary {
                healthy: a.health == "healthy",
                connected: a.connected,
                name: a.name,
                environment: a.environment,
                labels: a.labels,
                addresses: a.addresses,
                hostname: a.hostname,
                version: a.version,
                capabilities: a.capabilities,
                allowed: a.allowed,
                mechanisms: a.mechanisms,
                last_heartbeat: a.last_heartbeat,
            })
            .collect()
    }

    fn hosts(&self, environment: &str) -> Vec<AgentHost> {
        if self.follower_view(Some(environment)).is_some() {
            return self
                .agents(environment)
                .into_iter()
                .map(|a| AgentHost {
                    name: a.name,
                    hostname: a.hostname,
                    labels: a.labels,
                    healthy: a.healthy,
                })
                .collect();
        }
        let now = Utc::now();
        let inner = self.lock();
        inner
            .agents
            .get(environment)
            .into_iter()
            .flat_map(|e| e.agents.values())
            .map(|e| Self::host(e, now))
            .collect()
    }

    fn hosts_where(&self, environment: &str, query: &HostQuery) -> Option<(usize, Vec<AgentHost>)> {
        // A follower reads the directory the leader published: no index there.
        if self.follows() {
            return None;
        }
        let now = Utc::now();
        let inner = self.lock();
        let Some(env) = inner.agents.get(environment) else {
            return Some((0, Vec::new()));
        };
        let hosts = env
            .matching(query)
            .into_iter()
            .map(|e| Self::host(e, now))
            .collect();
        Some((env.agents.len(), hosts))
    }

    fn hosts_page(
        &self,
        environment: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Option<(usize, Vec<AgentHost>)> {
        use std::ops::Bound;
        if self.follows() {
            return None;
        }
        let now = Utc::now();
        let inner = self.lock();
        let Some(env) = inner.agents.get(environment) else {
            return Some((0, Vec::new()));
        };
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let hosts = env
            .agents
            .range::<str, _>((from, Bound::Unbounded))
            .take(limit)
            .map(|(_, e)| Self::host(e, now))
            .collect();
        Some((env.agents.len(), hosts))
    }

    fn lacking_opt_in(
        &self,
        environment: &str,
        query: &HostQuery,
        allow: &str,
    ) -> Option<Vec<String>> {
        self.collect_matching(environment, query, |e| {
            (!e.info.allowed.iter().any(|a| a == allow)).then(|| e.info.name.clone())
        })
    }

    fn addresses_where(&self, environment: &str, query: &HostQuery) -> Option<Vec<String>> {
        self.collect_matching(environment, query, |e| e.info.addresses.clone())
    }

    fn offered_capabilities(&self, environment: &str) -> Option<Vec<String>> {
        if let Some(list) = self.follower_view(Some(environment)) {
            if list.is_empty() {
                return None;
            }
            let offered: std::collections::BTreeSet<String> =
                list.into_iter().flat_map(|a| a.capabilities).collect();
            return Some(offered.into_iter().collect());
        }
        let mut inner = self.lock();
        if let Some(offered) = inner.offered.get(environment) {
            return Some(offered.clone());
        }
        let agents = &inner.agents.get(environment)?.agents;
        let offered: BTreeSet<&str> = agents
            .values()
            .flat_map(|e| e.info.capabilities.iter().map(String::as_str))
            .collect();
        let offered: Vec<String> = offered.into_iter().map(str::to_string).collect();
        inner
            .offered
            .insert(environment.to_string(), offered.clone());
        Some(offered)
    }

    async fn call(
        &self,
        environment: &str,
        agent: &str,
        op: AgentOp,
        timeout: Duration,
    ) -> Result<AgentReply, AgentCallError> {
        let (proto_op, wanted) = match op {
            AgentOp::Inject {
                fault_id,
                fault,
                lease_until,
            } => {
                let lease = lease_until.min(Utc::now() + self.lease_window);
                let wanted = WantedLease {
                    environment: environment.to_string(),
                    agent: agent.to_string(),
                    deadline: lease_until,
                    lease_until: lease,
                };
                (
                    command::Op::Inject(Inject {
                        fault_id: fault_id.clone(),
                        fault_json: serde_json::to_string(&fault).unwrap_or_default(),
                        lease_until_unix_ms: lease.timestamp_millis(),
                    }),
                    Some((fault_id, wanted)),
                )
            }
            AgentOp::Recover { fault_id } => {
                self.lock().leases.remove(&fault_id);
                (command::Op::Recover(Recover { fault_id }), None)
            }
            AgentOp::Status { fault_id } => (command::Op::Status(Status { fault_id }), None),
        };
        let reply = to_reply(self.send(environment, agent, proto_op, timeout).await?);
        if let (Some((fault_id, wanted)), AgentReply::Ok(_)) = (wanted, &reply) {
            if wanted.lease_until < wanted.deadline {
                self.lock().leases.insert(fault_id, wanted);
            }
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaoshub_schema::agent::proto::HostUsage;

    fn info(name: &str) -> AgentInfo {
        serde_json::from_value(serde_json::json!({
            "name": name, "environment": "hosts", "labels": {}, "hostname": "h", "addresses": [],
            "version": "0", "health": "healthy", "connected": true, "activeFaults": 0,
            "capabilities": [], "mechanisms": {},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_command_travels_boxed_down_the_stream_and_its_reply_comes_back() {
        // One pointer a slot: the channel's first block stays small for every agent.
        assert_eq!(
            std::mem::size_of::<Outbound>(),
            std::mem::size_of::<usize>()
        );
        let registry = AgentRegistry::new();
        let (tx, mut rx) = mpsc::channel(4);
        let session = registry.connect(info("a"), tx);
        let caller = Arc::clone(&registry);
        let call = tokio::spawn(async move {
            caller
                .call(
                    "hosts",
                    "a",
                    AgentOp::Status {
                        fault_id: "f1".into(),
                    },
                    Duration::from_secs(5),
                )
                .await
        });
        let sent: Outbound = rx.recv().await.unwrap();
        let Ok(HubMessage {
            msg: Some(hub_message::Msg::Command(cmd)),
        }) = *sent
        else {
            panic!("not a command: {sent:?}");
        };
        assert_eq!(cmd.environment, "hosts");
        assert!(matches!(&cmd.op, Some(command::Op::Status(s)) if s.fault_id == "f1"));
        registry.reply(
            "hosts",
            "a",
            session,
            CommandReply {
                command_id: cmd.command_id,
                ok: false,
                error_kind: "not-found".into(),
                error: "no such fault".into(),
                status_json: String::new(),
            },
        );
        match call.await.unwrap().unwrap() {
            AgentReply::Refused { kind, .. } => assert_eq!(kind, "not-found"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hosts_and_offered_capabilities_agree_with_the_full_listing_and_follow_changes() {
        let registry = AgentRegistry::new();
        let (tx, _rx) = mpsc::channel(4);
        assert_eq!(registry.offered_capabilities("hosts"), None);
        let with = |name: &str, caps: &[&str], labels: &[(&str, &str)]| {
            let mut i = info(name);
            i.capabilities = caps.iter().map(|c| c.to_string()).collect();
            i.labels = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            i.hostname = format!("{name}.lab");
            i
        };
        registry.connect(
            with(
                "b",
                &["StressChaos/cpu", "NetworkChaos/delay"],
                &[("rack", "1")],
            ),
            tx.clone(),
        );
        let session = registry.connect(with("a", &["NetworkChaos/delay"], &[]), tx.clone());
        registry.disconnect("hosts", "a", session);
        let mut other = with("z", &["NetworkChaos/loss"], &[]);
        other.environment = "other".into();
        registry.connect(other, tx.clone());
        let offered = || registry.offered_capabilities("hosts").unwrap();
        assert_eq!(offered(), ["NetworkChaos/delay", "StressChaos/cpu"]);
        // The default (from the full listing) gives the same answers.
        let full: Vec<AgentHost> = registry
            .agents("hosts")
            .into_iter()
            .map(|a| AgentHost {
                name: a.name,
                hostname: a.hostname,
                labels: a.labels,
                healthy: a.healthy,
            })
            .collect();
        assert_eq!(registry.hosts("hosts"), full);
        assert_eq!(full.len(), 2);
        assert!(!full[0].healthy && full[1].healthy, "a is disconnected");
        assert_eq!(full[1].labels["rack"], "1");
        // A (re)registration and a removal change what is offered.
        registry.connect(with("c", &["PodChaos/pod-kill"], &[]), tx);
        assert_eq!(
            offered(),
            ["NetworkChaos/delay", "PodChaos/pod-kill", "StressChaos/cpu"]
        );
        assert!(registry.remove("hosts", "b"));
        assert_eq!(offered(), ["NetworkChaos/delay", "PodChaos/pod-kill"]);
        assert!(registry.remove("hosts", "a") && registry.remove("hosts", "c"));
        assert_eq!(registry.offered_capabilities("hosts"), None);
        assert_eq!(
            registry.offered_capabilities("other").unwrap(),
            ["NetworkChaos/loss"]
        );
    }

    fn labelled(name: &str, env: &str, labels: &[(&str, &str)]) -> AgentInfo {
        let mut i = info(name);
        i.environment = env.into();
        i.hostname = format!("{name}.lab");
        i.addresses = vec![format!("10.0.0.{}", name.len()), format!("fd00::{name}")];
        i.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        i
    }

    /// Selectors of every shape the hub applies: equality labels, expressions of each operator,
    /// names, fields, namespaces, nodes, phases, annotations and the labels the adapter adds to
    /// every target itself.
    fn selectors() -> Vec<chaoshub_schema::selector::TargetSelector> {
        use chaoshub_schema::selector::{LabelSelectorRequirement, TargetSelector};
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<String, String>>()
        };
        let expr = |key: &str, operator: &str, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let names = |list: &[&str]| -> BTreeMap<String, Vec<String>> {
            [(
                "default".to_string(),
                list.iter().map(|n| n.to_string()).collect(),
            )]
            .into()
        };
        let mut out = vec![TargetSelector::default()];
        for l in [
            &[("host-id", "h07")][..],
            &[("host-id", "h07"), ("rack", "r1")],
            &[("host-id", "h07"), ("rack", "r2")],
            &[("rack", "r1")],
            &[("rack", "r1"), ("zone", "z0")],
            &[("rack", "nowhere")],
            &[("gone", "yes")],
            &[("moved", "yes")],
            &[("chaoshub.dev/agent-health", "healthy")],
            &[("chaoshub.dev/agent-health", "unhealthy")],
            &[("chaoshub.dev/hostname", "h03.lab")],
            &[("chaoshub.dev/hostname", "spoofed")],
            &[("chaoshub.dev/hostname", "h03.lab"), ("rack", "r0")],
        ] {
            out.push(TargetSelector {
                label_selectors: labels(l),
                ..Default::default()
            });
        }
        for e in [
            vec![expr("rack", "In", &["r0", "r2", "r0"])],
            vec![expr("rack", "In", &[])],
            vec![expr("rack", "NotIn", &["r0"])],
            vec![expr("moved", "Exists", &[])],
            vec![expr("moved", "DoesNotExist", &[])],
            vec![expr("zone", "In", &["z1"]), expr("rack", "NotIn", &["r1"])],
            vec![expr("chaoshub.dev/agent-health", "In", &["healthy"])],
            vec![expr("rack", "Sideways", &["r0"])],
        ] {
            out.push(TargetSelector {
                expression_selectors: e,
                ..Default::default()
            });
        }
        out.push(TargetSelector {
            names: names(&["h01", "h12", "nobody"]),
            label_selectors: labels(&[("rack", "nowhere")]),
            ..Default::default()
        });
        out.push(TargetSelector {
            names: names(&["h01", "h12", "nobody"]),
            ..Default::default()
        });
        for f in [
            &[("name", "h02")][..],
            &[("id", "h02"), ("metadata.name", "h02")],
            &[("id", "h02"), ("name", "h03")],
            &[("kind", "host")],
            &[("kind", "pod")],
            &[("namespace", "default")],
            &[("environment", "hosts"), ("name", "h05")],
        ] {
            out.push(TargetSelector {
                field_selectors: labels(f),
                ..Default::default()
            });
        }
        out.push(TargetSelector {
            namespaces: vec!["default".into()],
            ..Default::default()
        });
        out.push(TargetSelector {
            nodes: vec!["n1".into()],
            ..Default::default()
        });
        out.push(TargetSelector {
            node_selectors: labels(&[("pool", "big")]),
            ..Default::default()
        });
        out.push(TargetSelector {
            pod_phase_selectors: vec!["Running".into()],
            ..Default::default()
        });
        out.push(TargetSelector {
            annotation_selectors: labels(&[("a", "b")]),
            ..Default::default()
        });
        out
    }

    /// For every selector: the index's candidates, filtered by the hub's selector semantics,
    /// are exactly what filtering the whole inventory gives, in the same order.
    async fn index_agrees_with_the_scan(registry: &Arc<AgentRegistry>) -> usize {
        use chaoshub_adapters::native::NativeAdapter;
        use chaoshub_adapters::{Adapter, Environment};
        let adapter = NativeAdapter::new(Arc::clone(registry) as Arc<dyn AgentLink>);
        let env = Environment {
            name: "hosts".into(),
            spec: serde_json::from_value(serde_json::json!({"adapter": "native"})).unwrap(),
        };
        let inventory = adapter.discover(&env).await.unwrap();
        let mut narrowed = 0;
        for selector in selectors() {
            let scan = crate::selection::filter(&selector, &inventory);
            let found = adapter
                .candidates(&env, &selector)
                .expect("the index answers");
            assert_eq!(found.inventory, inventory.len(), "{selector:?}");
            if found.targets.len() < inventory.len() {
                narrowed += 1;
            }
            assert_eq!(
                crate::selection::retain_matching(&selector, found.targets),
                scan,
                "{selector:?}"
            );
        }
        narrowed
    }

    #[tokio::test]
    async fn selections_from_the_label_index_equal_the_scan_through_reconnects_and_removals() {
        let registry = AgentRegistry::new();
        let (tx, _rx) = mpsc::channel(4);
        let mut sessions = HashMap::new();
        for i in 0..24 {
            let name = format!("h{i:02}");
            let rack = format!("r{}", i % 3);
            let zone = format!("z{}", i % 2);
            let mut labels = vec![
                ("host-id", name.as_str()),
                ("rack", rack.as_str()),
                ("zone", zone.as_str()),
            ];
            if i % 5 == 0 {
                labels.push(("gone", "yes"));
            }
            if i % 4 == 0 {
                labels.push(("node", "n1"));
                labels.push(("node.pool", "big"));
                labels.push(("phase", "Running"));
            }
            if i == 3 {
                // An agent label the adapter overrides on the target.
                labels.push(("chaoshub.dev/hostname", "spoofed"));
            }
            let mut agent = labelled(&name, "hosts", &labels);
            if i % 2 == 0 {
                agent.allowed = vec!["clock".into()];
            }
            let session = registry.connect(agent, tx.clone());
            sessions.insert(name, session);
        }
        // The same names in another environment never leak into this one.
        registry.connect(labelled("h07", "other", &[("rack", "r1")]), tx.clone());
        assert!(index_agrees_with_the_scan(&registry).await > 20);

        // Disconnected agents stay listed (unhealthy) and indexed.
        for name in ["h01", "h07", "h13"] {
            registry.disconnect("hosts", name, sessions[name]);
        }
        index_agrees_with_the_scan(&registry).await;

        // Agents come back with other labels: the old ones no longer find them.
        for (name, rack) in [("h07", "r2"), ("h10", "r1"), ("h15", "r9")] {
            let mut agent = labelled(
                name,
                "hosts",
                &[("host-id", name), ("rack", rack), ("moved", "yes")],
            );
            if name == "h10" {
                agent.allowed = vec!["clock".into()];
            }
            registry.connect(agent, tx.clone());
        }
        index_agrees_with_the_scan(&registry).await;
        let by = |k: &str, v: &str| HostQuery {
            names: None,
            labels: vec![(k.to_string(), vec![v.to_string()])],
        };
        let names = |q: &HostQuery| -> Vec<String> {
            registry
                .hosts_where("hosts", q)
                .unwrap()
                .1
                .into_iter()
                .map(|h| h.name)
                .collect()
        };
        assert_eq!(names(&by("host-id", "h07")), ["h07"]);
        assert!(names(&by("zone", "z1")).iter().all(|n| n != "h07"));
        assert_eq!(names(&by("moved", "yes")), ["h07", "h10", "h15"]);
        // Agents lacking an opt-in, as the scan over every agent finds them.
        for q in [by("rack", "r1"), by("moved", "yes"), HostQuery::default()] {
            let scan: Vec<String> = registry
                .agents("hosts")
                .into_iter()
                .filter(|a| {
                    q.labels
                        .iter()
                        .all(|(k, vs)| a.labels.get(k).is_some_and(|v| vs.contains(v)))
                        && !a.allowed.iter().any(|x| x == "clock")
                })
                .map(|a| a.name)
                .collect();
            assert_eq!(registry.lacking_opt_in("hosts", &q, "clock"), Some(scan));
        }
        let named = HostQuery {
            names: Some(["h10".to_string(), "h11".to_string(), "nobody".to_string()].into()),
            labels: Vec::new(),
        };
        assert_eq!(
            registry.lacking_opt_in("hosts", &named, "clock"),
            Some(vec!["h11".to_string()]),
            "h10 allows clock"
        );
        // Peer addresses (NetworkChaos `target`): label equality over the agents' own labels.
        for (k, v) in [
            ("rack", "r1"),
            ("moved", "yes"),
            ("chaoshub.dev/hostname", "spoofed"),
        ] {
            let scan: Vec<String> = registry
                .agents("hosts")
                .into_iter()
                .filter(|a| a.labels.get(k).map(String::as_str) == Some(v))
                .flat_map(|a| a.addresses)
                .collect();
            assert_eq!(registry.addresses_where("hosts", &by(k, v)), Some(scan));
        }

        // Removed agents leave the index; an environment without agents answers empty.
        for name in ["h00", "h07", "h22"] {
            assert!(registry.remove("hosts", name));
        }
        index_agrees_with_the_scan(&registry).await;
        assert!(names(&by("host-id", "h07")).is_empty());
        assert_eq!(
            registry.hosts_where("nowhere", &by("rack", "r1")),
            Some((0, Vec::new()))
        );
        // Ranges of the inventory, joined, are the inventory.
        let mut joined = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (total, page) = registry.hosts_page("hosts", after.as_deref(), 5).unwrap();
            assert_eq!(total, registry.hosts("hosts").len());
            let Some(last) = page.last() else { break };
            after = Some(last.name.clone());
            joined.extend(page);
        }
        assert_eq!(joined, registry.hosts("hosts"));
        assert_eq!(
            registry.hosts_page("nowhere", None, 5),
            Some((0, Vec::new()))
        );
        assert!(registry.remove("other", "h07"));
        assert!(!registry.lock().agents.contains_key("other"));
        let inner = registry.lock();
        let hosts = &inner.agents["hosts"];
        for (key, values) in &hosts.by_label {
            for (value, names) in values {
                assert!(!names.is_empty(), "{key}={value}: no empty sets are kept");
                for n in names {
                    assert_eq!(hosts.agents[n].info.labels.get(key), Some(value));
                }
            }
        }
    }

    #[test]
    fn agents_are_paged_by_environment_and_name_with_a_total() {
        let registry = AgentRegistry::new();
        let (tx, _rx) = mpsc::channel(4);
        for (env, name) in [("b", "y"), ("a", "z"), ("b", "x"), ("c", "w"), ("a", "v")] {
            registry.connect(labelled(name, env, &[]), tx.clone());
        }
        let all = |_: &str| true;
        let keys = |p: &AgentPage| -> Vec<(String, String)> {
            p.items
                .iter()
                .map(|a| (a.environment.clone(), a.name.clone()))
                .collect()
        };
        let key = |e: &str, n: &str| (e.to_string(), n.to_string());
        let first = registry.page(None, None, 2, &all);
        assert_eq!(keys(&first), [key("a", "v"), key("a", "z")]);
        assert!(first.more);
        assert_eq!(first.total, 5);
        let second = registry.page(None, Some(("a", "z")), 2, &all);
        assert_eq!(keys(&second), [key("b", "x"), key("b", "y")]);
        assert!(second.more);
        let last = registry.page(None, Some(("b", "y")), 2, &all);
        assert_eq!(keys(&last), [key("c", "w")]);
        assert!(!last.more);
        // A cursor whose agent is gone (or never was) still starts after it.
        assert_eq!(
            keys(&registry.page(None, Some(("a", "w")), 1, &all)),
            [key("a", "z")]
        );
        assert_eq!(
            keys(&registry.page(None, Some(("bb", "")), 5, &all)),
            [key("c", "w")]
        );
        // One environment; a caller scoped to some environments sees and counts only those.
        let b = registry.page(Some("b"), None, 10, &all);
        assert_eq!((keys(&b).len(), b.total, b.more), (2, 2, false));
        let scoped = registry.page(None, None, 10, &|env| env != "b");
        assert_eq!(keys(&scoped), [key("a", "v"), key("a", "z"), key("c", "w")]);
        assert_eq!(scoped.total, 3);
        assert_eq!(
            registry.page(Some("b"), None, 10, &|env| env != "b").total,
            0
        );
        // Every page joined is the full listing.
        let mut joined = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let page = registry.page(
                None,
                after.as_ref().map(|(e, n)| (e.as_str(), n.as_str())),
                1,
                &all,
            );
            joined.extend(page.items.clone());
            if !page.more {
                break;
            }
            let last = page.items.last().unwrap();
            after = Some((last.environment.clone(), last.name.clone()));
        }
        assert_eq!(joined, registry.list(None));
    }

    #[test]
    fn one_agent_is_looked_up_as_the_list_shows_it() {
        let registry = AgentRegistry::new();
        let (tx, _rx) = mpsc::channel(4);
        for name in ["a", "b", "c"] {
            registry.connect(info(name), tx.clone());
        }
        let session = registry.connect(info("d"), tx);
        registry.disconnect("hosts", "d", session);
        for listed in registry.list(None) {
            assert_eq!(registry.get("hosts", &listed.name).as_ref(), Some(&listed));
        }
        let d = registry.get("hosts", "d").unwrap();
        assert!(!d.connected);
        assert_eq!(d.health, "disconnected");
        assert_eq!(registry.get("hosts", "b").unwrap().health, "healthy");
        assert!(registry.get("hosts", "nobody").is_none());
        assert!(registry.get("other", "a").is_none());
    }

    #[test]
    fn usage_is_kept_per_agent_bounded_sanitised_and_across_a_reconnect() {
        let registry = AgentRegistry::new();
        let (tx, _rx) = mpsc::channel(4);
        let session = registry.connect(info("a"), tx.clone());
        let beat = |session: u64, cpu: f32| {
            registry.heartbeat(
                "hosts",
                "a",
                session,
                0,
                Some(HostUsage {
                    cpu_percent: cpu,
                    mem_used_bytes: 5 * 1024,
                    mem_total_bytes: 4 * 1024,
                    load1: f32::NAN,
                }),
            )
        };
        for i in 0..USAGE_SAMPLES + 10 {
            beat(session, i as f32);
        }
        let series = registry.usage("hosts", "a", None).unwrap();
        assert_eq!(
            series.len(),
            USAGE_SAMPLES,
            "the oldest samples are dropped"
        );
        assert_eq!(series[0].cpu_percent, 10.0);
        assert_eq!(
            series.last().unwrap().cpu_percent,
            100.0,
            "clamped to 0–100"
        );
        assert_eq!(series[0].mem_used_bytes, 4 * 1024, "never above the total");
        assert_eq!(series[0].load1, 0.0, "a NaN load is not passed on");
        let latest = registry.list(Some("hosts"))[0].usage.clone().unwrap();
        assert_eq!(&latest, series.last().unwrap());
        // A stale session's beat is ignored; a reconnect keeps the series.
        beat(session + 100, 1.0);
        let again = registry.connect(info("a"), tx);
        assert_eq!(
            registry.usage("hosts", "a", None).unwrap().len(),
            USAGE_SAMPLES
        );
        beat(again, -3.0);
        let series = registry.usage("hosts", "a", None).unwrap();
        assert_eq!(series.last().unwrap().cpu_percent, 0.0);
        let since = series.last().unwrap().at;
        assert!(!registry
            .usage("hosts", "a", Some(since))
            .unwrap()
            .is_empty());
        assert!(registry.usage("hosts", "nobody", None).is_none());
    }
}
