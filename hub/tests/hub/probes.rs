//! Probes against real local servers (HTTP, TCP, a real program), the Chaos Mesh StatusCheck
//! runner, StatusCheck experiments, and stop conditions aborting an experiment through the
//! engine. The Prometheus probe is checked against a **fake** `/api/v1/query` endpoint (a few
//! canned answers in Prometheus' documented JSON shape), because a Prometheus server needs
//! scrape targets and time to produce data; the fake checks the request's `query` parameter.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chaoshub::probes::statuscheck::run_status_check;
use chaoshub::probes::{evaluate, ProbePolicy};
use chaoshub_schema::chaosmesh::StatusCheckSpec;
use chaoshub_schema::probe::ProbeSpec;
use serde_json::{json, Value};

use super::support::{MemoryAdapter, Sandbox};

const T: Duration = Duration::from_secs(15);

/// A real HTTP server on 127.0.0.1:0, aborted on drop.
pub struct Server {
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

pub async fn serve(app: Router) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server { addr, task }
}

/// A service whose health depends on the memory adapter: 503 while a fault is in place on
/// the `web` target (`host-0`), 200 otherwise. Stands for "the service behind the fault".
pub async fn web_service(adapter: MemoryAdapter) -> Server {
    let app = Router::new()
        .route(
            "/health",
            get(|State(a): State<MemoryAdapter>| async move {
                let broken = a
                    .world
                    .lock()
                    .unwrap()
                    .active
                    .values()
                    .any(|t| t == "host-0");
                if broken {
                    (StatusCode::SERVICE_UNAVAILABLE, "web is down")
                } else {
                    (StatusCode::OK, "web ok")
                }
            }),
        )
        .with_state(adapter);
    serve(app).await
}

fn probe(value: Value) -> ProbeSpec {
    chaoshub_schema::probe::parse_probes(json!([value]), "probe")
        .unwrap()
        .remove(0)
}

async fn sample_server() -> Server {
    let app = Router::new()
        .route("/ok", get(|| async { "all systems go" }))
        .route(
            "/json",
            get(|| async {
                axum::Json(json!({"status": "up", "checks": [{"ok": true}, {"ok": true}], "n": 3}))
            }),
        )
        .route(
            "/teapot",
            get(|| async { (StatusCode::IM_A_TEAPOT, "short and stout") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(800)).await;
                "late"
            }),
        )
        .route(
            "/echo",
            post(|headers: axum::http::HeaderMap, body: String| async move {
                format!(
                    "{} {body}",
                    headers
                        .get("x-probe")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                )
            }),
        );
    serve(app).await
}

#[tokio::test]
async fn http_probes_check_status_ranges_body_text_and_json_paths() {
    let server = sample_server().await;
    let policy = ProbePolicy::default();
    let ok = |v: Value| async move { evaluate(&probe(v), &ProbePolicy::default()).await };

    let r = ok(json!({"name": "a", "http": {"url": server.url("/ok"), "expect": {"status": "200-299", "bodyContains": "systems go"}}})).await;
    assert!(r.ok, "{r:?}");
    assert!(r.detail.contains("→ 200"), "{r:?}");

    let r = ok(json!({"name": "b", "http": {"url": server.url("/teapot")}})).await;
    assert!(!r.ok, "418 is outside the default 200-399");
    assert!(r.detail.contains("expected status 200-399"), "{r:?}");
    assert!(r.detail.contains("418"), "{r:?}");
    let r = ok(
        json!({"name": "b2", "http": {"url": server.url("/teapot"), "expect": {"status": 418}}}),
    )
    .await;
    assert!(r.ok, "{r:?}");

    let r = ok(json!({"name": "c", "http": {"url": server.url("/json"), "expect": {"jsonPath": {"path": "$.status", "equals": "up"}}}})).await;
    assert!(r.ok, "{r:?}");
    let r = ok(json!({"name": "c2", "http": {"url": server.url("/json"), "expect": {"jsonPath": {"path": "$.checks[*].ok", "equals": true}}}})).await;
    assert!(r.ok, "{r:?}");
    let r = ok(json!({"name": "c3", "http": {"url": server.url("/json"), "expect": {"jsonPath": {"path": "$.n", "equals": 4}}}})).await;
    assert!(!r.ok);
    assert!(r.detail.contains("$.n is 3, expected 4"), "{r:?}");
    let r = ok(json!({"name": "c4", "http": {"url": server.url("/ok"), "expect": {"jsonPath": {"path": "$.x"}}}})).await;
    assert!(!r.ok && r.detail.contains("expected a JSON body"), "{r:?}");

    let r = ok(json!({"name": "d", "http": {"url": server.url("/ok"), "expect": {"bodyContains": "nope"}}})).await;
    assert!(!r.ok && r.detail.contains("to contain \"nope\""), "{r:?}");

    let started = Instant::now();
    let r =
        ok(json!({"name": "e", "http": {"url": server.url("/slow"), "timeout": "200ms"}})).await;
    assert!(
        !r.ok && r.detail.contains("no answer within 200 ms"),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(700));

    let r = evaluate(
        &probe(json!({"name": "f", "http": {"url": server.url("/echo"), "method": "POST", "headers": {"x-probe": "yes"}, "body": "ping", "expect": {"bodyContains": "yes ping"}}})),
        &policy,
    )
    .await;
    assert!(r.ok, "{r:?}");

    drop(server);
    let r = ok(json!({"name": "g", "http": {"url": "http://127.0.0.1:9/", "timeout": "1s"}})).await;
    assert!(!r.ok, "{r:?}");
}

