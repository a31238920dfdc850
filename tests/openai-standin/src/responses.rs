//! `POST /v1/responses` with the `web_search` tool, as OpenAI documents it: the request
//! must name a model, offer the web search tool and carry an input; the answer is a
//! `response` object whose `output` holds a `web_search_call` item and an assistant
//! `message` with `output_text` and `url_citation` annotations. The answer is a pure
//! function of the query, and its citations repeat one URL so that callers' de-duplication
//! is exercised; it can also come as a refusal or without a message.

use serde_json::{Value, json};

use crate::error::OpenAiError;
use crate::random_id;

/// What the `message` item of an answer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerShape {
    /// An `output_text` with citations.
    Message,
    /// A `refusal` content item instead of text.
    Refusal,
    /// No message item at all (only the search call).
    NoMessage,
}

/// The refusal text of a `Refusal` answer.
pub const REFUSAL_TEXT: &str = "I'm sorry, but I can't help with that request.";

/// A citation the answer carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Citation {
    /// The cited page.
    pub url: String,
    /// Its title.
    pub title: String,
}

/// The checked parts of a request.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchRequest {
    /// `model`, as sent.
    pub model: String,
    /// The user's text the search is for.
    pub query: String,
    /// `tools`, as sent.
    pub tools: Value,
    /// `instructions`, as sent (or null).
    pub instructions: Value,
}

/// Checks a `POST /v1/responses` body.
pub fn check_request(body: &Value) -> Result<SearchRequest, OpenAiError> {
    let request = body
        .as_object()
        .ok_or_else(|| OpenAiError::invalid_type("body", "an object"))?;
    let model = match request.get("model") {
        None | Some(Value::Null) => return Err(OpenAiError::missing_parameter("model")),
        Some(Value::String(model)) if !model.trim().is_empty() => model.clone(),
        Some(Value::String(_)) => {
            return Err(OpenAiError::invalid_value(
                "model",
                "'model' must not be empty.".into(),
            ));
        }
        Some(_) => return Err(OpenAiError::invalid_type("model", "a string")),
    };
    let tools = request
        .get("tools")
        .ok_or_else(|| OpenAiError::missing_parameter("tools"))?;
    let tool_list = tools
        .as_array()
        .ok_or_else(|| OpenAiError::invalid_type("tools", "an array"))?;
    let offers_web_search = tool_list.iter().any(|tool| {
        tool.get("type")
            .and_then(Value::as_str)
            .is_some_and(|kind| kind == "web_search" || kind.starts_with("web_search_"))
    });
    if !offers_web_search {
        return Err(OpenAiError::invalid_value(
            "tools",
            "This endpoint expects a {\"type\": \"web_search\"} tool in 'tools'.".into(),
        ));
    }
    let query = match request.get("input") {
        None | Some(Value::Null) => return Err(OpenAiError::missing_parameter("input")),
        Some(input) => user_text(input)?,
    };
    Ok(SearchRequest {
        model,
        query,
        tools: tools.clone(),
        instructions: request.get("instructions").cloned().unwrap_or(Value::Null),
    })
}

/// The text of the input: the string itself, or the last user message of a list of
/// input items (its `content` string, or its `input_text` parts joined).
fn user_text(input: &Value) -> Result<String, OpenAiError> {
    let empty = || OpenAiError::invalid_value("input", "'input' must not be empty.".into());
    match input {
        Value::String(text) if text.trim().is_empty() => Err(empty()),
        Value::String(text) => Ok(text.trim().to_owned()),
        Value::Array(items) if items.is_empty() => Err(empty()),
        Value::Array(items) => items
            .iter()
            .rev()
            .filter(|item| item.get("role").and_then(Value::as_str) == Some("user"))
            .find_map(|item| match item.get("content") {
                Some(Value::String(text)) => Some(text.trim().to_owned()),
                Some(Value::Array(parts)) => {
                    let texts: Vec<&str> = parts
                        .iter()
                        .filter(|part| {
                            part.get("type").and_then(Value::as_str) == Some("input_text")
                        })
                        .filter_map(|part| part.get("text").and_then(Value::as_str))
                        .collect();
                    Some(texts.join(" ").trim().to_owned())
                }
                _ => None,
            })
            .filter(|text| !text.is_empty())
            .ok_or_else(|| {
                OpenAiError::invalid_value(
                    "input",
                    "'input' holds no user message with text to search for.".into(),
                )
            }),
        _ => Err(OpenAiError::invalid_type(
            "input",
            "a string or an array of input items",
        )),
    }
}

