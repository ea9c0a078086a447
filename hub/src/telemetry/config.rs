//! The `[telemetry]` section of `hub.toml` and its resolution against the standard
//! `OTEL_EXPORTER_OTLP_*` / `OTEL_SERVICE_NAME` / `OTEL_SDK_DISABLED` variables.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Default service name of the hub's telemetry (`service.name`).
pub const DEFAULT_SERVICE_NAME: &str = "chaoshub";

/// `[telemetry]`: where OpenTelemetry logs (the event log) and traces (one per experiment) go.
/// Without an endpoint here or in the environment nothing is exported.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP endpoint. For `http/protobuf` the base URL of the collector
    /// (`http://collector:4318`; `/v1/logs` and `/v1/traces` are appended); for `grpc` the
    /// collector's address (`http://collector:4317`). Default: `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (or the per-signal `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` / `..._TRACES_ENDPOINT`), else none.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `http/protobuf` or `grpc`. Default: `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// `service.name` of the exported resource. Default: `OTEL_SERVICE_NAME`, else `chaoshub`.
    #[serde(default)]
    pub service_name: Option<String>,
    /// Extra headers (HTTP) or metadata (gRPC) sent with every export, e.g. an API key.
    /// `OTEL_EXPORTER_OTLP_HEADERS` is honoured as well.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How long one export may take. Default: `OTEL_EXPORTER_OTLP_TIMEOUT`, else 10000 ms.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The wire protocol of the OTLP exporters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    HttpProtobuf,
    Grpc,
}

impl OtlpProtocol {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "http/protobuf" | "http" => Some(Self::HttpProtobuf),
            "grpc" => Some(Self::Grpc),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpProtobuf => "http/protobuf",
            Self::Grpc => "grpc",
        }
    }
}

/// Where each signal goes. `None` for an endpoint means "let the exporter read the standard
/// variables" (which it does, including the per-signal ones).
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSettings {
    pub protocol: OtlpProtocol,
    pub logs_endpoint: Option<String>,
    pub traces_endpoint: Option<String>,
    pub service_name: String,
    pub headers: BTreeMap<String, String>,
    pub timeout_ms: Option<u64>,
}

const ENDPOINT_VARS: [&str; 3] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

