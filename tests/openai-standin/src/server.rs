//! The HTTP side: hyper 1 over tokio, one task per connection. Each request to an
//! OpenAI path is recorded, waits out its endpoint's delay, goes silent if so switched,
//! has its Bearer key checked, answers `429`/`500` if so switched, and is then checked
//! and answered by the endpoint's module. `/__standin/…` is the control API.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::Options;
use crate::catalog;
use crate::control::{Endpoint, Mode, ModeChange, Switches};
use crate::error::{OpenAiError, RETRY_AFTER_SECONDS};
use crate::multipart;
use crate::random_id;
use crate::realtime;
use crate::record::{RecordedRequest, bearer_key};
use crate::responses::{self, AnswerShape};

/// The largest request body the stand-in reads; a larger one gets `413` and is not
/// recorded.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Where the control API lives.
const CONTROL_PREFIX: &str = "/__standin/";

/// What a running stand-in holds.
pub(crate) struct State {
    pub options: Options,
    pub switches: Mutex<Switches>,
    pub records: Mutex<Vec<RecordedRequest>>,
    /// Client secrets minted so far, with their expiry: they open `/v1/realtime/calls`
    /// as they do at OpenAI, even when an expected API key is configured.
    pub issued_secrets: Mutex<HashMap<String, u64>>,
}

impl State {
    pub fn new(options: Options) -> Self {
        Self {
            options,
            switches: Mutex::default(),
            records: Mutex::default(),
            issued_secrets: Mutex::default(),
        }
    }

    fn accepts_key(&self, key: &str, endpoint: Endpoint, now: u64) -> bool {
        match &self.options.api_key {
            None => true,
            Some(expected) if expected == key => true,
            Some(_) => {
                endpoint == Endpoint::Calls
                    && lock(&self.issued_secrets)
                        .get(key)
                        .is_some_and(|expires_at| *expires_at > now)
            }
        }
    }
}

/// Locks `mutex`, carrying on past a panic elsewhere: the data stays usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serves connections from `listener` until `shutdown` completes, then drops every open
/// connection (held silent requests included).
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) {
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                while connections.try_join_next().is_some() {}
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        eprintln!("openai-standin: accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let state = state.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, request).await) }
                    });
                    // A client that hangs up mid-request is its own business.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
    connections.shutdown().await;
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default()
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);

    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return error_reply(&OpenAiError::body_too_large(MAX_BODY_BYTES)),
    };
    if let Some(control_path) = path.strip_prefix(CONTROL_PREFIX) {
        return control(state, &method, control_path, query.as_deref(), &body);
    }

    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let record = RecordedRequest {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        json: is_json(&content_type)
            .then(|| serde_json::from_slice(&body).ok())
            .flatten(),
        form: multipart::boundary(&content_type)
            .and_then(|boundary| multipart::parse(&body, &boundary).ok()),
        headers,
        body: body.to_vec(),
    };
    let authorization = record.header("authorization").map(str::to_owned);
    lock(&state.records).push(record);

    let endpoint = Endpoint::for_path(&path).filter(|endpoint| endpoint.method() == method);
    let Some(endpoint) = endpoint else {
        let reply = error_reply(&OpenAiError::invalid_url(&method, &path));
        log(state, &method, &path, None, Some(reply.status()), started);
        return reply;
    };
    let switch = lock(&state.switches).get(endpoint);
    if !switch.delay.is_zero() {
        tokio::time::sleep(switch.delay).await;
    }
    if switch.mode == Mode::Silent {
        log(state, &method, &path, Some(endpoint), None, started);
        // Held until the client hangs up (hyper then drops this future) or the
        // stand-in stops (its connections are dropped).
        return std::future::pending().await;
    }
    let exchange = Exchange {
        path: &path,
        query: query.as_deref(),
        content_type: &content_type,
        authorization: authorization.as_deref(),
        body: &body,
    };
    let reply = answer(state, endpoint, switch.mode, &exchange);
    log(
        state,
        &method,
        &path,
        Some(endpoint),
        Some(reply.status()),
        started,
    );
    reply
}

