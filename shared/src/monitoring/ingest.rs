//! What clients report: one session's metrics and one error, validated.
//!
//! The body is first parsed by serde (a missing or mistyped field, an unknown
//! implementation type or a malformed UUID is a `400` naming the field), then checked
//! here for what types cannot say: counters and times are not negative, percentiles are
//! in order, values stay within bounds that a real session can reach, text fields are
//! not empty and not huge. Nothing here touches the database.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiError;

/// The longest round trip accepted as a latency sample. A minute without an answer is
/// a stalled session, not a latency; letting such a value in would let one broken
/// client move every average of the dashboard.
pub const MAX_LATENCY_MS: f64 = 60_000.0;
/// The longest connection set-up accepted (five minutes).
pub const MAX_CONNECTION_TIME_MS: f64 = 300_000.0;
/// The longest session accepted: 24 hours.
pub const MAX_DURATION_MS: f64 = 24.0 * 60.0 * 60.0 * 1000.0;
/// The shortest audio chunk any client sends (browsers' audio worklets and OpenAI's
/// Realtime API work in frames of 10 ms or more). A session can send, receive and
/// under-run at most one chunk per this many milliseconds of its duration, plus
/// [`COUNTER_SLACK`]: 24 hours allow 8.64 million, within the `integer` columns.
pub const MIN_AUDIO_CHUNK_MS: f64 = 10.0;
/// What a counter may exceed the duration's budget by (chunks around connect and
/// hang-up, a session of zero duration that still sent a few).
pub const COUNTER_SLACK: i64 = 100;
/// A session can try to reconnect at most once per this many milliseconds of its
/// duration, plus [`RECONNECTION_SLACK`] (clients back off for seconds between tries).
pub const MIN_RECONNECTION_INTERVAL_MS: f64 = 1_000.0;
/// Reconnection attempts allowed beyond the duration's budget (a session that never
/// connected reports a duration of zero after its tries).
pub const RECONNECTION_SLACK: i64 = 10;
/// Longest `error_type`.
pub const MAX_ERROR_TYPE_CHARS: usize = 100;
/// Longest `error_message`.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 2_000;
/// Longest `stack_trace`.
pub const MAX_STACK_TRACE_CHARS: usize = 16_000;

/// Which voice implementation a session used (`implementation_type`; the SQL check
/// constraint allows the same two values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImplementationType {
    /// The new path: a WebRTC peer connection straight to OpenAI.
    Webrtc,
    /// The legacy path: the WebSocket relay.
    Websocket,
}

impl ImplementationType {
    /// Both implementations, in the order the summary reports them.
    pub const ALL: [ImplementationType; 2] =
        [ImplementationType::Webrtc, ImplementationType::Websocket];

    /// The value stored in `implementation_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImplementationType::Webrtc => "webrtc",
            ImplementationType::Websocket => "websocket",
        }
    }
}

impl fmt::Display for ImplementationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImplementationType {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "webrtc" => Ok(ImplementationType::Webrtc),
            "websocket" => Ok(ImplementationType::Websocket),
            other => Err(format!("unknown implementation type `{other}`")),
        }
    }
}

/// The body of `POST /metrics` as sent. Times are numbers of milliseconds (fractions
/// allowed: browsers measure with `performance.now()`); counters are whole numbers.
/// Fields other than these are ignored (a user id in the body above all: the caller is
/// the token's `sub`).
#[derive(Debug, Clone, Deserialize)]
pub struct SessionMetricsBody {
    pub implementation_type: ImplementationType,
    pub connection_success: bool,
    pub connection_time_ms: f64,
    pub avg_latency_ms: f64,
    pub p95_latency_ms: f64,
    pub p99_latency_ms: f64,
    pub audio_chunks_sent: i64,
    pub audio_chunks_received: i64,
    pub buffer_underruns: i64,
    pub reconnection_attempts: i64,
    pub duration_ms: f64,
    #[serde(default)]
    pub session_id: Option<Uuid>,
}

