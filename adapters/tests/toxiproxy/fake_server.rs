//! A Toxiproxy-compatible test server: **a fake**, written for the tests because no Toxiproxy
//! binary can be installed on the machines that run them (no Go toolchain, no release
//! downloads, no container images).
//!
//! It is a fake of the API, not of the effects: proxies forward real TCP between real sockets
//! and the toxics really act on the bytes (latency ± jitter, bandwidth, timeout, slow_close,
//! reset_peer with a TCP RST, slicer, limit_data; `enabled: false` closes the listener so
//! connections are refused). The HTTP API reproduces Toxiproxy 2.x as documented and as its
//! `api.go` behaves: the routes, `POST /proxies/{proxy}/toxics` → 200 with the toxic JSON,
//! defaults (`stream: downstream`, `toxicity: 1`, name `<type>_<stream>`), names unique per
//! proxy across both streams, the order in which a bad toxic is refused, the error bodies
//! `{"error":"…","status":N}` sent as `text/plain` by Go's `http.Error` (with its trailing
//! newline), `GET /version`, `PATCH` updates (POST still accepted, as upstream), and 403 for
//! a `User-Agent` starting with `Mozilla/`. `tests/toxiproxy/contract.rs` pins all of that, so
//! a drift between this fake and the documented API is caught there.
//!
//! Known simplifications: toxics act on whole reads of up to 32 KiB (Toxiproxy's chunks are
//! whatever its reads return, too); the order of effects inside one stream is fixed (limit,
//! latency, slicer, bandwidth) instead of the chain order; `/populate` and `/metrics` are not
//! served; Go's exact `encoding/json` error wording after `bad request body: ` is not copied.
//!
//! `Flavor::Noxious` answers like the Rust port Noxious where it differs from Toxiproxy:
//! `direction` instead of `stream` in toxics, and a plain-text `GET /version`.

#![allow(dead_code)]
// Handlers return the error response itself as `Err`: it is built once per refused request,
// so boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Which server the fake answers like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Toxiproxy,
    Noxious,
}

pub const TOXIPROXY_VERSION: &str = "2.12.0";
pub const NOXIOUS_VERSION: &str = "1.0.4";

/// The toxic types Toxiproxy 2.x ships, with the attributes each takes (all integers).
const TOXIC_TYPES: &[(&str, &[&str])] = &[
    ("latency", &["latency", "jitter"]),
    ("bandwidth", &["rate"]),
    ("slow_close", &["delay"]),
    ("timeout", &["timeout"]),
    ("reset_peer", &["timeout"]),
    ("slicer", &["average_size", "size_variation", "delay"]),
    ("limit_data", &["bytes"]),
];

fn attribute_names(toxic_type: &str) -> Option<&'static [&'static str]> {
    TOXIC_TYPES
        .iter()
        .find(|(t, _)| *t == toxic_type)
        .map(|(_, a)| *a)
}

/// One toxic as the server holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    pub name: String,
    pub toxic_type: String,
    /// As given (Toxiproxy checks it case-insensitively but keeps the text).
    pub stream: String,
    pub upstream: bool,
    pub toxicity: f32,
    /// Every attribute of the type, in declaration order.
    pub attributes: Vec<(&'static str, i64)>,
}

impl Toxic {
    fn attr(&self, name: &str) -> i64 {
        self.attributes
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    }

    fn to_json(&self, flavor: Flavor) -> Value {
        let mut attrs = Map::new();
        for (k, v) in &self.attributes {
            attrs.insert(k.to_string(), json!(v));
        }
        let stream_key = match flavor {
            Flavor::Toxiproxy => "stream",
            Flavor::Noxious => "direction",
        };
        let mut map = Map::new();
        map.insert("attributes".into(), Value::Object(attrs));
        map.insert("name".into(), json!(self.name));
        map.insert("type".into(), json!(self.toxic_type));
        map.insert(stream_key.into(), json!(self.stream));
        map.insert("toxicity".into(), go_float32(self.toxicity));
        Value::Object(map)
    }
}

/// A float32 as Go's `encoding/json` writes it: the shortest text that reads back as the same
/// float32, and no `.0` on whole numbers (`1`, `0.5`, `0.3`).
fn go_float32(value: f32) -> Value {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return json!(value as i64);
    }
    let shortest: f64 = value.to_string().parse().unwrap_or(value as f64);
    json!(shortest)
}

