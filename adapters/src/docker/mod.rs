//! The `docker` adapter: drives a Docker engine over its API with bollard
//! (docs/adapters/docker.md).
//!
//! - `config.rs`: the environment's endpoint and settings, validated without the network;
//! - `client.rs`: the connection, API version negotiation and error mapping;
//! - `discovery.rs`: running containers as targets, peers of network faults;
//! - `plan.rs`: the pure translation of PodChaos, NetworkChaos and StressChaos;
//! - `journal.rs`: the per-injection volume recording the state before the fault;
//! - `helper.rs`: helper containers running `chaos-agent` in a target's namespaces;
//! - `image.rs`: `FROM scratch` images assembled in memory from the host's files.
//!
//! Containers belong to the user: the adapter signals, pauses, disconnects and updates them,
//! restarts only those it stopped and that nothing restarted since, and never removes one. What
//! it creates (helpers, journal volumes, the helper image) carries the `dev.chaoshub.role` label
//! and the injection id, so it is never a target and recovery finds it after a hub crash.

mod client;
mod config;
mod discovery;
mod helper;
pub mod image;
mod journal;
mod plan;

use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{
    ContainerInspectResponse, ContainerUpdateBody, EndpointIpamConfig, EndpointSettings,
    NetworkConnectRequest, NetworkDisconnectRequest,
};
use bollard::query_parameters::{KillContainerOptions, ListContainersOptions};
use chaoshub_schema::agent::RevertCall;
use chaoshub_schema::api::Capability;
use chaoshub_schema::{Target, ValidationErrors};
use serde_json::{json, Value};

pub use client::DockerClient;
pub use config::{DockerConfig, DockerEndpoint, DEFAULT_ENDPOINT, KNOWN_SETTINGS};
pub use journal::{volume_name, INJECTION_LABEL, TARGET_LABEL};
pub use plan::{
    plan, DockerFault, DockerPlan, CPU_LIMIT_ANNOTATION, MEMORY_LIMIT_ANNOTATION,
    NETWORKS_ANNOTATION, PARTITION_ANNOTATION, SIGNAL_ANNOTATION,
};

use client::{is_not_found, is_not_modified};
use journal::{KillOutcome, Limits, Mechanism, Record, SavedEndpoint};

use crate::{Adapter, AdapterError, Environment, FaultRequest, Injection, InjectionState};

const ADAPTER_TYPE: &str = "docker";

/// How long a kill, pause or disconnect may take to show in `docker inspect`.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the agent in a helper may take to report its fault active (it verifies it first).
const HELPER_ACTIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// The agent's lease when the hub gives no deadline (an open-ended experiment with the
/// max-duration guardrail switched off): long, but never forever.
const DEFAULT_LEASE: Duration = Duration::from_secs(24 * 3600);

const CAPABILITIES: &[(&str, &str)] = &[
    ("PodChaos", "pod-kill"),
    ("PodChaos", "pod-failure"),
    ("PodChaos", "container-kill"),
    ("NetworkChaos", "delay"),
    ("NetworkChaos", "loss"),
    ("NetworkChaos", "duplicate"),
    ("NetworkChaos", "corrupt"),
    ("NetworkChaos", "bandwidth"),
    ("NetworkChaos", "partition"),
    ("StressChaos", "cpu"),
    ("StressChaos", "memory"),
];

/// Drives Docker engines. Holds no state: every call connects from the environment, and every
/// fault's record lives in the stored details and in its journal volume on the engine.
pub struct DockerAdapter;

impl DockerAdapter {
    pub fn new() -> Self {
        Self
    }

    /// Builds (or finds) the helper image on the environment's engine now instead of on first
    /// use, and returns its tag: the first network or stress fault, and the first armed
    /// watchdog, then start without the build's seconds.
    pub async fn prepare_helper_image(&self, env: &Environment) -> Result<String, AdapterError> {
        let client = DockerClient::connect(env).await?;
        helper::ensure_image(&client).await
    }
}

