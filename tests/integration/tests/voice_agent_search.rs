//! `voice-agent-search` through the host against a real PostgreSQL and the OpenAI
//! stand-in's `/v1/responses` (CONTRACT.md sections 2, 3 and 6a; issue 8).
//!
//! Build the components first (`make build-components`), then
//! `cargo test --profile host -p voice-edge-integration --test voice_agent_search`.
//! Every test has its own database, stand-in and app, and its own users and queries.
//! Two tests wait out the 15 s upstream deadline.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;
use voice_edge_integration::{AuthUser, Response, app_vars, hs256, now_unix, send, start_app};
use voice_edge_openai_standin::error::RETRY_AFTER_SECONDS;
use voice_edge_openai_standin::responses::answer_for;
use voice_edge_openai_standin::{Endpoint, Mode, StandIn};
use voice_edge_testkit::app::TestApp;
use voice_edge_testkit::pg::TestDb;

const API_KEY: &str = "sk-test-search-fn-8d41c07b2e9a";
const JWT_SECRET: &str = "search-test-jwt-secret-0123456789abcdef01";
const SEARCH_MODEL: &str = "gpt-4.1-mini-2025-04-14";
const ROUTE: &str = "/functions/v1/voice-agent-search";
const ORIGIN: &str = "https://school.example";

// ---------------------------------------------------------------------------------------
// JWTs, minted here with the secret the app is given

fn user_jwt(user_id: Uuid) -> String {
    voice_edge_integration::user_jwt(user_id, JWT_SECRET)
}

