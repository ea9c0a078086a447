//! Inputs for the hub's router: manifests of every kind (mutated, hostile, valid), templates,
//! suites, environment registrations, query strings and path parameters, odd headers, the
//! console, admin calls, and malformed credentials. Requests carry the admin token (so bodies
//! reach the parsers they aim at) except the `auth` class, whose credential is always broken
//! and whose answer must be exactly 401.

use axum::http::Method;
use serde_json::{json, Value};

use super::{
    alias_bomb, bad_authorization, content_type, deep_nesting, duplicate_key, huge_scalar,
    merge_bomb, multi_document, mutate_bytes, mutate_value, percent_encode, random_header_bytes,
    random_query, random_segment, random_source, random_value, tagged_yaml, to_yaml, Answer,
    FuzzRequest, Inputs, Rng,
};

/// The environment the hub under test has registered (an adapter that answers at once).
pub const ENVIRONMENT: &str = "fuzz";

/// Names the `environment` class registers under (a small pool, so the store stays small and
/// re-registrations meet conflicts and replacements).
const ENV_POOL: &[&str] = &["fuzz-0", "fuzz-1", "fuzz-2", "fuzz-3"];

/// Every query key the API reads, plus a few it does not.
const QUERY_KEYS: &[&str] = &[
    "phase",
    "kind",
    "namespace",
    "env",
    "limit",
    "continue",
    "archived",
    "labelSelector",
    "experiment",
    "after",
    "since",
    "until",
    "principal",
    "object",
    "outcome",
    "replace",
    "dryRun",
    "category",
    "tag",
    "adapter",
    "q",
    "format",
    "watch",
];

/// What the generator mutates, loaded by the caller (the hub's driver parses YAML with the
/// hub's own reader).
#[derive(Debug, Default, Clone)]
pub struct HubCorpus {
    /// Experiment manifests of every kind (Chaos Mesh kinds, Schedule, Workflow, chaoshub's own),
    /// parsed, with `spec.environment` pointed at [`ENVIRONMENT`].
    pub manifests: Vec<Value>,
    /// The same manifests' source texts (byte mutations start from them).
    pub texts: Vec<String>,
    /// Template names and their parameter names.
    pub templates: Vec<(String, Vec<String>)>,
}

pub struct HubInputs {
    pub corpus: HubCorpus,
    /// The admin token: sent with every input but the `auth` class.
    pub token: String,
    /// The hub's body limit (`limits.max_body_bytes`): hostile bodies go around it.
    pub max_body: usize,
    bearer: String,
    suites: Vec<Value>,
    environments: Vec<Value>,
}

impl HubInputs {
    pub fn new(corpus: HubCorpus, token: String, max_body: usize) -> Self {
        assert!(
            !corpus.manifests.is_empty() && !corpus.templates.is_empty(),
            "the fuzz corpus needs manifests and templates"
        );
        let suites = suite_seeds(&corpus.manifests);
        let environments = environment_seeds();
        HubInputs {
            bearer: format!("Bearer {token}"),
            corpus,
            token,
            max_body,
            suites,
            environments,
        }
    }

    fn authed(&self, request: FuzzRequest) -> FuzzRequest {
        request.header("authorization", &self.bearer)
    }

    fn manifest(&self, rng: &mut Rng) -> Value {
        rng.pick(&self.corpus.manifests).clone()
    }

    /// A manifest body: mutated (structure or bytes), valid, with duplicate keys, a huge
    /// scalar, or random JSON.
    fn manifest_body(&self, rng: &mut Rng) -> (Option<String>, Vec<u8>) {
        let mut doc = self.manifest(rng);
        let (natural, text): (&'static str, Vec<u8>) = match rng.below(10) {
            0..=3 => {
                for _ in 0..rng.range(1, 3) {
                    mutate_value(rng, &mut doc);
                }
                encode(rng, &doc)
            }
            4 | 5 => {
                let mut bytes = if rng.percent(50) {
                    rng.pick(&self.corpus.texts).clone().into_bytes()
                } else {
                    encode(rng, &doc).1
                };
                let other = rng.pick(&self.corpus.texts).as_bytes();
                mutate_bytes(rng, &mut bytes, other);
                ("application/yaml", bytes)
            }
            6 => encode(rng, &doc),
            7 => {
                let (ct, text) = duplicate_key(rng, &doc);
                (ct, text.into_bytes())
            }
            8 => {
                let big = huge_scalar(rng, &doc);
                encode(rng, &big)
            }
            _ => (
                "application/json",
                random_value(rng, 4).to_string().into_bytes(),
            ),
        };
        (content_type(rng, natural), text)
    }

