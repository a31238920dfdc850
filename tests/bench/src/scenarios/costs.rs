//! `costs`: what each runtime charges for the kinds of host call our functions make.
//!
//! The component is `tests/components/cost-probe` (its own `spin.toml` beside it),
//! entered through the same `serve` as every function; each request does only what its
//! query asks for: nothing (the floor: a fresh instance, the CORS policy, one log line,
//! the answer), ten variable reads, ten more log lines, a Postgres connection opened,
//! one or five one-row statements on it. Each case runs under each runtime, first
//! over several keep-alive connections (CPU per request of the runtime's processes and
//! of PostgreSQL, read from `/proc`), then over one (latency). The differences between
//! cases give the price of one call of each kind, which is what the webhook and token
//! figures are made of.
//!
//! What it checks: every answer is `200` with the rows its statements returned.

use std::time::Duration;

use anyhow::{Result, anyhow};
use voice_edge_testkit::child::{ChildApp, ChildOptions, ChildRuntime};
use voice_edge_testkit::pg::repo_root;

use crate::cpu::{CpuSample, cpu_of_tree};
use crate::env::Database;
use crate::http1::Request;
use crate::load::{self, LoadReport};
use crate::scenario::{Check, Limits, Report, Scenario, Table};

pub const SCENARIO: Scenario = Scenario {
    name: "costs",
    description: "what each runtime charges per host call (a variable read, a log line, a Postgres connection, a statement), from tests/components/cost-probe",
    target: "none: the price list the webhook's and the token's figures are made of",
    run,
};

/// One kind of request to the probe.
struct Case {
    label: &'static str,
    query: &'static str,
    /// The rows its statements return, which the answer must report.
    rows: usize,
}

const CASES: &[Case] = &[
    Case {
        label: "floor (answer only)",
        query: "",
        rows: 0,
    },
    Case {
        label: "+ 10 variable reads",
        query: "vars=10",
        rows: 0,
    },
    Case {
        label: "+ 10 log lines",
        query: "log=10",
        rows: 0,
    },
    Case {
        label: "+ a connection opened",
        query: "open=1",
        rows: 0,
    },
    Case {
        label: "+ it and 1 statement",
        query: "open=1&stmts=1",
        rows: 1,
    },
    Case {
        label: "+ it and 5 statements",
        query: "open=1&stmts=5",
        rows: 5,
    },
];

/// Requests per case and load at most; a case is steady long before.
const REQUESTS: usize = 6_000;
/// Requests over one connection for the latency figure.
const SERIAL_REQUESTS: usize = 1_000;

/// What one case cost under one runtime.
#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    runtime_us: f64,
    postgres_us: f64,
}

