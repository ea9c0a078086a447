//! The `toxiproxy` adapter driven by the hub through the REST API, against the fake Toxiproxy
//! server of the adapter tests (`adapters/tests/toxiproxy/fake_server.rs`): a fake of
//! Toxiproxy's HTTP API that forwards real TCP and applies real toxics, because no Toxiproxy
//! binary can be installed here. Checks the whole lifecycle (Running only once the toxic reads
//! back, Finished with the toxic gone and the user's own toxic untouched), the 422 for what a
//! proxy cannot do, and recovery retried by the engine while the server is unreachable.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::support::Sandbox;

#[path = "../../../adapters/tests/toxiproxy/fake_server.rs"]
pub(crate) mod fake_server;

use fake_server::FakeToxiproxy;

const T: Duration = Duration::from_secs(10);

/// A real echo server for the proxy to forward to; aborted on drop.
pub(crate) struct Echo {
    pub(crate) addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn echo() -> Echo {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Echo { addr, task }
}

pub(crate) async fn round_trip(addr: std::net::SocketAddr) -> Duration {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let start = Instant::now();
    socket.write_all(b"p").await.unwrap();
    let mut byte = [0u8; 1];
    socket.read_exact(&mut byte).await.unwrap();
    start.elapsed()
}

async fn register(s: &Sandbox, fake: &FakeToxiproxy, settings: Value) {
    let body = json!({
        "apiVersion": "chaoshub.dev/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": "toxi"},
        "spec": {"adapter": "toxiproxy", "endpoint": fake.url(), "settings": settings},
    });
    let (code, answer) = s
        .request(
            reqwest::Method::POST,
            "/api/v1/environments",
            Some(("application/json", body.to_string())),
        )
        .await;
    assert_eq!(code, 201, "{answer:#}");
}

fn latency_yaml(duration: &str) -> String {
    format!(
        "apiVersion: chaoshub.dev/v1alpha1\nkind: ProxyChaos\nmetadata: {{name: redis-latency, namespace: default}}\nspec:\n  action: latency\n  mode: all\n  selector:\n    labelSelectors: {{name: redis}}\n  latency: {{latency: 200}}\n  duration: {duration}\n  environment: toxi\n"
    )
}

#[tokio::test]
async fn proxy_chaos_through_the_api_runs_confirmed_and_finishes_with_the_toxic_gone() {
    let s = Sandbox::start(0).await;
    let fake = FakeToxiproxy::start().await;
    let upstream = echo().await;
    let listen = fake.create_proxy("redis", upstream.addr).await;
    fake.create_proxy("mysql", upstream.addr).await;
    let user = reqwest::Client::new()
        .post(format!("{}/proxies/redis/toxics", fake.url()))
        .json(&json!({"name": "user_slicer", "type": "slicer", "attributes": {"average_size": 64}}))
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), 200);
    register(&s, &fake, json!({})).await;

    let (code, targets) = s
        .get("/api/v1/environments/toxi/targets?labelSelector=name%3Dredis")
        .await;
    assert_eq!(code, 200, "{targets:#}");
    let items = targets["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{targets:#}");
    assert_eq!(items[0]["kind"], "proxy");
    assert_eq!(items[0]["labels"]["listen"], listen.to_string());

    let (code, created) = s
        .post_yaml("/api/v1/experiments", &latency_yaml("1500ms"))
        .await;
    assert_eq!(code, 201, "{created:#}");
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let running = s.wait_phase(&uid, "Running", T).await;
    let records = running["status"]["targets"].as_array().unwrap();
    assert_eq!(records.len(), 1, "only the redis proxy is selected");
    assert_eq!(records[0]["target"]["name"], "redis");
    let ours = format!("chaoshub.{uid}-0.latency.downstream");
    assert_eq!(records[0]["details"]["toxics"], json!([ours]));
    let mut names = fake.toxic_names("redis");
    names.sort();
    assert_eq!(names, [ours.clone(), "user_slicer".to_string()]);
    assert!(fake.toxic_names("mysql").is_empty());
    let slowed = round_trip(listen).await;
    assert!(
        slowed >= Duration::from_millis(180),
        "the toxic acts: {slowed:?}"
    );

    let done = s.wait_phase(&uid, "Finished", T).await;
    assert_eq!(done["status"]["targets"][0]["phase"], "Recovered");
    assert_eq!(
        fake.toxic_names("redis"),
        ["user_slicer"],
        "our toxic gone, the user's kept"
    );
    assert!(round_trip(listen).await < Duration::from_millis(100));
}

