//! `cost-probe`: what a runtime charges for each kind of host call a function makes,
//! measured by the bench (`voice-edge-bench -- costs`) from outside. One request does
//! only what its query asks for, through the same entry point as every function
//! ([`serve`], so the framing and the CORS policy are the functions'):
//!
//! - `vars=N`: N reads of the component variable `db_url`;
//! - `open=N`: N database connections opened (`db_url`), each running `stmts=M`
//!   one-row statements;
//! - `log=N`: N log lines on stdout (every function writes one per request);
//! - `after_ms=N`: work scheduled after the response ([`Incoming::after_response`])
//!   that waits N ms (at most 10 000) and then logs `{"probe":"after_response",…}`, for
//!   the test that the response does not wait for it
//!   (`tests/integration/tests/response_framing.rs`).
//!
//! The answer is `{"rows": …}`, the rows the statements returned, so the bench can tell
//! a probe that did its work from one that did not.
//!
//! A WASIp3 component (spin-sdk 7) like the functions: under Spin 4.1 its instances
//! serve many requests, so variables are read from the runtime once per instance and
//! connections come from the instance's pool (`voice_edge_shared::db::pool`), as in
//! the functions.

use spin_sdk::http_service;
use spin_sdk::wasip3::clocks::monotonic_clock;
use voice_edge_shared::ApiError;
use voice_edge_shared::config::{self, Variables};
use voice_edge_shared::db::{Db, DbAddress, ParameterValue};
use voice_edge_shared::http::{Incoming, JSON_LIMIT, Reply};
use voice_edge_shared::runtime::{SpinRequest, SpinResponse, SpinVariables, serve};

/// The most of any one kind of call a request may ask for.
const MOST: usize = 100;
/// The longest wait after the response a request may ask for, in ms.
const MOST_AFTER_MS: usize = 10_000;

fn number(incoming: &Incoming, name: &str, most: usize) -> Result<usize, ApiError> {
    match incoming.query_param(name) {
        None => Ok(0),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n <= most => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "`{name}` must be a number from 0 to {most}"
            ))),
        },
    }
}

fn count(incoming: &Incoming, name: &str) -> Result<usize, ApiError> {
    number(incoming, name, MOST)
}

async fn probe(incoming: &Incoming) -> Result<Reply, ApiError> {
    let after_ms = number(incoming, "after_ms", MOST_AFTER_MS)?;
    if after_ms > 0 {
        incoming.after_response(async move {
            monotonic_clock::wait_for(after_ms as u64 * 1_000_000).await;
            println!(r#"{{"probe":"after_response","slept_ms":{after_ms}}}"#);
        });
    }
    for _ in 0..count(incoming, "vars")? {
        SpinVariables.get(config::DB_URL)?;
    }
    for line in 0..count(incoming, "log")? {
        println!(r#"{{"probe":"cost","line":{line}}}"#);
    }
    let mut rows = 0;
    let opens = count(incoming, "open")?;
    let statements = count(incoming, "stmts")?;
    if opens > 0 {
        let address = DbAddress::load(&SpinVariables, config::DB_URL)?;
        for _ in 0..opens {
            let db = Db::connect(&address).await?;
            for n in 0..statements {
                let found = db
                    .query_one("SELECT $1::int4 + 1", &[ParameterValue::Int32(n as i32)])
                    .await?;
                rows += found.rows.len();
            }
        }
    }
    Ok(Reply::json(200, &serde_json::json!({ "rows": rows })))
}

#[http_service]
async fn handle(request: SpinRequest) -> SpinResponse {
    serve("cost-probe", JSON_LIMIT, request, async |incoming| {
        probe(incoming).await
    })
    .await
}
