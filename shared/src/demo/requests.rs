//! Parsing and validation of what clients send the demo relay: path ids, the session
//! creation body, interaction batches (1–100 items, all valid or none stored), the end
//! body with its telemetry, and the SDP offer.
//!
//! Every refusal is a `400` naming the field at fault (`items[3].words[0].end_ms`), so
//! the frontend can tell which item it got wrong; nothing here touches the database.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::model::{DemoType, InteractionType};
use crate::error::ApiError;
use crate::http::parse_json;

/// Most items in one interaction batch.
pub const MAX_BATCH_ITEMS: usize = 100;
/// Most characters in one transcript.
pub const MAX_TRANSCRIPT_CHARS: usize = 20_000;
/// Most characters in one word of a word-level transcript.
const MAX_WORD_CHARS: usize = 200;

/// A UUID from the path; a malformed one is a `400` naming `field`.
pub fn parse_path_id(segment: &str, field: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(segment)
        .map_err(|_| ApiError::bad_field(field, format!("`{field}` is not a valid UUID")))
}

/// `?type=` of the activity list: absent, or one of the demo types.
pub fn parse_type_filter(value: Option<&str>) -> Result<Option<DemoType>, ApiError> {
    match value {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|error| ApiError::bad_field("type", format!("type: {error}"))),
    }
}

/// `POST /sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CreateSessionRequest {
    pub demo_activity_id: Uuid,
}

/// `POST /sessions/{id}/end`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct EndSessionRequest {
    /// Merged into the session's telemetry, key by key.
    #[serde(default)]
    pub telemetry: Option<Map<String, Value>>,
}

/// One timed word of a transcript, as posted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct WordInput {
    word: String,
    start_ms: i64,
    end_ms: i64,
    #[serde(default)]
    confidence: Option<f64>,
}

/// One interaction, as posted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct InteractionInput {
    interaction_type: InteractionType,
    #[serde(default)]
    transcript: Option<String>,
    #[serde(default)]
    words: Option<Vec<WordInput>>,
    #[serde(default)]
    payload: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct BatchInput {
    items: Vec<InteractionInput>,
}

/// A validated interaction, ready to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInteraction {
    pub interaction_type: InteractionType,
    pub transcript: Option<String>,
    /// A JSON array of `{word, start_ms, end_ms, confidence?}`, or `None`.
    pub words: Option<Value>,
    pub payload: Option<Value>,
}

/// Parses and validates `POST /sessions/{id}/interactions`: all items valid, or a `400`
/// naming the first field at fault.
pub fn parse_interaction_batch(body: &[u8]) -> Result<Vec<NewInteraction>, ApiError> {
    let batch: BatchInput = parse_json(body)?;
    if batch.items.is_empty() || batch.items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::bad_field(
            "items",
            format!(
                "items must hold between 1 and {MAX_BATCH_ITEMS} interactions, got {}",
                batch.items.len()
            ),
        ));
    }
    batch
        .items
        .into_iter()
        .enumerate()
        .map(|(index, item)| validate_item(index, item))
        .collect()
}

fn validate_item(index: usize, item: InteractionInput) -> Result<NewInteraction, ApiError> {
    let at = |field: &str| format!("items[{index}].{field}");

    let transcript = match item.transcript {
        Some(text) if text.chars().count() > MAX_TRANSCRIPT_CHARS => {
            return Err(ApiError::bad_field(
                at("transcript"),
                format!(
                    "{} is longer than {MAX_TRANSCRIPT_CHARS} characters",
                    at("transcript")
                ),
            ));
        }
        other => other,
    };

    let words = match item.words {
        None => None,
        Some(words) => {
            let mut checked = Vec::with_capacity(words.len());
            for (word_index, word) in words.into_iter().enumerate() {
                let field = |name: &str| at(&format!("words[{word_index}].{name}"));
                let text = word.word.trim();
                if text.is_empty() || text.chars().count() > MAX_WORD_CHARS {
                    return Err(ApiError::bad_field(
                        field("word"),
                        format!("{} must be 1 to {MAX_WORD_CHARS} characters", field("word")),
                    ));
                }
                if word.start_ms < 0 {
                    return Err(ApiError::bad_field(
                        field("start_ms"),
                        format!("{} must not be negative", field("start_ms")),
                    ));
                }
                if word.end_ms < word.start_ms {
                    return Err(ApiError::bad_field(
                        field("end_ms"),
                        format!("{} must not be before start_ms", field("end_ms")),
                    ));
                }
                let mut entry =
                    json!({"word": text, "start_ms": word.start_ms, "end_ms": word.end_ms});
                if let Some(confidence) = word.confidence {
                    if !(0.0..=1.0).contains(&confidence) {
                        return Err(ApiError::bad_field(
                            field("confidence"),
                            format!("{} must be between 0 and 1", field("confidence")),
                        ));
                    }
                    entry["confidence"] = json!(confidence);
                }
                checked.push(entry);
            }
            Some(Value::Array(checked))
        }
    };

    if let Some(payload) = &item.payload
        && !payload.is_object()
    {
        return Err(ApiError::bad_field(
            at("payload"),
            format!("{} must be a JSON object", at("payload")),
        ));
    }

    match item.interaction_type {
        InteractionType::UserTranscript | InteractionType::AssistantTranscript => {
            let has_text = transcript
                .as_deref()
                .is_some_and(|text| !text.trim().is_empty());
            if !has_text {
                return Err(ApiError::bad_field(
                    at("transcript"),
                    format!(
                        "{} is required for a {} item",
                        at("transcript"),
                        item.interaction_type
                    ),
                ));
            }
        }
        InteractionType::ToolCall => {
            let named = item
                .payload
                .as_ref()
                .and_then(|payload| payload.get("name"))
                .and_then(Value::as_str)
                .is_some_and(|name| !name.trim().is_empty());
            if !named {
                return Err(ApiError::bad_field(
                    at("payload.name"),
                    format!(
                        "{} (the function's name) is required for a tool_call item",
                        at("payload.name")
                    ),
                ));
            }
        }
        InteractionType::Event => {}
    }

    Ok(NewInteraction {
        interaction_type: item.interaction_type,
        transcript,
        words,
        payload: item.payload,
    })
}

