//! Outbound HTTP with a deadline, over `wasi:http/outgoing-handler`.
//!
//! The SDK's `spin_sdk::http::send` has no timeout, and the contract needs one (`504`
//! after 10 s for OpenAI's Realtime API, 15 s for search). This sends the request with
//! wasi:http's request options set and, independently of whether the host honours them,
//! waits on the response and on a monotonic-clock timer together, so a silent upstream
//! always ends in [`OutboundError::Timeout`].

use std::time::Duration;

use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::clocks::monotonic_clock;
use wasi::io::poll;
use wasi::io::streams::StreamError;

/// Largest upstream body we read.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

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

fn method_of(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_string()),
    }
}

fn classify(code: &ErrorCode) -> OutboundError {
    match code {
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => OutboundError::Timeout,
        ErrorCode::HttpRequestDenied => OutboundError::NotAllowed(format!("{code:?}")),
        other => OutboundError::Failed(format!("{other:?}")),
    }
}

/// Sends `request` and reads the whole answer, giving up after `request.timeout`.
pub fn send(request: &OutboundRequest) -> Result<OutboundResponse, OutboundError> {
    let parts = split_url(&request.url)?;
    let timeout_ns = u64::try_from(request.timeout.as_nanos()).unwrap_or(u64::MAX);
    let deadline = monotonic_clock::now().saturating_add(timeout_ns);

    let entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&entries)
        .map_err(|error| OutboundError::Invalid(format!("bad header: {error:?}")))?;
    let outgoing = OutgoingRequest::new(fields);
    let invalid = |what: &str| OutboundError::Invalid(what.to_string());
    outgoing
        .set_method(&method_of(request.method))
        .map_err(|_| invalid("method"))?;
    outgoing
        .set_scheme(Some(if parts.https {
            &Scheme::Https
        } else {
            &Scheme::Http
        }))
        .map_err(|_| invalid("scheme"))?;
    outgoing
        .set_authority(Some(parts.authority))
        .map_err(|_| invalid("authority"))?;
    outgoing
        .set_path_with_query(Some(parts.path_and_query))
        .map_err(|_| invalid("path"))?;
    let body = outgoing.body().map_err(|_| invalid("body"))?;

    // Hosts that do not support an option refuse to set it; the timer below still holds.
    let options = RequestOptions::new();
    let _ = options.set_connect_timeout(Some(timeout_ns));
    let _ = options.set_first_byte_timeout(Some(timeout_ns));
    let _ = options.set_between_bytes_timeout(Some(timeout_ns));

    let pending =
        outgoing_handler::handle(outgoing, Some(options)).map_err(|code| classify(&code))?;
    {
        let stream = body.write().map_err(|_| invalid("body stream"))?;
        for chunk in request.body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|error| OutboundError::Failed(format!("writing the body: {error:?}")))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(|code| classify(&code))?;

    let timer = monotonic_clock::subscribe_instant(deadline);
    let response = loop {
        if let Some(result) = pending.get() {
            break result
                .map_err(|()| OutboundError::Failed("response already taken".into()))?
                .map_err(|code| classify(&code))?;
        }
        let ready = pending.subscribe();
        let which = poll::poll(&[&ready, &timer]);
        if !which.contains(&0) && which.contains(&1) {
            return Err(OutboundError::Timeout);
        }
    };

    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(&value).into_owned(),
            )
        })
        .collect();
    let incoming = response
        .consume()
        .map_err(|()| OutboundError::Failed("response body already taken".into()))?;
    let stream = incoming
        .stream()
        .map_err(|()| OutboundError::Failed("response body stream already taken".into()))?;
    let mut bytes = Vec::new();
    loop {
        let ready = stream.subscribe();
        let which = poll::poll(&[&ready, &timer]);
        if !which.contains(&0) && which.contains(&1) {
            return Err(OutboundError::Timeout);
        }
        match stream.read(64 * 1024) {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_RESPONSE_BYTES {
                    return Err(OutboundError::Failed("response body too large".into()));
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                return Err(OutboundError::Failed(error.to_debug_string()));
            }
        }
    }
    drop(stream);
    Ok(OutboundResponse {
        status,
        headers,
        body: bytes,
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
