//! The lifecycle engine: a reconciler over the stored state (DESIGN.md §3).
//!
//! Every pass reads an experiment from the store and moves it one or more steps towards what
//! the user asked for (`status.desired`), writing each step back before acting on the next. It
//! takes no input but the stored state, so it can run on a timer, on demand after an API call,
//! and after a crash — where it finds experiments half-injected or past their deadline and puts
//! them right. At most one pass per experiment runs at a time.
//!
//! The engine knows no kinds. Every kind family is a [`Controller`] (fault experiments, status
//! checks, schedules, workflows, …) and every side task that follows Running experiments is a
//! [`Watcher`] (stop conditions, status-check runs); both are registered in one
//! [`ControllerRegistry`], built in `crate::controllers::builtin`, and the engine only asks the
//! registry which controller handles a row's kind. The fault lifecycle itself (intent, inject,
//! confirm, recover) is a service of the engine that controllers drive through
//! [`Engine::run_lifecycle`] with their own [`Start`] step.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaoshub_adapters::{
    Adapter, AdapterError, AdapterRegistry, Environment, FaultRequest, Injection, InjectionState,
    Selection,
};
use chaoshub_schema::api::{DesiredState, EventRecord, ExperimentPhase, TargetPhase, TargetRecord};
use chaoshub_schema::duration::parse_duration;
use chaoshub_schema::{Manifest, Target};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{broadcast, Notify};

use crate::config::{EngineConfig, LimitsConfig};
use crate::events::{self, experiment_event, target_event};
use crate::failpoints;
use crate::leadership::{Leadership, ENGINE_LEASE};
use crate::selection::{self, FaultInfo};
use crate::store::fence::{self, Fence};
use crate::store::{ExperimentRow, NewEvent, Store, StoreError};
use crate::telemetry::{AdapterOp, Telemetry};
use crate::time::{self, Clock};

mod drift_watch;
mod due_queue;
mod verify;

pub use drift_watch::DriftWatches;

pub use verify::{on_drift_of, ON_DRIFT_ANNOTATION};

/// An environment's inventory and when it was discovered.
type Discovered = (std::time::Instant, Arc<Vec<Target>>);

/// How old an inventory the submission's protected-target preview may use. A change within it
/// is still caught: the engine discovers afresh and checks again when it selects.
pub const INVENTORY_TTL: Duration = Duration::from_secs(2);

/// What a selector matches in an environment where the hub selects ([`Engine::match_targets`]).
pub struct Matching {
    /// How many targets the environment has.
    pub inventory: usize,
    /// The targets the selector matches, in inventory order.
    pub matched: Vec<Target>,
    /// The whole inventory, where it was discovered (`None`: the adapter's index answered).
    pub discovered: Option<Arc<Vec<Target>>>,
}

/// The engine shared by the API and its own background loop.
pub struct Engine {
    store: Arc<dyn Store>,
    registry: AdapterRegistry,
    config: EngineConfig,
    limits: LimitsConfig,
    /// `security.allowed_endpoints`: what the hub may call.
    endpoints: Arc<crate::endpoints::EndpointAllowList>,
    /// `security.protected_selector`: the label that protects a target everywhere.
    protected_label: Option<crate::selection::ProtectedLabel>,
    wake: Notify,
    /// The loop must read every active experiment at its next turn (`wake`).
    scan_wanted: AtomicBool,
    /// When each experiment is next due, as the passes that ended (and the scans) found.
    due_at: Mutex<due_queue::DueQueue>,
    /// Experiments with a pass under way; `true` when another pass was asked for meanwhile.
    inflight: Mutex<HashMap<String, bool>>,
    /// Earliest time a failed recovery is retried, per experiment.
    retry_at: Mutex<HashMap<String, DateTime<Utc>>>,
    /// Injections retried in a row after a far side dropped out during the call (an agent
    /// restarting), per experiment; cleared once Running or ended.
    inject_retries: Mutex<HashMap<String, u32>>,
    /// Injection permits per environment (`engine.max_injecting_per_environment`).
    injecting: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// When each Running experiment's faults are next read back (drift detection).
    verify_at: Mutex<HashMap<String, DateTime<Utc>>>,
    /// Drift-detection reads in flight per environment (`engine.verify_reads_per_environment`).
    verifying: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// The last inventory discovered per environment and when, for the submission's
    /// protected-target preview ([`INVENTORY_TTL`]); the engine itself always discovers afresh.
    inventories: Mutex<HashMap<String, Discovered>>,
    events: broadcast::Sender<EventRecord>,
    /// Metrics, and OTLP export of events and traces when configured.
    telemetry: Telemetry,
    /// Where "now" comes from for deadlines and schedules (a manual clock in tests).
    clock: Arc<dyn Clock>,
    /// Every kind's controller and every watcher, in one registry.
    controllers: ControllerRegistry,
    /// Agents connected over gRPC; the `native` adapter reaches them through it.
    pub agents: Arc<crate::agents::AgentRegistry>,
    /// Environments being prepared; an injection waits for its environment's.
    pub preparations: crate::preparation::Preparations,
    /// What each environment's adapter last reported about its far side.
    pub environment_statuses: crate::environment_status::EnvironmentStatuses,
    /// Set once the background loop was told to stop: side tasks (drift watches) end with it,
    /// so a stopped engine never acts on a store a newer one owns.
    stopped: tokio::sync::watch::Sender<bool>,
    /// Which replica runs passes when the store is shared ([`Engine::set_leadership`]); a hub
    /// alone on its store leads for good.
    leadership: std::sync::OnceLock<Arc<Leadership>>,
    /// Bumped for every change another replica commits (the event streams re-read the store).
    external_changes: tokio::sync::watch::Sender<u64>,
}

/// The leadership of an engine that was given none: a hub alone on its store.
static SOLE: std::sync::LazyLock<Arc<Leadership>> = std::sync::LazyLock::new(Leadership::sole);

/// When a controller wants its next pass over an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Now,
    At(DateTime<Utc>),
    /// Only when poked (an API call, a child's pass, a watcher).
    Idle,
}

impl Due {
    /// `Now` for a time already reached, `At` otherwise, `Idle` for none.
    pub fn at(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Due {
        match t {
            Some(t) if t <= now => Due::Now,
            Some(t) => Due::At(t),
            None => Due::Idle,
        }
    }
}

/// One kind family's reconciler (kube-rs's `Controller`, omicron's background task): which
/// kinds it handles, when it wants a pass, and the pass itself. It takes no input but the
/// stored row; the engine decides when to call it, never two passes over one experiment at
/// once, catches its panics and retries its errors.
pub trait Controller: Send + Sync {
    /// A short name for logs (`fault`, `schedule`, …).
    fn name(&self) -> &'static str;
    /// Whether this controller drives experiments of `kind`.
    fn handles(&self, kind: &str) -> bool;
    /// When the experiment wants its next pass.
    fn due(&self, engine: &Engine, row: &ExperimentRow, now: DateTime<Utc>) -> Due;
    /// One pass: moves the experiment as far as it can go now, storing every step.
    fn reconcile<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        row: ExperimentRow,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// A side task that follows active experiments (omicron's watchers): offered every active row
/// on every scan and every experiment that just became Running; it starts whatever it needs
/// (idempotently) and writes intent only — the controllers stay the writers of lifecycle status.
pub trait Watcher: Send + Sync {
    fn name(&self) -> &'static str;
    fn watch(&self, engine: &Arc<Engine>, row: &ExperimentRow);
}

/// The one place controllers and watchers are registered (see `crate::controllers::builtin`).
/// The first controller that handles a kind drives it.
#[derive(Default, Clone)]
pub struct ControllerRegistry {
    controllers: Vec<Arc<dyn Controller>>,
    watchers: Vec<Arc<dyn Watcher>>,
}

impl ControllerRegistry {
    pub fn controller(mut self, c: Arc<dyn Controller>) -> Self {
        self.controllers.push(c);
        self
    }

    pub fn watcher(mut self, w: Arc<dyn Watcher>) -> Self {
        self.watchers.push(w);
        self
    }

