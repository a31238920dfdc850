//! `voice-agent-search`: the voice agent's `web_search` tool. `POST
//! /functions/v1/voice-agent-search` `{"query", "locale"?, "max_citations"?}` answers
//! with OpenAI's web-searched answer and its citations, from a Postgres cache when the
//! same question was asked in the last ten minutes, or (marked stale) within the last
//! day when OpenAI fails.
//!
//! A thin adapter: the rules, the upstream call and the SQL are
//! `voice_edge_shared::search`. Build with `cargo build --target wasm32-wasip2 --release
//! -p voice-agent-search`; tested by `tests/integration/tests/voice_agent_search.rs`.

use spin_sdk::http_service;
use voice_edge_shared::clock;
use voice_edge_shared::http::JSON_LIMIT;
use voice_edge_shared::runtime::{SpinRequest, SpinResponse, SpinVariables, serve};
use voice_edge_shared::search;

#[http_service]
async fn handle(request: SpinRequest) -> SpinResponse {
    serve(search::FUNCTION, JSON_LIMIT, request, async |incoming| {
        search::handle(incoming, &SpinVariables, clock::now_unix()?).await
    })
    .await
}
