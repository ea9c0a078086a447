//! The REST API under `/api/v1`: HTTP in, operations, JSON out. Every error leaves as an
//! `ErrorBody` with a status from `HubError::status`; no extractor rejection leaks as text.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chaoshub_schema::api::{HaltRequest, Health, Page};
use futures::Stream;
use serde::Serialize;

use crate::catalog_http as catalog;
use crate::error::HubError;
pub(crate) use crate::http_params::{continue_token, path, Params};
use crate::operations::{parse_body, parse_label_selector, BodyFormat, Hub, Submitted};
use crate::store::{EventFilter, ExperimentFilter};

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        if let HubError::Store(e) = &self {
            tracing::error!(error = ?e, "store error while serving a request");
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        match &self {
            HubError::Unauthenticated { .. } => {
                response.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer realm=\"chaoshub\""),
                );
            }
            HubError::TooManyRequests {
                retry_after_secs, ..
            } => {
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(*retry_after_secs),
                );
            }
            _ => {}
        }
        response
    }
}

type ApiResult<T> = Result<T, HubError>;

fn json<T: Serialize>(status: StatusCode, value: T) -> Response {
    (status, Json(value)).into_response()
}

pub(crate) fn body(b: Result<Bytes, BytesRejection>, limit: usize) -> ApiResult<Bytes> {
    b.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            HubError::TooLarge { limit }
        } else {
            HubError::bad_request("invalid_body", format!("cannot read the request body: {e}"))
        }
    })
}

pub(crate) fn body_format(headers: &HeaderMap) -> ApiResult<BodyFormat> {
    let Some(value) = headers.get(axum::http::header::CONTENT_TYPE) else {
        return Ok(BodyFormat::Yaml);
    };
    let text = value.to_str().unwrap_or("").to_ascii_lowercase();
    let mime = text.split(';').next().unwrap_or("").trim();
    match mime {
        "application/json" => Ok(BodyFormat::Json),
        ""
        | "application/yaml"
        | "application/x-yaml"
        | "text/yaml"
        | "text/x-yaml"
        | "text/plain"
        | "application/octet-stream" => Ok(BodyFormat::Yaml),
        m if m.ends_with("+json") => Ok(BodyFormat::Json),
        m if m.ends_with("+yaml") => Ok(BodyFormat::Yaml),
        _ => Err(HubError::UnsupportedMediaType {
            content_type: mime.to_string(),
        }),
    }
}

#[derive(Clone)]
struct AppState {
    hub: Hub,
    max_body: usize,
    /// The conformance matrix, computed on first use: it depends only on the adapter types
    /// registered at start and the measured figures compiled in.
    conformance: std::sync::Arc<std::sync::OnceLock<chaoshub_schema::api::ConformanceMatrix>>,
}

/// Lets handlers outside this file (the catalog's) take `State<Hub>`.
impl axum::extract::FromRef<AppState> for Hub {
    fn from_ref(state: &AppState) -> Hub {
        state.hub.clone()
    }
}