    /// The controller of `kind`, or an error naming the registered ones.
    pub fn for_kind(&self, kind: &str) -> Result<&Arc<dyn Controller>, String> {
        self.controllers
            .iter()
            .find(|c| c.handles(kind))
            .ok_or_else(|| {
                let known: Vec<&str> = self.controllers.iter().map(|c| c.name()).collect();
                format!(
                    "no controller handles kind {kind:?} (registered: {})",
                    known.join(", ")
                )
            })
    }
}

/// The step that puts an experiment in force, for controllers that reuse the engine's
/// lifecycle (fault experiments inject; a status check starts its check in the hub).
pub trait Start: Send + Sync {
    /// Pending → in force.
    fn start<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        row: &'a mut ExperimentRow,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Paused → in force again.
    fn resume<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        row: &'a mut ExperimentRow,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// While Running, when drift detection is due: reads back what is in force and acts on
    /// what is found gone. Returns whether the row changed. Nothing to read back by default.
    fn verify<'a>(
        &'a self,
        _engine: &'a Arc<Engine>,
        _row: &'a mut ExperimentRow,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async { Ok(false) })
    }
}

/// The fault start: select targets, record intent, inject and confirm.
pub struct Inject;

impl Start for Inject {
    fn start<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        row: &'a mut ExperimentRow,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(engine.inject(row))
    }

    fn resume<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        row: &'a mut ExperimentRow,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            // Faults paused in place (Engine::pause) are still there: they are resumed, not
            // injected again.
            if row.status.targets.iter().any(needs_recovery) {
                let ev = experiment_event(
                    row,
                    events::EXPERIMENT_RESUMED,
                    "resuming: the faults paused in place take effect again",
                );
                engine.save(row, vec![ev])?;
                return engine.resume_in_place(row).await;
            }
            let ev = experiment_event(
                row,
                events::EXPERIMENT_RESUMED,
                "resuming: re-injecting the fault",
            );
            engine.save(row, vec![ev])?;
            engine.inject(row).await
        })
    }

    fn verify<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        row: &'a mut ExperimentRow,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(engine.verify_running(row))
    }
}

/// Label linking a child experiment to the experiment that created it (a schedule's run, a
/// workflow's node). The engine pokes the parent after every pass of a child, whatever kinds
/// they are, so the parent sees its child's new phase (kube-rs's `trigger_owners`).
pub const PARENT_LABEL: &str = "chaoshub.dev/parent";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Rebuilds the typed manifest of a stored experiment (it was validated on the way in).
pub fn stored_manifest(row: &ExperimentRow) -> Result<Manifest, String> {
    let value = serde_json::json!({
        "apiVersion": row.api_version,
        "kind": row.kind,
        "metadata": row.metadata,
        "spec": row.spec,
    });
    chaoshub_schema::manifest_from_value(value)
        .map_err(|e| format!("the stored manifest no longer validates: {e}"))
}

/// Annotation holding an absolute end (RFC 3339) past which the experiment's fault never runs,
/// whatever its `duration`; set by a parent that bounds its child (a workflow node's deadline).
pub const END_BY_ANNOTATION: &str = "chaoshub.dev/end-by";

fn end_by(row: &ExperimentRow) -> Option<DateTime<Utc>> {
    row.metadata
        .annotations
        .get(END_BY_ANNOTATION)
        .and_then(|t| time::parse(t))
}

fn injection_of(row: &ExperimentRow, record: &TargetRecord) -> Injection {
    Injection {
        experiment_uid: row.uid.clone(),
        injection_id: record.injection_id.clone(),
        kind: row.kind.clone(),
        actions: row.status.actions.clone(),
        target: record.target.clone(),
        details: record.details.clone(),
    }
}

/// Injections retried in a row after the far side dropped out during the call, before the
/// experiment fails.
const TRANSIENT_INJECT_RETRIES: u32 = 5;

/// Pause before such a retry (at most `engine.recovery_retry_ms`): long enough for an agent's
/// restart to be noticed, short against a fault's window.
const TRANSIENT_INJECT_PAUSE: Duration = Duration::from_millis(500);

/// The reason an experiment shows while an injection its far side dropped out of is cleared
/// and tried again; `errors` are the targets' failures.
fn interrupted_reason(errors: &[String]) -> String {
    format!(
        "injection interrupted ({}); removing partial faults before injecting again (retrying)",
        errors.join("; ")
    )
}

/// Why one target's injection failed.
struct InjectFailure {
    /// What the adapter returned before the failure (what may be in place).
    details: Value,
    error: String,
    /// The far side dropped out during the call ([`AdapterError::Unreachable`]): worth trying
    /// again once it is back, after removing what it may hold.
    transient: bool,
}

fn needs_recovery(record: &TargetRecord) -> bool {
    matches!(
        record.phase,
        TargetPhase::Injecting | TargetPhase::Injected | TargetPhase::Recovering
    )
}