/// One session's metrics, checked; what is stored in `voice_session_metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionMetrics {
    pub implementation_type: ImplementationType,
    pub connection_success: bool,
    pub connection_time_ms: f64,
    pub avg_latency_ms: f64,
    pub p95_latency_ms: f64,
    pub p99_latency_ms: f64,
    pub audio_chunks_sent: i64,
    pub audio_chunks_received: i64,
    pub buffer_underruns: i64,
    pub reconnection_attempts: i64,
    pub duration_ms: f64,
    pub session_id: Option<Uuid>,
}

impl SessionMetricsBody {
    /// Checks what serde cannot: signs, bounds and the order of the percentiles.
    ///
    /// `p95 ≤ p99` always holds for percentiles of one set of samples, so a report
    /// where it does not is refused. `avg ≤ p99` is deliberately *not* required: a
    /// mean can exceed the 99th percentile when fewer than one sample in a hundred is
    /// very slow (199 answers at 100 ms and one at 30 s average 249.5 ms, while their
    /// p99 is 100 ms), and such a session is exactly one the dashboard must see.
    pub fn validate(self) -> Result<SessionMetrics, ApiError> {
        milliseconds(
            "connection_time_ms",
            self.connection_time_ms,
            MAX_CONNECTION_TIME_MS,
        )?;
        milliseconds("avg_latency_ms", self.avg_latency_ms, MAX_LATENCY_MS)?;
        milliseconds("p95_latency_ms", self.p95_latency_ms, MAX_LATENCY_MS)?;
        milliseconds("p99_latency_ms", self.p99_latency_ms, MAX_LATENCY_MS)?;
        milliseconds("duration_ms", self.duration_ms, MAX_DURATION_MS)?;
        if self.p95_latency_ms > self.p99_latency_ms {
            return Err(ApiError::bad_field(
                "p95_latency_ms",
                "p95_latency_ms must not exceed p99_latency_ms",
            ));
        }
        let chunks = max_chunks(self.duration_ms);
        counter("audio_chunks_sent", self.audio_chunks_sent, chunks)?;
        counter("audio_chunks_received", self.audio_chunks_received, chunks)?;
        counter("buffer_underruns", self.buffer_underruns, chunks)?;
        counter(
            "reconnection_attempts",
            self.reconnection_attempts,
            max_reconnections(self.duration_ms),
        )?;
        Ok(SessionMetrics {
            implementation_type: self.implementation_type,
            connection_success: self.connection_success,
            connection_time_ms: self.connection_time_ms,
            avg_latency_ms: self.avg_latency_ms,
            p95_latency_ms: self.p95_latency_ms,
            p99_latency_ms: self.p99_latency_ms,
            audio_chunks_sent: self.audio_chunks_sent,
            audio_chunks_received: self.audio_chunks_received,
            buffer_underruns: self.buffer_underruns,
            reconnection_attempts: self.reconnection_attempts,
            duration_ms: self.duration_ms,
            session_id: self.session_id,
        })
    }
}

/// The body of `POST /errors` as sent.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionErrorBody {
    pub error_type: String,
    pub error_message: String,
    #[serde(default)]
    pub stack_trace: Option<String>,
    pub is_retryable: bool,
    pub implementation_type: ImplementationType,
    #[serde(default)]
    pub context: Option<Value>,
    /// The session the error happened in, when the client knows it: the error rate is
    /// the share of sessions with an error, so errors of one session count once.
    #[serde(default)]
    pub session_id: Option<Uuid>,
}

/// One client error, checked; what is stored in `voice_session_errors`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionError {
    /// A short machine-readable kind (`connection_failed`), trimmed.
    pub error_type: String,
    pub error_message: String,
    pub stack_trace: Option<String>,
    pub is_retryable: bool,
    pub implementation_type: ImplementationType,
    /// A JSON object with whatever the client knew at the time.
    pub context: Option<Value>,
    pub session_id: Option<Uuid>,
}

