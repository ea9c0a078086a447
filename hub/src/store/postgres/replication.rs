//! What lets several hubs share one PostgreSQL store: the engine lease with its fencing token,
//! and change notifications (`NOTIFY`/`LISTEN`) between the replicas.
//!
//! - **Leases** live in the `leases` table (migration 2). A grant is taken or renewed in one
//!   statement on the database's clock (`now()`), so replicas' clocks never have to agree; a new
//!   holder gets the old token plus one. Taking a lease holds the store's write lock, like every
//!   write: a pass of the old leader that checked its fence before the grant has committed
//!   before the new leader reads anything.
//! - **Fencing**: a write inside an engine pass (`store::fence`) first checks that its holder
//!   and token are still the lease's; otherwise nothing is written and the call fails with
//!   `StoreError::Fenced`.
//! - **Notifications**: writes that others must see send `pg_notify` on [`CHANNEL`] (delivered
//!   at commit): the experiment's uid, new events, or "something else". Each replica listens on
//!   a connection of its own and skips its own notices; after a reconnection it reports
//!   `StoreChange::Other` once, since notices sent meanwhile are lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Transaction};

use super::connection::PgTarget;
use crate::store::fence::Fence;
use crate::store::{LeaseGrant, LeaseHolder, StoreChange, StoreError, StoredSession};

/// The notification channel.
pub const CHANNEL: &str = "chaoshub_changes";

/// A notice's text: `<origin> e <uid>` (an experiment), `<origin> v` (events), `<origin> o`.
pub fn payload(origin: &str, change: &StoreChange) -> String {
    match change {
        StoreChange::Experiment(uid) => format!("{origin} e {uid}"),
        StoreChange::Events(_) => format!("{origin} v"),
        StoreChange::Other => format!("{origin} o"),
    }
}

/// Reads a notice: `None` for this store's own (or one it cannot read).
pub fn parse(own_origin: &str, text: &str) -> Option<StoreChange> {
    let mut parts = text.splitn(3, ' ');
    let origin = parts.next()?;
    if origin == own_origin {
        return None;
    }
    match (parts.next()?, parts.next()) {
        ("e", Some(uid)) if !uid.is_empty() => Some(StoreChange::Experiment(uid.to_string())),
        ("v", _) => Some(StoreChange::Events(0)),
        ("o", _) => Some(StoreChange::Other),
        _ => None,
    }
}

/// Refuses the transaction's writes unless `fence` is still the lease's holder and token.
pub fn check_fence(tx: &mut Transaction<'_>, fence: &Fence) -> Result<(), StoreError> {
    let row = tx.query_opt(
        "SELECT holder, token FROM leases WHERE name = $1",
        &[&fence.lease],
    )?;
    let current: Option<(String, i64)> = match row {
        Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
        None => None,
    };
    match current {
        Some((holder, token)) if holder == fence.holder && token == fence.token => Ok(()),
        Some((holder, token)) => Err(StoreError::Fenced(format!(
            "the {} lease is held by {holder} with token {token}, not by {} with token {}",
            fence.lease, fence.holder, fence.token
        ))),
        None => Err(StoreError::Fenced(format!(
            "no one holds the {} lease",
            fence.lease
        ))),
    }
}

/// Takes or renews lease `name` for `holder` (see the module's doc).
pub fn acquire(
    tx: &mut Transaction<'_>,
    name: &str,
    holder: &str,
    url: Option<&str>,
    ttl: Duration,
) -> Result<Option<LeaseGrant>, StoreError> {
    let seconds = ttl.as_secs_f64();
    let row = tx.query_opt(
        "INSERT INTO leases (name, holder, url, token, expires_at)
         VALUES ($1, $2, $3, 1, now() + $4::float8 * interval '1 second')
         ON CONFLICT (name) DO UPDATE SET
             holder = EXCLUDED.holder,
             url = EXCLUDED.url,
             token = CASE WHEN leases.holder = EXCLUDED.holder THEN leases.token
                          ELSE leases.token + 1 END,
             expires_at = EXCLUDED.expires_at
         WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= now()
         RETURNING token",
        &[&name, &holder, &url, &seconds],
    )?;
    Ok(match row {
        Some(r) => Some(LeaseGrant {
            token: r.try_get(0)?,
        }),
        None => None,
    })
}

