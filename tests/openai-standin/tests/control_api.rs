//! The HTTP control API for Node tests and local runs: `GET|DELETE /__standin/requests`,
//! `GET|PUT /__standin/mode`, `GET /__standin/health`. Control requests are neither
//! authenticated nor recorded.

mod common;

use common::{OFFER, agent, call_session, multipart, post_json, post_raw, read, search_request};
use serde_json::{Value, json};
use voice_edge_openai_standin::{Endpoint, Mode, StandIn};

fn put_mode(openai: &StandIn, body: &Value) -> common::Answer {
    read(
        agent()
            .put(format!("{}/__standin/mode", openai.base_url()))
            .send_json(body),
    )
}

fn recorded(openai: &StandIn, query: &str) -> Value {
    let answer = read(
        agent()
            .get(format!("{}/__standin/requests{query}", openai.base_url()))
            .call(),
    );
    assert_eq!(answer.status, 200);
    answer.json()
}

#[test]
fn put_mode_switches_one_endpoint() {
    let openai = StandIn::start();
    let answer = put_mode(&openai, &json!({"endpoint": "responses", "mode": "429"}));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json()["responses"],
        json!({"mode": "429", "delay_ms": 0})
    );
    assert_eq!(
        answer.json()["calls"],
        json!({"mode": "normal", "delay_ms": 0})
    );

    assert_eq!(
        post_json(&openai.base_url(), "/v1/responses", &search_request("x")).status,
        429
    );
    assert_eq!(
        post_json(
            &openai.base_url(),
            "/v1/realtime/client_secrets",
            &common::client_secret_request()
        )
        .status,
        200
    );
}

#[test]
fn put_mode_for_all_with_delay_is_reported_by_get_mode() {
    let openai = StandIn::start();
    assert_eq!(
        put_mode(
            &openai,
            &json!({"endpoint": "all", "mode": "500", "delay_ms": 5})
        )
        .status,
        200
    );
    let answer = read(
        agent()
            .get(format!("{}/__standin/mode", openai.base_url()))
            .call(),
    );
    for endpoint in ["client_secrets", "calls", "responses", "models"] {
        assert_eq!(
            answer.json()[endpoint],
            json!({"mode": "500", "delay_ms": 5}),
            "{endpoint}"
        );
    }
    assert_eq!(
        post_json(&openai.base_url(), "/v1/responses", &search_request("x")).status,
        500
    );
}

#[test]
fn put_mode_reaches_the_same_switches_as_the_library() {
    let openai = StandIn::start();
    openai.set_mode(Endpoint::Calls, Mode::Silent);
    let answer = read(
        agent()
            .get(format!("{}/__standin/mode", openai.base_url()))
            .call(),
    );
    assert_eq!(answer.json()["calls"]["mode"], "silent");
    put_mode(&openai, &json!({"endpoint": "calls", "mode": "normal"}));
    assert_eq!(
        post_raw(
            &openai.base_url(),
            "/v1/realtime/calls",
            "application/sdp",
            Some("Bearer k"),
            OFFER.as_bytes()
        )
        .status,
        201
    );
}

#[test]
fn malformed_mode_change_is_400() {
    let openai = StandIn::start();
    for body in [
        json!({"endpoint": "chat", "mode": "429"}),
        json!({"endpoint": "all", "mode": "slow"}),
        json!({"mode": "429"}),
        json!({"endpoint": "all"}),
        json!({"endpoint": "all", "delay_ms": "soon"}),
    ] {
        let answer = put_mode(&openai, &body);
        assert_eq!(answer.status, 400, "{body}");
        assert!(
            answer.json()["error"]["message"].as_str().is_some(),
            "{body}"
        );
    }
    let answer = read(
        agent()
            .put(format!("{}/__standin/mode", openai.base_url()))
            .content_type("application/json")
            .send("not json"),
    );
    assert_eq!(answer.status, 400);
}

#[test]
fn requests_are_listed_with_headers_body_json_and_form() {
    let openai = StandIn::start();
    post_json(
        &openai.base_url(),
        "/v1/responses",
        &search_request("tides"),
    );
    let session = call_session().to_string();
    let (content_type, body) = multipart(&[("sdp", OFFER), ("session", &session)]);
    post_raw(
        &openai.base_url(),
        "/v1/realtime/calls",
        &content_type,
        Some("Bearer sk-relay"),
        &body,
    );

    let records = recorded(&openai, "");
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 2, "control requests are not recorded");

    let search = &records[0];
    assert_eq!(search["method"], "POST");
    assert_eq!(search["path"], "/v1/responses");
    assert_eq!(
        search["headers"]["authorization"],
        format!("Bearer {}", common::KEY)
    );
    assert!(
        search["headers"]["content-type"]
            .as_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(search["json"], search_request("tides"));
    assert_eq!(
        serde_json::from_str::<Value>(search["body"].as_str().unwrap()).unwrap(),
        search_request("tides")
    );
    assert!(search["form"].is_null());

    let call = &records[1];
    assert_eq!(call["headers"]["authorization"], "Bearer sk-relay");
    assert!(call["json"].is_null());
    let form = call["form"].as_array().unwrap();
    assert_eq!(form[0]["name"], "sdp");
    assert_eq!(form[0]["value"], OFFER);
    assert_eq!(form[1]["name"], "session");
    assert_eq!(
        serde_json::from_str::<Value>(form[1]["value"].as_str().unwrap()).unwrap(),
        call_session()
    );
}

#[test]
fn requests_can_be_filtered_by_path() {
    let openai = StandIn::start();
    post_json(&openai.base_url(), "/v1/responses", &search_request("x"));
    common::get(&openai.base_url(), "/v1/models/gpt-realtime");
    let filtered = recorded(&openai, "?path=%2Fv1%2Fresponses");
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    assert_eq!(filtered[0]["path"], "/v1/responses");
    assert_eq!(
        recorded(&openai, "?path=/v1/models/gpt-realtime")
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn delete_requests_clears_the_record() {
    let openai = StandIn::start();
    post_json(&openai.base_url(), "/v1/responses", &search_request("x"));
    let answer = read(
        agent()
            .delete(format!("{}/__standin/requests", openai.base_url()))
            .call(),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["cleared"], 1);
    assert!(recorded(&openai, "").as_array().unwrap().is_empty());
    assert!(openai.requests().is_empty());
}

#[test]
fn health_and_unknown_control_routes() {
    let openai = StandIn::start();
    let health = read(
        agent()
            .get(format!("{}/__standin/health", openai.base_url()))
            .call(),
    );
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    let unknown = read(
        agent()
            .get(format!("{}/__standin/nothing", openai.base_url()))
            .call(),
    );
    assert_eq!(unknown.status, 404);
    let wrong_method = read(
        agent()
            .post(format!("{}/__standin/requests", openai.base_url()))
            .send_empty(),
    );
    assert_eq!(wrong_method.status, 405);
}
