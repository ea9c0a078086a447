//! A seeded request fuzzer for the workspace's axum routers (feature `fuzz`): the hub's API and
//! console (`hub`), the agent's local REST API (`agent`), and the machinery both share —
//! a small deterministic generator ([`Rng`]), mutators of bytes and of JSON trees, hostile
//! documents (alias bombs, deep nesting, duplicate keys, huge scalars), malformed
//! `Authorization` headers, and a driver ([`drive`]) that sends requests to a router in-process
//! and counts statuses, server errors and panics.
//!
//! The same generator serves the long runs of the bench binaries (`hub/benches/fuzz_router.rs`,
//! `native/benches/fuzz_rest.rs`) and the short runs of the regular tests: a seed and a count
//! give the same inputs on every machine (the generator is written here rather than taken from
//! `rand`, whose streams may change between versions).

pub mod agent;
pub mod hub;
mod mutate;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use tower::ServiceExt;

pub use mutate::*;

/// SplitMix64: tiny, fast and with a stream fixed forever by its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Sizes spread over orders of magnitude (small ones most often): `0..=max`.
    pub fn size(&mut self, max: usize) -> usize {
        let bits = usize::BITS - max.leading_zeros();
        let cap = 1usize << self.below(bits as usize + 1);
        self.below(cap.min(max) + 1)
    }
}

/// What an answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Anything but a 5xx.
    NoServerError,
    /// Exactly 401: a request whose credential is missing or malformed.
    Unauthenticated,
}

/// One generated request.
#[derive(Debug, Clone)]
pub struct FuzzRequest {
    /// The input class, for the per-class histogram (`manifest`, `auth`, …).
    pub class: &'static str,
    pub method: Method,
    /// Path and query, already percent-encoded where needed.
    pub uri: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
    pub expect: Expect,
    /// The client's address as a listener would report it (`ConnectInfo`); `None`: unknown, as
    /// for any in-process call.
    pub source: Option<std::net::SocketAddr>,
}

impl FuzzRequest {
    pub fn new(class: &'static str, method: Method, uri: impl Into<String>) -> Self {
        FuzzRequest {
            class,
            method,
            uri: uri.into(),
            headers: Vec::new(),
            body: Vec::new(),
            expect: Expect::NoServerError,
            source: None,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl AsRef<[u8]>) -> Self {
        // Generators only produce valid header bytes; an invalid one is a generator bug.
        let value = HeaderValue::from_bytes(value.as_ref()).expect("generated header value");
        self.headers.push((HeaderName::from_static(name), value));
        self
    }

    pub fn body(mut self, content_type: Option<&str>, body: Vec<u8>) -> Self {
        if let Some(ct) = content_type {
            self = self.header("content-type", ct);
        }
        self.body = body;
        self
    }

    fn to_http(&self) -> Request<Body> {
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(&self.uri)
            .body(Body::from(self.body.clone()))
            .unwrap_or_else(|e| panic!("generated request {} {}: {e}", self.method, self.uri));
        for (name, value) in &self.headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        if let Some(source) = self.source {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(source));
        }
        request
    }

    /// A short description for failure reports: request line, headers and the body's start.
    pub fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(600)]).into_owned();
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| {
                let v = String::from_utf8_lossy(v.as_bytes());
                format!("{n}: {}", v.chars().take(120).collect::<String>())
            })
            .collect();
        format!(
            "[{}] {} {} {:?} ({} body bytes) {body:?}",
            self.class,
            self.method,
            self.uri.chars().take(300).collect::<String>(),
            headers,
            self.body.len()
        )
    }
}

/// One answer, as generators see it when they choose a follow-up (for example: stop the
/// experiment a real POST created, so the store stays small).
pub struct Answer<'a> {
    pub request: &'a FuzzRequest,
    pub status: u16,
    pub body: &'a [u8],
}

/// A source of requests: `next` for the `index`-th input, `follow_up` after each answer.
pub trait Inputs: Send + Sync + 'static {
    fn next(&self, rng: &mut Rng, index: u64) -> FuzzRequest;
    fn follow_up(&self, _answer: &Answer<'_>) -> Option<FuzzRequest> {
        None
    }
}

/// Counts of one run.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub inputs: u64,
    pub follow_ups: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub by_class: BTreeMap<&'static str, BTreeMap<u16, u64>>,
    pub server_errors: u64,
    /// `Expect::Unauthenticated` inputs answered with anything but 401.
    pub wrong_auth_answers: u64,
    /// Handlers that panicked (the request's task ended in a panic; a router that turns a panic
    /// into a 500 is counted under `server_errors` and by [`PanicCounter`]).
    pub panics: u64,
    /// The first failures, described.
    pub failures: Vec<String>,
}