/// Checks that a body is an SDP offer: UTF-8, starting with `v=0`, with at least one
/// media (`m=`) line.
pub fn check_sdp_offer(body: &[u8]) -> Result<&str, ApiError> {
    let not_sdp = |why: &str| {
        ApiError::bad_field("sdp", format!("sdp: the body is not an SDP offer ({why})"))
    };
    let text = std::str::from_utf8(body).map_err(|_| not_sdp("not UTF-8"))?;
    if !text.starts_with("v=0") {
        return Err(not_sdp("it must start with v=0"));
    }
    if !text.lines().any(|line| line.starts_with("m=")) {
        return Err(not_sdp("it has no m= line"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(error: &ApiError) -> Option<&str> {
        match error {
            ApiError::BadRequest { field, .. } => field.as_deref(),
            _ => panic!("expected a 400, got {error:?}"),
        }
    }

    const OFFER: &str = "v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n";

    #[test]
    fn a_browser_offer_passes_the_sdp_check() {
        assert_eq!(check_sdp_offer(OFFER.as_bytes()).unwrap(), OFFER);
    }

    #[test]
    fn bodies_that_are_not_sdp_are_refused_naming_sdp() {
        for body in [
            b"{\"sdp\": \"v=0\"}".as_slice(),
            b"v=0\r\ns=-\r\n",
            b" v=0\r\nm=audio 9 RTP 0\r\n",
            b"",
            &[0xff, 0xfe, 0x00],
        ] {
            let error = check_sdp_offer(body).unwrap_err();
            assert_eq!(field_of(&error), Some("sdp"), "{body:?}");
        }
    }

    #[test]
    fn a_valid_batch_is_parsed_with_word_timings() {
        let body = br#"{"items": [
            {"interaction_type": "user_transcript", "transcript": "the fox",
             "words": [{"word": "the", "start_ms": 0, "end_ms": 200, "confidence": 0.9},
                       {"word": " fox ", "start_ms": 200, "end_ms": 500}]},
            {"interaction_type": "tool_call",
             "payload": {"name": "record_reading_metrics", "arguments": {"words_per_minute": 80}}},
            {"interaction_type": "event", "payload": {"kind": "barge_in"}}
        ]}"#;
        let items = parse_interaction_batch(body).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].interaction_type, InteractionType::UserTranscript);
        assert_eq!(
            items[0].words,
            Some(json!([
                {"word": "the", "start_ms": 0, "end_ms": 200, "confidence": 0.9},
                {"word": "fox", "start_ms": 200, "end_ms": 500}
            ]))
        );
        assert_eq!(
            items[1].payload.as_ref().unwrap()["name"],
            "record_reading_metrics"
        );
        assert_eq!(items[2].transcript, None);
    }

    #[test]
    fn empty_and_oversized_batches_are_refused_naming_items() {
        let error = parse_interaction_batch(br#"{"items": []}"#).unwrap_err();
        assert_eq!(field_of(&error), Some("items"));
        let items: Vec<Value> = (0..101)
            .map(|_| json!({"interaction_type": "event"}))
            .collect();
        let body = serde_json::to_vec(&json!({ "items": items })).unwrap();
        let error = parse_interaction_batch(&body).unwrap_err();
        assert_eq!(field_of(&error), Some("items"));
        let items: Vec<Value> = (0..100)
            .map(|_| json!({"interaction_type": "event"}))
            .collect();
        let body = serde_json::to_vec(&json!({ "items": items })).unwrap();
        assert_eq!(parse_interaction_batch(&body).unwrap().len(), 100);
    }

    #[test]
    fn one_bad_item_refuses_the_batch_naming_its_field() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"interaction_type": "shout"}"#,
                "items[1].interaction_type",
            ),
            (r#"{"transcript": "hi"}"#, "items[1].interaction_type"),
            (
                r#"{"interaction_type": "user_transcript"}"#,
                "items[1].transcript",
            ),
            (
                r#"{"interaction_type": "user_transcript", "transcript": "  "}"#,
                "items[1].transcript",
            ),
            (
                r#"{"interaction_type": "tool_call", "payload": {"arguments": {}}}"#,
                "items[1].payload.name",
            ),
            (
                r#"{"interaction_type": "event", "payload": [1]}"#,
                "items[1].payload",
            ),
            (
                r#"{"interaction_type": "user_transcript", "transcript": "a",
                    "words": [{"word": "a", "start_ms": 10, "end_ms": 5}]}"#,
                "items[1].words[0].end_ms",
            ),
            (
                r#"{"interaction_type": "user_transcript", "transcript": "a",
                    "words": [{"word": "a", "start_ms": -1, "end_ms": 5}]}"#,
                "items[1].words[0].start_ms",
            ),
            (
                r#"{"interaction_type": "user_transcript", "transcript": "a",
                    "words": [{"word": "a", "start_ms": 0, "end_ms": 5, "confidence": 1.5}]}"#,
                "items[1].words[0].confidence",
            ),
            (
                r#"{"interaction_type": "user_transcript", "transcript": "a",
                    "words": [{"word": "", "start_ms": 0, "end_ms": 5}]}"#,
                "items[1].words[0].word",
            ),
            (
                r#"{"interaction_type": "user_transcript", "transcript": "a",
                    "words": [{"word": "a", "start_ms": "zero", "end_ms": 5}]}"#,
                "items[1].words[0].start_ms",
            ),
        ];
        for (bad_item, expected_field) in cases {
            let body = format!(r#"{{"items": [{{"interaction_type": "event"}}, {bad_item}]}}"#);
            let error = parse_interaction_batch(body.as_bytes()).unwrap_err();
            assert_eq!(
                field_of(&error),
                Some(*expected_field),
                "{bad_item}: {error:?}"
            );
        }
    }

    #[test]
    fn an_overlong_transcript_is_refused() {
        let body = serde_json::to_vec(&json!({"items": [
            {"interaction_type": "assistant_transcript", "transcript": "a".repeat(MAX_TRANSCRIPT_CHARS + 1)}
        ]}))
        .unwrap();
        let error = parse_interaction_batch(&body).unwrap_err();
        assert_eq!(field_of(&error), Some("items[0].transcript"));
    }

    #[test]
    fn path_ids_and_type_filters_are_checked() {
        let id = Uuid::new_v4();
        assert_eq!(parse_path_id(&id.to_string(), "session_id").unwrap(), id);
        let error = parse_path_id("not-a-uuid", "session_id").unwrap_err();
        assert_eq!(field_of(&error), Some("session_id"));
        assert_eq!(parse_type_filter(None).unwrap(), None);
        assert_eq!(
            parse_type_filter(Some("speed-quiz")).unwrap(),
            Some(DemoType::SpeedQuiz)
        );
        let error = parse_type_filter(Some("karaoke")).unwrap_err();
        assert_eq!(field_of(&error), Some("type"));
    }

    #[test]
    fn session_and_end_bodies_parse() {
        let id = Uuid::new_v4();
        let body = format!(r#"{{"demo_activity_id": "{id}"}}"#);
        let parsed: CreateSessionRequest = parse_json(body.as_bytes()).unwrap();
        assert_eq!(parsed.demo_activity_id, id);
        let error =
            parse_json::<CreateSessionRequest>(br#"{"demo_activity_id": "nope"}"#).unwrap_err();
        assert_eq!(field_of(&error), Some("demo_activity_id"));
        let error = parse_json::<CreateSessionRequest>(b"{}").unwrap_err();
        assert_eq!(field_of(&error), Some("demo_activity_id"));

        let end: EndSessionRequest = parse_json(br#"{"telemetry": {"latency_ms": 120}}"#).unwrap();
        assert_eq!(end.telemetry.unwrap()["latency_ms"], 120);
        let error = parse_json::<EndSessionRequest>(br#"{"telemetry": [1]}"#).unwrap_err();
        assert_eq!(field_of(&error), Some("telemetry"));
    }
}
