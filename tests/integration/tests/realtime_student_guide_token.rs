//! `realtime-student-guide-token` through the host against a real PostgreSQL and the
//! OpenAI stand-in (CONTRACT.md sections 2 and 3).
//!
//! Build the components first (`make build-components`), then
//! `cargo test --profile host -p voice-edge-integration --test realtime_student_guide_token`.
//! Every test has its own database, stand-in and app, and its own users.

use std::time::Duration;

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use uuid::Uuid;
use voice_edge_integration::{
    AuthUser, Response, app_vars, b64url, bearer, hs256, now_unix, send, start_app,
};
use voice_edge_openai_standin::error::RETRY_AFTER_SECONDS;
use voice_edge_openai_standin::{Endpoint, Mode, StandIn};
use voice_edge_shared::bucket::bucket_for_user;
use voice_edge_testkit::app::TestApp;
use voice_edge_testkit::pg::{PgCluster, TestDb};

const API_KEY: &str = "sk-test-token-fn-5f0c8e2a9b7d4e31";
const JWT_SECRET: &str = "token-test-jwt-secret-0123456789abcdef0123";
const MODEL: &str = "gpt-realtime-2025-08-28";
const TTL_SECONDS: &str = "120";
const ROUTE: &str = "/functions/v1/realtime-student-guide-token";
const ORIGIN: &str = "https://school.example";

// ---------------------------------------------------------------------------------------
// JWTs, minted here with the secret the app is given

fn user_claims(user_id: Uuid) -> Value {
    voice_edge_integration::user_claims(user_id, false, json!({"provider": "email"}))
}

fn user_jwt(user_id: Uuid) -> String {
    voice_edge_integration::user_jwt(user_id, JWT_SECRET)
}

/// The project's anon key: role `anon`, no `sub`.
fn anon_jwt() -> String {
    voice_edge_integration::anon_jwt(JWT_SECRET)
}

/// An ES256 key from a fixed scalar, and its public JWK.
fn ec_key(seed: u8, kid: &str) -> (SigningKey, Value) {
    let mut scalar = [0x11u8; 32];
    scalar[31] = seed;
    let key = SigningKey::from_bytes(&scalar.into()).unwrap();
    let point = key.verifying_key().to_encoded_point(false);
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": b64url(point.x().unwrap()), "y": b64url(point.y().unwrap()),
    });
    (key, jwk)
}

fn es256(key: &SigningKey, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature: Signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&signature.to_bytes()))
}

// ---------------------------------------------------------------------------------------
// The world of one test

struct World {
    db: TestDb,
    openai: StandIn,
    app: TestApp,
}

impl World {
    fn start() -> World {
        World::start_with(&[])
    }

    /// A database, a stand-in and the app, with `extra` variables over the defaults.
    fn start_with(extra: &[(&str, &str)]) -> World {
        World::start_in(TestDb::create(), extra)
    }

    /// Like [`World::start_with`], on a database of the caller's choosing.
    fn start_in(db: TestDb, extra: &[(&str, &str)]) -> World {
        let openai = StandIn::start();
        let base_url = openai.base_url();
        let defaults = [
            ("openai_base_url", base_url.as_str()),
            ("openai_realtime_model", MODEL),
            ("token_ttl_seconds", TTL_SECONDS),
        ];
        let overrides: Vec<(&str, &str)> =
            defaults.into_iter().chain(extra.iter().copied()).collect();
        let app = start_app(&app_vars(&db, JWT_SECRET, Some(API_KEY), &overrides));
        World { db, openai, app }
    }

    /// A user in `auth.users`, as Supabase would have them.
    fn user(&self) -> Uuid {
        AuthUser::with_email("students.example").insert(&self.db)
    }

    fn set_flag(&self, enabled: bool, percentage: i32) {
        let changed = self
            .db
            .client()
            .execute(
                "UPDATE voice_feature_flags SET enabled = $1, rollout_percentage = $2 \
                 WHERE flag_name = 'voice_webrtc_migration'",
                &[&enabled, &percentage],
            )
            .unwrap();
        assert_eq!(changed, 1, "the migrations create the flag row");
    }