fn run(runtimes: &[ChildRuntime], limits: &Limits) -> Result<Report> {
    let database = Database::start();
    let (db_url, db_host) = (database.db.url(), database.db.db_host());
    let pairs = [("db_url", db_url.as_str()), ("db_host", db_host.as_str())];
    let manifest = repo_root().join("tests/components/cost-probe/spin.toml");
    let connections = limits.connections.first().copied().unwrap_or(8);
    let seconds = Duration::from_secs_f64((limits.seconds / 2.0).max(1.0));

    let variants = crate::env::reuse_variants(runtimes);
    let mut report = Report {
        table: Table::new(variants.iter().map(|(label, _, _)| label.clone()).collect()),
        notes: Vec::new(),
        checks: Vec::new(),
    };
    for (column, (label, runtime, flags)) in variants.iter().enumerate() {
        let options = ChildOptions::with_flags(flags);
        let app = ChildApp::start(runtime, &manifest, &pairs, &options)
            .map_err(|error| anyhow!("the cost probe did not start under {label}: {error}"))?;
        let addr = app.addr();
        let mut measured = Vec::new();
        for case in CASES {
            let request = Request::post(addr, &format!("/?{}", case.query), &[], b"");
            let warmup = vec![request.clone(); limits.warmup];
            load::drive(addr, &warmup, connections, Duration::from_secs(30));

            let runtime_before = cpu_of_tree(app.pid());
            let postgres_before = CpuSample::take(database.cluster.data_dir());
            let loaded = load::drive(addr, &vec![request.clone(); REQUESTS], connections, seconds);
            let runtime_cpu = cpu_of_tree(app.pid()).saturating_sub(runtime_before);
            let postgres_cpu = CpuSample::take(database.cluster.data_dir())
                .since(&postgres_before)
                .postgres;
            let serial = load::drive(addr, &vec![request; SERIAL_REQUESTS], 1, seconds);

            let per_request =
                |cpu: Duration| cpu.as_secs_f64() * 1e6 / loaded.answers.len().max(1) as f64;
            let case_cost = Measured {
                runtime_us: per_request(runtime_cpu),
                postgres_us: per_request(postgres_cpu),
            };
            measured.push(case_cost);
            report.table.set(
                &format!("{}: CPU µs/request, runtime / PostgreSQL", case.label),
                column,
                format!("{:.0} / {:.0}", case_cost.runtime_us, case_cost.postgres_us),
            );
            report.table.set(
                &format!("{}: p50 / p99 ms, 1 connection", case.label),
                column,
                format!(
                    "{:.2} / {:.2}",
                    serial.percentile(50.0).as_secs_f64() * 1e3,
                    serial.percentile(99.0).as_secs_f64() * 1e3
                ),
            );
            for (load_name, run) in [("loaded", &loaded), ("serial", &serial)] {
                report.checks.push(Check::equal(
                    &format!(
                        "{}: `{}` ({load_name}) answers 200 with its {} rows",
                        label, case.label, case.rows
                    ),
                    answered_with(run, case.rows) as i64,
                    run.answers.len() as i64,
                ));
            }
        }
        price_list(&mut report.table, column, &measured);
    }
    report.notes.push(format!(
        "CPU over {connections} keep-alive connections ({REQUESTS} requests or {:.0} s per case, after {} warm-up), latency over 1 ({SERIAL_REQUESTS} requests); the runtime's CPU counts every process of it (spin up and its trigger)",
        seconds.as_secs_f64(),
        limits.warmup
    ));
    report.notes.push(
        "a call's price = the difference between two cases; opening includes its one variable read (db_url); a statement is `SELECT $1::int4 + 1` on the opened connection".into(),
    );
    report.notes.push(
        "the probe is a WASIp3 component like the functions: with reuse (host, spin) a variable is read from the runtime once per instance and `open` takes the connection the instance kept, so their prices are what a reused instance pays; spin-reuse1 pays for a fresh instance, a fresh read and a fresh checkout from Spin's pool every request".into(),
    );
    Ok(report)
}

/// The price of one call of each kind, from the differences between the cases.
fn price_list(table: &mut Table, column: usize, measured: &[Measured]) {
    let [floor, vars, logs, open, _one, five] = measured else {
        return;
    };
    let rows = [
        (
            "price: a variable read, runtime CPU µs",
            (vars.runtime_us - floor.runtime_us) / 10.0,
        ),
        (
            "price: a log line, runtime CPU µs",
            (logs.runtime_us - floor.runtime_us) / 10.0,
        ),
        (
            "price: opening a connection, runtime CPU µs",
            open.runtime_us - floor.runtime_us,
        ),
        (
            "price: opening a connection, PostgreSQL CPU µs",
            open.postgres_us - floor.postgres_us,
        ),
        (
            "price: a statement, runtime CPU µs",
            (five.runtime_us - open.runtime_us) / 5.0,
        ),
        (
            "price: a statement, PostgreSQL CPU µs",
            (five.postgres_us - open.postgres_us) / 5.0,
        ),
    ];
    for (label, value) in rows {
        table.set(label, column, format!("{value:.0}"));
    }
}

/// How many answers of `run` are `200` reporting `rows` rows.
fn answered_with(run: &LoadReport, rows: usize) -> usize {
    let expected = format!(r#"{{"rows":{rows}}}"#);
    run.answers
        .iter()
        .filter(|answer| {
            matches!(&answer.result, Ok(response) if response.status == 200 && response.body == expected.as_bytes())
        })
        .count()
}
