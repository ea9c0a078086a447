//! The `webhook` adapter against the real example plugin, `examples/plugins/fsfault/fsfault.py`,
//! started as a subprocess on port 0 with its own temporary directories. The faults are real:
//! tests look at the files on disk, not only at what the plugin says.
//!
//! Two tests use stand-ins where the real plugin cannot misbehave on demand: a TCP listener that
//! never answers (timeouts) and a tiny axum server that always answers 500 (retries of 5xx).
//!
//! Needs `python3` (3.11+) on PATH; without it the tests fail saying so.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener as StdTcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use chaoshub_adapters::webhook::WebhookAdapter;
use chaoshub_adapters::{
    Adapter, AdapterError, Environment, FaultRequest, Injection, InjectionState,
};
use chaoshub_schema::api::Capability;
use chaoshub_schema::environment::EnvironmentSpec;
use chaoshub_schema::Target;
use serde_json::{json, Value};

const PLUGIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/plugins/fsfault/fsfault.py"
);
const ENV_NAME: &str = "fs-lab";

// ---------------------------------------------------------------------------------------------
// Fixture: temporary directories plus the plugin process, cleaned up even when a test panics.

fn require_python() {
    static CHECK: Once = Once::new();
    CHECK.call_once(|| {
        let ok = Command::new("python3")
            .arg("-c")
            .arg("import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "these tests run the example plugin and need `python3` (3.11 or newer) on PATH"
        );
    });
}

/// One running plugin. Dropping it kills the process (and prints its log if the test failed).
struct PluginProcess {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for PluginProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("---- fsfault log ({}) ----\n{log}", self.log.display());
        }
    }
}

/// Temporary directories and the plugin serving them. Fields drop in order: the process goes
/// first, then the directories.
struct Lab {
    plugin: PluginProcess,
    extra_args: Vec<String>,
    web: PathBuf,
    db: PathBuf,
    root: tempfile::TempDir,
}

impl Lab {
    fn start(extra_args: &[&str]) -> Lab {
        require_python();
        let root = tempfile::tempdir().expect("temporary directory");
        let web = root.path().join("web");
        let db = root.path().join("db");
        fs::create_dir_all(&web).unwrap();
        fs::create_dir_all(&db).unwrap();
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let plugin = spawn_plugin(root.path(), &web, &db, &extra_args);
        Lab {
            plugin,
            extra_args,
            web,
            db,
            root,
        }
    }

    /// Kills the plugin without letting it clean up (SIGKILL) and starts it again on the same
    /// state directory.
    fn crash_and_restart(&mut self) {
        self.plugin.child.kill().unwrap();
        self.plugin.child.wait().unwrap();
        let fresh = spawn_plugin(self.root.path(), &self.web, &self.db, &self.extra_args);
        // The old value's Drop kills an already dead process, which is harmless.
        self.plugin = fresh;
    }

    fn env(&self, settings: Value) -> Environment {
        environment(&format!("http://127.0.0.1:{}", self.plugin.port), settings)
    }
}

