//! Agent admission: join tokens an admin creates per environment, exchanged by an agent on its
//! first connection for its own credential, which it presents on every connection after.
//!
//! Secrets are 256 random bits, shown once and stored only as SHA-256 hashes (a slow password
//! hash buys nothing for random secrets of this size). An agent name is bound to the first
//! credential issued for it: a second process with the same name and no credential is refused,
//! even with a valid join token, until an admin removes the agent.

use std::sync::Arc;

use chaoshub_schema::api::JoinTokenInfo;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::store::agent_auth::{AgentCredentialRecord, JoinTokenRecord};
use crate::store::{Store, StoreError};

pub const JOIN_TOKEN_PREFIX: &str = "chj_";
pub const CREDENTIAL_PREFIX: &str = "cha_";
/// A join token's lifetime when the request names none.
pub const DEFAULT_JOIN_TOKEN_TTL: chrono::Duration = chrono::Duration::hours(24);

/// A fresh secret: the prefix and 64 hex digits (256 bits).
pub fn new_secret(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", hex(&bytes))
}

/// Lower-case hex digits of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Compares two hashes without an early exit.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Why a registration was refused (sent to the agent as gRPC `UNAUTHENTICATED`).
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error("{0}")]
    Refused(String),
    #[error("cannot read agent credentials")]
    Store(#[from] StoreError),
}

/// How an agent got in.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// It presented its credential.
    Credential,
    /// It presented a join token and was issued this credential.
    Joined { credential: String },
}

/// Join tokens and agent credentials over the store.
#[derive(Clone)]
pub struct AgentAdmission {
    store: Arc<dyn Store>,
}

pub fn token_info(record: JoinTokenRecord, now: DateTime<Utc>) -> JoinTokenInfo {
    let state = if record.revoked_at.is_some() {
        "revoked"
    } else if record
        .expires_at
        .as_deref()
        .and_then(crate::time::parse)
        .is_some_and(|t| t <= now)
    {
        "expired"
    } else {
        "valid"
    };
    JoinTokenInfo {
        id: record.id,
        environment: record.environment,
        created_at: record.created_at,
        expires_at: record.expires_at,
        revoked_at: record.revoked_at,
        last_used_at: record.last_used_at,
        uses: record.uses,
        state: state.to_string(),
        token: None,
    }
}

impl AgentAdmission {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Creates a join token for `environment`, valid for `ttl` (`None`: until revoked).
    pub fn create_join_token(
        &self,
        environment: &str,
        ttl: Option<chrono::Duration>,
        now: DateTime<Utc>,
    ) -> Result<JoinTokenInfo, StoreError> {
        let secret = new_secret(JOIN_TOKEN_PREFIX);
        let id: [u8; 6] = rand::random();
        let record = JoinTokenRecord {
            id: hex(&id),
            environment: environment.to_string(),
            created_at: crate::time::format(now),
            expires_at: ttl.map(|d| crate::time::format(now + d)),
            revoked_at: None,
            last_used_at: None,
            uses: 0,
        };
        self.store
            .insert_join_token(&record, &hash_secret(&secret))?;
        let mut info = token_info(record, now);
        info.token = Some(secret);
        Ok(info)
    }

    /// Decides whether a registration of `name` in `environment` gets in.
    pub fn admit(
        &self,
        environment: &str,
        name: &str,
        credential: &str,
        join_token: &str,
        now: DateTime<Utc>,
    ) -> Result<Admission, AdmissionError> {
        let at = crate::time::format(now);
        let held = self.store.agent_credential(environment, name)?;
        if !credential.is_empty() {
            if let Some((_, hash)) = &held {
                if same(hash, &hash_secret(credential)) {
                    self.store.touch_agent_credential(environment, name, &at)?;
                    return Ok(Admission::Credential);
                }
            }
            if join_token.is_empty() {
                return Err(AdmissionError::Refused(format!(
                    "the credential presented is not valid for agent {name:?} in environment \
                     {environment:?} (removed by an admin, or issued by another hub); start the \
                     agent with --join-token-file to join again"
                )));
            }
        }
        if join_token.is_empty() {
            return Err(AdmissionError::Refused(format!(
                "no credential and no join token: create one with `chaoshub env join-token \
                 {environment}` and start the agent with --join-token-file FILE"
            )));
        }
        let Some(token) = self.store.find_join_token(&hash_secret(join_token))? else {
            return Err(AdmissionError::Refused(
                "the join token is not known to this hub".to_string(),
            ));
        };
        if token.environment != environment {
            return Err(AdmissionError::Refused(format!(
                "the join token is for environment {:?}, not {environment:?}",
                token.environment
            )));
        }
        let info = token_info(token, now);
        match info.state.as_str() {
            "revoked" => {
                return Err(AdmissionError::Refused(format!(
                    "the join token {} was revoked",
                    info.id
                )))
            }
            "expired" => {
                return Err(AdmissionError::Refused(format!(
                    "the join token {} expired at {}",
                    info.id,
                    info.expires_at.unwrap_or_default()
                )))
            }
            _ => {}
        }
        let taken = || {
            AdmissionError::Refused(format!(
                "agent name {name:?} in environment {environment:?} is held by another \
                 credential; present that credential, or have an admin remove the agent first \
                 (chaoshub env remove-agent {environment} {name})"
            ))
        };
        if held.is_some() {
            return Err(taken());
        }
        let credential = new_secret(CREDENTIAL_PREFIX);
        let record = AgentCredentialRecord {
            environment: environment.to_string(),
            name: name.to_string(),
            join_token_id: info.id,
            created_at: at,
            last_used_at: None,
        };
        if !self
            .store
            .issue_agent_credential(&record, &hash_secret(&credential))?
        {
            // Another process of the same name joined between the two reads.
            return Err(taken());
        }
        Ok(Admission::Joined { credential })
    }

