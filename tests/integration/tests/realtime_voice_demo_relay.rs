//! `realtime-voice-demo-relay` through the host against a real PostgreSQL and the OpenAI
//! stand-in (CONTRACT.md sections 2 and 4, issue 5, the isolation spec).
//!
//! Build every component first (`make build-components`), then
//! `cargo test --profile host -p voice-edge-integration --test realtime_voice_demo_relay`.
//! Every test has its own database, stand-in, app and users, so they run in parallel.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;
use voice_edge_integration::{
    AuthUser, Response, WEBHOOK_SECRET, app_vars, hs256, now_unix, send, start_app, user_claims,
};
use voice_edge_openai_standin::error::RETRY_AFTER_SECONDS;
use voice_edge_openai_standin::{Endpoint, Mode, StandIn};
use voice_edge_testkit::app::TestApp;
use voice_edge_testkit::pg::TestDb;

const API_KEY: &str = "sk-test-demo-relay-7c1e4b9a0d3f5e62";
const JWT_SECRET: &str = "demo-relay-test-jwt-secret-0123456789abcdef";
const ROUTE: &str = "/functions/v1/realtime-voice-demo-relay";

/// What a browser's `RTCPeerConnection.createOffer()` looks like (audio and the events
/// data channel), trimmed.
const OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Qx7S\r\n\
a=ice-pwd:offer-ice-password-not-for-logs\r\n\
a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=sendrecv\r\n\
a=rtpmap:111 opus/48000/2\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:1\r\n\
a=sctp-port:5000\r\n";

/// A transcript the logs must never show.
const SECRET_TRANSCRIPT: &str = "the quick brown fox whispered a private thing";

// ---------------------------------------------------------------------------------------
// JWTs, minted with the secret the app is given

fn user_jwt(user_id: Uuid, is_anonymous: bool) -> String {
    let provider = if is_anonymous { "anonymous" } else { "email" };
    hs256(
        &user_claims(user_id, is_anonymous, json!({"provider": provider})),
        JWT_SECRET,
    )
}

/// The project's anon key: role `anon`, no `sub`.
fn anon_jwt() -> String {
    voice_edge_integration::anon_jwt(JWT_SECRET)
}

// ---------------------------------------------------------------------------------------
// One test's world: a database, the stand-in, the app

struct World {
    db: TestDb,
    openai: StandIn,
    app: TestApp,
}

/// The app on `db`, calling `openai`, with `extra` variables over the defaults.
fn start_app_on(db: &TestDb, openai: &StandIn, extra: &[(&str, &str)]) -> TestApp {
    let base_url = openai.base_url();
    let overrides: Vec<(&str, &str)> = [("openai_base_url", base_url.as_str())]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    start_app(&app_vars(db, JWT_SECRET, Some(API_KEY), &overrides))
}

impl World {
    fn start() -> World {
        World::start_with(&[])
    }

    /// With variables overriding the defaults (`("rate_limit_per_minute", "2")`).
    fn start_with(extra: &[(&str, &str)]) -> World {
        let db = TestDb::create();
        let openai = StandIn::start();
        let app = start_app_on(&db, &openai, extra);
        World { db, openai, app }
    }

    fn url(&self, path: &str) -> String {
        self.app.url(&format!("{ROUTE}{path}"))
    }

    fn get(&self, path: &str, token: &str) -> Response {
        send(
            "GET",
            &self.url(path),
            &[("authorization", &format!("Bearer {token}"))],
            b"",
        )
    }