/// Builds the router of the whole API. Every route passes the auth gate
/// (`auth_gate::gate`), which finds it in the policy table (`auth::policy`).
pub fn router(
    hub: Hub,
    max_body: usize,
    auth: &crate::config::AuthConfig,
    jwt: Option<std::sync::Arc<crate::auth::jwt::JwtVerifier>>,
) -> Router {
    let metrics = std::sync::Arc::clone(hub.engine.telemetry().metrics());
    let gate = std::sync::Arc::new(crate::auth_gate::AuthGate::new(hub.clone(), auth, jwt));
    let state = AppState {
        hub,
        max_body,
        conformance: std::sync::Arc::default(),
    };
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(prometheus_metrics))
        .route("/readyz", get(ready))
        .route("/api/v1/openapi.json", get(openapi))
        .route(
            "/api/v1/experiments",
            post(create_experiment).get(list_experiments),
        )
        .route(
            "/api/v1/experiments/{id}",
            get(get_experiment).delete(delete_experiment),
        )
        .route("/api/v1/experiments/{id}/pause", post(pause_experiment))
        .route("/api/v1/experiments/{id}/resume", post(resume_experiment))
        .route("/api/v1/experiments/{id}/stop", post(stop_experiment))
        .route("/api/v1/archives", get(list_archives))
        .route(
            "/api/v1/environments",
            post(create_environment).get(list_environments),
        )
        .route(
            "/api/v1/environments/{name}",
            get(get_environment).delete(delete_environment),
        )
        .route(
            "/api/v1/environments/{name}/targets",
            get(environment_targets),
        )
        .route(
            "/api/v1/environments/{name}/capabilities",
            get(environment_capabilities),
        )
        .route("/api/v1/adapters", get(list_adapters))
        .route("/api/v1/conformance", get(conformance))
        .route("/api/v1/agents", get(list_agents))
        .route(
            "/api/v1/agents/{env}/{name}",
            get(get_agent).delete(crate::agents_http::remove_agent),
        )
        .route("/api/v1/agents/{env}/{name}/usage", get(agent_usage))
        .route(
            "/api/v1/environments/{name}/join-tokens",
            post(crate::agents_http::create_join_token).get(crate::agents_http::list_join_tokens),
        )
        .route(
            "/api/v1/environments/{name}/join-tokens/{id}",
            axum::routing::delete(crate::agents_http::revoke_join_token),
        )
        .route("/api/v1/events", get(list_events))
        .route("/api/v1/events/stream", get(stream_events))
        .route("/api/v1/halt", get(halt_status).post(halt).delete(unhalt))
        .route(
            "/api/v1/suites",
            post(crate::suites::http::create_suite_run),
        )
        .route(
            "/api/v1/suites/runs",
            get(crate::suites::http::list_suite_runs),
        )
        .route(
            "/api/v1/suites/runs/{id}",
            get(crate::suites::http::get_suite_run),
        )
        .route(
            "/api/v1/suites/runs/{id}/junit",
            get(crate::suites::http::get_suite_run_junit),
        )
        .route(
            "/api/v1/templates",
            get(catalog::list_templates).post(catalog::save_template),
        )
        .route("/api/v1/templates/{name}", get(catalog::get_template))
        .route(
            "/api/v1/templates/{name}/render",
            post(catalog::render_template),
        )
        .route("/api/v1/templates/{name}/run", post(catalog::run_template))
        .route(
            "/api/v1/catalogs",
            get(catalog::list_catalogs).post(catalog::add_catalog),
        )
        .route(
            "/api/v1/catalogs/{name}",
            get(catalog::get_catalog).delete(catalog::delete_catalog),
        )
        .route(
            "/api/v1/catalogs/{name}/refresh",
            post(catalog::refresh_catalog),
        )
        .route(
            "/api/v1/tokens",
            get(crate::auth_http::list_tokens).post(crate::auth_http::create_token_handler),
        )
        .route(
            "/api/v1/tokens/{name}",
            axum::routing::delete(crate::auth_http::revoke_token),
        )
        .route("/api/v1/audit", get(crate::auth_http::list_audit))
        .route_layer(axum::middleware::from_fn_with_state(
            gate,
            crate::auth_gate::gate,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::telemetry::track_request,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .with_state(state)
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    let body = chaoshub_schema::api::ErrorBody {
        code: "internal".into(),
        message: "internal error (a handler panicked; this is a bug)".into(),
        details: vec![],
    };
    json(StatusCode::INTERNAL_SERVER_ERROR, body)
}

async fn not_found() -> Response {
    HubError::not_found("route").into_response()
}

async fn method_not_allowed() -> Response {
    let body = chaoshub_schema::api::ErrorBody {
        code: "method_not_allowed".into(),
        message: "this method is not allowed on this path".into(),
        details: vec![],
    };
    json(StatusCode::METHOD_NOT_ALLOWED, body)
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        replica: None,
    })
}

