//! The request boundary: Spin's `wasi:http` request in, our [`RawRequest`] out, and a
//! [`Reply`] back to Spin as one write. Everything between is [`crate::http::handle`],
//! plain code over plain types; this module is the only part of the pipeline that names
//! spin-sdk or wasi, so that moving to another SDK or `wasi:http` version rewrites this
//! file and leaves the pipeline and every domain module as they are.

use spin_sdk::wasip3::http::types::{ErrorCode, Fields, Response};
use spin_sdk::wasip3::{spawn, wit_future, wit_stream};

use crate::error::ApiError;
use crate::http::{
    AfterResponse, Body, CorsPolicy, Handled, Incoming, RawRequest, Reply, handle, split_target,
    unreadable_body,
};
use crate::runtime::SpinVariables;

/// The request as spin-sdk 7's `#[http_service]` hands it over: `wasi:http@0.3.0`'s
/// request behind the `http` crate's types.
pub type SpinRequest = spin_sdk::http::Request;

/// The response handed back to Spin: `wasi:http@0.3.0`'s own.
pub type SpinResponse = Response;

/// Serves a Spin request with `handler`: the entry point of every function.
///
/// The body is read first, up to `body_limit` bytes (the largest any route of the
/// function takes; a longer body is refused with `413` by whichever route asks for it,
/// and never read past the limit); then `handler` runs, yielding to the instance's
/// other requests at every database or upstream call (see [`crate::runtime`]). The
/// response leaves with its `content-length` and its whole body; what the handler
/// scheduled with [`Incoming::after_response`] runs after the body has been handed to
/// the runtime, while the request's task lives on.
pub async fn serve(
    function: &'static str,
    body_limit: usize,
    request: SpinRequest,
    handler: impl AsyncFnOnce(&Incoming) -> Result<Reply, ApiError>,
) -> SpinResponse {
    let in_progress = crate::runtime::instance::enter();
    let raw = raw_request(request, body_limit).await;
    let cors = CorsPolicy::load(&SpinVariables);
    let Handled {
        reply,
        log_line,
        after_response,
    } = handle(function, raw, &cors, handler).await;
    println!("{}", in_progress.annotate(log_line));
    send(function, reply, after_response)
}

/// Whether a response with `status` carries a body (and so a `content-length`).
fn status_has_body(status: u16) -> bool {
    !matches!(status, 100..=199 | 204 | 304)
}

/// The response's headers: the reply's own, `content-length` set from the body (never
/// copied from the reply). A header the runtime refuses is logged and left out.
fn response_headers(function: &str, reply: &Reply, with_body: bool) -> Fields {
    let headers = Fields::new();
    for (name, value) in &reply.headers {
        if name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        // Names are stored lower-cased (`Reply::headers`): none is copied to lower it.
        if headers.append(name, value.as_bytes()).is_err() {
            crate::log::event(
                crate::log::Level::Error,
                function,
                reply.get_header("x-request-id"),
                "response_header_refused",
                name,
            );
        }
    }
    if with_body {
        // A fresh `Fields` with no content-length yet: appending cannot be refused.
        let _ = headers.append("content-length", reply.body.len().to_string().as_bytes());
    }
    headers
}

/// Sends `reply`: with its `content-length`, its body written whole as soon as the
/// runtime takes the response, then `after_response`.
///
/// The body goes out from a task of this request that the runtime keeps running after
/// the response is returned; the same task then runs the work scheduled after the
/// response, once the runtime has taken the whole body (and so that work never delays
/// the answer, and never runs for a response still being written).
fn send(function: &str, reply: Reply, after_response: AfterResponse) -> SpinResponse {
    let with_body = status_has_body(reply.status);
    let headers = response_headers(function, &reply, with_body);
    let (trailers_out, trailers) = wit_future::new(|| Ok(None));
    let (body_out, body) = if with_body && !reply.body.is_empty() {
        let (writer, reader) = wit_stream::new::<u8>();
        (Some(writer), Some(reader))
    } else {
        (None, None)
    };
    let (response, _transmitted) = Response::new(headers, body, trailers);
    if response.set_status_code(reply.status).is_err() {
        // Statuses come from our own code; a refused one is a bug, answered as a 500.
        let _ = response.set_status_code(500);
    }
    let bytes = reply.body;
    spawn(async move {
        let complete = match body_out {
            Some(mut writer) => writer.write_all(bytes).await.is_empty(),
            None => true,
        };
        // An unfinished body (the client went away) ends in an error, so that the
        // runtime knows the response is incomplete.
        let end: Result<_, ErrorCode> = if complete {
            Ok(None)
        } else {
            Err(ErrorCode::InternalError(Some(
                "the response body was cut short".into(),
            )))
        };
        let _ = trailers_out.write(end).await;
        after_response.run().await;
    });
    response
}

