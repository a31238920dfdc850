//! The request pipeline every function runs through.
//!
//! [`handle`] turns a [`RawRequest`] into an [`Incoming`], answers CORS preflights,
//! refuses origins outside `allowed_origins`, gives every response its CORS headers and
//! `x-request-id`, maps an [`ApiError`] to the contract's JSON body, and writes the one
//! JSON log line of the request. It is plain code over plain types, unit-tested without
//! a host; [`crate::runtime::serve`] is what connects it to Spin's request and response.
//!
//! **Bodies are streamed.** Nothing is read before a handler asks for the body with a
//! limit ([`Incoming::body`]); it is then read from Spin's stream in chunks and refused
//! with `413` as soon as it passes the limit (or at once when `content-length` says it
//! will), so no request makes an instance hold more than its limit and one chunk.
//! Routes that take no body (`OPTIONS`, `health`, every `GET`) never read it.

use std::cell::{Cell, OnceCell, RefCell};
use std::net::IpAddr;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::client_addr::{self, TrustedProxies};
use crate::config::{self, ConfigError, Variables};
use crate::error::ApiError;

/// Body limit for JSON requests.
pub const JSON_LIMIT: usize = 64 * 1024;
/// Body limit for SDP offers.
pub const SDP_LIMIT: usize = 32 * 1024;
/// Body limit for webhook deliveries.
pub const WEBHOOK_LIMIT: usize = 256 * 1024;
/// The most one read of the body stream asks for.
pub const READ_CHUNK: usize = 16 * 1024;

const ALLOW_HEADERS: &str = "authorization, x-client-info, apikey, content-type";
const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";

/// Which browser origins may call the functions (`allowed_origins`: `*`, or a list
/// separated by commas or spaces). An empty list allows no browser origin: CORS fails
/// closed.
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
        if origins.iter().any(|origin| origin == "*") {
            CorsPolicy::AnyOrigin
        } else {
            CorsPolicy::Origins(origins)
        }
    }

    /// Reads `allowed_origins`: the default (`*`) only when the component does not
    /// declare the variable; a declared empty value allows no browser origin; a failure
    /// to read it is an error, never an open policy.
    pub fn load(vars: &impl Variables) -> Result<Self, ConfigError> {
        Ok(match vars.get(config::ALLOWED_ORIGINS)? {
            Some(value) => CorsPolicy::parse(&value),
            None => CorsPolicy::parse(config::DEFAULT_ALLOWED_ORIGINS),
        })
    }

    /// The CORS headers for a request from `origin`, or `None` when that origin is
    /// not allowed. Requests without `Origin` (servers, webhooks) are always allowed.
    fn headers_for(&self, origin: Option<&str>) -> Option<Vec<(String, String)>> {
        let mut headers = base_cors_headers();
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

/// The CORS headers that name no origin.
fn base_cors_headers() -> Vec<(String, String)> {
    vec![
        (
            "access-control-allow-headers".to_string(),
            ALLOW_HEADERS.to_string(),
        ),
        (
            "access-control-allow-methods".to_string(),
            ALLOW_METHODS.to_string(),
        ),
    ]
}

/// Reads a body of at most `limit` bytes: the bytes, or `413` past the limit.
type BodyReader = Box<dyn FnOnce(usize) -> Result<Vec<u8>, ApiError>>;

/// A request body not read yet: bytes in memory (unit tests), or Spin's stream.
pub struct Body(BodySource);

enum BodySource {
    Bytes(Vec<u8>),
    Stream(BodyReader),
}

impl Body {
    /// A body that reads `reader` when, and only when, a handler asks for it.
    pub fn stream(reader: impl FnOnce(usize) -> Result<Vec<u8>, ApiError> + 'static) -> Self {
        Body(BodySource::Stream(Box::new(reader)))
    }

    fn read(self, limit: usize) -> Result<Vec<u8>, ApiError> {
        match self.0 {
            BodySource::Bytes(bytes) if bytes.len() > limit => {
                Err(ApiError::PayloadTooLarge { limit })
            }
            BodySource::Bytes(bytes) => Ok(bytes),
            BodySource::Stream(reader) => reader(limit),
        }
    }
}

impl Default for Body {
    fn default() -> Self {
        Body(BodySource::Bytes(Vec::new()))
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body(BodySource::Bytes(bytes))
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            BodySource::Bytes(bytes) => write!(f, "Body({} bytes)", bytes.len()),
            BodySource::Stream(_) => f.write_str("Body(stream)"),
        }
    }
}

