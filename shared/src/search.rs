//! `voice-agent-search`: the voice agent's `web_search` tool (CONTRACT.md section 6a).
//!
//! `POST /functions/v1/voice-agent-search` `{"query", "locale"?, "max_citations"?}`
//! from a signed-in user answers `{"answer", "citations": [{"url", "title"}], "cached",
//! "stale", "took_ms"}`. The request counts against the caller's token-minting rate
//! limit (the `mint:` keys of `realtime-student-guide-token`: an anonymous sign-in's
//! address and the anonymous ceiling `mint:anon`, as there), then [`resolve`] applies
//! the cache policy: an answer for the same normalised query and locale at most ten
//! minutes old is served without asking OpenAI; otherwise OpenAI's Responses API
//! searches the web, and its answer is stored; when OpenAI fails (429, 5xx, silence for
//! 15 s, a broken connection) an answer at most 24 hours old is served marked `stale`,
//! and without one the failure maps as section 3 says.
//!
//! The parts: [`request`] parsing, the cache [`key`], the [`openai`] call and its
//! answer, the [`cache`] repository. Queries are the user's words: they go to OpenAI
//! and into the cache, never into a log line or an error body. Unit tests: `cargo test
//! --profile host -p voice-edge-shared search`; the HTTP behaviour is tested in
//! `tests/integration/tests/voice_agent_search.rs`.

pub mod cache;
pub mod key;
pub mod openai;
pub mod request;

use std::time::Instant;

use serde::Serialize;

use crate::auth::{self, AuthConfig, Role};
use crate::config::{self, ConfigError, OpenAiConfig, Variables};
use crate::db::{Db, DbAddress};
use crate::error::ApiError;
use crate::http::{self, Incoming, Reply};
use crate::ratelimit::{self, CallerLimits};

use cache::{CachedAnswer, NewCachedAnswer};
use openai::{Citation, Found, SearchFailure};
use request::SearchRequest;

/// The function's name, for the log.
pub const FUNCTION: &str = "voice-agent-search";

/// Searches share the token function's rate limit: both are a user's calls on OpenAI.
const RATE_LIMIT_ACTION: &str = "mint";

/// Everything the function reads from its Spin variables.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    db_url: DbAddress,
    pub auth: AuthConfig,
    pub openai: OpenAiConfig,
    /// `openai_search_model`.
    pub model: String,
    /// `rate_limit_per_minute` per user; anonymous sign-ins per client address inside
    /// `anon_rate_limit_per_minute` (`trusted_proxies` names the proxies).
    pub limits: CallerLimits,
}

impl SearchConfig {
    /// Reads and checks the variables; errors name the variable, never its value.
    pub fn load(vars: &impl Variables) -> Result<Self, ConfigError> {
        Ok(Self {
            db_url: DbAddress::load(vars, config::DB_URL)?,
            auth: AuthConfig::load(vars)?,
            openai: OpenAiConfig::load(vars)?,
            model: config::optional(
                vars,
                config::OPENAI_SEARCH_MODEL,
                config::DEFAULT_OPENAI_SEARCH_MODEL,
            )?,
            limits: CallerLimits::load(vars)?,
        })
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// OpenAI answered just now.
    Upstream,
    /// The cache, within the fresh window.
    Fresh,
    /// The cache, beyond the fresh window, because OpenAI failed.
    Stale,
}

/// An answer and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub answer: String,
    /// Every distinct citation, before the caller's `max_citations` cut.
    pub citations: Vec<Citation>,
    pub origin: Origin,
    /// Why OpenAI was not used, for the log, when a stale answer stands in for it.
    pub upstream_failure: Option<String>,
}

impl Resolved {
    fn from_cache(cached: CachedAnswer, origin: Origin, upstream_failure: Option<String>) -> Self {
        Self {
            answer: cached.answer,
            citations: cached.citations,
            origin,
            upstream_failure,
        }
    }
}

