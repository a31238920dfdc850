//! Outbound HTTP with a deadline: what a request and its answer are, and [`send`],
//! which [`crate::runtime::outbound`] carries over `wasi:http/outgoing-handler`.
//!
//! The SDK's `spin_sdk::http::send` has no timeout, and the contract needs one (`504`
//! after 10 s for OpenAI's Realtime API, 15 s for search). This sends the request with
//! wasi:http's request options set and, independently of whether the host honours them,
//! waits on the response and on a monotonic-clock timer together, so a silent upstream
//! always ends in [`OutboundError::Timeout`].

use std::time::Duration;

pub use crate::runtime::outbound::send;

/// Largest upstream body we read.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// A request to send.
#[derive(Clone)]
pub struct OutboundRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

impl std::fmt::Debug for OutboundRequest {
    // Headers carry API keys: print their names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>(),
            )
            .field("body_bytes", &self.body.len())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An upstream's answer.
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl OutboundResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Why an outbound request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// No answer before the deadline.
    #[error("upstream timed out")]
    Timeout,
    /// The host refused the destination (not in `allowed_outbound_hosts`).
    #[error("destination not allowed: {0}")]
    NotAllowed(String),
    /// Could not connect, or the exchange broke.
    #[error("upstream request failed: {0}")]
    Failed(String),
    /// The request itself could not be built (a malformed URL).
    #[error("invalid outbound request: {0}")]
    Invalid(String),
}

/// The parts of an absolute `http(s)` URL.
#[derive(Debug, PartialEq, Eq)]
pub struct UrlParts<'a> {
    pub https: bool,
    pub authority: &'a str,
    pub path_and_query: &'a str,
}

/// Splits an absolute URL into scheme, authority and path.
pub fn split_url(url: &str) -> Result<UrlParts<'_>, OutboundError> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(OutboundError::Invalid(
            "URL must start with http:// or https://".into(),
        ));
    };
    let (authority, path_and_query) = match rest.find('/') {
        Some(index) => (&rest[..index], &rest[index..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(OutboundError::Invalid("URL has no host".into()));
    }
    Ok(UrlParts {
        https,
        authority,
        path_and_query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        assert_eq!(
            split_url("https://api.openai.com/v1/realtime/client_secrets").unwrap(),
            UrlParts {
                https: true,
                authority: "api.openai.com",
                path_and_query: "/v1/realtime/client_secrets"
            }
        );
        assert_eq!(
            split_url("http://127.0.0.1:9100").unwrap(),
            UrlParts {
                https: false,
                authority: "127.0.0.1:9100",
                path_and_query: "/"
            }
        );
        assert!(split_url("ftp://x").is_err());
        assert!(split_url("https:///path").is_err());
    }

    #[test]
    fn debug_never_prints_header_values() {
        let request = OutboundRequest {
            method: "POST",
            url: "https://api.openai.com/v1/x".into(),
            headers: vec![("authorization".into(), "Bearer sk-secret".into())],
            body: Vec::new(),
            timeout: Duration::from_secs(10),
        };
        assert!(!format!("{request:?}").contains("sk-secret"));
    }
}