    fn post_json(&self, path: &str, token: &str, body: &Value) -> Response {
        send(
            "POST",
            &self.url(path),
            &[
                ("authorization", &format!("Bearer {token}")),
                ("content-type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    }

    fn post_sdp(&self, session_id: &str, token: &str, offer: &[u8]) -> Response {
        send(
            "POST",
            &self.url(&format!("/sessions/{session_id}/sdp")),
            &[
                ("authorization", &format!("Bearer {token}")),
                ("content-type", "application/sdp"),
            ],
            offer,
        )
    }

    /// A user of the project (a row of `auth.users`), and a JWT for them.
    fn user(&self, is_anonymous: bool) -> (Uuid, String) {
        let user = if is_anonymous {
            AuthUser::anonymous()
        } else {
            AuthUser::with_email("school.example")
        };
        let id = user.insert(&self.db);
        (id, user_jwt(id, is_anonymous))
    }

    /// A demo activity of this test's own.
    fn activity(&self, demo_type: &str, language: &str, published: bool, content: Value) -> Uuid {
        let id = Uuid::new_v4();
        self.db
            .client()
            .execute(
                "INSERT INTO demo_activities
                   (id, demo_type, language, grade_level, title, content, is_published)
                 VALUES ($1, $2, $3, 4, $4, $5, $6)",
                &[
                    &id,
                    &demo_type,
                    &language,
                    &format!("Test {demo_type} {id}"),
                    &content,
                    &published,
                ],
            )
            .expect("a demo activity");
        id
    }

    fn readflow_activity(&self) -> Uuid {
        self.activity(
            "readflow",
            "en",
            true,
            json!({
                "passage": "Otters hold hands while they sleep so they do not drift apart.",
                "target_wpm": 95,
                "focus_words": ["otters", "drift"],
            }),
        )
    }

    /// A session of `token`'s user on `activity`; its id.
    fn session(&self, token: &str, activity: Uuid) -> String {
        let response = self.post_json("/sessions", token, &json!({"demo_activity_id": activity}));
        assert_eq!(response.status, 201, "{response:?}");
        response.body["session_id"].as_str().unwrap().to_string()
    }

    fn query_one(&self, sql: &str, session_id: &str) -> postgres::Row {
        let id = Uuid::parse_str(session_id).unwrap();
        self.db.client().query_one(sql, &[&id]).expect(sql)
    }

    fn session_row(&self, session_id: &str) -> postgres::Row {
        self.query_one(
            "SELECT student_id, demo_activity_id, status, session_config, openai_call_id,
                    telemetry, ended_at IS NOT NULL AS has_ended_at
             FROM demo_voice_sessions WHERE id = $1",
            session_id,
        )
    }

    fn interaction_count(&self, session_id: &str) -> i64 {
        self.query_one(
            "SELECT count(*) FROM demo_interactions WHERE demo_session_id = $1",
            session_id,
        )
        .get(0)
    }

    fn count(&self, sql: &str) -> i64 {
        self.db.client().query_one(sql, &[]).expect(sql).get(0)
    }
}

fn items(count: usize) -> Value {
    let items: Vec<Value> = (0..count)
        .map(|index| json!({"interaction_type": "event", "payload": {"step": index}}))
        .collect();
    json!({ "items": items })
}

// ---------------------------------------------------------------------------------------
// The full flow

#[test]
fn full_flow_lists_creates_relays_logs_and_ends_with_rows_in_the_three_demo_tables() {
    let world = World::start();
    let activity = world.readflow_activity();
    let draft = world.activity("readflow", "en", false, json!({"passage": "Not yet."}));
    let (student, token) = world.user(false);

    // List: anon may read; only published activities of the type asked for.
    let list = world.get("/activities?type=readflow", &anon_jwt());
    assert_eq!(list.status, 200, "{list:?}");
    let activities = list.body["activities"].as_array().unwrap();
    assert!(activities.iter().all(|a| a["demo_type"] == "readflow"));
    assert!(activities.iter().all(|a| a["is_published"] == true));
    let ids: Vec<&str> = activities
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&activity.to_string().as_str()));
    assert!(!ids.contains(&draft.to_string().as_str()));
    assert!(
        ids.len() >= 3,
        "the seed's readflow activities are listed too: {ids:?}"
    );

    let one = world.get(&format!("/activities/{activity}"), &anon_jwt());
    assert_eq!(one.status, 200, "{one:?}");
    assert_eq!(one.body["id"], activity.to_string());
    assert_eq!(one.body["content"]["target_wpm"], 95);

    // Create a session: the configuration is the one that will be sent.
    let created = world.post_json("/sessions", &token, &json!({"demo_activity_id": activity}));
    assert_eq!(created.status, 201, "{created:?}");
    let session_id = created.body["session_id"].as_str().unwrap().to_string();
    let config = &created.body["session_config"];
    assert_eq!(created.body["activity"]["id"], activity.to_string());
    assert_eq!(created.body["status"], "active");
    assert_eq!(config["type"], "realtime");
    assert_eq!(config["model"], "gpt-realtime");
    assert_eq!(config["audio"]["output"]["voice"], "ash");
    assert_eq!(
        config["audio"]["input"]["transcription"]["model"],
        "gpt-4o-transcribe"
    );
    assert_eq!(config["audio"]["input"]["transcription"]["language"], "en");
    assert_eq!(config["tools"][0]["name"], "record_reading_metrics");
    let instructions = config["instructions"].as_str().unwrap();
    assert!(
        instructions.contains("Otters hold hands while they sleep"),
        "{instructions}"
    );
    assert!(instructions.contains("words per minute"));
    assert!(instructions.contains("Speak only English (en)"));
    assert!(instructions.contains("grade 4"));
    let row = world.session_row(&session_id);
    assert_eq!(row.get::<_, Uuid>("student_id"), student);
    assert_eq!(row.get::<_, Uuid>("demo_activity_id"), activity);
    assert_eq!(row.get::<_, String>("status"), "active");
    assert_eq!(&row.get::<_, Value>("session_config"), config);
    assert_eq!(row.get::<_, Option<String>>("openai_call_id"), None);

    // Relay the offer: the stand-in sees the session with the server's key.
    let answer = world.post_sdp(&session_id, &token, OFFER.as_bytes());
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/sdp"));
    assert!(answer.text.starts_with("v=0\r\n"), "{}", answer.text);
    assert!(answer.text.contains("m=audio"));
    let calls = world.openai.requests_to("/v1/realtime/calls");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].bearer_key(), Some(API_KEY));
    assert!(
        calls[0]
            .header("content-type")
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );
    assert_eq!(calls[0].form_field("sdp"), Some(OFFER));
    let sent = calls[0].form_json("session").expect("a JSON session part");
    assert_eq!(&sent, config);
    assert_eq!(sent["instructions"].as_str(), Some(instructions));
    assert_eq!(sent["audio"]["output"]["voice"], "ash");
    assert_eq!(sent["tools"][0]["name"], "record_reading_metrics");
    let call_id = answer
        .header("x-openai-call-id")
        .expect("the call id")
        .to_string();
    assert!(call_id.starts_with("rtc_"), "{call_id}");
    let row = world.session_row(&session_id);
    assert_eq!(
        row.get::<_, Option<String>>("openai_call_id"),
        Some(call_id)
    );