fn spawn_plugin(root: &Path, web: &Path, db: &Path, extra_args: &[String]) -> PluginProcess {
    let port_file = root.join("plugin.port");
    let _ = fs::remove_file(&port_file);
    let log = root.join("plugin.log");
    let log_file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let child = Command::new("python3")
        .arg(PLUGIN)
        .args(["--listen", "127.0.0.1:0"])
        .arg("--port-file")
        .arg(&port_file)
        .arg("--target")
        .arg(format!("web={}", web.display()))
        .arg("--target")
        .arg(format!("db={}", db.display()))
        .args([
            "--label",
            "web:tier=frontend",
            "--label",
            "web:team=edge",
            "--label",
            "db:tier=storage",
        ])
        .arg("--state-dir")
        .arg(root.join("state"))
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("cannot start python3");
    let mut plugin = PluginProcess {
        child,
        port: 0,
        log,
    };
    let started = Instant::now();
    loop {
        if let Ok(text) = fs::read_to_string(&port_file) {
            plugin.port = text.trim().parse().expect("port file holds a port");
            return plugin;
        }
        if let Some(status) = plugin.child.try_wait().unwrap() {
            panic!("fsfault exited with {status} before listening");
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "fsfault did not start within 15 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn environment(endpoint: &str, settings: Value) -> Environment {
    Environment {
        name: ENV_NAME.into(),
        spec: EnvironmentSpec {
            adapter: "webhook".into(),
            endpoint: Some(endpoint.into()),
            description: None,
            labels: BTreeMap::new(),
            settings: settings.as_object().cloned().unwrap_or_default(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

fn fault(
    injection_id: &str,
    action: &str,
    block: Value,
    deadline: Option<chrono::DateTime<chrono::Utc>>,
) -> FaultRequest {
    let manifest = json!({
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "PhysicalMachineChaos",
        "metadata": {"name": "fs-fault", "namespace": "default"},
        "spec": {
            "action": action,
            "mode": "all",
            "selector": {"labelSelectors": {"tier": "frontend"}},
            action: block,
            "duration": "30s",
        },
    });
    let manifest =
        chaoshub_schema::parse_one(&manifest.to_string()).expect("a valid PhysicalMachineChaos");
    FaultRequest {
        experiment_uid: "exp-1".into(),
        injection_id: injection_id.into(),
        name: "fs-fault".into(),
        namespace: "default".into(),
        manifest: Arc::new(manifest),
        actions: vec![action.into()],
        deadline,
    }
}

fn disk_fill(injection_id: &str, size: &str) -> FaultRequest {
    fault(injection_id, "disk-fill", json!({"size": size}), None)
}

fn injection(fault: &FaultRequest, target: &Target, details: Value) -> Injection {
    Injection {
        experiment_uid: fault.experiment_uid.clone(),
        injection_id: fault.injection_id.clone(),
        kind: fault.kind().to_string(),
        actions: fault.actions.clone(),
        target: target.clone(),
        details,
    }
}

async fn target(adapter: &WebhookAdapter, env: &Environment, id: &str) -> Target {
    let targets = adapter.discover(env).await.expect("discover");
    targets
        .into_iter()
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("no target {id}"))
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn wait_for_state(
    adapter: &WebhookAdapter,
    env: &Environment,
    injection: &Injection,
    wanted: InjectionState,
    within: Duration,
) {
    let started = Instant::now();
    loop {
        let state = adapter.status(env, injection).await.expect("status");
        if state == wanted {
            return;
        }
        assert!(
            started.elapsed() < within,
            "still {state:?} after {within:?}, wanted {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Tests against the real plugin

#[tokio::test]
async fn describes_capabilities_and_discovers_labelled_targets() {
    let lab = Lab::start(&[]);
    let adapter = WebhookAdapter::new();
    let env = lab.env(json!({}));

    let described = adapter.describe(&env).await.unwrap();
    assert_eq!(
        (described.name.as_str(), described.protocol.as_str()),
        ("fsfault", "v1")
    );
    let capabilities = adapter.environment_capabilities(&env).await.unwrap();
    for action in ["disk-fill", "file-create", "file-append"] {
        assert!(
            capabilities.contains(&Capability::new("PhysicalMachineChaos", action)),
            "{capabilities:?}"
        );
    }
    assert!(adapter.dynamic_capabilities());
    assert!(adapter.capabilities().is_empty());

    let targets = adapter.discover(&env).await.unwrap();
    assert_eq!(targets.len(), 2, "{targets:?}");
    let web = targets.iter().find(|t| t.id == "web").expect("web target");
    assert_eq!(web.environment, ENV_NAME);
    assert_eq!(web.adapter, "webhook");
    assert_eq!(web.kind, "directory");
    assert_eq!(web.labels.get("tier").map(String::as_str), Some("frontend"));
    assert_eq!(web.labels.get("team").map(String::as_str), Some("edge"));
    let db = targets.iter().find(|t| t.id == "db").expect("db target");
    assert_eq!(db.labels.get("tier").map(String::as_str), Some("storage"));
}

#[tokio::test]
async fn disk_fill_is_injected_read_back_and_recovered() {
    let lab = Lab::start(&[]);
    let adapter = WebhookAdapter::new();
    let env = lab.env(json!({"timeout_ms": 5000, "retries": 1}));
    let web = target(&adapter, &env, "web").await;
    let fault = disk_fill("exp-1-0", "1MB");

    let details = adapter.inject(&env, &fault, &web).await.expect("inject");
    let fill = lab.web.join("chaoshub-fill-exp-1-0");
    assert_eq!(details["path"], json!(fill.to_str().unwrap()), "{details}");
    assert_eq!(
        fs::metadata(&fill).expect("the fill file exists").len(),
        1_000_000
    );

    let stored = injection(&fault, &web, details);
    assert_eq!(
        adapter.status(&env, &stored).await.unwrap(),
        InjectionState::Active
    );
    // A hub that crashed before storing the answer still gets the truth from the plugin.
    let lost = injection(&fault, &web, Value::Null);
    assert_eq!(
        adapter.status(&env, &lost).await.unwrap(),
        InjectionState::Active
    );

    adapter.recover(&env, &stored).await.expect("recover");
    assert!(!fill.exists(), "the fill file is gone after recovery");
    assert_eq!(
        adapter.status(&env, &stored).await.unwrap(),
        InjectionState::Absent
    );
    adapter
        .recover(&env, &stored)
        .await
        .expect("recovering twice is fine");
    adapter
        .recover(&env, &lost)
        .await
        .expect("recovering an unknown injection is fine");
    assert!(files_in(&lab.web).is_empty());
}

#[tokio::test]
async fn disk_fill_by_fallocate_in_a_subdirectory() {
    let lab = Lab::start(&[]);
    let adapter = WebhookAdapter::new();
    let env = lab.env(json!({}));
    let web = target(&adapter, &env, "web").await;
    fs::create_dir(lab.web.join("data")).unwrap();
    let fault = fault(
        "exp-1-7",
        "disk-fill",
        json!({"size": "2M", "path": "data", "fill-by-fallocate": true}),
        None,
    );

    let details = adapter.inject(&env, &fault, &web).await.unwrap();
    let fill = lab.web.join("data/chaoshub-fill-exp-1-7");
    assert_eq!(fs::metadata(&fill).unwrap().len(), 2 * 1024 * 1024);
    let stored = injection(&fault, &web, details);
    assert_eq!(
        adapter.status(&env, &stored).await.unwrap(),
        InjectionState::Active
    );
    adapter.recover(&env, &stored).await.unwrap();
    assert!(!fill.exists());
}

#[tokio::test]
async fn inject_is_idempotent_per_injection_id() {
    let lab = Lab::start(&[]);
    let adapter = WebhookAdapter::new();
    let env = lab.env(json!({}));
    let web = target(&adapter, &env, "web").await;
    let fault = disk_fill("exp-1-1", "64K");

    let first = adapter.inject(&env, &fault, &web).await.unwrap();
    let second = adapter.inject(&env, &fault, &web).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(files_in(&lab.web), ["chaoshub-fill-exp-1-1"]);
    assert_eq!(
        fs::metadata(lab.web.join("chaoshub-fill-exp-1-1"))
            .unwrap()
            .len(),
        65_536
    );

    // The same id asking for something else is a conflict, not a silent second fault.
    let other = disk_fill("exp-1-1", "128K");
    let err = adapter.inject(&env, &other, &web).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::Rejected(m) if m.contains("conflict")),
        "{err:?}"
    );

    adapter
        .recover(&env, &injection(&fault, &web, first))
        .await
        .unwrap();
    assert!(files_in(&lab.web).is_empty());
}

#[tokio::test]
async fn invalid_faults_are_rejected_with_the_plugin_message() {
    let lab = Lab::start(&["--max-fill-bytes", "10000000"]);
    let adapter = WebhookAdapter::new();
    let env = lab.env(json!({}));
    let web = target(&adapter, &env, "web").await;

    let outside = fault(
        "exp-2-0",
        "disk-fill",
        json!({"size": "1K", "path": "/etc"}),
        None,
    );
    let err = adapter.inject(&env, &outside, &web).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::Rejected(m) if m.contains("spec.disk-fill.path") && m.contains("outside the target")),
        "{err:?}"
    );

    let huge = disk_fill("exp-2-2", "1G");
    let err = adapter.inject(&env, &huge, &web).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::Rejected(m) if m.contains("spec.disk-fill.size") && m.contains("--max-fill-bytes")),
        "{err:?}"
    );

    let mut ghost = web.clone();
    ghost.id = "ghost".into();
    let err = adapter
        .inject(&env, &disk_fill("exp-2-3", "1K"), &ghost)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AdapterError::Rejected(m) if m.contains("unknown_target")),
        "{err:?}"
    );

    // An action the plugin does not implement is "unsupported" (422), which the hub shows as such.
    let stress = fault(
        "exp-2-4",
        "stress-cpu",
        json!({"load": 10, "workers": 1}),
        None,
    );
    let err = adapter.inject(&env, &stress, &web).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::Unsupported { kind, action, .. } if kind == "PhysicalMachineChaos" && action == "stress-cpu"),
        "{err:?}"
    );

    assert!(
        files_in(&lab.web).is_empty(),
        "nothing was written: {:?}",
        files_in(&lab.web)
    );
}