#[tokio::test]
async fn what_a_proxy_cannot_do_is_refused_with_422() {
    let s = Sandbox::start(0).await;
    let fake = FakeToxiproxy::start().await;
    register(&s, &fake, json!({})).await;
    for action in ["loss", "corrupt", "duplicate"] {
        let yaml = format!(
            "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {{name: n, namespace: default}}\nspec:\n  action: {action}\n  mode: all\n  selector:\n    labelSelectors: {{name: redis}}\n  {action}: {{{action}: '10'}}\n  environment: toxi\n"
        );
        let (code, answer) = s.post_yaml("/api/v1/experiments", &yaml).await;
        assert_eq!(code, 422, "{action}: {answer:#}");
        let text = answer.to_string();
        assert!(text.contains(&format!("NetworkChaos/{action}")), "{text}");
        assert!(text.contains("supported by"), "{text}");
    }
    // A supported action with a field a proxy cannot express is refused at submission too
    // (the adapter's pure check), not left to fail at injection.
    let reorder = "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: r, namespace: default}\nspec:\n  action: delay\n  mode: all\n  selector:\n    labelSelectors: {name: redis}\n  delay: {latency: 10ms, reorder: {reorder: '10', gap: 5}}\n  environment: toxi\n";
    let (code, answer) = s.post_yaml("/api/v1/experiments", reorder).await;
    assert_eq!(code, 422, "{answer:#}");
    assert!(
        answer["message"].as_str().unwrap().contains("reorder"),
        "{answer:#}"
    );
    let (_, list) = s.get("/api/v1/experiments").await;
    assert!(
        list["items"].as_array().unwrap().is_empty(),
        "nothing is stored"
    );
    // No call reached the server for a refused kind beyond what validation needed.
    assert!(!fake.requests().iter().any(|r| r.contains("/toxics")));
}

#[tokio::test]
async fn recovery_is_retried_while_the_server_is_unreachable_and_succeeds_once_it_is_back() {
    let s = Sandbox::start(0).await;
    let fake = FakeToxiproxy::start().await;
    let upstream = echo().await;
    fake.create_proxy("redis", upstream.addr).await;
    register(&s, &fake, json!({"retries": 0, "timeout_ms": 500})).await;
    let (code, created) = s
        .post_yaml("/api/v1/experiments", &latency_yaml("800ms"))
        .await;
    assert_eq!(code, 201, "{created:#}");
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    s.wait_phase(&uid, "Running", T).await;

    fake.stop_api().await;
    let recovering = s.wait_phase(&uid, "Recovering", T).await;
    // Let the engine try a few times (sandbox: recovery_retry_ms = 100).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, now) = s.get(&format!("/api/v1/experiments/{uid}")).await;
    assert_eq!(now["status"]["phase"], "Recovering", "{recovering:#}");
    let error = now["status"]["targets"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("unreachable"),
        "the error is reported: {now:#}"
    );
    let (_, events) = s.get(&format!("/api/v1/events?experiment={uid}")).await;
    let failures = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap_or("")
                .contains("recovery failed (will retry)")
        })
        .count();
    assert!(
        failures >= 2,
        "recovery was retried: {failures} failed attempt(s) recorded"
    );
    assert_eq!(
        fake.toxic_names("redis").len(),
        1,
        "the toxic is still in force"
    );

    fake.start_api().await;
    let done = s.wait_phase(&uid, "Finished", T).await;
    assert_eq!(done["status"]["targets"][0]["phase"], "Recovered");
    assert!(fake.toxic_names("redis").is_empty());
}
