//! The connection to a cluster: a kube-rs client built from the environment's kubeconfig and
//! context (or the in-cluster service account), and the mapping of its errors onto
//! `AdapterError`.

use std::future::Future;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::config::KubernetesConfig;
use crate::AdapterError;

/// How long one API request may take (watches have their own bound).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for one environment, with what error messages need.
#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    pub environment: String,
    /// The API server's URL, for messages.
    pub server: String,
}

impl Cluster {
    /// Builds the client (reads the kubeconfig file; does not touch the network).
    pub async fn connect(env_name: &str, config: &KubernetesConfig) -> Result<Self, AdapterError> {
        let mut client_config = match &config.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                    AdapterError::Failed(format!(
                        "environment {env_name:?}: cannot read kubeconfig {}: {e}",
                        path.display()
                    ))
                })?;
                let options = KubeConfigOptions {
                    context: config.context.clone(),
                    cluster: None,
                    user: None,
                };
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| {
                        AdapterError::Failed(format!(
                            "environment {env_name:?}: kubeconfig {} (context {}) is unusable: {e}",
                            path.display(),
                            config.context.as_deref().unwrap_or("<current>")
                        ))
                    })?
            }
            None => kube::Config::incluster().map_err(|e| {
                AdapterError::Failed(format!(
                    "environment {env_name:?} names no kubeconfig and the hub is not running in a \
                     pod with a service account ({e}); set spec.settings.kubeconfig"
                ))
            })?,
        };
        client_config.connect_timeout = Some(CONNECT_TIMEOUT);
        let server = client_config.cluster_url.to_string();
        let client = kube::Client::try_from(client_config).map_err(|e| {
            AdapterError::Failed(format!(
                "environment {env_name:?}: cannot build a client for {server}: {e}"
            ))
        })?;
        Ok(Self {
            client,
            environment: env_name.to_string(),
            server,
        })
    }

    /// Runs one request with the request timeout, mapping its error with `context`.
    pub async fn call<T>(
        &self,
        context: &str,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, AdapterError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.error(context, e)),
            Err(_) => Err(AdapterError::Unreachable {
                environment: self.environment.clone(),
                endpoint: self.server.clone(),
                message: format!(
                    "{context}: no answer within {} s",
                    REQUEST_TIMEOUT.as_secs()
                ),
            }),
        }
    }

    /// An API error keeps its status code and message; anything else means the server could
    /// not be reached.
    pub fn error(&self, context: &str, error: kube::Error) -> AdapterError {
        match error {
            kube::Error::Api(status) => {
                let message = format!(
                    "{context}: the API server answered {} {}: {}",
                    status.code, status.reason, status.message
                );
                match status.code {
                    403 | 409 | 422 => AdapterError::Rejected(message),
                    _ => AdapterError::Failed(message),
                }
            }
            other => AdapterError::Unreachable {
                environment: self.environment.clone(),
                endpoint: self.server.clone(),
                message: format!("{context}: {other}"),
            },
        }
    }
}

/// The HTTP status of an API error, if the server answered one.
pub fn api_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}
