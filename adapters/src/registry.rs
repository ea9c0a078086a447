//! The adapter registry: every adapter type, registered in one visible place.

use std::collections::BTreeMap;
use std::sync::Arc;

use chaoshub_schema::api::{AdapterInfo, Capability};

use crate::Adapter;

/// An adapter type nobody registered.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown adapter type {requested:?} (known: {})", known.join(", "))]
pub struct UnknownAdapter {
    pub requested: String,
    pub known: Vec<String>,
}

/// Adapters keyed by type.
#[derive(Clone, Default)]
pub struct AdapterRegistry {
    adapters: BTreeMap<&'static str, Arc<dyn Adapter>>,
}

impl AdapterRegistry {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every adapter compiled into this build. New adapters are added here, behind their feature.
    pub fn builtin() -> Self {
        #[allow(unused_mut)]
        let mut registry = Self::empty();
        #[cfg(feature = "webhook")]
        registry.register(Arc::new(crate::webhook::WebhookAdapter::new()));
        #[cfg(feature = "toxiproxy")]
        registry.register(Arc::new(crate::toxiproxy::ToxiproxyAdapter::new()));
        #[cfg(feature = "envoy")]
        registry.register(Arc::new(crate::envoy::EnvoyAdapter::new()));
        #[cfg(feature = "ssm")]
        registry.register(Arc::new(crate::ssm::SsmAdapter::new()));
        #[cfg(feature = "docker")]
        registry.register(Arc::new(crate::docker::DockerAdapter::new()));
        #[cfg(feature = "kubernetes")]
        registry.register(Arc::new(crate::kubernetes::KubernetesAdapter::new()));
        registry
    }

    /// Adds an adapter, replacing one of the same type.
    pub fn register(&mut self, adapter: Arc<dyn Adapter>) {
        self.adapters.insert(adapter.adapter_type(), adapter);
    }

    pub fn get(&self, adapter_type: &str) -> Result<Arc<dyn Adapter>, UnknownAdapter> {
        self.adapters
            .get(adapter_type)
            .cloned()
            .ok_or_else(|| UnknownAdapter {
                requested: adapter_type.to_string(),
                known: self.types(),
            })
    }

    /// Every registered adapter, ordered by type.
    pub fn all(&self) -> Vec<Arc<dyn Adapter>> {
        self.adapters.values().cloned().collect()
    }

    pub fn types(&self) -> Vec<String> {
        self.adapters.keys().map(|k| k.to_string()).collect()
    }

    pub fn infos(&self) -> Vec<AdapterInfo> {
        self.adapters
            .values()
            .map(|a| AdapterInfo {
                adapter_type: a.adapter_type().to_string(),
                description: a.description().to_string(),
                capabilities: a.capabilities(),
                dynamic_capabilities: a.dynamic_capabilities(),
            })
            .collect()
    }

    /// Adapter types whose static matrix has this (kind, action), for error messages.
    pub fn supporting(&self, kind: &str, action: &str) -> Vec<String> {
        let wanted = Capability::new(kind, action);
        self.adapters
            .values()
            .filter(|a| a.dynamic_capabilities() || a.capabilities().contains(&wanted))
            .map(|a| {
                if a.dynamic_capabilities() {
                    format!("{} (if the plugin declares it)", a.adapter_type())
                } else {
                    a.adapter_type().to_string()
                }
            })
            .collect()
    }
}