/// The parts of a request an endpoint answers from.
struct Exchange<'a> {
    path: &'a str,
    query: Option<&'a str>,
    content_type: &'a str,
    authorization: Option<&'a str>,
    body: &'a [u8],
}

fn answer(
    state: &State,
    endpoint: Endpoint,
    mode: Mode,
    exchange: &Exchange,
) -> Response<Full<Bytes>> {
    let now = now_unix();
    let Some(key) = exchange.authorization.and_then(bearer_key) else {
        return error_reply(&OpenAiError::missing_api_key());
    };
    if !state.accepts_key(key, endpoint, now) {
        return error_reply(&OpenAiError::invalid_api_key());
    }
    match mode {
        Mode::RateLimited => return rate_limited_reply(),
        Mode::ServerError => return error_reply(&OpenAiError::server_error()),
        Mode::Normal | Mode::Silent | Mode::Refusal | Mode::NoMessage => {}
    }
    let result = match endpoint {
        Endpoint::ClientSecrets => json_body(exchange).and_then(|body| {
            let secret = realtime::create_client_secret(&body, now)?;
            lock(&state.issued_secrets).insert(secret.value.clone(), secret.expires_at);
            Ok(json_reply(StatusCode::OK, &secret.body))
        }),
        Endpoint::Calls => {
            let model = exchange.query.and_then(|query| query_param(query, "model"));
            realtime::create_call(exchange.content_type, exchange.body, model.as_deref()).map(
                |call| {
                    let mut reply = reply(
                        StatusCode::CREATED,
                        "application/sdp",
                        call.answer.clone().into(),
                    );
                    if let Ok(location) = HeaderValue::from_str(&call.location()) {
                        reply.headers_mut().insert(LOCATION, location);
                    }
                    reply
                },
            )
        }
        Endpoint::Responses => json_body(exchange).and_then(|body| {
            let request = responses::check_request(&body)?;
            let shape = match mode {
                Mode::Refusal => AnswerShape::Refusal,
                Mode::NoMessage => AnswerShape::NoMessage,
                _ => AnswerShape::Message,
            };
            Ok(json_reply(
                StatusCode::OK,
                &responses::response_object(&request, shape, now),
            ))
        }),
        Endpoint::Models => match exchange.path.strip_prefix("/v1/models/") {
            None => Ok(json_reply(StatusCode::OK, &catalog::model_list())),
            Some(model) => {
                let model = percent_decode(model);
                catalog::model_object(&model)
                    .map(|object| json_reply(StatusCode::OK, &object))
                    .ok_or_else(|| OpenAiError::model_not_found(&model))
            }
        },
    };
    result.unwrap_or_else(|error| error_reply(&error))
}

fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn json_body(exchange: &Exchange) -> Result<Value, OpenAiError> {
    if !is_json(exchange.content_type) {
        return Err(OpenAiError::unparsable_body(format!(
            "Unsupported content type '{}': this endpoint takes application/json.",
            exchange.content_type
        )));
    }
    serde_json::from_slice(exchange.body).map_err(|_| {
        OpenAiError::unparsable_body(
            "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
                .into(),
        )
    })
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("openai-version", HeaderValue::from_static("2020-10-01"));
    if let Ok(id) = HeaderValue::from_str(&random_id("req_")) {
        headers.insert("x-request-id", id);
    }
    response
}

fn json_reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    reply(status, "application/json", body.to_string().into())
}

fn error_reply(error: &OpenAiError) -> Response<Full<Bytes>> {
    json_reply(error.status, &error.body())
}

fn rate_limited_reply() -> Response<Full<Bytes>> {
    let mut response = error_reply(&OpenAiError::rate_limited());
    let headers = response.headers_mut();
    headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    headers.insert("x-ratelimit-limit-requests", HeaderValue::from_static("60"));
    headers.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from_static("0"),
    );
    if let Ok(reset) = HeaderValue::from_str(&format!("{RETRY_AFTER_SECONDS}s")) {
        headers.insert("x-ratelimit-reset-requests", reset);
    }
    response
}

