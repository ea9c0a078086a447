//! The `ssm` adapter: chaos on EC2 fleets through AWS Systems Manager Run Command, in the
//! manner of AWS FIS's `aws:ssm:send-command` (docs/adapters/ssm.md). No agent of ours runs
//! on the instances; the SSM agent runs what the adapter sends.
//!
//! - `config.rs`: the environment's settings, validated without the network;
//! - `fault.rs`: the pure translation of StressChaos / NetworkChaos / PhysicalMachineChaos into
//!   a host fault;
//! - `scripts.rs`: the shell scripts of chaoshub's own Command document (each schedules its own
//!   revert on the instance);
//! - `documents.rs`: own document content and the AWSFIS-Run-* mapping;
//! - `client.rs`: the SSM calls, polling, cancel, SDK errors; `ec2.rs`: a signed
//!   DescribeInstances for discovery by tag.
//!
//! Lifecycle: SendCommand (comment `chaoshub <experiment uid> <injection id> inject`), then
//! GetCommandInvocation until the command is confirmed (own documents: `Success`, the script
//! having read the fault back; AWSFIS documents: `InProgress` or `Success`, since they hold the
//! fault while running). Recovery cancels a command still running and, for own documents,
//! runs the revert the inject left on the instance once that command has stopped.

mod client;
mod config;
mod documents;
mod ec2;
mod fault;
mod scripts;

use async_trait::async_trait;
use chaoshub_schema::api::Capability;
use chaoshub_schema::{Target, ValidationErrors};
use serde_json::{json, Value};

pub use client::{excerpt, Invocation, ManagedInstance, SsmClient};
pub use config::{
    DocumentMode, EmptyTargetResolution, RevertScheduler, SsmConfig, DEFAULT_DOCUMENT_NAME,
    DEFAULT_STATE_DIR, KNOWN_SETTINGS,
};
pub use documents::{managed_command, own_document_content, plan, CommandPlan, SsmPlan};
pub use ec2::{parse_describe_instances, Ec2Instance};
pub use fault::{
    parse_size, translate, FaultSpecOnHost, HostFault, ProcessRef, Size, TrafficDirection,
    PORT_ANNOTATION, PROTOCOL_ANNOTATION,
};
pub use scripts::{
    inject_script, netem_handle, quote, recover_script, ScriptContext, EXIT_UNSUPPORTED_HOST,
};

use crate::{Adapter, AdapterError, Environment, FaultRequest, Injection, InjectionState};

const ADAPTER_TYPE: &str = "ssm";

/// (kind, action) pairs the adapter runs with its own documents; `documents: managed` refuses
/// the ones AWSFIS documents cannot express, at submission (`check_fault`).
const CAPABILITIES: &[(&str, &str)] = &[
    ("StressChaos", "cpu"),
    ("StressChaos", "memory"),
    ("StressChaos", "stress-ng"),
    ("NetworkChaos", "delay"),
    ("NetworkChaos", "loss"),
    ("NetworkChaos", "duplicate"),
    ("NetworkChaos", "corrupt"),
    ("NetworkChaos", "bandwidth"),
    ("NetworkChaos", "partition"),
    ("PhysicalMachineChaos", "stress-cpu"),
    ("PhysicalMachineChaos", "stress-mem"),
    ("PhysicalMachineChaos", "disk-fill"),
    ("PhysicalMachineChaos", "process"),
    ("PhysicalMachineChaos", "network-delay"),
    ("PhysicalMachineChaos", "network-loss"),
    ("PhysicalMachineChaos", "network-partition"),
    ("PhysicalMachineChaos", "user_defined"),
];

/// Drives EC2 instances through SSM. Holds no state: every call builds its clients from the
/// environment, and every fault's record lives in the stored details and on the instance.
pub struct SsmAdapter;

impl SsmAdapter {
    pub fn new() -> Self {
        Self
    }
}

impl Default for SsmAdapter {
    fn default() -> Self {
        Self::new()
    }
}

/// The comment every inject command carries; `find_command` looks for its end.
fn inject_comment(fault_uid: &str, injection_id: &str) -> String {
    format!("chaoshub {fault_uid} {injection_id} inject")
}

