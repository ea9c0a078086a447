//! A real Toxiproxy server for a test: started on a free loopback port, stopped on drop.
//!
//! The binary comes from [`crate::toxiproxy_server`], so a missing server is a `SKIP` line
//! outside CI and a failure under `CI=true`. The few calls made here (is it up, create a proxy)
//! use a plain HTTP/1.1 exchange over `std::net`, so this crate keeps no dependencies and the
//! server can be started from blocking and async tests alike (the start takes well under a
//! second).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Toxiproxy server; killed and reaped on drop.
pub struct ToxiproxyServer {
    child: Child,
    addr: SocketAddr,
    /// `http://127.0.0.1:<port>`: the API's base URL (the adapter's `endpoint`).
    pub url: String,
}

impl Drop for ToxiproxyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ToxiproxyServer {
    /// Starts the server and waits until its API answers. `None` (after the locator's `SKIP`
    /// line) when there is no server binary; panics when it is there but does not start.
    pub fn start() -> Option<ToxiproxyServer> {
        let binary = crate::toxiproxy_server()?;
        for _ in 0..5 {
            let addr = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap_or_else(|e| panic!("no free loopback port: {e}"));
            let child = Command::new(&binary)
                .args(["-host", "127.0.0.1", "-port", &addr.port().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let mut server = ToxiproxyServer {
                child,
                addr,
                url: format!("http://{addr}"),
            };
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if matches!(server.call("GET", "/version", ""), Ok((200, _))) {
                    return Some(server);
                }
                if matches!(server.child.try_wait(), Ok(Some(_))) {
                    break; // the port was taken meanwhile: try another
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("the Toxiproxy server at {} did not start", binary.display());
    }

    /// Creates an enabled proxy `name` to `upstream` listening on a free loopback port, and
    /// returns the address it listens on.
    pub fn create_proxy(&self, name: &str, upstream: impl std::fmt::Display) -> SocketAddr {
        let body = format!(
            r#"{{"name":"{name}","listen":"127.0.0.1:0","upstream":"{upstream}","enabled":true}}"#
        );
        let (status, answer) = self
            .call("POST", "/proxies", &body)
            .unwrap_or_else(|e| panic!("creating proxy {name}: {e}"));
        assert_eq!(status, 201, "creating proxy {name}: {answer}");
        string_field(&answer, "listen")
            .and_then(|listen| listen.parse().ok())
            .unwrap_or_else(|| panic!("creating proxy {name}: no listen address in {answer}"))
    }

    /// One HTTP/1.1 exchange with the server's API: (status, body).
    fn call(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        parse_response(&text)
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:?}")))
    }
}

/// The status and body of an HTTP/1.1 answer read to its end.
fn parse_response(text: &str) -> Option<(u16, String)> {
    let status = text
        .strip_prefix("HTTP/1.")?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((status, body.to_string()))
}

/// The value of the first string field `key` in a JSON text (Toxiproxy's answers are flat
/// enough for this; it is not a JSON parser).
fn string_field(json: &str, key: &str) -> Option<String> {
    let after = &json[json.find(&format!("\"{key}\""))? + key.len() + 2..];
    let value = after
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    Some(value[..value.find('"')?].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_gives_its_status_and_body() {
        let text =
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(text), Some((201, "{}".to_string())));
        assert_eq!(parse_response("SSH-2.0-x\r\n"), None);
    }

    #[test]
    fn a_string_field_is_read_with_or_without_spaces() {
        let compact = r#"{"name":"echo","listen":"127.0.0.1:41234","upstream":"127.0.0.1:9"}"#;
        assert_eq!(
            string_field(compact, "listen").as_deref(),
            Some("127.0.0.1:41234")
        );
        let spaced = r#"{ "listen" : "[::1]:80" }"#;
        assert_eq!(string_field(spaced, "listen").as_deref(), Some("[::1]:80"));
        assert_eq!(string_field(compact, "enabled"), None);
    }
}