/// The project's anon key: role `anon`, no `sub`.
fn anon_jwt() -> String {
    voice_edge_integration::anon_jwt(JWT_SECRET)
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
        let db = TestDb::create();
        let openai = StandIn::start();
        let base_url = openai.base_url();
        let defaults = [
            ("openai_base_url", base_url.as_str()),
            ("openai_search_model", SEARCH_MODEL),
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

    /// A signed-in user's JWT.
    fn student(&self) -> String {
        user_jwt(self.user())
    }

    fn post(&self, authorization: Option<&str>, body: &str) -> Response {
        let bearer = authorization.map(|token| format!("Bearer {token}"));
        let mut headers = vec![("content-type", "application/json"), ("origin", ORIGIN)];
        if let Some(value) = &bearer {
            headers.push(("authorization", value));
        }
        send("POST", &self.app.url(ROUTE), &headers, body.as_bytes())
    }

    fn search(&self, jwt: &str, body: Value) -> Response {
        self.post(Some(jwt), &body.to_string())
    }

    /// The bodies `/v1/responses` received, checking each carried the API key.
    fn upstream_requests(&self) -> Vec<Value> {
        self.openai
            .requests_to("/v1/responses")
            .into_iter()
            .map(|request| {
                assert_eq!(
                    request.bearer_key(),
                    Some(API_KEY),
                    "the API key is sent to OpenAI"
                );
                request.json.expect("a JSON body")
            })
            .collect()
    }

    fn count(&self, sql: &str) -> i64 {
        self.db.client().query_one(sql, &[]).unwrap().get(0)
    }

    fn cache_rows(&self) -> i64 {
        self.count("SELECT count(*) FROM search_cache")
    }

    /// Makes the cached answers for `normalized_query` as old as `age` (an SQL interval).
    fn age_cached_answer(&self, normalized_query: &str, age: &str) {
        let changed = self
            .db
            .client()
            .execute(
                &format!("UPDATE search_cache SET created_at = now() - interval '{age}' WHERE normalized_query = $1"),
                &[&normalized_query],
            )
            .unwrap();
        assert_eq!(changed, 1, "one cached answer for {normalized_query:?}");
    }

    /// A cache row written directly, `age` old (an SQL interval).
    fn insert_cached_answer(&self, cache_key: &str, answer: &str, age: &str) {
        self.db
            .client()
            .execute(
                &format!(
                    "INSERT INTO search_cache (cache_key, normalized_query, locale, answer, citations, created_at) \
                     VALUES ($1, 'planted', NULL, $2, '[]'::jsonb, now() - interval '{age}')"
                ),
                &[&cache_key, &answer],
            )
            .unwrap();
    }
}

fn assert_error(response: &Response, status: u16, error: &str) {
    assert_eq!(response.status, status, "{}", response.text);
    assert_eq!(response.body["code"], status, "{}", response.text);
    assert_eq!(response.body["error"], error, "{}", response.text);
    assert!(response.body["message"].is_string(), "{}", response.text);
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
}

/// The answer the stand-in gives for `query`, and its citations de-duplicated.
fn expected_answer(query: &str) -> (String, Vec<Value>) {
    let (text, cited) = answer_for(query);
    let mut citations: Vec<Value> = Vec::new();
    for (citation, _, _) in cited {
        let entry = json!({"url": citation.url, "title": citation.title});
        if !citations.contains(&entry) {
            citations.push(entry);
        }
    }
    (text, citations)
}

// ---------------------------------------------------------------------------------------
// Answers

#[test]
fn a_query_is_answered_with_text_and_citations_deduplicated_and_capped() {
    let world = World::start();
    let jwt = world.student();
    let query = "Tides in Lisbon today";

    let response = world.search(&jwt, json!({"query": format!("  {query} ")}));
    assert_eq!(response.status, 200, "{}", response.text);
    let (text, citations) = expected_answer(query);
    assert_eq!(citations.len(), 2, "the stand-in cites one URL twice");
    let body = &response.body;
    assert_eq!(body["answer"], text.as_str());
    assert_eq!(
        body["citations"],
        Value::Array(citations.clone()),
        "de-duplicated, in order"
    );
    assert_eq!(body["cached"], false);
    assert_eq!(body["stale"], false);
    assert!(body["took_ms"].is_u64(), "{body}");
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));

    let sent = world.upstream_requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["model"], SEARCH_MODEL);
    assert_eq!(sent[0]["tools"], json!([{"type": "web_search"}]));
    assert_eq!(
        sent[0]["input"], query,
        "the trimmed query, with no locale to add"
    );

    // Capped: the cached answer is cut to the caller's max_citations.
    let capped = world.search(&jwt, json!({"query": query, "max_citations": 1}));
    assert_eq!(capped.status, 200, "{}", capped.text);
    assert_eq!(capped.body["citations"], json!([citations[0]]));
    assert_eq!(capped.body["cached"], true);

    let row = world
        .db
        .client()
        .query_one(
            "SELECT normalized_query, locale, answer, citations FROM search_cache",
            &[],
        )
        .unwrap();
    assert_eq!(
        row.get::<_, String>("normalized_query"),
        "tides in lisbon today"
    );
    assert_eq!(row.get::<_, Option<String>>("locale"), None);
    assert_eq!(row.get::<_, String>("answer"), text);
    assert_eq!(row.get::<_, Value>("citations"), Value::Array(citations));
}

#[test]
fn a_locale_is_sent_as_an_instruction_and_is_part_of_the_cache_key() {
    let world = World::start();
    let jwt = world.student();
    let query = "Best time to visit Kyoto";

    let french = world.search(&jwt, json!({"query": query, "locale": "fr"}));
    assert_eq!(french.status, 200, "{}", french.text);
    let sent = world.upstream_requests();
    let input = sent[0]["input"]
        .as_array()
        .expect("input items with the instruction");
    let instruction = input[0]["content"].as_str().unwrap();
    assert_eq!(input[0]["role"], "developer");
    assert!(instruction.contains("French"), "{instruction}");
    assert_eq!(input[1], json!({"role": "user", "content": query}));

    // Another locale is another question; the same one is a cache hit.
    let spanish = world.search(&jwt, json!({"query": query, "locale": "es"}));
    assert_eq!(spanish.body["cached"], false, "{}", spanish.text);
    let french_again = world.search(&jwt, json!({"query": query, "locale": "FR"}));
    assert_eq!(french_again.body["cached"], true, "{}", french_again.text);
    assert_eq!(world.upstream_requests().len(), 2);
    assert_eq!(
        world.count("SELECT count(*) FROM search_cache WHERE locale IN ('fr', 'es')"),
        2
    );
}

