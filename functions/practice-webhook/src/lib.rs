//! `practice-webhook`: `POST /functions/v1/practice-webhook` receives ClassConnect's
//! results, signed as Standard Webhooks, and applies each delivery exactly once and in
//! order; `POST /functions/v1/practice-webhook/replay` (a `service_role` JWT) processes
//! stored deliveries again. The logic is `voice_edge_shared::practice`; the tests are
//! `tests/integration/tests/practice_webhook.rs`.

use spin_sdk::http_service;
use voice_edge_shared::clock;
use voice_edge_shared::http::WEBHOOK_LIMIT;
use voice_edge_shared::practice;
use voice_edge_shared::runtime::{SpinRequest, SpinResponse, SpinVariables, serve};

#[http_service]
async fn handle(request: SpinRequest) -> SpinResponse {
    serve(
        "practice-webhook",
        WEBHOOK_LIMIT,
        request,
        async |incoming| practice::handle(incoming, &SpinVariables, clock::now_utc()?).await,
    )
    .await
}
