//! `health` through the host against a real PostgreSQL (CONTRACT.md section 6).

use serde_json::Value;
use voice_edge_integration::{Response, WEBHOOK_SECRET, app_vars, send, start_app};
use voice_edge_openai_standin::StandIn;
use voice_edge_testkit::pg::{PgCluster, TestDb};

const API_KEY: &str = "sk-test-health-0123456789";
const JWT_SECRET: &str = "health-test-jwt-secret-0123456789abcdef";

fn call(method: &str, url: &str, headers: &[(&str, &str)]) -> Response {
    send(method, url, headers, b"")
}

/// The variables every app start needs, for `db`, plus `extra` overriding them.
fn vars(db: &TestDb, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    app_vars(db, JWT_SECRET, Some(API_KEY), extra)
}

#[test]
fn healthy_with_the_database_up_and_a_key() {
    let db = TestDb::create();
    let app = start_app(&vars(&db, &[]));
    let response = call("GET", &app.url("/functions/v1/health"), &[]);
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["status"], "healthy");
    assert_eq!(response.body["database"], true);
    assert_eq!(response.body["apiKey"], true);
    assert!(response.body["realtimeAPI"].is_null());
    assert!(response.body["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(response.body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert!(response.header("x-request-id").is_some());
}

#[test]
fn degraded_without_an_api_key() {
    let db = TestDb::create();
    let app = start_app(&vars(&db, &[("openai_api_key", "")]));
    let response = call("GET", &app.url("/functions/v1/health"), &[]);
    assert_eq!(response.status, 200);
    assert_eq!(response.body["status"], "degraded");
    assert_eq!(response.body["apiKey"], false);
    assert_eq!(response.body["database"], true);
}

#[test]
fn deep_check_asks_openai_for_the_configured_model() {
    let db = TestDb::create();
    let standin = StandIn::start();
    let base_url = standin.base_url();
    let app = start_app(&vars(&db, &[("openai_base_url", &base_url)]));

    let response = call("GET", &app.url("/functions/v1/health?deep=1"), &[]);
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["status"], "healthy");
    assert_eq!(response.body["realtimeAPI"], true);

    let probes = standin.requests_to("/v1/models/gpt-realtime");
    assert_eq!(probes.len(), 1, "one probe of the configured model");
    let authorization = probes[0]
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.clone());
    assert_eq!(
        authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );
}

#[test]
fn deep_check_of_an_unknown_model_is_degraded() {
    let db = TestDb::create();
    let standin = StandIn::start();
    let base_url = standin.base_url();
    let app = start_app(&vars(
        &db,
        &[
            ("openai_base_url", &base_url),
            ("openai_realtime_model", "gpt-nonexistent"),
        ],
    ));
    let response = call("GET", &app.url("/functions/v1/health?deep=1"), &[]);
    assert_eq!(response.status, 200);
    assert_eq!(response.body["status"], "degraded");
    assert_eq!(response.body["realtimeAPI"], false);
}

#[test]
fn unhealthy_503_when_the_database_is_down() {
    let cluster = PgCluster::start_private();
    let db = TestDb::create_in(&cluster);
    let app = start_app(&vars(&db, &[]));
    assert_eq!(
        call("GET", &app.url("/functions/v1/health"), &[]).status,
        200
    );

    cluster.stop();
    let response = call("GET", &app.url("/functions/v1/health"), &[]);
    assert_eq!(response.status, 503, "{:?}", response.body);
    assert_eq!(response.body["status"], "unhealthy");
    assert_eq!(response.body["database"], false);
    assert!(response.header("retry-after").is_some());
    let text = response.body.to_string();
    assert!(
        !text.contains("postgres://"),
        "no connection details in the body: {text}"
    );

    cluster.start();
    let response = call("GET", &app.url("/functions/v1/health"), &[]);
    assert_eq!(
        response.status, 200,
        "healthy again after the restart: {:?}",
        response.body
    );
}

#[test]
fn preflight_answers_ok_with_cors_headers() {
    let db = TestDb::create();
    let app = start_app(&vars(&db, &[]));
    let response = call(
        "OPTIONS",
        &app.url("/functions/v1/health"),
        &[
            ("origin", "https://school.example"),
            ("access-control-request-method", "GET"),
            (
                "access-control-request-headers",
                "authorization, x-client-info",
            ),
        ],
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.body, Value::String("ok".into()));
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        response.header("access-control-allow-headers"),
        Some("authorization, x-client-info, apikey, content-type")
    );
    assert_eq!(
        response.header("access-control-allow-methods"),
        Some("GET, POST, PUT, PATCH, DELETE, OPTIONS")
    );
}

#[test]
fn allowed_origin_is_echoed_and_others_get_403() {
    let db = TestDb::create();
    let app = start_app(&vars(&db, &[("allowed_origins", "https://school.example")]));
    let allowed = call(
        "GET",
        &app.url("/functions/v1/health"),
        &[("origin", "https://school.example")],
    );
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://school.example")
    );
    assert_eq!(allowed.header("vary"), Some("Origin"));

    let refused = call(
        "GET",
        &app.url("/functions/v1/health"),
        &[("origin", "https://elsewhere.example")],
    );
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["error"], "origin_not_allowed");
    assert_eq!(refused.body["code"], 403);
}

#[test]
fn wrong_method_is_405_with_allow_and_unknown_route_is_404() {
    let db = TestDb::create();
    let app = start_app(&vars(&db, &[]));
    let response = call("POST", &app.url("/functions/v1/health"), &[]);
    assert_eq!(response.status, 405);
    assert_eq!(response.body["error"], "method_not_allowed");
    assert_eq!(response.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));

    let response = call("GET", &app.url("/functions/v1/health/nope"), &[]);
    assert_eq!(response.status, 404);
    assert_eq!(response.body["error"], "not_found");
}

#[test]
fn the_log_line_is_json_and_holds_no_secret() {
    let db = TestDb::create();
    let app = start_app(&vars(&db, &[]));
    let response = call(
        "GET",
        &app.url("/functions/v1/health"),
        &[("x-request-id", "req-health-log-1")],
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-request-id"), Some("req-health-log-1"));

    let logs = app.logs();
    let line = logs
        .iter()
        .find(|line| line.contains("req-health-log-1"))
        .unwrap_or_else(|| panic!("no log line for the request in {logs:#?}"));
    let entry: Value = serde_json::from_str(line).expect("the log line is JSON");
    assert_eq!(entry["function"], "health");
    assert_eq!(entry["method"], "GET");
    assert_eq!(entry["route"], "/functions/v1/health");
    assert_eq!(entry["status"], 200);
    assert!(entry["duration_ms"].is_number());
    let all = logs.join("\n");
    let password = db.url();
    let password = password
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password.to_string())
        .expect("the test URL has a password");
    for secret in [API_KEY, JWT_SECRET, WEBHOOK_SECRET, password.as_str()] {
        assert!(!all.contains(secret), "a secret reached the log");
    }
}
