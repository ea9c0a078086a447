//! REST handlers of agent admission (admin operations):
//! `POST|GET /api/v1/environments/{name}/join-tokens`,
//! `DELETE /api/v1/environments/{name}/join-tokens/{id}` (revoke) and
//! `DELETE /api/v1/agents/{env}/{name}` (forget an agent and free its name).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chaoshub_schema::api::{JoinTokenRequest, Page};

use crate::agents::join::{AgentAdmission, DEFAULT_JOIN_TOKEN_TTL};
use crate::error::HubError;
use crate::http_params::{path, path_pair};
use crate::operations::Hub;

/// The longest a join token may live when it expires at all.
const MAX_JOIN_TOKEN_TTL: chrono::Duration = chrono::Duration::days(366);

fn admission(hub: &Hub) -> AgentAdmission {
    AgentAdmission::new(hub.engine.store().clone())
}

/// `never`, a duration (`30m`, `24h`) or a number of days (`7d`); `None` means never.
pub fn parse_expiry(text: &str) -> Result<Option<chrono::Duration>, String> {
    let text = text.trim();
    if text == "never" {
        return Ok(None);
    }
    let duration = match text.strip_suffix('d').map(str::parse::<u32>) {
        Some(Ok(days)) => chrono::Duration::days(i64::from(days)),
        _ => chaoshub_schema::duration::parse_duration(text)
            .ok()
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .ok_or_else(|| {
                format!("{text:?} is not a duration (e.g. 30m, 24h, 7d) or \"never\"")
            })?,
    };
    if duration <= chrono::Duration::zero() || duration > MAX_JOIN_TOKEN_TTL {
        return Err(format!(
            "{text:?} is out of range (more than 0, at most 366d; or \"never\")"
        ));
    }
    Ok(Some(duration))
}

pub async fn create_join_token(
    State(hub): State<Hub>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HubError> {
    let env = path(name)?;
    hub.get_environment(&env)?;
    let body = body.map_err(|e| HubError::bad_request("invalid_body", e.body_text()))?;
    let request: JoinTokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        JoinTokenRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            HubError::bad_request(
                "invalid_body",
                format!("the body is not a join token request: {e}"),
            )
        })?
    };
    let ttl = match request.expires.as_deref() {
        None => Some(DEFAULT_JOIN_TOKEN_TTL),
        Some(text) => parse_expiry(text).map_err(|m| HubError::invalid_field("expires", m))?,
    };
    let created = admission(&hub).create_join_token(&env, ttl, chrono::Utc::now())?;
    tracing::info!(environment = %env, id = %created.id, expires_at = ?created.expires_at, "join token created");
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub async fn list_join_tokens(
    State(hub): State<Hub>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, HubError> {
    let env = path(name)?;
    hub.get_environment(&env)?;
    let items = admission(&hub).list_join_tokens(&env, chrono::Utc::now())?;
    Ok(Json(Page {
        items,
        continue_token: None,
        total: None,
    })
    .into_response())
}

pub async fn revoke_join_token(
    State(hub): State<Hub>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, HubError> {
    let (env, id) = path_pair(path)?;
    match admission(&hub).revoke_join_token(&env, &id, chrono::Utc::now())? {
        Some(token) => {
            tracing::info!(environment = %env, %id, "join token revoked");
            Ok(Json(token).into_response())
        }
        None => Err(HubError::not_found(format!(
            "join token {id:?} of environment {env:?}"
        ))),
    }
}

/// Forgets an agent: its credential is deleted (its name is free to join again) and its stream,
/// if any, is closed.
pub async fn remove_agent(
    State(hub): State<Hub>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, HubError> {
    let (env, name) = path_pair(path)?;
    let info = hub.engine.agents.get(&env, &name);
    let had_credential = admission(&hub).remove_agent(&env, &name)?;
    let was_registered = hub.engine.agents.remove(&env, &name);
    if !had_credential && !was_registered {
        return Err(HubError::not_found(format!(
            "agent {name:?} in environment {env:?}"
        )));
    }
    tracing::info!(environment = %env, agent = %name, "agent removed by request");
    Ok(Json(serde_json::json!({
        "environment": env,
        "name": name,
        "removed": true,
        "agent": info,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_expiry;

    #[test]
    fn expiries() {
        assert_eq!(parse_expiry("never").unwrap(), None);
        assert_eq!(parse_expiry("7d").unwrap(), Some(chrono::Duration::days(7)));
        assert_eq!(
            parse_expiry("90m").unwrap(),
            Some(chrono::Duration::minutes(90))
        );
        for bad in ["0s", "400d", "soon", "-1h", ""] {
            assert!(parse_expiry(bad).is_err(), "{bad}");
        }
    }
}
