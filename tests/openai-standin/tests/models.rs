//! `GET /v1/models/{model}`: OpenAI's model object for known models, `404` otherwise.

mod common;

use common::get;
use voice_edge_openai_standin::StandIn;

#[test]
fn known_model_gets_model_object() {
    let openai = StandIn::start();
    for model in [
        "gpt-realtime",
        "gpt-4o-realtime-preview-2024-12-17",
        "gpt-4.1-mini",
    ] {
        let answer = get(&openai.base_url(), &format!("/v1/models/{model}"));
        assert_eq!(answer.status, 200, "{model}: {}", answer.body);
        let body = answer.json();
        assert_eq!(body["id"], model);
        assert_eq!(body["object"], "model");
        assert!(body["created"].as_i64().is_some());
        assert_eq!(body["owned_by"], "system");
    }
}

#[test]
fn unknown_model_is_404_in_openai_shape() {
    let openai = StandIn::start();
    let answer = get(&openai.base_url(), "/v1/models/gpt-nonexistent");
    assert_eq!(answer.status, 404);
    let error = answer.openai_error();
    assert_eq!(error["code"], "model_not_found");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("gpt-nonexistent")
    );
}

#[test]
fn model_list_holds_the_realtime_models() {
    let openai = StandIn::start();
    let answer = get(&openai.base_url(), "/v1/models");
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"gpt-realtime"));
    assert!(ids.contains(&"gpt-4.1-mini"));
}

#[test]
fn models_request_is_recorded() {
    let openai = StandIn::start();
    get(&openai.base_url(), "/v1/models/gpt-realtime");
    let records = openai.requests_to("/v1/models/gpt-realtime");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].method, "GET");
    assert!(records[0].body.is_empty());
}

#[test]
fn unknown_path_is_404_invalid_url_and_recorded() {
    let openai = StandIn::start();
    let answer = get(&openai.base_url(), "/v1/chat/completions");
    assert_eq!(answer.status, 404);
    assert_eq!(
        answer.openai_error()["message"],
        "Invalid URL (GET /v1/chat/completions)"
    );
    assert_eq!(openai.requests_to("/v1/chat/completions").len(), 1);
}
