//! The connection to a cluster: a kube-rs client built from the environment's kubeconfig and
//! context (or the in-cluster service account), and the mapping of its errors onto
//! `AdapterError`.

use std::collections::HashMap;
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

/// The `server` of the cluster a kubeconfig's context (or its current context) points at.
///
/// Asked at every submission (the endpoint allow list checks it), so the answer is kept per
/// file and context and read again only when the file's modification time or size changes.
pub fn api_server_of(path: &std::path::Path, context: Option<&str>) -> Result<String, String> {
    type Key = (std::path::PathBuf, Option<String>);
    type Seen = (Option<std::time::SystemTime>, u64, String);
    static CACHE: std::sync::LazyLock<std::sync::Mutex<HashMap<Key, Seen>>> =
        std::sync::LazyLock::new(Default::default);
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
    let stamp = (meta.modified().ok(), meta.len());
    let key = (path.to_path_buf(), context.map(str::to_string));
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((modified, len, server)) = cache.get(&key) {
        if stamp.0.is_some() && (*modified, *len) == stamp {
            return Ok(server.clone());
        }
    }
    let server = read_api_server(path, context)?;
    if cache.len() >= 256 {
        cache.clear();
    }
    cache.insert(key, (stamp.0, stamp.1, server.clone()));
    Ok(server)
}

fn read_api_server(path: &std::path::Path, context: Option<&str>) -> Result<String, String> {
    let kubeconfig = Kubeconfig::read_from(path)
        .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
    let name = context
        .map(str::to_string)
        .or_else(|| kubeconfig.current_context.clone())
        .ok_or_else(|| format!("kubeconfig {} names no current context", path.display()))?;
    let cluster = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .ok_or_else(|| format!("kubeconfig {} has no context {name:?}", path.display()))?;
    kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .ok_or_else(|| {
            format!(
                "kubeconfig {} has no server for cluster {cluster:?}",
                path.display()
            )
        })
}

/// The API server a pod reaches through its service account's environment.
pub fn in_cluster_server() -> String {
    match (
        std::env::var("KUBERNETES_SERVICE_HOST"),
        std::env::var("KUBERNETES_SERVICE_PORT"),
    ) {
        (Ok(host), Ok(port)) if host.contains(':') => format!("https://[{host}]:{port}"),
        (Ok(host), Ok(port)) => format!("https://{host}:{port}"),
        _ => "https://kubernetes.default.svc".to_string(),
    }
}

/// The HTTP status of an API error, if the server answered one.
pub fn api_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_server_is_read_from_the_context_the_environment_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: dev\nclusters:\n- name: dev-cluster\n  cluster: {server: 'https://127.0.0.1:6443'}\n- name: prod-cluster\n  cluster: {server: 'https://10.20.0.1:443'}\ncontexts:\n- name: dev\n  context: {cluster: dev-cluster, user: me}\n- name: prod\n  context: {cluster: prod-cluster, user: me}\nusers:\n- name: me\n  user: {token: x}\n",
        )
        .unwrap();
        assert_eq!(
            api_server_of(&path, None).unwrap(),
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            api_server_of(&path, Some("prod")).unwrap(),
            "https://10.20.0.1:443"
        );
        let missing = api_server_of(&path, Some("qa")).unwrap_err();
        assert!(missing.contains("no context \"qa\""), "{missing}");
        let unreadable = api_server_of(&dir.path().join("nope"), None).unwrap_err();
        assert!(
            unreadable.contains("cannot read kubeconfig"),
            "{unreadable}"
        );
    }
}
