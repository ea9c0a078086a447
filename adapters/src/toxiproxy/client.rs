//! The HTTP side: Toxiproxy 2.x's REST API (and the Rust port Noxious where it differs), with
//! timeouts, retries, and Toxiproxy's error bodies turned into messages.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::ToxiproxyConfig;
use crate::http_clients::HttpClients;
use crate::{AdapterError, Environment};

/// Bigger answers are cut off: a Toxiproxy server answering megabytes is broken, and the hub
/// must not run out of memory because of it.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Toxiproxy answers 403 to any `User-Agent` starting with `Mozilla/` (a guard against browsers
/// driving its API), so the adapter always names itself.
pub const USER_AGENT: &str = concat!("chaoshub-toxiproxy/", env!("CARGO_PKG_VERSION"));

/// A proxy as `GET /proxies` and `GET /proxies/{proxy}` describe it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ApiProxy {
    pub name: String,
    #[serde(default)]
    pub listen: String,
    #[serde(default)]
    pub upstream: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub toxics: Vec<ApiToxic>,
}

fn yes() -> bool {
    true
}

fn one() -> f64 {
    1.0
}

/// A toxic as Toxiproxy lists it and as the adapter creates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiToxic {
    pub name: String,
    #[serde(rename = "type")]
    pub toxic_type: String,
    /// `upstream` or `downstream`. Noxious answers `direction` instead.
    #[serde(alias = "direction")]
    pub stream: String,
    #[serde(default = "one")]
    pub toxicity: f64,
    #[serde(default)]
    pub attributes: Value,
}

/// Toxiproxy's error body, `{"error": "...", "status": N}` (sent as `text/plain`). Before 2.0
/// the message was under `title`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(alias = "title")]
    error: String,
}

/// Why one call failed, before the caller decides which `AdapterError` it becomes.
#[derive(Debug)]
pub enum CallError {
    /// No HTTP answer at all: connection refused, reset, timed out, DNS…
    Transport(String),
    /// The server answered 4xx or 5xx; `message` is Toxiproxy's own (`proxy not found`).
    Status { status: StatusCode, message: String },
    /// The server answered 2xx with a body that is not what Toxiproxy sends.
    Protocol(String),
    /// The request could not even be built.
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

impl CallError {
    /// Whether this is Toxiproxy's 404 with the given message (`proxy not found`,
    /// `toxic not found`): the two 404s mean different things to the adapter.
    pub fn is_not_found(&self, what: &str) -> bool {
        matches!(self, CallError::Status { status, message }
            if *status == StatusCode::NOT_FOUND && message.contains(what))
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, CallError::Status { status, .. } if *status == StatusCode::CONFLICT)
    }
}

/// One environment's Toxiproxy API.
pub struct ToxiproxyClient {
    environment: String,
    config: ToxiproxyConfig,
    http: reqwest::Client,
}

impl ToxiproxyClient {
    /// Builds a client of its own from an environment's settings (one connection pool per
    /// client: the adapter itself uses [`ToxiproxyClient::pooled`]).
    pub fn new(env: &Environment) -> Result<Self, AdapterError> {
        Self::pooled(env, &HttpClients::new())
    }

    /// A client on the environment's pooled HTTP client, so consecutive calls reuse one
    /// kept-alive connection (a connection the server closed is retried by the HTTP client,
    /// and transport errors by [`ToxiproxyClient::call`]).
    pub(crate) fn pooled(env: &Environment, clients: &HttpClients) -> Result<Self, AdapterError> {
        let config =
            ToxiproxyConfig::from_environment(env).map_err(AdapterError::InvalidSettings)?;
        let http = clients.get(env, || {
            reqwest::Client::builder()
                .timeout(config.timeout)
                .connect_timeout(config.timeout)
                .user_agent(USER_AGENT)
        })?;
        Ok(Self {
            environment: env.name.clone(),
            config,
            http,
        })
    }

    pub fn config(&self) -> &ToxiproxyConfig {
        &self.config
    }

    pub fn endpoint(&self) -> &str {
        self.config.endpoint.as_str()
    }

    /// `GET /proxies`: every proxy by name.
    pub async fn proxies(&self) -> Result<BTreeMap<String, ApiProxy>, CallError> {
        self.json(Method::GET, &["proxies"], None).await
    }

    /// `GET /proxies/{proxy}`.
    pub async fn proxy(&self, proxy: &str) -> Result<ApiProxy, CallError> {
        self.json(Method::GET, &["proxies", proxy], None).await
    }

    /// `GET /proxies/{proxy}/toxics`.
    pub async fn toxics(&self, proxy: &str) -> Result<Vec<ApiToxic>, CallError> {
        self.json(Method::GET, &["proxies", proxy, "toxics"], None)
            .await
    }

    /// `GET /proxies/{proxy}/toxics/{toxic}`.
    pub async fn toxic(&self, proxy: &str, toxic: &str) -> Result<ApiToxic, CallError> {
        self.json(Method::GET, &["proxies", proxy, "toxics", toxic], None)
            .await
    }

    /// `POST /proxies/{proxy}/toxics` (Toxiproxy answers 200 with the toxic).
    pub async fn create_toxic(&self, proxy: &str, toxic: &ApiToxic) -> Result<ApiToxic, CallError> {
        let body = serde_json::to_vec(toxic)
            .map_err(|e| CallError::Local(format!("cannot encode the toxic: {e}")))?;
        self.json(Method::POST, &["proxies", proxy, "toxics"], Some(body))
            .await
    }

