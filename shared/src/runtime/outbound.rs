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
use spin_sdk::wasip3::{spawn, wit_future, wit_stream};

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
    let entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.as_bytes().to_vec()))
        .collect();
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

    // The body goes out from a task of its own while the answer is awaited, as the
    // host may read it only once the request is sent.
    let bytes = request.body.clone();
    spawn(async move {
        if let Some(mut writer) = body_out {
            writer.write_all(bytes).await;
        }
        let _ = trailers_out.write(Ok(None)).await;
    });

    let response = client::send(outgoing)
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
