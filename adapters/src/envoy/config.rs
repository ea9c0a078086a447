//! Settings of an `envoy` environment, validated purely (no network).
//!
//! ```yaml
//! spec:
//!   adapter: envoy
//!   endpoint: http://127.0.0.1:9901   # Envoy's admin API
//!   settings:
//!     timeout_ms: 5000    # per admin API request, connect included (default 5000)
//!     mode: runtime       # how faults are applied; only `runtime` exists today (default)
//! ```

use std::time::Duration;

use chaoshub_schema::ValidationErrors;
use reqwest::Url;
use serde_json::Value;

use crate::Environment;

const ENDPOINT_HELP: crate::settings::EndpointHelp = crate::settings::EndpointHelp {
    what: "the URL of Envoy's admin API, e.g. http://127.0.0.1:9901",
    credentials: "the admin API takes none",
};

pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
const MAX_TIMEOUT_MS: u64 = 600_000;

/// Every key `spec.settings` may hold, in the order error messages list them.
pub const KNOWN_SETTINGS: &[&str] = &["timeout_ms", "mode"];

/// An envoy environment's admin endpoint and settings, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvoyConfig {
    /// The admin API's base URL (`http://host:9901`); admin paths are appended to it.
    pub admin: Url,
    pub timeout: Duration,
}

impl EnvoyConfig {
    /// Reads and validates an environment's endpoint and settings, reporting every problem with
    /// its path (`spec.endpoint`, `spec.settings.timeout_ms`, …).
    pub fn from_environment(env: &Environment) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let admin = crate::settings::http_endpoint(
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
        )
        .unwrap_or(DEFAULT_TIMEOUT_MS);
        match settings.get("mode") {
            None | Some(Value::Null) => {}
            Some(Value::String(mode)) if mode == "runtime" => {}
            Some(Value::String(mode)) if mode == "xds" => errors.push(
                "spec.settings.mode",
                "xds mode is not implemented yet; use runtime (a fault filter in the listener, \
                 faults switched on through the admin API's runtime)",
            ),
            Some(other) => errors.push(
                "spec.settings.mode",
                format!("must be \"runtime\", got {other}"),
            ),
        }
        errors.into_result()?;
        Ok(Self {
            // `http_endpoint` pushed an error whenever it returned `None`.
            admin: admin.expect("endpoint validated above"),
            timeout: Duration::from_millis(timeout_ms),
        })
    }

    /// The URL of one admin path such as `runtime`, below the endpoint's own path prefix.
    pub fn url(&self, path: &str) -> Url {
        crate::settings::join(&self.admin, path)
    }
}

#[cfg(test)]
mod tests {
    use chaoshub_schema::environment::EnvironmentSpec;
    use serde_json::json;

    use super::*;

    fn env(endpoint: Option<&str>, settings: Value) -> Environment {
        Environment {
            name: "edge".into(),
            spec: EnvironmentSpec {
                adapter: "envoy".into(),
                endpoint: endpoint.map(str::to_string),
                description: None,
                labels: Default::default(),
                settings: settings.as_object().cloned().unwrap_or_default(),
            },
        }
    }

    #[test]
    fn defaults_apply() {
        let config =
            EnvoyConfig::from_environment(&env(Some("http://127.0.0.1:9901"), json!({}))).unwrap();
        assert_eq!(config.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        assert_eq!(
            config.url("runtime").as_str(),
            "http://127.0.0.1:9901/runtime"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let errors = EnvoyConfig::from_environment(&env(
            Some("ftp://x"),
            json!({"timeout_ms": 0, "mode": "xds", "colour": 1}),
        ))
        .unwrap_err();
        let mut paths: Vec<_> = errors.iter().map(|e| e.path.clone()).collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "spec.endpoint",
                "spec.settings.colour",
                "spec.settings.mode",
                "spec.settings.timeout_ms"
            ]
        );
        let missing = EnvoyConfig::from_environment(&env(None, json!({}))).unwrap_err();
        assert_eq!(missing.iter().next().unwrap().path, "spec.endpoint");
    }
}