impl Tally {
    fn failed(&mut self, what: String) {
        if self.failures.len() < 20 {
            self.failures.push(what);
        }
    }

    fn merge(&mut self, other: Tally) {
        self.inputs += other.inputs;
        self.follow_ups += other.follow_ups;
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (class, hist) in other.by_class {
            let mine = self.by_class.entry(class).or_default();
            for (k, v) in hist {
                *mine.entry(k).or_default() += v;
            }
        }
        self.server_errors += other.server_errors;
        self.wrong_auth_answers += other.wrong_auth_answers;
        self.panics += other.panics;
        for f in other.failures {
            self.failed(f);
        }
    }

    pub fn clean(&self) -> bool {
        self.server_errors == 0 && self.wrong_auth_answers == 0 && self.panics == 0
    }

    /// The figures, one per line.
    pub fn report(&self) -> String {
        let mut out = format!(
            "inputs: {} (+{} follow-ups)\nstatus histogram: {}\n5xx: {}\nauth inputs answered other than 401: {}\npanicked requests: {}\n",
            self.inputs,
            self.follow_ups,
            histogram(&self.statuses),
            self.server_errors,
            self.wrong_auth_answers,
            self.panics
        );
        out.push_str("by class:\n");
        for (class, hist) in &self.by_class {
            let n: u64 = hist.values().sum();
            out.push_str(&format!("  {class:<14} {n:>9}  {}\n", histogram(hist)));
        }
        for f in &self.failures {
            out.push_str(&format!("FAILURE {f}\n"));
        }
        out
    }
}

fn histogram(h: &BTreeMap<u16, u64>) -> String {
    h.iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How a run goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub inputs: u64,
    pub seed: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// The largest response body read (bodies are read to their end up to this).
    pub max_response_bytes: usize,
    /// Longest a single request may take before it counts as a failure (a hang).
    pub request_timeout: Duration,
    /// Print a progress line every this many inputs (0: never).
    pub progress_every: u64,
}

impl RunOptions {
    /// Options from a bench's command line: `--inputs N` (default `default_inputs`), `--seed S`
    /// (1), `--concurrency C` (8), `--progress P` (every 50,000); `_` may group digits.
    pub fn from_args(default_inputs: u64) -> RunOptions {
        let args: Vec<String> = std::env::args().collect();
        let arg = |name: &str| -> Option<u64> {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .map(|v| {
                    v.replace('_', "")
                        .parse()
                        .unwrap_or_else(|_| panic!("{name} takes a number, got {v:?}"))
                })
        };
        RunOptions {
            inputs: arg("--inputs").unwrap_or(default_inputs),
            seed: arg("--seed").unwrap_or(1),
            concurrency: arg("--concurrency").unwrap_or(8) as usize,
            progress_every: arg("--progress").unwrap_or(50_000),
            ..Default::default()
        }
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            inputs: 1000,
            seed: 1,
            concurrency: 8,
            max_response_bytes: 16 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            progress_every: 0,
        }
    }
}

/// Sends `options.inputs` requests from `inputs` to `router`, `options.concurrency` at a time.
/// Worker `w` draws its inputs from its own stream (`seed` and `w`), so a run is the same set of
/// inputs whatever the scheduling. Each request runs in its own task, so a panicking handler is
/// counted and the run goes on.
pub async fn drive<I: Inputs>(router: axum::Router, inputs: Arc<I>, options: &RunOptions) -> Tally {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let total = Arc::new(Mutex::new(Tally::default()));
    let mut workers = Vec::new();
    for w in 0..options.concurrency.max(1) {
        let router = router.clone();
        let inputs = Arc::clone(&inputs);
        let next = Arc::clone(&next);
        let done = Arc::clone(&done);
        let total = Arc::clone(&total);
        let options = options.clone();
        workers.push(tokio::spawn(async move {
            let mut rng = Rng::new(options.seed ^ (w as u64).wrapping_mul(0xA24B_AED4_963E_E407));
            let mut tally = Tally::default();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= options.inputs {
                    break;
                }
                let mut request = inputs.next(&mut rng, index);
                tally.inputs += 1;
                // A request, then its follow-ups (each may ask for one more).
                let mut hops = 0;
                loop {
                    let followed = send(&router, &request, &options, &mut tally).await;
                    let Some((status, body)) = followed else {
                        break;
                    };
                    let answer = Answer {
                        request: &request,
                        status,
                        body: &body,
                    };
                    match inputs.follow_up(&answer) {
                        Some(more) if hops < 4 => {
                            hops += 1;
                            tally.follow_ups += 1;
                            request = more;
                        }
                        _ => break,
                    }
                }
                let n = done.fetch_add(1, Ordering::Relaxed) as u64 + 1;
                if options.progress_every > 0 && n.is_multiple_of(options.progress_every) {
                    let secs = started.elapsed().as_secs_f64();
                    eprintln!(
                        "  {n} inputs in {secs:.0} s ({:.0}/s), resident {} MB",
                        n as f64 / secs,
                        resident_kb().unwrap_or(0) / 1024
                    );
                }
            }
            total.lock().unwrap().merge(tally);
        }));
    }
    for w in workers {
        if let Err(e) = w.await {
            // A worker's own code panicked (a generator bug): make it loud.
            std::panic::resume_unwind(e.into_panic());
        }
    }
    let mut guard = total.lock().unwrap();
    std::mem::take(&mut *guard)
}

