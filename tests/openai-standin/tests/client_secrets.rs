//! `POST /v1/realtime/client_secrets`: the session configuration and the TTL are checked
//! as OpenAI checks them, and a good request gets `{"value": "ek_…", "expires_at",
//! "session"}`.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{KEY, client_secret_request, post_json, post_raw};
use serde_json::{Value, json};
use voice_edge_openai_standin::StandIn;

const PATH: &str = "/v1/realtime/client_secrets";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Posts `body` and expects a `400` naming `param`; returns the error object.
fn refused(openai: &StandIn, body: &Value, param: &str) -> Value {
    let answer = post_json(&openai.base_url(), PATH, body);
    assert_eq!(answer.status, 400, "{}", answer.body);
    let error = answer.openai_error();
    assert_eq!(error["param"], param, "{}", answer.body);
    assert_eq!(error["type"], "invalid_request_error");
    error
}

#[test]
fn good_request_gets_ephemeral_key_expiry_and_session() {
    let openai = StandIn::start();
    let before = unix_now();
    let answer = post_json(&openai.base_url(), PATH, &client_secret_request());
    let after = unix_now();

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.json();
    let value = body["value"].as_str().unwrap();
    assert!(value.starts_with("ek_") && value.len() > 10, "{value}");
    let expires_at = body["expires_at"].as_u64().unwrap();
    assert!(
        (before + 60..=after + 60).contains(&expires_at),
        "{expires_at}"
    );

    let session = &body["session"];
    assert_eq!(session["object"], "realtime.session");
    assert_eq!(session["type"], "realtime");
    assert!(session["id"].as_str().unwrap().starts_with("sess_"));
    assert_eq!(session["model"], "gpt-realtime");
    assert_eq!(
        session["instructions"],
        "You are a professional, formal tutor."
    );
    assert_eq!(session["audio"]["output"]["voice"], "ash");
    assert_eq!(session["output_modalities"], json!(["audio"]));
}

#[test]
fn two_requests_get_different_keys() {
    let openai = StandIn::start();
    let first = post_json(&openai.base_url(), PATH, &client_secret_request()).json();
    let second = post_json(&openai.base_url(), PATH, &client_secret_request()).json();
    assert_ne!(first["value"], second["value"]);
}

#[test]
fn request_is_recorded_with_headers_and_parsed_json() {
    let openai = StandIn::start();
    post_json(&openai.base_url(), PATH, &client_secret_request());
    let records = openai.requests_to(PATH);
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.method, "POST");
    assert_eq!(record.bearer_key(), Some(KEY));
    assert_eq!(record.json.as_ref().unwrap(), &client_secret_request());
    assert_eq!(
        serde_json::from_slice::<Value>(&record.body).unwrap(),
        client_secret_request()
    );
}

#[test]
fn missing_session_type_is_400() {
    let openai = StandIn::start();
    let mut body = client_secret_request();
    body["session"].as_object_mut().unwrap().remove("type");
    let error = refused(&openai, &body, "session.type");
    assert_eq!(error["code"], "missing_required_parameter");
    refused(
        &openai,
        &json!({"expires_after": {"anchor": "created_at", "seconds": 60}}),
        "session.type",
    );
}

#[test]
fn session_type_other_than_realtime_or_transcription_is_400() {
    let openai = StandIn::start();
    let mut body = client_secret_request();
    body["session"]["type"] = json!("conversation");
    refused(&openai, &body, "session.type");
}

#[test]
fn transcription_session_is_accepted() {
    let openai = StandIn::start();
    let body = json!({"session": {"type": "transcription",
        "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}});
    let answer = post_json(&openai.base_url(), PATH, &body);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json()["session"]["object"],
        "realtime.transcription_session"
    );
}

#[test]
fn unknown_model_is_400() {
    let openai = StandIn::start();
    for model in ["gpt-4.1-mini", "gpt-realtime-preview", "whisper-1"] {
        let mut body = client_secret_request();
        body["session"]["model"] = json!(model);
        refused(&openai, &body, "session.model");
    }
}

#[test]
fn every_realtime_model_family_and_snapshot_is_accepted() {
    let openai = StandIn::start();
    for model in [
        "gpt-realtime",
        "gpt-realtime-mini",
        "gpt-realtime-2025-08-28",
        "gpt-4o-realtime-preview",
        "gpt-4o-realtime-preview-2024-12-17",
        "gpt-4o-mini-realtime-preview-2024-12-17",
    ] {
        let mut body = client_secret_request();
        body["session"]["model"] = json!(model);
        let answer = post_json(&openai.base_url(), PATH, &body);
        assert_eq!(answer.status, 200, "{model}: {}", answer.body);
        assert_eq!(answer.json()["session"]["model"], model);
    }
}

#[test]
fn unknown_voice_is_400_and_known_voices_pass() {
    let openai = StandIn::start();
    let mut body = client_secret_request();
    body["session"]["audio"]["output"]["voice"] = json!("nova");
    let error = refused(&openai, &body, "session.audio.output.voice");
    assert!(error["message"].as_str().unwrap().contains("'ash'"));

    for voice in [
        "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar",
    ] {
        body["session"]["audio"]["output"]["voice"] = json!(voice);
        let answer = post_json(&openai.base_url(), PATH, &body);
        assert_eq!(answer.status, 200, "{voice}: {}", answer.body);
    }
}

#[test]
fn beta_style_session_voice_is_an_unknown_parameter() {
    let openai = StandIn::start();
    let mut body = client_secret_request();
    body["session"]["voice"] = json!("ash");
    let error = refused(&openai, &body, "session.voice");
    assert_eq!(error["code"], "unknown_parameter");
}

#[test]
fn ttl_outside_10_to_7200_seconds_is_400() {
    let openai = StandIn::start();
    for seconds in [json!(9), json!(7201), json!(0), json!("60")] {
        let mut body = client_secret_request();
        body["expires_after"]["seconds"] = seconds;
        refused(&openai, &body, "expires_after.seconds");
    }
    for seconds in [10, 7200] {
        let mut body = client_secret_request();
        body["expires_after"]["seconds"] = json!(seconds);
        let answer = post_json(&openai.base_url(), PATH, &body);
        assert_eq!(answer.status, 200, "{seconds}: {}", answer.body);
    }
}

#[test]
fn anchor_other_than_created_at_is_400() {
    let openai = StandIn::start();
    let mut body = client_secret_request();
    body["expires_after"]["anchor"] = json!("expires_at");
    refused(&openai, &body, "expires_after.anchor");
}

#[test]
fn body_that_is_not_json_is_400() {
    let openai = StandIn::start();
    let answer = post_raw(
        &openai.base_url(),
        PATH,
        "application/json",
        Some("Bearer k"),
        b"{not json",
    );
    assert_eq!(answer.status, 400);
    assert!(
        answer.openai_error()["message"]
            .as_str()
            .unwrap()
            .contains("JSON")
    );

    let answer = post_raw(
        &openai.base_url(),
        PATH,
        "text/plain",
        Some("Bearer k"),
        client_secret_request().to_string().as_bytes(),
    );
    assert_eq!(answer.status, 400, "a JSON body must say it is JSON");
    answer.openai_error();
}

#[test]
fn get_is_an_invalid_url() {
    let openai = StandIn::start();
    let answer = common::get(&openai.base_url(), PATH);
    assert_eq!(answer.status, 404);
    assert!(
        answer.openai_error()["message"]
            .as_str()
            .unwrap()
            .contains("Invalid URL")
    );
}