    fn post(&self, path: &str, authorization: Option<&str>, body: &str) -> Response {
        let mut headers = vec![("content-type", "application/json"), ("origin", ORIGIN)];
        if let Some(value) = authorization {
            headers.push(("authorization", value));
        }
        send(
            "POST",
            &self.app.url(&format!("{ROUTE}{path}")),
            &headers,
            body.as_bytes(),
        )
    }

    fn mint(&self, token: &str, body: Value) -> Response {
        self.post("", Some(&bearer(token)), &body.to_string())
    }

    fn refresh(&self, token: &str, session_id: &str) -> Response {
        self.post(
            "/refresh",
            Some(&bearer(token)),
            &json!({"sessionId": session_id}).to_string(),
        )
    }

    fn flag(&self, token: &str) -> Response {
        let authorization = bearer(token);
        send(
            "GET",
            &self.app.url(&format!("{ROUTE}/flag")),
            &[("authorization", &authorization)],
            b"",
        )
    }

    fn client_secret_requests(&self) -> Vec<Value> {
        self.openai
            .requests_to("/v1/realtime/client_secrets")
            .into_iter()
            .map(|request| {
                assert_eq!(
                    request.bearer_key(),
                    Some(API_KEY),
                    "the API key is sent to OpenAI"
                );
                // Said up front, so the runtime sends the body with the head (framed
                // chunked, its end waits on the upstream's delayed ACK under Spin).
                let header = |name: &str| {
                    request
                        .headers
                        .iter()
                        .find(|(key, _)| key == name)
                        .map(|(_, value)| value.clone())
                };
                assert_eq!(
                    header("content-length"),
                    Some(request.body.len().to_string()),
                    "the body's length is stated"
                );
                assert_eq!(header("transfer-encoding"), None, "not chunked");
                request.json.expect("a JSON body")
            })
            .collect()
    }

    fn count(&self, sql: &str) -> i64 {
        self.db.client().query_one(sql, &[]).unwrap().get(0)
    }

    fn session_rows(&self) -> i64 {
        self.count("SELECT count(*) FROM realtime_token_sessions")
    }

    /// Neither the API key nor any token handed out appears in a log line.
    fn assert_logs_hold_no_secrets(&self, tokens: &[&str]) {
        let logs = self.app.logs();
        assert!(!logs.is_empty(), "the app logs its requests");
        for line in &logs {
            assert!(
                !line.contains(API_KEY),
                "the API key is in a log line: {line}"
            );
            assert!(
                !line.contains("sk-test"),
                "a key prefix is in a log line: {line}"
            );
            for token in tokens {
                assert!(!line.contains(token), "a token is in a log line: {line}");
            }
        }
    }
}

fn assert_error(response: &Response, status: u16, error: &str) {
    assert_eq!(response.status, status, "{}", response.text);
    assert_eq!(response.body["code"], status, "{}", response.text);
    assert_eq!(response.body["error"], error, "{}", response.text);
    assert!(response.body["message"].is_string(), "{}", response.text);
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
}

// ---------------------------------------------------------------------------------------
// Minting