/// Where [`resolve`] gets answers from: the cache and OpenAI (a fake in unit tests).
// Futures here never cross threads (a component has one), so no `Send` bound is wanted.
#[allow(async_fn_in_trait)]
pub trait AnswerSources {
    /// A cached answer for `cache_key` at most `max_age_seconds` old.
    async fn cached(
        &mut self,
        cache_key: &str,
        max_age_seconds: i64,
    ) -> Result<Option<CachedAnswer>, ApiError>;
    /// OpenAI's answer to the request.
    async fn ask_upstream(&mut self, request: &SearchRequest) -> Result<Found, SearchFailure>;
    /// Keeps a new answer; a failure here must not cost the caller the answer.
    async fn remember(
        &mut self,
        cache_key: &str,
        normalized_query: &str,
        request: &SearchRequest,
        found: &Found,
    );
}

/// The cache policy of section 6a: fresh cache, else OpenAI (remembering its answer),
/// else, for failures of the service only, an answer up to a day old.
pub async fn resolve(
    sources: &mut impl AnswerSources,
    request: &SearchRequest,
) -> Result<Resolved, ApiError> {
    let normalized = key::normalize_query(&request.query);
    let cache_key = key::cache_key(&normalized, request.locale.map(|language| language.tag));

    if let Some(cached) = sources.cached(&cache_key, cache::FRESH_SECONDS).await? {
        return Ok(Resolved::from_cache(cached, Origin::Fresh, None));
    }
    match sources.ask_upstream(request).await {
        Ok(found) => {
            sources
                .remember(&cache_key, &normalized, request, &found)
                .await;
            Ok(Resolved {
                answer: found.answer,
                citations: found.citations,
                origin: Origin::Upstream,
                upstream_failure: None,
            })
        }
        Err(failure) if failure.allows_stale() => {
            match sources.cached(&cache_key, cache::STALE_SECONDS).await? {
                Some(cached) => Ok(Resolved::from_cache(
                    cached,
                    Origin::Stale,
                    Some(failure.describe()),
                )),
                None => Err(failure.into_error()),
            }
        }
        Err(failure) => Err(failure.into_error()),
    }
}

/// The `200` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchAnswer {
    pub answer: String,
    /// De-duplicated by URL, in order of first appearance, at most `max_citations`.
    pub citations: Vec<Citation>,
    /// Served from the cache.
    pub cached: bool,
    /// Served from the cache beyond its fresh window, because OpenAI failed.
    pub stale: bool,
    /// Time spent on the request, in milliseconds.
    pub took_ms: u64,
}

impl SearchAnswer {
    /// The body for `resolved`, with its citations cut to `max_citations`.
    pub fn new(resolved: Resolved, max_citations: usize, took_ms: u64) -> Self {
        let mut citations = resolved.citations;
        citations.truncate(max_citations);
        Self {
            answer: resolved.answer,
            citations,
            cached: resolved.origin != Origin::Upstream,
            stale: resolved.origin == Origin::Stale,
            took_ms,
        }
    }
}

/// Serves every route of the function.
pub async fn handle(
    incoming: &Incoming,
    vars: &impl Variables,
    now_unix: i64,
) -> Result<Reply, ApiError> {
    let started = Instant::now();
    match incoming.segments().as_slice() {
        [] => {
            incoming.allow(&["POST"])?;
            search(incoming, &SearchConfig::load(vars)?, now_unix, started).await
        }
        _ => Err(ApiError::not_found("No such route")),
    }
}

