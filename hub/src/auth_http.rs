//! `/api/v1/tokens` and `/api/v1/audit` (admin only, by the policy table).

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chaoshub_schema::api::Page;
use chaoshub_schema::auth::{CreateTokenRequest, CreatedToken, Role, TokenInfo};

use crate::error::HubError;
use crate::http_params::{path, Params};
use crate::operations::{parse_body, BodyFormat, Hub};
use crate::store::{AuditFilter, StoreError, TokenRow};

type ApiResult<T> = Result<T, HubError>;

fn read_json_or_yaml(
    hub: &Hub,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<serde_json::Value> {
    let bytes = raw.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            HubError::TooLarge {
                limit: hub.engine.limits().max_body_bytes,
            }
        } else {
            HubError::bad_request("invalid_body", format!("cannot read the request body: {e}"))
        }
    })?;
    let mime = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let format = if mime == "application/json" || mime.ends_with("+json") {
        BodyFormat::Json
    } else {
        BodyFormat::Yaml
    };
    parse_body(&bytes, format)
}

/// Parses a token lifetime: the hub's durations (`12h`, `90m`) plus days (`30d`).
pub fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let parsed = match t.strip_suffix('d') {
        Some(days) if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) => days
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(86_400))
            .filter(|s| *s <= 100 * 365 * 86_400)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{t:?} is too long (at most 100 years)")),
        _ => chaoshub_schema::duration::parse_duration(t)
            .map_err(|e| e.replace("1h30m", "1h30m, 30d")),
    }?;
    if parsed.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(parsed)
}

/// Creates a token: checks the request, stores the hash with its audit entry in one
/// transaction, and returns the secret (shown once).
pub fn create_token(hub: &Hub, request: CreateTokenRequest) -> Result<CreatedToken, HubError> {
    chaoshub_schema::parse::check_dns_name(&request.name)
        .map_err(|e| HubError::invalid_field("name", e))?;
    let mut namespaces = request.namespaces;
    if namespaces.is_empty() {
        namespaces.push("*".into());
    }
    for (i, ns) in namespaces.iter().enumerate() {
        if ns != "*" {
            chaoshub_schema::parse::check_dns_name(ns)
                .map_err(|e| HubError::invalid_field(&format!("namespaces[{i}]"), e))?;
        }
    }
    for (i, env) in request.environments.iter().enumerate() {
        if env != "*" {
            chaoshub_schema::parse::check_dns_name(env)
                .map_err(|e| HubError::invalid_field(&format!("environments[{i}]"), e))?;
        }
    }
    let now = hub.engine.now();
    let expires_at = match &request.expires {
        Some(text) => {
            let lifetime =
                parse_lifetime(text).map_err(|e| HubError::invalid_field("expires", e))?;
            let lifetime = chrono::Duration::from_std(lifetime)
                .map_err(|e| HubError::invalid_field("expires", e.to_string()))?;
            Some(crate::time::format(now + lifetime))
        }
        None => None,
    };
    let token = crate::auth::generate_token();
    let info = TokenInfo {
        name: request.name.clone(),
        role: request.role,
        namespaces,
        environments: request.environments,
        created_at: crate::time::format(now),
        expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    let row = TokenRow {
        info: info.clone(),
        hash: crate::auth::hash_token(&token),
    };
    let audit = crate::auth::audit_entry(&format!("token {}", info.name), 201);
    hub.engine
        .store()
        .insert_token(&row, audit.as_ref())
        .map_err(|e| match e {
            StoreError::Conflict(message) => HubError::Conflict {
                code: "already_exists",
                message,
            },
            other => HubError::Store(other),
        })?;
    tracing::info!(name = %info.name, role = %info.role, "api token created");
    Ok(CreatedToken { info, token })
}

pub async fn create_token_handler(
    State(hub): State<Hub>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    Params::from(query, &[])?;
    let value = read_json_or_yaml(&hub, &headers, raw)?;
    let request: CreateTokenRequest = serde_json::from_value(value).map_err(|e| {
        HubError::bad_request(
            "invalid_body",
            format!("token request: {e} (expected {{\"name\": ..., \"role\": \"viewer|operator|admin\", \"namespaces\": [...], \"environments\": [...], \"expires\": \"30d\"}})"),
        )
    })?;
    let created = create_token(&hub, request)?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub async fn list_tokens(
    State(hub): State<Hub>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    Params::from(query, &[])?;
    Ok(Json(Page {
        items: hub.engine.store().list_tokens()?,
        continue_token: None,
        total: None,
    })
    .into_response())
}

pub async fn revoke_token(
    State(hub): State<Hub>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let name = path(name)?;
    let store = hub.engine.store();
    let now = crate::time::format(hub.engine.now());
    let audit = crate::auth::audit_entry(&format!("token {name}"), 200);
    if !store.revoke_token(&name, &now, audit.as_ref())? {
        // Nothing changed, so the middleware writes the (404) audit entry after all.
        crate::auth::with_context(|c| c.audited = false);
        return Err(HubError::not_found(format!(
            "token {name:?} (live tokens: `chaoshub token list`)"
        )));
    }
    let info = store
        .list_tokens()?
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| HubError::not_found(format!("token {name:?}")))?;
    tracing::info!(%name, "api token revoked");
    Ok(Json(info).into_response())
}

pub async fn list_audit(
    State(hub): State<Hub>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    let params = Params::from(
        query,
        &[
            "principal",
            "object",
            "since",
            "until",
            "outcome",
            "after",
            "limit",
        ],
    )?;
    let time = |key: &str| -> ApiResult<Option<String>> {
        params
            .str(key)
            .map(|t| {
                crate::time::parse(t)
                    .map(crate::time::format)
                    .ok_or_else(|| {
                        HubError::bad_request(
                            "invalid_query",
                            format!("{key} must be an RFC 3339 time, got {t:?}"),
                        )
                    })
            })
            .transpose()
    };
    if let Some(o) = params.str("outcome") {
        if !matches!(o, "success" | "denied" | "failure") {
            return Err(HubError::bad_request(
                "invalid_query",
                format!("outcome must be success, denied or failure, got {o:?}"),
            ));
        }
    }
    let filter = AuditFilter {
        principal: params.str("principal").map(str::to_string),
        object: params.str("object").map(str::to_string),
        since: time("since")?,
        until: time("until")?,
        outcome: params.str("outcome").map(str::to_string),
        after_id: params.int("after")?,
        limit: params.int::<usize>("limit")?.unwrap_or(500).clamp(1, 5000),
    };
    Ok(Json(Page {
        items: hub.engine.store().list_audit(&filter)?,
        continue_token: None,
        total: None,
    })
    .into_response())
}

/// The role names, for messages.
pub fn roles_text() -> String {
    Role::ALL.map(Role::as_str).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(
            parse_lifetime("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(
            parse_lifetime("12h").unwrap(),
            Duration::from_secs(12 * 3600)
        );
        assert!(parse_lifetime("0d").is_err());
        assert!(parse_lifetime("d").is_err());
        assert!(parse_lifetime("99999999999999d").is_err());
        assert!(parse_lifetime("soon").unwrap_err().contains("30d"));
    }
}
