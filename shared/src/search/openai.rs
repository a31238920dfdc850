//! The one upstream call of the search function: `POST {openai_base_url}/v1/responses`
//! with the `web_search` tool (OpenAI's Responses API).
//!
//! [`search_request`] builds the request (pure); [`interpret`] turns whatever came back
//! into a [`Found`] answer or a [`SearchFailure`] (pure); [`search`] joins them with
//! [`outbound::send`]. The answer is the response's assistant `message` item: its
//! `output_text` text, and its `url_citation` annotations de-duplicated by URL in order
//! of first appearance. A response without a message, or whose message is a refusal,
//! is a failure too. [`SearchFailure::allows_stale`] says which failures a cached
//! answer may cover (OpenAI's 429 and 5xx, no answer within [`UPSTREAM_TIMEOUT`], a
//! broken connection) and [`SearchFailure::into_error`] maps them as section 3 of the
//! contract does. Neither the query nor OpenAI's error messages (which can quote the
//! input or the key) go into a failure's log text: only statuses and error types.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::languages::Language;
use crate::openai::{self, error_type, retry_after};
use crate::outbound::{self, OutboundError, OutboundRequest, OutboundResponse};

/// How long OpenAI has to answer a search.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(15);

/// A source the answer cites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    pub url: String,
    pub title: String,
}

/// What a successful search found: the answer text and every distinct citation, in
/// order of first appearance (not yet cut to a caller's `max_citations`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub answer: String,
    pub citations: Vec<Citation>,
}

/// Why a search produced no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchFailure {
    /// OpenAI answered `429`; `retry_after` is its wait, in whole seconds.
    RateLimited {
        retry_after: u64,
        error_type: String,
    },
    /// OpenAI answered `5xx`.
    ServerError { status: u16, error_type: String },
    /// No answer within [`UPSTREAM_TIMEOUT`].
    Timeout,
    /// The connection could not be made or broke.
    Unreachable(String),
    /// OpenAI refused the request itself (`4xx` other than `429`: a bad key, an unknown
    /// model), or the host refused the destination: a configuration problem.
    Rejected(String),
    /// The model declined to answer (a `refusal` content item).
    Refusal,
    /// A successful status without a usable answer: no `message` item, no text, or a
    /// body that is not OpenAI's shape.
    NoAnswer(String),
    /// No `openai_api_key` is configured: the app runs in demo mode and cannot search.
    NotConfigured,
}

impl SearchFailure {
    /// Whether a stale cached answer may be served instead: only for failures of the
    /// service (rate limiting, server errors, silence, a broken connection), not for a
    /// refusal or a misconfiguration, which a stale answer would hide.
    pub fn allows_stale(&self) -> bool {
        matches!(
            self,
            SearchFailure::RateLimited { .. }
                | SearchFailure::ServerError { .. }
                | SearchFailure::Timeout
                | SearchFailure::Unreachable(_)
        )
    }

    /// What happened, for the log (no query, no upstream message).
    pub fn describe(&self) -> String {
        match self {
            SearchFailure::RateLimited { error_type, .. } => {
                format!("OpenAI responses answered 429 ({error_type})")
            }
            SearchFailure::ServerError { status, error_type } => {
                format!("OpenAI responses answered {status} ({error_type})")
            }
            SearchFailure::Timeout => format!(
                "OpenAI responses gave no answer within {}s",
                UPSTREAM_TIMEOUT.as_secs()
            ),
            SearchFailure::Unreachable(reason) => format!("OpenAI responses unreachable: {reason}"),
            SearchFailure::Rejected(reason) => {
                format!("OpenAI responses refused the request: {reason}")
            }
            SearchFailure::Refusal => {
                "OpenAI responses answered with a refusal instead of text".into()
            }
            SearchFailure::NoAnswer(reason) => format!("OpenAI responses gave no answer: {reason}"),
            SearchFailure::NotConfigured => "openai_api_key is not set".into(),
        }
    }

    /// The contract's error: no API key is `503` with `"mode": "demo"`, 429 is `503`
    /// with `Retry-After`, silence `504`, a refusal `502 search_refused`, no
    /// message `502 no_search_answer`, anything else `502 upstream_error` (the log
    /// gets [`SearchFailure::describe`]).
    pub fn into_error(self) -> ApiError {
        let detail = self.describe();
        match self {
            SearchFailure::NotConfigured => openai::demo_mode(
                "Web search is not configured on this server (no OpenAI API key); running in demo mode",
                Map::new(),
                &detail,
            ),
            SearchFailure::RateLimited { retry_after, .. } => openai::rate_limited(
                "Web search is rate limited upstream; try again shortly",
                retry_after,
                detail,
            ),
            SearchFailure::Timeout => ApiError::UpstreamTimeout { detail },
            SearchFailure::Refusal => ApiError::UpstreamAnswer {
                error: "search_refused",
                message: "The search model declined to answer this query".into(),
                detail,
            },
            SearchFailure::NoAnswer(_) => ApiError::UpstreamAnswer {
                error: "no_search_answer",
                message: "The search returned no answer".into(),
                detail,
            },
            SearchFailure::ServerError { .. }
            | SearchFailure::Unreachable(_)
            | SearchFailure::Rejected(_) => ApiError::Upstream { detail },
        }
    }
}