#[tokio::test]
async fn file_create_and_file_append_are_real_and_own_only_what_they_added() {
    let lab = Lab::start(&[]);
    let adapter = WebhookAdapter::new();
    let env = lab.env(json!({}));
    let db = target(&adapter, &env, "db").await;

    let create = fault(
        "exp-3-0",
        "file-create",
        json!({"file-name": "MAINTENANCE"}),
        None,
    );
    let created = adapter.inject(&env, &create, &db).await.unwrap();
    assert!(lab.db.join("MAINTENANCE").is_file());
    let created = injection(&create, &db, created);
    assert_eq!(
        adapter.status(&env, &created).await.unwrap(),
        InjectionState::Active
    );

    // A file that already exists belongs to someone else: refused, and left alone.
    fs::write(lab.db.join("users.db"), b"precious").unwrap();
    let clash = fault(
        "exp-3-1",
        "file-create",
        json!({"file-name": "users.db"}),
        None,
    );
    let err = adapter.inject(&env, &clash, &db).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::Rejected(m) if m.contains("conflict")),
        "{err:?}"
    );
    assert_eq!(fs::read(lab.db.join("users.db")).unwrap(), b"precious");

    fs::write(lab.db.join("app.log"), "started\n").unwrap();
    let append = fault(
        "exp-3-2",
        "file-append",
        json!({"file-name": "app.log", "data": "ERROR disk on fire", "count": 2}),
        None,
    );
    let appended = adapter.inject(&env, &append, &db).await.unwrap();
    let appended = injection(&append, &db, appended);
    assert_eq!(
        fs::read_to_string(lab.db.join("app.log")).unwrap(),
        "started\nERROR disk on fire\nERROR disk on fire\n"
    );
    assert_eq!(
        adapter.status(&env, &appended).await.unwrap(),
        InjectionState::Active
    );
    // The application keeps writing; recovery must keep its lines.
    fs::OpenOptions::new()
        .append(true)
        .open(lab.db.join("app.log"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"still running\n"))
        .unwrap();

    adapter.recover(&env, &created).await.unwrap();
    adapter.recover(&env, &appended).await.unwrap();
    assert!(!lab.db.join("MAINTENANCE").exists());
    assert_eq!(
        fs::read_to_string(lab.db.join("app.log")).unwrap(),
        "started\nstill running\n"
    );
    assert_eq!(
        adapter.status(&env, &created).await.unwrap(),
        InjectionState::Absent
    );
    assert_eq!(
        adapter.status(&env, &appended).await.unwrap(),
        InjectionState::Absent
    );
}

