//! `reuse-probe`: a WASIp3 component (spin-sdk 7, `wasi:http/handler@0.3.0`) that tells
//! which instance served a request, for the host's instance-reuse conformance tests
//! (`tests/host/tests/reuse.rs`).
//!
//! Every answer is `{"instance": "<id>", "served": <n>, "peak": <p>}` (JSON, with
//! `content-length`): `instance` is a random id drawn on the instance's first request,
//! `served` how many requests this instance has started, this one included, and `peak`
//! the most requests this instance has had in progress at once so far; with
//! `headers=1`, also `uri` and the `spin-full-url` and `spin-path-info` headers it got.
//! Query parameters:
//! - `wait_ms=N`: wait N milliseconds (on the host's monotonic clock) before answering,
//!   so that requests overlap and the runtime's concurrency limit can be observed;
//! - `op=shared-transaction-panic` (POST `{"address", "statement"}`): runs the
//!   statement inside `voice_edge_shared::db::Db::transaction` and panics before the
//!   transaction ends, to show that the shared helper rolls it back before the trap
//!   in a WASIp3 instance (`tests/host/tests/postgres.rs`).
//!
//! Its own manifest is `spin.toml` beside this crate. Build:
//! `cargo build --target wasm32-wasip2 --release -p reuse-probe`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

static INSTANCE: OnceLock<String> = OnceLock::new();
static SERVED: AtomicU64 = AtomicU64::new(0);
static IN_PROGRESS: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

/// A random id, drawn once per instance (std's `RandomState` keys come from
/// `wasi:random`).
fn instance_id() -> &'static str {
    INSTANCE.get_or_init(|| {
        let state = RandomState::new();
        format!("{:016x}{:016x}", state.hash_one(1u8), state.hash_one(2u8))
    })
}

fn wait_ms(request: &Request) -> u64 {
    request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("wait_ms="))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// Runs `statement` inside shared's transaction helper and panics before it ends.
fn shared_transaction_panic(spec: &serde_json::Value) -> String {
    use voice_edge_shared::db::{Db, DbAddress, DbError};
    let address = spec["address"].as_str().unwrap_or_default().to_string();
    let statement = spec["statement"].as_str().unwrap_or_default();
    let address = match DbAddress::new("address", address, None) {
        Ok(address) => address,
        Err(error) => return format!("{{\"error\":{:?}}}", error.to_string()),
    };
    let db = match Db::connect(&address) {
        Ok(db) => db,
        Err(error) => return format!("{{\"error\":{:?}}}", error.to_string()),
    };
    let result: Result<(), DbError> = db.transaction(|tx| {
        tx.execute(statement, &[])?;
        panic!("the probe panics inside a shared transaction");
    });
    format!("{{\"unexpected\":{:?}}}", format!("{result:?}"))
}

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    if request
        .uri()
        .query()
        .unwrap_or("")
        .contains("op=shared-transaction-panic")
    {
        use http_body_util::BodyExt;
        let body = request
            .into_body()
            .collect()
            .await
            .map(|body| body.to_bytes());
        let spec = body
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let body = shared_transaction_panic(&spec);
        return http::Response::builder()
            .status(500)
            .header("content-length", body.len().to_string())
            .body(body);
    }
    let instance = instance_id();
    let served = SERVED.fetch_add(1, Ordering::SeqCst) + 1;
    let in_progress = IN_PROGRESS.fetch_add(1, Ordering::SeqCst) + 1;
    PEAK.fetch_max(in_progress, Ordering::SeqCst);
    let wait = wait_ms(&request);
    if wait > 0 {
        spin_sdk::time::sleep(Duration::from_millis(wait)).await;
    }
    IN_PROGRESS.fetch_sub(1, Ordering::SeqCst);
    let peak = PEAK.load(Ordering::SeqCst);
    let mut body = format!("{{\"instance\":\"{instance}\",\"served\":{served},\"peak\":{peak}");
    if request.uri().query().unwrap_or("").contains("headers=1") {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .replace(['"', '\\'], "")
        };
        body.push_str(&format!(
            ",\"uri\":\"{}\",\"full_url\":\"{}\",\"path_info\":\"{}\"",
            request.uri().to_string().replace(['"', '\\'], ""),
            header("spin-full-url"),
            header("spin-path-info"),
        ));
    }
    body.push('}');
    // Always a content-length: a chunked answer under Spin waits for a delayed ACK.
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("content-length", body.len().to_string())
        .body(body)
}
