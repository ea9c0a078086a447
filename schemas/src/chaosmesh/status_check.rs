//! `StatusCheck`: an HTTP probe a workflow can abort on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{check_duration, check_range};
use crate::error::{join_path, ValidationErrors};
use crate::validate::Validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum StatusCheckMode {
    Synchronous,
    Continuous,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum StatusCheckType {
    #[default]
    #[serde(rename = "HTTP")]
    Http,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum HTTPRequestMethod {
    #[default]
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
}

fn default_timeout_seconds() -> i64 {
    1
}
fn default_interval_seconds() -> i64 {
    10
}
fn default_failure_threshold() -> i64 {
    3
}
fn default_success_threshold() -> i64 {
    1
}
fn default_records_history_limit() -> i64 {
    100
}

/// `spec` of a `StatusCheck`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusCheckSpec {
    /// Only `HTTP` is supported. Default `HTTP`.
    #[serde(rename = "type", default)]
    pub check_type: StatusCheckType,
    /// `Synchronous` (stop at the first success/failure verdict) or `Continuous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<StatusCheckMode>,
    /// How long the whole check runs if it never fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: i64,
    #[serde(default = "default_interval_seconds")]
    #[schemars(range(min = 1))]
    pub interval_seconds: i64,
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1))]
    pub failure_threshold: i64,
    #[serde(default = "default_success_threshold")]
    #[schemars(range(min = 1))]
    pub success_threshold: i64,
    #[serde(default = "default_records_history_limit")]
    #[schemars(range(min = 1, max = 1000))]
    pub records_history_limit: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HTTPStatusCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPStatusCheck {
    pub url: String,
    #[serde(default)]
    pub method: HTTPRequestMethod,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub criteria: HTTPCriteria,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPCriteria {
    /// Expected status code: `200`, or a range `200-299`.
    pub status_code: String,
}

fn check_status_code(text: &str, path: &str, errors: &mut ValidationErrors) {
    let code = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
    };
    let ok = match text.split_once('-') {
        Some((lo, hi)) => matches!((code(lo), code(hi)), (Some(l), Some(h)) if l <= h),
        None => code(text).is_some(),
    };
    if !ok {
        errors.push(
            path.to_string(),
            format!("must be a status code (200) or a range (200-299); got {text:?}"),
        );
    }
}

impl Validate for StatusCheckSpec {
    fn validate(&self, path: &str, errors: &mut ValidationErrors) {
        check_duration(self.duration.as_deref(), path, "duration", errors);
        check_range(
            Some(self.timeout_seconds),
            1,
            i64::MAX,
            path,
            "timeoutSeconds",
            errors,
        );
        check_range(
            Some(self.interval_seconds),
            1,
            i64::MAX,
            path,
            "intervalSeconds",
            errors,
        );
        check_range(
            Some(self.failure_threshold),
            1,
            i64::MAX,
            path,
            "failureThreshold",
            errors,
        );
        check_range(
            Some(self.success_threshold),
            1,
            i64::MAX,
            path,
            "successThreshold",
            errors,
        );
        check_range(
            Some(self.records_history_limit),
            1,
            1000,
            path,
            "recordsHistoryLimit",
            errors,
        );
        match &self.http {
            None => errors.push(join_path(path, "http"), "is required when type is HTTP"),
            Some(http) => {
                let p = join_path(path, "http");
                if !(http.url.starts_with("http://") || http.url.starts_with("https://")) {
                    errors.push(
                        join_path(&p, "url"),
                        format!("must be an http:// or https:// URL; got {:?}", http.url),
                    );
                }
                check_status_code(
                    &http.criteria.status_code,
                    &join_path(&join_path(&p, "criteria"), "statusCode"),
                    errors,
                );
            }
        }
    }
}