#[test]
fn student_in_the_rollout_gets_a_token_for_the_tutor_persona() {
    let world = World::start();
    world.set_flag(true, 100);
    let student = world.user();

    let response = world.mint(
        &user_jwt(student),
        json!({"persona": "student-tutor", "language": "de"}),
    );
    assert_eq!(response.status, 200, "{}", response.text);
    let body = &response.body;
    let token = body["token"].as_str().expect("a token");
    assert!(token.starts_with("ek_"), "{token}");
    assert_eq!(body["success"], true);
    assert_eq!(body["mode"], "realtime");
    assert_eq!(body["implementation"], "webrtc");
    assert_eq!(body["persona"], "student-tutor");
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["voice"], "ash");
    assert_eq!(body["enrolled"], true);
    assert_eq!(body["bucket"], bucket_for_user(&student.to_string()));
    let expires_at = body["expiresAt"]
        .as_i64()
        .expect("expiresAt in unix seconds");
    assert!(
        (expires_at - (now_unix() + 120)).abs() <= 5,
        "expiresAt {expires_at}"
    );
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert_eq!(response.header("cache-control"), Some("no-store"));

    let sent = world.client_secret_requests();
    assert_eq!(sent.len(), 1);
    let sent = &sent[0];
    assert_eq!(
        sent["expires_after"],
        json!({"anchor": "created_at", "seconds": 120})
    );
    assert_eq!(sent["session"]["type"], "realtime");
    assert_eq!(sent["session"]["model"], MODEL);
    assert_eq!(sent["session"]["audio"]["output"]["voice"], "ash");
    let instructions = sent["session"]["instructions"].as_str().unwrap();
    assert!(
        instructions.contains("professional tutor"),
        "{instructions}"
    );
    assert!(instructions.contains("formal"), "{instructions}");
    assert!(instructions.contains("speak German"), "{instructions}");

    let session_id: Uuid = body["sessionId"].as_str().unwrap().parse().unwrap();
    let row = world
        .db
        .client()
        .query_one(
            "SELECT user_id, client_key, persona, language, model, voice, refresh_count \
             FROM realtime_token_sessions WHERE id = $1",
            &[&session_id],
        )
        .unwrap();
    assert_eq!(row.get::<_, Option<Uuid>>("user_id"), Some(student));
    assert_eq!(
        row.get::<_, String>("client_key"),
        format!("user:{student}")
    );
    assert_eq!(row.get::<_, String>("persona"), "student-tutor");
    assert_eq!(row.get::<_, String>("language"), "de");
    assert_eq!(row.get::<_, String>("model"), MODEL);
    assert_eq!(row.get::<_, String>("voice"), "ash");
    assert_eq!(row.get::<_, i32>("refresh_count"), 0);

    assert!(!response.text.contains(API_KEY));
    world.assert_logs_hold_no_secrets(&[token]);
}

#[test]
fn the_demo_guide_is_warm_and_speaks_the_chosen_language_with_the_configured_voice() {
    let world = World::start_with(&[("realtime_voice", "coral")]);
    let visitor = world.user();
    let activity = Uuid::new_v4();
    let response = world.mint(
        &user_jwt(visitor),
        json!({"persona": "demo-guide", "language": "pt-br", "activity_id": activity}),
    );
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.body["persona"], "demo-guide");
    assert_eq!(response.body["voice"], "coral");
    assert_eq!(response.body["language"], "pt-BR");

    let sent = world.client_secret_requests();
    let instructions = sent[0]["session"]["instructions"].as_str().unwrap();
    assert!(instructions.contains("warm, friendly"), "{instructions}");
    assert!(
        instructions.contains("speak Portuguese (Brazil)"),
        "{instructions}"
    );
    assert_eq!(sent[0]["session"]["audio"]["output"]["voice"], "coral");

    let stored: Option<Uuid> = world
        .db
        .client()
        .query_one("SELECT activity_id FROM realtime_token_sessions", &[])
        .unwrap()
        .get(0);
    assert_eq!(stored, Some(activity));
}

#[test]
fn student_outside_the_rollout_gets_the_fallback_and_no_upstream_call() {
    let world = World::start();
    world.set_flag(false, 100);
    let student = world.user();

    let response = world.mint(&user_jwt(student), json!({"persona": "student-tutor"}));
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(
        response.body,
        json!({
            "success": true, "mode": "fallback", "implementation": "websocket",
            "enrolled": false, "bucket": bucket_for_user(&student.to_string()),
        })
    );
    assert!(world.openai.requests().is_empty(), "OpenAI was not called");
    assert_eq!(world.session_rows(), 0);
}

