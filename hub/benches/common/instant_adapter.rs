//! A bench adapter whose faults are entries in a set: every call answers at once, so what a
//! bench measures is the hub. Shared by the benches that include it (`#[path]`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use chaoshub_adapters::{
    Adapter, AdapterError, Environment, FaultRequest, Injection, InjectionState,
};
use chaoshub_schema::api::Capability;
use chaoshub_schema::{Target, ValidationErrors};
use serde_json::Value;

/// Faults are entries in a set; every call answers at once.
#[derive(Default)]
pub struct InstantAdapter {
    active: Mutex<HashSet<String>>,
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
        Ok((0..4)
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