    /// Bodies meant to cost the server: alias and merge bombs, deep nesting, many documents,
    /// tags, a body over the limit, binary junk.
    fn hostile_body(&self, rng: &mut Rng) -> (Option<String>, Vec<u8>) {
        let doc = self.manifest(rng);
        let (natural, body): (&'static str, Vec<u8>) = match rng.below(9) {
            0 | 1 => ("application/yaml", alias_bomb(rng).into_bytes()),
            2 => ("application/yaml", merge_bomb(rng).into_bytes()),
            3 | 4 => {
                let (ct, text) = deep_nesting(rng);
                (ct, text.into_bytes())
            }
            5 => ("application/yaml", multi_document(rng, &doc).into_bytes()),
            6 => ("application/yaml", tagged_yaml(rng).into_bytes()),
            7 => {
                let n = self.max_body + rng.range(1, self.max_body);
                let mut v = b"{\"a\": \"".to_vec();
                v.resize(n, b'x');
                ("application/json", v)
            }
            _ => {
                let mut v: Vec<u8> = (0..rng.size(4096)).map(|_| rng.below(256) as u8).collect();
                if rng.percent(30) {
                    v.splice(0..0, [0xEF, 0xBB, 0xBF]);
                }
                ("application/yaml", v)
            }
        };
        (content_type(rng, natural), body)
    }

    fn template_request(&self, rng: &mut Rng) -> FuzzRequest {
        let (name, params) = rng.pick(&self.corpus.templates).clone();
        let mut parameters = serde_json::Map::new();
        for p in &params {
            if rng.percent(40) {
                parameters.insert(p.clone(), random_value(rng, 1));
            }
        }
        let mut body = json!({"parameters": parameters, "env": ENVIRONMENT});
        if rng.percent(30) {
            body["name"] = json!(super::random_string(rng));
        }
        if rng.percent(20) {
            body["namespace"] = json!(super::random_string(rng));
        }
        // A run is a plan only: templates never create experiments here.
        let run = rng.percent(40);
        for _ in 0..rng.below(3) {
            mutate_value(rng, &mut body);
        }
        if let (true, Some(fields)) = (run, body.as_object_mut()) {
            // Whatever the mutation did: a run that parses is a plan. (A body that is no longer
            // an object does not parse at all.)
            fields.insert("dryRun".into(), json!(true));
        }
        let name = if rng.percent(90) {
            percent_encode(name.as_bytes())
        } else {
            random_segment(rng, &[])
        };
        let path = format!(
            "/api/v1/templates/{name}/{}",
            if run { "run" } else { "render" }
        );
        let (ct, bytes) = encode(rng, &body);
        let ct = content_type(rng, ct);
        self.authed(FuzzRequest::new("template", Method::POST, path).body(ct.as_deref(), bytes))
    }

    fn suite_request(&self, rng: &mut Rng) -> FuzzRequest {
        let mut doc = rng.pick(&self.suites).clone();
        // Always mutated: a suite has no dry run, and a valid one starts a run.
        for _ in 0..rng.range(1, 3) {
            mutate_value(rng, &mut doc);
        }
        let (ct, mut bytes) = encode(rng, &doc);
        if rng.percent(25) {
            let other = rng.pick(&self.corpus.texts).as_bytes();
            mutate_bytes(rng, &mut bytes, other);
        }
        let ct = content_type(rng, ct);
        self.authed(
            FuzzRequest::new("suite", Method::POST, "/api/v1/suites").body(ct.as_deref(), bytes),
        )
    }