/// The unexpired holder of lease `name`.
pub fn holder(client: &mut Client, name: &str) -> Result<Option<LeaseHolder>, StoreError> {
    let row = client.query_opt(
        "SELECT holder, url, token FROM leases WHERE name = $1 AND expires_at > now()",
        &[&name],
    )?;
    Ok(match row {
        Some(r) => Some(LeaseHolder {
            holder: r.try_get(0)?,
            url: r.try_get(1)?,
            token: r.try_get(2)?,
        }),
        None => None,
    })
}

/// Ends `holder`'s grant now (the row and its token stay, so tokens keep growing).
pub fn release(
    tx: &mut Transaction<'_>,
    name: &str,
    holder: &str,
    token: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE leases SET expires_at = now() - interval '1 millisecond'
         WHERE name = $1 AND holder = $2 AND token = $3",
        &[&name, &holder, &token],
    )?;
    Ok(())
}

/// Replaces the directory entries of `upsert` and deletes those of `remove`.
pub fn publish_agents(
    tx: &mut Transaction<'_>,
    upsert: &[(String, String, String)],
    remove: &[(String, String)],
) -> Result<(), StoreError> {
    if !upsert.is_empty() {
        let put = tx.prepare(
            "INSERT INTO agent_directory (environment, name, info, written_at)
             VALUES ($1, $2, $3, now())
             ON CONFLICT (environment, name) DO UPDATE SET info = EXCLUDED.info, written_at = now()",
        )?;
        for (environment, name, info) in upsert {
            tx.execute(&put, &[environment, name, info])?;
        }
    }
    if !remove.is_empty() {
        let delete =
            tx.prepare("DELETE FROM agent_directory WHERE environment = $1 AND name = $2")?;
        for (environment, name) in remove {
            tx.execute(&delete, &[environment, name])?;
        }
    }
    Ok(())
}

/// An entry not written for this long is stale: its leader stopped publishing (the leader
/// rewrites every entry at least every 15 s, `agents::directory::REFRESH`).
pub const DIRECTORY_STALE_SECS: f64 = 20.0;

/// The published agents, optionally of one environment, by environment and name, each with
/// whether it is stale.
pub fn agents(
    client: &mut Client,
    environment: Option<&str>,
) -> Result<Vec<(String, bool)>, StoreError> {
    let rows = client.query(
        "SELECT info, written_at < now() - $2::float8 * interval '1 second'
         FROM agent_directory WHERE $1::text IS NULL OR environment = $1
         ORDER BY environment, name",
        &[&environment, &DIRECTORY_STALE_SECS],
    )?;
    rows.iter()
        .map(|r| Ok((r.try_get::<_, String>(0)?, r.try_get::<_, bool>(1)?)))
        .collect()
}

/// Stores a console session (replacing one with the same id hash), used now.
pub fn put_session(tx: &mut Transaction<'_>, s: &StoredSession) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO console_sessions (id_hash, sealed_token, csrf, name, role, last_seen)
         VALUES ($1, $2, $3, $4, $5, now())
         ON CONFLICT (id_hash) DO UPDATE SET sealed_token = EXCLUDED.sealed_token,
             csrf = EXCLUDED.csrf, name = EXCLUDED.name, role = EXCLUDED.role, last_seen = now()",
        &[&s.id_hash, &s.sealed_token, &s.csrf, &s.name, &s.role],
    )?;
    Ok(())
}

/// The session with this id hash, if used within `idle`.
pub fn session(
    client: &mut Client,
    id_hash: &str,
    idle: Duration,
) -> Result<Option<StoredSession>, StoreError> {
    let row = client.query_opt(
        "SELECT sealed_token, csrf, name, role,
                EXTRACT(EPOCH FROM (now() - last_seen))::float8
         FROM console_sessions
         WHERE id_hash = $1 AND last_seen > now() - $2::float8 * interval '1 second'",
        &[&id_hash, &idle.as_secs_f64()],
    )?;
    Ok(match row {
        Some(r) => Some(StoredSession {
            id_hash: id_hash.to_string(),
            sealed_token: r.try_get(0)?,
            csrf: r.try_get(1)?,
            name: r.try_get(2)?,
            role: r.try_get(3)?,
            idle_for: Duration::from_secs_f64(r.try_get::<_, f64>(4)?.max(0.0)),
        }),
        None => None,
    })
}

