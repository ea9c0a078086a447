//! Settings of a `kubernetes` environment, validated purely (no network, no file read).
//!
//! ```yaml
//! spec:
//!   adapter: kubernetes
//!   settings:
//!     kubeconfig: /etc/chaoshub/staging.kubeconfig  # absent: the hub's in-cluster service account
//!     context: staging                              # absent: the kubeconfig's current context
//!     namespaces: [shop, payments]                  # absent: every namespace the token may see
//!     mode: auto                                    # chaos-mesh | native | auto (default auto)
//!     agent_image: registry.example/chaos-agent:0.1 # native NetworkChaos / StressChaos (not yet run)
//!     confirm_timeout_ms: 30000                     # how long inject waits for Chaos Mesh (default 30000)
//! ```

use std::path::PathBuf;
use std::time::Duration;

use chaoshub_schema::ValidationErrors;
use serde_json::Value;

use crate::settings::{integer_setting, json_type, reject_unknown, string_setting};
use crate::Environment;

/// Every key `spec.settings` may hold, in the order error messages list them.
pub const KNOWN_SETTINGS: &[&str] = &[
    "kubeconfig",
    "context",
    "namespaces",
    "mode",
    "agent_image",
    "confirm_timeout_ms",
];

pub const DEFAULT_CONFIRM_TIMEOUT_MS: u64 = 30_000;
const MAX_CONFIRM_TIMEOUT_MS: u64 = 600_000;

/// How faults reach the cluster (`settings.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Chaos Mesh kinds are applied to the cluster and Chaos Mesh injects them.
    ChaosMesh,
    /// The hub acts on pods itself; Chaos Mesh is not needed.
    Native,
    /// Federation for a kind the cluster serves through Chaos Mesh's CRDs, native otherwise.
    #[default]
    Auto,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChaosMesh => "chaos-mesh",
            Self::Native => "native",
            Self::Auto => "auto",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "chaos-mesh" => Some(Self::ChaosMesh),
            "native" => Some(Self::Native),
            "auto" => Some(Self::Auto),
            _ => None,
        }
    }
}

/// A Kubernetes environment's settings, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesConfig {
    /// `None`: the in-cluster configuration (service account token and CA of the hub's pod).
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// The namespaces the hub may act in; empty: any namespace the credentials allow.
    pub namespaces: Vec<String>,
    pub mode: Mode,
    pub agent_image: Option<String>,
    pub confirm_timeout: Duration,
}

impl KubernetesConfig {
    /// Reads and validates an environment's settings, reporting every problem with its path.
    pub fn from_environment(env: &Environment) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if env.spec.endpoint.is_some() {
            errors.push(
                "spec.endpoint",
                "a kubernetes environment is reached through spec.settings.kubeconfig (and \
                 context), not an endpoint; remove spec.endpoint",
            );
        }
        let settings = &env.spec.settings;
        reject_unknown(settings, KNOWN_SETTINGS, &mut errors);
        let kubeconfig =
            string_setting(settings, "kubeconfig", &mut errors).map(|path| PathBuf::from(&path));
        if let Some(path) = &kubeconfig {
            if !path.is_absolute() {
                errors.push(
                    "spec.settings.kubeconfig",
                    format!(
                        "must be an absolute path (the hub's working directory is not the \
                         caller's), got {:?}",
                        path.display()
                    ),
                );
            }
        }
        let context = string_setting(settings, "context", &mut errors);
        let namespaces = match settings.get("namespaces") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut names = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(name) if is_dns_label(name) => names.push(name.to_string()),
                        Some(name) => errors.push(
                            format!("spec.settings.namespaces[{i}]"),
                            format!(
                                "{name:?} is not a namespace name (lowercase letters, digits and \
                                 '-', at most 63 characters)"
                            ),
                        ),
                        None => errors.push(
                            format!("spec.settings.namespaces[{i}]"),
                            format!("must be a string, got {}", json_type(item)),
                        ),
                    }
                }
                names
            }
            Some(other) => {
                errors.push(
                    "spec.settings.namespaces",
                    format!(
                        "must be a list of namespace names, got {}",
                        json_type(other)
                    ),
                );
                Vec::new()
            }
        };
        let mode = match string_setting(settings, "mode", &mut errors) {
            None => Mode::default(),
            Some(text) => Mode::parse(&text).unwrap_or_else(|| {
                errors.push(
                    "spec.settings.mode",
                    format!("must be one of chaos-mesh, native, auto; got {text:?}"),
                );
                Mode::default()
            }),
        };
        let agent_image = string_setting(settings, "agent_image", &mut errors);
        let confirm_timeout_ms = integer_setting(
            settings,
            "confirm_timeout_ms",
            1,
            MAX_CONFIRM_TIMEOUT_MS,
            &mut errors,
        )
        .unwrap_or(DEFAULT_CONFIRM_TIMEOUT_MS);
        errors.into_result()?;
        Ok(Self {
            kubeconfig,
            context,
            namespaces,
            mode,
            agent_image,
            confirm_timeout: Duration::from_millis(confirm_timeout_ms),
        })
    }

    /// Whether the environment lets the hub act in `namespace`.
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
    }
}