#[test]
fn the_same_query_with_other_spacing_and_case_within_ten_minutes_is_served_from_the_cache() {
    let world = World::start();
    let first = world.search(
        &world.student(),
        json!({"query": "What is the tallest building in Lisbon?"}),
    );
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["cached"], false);

    // Another user, other spacing and case: the same question.
    let again = world.search(
        &world.student(),
        json!({"query": "  what IS the\ttallest   building in LISBON?  "}),
    );
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["cached"], true);
    assert_eq!(again.body["stale"], false);
    assert_eq!(again.body["answer"], first.body["answer"]);
    assert_eq!(again.body["citations"], first.body["citations"]);
    assert!(again.body["took_ms"].is_u64());
    assert_eq!(
        world.upstream_requests().len(),
        1,
        "no upstream call for the repeat"
    );
    assert_eq!(world.cache_rows(), 1);
}

#[test]
fn an_answer_older_than_ten_minutes_is_asked_for_again_and_replaced() {
    let world = World::start();
    let jwt = world.student();
    let query = "Opening hours of the Louvre";
    assert_eq!(world.search(&jwt, json!({"query": query})).status, 200);
    world.age_cached_answer("opening hours of the louvre", "11 minutes");

    let response = world.search(&jwt, json!({"query": query}));
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.body["cached"], false);
    assert_eq!(world.upstream_requests().len(), 2);
    assert_eq!(
        world.count(
            "SELECT count(*) FROM search_cache WHERE created_at > now() - interval '1 minute'"
        ),
        1,
        "the row is renewed, not duplicated"
    );
    assert_eq!(world.cache_rows(), 1);
}

// ---------------------------------------------------------------------------------------
// Upstream failures

#[test]
fn upstream_500_or_429_with_a_two_hour_old_answer_serves_it_stale() {
    let world = World::start();
    let jwt = world.student();
    for (mode, query) in [
        (Mode::ServerError, "Ferry times to Cacilhas"),
        (Mode::RateLimited, "Ferry times to Barreiro"),
    ] {
        world.openai.set_mode(Endpoint::Responses, Mode::Normal);
        let first = world.search(&jwt, json!({"query": query}));
        assert_eq!(first.status, 200, "{}", first.text);
        world.age_cached_answer(&query.to_lowercase(), "2 hours");
        world.openai.set_mode(Endpoint::Responses, mode);

        let response = world.search(&jwt, json!({"query": query}));
        assert_eq!(response.status, 200, "{mode}: {}", response.text);
        assert_eq!(response.body["cached"], true);
        assert_eq!(response.body["stale"], true);
        assert_eq!(response.body["answer"], first.body["answer"]);
        assert_eq!(response.body["citations"], first.body["citations"]);
        assert!(response.body["took_ms"].is_u64());
        assert!(response.header("retry-after").is_none());
    }
    assert_eq!(
        world.upstream_requests().len(),
        4,
        "the upstream was tried before the stale answer"
    );
    assert_eq!(
        world.count(
            "SELECT count(*) FROM search_cache WHERE created_at < now() - interval '1 hour'"
        ),
        2,
        "a stale answer is served as it was, not renewed"
    );
    let events: Vec<String> = world
        .app
        .logs()
        .into_iter()
        .filter(|line| line.contains("served_stale_answer"))
        .collect();
    assert_eq!(
        events.len(),
        2,
        "each stale answer is logged with its cause"
    );
}

#[test]
fn upstream_500_without_a_cached_answer_is_502() {
    let world = World::start();
    world
        .openai
        .set_mode(Endpoint::Responses, Mode::ServerError);
    let response = world.search(&world.student(), json!({"query": "Weather in Porto"}));
    assert_error(&response, 502, "upstream_error");
    assert!(
        !response.text.contains("server_error"),
        "no upstream body: {}",
        response.text
    );
    assert_eq!(world.upstream_requests().len(), 1);
    assert_eq!(world.cache_rows(), 0);
}