/// The `input` of the request: the query alone, or, with a locale, a developer message
/// asking for that language followed by the query as the user's message (so the model
/// reads the query as the question and the locale as an instruction about it).
pub fn search_input(query: &str, locale: Option<&Language>) -> Value {
    match locale {
        None => Value::String(query.to_string()),
        Some(language) => json!([
            {
                "role": "developer",
                "content": format!(
                    "Answer in {} (BCP 47: {}), whatever language the question is in. \
                     The answer will be read aloud by a voice assistant.",
                    language.name, language.tag
                ),
            },
            {"role": "user", "content": query},
        ]),
    }
}

/// The body OpenAI is sent.
pub fn search_body(model: &str, query: &str, locale: Option<&Language>) -> Value {
    json!({
        "model": model,
        "tools": [{"type": "web_search"}],
        "input": search_input(query, locale),
    })
}

/// The whole request, with the API key as a bearer token.
pub fn search_request(
    base_url: &str,
    api_key: &str,
    model: &str,
    query: &str,
    locale: Option<&Language>,
) -> OutboundRequest {
    OutboundRequest {
        method: "POST",
        url: format!("{}/v1/responses", base_url.trim_end_matches('/')),
        headers: vec![
            ("authorization".into(), format!("Bearer {api_key}")),
            ("content-type".into(), "application/json".into()),
            ("accept".into(), "application/json".into()),
        ],
        body: serde_json::to_vec(&search_body(model, query, locale))
            .expect("JSON values always serialise"),
        timeout: UPSTREAM_TIMEOUT,
    }
}

/// Turns the outcome of the upstream call into an answer or a failure.
pub fn interpret(outcome: Result<OutboundResponse, OutboundError>) -> Result<Found, SearchFailure> {
    let response = match outcome {
        Ok(response) => response,
        Err(OutboundError::Timeout) => return Err(SearchFailure::Timeout),
        Err(OutboundError::Failed(reason)) => return Err(SearchFailure::Unreachable(reason)),
        Err(other @ (OutboundError::NotAllowed(_) | OutboundError::Invalid(_))) => {
            return Err(SearchFailure::Rejected(other.to_string()));
        }
    };
    match response.status {
        200..=299 => {
            let body: Value = serde_json::from_slice(&response.body).map_err(|_| {
                SearchFailure::NoAnswer(format!(
                    "status {} with a body that is not JSON",
                    response.status
                ))
            })?;
            extract_answer(&body)
        }
        429 => Err(SearchFailure::RateLimited {
            retry_after: retry_after(&response),
            error_type: error_type(&response),
        }),
        status @ 500..=599 => Err(SearchFailure::ServerError {
            status,
            error_type: error_type(&response),
        }),
        status => Err(SearchFailure::Rejected(format!(
            "status {status} ({})",
            error_type(&response)
        ))),
    }
}

/// The answer in a `response` object: the text and citations of its assistant
/// `message` items (their `output_text` parts, joined by a blank line when there are
/// several).
pub fn extract_answer(response: &Value) -> Result<Found, SearchFailure> {
    let output = response
        .get("output")
        .and_then(Value::as_array)
        .ok_or_else(|| SearchFailure::NoAnswer("the response has no output list".into()))?;
    let messages: Vec<&Value> = output
        .iter()
        .filter(|item| item.get("type").and_then(Value::as_str) == Some("message"))
        .collect();
    if messages.is_empty() {
        return Err(SearchFailure::NoAnswer(
            "the output has no message item".into(),
        ));
    }

    let mut texts: Vec<&str> = Vec::new();
    let mut citations: Vec<Citation> = Vec::new();
    let mut refused = false;
    let parts = messages
        .iter()
        .filter_map(|message| message.get("content").and_then(Value::as_array))
        .flatten();
    for part in parts {
        match part.get("type").and_then(Value::as_str) {
            Some("output_text") => {
                if let Some(text) = part.get("text").and_then(Value::as_str)
                    && !text.trim().is_empty()
                {
                    texts.push(text.trim());
                }
                let annotations = part.get("annotations").and_then(Value::as_array);
                for annotation in annotations.into_iter().flatten() {
                    if let Some(citation) = url_citation(annotation)
                        && !citations.iter().any(|known| known.url == citation.url)
                    {
                        citations.push(citation);
                    }
                }
            }
            Some("refusal") => refused = true,
            _ => {}
        }
    }
    if texts.is_empty() {
        return Err(if refused {
            SearchFailure::Refusal
        } else {
            SearchFailure::NoAnswer("the message has no output_text".into())
        });
    }
    Ok(Found {
        answer: texts.join("\n\n"),
        citations,
    })
}