/// A request as the pipeline sees it, independent of the Spin SDK.
#[derive(Debug, Default)]
pub struct RawRequest {
    pub method: String,
    /// The full path, without the query.
    pub path: String,
    /// The path below the function's route (`spin-path-info`): `""`, `/refresh`, ….
    pub path_info: String,
    pub query: String,
    /// Header names lower-cased, in the order they came.
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// A response before it is handed back to Spin.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    /// Names lower-cased, as [`Reply::header`] and every constructor store them: the
    /// CORS merge in [`handle`] and `send` rely on it.
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

    /// The reply with a header added, its name lower-cased.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    fn from_error(error: &ApiError) -> Self {
        let mut reply = Reply::json(error.status(), &error.body());
        reply.headers.extend(error.headers());
        reply
    }

    pub(crate) fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Why a body could not be had, remembered for a second ask.
#[derive(Debug, Clone, Copy)]
enum BodyFailure {
    TooLarge(usize),
    Unreadable,
}

/// A request handed to a function's handler.
#[derive(Debug)]
pub struct Incoming {
    function: &'static str,
    method: String,
    path: String,
    path_info: String,
    query: String,
    headers: Vec<(String, String)>,
    unread_body: RefCell<Option<Body>>,
    body: OnceCell<Vec<u8>>,
    body_failure: Cell<Option<BodyFailure>>,
    request_id: String,
    user_id: RefCell<Option<String>>,
    after_response: RefCell<AfterResponse>,
}

impl Incoming {
    fn new(function: &'static str, raw: RawRequest, request_id: String) -> Self {
        Self {
            function,
            method: raw.method,
            path: raw.path,
            path_info: raw.path_info,
            query: raw.query,
            headers: raw.headers,
            unread_body: RefCell::new(Some(raw.body)),
            body: OnceCell::new(),
            body_failure: Cell::new(None),
            request_id,
            user_id: RefCell::new(None),
            after_response: RefCell::new(AfterResponse::default()),
        }
    }

    /// Schedules `work` the answer does not depend on (housekeeping, such as sweeping
    /// expired rate-limit windows) for after the response has been handed to the
    /// runtime. Spin and our host send a response as soon as the guest sets it and let
    /// the guest run on until its handler returns, so this work costs the caller no
    /// latency. It cannot change the answer, so it logs its own failures.
    pub fn after_response(&self, work: impl Future<Output = ()> + 'static) {
        self.after_response.borrow_mut().0.push(Box::pin(work));
    }

