//! `voice-monitoring` through the host against a real PostgreSQL (CONTRACT.md section 6):
//! metrics and errors in, the dashboard's summary with the migration guide's red flags
//! and recommendation out, and the guarded rollout change with its audit row.
//!
//! Every test has its own database. Windows are seeded with SQL (with chosen ages) where
//! the test is about the rules, and through `POST /metrics` where it is about ingestion.
//!
//! ```sh
//! cargo test --profile host -p voice-edge-integration --test voice_monitoring
//! ```

use serde_json::{Value, json};
use uuid::Uuid;
use voice_edge_integration::{
    AuthUser, Response, anon_jwt, app_vars, bearer, hs256, key_jwt, now_unix, send, start_app,
    user_claims,
};
use voice_edge_testkit::app::TestApp;
use voice_edge_testkit::pg::{PgCluster, TestDb};

const JWT_SECRET: &str = "monitoring-test-jwt-secret-0123456789abcdef";
const FLAG: &str = "voice_webrtc_migration";
const MONITORING: &str = "/functions/v1/voice-monitoring";
const TOKEN: &str = "/functions/v1/realtime-student-guide-token";

// ---------------------------------------------------------------------------------------
// HTTP and tokens

fn call(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> Response {
    let authorization = token.map(bearer);
    let mut headers = Vec::new();
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization.as_str()));
    }
    let payload = match body {
        Some(body) => {
            headers.push(("content-type", "application/json"));
            body.to_string()
        }
        None => String::new(),
    };
    send(method, url, &headers, payload.as_bytes())
}

/// An HS256 token as Supabase Auth mints them.
fn mint(claims: &Value) -> String {
    hs256(claims, JWT_SECRET)
}

fn service_role_token() -> String {
    key_jwt("service_role", JWT_SECRET)
}

fn anon_token() -> String {
    anon_jwt(JWT_SECRET)
}

/// A user of `auth.users` and a token of theirs.
struct User {
    id: Uuid,
    token: String,
}

/// Creates a user with the platform role `app_role` (`None`: a student).
fn user(db: &TestDb, app_role: Option<&str>) -> User {
    let app_metadata = match app_role {
        Some(role) => json!({"provider": "email", "role": role}),
        None => json!({"provider": "email"}),
    };
    let user = AuthUser {
        app_metadata,
        ..AuthUser::with_email("school.example")
    };
    let id = user.insert(db);
    let token = mint(&user_claims(id, false, user.app_metadata));
    User { id, token }
}

// ---------------------------------------------------------------------------------------
// The app and its database

struct Env {
    db: TestDb,
    app: TestApp,
    student: User,
    teacher: User,
    admin: User,
}

impl Env {
    fn start() -> Env {
        Env::start_with(TestDb::create())
    }

    fn start_with(db: TestDb) -> Env {
        let app = start_app(&app_vars(&db, JWT_SECRET, None, &[]));
        let student = user(&db, None);
        let teacher = user(&db, Some("teacher"));
        let admin = user(&db, Some("admin"));
        Env {
            db,
            app,
            student,
            teacher,
            admin,
        }
    }

    fn url(&self, path: &str) -> String {
        self.app.url(&format!("{MONITORING}{path}"))
    }

    fn summary(&self, hours: u32) -> Value {
        let response = call(
            "GET",
            &self.url(&format!("/summary?hours={hours}")),
            Some(&self.teacher.token),
            None,
        );
        assert_eq!(response.status, 200, "{:?}", response.body);
        response.body
    }

    fn rollout(&self, token: &str, body: Value) -> Response {
        call("POST", &self.url("/rollout"), Some(token), Some(&body))
    }

    fn set_flag(&self, enabled: bool, percentage: i32) {
        self.db
            .client()
            .execute(
                "UPDATE voice_feature_flags SET enabled = $1, rollout_percentage = $2 WHERE flag_name = $3",
                &[&enabled, &percentage, &FLAG],
            )
            .expect("setting the flag");
    }

    fn flag(&self) -> (bool, i32) {
        let row = self
            .db
            .client()
            .query_one(
                "SELECT enabled, rollout_percentage FROM voice_feature_flags WHERE flag_name = $1",
                &[&FLAG],
            )
            .expect("the flag row");
        (row.get("enabled"), row.get("rollout_percentage"))
    }

    fn count(&self, table: &str) -> i64 {
        self.db
            .client()
            .query_one(&format!("SELECT count(*) AS n FROM {table}"), &[])
            .expect("counting rows")
            .get("n")
    }

    /// Stores sessions as clients would have reported them, each `hours_ago` old, each
    /// by a user of its own (a red flag needs several users behind it).
    fn seed_sessions(&self, sessions: &[Session]) {
        let mut client = self.db.client();
        for session in sessions {
            let owner = Uuid::new_v4();
            client
                .execute("INSERT INTO auth.users (id) VALUES ($1)", &[&owner])
                .expect("inserting the session's owner");
            client
                .execute(
                    "INSERT INTO voice_session_metrics (
                         user_id, implementation_type, connection_success, connection_time_ms,
                         avg_latency_ms, p95_latency_ms, p99_latency_ms, audio_chunks_sent,
                         audio_chunks_received, buffer_underruns, reconnection_attempts,
                         duration_ms, created_at, session_id)
                     VALUES ($1, $2, $3, 300, $4, $4, $4, 500, 500, $5, $6, 60000,
                             now() - make_interval(secs => $7), $8)",
                    &[
                        &owner,
                        &session.implementation,
                        &session.connected,
                        &session.latency_ms,
                        &session.underruns,
                        &session.reconnections,
                        &(session.hours_ago * 3600.0),
                        &Uuid::new_v4().to_string(),
                    ],
                )
                .expect("seeding a session");
        }
    }

    /// Stores one client error, `hours_ago` old, for each of `count` seeded sessions of
    /// `implementation` that have none yet, reported by the session's own user (an
    /// error counts only for a session its user reported).
    fn seed_errors(&self, implementation: &str, count: i64, hours_ago: f64) {
        let seeded = self
            .db
            .client()
            .execute(
                "INSERT INTO voice_session_errors (
                     user_id, session_id, implementation_type, error_type, error_message,
                     is_retryable, created_at)
                 SELECT m.user_id, m.session_id, m.implementation_type, 'connection_failed',
                        'seeded', true, now() - make_interval(secs => $3)
                   FROM voice_session_metrics m
                  WHERE m.implementation_type = $1
                    AND NOT EXISTS (SELECT 1 FROM voice_session_errors e
                                     WHERE e.user_id = m.user_id AND e.session_id = m.session_id)
                  ORDER BY m.id LIMIT $2",
                &[&implementation, &count, &(hours_ago * 3600.0)],
            )
            .expect("seeding errors");
        assert_eq!(seeded, count as u64, "sessions left to attach errors to");
    }

    /// Changes `count` connected sessions of `implementation` (the lowest ids).
    fn update_sessions(&self, implementation: &str, count: i64, set: &str) {
        let changed = self
            .db
            .client()
            .execute(
                &format!(
                    "UPDATE voice_session_metrics SET {set} WHERE id IN (
                         SELECT id FROM voice_session_metrics
                         WHERE implementation_type = $1 AND connection_success
                         ORDER BY id LIMIT $2)"
                ),
                &[&implementation, &count],
            )
            .expect("updating sessions");
        assert_eq!(changed, count as u64);
    }
}

