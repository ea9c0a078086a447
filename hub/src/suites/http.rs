//! REST handlers of suites: `POST /api/v1/suites` (check, store and start a run; 202 with the
//! run's journal), `GET /api/v1/suites/runs`, `GET /api/v1/suites/runs/{id}` and its JUnit
//! report, `GET /api/v1/suites/runs/{id}/junit`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::HubError;
use crate::operations::{parse_body, BodyFormat, Hub};

fn query(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, HubError> {
    let Query(map) = q.map_err(|e| {
        HubError::bad_request(
            "invalid_query",
            format!("cannot parse the query string: {e}"),
        )
    })?;
    if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(HubError::bad_request(
            "invalid_query",
            format!(
                "unknown query parameter {key:?} (allowed: {})",
                allowed.join(", ")
            ),
        ));
    }
    Ok(map)
}

fn format_of(headers: &HeaderMap) -> Result<BodyFormat, HubError> {
    let mime = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Ok(BodyFormat::Json),
        m if m.ends_with("+json") => Ok(BodyFormat::Json),
        ""
        | "application/yaml"
        | "application/x-yaml"
        | "text/yaml"
        | "text/x-yaml"
        | "text/plain"
        | "application/octet-stream" => Ok(BodyFormat::Yaml),
        m if m.ends_with("+yaml") => Ok(BodyFormat::Yaml),
        m => Err(HubError::UnsupportedMediaType {
            content_type: m.to_string(),
        }),
    }
}

/// `POST /api/v1/suites[?env=a,b]`.
pub async fn create_suite_run(
    State(hub): State<Hub>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, HubError> {
    let params = query(q, &["env"])?;
    let format = format_of(&headers)?;
    let bytes = raw.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            HubError::TooLarge {
                limit: hub.engine.limits().max_body_bytes,
            }
        } else {
            HubError::bad_request("invalid_body", format!("cannot read the request body: {e}"))
        }
    })?;
    let value = parse_body(&bytes, format)?;
    let envs: Option<Vec<String>> = params.get("env").filter(|s| !s.is_empty()).map(|s| {
        s.split(',')
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect()
    });
    let run = super::submit(&hub, value, envs.as_deref()).await?;
    Ok((StatusCode::ACCEPTED, Json(run)).into_response())
}

/// `GET /api/v1/suites/runs[?limit=N]`, newest first.
pub async fn list_suite_runs(
    State(hub): State<Hub>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, HubError> {
    let params = query(q, &["limit"])?;
    let limit = params
        .get("limit")
        .filter(|s| !s.is_empty())
        .map(|v| {
            v.parse::<usize>().map_err(|_| {
                HubError::bad_request(
                    "invalid_query",
                    format!(
                        "query parameter \"limit\" must be a non-negative whole number, got {v:?}"
                    ),
                )
            })
        })
        .transpose()?;
    Ok(Json(super::list_runs(&hub, limit)?).into_response())
}

/// `GET /api/v1/suites/runs/{id}`: the JSON journal.
pub async fn get_suite_run(
    State(hub): State<Hub>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, HubError> {
    Ok(Json(run_at(&hub, id)?).into_response())
}

/// The run the path names.
fn run_at(
    hub: &Hub,
    id: Result<Path<String>, PathRejection>,
) -> Result<chaoshub_schema::suite::SuiteRun, HubError> {
    let Path(id) = id.map_err(|e| {
        HubError::bad_request("invalid_path", format!("invalid path parameter: {e}"))
    })?;
    super::get_run(hub, &id)
}

/// The run's JUnit XML report, the same document `chaoshub run --junit` writes (one testsuite
/// per environment); a run still going reports the cases so far.
pub async fn get_suite_run_junit(
    State(hub): State<Hub>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, HubError> {
    let run = run_at(&hub, id)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/xml; charset=utf-8",
        )],
        super::junit::render(&run),
    )
        .into_response())
}
