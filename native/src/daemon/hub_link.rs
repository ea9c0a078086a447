//! The agent's connection to the hub: it dials the hub's gRPC endpoint (the hub's one listen
//! address), registers, heartbeats and answers the commands that come down the same stream.
//! No inbound port is needed. On any failure it reconnects with exponential backoff, shortened
//! while it holds faults whose leases are ending (see [`reconnect_delay`]).
//!
//! Identity: the first registration carries a join token (`--join-token-file`); the hub answers
//! with this agent's own credential, kept in `<state-dir>/hub-credential.json` (mode 0600) and
//! presented on every connection after, so a restarted hub (or agent) needs no token again. The
//! hub refuses a stream without either with `UNAUTHENTICATED`. Every command carries the
//! environment it is meant for; one for another environment is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chaoshub_schema::agent::proto::agent_hub_client::AgentHubClient;
use chaoshub_schema::agent::proto::{
    agent_message, command, hub_message, AgentMessage, Command, CommandReply, Heartbeat, HostUsage,
    Register,
};
use chaoshub_schema::agent::AgentFault;
use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::faults::{FaultError, FaultTable};

/// Who this agent is, as told to the hub.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub environment: String,
    pub labels: BTreeMap<String, String>,
    pub capabilities: Vec<String>,
    /// The opt-ins it was started with (`user-defined`, `host-power`, `clock`).
    pub allowed: Vec<String>,
    pub hostname: String,
    pub addresses: Vec<String>,
}

/// How the agent proves who it is to the hub, and checks who the hub is.
#[derive(Debug, Clone)]
pub struct HubAccess {
    /// Where the issued credential is kept.
    pub state_dir: PathBuf,
    pub join_token: Option<String>,
    /// PEM of the CA of the hub's TLS certificate; `None`: the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM certificate and key presented to a hub that requires client certificates
    /// (`tls.client_ca_file`).
    pub client_identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// The credential file in the state directory.
pub const CREDENTIAL_FILE: &str = "hub-credential.json";

/// A credential as kept on disk: valid only for the environment and name it was issued to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredCredential {
    pub hub: String,
    pub environment: String,
    pub name: String,
    pub credential: String,
}

/// The stored credential for this identity, if there is one.
pub fn load_credential(state_dir: &Path, identity: &Identity) -> Option<StoredCredential> {
    let text = std::fs::read_to_string(state_dir.join(CREDENTIAL_FILE)).ok()?;
    let stored: StoredCredential = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, file = CREDENTIAL_FILE, "ignoring an unreadable credential file");
            return None;
        }
    };
    (stored.environment == identity.environment && stored.name == identity.name).then_some(stored)
}

fn save_credential(state_dir: &Path, stored: &StoredCredential) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(stored).map_err(std::io::Error::other)?;
    crate::local_api::write_private(&state_dir.join(CREDENTIAL_FILE), &text)
}

