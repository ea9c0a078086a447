//! Probes: checks of a system's health that suites, stop conditions and workflows evaluate.
//!
//! A probe is exactly one of `http`, `prometheus`, `command`, `tcp` or `statusCheck` (Chaos
//! Mesh's `StatusCheck` spec, run by the same engine). Every string of a probe may use
//! `{{ environment.name }}` and `{{ environment.labels.<key> }}`, filled in per environment
//! before the probe runs, so one suite reaches each environment's own service. Validation
//! here is pure; the hub runs probes (`hub/src/probes/`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chaosmesh::StatusCheckSpec;
use crate::duration::parse_duration;
use crate::error::{join_path, ValidationErrors};
use crate::validate::Validate;

/// The annotation that carries an experiment's stop conditions: a YAML or JSON list of
/// probes. An annotation (and not a new envelope field) keeps the manifest a valid Chaos Mesh
/// object that `kubectl apply` still accepts unchanged.
pub const STOP_CONDITIONS_ANNOTATION: &str = "chaoshub.dev/stop-conditions";

fn default_failure_threshold() -> u32 {
    1
}
fn default_timeout() -> String {
    "5s".into()
}
fn default_method() -> String {
    "GET".into()
}

/// One probe. Exactly one of `http`, `prometheus`, `command`, `tcp`, `statusCheck`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProbeSpec {
    /// Name shown in reports and in the reason of an aborted experiment.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProbe>,
    /// A Chaos Mesh `StatusCheck` spec; one evaluation runs the whole check (its own
    /// interval, thresholds and mode) and passes when it succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_check: Option<StatusCheckSpec>,
    /// Tolerance: consecutive failed evaluations before the probe counts as failed (during a
    /// fault, as a stop condition). Default 1: the first failure counts.
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1, max = 1000))]
    pub failure_threshold: u32,
}

/// An HTTP request and what its answer must look like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpProbe {
    /// `http://` or `https://` URL.
    pub url: String,
    /// GET (default), HEAD, POST, PUT, PATCH or DELETE.
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The whole exchange must finish within this (`500ms`, `2s`). Default 5s.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    #[serde(default)]
    pub expect: HttpExpect,
}

/// Expectations on an HTTP answer; all given ones must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpExpect {
    /// A status code (`200`) or an inclusive range (`"200-399"`). Default `200-399`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusExpectation>,
    /// The body must contain this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// The body is JSON and the value at this path exists (and equals `equals` if given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<JsonPathExpect>,
}

/// `200` or `"200-299"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum StatusExpectation {
    Code(u16),
    Text(String),
}

impl StatusExpectation {
    /// The inclusive range this expectation accepts, or why it is malformed.
    pub fn range(&self) -> Result<(u16, u16), String> {
        let code = |s: &str| {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
        };
        let bad =
            |t: &str| format!("must be a status code (200) or a range (\"200-299\"); got {t:?}");
        match self {
            StatusExpectation::Code(c) if (100..=599).contains(c) => Ok((*c, *c)),
            StatusExpectation::Code(c) => Err(bad(&c.to_string())),
            StatusExpectation::Text(t) => match t.split_once('-') {
                Some((lo, hi)) => match (code(lo), code(hi)) {
                    (Some(l), Some(h)) if l <= h => Ok((l, h)),
                    _ => Err(bad(t)),
                },
                None => code(t).map(|c| (c, c)).ok_or_else(|| bad(t)),
            },
        }
    }
}

/// A JSONPath subset: `$`, `.key`, `['key']`, `[index]`, `[*]` / `.*` (any element).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JsonPathExpect {
    /// For example `$.status` or `$.checks[0].ok`.
    pub path: String,
    /// The value found must equal this (any JSON value); with a wildcard, every value found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
}

