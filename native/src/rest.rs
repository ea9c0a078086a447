//! The agent's local REST API (loopback by default): the same operations as the CLI, plus
//! `/metrics` (node and fault metrics) and `/healthz`.
//!
//! - `GET  /api/v1/status` — identity, hub link, mechanisms, fault count
//! - `GET  /api/v1/faults` — every fault in force (read back now)
//! - `POST /api/v1/faults` — `{"id"?: str, "fault": AgentFault, "durationMs": u64}` → 201
//! - `GET  /api/v1/faults/{id}`, `DELETE /api/v1/faults/{id}`

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
