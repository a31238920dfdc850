//! `practice-webhook`: `POST /functions/v1/practice-webhook` receives ClassConnect's
//! results, signed as Standard Webhooks, and applies each delivery exactly once and in
//! order; `POST /functions/v1/practice-webhook/replay` (a `service_role` JWT) processes
//! stored deliveries again. The logic is `voice_edge_shared::practice`; the tests are
//! `tests/integration/tests/practice_webhook.rs`.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use voice_edge_shared::clock;
use voice_edge_shared::practice;
use voice_edge_shared::runtime::{SpinVariables, serve};

#[http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    serve("practice-webhook", request, response_out, |incoming| {
        practice::handle(incoming, &SpinVariables, clock::now_utc()?)
    })
}
