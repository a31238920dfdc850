//! `practice-webhook` through the host against a real PostgreSQL (CONTRACT.md section 5):
//! signed ClassConnect deliveries applied exactly once and in order, refusals stored or
//! not as the contract says, replay, and a database outage.
//!
//! Deliveries are signed here with HMAC-SHA256 directly (not with the code under test);
//! the signature code itself is checked against the reference vectors in
//! `shared/fixtures/webhooks/`.
//!
//! ```sh
//! cargo build --target wasm32-wasip2 --release -p practice-webhook   # and the other five
//! cargo test --profile host -p voice-edge-integration --test practice_webhook
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;
use voice_edge_testkit::app::TestApp;
use voice_edge_testkit::pg::{PgCluster, TestDb};

const JWT_SECRET: &str = "practice-webhook-test-jwt-secret-0123456789";
/// 32 bytes of key each.
const SECRET: &str = "whsec_cHJhY3RpY2Utd2ViaG9vay10ZXN0LWtleS0wMDAwMDE=";
const OLD_SECRET: &str = "whsec_b2xkLXByYWN0aWNlLXdlYmhvb2stdGVzdC1rZXktMDE=";
const PATH: &str = "/functions/v1/practice-webhook";

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

fn post(url: &str, headers: &[(&str, String)], body: &[u8]) -> Response {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = ureq::http::Request::builder().method("POST").uri(url);
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let request = request.body(body.to_vec()).expect("a valid request");
    let mut response = agent.run(request).expect("the app answers");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_string()))
        .collect();
    let text = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Response {
        status,
        headers,
        body,
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The `v1,<base64>` signature a Standard Webhooks sender computes.
fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// An HS256 Supabase JWT with `role`.
fn jwt(role: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = json!({
        "sub": Uuid::new_v4().to_string(),
        "role": role,
        "iat": now_unix(),
        "exp": now_unix() + 600,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(JWT_SECRET.as_bytes()).unwrap();
    mac.update(format!("{header}.{claims}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{claims}.{signature}")
}

/// An RFC 3339 time `offset` seconds from a fixed moment: events are ordered by it.
fn event_time(offset: i64) -> String {
    let seconds = 10 * 3600 + offset; // from 2025-11-22T00:00:00Z; stays within the day
    format!(
        "2025-11-22T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

fn scored(session: Uuid, attempt: Uuid, index: i32, score: f64, passed: bool, at: i64) -> Value {
    json!({
        "type": "practice.attempt.scored",
        "timestamp": event_time(at),
        "data": {
            "session_id": session,
            "attempt_id": attempt,
            "sentence_index": index,
            "pronunciation_score": score,
            "is_passed": passed,
            "pronunciation_analysis": {"accuracy": score, "fluency": 80},
            "feedback_data": {"tips": ["Stress the second syllable."]},
            "transcription_results": {"text": "the quick brown fox"},
            "word_level_scores": [
                {"word": "quick", "score": 91.5, "start_ms": 120, "end_ms": 480}
            ],
        }
    })
}

/// One database and the app pointed at it.
struct World {
    db: TestDb,
    app: TestApp,
}

impl World {
    fn new() -> World {
        World::with(TestDb::create(), SECRET)
    }

    fn with(db: TestDb, webhook_secret: &str) -> World {
        World::with_flags(db, webhook_secret, &[])
    }

    /// An app served with these `spin up` flags (instance reuse, idle timeout).
    fn with_flags(db: TestDb, webhook_secret: &str, flags: &[(&str, &str)]) -> World {
        let mut vars = db.app_vars();
        vars.push(("supabase_jwt_secret".into(), JWT_SECRET.into()));
        vars.push(("classconnect_webhook_secret".into(), webhook_secret.into()));
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let app = if flags.is_empty() {
            TestApp::start(&pairs)
        } else {
            TestApp::start_with_flags(&pairs, flags)
        };
        World { db, app }
    }

    /// The instance id in the log line of the delivery `id` (`"instance": {"id"}`).
    fn instance_of(&self, id_in_route_log: usize) -> String {
        let lines: Vec<Value> = self
            .app
            .logs()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["function"] == "practice-webhook" && line.get("instance").is_some())
            .collect();
        lines[id_in_route_log]["instance"]["id"]
            .as_str()
            .expect("the log line names its instance")
            .to_string()
    }

    /// Posts `body` signed with `secret` now, as ClassConnect does.
    fn deliver_signed(&self, secret: &str, id: &str, body: &[u8]) -> Response {
        let timestamp = now_unix();
        self.post_delivery(id, timestamp, &sign(secret, id, timestamp, body), body)
    }

    fn deliver(&self, id: &str, event: &Value) -> Response {
        self.deliver_signed(SECRET, id, event.to_string().as_bytes())
    }

    fn post_delivery(&self, id: &str, timestamp: i64, signature: &str, body: &[u8]) -> Response {
        let headers = [
            ("content-type", "application/json".to_string()),
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature.to_string()),
        ];
        post(&self.app.url(PATH), &headers, body)
    }

    fn replay(&self, token: Option<&str>, body: &Value) -> Response {
        let mut headers = vec![("content-type", "application/json".to_string())];
        if let Some(token) = token {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        post(
            &self.app.url(&format!("{PATH}/replay")),
            &headers,
            body.to_string().as_bytes(),
        )
    }

    /// A user and a practice session of theirs, with the given sentence list.
    fn session(&self, sentences: Option<&[&str]>, status: &str) -> Uuid {
        let session = Uuid::new_v4();
        self.session_with_id(session, sentences, status);
        session
    }

    fn session_with_id(&self, session: Uuid, sentences: Option<&[&str]>, status: &str) {
        let user = Uuid::new_v4();
        let sentences = sentences.map(|list| json!(list));
        let mut client = self.db.client();
        client
            .execute("INSERT INTO auth.users (id) VALUES ($1)", &[&user])
            .unwrap();
        client
            .execute(
                "INSERT INTO practice_sessions (id, user_id, status, transcript, sentences)
                 VALUES ($1, $2, $3, 'the quick brown fox', $4)",
                &[&session, &user, &status, &sentences],
            )
            .unwrap();
    }

    fn session_row(&self, session: Uuid) -> Value {
        self.row(
            "SELECT status, attempt_count, pronunciation_score::text AS pronunciation_score,
                    is_passed, improved_transcript, sentences, error_message
               FROM practice_sessions WHERE id = $1",
            session,
        )
    }

    fn attempt_row(&self, attempt: Uuid) -> Value {
        self.row(
            "SELECT session_id::text AS session_id, status, sentence_index,
                    pronunciation_score::text AS pronunciation_score, is_passed,
                    pronunciation_analysis, feedback_data, transcription_results,
                    word_level_scores, error_message,
                    (last_event_at AT TIME ZONE 'UTC')::text AS last_event_at
               FROM practice_attempts WHERE id = $1",
            attempt,
        )
    }

    fn event_row(&self, id: &str) -> Value {
        let mut client = self.db.client();
        let rows = client
            .query(
                "SELECT to_jsonb(e) - 'received_at' - 'processed_at' AS row
                   FROM webhook_events e WHERE id = $1",
                &[&id],
            )
            .unwrap();
        rows.first().map_or(Value::Null, |row| row.get("row"))
    }

    fn row(&self, sql: &str, id: Uuid) -> Value {
        let mut client = self.db.client();
        let sql = format!("SELECT to_jsonb(r) AS row FROM ({sql}) r");
        let rows = client.query(&sql, &[&id]).unwrap();
        rows.first().map_or(Value::Null, |row| row.get("row"))
    }

    fn count(&self, sql: &str) -> i64 {
        self.db.client().query_one(sql, &[]).unwrap().get(0)
    }
}

fn assert_status(response: &Response, status: u16) {
    assert_eq!(response.status, status, "body: {}", response.body);
}

#[test]
fn signed_delivery_is_processed_and_rows_hold_the_results() {
    let world = World::new();
    let session = world.session(Some(&["The quick brown fox."]), "analyzing");
    let attempt = Uuid::new_v4();
    let event = scored(session, attempt, 0, 87.456, true, 0);

    let response = world.deliver("msg_signed_1", &event);
    assert_status(&response, 200);
    assert_eq!(response.body, json!({"status": "processed"}));
    assert!(response.header("x-request-id").is_some());

    let row = world.attempt_row(attempt);
    assert_eq!(row["session_id"], session.to_string());
    assert_eq!(row["status"], "completed");
    assert_eq!(row["sentence_index"], 0);
    assert_eq!(row["pronunciation_score"], "87.46");
    assert_eq!(row["is_passed"], true);
    assert_eq!(
        row["pronunciation_analysis"],
        event["data"]["pronunciation_analysis"]
    );
    assert_eq!(row["feedback_data"], event["data"]["feedback_data"]);
    assert_eq!(
        row["transcription_results"],
        event["data"]["transcription_results"]
    );
    assert_eq!(row["word_level_scores"], event["data"]["word_level_scores"]);
    assert_eq!(row["last_event_at"], "2025-11-22 10:00:00");

    let row = world.session_row(session);
    assert_eq!(row["status"], "completed");
    assert_eq!(row["attempt_count"], 1);
    assert_eq!(row["pronunciation_score"], "87.46");
    assert_eq!(row["is_passed"], true);

    let row = world.event_row("msg_signed_1");
    assert_eq!(row["event_type"], "practice.attempt.scored");
    assert_eq!(row["status"], "processed");
    assert_eq!(
        row["payload"], event,
        "the event row holds the payload as sent"
    );
    assert_eq!(row["attempts"], 1);
    assert_eq!(row["error"], Value::Null);
}

#[test]
fn every_event_type_shapes_its_row() {
    let world = World::new();
    let session = world.session(None, "processing");
    let improved = json!({"type": "practice.transcript.improved", "timestamp": event_time(0),
        "data": {"session_id": session, "improved_transcript": "The quick brown fox jumps."}});
    assert_status(&world.deliver("msg_types_1", &improved), 200);
    let sentences = json!({"type": "practice.sentences.extracted", "timestamp": event_time(1),
        "data": {"session_id": session, "sentences": ["The quick brown fox.", "It jumps."]}});
    assert_status(&world.deliver("msg_types_2", &sentences), 200);
    let row = world.session_row(session);
    assert_eq!(row["improved_transcript"], "The quick brown fox jumps.");
    assert_eq!(
        row["sentences"],
        json!(["The quick brown fox.", "It jumps."])
    );
    assert_eq!(row["status"], "analyzing", "processing → analyzing");

    let attempt = Uuid::new_v4();
    let failed = json!({"type": "practice.attempt.failed", "timestamp": event_time(2),
        "data": {"session_id": session, "attempt_id": attempt, "error_message": "No speech detected"}});
    assert_status(&world.deliver("msg_types_3", &failed), 200);
    let row = world.attempt_row(attempt);
    assert_eq!(row["status"], "failed");
    assert_eq!(row["error_message"], "No speech detected");
    assert_eq!(world.session_row(session)["attempt_count"], 1);

    let session_failed = json!({"type": "practice.session.failed", "timestamp": event_time(3),
        "data": {"session_id": session, "error_message": "Analysis timed out"}});
    assert_status(&world.deliver("msg_types_4", &session_failed), 200);
    let row = world.session_row(session);
    assert_eq!(row["status"], "failed");
    assert_eq!(row["error_message"], "Analysis timed out");

    // Forward only: a later sentence list does not take a failed session back.
    let again = json!({"type": "practice.sentences.extracted", "timestamp": event_time(4),
        "data": {"session_id": session, "sentences": ["One."]}});
    assert_status(&world.deliver("msg_types_5", &again), 200);
    assert_eq!(world.session_row(session)["status"], "failed");
}

#[test]
fn the_same_delivery_ten_times_is_processed_once() {
    let world = World::new();
    let session = world.session(Some(&["One.", "Two.", "Three."]), "analyzing");
    let event = scored(session, Uuid::new_v4(), 0, 80.0, true, 0);
    let answers: Vec<Value> = (0..10)
        .map(|_| {
            let response = world.deliver("msg_repeat", &event);
            assert_status(&response, 200);
            response.body["status"].clone()
        })
        .collect();
    assert_eq!(answers[0], "processed");
    assert!(
        answers[1..].iter().all(|answer| answer == "duplicate"),
        "{answers:?}"
    );
    assert_eq!(world.event_row("msg_repeat")["attempts"], 1);
    assert_eq!(world.count("SELECT count(*) FROM practice_attempts"), 1);
    assert_eq!(world.session_row(session)["attempt_count"], 1);
}

#[test]
fn the_same_delivery_ten_times_at_once_is_processed_once() {
    let world = World::new();
    let session = world.session(Some(&["One.", "Two."]), "analyzing");
    let attempt = Uuid::new_v4();
    let body = scored(session, attempt, 1, 64.5, false, 0).to_string();
    let timestamp = now_unix();
    let signature = sign(SECRET, "msg_concurrent", timestamp, body.as_bytes());
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                scope.spawn(|| {
                    let response = world.post_delivery(
                        "msg_concurrent",
                        timestamp,
                        &signature,
                        body.as_bytes(),
                    );
                    (response.status, response.body["status"].clone())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    let processed = answers
        .iter()
        .filter(|(_, answer)| answer == "processed")
        .count();
    let duplicates = answers
        .iter()
        .filter(|(_, answer)| answer == "duplicate")
        .count();
    assert_eq!((processed, duplicates), (1, 9), "{answers:?}");
    assert_eq!(world.count("SELECT count(*) FROM webhook_events"), 1);
    assert_eq!(world.event_row("msg_concurrent")["attempts"], 1);
    assert_eq!(world.count("SELECT count(*) FROM practice_attempts"), 1);
    let row = world.session_row(session);
    assert_eq!(row["attempt_count"], 1);
    assert_eq!(row["pronunciation_score"], "64.50");
}

#[test]
fn an_older_scored_event_arriving_late_does_not_overwrite_the_newer_one() {
    let world = World::new();
    let session = world.session(None, "analyzing");
    let attempt = Uuid::new_v4();
    let newer = scored(session, attempt, 0, 92.0, true, 20);
    let older = scored(session, attempt, 0, 35.0, false, 10);
    assert_status(&world.deliver("msg_t2", &newer), 200);
    let response = world.deliver("msg_t1", &older);
    assert_status(&response, 200);
    assert_eq!(
        response.body["status"], "processed",
        "received and superseded"
    );

    let row = world.attempt_row(attempt);
    assert_eq!(row["pronunciation_score"], "92.00");
    assert_eq!(row["is_passed"], true);
    assert_eq!(row["last_event_at"], "2025-11-22 10:00:20");
    let row = world.session_row(session);
    assert_eq!(row["pronunciation_score"], "92.00");
    assert_eq!(row["is_passed"], true);
    assert_eq!(world.event_row("msg_t1")["status"], "processed");
}

#[test]
fn three_sentences_are_scored_and_completed_exactly_as_defined_with_a_re_attempt() {
    let world = World::new();
    let session = world.session(Some(&["One.", "Two.", "Three."]), "analyzing");
    let step = |id: &str, index: i32, score: f64, passed: bool, at: i64| {
        let response = world.deliver(
            id,
            &scored(session, Uuid::new_v4(), index, score, passed, at),
        );
        assert_status(&response, 200);
        world.session_row(session)
    };

    let row = step("msg_s0", 0, 80.0, true, 1);
    assert_eq!(
        (
            &row["status"],
            &row["attempt_count"],
            &row["pronunciation_score"],
            &row["is_passed"]
        ),
        (
            &json!("analyzing"),
            &json!(1),
            &json!("80.00"),
            &json!(false)
        )
    );
    let row = step("msg_s1", 1, 40.0, false, 2);
    assert_eq!(row["pronunciation_score"], "60.00");
    assert_eq!(row["status"], "analyzing");
    assert_eq!(row["is_passed"], false);

    // The third sentence completes the session; sentence 1 has not passed.
    let row = step("msg_s2", 2, 71.0, true, 3);
    assert_eq!(row["status"], "completed");
    assert_eq!(row["attempt_count"], 3);
    assert_eq!(row["pronunciation_score"], "63.67"); // (80 + 40 + 71) / 3 = 63.666…
    assert_eq!(row["is_passed"], false);

    // A re-attempt of sentence 1 replaces its score: (80 + 95.5 + 71) / 3 = 82.1666…
    let row = step("msg_s1_again", 1, 95.5, true, 4);
    assert_eq!(row["status"], "completed");
    assert_eq!(row["attempt_count"], 4);
    assert_eq!(row["pronunciation_score"], "82.17");
    assert_eq!(row["is_passed"], true);
}

#[test]
fn unsigned_stale_or_tampered_deliveries_get_401_and_nothing_is_stored() {
    let world = World::new();
    let session = world.session(None, "analyzing");
    let body = scored(session, Uuid::new_v4(), 0, 50.0, true, 0).to_string();
    let bytes = body.as_bytes();
    let now = now_unix();
    let good = sign(SECRET, "msg_refused", now, bytes);
    let tampered = body.replacen("50", "51", 1);
    let other_key = "whsec_c29tZW9uZS1lbHNlcy1rZXktMDAwMDAwMDAwMDAwMDA=";

    let cases: Vec<(&str, Headers, &[u8])> = vec![
        (
            "bad signature",
            headers(
                "msg_refused",
                now,
                &sign(other_key, "msg_refused", now, bytes),
            ),
            bytes,
        ),
        (
            "tampered body",
            headers("msg_refused", now, &good),
            tampered.as_bytes(),
        ),
        (
            "stale timestamp",
            headers(
                "msg_refused",
                now - 301,
                &sign(SECRET, "msg_refused", now - 301, bytes),
            ),
            bytes,
        ),
        (
            // 30 s past the tolerance, not 1: the function reads its clock after this
            // test does, so a loaded machine could bring `now + 301` back inside it.
            // The exact boundary is unit-tested with a fixed clock (webhook_signature).
            "future timestamp",
            headers(
                "msg_refused",
                now + 330,
                &sign(SECRET, "msg_refused", now + 330, bytes),
            ),
            bytes,
        ),
        (
            "v1a only",
            headers("msg_refused", now, &good.replacen("v1,", "v1a,", 1)),
            bytes,
        ),
    ];
    let missing = ["webhook-id", "webhook-timestamp", "webhook-signature"].map(|name| {
        let mut list = headers("msg_refused", now, &good);
        list.retain(|(key, _)| *key != name);
        (name, list, bytes)
    });
    for (case, headers, body) in cases.into_iter().chain(missing) {
        let response = post(&world.app.url(PATH), &headers, body);
        assert_eq!(response.status, 401, "{case}: {}", response.body);
        assert_eq!(
            response.body,
            json!({"code": 401, "message": "Invalid webhook signature", "error": "invalid_signature"}),
            "{case}"
        );
        assert_eq!(
            response.header("access-control-allow-origin"),
            Some("*"),
            "{case}"
        );
    }
    assert_eq!(world.count("SELECT count(*) FROM webhook_events"), 0);
    assert_eq!(world.count("SELECT count(*) FROM practice_attempts"), 0);
    assert_eq!(world.session_row(session)["attempt_count"], 0);
}

type Headers = Vec<(&'static str, String)>;

fn headers(id: &str, timestamp: i64, signature: &str) -> Headers {
    vec![
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature.to_string()),
    ]
}

#[test]
fn during_secret_rotation_both_secrets_verify() {
    let world = World::with(TestDb::create(), &format!("{OLD_SECRET} {SECRET}"));
    let session = world.session(Some(&["One.", "Two."]), "analyzing");
    let first = scored(session, Uuid::new_v4(), 0, 70.0, true, 1).to_string();
    let second = scored(session, Uuid::new_v4(), 1, 90.0, true, 2).to_string();
    assert_status(
        &world.deliver_signed(OLD_SECRET, "msg_old_key", first.as_bytes()),
        200,
    );
    assert_status(
        &world.deliver_signed(SECRET, "msg_new_key", second.as_bytes()),
        200,
    );
    let row = world.session_row(session);
    assert_eq!(row["pronunciation_score"], "80.00");
    assert_eq!(row["status"], "completed");
}

#[test]
fn invalid_deliveries_are_stored_failed_and_a_replay_succeeds_once_the_session_exists() {
    let world = World::new();
    let known = world.session(None, "analyzing");
    let unknown = Uuid::new_v4();

    let response = world.deliver_signed(
        SECRET,
        "msg_malformed",
        b"{\"type\": \"practice.attempt.scored\",",
    );
    assert_status(&response, 400);
    assert_eq!(response.body["error"], "invalid_request");
    let row = world.event_row("msg_malformed");
    assert_eq!(
        (&row["status"], &row["event_type"]),
        (&json!("failed"), &json!("unknown"))
    );
    assert!(
        row["payload"].as_str().unwrap().starts_with("{\"type\""),
        "the raw text is kept"
    );

    let mut no_session = scored(known, Uuid::new_v4(), 0, 50.0, true, 0);
    no_session["data"]
        .as_object_mut()
        .unwrap()
        .remove("session_id");
    let response = world.deliver("msg_no_session", &no_session);
    assert_status(&response, 400);
    assert_eq!(response.body["field"], "data.session_id");
    let row = world.event_row("msg_no_session");
    assert_eq!(row["status"], "failed");
    assert!(
        row["error"].as_str().unwrap().contains("data.session_id"),
        "{row}"
    );

    let response = world.deliver("msg_101", &scored(known, Uuid::new_v4(), 0, 101.0, true, 0));
    assert_status(&response, 400);
    assert_eq!(response.body["field"], "data.pronunciation_score");
    assert_eq!(world.event_row("msg_101")["status"], "failed");

    let attempt = Uuid::new_v4();
    let orphan = scored(unknown, attempt, 0, 77.0, true, 0);
    let response = world.deliver("msg_unknown_session", &orphan);
    assert_status(&response, 404);
    assert_eq!(response.body["error"], "not_found");
    let row = world.event_row("msg_unknown_session");
    assert_eq!(row["status"], "failed");
    assert!(
        row["error"]
            .as_str()
            .unwrap()
            .contains(&unknown.to_string()),
        "{row}"
    );
    assert_eq!(world.count("SELECT count(*) FROM practice_attempts"), 0);
    assert_eq!(
        world.session_row(known)["attempt_count"],
        0,
        "nothing else was written"
    );

    // The session appears; an operator replays the failed event.
    world.session_with_id(unknown, None, "analyzing");
    let response = world.replay(
        Some(&jwt("service_role")),
        &json!({"event_id": "msg_unknown_session"}),
    );
    assert_status(&response, 200);
    assert_eq!(
        response.body,
        json!({"replayed": 1, "results": [{"event_id": "msg_unknown_session", "status": "processed"}]})
    );
    let row = world.event_row("msg_unknown_session");
    assert_eq!(
        (&row["status"], &row["attempts"], &row["error"]),
        (&json!("processed"), &json!(2), &Value::Null)
    );
    assert_eq!(world.attempt_row(attempt)["pronunciation_score"], "77.00");
    assert_eq!(world.session_row(unknown)["status"], "completed");

    // Replaying what is still failed reports each; the invalid ones stay failed.
    let response = world.replay(Some(&jwt("service_role")), &json!({"status": "failed"}));
    assert_status(&response, 200);
    assert_eq!(response.body["replayed"], 3);
    let results = response.body["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .all(|result| result["status"] == "failed" && result["code"] == 400),
        "{results:?}"
    );
    assert_eq!(world.event_row("msg_101")["attempts"], 2);
}

#[test]
fn a_senders_retry_of_a_failed_event_is_processed_not_called_a_duplicate() {
    let world = World::new();
    let session = Uuid::new_v4();
    let event = scored(session, Uuid::new_v4(), 0, 66.0, false, 0);
    assert_status(&world.deliver("msg_retry", &event), 404);
    world.session_with_id(session, None, "analyzing");
    let response = world.deliver("msg_retry", &event);
    assert_status(&response, 200);
    assert_eq!(response.body, json!({"status": "processed"}));
    assert_eq!(world.event_row("msg_retry")["attempts"], 2);
    assert_eq!(
        world.deliver("msg_retry", &event).body,
        json!({"status": "duplicate"})
    );
    assert_eq!(world.session_row(session)["pronunciation_score"], "66.00");
}

#[test]
fn replay_needs_a_service_role_jwt() {
    let world = World::new();
    let response = world.replay(None, &json!({"status": "failed"}));
    assert_status(&response, 401);
    assert_eq!(response.body["error"], "missing_authorization");
    let response = world.replay(Some(&jwt("authenticated")), &json!({"status": "failed"}));
    assert_status(&response, 403);
    let response = world.replay(
        Some(&jwt("service_role")),
        &json!({"event_id": "msg_never_sent"}),
    );
    assert_status(&response, 404);
    let response = world.replay(Some(&jwt("service_role")), &json!({}));
    assert_status(&response, 400);
}

#[test]
fn an_unknown_event_type_is_acknowledged_with_202_and_stored_as_ignored() {
    let world = World::new();
    let event =
        json!({"type": "practice.audio.archived", "timestamp": event_time(0), "data": {"x": 1}});
    let response = world.deliver("msg_unknown_type", &event);
    assert_status(&response, 202);
    assert_eq!(response.body, json!({"status": "ignored"}));
    let row = world.event_row("msg_unknown_type");
    assert_eq!(row["status"], "ignored");
    assert_eq!(row["event_type"], "practice.audio.archived");
    assert_eq!(row["payload"], event);
    assert_eq!(
        world.deliver("msg_unknown_type", &event).body,
        json!({"status": "duplicate"})
    );
}

#[test]
fn a_scored_event_for_another_sessions_attempt_is_400_and_stored_failed() {
    let world = World::new();
    let first = world.session(None, "analyzing");
    let second = world.session(None, "analyzing");
    let attempt = Uuid::new_v4();
    assert_status(
        &world.deliver("msg_owner", &scored(first, attempt, 0, 50.0, true, 0)),
        200,
    );
    let response = world.deliver("msg_thief", &scored(second, attempt, 0, 99.0, true, 1));
    assert_status(&response, 400);
    assert_eq!(response.body["field"], "data.attempt_id");
    assert_eq!(world.attempt_row(attempt)["pronunciation_score"], "50.00");
    assert_eq!(world.session_row(second)["attempt_count"], 0);
    assert_eq!(world.event_row("msg_thief")["status"], "failed");
}

#[test]
fn a_body_over_256_kib_is_413_and_nothing_is_stored() {
    let world = World::new();
    let session = world.session(None, "analyzing");
    let mut event = scored(session, Uuid::new_v4(), 0, 50.0, true, 0);
    event["data"]["feedback_data"] = json!({"padding": "x".repeat(256 * 1024)});
    let body = event.to_string().into_bytes();
    let timestamp = now_unix();
    let signature = sign(SECRET, "msg_big", timestamp, &body);
    let timestamp = timestamp.to_string();
    // Written while the answer is read: the app refuses at the limit and stops reading.
    let response = voice_edge_integration::post_while_sending(
        &world.app.url(PATH),
        &[
            ("content-type", "application/json"),
            ("webhook-id", "msg_big"),
            ("webhook-timestamp", &timestamp),
            ("webhook-signature", &signature),
        ],
        body,
    );
    assert_eq!(response.status, 413, "{}", response.text);
    assert_eq!(response.body["error"], "payload_too_large");
    assert_eq!(world.count("SELECT count(*) FROM webhook_events"), 0);
}

#[test]
fn other_methods_get_405_and_unknown_routes_404() {
    let world = World::new();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent.get(&world.app.url(PATH)).call().unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers().get("allow").unwrap(), "POST, OPTIONS");
    let response = post(&world.app.url(&format!("{PATH}/elsewhere")), &[], b"{}");
    assert_status(&response, 404);
}

#[test]
fn a_webhook_secret_under_16_bytes_is_a_configuration_error_named_in_the_log() {
    // 15 bytes of key.
    let world = World::with(TestDb::create(), "whsec_MTIzNDU2Nzg5MDEyMzQ1");
    let response = world.deliver("msg_config", &json!({"type": "x"}));
    assert_status(&response, 500);
    assert_eq!(response.body["error"], "configuration_error");
    assert!(!response.body.to_string().contains("MTIzNDU2"));
    let logs = world.app.logs().join("\n");
    assert!(logs.contains("classconnect_webhook_secret"), "{logs}");
    assert!(!logs.contains("MTIzNDU2"), "the secret must not be logged");
    assert_eq!(world.count("SELECT count(*) FROM webhook_events"), 0);
}

#[test]
fn with_postgres_stopped_a_delivery_gets_503_and_the_senders_retry_is_processed_once() {
    let cluster = PgCluster::start_private();
    let world = World::with(TestDb::create_in(&cluster), SECRET);
    let session = world.session(Some(&["One."]), "analyzing");
    let attempt = Uuid::new_v4();
    let event = scored(session, attempt, 0, 88.0, true, 0);
    assert_status(
        &world.deliver(
            "msg_before",
            &scored(session, Uuid::new_v4(), 0, 10.0, false, -5),
        ),
        200,
    );

    cluster.stop();
    let response = world.deliver("msg_outage", &event);
    assert_status(&response, 503);
    assert_eq!(response.body["error"], "database_unavailable");
    assert!(response.header("retry-after").is_some());
    assert!(
        !response.body.to_string().contains("127.0.0.1"),
        "no connection detail"
    );

    cluster.start();
    let retry = world.deliver("msg_outage", &event);
    assert_status(&retry, 200);
    assert_eq!(retry.body, json!({"status": "processed"}));
    assert_eq!(
        world.deliver("msg_outage", &event).body,
        json!({"status": "duplicate"})
    );
    let row = world.event_row("msg_outage");
    assert_eq!(
        (&row["status"], &row["attempts"]),
        (&json!("processed"), &json!(1))
    );
    assert_eq!(world.attempt_row(attempt)["pronunciation_score"], "88.00");
    let row = world.session_row(session);
    assert_eq!(row["attempt_count"], 2);
    assert_eq!(row["pronunciation_score"], "88.00");
    assert_eq!(row["is_passed"], true);
}

#[test]
fn concurrent_scores_for_one_session_all_count_in_its_results() {
    let world = World::new();
    let sentences: Vec<String> = (0..12).map(|index| format!("Sentence {index}.")).collect();
    let sentences: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let session = world.session(Some(&sentences), "analyzing");
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|index| {
                let world = &world;
                scope.spawn(move || {
                    let event =
                        scored(session, Uuid::new_v4(), index, 50.0 + index as f64, true, 0);
                    world
                        .deliver(&format!("msg_same_session_{index}"), &event)
                        .status
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    let row = world.session_row(session);
    assert_eq!(
        row["attempt_count"], 12,
        "no concurrent update may be lost: {row}"
    );
    assert_eq!(row["pronunciation_score"], "55.50"); // mean of 50..=61
    assert_eq!(row["status"], "completed");
    assert_eq!(row["is_passed"], true);
}

#[test]
fn repeats_and_other_deliveries_for_one_session_at_once_are_each_applied_once() {
    // Each of six scores for one session is sent three times at once, so deliveries
    // race both on the session (some take the locked path) and on their own ids.
    let world = World::new();
    let sentences: Vec<String> = (0..6).map(|index| format!("Sentence {index}.")).collect();
    let sentences: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let session = world.session(Some(&sentences), "analyzing");
    let timestamp = now_unix();
    let deliveries: Vec<(String, String, String)> = (0..6)
        .map(|index| {
            let id = format!("msg_race_{index}");
            let event = scored(session, Uuid::new_v4(), index, 70.0 + index as f64, true, 0);
            let body = event.to_string();
            let signature = sign(SECRET, &id, timestamp, body.as_bytes());
            (id, body, signature)
        })
        .collect();
    let answers: Vec<(String, u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = deliveries
            .iter()
            .flat_map(|delivery| std::iter::repeat_n(delivery, 3))
            .map(|(id, body, signature)| {
                let world = &world;
                scope.spawn(move || {
                    let response = world.post_delivery(id, timestamp, signature, body.as_bytes());
                    (id.clone(), response.status, response.body["status"].clone())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    assert!(
        answers.iter().all(|(_, status, _)| *status == 200),
        "{answers:?}"
    );
    for (id, _, _) in &deliveries {
        let mut outcomes: Vec<&Value> = answers
            .iter()
            .filter(|(answered, _, _)| answered == id)
            .map(|(_, _, outcome)| outcome)
            .collect();
        outcomes.sort_by_key(|outcome| outcome.to_string());
        assert_eq!(
            outcomes,
            [
                &json!("duplicate"),
                &json!("duplicate"),
                &json!("processed")
            ],
            "{id}"
        );
        let row = world.event_row(id);
        assert_eq!(
            (&row["status"], &row["attempts"]),
            (&json!("processed"), &json!(1)),
            "{id}"
        );
    }
    assert_eq!(world.count("SELECT count(*) FROM webhook_events"), 6);
    assert_eq!(world.count("SELECT count(*) FROM practice_attempts"), 6);
    let row = world.session_row(session);
    assert_eq!(row["attempt_count"], 6, "{row}");
    assert_eq!(row["pronunciation_score"], "72.50"); // mean of 70..=75
    assert_eq!(row["status"], "completed");
    assert_eq!(row["is_passed"], true);
}

/// `webhook_events.raw_body` of a delivery.
fn raw_body(world: &World, id: &str) -> Option<Vec<u8>> {
    world
        .db
        .client()
        .query_one("SELECT raw_body FROM webhook_events WHERE id = $1", &[&id])
        .unwrap()
        .get(0)
}

#[test]
fn nul_in_a_delivery_is_400_and_kept_as_failed() {
    let world = World::new();
    let session = world.session(None, "analyzing");
    // Valid JSON, correctly signed; jsonb and text refuse the NUL it holds.
    let body = format!(
        r#"{{"type": "practice.transcript.improved", "timestamp": "{}", "data": {{"session_id": "{session}", "improved_transcript": "the quick\u0000brown fox"}}}}"#,
        event_time(0)
    );
    let response = world.deliver_signed(SECRET, "msg_nul", body.as_bytes());
    assert_status(&response, 400);
    assert_eq!(response.body["error"], "invalid_request");
    assert_eq!(response.body["field"], "data.improved_transcript");

    let row = world.event_row("msg_nul");
    assert_eq!(
        (&row["status"], &row["event_type"], &row["attempts"]),
        (
            &json!("failed"),
            &json!("practice.transcript.improved"),
            &json!(1)
        )
    );
    assert!(
        row["error"]
            .as_str()
            .unwrap()
            .contains("data.improved_transcript"),
        "{row}"
    );
    assert_eq!(
        raw_body(&world, "msg_nul").as_deref(),
        Some(body.as_bytes()),
        "the body is kept byte for byte"
    );
    assert_eq!(
        row["payload"],
        json!(body),
        "the payload shows the body's text"
    );
    assert_eq!(
        world.session_row(session)["improved_transcript"],
        Value::Null,
        "nothing else was written"
    );

    // The sender's retry is refused the same way and counted; it never becomes a 500.
    let retry = world.deliver_signed(SECRET, "msg_nul", body.as_bytes());
    assert_status(&retry, 400);
    assert_eq!(world.event_row("msg_nul")["attempts"], 2);

    // A replay reads the kept bytes and answers what became of them.
    let replayed = world.replay(Some(&jwt("service_role")), &json!({"event_id": "msg_nul"}));
    assert_status(&replayed, 200);
    assert_eq!(replayed.body["results"][0]["status"], "failed");
    assert_eq!(replayed.body["results"][0]["code"], 400);
    assert_eq!(world.event_row("msg_nul")["attempts"], 3);
    assert_eq!(
        raw_body(&world, "msg_nul").as_deref(),
        Some(body.as_bytes())
    );

    // An unknown event type holding a NUL, and a body that is not JSON and holds a raw
    // NUL byte, are kept the same way.
    let unknown = br#"{"type": "practice.\u0000odd", "data": {}}"#;
    assert_status(&world.deliver_signed(SECRET, "msg_nul_type", unknown), 400);
    let row = world.event_row("msg_nul_type");
    assert_eq!(
        (&row["status"], &row["event_type"]),
        (&json!("failed"), &json!("unknown"))
    );
    assert_eq!(
        raw_body(&world, "msg_nul_type").as_deref(),
        Some(&unknown[..])
    );
    let binary = b"not json \x00 \xff at all";
    assert_status(&world.deliver_signed(SECRET, "msg_nul_bytes", binary), 400);
    assert_eq!(world.event_row("msg_nul_bytes")["status"], "failed");
    assert_eq!(
        raw_body(&world, "msg_nul_bytes").as_deref(),
        Some(&binary[..])
    );

    // A good delivery keeps its payload as JSON and no raw copy.
    let good = json!({"type": "practice.transcript.improved", "timestamp": event_time(1),
                      "data": {"session_id": session, "improved_transcript": "fine"}});
    assert_status(&world.deliver("msg_fine", &good), 200);
    assert_eq!(world.event_row("msg_fine")["payload"], good);
    assert_eq!(raw_body(&world, "msg_fine"), None);
}

/// The functions' own model of a session: `shared/`'s planner applied step by step and
/// written by its model of the write (`SessionState::with_changes`), the results it
/// computes kept as the row keeps them.
struct Model {
    state: voice_edge_shared::practice::apply::SessionState,
    attempt_count: i32,
    score: Option<rust_decimal::Decimal>,
    is_passed: bool,
}

impl Model {
    fn apply(&mut self, event: &voice_edge_shared::practice::event::PracticeEvent) {
        let changes = voice_edge_shared::practice::apply::plan_changes(&self.state, event);
        self.state = self.state.with_changes(&changes);
        if let Some(results) = changes.session().and_then(|change| change.results.as_ref()) {
            self.attempt_count = results.attempt_count;
            self.score = results.pronunciation_score;
            self.is_passed = results.is_passed;
        }
    }
}

/// A small deterministic generator (xorshift), so that a failing case can be rerun.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Under instance reuse an instance keeps its connections between requests; a Postgres
/// restart kills them while the instance lives. The next request must not fail: the
/// kept connection's first statement fails, and runs again on a fresh connection.
#[test]
fn a_kept_connection_killed_by_a_postgres_restart_is_replaced_without_failing_a_request() {
    let cluster = PgCluster::start_private();
    // Instances idle for up to a minute stay, so the one that served the first delivery
    // (and keeps its connection) serves the one after the restart too.
    let world = World::with_flags(
        TestDb::create_in(&cluster),
        SECRET,
        &[("idle-instance-timeout", "60s")],
    );
    let first = world.session(Some(&["One."]), "analyzing");
    let before = world.deliver(
        "msg_before_restart",
        &scored(first, Uuid::new_v4(), 0, 50.0, false, -5),
    );
    assert_status(&before, 200);
    // The work after that response (the retention sweep) ends before the restart, and
    // its connection goes back to the instance's pool.
    std::thread::sleep(std::time::Duration::from_millis(500));

    cluster.stop();
    cluster.start();

    let session = world.session(Some(&["One."]), "analyzing");
    let attempt = Uuid::new_v4();
    let after = world.deliver(
        "msg_after_restart",
        &scored(session, attempt, 0, 91.0, true, 0),
    );
    assert_status(&after, 200);
    assert_eq!(after.body, json!({"status": "processed"}));
    assert_eq!(
        world.instance_of(0),
        world.instance_of(1),
        "the same instance served both, with the connection it kept"
    );
    // (The app is started with flags of its own, so a run with
    // VOICE_EDGE_MAX_INSTANCE_REUSE=1 does not change it: see `TestApp`.)
    let row = world.event_row("msg_after_restart");
    assert_eq!(
        (&row["status"], &row["attempts"]),
        (&json!("processed"), &json!(1))
    );
    assert_eq!(world.attempt_row(attempt)["pronunciation_score"], "91.00");
    assert_eq!(world.session_row(session)["attempt_count"], 1);
}

/// ClassConnect retries what is not acknowledged; deliveries sent by four senders at
/// once while Postgres restarts are each applied exactly once: 503s during the outage,
/// every retry answered, nothing lost, nothing doubled.
#[test]
fn deliveries_sent_through_a_postgres_restart_are_each_applied_once() {
    const DELIVERIES: usize = 160;
    const SENDERS: usize = 4;
    let cluster = PgCluster::start_private();
    let world = World::with(TestDb::create_in(&cluster), SECRET);
    let work: Vec<(String, Uuid, Uuid)> = (0..DELIVERIES)
        .map(|n| {
            let session = world.session(Some(&["One."]), "analyzing");
            (format!("msg_restart_{n:03}"), session, Uuid::new_v4())
        })
        .collect();
    let outages = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for sender in 0..SENDERS {
            let (world, work, outages) = (&world, &work, &outages);
            scope.spawn(move || {
                for (id, session, attempt) in work.iter().skip(sender).step_by(SENDERS) {
                    let event = scored(*session, *attempt, 0, 77.0, true, 0);
                    let mut tries = 0;
                    loop {
                        tries += 1;
                        let answer = world.deliver(id, &event);
                        match answer.status {
                            200 => break,
                            503 => {
                                outages.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                assert!(tries < 400, "{id} never got through");
                                std::thread::sleep(std::time::Duration::from_millis(50));
                            }
                            other => panic!("{id}: {other} {}", answer.body),
                        }
                    }
                    std::thread::sleep(std::time::Duration::from_millis(30));
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(400));
        cluster.stop();
        std::thread::sleep(std::time::Duration::from_millis(300));
        cluster.start();
    });
    assert!(
        outages.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the restart fell between deliveries: nothing was tested"
    );
    let mut client = world.db.client();
    let processed: i64 = client
        .query_one(
            "SELECT count(*) FROM webhook_events \
             WHERE id LIKE 'msg_restart_%' AND status = 'processed'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        processed, DELIVERIES as i64,
        "every delivery processed once"
    );
    for (id, session, attempt) in &work {
        assert_eq!(
            world.attempt_row(*attempt)["pronunciation_score"],
            "77.00",
            "{id}"
        );
        assert_eq!(world.session_row(*session)["attempt_count"], 1, "{id}");
    }
}

#[test]
fn scored_attempts_applied_in_one_sql_statement_match_the_shared_model() {
    use voice_edge_shared::practice::apply::SessionState;
    use voice_edge_shared::practice::event::{ParsedBody, parse_body};
    use voice_edge_shared::practice::status::SessionStatus;

    let world = World::new();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for case in 0..12 {
        let sentence_lists: [Option<&[&str]>; 4] = [
            None,
            Some(&[]),
            Some(&["One."]),
            Some(&["One.", "Two.", "Three."]),
        ];
        let sentences = sentence_lists[rng.below(4) as usize];
        let session = world.session(sentences, "analyzing");
        let mut model = Model {
            state: SessionState {
                id: session,
                status: SessionStatus::Analyzing,
                sentence_count: sentences.map(<[&str]>::len),
                last_event_at: None,
                attempts: Vec::new(),
            },
            attempt_count: 0,
            score: None,
            is_passed: false,
        };
        let attempts: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        let mut sent: Vec<(String, Value)> = Vec::new();
        for step in 0..14 {
            // A repeat of an earlier delivery now and then, byte for byte.
            if !sent.is_empty() && rng.below(6) == 0 {
                let (id, event) = sent[rng.below(sent.len() as u64) as usize].clone();
                let answer = world.deliver(&id, &event);
                assert_status(&answer, 200);
                assert_eq!(
                    answer.body["status"], "duplicate",
                    "case {case} step {step}"
                );
                continue;
            }
            let attempt = attempts[rng.below(4) as usize];
            let at = rng.below(40) as i64; // shuffled: times go back and forth
            let event = if rng.below(5) == 0 {
                json!({
                    "type": "practice.attempt.failed",
                    "timestamp": event_time(at),
                    "data": {"session_id": session, "attempt_id": attempt, "error_message": "audio too short"}
                })
            } else {
                let index = rng.below(5) as i32; // 0 … 4: beyond the sentence list too
                let score = rng.below(10_001) as f64 / 100.0;
                scored(session, attempt, index, score, rng.below(2) == 0, at)
            };
            let id = format!("msg_model_{case}_{step}");
            let answer = world.deliver(&id, &event);
            assert_status(&answer, 200);
            assert_eq!(
                answer.body["status"], "processed",
                "case {case} step {step}"
            );
            let ParsedBody::Event(parsed) = parse_body(event.to_string().as_bytes()) else {
                panic!("the test's own event parses: {event}");
            };
            model.apply(&parsed);
            sent.push((id, event));
        }

        let row = world.session_row(session);
        assert_eq!(
            row["status"],
            model.state.status.as_str(),
            "case {case}: {row}"
        );
        assert_eq!(
            row["attempt_count"], model.attempt_count,
            "case {case}: {row}"
        );
        assert_eq!(row["is_passed"], model.is_passed, "case {case}: {row}");
        assert_eq!(
            row["pronunciation_score"],
            json!(model.score.map(|score| format!("{score:.2}"))),
            "case {case}: {row}"
        );
        let mut client = world.db.client();
        for expected in &model.state.attempts {
            let stored = client
                .query_one(
                    "SELECT status, sentence_index, pronunciation_score::text AS score, is_passed
                       FROM practice_attempts WHERE id = $1",
                    &[&expected.id],
                )
                .unwrap();
            assert_eq!(
                stored.get::<_, String>("status"),
                expected.status.as_str(),
                "case {case}"
            );
            assert_eq!(
                stored.get::<_, Option<i32>>("sentence_index"),
                expected.sentence_index,
                "case {case}"
            );
            assert_eq!(
                stored.get::<_, Option<String>>("score"),
                expected
                    .pronunciation_score
                    .map(|score| format!("{score:.2}")),
                "case {case}"
            );
            assert_eq!(
                stored.get::<_, Option<bool>>("is_passed"),
                expected.is_passed,
                "case {case}"
            );
        }
        let attempts_stored: i64 = client
            .query_one(
                "SELECT count(*) FROM practice_attempts WHERE session_id = $1",
                &[&session],
            )
            .unwrap()
            .get(0);
        assert_eq!(
            attempts_stored,
            model.state.attempts.len() as i64,
            "case {case}"
        );
    }
}

/// `{"a":{"a":…{"a":1}…}}` nested `depth` objects deep.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!({ "a": inner }))
}

#[test]
fn a_delivery_nested_to_the_json_limit_is_processed_and_one_beyond_it_is_refused_without_a_trap() {
    let world = World::new();
    let session = world.session(Some(&["One."]), "analyzing");
    // serde_json refuses documents nested deeper than 128; the body's own two levels
    // (the event, its data) come on top of the analysis's.
    let mut deep = scored(session, Uuid::new_v4(), 0, 88.0, true, 1);
    deep["data"]["pronunciation_analysis"] = nested(120);
    let answer = world.deliver("msg_deep_120", &deep);
    assert_status(&answer, 200);
    assert_eq!(answer.body["status"], "processed");
    assert_eq!(world.session_row(session)["attempt_count"], 1);

    let mut too_deep = scored(session, Uuid::new_v4(), 0, 88.0, true, 2);
    too_deep["data"]["pronunciation_analysis"] = nested(200);
    let answer = world.deliver("msg_deep_200", &too_deep);
    assert_status(&answer, 400);
    assert_eq!(world.event_row("msg_deep_200")["status"], "failed");
    assert_eq!(world.session_row(session)["attempt_count"], 1);
}

/// Issue 23, item 7: a scored delivery that failed with a body `jsonb` cannot hold (kept
/// in `raw_body`), then arrives fixed under the same `webhook-id`, is taken over by
/// `practice_record_scored` (the one-statement path: a valid scored event always goes
/// there first, and the function takes over a `failed` row). The takeover must clear
/// `raw_body`, since a replay prefers it: the replay then processes the fixed body.
#[test]
fn a_failed_scored_delivery_fixed_under_the_same_id_is_taken_over_and_replays_the_fixed_body() {
    let world = World::new();
    let session = world.session(None, "analyzing");
    let attempt = Uuid::new_v4();
    let fixed = scored(session, attempt, 0, 88.0, true, 5);
    let broken = fixed
        .to_string()
        .replace("Stress the second syllable.", "Stress\\u0000 it.");
    assert!(broken.contains("\\u0000"), "{broken}");
    let failed = world.deliver_signed(SECRET, "msg_fixed", broken.as_bytes());
    assert_status(&failed, 400);
    assert_eq!(world.event_row("msg_fixed")["status"], "failed");
    assert_eq!(
        raw_body(&world, "msg_fixed").as_deref(),
        Some(broken.as_bytes())
    );

    let delivered = world.deliver("msg_fixed", &fixed);
    assert_status(&delivered, 200);
    assert_eq!(delivered.body["status"], "processed");
    let row = world.event_row("msg_fixed");
    assert_eq!(
        (&row["status"], &row["attempts"]),
        (&json!("processed"), &json!(2))
    );
    assert_eq!(row["payload"], fixed, "the fixed body is the one kept");
    assert_eq!(
        raw_body(&world, "msg_fixed"),
        None,
        "the failed body's raw copy went with it"
    );
    // It was the function's takeover: the attempt is the fixed event's.
    let scores = world
        .db
        .client()
        .query_one(
            "SELECT status, pronunciation_score::float8 AS score FROM practice_attempts WHERE id = $1",
            &[&attempt],
        )
        .unwrap();
    assert_eq!(scores.get::<_, String>("status"), "completed");
    assert_eq!(scores.get::<_, f64>("score"), 88.0);

    let replayed = world.replay(
        Some(&jwt("service_role")),
        &json!({"event_id": "msg_fixed"}),
    );
    assert_status(&replayed, 200);
    assert_eq!(
        replayed.body["results"][0]["status"], "processed",
        "{:?}",
        replayed.body
    );
    let row = world.event_row("msg_fixed");
    assert_eq!(row["status"], "processed");
    assert_eq!(row["payload"], fixed);
}