type ToxicSet = Arc<Vec<Toxic>>;

/// Connection-ending signals.
const KILL_NONE: u8 = 0;
const KILL_CLOSE: u8 = 1;
const KILL_RESET: u8 = 2;

/// A proxy's listener while it is enabled.
struct Running {
    accept: JoinHandle<()>,
    /// Ends every connection of this run (disable, delete, drop).
    kill: watch::Sender<u8>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = self.kill.send(KILL_CLOSE);
    }
}

struct ProxyEntry {
    name: String,
    listen: String,
    upstream: String,
    enabled: bool,
    toxics: Vec<Toxic>,
    live: watch::Sender<ToxicSet>,
    running: Option<Running>,
}

impl ProxyEntry {
    fn to_json(&self, flavor: Flavor) -> Value {
        let mut map = Map::new();
        map.insert("name".into(), json!(self.name));
        map.insert("listen".into(), json!(self.listen));
        map.insert("upstream".into(), json!(self.upstream));
        map.insert("enabled".into(), json!(self.enabled));
        // Toxiproxy lists the upstream chain, then the downstream chain.
        let ordered = self
            .toxics
            .iter()
            .filter(|t| t.upstream)
            .chain(self.toxics.iter().filter(|t| !t.upstream));
        map.insert(
            "toxics".into(),
            Value::Array(ordered.map(|t| t.to_json(flavor)).collect()),
        );
        Value::Object(map)
    }

    fn toxics_json(&self, flavor: Flavor) -> Value {
        self.to_json(flavor)["toxics"].clone()
    }

    fn publish(&self) {
        let _ = self.live.send(Arc::new(self.toxics.clone()));
    }
}

struct Shared {
    flavor: Flavor,
    proxies: Mutex<BTreeMap<String, ProxyEntry>>,
    /// Counts API requests, so tests can see that a call did (or did not) reach the server.
    requests: Mutex<Vec<String>>,
}

/// The API listener while it runs.
struct Api {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A running fake Toxiproxy server. Dropping it stops the API and every proxy.
pub struct FakeToxiproxy {
    shared: Arc<Shared>,
    api_addr: SocketAddr,
    api: Mutex<Option<Api>>,
}

impl Drop for FakeToxiproxy {
    fn drop(&mut self) {
        if let Some(api) = self.api.lock().unwrap().take() {
            let _ = api.shutdown.send(true);
            api.task.abort();
        }
        // Dropping the entries stops their listeners and connections.
        self.shared.proxies.lock().unwrap().clear();
    }
}

impl FakeToxiproxy {
    pub async fn start() -> FakeToxiproxy {
        Self::start_flavor(Flavor::Toxiproxy).await
    }

    pub async fn start_flavor(flavor: Flavor) -> FakeToxiproxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            flavor,
            proxies: Mutex::new(BTreeMap::new()),
            requests: Mutex::new(Vec::new()),
        });
        let fake = FakeToxiproxy {
            shared,
            api_addr,
            api: Mutex::new(None),
        };
        fake.serve(listener);
        fake
    }

    fn serve(&self, listener: TcpListener) {
        let (shutdown, mut rx) = watch::channel(false);
        let shared = Arc::clone(&self.shared);
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let shared = Arc::clone(&shared);
                async move { handle(&shared, method, uri, headers, body).await }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await;
        });
        *self.api.lock().unwrap() = Some(Api { shutdown, task });
    }

    /// The API's base URL, for an environment's `spec.endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// Makes the API unreachable (connections refused) while proxies keep forwarding with
    /// their toxics: a Toxiproxy server cut off from the hub.
    pub async fn stop_api(&self) {
        let api = self.api.lock().unwrap().take();
        if let Some(api) = api {
            let _ = api.shutdown.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), api.task).await;
        }
    }

    /// Serves the API again on the same address.
    pub async fn start_api(&self) {
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.api_addr).await {
                Ok(l) => break l,
                Err(e) if attempts < 50 => {
                    attempts += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!(
                    "cannot re-bind the fake Toxiproxy API on {}: {e}",
                    self.api_addr
                ),
            }
        };
        self.serve(listener);
    }

    /// Creates a proxy through the API (as a user would), returning its listen address.
    pub async fn create_proxy(&self, name: &str, upstream: SocketAddr) -> SocketAddr {
        // reqwest has no rustls provider of its own here (`rustls-no-provider`); ring, as in
        // the rest of the tree. This file is shared by three test crates, hence rustls directly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let response = reqwest::Client::new()
            .post(format!("{}/proxies", self.url()))
            .json(&json!({"name": name, "listen": "127.0.0.1:0", "upstream": upstream.to_string()}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201, "creating proxy {name}");
        let body: Value = response.json().await.unwrap();
        body["listen"].as_str().unwrap().parse().unwrap()
    }

    /// The toxics of a proxy as the server holds them (bypassing the API).
    pub fn toxics(&self, proxy: &str) -> Vec<Toxic> {
        self.shared
            .proxies
            .lock()
            .unwrap()
            .get(proxy)
            .map(|p| p.toxics.clone())
            .unwrap_or_default()
    }

    pub fn toxic_names(&self, proxy: &str) -> Vec<String> {
        self.toxics(proxy).into_iter().map(|t| t.name).collect()
    }

    pub fn enabled(&self, proxy: &str) -> Option<bool> {
        self.shared
            .proxies
            .lock()
            .unwrap()
            .get(proxy)
            .map(|p| p.enabled)
    }

    /// `METHOD /path` of every API request served so far.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }
}