    fn environment_request(&self, rng: &mut Rng) -> FuzzRequest {
        let mut doc = rng.pick(&self.environments).clone();
        doc["metadata"]["name"] = json!(rng.pick(ENV_POOL));
        for _ in 0..rng.below(3) {
            mutate_value(rng, &mut doc);
        }
        let (ct, mut bytes) = encode(rng, &doc);
        if rng.percent(20) {
            let other = rng.pick(&self.corpus.texts).as_bytes();
            mutate_bytes(rng, &mut bytes, other);
        }
        let query = match rng.below(3) {
            0 => String::new(),
            1 => "?replace=true".into(),
            _ => format!("?{}", random_query(rng, &["replace"])),
        };
        let ct = content_type(rng, ct);
        self.authed(
            FuzzRequest::new(
                "environment",
                Method::POST,
                format!("/api/v1/environments{query}"),
            )
            .body(ct.as_deref(), bytes),
        )
    }

    /// A GET (or another method) on a route with random path parameters and query.
    fn query_request(&self, rng: &mut Rng) -> FuzzRequest {
        let ids = [
            "00000000-0000-0000-0000-000000000000",
            "fuzz",
            "default",
            "x",
        ];
        let envs = [ENVIRONMENT, "fuzz-0", "nope"];
        let templates: Vec<&str> = self
            .corpus
            .templates
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        let path = match rng.below(22) {
            0 => "/api/v1/experiments".to_string(),
            1 => "/api/v1/archives".to_string(),
            2 => format!("/api/v1/experiments/{}", random_segment(rng, &ids)),
            3 => "/api/v1/environments".to_string(),
            4 => format!("/api/v1/environments/{}", random_segment(rng, &envs)),
            5 => format!(
                "/api/v1/environments/{}/targets",
                random_segment(rng, &envs)
            ),
            6 => format!(
                "/api/v1/environments/{}/capabilities",
                random_segment(rng, &envs)
            ),
            7 => "/api/v1/agents".to_string(),
            8 => format!(
                "/api/v1/agents/{}/{}",
                random_segment(rng, &envs),
                random_segment(rng, &ids)
            ),
            9 => "/api/v1/events".to_string(),
            10 => "/api/v1/audit".to_string(),
            11 => "/api/v1/suites/runs".to_string(),
            12 => format!("/api/v1/suites/runs/{}", random_segment(rng, &ids)),
            13 => "/api/v1/templates".to_string(),
            14 => format!("/api/v1/templates/{}", random_segment(rng, &templates)),
            15 => "/api/v1/catalogs".to_string(),
            16 => format!(
                "/api/v1/catalogs/{}",
                random_segment(rng, &["builtin", "x"])
            ),
            17 => format!(
                "/api/v1/environments/{}/join-tokens",
                random_segment(rng, &envs)
            ),
            18 => rng
                .pick(&[
                    "/api/v1/halt",
                    "/api/v1/adapters",
                    "/api/v1/conformance",
                    "/api/v1/tokens",
                    "/healthz",
                    "/readyz",
                    "/metrics",
                ])
                .to_string(),
            19 => format!("/{}", random_segment(rng, &["api", "v1", "console"])),
            20 => format!(
                "/api/v1/{}/{}",
                random_segment(rng, &["experiments", "environments", "events"]),
                random_segment(rng, &ids)
            ),
            _ => format!(
                "/api/v1/experiments/{}/{}",
                random_segment(rng, &ids),
                rng.pick(&["pause", "resume", "stop", "x", ""])
            ),
        };
        let query = if rng.percent(85) {
            format!("?{}", random_query(rng, QUERY_KEYS))
        } else {
            String::new()
        };
        let method = match rng.below(20) {
            0 => Method::POST,
            1 => Method::DELETE,
            2 => Method::PUT,
            3 => Method::PATCH,
            4 => Method::HEAD,
            5 => Method::OPTIONS,
            6 => Method::from_bytes(b"FUZZ").expect("a token"),
            _ => Method::GET,
        };
        // Deletions only of what the generator itself may have made: never the environment
        // under test.
        let path = if method == Method::DELETE && path.contains(&format!("/{ENVIRONMENT}")) {
            path.replace(&format!("/{ENVIRONMENT}"), "/fuzz-0")
        } else {
            path
        };
        self.authed(FuzzRequest::new("query", method, format!("{path}{query}")))
    }