#[test]
fn upstream_500_with_only_an_answer_older_than_a_day_is_502() {
    let world = World::start();
    let jwt = world.student();
    assert_eq!(
        world
            .search(&jwt, json!({"query": "Weather in Faro"}))
            .status,
        200
    );
    world.age_cached_answer("weather in faro", "25 hours");
    world
        .openai
        .set_mode(Endpoint::Responses, Mode::ServerError);
    let response = world.search(&jwt, json!({"query": "Weather in Faro"}));
    assert_error(&response, 502, "upstream_error");
}

#[test]
fn upstream_429_without_a_cached_answer_is_503_with_retry_after() {
    let world = World::start();
    world
        .openai
        .set_mode(Endpoint::Responses, Mode::RateLimited);
    let response = world.search(&world.student(), json!({"query": "Weather in Braga"}));
    assert_error(&response, 503, "service_unavailable");
    assert_eq!(
        response.header("retry-after"),
        Some(RETRY_AFTER_SECONDS.to_string().as_str())
    );
    assert_eq!(world.cache_rows(), 0);
}

#[test]
fn a_silent_upstream_with_a_cached_answer_serves_it_stale_after_the_deadline() {
    let world = World::start();
    let jwt = world.student();
    let first = world.search(&jwt, json!({"query": "Weather in Coimbra"}));
    assert_eq!(first.status, 200, "{}", first.text);
    world.age_cached_answer("weather in coimbra", "30 minutes");
    world.openai.set_mode(Endpoint::Responses, Mode::Silent);

    let response = world.search(&jwt, json!({"query": "Weather in Coimbra"}));
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.body["stale"], true);
    assert_eq!(response.body["answer"], first.body["answer"]);
    let took_ms = response.body["took_ms"].as_u64().unwrap();
    assert!(
        took_ms >= 15_000,
        "served after the 15 s deadline, took {took_ms} ms"
    );
}

#[test]
fn a_silent_upstream_without_a_cached_answer_is_504() {
    let world = World::start();
    world.openai.set_mode(Endpoint::Responses, Mode::Silent);
    let response = world.search(&world.student(), json!({"query": "Weather in Evora"}));
    assert_error(&response, 504, "upstream_timeout");
    assert_eq!(world.cache_rows(), 0);
}

#[test]
fn a_refusal_or_a_response_without_a_message_is_502_and_caches_nothing() {
    let world = World::start();
    let jwt = world.student();
    for (mode, code) in [
        (Mode::Refusal, "search_refused"),
        (Mode::NoMessage, "no_search_answer"),
    ] {
        world.openai.set_mode(Endpoint::Responses, mode);
        let response = world.search(&jwt, json!({"query": "How to pick a lock"}));
        assert_error(&response, 502, code);
        assert!(response.body.get("answer").is_none(), "{}", response.text);
    }
    assert_eq!(world.upstream_requests().len(), 2);
    assert_eq!(world.cache_rows(), 0);
    let details: Vec<String> = world
        .app
        .logs()
        .into_iter()
        .filter(|line| line.contains("\"status\":502"))
        .collect();
    assert_eq!(details.len(), 2);
    assert!(details[0].contains("refusal"), "{}", details[0]);
    assert!(details[1].contains("no message item"), "{}", details[1]);
}

#[test]
fn no_api_key_is_503_in_demo_mode_without_an_upstream_call() {
    let world = World::start_with(&[("openai_api_key", "")]);
    let response = world.search(&world.student(), json!({"query": "Weather in Sintra"}));
    assert_error(&response, 503, "service_unavailable");
    assert_eq!(response.body["mode"], "demo");
    assert!(world.openai.requests().is_empty());
    assert_eq!(world.cache_rows(), 0);
    assert_eq!(
        world.count("SELECT count(*) FROM rate_limits"),
        0,
        "a request refused for the configuration is not counted"
    );
}

// ---------------------------------------------------------------------------------------
// The cache's upkeep

