//! The template catalog through the REST API of a real hub on port 0.
//!
//! Every template is checked by the real adapters of this build (`AdapterRegistry::builtin()`
//! plus the engine's `native`): their declared capabilities and pure `check_fault`, and a dry
//! run through `POST /api/v1/templates/{name}/run` in an environment of each adapter the
//! template lists. The fsfault plugin's actions (disk-fill, file-create, file-append) run
//! against the real Python plugin (`examples/plugins/fsfault`) through the webhook adapter.
//! Remote catalogs are served by an HTTP server inside the test.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaoshub::server::RunningHub;
use chaoshub_adapters::AdapterRegistry;
use chaoshub_schema::template::Template;
use serde_json::{json, Value};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn shipped_catalog() -> PathBuf {
    workspace().join("catalog")
}

/// Every shipped template, parsed.
fn shipped_templates() -> Vec<Template> {
    let mut out = Vec::new();
    for category in std::fs::read_dir(shipped_catalog()).unwrap().flatten() {
        if !category.path().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(category.path()).unwrap().flatten() {
            let text = std::fs::read_to_string(file.path()).unwrap();
            out.push(
                Template::from_text(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.path().display())),
            );
        }
    }
    out
}

/// The fsfault plugin serving the directory `web` (label app=web); killed on drop.
struct Fsfault {
    child: Child,
    url: String,
    web_dir: PathBuf,
}

impl Fsfault {
    fn start(root: &Path) -> Fsfault {
        let web_dir = root.join("web");
        let state = root.join("plugin-state");
        std::fs::create_dir_all(&web_dir).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(web_dir.join("app.conf"), "key = value\n").unwrap();
        std::fs::write(web_dir.join("app.log"), "started\n").unwrap();
        let port_file = root.join("plugin.port");
        let mut child = Command::new("python3")
            .arg(workspace().join("examples/plugins/fsfault/fsfault.py"))
            .args(["--listen", "127.0.0.1:0", "--port-file"])
            .arg(&port_file)
            .arg("--target")
            .arg(format!("web={}", web_dir.display()))
            .args(["--label", "web:app=web", "--grace-secs", "1", "--state-dir"])
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is needed to run the fsfault plugin (scripts/install-test-deps.sh)");
        let start = std::time::Instant::now();
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                if !text.trim().is_empty() {
                    break text.trim().to_string();
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the fsfault plugin exited early: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the fsfault plugin did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Fsfault {
            child,
            url: format!("http://127.0.0.1:{port}"),
            web_dir,
        }
    }
}

impl Drop for Fsfault {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct CatalogHub {
    hub: Option<RunningHub>,
    url: String,
    client: reqwest::Client,
    data: tempfile::TempDir,
    catalog_dir: PathBuf,
}

impl CatalogHub {
    async fn start(catalog_dir: &Path) -> CatalogHub {
        chaoshub_adapters::install_crypto_provider();
        let mut h = CatalogHub {
            hub: None,
            url: String::new(),
            client: reqwest::Client::new(),
            data: tempfile::tempdir().unwrap(),
            catalog_dir: catalog_dir.to_path_buf(),
        };
        h.restart().await;
        h
    }

    async fn restart(&mut self) {
        if let Some(hub) = self.hub.take() {
            hub.shutdown().await;
        }
        let mut config = super::support::config(self.data.path());
        config.catalog_dir = self.catalog_dir.clone();
        let hub = chaoshub::server::start_with(config, AdapterRegistry::builtin())
            .await
            .unwrap();
        self.url = hub.url();
        self.hub = Some(hub);
        self.client = super::support::authed_client(self.data.path());
    }

    fn catalog(&self) -> &chaoshub::catalog::Catalog {
        &self.hub.as_ref().unwrap().hub.catalog
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("non-JSON answer ({status}) to {path}: {text}"));
        (status, value)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn register(&self, name: &str, adapter: &str, endpoint: Option<&str>) {
        let endpoint = endpoint
            .map(|e| format!("  endpoint: {e}\n  settings: {{timeout_ms: 3000}}\n"))
            .unwrap_or_default();
        self.register_spec(name, adapter, &endpoint).await;
    }

