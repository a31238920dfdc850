//! `health`: `GET /functions/v1/health[?deep=1]`.
//!
//! Reports whether the database answers, whether an OpenAI API key is configured and,
//! with `?deep=1`, whether OpenAI knows the configured Realtime model. `503` when the
//! database is down. No auth, no secrets. The logic is `voice_edge_shared::health`.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use voice_edge_shared::health;
use voice_edge_shared::runtime::{SpinVariables, serve};

#[http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    serve("health", request, response_out, |incoming| {
        health::handle(incoming, &SpinVariables)
    })
}
