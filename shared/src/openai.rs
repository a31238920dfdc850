//! What every call to OpenAI has in common: reading its refusals and mapping them onto
//! the contract's errors (section 3).
//!
//! OpenAI's `429` becomes `503` with a `Retry-After` taken from its own header (whole
//! seconds, within bounds); any other refusal becomes `502 upstream_error`; no API key
//! configured becomes `503` with `"mode": "demo"`. The token, search and demo-relay
//! calls (`token::openai`, `search::openai`, `demo::openai`) keep their own messages and
//! log details and build their errors with these functions. OpenAI's error `message` is
//! never read: it can quote the key or the input it refused.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::outbound::OutboundResponse;

/// `Retry-After` when OpenAI says 429 without saying how long to wait.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 5;
/// The longest wait passed on to clients.
pub const MAX_RETRY_AFTER_SECS: u64 = 300;

/// OpenAI's `Retry-After` in whole seconds (it may carry a fraction), within bounds.
pub fn retry_after(response: &OutboundResponse) -> u64 {
    response
        .header("retry-after")
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(|seconds| (seconds.ceil() as u64).clamp(1, MAX_RETRY_AFTER_SECS))
        .unwrap_or(DEFAULT_RETRY_AFTER_SECS)
}

/// OpenAI's `error.type` / `error.code` for the log, when they are plain identifiers.
pub fn error_type(response: &OutboundResponse) -> String {
    let parsed: Option<Value> = serde_json::from_slice(&response.body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|body| body.pointer(&format!("/error/{name}")))
            .and_then(Value::as_str)
            .filter(|text| {
                text.len() <= 80
                    && text
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            })
            .map(str::to_string)
    };
    match (field("type"), field("code")) {
        (Some(kind), Some(code)) => format!("{kind}/{code}"),
        (Some(kind), None) => kind,
        (None, Some(code)) => code,
        (None, None) => "no error type".into(),
    }
}

/// OpenAI rate-limited us: `503` with `Retry-After: retry_after` and `message` for the
/// client; `detail` goes to the log.
pub fn rate_limited(message: impl Into<String>, retry_after: u64, detail: String) -> ApiError {
    ApiError::ServiceUnavailable {
        message: message.into(),
        retry_after: Some(retry_after),
        extra: Map::new(),
        detail,
    }
}

/// A non-success answer from OpenAI: `429` is [`rate_limited`] with `busy_message` and
/// OpenAI's [`retry_after`], anything else `502 upstream_error`. `detail` goes to the log.
pub fn status_failure(response: &OutboundResponse, busy_message: &str, detail: String) -> ApiError {
    if response.status == 429 {
        rate_limited(busy_message, retry_after(response), detail)
    } else {
        ApiError::Upstream { detail }
    }
}

/// No API key is configured: `503` with `"mode": "demo"` added to `extra`, and `message`
/// for the client; `detail` goes to the log.
pub fn demo_mode(
    message: impl Into<String>,
    mut extra: Map<String, Value>,
    detail: &str,
) -> ApiError {
    extra.insert("mode".into(), Value::String("demo".into()));
    ApiError::ServiceUnavailable {
        message: message.into(),
        retry_after: None,
        extra,
        detail: detail.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> OutboundResponse {
        OutboundResponse {
            status,
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn retry_after_of(header: &str) -> u64 {
        retry_after(&response(429, &[("retry-after", header)], ""))
    }

    #[test]
    fn retry_after_rounds_fractions_up_and_stays_within_bounds() {
        assert_eq!(retry_after_of("7"), 7);
        assert_eq!(retry_after_of(" 1.2 "), 2);
        assert_eq!(retry_after_of("0"), 1);
        assert_eq!(retry_after_of("86400"), MAX_RETRY_AFTER_SECS);
    }

    #[test]
    fn a_missing_or_unreadable_retry_after_is_the_default() {
        assert_eq!(
            retry_after(&response(429, &[], "")),
            DEFAULT_RETRY_AFTER_SECS
        );
        for header in ["-3", "soon", "NaN", "inf", "Wed, 21 Oct 2015 07:28:00 GMT"] {
            assert_eq!(retry_after_of(header), DEFAULT_RETRY_AFTER_SECS, "{header}");
        }
    }

    #[test]
    fn error_type_keeps_plain_identifiers_and_never_the_message() {
        let body = r#"{"error": {"message": "Incorrect API key provided: sk-live-1234", "type": "invalid_request_error", "code": "invalid_api_key"}}"#;
        assert_eq!(
            error_type(&response(401, &[], body)),
            "invalid_request_error/invalid_api_key"
        );
        assert_eq!(
            error_type(&response(
                500,
                &[],
                r#"{"error": {"type": "server_error"}}"#
            )),
            "server_error"
        );
        assert_eq!(
            error_type(&response(
                429,
                &[],
                r#"{"error": {"code": "rate_limit_exceeded"}}"#
            )),
            "rate_limit_exceeded"
        );
        let quoted = r#"{"error": {"type": "the key sk-live-1234 is wrong"}}"#;
        assert_eq!(error_type(&response(400, &[], quoted)), "no error type");
        assert_eq!(error_type(&response(502, &[], "<html>")), "no error type");
    }

    #[test]
    fn a_429_is_503_with_retry_after_and_anything_else_502() {
        let busy = status_failure(
            &response(429, &[("retry-after", "2.5")], ""),
            "OpenAI is busy",
            "detail".into(),
        );
        assert_eq!(busy.status(), 503);
        assert_eq!(busy.body()["message"], "OpenAI is busy");
        assert_eq!(
            busy.headers(),
            vec![("retry-after".to_string(), "3".to_string())]
        );
        for status in [400, 401, 404, 500, 503] {
            let error = status_failure(&response(status, &[], ""), "busy", "detail".into());
            assert_eq!(error.status(), 502, "{status}");
            assert_eq!(error.code(), "upstream_error");
            assert_eq!(error.log_detail(), Some("detail"));
        }
    }

    #[test]
    fn no_key_is_503_in_demo_mode_with_the_callers_fields() {
        let mut extra = Map::new();
        extra.insert("success".into(), Value::Bool(false));
        let error = demo_mode("Not configured", extra, "openai_api_key is not set");
        assert_eq!(error.status(), 503);
        assert_eq!(error.body()["error"], "service_unavailable");
        assert_eq!(error.body()["mode"], "demo");
        assert_eq!(error.body()["success"], false);
        assert!(error.headers().is_empty());
    }
}
