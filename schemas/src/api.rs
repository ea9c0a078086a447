//! REST request and response bodies of the hub's `/api/v1`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::environment::EnvironmentSpec;
use crate::error::FieldError;
use crate::meta::ObjectMeta;
use crate::target::Target;

/// Lifecycle phase of an experiment (DESIGN.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ExperimentPhase {
    Pending,
    Injecting,
    Running,
    Paused,
    Recovering,
    Finished,
    Failed,
    Aborted,
}

impl ExperimentPhase {
    pub const ALL: &'static [ExperimentPhase] = &[
        ExperimentPhase::Pending,
        ExperimentPhase::Injecting,
        ExperimentPhase::Running,
        ExperimentPhase::Paused,
        ExperimentPhase::Recovering,
        ExperimentPhase::Finished,
        ExperimentPhase::Failed,
        ExperimentPhase::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExperimentPhase::Pending => "Pending",
            ExperimentPhase::Injecting => "Injecting",
            ExperimentPhase::Running => "Running",
            ExperimentPhase::Paused => "Paused",
            ExperimentPhase::Recovering => "Recovering",
            ExperimentPhase::Finished => "Finished",
            ExperimentPhase::Failed => "Failed",
            ExperimentPhase::Aborted => "Aborted",
        }
    }

    pub fn parse(s: &str) -> Option<ExperimentPhase> {
        ExperimentPhase::ALL
            .iter()
            .copied()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    /// Finished, Failed and Aborted experiments hold no fault and never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ExperimentPhase::Finished | ExperimentPhase::Failed | ExperimentPhase::Aborted
        )
    }
}

impl std::fmt::Display for ExperimentPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the user asked for; the engine moves the phase towards it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum DesiredState {
    Run,
    Pause,
    Stop,
}

/// State of one target's injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum TargetPhase {
    /// Selected, nothing done yet.
    Pending,
    /// The adapter was asked to inject; the outcome is not known yet. After a hub crash a
    /// target in this phase is recovered, because the fault may be in place.
    Injecting,
    /// The adapter read back that the fault is in place.
    Injected,
    /// The adapter was asked to remove the fault.
    Recovering,
    /// The fault is gone.
    Recovered,
    /// Injection or recovery failed; see `error`.
    Failed,
}

/// Per-target record, like Chaos Mesh's `status.experiment.containerRecords`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRecord {
    pub target: Target,
    /// Hub-chosen, deterministic id of this injection (`<uid>-<index>`); adapters name what they
    /// create after it so recovery finds exactly it, even after a crash.
    pub injection_id: String,
    pub phase: TargetPhase,
    /// How many times this target has been injected (pause/resume re-injects).
    #[serde(default)]
    pub injections: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When drift detection last found this target's fault gone while the experiment was
    /// Running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drifted_at: Option<String>,
    /// What the adapter returned on injection (its handle), passed back on recovery.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

/// `status` of an experiment, filled in by the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    pub phase: ExperimentPhase,
    pub desired: DesiredState,
    /// Why the experiment is in its phase (for Failed and Aborted: the cause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub environment: String,
    pub adapter: String,
    pub actions: Vec<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the fault is due to be removed (absent: runs until stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// While paused: how much of the duration is left, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// While `Recovering`: the phase the experiment ends in once every fault is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_phase: Option<ExperimentPhase>,
    /// How many targets the selector matched before the mode picked among them.
    #[serde(default)]
    pub matched: usize,
    #[serde(default)]
    pub targets: Vec<TargetRecord>,
    #[serde(default)]
    pub archived: bool,
    /// For a `Schedule`: its fire times and the runs it created. (Boxed, like `workflow`, so
    /// the status of the many plain experiments stays small.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Box<ScheduleStatus>>,
    /// For a `Workflow`: its nodes and their phases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<Box<WorkflowStatus>>,
    /// Who submitted it: the token name or JWT subject (absent for runs a schedule, workflow
    /// or suite created, and for experiments stored before the hub had authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Drift detection's findings while Running (absent until a fault was first found gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftStatus>,
}

/// What drift detection found: a target's fault read back as gone while the experiment was
/// Running, and what the hub did about it (`on_drift`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftStatus {
    /// How many times a target's fault was found gone.
    pub drifts: u32,
    /// How many times a fault found gone was put back and read back in place.
    pub reinjections: u32,
    /// The policy applied: `reinject`, `fail` or `ignore`.
    pub on_drift: String,
    /// The latest drift: when, on which target, and what was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drift_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drift_target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drift_message: Option<String>,
}

