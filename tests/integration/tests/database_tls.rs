//! Every function against a PostgreSQL that speaks TLS only, as a hosted one that
//! enforces it does (CONTRACT.md section 8, `db_ca_cert`; issue 12): `ssl=on`, a server
//! certificate signed by a CA made for the test, and `pg_hba.conf` accepting `hostssl`
//! only. Given that CA in `db_ca_cert`, the functions connect through Spin's connection
//! builder over verified TLS, `db_url` and the demo relay's `demo_db_url` alike; given
//! another CA, or none, they answer `503 database_unavailable` with `Retry-After`, write
//! nothing, and show neither the certificate nor a connection string in a body or a
//! log line. Runs under both runtimes (`VOICE_EDGE_RUNTIME=host|spin`).
//!
//! ```sh
//! make build-components
//! cargo test --profile host -p voice-edge-integration --test database_tls
//! ```

use serde_json::{Value, json};
use uuid::Uuid;
use voice_edge_integration::{
    AuthUser, Response, WEBHOOK_SECRET, app_vars, bearer, now_unix, send, start_app, user_jwt,
};
use voice_edge_openai_standin::StandIn;
use voice_edge_testkit::app::TestApp;
use voice_edge_testkit::pg::{DEMO_RELAY_PASSWORD, PgCluster, SUPERUSER_PASSWORD, TestDb};
use voice_edge_testkit::tls::TestCa;

const API_KEY: &str = "sk-test-database-tls-5d2e9a7c41b3";
const JWT_SECRET: &str = "database-tls-test-jwt-secret-0123456789abcdef";

/// One test's database in the shared TLS-only cluster, the OpenAI stand-in, and the
/// app on that database, given `ca` (PEM) as `db_ca_cert`.
struct World {
    db: TestDb,
    openai: StandIn,
    app: TestApp,
    /// The PEM the app was given, to look for in bodies and logs.
    ca: Option<String>,
}

impl World {
    fn start(ca: Option<&str>) -> World {
        let db = TestDb::create_in(&PgCluster::shared_tls().cluster);
        World::start_on(db, ca, &[])
    }

    /// The app on `db` with `ca`, then `overrides` (connection strings, for instance).
    fn start_on(db: TestDb, ca: Option<&str>, overrides: &[(&str, &str)]) -> World {
        let openai = StandIn::start();
        let base_url = openai.base_url();
        let mut vars = vec![("openai_base_url", base_url.as_str())];
        if let Some(ca) = ca {
            vars.push(("db_ca_cert", ca));
        }
        vars.extend_from_slice(overrides);
        let app = start_app(&app_vars(&db, JWT_SECRET, Some(API_KEY), &vars));
        World {
            db,
            openai,
            app,
            ca: ca.map(str::to_string),
        }
    }