#[test]
fn raising_the_rollout_enrols_exactly_the_buckets_below_it_and_nobody_leaves() {
    let world = World::start();
    let students: Vec<Uuid> = (0..30).map(|_| world.user()).collect();
    let mut enrolled_before: Vec<bool> = vec![false; students.len()];

    for percentage in [0, 10, 50, 100] {
        world.set_flag(true, percentage);
        world.openai.clear();
        let mut expected_calls = 0;
        for (index, student) in students.iter().enumerate() {
            let bucket = bucket_for_user(&student.to_string());
            let should_enrol = i32::from(bucket) < percentage;
            let jwt = user_jwt(*student);

            let response = world.mint(&jwt, json!({"persona": "student-tutor"}));
            assert_eq!(response.status, 200, "{}", response.text);
            assert_eq!(response.body["bucket"], bucket);
            assert_eq!(
                response.body["enrolled"], should_enrol,
                "bucket {bucket} at {percentage}%: {}",
                response.text
            );
            assert_eq!(response.body["token"].is_string(), should_enrol);
            assert_eq!(
                response.body["implementation"],
                if should_enrol { "webrtc" } else { "websocket" }
            );

            let flag = world.flag(&jwt);
            assert_eq!(flag.status, 200, "{}", flag.text);
            assert_eq!(
                flag.body,
                json!({
                    "flag": "voice_webrtc_migration", "enabled": true,
                    "rollout_percentage": percentage, "bucket": bucket,
                    "enrolled": should_enrol,
                    "implementation": if should_enrol { "webrtc" } else { "websocket" },
                })
            );

            assert!(
                !enrolled_before[index] || should_enrol,
                "a student left the rollout when it rose to {percentage}%"
            );
            enrolled_before[index] = should_enrol;
            expected_calls += usize::from(should_enrol);
        }
        assert_eq!(
            world.client_secret_requests().len(),
            expected_calls,
            "at {percentage}%"
        );
    }
    assert!(
        enrolled_before.iter().all(|enrolled| *enrolled),
        "everyone is in at 100%"
    );
}

#[test]
fn the_flag_route_describes_the_rollout_for_the_caller() {
    let world = World::start();
    world.set_flag(false, 0);
    let student = world.user();
    let response = world.flag(&user_jwt(student));
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(
        response.body,
        json!({
            "flag": "voice_webrtc_migration", "enabled": false, "rollout_percentage": 0,
            "bucket": bucket_for_user(&student.to_string()), "enrolled": false,
            "implementation": "websocket",
        })
    );

    let anon = world.flag(&anon_jwt());
    assert_eq!(anon.status, 200, "{}", anon.text);
    assert_eq!(anon.body["bucket"], Value::Null);
    assert_eq!(anon.body["enrolled"], false);

    let posted = world.post("/flag", Some(&bearer(&anon_jwt())), "{}");
    assert_error(&posted, 405, "method_not_allowed");
    assert_eq!(posted.header("allow"), Some("GET, OPTIONS"));
}

#[test]
fn demo_guide_works_with_the_anon_key_and_student_tutor_does_not() {
    let world = World::start();
    world.set_flag(true, 100);

    let response = world.mint(&anon_jwt(), json!({"persona": "demo-guide"}));
    assert_eq!(response.status, 200, "{}", response.text);
    assert!(response.body["token"].is_string());
    assert_eq!(response.body["persona"], "demo-guide");
    assert_eq!(response.body["bucket"], Value::Null);
    let row = world
        .db
        .client()
        .query_one(
            "SELECT user_id, client_key FROM realtime_token_sessions",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, Option<Uuid>>("user_id"), None);
    assert_eq!(row.get::<_, String>("client_key"), "ip:127.0.0.1");

    let refused = world.mint(&anon_jwt(), json!({"persona": "student-tutor"}));
    assert_error(&refused, 403, "forbidden");
    assert_eq!(
        world.client_secret_requests().len(),
        1,
        "only the demo guide reached OpenAI"
    );
    assert_eq!(world.session_rows(), 1);
}

// ---------------------------------------------------------------------------------------
// Auth