/// One line per request to an OpenAI path: no header, key or body is ever printed.
fn log(
    state: &State,
    method: &str,
    path: &str,
    endpoint: Option<Endpoint>,
    status: Option<StatusCode>,
    started: Instant,
) {
    if !state.options.log_requests {
        return;
    }
    let line = json!({
        "time": now_unix(),
        "method": method,
        "path": path,
        "endpoint": endpoint.map(Endpoint::as_str),
        "status": status.map(|status| status.as_u16()),
        "held": status.is_none(),
        "duration_ms": started.elapsed().as_millis() as u64,
    });
    println!("{line}");
}

/// The control API: `GET|DELETE requests`, `GET|PUT mode`, `GET health`.
fn control(
    state: &State,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let refuse = |status: StatusCode, message: String| {
        json_reply(
            status,
            &json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}}),
        )
    };
    match (method, path) {
        ("GET", "health") => json_reply(StatusCode::OK, &json!({"status": "ok"})),
        ("GET", "requests") => {
            let wanted = query.and_then(|query| query_param(query, "path"));
            let records: Vec<Value> = lock(&state.records)
                .iter()
                .filter(|record| wanted.as_deref().is_none_or(|path| record.path == path))
                .map(RecordedRequest::to_json)
                .collect();
            json_reply(StatusCode::OK, &Value::Array(records))
        }
        ("DELETE", "requests") => {
            let mut records = lock(&state.records);
            let cleared = records.len();
            records.clear();
            json_reply(StatusCode::OK, &json!({"cleared": cleared}))
        }
        ("GET", "mode") => json_reply(StatusCode::OK, &lock(&state.switches).to_json()),
        ("PUT", "mode") => {
            let change = serde_json::from_slice::<Value>(body)
                .map_err(|error| format!("the body is not JSON: {error}"))
                .and_then(|body| ModeChange::from_json(&body));
            match change {
                Ok(change) => {
                    let mut switches = lock(&state.switches);
                    change.apply(&mut switches);
                    json_reply(StatusCode::OK, &switches.to_json())
                }
                Err(message) => refuse(StatusCode::BAD_REQUEST, message),
            }
        }
        (_, "health" | "requests" | "mode") => refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not served here"),
        ),
        _ => refuse(
            StatusCode::NOT_FOUND,
            format!("no control route {CONTROL_PREFIX}{path}"),
        ),
    }
}

/// The decoded value of parameter `name` in a query string.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

/// `%XX` and `+` decoding of a URL component; malformed escapes are kept as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 3 <= bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        decoded.push(byte);
                        index += 3;
                    }
                    None => {
                        decoded.push(b'%');
                        index += 1;
                    }
                }
            }
            b'+' => {
                decoded.push(b' ');
                index += 1;
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(
            query_param("a=1&path=%2Fv1%2Fresponses", "path").as_deref(),
            Some("/v1/responses")
        );
        assert_eq!(
            query_param("model=gpt-realtime", "model").as_deref(),
            Some("gpt-realtime")
        );
        assert_eq!(query_param("model=gpt-realtime", "path"), None);
    }

    #[test]
    fn malformed_escapes_are_kept() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("a+b%20c"), "a b c");
    }

    #[test]
    fn json_content_type_allows_parameters() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
    }

    #[test]
    fn configured_key_or_issued_secret_for_calls_is_accepted() {
        let state = State::new(Options {
            api_key: Some("sk-right".into()),
            log_requests: false,
        });
        lock(&state.issued_secrets).insert("ek_live".into(), 200);
        lock(&state.issued_secrets).insert("ek_old".into(), 50);
        assert!(state.accepts_key("sk-right", Endpoint::Responses, 100));
        assert!(!state.accepts_key("sk-wrong", Endpoint::Responses, 100));
        assert!(state.accepts_key("ek_live", Endpoint::Calls, 100));
        assert!(!state.accepts_key("ek_live", Endpoint::ClientSecrets, 100));
        assert!(!state.accepts_key("ek_old", Endpoint::Calls, 100));
    }

    #[test]
    fn any_key_is_accepted_without_configuration() {
        let state = State::new(Options::default());
        assert!(state.accepts_key("anything", Endpoint::Models, 0));
    }
}
