//! OpenAI's error answers: `{"error": {"message", "type", "param", "code"}}` with the
//! status OpenAI gives each kind of failure, so that callers are tested against the
//! shapes they will meet in production.

use hyper::StatusCode;
use serde_json::{Value, json};

/// How many seconds a `429` asks the caller to wait (`retry-after`).
pub const RETRY_AFTER_SECONDS: u64 = 2;

/// One error answer of OpenAI's API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenAiError {
    /// The HTTP status it is sent with.
    pub status: StatusCode,
    /// The sentence for people.
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `requests`, `server_error`, …
    pub kind: &'static str,
    /// The request parameter at fault, dotted (`session.audio.output.voice`).
    pub param: Option<String>,
    /// OpenAI's machine-readable `code`, when it gives one.
    pub code: Option<&'static str>,
}

impl OpenAiError {
    fn invalid_request(
        status: StatusCode,
        message: String,
        param: Option<&str>,
        code: Option<&'static str>,
    ) -> Self {
        Self {
            status,
            message,
            kind: "invalid_request_error",
            param: param.map(str::to_owned),
            code,
        }
    }

    /// No `Authorization: Bearer <key>` header.
    pub fn missing_api_key() -> Self {
        Self::invalid_request(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an \
             Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                .into(),
            None,
            None,
        )
    }

    /// A key other than the one the stand-in was configured with. The key itself is
    /// not repeated, so that it cannot leak through a caller's log of this body.
    pub fn invalid_api_key() -> Self {
        Self::invalid_request(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided. You can find your API key at \
             https://platform.openai.com/account/api-keys."
                .into(),
            None,
            Some("invalid_api_key"),
        )
    }

    /// A required parameter is absent.
    pub fn missing_parameter(param: &str) -> Self {
        Self::invalid_request(
            StatusCode::BAD_REQUEST,
            format!("Missing required parameter: '{param}'."),
            Some(param),
            Some("missing_required_parameter"),
        )
    }

    /// A parameter has a value OpenAI does not accept.
    pub fn invalid_value(param: &str, message: String) -> Self {
        Self::invalid_request(
            StatusCode::BAD_REQUEST,
            message,
            Some(param),
            Some("invalid_value"),
        )
    }

    /// A parameter has the wrong JSON type.
    pub fn invalid_type(param: &str, expected: &str) -> Self {
        Self::invalid_request(
            StatusCode::BAD_REQUEST,
            format!("Invalid type for '{param}': expected {expected}."),
            Some(param),
            Some("invalid_type"),
        )
    }

    /// A parameter OpenAI does not know (for example the beta API's `session.voice`).
    pub fn unknown_parameter(param: &str) -> Self {
        Self::invalid_request(
            StatusCode::BAD_REQUEST,
            format!("Unknown parameter: '{param}'."),
            Some(param),
            Some("unknown_parameter"),
        )
    }

    /// The body is not what the content type promised (bad JSON, bad multipart).
    pub fn unparsable_body(message: String) -> Self {
        Self::invalid_request(StatusCode::BAD_REQUEST, message, None, None)
    }

    /// The body is larger than the stand-in accepts.
    pub fn body_too_large(limit: usize) -> Self {
        Self::invalid_request(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body is larger than {limit} bytes."),
            None,
            None,
        )
    }

    /// A model that does not exist.
    pub fn model_not_found(model: &str) -> Self {
        Self::invalid_request(
            StatusCode::NOT_FOUND,
            format!("The model `{model}` does not exist or you do not have access to it."),
            None,
            Some("model_not_found"),
        )
    }

    /// A path or method OpenAI does not serve.
    pub fn invalid_url(method: &str, path: &str) -> Self {
        Self::invalid_request(
            StatusCode::NOT_FOUND,
            format!("Invalid URL ({method} {path})"),
            None,
            None,
        )
    }

    /// The `429` switch: OpenAI's rate-limit answer.
    pub fn rate_limited() -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "Rate limit reached for requests. Please try again in {RETRY_AFTER_SECONDS}s."
            ),
            kind: "requests",
            param: None,
            code: Some("rate_limit_exceeded"),
        }
    }

    /// The `500` switch: OpenAI's generic server error.
    pub fn server_error() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "The server had an error while processing your request. Sorry about that!"
                .into(),
            kind: "server_error",
            param: None,
            code: None,
        }
    }

    /// The JSON body OpenAI sends with this error.
    pub fn body(&self) -> Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_openai_error_shape_with_nulls() {
        let body = OpenAiError::server_error().body();
        assert_eq!(body["error"]["type"], "server_error");
        assert!(body["error"]["param"].is_null());
        assert!(body["error"]["code"].is_null());
        assert!(body["error"]["message"].as_str().unwrap().contains("error"));
    }

    #[test]
    fn missing_parameter_names_the_parameter() {
        let error = OpenAiError::missing_parameter("session.type");
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        let body = error.body();
        assert_eq!(body["error"]["param"], "session.type");
        assert_eq!(body["error"]["code"], "missing_required_parameter");
    }

    #[test]
    fn rate_limited_is_429_with_rate_limit_code() {
        let error = OpenAiError::rate_limited();
        assert_eq!(error.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(error.body()["error"]["code"], "rate_limit_exceeded");
    }
}
