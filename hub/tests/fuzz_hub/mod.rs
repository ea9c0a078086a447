//! The hub side of the request fuzzer (`chaoshub_testkit::fuzz`), shared by the long run
//! (`hub/benches/fuzz_router.rs`) and the short one of the test suite (`hub/tests/hub/fuzz.rs`):
//! a hub in-process with a real SQLite store in a temporary data dir, authentication on (the
//! bootstrap admin token), the project's catalog, and one environment, `fuzz`, whose adapter
//! answers at once and claims every kind and action of the corpus, so that valid manifests go
//! all the way through planning and real submissions through the engine.
//!
//! Only the `fuzz` adapter is registered: registrations the fuzzer makes for `docker`,
//! `kubernetes` or any other type are refused as unknown, so nothing outside the process is ever
//! called (suite probes point at a closed loopback port).

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chaoshub::config::HubConfig;
use chaoshub::server::RunningHub;
use chaoshub_adapters::{
    Adapter, AdapterError, AdapterRegistry, Environment, FaultRequest, Injection, InjectionState,
};
use chaoshub_schema::api::Capability;
use chaoshub_schema::{Target, ValidationErrors};
use chaoshub_testkit::fuzz::hub::{HubCorpus, HubInputs, ENVIRONMENT};
use serde_json::Value;

/// An adapter that applies nothing and answers at once; it claims `capabilities`.
struct FuzzAdapter {
    capabilities: Vec<Capability>,
    active: Mutex<HashSet<String>>,
}

#[async_trait]
impl Adapter for FuzzAdapter {
    fn adapter_type(&self) -> &'static str {
        "fuzz"
    }
    fn description(&self) -> &'static str {
        "fuzz driver adapter: applies nothing, answers at once"
    }
    fn capabilities(&self) -> Vec<Capability> {
        self.capabilities.clone()
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
        Ok((0..3)
            .map(|i| Target {
                environment: env.name.clone(),
                adapter: "fuzz".into(),
                kind: if i == 2 { "pod".into() } else { "host".into() },
                id: format!("t{i}"),
                name: format!("t{i}"),
                namespace: (i == 2).then(|| "default".to_string()),
                labels: [
                    ("app".to_string(), "web".to_string()),
                    ("index".to_string(), i.to_string()),
                ]
                .into(),
                annotations: Default::default(),
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
        let active = self.active.lock().unwrap();
        Ok(if active.contains(&injection.injection_id) {
            InjectionState::Active
        } else {
            InjectionState::Absent
        })
    }
    async fn recover(&self, _env: &Environment, injection: &Injection) -> Result<(), AdapterError> {
        self.active.lock().unwrap().remove(&injection.injection_id);
        Ok(())
    }
}

/// The hub under fuzz and the generator aimed at it.
pub struct FuzzHub {
    pub hub: RunningHub,
    pub inputs: Arc<HubInputs>,
    pub max_body: usize,
    /// What the corpus holds and what it could not find (the shared Chaos Mesh examples).
    pub notes: Vec<String>,
    _dir: tempfile::TempDir,
}

/// Manifests and templates: the project's fixtures (every Chaos Mesh kind and action, Schedule,
/// Workflow), the catalog's templates (and their manifests), and the shared Chaos Mesh examples
/// when present.
pub fn corpus() -> (HubCorpus, Vec<String>) {
    let root = chaoshub_testkit::workspace_root();
    let mut notes = Vec::new();
    let mut corpus = HubCorpus::default();
    fn add_dir(dir: &Path, corpus: &mut HubCorpus) -> usize {
        let mut n = 0;
        for (_, text) in chaoshub_testkit::manifest_files(dir) {
            let Ok(docs) = chaoshub_schema::split_documents(&text) else {
                continue;
            };
            for mut doc in docs {
                if let Some(spec) = doc.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("environment".into(), Value::String(ENVIRONMENT.into()));
                }
                corpus.manifests.push(doc);
                n += 1;
            }
            corpus.texts.push(text);
        }
        n
    }
    let fixtures = add_dir(&chaoshub_testkit::fixtures_dir(), &mut corpus);
    notes.push(format!(
        "{fixtures} documents from tests/fixtures/chaos-mesh"
    ));
    // Not through `chaoshub_testkit::shared_dir`: that locator fails under CI=true, and the
    // fuzz corpus only gains coverage from the shared examples.
    let shared = std::env::var_os(chaoshub_testkit::SHARED_DIR_VAR)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("../shared"))
        .join("reference/chaos-mesh/examples");
    if shared.is_dir() {
        let n = add_dir(&shared, &mut corpus);
        notes.push(format!("{n} documents from {}", shared.display()));
    } else {
        notes.push(format!(
            "NOTE: {} is absent; the corpus is the project's own fixtures and catalog only",
            shared.display()
        ));
    }
    let mut templates = 0;
    let mut stack = vec![root.join("catalog")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(docs) = chaoshub_schema::split_documents(&text) else {
                continue;
            };
            for doc in docs {
                let Some(name) = doc["metadata"]["name"].as_str() else {
                    continue;
                };
                let params = doc["spec"]["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["name"].as_str().map(str::to_string))
                    .collect();
                corpus.templates.push((name.to_string(), params));
                // The template's experiment, placeholders and all, is a manifest to mutate too.
                if let Some(manifest) = doc["spec"].get("manifest").cloned() {
                    corpus.manifests.push(manifest);
                }
                templates += 1;
            }
            corpus.texts.push(text);
        }
    }
    notes.push(format!("{templates} catalog templates"));
    (corpus, notes)
}

/// Every (kind, action) pair of the corpus, and every kind with every action seen: the fuzz
/// adapter claims them all so valid manifests reach planning.
fn capabilities(corpus: &HubCorpus) -> Vec<Capability> {
    let mut kinds = BTreeSet::new();
    let mut actions = BTreeSet::new();
    for doc in &corpus.manifests {
        if let Some(kind) = doc["kind"].as_str() {
            kinds.insert(kind.to_string());
        }
        if let Some(action) = doc["spec"]["action"].as_str() {
            actions.insert(action.to_string());
        }
    }
    for a in ["cpu", "memory", "cpu+memory", "default"] {
        actions.insert(a.to_string());
    }
    let mut out = Vec::new();
    for k in &kinds {
        for a in &actions {
            out.push(Capability::new(k.clone(), a.clone()));
        }
    }
    out
}

pub async fn start() -> FuzzHub {
    let (corpus, notes) = corpus();
    let dir = tempfile::tempdir().unwrap();
    let mut config = HubConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        catalog_dir: chaoshub_testkit::workspace_root().join("catalog"),
        ..Default::default()
    };
    config.engine.resync_interval_ms = 500;
    let max_body = config.limits.max_body_bytes;
    let mut registry = AdapterRegistry::empty();
    registry.register(Arc::new(FuzzAdapter {
        capabilities: capabilities(&corpus),
        active: Mutex::new(HashSet::new()),
    }));
    let hub = chaoshub::server::start_with(config, registry)
        .await
        .unwrap();
    let token = hub
        .admin_token(dir.path())
        .expect("the hub writes the bootstrap admin token");
    let env = format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: {ENVIRONMENT}}}\nspec: {{adapter: fuzz}}\n"
    );
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/environments", hub.url()))
        .bearer_auth(&token)
        .header("content-type", "application/yaml")
        .body(env)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    FuzzHub {
        inputs: Arc::new(HubInputs::new(corpus, token, max_body)),
        hub,
        max_body,
        notes,
        _dir: dir,
    }
}
