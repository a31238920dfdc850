//! The ceiling: what PostgreSQL alone allows for the webhook's deliveries on this
//! machine, measured with `pgbench` running exactly the statement the component sends
//! for one `practice.attempt.scored` delivery (one call of `practice_record_scored`:
//! dedupe, the attempt, the session's results, the event row) at the same concurrency,
//! with no HTTP, no signature and no WebAssembly.
//!
//! The statement and its parameters come from `shared/` itself ([`RECORD_SCORED_SQL`],
//! [`record_scored_params`]) for each of the same deliveries the runtimes are sent.
//! pgbench cannot make UUIDs or JSON, so each transaction first fetches its delivery's
//! parameters from a table by primary key (`\gset`); what that fetch alone costs is
//! measured beside it. `-M extended` sends each statement as Spin does: parsed, bound
//! and executed every time.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use uuid::Uuid;
use voice_edge_shared::db::ParameterValue;
use voice_edge_shared::practice::event::{EventKind, ParsedBody, parse_body};
use voice_edge_shared::practice::webhook_events::{RECORD_SCORED_SQL, record_scored_params};

use crate::cpu::CpuSample;
use crate::env::Database;
use crate::scenarios::webhook::{scored_event, seed_sessions};
use crate::wrk::children_cpu;

/// Deliveries prepared per second of measured load (pgbench wraps around beyond them).
const DELIVERIES_PER_SECOND: usize = 4_000;

/// What the ceiling run measured.
#[derive(Debug, Clone, Default)]
pub struct Ceiling {
    /// Transactions (deliveries) per second, without connection set-up.
    pub tps: f64,
    pub transactions: u64,
    pub failed: u64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    /// Event rows stored.
    pub stored: i64,
    pub cpu_postgres: Duration,
    pub cpu_pgbench: Duration,
    pub notes: Vec<String>,
}

/// Runs the ceiling at `clients` connections for `seconds`, on a fresh cluster.
pub fn measure(clients: usize, seconds: u64) -> Result<Ceiling> {
    let database = Database::start();
    let mut client = database.db.client();
    let sessions = seed_sessions(&mut client)?;
    let count = DELIVERIES_PER_SECOND * seconds as usize;
    let prepared = prepare(&mut client, &sessions, count)?;
    let dir = database
        .cluster
        .data_dir()
        .parent()
        .unwrap_or(database.cluster.data_dir())
        .join(format!("pgbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("delivery.sql");
    std::fs::write(&script, &prepared.script)?;
    let url = database.db.url();

    let pg_before = CpuSample::take(database.cluster.data_dir());
    let cpu_before = children_cpu();
    let out = run_pgbench(&url, &script, clients, seconds, Some(&dir.join("log")))?;
    let cpu_pgbench = children_cpu().saturating_sub(cpu_before);
    let cpu_postgres = CpuSample::take(database.cluster.data_dir())
        .since(&pg_before)
        .postgres;
    let mut latencies = read_latencies(&dir)?;
    latencies.sort_unstable();
    let percentile = |p: f64| -> Duration {
        if latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1]
    };
    let stored: i64 = client
        .query_one("SELECT count(*) FROM webhook_events", &[])?
        .get(0);

    // What the parameter fetch alone costs, to read the ceiling by.
    let fetch_script = dir.join("fetch.sql");
    std::fs::write(&fetch_script, format!("{}\n", prepared.fetch))?;
    let fetch = run_pgbench(&url, &fetch_script, clients, seconds.div_ceil(2), None)?;
    let _ = std::fs::remove_dir_all(&dir);

    Ok(Ceiling {
        tps: out.tps,
        transactions: out.transactions,
        failed: out.failed,
        p50: percentile(50.0),
        p90: percentile(90.0),
        p99: percentile(99.0),
        stored,
        cpu_postgres,
        cpu_pgbench,
        notes: vec![
            format!(
                "pgbench -n -M extended -c {clients} -j 2 -T {seconds}: {} transactions, {} failed; \
                 each: the parameter fetch, then the component's one statement",
                out.transactions, out.failed
            ),
            format!(
                "the parameter fetch alone (a primary-key SELECT pgbench needs and the component \
                 does not): {:.0} tps at {clients} clients",
                fetch.tps
            ),
        ],
    })
}

/// The pgbench scripts and their parameter table.
struct Prepared {
    script: String,
    fetch: String,
}

/// A parameter as pgbench's text, `None` for NULL.
fn as_text(value: &ParameterValue) -> Result<Option<String>> {
    Ok(match value {
        ParameterValue::DbNull => None,
        ParameterValue::Str(text) | ParameterValue::Uuid(text) | ParameterValue::Decimal(text) => {
            Some(text.clone())
        }
        ParameterValue::Boolean(value) => Some(value.to_string()),
        ParameterValue::Int32(value) => Some(value.to_string()),
        ParameterValue::Int64(value) => Some(value.to_string()),
        ParameterValue::Floating64(value) => Some(value.to_string()),
        ParameterValue::Jsonb(bytes) => Some(String::from_utf8(bytes.clone())?),
        other => bail!("no text form for the parameter {other:?}"),
    })
}

/// One line of SQL with `$n` replaced by `name(n)`.
fn substitute(sql: &str, name: impl Fn(usize) -> String) -> String {
    let pattern = regex_lite::Regex::new(r"\$(\d+)").expect("a valid pattern");
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    pattern
        .replace_all(&one_line, |captures: &regex_lite::Captures<'_>| {
            name(captures[1].parse().expect("digits"))
        })
        .into_owned()
}

