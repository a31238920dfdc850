//! `realtime-student-guide-token`: OpenAI Realtime ephemeral tokens per persona, behind
//! the `voice_webrtc_migration` rollout flag.
//!
//! `POST /functions/v1/realtime-student-guide-token` mints a token (or answers the
//! WebSocket fallback to a student outside the rollout), `POST …/refresh` renews one for
//! the same session, `GET …/flag` tells the caller where the rollout puts them. The
//! logic is `voice_edge_shared::token`; its integration tests are
//! `tests/integration/tests/realtime_student_guide_token.rs`.

use spin_sdk::http_service;
use voice_edge_shared::clock;
use voice_edge_shared::http::JSON_LIMIT;
use voice_edge_shared::runtime::{SpinRequest, SpinResponse, SpinVariables, serve};
use voice_edge_shared::token;

#[http_service]
async fn handle(request: SpinRequest) -> SpinResponse {
    serve(token::FUNCTION, JSON_LIMIT, request, async |incoming| {
        token::handle(incoming, &SpinVariables, clock::now_unix()?).await
    })
    .await
}