/// Connection state, visible to the local REST API and the CLI.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkState {
    pub connected: bool,
    pub last_error: Option<String>,
    pub connected_since: Option<DateTime<Utc>>,
    pub reconnects: u64,
}

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How long to wait before the next connection attempt: the backoff (plus jitter), but at most a
/// quarter of the time left on the earliest lease this agent holds, and never under
/// [`BACKOFF_MIN`]. A hub that restarts while the agent holds open-ended faults renews them only
/// once the agent is back: with the plain backoff (up to 5 s) an agent could still be waiting
/// when its leases run out, and remove faults the restarted hub still reports `Running`.
fn reconnect_delay(
    backoff: Duration,
    jitter: Duration,
    next_lease_end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Duration {
    let delay = backoff + jitter;
    match next_lease_end {
        Some(end) => {
            let left = (end - now).to_std().unwrap_or_default();
            delay.min(left / 4).max(BACKOFF_MIN)
        }
        None => delay,
    }
}

/// The hub URLs of `--hub`: one, or the replicas of a highly available hub separated by commas.
pub fn hub_urls(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

/// The leader a replica that does not run the engine names when it refuses or ends a stream
/// (its `chaoshub-leader` metadata).
fn leader_of(status: &tonic::Status) -> Option<String> {
    status
        .metadata()
        .get("chaoshub-leader")
        .and_then(|v| v.to_str().ok())
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .map(str::to_string)
}

/// Runs until `shutdown` fires. `hubs` lists the hub's replicas (one for a single hub): the
/// agent holds one stream, to the replica that runs the engine; a replica that does not sends
/// it on (to the leader it names, else the next in the list), and a lost replica is replaced by
/// the next one at once.
pub async fn run(
    hubs: Vec<String>,
    identity: Identity,
    access: HubAccess,
    table: Arc<FaultTable>,
    state: watch::Sender<LinkState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut next = 0usize;
    let mut redirect: Option<String> = None;
    loop {
        let hub_url = redirect
            .take()
            .unwrap_or_else(|| hubs[next % hubs.len().max(1)].clone());
        next = next.wrapping_add(1);
        let started = tokio::time::Instant::now();
        let mut leader = None;
        let result = tokio::select! {
            r = session(&hub_url, &identity, &access, &table, &state, &mut leader) => r,
            _ = shutdown.changed() => return,
        };
        let message = match result {
            Ok(()) => "the hub closed the stream".to_string(),
            Err(e) => e,
        };
        tracing::warn!(hub = %hub_url, error = %message, leader = ?leader, "hub connection lost; reconnecting");
        redirect = leader;
        state.send_modify(|s| {
            s.connected = false;
            s.last_error = Some(message);
            s.reconnects += 1;
        });
        // A session that lasted a while was healthy: start the backoff over.
        if started.elapsed() > Duration::from_secs(10) {
            backoff = BACKOFF_MIN;
        }
        let jitter = Duration::from_millis(rand::random::<u64>() % 100);
        let delay = if redirect.is_some() || !next.is_multiple_of(hubs.len().max(1)) {
            // The leader was named, or another replica is left to try: go at once.
            Duration::from_millis(50) + jitter / 4
        } else {
            reconnect_delay(backoff, jitter, table.next_lease_end(), Utc::now())
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// The hub's endpoint, with TLS for an https:// URL.
pub fn endpoint(
    hub_url: &str,
    ca_pem: Option<&[u8]>,
    client_identity: Option<&(Vec<u8>, Vec<u8>)>,
) -> Result<tonic::transport::Endpoint, String> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(hub_url.to_string())
        .map_err(|e| format!("invalid hub URL {hub_url:?}: {e}"))?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5));
    if hub_url.starts_with("https://") {
        let mut tls = match ca_pem {
            Some(pem) => tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            None => tonic::transport::ClientTlsConfig::new().with_native_roots(),
        };
        if let Some((cert, key)) = client_identity {
            tls = tls.identity(tonic::transport::Identity::from_pem(cert, key));
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| format!("TLS setup for {hub_url}: {}", error_chain(&e)))?;
    } else if ca_pem.is_some() || client_identity.is_some() {
        return Err(format!(
            "--ca-file or --tls-cert-file is given but the hub URL {hub_url} is not https://"
        ));
    }
    Ok(endpoint)
}

async fn session(
    hub_url: &str,
    identity: &Identity,
    access: &HubAccess,
    table: &Arc<FaultTable>,
    state: &watch::Sender<LinkState>,
    leader: &mut Option<String>,
) -> Result<(), String> {
    let endpoint = endpoint(
        hub_url,
        access.ca_pem.as_deref(),
        access.client_identity.as_ref(),
    )?;
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {hub_url}: {}", error_chain(&e)))?;
    let mut client = AgentHubClient::new(channel);
    let (tx, rx) = mpsc::channel::<AgentMessage>(64);
    let mechanisms_json =
        serde_json::to_string(table.mechanisms()).unwrap_or_else(|_| "{}".to_string());
    let register = Register {
        name: identity.name.clone(),
        environment: identity.environment.clone(),
        labels: identity.labels.clone().into_iter().collect(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        mechanisms_json,
        capabilities: identity.capabilities.clone(),
        hostname: identity.hostname.clone(),
        addresses: identity.addresses.clone(),
        active_fault_ids: table.summary().into_iter().map(|(id, _, _)| id).collect(),
        credential: load_credential(&access.state_dir, identity)
            .map(|c| c.credential)
            .unwrap_or_default(),
        join_token: access.join_token.clone().unwrap_or_default(),
        allowed: identity.allowed.clone(),
    };
    tx.send(AgentMessage {
        msg: Some(agent_message::Msg::Register(register)),
    })
    .await
    .map_err(|_| "stream closed before registering".to_string())?;
    let mut inbound = client
        .connect(ReceiverStream::new(rx))
        .await
        .map_err(|s| match s.code() {
            tonic::Code::Unavailable if leader_of(&s).is_some() => {
                *leader = leader_of(&s);
                format!("{hub_url} does not run the engine: {}", s.message())
            }
            tonic::Code::Unauthenticated => {
                format!(
                    "the hub refused this agent (unauthenticated): {}",
                    s.message()
                )
            }
            _ => format!("hub refused the stream: {}", s.message()),
        })?
        .into_inner();

    // The first answer says whether we are registered and how often to heartbeat.
    let interval = match inbound.message().await {
        Ok(Some(msg)) => match msg.msg {
            Some(hub_message::Msg::Registered(r)) => {
                if !r.credential.is_empty() {
                    let stored = StoredCredential {
                        hub: hub_url.to_string(),
                        environment: identity.environment.clone(),
                        name: identity.name.clone(),
                        credential: r.credential.clone(),
                    };
                    // Without the file the next connection would need the join token again:
                    // fail this session so the error is seen, rather than run on silently.
                    save_credential(&access.state_dir, &stored).map_err(|e| {
                        format!(
                            "cannot store the credential the hub issued in {}: {e}",
                            access.state_dir.join(CREDENTIAL_FILE).display()
                        )
                    })?;
                    tracing::info!(file = %access.state_dir.join(CREDENTIAL_FILE).display(), "joined the hub; credential stored");
                }
                Duration::from_millis(u64::from(r.heartbeat_interval_ms.clamp(100, 60_000)))
            }
            Some(hub_message::Msg::Refused(r)) => {
                return Err(format!("hub refused the registration: {}", r.reason))
            }
            _ => return Err("hub answered the registration with something else".to_string()),
        },
        Ok(None) => return Err("hub closed the stream while registering".to_string()),
        Err(s) => return Err(format!("registration failed: {}", s.message())),
    };
    tracing::info!(hub = %hub_url, name = %identity.name, environment = %identity.environment, "registered with the hub");
    state.send_modify(|s| {
        s.connected = true;
        s.last_error = None;
        s.connected_since = Some(Utc::now());
    });

    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut usage = crate::node_metrics::UsageSampler::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let beat = Heartbeat {
                    sent_unix_ms: Utc::now().timestamp_millis(),
                    active_faults: table.len() as u32,
                    usage: usage.sample().map(|u| HostUsage {
                        cpu_percent: u.cpu_percent,
                        mem_used_bytes: u.mem_used_bytes,
                        mem_total_bytes: u.mem_total_bytes,
                        load1: u.load1,
                    }),
                };
                if tx.send(AgentMessage { msg: Some(agent_message::Msg::Heartbeat(beat)) }).await.is_err() {
                    return Err("outbound stream closed".to_string());
                }
            }
            msg = inbound.message() => {
                match msg {
                    Ok(Some(msg)) => {
                        if let Some(hub_message::Msg::Command(cmd)) = msg.msg {
                            let table = table.clone();
                            let tx = tx.clone();
                            let environment = identity.environment.clone();
                            // Commands run on blocking threads (they spawn host commands) and in
                            // parallel with heartbeats, so a slow injection never looks like a
                            // dead agent.
                            tokio::spawn(async move {
                                let reply = tokio::task::spawn_blocking(move || execute(&table, &environment, cmd))
                                    .await
                                    .unwrap_or_else(|e| CommandReply {
                                        ok: false,
                                        error_kind: "failed".into(),
                                        error: format!("command panicked: {e}"),
                                        ..Default::default()
                                    });
                                let _ = tx.send(AgentMessage { msg: Some(agent_message::Msg::Reply(reply)) }).await;
                            });
                        }
                    }
                    Ok(None) => return Ok(()),
                    Err(s) => {
                        *leader = leader_of(&s);
                        return Err(format!("stream error: {}", s.message()));
                    }
                }
            }
        }
    }
}