#[tokio::test]
async fn plugin_removes_the_fault_itself_after_deadline_plus_grace() {
    let lab = Lab::start(&["--grace-secs", "0.5", "--reap-interval-secs", "0.1"]);
    let adapter = WebhookAdapter::new();
    let env = lab.env(json!({}));
    let web = target(&adapter, &env, "web").await;
    let deadline = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let fault = fault(
        "exp-4-0",
        "disk-fill",
        json!({"size": "10kB"}),
        Some(deadline),
    );

    let details = adapter.inject(&env, &fault, &web).await.unwrap();
    let stored = injection(&fault, &web, details);
    assert_eq!(
        adapter.status(&env, &stored).await.unwrap(),
        InjectionState::Active
    );
    assert!(lab.web.join("chaoshub-fill-exp-4-0").exists());

    // Nobody calls recover: the plugin's dead man's switch must remove the fault on its own.
    wait_for_state(
        &adapter,
        &env,
        &stored,
        InjectionState::Absent,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        chrono::Utc::now() >= deadline + chrono::Duration::milliseconds(500),
        "removed before deadline + grace"
    );
    assert!(files_in(&lab.web).is_empty());
}

#[tokio::test]
async fn a_restarted_plugin_removes_faults_its_journal_left() {
    let mut lab = Lab::start(&[]);
    let adapter = WebhookAdapter::new();
    let web = target(&adapter, &lab.env(json!({})), "web").await;
    let fault = disk_fill("exp-5-0", "4K");
    let details = adapter
        .inject(&lab.env(json!({})), &fault, &web)
        .await
        .unwrap();
    let fill = lab.web.join("chaoshub-fill-exp-5-0");
    assert!(fill.exists());

    lab.crash_and_restart();
    assert!(
        !fill.exists(),
        "the restarted plugin removed the fault its journal held"
    );
    let env = lab.env(json!({}));
    assert_eq!(
        adapter
            .status(&env, &injection(&fault, &web, details))
            .await
            .unwrap(),
        InjectionState::Absent
    );
}