#[test]
fn expired_answers_are_deleted_when_a_new_answer_is_stored() {
    let world = World::start();
    world.insert_cached_answer("v1:expired", "From two days ago.", "49 hours");
    world.insert_cached_answer("v1:stale-but-kept", "From yesterday.", "23 hours");

    let response = world.search(
        &world.student(),
        json!({"query": "Train strikes this week"}),
    );
    assert_eq!(response.status, 200, "{}", response.text);
    let keys: Vec<String> = world
        .db
        .client()
        .query(
            "SELECT cache_key FROM search_cache ORDER BY created_at",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0], "v1:stale-but-kept");
    assert!(
        keys[1].starts_with("v1:") && keys[1].len() == 67,
        "{keys:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Bad input, auth, routes, rate limits, logs

#[test]
fn bad_query_locale_or_max_citations_is_400_naming_the_field_and_changes_nothing() {
    let world = World::start();
    let jwt = world.student();
    let long = "a".repeat(501);
    let cases = [
        (json!({"query": ""}), "query"),
        (json!({"query": "   \n "}), "query"),
        (json!({"query": long}), "query"),
        (json!({"locale": "en"}), "query"),
        (json!({"query": 7}), "query"),
        (json!({"query": "q", "locale": "tlh"}), "locale"),
        (json!({"query": "q", "locale": "fr-CA"}), "locale"),
        (json!({"query": "q", "max_citations": 0}), "max_citations"),
        (json!({"query": "q", "max_citations": 11}), "max_citations"),
        (json!({"query": "q", "max_citations": "5"}), "max_citations"),
    ];
    for (body, field) in cases {
        let response = world.search(&jwt, body.clone());
        assert_error(&response, 400, "invalid_request");
        assert_eq!(response.body["field"], field, "{body}: {}", response.text);
        assert!(
            response.body["message"].as_str().unwrap().contains(field),
            "{body}: {}",
            response.text
        );
    }
    let malformed = world.post(Some(&jwt), "{\"query\": ");
    assert_error(&malformed, 400, "invalid_request");

    assert!(world.openai.requests().is_empty());
    assert_eq!(world.cache_rows(), 0);
    assert_eq!(
        world.count("SELECT count(*) FROM rate_limits"),
        0,
        "refused requests are not counted"
    );

    // The limits themselves are accepted: 500 characters, 1 and 10 citations.
    let at_limit = world.search(
        &jwt,
        json!({"query": format!(" {} ", "b".repeat(500)), "max_citations": 10}),
    );
    assert_eq!(at_limit.status, 200, "{}", at_limit.text);
    let one = world.search(
        &jwt,
        json!({"query": "q", "max_citations": 1, "locale": "pt-BR"}),
    );
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body["citations"].as_array().unwrap().len(), 1);
}

#[test]
fn no_jwt_is_401_with_cors_headers_and_a_bad_one_too() {
    let world = World::start();
    let missing = world.post(None, &json!({"query": "q"}).to_string());
    assert_eq!(missing.status, 401, "{}", missing.text);
    assert_eq!(
        missing.body,
        json!({"code": 401, "message": "Missing authorization header", "error": "missing_authorization"})
    );
    assert_eq!(missing.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        missing.header("access-control-allow-headers"),
        Some("authorization, x-client-info, apikey, content-type")
    );
    assert!(missing.header("x-request-id").is_some());

    let forged = hs256(
        &json!({"sub": Uuid::new_v4().to_string(), "role": "authenticated", "exp": now_unix() + 60}),
        "not-the-project-secret-0123456789abcdef",
    );
    let invalid = world.search(&forged, json!({"query": "q"}));
    assert_eq!(invalid.status, 401);
    assert_eq!(
        invalid.body,
        json!({"code": 401, "message": "Invalid JWT", "error": "invalid_jwt"})
    );
    assert_eq!(invalid.header("access-control-allow-origin"), Some("*"));

    // The anon key is not a signed-in user.
    let anon = world.search(&anon_jwt(), json!({"query": "q"}));
    assert_error(&anon, 403, "forbidden");

    assert!(world.openai.requests().is_empty());
    assert_eq!(world.count("SELECT count(*) FROM rate_limits"), 0);
}