#[test]
fn bad_or_missing_tokens_get_401_with_the_contracts_body_and_cors_headers() {
    let (trusted, trusted_jwk) = ec_key(1, "key-1");
    let (impostor, _) = ec_key(2, "key-1");
    let jwks = json!({"keys": [trusted_jwk]}).to_string();
    let world = World::start_with(&[("supabase_jwks", &jwks)]);
    let student = world.user();
    let now = now_unix();

    // The trusted ES256 key works, so the refusals below are about the tokens.
    let good = es256(&trusted, "key-1", &user_claims(student));
    assert_eq!(
        world.mint(&good, json!({"persona": "demo-guide"})).status,
        200
    );

    let mut expired_claims = user_claims(student);
    expired_claims["exp"] = json!(now - 120);
    let none_token = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(user_claims(student).to_string().as_bytes())
    );
    let cases = [
        ("expired", hs256(&expired_claims, JWT_SECRET)),
        (
            "wrong signature",
            hs256(&user_claims(student), "not-the-project-secret-at-all-0123"),
        ),
        ("alg none", none_token),
        (
            "ES256 with the wrong key",
            es256(&impostor, "key-1", &user_claims(student)),
        ),
    ];
    for (case, token) in &cases {
        let response = world.mint(token, json!({"persona": "demo-guide"}));
        assert_eq!(response.status, 401, "{case}: {}", response.text);
        assert_eq!(
            response.body,
            json!({"code": 401, "message": "Invalid JWT", "error": "invalid_jwt"}),
            "{case}"
        );
        assert_eq!(
            response.header("access-control-allow-origin"),
            Some("*"),
            "{case}"
        );
        assert_eq!(
            response.header("access-control-allow-headers"),
            Some("authorization, x-client-info, apikey, content-type"),
            "{case}"
        );
    }

    let missing = world.post("", None, &json!({"persona": "demo-guide"}).to_string());
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.body,
        json!({"code": 401, "message": "Missing authorization header", "error": "missing_authorization"})
    );
    assert_eq!(missing.header("access-control-allow-origin"), Some("*"));

    assert_eq!(
        world.client_secret_requests().len(),
        1,
        "refused callers never reach OpenAI"
    );
    assert_eq!(world.session_rows(), 1);
}

#[test]
fn preflight_needs_no_token() {
    let world = World::start();
    let response = send(
        "OPTIONS",
        &world.app.url(ROUTE),
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "POST"),
        ],
        b"",
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.text, "ok");
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
}

// ---------------------------------------------------------------------------------------
// Refresh

fn mint_session(world: &World, jwt: &str) -> String {
    let response = world.mint(jwt, json!({"persona": "student-tutor", "language": "fr"}));
    assert_eq!(response.status, 200, "{}", response.text);
    response.body["sessionId"].as_str().unwrap().to_string()
}

#[test]
fn the_owner_refreshes_a_session_five_times_and_the_sixth_is_429() {
    let world = World::start();
    world.set_flag(true, 100);
    let student = world.user();
    let jwt = user_jwt(student);
    let session_id = mint_session(&world, &jwt);

    let mut tokens = Vec::new();
    for refresh in 1..=5 {
        let response = world.refresh(&jwt, &session_id);
        assert_eq!(response.status, 200, "refresh {refresh}: {}", response.text);
        assert_eq!(response.body["sessionId"], session_id.as_str());
        assert_eq!(response.body["persona"], "student-tutor");
        assert_eq!(response.body["refreshCount"], refresh);
        assert_eq!(response.body["refreshesLeft"], 5 - refresh);
        tokens.push(response.body["token"].as_str().unwrap().to_string());
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 5, "every refresh is a new token");

    let sixth = world.refresh(&jwt, &session_id);
    assert_error(&sixth, 429, "rate_limited");
    assert!(sixth.header("retry-after").is_some());

    let sent = world.client_secret_requests();
    assert_eq!(sent.len(), 6, "the mint and five refreshes reached OpenAI");
    for request in &sent {
        let instructions = request["session"]["instructions"].as_str().unwrap();
        assert!(
            instructions.contains("speak French"),
            "the session's language is kept"
        );
    }
    let count: i32 = world
        .db
        .client()
        .query_one(
            "SELECT refresh_count FROM realtime_token_sessions WHERE id = $1::text::uuid",
            &[&session_id],
        )
        .unwrap()
        .get(0);
    assert_eq!(count, 5);
    let token_refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    world.assert_logs_hold_no_secrets(&token_refs);
}

