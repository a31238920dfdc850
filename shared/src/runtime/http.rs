//! The request boundary: Spin's `wasi:http` request in, our [`RawRequest`] out, and a
//! [`Reply`] back to Spin as one write. Everything between is [`crate::http::handle`],
//! plain code over plain types; this module is the only part of the pipeline that names
//! spin-sdk or wasi, so that moving to another SDK or `wasi:http` version rewrites this
//! file and leaves the pipeline and every domain module as they are.

use crate::error::ApiError;
use crate::http::{
    Body, CorsPolicy, Handled, Incoming, READ_CHUNK, RawRequest, Reply, handle, split_target,
    unreadable_body,
};
use crate::runtime::SpinVariables;

/// Serves a Spin request with `handler`: the entry point of every function. The body
/// stays in Spin's stream until the handler asks for it; the response goes out through
/// `response_out` by [`send`], and what the handler scheduled with
/// [`Incoming::after_response`] runs after that, while the runtime sends the response.
pub fn serve(
    function: &'static str,
    request: spin_sdk::http::IncomingRequest,
    response_out: spin_sdk::http::ResponseOutparam,
    handler: impl FnOnce(&Incoming) -> Result<Reply, ApiError>,
) {
    let raw = raw_request(request);
    let cors = CorsPolicy::load(&SpinVariables);
    let Handled {
        reply,
        log_line,
        after_response,
    } = handle(function, raw, &cors, handler);
    println!("{log_line}");
    send(function, response_out, reply);
    after_response.run();
}

/// Whether a response with `status` carries a body (and so a `content-length`).
fn status_has_body(status: u16) -> bool {
    !matches!(status, 100..=199 | 204 | 304)
}

/// Sends `reply`: with its `content-length`, and with the whole body written and the
/// body finished *before* the response is handed to the runtime.
///
/// Spin's listener does not set `TCP_NODELAY`. A response handed over first and written
/// after (what spin-sdk does for a returned `Response`, without a length) leaves
/// the runtime's HTTP server to send the head alone and the body in a second small
/// segment, which Nagle's algorithm holds until the client acknowledges the first: up
/// to the client's delayed-ACK timer, about 40 ms on Linux, on every keep-alive
/// request. A body that is complete when the response is set goes out with its head in
/// one write. The runtime buffers a body written before anyone reads it up to its chunk
/// size (1 MiB in Spin and wasmtime); a larger one (none of ours) is written after
/// the response is set, as the stream allows.
fn send(function: &str, response_out: spin_sdk::http::ResponseOutparam, reply: Reply) {
    use spin_sdk::http::{Fields, OutgoingBody, OutgoingResponse};

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
    let body: &[u8] = if status_has_body(reply.status) {
        let length = reply.body.len().to_string().into_bytes();
        // A fresh `Fields` with no content-length yet: appending cannot be refused.
        let _ = headers.append("content-length", &length);
        &reply.body
    } else {
        &[]
    };
    let response = OutgoingResponse::new(headers);
    if response.set_status_code(reply.status).is_err() {
        // Statuses come from our own code; a refused one is a bug, answered as a 500.
        let _ = response.set_status_code(500);
    }
    let outgoing = response
        .body()
        .expect("a new response's body is taken once");
    let stream = outgoing.write().expect("a new body's stream is taken once");

    let early = write_without_reader(&stream, body);
    if early == body.len() {
        drop(stream);
        let _ = OutgoingBody::finish(outgoing, None);
        spin_sdk::http::ResponseOutparam::set(response_out, response);
        return;
    }
    // A body larger than the runtime buffers: the rest once the runtime reads.
    spin_sdk::http::ResponseOutparam::set(response_out, response);
    if write_blocking(&stream, &body[early..]) {
        drop(stream);
        let _ = OutgoingBody::finish(outgoing, None);
    }
    // Else the client went away: nothing is left to send it, and an unfinished body
    // tells the runtime the response is incomplete.
}

/// The writes [`send`] makes to a response body's stream: wasi's `output-stream`, or a
/// fake in the unit tests.
trait BodyStream {
    /// How many bytes the stream takes now without blocking (`0`: none until a reader
    /// drains it); `None` once the stream has failed or closed.
    fn permitted(&self) -> Option<u64>;
    /// Writes bytes the stream has permitted; false when it fails.
    fn write_now(&self, bytes: &[u8]) -> bool;
    /// Writes at most [`BLOCKING_WRITE`] bytes, waiting for room; false when it fails.
    fn write_waiting(&self, bytes: &[u8]) -> bool;
}

/// The most `blocking-write-and-flush` takes in one call (wasi:io's limit).
const BLOCKING_WRITE: usize = 4096;

impl BodyStream for wasi::io::streams::OutputStream {
    fn permitted(&self) -> Option<u64> {
        self.check_write().ok()
    }
    fn write_now(&self, bytes: &[u8]) -> bool {
        self.write(bytes).is_ok()
    }
    fn write_waiting(&self, bytes: &[u8]) -> bool {
        self.blocking_write_and_flush(bytes).is_ok()
    }
}