/// One seeded session.
#[derive(Debug, Clone, Copy)]
struct Session {
    implementation: &'static str,
    connected: bool,
    latency_ms: f64,
    underruns: i32,
    reconnections: i32,
    hours_ago: f64,
}

impl Session {
    /// A connected session of an hour ago at 200 ms, with nothing wrong.
    fn ok(implementation: &'static str) -> Session {
        Session {
            implementation,
            connected: true,
            latency_ms: 200.0,
            underruns: 0,
            reconnections: 0,
            hours_ago: 1.0,
        }
    }

    fn failed(implementation: &'static str) -> Session {
        Session {
            connected: false,
            latency_ms: 0.0,
            ..Session::ok(implementation)
        }
    }

    fn times(self, count: usize) -> Vec<Session> {
        vec![self; count]
    }
}

fn names(summary: &Value) -> Vec<String> {
    summary["red_flags"]
        .as_array()
        .expect("red_flags is an array")
        .iter()
        .map(|flag| flag["name"].as_str().expect("a name").to_string())
        .collect()
}

/// A window of 20 sessions per implementation in which WebRTC connects 17 times: 85 %.
fn seed_85_percent_window(env: &Env) {
    let mut sessions = Session::ok("webrtc").times(17);
    sessions.extend(Session::failed("webrtc").times(3));
    sessions.extend(Session::ok("websocket").times(20));
    env.seed_sessions(&sessions);
}

// ---------------------------------------------------------------------------------------
// The 85 % window: red flag, rollback, raise refused, lowering works

#[test]
fn summary_of_a_window_where_webrtc_connects_85_percent_shows_the_red_flag_and_rollback() {
    let env = Env::start();
    seed_85_percent_window(&env);

    let summary = env.summary(24);
    let webrtc = &summary["implementations"]["webrtc"];
    assert_eq!(webrtc["sessions"], 20);
    assert_eq!(webrtc["successful_sessions"], 17);
    assert_eq!(webrtc["success_rate_percent"], 85.0);
    assert_eq!(
        summary["implementations"]["websocket"]["success_rate_percent"],
        100.0
    );
    assert_eq!(
        summary["red_flags"],
        json!([{"name": "webrtc_success_rate", "implementation": "webrtc", "value": 85.0, "threshold": 90.0}])
    );
    assert_eq!(summary["recommendation"], "rollback");
    assert_eq!(summary["window_hours"], 24);
    assert_eq!(summary["flag"]["name"], FLAG);
    assert_eq!(summary["flag"]["enabled"], false);
    assert_eq!(summary["flag"]["rollout_percentage"], 0);
    assert_eq!(summary["thresholds"]["min_sessions_per_implementation"], 20);
}

#[test]
fn raising_the_rollout_while_webrtc_connects_85_percent_is_409_and_changes_nothing() {
    let env = Env::start();
    seed_85_percent_window(&env);
    env.set_flag(true, 10);

    let response = env.rollout(
        &env.admin.token,
        json!({"percentage": 50, "reason": "phase 2"}),
    );
    assert_eq!(response.status, 409, "{:?}", response.body);
    assert_eq!(response.body["code"], 409);
    assert_eq!(response.body["error"], "red_flags_standing");
    assert!(
        response.body["message"]
            .as_str()
            .unwrap()
            .contains("webrtc_success_rate")
    );
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));

    // Re-enabling a disabled flag exposes students too.
    env.set_flag(false, 10);
    let response = env.rollout(
        &env.admin.token,
        json!({"percentage": 10, "reason": "back on"}),
    );
    assert_eq!(response.status, 409, "{:?}", response.body);

    assert_eq!(env.flag(), (false, 10));
    assert_eq!(
        env.count("voice_rollout_audit"),
        0,
        "a refused change writes nothing"
    );
}

#[test]
fn forcing_a_raise_over_a_red_flag_goes_through_and_is_audited_as_forced() {
    let env = Env::start();
    seed_85_percent_window(&env);
    env.set_flag(true, 10);

    let response = env.rollout(
        &env.admin.token,
        json!({"percentage": 50, "reason": "failures are one school's firewall", "force": true}),
    );
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["forced"], true);
    assert_eq!(response.body["direction"], "raise");
    assert_eq!(response.body["flag"]["rollout_percentage"], 50);
    assert_eq!(response.body["red_flags"][0]["name"], "webrtc_success_rate");
    assert_eq!(env.flag(), (true, 50));

    let row = env
        .db
        .client()
        .query_one(
            "SELECT forced, red_flags, from_percentage, to_percentage FROM voice_rollout_audit",
            &[],
        )
        .expect("one audit row");
    assert!(row.get::<_, bool>("forced"));
    assert_eq!(row.get::<_, i32>("from_percentage"), 10);
    assert_eq!(row.get::<_, i32>("to_percentage"), 50);
    let red_flags: Value = row.get("red_flags");
    assert_eq!(red_flags[0]["name"], "webrtc_success_rate");
}

#[test]
fn lowering_to_zero_during_a_red_flag_works_and_the_token_function_then_falls_back_for_everyone() {
    let env = Env::start();
    seed_85_percent_window(&env);
    env.set_flag(true, 100);
    let students: Vec<User> = (0..12).map(|_| user(&env.db, None)).collect();
    for student in &students {
        let flag = call(
            "GET",
            &env.app.url(&format!("{TOKEN}/flag")),
            Some(&student.token),
            None,
        );
        assert_eq!(flag.status, 200, "{:?}", flag.body);
        assert_eq!(flag.body["enrolled"], true, "at 100 % everyone is enrolled");
    }

    let response = env.rollout(
        &env.admin.token,
        json!({"percentage": 0, "reason": "WebRTC success rate 85 %"}),
    );
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["direction"], "lower");
    assert_eq!(response.body["forced"], false);
    assert_eq!(
        response.body["previous"],
        json!({"enabled": true, "rollout_percentage": 100})
    );
    assert_eq!(response.body["flag"]["enabled"], false);
    assert_eq!(response.body["flag"]["rollout_percentage"], 0);
    assert!(Uuid::parse_str(response.body["audit_id"].as_str().unwrap()).is_ok());
    assert_eq!(env.flag(), (false, 0));

    let row = env
        .db
        .client()
        .query_one(
            "SELECT id, flag_name, actor_id, actor_role, from_enabled, from_percentage, to_enabled,
                    to_percentage, reason, forced
             FROM voice_rollout_audit",
            &[],
        )
        .expect("exactly one audit row");
    assert_eq!(
        row.get::<_, Uuid>("id").to_string(),
        response.body["audit_id"].as_str().unwrap()
    );
    assert_eq!(row.get::<_, String>("flag_name"), FLAG);
    assert_eq!(row.get::<_, Option<Uuid>>("actor_id"), Some(env.admin.id));
    assert_eq!(row.get::<_, String>("actor_role"), "admin");
    assert!(row.get::<_, bool>("from_enabled"));
    assert_eq!(row.get::<_, i32>("from_percentage"), 100);
    assert!(!row.get::<_, bool>("to_enabled"));
    assert_eq!(row.get::<_, i32>("to_percentage"), 0);
    assert_eq!(row.get::<_, String>("reason"), "WebRTC success rate 85 %");
    assert!(!row.get::<_, bool>("forced"));

    // The token function reads the flag on every request: nobody is enrolled any more.
    for student in &students {
        let answer = call(
            "POST",
            &env.app.url(TOKEN),
            Some(&student.token),
            Some(&json!({"persona": "student-tutor"})),
        );
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        assert_eq!(answer.body["mode"], "fallback");
        assert_eq!(answer.body["implementation"], "websocket");
        assert_eq!(answer.body["enrolled"], false);
        assert!(answer.body.get("token").is_none());
    }

    let summary = env.summary(24);
    assert_eq!(summary["flag"]["enabled"], false);
    assert_eq!(
        summary["recommendation"], "rollback",
        "the window itself has not changed"
    );
}

