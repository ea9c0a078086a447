//! `agent_join_tokens` and `agent_credentials` in SQLite (tables in `SCHEMA` below, created by
//! `SqliteStore::init`).

use rusqlite::{params, OptionalExtension, Row};

use super::SqliteStore;
use crate::store::agent_auth::{AgentAuthStore, AgentCredentialRecord, JoinTokenRecord};
use crate::store::StoreError;

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS agent_join_tokens (
    id TEXT PRIMARY KEY,
    environment TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    last_used_at TEXT,
    uses INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS agent_join_tokens_env ON agent_join_tokens(environment);
CREATE TABLE IF NOT EXISTS agent_credentials (
    environment TEXT NOT NULL,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    join_token_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    PRIMARY KEY (environment, name)
);
"#;

const TOKEN_COLUMNS: &str =
    "id, environment, created_at, expires_at, revoked_at, last_used_at, uses";

fn token_row(r: &Row<'_>) -> rusqlite::Result<JoinTokenRecord> {
    Ok(JoinTokenRecord {
        id: r.get(0)?,
        environment: r.get(1)?,
        created_at: r.get(2)?,
        expires_at: r.get(3)?,
        revoked_at: r.get(4)?,
        last_used_at: r.get(5)?,
        uses: r.get::<_, i64>(6)?.max(0) as u64,
    })
}

impl AgentAuthStore for SqliteStore {
    fn insert_join_token(&self, token: &JoinTokenRecord, hash: &str) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO agent_join_tokens (id, environment, hash, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                token.id,
                token.environment,
                hash,
                token.created_at,
                token.expires_at
            ],
        )?;
        Ok(())
    }

    fn list_join_tokens(&self, environment: &str) -> Result<Vec<JoinTokenRecord>, StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {TOKEN_COLUMNS} FROM agent_join_tokens WHERE environment = ?1 ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map(params![environment], token_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn find_join_token(&self, hash: &str) -> Result<Option<JoinTokenRecord>, StoreError> {
        let conn = self.read()?;
        Ok(conn
            .query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM agent_join_tokens WHERE hash = ?1"),
                params![hash],
                token_row,
            )
            .optional()?)
    }

    fn revoke_join_token(&self, environment: &str, id: &str, at: &str) -> Result<bool, StoreError> {
        let conn = self.lock();
        let n = conn.execute(
            "UPDATE agent_join_tokens SET revoked_at = COALESCE(revoked_at, ?3)
             WHERE environment = ?1 AND id = ?2",
            params![environment, id, at],
        )?;
        Ok(n > 0)
    }

    fn issue_agent_credential(
        &self,
        credential: &AgentCredentialRecord,
        hash: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO agent_credentials (environment, name, hash, join_token_id, created_at, last_used_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT(environment, name) DO NOTHING",
            params![
                credential.environment,
                credential.name,
                hash,
                credential.join_token_id,
                credential.created_at
            ],
        )?;
        if inserted > 0 {
            tx.execute(
                "UPDATE agent_join_tokens SET uses = uses + 1, last_used_at = ?2 WHERE id = ?1",
                params![credential.join_token_id, credential.created_at],
            )?;
        }
        tx.commit()?;
        Ok(inserted > 0)
    }

    fn agent_credential(
        &self,
        environment: &str,
        name: &str,
    ) -> Result<Option<(AgentCredentialRecord, String)>, StoreError> {
        let conn = self.read()?;
        Ok(conn
            .query_row(
                "SELECT environment, name, join_token_id, created_at, last_used_at, hash
                 FROM agent_credentials WHERE environment = ?1 AND name = ?2",
                params![environment, name],
                |r| {
                    Ok((
                        AgentCredentialRecord {
                            environment: r.get(0)?,
                            name: r.get(1)?,
                            join_token_id: r.get(2)?,
                            created_at: r.get(3)?,
                            last_used_at: r.get(4)?,
                        },
                        r.get(5)?,
                    ))
                },
            )
            .optional()?)
    }

    fn touch_agent_credential(
        &self,
        environment: &str,
        name: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        self.batched(|conn| {
            conn.execute(
                "UPDATE agent_credentials SET last_used_at = ?3 WHERE environment = ?1 AND name = ?2",
                params![environment, name, at],
            )?;
            Ok(())
        })
    }

    fn delete_agent_credential(&self, environment: &str, name: &str) -> Result<bool, StoreError> {
        let conn = self.lock();
        let n = conn.execute(
            "DELETE FROM agent_credentials WHERE environment = ?1 AND name = ?2",
            params![environment, name],
        )?;
        Ok(n > 0)
    }
}