/// Sends one request; `Some((status, body))` when it was answered.
async fn send(
    router: &axum::Router,
    request: &FuzzRequest,
    options: &RunOptions,
    tally: &mut Tally,
) -> Option<(u16, Vec<u8>)> {
    let http = request.to_http();
    let router = router.clone();
    let limit = options.max_response_bytes;
    let task = tokio::spawn(async move {
        let response = router.oneshot(http).await.unwrap_or_else(|e| match e {});
        let status = response.status().as_u16();
        let streaming = response
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if streaming {
            // An event stream never ends: its first frame (if one comes soon) is read, then the
            // stream is dropped, as a client going away.
            let mut body = response.into_body();
            let first = tokio::time::timeout(
                Duration::from_millis(200),
                std::future::poll_fn(|cx| {
                    axum::body::HttpBody::poll_frame(std::pin::Pin::new(&mut body), cx)
                }),
            )
            .await;
            let bytes = match first {
                Ok(Some(Ok(frame))) => frame.into_data().map(|d| d.to_vec()).unwrap_or_default(),
                _ => Vec::new(),
            };
            return (status, Ok(bytes));
        }
        let body = axum::body::to_bytes(response.into_body(), limit).await;
        (status, body.map(|b| b.to_vec()))
    });
    let answered = tokio::time::timeout(options.request_timeout, task).await;
    let (status, body) = match answered {
        Err(_) => {
            tally.server_errors += 1;
            tally.failed(format!(
                "no answer within {:?}: {}",
                options.request_timeout,
                request.describe()
            ));
            return None;
        }
        Ok(Err(join)) => {
            tally.panics += 1;
            let message = join
                .try_into_panic()
                .ok()
                .and_then(|p| {
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                })
                .unwrap_or_default();
            tally.failed(format!("panicked ({message}): {}", request.describe()));
            return None;
        }
        Ok(Ok(answer)) => answer,
    };
    *tally.statuses.entry(status).or_default() += 1;
    *tally
        .by_class
        .entry(request.class)
        .or_default()
        .entry(status)
        .or_default() += 1;
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            tally.server_errors += 1;
            tally.failed(format!(
                "answered {status} with an unreadable body ({e}): {}",
                request.describe()
            ));
            return None;
        }
    };
    if status >= 500 {
        tally.server_errors += 1;
        tally.failed(format!(
            "answered {status} {}: {}",
            String::from_utf8_lossy(&body[..body.len().min(400)]),
            request.describe()
        ));
    }
    if request.expect == Expect::Unauthenticated && status != 401 {
        tally.wrong_auth_answers += 1;
        tally.failed(format!(
            "an unauthenticated request answered {status} {}: {}",
            String::from_utf8_lossy(&body[..body.len().min(400)]),
            request.describe()
        ));
    }
    Some((status, body))
}

/// Counts every panic of the process (a panic hook that then calls the previous hook), including
/// panics a router's catch-panic layer turned into a 500 and panics of background tasks. Only
/// for processes that run nothing else: a test binary's other tests would be counted too.
#[derive(Clone)]
pub struct PanicCounter(Arc<AtomicU64>);

impl PanicCounter {
    pub fn install() -> Self {
        let count = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&count);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            seen.fetch_add(1, Ordering::Relaxed);
            previous(info);
        }));
        PanicCounter(count)
    }

    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory of this process now, in kB (`VmRSS`).
pub fn resident_kb() -> Option<u64> {
    status_kb("VmRSS:")
}

/// Peak resident memory of this process, in kB (`VmHWM`).
pub fn peak_resident_kb() -> Option<u64> {
    status_kb("VmHWM:")
}

/// One GET to `path` without credentials; its status (a health check after a run).
pub async fn drive_one(router: axum::Router, path: &str) -> u16 {
    let request = Request::builder()
        .uri(path)
        .body(Body::empty())
        .expect("a static request");
    router
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {})
        .status()
        .as_u16()
}