#[test]
fn service_role_may_roll_out_and_is_audited_without_a_user() {
    let env = Env::start();
    let response = env.rollout(
        &service_role_token(),
        json!({"percentage": 10, "reason": "phase 1"}),
    );
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["direction"], "raise");
    assert_eq!(env.flag(), (true, 10));
    let row = env
        .db
        .client()
        .query_one(
            "SELECT actor_id, actor_role, to_enabled FROM voice_rollout_audit",
            &[],
        )
        .expect("one audit row");
    assert_eq!(row.get::<_, Option<Uuid>>("actor_id"), None);
    assert_eq!(row.get::<_, String>("actor_role"), "service_role");
    assert!(row.get::<_, bool>("to_enabled"));
}

#[test]
fn concurrent_rollout_changes_each_start_from_the_one_before() {
    let env = Env::start();
    let handles: Vec<_> = (1..=8)
        .map(|step| {
            let url = env.url("/rollout");
            let token = env.admin.token.clone();
            std::thread::spawn(move || {
                call(
                    "POST",
                    &url,
                    Some(&token),
                    Some(&json!({"percentage": step * 10, "reason": format!("step {step}")})),
                )
                .status
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().expect("a request thread"), 200);
    }

    // Each change's "from" is the state some other change (or the seed) left: following
    // them from the seed's (disabled, 0) visits every row once.
    let rows = env
        .db
        .client()
        .query(
            "SELECT from_enabled, from_percentage, to_enabled, to_percentage FROM voice_rollout_audit",
            &[],
        )
        .expect("audit rows");
    assert_eq!(rows.len(), 8);
    let mut remaining: Vec<((bool, i32), (bool, i32))> = rows
        .iter()
        .map(|row| {
            (
                (row.get("from_enabled"), row.get("from_percentage")),
                (row.get("to_enabled"), row.get("to_percentage")),
            )
        })
        .collect();
    let mut state = (false, 0);
    while let Some(index) = remaining.iter().position(|(from, _)| *from == state) {
        state = remaining.remove(index).1;
    }
    assert!(
        remaining.is_empty(),
        "changes that did not see the one before: {remaining:?}"
    );
    assert_eq!(env.flag(), state);
}

// ---------------------------------------------------------------------------------------
// Each other red flag, at and just past its threshold

#[test]
fn webrtc_success_rate_of_exactly_90_percent_is_no_red_flag_and_just_below_is() {
    let env = Env::start();
    let mut sessions = Session::ok("webrtc").times(18);
    sessions.extend(Session::failed("webrtc").times(2));
    sessions.extend(Session::ok("websocket").times(20));
    env.seed_sessions(&sessions);
    let summary = env.summary(24);
    assert_eq!(
        summary["implementations"]["webrtc"]["success_rate_percent"],
        90.0
    );
    assert!(names(&summary).is_empty(), "{summary}");
    assert_eq!(summary["recommendation"], "proceed");

    env.seed_sessions(&[Session::failed("webrtc")]);
    let summary = env.summary(24);
    assert_eq!(names(&summary), ["webrtc_success_rate"]);
    let value = summary["red_flags"][0]["value"].as_f64().unwrap();
    assert!((value - 100.0 * 18.0 / 21.0).abs() < 1e-9, "{value}");
    assert_eq!(summary["recommendation"], "rollback");
}

#[test]
fn webrtc_latency_of_exactly_twice_websockets_is_no_red_flag_and_just_past_is() {
    let env = Env::start();
    let webrtc = Session {
        latency_ms: 300.0,
        ..Session::ok("webrtc")
    };
    let websocket = Session {
        latency_ms: 150.0,
        ..Session::ok("websocket")
    };
    let mut sessions = webrtc.times(20);
    sessions.extend(websocket.times(20));
    // A session that never connected reports no real latency; it must not count.
    sessions.push(Session {
        latency_ms: 9000.0,
        ..Session::failed("webrtc")
    });
    env.seed_sessions(&sessions);
    let summary = env.summary(24);
    assert_eq!(
        summary["implementations"]["webrtc"]["avg_latency_ms"],
        300.0
    );
    assert_eq!(
        summary["implementations"]["websocket"]["avg_latency_ms"],
        150.0
    );
    assert!(names(&summary).is_empty(), "{summary}");
    assert_eq!(summary["recommendation"], "proceed");

    // Four users' sessions 5 ms slower each: the average just past twice WebSocket's,
    // with more than the three users a red flag needs behind it.
    env.update_sessions("webrtc", 4, "avg_latency_ms = 305");
    let summary = env.summary(24);
    assert_eq!(
        summary["implementations"]["webrtc"]["avg_latency_ms"],
        301.0
    );
    assert_eq!(names(&summary), ["webrtc_latency_ratio"]);
    let flag = &summary["red_flags"][0];
    assert!((flag["value"].as_f64().unwrap() - 301.0 / 150.0).abs() < 1e-9);
    assert_eq!(flag["threshold"], 2.0);
    assert_eq!(summary["recommendation"], "rollback");
}

#[test]
fn error_rate_of_exactly_5_percent_is_no_red_flag_and_just_past_is_in_either_implementation() {
    let env = Env::start();
    // Sixty sessions each, so that 5 % is three sessions with an error: as many users as
    // a red flag needs behind it.
    let mut sessions = Session::ok("webrtc").times(60);
    sessions.extend(Session::ok("websocket").times(60));
    env.seed_sessions(&sessions);
    env.seed_errors("webrtc", 3, 1.0);
    env.seed_errors("websocket", 3, 1.0);
    // Errors older than the window do not count.
    env.seed_errors("webrtc", 10, 30.0);
    let summary = env.summary(24);
    assert_eq!(summary["implementations"]["webrtc"]["errors"], 3);
    assert_eq!(
        summary["implementations"]["webrtc"]["error_rate_percent"],
        5.0
    );
    assert_eq!(
        summary["implementations"]["websocket"]["error_rate_percent"],
        5.0
    );
    assert!(names(&summary).is_empty(), "{summary}");

    env.seed_errors("websocket", 1, 1.0);
    let summary = env.summary(24);
    assert_eq!(names(&summary), ["websocket_error_rate"]);
    let value = summary["red_flags"][0]["value"].as_f64().unwrap();
    assert!((value - 400.0 / 60.0).abs() < 1e-9, "{value}");
    assert_eq!(summary["red_flags"][0]["threshold"], 5.0);
    assert_eq!(summary["recommendation"], "rollback");

    env.seed_errors("webrtc", 1, 1.0);
    let summary = env.summary(24);
    assert_eq!(
        names(&summary),
        ["webrtc_error_rate", "websocket_error_rate"]
    );
}

#[test]
fn buffer_underruns_of_exactly_10_per_session_are_no_red_flag_and_just_past_are() {
    let env = Env::start();
    let mut sessions = Session {
        underruns: 10,
        ..Session::ok("webrtc")
    }
    .times(20);
    sessions.extend(Session::ok("websocket").times(20));
    env.seed_sessions(&sessions);
    let summary = env.summary(24);
    assert_eq!(
        summary["implementations"]["webrtc"]["buffer_underruns_per_session"],
        10.0
    );
    assert!(names(&summary).is_empty(), "{summary}");

    // Two users just past: the mean is past too, but a red flag needs three users
    // each past it.
    env.update_sessions("webrtc", 2, "buffer_underruns = 11");
    let summary = env.summary(24);
    assert!(names(&summary).is_empty(), "{summary}");
    env.update_sessions("webrtc", 3, "buffer_underruns = 12");
    let summary = env.summary(24);
    assert_eq!(names(&summary), ["webrtc_buffer_underruns_per_session"]);
    assert_close(&summary["red_flags"][0]["value"], 10.3, "underruns");
    assert_eq!(summary["red_flags"][0]["threshold"], 10.0);
    assert_eq!(summary["recommendation"], "rollback");
}

#[test]
fn reconnections_of_exactly_3_per_session_are_no_red_flag_and_just_past_are() {
    let env = Env::start();
    let mut sessions = Session::ok("webrtc").times(20);
    sessions.extend(
        Session {
            reconnections: 3,
            ..Session::ok("websocket")
        }
        .times(20),
    );
    env.seed_sessions(&sessions);
    let summary = env.summary(24);
    assert_eq!(
        summary["implementations"]["websocket"]["reconnections_per_session"],
        3.0
    );
    assert!(names(&summary).is_empty(), "{summary}");

    env.update_sessions("websocket", 2, "reconnection_attempts = 4");
    let summary = env.summary(24);
    assert!(names(&summary).is_empty(), "two users past it: {summary}");
    env.update_sessions("websocket", 3, "reconnection_attempts = 5");
    let summary = env.summary(24);
    assert_eq!(names(&summary), ["websocket_reconnections_per_session"]);
    assert_close(&summary["red_flags"][0]["value"], 3.3, "reconnections");
    assert_eq!(summary["red_flags"][0]["threshold"], 3.0);
    assert_eq!(summary["recommendation"], "rollback");
}

#[test]
fn too_few_sessions_hold_until_each_implementation_has_twenty() {
    let env = Env::start();
    let mut sessions = Session::ok("webrtc").times(19);
    sessions.extend(Session::ok("websocket").times(20));
    env.seed_sessions(&sessions);
    let summary = env.summary(24);
    assert!(names(&summary).is_empty());
    assert_eq!(summary["recommendation"], "hold");

    env.seed_sessions(&[Session::ok("webrtc")]);
    assert_eq!(env.summary(24)["recommendation"], "proceed");
}

// ---------------------------------------------------------------------------------------
// Percentiles and windows

/// `percentile_cont`: linear interpolation between the two closest ranks.
fn percentile_cont(sorted: &[f64], fraction: f64) -> f64 {
    let position = fraction * (sorted.len() - 1) as f64;
    let lower = position.floor() as usize;
    let upper = position.ceil() as usize;
    sorted[lower] + (sorted[upper] - sorted[lower]) * (position - lower as f64)
}

fn assert_close(actual: &Value, expected: f64, what: &str) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {actual}"));
    assert!(
        (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0),
        "{what}: got {actual}, computed {expected}"
    );
}

fn metrics_body(implementation: &str, connected: bool, latency: f64) -> Value {
    json!({
        "implementation_type": implementation,
        "connection_success": connected,
        "connection_time_ms": 250,
        "avg_latency_ms": latency,
        "p95_latency_ms": latency * 1.5,
        "p99_latency_ms": latency * 2.0,
        "audio_chunks_sent": 1200,
        "audio_chunks_received": 1180,
        "buffer_underruns": 1,
        "reconnection_attempts": 0,
        "duration_ms": 90000,
    })
}

#[test]
fn latency_mean_and_percentiles_over_users_match_percentile_cont_computed_independently() {
    let env = Env::start();
    let mut expected: Vec<(&str, Vec<f64>)> =
        vec![("webrtc", Vec::new()), ("websocket", Vec::new())];
    // A fixed pseudo-random spread of latencies with fractions, reported through the API.
    let mut seed: u64 = 0x5eed_1234;
    for (implementation, count) in [("webrtc", 37), ("websocket", 23)] {
        for index in 0..count {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let latency = 40.0 + ((seed >> 33) % 90_000) as f64 / 100.0;
            let connected = index % 9 != 4;
            // A user of its own per session: every number is a mean over users.
            let reporter = user(&env.db, None);
            let response = call(
                "POST",
                &env.url("/metrics"),
                Some(&reporter.token),
                Some(&metrics_body(implementation, connected, latency)),
            );
            assert_eq!(response.status, 201, "{:?}", response.body);
            if connected {
                let list = &mut expected
                    .iter_mut()
                    .find(|(name, _)| *name == implementation)
                    .unwrap()
                    .1;
                list.push(latency);
            }
        }
    }

    let summary = env.summary(24);
    for (implementation, mut latencies) in expected {
        latencies.sort_by(f64::total_cmp);
        // Each user's latency counts at most twice the median user's.
        let cap = 2.0 * percentile_cont(&latencies, 0.5);
        let latencies: Vec<f64> = latencies.iter().map(|l| l.min(cap)).collect();
        let report = &summary["implementations"][implementation];
        let mean = latencies.iter().sum::<f64>() / latencies.len() as f64;
        assert_close(
            &report["avg_latency_ms"],
            mean,
            &format!("{implementation} average"),
        );
        assert_close(
            &report["p95_latency_ms"],
            percentile_cont(&latencies, 0.95),
            &format!("{implementation} p95"),
        );
        assert_close(
            &report["p99_latency_ms"],
            percentile_cont(&latencies, 0.99),
            &format!("{implementation} p99"),
        );
        assert_eq!(report["successful_sessions"], latencies.len());
    }
    assert_eq!(summary["implementations"]["webrtc"]["sessions"], 37);
    assert_eq!(summary["implementations"]["websocket"]["sessions"], 23);
}

#[test]
fn the_window_counts_only_sessions_of_the_last_hours_asked_for() {
    let env = Env::start();
    let mut sessions = Session::ok("webrtc").times(3);
    sessions.extend(
        Session {
            hours_ago: 30.0,
            ..Session::failed("webrtc")
        }
        .times(5),
    );
    sessions.push(Session {
        hours_ago: 700.0,
        ..Session::ok("websocket")
    });
    env.seed_sessions(&sessions);

    let day = env.summary(24);
    assert_eq!(day["implementations"]["webrtc"]["sessions"], 3);
    assert_eq!(day["implementations"]["websocket"]["sessions"], 0);
    assert!(day["implementations"]["websocket"]["success_rate_percent"].is_null());
    assert!(names(&day).is_empty());
    assert_eq!(day["recommendation"], "hold");

    let two_days = env.summary(48);
    assert_eq!(two_days["window_hours"], 48);
    assert_eq!(two_days["implementations"]["webrtc"]["sessions"], 8);
    assert_eq!(names(&two_days), ["webrtc_success_rate"]);

    let month = env.summary(720);
    assert_eq!(month["implementations"]["websocket"]["sessions"], 1);
}

#[test]
fn summary_hours_outside_1_to_720_is_400_naming_hours() {
    let env = Env::start();
    for hours in ["0", "721", "-1", "1.5", "week"] {
        let response = call(
            "GET",
            &env.url(&format!("/summary?hours={hours}")),
            Some(&env.teacher.token),
            None,
        );
        assert_eq!(response.status, 400, "hours={hours}: {:?}", response.body);
        assert_eq!(response.body["field"], "hours");
        assert_eq!(response.body["error"], "invalid_request");
    }
    let default = call("GET", &env.url("/summary"), Some(&env.teacher.token), None);
    assert_eq!(default.status, 200);
    assert_eq!(default.body["window_hours"], 24);
}

// ---------------------------------------------------------------------------------------
// Who may do what

#[test]
fn a_student_gets_403_on_summary_and_rollout_and_a_teacher_on_rollout() {
    let env = Env::start();
    let response = call("GET", &env.url("/summary"), Some(&env.student.token), None);
    assert_eq!(response.status, 403, "{:?}", response.body);
    assert_eq!(response.body["error"], "forbidden");
    assert_eq!(response.body["code"], 403);

    let ask = json!({"percentage": 100, "reason": "let me in"});
    let response = env.rollout(&env.student.token, ask.clone());
    assert_eq!(response.status, 403, "{:?}", response.body);
    assert_eq!(response.body["error"], "forbidden");
    let response = env.rollout(&env.teacher.token, ask.clone());
    assert_eq!(response.status, 403, "{:?}", response.body);
    let response = env.rollout(&anon_token(), ask);
    assert_eq!(response.status, 403, "{:?}", response.body);
    assert_eq!(env.flag(), (false, 0));
    assert_eq!(env.count("voice_rollout_audit"), 0);

    let teacher = call("GET", &env.url("/summary"), Some(&env.teacher.token), None);
    assert_eq!(teacher.status, 200);
    let admin = call("GET", &env.url("/summary"), Some(&env.admin.token), None);
    assert_eq!(admin.status, 200);
    let service = call(
        "GET",
        &env.url("/summary"),
        Some(&service_role_token()),
        None,
    );
    assert_eq!(service.status, 200);
}

#[test]
fn metrics_and_errors_need_a_signed_in_user() {
    let env = Env::start();
    let body = metrics_body("webrtc", true, 120.0);
    let response = call("POST", &env.url("/metrics"), None, Some(&body));
    assert_eq!(response.status, 401);
    assert_eq!(
        response.body,
        json!({"code": 401, "message": "Missing authorization header", "error": "missing_authorization"})
    );
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    let response = call(
        "POST",
        &env.url("/metrics"),
        Some(&anon_token()),
        Some(&body),
    );
    assert_eq!(response.status, 403, "{:?}", response.body);
    let response = call(
        "POST",
        &env.url("/metrics"),
        Some(&service_role_token()),
        Some(&body),
    );
    assert_eq!(response.status, 403, "{:?}", response.body);
    assert_eq!(env.count("voice_session_metrics"), 0);
}

// ---------------------------------------------------------------------------------------
// Ingestion

#[test]
fn metrics_are_stored_for_the_caller_whatever_user_the_body_names() {
    let env = Env::start();
    let session_id = Uuid::new_v4();
    let mut body = metrics_body("websocket", true, 123.25);
    body["session_id"] = json!(session_id);
    body["user_id"] = json!(env.admin.id);
    let response = call(
        "POST",
        &env.url("/metrics"),
        Some(&env.student.token),
        Some(&body),
    );
    assert_eq!(response.status, 201, "{:?}", response.body);
    let id = Uuid::parse_str(response.body["id"].as_str().unwrap()).unwrap();
    assert!(response.body["created_at"].as_str().unwrap().ends_with('Z'));

    let row = env
        .db
        .client()
        .query_one(
            "SELECT user_id, session_id, implementation_type, connection_success, avg_latency_ms,
                    p95_latency_ms, p99_latency_ms, audio_chunks_sent, buffer_underruns,
                    duration_ms
             FROM voice_session_metrics WHERE id = $1",
            &[&id],
        )
        .expect("the stored row");
    assert_eq!(row.get::<_, Uuid>("user_id"), env.student.id);
    assert_eq!(
        row.get::<_, Option<String>>("session_id"),
        Some(session_id.to_string())
    );
    assert_eq!(row.get::<_, String>("implementation_type"), "websocket");
    assert!(row.get::<_, bool>("connection_success"));
    assert_eq!(row.get::<_, Option<f64>>("avg_latency_ms"), Some(123.25));
    assert_eq!(row.get::<_, Option<f64>>("p95_latency_ms"), Some(184.875));
    assert_eq!(row.get::<_, Option<f64>>("p99_latency_ms"), Some(246.5));
    assert_eq!(row.get::<_, Option<i32>>("audio_chunks_sent"), Some(1200));
    assert_eq!(row.get::<_, Option<i32>>("buffer_underruns"), Some(1));
    assert_eq!(row.get::<_, Option<i32>>("duration_ms"), Some(90000));
    assert_eq!(env.count("voice_session_metrics"), 1);
}

#[test]
fn bad_metrics_get_400_naming_the_field_and_store_nothing() {
    let env = Env::start();
    let good = metrics_body("webrtc", true, 120.0);
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases = [
        (with("buffer_underruns", json!(-1)), "buffer_underruns"),
        (
            with("reconnection_attempts", json!(-3)),
            "reconnection_attempts",
        ),
        (with("audio_chunks_sent", json!(-10)), "audio_chunks_sent"),
        (with("avg_latency_ms", json!(-5.0)), "avg_latency_ms"),
        (with("p95_latency_ms", json!(500)), "p95_latency_ms"),
        (
            with("implementation_type", json!("carrier-pigeon")),
            "implementation_type",
        ),
        (
            with("connection_success", json!("yes")),
            "connection_success",
        ),
        (with("session_id", json!("not-a-uuid")), "session_id"),
        (without("duration_ms"), "duration_ms"),
    ];
    for (body, field) in cases {
        let response = call(
            "POST",
            &env.url("/metrics"),
            Some(&env.student.token),
            Some(&body),
        );
        assert_eq!(response.status, 400, "{field}: {:?}", response.body);
        assert_eq!(response.body["code"], 400);
        assert_eq!(response.body["error"], "invalid_request");
        assert_eq!(response.body["field"], field, "{:?}", response.body);
        assert!(response.body["message"].as_str().unwrap().contains(field));
    }
    let response = call(
        "POST",
        &env.url("/metrics"),
        Some(&env.student.token),
        Some(&json!("[")),
    );
    assert_eq!(response.status, 400);
    assert_eq!(env.count("voice_session_metrics"), 0);
}

#[test]
fn errors_are_stored_for_the_caller_and_bad_ones_get_400_naming_the_field() {
    let env = Env::start();
    let body = json!({
        "error_type": "connection_failed",
        "error_message": "ICE negotiation failed",
        "stack_trace": "Error: ICE negotiation failed\n    at connect (RealtimeVoiceClientWebRTC.ts:120)",
        "is_retryable": true,
        "implementation_type": "webrtc",
        "context": {"attempt": 2, "iceState": "failed"},
    });
    let response = call(
        "POST",
        &env.url("/errors"),
        Some(&env.student.token),
        Some(&body),
    );
    assert_eq!(response.status, 201, "{:?}", response.body);
    let id = Uuid::parse_str(response.body["id"].as_str().unwrap()).unwrap();
    let row = env
        .db
        .client()
        .query_one(
            "SELECT user_id, error_type, error_message, stack_trace, is_retryable,
                    implementation_type, context
             FROM voice_session_errors WHERE id = $1",
            &[&id],
        )
        .expect("the stored row");
    assert_eq!(row.get::<_, Uuid>("user_id"), env.student.id);
    assert_eq!(row.get::<_, String>("error_type"), "connection_failed");
    assert_eq!(
        row.get::<_, String>("error_message"),
        "ICE negotiation failed"
    );
    assert!(
        row.get::<_, Option<String>>("stack_trace")
            .unwrap()
            .contains("RealtimeVoiceClientWebRTC.ts")
    );
    assert!(row.get::<_, bool>("is_retryable"));
    assert_eq!(row.get::<_, String>("implementation_type"), "webrtc");
    assert_eq!(
        row.get::<_, Option<Value>>("context"),
        Some(json!({"attempt": 2, "iceState": "failed"}))
    );

    for (field, value) in [
        ("implementation_type", json!("grpc")),
        ("is_retryable", json!("sometimes")),
        ("error_type", json!("")),
        ("error_message", json!(null)),
        ("context", json!("not an object")),
    ] {
        let mut bad = body.clone();
        bad[field] = value;
        let response = call(
            "POST",
            &env.url("/errors"),
            Some(&env.student.token),
            Some(&bad),
        );
        assert_eq!(response.status, 400, "{field}: {:?}", response.body);
        assert_eq!(response.body["field"], field, "{:?}", response.body);
    }
    assert_eq!(env.count("voice_session_errors"), 1);
}

#[test]
fn bad_rollout_bodies_get_400_naming_the_field_and_change_nothing() {
    let env = Env::start();
    for (body, field) in [
        (json!({"percentage": 101, "reason": "x"}), "percentage"),
        (json!({"percentage": -1, "reason": "x"}), "percentage"),
        (json!({"reason": "x"}), "percentage"),
        (json!({"percentage": 10}), "reason"),
        (json!({"percentage": 10, "reason": "  "}), "reason"),
        (
            json!({"percentage": 10, "reason": "x", "force": "yes"}),
            "force",
        ),
    ] {
        let response = env.rollout(&env.admin.token, body.clone());
        assert_eq!(response.status, 400, "{body}: {:?}", response.body);
        assert_eq!(response.body["field"], field, "{:?}", response.body);
    }
    assert_eq!(env.flag(), (false, 0));
    assert_eq!(env.count("voice_rollout_audit"), 0);
}

#[test]
fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
    let env = Env::start();
    let response = call("GET", &env.url(""), Some(&env.teacher.token), None);
    assert_eq!(response.status, 404);
    assert_eq!(response.body["error"], "not_found");
    let response = call(
        "GET",
        &env.url("/metrics/extra"),
        Some(&env.teacher.token),
        None,
    );
    assert_eq!(response.status, 404);
    let response = call("POST", &env.url("/summary"), Some(&env.teacher.token), None);
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, OPTIONS"));
    let response = call("GET", &env.url("/rollout"), Some(&env.admin.token), None);
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("POST, OPTIONS"));
    let response = call("OPTIONS", &env.url("/rollout"), None, None);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, Value::String("ok".into()));
}

