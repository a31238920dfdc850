//! `health`: `GET /functions/v1/health[?deep=1]`.
//!
//! Reports whether the database answers, whether an OpenAI API key is configured and,
//! with `?deep=1`, whether OpenAI knows the configured Realtime model. `503` when the
//! database is down. No auth, no secrets. The logic is `voice_edge_shared::health`.

use spin_sdk::http_service;
use voice_edge_shared::health;
use voice_edge_shared::http::JSON_LIMIT;
use voice_edge_shared::runtime::{SpinRequest, SpinResponse, SpinVariables, serve};

#[http_service]
async fn handle(request: SpinRequest) -> SpinResponse {
    serve("health", JSON_LIMIT, request, async |incoming| {
        health::handle(incoming, &SpinVariables).await
    })
    .await
}