/// Ready when the store answers. A replica of a shared store also says whether it leads: every
/// replica is ready to serve the API (a load balancer sends traffic to all of them).
async fn ready(State(s): State<AppState>) -> ApiResult<Json<Health>> {
    s.hub.halt_status()?;
    let leadership = s.hub.engine.leadership();
    let replica = leadership.shared().then(|| {
        let leader = leadership.leader();
        chaoshub_schema::api::ReplicaHealth {
            id: leadership.id().to_string(),
            role: if leadership.is_leader() {
                "leader"
            } else {
                "follower"
            }
            .into(),
            leader: leader.as_ref().map(|l| l.id.clone()),
            leader_url: leader.and_then(|l| l.url),
        }
    });
    Ok(Json(Health {
        status: "ready".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        replica,
    }))
}

/// Prometheus exposition (see `telemetry::metrics`).
async fn prometheus_metrics(State(s): State<AppState>) -> Response {
    crate::telemetry::metrics_response(
        s.hub.engine.telemetry().metrics(),
        s.hub.engine.store().as_ref(),
    )
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

async fn create_experiment(
    State(s): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let params = Params::from(query, &["env", "dryRun"])?;
    let format = body_format(&headers)?;
    let bytes = body(raw, s.max_body)?;
    let value = parse_body(&bytes, format)?;
    let dry_run = params.bool("dryRun")?;
    let submitted = tracing::Instrument::instrument(
        s.hub.submit(value, params.str("env"), dry_run),
        tracing::debug_span!("hub.submit"),
    )
    .await?;
    Ok(match submitted {
        Submitted::Created(object) => json(StatusCode::CREATED, object),
        Submitted::DryRun(result) => json(StatusCode::OK, result),
    })
}

fn experiment_filter(params: &Params, archived: bool) -> ApiResult<ExperimentFilter> {
    let phase = match params.str("phase") {
        Some(p) => Some(
            chaoshub_schema::api::ExperimentPhase::parse(p)
                .ok_or_else(|| HubError::bad_request("invalid_query", format!("unknown phase {p:?} (one of Pending, Injecting, Running, Paused, Recovering, Finished, Failed, Aborted)")))?
                .as_str()
                .to_string(),
        ),
        None => None,
    };
    let before_seq = match params.str("continue") {
        Some(t) => Some(t.parse::<i64>().map_err(|_| {
            HubError::bad_request("invalid_query", format!("invalid continue token {t:?}"))
        })?),
        None => None,
    };
    Ok(ExperimentFilter {
        phase,
        kind: params.str("kind").map(str::to_string),
        namespace: params.str("namespace").map(str::to_string),
        environment: params.str("env").map(str::to_string),
        archived,
        before_seq,
        limit: 0,
    })
}

async fn list_experiments(
    State(s): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    let params = Params::from(
        query,
        &[
            "phase",
            "kind",
            "namespace",
            "env",
            "limit",
            "continue",
            "archived",
        ],
    )?;
    let filter = experiment_filter(&params, params.bool("archived")?)?;
    list_in_scope(&s.hub, filter, params.int("limit")?)
}

/// A page of experiments with those outside the caller's scope left out (a namespace or
/// environment filter outside it is a 403).
fn list_in_scope(hub: &Hub, filter: ExperimentFilter, limit: Option<usize>) -> ApiResult<Response> {
    let principal = crate::auth::current();
    if let Some(p) = &principal {
        if let Some(ns) = &filter.namespace {
            p.require_namespace(ns)?;
        }
        if let Some(env) = &filter.environment {
            p.require_environment(env)?;
        }
    }
    let mut page = hub.list(filter, limit)?;
    if let Some(p) = principal.filter(|p| !p.unrestricted()) {
        page.items.retain(|o| {
            p.namespace_allowed(o.metadata.namespace.as_deref().unwrap_or("default"))
                && p.environment_allowed(&o.status.environment)
        });
    }
    Ok(json(StatusCode::OK, page))
}

async fn list_archives(
    State(s): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    let params = Params::from(
        query,
        &["phase", "kind", "namespace", "env", "limit", "continue"],
    )?;
    let filter = experiment_filter(&params, true)?;
    list_in_scope(&s.hub, filter, params.int("limit")?)
}

async fn get_experiment(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    let params = Params::from(query, &["namespace"])?;
    let row = s.hub.find(&path(id)?, params.str("namespace"))?;
    Ok(json(StatusCode::OK, row.to_object()))
}

async fn pause_experiment(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    let params = Params::from(query, &["namespace"])?;
    Ok(json(
        StatusCode::OK,
        s.hub.pause(&path(id)?, params.str("namespace"))?,
    ))
}

async fn resume_experiment(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    let params = Params::from(query, &["namespace"])?;
    Ok(json(
        StatusCode::OK,
        s.hub.resume(&path(id)?, params.str("namespace"))?,
    ))
}

async fn stop_experiment(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    let params = Params::from(query, &["namespace"])?;
    Ok(json(
        StatusCode::OK,
        s.hub
            .stop(&path(id)?, params.str("namespace"), "stopped by user")?,
    ))
}

async fn delete_experiment(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    let params = Params::from(query, &["namespace"])?;
    let object = s
        .hub
        .delete(&path(id)?, params.str("namespace"), Duration::from_secs(30))
        .await?;
    Ok(json(StatusCode::OK, object))
}

async fn create_environment(
    State(s): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let params = Params::from(query, &["replace"])?;
    let format = body_format(&headers)?;
    let value = parse_body(&body(raw, s.max_body)?, format)?;
    let (object, existed) = s.hub.register_environment(value, params.bool("replace")?)?;
    Ok(json(
        if existed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        object,
    ))
}

async fn list_environments(
    State(s): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    Params::from(query, &[])?;
    let mut page = s.hub.list_environments()?;
    if let Some(p) = crate::auth::current() {
        page.items
            .retain(|e| p.environment_allowed(e.metadata.name.as_deref().unwrap_or_default()));
    }
    Ok(json(StatusCode::OK, page))
}

async fn get_environment(
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, s.hub.get_environment(&path(name)?)?))
}

