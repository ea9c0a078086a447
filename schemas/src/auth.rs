//! Wire types of the hub's API tokens and audit trail (`/api/v1/tokens`, `/api/v1/audit`).

use serde::{Deserialize, Serialize};

/// What a principal may do. Each role includes the one before it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything in scope: experiments, environments, events, metrics.
    Viewer,
    /// Also submit, pause, resume, stop and delete experiments, run templates and suites.
    Operator,
    /// Also environments, catalogs, tokens, halt/unhalt and the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text.trim().to_ascii_lowercase().as_str() {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// Unique name (DNS label): how the token appears in the audit log.
    pub name: String,
    pub role: Role,
    /// Namespaces the token may act in; `*` (the default) for all.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Environments the token may act in; empty (the default) for all.
    #[serde(default)]
    pub environments: Vec<String>,
    /// Lifetime such as `30d`, `12h`; none for a token that does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// A stored token, as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub namespaces: Vec<String>,
    pub environments: Vec<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// Answer of `POST /api/v1/tokens`: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The bearer token; the hub keeps only its hash, so it cannot be shown again.
    pub token: String,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub id: i64,
    pub time: String,
    /// Token name, JWT subject, or `anonymous` when no valid credential was presented.
    pub principal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The client's address as the hub saw it.
    pub source: String,
    pub method: String,
    /// The route template (`/api/v1/experiments/{id}/stop`) and the path asked for.
    pub route: String,
    pub path: String,
    /// What the request acted on (`experiment default/web-delay`, `environment staging`, `token ci`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// `success`, `denied` (401/403/429) or `failure` (any other error).
    pub outcome: String,
    pub status: u16,
    /// The refusal's or failure's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
