//! REST handlers of `/api/v1/templates` and `/api/v1/catalogs`, routed from `api.rs`.
//!
//! Template names of remote catalogs are `hub/template`; in a URL path the `/` is sent
//! percent-encoded (`hub%2Ftemplate`), which the router decodes into the one path parameter.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chaoshub_schema::api::Page;
use chaoshub_schema::template::{AddCatalogRequest, RenderRequest, Template};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::catalog::{SaveOutcome, TemplateQuery};
use crate::error::HubError;
use crate::operations::{parse_body, BodyFormat, Hub, Submitted};

type ApiResult<T> = Result<T, HubError>;

fn query_params(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    allowed: &[&str],
) -> ApiResult<HashMap<String, String>> {
    let Query(map) = query.map_err(|e| {
        HubError::bad_request(
            "invalid_query",
            format!("cannot parse the query string: {e}"),
        )
    })?;
    if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        let allowed = if allowed.is_empty() {
            "none".to_string()
        } else {
            allowed.join(", ")
        };
        return Err(HubError::bad_request(
            "invalid_query",
            format!("unknown query parameter {key:?} (allowed: {allowed})"),
        ));
    }
    Ok(map.into_iter().filter(|(_, v)| !v.is_empty()).collect())
}

fn path_param(p: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    p.map(|Path(v)| v)
        .map_err(|e| HubError::bad_request("invalid_path", format!("invalid path parameter: {e}")))
}

/// Reads an optional JSON or YAML body into `T`; an empty body is `T::default()`.
fn read_body<T: DeserializeOwned + Default>(
    hub: &Hub,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
    what: &str,
) -> ApiResult<T> {
    let bytes = raw.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            HubError::TooLarge {
                limit: hub.engine.limits().max_body_bytes,
            }
        } else {
            HubError::bad_request("invalid_body", format!("cannot read the request body: {e}"))
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let format = match headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        }) {
        Some(m) if m == "application/json" || m.ends_with("+json") => BodyFormat::Json,
        Some(m) if m.is_empty() || m.contains("yaml") || m == "text/plain" => BodyFormat::Yaml,
        None => BodyFormat::Yaml,
        Some(other) => {
            return Err(HubError::UnsupportedMediaType {
                content_type: other,
            })
        }
    };
    let value: Value = parse_body(&bytes, format)?;
    serde_json::from_value(value)
        .map_err(|e| HubError::bad_request("invalid_body", format!("{what}: {e}")))
}

pub async fn list_templates(
    State(hub): State<Hub>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    let mut p = query_params(
        query,
        &["q", "category", "tag", "adapter", "kind", "source"],
    )?;
    let query = TemplateQuery {
        q: p.remove("q"),
        category: p.remove("category"),
        tag: p.remove("tag"),
        adapter: p.remove("adapter"),
        kind: p.remove("kind"),
        source: p.remove("source"),
    };
    Ok(Json(hub.catalog.search(&query, hub.engine.registry())).into_response())
}

pub async fn get_template(
    State(hub): State<Hub>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let entry = hub.catalog.get(&path_param(name)?)?;
    Ok(Json(entry.detail()).into_response())
}

pub async fn render_template(
    State(hub): State<Hub>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let name = path_param(name)?;
    let request: RenderRequest = read_body(&hub, &headers, raw, "render request")?;
    let (_, result) = hub.catalog.render(&name, &request)?;
    Ok(Json(result).into_response())
}

pub async fn run_template(
    State(hub): State<Hub>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let name = path_param(name)?;
    let request: RenderRequest = read_body(&hub, &headers, raw, "run request")?;
    let (manifest, _) = hub.catalog.render(&name, &request)?;
    check_runs_on(&hub, &name, &manifest, &request)?;
    let submitted = hub
        .submit(manifest.to_value(), request.env.as_deref(), request.dry_run)
        .await?;
    Ok(match submitted {
        Submitted::Created(object) => (StatusCode::CREATED, Json(object)).into_response(),
        Submitted::DryRun(result) => (StatusCode::OK, Json(result)).into_response(),
    })
}