    // Interactions in one batch, word timings kept.
    let batch = json!({"items": [
        {"interaction_type": "assistant_transcript", "transcript": "Please read the passage."},
        {"interaction_type": "user_transcript", "transcript": SECRET_TRANSCRIPT,
         "words": [{"word": "the", "start_ms": 0, "end_ms": 180, "confidence": 0.98},
                   {"word": "quick", "start_ms": 180, "end_ms": 420}]},
        {"interaction_type": "tool_call", "payload": {"name": "record_reading_metrics",
         "arguments": {"words_per_minute": 88, "accuracy_percent": 96.5}}}
    ]});
    let posted = world.post_json(
        &format!("/sessions/{session_id}/interactions"),
        &token,
        &batch,
    );
    assert_eq!(posted.status, 201, "{posted:?}");
    assert_eq!(posted.body, json!({"inserted": 3}));
    let rows = world
        .db
        .client()
        .query(
            "SELECT interaction_type, transcript, words, payload FROM demo_interactions
             WHERE demo_session_id = $1 ORDER BY interaction_type",
            &[&Uuid::parse_str(&session_id).unwrap()],
        )
        .unwrap();
    let types: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(
        types,
        ["assistant_transcript", "tool_call", "user_transcript"]
    );
    assert_eq!(
        rows[2].get::<_, Option<String>>(1).as_deref(),
        Some(SECRET_TRANSCRIPT)
    );
    assert_eq!(
        rows[2].get::<_, Option<Value>>(2),
        Some(json!([
            {"word": "the", "start_ms": 0, "end_ms": 180, "confidence": 0.98},
            {"word": "quick", "start_ms": 180, "end_ms": 420}
        ]))
    );
    assert_eq!(
        rows[1].get::<_, Option<Value>>(3).unwrap()["arguments"]["words_per_minute"],
        88
    );
    assert_eq!(rows[0].get::<_, Option<Value>>(2), None);

    // End with telemetry, merged into the row.
    let ended = world.post_json(
        &format!("/sessions/{session_id}/end"),
        &token,
        &json!({"telemetry": {"connection_ms": 412, "words_per_minute": 88}}),
    );
    assert_eq!(ended.status, 200, "{ended:?}");
    assert_eq!(ended.body["status"], "ended");
    assert_eq!(
        ended.body["telemetry"],
        json!({"connection_ms": 412, "words_per_minute": 88})
    );
    assert!(ended.body["ended_at"].as_str().unwrap().ends_with('Z'));
    let row = world.session_row(&session_id);
    assert_eq!(row.get::<_, String>("status"), "ended");
    assert!(row.get::<_, bool>("has_ended_at"));
    assert_eq!(
        row.get::<_, Value>("telemetry"),
        json!({"connection_ms": 412, "words_per_minute": 88})
    );
    assert_eq!(world.interaction_count(&session_id), 3);

    // Nothing secret in the log lines: no key, no SDP, no transcript.
    let logs = world.app.logs().join("\n");
    assert!(
        logs.contains("\"function\":\"realtime-voice-demo-relay\""),
        "{logs}"
    );
    assert!(
        logs.contains(&student.to_string()),
        "the log names the user"
    );
    for secret in [
        API_KEY,
        SECRET_TRANSCRIPT,
        "offer-ice-password-not-for-logs",
        &token,
    ] {
        assert!(!logs.contains(secret), "the log shows `{secret}`");
    }
}

#[test]
fn token_route_mints_a_client_secret_for_the_same_configuration() {
    let world = World::start_with(&[("token_ttl_seconds", "300"), ("realtime_voice", "coral")]);
    let activity = world.activity(
        "speed-quiz",
        "es",
        true,
        json!({"topic": "capitales", "time_limit_seconds": 8,
               "questions": [{"question": "¿Capital de Perú?", "answer": "Lima"}]}),
    );
    let (_, token) = world.user(true);
    let session_id = world.session(&token, activity);

    let minted = world.post_json(&format!("/sessions/{session_id}/token"), &token, &json!({}));
    assert_eq!(minted.status, 200, "{minted:?}");
    assert_eq!(minted.body["success"], true);
    assert!(minted.body["token"].as_str().unwrap().starts_with("ek_"));
    let expires_at = minted.body["expiresAt"].as_i64().unwrap();
    assert!((expires_at - now_unix() - 300).abs() <= 5, "{expires_at}");
    assert_eq!(minted.body["sessionId"], session_id);
    assert_eq!(minted.body["voice"], "coral");
    assert_eq!(minted.body["model"], "gpt-realtime");
    assert_eq!(minted.header("cache-control"), Some("no-store"));

    let requests = world.openai.requests_to("/v1/realtime/client_secrets");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].bearer_key(), Some(API_KEY));
    let sent = requests[0].json.as_ref().unwrap();
    assert_eq!(
        sent["expires_after"],
        json!({"anchor": "created_at", "seconds": 300})
    );
    let stored: Value = world.session_row(&session_id).get("session_config");
    assert_eq!(sent["session"], stored);
    assert_eq!(sent["session"]["tools"][0]["name"], "record_quiz_answer");
    assert_eq!(sent["session"]["tools"][1]["name"], "finish_quiz");
    assert!(
        sent["session"]["instructions"]
            .as_str()
            .unwrap()
            .contains("8 seconds")
    );
    assert!(
        sent["session"]["instructions"]
            .as_str()
            .unwrap()
            .contains("Speak only Spanish (es)")
    );
    let logs = world.app.logs().join("\n");
    assert!(
        !logs.contains(minted.body["token"].as_str().unwrap()),
        "the token is not logged"
    );
}

