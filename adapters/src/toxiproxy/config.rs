//! Settings of a `toxiproxy` environment, validated purely (no network).
//!
//! ```yaml
//! spec:
//!   adapter: toxiproxy
//!   endpoint: http://127.0.0.1:8474   # the Toxiproxy API (not a proxy's listen address)
//!   settings:
//!     timeout_ms: 5000        # per HTTP request, connect included (default 5000)
//!     retries: 2              # extra attempts after a connection error, timeout or 5xx (default 2)
//!     retry_backoff_ms: 100   # first backoff, doubled per attempt (default 100)
//!     partition: timeout      # how NetworkChaos partition is applied: timeout | down (default timeout)
//! ```

use std::time::Duration;

use chaoshub_schema::ValidationErrors;
use reqwest::Url;
use serde_json::Value;

use crate::Environment;

const ENDPOINT_HELP: crate::settings::EndpointHelp = crate::settings::EndpointHelp {
    what: "the Toxiproxy API's base URL, e.g. http://127.0.0.1:8474",
    credentials: "Toxiproxy's API has no authentication",
};

pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_RETRIES: u32 = 2;
pub const DEFAULT_RETRY_BACKOFF_MS: u64 = 100;

const MAX_TIMEOUT_MS: u64 = 600_000;
const MAX_RETRIES: u64 = 10;
const MAX_RETRY_BACKOFF_MS: u64 = 60_000;

/// Every key `spec.settings` may hold, in the order error messages list them.
pub const KNOWN_SETTINGS: &[&str] = &["timeout_ms", "retries", "retry_backoff_ms", "partition"];

/// How a NetworkChaos `partition` is put onto a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PartitionMode {
    /// A `timeout` toxic with `timeout: 0` on the streams `direction` names: data stops and
    /// connections hang, as they do when a network drops packets.
    #[default]
    Timeout,
    /// The proxy is disabled: new connections are refused and open ones closed.
    Down,
}

impl PartitionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Down => "down",
        }
    }
}

/// A Toxiproxy environment's endpoint and settings, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ToxiproxyConfig {
    /// The API's base URL; API paths (`proxies/...`) are appended to it.
    pub endpoint: Url,
    pub timeout: Duration,
    pub retries: u32,
    pub retry_backoff: Duration,
    pub partition: PartitionMode,
}

impl ToxiproxyConfig {
    /// Reads and validates an environment's endpoint and settings, reporting every problem with
    /// its path (`spec.endpoint`, `spec.settings.timeout_ms`, …).
    pub fn from_environment(env: &Environment) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let endpoint = crate::settings::http_endpoint(
            env.spec.endpoint.as_deref(),
            &ENDPOINT_HELP,
            &mut errors,
        );
        let settings = &env.spec.settings;
        crate::settings::reject_unknown(settings, KNOWN_SETTINGS, &mut errors);
        let timeout_ms = crate::settings::integer_setting(
            settings,
            "timeout_ms",
            1,
            MAX_TIMEOUT_MS,
            &mut errors,
        );
        let retries =
            crate::settings::integer_setting(settings, "retries", 0, MAX_RETRIES, &mut errors);
        let backoff_ms = crate::settings::integer_setting(
            settings,
            "retry_backoff_ms",
            0,
            MAX_RETRY_BACKOFF_MS,
            &mut errors,
        );
        let partition = match settings.get("partition") {
            None | Some(Value::Null) => PartitionMode::default(),
            Some(Value::String(s)) if s == "timeout" => PartitionMode::Timeout,
            Some(Value::String(s)) if s == "down" => PartitionMode::Down,
            Some(other) => {
                errors.push(
                    "spec.settings.partition",
                    format!("must be \"timeout\" or \"down\", got {other}"),
                );
                PartitionMode::default()
            }
        };
        errors.into_result()?;
        let Some(endpoint) = endpoint else {
            // `parse_endpoint` pushes an error whenever it returns `None`; kept defensive.
            let mut errors = ValidationErrors::new();
            errors.push("spec.endpoint", "required");
            return Err(errors);
        };
        Ok(Self {
            endpoint,
            timeout: Duration::from_millis(timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)),
            retries: retries.map_or(DEFAULT_RETRIES, |r| r as u32),
            retry_backoff: Duration::from_millis(backoff_ms.unwrap_or(DEFAULT_RETRY_BACKOFF_MS)),
            partition,
        })
    }

    /// The URL of an API path such as `proxies/redis/toxics`, relative to the endpoint (which
    /// may carry a path prefix of its own, e.g. behind a gateway). Each segment is
    /// percent-encoded, so proxy and toxic names cannot escape their path segment.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.endpoint.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use chaoshub_schema::environment::EnvironmentSpec;
    use serde_json::json;

    use super::*;

    fn env(endpoint: Option<&str>, settings: Value) -> Environment {
        Environment {
            name: "proxies".into(),
            spec: EnvironmentSpec {
                adapter: "toxiproxy".into(),
                endpoint: endpoint.map(str::to_string),
                description: None,
                labels: Default::default(),
                settings: settings.as_object().cloned().unwrap_or_default(),
            },
        }
    }

    fn paths(result: Result<ToxiproxyConfig, ValidationErrors>) -> Vec<String> {
        let mut paths: Vec<String> = result.unwrap_err().iter().map(|e| e.path.clone()).collect();
        paths.sort();
        paths
    }

    #[test]
    fn defaults_apply() {
        let config =
            ToxiproxyConfig::from_environment(&env(Some("http://127.0.0.1:8474"), json!({})))
                .unwrap();
        assert_eq!(config.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        assert_eq!(config.retries, DEFAULT_RETRIES);
        assert_eq!(config.partition, PartitionMode::Timeout);
        assert_eq!(
            config.url(&["proxies", "redis", "toxics"]).as_str(),
            "http://127.0.0.1:8474/proxies/redis/toxics"
        );
    }

    #[test]
    fn names_are_one_path_segment_and_prefixes_are_kept() {
        let config =
            ToxiproxyConfig::from_environment(&env(Some("http://gw/toxiproxy/"), json!({})))
                .unwrap();
        assert_eq!(
            config.url(&["proxies", "a/b c", "toxics"]).as_str(),
            "http://gw/toxiproxy/proxies/a%2Fb%20c/toxics"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let result = ToxiproxyConfig::from_environment(&env(
            Some("ftp://x"),
            json!({"timeout_ms": 0, "retries": "x", "partition": "drop", "colour": 1}),
        ));
        assert_eq!(
            paths(result),
            [
                "spec.endpoint",
                "spec.settings.colour",
                "spec.settings.partition",
                "spec.settings.retries",
                "spec.settings.timeout_ms"
            ]
        );
        assert_eq!(
            paths(ToxiproxyConfig::from_environment(&env(None, json!({})))),
            ["spec.endpoint"]
        );
    }

    #[test]
    fn partition_down_is_accepted() {
        let config = ToxiproxyConfig::from_environment(&env(
            Some("http://127.0.0.1:8474"),
            json!({"partition": "down"}),
        ))
        .unwrap();
        assert_eq!(config.partition, PartitionMode::Down);
    }
}
