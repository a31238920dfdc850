//! The responses' JSON: every response type, filled with random values (any Unicode,
//! astral characters and control characters included), serialised as a reply
//! serialises it and parsed back, has exactly the contract's keys, each holding the
//! value it was given; the types that are also read back (citations, word scores) make
//! the whole round trip; every error body is `{code, message, error}` (plus `field`, or
//! the extras of a `503`), with the status as `code`, and never shows the detail that is
//! meant for the log.

use proptest::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;
use voice_edge_shared::ApiError;
use voice_edge_shared::health::HealthReport;
use voice_edge_shared::monitoring::FlagReport;
use voice_edge_shared::monitoring::rules::ImplementationReport;
use voice_edge_shared::personas::Persona;
use voice_edge_shared::practice::event::WordScore;
use voice_edge_shared::search::SearchAnswer;
use voice_edge_shared::search::openai::Citation;
use voice_edge_shared::token::{FallbackAnswer, FlagAnswer, TokenAnswer};

/// What a reply sends: `serde_json::to_vec`, read back as a browser would.
fn sent(value: &impl Serialize) -> Value {
    let bytes = serde_json::to_vec(value).expect("a response serialises");
    serde_json::from_slice(&bytes).expect("a response is JSON")
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn sorted(mut keys: Vec<&str>) -> Vec<&str> {
    keys.sort_unstable();
    keys
}

fn text() -> impl Strategy<Value = String> {
    let character = prop_oneof![
        4 => prop::char::range(' ', '~'),
        1 => prop::char::range('\0', '\u{1f}'),
        2 => prop::char::range('\u{80}', '\u{ffff}'),
        2 => prop::char::range('\u{10000}', '\u{10ffff}'),
    ];
    prop::collection::vec(character, 0..24).prop_map(|chars| chars.into_iter().collect())
}

fn implementation() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["webrtc", "websocket"])
}

/// A finite number survives the trip to within one unit in the last place.
fn same_number(sent: &Value, expected: f64) -> bool {
    sent.as_f64()
        .is_some_and(|got| (got - expected).abs() <= expected.abs() * f64::EPSILON)
}

fn optional_number(sent: &Value, expected: Option<f64>) -> bool {
    match expected {
        None => sent.is_null(),
        Some(expected) => same_number(sent, expected),
    }
}