// ---------------------------------------------------------------------------------------
// Who may do what

#[test]
fn another_user_cannot_relay_post_mint_or_end_on_someone_elses_session() {
    let world = World::start();
    let activity = world.readflow_activity();
    let (_, owner) = world.user(false);
    let (_, intruder) = world.user(false);
    let session_id = world.session(&owner, activity);

    let relay = world.post_sdp(&session_id, &intruder, OFFER.as_bytes());
    assert_eq!(relay.status, 403, "{relay:?}");
    assert_eq!(relay.body["error"], "forbidden");
    let posted = world.post_json(
        &format!("/sessions/{session_id}/interactions"),
        &intruder,
        &items(2),
    );
    assert_eq!(posted.status, 403, "{posted:?}");
    let minted = world.post_json(
        &format!("/sessions/{session_id}/token"),
        &intruder,
        &json!({}),
    );
    assert_eq!(minted.status, 403, "{minted:?}");
    let ended = world.post_json(
        &format!("/sessions/{session_id}/end"),
        &intruder,
        &json!({}),
    );
    assert_eq!(ended.status, 403, "{ended:?}");

    let row = world.session_row(&session_id);
    assert_eq!(row.get::<_, String>("status"), "active");
    assert_eq!(row.get::<_, Option<String>>("openai_call_id"), None);
    assert_eq!(world.interaction_count(&session_id), 0);
    assert!(world.openai.requests().is_empty(), "nothing reached OpenAI");
    assert_eq!(
        world.count(
            "SELECT count(*) FROM rate_limits_demo WHERE bucket_key NOT LIKE 'demo:sessions:%'"
        ),
        0,
        "no rate-limit row either, but the owner's creation of the session"
    );
}

#[test]
fn an_ended_session_refuses_more_with_409() {
    let world = World::start();
    let activity = world.readflow_activity();
    let (_, token) = world.user(false);
    let session_id = world.session(&token, activity);
    let ended = world.post_json(&format!("/sessions/{session_id}/end"), &token, &json!({}));
    assert_eq!(ended.status, 200, "{ended:?}");
    assert_eq!(ended.body["telemetry"], json!({}));

    let again = world.post_json(&format!("/sessions/{session_id}/end"), &token, &json!({}));
    assert_eq!(again.status, 409, "{again:?}");
    assert_eq!(again.body["error"], "session_ended");
    assert_eq!(
        world.post_sdp(&session_id, &token, OFFER.as_bytes()).status,
        409
    );
    let posted = world.post_json(
        &format!("/sessions/{session_id}/interactions"),
        &token,
        &items(1),
    );
    assert_eq!(posted.status, 409, "{posted:?}");
    let minted = world.post_json(&format!("/sessions/{session_id}/token"), &token, &json!({}));
    assert_eq!(minted.status, 409, "{minted:?}");

    assert_eq!(world.interaction_count(&session_id), 0);
    assert!(world.openai.requests().is_empty());
}

