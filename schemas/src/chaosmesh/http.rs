//! `HTTPChaos`: abort, delay, replace or patch HTTP requests and responses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{check_duration, check_pod_common, check_port, common_fault_accessors};
use super::selector::PodSelectorSpec;
use crate::error::{join_path, ValidationErrors};
use crate::fault::FaultSpec;
use crate::selector::{SelectorMode, TargetSelector};
use crate::validate::Validate;

/// Whether requests or responses are selected and altered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum HTTPTarget {
    Request,
    Response,
}

/// `spec` of an `HTTPChaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPChaosSpec {
    pub mode: SelectorMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub selector: PodSelectorSpec,
    pub target: HTTPTarget,
    /// The port the target service listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Select by URI path (wildcards allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Select by HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Select by response status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// Select by request headers.
    #[serde(
        rename = "request_headers",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub request_headers: BTreeMap<String, String>,
    /// Select by response headers.
    #[serde(
        rename = "response_headers",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub response_headers: BTreeMap<String, String>,
    /// Abort the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<bool>,
    /// Delay the request or response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<HTTPReplace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<HTTPPatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<HTTPTLS>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_cluster: Option<String>,
    /// chaoshub: the registered environment that runs this experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPReplace {
    /// Replacement body, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub queries: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<HTTPPatchBody>,
    /// Headers to append, as `[name, value]` pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Vec<String>>,
    /// URI queries to append (requests only), as `[name, value]` pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPPatchBody {
    /// Patch type; only `JSON` (merge patch) is supported.
    #[serde(rename = "type")]
    pub patch_type: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPTLS {
    pub secret_name: String,
    pub secret_namespace: String,
    pub cert_name: String,
    pub key_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_name: Option<String>,
}

fn check_pairs(pairs: &[Vec<String>], path: &str, field: &str, errors: &mut ValidationErrors) {
    for (i, pair) in pairs.iter().enumerate() {
        if pair.len() != 2 {
            errors.push(
                format!("{}[{i}]", join_path(path, field)),
                format!("must be a [name, value] pair; got {} items", pair.len()),
            );
        }
    }
}

impl Validate for HTTPChaosSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        check_pod_common(
            self.mode,
            self.value.as_deref(),
            &self.selector,
            self.duration.as_deref(),
            self.environment.as_deref(),
            path,
            errors,
        );
        check_port(self.port.map(i64::from), path, "port", errors);
        check_duration(self.delay.as_deref(), path, "delay", errors);
        if self.actions().is_empty() {
            errors.push(
                path.to_string(),
                "needs at least one action: abort: true, delay, replace or patch",
            );
        }
        if self.code.is_some() && self.target == HTTPTarget::Request {
            errors.push(
                join_path(path, "code"),
                "selects responses only; set target: Response",
            );
        }
        if let Some(code) = self.code {
            if !(100..=599).contains(&code) {
                errors.push(
                    join_path(path, "code"),
                    format!("must be an HTTP status code; got {code}"),
                );
            }
        }
        if let Some(replace) = &self.replace {
            if let Some(code) = replace.code {
                if !(100..=599).contains(&code) {
                    errors.push(
                        join_path(&join_path(path, "replace"), "code"),
                        format!("must be an HTTP status code; got {code}"),
                    );
                }
            }
        }
        if let Some(patch) = &self.patch {
            let p = join_path(path, "patch");
            if let Some(body) = &patch.body {
                if body.patch_type != "JSON" {
                    errors.push(
                        join_path(&join_path(&p, "body"), "type"),
                        format!(
                            "must be JSON (a JSON merge patch); got {:?}",
                            body.patch_type
                        ),
                    );
                } else if serde_json::from_str::<serde_json::Value>(&body.value).is_err() {
                    errors.push(
                        join_path(&join_path(&p, "body"), "value"),
                        "must be valid JSON",
                    );
                }
            }
            check_pairs(&patch.headers, &p, "headers", errors);
            check_pairs(&patch.queries, &p, "queries", errors);
        }
    }
}

impl FaultSpec for HTTPChaosSpec {
    fn actions(&self) -> Vec<String> {
        let mut actions = Vec::new();
        if self.abort == Some(true) {
            actions.push("abort".to_string());
        }
        if self.delay.is_some() {
            actions.push("delay".to_string());
        }
        if self.replace.is_some() {
            actions.push("replace".to_string());
        }
        if self.patch.is_some() {
            actions.push("patch".to_string());
        }
        actions
    }
    fn target_selector(&self) -> Option<TargetSelector> {
        Some(self.selector.to_target_selector())
    }
    common_fault_accessors!();
}
