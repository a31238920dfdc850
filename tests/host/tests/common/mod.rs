//! What the conformance tests share: the fixture app and a small HTTP client.

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;
use voice_edge_testkit::app::TestApp;

/// The conformance manifest beside the tests.
pub fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformance.toml")
}

/// The fixture app with its one required variable and `extra` variables.
pub fn start(extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![("secret_token", "s3cret")];
    vars.extend_from_slice(extra);
    TestApp::start_manifest(&fixture(), &vars)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// `GET url`: status and body.
pub fn get(url: &str) -> (u16, String) {
    let mut response = agent().get(url).call().expect("the host answers");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (status, body)
}

/// `GET url` with extra headers: status and body.
pub fn get_with(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = agent().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.call().expect("the host answers");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (status, body)
}

/// `GET url`, expecting `200` and a JSON body.
pub fn get_json(url: &str) -> Value {
    let (status, body) = get(url);
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("GET {url}: not JSON: {body}"))
}

/// `POST url` with a JSON body: status and body.
pub fn post(url: &str, body: &Value) -> (u16, String) {
    let mut response = agent()
        .post(url)
        .header("content-type", "application/json")
        .send(body.to_string())
        .expect("the host answers");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// `POST url` with a JSON body, expecting `200` and a JSON answer.
pub fn post_json(url: &str, body: &Value) -> Value {
    let mut response = agent()
        .post(url)
        .header("content-type", "application/json")
        .send(body.to_string())
        .expect("the host answers");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(status, 200, "POST {url}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("POST {url}: not JSON: {text}"))
}

/// `POST url` with a JSON body, giving up after `timeout`: the JSON answer, or `None`
/// when none came in time.
pub fn post_within(url: &str, body: &Value, timeout: std::time::Duration) -> Option<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut response = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body.to_string())
        .ok()?;
    let text = response.body_mut().read_to_string().ok()?;
    Some(serde_json::from_str(&text).unwrap_or_else(|_| panic!("POST {url}: not JSON: {text}")))
}

/// Which component answered `path` (each fixture component has a `component_name`).
pub fn component_at(app: &TestApp, path: &str) -> Option<String> {
    let (status, body) = get(&app.url(&format!("{path}?op=var&name=component_name")));
    if status == 404 && body.is_empty() {
        return None;
    }
    assert_eq!(status, 200, "{path}: {body}");
    let json: Value = serde_json::from_str(&body).expect("JSON");
    Some(
        json["value"]
            .as_str()
            .expect("a component name")
            .to_string(),
    )
}
