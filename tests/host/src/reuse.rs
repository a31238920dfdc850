//! Instance reuse for WASIp3 components (`wasi:http/handler@0.3.x`), as Spin 4.1 does it.
//!
//! Spin serves a WASIp3 component through `wasmtime_wasi_http::handler::ProxyHandler`:
//! an instance (a "worker") takes requests until it has started
//! `--max-instance-reuse-count` of them (default 128), handles up to
//! `--max-instance-concurrent-reuse-count` at once (default 16; a request beyond that
//! goes to another instance, new or idle), and is dropped once it has been idle for
//! `--idle-instance-timeout` (default 1 s). `--request-timeout` (default none) ends a
//! request that has produced no response in time with a `500`. Each of the four may be
//! a value or a range `a..b`, from which every new instance draws its own value
//! (uniformly, `b` excluded). WASIp2 components still get a fresh instance per request:
//! the settings do not apply to them (as in Spin).
//!
//! This is a port of Spin's `HttpHandlerState`, `HttpWorkerState` and
//! `HttpWorkerExpiration` (crates/trigger-http/src/server.rs) to this host's store.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use crate::engine;
use crate::state::{ComponentRuntime, Ctx};

/// A setting given as one value or as a range `a..b` to draw from per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range<T> {
    /// Always this value.
    Value(T),
    /// A value drawn uniformly from `[a, b)` for each new instance.
    Bounds(T, T),
}

fn random_u64() -> u64 {
    RandomState::new().hash_one(Instant::now())
}

impl Range<usize> {
    /// The value for a new instance.
    pub fn sample(self) -> usize {
        match self {
            Range::Value(value) => value,
            Range::Bounds(low, high) => low + (random_u64() as usize) % (high - low),
        }
    }
}

impl Range<Duration> {
    /// The value for a new instance.
    pub fn sample(self) -> Duration {
        match self {
            Range::Value(value) => value,
            Range::Bounds(low, high) => {
                let span = (high - low).as_nanos();
                low + Duration::from_nanos((u128::from(random_u64()) % span) as u64)
            }
        }
    }
}

fn parse_range<T: PartialOrd>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Range<T>, String> {
    match text.split_once("..") {
        Some((low, high)) => {
            let (low, high) = (parse(low)?, parse(high)?);
            // Spin accepts an empty range and panics when it draws from it.
            if low >= high {
                return Err(format!("the range {text:?} is empty"));
            }
            Ok(Range::Bounds(low, high))
        }
        None => Ok(Range::Value(parse(text)?)),
    }
}

/// Parses a count or a range of counts (`16`, `1..8`), as Spin's flags take them.
pub fn parse_usize_range(text: &str) -> Result<Range<usize>, String> {
    parse_range(text, |part| {
        part.parse()
            .map_err(|error| format!("expected integer or range; got {text:?}; {error}"))
    })
}

/// Parses a duration or a range of durations (`1s`, `500ms`, `2`, `1..8s`): a number
/// alone is seconds; the suffixes are `s`, `ms`, `us`/`μs` and `ns`, as Spin's flags
/// take them.
pub fn parse_duration_range(text: &str) -> Result<Range<Duration>, String> {
    parse_range(text, |part| {
        let error = |error: std::num::ParseIntError| {
            format!(
                "expected integer suffixed by `s`, `ms`, `us`, `μs`, or `ns`; got {text:?}; {error}"
            )
        };
        if let Ok(seconds) = part.parse() {
            return Ok(Duration::from_secs(seconds));
        }
        if let Some(n) = part.strip_suffix("ms") {
            Ok(Duration::from_millis(n.parse().map_err(error)?))
        } else if let Some(n) = part.strip_suffix("us").or(part.strip_suffix("μs")) {
            Ok(Duration::from_micros(n.parse().map_err(error)?))
        } else if let Some(n) = part.strip_suffix("ns") {
            Ok(Duration::from_nanos(n.parse().map_err(error)?))
        } else if let Some(n) = part.strip_suffix('s') {
            Ok(Duration::from_secs(n.parse().map_err(error)?))
        } else {
            Err(error(part.parse::<u64>().unwrap_err()))
        }
    })
}

