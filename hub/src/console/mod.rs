//! The web console served at `/` (docs/console.md): server-rendered HTML pages, a little
//! hand-written JavaScript and CSS embedded in the binary, no external requests.
//!
//! **Invariant: the console is a client of the REST API.** Every page reads through, and every
//! button acts through, an in-process request to the API router (`Caller`), carrying the
//! session's token as `Authorization: Bearer` and the browser's address: the same auth gate,
//! policy table, scope checks, handlers and audit trail as any other client, never a side path.
//! What the console adds is sessions (a cookie for the token typed into the login form), CSRF
//! tokens on every form, and HTML.

mod builder;
mod html;
mod pages;
mod session;
mod svg;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chaoshub_schema::api::ErrorBody;
use chaoshub_schema::auth::Role;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::auth_gate::AuthGate;
use crate::config::AuthConfig;
use crate::operations::Hub;
use html::{esc, Nav, Refresh};
use session::{Session, Sessions};

const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");
const ICON: &str = include_str!("static/icon.svg");
const WORKFLOW_MODEL_JS: &str = include_str!("static/workflow_model.js");
const WORKFLOW_BUILDER_JS: &str = include_str!("static/workflow_builder.js");

/// The Content-Security-Policy of every console response: nothing but this origin, no inline
/// script or style, no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The largest API answer a page reads (a page of experiments is far smaller).
const MAX_API_BODY: usize = 32 << 20;

/// What the console's handlers share.
pub struct ConsoleState {
    api: Router,
    sessions: Sessions,
    /// Authenticates the token of the login form (and rate-limits failed attempts) exactly as
    /// the API's gate does.
    gate: AuthGate,
    auth_disabled: bool,
}

/// The console's routes in front of `api`, which serves everything else (and every request the
/// console makes on a person's behalf).
pub fn router(
    hub: Hub,
    auth: &AuthConfig,
    max_body: usize,
    api: Router,
    jwt: Option<Arc<crate::auth::jwt::JwtVerifier>>,
) -> Router {
    let state = Arc::new(ConsoleState {
        api: api.clone(),
        sessions: Sessions::new(hub.engine.store()),
        gate: AuthGate::new(hub, auth, jwt),
        auth_disabled: auth.mode == "none",
    });
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/experiments", get(pages::experiments))
        .route("/experiments/{uid}", get(pages::experiment))
        .route("/experiments/{uid}/{op}", post(pages::steer))
        .route("/new", get(pages::new_form).post(pages::new_submit))
        .route("/halt", post(pages::halt))
        .route("/unhalt", post(pages::unhalt))
        .route("/environments", get(pages::environments))
        .route("/conformance", get(pages::conformance))
        .route("/catalog", get(pages::catalog))
        .route(
            "/catalog/{name}",
            get(pages::template).post(pages::template_submit),
        )
        .route("/orchestration", get(pages::orchestration))
        .route("/workflows/new", get(builder::page))
        .route("/console/builder/parse", post(builder::parse))
        .route("/console/builder/templates/{name}", get(builder::template))
        .route(
            "/console/builder/templates/{name}/render",
            post(builder::render),
        )
        .route("/console/builder/submit", post(builder::submit))
        .route(
            "/console/builder/save-template",
            post(builder::save_template),
        )
        .route(
            "/console/builder/experiments/{uid}",
            get(builder::experiment),
        )
        .route("/suites", get(pages::suites))
        .route("/suites/{id}", get(pages::suite_run))
        .route("/suites/{id}/{file}", get(pages::suite_report))
        .route("/console/events", get(events))
        .route(
            "/console/static/{file}",
            get(static_file).layer(tower_http::compression::CompressionLayer::new()),
        )
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state)
        .fallback_service(api)
}

/// Security headers on every console response.
async fn security_headers(request: Request<Body>, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The console's stylesheet, scripts and icon. Each carries a strong `ETag` (a hash of its
/// bytes, so it changes with the binary) and `no-cache`: a browser revalidates on every page
/// and gets a bodiless 304 while the file is unchanged. The router gzips them for clients that
/// accept it (they hold no secret, so compression leaks nothing; pages, which hold CSRF
/// tokens, are not compressed).
async fn static_file(
    axum::extract::Path(file): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let (body, mime) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        "icon.svg" => (ICON, "image/svg+xml"),
        "workflow_model.js" => (WORKFLOW_MODEL_JS, "text/javascript; charset=utf-8"),
        "workflow_builder.js" => (WORKFLOW_BUILDER_JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    let tag = etag(&file, body);
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == tag
        });
    let status = if unchanged {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "no-cache"),
        ],
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    if !unchanged {
        *response.body_mut() = Body::from(body);
    }
    response
}

