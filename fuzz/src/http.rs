//! `http`: the request pipeline every function runs through ([`handle`]) and the
//! helpers handlers use on the request: path segments, query parameters
//! (percent-decoding), headers, the client address, the content type and JSON bodies,
//! with `allowed_origins` parsed by [`CorsPolicy::parse`] and log text by [`redact`].
//!
//! Input: NUL-separated `allowed_origins`, method, path info, query, headers (one
//! `name: value` a line; names lower-cased, as Spin hands them over), body; byte 0 says
//! whether the handler fails and which body limit it reads with.
//!
//! Oracle: every reply carries one `x-request-id` (the caller's when it is a sane one);
//! CORS follows the policy (any origin: `*`; a list: the origin echoed when listed,
//! `403` and no allow-origin when not; no `Origin`: no allow-origin); a preflight of an
//! allowed origin is `200`; the log line is JSON with the reply's status; a query
//! parameter decodes exactly as `application/x-www-form-urlencoded` says (a reference
//! decoder here); segments are never empty; the content type is lower-cased and bare.

use serde_json::Value;
use voice_edge_shared::ApiError;
use voice_edge_shared::client_addr::TrustedProxies;
use voice_edge_shared::http::{CorsPolicy, JSON_LIMIT, RawRequest, Reply, handle};
use voice_edge_shared::log::redact;

use crate::{fields, mode, text};

pub fn run(data: &[u8]) {
    let (mode, rest) = mode(data);
    let [origins, method, path_info, query, headers, body] =
        fields(rest, 6).try_into().expect("six fields");
    let cors = CorsPolicy::parse(&text(origins));
    let headers: Vec<(String, String)> = text(headers)
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let raw = RawRequest {
        method: text(method),
        path: format!("/functions/v1/fuzz{}", text(path_info)),
        path_info: text(path_info),
        query: text(query),
        headers: headers.clone(),
        body: body.to_vec().into(),
    };
    // A declared length over a limit is refused before any byte is read.
    let declared = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.trim().parse::<u64>().ok());
    let query = raw.query.clone();
    let mut handler_ran = false;
    let handled = block_on(handle("fuzz", raw, &Ok(cors.clone()), async |incoming| {
        handler_ran = true;
        for segment in incoming.segments() {
            assert!(!segment.is_empty() && !segment.contains('/'));
        }
        for pair in query.split('&') {
            let name = form_decode(pair.split_once('=').map_or(pair, |(name, _)| name));
            assert_eq!(
                incoming.query_param(&name),
                reference_query_param(&query, &name),
                "query parameter {name:?} of {query:?}"
            );
        }
        if let Some(content_type) = incoming.content_type() {
            assert!(!content_type.contains(';'));
            assert_eq!(content_type, content_type.trim().to_ascii_lowercase());
        }
        let _ = incoming.client_addr(&TrustedProxies::default());
        let _ = incoming.header("authorization");
        let limit = if mode & 1 == 0 { JSON_LIMIT } else { 16 };
        if let Err(error) = incoming.body(limit) {
            assert!(body.len() > limit || declared.is_some_and(|length| length > limit as u64));
            return Err(error);
        }
        let json: Value = incoming.json_or_empty()?;
        if mode & 2 == 0 {
            Ok(Reply::json(200, &json))
        } else {
            Err(ApiError::bad_request(redact(&String::from_utf8_lossy(
                body,
            ))))
        }
    }));

    let reply = &handled.reply;
    let reply_headers = |name: &str| -> Vec<&str> {
        reply
            .headers
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    };
    let ids = reply_headers("x-request-id");
    assert_eq!(ids.len(), 1);
    if let Some((_, sent)) = headers.iter().find(|(name, _)| name == "x-request-id") {
        let sane = !sent.is_empty()
            && sent.len() <= 128
            && sent
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        if sane {
            assert_eq!(ids[0], sent);
        }
    }

    let origin = headers
        .iter()
        .find(|(name, _)| name == "origin")
        .map(|(_, value)| value.trim_end_matches('/'));
    let allow_origin = reply_headers("access-control-allow-origin");
    let allowed = match (&cors, origin) {
        (CorsPolicy::AnyOrigin, _) => {
            assert_eq!(allow_origin, ["*"]);
            true
        }
        (CorsPolicy::Origins(_), None) => {
            assert!(allow_origin.is_empty());
            true
        }
        (CorsPolicy::Origins(list), Some(origin)) => {
            if list.iter().any(|listed| listed == origin) {
                assert_eq!(allow_origin, [origin]);
                true
            } else {
                assert!(allow_origin.is_empty(), "{origin} is not listed");
                assert_eq!(reply.status, 403);
                assert!(!handler_ran);
                false
            }
        }
    };
    if allowed && method == b"OPTIONS" {
        assert_eq!(reply.status, 200);
        assert!(!handler_ran);
    }
    let log: Value = serde_json::from_str(&handled.log_line).expect("the log line is JSON");
    assert_eq!(log["status"], u64::from(reply.status));
    assert!(reply_headers("access-control-allow-methods").len() == 1);
}

/// The value of the first pair named `name`, per the URL Standard's
/// `application/x-www-form-urlencoded` parser.
fn reference_query_param(query: &str, name: &str) -> Option<String> {
    // An empty pair (`a=1&&b=2`, or an empty query) names nothing (WHATWG URL,
    // application/x-www-form-urlencoded parsing).
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(key) == name).then(|| form_decode(value))
        })
}

/// `+` is a space; `%` and two hex digits is that byte; anything else is itself; the
/// bytes are read as UTF-8 with replacement.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match (byte, hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                index += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                index += 1;
            }
            _ => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs the pipeline's future to its end: the fuzzed handler never waits on anything.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}
