//! `POST /v1/responses` with the web search tool: the model, the tool and the input are
//! checked; the answer has OpenAI's shape, is deterministic from the query, and cites one
//! URL twice; switches answer with a refusal or without a message.

mod common;

use std::collections::HashSet;

use common::{post_json, search_request};
use serde_json::{Value, json};
use voice_edge_openai_standin::{Endpoint, Mode, StandIn};

const PATH: &str = "/v1/responses";

fn message_content(response: &Value) -> Value {
    let output = response["output"].as_array().unwrap();
    let message = output
        .iter()
        .find(|item| item["type"] == "message")
        .expect("a message item");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["status"], "completed");
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    message["content"][0].clone()
}

#[test]
fn search_gets_response_with_search_call_and_cited_message() {
    let openai = StandIn::start();
    let answer = post_json(
        &openai.base_url(),
        PATH,
        &search_request("Spin WebAssembly framework"),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let response = answer.json();

    assert!(response["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["model"], "gpt-4.1-mini");
    assert!(response["created_at"].as_u64().is_some());
    let usage = &response["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );

    let search_call = &response["output"][0];
    assert_eq!(search_call["type"], "web_search_call");
    assert_eq!(search_call["status"], "completed");
    assert!(search_call["id"].as_str().is_some());
    assert_eq!(
        search_call["action"],
        json!({"type": "search", "query": "Spin WebAssembly framework"})
    );

    let content = message_content(&response);
    assert_eq!(content["type"], "output_text");
    let text = content["text"].as_str().unwrap();
    assert!(text.contains("Spin WebAssembly framework"));
    let annotations = content["annotations"].as_array().unwrap();
    assert_eq!(annotations.len(), 3);
    let chars: Vec<char> = text.chars().collect();
    for annotation in annotations {
        assert_eq!(annotation["type"], "url_citation");
        let url = annotation["url"].as_str().unwrap();
        assert!(url.starts_with("https://"));
        assert!(!annotation["title"].as_str().unwrap().is_empty());
        let start = annotation["start_index"].as_u64().unwrap() as usize;
        let end = annotation["end_index"].as_u64().unwrap() as usize;
        let cited: String = chars[start..end].iter().collect();
        assert!(cited.contains(url), "{cited} should hold {url}");
    }
}

#[test]
fn citations_repeat_one_url_for_deduplication() {
    let openai = StandIn::start();
    let response = post_json(&openai.base_url(), PATH, &search_request("tides in Lisbon")).json();
    let content = message_content(&response);
    let urls: Vec<&str> = content["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|annotation| annotation["url"].as_str().unwrap())
        .collect();
    let distinct: HashSet<&str> = urls.iter().copied().collect();
    assert_eq!(urls.len(), 3);
    assert_eq!(distinct.len(), 2);
    assert_eq!(urls[0], urls[2]);
}

#[test]
fn same_query_gets_same_text_and_citations() {
    let openai = StandIn::start();
    let first = post_json(&openai.base_url(), PATH, &search_request("tides in Lisbon")).json();
    let second = post_json(&openai.base_url(), PATH, &search_request("tides in Lisbon")).json();
    let other = post_json(&openai.base_url(), PATH, &search_request("tides in Porto")).json();
    assert_ne!(first["id"], second["id"]);
    assert_eq!(message_content(&first), message_content(&second));
    assert_ne!(
        message_content(&first)["text"],
        message_content(&other)["text"]
    );
}

#[test]
fn input_items_with_instructions_search_the_user_text() {
    let openai = StandIn::start();
    let body = json!({
        "model": "gpt-4.1-mini",
        "tools": [{"type": "web_search"}],
        "input": [
            {"role": "developer", "content": "Answer in French (fr)."},
            {"role": "user", "content": "weather in Paris"},
        ],
    });
    let response = post_json(&openai.base_url(), PATH, &body).json();
    assert_eq!(response["output"][0]["action"]["query"], "weather in Paris");
    assert_eq!(openai.requests_to(PATH)[0].json.as_ref().unwrap(), &body);
}

#[test]
fn web_search_preview_tool_is_accepted() {
    let openai = StandIn::start();
    let mut body = search_request("x");
    body["tools"] = json!([{"type": "web_search_preview"}]);
    assert_eq!(post_json(&openai.base_url(), PATH, &body).status, 200);
}

#[test]
fn missing_model_is_400() {
    let openai = StandIn::start();
    let mut body = search_request("x");
    body.as_object_mut().unwrap().remove("model");
    let answer = post_json(&openai.base_url(), PATH, &body);
    assert_eq!(answer.status, 400);
    let error = answer.openai_error();
    assert_eq!(error["param"], "model");
    assert_eq!(error["code"], "missing_required_parameter");
}

#[test]
fn tools_without_web_search_are_400() {
    let openai = StandIn::start();
    for tools in [
        None,
        Some(json!([])),
        Some(json!([{"type": "function", "name": "lookup"}])),
        Some(json!("web_search")),
    ] {
        let mut body = search_request("x");
        match &tools {
            None => {
                body.as_object_mut().unwrap().remove("tools");
            }
            Some(tools) => body["tools"] = tools.clone(),
        }
        let answer = post_json(&openai.base_url(), PATH, &body);
        assert_eq!(answer.status, 400, "{tools:?}");
        assert_eq!(answer.openai_error()["param"], "tools", "{tools:?}");
    }
}

#[test]
fn missing_or_empty_input_is_400() {
    let openai = StandIn::start();
    let mut missing = search_request("x");
    missing.as_object_mut().unwrap().remove("input");
    for body in [missing, search_request(""), search_request("   "), {
        let mut body = search_request("x");
        body["input"] = json!([]);
        body
    }] {
        let answer = post_json(&openai.base_url(), PATH, &body);
        assert_eq!(answer.status, 400, "{body}");
        assert_eq!(answer.openai_error()["param"], "input", "{body}");
    }
}

#[test]
fn refusal_switch_answers_a_refusal_content_item() {
    let openai = StandIn::start();
    openai.set_mode(Endpoint::Responses, Mode::Refusal);
    let answer = post_json(&openai.base_url(), PATH, &search_request("x"));
    assert_eq!(answer.status, 200);
    let content = message_content(&answer.json());
    assert_eq!(content["type"], "refusal");
    assert!(!content["refusal"].as_str().unwrap().is_empty());
    assert!(content.get("text").is_none());
}

#[test]
fn no_message_switch_answers_only_the_search_call() {
    let openai = StandIn::start();
    openai.set_mode(Endpoint::Responses, Mode::NoMessage);
    let answer = post_json(&openai.base_url(), PATH, &search_request("x"));
    assert_eq!(answer.status, 200);
    let output = answer.json()["output"].as_array().unwrap().clone();
    assert_eq!(output.len(), 1);
    assert_eq!(output[0]["type"], "web_search_call");
}

#[test]
fn answer_switches_do_not_change_other_endpoints() {
    let openai = StandIn::start();
    openai.set_mode_all(Mode::Refusal);
    let answer = post_json(
        &openai.base_url(),
        "/v1/realtime/client_secrets",
        &common::client_secret_request(),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
}
