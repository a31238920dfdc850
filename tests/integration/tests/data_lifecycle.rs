//! The data's lifecycle (CONTRACT.md section 7a) through the host or real Spin against a
//! real PostgreSQL: the retention sweeps (by SQL, after the functions' responses when
//! there is no pg_cron, and on a real pg_cron), one student's erasure through
//! `POST /functions/v1/voice-monitoring/erase`, and the removal of the demo system.
//!
//! Every test has its own database; the pg_cron test has its own cluster (pg_cron runs
//! jobs in one database per cluster, named by `cron.database_name` at start-up).
//!
//! ```sh
//! cargo test --profile host -p voice-edge-integration --test data_lifecycle
//! ```

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;
use voice_edge_integration::{
    AuthUser, Response, WEBHOOK_SECRET, anon_jwt, app_vars, bearer, hs256, key_jwt, now_unix, send,
    start_app, user_claims,
};
use voice_edge_testkit::app::TestApp;
use voice_edge_testkit::pg::{PgCluster, TestDb, repo_root};

const JWT_SECRET: &str = "lifecycle-test-jwt-secret-0123456789abcdef";
const MONITORING: &str = "/functions/v1/voice-monitoring";
const WEBHOOK: &str = "/functions/v1/practice-webhook";

/// Every table a student's data lives in, as the erasure answers them.
const ERASED_TABLES: [&str; 10] = [
    "webhook_events",
    "practice_attempts",
    "practice_sessions",
    "demo_interactions",
    "demo_voice_sessions",
    "realtime_token_sessions",
    "voice_session_metrics",
    "voice_session_errors",
    "rate_limits",
    "rate_limits_demo",
];

// ---------------------------------------------------------------------------------------
// The app, users and rows

struct Env {
    db: TestDb,
    app: TestApp,
}

impl Env {
    fn start() -> Env {
        Env::start_with(TestDb::create())
    }

    fn start_with(db: TestDb) -> Env {
        let app = start_app(&app_vars(&db, JWT_SECRET, None, &[]));
        Env { db, app }
    }

    fn url(&self, path: &str) -> String {
        self.app.url(path)
    }

    /// A user with the platform role `app_role` (`None`: a student), and a token.
    fn user(&self, app_role: Option<&str>) -> (Uuid, String) {
        let app_metadata = match app_role {
            Some(role) => json!({"provider": "email", "role": role}),
            None => json!({"provider": "email"}),
        };
        let user = AuthUser {
            app_metadata,
            ..AuthUser::with_email("school.example")
        };
        let id = user.insert(&self.db);
        (
            id,
            hs256(&user_claims(id, false, user.app_metadata), JWT_SECRET),
        )
    }

    fn erase(&self, token: Option<&str>, body: &Value) -> Response {
        post_json(&self.url(&format!("{MONITORING}/erase")), token, body)
    }

    fn deliver(&self, id: &str, event: &Value) -> Response {
        let body = event.to_string();
        let timestamp = now_unix();
        let signature = sign(id, timestamp, body.as_bytes());
        let timestamp = timestamp.to_string();
        send(
            "POST",
            &self.url(WEBHOOK),
            &[
                ("content-type", "application/json"),
                ("webhook-id", id),
                ("webhook-timestamp", &timestamp),
                ("webhook-signature", &signature),
            ],
            body.as_bytes(),
        )
    }

    fn count(&self, sql: &str) -> i64 {
        self.db.client().query_one(sql, &[]).unwrap().get(0)
    }

    fn count_for(&self, sql: &str, user: Uuid) -> i64 {
        self.db.client().query_one(sql, &[&user]).unwrap().get(0)
    }

    fn execute(&self, sql: &str) {
        self.db
            .client()
            .batch_execute(sql)
            .unwrap_or_else(|error| panic!("{sql}: {error:?}"));
    }
}

fn post_json(url: &str, token: Option<&str>, body: &Value) -> Response {
    let authorization = token.map(bearer);
    let mut headers = vec![("content-type", "application/json")];
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization.as_str()));
    }
    send("POST", url, &headers, body.to_string().as_bytes())
}

