//! Query-string and path extraction shared by the REST handlers of every edge module (`api`,
//! `auth_http`, `agents_http`): unknown query parameters are refused by name, like everywhere in the API.

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};

use crate::error::HubError;

type ApiResult<T> = Result<T, HubError>;

/// Query parameters, with unknown names refused by name.
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub(crate) fn from(
        query: Result<Query<HashMap<String, String>>, QueryRejection>,
        allowed: &[&str],
    ) -> ApiResult<Self> {
        let Query(map) = query.map_err(|e| {
            HubError::bad_request(
                "invalid_query",
                format!("cannot parse the query string: {e}"),
            )
        })?;
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                let allowed = if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                };
                return Err(HubError::bad_request(
                    "invalid_query",
                    format!("unknown query parameter {key:?} (allowed: {allowed})"),
                ));
            }
        }
        Ok(Params(map))
    }

    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub(crate) fn bool(&self, key: &str) -> ApiResult<bool> {
        match self.0.get(key).map(String::as_str) {
            None | Some("false") | Some("0") => Ok(false),
            Some("") | Some("true") | Some("1") => Ok(true),
            Some(other) => Err(HubError::bad_request(
                "invalid_query",
                format!("query parameter {key:?} must be true or false, got {other:?}"),
            )),
        }
    }

    pub(crate) fn int<T: std::str::FromStr>(&self, key: &str) -> ApiResult<Option<T>> {
        self.str(key)
            .map(|v| v.parse::<T>().map_err(|_| HubError::bad_request("invalid_query", format!("query parameter {key:?} must be a non-negative whole number, got {v:?}"))))
            .transpose()
    }

    /// The page size asked with `limit`: `default` when absent; from 1 to `max`, else a 400
    /// that names the parameter.
    pub(crate) fn limit(&self, default: usize, max: usize) -> ApiResult<usize> {
        match self.int::<usize>("limit")? {
            None => Ok(default),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(n) => Err(HubError::bad_request(
                "invalid_query",
                format!("query parameter \"limit\" must be from 1 to {max}, got {n}"),
            )),
        }
    }

    /// The key `continue` carries (see [`continue_token`]), split into its `parts`; a 400 that
    /// names the parameter when it is not a token of this listing.
    pub(crate) fn continue_after(&self, parts: usize) -> ApiResult<Option<Vec<String>>> {
        let Some(token) = self.str("continue") else {
            return Ok(None);
        };
        let decoded = token
            .strip_prefix(CONTINUE_PREFIX)
            .and_then(hex_decode)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(|text| text.split('\0').map(str::to_string).collect::<Vec<_>>())
            .filter(|p| p.len() == parts);
        match decoded {
            Some(p) => Ok(Some(p)),
            None => Err(HubError::bad_request(
                "invalid_query",
                format!(
                    "query parameter \"continue\" is not a token this listing returned: {token:?} (pass the \"continue\" of the previous page as it is, or leave it out for the first page)"
                ),
            )),
        }
    }
}

/// Continue tokens start with this: a later format can be told apart.
const CONTINUE_PREFIX: &str = "k1.";

/// An opaque `continue` token: the sort key of a page's last item (its parts joined by NUL,
/// in hex), so the next page starts after it even if items were added or removed meanwhile.
pub(crate) fn continue_token(parts: &[&str]) -> String {
    let mut token = String::from(CONTINUE_PREFIX);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            token.push_str("00");
        }
        for b in part.bytes() {
            token.push_str(&format!("{b:02x}"));
        }
    }
    token
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(crate) fn path(p: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    p.map(|Path(v)| v).map_err(path_error)
}

/// The two parameters of a route such as `/agents/{env}/{name}`.
pub(crate) fn path_pair(
    p: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<(String, String)> {
    p.map(|Path(v)| v).map_err(path_error)
}

fn path_error(e: PathRejection) -> HubError {
    HubError::bad_request("invalid_path", format!("invalid path parameter: {e}"))
}
