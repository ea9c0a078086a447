//! HTTP probes: one request, judged by status, body text and a JSONPath value.

use std::sync::OnceLock;
use std::time::Duration;

use chaoshub_schema::probe::{parse_json_path, HttpProbe, JsonPathSegment};
use serde_json::Value;

use super::{excerpt, timeout_of};

/// Bodies larger than this are cut before they are matched (a probe is a health check, not a
/// download).
const MAX_BODY: usize = 1 << 20;

/// One client for every probe. Idle connections are not kept: a fault is often applied to
/// new connections only (a proxy toxic, a netem rule on SYNs), and a pooled connection opened
/// before the fault would hide it.
pub(crate) fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| build(reqwest::redirect::Policy::default()))
}

/// The client for a hub with `security.allowed_endpoints`: it follows no redirect (a 3xx is
/// the answer the probe judges), since a redirect could lead outside the list.
pub(crate) fn client_for(policy: &super::ProbePolicy) -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if policy.endpoints.allows_everything() {
        return client();
    }
    CLIENT.get_or_init(|| build(reqwest::redirect::Policy::none()))
}

fn build(redirects: reqwest::redirect::Policy) -> reqwest::Client {
    chaoshub_adapters::install_crypto_provider();
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .redirect(redirects)
        .user_agent(concat!("chaoshub-probe/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Sends the request; `Ok(evidence)` when every expectation holds, `Err(evidence)` otherwise.
pub async fn check(spec: &HttpProbe, client: &reqwest::Client) -> Result<String, String> {
    let timeout = timeout_of(&spec.timeout);
    let method = reqwest::Method::from_bytes(spec.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("unsupported method {:?}", spec.method))?;
    let mut request = client.request(method.clone(), &spec.url).timeout(timeout);
    for (name, value) in &spec.headers {
        request = request.header(name, value);
    }
    if let Some(body) = &spec.body {
        request = request.body(body.clone());
    }
    let target = format!("{method} {}", spec.url);
    let started = std::time::Instant::now();
    let exchange = async {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response.chunk().await? {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_BODY {
                body.truncate(MAX_BODY);
                break;
            }
        }
        Ok::<_, reqwest::Error>((status, body))
    };
    // The client timeout covers the whole exchange; the outer one is a backstop.
    let (status, body) =
        match tokio::time::timeout(timeout + Duration::from_millis(50), exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) if e.is_timeout() => {
                return Err(format!(
                    "{target}: no answer within {} ms",
                    timeout.as_millis()
                ))
            }
            Ok(Err(e)) => return Err(format!("{target}: {}", error_chain(&e))),
            Err(_) => {
                return Err(format!(
                    "{target}: no answer within {} ms",
                    timeout.as_millis()
                ))
            }
        };
    let elapsed = started.elapsed().as_millis();
    let text = String::from_utf8_lossy(&body);
    let evidence = format!(
        "{target} → {status} in {elapsed} ms, body: {:?}",
        excerpt(&text, 160)
    );
    let (lo, hi) = match &spec.expect.status {
        Some(s) => s
            .range()
            .map_err(|e| format!("{target}: status expectation {e}"))?,
        None => (200, 399),
    };
    if !(lo..=hi).contains(&status) {
        let wanted = if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}-{hi}")
        };
        return Err(format!("expected status {wanted}; {evidence}"));
    }
    if let Some(needle) = &spec.expect.body_contains {
        if !text.contains(needle.as_str()) {
            return Err(format!(
                "expected the body to contain {needle:?}; {evidence}"
            ));
        }
    }
    if let Some(jp) = &spec.expect.json_path {
        let document: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("expected a JSON body for {}: {e}; {evidence}", jp.path))?;
        let segments = parse_json_path(&jp.path).map_err(|e| format!("{e}; {evidence}"))?;
        let found = select(&document, &segments);
        if found.is_empty() {
            return Err(format!("JSONPath {} matched nothing; {evidence}", jp.path));
        }
        if let Some(expected) = &jp.equals {
            if let Some(other) = found.iter().find(|v| !json_equal(v, expected)) {
                return Err(format!(
                    "JSONPath {} is {other}, expected {expected}; {evidence}",
                    jp.path
                ));
            }
        }
    }
    Ok(evidence)
}

/// Numbers compare by value (1 == 1.0); everything else structurally.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Every value the path selects.
pub fn select<'a>(document: &'a Value, segments: &[JsonPathSegment]) -> Vec<&'a Value> {
    let mut current = vec![document];
    for segment in segments {
        let mut next = Vec::new();
        for value in current {
            match (segment, value) {
                (JsonPathSegment::Key(k), Value::Object(map)) => next.extend(map.get(k)),
                (JsonPathSegment::Index(i), Value::Array(items)) => next.extend(items.get(*i)),
                (JsonPathSegment::Any, Value::Array(items)) => next.extend(items.iter()),
                (JsonPathSegment::Any, Value::Object(map)) => next.extend(map.values()),
                _ => {}
            }
        }
        current = next;
    }
    current
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(&format!(": {s_text}"));
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_path_selection() {
        let doc = json!({"a": {"b": [1, {"c": true}]}, "xs": [{"ok": 1}, {"ok": 1.0}]});
        let sel = |p: &str| {
            select(&doc, &parse_json_path(p).unwrap())
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(sel("$.a.b[1].c"), vec![json!(true)]);
        assert_eq!(sel("$.xs[*].ok").len(), 2);
        assert!(sel("$.a.zz").is_empty());
        assert!(json_equal(&json!(1), &json!(1.0)));
    }
}