    /// `DELETE /proxies/{proxy}/toxics/{toxic}` (204).
    pub async fn delete_toxic(&self, proxy: &str, toxic: &str) -> Result<(), CallError> {
        self.call(Method::DELETE, &["proxies", proxy, "toxics", toxic], None)
            .await
            .map(drop)
    }

    /// `PATCH /proxies/{proxy}` with `{"enabled": …}` (POST is deprecated since 2.x).
    pub async fn set_enabled(&self, proxy: &str, enabled: bool) -> Result<ApiProxy, CallError> {
        let body = serde_json::to_vec(&serde_json::json!({ "enabled": enabled }))
            .map_err(|e| CallError::Local(format!("cannot encode the update: {e}")))?;
        self.json(Method::PATCH, &["proxies", proxy], Some(body))
            .await
    }

    /// `GET /version`: `{"version": "2.x.y"}` since 2.7, plain text before (and in Noxious).
    pub async fn version(&self) -> Result<String, CallError> {
        let bytes = self.call(Method::GET, &["version"], None).await?;
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&bytes) {
            if let Some(Value::String(v)) = map.get("version") {
                return Ok(v.clone());
            }
        }
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        if text.is_empty() {
            return Err(CallError::Protocol(
                "GET /version answered an empty body".into(),
            ));
        }
        Ok(text.trim_matches('"').to_string())
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Vec<u8>>,
    ) -> Result<T, CallError> {
        let what = format!("{method} /{}", segments.join("/"));
        let bytes = self.call(method, segments, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            let text: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
            CallError::Protocol(format!(
                "{what} answered a body that is not what Toxiproxy sends ({e}): {text}"
            ))
        })
    }

    /// Sends one request, retrying transport errors and 5xx answers with a doubling backoff.
    /// A retried toxic creation whose first answer was lost comes back 409, which the adapter
    /// resolves by reading the toxic back, so retries never apply a fault twice.
    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, CallError> {
        let attempts = self.config.retries + 1;
        let what = segments.join("/");
        let result = crate::retry::with_retries(
            self.config.retries,
            self.config.retry_backoff,
            &self.environment,
            &what,
            CallError::is_transient,
            || self.call_once(method.clone(), segments, body.clone()),
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
        segments: &[&str],
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, CallError> {
        let span = tracing::debug_span!("toxiproxy.call");
        tracing::Instrument::instrument(self.send_once(method, segments, body), span).await
    }

    async fn send_once(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, CallError> {
        let url = self.config.url(segments);
        let what = format!("{method} /{}", segments.join("/"));
        let mut request = self
            .http
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
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
        // Toxiproxy sends its JSON error body as text/plain, so the body is parsed whatever the
        // content type says.
        let message = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => body.error,
            Err(_) => {
                let text = String::from_utf8_lossy(&bytes);
                let text: String = text.trim().chars().take(200).collect();
                if text.is_empty() {
                    status
                        .canonical_reason()
                        .unwrap_or("no error body")
                        .to_lowercase()
                } else {
                    text
                }
            }
        };
        Err(CallError::Status { status, message })
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
    /// 4xx → `Rejected` with Toxiproxy's message, 5xx and protocol violations → `Failed`.
    pub fn error(&self, context: &str, error: CallError) -> AdapterError {
        match error {
            CallError::Transport(message) => AdapterError::Unreachable {
                environment: self.environment.clone(),
                endpoint: self.endpoint().to_string(),
                message: format!("{context}: {message}"),
            },
            CallError::Status { status, message } if status.is_client_error() => {
                AdapterError::Rejected(format!("{context}: Toxiproxy answered {status}: {message}"))
            }
            CallError::Status { status, message } => AdapterError::Failed(format!(
                "{context}: Toxiproxy at {} answered {status}: {message}",
                self.endpoint()
            )),
            CallError::Protocol(message) => AdapterError::Failed(format!(
                "{context}: Toxiproxy at {} broke its API: {message}",
                self.endpoint()
            )),
            CallError::Local(message) => AdapterError::Failed(format!("{context}: {message}")),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noxious_direction_is_read_as_stream() {
        let toxic: ApiToxic = serde_json::from_str(
            r#"{"name":"t","type":"latency","direction":"upstream","toxicity":1.0,"attributes":{"latency":5}}"#,
        )
        .unwrap();
        assert_eq!(toxic.stream, "upstream");
        let toxic: ApiToxic = serde_json::from_str(
            r#"{"attributes":{"latency":5,"jitter":0},"name":"t","type":"latency","stream":"downstream","toxicity":1}"#,
        )
        .unwrap();
        assert_eq!(toxic.stream, "downstream");
    }

    #[test]
    fn created_toxics_serialize_as_toxiproxy_expects() {
        let toxic = ApiToxic {
            name: "n".into(),
            toxic_type: "latency".into(),
            stream: "downstream".into(),
            toxicity: 1.0,
            attributes: serde_json::json!({"latency": 200, "jitter": 0}),
        };
        assert_eq!(
            serde_json::to_value(&toxic).unwrap(),
            serde_json::json!({"name": "n", "type": "latency", "stream": "downstream",
                "toxicity": 1.0, "attributes": {"latency": 200, "jitter": 0}})
        );
    }
}