async fn delete_environment(
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    Ok(json(
        StatusCode::OK,
        s.hub.delete_environment(&path(name)?)?,
    ))
}

async fn environment_targets(
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    let params = Params::from(query, &["labelSelector", "limit", "continue"])?;
    let selector = match params.str("labelSelector") {
        Some(text) => parse_label_selector(text).map_err(HubError::invalid)?,
        None => Default::default(),
    };
    let limit = params.limit(DEFAULT_LISTED, MAX_LISTED)?;
    let after = params.continue_after(1)?.map(|mut p| p.remove(0));
    let page = s
        .hub
        .targets(&path(name)?, &selector, after.as_deref(), limit)
        .await?;
    let continue_token = page
        .more
        .then(|| page.items.last())
        .flatten()
        .map(|t| continue_token(&[t.id.as_str()]));
    Ok(json(
        StatusCode::OK,
        Page {
            items: page.items,
            continue_token,
            total: Some(page.total),
        },
    ))
}

/// How many agents or targets a page holds unless `limit` says otherwise, and at most.
pub(crate) const DEFAULT_LISTED: usize = 500;
pub(crate) const MAX_LISTED: usize = 5000;

async fn environment_capabilities(
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let items = s.hub.environment_capabilities(&path(name)?).await?;
    Ok(json(
        StatusCode::OK,
        Page {
            items,
            continue_token: None,
            total: None,
        },
    ))
}

/// `GET /api/v1/agents[?env=][&limit=][&continue=]`: a page of agents by environment and name,
/// with the total over all pages; only the page is copied and serialised.
async fn list_agents(
    State(s): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    let params = Params::from(query, &["env", "limit", "continue"])?;
    let limit = params.limit(DEFAULT_LISTED, MAX_LISTED)?;
    let after = params.continue_after(2)?;
    let principal = crate::auth::current();
    let visible = |env: &str| {
        principal
            .as_ref()
            .is_none_or(|p| p.environment_allowed(env))
    };
    let page = s.hub.engine.agents.page(
        params.str("env"),
        after.as_ref().map(|p| (p[0].as_str(), p[1].as_str())),
        limit,
        &visible,
    );
    let continue_token = page
        .more
        .then(|| page.items.last())
        .flatten()
        .map(|a| continue_token(&[&a.environment, &a.name]));
    Ok(json(
        StatusCode::OK,
        Page {
            items: page.items,
            continue_token,
            total: Some(page.total),
        },
    ))
}

