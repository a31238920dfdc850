//! How every function frames its responses on the wire (CONTRACT.md section 2; README
//! "Runtimes"): a `content-length` that matches the body, never chunked, and a
//! keep-alive connection that carries request after request.
//!
//! Spin's listener does not set `TCP_NODELAY`, so a response whose head and body leave
//! in two small writes waits for the client's delayed ACK (about 40 ms) on every
//! keep-alive request. `voice_edge_shared::http::send` avoids that by giving the
//! runtime a complete body of known length before the response; this test pins the
//! part of that which is visible from outside (the length, the framing, the reuse),
//! under our host and under Spin (`VOICE_EDGE_RUNTIME=spin`). The latency itself is a
//! benchmark's business (`make bench`, BENCHMARKS.md), never a timed test's.
//!
//! Both runtimes send a response as soon as the guest sets it and let the guest run on;
//! the functions rely on that for work scheduled after the response
//! (`Incoming::after_response`), and the second test pins it by order of events.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use voice_edge_integration::{Response, app_vars, read_response, start_app};
use voice_edge_testkit::app::TestApp;
use voice_edge_testkit::pg::{TestDb, repo_root};

const JWT_SECRET: &str = "framing-test-jwt-secret-0123456789abcdef";
const ORIGIN: &str = "https://school.example";

/// Writes `request` on the connection and reads one response; a response without a
/// `content-length` fails the test (it could only be delimited by chunking or by
/// closing the connection).
fn exchange(reader: &mut BufReader<TcpStream>, request: &str) -> Response {
    reader
        .get_mut()
        .write_all(request.as_bytes())
        .expect("writing the request");
    read_response(reader).unwrap_or_else(|error| panic!("the answer to {request:?}: {error}"))
}

#[test]
fn every_kind_of_response_has_a_content_length_and_keeps_the_connection() {
    let db = TestDb::create();
    let app = start_app(&app_vars(&db, JWT_SECRET, None, &[]));
    let authority = app
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let stream = TcpStream::connect(&authority).expect("connecting to the app");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    let mut reader = BufReader::new(stream);
    let head = |method: &str, path: &str, extra: &str| {
        format!("{method} {path} HTTP/1.1\r\nhost: {authority}\r\n{extra}\r\n")
    };

    // A preflight: 200 with the body `ok`.
    let preflight = exchange(
        &mut reader,
        &head(
            "OPTIONS",
            "/functions/v1/realtime-student-guide-token",
            &format!(
                "origin: {ORIGIN}\r\naccess-control-request-method: POST\r\ncontent-length: 0\r\n"
            ),
        ),
    );
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.text, "ok");

    // Health: a JSON report (no API key configured, so `degraded`), 200.
    let health = exchange(&mut reader, &head("GET", "/functions/v1/health", ""));
    assert_eq!(health.status, 200, "{health:?}");
    let report: Value = serde_json::from_str(&health.text).expect("health is JSON");
    assert_eq!(report["status"], "degraded");
    assert_eq!(report["database"], true);

    // A refusal: no bearer token, 401 with the contract's error body.
    let post = head(
        "POST",
        "/functions/v1/realtime-student-guide-token",
        "content-type: application/json\r\ncontent-length: 2\r\n",
    );
    let refused = exchange(&mut reader, &format!("{post}{{}}"));
    assert_eq!(refused.status, 401);
    let error: Value = serde_json::from_str(&refused.text).expect("an error body is JSON");
    assert_eq!(error["error"], "missing_authorization", "{error}");
    assert_eq!(error["code"], 401, "{error}");

    // A method the route does not take: 405, still framed, still on the same connection.
    let wrong_method = exchange(
        &mut reader,
        &head("DELETE", "/functions/v1/voice-agent-search", ""),
    );
    assert_eq!(wrong_method.status, 405);
    assert!(wrong_method.header("allow").is_some(), "405 without Allow");
    assert!(serde_json::from_str::<Value>(&wrong_method.text).is_ok());

    // Nothing is left unread on the connection.
    reader
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("a short read timeout");
    let mut extra = [0u8; 1];
    match reader.read(&mut extra) {
        Ok(0) | Err(_) => {}
        Ok(_) => panic!("bytes after the last response's content-length"),
    }
}

#[test]
fn the_response_goes_out_before_the_work_scheduled_after_it_ends() {
    let db = TestDb::create();
    let (db_url, db_host) = (db.url(), db.db_host());
    let pairs = [("db_url", db_url.as_str()), ("db_host", db_host.as_str())];
    // The bench's probe component: `after_ms` schedules a wait, then a log line, after
    // the response (Incoming::after_response).
    let app = TestApp::start_manifest(
        &repo_root().join("tests/components/cost-probe/spin.toml"),
        &pairs,
    );
    let done = |app: &TestApp| {
        app.logs()
            .iter()
            .any(|line| line.contains(r#""probe":"after_response""#))
    };

    let answer = voice_edge_integration::send("POST", &app.url("/?after_ms=3000"), &[], b"");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.text, r#"{"rows":0}"#);
    assert!(
        !done(&app),
        "the answer came only after the work scheduled after it had ended"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done(&app) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        done(&app),
        "the work scheduled after the response never ran"
    );
}