/// A strong entity tag for an embedded file: FNV-1a (64 bit) of its bytes, quoted; computed
/// once per file (the files are compiled in), not on every request.
fn etag(file: &str, body: &str) -> String {
    static TAGS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
        std::sync::OnceLock::new();
    let tags = TAGS.get_or_init(Default::default);
    let mut tags = tags.lock().unwrap_or_else(|p| p.into_inner());
    tags.entry(file.to_string())
        .or_insert_with(|| {
            let hash = body.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            format!("\"{hash:016x}\"")
        })
        .clone()
}

/// A request the console makes to the API on behalf of the session's person.
#[derive(Clone)]
pub struct Caller {
    api: Router,
    token: Option<String>,
    peer: Option<ConnectInfo<SocketAddr>>,
}

/// An API answer that was not a success: its status and error body.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: u16,
    pub body: ErrorBody,
}

impl ApiFailure {
    fn text(&self) -> String {
        let mut text = self.body.message.clone();
        for d in &self.body.details {
            text.push_str(&format!("; {}: {}", d.path, d.message));
        }
        text
    }
}

impl Caller {
    /// The API's response, unread (the event stream is passed through as it comes).
    pub async fn raw(&self, method: Method, uri: &str, body: Option<(&str, String)>) -> Response {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = &self.token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some((mime, text)) => {
                builder = builder.header(header::CONTENT_TYPE, mime);
                Body::from(text)
            }
            None => Body::empty(),
        };
        let mut request = match builder.body(body) {
            Ok(r) => r,
            Err(e) => {
                return (StatusCode::BAD_REQUEST, format!("bad request: {e}")).into_response()
            }
        };
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(peer);
        }
        match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// Calls the API and reads a JSON answer into `T`.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        uri: &str,
        body: Option<(&str, String)>,
    ) -> Result<T, ApiFailure> {
        let response = self.raw(method, uri, body).await;
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_API_BODY)
            .await
            .unwrap_or_else(|_| Bytes::new());
        if (200..300).contains(&status) {
            serde_json::from_slice(&bytes).map_err(|e| ApiFailure {
                status: 500,
                body: ErrorBody {
                    code: "console".into(),
                    message: format!("the console cannot read the API's answer to {uri}: {e}"),
                    details: vec![],
                },
            })
        } else {
            Err(ApiFailure {
                status,
                body: serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody {
                    code: "unknown".into(),
                    message: String::from_utf8_lossy(&bytes).into_owned(),
                    details: vec![],
                }),
            })
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, uri: &str) -> Result<T, ApiFailure> {
        self.send(Method::GET, uri, None).await
    }
}

/// The request's session and an API caller acting for it. Without a live session the request
/// is sent to the login form (which comes back to the same page).
pub struct Ctx {
    pub session: Session,
    pub api: Caller,
    pub state: Arc<ConsoleState>,
    pub tls: bool,
    /// When the request arrived, before anything was read for it (a live page's event replay
    /// starts here).
    pub arrived: chrono::DateTime<chrono::Utc>,
}

impl Ctx {
    /// Whether the session's role passes the policy of an API route (buttons that would fail
    /// are left out; the API still decides).
    pub fn may(&self, method: &str, route: &str) -> bool {
        match crate::auth::policy::lookup(method, route).map(|p| p.access) {
            Some(crate::auth::policy::Access::Role(role)) => self.session.role >= role,
            Some(_) => true,
            None => false,
        }
    }
}

impl FromRequestParts<Arc<ConsoleState>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ConsoleState>,
    ) -> Result<Self, Response> {
        let arrived = crate::time::now();
        let session =
            session::cookie(&parts.headers, session::COOKIE).and_then(|id| state.sessions.get(&id));
        let Some(session) = session else {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let next = if parts.method == Method::GET {
                next
            } else {
                "/"
            };
            return Err(Redirect::to(&format!("/login?next={}", html::url(next))).into_response());
        };
        Ok(Ctx {
            api: Caller {
                api: state.api.clone(),
                token: session.token.clone(),
                peer: parts.extensions.get::<ConnectInfo<SocketAddr>>().copied(),
            },
            session,
            state: Arc::clone(state),
            tls: session::is_tls(&parts.headers),
            arrived,
        })
    }
}

