//! Contract tests of the fake Toxiproxy server: the status codes, headers and bodies of
//! Toxiproxy 2.x's documented API, written from the documentation (and its `api.go`), so that a
//! drift between the fake and the real server is caught here rather than hidden in adapter
//! tests.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::fake_server::{FakeToxiproxy, Flavor, NOXIOUS_VERSION, TOXIPROXY_VERSION};
use super::support::echo_server;

struct Answer {
    status: StatusCode,
    content_type: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// Toxiproxy's error: exact body (with Go's trailing newline) sent as text/plain.
    fn assert_error(&self, status: u16, message: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(self.content_type, "text/plain; charset=utf-8");
        assert_eq!(
            self.text,
            format!("{{\"error\":\"{message}\",\"status\":{status}}}\n")
        );
    }
}

async fn call(fake: &FakeToxiproxy, method: Method, path: &str, body: Option<&str>) -> Answer {
    call_as(fake, method, path, body, "chaoshub-contract-test").await
}

async fn call_as(
    fake: &FakeToxiproxy,
    method: Method,
    path: &str,
    body: Option<&str>,
    agent: &str,
) -> Answer {
    chaoshub_adapters::install_crypto_provider();
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", fake.url()))
        .header("user-agent", agent);
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status(),
        content_type: response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default(),
        text: response.text().await.unwrap(),
    }
}