/// A PromQL instant query against a Prometheus server, compared with a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusProbe {
    /// Base URL of the Prometheus server (`http://prometheus:9090`); `/api/v1/query` is
    /// appended.
    pub url: String,
    pub query: String,
    /// How every sample compares with `threshold`: `<`, `<=`, `>`, `>=`, `==`, `!=`.
    pub comparison: Comparison,
    pub threshold: f64,
    /// Whether an empty result passes. Default false: no data is a failure.
    #[serde(default)]
    pub allow_empty: bool,
    #[serde(default = "default_timeout")]
    pub timeout: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Comparison {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Comparison {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Lt => value < threshold,
            Comparison::Le => value <= threshold,
            Comparison::Gt => value > threshold,
            Comparison::Ge => value >= threshold,
            Comparison::Eq => value == threshold,
            Comparison::Ne => value != threshold,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Eq => "==",
            Comparison::Ne => "!=",
        }
    }
}

/// A program run without a shell, judged by its exit code and standard output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandProbe {
    /// Program and arguments (`["curl", "-sf", "http://…"]`); no shell is involved.
    pub run: Vec<String>,
    #[serde(default = "default_timeout")]
    pub timeout: String,
    #[serde(default)]
    pub expect: CommandExpect,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandExpect {
    /// Expected exit code. Default 0.
    #[serde(default)]
    pub exit_code: i32,
    /// Standard output must contain this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_contains: Option<String>,
    /// Standard output, without surrounding whitespace, must equal this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_equals: Option<String>,
}

/// A TCP connection that must be accepted within the timeout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpProbe {
    /// `host:port`.
    pub address: String,
    #[serde(default = "default_timeout")]
    pub timeout: String,
}

/// What one probe evaluation found (in suite journals and experiment records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeResult {
    pub probe: String,
    /// RFC 3339 time the evaluation started.
    pub at: String,
    pub ok: bool,
    pub duration_ms: u64,
    /// The evidence: status and body excerpt, the samples, the exit code and output…
    pub detail: String,
}

/// Whether a string holds a `{{ … }}` placeholder, in which case its content is checked only
/// after the environment's values are filled in.
fn templated(text: &str) -> bool {
    text.contains("{{")
}

fn check_timeout(text: &str, path: &str, errors: &mut ValidationErrors) {
    if templated(text) {
        return;
    }
    match parse_duration(text) {
        Ok(d) if d.is_zero() => errors.push(path, "must be longer than zero"),
        Ok(_) => {}
        Err(e) => errors.push(path, e),
    }
}

fn check_url(url: &str, path: &str, errors: &mut ValidationErrors) {
    if !(url.starts_with("http://") || url.starts_with("https://") || url.starts_with("{{")) {
        errors.push(
            path,
            format!("must be an http:// or https:// URL; got {url:?}"),
        );
    }
}

/// Checks a JSONPath of the supported subset; the hub's evaluator uses the same grammar.
pub fn parse_json_path(path: &str) -> Result<Vec<JsonPathSegment>, String> {
    let bad = |why: &str| {
        format!("{why} in JSONPath {path:?} (supported: $, .key, ['key'], [0], [*], .*)")
    };
    let rest = path
        .trim()
        .strip_prefix('$')
        .ok_or_else(|| bad("must start with $"))?;
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let key: String = chars[start..i].iter().collect();
                match key.as_str() {
                    "" => return Err(bad("empty key")),
                    "*" => out.push(JsonPathSegment::Any),
                    _ => out.push(JsonPathSegment::Key(key)),
                }
            }
            '[' => {
                let close = chars[i..]
                    .iter()
                    .position(|c| *c == ']')
                    .map(|p| p + i)
                    .ok_or_else(|| bad("unclosed ["))?;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                if inner == "*" {
                    out.push(JsonPathSegment::Any);
                } else if let Some(key) = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                {
                    out.push(JsonPathSegment::Key(key.to_string()));
                } else {
                    let index = inner
                        .parse::<usize>()
                        .map_err(|_| bad(&format!("unsupported selector [{inner}]")))?;
                    out.push(JsonPathSegment::Index(index));
                }
                i = close + 1;
            }
            c => return Err(bad(&format!("unexpected {c:?}"))),
        }
    }
    Ok(out)
}

