//! The `toxiproxy` adapter: drives a Toxiproxy 2.x server (or the Rust port Noxious) over its
//! HTTP API (docs/adapters/toxiproxy.md).
//!
//! - `config.rs`: the environment's endpoint and settings, validated without the network;
//! - `client.rs`: the API calls, timeouts, retries, and Toxiproxy's error bodies;
//! - `plan.rs`: the pure translation of ProxyChaos and NetworkChaos into toxics.
//!
//! Proxies belong to the user: the adapter discovers them as targets, adds and removes toxics,
//! and toggles `enabled` for `down`, but never creates or deletes a proxy. Everything it adds
//! carries the injection id in its name, so recovery removes exactly this injection's toxics
//! and re-enables a proxy only when this injection disabled it.

mod client;
mod config;
mod plan;

use async_trait::async_trait;
use chaoshub_schema::api::Capability;
use chaoshub_schema::proxy::ProxyChaosAction;
use chaoshub_schema::{Target, ValidationErrors};
use serde_json::{json, Value};

pub use client::{ApiProxy, ApiToxic, CallError, ToxiproxyClient, USER_AGENT};
pub use config::{
    PartitionMode, ToxiproxyConfig, DEFAULT_RETRIES, DEFAULT_RETRY_BACKOFF_MS, DEFAULT_TIMEOUT_MS,
    KNOWN_SETTINGS,
};
pub use plan::{
    down_marker, owned_by, owner_of, plan, rate_kb_per_sec, toxic_name, ProxyFault, ProxyPlan,
    NAME_PREFIX,
};

use crate::http_clients::HttpClients;
use crate::{Adapter, AdapterError, Environment, FaultRequest, Injection, InjectionState};

const ADAPTER_TYPE: &str = "toxiproxy";

/// NetworkChaos actions a proxy can run.
const NETWORK_ACTIONS: &[&str] = &["delay", "bandwidth", "partition"];

/// Drives Toxiproxy servers. Holds no fault state: every fault's record lives in the toxic
/// names on the server and in the stored details; what it keeps is one pooled HTTP client per
/// environment.
pub struct ToxiproxyAdapter {
    clients: HttpClients,
}

impl ToxiproxyAdapter {
    pub fn new() -> Self {
        Self {
            clients: HttpClients::new(),
        }
    }

    fn client(&self, env: &Environment) -> Result<ToxiproxyClient, AdapterError> {
        ToxiproxyClient::pooled(env, &self.clients)
    }
}

impl Default for ToxiproxyAdapter {
    fn default() -> Self {
        Self::new()
    }
}

/// The proxy an injection targets: the target's id is the proxy's name.
fn proxy_of(target: &Target) -> &str {
    &target.id
}

/// Whether a toxic read back from the server is the one the adapter asked for: same type and
/// stream, same toxicity, and every attribute it sent with the same value (Toxiproxy adds the
/// attributes it defaults, such as `jitter: 0`).
fn matches_request(wanted: &ApiToxic, got: &ApiToxic) -> Result<(), String> {
    if got.toxic_type != wanted.toxic_type {
        return Err(format!(
            "type is {:?}, not {:?}",
            got.toxic_type, wanted.toxic_type
        ));
    }
    if !got.stream.eq_ignore_ascii_case(&wanted.stream) {
        return Err(format!(
            "stream is {:?}, not {:?}",
            got.stream, wanted.stream
        ));
    }
    // Toxiproxy stores toxicity as a float32.
    if (got.toxicity - wanted.toxicity).abs() > 1e-6 {
        return Err(format!(
            "toxicity is {}, not {}",
            got.toxicity, wanted.toxicity
        ));
    }
    if let Value::Object(wanted_attrs) = &wanted.attributes {
        for (key, value) in wanted_attrs {
            let same = match (
                value.as_f64(),
                got.attributes.get(key).and_then(Value::as_f64),
            ) {
                (Some(a), Some(b)) => (a - b).abs() < 1e-9,
                _ => got.attributes.get(key) == Some(value),
            };
            if !same {
                return Err(format!(
                    "attribute {key} is {}, not {value}",
                    got.attributes.get(key).unwrap_or(&Value::Null)
                ));
            }
        }
    }
    Ok(())
}

