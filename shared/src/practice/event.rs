//! ClassConnect's event bodies: `{"type": <event type>, "timestamp": <RFC 3339>,
//! "data": {…}}`, parsed and validated into a [`PracticeEvent`].
//!
//! Parsing is pure and runs over the raw body bytes a signature was checked against.
//! Every refusal is a `400` naming the field at fault (`data.session_id`,
//! `data.pronunciation_score`, …); the messages never quote a transcript.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::scores::round_score;
use crate::error::ApiError;
use crate::http::parse_json;

/// The event types this function acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    TranscriptImproved,
    SentencesExtracted,
    AttemptScored,
    AttemptFailed,
    SessionFailed,
}

impl EventType {
    /// The `type` ClassConnect sends.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::TranscriptImproved => "practice.transcript.improved",
            EventType::SentencesExtracted => "practice.sentences.extracted",
            EventType::AttemptScored => "practice.attempt.scored",
            EventType::AttemptFailed => "practice.attempt.failed",
            EventType::SessionFailed => "practice.session.failed",
        }
    }
}

impl FromStr for EventType {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [
            EventType::TranscriptImproved,
            EventType::SentencesExtracted,
            EventType::AttemptScored,
            EventType::AttemptFailed,
            EventType::SessionFailed,
        ]
        .into_iter()
        .find(|event_type| event_type.as_str() == text)
        .ok_or(())
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One word of `word_level_scores`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordScore {
    pub word: String,
    pub score: f64,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// The results of a `practice.attempt.scored` event.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptScore {
    pub attempt_id: Uuid,
    pub sentence_index: i32,
    /// 0–100, rounded to the stored 2 places.
    pub pronunciation_score: Decimal,
    pub is_passed: bool,
    pub pronunciation_analysis: Value,
    pub feedback_data: Value,
    pub transcription_results: Value,
    pub word_level_scores: Vec<WordScore>,
}

/// What an event says happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    TranscriptImproved {
        improved_transcript: String,
    },
    SentencesExtracted {
        sentences: Vec<String>,
    },
    AttemptScored(Box<AttemptScore>),
    AttemptFailed {
        attempt_id: Uuid,
        error_message: String,
    },
    SessionFailed {
        error_message: String,
    },
}

/// A validated event of a known type.
#[derive(Debug, Clone, PartialEq)]
pub struct PracticeEvent {
    pub event_type: EventType,
    /// When it happened at ClassConnect (UTC): the order of events is this order.
    pub at: NaiveDateTime,
    pub session_id: Uuid,
    pub kind: EventKind,
}

/// What a delivery's body turned out to be.
#[derive(Debug)]
pub enum ParsedBody {
    Event(PracticeEvent),
    /// Valid JSON with a `type` this function does not handle.
    Unknown {
        event_type: String,
    },
    /// Not JSON at all: refused with a `400`.
    Malformed {
        error: ApiError,
    },
    /// JSON, refused with a `400`; `event_type` is what the body claimed, when it said.
    Invalid {
        event_type: Option<String>,
        error: ApiError,
    },
}

impl ParsedBody {
    /// The `type` to record for the delivery.
    pub fn event_type(&self) -> &str {
        match self {
            ParsedBody::Event(event) => event.event_type.as_str(),
            ParsedBody::Unknown { event_type } => event_type,
            ParsedBody::Malformed { .. } => UNREADABLE_TYPE,
            ParsedBody::Invalid { event_type, .. } => {
                event_type.as_deref().unwrap_or(UNREADABLE_TYPE)
            }
        }
    }
}

/// The `event_type` recorded for a body that does not say its type.
pub const UNREADABLE_TYPE: &str = "unknown";

/// Parses and validates a delivery's body.
pub fn parse_body(body: &[u8]) -> ParsedBody {
    let event_type = match serde_json::from_slice::<Value>(body) {
        Ok(value) => {
            let event_type = value
                .get("type")
                .and_then(Value::as_str)
                .filter(|text| !text.contains('\0'))
                .map(str::to_string);
            // Text that PostgreSQL cannot store, anywhere in the body: refused, whatever
            // the type, so that the delivery is kept as `failed` (its bytes in
            // `raw_body`) instead of failing to be stored at all.
            if let Some(field) = crate::http::nul_field(body) {
                return ParsedBody::Invalid {
                    event_type,
                    error: crate::http::nul_refusal(field),
                };
            }
            event_type
        }
        Err(error) => {
            return ParsedBody::Malformed {
                error: ApiError::bad_request(format!("Malformed JSON body: {error}")),
            };
        }
    };
    let Some(event_type) = event_type else {
        return ParsedBody::Invalid {
            event_type: None,
            error: ApiError::bad_field("type", "missing or not a string: the event type"),
        };
    };
    let Ok(known) = event_type.parse::<EventType>() else {
        return ParsedBody::Unknown { event_type };
    };
    match parse_known(known, body) {
        Ok(event) => ParsedBody::Event(event),
        Err(error) => ParsedBody::Invalid {
            event_type: Some(event_type),
            error,
        },
    }
}