/// One step of a parsed JSONPath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonPathSegment {
    Key(String),
    Index(usize),
    Any,
}

impl ProbeSpec {
    /// Which probe type this is (`http`, `prometheus`, …), for reports.
    pub fn probe_type(&self) -> &'static str {
        if self.http.is_some() {
            "http"
        } else if self.prometheus.is_some() {
            "prometheus"
        } else if self.command.is_some() {
            "command"
        } else if self.tcp.is_some() {
            "tcp"
        } else if self.status_check.is_some() {
            "statusCheck"
        } else {
            "none"
        }
    }
}

impl Validate for ProbeSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        if self.name.trim().is_empty() {
            errors.push(join_path(path, "name"), "must not be empty");
        }
        let given = [
            self.http.is_some(),
            self.prometheus.is_some(),
            self.command.is_some(),
            self.tcp.is_some(),
            self.status_check.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            errors.push(
                path,
                format!("a probe needs exactly one of http, prometheus, command, tcp, statusCheck; got {given}"),
            );
        }
        if self.failure_threshold == 0 {
            errors.push(join_path(path, "failureThreshold"), "must be at least 1");
        }
        if let Some(http) = &self.http {
            let p = join_path(path, "http");
            check_url(&http.url, &join_path(&p, "url"), errors);
            if !templated(&http.method)
                && !matches!(
                    http.method.to_ascii_uppercase().as_str(),
                    "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE"
                )
            {
                errors.push(
                    join_path(&p, "method"),
                    format!(
                        "must be GET, HEAD, POST, PUT, PATCH or DELETE; got {:?}",
                        http.method
                    ),
                );
            }
            check_timeout(&http.timeout, &join_path(&p, "timeout"), errors);
            let e = join_path(&p, "expect");
            if let Some(status) = &http.expect.status {
                if let Err(message) = status.range() {
                    errors.push(join_path(&e, "status"), message);
                }
            }
            if let Some(jp) = &http.expect.json_path {
                if let Err(message) = parse_json_path(&jp.path) {
                    errors.push(join_path(&join_path(&e, "jsonPath"), "path"), message);
                }
            }
        }
        if let Some(prom) = &self.prometheus {
            let p = join_path(path, "prometheus");
            check_url(&prom.url, &join_path(&p, "url"), errors);
            if prom.query.trim().is_empty() {
                errors.push(join_path(&p, "query"), "must not be empty");
            }
            if !prom.threshold.is_finite() {
                errors.push(join_path(&p, "threshold"), "must be a finite number");
            }
            check_timeout(&prom.timeout, &join_path(&p, "timeout"), errors);
        }
        if let Some(command) = &self.command {
            let p = join_path(path, "command");
            if command.run.first().is_none_or(|c| c.trim().is_empty()) {
                errors.push(
                    join_path(&p, "run"),
                    "must name a program (and its arguments): [\"curl\", \"-sf\", \"http://…\"]",
                );
            }
            check_timeout(&command.timeout, &join_path(&p, "timeout"), errors);
        }
        if let Some(tcp) = &self.tcp {
            let p = join_path(path, "tcp");
            let ok = templated(&tcp.address)
                || tcp
                    .address
                    .rsplit_once(':')
                    .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                errors.push(
                    join_path(&p, "address"),
                    format!("must be host:port; got {:?}", tcp.address),
                );
            }
            check_timeout(&tcp.timeout, &join_path(&p, "timeout"), errors);
        }
        if let Some(check) = &self.status_check {
            check.validate(&join_path(path, "statusCheck"), errors);
        }
    }
}

/// Validates a list of probes under `path` (`path[i]…`), including unique names.
pub fn validate_probes(probes: &[ProbeSpec], path: &str, errors: &mut ValidationErrors) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, probe) in probes.iter().enumerate() {
        let p = format!("{path}[{i}]");
        probe.validate(&p, errors);
        if !seen.insert(probe.name.as_str()) {
            errors.push(
                join_path(&p, "name"),
                format!("probe name {:?} is used twice", probe.name),
            );
        }
    }
}

