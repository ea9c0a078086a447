//! The connection to a Docker engine: bollard with the API version negotiated down to what the
//! engine speaks, and the mapping of bollard's errors onto `AdapterError`.

use bollard::errors::Error as BollardError;
use bollard::{ClientVersion, Docker};

use super::config::{DockerConfig, DockerEndpoint};
use crate::{AdapterError, Environment};

/// The oldest engine API the adapter is written against (Docker 20.10). Older engines lack
/// fields the adapter reads back to confirm faults, so they are refused with a clear message.
const MIN_API: (usize, usize) = (1, 41);

/// A connected, version-negotiated engine client for one environment.
#[derive(Clone)]
pub struct DockerClient {
    docker: Docker,
    environment: String,
    config: DockerConfig,
}

/// Whether an error means the engine could not be reached at all.
fn is_transport(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::SocketNotFoundError(_)
            | BollardError::IOError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::HyperLegacyError { .. }
            | BollardError::HttpClientError { .. }
            | BollardError::RequestTimeoutError
    )
}

/// The HTTP status of an engine error answer, if it is one.
pub fn status_of(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

pub fn is_not_found(e: &BollardError) -> bool {
    status_of(e) == Some(404)
}

/// 304: the container already is in the state asked for (started, stopped).
pub fn is_not_modified(e: &BollardError) -> bool {
    status_of(e) == Some(304)
}

pub fn is_conflict(e: &BollardError) -> bool {
    status_of(e) == Some(409)
}

/// An error with its chain of causes (`client error (SendRequest): … invalid peer certificate`),
/// since a transport error's own text rarely says what went wrong.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// The engine's own message, without bollard's wrapping.
pub fn message_of(e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

impl DockerClient {
    /// Connects and negotiates the API version; an engine that cannot be reached is
    /// `Unreachable` (HTTP 503 at the API edge).
    pub async fn connect(env: &Environment) -> Result<Self, AdapterError> {
        let config = DockerConfig::from_environment(env).map_err(AdapterError::InvalidSettings)?;
        let unreachable = |message: String| AdapterError::Unreachable {
            environment: env.name.clone(),
            endpoint: config.endpoint.to_string(),
            message,
        };
        let timeout = config.timeout.as_secs();
        let docker = match &config.endpoint {
            DockerEndpoint::Unix(path) => {
                Docker::connect_with_unix(path, timeout, bollard::API_DEFAULT_VERSION)
            }
            DockerEndpoint::Tcp(addr) => Docker::connect_with_http(
                &format!("tcp://{addr}"),
                timeout,
                bollard::API_DEFAULT_VERSION,
            ),
            DockerEndpoint::Tls { addr, files } => {
                // bollard reads the files itself; a missing one would surface as a TLS error
                // naming nothing, so they are checked here first.
                for (key, path) in [
                    ("tls_ca", &files.ca),
                    ("tls_cert", &files.cert),
                    ("tls_key", &files.key),
                ] {
                    if let Err(e) = std::fs::metadata(path) {
                        return Err(AdapterError::Failed(format!(
                            "spec.settings.{key}: cannot read {}: {e}",
                            path.display()
                        )));
                    }
                }
                Docker::connect_with_ssl(
                    &format!("https://{addr}"),
                    &files.key,
                    &files.cert,
                    &files.ca,
                    timeout,
                    bollard::API_DEFAULT_VERSION,
                )
            }
        }
        .map_err(|e| unreachable(with_causes(&e)))?;
        let docker = docker.negotiate_version().await.map_err(|e| {
            if is_transport(&e) {
                unreachable(with_causes(&e))
            } else {
                unreachable(format!(
                    "the endpoint did not answer like a Docker engine: {e}"
                ))
            }
        })?;
        let ClientVersion {
            major_version,
            minor_version,
        } = docker.client_version();
        if (major_version, minor_version) < MIN_API {
            return Err(AdapterError::Failed(format!(
                "Docker engine at {} speaks API {major_version}.{minor_version}; chaoshub needs \
                 {}.{} (Docker 20.10) or newer",
                config.endpoint, MIN_API.0, MIN_API.1
            )));
        }
        Ok(Self {
            docker,
            environment: env.name.clone(),
            config,
        })
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub fn config(&self) -> &DockerConfig {
        &self.config
    }

    pub fn api_version(&self) -> String {
        let v = self.docker.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }

    /// Maps an engine error onto the adapter's error, naming what was being done.
    pub fn error(&self, context: &str, e: BollardError) -> AdapterError {
        if is_transport(&e) {
            return AdapterError::Unreachable {
                environment: self.environment.clone(),
                endpoint: self.config.endpoint.to_string(),
                message: format!("{context}: {e}"),
            };
        }
        match status_of(&e) {
            Some(400 | 404 | 409) => {
                AdapterError::Rejected(format!("{context}: {}", message_of(&e)))
            }
            _ => AdapterError::Failed(format!("{context}: {}", message_of(&e))),
        }
    }
}