/// The `v1,<base64>` signature a Standard Webhooks sender computes.
fn sign(id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(WEBHOOK_SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

fn scored(session: Uuid, attempt: Uuid, score: f64) -> Value {
    json!({
        "type": "practice.attempt.scored",
        "timestamp": "2025-11-22T10:00:00Z",
        "data": {
            "session_id": session,
            "attempt_id": attempt,
            "sentence_index": 0,
            "pronunciation_score": score,
            "is_passed": true,
            "pronunciation_analysis": {"accuracy": score},
            "feedback_data": {"tips": ["Stress the second syllable."]},
            "transcription_results": {"text": "the quick brown fox"},
            "word_level_scores": [{"word": "quick", "score": 91.5, "start_ms": 120, "end_ms": 480}],
        }
    })
}

/// A row in every table the functions write, for `user`, `age` old (an SQL interval),
/// and one of each of the platform's own tables; the user's practice session's id.
fn seed_everything(db: &TestDb, user: Uuid, age: &str) -> Uuid {
    let session = Uuid::new_v4();
    let tag = Uuid::new_v4().simple().to_string();
    let sql = format!(
        "DO $$
         DECLARE
             at timestamptz := now() - interval '{age}';
             demo uuid;
             voice uuid;
         BEGIN
             INSERT INTO practice_sessions (id, user_id, status, transcript, created_at)
             VALUES ('{session}', '{user}', 'analyzing', 'what the student read', at);
             INSERT INTO practice_attempts (session_id, sentence_index, status, created_at)
             VALUES ('{session}', 0, 'completed', at);
             INSERT INTO webhook_events (id, event_type, status, payload, received_at, processed_at) VALUES
                 ('msg_p_{tag}', 'practice.attempt.scored', 'processed',
                  jsonb_build_object('type', 'practice.attempt.scored',
                      'data', jsonb_build_object('session_id', '{session}',
                                                 'transcription_results', 'the quick brown fox')),
                  at, at),
                 ('msg_i_{tag}', 'practice.unknown', 'ignored',
                  jsonb_build_object('type', 'practice.unknown',
                      'data', jsonb_build_object('session_id', '{session}')), at, at);
             INSERT INTO webhook_events (id, event_type, status, payload, raw_body, error, received_at)
             VALUES ('msg_f_{tag}', 'practice.attempt.scored', 'failed',
                     to_jsonb('{{\"data\":{{\"session_id\":\"{session}\"}}}} (a NUL followed)'::text),
                     convert_to('{{\"data\":{{\"session_id\":\"{session}\",\"t\":\"x\"}}}}', 'UTF8'),
                     'invalid data', at);
             SELECT id INTO demo FROM demo_activities WHERE is_published LIMIT 1;
             INSERT INTO demo_voice_sessions (id, demo_activity_id, student_id, started_at)
             VALUES (gen_random_uuid(), demo, '{user}', at) RETURNING id INTO demo;
             INSERT INTO demo_interactions (demo_session_id, interaction_type, transcript, created_at)
             VALUES (demo, 'transcript', 'what the student said', at);
             INSERT INTO realtime_token_sessions (user_id, client_key, persona, language, model, voice, created_at)
             VALUES ('{user}', 'user:{user}', 'student-tutor', 'en', 'gpt-realtime', 'ash', at);
             INSERT INTO voice_session_metrics (user_id, session_id, implementation_type, connection_success, created_at)
             VALUES ('{user}', 's_{tag}', 'webrtc', true, at);
             INSERT INTO voice_session_errors (user_id, implementation_type, error_type, error_message, created_at)
             VALUES ('{user}', 'webrtc', 'network', 'the microphone stopped', at);
             INSERT INTO rate_limits (bucket_key, window_start, count)
             VALUES ('metrics:user:{user}', date_trunc('minute', at), 1);
             INSERT INTO rate_limits_demo (bucket_key, window_start, count)
             VALUES ('demo:sessions:user:{user}', date_trunc('minute', at), 1);
             INSERT INTO search_cache (cache_key, normalized_query, answer, created_at)
             VALUES ('k_{tag}', 'q', 'a', at);
             INSERT INTO health_probes (probe, ok, started_at) VALUES ('p_{tag}', true, at);
             INSERT INTO voice_rollout_audit (flag_name, actor_role, from_enabled, to_enabled,
                                              from_percentage, to_percentage, reason, created_at)
             VALUES ('voice_webrtc_migration', 'admin', false, true, 0, 10, 'phase 1', at);
             INSERT INTO manual_assessments (title, created_at) VALUES ('reading', at);
             INSERT INTO voice_sessions (student_id, started_at, created_at)
             VALUES ('{user}', at, at) RETURNING id INTO voice;
             INSERT INTO voice_interactions (session_id, role, transcript, created_at)
             VALUES (voice, 'user', 'production transcript', at);
         END
         $$"
    );
    db.client()
        .batch_execute(&sql)
        .unwrap_or_else(|error| panic!("seeding: {error:?}"));
    session
}

/// Rows of the user's in each erased table (deliveries: those with content left).
fn user_rows(env: &Env, user: Uuid) -> Vec<(&'static str, i64)> {
    let queries = [
        (
            "webhook_events",
            "SELECT count(*) FROM webhook_events e
              WHERE (payload <> '{}'::jsonb OR raw_body IS NOT NULL)
                AND (payload -> 'data' ->> 'session_id' IN
                         (SELECT id::text FROM practice_sessions WHERE user_id = $1)
                     OR payload::text LIKE '%' || (SELECT min(id::text) FROM practice_sessions WHERE user_id = $1) || '%')",
        ),
        (
            "practice_attempts",
            "SELECT count(*) FROM practice_attempts WHERE session_id IN
                 (SELECT id FROM practice_sessions WHERE user_id = $1)",
        ),
        (
            "practice_sessions",
            "SELECT count(*) FROM practice_sessions WHERE user_id = $1",
        ),
        (
            "demo_interactions",
            "SELECT count(*) FROM demo_interactions i JOIN demo_voice_sessions s
                 ON s.id = i.demo_session_id WHERE s.student_id = $1",
        ),
        (
            "demo_voice_sessions",
            "SELECT count(*) FROM demo_voice_sessions WHERE student_id = $1",
        ),
        (
            "realtime_token_sessions",
            "SELECT count(*) FROM realtime_token_sessions WHERE user_id = $1",
        ),
        (
            "voice_session_metrics",
            "SELECT count(*) FROM voice_session_metrics WHERE user_id = $1",
        ),
        (
            "voice_session_errors",
            "SELECT count(*) FROM voice_session_errors WHERE user_id = $1",
        ),
        (
            "rate_limits",
            "SELECT count(*) FROM rate_limits WHERE bucket_key LIKE '%:user:' || ($1::uuid)::text",
        ),
        (
            "rate_limits_demo",
            "SELECT count(*) FROM rate_limits_demo WHERE bucket_key LIKE '%:user:' || ($1::uuid)::text",
        ),
    ];
    queries
        .into_iter()
        .map(|(table, sql)| (table, env.count_for(sql, user)))
        .collect()
}

fn production_rows(env: &Env) -> i64 {
    env.count(
        "SELECT (SELECT count(*) FROM manual_assessments) + (SELECT count(*) FROM voice_sessions)
              + (SELECT count(*) FROM voice_interactions)",
    )
}

// ---------------------------------------------------------------------------------------
// Erasure

#[test]
fn erase_empties_every_table_of_one_student_and_nothing_of_another() {
    let env = Env::start();
    let (student, _) = env.user(None);
    let (other, _) = env.user(None);
    let (admin_id, admin) = env.user(Some("admin"));
    seed_everything(&env.db, student, "1 hour");
    let other_session = seed_everything(&env.db, other, "1 hour");
    let other_before = user_rows(&env, other);
    let production_before = production_rows(&env);

    let reason = "Parent's request, ticket 4411";
    let response = env.erase(
        Some(&admin),
        &json!({"user_id": student, "include_practice": true, "reason": reason}),
    );
    assert_eq!(response.status, 200, "{:?}", response.body);
    let erased = &response.body["erased"];
    let expected = json!({
        "webhook_events": 3, "practice_attempts": 1, "practice_sessions": 1,
        "demo_interactions": 1, "demo_voice_sessions": 1, "realtime_token_sessions": 1,
        "voice_session_metrics": 1, "voice_session_errors": 1, "rate_limits": 1,
        "rate_limits_demo": 1,
    });
    assert_eq!(erased, &expected, "{:?}", response.body);
    assert_eq!(response.body["user_id"], json!(student));
    assert_eq!(response.body["include_practice"], json!(true));

    for (table, rows) in user_rows(&env, student) {
        assert_eq!(rows, 0, "{table} still holds the student's data");
    }
    // The deliveries stay, emptied, so that a sender's retry is still a duplicate.
    assert_eq!(
        env.count(
            "SELECT count(*) FROM webhook_events
              WHERE payload = '{}'::jsonb AND raw_body IS NULL"
        ),
        3
    );
    assert_eq!(
        user_rows(&env, other),
        other_before,
        "another student's rows"
    );
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM webhook_events WHERE payload -> 'data' ->> 'session_id' = '{other_session}'"
        )),
        2
    );
    assert_eq!(production_rows(&env), production_before);

    // The audit row: the actor, the counts, the reason, the user's id and nothing more.
    let mut client = env.db.client();
    let audit = client
        .query_one(
            "SELECT to_jsonb(a) - 'id' - 'created_at' AS row, id FROM data_erasure_audit a",
            &[],
        )
        .unwrap();
    let row: Value = audit.get("row");
    assert_eq!(
        row,
        json!({
            "user_id": student, "include_practice": true, "actor_id": admin_id,
            "actor_role": "admin", "reason": reason, "counts": expected,
        })
    );
    let audit_id: Uuid = audit.get("id");
    assert_eq!(response.body["audit_id"], json!(audit_id));

    // Again: nothing more to erase, every count 0, and a second audit row.
    let again = env.erase(
        Some(&admin),
        &json!({"user_id": student, "include_practice": true, "reason": reason}),
    );
    assert_eq!(again.status, 200, "{:?}", again.body);
    for table in ERASED_TABLES {
        assert_eq!(
            again.body["erased"][table],
            json!(0),
            "{table}: {:?}",
            again.body
        );
    }
    assert_eq!(env.count("SELECT count(*) FROM data_erasure_audit"), 2);
    assert_eq!(user_rows(&env, other), other_before);
}

