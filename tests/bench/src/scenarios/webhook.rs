//! `webhook`: what ClassConnect sees when it posts signed results to `practice-webhook`,
//! under each runtime, beside what PostgreSQL alone allows (the ceiling).
//!
//! For each connection count (8 and 16 by default) and each runtime (our host's binary,
//! real Spin), and for the Deno + postgres.js peer of `../shared/peers` when it is
//! beside the project (the yardstick: what keeping a Supabase Edge Function would give,
//! [`crate::peer`]), a fresh private cluster and database: 2,000 practice sessions of three
//! sentences, each already scored once per sentence (so every delivery is a student's
//! new attempt at a completed session: the common case, and the session's status stays
//! as it is). Every delivery is a `practice.attempt.scored` event for a new attempt,
//! signed before the clock starts; `wrk` ([`crate::wrk`]) replays them from a process of
//! its own over keep-alive connections, each delivery once. A short warm-up (other
//! deliveries, the in-process load generator) opens the runtime's connection pool first.
//!
//! Per run: deliveries/s, p50/p90/p99, non-2xx answers, deliveries sent vs rows stored
//! (and lost: answered `2xx` but not stored), CPU per delivery in the runtime's process,
//! in PostgreSQL and in wrk; and the share of the ceiling ([`crate::ceiling`]: pgbench
//! running the component's own statement per delivery at the same concurrency).
//!
//! Checks: no delivery lost, no non-2xx answer, every stored event `processed` with its
//! attempt, and every session's `attempt_count` equal to its attempts (a lost
//! concurrent update would show there).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use uuid::Uuid;
use voice_edge_shared::webhook_signature::{decode_secret, sign_webhook};
use voice_edge_testkit::child::ChildRuntime;

use crate::ceiling::{self, Ceiling};
use crate::cpu::{CpuSample, cpu_of_tree};
use crate::env::Env;
use crate::http1::Request;
use crate::load;
use crate::peer::{self, DenoPeer};
use crate::scenario::{Check, Limits, Report, Scenario, Table};
use crate::wrk::{self, SignedDelivery, WrkRun};

pub const SCENARIO: Scenario = Scenario {
    name: "webhook",
    description: "signed practice.attempt.scored deliveries replayed by wrk, under each runtime, beside pgbench's ceiling",
    target: "under Spin: >= 1.2x the Deno peer's deliveries/s at 8 and 16 connections, p99 <= 10 ms at 8, 0 lost",
    run,
};

pub const PATH: &str = "/functions/v1/practice-webhook";
pub const SESSIONS: usize = 2000;
pub const SENTENCES: usize = 3;
/// Deliveries prepared per second of measured load: more than any run here sends, so
/// that no wrk thread runs out (a run that does says so).
const DELIVERIES_PER_SECOND: usize = 4_000;
/// Deliveries of the warm-up (distinct from the measured ones).
const WARMUP: usize = 400;
const WARMUP_LIMIT: Duration = Duration::from_secs(120);

/// One measured run of one runtime at one connection count.
struct Measured {
    run: WrkRun,
    stored: i64,
    cpu_app: Duration,
    cpu_postgres: Duration,
}

/// What a measured run posts to: an app of ours under one runtime, or the Deno peer.
enum Target<'a> {
    App(&'a Env),
    Peer(&'a DenoPeer),
}

impl Target<'_> {
    fn label(&self) -> &'static str {
        match self {
            Target::App(env) => env.runtime.name(),
            Target::Peer(_) => "deno",
        }
    }
    fn addr(&self) -> Result<std::net::SocketAddr> {
        match self {
            Target::App(env) => env.addr(),
            Target::Peer(peer) => Ok(peer.addr()),
        }
    }
    fn pid(&self) -> u32 {
        match self {
            Target::App(env) => env.app.pid(),
            Target::Peer(peer) => peer.pid(),
        }
    }
    fn client(&self) -> postgres::Client {
        match self {
            Target::App(env) => env.client(),
            Target::Peer(peer) => peer.db.client(),
        }
    }
    fn data_dir(&self) -> &std::path::Path {
        match self {
            Target::App(env) => env.cluster().data_dir(),
            Target::Peer(peer) => peer.cluster().data_dir(),
        }
    }
    fn webhook_secret(&self) -> &str {
        match self {
            Target::App(env) => &env.webhook_secret,
            Target::Peer(peer) => &peer.webhook_secret,
        }
    }
    fn seed(&self, client: &mut postgres::Client) -> Result<Vec<Uuid>> {
        match self {
            Target::App(_) => seed_sessions(client),
            Target::Peer(_) => seed_peer_sessions(client),
        }
    }
}

