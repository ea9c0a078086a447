//! HTTPChaos → the runtime keys one fault filter reads. Pure: the filter's configuration and the
//! experiment go in, the key/value pairs to post (or the reason it cannot be done) come out.
//!
//! Chaos Mesh's HTTPChaos has no probability and no throughput limit, and a spec field would
//! make a manifest Chaos Mesh itself rejects, so both are chaoshub annotations on the
//! experiment's `metadata.annotations` (docs/adapters/envoy.md).

use std::collections::BTreeMap;

use chaoshub_schema::chaosmesh::http::{HTTPChaosSpec, HTTPTarget};
use chaoshub_schema::duration::parse_duration;
use serde_json::{json, Value};

use super::discovery::{
    AbortBlock, DelayBlock, FaultFilter, HeaderMatch, RateLimitBlock, RuntimeKeys,
};
use crate::AdapterError;

/// Share of requests hit, an integer percent 0–100 (Envoy reads integer runtime percents out of
/// 100). Default 100.
pub const PERCENT_ANNOTATION: &str = "chaoshub.dev/percent";
/// HTTP status of aborted requests, 200–599. Default: the filter's configured `http_status`.
pub const ABORT_STATUS_ANNOTATION: &str = "chaoshub.dev/abort-status";
/// Switches on the filter's response throughput limit; must equal its configured `limit_kbps`
/// (runtime can switch the limit on, not change its rate).
pub const RESPONSE_LIMIT_ANNOTATION: &str = "chaoshub.dev/response-limit-kbps";
/// Applies the fault only to requests from this downstream cluster
/// (`x-envoy-downstream-service-cluster`), through Envoy's per-cluster runtime keys.
pub const DOWNSTREAM_CLUSTER_ANNOTATION: &str = "chaoshub.dev/downstream-cluster";
/// `allow`: inject even though other listeners' fault filters read the same runtime keys (and so
/// get the fault too).
pub const SHARED_KEYS_ANNOTATION: &str = "chaoshub.dev/shared-runtime-keys";

const KIND: &str = "HTTPChaos";

/// What to post to `/runtime_modify`, and a summary for the injection's details.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimePlan {
    pub set: BTreeMap<String, String>,
    pub summary: Value,
    /// Whether the plan uses the filter's own keys (shared with other filters reading them)
    /// rather than per-downstream-cluster keys.
    pub uses_filter_keys: bool,
}

fn unsupported(action: &str, message: impl Into<String>) -> AdapterError {
    AdapterError::Unsupported {
        kind: KIND.into(),
        action: action.into(),
        message: message.into(),
    }
}

fn annotation_error(key: &str, message: impl std::fmt::Display) -> AdapterError {
    AdapterError::Rejected(format!("metadata.annotations[\"{key}\"]: {message}"))
}

fn integer_annotation(
    annotations: &BTreeMap<String, String>,
    key: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, AdapterError> {
    match annotations.get(key) {
        None => Ok(None),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(annotation_error(
                key,
                format!("must be an integer from {min} to {max}, got {text:?}"),
            )),
        },
    }
}