// ---------------------------------------------------------------------------------------
// Failures that are not the caller's

#[test]
fn a_token_whose_user_no_longer_exists_gets_403_and_stores_nothing() {
    let env = Env::start();
    let ghost = mint(&json!({
        "sub": Uuid::new_v4().to_string(),
        "role": "authenticated",
        "aud": "authenticated",
        "exp": now_unix() + 3600,
    }));
    let body = metrics_body("webrtc", true, 120.0);
    let response = call("POST", &env.url("/metrics"), Some(&ghost), Some(&body));
    assert_eq!(response.status, 403, "{:?}", response.body);
    assert_eq!(response.body["error"], "forbidden");
    assert_eq!(env.count("voice_session_metrics"), 0);
}

#[test]
fn database_down_is_503_with_retry_after_and_nothing_is_half_written() {
    let cluster = PgCluster::start_private();
    let env = Env::start_with(TestDb::create_in(&cluster));
    seed_85_percent_window(&env);
    env.set_flag(true, 100);

    cluster.stop();
    let requests = [
        (
            "POST",
            "/metrics",
            env.student.token.clone(),
            Some(metrics_body("webrtc", true, 120.0)),
        ),
        ("GET", "/summary", env.teacher.token.clone(), None),
        (
            "POST",
            "/rollout",
            env.admin.token.clone(),
            Some(json!({"percentage": 0, "reason": "rollback"})),
        ),
    ];
    for (method, path, token, body) in &requests {
        let response = call(method, &env.url(path), Some(token), body.as_ref());
        assert_eq!(response.status, 503, "{path}: {:?}", response.body);
        assert_eq!(response.body["error"], "database_unavailable");
        assert!(response.header("retry-after").is_some());
        assert!(!response.body.to_string().contains("postgres://"));
    }

    cluster.start();
    assert_eq!(
        env.count("voice_session_metrics"),
        40,
        "only the seeded sessions"
    );
    assert_eq!(env.flag(), (true, 100));
    assert_eq!(env.count("voice_rollout_audit"), 0);
    let response = env.rollout(
        &env.admin.token,
        json!({"percentage": 0, "reason": "rollback"}),
    );
    assert_eq!(
        response.status, 200,
        "works again once the database is back: {:?}",
        response.body
    );
}