async fn get_agent(
    State(s): State<AppState>,
    Path((env, name)): Path<(String, String)>,
) -> Response {
    match s.hub.engine.agents.get(&env, &name) {
        Some(agent) => json(StatusCode::OK, agent),
        None => {
            HubError::not_found(format!("agent {name:?} in environment {env:?}")).into_response()
        }
    }
}

/// `GET /api/v1/agents/{env}/{name}/usage[?since=RFC3339]`: the host's usage at each heartbeat
/// of the last 15 minutes, oldest first.
async fn agent_usage(
    State(s): State<AppState>,
    names: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    let (env, name) = crate::http_params::path_pair(names)?;
    let params = Params::from(query, &["since"])?;
    let since = match params.str("since") {
        None => None,
        Some(text) => Some(crate::time::parse(text).ok_or_else(|| {
            HubError::bad_request(
                "invalid_query",
                format!("since: {text:?} is not an RFC 3339 time (e.g. 2026-12-07T10:00:00Z)"),
            )
        })?),
    };
    match s.hub.engine.agents.usage(&env, &name, since) {
        Some(items) => Ok(json(
            StatusCode::OK,
            Page {
                items,
                continue_token: None,
                total: None,
            },
        )),
        None => Err(HubError::not_found(format!(
            "agent {name:?} in environment {env:?}"
        ))),
    }
}

async fn list_adapters(State(s): State<AppState>) -> Response {
    json(
        StatusCode::OK,
        Page {
            items: s.hub.engine.registry().infos(),
            continue_token: None,
            total: None,
        },
    )
}

async fn conformance(State(s): State<AppState>) -> Response {
    let matrix = s.conformance.get_or_init(|| {
        crate::conformance::matrix(s.hub.engine.registry(), &crate::conformance::measured())
    });
    json(StatusCode::OK, matrix)
}

fn event_filter(params: &Params) -> ApiResult<EventFilter> {
    Ok(EventFilter {
        // A uid or a name; the handler resolves names.
        experiment_uid: params.str("experiment").map(str::to_string),
        after_id: params.int("after")?,
        since: params
            .str("since")
            .map(|since| {
                crate::time::parse(since)
                    .map(crate::time::format)
                    .ok_or_else(|| {
                        HubError::bad_request(
                            "invalid_query",
                            format!("since must be an RFC 3339 time, got {since:?}"),
                        )
                    })
            })
            .transpose()?,
        limit: params.int::<usize>("limit")?.unwrap_or(500).clamp(1, 5000),
    })
}