#[test]
fn erase_without_include_practice_keeps_practice_rows_and_empties_their_deliveries() {
    let env = Env::start();
    let (student, _) = env.user(None);
    seed_everything(&env.db, student, "1 hour");
    let response = env.erase(
        Some(&key_jwt("service_role", JWT_SECRET)),
        &json!({"user_id": student, "reason": "GDPR article 17 request"}),
    );
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["include_practice"], json!(false));
    assert_eq!(response.body["erased"]["webhook_events"], json!(3));
    assert_eq!(response.body["erased"]["practice_sessions"], json!(0));
    let left: Vec<(&str, i64)> = user_rows(&env, student)
        .into_iter()
        .filter(|(_, rows)| *rows > 0)
        .collect();
    assert_eq!(left, [("practice_attempts", 1), ("practice_sessions", 1)]);
    assert_eq!(
        env.count("SELECT count(*) FROM data_erasure_audit WHERE actor_role = 'service_role' AND actor_id IS NULL"),
        1
    );
}

#[test]
fn erase_is_refused_to_everyone_but_admins_and_service_role_and_erases_nothing() {
    let env = Env::start();
    let (student, student_token) = env.user(None);
    let (_, teacher) = env.user(Some("teacher"));
    seed_everything(&env.db, student, "1 hour");
    let before = user_rows(&env, student);
    let body = json!({"user_id": student, "include_practice": true, "reason": "because"});

    for (who, token) in [
        ("the student", student_token.as_str()),
        ("a teacher", teacher.as_str()),
        ("anon", &anon_jwt(JWT_SECRET)),
        (
            "authenticated without a user",
            &key_jwt("authenticated", JWT_SECRET),
        ),
    ] {
        let response = env.erase(Some(token), &body);
        assert_eq!(response.status, 403, "{who}: {:?}", response.body);
        assert_eq!(response.body["code"], json!(403), "{who}");
    }
    let response = env.erase(None, &body);
    assert_eq!(response.status, 401, "{:?}", response.body);
    let response = env.erase(Some("not.a.jwt"), &body);
    assert_eq!(response.status, 401, "{:?}", response.body);

    // Bad input from an admin: 400 naming the field, nothing erased.
    let (_, admin) = env.user(Some("admin"));
    for (bad, field) in [
        (json!({"user_id": "someone", "reason": "r"}), "user_id"),
        (json!({"user_id": student, "reason": " "}), "reason"),
        (json!({"user_id": student}), "reason"),
        (
            json!({"user_id": student, "reason": "r", "include_practice": "yes"}),
            "include_practice",
        ),
    ] {
        let response = env.erase(Some(&admin), &bad);
        assert_eq!(response.status, 400, "{bad}: {:?}", response.body);
        assert!(
            response.body["message"]
                .as_str()
                .unwrap_or("")
                .contains(field),
            "{bad}: {:?}",
            response.body
        );
    }
    let response = send(
        "GET",
        &env.url(&format!("{MONITORING}/erase")),
        &[("authorization", &bearer(&admin))],
        b"",
    );
    assert_eq!(response.status, 405);

    assert_eq!(user_rows(&env, student), before, "nothing erased");
    assert_eq!(env.count("SELECT count(*) FROM data_erasure_audit"), 0);

    // The SQL function: service_role may execute it, the frontend's roles may not.
    for role in ["anon", "authenticated"] {
        let mut client = env.db.client();
        let refused = client
            .batch_execute(&format!(
                "SET ROLE {role}; SELECT public.erase_student_data('{student}', 'r', true)"
            ))
            .unwrap_err();
        assert_eq!(
            refused.as_db_error().map(|e| e.code().code()),
            Some("42501"),
            "{role}"
        );
    }
    assert_eq!(user_rows(&env, student), before, "nothing erased");
    let mut client = env.db.client();
    client.batch_execute("SET ROLE service_role").unwrap();
    let counts: Value = client
        .query_one(
            &format!("SELECT public.erase_student_data('{student}', 'operator via RPC', true) -> 'counts'"),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(counts["practice_sessions"], json!(1));
}

#[test]
fn after_erasure_a_retried_delivery_is_a_duplicate_and_a_new_one_for_an_erased_session_is_404_kept_failed()
 {
    let env = Env::start();
    let (student, _) = env.user(None);
    let (_, admin) = env.user(Some("admin"));
    let session = Uuid::new_v4();
    env.execute(&format!(
        "INSERT INTO practice_sessions (id, user_id, status, transcript)
         VALUES ('{session}', '{student}', 'analyzing', 'the quick brown fox')"
    ));
    let attempt = Uuid::new_v4();
    let delivery = scored(session, attempt, 91.0);
    let first = env.deliver("msg_erase_1", &delivery);
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body, json!({"status": "processed"}));

    // Without include_practice: the attempt stays; a retry is a duplicate and changes
    // nothing (the score it carries differs, to tell).
    let response = env.erase(
        Some(&admin),
        &json!({"user_id": student, "reason": "request"}),
    );
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["erased"]["webhook_events"], json!(1));
    let retried = env.deliver("msg_erase_1", &scored(session, attempt, 12.0));
    assert_eq!(retried.status, 200, "{:?}", retried.body);
    assert_eq!(retried.body, json!({"status": "duplicate"}));
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM practice_attempts WHERE id = '{attempt}' AND pronunciation_score = 91"
        )),
        1
    );
    assert_eq!(
        env.count("SELECT count(*) FROM webhook_events WHERE id = 'msg_erase_1' AND payload = '{}'::jsonb AND status = 'processed'"),
        1
    );

    // With include_practice: the session is gone; a retry is still a duplicate, and a
    // new delivery for the session is answered as for an unknown one, kept as failed.
    let response = env.erase(
        Some(&admin),
        &json!({"user_id": student, "include_practice": true, "reason": "request"}),
    );
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["erased"]["practice_sessions"], json!(1));
    assert_eq!(response.body["erased"]["practice_attempts"], json!(1));
    let retried = env.deliver("msg_erase_1", &delivery);
    assert_eq!(retried.body, json!({"status": "duplicate"}));
    // An operator's replay has nothing left to apply, and does not turn the delivery
    // into a failed one that a retry could apply again.
    let replay = post_json(
        &env.url(&format!("{WEBHOOK}/replay")),
        Some(&key_jwt("service_role", JWT_SECRET)),
        &json!({"event_id": "msg_erase_1"}),
    );
    assert_eq!(replay.status, 404, "{:?}", replay.body);
    assert_eq!(
        env.count("SELECT count(*) FROM webhook_events WHERE id = 'msg_erase_1' AND status = 'processed' AND attempts = 1"),
        1
    );
    let new = env.deliver("msg_erase_2", &scored(session, Uuid::new_v4(), 50.0));
    assert_eq!(new.status, 404, "{:?}", new.body);
    assert_eq!(
        env.count(
            "SELECT count(*) FROM webhook_events WHERE id = 'msg_erase_2' AND status = 'failed'"
        ),
        1
    );
    assert_eq!(
        env.count(&format!(
            "SELECT (SELECT count(*) FROM practice_sessions WHERE id = '{session}')
                  + (SELECT count(*) FROM practice_attempts WHERE session_id = '{session}')"
        )),
        0,
        "nothing of the erased session came back"
    );
}

