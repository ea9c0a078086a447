//! The `kubernetes` adapter: a Kubernetes cluster as an environment of the hub, through its API
//! server (kube-rs, rustls) (docs/adapters/kubernetes.md).
//!
//! - `config.rs`: the environment's settings (kubeconfig, context, namespaces, mode),
//!   validated without the network;
//! - `client.rs`: the client and the mapping of API errors;
//! - `cluster.rs`: what registration checks (version, Chaos Mesh's CRDs and served kinds,
//!   missing permissions through SelfSubjectAccessReview);
//! - `federation.rs`: Chaos Mesh kinds server-side applied unchanged, confirmed from Chaos
//!   Mesh's status, paused by its annotation, recovered by deletion past its finalizer;
//! - `native.rs` and `selector.rs`: pod faults the hub makes itself, with pods selected by
//!   Chaos Mesh's selector semantics.
//!
//! Two modes per environment (`settings.mode`): `chaos-mesh` (federation), `native`, and
//! `auto` (federation for a kind the cluster serves through Chaos Mesh's CRDs, native
//! otherwise). In federation Chaos Mesh's controller selects the pods, so the hub's one target
//! per experiment is the Chaos Mesh object and the pods come back as its records.

mod client;
mod cluster;
mod config;
mod federation;
mod native;
pub mod selector;

use std::time::Duration;

use async_trait::async_trait;
use chaoshub_schema::api::Capability;
use chaoshub_schema::{Manifest, Target, ValidationErrors};
use serde_json::{json, Value};

pub use client::Cluster;
pub use cluster::{
    ClusterReport, MissingPermission, ServedKind, CHAOS_MESH_GROUP, CHAOS_MESH_VERSION,
    FEDERATION_VERBS, NATIVE_POD_VERBS,
};
pub use config::{
    from_remote_cluster, KubernetesConfig, Mode, CONTEXT_ANNOTATION, DEFAULT_CONFIRM_TIMEOUT_MS,
    KNOWN_SETTINGS, KUBECONFIG_ANNOTATION,
};
pub use federation::{
    object_name, EXPERIMENT_UID_LABEL, FIELD_MANAGER, INJECTION_ID_LABEL, PAUSE_ANNOTATION,
    RECORDS_FINALIZER,
};

use crate::{
    Adapter, AdapterError, Environment, EnvironmentReport, FarSideMatch, FaultRequest, Injection,
    InjectionState, Selection,
};

pub const ADAPTER_TYPE: &str = "kubernetes";

/// How long one `watch_drift` call watches before it ends with an error (the hub drops it much
/// sooner and calls again while it still cares).
const DRIFT_WATCH_SPAN: Duration = Duration::from_secs(24 * 3600);

/// The target kind of a federated experiment: the Chaos Mesh object itself.
pub const FEDERATION_TARGET_KIND: &str = "chaos-mesh";

/// Every Chaos Mesh fault kind and action (from Chaos Mesh's CRDs): in federation Chaos Mesh
/// runs them, whichever they are.
const FEDERATION_CAPABILITIES: &[(&str, &[&str])] = &[
    (
        "NetworkChaos",
        &[
            "netem",
            "delay",
            "loss",
            "duplicate",
            "corrupt",
            "partition",
            "bandwidth",
        ],
    ),
    ("PodChaos", &["pod-kill", "pod-failure", "container-kill"]),
    ("StressChaos", &["cpu", "memory", "stress-ng"]),
    ("IOChaos", &["latency", "fault", "attrOverride", "mistake"]),
    ("TimeChaos", &["time-offset"]),
    ("HTTPChaos", &["abort", "delay", "replace", "patch"]),
    ("DNSChaos", &["error", "random"]),
    ("KernelChaos", &["fail-kern-request"]),
    ("BlockChaos", &["delay"]),
    (
        "JVMChaos",
        &[
            "latency",
            "return",
            "exception",
            "stress",
            "gc",
            "ruleData",
            "mysql",
        ],
    ),
    ("AWSChaos", &["ec2-stop", "ec2-restart", "detach-volume"]),
    ("GCPChaos", &["node-stop", "node-reset", "disk-loss"]),
    ("AzureChaos", &["vm-stop", "vm-restart", "disk-detach"]),
    (
        "PhysicalMachineChaos",
        &[
            "stress-cpu",
            "stress-mem",
            "disk-read-payload",
            "disk-write-payload",
            "disk-fill",
            "network-corrupt",
            "network-duplicate",
            "network-loss",
            "network-delay",
            "network-partition",
            "network-dns",
            "network-bandwidth",
            "network-flood",
            "network-down",
            "process",
            "jvm-exception",
            "jvm-gc",
            "jvm-latency",
            "jvm-return",
            "jvm-stress",
            "jvm-rule-data",
            "jvm-mysql",
            "clock",
            "redis-expiration",
            "redis-penetration",
            "redis-cacheLimit",
            "redis-restart",
            "redis-stop",
            "kafka-fill",
            "kafka-flood",
            "kafka-io",
            "file-create",
            "file-modify",
            "file-delete",
            "file-rename",
            "file-append",
            "file-replace",
            "vm",
            "user_defined",
        ],
    ),
];

