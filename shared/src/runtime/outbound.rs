//! [`send`] over `wasi:http/client@0.3.0`: the request options set, and the whole
//! exchange (sending, the answer, its body) raced against a monotonic-clock timer, so
//! that a silent upstream always ends in [`OutboundError::Timeout`] whether or not the
//! host honours the options. Every wait is an async call: while one request waits for
//! its upstream, the instance serves the others.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use spin_sdk::wasip3::clocks::monotonic_clock;
use spin_sdk::wasip3::http::client;
use spin_sdk::wasip3::http::types::{
    ErrorCode, Fields, Method, Request, RequestOptions, Response, Scheme,
};
use spin_sdk::wasip3::wit_bindgen::StreamResult;
use spin_sdk::wasip3::{wit_future, wit_stream};

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
pub async fn send(request: &OutboundRequest) -> Result<OutboundResponse, OutboundError> {
    let timeout_ns = u64::try_from(request.timeout.as_nanos()).unwrap_or(u64::MAX);
    within(timeout_ns, exchange(request, timeout_ns))
        .await
        .unwrap_or(Err(OutboundError::Timeout))
}

/// `work`'s output, or `None` when `limit_ns` passes first (`work` is then dropped,
/// which cancels what it was waiting for).
async fn within<F: Future>(limit_ns: u64, work: F) -> Option<F::Output> {
    let mut work = pin!(work);
    let mut timer = pin!(monotonic_clock::wait_for(limit_ns));
    poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

async fn exchange(
    request: &OutboundRequest,
    timeout_ns: u64,
) -> Result<OutboundResponse, OutboundError> {
    let parts = split_url(&request.url)?;
    let mut entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.as_bytes().to_vec()))
        .collect();
    // The body is known whole: said up front, it goes out in one piece with the head
    // (without it the runtime frames it chunked, and the end of the body goes out as a
    // segment of its own, which Nagle's algorithm holds until the upstream's delayed
    // ACK: about 40 ms a request, measured under Spin).
    let sends_body = !request.body.is_empty() || matches!(request.method, "POST" | "PUT" | "PATCH");
    if sends_body && !entries.iter().any(|(name, _)| name == "content-length") {
        entries.push((
            "content-length".into(),
            request.body.len().to_string().into_bytes(),
        ));
    }
    let fields = Fields::from_list(&entries)
        .map_err(|error| OutboundError::Invalid(format!("bad header: {error:?}")))?;

    // Hosts that do not support an option refuse to set it; the timer still holds.
    let options = RequestOptions::new();
    let _ = options.set_connect_timeout(Some(timeout_ns));
    let _ = options.set_first_byte_timeout(Some(timeout_ns));
    let _ = options.set_between_bytes_timeout(Some(timeout_ns));

    let (body_out, body) = if request.body.is_empty() {
        (None, None)
    } else {
        let (writer, reader) = wit_stream::new::<u8>();
        (Some(writer), Some(reader))
    };
    let (trailers_out, trailers) = wit_future::new(|| Ok(None));
    let (outgoing, _transmitted) = Request::new(fields, body, trailers, Some(options));
    let invalid = |what: &str| OutboundError::Invalid(what.to_string());
    outgoing
        .set_method(&method_of(request.method))
        .map_err(|_| invalid("method"))?;
    outgoing
        .set_scheme(Some(&if parts.https {
            Scheme::Https
        } else {
            Scheme::Http
        }))
        .map_err(|_| invalid("scheme"))?;
    outgoing
        .set_authority(Some(parts.authority))
        .map_err(|_| invalid("authority"))?;
    outgoing
        .set_path_with_query(Some(parts.path_and_query))
        .map_err(|_| invalid("path"))?;

    // The body is offered to the runtime before the request is sent (the write is
    // started first), so that the runtime finds it ready and sends it with the head;
    // it is written while the answer is awaited, and a write still pending when the
    // answer comes (the upstream answered early) is dropped.
    let bytes = request.body.clone();
    let writing = async move {
        if let Some(mut writer) = body_out {
            writer.write_all(bytes).await;
        }
        let _ = trailers_out.write(Ok(None)).await;
    };
    let sending = client::send(outgoing);
    let (mut writing, mut sending) = (pin!(writing), pin!(sending));
    let mut written = false;
    let response = poll_fn(|cx| {
        if !written && writing.as_mut().poll(cx).is_ready() {
            written = true;
        }
        sending.as_mut().poll(cx)
    })
    .await
    .map_err(|code| classify(&code))?;
    let status = response.get_status_code();
    let headers = response
        .get_headers()
        .copy_all()
        .into_iter()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(&value).into_owned(),
            )
        })
        .collect();
    let (read_out, read) = wit_future::new(|| Ok(()));
    let (mut stream, trailers) = Response::consume_body(response, read);
    let mut bytes = Vec::new();
    loop {
        let (result, chunk) = stream.read(Vec::with_capacity(64 * 1024)).await;
        match result {
            StreamResult::Complete(_) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_RESPONSE_BYTES {
                    return Err(OutboundError::Failed("response body too large".into()));
                }
            }
            StreamResult::Dropped | StreamResult::Cancelled => break,
        }
    }
    drop(stream);
    drop(read_out);
    // The body's outcome: an upstream that broke off mid-body ends here in an error.
    trailers.await.map_err(|code| classify(&code))?;
    Ok(OutboundResponse {
        status,
        headers,
        body: bytes,
    })
}