// ---------------------------------------------------------------------------------------
// Retention

/// Retention shortened to 10 minutes (what is older goes); windows and probes at their
/// shortest.
const SHORT_RETENTION: &str = "UPDATE data_retention_settings SET
    delivery_content = '10 minutes', delivery_rows = '10 minutes', failed_deliveries = '10 minutes',
    demo_interactions = '10 minutes', demo_sessions = '10 minutes', token_sessions = '10 minutes',
    session_metrics = '10 minutes', session_errors = '10 minutes', search_cache = '10 minutes',
    rate_limit_windows = '2 minutes', health_probes = '10 minutes', rollout_audit = '10 minutes',
    erasure_audit = '10 minutes'";

/// The rows of every swept table, and of the platform's own.
fn table_sizes(env: &Env) -> Value {
    let mut client = env.db.client();
    let row = client
        .query_one(
            "SELECT jsonb_build_object(
                 'webhook_events', (SELECT count(*) FROM webhook_events),
                 'webhook_events_with_content', (SELECT count(*) FROM webhook_events
                      WHERE payload <> '{}'::jsonb OR raw_body IS NOT NULL),
                 'demo_interactions', (SELECT count(*) FROM demo_interactions),
                 'demo_voice_sessions', (SELECT count(*) FROM demo_voice_sessions),
                 'realtime_token_sessions', (SELECT count(*) FROM realtime_token_sessions),
                 'voice_session_metrics', (SELECT count(*) FROM voice_session_metrics),
                 'voice_session_errors', (SELECT count(*) FROM voice_session_errors),
                 'rate_limits', (SELECT count(*) FROM rate_limits),
                 'rate_limits_demo', (SELECT count(*) FROM rate_limits_demo),
                 'search_cache', (SELECT count(*) FROM search_cache),
                 'health_probes', (SELECT count(*) FROM health_probes),
                 'voice_rollout_audit', (SELECT count(*) FROM voice_rollout_audit),
                 'practice_sessions', (SELECT count(*) FROM practice_sessions),
                 'practice_attempts', (SELECT count(*) FROM practice_attempts),
                 'production', (SELECT count(*) FROM manual_assessments)
                     + (SELECT count(*) FROM voice_sessions) + (SELECT count(*) FROM voice_interactions),
                 'demo_activities', (SELECT count(*) FROM demo_activities),
                 'voice_feature_flags', (SELECT count(*) FROM voice_feature_flags))",
            &[],
        )
        .unwrap();
    row.get(0)
}

