//! Inputs for the agent's local REST API: fault bodies of every type (mutated, hostile, valid
//! with odd ids and durations), fault ids in paths, queries, and malformed credentials. Faults
//! the API accepts are deleted at once (the driver's follow-up).

use axum::http::Method;
use serde_json::{json, Value};

use super::{
    bad_authorization, content_type, deep_nesting, duplicate_key, huge_scalar, mutate_bytes,
    mutate_value, percent_encode, random_number, random_query, random_segment, random_string,
    random_value, Answer, Expect, FuzzRequest, Inputs, Rng,
};

/// One valid body per fault type (the targets do not exist: nothing would be hit even by a
/// real injector; the fuzz drivers use injectors whose `apply` does nothing).
pub fn fault_seeds() -> Vec<Value> {
    let faults = [
        json!({"type": "network", "action": "delay", "netns": {"path": "/run/netns/chaoshub-fuzz-absent"}, "latencyMs": 100.0, "jitterMs": 5.0, "filter": {"direction": "to", "cidrs": ["198.18.0.0/15"], "ports": [80]}}),
        json!({"type": "network", "action": "loss", "netns": {"pid": 999_999_999u32}, "percent": 10.0}),
        json!({"type": "network", "action": "bandwidth", "device": "fuzz0", "rateBps": 1_000_000, "limitBytes": 10_000, "bufferBytes": 1600}),
        json!({"type": "network", "action": "dns", "dnsPatterns": ["*.example"], "dnsMode": "error"}),
        json!({"type": "stress", "cpu": {"workers": 1, "loadPct": 10}}),
        json!({"type": "stress", "memory": {"sizeBytes": 1024, "workers": 1}}),
        json!({"type": "process", "action": "kill", "pid": 999_999_999u32, "signal": 15}),
        json!({"type": "process", "action": "stop", "pattern": "^chaoshub-fuzz-no-such-process$"}),
        json!({"type": "disk", "action": "fill", "path": "/nonexistent/chaoshub-fuzz", "sizeBytes": 1024}),
        json!({"type": "file", "action": "create", "path": "/nonexistent/chaoshub-fuzz/x", "data": "x"}),
        json!({"type": "file", "action": "rename", "path": "/nonexistent/a", "origin": "/nonexistent/a", "dest": "/nonexistent/b"}),
        json!({"type": "clock", "offsetMs": 1000}),
        json!({"type": "host-power", "action": "reboot"}),
        json!({"type": "user-defined", "attackCmd": "true", "recoverCmd": "true"}),
    ];
    faults
        .into_iter()
        .map(|fault| json!({"fault": fault, "durationMs": 60_000}))
        .collect()
}

pub struct AgentInputs {
    seeds: Vec<Value>,
    texts: Vec<String>,
    /// The REST token: sent with every input but the `auth` class.
    token: String,
    bearer: String,
}

impl AgentInputs {
    pub fn new(token: String) -> Self {
        let seeds = fault_seeds();
        let texts = seeds.iter().map(Value::to_string).collect();
        AgentInputs {
            seeds,
            texts,
            bearer: format!("Bearer {token}"),
            token,
        }
    }

    fn authed(&self, request: FuzzRequest) -> FuzzRequest {
        request.header("authorization", &self.bearer)
    }

    fn fault_body(&self, rng: &mut Rng) -> (Option<String>, Vec<u8>) {
        let mut doc = rng.pick(&self.seeds).clone();
        let body = match rng.below(8) {
            0..=2 => {
                for _ in 0..rng.range(1, 3) {
                    mutate_value(rng, &mut doc);
                }
                doc.to_string().into_bytes()
            }
            3 | 4 => {
                let mut bytes = doc.to_string().into_bytes();
                let other = rng.pick(&self.texts).as_bytes();
                mutate_bytes(rng, &mut bytes, other);
                bytes
            }
            5 => {
                let (_, text) = duplicate_key(rng, &doc["fault"]);
                format!("{{\"durationMs\": 1000, \"fault\": {text}}}").into_bytes()
            }
            6 => match rng.below(3) {
                0 => deep_nesting(rng).1.into_bytes(),
                1 => huge_scalar(rng, &doc).to_string().into_bytes(),
                _ => random_value(rng, 4).to_string().into_bytes(),
            },
            _ => {
                // Valid but for the edges: ids and durations.
                doc["id"] = match rng.below(4) {
                    0 => json!(random_string(rng)),
                    1 => json!("a".repeat(rng.size(100_000))),
                    2 => json!(format!("../{}", random_string(rng))),
                    _ => json!(format!("fuzz-{}", rng.next_u64())),
                };
                doc["durationMs"] = match rng.below(5) {
                    0 => json!(rng.pick(&[
                        0u64,
                        1,
                        86_400_000,
                        86_400_001,
                        u64::MAX,
                        i64::MAX as u64
                    ])),
                    1 => random_number(rng),
                    _ => json!(rng.range(1, 120_000)),
                };
                doc.to_string().into_bytes()
            }
        };
        (content_type(rng, "application/json"), body)
    }
}

impl Inputs for AgentInputs {
    fn next(&self, rng: &mut Rng, _index: u64) -> FuzzRequest {
        match rng.below(100) {
            0..=59 => {
                let (ct, body) = self.fault_body(rng);
                self.authed(
                    FuzzRequest::new("fault", Method::POST, "/api/v1/faults")
                        .body(ct.as_deref(), body),
                )
            }
            60..=74 => {
                let method = rng
                    .pick(&[Method::GET, Method::DELETE, Method::POST, Method::PUT])
                    .clone();
                let id = random_segment(rng, &["fuzz-1", "local-x", "x"]);
                self.authed(FuzzRequest::new(
                    "fault-id",
                    method,
                    format!("/api/v1/faults/{id}"),
                ))
            }
            75..=84 => {
                let path = rng.pick(&[
                    "/api/v1/faults",
                    "/api/v1/status",
                    "/metrics",
                    "/healthz",
                    "/",
                    "/api/v1/x",
                ]);
                let query = random_query(rng, &["id", "limit", "watch"]);
                self.authed(FuzzRequest::new(
                    "query",
                    Method::GET,
                    format!("{path}?{query}"),
                ))
            }
            _ => {
                let (method, path) = rng
                    .pick(&[
                        (Method::GET, "/api/v1/faults"),
                        (Method::POST, "/api/v1/faults"),
                        (Method::GET, "/api/v1/status"),
                        (Method::DELETE, "/api/v1/faults/fuzz-1"),
                        (Method::GET, "/metrics"),
                    ])
                    .clone();
                let mut request = FuzzRequest::new("auth", method, path);
                if let Some(value) = bad_authorization(rng, &self.token) {
                    request = request.header("authorization", value);
                }
                if rng.percent(50) {
                    let (ct, body) = self.fault_body(rng);
                    request = request.body(ct.as_deref(), body);
                }
                request.expect = Expect::Unauthenticated;
                request
            }
        }
    }

    fn follow_up(&self, answer: &Answer<'_>) -> Option<FuzzRequest> {
        if answer.status != 201 {
            return None;
        }
        let created: Value = serde_json::from_slice(answer.body).ok()?;
        let id = percent_encode(created["id"].as_str()?.as_bytes());
        // An id too long for a URI (the API takes ids of any length in a body) stays until its
        // lease ends.
        (id.len() < 60_000).then(|| {
            self.authed(FuzzRequest::new(
                "delete",
                Method::DELETE,
                format!("/api/v1/faults/{id}"),
            ))
        })
    }
}
