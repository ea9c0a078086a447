//! Agent identity: join tokens (per environment, created by an admin, exchanged by an agent on
//! its first connection) and agent credentials (one per agent name, issued by the hub at join,
//! presented on every connection after). Only SHA-256 hashes of the secrets are stored.

use super::StoreError;

/// A join token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTokenRecord {
    /// Short public id, used to revoke.
    pub id: String,
    pub environment: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    /// How many agents joined with it.
    pub uses: u64,
}

/// An agent's credential as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCredentialRecord {
    pub environment: String,
    pub name: String,
    /// The join token it was issued against.
    pub join_token_id: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

pub trait AgentAuthStore: Send + Sync {
    fn insert_join_token(&self, token: &JoinTokenRecord, hash: &str) -> Result<(), StoreError>;
    fn list_join_tokens(&self, environment: &str) -> Result<Vec<JoinTokenRecord>, StoreError>;
    fn find_join_token(&self, hash: &str) -> Result<Option<JoinTokenRecord>, StoreError>;
    /// Marks a token revoked; false when the environment has no such token.
    fn revoke_join_token(&self, environment: &str, id: &str, at: &str) -> Result<bool, StoreError>;
    /// Stores a new credential unless the name already holds one (false then), and counts the
    /// join token's use, in one transaction.
    fn issue_agent_credential(
        &self,
        credential: &AgentCredentialRecord,
        hash: &str,
    ) -> Result<bool, StoreError>;
    /// The credential of an agent name, with its hash.
    fn agent_credential(
        &self,
        environment: &str,
        name: &str,
    ) -> Result<Option<(AgentCredentialRecord, String)>, StoreError>;
    fn touch_agent_credential(
        &self,
        environment: &str,
        name: &str,
        at: &str,
    ) -> Result<(), StoreError>;
    /// Frees an agent name (an admin removing a host); false when it held no credential.
    fn delete_agent_credential(&self, environment: &str, name: &str) -> Result<bool, StoreError>;
}