impl TelemetryConfig {
    /// Checks what serde cannot; errors name the field.
    pub fn check(&self) -> Result<(), String> {
        if let Some(p) = &self.protocol {
            if OtlpProtocol::parse(p).is_none() {
                return Err(format!(
                    "telemetry.protocol: {p:?} is not one of http/protobuf, grpc"
                ));
            }
        }
        if let Some(e) = &self.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(format!(
                    "telemetry.endpoint: {e:?} is not a URL like http://collector:4318"
                ));
            }
        }
        if self.service_name.as_deref() == Some("") {
            return Err("telemetry.service_name: must not be empty".into());
        }
        if self.timeout_ms == Some(0) {
            return Err("telemetry.timeout_ms: must be at least 1".into());
        }
        Ok(())
    }

    /// Resolves the config against the process environment; `None` when nothing is to be
    /// exported.
    pub fn resolve(&self) -> Result<Option<OtlpSettings>, String> {
        self.resolve_with(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// [`resolve`](Self::resolve) with the environment given as a lookup (for tests).
    pub fn resolve_with(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpSettings>, String> {
        self.check()?;
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let from_env = ENDPOINT_VARS.iter().any(|v| env(v).is_some());
        if self.endpoint.is_none() && !from_env {
            return Ok(None);
        }
        let protocol = match &self.protocol {
            Some(p) => OtlpProtocol::parse(p).unwrap_or(OtlpProtocol::HttpProtobuf),
            None => match env("OTEL_EXPORTER_OTLP_PROTOCOL") {
                Some(p) => OtlpProtocol::parse(&p).ok_or_else(|| {
                    format!("OTEL_EXPORTER_OTLP_PROTOCOL: {p:?} is not one of http/protobuf, grpc")
                })?,
                None => OtlpProtocol::HttpProtobuf,
            },
        };
        let (logs_endpoint, traces_endpoint) = match (&self.endpoint, protocol) {
            (Some(base), OtlpProtocol::HttpProtobuf) => {
                let base = base.trim_end_matches('/');
                (
                    Some(format!("{base}/v1/logs")),
                    Some(format!("{base}/v1/traces")),
                )
            }
            (Some(addr), OtlpProtocol::Grpc) => (Some(addr.clone()), Some(addr.clone())),
            (None, _) => (None, None),
        };
        let service_name = self
            .service_name
            .clone()
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
        Ok(Some(OtlpSettings {
            protocol,
            logs_endpoint,
            traces_endpoint,
            service_name,
            headers: self.headers.clone(),
            timeout_ms: self.timeout_ms,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        assert_eq!(TelemetryConfig::default().resolve_with(no_env), Ok(None));
    }

    #[test]
    fn http_endpoint_gets_signal_paths() {
        let c = TelemetryConfig {
            endpoint: Some("http://collector:4318/".into()),
            ..Default::default()
        };
        let s = c.resolve_with(no_env).unwrap().unwrap();
        assert_eq!(s.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(
            s.logs_endpoint.as_deref(),
            Some("http://collector:4318/v1/logs")
        );
        assert_eq!(
            s.traces_endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(s.service_name, "chaoshub");
    }

    #[test]
    fn standard_variables_enable_export() {
        let env = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://c:4317".to_string()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".to_string()),
            "OTEL_SERVICE_NAME" => Some("hub-a".to_string()),
            _ => None,
        };
        let s = TelemetryConfig::default()
            .resolve_with(env)
            .unwrap()
            .unwrap();
        assert_eq!(s.protocol, OtlpProtocol::Grpc);
        // The exporter itself reads the endpoint variables.
        assert_eq!(s.logs_endpoint, None);
        assert_eq!(s.service_name, "hub-a");
    }

    #[test]
    fn sdk_disabled_wins() {
        let env = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://c:4317".to_string()),
            "OTEL_SDK_DISABLED" => Some("true".to_string()),
            _ => None,
        };
        let c = TelemetryConfig {
            endpoint: Some("http://x:4318".into()),
            ..Default::default()
        };
        assert_eq!(c.resolve_with(env), Ok(None));
    }

    #[test]
    fn hub_toml_section_parses_and_is_checked() {
        let path = std::path::Path::new("hub.toml");
        let c = crate::config::HubConfig::from_toml(
            "[telemetry]\nendpoint = \"http://127.0.0.1:4317\"\nprotocol = \"grpc\"\nservice_name = \"hub-a\"\ntimeout_ms = 500\nheaders = { \"x-api-key\" = \"k\" }\n",
            path,
        )
        .unwrap();
        assert_eq!(c.telemetry.protocol.as_deref(), Some("grpc"));
        assert_eq!(c.telemetry.headers["x-api-key"], "k");
        let err = crate::config::HubConfig::from_toml(
            "[telemetry]\nendpoint = \"http://c:4318\"\nprotocl = \"grpc\"\n",
            path,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("protocl"), "{err}");
        let err = crate::config::HubConfig::from_toml("[telemetry]\nprotocol = \"udp\"\n", path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("telemetry.protocol"), "{err}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let c = TelemetryConfig {
            endpoint: Some("http://x:4318".into()),
            protocol: Some("http/json".into()),
            ..Default::default()
        };
        let err = c.resolve_with(no_env).unwrap_err();
        assert!(err.contains("telemetry.protocol"), "{err}");
        let c = TelemetryConfig {
            endpoint: Some("collector:4318".into()),
            ..Default::default()
        };
        assert!(c.check().unwrap_err().contains("telemetry.endpoint"));
        let env = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://c:4317".to_string()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("thrift".to_string()),
            _ => None,
        };
        let err = TelemetryConfig::default().resolve_with(env).unwrap_err();
        assert!(err.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{err}");
    }
}
