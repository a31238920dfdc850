//! The request pipeline every function runs through.
//!
//! [`serve`] turns Spin's request into an [`Incoming`], answers CORS preflights,
//! refuses origins outside `allowed_origins`, gives every response its CORS headers and
//! `x-request-id`, maps an [`ApiError`] to the contract's JSON body, and prints the one
//! JSON log line of the request. [`handle`] is the same pipeline as pure code over
//! [`RawRequest`], so it is unit-tested without a host.

use std::cell::RefCell;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::{self, SpinVariables};
use crate::error::ApiError;

/// Body limit for JSON requests.
pub const JSON_LIMIT: usize = 64 * 1024;
/// Body limit for SDP offers.
pub const SDP_LIMIT: usize = 32 * 1024;
/// Body limit for webhook deliveries.
pub const WEBHOOK_LIMIT: usize = 256 * 1024;

const ALLOW_HEADERS: &str = "authorization, x-client-info, apikey, content-type";
const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";

/// Which browser origins may call the functions (`allowed_origins`: `*`, or a list
/// separated by commas or spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsPolicy {
    AnyOrigin,
    Origins(Vec<String>),
}

impl CorsPolicy {
    pub fn parse(value: &str) -> Self {
        let origins: Vec<String> = value
            .split([',', ' ', '\n', '\t'])
            .map(|origin| origin.trim().trim_end_matches('/'))
            .filter(|origin| !origin.is_empty())
            .map(str::to_string)
            .collect();
        if origins.is_empty() || origins.iter().any(|origin| origin == "*") {
            CorsPolicy::AnyOrigin
        } else {
            CorsPolicy::Origins(origins)
        }
    }

    /// The CORS headers for a request from `origin`, or `None` when that origin is
    /// not allowed. Requests without `Origin` (servers, webhooks) are always allowed.
    fn headers_for(&self, origin: Option<&str>) -> Option<Vec<(String, String)>> {
        let mut headers = vec![
            (
                "access-control-allow-headers".to_string(),
                ALLOW_HEADERS.to_string(),
            ),
            (
                "access-control-allow-methods".to_string(),
                ALLOW_METHODS.to_string(),
            ),
        ];
        match (self, origin) {
            (CorsPolicy::AnyOrigin, _) => {
                headers.push(("access-control-allow-origin".into(), "*".into()));
            }
            (CorsPolicy::Origins(_), None) => {}
            (CorsPolicy::Origins(allowed), Some(origin)) => {
                if !allowed.iter().any(|candidate| candidate == origin) {
                    return None;
                }
                headers.push(("access-control-allow-origin".into(), origin.to_string()));
                headers.push(("vary".into(), "Origin".into()));
            }
        }
        Some(headers)
    }
}

/// A request as the pipeline sees it, independent of the Spin SDK.
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    pub method: String,
    /// The full path, without the query.
    pub path: String,
    /// The path below the function's route (`spin-path-info`): `""`, `/refresh`, ….
    pub path_info: String,
    pub query: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A response before it is handed back to Spin.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A JSON response.
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        let body = serde_json::to_vec(value).expect("serialising a response never fails");
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        }
    }

    /// A response with the given content type.
    pub fn with_type(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.to_string())],
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    fn from_error(error: &ApiError) -> Self {
        let mut reply = Reply::json(error.status(), &error.body());
        reply.headers.extend(error.headers());
        reply
    }

    fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A request handed to a function's handler.
#[derive(Debug)]
pub struct Incoming {
    raw: RawRequest,
    request_id: String,
    user_id: RefCell<Option<String>>,
}

impl Incoming {
    pub fn method(&self) -> &str {
        &self.raw.method
    }

    /// The path below the function's route, `""` for the function's own root.
    pub fn path_info(&self) -> &str {
        &self.raw.path_info
    }

    /// The path below the function's route, split into its non-empty segments.
    pub fn segments(&self) -> Vec<&str> {
        self.raw
            .path_info
            .split('/')
            .filter(|segment| !segment.is_empty())
            .collect()
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// A header by its (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.raw
            .headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The caller's IP address as Spin reports it (`spin-client-addr`, without the port).
    pub fn client_ip(&self) -> Option<String> {
        let addr = self.header("spin-client-addr")?;
        let ip = match addr.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
            _ => addr,
        };
        Some(ip.trim_start_matches('[').trim_end_matches(']').to_string())
    }

