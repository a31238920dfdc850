//! `voice-edge-shared`: the library every voice-edge function is built on.
//!
//! A function crate under `functions/` is a thin adapter: its `#[http_component]`
//! handler hands the request to [`runtime::serve`], which applies the rules every
//! function follows through [`http::handle`] (CORS, request ids, body limits, the
//! one-line JSON log, the single mapping from [`error::ApiError`] to the contract's JSON
//! error body), and calls one function of this crate. Pure logic (JWT verification, webhook signatures, bucketing, status
//! transitions, scores, persona instructions) takes its clock, secrets and config as
//! arguments, so the unit tests beside it need no host and no database:
//!
//! ```sh
//! cargo test -p voice-edge-shared
//! ```
//!
//! [`runtime`] is the boundary with Spin: the only modules that name spin-sdk or wasi.
//! Everything else here is plain Rust over the types it hands out.

pub mod client_addr;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod log;
pub mod outbound;
pub mod runtime;

pub mod auth;
pub mod bucket;
pub mod flags;
pub mod health;
pub mod languages;
pub mod openai;
pub mod personas;
pub mod ratelimit;
pub mod retention;
pub mod webhook_signature;

pub mod demo;
pub mod erasure;
pub mod monitoring;
pub mod practice;
pub mod search;
pub mod token;

pub use error::ApiError;

/// Runs `future` to its end on this thread, for unit tests of async code whose futures
/// never wait on anything outside the test (fakes, not the runtime).
#[cfg(test)]
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}
