//! The one error type of every function, and its one mapping to the contract's JSON
//! error body: `{"code": <status>, "message": "<for people>", "error": "<for programs>"}`.
//!
//! Caller mistakes become a 4xx with a useful message. Host, database and upstream
//! failures become a generic 5xx; their detail is kept in [`ApiError::log_detail`] for
//! the request log and never reaches a response body.

use serde_json::{Map, Value, json};

/// Seconds a client is asked to wait after a `503 database_unavailable`.
pub const DATABASE_RETRY_AFTER_SECS: u64 = 5;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed JSON, a missing or mistyped field, an unknown enum value, a bad UUID.
    #[error("{message}")]
    BadRequest {
        /// The field at fault, when there is one (`"persona"`, `"items[3].word"`).
        field: Option<String>,
        message: String,
    },
    /// No `Authorization: Bearer …` header.
    #[error("Missing authorization header")]
    MissingAuthorization,
    /// A token that does not verify; the reason is for the log only.
    #[error("Invalid JWT")]
    InvalidJwt { reason: String },
    /// A failed signature check on a webhook; the reason is for the log only.
    #[error("Invalid webhook signature")]
    InvalidSignature { reason: String },
    /// The right token for the wrong role, or someone else's resource.
    #[error("{0}")]
    Forbidden(String),
    /// A browser `Origin` outside `allowed_origins`.
    #[error("Origin not allowed")]
    OriginNotAllowed,
    #[error("{0}")]
    NotFound(String),
    /// A method the route does not serve; `allow` lists the ones it does.
    #[error("Method not allowed")]
    MethodNotAllowed { allow: Vec<&'static str> },
    /// A state conflict (an ended session, a red flag standing, a duplicate).
    #[error("{message}")]
    Conflict {
        error: &'static str,
        message: String,
    },
    /// Something that existed and is no longer available (an expired token session).
    #[error("{0}")]
    Gone(String),
    #[error("Payload too large: the limit is {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("Unsupported media type: expected {expected}")]
    UnsupportedMediaType { expected: &'static str },
    #[error("{message}")]
    RateLimited { retry_after: u64, message: String },
    /// A service we depend on answered badly (OpenAI 5xx, a malformed answer).
    #[error("Upstream service error")]
    Upstream { detail: String },
    /// A service we depend on answered, but not with something we can use (a refusal,
    /// an answer without content). `error` names what happened for programs.
    #[error("{message}")]
    UpstreamAnswer {
        error: &'static str,
        message: String,
        detail: String,
    },
    /// A service we depend on did not answer in time.
    #[error("Upstream service timed out")]
    UpstreamTimeout { detail: String },
    /// A service we depend on is unavailable for now (OpenAI 429, no API key).
    /// `extra` fields are merged into the body (for example `"mode": "demo"`).
    #[error("{message}")]
    ServiceUnavailable {
        message: String,
        retry_after: Option<u64>,
        extra: Map<String, Value>,
        detail: String,
    },
    /// Postgres unreachable or timing out.
    #[error("Database unavailable")]
    DatabaseUnavailable { detail: String },
    /// A missing or malformed Spin variable.
    #[error("Server configuration error")]
    Config { detail: String },
    /// Anything else: a bug, an unexpected row shape.
    #[error("Internal server error")]
    Internal { detail: String },
}

impl ApiError {
    /// A `400` naming the field at fault.
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        ApiError::BadRequest {
            message: if message.contains(&field) {
                message
            } else {
                format!("{field}: {message}")
            },
            field: Some(field),
        }
    }

    /// A `400` about the request as a whole.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: None,
            message: message.into(),
        }
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError::Internal {
            detail: detail.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::NotFound(what.into())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden(message.into())
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest { .. } => 400,
            ApiError::MissingAuthorization
            | ApiError::InvalidJwt { .. }
            | ApiError::InvalidSignature { .. } => 401,
            ApiError::Forbidden(_) | ApiError::OriginNotAllowed => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Conflict { .. } => 409,
            ApiError::Gone(_) => 410,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::UnsupportedMediaType { .. } => 415,
            ApiError::RateLimited { .. } => 429,
            ApiError::Config { .. } | ApiError::Internal { .. } => 500,
            ApiError::Upstream { .. } | ApiError::UpstreamAnswer { .. } => 502,
            ApiError::ServiceUnavailable { .. } | ApiError::DatabaseUnavailable { .. } => 503,
            ApiError::UpstreamTimeout { .. } => 504,
        }
    }

    /// The snake_case code for programs (`"error"` in the body).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "invalid_request",
            ApiError::MissingAuthorization => "missing_authorization",
            ApiError::InvalidJwt { .. } => "invalid_jwt",
            ApiError::InvalidSignature { .. } => "invalid_signature",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::OriginNotAllowed => "origin_not_allowed",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Conflict { error, .. } => error,
            ApiError::Gone(_) => "gone",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Upstream { .. } => "upstream_error",
            ApiError::UpstreamAnswer { error, .. } => error,
            ApiError::UpstreamTimeout { .. } => "upstream_timeout",
            ApiError::ServiceUnavailable { .. } => "service_unavailable",
            ApiError::DatabaseUnavailable { .. } => "database_unavailable",
            ApiError::Config { .. } => "configuration_error",
            ApiError::Internal { .. } => "internal_error",
        }
    }

    /// Headers the error's response carries besides CORS and the request id.
    pub fn headers(&self) -> Vec<(String, String)> {
        match self {
            ApiError::MethodNotAllowed { allow } => {
                vec![("allow".into(), allow.join(", "))]
            }
            ApiError::RateLimited { retry_after, .. } => {
                vec![("retry-after".into(), retry_after.to_string())]
            }
            ApiError::ServiceUnavailable {
                retry_after: Some(secs),
                ..
            } => vec![("retry-after".into(), secs.to_string())],
            ApiError::DatabaseUnavailable { .. } => {
                vec![("retry-after".into(), DATABASE_RETRY_AFTER_SECS.to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// What goes to the log besides the public message: the real reason behind a
    /// 401 or a 5xx. Never put into a response body.
    pub fn log_detail(&self) -> Option<&str> {
        match self {
            ApiError::InvalidJwt { reason } | ApiError::InvalidSignature { reason } => Some(reason),
            ApiError::Upstream { detail }
            | ApiError::UpstreamAnswer { detail, .. }
            | ApiError::UpstreamTimeout { detail }
            | ApiError::ServiceUnavailable { detail, .. }
            | ApiError::DatabaseUnavailable { detail }
            | ApiError::Config { detail }
            | ApiError::Internal { detail } => Some(detail),
            _ => None,
        }
    }

    /// The contract's JSON error body.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "code": self.status(),
            "message": self.to_string(),
            "error": self.code(),
        });
        let object = body.as_object_mut().expect("a JSON object");
        match self {
            ApiError::BadRequest {
                field: Some(field), ..
            } => {
                object.insert("field".into(), Value::String(field.clone()));
            }
            ApiError::ServiceUnavailable { extra, .. } => {
                for (key, value) in extra {
                    object.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
            _ => {}
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_authorization_body_is_the_contracts() {
        let body = ApiError::MissingAuthorization.body();
        assert_eq!(
            body,
            json!({"code": 401, "message": "Missing authorization header", "error": "missing_authorization"})
        );
    }

    #[test]
    fn invalid_jwt_body_hides_the_reason() {
        let error = ApiError::InvalidJwt {
            reason: "signature mismatch for kid abc".into(),
        };
        assert_eq!(
            error.body(),
            json!({"code": 401, "message": "Invalid JWT", "error": "invalid_jwt"})
        );
        assert_eq!(error.log_detail(), Some("signature mismatch for kid abc"));
    }

    #[test]
    fn database_unavailable_is_503_with_retry_after_and_no_detail() {
        let error = ApiError::DatabaseUnavailable {
            detail: "connection refused at 127.0.0.1:5432".into(),
        };
        assert_eq!(error.status(), 503);
        assert_eq!(
            error.headers(),
            vec![("retry-after".to_string(), "5".to_string())]
        );
        assert!(!error.body().to_string().contains("5432"));
    }

    #[test]
    fn bad_field_names_the_field() {
        let error = ApiError::bad_field("persona", "unknown persona `x`");
        assert_eq!(error.body()["field"], "persona");
        assert!(
            error.body()["message"]
                .as_str()
                .unwrap()
                .contains("persona")
        );
    }

    #[test]
    fn service_unavailable_merges_extra_fields_without_overriding_the_contracts() {
        let mut extra = Map::new();
        extra.insert("mode".into(), json!("demo"));
        extra.insert("code".into(), json!(1));
        let error = ApiError::ServiceUnavailable {
            message: "OpenAI is not configured".into(),
            retry_after: None,
            extra,
            detail: String::new(),
        };
        let body = error.body();
        assert_eq!(body["mode"], "demo");
        assert_eq!(body["code"], 503);
        assert_eq!(body["error"], "service_unavailable");
    }

    #[test]
    fn method_not_allowed_lists_allow() {
        let error = ApiError::MethodNotAllowed {
            allow: vec!["GET", "OPTIONS"],
        };
        assert_eq!(error.status(), 405);
        assert_eq!(
            error.headers(),
            vec![("allow".to_string(), "GET, OPTIONS".to_string())]
        );
    }
}