// ---------------------------------------------------------------------------------------
// Abuse: one user, bounded reports, limits (issue 13)

/// A well-formed report of session `session_id` by a client.
fn session_report(session_id: Uuid, implementation: &str, connected: bool) -> Value {
    let mut body = metrics_body(implementation, connected, 200.0);
    body["session_id"] = json!(session_id);
    body
}

fn error_report(session_id: Option<Uuid>) -> Value {
    let mut body = json!({
        "error_type": "connection_failed",
        "error_message": "ICE negotiation failed",
        "is_retryable": true,
        "implementation_type": "webrtc",
    });
    if let Some(session_id) = session_id {
        body["session_id"] = json!(session_id);
    }
    body
}

#[test]
fn one_user_cannot_trip_a_red_flag() {
    let env = Env::start();
    let post = |path: &str, body: &Value| {
        call("POST", &env.url(path), Some(&env.student.token), Some(body))
    };

    // What one session cannot produce is refused, naming the field, and stores nothing.
    let mut absurd = session_report(Uuid::new_v4(), "webrtc", true);
    absurd["buffer_underruns"] = json!(100_000_000);
    let refused = post("/metrics", &absurd);
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert_eq!(refused.body["field"], "buffer_underruns");
    assert_eq!(env.count("voice_session_metrics"), 0);

    // One session reported again and again is one row, the last report.
    let session = Uuid::new_v4();
    for _ in 0..5 {
        assert_eq!(
            post("/metrics", &session_report(session, "webrtc", false)).status,
            201
        );
    }
    let mut last = session_report(session, "webrtc", false);
    last["buffer_underruns"] = json!(9_000);
    last["reconnection_attempts"] = json!(100);
    assert_eq!(post("/metrics", &last).status, 201);
    let row = env
        .db
        .client()
        .query_one(
            "SELECT count(*), max(buffer_underruns) FROM voice_session_metrics WHERE session_id = $1",
            &[&session.to_string()],
        )
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, Option<i32>>(1)),
        (1, Some(9_000))
    );

    // Many sessions of one user, all failed with underruns and reconnections, and a
    // flood of error posts: still no red flag, no rollback, and a raise goes through.
    for _ in 0..8 {
        assert_eq!(
            post("/metrics", &last_for(Uuid::new_v4(), &last)).status,
            201
        );
    }
    for _ in 0..20 {
        assert_eq!(post("/errors", &error_report(None)).status, 201);
    }
    let summary = env.summary(24);
    assert_eq!(names(&summary), Vec::<String>::new(), "{summary}");
    assert_ne!(summary["recommendation"], "rollback");
    let webrtc = &summary["implementations"]["webrtc"];
    assert_eq!(webrtc["sessions"], 9);
    assert_eq!(webrtc["users"], 1);
    assert_eq!(
        (&webrtc["errors"], &webrtc["error_sessions"]),
        (&json!(0), &json!(0)),
        "errors that name no session the user reported count for nothing"
    );
    assert_eq!(env.count("voice_session_errors"), 20, "but they are stored");
    let raise = env.rollout(
        &env.admin.token,
        json!({"percentage": 10, "reason": "phase 1"}),
    );
    assert_eq!(raise.status, 200, "{:?}", raise.body);

    // Three users reporting the same trouble, each for a session of their own, do
    // make it stand.
    env.set_flag(true, 10);
    assert_eq!(post("/errors", &error_report(Some(session))).status, 201);
    for _ in 0..2 {
        let other = user(&env.db, None);
        let their_session = Uuid::new_v4();
        for path in ["/metrics", "/errors"] {
            let body = if path == "/metrics" {
                last_for(their_session, &last)
            } else {
                error_report(Some(their_session))
            };
            let response = call("POST", &env.url(path), Some(&other.token), Some(&body));
            assert_eq!(response.status, 201, "{:?}", response.body);
        }
    }
    let summary = env.summary(24);
    let flags = names(&summary);
    for expected in [
        "webrtc_success_rate",
        "webrtc_error_rate",
        "webrtc_buffer_underruns_per_session",
        "webrtc_reconnections_per_session",
    ] {
        assert!(
            flags.contains(&expected.to_string()),
            "{expected}: {summary}"
        );
    }
    assert_eq!(summary["recommendation"], "rollback");
    let raise = env.rollout(
        &env.admin.token,
        json!({"percentage": 20, "reason": "phase 2"}),
    );
    assert_eq!(raise.status, 409, "{:?}", raise.body);
}