#[tokio::test]
async fn tcp_probes_connect_or_report_why_not() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let r = evaluate(
        &probe(json!({"name": "t", "tcp": {"address": addr.to_string(), "timeout": "1s"}})),
        &ProbePolicy::default(),
    )
    .await;
    assert!(r.ok, "{r:?}");
    drop(listener);
    let r = evaluate(
        &probe(json!({"name": "t", "tcp": {"address": addr.to_string(), "timeout": "1s"}})),
        &ProbePolicy::default(),
    )
    .await;
    assert!(!r.ok && r.detail.contains("cannot connect"), "{r:?}");
}

#[tokio::test]
async fn command_probes_judge_exit_code_and_stdout_and_are_off_by_default() {
    let allowed = &ProbePolicy {
        allow_commands: true,
        ..Default::default()
    };
    let p = probe(
        json!({"name": "c", "command": {"run": ["sh", "-c", "echo ready; exit 0"], "expect": {"stdoutContains": "ready"}}}),
    );
    assert!(evaluate(&p, allowed).await.ok);
    let off = evaluate(&p, &ProbePolicy::default()).await;
    assert!(!off.ok && off.detail.contains("disabled"), "{off:?}");

    let p = probe(json!({"name": "c", "command": {"run": ["sh", "-c", "echo nope; exit 3"]}}));
    let r = evaluate(&p, allowed).await;
    assert!(
        !r.ok && r.detail.contains("expected exit code 0") && r.detail.contains("exited with 3"),
        "{r:?}"
    );
    let p = probe(
        json!({"name": "c", "command": {"run": ["sh", "-c", "echo nope; exit 3"], "expect": {"exitCode": 3, "stdoutEquals": "nope"}}}),
    );
    assert!(evaluate(&p, allowed).await.ok);
    let p = probe(json!({"name": "c", "command": {"run": ["sleep", "5"], "timeout": "200ms"}}));
    let r = evaluate(&p, allowed).await;
    assert!(!r.ok && r.detail.contains("killed"), "{r:?}");
    let p = probe(json!({"name": "c", "command": {"run": ["/nonexistent/program"]}}));
    assert!(!evaluate(&p, allowed).await.ok);
}

#[derive(serde::Deserialize)]
struct PromQuery {
    query: String,
}

/// A fake Prometheus `/api/v1/query` (see the module documentation).
async fn fake_prometheus() -> Server {
    let app = Router::new().route(
        "/api/v1/query",
        get(|Query(q): Query<PromQuery>| async move {
            match q.query.as_str() {
                "error_rate" => axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": [
                    {"metric": {"job": "web"}, "value": [1700000000.0, "0.02"]},
                    {"metric": {"job": "api"}, "value": [1700000000.0, "0.2"]}
                ]}})),
                "up" => axum::Json(json!({"status": "success", "data": {"resultType": "scalar", "result": [1700000000.0, "1"]}})),
                "absent_metric" => axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": []}})),
                _ => axum::Json(json!({"status": "error", "errorType": "bad_data", "error": "parse error"})),
            }
        }),
    );
    serve(app).await
}

#[tokio::test]
async fn prometheus_probes_compare_every_sample_with_the_threshold() {
    let prom = fake_prometheus().await;
    let base = format!("http://{}", prom.addr);
    let run = |query: &str, cmp: &str, threshold: f64, extra: Value| {
        let mut p = json!({"name": "p", "prometheus": {"url": base, "query": query, "comparison": cmp, "threshold": threshold}});
        if let Value::Object(e) = extra {
            for (k, v) in e {
                p["prometheus"][k] = v;
            }
        }
        async move { evaluate(&probe(p), &ProbePolicy::default()).await }
    };
    let r = run("error_rate", "<", 0.5, json!({})).await;
    assert!(r.ok, "{r:?}");
    let r = run("error_rate", "<", 0.1, json!({})).await;
    assert!(!r.ok, "{r:?}");
    assert!(r.detail.contains("{job=api}=0.2 is not < 0.1"), "{r:?}");
    assert!(run("up", "==", 1.0, json!({})).await.ok);
    let r = run("absent_metric", "<", 1.0, json!({})).await;
    assert!(!r.ok && r.detail.contains("no samples"), "{r:?}");
    assert!(
        run("absent_metric", "<", 1.0, json!({"allowEmpty": true}))
            .await
            .ok
    );
    let r = run("bad(", "<", 1.0, json!({})).await;
    assert!(!r.ok && r.detail.contains("bad_data"), "{r:?}");
}