    /// A request with a broken credential to a route that needs one: answered 401, always.
    fn auth_request(&self, rng: &mut Rng) -> FuzzRequest {
        let (method, path) = rng
            .pick(&[
                (Method::GET, "/api/v1/experiments"),
                (Method::POST, "/api/v1/experiments?dryRun=true"),
                (Method::POST, "/api/v1/experiments"),
                (
                    Method::GET,
                    "/api/v1/experiments/00000000-0000-0000-0000-000000000000",
                ),
                (Method::POST, "/api/v1/experiments/x/stop"),
                (Method::DELETE, "/api/v1/experiments/x"),
                (Method::GET, "/api/v1/environments"),
                (Method::POST, "/api/v1/environments"),
                (Method::DELETE, "/api/v1/environments/fuzz"),
                (Method::GET, "/api/v1/events"),
                (Method::GET, "/api/v1/audit"),
                (Method::GET, "/api/v1/tokens"),
                (Method::POST, "/api/v1/tokens"),
                (Method::POST, "/api/v1/halt"),
                (Method::DELETE, "/api/v1/halt"),
                (Method::POST, "/api/v1/suites"),
                (Method::POST, "/api/v1/templates/network-delay/render"),
                (Method::GET, "/api/v1/agents"),
                (Method::GET, "/metrics"),
                (Method::GET, "/api/v1/openapi.json"),
                (Method::HEAD, "/api/v1/experiments"),
            ])
            .clone();
        let mut request = FuzzRequest::new("auth", method, path);
        if let Some(value) = bad_authorization(rng, &self.token) {
            request = request.header("authorization", value);
            if rng.percent(10) {
                // A second broken one: whichever the server reads, it is refused.
                let second = bad_authorization(rng, &self.token).unwrap_or_default();
                request = request.header("authorization", second);
            }
        }
        if rng.percent(50) {
            let (ct, body) = self.manifest_body(rng);
            request = request.body(ct.as_deref(), body);
        }
        // Mostly from many addresses, as a scan would come: the failed-authentication limiter
        // (which answers 429 after 30 failures a minute from one address) sees each rarely, so
        // every answer must still be 401, and its table of addresses must stay bounded.
        if rng.percent(70) {
            request.source = Some(random_source(rng));
        }
        request.expect = super::Expect::Unauthenticated;
        request
    }

    /// A dry run with unusual headers: repeated content types, encodings the server does not
    /// speak, huge or binary header values, SSE resume ids, forwarding headers.
    fn headers_request(&self, rng: &mut Rng) -> FuzzRequest {
        let (ct, body) = self.manifest_body(rng);
        let mut request = self.authed(
            FuzzRequest::new("headers", Method::POST, "/api/v1/experiments?dryRun=true")
                .body(ct.as_deref(), body),
        );
        for _ in 0..rng.range(1, 4) {
            let name = *rng.pick(&[
                "content-type",
                "content-encoding",
                "accept",
                "accept-encoding",
                "accept-language",
                "last-event-id",
                "x-forwarded-for",
                "x-request-id",
                "traceparent",
                "tracestate",
                "cookie",
                "origin",
                "expect",
                "user-agent",
                "if-none-match",
                "range",
            ]);
            let value = match rng.below(4) {
                0 => random_header_bytes(rng, 64),
                1 => random_header_bytes(rng, 100_000),
                2 => rng
                    .pick(&[
                        "gzip",
                        "br, deflate",
                        "application/json",
                        "text/html",
                        "100-continue",
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                        "chaoshub_session=x",
                        "bytes=0-1",
                        "*/*;q=0",
                    ])
                    .as_bytes()
                    .to_vec(),
                _ => b"application/yaml".to_vec(),
            };
            request = request.header(name, value);
        }
        request
    }

