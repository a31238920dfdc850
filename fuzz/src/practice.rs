//! `practice_event`: ClassConnect's delivery bodies, every event type, through
//! [`parse_body`] (what the webhook runs on a verified body), then [`plan_changes`]
//! against a session that already has attempts.
//!
//! Oracle: the variant matches the body (not JSON: `Malformed`; JSON without a string
//! `type`: `Invalid` without a type; an unknown `type`: `Unknown` with that type); a
//! parsed event has the body's type and session id, a score within 0–100 with at most
//! 2 places and a sentence index that is not negative; every refusal is a `400`; the
//! planned changes never move a status backwards.

use std::str::FromStr;

use serde_json::Value;
use uuid::Uuid;
use voice_edge_shared::practice::apply::{AttemptState, SessionState, plan_changes};
use voice_edge_shared::practice::event::{EventKind, ParsedBody, parse_body};
use voice_edge_shared::practice::status::{AttemptStatus, SessionStatus};

const TYPES: [&str; 5] = [
    "practice.transcript.improved",
    "practice.sentences.extracted",
    "practice.attempt.scored",
    "practice.attempt.failed",
    "practice.session.failed",
];

pub fn run(data: &[u8]) {
    let parsed = parse_body(data);
    let json = serde_json::from_slice::<Value>(data).ok();
    let claimed_type = json
        .as_ref()
        .and_then(|value| value.get("type"))
        .and_then(Value::as_str);
    // Whatever the variant, the webhook records a type for it.
    let recorded = parsed.event_type().to_string();
    match (&parsed, &json) {
        (ParsedBody::Malformed { error }, None) => assert_eq!(error.status(), 400),
        (ParsedBody::Malformed { .. }, Some(_)) => panic!("JSON body called malformed"),
        (_, None) => panic!("a body that is not JSON was not called malformed"),
        (ParsedBody::Invalid { event_type, error }, Some(_)) => {
            assert_eq!(error.status(), 400);
            assert_eq!(event_type.as_deref(), claimed_type);
        }
        (ParsedBody::Unknown { event_type }, Some(_)) => {
            assert_eq!(Some(event_type.as_str()), claimed_type);
            assert!(
                !TYPES.contains(&event_type.as_str()),
                "{event_type} is known"
            );
        }
        (ParsedBody::Event(event), Some(json)) => {
            assert_eq!(Some(event.event_type.as_str()), claimed_type);
            assert_eq!(recorded, event.event_type.as_str());
            let session_id = json["data"]["session_id"].as_str().map(Uuid::from_str);
            assert_eq!(session_id, Some(Ok(event.session_id)));
            if let EventKind::AttemptScored(score) = &event.kind {
                let zero = rust_decimal::Decimal::ZERO;
                let hundred = rust_decimal::Decimal::ONE_HUNDRED;
                assert!((zero..=hundred).contains(&score.pronunciation_score));
                assert!(score.pronunciation_score.scale() <= 2);
                assert!(score.sentence_index >= 0);
            }
            plan_against_sessions(event);
        }
    }
}

/// Plans the event against sessions in every status, with an attempt of the event's id
/// (when it has one) in every status; no plan moves a status backwards.
fn plan_against_sessions(event: &voice_edge_shared::practice::event::PracticeEvent) {
    let attempt_id = match &event.kind {
        EventKind::AttemptScored(score) => Some(score.attempt_id),
        EventKind::AttemptFailed { attempt_id, .. } => Some(*attempt_id),
        _ => None,
    };
    for status in [
        SessionStatus::Pending,
        SessionStatus::Processing,
        SessionStatus::Analyzing,
        SessionStatus::Completed,
        SessionStatus::Failed,
    ] {
        for attempt_status in [
            AttemptStatus::Pending,
            AttemptStatus::Completed,
            AttemptStatus::Failed,
        ] {
            let session = SessionState {
                id: event.session_id,
                status,
                sentence_count: Some(2),
                last_event_at: Some(event.at - chrono::Duration::seconds(1)),
                attempts: attempt_id
                    .map(|id| AttemptState {
                        id,
                        status: attempt_status,
                        sentence_index: Some(0),
                        pronunciation_score: Some(rust_decimal::Decimal::new(5000, 2)),
                        is_passed: Some(true),
                        last_event_at: None,
                    })
                    .into_iter()
                    .collect(),
            };
            let changes = plan_changes(&session, event);
            if let Some(next) = changes.session().and_then(|change| change.status) {
                assert!(status.may_become(next), "{status} became {next}");
            }
        }
    }
}
