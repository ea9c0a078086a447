//! Settings of a `docker` environment, validated purely (no network).
//!
//! ```yaml
//! spec:
//!   adapter: docker
//!   endpoint: unix:///var/run/docker.sock   # or tcp://10.0.0.5:2375, https://10.0.0.5:2376
//!                                           # (default: the local socket)
//!   settings:
//!     timeout_secs: 60          # per Docker API request (default 60; image builds get 10×)
//!     agent_binary: /opt/chaos-agent   # chaos-agent copied into the helper image (see below)
//!     helper_image: chaoshub/agent-helper:mine   # use this image instead of building one
//!     stop_timeout_secs: 10     # how long a helper gets to remove its fault after SIGTERM
//!     watchdog: true            # engine-side deadline for pause / disconnect / squeeze
//!     tls_ca: /etc/chaoshub/docker/ca.pem      # TLS (https://, or tcp:// with these set):
//!     tls_cert: /etc/chaoshub/docker/cert.pem  # the CA that signed the engine's certificate,
//!     tls_key: /etc/chaoshub/docker/key.pem    # and the client certificate and key
//! ```
//!
//! Without `agent_binary` the helper image is built from `$CHAOSHUB_AGENT_BINARY`, else from the
//! `chaos-agent` next to the running executable. Only network and stress faults need it.

use std::path::PathBuf;
use std::time::Duration;

use chaoshub_schema::ValidationErrors;
use serde_json::Value;

use crate::Environment;

/// The engine's local socket, used when an environment names no endpoint.
pub const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_STOP_TIMEOUT_SECS: u64 = 10;
const MAX_TIMEOUT_SECS: u64 = 3_600;

/// Every key `spec.settings` may hold, in the order error messages list them.
pub const KNOWN_SETTINGS: &[&str] = &[
    "timeout_secs",
    "agent_binary",
    "helper_image",
    "stop_timeout_secs",
    "watchdog",
    "tls_ca",
    "tls_cert",
    "tls_key",
];

/// The files of a TLS engine connection (paths on the hub's host), as `docker --tlsverify` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How the adapter reaches the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerEndpoint {
    /// A Unix socket path (`unix:///var/run/docker.sock`).
    Unix(String),
    /// Plain HTTP to `host:port` (`tcp://host:2375`).
    Tcp(String),
    /// HTTPS with a client certificate to `host:port` (`https://host:2376`, or `tcp://` with
    /// the `tls_*` settings).
    Tls { addr: String, files: TlsFiles },
}

impl std::fmt::Display for DockerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{path}"),
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
            Self::Tls { addr, .. } => write!(f, "https://{addr}"),
        }
    }
}

/// A Docker environment's endpoint and settings, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerConfig {
    pub endpoint: DockerEndpoint,
    pub timeout: Duration,
    pub stop_timeout: Duration,
    pub agent_binary: Option<PathBuf>,
    pub helper_image: Option<String>,
    /// Whether a pause, disconnect or squeeze with a deadline gets a watchdog container that
    /// undoes it on the engine's side if the hub has not by then.
    pub watchdog: bool,
}

fn parse_endpoint(text: &str, errors: &mut ValidationErrors) -> Option<DockerEndpoint> {
    let text = text.trim();
    if let Some(path) = text.strip_prefix("unix://") {
        if !path.starts_with('/') {
            errors.push(
                "spec.endpoint",
                format!("a unix:// endpoint needs an absolute socket path, got {text:?}"),
            );
            return None;
        }
        return Some(DockerEndpoint::Unix(path.to_string()));
    }
    let rest = text
        .strip_prefix("tcp://")
        .or_else(|| text.strip_prefix("http://"))
        .or_else(|| text.strip_prefix("https://"));
    let Some(rest) = rest else {
        errors.push(
            "spec.endpoint",
            format!(
                "must be unix:///path/to/docker.sock, tcp://host:port or https://host:port, got \
                 {text:?}"
            ),
        );
        return None;
    };
    let addr = rest.trim_end_matches('/');
    let valid = match addr.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains(['/', '@', '?', '#'])
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    };
    if !valid {
        errors.push(
            "spec.endpoint",
            format!("a tcp:// endpoint must be host:port with nothing after it, got {text:?}"),
        );
        return None;
    }
    Some(DockerEndpoint::Tcp(addr.to_string()))
}

