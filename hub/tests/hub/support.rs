//! The test sandbox: a hub on port 0 with a temporary data dir and the `memory` adapter.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chaoshub::config::HubConfig;
use chaoshub::server::RunningHub;
use chaoshub_adapters::{
    Adapter, AdapterError, AdapterRegistry, Environment, FaultRequest, Injection, InjectionState,
};
use chaoshub_schema::api::Capability;
use chaoshub_schema::{Target, ValidationErrors};
use serde_json::{json, Value};

/// Shared state of the memory adapter: what is "injected", and knobs to make it misbehave.
#[derive(Default)]
pub struct MemoryWorld {
    pub targets: Vec<Target>,
    /// injection id → target id, for faults in place.
    pub active: HashMap<String, String>,
    pub fail_inject_on: HashSet<String>,
    pub fail_recover: bool,
    pub unreachable: bool,
    /// The next this many `inject` calls put the fault in place and then answer as a far side
    /// that went away mid-call would (an agent restarting): `Unreachable`.
    pub drop_after_inject: usize,
    /// The next this many injections are lost right after they were applied, as by a far side
    /// that restarts without them: the next `status` call finds it out of reach, the fault
    /// gone.
    pub restart_after_inject: usize,
    /// A restart is under way: the next `status` answers `Unreachable`.
    pub restarting: bool,
    /// How long each `inject` takes (a slow environment).
    pub inject_delay: std::time::Duration,
    pub inject_calls: usize,
    pub recover_calls: usize,
    /// Every confirmed injection and every recovery, in order, with the real instant it
    /// happened (ordering tests of workflows read it).
    pub log: Vec<MemoryCall>,
}

/// One call the memory adapter served.
#[derive(Debug, Clone)]
pub struct MemoryCall {
    /// `inject` or `recover`.
    pub op: &'static str,
    pub experiment_uid: String,
    pub at: std::time::Instant,
}

#[derive(Clone, Default)]
pub struct MemoryAdapter {
    pub world: Arc<Mutex<MemoryWorld>>,
}

impl MemoryAdapter {
    pub fn with_targets(n: usize) -> Self {
        let adapter = Self::default();
        {
            let mut w = adapter.world.lock().unwrap();
            for i in 0..n {
                let mut labels = BTreeMap::new();
                labels.insert(
                    "app".to_string(),
                    if i % 2 == 0 {
                        "web".to_string()
                    } else {
                        "db".to_string()
                    },
                );
                labels.insert("index".to_string(), i.to_string());
                w.targets.push(Target {
                    environment: String::new(),
                    adapter: "memory".into(),
                    kind: "host".into(),
                    id: format!("host-{i}"),
                    name: format!("host-{i}"),
                    namespace: None,
                    labels,
                    annotations: BTreeMap::new(),
                });
            }
        }
        adapter
    }

    pub fn active_count(&self) -> usize {
        self.world.lock().unwrap().active.len()
    }

