//! The failure switches, per endpoint or for all: `429` with OpenAI's rate-limit body and
//! `retry-after`, `500`, silence (held until the client gives up or the stand-in stops),
//! and a fixed delay.

mod common;

use std::time::Duration;

use common::{KEY, agent_with_timeout, client_secret_request, get, post_json, search_request};
use voice_edge_openai_standin::{Endpoint, Mode, StandIn};

fn post_search_with_timeout(
    openai: &StandIn,
    timeout: Duration,
) -> Result<common::Answer, ureq::Error> {
    agent_with_timeout(timeout)
        .post(format!("{}/v1/responses", openai.base_url()))
        .header("authorization", format!("Bearer {KEY}"))
        .send_json(search_request("x"))
        .map(|response| common::read(Ok(response)))
}

#[test]
fn rate_limit_switch_answers_429_with_retry_after_on_that_endpoint_only() {
    let openai = StandIn::start();
    openai.set_mode(Endpoint::ClientSecrets, Mode::RateLimited);

    let answer = post_json(
        &openai.base_url(),
        "/v1/realtime/client_secrets",
        &client_secret_request(),
    );
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after"), Some("2"));
    assert_eq!(answer.header("x-ratelimit-remaining-requests"), Some("0"));
    let error = answer.openai_error();
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["type"], "requests");

    assert_eq!(
        post_json(&openai.base_url(), "/v1/responses", &search_request("x")).status,
        200
    );
    assert_eq!(
        openai.requests_to("/v1/realtime/client_secrets").len(),
        1,
        "a refused request is recorded"
    );
}

#[test]
fn server_error_switch_for_all_answers_500_everywhere() {
    let openai = StandIn::start();
    openai.set_mode_all(Mode::ServerError);
    let answers = [
        post_json(
            &openai.base_url(),
            "/v1/realtime/client_secrets",
            &client_secret_request(),
        ),
        post_json(&openai.base_url(), "/v1/responses", &search_request("x")),
        get(&openai.base_url(), "/v1/models/gpt-realtime"),
    ];
    for answer in answers {
        assert_eq!(answer.status, 500);
        let error = answer.openai_error();
        assert_eq!(error["type"], "server_error");
        assert!(error["code"].is_null());
    }
}

#[test]
fn missing_key_is_401_even_when_switched_to_fail() {
    let openai = StandIn::start();
    openai.set_mode_all(Mode::RateLimited);
    let answer = common::post_raw(
        &openai.base_url(),
        "/v1/responses",
        "application/json",
        None,
        search_request("x").to_string().as_bytes(),
    );
    assert_eq!(answer.status, 401);
}

#[test]
fn back_to_normal_answers_again() {
    let openai = StandIn::start();
    openai.set_mode(Endpoint::Responses, Mode::ServerError);
    assert_eq!(
        post_json(&openai.base_url(), "/v1/responses", &search_request("x")).status,
        500
    );
    openai.set_mode(Endpoint::Responses, Mode::Normal);
    assert_eq!(
        post_json(&openai.base_url(), "/v1/responses", &search_request("x")).status,
        200
    );
}

#[test]
fn silent_switch_never_answers_so_the_client_times_out() {
    let openai = StandIn::start();
    openai.set_mode(Endpoint::Responses, Mode::Silent);
    let result = post_search_with_timeout(&openai, Duration::from_millis(300));
    assert!(matches!(result, Err(ureq::Error::Timeout(_))), "{result:?}");
    assert_eq!(
        openai.requests_to("/v1/responses").len(),
        1,
        "the held request was received"
    );

    // Other endpoints and later requests are unaffected once switched back.
    assert_eq!(
        get(&openai.base_url(), "/v1/models/gpt-realtime").status,
        200
    );
    openai.set_mode(Endpoint::Responses, Mode::Normal);
    assert_eq!(
        post_json(&openai.base_url(), "/v1/responses", &search_request("x")).status,
        200
    );
}

#[test]
fn silent_request_is_released_when_the_stand_in_stops() {
    let openai = StandIn::start();
    openai.set_mode_all(Mode::Silent);
    let url = format!("{}/v1/responses", openai.base_url());
    let client = std::thread::spawn(move || {
        agent_with_timeout(Duration::from_secs(60))
            .post(url)
            .header("authorization", format!("Bearer {KEY}"))
            .send_json(search_request("x"))
            .map(|response| response.status().as_u16())
    });
    // Wait until the request is held (bounded: the test fails rather than hangs).
    let mut held = false;
    for _ in 0..500 {
        if !openai.requests().is_empty() {
            held = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(held, "the request reached the stand-in");
    drop(openai);
    let result = client.join().unwrap();
    assert!(result.is_err(), "no answer ever comes: {result:?}");
    assert!(
        !matches!(result, Err(ureq::Error::Timeout(_))),
        "the connection was dropped, not timed out"
    );
}

#[test]
fn delay_switch_makes_answers_late() {
    let openai = StandIn::start();
    openai.set_delay(Endpoint::Responses, Duration::from_millis(600));
    let impatient = post_search_with_timeout(&openai, Duration::from_millis(100));
    assert!(
        matches!(impatient, Err(ureq::Error::Timeout(_))),
        "{impatient:?}"
    );
    let patient = post_search_with_timeout(&openai, Duration::from_secs(20)).unwrap();
    assert_eq!(patient.status, 200);

    openai.set_delay(Endpoint::Responses, Duration::ZERO);
    let prompt = post_search_with_timeout(&openai, Duration::from_secs(20)).unwrap();
    assert_eq!(prompt.status, 200);
}

#[test]
fn delay_applies_before_a_failure_switch() {
    let openai = StandIn::start();
    openai.set_delay_all(Duration::from_millis(600));
    openai.set_mode_all(Mode::RateLimited);
    let impatient = post_search_with_timeout(&openai, Duration::from_millis(100));
    assert!(
        matches!(impatient, Err(ureq::Error::Timeout(_))),
        "{impatient:?}"
    );
    let patient = post_search_with_timeout(&openai, Duration::from_secs(20)).unwrap();
    assert_eq!(patient.status, 429);
}

#[test]
fn reset_restores_every_endpoint_and_clears_the_record() {
    let openai = StandIn::start();
    openai.set_mode_all(Mode::ServerError);
    openai.set_delay_all(Duration::from_secs(30));
    openai.reset();
    assert!(openai.requests().is_empty());
    assert_eq!(
        post_json(&openai.base_url(), "/v1/responses", &search_request("x")).status,
        200
    );
}

#[test]
fn clear_forgets_recorded_requests() {
    let openai = StandIn::start();
    post_json(&openai.base_url(), "/v1/responses", &search_request("x"));
    assert_eq!(openai.requests().len(), 1);
    openai.clear();
    assert!(openai.requests().is_empty());
    post_json(&openai.base_url(), "/v1/responses", &search_request("y"));
    assert_eq!(openai.requests().len(), 1);
}
