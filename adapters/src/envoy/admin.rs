//! Envoy's admin API: the few endpoints this adapter reads and writes, with timeouts and errors
//! that name the call and what to do about it.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::config::EnvoyConfig;
use crate::http_clients::HttpClients;
use crate::{AdapterError, Environment};

/// Bigger answers are cut off: a config dump of a large mesh is a few megabytes at most.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// What Envoy answers (503) to `POST /runtime_modify` when its bootstrap has no admin layer.
pub const NO_ADMIN_LAYER: &str = "No admin layer specified";

/// How to fix a missing admin layer, appended to every error about it.
pub const ADMIN_LAYER_HINT: &str = "runtime overrides need an admin layer: add `{name: admin, \
     admin_layer: {}}` to layered_runtime.layers in Envoy's bootstrap and restart Envoy";

/// The runtime as `GET /runtime` shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeView {
    /// Layer names, lowest priority first.
    pub layers: Vec<String>,
    /// Key → value per layer (`""` where a layer does not set the key).
    pub entries: BTreeMap<String, Vec<String>>,
}

impl RuntimeView {
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let layers = value
            .get("layers")
            .and_then(Value::as_array)
            .ok_or("the answer has no `layers` list")?
            .iter()
            .map(|l| l.as_str().unwrap_or_default().to_string())
            .collect();
        let mut entries = BTreeMap::new();
        if let Some(map) = value.get("entries").and_then(Value::as_object) {
            for (key, entry) in map {
                let values = entry
                    .get("layer_values")
                    .and_then(Value::as_array)
                    .map(|vs| {
                        vs.iter()
                            .map(|v| v.as_str().unwrap_or_default().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                entries.insert(key.clone(), values);
            }
        }
        Ok(Self { layers, entries })
    }

    /// The value `layer` gives `key`, `None` when it sets none (Envoy shows that as `""`; an
    /// empty admin value cannot exist, since posting one removes the key).
    pub fn layer_value(&self, layer: usize, key: &str) -> Option<&str> {
        self.entries
            .get(key)
            .and_then(|values| values.get(layer))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn layer_index(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l == name)
    }

    /// Keys starting with `prefix` that `layer` sets, with their values.
    pub fn layer_keys_with_prefix<'a>(
        &'a self,
        layer: usize,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.entries
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .filter_map(move |(k, _)| self.layer_value(layer, k).map(|v| (k.as_str(), v)))
    }
}

/// One environment's admin API.
pub struct AdminClient {
    environment: String,
    config: EnvoyConfig,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client on the environment's pooled HTTP client (building one loads the system's root
    /// certificates, milliseconds; a pooled one reuses a kept-alive connection).
    pub fn new(env: &Environment, clients: &HttpClients) -> Result<Self, AdapterError> {
        let config = EnvoyConfig::from_environment(env).map_err(AdapterError::InvalidSettings)?;
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
        self.config.admin.as_str()
    }

    pub async fn get_json(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, AdapterError> {
        let (status, body) = self.call(Method::GET, path, query).await?;
        if !status.is_success() {
            return Err(self.status_error("GET", path, status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| {
            AdapterError::Failed(format!(
                "Envoy at {} answered GET /{path} with invalid JSON: {e}",
                self.endpoint()
            ))
        })
    }

    pub async fn runtime(&self) -> Result<RuntimeView, AdapterError> {
        let value = self.get_json("runtime", &[]).await?;
        RuntimeView::from_json(&value).map_err(|e| {
            AdapterError::Failed(format!(
                "Envoy at {} answered GET /runtime unexpectedly: {e}",
                self.endpoint()
            ))
        })
    }

    pub async fn config_dump(&self) -> Result<Value, AdapterError> {
        self.get_json("config_dump", &[]).await
    }

    pub async fn listeners(&self) -> Result<Value, AdapterError> {
        self.get_json("listeners", &[("format", "json")]).await
    }

    pub async fn clusters(&self) -> Result<Value, AdapterError> {
        self.get_json("clusters", &[("format", "json")]).await
    }

    /// Counters and gauges whose names match the regular expression `filter`.
    pub async fn stats(&self, filter: &str) -> Result<BTreeMap<String, u64>, AdapterError> {
        let value = self
            .get_json("stats", &[("format", "json"), ("filter", filter)])
            .await?;
        Ok(value
            .get("stats")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| {
                Some((
                    s.get("name")?.as_str()?.to_string(),
                    s.get("value")?.as_u64()?,
                ))
            })
            .collect())
    }

    /// Sets (or, with an empty value, removes) admin-layer runtime keys in one call, which Envoy
    /// applies as one merge: a fault is never half in place.
    pub async fn runtime_modify(&self, values: &[(String, String)]) -> Result<(), AdapterError> {
        let query: Vec<(&str, &str)> = values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (status, body) = self.call(Method::POST, "runtime_modify", &query).await?;
        if status.is_success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&body);
        if status == StatusCode::SERVICE_UNAVAILABLE && text.contains(NO_ADMIN_LAYER) {
            return Err(AdapterError::Rejected(format!(
                "Envoy at {} refused POST /runtime_modify with 503 {NO_ADMIN_LAYER:?}: \
                 {ADMIN_LAYER_HINT}",
                self.endpoint()
            )));
        }
        Err(self.status_error("POST", "runtime_modify", status, &body))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<(StatusCode, Vec<u8>), AdapterError> {
        let mut url = self.config.url(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let what = format!("{method} /{path}");
        let mut response = self
            .http
            .request(method, url)
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
                return Err(AdapterError::Failed(format!(
                    "Envoy at {} answered {what} with more than {MAX_RESPONSE_BYTES} bytes",
                    self.endpoint()
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, bytes))
    }

    fn status_error(
        &self,
        method: &str,
        path: &str,
        status: StatusCode,
        body: &[u8],
    ) -> AdapterError {
        let text: String = String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(200)
            .collect();
        let message = format!(
            "Envoy at {} answered {method} /{path} with {status}: {text}",
            self.endpoint()
        );
        if status.is_client_error() {
            AdapterError::Rejected(message)
        } else {
            AdapterError::Failed(message)
        }
    }

    fn transport_error(&self, what: &str, error: &reqwest::Error) -> AdapterError {
        let message = if error.is_timeout() {
            format!(
                "{what}: no answer within {} ms (spec.settings.timeout_ms)",
                self.config.timeout.as_millis()
            )
        } else {
            format!("{what}: {}", root_cause(error))
        };
        AdapterError::Unreachable {
            environment: self.environment.clone(),
            endpoint: self.endpoint().to_string(),
            message,
        }
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn runtime_view_reads_layer_values() {
        let view = RuntimeView::from_json(&json!({
            "layers": ["static", "admin"],
            "entries": {
                "a": {"layer_values": ["1", ""], "final_value": "1"},
                "chaoshub.x.1": {"layer_values": ["", "v"], "final_value": "v"},
                "chaoshub.x.2": {"layer_values": ["", "w"], "final_value": "w"},
                "chaoshub.y": {"layer_values": ["", "z"], "final_value": "z"}
            }
        }))
        .unwrap();
        let admin = view.layer_index("admin").unwrap();
        assert_eq!(view.layer_value(admin, "a"), None);
        assert_eq!(view.layer_value(0, "a"), Some("1"));
        let keys: Vec<_> = view.layer_keys_with_prefix(admin, "chaoshub.x.").collect();
        assert_eq!(keys, [("chaoshub.x.1", "v"), ("chaoshub.x.2", "w")]);
    }
}