impl SessionErrorBody {
    /// Checks lengths and shapes: a type and a message that say something, a context
    /// that is an object.
    pub fn validate(self) -> Result<SessionError, ApiError> {
        let error_type = self.error_type.trim().to_string();
        text_length("error_type", &error_type, MAX_ERROR_TYPE_CHARS)?;
        if !error_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        {
            return Err(ApiError::bad_field(
                "error_type",
                "error_type may hold only letters, digits and _ - . :",
            ));
        }
        text_length(
            "error_message",
            self.error_message.trim(),
            MAX_ERROR_MESSAGE_CHARS,
        )?;
        let stack_trace = self.stack_trace.filter(|trace| !trace.trim().is_empty());
        if let Some(trace) = &stack_trace {
            text_length("stack_trace", trace, MAX_STACK_TRACE_CHARS)?;
        }
        let context = match self.context {
            None | Some(Value::Null) => None,
            Some(object @ Value::Object(_)) => Some(object),
            Some(_) => {
                return Err(ApiError::bad_field(
                    "context",
                    "context must be a JSON object",
                ));
            }
        };
        Ok(SessionError {
            error_type,
            error_message: self.error_message.trim().to_string(),
            stack_trace,
            is_retryable: self.is_retryable,
            implementation_type: self.implementation_type,
            context,
            session_id: self.session_id,
        })
    }
}

fn milliseconds(field: &'static str, value: f64, max: f64) -> Result<(), ApiError> {
    if !value.is_finite() || value < 0.0 {
        return Err(ApiError::bad_field(
            field,
            format!("{field} must not be negative"),
        ));
    }
    if value > max {
        return Err(ApiError::bad_field(
            field,
            format!("{field} must be at most {max} ms"),
        ));
    }
    Ok(())
}

/// The most audio chunks (sent, received or under-run) a session of `duration_ms` can
/// have: one per [`MIN_AUDIO_CHUNK_MS`], plus [`COUNTER_SLACK`].
pub fn max_chunks(duration_ms: f64) -> i64 {
    (duration_ms / MIN_AUDIO_CHUNK_MS).ceil() as i64 + COUNTER_SLACK
}

/// The most reconnection attempts a session of `duration_ms` can have.
pub fn max_reconnections(duration_ms: f64) -> i64 {
    (duration_ms / MIN_RECONNECTION_INTERVAL_MS).ceil() as i64 + RECONNECTION_SLACK
}

fn counter(field: &'static str, value: i64, max: i64) -> Result<(), ApiError> {
    if value < 0 {
        return Err(ApiError::bad_field(
            field,
            format!("{field} must not be negative"),
        ));
    }
    if value > max {
        return Err(ApiError::bad_field(
            field,
            format!("{field} must be at most {max} for a session of duration_ms"),
        ));
    }
    Ok(())
}