    /// Registers an environment; `spec` is the YAML after `adapter:` (indented two spaces).
    async fn register_spec(&self, name: &str, adapter: &str, spec: &str) {
        let yaml = format!(
            "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: {name}}}\nspec:\n  adapter: {adapter}\n{spec}"
        );
        let resp = self
            .client
            .post(format!("{}/api/v1/environments", self.url))
            .header("content-type", "application/yaml")
            .body(yaml)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            201,
            "{}",
            resp.text().await.unwrap()
        );
    }
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

/// A kubeconfig naming an API server on a closed loopback port, in the hub's data folder.
fn closed_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("closed.kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:9', insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .unwrap();
    path
}

/// Environments of every adapter type of this build. Those whose far side is not here point
/// at a closed port: the submission checks run before anything is reached, so a template they
/// accept gets past them and then meets the unreachable far side (503), while a refused one is
/// a 400 or 422 without any far side.
async fn register_every_adapter(hub: &CatalogHub, plugin_url: &str) -> BTreeMap<String, String> {
    let closed = "http://127.0.0.1:9";
    let envs = [
        ("hosts", "native", String::new()),
        ("fs", "webhook", format!("  endpoint: {plugin_url}\n  settings: {{timeout_ms: 3000}}\n")),
        ("engine", "docker", "  endpoint: tcp://127.0.0.1:9\n  settings: {timeout_secs: 2}\n".to_string()),
        ("aws", "ssm", format!("  endpoint: {closed}\n  settings: {{region: eu-west-1, timeout_ms: 2000, max_attempts: 1}}\n")),
        ("toxi", "toxiproxy", format!("  endpoint: {closed}\n  settings: {{timeout_ms: 2000}}\n")),
        ("edge", "envoy", format!("  endpoint: {closed}\n  settings: {{timeout_ms: 2000}}\n")),
        (
            "cluster",
            "kubernetes",
            format!("  settings: {{kubeconfig: {}}}\n", closed_kubeconfig(hub.data.path()).display()),
        ),
    ];
    let mut by_adapter = BTreeMap::new();
    for (name, adapter, spec) in envs {
        hub.register_spec(name, adapter, &spec).await;
        by_adapter.insert(adapter.to_string(), name.to_string());
    }
    by_adapter
}

/// The catalog tells the truth: every shipped template, rendered with its defaults, passes the
/// real submission checks of every adapter it lists (capabilities, `check_fault`, and a dry run
/// through the hub in an environment of that adapter), and lists every adapter of this build
/// whose checks accept it. Adapters whose matrix only an environment knows (webhook) cannot be
/// checked statically and are printed as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_template_passes_the_real_checks_of_every_adapter_it_lists() {
    let plugin_dir = tempfile::tempdir().unwrap();
    let plugin = Fsfault::start(plugin_dir.path());
    let hub = CatalogHub::start(&shipped_catalog()).await;
    assert!(
        hub.catalog().problems().is_empty(),
        "{:?}",
        hub.catalog().problems()
    );
    let envs = register_every_adapter(&hub, &plugin.url).await;
    let registry = hub.hub.as_ref().unwrap().hub.engine.registry().clone();
    let (status, list) = hub.get("/api/v1/templates").await;
    assert_eq!(status, 200, "{list}");
    let total = list["total"].as_u64().unwrap() as usize;
    assert_eq!(total, shipped_templates().len());
    assert!(total >= 40, "only {total} templates");
    let mut wrong = Vec::new();
    let mut checked = 0;
    let mut unverifiable = BTreeMap::<String, usize>::new();
    for entry in hub.catalog().entries() {
        let name = entry.summary.name.clone();
        let (status, rendered) = hub
            .post(&format!("/api/v1/templates/{name}/render"), json!({}))
            .await;
        assert_eq!(status, 200, "{name}: {rendered}");
        for adapter in &entry.template.spec.adapters {
            let Some(env) = envs.get(adapter) else {
                *unverifiable.entry(adapter.clone()).or_default() += 1;
                continue;
            };
            checked += 1;
            let (status, answer) = hub
                .post(
                    &format!("/api/v1/templates/{name}/run"),
                    json!({"env": env, "dryRun": true}),
                )
                .await;
            let passed = match adapter.as_str() {
                // Far sides that are here: the dry run plans.
                "native" | "webhook" => status == 200,
                // Closed ports: past the checks, the far side is unreachable.
                _ => status == 503 || status == 502,
            };
            if !passed {
                wrong.push(format!(
                    "{name} lists {adapter}, but its dry run in {env} answered {status}: {}",
                    answer["message"]
                ));
            }
        }
        // Listing is complete: an adapter of this build whose checks accept the template is
        // listed (the plugin's matrix is its own, so webhook is judged by the listing alone).
        for a in registry.all() {
            let t = a.adapter_type();
            if a.dynamic_capabilities() || entry.template.spec.adapters.iter().any(|l| l == t) {
                continue;
            }
            if chaoshub_adapters::conformance::verdict(a.as_ref(), &entry.sample)
                == chaoshub_adapters::conformance::Verdict::Supported
            {
                wrong.push(format!("{name} does not list {t}, whose checks accept it"));
            }
        }
    }
    for (adapter, n) in &unverifiable {
        println!(
            "unverified: {n} claims of adapter {adapter}, whose matrix only an environment knows"
        );
    }
    println!("{checked} (template, adapter) claims checked against the real adapters");
    assert!(
        wrong.is_empty(),
        "{} wrong claims:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(checked >= 60, "only {checked} claims checked");
    // Nothing was created by the dry runs.
    let (_, experiments) = hub.get("/api/v1/experiments").await;
    assert_eq!(experiments["items"].as_array().unwrap().len(), 0);
    drop(plugin);
}

/// `?adapter=X` lists exactly the templates whose run in an X environment passes the checks,
/// and running a template in an environment whose adapter cannot run it is a 422 that names
/// the adapters and the registered environments that can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapter_filter_and_run_agree_with_the_checks() {
    let plugin_dir = tempfile::tempdir().unwrap();
    let plugin = Fsfault::start(plugin_dir.path());
    let hub = CatalogHub::start(&shipped_catalog()).await;
    let envs = register_every_adapter(&hub, &plugin.url).await;
    for (adapter, env) in &envs {
        let (status, list) = hub
            .get(&format!("/api/v1/templates?adapter={adapter}"))
            .await;
        assert_eq!(status, 200, "{list}");
        let listed: std::collections::BTreeSet<String> = names(&list).into_iter().collect();
        assert!(!listed.is_empty(), "no template for {adapter}");
        for entry in hub.catalog().entries() {
            let name = &entry.summary.name;
            let (status, answer) = hub
                .post(
                    &format!("/api/v1/templates/{name}/run"),
                    json!({"env": env, "dryRun": true}),
                )
                .await;
            let refused = status == 422 || status == 400;
            assert_eq!(
                listed.contains(name),
                !refused,
                "{name} in {env} ({adapter}): listed {}, run answered {status}: {answer}",
                listed.contains(name)
            );
            if status == 422 {
                let message = answer["message"].as_str().unwrap();
                assert!(message.contains("it runs on adapters"), "{name}: {message}");
            }
        }
    }
    // The 422 names the adapters and the registered environments that can.
    let (status, err) = hub
        .post(
            "/api/v1/templates/network-loss/run",
            json!({"env": "toxi", "dryRun": true}),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("adapter toxiproxy"), "{message}");
    assert!(message.contains("native, docker"), "{message}");
    assert!(
        message.contains("hosts") && message.contains("engine"),
        "{message}"
    );
    drop(plugin);
}

/// `run` creates a real experiment from a template: file-create on the fsfault plugin puts
/// the file in place, and it is gone when the experiment ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_creates_an_experiment_that_really_injects() {
    let plugin_dir = tempfile::tempdir().unwrap();
    let plugin = Fsfault::start(plugin_dir.path());
    let hub = CatalogHub::start(&shipped_catalog()).await;
    hub.register("fs", "webhook", Some(&plugin.url)).await;
    let (status, created) = hub
        .post(
            "/api/v1/templates/file-create/run",
            json!({"env": "fs", "name": "stray-file", "parameters": {"file_name": "stray.conf", "duration": "2s"}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["metadata"]["name"], "stray-file");
    assert_eq!(
        created["metadata"]["labels"]["chaoshub.dev/template"],
        "file-create"
    );
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let file = plugin.web_dir.join("stray.conf");
    let start = std::time::Instant::now();
    let mut seen = false;
    loop {
        let (_, e) = hub.get(&format!("/api/v1/experiments/{uid}")).await;
        let phase = e["status"]["phase"].as_str().unwrap_or("").to_string();
        if phase == "Running" && file.exists() {
            seen = true;
        }
        if phase == "Finished" {
            break;
        }
        assert!(
            !matches!(phase.as_str(), "Failed" | "Aborted"),
            "experiment ended {phase}: {e}"
        );
        assert!(start.elapsed() < Duration::from_secs(20), "no end: {e}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen, "the file was never seen while the experiment ran");
    assert!(!file.exists(), "the file outlived the experiment");
}

#[tokio::test]
async fn search_filters_and_facets() {
    let hub = CatalogHub::start(&shipped_catalog()).await;
    let (_, all) = hub.get("/api/v1/templates").await;
    let total = all["total"].as_u64().unwrap();
    // Facets over everything add up.
    let by_category: u64 = all["facets"]["category"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_category, total);
    assert_eq!(all["facets"]["source"]["local"], total);

    let (status, proxy) = hub.get("/api/v1/templates?category=proxy").await;
    assert_eq!(status, 200);
    assert_eq!(proxy["total"], 8, "{proxy}");
    assert_eq!(proxy["facets"]["category"], json!({"proxy": 8}));
    assert_eq!(proxy["facets"]["kind"], json!({"ProxyChaos": 8}));
    assert_eq!(proxy["facets"]["adapter"]["toxiproxy"], 8);

    // The eight ProxyChaos templates, and the NetworkChaos ones a proxy runs (delay,
    // bandwidth, partition) — not loss, which a TCP proxy cannot do.
    let (_, toxi) = hub.get("/api/v1/templates?adapter=toxiproxy").await;
    assert_eq!(toxi["facets"]["kind"]["ProxyChaos"], 8, "{toxi}");
    let found = names(&toxi);
    assert!(found.contains(&"network-delay".to_string()), "{found:?}");
    assert!(!found.contains(&"network-loss".to_string()), "{found:?}");
    for item in toxi["items"].as_array().unwrap() {
        assert!(item["adapters"]
            .as_array()
            .unwrap()
            .contains(&json!("toxiproxy")));
    }

    // q: every word must match somewhere (name, title, description, tags), any case.
    let (_, q) = hub.get("/api/v1/templates?q=PARTITION").await;
    let found = names(&q);
    assert!(
        found.contains(&"network-partition".to_string()),
        "{found:?}"
    );
    assert!(found.contains(&"network-partition-external".to_string()));
    let (_, q2) = hub.get("/api/v1/templates?q=partition%20external").await;
    assert_eq!(names(&q2), vec!["network-partition-external"]);

    // Filters combine.
    let (_, both) = hub
        .get("/api/v1/templates?tag=latency&adapter=ssm&kind=NetworkChaos")
        .await;
    let found = names(&both);
    assert!(
        found.contains(&"ssm-network-latency".to_string()),
        "{found:?}"
    );
    assert!(!found.iter().any(|n| n.starts_with("proxy-")));
    for item in both["items"].as_array().unwrap() {
        assert!(item["tags"].as_array().unwrap().contains(&json!("latency")));
        assert_eq!(item["kind"], "NetworkChaos");
    }

    let (_, none) = hub.get("/api/v1/templates?q=no-such-thing-anywhere").await;
    assert_eq!(none["total"], 0);
    assert_eq!(none["facets"]["category"], json!({}));

    let (status, err) = hub.get("/api/v1/templates?categroy=proxy").await;
    assert_eq!(status, 400);
    assert!(
        err["message"].as_str().unwrap().contains("categroy"),
        "{err}"
    );
}

#[tokio::test]
async fn detail_render_errors_and_run_without_environment() {
    let hub = CatalogHub::start(&shipped_catalog()).await;
    let (status, detail) = hub.get("/api/v1/templates/network-delay").await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["kind"], "NetworkChaos");
    let schema = &detail["parametersSchema"];
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["properties"]["mode"]["enum"], json!(["one", "all"]));
    assert_eq!(schema["properties"]["latency"]["default"], "100ms");
    assert_eq!(detail["template"]["kind"], "Template");

    let (status, err) = hub.get("/api/v1/templates/no-such-template").await;
    assert_eq!(status, 404, "{err}");

    let (status, err) = hub
        .post(
            "/api/v1/templates/network-delay/render",
            json!({"parameters": {"latncy": "1s", "mode": "some", "duration": "2h"}}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    let details = err["details"].as_array().unwrap();
    let at = |path: &str| {
        details
            .iter()
            .find(|d| d["path"] == path)
            .unwrap_or_else(|| panic!("no error at {path}: {err}"))["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(at("parameters.latncy").contains("did you mean \"latency\""));
    assert!(at("parameters.mode").contains("one, all"));
    assert!(at("parameters.duration").contains("at most 1h"));

    let (status, err) = hub
        .post(
            "/api/v1/templates/network-delay/render",
            json!({"params": {}}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(err["message"].as_str().unwrap().contains("params"), "{err}");

    let (status, rendered) = hub
        .post(
            "/api/v1/templates/network-loss/render",
            json!({"parameters": {"loss": "35%"}, "name": "loss-35", "namespace": "team-a", "env": "staging"}),
        )
        .await;
    assert_eq!(status, 200, "{rendered}");
    let m = &rendered["manifest"];
    assert_eq!(m["spec"]["loss"]["loss"], "35");
    assert_eq!(m["spec"]["environment"], "staging");
    assert_eq!(m["metadata"]["name"], "loss-35");
    assert_eq!(m["metadata"]["namespace"], "team-a");
    assert_eq!(rendered["parameters"]["loss"], 35);

    // No environment anywhere: run refuses, naming the field.
    let (status, err) = hub
        .post("/api/v1/templates/network-delay/run", json!({}))
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["details"][0]["path"], "spec.environment", "{err}");
    let (status, err) = hub
        .post(
            "/api/v1/templates/network-delay/run",
            json!({"env": "nowhere"}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["details"][0]["path"], "env", "{err}");
}

/// A broken local file is reported and skipped; the rest of the local catalog loads.
#[tokio::test]
async fn a_broken_local_template_does_not_hide_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let network = dir.path().join("network");
    std::fs::create_dir_all(&network).unwrap();
    std::fs::copy(
        shipped_catalog().join("network/network-loss.yaml"),
        network.join("network-loss.yaml"),
    )
    .unwrap();
    std::fs::write(network.join("broken.yaml"), "apiVersion: chaoshub.dev/v1alpha1\nkind: Template\nmetadata: {name: broken}\nspec: {title: t}\n").unwrap();
    std::fs::copy(
        shipped_catalog().join("network/network-delay.yaml"),
        network.join("renamed.yaml"),
    )
    .unwrap();
    let hub = CatalogHub::start(dir.path()).await;
    let (_, list) = hub.get("/api/v1/templates").await;
    assert_eq!(names(&list), vec!["network-loss"]);
    let problems = hub.catalog().problems();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems
        .iter()
        .any(|p| p.file.ends_with("broken.yaml") && p.message.contains("spec.description")));
    assert!(problems
        .iter()
        .any(|p| p.file.ends_with("renamed.yaml") && p.message.contains("file name")));
}

// ---- remote catalogs ----

/// What the test's catalog server serves, and what it was asked for.
#[derive(Default)]
struct Served {
    /// path → (status, body)
    files: HashMap<String, (u16, String)>,
    hits: HashMap<String, usize>,
}

struct CatalogServer {
    url: String,
    served: Arc<Mutex<Served>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CatalogServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CatalogServer {
    async fn start() -> CatalogServer {
        let served = Arc::new(Mutex::new(Served::default()));
        let state = Arc::clone(&served);
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let state = Arc::clone(&state);
            async move {
                let mut s = state.lock().unwrap();
                *s.hits.entry(uri.path().to_string()).or_default() += 1;
                match s.files.get(uri.path()) {
                    Some((status, body)) => (
                        axum::http::StatusCode::from_u16(*status).unwrap(),
                        body.clone(),
                    ),
                    None => (axum::http::StatusCode::NOT_FOUND, "not found".to_string()),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CatalogServer {
            url: format!("http://{addr}"),
            served,
            task,
        }
    }

    fn put(&self, path: &str, status: u16, body: &str) {
        self.served
            .lock()
            .unwrap()
            .files
            .insert(path.to_string(), (status, body.to_string()));
    }

    fn hits(&self, path: &str) -> usize {
        self.served
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Serves an index listing `templates` (name → body) with `last_change`.
    fn publish(&self, last_change: &str, templates: &[(&str, String)]) {
        let mut index = format!(
            "apiVersion: chaoshub.dev/v1alpha1\nkind: CatalogIndex\nlastChange: \"{last_change}\"\ntemplates:\n"
        );
        for (name, body) in templates {
            index.push_str(&format!(
                "  - name: {name}\n    url: templates/{name}.yaml\n"
            ));
            self.put(&format!("/hub/templates/{name}.yaml"), 200, body);
        }
        self.put("/hub/index.yaml", 200, &index);
    }
}

fn shipped(category: &str, name: &str) -> String {
    std::fs::read_to_string(
        shipped_catalog()
            .join(category)
            .join(format!("{name}.yaml")),
    )
    .unwrap()
}

/// A shipped template renamed, with a different title.
fn variant(category: &str, name: &str, new_name: &str, title: &str) -> String {
    shipped(category, name)
        .replacen(
            &format!("name: {name}\n"),
            &format!("name: {new_name}\n"),
            1,
        )
        .replacen("  title: ", &format!("  title: {title} — "), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_catalog_changed_unchanged_and_cached_offline() {
    let server = CatalogServer::start().await;
    server.publish(
        "2024-05-01T00:00:00Z",
        &[
            (
                "slow-redis",
                variant("proxy", "proxy-latency", "slow-redis", "v1"),
            ),
            ("kill-web", variant("pod", "pod-kill", "kill-web", "v1")),
            // Invalid: names an adapter nobody knows.
            (
                "odd",
                variant("pod", "pod-kill", "odd", "v1")
                    .replace("adapters: [docker, kubernetes]", "adapters: [teleport]"),
            ),
        ],
    );
    let mut hub = CatalogHub::start(&shipped_catalog()).await;
    let (_, local) = hub.get("/api/v1/templates").await;
    let local_total = local["total"].as_u64().unwrap();

    let index_url = format!("{}/hub/index.yaml", server.url);
    let (status, added) = hub
        .post(
            "/api/v1/catalogs",
            json!({"name": "acme", "url": index_url}),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["templates"], 2, "{added}");
    assert_eq!(added["lastChange"], "2024-05-01T00:00:00Z");
    assert!(added.get("lastError").is_none(), "{added}");
    assert_eq!(added["rejected"][0]["name"], "odd");
    assert!(
        added["rejected"][0]["message"]
            .as_str()
            .unwrap()
            .contains("teleport"),
        "{added}"
    );

    // Namespaced by hub name, searchable and renderable like local ones.
    let (_, list) = hub.get("/api/v1/templates?source=acme").await;
    assert_eq!(names(&list), vec!["acme/kill-web", "acme/slow-redis"]);
    let (_, all) = hub.get("/api/v1/templates").await;
    assert_eq!(all["total"].as_u64().unwrap(), local_total + 2);
    assert_eq!(all["facets"]["source"]["acme"], 2);
    let (status, detail) = hub.get("/api/v1/templates/acme%2Fslow-redis").await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["source"], "acme");
    let (status, rendered) = hub
        .post(
            "/api/v1/templates/acme%2Fslow-redis/render",
            json!({"parameters": {"latency": 900}}),
        )
        .await;
    assert_eq!(status, 200, "{rendered}");
    assert_eq!(rendered["manifest"]["spec"]["latency"]["latency"], 900);
    assert_eq!(
        rendered["manifest"]["metadata"]["labels"]["chaoshub.dev/template"],
        "acme/slow-redis"
    );

    // Unchanged lastChange: only the index is fetched again.
    let template_hits = server.hits("/hub/templates/slow-redis.yaml");
    assert_eq!(template_hits, 1);
    let (status, refreshed) = hub.post("/api/v1/catalogs/acme/refresh", json!(null)).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(server.hits("/hub/index.yaml"), 2);
    assert_eq!(server.hits("/hub/templates/slow-redis.yaml"), 1);
    assert_eq!(refreshed["templates"], 2);

    // Changed: a new lastChange brings the new set (one template removed, one changed).
    server.publish(
        "2024-06-01T00:00:00Z",
        &[(
            "slow-redis",
            variant("proxy", "proxy-latency", "slow-redis", "v2"),
        )],
    );
    let (_, refreshed) = hub.post("/api/v1/catalogs/acme/refresh", json!(null)).await;
    assert_eq!(
        refreshed["lastChange"], "2024-06-01T00:00:00Z",
        "{refreshed}"
    );
    assert_eq!(refreshed["templates"], 1);
    assert!(refreshed.get("rejected").is_none(), "{refreshed}");
    assert_eq!(server.hits("/hub/templates/slow-redis.yaml"), 2);
    let (_, list) = hub.get("/api/v1/templates?source=acme").await;
    assert_eq!(names(&list), vec!["acme/slow-redis"]);
    assert!(list["items"][0]["title"]
        .as_str()
        .unwrap()
        .starts_with("v2"));

    // Offline: the server goes away and the hub restarts from its cache.
    drop(server);
    hub.restart().await;
    let (_, list) = hub.get("/api/v1/templates?source=acme").await;
    assert_eq!(names(&list), vec!["acme/slow-redis"]);
    let (_, remote) = hub.post("/api/v1/catalogs/acme/refresh", json!(null)).await;
    assert!(
        remote["lastError"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{remote}"
    );
    let (_, list) = hub.get("/api/v1/templates?source=acme").await;
    assert_eq!(
        names(&list),
        vec!["acme/slow-redis"],
        "the cache stays in use"
    );

    // Remove: templates and cache are gone, the local catalog is intact.
    let (status, _) = hub
        .call(reqwest::Method::DELETE, "/api/v1/catalogs/acme", None)
        .await;
    assert_eq!(status, 200);
    let (_, all) = hub.get("/api/v1/templates").await;
    assert_eq!(all["total"].as_u64().unwrap(), local_total);
    assert!(!hub.data.path().join("catalogs/acme").exists());
    let (status, _) = hub.get("/api/v1/catalogs/acme").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_malformed_remotes_never_break_the_local_catalog() {
    let hub = CatalogHub::start(&shipped_catalog()).await;
    let (_, local) = hub.get("/api/v1/templates").await;
    let local_total = local["total"].clone();

    // Unreachable: a port nobody listens on. Added, with the reason recorded.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (status, added) = hub
        .post(
            "/api/v1/catalogs",
            json!({"name": "gone", "url": format!("http://127.0.0.1:{closed}/index.yaml")}),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["templates"], 0);
    assert!(
        added["lastError"].as_str().unwrap().contains("unreachable"),
        "{added}"
    );

    let server = CatalogServer::start().await;
    // Malformed: not an index at all, then an index with broken fields, then an HTTP error.
    server.put("/bad/index.yaml", 200, "this: [is not: an index");
    let (status, bad) = hub
        .post(
            "/api/v1/catalogs",
            json!({"name": "bad", "url": format!("{}/bad/index.yaml", server.url)}),
        )
        .await;
    assert_eq!(status, 201, "{bad}");
    assert!(
        bad["lastError"].as_str().unwrap().contains("malformed"),
        "{bad}"
    );
    server.put(
        "/bad/index.yaml",
        200,
        "apiVersion: chaoshub.dev/v1alpha1\nkind: CatalogIndex\ntemplates: [{name: x}]\n",
    );
    let (_, bad) = hub.post("/api/v1/catalogs/bad/refresh", json!(null)).await;
    let error = bad["lastError"].as_str().unwrap();
    assert!(
        error.contains("lastChange") && error.contains("url"),
        "{bad}"
    );
    server.put("/bad/index.yaml", 500, "boom");
    let (_, bad) = hub.post("/api/v1/catalogs/bad/refresh", json!(null)).await;
    assert!(
        bad["lastError"].as_str().unwrap().contains("HTTP 500"),
        "{bad}"
    );

    // A template file that cannot be fetched fails the refresh as a whole.
    server.put(
        "/half/index.yaml",
        200,
        "apiVersion: chaoshub.dev/v1alpha1\nkind: CatalogIndex\nlastChange: '1'\ntemplates: [{name: missing, url: missing.yaml}]\n",
    );
    let (_, half) = hub
        .post(
            "/api/v1/catalogs",
            json!({"name": "half", "url": format!("{}/half/index.yaml", server.url)}),
        )
        .await;
    assert!(
        half["lastError"].as_str().unwrap().contains("HTTP 404"),
        "{half}"
    );

    let (_, list) = hub.get("/api/v1/templates").await;
    assert_eq!(list["total"], local_total);
    let (_, remotes) = hub.get("/api/v1/catalogs").await;
    assert_eq!(remotes["items"].as_array().unwrap().len(), 3);

    // Input errors are 4xx naming the field.
    let (status, err) = hub
        .post(
            "/api/v1/catalogs",
            json!({"name": "Bad Name", "url": "http://x/i.yaml"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(err["details"][0]["path"], "name");
    let (status, err) = hub
        .post(
            "/api/v1/catalogs",
            json!({"name": "ftp", "url": "ftp://x/i.yaml"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(err["details"][0]["path"], "url");
    let (status, err) = hub
        .post(
            "/api/v1/catalogs",
            json!({"name": "local", "url": "http://x/i.yaml"}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    let (status, _) = hub
        .post(
            "/api/v1/catalogs",
            json!({"name": "gone", "url": "http://127.0.0.1:1/index.yaml"}),
        )
        .await;
    assert_eq!(status, 409);
}

/// A remote that answers, but too slowly, is cut off by the request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_remote_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts connections and never answers.
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let remotes = chaoshub::catalog::RemoteCatalog::open(
        dir.path(),
        chaoshub::catalog::RemoteSettings {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_millis(300),
            max_bytes: 1024,
            ..Default::default()
        },
    );
    let started = std::time::Instant::now();
    let object = remotes
        .add("slow", &format!("http://{addr}/index.yaml"))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        object
            .last_error
            .as_deref()
            .unwrap()
            .contains("did not answer in time"),
        "{object:?}"
    );
    task.abort();
}

// ---- saving templates (POST /api/v1/templates) ----

/// A Workflow template as the console's builder saves one: a delay, then a pause, both typed
/// parameters.
fn workflow_template(name: &str, title: &str, category: &str) -> Value {
    json!({
        "apiVersion": "chaoshub.dev/v1alpha1",
        "kind": "Template",
        "metadata": {"name": name},
        "spec": {
            "title": title,
            "description": "Latency on the web tier, then a pause.",
            "category": category,
            "adapters": ["native"],
            "parameters": [
                {"name": "latency", "type": "duration", "description": "delay added", "default": "100ms"},
                {"name": "pause", "type": "duration", "description": "how long to wait", "default": "1s"}
            ],
            "experiment": {
                "apiVersion": "chaos-mesh.org/v1alpha1",
                "kind": "Workflow",
                "metadata": {"generateName": "lat-"},
                "spec": {"entry": "root", "templates": [
                    {"name": "root", "templateType": "Serial", "children": ["delay", "nap"]},
                    {"name": "delay", "templateType": "NetworkChaos", "deadline": "5s",
                     "networkChaos": {"action": "delay", "mode": "all",
                        "selector": {"labelSelectors": {"app": "web"}},
                        "delay": {"latency": "${latency}"}}},
                    {"name": "nap", "templateType": "Suspend", "deadline": "${pause}"}
                ]}
            }
        }
    })
}

/// The files (not folders) under `dir`, relative, sorted: what a save left on disk.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for category in std::fs::read_dir(dir).unwrap().flatten() {
        for f in std::fs::read_dir(category.path()).unwrap().flatten() {
            out.push(format!(
                "{}/{}",
                category.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            ));
        }
    }
    out.sort();
    out
}

fn detail_paths(body: &Value) -> Vec<String> {
    body["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|e| e["path"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn save_template_writes_the_file_reloads_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    let hub = CatalogHub::start(dir.path()).await;
    let (code, body) = hub
        .post(
            "/api/v1/templates",
            workflow_template("web-latency", "Latency then pause", "workflow"),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["name"], "web-latency");
    assert_eq!(body["kind"], "Workflow");
    assert_eq!(body["actions"], json!(["delay"]));
    assert_eq!(body["parameters"], json!(["latency", "pause"]));
    // Exactly one file, no temporary left behind, and it is an ordinary catalog file.
    assert_eq!(files_under(dir.path()), ["workflow/web-latency.yaml"]);
    let text = std::fs::read_to_string(dir.path().join("workflow/web-latency.yaml")).unwrap();
    let parsed = Template::from_text(&text).unwrap();
    assert_eq!(parsed.name(), "web-latency");
    assert_eq!(parsed.spec.parameters.len(), 2);
    // Listed (judged per chaos node: native runs NetworkChaos/delay), with its typed form.
    let (code, list) = hub.get("/api/v1/templates?kind=Workflow").await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(names(&list), ["web-latency"]);
    assert_eq!(list["items"][0]["adapters"], json!(["native"]), "{list}");
    // An adapter that cannot run one of its chaos nodes is refused, naming the node.
    let mut on_envoy = workflow_template("web-latency-envoy", "Latency on Envoy", "workflow");
    on_envoy["spec"]["adapters"] = json!(["native", "envoy"]);
    let (code, body) = hub.post("/api/v1/templates", on_envoy).await;
    assert_eq!(code, 201, "{body}");
    let (_, list) = hub.get("/api/v1/templates?q=envoy").await;
    let item = &list["items"][0];
    assert_eq!(item["adapters"], json!(["native"]), "{list}");
    let why = item["refused"]["envoy"].as_str().unwrap_or_default();
    assert!(why.starts_with("workflow node \"delay\""), "{list}");
    let (code, detail) = hub.get("/api/v1/templates/web-latency").await;
    assert_eq!(code, 200, "{detail}");
    assert_eq!(
        detail["parametersSchema"]["properties"]["latency"]["default"],
        "100ms"
    );
    // Rendered with a value, the placeholder is filled where it stood.
    let (code, rendered) = hub
        .post(
            "/api/v1/templates/web-latency/render",
            json!({"parameters": {"latency": "250ms"}}),
        )
        .await;
    assert_eq!(code, 200, "{rendered}");
    let templates = &rendered["manifest"]["spec"]["templates"];
    assert_eq!(templates[1]["networkChaos"]["delay"]["latency"], "250ms");
    assert_eq!(templates[2]["deadline"], "1s");
    // A fresh hub on the same folder finds it (it was really written, not only cached).
    drop(hub);
    let again = CatalogHub::start(dir.path()).await;
    let (code, _) = again.get("/api/v1/templates/web-latency").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn save_template_conflicts_unless_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let hub = CatalogHub::start(dir.path()).await;
    let (code, body) = hub
        .post(
            "/api/v1/templates",
            workflow_template("web-latency", "First", "workflow"),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = hub
        .post(
            "/api/v1/templates",
            workflow_template("web-latency", "Second", "workflow"),
        )
        .await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["code"], "template_exists");
    assert!(
        body["message"].as_str().unwrap().contains("overwrite=true"),
        "{body}"
    );
    let (_, detail) = hub.get("/api/v1/templates/web-latency").await;
    assert_eq!(detail["title"], "First", "a refused save changed nothing");
    // Replaced, in another category: the old file goes, the name stays unique.
    let (code, body) = hub
        .post(
            "/api/v1/templates?overwrite=true",
            workflow_template("web-latency", "Second", "network"),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["title"], "Second");
    assert_eq!(files_under(dir.path()), ["network/web-latency.yaml"]);
    assert!(
        hub.catalog().problems().is_empty(),
        "{:?}",
        hub.catalog().problems()
    );
    let (code, body) = hub
        .post(
            "/api/v1/templates?overwrite=perhaps",
            workflow_template("web-latency", "Third", "network"),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("overwrite"),
        "{body}"
    );
}

#[tokio::test]
async fn save_template_names_the_bad_field() {
    let dir = tempfile::tempdir().unwrap();
    let hub = CatalogHub::start(dir.path()).await;
    let base = workflow_template("bad", "Bad", "workflow");
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "a parameter of an unknown type",
            Box::new(|t| t["spec"]["parameters"][0]["type"] = json!("colour")),
            "spec.parameters[0].type",
        ),
        (
            "an unknown adapter",
            Box::new(|t| t["spec"]["adapters"] = json!(["mainframe"])),
            "spec.adapters[0]",
        ),
        (
            "a default that is not a duration",
            Box::new(|t| t["spec"]["parameters"][1]["default"] = json!("soon")),
            "spec.parameters[1].default",
        ),
        (
            "a placeholder of no parameter",
            Box::new(|t| {
                t["spec"]["experiment"]["spec"]["templates"][1]["networkChaos"]["mode"] =
                    json!("${how_many}")
            }),
            "spec.experiment.spec.templates[1].networkChaos.mode",
        ),
        (
            "a rendered workflow the API refuses",
            Box::new(|t| {
                t["spec"]["experiment"]["spec"]["templates"][1]["networkChaos"]["action"] =
                    json!("teleport")
            }),
            "spec.experiment.spec.templates[1].networkChaos.action",
        ),
        (
            "a workflow whose tree is a cycle",
            Box::new(|t| {
                t["spec"]["experiment"]["spec"]["templates"][0]["children"] =
                    json!(["delay", "root"])
            }),
            "spec.experiment.spec.templates",
        ),
        (
            "a category that is no folder name",
            Box::new(|t| t["spec"]["category"] = json!("../etc")),
            "spec.category",
        ),
        (
            "no name",
            Box::new(|t| t["metadata"] = json!({"generateName": "x-"})),
            "metadata.name",
        ),
        (
            "an experiment that is not a fault or a workflow",
            Box::new(|t| {
                t["spec"]["experiment"] = json!({
                    "apiVersion": "chaos-mesh.org/v1alpha1",
                    "kind": "StatusCheck",
                    "metadata": {"name": "probe"},
                    "spec": {"type": "HTTP", "http": {"url": "http://127.0.0.1:9/", "criteria": {"statusCode": "200"}}}
                });
                t["spec"]["parameters"] = json!([]);
            }),
            "spec.experiment.kind",
        ),
    ];
    for (what, change, path) in cases {
        let mut t = base.clone();
        change(&mut t);
        let (code, body) = hub.post("/api/v1/templates", t).await;
        assert_eq!(code, 400, "{what}: {body}");
        assert!(
            detail_paths(&body).iter().any(|p| p.starts_with(path)),
            "{what}: no detail at {path}: {body}"
        );
    }
    // An empty body and a body that is not a template.
    let resp = hub
        .client
        .post(format!("{}/api/v1/templates", hub.url))
        .header("content-type", "application/json")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let (code, body) = hub
        .post(
            "/api/v1/templates",
            json!({"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "PodChaos", "metadata": {"name": "x"}, "spec": {"action": "pod-kill", "mode": "one", "selector": {}}}),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(detail_paths(&body).contains(&"kind".to_string()), "{body}");
    // Nothing was written by any refusal.
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[tokio::test]
async fn save_template_needs_the_admin_role_and_a_catalog_folder() {
    let dir = tempfile::tempdir().unwrap();
    let hub = CatalogHub::start(dir.path()).await;
    for role in ["viewer", "operator"] {
        let (code, body) = hub
            .post(
                "/api/v1/tokens",
                json!({"name": format!("t-{role}"), "role": role}),
            )
            .await;
        assert_eq!(code, 201, "{body}");
        let client = super::support::client_with_token(body["token"].as_str().unwrap());
        let resp = client
            .post(format!("{}/api/v1/templates", hub.url))
            .json(&workflow_template("web-latency", "T", "workflow"))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 403, "{role}: {text}");
        assert!(text.contains("templates:write"), "{role}: {text}");
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());

    // A hub whose catalog_dir does not exist has nowhere to write: 409 saying so.
    let missing = dir.path().join("no-such-catalog");
    let hub = CatalogHub::start(&missing).await;
    let (code, body) = hub
        .post(
            "/api/v1/templates",
            workflow_template("web-latency", "T", "workflow"),
        )
        .await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["code"], "catalog_not_writable");
    assert!(
        body["message"].as_str().unwrap().contains("catalog_dir"),
        "{body}"
    );
    assert!(!missing.exists());
}
