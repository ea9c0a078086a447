//! Secrets in environment settings never leave the hub: an environment registered with a
//! webhook token (used for real: the in-test plugin refuses calls without it) and others with
//! secret headers and keys, an experiment run with it, and then every answer the API and the
//! console give, the events, the audit trail, the hub's own log lines and what it exported over
//! OTLP are searched for the secrets — none may hold one. The webhook plugin is a small in-test
//! server speaking the plugin protocol (docs/plugins.md), the OTLP receiver a small server
//! keeping the raw protobuf bodies (strings travel in them as plain UTF-8); the real Python
//! plugin and collectors are exercised elsewhere (`tests/e2e`, `telemetry.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use chaoshub_adapters::AdapterRegistry;

use super::probes::serve;
use super::support::{authed_client, config, MemoryAdapter, Sandbox};

const T: Duration = Duration::from_secs(15);
const TOKEN: &str = "plugin-token-Zq81vX3";
const HEADER: &str = "hdr-secret-Qm47Lp";
const KEY: &str = "aws-key-Wn62Tc9";

/// Authorized calls the plugin served.
#[derive(Clone, Default)]
struct Plugin {
    calls: Arc<AtomicUsize>,
}

fn authorized(plugin: &Plugin, headers: &HeaderMap) -> Result<(), (StatusCode, Json<Value>)> {
    let sent = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if sent == format!("Bearer {TOKEN}") {
        plugin.calls.fetch_add(1, Ordering::SeqCst);
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": "unauthorized", "message": "wrong or missing token"}})),
        ))
    }
}

type Answer = Result<Json<Value>, (StatusCode, Json<Value>)>;

async fn plugin_server(plugin: Plugin) -> super::probes::Server {
    let app = Router::new()
        .route(
            "/v1/describe",
            get(|State(p): State<Plugin>, h: HeaderMap| async move {
                authorized(&p, &h)?;
                Answer::Ok(Json(json!({
                    "name": "secret-test", "version": "1", "protocol": "v1",
                    "capabilities": [{"kind": "NetworkChaos", "action": "delay"}],
                })))
            }),
        )
        .route(
            "/v1/targets",
            get(|State(p): State<Plugin>, h: HeaderMap| async move {
                authorized(&p, &h)?;
                Answer::Ok(Json(json!({"targets": [
                    {"kind": "host", "id": "web-1", "name": "web-1", "labels": {"app": "web"}},
                ]})))
            }),
        )
        .route(
            "/v1/inject",
            post(|State(p): State<Plugin>, h: HeaderMap| async move {
                authorized(&p, &h)?;
                Answer::Ok(Json(json!({"details": {}})))
            }),
        )
        .route(
            "/v1/status",
            post(|State(p): State<Plugin>, h: HeaderMap| async move {
                authorized(&p, &h)?;
                Answer::Ok(Json(json!({"state": "active"})))
            }),
        )
        .route(
            "/v1/recover",
            post(|State(p): State<Plugin>, h: HeaderMap| async move {
                authorized(&p, &h)?;
                Answer::Ok(Json(json!({})))
            }),
        )
        .with_state(plugin);
    serve(app).await
}

/// Log lines the hub writes while the test runs on this thread (the in-process hub runs on
/// the test's single-threaded runtime, so every task logs here).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An OTLP/HTTP receiver keeping every body it gets; answers with the empty (zero-byte)
/// protobuf response.
async fn otlp_receiver(bodies: Arc<Mutex<Vec<u8>>>) -> super::probes::Server {
    let keep = |bodies: Arc<Mutex<Vec<u8>>>| {
        post(move |body: axum::body::Bytes| async move {
            bodies.lock().unwrap().extend_from_slice(&body);
            (
                [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                Vec::<u8>::new(),
            )
        })
    };
    let app = Router::new()
        .route("/v1/logs", keep(bodies.clone()))
        .route("/v1/traces", keep(bodies.clone()))
        .route("/v1/metrics", keep(bodies));
    serve(app).await
}

/// A sandbox whose hub exports events and traces to `endpoint`.
async fn exporting_sandbox(endpoint: String) -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let adapter = MemoryAdapter::with_targets(2);
    let mut cfg = config(dir.path());
    cfg.telemetry = chaoshub::telemetry::TelemetryConfig {
        endpoint: Some(endpoint),
        protocol: Some("http/protobuf".into()),
        ..Default::default()
    };
    let mut registry = AdapterRegistry::builtin();
    registry.register(Arc::new(adapter.clone()));
    let hub = chaoshub::server::start_with(cfg, registry).await.unwrap();
    assert!(hub.hub.engine.telemetry().is_exporting());
    Sandbox {
        url: hub.url(),
        hub: Some(hub),
        client: authed_client(dir.path()),
        adapter,
        dir,
        tweak: |_| {},
    }
}

fn assert_clean(what: &str, text: &str) {
    for secret in [TOKEN, HEADER, KEY] {
        assert!(
            !text.contains(secret),
            "{what} holds the secret {secret}: {text}"
        );
    }
}