/// What one old and one fresh seeding leave after a sweep: the fresh rows of every
/// swept table, every row of the platform's.
fn after_sweep(seeded_fresh: &Value, before: &Value) -> Value {
    let mut expected = seeded_fresh.clone();
    for table in [
        "practice_sessions",
        "practice_attempts",
        "production",
        "demo_activities",
        "voice_feature_flags",
    ] {
        expected[table] = before[table].clone();
    }
    expected
}

#[test]
fn a_sweep_empties_what_is_past_its_retention_and_nothing_else() {
    let env = Env::start();
    let empty = table_sizes(&env);
    let (student, _) = env.user(None);
    seed_everything(&env.db, student, "1 second");
    let fresh_only = table_sizes(&env);
    seed_everything(&env.db, student, "1 hour");
    let before = table_sizes(&env);
    env.execute(SHORT_RETENTION);

    // Bounded: one batch of 2 changes at most 2 rows per step.
    let swept: Value = env
        .db
        .client()
        .query_one("SELECT public.retention_sweep(2)", &[])
        .unwrap()
        .get(0);
    for (step, rows) in swept.as_object().unwrap() {
        assert!(rows.as_i64().unwrap() <= 2, "{step}: {swept}");
    }
    assert_eq!(swept["webhook_events_content_emptied"], json!(2), "{swept}");

    let swept: Value = env
        .db
        .client()
        .query_one("SELECT public.retention_sweep()", &[])
        .unwrap()
        .get(0);
    assert_eq!(swept["demo_voice_sessions"], json!(0), "{swept}");
    let after = table_sizes(&env);
    assert_eq!(after, after_sweep(&fresh_only, &before), "empty: {empty}");
    // The fresh deliveries keep their content; the old ones are gone.
    assert_eq!(after["webhook_events_with_content"], json!(3));
}

