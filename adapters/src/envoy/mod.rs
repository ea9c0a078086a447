//! The `envoy` adapter: HTTPChaos abort / delay (and a response throughput limit) through
//! Envoy's HTTP fault filter, switched on and off with runtime overrides over the admin API
//! (docs/adapters/envoy.md).
//!
//! - `config.rs`: the environment's admin endpoint and settings, validated without the network;
//! - `admin.rs`: the admin API calls (`/runtime`, `/runtime_modify`, `/config_dump`, …);
//! - `discovery.rs`: listeners → HTTP connection managers → fault filters (pure);
//! - `fault.rs`: HTTPChaos → runtime keys (pure).
//!
//! Statelessness and crash safety: the injection writes, in the same `/runtime_modify` call as
//! the fault's keys, a journal key `chaoshub.injection.<injection id>` into Envoy's admin layer
//! holding the keys it set and their previous admin-layer values. Recovery reads it back from
//! Envoy (or from the stored details), so even when the hub crashed before it stored the
//! injection's answer, each key returns to exactly its previous value — a user's own override
//! survives — and the journal key is removed with it.

mod admin;
mod config;
mod discovery;
mod fault;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chaoshub_schema::api::Capability;
use chaoshub_schema::manifest::Spec;
use chaoshub_schema::{Target, ValidationErrors};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use admin::{RuntimeView, ADMIN_LAYER_HINT, NO_ADMIN_LAYER};
pub use config::{EnvoyConfig, DEFAULT_TIMEOUT_MS, KNOWN_SETTINGS};
pub use discovery::{
    admin_layer_name, connection_managers, parse_fault_filter, AbortBlock, ConnectionManager,
    DelayBlock, FaultFilter, HeaderMatch, RateLimitBlock, RuntimeKeys, TARGET_KIND,
};
pub use fault::{
    plan_runtime, RuntimePlan, ABORT_STATUS_ANNOTATION, DOWNSTREAM_CLUSTER_ANNOTATION,
    PERCENT_ANNOTATION, RESPONSE_LIMIT_ANNOTATION, SHARED_KEYS_ANNOTATION,
};

use self::admin::AdminClient;
use crate::http_clients::HttpClients;
use crate::{Adapter, AdapterError, Environment, FaultRequest, Injection, InjectionState};

const ADAPTER_TYPE: &str = "envoy";

/// Runtime keys under this prefix are this adapter's journals, one per injection.
pub const JOURNAL_PREFIX: &str = "chaoshub.injection.";

/// What one injection changed in the admin layer, kept in Envoy itself (and in the details).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    pub experiment: String,
    pub target: String,
    /// Keys this injection set, with the values it set.
    pub set: BTreeMap<String, String>,
    /// Each key's admin-layer value before the injection; `None`: the admin layer had none.
    pub previous: BTreeMap<String, Option<String>>,
}

impl Journal {
    pub fn key(injection_id: &str) -> String {
        format!("{JOURNAL_PREFIX}{injection_id}")
    }
}

/// The fault filter's own counters for one connection manager: the measured effect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultStats {
    pub aborts_injected: u64,
    pub delays_injected: u64,
    pub active_faults: u64,
    pub response_rl_injected: u64,
}

/// Drives Envoys over their admin API. Holds no fault state (the journal lives in Envoy's
/// runtime); what it keeps is one pooled HTTP client per environment.
pub struct EnvoyAdapter {
    clients: HttpClients,
}

impl EnvoyAdapter {
    pub fn new() -> Self {
        Self {
            clients: HttpClients::new(),
        }
    }

    /// The connection managers of one Envoy, with their fault filters.
    pub async fn connection_managers(
        &self,
        env: &Environment,
    ) -> Result<Vec<ConnectionManager>, AdapterError> {
        let client = AdminClient::new(env, &self.clients)?;
        let (dump, listeners, clusters) = (
            client.config_dump().await?,
            client.listeners().await?,
            client.clusters().await?,
        );
        Ok(connection_managers(&dump, &listeners, &clusters))
    }

    /// `http.<stat_prefix>.fault.*`: what the filter really did.
    pub async fn fault_stats(
        &self,
        env: &Environment,
        stat_prefix: &str,
    ) -> Result<FaultStats, AdapterError> {
        let client = AdminClient::new(env, &self.clients)?;
        fault_stats(&client, stat_prefix).await
    }

