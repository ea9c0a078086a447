//! The one gate every API request passes: find the route's policy, authenticate, check role
//! and scope, run the handler with the principal set, and audit.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chaoshub_schema::auth::Role;

use crate::auth::jwt::JwtVerifier;
use crate::auth::policy::{self, Access, RoutePolicy, ScopeRule};
use crate::auth::ratelimit::FailureLimiter;
use crate::auth::{Principal, RequestContext, RequestLine, MAX_CREDENTIAL_LEN};
use crate::config::AuthConfig;
use crate::error::HubError;
use crate::operations::Hub;
use crate::store::NewAudit;

/// How often a token's `lastUsedAt` is written at most.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// What the middleware needs, built once per router.
pub struct AuthGate {
    pub hub: Hub,
    /// `auth.mode = "none"`: every caller is the local admin (loopback listeners only).
    pub disabled: bool,
    pub metrics_open: bool,
    pub limiter: FailureLimiter,
    /// `[auth.jwt]`: provider JWTs accepted besides hub tokens.
    pub jwt: Option<Arc<JwtVerifier>>,
    touched: Mutex<HashMap<String, Instant>>,
}

impl AuthGate {
    pub fn new(hub: Hub, config: &AuthConfig, jwt: Option<Arc<JwtVerifier>>) -> Self {
        Self {
            jwt,
            hub,
            disabled: config.mode == "none",
            metrics_open: config.metrics_open,
            limiter: FailureLimiter::new(config.max_failures_per_minute, Duration::from_secs(60)),
            touched: Mutex::new(HashMap::new()),
        }
    }

    /// Finds the principal behind the `Authorization` header.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, HubError> {
        use tracing::Instrument;
        self.find_principal(headers)
            .instrument(tracing::debug_span!("auth.authenticate"))
            .await
    }

    async fn find_principal(&self, headers: &HeaderMap) -> Result<Principal, HubError> {
        let unauthenticated = |message: String| HubError::Unauthenticated { message };
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(unauthenticated(
                "no credential: send Authorization: Bearer <token> (a token from `chaoshub token create`, or the hub's <data-dir>/admin.token)".into(),
            ));
        };
        if value.len() > MAX_CREDENTIAL_LEN {
            return Err(unauthenticated(format!(
                "the Authorization header is longer than {MAX_CREDENTIAL_LEN} bytes"
            )));
        }
        let text = value
            .to_str()
            .map_err(|_| unauthenticated("the Authorization header is not ASCII text".into()))?
            .trim();
        let (scheme, credential) = text.split_once(' ').unwrap_or((text, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthenticated(format!(
                "unsupported authorization scheme {:?}: use Bearer <token>",
                scheme.chars().take(32).collect::<String>()
            )));
        }
        let credential = credential.trim();
        if credential.is_empty() {
            return Err(unauthenticated("the Bearer credential is empty".into()));
        }
        if JwtVerifier::looks_like_jwt(credential) {
            return match &self.jwt {
                Some(jwt) => jwt.authenticate(credential).await.map_err(|why| {
                    unauthenticated(format!("JWT refused: {why}"))
                }),
                None => Err(unauthenticated(
                    "a JWT was sent, but this hub accepts none: configure [auth.jwt] for single sign-on, or use a hub token".into(),
                )),
            };
        }
        let store = self.hub.engine.store();
        let Some(row) = store.token_by_hash(&crate::auth::hash_token(credential))? else {
            return Err(unauthenticated("unknown token".into()));
        };
        let info = row.info;
        if let Some(revoked) = &info.revoked_at {
            return Err(unauthenticated(format!(
                "token {:?} was revoked at {revoked}",
                info.name
            )));
        }
        let now = self.hub.engine.now();
        if let Some(expires) = &info.expires_at {
            match crate::time::parse(expires) {
                Some(at) if at > now => {}
                _ => {
                    return Err(unauthenticated(format!(
                        "token {:?} expired at {expires}",
                        info.name
                    )))
                }
            }
        }
        let due = {
            let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
            match touched.get(&info.name) {
                Some(at) if at.elapsed() < TOUCH_INTERVAL => false,
                _ => {
                    touched.insert(info.name.clone(), Instant::now());
                    true
                }
            }
        };
        if due {
            store.touch_token(&info.name, &crate::time::format(now))?;
        }
        Ok(Principal {
            name: info.name,
            role: info.role,
            namespaces: info.namespaces,
            environments: info.environments,
        })
    }

    pub fn record(&self, entry: NewAudit) {
        let _span = tracing::debug_span!("auth.audit").entered();
        let telemetry = self.hub.engine.telemetry();
        match self.hub.engine.store().append_audit(&entry) {
            Ok(record) => telemetry.on_audit(&record),
            Err(e) => tracing::error!(error = ?e, "cannot write an audit entry"),
        }
    }
}