impl Engine {
    /// An engine with `controllers` built by `build` from a weak handle on the engine itself
    /// (ports that submit children reach the engine through it: two-phase construction, no
    /// late attachment).
    #[allow(clippy::too_many_arguments)]
    pub fn with_clock(
        store: Arc<dyn Store>,
        registry: AdapterRegistry,
        config: EngineConfig,
        limits: LimitsConfig,
        endpoints: Arc<crate::endpoints::EndpointAllowList>,
        protected_label: Option<crate::selection::ProtectedLabel>,
        telemetry: Telemetry,
        clock: Arc<dyn Clock>,
        build: impl FnOnce(&std::sync::Weak<Engine>) -> ControllerRegistry,
    ) -> Arc<Self> {
        let (events, _) = broadcast::channel(1024);
        // Every engine can run agents: the `native` adapter needs this engine's agent registry,
        // so it is added here rather than in `AdapterRegistry::builtin()` (unless a test
        // registered its own).
        let agents = crate::agents::AgentRegistry::with_store(
            Arc::clone(&store),
            Duration::from_secs(config.agent_lease_secs),
        );
        let mut registry = registry;
        if registry.get("native").is_err() {
            registry.register(Arc::new(chaoshub_adapters::native::NativeAdapter::new(
                agents.clone(),
            )));
        }
        Arc::new_cyclic(|weak| Self {
            controllers: build(weak),
            agents,
            store,
            registry,
            config,
            limits,
            endpoints,
            protected_label,
            wake: Notify::new(),
            scan_wanted: AtomicBool::new(true),
            due_at: Mutex::new(due_queue::DueQueue::default()),
            inflight: Mutex::new(HashMap::new()),
            retry_at: Mutex::new(HashMap::new()),
            inject_retries: Mutex::new(HashMap::new()),
            injecting: Mutex::new(HashMap::new()),
            verify_at: Mutex::new(HashMap::new()),
            verifying: Mutex::new(HashMap::new()),
            inventories: Mutex::new(HashMap::new()),
            events,
            telemetry,
            clock,
            preparations: Default::default(),
            environment_statuses: Default::default(),
            stopped: tokio::sync::watch::Sender::new(false),
            leadership: std::sync::OnceLock::new(),
            external_changes: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Makes this engine one replica of several on a shared store: it runs passes only while
    /// `leadership` holds the engine lease. Set once, before [`Engine::run`].
    pub fn set_leadership(&self, leadership: Arc<Leadership>) {
        self.agents.set_leadership(Arc::clone(&leadership));
        let _ = self.leadership.set(leadership);
    }

    pub fn leadership(&self) -> &Arc<Leadership> {
        self.leadership.get().unwrap_or(&SOLE)
    }

    /// The fence of this replica's grant for a pass's writes; none for a hub alone on its
    /// store (nothing to fence against) or a replica that does not lead.
    pub(crate) fn fence(&self) -> Option<Fence> {
        let leadership = self.leadership();
        if !leadership.shared() {
            return None;
        }
        leadership.token().map(|token| Fence {
            lease: ENGINE_LEASE,
            holder: leadership.holder().to_string(),
            token,
        })
    }

    /// Refuses to go on when this replica no longer leads (its lease ran out on the local clock
    /// or a write was fenced): asked before every adapter call, so a replica that was frozen
    /// past its lease touches no far side when it wakes.
    fn ensure_leader(&self) -> Result<(), StoreError> {
        if self.leadership().is_leader() {
            Ok(())
        } else {
            Err(StoreError::Fenced(format!(
                "replica {} no longer holds the engine lease",
                self.leadership().id()
            )))
        }
    }

    /// Another replica committed a change to the shared store: the event streams re-read it,
    /// and a leader looks at the experiment now (a submission or a stop made on a follower).
    pub fn external_change(self: &Arc<Self>, change: crate::store::StoreChange) {
        self.external_changes
            .send_modify(|n| *n = n.wrapping_add(1));
        match change {
            crate::store::StoreChange::Experiment(uid) => self.trigger(&uid),
            // Missed notifications (the listener reconnected), or a halt: rescan everything.
            crate::store::StoreChange::Other => self.wake(),
            crate::store::StoreChange::Events(_) => {}
        }
    }

    /// Changes other replicas committed (see [`Engine::external_change`]).
    pub fn subscribe_external_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.external_changes.subscribe()
    }

    /// The engine's current instant (its clock may be a manual one in tests).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn registry(&self) -> &AdapterRegistry {
        &self.registry
    }

    pub fn limits(&self) -> &LimitsConfig {
        &self.limits
    }

    /// What the hub may call (`security.allowed_endpoints`).
    pub fn endpoints(&self) -> &Arc<crate::endpoints::EndpointAllowList> {
        &self.endpoints
    }

    /// An inventory of `environment` discovered at most [`INVENTORY_TTL`] ago, if any.
    pub fn recent_inventory(&self, environment: &str) -> Option<Arc<Vec<Target>>> {
        let mut map = lock(&self.inventories);
        match map.get(environment) {
            Some((at, inventory)) if at.elapsed() <= INVENTORY_TTL => Some(Arc::clone(inventory)),
            Some(_) => {
                map.remove(environment);
                None
            }
            None => None,
        }
    }

    /// Keeps `inventory` as the latest of `environment` (bounded: one per environment).
    pub fn remember_inventory(&self, environment: &str, inventory: Arc<Vec<Target>>) {
        lock(&self.inventories).insert(
            environment.to_string(),
            (std::time::Instant::now(), inventory),
        );
    }

    /// Forgets what was discovered of `environment` (it was registered again or deleted).
    pub fn forget_inventory(&self, environment: &str) {
        lock(&self.inventories).remove(environment);
    }

    /// What `selector` (every target when `None`) matches in `env`, where the hub selects: from
    /// the adapter's candidates when it can name them without a discovery (the `native`
    /// adapter's label index: a selector naming one agent of thousands costs a lookup), else
    /// from a discovery — at most [`INVENTORY_TTL`] old when `recent`, and then remembered.
    /// Either way the hub's selector semantics decide (`selection::matches`).
    pub async fn match_targets(
        &self,
        env: &Environment,
        adapter: &dyn Adapter,
        selector: Option<&chaoshub_schema::selector::TargetSelector>,
        recent: bool,
    ) -> Result<Matching, chaoshub_adapters::AdapterError> {
        let every = chaoshub_schema::selector::TargetSelector::default();
        if let Some(found) = adapter.candidates(env, selector.unwrap_or(&every)) {
            return Ok(Matching {
                inventory: found.inventory,
                matched: match selector {
                    Some(s) => selection::retain_matching(s, found.targets),
                    None => found.targets,
                },
                discovered: None,
            });
        }
        let cached = if recent {
            self.recent_inventory(&env.name)
        } else {
            None
        };
        let inventory = match cached {
            Some(inventory) => inventory,
            None => {
                let inventory = Arc::new(
                    tracing::Instrument::instrument(
                        adapter.discover(env),
                        tracing::debug_span!("engine.discover"),
                    )
                    .await?,
                );
                self.remember_inventory(&env.name, Arc::clone(&inventory));
                inventory
            }
        };
        Ok(Matching {
            inventory: inventory.len(),
            matched: match selector {
                Some(s) => selection::filter(s, &inventory),
                None => inventory.to_vec(),
            },
            discovered: Some(inventory),
        })
    }

    /// The targets of `env` a guardrail protects, from the adapter's candidates (`None` when
    /// it has none to offer: discover and check each target instead). Sorted by id.
    pub fn protected_candidates(
        &self,
        env: &Environment,
        adapter: &dyn Adapter,
        guardrails: &crate::selection::Guardrails,
    ) -> Option<Vec<Target>> {
        use chaoshub_schema::selector::TargetSelector;
        let mut queries = Vec::new();
        if let Some(label) = &guardrails.label {
            queries.push(TargetSelector {
                label_selectors: [(label.key.clone(), label.value.clone())].into(),
                ..Default::default()
            });
        }
        // A protected name is a target's name or its id.
        for p in &guardrails.protected {
            for field in ["name", "id"] {
                queries.push(TargetSelector {
                    field_selectors: [(field.to_string(), p.clone())].into(),
                    ..Default::default()
                });
            }
        }
        let mut found: BTreeMap<String, Target> = BTreeMap::new();
        for query in &queries {
            for t in adapter.candidates(env, query)?.targets {
                if selection::matches(query, &t) && guardrails.protection(&t).is_some() {
                    found.entry(t.id.clone()).or_insert(t);
                }
            }
        }
        Some(found.into_values().collect())
    }

    /// The protected-target guardrails of an environment (docs/security.md).
    pub fn guardrails(&self, env: &Environment) -> crate::selection::Guardrails {
        crate::selection::Guardrails::of(self.protected_label.as_ref(), &env.spec.settings)
    }

    /// Where the far side selects (Chaos Mesh's controller picks the pods), what its selector
    /// matches now is held to the environment's guardrails: no matched target may be protected,
    /// and the most its mode may pick must be within `settings.max_targets`. Adapters that cannot
    /// preview their far side's selection pass as before (their `Final` targets are checked).
    pub(crate) async fn check_far_side_guardrails(
        &self,
        env: &Environment,
        manifest: &Manifest,
        adapter: &dyn chaoshub_adapters::Adapter,
    ) -> Result<(), crate::error::HubError> {
        use crate::error::HubError;
        let Some(found) = adapter
            .preview_far_side(env, manifest)
            .await
            .map_err(HubError::from_adapter)?
        else {
            return Ok(());
        };
        let Some(fault) = manifest.fault().map(FaultInfo::of) else {
            return Ok(());
        };
        let most =
            crate::selection::max_selected(found.matched.len(), fault.mode, fault.value.as_deref())
                .map_err(|e| HubError::invalid_field("spec.value", e.to_string()))?;
        let guardrails = self.guardrails(env);
        let inventory = match guardrails.max_targets {
            Some(crate::selection::TargetCap::Percent(_)) => adapter
                .discover(env)
                .await
                .map_err(HubError::from_adapter)?
                .len(),
            _ => found.matched.len(),
        };
        guardrails
            .check(&env.name, inventory, &found.matched, most)
            .map_err(HubError::guardrail)
    }

    /// Live events as they are stored (for the SSE stream).
    pub fn subscribe(&self) -> broadcast::Receiver<EventRecord> {
        self.events.subscribe()
    }

    /// Publishes events that were just stored.
    pub fn publish(&self, records: Vec<EventRecord>) {
        self.publish_for(None, records);
    }

    /// Publishes events stored with `row` (telemetry reads the row's deadline).
    fn publish_for(&self, row: Option<&ExperimentRow>, records: Vec<EventRecord>) {
        self.telemetry.on_events(row, &records);
        for record in records {
            let _ = self.events.send(record);
        }
    }

    /// Stores and publishes events.
    pub fn record(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        let records = self.store.append_events(events)?;
        self.publish(records);
        Ok(())
    }

    /// Asks for a pass over one experiment now. Cheap and idempotent.
    pub fn trigger(self: &Arc<Self>, uid: &str) {
        // A follower runs no pass: the leader hears of the change through the store.
        if !self.leadership().is_leader() {
            return;
        }
        {
            let mut inflight = lock(&self.inflight);
            if let Some(again) = inflight.get_mut(uid) {
                *again = true;
                return;
            }
            inflight.insert(uid.to_string(), false);
        }
        let engine = Arc::clone(self);
        let uid = uid.to_string();
        tokio::spawn(async move {
            loop {
                let Some(fence) = engine.leadership().is_leader().then(|| engine.fence()) else {
                    lock(&engine.inflight).remove(&uid);
                    return;
                };
                // A panicking pass (an adapter bug, say) must not leave the experiment marked
                // in flight forever: that would stop every later pass and strand its fault.
                let pass =
                    std::panic::AssertUnwindSafe(fence::scope(fence, engine.reconcile(&uid)));
                let outcome = match futures::FutureExt::catch_unwind(pass).await {
                    Ok(Err(StoreError::Fenced(why))) => {
                        // Another replica leads now: this one steps down and leaves it alone.
                        tracing::warn!(experiment = %uid, reason = %why, "engine pass fenced: another replica holds the engine lease, so this pass's write was refused");
                        engine.leadership().step_down(&why);
                        lock(&engine.inflight).remove(&uid);
                        return;
                    }
                    Ok(result) => result.map_err(|e| e.to_string()),
                    Err(_) => Err("the reconcile pass panicked (a bug); it will be retried".into()),
                };
                if let Err(e) = outcome {
                    tracing::error!(experiment = %uid, error = %e, "reconcile pass failed");
                    engine.retry_after(&uid, engine.recovery_retry());
                }
                let mut inflight = lock(&engine.inflight);
                if inflight.get(&uid).copied().unwrap_or(false) {
                    inflight.insert(uid.clone(), false);
                    continue;
                }
                inflight.remove(&uid);
                break;
            }
            engine.after_pass(&uid);
        });
    }

    /// After a pass: pokes the experiment's parent (label [`PARENT_LABEL`]), which follows
    /// its children, and tells the loop when the experiment is next due.
    fn after_pass(self: &Arc<Self>, uid: &str) {
        let row = match self.store.get_experiment(uid) {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(experiment = %uid, error = %e, "cannot read an experiment after its pass; the next scan looks at it");
                self.wake();
                return;
            }
        };
        if let Some(parent) = row.metadata.labels.get(PARENT_LABEL) {
            self.trigger(parent);
        }
        let now = self.now();
        let at = match self.due(&row, now) {
            Due::Now => now,
            Due::At(t) => t,
            Due::Idle => return,
        };
        if lock(&self.due_at).note(uid, at) {
            self.wake.notify_one();
        }
    }