    /// A decoded query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.raw.query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
    }

    /// Records who the caller is, for the request log.
    pub fn set_user_id(&self, user_id: &str) {
        *self.user_id.borrow_mut() = Some(user_id.to_string());
    }

    /// Refuses any method but `allowed` with `405` and `Allow`.
    pub fn allow(&self, allowed: &[&'static str]) -> Result<(), ApiError> {
        if allowed.contains(&self.raw.method.as_str()) {
            return Ok(());
        }
        let mut allow = allowed.to_vec();
        allow.push("OPTIONS");
        Err(ApiError::MethodNotAllowed { allow })
    }

    /// The body, refused with `413` over `limit` bytes.
    pub fn body(&self, limit: usize) -> Result<&[u8], ApiError> {
        if self.raw.body.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        Ok(&self.raw.body)
    }

    /// The body parsed as JSON (64 KiB at most); errors name the field at fault.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse_json(self.body(JSON_LIMIT)?)
    }

    /// Like [`Incoming::json`], but an empty body is parsed as `{}`.
    pub fn json_or_empty<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let body = self.body(JSON_LIMIT)?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return parse_json(b"{}");
        }
        parse_json(body)
    }

    /// The media type of the body, lower-cased, without parameters.
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type").map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }
}

/// Parses JSON, turning serde's error into a `400` that names the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request(format!("Malformed JSON body: {inner}"));
        }
        let message = strip_position(&inner.to_string());
        match missing_field(&message) {
            Some(name) => {
                let field = if path == "." {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                ApiError::bad_field(field.clone(), format!("missing field `{field}`"))
            }
            None if path == "." => ApiError::bad_request(format!("Invalid body: {message}")),
            None => ApiError::bad_field(path.clone(), format!("invalid `{path}`: {message}")),
        }
    })?;
    deserializer
        .end()
        .map_err(|error| ApiError::bad_request(format!("Malformed JSON body: {error}")))?;
    Ok(value)
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(index) => message[..index].to_string(),
        None => message.to_string(),
    }
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            // Only `%` and two hex digits is an escape (`u8::from_str_radix` would also
            // take a sign: `%+9` is not a tab).
            b'%' => match (
                hex_digit(bytes.get(index + 1)),
                hex_digit(bytes.get(index + 2)),
            ) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    index += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(byte: Option<&u8>) -> Option<u8> {
    let digit = char::from(*byte?).to_digit(16)?;
    u8::try_from(digit).ok()
}

