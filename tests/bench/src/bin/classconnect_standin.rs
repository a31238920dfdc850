//! `classconnect-standin`: plays ClassConnect for a local run — signs practice events as
//! Standard Webhooks with `classconnect_webhook_secret` and posts them to the app.
//!
//! With `make up` running (its secrets and database URL are in `.local/dev.env`):
//!
//! ```sh
//! set -a; . .local/dev.env; set +a
//! cargo run --profile host -p voice-edge-bench --bin classconnect-standin
//! ```
//!
//! Without `--session` it creates a student and a practice session in `DB_URL`, then
//! sends what ClassConnect sends for it: the improved transcript, the sentence list,
//! three scored attempts, and the first delivery once more (answered `duplicate`), and
//! prints each answer and the session row. With `--session <uuid>` it sends one scored
//! attempt for that session and needs no database.
//!
//! Options: `--url` (default `http://127.0.0.1:3000/functions/v1/practice-webhook`),
//! `--secret` (default `$CLASSCONNECT_WEBHOOK_SECRET`), `--db-url` (default `$DB_URL`),
//! `--session`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use uuid::Uuid;
use voice_edge_bench::http1::{Connection, Request};
use voice_edge_shared::webhook_signature::{decode_secret, new_webhook_id, sign_webhook};

const DEFAULT_URL: &str = "http://127.0.0.1:3000/functions/v1/practice-webhook";

fn main() -> Result<()> {
    let mut url = DEFAULT_URL.to_string();
    let mut secret = std::env::var("CLASSCONNECT_WEBHOOK_SECRET").ok();
    let mut db_url = std::env::var("DB_URL").ok();
    let mut session: Option<Uuid> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--url" => url = value,
            "--secret" => secret = Some(value),
            "--db-url" => db_url = Some(value),
            "--session" => session = Some(value.parse().context("--session is a UUID")?),
            other => {
                bail!("unknown option {other} (see the top of src/bin/classconnect_standin.rs)")
            }
        }
    }
    let secret =
        secret.ok_or_else(|| anyhow!("give --secret or set CLASSCONNECT_WEBHOOK_SECRET"))?;
    let key = decode_secret(&secret)
        .filter(|key| key.len() >= 16)
        .ok_or_else(|| {
            anyhow!("the secret is not `whsec_` followed by base64 of 16 bytes or more")
        })?;
    let mut sender = Sender::connect(&url, key)?;

    if let Some(session) = session {
        return sender.send(&new_webhook_id(), &scored(session, 0, 88.5, true, 0));
    }
    let db_url = db_url
        .ok_or_else(|| anyhow!("give --session <uuid>, or --db-url (or DB_URL) to create one"))?;
    let mut client = postgres::Client::connect(&db_url, postgres::NoTls)
        .context("connecting to the database")?;
    let session = create_session(&mut client)?;
    println!("created practice session {session} (status processing)");

    let sentences = [
        "The quick brown fox.",
        "It jumps over the dog.",
        "The dog sleeps.",
    ];
    let first_id = new_webhook_id();
    let first = json!({"type": "practice.transcript.improved", "timestamp": at(0),
        "data": {"session_id": session, "improved_transcript": sentences.join(" ")}});
    sender.send(&first_id, &first)?;
    sender.send(
        &new_webhook_id(),
        &json!({"type": "practice.sentences.extracted", "timestamp": at(1),
                "data": {"session_id": session, "sentences": sentences}}),
    )?;
    for (index, (score, passed)) in [(91.0, true), (58.5, false), (77.25, true)]
        .into_iter()
        .enumerate()
    {
        sender.send(
            &new_webhook_id(),
            &scored(session, index, score, passed, 2 + index),
        )?;
    }
    println!("the first delivery again, as a sender's retry:");
    sender.send(&first_id, &first)?;

    let row = client.query_one(
        "SELECT to_jsonb(r) FROM (SELECT status, attempt_count,
                pronunciation_score::text AS pronunciation_score, is_passed
           FROM practice_sessions WHERE id = $1) r",
        &[&session],
    )?;
    println!("practice_sessions row: {}", row.get::<_, Value>(0));
    Ok(())
}

/// Signs and posts deliveries over one connection.
struct Sender {
    connection: Connection,
    addr: SocketAddr,
    path: String,
    key: Vec<u8>,
}

impl Sender {
    fn connect(url: &str, key: Vec<u8>) -> Result<Sender> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("--url must start with http://"))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let addr = authority
            .to_socket_addrs()
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .ok_or_else(|| anyhow!("{authority} has no address"))?;
        let connection = Connection::open(addr).with_context(|| format!("connecting to {url}"))?;
        Ok(Sender {
            connection,
            addr,
            path: format!("/{path}"),
            key,
        })
    }

    /// Signs `event` as delivery `id` with the current time and posts it.
    fn send(&mut self, id: &str, event: &Value) -> Result<()> {
        let body = event.to_string();
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
        let signature = sign_webhook(&self.key, id, timestamp, body.as_bytes());
        let timestamp = timestamp.to_string();
        let headers = [
            ("content-type", "application/json"),
            ("webhook-id", id),
            ("webhook-timestamp", timestamp.as_str()),
            ("webhook-signature", signature.as_str()),
        ];
        let request = Request::post(self.addr, &self.path, &headers, body.as_bytes());
        let response = self.connection.send(&request)?;
        println!(
            "  {id} {:<30} -> {} {}",
            event["type"].as_str().unwrap_or("?"),
            response.status,
            String::from_utf8_lossy(&response.body)
        );
        Ok(())
    }
}

/// A student and a practice session of theirs, as the Python back end creates them.
fn create_session(client: &mut postgres::Client) -> Result<Uuid> {
    let user = Uuid::new_v4();
    client.execute(
        "INSERT INTO auth.users (id, email) VALUES ($1, $2)",
        &[
            &user,
            &format!(
                "student-{}@example.invalid",
                &user.simple().to_string()[..8]
            ),
        ],
    )?;
    let row = client.query_one(
        "INSERT INTO practice_sessions (user_id, status, transcript)
         VALUES ($1, 'processing', 'the quick brown fox it jumps over the dog the dog sleeps')
         RETURNING id",
        &[&user],
    )?;
    Ok(row.get(0))
}

/// A scored attempt of `sentence_index`.
fn scored(session: Uuid, sentence_index: usize, score: f64, passed: bool, step: usize) -> Value {
    json!({
        "type": "practice.attempt.scored",
        "timestamp": at(step),
        "data": {
            "session_id": session,
            "attempt_id": Uuid::new_v4(),
            "sentence_index": sentence_index,
            "pronunciation_score": score,
            "is_passed": passed,
            "pronunciation_analysis": {"accuracy": score, "fluency": 80, "completeness": 100},
            "feedback_data": {"summary": if passed { "Well done." } else { "Try the vowels again." }},
            "transcription_results": {"text": "sample", "confidence": 0.9},
            "word_level_scores": [{"word": "sample", "score": score, "start_ms": 0, "end_ms": 480}],
        }
    })
}

/// The event time of step `step`: now plus `step` milliseconds, so the steps are ordered.
fn at(step: usize) -> String {
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(step as i64);
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
