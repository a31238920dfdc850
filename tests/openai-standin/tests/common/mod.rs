//! What the stand-in's tests share: a plain HTTP client that returns every status as a
//! response, and short helpers for the requests the tests send.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;
use ureq::Agent;
use ureq::http::Response;

/// The key the tests send.
pub const KEY: &str = "sk-test-standin";

/// An agent that gives up after `timeout` and treats 4xx/5xx as answers, not errors.
pub fn agent_with_timeout(timeout: Duration) -> Agent {
    Agent::new_with_config(
        Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build(),
    )
}

/// An agent with a generous timeout.
pub fn agent() -> Agent {
    agent_with_timeout(Duration::from_secs(20))
}

/// An answer read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The `error` object of an OpenAI error body, after checking its shape.
    pub fn openai_error(&self) -> Value {
        let body = self.json();
        let error = body["error"].clone();
        for field in ["message", "type", "param", "code"] {
            assert!(error.get(field).is_some(), "error lacks {field}: {body}");
        }
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        error
    }
}

pub fn read(result: Result<Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut response = result.expect("the stand-in answered");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let body = response
        .body_mut()
        .read_to_string()
        .expect("a readable body");
    Answer {
        status,
        headers,
        body,
    }
}

/// `POST {base}{path}` with a JSON body and `Authorization: Bearer KEY`.
pub fn post_json(base: &str, path: &str, body: &Value) -> Answer {
    read(
        agent()
            .post(format!("{base}{path}"))
            .header("authorization", format!("Bearer {KEY}"))
            .send_json(body),
    )
}

/// `POST {base}{path}` with a raw body, a content type and an optional authorization.
pub fn post_raw(
    base: &str,
    path: &str,
    content_type: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Answer {
    let mut request = agent()
        .post(format!("{base}{path}"))
        .content_type(content_type);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    read(request.send(body))
}

/// `GET {base}{path}` with `Authorization: Bearer KEY`.
pub fn get(base: &str, path: &str) -> Answer {
    read(
        agent()
            .get(format!("{base}{path}"))
            .header("authorization", format!("Bearer {KEY}"))
            .call(),
    )
}

/// A client-secret request as the token function sends it.
pub fn client_secret_request() -> Value {
    serde_json::json!({
        "expires_after": {"anchor": "created_at", "seconds": 60},
        "session": {
            "type": "realtime",
            "model": "gpt-realtime",
            "instructions": "You are a professional, formal tutor.",
            "audio": {"output": {"voice": "ash"}},
        }
    })
}

/// A browser-like SDP offer: one audio section and the data channel.
pub const OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:0\r\n\
a=sendrecv\r\n\
a=rtpmap:111 opus/48000/2\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:1\r\n\
a=sctp-port:5000\r\n";

/// A `multipart/form-data` body with the given fields, and its content type.
pub fn multipart(fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "----standin-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

/// A realtime session configuration as the demo relay sends it.
pub fn call_session() -> Value {
    serde_json::json!({
        "type": "realtime",
        "model": "gpt-realtime",
        "instructions": "Coach the reading.",
        "audio": {
            "input": {"transcription": {"model": "gpt-4o-transcribe"}},
            "output": {"voice": "marin"},
        },
        "tools": [{
            "type": "function",
            "name": "record_reading_metrics",
            "description": "Record words per minute and accuracy.",
            "parameters": {"type": "object", "properties": {"wpm": {"type": "number"}}},
        }],
    })
}

/// A responses request as the search function sends it.
pub fn search_request(query: &str) -> Value {
    serde_json::json!({
        "model": "gpt-4.1-mini",
        "tools": [{"type": "web_search"}],
        "input": query,
    })
}