    /// Calls the function at `path` (below `/functions/v1/`).
    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &Value) -> Response {
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let mut headers = headers.to_vec();
        headers.push(("content-type", "application/json"));
        let response = send(
            method,
            &self.app.url(&format!("/functions/v1/{path}")),
            &headers,
            &body,
        );
        self.assert_no_secret_in(&response.text, &format!("the body of {method} {path}"));
        response
    }

    fn health(&self) -> Response {
        self.call("GET", "health", &[], &Value::Null)
    }

    /// A practice session of a new user, for a webhook to update.
    fn practice_session(&self) -> Uuid {
        let user = AuthUser::with_email("tls.example").insert(&self.db);
        let session = Uuid::new_v4();
        self.db
            .client()
            .execute(
                "INSERT INTO practice_sessions (id, user_id, status, transcript) \
                 VALUES ($1, $2, 'processing', 'the quick brown fox')",
                &[&session, &user],
            )
            .expect("a practice session");
        session
    }

    /// A ClassConnect delivery improving `session`'s transcript, signed as Standard
    /// Webhooks are.
    fn deliver_improved_transcript(&self, id: &str, session: Uuid) -> Response {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        use hmac::{Hmac, Mac};
        let body = json!({
            "type": "practice.transcript.improved",
            "timestamp": "2026-01-05T10:00:00Z",
            "data": {"session_id": session, "improved_transcript": "The quick brown fox."},
        });
        let timestamp = now_unix().to_string();
        let key = STANDARD
            .decode(WEBHOOK_SECRET.strip_prefix("whsec_").unwrap())
            .unwrap();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        let signature = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        self.call(
            "POST",
            "practice-webhook",
            &[
                ("webhook-id", id),
                ("webhook-timestamp", &timestamp),
                ("webhook-signature", &signature),
            ],
            &body,
        )
    }

    /// Calls every function that opens a database connection, once each, as a user
    /// of its own; the answers in order: health, webhook, token, demo session, metrics,
    /// search.
    fn call_every_function(&self) -> Vec<(&'static str, Response)> {
        let session = self.practice_session();
        let user = AuthUser::with_email("tls.example").insert(&self.db);
        let token = bearer(&user_jwt(user, JWT_SECRET));
        let auth = [("authorization", token.as_str())];
        let activity: Uuid = self
            .db
            .client()
            .query_one(
                "SELECT id FROM demo_activities WHERE is_published ORDER BY id LIMIT 1",
                &[],
            )
            .expect("a seeded demo activity")
            .get(0);
        vec![
            ("health", self.health()),
            (
                "practice-webhook",
                self.deliver_improved_transcript(&format!("msg_tls_{session}"), session),
            ),
            (
                "realtime-student-guide-token",
                self.call(
                    "POST",
                    "realtime-student-guide-token",
                    &auth,
                    &json!({"persona": "demo-guide"}),
                ),
            ),
            (
                "realtime-voice-demo-relay",
                self.call(
                    "POST",
                    "realtime-voice-demo-relay/sessions",
                    &auth,
                    &json!({"demo_activity_id": activity}),
                ),
            ),
            (
                "voice-monitoring",
                self.call(
                    "POST",
                    "voice-monitoring/metrics",
                    &auth,
                    &json!({
                        "implementation_type": "webrtc", "connection_success": true,
                        "connection_time_ms": 250, "avg_latency_ms": 120.0,
                        "p95_latency_ms": 180.0, "p99_latency_ms": 240.0,
                        "audio_chunks_sent": 1200, "audio_chunks_received": 1180,
                        "buffer_underruns": 1, "reconnection_attempts": 0,
                        "duration_ms": 90000,
                    }),
                ),
            ),
            (
                "voice-agent-search",
                self.call(
                    "POST",
                    "voice-agent-search",
                    &auth,
                    &json!({"query": "How far is the moon?"}),
                ),
            ),
        ]
    }

    fn count(&self, table: &str) -> i64 {
        self.db
            .client()
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .expect("counting rows")
            .get(0)
    }

    /// What the functions write, table by table.
    fn written(&self) -> Vec<(&'static str, i64)> {
        [
            "webhook_events",
            "realtime_token_sessions",
            "demo_voice_sessions",
            "voice_session_metrics",
            "search_cache",
            "rate_limits",
        ]
        .into_iter()
        .map(|table| (table, self.count(table)))
        .collect()
    }

    /// Neither the certificate, a password nor a connection string is in `text`.
    fn assert_no_secret_in(&self, text: &str, what: &str) {
        for secret in [
            SUPERUSER_PASSWORD,
            DEMO_RELAY_PASSWORD,
            "postgres://",
            "BEGIN CERTIFICATE",
        ] {
            assert!(!text.contains(secret), "{what} holds {secret:?}: {text}");
        }
        if let Some(ca) = &self.ca {
            // Any line of the certificate's base64 body.
            for line in ca
                .lines()
                .filter(|line| line.len() > 16 && !line.starts_with("-----"))
            {
                assert!(
                    !text.contains(line),
                    "{what} holds a line of the certificate: {text}"
                );
            }
        }
    }

    fn assert_logs_hold_no_secret(&self) {
        let logs = self.app.logs();
        assert!(!logs.is_empty(), "the app logs its requests");
        for line in &logs {
            self.assert_no_secret_in(line, "a log line");
        }
    }

    /// Asserts that every function answered `503 database_unavailable` with
    /// `Retry-After` (health: `503 unhealthy`), and that nothing was written.
    fn assert_every_function_is_unavailable(&self) {
        for (function, response) in self.call_every_function() {
            assert_eq!(response.status, 503, "{function}: {response:?}");
            assert!(
                response.header("retry-after").is_some(),
                "{function}: no Retry-After"
            );
            if function == "health" {
                assert_eq!(response.body["status"], "unhealthy", "{response:?}");
                assert_eq!(response.body["database"], false, "{response:?}");
            } else {
                assert_eq!(
                    response.body["error"], "database_unavailable",
                    "{function}: {response:?}"
                );
            }
        }
        for (table, rows) in self.written() {
            assert_eq!(rows, 0, "{table}: nothing is written");
        }
        assert!(
            self.openai.requests().is_empty(),
            "no upstream call without the database: {:?}",
            self.openai.requests().len()
        );
        self.assert_logs_hold_no_secret();
    }
}

