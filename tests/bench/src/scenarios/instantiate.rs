//! `instantiate`: what a fresh instance per request costs in the host.
//!
//! Two figures. First, for every component, the host's own measurement
//! ([`voice_edge_host::App::measure_instantiation`]): a new store and an instance from
//! the pre-instantiated component, nothing called, repeated. Second, the floor of a whole
//! request: `POST /functions/v1/health` over keep-alive connections, which the guest
//! answers `405` at once (a fresh instance, the guest's routing and CORS, no database,
//! no upstream), so its latency is the host's HTTP path plus instantiation plus the
//! smallest guest work.
//!
//! What it checks: every request of the load is answered `405`.

use std::time::Duration;

use anyhow::{Context, Result};
use voice_edge_host::manifest::Manifest;
use voice_edge_testkit::pg::repo_root;

use crate::env::Env;
use crate::http1::Request;
use crate::load;
use crate::scenario::{Check, Limits, Outcome, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "instantiate",
    description: "per-request instantiation cost of the host; POST health (405, no database) as the request floor",
    needs_openai: false,
    target: "a small share of the webhook's p99 budget (15 ms) and of the token function's 2 ms",
    run,
};

/// Instances made per component for the host's measurement.
const INSTANCES: usize = 2_000;
/// The load's requests at most (the floor needs no more to be steady).
const FLOOR_REQUESTS: usize = 20_000;

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn run(env: &Env, limits: &Limits) -> Result<Outcome> {
    let app = env
        .app
        .app()
        .context("instantiation is measured inside our host only (VOICE_EDGE_RUNTIME=host)")?
        .clone();
    let manifest = Manifest::load(&repo_root().join("spin.toml"))?;
    let mut notes = vec![format!(
        "instantiation alone ({INSTANCES} fresh instances each, nothing called):"
    )];
    for id in manifest.components.keys() {
        let report =
            voice_edge_host::runtime().block_on(app.measure_instantiation(id, INSTANCES))?;
        notes.push(format!(
            "  {:<30} mean {:>6.1} µs   p50 {:>6.1} µs   p99 {:>6.1} µs   max {:>7.1} µs",
            id,
            micros(report.mean),
            micros(report.p50),
            micros(report.p99),
            micros(report.max)
        ));
    }

    let addr = env.addr()?;
    let probe = Request::post(
        addr,
        "/functions/v1/health",
        &[("content-type", "application/json")],
        b"{}",
    );
    let warmup = vec![probe.clone(); limits.warmup];
    load::drive(addr, &warmup, limits.connections, Duration::from_secs(30));
    let requests = vec![probe; limits.requests.min(FLOOR_REQUESTS)];
    let measured = load::drive(
        addr,
        &requests,
        limits.connections,
        Duration::from_secs_f64(limits.seconds),
    );
    notes.push("the load above: POST /functions/v1/health, answered 405 by the guest (instance + routing + CORS)".into());
    notes.push("reproduce: cargo run --profile host -p voice-edge-bench --bin voice-edge-bench -- instantiate".into());

    let answered_405 = measured
        .answers
        .iter()
        .filter(|answer| matches!(&answer.result, Ok(response) if response.status == 405))
        .count();
    let checks = vec![Check::equal(
        "every probe answered 405",
        answered_405 as i64,
        measured.answers.len() as i64,
    )];
    Ok(Outcome {
        load: measured,
        notes,
        checks,
    })
}
