//! The gRPC service agents dial (`chaoshub.agent.v1.AgentHub/Connect`), served on the hub's one
//! listen port next to the REST API.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use chaoshub_schema::agent::proto::agent_hub_server::AgentHub;
use chaoshub_schema::agent::proto::{
    agent_message, hub_message, AgentMessage, HubMessage, Refused, Registered,
};
use chaoshub_schema::agent::KernelMechanisms;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::join::{Admission, AdmissionError, AgentAdmission};
use super::{AgentInfo, AgentRegistry, Outbound, HEARTBEAT_INTERVAL};

pub struct AgentService {
    pub registry: Arc<AgentRegistry>,
    pub admission: AgentAdmission,
    /// `tls.client_ca_file` is set: a stream must come over a connection whose client
    /// certificate that CA verified.
    pub require_client_certificate: bool,
    /// Agents are served by the replica that runs the engine; the others send them there.
    pub leadership: Arc<crate::leadership::Leadership>,
}

/// The refusal a replica that does not run the engine gives an agent: UNAVAILABLE, naming the
/// leader and its URL (also in the `chaoshub-leader` metadata) so the agent dials it next.
fn not_the_leader(leadership: &crate::leadership::Leadership) -> Status {
    let leader = leadership.leader();
    let url = leader.as_ref().and_then(|l| l.url.clone());
    let message = match &leader {
        Some(l) => format!(
            "this hub replica ({}) does not run the engine; the leader is {}{}",
            leadership.id(),
            l.id,
            url.as_deref().map(|u| format!(" at {u}")).unwrap_or_default()
        ),
        None => format!(
            "this hub replica ({}) does not run the engine and no replica holds the engine lease yet",
            leadership.id()
        ),
    };
    let mut status = Status::unavailable(message);
    if let Some(value) = url.and_then(|u| u.parse().ok()) {
        status.metadata_mut().insert("chaoshub-leader", value);
    }
    status
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[tonic::async_trait]
impl AgentHub for AgentService {
    type ConnectStream = Pin<Box<dyn Stream<Item = Result<HubMessage, Status>> + Send + 'static>>;

    async fn connect(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let request_addr = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0)
            .or_else(|| request.remote_addr());
        if self.require_client_certificate
            && request
                .extensions()
                .get::<crate::tls::PeerCertificate>()
                .is_none()
        {
            tracing::warn!(remote = ?request_addr, "agent stream without a client certificate refused (tls.client_ca_file is set)");
            return Err(Status::unauthenticated(
                "this hub requires agents to present a client certificate signed by its tls.client_ca_file (chaos-agent serve --tls-cert-file/--tls-key-file)",
            ));
        }
        if !self.leadership.is_leader() {
            return Err(not_the_leader(&self.leadership));
        }
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the stream ended before registering"))?;
        let Some(agent_message::Msg::Register(reg)) = first.msg else {
            return Err(Status::invalid_argument(
                "the first message must be a registration",
            ));
        };
        let (tx, rx) = mpsc::channel::<Outbound>(64);
        let stream: Self::ConnectStream = Box::pin(ReceiverStream::new(rx).map(|m| *m));
        for (field, value) in [("name", &reg.name), ("environment", &reg.environment)] {
            if !valid_name(value) {
                let reason = format!(
                    "{field} {value:?} is invalid: use 1-253 letters, digits, '-', '_' or '.'"
                );
                let _ = tx
                    .send(Box::new(Ok(HubMessage {
                        msg: Some(hub_message::Msg::Refused(Refused { reason })),
                    })))
                    .await;
                return Ok(Response::new(stream));
            }
        }
        // Who it is: its credential, or a join token exchanged for one. Refused streams end
        // with UNAUTHENTICATED before anything about them is kept.
        let admission = self.admission.clone();
        let (env, name) = (reg.environment.clone(), reg.name.clone());
        let (credential, join_token) = (reg.credential.clone(), reg.join_token.clone());
        let admitted = tokio::task::spawn_blocking(move || {
            admission.admit(&env, &name, &credential, &join_token, chrono::Utc::now())
        })
        .await
        .map_err(|e| Status::internal(format!("admission check failed: {e}")))?;
        let issued = match admitted {
            Ok(Admission::Credential) => String::new(),
            Ok(Admission::Joined { credential }) => {
                tracing::info!(agent = %reg.name, environment = %reg.environment, "agent joined with a join token; credential issued");
                credential
            }
            Err(AdmissionError::Refused(reason)) => {
                tracing::warn!(agent = %reg.name, environment = %reg.environment, remote = ?request_addr, %reason, "agent registration refused");
                return Err(Status::unauthenticated(reason));
            }
            Err(AdmissionError::Store(e)) => {
                tracing::error!(error = ?e, "cannot check an agent's credential");
                return Err(Status::unavailable(
                    "the hub cannot read agent credentials now",
                ));
            }
        };
        let mechanisms: KernelMechanisms =
            serde_json::from_str(&reg.mechanisms_json).unwrap_or_default();
        let info = AgentInfo {
            name: reg.name.clone(),
            environment: reg.environment.clone(),
            labels: reg.labels.into_iter().collect::<BTreeMap<_, _>>(),
            hostname: reg.hostname,
            addresses: reg.addresses,
            version: reg.version,
            health: "healthy".into(),
            connected: true,
            connected_since: None,
            last_heartbeat: None,
            active_faults: reg.active_fault_ids.len() as u32,
            capabilities: reg.capabilities,
            allowed: reg.allowed,
            mechanisms,
            usage: None,
        };
        let session = self.registry.connect(info, tx.clone());
        tracing::info!(agent = %reg.name, environment = %reg.environment, "agent registered");
        let _ = tx
            .send(Box::new(Ok(HubMessage {
                msg: Some(hub_message::Msg::Registered(Registered {
                    heartbeat_interval_ms: HEARTBEAT_INTERVAL.as_millis() as u32,
                    credential: issued,
                })),
            })))
            .await;
        let registry = self.registry.clone();
        let (env, name) = (reg.environment, reg.name);
        let leadership = Arc::clone(&self.leadership);
        let mut role = leadership.subscribe();
        // Weak: the stream to the agent ends when the registry drops its sender (the agent was
        // removed); this task must not keep it open.
        let weak_tx = tx.downgrade();
        drop(tx);
        tokio::spawn(async move {
            loop {
                let stepped_down = async {
                    loop {
                        if role.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                        if !leadership.is_leader() {
                            return;
                        }
                    }
                };
                let message = tokio::select! {
                    m = inbound.message() => m,
                    () = stepped_down => {
                        // This replica stepped down: the agent goes to the one that leads now.
                        tracing::info!(agent = %name, "this replica no longer runs the engine; sending the agent away");
                        if let Some(tx) = weak_tx.upgrade() {
                            let _ = tx.send(Box::new(Err(not_the_leader(&leadership)))).await;
                        }
                        break;
                    }
                };
                match message {
                    Ok(Some(msg)) => match msg.msg {
                        Some(agent_message::Msg::Heartbeat(h)) => {
                            registry.heartbeat(&env, &name, session, h.active_faults, h.usage)
                        }
                        Some(agent_message::Msg::Reply(r)) => {
                            registry.reply(&env, &name, session, r)
                        }
                        _ => {}
                    },
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(agent = %name, error = %e, "agent stream failed");
                        break;
                    }
                }
            }
            tracing::info!(agent = %name, environment = %env, "agent disconnected");
            registry.disconnect(&env, &name, session);
        });
        Ok(Response::new(stream))
    }
}