#[test]
fn only_the_owner_may_refresh_a_session() {
    let world = World::start();
    world.set_flag(true, 100);
    let owner = world.user();
    let other = world.user();
    let session_id = mint_session(&world, &user_jwt(owner));

    let response = world.refresh(&user_jwt(other), &session_id);
    assert_error(&response, 403, "forbidden");
    let anon = world.refresh(&anon_jwt(), &session_id);
    assert_error(&anon, 403, "forbidden");
    assert_eq!(world.client_secret_requests().len(), 1);
    assert_eq!(
        world.count("SELECT refresh_count::int8 FROM realtime_token_sessions"),
        0
    );

    let unknown = world.refresh(&user_jwt(owner), &Uuid::new_v4().to_string());
    assert_error(&unknown, 404, "not_found");
    let malformed = world.post(
        "/refresh",
        Some(&bearer(&user_jwt(owner))),
        r#"{"sessionId": "abc"}"#,
    );
    assert_error(&malformed, 400, "invalid_request");
    assert_eq!(malformed.body["field"], "sessionId");
}

#[test]
fn a_session_older_than_sixty_minutes_cannot_be_refreshed() {
    let world = World::start();
    world.set_flag(true, 100);
    let owner = world.user();
    let jwt = user_jwt(owner);
    let session_id = mint_session(&world, &jwt);
    world
        .db
        .client()
        .execute(
            "UPDATE realtime_token_sessions SET created_at = now() - interval '61 minutes' \
             WHERE id = $1::text::uuid",
            &[&session_id],
        )
        .unwrap();

    let response = world.refresh(&jwt, &session_id);
    assert_error(&response, 410, "gone");
    assert_eq!(
        world.client_secret_requests().len(),
        1,
        "no token for an expired session"
    );
}

#[test]
fn an_anonymous_demo_session_is_refreshed_from_the_same_address() {
    let world = World::start();
    let response = world.mint(&anon_jwt(), json!({"persona": "demo-guide"}));
    assert_eq!(response.status, 200, "{}", response.text);
    let session_id = response.body["sessionId"].as_str().unwrap();
    let refreshed = world.refresh(&anon_jwt(), session_id);
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert_eq!(refreshed.body["sessionId"], session_id);
    let stranger = world.refresh(&user_jwt(world.user()), session_id);
    assert_error(&stranger, 403, "forbidden");
}

#[test]
fn a_rollback_stops_refreshes_of_tutor_sessions() {
    let world = World::start();
    world.set_flag(true, 100);
    let student = world.user();
    let jwt = user_jwt(student);
    let session_id = mint_session(&world, &jwt);
    world.set_flag(false, 0);

    let response = world.refresh(&jwt, &session_id);
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.body["mode"], "fallback");
    assert_eq!(response.body["implementation"], "websocket");
    assert!(response.body.get("token").is_none());
    assert_eq!(world.client_secret_requests().len(), 1);
}

// ---------------------------------------------------------------------------------------
// Rate limits

/// Waits, when needed, until at least `needed` seconds are left in the database's
/// current minute, so a burst of requests falls in one rate-limit window.
fn start_of_a_window(world: &World, needed: f64) {
    let left: f64 = world
        .db
        .client()
        .query_one(
            "SELECT extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now())::float8",
            &[],
        )
        .unwrap()
        .get(0);
    if left < needed {
        std::thread::sleep(Duration::from_secs_f64(left + 0.2));
    }
}