/// A request id the caller sent, when it is a reasonable one; otherwise a new UUID.
fn request_id_for(raw: &RawRequest) -> String {
    raw.headers
        .iter()
        .find(|(key, _)| key == "x-request-id")
        .map(|(_, value)| value.trim())
        .filter(|value| {
            !value.is_empty()
                && value.len() <= 128
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// What the pipeline produced: the response and the request's log line.
#[derive(Debug)]
pub struct Handled {
    pub reply: Reply,
    pub log_line: String,
}

/// The pipeline as pure code: CORS, request id, error mapping, the log line.
pub fn handle(
    function: &'static str,
    raw: RawRequest,
    cors: &CorsPolicy,
    handler: impl FnOnce(&Incoming) -> Result<Reply, ApiError>,
) -> Handled {
    let started = Instant::now();
    let request_id = request_id_for(&raw);
    let origin = raw
        .headers
        .iter()
        .find(|(key, _)| key == "origin")
        .map(|(_, value)| value.trim_end_matches('/').to_string());
    let incoming = Incoming {
        raw,
        request_id,
        user_id: RefCell::new(None),
    };

    let mut failure: Option<ApiError> = None;
    let (mut reply, cors_headers) = match cors.headers_for(origin.as_deref()) {
        None => {
            let error = ApiError::OriginNotAllowed;
            let reply = Reply::from_error(&error);
            failure = Some(error);
            // The browser will not read it, but tools do: keep the non-origin headers.
            (reply, cors.headers_for(None).unwrap_or_default())
        }
        Some(headers) if incoming.method() == "OPTIONS" => {
            (Reply::with_type(200, "text/plain", "ok"), headers)
        }
        Some(headers) => match handler(&incoming) {
            Ok(reply) => (reply, headers),
            Err(error) => {
                let reply = Reply::from_error(&error);
                failure = Some(error);
                (reply, headers)
            }
        },
    };
    for (name, value) in cors_headers {
        if reply.get_header(&name).is_none() {
            reply.headers.push((name, value));
        }
    }
    reply
        .headers
        .push(("x-request-id".into(), incoming.request_id.clone()));

    let mut log = json!({
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "level": if reply.status >= 500 { "error" } else { "info" },
        "function": function,
        "method": incoming.method(),
        "route": incoming.raw.path,
        "status": reply.status,
        "duration_ms": (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0,
        "request_id": incoming.request_id,
        "user_id": incoming.user_id.borrow().clone(),
    });
    if let Some(error) = &failure {
        log["error"] = Value::String(error.code().to_string());
        if let Some(detail) = error.log_detail() {
            log["detail"] = Value::String(redact(detail));
        }
    }
    Handled {
        reply,
        log_line: log.to_string(),
    }
}

/// Masks what must never reach a log: passwords in URLs, bearer tokens, API keys.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (index, word) in text.split(' ').enumerate() {
        if index > 0 {
            out.push(' ');
        }
        out.push_str(&redact_word(word));
    }
    out.chars().take(500).collect()
}

fn redact_word(word: &str) -> String {
    if let Some(scheme_end) = word.find("://") {
        let rest = &word[scheme_end + 3..];
        if let Some(at) = rest.find('@') {
            let userinfo = &rest[..at];
            if let Some((user, _password)) = userinfo.split_once(':') {
                return format!(
                    "{}{user}:[redacted]{}",
                    &word[..scheme_end + 3],
                    &rest[at..]
                );
            }
        }
    }
    let key_like = ["sk-", "ek_", "whsec_", "eyJ"].iter().any(|prefix| {
        word.trim_start_matches(['"', '\'', '('])
            .starts_with(prefix)
    });
    if key_like && word.len() > 12 {
        return "[redacted]".to_string();
    }
    if word.starts_with("password=") {
        return "password=[redacted]".to_string();
    }
    word.to_string()
}

/// Serves a Spin request with `handler`: the entry point of every function.
pub fn serve(
    function: &'static str,
    request: spin_sdk::http::Request,
    handler: impl FnOnce(&Incoming) -> Result<Reply, ApiError>,
) -> spin_sdk::http::Response {
    let raw = raw_request(request);
    let cors = match config::optional(
        &SpinVariables,
        config::ALLOWED_ORIGINS,
        config::DEFAULT_ALLOWED_ORIGINS,
    ) {
        Ok(value) => CorsPolicy::parse(&value),
        Err(_) => CorsPolicy::AnyOrigin,
    };
    let handled = handle(function, raw, &cors, handler);
    println!("{}", handled.log_line);
    let mut builder = spin_sdk::http::Response::builder();
    builder.status(handled.reply.status);
    for (name, value) in handled.reply.headers {
        builder.header(name, value);
    }
    builder.body(handled.reply.body).build()
}

fn raw_request(request: spin_sdk::http::Request) -> RawRequest {
    let method = request.method().to_string().to_ascii_uppercase();
    let headers: Vec<(String, String)> = request
        .headers()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = request.path().to_string();
    let query = request.query().to_string();
    let path_info = headers
        .iter()
        .find(|(name, _)| name == "spin-path-info")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    RawRequest {
        method,
        path,
        path_info,
        query,
        headers,
        body: request.into_body(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path_info: &str, headers: &[(&str, &str)]) -> RawRequest {
        RawRequest {
            method: method.into(),
            path: format!("/functions/v1/test{path_info}"),
            path_info: path_info.into(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
        reply.get_header(name)
    }

    #[test]
    fn preflight_answers_ok_with_cors_headers_without_calling_the_handler() {
        let handled = handle(
            "test",
            request("OPTIONS", "", &[("origin", "https://app.example")]),
            &CorsPolicy::AnyOrigin,
            |_| panic!("the handler must not run for a preflight"),
        );
        assert_eq!(handled.reply.status, 200);
        assert_eq!(handled.reply.body, b"ok");
        assert_eq!(
            header(&handled.reply, "access-control-allow-origin"),
            Some("*")
        );
        assert_eq!(
            header(&handled.reply, "access-control-allow-headers"),
            Some("authorization, x-client-info, apikey, content-type")
        );
    }

    #[test]
    fn allowed_origin_is_echoed_with_vary() {
        let cors = CorsPolicy::parse("https://app.example, https://admin.example");
        let handled = handle(
            "test",
            request("GET", "", &[("origin", "https://admin.example")]),
            &cors,
            |_| Ok(Reply::json(200, &json!({"ok": true}))),
        );
        assert_eq!(handled.reply.status, 200);
        assert_eq!(
            header(&handled.reply, "access-control-allow-origin"),
            Some("https://admin.example")
        );
        assert_eq!(header(&handled.reply, "vary"), Some("Origin"));
    }

    #[test]
    fn unknown_origin_gets_403_origin_not_allowed() {
        let cors = CorsPolicy::parse("https://app.example");
        let handled = handle(
            "test",
            request("POST", "", &[("origin", "https://evil.example")]),
            &cors,
            |_| panic!("the handler must not run for a refused origin"),
        );
        assert_eq!(handled.reply.status, 403);
        let body: Value = serde_json::from_slice(&handled.reply.body).unwrap();
        assert_eq!(body["error"], "origin_not_allowed");
        assert_eq!(header(&handled.reply, "access-control-allow-origin"), None);
    }

    #[test]
    fn requests_without_origin_skip_the_origin_check() {
        let cors = CorsPolicy::parse("https://app.example");
        let handled = handle("test", request("POST", "", &[]), &cors, |_| {
            Ok(Reply::json(200, &json!({})))
        });
        assert_eq!(handled.reply.status, 200);
    }

    #[test]
    fn errors_carry_cors_headers_and_the_contract_body() {
        let handled = handle(
            "test",
            request("GET", "", &[("origin", "https://app.example")]),
            &CorsPolicy::AnyOrigin,
            |_| Err(ApiError::MissingAuthorization),
        );
        assert_eq!(handled.reply.status, 401);
        assert_eq!(
            header(&handled.reply, "access-control-allow-origin"),
            Some("*")
        );
        let body: Value = serde_json::from_slice(&handled.reply.body).unwrap();
        assert_eq!(
            body,
            json!({"code": 401, "message": "Missing authorization header", "error": "missing_authorization"})
        );
    }

    #[test]
    fn request_id_is_kept_when_sane_and_minted_otherwise() {
        let handled = handle(
            "test",
            request("GET", "", &[("x-request-id", "abc-123")]),
            &CorsPolicy::AnyOrigin,
            |_| Ok(Reply::json(200, &json!({}))),
        );
        assert_eq!(header(&handled.reply, "x-request-id"), Some("abc-123"));
        let handled = handle(
            "test",
            request("GET", "", &[("x-request-id", "<script>")]),
            &CorsPolicy::AnyOrigin,
            |_| Ok(Reply::json(200, &json!({}))),
        );
        let minted = header(&handled.reply, "x-request-id").unwrap();
        assert!(uuid::Uuid::parse_str(minted).is_ok());
    }

    #[test]
    fn log_line_is_one_json_object_with_the_contract_fields_and_no_secrets() {
        let handled = handle(
            "test",
            request("GET", "/x", &[]),
            &CorsPolicy::AnyOrigin,
            |incoming| {
                incoming.set_user_id("user-1");
                Err(ApiError::DatabaseUnavailable {
                    detail: "error connecting to postgres://app:hunter2@127.0.0.1:5432/db".into(),
                })
            },
        );
        assert!(!handled.log_line.contains('\n'));
        let log: Value = serde_json::from_str(&handled.log_line).unwrap();
        for field in [
            "time",
            "function",
            "method",
            "route",
            "status",
            "duration_ms",
            "request_id",
        ] {
            assert!(log.get(field).is_some(), "log line lacks {field}: {log}");
        }
        assert_eq!(log["status"], 503);
        assert_eq!(log["user_id"], "user-1");
        assert_eq!(log["error"], "database_unavailable");
        assert!(!handled.log_line.contains("hunter2"));
    }

    #[test]
    fn allow_refuses_other_methods_with_the_allow_header() {
        let handled = handle(
            "test",
            request("DELETE", "", &[]),
            &CorsPolicy::AnyOrigin,
            |incoming| {
                incoming.allow(&["GET"])?;
                Ok(Reply::json(200, &json!({})))
            },
        );
        assert_eq!(handled.reply.status, 405);
        assert_eq!(header(&handled.reply, "allow"), Some("GET, OPTIONS"));
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        persona: Persona,
        count: u32,
        nested: Option<Nested>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Persona {
        StudentTutor,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Nested {
        word: String,
    }

    #[test]
    fn json_errors_name_the_field() {
        let error = parse_json::<Body>(br#"{"persona": "pirate", "count": 1}"#).unwrap_err();
        assert!(
            matches!(&error, ApiError::BadRequest { field: Some(f), .. } if f == "persona"),
            "{error:?}"
        );
        let error = parse_json::<Body>(br#"{"persona": "student-tutor"}"#).unwrap_err();
        assert!(
            matches!(&error, ApiError::BadRequest { field: Some(f), .. } if f == "count"),
            "{error:?}"
        );
        let error =
            parse_json::<Body>(br#"{"persona": "student-tutor", "count": 1, "nested": {}}"#)
                .unwrap_err();
        assert!(
            matches!(&error, ApiError::BadRequest { field: Some(f), .. } if f == "nested.word"),
            "{error:?}"
        );
        let error = parse_json::<Body>(b"{not json").unwrap_err();
        assert!(matches!(&error, ApiError::BadRequest { field: None, .. }));
    }

    #[test]
    fn body_over_the_limit_is_413() {
        let mut raw = request("POST", "", &[]);
        raw.body = vec![b' '; JSON_LIMIT + 1];
        let handled = handle("test", raw, &CorsPolicy::AnyOrigin, |incoming| {
            let _: Value = incoming.json()?;
            Ok(Reply::json(200, &json!({})))
        });
        assert_eq!(handled.reply.status, 413);
    }

    #[test]
    fn query_params_are_decoded() {
        let mut raw = request("GET", "", &[]);
        raw.query = "type=speed-quiz&q=a%20b+c&deep=1".into();
        let handled = handle("test", raw, &CorsPolicy::AnyOrigin, |incoming| {
            assert_eq!(incoming.query_param("type").as_deref(), Some("speed-quiz"));
            assert_eq!(incoming.query_param("q").as_deref(), Some("a b c"));
            assert_eq!(incoming.query_param("missing"), None);
            Ok(Reply::json(200, &json!({})))
        });
        assert_eq!(handled.reply.status, 200);
    }

    /// Found by the `http` fuzz target: `%+9` was decoded as a tab.
    #[test]
    fn a_percent_sign_without_two_hex_digits_is_kept_as_it_is() {
        let mut raw = request("GET", "", &[]);
        raw.query = "q=caf%C3%+9&r=%+1%-1%4&s=%4a%4A%&t=%".into();
        let handled = handle("test", raw, &CorsPolicy::AnyOrigin, |incoming| {
            assert_eq!(incoming.query_param("q").as_deref(), Some("caf\u{fffd}% 9"));
            assert_eq!(incoming.query_param("r").as_deref(), Some("% 1%-1%4"));
            assert_eq!(incoming.query_param("s").as_deref(), Some("JJ%"));
            assert_eq!(incoming.query_param("t").as_deref(), Some("%"));
            Ok(Reply::json(200, &json!({})))
        });
        assert_eq!(handled.reply.status, 200);
    }

    #[test]
    fn redact_masks_url_passwords_and_keys() {
        assert_eq!(
            redact("failed postgres://u:pw@h:5432/db now"),
            "failed postgres://u:[redacted]@h:5432/db now"
        );
        assert_eq!(redact("key sk-abcdefghijklmnop"), "key [redacted]");
    }
}