fn source_of(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The axum middleware (a route layer: it runs after routing, so the route is known).
pub async fn gate(State(gate): State<Arc<AuthGate>>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_string();
    // HEAD is served by GET handlers and allowed like them.
    let lookup_method = if method == "HEAD" { "GET" } else { &method };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let source = source_of(&request);
    let line = RequestLine {
        method: method.clone(),
        route: route.clone(),
        path: request.uri().path().to_string(),
        source: source
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into()),
    };
    let Some(policy) = policy::lookup(lookup_method, &route) else {
        // Deny by default: a route added without a policy is unusable until it has one.
        tracing::error!(%method, %route, "route has no authorization policy; refusing it");
        return HubError::Forbidden {
            message: format!("{method} {route} has no authorization policy (this is a bug)"),
        }
        .into_response();
    };
    match policy.access {
        Access::Open => return next.run(request).await,
        Access::Metrics if gate.metrics_open => return next.run(request).await,
        _ => {}
    }
    if let Some(addr) = source {
        if let Some(retry_after_secs) = gate.limiter.blocked(addr) {
            let error = HubError::TooManyRequests {
                message: format!(
                    "too many failed authentication attempts from {addr}; retry in {retry_after_secs} s"
                ),
                retry_after_secs,
            };
            return error.into_response();
        }
    }
    let principal = if gate.disabled {
        Principal::local_anonymous()
    } else {
        match gate.authenticate(request.headers()).await {
            Ok(p) => p,
            Err(error) => {
                if matches!(error, HubError::Unauthenticated { .. }) {
                    if let Some(addr) = source {
                        gate.limiter.failed(addr);
                    }
                }
                let status = error.status().as_u16();
                if status == 401 {
                    gate.record(line.audit(None, None, status, Some(error.to_string())));
                }
                return error.into_response();
            }
        }
    };
    let (mut parts, body) = request.into_parts();
    let object = match authorize(&gate, policy, &principal, &mut parts).await {
        Ok(object) => object,
        Err(error) => {
            let status = error.status().as_u16();
            if status == 403 {
                gate.record(line.audit(Some(&principal), None, status, Some(error.to_string())));
            }
            return error.into_response();
        }
    };
    let request = Request::from_parts(parts, body);
    let context = Arc::new(Mutex::new(RequestContext {
        principal: Some(principal.clone()),
        object,
        audited: false,
        line: Some(line.clone()),
    }));
    let response = crate::auth::scope(Arc::clone(&context), next.run(request)).await;
    let status = response.status().as_u16();
    if policy::is_mutation(policy) || status == 401 || status == 403 {
        let context = context.lock().unwrap_or_else(|p| p.into_inner());
        if !context.audited {
            gate.record(line.audit(Some(&principal), context.object.clone(), status, None));
        }
    }
    response
}

/// Role and scope; returns the object the request acts on when the scope check learnt it.
async fn authorize(
    gate: &AuthGate,
    policy: &RoutePolicy,
    principal: &Principal,
    parts: &mut axum::http::request::Parts,
) -> Result<Option<String>, HubError> {
    let needed = match policy.access {
        Access::Open => return Ok(None),
        Access::Metrics => Role::Viewer,
        Access::Role(role) => role,
    };
    if principal.role < needed {
        return Err(HubError::Forbidden {
            message: format!(
                "{} lacks the permission {} (needs role {needed})",
                principal.describe(),
                policy.permission
            ),
        });
    }
    let params = Path::<HashMap<String, String>>::from_request_parts(parts, &())
        .await
        .map(|Path(p)| p)
        .unwrap_or_default();
    match policy.scope {
        ScopeRule::None | ScopeRule::Filtered | ScopeRule::Body => Ok(None),
        ScopeRule::Unrestricted => {
            if principal.unrestricted() {
                Ok(None)
            } else {
                Err(HubError::Forbidden {
                    message: format!(
                        "{} lacks the permission {} for this route, which needs a token scoped to all namespaces and environments (its scope: {})",
                        principal.describe(),
                        policy.permission,
                        principal.scope_text()
                    ),
                })
            }
        }
        ScopeRule::Environment => {
            // `{env}` first: in `/agents/{env}/{name}` the name is the agent's.
            let Some(env) = params.get("env").or_else(|| params.get("name")) else {
                return Ok(None);
            };
            principal.require_environment(env)?;
            Ok(Some(format!("environment {env}")))
        }
        ScopeRule::Experiment => {
            let Some(id) = params.get("id") else {
                return Ok(None);
            };
            let query = Query::<HashMap<String, String>>::from_request_parts(parts, &())
                .await
                .map(|Query(q)| q)
                .unwrap_or_default();
            let namespace = query
                .get("namespace")
                .map(String::as_str)
                .filter(|s| !s.is_empty());
            match gate.hub.find(id, namespace) {
                Ok(row) => {
                    principal.require_namespace(&row.namespace)?;
                    principal.require_environment(&row.status.environment)?;
                    Ok(Some(format!(
                        "experiment {}/{} ({})",
                        row.namespace, row.name, row.uid
                    )))
                }
                // The handler answers the 404 (or the 400) itself.
                Err(HubError::NotFound { .. }) => {
                    // Out-of-scope namespaces are refused even when nothing is there, so a
                    // scoped token cannot probe other namespaces for names.
                    if let Some(ns) = namespace {
                        principal.require_namespace(ns)?;
                    }
                    Ok(None)
                }
                Err(other) => Err(other),
            }
        }
    }
}
