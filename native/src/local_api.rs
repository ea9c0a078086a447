//! The client side of the daemon's local REST API, as the `chaos-agent` CLI uses it: over the
//! daemon's Unix socket by default, or over loopback TCP (`--rest-listen`) with the bearer
//! token the daemon wrote to its state directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// The socket file in the state directory.
pub const SOCKET_FILE: &str = "agent.sock";
/// The bearer token of a TCP REST API, in the state directory.
pub const TOKEN_FILE: &str = "rest.token";

const TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh bearer token: 64 hex digits (256 bits).
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the daemon's REST API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestListen {
    /// A Unix socket, created with mode 0600.
    Unix(PathBuf),
    /// Loopback TCP, with a bearer token.
    Tcp(std::net::SocketAddr),
}

/// Writes a file only its owner can read (created 0600, replaced atomically).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Where the daemon's REST API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalApi {
    Unix(PathBuf),
    Tcp {
        authority: String,
        token: Option<String>,
    },
}

impl LocalApi {
    /// From `--agent` (`unix:///path`, `http://127.0.0.1:PORT`), else the socket in
    /// `state_dir`. A TCP daemon's token is read from `state_dir` when it is there.
    pub fn resolve(agent: Option<&str>, state_dir: &Path) -> anyhow::Result<Self> {
        let Some(agent) = agent.filter(|a| !a.trim().is_empty()) else {
            return Ok(LocalApi::Unix(state_dir.join(SOCKET_FILE)));
        };
        if let Some(path) = agent.strip_prefix("unix://") {
            return Ok(LocalApi::Unix(PathBuf::from(path)));
        }
        let authority = agent
            .strip_prefix("http://")
            .ok_or_else(|| {
                anyhow!("--agent {agent:?}: use unix:///path/agent.sock or http://127.0.0.1:PORT")
            })?
            .trim_end_matches('/')
            .to_string();
        let token = std::fs::read_to_string(state_dir.join(TOKEN_FILE))
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        Ok(LocalApi::Tcp { authority, token })
    }

    pub fn describe(&self) -> String {
        match self {
            LocalApi::Unix(p) => format!("unix://{}", p.display()),
            LocalApi::Tcp { authority, .. } => format!("http://{authority}"),
        }
    }

    /// One request; `Err` only when the daemon cannot be reached.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(StatusCode, String)> {
        let bytes = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b)?),
            None => Bytes::new(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "localhost")
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let LocalApi::Tcp {
            token: Some(token), ..
        } = self
        {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req.body(Full::new(bytes))?;
        let call = async {
            match self {
                LocalApi::Unix(path) => {
                    let io = tokio::net::UnixStream::connect(path)
                        .await
                        .with_context(|| format!("cannot connect to {}", path.display()))?;
                    send(io, req).await
                }
                LocalApi::Tcp { authority, .. } => {
                    let io = tokio::net::TcpStream::connect(authority.as_str())
                        .await
                        .with_context(|| format!("cannot connect to {authority}"))?;
                    send(io, req).await
                }
            }
        };
        tokio::time::timeout(TIMEOUT, call)
            .await
            .map_err(|_| anyhow!("no answer within {TIMEOUT:?}"))?
    }
}

async fn send<S>(io: S, req: Request<Full<Bytes>>) -> anyhow::Result<(StatusCode, String)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_socket_url_and_token() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            LocalApi::resolve(None, dir.path()).unwrap(),
            LocalApi::Unix(dir.path().join(SOCKET_FILE))
        );
        assert_eq!(
            LocalApi::resolve(Some("unix:///run/a.sock"), dir.path()).unwrap(),
            LocalApi::Unix(PathBuf::from("/run/a.sock"))
        );
        std::fs::write(dir.path().join(TOKEN_FILE), "secret\n").unwrap();
        assert_eq!(
            LocalApi::resolve(Some("http://127.0.0.1:9797/"), dir.path()).unwrap(),
            LocalApi::Tcp {
                authority: "127.0.0.1:9797".into(),
                token: Some("secret".into())
            }
        );
        assert!(LocalApi::resolve(Some("ftp://x"), dir.path()).is_err());
    }
}