// -------------------------------------------------------------------------------------------
// HTTP API

/// Go's `http.Error`: the message plus a newline, as `text/plain; charset=utf-8`.
fn go_http_error(status: u16, text: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("x-content-type-options", "nosniff")
        .body(Body::from(format!("{text}\n")))
        .unwrap()
}

/// Toxiproxy's `apiError`: a JSON body sent through `http.Error`, hence as text/plain.
fn api_error(status: u16, message: &str) -> Response {
    let body = serde_json::to_string(&json!({"error": message, "status": status})).unwrap();
    go_http_error(status, &body)
}

fn json_response(status: u16, value: &Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(value).unwrap()))
        .unwrap()
}

fn no_content() -> Response {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .unwrap()
}

/// gorilla/mux answers a known path with the wrong method 405 and an empty body.
fn method_not_allowed() -> Response {
    Response::builder()
        .status(StatusCode::METHOD_NOT_ALLOWED)
        .body(Body::empty())
        .unwrap()
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(
    shared: &Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared
        .requests
        .lock()
        .unwrap()
        .push(format!("{method} {}", uri.path()));
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if agent.starts_with("Mozilla/") {
        return go_http_error(403, "User agent not allowed");
    }
    let segments: Vec<String> = uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let m = &method;
    match segs.as_slice() {
        ["version"] if m == Method::GET => version(shared.flavor),
        ["reset"] if m == Method::POST => reset(shared).await,
        ["proxies"] if m == Method::GET => proxy_index(shared),
        ["proxies"] if m == Method::POST => proxy_create(shared, &body).await,
        ["proxies", name] if m == Method::GET => proxy_show(shared, name),
        ["proxies", name] if m == Method::PATCH || m == Method::POST => {
            proxy_update(shared, name, &body).await
        }
        ["proxies", name] if m == Method::DELETE => proxy_delete(shared, name),
        ["proxies", name, "toxics"] if m == Method::GET => toxic_index(shared, name),
        ["proxies", name, "toxics"] if m == Method::POST => toxic_create(shared, name, &body),
        ["proxies", name, "toxics", toxic] if m == Method::GET => toxic_show(shared, name, toxic),
        ["proxies", name, "toxics", toxic] if m == Method::PATCH || m == Method::POST => {
            toxic_update(shared, name, toxic, &body)
        }
        ["proxies", name, "toxics", toxic] if m == Method::DELETE => {
            toxic_delete(shared, name, toxic)
        }
        ["version"]
        | ["reset"]
        | ["proxies"]
        | ["proxies", _]
        | ["proxies", _, "toxics"]
        | ["proxies", _, "toxics", _] => method_not_allowed(),
        _ => go_http_error(404, "404 page not found"),
    }
}

fn version(flavor: Flavor) -> Response {
    match flavor {
        Flavor::Toxiproxy => Response::builder()
            .status(200)
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json;charset=utf-8"),
            )
            .body(Body::from(format!(
                "{{\"version\": \"{TOXIPROXY_VERSION}\"}}\n"
            )))
            .unwrap(),
        Flavor::Noxious => Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Body::from(NOXIOUS_VERSION))
            .unwrap(),
    }
}