    /// Console pages and forms (HTML, cookie sessions), with random queries and form bodies.
    fn console_request(&self, rng: &mut Rng) -> FuzzRequest {
        let ids = ["00000000-0000-0000-0000-000000000000", "x"];
        let (method, path) = match rng.below(12) {
            0 => (Method::GET, "/".to_string()),
            1 => (Method::GET, "/experiments".to_string()),
            2 => (
                Method::GET,
                format!("/experiments/{}", random_segment(rng, &ids)),
            ),
            3 => (
                Method::POST,
                format!(
                    "/experiments/{}/{}",
                    random_segment(rng, &ids),
                    random_segment(rng, &["pause", "resume", "stop", "delete"])
                ),
            ),
            4 => (Method::GET, "/new".to_string()),
            5 => (Method::POST, "/new".to_string()),
            6 => (Method::GET, "/login".to_string()),
            7 => (Method::POST, "/login".to_string()),
            8 => (Method::GET, "/environments".to_string()),
            9 => (Method::GET, "/catalog".to_string()),
            10 => (
                Method::GET,
                format!("/suites/{}", random_segment(rng, &ids)),
            ),
            _ => (
                Method::GET,
                format!("/console/static/{}", random_segment(rng, &["app.css", "x"])),
            ),
        };
        let query = if rng.percent(60) {
            format!("?{}", random_query(rng, QUERY_KEYS))
        } else {
            String::new()
        };
        let mut request = FuzzRequest::new("console", method.clone(), format!("{path}{query}"));
        if method == Method::POST {
            let form = match rng.below(3) {
                0 => format!("token={}", percent_encode(self.token.as_bytes())),
                1 => format!(
                    "manifest={}&env={ENVIRONMENT}",
                    percent_encode(&self.manifest_body(rng).1)
                ),
                _ => random_query(rng, &["token", "manifest", "env", "csrf", "next"]),
            };
            request = request.body(Some("application/x-www-form-urlencoded"), form.into_bytes());
        }
        if rng.percent(50) {
            request = request.header(
                "cookie",
                format!("chaoshub_session={}", super::random_header_text(rng, 80)),
            );
        }
        request
    }