/// Progress of a `Schedule`. Its runs are ordinary experiments named `<schedule>-<unix time>`
/// and labelled `chaoshub.dev/parent: <schedule uid>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// The latest fire time the hub has acted on (fired, skipped or recorded as missed). It is
    /// stored before a run is created, so a restart neither fires it again nor forgets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled_time: Option<String>,
    /// When the schedule fires next (absent when it never fires again or is not running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_scheduled_time: Option<String>,
    /// Fire times skipped because the hub was down (or paused) past `startingDeadlineSeconds`.
    #[serde(default)]
    pub missed: u64,
    /// Fire times skipped because `concurrencyPolicy: Forbid` found a run still active.
    #[serde(default)]
    pub skipped: u64,
    /// Runs, oldest first; finished runs beyond `historyLimit` are archived and dropped.
    #[serde(default)]
    pub history: Vec<ScheduleRun>,
}

/// One run of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRun {
    pub scheduled_time: String,
    /// The run's experiment name (`<schedule>-<unix seconds>`).
    pub name: String,
    /// The run's experiment uid, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The run's phase when the schedule last looked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ExperimentPhase>,
    /// Why the run could not be created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Progress of a `Workflow`: one entry per node of its template tree, parents before children.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStatus {
    pub entry: String,
    pub nodes: Vec<WorkflowNode>,
}

/// Phase of one workflow node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum WorkflowNodePhase {
    Pending,
    Running,
    Succeeded,
    /// The node's `deadline` passed: its work was stopped and the workflow moved on.
    DeadlineExceeded,
    Failed,
    Aborted,
}

impl WorkflowNodePhase {
    pub fn is_done(self) -> bool {
        !matches!(
            self,
            WorkflowNodePhase::Pending | WorkflowNodePhase::Running
        )
    }
}

/// One node of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowNode {
    /// Unique in the workflow; also the name of the node's experiment (`<workflow>-<template>`).
    pub name: String,
    pub template: String,
    pub template_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    pub phase: WorkflowNodePhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// The uid of the experiment this node created (chaos and Schedule nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An experiment as the API returns it: the manifest with `metadata.uid` and `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentObject {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    #[schemars(with = "BTreeMap<String, Value>")]
    pub spec: Value,
    pub status: ExperimentStatus,
}

/// A registered environment as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentObject {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: EnvironmentSpec,
    /// What the hub last learnt about the far side. Absent while no check has finished, and
    /// for adapters that report nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<EnvironmentStatus>,
}

/// The outcome of an environment's last check by its adapter, made when the environment is
/// registered, when the hub starts, and again in the background when a read finds it older
/// than a minute. Kept in memory only: it describes the far side, not the registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    /// Whether the check reached the far side and got its answers.
    pub reachable: bool,
    /// When the check ended (RFC 3339).
    pub checked_at: String,
    /// What is wrong, in plain words: why it is unreachable, or what the check found missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// What the adapter reports, by name (`kubernetes`: `serverVersion`, `chaosMesh`,
    /// `chaosMeshVersion`, `servedKinds`, `missingPermissions`; see each adapter's page).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, Value>,
}

/// One (kind, action) pair an adapter can run.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Capability {
    pub kind: String,
    pub action: String,
}

impl Capability {
    pub fn new(kind: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            action: action.into(),
        }
    }
}

/// `GET /api/v1/conformance`: what each adapter of this hub runs, row by row (kind, action and
/// notable options), derived from the adapters' own submission checks, with the figures
/// measured by tests where a measuring test exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConformanceMatrix {
    /// Adapter types, in column order.
    pub adapters: Vec<String>,
    pub rows: Vec<ConformanceRow>,
}

/// One row of the conformance matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConformanceRow {
    /// `Kind/action` or `Kind/action (option)`.
    pub id: String,
    pub kind: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
    /// The sample manifest the adapters' checks were run on (YAML).
    pub manifest: String,
    /// Adapter type → cell.
    pub cells: BTreeMap<String, ConformanceCell>,
}

/// One adapter's answer to one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConformanceCell {
    /// `supported`, `refused` (with the refusal message), `n/a` (physically impossible on this
    /// far side, with why) or `dynamic` (the plugin declares its own matrix).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The effect a test measured on the real far side, if a measuring test exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<MeasuredFigure>,
}

/// An effect measured by a test on a real far side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeasuredFigure {
    /// The row id (`NetworkChaos/delay`).
    pub row: String,
    pub adapter: String,
    /// What was measured, with the value asked for (`+101 ms RTT for 100ms`).
    pub figure: String,
    /// The test that measured it (`adapters/tests/docker.rs network::…`).
    pub test: String,
    /// The command that ran it.
    pub command: String,
    /// When (UTC date) and where it ran (kernel, versions).
    pub measured: String,
}

