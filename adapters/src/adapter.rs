//! The contract between the hub and every adapter.

use std::sync::Arc;

use async_trait::async_trait;
use chaoshub_schema::api::Capability;
use chaoshub_schema::environment::EnvironmentSpec;
use chaoshub_schema::{Manifest, Target, ValidationErrors};
use serde_json::Value;

/// Settings the hub itself reads on every environment, whatever its adapter: `allow`, the
/// privileged fault families the environment opts into; `protected_targets`, names or ids no
/// experiment may select; `max_targets`, the blast-radius cap (docs/security.md). Adapters
/// accept them without reading them.
pub const HUB_SETTINGS: &[&str] = &["allow", "protected_targets", "max_targets"];

/// A registered environment as adapters see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub name: String,
    pub spec: EnvironmentSpec,
}

/// One fault to inject into one target. Everything here is owned so a request can move into a
/// spawned task.
#[derive(Debug, Clone)]
pub struct FaultRequest {
    pub experiment_uid: String,
    /// Deterministic id chosen by the hub before the call (`<uid>-<index>`): adapters name what
    /// they create after it, so a recovery after a crash finds exactly it.
    pub injection_id: String,
    pub name: String,
    pub namespace: String,
    /// The typed manifest (with `spec.environment` resolved).
    pub manifest: Arc<Manifest>,
    pub actions: Vec<String>,
    /// When the hub wants the fault gone. Adapters that can arm a dead man's switch on the far
    /// side (agents, plugins, SSM) pass it on, so the fault ends even if the hub is gone.
    pub deadline: Option<chrono::DateTime<chrono::Utc>>,
}

impl FaultRequest {
    pub fn kind(&self) -> &'static str {
        self.manifest.kind().as_str()
    }

    pub fn spec_value(&self) -> Value {
        self.manifest.spec.to_value()
    }
}

/// A fault as stored by the hub, handed back for status and recovery.
#[derive(Debug, Clone)]
pub struct Injection {
    pub experiment_uid: String,
    pub injection_id: String,
    pub kind: String,
    pub actions: Vec<String>,
    pub target: Target,
    /// What `inject` returned; `Value::Null` when the hub crashed before it answered.
    pub details: Value,
}

/// What an adapter reads back about an injection.
#[derive(Debug, Clone, PartialEq)]
pub enum InjectionState {
    /// The fault is verifiably in place.
    Active,
    /// The fault is not (or no longer) in place.
    Absent,
    /// The adapter could not tell; the message says why.
    Unknown(String),
    /// The fault is there but no longer the one injected: someone else changed or replaced it
    /// (a Chaos Mesh object whose spec another field manager edited). Drift, like `Absent`;
    /// the message says what changed.
    Changed(String),
}

/// Who selects an experiment's targets (see [`Adapter::select`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// The hub: it filters [`Adapter::discover`]'s inventory with the selector, then applies the
    /// mode. What every adapter does unless it says otherwise.
    Hub,
    /// The adapter matched the selector itself, with semantics the generic inventory cannot
    /// carry (a pod's phase, node or fields); the hub applies the mode to these.
    Matched(Vec<Target>),
    /// The far side selects (Chaos Mesh's controller, from the manifest's own selector and
    /// mode): one injection per target here, and the hub applies neither selector nor mode.
    Final(Vec<Target>),
}

/// Part of an environment's inventory found without discovering all of it
/// ([`Adapter::candidates`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidates {
    /// How many targets the whole inventory has.
    pub inventory: usize,
    /// Every target of the inventory the selector matches, and perhaps others, in inventory
    /// order.
    pub targets: Vec<Target>,
}

/// What the far side's selector matches now ([`Adapter::preview_far_side`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FarSideMatch {
    /// Who selects when the experiment runs, for the plan (`Chaos Mesh`).
    pub selected_by: String,
    /// The targets its selector matches, before its mode.
    pub matched: Vec<Target>,
}

/// What an adapter found out about an environment's far side (see
/// [`Adapter::environment_status`]), shown in the environment's `status`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvironmentReport {
    /// Facts by name (versions, what the far side serves), never a secret.
    pub details: std::collections::BTreeMap<String, Value>,
    /// What the check found wrong, in plain words (a missing permission, a missing component).
    pub problems: Vec<String>,
}

/// Errors of adapters. The hub maps them onto HTTP statuses and experiment reasons.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The environment could not be reached (connection refused, timeout, DNS…): HTTP 503.
    #[error("environment {environment:?} is unreachable at {endpoint}: {message}")]
    Unreachable {
        environment: String,
        endpoint: String,
        message: String,
    },
    /// The environment's settings are invalid (HTTP 400 when registering).
    #[error("invalid environment settings: {0}")]
    InvalidSettings(ValidationErrors),
    /// The adapter cannot run this kind/action here (HTTP 422).
    #[error("{kind}/{action} is not supported by this environment: {message}")]
    Unsupported {
        kind: String,
        action: String,
        message: String,
    },
    /// The far side refused the request as invalid (a plugin's 4xx), with its message.
    #[error("rejected by the environment: {0}")]
    Rejected(String),
    /// Anything else that went wrong while talking to the environment.
    #[error("{0}")]
    Failed(String),
}