    /// Admin calls with generated bodies: tokens, join tokens, deletions of what the
    /// generator may have registered, halt status.
    /// The halt switch (set with odd bodies, released twice as often, so the hub is seldom
    /// halted for the other classes), remote catalogs added with odd names and loopback-only
    /// URLs (nothing leaves the machine: the URL is never mutated into another host), and the
    /// event stream with odd queries and `Last-Event-ID` headers (read up to its first frame).
    pub fn control_request(&self, rng: &mut Rng) -> FuzzRequest {
        let request = match rng.below(6) {
            0 => {
                let (ct, bytes) = match rng.below(4) {
                    0 => (Some("application/json".to_string()), Vec::new()),
                    1 => {
                        let mut body = json!({"reason": super::random_string(rng)});
                        for _ in 0..rng.below(3) {
                            mutate_value(rng, &mut body);
                        }
                        let (ct, bytes) = encode(rng, &body);
                        (content_type(rng, ct), bytes)
                    }
                    2 => (
                        Some("application/json".to_string()),
                        random_value(rng, 3).to_string().into_bytes(),
                    ),
                    _ => {
                        let mut bytes = br#"{"reason": "fuzz"}"#.to_vec();
                        let other = rng.pick(&self.corpus.texts).as_bytes();
                        mutate_bytes(rng, &mut bytes, other);
                        (content_type(rng, "application/json"), bytes)
                    }
                };
                FuzzRequest::new("control", Method::POST, "/api/v1/halt").body(ct.as_deref(), bytes)
            }
            1 | 2 => FuzzRequest::new("control", Method::DELETE, "/api/v1/halt"),
            3 | 4 => {
                let name = if rng.percent(70) {
                    json!(format!("fuzz-cat-{}", rng.below(3)))
                } else {
                    random_value(rng, 1)
                };
                let url = *rng.pick(&[
                    "http://127.0.0.1:9/index.yaml",
                    "http://127.0.0.1:1/",
                    "https://127.0.0.1:9/catalog/index.yaml",
                    "file:///etc/passwd",
                    "ftp://127.0.0.1/index.yaml",
                    "http://127.0.0.1:99999/index.yaml",
                    "not a url",
                    "",
                    "http://[::1]:9/index.yaml",
                    "unix:///nonexistent/fuzz.sock",
                ]);
                let mut body = json!({"name": name, "url": url});
                if rng.percent(25) {
                    body[super::random_string(rng)] = random_value(rng, 2);
                }
                if rng.percent(10) {
                    body = json!([body]);
                }
                let (ct, bytes) = encode(rng, &body);
                let ct = content_type(rng, ct);
                FuzzRequest::new("control", Method::POST, "/api/v1/catalogs")
                    .body(ct.as_deref(), bytes)
            }
            _ => {
                let query = if rng.percent(80) {
                    format!(
                        "?{}",
                        random_query(rng, &["experiment", "after", "since", "namespace", "x"])
                    )
                } else {
                    String::new()
                };
                let mut request = FuzzRequest::new(
                    "control",
                    Method::GET,
                    format!("/api/v1/events/stream{query}"),
                );
                if rng.percent(40) {
                    // Any visible text (a header value holds no control characters).
                    let id: String = super::random_string(rng)
                        .chars()
                        .filter(|c| c.is_ascii_graphic() || *c == ' ')
                        .collect();
                    let id = if rng.percent(50) {
                        rng.next_u64().to_string()
                    } else {
                        id
                    };
                    request = request.header("last-event-id", id);
                }
                request
            }
        };
        self.authed(request)
    }

    fn admin_request(&self, rng: &mut Rng) -> FuzzRequest {
        let request = match rng.below(5) {
            0 | 1 => {
                let mut body = json!({"name": format!("fuzz-{}", rng.below(4)), "role": rng.pick(&["viewer", "operator", "admin", "root", ""]), "namespaces": ["*"], "expires": rng.pick(&["30d", "1h", "-1d", "0s", "99999999d", "x"])});
                for _ in 0..rng.below(3) {
                    mutate_value(rng, &mut body);
                }
                let (ct, bytes) = encode(rng, &body);
                let ct = content_type(rng, ct);
                FuzzRequest::new("admin", Method::POST, "/api/v1/tokens").body(ct.as_deref(), bytes)
            }
            2 => FuzzRequest::new(
                "admin",
                Method::DELETE,
                format!(
                    "/api/v1/tokens/{}",
                    random_segment(rng, &["fuzz-0", "fuzz-1", "admin"])
                )
                .replace("/admin", "/fuzz-2"),
            ),
            3 => {
                let mut body = json!({"expires": rng.pick(&["1h", "x", "-1s"])});
                mutate_value(rng, &mut body);
                let (ct, bytes) = encode(rng, &body);
                FuzzRequest::new(
                    "admin",
                    Method::POST,
                    format!("/api/v1/environments/{}/join-tokens", rng.pick(ENV_POOL)),
                )
                .body(Some(ct), bytes)
            }
            _ => FuzzRequest::new(
                "admin",
                Method::DELETE,
                format!(
                    "/api/v1/environments/{}/join-tokens/{}",
                    rng.pick(ENV_POOL),
                    random_segment(rng, &["1", "x"])
                ),
            ),
        };
        self.authed(request)
    }
}

/// JSON (compact or pretty) or YAML, with the content type that names it.
fn encode(rng: &mut Rng, doc: &Value) -> (&'static str, Vec<u8>) {
    match rng.below(3) {
        0 => ("application/json", doc.to_string().into_bytes()),
        1 => (
            "application/json",
            serde_json::to_vec_pretty(doc).unwrap_or_default(),
        ),
        _ => ("application/yaml", to_yaml(doc).into_bytes()),
    }
}

