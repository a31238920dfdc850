//! Conformance of the host with Spin, seen from inside a guest (the `conformance-probe`
//! component under several ids, `tests/fixtures/conformance.toml`): routing and its
//! precedence, the `spin-*` headers, a fresh instance per request, variables, outbound
//! HTTP allow-lists, timeouts and connection reuse, guest output and traps.
//!
//! Needs `cargo build --target wasm32-wasip2 --release -p conformance-probe` first.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{component_at, get, get_json, get_with, post_json, start};
use serde_json::json;
use voice_edge_testkit::app::TestApp;

#[test]
fn exact_route_answers_with_and_without_trailing_slash() {
    let app = start(&[]);
    assert_eq!(component_at(&app, "/exact").as_deref(), Some("exact"));
    assert_eq!(component_at(&app, "/exact/").as_deref(), Some("exact"));
    assert_eq!(component_at(&app, "/exact/more"), None);
    assert_eq!(component_at(&app, "/exactly"), None);
}

#[test]
fn wildcard_route_matches_its_prefix_but_not_a_longer_word() {
    let app = start(&[]);
    assert_eq!(component_at(&app, "/wild").as_deref(), Some("wild"));
    assert_eq!(component_at(&app, "/wild/").as_deref(), Some("wild"));
    assert_eq!(component_at(&app, "/wild/a/b").as_deref(), Some("wild"));
    assert_eq!(component_at(&app, "/wildcat"), None);
}

#[test]
fn exact_beats_wildcard_and_longest_prefix_wins() {
    let app = start(&[]);
    assert_eq!(
        component_at(&app, "/wild/exact").as_deref(),
        Some("wild-exact")
    );
    assert_eq!(component_at(&app, "/wild/exact/x").as_deref(), Some("wild"));
    assert_eq!(
        component_at(&app, "/wild/deeper").as_deref(),
        Some("deeper")
    );
    assert_eq!(
        component_at(&app, "/wild/deeper/x/y").as_deref(),
        Some("deeper")
    );
    assert_eq!(component_at(&app, "/wild/deep").as_deref(), Some("wild"));
}

#[test]
fn unrouted_path_gets_404_with_empty_body() {
    let app = start(&[]);
    let (status, body) = get(&app.url("/nothing/here"));
    assert_eq!(status, 404);
    assert_eq!(body, "");
    let (status, body) = get(&app.url("/.well-known/spin/health"));
    assert_eq!((status, body.as_str()), (200, "OK"));
}

#[test]
fn spin_headers_describe_a_wildcard_match() {
    let app = start(&[]);
    let seen = get_json(&app.url("/wild/deeper/a/b/?op=headers&x=1"));
    let headers = &seen["headers"];
    let authority = app.base_url().trim_start_matches("http://").to_string();
    assert_eq!(
        headers["spin-full-url"],
        format!("http://{authority}/wild/deeper/a/b/?op=headers&x=1")
    );
    assert_eq!(headers["spin-path-info"], "/a/b/");
    assert_eq!(headers["spin-matched-route"], "/wild/deeper/...");
    assert_eq!(headers["spin-raw-component-route"], "/wild/deeper/...");
    assert_eq!(headers["spin-component-route"], "/wild/deeper");
    assert_eq!(headers["spin-base-path"], "/");
    let client = headers["spin-client-addr"]
        .as_str()
        .expect("spin-client-addr");
    let (ip, port) = client.rsplit_once(':').expect("ip:port");
    assert_eq!(ip, "127.0.0.1");
    assert!(port.parse::<u16>().is_ok(), "{client}");
    assert_eq!(seen["method"], "GET");
    assert_eq!(
        seen["uri"],
        format!("http://{authority}/wild/deeper/a/b/?op=headers&x=1")
    );
}

#[test]
fn spin_headers_describe_an_exact_match() {
    let app = start(&[]);
    let headers = &get_json(&app.url("/exact?op=headers"))["headers"];
    assert_eq!(headers["spin-path-info"], "");
    assert_eq!(headers["spin-matched-route"], "/exact");
    assert_eq!(headers["spin-raw-component-route"], "/exact");
    assert_eq!(headers["spin-component-route"], "/exact");
    let headers = &get_json(&app.url("/wild?op=headers"))["headers"];
    assert_eq!(headers["spin-path-info"], "");
    assert_eq!(headers["spin-component-route"], "/wild");
}