/// Reads the stop conditions of a manifest's annotations (YAML or JSON list of probes), with
/// field paths under the annotation. `Ok(empty)` when there is no annotation.
pub fn stop_conditions(
    annotations: &BTreeMap<String, String>,
) -> Result<Vec<ProbeSpec>, ValidationErrors> {
    let Some(text) = annotations.get(STOP_CONDITIONS_ANNOTATION) else {
        return Ok(Vec::new());
    };
    let path = format!("metadata.annotations[\"{STOP_CONDITIONS_ANNOTATION}\"]");
    let value = match crate::document::yaml_documents(text) {
        Ok(mut docs) if docs.len() <= 1 => docs.pop().unwrap_or(Value::Null),
        Ok(docs) => {
            return Err(ValidationErrors::single(
                path,
                format!(
                    "must be one YAML or JSON list of probes, not {} documents",
                    docs.len()
                ),
            ))
        }
        Err(e) => {
            return Err(ValidationErrors::single(
                path.clone(),
                format!("must be a YAML or JSON list of probes: {e}"),
            ))
        }
    };
    parse_probes(value, &path)
}

/// Checks a JSON value as a list of probes (structure, then semantics), with paths under `path`.
pub fn parse_probes(value: Value, path: &str) -> Result<Vec<ProbeSpec>, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    crate::structure::check_value::<Vec<ProbeSpec>>(&value, path, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let probes: Vec<ProbeSpec> = serde_json::from_value(value)
        .map_err(|e| ValidationErrors::single(path.to_string(), e.to_string()))?;
    validate_probes(&probes, path, &mut errors);
    errors.into_result().map(|_| probes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_expectations() {
        assert_eq!(StatusExpectation::Code(200).range(), Ok((200, 200)));
        assert_eq!(
            StatusExpectation::Text("200-399".into()).range(),
            Ok((200, 399))
        );
        assert!(StatusExpectation::Text("399-200".into()).range().is_err());
        assert!(StatusExpectation::Code(42).range().is_err());
    }

    #[test]
    fn json_paths() {
        assert_eq!(
            parse_json_path("$.a['b c'][2].*").unwrap(),
            vec![
                JsonPathSegment::Key("a".into()),
                JsonPathSegment::Key("b c".into()),
                JsonPathSegment::Index(2),
                JsonPathSegment::Any
            ]
        );
        assert!(parse_json_path("$").unwrap().is_empty());
        for bad in ["a.b", "$..a", "$[x]", "$[0"] {
            assert!(parse_json_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stop_conditions_come_from_the_annotation_with_paths() {
        let mut annotations = BTreeMap::new();
        assert!(stop_conditions(&annotations).unwrap().is_empty());
        annotations.insert(
            STOP_CONDITIONS_ANNOTATION.to_string(),
            "- name: web\n  http: {url: 'http://x/', expect: {status: '200-299'}}\n".into(),
        );
        let probes = stop_conditions(&annotations).unwrap();
        assert_eq!(probes[0].probe_type(), "http");
        annotations.insert(
            STOP_CONDITIONS_ANNOTATION.to_string(),
            "- name: web\n  http: {url: 'ftp://x/', timeut: 1s}\n".into(),
        );
        let errors = stop_conditions(&annotations).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert!(
            paths.iter().any(|p| p.ends_with("[0].http.timeut")),
            "{paths:?}"
        );
        annotations.insert(
            STOP_CONDITIONS_ANNOTATION.to_string(),
            "- name: web\n  http: {url: 'ftp://x/'}\n  tcp: {address: nope}\n".into(),
        );
        let errors = stop_conditions(&annotations).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert!(
            paths.iter().any(|p| p.ends_with("[0].http.url")),
            "{paths:?}"
        );
        assert!(
            paths.iter().any(|p| p.ends_with("[0].tcp.address")),
            "{paths:?}"
        );
    }
}