#[derive(Deserialize)]
struct Envelope<D> {
    timestamp: String,
    data: D,
}

#[derive(Deserialize)]
struct TranscriptImprovedData {
    session_id: Uuid,
    improved_transcript: String,
}

#[derive(Deserialize)]
struct SentencesExtractedData {
    session_id: Uuid,
    sentences: Vec<String>,
}

#[derive(Deserialize)]
struct AttemptScoredData {
    session_id: Uuid,
    attempt_id: Uuid,
    sentence_index: i32,
    pronunciation_score: f64,
    is_passed: bool,
    pronunciation_analysis: Value,
    feedback_data: Value,
    transcription_results: Value,
    word_level_scores: Vec<WordScore>,
}

#[derive(Deserialize)]
struct AttemptFailedData {
    session_id: Uuid,
    attempt_id: Uuid,
    error_message: String,
}

#[derive(Deserialize)]
struct SessionFailedData {
    session_id: Uuid,
    error_message: String,
}

fn parse_known(event_type: EventType, body: &[u8]) -> Result<PracticeEvent, ApiError> {
    let (at, session_id, kind) = match event_type {
        EventType::TranscriptImproved => {
            let (at, data) = envelope::<TranscriptImprovedData>(body)?;
            let kind = EventKind::TranscriptImproved {
                improved_transcript: data.improved_transcript,
            };
            (at, data.session_id, kind)
        }
        EventType::SentencesExtracted => {
            let (at, data) = envelope::<SentencesExtractedData>(body)?;
            let kind = EventKind::SentencesExtracted {
                sentences: data.sentences,
            };
            (at, data.session_id, kind)
        }
        EventType::AttemptScored => {
            let (at, data) = envelope::<AttemptScoredData>(body)?;
            let score = AttemptScore {
                attempt_id: data.attempt_id,
                sentence_index: sentence_index(data.sentence_index)?,
                pronunciation_score: pronunciation_score(data.pronunciation_score)?,
                is_passed: data.is_passed,
                pronunciation_analysis: data.pronunciation_analysis,
                feedback_data: data.feedback_data,
                transcription_results: data.transcription_results,
                word_level_scores: data.word_level_scores,
            };
            (
                at,
                data.session_id,
                EventKind::AttemptScored(Box::new(score)),
            )
        }
        EventType::AttemptFailed => {
            let (at, data) = envelope::<AttemptFailedData>(body)?;
            let kind = EventKind::AttemptFailed {
                attempt_id: data.attempt_id,
                error_message: data.error_message,
            };
            (at, data.session_id, kind)
        }
        EventType::SessionFailed => {
            let (at, data) = envelope::<SessionFailedData>(body)?;
            let kind = EventKind::SessionFailed {
                error_message: data.error_message,
            };
            (at, data.session_id, kind)
        }
    };
    Ok(PracticeEvent {
        event_type,
        at,
        session_id,
        kind,
    })
}

fn envelope<D: DeserializeOwned>(body: &[u8]) -> Result<(NaiveDateTime, D), ApiError> {
    let envelope: Envelope<D> = parse_json(body)?;
    let at = DateTime::parse_from_rfc3339(&envelope.timestamp)
        .map_err(|_| ApiError::bad_field("timestamp", "must be an RFC 3339 date-time"))?
        .naive_utc();
    Ok((at, envelope.data))
}

fn sentence_index(index: i32) -> Result<i32, ApiError> {
    if index < 0 {
        return Err(ApiError::bad_field(
            "data.sentence_index",
            "must not be negative",
        ));
    }
    Ok(index)
}

