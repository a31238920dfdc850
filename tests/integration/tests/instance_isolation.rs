//! Nothing of one request survives into another, with many callers interleaved in one
//! instance (issue 21): under Spin 4.1 an instance of a WASIp3 component serves up to
//! 16 requests at once, and our host does the same.
//!
//! 32 callers post to `realtime-student-guide-token` at once, each with its own user
//! (JWT), language and body, sent in two halves 400 ms apart so that every request
//! waits inside an instance for the rest of its body while others arrive and finish;
//! every fourth caller's token is bad and every seventh's body names an unknown
//! persona. Each answer, each row and each request to the OpenAI stand-in must be its
//! own caller's, and each refusal its own. The log lines (one per request, with
//! `"instance": {"id", "served", "concurrent"}`) show the requests shared instances and
//! overlapped in them; without that the test proves nothing, so it is asserted too.
//!
//! `cargo test --profile host -p voice-edge-integration --test instance_isolation`
//! (`VOICE_EDGE_RUNTIME=spin` for real Spin).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;
use voice_edge_integration::{AuthUser, Response, app_vars, bearer, post_slowly, start_app};
use voice_edge_openai_standin::StandIn;
use voice_edge_shared::bucket::bucket_for_user;
use voice_edge_testkit::app::max_instance_reuse;
use voice_edge_testkit::pg::TestDb;

const API_KEY: &str = "sk-test-isolation-7c1d2e3f4a5b6c7d";
const JWT_SECRET: &str = "isolation-test-jwt-secret-0123456789abcdef";
const ROUTE: &str = "/functions/v1/realtime-student-guide-token";
const CALLERS: usize = 32;
const LANGUAGES: [(&str, &str); 4] = [
    ("de", "speak German"),
    ("fr", "speak French"),
    ("es", "speak Spanish"),
    ("it", "speak Italian"),
];

/// What one caller sends and must get back.
#[derive(Clone)]
struct Caller {
    user: Uuid,
    language: &'static str,
    bad_token: bool,
    bad_persona: bool,
}

impl Caller {
    fn token(&self) -> String {
        if self.bad_token {
            // Signed with another secret: a 401 that names no user.
            voice_edge_integration::user_jwt(self.user, "not-the-project-secret-0123456789abcdef")
        } else {
            voice_edge_integration::user_jwt(self.user, JWT_SECRET)
        }
    }

    fn body(&self) -> Vec<u8> {
        let persona = if self.bad_persona {
            format!("persona-of-{}", self.user)
        } else {
            "student-tutor".to_string()
        };
        json!({"persona": persona, "language": self.language})
            .to_string()
            .into_bytes()
    }
}

