//! `coldstart`: from spawning the runtime to its first successful response, under each
//! runtime.
//!
//! `spin up -f spin.toml` (or our host's binary with the same flags) is started with the
//! scenario's database and secrets as `SPIN_VARIABLE_*`, and `GET /functions/v1/health`
//! is polled until it answers `200` (which includes opening the first Postgres
//! connection, as a real first request would). Two series per runtime: compiling every
//! component afresh (Spin's `--disable-cache`; our host with an empty `--cache-dir`) and
//! with the compiled-code cache a previous start filled. Each run's process is stopped
//! before the next starts. No load is applied.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use voice_edge_testkit::child::{ChildApp, ChildOptions, ChildRuntime};
use voice_edge_testkit::pg::repo_root;

use crate::env::{Database, app_vars};
use crate::scenario::{Check, Limits, Report, Scenario, Table};

pub const SCENARIO: Scenario = Scenario {
    name: "coldstart",
    description: "spawn the runtime, time to the first 200 from health; fresh compile and compiled-code cache (no load)",
    target: "none set; what a scale-from-zero pays before its first answer",
    run,
};

/// Runs per series.
const FRESH_RUNS: usize = 3;
const CACHED_RUNS: usize = 5;
/// A run that has not answered by then has failed.
const DEADLINE: Duration = Duration::from_secs(120);

/// One `GET path` with `connection: close`; the status code, if the server answered.
fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Starts `runtime` and returns the time to the first `200` from health.
fn cold_start(runtime: &ChildRuntime, vars: &[(&str, &str)], no_cache: bool) -> Result<Duration> {
    let started = Instant::now();
    let app = ChildApp::start(
        runtime,
        &repo_root().join("spin.toml"),
        vars,
        &ChildOptions {
            no_cache,
            ..ChildOptions::default()
        },
    )
    .map_err(|error| anyhow!("{error}"))?;
    loop {
        if get_status(app.addr(), "/functions/v1/health") == Some(200) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > DEADLINE {
            bail!("no 200 from health within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `median (min–max)` of a series, in milliseconds.
fn summary(samples: &[Duration]) -> String {
    if samples.is_empty() {
        return "-".into();
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "{:.0} ({:.0}-{:.0})",
        ms(sorted[sorted.len() / 2]),
        ms(sorted[0]),
        ms(sorted[sorted.len() - 1])
    )
}

fn run(runtimes: &[ChildRuntime], _limits: &Limits) -> Result<Report> {
    let database = Database::start();
    let vars = app_vars(
        &database.db,
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "coldstart-jwt-secret",
        None,
    );
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut report = Report {
        table: Table::new(runtimes.iter().map(|r| r.name().to_string()).collect()),
        ..Report::default()
    };
    for (column, runtime) in runtimes.iter().enumerate() {
        let mut failures = Vec::new();
        let mut series = |no_cache: bool, runs: usize| {
            let mut samples = Vec::new();
            for run in 0..runs {
                match cold_start(runtime, &pairs, no_cache) {
                    Ok(elapsed) => samples.push(elapsed),
                    Err(error) => failures.push(format!("run {run}: {error:#}")),
                }
            }
            samples
        };
        let fresh = series(true, FRESH_RUNS);
        // A start with the cache on fills it; the measured ones then read it.
        let _ = series(false, 1);
        let cached = series(false, CACHED_RUNS);
        report.table.set(
            "compiling afresh: median ms (min-max)",
            column,
            summary(&fresh),
        );
        report.table.set(
            "compilation cache: median ms (min-max)",
            column,
            summary(&cached),
        );
        report.checks.push(Check::that(
            &format!("{}: every start answered", runtime.name()),
            failures.is_empty(),
            if failures.is_empty() {
                format!("{} starts", FRESH_RUNS + 1 + CACHED_RUNS)
            } else {
                failures.join("; ")
            },
        ));
    }
    report.notes.push(format!(
        "{FRESH_RUNS} fresh and {CACHED_RUNS} cached starts per runtime; time from spawn to the first 200 from \
         GET /functions/v1/health (which opens the first database connection)"
    ));
    Ok(report)
}
