//! `retention`: a database that stops growing. For several minutes the app receives, at
//! a steady rate, ClassConnect deliveries, token mints, session metrics, error reports
//! and demo sessions with interactions, with every retention of
//! `data_retention_settings` shortened to [`RETENTION_SECONDS`] (rate-limit windows at
//! their 2-minute minimum). The cluster has no pg_cron, so the functions sweep after
//! their responses, at most once a minute (`public.retention_sweep_if_due`).
//!
//! Every [`SAMPLE_EVERY`] it records each table's rows and the database's size. The
//! figures are the rows at each minute's end and the peak of each minute; the check is
//! that each table levels off: its peak in the last minute is at most
//! [`LEVEL_TOLERANCE`] times its peak in the minute before (a table that kept growing
//! would be at 1.5 times or more at this rate), and the content of deliveries older
//! than the retention plus a minute is gone.
//!
//! ```sh
//! cargo run --profile host -p voice-edge-bench --bin voice-edge-bench -- retention
//! ```

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;
use voice_edge_shared::webhook_signature::{decode_secret, sign_webhook};
use voice_edge_testkit::child::ChildRuntime;

use super::webhook::{scored_event, seed_sessions};
use crate::env::Env;
use crate::http1::{Connection, Request};
use crate::scenario::{Check, Limits, Report, Scenario, Table};

pub const SCENARIO: Scenario = Scenario {
    name: "retention",
    description: "deliveries, tokens, metrics, errors and demo interactions for 4 minutes with retention at 20 s: every table levels off",
    target: "each table's peak in the last minute at most 1.2 x its peak in the minute before",
    run,
};

/// How long the load runs.
const DURATION: Duration = Duration::from_secs(240);
/// How often sizes are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Every retention, shortened.
const RETENTION_SECONDS: u32 = 20;
/// Rounds of requests a second (each round: one delivery, one token, one metrics
/// report, one error report, and every fifth round a demo session with interactions).
const ROUNDS_PER_SECOND: u32 = 10;
/// Students the requests come from, round robin (each far under its per-minute limits).
const STUDENTS: usize = 200;
/// The last minute's peak over the previous minute's, at most.
const LEVEL_TOLERANCE: f64 = 1.2;

/// The tables sampled.
const TABLES: [&str; 8] = [
    "webhook_events",
    "realtime_token_sessions",
    "voice_session_metrics",
    "voice_session_errors",
    "demo_voice_sessions",
    "demo_interactions",
    "rate_limits",
    "practice_attempts",
];

fn run(runtimes: &[ChildRuntime], _limits: &Limits) -> Result<Report> {
    let mut report = Report {
        table: Table::new(runtimes.iter().map(|r| r.name().to_string()).collect()),
        ..Report::default()
    };
    for (column, runtime) in runtimes.iter().enumerate() {
        let env = Env::start(runtime, true)?;
        measure(&env, column, &mut report)
            .with_context(|| format!("retention under {}", runtime.name()))?;
    }
    report.notes.push(format!(
        "load: {ROUNDS_PER_SECOND} rounds/s for {} s, each a delivery (scored attempt), a token, \
         a metrics report and an error report, every fifth also a demo session with 5 \
         interactions; retention {RETENTION_SECONDS} s for everything (rate-limit windows 2 min); \
         no pg_cron: the functions sweep after responses, at most once a minute. \
         practice_attempts is the platform's table: it keeps growing by design.",
        DURATION.as_secs()
    ));
    Ok(report)
}

/// One sample: seconds since the start, rows per table, the database's bytes.
struct Sample {
    at: f64,
    rows: Vec<i64>,
    bytes: i64,
}