#[test]
fn without_pg_cron_a_response_sweeps_at_most_once_a_minute() {
    let env = Env::start();
    let (student, token) = env.user(None);
    seed_everything(&env.db, student, "1 hour");
    let before = table_sizes(&env);
    env.execute(SHORT_RETENTION);
    assert_eq!(
        env.count("SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'"),
        0
    );

    let metrics = metrics_body();
    let response = post_json(
        &env.url(&format!("{MONITORING}/metrics")),
        Some(&token),
        &metrics,
    );
    assert_eq!(response.status, 201, "{:?}", response.body);
    let swept_at = wait_for_sweep(&env, None);

    let mut expected = after_sweep(&json!({}), &before);
    for (table, rows) in [
        ("webhook_events", 0),
        ("webhook_events_with_content", 0),
        ("demo_interactions", 0),
        ("demo_voice_sessions", 0),
        ("realtime_token_sessions", 0),
        ("voice_session_metrics", 1),
        ("voice_session_errors", 0),
        ("rate_limits_demo", 0),
        ("search_cache", 0),
        ("health_probes", 0),
        ("voice_rollout_audit", 0),
    ] {
        expected[table] = json!(rows);
    }
    // The request's own window is fresh, the seeded one is not.
    expected["rate_limits"] = json!(1);
    assert_eq!(table_sizes(&env), expected);

    // Within the minute, another caller's request sweeps nothing, and neither does a
    // delivery: the first request of practice-webhook's instance, which asks the gate.
    seed_everything(&env.db, student, "1 hour");
    let reseeded = table_sizes(&env);
    let (_, other) = env.user(None);
    let response = post_json(
        &env.url(&format!("{MONITORING}/metrics")),
        Some(&other),
        &metrics,
    );
    assert_eq!(response.status, 201, "{:?}", response.body);
    let delivery = env.deliver(
        "msg_gate",
        &json!({"type": "practice.unknown", "timestamp": "2025-11-22T10:00:00Z", "data": {}}),
    );
    assert_eq!(delivery.status, 202, "{:?}", delivery.body);
    thread::sleep(Duration::from_secs(2));
    let mut expected = reseeded.clone();
    // One more report and one more delivery; the rate limiter's own sweep took the
    // re-seeded window as the other user's window came.
    for table in [
        "voice_session_metrics",
        "webhook_events",
        "webhook_events_with_content",
    ] {
        expected[table] = json!(reseeded[table].as_i64().unwrap() + 1);
    }
    assert_eq!(
        table_sizes(&env),
        expected,
        "no second sweep within a minute"
    );
    assert_eq!(last_sweep(&env), Some(swept_at));

    // A minute later (the gate moved back), the next response sweeps again. The
    // instances that served the requests above have gone idle (over a second, Spin's
    // default and the host's), so the next one asks the gate with its first response
    // (an instance asks at most every 10 s: `retention::ASK_AT_MOST_EVERY`).
    env.execute("UPDATE retention_sweep_state SET last_sweep_at = now() - interval '61 seconds'");
    let moved_back = last_sweep(&env);
    let delivery = env.deliver(
        "msg_gate_2",
        &json!({"type": "practice.unknown", "timestamp": "2025-11-22T10:00:00Z", "data": {}}),
    );
    assert_eq!(delivery.status, 202, "{:?}", delivery.body);
    wait_for_sweep(&env, moved_back);
    assert_eq!(
        env.count("SELECT count(*) FROM voice_session_errors"),
        0,
        "the second sweep ran"
    );
}

/// One session's metrics, as a client reports them.
fn metrics_body() -> Value {
    json!({
        "implementation_type": "webrtc", "connection_success": true, "connection_time_ms": 300,
        "avg_latency_ms": 200, "p95_latency_ms": 300, "p99_latency_ms": 400,
        "audio_chunks_sent": 10, "audio_chunks_received": 10, "buffer_underruns": 0,
        "reconnection_attempts": 0, "duration_ms": 60000, "session_id": Uuid::new_v4(),
    })
}

