//! The `webhook` adapter: plugins in any language that speak the chaoshub plugin protocol `v1`
//! over HTTP (docs/plugins.md).
//!
//! - `config.rs`: the environment's endpoint and settings, validated without the network;
//! - `protocol.rs`: the JSON bodies of the protocol;
//! - `client.rs`: HTTP calls with timeouts, retries and the bearer token, and error mapping.
//!
//! The plugin owns the fault: it keeps whatever it needs under the injection id, arms its own
//! dead man's switch from `deadline`, and reads the real side effect back on `status`. This
//! adapter stays a stateless translator.

mod client;
mod config;
mod protocol;

use std::collections::BTreeSet;

use async_trait::async_trait;
use chaoshub_schema::api::Capability;
use chaoshub_schema::{Target, ValidationErrors};
use reqwest::StatusCode;
use serde_json::{json, Value};

pub use config::{
    WebhookConfig, DEFAULT_RETRIES, DEFAULT_RETRY_BACKOFF_MS, DEFAULT_TIMEOUT_MS, KNOWN_SETTINGS,
};
pub use protocol::{
    DescribeResponse, ErrorResponse, InjectRequest, InjectResponse, InjectionRef, PluginError,
    PluginState, PluginTarget, StatusResponse, TargetsResponse, PROTOCOL_VERSION,
};

use self::client::{CallError, PluginClient};
use self::protocol::{DESCRIBE_PATH, INJECT_PATH, RECOVER_PATH, STATUS_PATH, TARGETS_PATH};
use crate::http_clients::HttpClients;
use crate::{Adapter, AdapterError, Environment, FaultRequest, Injection, InjectionState};

const ADAPTER_TYPE: &str = "webhook";

/// Drives plugins over HTTP. Holds no fault state; what it keeps is one pooled HTTP client per
/// environment.
pub struct WebhookAdapter {
    clients: HttpClients,
}

impl WebhookAdapter {
    pub fn new() -> Self {
        Self {
            clients: HttpClients::new(),
        }
    }

    /// Asks the plugin who it is; fails unless it speaks protocol `v1`.
    pub async fn describe(&self, env: &Environment) -> Result<DescribeResponse, AdapterError> {
        let client = PluginClient::new(env, &self.clients)?;
        let described: DescribeResponse = client
            .get(DESCRIBE_PATH)
            .await
            .map_err(|e| client.error(e))?;
        if described.protocol != PROTOCOL_VERSION {
            return Err(AdapterError::Failed(format!(
                "plugin {:?} at {} speaks protocol {:?}, but this hub speaks {PROTOCOL_VERSION:?}",
                described.name,
                client.endpoint(),
                described.protocol
            )));
        }
        Ok(described)
    }
}

impl Default for WebhookAdapter {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Adapter for WebhookAdapter {
    fn adapter_type(&self) -> &'static str {
        ADAPTER_TYPE
    }

    fn description(&self) -> &'static str {
        "plugins in any language that speak the chaoshub plugin protocol v1 over HTTP"
    }

    /// Empty: each plugin declares its own matrix in `GET /v1/describe`.
    fn capabilities(&self) -> Vec<Capability> {
        Vec::new()
    }

    fn dynamic_capabilities(&self) -> bool {
        true
    }

    fn validate_environment(&self, env: &Environment) -> Result<(), ValidationErrors> {
        WebhookConfig::from_environment(env).map(drop)
    }

    async fn environment_capabilities(
        &self,
        env: &Environment,
    ) -> Result<Vec<Capability>, AdapterError> {
        let described = self.describe(env).await?;
        // Sorted and without duplicates, so listings and comparisons are stable.
        let unique: BTreeSet<Capability> = described.capabilities.into_iter().collect();
        Ok(unique.into_iter().collect())
    }

    async fn discover(&self, env: &Environment) -> Result<Vec<Target>, AdapterError> {
        let client = PluginClient::new(env, &self.clients)?;
        let listed: TargetsResponse = client
            .get(TARGETS_PATH)
            .await
            .map_err(|e| client.error(e))?;
        let mut seen = BTreeSet::new();
        let mut targets = Vec::with_capacity(listed.targets.len());
        for target in listed.targets {
            if target.id.trim().is_empty() {
                return Err(client.error(CallError::Protocol(
                    "GET /v1/targets listed a target with an empty id".into(),
                )));
            }
            if !seen.insert(target.id.clone()) {
                return Err(client.error(CallError::Protocol(format!(
                    "GET /v1/targets listed target id {:?} twice",
                    target.id
                ))));
            }
            targets.push(target.into_target(&env.name, ADAPTER_TYPE));
        }
        Ok(targets)
    }

    fn plan_details(&self, env: &Environment, fault: &FaultRequest, target: &Target) -> Value {
        json!({
            "endpoint": env.spec.endpoint,
            "call": format!("POST /{INJECT_PATH}"),
            "injectionId": fault.injection_id,
            "target": target.id,
            "deadline": fault.deadline,
        })
    }

    async fn inject(
        &self,
        env: &Environment,
        fault: &FaultRequest,
        target: &Target,
    ) -> Result<Value, AdapterError> {
        let client = PluginClient::new(env, &self.clients)?;
        let request = InjectRequest {
            injection_id: fault.injection_id.clone(),
            experiment_uid: fault.experiment_uid.clone(),
            name: fault.name.clone(),
            namespace: fault.namespace.clone(),
            kind: fault.kind().to_string(),
            actions: fault.actions.clone(),
            spec: fault.spec_value(),
            target: target.clone(),
            deadline: fault.deadline,
        };
        tracing::debug!(
            environment = %env.name,
            injection_id = %fault.injection_id,
            target = %target.id,
            "injecting through plugin"
        );
        let answer: InjectResponse =
            client
                .post(INJECT_PATH, &request)
                .await
                .map_err(|e| match e {
                    // 422 is the protocol's "I cannot run this kind/action": the hub answers it as 422 too.
                    CallError::Status {
                        status: StatusCode::UNPROCESSABLE_ENTITY,
                        message,
                        ..
                    } => AdapterError::Unsupported {
                        kind: request.kind.clone(),
                        action: request.actions.join(","),
                        message,
                    },
                    other => client.error(other),
                })?;
        // `Null` means "the hub never got an answer" to the hub, so an empty answer is stored as
        // an empty object instead.
        Ok(match answer.details {
            Value::Null => json!({}),
            details => details,
        })
    }

    async fn status(
        &self,
        env: &Environment,
        injection: &Injection,
    ) -> Result<InjectionState, AdapterError> {
        let client = PluginClient::new(env, &self.clients)?;
        let answer: StatusResponse = client
            .post(STATUS_PATH, &injection_ref(injection))
            .await
            .map_err(|e| client.error(e))?;
        Ok(match answer.state {
            PluginState::Active => InjectionState::Active,
            PluginState::Absent => InjectionState::Absent,
            PluginState::Unknown => InjectionState::Unknown(
                answer
                    .message
                    .unwrap_or_else(|| "the plugin could not tell and gave no reason".into()),
            ),
        })
    }

    async fn recover(&self, env: &Environment, injection: &Injection) -> Result<(), AdapterError> {
        let client = PluginClient::new(env, &self.clients)?;
        client
            .post_no_answer(RECOVER_PATH, &injection_ref(injection))
            .await
            .map_err(|e| client.error(e))
    }
}

fn injection_ref(injection: &Injection) -> InjectionRef {
    InjectionRef {
        injection_id: injection.injection_id.clone(),
        target: injection.target.clone(),
        details: injection.details.clone(),
    }
}
