//! `agent_join_tokens` and `agent_credentials` in PostgreSQL.

use postgres::Row;

use super::PgStore;
use crate::store::agent_auth::{AgentAuthStore, AgentCredentialRecord, JoinTokenRecord};
use crate::store::StoreError;

const TOKEN_COLUMNS: &str =
    "id, environment, created_at, expires_at, revoked_at, last_used_at, uses";

fn token_row(r: &Row) -> Result<JoinTokenRecord, StoreError> {
    Ok(JoinTokenRecord {
        id: r.try_get(0)?,
        environment: r.try_get(1)?,
        created_at: r.try_get(2)?,
        expires_at: r.try_get(3)?,
        revoked_at: r.try_get(4)?,
        last_used_at: r.try_get(5)?,
        uses: r.try_get::<_, i64>(6)?.max(0) as u64,
    })
}

impl AgentAuthStore for PgStore {
    fn insert_join_token(&self, token: &JoinTokenRecord, hash: &str) -> Result<(), StoreError> {
        let token = token.clone();
        let hash = hash.to_string();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO agent_join_tokens (id, environment, hash, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &token.id,
                    &token.environment,
                    &hash,
                    &token.created_at,
                    &token.expires_at,
                ],
            )?;
            Ok(())
        })
    }

    fn list_join_tokens(&self, environment: &str) -> Result<Vec<JoinTokenRecord>, StoreError> {
        let environment = environment.to_string();
        self.read(move |c| {
            c.query(
                &format!(
                    "SELECT {TOKEN_COLUMNS} FROM agent_join_tokens WHERE environment = $1 ORDER BY created_at, id"
                ),
                &[&environment],
            )?
            .iter()
            .map(token_row)
            .collect()
        })
    }

    fn find_join_token(&self, hash: &str) -> Result<Option<JoinTokenRecord>, StoreError> {
        let hash = hash.to_string();
        self.read(move |c| {
            c.query_opt(
                &format!("SELECT {TOKEN_COLUMNS} FROM agent_join_tokens WHERE hash = $1"),
                &[&hash],
            )?
            .as_ref()
            .map(token_row)
            .transpose()
        })
    }

    fn revoke_join_token(&self, environment: &str, id: &str, at: &str) -> Result<bool, StoreError> {
        let (environment, id, at) = (environment.to_string(), id.to_string(), at.to_string());
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE agent_join_tokens SET revoked_at = COALESCE(revoked_at, $3)
                 WHERE environment = $1 AND id = $2",
                &[&environment, &id, &at],
            )?;
            Ok(n > 0)
        })
    }

    fn issue_agent_credential(
        &self,
        credential: &AgentCredentialRecord,
        hash: &str,
    ) -> Result<bool, StoreError> {
        let credential = credential.clone();
        let hash = hash.to_string();
        self.write(move |tx| {
            let inserted = tx.execute(
                "INSERT INTO agent_credentials (environment, name, hash, join_token_id, created_at, last_used_at)
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (environment, name) DO NOTHING",
                &[
                    &credential.environment,
                    &credential.name,
                    &hash,
                    &credential.join_token_id,
                    &credential.created_at,
                ],
            )?;
            if inserted > 0 {
                tx.execute(
                    "UPDATE agent_join_tokens SET uses = uses + 1, last_used_at = $2 WHERE id = $1",
                    &[&credential.join_token_id, &credential.created_at],
                )?;
            }
            Ok(inserted > 0)
        })
    }

    fn agent_credential(
        &self,
        environment: &str,
        name: &str,
    ) -> Result<Option<(AgentCredentialRecord, String)>, StoreError> {
        let (environment, name) = (environment.to_string(), name.to_string());
        self.read(move |c| {
            let Some(r) = c.query_opt(
                "SELECT environment, name, join_token_id, created_at, last_used_at, hash
                 FROM agent_credentials WHERE environment = $1 AND name = $2",
                &[&environment, &name],
            )?
            else {
                return Ok(None);
            };
            Ok(Some((
                AgentCredentialRecord {
                    environment: r.try_get(0)?,
                    name: r.try_get(1)?,
                    join_token_id: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                    last_used_at: r.try_get(4)?,
                },
                r.try_get(5)?,
            )))
        })
    }

    fn touch_agent_credential(
        &self,
        environment: &str,
        name: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        let (environment, name, at) = (environment.to_string(), name.to_string(), at.to_string());
        self.read(move |c| {
            c.execute(
                "UPDATE agent_credentials SET last_used_at = $3 WHERE environment = $1 AND name = $2",
                &[&environment, &name, &at],
            )?;
            Ok(())
        })
    }

    fn delete_agent_credential(&self, environment: &str, name: &str) -> Result<bool, StoreError> {
        let (environment, name) = (environment.to_string(), name.to_string());
        self.write(move |tx| {
            let n = tx.execute(
                "DELETE FROM agent_credentials WHERE environment = $1 AND name = $2",
                &[&environment, &name],
            )?;
            Ok(n > 0)
        })
    }
}