#[test]
fn named_segments_become_path_match_headers() {
    let app = start(&[]);
    let headers = &get_json(&app.url("/items/42/rest?op=headers"))["headers"];
    assert_eq!(headers["spin-path-match-id"], "42");
    assert_eq!(headers["spin-path-info"], "/rest");
    assert_eq!(headers["spin-matched-route"], "/items/:id/...");
}

#[test]
fn request_headers_reach_the_guest_and_host_header_sets_the_full_url() {
    let app = start(&[]);
    let (status, body) = get_with(
        &app.url("/exact?op=headers"),
        &[
            ("x-client-info", "supabase-js/2"),
            ("host", "example.test:8080"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["headers"]["x-client-info"], "supabase-js/2");
    assert_eq!(
        seen["headers"]["spin-full-url"],
        "http://example.test:8080/exact?op=headers"
    );
}

#[test]
fn every_request_gets_a_fresh_instance() {
    let app = start(&[]);
    for _ in 0..3 {
        assert_eq!(get_json(&app.url("/probe?op=counter"))["count"], 1);
    }
}

#[test]
fn component_variables_are_templates_over_app_variables() {
    let app = start(&[("greeting", "hi")]);
    assert_eq!(
        get_json(&app.url("/probe?op=var&name=greeting"))["value"],
        "hi, world"
    );
    assert_eq!(
        get_json(&app.url("/probe?op=var&name=token"))["value"],
        "s3cret"
    );
    let app = start(&[]);
    assert_eq!(
        get_json(&app.url("/probe?op=var&name=greeting"))["value"],
        "hello, world"
    );
}

#[test]
fn a_variable_the_component_does_not_list_is_undefined() {
    let app = start(&[]);
    let error = get_json(&app.url("/probe?op=var&name=secret_token"))["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        error,
        r#"Error::Undefined("no variable for \"probe\".\"secret_token\"")"#
    );
    let error = get_json(&app.url("/exact?op=var&name=greeting"))["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.starts_with("Error::Undefined("), "{error}");
    let error = get_json(&app.url("/probe?op=var&name=Not-Valid"))["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.starts_with("Error::InvalidName("), "{error}");
}

#[test]
fn missing_required_variable_stops_start_up_with_spins_message() {
    let error = TestApp::try_start_manifest(&common::fixture(), &[("greeting", "hi")]).unwrap_err();
    assert_eq!(
        error,
        r#"provider error: no provider resolved required variable(s): [Key("secret_token")]"#
    );
}

/// A one-request-at-a-time HTTP server on loopback answering `200 upstream-ok`.
fn upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: close\r\n\r\nupstream-ok",
            );
        }
    });
    port
}

/// A keep-alive HTTP/1.1 server on loopback answering every request `200 upstream-ok`;
/// also returns how many connections it has accepted.
fn keep_alive_upstream() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    request.clear();
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nupstream-ok";
                    if stream.write_all(answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, accepted)
}

/// A server that accepts connections and never answers.
fn silent_upstream() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        if let Ok((stream, _)) = listener.accept() {
            held.push(stream);
            std::thread::sleep(Duration::from_secs(3));
        }
    });
    (port, handle)
}

#[test]
fn outbound_http_to_an_allowed_host_goes_through() {
    let port = upstream();
    let base = format!("http://127.0.0.1:{port}");
    let app = start(&[("upstream", &base)]);
    let answer = post_json(
        &app.url("/probe?op=http"),
        &json!({"url": format!("{base}/v1/x")}),
    );
    assert_eq!(answer, json!({"status": 200, "body": "upstream-ok"}));
}

