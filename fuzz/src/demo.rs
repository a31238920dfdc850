//! `demo`: what clients send the demo relay. Byte 0 chooses the parser: the SDP offer
//! check, the interaction batch, the session creation and end bodies, or the route and
//! query (path segments, ids, `?type=`).
//!
//! Oracle: an accepted offer is the body itself, starting with `v=0` and holding an
//! `m=` line; an accepted batch holds 1–100 items, each transcript at most 20,000
//! characters and each word list an array; every refusal is a `400` (or `404` for a
//! route) naming a field.

use voice_edge_shared::ApiError;
use voice_edge_shared::demo::Route;
use voice_edge_shared::demo::requests::{
    CreateSessionRequest, EndSessionRequest, MAX_BATCH_ITEMS, MAX_TRANSCRIPT_CHARS,
    check_sdp_offer, parse_interaction_batch, parse_path_id, parse_type_filter,
};
use voice_edge_shared::http::parse_json;

use crate::{mode, text};

pub fn run(data: &[u8]) {
    let (mode, body) = mode(data);
    match mode % 5 {
        0 => sdp(body),
        1 => batch(body),
        2 => {
            if let Err(error) = parse_json::<CreateSessionRequest>(body) {
                assert_bad_request(&error);
            }
        }
        3 => {
            if let Err(error) = parse_json::<EndSessionRequest>(body) {
                assert_bad_request(&error);
            }
        }
        _ => route(&text(body)),
    }
}

fn sdp(body: &[u8]) {
    match check_sdp_offer(body) {
        Ok(offer) => {
            assert_eq!(offer.as_bytes(), body);
            assert!(offer.starts_with("v=0"));
            assert!(offer.lines().any(|line| line.starts_with("m=")));
        }
        Err(error) => assert_eq!(field(&error), Some("sdp")),
    }
}

fn batch(body: &[u8]) {
    match parse_interaction_batch(body) {
        Ok(items) => {
            assert!((1..=MAX_BATCH_ITEMS).contains(&items.len()));
            for item in items {
                if let Some(transcript) = item.transcript {
                    assert!(transcript.chars().count() <= MAX_TRANSCRIPT_CHARS);
                }
                if let Some(words) = item.words {
                    assert!(words.is_array(), "words stored as {words}");
                }
            }
        }
        Err(error) => assert_bad_request(&error),
    }
}

/// `path` is the path below the function and, after a `?`, the query's `type`.
fn route(path: &str) {
    let (path, filter) = path.split_once('?').unwrap_or((path, ""));
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match Route::parse(&segments) {
        Ok(Route::GetActivity(id)) | Ok(Route::Session(id, _)) => {
            assert!(segments.contains(&id));
            if let Err(error) = parse_path_id(id, "id") {
                assert_eq!(field(&error), Some("id"));
            }
        }
        Ok(route) => assert!(matches!(route.method(), "GET" | "POST")),
        Err(error) => assert_eq!(error.status(), 404),
    }
    if let Err(error) = parse_type_filter(Some(filter)) {
        assert_eq!(field(&error), Some("type"));
    }
}

fn assert_bad_request(error: &ApiError) {
    assert_eq!(error.status(), 400, "{error:?}");
}

fn field(error: &ApiError) -> Option<&str> {
    assert_bad_request(error);
    match error {
        ApiError::BadRequest { field, .. } => field.as_deref(),
        _ => None,
    }
}