fn run(runtimes: &[ChildRuntime], limits: &Limits) -> Result<Report> {
    let wrk = wrk::ensure_installed()?;
    let seconds = limits.seconds.round().max(1.0) as u64;
    let peer_folder = peer::folder();
    let mut columns = Vec::new();
    let variants = crate::env::reuse_variants(runtimes);
    for connections in &limits.connections {
        for (label, _, _) in &variants {
            columns.push(format!("{label}/{connections}"));
        }
        if peer_folder.is_some() {
            columns.push(format!("deno/{connections}"));
        }
        columns.push(format!("ceiling/{connections}"));
    }
    let mut report = Report {
        table: Table::new(columns),
        ..Report::default()
    };
    let mut column = 0;
    for &connections in &limits.connections {
        let mut measured = Vec::new();
        for (label, runtime, flags) in &variants {
            let env = Env::start_with_flags(runtime, false, flags)?;
            let result = measure(
                &Target::App(&env),
                &wrk,
                connections,
                seconds,
                &mut report.checks,
            )
            .with_context(|| format!("{label} at {connections} connections"))?;
            measured.push((column, result));
            column += 1;
        }
        let mut deno_rate = None;
        if let Some(folder) = &peer_folder {
            let peer = DenoPeer::start(folder).context("starting the Deno peer")?;
            if connections == limits.connections[0] {
                report.notes.push(format!(
                    "deno: {} (../shared/peers/deno-practice-webhook, npm:postgres pool of 10, its own database on a private cluster)",
                    peer.describe()
                ));
            }
            let result = measure(
                &Target::Peer(&peer),
                &wrk,
                connections,
                seconds,
                &mut report.checks,
            )
            .with_context(|| format!("the Deno peer at {connections} connections"))?;
            deno_rate = Some(result.run.rate());
            measured.push((column, result));
            column += 1;
        }
        let ceiling = ceiling::measure(connections, seconds)?;
        fill_ceiling(&mut report.table, column, &ceiling);
        for (column, result) in &measured {
            fill(&mut report.table, *column, result, &ceiling, deno_rate);
        }
        report.notes.extend(
            ceiling
                .notes
                .iter()
                .map(|note| format!("ceiling/{connections}: {note}")),
        );
        column += 1;
    }
    if peer_folder.is_none() {
        report.notes.push(
            "no Deno peer: ../shared/peers/deno-practice-webhook is not beside the project".into(),
        );
    }
    report.notes.push(format!(
        "each run: a fresh cluster and database, {SESSIONS} completed sessions of {SENTENCES} sentences, \
         {WARMUP} warm-up deliveries, then wrk for {seconds} s (2 threads); PostgreSQL at its default \
         durability (synchronous_commit on, fsync on)"
    ));
    report.notes.push(
        "CPU per delivery: user + system time of the runtime's (or Deno's) process tree, of every \
         PostgreSQL process of the cluster, and of wrk, divided by the deliveries answered"
            .into(),
    );
    Ok(report)
}

fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1e3)
}

fn per_delivery(cpu: Duration, deliveries: u64) -> String {
    format!("{:.3}", cpu.as_secs_f64() * 1e3 / deliveries.max(1) as f64)
}