/// The gate's time as text.
fn last_sweep(env: &Env) -> Option<String> {
    env.db
        .client()
        .query_one(
            "SELECT CASE WHEN last_sweep_at = '-infinity' THEN NULL
                         ELSE last_sweep_at::text END FROM retention_sweep_state",
            &[],
        )
        .unwrap()
        .get(0)
}

/// Waits (at most 20 s) until a sweep later than `after` is recorded; its time.
fn wait_for_sweep(env: &Env, after: Option<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(now) = last_sweep(env).filter(|now| Some(now) != after.as_ref()) {
            return now;
        }
        assert!(Instant::now() < deadline, "no sweep after the response");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn on_real_pg_cron_the_scheduled_job_sweeps_what_it_should_and_nothing_else() {
    // pg_cron runs jobs in the one database `cron.database_name` names: a cluster of
    // this test's own, restarted once the test database exists.
    let cluster = PgCluster::start_private_with(&[
        ("shared_preload_libraries", "pg_cron"),
        ("cron.use_background_workers", "on"),
        ("max_worker_processes", "16"),
    ]);
    let db = TestDb::create_in(&cluster);
    db.client()
        .batch_execute(&format!(
            "ALTER SYSTEM SET cron.database_name = '{}'",
            db.name()
        ))
        .unwrap();
    cluster.stop();
    cluster.start();
    let mut client = db.client();
    client.batch_execute("CREATE EXTENSION pg_cron").unwrap();
    let schedule =
        std::fs::read_to_string(repo_root().join("sql/migrations/0162_retention_schedule.sql"))
            .unwrap();
    client.batch_execute(&schedule).unwrap();
    // Applied again: still one job.
    client.batch_execute(&schedule).unwrap();
    let jobs: i64 = client
        .query_one(
            "SELECT count(*) FROM cron.job WHERE jobname = 'voice-edge-retention-sweep'
                AND schedule = '* * * * *' AND command LIKE '%public.retention_sweep()%' AND active",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(jobs, 1);
    // With the job there, the functions leave the sweeping to it.
    let deferred: Option<Value> = client
        .query_one("SELECT public.retention_sweep_if_due()", &[])
        .unwrap()
        .get(0);
    assert_eq!(deferred, None);
    drop(client);

    let env = Env {
        app: start_app(&app_vars(&db, JWT_SECRET, None, &[])),
        db,
    };
    let (student, _) = env.user(None);
    seed_everything(&env.db, student, "1 second");
    let fresh_only = table_sizes(&env);
    seed_everything(&env.db, student, "1 hour");
    let before = table_sizes(&env);
    env.execute(SHORT_RETENTION);
    // The wait below is up to 90 s: the fresh windows must outlive it.
    env.execute("UPDATE data_retention_settings SET rate_limit_windows = '10 minutes'");

    // pg_cron 1.4 (Debian 12) schedules by the minute: the first run comes within 60 s.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let runs = env.count(
            "SELECT count(*) FROM cron.job_run_details d JOIN cron.job j USING (jobid)
              WHERE j.jobname = 'voice-edge-retention-sweep' AND d.status = 'succeeded'",
        );
        if runs > 0 {
            break;
        }
        let failed: Option<String> = env
            .db
            .client()
            .query_one(
                "SELECT max(return_message) FROM cron.job_run_details WHERE status = 'failed'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(failed, None, "the job failed");
        assert!(Instant::now() < deadline, "pg_cron never ran the job");
        thread::sleep(Duration::from_millis(500));
    }
    let expected = after_sweep(&fresh_only, &before);
    assert_eq!(
        env.count(
            "SELECT count(*) FROM retention_sweep_state WHERE last_result ? 'webhook_events'"
        ),
        1,
        "the job keeps its counts"
    );
    assert_eq!(table_sizes(&env), expected);
    drop(env);
    drop(cluster);
}

// ---------------------------------------------------------------------------------------
// Removing the demo system

#[test]
fn after_removing_the_demo_production_works_and_migrations_do_not_bring_it_back() {
    let db = TestDb::create();
    let removal = repo_root().join("sql/removal/remove_demo_system.sql");
    let apply = |db: &TestDb| {
        let sql = std::fs::read_to_string(&removal).unwrap();
        db.client().batch_execute(&sql).unwrap();
    };
    apply(&db);
    apply(&db); // idempotent
    let env = Env::start_with(db);
    let isolation = |env: &Env| {
        env.count("SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'demo_%'")
    };
    assert_eq!(isolation(&env), 0);
    assert_eq!(
        env.count("SELECT count(*) FROM pg_proc WHERE proname = 'demo_rate_limit_hit'"),
        0
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = 'demo_relay'"
        ),
        0,
        "demo_relay holds nothing here"
    );

    // The production functions: metrics, summary, a delivery, erasure, the sweep.
    let (student, token) = env.user(None);
    let (_, admin) = env.user(Some("admin"));
    let response = post_json(
        &env.url(&format!("{MONITORING}/metrics")),
        Some(&token),
        &metrics_body(),
    );
    assert_eq!(response.status, 201, "{:?}", response.body);
    let response = send(
        "GET",
        &env.url(&format!("{MONITORING}/summary")),
        &[("authorization", &bearer(&admin))],
        b"",
    );
    assert_eq!(response.status, 200, "{:?}", response.body);
    let session = Uuid::new_v4();
    env.execute(&format!(
        "INSERT INTO practice_sessions (id, user_id, status) VALUES ('{session}', '{student}', 'analyzing')"
    ));
    let response = env.deliver("msg_no_demo", &scored(session, Uuid::new_v4(), 80.0));
    assert_eq!(response.status, 200, "{:?}", response.body);
    let response = send("GET", &env.url("/functions/v1/health"), &[], b"");
    assert!(response.status == 200, "{:?}", response.body);
    assert_eq!(response.body["database"], json!(true));
    let response = env.erase(
        Some(&admin),
        &json!({"user_id": student, "include_practice": true, "reason": "request"}),
    );
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["erased"]["practice_sessions"], json!(1));
    assert_eq!(response.body["erased"].get("demo_voice_sessions"), None);
    let swept: Value = env
        .db
        .client()
        .query_one("SELECT public.retention_sweep()", &[])
        .unwrap()
        .get(0);
    assert_eq!(swept["demo_voice_sessions"], json!(0));

    // The migrations again, as every deploy applies them: no demo, unless asked.
    let migrate = |restore: bool| {
        let output = Command::new(repo_root().join("scripts/migrate.sh"))
            .arg(env.db.url())
            .env("RESTORE_DEMO", if restore { "1" } else { "0" })
            .output()
            .expect("running scripts/migrate.sh");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let stdout = migrate(false);
    assert!(stdout.contains("0001_demo_tables.sql skipped"), "{stdout}");
    assert_eq!(isolation(&env), 0);
    let stdout = migrate(true);
    assert!(!stdout.contains("skipped"), "{stdout}");
    assert_eq!(isolation(&env), 3, "asked for, the demo is back");
    assert_eq!(
        env.count("SELECT count(*) FROM voice_edge_removed_components"),
        0
    );
}