#[test]
fn with_the_servers_ca_every_function_works_over_verified_tls() {
    let tls = PgCluster::shared_tls();
    let world = World::start(Some(&tls.ca.pem()));
    let answers = world.call_every_function();
    let status = |name: &str| {
        let (_, response) = answers
            .iter()
            .find(|(function, _)| *function == name)
            .unwrap();
        (response.status, response.body.clone())
    };
    let (code, body) = status("health");
    assert_eq!(
        (code, &body["status"], &body["database"]),
        (200, &json!("healthy"), &json!(true)),
        "{body}"
    );
    let (code, body) = status("practice-webhook");
    assert_eq!((code, body), (200, json!({"status": "processed"})));
    let (code, body) = status("realtime-student-guide-token");
    assert_eq!(code, 200, "{body}");
    assert!(
        body["token"]
            .as_str()
            .is_some_and(|token| !token.is_empty()),
        "{body}"
    );
    let (code, body) = status("realtime-voice-demo-relay");
    assert_eq!(code, 201, "{body}");
    let (code, body) = status("voice-monitoring");
    assert_eq!(code, 201, "{body}");
    let (code, body) = status("voice-agent-search");
    assert_eq!(code, 200, "{body}");

    let written: Vec<(&str, i64)> = world.written();
    for (table, rows) in &written {
        assert!(*rows >= 1, "{table} has the function's row: {written:?}");
    }
    let improved: Option<String> = world
        .db
        .client()
        .query_one("SELECT improved_transcript FROM practice_sessions", &[])
        .unwrap()
        .get(0);
    assert_eq!(improved.as_deref(), Some("The quick brown fox."));

    // Both roles' connections were made, over TLS (the server allows nothing else, and
    // says so in pg_stat_ssl).
    let sessions = world
        .db
        .client()
        .query(
            "SELECT DISTINCT a.usename::text, s.ssl FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) \
             WHERE a.datname = current_database() AND a.client_addr IS NOT NULL \
             ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, bool>(1)))
        .collect::<Vec<_>>();
    assert_eq!(
        sessions,
        [
            ("demo_relay".to_string(), true),
            ("postgres".to_string(), true)
        ],
        "the app's pooled connections, by role"
    );
    world.assert_logs_hold_no_secret();
}

#[test]
fn with_a_ca_a_connection_string_without_sslmode_is_made_to_require_tls() {
    let tls = PgCluster::shared_tls();
    let db = TestDb::create_in(&tls.cluster);
    let no_mode = |url: String| url.replace("?sslmode=require", "");
    let (url, demo_url) = (no_mode(db.url()), no_mode(db.demo_url()));
    assert!(!url.contains("sslmode") && !demo_url.contains("sslmode"));
    let world = World::start_on(
        db,
        Some(&tls.ca.pem()),
        &[("db_url", &url), ("demo_db_url", &demo_url)],
    );
    for (function, response) in world.call_every_function() {
        assert!(
            [200, 201].contains(&response.status),
            "{function}: {response:?}"
        );
    }
    world.assert_logs_hold_no_secret();
}

#[test]
fn with_another_ca_every_function_answers_503_and_writes_nothing() {
    let other_ca = TestCa::new("a CA the database does not know");
    let world = World::start(Some(&other_ca.pem()));
    world.assert_every_function_is_unavailable();
}

#[test]
fn without_a_ca_a_server_that_requires_tls_is_unavailable_and_nothing_is_written() {
    // As the tests give it: `sslmode=require`, checked against the public roots only.
    let world = World::start(None);
    world.assert_every_function_is_unavailable();
}

#[test]
fn without_a_ca_plain_text_is_refused_by_the_server_and_nothing_is_written() {
    let tls = PgCluster::shared_tls();
    let db = TestDb::create_in(&tls.cluster);
    let plain = |url: String| url.replace("sslmode=require", "sslmode=disable");
    let (url, demo_url) = (plain(db.url()), plain(db.demo_url()));
    let world = World::start_on(db, None, &[("db_url", &url), ("demo_db_url", &demo_url)]);
    let response = world.health();
    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(response.body["status"], "unhealthy");
    let session = Uuid::new_v4();
    let response = world.deliver_improved_transcript("msg_plain", session);
    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(response.body["error"], "database_unavailable");
    assert!(response.header("retry-after").is_some());
    assert_eq!(world.count("webhook_events"), 0);
    world.assert_logs_hold_no_secret();
}

#[test]
fn with_a_ca_a_connection_string_that_allows_plain_text_is_a_configuration_error() {
    let tls = PgCluster::shared_tls();
    let db = TestDb::create_in(&tls.cluster);
    let url = db.url().replace("sslmode=require", "sslmode=disable");
    let world = World::start_on(db, Some(&tls.ca.pem()), &[("db_url", &url)]);
    let session = world.practice_session();
    let response = world.deliver_improved_transcript("msg_disable", session);
    assert_eq!(response.status, 500, "{response:?}");
    assert_eq!(response.body["error"], "configuration_error");
    assert_eq!(world.count("webhook_events"), 0);
    let logs = world.app.logs().join("\n");
    assert!(
        logs.contains("variable `db_url` is invalid: with `db_ca_cert` set, sslmode=disable"),
        "the log names the variable and the mode: {logs}"
    );
    world.assert_logs_hold_no_secret();
}

#[test]
fn a_ca_that_is_not_a_certificate_is_a_configuration_error() {
    let bad_pem =
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    for (ca, logged) in [
        (
            "/etc/ssl/certs/prod-ca-2021.crt",
            "variable `db_ca_cert` is invalid: not a PEM certificate",
        ),
        (
            bad_pem,
            "variable `db_ca_cert` is invalid: the runtime refused it as a root certificate",
        ),
    ] {
        let world = World::start(Some(ca));
        let session = world.practice_session();
        let response = world.deliver_improved_transcript("msg_bad_ca", session);
        assert_eq!(response.status, 500, "{response:?}");
        assert_eq!(response.body["error"], "configuration_error");
        assert_eq!(world.count("webhook_events"), 0);
        let logs = world.app.logs().join("\n");
        assert!(logs.contains(logged), "{logged}: {logs}");
        assert!(
            !logs.contains("prod-ca-2021"),
            "the value is not logged: {logs}"
        );
        assert!(
            !logs.contains("bm90IGEgY2VydGlmaWNhdGU"),
            "the value is not logged: {logs}"
        );
    }
}

/// Issue 23, item 5: without `db_ca_cert`, a connection string to a host that is not
/// loopback must state `sslmode=require` or stricter (or `disable` written out): none,
/// or `prefer` hidden behind a percent-encoded key (`ssl%6Dode`, which PostgreSQL
/// decodes), is a configuration error in every function — `500 configuration_error`
/// naming the variable in the log, with no password in the body or the log — and
/// nothing is written or sent upstream.
#[test]
fn without_a_ca_a_url_to_another_host_without_a_strict_sslmode_is_a_configuration_error() {
    for query in ["", "?ssl%6Dode=prefer", "?sslmode=allow"] {
        let db = TestDb::create();
        let db_url =
            format!("postgres://postgres:{SUPERUSER_PASSWORD}@db.internal:5432/app{query}");
        let demo_url =
            format!("postgres://demo_relay:{DEMO_RELAY_PASSWORD}@db.internal:5432/app{query}");
        let world = World::start_on(db, None, &[("db_url", &db_url), ("demo_db_url", &demo_url)]);
        for (function, response) in world.call_every_function() {
            assert_eq!(response.status, 500, "{query}: {function}: {response:?}");
            assert_eq!(response.body["code"], 500, "{function}: {response:?}");
            assert_eq!(
                response.body["error"], "configuration_error",
                "{query}: {function}: {response:?}"
            );
            assert!(response.body["message"].is_string(), "{response:?}");
            world.assert_no_secret_in(&response.text, function);
        }
        for (table, rows) in world.written() {
            assert_eq!(rows, 0, "{query}: {table}: nothing is written");
        }
        assert!(
            world.openai.requests().is_empty(),
            "{query}: nothing sent upstream"
        );
        let logs = world.app.logs().join("\n");
        assert!(
            logs.contains("variable `db_url` is invalid: without `db_ca_cert`")
                && logs.contains("variable `demo_db_url` is invalid: without `db_ca_cert`"),
            "{query}: the log names the variables: {logs}"
        );
        world.assert_logs_hold_no_secret();
    }
}