/// `POST /api/v1/templates[?overwrite=true]`: a Template document into the local catalog.
pub async fn save_template(
    State(hub): State<Hub>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let p = query_params(query, &["overwrite"])?;
    let overwrite = match p.get("overwrite").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(HubError::bad_request(
                "invalid_query",
                format!("overwrite must be true or false, got {other:?}"),
            ))
        }
    };
    let value: Option<Value> = read_body(&hub, &headers, raw, "template")?;
    let Some(value) = value else {
        return Err(HubError::bad_request(
            "invalid_body",
            "the body is empty; send a Template document (apiVersion: chaoshub.dev/v1alpha1, kind: Template)",
        ));
    };
    let template = Template::from_value(value).map_err(|errors| {
        let n = errors.len();
        HubError::Invalid {
            message: format!(
                "the template is invalid: {n} problem{}",
                if n == 1 { "" } else { "s" }
            ),
            details: errors.0,
        }
    })?;
    let catalog = hub.catalog.clone();
    let (entry, outcome) =
        tokio::task::spawn_blocking(move || catalog.save_local(template, overwrite))
            .await
            .map_err(|e| HubError::Conflict {
                code: "catalog_not_writable",
                message: format!("the catalog write did not finish: {e}"),
            })??;
    let status = match outcome {
        SaveOutcome::Created => StatusCode::CREATED,
        SaveOutcome::Replaced => StatusCode::OK,
    };
    Ok((status, Json(entry.detail())).into_response())
}

pub async fn list_catalogs(
    State(hub): State<Hub>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    query_params(query, &[])?;
    Ok(Json(Page {
        items: hub.catalog.remotes.list(),
        continue_token: None,
        total: None,
    })
    .into_response())
}

pub async fn add_catalog(
    State(hub): State<Hub>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let request: Option<AddCatalogRequest> = read_body(
        &hub,
        &headers,
        raw,
        "catalog (expected {\"name\": ..., \"url\": ...})",
    )?;
    let Some(request) = request else {
        return Err(HubError::bad_request(
            "invalid_body",
            "the body is empty; send {\"name\": ..., \"url\": ...}",
        ));
    };
    let object = hub.catalog.remotes.add(&request.name, &request.url).await?;
    Ok((StatusCode::CREATED, Json(object)).into_response())
}

pub async fn get_catalog(
    State(hub): State<Hub>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    Ok(Json(hub.catalog.remotes.get(&path_param(name)?)?).into_response())
}

pub async fn delete_catalog(
    State(hub): State<Hub>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    Ok(Json(hub.catalog.remotes.remove(&path_param(name)?).await?).into_response())
}

pub async fn refresh_catalog(
    State(hub): State<Hub>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    Ok(Json(hub.catalog.remotes.refresh(&path_param(name)?).await?).into_response())
}

/// An environment whose adapter the template does not list, or whose checks refuse it, is a
/// 422 naming the adapters (and registered environments) that can run it.
fn check_runs_on(
    hub: &Hub,
    name: &str,
    manifest: &chaoshub_schema::Manifest,
    request: &RenderRequest,
) -> ApiResult<()> {
    let entry = hub.catalog.get(name)?;
    let env_name = request
        .env
        .clone()
        .or_else(|| {
            manifest
                .fault()
                .and_then(|f| f.environment().map(str::to_string))
        })
        .or_else(|| hub.default_environment.clone());
    // An unknown environment is left to `submit`, which names the registered ones.
    if let Some(env) = env_name.and_then(|n| hub.get_environment(&n).ok()) {
        let adapter = env.spec.adapter.clone();
        let (accepted, refused) = entry.judge(hub.engine.registry());
        if !accepted.contains(&adapter) {
            let why = match refused.get(&adapter) {
                Some(m) => format!("the {adapter} adapter refuses it: {m}"),
                None => format!("the template does not list the {adapter} adapter"),
            };
            let elsewhere: Vec<String> = hub
                .list_environments()?
                .items
                .into_iter()
                .filter(|e| accepted.contains(&e.spec.adapter))
                .filter_map(|e| e.metadata.name)
                .collect();
            let mut message = format!(
                    "template {name:?} cannot run on environment {:?} (adapter {adapter}): {why}; it runs on adapters: {}",
                    env.metadata.name.as_deref().unwrap_or_default(),
                    if accepted.is_empty() { "none of this hub".to_string() } else { accepted.join(", ") }
                );
            if !elsewhere.is_empty() {
                message.push_str(&format!(
                    " (registered environments that can: {})",
                    elsewhere.join(", ")
                ));
            }
            return Err(HubError::Unsupported { message });
        }
    }
    Ok(())
}
