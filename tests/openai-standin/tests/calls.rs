//! `POST /v1/realtime/calls`, the WebRTC unified interface: a multipart `sdp` + `session`
//! body (or a bare `application/sdp` offer) is answered `201` with an SDP answer and the
//! call's `Location`; an offer that is not SDP, a bad session or a malformed body is `400`.

mod common;

use common::{KEY, OFFER, call_session, multipart, post_raw};
use serde_json::json;
use voice_edge_openai_standin::StandIn;

const PATH: &str = "/v1/realtime/calls";
const AUTH: Option<&str> = Some("Bearer sk-test-standin");

#[test]
fn multipart_offer_gets_201_sdp_answer_and_location() {
    let openai = StandIn::start();
    let session = call_session().to_string();
    let (content_type, body) = multipart(&[("sdp", OFFER), ("session", &session)]);
    let answer = post_raw(&openai.base_url(), PATH, &content_type, AUTH, &body);

    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/sdp"));
    assert!(answer.body.starts_with("v=0\r\n"), "{}", answer.body);
    assert!(answer.body.contains("a=group:BUNDLE 0 1\r\n"));
    assert!(answer.body.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"));
    assert!(
        answer
            .body
            .contains("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n")
    );
    let location = answer.header("location").expect("a Location header");
    let call_id = location
        .strip_prefix("/v1/realtime/calls/")
        .expect("the calls path");
    assert!(
        call_id.starts_with("rtc_") && call_id.len() > 4,
        "{location}"
    );
}

#[test]
fn multipart_fields_are_recorded_for_inspection() {
    let openai = StandIn::start();
    let session = call_session().to_string();
    let (content_type, body) = multipart(&[("sdp", OFFER), ("session", &session)]);
    post_raw(&openai.base_url(), PATH, &content_type, AUTH, &body);

    let records = openai.requests_to(PATH);
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.bearer_key(), Some(KEY));
    assert_eq!(record.form_field("sdp"), Some(OFFER));
    assert_eq!(record.form_json("session"), Some(call_session()));
    assert_eq!(record.form.as_ref().unwrap().len(), 2);
    assert_eq!(record.body, body);
}

#[test]
fn two_calls_get_different_locations() {
    let openai = StandIn::start();
    let first = post_raw(
        &openai.base_url(),
        PATH,
        "application/sdp",
        AUTH,
        OFFER.as_bytes(),
    );
    let second = post_raw(
        &openai.base_url(),
        PATH,
        "application/sdp",
        AUTH,
        OFFER.as_bytes(),
    );
    assert_ne!(first.header("location"), second.header("location"));
}

#[test]
fn bare_sdp_offer_is_the_other_documented_form() {
    let openai = StandIn::start();
    let answer = post_raw(
        &openai.base_url(),
        &format!("{PATH}?model=gpt-realtime"),
        "application/sdp",
        AUTH,
        OFFER.as_bytes(),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert!(answer.body.starts_with("v=0\r\n"));
    assert!(
        answer
            .header("location")
            .unwrap()
            .starts_with("/v1/realtime/calls/rtc_")
    );
    let record = &openai.requests_to(PATH)[0];
    assert_eq!(record.query.as_deref(), Some("model=gpt-realtime"));
    assert_eq!(record.body_text(), Some(OFFER));
}

#[test]
fn bare_sdp_offer_with_unknown_model_query_is_400() {
    let openai = StandIn::start();
    let answer = post_raw(
        &openai.base_url(),
        &format!("{PATH}?model=gpt-4o"),
        "application/sdp",
        AUTH,
        OFFER.as_bytes(),
    );
    assert_eq!(answer.status, 400);
    assert_eq!(answer.openai_error()["param"], "model");
}

#[test]
fn offer_that_is_not_sdp_is_400() {
    let openai = StandIn::start();
    let session = call_session().to_string();
    let (content_type, body) = multipart(&[("sdp", "hello, not sdp"), ("session", &session)]);
    let answer = post_raw(&openai.base_url(), PATH, &content_type, AUTH, &body);
    assert_eq!(answer.status, 400);
    assert_eq!(answer.openai_error()["param"], "sdp");

    let answer = post_raw(
        &openai.base_url(),
        PATH,
        "application/sdp",
        AUTH,
        b"{\"sdp\": \"v=0\"}",
    );
    assert_eq!(answer.status, 400);
    assert_eq!(answer.openai_error()["param"], "sdp");
}

#[test]
fn session_is_checked_like_a_client_secret_session() {
    let openai = StandIn::start();
    let cases = [
        (json!({"model": "gpt-realtime"}), "session.type"),
        (
            json!({"type": "realtime", "model": "gpt-4.1"}),
            "session.model",
        ),
        (
            json!({"type": "realtime", "model": "gpt-realtime", "audio": {"output": {"voice": "nova"}}}),
            "session.audio.output.voice",
        ),
        (
            json!({"type": "realtime", "model": "gpt-realtime", "voice": "ash"}),
            "session.voice",
        ),
        (
            json!({"type": "realtime", "model": "gpt-realtime", "tools": [{"type": "function"}]}),
            "session.tools[0].name",
        ),
    ];
    for (session, param) in cases {
        let session = session.to_string();
        let (content_type, body) = multipart(&[("sdp", OFFER), ("session", &session)]);
        let answer = post_raw(&openai.base_url(), PATH, &content_type, AUTH, &body);
        assert_eq!(answer.status, 400, "{session}");
        assert_eq!(answer.openai_error()["param"], param, "{session}");
    }
}

#[test]
fn session_field_that_is_not_json_is_400() {
    let openai = StandIn::start();
    let (content_type, body) = multipart(&[("sdp", OFFER), ("session", "type=realtime")]);
    let answer = post_raw(&openai.base_url(), PATH, &content_type, AUTH, &body);
    assert_eq!(answer.status, 400);
    assert_eq!(answer.openai_error()["param"], "session");
}

#[test]
fn multipart_without_sdp_or_session_is_400() {
    let openai = StandIn::start();
    let session = call_session().to_string();
    for (fields, param) in [
        (vec![("session", session.as_str())], "sdp"),
        (vec![("sdp", OFFER)], "session"),
    ] {
        let (content_type, body) = multipart(&fields);
        let answer = post_raw(&openai.base_url(), PATH, &content_type, AUTH, &body);
        assert_eq!(answer.status, 400, "{param}");
        assert_eq!(answer.openai_error()["param"], param);
    }
}

#[test]
fn malformed_multipart_is_400() {
    let openai = StandIn::start();
    let session = call_session().to_string();
    let (content_type, body) = multipart(&[("sdp", OFFER), ("session", &session)]);
    // Bare LF line endings: what a hand-rolled multipart writer gets wrong.
    let lf_only = String::from_utf8(body).unwrap().replace("\r\n", "\n");
    let answer = post_raw(
        &openai.base_url(),
        PATH,
        &content_type,
        AUTH,
        lf_only.as_bytes(),
    );
    assert_eq!(answer.status, 400);
    answer.openai_error();

    let answer = post_raw(
        &openai.base_url(),
        PATH,
        "multipart/form-data",
        AUTH,
        b"--x\r\n",
    );
    assert_eq!(answer.status, 400, "no boundary");
}

#[test]
fn json_body_is_not_a_call() {
    let openai = StandIn::start();
    let body = json!({"sdp": OFFER, "session": call_session()}).to_string();
    let answer = post_raw(
        &openai.base_url(),
        PATH,
        "application/json",
        AUTH,
        body.as_bytes(),
    );
    assert_eq!(answer.status, 400);
    answer.openai_error();
}