/// What a console handler can fail with.
pub enum Failure {
    /// The API refused or failed; shown as a page (a 401 means the token is no longer valid, so
    /// the session ends and the person logs in again).
    Api(ApiFailure),
    /// A form that is not acceptable (missing CSRF token, a confirmation not typed…).
    Form(StatusCode, String),
}

impl From<ApiFailure> for Failure {
    fn from(f: ApiFailure) -> Self {
        Failure::Api(f)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Failure::Api(f) if f.status == 401 => {
                return (
                    [(header::SET_COOKIE, session::clear_cookie(false))],
                    Redirect::to("/login"),
                )
                    .into_response()
            }
            Failure::Api(f) => (
                StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                f.text(),
            ),
            Failure::Form(status, text) => (status, text),
        };
        let body = format!(
            "{}<p><a href=\"/\">Back to the overview</a></p>",
            html::notice("error", &text)
        );
        html_response(
            status,
            html::page("Error", Nav::None, None, Refresh::Static, &body),
        )
    }
}

pub fn html_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Checks a form's CSRF token and, when the browser sent one, that its `Origin` is this host.
pub fn check_form(ctx: &Ctx, headers: &HeaderMap, csrf: &str) -> Result<(), Failure> {
    check_origin(headers)?;
    if !session::csrf_matches(&ctx.session, csrf) {
        return Err(Failure::Form(
            StatusCode::FORBIDDEN,
            "the form's CSRF token does not match this session; reload the page and try again"
                .into(),
        ));
    }
    Ok(())
}

fn check_origin(headers: &HeaderMap) -> Result<(), Failure> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    if origin_host == host {
        Ok(())
    } else {
        Err(Failure::Form(
            StatusCode::FORBIDDEN,
            format!("a form from origin {origin:?} was refused (this console is {host:?})"),
        ))
    }
}

/// A path to return to after a form: only paths of this site.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.into(),
        _ => "/".into(),
    }
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

async fn login_form(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = local_path(q.next.as_deref());
    if state.auth_disabled {
        // `auth.mode = "none"` (loopback only): everyone is the local admin, as in the API; the
        // session exists for the CSRF token of the forms.
        let session = state.sessions.create(None, "local".into(), Role::Admin);
        return (
            [(
                header::SET_COOKIE,
                session::set_cookie(&session.id, session::is_tls(&headers)),
            )],
            Redirect::to(&next),
        )
            .into_response();
    }
    html_response(StatusCode::OK, login_page(&next, None))
}