#[tokio::test]
async fn secrets_never_appear_in_answers_events_audit_console_or_logs() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let plugin = Plugin::default();
    let server = plugin_server(plugin.clone()).await;
    let exported = Arc::new(Mutex::new(Vec::new()));
    let receiver = otlp_receiver(exported.clone()).await;
    let s = exporting_sandbox(receiver.url("")).await;
    let mut answers: Vec<(String, String)> = Vec::new();

    let webhook = format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: plug}}\nspec:\n  adapter: webhook\n  endpoint: {}\n  settings: {{token: {TOKEN}, timeout_ms: 2000}}\n",
        server.url("")
    );
    let (code, registered) = s.post_yaml("/api/v1/environments", &webhook).await;
    assert_eq!(code, 201, "{registered:#}");
    assert_eq!(registered["spec"]["settings"]["token"], "***");
    assert_eq!(registered["spec"]["settings"]["timeout_ms"], 2000);
    let note = registered["metadata"]["annotations"]["chaoshub.dev/redacted-settings"]
        .as_str()
        .unwrap();
    assert!(
        note.contains("spec.settings.token") && note.contains("hub's store"),
        "{note}"
    );
    answers.push(("registration".into(), registered.to_string()));
    let memory = format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: Environment\nmetadata: {{name: vault}}\nspec:\n  adapter: memory\n  settings:\n    headers: {{Authorization: 'Bearer {HEADER}', X-Team: payments}}\n    aws_secret_access_key: {KEY}\n"
    );
    let (code, registered) = s.post_yaml("/api/v1/environments", &memory).await;
    assert_eq!(code, 201, "{registered:#}");
    assert_eq!(
        registered["spec"]["settings"]["headers"]["X-Team"], "payments",
        "only secrets are hidden: {registered:#}"
    );
    answers.push(("registration".into(), registered.to_string()));

    // Run something with the token: the plugin answers only calls that carry it.
    let run = |name: &str| {
        super::support::delay_yaml(name, Some("1s"), "")
            .replace("environment: mem", "environment: plug")
    };
    let (code, created) = s.post_yaml("/api/v1/experiments", &run("first")).await;
    assert_eq!(code, 201, "{created:#}");
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&uid, "Finished", T).await;
    let used = plugin.calls.load(Ordering::SeqCst);
    assert!(used >= 3, "the plugin saw {used} calls with the token");

    // A GET's answer sent back keeps the stored token: the plugin still accepts the hub.
    let (_, shown) = s.get("/api/v1/environments/plug").await;
    let (code, again) = s
        .request(
            reqwest::Method::POST,
            "/api/v1/environments?replace=true",
            Some(("application/json", shown.to_string())),
        )
        .await;
    assert_eq!(code, 200, "{again:#}");
    let (code, created) = s.post_yaml("/api/v1/experiments", &run("second")).await;
    assert_eq!(code, 201, "{created:#}");
    let second = created["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&second, "Finished", T).await;
    assert!(plugin.calls.load(Ordering::SeqCst) > used);

    for path in [
        "/api/v1/environments",
        "/api/v1/environments/plug",
        "/api/v1/environments/vault",
        "/api/v1/environments/plug/targets",
        "/api/v1/environments/plug/capabilities",
        "/api/v1/experiments",
        &format!("/api/v1/experiments/{uid}"),
        &format!("/api/v1/experiments/{second}"),
        "/api/v1/archives",
        "/api/v1/events?limit=1000",
        "/api/v1/audit?limit=1000",
        "/api/v1/agents",
        "/api/v1/adapters",
        "/api/v1/halt",
    ] {
        let (code, v) = s.get(path).await;
        assert_eq!(code, 200, "{path}: {v}");
        answers.push((path.to_string(), v.to_string()));
    }
    let (code, v) = s.delete("/api/v1/environments/vault").await;
    assert_eq!(code, 200, "{v}");
    answers.push(("deletion".into(), v.to_string()));
    let metrics = s
        .client
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    answers.push(("/metrics".into(), metrics));

    // The console, as a signed-in admin sees it.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = browser
        .post(format!("{}/login", s.url))
        .form(&[("token", s.admin_token().as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    for page in [
        "/",
        "/environments",
        "/experiments",
        &format!("/experiments/{uid}"),
        "/new",
    ] {
        let resp = browser
            .get(format!("{}{page}", s.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{page}");
        answers.push((format!("console {page}"), resp.text().await.unwrap()));
    }
    assert!(
        answers
            .iter()
            .any(|(what, text)| what == "console /environments" && text.contains("plug")),
        "the console lists the environment"
    );

    for (what, text) in &answers {
        assert_clean(what, text);
    }
    // The export is batched: wait until the second experiment's end has gone out.
    let started = std::time::Instant::now();
    loop {
        let text = String::from_utf8_lossy(&exported.lock().unwrap()).to_string();
        if text.contains(&second) && text.matches("chaoshub.experiment.finished").count() >= 2 {
            assert_clean("the OTLP export", &text);
            assert!(text.contains("plug"), "events name the environment");
            break;
        }
        assert!(
            started.elapsed() < T,
            "the OTLP receiver did not get the second experiment's end"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(_guard);
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    assert!(
        logs.contains("plug"),
        "the hub's log lines were captured: {logs}"
    );
    assert_clean("the hub's log", &logs);
}