/// How WASIp3 instances are reused: Spin's four flags, with Spin's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceReuse {
    /// `--max-instance-reuse-count` (default 128).
    pub max_instance_reuse_count: Range<usize>,
    /// `--max-instance-concurrent-reuse-count` (default 16).
    pub max_instance_concurrent_reuse_count: Range<usize>,
    /// `--request-timeout` (default none).
    pub request_timeout: Option<Range<Duration>>,
    /// `--idle-instance-timeout` (default 1 s).
    pub idle_instance_timeout: Range<Duration>,
}

impl Default for InstanceReuse {
    fn default() -> Self {
        Self {
            max_instance_reuse_count: Range::Value(128),
            max_instance_concurrent_reuse_count: Range::Value(16),
            request_timeout: None,
            idle_instance_timeout: Range::Value(Duration::from_secs(1)),
        }
    }
}

impl InstanceReuse {
    /// The flag names this setting answers to, without `--`.
    pub const FLAGS: [&'static str; 4] = [
        "max-instance-reuse-count",
        "max-instance-concurrent-reuse-count",
        "request-timeout",
        "idle-instance-timeout",
    ];

    /// Spin's defaults changed by `flags` (`("max-instance-reuse-count", "1")`, …; the
    /// names without `--`), for callers that pass Spin's own command-line flags.
    pub fn from_flags<'a>(
        flags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let mut reuse = Self::default();
        for (name, value) in flags {
            let name = name.trim_start_matches("--");
            let context = |error: String| format!("--{name} {value}: {error}");
            match name {
                "max-instance-reuse-count" => {
                    reuse.max_instance_reuse_count = parse_usize_range(value).map_err(context)?
                }
                "max-instance-concurrent-reuse-count" => {
                    reuse.max_instance_concurrent_reuse_count =
                        parse_usize_range(value).map_err(context)?
                }
                "request-timeout" => {
                    reuse.request_timeout = Some(parse_duration_range(value).map_err(context)?)
                }
                "idle-instance-timeout" => {
                    reuse.idle_instance_timeout = parse_duration_range(value).map_err(context)?
                }
                _ => return Err(format!("--{name}: not an instance-reuse flag")),
            }
        }
        Ok(reuse)
    }
}

/// The `HandlerState` of one WASIp3 component: makes its instances and gives each one
/// the limits drawn from [`InstanceReuse`].
pub struct ReuseHandlerState {
    pre: ServicePre<Ctx>,
    runtime: Arc<ComponentRuntime>,
    reuse: InstanceReuse,
}

impl ReuseHandlerState {
    /// The state for `runtime`'s component, pre-instantiated as `pre`.
    pub fn new(pre: ServicePre<Ctx>, runtime: Arc<ComponentRuntime>, reuse: InstanceReuse) -> Self {
        Self {
            pre,
            runtime,
            reuse,
        }
    }

    /// Makes one store and instance without serving anything (for measurements).
    pub async fn instantiate_only(&self) -> anyhow::Result<()> {
        let mut store = Store::new(engine::engine(), Ctx::new(self.runtime.clone()));
        let _service = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(anyhow::Error::from)?;
        Ok(())
    }
}

fn http_view(ctx: &mut Ctx) -> WasiHttpCtxView<'_> {
    ctx.http()
}

impl HandlerState for ReuseHandlerState {
    type StoreData = Ctx;
    type WorkerExpiration = IdleExpiration;
    type WorkerState = ReuseWorker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<Ctx, IdleExpiration, ReuseWorker>> {
        let mut store = Store::new(engine::engine(), Ctx::new(self.runtime.clone()));
        let service = self.pre.instantiate_async(&mut store).await?;
        let request_timeout = self
            .reuse
            .request_timeout
            .map(|range| range.sample())
            .unwrap_or(Duration::MAX);
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: http_view,
            expiration: IdleExpiration {
                idle_timeout: self.reuse.idle_instance_timeout.sample(),
                request_timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::MAX)),
            },
            state: ReuseWorker {
                request_timeout,
                max_instance_reuse_count: self.reuse.max_instance_reuse_count.sample(),
                max_instance_concurrent_reuse_count: self
                    .reuse
                    .max_instance_concurrent_reuse_count
                    .sample(),
                runtime: self.runtime.clone(),
            },
        })
    }
}

