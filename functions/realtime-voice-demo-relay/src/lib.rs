//! `realtime-voice-demo-relay`: the isolated demo system (contract section 4).
//!
//! Demo activities, demo sessions, the WebRTC SDP relay to OpenAI's
//! `/v1/realtime/calls`, ephemeral tokens and interaction logging, all on the `demo_*`
//! tables through the `demo_relay` role (`demo_db_url`). The logic is
//! `voice_edge_shared::demo`; this crate only hands Spin's request to it.
//!
//! Build: `cargo build --target wasm32-wasip2 --release -p realtime-voice-demo-relay`;
//! tests: `cargo test --profile host -p voice-edge-integration --test realtime_voice_demo_relay`.

use spin_sdk::http_service;
use voice_edge_shared::clock;
use voice_edge_shared::demo;
use voice_edge_shared::http::JSON_LIMIT;
use voice_edge_shared::runtime::{SpinRequest, SpinResponse, SpinVariables, serve};

#[http_service]
async fn handle(request: SpinRequest) -> SpinResponse {
    serve(demo::FUNCTION, JSON_LIMIT, request, async |incoming| {
        demo::handle(incoming, &SpinVariables, clock::now_unix()?).await
    })
    .await
}