fn status_check(value: Value) -> StatusCheckSpec {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn status_checks_follow_chaos_mesh_modes_and_thresholds() {
    let flaky = Arc::new(AtomicU16::new(200));
    let app = Router::new()
        .route(
            "/h",
            get(|State(code): State<Arc<AtomicU16>>| async move {
                StatusCode::from_u16(code.load(Ordering::SeqCst)).unwrap()
            }),
        )
        .with_state(Arc::clone(&flaky));
    let server = serve(app).await;
    let url = server.url("/h");
    let (_keep, rx) = tokio::sync::watch::channel(false);

    // Synchronous: succeeds after successThreshold consecutive successes.
    let spec = status_check(
        json!({"mode": "Synchronous", "intervalSeconds": 1, "successThreshold": 2, "http": {"url": url, "criteria": {"statusCode": "200-299"}}}),
    );
    let outcome = run_status_check(&spec, rx.clone()).await;
    assert!(outcome.succeeded, "{outcome:?}");
    assert_eq!(outcome.records.len(), 2);

    // Synchronous: fails after failureThreshold consecutive failures.
    flaky.store(500, Ordering::SeqCst);
    let spec = status_check(
        json!({"mode": "Synchronous", "intervalSeconds": 1, "failureThreshold": 2, "http": {"url": url, "criteria": {"statusCode": "200"}}}),
    );
    let outcome = run_status_check(&spec, rx.clone()).await;
    assert!(!outcome.succeeded);
    assert!(
        outcome.reason.contains("2 consecutive failure(s)"),
        "{outcome:?}"
    );
    assert!(outcome
        .records
        .iter()
        .all(|r| !r.ok && r.detail.contains("500")));

    // Continuous: runs the whole duration and succeeds at its end.
    flaky.store(200, Ordering::SeqCst);
    let spec = status_check(
        json!({"mode": "Continuous", "duration": "2500ms", "intervalSeconds": 1, "http": {"url": url, "criteria": {"statusCode": "200"}}}),
    );
    let started = Instant::now();
    let outcome = run_status_check(&spec, rx.clone()).await;
    assert!(outcome.succeeded, "{outcome:?}");
    assert!(started.elapsed() >= Duration::from_millis(2400));
    assert!(outcome.records.len() >= 3, "{outcome:?}");

    // Continuous: fails as soon as failureThreshold consecutive failures happen.
    flaky.store(503, Ordering::SeqCst);
    let spec = status_check(
        json!({"mode": "Continuous", "duration": "30s", "intervalSeconds": 1, "failureThreshold": 1, "http": {"url": url, "criteria": {"statusCode": "200"}}}),
    );
    let started = Instant::now();
    let outcome = run_status_check(&spec, rx.clone()).await;
    assert!(!outcome.succeeded);
    assert!(started.elapsed() < Duration::from_secs(3));

    // Cancelled from outside.
    flaky.store(200, Ordering::SeqCst);
    let (tx, rx2) = tokio::sync::watch::channel(false);
    let spec = status_check(
        json!({"mode": "Continuous", "intervalSeconds": 1, "http": {"url": url, "criteria": {"statusCode": "200"}}}),
    );
    let handle = tokio::spawn(async move { run_status_check(&spec, rx2).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(true).unwrap();
    let outcome = tokio::time::timeout(T, handle).await.unwrap().unwrap();
    assert!(
        !outcome.succeeded && outcome.reason == "cancelled",
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_status_check_experiment_runs_in_the_hub_and_ends_with_its_verdict() {
    let s = Sandbox::start(1).await;
    let flaky = Arc::new(AtomicU16::new(200));
    let app = Router::new()
        .route(
            "/h",
            get(|State(code): State<Arc<AtomicU16>>| async move {
                StatusCode::from_u16(code.load(Ordering::SeqCst)).unwrap()
            }),
        )
        .with_state(Arc::clone(&flaky));
    let server = serve(app).await;
    let yaml = |name: &str| {
        format!(
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: StatusCheck\nmetadata: {{name: {name}}}\nspec:\n  mode: Synchronous\n  type: HTTP\n  intervalSeconds: 1\n  failureThreshold: 2\n  http:\n    url: {}\n    method: GET\n    criteria: {{statusCode: \"200\"}}\n",
            server.url("/h")
        )
    };
    let (code, created) = s.post_yaml("/api/v1/experiments", &yaml("check-ok")).await;
    assert_eq!(code, 201, "{created:#}");
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let done = s.wait_phase(&uid, "Finished", T).await;
    assert!(
        done["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("succeeded"),
        "{done:#}"
    );

    flaky.store(500, Ordering::SeqCst);
    let (code, created) = s.post_yaml("/api/v1/experiments", &yaml("check-bad")).await;
    assert_eq!(code, 201, "{created:#}");
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let failed = s.wait_phase(&uid, "Failed", T).await;
    let reason = failed["status"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("the status check failed") && reason.contains("500"),
        "{reason}"
    );

    // A continuous check without a duration runs until stopped, then ends Aborted.
    flaky.store(200, Ordering::SeqCst);
    let continuous = yaml("check-long").replace("Synchronous", "Continuous");
    let (_, created) = s.post_yaml("/api/v1/experiments", &continuous).await;
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&uid, "Running", T).await;
    let (code, _) = s.post(&format!("/api/v1/experiments/{uid}/stop")).await;
    assert_eq!(code, 200);
    s.wait_phase(&uid, "Aborted", T).await;

    // Dry run: valid, nothing stored.
    let (code, plan) = s
        .post_yaml("/api/v1/experiments?dryRun=true", &yaml("check-plan"))
        .await;
    assert_eq!(code, 200, "{plan:#}");
    assert_eq!(plan["valid"], true);
}

fn with_stop_conditions(name: &str, duration: &str, conditions: &str, selector: &str) -> String {
    let annotation = conditions.replace('\n', "\n      ");
    format!(
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata:\n  name: {name}\n  annotations:\n    chaoshub.dev/stop-conditions: |\n      {annotation}\nspec:\n  action: delay\n  mode: all\n  selector:\n    labelSelectors: {{app: {selector}}}\n  delay: {{latency: 100ms}}\n  duration: {duration}\n  environment: mem\n"
    )
}

#[tokio::test]
async fn a_failing_stop_condition_aborts_and_recovers_the_experiment_at_once() {
    let s = Sandbox::start(2).await;
    let web = web_service(s.adapter.clone()).await;
    let conditions = format!(
        "- name: web-health\n  http: {{url: \"{}\", timeout: 1s, expect: {{status: 200}}}}",
        web.url("/health")
    );
    // The fault takes the web target down: the stop condition sees it and stops the fault
    // long before its 60 s duration.
    let (code, created) = s
        .post_yaml(
            "/api/v1/experiments",
            &with_stop_conditions("guarded", "60s", &conditions, "web"),
        )
        .await;
    assert_eq!(code, 201, "{created:#}");
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let started = Instant::now();
    let aborted = s.wait_phase(&uid, "Aborted", T).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let reason = aborted["status"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("stop condition web-health failed: ") && reason.contains("503"),
        "{reason}"
    );
    assert_eq!(aborted["status"]["targets"][0]["phase"], "Recovered");
    assert_eq!(s.adapter.active_count(), 0, "the fault is removed");

    // A fault that leaves the web target alone runs its whole duration.
    let (_, created) = s
        .post_yaml(
            "/api/v1/experiments",
            &with_stop_conditions("harmless", "1500ms", &conditions, "db"),
        )
        .await;
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&uid, "Finished", T).await;

    // Malformed stop conditions are a 400 naming the field inside the annotation.
    let bad = with_stop_conditions(
        "bad",
        "5s",
        "- name: x\n  http: {url: ftp://nowhere}",
        "web",
    );
    let (code, body) = s.post_yaml("/api/v1/experiments", &bad).await;
    assert_eq!(code, 400, "{body:#}");
    assert_eq!(
        body["details"][0]["path"],
        "metadata.annotations[\"chaoshub.dev/stop-conditions\"][0].http.url"
    );
    let cmd = with_stop_conditions(
        "cmd",
        "5s",
        "- name: x\n  command: {run: [\"true\"]}",
        "web",
    );
    let (code, body) = s.post_yaml("/api/v1/experiments", &cmd).await;
    assert_eq!(code, 400, "{body:#}");
    assert!(body["details"][0]["message"]
        .as_str()
        .unwrap()
        .contains("allow_command_probes"));
    let (code, body) = s
        .post_yaml(
            "/api/v1/experiments",
            &with_stop_conditions("notyaml", "5s", "[unclosed", "web"),
        )
        .await;
    assert_eq!(code, 400, "{body:#}");
}
