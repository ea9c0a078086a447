//! Who is calling and what they may do: API tokens (hashed at rest), roles and scopes, the
//! route policy table, the authentication/authorization middleware, the bootstrap admin
//! token, and the audit trail of every mutating request and every refusal.
//!
//! The principal of a request is set by the middleware in a tokio task-local for the duration
//! of the handler, so `operations` can check the scope of what a body names (the namespace
//! and environment of a submitted experiment) and record who created it without every
//! signature carrying it. Work the hub does on its own (engine, schedules, workflows, suite
//! runs already authorized at submission) runs without a principal and is not checked again.

pub mod bootstrap;
pub mod jwt;
pub mod policy;
pub mod privileged;
pub mod ratelimit;

use std::sync::{Arc, Mutex};

use chaoshub_schema::auth::Role;
use sha2::{Digest, Sha256};

use crate::error::HubError;
use crate::store::NewAudit;

/// Prefix of every token this hub issues: recognisable in a leaked file or a secret scanner.
pub const TOKEN_PREFIX: &str = "chaoshub_";

/// The longest `Authorization` header value examined; longer ones are refused unread.
pub const MAX_CREDENTIAL_LEN: usize = 8192;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// Token name, or JWT subject.
    pub name: String,
    pub role: Role,
    /// `*` (or empty) for all namespaces.
    pub namespaces: Vec<String>,
    /// Empty for all environments.
    pub environments: Vec<String>,
}

impl Principal {
    /// The caller of a hub running with `auth.mode = "none"` (loopback only).
    pub fn local_anonymous() -> Self {
        Principal {
            name: "local".into(),
            role: Role::Admin,
            namespaces: vec!["*".into()],
            environments: Vec::new(),
        }
    }

    pub fn all_namespaces(&self) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == "*")
    }

    pub fn all_environments(&self) -> bool {
        self.environments.is_empty() || self.environments.iter().any(|e| e == "*")
    }

    /// Whether the scope covers every namespace and environment.
    pub fn unrestricted(&self) -> bool {
        self.all_namespaces() && self.all_environments()
    }

    pub fn namespace_allowed(&self, namespace: &str) -> bool {
        self.all_namespaces() || self.namespaces.iter().any(|n| n == namespace)
    }

    pub fn environment_allowed(&self, environment: &str) -> bool {
        self.all_environments() || self.environments.iter().any(|e| e == environment)
    }

    pub fn describe(&self) -> String {
        format!("{:?} (role {})", self.name, self.role)
    }

    pub fn scope_text(&self) -> String {
        let ns = if self.all_namespaces() {
            "all namespaces".to_string()
        } else {
            format!("namespaces {}", self.namespaces.join(", "))
        };
        if self.all_environments() {
            ns
        } else {
            format!("{ns}; environments {}", self.environments.join(", "))
        }
    }

    /// 403 unless the scope covers this namespace.
    pub fn require_namespace(&self, namespace: &str) -> Result<(), HubError> {
        if self.namespace_allowed(namespace) {
            return Ok(());
        }
        Err(HubError::Forbidden {
            message: format!(
                "{} may not act in namespace {namespace:?} (its scope: {})",
                self.describe(),
                self.scope_text()
            ),
        })
    }

    /// 403 unless the scope covers this environment.
    pub fn require_environment(&self, environment: &str) -> Result<(), HubError> {
        if self.environment_allowed(environment) {
            return Ok(());
        }
        Err(HubError::Forbidden {
            message: format!(
                "{} may not act in environment {environment:?} (its scope: {})",
                self.describe(),
                self.scope_text()
            ),
        })
    }

    /// 403 unless the caller is an admin; `what` names the permission.
    pub fn require_admin(&self, what: &str) -> Result<(), HubError> {
        if self.role >= Role::Admin {
            return Ok(());
        }
        Err(HubError::Forbidden {
            message: format!(
                "{} lacks the permission {what} (needs role admin)",
                self.describe()
            ),
        })
    }
}

/// What the middleware knows about the request being served, shared with the handler.
#[derive(Debug, Default)]
pub struct RequestContext {
    pub principal: Option<Principal>,
    /// What the request acted on, for the audit trail (set by whoever learns it).
    pub object: Option<String>,
    /// Set when the audit entry was already written in the change's own transaction.
    pub audited: bool,
    /// The request, for handlers that write their audit entry themselves.
    pub line: Option<RequestLine>,
}

