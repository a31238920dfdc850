//! `monitoring`: what `voice-monitoring` parses. Byte 0 chooses: a metrics body
//! (parsed as the function parses it, then [`SessionMetricsBody::validate`]), an error
//! body ([`SessionErrorBody::validate`]), a rollout body ([`RolloutBody::validate`]) or
//! the `hours` query parameter ([`window_hours`]).
//!
//! Oracle: validated metrics are finite, not negative, within their maxima, with
//! `p95 ≤ p99`; a validated error has a short `error_type` of the allowed characters,
//! a message that says something and an object (or no) context; a validated rollout is
//! 0–100 % with a reason; every refusal is a `400`.

use voice_edge_shared::http::parse_json;
use voice_edge_shared::monitoring::ingest::{
    MAX_CONNECTION_TIME_MS, MAX_DURATION_MS, MAX_ERROR_MESSAGE_CHARS, MAX_ERROR_TYPE_CHARS,
    MAX_LATENCY_MS, MAX_STACK_TRACE_CHARS, SessionErrorBody, SessionMetricsBody, max_chunks,
    max_reconnections,
};
use voice_edge_shared::monitoring::rollout::{MAX_REASON_CHARS, RolloutBody};
use voice_edge_shared::monitoring::window_hours;

use crate::{mode, text};

pub fn run(data: &[u8]) {
    let (mode, body) = mode(data);
    match mode % 4 {
        0 => metrics(body),
        1 => error(body),
        2 => rollout(body),
        _ => match window_hours(Some(&text(body))) {
            Ok(hours) => assert!((1..=720).contains(&hours)),
            Err(error) => assert_eq!(error.status(), 400),
        },
    }
}

fn metrics(body: &[u8]) {
    let validated = parse_json::<SessionMetricsBody>(body).and_then(SessionMetricsBody::validate);
    let metrics = match validated {
        Ok(metrics) => metrics,
        Err(error) => return assert_eq!(error.status(), 400),
    };
    for (value, max) in [
        (metrics.connection_time_ms, MAX_CONNECTION_TIME_MS),
        (metrics.avg_latency_ms, MAX_LATENCY_MS),
        (metrics.p95_latency_ms, MAX_LATENCY_MS),
        (metrics.p99_latency_ms, MAX_LATENCY_MS),
        (metrics.duration_ms, MAX_DURATION_MS),
    ] {
        assert!(value.is_finite() && (0.0..=max).contains(&value), "{value}");
    }
    assert!(metrics.p95_latency_ms <= metrics.p99_latency_ms);
    for counter in [
        metrics.audio_chunks_sent,
        metrics.audio_chunks_received,
        metrics.buffer_underruns,
    ] {
        assert!(
            (0..=max_chunks(metrics.duration_ms)).contains(&counter),
            "{counter}"
        );
    }
    assert!(
        (0..=max_reconnections(metrics.duration_ms)).contains(&metrics.reconnection_attempts),
        "{}",
        metrics.reconnection_attempts
    );
}

fn error(body: &[u8]) {
    let validated = parse_json::<SessionErrorBody>(body).and_then(SessionErrorBody::validate);
    let error = match validated {
        Ok(error) => error,
        Err(error) => return assert_eq!(error.status(), 400),
    };
    let chars = error.error_type.chars().count();
    assert!((1..=MAX_ERROR_TYPE_CHARS).contains(&chars));
    assert!(
        error
            .error_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
    );
    assert!(!error.error_message.trim().is_empty());
    assert!(error.error_message.chars().count() <= MAX_ERROR_MESSAGE_CHARS);
    if let Some(trace) = &error.stack_trace {
        assert!(trace.chars().count() <= MAX_STACK_TRACE_CHARS);
    }
    if let Some(context) = &error.context {
        assert!(context.is_object());
    }
}

fn rollout(body: &[u8]) {
    let validated = parse_json::<RolloutBody>(body).and_then(RolloutBody::validate);
    let request = match validated {
        Ok(request) => request,
        Err(error) => return assert_eq!(error.status(), 400),
    };
    assert!((0..=100).contains(&request.target.rollout_percentage));
    assert!(!request.reason.trim().is_empty());
    assert!(request.reason.chars().count() <= MAX_REASON_CHARS);
}