/// A connected (or recently connected) `chaos-agent`, as `GET /api/v1/agents` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    pub name: String,
    pub environment: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub hostname: String,
    pub addresses: Vec<String>,
    pub version: String,
    /// `healthy`, `unhealthy` (heartbeats late) or `disconnected`.
    pub health: String,
    pub connected: bool,
    #[schemars(with = "Option<String>")]
    pub connected_since: Option<chrono::DateTime<chrono::Utc>>,
    #[schemars(with = "Option<String>")]
    pub last_heartbeat: Option<chrono::DateTime<chrono::Utc>>,
    pub active_faults: u32,
    /// `Kind/action` pairs the agent can run.
    pub capabilities: Vec<String>,
    /// Dangerous fault families the agent was started to allow (`--allow user-defined`,
    /// `host-power`, `clock`).
    #[serde(default)]
    pub allowed: Vec<String>,
    /// Kernel mechanisms the agent measured at start.
    pub mechanisms: crate::agent::KernelMechanisms,
    /// The host's usage from the latest heartbeat (absent until one carried it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<AgentUsage>,
}

/// An agent host's usage at one heartbeat: CPU busy share since the previous one, memory in use
/// and the 1-minute load. The hub keeps the last 15 minutes of them per agent
/// (`GET /api/v1/agents/{env}/{name}/usage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentUsage {
    #[schemars(with = "String")]
    pub at: chrono::DateTime<chrono::Utc>,
    /// 0–100.
    pub cpu_percent: f32,
    pub mem_used_bytes: u64,
    pub mem_total_bytes: u64,
    pub load1: f32,
}

/// `POST /api/v1/environments/{name}/join-tokens`: how long the token is valid.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinTokenRequest {
    /// A duration (`30m`, `24h`, `7d`) or `never`. Default 24h.
    #[serde(default)]
    pub expires: Option<String>,
}

/// A join token as listed: its secret is shown only once, when it is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinTokenInfo {
    /// Public id, used to revoke it.
    pub id: String,
    pub environment: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    /// How many agents joined with it.
    pub uses: u64,
    /// `valid`, `expired` or `revoked`.
    pub state: String,
    /// The secret (`chj_…`), present only in the answer that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// An adapter type as `GET /api/v1/adapters` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdapterInfo {
    #[serde(rename = "type")]
    pub adapter_type: String,
    pub description: String,
    /// The static capability matrix. For adapters whose matrix depends on the environment
    /// (`webhook` plugins), see `dynamicCapabilities` and each environment's own listing.
    pub capabilities: Vec<Capability>,
    pub dynamic_capabilities: bool,
}

/// An entry of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    pub id: i64,
    pub time: String,
    /// Stable event name, e.g. `chaoshub.experiment.running`, `chaoshub.target.injected`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// The error body of every 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code (`invalid_manifest`, `not_found`, `halted`, …).
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

/// What a dry run would do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub environment: String,
    pub adapter: String,
    pub kind: String,
    pub actions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    pub mode: String,
    /// The targets that would be hit (the mode already applied).
    pub targets: Vec<Target>,
    /// How many targets the selector matched before the mode picked among them.
    pub matched: usize,
    /// Where the far side selects (Chaos Mesh in a cluster, so `targets` is its one object):
    /// what its selector matches there now and what its mode would pick, as the hub reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub far_side: Option<FarSidePlan>,
}

/// What the far side's own selection would hit (a dry run of a federated experiment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FarSidePlan {
    /// Who selects when the experiment runs (`Chaos Mesh`).
    pub selected_by: String,
    /// How many targets its selector matches now, before its mode.
    pub matched: usize,
    /// What its mode would pick now; for a random mode (`one`, `random-max-percent`, …) one
    /// possible pick, since the far side draws its own when it runs.
    pub targets: Vec<Target>,
}

/// Answer to a dry run (`dryRun=true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRunResult {
    pub valid: bool,
    #[schemars(with = "BTreeMap<String, Value>")]
    pub manifest: Value,
    /// Absent when no environment was named: then the dry run validated only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// What would make the real run fail although the manifest is valid (no targets matched…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `continue` to get the next page; absent on the last page.
    #[serde(default, rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
    /// How many items the listing has over all its pages, where it knows without reading
    /// them all (agents, targets); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<usize>,
}

/// The halt-all switch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HaltStatus {
    pub halted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who set the halt: the token name or JWT subject (absent on a hub without
    /// authentication, and for halts set before the hub recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Experiments stopped by the call that set the halt.
    #[serde(default)]
    pub stopped: Vec<String>,
}

/// Optional body of `POST /api/v1/halt`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HaltRequest {
    #[serde(default)]
    pub reason: Option<String>,
}

/// `GET /healthz` / `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
    /// On a hub whose store other replicas share (`/readyz` only): this replica and its part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaHealth>,
}

/// A replica of a hub on a shared store, as its `/readyz` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaHealth {
    /// `replica.id`.
    pub id: String,
    /// `leader` (runs the engine) or `follower` (serves the API; engine passes run on the leader).
    pub role: String,
    /// The replica holding the engine lease as this one last read it, and its advertised URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_url: Option<String>,
}
