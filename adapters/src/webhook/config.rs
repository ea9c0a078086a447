//! Settings of a `webhook` environment, validated purely (no network).
//!
//! ```yaml
//! spec:
//!   adapter: webhook
//!   endpoint: http://127.0.0.1:8470
//!   settings:
//!     timeout_ms: 5000       # per HTTP request, connect included (default 5000)
//!     retries: 2             # extra attempts after a connection error, timeout or 5xx (default 2)
//!     retry_backoff_ms: 100  # first backoff, doubled per attempt (default 100)
//!     token: s3cr3t          # sent as `Authorization: Bearer s3cr3t` (optional)
//! ```

use std::time::Duration;

use chaoshub_schema::ValidationErrors;
use reqwest::Url;
use serde_json::Value;

use crate::Environment;

const ENDPOINT_HELP: crate::settings::EndpointHelp = crate::settings::EndpointHelp {
    what: "the plugin's base URL, e.g. http://127.0.0.1:8470",
    credentials: "use spec.settings.token",
};

pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_RETRIES: u32 = 2;
pub const DEFAULT_RETRY_BACKOFF_MS: u64 = 100;

const MAX_TIMEOUT_MS: u64 = 600_000;
const MAX_RETRIES: u64 = 10;
const MAX_RETRY_BACKOFF_MS: u64 = 60_000;

/// Every key `spec.settings` may hold, in the order error messages list them.
pub const KNOWN_SETTINGS: &[&str] = &["timeout_ms", "retries", "retry_backoff_ms", "token"];

/// A webhook environment's endpoint and settings, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// The plugin's base URL; protocol paths (`/v1/...`) are appended to it.
    pub endpoint: Url,
    pub timeout: Duration,
    pub retries: u32,
    pub retry_backoff: Duration,
    pub token: Option<String>,
}

impl WebhookConfig {
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
        let token = match settings.get("token") {
            None | Some(Value::Null) => None,
            Some(Value::String(token)) if token.trim().is_empty() => {
                errors.push(
                    "spec.settings.token",
                    "must not be empty; leave it out to send no token",
                );
                None
            }
            Some(Value::String(token)) if token.chars().any(|c| c.is_control()) => {
                errors.push("spec.settings.token", "must not contain control characters");
                None
            }
            Some(Value::String(token)) => Some(token.clone()),
            Some(other) => {
                errors.push(
                    "spec.settings.token",
                    format!(
                        "must be a string, got {}",
                        crate::settings::json_type(other)
                    ),
                );
                None
            }
        };

        errors.into_result()?;
        Ok(Self {
            // `parse_endpoint` pushed an error whenever it returned `None`.
            endpoint: endpoint.expect("endpoint validated above"),
            timeout: Duration::from_millis(timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)),
            retries: retries.map_or(DEFAULT_RETRIES, |r| r as u32),
            retry_backoff: Duration::from_millis(backoff_ms.unwrap_or(DEFAULT_RETRY_BACKOFF_MS)),
            token,
        })
    }

    /// The URL of one protocol path such as `v1/inject`, relative to the endpoint (which may
    /// carry a path prefix of its own, e.g. `http://gateway/plugins/fsfault/`).
    pub fn url(&self, path: &str) -> Url {
        crate::settings::join(&self.endpoint, path)
    }
}

#[cfg(test)]
mod tests {
    use chaoshub_schema::environment::EnvironmentSpec;
    use serde_json::json;

    use super::*;

    fn env(endpoint: Option<&str>, settings: Value) -> Environment {
        Environment {
            name: "plugins".into(),
            spec: EnvironmentSpec {
                adapter: "webhook".into(),
                endpoint: endpoint.map(str::to_string),
                description: None,
                labels: Default::default(),
                settings: settings.as_object().cloned().unwrap_or_default(),
            },
        }
    }

    fn paths(result: Result<WebhookConfig, ValidationErrors>) -> Vec<String> {
        result.unwrap_err().iter().map(|e| e.path.clone()).collect()
    }

    #[test]
    fn defaults_apply() {
        let config =
            WebhookConfig::from_environment(&env(Some("http://127.0.0.1:9"), json!({}))).unwrap();
        assert_eq!(config.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        assert_eq!(config.retries, DEFAULT_RETRIES);
        assert_eq!(config.token, None);
        assert_eq!(
            config.url("v1/describe").as_str(),
            "http://127.0.0.1:9/v1/describe"
        );
    }

    #[test]
    fn endpoint_prefix_is_kept() {
        let config =
            WebhookConfig::from_environment(&env(Some("http://gw/plugins/fs/"), json!({})))
                .unwrap();
        assert_eq!(
            config.url("v1/inject").as_str(),
            "http://gw/plugins/fs/v1/inject"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let result = WebhookConfig::from_environment(&env(
            Some("ftp://x"),
            json!({"timeout_ms": "fast", "retries": -1, "token": 3, "colour": "blue"}),
        ));
        let mut got = paths(result);
        got.sort();
        assert_eq!(
            got,
            [
                "spec.endpoint",
                "spec.settings.colour",
                "spec.settings.retries",
                "spec.settings.timeout_ms",
                "spec.settings.token"
            ]
        );
    }

    #[test]
    fn missing_endpoint_is_an_error() {
        assert_eq!(
            paths(WebhookConfig::from_environment(&env(None, json!({})))),
            ["spec.endpoint"]
        );
        assert_eq!(
            paths(WebhookConfig::from_environment(&env(
                Some("not a url"),
                json!({})
            ))),
            ["spec.endpoint"]
        );
    }
}