/// Marks a session used now.
pub fn touch_session(tx: &mut Transaction<'_>, id_hash: &str) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE console_sessions SET last_seen = now() WHERE id_hash = $1",
        &[&id_hash],
    )?;
    Ok(())
}

/// Ends one session and deletes every one unused for `idle`.
pub fn delete_session(
    tx: &mut Transaction<'_>,
    id_hash: &str,
    idle: Duration,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM console_sessions
         WHERE id_hash = $1 OR last_seen < now() - $2::float8 * interval '1 second'",
        &[&id_hash, &idle.as_secs_f64()],
    )?;
    Ok(())
}

/// Deletes replicas' liveness leases (`replica:<holder>`, one per process start) that ran out
/// more than `grace` ago; the number deleted. Other leases are never deleted: the engine
/// lease's row carries the token every later grant must exceed.
pub fn prune_liveness(tx: &mut Transaction<'_>, grace: Duration) -> Result<u64, StoreError> {
    Ok(tx.execute(
        "DELETE FROM leases WHERE name LIKE 'replica:%'
         AND expires_at < now() - $1::float8 * interval '1 second'",
        &[&grace.as_secs_f64()],
    )?)
}

/// Listens for other replicas' notices on a connection of its own, on a thread of its own,
/// until `listening` is cleared (the store was dropped); reconnects after a second when the
/// connection breaks.
pub fn listen(
    target: Arc<PgTarget>,
    origin: String,
    listening: Arc<AtomicBool>,
    sink: Arc<dyn Fn(StoreChange) + Send + Sync>,
) -> Result<(), StoreError> {
    // The first connection is made on the listener's thread (the synchronous client cannot run
    // inside the async runtime that calls this), and waited for: a listener that cannot start
    // fails the hub's start.
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), StoreError>>(1);
    std::thread::Builder::new()
        .name("chaoshub-pg-listen".into())
        .spawn(move || {
            let mut client = match connect(&target) {
                Ok(c) => {
                    let _ = ready_tx.send(Ok(()));
                    Some(c)
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while listening.load(Ordering::SeqCst) {
                let mut c = match client.take() {
                    Some(c) => c,
                    None => match connect(&target) {
                        Ok(c) => {
                            tracing::info!(url = %target.display, "listening for other replicas' changes again");
                            // Notices sent while disconnected are lost: everyone re-reads.
                            sink(StoreChange::Other);
                            c
                        }
                        Err(e) => {
                            tracing::warn!(url = %target.display, error = %e, "cannot listen for other replicas' changes; retrying");
                            std::thread::sleep(Duration::from_secs(1));
                            continue;
                        }
                    },
                };
                let mut failed = false;
                {
                    let mut notifications = c.notifications();
                    let mut iter = notifications.timeout_iter(Duration::from_millis(500));
                    loop {
                        match iter.next() {
                            Ok(Some(n)) => {
                                if let Some(change) = parse(&origin, n.payload()) {
                                    sink(change);
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "the change listener's connection failed");
                                failed = true;
                                break;
                            }
                        }
                    }
                }
                if !failed && !c.is_closed() {
                    client = Some(c);
                }
            }
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot start the change listener: {e}")))?;
    crate::store::sqlite::offload(|| ready_rx.recv()).map_err(|_| {
        StoreError::Unavailable("the change listener ended before it connected".into())
    })?
}

fn connect(target: &PgTarget) -> Result<Client, StoreError> {
    let mut client = target.connect()?;
    client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_a_store_skips_its_own() {
        for change in [
            StoreChange::Experiment("0b5e-uid".into()),
            StoreChange::Events(0),
            StoreChange::Other,
        ] {
            let text = payload("aa", &change);
            assert_eq!(parse("bb", &text), Some(change));
            assert_eq!(parse("aa", &text), None, "own notice");
        }
        assert_eq!(parse("bb", "aa e "), None);
        assert_eq!(parse("bb", "garbage"), None);
        assert_eq!(parse("bb", "aa x y"), None);
    }
}
