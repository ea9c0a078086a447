//! `api_tokens` and `audit` in SQLite (tables in `AUTH_SCHEMA`, created with the others).

use chaoshub_schema::auth::{AuditRecord, Role, TokenInfo};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{corrupt, SqliteStore};
use crate::store::auth::{AuditFilter, AuthStore, NewAudit, TokenRow};
use crate::store::StoreError;

pub(super) const AUTH_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS api_tokens (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    namespaces TEXT NOT NULL,
    environments TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    principal TEXT NOT NULL,
    role TEXT,
    source TEXT NOT NULL,
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    path TEXT NOT NULL,
    object TEXT,
    outcome TEXT NOT NULL,
    status INTEGER NOT NULL,
    message TEXT
);
CREATE INDEX IF NOT EXISTS audit_principal ON audit(principal, id);
"#;

const TOKEN_COLUMNS: &str =
    "name, hash, role, namespaces, environments, created_at, expires_at, last_used_at, revoked_at";

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<(TokenRow, String, String, String)> {
    let role: String = row.get(2)?;
    let namespaces: String = row.get(3)?;
    let environments: String = row.get(4)?;
    Ok((
        TokenRow {
            hash: row.get(1)?,
            info: TokenInfo {
                name: row.get(0)?,
                role: Role::Viewer,
                namespaces: Vec::new(),
                environments: Vec::new(),
                created_at: row.get(5)?,
                expires_at: row.get(6)?,
                last_used_at: row.get(7)?,
                revoked_at: row.get(8)?,
            },
        },
        role,
        namespaces,
        environments,
    ))
}

fn decode_token(raw: (TokenRow, String, String, String)) -> Result<TokenRow, StoreError> {
    let (mut token, role, namespaces, environments) = raw;
    let name = token.info.name.clone();
    token.info.role =
        Role::parse(&role).ok_or_else(|| corrupt(&format!("token {name} role"), &role))?;
    token.info.namespaces = serde_json::from_str(&namespaces)
        .map_err(|e| corrupt(&format!("token {name} namespaces"), e))?;
    token.info.environments = serde_json::from_str(&environments)
        .map_err(|e| corrupt(&format!("token {name} environments"), e))?;
    Ok(token)
}

pub(super) fn insert_audit(conn: &Connection, e: &NewAudit) -> Result<AuditRecord, StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit (time, principal, role, source, method, route, path, object, outcome, status, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        e.time,
        e.principal,
        e.role.map(Role::as_str),
        e.source,
        e.method,
        e.route,
        e.path,
        e.object,
        e.outcome,
        e.status,
        e.message
    ])?;
    Ok(AuditRecord {
        id: conn.last_insert_rowid(),
        time: e.time.clone(),
        principal: e.principal.clone(),
        role: e.role,
        source: e.source.clone(),
        method: e.method.clone(),
        route: e.route.clone(),
        path: e.path.clone(),
        object: e.object.clone(),
        outcome: e.outcome.clone(),
        status: e.status,
        message: e.message.clone(),
    })
}

impl AuthStore for SqliteStore {
    fn insert_token(&self, token: &TokenRow, audit: Option<&NewAudit>) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let existing: Option<Option<String>> = tx
            .query_row(
                "SELECT revoked_at FROM api_tokens WHERE name = ?1",
                params![token.info.name],
                |r| r.get(0),
            )
            .optional()?;
        match existing {
            Some(None) => {
                return Err(StoreError::Conflict(format!(
                    "token {:?} already exists; revoke it first or pick another name",
                    token.info.name
                )))
            }
            Some(Some(_)) => {
                tx.execute(
                    "DELETE FROM api_tokens WHERE name = ?1",
                    params![token.info.name],
                )?;
            }
            None => {}
        }
        let namespaces = serde_json::to_string(&token.info.namespaces)
            .map_err(|e| corrupt("token namespaces", e))?;
        let environments = serde_json::to_string(&token.info.environments)
            .map_err(|e| corrupt("token environments", e))?;
        tx.execute(
            &format!("INSERT INTO api_tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
            params![
                token.info.name,
                token.hash,
                token.info.role.as_str(),
                namespaces,
                environments,
                token.info.created_at,
                token.info.expires_at,
                token.info.last_used_at,
                token.info.revoked_at
            ],
        )?;
        if let Some(audit) = audit {
            insert_audit(&tx, audit)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let conn = self.read()?;
        let raw = conn
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?1"
            ))?
            .query_row(params![hash], token_from_row)
            .optional()?;
        raw.map(decode_token).transpose()
    }

    fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY name"
        ))?;
        let rows = stmt.query_map([], token_from_row)?;
        let mut out = Vec::new();
        for raw in rows {
            out.push(decode_token(raw?)?.info);
        }
        Ok(out)
    }

    fn count_live_tokens(&self) -> Result<u64, StoreError> {
        let conn = self.read()?;
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn revoke_token(
        &self,
        name: &str,
        time: &str,
        audit: Option<&NewAudit>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let changed = tx.execute(
            "UPDATE api_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            params![name, time],
        )?;
        if changed > 0 {
            if let Some(audit) = audit {
                insert_audit(&tx, audit)?;
            }
        }
        tx.commit()?;
        Ok(changed > 0)
    }

    fn touch_token(&self, name: &str, time: &str) -> Result<(), StoreError> {
        self.batched(|conn| {
            conn.prepare_cached("UPDATE api_tokens SET last_used_at = ?2 WHERE name = ?1")?
                .execute(params![name, time])?;
            Ok(())
        })
    }

    fn append_audit(&self, entry: &NewAudit) -> Result<AuditRecord, StoreError> {
        self.batched(|conn| insert_audit(conn, entry))
    }

    fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.read()?;
        let mut sql = String::from(
            "SELECT id, time, principal, role, source, method, route, path, object, outcome, status, message FROM audit WHERE 1 = 1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut add = |clause: &str, value: rusqlite::types::Value| {
            args.push(value);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(p) = &filter.principal {
            add(" AND principal = ?", p.clone().into());
        }
        if let Some(o) = &filter.object {
            add(" AND instr(object, ?) > 0", o.clone().into());
        }
        if let Some(s) = &filter.since {
            add(" AND time >= ?", s.clone().into());
        }
        if let Some(u) = &filter.until {
            add(" AND time < ?", u.clone().into());
        }
        if let Some(o) = &filter.outcome {
            add(" AND outcome = ?", o.clone().into());
        }
        let following = filter.after_id.is_some();
        if let Some(a) = filter.after_id {
            add(" AND id > ?", a.into());
        }
        sql.push_str(if following {
            " ORDER BY id ASC"
        } else {
            " ORDER BY id DESC"
        });
        sql.push_str(&format!(" LIMIT {}", filter.limit.max(1)));
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
            let role: Option<String> = r.get(3)?;
            Ok(AuditRecord {
                id: r.get(0)?,
                time: r.get(1)?,
                principal: r.get(2)?,
                role: role.as_deref().and_then(Role::parse),
                source: r.get(4)?,
                method: r.get(5)?,
                route: r.get(6)?,
                path: r.get(7)?,
                object: r.get(8)?,
                outcome: r.get(9)?,
                status: r.get(10)?,
                message: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