fn pronunciation_score(score: f64) -> Result<Decimal, ApiError> {
    let field = "data.pronunciation_score";
    if !(0.0..=100.0).contains(&score) {
        return Err(ApiError::bad_field(field, "must be between 0 and 100"));
    }
    // `f64`'s shortest round-trip text is the number as ClassConnect wrote it.
    let exact = Decimal::from_str(&score.to_string())
        .map_err(|_| ApiError::bad_field(field, "must be a plain number"))?;
    Ok(round_score(exact))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SESSION: &str = "6f1c0d56-2f0e-4f4e-9f5e-0c7c1f7f4a10";
    const ATTEMPT: &str = "0b6b7f8e-81b4-4b8e-a3c2-1d2e3f405162";

    fn scored_body(data_changes: Value) -> Vec<u8> {
        let mut data = json!({
            "session_id": SESSION,
            "attempt_id": ATTEMPT,
            "sentence_index": 1,
            "pronunciation_score": 87.456,
            "is_passed": true,
            "pronunciation_analysis": {"accuracy": 88},
            "feedback_data": {"tips": ["slow down"]},
            "transcription_results": {"text": "hello"},
            "word_level_scores": [{"word": "hello", "score": 91.5, "start_ms": 0, "end_ms": 420}],
        });
        for (key, value) in data_changes.as_object().unwrap() {
            if value.is_null() {
                data.as_object_mut().unwrap().remove(key);
            } else {
                data[key] = value.clone();
            }
        }
        serde_json::to_vec(&json!({
            "type": "practice.attempt.scored",
            "timestamp": "2025-11-22T10:00:00.250+01:00",
            "data": data,
        }))
        .unwrap()
    }

    fn invalid_field(parsed: ParsedBody) -> Option<String> {
        match parsed {
            ParsedBody::Invalid {
                error: ApiError::BadRequest { field, .. },
                ..
            }
            | ParsedBody::Malformed {
                error: ApiError::BadRequest { field, .. },
            } => field,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn a_scored_event_parses_with_its_time_in_utc_and_its_score_rounded() {
        let ParsedBody::Event(event) = parse_body(&scored_body(json!({}))) else {
            panic!("expected an event");
        };
        assert_eq!(event.event_type, EventType::AttemptScored);
        assert_eq!(event.session_id, Uuid::parse_str(SESSION).unwrap());
        assert_eq!(event.at.to_string(), "2025-11-22 09:00:00.250");
        let EventKind::AttemptScored(score) = event.kind else {
            panic!("expected a score");
        };
        assert_eq!(
            score.pronunciation_score,
            Decimal::from_str("87.46").unwrap()
        );
        assert_eq!(score.sentence_index, 1);
        assert_eq!(score.word_level_scores[0].word, "hello");
    }

    #[test]
    fn every_known_type_parses() {
        let bodies = [
            json!({"type": "practice.transcript.improved", "timestamp": "2025-11-22T10:00:00Z",
                   "data": {"session_id": SESSION, "improved_transcript": "Better."}}),
            json!({"type": "practice.sentences.extracted", "timestamp": "2025-11-22T10:00:00Z",
                   "data": {"session_id": SESSION, "sentences": ["One.", "Two."]}}),
            json!({"type": "practice.attempt.failed", "timestamp": "2025-11-22T10:00:00Z",
                   "data": {"session_id": SESSION, "attempt_id": ATTEMPT, "error_message": "no audio"}}),
            json!({"type": "practice.session.failed", "timestamp": "2025-11-22T10:00:00Z",
                   "data": {"session_id": SESSION, "error_message": "timeout"}}),
        ];
        for body in bodies {
            let parsed = parse_body(&serde_json::to_vec(&body).unwrap());
            assert!(matches!(parsed, ParsedBody::Event(_)), "{body}: {parsed:?}");
            assert_eq!(parsed.event_type(), body["type"]);
        }
    }

    #[test]
    fn an_unknown_type_is_reported_as_unknown_not_invalid() {
        let parsed = parse_body(br#"{"type": "practice.audio.uploaded", "data": 7}"#);
        assert!(
            matches!(&parsed, ParsedBody::Unknown { event_type } if event_type == "practice.audio.uploaded")
        );
    }

    #[test]
    fn malformed_json_is_malformed_without_a_type() {
        let parsed = parse_body(b"{\"type\": \"practice.attempt.scored\",");
        assert!(matches!(parsed, ParsedBody::Malformed { .. }));
        assert_eq!(parsed.event_type(), UNREADABLE_TYPE);
        assert_eq!(invalid_field(parsed), None);
    }

    #[test]
    fn a_missing_session_id_names_the_field() {
        let parsed = parse_body(&scored_body(json!({"session_id": null})));
        assert_eq!(parsed.event_type(), "practice.attempt.scored");
        assert_eq!(invalid_field(parsed).as_deref(), Some("data.session_id"));
    }

    #[test]
    fn out_of_range_and_mistyped_values_name_the_field() {
        let cases = [
            (
                json!({"pronunciation_score": 101}),
                "data.pronunciation_score",
            ),
            (
                json!({"pronunciation_score": -0.5}),
                "data.pronunciation_score",
            ),
            (json!({"sentence_index": -1}), "data.sentence_index"),
            (json!({"session_id": "not-a-uuid"}), "data.session_id"),
            (json!({"is_passed": "yes"}), "data.is_passed"),
            (
                json!({"word_level_scores": [{"word": "a", "score": 1}]}),
                "data.word_level_scores[0].start_ms",
            ),
        ];
        for (change, field) in cases {
            let parsed = parse_body(&scored_body(change.clone()));
            assert_eq!(invalid_field(parsed).as_deref(), Some(field), "{change}");
        }
    }

    #[test]
    fn score_bounds_are_inclusive() {
        for score in [0, 100] {
            let parsed = parse_body(&scored_body(json!({"pronunciation_score": score})));
            assert!(matches!(parsed, ParsedBody::Event(_)), "{score}");
        }
    }

    #[test]
    fn a_timestamp_that_is_not_rfc_3339_names_the_field() {
        let body = json!({"type": "practice.session.failed", "timestamp": "yesterday",
                          "data": {"session_id": SESSION, "error_message": "x"}});
        let parsed = parse_body(&serde_json::to_vec(&body).unwrap());
        assert_eq!(invalid_field(parsed).as_deref(), Some("timestamp"));
    }

    #[test]
    fn a_missing_type_names_the_field() {
        assert_eq!(
            invalid_field(parse_body(br#"{"data": {}}"#)).as_deref(),
            Some("type")
        );
    }
}