    /// The admin layer's runtime values as Envoy reports them.
    pub async fn admin_runtime(
        &self,
        env: &Environment,
    ) -> Result<BTreeMap<String, String>, AdapterError> {
        let client = AdminClient::new(env, &self.clients)?;
        let (view, admin) = admin_view(&client).await?;
        Ok(view
            .entries
            .keys()
            .filter_map(|k| Some((k.clone(), view.layer_value(admin, k)?.to_string())))
            .collect())
    }
}

impl Default for EnvoyAdapter {
    fn default() -> Self {
        Self::new()
    }
}

async fn fault_stats(client: &AdminClient, stat_prefix: &str) -> Result<FaultStats, AdapterError> {
    let prefix = format!("http.{stat_prefix}.fault.");
    let stats = client.stats(&format!("^{}", regex_escape(&prefix))).await?;
    let get = |name: &str| stats.get(&format!("{prefix}{name}")).copied().unwrap_or(0);
    Ok(FaultStats {
        aborts_injected: get("aborts_injected"),
        delays_injected: get("delays_injected"),
        active_faults: get("active_faults"),
        response_rl_injected: get("response_rl_injected"),
    })
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `/runtime` and the index of the bootstrap's admin layer in it.
async fn admin_view(client: &AdminClient) -> Result<(RuntimeView, usize), AdapterError> {
    let dump = client.config_dump().await?;
    let view = client.runtime().await?;
    let name = admin_layer_name(&dump).ok_or_else(|| {
        AdapterError::Rejected(format!(
            "Envoy at {} has no admin runtime layer, so it would answer POST /runtime_modify \
             with 503 {NO_ADMIN_LAYER:?}: {ADMIN_LAYER_HINT}",
            client.endpoint()
        ))
    })?;
    let index = view.layer_index(&name).ok_or_else(|| {
        AdapterError::Failed(format!(
            "Envoy at {} lists no runtime layer {name:?} in GET /runtime although its bootstrap \
             declares it as the admin layer",
            client.endpoint()
        ))
    })?;
    Ok((view, index))
}

/// Every journal in the admin layer, by injection id.
fn journals(view: &RuntimeView, admin: usize) -> BTreeMap<String, Journal> {
    view.layer_keys_with_prefix(admin, JOURNAL_PREFIX)
        .filter_map(|(key, value)| {
            let id = key.strip_prefix(JOURNAL_PREFIX)?.to_string();
            match serde_json::from_str::<Journal>(value) {
                Ok(journal) => Some((id, journal)),
                Err(e) => {
                    tracing::warn!(key, error = %e, "ignoring an unreadable chaoshub journal key");
                    None
                }
            }
        })
        .collect()
}

fn journal_from_details(details: &Value) -> Option<Journal> {
    serde_json::from_value(details.get("journal")?.clone()).ok()
}

#[async_trait]
impl Adapter for EnvoyAdapter {
    fn adapter_type(&self) -> &'static str {
        ADAPTER_TYPE
    }

    fn description(&self) -> &'static str {
        "Envoy proxies: HTTPChaos abort / delay through the HTTP fault filter, switched with \
         admin API runtime overrides"
    }

    fn capabilities(&self) -> Vec<Capability> {
        vec![
            Capability::new("HTTPChaos", "abort"),
            Capability::new("HTTPChaos", "delay"),
        ]
    }

    fn not_applicable(&self, kind: &str, _action: &str) -> Option<&'static str> {
        match kind {
            "StressChaos" | "PodChaos" | "TimeChaos" | "IOChaos" | "PhysicalMachineChaos" => {
                Some("Envoy is an HTTP proxy; it has no processes, clock, files or host of the service to act on")
            }
            "ProxyChaos" => Some("toxics live in a Toxiproxy server"),
            _ => None,
        }
    }

    fn alternative(&self, kind: &str, action: &str) -> Option<&'static str> {
        Some(match (kind, action) {
            ("NetworkChaos", "delay") => "HTTPChaos delay delays the requests through this proxy",
            ("NetworkChaos", _) => "HTTPChaos abort (with chaoshub.dev/percent) fails a share of the requests through this proxy",
            ("HTTPChaos", "replace" | "patch") => "Envoy's fault filter aborts or delays; use HTTPChaos abort with the status code to return",
            _ => return None,
        })
    }

    fn validate_environment(&self, env: &Environment) -> Result<(), ValidationErrors> {
        EnvoyConfig::from_environment(env).map(drop)
    }

    async fn discover(&self, env: &Environment) -> Result<Vec<Target>, AdapterError> {
        let managers = self.connection_managers(env).await?;
        let mut per_listener: BTreeMap<&str, usize> = BTreeMap::new();
        for m in &managers {
            *per_listener.entry(m.listener.as_str()).or_default() += 1;
        }
        Ok(managers
            .iter()
            .map(|m| {
                m.to_target(
                    &env.name,
                    ADAPTER_TYPE,
                    per_listener[m.listener.as_str()] == 1,
                )
            })
            .collect())
    }

    fn plan_details(&self, env: &Environment, fault: &FaultRequest, target: &Target) -> Value {
        json!({
            "endpoint": env.spec.endpoint,
            "mode": "runtime",
            "call": "POST /runtime_modify",
            "journalKey": Journal::key(&fault.injection_id),
            "runtimeKeys": target.annotations.get("envoy.fault.runtime_keys"),
            "percent": fault.manifest.metadata.annotations.get(PERCENT_ANNOTATION).map_or("100", String::as_str),
        })
    }

    async fn inject(
        &self,
        env: &Environment,
        fault: &FaultRequest,
        target: &Target,
    ) -> Result<Value, AdapterError> {
        let Spec::HTTPChaos(spec) = &fault.manifest.spec else {
            return Err(AdapterError::Unsupported {
                kind: fault.kind().to_string(),
                action: fault.actions.join(","),
                message: "the envoy adapter runs HTTPChaos only".into(),
            });
        };
        let client = AdminClient::new(env, &self.clients)?;
        let dump = client.config_dump().await?;
        let managers =
            connection_managers(&dump, &client.listeners().await?, &client.clusters().await?);
        let manager = managers
            .iter()
            .find(|m| m.target_id() == target.id)
            .ok_or_else(|| {
                AdapterError::Rejected(format!(
                    "Envoy at {} has no HTTP connection manager {:?} any more (listener removed \
                     or renamed?)",
                    client.endpoint(),
                    target.id
                ))
            })?;
        let filter = manager
            .fault
            .as_ref()
            .ok_or_else(|| AdapterError::Unsupported {
                kind: "HTTPChaos".into(),
                action: fault.actions.join(","),
                message: format!(
                    "listener {:?} (stat_prefix {:?}) has no envoy.filters.http.fault filter; \
                 runtime mode switches on a fault filter that is already configured: add one \
                 before the router with abort and delay blocks at 0 percent",
                    manager.listener, manager.stat_prefix
                ),
            })?;
        let annotations = &fault.manifest.metadata.annotations;
        let plan = plan_runtime(spec, annotations, filter, manager.port)?;
        if plan.uses_filter_keys
            && annotations.get(SHARED_KEYS_ANNOTATION).map(String::as_str) != Some("allow")
        {
            let sharing: Vec<String> = managers
                .iter()
                .filter(|m| m.target_id() != manager.target_id())
                .filter(|m| {
                    m.fault
                        .as_ref()
                        .is_some_and(|f| f.keys.all().iter().any(|k| plan.set.contains_key(*k)))
                })
                .map(ConnectionManager::target_id)
                .collect();
            if !sharing.is_empty() {
                return Err(AdapterError::Rejected(format!(
                    "the fault filter of {:?} reads the same runtime keys as {} , so a runtime \
                     fault would hit them too: give each filter its own *_runtime key names, \
                     use the {DOWNSTREAM_CLUSTER_ANNOTATION} annotation, or accept it with \
                     {SHARED_KEYS_ANNOTATION}: allow",
                    manager.target_id(),
                    sharing.join(", ")
                )));
            }
        }

        let (view, admin) = admin_view(&client).await?;
        let existing = journals(&view, admin);
        let own = existing.get(&fault.injection_id);
        let mut previous = BTreeMap::new();
        for key in plan.set.keys() {
            // Injecting again (a retry, a resume) must not mistake its own values for the user's.
            if let Some(prev) = own.and_then(|j| j.previous.get(key)) {
                previous.insert(key.clone(), prev.clone());
                continue;
            }
            let holder = existing
                .iter()
                .find(|(id, j)| *id != &fault.injection_id && j.set.contains_key(key));
            match holder {
                // Another target of the same experiment set the same shared key to the same
                // value: what was there before is that injection's "previous".
                Some((_, j))
                    if j.experiment == fault.experiment_uid && j.set[key] == plan.set[key] =>
                {
                    previous.insert(key.clone(), j.previous.get(key).cloned().flatten());
                }
                Some((id, j)) => {
                    return Err(AdapterError::Rejected(format!(
                        "runtime key {key:?} on Envoy at {} is held by chaoshub injection {id} \
                         (experiment {}, target {}); two experiments cannot drive the same key \
                         at once — wait for it to end",
                        client.endpoint(),
                        j.experiment,
                        j.target
                    )));
                }
                None => {
                    previous.insert(
                        key.clone(),
                        view.layer_value(admin, key).map(str::to_string),
                    );
                }
            }
        }
        let journal = Journal {
            experiment: fault.experiment_uid.clone(),
            target: target.id.clone(),
            set: plan.set.clone(),
            previous,
        };
        let journal_key = Journal::key(&fault.injection_id);
        let journal_text = serde_json::to_string(&journal)
            .map_err(|e| AdapterError::Failed(format!("cannot encode the journal: {e}")))?;
        let mut writes: Vec<(String, String)> = vec![(journal_key.clone(), journal_text)];
        writes.extend(plan.set.iter().map(|(k, v)| (k.clone(), v.clone())));
        tracing::debug!(
            environment = %env.name,
            injection_id = %fault.injection_id,
            target = %target.id,
            keys = ?plan.set,
            "setting envoy runtime overrides"
        );
        client.runtime_modify(&writes).await?;
        let stats = fault_stats(&client, &manager.stat_prefix).await.ok();
        Ok(json!({
            "mode": "runtime",
            "endpoint": client.endpoint(),
            "target": target.id,
            "statPrefix": manager.stat_prefix,
            "journalKey": journal_key,
            "fault": plan.summary,
            "journal": journal,
            "statsAtInjection": stats,
        }))
    }

    async fn status(
        &self,
        env: &Environment,
        injection: &Injection,
    ) -> Result<InjectionState, AdapterError> {
        let client = AdminClient::new(env, &self.clients)?;
        let (view, admin) = admin_view(&client).await?;
        let journal = journals(&view, admin)
            .remove(&injection.injection_id)
            .or_else(|| journal_from_details(&injection.details));
        let Some(journal) = journal else {
            return Ok(InjectionState::Absent);
        };
        let mismatched: Vec<String> = journal
            .set
            .iter()
            .filter(|(k, v)| view.layer_value(admin, k) != Some(v.as_str()))
            .map(|(k, v)| {
                format!(
                    "{k} is {:?}, not {v:?}",
                    view.layer_value(admin, k).unwrap_or("unset")
                )
            })
            .collect();
        if let Some(prefix) = injection.details.get("statPrefix").and_then(Value::as_str) {
            if let Ok(stats) = fault_stats(&client, prefix).await {
                tracing::debug!(injection_id = %injection.injection_id, ?stats, "envoy fault filter stats");
            }
        }
        Ok(if mismatched.is_empty() {
            InjectionState::Active
        } else if mismatched.len() == journal.set.len() {
            InjectionState::Absent
        } else {
            InjectionState::Unknown(format!(
                "only part of the fault is in place: {}",
                mismatched.join("; ")
            ))
        })
    }

    async fn recover(&self, env: &Environment, injection: &Injection) -> Result<(), AdapterError> {
        let client = AdminClient::new(env, &self.clients)?;
        let (view, admin) = admin_view(&client).await?;
        let journal_key = Journal::key(&injection.injection_id);
        let in_envoy = journals(&view, admin).remove(&injection.injection_id);
        let Some(journal) = in_envoy
            .clone()
            .or_else(|| journal_from_details(&injection.details))
        else {
            // Nothing was ever written (the hub crashed before the call), or already recovered.
            return Ok(());
        };
        let mut writes = Vec::new();
        for (key, ours) in &journal.set {
            let current = view.layer_value(admin, key);
            if current == Some(ours.as_str()) {
                let previous = journal.previous.get(key).cloned().flatten();
                writes.push((key.clone(), previous.unwrap_or_default()));
            } else {
                // Someone changed it since: theirs is newer than both values, so it stays.
                tracing::info!(
                    injection_id = %injection.injection_id,
                    key,
                    current = current.unwrap_or("unset"),
                    "runtime key changed since injection; leaving it"
                );
            }
        }
        if in_envoy.is_some() {
            writes.push((journal_key, String::new()));
        }
        if writes.is_empty() {
            return Ok(());
        }
        client.runtime_modify(&writes).await?;
        Ok(())
    }
}
