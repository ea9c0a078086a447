//! The HTTP side of the plugin protocol: timeouts, retries, the bearer token, and turning what a
//! plugin answers into `AdapterError`s.

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::config::WebhookConfig;
use super::protocol::ErrorResponse;
use crate::http_clients::HttpClients;
use crate::{AdapterError, Environment};

/// Bigger answers are cut off: a plugin answering megabytes is broken, and the hub must not run
/// out of memory because of it.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Sent with every request so a plugin can refuse a protocol it does not speak.
pub const PROTOCOL_HEADER: &str = "x-chaoshub-protocol";

/// Why one call to a plugin failed, before the caller decides which `AdapterError` it becomes.
#[derive(Debug)]
pub enum CallError {
    /// No HTTP answer at all: connection refused, reset, timed out, DNS…
    Transport(String),
    /// The plugin answered 4xx or 5xx.
    Status {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// The plugin answered 2xx with a body that does not follow the protocol.
    Protocol(String),
    /// The request could not even be built (a bug or an unsupported URL scheme).
    Local(String),
}

impl CallError {
    /// Transport errors and 5xx answers may pass; anything else will not change on a retry.
    fn is_transient(&self) -> bool {
        match self {
            CallError::Transport(_) => true,
            CallError::Status { status, .. } => status.is_server_error(),
            _ => false,
        }
    }
}

/// One environment's plugin, reachable over HTTP.
pub struct PluginClient {
    environment: String,
    config: WebhookConfig,
    http: reqwest::Client,
}

impl PluginClient {
    /// A client on the environment's pooled HTTP client (building one loads the system's root
    /// certificates, milliseconds; a pooled one reuses a kept-alive connection).
    pub fn new(env: &Environment, clients: &HttpClients) -> Result<Self, AdapterError> {
        let config = WebhookConfig::from_environment(env).map_err(AdapterError::InvalidSettings)?;
        let http = clients.get(env, || {
            reqwest::Client::builder()
                .timeout(config.timeout)
                .connect_timeout(config.timeout)
        })?;
        Ok(Self {
            environment: env.name.clone(),
            config,
            http,
        })
    }

    pub fn endpoint(&self) -> &str {
        self.config.endpoint.as_str()
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CallError> {
        let body = self.call(Method::GET, path, None).await?;
        decode(&body, path)
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        request: &B,
    ) -> Result<T, CallError> {
        let json = serde_json::to_vec(request)
            .map_err(|e| CallError::Local(format!("cannot encode the request to {path}: {e}")))?;
        let body = self.call(Method::POST, path, Some(json)).await?;
        decode(&body, path)
    }

    /// Like `post`, for calls whose answer carries nothing but its status.
    pub async fn post_no_answer<B: Serialize>(
        &self,
        path: &str,
        request: &B,
    ) -> Result<(), CallError> {
        let json = serde_json::to_vec(request)
            .map_err(|e| CallError::Local(format!("cannot encode the request to {path}: {e}")))?;
        self.call(Method::POST, path, Some(json)).await.map(drop)
    }

    /// Sends one request, retrying transport errors and 5xx answers with a doubling backoff.
    /// Every protocol call is idempotent (inject, status and recover are keyed by injection id),
    /// so a retry after a lost answer cannot apply a fault twice.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, CallError> {
        let attempts = self.config.retries + 1;
        let what = path.to_string();
        let result = crate::retry::with_retries(
            self.config.retries,
            self.config.retry_backoff,
            &self.environment,
            &what,
            CallError::is_transient,
            || self.call_once(method.clone(), path, body.clone()),
        )
        .await;
        result.map_err(|e| match e {
            CallError::Transport(message) if attempts > 1 => {
                CallError::Transport(format!("{message} (after {attempts} attempts)"))
            }
            other => other,
        })
    }

    async fn call_once(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, CallError> {
        let url = self.config.url(path);
        let mut request = self
            .http
            .request(method.clone(), url)
            .header(PROTOCOL_HEADER, super::protocol::PROTOCOL_VERSION)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = &self.config.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let what = format!("{method} /{path}");
        let mut response = request
            .send()
            .await
            .map_err(|e| self.transport_error(&what, &e))?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&what, &e))?
        {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(CallError::Protocol(format!(
                    "{what} answered more than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(bytes);
        }
        let (code, message) = match serde_json::from_slice::<ErrorResponse>(&bytes) {
            Ok(body) => (body.error.code, body.error.message),
            Err(_) => {
                let text = String::from_utf8_lossy(&bytes);
                let text: String = text.trim().chars().take(200).collect();
                let message = if text.is_empty() {
                    "no error body".to_string()
                } else {
                    format!("no protocol error body: {text}")
                };
                (
                    status
                        .canonical_reason()
                        .unwrap_or("error")
                        .to_lowercase()
                        .replace(' ', "_"),
                    message,
                )
            }
        };
        Err(CallError::Status {
            status,
            code,
            message: format!("{what} answered {status}: {message}"),
        })
    }

    fn transport_error(&self, what: &str, error: &reqwest::Error) -> CallError {
        if error.is_builder() {
            return CallError::Local(format!(
                "{what}: cannot build the request: {}",
                root_cause(error)
            ));
        }
        if error.is_timeout() {
            return CallError::Transport(format!(
                "{what}: no answer within {} ms (spec.settings.timeout_ms)",
                self.config.timeout.as_millis()
            ));
        }
        CallError::Transport(format!("{what}: {}", root_cause(error)))
    }

    /// Turns a failed call into the error the hub sees: transport → `Unreachable` (503),
    /// 4xx → `Rejected` with the plugin's message, 5xx and protocol violations → `Failed`.
    pub fn error(&self, error: CallError) -> AdapterError {
        match error {
            CallError::Transport(message) => AdapterError::Unreachable {
                environment: self.environment.clone(),
                endpoint: self.endpoint().to_string(),
                message,
            },
            CallError::Status {
                status,
                code,
                message,
            } if status.is_client_error() => {
                AdapterError::Rejected(format!("plugin error {code}: {message}"))
            }
            CallError::Status { code, message, .. } => AdapterError::Failed(format!(
                "plugin at {} failed ({code}): {message}",
                self.endpoint()
            )),
            CallError::Protocol(message) => AdapterError::Failed(format!(
                "plugin at {} broke protocol v1: {message}",
                self.endpoint()
            )),
            CallError::Local(message) => AdapterError::Failed(message),
        }
    }
}

fn decode<T: DeserializeOwned>(body: &[u8], path: &str) -> Result<T, CallError> {
    serde_json::from_slice(body)
        .map_err(|e| CallError::Protocol(format!("the answer to /{path} is not valid: {e}")))
}

/// The innermost cause of an error: for reqwest that is the useful part ("Connection refused
/// (os error 111)") rather than "error sending request".
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