async fn list_events(
    State(s): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    let params = Params::from(
        query,
        &["experiment", "after", "since", "limit", "namespace"],
    )?;
    let mut filter = event_filter(&params)?;
    if let Some(id) = &filter.experiment_uid {
        filter.experiment_uid = Some(experiment_in_scope(&s.hub, id, params.str("namespace"))?);
    }
    let mut items = s.hub.engine.store().list_events(&filter)?;
    if let Some(mut visible) = EventScope::of_caller(&s.hub) {
        items.retain(|e| visible.allows(e));
    }
    let continue_token = (items.len() == filter.limit)
        .then(|| items.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(json(
        StatusCode::OK,
        Page {
            items,
            continue_token,
            total: None,
        },
    ))
}

/// Server-Sent Events: stored events after `Last-Event-ID` (or `after`), then live ones.
async fn stream_events(
    State(s): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let params = Params::from(query, &["experiment", "after", "since", "namespace"])?;
    let mut filter = event_filter(&params)?;
    if let Some(id) = &filter.experiment_uid {
        filter.experiment_uid = Some(experiment_in_scope(&s.hub, id, params.str("namespace"))?);
    }
    let scope = EventScope::of_caller(&s.hub);
    if let Some(last) = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
    {
        filter.after_id = Some(last);
    }
    // The store is the source of truth and the broadcast only a wake-up: every batch is read
    // from the store after the last id sent, in id order. A publish that arrives out of order,
    // or a receiver that lagged, can therefore never lose or duplicate an event, and a client
    // resuming with Last-Event-ID gets exactly what it missed. Subscribing before the first
    // read means no wake-up falls between the two.
    // Events other replicas of a shared store append wake it too.
    let live = (
        s.hub.engine.subscribe(),
        s.hub.engine.subscribe_external_changes(),
    );
    let store = std::sync::Arc::clone(s.hub.engine.store());
    let pending = std::collections::VecDeque::new();
    let stream = futures::stream::unfold(
        (store, live, filter, pending, scope),
        |(store, mut live, mut filter, mut pending, mut scope)| async move {
            loop {
                if let Some(event) = pending.pop_front() {
                    let sse = event_to_sse(&event);
                    return Some((Ok(sse), (store, live, filter, pending, scope)));
                }
                filter.limit = 500;
                let read = tracing::debug_span!("sse.read").entered();
                let batch = store.list_events(&filter);
                drop(read);
                match batch {
                    Ok(batch) if !batch.is_empty() => {
                        filter.after_id = batch.last().map(|e| e.id);
                        pending.extend(
                            batch
                                .into_iter()
                                .filter(|e| scope.as_mut().is_none_or(|s| s.allows(e))),
                        );
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "event stream cannot read the store; closing it");
                        return None;
                    }
                }
                tokio::select! {
                    received = live.0.recv() => match received {
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    },
                    changed = live.1.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Resolves an experiment named by `?experiment=` and checks it is in the caller's scope.
fn experiment_in_scope(hub: &Hub, id: &str, namespace: Option<&str>) -> ApiResult<String> {
    let row = hub.find(id, namespace)?;
    crate::auth::check_scope(&row.namespace, Some(&row.status.environment))?;
    Ok(row.uid)
}

/// Which events a scoped caller may read: those of environments in scope whose experiment
/// (if any) is in a namespace in scope. None for a caller who may read everything.
struct EventScope {
    principal: crate::auth::Principal,
    store: std::sync::Arc<dyn crate::store::Store>,
    namespaces: HashMap<String, bool>,
}

impl EventScope {
    fn of_caller(hub: &Hub) -> Option<Self> {
        let principal = crate::auth::current().filter(|p| !p.unrestricted())?;
        Some(Self {
            principal,
            store: std::sync::Arc::clone(hub.engine.store()),
            namespaces: HashMap::new(),
        })
    }

    fn allows(&mut self, e: &chaoshub_schema::api::EventRecord) -> bool {
        if let Some(env) = &e.environment {
            if !self.principal.environment_allowed(env) {
                return false;
            }
        }
        let Some(uid) = &e.experiment_uid else {
            // Hub-wide events (started, halted) carry no namespace: readable by every viewer.
            return true;
        };
        if let Some(allowed) = self.namespaces.get(uid) {
            return *allowed;
        }
        let allowed = match self.store.get_experiment(uid) {
            Ok(Some(row)) => self.principal.namespace_allowed(&row.namespace),
            _ => false,
        };
        self.namespaces.insert(uid.clone(), allowed);
        allowed
    }
}

fn event_to_sse(e: &chaoshub_schema::api::EventRecord) -> Event {
    Event::default()
        .id(e.id.to_string())
        .event(e.name.clone())
        .json_data(e)
        .unwrap_or_default()
}

async fn halt_status(State(s): State<AppState>) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, s.hub.halt_status()?))
}

async fn halt(
    State(s): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let bytes = body(raw, s.max_body)?;
    let request: HaltRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        HaltRequest::default()
    } else {
        let value = parse_body(&bytes, body_format(&headers)?)?;
        serde_json::from_value(value).map_err(|e| {
            HubError::bad_request(
                "invalid_body",
                format!("halt body: {e} (expected {{\"reason\": \"...\"}})"),
            )
        })?
    };
    Ok(json(StatusCode::OK, s.hub.halt(request.reason)?))
}

async fn unhalt(State(s): State<AppState>) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, s.hub.unhalt()?))
}
