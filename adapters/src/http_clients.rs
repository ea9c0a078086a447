//! One pooled HTTP client per environment for the HTTP-based adapters (toxiproxy, envoy,
//! webhook).
//!
//! Building a `reqwest::Client` loads the system's root certificates (rustls on ring, see `tls`),
//! which costs milliseconds, and a fresh client opens a fresh connection for every call. Keeping
//! one client per environment lets consecutive calls reuse one kept-alive connection. The key is
//! the environment's name with its whole spec, so a re-registered environment (another endpoint,
//! timeout or credential) never reuses a client built for the old settings. The cache holds
//! transport state only; adapters stay stateless about faults.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::{AdapterError, Environment};

/// Environments whose clients are kept; beyond it the cache starts over (a hub has a handful of
/// environments, so this only bounds a churn of re-registrations).
const MAX_CLIENTS: usize = 256;

#[derive(Default)]
pub struct HttpClients {
    clients: Mutex<HashMap<String, reqwest::Client>>,
}

impl HttpClients {
    pub fn new() -> Self {
        Self::default()
    }

    /// The environment's client, built by `build` the first time (or after its spec changed).
    pub fn get(
        &self,
        env: &Environment,
        build: impl FnOnce() -> reqwest::ClientBuilder,
    ) -> Result<reqwest::Client, AdapterError> {
        let key = match serde_json::to_string(&env.spec) {
            Ok(spec) => format!("{}\n{spec}", env.name),
            // Not expected (a spec is plain data); an unkeyable spec just gets its own client.
            Err(_) => return build_client(build),
        };
        if let Some(client) = self.lock().get(&key) {
            return Ok(client.clone());
        }
        // Built outside the lock (it takes milliseconds); two first calls racing may both
        // build one, and the first stored wins.
        let client = build_client(build)?;
        let mut clients = self.lock();
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&key) {
            clients.clear();
        }
        Ok(clients.entry(key).or_insert(client).clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, reqwest::Client>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn build_client(
    build: impl FnOnce() -> reqwest::ClientBuilder,
) -> Result<reqwest::Client, AdapterError> {
    let _span = tracing::debug_span!("http.client_build").entered();
    crate::install_crypto_provider();
    build()
        .build()
        .map_err(|e| AdapterError::Failed(format!("cannot build an HTTP client: {e}")))
}