fn fill(
    table: &mut Table,
    column: usize,
    measured: &Measured,
    ceiling: &Ceiling,
    deno_rate: Option<f64>,
) {
    let run = &measured.run;
    table.set("deliveries/s", column, format!("{:.0}", run.rate()));
    if let Some(deno) = deno_rate {
        table.set(
            "deliveries/s vs the Deno peer",
            column,
            format!("{:.2}x", run.rate() / deno.max(f64::EPSILON)),
        );
    }
    table.set("p50 ms", column, ms(run.p50));
    table.set("p90 ms", column, ms(run.p90));
    table.set("p99 ms", column, ms(run.p99));
    table.set("non-2xx", column, run.non_2xx.to_string());
    table.set(
        "sent / stored / lost",
        column,
        format!("{} / {} / {}", run.sent, measured.stored, lost(measured)),
    );
    table.set(
        "CPU ms/delivery: runtime",
        column,
        per_delivery(measured.cpu_app, run.answered),
    );
    table.set(
        "CPU ms/delivery: PostgreSQL",
        column,
        per_delivery(measured.cpu_postgres, run.answered),
    );
    table.set(
        "CPU ms/delivery: load generator",
        column,
        per_delivery(run.cpu, run.answered),
    );
    table.set(
        "share of the ceiling",
        column,
        format!(
            "{:.0} %",
            100.0 * run.rate() / ceiling.tps.max(f64::EPSILON)
        ),
    );
}

fn fill_ceiling(table: &mut Table, column: usize, ceiling: &Ceiling) {
    table.set("deliveries/s", column, format!("{:.0}", ceiling.tps));
    table.set("p50 ms", column, ms(ceiling.p50));
    table.set("p90 ms", column, ms(ceiling.p90));
    table.set("p99 ms", column, ms(ceiling.p99));
    table.set("non-2xx", column, format!("{} failed", ceiling.failed));
    table.set(
        "sent / stored / lost",
        column,
        format!("{} / {} / -", ceiling.transactions, ceiling.stored),
    );
    table.set("CPU ms/delivery: runtime", column, "-".into());
    table.set(
        "CPU ms/delivery: PostgreSQL",
        column,
        per_delivery(ceiling.cpu_postgres, ceiling.transactions),
    );
    table.set(
        "CPU ms/delivery: load generator",
        column,
        per_delivery(ceiling.cpu_pgbench, ceiling.transactions),
    );
    table.set("share of the ceiling", column, "100 %".into());
    table.set("deliveries/s vs the Deno peer", column, "-".into());
}

/// Answered without an error but not stored.
fn lost(measured: &Measured) -> i64 {
    let answered_ok = measured.run.answered.saturating_sub(measured.run.non_2xx) as i64;
    (answered_ok - measured.stored).max(0)
}

