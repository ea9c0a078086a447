//! The injection's journal, kept inside the engine: a named volume `chaoshub-<injection id>`
//! whose labels record what the adapter is about to change and the state before it.
//!
//! It is created *before* anything is touched, so when the hub dies between changing a container
//! and storing `inject`'s answer, recovery still learns from the engine itself what to restore
//! (the container it paused, the networks and aliases it left, the limits it had). Network and
//! stress helpers mount the same volume at `/state` for the agent's own journal. Recovery
//! removes it last.

use std::collections::HashMap;

use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::RemoveVolumeOptions;
use serde::{Deserialize, Serialize};

use super::client::{is_conflict, is_not_found, DockerClient};
use super::image::ROLE_LABEL;
use crate::AdapterError;

pub const INJECTION_LABEL: &str = "dev.chaoshub.injection";
pub const TARGET_LABEL: &str = "dev.chaoshub.target";
const RECORD_LABEL: &str = "dev.chaoshub.record";

/// The journal volume's name (also the prefix of the injection's helper containers).
pub fn volume_name(injection_id: &str) -> String {
    format!("chaoshub-{injection_id}")
}

/// One network a container was disconnected from, as it was attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedEndpoint {
    pub network: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub links: Vec<String>,
    /// Static addresses the user gave (`--ip`); dynamic ones are not pinned on reconnect.
    #[serde(default)]
    pub ipv4_address: Option<String>,
    #[serde(default)]
    pub ipv6_address: Option<String>,
}

/// CPU and memory settings of a container, as `docker inspect` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub nano_cpus: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    pub memory: i64,
    pub memory_swap: i64,
}

impl Limits {
    /// Whether the CPU limit differs (the quota, or `--cpus`); the period alone does not limit.
    pub fn cpu_differs(&self, other: &Limits) -> bool {
        self.cpu_quota != other.cpu_quota || self.nano_cpus != other.nano_cpus
    }

    /// Whether the memory limit differs.
    pub fn memory_differs(&self, other: &Limits) -> bool {
        self.memory != other.memory
    }
}

/// What was done to the container, with what recovery needs to undo it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mechanism", rename_all = "kebab-case")]
pub enum Mechanism {
    /// A signal; `startedAt` tells a restart by the engine from a container left dead.
    #[serde(rename_all = "camelCase")]
    Kill {
        signal: String,
        started_at: String,
        /// What the signal did, read back after sending it (absent in the journal, which is
        /// written before the signal).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<KillOutcome>,
    },
    /// SIGTERM, grace period, SIGKILL.
    #[serde(rename_all = "camelCase")]
    Stop {
        grace_secs: u64,
        started_at: String,
    },
    Pause,
    /// Helper containers (by name) running the agent; `network` says whether they joined the
    /// target's network namespace (and so need a cleanup helper if they die).
    #[serde(rename_all = "camelCase")]
    Helpers {
        helpers: Vec<String>,
        image: String,
        network: bool,
    },
    Disconnect {
        networks: Vec<SavedEndpoint>,
    },
    #[serde(rename_all = "camelCase")]
    Squeeze {
        before: Limits,
        applied: Limits,
    },
}

/// What a container-kill signal was seen to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KillOutcome {
    /// The container died (and may have been restarted by its policy since).
    Exited,
    /// The container is still running the same process: it handles or ignores the signal.
    /// That is the experiment's answer, read back, not a failure.
    KeptRunning,
}

/// The journal entry; also the core of the details `inject` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub container: String,
    pub name: String,
    pub action: String,
    #[serde(flatten)]
    pub mechanism: Mechanism,
}

/// Writes the journal; an existing one of the same injection is returned instead (and left
/// as it is).
pub async fn create(
    client: &DockerClient,
    injection_id: &str,
    record: &Record,
) -> Result<Option<Record>, AdapterError> {
    if let Some(existing) = read(client, injection_id).await? {
        return Ok(Some(existing));
    }
    let text = serde_json::to_string(record)
        .map_err(|e| AdapterError::Failed(format!("encoding the journal: {e}")))?;
    let labels: HashMap<String, String> = [
        (ROLE_LABEL.to_string(), "journal".to_string()),
        (INJECTION_LABEL.to_string(), injection_id.to_string()),
        (TARGET_LABEL.to_string(), record.container.clone()),
        (RECORD_LABEL.to_string(), text),
    ]
    .into_iter()
    .collect();
    let request = VolumeCreateRequest {
        name: Some(volume_name(injection_id)),
        labels: Some(labels),
        ..Default::default()
    };
    client
        .docker()
        .create_volume(request)
        .await
        .map_err(|e| client.error("creating the injection's journal volume", e))?;
    Ok(None)
}

/// Reads the journal back, if there is one.
pub async fn read(
    client: &DockerClient,
    injection_id: &str,
) -> Result<Option<Record>, AdapterError> {
    let name = volume_name(injection_id);
    match client.docker().inspect_volume(&name).await {
        Ok(volume) => {
            let Some(text) = volume.labels.get(RECORD_LABEL) else {
                return Err(AdapterError::Failed(format!(
                    "volume {name} exists but holds no chaoshub record; remove it by hand if it \
                     is not chaoshub's"
                )));
            };
            serde_json::from_str(text).map(Some).map_err(|e| {
                AdapterError::Failed(format!("the journal on volume {name} is unreadable: {e}"))
            })
        }
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(client.error(&format!("reading journal volume {name}"), e)),
    }
}

/// Removes the journal (already gone is fine).
pub async fn remove(client: &DockerClient, injection_id: &str) -> Result<(), AdapterError> {
    let name = volume_name(injection_id);
    match client
        .docker()
        .remove_volume(&name, None::<RemoveVolumeOptions>)
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) if is_conflict(&e) => Err(AdapterError::Failed(format!(
            "journal volume {name} is still in use (a helper container was not removed)"
        ))),
        Err(e) => Err(client.error(&format!("removing journal volume {name}"), e)),
    }
}