// ---------------------------------------------------------------------------------------
// A bounded database (the longer run is `make bench`'s `retention` scenario)

#[test]
fn with_short_retention_the_tables_stop_growing_under_load() {
    let env = Env::start();
    env.execute(
        "UPDATE data_retention_settings SET delivery_content = '1 second',
             delivery_rows = '1 second', session_metrics = '1 second', session_errors = '1 second'",
    );
    let students: Vec<(Uuid, String)> = (0..4).map(|_| env.user(None)).collect();
    let sizes = |env: &Env| {
        env.count(
            "SELECT (SELECT count(*) FROM webhook_events) + (SELECT count(*) FROM voice_session_metrics)
                  + (SELECT count(*) FROM voice_session_errors)",
        )
    };
    let mut after_each_round = Vec::new();
    let mut sent = 0;
    for round in 0..3 {
        for (index, (_, token)) in students.iter().enumerate() {
            let response = post_json(
                &env.url(&format!("{MONITORING}/metrics")),
                Some(token),
                &metrics_body(),
            );
            assert_eq!(response.status, 201, "{:?}", response.body);
            let response = post_json(
                &env.url(&format!("{MONITORING}/errors")),
                Some(token),
                &json!({"error_type": "network", "error_message": "ICE failed",
                        "is_retryable": true, "implementation_type": "webrtc"}),
            );
            assert_eq!(response.status, 201, "{:?}", response.body);
            let delivery = env.deliver(
                &format!("msg_load_{round}_{index}"),
                &json!({"type": "practice.unknown", "timestamp": "2025-11-22T10:00:00Z", "data": {}}),
            );
            assert_eq!(delivery.status, 202, "{:?}", delivery.body);
            sent += 3;
        }
        // A minute passes (the gate moves back) and what was sent is past its retention.
        // Over a second idle also ends the instances that served this round, so the
        // next one asks the gate with its first response (an instance asks at most
        // every 10 s: `retention::ASK_AT_MOST_EVERY`).
        thread::sleep(Duration::from_millis(1500));
        env.execute("UPDATE retention_sweep_state SET last_sweep_at = '-infinity'");
        let delivery = env.deliver(
            &format!("msg_load_{round}_sweep"),
            &json!({"type": "practice.unknown", "timestamp": "2025-11-22T10:00:00Z", "data": {}}),
        );
        assert_eq!(delivery.status, 202, "{:?}", delivery.body);
        sent += 1;
        wait_for_sweep(&env, None);
        after_each_round.push(sizes(&env));
    }
    // Each sweep leaves at most the request that triggered it: 36 rows sent, never
    // more than a round's worth kept.
    assert_eq!(sent, 39);
    for kept in &after_each_round {
        assert!(
            *kept <= 1,
            "rows kept after each round: {after_each_round:?}"
        );
    }
}