#[test]
fn sessions_need_a_signed_in_user_and_anonymous_sign_ins_count() {
    let world = World::start();
    let activity = world.readflow_activity();
    let body = json!({"demo_activity_id": activity});

    let missing = send(
        "POST",
        &world.url("/sessions"),
        &[
            ("content-type", "application/json"),
            ("origin", "https://school.example"),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.body,
        json!({"code": 401, "message": "Missing authorization header", "error": "missing_authorization"})
    );
    assert_eq!(missing.header("access-control-allow-origin"), Some("*"));

    let forged = world.post_json("/sessions", &format!("{}x", anon_jwt()), &body);
    assert_eq!(forged.status, 401);
    assert_eq!(forged.body["error"], "invalid_jwt");

    let anon = world.post_json("/sessions", &anon_jwt(), &body);
    assert_eq!(anon.status, 403, "{anon:?}");
    assert_eq!(world.count("SELECT count(*) FROM demo_voice_sessions"), 0);

    let (guest, guest_token) = world.user(true);
    let created = world.post_json("/sessions", &guest_token, &body);
    assert_eq!(created.status, 201, "{created:?}");
    let session_id = created.body["session_id"].as_str().unwrap();
    assert_eq!(
        world.session_row(session_id).get::<_, Uuid>("student_id"),
        guest
    );

    // Activities need a token too, the anon key's being enough.
    assert_eq!(send("GET", &world.url("/activities"), &[], b"").status, 401);
    assert_eq!(world.get("/activities", &anon_jwt()).status, 200);
}

#[test]
fn unknown_or_unpublished_activity_is_404_and_creates_nothing() {
    let world = World::start();
    let draft = world.activity("pronunciation", "en", false, json!({"words": ["ship"]}));
    let (_, token) = world.user(false);

    for id in [Uuid::new_v4(), draft] {
        let one = world.get(&format!("/activities/{id}"), &token);
        assert_eq!(one.status, 404, "{one:?}");
        assert_eq!(one.body["error"], "not_found");
        let created = world.post_json("/sessions", &token, &json!({"demo_activity_id": id}));
        assert_eq!(created.status, 404, "{created:?}");
    }
    let malformed = world.get("/activities/not-a-uuid", &token);
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.body["field"], "activity_id");
    let bad_body = world.post_json("/sessions", &token, &json!({"demo_activity_id": "nope"}));
    assert_eq!(bad_body.status, 400);
    assert_eq!(bad_body.body["field"], "demo_activity_id");
    let bad_type = world.get("/activities?type=karaoke", &token);
    assert_eq!(bad_type.status, 400);
    assert_eq!(bad_type.body["field"], "type");
    let unknown_session = world.post_sdp(&Uuid::new_v4().to_string(), &token, OFFER.as_bytes());
    assert_eq!(unknown_session.status, 404);

    assert_eq!(world.count("SELECT count(*) FROM demo_voice_sessions"), 0);
}

// ---------------------------------------------------------------------------------------
// Interaction batches

#[test]
fn a_batch_with_one_invalid_item_inserts_nothing() {
    let world = World::start();
    let activity = world.readflow_activity();
    let (_, token) = world.user(false);
    let session_id = world.session(&token, activity);

    let batch = json!({"items": [
        {"interaction_type": "user_transcript", "transcript": "fine"},
        {"interaction_type": "user_transcript", "transcript": "bad timing",
         "words": [{"word": "bad", "start_ms": 500, "end_ms": 100}]},
        {"interaction_type": "event"}
    ]});
    let posted = world.post_json(
        &format!("/sessions/{session_id}/interactions"),
        &token,
        &batch,
    );
    assert_eq!(posted.status, 400, "{posted:?}");
    assert_eq!(posted.body["field"], "items[1].words[0].end_ms");
    let unknown_type =
        json!({"items": [{"interaction_type": "event"}, {"interaction_type": "shout"}]});
    let posted = world.post_json(
        &format!("/sessions/{session_id}/interactions"),
        &token,
        &unknown_type,
    );
    assert_eq!(posted.status, 400, "{posted:?}");
    assert_eq!(posted.body["field"], "items[1].interaction_type");

    assert_eq!(world.interaction_count(&session_id), 0);
}

#[test]
fn a_batch_of_101_items_is_400_and_100_are_stored() {
    let world = World::start();
    let activity = world.readflow_activity();
    let (_, token) = world.user(false);
    let session_id = world.session(&token, activity);
    let path = format!("/sessions/{session_id}/interactions");

    let too_many = world.post_json(&path, &token, &items(101));
    assert_eq!(too_many.status, 400, "{too_many:?}");
    assert_eq!(too_many.body["field"], "items");
    let none = world.post_json(&path, &token, &items(0));
    assert_eq!(none.status, 400, "{none:?}");
    assert_eq!(world.interaction_count(&session_id), 0);

    let full = world.post_json(&path, &token, &items(100));
    assert_eq!(full.status, 201, "{full:?}");
    assert_eq!(full.body["inserted"], 100);
    assert_eq!(world.interaction_count(&session_id), 100);
}

// ---------------------------------------------------------------------------------------
// The SDP relay's limits

#[test]
fn an_sdp_body_that_is_not_sdp_is_400_and_over_32_kib_is_413() {
    let world = World::start();
    let activity = world.readflow_activity();
    let (_, token) = world.user(false);
    let session_id = world.session(&token, activity);

    let not_sdp = world.post_sdp(&session_id, &token, br#"{"sdp": "v=0"}"#);
    assert_eq!(not_sdp.status, 400, "{not_sdp:?}");
    assert_eq!(not_sdp.body["field"], "sdp");
    let no_media = world.post_sdp(&session_id, &token, b"v=0\r\ns=-\r\nt=0 0\r\n");
    assert_eq!(no_media.status, 400, "{no_media:?}");

    let mut huge = OFFER.as_bytes().to_vec();
    while huge.len() <= 32 * 1024 {
        huge.extend_from_slice(b"a=candidate:1 1 udp 2130706431 192.0.2.1 50000 typ host\r\n");
    }
    let too_large = world.post_sdp(&session_id, &token, &huge);
    assert_eq!(too_large.status, 413, "{too_large:?}");
    assert_eq!(too_large.body["error"], "payload_too_large");

    let as_json = send(
        "POST",
        &world.url(&format!("/sessions/{session_id}/sdp")),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", "application/json"),
        ],
        OFFER.as_bytes(),
    );
    assert_eq!(as_json.status, 415, "{as_json:?}");

    assert!(world.openai.requests().is_empty());
    assert_eq!(
        world
            .session_row(&session_id)
            .get::<_, Option<String>>("openai_call_id"),
        None
    );
}