/// A DNS-1123 label: what Kubernetes accepts as a namespace name.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Annotation of a Chaos Mesh `RemoteCluster` naming the kubeconfig file on the hub's host
/// (an absolute path) the hub reads for it: Chaos Mesh's own `spec.kubeConfig.secretRef` names
/// a Secret in a cluster, which the hub cannot read.
pub const KUBECONFIG_ANNOTATION: &str = "chaoshub.dev/kubeconfig";
/// Annotation of a `RemoteCluster` naming the kubeconfig's context (default: its current one).
pub const CONTEXT_ANNOTATION: &str = "chaoshub.dev/context";

/// The `kubernetes` environment a Chaos Mesh `RemoteCluster` registers, named as it is: its
/// kubeconfig from the annotation [`KUBECONFIG_ANNOTATION`] (and the context from
/// [`CONTEXT_ANNOTATION`]), mode `auto`. Without the annotation the manifest is refused naming
/// `spec.kubeConfig.secretRef`, the Secret the hub cannot read, and what to do instead. Pure:
/// no file is read here.
pub fn from_remote_cluster(
    manifest: &chaoshub_schema::Manifest,
    spec: &chaoshub_schema::chaosmesh::RemoteClusterSpec,
) -> Result<chaoshub_schema::environment::EnvironmentSpec, ValidationErrors> {
    let annotations = &manifest.metadata.annotations;
    let field = |key: &str| format!("metadata.annotations[\"{key}\"]");
    let secret = &spec.kube_config.secret_ref;
    let Some(path) = annotations.get(KUBECONFIG_ANNOTATION) else {
        return Err(ValidationErrors::single(
            "spec.kubeConfig.secretRef",
            format!(
                "the hub cannot read Secret {}/{} (key {:?}): it reads kubeconfigs from files on \
                 its own host, not from a cluster's Secrets; put the kubeconfig in a file the hub \
                 can read and name it with annotation {KUBECONFIG_ANNOTATION}: /absolute/path \
                 (the secretRef may stay, for Chaos Mesh)",
                secret.namespace, secret.name, secret.key
            ),
        ));
    };
    let mut errors = ValidationErrors::new();
    if !std::path::Path::new(path).is_absolute() {
        errors.push(
            field(KUBECONFIG_ANNOTATION),
            format!("{path:?} must be an absolute path to a kubeconfig on the hub's host"),
        );
    }
    let context = annotations.get(CONTEXT_ANNOTATION);
    if context.is_some_and(|c| c.trim().is_empty()) {
        errors.push(field(CONTEXT_ANNOTATION), "must not be empty when given");
    }
    errors.into_result()?;
    let mut settings = serde_json::Map::new();
    settings.insert("kubeconfig".into(), path.clone().into());
    if let Some(context) = context {
        settings.insert("context".into(), context.clone().into());
    }
    Ok(chaoshub_schema::environment::EnvironmentSpec {
        adapter: super::ADAPTER_TYPE.into(),
        endpoint: None,
        description: Some(format!(
            "Chaos Mesh RemoteCluster (Chaos Mesh in namespace {})",
            spec.namespace
        )),
        labels: Default::default(),
        settings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaoshub_schema::environment::EnvironmentSpec;
    use serde_json::json;

    fn env(settings: Value) -> Environment {
        Environment {
            name: "k".into(),
            spec: EnvironmentSpec {
                adapter: "kubernetes".into(),
                endpoint: None,
                description: None,
                labels: Default::default(),
                settings: settings.as_object().cloned().unwrap_or_default(),
            },
        }
    }

    #[test]
    fn defaults_and_every_setting() {
        let config = KubernetesConfig::from_environment(&env(json!({}))).unwrap();
        assert_eq!(config.mode, Mode::Auto);
        assert!(config.kubeconfig.is_none() && config.namespaces.is_empty());
        assert_eq!(config.confirm_timeout, Duration::from_secs(30));
        let config = KubernetesConfig::from_environment(&env(json!({
            "kubeconfig": "/etc/k.yaml", "context": "staging", "namespaces": ["a", "b-2"],
            "mode": "chaos-mesh", "agent_image": "img:1", "confirm_timeout_ms": 500
        })))
        .unwrap();
        assert_eq!(config.mode, Mode::ChaosMesh);
        assert_eq!(config.namespaces, ["a", "b-2"]);
        assert!(config.allows_namespace("a") && !config.allows_namespace("c"));
        assert_eq!(config.context.as_deref(), Some("staging"));
        assert_eq!(config.agent_image.as_deref(), Some("img:1"));
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut bad = env(json!({
            "kubeconfig": "relative.yaml", "namespaces": ["Bad_NS", 3], "mode": "federate",
            "context": "", "confirm_timeout_ms": 0, "token": "x"
        }));
        bad.spec.endpoint = Some("https://k:6443".into());
        let errors = KubernetesConfig::from_environment(&bad).unwrap_err();
        let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
        for path in [
            "spec.endpoint",
            "spec.settings.token",
            "spec.settings.kubeconfig",
            "spec.settings.context",
            "spec.settings.namespaces[0]",
            "spec.settings.namespaces[1]",
            "spec.settings.mode",
            "spec.settings.confirm_timeout_ms",
        ] {
            assert!(paths.contains(&path), "{path} missing from {paths:?}");
        }
    }
}