#[test]
fn callers_interleaved_in_one_instance_each_get_their_own_answer_rows_and_refusals() {
    let db = TestDb::create();
    let openai = StandIn::start();
    let base_url = openai.base_url();
    let app = start_app(&app_vars(
        &db,
        JWT_SECRET,
        Some(API_KEY),
        &[
            ("openai_base_url", base_url.as_str()),
            ("openai_realtime_model", "gpt-realtime-2025-08-28"),
        ],
    ));
    db.client()
        .execute(
            "UPDATE voice_feature_flags SET enabled = true, rollout_percentage = 100 \
             WHERE flag_name = 'voice_webrtc_migration'",
            &[],
        )
        .unwrap();
    let callers: Vec<Caller> = (0..CALLERS)
        .map(|n| Caller {
            user: AuthUser::with_email("isolation.example").insert(&db),
            language: LANGUAGES[n % LANGUAGES.len()].0,
            bad_token: n % 4 == 3,
            bad_persona: n % 7 == 5,
        })
        .collect();

    let start = Arc::new(Barrier::new(CALLERS));
    let url = app.url(ROUTE);
    let answers: Vec<(Caller, Response)> = std::thread::scope(|scope| {
        let threads: Vec<_> = callers
            .iter()
            .cloned()
            .map(|caller| {
                let start = start.clone();
                let url = url.clone();
                scope.spawn(move || {
                    let authorization = bearer(&caller.token());
                    let headers = [
                        ("content-type", "application/json"),
                        ("authorization", authorization.as_str()),
                    ];
                    start.wait();
                    let answer =
                        post_slowly(&url, &headers, &caller.body(), Duration::from_millis(400));
                    (caller, answer)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });

    let mut minted = HashMap::new();
    for (caller, answer) in &answers {
        if caller.bad_token {
            assert_eq!(answer.status, 401, "{answer:?}");
            assert_eq!(answer.body["error"], "invalid_jwt", "{answer:?}");
            assert!(
                !answer.text.contains(&caller.user.to_string()),
                "{answer:?}"
            );
            continue;
        }
        if caller.bad_persona {
            assert_eq!(answer.status, 400, "{answer:?}");
            assert_eq!(answer.body["field"], "persona", "{answer:?}");
            continue;
        }
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.body["persona"], "student-tutor");
        assert_eq!(
            answer.body["bucket"],
            bucket_for_user(&caller.user.to_string()),
            "the answer carries its own caller's bucket"
        );
        let session: Uuid = answer.body["sessionId"].as_str().unwrap().parse().unwrap();
        minted.insert(session, caller.clone());
    }
    let refused = callers
        .iter()
        .filter(|c| c.bad_token || c.bad_persona)
        .count();
    assert_eq!(
        minted.len(),
        CALLERS - refused,
        "every good caller got its own session"
    );

    // Each session row is its own caller's, and only good callers have one.
    let rows = db
        .client()
        .query(
            "SELECT id, user_id, language, client_key FROM realtime_token_sessions",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), minted.len());
    for row in rows {
        let caller = &minted[&row.get::<_, Uuid>("id")];
        assert_eq!(row.get::<_, Option<Uuid>>("user_id"), Some(caller.user));
        assert_eq!(row.get::<_, String>("language"), caller.language);
        assert_eq!(
            row.get::<_, String>("client_key"),
            format!("user:{}", caller.user)
        );
    }

    // The stand-in got one request per good caller, each in its caller's language.
    let mut sent_by_language: BTreeMap<&str, usize> = BTreeMap::new();
    for request in openai.requests_to("/v1/realtime/client_secrets") {
        let instructions = request.json.unwrap()["session"]["instructions"]
            .as_str()
            .unwrap()
            .to_string();
        let (tag, _) = LANGUAGES
            .iter()
            .find(|(_, words)| instructions.contains(words))
            .expect("instructions name one of the callers' languages");
        *sent_by_language.entry(tag).or_default() += 1;
    }
    let mut expected: BTreeMap<&str, usize> = BTreeMap::new();
    for caller in minted.values() {
        *expected.entry(caller.language).or_default() += 1;
    }
    assert_eq!(sent_by_language, expected);

    // One log line per request, naming its own caller (or nobody when refused) and its
    // instance; the requests shared instances and overlapped inside one.
    let lines: Vec<Value> = app
        .logs()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["function"] == "realtime-student-guide-token" && line.get("status").is_some()
        })
        .collect();
    assert_eq!(lines.len(), CALLERS, "{lines:#?}");
    let good_users: HashSet<String> = minted.values().map(|c| c.user.to_string()).collect();
    let logged_users: HashSet<String> = lines
        .iter()
        .filter(|line| line["status"] == 200)
        .map(|line| line["user_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(logged_users, good_users);
    for line in lines.iter().filter(|line| line["status"] == 401) {
        assert_eq!(line["user_id"], Value::Null, "{line}");
    }
    let instances: HashSet<&str> = lines
        .iter()
        .map(|line| line["instance"]["id"].as_str().expect("the instance's id"))
        .collect();
    let most_at_once = lines
        .iter()
        .map(|line| line["instance"]["concurrent"].as_u64().unwrap())
        .max()
        .unwrap();
    if max_instance_reuse() == Some(1) {
        // `--max-instance-reuse-count 1`: every request had an instance of its own.
        assert_eq!(instances.len(), CALLERS);
        assert_eq!(most_at_once, 1);
    } else {
        assert!(
            instances.len() < CALLERS,
            "{} instances for {CALLERS} requests: none was reused",
            instances.len()
        );
        assert!(
            most_at_once >= 4,
            "at most {most_at_once} requests were in one instance at once"
        );
    }
    for line in &lines {
        let text = line.to_string();
        assert!(!text.contains(API_KEY) && !text.contains("ek_"), "{text}");
    }
}
