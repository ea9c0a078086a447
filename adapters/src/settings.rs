//! Environment settings shared by the HTTP-based adapters: the endpoint URL and integer
//! settings, each problem pushed with its path (`spec.endpoint`, `spec.settings.<key>`).
//! Pure: nothing here touches the network.

use chaoshub_schema::ValidationErrors;
#[cfg(any(
    feature = "webhook",
    feature = "toxiproxy",
    feature = "envoy",
    feature = "ssm"
))]
use reqwest::Url;
use serde_json::Value;

/// What an adapter says about its endpoint in error messages.
#[cfg(any(
    feature = "webhook",
    feature = "toxiproxy",
    feature = "envoy",
    feature = "ssm"
))]
pub struct EndpointHelp {
    /// What the endpoint is, with an example: "the plugin's base URL, e.g. http://127.0.0.1:8470".
    pub what: &'static str,
    /// Why credentials may not be embedded and what to use instead.
    pub credentials: &'static str,
}

#[cfg(any(
    feature = "webhook",
    feature = "toxiproxy",
    feature = "envoy",
    feature = "ssm"
))]
/// Parses `spec.endpoint` as an http(s) base URL with a host, no query, fragment or embedded
/// credentials; every problem is reported.
pub fn http_endpoint(
    endpoint: Option<&str>,
    help: &EndpointHelp,
    errors: &mut ValidationErrors,
) -> Option<Url> {
    let Some(text) = endpoint.map(str::trim).filter(|t| !t.is_empty()) else {
        errors.push("spec.endpoint", format!("required: {}", help.what));
        return None;
    };
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(e) => {
            errors.push("spec.endpoint", format!("not a valid URL ({e}): {text:?}"));
            return None;
        }
    };
    let before = errors.len();
    if !matches!(url.scheme(), "http" | "https") {
        errors.push(
            "spec.endpoint",
            format!(
                "must be an http:// or https:// URL, got scheme {:?}",
                url.scheme()
            ),
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        errors.push("spec.endpoint", "must name a host");
    }
    if url.query().is_some() || url.fragment().is_some() {
        errors.push(
            "spec.endpoint",
            format!("must not carry a query or fragment; give {}", help.what),
        );
    }
    if !url.username().is_empty() || url.password().is_some() {
        errors.push(
            "spec.endpoint",
            format!("must not embed credentials ({})", help.credentials),
        );
    }
    (errors.len() == before).then_some(url)
}

#[cfg(any(
    feature = "webhook",
    feature = "toxiproxy",
    feature = "envoy",
    feature = "ssm"
))]
/// The URL of `path` below the endpoint's own path prefix (`http://gw/plugins/fs/` + `v1/x`).
pub fn join(endpoint: &Url, path: &str) -> Url {
    let mut url = endpoint.clone();
    let base = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{base}/{path}"));
    url
}

/// Reports every setting whose key is not one of `known` (nor one the hub reads itself,
/// [`crate::HUB_SETTINGS`]).
pub fn reject_unknown(
    settings: &serde_json::Map<String, Value>,
    known: &[&str],
    errors: &mut ValidationErrors,
) {
    for key in settings.keys() {
        if !known.contains(&key.as_str()) && !crate::HUB_SETTINGS.contains(&key.as_str()) {
            errors.push(
                format!("spec.settings.{key}"),
                format!("unknown setting (known: {})", known.join(", ")),
            );
        }
    }
}

/// The optional integer setting `key`, within `min..=max`.
pub fn integer_setting(
    settings: &serde_json::Map<String, Value>,
    key: &str,
    min: u64,
    max: u64,
    errors: &mut ValidationErrors,
) -> Option<u64> {
    let path = format!("spec.settings.{key}");
    match settings.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                errors.push(
                    path,
                    format!("must be an integer from {min} to {max}, got {n}"),
                );
                None
            }
        },
        Some(other) => {
            errors.push(
                path,
                format!("must be an integer, got {}", json_type(other)),
            );
            None
        }
    }
}

/// An optional string setting, trimmed: absent or null is `None`; an empty string or another
/// JSON type is an error at `spec.settings.<key>`.
pub fn string_setting(
    settings: &serde_json::Map<String, Value>,
    key: &str,
    errors: &mut ValidationErrors,
) -> Option<String> {
    match settings.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::String(_)) => {
            errors.push(format!("spec.settings.{key}"), "must not be empty");
            None
        }
        Some(other) => {
            errors.push(
                format!("spec.settings.{key}"),
                format!("must be a string, got {}", json_type(other)),
            );
            None
        }
    }
}

/// The JSON type of a value, for messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