fn measure(
    target: &Target<'_>,
    wrk: &std::path::Path,
    connections: usize,
    seconds: u64,
    checks: &mut Vec<Check>,
) -> Result<Measured> {
    let mut client = target.client();
    let sessions = target.seed(&mut client)?;
    let key =
        decode_secret(target.webhook_secret()).ok_or_else(|| anyhow!("the bench's own secret"))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let total = WARMUP + DELIVERIES_PER_SECOND * seconds as usize;
    let deliveries: Vec<SignedDelivery> = (0..total)
        .map(|index| {
            let body = scored_event(index, sessions[index % sessions.len()]).to_string();
            let id = format!("msg_bench_{index:07}_{}", Uuid::new_v4().simple());
            SignedDelivery {
                signature: sign_webhook(&key, &id, now, body.as_bytes()),
                id,
                timestamp: now,
                body,
            }
        })
        .collect();
    let (warmup, measured) = deliveries.split_at(WARMUP);

    let addr = target.addr()?;
    let warmup_requests: Vec<Request> = warmup
        .iter()
        .map(|delivery| {
            let timestamp = delivery.timestamp.to_string();
            Request::post(
                addr,
                PATH,
                &[
                    ("content-type", "application/json"),
                    ("webhook-id", delivery.id.as_str()),
                    ("webhook-timestamp", timestamp.as_str()),
                    ("webhook-signature", delivery.signature.as_str()),
                ],
                delivery.body.as_bytes(),
            )
        })
        .collect();
    let warmed = load::drive(addr, &warmup_requests, connections, WARMUP_LIMIT);
    let warm_ok = warmed
        .answers
        .iter()
        .filter(|answer| matches!(&answer.result, Ok(response) if response.status == 200))
        .count();

    let file = target
        .data_dir()
        .parent()
        .unwrap_or(target.data_dir())
        .join(format!("bench-deliveries-{}.tsv", std::process::id()));
    wrk::write_deliveries(&file, measured)?;
    let app_before = cpu_of_tree(target.pid());
    let pg_before = CpuSample::take(target.data_dir());
    let run = wrk::replay(wrk, addr, PATH, &file, connections, seconds)?;
    let cpu_app = cpu_of_tree(target.pid()).saturating_sub(app_before);
    let cpu_postgres = CpuSample::take(target.data_dir())
        .since(&pg_before)
        .postgres;
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(file.with_extension("lua"));

    // Requests wrk left in flight when it stopped are still being applied: count once
    // the rows stop changing, everything in one snapshot.
    let counts = settled_counts(&mut client)?;
    let (events, processed, new_attempts, miscounted) = counts;
    let stored = events - warm_ok as i64;
    let measured_run = Measured {
        run,
        stored,
        cpu_app,
        cpu_postgres,
    };
    let label = format!("{}/{connections}", target.label());
    checks.push(Check::equal(
        &format!("{label}: warm-up answered 200"),
        warm_ok as i64,
        WARMUP as i64,
    ));
    checks.push(Check::equal(
        &format!("{label}: non-2xx answers"),
        run.non_2xx as i64,
        0,
    ));
    checks.push(Check::equal(
        &format!("{label}: socket errors"),
        run.socket_errors as i64,
        0,
    ));
    checks.push(Check::equal(
        &format!("{label}: lost (answered 2xx, not stored)"),
        lost(&measured_run),
        0,
    ));
    checks.push(Check::that(
        &format!("{label}: stored <= sent"),
        stored <= run.sent as i64,
        format!("{stored} stored of {} sent", run.sent),
    ));
    checks.push(Check::equal(
        &format!("{label}: every stored event processed"),
        processed,
        events,
    ));
    checks.push(Check::equal(
        &format!("{label}: one attempt per stored event"),
        new_attempts,
        events,
    ));
    checks.push(Check::equal(
        &format!("{label}: sessions whose attempt_count is not their attempts"),
        miscounted,
        0,
    ));
    checks.push(Check::equal(
        &format!("{label}: requests beyond the prepared deliveries"),
        run.exhausted as i64,
        0,
    ));
    Ok(measured_run)
}

/// Users and their completed sessions, one scored attempt per sentence each; returns
/// the session ids.
pub fn seed_sessions(client: &mut postgres::Client) -> Result<Vec<Uuid>> {
    let rows = client.query(
        "WITH users AS (
             INSERT INTO auth.users (id) SELECT gen_random_uuid() FROM generate_series(1, $1::int4)
             RETURNING id
         ), sessions AS (
             INSERT INTO practice_sessions
                 (user_id, status, transcript, sentences, attempt_count, pronunciation_score, is_passed)
             SELECT id, 'completed', 'One. Two. Three.', $2::jsonb, $3::int4, 80.00, true FROM users
             RETURNING id
         ), attempts AS (
             INSERT INTO practice_attempts
                 (session_id, sentence_index, status, pronunciation_score, is_passed, last_event_at)
             SELECT s.id, i, 'completed', 80.00, true, '2025-11-22T09:00:00Z'
               FROM sessions s CROSS JOIN generate_series(0, $3::int4 - 1) AS i
         )
         SELECT id FROM sessions",
        &[
            &(SESSIONS as i32),
            &json!(["One.", "Two.", "Three."]),
            &(SENTENCES as i32),
        ],
    )?;
    client.batch_execute("VACUUM ANALYZE")?;
    Ok(rows.iter().map(|row| row.get::<_, Uuid>("id")).collect())
}