/// What one request is, for its audit entry.
#[derive(Debug, Clone)]
pub struct RequestLine {
    pub method: String,
    pub route: String,
    pub path: String,
    pub source: String,
}

impl RequestLine {
    pub fn audit(
        &self,
        principal: Option<&Principal>,
        object: Option<String>,
        status: u16,
        message: Option<String>,
    ) -> NewAudit {
        let outcome = match status {
            200..=399 => "success",
            401 | 403 | 429 => "denied",
            _ => "failure",
        };
        NewAudit {
            time: crate::time::now_rfc3339(),
            principal: principal
                .map(|p| p.name.clone())
                .unwrap_or_else(|| "anonymous".into()),
            role: principal.map(|p| p.role),
            source: self.source.clone(),
            method: self.method.clone(),
            route: self.route.clone(),
            path: self.path.clone(),
            object,
            outcome: outcome.into(),
            status,
            message,
        }
    }
}

tokio::task_local! {
    static CURRENT: Arc<Mutex<RequestContext>>;
}

pub(crate) fn with_context<T>(f: impl FnOnce(&mut RequestContext) -> T) -> Option<T> {
    CURRENT
        .try_with(|c| f(&mut c.lock().unwrap_or_else(|p| p.into_inner())))
        .ok()
}

/// The principal of the request being served; None for the hub's own work.
pub fn current() -> Option<Principal> {
    with_context(|c| c.principal.clone()).flatten()
}

/// Names the object the current request acts on (for its audit entry).
pub fn note_object(object: impl Into<String>) {
    let object = object.into();
    with_context(|c| c.object = Some(object));
}

/// The name recorded as `createdBy` / the `principal` event attribute: the caller's, or None
/// for the hub's own work.
pub fn current_name() -> Option<String> {
    current().map(|p| p.name)
}

/// Checks that the current principal (if any) may act in this namespace and environment.
pub fn check_scope(namespace: &str, environment: Option<&str>) -> Result<(), HubError> {
    if let Some(p) = current() {
        p.require_namespace(namespace)?;
        if let Some(env) = environment {
            p.require_environment(env)?;
        }
    }
    Ok(())
}

/// The audit entry of the current request with this outcome, for a handler that writes it in
/// the same transaction as its change; the middleware then does not write another.
pub fn audit_entry(object: &str, status: u16) -> Option<crate::store::NewAudit> {
    with_context(|c| {
        let line = c.line.clone()?;
        c.audited = true;
        c.object = Some(object.to_string());
        Some(line.audit(c.principal.as_ref(), Some(object.to_string()), status, None))
    })
    .flatten()
}

/// Runs `fut` with `context` as the current request's context.
pub async fn scope<F: std::future::Future>(
    context: Arc<Mutex<RequestContext>>,
    fut: F,
) -> F::Output {
    CURRENT.scope(context, fut).await
}

/// A new random token: 256 bits from the thread-local CSPRNG (ChaCha, seeded by the OS).
pub fn generate_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex(&bytes))
}

/// The stored form of a token: lowercase hex SHA-256.
///
/// A plain fast hash is enough here, unlike for passwords: the token carries 256 random bits,
/// so a stolen hash cannot be reversed by guessing, and salting or a slow KDF would only add
/// cost to every request. Lookups are by hash, so the secret never needs comparing in memory.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hash_stably() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), hash_token(&b));
        // A known vector: SHA-256 of the empty string.
        assert_eq!(
            hash_token(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn scopes() {
        let p = Principal {
            name: "ci".into(),
            role: Role::Operator,
            namespaces: vec!["a".into()],
            environments: vec![],
        };
        assert!(p.namespace_allowed("a"));
        assert!(!p.namespace_allowed("b"));
        assert!(p.environment_allowed("anything"));
        assert!(!p.unrestricted());
        let err = p.require_namespace("b").unwrap_err();
        assert_eq!(err.status(), 403);
        assert!(err.to_string().contains("namespace \"b\""), "{err}");
        assert!(Principal::local_anonymous().unrestricted());
    }
}
