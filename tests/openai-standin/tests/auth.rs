//! Every OpenAI endpoint wants `Authorization: Bearer <key>`: without one it answers
//! `401` in OpenAI's error shape; with an expected key configured, other keys are
//! `401 invalid_api_key`, and client secrets it minted open the calls endpoint.

mod common;

use common::{KEY, OFFER, client_secret_request, post_raw, read};
use serde_json::json;
use voice_edge_openai_standin::{Options, StandIn};

/// One request per endpoint, each with `authorization` (or none).
fn each_endpoint(base: &str, authorization: Option<&str>) -> Vec<(&'static str, common::Answer)> {
    let json_body = client_secret_request().to_string();
    let search = common::search_request("rust").to_string();
    let mut models = common::agent().get(format!("{base}/v1/models/gpt-realtime"));
    if let Some(authorization) = authorization {
        models = models.header("authorization", authorization);
    }
    vec![
        (
            "client_secrets",
            post_raw(
                base,
                "/v1/realtime/client_secrets",
                "application/json",
                authorization,
                json_body.as_bytes(),
            ),
        ),
        (
            "calls",
            post_raw(
                base,
                "/v1/realtime/calls",
                "application/sdp",
                authorization,
                OFFER.as_bytes(),
            ),
        ),
        (
            "responses",
            post_raw(
                base,
                "/v1/responses",
                "application/json",
                authorization,
                search.as_bytes(),
            ),
        ),
        ("models", read(models.call())),
    ]
}

#[test]
fn every_endpoint_refuses_a_request_without_authorization() {
    let openai = StandIn::start();
    for (endpoint, answer) in each_endpoint(&openai.base_url(), None) {
        assert_eq!(answer.status, 401, "{endpoint}: {}", answer.body);
        let error = answer.openai_error();
        assert_eq!(error["type"], "invalid_request_error", "{endpoint}");
        assert!(
            error["message"].as_str().unwrap().contains("API key"),
            "{endpoint}"
        );
    }
    assert_eq!(
        openai.requests().len(),
        4,
        "refused requests are recorded too"
    );
}

#[test]
fn empty_bearer_and_other_schemes_are_refused() {
    let openai = StandIn::start();
    for authorization in ["Bearer ", "Bearer", "Basic c2stdGVzdA==", KEY] {
        for (endpoint, answer) in each_endpoint(&openai.base_url(), Some(authorization)) {
            assert_eq!(answer.status, 401, "{endpoint} with {authorization:?}");
            answer.openai_error();
        }
    }
}

#[test]
fn any_non_empty_key_is_accepted_without_configuration() {
    let openai = StandIn::start();
    for (endpoint, answer) in each_endpoint(&openai.base_url(), Some("Bearer whatever-key")) {
        assert!(
            answer.status == 200 || answer.status == 201,
            "{endpoint}: {} {}",
            answer.status,
            answer.body
        );
    }
}

#[test]
fn configured_key_refuses_other_keys_with_invalid_api_key() {
    let openai = StandIn::start_with(Options {
        api_key: Some("sk-the-right-one".into()),
        log_requests: false,
    })
    .unwrap();
    for (endpoint, answer) in each_endpoint(&openai.base_url(), Some("Bearer sk-another")) {
        assert_eq!(answer.status, 401, "{endpoint}");
        let error = answer.openai_error();
        assert_eq!(error["code"], "invalid_api_key", "{endpoint}");
        assert!(!answer.body.contains("sk-another"), "the key is not echoed");
    }
    for (endpoint, answer) in each_endpoint(&openai.base_url(), Some("Bearer sk-the-right-one")) {
        assert!(
            answer.status == 200 || answer.status == 201,
            "{endpoint}: {}",
            answer.body
        );
    }
}

#[test]
fn minted_client_secret_opens_calls_but_not_other_endpoints() {
    let openai = StandIn::start_with(Options {
        api_key: Some("sk-server".into()),
        log_requests: false,
    })
    .unwrap();
    let base = openai.base_url();
    let minted = post_raw(
        &base,
        "/v1/realtime/client_secrets",
        "application/json",
        Some("Bearer sk-server"),
        client_secret_request().to_string().as_bytes(),
    );
    assert_eq!(minted.status, 200, "{}", minted.body);
    let secret = minted.json()["value"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {secret}");

    let call = post_raw(
        &base,
        "/v1/realtime/calls",
        "application/sdp",
        Some(&bearer),
        OFFER.as_bytes(),
    );
    assert_eq!(call.status, 201, "{}", call.body);

    let search = post_raw(
        &base,
        "/v1/responses",
        "application/json",
        Some(&bearer),
        json!({"model": "gpt-4.1-mini", "tools": [{"type": "web_search"}], "input": "x"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(search.status, 401);
    assert_eq!(search.openai_error()["code"], "invalid_api_key");

    let forged = post_raw(
        &base,
        "/v1/realtime/calls",
        "application/sdp",
        Some("Bearer ek_forged"),
        OFFER.as_bytes(),
    );
    assert_eq!(forged.status, 401);
}