fn text_length(field: &'static str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::bad_field(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > max {
        return Err(ApiError::bad_field(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_json;
    use serde_json::json;

    fn metrics() -> Value {
        json!({
            "implementation_type": "webrtc",
            "connection_success": true,
            "connection_time_ms": 412.5,
            "avg_latency_ms": 180,
            "p95_latency_ms": 320,
            "p99_latency_ms": 410.25,
            "audio_chunks_sent": 1500,
            "audio_chunks_received": 1480,
            "buffer_underruns": 2,
            "reconnection_attempts": 0,
            "duration_ms": 95000,
            "session_id": "6f1c1f0e-8f55-4a4e-9a35-3f7d2b0c9e11"
        })
    }

    fn metrics_with(field: &str, value: Value) -> Value {
        let mut body = metrics();
        body[field] = value;
        body
    }

    fn field_of(error: &ApiError) -> Option<&str> {
        match error {
            ApiError::BadRequest { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    fn check_metrics(body: &Value) -> Result<SessionMetrics, ApiError> {
        parse_json::<SessionMetricsBody>(body.to_string().as_bytes())?.validate()
    }

    fn check_error(body: &Value) -> Result<SessionError, ApiError> {
        parse_json::<SessionErrorBody>(body.to_string().as_bytes())?.validate()
    }

    #[test]
    fn well_formed_metrics_pass_unchanged() {
        let checked = check_metrics(&metrics()).unwrap();
        assert_eq!(checked.implementation_type, ImplementationType::Webrtc);
        assert_eq!(checked.p99_latency_ms, 410.25);
        assert_eq!(checked.audio_chunks_sent, 1500);
        assert!(checked.session_id.is_some());
    }

    #[test]
    fn session_id_is_optional_and_extra_fields_such_as_a_user_id_are_ignored() {
        let mut body = metrics();
        body.as_object_mut().unwrap().remove("session_id");
        body["user_id"] = json!("00000000-0000-0000-0000-000000000001");
        let checked = check_metrics(&body).unwrap();
        assert_eq!(checked.session_id, None);
    }

    #[test]
    fn negative_counters_are_refused_naming_the_field() {
        for field in [
            "audio_chunks_sent",
            "audio_chunks_received",
            "buffer_underruns",
            "reconnection_attempts",
        ] {
            let error = check_metrics(&metrics_with(field, json!(-1))).unwrap_err();
            assert_eq!(error.status(), 400);
            assert_eq!(field_of(&error), Some(field), "{error:?}");
        }
    }

    #[test]
    fn negative_times_are_refused_naming_the_field() {
        for field in [
            "connection_time_ms",
            "avg_latency_ms",
            "p95_latency_ms",
            "p99_latency_ms",
            "duration_ms",
        ] {
            let error = check_metrics(&metrics_with(field, json!(-0.5))).unwrap_err();
            assert_eq!(field_of(&error), Some(field), "{error:?}");
        }
    }

    #[test]
    fn p95_above_p99_is_refused_naming_p95() {
        let body = metrics_with("p95_latency_ms", json!(500));
        let error = check_metrics(&body).unwrap_err();
        assert_eq!(field_of(&error), Some("p95_latency_ms"));
        assert!(error.to_string().contains("p99_latency_ms"));
        let equal = metrics_with("p95_latency_ms", json!(410.25));
        assert!(check_metrics(&equal).is_ok());
    }

    #[test]
    fn an_average_above_p99_is_accepted_because_a_skewed_session_has_one() {
        let body = metrics_with("avg_latency_ms", json!(450));
        assert!(check_metrics(&body).is_ok());
    }

    #[test]
    fn unknown_implementation_type_is_refused_naming_the_field() {
        let error = check_metrics(&metrics_with(
            "implementation_type",
            json!("carrier-pigeon"),
        ))
        .unwrap_err();
        assert_eq!(field_of(&error), Some("implementation_type"));
    }

    #[test]
    fn mistyped_and_missing_fields_are_named() {
        let error = check_metrics(&metrics_with("buffer_underruns", json!(1.5))).unwrap_err();
        assert_eq!(field_of(&error), Some("buffer_underruns"));
        let error = check_metrics(&metrics_with("connection_success", json!("yes"))).unwrap_err();
        assert_eq!(field_of(&error), Some("connection_success"));
        let error = check_metrics(&metrics_with("session_id", json!("not-a-uuid"))).unwrap_err();
        assert_eq!(field_of(&error), Some("session_id"));
        let mut body = metrics();
        body.as_object_mut().unwrap().remove("duration_ms");
        let error = check_metrics(&body).unwrap_err();
        assert_eq!(field_of(&error), Some("duration_ms"));
    }

    #[test]
    fn values_beyond_any_real_session_are_refused() {
        let error = check_metrics(&metrics_with("p99_latency_ms", json!(MAX_LATENCY_MS + 1.0)))
            .unwrap_err();
        assert_eq!(field_of(&error), Some("p99_latency_ms"));
        let error =
            check_metrics(&metrics_with("duration_ms", json!(MAX_DURATION_MS + 1.0))).unwrap_err();
        assert_eq!(field_of(&error), Some("duration_ms"));
        // 95 s of session: at most 9,500 chunks and 100 more.
        for field in [
            "audio_chunks_sent",
            "audio_chunks_received",
            "buffer_underruns",
        ] {
            assert!(
                check_metrics(&metrics_with(field, json!(9_600))).is_ok(),
                "{field}"
            );
            let error = check_metrics(&metrics_with(field, json!(9_601))).unwrap_err();
            assert_eq!(field_of(&error), Some(field));
        }
        let error =
            check_metrics(&metrics_with("buffer_underruns", json!(100_000_000))).unwrap_err();
        assert_eq!(field_of(&error), Some("buffer_underruns"));
        assert!(check_metrics(&metrics_with("reconnection_attempts", json!(105))).is_ok());
        let error = check_metrics(&metrics_with("reconnection_attempts", json!(106))).unwrap_err();
        assert_eq!(field_of(&error), Some("reconnection_attempts"));
        // A day-long session's budget fits the integer columns.
        assert!(max_chunks(MAX_DURATION_MS) < i64::from(i32::MAX));
    }

    #[test]
    fn implementation_type_round_trips_through_its_string() {
        for implementation in ImplementationType::ALL {
            assert_eq!(
                implementation.as_str().parse::<ImplementationType>(),
                Ok(implementation)
            );
        }
        assert!("WebRTC".parse::<ImplementationType>().is_err());
    }

    fn error_body() -> Value {
        json!({
            "error_type": "connection_failed",
            "error_message": "ICE negotiation failed",
            "stack_trace": "Error: ICE negotiation failed\n    at connect (client.ts:10)",
            "is_retryable": true,
            "implementation_type": "webrtc",
            "context": {"attempt": 2}
        })
    }

    #[test]
    fn well_formed_error_passes_with_optional_parts() {
        let checked = check_error(&error_body()).unwrap();
        assert_eq!(checked.error_type, "connection_failed");
        assert_eq!(checked.context, Some(json!({"attempt": 2})));
        let mut minimal = error_body();
        minimal.as_object_mut().unwrap().remove("stack_trace");
        minimal.as_object_mut().unwrap().remove("context");
        let checked = check_error(&minimal).unwrap();
        assert_eq!(checked.stack_trace, None);
        assert_eq!(checked.context, None);
    }

    #[test]
    fn error_fields_are_checked_and_named() {
        let mut body = error_body();
        body["error_type"] = json!("  ");
        assert_eq!(
            field_of(&check_error(&body).unwrap_err()),
            Some("error_type")
        );
        let mut body = error_body();
        body["error_type"] = json!("drop table; --");
        assert_eq!(
            field_of(&check_error(&body).unwrap_err()),
            Some("error_type")
        );
        let mut body = error_body();
        body["error_message"] = json!("x".repeat(MAX_ERROR_MESSAGE_CHARS + 1));
        assert_eq!(
            field_of(&check_error(&body).unwrap_err()),
            Some("error_message")
        );
        let mut body = error_body();
        body["context"] = json!([1, 2]);
        assert_eq!(field_of(&check_error(&body).unwrap_err()), Some("context"));
        let mut body = error_body();
        body["is_retryable"] = json!("true");
        assert_eq!(
            field_of(&check_error(&body).unwrap_err()),
            Some("is_retryable")
        );
        let mut body = error_body();
        body["implementation_type"] = json!("grpc");
        assert_eq!(
            field_of(&check_error(&body).unwrap_err()),
            Some("implementation_type")
        );
    }
}
