//! Console sessions: a random id in an `HttpOnly`, `SameSite=Strict` cookie, mapped in memory to
//! the API token the person logged in with and a CSRF token for the forms of that session.
//!
//! The token itself never reaches the browser again after the login form; every page and every
//! action is an API request made with it, so revoking the token ends the session at its next
//! request. A hub alone keeps sessions in memory: restarted, it asks for the token again.
//!
//! Replicas on a shared store keep them in the store instead, so a person signed in on one
//! replica is served by any (no load-balancer affinity needed) and a sign-out ends the session
//! everywhere. The cookie then holds `<id>.<key>`: the store has only the id's SHA-256 and the
//! token sealed (ChaCha20-Poly1305) with the key, which only the cookie holds; so neither the
//! database nor the cookie alone gives the token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use chaoshub_schema::auth::Role;
use ring::aead;

use crate::agents::join::{hash_secret, hex};
use crate::store::{Store, StoredSession};

/// A shared session's last use is written at most this often (reads check idleness anyway).
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The cookie holding the session id.
pub const COOKIE: &str = "chaoshub_session";

/// A session unused for this long is forgotten.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);

/// The most sessions held at once; the least recently used one is dropped beyond it, so a
/// stream of logins cannot grow memory without bound.
const MAX_SESSIONS: usize = 10_000;

/// What a session knows about its person.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    /// The API token, None when the hub runs with `auth.mode = "none"`.
    pub token: Option<String>,
    pub csrf: String,
    /// Token name (for the header line), and its role (to leave out buttons that would fail).
    pub name: String,
    pub role: Role,
    last_seen: Instant,
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    /// The store shared by replicas, where sessions are kept (none: in memory).
    shared: Option<Arc<dyn Store>>,
}

/// Seals `token` with a fresh key; (key, sealed hex). Each key seals one token only, so the
/// fixed nonce is never reused with a key.
fn seal(token: &str) -> Option<([u8; 32], String)> {
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
    let sealing =
        aead::LessSafeKey::new(aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &key).ok()?);
    let mut data = token.as_bytes().to_vec();
    sealing
        .seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key([0; 12]),
            aead::Aad::empty(),
            &mut data,
        )
        .ok()?;
    Some((key, hex(&data)))
}