    pub fn list_join_tokens(
        &self,
        environment: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<JoinTokenInfo>, StoreError> {
        Ok(self
            .store
            .list_join_tokens(environment)?
            .into_iter()
            .map(|t| token_info(t, now))
            .collect())
    }

    /// Revokes a token; `None` when the environment has no such token.
    pub fn revoke_join_token(
        &self,
        environment: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<JoinTokenInfo>, StoreError> {
        if !self
            .store
            .revoke_join_token(environment, id, &crate::time::format(now))?
        {
            return Ok(None);
        }
        Ok(self
            .list_join_tokens(environment, now)?
            .into_iter()
            .find(|t| t.id == id))
    }

    /// Frees an agent name; false when it held no credential.
    pub fn remove_agent(&self, environment: &str, name: &str) -> Result<bool, StoreError> {
        self.store.delete_agent_credential(environment, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn admission() -> AgentAdmission {
        AgentAdmission::new(Arc::new(SqliteStore::in_memory().unwrap()))
    }

    fn refused(r: Result<Admission, AdmissionError>) -> String {
        match r {
            Err(AdmissionError::Refused(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_join_token_is_exchanged_for_a_credential_bound_to_the_name() {
        let a = admission();
        let now = Utc::now();
        let token = a
            .create_join_token("edge", Some(DEFAULT_JOIN_TOKEN_TTL), now)
            .unwrap();
        let secret = token.token.clone().unwrap();
        assert!(secret.starts_with(JOIN_TOKEN_PREFIX) && secret.len() == 68);
        // Only the hash is stored.
        let listed = a.list_join_tokens("edge", now).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].token, None);
        assert_eq!(listed[0].state, "valid");

        let Admission::Joined { credential } = a.admit("edge", "h1", "", &secret, now).unwrap()
        else {
            panic!("expected a join")
        };
        assert_eq!(
            a.admit("edge", "h1", &credential, "", now).unwrap(),
            Admission::Credential
        );
        // Same name, no credential, valid join token: refused.
        let m = refused(a.admit("edge", "h1", "", &secret, now));
        assert!(m.contains("held by another credential"), "{m}");
        // A wrong credential is refused.
        let m = refused(a.admit("edge", "h1", "cha_00", "", now));
        assert!(m.contains("not valid"), "{m}");
        // The credential is bound to its name and environment.
        refused(a.admit("edge", "h2", &credential, "", now));
        refused(a.admit("core", "h1", &credential, "", now));
        assert_eq!(a.list_join_tokens("edge", now).unwrap()[0].uses, 1);
        // An admin frees the name: the token joins again.
        assert!(a.remove_agent("edge", "h1").unwrap());
        assert!(matches!(
            a.admit("edge", "h1", "", &secret, now).unwrap(),
            Admission::Joined { .. }
        ));
    }

    #[test]
    fn missing_wrong_expired_and_revoked_tokens_are_refused() {
        let a = admission();
        let now = Utc::now();
        let m = refused(a.admit("edge", "h1", "", "", now));
        assert!(m.contains("chaoshub env join-token edge"), "{m}");
        refused(a.admit("edge", "h1", "", "chj_nope", now));
        let other = a.create_join_token("core", None, now).unwrap();
        let m = refused(a.admit("edge", "h1", "", other.token.as_ref().unwrap(), now));
        assert!(m.contains("for environment \"core\""), "{m}");
        let short = a
            .create_join_token("edge", Some(chrono::Duration::seconds(1)), now)
            .unwrap();
        let later = now + chrono::Duration::seconds(2);
        let m = refused(a.admit("edge", "h1", "", short.token.as_ref().unwrap(), later));
        assert!(m.contains("expired"), "{m}");
        let t = a.create_join_token("edge", None, now).unwrap();
        let revoked = a.revoke_join_token("edge", &t.id, now).unwrap().unwrap();
        assert_eq!(revoked.state, "revoked");
        let m = refused(a.admit("edge", "h1", "", t.token.as_ref().unwrap(), now));
        assert!(m.contains("revoked"), "{m}");
        assert!(a.revoke_join_token("core", &t.id, now).unwrap().is_none());
    }
}