/// The answer text and its citations for `query`: the same query always gets the same
/// text, indices and URLs, and the first URL is cited twice.
pub fn answer_for(query: &str) -> (String, Vec<(Citation, usize, usize)>) {
    let topic: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
    let topic: String = topic.chars().take(100).collect();
    let slug = slug_of(query);
    let encyclopedia = Citation {
        url: format!("https://en.example.org/wiki/{slug}?utm_source=openai"),
        title: format!("{topic} - Example Encyclopedia"),
    };
    let news = Citation {
        url: format!("https://news.example.com/articles/{slug}?utm_source=openai"),
        title: format!("Latest on {topic} - Example News"),
    };

    let mut text = String::new();
    let mut citations = Vec::new();
    let mut cite = |text: &mut String, citation: &Citation| {
        let host = citation
            .url
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap_or_default();
        let start = text.chars().count();
        text.push_str(&format!("([{host}]({}))", citation.url));
        citations.push((citation.clone(), start, text.chars().count()));
    };
    text.push_str(&format!("Here is what current sources say about {topic}. "));
    cite(&mut text, &encyclopedia);
    text.push_str(" Recent reporting adds further context. ");
    cite(&mut text, &news);
    text.push_str(" The encyclopedia entry also lists related reading. ");
    cite(&mut text, &encyclopedia);
    (text, citations)
}

/// A URL path segment for `query`: its ASCII words joined by `-`, else a hash of it.
fn slug_of(query: &str) -> String {
    let words: Vec<String> = query
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let slug: String = words.join("-").chars().take(60).collect();
    if slug.is_empty() {
        // FNV-1a: stable across runs and platforms, unlike the std hasher.
        let hash = query.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("q-{hash:016x}")
    } else {
        slug.trim_end_matches('-').to_owned()
    }
}

