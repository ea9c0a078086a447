//! The `webhook` adapter: plugins in any language over a small HTTP protocol (docs/plugins.md).
//! PLACEHOLDER until the plugin protocol lands.

use async_trait::async_trait;
use chaoshub_schema::api::Capability;
use chaoshub_schema::{Target, ValidationErrors};
use serde_json::Value;

use crate::{Adapter, AdapterError, Environment, FaultRequest, Injection, InjectionState};

pub struct WebhookAdapter;

impl WebhookAdapter {
    pub fn new() -> Self {
        Self
    }
}

impl Default for WebhookAdapter {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Adapter for WebhookAdapter {
    fn adapter_type(&self) -> &'static str {
        "webhook"
    }
    fn description(&self) -> &'static str {
        "plugins in any language that speak the chaoshub plugin protocol over HTTP"
    }
    fn capabilities(&self) -> Vec<Capability> {
        Vec::new()
    }
    fn dynamic_capabilities(&self) -> bool {
        true
    }
    fn validate_environment(&self, _env: &Environment) -> Result<(), ValidationErrors> {
        Ok(())
    }
    async fn discover(&self, _env: &Environment) -> Result<Vec<Target>, AdapterError> {
        Err(AdapterError::Failed("not implemented".into()))
    }
    async fn inject(&self, _env: &Environment, _f: &FaultRequest, _t: &Target) -> Result<Value, AdapterError> {
        Err(AdapterError::Failed("not implemented".into()))
    }
    async fn status(&self, _env: &Environment, _i: &Injection) -> Result<InjectionState, AdapterError> {
        Err(AdapterError::Failed("not implemented".into()))
    }
    async fn recover(&self, _env: &Environment, _i: &Injection) -> Result<(), AdapterError> {
        Err(AdapterError::Failed("not implemented".into()))
    }
}
