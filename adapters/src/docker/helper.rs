//! Helper containers: short-lived containers from the helper image that join a target's network
//! (or PID) namespace and run `chaos-agent attack … --foreground -o json`, so a fault is applied
//! inside the target without anything installed in its image.
//!
//! The agent prints `{"state":"active"}` once the fault is verified, holds it until its
//! `--duration` ends (the hub's deadline: a dead man's switch) or SIGTERM, removes it and prints
//! `{"state":"removed"}`. It journals to `/state` (the injection's volume) before applying, so
//! when a helper dies without removing its fault, a cleanup helper in the same namespace runs
//! `chaos-agent recover --all --state-dir /state`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, LogsOptions, RemoveContainerOptions, StopContainerOptions,
    WaitContainerOptions,
};
use futures_util::StreamExt;
use serde_json::Value;

use chaoshub_schema::agent::RevertCall;

use super::client::{is_not_found, is_not_modified, DockerClient};
use super::config::DockerEndpoint;
use super::image::{build_image, helper_context, ROLE_LABEL};
use super::journal::{volume_name, INJECTION_LABEL, TARGET_LABEL};
use super::plan::{HelperNamespace, HelperRun};
use crate::AdapterError;

/// Where the agent keeps its journal inside a helper.
const STATE_DIR: &str = "/state";

/// Builds of the helper image are serialised: concurrent injections would build the same
/// content-addressed image twice.
static BUILD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The label of a helper image naming the agent binary it was built from.
const FINGERPRINT_LABEL: &str = "dev.chaoshub.agent-fingerprint";

/// A cheap identity of the agent binary: its path, size and modification time, hashed.
fn binary_fingerprint(binary: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(binary.as_os_str().as_encoded_bytes());
    if let Ok(m) = std::fs::metadata(binary) {
        hasher.update(m.len().to_le_bytes());
        let modified = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        hasher.update(modified.to_le_bytes());
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The tag of an image on the engine built from the binary with this fingerprint, if any.
async fn image_with_fingerprint(
    client: &DockerClient,
    fingerprint: &str,
) -> Result<Option<String>, AdapterError> {
    let tags = helper_image_tags(client, &format!("{FINGERPRINT_LABEL}={fingerprint}"))
        .await
        .map_err(|e| client.error("listing helper images", e))?;
    Ok(tags.into_iter().next())
}

/// The `chaoshub/agent-helper:*` tags of the images carrying `label` (`key=value`).
async fn helper_image_tags(
    client: &DockerClient,
    label: &str,
) -> Result<Vec<String>, bollard::errors::Error> {
    let mut filters = HashMap::new();
    filters.insert("label".to_string(), vec![label.to_string()]);
    let options = bollard::query_parameters::ListImagesOptions {
        filters: Some(filters),
        ..Default::default()
    };
    let images = client.docker().list_images(Some(options)).await?;
    Ok(images
        .into_iter()
        .flat_map(|i| i.repo_tags)
        .filter(|t| t.starts_with("chaoshub/agent-helper:"))
        .collect())
}

/// Removes helper images other than `current` that no container uses (built from earlier agent
/// binaries), so that every rebuild of the agent does not leave another image behind. An image
/// still in use is refused by the engine and kept; failures only cost disk space, so they are
/// logged, not returned.
async fn remove_older_images(client: &DockerClient, current: &str) {
    let Ok(tags) = helper_image_tags(client, &format!("{ROLE_LABEL}=helper-image")).await else {
        return;
    };
    for tag in tags.into_iter().filter(|t| t != current) {
        let options = bollard::query_parameters::RemoveImageOptions {
            force: false,
            noprune: false,
            ..Default::default()
        };
        match client
            .docker()
            .remove_image(&tag, Some(options), None)
            .await
        {
            Ok(_) => tracing::info!(image = %tag, "removed an older helper image"),
            Err(e) => tracing::debug!(image = %tag, error = %e, "older helper image kept"),
        }
    }
}

/// The `chaos-agent` binary to put into the helper image: the environment's `agent_binary`,
/// else `$CHAOSHUB_AGENT_BINARY`, else `chaos-agent` next to the running executable.
pub fn agent_binary(configured: Option<&PathBuf>) -> Result<PathBuf, String> {
    let (path, origin) = if let Some(p) = configured {
        (p.clone(), "spec.settings.agent_binary")
    } else if let Some(p) = std::env::var_os("CHAOSHUB_AGENT_BINARY").filter(|p| !p.is_empty()) {
        (PathBuf::from(p), "$CHAOSHUB_AGENT_BINARY")
    } else {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
        (
            dir.join("chaos-agent"),
            "the directory of the hub's executable",
        )
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "network and stress faults on Docker run chaos-agent in a helper container, but no \
             agent binary was found at {} (from {origin}); set spec.settings.agent_binary, \
             $CHAOSHUB_AGENT_BINARY, or spec.settings.helper_image",
            path.display()
        ))
    }
}

