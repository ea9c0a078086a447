//! The first admin token, and how a CLI on the same machine finds it.
//!
//! A hub that starts with no live token creates one admin token and writes it to
//! `<data-dir>/admin.token` (mode 0600); the log names the path, never the token. So that the
//! README's two commands keep working with authentication on, the hub also leaves a note in
//! the user's runtime directory (`hubs/<host>_<port>`, holding only the token file's path); a
//! CLI talking to that address with no other credential reads the token file through it. The
//! file's 0600 mode is what guards the token: only the user who runs the hub (and root) can
//! read it, exactly as with the data directory itself.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chaoshub_schema::auth::{Role, TokenInfo};

use crate::store::{Store, StoreError, TokenRow};

/// The bootstrap token's file name inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// The bootstrap token's name.
pub const ADMIN_TOKEN_NAME: &str = "admin";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot create the admin token")]
    Store(#[from] StoreError),
    #[error("cannot write the admin token file {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Creates the admin token when the store has no live token. Returns the file written.
pub fn ensure_admin_token(
    store: &dyn Store,
    data_dir: &Path,
    now: &str,
) -> Result<Option<PathBuf>, BootstrapError> {
    if store.count_live_tokens()? > 0 {
        return Ok(None);
    }
    let token = super::generate_token();
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    write_secret(&path, &format!("{token}\n")).map_err(|source| BootstrapError::Write {
        path: path.clone(),
        source,
    })?;
    store.insert_token(
        &TokenRow {
            info: TokenInfo {
                name: ADMIN_TOKEN_NAME.into(),
                role: Role::Admin,
                namespaces: vec!["*".into()],
                environments: Vec::new(),
                created_at: now.to_string(),
                expires_at: None,
                last_used_at: None,
                revoked_at: None,
            },
            hash: super::hash_token(&token),
        },
        None,
    )?;
    tracing::info!(path = %path.display(), "no api token existed: created the admin token; read it from this file (mode 0600)");
    Ok(Some(path))
}

/// Writes a file only its owner can read, replacing any older one.
pub fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Where local hubs leave their notes: `$CHAOSHUB_RUNTIME_DIR`, else
/// `$XDG_RUNTIME_DIR/chaoshub`, else `~/.local/state/chaoshub`.
pub fn runtime_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CHAOSHUB_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("chaoshub"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|home| PathBuf::from(home).join(".local/state/chaoshub"))
}

fn note_name(host: &str, port: u16) -> String {
    let host: String = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{host}_{port}")
}

/// Leaves the note for a hub listening on `addr`; returns its path (removed at shutdown).
pub fn publish_local_note(addr: SocketAddr, token_file: &Path) -> Option<PathBuf> {
    let dir = runtime_dir()?.join("hubs");
    let absolute = std::path::absolute(token_file).ok()?;
    let create = || -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let path = dir.join(note_name(&addr.ip().to_string(), addr.port()));
        write_secret(&path, &format!("{}\n", absolute.display()))?;
        Ok(path)
    };
    match create() {
        Ok(path) => Some(path),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot leave the local-hub note; a CLI on this machine will need --token or CHAOSHUB_TOKEN");
            None
        }
    }
}

/// The token a local hub at `host:port` left a note for, if this user can read it.
pub fn local_token(host: &str, port: u16) -> Option<String> {
    let dir = runtime_dir()?.join("hubs");
    let mut hosts = vec![host.to_string()];
    if host.eq_ignore_ascii_case("localhost") {
        hosts.push("127.0.0.1".into());
        hosts.push("::1".into());
    }
    for host in hosts {
        let Ok(note) = std::fs::read_to_string(dir.join(note_name(&host, port))) else {
            continue;
        };
        if let Some(token) = read_token_file(Path::new(note.trim())) {
            return Some(token);
        }
    }
    None
}

/// The first line of a token file, trimmed; None when unreadable or empty.
pub fn read_token_file(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let token = text.lines().next()?.trim().to_string();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AuthStore, SqliteStore};

    #[test]
    fn bootstrap_writes_a_private_token_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::in_memory().unwrap();
        let path = ensure_admin_token(&store, dir.path(), "2026-01-01T00:00:00Z")
            .unwrap()
            .expect("first start creates the token");
        let token = read_token_file(&path).unwrap();
        assert!(token.starts_with(super::super::TOKEN_PREFIX));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let row = store
            .token_by_hash(&super::super::hash_token(&token))
            .unwrap()
            .unwrap();
        assert_eq!(row.info.role, Role::Admin);
        assert!(
            ensure_admin_token(&store, dir.path(), "2026-01-01T00:00:00Z")
                .unwrap()
                .is_none()
        );
        assert_eq!(read_token_file(&path).unwrap(), token);
    }

    #[test]
    fn note_names_are_file_names() {
        assert_eq!(note_name("127.0.0.1", 7070), "127.0.0.1_7070");
        assert_eq!(note_name("[::1]", 80), "__1_80");
        assert_eq!(note_name("::1", 80), "__1_80");
    }
}