// The HTTP adapters share these checks in `crate::settings`, which needs reqwest for URLs; the
// Docker adapter has no HTTP endpoint, so it keeps its own copies of the two it needs.

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn reject_unknown(settings: &serde_json::Map<String, Value>, errors: &mut ValidationErrors) {
    for key in settings.keys() {
        if !KNOWN_SETTINGS.contains(&key.as_str()) && !crate::HUB_SETTINGS.contains(&key.as_str()) {
            errors.push(
                format!("spec.settings.{key}"),
                format!("unknown setting (known: {})", KNOWN_SETTINGS.join(", ")),
            );
        }
    }
}

fn integer_setting(
    settings: &serde_json::Map<String, Value>,
    key: &str,
    min: u64,
    max: u64,
    errors: &mut ValidationErrors,
) -> Option<u64> {
    let value = settings.get(key)?;
    if value.is_null() {
        return None;
    }
    match value.as_u64() {
        Some(v) if (min..=max).contains(&v) => Some(v),
        _ => {
            errors.push(
                format!("spec.settings.{key}"),
                format!("must be an integer from {min} to {max}, got {value}"),
            );
            None
        }
    }
}

fn string_setting(
    settings: &serde_json::Map<String, Value>,
    key: &str,
    errors: &mut ValidationErrors,
) -> Option<String> {
    match settings.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(other) => {
            errors.push(
                format!("spec.settings.{key}"),
                format!("must be a non-empty string, got {}", json_type(other)),
            );
            None
        }
    }
}

/// The `tls_ca` / `tls_cert` / `tls_key` settings: all three absolute paths, or none.
fn tls_files(
    settings: &serde_json::Map<String, Value>,
    errors: &mut ValidationErrors,
) -> Option<TlsFiles> {
    let keys = ["tls_ca", "tls_cert", "tls_key"];
    let values: Vec<Option<String>> = keys
        .iter()
        .map(|k| string_setting(settings, k, errors))
        .collect();
    if values.iter().all(Option::is_none) {
        return None;
    }
    let mut paths = Vec::new();
    for (key, value) in keys.iter().zip(values) {
        match value {
            Some(path) if path.starts_with('/') => paths.push(PathBuf::from(path)),
            Some(path) => errors.push(
                format!("spec.settings.{key}"),
                format!("must be an absolute path on the hub's host, got {path:?}"),
            ),
            None if settings.get(*key).is_none_or(Value::is_null) => errors.push(
                format!("spec.settings.{key}"),
                "required with the other tls_* settings (tls_ca, tls_cert and tls_key go together)",
            ),
            None => {} // a wrong type, already reported
        }
    }
    let [ca, cert, key] = <[PathBuf; 3]>::try_from(paths).ok()?;
    Some(TlsFiles { ca, cert, key })
}

impl DockerConfig {
    /// Reads and validates an environment's endpoint and settings, reporting every problem with
    /// its path (`spec.endpoint`, `spec.settings.timeout_secs`, …).
    pub fn from_environment(env: &Environment) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let endpoint = parse_endpoint(
            env.spec.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT),
            &mut errors,
        );
        let settings = &env.spec.settings;
        reject_unknown(settings, &mut errors);
        let timeout = integer_setting(settings, "timeout_secs", 1, MAX_TIMEOUT_SECS, &mut errors);
        let stop_timeout = integer_setting(settings, "stop_timeout_secs", 1, 600, &mut errors);
        let agent_binary = string_setting(settings, "agent_binary", &mut errors);
        if let Some(path) = &agent_binary {
            if !path.starts_with('/') {
                errors.push(
                    "spec.settings.agent_binary",
                    format!("must be an absolute path on the hub's host, got {path:?}"),
                );
            }
        }
        let helper_image = string_setting(settings, "helper_image", &mut errors);
        let tls = tls_files(settings, &mut errors);
        let watchdog = match settings.get("watchdog") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                errors.push(
                    "spec.settings.watchdog",
                    format!("must be true or false, got {}", json_type(other)),
                );
                true
            }
        };
        let endpoint_text = env
            .spec
            .endpoint
            .as_deref()
            .unwrap_or(DEFAULT_ENDPOINT)
            .trim();
        let endpoint = match (endpoint, tls) {
            (Some(DockerEndpoint::Tcp(addr)), Some(files)) => {
                Some(DockerEndpoint::Tls { addr, files })
            }
            (Some(DockerEndpoint::Tcp(_)), None) if endpoint_text.starts_with("https://") => {
                if !settings.contains_key("tls_ca") {
                    errors.push(
                        "spec.settings.tls_ca",
                        "an https:// endpoint needs tls_ca, tls_cert and tls_key (the CA of the \
                         engine's certificate and the client certificate and key)",
                    );
                }
                None
            }
            (Some(DockerEndpoint::Unix(_)), Some(_)) => {
                errors.push(
                    "spec.settings.tls_ca",
                    "TLS settings apply to tcp:// and https:// endpoints, not to a unix socket",
                );
                None
            }
            (endpoint, _) => endpoint,
        };
        errors.into_result()?;
        let Some(endpoint) = endpoint else {
            // Every way to `None` above pushed an error; kept defensive.
            return Err(ValidationErrors::single("spec.endpoint", "invalid"));
        };
        Ok(Self {
            endpoint,
            timeout: Duration::from_secs(timeout.unwrap_or(DEFAULT_TIMEOUT_SECS)),
            stop_timeout: Duration::from_secs(stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT_SECS)),
            agent_binary: agent_binary.map(PathBuf::from),
            helper_image,
            watchdog,
        })
    }
}

