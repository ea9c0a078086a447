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
        let endpoint = parse_endpoint(env.spec.endpoint.as_deref(), &mut errors);

        let settings = &env.spec.settings;
        for key in settings.keys() {
            if !KNOWN_SETTINGS.contains(&key.as_str()) {
                errors.push(
                    format!("spec.settings.{key}"),
                    format!("unknown setting (known: {})", KNOWN_SETTINGS.join(", ")),
                );
            }
        }
        let timeout_ms = integer_setting(
            settings.get("timeout_ms"),
            "timeout_ms",
            1,
            MAX_TIMEOUT_MS,
            &mut errors,
        );
        let retries = integer_setting(
            settings.get("retries"),
            "retries",
            0,
            MAX_RETRIES,
            &mut errors,
        );
        let backoff_ms = integer_setting(
            settings.get("retry_backoff_ms"),
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
                    format!("must be a string, got {}", type_name(other)),
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
        let mut url = self.endpoint.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/{path}"));
        url
    }
}

fn parse_endpoint(endpoint: Option<&str>, errors: &mut ValidationErrors) -> Option<Url> {
    let Some(text) = endpoint.map(str::trim).filter(|t| !t.is_empty()) else {
        errors.push(
            "spec.endpoint",
            "required: the plugin's base URL, e.g. http://127.0.0.1:8470",
        );
        return None;
    };
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(e) => {
            errors.push("spec.endpoint", format!("not a valid URL ({e}): {text:?}"));
            return None;
        }
    };
    let mut ok = true;
    if !matches!(url.scheme(), "http" | "https") {
        errors.push(
            "spec.endpoint",
            format!(
                "must be an http:// or https:// URL, got scheme {:?}",
                url.scheme()
            ),
        );
        ok = false;
    }
    if url.host_str().is_none_or(str::is_empty) {
        errors.push("spec.endpoint", "must name a host");
        ok = false;
    }
    if url.query().is_some() || url.fragment().is_some() {
        errors.push(
            "spec.endpoint",
            "must not carry a query or fragment; give the plugin's base URL",
        );
        ok = false;
    }
    if !url.username().is_empty() || url.password().is_some() {
        errors.push(
            "spec.endpoint",
            "must not embed credentials; use spec.settings.token",
        );
        ok = false;
    }
    ok.then_some(url)
}

fn integer_setting(
    value: Option<&Value>,
    key: &str,
    min: u64,
    max: u64,
    errors: &mut ValidationErrors,
) -> Option<u64> {
    let path = format!("spec.settings.{key}");
    match value {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                errors.push(
                    path,
                    format!("must be an integer from {min} to {max}, got {n}"),
                );
                None
            }
        },
        Some(other) => {
            errors.push(
                path,
                format!("must be an integer, got {}", type_name(other)),
            );
            None
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
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