/// The JSON kind Go names in its decode errors.
fn go_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn bad_body(detail: impl std::fmt::Display) -> Response {
    api_error(400, &format!("bad request body: {detail}"))
}

/// Decodes a request body as Go's `json.NewDecoder(...).Decode` would (empty → `EOF`).
fn decode_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_body("EOF"));
    }
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    match stream.next() {
        Some(Ok(Value::Object(map))) => Ok(map),
        Some(Ok(other)) => Err(bad_body(format!(
            "json: cannot unmarshal {} into Go value of type toxiproxy.Proxy",
            go_kind(&other)
        ))),
        Some(Err(e)) => Err(bad_body(format!("invalid JSON: {e}"))),
        None => Err(bad_body("EOF")),
    }
}

fn string_field(
    map: &Map<String, Value>,
    key: &str,
    go_type: &str,
) -> Result<Option<String>, Response> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad_body(format!(
            "json: cannot unmarshal {} into Go struct field {go_type}.{key} of type string",
            go_kind(other)
        ))),
    }
}

fn bool_field(map: &Map<String, Value>, key: &str) -> Result<Option<bool>, Response> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(bad_body(format!(
            "json: cannot unmarshal {} into Go struct field Proxy.{key} of type bool",
            go_kind(other)
        ))),
    }
}

fn proxy_index(shared: &Shared) -> Response {
    let proxies = shared.proxies.lock().unwrap();
    let mut map = Map::new();
    for (name, p) in proxies.iter() {
        map.insert(name.clone(), p.to_json(shared.flavor));
    }
    json_response(200, &Value::Object(map))
}

fn proxy_show(shared: &Shared, name: &str) -> Response {
    let proxies = shared.proxies.lock().unwrap();
    match proxies.get(name) {
        Some(p) => json_response(200, &p.to_json(shared.flavor)),
        None => api_error(404, "proxy not found"),
    }
}