#[cfg(test)]
mod tests {
    use chaoshub_schema::environment::EnvironmentSpec;
    use serde_json::json;

    use super::*;

    fn env(endpoint: Option<&str>, settings: Value) -> Environment {
        Environment {
            name: "engine".into(),
            spec: EnvironmentSpec {
                adapter: "docker".into(),
                endpoint: endpoint.map(str::to_string),
                description: None,
                labels: Default::default(),
                settings: settings.as_object().cloned().unwrap_or_default(),
            },
        }
    }

    fn paths(result: Result<DockerConfig, ValidationErrors>) -> Vec<String> {
        let mut paths: Vec<String> = result.unwrap_err().iter().map(|e| e.path.clone()).collect();
        paths.sort();
        paths
    }

    #[test]
    fn defaults_to_the_local_socket() {
        let config = DockerConfig::from_environment(&env(None, json!({}))).unwrap();
        assert_eq!(
            config.endpoint,
            DockerEndpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(config.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
        assert_eq!(config.endpoint.to_string(), DEFAULT_ENDPOINT);
        assert!(config.watchdog);
    }

    #[test]
    fn tcp_endpoints_are_host_and_port() {
        let config =
            DockerConfig::from_environment(&env(Some("tcp://10.0.0.5:2375"), json!({}))).unwrap();
        assert_eq!(config.endpoint, DockerEndpoint::Tcp("10.0.0.5:2375".into()));
        for bad in [
            "tcp://host",
            "tcp://:2375",
            "tcp://h:0",
            "tcp://h:2375/v1",
            "unix://relative.sock",
            "docker.sock",
        ] {
            assert_eq!(
                paths(DockerConfig::from_environment(&env(Some(bad), json!({})))),
                ["spec.endpoint"],
                "{bad}"
            );
        }
    }

    #[test]
    fn tls_needs_its_three_files_and_a_tcp_endpoint() {
        let files =
            json!({"tls_ca": "/c/ca.pem", "tls_cert": "/c/cert.pem", "tls_key": "/c/key.pem"});
        for endpoint in ["https://10.0.0.5:2376", "tcp://10.0.0.5:2376"] {
            let config =
                DockerConfig::from_environment(&env(Some(endpoint), files.clone())).unwrap();
            assert_eq!(
                config.endpoint,
                DockerEndpoint::Tls {
                    addr: "10.0.0.5:2376".into(),
                    files: TlsFiles {
                        ca: "/c/ca.pem".into(),
                        cert: "/c/cert.pem".into(),
                        key: "/c/key.pem".into(),
                    }
                }
            );
            assert_eq!(config.endpoint.to_string(), "https://10.0.0.5:2376");
        }
        assert_eq!(
            paths(DockerConfig::from_environment(&env(
                Some("https://h:2376"),
                json!({})
            ))),
            ["spec.settings.tls_ca"]
        );
        assert_eq!(
            paths(DockerConfig::from_environment(&env(
                Some("https://h:2376"),
                json!({"tls_ca": "/c/ca.pem", "tls_key": "key.pem"})
            ))),
            ["spec.settings.tls_cert", "spec.settings.tls_key"]
        );
        assert_eq!(
            paths(DockerConfig::from_environment(&env(None, files))),
            ["spec.settings.tls_ca"]
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let result = DockerConfig::from_environment(&env(
            Some("ftp://x"),
            json!({"timeout_secs": 0, "agent_binary": "chaos-agent", "helper_image": 3, "colour": 1, "watchdog": "yes"}),
        ));
        assert_eq!(
            paths(result),
            [
                "spec.endpoint",
                "spec.settings.agent_binary",
                "spec.settings.colour",
                "spec.settings.helper_image",
                "spec.settings.timeout_secs",
                "spec.settings.watchdog"
            ]
        );
    }
}
