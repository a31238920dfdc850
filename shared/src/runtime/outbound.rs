//! [`send`] over `wasi:http/outgoing-handler`: the request options set, and the answer
//! awaited together with a monotonic-clock timer, so that a silent upstream always ends
//! in [`OutboundError::Timeout`] whether or not the host honours the options.

use wasi::clocks::monotonic_clock;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::poll;
use wasi::io::streams::StreamError;

use crate::outbound::{
    MAX_RESPONSE_BYTES, OutboundError, OutboundRequest, OutboundResponse, split_url,
};

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