async fn proxy_create(shared: &Arc<Shared>, body: &[u8]) -> Response {
    let map = match decode_object(body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let fields = (|| {
        Ok::<_, Response>((
            string_field(&map, "name", "Proxy")?.unwrap_or_default(),
            string_field(&map, "listen", "Proxy")?.unwrap_or_default(),
            string_field(&map, "upstream", "Proxy")?.unwrap_or_default(),
            bool_field(&map, "enabled")?.unwrap_or(true),
        ))
    })();
    let (name, listen, upstream, enabled) = match fields {
        Ok(f) => f,
        Err(r) => return r,
    };
    if name.is_empty() {
        return api_error(400, "missing required field: name");
    }
    if upstream.is_empty() {
        return api_error(400, "missing required field: upstream");
    }
    if shared.proxies.lock().unwrap().contains_key(&name) {
        return api_error(409, "proxy already exists");
    }
    let (live, _) = watch::channel(Arc::new(Vec::new()));
    let mut entry = ProxyEntry {
        name: name.clone(),
        listen: if listen.is_empty() {
            "127.0.0.1:0".into()
        } else {
            listen
        },
        upstream,
        enabled: false,
        toxics: Vec::new(),
        live,
        running: None,
    };
    if enabled {
        if let Err(e) = start_proxy(&mut entry).await {
            return api_error(500, &e);
        }
    }
    let mut proxies = shared.proxies.lock().unwrap();
    if proxies.contains_key(&name) {
        return api_error(409, "proxy already exists");
    }
    let answer = entry.to_json(shared.flavor);
    proxies.insert(name, entry);
    json_response(201, &answer)
}

async fn proxy_update(shared: &Arc<Shared>, name: &str, body: &[u8]) -> Response {
    let (listen, upstream, enabled, mut entry) = {
        let mut proxies = shared.proxies.lock().unwrap();
        let Some(entry) = proxies.remove(name) else {
            return api_error(404, "proxy not found");
        };
        let parsed = decode_object(body).and_then(|map| {
            Ok((
                string_field(&map, "listen", "Proxy")?,
                string_field(&map, "upstream", "Proxy")?,
                bool_field(&map, "enabled")?,
            ))
        });
        match parsed {
            Ok((l, u, e)) => (l, u, e, entry),
            Err(r) => {
                proxies.insert(name.to_string(), entry);
                return r;
            }
        }
    };
    let restart = listen.as_ref().is_some_and(|l| *l != entry.listen)
        || upstream.as_ref().is_some_and(|u| *u != entry.upstream);
    if let Some(l) = listen {
        entry.listen = l;
    }
    if let Some(u) = upstream {
        entry.upstream = u;
    }
    let want = enabled.unwrap_or(entry.enabled);
    let mut result = Ok(());
    if !want || restart {
        stop_proxy(&mut entry);
    }
    if want && entry.running.is_none() {
        result = start_proxy(&mut entry).await;
    }
    let answer = entry.to_json(shared.flavor);
    shared
        .proxies
        .lock()
        .unwrap()
        .insert(name.to_string(), entry);
    match result {
        Ok(()) => json_response(200, &answer),
        Err(e) => api_error(500, &e),
    }
}

fn proxy_delete(shared: &Shared, name: &str) -> Response {
    match shared.proxies.lock().unwrap().remove(name) {
        Some(_) => no_content(),
        None => api_error(404, "proxy not found"),
    }
}

async fn reset(shared: &Arc<Shared>) -> Response {
    let names: Vec<String> = shared.proxies.lock().unwrap().keys().cloned().collect();
    for name in names {
        let entry = shared.proxies.lock().unwrap().remove(&name);
        if let Some(mut entry) = entry {
            entry.toxics.clear();
            entry.publish();
            if entry.running.is_none() {
                if let Err(e) = start_proxy(&mut entry).await {
                    shared.proxies.lock().unwrap().insert(name, entry);
                    return api_error(500, &e);
                }
            }
            shared.proxies.lock().unwrap().insert(name, entry);
        }
    }
    no_content()
}

fn toxic_index(shared: &Shared, name: &str) -> Response {
    match shared.proxies.lock().unwrap().get(name) {
        Some(p) => json_response(200, &p.toxics_json(shared.flavor)),
        None => api_error(404, "proxy not found"),
    }
}

/// Reads a toxic's attributes over `base`, as Go decodes JSON into the toxic's struct:
/// known keys must be integers, unknown keys are ignored, `null` changes nothing.
fn decode_attributes(
    toxic_type: &str,
    value: Option<&Value>,
    base: &mut [(&'static str, i64)],
) -> Result<(), Response> {
    let map = match value {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(bad_body(format!(
                "json: cannot unmarshal {} into Go struct field .attributes of type toxics.{}",
                go_kind(other),
                toxic_type
            )))
        }
    };
    for (key, slot) in base.iter_mut() {
        match map.get(*key) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_i64().is_some() => *slot = n.as_i64().unwrap_or(0),
            Some(other) => {
                let shown = match other {
                    Value::Number(n) => format!("number {n}"),
                    v => go_kind(v).to_string(),
                };
                return Err(bad_body(format!(
                    "json: cannot unmarshal {shown} into Go struct field .attributes.{key} of type int64"
                )));
            }
        }
    }
    Ok(())
}

fn toxic_create(shared: &Shared, name: &str, body: &[u8]) -> Response {
    let mut proxies = shared.proxies.lock().unwrap();
    let Some(entry) = proxies.get_mut(name) else {
        return api_error(404, "proxy not found");
    };
    let map = match decode_object(body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let parsed = (|| {
        let toxic_name = string_field(&map, "name", "ToxicWrapper")?.unwrap_or_default();
        let toxic_type = string_field(&map, "type", "ToxicWrapper")?.unwrap_or_default();
        // Go decodes a JSON null into the zero value, so `"stream": null` keeps the default.
        let stream = match map.get("stream") {
            None | Some(Value::Null) => "downstream".to_string(),
            Some(_) => string_field(&map, "stream", "ToxicWrapper")?.unwrap_or_default(),
        };
        let toxicity = match map.get("toxicity") {
            None | Some(Value::Null) => 1.0f32,
            Some(Value::Number(n)) => n.as_f64().unwrap_or(1.0) as f32,
            Some(other) => {
                return Err(bad_body(format!(
                    "json: cannot unmarshal {} into Go struct field ToxicWrapper.toxicity of type float32",
                    go_kind(other)
                )))
            }
        };
        Ok((toxic_name, toxic_type, stream, toxicity))
    })();
    let (mut toxic_name, toxic_type, stream, toxicity) = match parsed {
        Ok(p) => p,
        Err(r) => return r,
    };
    let upstream = match stream.to_ascii_lowercase().as_str() {
        "upstream" => true,
        "downstream" => false,
        _ => {
            return api_error(
                400,
                "stream was invalid, can be either upstream or downstream",
            )
        }
    };
    if toxic_name.is_empty() {
        toxic_name = format!("{toxic_type}_{stream}");
    }
    let Some(names) = attribute_names(&toxic_type) else {
        return api_error(400, "invalid toxic type");
    };
    if entry.toxics.iter().any(|t| t.name == toxic_name) {
        return api_error(409, "toxic already exists");
    }
    let mut attributes: Vec<(&'static str, i64)> = names.iter().map(|n| (*n, 0)).collect();
    if let Err(r) = decode_attributes(&toxic_type, map.get("attributes"), &mut attributes) {
        return r;
    }
    let toxic = Toxic {
        name: toxic_name,
        toxic_type,
        stream,
        upstream,
        toxicity,
        attributes,
    };
    let answer = toxic.to_json(shared.flavor);
    entry.toxics.push(toxic);
    entry.publish();
    json_response(200, &answer)
}

fn toxic_show(shared: &Shared, name: &str, toxic: &str) -> Response {
    let proxies = shared.proxies.lock().unwrap();
    let Some(entry) = proxies.get(name) else {
        return api_error(404, "proxy not found");
    };
    match entry.toxics.iter().find(|t| t.name == toxic) {
        Some(t) => json_response(200, &t.to_json(shared.flavor)),
        None => api_error(404, "toxic not found"),
    }
}

fn toxic_update(shared: &Shared, name: &str, toxic: &str, body: &[u8]) -> Response {
    let mut proxies = shared.proxies.lock().unwrap();
    let Some(entry) = proxies.get_mut(name) else {
        return api_error(404, "proxy not found");
    };
    let Some(index) = entry.toxics.iter().position(|t| t.name == toxic) else {
        return api_error(404, "toxic not found");
    };
    let map = match decode_object(body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let mut updated = entry.toxics[index].clone();
    if let Err(r) = decode_attributes(
        &updated.toxic_type.clone(),
        map.get("attributes"),
        &mut updated.attributes,
    ) {
        return r;
    }
    match map.get("toxicity") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => updated.toxicity = n.as_f64().unwrap_or(1.0) as f32,
        Some(other) => {
            return bad_body(format!(
                "json: cannot unmarshal {} into Go struct field .toxicity of type float32",
                go_kind(other)
            ))
        }
    }
    let answer = updated.to_json(shared.flavor);
    entry.toxics[index] = updated;
    entry.publish();
    json_response(200, &answer)
}

fn toxic_delete(shared: &Shared, name: &str, toxic: &str) -> Response {
    let mut proxies = shared.proxies.lock().unwrap();
    let Some(entry) = proxies.get_mut(name) else {
        return api_error(404, "proxy not found");
    };
    let Some(index) = entry.toxics.iter().position(|t| t.name == toxic) else {
        return api_error(404, "toxic not found");
    };
    entry.toxics.remove(index);
    entry.publish();
    no_content()
}

// -------------------------------------------------------------------------------------------
// TCP forwarding with toxics

async fn start_proxy(entry: &mut ProxyEntry) -> Result<(), String> {
    let listener = TcpListener::bind(&entry.listen)
        .await
        .map_err(|e| format!("listen tcp {}: {e}", entry.listen))?;
    entry.listen = listener
        .local_addr()
        .map_err(|e| e.to_string())?
        .to_string();
    let (kill, _) = watch::channel(KILL_NONE);
    let upstream = entry.upstream.clone();
    let live = entry.live.subscribe();
    let proxy_kill = kill.subscribe();
    let accept = tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let upstream = upstream.clone();
            let live = live.clone();
            let proxy_kill = proxy_kill.clone();
            tokio::spawn(async move {
                let Ok(Ok(server)) =
                    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&upstream))
                        .await
                else {
                    return;
                };
                run_connection(client, server, live, proxy_kill).await;
            });
        }
    });
    entry.running = Some(Running { accept, kill });
    entry.enabled = true;
    Ok(())
}