/// The toxic names an injection's details record.
fn recorded_toxics(details: &Value) -> Vec<String> {
    details
        .get("toxics")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl ToxiproxyAdapter {
    /// Adds one toxic; a 409 is accepted only when the toxic in place is this very one (a retry
    /// after a lost answer, or an inject repeated after a crash).
    async fn add_toxic(
        &self,
        client: &ToxiproxyClient,
        proxy: &str,
        toxic: &ApiToxic,
    ) -> Result<(), AdapterError> {
        let context = format!("adding toxic {:?} to proxy {proxy:?}", toxic.name);
        match client.create_toxic(proxy, toxic).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() => {
                let existing = client
                    .toxic(proxy, &toxic.name)
                    .await
                    .map_err(|e| client.error(&context, e))?;
                matches_request(toxic, &existing).map_err(|why| {
                    AdapterError::Failed(format!(
                        "{context}: a toxic of that name already exists and differs ({why})"
                    ))
                })
            }
            Err(e) if e.is_not_found("proxy") => Err(AdapterError::Rejected(format!(
                "{context}: proxy {proxy:?} does not exist on Toxiproxy at {} (proxies belong to \
                 the user; chaoshub never creates them)",
                client.endpoint()
            ))),
            Err(e) => Err(client.error(&context, e)),
        }
    }

    /// Reads every toxic back and checks it is what was asked for.
    async fn confirm_toxics(
        &self,
        client: &ToxiproxyClient,
        proxy: &str,
        toxics: &[&ApiToxic],
    ) -> Result<(), AdapterError> {
        for toxic in toxics {
            let context = format!("reading back toxic {:?} on proxy {proxy:?}", toxic.name);
            let got = client
                .toxic(proxy, &toxic.name)
                .await
                .map_err(|e| client.error(&context, e))?;
            matches_request(toxic, &got)
                .map_err(|why| AdapterError::Failed(format!("{context}: {why}")))?;
        }
        Ok(())
    }

    async fn take_down(
        &self,
        client: &ToxiproxyClient,
        fault: &FaultRequest,
        proxy: &str,
        marker: &ApiToxic,
    ) -> Result<(), AdapterError> {
        let context = format!("taking proxy {proxy:?} down");
        let current = match client.proxy(proxy).await {
            Ok(p) => p,
            Err(e) if e.is_not_found("proxy") => {
                return Err(AdapterError::Rejected(format!(
                    "{context}: proxy {proxy:?} does not exist on Toxiproxy at {}",
                    client.endpoint()
                )))
            }
            Err(e) => return Err(client.error(&context, e)),
        };
        let ours = current.toxics.iter().any(|t| t.name == marker.name);
        if !current.enabled && !ours {
            let holder = current
                .toxics
                .iter()
                .filter(|t| t.name.ends_with(".down.marker"))
                .find_map(|t| owner_of(&t.name));
            let who = match holder {
                Some(id) => format!("by chaoshub injection {id}"),
                None => "by someone else".to_string(),
            };
            return Err(AdapterError::Rejected(format!(
                "{context}: the proxy is already disabled ({who}); chaoshub does not take down \
                 a proxy it did not disable, because its recovery would have to bring it back up"
            )));
        }
        if !ours {
            self.add_toxic(client, proxy, marker).await?;
        }
        if current.enabled {
            tracing::debug!(proxy, injection_id = %fault.injection_id, "disabling proxy");
            client
                .set_enabled(proxy, false)
                .await
                .map_err(|e| client.error(&context, e))?;
        }
        let after = client
            .proxy(proxy)
            .await
            .map_err(|e| client.error(&format!("reading back proxy {proxy:?}"), e))?;
        if after.enabled {
            return Err(AdapterError::Failed(format!(
                "{context}: the proxy still reads back as enabled"
            )));
        }
        self.confirm_toxics(client, proxy, &[marker]).await
    }
}

