//! Hub configuration: `chaoshub serve --config hub.toml`, every field optional with a
//! documented default, overridable by flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default listen address of the hub (REST API, console, metrics).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// The whole hub configuration (`hub.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Address to listen on; port 0 picks a free port. Default `127.0.0.1:7070`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Where the embedded SQLite store lives. Default `./chaoshub-data`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Where the local template catalog lives (`<category>/<name>.yaml`). Default `./catalog`;
    /// a missing directory gives an empty local catalog. Remote catalogs are cached under
    /// `<data_dir>/catalogs/`.
    #[serde(default = "default_catalog_dir")]
    pub catalog_dir: PathBuf,
    /// How often remote catalogs' index files are checked for changes. Default 900 s.
    #[serde(default = "default_catalog_refresh_interval_secs")]
    pub catalog_refresh_interval_secs: u64,
    /// Environment used when an experiment names none. Default: none (experiments must name one).
    #[serde(default)]
    pub default_environment: Option<String>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub engine: EngineConfig,
    #[serde(default)]
    pub store: StoreConfig,
    /// How this hub takes part when several share one store (`store.url = "postgres://…"`):
    /// its name, the URL it advertises while it leads, the engine lease.
    #[serde(default)]
    pub replica: crate::leadership::ReplicaConfig,
    /// OpenTelemetry export of events and experiment traces; off unless an endpoint is set
    /// here or in `OTEL_EXPORTER_OTLP_*`.
    #[serde(default)]
    pub telemetry: crate::telemetry::TelemetryConfig,
    /// Authentication and authorization (docs/security.md).
    #[serde(default)]
    pub auth: AuthConfig,
    /// Environments registered at start (replacing stored ones of the same name).
    #[serde(default)]
    pub environments: Vec<EnvironmentConfig>,
    /// TLS on the listener (REST, gRPC for agents, console). Off by default.
    #[serde(default)]
    pub tls: TlsConfig,
    /// What the hub may call (docs/security.md, "Locked-down installs").
    #[serde(default)]
    pub security: SecurityConfig,
}

/// `[security]`: limits on what the hub itself reaches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Hosts (`hub.example`, `*.example.com`, optionally `:port`), IP addresses and CIDRs
    /// (`10.0.0.0/8`), and `unix:///path` sockets the hub may call: environment endpoints,
    /// remote catalogs, probe targets. Empty (the default): everything an admin registers.
    #[serde(default)]
    pub allowed_endpoints: Vec<String>,
    /// The label (`key=value`) that makes a target protected in every environment: no
    /// experiment may select it. Default `chaoshub.dev/protected=true`; `""` turns label
    /// protection off (environments' `settings.protected_targets` still apply).
    #[serde(default = "default_protected_selector")]
    pub protected_selector: String,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            allowed_endpoints: Vec::new(),
            protected_selector: default_protected_selector(),
        }
    }
}

fn default_protected_selector() -> String {
    "chaoshub.dev/protected=true".into()
}

/// `[tls]`: certificate and key for the one listener, optional client CA for agents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (server certificate first). With `key_file`, the listener speaks
    /// TLS only. Re-read on change and on SIGHUP.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// PEM CA certificate(s): agents must present a client certificate signed by one of them
    /// (mutual TLS). Other clients need none. Default: no client certificates.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Create a CA and a server certificate under `<data_dir>/tls/` (`serve --tls-self-signed`)
    /// instead of `cert_file`/`key_file`. Default false.
    #[serde(default)]
    pub self_signed: bool,
    /// Extra DNS names or IP addresses for the self-signed certificate (the listen address,
    /// `localhost`, 127.0.0.1, ::1 and the host name are always in it).
    #[serde(default)]
    pub self_signed_names: Vec<String>,
    /// How often the certificate files are checked for changes. Default 5000 ms.
    #[serde(default = "default_tls_reload_interval_ms")]
    pub reload_interval_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            self_signed: false,
            self_signed_names: Vec::new(),
            reload_interval_ms: default_tls_reload_interval_ms(),
        }
    }
}

impl TlsConfig {
    /// Whether the listener speaks TLS.
    pub fn enabled(&self) -> bool {
        self.self_signed || self.cert_file.is_some()
    }

