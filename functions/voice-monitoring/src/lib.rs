//! `voice-monitoring`: session metrics and errors from clients, the rollout dashboard's
//! summary and the guarded rollout change (`POST …/metrics`, `POST …/errors`,
//! `GET …/summary?hours=24`, `POST …/rollout`).
//!
//! A thin adapter: the routes, rules and SQL are `voice_edge_shared::monitoring`.
//! Build with `cargo build --target wasm32-wasip2 --release -p voice-monitoring`; tested
//! by `tests/integration/tests/voice_monitoring.rs`.

use spin_sdk::http_service;
use voice_edge_shared::clock;
use voice_edge_shared::http::JSON_LIMIT;
use voice_edge_shared::monitoring;
use voice_edge_shared::runtime::{SpinRequest, SpinResponse, SpinVariables, serve};

#[http_service]
async fn handle(request: SpinRequest) -> SpinResponse {
    serve("voice-monitoring", JSON_LIMIT, request, async |incoming| {
        monitoring::handle(incoming, &SpinVariables, clock::now_unix()?).await
    })
    .await
}
