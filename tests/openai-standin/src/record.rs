//! What the stand-in was sent: one record per request to an OpenAI path (answered,
//! refused or held), for tests to inspect in Rust or as JSON over the control API.

use std::fmt;

use serde_json::{Map, Value, json};

use crate::multipart::FormField;

/// One request as the stand-in received it.
#[derive(Clone, PartialEq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    /// Every header, names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The body parsed, when it was JSON.
    pub json: Option<Value>,
    /// The fields, when the body was `multipart/form-data`.
    pub form: Option<Vec<FormField>>,
}

impl RecordedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(header, _)| *header == name)
            .map(|(_, value)| value.as_str())
    }

    /// The key of `Authorization: Bearer <key>`, when there is one.
    pub fn bearer_key(&self) -> Option<&str> {
        bearer_key(self.header("authorization")?)
    }

    /// The body as text, when it is UTF-8.
    pub fn body_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// The value of form field `name`, when the body was multipart and has it.
    pub fn form_field(&self, name: &str) -> Option<&str> {
        self.form
            .as_ref()?
            .iter()
            .find(|field| field.name == name)
            .map(|field| field.value.as_str())
    }

    /// Form field `name` parsed as JSON (the `session` field of a call).
    pub fn form_json(&self, name: &str) -> Option<Value> {
        serde_json::from_str(self.form_field(name)?).ok()
    }

    /// The record as JSON: `{"method", "path", "query", "headers": {name: value},
    /// "body": <text>, "json", "form": [{"name", "filename", "content_type", "value"}]}`.
    /// A header sent more than once has its values joined with `, `.
    pub fn to_json(&self) -> Value {
        let mut headers = Map::new();
        for (name, value) in &self.headers {
            match headers.get_mut(name) {
                Some(Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(value);
                }
                _ => {
                    headers.insert(name.clone(), Value::String(value.clone()));
                }
            }
        }
        json!({
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": headers,
            "body": String::from_utf8_lossy(&self.body),
            "json": self.json,
            "form": self.form,
        })
    }
}

/// Redacts the `Authorization` header: a key must not reach a test's failure output.
impl fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if name == "authorization" {
                    "[redacted]"
                } else {
                    value.as_str()
                };
                (name.as_str(), shown)
            })
            .collect();
        f.debug_struct("RecordedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("headers", &headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("form", &self.form.as_ref().map(|form| form.len()))
            .finish()
    }
}

/// The key of an `Authorization` header value `Bearer <key>` (scheme in any case).
pub(crate) fn bearer_key(authorization: &str) -> Option<&str> {
    let (scheme, key) = authorization.trim().split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RecordedRequest {
        RecordedRequest {
            method: "POST".into(),
            path: "/v1/realtime/calls".into(),
            query: None,
            headers: vec![
                ("authorization".into(), "Bearer sk-test-123".into()),
                ("x-multi".into(), "a".into()),
                ("x-multi".into(), "b".into()),
            ],
            body: b"v=0".to_vec(),
            json: None,
            form: Some(vec![FormField {
                name: "session".into(),
                filename: None,
                content_type: None,
                value: "{\"type\":\"realtime\"}".into(),
            }]),
        }
    }

    #[test]
    fn bearer_key_needs_scheme_and_key() {
        assert_eq!(bearer_key("Bearer sk-1"), Some("sk-1"));
        assert_eq!(bearer_key("bearer  sk-1 "), Some("sk-1"));
        assert_eq!(bearer_key("Bearer "), None);
        assert_eq!(bearer_key("Basic abc"), None);
        assert_eq!(bearer_key("sk-1"), None);
    }

    #[test]
    fn headers_are_found_in_any_case() {
        let record = record();
        assert_eq!(record.header("Authorization"), Some("Bearer sk-test-123"));
        assert_eq!(record.bearer_key(), Some("sk-test-123"));
        assert_eq!(record.header("missing"), None);
    }

    #[test]
    fn form_json_parses_a_field() {
        assert_eq!(record().form_json("session").unwrap()["type"], "realtime");
        assert_eq!(record().form_json("sdp"), None);
    }

    #[test]
    fn debug_redacts_the_key() {
        let shown = format!("{:?}", record());
        assert!(!shown.contains("sk-test-123"));
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn json_joins_repeated_headers() {
        let json = record().to_json();
        assert_eq!(json["headers"]["x-multi"], "a, b");
        assert_eq!(json["body"], "v=0");
        assert_eq!(json["form"][0]["name"], "session");
    }
}
