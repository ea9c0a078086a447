//! The hub's one error type at the API edge, with its status-code table (docs/http-status-codes.md).

use axum::http::StatusCode;
use chaoshub_adapters::AdapterError;
use chaoshub_schema::api::ErrorBody;
use chaoshub_schema::{FieldError, ValidationErrors};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The body is not a valid manifest (400 `invalid_manifest`), with field paths.
    #[error("{message}")]
    Invalid {
        message: String,
        details: Vec<FieldError>,
    },
    /// Some other malformed request (400), with a specific code.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{what} not found")]
    NotFound { what: String },
    /// A conflict with the current state (409): name in use, halted, wrong phase.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A valid manifest that the environment cannot run (422).
    #[error("{message}")]
    Unsupported { message: String },
    /// A selection a guardrail refuses (422): a protected target (`protected_target`) or more
    /// targets than the environment's `max_targets` (`blast_radius`); the message names the
    /// target and why it is protected, or the cap and the selected count.
    #[error("{message}")]
    Guardrail { code: &'static str, message: String },
    /// The request body is larger than the configured limit (413).
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The body's media type is neither JSON nor YAML (415).
    #[error(
        "unsupported content type {content_type:?}: send application/json or application/yaml"
    )]
    UnsupportedMediaType { content_type: String },
    /// The environment could not be reached (503).
    #[error("{message}")]
    Unreachable { message: String },
    /// The environment answered with an error while validating (502).
    #[error("{message}")]
    Upstream { message: String },
    /// No credential, or one that is unknown, expired, revoked or malformed (401).
    #[error("{message}")]
    Unauthenticated { message: String },
    /// A valid credential whose role or scope does not allow the request (403); the message
    /// names the missing permission.
    #[error("{message}")]
    Forbidden { message: String },
    /// Too many failed authentication attempts from one address (429 with Retry-After).
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    #[error("internal store error")]
    Store(#[from] StoreError),
}

impl HubError {
    pub fn invalid(errors: ValidationErrors) -> Self {
        let message = match errors.len() {
            1 => "the manifest is invalid: 1 problem".to_string(),
            n => format!("the manifest is invalid: {n} problems"),
        };
        HubError::Invalid {
            message,
            details: errors.0,
        }
    }

    pub fn invalid_field(path: &str, message: impl Into<String>) -> Self {
        Self::invalid(ValidationErrors::single(path, message))
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        HubError::NotFound { what: what.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        HubError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn guardrail(err: crate::selection::GuardrailError) -> Self {
        HubError::Guardrail {
            code: err.code(),
            message: err.to_string(),
        }
    }

    /// Maps an adapter error met while validating or planning a request.
    pub fn from_adapter(err: AdapterError) -> Self {
        match err {
            AdapterError::Unreachable { .. } => HubError::Unreachable {
                message: err.to_string(),
            },
            AdapterError::InvalidSettings(errors) => Self::invalid(errors),
            AdapterError::Unsupported { .. } => HubError::Unsupported {
                message: err.to_string(),
            },
            AdapterError::Rejected(_) | AdapterError::Failed(_) => HubError::Upstream {
                message: err.to_string(),
            },
        }
    }

    /// The status-code table: one place maps every error to HTTP.
    pub fn status(&self) -> StatusCode {
        match self {
            HubError::Invalid { .. } | HubError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            HubError::NotFound { .. } => StatusCode::NOT_FOUND,
            HubError::Conflict { .. } => StatusCode::CONFLICT,
            HubError::Unsupported { .. } | HubError::Guardrail { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            HubError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            HubError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HubError::Unreachable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            HubError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            HubError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            HubError::Forbidden { .. } => StatusCode::FORBIDDEN,
            HubError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            HubError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            HubError::Invalid { .. } => "invalid_manifest",
            HubError::BadRequest { code, .. } => code,
            HubError::NotFound { .. } => "not_found",
            HubError::Conflict { code, .. } => code,
            HubError::Unsupported { .. } => "unsupported",
            HubError::Guardrail { code, .. } => code,
            HubError::TooLarge { .. } => "payload_too_large",
            HubError::UnsupportedMediaType { .. } => "unsupported_media_type",
            HubError::Unreachable { .. } => "environment_unreachable",
            HubError::Upstream { .. } => "environment_error",
            HubError::Unauthenticated { .. } => "unauthenticated",
            HubError::Forbidden { .. } => "forbidden",
            HubError::TooManyRequests { .. } => "too_many_requests",
            HubError::Store(_) => "internal",
        }
    }

    pub fn body(&self) -> ErrorBody {
        let details = match self {
            HubError::Invalid { details, .. } => details.clone(),
            _ => Vec::new(),
        };
        ErrorBody {
            code: self.code().to_string(),
            message: self.to_string(),
            details,
        }
    }
}