fn suite_seeds(manifests: &[Value]) -> Vec<Value> {
    // Short experiments only (a valid suite runs), with probes against a closed loopback port.
    let mut seeds = Vec::new();
    for (i, m) in manifests.iter().enumerate().take(6) {
        let mut m = m.clone();
        if let Some(spec) = m.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("duration".into(), json!("1s"));
        }
        seeds.push(json!({
            "apiVersion": "chaoshub.dev/v1alpha1",
            "kind": "Suite",
            "metadata": {"name": format!("fuzz-suite-{i}")},
            "spec": {
                "environments": [ENVIRONMENT],
                "steadyState": {"interval": "200ms", "probes": [
                    {"name": "up", "http": {"url": "http://127.0.0.1:9/health", "timeout": "100ms", "expect": {"status": 200}}}
                ]},
                "timeouts": {"recovery": "2s"},
                "experiments": [{"name": "one", "expect": "hold", "manifest": m}]
            }
        }));
    }
    seeds
}

fn environment_seeds() -> Vec<Value> {
    vec![
        json!({"apiVersion": "chaoshub.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "fuzz-0"}, "spec": {"adapter": "fuzz"}}),
        json!({"apiVersion": "chaoshub.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "fuzz-0", "labels": {"team": "a"}}, "spec": {"adapter": "fuzz", "description": "d", "labels": {"zone": "z"}, "settings": {"allow": ["user-defined"], "maxTargets": 2, "protected": ["t"]}}}),
        json!({"apiVersion": "chaoshub.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "fuzz-0"}, "spec": {"adapter": "docker", "endpoint": "unix:///nonexistent/fuzz.sock"}}),
        json!({"apiVersion": "chaoshub.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "fuzz-0"}, "spec": {"adapter": "toxiproxy", "endpoint": "http://127.0.0.1:9"}}),
    ]
}

impl Inputs for HubInputs {
    fn next(&self, rng: &mut Rng, _index: u64) -> FuzzRequest {
        match rng.below(100) {
            0..=33 => {
                let (ct, body) = self.manifest_body(rng);
                self.authed(
                    FuzzRequest::new("manifest", Method::POST, "/api/v1/experiments?dryRun=true")
                        .body(ct.as_deref(), body),
                )
            }
            34..=41 => {
                let (ct, body) = self.hostile_body(rng);
                self.authed(
                    FuzzRequest::new("hostile", Method::POST, "/api/v1/experiments?dryRun=true")
                        .body(ct.as_deref(), body),
                )
            }
            42..=47 => self.template_request(rng),
            48 => self.suite_request(rng),
            49..=51 => self.environment_request(rng),
            52..=66 => self.query_request(rng),
            67..=81 => self.auth_request(rng),
            82..=88 => self.headers_request(rng),
            89..=92 => self.console_request(rng),
            93 | 94 => self.admin_request(rng),
            95 => self.control_request(rng),
            _ => {
                // A real submission (stored, run by the engine): stopped at once if accepted.
                let (ct, body) = self.manifest_body(rng);
                let query = if rng.percent(20) {
                    format!("?{}", random_query(rng, &["env", "dryRun"]))
                } else {
                    String::new()
                };
                self.authed(
                    FuzzRequest::new(
                        "submit",
                        Method::POST,
                        format!("/api/v1/experiments{query}"),
                    )
                    .body(ct.as_deref(), body),
                )
            }
        }
    }

    fn follow_up(&self, answer: &Answer<'_>) -> Option<FuzzRequest> {
        if answer.status != 201 || answer.request.method != Method::POST {
            return None;
        }
        let created: Value = serde_json::from_slice(answer.body).ok()?;
        let uid = created["metadata"]["uid"].as_str()?;
        if !answer.request.uri.starts_with("/api/v1/experiments")
            && !answer.request.uri.contains("/run")
        {
            return None;
        }
        Some(self.authed(FuzzRequest::new(
            "stop",
            Method::POST,
            format!(
                "/api/v1/experiments/{}/stop",
                percent_encode(uid.as_bytes())
            ),
        )))
    }
}
