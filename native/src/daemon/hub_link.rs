//! The agent's connection to the hub: it dials the hub's gRPC endpoint (the hub's one listen
//! address), registers, heartbeats and answers the commands that come down the same stream.
//! No inbound port is needed. On any failure it reconnects with exponential backoff.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chaoshub_schema::agent::proto::agent_hub_client::AgentHubClient;
use chaoshub_schema::agent::proto::{
    agent_message, command, hub_message, AgentMessage, Command, CommandReply, Heartbeat, Register,
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
    pub hostname: String,
    pub addresses: Vec<String>,
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

/// Runs until `shutdown` fires.
pub async fn run(
    hub_url: String,
    identity: Identity,
    table: Arc<FaultTable>,
    state: watch::Sender<LinkState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let started = tokio::time::Instant::now();
        let result = tokio::select! {
            r = session(&hub_url, &identity, &table, &state) => r,
            _ = shutdown.changed() => return,
        };
        let message = match result {
            Ok(()) => "the hub closed the stream".to_string(),
            Err(e) => e,
        };
        tracing::warn!(hub = %hub_url, error = %message, "hub connection lost; reconnecting");
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
        tokio::select! {
            _ = tokio::time::sleep(backoff + jitter) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn session(
    hub_url: &str,
    identity: &Identity,
    table: &Arc<FaultTable>,
    state: &watch::Sender<LinkState>,
) -> Result<(), String> {
    let endpoint = tonic::transport::Endpoint::from_shared(hub_url.to_string())
        .map_err(|e| format!("invalid hub URL {hub_url:?}: {e}"))?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5));
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
    };
    tx.send(AgentMessage {
        msg: Some(agent_message::Msg::Register(register)),
    })
    .await
    .map_err(|_| "stream closed before registering".to_string())?;
    let mut inbound = client
        .connect(ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("hub refused the stream: {}", s.message()))?
        .into_inner();

    // The first answer says whether we are registered and how often to heartbeat.
    let interval = match inbound.message().await {
        Ok(Some(msg)) => match msg.msg {
            Some(hub_message::Msg::Registered(r)) => {
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
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let beat = Heartbeat {
                    sent_unix_ms: Utc::now().timestamp_millis(),
                    active_faults: table.len() as u32,
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
                            // Commands run on blocking threads (they spawn host commands) and in
                            // parallel with heartbeats, so a slow injection never looks like a
                            // dead agent.
                            tokio::spawn(async move {
                                let reply = tokio::task::spawn_blocking(move || execute(&table, cmd))
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
                    Err(s) => return Err(format!("stream error: {}", s.message())),
                }
            }
        }
    }
}

fn millis_to_time(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// Runs one hub command against the fault table.
pub fn execute(table: &FaultTable, cmd: Command) -> CommandReply {
    let id = cmd.command_id.clone();
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