fn millis_to_time(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// Runs one hub command against the fault table, if it is meant for this agent's environment.
pub fn execute(table: &FaultTable, environment: &str, cmd: Command) -> CommandReply {
    let id = cmd.command_id.clone();
    if cmd.environment != environment {
        tracing::warn!(command = %id, wanted = %cmd.environment, ours = %environment, "refusing a command for another environment");
        return CommandReply {
            command_id: id,
            ok: false,
            error_kind: "invalid".into(),
            error: format!(
                "this agent belongs to environment {environment:?}, not {:?}; command refused",
                cmd.environment
            ),
            status_json: String::new(),
        };
    }
    let result: Result<Option<chaoshub_schema::agent::AgentFaultStatus>, (String, String)> =
        match cmd.op {
            Some(command::Op::Inject(inject)) => {
                match (
                    serde_json::from_str::<AgentFault>(&inject.fault_json),
                    millis_to_time(inject.lease_until_unix_ms),
                ) {
                    (Ok(fault), Some(lease)) => table
                        .inject(&inject.fault_id, fault, lease)
                        .map(Some)
                        .map_err(split),
                    (Err(e), _) => Err(("invalid".into(), format!("fault_json: {e}"))),
                    (_, None) => Err((
                        "invalid".into(),
                        "lease_until_unix_ms is out of range".into(),
                    )),
                }
            }
            Some(command::Op::Recover(r)) => match table.recover(&r.fault_id) {
                // Already gone (lease ended, or never applied): recovery is idempotent.
                Ok(()) | Err(FaultError::NotFound(_)) => Ok(None),
                Err(e) => Err(split(e)),
            },
            Some(command::Op::Status(s)) => table.status(&s.fault_id).map(Some).map_err(split),
            Some(command::Op::Renew(r)) => match millis_to_time(r.lease_until_unix_ms) {
                Some(lease) => table.renew(&r.fault_id, lease).map(Some).map_err(split),
                None => Err((
                    "invalid".into(),
                    "lease_until_unix_ms is out of range".into(),
                )),
            },
            None => Err(("invalid".into(), "empty command".into())),
        };
    match result {
        Ok(status) => CommandReply {
            command_id: id,
            ok: true,
            status_json: status
                .map(|s| serde_json::to_string(&s).unwrap_or_default())
                .unwrap_or_default(),
            ..Default::default()
        },
        Err((kind, message)) => CommandReply {
            command_id: id,
            ok: false,
            error_kind: kind,
            error: message,
            status_json: String::new(),
        },
    }
}

fn split(e: FaultError) -> (String, String) {
    (e.kind().to_string(), e.to_string())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_hubs_are_listed_and_a_refusal_names_the_leader() {
        assert_eq!(
            hub_urls(" http://a:1, http://b:2 ,,http://c:3"),
            ["http://a:1", "http://b:2", "http://c:3"]
        );
        assert!(hub_urls(" , ").is_empty());
        let mut refused = tonic::Status::unavailable("not the leader");
        assert_eq!(leader_of(&refused), None);
        refused
            .metadata_mut()
            .insert("chaoshub-leader", "http://b:2".parse().unwrap());
        assert_eq!(leader_of(&refused).as_deref(), Some("http://b:2"));
        let mut odd = tonic::Status::unavailable("x");
        odd.metadata_mut()
            .insert("chaoshub-leader", "file:///etc/passwd".parse().unwrap());
        assert_eq!(leader_of(&odd), None, "only http(s) URLs are followed");
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn with_no_fault_held_the_plain_backoff_is_kept() {
        let d = reconnect_delay(BACKOFF_MAX, Duration::from_millis(40), None, at(0));
        assert_eq!(d, BACKOFF_MAX + Duration::from_millis(40));
    }

    #[test]
    fn a_lease_ending_soon_shortens_the_wait_to_a_quarter_of_what_is_left() {
        // 4 s left on the earliest lease: try again within 1 s, not after 5 s.
        let d = reconnect_delay(BACKOFF_MAX, Duration::ZERO, Some(at(4)), at(0));
        assert_eq!(d, Duration::from_secs(1));
        // A far lease does not shorten a short backoff.
        let d = reconnect_delay(BACKOFF_MIN, Duration::ZERO, Some(at(30)), at(0));
        assert_eq!(d, BACKOFF_MIN);
    }

    #[test]
    fn the_wait_never_drops_under_the_minimum_even_for_a_lease_already_ended() {
        for end in [
            at(0),
            at(-3),
            Utc.timestamp_opt(1_700_000_000, 100_000_000).unwrap(),
        ] {
            let d = reconnect_delay(BACKOFF_MAX, Duration::ZERO, Some(end), at(0));
            assert_eq!(d, BACKOFF_MIN, "lease ending {end}");
        }
    }
}