#[test]
fn the_sixty_first_request_in_a_minute_is_429_with_retry_after() {
    let world = World::start();
    let student = world.user();
    let other = world.user();
    let jwt = user_jwt(student);
    start_of_a_window(&world, 40.0);

    for request in 1..=60 {
        let response = world.mint(&jwt, json!({"persona": "demo-guide"}));
        assert_eq!(response.status, 200, "request {request}: {}", response.text);
    }
    let refused = world.mint(&jwt, json!({"persona": "demo-guide"}));
    assert_error(&refused, 429, "rate_limited");
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(
        world.client_secret_requests().len(),
        60,
        "the refused request never reached OpenAI"
    );
    assert_eq!(world.session_rows(), 60);
    assert_eq!(
        world.count(&format!(
            "SELECT count::int8 FROM rate_limits WHERE bucket_key = 'mint:user:{student}'"
        )),
        60,
        "a refused request is not counted"
    );

    // The limit is per user: someone else is unaffected.
    let response = world.mint(&user_jwt(other), json!({"persona": "demo-guide"}));
    assert_eq!(response.status, 200, "{}", response.text);
}

#[test]
fn anonymous_callers_are_limited_per_client_address() {
    let world = World::start_with(&[("rate_limit_per_minute", "3")]);
    start_of_a_window(&world, 20.0);
    for _ in 0..3 {
        assert_eq!(
            world
                .mint(&anon_jwt(), json!({"persona": "demo-guide"}))
                .status,
            200
        );
    }
    let refused = world.mint(&anon_jwt(), json!({"persona": "demo-guide"}));
    assert_error(&refused, 429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(
        world.count("SELECT count::int8 FROM rate_limits WHERE bucket_key = 'mint:ip:127.0.0.1'"),
        3
    );
}

#[test]
fn concurrent_requests_never_get_past_the_limit() {
    let world = World::start_with(&[("rate_limit_per_minute", "10")]);
    let jwt = user_jwt(world.user());
    start_of_a_window(&world, 30.0);

    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..30)
            .map(|_| scope.spawn(|| world.mint(&jwt, json!({"persona": "demo-guide"})).status))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    let passed = statuses.iter().filter(|status| **status == 200).count();
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!((passed, refused), (10, 20), "statuses: {statuses:?}");
    assert_eq!(world.client_secret_requests().len(), 10);
    assert_eq!(world.session_rows(), 10);
}

#[test]
fn expired_rate_limit_windows_are_swept_after_a_new_windows_response() {
    let world = World::start();
    world
        .db
        .client()
        .execute(
            "INSERT INTO rate_limits (bucket_key, window_start, count) \
             VALUES ('mint:user:00000000-0000-0000-0000-000000000001', date_trunc('minute', now()) - interval '2 hours', 7)",
            &[],
        )
        .unwrap();
    let response = world.mint(&user_jwt(world.user()), json!({"persona": "demo-guide"}));
    assert_eq!(response.status, 200, "{}", response.text);
    // The sweep runs after the response has been sent (Incoming::after_response).
    let expired = "SELECT count(*) FROM rate_limits WHERE window_start < now() - interval '1 hour'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while world.count(expired) != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(world.count(expired), 0, "the expired window is still there");
    assert_eq!(
        world.count("SELECT count(*) FROM rate_limits WHERE window_start >= date_trunc('minute', now()) - interval '1 minute'"),
        1,
        "the new window is kept"
    );
}

// ---------------------------------------------------------------------------------------
// Upstream failures and bad input

#[test]
fn openai_429_is_503_with_retry_after() {
    let world = World::start();
    world
        .openai
        .set_mode(Endpoint::ClientSecrets, Mode::RateLimited);
    let response = world.mint(&user_jwt(world.user()), json!({"persona": "demo-guide"}));
    assert_error(&response, 503, "service_unavailable");
    assert_eq!(
        response.header("retry-after"),
        Some(RETRY_AFTER_SECONDS.to_string().as_str())
    );
    assert_eq!(world.session_rows(), 0);
    world.assert_logs_hold_no_secrets(&[]);
}