/// Writes as much of `body` as `stream` takes before anyone reads it, in the pieces it
/// permits; returns how many bytes went.
fn write_without_reader(stream: &impl BodyStream, body: &[u8]) -> usize {
    let mut written = 0;
    while written < body.len() {
        let permit = match stream.permitted() {
            Some(0) | None => break,
            Some(permit) => usize::try_from(permit).unwrap_or(usize::MAX),
        };
        let take = (body.len() - written).min(permit);
        if !stream.write_now(&body[written..written + take]) {
            break;
        }
        written += take;
    }
    written
}

/// Writes `rest` in pieces of at most [`BLOCKING_WRITE`] bytes, each waiting for room;
/// false as soon as the stream fails.
fn write_blocking(stream: &impl BodyStream, rest: &[u8]) -> bool {
    rest.chunks(BLOCKING_WRITE)
        .all(|chunk| stream.write_waiting(chunk))
}

/// The request's head, and its body as a stream that is read only when asked for.
fn raw_request(request: spin_sdk::http::IncomingRequest) -> RawRequest {
    let method = request.method().to_string().to_ascii_uppercase();
    let headers: Vec<(String, String)> = request
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
    let target = request.path_with_query().unwrap_or_else(|| "/".to_string());
    let (path, query) = split_target(&target);
    let path_info = headers
        .iter()
        .rev()
        .find(|(name, _)| name == "spin-path-info")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let body = match request.consume() {
        Ok(body) => Body::stream(move |limit| {
            let stream = body.stream().map_err(|()| unreadable_body())?;
            let read = read_limited(&stream, limit);
            // The stream is a child of the body: it goes first.
            drop(stream);
            drop(body);
            read
        }),
        Err(()) => Body::stream(|_| Err(unreadable_body())),
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

/// Reads a body stream in chunks of at most [`READ_CHUNK`], refusing with `413` as
/// soon as more than `limit` bytes have come: the instance holds at most the limit and
/// one chunk, and the rest of the body is never read.
fn read_limited(
    stream: &wasi::io::streams::InputStream,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    use wasi::io::streams::StreamError;
    let mut bytes = Vec::new();
    loop {
        let wanted = (limit + 1 - bytes.len()).clamp(1, READ_CHUNK) as u64;
        match stream.blocking_read(wanted) {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > limit {
                    return Err(ApiError::PayloadTooLarge { limit });
                }
            }
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(_)) => return Err(unreadable_body()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// A body stream that takes `buffered` bytes without a reader, in pieces of at most
    /// `piece`, then (with a reader) everything, until it fails after `fails_after`.
    struct FakeStream {
        buffered: Cell<usize>,
        piece: usize,
        fails_after: usize,
        received: RefCell<Vec<u8>>,
        waiting_writes: RefCell<Vec<usize>>,
    }

    impl FakeStream {
        fn new(buffered: usize, piece: usize) -> Self {
            Self {
                buffered: Cell::new(buffered),
                piece,
                fails_after: usize::MAX,
                received: RefCell::default(),
                waiting_writes: RefCell::default(),
            }
        }
        fn failed(&self) -> bool {
            self.received.borrow().len() >= self.fails_after
        }
    }

    impl BodyStream for FakeStream {
        fn permitted(&self) -> Option<u64> {
            (!self.failed()).then(|| self.buffered.get().min(self.piece) as u64)
        }
        fn write_now(&self, bytes: &[u8]) -> bool {
            assert!(
                bytes.len() <= self.buffered.get().min(self.piece),
                "wrote more than permitted"
            );
            self.buffered.set(self.buffered.get() - bytes.len());
            self.received.borrow_mut().extend_from_slice(bytes);
            true
        }
        fn write_waiting(&self, bytes: &[u8]) -> bool {
            assert!(
                bytes.len() <= BLOCKING_WRITE,
                "a blocking write over wasi's limit"
            );
            if self.failed() {
                return false;
            }
            self.waiting_writes.borrow_mut().push(bytes.len());
            self.received.borrow_mut().extend_from_slice(bytes);
            true
        }
    }

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn a_body_the_runtime_buffers_is_written_whole_before_the_response_is_set() {
        let stream = FakeStream::new(1 << 20, 1 << 20);
        let sent = body(70_000);
        assert_eq!(write_without_reader(&stream, &sent), sent.len());
        assert_eq!(*stream.received.borrow(), sent);
        assert!(stream.waiting_writes.borrow().is_empty());
        assert_eq!(
            write_without_reader(&stream, &[]),
            0,
            "an empty body writes nothing"
        );
    }

    #[test]
    fn a_body_larger_than_the_buffer_goes_on_in_blocking_writes_in_order() {
        // Two permits of 1 000 bytes, then nothing until a reader comes.
        let stream = FakeStream::new(2_000, 1_000);
        let sent = body(10_000);
        let early = write_without_reader(&stream, &sent);
        assert_eq!(early, 2_000);
        assert!(write_blocking(&stream, &sent[early..]));
        assert_eq!(*stream.received.borrow(), sent);
        assert_eq!(*stream.waiting_writes.borrow(), vec![4096, 3904]);
    }

    #[test]
    fn a_failed_stream_stops_both_writes() {
        let mut stream = FakeStream::new(1_000, 1_000);
        stream.fails_after = 1_000;
        let sent = body(5_000);
        assert_eq!(write_without_reader(&stream, &sent), 1_000);
        assert!(!write_blocking(&stream, &sent[1_000..]));
        assert_eq!(stream.received.borrow().len(), 1_000);
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
