//! Console sessions: a random id in an `HttpOnly`, `SameSite=Strict` cookie, mapped in memory to
//! the API token the person logged in with and a CSRF token for the forms of that session.
//!
//! The token itself never reaches the browser again after the login form; every page and every
//! action is an API request made with it, so revoking the token ends the session at its next
//! request. Sessions live in memory only: a restarted hub asks for the token again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use chaoshub_schema::auth::Role;

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
}

impl Sessions {
    pub fn create(&self, token: Option<String>, name: String, role: Role) -> Session {
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

    /// The live session with this id, marked as used now.
    pub fn get(&self, id: &str) -> Option<Session> {
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
    use std::fmt::Write;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