    fn check(&self) -> Result<(), String> {
        match (&self.cert_file, &self.key_file, self.self_signed) {
            (Some(_), Some(_), false) | (None, None, _) => {}
            (_, _, true) => {
                return Err(
                    "tls.self_signed: give either self_signed or cert_file/key_file, not both"
                        .into(),
                )
            }
            (Some(_), None, _) => return Err("tls.key_file: required with tls.cert_file".into()),
            (None, Some(_), _) => return Err("tls.cert_file: required with tls.key_file".into()),
        }
        if self.client_ca_file.is_some() && !self.enabled() {
            return Err(
                "tls.client_ca_file: needs TLS (tls.cert_file and tls.key_file, or tls.self_signed)"
                    .into(),
            );
        }
        if !(100..=3_600_000).contains(&self.reload_interval_ms) {
            return Err(format!(
                "tls.reload_interval_ms: {} is out of range (100 to 3600000)",
                self.reload_interval_ms
            ));
        }
        Ok(())
    }
}

fn default_tls_reload_interval_ms() -> u64 {
    5000
}

/// `[auth]`: who may call the API (docs/security.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `token` (default): every request but /healthz and /readyz needs a bearer token. `none`:
    /// everyone who reaches the port is an admin; allowed only on a loopback listen address.
    #[serde(default = "default_auth_mode")]
    pub mode: String,
    /// Serve `/metrics` without a token (for a Prometheus without credentials). Default false:
    /// viewer.
    #[serde(default)]
    pub metrics_open: bool,
    /// Failed authentications one address may make per minute before it is answered 429
    /// (with Retry-After) for the rest of the minute; 0 disables. Default 30.
    #[serde(default = "default_max_failures_per_minute")]
    pub max_failures_per_minute: u32,
    /// `[auth.jwt]`: also accept JWTs from an identity provider (single sign-on). Absent: hub
    /// tokens only.
    #[serde(default)]
    pub jwt: Option<crate::auth::jwt::JwtConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: default_auth_mode(),
            metrics_open: false,
            max_failures_per_minute: default_max_failures_per_minute(),
            jwt: None,
        }
    }
}

fn default_auth_mode() -> String {
    "token".to_string()
}
fn default_max_failures_per_minute() -> u32 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body accepted; larger bodies get 413. Default 1 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Longest `spec.duration` accepted (guardrail); 0 disables. Default 24 h.
    #[serde(default = "default_max_duration_secs")]
    pub max_duration_secs: u64,
    /// Most targets one experiment may hit (blast-radius guardrail); 0 disables. Default 1000.
    #[serde(default = "default_max_targets")]
    pub max_targets: usize,
    /// Whether `command` probes (suites, stop conditions) may run programs on the hub's
    /// host. Default false: anyone who may submit a suite could otherwise run commands here.
    #[serde(default)]
    pub allow_command_probes: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// How often the reconciler rescans stored state even when nothing woke it. Default 1000 ms.
    #[serde(default = "default_resync_interval_ms")]
    pub resync_interval_ms: u64,
    /// How long the engine waits for an adapter to read back an injected fault. Default 10 s.
    #[serde(default = "default_confirm_timeout_ms")]
    pub confirm_timeout_ms: u64,
    /// Delay before retrying a failed recovery. Default 2000 ms.
    #[serde(default = "default_recovery_retry_ms")]
    pub recovery_retry_ms: u64,
    /// Targets injected or recovered at once per experiment. Default 16.
    #[serde(default = "default_parallelism")]
    pub parallelism: usize,
    /// Experiments injecting into one environment at once; more wait (still Pending) so that
    /// recoveries are never stuck behind a crowd of injections. Default 8.
    #[serde(default = "default_max_injecting_per_environment")]
    pub max_injecting_per_environment: usize,
    /// The longest lease a `chaos-agent` gets for a fault at once; the hub renews it while the
    /// fault is wanted, so a fault outlives a dead hub by at most this. Default 30 s.
    #[serde(default = "default_agent_lease_secs")]
    pub agent_lease_secs: u64,
    /// How often the status of every target of a Running experiment is read back (drift
    /// detection), jittered by ±25 % per experiment; agents that reconnect have theirs read at
    /// once. 0 turns the periodic reads off. Default 5000 ms.
    #[serde(default = "default_verify_interval_ms")]
    pub verify_interval_ms: u64,
    /// Status reads of drift detection in flight at once per environment, so that many Running
    /// experiments do not flood one far side. Default 4.
    #[serde(default = "default_verify_reads_per_environment")]
    pub verify_reads_per_environment: usize,
    /// What happens when a Running experiment's fault is found gone (the annotation
    /// `chaoshub.dev/on-drift` overrides it per experiment). Default `reinject`.
    #[serde(default)]
    pub on_drift: OnDrift,
}