#[test]
fn sdp_relaying_and_token_minting_are_rate_limited_per_user() {
    let world = World::start_with(&[("rate_limit_per_minute", "2")]);
    let activity = world.readflow_activity();
    let (user, token) = world.user(false);
    let (_, other) = world.user(false);
    let session_id = world.session(&token, activity);

    for _ in 0..2 {
        let relayed = world.post_sdp(&session_id, &token, OFFER.as_bytes());
        assert_eq!(relayed.status, 201, "{relayed:?}");
    }
    let limited = world.post_sdp(&session_id, &token, OFFER.as_bytes());
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.body["error"], "rate_limited");
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(world.openai.requests_to("/v1/realtime/calls").len(), 2);

    // Minting has a bucket of its own, and other users theirs.
    let minted = world.post_json(&format!("/sessions/{session_id}/token"), &token, &json!({}));
    assert_eq!(minted.status, 200, "{minted:?}");
    let other_session = world.session(&other, activity);
    assert_eq!(
        world
            .post_sdp(&other_session, &other, OFFER.as_bytes())
            .status,
        201
    );

    let key: String = world
        .db
        .client()
        .query_one(
            "SELECT bucket_key FROM rate_limits_demo WHERE bucket_key LIKE 'demo:sdp:user:' || $1",
            &[&user.to_string()],
        )
        .unwrap()
        .get(0);
    assert_eq!(key, format!("demo:sdp:user:{user}"));
}

// ---------------------------------------------------------------------------------------
// Upstream failures (contract section 3)

#[test]
fn upstream_failures_map_as_in_section_3() {
    let world = World::start();
    let activity = world.readflow_activity();
    let (_, token) = world.user(false);
    let session_id = world.session(&token, activity);
    let token_path = format!("/sessions/{session_id}/token");

    world.openai.set_mode(Endpoint::Calls, Mode::RateLimited);
    world
        .openai
        .set_mode(Endpoint::ClientSecrets, Mode::RateLimited);
    let busy = world.post_sdp(&session_id, &token, OFFER.as_bytes());
    assert_eq!(busy.status, 503, "{busy:?}");
    assert_eq!(busy.body["error"], "service_unavailable");
    assert_eq!(
        busy.header("retry-after"),
        Some(RETRY_AFTER_SECONDS.to_string().as_str())
    );
    let busy = world.post_json(&token_path, &token, &json!({}));
    assert_eq!(busy.status, 503, "{busy:?}");
    assert!(busy.header("retry-after").is_some());

    world.openai.set_mode(Endpoint::Calls, Mode::ServerError);
    world
        .openai
        .set_mode(Endpoint::ClientSecrets, Mode::ServerError);
    let failed = world.post_sdp(&session_id, &token, OFFER.as_bytes());
    assert_eq!(failed.status, 502, "{failed:?}");
    assert_eq!(failed.body["error"], "upstream_error");
    assert!(
        !failed.text.contains("server_error"),
        "no upstream body: {}",
        failed.text
    );
    assert_eq!(world.post_json(&token_path, &token, &json!({})).status, 502);

    world.openai.set_mode(Endpoint::Calls, Mode::Silent);
    let silent = world.post_sdp(&session_id, &token, OFFER.as_bytes());
    assert_eq!(silent.status, 504, "{silent:?}");
    assert_eq!(silent.body["error"], "upstream_timeout");

    let row = world.session_row(&session_id);
    assert_eq!(row.get::<_, Option<String>>("openai_call_id"), None);
    assert_eq!(row.get::<_, String>("status"), "active");
    let logs = world.app.logs().join("\n");
    assert!(!logs.contains(API_KEY));
}

#[test]
fn without_an_api_key_the_relay_answers_503_in_demo_mode() {
    let world = World::start_with(&[("openai_api_key", "")]);
    let activity = world.readflow_activity();
    let (_, token) = world.user(false);
    let session_id = world.session(&token, activity);

    let relayed = world.post_sdp(&session_id, &token, OFFER.as_bytes());
    assert_eq!(relayed.status, 503, "{relayed:?}");
    assert_eq!(relayed.body["error"], "service_unavailable");
    assert_eq!(relayed.body["mode"], "demo");
    let minted = world.post_json(&format!("/sessions/{session_id}/token"), &token, &json!({}));
    assert_eq!(minted.status, 503, "{minted:?}");
    assert_eq!(minted.body["mode"], "demo");
    assert!(world.openai.requests().is_empty());
}

// ---------------------------------------------------------------------------------------
// HTTP rules (contract section 2)

#[test]
fn preflight_unknown_routes_and_wrong_methods_follow_the_contract() {
    let world = World::start();
    let preflight = send(
        "OPTIONS",
        &world.url("/sessions/x/sdp"),
        &[
            ("origin", "https://school.example"),
            ("access-control-request-method", "POST"),
        ],
        b"",
    );
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.text, "ok");
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("authorization, x-client-info, apikey, content-type")
    );

    let unknown = world.get("/sessions/x/pause", &anon_jwt());
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["error"], "not_found");
    let wrong = world.get("/sessions", &anon_jwt());
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("POST, OPTIONS"));
    assert!(wrong.header("x-request-id").is_some());
}