    /// Offers the row to every registered watcher.
    fn watch(self: &Arc<Self>, row: &ExperimentRow) {
        for watcher in &self.controllers.watchers {
            watcher.watch(self, row);
        }
    }

    /// The semaphore capping concurrent injections into one environment.
    fn injection_permits(&self, environment: &str) -> Arc<tokio::sync::Semaphore> {
        let mut map = lock(&self.injecting);
        Arc::clone(map.entry(environment.to_string()).or_insert_with(|| {
            Arc::new(tokio::sync::Semaphore::new(
                self.config.max_injecting_per_environment,
            ))
        }))
    }

    /// Wakes the background loop to read every active experiment again (something changed
    /// that no single pass reports: another replica's write, a halt, a retry plan).
    pub fn wake(&self) {
        self.scan_wanted.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// The background loop: scans stored state, starts passes that are due, and sleeps until the
    /// earliest deadline (or the resync interval, or a wake-up).
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let resync = chrono::Duration::milliseconds(self.config.resync_interval_ms as i64);
        // A manual clock (tests) announces every move, so deadlines it passes are seen at once.
        let mut clock_moved = self.clock.subscribe();
        // An agent that (re)connects may have restarted without its faults: read them back.
        let mut connections = self.agents.subscribe_connections();
        let mut role = self.leadership().subscribe();
        let mut next_scan = self.now();
        loop {
            if !self.leadership().is_leader() {
                // A follower: nothing to scan until this replica takes the lease, and then
                // everything.
                self.scan_wanted.store(true, Ordering::SeqCst);
                tokio::select! {
                    _ = role.changed() => {}
                    // The grant may lapse on the local clock with no change sent.
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = shutdown.changed() => {
                        self.stopped.send_replace(true);
                        return;
                    }
                }
                continue;
            }
            let now = self.now();
            if self.scan_wanted.swap(false, Ordering::SeqCst) || now >= next_scan {
                next_scan = now + resync;
                match self.store.active_experiments() {
                    Ok(rows) => {
                        for row in rows {
                            // Watchers of Running experiments (started again after a
                            // restart); no-ops otherwise.
                            self.watch(&row);
                            match self.due(&row, now) {
                                Due::Now => self.trigger(&row.uid),
                                Due::At(t) => {
                                    lock(&self.due_at).note(&row.uid, t);
                                }
                                Due::Idle => {}
                            }
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot scan experiments"),
                }
            }
            let due = lock(&self.due_at).pop_due(now);
            for uid in due {
                self.trigger(&uid);
            }
            let next = lock(&self.due_at)
                .next()
                .map_or(next_scan, |t| t.min(next_scan));
            let sleep_for = (next - self.now()).to_std().unwrap_or(Duration::ZERO);
            let moved = async {
                match clock_moved.as_mut() {
                    Some(rx) => {
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep_for) => {}
                _ = self.wake.notified() => {}
                // A manual clock (tests) may have jumped past any deadline: look at everything.
                _ = moved => self.scan_wanted.store(true, Ordering::SeqCst),
                connected = connections.recv() => {
                    match connected {
                        Ok(c) => self.verify_soon(Some(&c.environment)),
                        Err(broadcast::error::RecvError::Lagged(_)) => self.verify_soon(None),
                        Err(broadcast::error::RecvError::Closed) => {}
                    }
                    // The reads it planned are due now.
                    self.scan_wanted.store(true, Ordering::SeqCst);
                }
                _ = shutdown.changed() => {
                    self.stopped.send_replace(true);
                    return;
                }
            }
        }
    }

    fn due(&self, row: &ExperimentRow, now: DateTime<Utc>) -> Due {
        if lock(&self.inflight).contains_key(&row.uid) {
            return Due::Idle;
        }
        if let Some(at) = lock(&self.retry_at).get(&row.uid).copied() {
            // Retry delays are real time (they pace calls to a far side), even under a manual
            // clock; translate the wait onto the engine's clock for the scan.
            let real_now = time::now();
            if at > real_now {
                return Due::At(now + (at - real_now));
            }
        }
        match self.controllers.for_kind(&row.kind) {
            Ok(controller) => controller.due(self, row, now),
            Err(e) => {
                tracing::error!(experiment = %row.uid, error = %e, "experiment left alone");
                Due::Idle
            }
        }
    }

    /// When the engine's lifecycle (see [`Engine::run_lifecycle`]) wants its next pass.
    pub fn lifecycle_due(&self, row: &ExperimentRow, now: DateTime<Utc>) -> Due {
        let status = &row.status;
        match status.phase {
            ExperimentPhase::Pending | ExperimentPhase::Injecting | ExperimentPhase::Recovering => {
                Due::Now
            }
            ExperimentPhase::Running => {
                if status.desired != DesiredState::Run {
                    return Due::Now;
                }
                match status.deadline.as_deref().and_then(time::parse) {
                    Some(deadline) if deadline <= now => Due::Now,
                    Some(deadline) => Due::At(deadline),
                    None => Due::Idle,
                }
            }
            ExperimentPhase::Paused => {
                if status.desired == DesiredState::Pause {
                    Due::Idle
                } else {
                    Due::Now
                }
            }
            ExperimentPhase::Finished | ExperimentPhase::Failed | ExperimentPhase::Aborted => {
                Due::Idle
            }
        }
    }

    /// Writes the row's status with its events, then publishes the events.
    pub fn save(&self, row: &ExperimentRow, events: Vec<NewEvent>) -> Result<(), StoreError> {
        let _span = tracing::debug_span!("engine.save").entered();
        let records = self.store.update_status(&row.uid, &row.status, &events)?;
        self.publish_for(Some(row), records);
        Ok(())
    }

    /// One pass: hands the experiment to its kind's controller.
    pub async fn reconcile(self: &Arc<Self>, uid: &str) -> Result<(), StoreError> {
        tracing::Instrument::instrument(
            self.reconcile_now(uid),
            tracing::debug_span!("engine.pass"),
        )
        .await
    }

    async fn reconcile_now(self: &Arc<Self>, uid: &str) -> Result<(), StoreError> {
        let Some(row) = self.store.get_experiment(uid)? else {
            return Ok(());
        };
        match self.controllers.for_kind(&row.kind) {
            Ok(controller) => controller.reconcile(self, row).await,
            Err(e) => {
                tracing::error!(experiment = %uid, error = %e, "experiment left alone");
                Ok(())
            }
        }
    }

    /// The experiment lifecycle shared by every controller whose experiments are put in force
    /// and taken out again (faults, status checks): halt re-checked before every start, pause
    /// and resume, the deadline, stop, recovery with retries, and resumption of an interrupted
    /// injection. `start` is the controller's own step into force.
    pub async fn run_lifecycle(
        self: &Arc<Self>,
        uid: &str,
        start: &dyn Start,
    ) -> Result<(), StoreError> {
        // Each step stores its result; loop until a step leaves nothing more to do now.
        for _ in 0..8 {
            let Some(mut row) = self.store.get_experiment(uid)? else {
                return Ok(());
            };
            let now = self.now();
            let progressed = match (row.status.phase, row.status.desired) {
                (ExperimentPhase::Pending, DesiredState::Run)
                | (ExperimentPhase::Paused, DesiredState::Run)
                    if self.store.halt_status()?.halted =>
                {
                    // Halt-all may have raced with a resume or a submit: nothing is injected
                    // while the hub is halted.
                    let halt = self.store.halt_status()?;
                    let why = format!("halted: {}", halt.reason.unwrap_or_default());
                    row.desired_reason = Some(why.clone());
                    self.end_paused(&mut row, ExperimentPhase::Aborted, &why)
                        .await?;
                    true
                }
                (ExperimentPhase::Pending, DesiredState::Run) => {
                    start.start(self, &mut row).await?;
                    true
                }
                (ExperimentPhase::Pending, DesiredState::Pause) => {
                    row.status.phase = ExperimentPhase::Paused;
                    row.status.remaining_ms = row
                        .status
                        .remaining_ms
                        .or_else(|| self.duration_of(&row).map(|d| d.as_millis() as u64));
                    let ev = experiment_event(
                        &row,
                        events::EXPERIMENT_PAUSED,
                        "paused before injection",
                    );
                    self.save(&row, vec![ev])?;
                    true
                }
                (ExperimentPhase::Pending | ExperimentPhase::Paused, DesiredState::Stop) => {
                    let why = row
                        .desired_reason
                        .clone()
                        .unwrap_or_else(|| "stopped".into());
                    self.end_paused(&mut row, ExperimentPhase::Aborted, &why)
                        .await?;
                    true
                }
                (ExperimentPhase::Injecting, _) => {
                    self.resume_interrupted_injection(&mut row).await?;
                    true
                }
                (ExperimentPhase::Running, DesiredState::Run) => {
                    match row.status.deadline.as_deref().and_then(time::parse) {
                        Some(deadline) if deadline <= now => {
                            self.recover(&mut row, ExperimentPhase::Finished, "the duration ended")
                                .await?;
                            true
                        }
                        _ if self.verification_due(&row, now) == Due::Now => {
                            start.verify(self, &mut row).await?
                        }
                        _ => false,
                    }
                }
                (ExperimentPhase::Running, DesiredState::Pause) => {
                    // A pause that arrives after the deadline ends the experiment instead:
                    // there is no time left to resume into.
                    let expired = row
                        .status
                        .deadline
                        .as_deref()
                        .and_then(time::parse)
                        .is_some_and(|d| d <= now);
                    if expired {
                        self.recover(&mut row, ExperimentPhase::Finished, "the duration ended")
                            .await?;
                    } else {
                        self.pause(&mut row).await?;
                    }
                    true
                }
                (ExperimentPhase::Running, DesiredState::Stop) => {
                    let why = row
                        .desired_reason
                        .clone()
                        .unwrap_or_else(|| "stopped".into());
                    self.recover(&mut row, ExperimentPhase::Aborted, &why)
                        .await?;
                    true
                }
                (ExperimentPhase::Recovering, _) => {
                    let next = row.status.next_phase.unwrap_or(ExperimentPhase::Finished);
                    let next = match (next, row.status.desired) {
                        // A stop that arrived during recovery turns a pause into an abort.
                        (ExperimentPhase::Paused, DesiredState::Stop) => ExperimentPhase::Aborted,
                        (n, _) => n,
                    };
                    let why = row.status.reason.clone().unwrap_or_default();
                    self.recover(&mut row, next, &why).await?;
                    row.status.phase != ExperimentPhase::Recovering
                }
                (ExperimentPhase::Paused, DesiredState::Run)
                    if row.status.remaining_ms == Some(0) =>
                {
                    row.status.reason = Some("the duration ended while paused".into());
                    self.end_paused(
                        &mut row,
                        ExperimentPhase::Finished,
                        "the duration ended while paused",
                    )
                    .await?;
                    true
                }
                (ExperimentPhase::Paused, DesiredState::Run) => {
                    start.resume(self, &mut row).await?;
                    true
                }
                _ => false,
            };
            if !progressed {
                return Ok(());
            }
        }
        Ok(())
    }

    fn duration_of(&self, row: &ExperimentRow) -> Option<Duration> {
        row.spec
            .get("duration")
            .and_then(Value::as_str)
            .and_then(|d| parse_duration(d).ok())
    }

    fn environment(&self, row: &ExperimentRow) -> Result<(Environment, Arc<dyn Adapter>), String> {
        let name = &row.status.environment;
        let env = self
            .store
            .get_environment(name)
            .map_err(|e| format!("cannot read environment {name:?}: {e}"))?
            .ok_or_else(|| format!("environment {name:?} is not registered"))?;
        let adapter = self
            .registry
            .get(&env.spec.adapter)
            .map_err(|e| e.to_string())?;
        Ok((
            Environment {
                name: name.clone(),
                spec: env.spec,
            },
            adapter,
        ))
    }

    /// Ends the experiment in a terminal phase (or Paused) with no fault in place.
    fn finish(&self, row: &mut ExperimentRow, phase: ExperimentPhase) -> Result<(), StoreError> {
        let now = self.now();
        let (name, message) = match phase {
            ExperimentPhase::Finished => (
                events::EXPERIMENT_FINISHED,
                "finished: every fault removed".to_string(),
            ),
            ExperimentPhase::Aborted => {
                let why = row
                    .desired_reason
                    .clone()
                    .unwrap_or_else(|| "stopped".into());
                row.status.reason = Some(why.clone());
                (events::EXPERIMENT_ABORTED, format!("aborted: {why}"))
            }
            ExperimentPhase::Failed => (
                events::EXPERIMENT_FAILED,
                format!("failed: {}", row.status.reason.clone().unwrap_or_default()),
            ),
            ExperimentPhase::Paused => {
                let remaining = row
                    .status
                    .deadline
                    .as_deref()
                    .and_then(time::parse)
                    .map(|d| (d - now).num_milliseconds().max(0) as u64);
                row.status.remaining_ms = remaining;
                row.status.deadline = None;
                // Faults paused in place (Engine::pause) are still held by the environment.
                let message = if row.status.targets.iter().any(needs_recovery) {
                    "paused: the environment holds the faults paused in place, experiment kept"
                } else {
                    "paused: faults removed, experiment kept"
                };
                (events::EXPERIMENT_PAUSED, message.to_string())
            }
            _ => (events::EXPERIMENT_FINISHED, String::new()),
        };
        row.status.phase = phase;
        row.status.next_phase = None;
        if phase.is_terminal() {
            row.status.ended_at = Some(time::format(now));
        }
        lock(&self.retry_at).remove(&row.uid);
        lock(&self.inject_retries).remove(&row.uid);
        lock(&self.verify_at).remove(&row.uid);
        let ev = experiment_event(row, name, message);
        self.save(row, vec![ev])
    }

    fn fail(&self, row: &mut ExperimentRow, reason: String) -> Result<(), StoreError> {
        row.status.reason = Some(reason);
        self.finish(row, ExperimentPhase::Failed)
    }

    /// Selects targets (first injection) and injects every one, confirming each; rolls back and
    /// fails on any error.
    pub async fn inject(self: &Arc<Self>, row: &mut ExperimentRow) -> Result<(), StoreError> {
        let (env, adapter) = match self.environment(row) {
            Ok(x) => x,
            Err(reason) => return self.fail(row, reason),
        };
        let manifest =
            match tracing::debug_span!("engine.manifest").in_scope(|| stored_manifest(row)) {
                Ok(m) => Arc::new(m),
                Err(reason) => return self.fail(row, reason),
            };
        // Injections into one environment are capped, so that when it is saturated the
        // recoveries (which take no permit) are not queued behind a crowd of new injections.
        // An experiment waiting here is still Pending or Paused: its deadline is not running.
        let permits = self.injection_permits(&env.name);
        let _permit = permits.acquire_owned().await;
        // The user may have paused or stopped it (or halted the hub) while it waited.
        match self.store.get_experiment(&row.uid)? {
            Some(fresh) if fresh.status.desired == DesiredState::Run => {}
            _ => return Ok(()),
        }
        if let Some(end) = end_by(row).filter(|e| *e <= self.now()) {
            // Its window closed before the fault could go in: nothing is injected.
            row.desired_reason = Some(format!(
                "its end ({}, annotation {END_BY_ANNOTATION}) passed before the fault could be injected",
                time::format(end)
            ));
            return self.finish(row, ExperimentPhase::Aborted);
        }
        // What the environment's preparation builds (the Docker helper image) must be there
        // before the fault's clock starts; the wait is shown as the Pending experiment's reason.
        if self.preparations.running(&env.name).is_some() {
            let waiting = format!(
                "waiting for environment {:?} to be prepared (adapter {}) before the fault starts",
                env.name, env.spec.adapter
            );
            row.status.reason = Some(waiting.clone());
            self.save(
                row,
                vec![experiment_event(row, events::EXPERIMENT_WAITING, waiting)],
            )?;
            let limit = crate::preparation::PREPARATION_WAIT;
            if !self.preparations.wait(&env.name, limit).await {
                return self.fail(
                    row,
                    format!(
                        "environment {:?} was still being prepared after {} s",
                        env.name,
                        limit.as_secs()
                    ),
                );
            }
            row.status.reason = None;
            match self.store.get_experiment(&row.uid)? {
                Some(fresh) if fresh.status.desired == DesiredState::Run => {}
                _ => return Ok(()),
            }
        }
        if row.status.targets.is_empty() {
            let picked = match self.select_targets(&manifest, &env, adapter.as_ref()).await {
                Ok((matched, picked)) => {
                    row.status.matched = matched;
                    picked
                }
                Err(reason) => return self.fail(row, reason),
            };
            row.status.targets = picked
                .into_iter()
                .enumerate()
                .map(|(i, target)| TargetRecord {
                    target,
                    injection_id: format!("{}-{i}", row.uid),
                    phase: TargetPhase::Pending,
                    injections: 0,
                    injected_at: None,
                    recovered_at: None,
                    error: None,
                    drifted_at: None,
                    details: Value::Null,
                })
                .collect();
        }
        let now = self.now();
        // Every fault has a deadline: an experiment without `duration` runs until stopped, but
        // at most for the `limits.max_duration_secs` guardrail (unless that is 0), so a fault is
        // never left without a lease on the far side.
        let guardrail = (self.limits.max_duration_secs > 0)
            .then(|| Duration::from_secs(self.limits.max_duration_secs));
        let window = match row.status.remaining_ms.take() {
            Some(ms) => Some(Duration::from_millis(ms)),
            None => self.duration_of(row).or(guardrail),
        };
        let deadline =
            window.map(|w| now + chrono::Duration::from_std(w).unwrap_or(chrono::Duration::MAX));
        // An absolute end set by whoever created the experiment (a workflow node's deadline)
        // caps the window, so the fault ends exactly then however late it went in.
        let deadline = match (deadline, end_by(row)) {
            (Some(d), Some(e)) => Some(d.min(e)),
            (d, e) => d.or(e),
        };
        row.status.deadline = deadline.map(time::format);
        if row.status.started_at.is_none() {
            row.status.started_at = Some(time::format(now));
        }
        row.status.phase = ExperimentPhase::Injecting;
        row.status.reason = None;
        // Intent first: every target is marked before any adapter call, so a crash from here on
        // leaves a record that tells the next pass what may be in place.
        for record in &mut row.status.targets {
            record.phase = TargetPhase::Injecting;
            record.error = None;
            record.injections += 1;
            record.recovered_at = None;
        }
        let count = row.status.targets.len();
        let ev = experiment_event(
            row,
            events::EXPERIMENT_INJECTING,
            format!("injecting into {count} target(s)"),
        );
        self.save(row, vec![ev])?;
        failpoints::hit("engine.after_intent").await;
        self.ensure_leader()?;

        let confirm_timeout = Duration::from_millis(self.config.confirm_timeout_ms);
        let requests: Vec<(usize, FaultRequest, Target)> = row
            .status
            .targets
            .iter()
            .enumerate()
            .map(|(i, record)| {
                (
                    i,
                    FaultRequest {
                        experiment_uid: row.uid.clone(),
                        injection_id: record.injection_id.clone(),
                        name: row.name.clone(),
                        namespace: row.namespace.clone(),
                        manifest: Arc::clone(&manifest),
                        actions: row.status.actions.clone(),
                        deadline,
                    },
                    record.target.clone(),
                )
            })
            .collect();
        let calls = self.telemetry.adapter_calls(row);
        let mut results = futures::stream::iter(requests.into_iter().map(|(i, fault, target)| {
            let adapter = Arc::clone(&adapter);
            let env = env.clone();
            let calls = calls.clone();
            async move {
                let call = calls.start(AdapterOp::Inject, &target, &fault.injection_id);
                let result =
                    inject_and_confirm(adapter.as_ref(), &env, &fault, &target, confirm_timeout)
                        .await;
                call.finish(result.as_ref().err().map(|f| f.error.as_str()));
                (i, result)
            }
        }))
        .buffer_unordered(self.config.parallelism);
        let mut failures = Vec::new();
        let mut all_transient = true;
        // Each target's outcome is stored as it comes, except the last one's, which goes into
        // the same transaction as the experiment's next step (Running, or the rollback): one
        // commit fewer per experiment. A crash before that commit leaves the experiment
        // Injecting, which is recovered exactly as it would be with the target marked Injected.
        let mut unsaved: Option<NewEvent> = None;
        while let Some((i, result)) = results.next().await {
            let record = &mut row.status.targets[i];
            let event = match result {
                Ok(details) => {
                    record.phase = TargetPhase::Injected;
                    record.details = details;
                    record.injected_at = Some(time::format(self.now()));
                    target_event(
                        row,
                        &row.status.targets[i],
                        events::TARGET_INJECTED,
                        "fault confirmed in place",
                    )
                }
                Err(InjectFailure {
                    details,
                    error,
                    transient,
                }) => {
                    all_transient &= transient;
                    // The adapter may have put part of the fault in place; it is recovered below.
                    record.phase = TargetPhase::Injecting;
                    record.details = details;
                    record.error = Some(error.clone());
                    failures.push(format!("{}: {error}", record.target.name));
                    target_event(
                        row,
                        &row.status.targets[i],
                        events::TARGET_FAILED,
                        format!("injection failed: {error}"),
                    )
                }
            };
            if let Some(previous) = unsaved.replace(event) {
                self.save(row, vec![previous])?;
            }
        }
        drop(results);

        if !failures.is_empty() {
            self.save(row, unsaved.into_iter().collect())?;
            if all_transient && self.retry_transient_injection(row) {
                // The far side dropped out during the call (an agent restarting, a proxy
                // restarted): whatever it may hold is removed on the next pass, which then
                // injects again for what is left of the window.
                row.status.reason = Some(interrupted_reason(&failures));
                self.retry_after(&row.uid, self.recovery_retry().min(TRANSIENT_INJECT_PAUSE));
                return self.save(row, Vec::new());
            }
            let injected = row
                .status
                .targets
                .iter()
                .filter(|r| r.phase == TargetPhase::Injected)
                .count();
            let reason = format!(
                "injection failed on {} of {count} target(s) ({}); rolled back {injected} injected target(s)",
                failures.len(),
                failures.join("; ")
            );
            row.status.reason = Some(reason.clone());
            return self.recover(row, ExperimentPhase::Failed, &reason).await;
        }
        lock(&self.inject_retries).remove(&row.uid);
        row.status.phase = ExperimentPhase::Running;
        let message = match &row.status.deadline {
            Some(d) => format!("running: fault confirmed on {count} target(s) until {d}"),
            None => format!("running: fault confirmed on {count} target(s) until stopped"),
        };
        let ev = experiment_event(row, events::EXPERIMENT_RUNNING, message);
        failpoints::hit("engine.before_running").await;
        self.save(row, unsaved.into_iter().chain([ev]).collect())?;
        failpoints::hit("engine.after_running").await;
        // The loop learns the deadline when this pass ends (`after_pass`).
        self.watch(row);
        Ok(())
    }

    async fn select_targets(
        &self,
        manifest: &Manifest,
        env: &Environment,
        adapter: &dyn Adapter,
    ) -> Result<(usize, Vec<Target>), String> {
        let fault = FaultInfo::of(
            manifest
                .fault()
                .ok_or_else(|| format!("{} does not inject a fault", manifest.kind()))?,
        );
        let selection = adapter
            .select(env, manifest)
            .await
            .map_err(|e| format!("target selection failed: {e}"))?;
        // The environment's inventory size where discovery ran (a percent cap needs it).
        let mut adapter_inventory = None;
        let (inventory, matched) = match selection {
            Selection::Final(targets) => {
                if targets.is_empty() {
                    return Err(format!(
                        "no targets: the adapter of environment {:?} selected none",
                        env.name
                    ));
                }
                // The far side selects; what it names is still never a protected target, and
                // what its selector matches now is held to the guardrails too.
                self.guardrails(env)
                    .check(&env.name, targets.len(), &targets, 0)
                    .map_err(|e| format!("refused at injection: {e}"))?;
                self.check_far_side_guardrails(env, manifest, adapter)
                    .await
                    .map_err(|e| format!("refused at injection: {e}"))?;
                return Ok((targets.len(), targets));
            }
            Selection::Matched(matched) => (matched.len(), matched),
            Selection::Hub => {
                let found = self
                    .match_targets(env, adapter, fault.selector.as_ref(), false)
                    .await
                    .map_err(|e| format!("target discovery failed: {e}"))?;
                adapter_inventory = Some(found.inventory);
                (found.inventory, found.matched)
            }
        };
        if matched.is_empty() {
            return Err(format!(
                "no targets matched: the selector matched none of the {} target(s) of environment {:?}",
                inventory, env.name
            ));
        }
        let count = matched.len();
        // Checked again here, not only at submission: the inventory may have changed since
        // (a target labelled protected, listed, or the environment shrunk under a percent cap).
        let guardrails = self.guardrails(env);
        guardrails
            .check(&env.name, 0, &matched, 0)
            .map_err(|e| format!("refused at injection: {e}"))?;
        let picked = selection::apply_mode(
            matched,
            fault.mode,
            fault.value.as_deref(),
            &mut rand::rng(),
        )
        .map_err(|e| e.to_string())?;
        if guardrails.max_targets.is_some() {
            let inventory = match adapter_inventory {
                Some(n) => n,
                None => adapter
                    .discover(env)
                    .await
                    .map_err(|e| format!("target discovery failed: {e}"))?
                    .len(),
            };
            guardrails
                .check(&env.name, inventory, &[], picked.len())
                .map_err(|e| format!("refused at injection: {e}"))?;
        }
        if self.limits.max_targets > 0 && picked.len() > self.limits.max_targets {
            return Err(format!(
                "blast radius guardrail: {} targets selected but at most {} are allowed (limits.max_targets)",
                picked.len(),
                self.limits.max_targets
            ));
        }
        Ok((count, picked))
    }

    /// `engine.recovery_retry_ms`.
    fn recovery_retry(&self) -> Duration {
        Duration::from_millis(self.config.recovery_retry_ms)
    }

    /// No pass for experiment `uid` before `pause` has passed (real time: it paces calls to a
    /// far side).
    fn retry_after(&self, uid: &str, pause: Duration) {
        let at = chrono::Duration::from_std(pause)
            .ok()
            .and_then(|d| time::now().checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        lock(&self.retry_at).insert(uid.to_string(), at);
    }

    /// Whether an injection whose every failure was its far side dropping out is tried again:
    /// while the window is open, at most [`TRANSIENT_INJECT_RETRIES`] times in a row.
    fn retry_transient_injection(&self, row: &ExperimentRow) -> bool {
        let open = match row.status.deadline.as_deref().and_then(time::parse) {
            Some(deadline) => deadline > self.now(),
            None => true,
        };
        if !open {
            return false;
        }
        let mut retries = lock(&self.inject_retries);
        let count = retries.entry(row.uid.clone()).or_default();
        *count += 1;
        *count <= TRANSIENT_INJECT_RETRIES
    }

    /// After a crash during injection, or an injection its far side dropped out of: removes
    /// whatever may be in place, then starts over if the window is still open.
    async fn resume_interrupted_injection(
        self: &Arc<Self>,
        row: &mut ExperimentRow,
    ) -> Result<(), StoreError> {
        // A target that holds an error was interrupted by its far side dropping out (see
        // `retry_transient_injection`); none holds one after a crash, since the intent clears them.
        let dropped_out: Vec<String> = row
            .status
            .targets
            .iter()
            .filter_map(|r| r.error.clone())
            .collect();
        tracing::warn!(experiment = %row.uid, "found an interrupted injection; recovering its targets first");
        self.recover_targets(row).await?;
        if row.status.targets.iter().any(needs_recovery) {
            // Stays Injecting and is retried: once every partial fault is gone the experiment
            // is injected again for what is left of its window (or ends, if none is left).
            // A far side that is briefly out of reach when the hub restarts (an agent that has
            // not reconnected yet) must not fail an experiment whose window is still open.
            row.status.phase = ExperimentPhase::Injecting;
            row.status.reason = Some(if dropped_out.is_empty() {
                "the hub restarted during injection; removing partial faults before injecting again (retrying)"
                    .into()
            } else {
                interrupted_reason(&dropped_out)
            });
            self.retry_after(&row.uid, self.recovery_retry());
            return self.save(row, Vec::new());
        }
        let now = self.now();
        let deadline = row.status.deadline.as_deref().and_then(time::parse);
        match deadline {
            Some(d) if d <= now && !dropped_out.is_empty() => self.fail(
                row,
                format!(
                    "the window ended before the fault could be injected again ({})",
                    dropped_out.join("; ")
                ),
            ),
            Some(d) if d <= now => {
                row.status.reason = Some(
                    "the hub restarted during injection and the window ended while it was down"
                        .into(),
                );
                self.finish(row, ExperimentPhase::Finished)
            }
            _ => {
                row.status.remaining_ms =
                    deadline.map(|d| (d - now).num_milliseconds().max(0) as u64);
                for record in &mut row.status.targets {
                    record.phase = TargetPhase::Pending;
                }
                row.status.phase = ExperimentPhase::Pending;
                let message = if dropped_out.is_empty() {
                    "the hub restarted during injection: partial faults removed, injecting again"
                } else {
                    "the far side dropped out during injection: partial faults removed, injecting again"
                };
                let ev = experiment_event(row, events::EXPERIMENT_INJECTING, message);
                self.save(row, vec![ev])
            }
        }
    }

    /// Calls `recover` for every target that may hold a fault, recording each outcome.
    async fn recover_targets(&self, row: &mut ExperimentRow) -> Result<(), StoreError> {
        let (env, adapter) = match self.environment(row) {
            Ok(x) => x,
            Err(reason) => {
                for record in row.status.targets.iter_mut().filter(|r| needs_recovery(r)) {
                    record.phase = TargetPhase::Recovering;
                    record.error = Some(format!("recovery failed: cannot recover: {reason}"));
                }
                return Ok(());
            }
        };
        let pending: Vec<(usize, Injection)> = row
            .status
            .targets
            .iter()
            .enumerate()
            .filter(|(_, r)| needs_recovery(r))
            .map(|(i, r)| (i, injection_of(row, r)))
            .collect();
        for (i, _) in &pending {
            row.status.targets[*i].phase = TargetPhase::Recovering;
        }
        if !pending.is_empty() {
            self.ensure_leader()?;
        }
        let calls = self.telemetry.adapter_calls(row);
        let mut results = futures::stream::iter(pending.into_iter().map(|(i, injection)| {
            let adapter = Arc::clone(&adapter);
            let env = env.clone();
            let calls = calls.clone();
            async move {
                let call = calls.start(
                    AdapterOp::Recover,
                    &injection.target,
                    &injection.injection_id,
                );
                let result = adapter.recover(&env, &injection).await;
                failpoints::hit("engine.after_recover").await;
                call.finish(result.as_ref().err().map(|e| e.to_string()).as_deref());
                (i, result)
            }
        }))
        .buffer_unordered(self.config.parallelism);
        while let Some((i, result)) = results.next().await {
            let record = &mut row.status.targets[i];
            let event = match result {
                Ok(()) => {
                    record.recovered_at = Some(time::format(self.now()));
                    // An earlier failed recovery attempt is resolved by this one; a target
                    // whose injection failed keeps its Failed mark and error.
                    if record
                        .error
                        .as_deref()
                        .is_some_and(|e| e.starts_with("recovery failed: "))
                    {
                        record.error = None;
                    }
                    record.phase = if record.error.is_some() {
                        TargetPhase::Failed
                    } else {
                        TargetPhase::Recovered
                    };
                    target_event(
                        row,
                        &row.status.targets[i],
                        events::TARGET_RECOVERED,
                        "fault removed",
                    )
                }
                Err(e) => {
                    record.error = Some(format!("recovery failed: {e}"));
                    target_event(
                        row,
                        &row.status.targets[i],
                        events::TARGET_FAILED,
                        format!("recovery failed (will retry): {e}"),
                    )
                }
            };
            self.save(row, vec![event])?;
        }
        Ok(())
    }

    /// Running → Paused. Where the adapter holds every injection paused in place
    /// (`Adapter::pauses_in_place`: Chaos Mesh's pause annotation), each is paused there and the
    /// experiment is Paused once the far side reports every one paused; the targets stay
    /// `Injected`, and a stop or the end recovers them. Otherwise, or when pausing in place
    /// fails, the faults are removed and a resume injects them again.
    async fn pause(self: &Arc<Self>, row: &mut ExperimentRow) -> Result<(), StoreError> {
        let in_place = self.environment(row).ok().and_then(|(env, adapter)| {
            let held: Vec<Injection> = row
                .status
                .targets
                .iter()
                .filter(|r| needs_recovery(r))
                .map(|r| injection_of(row, r))
                .collect();
            let every_one = !held.is_empty()
                && row
                    .status
                    .targets
                    .iter()
                    .all(|r| r.phase == TargetPhase::Injected)
                && held.iter().all(|i| adapter.pauses_in_place(i));
            every_one.then_some((env, adapter, held))
        });
        let Some((env, adapter, held)) = in_place else {
            return self
                .recover(row, ExperimentPhase::Paused, "pause requested")
                .await;
        };
        let failures = self
            .in_place(row, &env, adapter.as_ref(), &held, AdapterOp::Pause)
            .await;
        if !failures.is_empty() {
            // A pause never leaves a fault in force: what could not be paused is removed.
            let why = format!(
                "pause requested; pausing in place failed ({}), so the faults are removed",
                failures.join("; ")
            );
            return self.recover(row, ExperimentPhase::Paused, &why).await;
        }
        self.finish(row, ExperimentPhase::Paused)
    }

    /// Pauses (`AdapterOp::Pause`) or resumes (`AdapterOp::Resume`) every held injection in
    /// place, concurrently, each measured as an adapter call; returns the failures, one line
    /// per target.
    async fn in_place(
        &self,
        row: &ExperimentRow,
        env: &Environment,
        adapter: &dyn Adapter,
        held: &[Injection],
        op: AdapterOp,
    ) -> Vec<String> {
        let calls = self.telemetry.adapter_calls(row);
        let results = futures::future::join_all(held.iter().map(|injection| {
            let call = calls.start(op, &injection.target, &injection.injection_id);
            async move {
                let result = if op == AdapterOp::Pause {
                    adapter.pause(env, injection).await
                } else {
                    adapter.resume(env, injection).await
                };
                call.finish(result.as_ref().err().map(|e| e.to_string()).as_deref());
                result
            }
        }))
        .await;
        results
            .into_iter()
            .zip(held)
            .filter_map(|(r, i)| r.err().map(|e| format!("{}: {e}", i.target.name)))
            .collect()
    }

    /// Ends a Pending or Paused experiment in `phase`: faults held paused in place are
    /// recovered first.
    async fn end_paused(
        self: &Arc<Self>,
        row: &mut ExperimentRow,
        phase: ExperimentPhase,
        why: &str,
    ) -> Result<(), StoreError> {
        if row.status.targets.iter().any(needs_recovery) {
            self.recover(row, phase, why).await
        } else {
            self.finish(row, phase)
        }
    }

    /// Paused in place → Running: every held injection is resumed where it is, and the
    /// experiment runs again for what was left of its window once each reads back in force.
    /// When one cannot be resumed, every fault is removed and the experiment fails with why.
    async fn resume_in_place(self: &Arc<Self>, row: &mut ExperimentRow) -> Result<(), StoreError> {
        let (env, adapter) = match self.environment(row) {
            Ok(x) => x,
            Err(reason) => return self.recover(row, ExperimentPhase::Failed, &reason).await,
        };
        let held: Vec<Injection> = row
            .status
            .targets
            .iter()
            .filter(|r| needs_recovery(r))
            .map(|r| injection_of(row, r))
            .collect();
        let failures = self
            .in_place(row, &env, adapter.as_ref(), &held, AdapterOp::Resume)
            .await;
        if !failures.is_empty() {
            let why = format!(
                "resuming in place failed ({}); every fault removed",
                failures.join("; ")
            );
            return self.recover(row, ExperimentPhase::Failed, &why).await;
        }
        let now = self.now();
        let deadline = row
            .status
            .remaining_ms
            .take()
            .map(|ms| now + chrono::Duration::milliseconds(ms as i64));
        let deadline = match (deadline, end_by(row)) {
            (Some(d), Some(e)) => Some(d.min(e)),
            (d, e) => d.or(e),
        };
        row.status.deadline = deadline.map(time::format);
        row.status.phase = ExperimentPhase::Running;
        row.status.reason = None;
        let message = match &row.status.deadline {
            Some(d) => format!(
                "running: {} fault(s) resumed in place until {d}",
                held.len()
            ),
            None => format!(
                "running: {} fault(s) resumed in place until stopped",
                held.len()
            ),
        };
        let ev = experiment_event(row, events::EXPERIMENT_RUNNING, message);
        self.save(row, vec![ev])?;
        self.watch(row);
        Ok(())
    }

    /// Removes every fault, then moves to `next`; stays `Recovering` (retried later) while any
    /// removal fails.
    async fn recover(
        self: &Arc<Self>,
        row: &mut ExperimentRow,
        next: ExperimentPhase,
        why: &str,
    ) -> Result<(), StoreError> {
        if row.status.phase != ExperimentPhase::Recovering {
            row.status.phase = ExperimentPhase::Recovering;
            row.status.next_phase = Some(next);
            if next == ExperimentPhase::Failed {
                row.status.reason = Some(why.to_string());
            }
            let ev = experiment_event(
                row,
                events::EXPERIMENT_RECOVERING,
                format!("recovering: {why}"),
            );
            self.save(row, vec![ev])?;
        }
        failpoints::hit("engine.before_recover").await;
        self.recover_targets(row).await?;
        if row.status.targets.iter().any(needs_recovery) {
            self.retry_after(&row.uid, self.recovery_retry());
            self.save(row, Vec::new())?;
            self.wake();
            return Ok(());
        }
        failpoints::hit("engine.before_finish").await;
        self.finish(row, next)
    }
}

/// Injects into one target and waits until the adapter reads the fault back (an adapter whose
/// `inject` already read it back is not asked again). On error returns whatever details the
/// adapter gave, so recovery can use them.
async fn inject_and_confirm(
    adapter: &dyn Adapter,
    env: &Environment,
    fault: &FaultRequest,
    target: &Target,
    timeout: Duration,
) -> Result<Value, InjectFailure> {
    let details = tracing::Instrument::instrument(
        adapter.inject(env, fault, target),
        tracing::debug_span!("engine.inject"),
    )
    .await;
    failpoints::hit("engine.after_inject").await;
    let details = details.map_err(|e| InjectFailure {
        details: Value::Null,
        transient: matches!(e, AdapterError::Unreachable { .. }),
        error: e.to_string(),
    })?;
    if adapter.inject_reads_back() {
        return Ok(details);
    }
    let injection = Injection {
        experiment_uid: fault.experiment_uid.clone(),
        injection_id: fault.injection_id.clone(),
        kind: fault.kind().to_string(),
        actions: fault.actions.clone(),
        target: target.clone(),
        details: details.clone(),
    };
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(20);
    // Whether the far side was out of reach during the read-back (an agent restarting).
    let mut dropped_out = false;
    loop {
        let status = tracing::Instrument::instrument(
            adapter.status(env, &injection),
            tracing::debug_span!("engine.confirm"),
        )
        .await;
        let last = match status {
            Ok(InjectionState::Active) => return Ok(details),
            Ok(InjectionState::Absent) if dropped_out => {
                // It took the fault, went away and came back without it (a restart whose
                // journal removed it): the same as dropping out during the inject call.
                return Err(InjectFailure {
                    details,
                    error: "the far side dropped out before the fault was confirmed and reads it back as absent since".into(),
                    transient: true,
                });
            }
            Ok(InjectionState::Absent) => "the adapter reads the fault back as absent".to_string(),
            Ok(InjectionState::Unknown(m)) => {
                format!("the adapter cannot tell whether the fault is in place: {m}")
            }
            Ok(InjectionState::Changed(m)) => {
                format!("the fault is not the one injected: {m}")
            }
            Err(e) => {
                dropped_out |= matches!(e, AdapterError::Unreachable { .. });
                format!("status check failed: {e}")
            }
        };
        if started.elapsed() >= timeout {
            return Err(InjectFailure {
                details,
                error: format!("not confirmed within {} ms: {last}", timeout.as_millis()),
                transient: dropped_out,
            });
        }
        tracing::Instrument::instrument(
            tokio::time::sleep(backoff),
            tracing::debug_span!("engine.confirm_wait"),
        )
        .await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}