/// Builds the parameters the component would send for each delivery, stores them in
/// `bench_deliveries`, and writes the scripts.
fn prepare(client: &mut postgres::Client, sessions: &[Uuid], count: usize) -> Result<Prepared> {
    let mut columns: Vec<Vec<Option<String>>> = Vec::new();
    for index in 0..count {
        let session = sessions[index % sessions.len()];
        let body = scored_event(index, session).to_string();
        let ParsedBody::Event(event) = parse_body(body.as_bytes()) else {
            bail!("the bench's delivery does not parse: {body}");
        };
        let EventKind::AttemptScored(score) = &event.kind else {
            bail!("the bench's delivery is not a scored attempt: {body}");
        };
        let id = format!("msg_ceiling_{index:07}_{}", Uuid::new_v4().simple());
        let params = record_scored_params(&id, body.as_bytes(), &event, score);
        let texts = params.iter().map(as_text).collect::<Result<Vec<_>>>()?;
        ensure!(
            texts.iter().all(Option::is_some),
            "a scored delivery has no NULL parameter"
        );
        if columns.is_empty() {
            columns = vec![Vec::with_capacity(count); params.len()];
        }
        for (column, text) in columns.iter_mut().zip(texts) {
            column.push(text);
        }
    }

    // The parameter table: n, then p1 … pN as text.
    let names: Vec<String> = (1..=columns.len()).map(|n| format!("p{n}")).collect();
    client.batch_execute(&format!(
        "CREATE TABLE bench_deliveries (n int8 PRIMARY KEY, {});
         CREATE SEQUENCE bench_delivery_seq;",
        names
            .iter()
            .map(|name| format!("{name} text"))
            .collect::<Vec<_>>()
            .join(", ")
    ))?;
    let numbers: Vec<i64> = (1..=count as i64).collect();
    let insert = format!(
        "INSERT INTO bench_deliveries SELECT * FROM unnest($1::int8[], {})",
        (2..=columns.len() + 1)
            .map(|n| format!("${n}::text[]"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&numbers];
    for column in &columns {
        params.push(column);
    }
    client.execute(&insert, &params)?;
    client.batch_execute("VACUUM ANALYZE bench_deliveries")?;

    let fetch = format!(
        "SELECT {} FROM bench_deliveries WHERE n = (SELECT nextval('bench_delivery_seq') % {count} + 1) \\gset",
        names.join(", ")
    );
    let record = substitute(RECORD_SCORED_SQL, |n| format!(":p{n}"));
    Ok(Prepared {
        script: format!("{fetch}\n{record};\n"),
        fetch,
    })
}

/// What pgbench printed.
struct PgbenchOut {
    tps: f64,
    transactions: u64,
    failed: u64,
}

fn run_pgbench(
    url: &str,
    script: &Path,
    clients: usize,
    seconds: u64,
    log_prefix: Option<&Path>,
) -> Result<PgbenchOut> {
    let mut command = Command::new("pgbench");
    command
        .arg("-n")
        .args(["-M", "extended"])
        .arg(format!("--client={clients}"))
        .arg(format!("--jobs={}", clients.clamp(1, 2)))
        .arg(format!("--time={seconds}"))
        .arg(format!("--file={}", script.display()));
    if let Some(prefix) = log_prefix {
        command
            .arg("--log")
            .arg(format!("--log-prefix={}", prefix.display()));
    }
    let output = command.arg(url).output().context("running pgbench")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "pgbench failed ({}): {text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let field = |prefix: &str| -> Option<&str> {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .map(str::trim)
    };
    let tps = field("tps = ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .with_context(|| format!("no tps in pgbench's output: {text}"))?;
    let transactions = field("number of transactions actually processed:")
        .and_then(|rest| rest.split('/').next())
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    let failed = field("number of failed transactions:")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    Ok(PgbenchOut {
        tps,
        transactions,
        failed,
    })
}

/// Every transaction's latency from pgbench's per-transaction logs (`log.*`): the third
/// field, in microseconds.
fn read_latencies(dir: &Path) -> Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_log = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("log."));
        if !is_log {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            if let Some(micros) = line.split_whitespace().nth(2).and_then(|v| v.parse().ok()) {
                latencies.push(Duration::from_micros(micros));
            }
        }
    }
    Ok(latencies)
}