/// The helper image's tag, built on first use from the host's files.
pub async fn ensure_image(client: &DockerClient) -> Result<String, AdapterError> {
    if let Some(image) = &client.config().helper_image {
        return match client.docker().inspect_image(image).await {
            Ok(_) => Ok(image.clone()),
            Err(e) if is_not_found(&e) => Err(AdapterError::Failed(format!(
                "spec.settings.helper_image {image:?} is not on the engine (nothing is pulled)"
            ))),
            Err(e) => Err(client.error(&format!("inspecting helper image {image}"), e)),
        };
    }
    let binary =
        agent_binary(client.config().agent_binary.as_ref()).map_err(AdapterError::Failed)?;
    // Assembling the context to learn its content hash costs seconds (it reads the agent and
    // every tool and library, and hashes them): an image built from the same binary (path,
    // size, modification time) is found by the fingerprint label it carries instead.
    let fingerprint = binary_fingerprint(&binary);
    if let Some(tag) = image_with_fingerprint(client, &fingerprint).await? {
        return Ok(tag);
    }
    // One assembly at a time: a concurrent injection waits for this one and finds its image.
    let _guard = BUILD_LOCK.lock().await;
    if let Some(tag) = image_with_fingerprint(client, &fingerprint).await? {
        return Ok(tag);
    }
    // Assembling the context reads a few dozen MB and runs ldd: off the async threads.
    let mut context = tokio::task::spawn_blocking(move || helper_context(&binary))
        .await
        .map_err(|e| AdapterError::Failed(format!("assembling the helper image: {e}")))?
        .map_err(|e| AdapterError::Failed(format!("assembling the helper image: {e}")))?;
    context.instruction(format!("LABEL {FINGERPRINT_LABEL}={fingerprint}"));
    let hash = context
        .content_hash()
        .map_err(|e| AdapterError::Failed(e.to_string()))?;
    let tag = format!("chaoshub/agent-helper:{hash}");
    match client.docker().inspect_image(&tag).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {
            tracing::info!(image = %tag, "building the chaos-agent helper image");
            build_image(client.docker(), &tag, &context)
                .await
                .map_err(AdapterError::Failed)?;
        }
        Err(e) => return Err(client.error(&format!("inspecting helper image {tag}"), e)),
    }
    remove_older_images(client, &tag).await;
    Ok(tag)
}

/// The name of an injection's helper for one role (`network`, `cpu`, `mem`, `cleanup`).
pub fn helper_name(injection_id: &str, role: &str) -> String {
    format!("{}-{role}", volume_name(injection_id))
}

/// Options the target's cgroup allows a stress helper to share: on cgroup v1 with the cgroupfs
/// driver a helper can be nested below the target's own cgroup, so the target's limits bound
/// the stress and `docker stats` of the target counts it. Elsewhere (systemd driver, cgroup v2,
/// where a cgroup holding processes cannot have children) it shares only the PID namespace.
pub async fn nested_cgroup(
    client: &DockerClient,
    target_id: &str,
    parent: Option<&str>,
) -> Option<String> {
    let info = client.docker().info().await.ok()?;
    let driver = info
        .cgroup_driver
        .map(|d| d.to_string())
        .unwrap_or_default();
    let version = info
        .cgroup_version
        .map(|v| v.to_string())
        .unwrap_or_default();
    if driver != "cgroupfs" || version != "1" {
        return None;
    }
    let parent = parent.filter(|p| !p.is_empty()).unwrap_or("/docker");
    Some(format!("{}/{target_id}", parent.trim_end_matches('/')))
}

