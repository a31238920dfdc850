//! `webhook`: signed ClassConnect deliveries to `practice-webhook`.
//!
//! 2,000 practice sessions of three sentences each are seeded; every delivery is a
//! `practice.attempt.scored` event for a new attempt of one of them (round robin: about
//! ten attempts per session over 20,000 deliveries, a realistic size for the read of a
//! session's attempts), and one in twenty is a repeat of an earlier delivery, byte for
//! byte, as a sender's retry is (it may arrive while the original is being applied).
//! Each scored delivery takes the whole path: signature, the look-up of its id and of
//! the session with its attempts, and the one statement that writes the attempt, the
//! session and the event row (committing on its own); a repeat whose original is
//! stored is answered after the look-up, one still in flight takes the locked path.
//!
//! Afterwards the rows are counted: one `webhook_events` row and one attempt per
//! distinct delivery answered, each event processed exactly once, and every session's
//! `attempt_count` equal to its attempts (a lost concurrent update would show there).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use uuid::Uuid;
use voice_edge_shared::webhook_signature::{decode_secret, sign_webhook};

use crate::cpu::CpuSample;
use crate::env::Env;
use crate::http1::Request;
use crate::load::{self, Answer};
use crate::scenario::{Check, Limits, Outcome, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "webhook",
    description: "signed practice.attempt.scored deliveries to practice-webhook, 1 in 20 repeated",
    needs_openai: false,
    target: ">= 2,000 deliveries/s, p99 < 15 ms, 0 errors, 0 lost or doubled events",
    run,
};

const PATH: &str = "/functions/v1/practice-webhook";
const SESSIONS: usize = 2000;
const SENTENCES: usize = 3;
/// Every this many deliveries, one repeats the delivery sent ten before it.
const REPEAT_EVERY: usize = 20;
const REPEAT_DISTANCE: usize = 10;
/// The warm-up may take longer: the first requests open the host's connection pool.
const WARMUP_LIMIT: Duration = Duration::from_secs(120);

/// How the answers to one distinct delivery came out.
#[derive(Debug, Default)]
struct Outcomes {
    processed: usize,
    duplicate: usize,
    other: usize,
}

/// `status` of a `200` JSON answer.
fn answer_status(answer: &Answer) -> Option<String> {
    let response = answer
        .result
        .as_ref()
        .ok()
        .filter(|response| response.status == 200)?;
    let body: Value = serde_json::from_slice(&response.body).ok()?;
    body["status"].as_str().map(str::to_string)
}

/// A prepared delivery and what it must be answered.
struct Delivery {
    request: Request,
    repeat: bool,
}