/// What the engine does when drift detection finds a Running experiment's fault gone from a
/// target (someone deleted the toxic, the container was restarted, the agent lost its journal).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDrift {
    /// Put the fault back for the time that remains (as Chaos Mesh re-applies to a restarted
    /// pod); the experiment fails if that does not work.
    #[default]
    Reinject,
    /// End the experiment `Failed`, naming the target and when its fault was found gone.
    Fail,
    /// Record the drift (event and status) and leave the experiment `Running`.
    Ignore,
}

impl OnDrift {
    pub const NAMES: &'static str = "reinject, fail, ignore";

    pub fn parse(text: &str) -> Option<OnDrift> {
        match text {
            "reinject" => Some(OnDrift::Reinject),
            "fail" => Some(OnDrift::Fail),
            "ignore" => Some(OnDrift::Ignore),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnDrift::Reinject => "reinject",
            OnDrift::Fail => "fail",
            OnDrift::Ignore => "ignore",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Where state lives (docs/operations.md): unset (the default) is the embedded SQLite
    /// database in `data_dir`; `sqlite:DIR` puts it in DIR; `postgres://user:pass@host/db`
    /// (or `postgresql://`) a PostgreSQL database that several hubs can share, with libpq's
    /// `sslmode` (disable, prefer, require, verify-ca, verify-full) and `sslrootcert`.
    #[serde(default)]
    pub url: Option<String>,
    /// How commits reach the disk (docs/reliability.md): `lifecycle` (default) fsyncs every
    /// lifecycle transition (intent before inject, recorded injection, stop, halt) so it
    /// survives power loss, and lets plain event appends ride on the next fsync; `full`
    /// fsyncs every write; `normal` fsyncs none (survives a killed hub, not power loss).
    #[serde(default = "default_sync")]
    pub synchronous: String,
    /// Events older than this many days are deleted (those of experiments still running are
    /// kept); 0 keeps them forever. Default 30.
    #[serde(default = "default_event_retention_days")]
    pub event_retention_days: u64,
    /// At most this many events are kept (the oldest go first); 0 means no cap. Default
    /// 1 000 000.
    #[serde(default = "default_event_max_rows")]
    pub event_max_rows: u64,
}

/// An environment registered from the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    pub name: String,
    pub adapter: String,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}
fn default_catalog_dir() -> PathBuf {
    PathBuf::from("catalog")
}
fn default_catalog_refresh_interval_secs() -> u64 {
    900
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("chaoshub-data")
}
fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_max_duration_secs() -> u64 {
    24 * 3600
}
fn default_max_targets() -> usize {
    1000
}
fn default_resync_interval_ms() -> u64 {
    1000
}
fn default_confirm_timeout_ms() -> u64 {
    10_000
}
fn default_recovery_retry_ms() -> u64 {
    2000
}
fn default_max_injecting_per_environment() -> usize {
    8
}
fn default_agent_lease_secs() -> u64 {
    30
}
fn default_parallelism() -> usize {
    16
}
fn default_verify_interval_ms() -> u64 {
    5000
}
fn default_verify_reads_per_environment() -> usize {
    4
}
fn default_sync() -> String {
    "lifecycle".to_string()
}
fn default_event_retention_days() -> u64 {
    30
}
fn default_event_max_rows() -> u64 {
    1_000_000
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body_bytes(),
            max_duration_secs: default_max_duration_secs(),
            max_targets: default_max_targets(),
            allow_command_probes: false,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            resync_interval_ms: default_resync_interval_ms(),
            confirm_timeout_ms: default_confirm_timeout_ms(),
            recovery_retry_ms: default_recovery_retry_ms(),
            parallelism: default_parallelism(),
            max_injecting_per_environment: default_max_injecting_per_environment(),
            agent_lease_secs: default_agent_lease_secs(),
            verify_interval_ms: default_verify_interval_ms(),
            verify_reads_per_environment: default_verify_reads_per_environment(),
            on_drift: OnDrift::default(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            synchronous: default_sync(),
            event_retention_days: default_event_retention_days(),
            event_max_rows: default_event_max_rows(),
        }
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            data_dir: default_data_dir(),
            catalog_dir: default_catalog_dir(),
            catalog_refresh_interval_secs: default_catalog_refresh_interval_secs(),
            default_environment: None,
            limits: LimitsConfig::default(),
            engine: EngineConfig::default(),
            store: StoreConfig::default(),
            replica: Default::default(),
            telemetry: Default::default(),
            auth: AuthConfig::default(),
            environments: Vec::new(),
            tls: TlsConfig::default(),
            security: SecurityConfig::default(),
        }
    }
}