/// Creates and starts one helper (replacing one of the same name left from an earlier attempt).
pub async fn start(
    client: &DockerClient,
    image: &str,
    injection_id: &str,
    target_id: &str,
    run: &HelperRun,
    extra_args: &[String],
    cgroup_parent: Option<String>,
) -> Result<String, AdapterError> {
    let name = helper_name(injection_id, run.role);
    let mut cmd = run.args.clone();
    cmd.extend(extra_args.iter().cloned());
    let (network_mode, pid_mode, caps) = match run.namespace {
        HelperNamespace::Network => (
            Some(format!("container:{target_id}")),
            None,
            vec!["NET_ADMIN".to_string(), "NET_RAW".to_string()],
        ),
        HelperNamespace::Pid => (
            None,
            Some(format!("container:{target_id}")),
            vec!["SYS_NICE".to_string()],
        ),
    };
    let host_config = HostConfig {
        network_mode: network_mode.or_else(|| Some("none".into())),
        pid_mode,
        cap_add: Some(caps),
        binds: Some(vec![format!("{}:{STATE_DIR}", volume_name(injection_id))]),
        cgroup_parent,
        ..Default::default()
    };
    create_and_start(
        client,
        &name,
        image,
        injection_id,
        target_id,
        cmd,
        host_config,
    )
    .await?;
    Ok(name)
}

/// Creates and starts a container of the helper image under `name`, labelled as the
/// injection's helper (so it is never a target and recovery finds it). A container of that name
/// left from an earlier attempt is removed first, so a retried injection starts clean.
async fn create_and_start(
    client: &DockerClient,
    name: &str,
    image: &str,
    injection_id: &str,
    target_id: &str,
    cmd: Vec<String>,
    host_config: HostConfig,
) -> Result<(), AdapterError> {
    remove(client, name).await?;
    let labels: HashMap<String, String> = [
        (ROLE_LABEL.to_string(), "helper".to_string()),
        (INJECTION_LABEL.to_string(), injection_id.to_string()),
        (TARGET_LABEL.to_string(), target_id.to_string()),
    ]
    .into_iter()
    .collect();
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(cmd),
        labels: Some(labels),
        host_config: Some(host_config),
        ..Default::default()
    };
    let options = CreateContainerOptions {
        name: Some(name.to_string()),
        ..Default::default()
    };
    client
        .docker()
        .create_container(Some(options), body)
        .await
        .map_err(|e| client.error(&format!("creating helper {name}"), e))?;
    match client.docker().start_container(name, None).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_modified(&e) => Ok(()),
        Err(e) => Err(client.error(&format!("starting helper {name}"), e)),
    }
}

/// Everything a helper printed (stdout and stderr, in order).
pub async fn logs(client: &DockerClient, name: &str) -> Result<Option<String>, AdapterError> {
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        follow: false,
        tail: "all".into(),
        ..Default::default()
    };
    let mut stream = client.docker().logs(name, Some(options));
    let mut text = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(
                LogOutput::StdOut { message }
                | LogOutput::StdErr { message }
                | LogOutput::Console { message },
            ) => {
                text.push_str(&String::from_utf8_lossy(&message));
            }
            Ok(LogOutput::StdIn { .. }) => {}
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(client.error(&format!("reading the logs of {name}"), e)),
        }
    }
    Ok(Some(text))
}

/// The agent's last reported state (`active`, `failed`, `removed`) and its error, from the
/// JSON lines it printed.
pub fn agent_state(logs: &str) -> Option<(String, Option<String>)> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
        .filter_map(|v| {
            let state = v.get("state")?.as_str()?.to_string();
            let error = v.get("error").and_then(Value::as_str).map(str::to_string);
            Some((state, error))
        })
        .next_back()
}