/// The request's head, and its body read up to `limit` bytes (one chunk past it at
/// most: a longer body becomes a `413` for whichever route asks for it).
async fn raw_request(request: SpinRequest, limit: usize) -> RawRequest {
    let (parts, mut incoming) = request.into_parts();
    let method = parts.method.as_str().to_ascii_uppercase();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let (path, query) = split_target(target);
    let path_info = headers
        .iter()
        .rev()
        .find(|(name, _)| name == "spin-path-info")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let body = match read_limited(&mut incoming, limit).await {
        Ok(bytes) => Body::from(bytes),
        Err(ReadError::TooLarge) => {
            Body::stream(|route_limit| Err(ApiError::PayloadTooLarge { limit: route_limit }))
        }
        Err(ReadError::Failed) => Body::stream(|_| Err(unreadable_body())),
    };
    RawRequest {
        method,
        path,
        path_info,
        query,
        headers,
        body,
    }
}

/// Why a body was not read whole.
#[derive(Debug, PartialEq, Eq)]
enum ReadError {
    /// More than the limit came; the rest was never read.
    TooLarge,
    /// The stream failed.
    Failed,
}

/// Reads a body's frames until it ends, refusing as soon as more than `limit` bytes
/// have come: the instance holds at most the limit and one frame.
async fn read_limited<B>(body: &mut B, limit: usize) -> Result<Vec<u8>, ReadError>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
{
    use http_body_util::BodyExt;
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ReadError::Failed)?;
        if let Some(data) = frame.data_ref() {
            bytes.extend_from_slice(data);
            if bytes.len() > limit {
                return Err(ReadError::TooLarge);
            }
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        // The bodies below are ready at once: one poll each time is enough.
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut context) {
                return value;
            }
        }
    }

    /// A body of the given chunks, each ready at once.
    struct Chunks(std::collections::VecDeque<&'static [u8]>);

    impl http_body::Body for Chunks {
        type Data = bytes::Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
            let next = self.0.pop_front();
            std::task::Poll::Ready(next.map(|chunk| Ok(http_body::Frame::data(chunk.into()))))
        }
    }

    fn chunked(chunks: Vec<&'static [u8]>) -> Chunks {
        Chunks(chunks.into())
    }

    #[test]
    fn a_body_within_the_limit_is_read_whole_in_order() {
        let mut body = chunked(vec![b"abc", b"", b"defg"]);
        assert_eq!(
            block_on(read_limited(&mut body, 7)),
            Ok(b"abcdefg".to_vec())
        );
        let mut empty = Full::new(bytes::Bytes::new());
        assert_eq!(block_on(read_limited(&mut empty, 0)), Ok(Vec::new()));
    }

    #[test]
    fn a_body_over_the_limit_stops_at_the_chunk_that_crosses_it() {
        let mut body = chunked(vec![b"abc", b"defg", b"never read"]);
        assert_eq!(
            block_on(read_limited(&mut body, 6)),
            Err(ReadError::TooLarge)
        );
        // The third chunk is still in the body: nothing past the limit was read.
        let rest = block_on(body.frame())
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        assert_eq!(&rest[..], b"never read");
    }

    #[test]
    fn only_statuses_that_carry_a_body_get_a_content_length() {
        for status in [200, 201, 202, 400, 401, 404, 405, 413, 429, 500, 503] {
            assert!(status_has_body(status), "{status}");
        }
        for status in [100, 101, 204, 304] {
            assert!(!status_has_body(status), "{status}");
        }
    }
}