#[async_trait]
impl Adapter for ToxiproxyAdapter {
    fn adapter_type(&self) -> &'static str {
        ADAPTER_TYPE
    }

    fn description(&self) -> &'static str {
        "Toxiproxy 2.x servers over their HTTP API: ProxyChaos toxics and NetworkChaos delay, \
         bandwidth and partition on proxies"
    }

    fn capabilities(&self) -> Vec<Capability> {
        let mut capabilities: Vec<Capability> = ProxyChaosAction::ALL
            .iter()
            .map(|a| Capability::new("ProxyChaos", a.as_str()))
            .collect();
        capabilities.extend(
            NETWORK_ACTIONS
                .iter()
                .map(|a| Capability::new("NetworkChaos", *a)),
        );
        capabilities
    }

    fn not_applicable(&self, kind: &str, action: &str) -> Option<&'static str> {
        match (kind, action) {
            ("StressChaos" | "PodChaos" | "TimeChaos" | "IOChaos" | "PhysicalMachineChaos", _) => {
                Some("Toxiproxy relays TCP streams; it has no processes, clock, files or host to act on")
            }
            ("NetworkChaos", "loss" | "duplicate" | "corrupt" | "netem") => Some(
                "Toxiproxy relays a TCP byte stream; packets, and their loss, duplication or \
                 corruption, are below it",
            ),
            ("DNSChaos", _) => Some("Toxiproxy connects to a fixed upstream address; no lookup passes through it"),
            _ => None,
        }
    }

    fn alternative(&self, kind: &str, action: &str) -> Option<&'static str> {
        Some(match (kind, action) {
            ("NetworkChaos", _) => "NetworkChaos delay, bandwidth and partition, or ProxyChaos reset_peer / timeout / slicer, run on a proxy",
            ("HTTPChaos", "delay") => "ProxyChaos latency (or NetworkChaos delay) delays the whole stream",
            ("HTTPChaos", _) => "ProxyChaos reset_peer or down break the connection instead of the request",
            _ => return None,
        })
    }

    fn validate_environment(&self, env: &Environment) -> Result<(), ValidationErrors> {
        ToxiproxyConfig::from_environment(env).map(drop)
    }

    async fn discover(&self, env: &Environment) -> Result<Vec<Target>, AdapterError> {
        let client = self.client(env)?;
        let proxies = client
            .proxies()
            .await
            .map_err(|e| client.error("listing proxies", e))?;
        Ok(proxies
            .into_iter()
            .map(|(key, proxy)| {
                // The map key is the name; Toxiproxy repeats it inside, older servers may not.
                let name = if proxy.name.is_empty() {
                    key
                } else {
                    proxy.name.clone()
                };
                let labels = [
                    ("name", name.clone()),
                    ("listen", proxy.listen.clone()),
                    ("upstream", proxy.upstream.clone()),
                    ("enabled", proxy.enabled.to_string()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                Target {
                    environment: env.name.clone(),
                    adapter: ADAPTER_TYPE.into(),
                    kind: "proxy".into(),
                    id: name.clone(),
                    name,
                    namespace: None,
                    labels,
                    annotations: Default::default(),
                }
            })
            .collect())
    }

    fn check_fault(&self, env: &Environment, fault: &FaultRequest) -> Result<(), AdapterError> {
        let partition = ToxiproxyConfig::from_environment(env)
            .map(|c| c.partition)
            .unwrap_or_default();
        plan(fault, partition).map(drop)
    }

    fn plan_details(&self, env: &Environment, fault: &FaultRequest, target: &Target) -> Value {
        let partition = ToxiproxyConfig::from_environment(env)
            .map(|c| c.partition)
            .unwrap_or_default();
        match plan(fault, partition) {
            Ok(p) => {
                let mut details = p.describe();
                details["proxy"] = json!(proxy_of(target));
                details["endpoint"] = json!(env.spec.endpoint);
                details
            }
            Err(e) => json!({ "error": e.to_string() }),
        }
    }

    async fn inject(
        &self,
        env: &Environment,
        fault: &FaultRequest,
        target: &Target,
    ) -> Result<Value, AdapterError> {
        let client = self.client(env)?;
        let plan = plan(fault, client.config().partition)?;
        let proxy = proxy_of(target);
        for note in &plan.ignored {
            tracing::info!(proxy, injection_id = %fault.injection_id, ignored = %note, "field ignored on a proxy");
        }
        tracing::debug!(
            environment = %env.name,
            proxy,
            injection_id = %fault.injection_id,
            action = %plan.action,
            "injecting into toxiproxy"
        );
        let disabled = match &plan.fault {
            ProxyFault::Toxics(toxics) => {
                for toxic in toxics {
                    self.add_toxic(&client, proxy, toxic).await?;
                }
                self.confirm_toxics(&client, proxy, &plan.toxics()).await?;
                false
            }
            ProxyFault::Down { marker } => {
                self.take_down(&client, fault, proxy, marker).await?;
                true
            }
        };
        let names: Vec<&str> = plan.toxics().iter().map(|t| t.name.as_str()).collect();
        Ok(json!({
            "proxy": proxy,
            "action": plan.action,
            "toxics": names,
            "disabledProxy": disabled,
            "ignored": plan.ignored,
        }))
    }

    /// `inject` reads every toxic back (and a `down` proxy's state) before it answers.
    fn inject_reads_back(&self) -> bool {
        true
    }

    async fn status(
        &self,
        env: &Environment,
        injection: &Injection,
    ) -> Result<InjectionState, AdapterError> {
        let client = self.client(env)?;
        let proxy = proxy_of(&injection.target);
        let current = match client.proxy(proxy).await {
            Ok(p) => p,
            Err(e) if e.is_not_found("proxy") => return Ok(InjectionState::Absent),
            Err(e) => return Err(client.error(&format!("reading proxy {proxy:?}"), e)),
        };
        let expected = recorded_toxics(&injection.details);
        if expected.is_empty() {
            return Ok(InjectionState::Unknown(
                "the injection's details record no toxic to look for".into(),
            ));
        }
        let present: Vec<&String> = expected
            .iter()
            .filter(|name| current.toxics.iter().any(|t| &t.name == *name))
            .collect();
        let wants_down = injection
            .details
            .get("disabledProxy")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let down_ok = !wants_down || !current.enabled;
        Ok(if present.len() == expected.len() && down_ok {
            InjectionState::Active
        } else if present.is_empty() && (!wants_down || current.enabled) {
            InjectionState::Absent
        } else {
            InjectionState::Unknown(format!(
                "partly in place on proxy {proxy:?}: {} of {} toxic(s) present{}",
                present.len(),
                expected.len(),
                if wants_down && current.enabled {
                    ", but the proxy is enabled again"
                } else {
                    ""
                }
            ))
        })
    }

    async fn recover(&self, env: &Environment, injection: &Injection) -> Result<(), AdapterError> {
        let client = self.client(env)?;
        let proxy = proxy_of(&injection.target);
        let id = &injection.injection_id;
        let context = format!("recovering proxy {proxy:?}");
        let current = match client.proxy(proxy).await {
            Ok(p) => p,
            // A deleted proxy took every toxic with it: nothing of ours is left.
            Err(e) if e.is_not_found("proxy") => return Ok(()),
            Err(e) => return Err(client.error(&context, e)),
        };
        // Found by name on the server rather than from the details alone, so a crash that lost
        // the adapter's answer still leaves nothing behind.
        let ours: Vec<&ApiToxic> = current
            .toxics
            .iter()
            .filter(|t| owned_by(&t.name, id))
            .collect();
        let marker = down_marker(id).name;
        let we_disabled = ours.iter().any(|t| t.name == marker)
            || injection
                .details
                .get("disabledProxy")
                .and_then(Value::as_bool)
                .unwrap_or(false);
        // Enable before removing the marker: if enabling fails, the marker still says the
        // proxy is ours to bring back on the next attempt.
        if we_disabled && !current.enabled {
            tracing::debug!(proxy, injection_id = %id, "re-enabling proxy");
            match client.set_enabled(proxy, true).await {
                Ok(_) => {}
                Err(e) if e.is_not_found("proxy") => return Ok(()),
                Err(e) => return Err(client.error(&context, e)),
            }
        }
        for toxic in ours {
            match client.delete_toxic(proxy, &toxic.name).await {
                Ok(()) => {}
                Err(e) if e.is_not_found("toxic") || e.is_not_found("proxy") => {}
                Err(e) => {
                    return Err(client.error(&format!("{context}: removing {:?}", toxic.name), e))
                }
            }
        }
        Ok(())
    }
}