fn login_page(next: &str, error: Option<&str>) -> String {
    let error = error.map(|e| html::notice("error", e)).unwrap_or_default();
    let body = format!(
        "{error}<form method=\"post\" action=\"/login\" class=\"card narrow\">\
<input type=\"hidden\" name=\"next\" value=\"{}\">\
<label for=\"token\">API token</label>\
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
<p class=\"hint\">A token from <code>chaoshub token create</code>, or the bootstrap admin token in \
<code>&lt;data-dir&gt;/admin.token</code>. It stays on the hub; the browser gets a session cookie.</p>\
<button class=\"primary\">Log in</button></form>",
        esc(next)
    );
    html::page("Log in", Nav::None, None, Refresh::Static, &body)
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// The client's address, when the server recorded it (always, under `chaoshub serve`).
struct Peer(Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

async fn login(
    State(state): State<Arc<ConsoleState>>,
    Peer(addr): Peer,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(f) = check_origin(&headers) {
        return f.into_response();
    }
    let next = local_path(form.next.as_deref());
    if let Some(retry) = addr.and_then(|a| state.gate.limiter.blocked(a)) {
        return html_response(
            StatusCode::TOO_MANY_REQUESTS,
            login_page(
                &next,
                Some(&format!(
                    "too many failed attempts from this address; retry in {retry} s"
                )),
            ),
        );
    }
    let token = form.token.trim().to_string();
    let mut auth = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        auth.insert(header::AUTHORIZATION, v);
    }
    match state.gate.authenticate(&auth).await {
        Ok(principal) => {
            let session = state
                .sessions
                .create(Some(token), principal.name, principal.role);
            (
                [(
                    header::SET_COOKIE,
                    session::set_cookie(&session.id, session::is_tls(&headers)),
                )],
                Redirect::to(&next),
            )
                .into_response()
        }
        Err(error) => {
            if let Some(a) = addr {
                state.gate.limiter.failed(a);
            }
            html_response(
                StatusCode::UNAUTHORIZED,
                login_page(&next, Some(&error.to_string())),
            )
        }
    }
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

async fn logout(ctx: Ctx, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    if let Err(f) = check_form(&ctx, &headers, &form.csrf) {
        return f.into_response();
    }
    ctx.state.sessions.remove(&ctx.session.id);
    (
        [(header::SET_COOKIE, session::clear_cookie(ctx.tls))],
        Redirect::to("/login"),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct EventsQuery {
    since: Option<String>,
}

/// The API's event stream for the page's script (an `EventSource` cannot send the token).
async fn events(ctx: Ctx, Query(q): Query<EventsQuery>) -> Response {
    let since = q
        .since
        .as_deref()
        .and_then(crate::time::parse)
        .map(crate::time::format)
        .unwrap_or_else(crate::time::now_rfc3339);
    ctx.api
        .raw(
            Method::GET,
            &format!("/api/v1/events/stream?since={}", html::url(&since)),
            None,
        )
        .await
}

/// The values a fault imposes on each target, from its spec (`telemetry::fault_values`, as in
/// `/metrics`), as (what, value, unit) in the units people read.
pub fn fault_values(
    e: &chaoshub_schema::api::ExperimentObject,
) -> Vec<(&'static str, f64, &'static str)> {
    use crate::telemetry::fault_values::{fault_values, FaultQuantity as Q};
    fault_values(&e.kind, &e.status.actions, &e.spec)
        .into_iter()
        .map(|(q, v)| match q {
            Q::DelaySeconds => ("delay", v * 1000.0, "ms"),
            Q::JitterSeconds => ("jitter", v * 1000.0, "ms"),
            Q::LossRatio => ("loss", v * 100.0, "%"),
            Q::DuplicateRatio => ("duplicate", v * 100.0, "%"),
            Q::CorruptRatio => ("corrupt", v * 100.0, "%"),
            Q::BandwidthBytesPerSecond => ("bandwidth", v / 1000.0, "kB/s"),
            Q::CpuLoadRatio => ("CPU load", v * 100.0, "%"),
            Q::CpuWorkers => ("CPU workers", v, "workers"),
            Q::AbortRatio => ("abort", v * 100.0, "%"),
        })
        .collect()
}

/// A number with at most two decimals and no trailing zeros.
pub fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script listens to every event name the hub emits (named server-sent events reach
    /// only listeners of their name), so a new event refreshes live pages too.
    #[test]
    fn the_script_listens_to_every_event() {
        let events = include_str!("../events.rs");
        let mut missing = Vec::new();
        for line in events.lines() {
            let Some(rest) = line.trim().strip_prefix("pub const ") else {
                continue;
            };
            let Some(name) = rest.split('"').nth(1) else {
                continue;
            };
            if name.starts_with("chaoshub.") && !JS.contains(&format!("\"{name}\"")) {
                missing.push(name.to_string());
            }
        }
        assert!(
            missing.is_empty(),
            "console.js does not listen to {missing:?}; add them to its list"
        );
    }

    #[test]
    fn local_paths_only() {
        assert_eq!(
            local_path(Some("/experiments?phase=Running")),
            "/experiments?phase=Running"
        );
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil")), "/");
        assert_eq!(local_path(None), "/");
        assert_eq!(trim(100.0), "100");
        assert_eq!(trim(0.126), "0.13");
        assert_eq!(trim(2.50), "2.5");
    }

    /// The embedded files stay small: every page loads them.
    #[test]
    fn assets_are_small() {
        assert!(CSS.len() + JS.len() + ICON.len() < 30_000);
        // The builder's two files load on its page only (readable, unminified: with template
        // saving, parameter marks and the live canvas they are about 76 kB; 96 kB is the budget).
        assert!(WORKFLOW_MODEL_JS.len() + WORKFLOW_BUILDER_JS.len() < 96_000);
    }
}