#[test]
fn the_relay_connects_with_demo_db_url_only() {
    // db_url is right and demo_db_url is wrong: the relay cannot reach its tables.
    let db = TestDb::create();
    let openai = StandIn::start();
    let wrong = db.demo_url().replace("demo_relay:", "demo_relay:wrong-");
    let app = start_app_on(&db, &openai, &[("demo_db_url", &wrong)]);
    let response = send(
        "GET",
        &app.url(&format!("{ROUTE}/activities")),
        &[("authorization", &format!("Bearer {}", anon_jwt()))],
        b"",
    );
    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(response.body["error"], "database_unavailable");
    assert!(response.header("retry-after").is_some());
    assert!(
        !response.text.contains("wrong-"),
        "no connection detail in the body"
    );
}

// ---------------------------------------------------------------------------------------
// Isolation (the isolation spec)

#[test]
fn the_demo_role_is_refused_the_production_tables_and_the_spec_queries_hold() {
    let db = TestDb::create();
    let mut relay = db.demo_client();
    for table in ["voice_sessions", "manual_assessments", "voice_interactions"] {
        let error = relay
            .query(&format!("SELECT * FROM {table} LIMIT 1"), &[])
            .expect_err(table);
        assert_eq!(
            error.code(),
            Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{table}: {error}"
        );
    }

    let mut admin = db.client();
    let demo_columns = admin
        .query(
            "SELECT column_name
             FROM information_schema.columns
             WHERE table_name IN ('manual_assessments', 'voice_sessions', 'voice_interactions')
               AND column_name LIKE '%demo%'",
            &[],
        )
        .unwrap();
    assert!(demo_columns.is_empty());
    let mut demo_tables: Vec<String> = admin
        .query(
            "SELECT table_name
             FROM information_schema.tables
             WHERE table_name LIKE 'demo_%'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    demo_tables.sort();
    assert_eq!(
        demo_tables,
        [
            "demo_activities",
            "demo_interactions",
            "demo_voice_sessions"
        ]
    );
}

/// Standard Webhooks signature of `body` for the test secret.
fn webhook_signature(id: &str, timestamp: i64, body: &str) -> String {
    let key = STANDARD
        .decode(WEBHOOK_SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[test]
fn dropping_the_three_demo_tables_leaves_every_other_function_working() {
    let db = TestDb::create();
    let mut admin = db.client();
    // The isolation spec's removal, as written there.
    admin
        .batch_execute(
            "DROP TABLE demo_interactions CASCADE;
             DROP TABLE demo_voice_sessions CASCADE;
             DROP TABLE demo_activities CASCADE;",
        )
        .unwrap();
    let left: i64 = admin
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'demo_%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);

    let openai = StandIn::start();
    let app = start_app_on(&db, &openai, &[]);
    let url = |path: &str| app.url(&format!("/functions/v1/{path}"));
    let (student, token) = {
        let id = Uuid::new_v4();
        admin
            .execute(
                "INSERT INTO auth.users (id, email) VALUES ($1, 'x@school.example')",
                &[&id],
            )
            .unwrap();
        (id, user_jwt(id, false))
    };
    let auth = format!("Bearer {token}");
    let json_headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];

    // health: the database answers.
    let health = send("GET", &url("health"), &[], b"");
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.body["database"], true);

    // realtime-student-guide-token: the demo guide persona mints a token.
    let anon = format!("Bearer {}", anon_jwt());
    let minted = send(
        "POST",
        &url("realtime-student-guide-token"),
        &[
            ("authorization", anon.as_str()),
            ("content-type", "application/json"),
        ],
        br#"{"persona": "demo-guide"}"#,
    );
    assert_eq!(minted.status, 200, "{minted:?}");
    assert!(minted.body["token"].as_str().unwrap().starts_with("ek_"));
    let flag = send(
        "GET",
        &url("realtime-student-guide-token/flag"),
        &json_headers,
        b"",
    );
    assert_eq!(flag.status, 200, "{flag:?}");

    // voice-monitoring: metrics are stored.
    let metrics = json!({
        "implementation_type": "webrtc", "connection_success": true, "connection_time_ms": 250,
        "avg_latency_ms": 300.0, "p95_latency_ms": 450.0, "p99_latency_ms": 600.0,
        "audio_chunks_sent": 100, "audio_chunks_received": 98, "buffer_underruns": 0,
        "reconnection_attempts": 0, "duration_ms": 60000,
    });
    let stored = send(
        "POST",
        &url("voice-monitoring/metrics"),
        &json_headers,
        metrics.to_string().as_bytes(),
    );
    assert_eq!(stored.status, 201, "{stored:?}");
    let metric_rows: i64 = admin
        .query_one(
            "SELECT count(*) FROM voice_session_metrics WHERE user_id = $1",
            &[&student],
        )
        .unwrap()
        .get(0);
    assert_eq!(metric_rows, 1);

    // practice-webhook: a signed delivery for an unknown session is stored as failed.
    let body = json!({"type": "practice.session.failed", "timestamp": "2026-11-21T10:00:00Z",
                      "data": {"session_id": Uuid::new_v4(), "error_message": "x"}})
    .to_string();
    let now = now_unix();
    let signature = webhook_signature("msg_demo_drop_1", now, &body);
    let timestamp = now.to_string();
    let delivered = send(
        "POST",
        &url("practice-webhook"),
        &[
            ("content-type", "application/json"),
            ("webhook-id", "msg_demo_drop_1"),
            ("webhook-timestamp", timestamp.as_str()),
            ("webhook-signature", signature.as_str()),
        ],
        body.as_bytes(),
    );
    assert_eq!(delivered.status, 404, "{delivered:?}");
    let events: i64 = admin
        .query_one(
            "SELECT count(*) FROM webhook_events WHERE id = 'msg_demo_drop_1'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(events, 1);

    // voice-agent-search: an answer through the Responses API.
    let searched = send(
        "POST",
        &url("voice-agent-search"),
        &json_headers,
        br#"{"query": "how far away is the moon"}"#,
    );
    assert_eq!(searched.status, 200, "{searched:?}");
    assert!(searched.body["answer"].is_string());

    // The demo relay itself fails cleanly: a generic 500, no SQL in the body.
    let demo = send(
        "GET",
        &url("realtime-voice-demo-relay/activities"),
        &[("authorization", anon.as_str())],
        b"",
    );
    assert_eq!(demo.status, 500, "{demo:?}");
    assert!(!demo.text.contains("demo_activities"), "{}", demo.text);
}

// ---------------------------------------------------------------------------------------
// Hostile input and per-caller limits (issue 13)

#[test]
fn nul_in_an_interaction_or_telemetry_is_400_naming_the_field_and_stores_nothing() {
    let world = World::start();
    let activity = world.readflow_activity();
    let (_, token) = world.user(false);
    let session_id = world.session(&token, activity);
    let batch = json!({"items": [
        {"interaction_type": "user_transcript", "transcript": "fine"},
        {"interaction_type": "user_transcript", "transcript": "a\u{0}b"},
    ]});
    let response = world.post_json(
        &format!("/sessions/{session_id}/interactions"),
        &token,
        &batch,
    );
    assert_eq!(response.status, 400, "{response:?}");
    assert_eq!(response.body["error"], "invalid_request");
    assert_eq!(response.body["field"], "items[1].transcript");
    assert_eq!(world.interaction_count(&session_id), 0);

    let ended = world.post_json(
        &format!("/sessions/{session_id}/end"),
        &token,
        &json!({"telemetry": {"note\u{0}": 1}}),
    );
    assert_eq!(ended.status, 400, "{ended:?}");
    assert_eq!(ended.body["field"], "telemetry.note\\u0000");
    assert_eq!(
        world.session_row(&session_id).get::<_, String>("status"),
        "active"
    );
    assert_eq!(
        world.count("SELECT count(*) FROM rate_limits_demo"),
        1,
        "only the session's creation was counted"
    );
}

#[test]
fn demo_sessions_and_interactions_are_limited_per_caller_and_refusals_count_nothing() {
    let world = World::start_with(&[("rate_limit_per_minute", "2")]);
    voice_edge_integration::wait_for_room_in_the_window(&world.db, 20.0);
    let activity = world.readflow_activity();
    let (student, token) = world.user(false);
    let (_, intruder) = world.user(true);

    let first = world.session(&token, activity);
    let _second = world.session(&token, activity);
    let third = world.post_json("/sessions", &token, &json!({"demo_activity_id": activity}));
    assert_eq!(third.status, 429, "{third:?}");
    assert_eq!(third.body["error"], "rate_limited");
    assert!(third.header("retry-after").is_some());
    assert_eq!(
        world.count("SELECT count(*) FROM demo_voice_sessions"),
        2,
        "the refused session was not created"
    );

    // Someone else's session: 403, and the intruder's counter is not moved.
    let refused = world.post_json(
        &format!("/sessions/{first}/interactions"),
        &intruder,
        &items(1),
    );
    assert_eq!(refused.status, 403, "{refused:?}");
    for _ in 0..2 {
        let posted = world.post_json(
            &format!("/sessions/{first}/interactions"),
            &token,
            &items(3),
        );
        assert_eq!(posted.status, 201, "{posted:?}");
    }
    let over = world.post_json(
        &format!("/sessions/{first}/interactions"),
        &token,
        &items(3),
    );
    assert_eq!(over.status, 429, "{over:?}");
    assert_eq!(world.interaction_count(&first), 6);

    let counters: Vec<(String, i32)> = world
        .db
        .client()
        .query(
            "SELECT bucket_key, count FROM rate_limits_demo ORDER BY bucket_key",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        world.count("SELECT count(*) FROM rate_limits"),
        0,
        "the demo counts in its own table"
    );
    assert_eq!(
        counters,
        [
            (format!("demo:interactions:user:{student}"), 2),
            (format!("demo:sessions:user:{student}"), 2),
        ]
    );
}