fn stop_proxy(entry: &mut ProxyEntry) {
    // Dropping `Running` closes the listener and ends every connection.
    entry.running = None;
    entry.enabled = false;
}

async fn run_connection(
    client: TcpStream,
    server: TcpStream,
    live: watch::Receiver<ToxicSet>,
    proxy_kill: watch::Receiver<u8>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let (conn_kill, _) = watch::channel(KILL_NONE);
    let conn_kill = Arc::new(conn_kill);
    let up = tokio::spawn(pump(
        client_read,
        server_write,
        true,
        live.clone(),
        Arc::clone(&conn_kill),
        proxy_kill.clone(),
    ));
    let down = tokio::spawn(pump(
        server_read,
        client_write,
        false,
        live,
        conn_kill,
        proxy_kill,
    ));
    let _ = tokio::join!(up, down);
}

/// What one connection remembers about one toxic.
struct ToxicState {
    since: Instant,
    /// Toxicity is rolled once per connection and toxic, as Toxiproxy does per link.
    active: bool,
    /// Bytes that went through since the toxic arrived (`limit_data`).
    passed: u64,
}

/// A tiny PRNG for jitter, slicing and toxicity; seeded per stream.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64)
            | 1;
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in `-spread..=spread`.
    fn spread(&mut self, spread: i64) -> i64 {
        if spread <= 0 {
            return 0;
        }
        (self.next() % (2 * spread as u64 + 1)) as i64 - spread
    }
}