#[test]
fn openai_500_is_502_upstream_error() {
    let world = World::start();
    world
        .openai
        .set_mode(Endpoint::ClientSecrets, Mode::ServerError);
    let response = world.mint(&user_jwt(world.user()), json!({"persona": "demo-guide"}));
    assert_error(&response, 502, "upstream_error");
    assert!(
        !response.text.contains("server_error"),
        "no upstream body: {}",
        response.text
    );
    assert_eq!(world.session_rows(), 0);
}

#[test]
fn openai_silence_is_504_after_the_deadline() {
    let world = World::start();
    world.openai.set_mode(Endpoint::ClientSecrets, Mode::Silent);
    let response = world.mint(&user_jwt(world.user()), json!({"persona": "demo-guide"}));
    assert_error(&response, 504, "upstream_timeout");
    assert_eq!(world.session_rows(), 0);
}

#[test]
fn no_api_key_is_503_in_demo_mode_without_an_upstream_call() {
    let world = World::start_with(&[("openai_api_key", "")]);
    let response = world.mint(&user_jwt(world.user()), json!({"persona": "demo-guide"}));
    assert_error(&response, 503, "service_unavailable");
    assert_eq!(response.body["mode"], "demo");
    assert!(world.openai.requests().is_empty());
    assert_eq!(world.session_rows(), 0);
}

#[test]
fn database_down_is_503_with_retry_after_and_no_token() {
    let cluster = PgCluster::start_private();
    let db = TestDb::create_in(&cluster);
    let world = World::start_in(db, &[]);
    let jwt = user_jwt(world.user());
    assert_eq!(
        world.mint(&jwt, json!({"persona": "demo-guide"})).status,
        200
    );

    cluster.stop();
    world.openai.clear();
    let response = world.mint(&jwt, json!({"persona": "demo-guide"}));
    assert_error(&response, 503, "database_unavailable");
    assert!(response.header("retry-after").is_some());
    assert!(!response.text.contains("postgres"), "{}", response.text);
    assert!(
        world.openai.requests().is_empty(),
        "no token is minted without the database"
    );

    cluster.start();
    let response = world.mint(&jwt, json!({"persona": "demo-guide"}));
    assert_eq!(response.status, 200, "{}", response.text);
}

#[test]
fn bad_persona_language_or_body_is_400_naming_the_field_and_writes_nothing() {
    let world = World::start();
    let jwt = user_jwt(world.user());

    let persona = world.mint(&jwt, json!({"persona": "pirate"}));
    assert_error(&persona, 400, "invalid_request");
    assert_eq!(persona.body["field"], "persona");

    let language = world.mint(&jwt, json!({"persona": "demo-guide", "language": "tlh"}));
    assert_error(&language, 400, "invalid_request");
    assert_eq!(language.body["field"], "language");

    let activity = world.mint(&jwt, json!({"persona": "demo-guide", "activity_id": "7"}));
    assert_error(&activity, 400, "invalid_request");
    assert_eq!(activity.body["field"], "activity_id");

    let not_json = world.post("", Some(&bearer(&jwt)), "persona=demo-guide");
    assert_error(&not_json, 400, "invalid_request");

    assert!(world.openai.requests().is_empty());
    assert_eq!(world.session_rows(), 0);
    assert_eq!(
        world.count("SELECT count(*) FROM rate_limits"),
        0,
        "refused requests are not counted"
    );
}

#[test]
fn unknown_routes_are_404_and_other_methods_405() {
    let world = World::start();
    let jwt = bearer(&user_jwt(world.user()));
    let unknown = world.post("/nope", Some(&jwt), "{}");
    assert_error(&unknown, 404, "not_found");
    let get = send(
        "GET",
        &world.app.url(ROUTE),
        &[("authorization", &jwt)],
        b"",
    );
    assert_eq!(get.status, 405, "{}", get.text);
    assert_eq!(get.header("allow"), Some("POST, OPTIONS"));
}