/// `report` for another session.
fn last_for(session_id: Uuid, report: &Value) -> Value {
    let mut body = report.clone();
    body["session_id"] = json!(session_id);
    body
}

#[test]
fn reports_are_limited_per_user_and_a_refused_one_counts_nothing() {
    let db = TestDb::create();
    let app = start_app(&app_vars(
        &db,
        JWT_SECRET,
        None,
        &[("rate_limit_per_minute", "3")],
    ));
    let student = user(&db, None);
    let url = |path: &str| app.url(&format!("{MONITORING}{path}"));
    let counters = || -> Vec<(String, i32)> {
        db.client()
            .query(
                "SELECT bucket_key, count FROM rate_limits ORDER BY bucket_key",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    };
    voice_edge_integration::wait_for_room_in_the_window(&db, 15.0);

    // A refusal (bad body, a text PostgreSQL cannot store) is not counted.
    let mut bad = error_report(None);
    bad["error_message"] = json!("ICE\u{0}failed");
    let refused = call("POST", &url("/errors"), Some(&student.token), Some(&bad));
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert_eq!(refused.body["field"], "error_message");
    assert_eq!(counters(), Vec::<(String, i32)>::new());
    assert_eq!(
        db.client()
            .query_one("SELECT count(*) FROM voice_session_errors", &[])
            .unwrap()
            .get::<_, i64>(0),
        0
    );

    for _ in 0..3 {
        let response = call(
            "POST",
            &url("/errors"),
            Some(&student.token),
            Some(&error_report(None)),
        );
        assert_eq!(response.status, 201, "{:?}", response.body);
    }
    let over = call(
        "POST",
        &url("/errors"),
        Some(&student.token),
        Some(&error_report(None)),
    );
    assert_eq!(over.status, 429, "{:?}", over.body);
    assert_eq!(over.body["error"], "rate_limited");
    assert!(over.header("retry-after").is_some());
    // Metrics have their own limit.
    let metrics = call(
        "POST",
        &url("/metrics"),
        Some(&student.token),
        Some(&session_report(Uuid::new_v4(), "websocket", true)),
    );
    assert_eq!(metrics.status, 201, "{:?}", metrics.body);
    assert_eq!(
        counters(),
        [
            (format!("errors:user:{}", student.id), 3),
            (format!("metrics:user:{}", student.id), 1),
        ]
    );
    assert_eq!(
        db.client()
            .query_one("SELECT count(*) FROM voice_session_errors", &[])
            .unwrap()
            .get::<_, i64>(0),
        3
    );
}

// ---------------------------------------------------------------------------------------
// Issue 23: no single user can make a red flag stand or hide one, in weight as in count

/// A report of a new session of `implementation`, connected, with the given latency
/// (as its average, p95 and p99), underruns and duration.
fn session_of(implementation: &str, latency: f64, underruns: i64, duration_ms: f64) -> Value {
    json!({
        "session_id": Uuid::new_v4(),
        "implementation_type": implementation,
        "connection_success": true,
        "connection_time_ms": 250,
        "avg_latency_ms": latency,
        "p95_latency_ms": latency,
        "p99_latency_ms": latency,
        "audio_chunks_sent": 1200,
        "audio_chunks_received": 1180,
        "buffer_underruns": underruns,
        "reconnection_attempts": 0,
        "duration_ms": duration_ms,
    })
}

fn report(env: &Env, token: &str, path: &str, body: &Value) {
    let response = call("POST", &env.url(path), Some(token), Some(body));
    assert_eq!(response.status, 201, "{path}: {:?}", response.body);
}

/// Item 1 as written: 24 ordinary users report healthy sessions (two with one underrun
/// each); one more posts 50 day-long WebRTC sessions with 1,000,000 underruns each and
/// 50 errors naming sessions that are none of theirs, all accepted. Before the fix the
/// summary showed 675,676 underruns per session and a 70 % error rate, recommended
/// `rollback` and refused a raise. Now that user is one vote among 25, capped.
#[test]
fn one_user_with_extreme_but_allowed_values_cannot_force_a_rollback() {
    let env = Env::start();
    for index in 0..24 {
        let honest = user(&env.db, None);
        let underruns = if index < 2 { 1 } else { 0 };
        report(
            &env,
            &honest.token,
            "/metrics",
            &session_of("webrtc", 200.0, underruns, 90_000.0),
        );
        report(
            &env,
            &honest.token,
            "/metrics",
            &session_of("websocket", 250.0, 0, 90_000.0),
        );
    }
    let before = env.summary(24);
    assert!(names(&before).is_empty(), "{before}");
    assert_eq!(before["recommendation"], "proceed");

    let attacker = user(&env.db, None);
    for _ in 0..50 {
        report(
            &env,
            &attacker.token,
            "/metrics",
            &session_of("webrtc", 200.0, 1_000_000, 86_400_000.0),
        );
    }
    for _ in 0..50 {
        report(
            &env,
            &attacker.token,
            "/errors",
            &error_report(Some(Uuid::new_v4())),
        );
    }
    assert_eq!(env.count("voice_session_metrics"), 98);
    assert_eq!(env.count("voice_session_errors"), 50);

    let summary = env.summary(24);
    assert_eq!(names(&summary), Vec::<String>::new(), "{summary}");
    assert_eq!(summary["recommendation"], "proceed");
    let webrtc = &summary["implementations"]["webrtc"];
    assert_eq!(
        (&webrtc["users"], &webrtc["sessions"]),
        (&json!(25), &json!(74))
    );
    // Two users at 1 per session, the attacker capped at twice the threshold (20), the
    // rest at 0: a mean over 25 users.
    assert_close(
        &webrtc["buffer_underruns_per_session"],
        22.0 / 25.0,
        "underruns",
    );
    assert_eq!(webrtc["error_rate_percent"], 0.0);
    assert_eq!(
        (&webrtc["errors"], &webrtc["error_sessions"]),
        (&json!(0), &json!(0))
    );

    let raise = env.rollout(
        &env.admin.token,
        json!({"percentage": 10, "reason": "phase 1"}),
    );
    assert_eq!(raise.status, 200, "{:?}", raise.body);
    assert_eq!(env.flag(), (true, 10));
}

/// Item 2 as written: 24 users report WebRTC at 2,000 ms and WebSocket at 280 ms (a
/// red flag, `rollback`); one more posts 50 WebSocket sessions at 60,000 ms. Before the
/// fix the red flag disappeared; now it stands, and a raise is still refused.
#[test]
fn one_user_with_extreme_but_allowed_values_cannot_hide_a_real_regression() {
    let env = Env::start();
    for _ in 0..24 {
        let reporter = user(&env.db, None);
        report(
            &env,
            &reporter.token,
            "/metrics",
            &session_of("webrtc", 2_000.0, 0, 90_000.0),
        );
        report(
            &env,
            &reporter.token,
            "/metrics",
            &session_of("websocket", 280.0, 0, 90_000.0),
        );
    }
    let before = env.summary(24);
    assert_eq!(names(&before), ["webrtc_latency_ratio"], "{before}");
    assert_eq!(before["recommendation"], "rollback");
    assert_close(&before["red_flags"][0]["value"], 2_000.0 / 280.0, "ratio");

    let attacker = user(&env.db, None);
    for _ in 0..50 {
        report(
            &env,
            &attacker.token,
            "/metrics",
            &session_of("websocket", 60_000.0, 0, 90_000.0),
        );
    }
    let summary = env.summary(24);
    assert_eq!(names(&summary), ["webrtc_latency_ratio"], "{summary}");
    assert_eq!(summary["recommendation"], "rollback");
    // The attacker's 60,000 ms count as twice the median user's 280 ms, once.
    let websocket = (24.0 * 280.0 + 560.0) / 25.0;
    assert_close(
        &summary["implementations"]["websocket"]["avg_latency_ms"],
        websocket,
        "mean",
    );
    assert_close(
        &summary["red_flags"][0]["value"],
        2_000.0 / websocket,
        "ratio",
    );
    let mut users = vec![280.0; 24];
    users.push(560.0);
    assert_close(
        &summary["implementations"]["websocket"]["p99_latency_ms"],
        percentile_cont(&users, 0.99),
        "p99 over users",
    );

    env.set_flag(true, 10);
    let raise = env.rollout(
        &env.admin.token,
        json!({"percentage": 25, "reason": "phase 2"}),
    );
    assert_eq!(raise.status, 409, "{:?}", raise.body);
    assert_eq!(env.flag(), (true, 10));
}

/// Hiding the success-rate rule: WebRTC connects for 17 of 20 users (85 %); one user
/// posting 50 sessions that all connected is one more user at 100 %.
#[test]
fn one_user_cannot_hide_a_low_success_rate_with_many_good_sessions() {
    let env = Env::start();
    let mut sessions = Session::ok("webrtc").times(17);
    sessions.extend(Session::failed("webrtc").times(3));
    sessions.extend(Session::ok("websocket").times(20));
    env.seed_sessions(&sessions);
    let attacker = user(&env.db, None);
    for _ in 0..50 {
        report(
            &env,
            &attacker.token,
            "/metrics",
            &session_of("webrtc", 200.0, 0, 90_000.0),
        );
    }
    let summary = env.summary(24);
    assert_eq!(names(&summary), ["webrtc_success_rate"], "{summary}");
    assert_close(
        &summary["red_flags"][0]["value"],
        1_800.0 / 21.0,
        "success rate",
    );
    assert_eq!(summary["recommendation"], "rollback");
}

/// Anonymous sign-ins are not distinct users: three of them reporting failures raise
/// nothing, and are left out of every number; three users signed in with email do.
#[test]
fn anonymous_sign_ins_are_not_counted_as_users_for_red_flags() {
    let env = Env::start();
    for _ in 0..20 {
        let reporter = user(&env.db, None);
        report(
            &env,
            &reporter.token,
            "/metrics",
            &session_of("webrtc", 200.0, 0, 90_000.0),
        );
        report(
            &env,
            &reporter.token,
            "/metrics",
            &session_of("websocket", 200.0, 0, 90_000.0),
        );
    }
    let mut failed = session_of("webrtc", 0.0, 5_000, 600_000.0);
    failed["connection_success"] = json!(false);
    let failing = |token: &str| {
        for _ in 0..5 {
            let mut body = failed.clone();
            body["session_id"] = json!(Uuid::new_v4());
            report(&env, token, "/metrics", &body);
            report(
                &env,
                token,
                "/errors",
                &error_report(body["session_id"].as_str().map(|id| id.parse().unwrap())),
            );
        }
    };
    for _ in 0..3 {
        let anonymous = AuthUser::anonymous();
        let id = anonymous.insert(&env.db);
        failing(&mint(&user_claims(
            id,
            true,
            json!({"provider": "anonymous"}),
        )));
    }
    assert_eq!(
        env.db
            .client()
            .query_one(
                "SELECT count(*) FROM voice_session_metrics WHERE reporter_anonymous",
                &[]
            )
            .unwrap()
            .get::<_, i64>(0),
        15,
        "their reports are stored, marked"
    );
    let summary = env.summary(24);
    assert!(names(&summary).is_empty(), "{summary}");
    assert_eq!(summary["recommendation"], "proceed");
    let webrtc = &summary["implementations"]["webrtc"];
    assert_eq!(
        (&webrtc["users"], &webrtc["sessions"]),
        (&json!(20), &json!(20))
    );
    assert_eq!(webrtc["success_rate_percent"], 100.0);

    for _ in 0..3 {
        failing(&user(&env.db, None).token);
    }
    let summary = env.summary(24);
    let flags = names(&summary);
    // 20 users at 100 % and three at 0 %: 86.96 %; three of 23 users with an error in
    // every session: 13 %. (Their 5,000 underruns a session count as 20 each, a mean of
    // 2.6 over 23 users: under the threshold.)
    assert_eq!(
        flags,
        ["webrtc_success_rate", "webrtc_error_rate"],
        "{summary}"
    );
    assert_eq!(summary["implementations"]["webrtc"]["users"], 23);
}