/// One instance's limits (Spin's `HttpWorkerState`).
pub struct ReuseWorker {
    request_timeout: Duration,
    max_instance_reuse_count: usize,
    max_instance_concurrent_reuse_count: usize,
    runtime: Arc<ComponentRuntime>,
}

impl WorkerState for ReuseWorker {
    type StoreData = Ctx;
    type RequestData = ();

    fn should_accept_request(&self, concurrent_count: usize, total_count: usize) -> ShouldAccept {
        if total_count >= self.max_instance_reuse_count {
            ShouldAccept::Never
        } else if concurrent_count >= self.max_instance_concurrent_reuse_count {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, Ctx>,
        _data: (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>> {
        Box::pin(tokio::time::sleep(self.request_timeout))
    }

    fn drop(&self, store: Store<Ctx>, result: wasmtime::Result<()>) {
        if let Err(error) = result {
            self.runtime
                .output
                .host_line(&format!("worker failed: {error:?}"));
        }
        drop(store);
    }
}

/// When an instance is dropped (Spin's `HttpWorkerExpiration`): after the idle timeout
/// with nothing to do, or after the request timeout while requests (or their
/// post-return work) are outstanding.
pub struct IdleExpiration {
    idle_timeout: Duration,
    request_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for IdleExpiration {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let this = self.get_mut();
        let timeout = match status {
            WorkerStatus::Idle => this.idle_timeout,
            WorkerStatus::Requests | WorkerStatus::PostReturn => this.request_timeout,
        };
        match start.checked_add(timeout) {
            Some(deadline) => {
                let deadline = tokio::time::Instant::from_std(deadline);
                if deadline != this.sleep.deadline() {
                    this.sleep.as_mut().reset(deadline);
                }
                this.sleep.as_mut().poll(cx)
            }
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_take_spins_values_and_ranges() {
        let reuse = InstanceReuse::from_flags([
            ("max-instance-reuse-count", "1"),
            ("--max-instance-concurrent-reuse-count", "2..8"),
            ("request-timeout", "1..8s"),
            ("idle-instance-timeout", "250ms"),
        ])
        .unwrap();
        assert_eq!(reuse.max_instance_reuse_count, Range::Value(1));
        assert_eq!(
            reuse.max_instance_concurrent_reuse_count,
            Range::Bounds(2, 8)
        );
        assert_eq!(
            reuse.request_timeout,
            Some(Range::Bounds(
                Duration::from_secs(1),
                Duration::from_secs(8)
            ))
        );
        assert_eq!(
            reuse.idle_instance_timeout,
            Range::Value(Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration_range("2").unwrap(),
            Range::Value(Duration::from_secs(2))
        );
        assert!(parse_usize_range("x").is_err());
        assert!(parse_usize_range("8..2").is_err());
        assert!(parse_duration_range("5m").is_err());
        assert!(InstanceReuse::from_flags([("listen", "x")]).is_err());
    }

    #[test]
    fn defaults_are_spins() {
        let reuse = InstanceReuse::default();
        assert_eq!(reuse.max_instance_reuse_count, Range::Value(128));
        assert_eq!(reuse.max_instance_concurrent_reuse_count, Range::Value(16));
        assert_eq!(reuse.request_timeout, None);
        assert_eq!(
            reuse.idle_instance_timeout,
            Range::Value(Duration::from_secs(1))
        );
    }

    #[test]
    fn samples_stay_in_their_range() {
        for _ in 0..200 {
            let count = Range::Bounds(2usize, 5).sample();
            assert!((2..5).contains(&count), "{count}");
            let wait = Range::Bounds(Duration::from_millis(10), Duration::from_millis(20)).sample();
            assert!(wait >= Duration::from_millis(10) && wait < Duration::from_millis(20));
        }
        assert_eq!(Range::Value(7usize).sample(), 7);
    }
}