fn detail_str<'a>(details: &'a Value, key: &str) -> Option<&'a str> {
    details.get(key).and_then(Value::as_str)
}

fn mode_of(details: &Value, config: &SsmConfig) -> DocumentMode {
    match detail_str(details, "documents") {
        Some("managed") => DocumentMode::Managed,
        Some("own") => DocumentMode::Own,
        _ => config.documents,
    }
}

/// Labels of a discovered instance: its EC2 tags as they are, plus `ec2.*` and `ssm.*` facts
/// (tag keys cannot collide with them: a dot-prefixed namespace nobody tags with).
fn instance_target(
    env: &Environment,
    inst: ec2::Ec2Instance,
    managed: Option<&ManagedInstance>,
) -> Target {
    let mut labels = inst.tags.clone();
    for (k, v) in [
        ("ec2.instance-id", &inst.instance_id),
        ("ec2.instance-type", &inst.instance_type),
        ("ec2.state", &inst.state),
        ("ec2.private-ip", &inst.private_ip),
        ("ec2.private-dns", &inst.private_dns),
        ("ec2.availability-zone", &inst.availability_zone),
        ("ec2.platform", &inst.platform),
    ] {
        if !v.is_empty() {
            labels.insert(k.to_string(), v.clone());
        }
    }
    if let Some(m) = managed {
        labels.insert("ssm.ping-status".into(), m.ping_status.clone());
        if !m.platform_type.is_empty() {
            labels.insert("ssm.platform-type".into(), m.platform_type.clone());
        }
        if !m.agent_version.is_empty() {
            labels.insert("ssm.agent-version".into(), m.agent_version.clone());
        }
    }
    Target {
        environment: env.name.clone(),
        adapter: ADAPTER_TYPE.into(),
        kind: "instance".into(),
        // Chaos Mesh name lists (`physicalMachines`) select by instance id; the Name tag is a
        // label like any other.
        id: inst.instance_id.clone(),
        name: inst.instance_id,
        namespace: None,
        labels,
        annotations: Default::default(),
    }
}