fn measure(env: &Env, column: usize, report: &mut Report) -> Result<()> {
    let mut client = env.client();
    client.batch_execute(&format!(
        "UPDATE data_retention_settings SET
             delivery_content = '{RETENTION_SECONDS} seconds', delivery_rows = '{RETENTION_SECONDS} seconds',
             failed_deliveries = '{RETENTION_SECONDS} seconds', demo_interactions = '{RETENTION_SECONDS} seconds',
             demo_sessions = '{RETENTION_SECONDS} seconds', token_sessions = '{RETENTION_SECONDS} seconds',
             session_metrics = '{RETENTION_SECONDS} seconds', session_errors = '{RETENTION_SECONDS} seconds',
             search_cache = '{RETENTION_SECONDS} seconds', batch_size = 100000;
         UPDATE voice_feature_flags SET enabled = true, rollout_percentage = 100
          WHERE flag_name = 'voice_webrtc_migration';"
    ))?;
    let sessions = seed_sessions(&mut client)?;
    let students: Vec<(Uuid, String)> = client
        .query(
            "INSERT INTO auth.users (id) SELECT gen_random_uuid() FROM generate_series(1, $1::int4) \
             RETURNING id",
            &[&(STUDENTS as i32)],
        )?
        .iter()
        .map(|row| {
            let id: Uuid = row.get(0);
            (id, format!("Bearer {}", student_jwt(&env.jwt_secret, id)))
        })
        .collect();
    let activity: Uuid = client
        .query_one(
            "SELECT id FROM demo_activities WHERE is_published ORDER BY id LIMIT 1",
            &[],
        )?
        .get(0);
    let key = decode_secret(&env.webhook_secret).ok_or_else(|| anyhow!("the bench's secret"))?;
    let addr = env.addr()?;
    let mut connection = Connection::open(addr)?;
    let mut send = |request: &Request, expected: u16| -> Result<Vec<u8>> {
        if connection.is_closed() {
            connection = Connection::open(addr)?;
        }
        let response = connection.send(request)?;
        if response.status != expected {
            bail!(
                "answered {} (expected {expected}): {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            );
        }
        Ok(response.body)
    };

    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_sample = Duration::ZERO;
    let mut round: usize = 0;
    let tick = Duration::from_secs(1) / ROUNDS_PER_SECOND;
    while started.elapsed() < DURATION {
        if started.elapsed() >= next_sample {
            samples.push(sample(&mut client, started.elapsed().as_secs_f64())?);
            next_sample += SAMPLE_EVERY;
        }
        let (_, authorization) = &students[round % students.len()];
        let json_auth = [
            ("content-type", "application/json"),
            ("authorization", authorization.as_str()),
        ];
        // A delivery.
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
        let body = scored_event(round, sessions[round % sessions.len()]).to_string();
        let id = format!("msg_retention_{round:08}_{}", Uuid::new_v4().simple());
        let signature = sign_webhook(&key, &id, now, body.as_bytes());
        let timestamp = now.to_string();
        send(
            &Request::post(
                addr,
                "/functions/v1/practice-webhook",
                &[
                    ("content-type", "application/json"),
                    ("webhook-id", &id),
                    ("webhook-timestamp", &timestamp),
                    ("webhook-signature", &signature),
                ],
                body.as_bytes(),
            ),
            200,
        )?;
        // A token.
        send(
            &Request::post(
                addr,
                "/functions/v1/realtime-student-guide-token",
                &json_auth,
                json!({"persona": "student-tutor"}).to_string().as_bytes(),
            ),
            200,
        )?;
        // A session's metrics and an error.
        let session_id = Uuid::new_v4();
        send(
            &Request::post(
                addr,
                "/functions/v1/voice-monitoring/metrics",
                &json_auth,
                json!({
                    "implementation_type": "webrtc", "connection_success": true,
                    "connection_time_ms": 300, "avg_latency_ms": 200, "p95_latency_ms": 300,
                    "p99_latency_ms": 400, "audio_chunks_sent": 10, "audio_chunks_received": 10,
                    "buffer_underruns": 0, "reconnection_attempts": 0, "duration_ms": 60000,
                    "session_id": session_id,
                })
                .to_string()
                .as_bytes(),
            ),
            201,
        )?;
        send(
            &Request::post(
                addr,
                "/functions/v1/voice-monitoring/errors",
                &json_auth,
                json!({
                    "error_type": "network", "error_message": "ICE failed", "is_retryable": true,
                    "implementation_type": "webrtc", "session_id": session_id,
                })
                .to_string()
                .as_bytes(),
            ),
            201,
        )?;
        // Every fifth round, a demo session and what was said in it.
        if round.is_multiple_of(5) {
            let created = send(
                &Request::post(
                    addr,
                    "/functions/v1/realtime-voice-demo-relay/sessions",
                    &json_auth,
                    json!({"demo_activity_id": activity}).to_string().as_bytes(),
                ),
                201,
            )?;
            let created: Value = serde_json::from_slice(&created)?;
            let demo_session = created["session_id"]
                .as_str()
                .ok_or_else(|| anyhow!("no session_id: {created}"))?;
            let items: Vec<Value> = (0..5)
                .map(|index| {
                    json!({"interaction_type": "user_transcript", "transcript": format!("sentence {index}")})
                })
                .collect();
            send(
                &Request::post(
                    addr,
                    &format!(
                        "/functions/v1/realtime-voice-demo-relay/sessions/{demo_session}/interactions"
                    ),
                    &json_auth,
                    json!({"items": items}).to_string().as_bytes(),
                ),
                201,
            )?;
        }
        round += 1;
        let due = tick * round as u32;
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    samples.push(sample(&mut client, started.elapsed().as_secs_f64())?);

    let stale_content: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM webhook_events
                  WHERE received_at < now() - interval '{} seconds'
                    AND (payload <> '{{}}'::jsonb OR raw_body IS NOT NULL)",
                RETENTION_SECONDS + 70
            ),
            &[],
        )?
        .get(0);
    report.checks.push(Check::equal(
        &format!("{column}: deliveries with content older than retention + a minute"),
        stale_content,
        0,
    ));

    let minutes = (DURATION.as_secs() / 60) as usize;
    let peak = |table: usize, minute: usize| -> i64 {
        samples
            .iter()
            .filter(|s| s.at >= (minute * 60) as f64 && s.at < ((minute + 1) * 60) as f64 + 1.0)
            .map(|s| s.rows[table])
            .max()
            .unwrap_or(0)
    };
    for (index, name) in TABLES.iter().enumerate() {
        let peaks: Vec<String> = (0..minutes).map(|m| peak(index, m).to_string()).collect();
        report.table.set(
            &format!("{name}: peak rows per minute"),
            column,
            peaks.join(" / "),
        );
        if *name != "practice_attempts" {
            let last = peak(index, minutes - 1) as f64;
            let before = peak(index, minutes - 2) as f64;
            report.checks.push(Check::that(
                &format!("{column}: {name} levels off"),
                last <= before * LEVEL_TOLERANCE,
                format!("last minute's peak {last}, the minute before {before}"),
            ));
        }
    }
    let bytes: Vec<String> = (0..minutes)
        .map(|minute| {
            let peak = samples
                .iter()
                .filter(|s| s.at >= (minute * 60) as f64 && s.at < ((minute + 1) * 60) as f64 + 1.0)
                .map(|s| s.bytes)
                .max()
                .unwrap_or(0);
            format!("{:.1}", peak as f64 / 1_048_576.0)
        })
        .collect();
    report
        .table
        .set("database MiB, peak per minute", column, bytes.join(" / "));
    report.table.set(
        "requests",
        column,
        (round * 4 + round.div_ceil(5) * 2).to_string(),
    );
    Ok(())
}

fn sample(client: &mut postgres::Client, at: f64) -> Result<Sample> {
    let mut rows = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        rows.push(
            client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])?
                .get(0),
        );
    }
    let bytes = client
        .query_one("SELECT pg_database_size(current_database())", &[])?
        .get(0);
    Ok(Sample { at, rows, bytes })
}

/// A signed-in student's HS256 token, valid for an hour.
fn student_jwt(secret: &str, student: Uuid) -> String {
    let now = chrono::Utc::now().timestamp();
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let signing_input = format!(
        "{}.{}",
        encode(&json!({"alg": "HS256", "typ": "JWT"})),
        encode(&json!({
            "sub": student, "role": "authenticated", "aud": "authenticated",
            "iat": now, "exp": now + 3600,
        }))
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}