impl Default for DockerAdapter {
    fn default() -> Self {
        Self::new()
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The container a target names, inspected; a container that is gone is a per-target error
/// that says so.
async fn inspect_target(
    client: &DockerClient,
    target: &Target,
) -> Result<ContainerInspectResponse, AdapterError> {
    match client.docker().inspect_container(&target.id, None).await {
        Ok(c) => Ok(c),
        Err(e) if is_not_found(&e) => Err(AdapterError::Rejected(format!(
            "container {:?} ({}) no longer exists (removed since it was selected)",
            target.name,
            short(&target.id)
        ))),
        Err(e) => Err(client.error(&format!("inspecting container {:?}", target.name), e)),
    }
}

/// The container's state, or `None` when it is gone.
async fn inspect_id(
    client: &DockerClient,
    id: &str,
) -> Result<Option<ContainerInspectResponse>, AdapterError> {
    match client.docker().inspect_container(id, None).await {
        Ok(c) => Ok(Some(c)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(client.error(&format!("inspecting container {}", short(id)), e)),
    }
}

struct State {
    running: bool,
    paused: bool,
    started_at: String,
}

fn state_of(c: &ContainerInspectResponse) -> State {
    let s = c.state.as_ref();
    State {
        running: s.and_then(|s| s.running).unwrap_or(false),
        paused: s.and_then(|s| s.paused).unwrap_or(false),
        started_at: s.and_then(|s| s.started_at.clone()).unwrap_or_default(),
    }
}

fn limits_of(c: &ContainerInspectResponse) -> Limits {
    let h = c.host_config.as_ref();
    let get = |f: fn(&bollard::models::HostConfig) -> Option<i64>| h.and_then(f).unwrap_or(0);
    Limits {
        nano_cpus: get(|h| h.nano_cpus),
        cpu_quota: get(|h| h.cpu_quota),
        cpu_period: get(|h| h.cpu_period),
        memory: get(|h| h.memory),
        memory_swap: get(|h| h.memory_swap),
    }
}

/// `spec.containerNames`: on Docker every container is its own pod, so a name matches the
/// container's name or its compose service (the name a container has inside a Kubernetes pod).
fn check_container_names(plan: &DockerPlan, target: &Target) -> Result<(), AdapterError> {
    if plan.container_names.is_empty() {
        return Ok(());
    }
    let service = target.labels.get("compose.service");
    if plan
        .container_names
        .iter()
        .any(|n| n == &target.name || Some(n) == service)
    {
        return Ok(());
    }
    Err(AdapterError::Rejected(format!(
        "container {:?}{} is not named in spec.containerNames {:?}; on Docker each container is \
         its own pod, so list its name or compose service, or narrow the selector",
        target.name,
        service
            .map(|s| format!(" (compose service {s:?})"))
            .unwrap_or_default(),
        plan.container_names
    )))
}

/// How long the agent in a helper holds its fault: until the hub's deadline, as an instant
/// (`--until`, so the helper's start-up time does not stretch it), or a long lease when the
/// experiment has none.
fn hold_args(fault: &FaultRequest) -> [String; 2] {
    match fault.deadline {
        Some(deadline) => [
            "--until".to_string(),
            deadline.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ],
        None => [
            "--duration".to_string(),
            chaoshub_schema::duration::format_duration(DEFAULT_LEASE),
        ],
    }
}

/// Polls `docker inspect` until `done` holds; `None` (the container is gone) is passed on.
async fn wait_for(
    client: &DockerClient,
    id: &str,
    what: &str,
    done: impl Fn(Option<&ContainerInspectResponse>) -> bool,
) -> Result<(), AdapterError> {
    let started = tokio::time::Instant::now();
    loop {
        let current = inspect_id(client, id).await?;
        if done(current.as_ref()) {
            return Ok(());
        }
        if started.elapsed() >= CONFIRM_TIMEOUT {
            return Err(AdapterError::Failed(format!(
                "container {} did not read back as {what} within {}s",
                short(id),
                CONFIRM_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether a killed container shows the kill: not running, restarted since, or removed
/// (`--rm` containers vanish once dead).
fn kill_visible(c: Option<&ContainerInspectResponse>, started_at: &str) -> bool {
    match c {
        None => true,
        Some(c) => {
            let s = state_of(c);
            !s.running || s.started_at != started_at
        }
    }
}

/// How long a container is watched after a handled signal before it counts as having kept
/// running: long enough for a process that exits on SIGTERM to do so, short against any fault
/// duration.
const SIGNAL_SETTLE: Duration = Duration::from_secs(2);

/// Reads back what a non-SIGKILL signal did: the container exited (or was restarted since),
/// or it still runs the same process after `SIGNAL_SETTLE`.
async fn signal_outcome(
    client: &DockerClient,
    id: &str,
    started_at: &str,
) -> Result<KillOutcome, AdapterError> {
    let started = tokio::time::Instant::now();
    loop {
        let current = inspect_id(client, id).await?;
        if kill_visible(current.as_ref(), started_at) {
            return Ok(KillOutcome::Exited);
        }
        if started.elapsed() >= SIGNAL_SETTLE {
            return Ok(KillOutcome::KeptRunning);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn kill(client: &DockerClient, id: &str, signal: &str) -> Result<(), AdapterError> {
    let options = KillContainerOptions {
        signal: signal.to_string(),
    };
    match client.docker().kill_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        // Already dead (409 "is not running") or gone: the kill has nothing left to do.
        Err(e) if is_not_found(&e) || client::is_conflict(&e) => Ok(()),
        Err(e) => Err(client.error(&format!("sending {signal} to {}", short(id)), e)),
    }
}

/// Docker counts every API kill as a manual stop and never applies the restart policy after
/// it, unlike a crash. So that a kill behaves like the crash it stands for (and like Chaos
/// Mesh, where the pod's controller brings it back), the adapter applies the policy itself: a
/// container whose policy would restart it is started again once it is seen dead. Returns
/// whether it did.
async fn apply_restart_policy(
    client: &DockerClient,
    id: &str,
    started_at: &str,
) -> Result<bool, AdapterError> {
    let Some(c) = inspect_id(client, id).await? else {
        return Ok(false);
    };
    let s = state_of(&c);
    if s.running || s.started_at != started_at {
        return Ok(false);
    }
    let policy = c
        .host_config
        .as_ref()
        .and_then(|h| h.restart_policy.as_ref())
        .and_then(|p| p.name)
        .map(|n| n.to_string())
        .unwrap_or_default();
    let exit_code = c.state.as_ref().and_then(|s| s.exit_code).unwrap_or(0);
    let restarts = match policy.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => exit_code != 0,
        _ => false,
    };
    if !restarts {
        return Ok(false);
    }
    tracing::debug!(container = %short(id), %policy, "applying the restart policy after the kill");
    match client.docker().start_container(id, None).await {
        Ok(()) => Ok(true),
        Err(e) if is_not_modified(&e) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(client.error(
            &format!("restarting {} under its restart policy", short(id)),
            e,
        )),
    }
}

/// Endpoint settings to reconnect with: the user's aliases (Docker re-adds the short id
/// itself) and static addresses, and links. The default bridge takes no aliases.
fn saved_endpoint(network: &str, endpoint: &EndpointSettings, id: &str) -> SavedEndpoint {
    let ipam = endpoint.ipam_config.as_ref();
    let aliases = if network == "bridge" {
        Vec::new()
    } else {
        endpoint
            .aliases
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a != short(id))
            .collect()
    };
    SavedEndpoint {
        network: network.to_string(),
        aliases,
        links: endpoint.links.clone().unwrap_or_default(),
        ipv4_address: ipam
            .and_then(|i| i.ipv4_address.clone())
            .filter(|a| !a.is_empty()),
        ipv6_address: ipam
            .and_then(|i| i.ipv6_address.clone())
            .filter(|a| !a.is_empty()),
    }
}

fn attached_networks(c: &ContainerInspectResponse) -> Vec<String> {
    c.network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default()
}

/// The update that applies `limits` (or restores them). Docker treats 0 as "leave unchanged",
/// so "no limit" is written as the kernel's own unlimited values: CPU quota -1, and the largest
/// memory limit cgroups accept (which they report as unlimited).
fn update_body(limits: &Limits, touch_cpu: bool, touch_memory: bool) -> ContainerUpdateBody {
    const UNLIMITED_MEMORY: i64 = 9_223_372_036_854_771_712;
    let mut body = ContainerUpdateBody::default();
    if touch_cpu {
        if limits.nano_cpus > 0 {
            body.nano_cpus = Some(limits.nano_cpus);
        } else {
            body.cpu_quota = Some(if limits.cpu_quota == 0 {
                -1
            } else {
                limits.cpu_quota
            });
            body.cpu_period = Some(if limits.cpu_period == 0 {
                100_000
            } else {
                limits.cpu_period
            });
        }
    }
    if touch_memory {
        body.memory = Some(if limits.memory == 0 {
            UNLIMITED_MEMORY
        } else {
            limits.memory
        });
        body.memory_swap = Some(if limits.memory_swap == 0 {
            -1
        } else {
            limits.memory_swap
        });
    }
    body
}

/// The limits a squeeze imposes on top of `before`. CPU goes through the quota unless the
/// container was started with `--cpus`, because Docker refuses to mix the two settings.
fn squeezed(before: &Limits, nano_cpus: Option<i64>, memory: Option<i64>) -> Limits {
    let mut applied = *before;
    if let Some(n) = nano_cpus {
        if before.nano_cpus > 0 {
            applied.nano_cpus = n;
        } else {
            applied.cpu_period = 100_000;
            applied.cpu_quota = (n / 10_000).max(1_000);
        }
    }
    if let Some(m) = memory {
        applied.memory = m;
        applied.memory_swap = -1;
    }
    applied
}

/// How a container is reconnected to a network it was disconnected from: the same aliases,
/// links and static addresses.
fn connect_request(id: &str, saved: &SavedEndpoint) -> NetworkConnectRequest {
    let ipam = (saved.ipv4_address.is_some() || saved.ipv6_address.is_some()).then(|| {
        EndpointIpamConfig {
            ipv4_address: saved.ipv4_address.clone(),
            ipv6_address: saved.ipv6_address.clone(),
            link_local_ips: None,
        }
    });
    NetworkConnectRequest {
        container: id.to_string(),
        endpoint_config: Some(EndpointSettings {
            aliases: (!saved.aliases.is_empty()).then(|| saved.aliases.clone()),
            links: (!saved.links.is_empty()).then(|| saved.links.clone()),
            ipam_config: ipam,
            ..Default::default()
        }),
    }
}

/// The Docker API calls a watchdog makes to undo a record's fault, for the faults that have no
/// agent of their own to end them (pause, disconnect, squeeze). Each accepts the answers that
/// mean "already undone" or "nothing left to undo" (the container or network is gone).
fn revert_calls(record: &Record) -> Result<Option<Vec<RevertCall>>, AdapterError> {
    let id = record.container.as_str();
    let json = |v: Result<Value, serde_json::Error>| {
        v.map_err(|e| AdapterError::Failed(format!("encoding a watchdog call: {e}")))
    };
    Ok(Some(match &record.mechanism {
        Mechanism::Pause => vec![RevertCall {
            method: "POST".into(),
            path: format!("/containers/{id}/unpause"),
            body: None,
            // 409: not paused (already undone); 404: the container is gone.
            accept: vec![404, 409],
        }],
        Mechanism::Disconnect { networks } => networks
            .iter()
            .map(|saved| {
                Ok(RevertCall {
                    method: "POST".into(),
                    path: format!("/networks/{}/connect", saved.network),
                    body: Some(json(serde_json::to_value(connect_request(id, saved)))?),
                    // 403/409: already connected (the engine's version decides which).
                    accept: vec![403, 404, 409],
                })
            })
            .collect::<Result<_, AdapterError>>()?,
        Mechanism::Squeeze { before, applied } => {
            let body = update_body(
                before,
                applied.cpu_differs(before),
                applied.memory_differs(before),
            );
            vec![RevertCall {
                method: "POST".into(),
                path: format!("/containers/{id}/update"),
                body: Some(json(serde_json::to_value(body))?),
                accept: vec![404],
            }]
        }
        _ => return Ok(None),
    }))
}

impl DockerAdapter {
    async fn peers(
        &self,
        client: &DockerClient,
        env: &Environment,
        plan: &DockerPlan,
        target: &Target,
    ) -> Result<Vec<String>, AdapterError> {
        let Some(peers) = &plan.peers else {
            return Ok(Vec::new());
        };
        let inventory = discovery::discover(client, env).await?;
        let mut cidrs = Vec::new();
        for peer in inventory
            .iter()
            .filter(|t| t.id != target.id && discovery::peer_matches(&peers.selector, t))
        {
            for ip in discovery::addresses(peer) {
                cidrs.push(format!("{ip}/32"));
            }
        }
        if cidrs.is_empty() {
            return Err(AdapterError::Rejected(
                "spec.target matched no running container with an address".into(),
            ));
        }
        cidrs.sort();
        cidrs.dedup();
        Ok(cidrs)
    }

    async fn apply(
        &self,
        client: &DockerClient,
        env: &Environment,
        fault: &FaultRequest,
        target: &Target,
        plan: &DockerPlan,
        container: &ContainerInspectResponse,
    ) -> Result<Record, AdapterError> {
        let id = target.id.as_str();
        let state = state_of(container);
        let record = |mechanism| Record {
            container: id.to_string(),
            name: target.name.clone(),
            action: plan.action.clone(),
            mechanism,
        };
        match &plan.fault {
            DockerFault::Kill { signal } => {
                let mut rec = record(Mechanism::Kill {
                    signal: signal.clone(),
                    started_at: state.started_at.clone(),
                    outcome: None,
                });
                self.journal(client, fault, &rec).await?;
                kill(client, id, signal).await?;
                let outcome = if signal == "SIGKILL" || signal == "9" {
                    wait_for(client, id, "killed", |c| kill_visible(c, &state.started_at)).await?;
                    KillOutcome::Exited
                } else {
                    // A signal the process handles or ignores may not end it: that is the
                    // experiment's answer, read back like any other. Watch the container for a
                    // moment and record which it was.
                    signal_outcome(client, id, &state.started_at).await?
                };
                tracing::info!(container = %short(id), %signal, ?outcome, "signal delivered");
                if let Mechanism::Kill { outcome: o, .. } = &mut rec.mechanism {
                    *o = Some(outcome);
                }
                apply_restart_policy(client, id, &state.started_at).await?;
                Ok(rec)
            }
            DockerFault::Stop { grace_secs } => {
                let rec = record(Mechanism::Stop {
                    grace_secs: *grace_secs,
                    started_at: state.started_at.clone(),
                });
                self.journal(client, fault, &rec).await?;
                if *grace_secs > 0 {
                    kill(client, id, "SIGTERM").await?;
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(*grace_secs);
                    while tokio::time::Instant::now() < deadline {
                        let c = inspect_id(client, id).await?;
                        if kill_visible(c.as_ref(), &state.started_at) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                let c = inspect_id(client, id).await?;
                if !kill_visible(c.as_ref(), &state.started_at) {
                    kill(client, id, "SIGKILL").await?;
                }
                wait_for(client, id, "stopped", |c| {
                    kill_visible(c, &state.started_at)
                })
                .await?;
                apply_restart_policy(client, id, &state.started_at).await?;
                Ok(rec)
            }
            DockerFault::Pause => {
                if state.paused {
                    return Err(AdapterError::Rejected(format!(
                        "container {:?} is already paused, and not by this injection; chaoshub \
                         does not pause what it would then have to leave paused",
                        target.name
                    )));
                }
                let rec = record(Mechanism::Pause);
                self.journal(client, fault, &rec).await?;
                match client.docker().pause_container(id).await {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => {
                        return Err(AdapterError::Rejected(format!(
                            "container {:?} disappeared while being paused",
                            target.name
                        )))
                    }
                    Err(e) => return Err(client.error(&format!("pausing {:?}", target.name), e)),
                }
                wait_for(client, id, "paused", |c| {
                    c.is_some_and(|c| state_of(c).paused)
                })
                .await?;
                Ok(rec)
            }
            DockerFault::Disconnect { networks } => {
                let attached = container
                    .network_settings
                    .as_ref()
                    .and_then(|n| n.networks.clone())
                    .unwrap_or_default();
                let chosen: Vec<String> = if networks.is_empty() {
                    attached.keys().cloned().collect()
                } else {
                    networks.clone()
                };
                let mut saved = Vec::new();
                for network in &chosen {
                    let Some(endpoint) = attached.get(network) else {
                        return Err(AdapterError::Rejected(format!(
                            "container {:?} is not attached to network {network:?} (attached: {})",
                            target.name,
                            attached.keys().cloned().collect::<Vec<_>>().join(", ")
                        )));
                    };
                    saved.push(saved_endpoint(network, endpoint, id));
                }
                if saved.is_empty() {
                    return Err(AdapterError::Rejected(format!(
                        "container {:?} is attached to no network to disconnect from",
                        target.name
                    )));
                }
                if attached.contains_key("host") || attached.contains_key("none") {
                    return Err(AdapterError::Rejected(format!(
                        "container {:?} uses the host or none network, which cannot be \
                         disconnected; use the default agent partition",
                        target.name
                    )));
                }
                let rec = record(Mechanism::Disconnect {
                    networks: saved.clone(),
                });
                self.journal(client, fault, &rec).await?;
                for endpoint in &saved {
                    let request = NetworkDisconnectRequest {
                        container: id.to_string(),
                        force: Some(false),
                    };
                    client
                        .docker()
                        .disconnect_network(&endpoint.network, request)
                        .await
                        .map_err(|e| {
                            client.error(
                                &format!(
                                    "disconnecting {:?} from network {:?}",
                                    target.name, endpoint.network
                                ),
                                e,
                            )
                        })?;
                }
                let names: Vec<String> = saved.iter().map(|s| s.network.clone()).collect();
                wait_for(client, id, "disconnected", |c| {
                    c.is_some_and(|c| {
                        let now = attached_networks(c);
                        names.iter().all(|n| !now.contains(n))
                    })
                })
                .await?;
                Ok(rec)
            }
            DockerFault::Squeeze { nano_cpus, memory } => {
                let before = limits_of(container);
                let applied = squeezed(&before, *nano_cpus, *memory);
                let rec = record(Mechanism::Squeeze { before, applied });
                self.journal(client, fault, &rec).await?;
                client
                    .docker()
                    .update_container(
                        id,
                        update_body(&applied, nano_cpus.is_some(), memory.is_some()),
                    )
                    .await
                    .map_err(|e| {
                        client.error(&format!("updating the limits of {:?}", target.name), e)
                    })?;
                let c = inspect_target(client, target).await?;
                let now = limits_of(&c);
                let cpu_ok = nano_cpus.is_none() || !now.cpu_differs(&applied);
                let mem_ok = memory.is_none() || !now.memory_differs(&applied);
                if !(cpu_ok && mem_ok) {
                    return Err(AdapterError::Failed(format!(
                        "the limits of {:?} read back as {now:?}, not {applied:?}",
                        target.name
                    )));
                }
                Ok(rec)
            }
            DockerFault::Helpers(runs) => {
                let image = helper::ensure_image(client).await?;
                let cidrs = self.peers(client, env, plan, target).await?;
                let network = runs
                    .iter()
                    .any(|r| r.namespace == plan::HelperNamespace::Network);
                let names: Vec<String> = runs
                    .iter()
                    .map(|r| helper::helper_name(&fault.injection_id, r.role))
                    .collect();
                let rec = record(Mechanism::Helpers {
                    helpers: names,
                    image: image.clone(),
                    network,
                });
                self.journal(client, fault, &rec).await?;
                let cgroup_parent = if runs
                    .iter()
                    .any(|r| r.namespace == plan::HelperNamespace::Pid)
                {
                    let parent = container
                        .host_config
                        .as_ref()
                        .and_then(|h| h.cgroup_parent.clone());
                    helper::nested_cgroup(client, id, parent.as_deref()).await
                } else {
                    None
                };
                let hold = hold_args(fault);
                for run in runs {
                    let mut extra = Vec::new();
                    if run.namespace == plan::HelperNamespace::Network {
                        for cidr in &cidrs {
                            extra.extend(["--cidr".to_string(), cidr.clone()]);
                        }
                    }
                    extra.extend(hold.iter().cloned());
                    extra.extend([
                        "--id".to_string(),
                        format!("{}-{}", fault.injection_id, run.role),
                        "--state-dir".to_string(),
                        "/state".to_string(),
                        "--foreground".to_string(),
                        "-o".to_string(),
                        "json".to_string(),
                    ]);
                    let cgroup = (run.namespace == plan::HelperNamespace::Pid)
                        .then(|| cgroup_parent.clone())
                        .flatten();
                    let name =
                        helper::start(client, &image, &fault.injection_id, id, run, &extra, cgroup)
                            .await?;
                    helper::wait_active(client, &name, HELPER_ACTIVE_TIMEOUT).await?;
                }
                Ok(rec)
            }
        }
    }

    /// Arms the engine-side deadline of a pause, disconnect or squeeze: a watchdog container
    /// that undoes it one second after the experiment's deadline unless the hub's recovery (which
    /// removes it) came first. Returns what the details show of it. A watchdog that cannot be
    /// armed (no agent binary for the helper image, say) does not fail the injection, whose
    /// recovery still rests with the hub: the details say why.
    async fn arm_watchdog(
        &self,
        client: &DockerClient,
        fault: &FaultRequest,
        record: &Record,
    ) -> Result<Option<Value>, AdapterError> {
        let Some(calls) = revert_calls(record)? else {
            return Ok(None);
        };
        let Some(deadline) = fault.deadline else {
            return Ok(Some(
                json!({"armed": false, "reason": "the experiment has no deadline"}),
            ));
        };
        if !client.config().watchdog {
            return Ok(Some(
                json!({"armed": false, "reason": "spec.settings.watchdog is false"}),
            ));
        }
        let access = match helper::watchdog_access(&client.config().endpoint) {
            Ok(access) => access,
            Err(reason) => return Ok(Some(json!({"armed": false, "reason": reason}))),
        };
        let Some(at) = watchdog_instant(deadline, chrono::Utc::now()) else {
            return Ok(Some(json!({
                "armed": false,
                "reason": format!("the experiment's deadline {} passed during the injection; the hub's recovery, due now, removes the fault", deadline.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            })));
        };
        let armed = async {
            let image = helper::ensure_image(client).await?;
            helper::start_watchdog(
                client,
                &image,
                &fault.injection_id,
                &record.container,
                access,
                at,
                &calls,
            )
            .await
            .map(|name| (name, image))
        }
        .await;
        Ok(Some(match armed {
            Ok((name, image)) => {
                json!({"armed": true, "container": name, "at": at, "image": image})
            }
            Err(e) => {
                tracing::warn!(injection_id = %fault.injection_id, error = %e, "no engine-side deadline: the watchdog could not be armed; recovery rests with the hub");
                json!({"armed": false, "reason": e.to_string()})
            }
        }))
    }

    /// Journals the injection before anything is changed.
    async fn journal(
        &self,
        client: &DockerClient,
        fault: &FaultRequest,
        record: &Record,
    ) -> Result<(), AdapterError> {
        match journal::create(client, &fault.injection_id, record).await? {
            None => Ok(()),
            Some(_) => Err(AdapterError::Failed(format!(
                "journal volume {} appeared while the injection was starting (another attempt \
                 of the same injection is running?)",
                volume_name(&fault.injection_id)
            ))),
        }
    }

    /// Restores what one journal record says was changed. Idempotent; a container that is
    /// gone has nothing left to restore.
    async fn undo(
        &self,
        client: &DockerClient,
        injection_id: &str,
        record: &Record,
    ) -> Result<(), AdapterError> {
        let id = record.container.as_str();
        let current = inspect_id(client, id).await?;
        match &record.mechanism {
            Mechanism::Kill { started_at, .. } | Mechanism::Stop { started_at, .. } => {
                // Restart only a container this injection left dead: if it runs again, or was
                // started since (by its restart policy or by someone), it is not ours to touch.
                if let Some(c) = &current {
                    let s = state_of(c);
                    if !s.running && &s.started_at == started_at {
                        tracing::debug!(container = %short(id), "starting the container the injection stopped");
                        match client.docker().start_container(id, None).await {
                            Ok(()) => {}
                            Err(e) if is_not_modified(&e) || is_not_found(&e) => {}
                            Err(e) => {
                                return Err(client.error(&format!("restarting {}", record.name), e))
                            }
                        }
                    }
                }
            }
            Mechanism::Pause => {
                if current.as_ref().is_some_and(|c| state_of(c).paused) {
                    match client.docker().unpause_container(id).await {
                        Ok(()) => {}
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => {
                            return Err(client.error(&format!("unpausing {:?}", record.name), e))
                        }
                    }
                    wait_for(client, id, "unpaused", |c| {
                        c.is_none_or(|c| !state_of(c).paused)
                    })
                    .await?;
                }
            }
            Mechanism::Disconnect { networks } => {
                if let Some(c) = &current {
                    let attached = attached_networks(c);
                    for saved in networks.iter().filter(|s| !attached.contains(&s.network)) {
                        let request = connect_request(id, saved);
                        match client
                            .docker()
                            .connect_network(&saved.network, request)
                            .await
                        {
                            Ok(()) => {}
                            Err(e) if is_not_found(&e) => {
                                // The network (or container) was removed meanwhile: there is
                                // nothing to reconnect to, and retrying cannot change that.
                                tracing::warn!(network = %saved.network, container = %record.name, "cannot reconnect: the network or container is gone");
                            }
                            Err(e) => {
                                return Err(client.error(
                                    &format!(
                                        "reconnecting {:?} to {:?}",
                                        record.name, saved.network
                                    ),
                                    e,
                                ))
                            }
                        }
                    }
                }
            }
            Mechanism::Squeeze { before, applied } => {
                if let Some(c) = &current {
                    let now = limits_of(c);
                    // Only restore what still holds the squeeze; a user's later change wins.
                    let touch_cpu = applied.cpu_differs(before) && !now.cpu_differs(applied);
                    let touch_memory =
                        applied.memory_differs(before) && !now.memory_differs(applied);
                    if touch_cpu || touch_memory {
                        match client
                            .docker()
                            .update_container(id, update_body(before, touch_cpu, touch_memory))
                            .await
                        {
                            Ok(()) => {}
                            Err(e) if is_not_found(&e) => {}
                            Err(e) => {
                                return Err(client.error(
                                    &format!("restoring the limits of {:?}", record.name),
                                    e,
                                ))
                            }
                        }
                    }
                }
            }
            Mechanism::Helpers {
                helpers,
                image,
                network,
            } => {
                let grace = client.config().stop_timeout;
                let mut clean = true;
                for name in helpers {
                    if !helper::stop(client, name, grace).await? {
                        clean = false;
                    }
                }
                let target_running = current.as_ref().is_some_and(|c| state_of(c).running);
                if *network && !clean && target_running {
                    tracing::info!(injection_id, "a helper did not confirm removal; running chaos-agent recover in the target's namespace");
                    helper::cleanup(client, image, injection_id, id, HELPER_ACTIVE_TIMEOUT).await?;
                }
                for name in helpers {
                    helper::remove(client, name).await?;
                }
            }
        }
        Ok(())
    }

    /// Removes stray helpers of an injection that has no journal (the hub died between
    /// creating them and writing anything else, or the journal was removed by hand).
    async fn remove_strays(
        &self,
        client: &DockerClient,
        injection_id: &str,
    ) -> Result<(), AdapterError> {
        let mut filters = std::collections::HashMap::new();
        filters.insert(
            "label".to_string(),
            vec![format!("{INJECTION_LABEL}={injection_id}")],
        );
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let strays = client
            .docker()
            .list_containers(Some(options))
            .await
            .map_err(|e| client.error("listing the injection's helpers", e))?;
        for c in strays {
            if let Some(id) = c.id {
                helper::remove(client, &id).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Adapter for DockerAdapter {
    fn adapter_type(&self) -> &'static str {
        ADAPTER_TYPE
    }

    fn description(&self) -> &'static str {
        "Docker engines over their API: PodChaos kill / stop / pause, NetworkChaos through a \
         chaos-agent helper in the container's network namespace (or network disconnect), \
         StressChaos through a helper or a docker update squeeze"
    }

    fn capabilities(&self) -> Vec<Capability> {
        CAPABILITIES
            .iter()
            .map(|(k, a)| Capability::new(*k, *a))
            .collect()
    }

    fn not_applicable(&self, kind: &str, _action: &str) -> Option<&'static str> {
        match kind {
            "ProxyChaos" => Some("toxics live in a Toxiproxy server, not in a container"),
            "AWSChaos" | "GCPChaos" | "AzureChaos" => {
                Some("cloud control-plane faults are made through the cloud's API")
            }
            _ => None,
        }
    }

    fn alternative(&self, kind: &str, action: &str) -> Option<&'static str> {
        Some(match (kind, action) {
            ("NetworkChaos", "netem") => "run one experiment per effect (delay, loss, duplicate, corrupt)",
            ("HTTPChaos", _) => "put an envoy environment in front of the container, or use NetworkChaos delay / loss on the container",
            ("PhysicalMachineChaos", _) => "a container is not a host: use StressChaos, NetworkChaos or PodChaos on it, or a native agent on the host",
            ("DNSChaos", _) => "NetworkChaos partition with the resolver's address in externalTargets cuts lookups off",
            ("StressChaos", "stress-ng") => "use stressors.cpu / stressors.memory",
            _ => return None,
        })
    }

    fn validate_environment(&self, env: &Environment) -> Result<(), ValidationErrors> {
        DockerConfig::from_environment(env).map(drop)
    }

    fn endpoints(&self, env: &Environment) -> Vec<(String, String)> {
        let endpoint = env.spec.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        vec![("spec.endpoint".to_string(), endpoint.trim().to_string())]
    }

    async fn discover(&self, env: &Environment) -> Result<Vec<Target>, AdapterError> {
        let client = DockerClient::connect(env).await?;
        discovery::discover(&client, env).await
    }

    async fn prepare(&self, env: &Environment) -> Result<(), AdapterError> {
        let config = DockerConfig::from_environment(env)
            .map_err(|e| AdapterError::Rejected(e.to_string()))?;
        // Without an agent binary there is nothing to build from: pause, kill and the like do
        // not need one, and the faults that do will say so.
        if config.helper_image.is_none()
            && helper::agent_binary(config.agent_binary.as_ref()).is_err()
        {
            return Ok(());
        }
        let tag = self.prepare_helper_image(env).await?;
        tracing::info!(environment = %env.name, image = %tag, "docker helper image ready");
        Ok(())
    }

    fn check_fault(&self, env: &Environment, fault: &FaultRequest) -> Result<(), AdapterError> {
        let _ = env;
        let plan = plan::plan(fault)?;
        if let Some(peers) = &plan.peers {
            let s = &peers.selector;
            if !s.namespaces.is_empty()
                || !s.annotation_selectors.is_empty()
                || !s.field_selectors.is_empty()
                || !s.nodes.is_empty()
                || !s.node_selectors.is_empty()
            {
                return Err(AdapterError::Rejected(
                    "spec.target.selector: on Docker a peer selector may use pods, \
                     labelSelectors and expressionSelectors only"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    fn plan_details(&self, env: &Environment, fault: &FaultRequest, target: &Target) -> Value {
        match plan::plan(fault) {
            Ok(p) => {
                let mut details = p.describe();
                details["container"] = json!(target.id);
                details["endpoint"] = json!(env
                    .spec
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| DEFAULT_ENDPOINT.into()));
                if let Err(e) = check_container_names(&p, target) {
                    details["error"] = json!(e.to_string());
                }
                details
            }
            Err(e) => json!({ "error": e.to_string() }),
        }
    }

    async fn inject(
        &self,
        env: &Environment,
        fault: &FaultRequest,
        target: &Target,
    ) -> Result<Value, AdapterError> {
        let plan = plan::plan(fault)?;
        check_container_names(&plan, target)?;
        let client = DockerClient::connect(env).await?;
        // A journal of this injection means an earlier attempt (a retry after a lost answer, or
        // a re-injection after a crash): undo it first, so the injection starts from the
        // user's state and the state journalled below is really the user's.
        if let Some(previous) = journal::read(&client, &fault.injection_id).await? {
            tracing::info!(injection_id = %fault.injection_id, "undoing an earlier attempt of this injection first");
            self.undo(&client, &fault.injection_id, &previous).await?;
            self.remove_strays(&client, &fault.injection_id).await?;
            journal::remove(&client, &fault.injection_id).await?;
        }
        let container = inspect_target(&client, target).await?;
        let state = state_of(&container);
        if !state.running {
            return Err(AdapterError::Rejected(format!(
                "container {:?} ({}) is not running",
                target.name,
                short(&target.id)
            )));
        }
        tracing::debug!(
            environment = %env.name,
            container = %target.name,
            injection_id = %fault.injection_id,
            action = %plan.action,
            "injecting into docker"
        );
        let record = self
            .apply(&client, env, fault, target, &plan, &container)
            .await?;
        let watchdog = self.arm_watchdog(&client, fault, &record).await?;
        let mut details = serde_json::to_value(&record)
            .map_err(|e| AdapterError::Failed(format!("encoding the details: {e}")))?;
        if let Some(watchdog) = watchdog {
            details["watchdog"] = watchdog;
        }
        details["journal"] = json!(volume_name(&fault.injection_id));
        details["apiVersion"] = json!(client.api_version());
        if !plan.ignored.is_empty() {
            details["ignored"] = json!(plan.ignored);
        }
        Ok(details)
    }

    async fn status(
        &self,
        env: &Environment,
        injection: &Injection,
    ) -> Result<InjectionState, AdapterError> {
        let client = DockerClient::connect(env).await?;
        let record: Record = match serde_json::from_value(injection.details.clone()) {
            Ok(r) => r,
            Err(_) => match journal::read(&client, &injection.injection_id).await? {
                Some(r) => r,
                None => return Ok(InjectionState::Absent),
            },
        };
        let id = record.container.as_str();
        let current = inspect_id(&client, id).await?;
        Ok(match &record.mechanism {
            // A signal the container survived was delivered and read back at injection; it
            // cannot be "taken back", so it stays the experiment's state.
            Mechanism::Kill {
                outcome: Some(KillOutcome::KeptRunning),
                ..
            } => InjectionState::Active,
            Mechanism::Kill { started_at, .. } | Mechanism::Stop { started_at, .. } => {
                if kill_visible(current.as_ref(), started_at) {
                    InjectionState::Active
                } else {
                    InjectionState::Absent
                }
            }
            Mechanism::Pause => match current {
                Some(c) if state_of(&c).paused => InjectionState::Active,
                _ => InjectionState::Absent,
            },
            Mechanism::Disconnect { networks } => match current {
                Some(c) => {
                    let attached = attached_networks(&c);
                    let left = networks
                        .iter()
                        .filter(|n| !attached.contains(&n.network))
                        .count();
                    if left == networks.len() {
                        InjectionState::Active
                    } else if left == 0 {
                        InjectionState::Absent
                    } else {
                        InjectionState::Unknown(format!(
                            "reconnected to {} of {} network(s)",
                            networks.len() - left,
                            networks.len()
                        ))
                    }
                }
                None => InjectionState::Absent,
            },
            Mechanism::Squeeze { applied, .. } => match current {
                Some(c) if limits_of(&c) == *applied => InjectionState::Active,
                Some(_) => InjectionState::Absent,
                None => InjectionState::Absent,
            },
            Mechanism::Helpers { helpers, .. } => {
                let mut active = 0;
                for name in helpers {
                    let running = helper::running(&client, name).await? == Some(true);
                    let said = helper::logs(&client, name)
                        .await?
                        .and_then(|t| helper::agent_state(&t));
                    if running && said.is_some_and(|(s, _)| s == "active") {
                        active += 1;
                    }
                }
                if active == helpers.len() {
                    InjectionState::Active
                } else if active == 0 {
                    InjectionState::Absent
                } else {
                    InjectionState::Unknown(format!(
                        "{active} of {} helper(s) hold their fault",
                        helpers.len()
                    ))
                }
            }
        })
    }

    async fn recover(&self, env: &Environment, injection: &Injection) -> Result<(), AdapterError> {
        let client = DockerClient::connect(env).await?;
        let id = &injection.injection_id;
        // The journal on the engine is the authority; the stored details stand in for it when
        // it is gone (removed by hand) but something may still be in place.
        let record = match journal::read(&client, id).await? {
            Some(r) => Some(r),
            None => serde_json::from_value::<Record>(injection.details.clone()).ok(),
        };
        if let Some(record) = &record {
            self.undo(&client, id, record).await?;
        }
        self.remove_strays(&client, id).await?;
        journal::remove(&client, id).await
    }
}

/// When the engine-side watchdog reverts a fault: a second after the experiment's deadline, or
/// `None` when that instant has already passed (an injection that outlasted the experiment's
/// duration, e.g. while the helper image was built). A watchdog armed then would revert at
/// once, under a fault the injection reports in place.
fn watchdog_instant(
    deadline: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let at = deadline + chrono::Duration::seconds(1);
    (at > now).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watchdog_is_armed_only_for_an_instant_still_ahead() {
        let deadline = chrono::Utc::now();
        let ahead = watchdog_instant(deadline, deadline - chrono::Duration::seconds(30));
        assert_eq!(ahead, Some(deadline + chrono::Duration::seconds(1)));
        assert_eq!(
            watchdog_instant(deadline, deadline + chrono::Duration::milliseconds(999)),
            Some(deadline + chrono::Duration::seconds(1))
        );
        assert_eq!(
            watchdog_instant(deadline, deadline + chrono::Duration::seconds(1)),
            None
        );
        assert_eq!(
            watchdog_instant(deadline, deadline + chrono::Duration::minutes(5)),
            None
        );
    }

    #[test]
    fn squeeze_uses_the_quota_unless_cpus_was_set() {
        let plain = Limits::default();
        let s = squeezed(&plain, Some(250_000_000), Some(64 << 20));
        assert_eq!(
            (s.cpu_quota, s.cpu_period, s.nano_cpus),
            (25_000, 100_000, 0)
        );
        assert_eq!((s.memory, s.memory_swap), (64 << 20, -1));
        let restore = update_body(&plain, true, true);
        assert_eq!(restore.cpu_quota, Some(-1));
        assert_eq!(restore.memory_swap, Some(-1));
        let with_cpus = Limits {
            nano_cpus: 2_000_000_000,
            ..Limits::default()
        };
        let s = squeezed(&with_cpus, Some(500_000_000), None);
        assert_eq!((s.nano_cpus, s.cpu_quota), (500_000_000, 0));
        assert_eq!(
            update_body(&with_cpus, true, false).nano_cpus,
            Some(2_000_000_000)
        );
    }

    #[test]
    fn records_round_trip_through_json() {
        let record = Record {
            container: "abc".into(),
            name: "web".into(),
            action: "partition".into(),
            mechanism: Mechanism::Disconnect {
                networks: vec![SavedEndpoint {
                    network: "n1".into(),
                    aliases: vec!["web".into()],
                    links: vec![],
                    ipv4_address: None,
                    ipv6_address: None,
                }],
            },
        };
        let value = serde_json::to_value(&record).unwrap();
        assert_eq!(value["mechanism"], "disconnect");
        let back: Record = serde_json::from_value(value).unwrap();
        assert_eq!(back, record);
        assert!(serde_json::from_value::<Record>(Value::Null).is_err());
    }
}