/// What native mode runs.
const NATIVE_CAPABILITIES: &[(&str, &str)] = &[("PodChaos", "pod-kill")];

/// Kinds native mode would run in an ephemeral `chaos-agent` container (not built yet).
const AGENT_KINDS: &[&str] = &["NetworkChaos", "StressChaos"];

fn federation_runs(kind: &str) -> bool {
    FEDERATION_CAPABILITIES.iter().any(|(k, _)| *k == kind)
}

fn native_runs(kind: &str, action: &str) -> bool {
    NATIVE_CAPABILITIES.contains(&(kind, action))
}

/// Why native mode cannot run `kind`/`action`, for 422s.
fn native_gap(config: &KubernetesConfig, kind: &str, action: &str) -> String {
    if AGENT_KINDS.contains(&kind) {
        match &config.agent_image {
            None => format!(
                "native mode runs {kind} only in an ephemeral chaos-agent container, and the \
                 environment names no image for it: set spec.settings.agent_image to a \
                 chaos-agent image the cluster can pull, or install Chaos Mesh and use mode \
                 chaos-mesh (or auto)"
            ),
            Some(image) => format!(
                "native {kind} through an ephemeral chaos-agent container ({image}) is not \
                 implemented yet; install Chaos Mesh and use mode chaos-mesh (or auto)"
            ),
        }
    } else {
        format!(
            "native mode runs only {} (without Chaos Mesh); {kind}/{action} needs Chaos Mesh in \
             the cluster and mode chaos-mesh (or auto)",
            NATIVE_CAPABILITIES
                .iter()
                .map(|(k, a)| format!("{k}/{a}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Drives Kubernetes clusters. Holds no state: every call builds its client from the
/// environment, and each fault's record is its object in the cluster (named after the
/// injection id) or the pod it killed.
pub struct KubernetesAdapter;

impl KubernetesAdapter {
    pub fn new() -> Self {
        Self
    }

    async fn connect(env: &Environment) -> Result<(KubernetesConfig, Cluster), AdapterError> {
        let config =
            KubernetesConfig::from_environment(env).map_err(AdapterError::InvalidSettings)?;
        let cluster = Cluster::connect(&env.name, &config).await?;
        Ok((config, cluster))
    }

    /// The registration check: the server's version, Chaos Mesh's served kinds, and the
    /// permissions the credentials lack for the configured mode and namespaces.
    pub async fn cluster_report(&self, env: &Environment) -> Result<ClusterReport, AdapterError> {
        let (config, cluster) = Self::connect(env).await?;
        cluster::report(&cluster, &config, federation_runs).await
    }

    /// Which way `kind` runs in this environment: `Some(served kind)` for federation, `None`
    /// for native; an error when neither can.
    async fn route(
        config: &KubernetesConfig,
        cluster: &Cluster,
        kind: &str,
        actions: &[String],
    ) -> Result<Option<ServedKind>, AdapterError> {
        let unsupported = |message: String| AdapterError::Unsupported {
            kind: kind.to_string(),
            action: actions.join(","),
            message,
        };
        let native_ok = actions.iter().all(|a| native_runs(kind, a));
        if config.mode == Mode::Native {
            return if native_ok {
                Ok(None)
            } else {
                let action = actions.first().map(String::as_str).unwrap_or_default();
                Err(unsupported(native_gap(config, kind, action)))
            };
        }
        let served = cluster::served_kinds(cluster).await?;
        match served.into_iter().find(|s| s.kind == kind) {
            Some(served) => Ok(Some(served)),
            None if config.mode == Mode::Auto && native_ok => Ok(None),
            None => {
                let action = actions.first().map(String::as_str).unwrap_or_default();
                let mut message = format!(
                    "the cluster does not serve {kind} ({CHAOS_MESH_GROUP}/{CHAOS_MESH_VERSION}): \
                     Chaos Mesh's CRDs are not installed"
                );
                if config.mode == Mode::Auto {
                    message.push_str("; and ");
                    message.push_str(&native_gap(config, kind, action));
                }
                Err(unsupported(message))
            }
        }
    }

    /// The pods the manifest's selector matches, with Chaos Mesh's `PodSelectorSpec` semantics
    /// (`selector.rs`), in the namespaces the environment allows.
    async fn matching_pods(
        config: &KubernetesConfig,
        cluster: &Cluster,
        env: &Environment,
        manifest: &Manifest,
    ) -> Result<Vec<Target>, AdapterError> {
        let selector = manifest
            .fault()
            .and_then(|f| f.target_selector())
            .unwrap_or_default();
        let namespace = namespace_of(manifest);
        // Only the namespaces the selection can reach are read.
        let mut namespaces: Vec<String> = if !selector.names.is_empty() {
            selector.names.keys().cloned().collect()
        } else if selector.namespaces.is_empty() {
            vec![namespace.clone()]
        } else {
            selector.namespaces.clone()
        };
        namespaces.retain(|n| config.allows_namespace(n));
        if namespaces.is_empty() {
            return Ok(Vec::new());
        }
        let pods = native::list_pods(cluster, &namespaces).await?;
        let nodes = if selector.node_selectors.is_empty() {
            Vec::new()
        } else {
            native::list_nodes(cluster).await?
        };
        let picked = selector::select_pods(&selector, &namespace, &pods, &nodes);
        Ok(picked
            .into_iter()
            .map(|p| native::target_of(&env.name, p))
            .collect())
    }

    async fn set_paused(
        &self,
        env: &Environment,
        injection: &Injection,
        pause: bool,
    ) -> Result<(), AdapterError> {
        if injection.target.kind != FEDERATION_TARGET_KIND {
            return Err(AdapterError::Unsupported {
                kind: injection.kind.clone(),
                action: injection.actions.join(","),
                message: "only a fault federated to Chaos Mesh pauses in place".into(),
            });
        }
        let (config, cluster) = Self::connect(env).await?;
        let (served, namespace, name) = Self::object_of(&cluster, injection).await?;
        let api = federation::api(&cluster, &served, &namespace);
        let value = if pause { json!("true") } else { Value::Null };
        let patch = json!({"metadata": {"annotations": {PAUSE_ANNOTATION: value}}});
        let params = kube::api::PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        cluster
            .call(
                &format!(
                    "{} {namespace}/{name}",
                    if pause { "pausing" } else { "resuming" }
                ),
                api.patch(&name, &params, &kube::api::Patch::Merge(&patch)),
            )
            .await?;
        let what = if pause {
            format!("Chaos Mesh reports {namespace}/{name} paused")
        } else {
            format!("Chaos Mesh reports {namespace}/{name} injected again")
        };
        federation::wait_for(&cluster, &api, &name, config.confirm_timeout, &what, |o| {
            o.is_some_and(|o| {
                if pause {
                    federation::paused(o)
                } else {
                    federation::injected(o)
                }
            })
        })
        .await
        .map(drop)
    }

    /// The Chaos Mesh object of a federated injection: kind, namespace and name, from the
    /// stored details or, after a crash, from the target and the injection id alone.
    async fn object_of(
        cluster: &Cluster,
        injection: &Injection,
    ) -> Result<(ServedKind, String, String), AdapterError> {
        let namespace = injection
            .details
            .pointer("/object/namespace")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| injection.target.namespace.clone())
            .unwrap_or_else(|| "default".into());
        let name = object_name(&injection.injection_id);
        let served = cluster::served_kinds(cluster)
            .await?
            .into_iter()
            .find(|s| s.kind == injection.kind)
            .ok_or_else(|| {
                AdapterError::Failed(format!(
                    "the cluster no longer serves {} ({CHAOS_MESH_GROUP}): cannot reach object \
                     {namespace}/{name}; Chaos Mesh's CRDs were removed",
                    injection.kind
                ))
            })?;
        Ok((served, namespace, name))
    }

    async fn federate(
        &self,
        config: &KubernetesConfig,
        cluster: &Cluster,
        served: &ServedKind,
        fault: &FaultRequest,
        namespace: &str,
    ) -> Result<Value, AdapterError> {
        // Refused before anything is applied when the credentials may not do it.
        let mut denied = Vec::new();
        for verb in ["create", "patch"] {
            if !cluster::may(
                cluster,
                verb,
                CHAOS_MESH_GROUP,
                &served.resource,
                Some(namespace),
            )
            .await?
            {
                denied.push(verb);
            }
        }
        if !denied.is_empty() {
            return Err(AdapterError::Rejected(format!(
                "the credentials of environment {:?} may not {} {}.{CHAOS_MESH_GROUP} in \
                 namespace {namespace} (SelfSubjectAccessReview); nothing was applied",
                cluster.environment,
                denied.join(" or "),
                served.resource
            )));
        }
        let object = federation::desired_object(fault, namespace, false);
        let name = object_name(&fault.injection_id);
        let stored = federation::apply(cluster, served, namespace, &object).await?;
        let api = federation::api(cluster, served, namespace);
        // An object paused before (a pause, then a resume by re-injection) is unpaused.
        if stored
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(PAUSE_ANNOTATION))
        {
            let patch = json!({"metadata": {"annotations": {PAUSE_ANNOTATION: Value::Null}}});
            let params = kube::api::PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            cluster
                .call(
                    &format!("resuming {namespace}/{name}"),
                    api.patch(&name, &params, &kube::api::Patch::Merge(&patch)),
                )
                .await?;
        }
        let uid = stored.metadata.uid.clone().unwrap_or_default();
        let confirmed = federation::wait_for(
            cluster,
            &api,
            &name,
            config.confirm_timeout,
            &format!(
                "Chaos Mesh reports {} {namespace}/{name} injected",
                served.kind
            ),
            |o| o.is_some_and(federation::injected),
        )
        .await?;
        let confirmed = confirmed.unwrap_or(Value::Null);
        Ok(json!({
            "mode": "chaos-mesh",
            "object": {
                "apiVersion": format!("{CHAOS_MESH_GROUP}/{CHAOS_MESH_VERSION}"),
                "kind": served.kind,
                "resource": served.resource,
                "namespace": namespace,
                "name": name,
                "uid": uid,
            },
            "records": federation::records(&confirmed),
            "conditions": confirmed.pointer("/status/conditions").cloned().unwrap_or(Value::Null),
        }))
    }
}

impl Default for KubernetesAdapter {
    fn default() -> Self {
        Self::new()
    }
}

/// The experiment's namespace (Chaos Mesh's default for an empty `selector.namespaces`).
fn namespace_of(manifest: &Manifest) -> String {
    manifest.metadata.namespace_or_default().to_string()
}

#[async_trait]
impl Adapter for KubernetesAdapter {
    fn adapter_type(&self) -> &'static str {
        ADAPTER_TYPE
    }

    fn description(&self) -> &'static str {
        "Kubernetes clusters through their API server: Chaos Mesh kinds applied to a cluster \
         running Chaos Mesh (federation), or pod faults made by the hub itself (native)"
    }

    fn capabilities(&self) -> Vec<Capability> {
        let mut out: Vec<Capability> = FEDERATION_CAPABILITIES
            .iter()
            .flat_map(|(kind, actions)| actions.iter().map(|a| Capability::new(*kind, *a)))
            .collect();
        for (kind, action) in NATIVE_CAPABILITIES {
            let c = Capability::new(*kind, *action);
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }

    fn not_applicable(&self, kind: &str, _action: &str) -> Option<&'static str> {
        match kind {
            "ProxyChaos" => Some("toxics live in a Toxiproxy server, not in a cluster"),
            _ => None,
        }
    }

    fn capability_gap(&self, env: &Environment, capability: &Capability) -> Option<String> {
        let config = KubernetesConfig::from_environment(env).ok()?;
        (config.mode == Mode::Native && !native_runs(&capability.kind, &capability.action))
            .then(|| native_gap(&config, &capability.kind, &capability.action))
    }

    /// Chaos Mesh's `RemoteCluster`: a kubernetes environment of the same name
    /// (`config::from_remote_cluster`).
    fn environment_from(
        &self,
        manifest: &Manifest,
    ) -> Option<Result<chaoshub_schema::environment::EnvironmentSpec, ValidationErrors>> {
        match &manifest.spec {
            chaoshub_schema::Spec::RemoteCluster(spec) => {
                Some(config::from_remote_cluster(manifest, spec))
            }
            _ => None,
        }
    }

    fn validate_environment(&self, env: &Environment) -> Result<(), ValidationErrors> {
        KubernetesConfig::from_environment(env).map(drop)
    }

    /// The API server the hub will call: the `server` of the kubeconfig's context (read from
    /// the file, the one local read this makes), or the in-cluster service. A kubeconfig that
    /// cannot be read names why instead of a URL, which a locked-down allow list refuses.
    fn endpoints(&self, env: &Environment) -> Vec<(String, String)> {
        let Ok(config) = KubernetesConfig::from_environment(env) else {
            return Vec::new(); // refused by validate_environment, never called
        };
        match &config.kubeconfig {
            Some(path) => vec![(
                "spec.settings.kubeconfig".to_string(),
                client::api_server_of(path, config.context.as_deref())
                    .unwrap_or_else(|why| format!("unknown: {why}")),
            )],
            None => vec![(
                "spec.settings.kubeconfig".to_string(),
                client::in_cluster_server(),
            )],
        }
    }

    async fn environment_capabilities(
        &self,
        env: &Environment,
    ) -> Result<Vec<Capability>, AdapterError> {
        let (config, cluster) = Self::connect(env).await?;
        let report = cluster::report(&cluster, &config, federation_runs).await?;
        let mut out = Vec::new();
        if config.mode != Mode::Native {
            for (kind, actions) in FEDERATION_CAPABILITIES {
                let Some(served) = report.served(kind) else {
                    continue;
                };
                if report.allowed(CHAOS_MESH_GROUP, &served.resource, FEDERATION_VERBS) {
                    out.extend(actions.iter().map(|a| Capability::new(*kind, *a)));
                }
            }
        }
        if config.mode != Mode::ChaosMesh && report.allowed("", "pods", NATIVE_POD_VERBS) {
            for (kind, action) in NATIVE_CAPABILITIES {
                let c = Capability::new(*kind, *action);
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }

    /// The cluster check as the environment's status: the server and its version, whether
    /// Chaos Mesh is installed, its version and served kinds, and each missing permission.
    async fn environment_status(
        &self,
        env: &Environment,
    ) -> Result<Option<EnvironmentReport>, AdapterError> {
        let report = self.cluster_report(env).await?;
        let mut details = std::collections::BTreeMap::new();
        details.insert("server".into(), json!(report.server));
        details.insert("serverVersion".into(), json!(report.version));
        details.insert("mode".into(), json!(report.mode));
        details.insert("chaosMesh".into(), json!(report.chaos_mesh));
        match &report.chaos_mesh_version {
            Ok(version) => {
                details.insert("chaosMeshVersion".into(), json!(version));
            }
            Err(why) => {
                details.insert("chaosMeshVersion".into(), Value::Null);
                details.insert("chaosMeshVersionUnknown".into(), json!(why));
            }
        }
        details.insert(
            "servedKinds".into(),
            json!(report
                .served_kinds
                .iter()
                .map(|k| k.kind.as_str())
                .collect::<Vec<_>>()),
        );
        details.insert(
            "missingPermissions".into(),
            json!(report
                .missing_permissions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()),
        );
        Ok(Some(EnvironmentReport {
            details,
            problems: report.problems,
        }))
    }

    async fn discover(&self, env: &Environment) -> Result<Vec<Target>, AdapterError> {
        let (config, cluster) = Self::connect(env).await?;
        let pods = native::list_pods(&cluster, &config.namespaces).await?;
        Ok(pods
            .iter()
            .map(|p| native::target_of(&env.name, p))
            .collect())
    }

    async fn select(
        &self,
        env: &Environment,
        manifest: &Manifest,
    ) -> Result<Selection, AdapterError> {
        let (config, cluster) = Self::connect(env).await?;
        let kind = manifest.kind().as_str();
        let actions = manifest.fault().map(|f| f.actions()).unwrap_or_default();
        let namespace = namespace_of(manifest);
        if Self::route(&config, &cluster, kind, &actions)
            .await?
            .is_some()
        {
            // Chaos Mesh's controller selects from the manifest's own selector and mode.
            return Ok(Selection::Final(vec![Target {
                environment: env.name.clone(),
                adapter: ADAPTER_TYPE.into(),
                kind: FEDERATION_TARGET_KIND.into(),
                id: format!(
                    "{namespace}/{kind}/{}",
                    manifest.metadata.name.as_deref().unwrap_or_default()
                ),
                name: manifest
                    .metadata
                    .name
                    .clone()
                    .unwrap_or_else(|| kind.to_string()),
                namespace: Some(namespace),
                labels: Default::default(),
                annotations: Default::default(),
            }]));
        }
        Ok(Selection::Matched(
            Self::matching_pods(&config, &cluster, env, manifest).await?,
        ))
    }

    /// Chaos Mesh's selector over the cluster's pods, as Chaos Mesh's controller would select
    /// them before its mode (the same code native mode selects with).
    async fn preview_far_side(
        &self,
        env: &Environment,
        manifest: &Manifest,
    ) -> Result<Option<FarSideMatch>, AdapterError> {
        let (config, cluster) = Self::connect(env).await?;
        Ok(Some(FarSideMatch {
            selected_by: "Chaos Mesh".into(),
            matched: Self::matching_pods(&config, &cluster, env, manifest).await?,
        }))
    }

    fn check_fault(&self, env: &Environment, fault: &FaultRequest) -> Result<(), AdapterError> {
        let config =
            KubernetesConfig::from_environment(env).map_err(AdapterError::InvalidSettings)?;
        let kind = fault.kind();
        if config.mode == Mode::Native {
            if let Some(action) = fault.actions.iter().find(|a| !native_runs(kind, a)) {
                return Err(AdapterError::Unsupported {
                    kind: kind.into(),
                    action: action.clone(),
                    message: native_gap(&config, kind, action),
                });
            }
        }
        if !config.allows_namespace(&fault.namespace) {
            return Err(AdapterError::Rejected(format!(
                "namespace {:?} is not among environment {:?}'s namespaces ({})",
                fault.namespace,
                env.name,
                config.namespaces.join(", ")
            )));
        }
        if let Some(selector) = fault.manifest.fault().and_then(|f| f.target_selector()) {
            let outside: Vec<&String> = selector
                .namespaces
                .iter()
                .chain(selector.names.keys())
                .filter(|n| !config.allows_namespace(n))
                .collect();
            if !outside.is_empty() {
                return Err(AdapterError::Rejected(format!(
                    "the selector reaches namespace(s) {outside:?} outside environment {:?}'s \
                     namespaces ({})",
                    env.name,
                    config.namespaces.join(", ")
                )));
            }
        }
        Ok(())
    }

    async fn inject(
        &self,
        env: &Environment,
        fault: &FaultRequest,
        target: &Target,
    ) -> Result<Value, AdapterError> {
        let (config, cluster) = Self::connect(env).await?;
        if target.kind == FEDERATION_TARGET_KIND {
            let namespace = target
                .namespace
                .clone()
                .unwrap_or_else(|| fault.namespace.clone());
            let served = Self::route(&config, &cluster, fault.kind(), &fault.actions)
                .await?
                .ok_or_else(|| {
                    AdapterError::Failed(format!(
                        "{} no longer runs through Chaos Mesh in environment {:?}",
                        fault.kind(),
                        env.name
                    ))
                })?;
            return self
                .federate(&config, &cluster, &served, fault, &namespace)
                .await;
        }
        match (fault.kind(), fault.actions.as_slice()) {
            ("PodChaos", [action]) if action == "pod-kill" => {
                let grace = fault
                    .spec_value()
                    .get("gracePeriod")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                native::kill_pod(&cluster, target, grace).await
            }
            (kind, actions) => {
                let action = actions.first().cloned().unwrap_or_default();
                Err(AdapterError::Unsupported {
                    kind: kind.into(),
                    message: native_gap(&config, kind, &action),
                    action,
                })
            }
        }
    }

    async fn status(
        &self,
        env: &Environment,
        injection: &Injection,
    ) -> Result<InjectionState, AdapterError> {
        let (_, cluster) = Self::connect(env).await?;
        if injection.target.kind == FEDERATION_TARGET_KIND {
            let (served, namespace, name) = Self::object_of(&cluster, injection).await?;
            let api = federation::api(&cluster, &served, &namespace);
            let object = cluster
                .call(
                    &format!("reading {} {namespace}/{name}", served.kind),
                    api.get_opt(&name),
                )
                .await?
                .map(federation::to_value);
            let uid = injection
                .details
                .pointer("/object/uid")
                .and_then(Value::as_str);
            if let Some(drift) = federation::drift_of(object.as_ref(), uid) {
                return Ok(drift);
            }
            let object = object.unwrap_or_default();
            return Ok(if federation::injected(&object) {
                InjectionState::Active
            } else {
                InjectionState::Unknown(federation::describe(Some(&object)))
            });
        }
        Ok(if native::pod_killed(&cluster, &injection.target).await? {
            InjectionState::Active
        } else {
            InjectionState::Absent
        })
    }

    /// A federated injection is watched: its object, through the API server's watch.
    fn watches_drift(&self, injection: &Injection) -> bool {
        injection.target.kind == FEDERATION_TARGET_KIND
    }

    /// Watches the one object (field selector on its name) until it is deleted, paused, being
    /// deleted, recreated, or its spec is changed by another field manager — the same rule as
    /// `status` (`federation::drift_of`).
    async fn watch_drift(
        &self,
        env: &Environment,
        injection: &Injection,
    ) -> Result<String, AdapterError> {
        if injection.target.kind != FEDERATION_TARGET_KIND {
            return Err(AdapterError::Unsupported {
                kind: injection.kind.clone(),
                action: injection.actions.join(","),
                message: "only a fault federated to Chaos Mesh is watched".into(),
            });
        }
        let (_, cluster) = Self::connect(env).await?;
        let (served, namespace, name) = Self::object_of(&cluster, injection).await?;
        let api = federation::api(&cluster, &served, &namespace);
        let uid = injection
            .details
            .pointer("/object/uid")
            .and_then(Value::as_str);
        let seen = federation::wait_for(
            &cluster,
            &api,
            &name,
            DRIFT_WATCH_SPAN,
            &format!("{} {namespace}/{name} drifts", served.kind),
            |o| federation::drift_of(o, uid).is_some(),
        )
        .await?;
        let state = federation::drift_of(seen.as_ref(), uid).unwrap_or(InjectionState::Absent);
        Ok(format!(
            "{} {namespace}/{name}: {}",
            served.kind,
            federation::drift_message(seen.as_ref(), &state)
        ))
    }

    /// A federated injection pauses in place: Chaos Mesh's pause annotation on its object.
    fn pauses_in_place(&self, injection: &Injection) -> bool {
        injection.target.kind == FEDERATION_TARGET_KIND
    }

    /// Sets Chaos Mesh's pause annotation and waits until Chaos Mesh reports `Paused`.
    async fn pause(&self, env: &Environment, injection: &Injection) -> Result<(), AdapterError> {
        self.set_paused(env, injection, true).await
    }

    /// Removes the pause annotation and waits until Chaos Mesh reports the fault injected again.
    async fn resume(&self, env: &Environment, injection: &Injection) -> Result<(), AdapterError> {
        self.set_paused(env, injection, false).await
    }

    async fn recover(&self, env: &Environment, injection: &Injection) -> Result<(), AdapterError> {
        if injection.target.kind != FEDERATION_TARGET_KIND {
            // A killed pod is not brought back (its controller recreates it), as in Chaos Mesh.
            return Ok(());
        }
        let (config, cluster) = Self::connect(env).await?;
        let (served, namespace, name) = match Self::object_of(&cluster, injection).await {
            Ok(found) => found,
            // Nothing can exist of a kind the cluster does not serve.
            Err(AdapterError::Failed(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        federation::delete_and_wait(
            &cluster,
            &served,
            &namespace,
            &name,
            config.confirm_timeout.max(Duration::from_secs(1)),
        )
        .await
    }
}