enum Step {
    Continue,
    End(u8),
}

/// Moves bytes from `src` to `dst` through the toxics of one stream.
async fn pump(
    mut src: OwnedReadHalf,
    mut dst: OwnedWriteHalf,
    upstream: bool,
    mut live: watch::Receiver<ToxicSet>,
    conn_kill: Arc<watch::Sender<u8>>,
    mut proxy_kill: watch::Receiver<u8>,
) {
    let mut kill_rx = conn_kill.subscribe();
    let mut states: HashMap<String, ToxicState> = HashMap::new();
    let mut rng = Rng::new();
    let mut buf = vec![0u8; 32 * 1024];
    let mut pace_at = Instant::now();
    let ending = loop {
        let chain: Vec<Toxic> = {
            let set = live.borrow_and_update();
            set.iter()
                .filter(|t| t.upstream == upstream)
                .cloned()
                .collect()
        };
        states.retain(|name, _| chain.iter().any(|t| &t.name == name));
        for t in &chain {
            states.entry(t.name.clone()).or_insert_with(|| ToxicState {
                since: Instant::now(),
                active: rng.unit() < t.toxicity,
                passed: 0,
            });
        }
        let active: Vec<&Toxic> = chain.iter().filter(|t| states[&t.name].active).collect();
        // Time-driven toxics: timeout closes (or never, at 0), reset_peer resets.
        let mut deadline: Option<(Instant, u8)> = None;
        let mut stalled = false;
        for t in &active {
            let since = states[&t.name].since;
            let at = |ms: i64| since + Duration::from_millis(ms.max(0) as u64);
            let candidate = match t.toxic_type.as_str() {
                "timeout" => {
                    stalled = true;
                    (t.attr("timeout") > 0).then(|| (at(t.attr("timeout")), KILL_CLOSE))
                }
                "reset_peer" => Some((at(t.attr("timeout")), KILL_RESET)),
                _ => None,
            };
            if let Some(c) = candidate {
                if deadline.is_none_or(|d| c.0 < d.0) {
                    deadline = Some(c);
                }
            }
        }
        let sleep_until = deadline.map_or(Instant::now() + Duration::from_secs(3600), |d| d.0);
        let step = tokio::select! {
            _ = kill_rx.changed() => Step::End(*kill_rx.borrow()),
            _ = proxy_kill.changed() => Step::End(KILL_CLOSE),
            changed = live.changed() => {
                if changed.is_err() { Step::End(KILL_CLOSE) } else { Step::Continue }
            }
            _ = tokio::time::sleep_until(sleep_until), if deadline.is_some() => {
                let kind = deadline.map_or(KILL_CLOSE, |d| d.1);
                let _ = conn_kill.send(kind);
                Step::End(kind)
            }
            read = src.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    // The sender closed: slow_close holds our close back.
                    let delay = active.iter().filter(|t| t.toxic_type == "slow_close")
                        .map(|t| t.attr("delay")).max().unwrap_or(0);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
                    }
                    let _ = dst.shutdown().await;
                    Step::End(KILL_NONE)
                }
                Ok(n) if stalled => { let _ = n; Step::Continue } // dropped on the floor
                Ok(n) => {
                    let mut data = buf[..n].to_vec();
                    let mut close_after = false;
                    for t in active.iter().filter(|t| t.toxic_type == "limit_data") {
                        let state = states.get_mut(&t.name).unwrap();
                        let left = (t.attr("bytes").max(0) as u64).saturating_sub(state.passed);
                        if (data.len() as u64) >= left {
                            data.truncate(left as usize);
                            close_after = true;
                        }
                        state.passed += data.len() as u64;
                    }
                    forward(&mut dst, &data, &active, &mut rng, &mut pace_at, &mut kill_rx).await;
                    if close_after {
                        let _ = conn_kill.send(KILL_CLOSE);
                        Step::End(KILL_CLOSE)
                    } else {
                        Step::Continue
                    }
                }
            }
        };
        match step {
            Step::Continue => continue,
            Step::End(kind) => break kind,
        }
    };
    if ending == KILL_RESET && !upstream {
        // `dst` is the client's socket: a zero linger makes its close a TCP RST, and `forget`
        // skips the FIN a dropped write half would send first.
        let _ = dst.as_ref().set_zero_linger();
        dst.forget();
        return;
    }
    if ending == KILL_NONE {
        // Half-closed: keep the write side shut, let the other direction finish.
        return;
    }
    drop(dst);
    drop(src);
}

