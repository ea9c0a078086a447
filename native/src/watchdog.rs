//! `chaos-agent watchdog`: a timed revert. It waits until an instant, then makes a list of HTTP
//! calls against an API reached over a Unix socket or TCP, retrying what may still pass (no
//! connection, a 5xx) for a while.
//!
//! The hub's Docker adapter starts one in a watchdog container next to a pause, a network
//! disconnect or a resource squeeze, with the engine's socket and the calls that undo the fault
//! (unpause, reconnect with the same aliases, the old limits), armed for just after the
//! experiment's deadline. So those faults end on time even when the hub is down for good; when the
//! hub is alive it recovers first and removes the watchdog. The agent knows nothing of Docker:
//! the adapter writes the calls ([`RevertCall`]).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chaoshub_schema::agent::RevertCall;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// Where the API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

impl Endpoint {
    /// `unix:///var/run/docker.sock`, `tcp://10.0.0.5:2375` or `http://10.0.0.5:2375`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "--endpoint {text:?}: a unix endpoint needs an absolute path (unix:///run/x.sock)"
                ));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        for scheme in ["tcp://", "http://"] {
            if let Some(rest) = text.strip_prefix(scheme) {
                let host = rest.trim_end_matches('/');
                if host.is_empty() || !host.contains(':') || host.contains('/') {
                    return Err(format!("--endpoint {text:?}: expected {scheme}HOST:PORT"));
                }
                return Ok(Endpoint::Tcp(host.to_string()));
            }
        }
        Err(format!(
            "--endpoint {text:?}: expected unix:///path, tcp://host:port or http://host:port"
        ))
    }
}

/// An HTTP answer: its status and (the start of) its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

fn connect(endpoint: &Endpoint, timeout: Duration) -> io::Result<Box<dyn Stream>> {
    match endpoint {
        Endpoint::Unix(path) => {
            let s = UnixStream::connect(path)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            Ok(Box::new(s))
        }
        Endpoint::Tcp(host) => {
            use std::net::ToSocketAddrs;
            let addr = host.to_socket_addrs()?.next().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{host} resolves to nothing"),
                )
            })?;
            let s = TcpStream::connect_timeout(&addr, timeout)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            Ok(Box::new(s))
        }
    }
}

/// One HTTP/1.1 request with `Connection: close`; the answer is read to its end.
pub fn request(endpoint: &Endpoint, call: &RevertCall, timeout: Duration) -> io::Result<Reply> {
    let body = match &call.body {
        Some(v) => serde_json::to_vec(v).map_err(io::Error::other)?,
        None => Vec::new(),
    };
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: chaos-agent-watchdog\r\nConnection: close\r\nContent-Length: {}\r\n",
        call.method,
        call.path,
        body.len()
    );
    if call.body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str("\r\n");
    let mut stream = connect(endpoint, timeout)?;
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body)?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> io::Result<Reply> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("the answer has no complete HTTP header"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| bad(&format!("not an HTTP status line: {status_line:?}")))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let payload = &raw[end + 4..];
    let body = if chunked {
        dechunk(payload)
    } else {
        payload.to_vec()
    };
    let mut body = String::from_utf8_lossy(&body).trim().to_string();
    if body.len() > 500 {
        let mut cut = 500;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    Ok(Reply { status, body })
}

/// Joins the chunks of a chunked body (what arrived of it; a torn last chunk is kept as is).
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16);
        let Ok(size) = size else { break };
        if size == 0 {
            break;
        }
        let start = eol + 2;
        let stop = (start + size).min(data.len());
        out.extend_from_slice(&data[start..stop]);
        data = data.get(stop + 2..).unwrap_or_default();
    }
    out
}

/// Makes one call, retrying while it may still pass (no connection, a 5xx) until `give_up`.
/// `Ok(status)` when the status is 2xx or one of `accept`.
pub fn perform(
    endpoint: &Endpoint,
    call: &RevertCall,
    give_up: Instant,
    pause: Duration,
) -> Result<u16, String> {
    loop {
        let last = match request(endpoint, call, Duration::from_secs(30)) {
            Ok(r) if (200..300).contains(&r.status) || call.accept.contains(&r.status) => {
                return Ok(r.status)
            }
            Ok(r) if r.status < 500 => {
                return Err(format!("answered {}: {}", r.status, r.body));
            }
            Ok(r) => format!("answered {}: {}", r.status, r.body),
            Err(e) => format!("no answer: {e}"),
        };
        if Instant::now() + pause > give_up {
            return Err(format!("gave up retrying; last attempt {last}"));
        }
        std::thread::sleep(pause);
    }
}

/// Sleeps until `at` by the wall clock (in short steps, so a clock that is set or a suspended
/// host does not stretch the wait).
pub fn sleep_until(at: DateTime<Utc>) {
    loop {
        let left = (at - Utc::now()).num_microseconds().unwrap_or(i64::MAX);
        if left <= 0 {
            return;
        }
        std::thread::sleep(Duration::from_micros(left.min(1_000_000) as u64));
    }
}