#[async_trait]
impl Adapter for SsmAdapter {
    fn adapter_type(&self) -> &'static str {
        ADAPTER_TYPE
    }

    fn description(&self) -> &'static str {
        "EC2 instances through AWS Systems Manager Run Command: StressChaos, NetworkChaos \
         delay / loss / duplicate / corrupt / bandwidth / partition and PhysicalMachineChaos host faults as SSM Command documents \
         (chaoshub's own or the AWSFIS-Run-* documents), each reverting itself on the instance"
    }

    fn capabilities(&self) -> Vec<Capability> {
        CAPABILITIES
            .iter()
            .map(|(k, a)| Capability::new(*k, *a))
            .collect()
    }

    fn not_applicable(&self, kind: &str, _action: &str) -> Option<&'static str> {
        match kind {
            "PodChaos" => Some("an EC2 instance reached through SSM is a host, with no pods or containers to kill or pause"),
            "ProxyChaos" => Some("toxics live in a Toxiproxy server, not on an instance"),
            _ => None,
        }
    }

    fn alternative(&self, kind: &str, action: &str) -> Option<&'static str> {
        Some(match (kind, action) {
            ("NetworkChaos", "netem") => {
                "the ssm scripts run delay, loss, duplicate, corrupt, bandwidth and partition, one effect per experiment; for several at once run chaos-agent on the instance (a native environment)"
            }
            ("PhysicalMachineChaos", _) => "the ssm scripts run stress-cpu, stress-mem, disk-fill, process, network-delay, network-loss, network-partition and user_defined; for others run chaos-agent on the instance (a native environment)",
            ("TimeChaos", _) => "run chaos-agent on the instance (a native environment) and use PhysicalMachineChaos action clock",
            _ => return None,
        })
    }

    fn validate_environment(&self, env: &Environment) -> Result<(), ValidationErrors> {
        SsmConfig::from_environment(env).map(drop)
    }

    /// The explicit endpoints; without them the AWS SDK calls AWS's regional endpoints, which
    /// an allow list does not see (docs/security.md).
    /// The SSM and EC2 endpoints the SDK will call: the ones set, else AWS's regional defaults
    /// (`https://ssm.<region>.amazonaws.com`, EC2's likewise) for the region in the settings or
    /// `AWS_REGION` / `AWS_DEFAULT_REGION`. A region only a profile names is not known here:
    /// the default endpoints are then named without it (`ssm.amazonaws.com`), which a host
    /// wildcard such as `*.amazonaws.com` allows and a regional entry does not — set
    /// `spec.settings.region` to allow exactly one region.
    fn endpoints(&self, env: &Environment) -> Vec<(String, String)> {
        let setting = |name: &str| {
            env.spec
                .settings
                .get(name)
                .and_then(serde_json::Value::as_str)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let endpoint = env
            .spec
            .endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty());
        let region = setting("region").or_else(|| {
            ["AWS_REGION", "AWS_DEFAULT_REGION"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|r| !r.trim().is_empty()))
        });
        let default_of = |service: &str| match &region {
            Some(r) if r.starts_with("cn-") => format!("https://{service}.{r}.amazonaws.com.cn"),
            Some(r) => format!("https://{service}.{r}.amazonaws.com"),
            None => format!("https://{service}.amazonaws.com"),
        };
        let mut out = vec![match endpoint {
            Some(e) => ("spec.endpoint".to_string(), e.to_string()),
            None => ("spec.endpoint".to_string(), default_of("ssm")),
        }];
        match (setting("ec2_endpoint"), endpoint) {
            (Some(ec2), _) => out.push(("spec.settings.ec2_endpoint".to_string(), ec2)),
            // DescribeInstances goes to spec.endpoint then (one local AWS endpoint serves all).
            (None, Some(_)) => {}
            (None, None) => out.push(("spec.settings.ec2_endpoint".to_string(), default_of("ec2"))),
        }
        out
    }

    async fn discover(&self, env: &Environment) -> Result<Vec<Target>, AdapterError> {
        let client = SsmClient::new(env).await?;
        let instances = ec2::describe_instances(&client).await?;
        let managed = if client.config().managed_only {
            Some(client.managed_instances().await?)
        } else {
            None
        };
        let mut targets = Vec::new();
        for inst in instances {
            let info = managed.as_ref().and_then(|m| m.get(&inst.instance_id));
            if managed.is_some() && info.is_none_or(|i| i.ping_status != "Online") {
                tracing::debug!(environment = %env.name, instance = %inst.instance_id, "skipping an instance SSM does not report online");
                continue;
            }
            targets.push(instance_target(env, inst, info));
        }
        Ok(targets)
    }

    fn check_fault(&self, env: &Environment, fault: &FaultRequest) -> Result<(), AdapterError> {
        let config = SsmConfig::from_environment(env).map_err(AdapterError::InvalidSettings)?;
        plan(&with_assumed_lease(fault).0, &config).map(drop)
    }

    fn plan_details(&self, env: &Environment, fault: &FaultRequest, target: &Target) -> Value {
        let config = match SsmConfig::from_environment(env) {
            Ok(c) => c,
            Err(e) => return json!({ "error": e.to_string() }),
        };
        let (fault, assumed) = with_assumed_lease(fault);
        match plan(&fault, &config) {
            Ok(p) => {
                let mut details = p.describe();
                if assumed {
                    details["note"] = json!(format!(
                        "the manifest has no duration: the hub's lease (limits.max_duration_secs) \
                         sets the revert time at injection; shown here with {ASSUMED_LEASE_SECS} s"
                    ));
                }
                details["instanceId"] = json!(target.id);
                details["comment"] =
                    json!(inject_comment(&fault.experiment_uid, &fault.injection_id));
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
        let client = SsmClient::new(env).await?;
        let plan = plan(fault, client.config())?;
        let instance = &target.id;
        for note in &plan.host.ignored {
            tracing::info!(instance = %instance, injection_id = %fault.injection_id, ignored = %note, "field ignored on an ec2 instance");
        }
        if plan.mode == DocumentMode::Own {
            client.ensure_own_document().await?;
        }
        tracing::debug!(
            environment = %env.name,
            instance = %instance,
            injection_id = %fault.injection_id,
            document = %plan.inject.document,
            "sending an ssm command"
        );
        let comment = inject_comment(&fault.experiment_uid, &fault.injection_id);
        let command_id = client
            .send_command(&plan.inject, instance, &comment)
            .await?;
        let mode = plan.mode;
        let readback = match mode {
            DocumentMode::Own => None,
            DocumentMode::Managed => documents::managed_readback(&plan.inject),
        };
        let waited = client
            .wait(&command_id, instance, |status| match mode {
                DocumentMode::Own => status == "Success",
                // AWSFIS documents that hold a fault run for the whole duration: running is
                // where the read-back starts. One that holds nothing must finish.
                DocumentMode::Managed => {
                    status == "Success" || (status == "InProgress" && readback.is_some())
                }
            })
            .await;
        let invocation = match waited {
            Ok(inv) => inv,
            Err(e) => {
                // Do not leave a command queued for an instance that may pick it up later.
                if let Err(cancel) = client.cancel(&command_id, instance).await {
                    tracing::warn!(command_id = %command_id, error = %cancel, "could not cancel a command that did not finish in time");
                }
                return Err(e);
            }
        };
        let confirmed = match (mode, &readback) {
            (DocumentMode::Own, _) => invocation.status == "Success",
            (DocumentMode::Managed, Some(check)) if invocation.status == "InProgress" => {
                // Running is not in place: read the fault back on the instance.
                match confirm_managed(&client, check, instance, &command_id, fault).await {
                    Ok(()) => true,
                    Err(e) => {
                        if let Err(cancel) = client.cancel(&command_id, instance).await {
                            tracing::warn!(command_id = %command_id, error = %cancel, "could not cancel an unconfirmed AWSFIS command");
                        }
                        return Err(e);
                    }
                }
            }
            (DocumentMode::Managed, _) => invocation.status == "Success",
        };
        if !confirmed {
            return Err(AdapterError::Failed(format!(
                "{} on instance {instance} (command {command_id}) ended {}",
                plan.inject.document,
                invocation.describe()
            )));
        }
        let revert_at = chrono::Utc::now() + chrono::Duration::seconds(plan.duration_secs as i64);
        Ok(json!({
            "instanceId": instance,
            "commandId": command_id,
            "document": plan.inject.document,
            "documents": mode.as_str(),
            "durationSeconds": plan.duration_secs,
            "revertAt": revert_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "status": invocation.status,
            "parameters": plan.inject.parameters,
            "stdout": excerpt(&invocation.stdout),
            "ignored": plan.host.ignored,
        }))
    }

    async fn status(
        &self,
        env: &Environment,
        injection: &Injection,
    ) -> Result<InjectionState, AdapterError> {
        let client = SsmClient::new(env).await?;
        let instance = &injection.target.id;
        let Some(command_id) = detail_str(&injection.details, "commandId") else {
            return Ok(InjectionState::Unknown(
                "the injection's details record no SSM command".into(),
            ));
        };
        let Some(inv) = client.invocation(command_id, instance).await? else {
            return Ok(InjectionState::Unknown(format!(
                "SSM does not know command {command_id} on instance {instance} (yet)"
            )));
        };
        let mode = mode_of(&injection.details, client.config());
        let past_revert = detail_str(&injection.details, "revertAt")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| chrono::Utc::now() >= t);
        let readback = match mode {
            DocumentMode::Managed => {
                detail_str(&injection.details, "document").and_then(|document| {
                    let fault = documents::CommandPlan {
                        document: document.to_string(),
                        parameters: serde_json::from_value(
                            injection
                                .details
                                .get("parameters")
                                .cloned()
                                .unwrap_or_default(),
                        )
                        .unwrap_or_default(),
                        script: None,
                        execution_timeout_secs: 0,
                    };
                    documents::managed_readback(&fault)
                })
            }
            DocumentMode::Own => None,
        };
        Ok(match (mode, inv.status.as_str()) {
            // An own script (and an instantaneous AWSFIS document such as Kill-Process) has
            // finished once the fault is in place; it lasts until the scheduled revert.
            (_, "Success") if past_revert => InjectionState::Absent,
            (_, "Success") => InjectionState::Active,
            // A running AWSFIS document is not proof of its fault: read it back.
            (DocumentMode::Managed, "InProgress") => match &readback {
                Some(check) => {
                    let comment = format!(
                        "chaoshub {} {} readback",
                        injection.experiment_uid, injection.injection_id
                    );
                    match read_back(&client, check, instance, &comment).await? {
                        Ok(()) => InjectionState::Active,
                        Err(why) => InjectionState::Unknown(format!(
                            "command {command_id} runs on instance {instance} but its fault does \
                             not read back: {why}"
                        )),
                    }
                }
                None => InjectionState::Unknown(format!(
                    "command {command_id} is InProgress on instance {instance}; there is no \
                     read-back for its document"
                )),
            },
            (_, s) if is_waiting(s) => InjectionState::Unknown(format!(
                "command {command_id} is {s} on instance {instance}"
            )),
            _ => InjectionState::Absent,
        })
    }

    async fn recover(&self, env: &Environment, injection: &Injection) -> Result<(), AdapterError> {
        let client = SsmClient::new(env).await?;
        let instance = &injection.target.id;
        let mode = mode_of(&injection.details, client.config());
        let command_id = match detail_str(&injection.details, "commandId") {
            Some(id) => Some(id.to_string()),
            // The hub crashed before storing inject's answer: find the command by its comment.
            None => client
                .find_command(instance, &injection.injection_id)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(instance = %instance, error = %e, "could not look for the inject command");
                    None
                }),
        };
        if let Some(command_id) = &command_id {
            let still_running = match client.invocation(command_id, instance).await {
                Ok(Some(inv)) => !inv.is_terminal(),
                Ok(None) => true,
                Err(e) => {
                    tracing::warn!(command_id = %command_id, error = %e, "could not read the inject command");
                    true
                }
            };
            if still_running {
                tracing::debug!(command_id = %command_id, instance = %instance, "cancelling a running inject command");
                match client.cancel(command_id, instance).await {
                    // SSM's cancel is asynchronous: the script runs on until the agent gets it
                    // (Cancelling). A revert run meanwhile would undo what the script did so
                    // far, and the script could then apply its fault after it, with its
                    // revert timer already stopped: a fault left for good. So the revert waits
                    // until the inject has stopped (an error to retry if it does not).
                    Ok(()) if mode == DocumentMode::Own => {
                        client.wait(command_id, instance, |_| false).await?;
                    }
                    Ok(()) => {}
                    // Own documents are reverted below whatever the cancel did; an AWSFIS
                    // document can only be stopped by the cancel.
                    Err(e) if mode == DocumentMode::Managed => return Err(e),
                    Err(e) => {
                        tracing::warn!(command_id = %command_id, error = %e, "cancel failed; reverting anyway");
                    }
                }
            }
        }
        if mode == DocumentMode::Managed {
            return Ok(());
        }
        client.ensure_own_document().await?;
        let revert = documents::recover_command(client.config(), &injection.injection_id);
        let comment = format!(
            "chaoshub {} {} recover",
            injection.experiment_uid, injection.injection_id
        );
        let revert_id = match client.send_command(&revert, instance, &comment).await {
            Ok(id) => id,
            // SSM says InvalidInstanceId both for an instance that is gone (it took its faults
            // with it) and for one whose SSM agent is offline — cut off by the fault itself,
            // say. Only EC2 tells them apart; an instance that still exists is retried.
            Err(AdapterError::Rejected(m)) if m.contains("InvalidInstanceId") => {
                return instance_gone_or_offline(&client, env, instance, &m).await;
            }
            Err(e) => return Err(e),
        };
        let inv = client
            .wait(&revert_id, instance, |s| s == "Success")
            .await?;
        if inv.status != "Success" {
            return Err(AdapterError::Failed(format!(
                "the revert on instance {instance} (command {revert_id}) ended {}",
                inv.describe()
            )));
        }
        Ok(())
    }
}

