//! A bench adapter whose faults are entries in a set: every call answers at once, so what a
//! bench measures is the hub; and a hub started with it. Shared by the benches that include it
//! (`#[path]`).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chaoshub_adapters::{
    Adapter, AdapterError, Environment, FaultRequest, Injection, InjectionState,
};
use chaoshub_schema::api::Capability;
use chaoshub_schema::{Target, ValidationErrors};
use serde_json::Value;

/// Faults are entries in a set; every call answers at once.
pub struct InstantAdapter {
    active: Mutex<HashSet<String>>,
    /// How many hosts `discover` lists (`host-0`, `host-1`, …, labelled `app: web`).
    targets: usize,
}

impl Default for InstantAdapter {
    /// Four hosts.
    fn default() -> Self {
        Self::with_targets(4)
    }
}

impl InstantAdapter {
    pub fn with_targets(targets: usize) -> Self {
        Self {
            active: Mutex::default(),
            targets,
        }
    }
}

#[async_trait]
impl Adapter for InstantAdapter {
    fn adapter_type(&self) -> &'static str {
        "instant"
    }
    fn description(&self) -> &'static str {
        "bench adapter"
    }
    fn capabilities(&self) -> Vec<Capability> {
        vec![Capability::new("NetworkChaos", "delay")]
    }
    fn validate_environment(&self, _env: &Environment) -> Result<(), ValidationErrors> {
        Ok(())
    }
    async fn environment_capabilities(
        &self,
        _env: &Environment,
    ) -> Result<Vec<Capability>, AdapterError> {
        Ok(self.capabilities())
    }
    async fn discover(&self, env: &Environment) -> Result<Vec<Target>, AdapterError> {
        Ok((0..self.targets)
            .map(|i| Target {
                environment: env.name.clone(),
                adapter: "instant".into(),
                kind: "host".into(),
                id: format!("host-{i}"),
                name: format!("host-{i}"),
                namespace: None,
                labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
                annotations: BTreeMap::new(),
            })
            .collect())
    }
    async fn inject(
        &self,
        _env: &Environment,
        fault: &FaultRequest,
        _target: &Target,
    ) -> Result<Value, AdapterError> {
        self.active
            .lock()
            .unwrap()
            .insert(fault.injection_id.clone());
        Ok(Value::Null)
    }
    async fn status(
        &self,
        _env: &Environment,
        injection: &Injection,
    ) -> Result<InjectionState, AdapterError> {
        Ok(
            if self
                .active
                .lock()
                .unwrap()
                .contains(&injection.injection_id)
            {
                InjectionState::Active
            } else {
                InjectionState::Absent
            },
        )
    }
    async fn recover(&self, _env: &Environment, injection: &Injection) -> Result<(), AdapterError> {
        self.active.lock().unwrap().remove(&injection.injection_id);
        Ok(())
    }
}

/// Starts the hub in-process with the adapter registered, and returns it with its URL and a
/// client that holds the admin token the hub wrote on first start (as a local user would read
/// it, from `config.data_dir`) and keeps up to `idle_per_host` connections; environment `bench`
/// is registered on the adapter.
#[allow(dead_code)] // not every bench that includes this file starts its hub this way
pub async fn start_hub(
    config: chaoshub::config::HubConfig,
    idle_per_host: usize,
) -> (chaoshub::server::RunningHub, String, reqwest::Client) {
    let token_file = config.data_dir.join("admin.token");
    let mut registry = chaoshub_adapters::AdapterRegistry::builtin();
    registry.register(Arc::new(InstantAdapter::default()));
    let hub = chaoshub::server::start_with(config, registry)
        .await
        .unwrap();
    let url = hub.url();
    let token = std::fs::read_to_string(token_file).unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", token.trim()).parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(idle_per_host)
        .build()
        .unwrap();
    register_environment(&client, &url).await;
    (hub, url, client)
}

/// Registers environment `bench` on the adapter with `client` at the hub at `url`.
pub async fn register_environment(client: &reqwest::Client, url: &str) {
    let env = client
        .post(format!("{url}/api/v1/environments"))
        .header("content-type", "application/yaml")
        .body("apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: bench}\nspec: {adapter: instant}\n")
        .send()
        .await
        .unwrap();
    let status = env.status();
    assert!(
        status.is_success(),
        "environment: {status}: {}",
        env.text().await.unwrap_or_default()
    );
}