/// One adapter type. Implementations are stateless: any per-fault state goes into the value
/// `inject` returns, which the hub stores and hands back in `Injection::details`.
#[async_trait]
pub trait Adapter: Send + Sync {
    /// The type name environments use (`spec.adapter`).
    fn adapter_type(&self) -> &'static str;

    fn description(&self) -> &'static str;

    /// The static capability matrix of (kind, action) pairs.
    fn capabilities(&self) -> Vec<Capability>;

    /// Whether the matrix depends on the environment (plugins describe their own).
    fn dynamic_capabilities(&self) -> bool {
        false
    }

    /// Why this adapter can never run `kind` (or `kind`/`action`): the far side has nothing it
    /// could act on (a TCP proxy has no processes to stress). `None` means the gap is only
    /// unimplemented. Shown as "n/a" in the conformance matrix and in 422 messages.
    fn not_applicable(&self, kind: &str, action: &str) -> Option<&'static str> {
        let _ = (kind, action);
        None
    }

    /// The nearest thing this adapter does run when it does not run `kind`/`action`, as a
    /// sentence for 422 messages ("use PhysicalMachineChaos action clock (host clock skew)").
    fn alternative(&self, kind: &str, action: &str) -> Option<&'static str> {
        let _ = (kind, action);
        None
    }

    /// Why an environment does not offer a capability this adapter declares, when the reason is
    /// on the environment's side (an agent started without an opt-in such as
    /// `--allow clock`, a kernel without the mechanism). `None`: no particular reason.
    fn capability_gap(&self, env: &Environment, capability: &Capability) -> Option<String> {
        let _ = (env, capability);
        None
    }

    /// The environment this adapter registers from a manifest of another kind than
    /// `Environment` (the Kubernetes adapter: Chaos Mesh's `RemoteCluster`), or the problems
    /// with their field paths; `None` when the kind is not one it registers. The hub asks every
    /// adapter, so a kind is registered by at most one. Pure: no network, no file read.
    fn environment_from(
        &self,
        manifest: &Manifest,
    ) -> Option<Result<EnvironmentSpec, ValidationErrors>> {
        let _ = manifest;
        None
    }

    /// Pure check of an environment's endpoint and settings; never touches the network.
    fn validate_environment(&self, env: &Environment) -> Result<(), ValidationErrors>;

    /// Every address the adapter will call for this environment, each with the field that
    /// names it (`("spec.endpoint", "http://…")`), defaults included: the hub checks them
    /// against `security.allowed_endpoints` at registration and at submission. Pure.
    fn endpoints(&self, env: &Environment) -> Vec<(String, String)> {
        env.spec
            .endpoint
            .iter()
            .map(|e| ("spec.endpoint".to_string(), e.trim().to_string()))
            .collect()
    }

    /// The capability matrix of one environment.
    async fn environment_capabilities(
        &self,
        env: &Environment,
    ) -> Result<Vec<Capability>, AdapterError> {
        let _ = env;
        Ok(self.capabilities())
    }

    /// The environment's inventory of targets.
    async fn discover(&self, env: &Environment) -> Result<Vec<Target>, AdapterError>;

    /// The targets of the inventory `selector` may match — every one it matches, perhaps more,
    /// in the order `discover` lists them — and the inventory's size, when the adapter can find
    /// them without discovering the whole inventory (an index kept in memory); never touches
    /// the network. The hub applies the selector to them, so its semantics are the hub's
    /// whatever the adapter returns. `None` (the default): the hub discovers and filters.
    fn candidates(
        &self,
        env: &Environment,
        selector: &chaoshub_schema::selector::TargetSelector,
    ) -> Option<Candidates> {
        let _ = (env, selector);
        None
    }

    /// At most `limit` targets of the inventory whose ids sort after `after`, in id order, and
    /// the inventory's size, when the adapter can list such a range without discovering the
    /// whole inventory; never touches the network. `None` (the default): the hub discovers.
    fn inventory_page(
        &self,
        env: &Environment,
        after: Option<&str>,
        limit: usize,
    ) -> Option<Candidates> {
        let _ = (env, after, limit);
        None
    }

    /// Who selects the targets of this manifest in this environment. Default: the hub, from
    /// `discover`. May touch the network (whether a cluster serves a kind decides it).
    async fn select(
        &self,
        env: &Environment,
        manifest: &Manifest,
    ) -> Result<Selection, AdapterError> {
        let _ = (env, manifest);
        Ok(Selection::Hub)
    }

    /// For a dry run where the far side selects ([`Selection::Final`]): the targets its
    /// selector would match now, by the far side's own semantics (Chaos Mesh's selector over a
    /// cluster's pods), before its mode picks among them. `None`: the adapter cannot tell. May
    /// touch the network; never called for a real run.
    async fn preview_far_side(
        &self,
        env: &Environment,
        manifest: &Manifest,
    ) -> Result<Option<FarSideMatch>, AdapterError> {
        let _ = (env, manifest);
        Ok(None)
    }

    /// Optional warm-up once an environment is registered, which the hub runs in the background
    /// and whose failure it only logs (the first fault then does the work itself): the Docker
    /// adapter builds its helper image here, so that the first fault does not wait for it.
    async fn prepare(&self, env: &Environment) -> Result<(), AdapterError> {
        let _ = env;
        Ok(())
    }

    /// Checks the far side for the environment's status (`GET /api/v1/environments`): whether
    /// it answers, its versions, what it is missing. The hub calls it in the background at
    /// registration, at start and when a read finds the status old; an error is shown as the
    /// environment being unreachable, with the error as the problem. May touch the network.
    /// Default: nothing to report, and the environment has no status.
    async fn environment_status(
        &self,
        env: &Environment,
    ) -> Result<Option<EnvironmentReport>, AdapterError> {
        let _ = env;
        Ok(None)
    }

    /// Pure check of one fault before anything is stored or touched: values this adapter cannot
    /// express are refused at submission (`Rejected` → 400, `Unsupported` → 422) instead of
    /// failing the experiment at injection. Never touches the network. Default: nothing to check.
    fn check_fault(&self, env: &Environment, fault: &FaultRequest) -> Result<(), AdapterError> {
        let _ = (env, fault);
        Ok(())
    }

    /// Extra, adapter-specific detail for a dry-run plan (for example the shell SSM would run).
    fn plan_details(&self, env: &Environment, fault: &FaultRequest, target: &Target) -> Value {
        let _ = (env, fault, target);
        Value::Null
    }

    /// Injects the fault into one target; returns the handle to store. Must be idempotent for
    /// the same `injection_id`.
    async fn inject(
        &self,
        env: &Environment,
        fault: &FaultRequest,
        target: &Target,
    ) -> Result<Value, AdapterError>;

    /// Whether a successful `inject` has itself read the fault back from the far side and found
    /// it in place (the check `status` would make), so the hub marks it confirmed without a
    /// second read. Default `false`: the hub confirms every injection with `status`.
    fn inject_reads_back(&self) -> bool {
        false
    }

    /// Reads back whether the fault is in place.
    async fn status(
        &self,
        env: &Environment,
        injection: &Injection,
    ) -> Result<InjectionState, AdapterError>;

    /// Whether the far side can announce a change to this injection as it happens (a watch),
    /// so the hub need not wait for its next periodic read-back. Pure. Default: no.
    fn watches_drift(&self, injection: &Injection) -> bool {
        let _ = injection;
        false
    }

    /// Waits until the far side announces something about the injection that may be drift
    /// (deleted, changed by someone else) and says what it saw. The hub then reads the
    /// injection back with [`Adapter::status`] at once and applies its drift policy: the watch
    /// only says *when* to look, `status` decides. It returns at once when the change already
    /// happened. The hub drops the future when it stops caring, so it may wait indefinitely;
    /// an error is retried after a pause. Called only where [`Adapter::watches_drift`] says yes.
    async fn watch_drift(
        &self,
        env: &Environment,
        injection: &Injection,
    ) -> Result<String, AdapterError> {
        let _ = env;
        Err(AdapterError::Unsupported {
            kind: injection.kind.clone(),
            action: injection.actions.join(","),
            message: "this adapter cannot watch a fault for drift".into(),
        })
    }

    /// Removes exactly what `inject` added. Idempotent: a fault already gone is success.
    async fn recover(&self, env: &Environment, injection: &Injection) -> Result<(), AdapterError>;

    /// Whether this injection can be paused where it is: the far side keeps it but stops its
    /// effect, and can start it again (Chaos Mesh's pause annotation). The hub then pauses an
    /// experiment with [`Adapter::pause`] and resumes it with [`Adapter::resume`]; otherwise it
    /// recovers at a pause and injects again at a resume. Pure. Default: no.
    fn pauses_in_place(&self, injection: &Injection) -> bool {
        let _ = injection;
        false
    }

    /// Pauses an injection in place and returns once the far side reports it paused (its
    /// effect gone). Idempotent. Called only where [`Adapter::pauses_in_place`] says yes.
    async fn pause(&self, env: &Environment, injection: &Injection) -> Result<(), AdapterError> {
        let _ = env;
        Err(AdapterError::Unsupported {
            kind: injection.kind.clone(),
            action: injection.actions.join(","),
            message: "this adapter cannot pause a fault in place".into(),
        })
    }

    /// Lets an injection paused in place take effect again and returns once the far side reads
    /// it back in force. Idempotent. Called only where [`Adapter::pauses_in_place`] says yes.
    async fn resume(&self, env: &Environment, injection: &Injection) -> Result<(), AdapterError> {
        let _ = env;
        Err(AdapterError::Unsupported {
            kind: injection.kind.clone(),
            action: injection.actions.join(","),
            message: "this adapter cannot resume a fault in place".into(),
        })
    }
}