/// Writes one read's worth of data with latency, slicing and bandwidth applied.
async fn forward(
    dst: &mut OwnedWriteHalf,
    data: &[u8],
    active: &[&Toxic],
    rng: &mut Rng,
    pace_at: &mut Instant,
    kill: &mut watch::Receiver<u8>,
) {
    if data.is_empty() {
        return;
    }
    let latency: i64 = active
        .iter()
        .filter(|t| t.toxic_type == "latency")
        .map(|t| (t.attr("latency") + rng.spread(t.attr("jitter"))).max(0))
        .sum();
    if latency > 0 {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(latency as u64)) => {}
            _ = kill.changed() => return,
        }
    }
    let slicer = active.iter().find(|t| t.toxic_type == "slicer");
    let rate = active
        .iter()
        .filter(|t| t.toxic_type == "bandwidth")
        .map(|t| t.attr("rate"))
        .filter(|r| *r > 0)
        .min();
    let mut pieces: Vec<&[u8]> = Vec::new();
    match slicer {
        Some(s) => {
            let avg = s.attr("average_size").max(1);
            let var = s.attr("size_variation").clamp(0, avg - 1);
            let mut rest = data;
            while !rest.is_empty() {
                let size = (avg + rng.spread(var)).max(1) as usize;
                let (head, tail) = rest.split_at(size.min(rest.len()));
                pieces.push(head);
                rest = tail;
            }
        }
        None => match rate {
            // Paced in pieces of 100 ms worth of data, as Toxiproxy's bandwidth toxic does.
            Some(r) => pieces.extend(data.chunks((r as usize * 100).max(1))),
            None => pieces.push(data),
        },
    }
    let slice_delay = slicer.map_or(0, |s| s.attr("delay").max(0) as u64);
    for (i, piece) in pieces.iter().enumerate() {
        if let Some(r) = rate {
            // Bytes per millisecond = KB/s; pace against a running schedule so sleeps' own
            // overshoot does not slow the stream down.
            let now = Instant::now();
            if *pace_at < now {
                *pace_at = now;
            }
            *pace_at += Duration::from_micros(piece.len() as u64 * 1000 / r as u64);
            tokio::select! {
                _ = tokio::time::sleep_until(*pace_at) => {}
                _ = kill.changed() => return,
            }
        }
        if dst.write_all(piece).await.is_err() {
            return;
        }
        if slice_delay > 0 && i + 1 < pieces.len() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_micros(slice_delay)) => {}
                _ = kill.changed() => return,
            }
        }
    }
}
