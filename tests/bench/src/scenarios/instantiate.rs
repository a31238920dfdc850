//! `instantiate`: what a fresh instance per request costs.
//!
//! Two figures. First, for every component, our host's own measurement
//! ([`voice_edge_host::App::measure_instantiation`], the app loaded in-process): a new
//! store and an instance from the pre-instantiated component, nothing called,
//! repeated (Spin has no such hook). Second, under each runtime, the floor of a whole
//! request: `POST /functions/v1/health` over keep-alive connections, which the guest
//! answers `405` at once (a fresh instance, the guest's routing and CORS, no database,
//! no upstream), so its latency is the runtime's HTTP path plus instantiation plus the
//! smallest guest work.
//!
//! What it checks: every request of the load is answered `405`.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use voice_edge_host::manifest::Manifest;
use voice_edge_testkit::app::TestApp;
use voice_edge_testkit::child::ChildRuntime;
use voice_edge_testkit::pg::repo_root;

use crate::env::{Database, Env, app_vars};
use crate::http1::Request;
use crate::load;
use crate::scenario::{Check, Limits, Report, Scenario, Table};

pub const SCENARIO: Scenario = Scenario {
    name: "instantiate",
    description: "per-request instantiation cost in our host; POST health (405, no database) as the request floor under each runtime",
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

fn run(runtimes: &[ChildRuntime], limits: &Limits) -> Result<Report> {
    let database = Database::start();
    let vars = app_vars(
        &database.db,
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "bench-jwt-secret",
        None,
    );
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let host = TestApp::start_in_host(&repo_root().join("spin.toml"), &pairs)
        .map_err(|error| anyhow!("the in-process host did not start: {error}"))?;
    let app = host
        .app()
        .context("the in-process host has its app loaded")?
        .clone();
    let manifest = Manifest::load(&repo_root().join("spin.toml"))?;
    let mut notes = vec![format!(
        "our host, instantiation alone ({INSTANCES} fresh instances each, nothing called):"
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
    drop(host);

    let connections = limits.connections.first().copied().unwrap_or(8);
    let mut report = Report {
        table: Table::new(runtimes.iter().map(|r| r.name().to_string()).collect()),
        notes,
        checks: Vec::new(),
    };
    for (column, runtime) in runtimes.iter().enumerate() {
        let env = Env::start(runtime, false)?;
        let addr = env.addr()?;
        let probe = Request::post(
            addr,
            "/functions/v1/health",
            &[("content-type", "application/json")],
            b"{}",
        );
        let warmup = vec![probe.clone(); limits.warmup];
        load::drive(addr, &warmup, connections, Duration::from_secs(30));
        let requests = vec![probe; limits.requests.min(FLOOR_REQUESTS)];
        let measured = load::drive(
            addr,
            &requests,
            connections,
            Duration::from_secs_f64(limits.seconds),
        );
        let ms = |d: Duration| format!("{:.3}", d.as_secs_f64() * 1e3);
        report.table.set(
            &format!("requests/s ({connections} connections)"),
            column,
            format!("{:.0}", measured.rate()),
        );
        report
            .table
            .set("p50 ms", column, ms(measured.percentile(50.0)));
        report
            .table
            .set("p99 ms", column, ms(measured.percentile(99.0)));
        let answered_405 = measured
            .answers
            .iter()
            .filter(|answer| matches!(&answer.result, Ok(response) if response.status == 405))
            .count();
        report.checks.push(Check::equal(
            &format!("{}: every probe answered 405", runtime.name()),
            answered_405 as i64,
            measured.answers.len() as i64,
        ));
    }
    report.notes.push("the table: POST /functions/v1/health, answered 405 by the guest (instance + routing + CORS)".into());
    Ok(report)
}