    fn check_reachable(&self, env: &Environment) -> Result<(), AdapterError> {
        if self.world.lock().unwrap().unreachable {
            return Err(AdapterError::Unreachable {
                environment: env.name.clone(),
                endpoint: "memory://".into(),
                message: "connection refused".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Adapter for MemoryAdapter {
    fn adapter_type(&self) -> &'static str {
        "memory"
    }
    fn description(&self) -> &'static str {
        "in-test adapter"
    }
    fn capabilities(&self) -> Vec<Capability> {
        vec![
            Capability::new("NetworkChaos", "delay"),
            Capability::new("NetworkChaos", "loss"),
            Capability::new("PodChaos", "pod-kill"),
            Capability::new("StressChaos", "cpu"),
            // Privileged families, as an opted-in agent offers them: the hub's own checks of
            // who may submit them are tested against this adapter (`privileged.rs`); the
            // agent's `--allow` is tested end to end with the real agent.
            Capability::new("PhysicalMachineChaos", "user_defined"),
            Capability::new("PhysicalMachineChaos", "clock"),
        ]
    }
    fn validate_environment(&self, _env: &Environment) -> Result<(), ValidationErrors> {
        Ok(())
    }
    async fn environment_capabilities(
        &self,
        env: &Environment,
    ) -> Result<Vec<Capability>, AdapterError> {
        self.check_reachable(env)?;
        Ok(self.capabilities())
    }
    async fn discover(&self, env: &Environment) -> Result<Vec<Target>, AdapterError> {
        self.check_reachable(env)?;
        let w = self.world.lock().unwrap();
        Ok(w.targets
            .iter()
            .cloned()
            .map(|mut t| {
                t.environment = env.name.clone();
                t
            })
            .collect())
    }
    async fn inject(
        &self,
        env: &Environment,
        fault: &FaultRequest,
        target: &Target,
    ) -> Result<Value, AdapterError> {
        self.check_reachable(env)?;
        let delay = self.world.lock().unwrap().inject_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut w = self.world.lock().unwrap();
        w.inject_calls += 1;
        if w.fail_inject_on.contains(&target.id) {
            return Err(AdapterError::Failed(format!(
                "simulated failure on {}",
                target.id
            )));
        }
        w.active
            .insert(fault.injection_id.clone(), target.id.clone());
        if w.restart_after_inject > 0 {
            w.restart_after_inject -= 1;
            w.active.remove(&fault.injection_id);
            w.restarting = true;
            return Ok(json!({"slot": fault.injection_id}));
        }
        if w.drop_after_inject > 0 {
            w.drop_after_inject -= 1;
            return Err(AdapterError::Unreachable {
                environment: env.name.clone(),
                endpoint: "memory://".into(),
                message: "the connection dropped while waiting for the answer".into(),
            });
        }
        w.log.push(MemoryCall {
            op: "inject",
            experiment_uid: fault.experiment_uid.clone(),
            at: std::time::Instant::now(),
        });
        Ok(json!({"slot": fault.injection_id}))
    }
    async fn status(
        &self,
        env: &Environment,
        injection: &Injection,
    ) -> Result<InjectionState, AdapterError> {
        let mut w = self.world.lock().unwrap();
        if w.restarting {
            w.restarting = false;
            return Err(AdapterError::Unreachable {
                environment: env.name.clone(),
                endpoint: "memory://".into(),
                message: "not connected".into(),
            });
        }
        Ok(if w.active.contains_key(&injection.injection_id) {
            InjectionState::Active
        } else {
            InjectionState::Absent
        })
    }
    async fn recover(&self, env: &Environment, injection: &Injection) -> Result<(), AdapterError> {
        self.check_reachable(env)?;
        let mut w = self.world.lock().unwrap();
        w.recover_calls += 1;
        if w.fail_recover {
            return Err(AdapterError::Failed("simulated recovery failure".into()));
        }
        if w.active.remove(&injection.injection_id).is_some() {
            w.log.push(MemoryCall {
                op: "recover",
                experiment_uid: injection.experiment_uid.clone(),
                at: std::time::Instant::now(),
            });
        }
        Ok(())
    }
}

pub struct Sandbox {
    pub hub: Option<RunningHub>,
    pub url: String,
    pub client: reqwest::Client,
    pub adapter: MemoryAdapter,
    pub dir: tempfile::TempDir,
    /// Applied to the hub config on every (re)start.
    pub tweak: fn(&mut HubConfig),
}

/// The bootstrap admin token of a hub whose data dir is `dir` (read as a user would).
pub fn admin_token(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("admin.token"))
        .expect("the hub writes <data-dir>/admin.token on first start")
        .trim()
        .to_string()
}

/// A client sending the data dir's admin token with every request: the sandbox's default, so
/// tests about anything but authorization read as before.
pub fn authed_client(dir: &std::path::Path) -> reqwest::Client {
    client_with_token(&admin_token(dir))
}

/// A client sending `Authorization: Bearer <token>` with every request.
pub fn client_with_token(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

pub fn config(dir: &std::path::Path) -> HubConfig {
    let mut config = HubConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    config.engine.resync_interval_ms = 200;
    config.engine.recovery_retry_ms = 100;
    config.engine.confirm_timeout_ms = 1000;
    if std::env::var("CHAOSHUB_TEST_STORE").as_deref() == Ok("postgres") {
        config.store.url = Some(postgres_database_for(dir));
    }
    config
}

/// With `CHAOSHUB_TEST_STORE=postgres`, every sandbox's hub keeps its state in a PostgreSQL
/// database of its own (one per data dir, so a restart finds its state again) on the test
/// binary's shared throwaway server: the whole hub suite then runs on the PostgreSQL store.
/// The databases live until the server is removed at the end of the test process.
fn postgres_database_for(dir: &std::path::Path) -> String {
    use chaoshub_testkit::postgres::TestDatabase;
    static DATABASES: Mutex<Vec<(std::path::PathBuf, TestDatabase<'static>)>> =
        Mutex::new(Vec::new());
    let mut databases = DATABASES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, db)) = databases.iter().find(|(d, _)| d == dir) {
        return db.url.clone();
    }
    let server = chaoshub_testkit::postgres::shared()
        .expect("CHAOSHUB_TEST_STORE=postgres needs PostgreSQL (scripts/install-test-deps.sh)");
    let db = server.create_database();
    let url = db.url.clone();
    databases.push((dir.to_path_buf(), db));
    url
}

impl Sandbox {
    pub async fn start(targets: usize) -> Sandbox {
        Self::start_with(targets, |_| {}).await
    }

    /// A sandbox whose hub config `tweak` adjusts from the first start on.
    pub async fn start_with(targets: usize, tweak: fn(&mut HubConfig)) -> Sandbox {
        // The sandbox's client is built before its hub starts (which would install it).
        chaoshub_adapters::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let adapter = MemoryAdapter::with_targets(targets);
        let mut s = Sandbox {
            hub: None,
            url: String::new(),
            client: reqwest::Client::new(),
            adapter,
            dir,
            tweak,
        };
        s.restart().await;
        s.post_yaml("/api/v1/environments", "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: mem}\nspec: {adapter: memory}\n").await;
        s
    }

    /// Starts (or starts again) the hub on the same data dir.
    pub async fn restart(&mut self) {
        if let Some(hub) = self.hub.take() {
            hub.shutdown().await;
        }
        let mut registry = AdapterRegistry::builtin();
        registry.register(Arc::new(self.adapter.clone()));
        let mut config = config(self.dir.path());
        (self.tweak)(&mut config);
        let hub = chaoshub::server::start_with(config, registry)
            .await
            .unwrap();
        self.url = hub.url();
        self.hub = Some(hub);
        self.client = authed_client(self.dir.path());
    }

    /// The admin token the hub wrote into its data dir on first start.
    pub fn admin_token(&self) -> String {
        admin_token(self.dir.path())
    }

    /// Stops the hub abruptly: the engine and server tasks end without any recovery.
    pub async fn stop(&mut self) {
        if let Some(hub) = self.hub.take() {
            hub.shutdown().await;
        }
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, String)>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        if let Some((ct, b)) = body {
            req = req.header("content-type", ct).body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("non-JSON answer ({status}): {text}"));
        (status, value)
    }

    pub async fn post_yaml(&self, path: &str, yaml: &str) -> (u16, Value) {
        self.request(
            reqwest::Method::POST,
            path,
            Some(("application/yaml", yaml.to_string())),
        )
        .await
    }

    pub async fn post(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, None).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::DELETE, path, None).await
    }

    /// Polls an experiment until its phase is `phase`, or panics after `timeout`.
    pub async fn wait_phase(&self, uid: &str, phase: &str, timeout: Duration) -> Value {
        let start = std::time::Instant::now();
        loop {
            let (_, v) = self.get(&format!("/api/v1/experiments/{uid}")).await;
            if v["status"]["phase"] == phase {
                return v;
            }
            assert!(
                start.elapsed() < timeout,
                "experiment {uid} did not reach {phase} within {timeout:?}; now: {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub fn delay_yaml(name: &str, duration: Option<&str>, extra: &str) -> String {
    let duration = duration
        .map(|d| format!("  duration: {d}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  action: delay\n  mode: all\n  selector:\n    labelSelectors:\n      app: web\n  delay:\n    latency: 100ms\n{duration}  environment: mem\n{extra}"
    )
}

/// A sandbox whose hub reads time from `clock` (schedules and deadlines move only when the
/// test moves the clock).
pub async fn start_clocked(targets: usize, clock: Arc<chaoshub::time::ManualClock>) -> Sandbox {
    chaoshub_adapters::install_crypto_provider();
    let mut s = Sandbox {
        hub: None,
        url: String::new(),
        client: reqwest::Client::new(),
        adapter: MemoryAdapter::with_targets(targets),
        dir: tempfile::tempdir().unwrap(),
        tweak: |_| {},
    };
    restart_clocked(&mut s, clock).await;
    s.post_yaml("/api/v1/environments", "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {name: mem}\nspec: {adapter: memory}\n").await;
    s
}

/// Stops the sandbox's hub (if any) and starts a new one on the same store with `clock`.
pub async fn restart_clocked(s: &mut Sandbox, clock: Arc<chaoshub::time::ManualClock>) {
    if let Some(hub) = s.hub.take() {
        hub.shutdown().await;
    }
    let mut registry = AdapterRegistry::builtin();
    registry.register(Arc::new(s.adapter.clone()));
    let mut cfg = config(s.dir.path());
    (s.tweak)(&mut cfg);
    let hub = chaoshub::server::start_with_clock(cfg, registry, clock)
        .await
        .unwrap();
    s.url = hub.url();
    s.hub = Some(hub);
    s.client = authed_client(s.dir.path());
}