    /// The function's name, for log lines written outside the request's pipeline.
    pub fn function(&self) -> &'static str {
        self.function
    }

    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path below the function's route, `""` for the function's own root.
    pub fn path_info(&self) -> &str {
        &self.path_info
    }

    /// The path below the function's route, split into its non-empty segments.
    pub fn segments(&self) -> Vec<&str> {
        self.path_info
            .split('/')
            .filter(|segment| !segment.is_empty())
            .collect()
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// A header by its (case-insensitive) name. Spin's own `spin-*` headers are taken
    /// from the **last** value: a client may send a header of the same name, and Spin
    /// appends its own after it. Any other header is its first value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let matches = |(key, _): &&(String, String)| key.eq_ignore_ascii_case(name);
        let found = if name.len() > 5 && name[..5].eq_ignore_ascii_case("spin-") {
            self.headers.iter().rfind(matches)
        } else {
            self.headers.iter().find(matches)
        };
        found.map(|(_, value)| value.as_str())
    }

    /// Every value of a header, in the order they came.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The caller's IP address: the one Spin reports (`spin-client-addr`), or, when
    /// that is one of `trusted` proxies, the right-most `X-Forwarded-For` entry that is
    /// not ([`client_addr::client_address`]).
    pub fn client_addr(&self, trusted: &TrustedProxies) -> Option<IpAddr> {
        client_addr::client_address(
            self.header("spin-client-addr"),
            self.header_values("x-forwarded-for"),
            trusted,
        )
    }

    /// A decoded query parameter (`application/x-www-form-urlencoded`, the first of
    /// repeated names).
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// Records who the caller is, for the request log.
    pub fn set_user_id(&self, user_id: &str) {
        *self.user_id.borrow_mut() = Some(user_id.to_string());
    }

    /// Writes a JSON event line beside the request's log line, with its request id.
    pub fn log(&self, level: crate::log::Level, event: &str, detail: &str) {
        crate::log::event(level, self.function, Some(&self.request_id), event, detail);
    }

    /// Refuses any method but `allowed` with `405` and `Allow`.
    pub fn allow(&self, allowed: &[&'static str]) -> Result<(), ApiError> {
        if allowed.contains(&self.method.as_str()) {
            return Ok(());
        }
        let mut allow = allowed.to_vec();
        allow.push("OPTIONS");
        Err(ApiError::MethodNotAllowed { allow })
    }

    /// The body, read as a stream and refused with `413` as soon as it passes `limit`
    /// bytes (at once when `content-length` announces more).
    pub fn body(&self, limit: usize) -> Result<&[u8], ApiError> {
        if let Some(body) = self.body.get() {
            return if body.len() > limit {
                Err(ApiError::PayloadTooLarge { limit })
            } else {
                Ok(body)
            };
        }
        if let Some(failure) = self.body_failure.get() {
            return Err(match failure {
                BodyFailure::TooLarge(limit) => ApiError::PayloadTooLarge { limit },
                BodyFailure::Unreadable => unreadable_body(),
            });
        }
        let declared = self
            .header("content-length")
            .and_then(|value| value.trim().parse::<u64>().ok());
        let read = match (declared, self.unread_body.borrow_mut().take()) {
            (Some(length), _) if length > limit as u64 => Err(ApiError::PayloadTooLarge { limit }),
            (_, Some(body)) => body.read(limit),
            (_, None) => Err(unreadable_body()),
        };
        match read {
            Ok(bytes) => Ok(self.body.get_or_init(|| bytes)),
            Err(error) => {
                self.body_failure.set(Some(match error {
                    ApiError::PayloadTooLarge { limit } => BodyFailure::TooLarge(limit),
                    _ => BodyFailure::Unreadable,
                }));
                Err(error)
            }
        }
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

pub(crate) fn unreadable_body() -> ApiError {
    ApiError::bad_request("The request body could not be read")
}

/// Parses JSON, turning serde's error into a `400` that names the field at fault. Text
/// that PostgreSQL cannot store (a `\u0000` in any string) is refused too, naming the
/// field that holds it.
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
    if let Some(field) = nul_field(bytes) {
        return Err(nul_refusal(field));
    }
    Ok(value)
}

/// The `400` for text holding `\u0000`, naming the field.
pub fn nul_refusal(field: String) -> ApiError {
    ApiError::bad_field(
        field.clone(),
        format!("`{field}` holds a NUL character (\\u0000), which cannot be stored"),
    )
}

/// The field of a JSON document whose text (a string, or an object's key) holds a NUL
/// character, which PostgreSQL's `text` and `jsonb` refuse; `None` when there is none
/// or the bytes are not JSON. Named as serde_path_to_error names fields
/// (`items[2].transcript`); the document itself is `body`.
pub fn nul_field(bytes: &[u8]) -> Option<String> {
    // In JSON text a NUL can only be written as an escape, so a document without the
    // six bytes `\u0000` holds none and is not parsed a second time.
    if !bytes.windows(6).any(|window| window == b"\\u0000") {
        return None;
    }
    let value: Value = serde_json::from_slice(bytes).ok()?;
    nul_path(&value, String::new()).map(|path| {
        if path.is_empty() {
            "body".to_string()
        } else {
            path
        }
    })
}

fn nul_path(value: &Value, path: String) -> Option<String> {
    match value {
        Value::String(text) => text.contains('\0').then_some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| nul_path(item, format!("{path}[{index}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let field = if path.is_empty() {
                key.replace('\0', "\\u0000")
            } else {
                format!("{path}.{}", key.replace('\0', "\\u0000"))
            };
            if key.contains('\0') {
                return Some(field);
            }
            nul_path(item, field)
        }),
        _ => None,
    }
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
    /// What the handler scheduled with [`Incoming::after_response`].
    pub after_response: AfterResponse,
}