#[tokio::test]
async fn proxies_are_created_listed_shown_and_deleted() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    let body = format!(
        r#"{{"name":"redis","listen":"127.0.0.1:0","upstream":"{}"}}"#,
        upstream.addr
    );
    let created = call(&fake, Method::POST, "/proxies", Some(&body)).await;
    assert_eq!(created.status, 201);
    assert_eq!(created.content_type, "application/json");
    let proxy = created.json();
    assert_eq!(proxy["name"], "redis");
    assert_eq!(proxy["enabled"], true);
    assert_eq!(proxy["upstream"], upstream.addr.to_string());
    assert_eq!(proxy["toxics"], json!([]));
    assert_ne!(
        proxy["listen"], "127.0.0.1:0",
        "the real listen address is reported"
    );
    let keys: Vec<&String> = proxy.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "listen", "upstream", "enabled", "toxics"]);

    call(&fake, Method::POST, "/proxies", Some(&body))
        .await
        .assert_error(409, "proxy already exists");
    call(
        &fake,
        Method::POST,
        "/proxies",
        Some(r#"{"upstream":"x:1"}"#),
    )
    .await
    .assert_error(400, "missing required field: name");
    call(&fake, Method::POST, "/proxies", Some(r#"{"name":"x"}"#))
        .await
        .assert_error(400, "missing required field: upstream");

    let listed = call(&fake, Method::GET, "/proxies", None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["redis"], proxy);

    let shown = call(&fake, Method::GET, "/proxies/redis", None).await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.json(), proxy);
    call(&fake, Method::GET, "/proxies/nope", None)
        .await
        .assert_error(404, "proxy not found");

    let deleted = call(&fake, Method::DELETE, "/proxies/redis", None).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(deleted.text, "");
    call(&fake, Method::DELETE, "/proxies/redis", None)
        .await
        .assert_error(404, "proxy not found");
}

#[tokio::test]
async fn creating_a_toxic_answers_200_with_defaults_applied() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    fake.create_proxy("db", upstream.addr).await;
    let created = call(
        &fake,
        Method::POST,
        "/proxies/db/toxics",
        Some(r#"{"type":"latency","attributes":{"latency":200}}"#),
    )
    .await;
    assert_eq!(created.status, 200, "201 is not what Toxiproxy answers");
    assert_eq!(created.content_type, "application/json");
    assert_eq!(
        created.text,
        r#"{"attributes":{"latency":200,"jitter":0},"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1}"#,
        "the toxic JSON as Go writes it, defaults filled in"
    );
    let toxic = created.json();

    // Names are unique per proxy across both streams.
    call(
        &fake,
        Method::POST,
        "/proxies/db/toxics",
        Some(r#"{"name":"latency_downstream","type":"bandwidth","stream":"upstream","attributes":{"rate":1}}"#),
    )
    .await
    .assert_error(409, "toxic already exists");

    let upstream_toxic = call(
        &fake,
        Method::POST,
        "/proxies/db/toxics",
        Some(r#"{"type":"latency","stream":"upstream","toxicity":0.5,"attributes":{"latency":5,"jitter":1}}"#),
    )
    .await;
    assert_eq!(upstream_toxic.status, 200);
    assert_eq!(upstream_toxic.json()["name"], "latency_upstream");
    assert_eq!(upstream_toxic.json()["toxicity"].as_f64(), Some(0.5));
    let third = call(
        &fake,
        Method::POST,
        "/proxies/db/toxics",
        Some(r#"{"name":"t3","type":"slicer","toxicity":0.3,"attributes":{"average_size":8}}"#),
    )
    .await;
    assert!(
        third.text.contains(r#""toxicity":0.3}"#),
        "float32 written as Go does: {}",
        third.text
    );
    assert!(third
        .text
        .contains(r#"{"average_size":8,"size_variation":0,"delay":0}"#));
    call(&fake, Method::DELETE, "/proxies/db/toxics/t3", None).await;

    let listed = call(&fake, Method::GET, "/proxies/db/toxics", None).await;
    assert_eq!(listed.status, 200);
    let names: Vec<Value> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("latency_upstream"), json!("latency_downstream")]
    );

    let shown = call(
        &fake,
        Method::GET,
        "/proxies/db/toxics/latency_downstream",
        None,
    )
    .await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.json(), toxic);
    call(&fake, Method::GET, "/proxies/db/toxics/nope", None)
        .await
        .assert_error(404, "toxic not found");
    call(
        &fake,
        Method::GET,
        "/proxies/nope/toxics/latency_downstream",
        None,
    )
    .await
    .assert_error(404, "proxy not found");
}

#[tokio::test]
async fn bad_toxics_are_refused_in_toxiproxys_order() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    fake.create_proxy("db", upstream.addr).await;
    // The proxy is looked up before the body is read.
    call(&fake, Method::POST, "/proxies/nope/toxics", Some("garbage"))
        .await
        .assert_error(404, "proxy not found");
    let bad = call(&fake, Method::POST, "/proxies/db/toxics", Some("{not json")).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.content_type, "text/plain; charset=utf-8");
    assert!(
        bad.text.starts_with(r#"{"error":"bad request body: "#),
        "{}",
        bad.text
    );
    assert!(bad.text.ends_with("\"status\":400}\n"), "{}", bad.text);
    call(&fake, Method::POST, "/proxies/db/toxics", Some(""))
        .await
        .assert_error(400, "bad request body: EOF");
    call(
        &fake,
        Method::POST,
        "/proxies/db/toxics",
        Some(r#"{"type":"latency","stream":"sideways"}"#),
    )
    .await
    .assert_error(
        400,
        "stream was invalid, can be either upstream or downstream",
    );
    call(
        &fake,
        Method::POST,
        "/proxies/db/toxics",
        Some(r#"{"type":"packet_loss"}"#),
    )
    .await
    .assert_error(400, "invalid toxic type");
    let wrong_attr = call(
        &fake,
        Method::POST,
        "/proxies/db/toxics",
        Some(r#"{"type":"latency","attributes":{"latency":"slow"}}"#),
    )
    .await;
    assert_eq!(wrong_attr.status, 400);
    assert!(wrong_attr
        .text
        .starts_with(r#"{"error":"bad request body: "#));
    assert!(
        fake.toxics("db").is_empty(),
        "nothing was added by refused requests"
    );
}

#[tokio::test]
async fn toxics_are_updated_with_patch_and_deleted_with_204() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    fake.create_proxy("db", upstream.addr).await;
    call(
        &fake,
        Method::POST,
        "/proxies/db/toxics",
        Some(r#"{"name":"slow","type":"latency","attributes":{"latency":10,"jitter":2}}"#),
    )
    .await;
    let updated = call(
        &fake,
        Method::PATCH,
        "/proxies/db/toxics/slow",
        Some(r#"{"attributes":{"latency":50}}"#),
    )
    .await;
    assert_eq!(updated.status, 200);
    assert_eq!(
        updated.json()["attributes"],
        json!({"latency": 50, "jitter": 2})
    );
    call(&fake, Method::PATCH, "/proxies/db/toxics/nope", Some("{}"))
        .await
        .assert_error(404, "toxic not found");

    let deleted = call(&fake, Method::DELETE, "/proxies/db/toxics/slow", None).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(deleted.text, "");
    call(&fake, Method::DELETE, "/proxies/db/toxics/slow", None)
        .await
        .assert_error(404, "toxic not found");
    call(&fake, Method::DELETE, "/proxies/nope/toxics/slow", None)
        .await
        .assert_error(404, "proxy not found");
}

#[tokio::test]
async fn proxies_are_toggled_with_patch_and_reset_restores_everything() {
    let fake = FakeToxiproxy::start().await;
    let upstream = echo_server().await;
    let listen = fake.create_proxy("db", upstream.addr).await;
    let patched = call(
        &fake,
        Method::PATCH,
        "/proxies/db",
        Some(r#"{"enabled":false}"#),
    )
    .await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.json()["enabled"], false);
    assert!(
        tokio::net::TcpStream::connect(listen).await.is_err(),
        "a disabled proxy refuses connections"
    );
    // POST is deprecated for updates but still accepted.
    let posted = call(
        &fake,
        Method::POST,
        "/proxies/db",
        Some(r#"{"enabled":true}"#),
    )
    .await;
    assert_eq!(posted.status, 200);
    assert_eq!(posted.json()["enabled"], true);
    assert_eq!(
        posted.json()["listen"],
        listen.to_string(),
        "same address again"
    );
    call(
        &fake,
        Method::PATCH,
        "/proxies/nope",
        Some(r#"{"enabled":true}"#),
    )
    .await
    .assert_error(404, "proxy not found");
    let bad = call(
        &fake,
        Method::PATCH,
        "/proxies/db",
        Some(r#"{"enabled":"no"}"#),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.text.starts_with(r#"{"error":"bad request body: "#));

    call(
        &fake,
        Method::POST,
        "/proxies/db/toxics",
        Some(r#"{"type":"timeout","attributes":{"timeout":0}}"#),
    )
    .await;
    call(
        &fake,
        Method::PATCH,
        "/proxies/db",
        Some(r#"{"enabled":false}"#),
    )
    .await;
    let reset = call(&fake, Method::POST, "/reset", None).await;
    assert_eq!(reset.status, 204);
    assert_eq!(fake.enabled("db"), Some(true));
    assert!(fake.toxics("db").is_empty());
}

#[tokio::test]
async fn version_browsers_unknown_routes_and_methods() {
    let fake = FakeToxiproxy::start().await;
    let version = call(&fake, Method::GET, "/version", None).await;
    assert_eq!(version.status, 200);
    assert_eq!(version.content_type, "application/json;charset=utf-8");
    assert_eq!(
        version.text,
        format!("{{\"version\": \"{TOXIPROXY_VERSION}\"}}\n")
    );

    let browser = call_as(
        &fake,
        Method::GET,
        "/proxies",
        None,
        "Mozilla/5.0 (X11; Linux x86_64)",
    )
    .await;
    assert_eq!(browser.status, 403);
    assert_eq!(browser.content_type, "text/plain; charset=utf-8");
    assert_eq!(browser.text, "User agent not allowed\n");

    let unknown = call(&fake, Method::GET, "/nothing/here", None).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.text, "404 page not found\n");
    let wrong_method = call(&fake, Method::PUT, "/proxies", None).await;
    assert_eq!(wrong_method.status, 405);
}

#[tokio::test]
async fn noxious_flavor_says_direction_and_plain_version() {
    let fake = FakeToxiproxy::start_flavor(Flavor::Noxious).await;
    let upstream = echo_server().await;
    fake.create_proxy("db", upstream.addr).await;
    let created = call(
        &fake,
        Method::POST,
        "/proxies/db/toxics",
        Some(r#"{"type":"latency","stream":"upstream","attributes":{"latency":1}}"#),
    )
    .await;
    assert_eq!(created.json()["direction"], "upstream");
    assert!(created.json().get("stream").is_none());
    let version = call(&fake, Method::GET, "/version", None).await;
    assert_eq!(version.text, NOXIOUS_VERSION);
}