/// The same sessions for the Deno peer's schema, which has no `auth` schema (user ids
/// are plain uuids) and keeps the user id on each attempt too.
fn seed_peer_sessions(client: &mut postgres::Client) -> Result<Vec<Uuid>> {
    let rows = client.query(
        "WITH sessions AS (
             INSERT INTO practice_sessions
                 (user_id, status, transcript, sentences, attempt_count, pronunciation_score, is_passed)
             SELECT gen_random_uuid(), 'completed', 'One. Two. Three.', $2::jsonb, $3::int4, 80.00, true
               FROM generate_series(1, $1::int4)
             RETURNING id, user_id
         ), attempts AS (
             INSERT INTO practice_attempts
                 (session_id, user_id, sentence_index, status, pronunciation_score, is_passed, last_event_at)
             SELECT s.id, s.user_id, i, 'completed', 80.00, true, '2025-11-22T09:00:00Z'
               FROM sessions s CROSS JOIN generate_series(0, $3::int4 - 1) AS i
         )
         SELECT id FROM sessions",
        &[
            &(SESSIONS as i32),
            &json!(["One.", "Two.", "Three."]),
            &(SENTENCES as i32),
        ],
    )?;
    client.batch_execute("VACUUM ANALYZE")?;
    Ok(rows.iter().map(|row| row.get::<_, Uuid>("id")).collect())
}

/// The `index`-th scored event: a new attempt of `session`, its sentence and score
/// varying with the index.
pub fn scored_event(index: usize, session: Uuid) -> Value {
    let score = (index * 37 % 100) as f64 + 0.5;
    let millis = index % 1000;
    let seconds = 10 * 3600 + index / 1000;
    json!({
        "type": "practice.attempt.scored",
        "timestamp": format!(
            "2025-11-22T{:02}:{:02}:{:02}.{millis:03}Z",
            seconds / 3600 % 24,
            seconds / 60 % 60,
            seconds % 60
        ),
        "data": {
            "session_id": session,
            "attempt_id": Uuid::new_v4(),
            "sentence_index": (index / SESSIONS) % SENTENCES,
            "pronunciation_score": score,
            "is_passed": score >= 60.0,
            "pronunciation_analysis": {"accuracy": score, "fluency": 78, "completeness": 100},
            "feedback_data": {"tips": ["Stress the second syllable of 'banana'."]},
            "transcription_results": {"text": "one two three", "confidence": 0.93},
            "word_level_scores": [
                {"word": "one", "score": 91.5, "start_ms": 0, "end_ms": 310},
                {"word": "two", "score": 84.0, "start_ms": 320, "end_ms": 640},
                {"word": "three", "score": 77.25, "start_ms": 650, "end_ms": 1020}
            ],
        }
    })
}

/// Event rows, processed ones, attempts beyond the seeded ones, and sessions whose
/// `attempt_count` is not their attempts: read in one statement once two reads 300 ms
/// apart agree.
fn settled_counts(client: &mut postgres::Client) -> Result<(i64, i64, i64, i64)> {
    let sql = format!(
        "SELECT (SELECT count(*) FROM webhook_events),
                (SELECT count(*) FROM webhook_events WHERE status = 'processed'),
                (SELECT count(*) - {} FROM practice_attempts),
                (SELECT count(*) FROM practice_sessions s
                  WHERE s.attempt_count <> (SELECT count(*) FROM practice_attempts a
                                             WHERE a.session_id = s.id))",
        SESSIONS * SENTENCES
    );
    let mut read = || -> Result<(i64, i64, i64, i64)> {
        let row = client.query_one(&sql, &[]).context("counting the rows")?;
        Ok((row.get(0), row.get(1), row.get(2), row.get(3)))
    };
    let mut last = read()?;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(300));
        let now = read()?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}
