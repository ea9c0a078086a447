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