/// After SSM answered InvalidInstanceId: `Ok` when EC2 says the instance is gone (terminated,
/// shutting down, unknown), otherwise an `Unreachable` error, which the hub retries.
async fn instance_gone_or_offline(
    client: &SsmClient,
    env: &Environment,
    instance: &str,
    ssm_message: &str,
) -> Result<(), AdapterError> {
    let state = ec2::instance_state(client, instance).await?;
    match state.as_deref() {
        None | Some("terminated") | Some("shutting-down") => {
            tracing::info!(instance = %instance, state = ?state, "instance is gone; nothing to recover");
            Ok(())
        }
        Some(state) => {
            // What SSM last heard from its agent, when it says (best effort).
            let ping = match client.managed_instances().await {
                Ok(m) => m
                    .get(instance)
                    .map(|i| format!(", SSM ping status {}", i.ping_status))
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            Err(AdapterError::Unreachable {
                environment: env.name.clone(),
                endpoint: format!("the SSM agent of instance {instance}"),
                message: format!(
                    "SSM answers InvalidInstanceId ({}), but EC2 reports the instance {state}{ping}: \
                     its SSM agent is offline (perhaps cut off by the fault itself); recovery is \
                     retried until it answers or the instance is gone",
                    excerpt(ssm_message)
                ),
            })
        }
    }
}

/// Runs a read-back on the instance and waits for it: `Ok(Ok(()))` when the check passed,
/// `Ok(Err(why))` when it ran and failed.
async fn read_back(
    client: &SsmClient,
    check: &documents::CommandPlan,
    instance: &str,
    comment: &str,
) -> Result<Result<(), String>, AdapterError> {
    let id = client.send_command(check, instance, comment).await?;
    let inv = client.wait(&id, instance, |s| s == "Success").await?;
    Ok(if inv.status == "Success" {
        Ok(())
    } else {
        Err(inv.describe())
    })
}

/// Confirms a running AWSFIS document by reading its fault back, again while the document
/// runs (it may still be installing its dependencies), for at most `command_timeout_secs`.
async fn confirm_managed(
    client: &SsmClient,
    check: &documents::CommandPlan,
    instance: &str,
    command_id: &str,
    fault: &FaultRequest,
) -> Result<(), AdapterError> {
    let started = std::time::Instant::now();
    let comment = format!(
        "chaoshub {} {} readback",
        fault.experiment_uid, fault.injection_id
    );
    loop {
        let why = match read_back(client, check, instance, &comment).await? {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if let Some(inv) = client.invocation(command_id, instance).await? {
            if inv.status != "InProgress" && inv.status != "Success" {
                return Err(AdapterError::Failed(format!(
                    "the AWSFIS document on instance {instance} (command {command_id}) ended {} \
                     before its fault read back",
                    inv.describe()
                )));
            }
        }
        if started.elapsed() >= client.config().command_timeout {
            return Err(AdapterError::Failed(format!(
                "command {command_id} runs on instance {instance} but its fault did not read \
                 back within {} s (spec.settings.command_timeout_secs): {why}",
                client.config().command_timeout.as_secs()
            )));
        }
        tokio::time::sleep(client.config().poll_interval).await;
    }
}

/// The lease shown in plans of experiments without a duration.
const ASSUMED_LEASE_SECS: i64 = 3600;

/// Submission checks and dry runs happen before the hub sets a deadline; an experiment without
/// `duration` gets the hub's guardrail lease at injection, so it is planned with a stand-in.
fn with_assumed_lease(fault: &FaultRequest) -> (std::borrow::Cow<'_, FaultRequest>, bool) {
    let has_duration = fault.manifest.fault().and_then(|f| f.duration()).is_some();
    if fault.deadline.is_some() || has_duration {
        return (std::borrow::Cow::Borrowed(fault), false);
    }
    let mut owned = fault.clone();
    owned.deadline = Some(chrono::Utc::now() + chrono::Duration::seconds(ASSUMED_LEASE_SECS));
    (std::borrow::Cow::Owned(owned), true)
}

fn is_waiting(status: &str) -> bool {
    matches!(status, "Pending" | "InProgress" | "Delayed" | "Cancelling")
}