#[test]
fn outbound_requests_of_successive_requests_reuse_one_connection() {
    let (port, accepted) = keep_alive_upstream();
    let base = format!("http://127.0.0.1:{port}");
    let app = start(&[("upstream", &base)]);
    for path in ["/v1/first", "/v1/second"] {
        let answer = post_json(
            &app.url("/probe?op=http"),
            &json!({"url": format!("{base}{path}")}),
        );
        assert_eq!(answer, json!({"status": 200, "body": "upstream-ok"}));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn a_denied_outbound_request_opens_no_connection() {
    let (port, accepted) = keep_alive_upstream();
    let app = start(&[("upstream", &format!("http://127.0.0.1:{port}"))]);
    // Both reach the listening server, but neither is allowed for its component.
    for (route, host) in [("/closed", "127.0.0.1"), ("/probe", "localhost")] {
        let answer = post_json(
            &app.url(&format!("{route}?op=http")),
            &json!({"url": format!("http://{host}:{port}/")}),
        );
        assert_eq!(answer["error"], "ErrorCode::HttpRequestDenied", "{route}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
}

#[test]
fn outbound_http_to_other_hosts_is_denied() {
    let port = upstream();
    let app = start(&[("upstream", &format!("http://127.0.0.1:{port}"))]);
    for url in [
        format!("http://localhost:{port}/v1/x"),
        format!("http://127.0.0.1:{}/v1/x", port.wrapping_add(1)),
        format!("https://127.0.0.1:{port}/v1/x"),
    ] {
        let answer = post_json(&app.url("/probe?op=http"), &json!({"url": url}));
        assert_eq!(
            answer["error"], "ErrorCode::HttpRequestDenied",
            "{url}: {answer}"
        );
    }
    let answer = post_json(
        &app.url("/closed?op=http"),
        &json!({"url": format!("http://127.0.0.1:{port}/")}),
    );
    assert_eq!(answer["error"], "ErrorCode::HttpRequestDenied");
}

#[test]
fn an_empty_allowed_host_template_allows_nothing() {
    let port = upstream();
    let app = start(&[]);
    let answer = post_json(
        &app.url("/probe?op=http"),
        &json!({"url": format!("http://127.0.0.1:{port}/")}),
    );
    assert_eq!(answer["error"], "ErrorCode::HttpRequestDenied");
}

#[test]
fn first_byte_timeout_of_the_guest_is_honoured() {
    let (port, _server) = silent_upstream();
    let base = format!("http://127.0.0.1:{port}");
    let app = start(&[("upstream", &base)]);
    let started = std::time::Instant::now();
    let answer = post_json(
        &app.url("/probe?op=http"),
        &json!({"url": format!("{base}/slow"), "first_byte_timeout_ms": 200}),
    );
    assert_eq!(
        answer["error"], "ErrorCode::ConnectionReadTimeout",
        "{answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout did not cut the wait short"
    );
}

#[test]
fn guest_output_is_captured_line_by_line() {
    let app = start(&[]);
    get_json(&app.url("/probe?op=log&text=hello%20there"));
    let logs = app.logs();
    assert!(
        logs.contains(&"stdout: hello there".to_string()),
        "{logs:?}"
    );
    assert!(
        logs.contains(&"stderr: hello there".to_string()),
        "{logs:?}"
    );
}

#[test]
fn a_trapping_guest_gets_500_with_an_empty_body_and_its_panic_is_logged() {
    let app = start(&[]);
    let (status, body) = get(&app.url("/probe?op=trap"));
    assert_eq!(status, 500);
    assert_eq!(body, "");
    let logs = app.logs();
    assert!(
        logs.iter()
            .any(|line| line.contains("the probe was asked to trap")),
        "{logs:?}"
    );
    // The app keeps serving.
    assert_eq!(get_json(&app.url("/probe?op=counter"))["count"], 1);
}

#[test]
fn instantiation_can_be_measured_for_benchmarks() {
    let app = start(&[]);
    let Some(host) = app.app() else {
        eprintln!("skipped under Spin: instantiation is measured inside our host only");
        return;
    };
    let report = voice_edge_host::runtime()
        .block_on(host.measure_instantiation("probe", 20))
        .expect("the probe instantiates");
    assert_eq!(report.iterations, 20);
    assert!(
        report.max >= report.p50 && report.p50 > Duration::ZERO,
        "{report}"
    );
}
