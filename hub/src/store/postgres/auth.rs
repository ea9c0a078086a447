//! `api_tokens` and `audit` in PostgreSQL.

use chaoshub_schema::auth::{AuditRecord, Role, TokenInfo};
use postgres::{GenericClient, Row};

use super::{corrupt, prepared, Params, PgStore};
use crate::store::auth::{AuditFilter, AuthStore, NewAudit, TokenRow};
use crate::store::StoreError;

const TOKEN_COLUMNS: &str =
    "name, hash, role, namespaces, environments, created_at, expires_at, last_used_at, revoked_at";

fn decode_token(row: &Row) -> Result<TokenRow, StoreError> {
    let name: String = row.try_get(0)?;
    let role: String = row.try_get(2)?;
    let namespaces: String = row.try_get(3)?;
    let environments: String = row.try_get(4)?;
    Ok(TokenRow {
        hash: row.try_get(1)?,
        info: TokenInfo {
            role: Role::parse(&role)
                .ok_or_else(|| corrupt(&format!("token {name} role"), &role))?,
            namespaces: serde_json::from_str(&namespaces)
                .map_err(|e| corrupt(&format!("token {name} namespaces"), e))?,
            environments: serde_json::from_str(&environments)
                .map_err(|e| corrupt(&format!("token {name} environments"), e))?,
            created_at: row.try_get(5)?,
            expires_at: row.try_get(6)?,
            last_used_at: row.try_get(7)?,
            revoked_at: row.try_get(8)?,
            name,
        },
    })
}

fn insert_audit(c: &mut impl GenericClient, e: &NewAudit) -> Result<AuditRecord, StoreError> {
    let insert = prepared(
        c,
        "INSERT INTO audit (time, principal, role, source, method, route, path, object, outcome, status, message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )?;
    let id: i64 = c
        .query_one(
            &insert,
            &[
                &e.time,
                &e.principal,
                &e.role.map(Role::as_str),
                &e.source,
                &e.method,
                &e.route,
                &e.path,
                &e.object,
                &e.outcome,
                &i64::from(e.status),
                &e.message,
            ],
        )?
        .try_get(0)?;
    Ok(AuditRecord {
        id,
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

impl AuthStore for PgStore {
    fn insert_token(&self, token: &TokenRow, audit: Option<&NewAudit>) -> Result<(), StoreError> {
        let token = token.clone();
        let audit = audit.cloned();
        let namespaces = serde_json::to_string(&token.info.namespaces)
            .map_err(|e| corrupt("token namespaces", e))?;
        let environments = serde_json::to_string(&token.info.environments)
            .map_err(|e| corrupt("token environments", e))?;
        self.write(move |tx| {
            let existing = tx.query_opt(
                "SELECT revoked_at FROM api_tokens WHERE name = $1",
                &[&token.info.name],
            )?;
            if let Some(existing) = existing {
                let revoked: Option<String> = existing.try_get(0)?;
                if revoked.is_none() {
                    return Err(StoreError::Conflict(format!(
                        "token {:?} already exists; revoke it first or pick another name",
                        token.info.name
                    )));
                }
                tx.execute("DELETE FROM api_tokens WHERE name = $1", &[&token.info.name])?;
            }
            tx.execute(
                &format!(
                    "INSERT INTO api_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ),
                &[
                    &token.info.name,
                    &token.hash,
                    &token.info.role.as_str(),
                    &namespaces,
                    &environments,
                    &token.info.created_at,
                    &token.info.expires_at,
                    &token.info.last_used_at,
                    &token.info.revoked_at,
                ],
            )?;
            if let Some(audit) = &audit {
                insert_audit(tx, audit)?;
            }
            Ok(())
        })
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let hash = hash.to_string();
        self.read(move |c| {
            let select = prepared(
                c,
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = $1"),
            )?;
            c.query_opt(&select, &[&hash])?
                .as_ref()
                .map(decode_token)
                .transpose()
        })
    }

    fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        self.read(|c| {
            c.query(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY name"),
                &[],
            )?
            .iter()
            .map(|r| decode_token(r).map(|t| t.info))
            .collect()
        })
    }

    fn count_live_tokens(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            let n: i64 = c
                .query_one(
                    "SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL",
                    &[],
                )?
                .try_get(0)?;
            Ok(n.max(0) as u64)
        })
    }

    fn revoke_token(
        &self,
        name: &str,
        time: &str,
        audit: Option<&NewAudit>,
    ) -> Result<bool, StoreError> {
        let (name, time) = (name.to_string(), time.to_string());
        let audit = audit.cloned();
        self.write(move |tx| {
            let changed = tx.execute(
                "UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                &[&name, &time],
            )?;
            if changed > 0 {
                if let Some(audit) = &audit {
                    insert_audit(tx, audit)?;
                }
            }
            Ok(changed > 0)
        })
    }

    fn touch_token(&self, name: &str, time: &str) -> Result<(), StoreError> {
        let (name, time) = (name.to_string(), time.to_string());
        self.read(move |c| {
            let update = prepared(c, "UPDATE api_tokens SET last_used_at = $2 WHERE name = $1")?;
            c.execute(&update, &[&name, &time])?;
            Ok(())
        })
    }

    fn append_audit(&self, entry: &NewAudit) -> Result<AuditRecord, StoreError> {
        let entry = entry.clone();
        self.write(move |tx| insert_audit(tx, &entry))
    }

    fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut params = Params::default();
        let mut sql = String::from(
            "SELECT id, time, principal, role, source, method, route, path, object, outcome, status, message FROM audit WHERE TRUE",
        );
        if let Some(p) = &filter.principal {
            sql.push_str(&format!(" AND principal = {}", params.push(p.clone())));
        }
        if let Some(o) = &filter.object {
            sql.push_str(&format!(
                " AND strpos(object, {}) > 0",
                params.push(o.clone())
            ));
        }
        if let Some(s) = &filter.since {
            sql.push_str(&format!(" AND time >= {}", params.push(s.clone())));
        }
        if let Some(u) = &filter.until {
            sql.push_str(&format!(" AND time < {}", params.push(u.clone())));
        }
        if let Some(o) = &filter.outcome {
            sql.push_str(&format!(" AND outcome = {}", params.push(o.clone())));
        }
        let following = filter.after_id.is_some();
        if let Some(a) = filter.after_id {
            sql.push_str(&format!(" AND id > {}", params.push(a)));
        }
        sql.push_str(if following {
            " ORDER BY id ASC"
        } else {
            " ORDER BY id DESC"
        });
        sql.push_str(&format!(" LIMIT {}", filter.limit.max(1)));
        self.read(move |c| {
            let mut out = Vec::new();
            for r in c.query(&sql, &params.refs())? {
                let role: Option<String> = r.try_get(3)?;
                let status: i64 = r.try_get(10)?;
                out.push(AuditRecord {
                    id: r.try_get(0)?,
                    time: r.try_get(1)?,
                    principal: r.try_get(2)?,
                    role: role.as_deref().and_then(Role::parse),
                    source: r.try_get(4)?,
                    method: r.try_get(5)?,
                    route: r.try_get(6)?,
                    path: r.try_get(7)?,
                    object: r.try_get(8)?,
                    outcome: r.try_get(9)?,
                    status: u16::try_from(status).unwrap_or(0),
                    message: r.try_get(11)?,
                });
            }
            Ok(out)
        })
    }
}