#[test]
fn preflight_needs_no_token_and_other_routes_and_methods_are_refused() {
    let world = World::start();
    let preflight = send(
        "OPTIONS",
        &world.app.url(ROUTE),
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "POST"),
        ],
        b"",
    );
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.text, "ok");
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));

    let bearer = format!("Bearer {}", world.student());
    let get = send(
        "GET",
        &world.app.url(ROUTE),
        &[("authorization", &bearer)],
        b"",
    );
    assert_error(&get, 405, "method_not_allowed");
    assert_eq!(get.header("allow"), Some("POST, OPTIONS"));
    let unknown = send(
        "POST",
        &world.app.url(&format!("{ROUTE}/nope")),
        &[("authorization", &bearer)],
        b"{}",
    );
    assert_error(&unknown, 404, "not_found");
}

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
fn searches_share_the_rate_limit_with_token_minting() {
    let world = World::start_with(&[("rate_limit_per_minute", "3")]);
    let student = world.user();
    let jwt = user_jwt(student);
    start_of_a_window(&world, 20.0);

    let minted = send(
        "POST",
        &world.app.url("/functions/v1/realtime-student-guide-token"),
        &[
            ("authorization", &format!("Bearer {jwt}")),
            ("content-type", "application/json"),
        ],
        json!({"persona": "demo-guide"}).to_string().as_bytes(),
    );
    assert_eq!(minted.status, 200, "{}", minted.text);
    for query in ["Museums open on Monday", "Museums open on Monday"] {
        let response = world.search(&jwt, json!({"query": query}));
        assert_eq!(response.status, 200, "{}", response.text);
    }
    let refused = world.search(&jwt, json!({"query": "Museums open on Tuesday"}));
    assert_error(&refused, 429, "rate_limited");
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(
        world.count(&format!(
            "SELECT count::int8 FROM rate_limits WHERE bucket_key = 'mint:user:{student}'"
        )),
        3,
        "one bucket for minting and searching; the refused search is not counted"
    );
    assert_eq!(
        world.upstream_requests().len(),
        1,
        "the refused search never reached OpenAI"
    );

    // Someone else is unaffected.
    let other = world.search(
        &world.student(),
        json!({"query": "Museums open on Tuesday"}),
    );
    assert_eq!(other.status, 200, "{}", other.text);
}

#[test]
fn the_query_text_appears_in_no_log_line() {
    let world = World::start();
    let jwt = world.student();
    let marker = "Zebracorn Quixotic Migration";
    let query = format!("Where does the {marker} start");

    // Answered, served fresh, served stale, refused upstream, refused as too long.
    assert_eq!(world.search(&jwt, json!({"query": query})).status, 200);
    assert_eq!(
        world
            .search(&jwt, json!({"query": query.to_uppercase()}))
            .status,
        200
    );
    world.age_cached_answer(&query.to_lowercase(), "3 hours");
    world
        .openai
        .set_mode(Endpoint::Responses, Mode::ServerError);
    assert_eq!(
        world.search(&jwt, json!({"query": query})).body["stale"],
        true
    );
    let other = format!("When does the {marker} end");
    assert_eq!(world.search(&jwt, json!({"query": other})).status, 502);
    world.openai.set_mode(Endpoint::Responses, Mode::Refusal);
    assert_eq!(world.search(&jwt, json!({"query": other})).status, 502);
    let long = format!("{marker} {}", "x".repeat(500));
    assert_eq!(world.search(&jwt, json!({"query": long})).status, 400);

    let logs = world.app.logs();
    assert!(logs.len() >= 6, "every request is logged: {logs:?}");
    for line in &logs {
        let lower = line.to_lowercase();
        for word in ["zebracorn", "quixotic"] {
            assert!(!lower.contains(word), "the query is in a log line: {line}");
        }
        assert!(
            !line.contains(API_KEY),
            "the API key is in a log line: {line}"
        );
    }
}
