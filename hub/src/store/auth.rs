//! API tokens (hashed) and the audit trail, kept by the same store as everything else
//! (`AuthStore`, a supertrait of `Store` so that `Arc<dyn Store>` reaches them).

use chaoshub_schema::auth::{AuditRecord, Role, TokenInfo};

use super::StoreError;

/// A token as stored: its SHA-256 hash, never the token itself.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    pub info: TokenInfo,
    /// Lowercase hex SHA-256 of the bearer token.
    pub hash: String,
}

/// An audit entry not yet stored (`id` and nothing else is assigned by the store).
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub time: String,
    pub principal: String,
    pub role: Option<Role>,
    pub source: String,
    pub method: String,
    pub route: String,
    pub path: String,
    pub object: Option<String>,
    pub outcome: String,
    pub status: u16,
    pub message: Option<String>,
}

/// Filters of `GET /api/v1/audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub principal: Option<String>,
    /// A substring of the object (`web-delay` finds `experiment default/web-delay`).
    pub object: Option<String>,
    /// Entries at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Entries before this RFC 3339 time.
    pub until: Option<String>,
    pub outcome: Option<String>,
    /// Only entries with a larger id (following).
    pub after_id: Option<i64>,
    pub limit: usize,
}

pub trait AuthStore: Send + Sync {
    /// Stores a new token; a token of the same name is a conflict unless it was revoked, in
    /// which case it is replaced (names are reusable, secrets never are).
    fn insert_token(&self, token: &TokenRow, audit: Option<&NewAudit>) -> Result<(), StoreError>;
    /// The token with this hash, revoked or not.
    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>, StoreError>;
    fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError>;
    /// How many tokens were ever created and not revoked (the bootstrap looks for zero).
    fn count_live_tokens(&self) -> Result<u64, StoreError>;
    /// Marks a token revoked; false when no live token has this name.
    fn revoke_token(
        &self,
        name: &str,
        time: &str,
        audit: Option<&NewAudit>,
    ) -> Result<bool, StoreError>;
    /// Records that a token was used (written at most about once a minute per token by the
    /// caller, so a busy client does not turn every read into a write).
    fn touch_token(&self, name: &str, time: &str) -> Result<(), StoreError>;
    fn append_audit(&self, entry: &NewAudit) -> Result<AuditRecord, StoreError>;
    /// Oldest first when `after_id` is set (following), newest first otherwise.
    fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;
}