/// Work scheduled for after the response ([`Incoming::after_response`]), in the order
/// it was scheduled.
#[derive(Default)]
pub struct AfterResponse(Vec<std::pin::Pin<Box<dyn Future<Output = ()>>>>);

impl std::fmt::Debug for AfterResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AfterResponse({} scheduled)", self.0.len())
    }
}

impl AfterResponse {
    /// How many pieces of work are scheduled.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }

    /// Runs every piece of work, in order.
    pub async fn run(self) {
        for work in self.0 {
            work.await;
        }
    }
}

/// The pipeline as pure code: CORS, request id, error mapping, the log line. `cors` is
/// the policy, or the error of reading it (a `500` for every request, preflights
/// included: a configuration that cannot be read never opens CORS).
pub async fn handle(
    function: &'static str,
    raw: RawRequest,
    cors: &Result<CorsPolicy, ConfigError>,
    handler: impl AsyncFnOnce(&Incoming) -> Result<Reply, ApiError>,
) -> Handled {
    let started = Instant::now();
    let request_id = request_id_for(&raw);
    let origin = raw
        .headers
        .iter()
        .find(|(key, _)| key == "origin")
        .map(|(_, value)| value.trim_end_matches('/').to_string());
    let incoming = Incoming::new(function, raw, request_id);

    let mut failure: Option<ApiError> = None;
    let mut refuse = |error: ApiError| {
        let reply = Reply::from_error(&error);
        failure = Some(error);
        (reply, base_cors_headers())
    };
    let (mut reply, cors_headers) = match cors {
        Err(error) => refuse(ApiError::from(error.clone())),
        Ok(cors) => match cors.headers_for(origin.as_deref()) {
            // The browser will not read it, but tools do: keep the non-origin headers.
            None => refuse(ApiError::OriginNotAllowed),
            Some(headers) if incoming.method() == "OPTIONS" => {
                (Reply::with_type(200, "text/plain", "ok"), headers)
            }
            Some(headers) => match handler(&incoming).await {
                Ok(reply) => (reply, headers),
                Err(error) => {
                    let reply = Reply::from_error(&error);
                    failure = Some(error);
                    (reply, headers)
                }
            },
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
        "route": incoming.path,
        "status": reply.status,
        "duration_ms": (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0,
        "request_id": incoming.request_id,
        "user_id": incoming.user_id.borrow().clone(),
    });
    if let Some(error) = &failure {
        log["error"] = Value::String(error.code().to_string());
        if let Some(detail) = error.log_detail() {
            log["detail"] = Value::String(crate::log::redact(detail));
        }
    }
    Handled {
        reply,
        log_line: log.to_string(),
        after_response: incoming.after_response.take(),
    }
}

/// The path and the query of a request target, split by `http::Uri`; a target it
/// cannot parse keeps everything before the first `?` as the path.
pub fn split_target(target: &str) -> (String, String) {
    match target.parse::<http::Uri>() {
        Ok(uri) => (
            uri.path().to_string(),
            uri.query().unwrap_or_default().to_string(),
        ),
        Err(_) => match target.split_once('?') {
            Some((path, query)) => (path.to_string(), query.to_string()),
            None => (target.to_string(), String::new()),
        },
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
            body: Body::default(),
        }
    }

    fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
        reply.get_header(name)
    }

    #[test]
    fn work_scheduled_after_the_response_waits_for_it_and_runs_in_order() {
        use std::rc::Rc;
        let ran: Rc<RefCell<Vec<&str>>> = Rc::default();
        let handled = crate::block_on(handle(
            "test",
            request("POST", "", &[]),
            &Ok(CorsPolicy::AnyOrigin),
            async |incoming| {
                for name in ["first", "second"] {
                    let ran = ran.clone();
                    incoming.after_response(async move { ran.borrow_mut().push(name) });
                }
                Err(ApiError::bad_request("refused, and the work still runs"))
            },
        ));
        assert_eq!(handled.reply.status, 400);
        assert_eq!(handled.after_response.len(), 2);
        assert!(
            ran.borrow().is_empty(),
            "nothing runs before the response is sent"
        );
        crate::block_on(handled.after_response.run());
        assert_eq!(*ran.borrow(), ["first", "second"]);
    }

    #[test]
    fn preflight_answers_ok_with_cors_headers_without_calling_the_handler() {
        let handled = crate::block_on(handle(
            "test",
            request("OPTIONS", "", &[("origin", "https://app.example")]),
            &Ok(CorsPolicy::AnyOrigin),
            async |_| panic!("the handler must not run for a preflight"),
        ));
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
    fn header_names_leave_lower_cased_whatever_case_they_were_given_in() {
        let mixed_case = |result: Result<Reply, ApiError>| {
            let handled = crate::block_on(handle(
                "test",
                request("GET", "", &[("origin", "https://app.example")]),
                &Ok(CorsPolicy::AnyOrigin),
                async |_| result,
            ));
            let names: Vec<&str> = handled
                .reply
                .headers
                .iter()
                .map(|(name, _)| name.as_str())
                .collect();
            assert!(
                names
                    .iter()
                    .all(|name| !name.bytes().any(|byte| byte.is_ascii_uppercase())),
                "{names:?}"
            );
            handled.reply
        };
        let reply = mixed_case(Ok(Reply::json(200, &json!({}))
            .header("Cache-Control", "no-store")
            .header("Access-Control-Allow-Origin", "https://app.example")));
        assert_eq!(header(&reply, "cache-control"), Some("no-store"));
        // The handler's own allow-origin is found by the CORS merge, which adds no second.
        let allow_origin: Vec<&str> = reply
            .headers
            .iter()
            .filter(|(name, _)| name == "access-control-allow-origin")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(allow_origin, ["https://app.example"]);

        let reply = mixed_case(Err(ApiError::RateLimited {
            retry_after: 7,
            message: "Too many requests".into(),
        }));
        assert_eq!(header(&reply, "retry-after"), Some("7"));
    }

    #[test]
    fn allowed_origin_is_echoed_with_vary() {
        let cors = Ok(CorsPolicy::parse(
            "https://app.example, https://admin.example",
        ));
        let handled = crate::block_on(handle(
            "test",
            request("GET", "", &[("origin", "https://admin.example")]),
            &cors,
            async |_| Ok(Reply::json(200, &json!({"ok": true}))),
        ));
        assert_eq!(handled.reply.status, 200);
        assert_eq!(
            header(&handled.reply, "access-control-allow-origin"),
            Some("https://admin.example")
        );
        assert_eq!(header(&handled.reply, "vary"), Some("Origin"));
    }

    #[test]
    fn unknown_origin_gets_403_origin_not_allowed() {
        let cors = Ok(CorsPolicy::parse("https://app.example"));
        let handled = crate::block_on(handle(
            "test",
            request("POST", "", &[("origin", "https://evil.example")]),
            &cors,
            async |_| panic!("the handler must not run for a refused origin"),
        ));
        assert_eq!(handled.reply.status, 403);
        let body: Value = serde_json::from_slice(&handled.reply.body).unwrap();
        assert_eq!(body["error"], "origin_not_allowed");
        assert_eq!(header(&handled.reply, "access-control-allow-origin"), None);
    }

    #[test]
    fn requests_without_origin_skip_the_origin_check() {
        let cors = Ok(CorsPolicy::parse("https://app.example"));
        let handled = crate::block_on(handle(
            "test",
            request("POST", "", &[]),
            &cors,
            async |_| Ok(Reply::json(200, &json!({}))),
        ));
        assert_eq!(handled.reply.status, 200);
    }

    #[test]
    fn errors_carry_cors_headers_and_the_contract_body() {
        let handled = crate::block_on(handle(
            "test",
            request("GET", "", &[("origin", "https://app.example")]),
            &Ok(CorsPolicy::AnyOrigin),
            async |_| Err(ApiError::MissingAuthorization),
        ));
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
        let handled = crate::block_on(handle(
            "test",
            request("GET", "", &[("x-request-id", "abc-123")]),
            &Ok(CorsPolicy::AnyOrigin),
            async |_| Ok(Reply::json(200, &json!({}))),
        ));
        assert_eq!(header(&handled.reply, "x-request-id"), Some("abc-123"));
        let handled = crate::block_on(handle(
            "test",
            request("GET", "", &[("x-request-id", "<script>")]),
            &Ok(CorsPolicy::AnyOrigin),
            async |_| Ok(Reply::json(200, &json!({}))),
        ));
        let minted = header(&handled.reply, "x-request-id").unwrap();
        assert!(uuid::Uuid::parse_str(minted).is_ok());
    }

    #[test]
    fn log_line_is_one_json_object_with_the_contract_fields_and_no_secrets() {
        let handled = crate::block_on(handle(
            "test",
            request("GET", "/x", &[]),
            &Ok(CorsPolicy::AnyOrigin),
            async |incoming| {
                incoming.set_user_id("user-1");
                Err(ApiError::DatabaseUnavailable {
                    detail: "error connecting to postgres://app:hunter2@127.0.0.1:5432/db".into(),
                })
            },
        ));
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
        let handled = crate::block_on(handle(
            "test",
            request("DELETE", "", &[]),
            &Ok(CorsPolicy::AnyOrigin),
            async |incoming| {
                incoming.allow(&["GET"])?;
                Ok(Reply::json(200, &json!({})))
            },
        ));
        assert_eq!(handled.reply.status, 405);
        assert_eq!(header(&handled.reply, "allow"), Some("GET, OPTIONS"));
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct BodyShape {
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
        let error = parse_json::<BodyShape>(br#"{"persona": "pirate", "count": 1}"#).unwrap_err();
        assert!(
            matches!(&error, ApiError::BadRequest { field: Some(f), .. } if f == "persona"),
            "{error:?}"
        );
        let error = parse_json::<BodyShape>(br#"{"persona": "student-tutor"}"#).unwrap_err();
        assert!(
            matches!(&error, ApiError::BadRequest { field: Some(f), .. } if f == "count"),
            "{error:?}"
        );
        let error =
            parse_json::<BodyShape>(br#"{"persona": "student-tutor", "count": 1, "nested": {}}"#)
                .unwrap_err();
        assert!(
            matches!(&error, ApiError::BadRequest { field: Some(f), .. } if f == "nested.word"),
            "{error:?}"
        );
        let error = parse_json::<BodyShape>(b"{not json").unwrap_err();
        assert!(matches!(&error, ApiError::BadRequest { field: None, .. }));
    }

    #[test]
    fn body_over_the_limit_is_413() {
        let mut raw = request("POST", "", &[]);
        raw.body = vec![b' '; JSON_LIMIT + 1].into();
        let handled = crate::block_on(handle(
            "test",
            raw,
            &Ok(CorsPolicy::AnyOrigin),
            async |incoming| {
                let _: Value = incoming.json()?;
                Ok(Reply::json(200, &json!({})))
            },
        ));
        assert_eq!(handled.reply.status, 413);
    }

    #[test]
    fn query_params_are_decoded() {
        let mut raw = request("GET", "", &[]);
        raw.query = "type=speed-quiz&q=a%20b+c&deep=1".into();
        let handled = crate::block_on(handle(
            "test",
            raw,
            &Ok(CorsPolicy::AnyOrigin),
            async |incoming| {
                assert_eq!(incoming.query_param("type").as_deref(), Some("speed-quiz"));
                assert_eq!(incoming.query_param("q").as_deref(), Some("a b c"));
                assert_eq!(incoming.query_param("missing"), None);
                Ok(Reply::json(200, &json!({})))
            },
        ));
        assert_eq!(handled.reply.status, 200);
    }

    /// Found by the `http` fuzz target: `%+9` was decoded as a tab.
    #[test]
    fn a_percent_sign_without_two_hex_digits_is_kept_as_it_is() {
        let mut raw = request("GET", "", &[]);
        raw.query = "q=caf%C3%+9&r=%+1%-1%4&s=%4a%4A%&t=%".into();
        let handled = crate::block_on(handle(
            "test",
            raw,
            &Ok(CorsPolicy::AnyOrigin),
            async |incoming| {
                assert_eq!(incoming.query_param("q").as_deref(), Some("caf\u{fffd}% 9"));
                assert_eq!(incoming.query_param("r").as_deref(), Some("% 1%-1%4"));
                assert_eq!(incoming.query_param("s").as_deref(), Some("JJ%"));
                assert_eq!(incoming.query_param("t").as_deref(), Some("%"));
                Ok(Reply::json(200, &json!({})))
            },
        ));
        assert_eq!(handled.reply.status, 200);
    }

    #[test]
    fn an_empty_allowed_origins_allows_no_browser_origin_but_servers_pass() {
        let cors = Ok(CorsPolicy::parse(""));
        let handled = crate::block_on(handle(
            "test",
            request("GET", "", &[("origin", "https://app.example")]),
            &cors,
            async |_| panic!("the handler must not run for a refused origin"),
        ));
        assert_eq!(handled.reply.status, 403);
        assert_eq!(header(&handled.reply, "access-control-allow-origin"), None);
        let handled = crate::block_on(handle("test", request("GET", "", &[]), &cors, async |_| {
            Ok(Reply::json(200, &json!({})))
        }));
        assert_eq!(handled.reply.status, 200);
        assert_eq!(header(&handled.reply, "access-control-allow-origin"), None);
    }

    #[test]
    fn an_unreadable_allowed_origins_is_a_500_configuration_error_even_for_a_preflight() {
        let cors = Err(ConfigError::Invalid {
            name: config::ALLOWED_ORIGINS,
            reason: "the host could not resolve it".into(),
        });
        for method in ["OPTIONS", "GET"] {
            let handled = crate::block_on(handle(
                "test",
                request(method, "", &[("origin", "https://app.example")]),
                &cors,
                async |_| panic!("the handler must not run without a CORS policy"),
            ));
            assert_eq!(handled.reply.status, 500, "{method}");
            let body: Value = serde_json::from_slice(&handled.reply.body).unwrap();
            assert_eq!(body["error"], "configuration_error");
            assert_eq!(header(&handled.reply, "access-control-allow-origin"), None);
            assert!(handled.log_line.contains("allowed_origins"));
        }
    }

    #[test]
    fn cors_policy_defaults_to_any_origin_only_when_the_variable_is_undeclared() {
        let undeclared: std::collections::HashMap<&'static str, String> =
            std::collections::HashMap::new();
        assert_eq!(CorsPolicy::load(&undeclared), Ok(CorsPolicy::AnyOrigin));
        let empty: std::collections::HashMap<&'static str, String> =
            [(config::ALLOWED_ORIGINS, "  ".to_string())].into();
        assert_eq!(CorsPolicy::load(&empty), Ok(CorsPolicy::Origins(vec![])));
    }

    #[test]
    fn a_body_is_read_only_when_asked_and_refused_past_its_limit() {
        use std::rc::Rc;
        let asked = Rc::new(Cell::new(None));
        let seen = asked.clone();
        let mut raw = request("POST", "", &[]);
        raw.body = Body::stream(move |limit| {
            seen.set(Some(limit));
            Err(ApiError::PayloadTooLarge { limit })
        });
        let handled = crate::block_on(handle(
            "test",
            raw,
            &Ok(CorsPolicy::AnyOrigin),
            async |incoming| {
                let error = incoming.body(SDP_LIMIT).unwrap_err();
                assert_eq!(error.status(), 413);
                // Asked again, the refusal is remembered; the stream is not read twice.
                assert_eq!(incoming.body(SDP_LIMIT).unwrap_err().status(), 413);
                Err(error)
            },
        ));
        assert_eq!(handled.reply.status, 413);
        assert_eq!(asked.get(), Some(SDP_LIMIT));

        let untouched = Rc::new(Cell::new(false));
        let touched = untouched.clone();
        let mut raw = request("OPTIONS", "", &[]);
        raw.body = Body::stream(move |_| {
            touched.set(true);
            Ok(Vec::new())
        });
        let handled = crate::block_on(handle(
            "test",
            raw,
            &Ok(CorsPolicy::AnyOrigin),
            async |_| unreachable!(),
        ));
        assert_eq!(handled.reply.status, 200);
        assert!(!untouched.get(), "a preflight never reads the body");
    }

    #[test]
    fn a_declared_length_over_the_limit_is_413_without_reading() {
        let mut raw = request("POST", "", &[("content-length", "999999999")]);
        raw.body = Body::stream(|_| panic!("the body must not be read"));
        let handled = crate::block_on(handle(
            "test",
            raw,
            &Ok(CorsPolicy::AnyOrigin),
            async |incoming| {
                incoming.body(JSON_LIMIT)?;
                Ok(Reply::json(200, &json!({})))
            },
        ));
        assert_eq!(handled.reply.status, 413);
    }

    #[test]
    fn spin_headers_are_taken_from_the_last_value_and_others_from_the_first() {
        let handled = crate::block_on(handle(
            "test",
            request(
                "GET",
                "",
                &[
                    ("spin-client-addr", "203.0.113.9:1"),
                    ("authorization", "Bearer first"),
                    ("authorization", "Bearer second"),
                    ("spin-client-addr", "127.0.0.1:5555"),
                ],
            ),
            &Ok(CorsPolicy::AnyOrigin),
            async |incoming| {
                assert_eq!(incoming.header("spin-client-addr"), Some("127.0.0.1:5555"));
                assert_eq!(incoming.header("authorization"), Some("Bearer first"));
                assert_eq!(
                    incoming.client_addr(&TrustedProxies::default()),
                    Some("127.0.0.1".parse().unwrap())
                );
                Ok(Reply::json(200, &json!({})))
            },
        ));
        assert_eq!(handled.reply.status, 200);
    }

    #[test]
    fn nul_in_any_string_is_400_naming_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Items {
            items: Vec<Value>,
        }
        let error =
            parse_json::<Items>(br#"{"items": [{"t": "ok"}, {"t": "a\u0000b"}]}"#).unwrap_err();
        assert_eq!(error.status(), 400);
        assert!(
            matches!(&error, ApiError::BadRequest { field: Some(f), .. } if f == "items[1].t"),
            "{error:?}"
        );
        assert_eq!(
            nul_field(br#"{"a": {"b\u0000": 1}}"#).as_deref(),
            Some("a.b\\u0000")
        );
        assert_eq!(nul_field(br#""\u0000""#).as_deref(), Some("body"));
        // An escaped backslash before `u0000` is no NUL.
        assert_eq!(nul_field(br#"{"a": "\\u0000"}"#), None);
        assert!(parse_json::<Value>(br#"{"a": "\\u0000"}"#).is_ok());
    }

    #[test]
    fn request_targets_are_split_by_http_uri() {
        assert_eq!(
            split_target("/functions/v1/health?deep=1"),
            ("/functions/v1/health".to_string(), "deep=1".to_string())
        );
        assert_eq!(
            split_target("/functions/v1/health"),
            ("/functions/v1/health".to_string(), String::new())
        );
    }

    #[test]
    fn a_percent_sign_before_a_sign_is_not_a_byte() {
        let mut raw = request("GET", "", &[]);
        raw.query = "hours=%+1&deep=%31".into();
        let handled = crate::block_on(handle(
            "test",
            raw,
            &Ok(CorsPolicy::AnyOrigin),
            async |incoming| {
                assert_eq!(incoming.query_param("hours").as_deref(), Some("% 1"));
                assert_eq!(incoming.query_param("deep").as_deref(), Some("1"));
                Ok(Reply::json(200, &json!({})))
            },
        ));
        assert_eq!(handled.reply.status, 200);
    }
}