/// `POST /`: a web search for a signed-in user.
async fn search(
    incoming: &Incoming,
    config: &SearchConfig,
    now_unix: i64,
    started: Instant,
) -> Result<Reply, ApiError> {
    let claims = auth::authenticate(incoming, &config.auth, now_unix)?;
    auth::require_role(&claims, &[Role::Authenticated])?;
    let request = SearchRequest::parse(incoming.body(http::JSON_LIMIT)?)?;

    let db = Db::connect(&config.db_url).await?;
    // Without an API key nothing can be spent or written (only a fresh cached answer
    // can be served, or the 503 of demo mode), so nothing is counted either.
    if config.openai.api_key.is_some() {
        let limits = config
            .limits
            .for_request(incoming, &claims, RATE_LIMIT_ACTION);
        ratelimit::within_limits(
            &db,
            incoming,
            ratelimit::Counter::Table,
            &limits,
            async |_| Ok(()),
        )
        .await?;
    }

    let mut sources = LiveSources {
        db: &db,
        config,
        request_id: incoming.request_id(),
    };
    let resolved = resolve(&mut sources, &request).await?;
    if let Some(failure) = &resolved.upstream_failure {
        log_event(incoming.request_id(), "served_stale_answer", failure);
    }
    let took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let answer = SearchAnswer::new(resolved, request.max_citations, took_ms);
    Ok(Reply::json(200, &answer).header("cache-control", "no-store"))
}

/// The cache in Postgres and OpenAI's Responses API.
struct LiveSources<'a> {
    db: &'a Db,
    config: &'a SearchConfig,
    request_id: &'a str,
}

impl AnswerSources for LiveSources<'_> {
    async fn cached(
        &mut self,
        cache_key: &str,
        max_age_seconds: i64,
    ) -> Result<Option<CachedAnswer>, ApiError> {
        cache::find_younger_than(self.db, cache_key, max_age_seconds).await
    }

    async fn ask_upstream(&mut self, request: &SearchRequest) -> Result<Found, SearchFailure> {
        let api_key = self
            .config
            .openai
            .api_key
            .as_deref()
            .ok_or(SearchFailure::NotConfigured)?;
        openai::search(
            &self.config.openai.base_url,
            api_key,
            &self.config.model,
            &request.query,
            request.locale,
        )
        .await
    }

    async fn remember(
        &mut self,
        cache_key: &str,
        normalized_query: &str,
        request: &SearchRequest,
        found: &Found,
    ) {
        let entry = NewCachedAnswer {
            cache_key,
            normalized_query,
            locale: request.locale.map(|language| language.tag),
            answer: &found.answer,
            citations: &found.citations,
        };
        let stored = match cache::store(self.db, &entry).await {
            Ok(()) => cache::delete_expired(self.db).await,
            Err(error) => Err(error),
        };
        if let Err(error) = stored {
            log_event(
                self.request_id,
                "cache_write_failed",
                error.log_detail().unwrap_or(error.code()),
            );
        }
    }
}

