//! The agent's local REST API: the same operations as the CLI, plus `/metrics` (node and fault
//! metrics) and `/healthz`. Whoever reaches it can inject faults as the agent's user, so it is
//! a Unix socket of mode 0600 by default (only that user, usually root, can connect), or, with
//! `--rest-listen`, a loopback TCP port where every request but `/healthz` needs the bearer
//! token the daemon writes to `<state-dir>/rest.token` (mode 0600) at start.
//!
//! - `GET  /api/v1/status` — identity, hub link, mechanisms, fault count
//! - `GET  /api/v1/faults` — every fault in force (read back now)
//! - `POST /api/v1/faults` — `{"id"?: str, "fault": AgentFault, "durationMs": u64}` → 201
//! - `GET  /api/v1/faults/{id}`, `DELETE /api/v1/faults/{id}`

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chaoshub_schema::agent::AgentFault;
use serde::Deserialize;
use serde_json::json;

use crate::daemon::faults::FaultError;
use crate::daemon::Daemon;
use crate::local_api::TOKEN_FILE;

pub use crate::local_api::{write_private, RestListen};

/// The longest fault the local API accepts without a hub (a guardrail against typos).
pub const MAX_LOCAL_DURATION_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateFault {
    #[serde(default)]
    pub id: Option<String>,
    pub fault: AgentFault,
    pub duration_ms: u64,
}

struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"code": self.1, "message": self.2}))).into_response()
    }
}

impl From<FaultError> for ApiError {
    fn from(e: FaultError) -> Self {
        let (status, code) = match e.kind() {
            "unsupported" => (StatusCode::UNPROCESSABLE_ENTITY, "unsupported"),
            "invalid" => (StatusCode::BAD_REQUEST, "invalid"),
            "not-found" => (StatusCode::NOT_FOUND, "not_found"),
            "conflict" => (StatusCode::CONFLICT, "conflict"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "failed"),
        };
        ApiError(status, code, e.to_string())
    }
}

/// Binds the listener and serves until `shutdown` fires. Refuses a non-loopback TCP address.
pub async fn serve(
    listen: RestListen,
    state_dir: PathBuf,
    daemon: Arc<Daemon>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    match listen {
        RestListen::Unix(path) => {
            let listener = bind_unix(&path)?;
            tracing::info!(socket = %path.display(), "local REST API on a Unix socket (mode 0600)");
            let app = router(daemon);
            Ok(tokio::spawn(async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await;
                let _ = std::fs::remove_file(&path);
                served
            }))
        }
        RestListen::Tcp(addr) => {
            if !addr.ip().is_loopback() {
                anyhow::bail!(
                    "--rest-listen {addr}: the local REST API listens on loopback only (127.0.0.1 or ::1); it runs faults as this agent's user"
                );
            }
            let token = crate::local_api::new_token();
            write_private(&state_dir.join(TOKEN_FILE), token.as_bytes())?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
            tracing::info!(listen = %listener.local_addr()?, token_file = %state_dir.join(TOKEN_FILE).display(), "local REST API on loopback TCP (bearer token required)");
            let app = router_with_token(daemon, token);
            Ok(tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
            }))
        }
    }
}

/// Binds a Unix socket that only this user can connect to. A stale socket of a previous run is
/// replaced; any other file at the path is an error.
fn bind_unix(path: &FsPath) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)
            .map_err(|e| anyhow::anyhow!("cannot remove the old socket {}: {e}", path.display()))?,
        Ok(_) => anyhow::bail!(
            "{} exists and is not a socket; remove it or choose --rest-socket",
            path.display()
        ),
        Err(_) => {}
    }
    // The umask makes the socket 0600 from its creation: no window where others may connect.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = tokio::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener =
        bound.map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

async fn require_token(
    State(token): State<Arc<String>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same = presented.len() == token.len()
        && presented
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        return next.run(request).await;
    }
    ApiError(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        format!("send Authorization: Bearer <the token in <state-dir>/{TOKEN_FILE}>"),
    )
    .into_response()
}

/// The API of a loopback TCP listener: every route but `/healthz` needs `Bearer <token>`.
pub fn router_with_token(daemon: Arc<Daemon>, token: String) -> Router {
    router(daemon).layer(axum::middleware::from_fn_with_state(
        Arc::new(token),
        require_token,
    ))
}

pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/faults", get(list).post(create))
        .route("/api/v1/faults/{id}", get(get_fault).delete(delete_fault))
        .with_state(daemon)
}

async fn status(State(d): State<Arc<Daemon>>) -> Json<serde_json::Value> {
    let link = d.link.borrow().clone();
    Json(json!({
        "name": d.identity.name,
        "environment": d.identity.environment,
        "labels": d.identity.labels,
        "version": env!("CARGO_PKG_VERSION"),
        "hub": link,
        "mechanisms": d.table.mechanisms(),
        "capabilities": d.identity.capabilities,
        "allowed": d.identity.allowed,
        "faults": d.table.len(),
    }))
}

async fn metrics(State(d): State<Arc<Daemon>>) -> Response {
    let table = d.table.clone();
    match tokio::task::spawn_blocking(move || crate::metrics::render(&table)).await {
        Ok(body) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            ApiError(StatusCode::INTERNAL_SERVER_ERROR, "failed", e.to_string()).into_response()
        }
    }
}

async fn list(State(d): State<Arc<Daemon>>) -> Result<Json<serde_json::Value>, ApiError> {
    let table = d.table.clone();
    let faults = tokio::task::spawn_blocking(move || table.list())
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "failed", e.to_string()))?;
    Ok(Json(json!({ "items": faults })))
}

async fn create(
    State(d): State<Arc<Daemon>>,
    body: Result<Json<CreateFault>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(body) =
        body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, "invalid", e.body_text()))?;
    if body.duration_ms == 0 || body.duration_ms > MAX_LOCAL_DURATION_MS {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("durationMs: must be between 1 and {MAX_LOCAL_DURATION_MS}"),
        ));
    }
    let id = body
        .id
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| format!("local-{}", uuid::Uuid::new_v4()));
    let lease = chrono::Utc::now() + chrono::Duration::milliseconds(body.duration_ms as i64);
    let table = d.table.clone();
    let status = tokio::task::spawn_blocking(move || table.inject(&id, body.fault, lease))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "failed", e.to_string()))??;
    Ok((StatusCode::CREATED, Json(json!(status))))
}

async fn get_fault(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let table = d.table.clone();
    let status = tokio::task::spawn_blocking(move || table.status(&id))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "failed", e.to_string()))??;
    Ok(Json(json!(status)))
}

async fn delete_fault(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let table = d.table.clone();
    tokio::task::spawn_blocking(move || table.recover(&id))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "failed", e.to_string()))??;
    Ok(StatusCode::NO_CONTENT)
}