/// The runtime keys and values that make `filter` apply the experiment's fault.
pub fn plan_runtime(
    spec: &HTTPChaosSpec,
    annotations: &BTreeMap<String, String>,
    filter: &FaultFilter,
    target_port: Option<u16>,
) -> Result<RuntimePlan, AdapterError> {
    let actions = action_names(spec);
    let action = actions.join(",");
    if spec.replace.is_some() || spec.patch.is_some() {
        return Err(unsupported(
            if spec.replace.is_some() {
                "replace"
            } else {
                "patch"
            },
            "Envoy's fault filter can abort, delay and limit throughput; it cannot replace or \
             patch requests",
        ));
    }
    if spec.target != HTTPTarget::Request {
        return Err(unsupported(
            &action,
            "Envoy's fault filter acts on requests before they are routed: use target: Request",
        ));
    }
    if spec.tls.is_some() {
        return Err(unsupported(
            &action,
            "tls is not needed here: Envoy terminates the connection itself; remove spec.tls",
        ));
    }
    if let (Some(wanted), Some(actual)) = (spec.port, target_port) {
        if i64::from(wanted) != i64::from(actual) {
            return Err(AdapterError::Rejected(format!(
                "spec.port: {wanted} selects a service port, but the selected listener listens \
                 on {actual}"
            )));
        }
    }
    check_request_filters(spec, filter, &action)?;

    let percent = integer_annotation(annotations, PERCENT_ANNOTATION, 0, 100)?.unwrap_or(100);
    let abort_status = integer_annotation(annotations, ABORT_STATUS_ANNOTATION, 200, 599)?;
    let limit_kbps = integer_annotation(annotations, RESPONSE_LIMIT_ANNOTATION, 1, u64::MAX)?;
    let downstream = annotations
        .get(DOWNSTREAM_CLUSTER_ANNOTATION)
        .map(|c| c.trim());
    if let Some(cluster) = downstream {
        if cluster.is_empty() || cluster.contains(|c: char| c.is_whitespace() || c == '=') {
            return Err(annotation_error(
                DOWNSTREAM_CLUSTER_ANNOTATION,
                format!("must be a downstream cluster name, got {cluster:?}"),
            ));
        }
    }
    let keys = match downstream {
        Some(cluster) => RuntimeKeys::for_downstream_cluster(cluster),
        None => filter.keys.clone(),
    };

    let mut set = BTreeMap::new();
    let mut summary = serde_json::Map::new();
    summary.insert("percent".into(), json!(percent));
    if spec.abort == Some(true) {
        let configured =
            match &filter.abort {
                Some(AbortBlock::HttpStatus(status)) => *status,
                Some(AbortBlock::GrpcStatus(_)) => return Err(unsupported(
                    "abort",
                    "the filter's abort block sets a gRPC status; runtime can only override an \
                     HTTP abort (set abort.http_status in the filter)",
                )),
                Some(AbortBlock::Header) => {
                    return Err(unsupported(
                        "abort",
                        "the filter's abort block takes its status from a request header \
                     (header_abort); runtime cannot force it (configure abort.http_status)",
                    ))
                }
                None => return Err(unsupported(
                    "abort",
                    "the listener's fault filter has no abort block, and runtime cannot enable a \
                     fault type the filter does not configure: add `abort: {http_status: 503, \
                     percentage: {numerator: 0}}` to it",
                )),
            };
        set.insert(keys.abort_percent.clone(), percent.to_string());
        let status = abort_status.map_or(configured, |s| s as u32);
        if abort_status.is_some() {
            set.insert(keys.abort_http_status.clone(), status.to_string());
        }
        summary.insert("abortStatus".into(), json!(status));
    } else if abort_status.is_some() {
        return Err(annotation_error(
            ABORT_STATUS_ANNOTATION,
            "only applies to an abort; set spec.abort: true or remove the annotation",
        ));
    }
    if let Some(delay) = &spec.delay {
        let duration = parse_duration(delay)
            .map_err(|e| AdapterError::Rejected(format!("spec.delay: {e}")))?;
        match &filter.delay {
            Some(DelayBlock::FixedMs(_)) => {}
            Some(DelayBlock::Header) => {
                return Err(unsupported(
                    "delay",
                    "the filter's delay block takes its duration from a request header \
                     (header_delay); runtime cannot force it (configure delay.fixed_delay)",
                ))
            }
            None => {
                return Err(unsupported(
                    "delay",
                    "the listener's fault filter has no delay block, and runtime cannot enable a \
                     fault type the filter does not configure: add `delay: {fixed_delay: 0.001s, \
                     percentage: {numerator: 0}}` to it",
                ))
            }
        }
        let ms = duration.as_millis();
        if duration.as_nanos() % 1_000_000 != 0 {
            return Err(AdapterError::Rejected(format!(
                "spec.delay: Envoy delays in whole milliseconds; {delay:?} is not one"
            )));
        }
        set.insert(keys.delay_percent.clone(), percent.to_string());
        set.insert(keys.delay_duration.clone(), ms.to_string());
        summary.insert("delayMs".into(), json!(ms as u64));
    }
    if let Some(kbps) = limit_kbps {
        // Envoy reads only the filter-wide key for the response limit; a per-cluster key would
        // be written, read back and reported in force while doing nothing.
        if let Some(cluster) = downstream {
            return Err(annotation_error(
                RESPONSE_LIMIT_ANNOTATION,
                format!(
                    "Envoy has no per-downstream-cluster switch for the response limit, so it \
                     cannot be combined with {DOWNSTREAM_CLUSTER_ANNOTATION}={cluster:?}"
                ),
            ));
        }
        match &filter.response_rate_limit {
            Some(RateLimitBlock::FixedKbps(configured)) if *configured == kbps => {}
            Some(RateLimitBlock::FixedKbps(configured)) => {
                return Err(annotation_error(
                    RESPONSE_LIMIT_ANNOTATION,
                    format!(
                        "the filter's response_rate_limit is {configured} kbps and runtime can \
                         only switch it on, not change its rate: use \"{configured}\""
                    ),
                ))
            }
            Some(RateLimitBlock::Header) | None => {
                return Err(annotation_error(
                    RESPONSE_LIMIT_ANNOTATION,
                    "the listener's fault filter has no response_rate_limit.fixed_limit block, \
                     and runtime cannot enable a fault type the filter does not configure",
                ))
            }
        }
        set.insert(
            keys.response_rate_limit_percent.clone(),
            percent.to_string(),
        );
        summary.insert("responseLimitKbps".into(), json!(kbps));
    }
    if set.is_empty() {
        return Err(unsupported(
            &action,
            "nothing to inject: set spec.abort: true or spec.delay",
        ));
    }
    if let Some(cluster) = downstream {
        summary.insert("downstreamCluster".into(), json!(cluster));
    }
    Ok(RuntimePlan {
        set,
        summary: Value::Object(summary),
        uses_filter_keys: downstream.is_none(),
    })
}