fn open(key: &[u8], sealed: &str) -> Option<String> {
    let opening =
        aead::LessSafeKey::new(aead::UnboundKey::new(&aead::CHACHA20_POLY1305, key).ok()?);
    let mut data = unhex(sealed)?;
    let plain = opening
        .open_in_place(
            aead::Nonce::assume_unique_for_key([0; 12]),
            aead::Aad::empty(),
            &mut data,
        )
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// What the store keeps of a session id (as of any secret the hub stores).
fn id_hash(id: &str) -> String {
    hash_secret(id)
}

impl Sessions {
    /// Sessions of a hub on `store`: kept there when replicas share it, in memory otherwise.
    pub fn new(store: &Arc<dyn Store>) -> Self {
        Sessions {
            map: Mutex::default(),
            shared: store.shared().then(|| Arc::clone(store)),
        }
    }

    pub fn create(&self, token: Option<String>, name: String, role: Role) -> Session {
        if let Some(store) = &self.shared {
            match self.create_shared(store.as_ref(), token.as_deref(), &name, role) {
                Ok(session) => return session,
                // This replica still serves it, from memory.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot keep a console session in the shared store; it is served by this replica only")
                }
            }
        }
        let session = Session {
            id: random_hex(32),
            token,
            csrf: random_hex(32),
            name,
            role,
            last_seen: Instant::now(),
        };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.last_seen.elapsed() < IDLE);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .values()
                .min_by_key(|s| s.last_seen)
                .map(|s| s.id.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(session.id.clone(), session.clone());
        session
    }

    fn create_shared(
        &self,
        store: &dyn Store,
        token: Option<&str>,
        name: &str,
        role: Role,
    ) -> Result<Session, crate::store::StoreError> {
        let id = random_hex(32);
        let (key, sealed) = match token {
            Some(t) => {
                let (key, sealed) = seal(t).ok_or_else(|| {
                    crate::store::StoreError::Unavailable("cannot seal the session's token".into())
                })?;
                (key, Some(sealed))
            }
            None => {
                let mut key = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
                (key, None)
            }
        };
        let csrf = random_hex(32);
        // Each sign-in also clears out sessions idle past IDLE (no id hash is empty).
        store.delete_console_session("", IDLE)?;
        store.put_console_session(&StoredSession {
            id_hash: id_hash(&id),
            sealed_token: sealed,
            csrf: csrf.clone(),
            name: name.to_string(),
            role: role.as_str().to_string(),
            idle_for: Duration::ZERO,
        })?;
        Ok(Session {
            id: format!("{id}.{}", hex(&key)),
            token: token.map(str::to_string),
            csrf,
            name: name.to_string(),
            role,
            last_seen: Instant::now(),
        })
    }

    /// A session kept in the shared store, from its cookie value `<id>.<key>`.
    fn get_shared(&self, store: &dyn Store, cookie: &str) -> Option<Session> {
        let (id, key) = cookie.split_once('.')?;
        let key = unhex(key).filter(|k| k.len() == 32)?;
        let hash = id_hash(id);
        let stored = match store.console_session(&hash, IDLE) {
            Ok(s) => s?,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a console session from the shared store");
                return None;
            }
        };
        let token = match &stored.sealed_token {
            // A cookie whose key does not open the token is not this session's.
            Some(sealed) => Some(open(&key, sealed)?),
            None => None,
        };
        let role = Role::parse(&stored.role)?;
        if stored.idle_for >= TOUCH_EVERY {
            if let Err(e) = store.touch_console_session(&hash) {
                tracing::warn!(error = %e, "cannot mark a console session as used");
            }
        }
        Some(Session {
            id: cookie.to_string(),
            token,
            csrf: stored.csrf,
            name: stored.name,
            role,
            last_seen: Instant::now(),
        })
    }

    /// The live session with this id (cookie value), marked as used now.
    pub fn get(&self, id: &str) -> Option<Session> {
        if let Some(store) = &self.shared {
            if id.contains('.') {
                return self.get_shared(store.as_ref(), id);
            }
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let session = map.get_mut(id)?;
        if session.last_seen.elapsed() >= IDLE {
            map.remove(id);
            return None;
        }
        session.last_seen = Instant::now();
        Some(session.clone())
    }

    pub fn remove(&self, id: &str) {
        if let (Some(store), Some((session_id, _))) = (&self.shared, id.split_once('.')) {
            if let Err(e) = store.delete_console_session(&id_hash(session_id), IDLE) {
                tracing::warn!(error = %e, "cannot end a console session in the shared store");
            }
        }
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The `Set-Cookie` value of a session; `Secure` when the request came over TLS (to a
/// TLS-terminating proxy that says so with `X-Forwarded-Proto: https`; the hub itself serves
/// plain HTTP).
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        IDLE.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

pub fn is_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Compares a submitted CSRF token with the session's without an early exit on the first
/// differing byte.
pub fn csrf_matches(session: &Session, submitted: &str) -> bool {
    let (a, b) = (session.csrf.as_bytes(), submitted.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_token_opens_with_its_key_only() {
        let (key, sealed) = seal("chs_secret-token").unwrap();
        assert!(!sealed.contains("secret"));
        assert_eq!(open(&key, &sealed).as_deref(), Some("chs_secret-token"));
        let mut other = key;
        other[0] ^= 1;
        assert_eq!(open(&other, &sealed), None);
        let mut tampered = unhex(&sealed).unwrap();
        tampered[0] ^= 1;
        assert_eq!(open(&key, &hex(&tampered)), None);
        assert_eq!(open(&key, "zz"), None);
        assert_eq!(unhex("abc"), None);
    }

    #[test]
    fn sessions_and_csrf() {
        let sessions = Sessions::default();
        let s = sessions.create(Some("t".into()), "ops".into(), Role::Operator);
        assert_eq!(s.id.len(), 64);
        assert_ne!(s.id, s.csrf);
        let got = sessions.get(&s.id).unwrap();
        assert_eq!(got.name, "ops");
        assert!(csrf_matches(&got, &s.csrf));
        assert!(!csrf_matches(&got, ""));
        assert!(!csrf_matches(&got, &s.id));
        sessions.remove(&s.id);
        assert!(sessions.get(&s.id).is_none());
    }

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; chaoshub_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        let set = set_cookie("abc", true);
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set_cookie("abc", false).contains("Secure"));
    }
}
