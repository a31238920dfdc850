//! `voice-monitoring`: placeholder until its issue lands (answers 501 so the app and its routes exist).
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use voice_edge_shared::ApiError;
use voice_edge_shared::http::serve;

#[http_component]
fn handle(request: Request) -> Response {
    serve("voice-monitoring", request, |_| {
        Err(ApiError::internal("not implemented yet"))
    })
}