/// OpenAI's `response` object answering `request`, created at `now` (unix seconds).
pub fn response_object(request: &SearchRequest, shape: AnswerShape, now: u64) -> Value {
    let search_call = json!({
        "type": "web_search_call",
        "id": random_id("ws_"),
        "status": "completed",
        "action": {"type": "search", "query": request.query},
    });
    let (text, citations) = answer_for(&request.query);
    let content = match shape {
        AnswerShape::Refusal => json!([{"type": "refusal", "refusal": REFUSAL_TEXT}]),
        AnswerShape::Message | AnswerShape::NoMessage => {
            let annotations: Vec<Value> = citations
                .iter()
                .map(|(citation, start, end)| {
                    json!({
                        "type": "url_citation",
                        "url": citation.url,
                        "title": citation.title,
                        "start_index": start,
                        "end_index": end,
                    })
                })
                .collect();
            json!([{"type": "output_text", "text": text, "annotations": annotations, "logprobs": []}])
        }
    };
    let mut output = vec![search_call];
    if shape != AnswerShape::NoMessage {
        output.push(json!({
            "type": "message",
            "id": random_id("msg_"),
            "status": "completed",
            "role": "assistant",
            "content": content,
        }));
    }
    let input_tokens = 300 + request.query.split_whitespace().count() as u64;
    let output_tokens = if shape == AnswerShape::NoMessage {
        0
    } else {
        text.split_whitespace().count() as u64
    };
    json!({
        "id": random_id("resp_"),
        "object": "response",
        "created_at": now,
        "status": "completed",
        "background": false,
        "error": null,
        "incomplete_details": null,
        "instructions": request.instructions,
        "max_output_tokens": null,
        "model": request.model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": true,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": request.tools,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
        "user": null,
        "metadata": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(input: Value) -> Value {
        json!({"model": "gpt-4.1-mini", "tools": [{"type": "web_search"}], "input": input})
    }

    fn param_of(body: &Value) -> String {
        check_request(body).unwrap_err().param.unwrap_or_default()
    }

    #[test]
    fn string_input_is_the_query() {
        let request = check_request(&body(json!("  rust wasm  "))).unwrap();
        assert_eq!(request.query, "rust wasm");
        assert_eq!(request.model, "gpt-4.1-mini");
    }

    #[test]
    fn last_user_message_of_input_items_is_the_query() {
        let input = json!([
            {"role": "system", "content": "Answer in Spanish."},
            {"role": "user", "content": "first"},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "capital of"},
                {"type": "input_text", "text": "France"}
            ]}
        ]);
        assert_eq!(
            check_request(&body(input)).unwrap().query,
            "capital of France"
        );
    }

    #[test]
    fn missing_or_empty_input_is_refused() {
        let mut without = body(json!("x"));
        without.as_object_mut().unwrap().remove("input");
        assert_eq!(param_of(&without), "input");
        assert_eq!(param_of(&body(json!("   "))), "input");
        assert_eq!(param_of(&body(json!([]))), "input");
        assert_eq!(
            param_of(&body(json!([{"role": "system", "content": "x"}]))),
            "input"
        );
        assert_eq!(param_of(&body(json!(42))), "input");
    }

    #[test]
    fn missing_model_is_refused() {
        let mut request = body(json!("x"));
        request.as_object_mut().unwrap().remove("model");
        let error = check_request(&request).unwrap_err();
        assert_eq!(error.param.as_deref(), Some("model"));
        assert_eq!(error.code, Some("missing_required_parameter"));
    }

    #[test]
    fn tools_without_web_search_are_refused() {
        let mut request = body(json!("x"));
        request["tools"] = json!([{"type": "function", "name": "f"}]);
        assert_eq!(param_of(&request), "tools");
        request.as_object_mut().unwrap().remove("tools");
        assert_eq!(param_of(&request), "tools");
        request["tools"] = json!([{"type": "web_search_preview"}]);
        assert!(check_request(&request).is_ok());
    }

    #[test]
    fn answer_is_deterministic_and_repeats_the_first_url() {
        let (text, citations) = answer_for("Rust and WebAssembly");
        assert_eq!(answer_for("Rust and WebAssembly").0, text);
        assert_eq!(citations.len(), 3);
        assert_eq!(citations[0].0, citations[2].0);
        assert_ne!(citations[0].0.url, citations[1].0.url);
        assert_eq!(
            citations[0].0.url,
            "https://en.example.org/wiki/rust-and-webassembly?utm_source=openai"
        );
        let (other, _) = answer_for("Something else");
        assert_ne!(other, text);
    }

    #[test]
    fn citation_indices_span_the_link_in_characters() {
        let (text, citations) = answer_for("¿Qué es Spin?");
        let chars: Vec<char> = text.chars().collect();
        for (citation, start, end) in &citations {
            let span: String = chars[*start..*end].iter().collect();
            assert!(span.starts_with("(["), "{span}");
            assert!(span.contains(&citation.url), "{span}");
        }
    }

    #[test]
    fn query_without_ascii_words_gets_a_stable_hash_slug() {
        let (_, citations) = answer_for("日本の首都");
        assert!(citations[0].0.url.contains("/wiki/q-"));
        assert_eq!(answer_for("日本の首都").1, citations);
    }

    #[test]
    fn response_object_has_search_call_then_message() {
        let request = check_request(&body(json!("weather in Paris"))).unwrap();
        let response = response_object(&request, AnswerShape::Message, 1_760_000_000);
        assert_eq!(response["object"], "response");
        assert_eq!(response["status"], "completed");
        assert!(response["id"].as_str().unwrap().starts_with("resp_"));
        let output = response["output"].as_array().unwrap();
        assert_eq!(output[0]["type"], "web_search_call");
        assert_eq!(output[0]["action"]["query"], "weather in Paris");
        assert_eq!(output[1]["type"], "message");
        assert_eq!(output[1]["content"][0]["type"], "output_text");
        assert_eq!(
            output[1]["content"][0]["annotations"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn refusal_and_no_message_shapes() {
        let request = check_request(&body(json!("x"))).unwrap();
        let refusal = response_object(&request, AnswerShape::Refusal, 0);
        assert_eq!(refusal["output"][1]["content"][0]["type"], "refusal");
        assert_eq!(refusal["output"][1]["content"][0]["refusal"], REFUSAL_TEXT);
        let no_message = response_object(&request, AnswerShape::NoMessage, 0);
        assert_eq!(no_message["output"].as_array().unwrap().len(), 1);
    }
}