/// A `url_citation` annotation as a citation; a missing or empty title falls back to
/// the URL, so that every citation has something to read out.
fn url_citation(annotation: &Value) -> Option<Citation> {
    if annotation.get("type").and_then(Value::as_str) != Some("url_citation") {
        return None;
    }
    let url = annotation.get("url").and_then(Value::as_str)?.trim();
    if url.is_empty() {
        return None;
    }
    let title = annotation
        .get("title")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|title| !title.is_empty())
        .unwrap_or(url);
    Some(Citation {
        url: url.to_string(),
        title: title.to_string(),
    })
}

/// Asks OpenAI to answer `query` with a web search.
pub async fn search(
    base_url: &str,
    api_key: &str,
    model: &str,
    query: &str,
    locale: Option<&Language>,
) -> Result<Found, SearchFailure> {
    interpret(outbound::send(&search_request(base_url, api_key, model, query, locale)).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::languages;

    fn answer(
        status: u16,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<OutboundResponse, OutboundError> {
        Ok(OutboundResponse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        })
    }

    fn citation(url: &str, title: &str) -> Value {
        json!({"type": "url_citation", "url": url, "title": title, "start_index": 0, "end_index": 1})
    }

    /// A response shaped as OpenAI documents it for the web search tool.
    fn response_with(content: Value) -> Value {
        json!({
            "id": "resp_1", "object": "response", "status": "completed",
            "output": [
                {"type": "web_search_call", "id": "ws_1", "status": "completed",
                 "action": {"type": "search", "query": "x"}},
                {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                 "content": content},
            ],
        })
    }

    #[test]
    fn the_request_is_the_contracts_responses_request() {
        let request = search_request(
            "http://127.0.0.1:9100/",
            "sk-test",
            "gpt-4.1-mini",
            "Tides in Lisbon",
            None,
        );
        assert_eq!(request.method, "POST");
        assert_eq!(request.url, "http://127.0.0.1:9100/v1/responses");
        assert!(
            request
                .headers
                .contains(&("authorization".into(), "Bearer sk-test".into()))
        );
        assert_eq!(request.timeout, Duration::from_secs(15));
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body,
            json!({"model": "gpt-4.1-mini", "tools": [{"type": "web_search"}], "input": "Tides in Lisbon"})
        );
    }

    #[test]
    fn a_locale_becomes_a_developer_instruction_before_the_query() {
        let french = languages::lookup("fr").unwrap();
        let body = search_body("gpt-4.1-mini", "Tides in Lisbon", Some(french));
        let input = body["input"].as_array().unwrap();
        assert_eq!(input.len(), 2);
        assert_eq!(input[0]["role"], "developer");
        let instruction = input[0]["content"].as_str().unwrap();
        assert!(instruction.contains("Answer in French"), "{instruction}");
        assert!(instruction.contains("fr"), "{instruction}");
        assert_eq!(
            input[1],
            json!({"role": "user", "content": "Tides in Lisbon"})
        );
        assert_eq!(body["tools"], json!([{"type": "web_search"}]));
    }

    #[test]
    fn the_answer_is_the_output_text_with_citations_deduplicated_in_order() {
        let body = response_with(json!([{
            "type": "output_text",
            "text": "  High tide is at 14:02. ",
            "annotations": [
                citation("https://b.example/tides", "Tide table"),
                citation("https://a.example/port", "Port of Lisbon"),
                citation("https://b.example/tides", "Tide table (again)"),
                {"type": "file_citation", "file_id": "file_1"},
                citation("https://c.example/", ""),
            ],
        }]));
        let found = extract_answer(&body).unwrap();
        assert_eq!(found.answer, "High tide is at 14:02.");
        assert_eq!(
            found.citations,
            vec![
                Citation {
                    url: "https://b.example/tides".into(),
                    title: "Tide table".into()
                },
                Citation {
                    url: "https://a.example/port".into(),
                    title: "Port of Lisbon".into()
                },
                Citation {
                    url: "https://c.example/".into(),
                    title: "https://c.example/".into()
                },
            ]
        );
    }

    #[test]
    fn several_text_parts_are_joined_and_their_citations_merged() {
        let body = response_with(json!([
            {"type": "output_text", "text": "First.", "annotations": [citation("https://a.example", "A")]},
            {"type": "output_text", "text": "Second.", "annotations": [citation("https://a.example", "A"), citation("https://b.example", "B")]},
        ]));
        let found = extract_answer(&body).unwrap();
        assert_eq!(found.answer, "First.\n\nSecond.");
        assert_eq!(found.citations.len(), 2);
    }

    #[test]
    fn a_refusal_is_a_refusal_and_502() {
        let body =
            response_with(json!([{"type": "refusal", "refusal": "I can't help with that."}]));
        let failure = extract_answer(&body).unwrap_err();
        assert_eq!(failure, SearchFailure::Refusal);
        assert!(!failure.allows_stale());
        let error = failure.into_error();
        assert_eq!(error.status(), 502);
        assert!(error.log_detail().unwrap().contains("refusal"));
    }

    #[test]
    fn no_message_item_is_no_answer_and_502() {
        let body =
            json!({"output": [{"type": "web_search_call", "id": "ws_1", "status": "completed"}]});
        let failure = extract_answer(&body).unwrap_err();
        assert!(matches!(failure, SearchFailure::NoAnswer(_)), "{failure:?}");
        assert!(!failure.allows_stale());
        assert_eq!(failure.into_error().status(), 502);
        for body in [
            json!({}),
            json!({"output": "x"}),
            response_with(json!([])),
            response_with(json!([{"type": "output_text", "text": "  "}])),
        ] {
            assert!(
                matches!(extract_answer(&body), Err(SearchFailure::NoAnswer(_))),
                "{body}"
            );
        }
        assert!(matches!(
            interpret(answer(200, &[], "<html>")),
            Err(SearchFailure::NoAnswer(_))
        ));
    }

    #[test]
    fn openai_429_is_503_with_its_retry_after_and_allows_stale() {
        let failure = interpret(answer(
            429,
            &[("retry-after", "1.2")],
            r#"{"error": {"type": "requests", "code": "rate_limit_exceeded"}}"#,
        ))
        .unwrap_err();
        assert!(failure.allows_stale());
        let error = failure.into_error();
        assert_eq!(error.status(), 503);
        assert_eq!(
            error.headers(),
            vec![("retry-after".to_string(), "2".to_string())]
        );
        assert!(
            error
                .log_detail()
                .unwrap()
                .contains("requests/rate_limit_exceeded")
        );
        let error = interpret(answer(429, &[], "")).unwrap_err().into_error();
        assert_eq!(
            error.headers(),
            vec![("retry-after".to_string(), "5".to_string())]
        );
    }

    #[test]
    fn server_errors_silence_and_broken_connections_allow_stale() {
        let failure =
            interpret(answer(500, &[], r#"{"error": {"type": "server_error"}}"#)).unwrap_err();
        assert!(failure.allows_stale());
        assert_eq!(failure.into_error().status(), 502);
        let failure = interpret(answer(503, &[], "")).unwrap_err();
        assert!(failure.allows_stale());
        let failure = interpret(Err(OutboundError::Timeout)).unwrap_err();
        assert!(failure.allows_stale());
        assert_eq!(failure.into_error().status(), 504);
        let failure =
            interpret(Err(OutboundError::Failed("connection refused".into()))).unwrap_err();
        assert!(failure.allows_stale());
        assert_eq!(failure.into_error().status(), 502);
    }

    #[test]
    fn a_rejected_request_is_502_without_stale_and_without_the_upstream_message() {
        let body = r#"{"error": {"message": "Incorrect API key provided: sk-live-abcdefgh1234; input was 'my question'", "type": "invalid_request_error", "code": "invalid_api_key"}}"#;
        for status in [400, 401, 404] {
            let failure = interpret(answer(status, &[], body)).unwrap_err();
            assert!(!failure.allows_stale(), "status {status}");
            let error = failure.into_error();
            assert_eq!(error.status(), 502);
            assert_eq!(error.code(), "upstream_error");
            let detail = error.log_detail().unwrap();
            assert!(
                detail.contains("invalid_request_error/invalid_api_key"),
                "{detail}"
            );
            assert!(
                !detail.contains("sk-live") && !detail.contains("my question"),
                "{detail}"
            );
            assert!(!error.body().to_string().contains("sk-live"));
        }
        let failure =
            interpret(Err(OutboundError::NotAllowed("HttpRequestDenied".into()))).unwrap_err();
        assert!(!failure.allows_stale());
    }

    #[test]
    fn no_api_key_is_503_in_demo_mode_without_stale() {
        let failure = SearchFailure::NotConfigured;
        assert!(!failure.allows_stale());
        let error = failure.into_error();
        assert_eq!(error.status(), 503);
        assert_eq!(error.body()["error"], "service_unavailable");
        assert_eq!(error.body()["mode"], "demo");
        assert!(error.headers().is_empty());
    }
}