/// Whether any JSON line of the helper's output reports `state`.
fn said(logs: &str, state: &str) -> bool {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
        .any(|v| v.get("state").and_then(Value::as_str) == Some(state))
}

/// Whether the helper exists and runs.
pub async fn running(client: &DockerClient, name: &str) -> Result<Option<bool>, AdapterError> {
    match client.docker().inspect_container(name, None).await {
        Ok(c) => Ok(Some(c.state.and_then(|s| s.running).unwrap_or(false))),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(client.error(&format!("inspecting helper {name}"), e)),
    }
}

/// Waits until the agent in the helper reports the fault active; a failure report, or the
/// helper exiting first, is an error carrying what the agent said. Returns the mechanism the
/// agent chose.
pub async fn wait_active(
    client: &DockerClient,
    name: &str,
    timeout: Duration,
) -> Result<String, AdapterError> {
    let text = wait_state(client, name, "active", timeout).await?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find_map(|v| {
            v.get("mechanism")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default())
}

/// Waits until the agent in the helper prints `{"state": wanted}` while running (or just before
/// exiting); `failed`, an exit without it, or the timeout is an error carrying its output.
async fn wait_state(
    client: &DockerClient,
    name: &str,
    wanted: &str,
    timeout: Duration,
) -> Result<String, AdapterError> {
    let started = tokio::time::Instant::now();
    loop {
        let text = logs(client, name).await?.unwrap_or_default();
        if said(&text, wanted) {
            // Said at some point, even if it has moved on since (a short fault already removed,
            // a watchdog already fired).
            return Ok(text);
        }
        match agent_state(&text) {
            Some((state, error)) if state == "failed" => {
                return Err(AdapterError::Failed(format!(
                    "chaos-agent in helper {name} failed: {}",
                    error.unwrap_or_else(|| tail(&text))
                )))
            }
            _ => {}
        }
        if running(client, name).await? != Some(true) {
            // It may have printed its last line just before exiting.
            let text = logs(client, name).await?.unwrap_or_default();
            if said(&text, wanted) {
                return Ok(text);
            }
            return Err(AdapterError::Failed(format!(
                "helper {name} exited before reporting {wanted}; its output: {}",
                tail(&text)
            )));
        }
        if started.elapsed() >= timeout {
            return Err(AdapterError::Failed(format!(
                "chaos-agent in helper {name} did not report {wanted} within {}s; its output so \
                 far: {}",
                timeout.as_secs(),
                tail(&text)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The role (and name suffix) of an injection's watchdog container.
pub const WATCHDOG_ROLE: &str = "watchdog";

/// How a watchdog container reaches the engine: the socket bind-mounted, or the TCP address on
/// the host network.
pub struct WatchdogAccess {
    endpoint: String,
    network_mode: &'static str,
    binds: Vec<String>,
}

/// The watchdog's way to the engine, or why there is none (it speaks plain HTTP only).
pub fn watchdog_access(endpoint: &DockerEndpoint) -> Result<WatchdogAccess, String> {
    match endpoint {
        DockerEndpoint::Unix(path) => Ok(WatchdogAccess {
            endpoint: "unix:///var/run/docker.sock".into(),
            network_mode: "none",
            binds: vec![format!("{path}:/var/run/docker.sock")],
        }),
        DockerEndpoint::Tcp(addr) => Ok(WatchdogAccess {
            endpoint: format!("tcp://{addr}"),
            network_mode: "host",
            binds: Vec::new(),
        }),
        DockerEndpoint::Tls { .. } => Err("the watchdog speaks plain HTTP and cannot reach a \
                                           TLS engine; this fault's deadline rests with the hub"
            .into()),
    }
}

/// Starts the injection's watchdog: a container from the helper image running `chaos-agent
/// watchdog`, which at `at` makes `calls` against this engine's API (through `access`) to undo
/// a pause, disconnect or squeeze that the hub has not undone by then. Returns once the
/// watchdog reports itself armed.
pub async fn start_watchdog(
    client: &DockerClient,
    image: &str,
    injection_id: &str,
    target_id: &str,
    access: WatchdogAccess,
    at: chrono::DateTime<chrono::Utc>,
    calls: &[RevertCall],
) -> Result<String, AdapterError> {
    let name = helper_name(injection_id, WATCHDOG_ROLE);
    let calls = serde_json::to_string(calls)
        .map_err(|e| AdapterError::Failed(format!("encoding the watchdog's calls: {e}")))?;
    let cmd = vec![
        "watchdog".into(),
        "--at".into(),
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "--endpoint".into(),
        access.endpoint,
        "--calls".into(),
        calls,
    ];
    let host_config = HostConfig {
        network_mode: Some(access.network_mode.into()),
        binds: Some(access.binds),
        ..Default::default()
    };
    create_and_start(
        client,
        &name,
        image,
        injection_id,
        target_id,
        cmd,
        host_config,
    )
    .await?;
    wait_state(client, &name, "armed", Duration::from_secs(15)).await?;
    Ok(name)
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(10);
    let joined = lines[start..].join(" | ");
    if joined.is_empty() {
        "(nothing)".into()
    } else {
        joined
    }
}

/// Asks a helper to remove its fault (SIGTERM, then SIGKILL after `grace`) and reports whether
/// the agent confirmed the removal. A helper that is gone confirms nothing.
pub async fn stop(
    client: &DockerClient,
    name: &str,
    grace: Duration,
) -> Result<bool, AdapterError> {
    let options = StopContainerOptions {
        t: Some(grace.as_secs() as i32),
        signal: None,
    };
    match client.docker().stop_container(name, Some(options)).await {
        Ok(()) => {}
        Err(e) if is_not_modified(&e) => {}
        Err(e) if is_not_found(&e) => return Ok(false),
        Err(e) => return Err(client.error(&format!("stopping helper {name}"), e)),
    }
    let text = logs(client, name).await?.unwrap_or_default();
    Ok(agent_state(&text).is_some_and(|(s, _)| s == "removed"))
}

/// Removes a helper container (force: it may still run); gone already is fine.
pub async fn remove(client: &DockerClient, name: &str) -> Result<(), AdapterError> {
    let options = RemoveContainerOptions {
        force: true,
        v: false,
        link: false,
    };
    match client.docker().remove_container(name, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        // 409 "removal already in progress" ends in the same place.
        Err(e) if super::client::is_conflict(&e) => Ok(()),
        Err(e) => Err(client.error(&format!("removing helper {name}"), e)),
    }
}

/// Runs `chaos-agent recover --all --state-dir /state` in the target's network namespace and
/// waits for it, for when a helper died without removing its fault.
pub async fn cleanup(
    client: &DockerClient,
    image: &str,
    injection_id: &str,
    target_id: &str,
    timeout: Duration,
) -> Result<(), AdapterError> {
    let run = HelperRun {
        role: "cleanup",
        args: vec![
            "recover".into(),
            "--all".into(),
            "--state-dir".into(),
            STATE_DIR.into(),
        ],
        namespace: HelperNamespace::Network,
    };
    let name = start(client, image, injection_id, target_id, &run, &[], None).await?;
    let mut wait = client
        .docker()
        .wait_container(&name, None::<WaitContainerOptions>);
    let outcome = tokio::time::timeout(timeout, wait.next()).await;
    let output = logs(client, &name).await?.unwrap_or_default();
    let result = match outcome {
        Ok(Some(Ok(r))) if r.status_code == 0 => Ok(()),
        Ok(Some(Ok(r))) => Err(format!("exited with {}", r.status_code)),
        // bollard reports a non-zero exit as an error carrying the code.
        Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => {
            Err(format!("exited with {code}"))
        }
        Ok(Some(Err(e))) => Err(e.to_string()),
        Ok(None) => Err("the wait ended without a status".into()),
        Err(_) => Err(format!("did not finish within {}s", timeout.as_secs())),
    };
    remove(client, &name).await?;
    result.map_err(|why| {
        AdapterError::Failed(format!(
            "cleanup helper {name} (chaos-agent recover --all) {why}; its output: {}",
            tail(&output)
        ))
    })
}