impl HubConfig {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config: HubConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Checks what serde cannot.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.replica.check().map_err(ConfigError::Invalid)?;
        let listen = self.listen.parse::<SocketAddr>().map_err(|e| {
            ConfigError::Invalid(format!(
                "listen: {:?} is not an address like 127.0.0.1:7070 ({e})",
                self.listen
            ))
        })?;
        match self.auth.mode.as_str() {
            "token" => {}
            "none" if listen.ip().is_loopback() => {}
            "none" => {
                return Err(ConfigError::Invalid(format!(
                    "auth.mode = \"none\" is allowed only on a loopback listen address, and listen is {}: anyone who can reach that address could run any fault on every environment. Use tokens (remove auth.mode), or listen on 127.0.0.1",
                    self.listen
                )))
            }
            other => {
                return Err(ConfigError::Invalid(format!(
                    "auth.mode: {other:?} is not one of token, none"
                )))
            }
        }
        if let Some(jwt) = &self.auth.jwt {
            if self.auth.mode == "none" {
                return Err(ConfigError::Invalid(
                    "auth.jwt is set but auth.mode is \"none\" (no credential is checked): remove one".into(),
                ));
            }
            jwt.check().map_err(ConfigError::Invalid)?;
        }
        if !matches!(
            self.store.synchronous.as_str(),
            "normal" | "lifecycle" | "full"
        ) {
            return Err(ConfigError::Invalid(format!(
                "store.synchronous: {:?} is not one of normal, lifecycle, full",
                self.store.synchronous
            )));
        }
        crate::store::StoreUrl::parse(self.store.url.as_deref())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let ranges = [
            (
                "engine.resync_interval_ms",
                self.engine.resync_interval_ms,
                10,
                600_000,
            ),
            (
                "engine.confirm_timeout_ms",
                self.engine.confirm_timeout_ms,
                1,
                3_600_000,
            ),
            (
                "engine.recovery_retry_ms",
                self.engine.recovery_retry_ms,
                10,
                3_600_000,
            ),
            // Leases are renewed when half the window is left, on a 1 s tick.
            (
                "engine.agent_lease_secs",
                self.engine.agent_lease_secs,
                3,
                86_400,
            ),
            // 0: off; otherwise at least 100 ms, so reads never hammer a far side.
            (
                "engine.verify_interval_ms",
                if self.engine.verify_interval_ms == 0 {
                    100
                } else {
                    self.engine.verify_interval_ms
                },
                100,
                86_400_000,
            ),
            (
                "limits.max_duration_secs",
                self.limits.max_duration_secs,
                0,
                100 * 365 * 86_400,
            ),
        ];
        for (name, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::Invalid(format!(
                    "{name}: {value} is out of range ({min} to {max})"
                )));
            }
        }
        if !(1..=10_000).contains(&self.engine.max_injecting_per_environment) {
            return Err(ConfigError::Invalid(
                "engine.max_injecting_per_environment: must be from 1 to 10000".into(),
            ));
        }
        if !(1..=1000).contains(&self.engine.verify_reads_per_environment) {
            return Err(ConfigError::Invalid(
                "engine.verify_reads_per_environment: must be from 1 to 1000".into(),
            ));
        }
        if self.engine.parallelism == 0 {
            return Err(ConfigError::Invalid(
                "engine.parallelism: must be at least 1".into(),
            ));
        }
        if self.limits.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "limits.max_body_bytes: must be at least 1024".into(),
            ));
        }
        self.telemetry.check().map_err(ConfigError::Invalid)?;
        self.tls.check().map_err(ConfigError::Invalid)?;
        crate::endpoints::EndpointAllowList::parse(&self.security.allowed_endpoints)
            .map_err(ConfigError::Invalid)?;
        crate::selection::ProtectedLabel::parse(&self.security.protected_selector)
            .map_err(|e| ConfigError::Invalid(format!("security.protected_selector: {e}")))?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, env) in self.environments.iter().enumerate() {
            if !seen.insert(env.name.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "environments[{i}].name: {:?} is registered twice",
                    env.name
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gives_defaults() {
        let c = HubConfig::from_toml("", Path::new("hub.toml")).unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.limits.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let err = HubConfig::from_toml(
            "listen = \"127.0.0.1:1\"\nlisen = 3\n",
            Path::new("hub.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn auth_none_only_on_loopback() {
        let ok = HubConfig::from_toml(
            "listen = \"127.0.0.1:0\"\n[auth]\nmode = \"none\"\n",
            Path::new("hub.toml"),
        );
        assert!(ok.is_ok(), "{ok:?}");
        let err = HubConfig::from_toml(
            "listen = \"0.0.0.0:7070\"\n[auth]\nmode = \"none\"\n",
            Path::new("hub.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("loopback"), "{err}");
        let err = HubConfig::from_toml("[auth]\nmode = \"off\"\n", Path::new("hub.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.mode"), "{err}");
    }

    #[test]
    fn drift_settings_have_defaults_bounds_and_named_policies() {
        let c = HubConfig::from_toml("", Path::new("hub.toml")).unwrap();
        assert_eq!(c.engine.verify_interval_ms, 5000);
        assert_eq!(c.engine.verify_reads_per_environment, 4);
        assert_eq!(c.engine.on_drift, OnDrift::Reinject);
        let c = HubConfig::from_toml(
            "[engine]\nverify_interval_ms = 0\non_drift = \"fail\"\n",
            Path::new("hub.toml"),
        )
        .unwrap();
        assert_eq!(c.engine.verify_interval_ms, 0, "0 turns the reads off");
        assert_eq!(c.engine.on_drift, OnDrift::Fail);
        let err = HubConfig::from_toml("[engine]\non_drift = \"retry\"\n", Path::new("hub.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("retry") && err.contains("reinject"), "{err}");
        let err = HubConfig::from_toml("[engine]\nverify_interval_ms = 5\n", Path::new("hub.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("engine.verify_interval_ms"), "{err}");
        for name in ["reinject", "fail", "ignore"] {
            assert_eq!(OnDrift::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(OnDrift::parse("Reinject"), None);
    }

    #[test]
    fn allowed_endpoints_are_checked_at_load() {
        let config = HubConfig::from_toml(
            "[security]\nallowed_endpoints = [\"10.0.0.0/8\", \"unix:///run/d.sock\"]\n",
            Path::new("hub.toml"),
        )
        .unwrap();
        assert_eq!(config.security.allowed_endpoints.len(), 2);
        let err = HubConfig::from_toml(
            "[security]\nallowed_endpoints = [\"10.0.0.0/33\"]\n",
            Path::new("hub.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("security.allowed_endpoints[0]") && err.contains("10.0.0.0/33"),
            "{err}"
        );
    }

    #[test]
    fn protected_selector_defaults_and_is_checked_at_load() {
        let config = HubConfig::from_toml("", Path::new("hub.toml")).unwrap();
        assert_eq!(
            config.security.protected_selector,
            "chaoshub.dev/protected=true"
        );
        let config = HubConfig::from_toml(
            "[security]\nprotected_selector = \"\"\n",
            Path::new("hub.toml"),
        )
        .unwrap();
        assert_eq!(config.security.protected_selector, "");
        let err = HubConfig::from_toml(
            "[security]\nprotected_selector = \"protected\"\n",
            Path::new("hub.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("security.protected_selector"), "{err}");
    }

    #[test]
    fn shipped_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/hub.example.toml");
        let config = HubConfig::load(&path).unwrap();
        assert!(!config.environments.is_empty());
        let replica =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/replicas/replica-example.toml");
        let config = HubConfig::load(&replica).unwrap();
        config.replica.check().unwrap();
        assert_eq!(config.replica.id.as_deref(), Some("hub-1"));
    }
}