fn action_names(spec: &HTTPChaosSpec) -> Vec<&'static str> {
    let mut actions = Vec::new();
    if spec.abort == Some(true) {
        actions.push("abort");
    }
    if spec.delay.is_some() {
        actions.push("delay");
    }
    actions
}

/// Envoy's fault filter selects requests by its configured `headers` matchers only; runtime
/// cannot change them. So path / method / header filters are accepted exactly when the filter
/// already selects the same requests.
fn check_request_filters(
    spec: &HTTPChaosSpec,
    filter: &FaultFilter,
    action: &str,
) -> Result<(), AdapterError> {
    if spec.code.is_some() || !spec.response_headers.is_empty() {
        return Err(unsupported(
            action,
            "code and response_headers select responses; Envoy's fault filter acts on requests",
        ));
    }
    let mut wanted = BTreeMap::new();
    // `*` (and `/*`) is how Chaos Mesh users say "every path": no path matcher at all.
    if let Some(path) = spec
        .path
        .as_ref()
        .filter(|p| !matches!(p.as_str(), "*" | "/*"))
    {
        let matcher = match path.find('*') {
            None => HeaderMatch::Exact(path.clone()),
            Some(i) if i == path.len() - 1 => HeaderMatch::Prefix(path[..i].to_string()),
            Some(_) => {
                return Err(AdapterError::Rejected(format!(
                    "spec.path: Envoy matches a path exactly or by prefix (a single trailing *); \
                     {path:?} is neither"
                )))
            }
        };
        wanted.insert(":path".to_string(), matcher);
    }
    if let Some(method) = &spec.method {
        wanted.insert(
            ":method".to_string(),
            HeaderMatch::Exact(method.to_ascii_uppercase()),
        );
    }
    for (name, value) in &spec.request_headers {
        wanted.insert(name.to_ascii_lowercase(), HeaderMatch::Exact(value.clone()));
    }
    if wanted == filter.headers {
        return Ok(());
    }
    let describe = |m: &BTreeMap<String, HeaderMatch>| {
        if m.is_empty() {
            return "every request".to_string();
        }
        m.iter()
            .map(|(k, v)| match v {
                HeaderMatch::Exact(x) => format!("{k} = {x:?}"),
                HeaderMatch::Prefix(x) => format!("{k} starts with {x:?}"),
                HeaderMatch::Other(x) => format!("{k} {x}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(unsupported(
        action,
        format!(
            "in runtime mode the fault filter's own `headers` matchers decide which requests are \
             hit, and they cannot be changed at run time: the experiment selects {} but the \
             filter selects {}; make spec.path / spec.method / spec.request_headers match the \
             filter's matchers",
            describe(&wanted),
            describe(&filter.headers)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use chaoshub_schema::chaosmesh::http::HTTPChaosSpec;
    use serde_json::json;

    use super::*;

    fn spec(extra: Value) -> HTTPChaosSpec {
        let mut base = json!({"mode": "all", "selector": {}, "target": "Request"});
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn filter() -> FaultFilter {
        FaultFilter {
            abort: Some(AbortBlock::HttpStatus(503)),
            delay: Some(DelayBlock::FixedMs(1)),
            response_rate_limit: Some(RateLimitBlock::FixedKbps(8)),
            ..Default::default()
        }
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn abort_and_delay_map_to_the_filter_keys() {
        let plan = plan_runtime(
            &spec(json!({"abort": true, "delay": "200ms"})),
            &annotations(&[(PERCENT_ANNOTATION, "50"), (ABORT_STATUS_ANNOTATION, "418")]),
            &filter(),
            None,
        )
        .unwrap();
        let set: Vec<_> = plan
            .set
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            set,
            [
                ("fault.http.abort.abort_percent", "50"),
                ("fault.http.abort.http_status", "418"),
                ("fault.http.delay.fixed_delay_percent", "50"),
                ("fault.http.delay.fixed_duration_ms", "200"),
            ]
        );
        assert!(plan.uses_filter_keys);
    }

    #[test]
    fn a_star_path_means_every_request() {
        for path in ["*", "/*"] {
            let plan = plan_runtime(
                &spec(json!({"abort": true, "path": path})),
                &BTreeMap::new(),
                &filter(),
                None,
            );
            assert!(
                plan.is_ok(),
                "path {path:?} must match every request: {plan:?}"
            );
        }
        let narrower = plan_runtime(
            &spec(json!({"abort": true, "path": "/api/*"})),
            &BTreeMap::new(),
            &filter(),
            None,
        );
        assert!(
            narrower.is_err(),
            "a path the filter does not match is refused"
        );
    }

    #[test]
    fn percent_defaults_to_100_and_status_to_the_filter_s() {
        let plan = plan_runtime(
            &spec(json!({"abort": true})),
            &BTreeMap::new(),
            &filter(),
            None,
        )
        .unwrap();
        assert_eq!(plan.set["fault.http.abort.abort_percent"], "100");
        assert!(!plan.set.contains_key("fault.http.abort.http_status"));
        assert_eq!(plan.summary["abortStatus"], 503);
    }

    #[test]
    fn downstream_cluster_uses_per_cluster_keys() {
        let plan = plan_runtime(
            &spec(json!({"delay": "1s"})),
            &annotations(&[(DOWNSTREAM_CLUSTER_ANNOTATION, "web")]),
            &filter(),
            None,
        )
        .unwrap();
        assert_eq!(plan.set["fault.http.web.delay.fixed_duration_ms"], "1000");
        assert!(!plan.uses_filter_keys);
    }

    #[test]
    fn missing_blocks_and_bad_annotations_are_refused_with_the_reason() {
        let no_abort = FaultFilter {
            abort: None,
            ..filter()
        };
        let err = plan_runtime(
            &spec(json!({"abort": true})),
            &BTreeMap::new(),
            &no_abort,
            None,
        )
        .unwrap_err();
        assert!(matches!(err, AdapterError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("no abort block"), "{err}");

        let err = plan_runtime(
            &spec(json!({"abort": true})),
            &annotations(&[(PERCENT_ANNOTATION, "150")]),
            &filter(),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("chaoshub.dev/percent"), "{err}");

        let err = plan_runtime(
            &spec(json!({"delay": "1s"})),
            &annotations(&[(RESPONSE_LIMIT_ANNOTATION, "16")]),
            &filter(),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("use \"8\""), "{err}");

        let err = plan_runtime(
            &spec(json!({"delay": "1500us"})),
            &BTreeMap::new(),
            &filter(),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("whole milliseconds"), "{err}");
    }

    #[test]
    fn response_targets_and_replace_are_unsupported() {
        let err = plan_runtime(
            &spec(json!({"target": "Response", "abort": true})),
            &BTreeMap::new(),
            &filter(),
            None,
        )
        .unwrap_err();
        assert!(matches!(err, AdapterError::Unsupported { .. }));
        let err = plan_runtime(
            &spec(json!({"replace": {"code": 500}})),
            &BTreeMap::new(),
            &filter(),
            None,
        )
        .unwrap_err();
        assert!(matches!(err, AdapterError::Unsupported { ref action, .. } if action == "replace"));
    }

    #[test]
    fn request_filters_must_match_the_filter_s_matchers() {
        let mut with_matchers = filter();
        with_matchers
            .headers
            .insert(":method".into(), HeaderMatch::Exact("GET".into()));
        with_matchers
            .headers
            .insert(":path".into(), HeaderMatch::Prefix("/api/".into()));
        let ok = plan_runtime(
            &spec(json!({"abort": true, "method": "get", "path": "/api/*"})),
            &BTreeMap::new(),
            &with_matchers,
            None,
        );
        assert!(ok.is_ok(), "{ok:?}");
        let err = plan_runtime(
            &spec(json!({"abort": true})),
            &BTreeMap::new(),
            &with_matchers,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains(":method = \"GET\""), "{err}");
        let err = plan_runtime(
            &spec(json!({"abort": true, "path": "/a*b"})),
            &BTreeMap::new(),
            &filter(),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("spec.path"), "{err}");
    }
}