proptest! {
    #![proptest_config(crate::config(2_000))]

    #[test]
    fn token_answers_keep_their_shape(
        token in text(), model in text(), voice in text(), language in text(),
        expires_at in any::<i64>(), session in any::<u128>(), bucket in prop::option::of(0u8..100),
        enrolled in any::<bool>(), refresh_count in 0i32..6, tutor in any::<bool>(),
        implementation in implementation(),
    ) {
        let persona = if tutor { Persona::StudentTutor } else { Persona::DemoGuide };
        let answer = TokenAnswer {
            success: true,
            token: token.clone(),
            expires_at,
            session_id: Uuid::from_u128(session),
            mode: "realtime",
            implementation,
            model: model.clone(),
            voice: voice.clone(),
            persona,
            language: language.clone(),
            enrolled,
            bucket,
            refresh_count,
            refreshes_left: 5 - refresh_count,
        };
        let body = sent(&answer);
        prop_assert_eq!(keys(&body), sorted(vec![
            "success", "token", "expiresAt", "sessionId", "mode", "implementation", "model",
            "voice", "persona", "language", "enrolled", "bucket", "refreshCount", "refreshesLeft",
        ]));
        prop_assert_eq!(&body["token"], &json!(token));
        prop_assert_eq!(&body["expiresAt"], &json!(expires_at));
        prop_assert_eq!(&body["sessionId"], &json!(Uuid::from_u128(session).to_string()));
        prop_assert_eq!(&body["mode"], "realtime");
        prop_assert_eq!(&body["implementation"], implementation);
        prop_assert_eq!(&body["model"], &json!(model));
        prop_assert_eq!(&body["voice"], &json!(voice));
        prop_assert_eq!(&body["persona"], persona.as_str());
        prop_assert_eq!(&body["language"], &json!(language));
        prop_assert_eq!(&body["enrolled"], enrolled);
        prop_assert_eq!(&body["bucket"], &json!(bucket));
        prop_assert_eq!(&body["refreshCount"], refresh_count);
        prop_assert_eq!(&body["refreshesLeft"], 5 - refresh_count);

        let fallback = sent(&FallbackAnswer {
            success: true, mode: "fallback", implementation, enrolled: false, bucket,
        });
        prop_assert_eq!(keys(&fallback), sorted(vec!["success", "mode", "implementation", "enrolled", "bucket"]));
        prop_assert_eq!(&fallback["bucket"], &json!(bucket));
        prop_assert_eq!(&fallback["enrolled"], false);

        let flag = sent(&FlagAnswer {
            flag: model.clone(), enabled: enrolled, rollout_percentage: refresh_count * 20,
            bucket, enrolled, implementation,
        });
        prop_assert_eq!(keys(&flag), sorted(vec![
            "flag", "enabled", "rollout_percentage", "bucket", "enrolled", "implementation",
        ]));
        prop_assert_eq!(&flag["flag"], &json!(model));
        prop_assert_eq!(&flag["rollout_percentage"], refresh_count * 20);
    }

    #[test]
    fn search_answers_keep_their_citations(
        answer in text(),
        citations in prop::collection::vec((text(), text()), 0..6),
        cached in any::<bool>(), stale in any::<bool>(), took_ms in any::<u64>(),
    ) {
        let citations: Vec<Citation> = citations
            .into_iter()
            .map(|(url, title)| Citation { url, title })
            .collect();
        let body = sent(&SearchAnswer {
            answer: answer.clone(), citations: citations.clone(), cached, stale, took_ms,
        });
        prop_assert_eq!(keys(&body), sorted(vec!["answer", "citations", "cached", "stale", "took_ms"]));
        prop_assert_eq!(&body["answer"], &json!(answer));
        prop_assert_eq!(&body["took_ms"], &json!(took_ms));
        let back: Vec<Citation> = serde_json::from_value(body["citations"].clone()).unwrap();
        prop_assert_eq!(back, citations);
    }

    #[test]
    fn word_scores_make_the_whole_round_trip(
        word in text(), score in -1.0e6f64..1.0e6, start_ms in any::<i64>(), end_ms in any::<i64>(),
    ) {
        let original = WordScore { word, score, start_ms, end_ms };
        let body = sent(&original);
        prop_assert_eq!(keys(&body), sorted(vec!["word", "score", "start_ms", "end_ms"]));
        let back: WordScore = serde_json::from_value(body).unwrap();
        prop_assert_eq!(&back.word, &original.word);
        prop_assert_eq!((back.start_ms, back.end_ms), (start_ms, end_ms));
        prop_assert!((back.score - score).abs() <= score.abs() * f64::EPSILON);
    }

    #[test]
    fn health_and_summary_parts_keep_their_shape(
        database in any::<bool>(), api_key in any::<bool>(), realtime in prop::option::of(any::<bool>()),
        timestamp in text(),
        sessions in 0i64..1_000_000, successful in 0i64..1_000_000, errors in 0i64..1_000_000,
        rates in prop::collection::vec(prop::option::of(0.0f64..1.0e6), 6),
        percentage in 0i64..=100, updated_at in prop::option::of(text()),
    ) {
        let health = sent(&HealthReport::from_probes(database, api_key, realtime, timestamp.clone()));
        prop_assert_eq!(keys(&health), sorted(vec![
            "status", "database", "apiKey", "realtimeAPI", "timestamp", "version",
        ]));
        let status = if !database {
            "unhealthy"
        } else if !api_key || realtime == Some(false) {
            "degraded"
        } else {
            "healthy"
        };
        prop_assert_eq!(&health["status"], status);
        prop_assert_eq!(&health["realtimeAPI"], &json!(realtime));
        prop_assert_eq!(&health["timestamp"], &json!(timestamp));

        let report = ImplementationReport {
            sessions,
            successful_sessions: successful,
            success_rate_percent: rates[0],
            avg_latency_ms: rates[1],
            p95_latency_ms: rates[2],
            p99_latency_ms: rates[3],
            errors,
            error_sessions: errors / 2,
            users: successful / 3,
            error_rate_percent: rates[4],
            buffer_underruns_per_session: rates[5],
            reconnections_per_session: rates[0],
        };
        let body = sent(&report);
        prop_assert_eq!(keys(&body), sorted(vec![
            "sessions", "successful_sessions", "success_rate_percent", "avg_latency_ms",
            "p95_latency_ms", "p99_latency_ms", "errors", "error_sessions", "users",
            "error_rate_percent", "buffer_underruns_per_session", "reconnections_per_session",
        ]));
        prop_assert_eq!(&body["sessions"], sessions);
        prop_assert_eq!(&body["errors"], errors);
        prop_assert_eq!(&body["error_sessions"], errors / 2);
        prop_assert_eq!(&body["users"], successful / 3);
        for (key, rate) in [
            ("success_rate_percent", rates[0]), ("avg_latency_ms", rates[1]),
            ("p95_latency_ms", rates[2]), ("p99_latency_ms", rates[3]),
            ("error_rate_percent", rates[4]), ("buffer_underruns_per_session", rates[5]),
        ] {
            prop_assert!(optional_number(&body[key], rate), "{}: {} for {:?}", key, body[key], rate);
        }

        let flag = sent(&FlagReport {
            name: "voice_webrtc_migration", enabled: database, rollout_percentage: percentage,
            updated_at: updated_at.clone(),
        });
        prop_assert_eq!(keys(&flag), sorted(vec!["name", "enabled", "rollout_percentage", "updated_at"]));
        prop_assert_eq!(&flag["updated_at"], &json!(updated_at));
    }

    #[test]
    fn error_bodies_are_code_message_error_and_never_the_log_detail(
        message in text(), field in prop::option::of(text()), detail in "[a-z]{12}",
        retry_after in 1u64..3_600, extra_value in text(), variant in 0usize..12,
    ) {
        // A detail no message contains, so that finding it means it leaked.
        let detail = format!("LOG-ONLY-{detail}");
        let error = match variant {
            0 => ApiError::BadRequest { field: field.clone(), message: message.clone() },
            1 => ApiError::InvalidJwt { reason: detail.clone() },
            2 => ApiError::InvalidSignature { reason: detail.clone() },
            3 => ApiError::Forbidden(message.clone()),
            4 => ApiError::NotFound(message.clone()),
            5 => ApiError::RateLimited { retry_after, message: message.clone() },
            6 => ApiError::Upstream { detail: detail.clone() },
            7 => ApiError::UpstreamTimeout { detail: detail.clone() },
            8 => {
                let mut extra = Map::new();
                extra.insert("mode".into(), json!(extra_value));
                // An extra may not replace the contract's keys.
                extra.insert("code".into(), json!("shadowed"));
                ApiError::ServiceUnavailable {
                    message: message.clone(), retry_after: Some(retry_after), extra,
                    detail: detail.clone(),
                }
            }
            9 => ApiError::DatabaseUnavailable { detail: detail.clone() },
            10 => ApiError::Config { detail: detail.clone() },
            _ => ApiError::Internal { detail: detail.clone() },
        };
        let body = sent(&error.body());
        prop_assert_eq!(&body["code"], &json!(error.status()));
        prop_assert_eq!(&body["error"], &json!(error.code()));
        prop_assert_eq!(&body["message"], &json!(error.to_string()));
        let mut expected = vec!["code", "message", "error"];
        if variant == 0 && field.is_some() {
            expected.push("field");
            prop_assert_eq!(&body["field"], &json!(field));
        }
        if variant == 8 {
            expected.push("mode");
            prop_assert_eq!(&body["mode"], &json!(extra_value));
        }
        prop_assert_eq!(keys(&body), sorted(expected));
        let text = serde_json::to_string(&body).unwrap();
        prop_assert!(!text.contains("LOG-ONLY-"), "the body shows the log detail: {}", text);
        prop_assert!((400..=599).contains(&error.status()));
    }
}

/// `same_number` can fail: a number changed in transit is caught.
#[test]
fn a_changed_number_is_noticed() {
    assert!(same_number(&json!(0.1), 0.1));
    assert!(!same_number(&json!(0.1), 0.1000001));
    assert!(!same_number(&Value::Null, 0.1));
    assert!(optional_number(&Value::Null, None));
}