fn run(env: &Env, limits: &Limits) -> Result<Outcome> {
    let mut client = env.client();
    let sessions = seed_sessions(&mut client)?;
    let key =
        decode_secret(&env.webhook_secret).ok_or_else(|| anyhow!("the bench's own secret"))?;
    let addr = env.addr()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;

    let total = limits.warmup + limits.requests;
    let mut deliveries: Vec<Delivery> = Vec::with_capacity(total);
    for index in 0..total {
        let repeat = index % REPEAT_EVERY == REPEAT_EVERY - 1;
        let delivery = if repeat {
            Delivery {
                request: deliveries[index - REPEAT_DISTANCE].request.clone(),
                repeat,
            }
        } else {
            let id = format!("bench_{index}");
            let body = scored_event(index, sessions[index % sessions.len()]).to_string();
            let signature = sign_webhook(&key, &id, now, body.as_bytes());
            let timestamp = now.to_string();
            let headers = [
                ("content-type", "application/json"),
                ("webhook-id", id.as_str()),
                ("webhook-timestamp", timestamp.as_str()),
                ("webhook-signature", signature.as_str()),
            ];
            Delivery {
                request: Request::post(addr, PATH, &headers, body.as_bytes()),
                repeat,
            }
        };
        deliveries.push(delivery);
    }
    let requests: Vec<Request> = deliveries.iter().map(|d| d.request.clone()).collect();

    let warmup = load::drive(
        addr,
        &requests[..limits.warmup],
        limits.connections,
        WARMUP_LIMIT,
    );
    let cpu_before = CpuSample::take(env.cluster().data_dir());
    let measured = load::drive(
        addr,
        &requests[limits.warmup..],
        limits.connections,
        Duration::from_secs_f64(limits.seconds),
    );
    let cpu = CpuSample::take(env.cluster().data_dir()).since(&cpu_before);

    // Per distinct delivery: how its answers (the original's and its repeat's, in
    // whichever order they were applied) came out. Exactly one must be `processed`.
    let mut outcomes: BTreeMap<usize, Outcomes> = BTreeMap::new();
    let mut examples = Vec::new();
    let phases = [(&warmup.answers, 0), (&measured.answers, limits.warmup)];
    for (answers, offset) in phases {
        for answer in answers {
            let index = offset + answer.index;
            let original = if deliveries[index].repeat {
                index - REPEAT_DISTANCE
            } else {
                index
            };
            let tally = outcomes.entry(original).or_default();
            match answer_status(answer).as_deref() {
                Some("processed") => tally.processed += 1,
                Some("duplicate") => tally.duplicate += 1,
                _ => {
                    tally.other += 1;
                    if examples.len() < 3 {
                        examples.push(describe(answer));
                    }
                }
            }
        }
    }
    let distinct = outcomes.len() as i64;
    let wrong = outcomes
        .values()
        .filter(|tally| tally.processed != 1 || tally.other != 0)
        .count();
    let repeats: usize = outcomes.values().map(|tally| tally.duplicate).sum();

    let checks = vec![
        Check {
            name: "deliveries not answered `processed` exactly once, repeats `duplicate`".into(),
            passed: wrong == 0,
            detail: format!(
                "{wrong} of {distinct} ({repeats} repeats answered `duplicate`){}",
                if examples.is_empty() {
                    String::new()
                } else {
                    format!(", e.g. {}", examples.join("; "))
                }
            ),
        },
        Check::equal(
            "webhook_events rows = distinct deliveries answered",
            count(&mut client, "SELECT count(*) FROM webhook_events")?,
            distinct,
        ),
        Check::equal(
            "events not processed exactly once",
            count(
                &mut client,
                "SELECT count(*) FROM webhook_events WHERE status <> 'processed' OR attempts <> 1",
            )?,
            0,
        ),
        Check::equal(
            "practice_attempts rows = distinct deliveries answered",
            count(&mut client, "SELECT count(*) FROM practice_attempts")?,
            distinct,
        ),
        Check::equal(
            "sessions whose attempt_count differs from their attempts",
            count(
                &mut client,
                "SELECT count(*) FROM practice_sessions s
                  WHERE s.attempt_count
                        <> (SELECT count(*) FROM practice_attempts a WHERE a.session_id = s.id)",
            )?,
            0,
        ),
    ];

    let mut notes = vec![format!(
        "warm-up: {} deliveries in {:.1} s; PostgreSQL fsync={}, synchronous_commit={}",
        warmup.answers.len(),
        warmup.elapsed.as_secs_f64(),
        setting(&mut client, "fsync")?,
        setting(&mut client, "synchronous_commit")?,
    )];
    let per_request =
        |spent: Duration| spent.as_secs_f64() * 1e3 / measured.answers.len().max(1) as f64;
    notes.push(format!(
        "CPU per delivery while measuring: {:.3} ms in this process (host, guest, load generator), {:.3} ms in PostgreSQL",
        per_request(cpu.this_process),
        per_request(cpu.postgres),
    ));
    let sessions: i64 = client
        .query_one(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )?
        .get(0);
    notes.push(format!(
        "PostgreSQL sessions opened on the database so far (pool and checks): {sessions}"
    ));
    if let Some(app) = env.app.app() {
        let instantiation = voice_edge_host::runtime()
            .block_on(app.measure_instantiation("practice-webhook", 300))?;
        notes.push(format!(
            "instantiating practice-webhook (fresh instance per request): mean {:.3} ms, p50 {:.3} ms, p99 {:.3} ms",
            instantiation.mean.as_secs_f64() * 1e3,
            instantiation.p50.as_secs_f64() * 1e3,
            instantiation.p99.as_secs_f64() * 1e3,
        ));
    }
    Ok(Outcome {
        load: measured,
        notes,
        checks,
    })
}

/// Users and their sessions, three sentences each; returns the session ids.
fn seed_sessions(client: &mut postgres::Client) -> Result<Vec<Uuid>> {
    let rows = client.query(
        "WITH users AS (
             INSERT INTO auth.users (id) SELECT gen_random_uuid() FROM generate_series(1, $1::int4)
             RETURNING id
         )
         INSERT INTO practice_sessions (user_id, status, transcript, sentences)
         SELECT id, 'analyzing', 'One. Two. Three.', $2::jsonb FROM users
         RETURNING id",
        &[&(SESSIONS as i32), &json!(["One.", "Two.", "Three."])],
    )?;
    Ok(rows.iter().map(|row| row.get::<_, Uuid>("id")).collect())
}

/// The `index`-th scored event: a new attempt of `session`, its sentence and score
/// varying with the index.
fn scored_event(index: usize, session: Uuid) -> Value {
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

fn count(client: &mut postgres::Client, sql: &str) -> Result<i64> {
    Ok(client
        .query_one(sql, &[])
        .with_context(|| sql.to_string())?
        .get(0))
}

fn setting(client: &mut postgres::Client, name: &str) -> Result<String> {
    Ok(client.query_one(&format!("SHOW {name}"), &[])?.get(0))
}

fn describe(answer: &Answer) -> String {
    match &answer.result {
        Ok(response) => format!(
            "#{} {} {}",
            answer.index,
            response.status,
            String::from_utf8_lossy(&response.body)
                .chars()
                .take(160)
                .collect::<String>()
        ),
        Err(error) => format!("#{} {error}", answer.index),
    }
}