/// A JSON line beside the request's log line, for what the status does not tell.
fn log_event(request_id: &str, event: &str, detail: &str) {
    crate::log::event(
        crate::log::Level::Warn,
        FUNCTION,
        Some(request_id),
        event,
        detail,
    );
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::NaiveDateTime;
    use serde_json::json;

    use super::*;

    fn request(body: &str) -> SearchRequest {
        SearchRequest::parse(body.as_bytes()).unwrap()
    }

    fn cached(answer: &str, age_seconds: i64) -> CachedAnswer {
        CachedAnswer {
            answer: answer.into(),
            citations: vec![Citation {
                url: "https://cached.example".into(),
                title: "Cached".into(),
            }],
            created_at: NaiveDateTime::default(),
            age_seconds,
        }
    }

    /// A cache of one answer of a given age, and an upstream with a scripted outcome;
    /// records what was asked of them.
    struct Fake {
        stored: Option<CachedAnswer>,
        upstream: Result<Found, SearchFailure>,
        lookups: Vec<(String, i64)>,
        upstream_calls: usize,
        remembered: Vec<(String, String, Option<String>)>,
    }

    impl Fake {
        fn new(stored: Option<CachedAnswer>, upstream: Result<Found, SearchFailure>) -> Self {
            Self {
                stored,
                upstream,
                lookups: Vec::new(),
                upstream_calls: 0,
                remembered: Vec::new(),
            }
        }
    }

    impl AnswerSources for Fake {
        async fn cached(
            &mut self,
            cache_key: &str,
            max_age_seconds: i64,
        ) -> Result<Option<CachedAnswer>, ApiError> {
            self.lookups.push((cache_key.to_string(), max_age_seconds));
            Ok(self
                .stored
                .clone()
                .filter(|answer| answer.age_seconds <= max_age_seconds))
        }

        async fn ask_upstream(&mut self, _request: &SearchRequest) -> Result<Found, SearchFailure> {
            self.upstream_calls += 1;
            self.upstream.clone()
        }

        async fn remember(
            &mut self,
            cache_key: &str,
            normalized_query: &str,
            request: &SearchRequest,
            _found: &Found,
        ) {
            self.remembered.push((
                cache_key.to_string(),
                normalized_query.to_string(),
                request.locale.map(|language| language.tag.to_string()),
            ));
        }
    }

    fn found() -> Found {
        Found {
            answer: "Fresh from the web.".into(),
            citations: (1..=4)
                .map(|n| Citation {
                    url: format!("https://{n}.example"),
                    title: format!("Source {n}"),
                })
                .collect(),
        }
    }

    #[test]
    fn a_fresh_cached_answer_is_served_without_asking_upstream() {
        let mut fake = Fake::new(Some(cached("From the cache.", 599)), Ok(found()));
        let resolved = crate::block_on(resolve(&mut fake, &request(r#"{"query": "Q"}"#))).unwrap();
        assert_eq!(resolved.origin, Origin::Fresh);
        assert_eq!(resolved.answer, "From the cache.");
        assert_eq!(fake.upstream_calls, 0);
        assert_eq!(fake.lookups[0].1, 600);
    }

    #[test]
    fn without_a_fresh_answer_upstream_answers_and_is_remembered_under_the_normalised_key() {
        let mut fake = Fake::new(Some(cached("Old.", 601)), Ok(found()));
        let resolved = crate::block_on(resolve(
            &mut fake,
            &request(r#"{"query": "  Tides  IN Lisbon ", "locale": "PT-br"}"#),
        ))
        .unwrap();
        assert_eq!(resolved.origin, Origin::Upstream);
        assert_eq!(resolved.answer, "Fresh from the web.");
        assert_eq!(fake.upstream_calls, 1);
        let expected_key = key::cache_key("tides in lisbon", Some("pt-BR"));
        assert_eq!(
            fake.remembered,
            vec![(
                expected_key.clone(),
                "tides in lisbon".to_string(),
                Some("pt-BR".to_string())
            )]
        );
        assert_eq!(fake.lookups, vec![(expected_key, 600)]);
    }

    #[test]
    fn a_service_failure_is_covered_by_an_answer_up_to_a_day_old() {
        for failure in [
            SearchFailure::ServerError {
                status: 500,
                error_type: "server_error".into(),
            },
            SearchFailure::RateLimited {
                retry_after: 2,
                error_type: "requests".into(),
            },
            SearchFailure::Timeout,
            SearchFailure::Unreachable("connection refused".into()),
        ] {
            let mut fake = Fake::new(Some(cached("Two hours old.", 7200)), Err(failure.clone()));
            let resolved =
                crate::block_on(resolve(&mut fake, &request(r#"{"query": "Q"}"#))).unwrap();
            assert_eq!(resolved.origin, Origin::Stale, "{failure:?}");
            assert_eq!(resolved.answer, "Two hours old.");
            assert_eq!(resolved.upstream_failure, Some(failure.describe()));
            assert_eq!(
                fake.lookups.iter().map(|(_, age)| *age).collect::<Vec<_>>(),
                vec![600, 86_400]
            );
            assert!(fake.remembered.is_empty());
        }
    }

    #[test]
    fn a_service_failure_without_a_day_old_answer_maps_as_section_3() {
        let cases = [
            (
                SearchFailure::ServerError {
                    status: 500,
                    error_type: "x".into(),
                },
                502,
            ),
            (
                SearchFailure::RateLimited {
                    retry_after: 2,
                    error_type: "x".into(),
                },
                503,
            ),
            (SearchFailure::Timeout, 504),
        ];
        for (failure, status) in cases {
            let mut fake = Fake::new(Some(cached("Too old.", 86_401)), Err(failure));
            let error =
                crate::block_on(resolve(&mut fake, &request(r#"{"query": "Q"}"#))).unwrap_err();
            assert_eq!(error.status(), status);
        }
    }

    #[test]
    fn a_refusal_or_missing_answer_is_502_even_with_a_stale_answer_at_hand() {
        for (failure, code) in [
            (SearchFailure::Refusal, "search_refused"),
            (
                SearchFailure::NoAnswer("no message".into()),
                "no_search_answer",
            ),
        ] {
            let mut fake = Fake::new(Some(cached("Two hours old.", 7200)), Err(failure));
            let error =
                crate::block_on(resolve(&mut fake, &request(r#"{"query": "Q"}"#))).unwrap_err();
            assert_eq!(error.status(), 502);
            assert_eq!(error.code(), code);
            assert_eq!(fake.lookups.len(), 1, "only the fresh lookup");
        }
    }

    #[test]
    fn no_api_key_is_demo_mode_but_a_fresh_answer_is_still_served() {
        let mut fake = Fake::new(None, Err(SearchFailure::NotConfigured));
        let error = crate::block_on(resolve(&mut fake, &request(r#"{"query": "Q"}"#))).unwrap_err();
        assert_eq!(error.status(), 503);
        assert_eq!(error.body()["mode"], "demo");
        let mut fake = Fake::new(
            Some(cached("Cached.", 10)),
            Err(SearchFailure::NotConfigured),
        );
        assert_eq!(
            crate::block_on(resolve(&mut fake, &request(r#"{"query": "Q"}"#)))
                .unwrap()
                .origin,
            Origin::Fresh
        );
    }

    #[test]
    fn the_answer_body_is_the_contracts_with_citations_cut() {
        let resolved = Resolved {
            answer: "A.".into(),
            citations: found().citations,
            origin: Origin::Upstream,
            upstream_failure: None,
        };
        let body = serde_json::to_value(SearchAnswer::new(resolved.clone(), 2, 37)).unwrap();
        assert_eq!(
            body,
            json!({
                "answer": "A.",
                "citations": [
                    {"url": "https://1.example", "title": "Source 1"},
                    {"url": "https://2.example", "title": "Source 2"},
                ],
                "cached": false,
                "stale": false,
                "took_ms": 37,
            })
        );
        let stale = SearchAnswer::new(
            Resolved {
                origin: Origin::Stale,
                ..resolved.clone()
            },
            10,
            1,
        );
        assert!(stale.cached && stale.stale);
        assert_eq!(stale.citations.len(), 4);
        let fresh = SearchAnswer::new(
            Resolved {
                origin: Origin::Fresh,
                ..resolved
            },
            5,
            1,
        );
        assert!(fresh.cached && !fresh.stale);
    }

    #[test]
    fn config_reads_the_search_model_with_its_default() {
        let mut vars: HashMap<&'static str, String> = [
            (
                config::DB_URL,
                "postgres://u:p@127.0.0.1:5432/db".to_string(),
            ),
            (
                config::SUPABASE_JWT_SECRET,
                "a-secret-of-enough-length-for-hs256".to_string(),
            ),
        ]
        .into_iter()
        .collect();
        let loaded = SearchConfig::load(&vars).unwrap();
        assert_eq!(loaded.model, "gpt-4.1-mini");
        assert_eq!(loaded.limits.per_minute, 60);
        assert!(loaded.openai.api_key.is_none());
        vars.insert(config::OPENAI_SEARCH_MODEL, "gpt-4.1".into());
        assert_eq!(SearchConfig::load(&vars).unwrap().model, "gpt-4.1");
        vars.insert(config::RATE_LIMIT_PER_MINUTE, "0".into());
        assert!(
            SearchConfig::load(&vars)
                .unwrap_err()
                .to_string()
                .contains("rate_limit_per_minute")
        );
        vars.remove(config::DB_URL);
        assert!(
            SearchConfig::load(&vars)
                .unwrap_err()
                .to_string()
                .contains("db_url")
        );
    }
}