#[tokio::test]
async fn bearer_token_is_sent_when_configured() {
    let lab = Lab::start(&["--token", "s3cret"]);
    let adapter = WebhookAdapter::new();

    let err = adapter.discover(&lab.env(json!({}))).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::Rejected(m) if m.contains("unauthorized")),
        "{err:?}"
    );
    let err = adapter
        .discover(&lab.env(json!({"token": "wrong"})))
        .await
        .unwrap_err();
    assert!(matches!(&err, AdapterError::Rejected(_)), "{err:?}");
    let targets = adapter
        .discover(&lab.env(json!({"token": "s3cret"})))
        .await
        .unwrap();
    assert_eq!(targets.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Transport failures

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let port = {
        let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = environment(&endpoint, json!({"retries": 2, "retry_backoff_ms": 10}));
    let err = WebhookAdapter::new().discover(&env).await.unwrap_err();
    let AdapterError::Unreachable {
        environment,
        endpoint: reported,
        message,
    } = &err
    else {
        panic!("expected Unreachable, got {err:?}");
    };
    assert_eq!(environment, ENV_NAME);
    assert!(reported.starts_with(&endpoint), "{reported}");
    assert!(message.contains("3 attempts"), "{message}");
    let text = err.to_string();
    assert!(
        text.contains(ENV_NAME) && text.contains(&endpoint),
        "{text}"
    );
}

#[tokio::test]
async fn the_request_timeout_is_honoured() {
    // Accepts connections and never answers: a hung plugin.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hung = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let adapter = WebhookAdapter::new();
    let endpoint = format!("http://127.0.0.1:{port}");

    let env = environment(&endpoint, json!({"timeout_ms": 300, "retries": 0}));
    let started = Instant::now();
    let err = adapter.environment_capabilities(&env).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, AdapterError::Unreachable { message, .. } if message.contains("300 ms")),
        "{err:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );

    // Each retry gets its own timeout.
    let env = environment(
        &endpoint,
        json!({"timeout_ms": 200, "retries": 1, "retry_backoff_ms": 10}),
    );
    let started = Instant::now();
    let err = adapter.discover(&env).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, AdapterError::Unreachable { .. }), "{err:?}");
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    hung.abort();
}

#[tokio::test]
async fn server_errors_are_retried_then_failed_with_the_plugin_message() {
    // A stand-in that always fails: the real plugin only answers 5xx on genuine I/O errors.
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/v1/targets",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"error": {"code": "io_error", "message": "disk on fire"}})),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let env = environment(
        &format!("http://127.0.0.1:{port}"),
        json!({"retries": 2, "retry_backoff_ms": 10}),
    );
    let err = WebhookAdapter::new().discover(&env).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::Failed(m) if m.contains("disk on fire") && m.contains("io_error")),
        "{err:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3, "one call and two retries");
    server.abort();
}

// ---------------------------------------------------------------------------------------------
// Pure validation

#[test]
fn validate_environment_reports_paths_without_the_network() {
    let adapter = WebhookAdapter::new();
    let ok = environment(
        "http://127.0.0.1:1",
        json!({"timeout_ms": 1000, "retries": 0, "token": "t"}),
    );
    adapter.validate_environment(&ok).expect("valid settings");
    adapter
        .validate_environment(&environment("https://plugins.internal/fsfault", json!({})))
        .expect("https and a path prefix are fine");

    let bad = environment(
        "tcp://127.0.0.1:1",
        json!({"timeout_ms": "5s", "retries": 99, "token": "", "colour": "blue"}),
    );
    let errors = adapter.validate_environment(&bad).unwrap_err();
    let mut paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "spec.endpoint",
            "spec.settings.colour",
            "spec.settings.retries",
            "spec.settings.timeout_ms",
            "spec.settings.token"
        ],
        "{errors}"
    );
    let text = errors.to_string();
    assert!(
        text.contains("unknown setting (known: timeout_ms, retries, retry_backoff_ms, token)"),
        "{text}"
    );

    let mut missing = environment("x", json!({}));
    missing.spec.endpoint = None;
    let errors = adapter.validate_environment(&missing).unwrap_err();
    assert_eq!(
        errors.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
        ["spec.endpoint"]
    );
}
