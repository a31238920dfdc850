//! A stand-in for the OpenAI endpoints the voice-edge functions call, for tests and for
//! the local run (OpenAI cannot be reached from the project's machines). It speaks
//! OpenAI's documented shapes and checks what it is sent: `POST
//! /v1/realtime/client_secrets`, `POST /v1/realtime/calls` (multipart `sdp` + `session`,
//! or a bare `application/sdp` offer), `POST /v1/responses` with the `web_search` tool,
//! and `GET /v1/models/{model}`. Every endpoint wants `Authorization: Bearer <key>`.
//! Switches make an endpoint answer `429`, `500`, not at all, or late; every request is
//! recorded for tests to inspect.
//!
//! In Rust tests: `let openai = StandIn::start();` then point the app's `openai_base_url`
//! at `openai.base_url()`, and use `set_mode`, `requests_to`, `clear`. From other
//! languages, run the `openai-standin` binary (`--listen 127.0.0.1:9100`) and use the
//! control API: `GET|DELETE /__standin/requests`, `GET|PUT /__standin/mode`.
//!
//! Tests: `cargo test --profile host -p voice-edge-openai-standin`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

pub mod catalog;
pub mod control;
pub mod error;
pub mod multipart;
pub mod realtime;
pub mod record;
pub mod responses;
mod server;

pub use control::{Endpoint, Mode};
pub use multipart::FormField;
pub use record::RecordedRequest;
pub use server::MAX_BODY_BYTES;

use server::{State, lock};

/// How a stand-in behaves beyond its switches.
#[derive(Clone, Default)]
pub struct Options {
    /// The only API key accepted (others get `401 invalid_api_key`); any non-empty key
    /// when `None`. Client secrets it minted are accepted by `/v1/realtime/calls` too.
    pub api_key: Option<String>,
    /// Print one JSON line per request to stdout (method, path, status, duration).
    pub log_requests: bool,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("log_requests", &self.log_requests)
            .finish()
    }
}

/// A running stand-in on its own thread and runtime; it stops when dropped.
pub struct StandIn {
    address: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StandIn {
    /// Starts a stand-in on `127.0.0.1` and a free port, accepting any key.
    ///
    /// # Panics
    /// When no port can be bound or no thread started: a test cannot go on without it.
    pub fn start() -> StandIn {
        Self::start_with(Options::default()).expect("the OpenAI stand-in could not start")
    }

    /// Starts a stand-in on `127.0.0.1` and a free port with `options`.
    pub fn start_with(options: Options) -> std::io::Result<StandIn> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), options)
    }

    /// Starts a stand-in listening on `address` with `options`.
    pub fn start_on(address: SocketAddr, options: Options) -> std::io::Result<StandIn> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let state = Arc::new(State::new(options));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let served = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("openai-standin-{}", address.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => {
                            eprintln!("openai-standin: cannot listen: {error}");
                            return;
                        }
                    };
                    server::serve(listener, served, async {
                        let _ = stopped.await;
                    })
                    .await;
                });
            })?;
        Ok(StandIn {
            address,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`: the value for the app's `openai_base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Sets how `endpoint` answers from now on.
    pub fn set_mode(&self, endpoint: Endpoint, mode: Mode) {
        lock(&self.state.switches).set_mode(Some(endpoint), mode);
    }

    /// Sets how every endpoint answers from now on.
    pub fn set_mode_all(&self, mode: Mode) {
        lock(&self.state.switches).set_mode(None, mode);
    }

    /// Makes `endpoint` wait `delay` before answering (zero: no wait).
    pub fn set_delay(&self, endpoint: Endpoint, delay: Duration) {
        lock(&self.state.switches).set_delay(Some(endpoint), delay);
    }

    /// Makes every endpoint wait `delay` before answering (zero: no wait).
    pub fn set_delay_all(&self, delay: Duration) {
        lock(&self.state.switches).set_delay(None, delay);
    }

    /// Every request received to an OpenAI path so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.records).clone()
    }

    /// The requests received to `path` (without query), oldest first.
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        lock(&self.state.records)
            .iter()
            .filter(|record| record.path == path)
            .cloned()
            .collect()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        lock(&self.state.records).clear();
    }

    /// Every endpoint back to normal with no delay, and the record cleared.
    pub fn reset(&self) {
        *lock(&self.state.switches) = control::Switches::default();
        self.clear();
    }
}

impl fmt::Debug for StandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandIn")
            .field("address", &self.address)
            .finish()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves on `listener` with `options` until `shutdown` completes (the binary's loop).
pub async fn run(
    listener: tokio::net::TcpListener,
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) {
    server::serve(listener, Arc::new(State::new(options)), shutdown).await;
}

/// A random id with OpenAI's style of prefix: `ek_` + 32 hex digits.
pub(crate) fn random_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}