/// Waits until `at`, then makes every call in order, each retried for up to `retry_for`.
/// `emit` receives one JSON object per event; the result says whether every call succeeded.
pub fn run(
    endpoint: &Endpoint,
    at: DateTime<Utc>,
    calls: &[RevertCall],
    retry_for: Duration,
    emit: &mut dyn FnMut(Value),
) -> bool {
    emit(json!({"state": "armed", "at": at, "calls": calls.len()}));
    sleep_until(at);
    let mut all_ok = true;
    for call in calls {
        let give_up = Instant::now() + retry_for;
        let what = format!("{} {}", call.method, call.path);
        match perform(endpoint, call, give_up, Duration::from_secs(1)) {
            Ok(status) => emit(json!({"state": "reverted", "call": what, "status": status})),
            Err(error) => {
                all_ok = false;
                emit(json!({"state": "failed", "call": what, "error": error}));
            }
        }
    }
    emit(json!({"state": if all_ok { "done" } else { "failed" }}));
    all_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::sync::{Arc, Mutex};

    /// A real HTTP server on a Unix socket answering with the scripted statuses in turn and
    /// recording the requests it got.
    fn server(
        dir: &std::path::Path,
        answers: Vec<(u16, &'static str)>,
    ) -> (Endpoint, Arc<Mutex<Vec<String>>>) {
        let path = dir.join("api.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for (status, body) in answers {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                // Read the head, then the body its Content-Length announces.
                loop {
                    let n = s.read(&mut buf).unwrap();
                    got.extend_from_slice(&buf[..n]);
                    if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..end]).to_string();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&got).to_string());
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                    body.len()
                );
                s.write_all(answer.as_bytes()).unwrap();
            }
        });
        (Endpoint::Unix(path), seen)
    }

    fn call(method: &str, path: &str, body: Option<Value>, accept: &[u16]) -> RevertCall {
        RevertCall {
            method: method.into(),
            path: path.into(),
            body,
            accept: accept.to_vec(),
        }
    }

    #[test]
    fn endpoints_parse_or_say_what_is_expected() {
        assert_eq!(
            Endpoint::parse("unix:///var/run/docker.sock").unwrap(),
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://10.0.0.5:2375").unwrap(),
            Endpoint::Tcp("10.0.0.5:2375".into())
        );
        assert!(Endpoint::parse("unix://relative.sock")
            .unwrap_err()
            .contains("absolute"));
        assert!(Endpoint::parse("tcp://nohostport")
            .unwrap_err()
            .contains("HOST:PORT"));
        assert!(Endpoint::parse("ftp://x").unwrap_err().contains("expected"));
    }

    #[test]
    fn a_call_sends_its_body_and_retries_a_5xx_until_it_passes() {
        let dir = tempfile::tempdir().unwrap();
        let (endpoint, seen) = server(dir.path(), vec![(500, r#"{"message":"busy"}"#), (200, "")]);
        let c = call(
            "POST",
            "/containers/abc/update",
            Some(json!({"Memory": 1})),
            &[],
        );
        let status = perform(
            &endpoint,
            &c,
            Instant::now() + Duration::from_secs(5),
            Duration::from_millis(10),
        )
        .unwrap();
        assert_eq!(status, 200);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "retried once after the 500");
        assert!(seen[1].starts_with("POST /containers/abc/update HTTP/1.1\r\n"));
        assert!(seen[1].contains("Content-Type: application/json"));
        assert!(seen[1].ends_with(r#"{"Memory":1}"#));
    }

    #[test]
    fn accepted_statuses_pass_and_other_4xx_fail_at_once_with_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let (endpoint, seen) = server(
            dir.path(),
            vec![
                (409, r#"{"message":"Container abc is not paused"}"#),
                (400, r#"{"message":"bad parameter"}"#),
            ],
        );
        let give_up = Instant::now() + Duration::from_secs(5);
        let unpause = call("POST", "/containers/abc/unpause", None, &[404, 409]);
        assert_eq!(
            perform(&endpoint, &unpause, give_up, Duration::from_millis(10)).unwrap(),
            409
        );
        let error = perform(&endpoint, &unpause, give_up, Duration::from_millis(10)).unwrap_err();
        assert!(
            error.contains("400") && error.contains("bad parameter"),
            "{error}"
        );
        assert_eq!(seen.lock().unwrap().len(), 2, "a 4xx is not retried");
    }

    #[test]
    fn no_server_is_retried_until_the_time_is_up() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::Unix(dir.path().join("nobody.sock"));
        let started = Instant::now();
        let error = perform(
            &endpoint,
            &call("POST", "/x", None, &[]),
            Instant::now() + Duration::from_millis(300),
            Duration::from_millis(50),
        )
        .unwrap_err();
        assert!(error.contains("no answer"), "{error}");
        assert!(started.elapsed() >= Duration::from_millis(250));
    }

    #[test]
    fn run_waits_for_its_instant_and_reports_each_call() {
        let dir = tempfile::tempdir().unwrap();
        let (endpoint, _) = server(dir.path(), vec![(204, ""), (404, "{}")]);
        let at = Utc::now() + chrono::Duration::milliseconds(300);
        let mut events = Vec::new();
        let ok = run(
            &endpoint,
            at,
            &[
                call("POST", "/containers/a/unpause", None, &[]),
                call("POST", "/networks/n/connect", None, &[]),
            ],
            Duration::from_millis(100),
            &mut |e| events.push(e),
        );
        assert!(Utc::now() >= at, "fired no earlier than asked");
        assert!(!ok, "the 404 was not accepted");
        let states: Vec<&str> = events
            .iter()
            .map(|e| e["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["armed", "reverted", "failed", "failed"]);
        assert_eq!(events[1]["status"], 204);
        assert!(events[2]["error"].as_str().unwrap().contains("404"));
    }

    #[test]
    fn chunked_and_plain_bodies_are_read() {
        let plain = parse_reply(b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n").unwrap();
        assert_eq!((plain.status, plain.body.as_str()), (204, ""));
        let chunked = parse_reply(
            b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            (chunked.status, chunked.body.as_str()),
            (409, "hello world")
        );
        assert!(parse_reply(b"garbage").is_err());
        assert!(parse_reply(b"SSH-2.0 x\r\n\r\n").is_err());
    }
}
