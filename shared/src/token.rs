//! `realtime-student-guide-token`: OpenAI Realtime ephemeral tokens per persona, behind
//! the `voice_webrtc_migration` rollout (CONTRACT.md section 3).
//!
//! - `POST /` `{"persona", "language"?, "activity_id"?}`: a token, or the fallback answer
//!   for a student outside the rollout;
//! - `POST /refresh` `{"sessionId"}`: a new token for the same session (owner only, at
//!   most five times, within an hour);
//! - `GET /flag`: the rollout flag as it applies to the caller.
//!
//! Minting and refreshing count against the caller's rate limit (per user; per client
//! address for anonymous callers — the anon key and anonymous sign-ins alike
//! ([`RateCaller`]): the IPv4 address or the IPv6 /64, behind `trusted_proxies` the
//! forwarded client), and an anonymous caller's mint also against
//! `anon_rate_limit_per_minute`, one ceiling over all anonymous callers
//! together, so address rotation cannot turn the public anon key into unlimited
//! OpenAI spend. A request is counted only once it is going to mint: a refusal (bad
//! body, wrong persona, no API key, a student outside the rollout) counts nothing. The submodules hold the parts: [`request`] parsing,
//! the [`openai`] call and its error mapping, the [`sessions`] repository and the
//! [`refresh`] rules.

pub mod openai;
pub mod refresh;
pub mod request;
pub mod sessions;

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::auth::{self, AuthConfig, Claims, Role};
use crate::bucket::bucket_for_user;
use crate::client_addr::{self, TrustedProxies};
use crate::config::{self, ConfigError, OpenAiConfig, Variables};
use crate::db::{Db, DbAddress};
use crate::error::ApiError;
use crate::flags::{self, FeatureFlag};
use crate::http::{Incoming, Reply};
use crate::languages;
use crate::personas::Persona;
use crate::ratelimit::{self, Counter, RateCaller};

use openai::SessionSettings;
use request::{MintRequest, RefreshRequest};
use sessions::{NewTokenSession, TokenSession};

/// The function's name, for the log.
pub const FUNCTION: &str = "realtime-student-guide-token";

/// The rate-limit action of minting (and refreshing) a token.
const RATE_LIMIT_ACTION: &str = "mint";

/// Everything the function reads from its Spin variables.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    db_url: DbAddress,
    pub auth: AuthConfig,
    pub openai: OpenAiConfig,
    pub model: String,
    pub voice: String,
    pub ttl_seconds: i64,
    pub rate_limit_per_minute: i64,
    /// `anon_rate_limit_per_minute`: all anonymous mints together.
    pub anon_rate_limit_per_minute: i64,
    /// `trusted_proxies`: whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
}

impl TokenConfig {
    /// Reads and checks the variables; errors name the variable, never its value.
    pub fn load(vars: &impl Variables) -> Result<Self, ConfigError> {
        Ok(Self {
            db_url: DbAddress::load(vars, config::DB_URL)?,
            auth: AuthConfig::load(vars)?,
            openai: OpenAiConfig::load(vars)?,
            model: config::optional(
                vars,
                config::OPENAI_REALTIME_MODEL,
                config::DEFAULT_OPENAI_REALTIME_MODEL,
            )?,
            voice: config::optional(vars, config::REALTIME_VOICE, config::DEFAULT_REALTIME_VOICE)?,
            ttl_seconds: config::ranged(
                vars,
                config::TOKEN_TTL_SECONDS,
                config::DEFAULT_TOKEN_TTL_SECONDS,
                10,
                7200,
            )?,
            rate_limit_per_minute: config::ranged(
                vars,
                config::RATE_LIMIT_PER_MINUTE,
                config::DEFAULT_RATE_LIMIT_PER_MINUTE,
                1,
                1_000_000,
            )?,
            anon_rate_limit_per_minute: config::ranged(
                vars,
                config::ANON_RATE_LIMIT_PER_MINUTE,
                config::DEFAULT_ANON_RATE_LIMIT_PER_MINUTE,
                1,
                10_000_000,
            )?,
            trusted_proxies: TrustedProxies::load(vars)?,
        })
    }
}

/// The key of the ceiling over all anonymous mints ([`ratelimit::anon_ceiling_key`]).
pub const ANON_CEILING_KEY: &str = "mint:anon";

/// Who is asking, as far as this function cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `sub`, when it is a UUID.
    pub user_id: Option<Uuid>,
    /// `sub` as the token has it: what the frontend's bucketing hashes.
    pub sub: Option<String>,
    pub role: Role,
    /// `user:<uuid>`, or `ip:<addr>` for callers without a user: who owns a session.
    pub client_key: String,
    /// Who the caller counts as for the rate limits: an anonymous sign-in owns its
    /// sessions as a user, but counts as an anonymous caller.
    pub rate: RateCaller,
}

impl Caller {
    /// The caller of a verified token, from its client address.
    pub fn new(claims: &Claims, client: Option<IpAddr>) -> Self {
        let user_id = claims.user_id();
        let client_key = match (user_id, client) {
            (Some(user_id), _) => format!("user:{user_id}"),
            (None, Some(address)) => client_addr::rate_key(address),
            (None, None) => "ip:unknown".to_string(),
        };
        Self {
            user_id,
            sub: claims.sub.clone().filter(|sub| !sub.is_empty()),
            role: claims.role(),
            client_key,
            rate: RateCaller::of(claims, client),
        }
    }

    /// The caller's rollout bucket, when they have an identity to hash.
    pub fn bucket(&self) -> Option<u8> {
        self.sub.as_deref().map(bucket_for_user)
    }

    /// `403` unless the caller may use `persona`: `demo-guide` is open to the anon key;
    /// `student-tutor` needs a signed-in user.
    pub fn may_use(&self, persona: Persona) -> Result<(), ApiError> {
        match persona {
            Persona::DemoGuide => Ok(()),
            Persona::StudentTutor if self.role == Role::Authenticated && self.user_id.is_some() => {
                Ok(())
            }
            Persona::StudentTutor => Err(ApiError::forbidden(
                "The student-tutor persona needs a signed-in user (role authenticated)",
            )),
        }
    }
}

/// Whether the caller gets the WebRTC implementation for a persona.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enrollment {
    pub enrolled: bool,
    pub bucket: Option<u8>,
}

impl Enrollment {
    /// `student-tutor` follows the flag; `demo-guide` is never behind it.
    pub fn decide(persona: Persona, flag: Option<&FeatureFlag>, bucket: Option<u8>) -> Self {
        let enrolled = if persona.behind_rollout() {
            matches!((flag, bucket), (Some(flag), Some(bucket)) if flag.enrolls(bucket))
        } else {
            true
        };
        Self { enrolled, bucket }
    }

    /// `webrtc` when enrolled, else the legacy `websocket`.
    pub fn implementation(self) -> &'static str {
        if self.enrolled { "webrtc" } else { "websocket" }
    }
}

/// The answer for a caller outside the rollout: no token, use the WebSocket relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FallbackAnswer {
    pub success: bool,
    pub mode: &'static str,
    pub implementation: &'static str,
    pub enrolled: bool,
    pub bucket: Option<u8>,
}

impl FallbackAnswer {
    fn new(enrollment: Enrollment) -> Self {
        Self {
            success: true,
            mode: "fallback",
            implementation: enrollment.implementation(),
            enrolled: false,
            bucket: enrollment.bucket,
        }
    }
}

/// The answer carrying a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenAnswer {
    pub success: bool,
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub session_id: Uuid,
    pub mode: &'static str,
    pub implementation: &'static str,
    pub model: String,
    pub voice: String,
    pub persona: Persona,
    pub language: String,
    pub enrolled: bool,
    pub bucket: Option<u8>,
    /// Refreshes this session has had.
    pub refresh_count: i32,
    /// Refreshes it may still have.
    pub refreshes_left: i32,
}

impl TokenAnswer {
    fn new(secret: openai::ClientSecret, session: &TokenSession, enrollment: Enrollment) -> Self {
        Self {
            success: true,
            token: secret.value,
            expires_at: secret.expires_at,
            session_id: session.id,
            mode: "realtime",
            implementation: enrollment.implementation(),
            model: session.model.clone(),
            voice: session.voice.clone(),
            persona: session.persona,
            language: session.language.clone(),
            enrolled: enrollment.enrolled,
            bucket: enrollment.bucket,
            refresh_count: session.refresh_count,
            refreshes_left: (refresh::MAX_REFRESHES - session.refresh_count).max(0),
        }
    }
}

/// `GET /flag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlagAnswer {
    pub flag: String,
    pub enabled: bool,
    pub rollout_percentage: i32,
    pub bucket: Option<u8>,
    pub enrolled: bool,
    pub implementation: &'static str,
}

/// Serves every route of the function.
pub async fn handle(
    incoming: &Incoming,
    vars: &impl Variables,
    now_unix: i64,
) -> Result<Reply, ApiError> {
    match incoming.segments().as_slice() {
        [] => {
            incoming.allow(&["POST"])?;
            mint(incoming, &TokenConfig::load(vars)?, now_unix).await
        }
        ["refresh"] => {
            incoming.allow(&["POST"])?;
            refresh_session(incoming, &TokenConfig::load(vars)?, now_unix).await
        }
        ["flag"] => {
            incoming.allow(&["GET"])?;
            flag_for_caller(incoming, &TokenConfig::load(vars)?, now_unix).await
        }
        _ => Err(ApiError::not_found("No such route")),
    }
}

fn authenticated_caller(
    incoming: &Incoming,
    config: &TokenConfig,
    now_unix: i64,
) -> Result<Caller, ApiError> {
    let claims = auth::authenticate(incoming, &config.auth, now_unix)?;
    Ok(Caller::new(
        &claims,
        incoming.client_addr(&config.trusted_proxies),
    ))
}

fn no_store(reply: Reply) -> Reply {
    reply.header("cache-control", "no-store")
}

/// `503` with `"mode": "demo"`: no API key is configured, so the app can only be demoed.
fn demo_mode() -> ApiError {
    let mut extra = Map::new();
    extra.insert("success".into(), Value::Bool(false));
    crate::openai::demo_mode(
        "Voice is not configured on this server (no OpenAI API key); running in demo mode",
        extra,
        "openai_api_key is not set",
    )
}

fn session_settings(
    persona: Persona,
    language_tag: &str,
    model: &str,
    voice: &str,
    ttl_seconds: i64,
) -> SessionSettings {
    let language_name =
        languages::lookup(language_tag).map_or(language_tag, |language| language.name);
    SessionSettings {
        model: model.to_string(),
        voice: voice.to_string(),
        instructions: persona.instructions(language_tag, language_name),
        ttl_seconds,
    }
}

/// The rollout as it applies to `caller` for `persona`; reads the flag only when the
/// persona is behind it.
async fn enrollment_for(
    db: &Db,
    persona: Persona,
    caller: &Caller,
) -> Result<Enrollment, ApiError> {
    let flag = if persona.behind_rollout() {
        Some(flags::get(db, flags::VOICE_WEBRTC_MIGRATION).await?)
    } else {
        None
    };
    Ok(Enrollment::decide(persona, flag.as_ref(), caller.bucket()))
}

/// Counts a mint against the caller's limit and, for an anonymous caller (the anon
/// key, or an anonymous sign-in: [`RateCaller`]), against the ceiling over all
/// anonymous callers; both or neither.
async fn enforce_rate_limit(
    db: &Db,
    incoming: &Incoming,
    caller: &Caller,
    config: &TokenConfig,
) -> Result<(), ApiError> {
    let limits = caller.rate.limits(
        RATE_LIMIT_ACTION,
        config.rate_limit_per_minute,
        config.anon_rate_limit_per_minute,
    );
    ratelimit::within_limits(db, incoming, Counter::Table, &limits, async |_| Ok(())).await
}

fn api_key(config: &TokenConfig) -> Result<&str, ApiError> {
    config.openai.api_key.as_deref().ok_or_else(demo_mode)
}

/// `POST /`: a token for a persona.
async fn mint(incoming: &Incoming, config: &TokenConfig, now_unix: i64) -> Result<Reply, ApiError> {
    let caller = authenticated_caller(incoming, config, now_unix)?;
    let request = MintRequest::parse(incoming.body(crate::http::JSON_LIMIT)?)?;
    caller.may_use(request.persona)?;

    let db = Db::connect(&config.db_url).await?;
    let enrollment = enrollment_for(&db, request.persona, &caller).await?;
    if !enrollment.enrolled {
        return Ok(no_store(Reply::json(200, &FallbackAnswer::new(enrollment))));
    }
    let api_key = api_key(config)?;
    enforce_rate_limit(&db, incoming, &caller, config).await?;

    let settings = session_settings(
        request.persona,
        request.language.tag,
        &config.model,
        &config.voice,
        config.ttl_seconds,
    );
    let secret = openai::mint_client_secret(&config.openai.base_url, api_key, &settings).await?;
    let session = sessions::insert(
        &db,
        &NewTokenSession {
            user_id: caller.user_id,
            client_key: &caller.client_key,
            persona: request.persona,
            language: request.language.tag,
            model: &config.model,
            voice: &config.voice,
            activity_id: request.activity_id,
        },
    )
    .await?;
    Ok(no_store(Reply::json(
        200,
        &TokenAnswer::new(secret, &session, enrollment),
    )))
}

/// `POST /refresh`: a new token for a session the caller owns.
async fn refresh_session(
    incoming: &Incoming,
    config: &TokenConfig,
    now_unix: i64,
) -> Result<Reply, ApiError> {
    let caller = authenticated_caller(incoming, config, now_unix)?;
    let request = RefreshRequest::parse(incoming.body(crate::http::JSON_LIMIT)?)?;

    let db = Db::connect(&config.db_url).await?;
    let session = sessions::find(&db, request.session_id)
        .await?
        .ok_or_else(|| ApiError::not_found("No token session with this id"))?;
    let now = chrono::DateTime::from_timestamp(now_unix, 0)
        .ok_or_else(|| ApiError::internal("clock out of range"))?
        .naive_utc();
    refresh::check_refresh(&session, &caller, now)?;
    // A rollback takes effect at the next refresh, not only at the next session.
    let enrollment = enrollment_for(&db, session.persona, &caller).await?;
    if !enrollment.enrolled {
        return Ok(no_store(Reply::json(200, &FallbackAnswer::new(enrollment))));
    }
    let api_key = api_key(config)?;
    enforce_rate_limit(&db, incoming, &caller, config).await?;

    let settings = session_settings(
        session.persona,
        &session.language,
        &session.model,
        &session.voice,
        config.ttl_seconds,
    );
    let secret = openai::mint_client_secret(&config.openai.base_url, api_key, &settings).await?;
    // The count and age are checked again in the UPDATE, so that two concurrent
    // refreshes cannot both take the last one; the loser's token is never handed out.
    let counted = sessions::record_refresh(
        &db,
        session.id,
        refresh::MAX_REFRESHES,
        refresh::SESSION_LIFETIME_MINUTES,
    )
    .await?;
    let session = match counted {
        Some(session) => session,
        None => {
            let now = sessions::find(&db, session.id).await?;
            return Err(match now {
                Some(now) if now.refresh_count >= refresh::MAX_REFRESHES => refresh::exhausted(),
                _ => refresh::expired(),
            });
        }
    };
    Ok(no_store(Reply::json(
        200,
        &TokenAnswer::new(secret, &session, enrollment),
    )))
}

/// `GET /flag`: the rollout flag for the caller.
async fn flag_for_caller(
    incoming: &Incoming,
    config: &TokenConfig,
    now_unix: i64,
) -> Result<Reply, ApiError> {
    let caller = authenticated_caller(incoming, config, now_unix)?;
    let db = Db::connect(&config.db_url).await?;
    let flag = flags::get(&db, flags::VOICE_WEBRTC_MIGRATION).await?;
    let enrollment = Enrollment::decide(Persona::StudentTutor, Some(&flag), caller.bucket());
    let answer = FlagAnswer {
        flag: flag.flag_name,
        enabled: flag.enabled,
        rollout_percentage: flag.rollout_percentage,
        bucket: enrollment.bucket,
        enrolled: enrollment.enrolled,
        implementation: enrollment.implementation(),
    };
    Ok(no_store(Reply::json(200, &answer)))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::NaiveDateTime;
    use serde_json::json;

    use super::*;

    fn claims(value: Value) -> Claims {
        serde_json::from_value(value).unwrap()
    }

    fn flag(enabled: bool, rollout_percentage: i32) -> FeatureFlag {
        FeatureFlag {
            flag_name: flags::VOICE_WEBRTC_MIGRATION.into(),
            enabled,
            rollout_percentage,
            updated_at: NaiveDateTime::default(),
            updated_by: None,
        }
    }

    const USER: &str = "6f1c1a52-5d0b-4b7e-9a51-3f8f7f0f2a10";

    #[test]
    fn a_user_is_keyed_by_id_and_an_anon_caller_by_address() {
        let user = Caller::new(
            &claims(json!({"sub": USER, "role": "authenticated", "exp": 1})),
            Some("10.1.1.1".parse().unwrap()),
        );
        assert_eq!(user.client_key, format!("user:{USER}"));
        assert_eq!(user.bucket(), Some(bucket_for_user(USER)));
        let anon = Caller::new(
            &claims(json!({"role": "anon", "exp": 1})),
            Some("10.1.1.1".parse().unwrap()),
        );
        assert_eq!(anon.client_key, "ip:10.1.1.1");
        assert_eq!(anon.user_id, None);
        assert_eq!(anon.bucket(), None);
    }

    #[test]
    fn demo_guide_is_open_to_anon_and_student_tutor_needs_a_signed_in_user() {
        let anon = Caller::new(&claims(json!({"role": "anon", "exp": 1})), None);
        assert!(anon.may_use(Persona::DemoGuide).is_ok());
        assert_eq!(
            anon.may_use(Persona::StudentTutor).unwrap_err().status(),
            403
        );
        let user = Caller::new(
            &claims(json!({"sub": USER, "role": "authenticated", "exp": 1})),
            None,
        );
        assert!(user.may_use(Persona::StudentTutor).is_ok());
        let service = Caller::new(&claims(json!({"role": "service_role", "exp": 1})), None);
        assert_eq!(
            service.may_use(Persona::StudentTutor).unwrap_err().status(),
            403
        );
    }

    #[test]
    fn the_student_tutor_follows_the_flag_and_the_demo_guide_does_not() {
        let off = flag(false, 100);
        let half = flag(true, 50);
        assert!(!Enrollment::decide(Persona::StudentTutor, Some(&off), Some(0)).enrolled);
        assert!(Enrollment::decide(Persona::StudentTutor, Some(&half), Some(49)).enrolled);
        assert!(!Enrollment::decide(Persona::StudentTutor, Some(&half), Some(50)).enrolled);
        assert!(!Enrollment::decide(Persona::StudentTutor, Some(&half), None).enrolled);
        assert!(Enrollment::decide(Persona::DemoGuide, None, None).enrolled);
        assert_eq!(
            Enrollment::decide(Persona::DemoGuide, None, Some(7)).implementation(),
            "webrtc"
        );
    }

    #[test]
    fn the_fallback_answer_is_the_contracts() {
        let enrollment = Enrollment::decide(Persona::StudentTutor, Some(&flag(true, 10)), Some(42));
        let body = serde_json::to_value(FallbackAnswer::new(enrollment)).unwrap();
        assert_eq!(
            body,
            json!({"success": true, "mode": "fallback", "implementation": "websocket", "enrolled": false, "bucket": 42})
        );
    }

    #[test]
    fn the_token_answer_has_the_contracts_names() {
        let session = TokenSession {
            id: Uuid::from_u128(7),
            user_id: None,
            client_key: "ip:1.2.3.4".into(),
            persona: Persona::DemoGuide,
            language: "fr".into(),
            model: "gpt-realtime".into(),
            voice: "ash".into(),
            activity_id: None,
            refresh_count: 2,
            created_at: NaiveDateTime::default(),
            last_refreshed_at: None,
        };
        let secret = openai::ClientSecret {
            value: "ek_abc".into(),
            expires_at: 1_760_000_060,
        };
        let enrollment = Enrollment::decide(Persona::DemoGuide, None, None);
        let body = serde_json::to_value(TokenAnswer::new(secret, &session, enrollment)).unwrap();
        assert_eq!(body["success"], true);
        assert_eq!(body["token"], "ek_abc");
        assert_eq!(body["expiresAt"], 1_760_000_060);
        assert_eq!(body["sessionId"], Uuid::from_u128(7).to_string());
        assert_eq!(body["mode"], "realtime");
        assert_eq!(body["implementation"], "webrtc");
        assert_eq!(body["persona"], "demo-guide");
        assert_eq!(body["model"], "gpt-realtime");
        assert_eq!(body["voice"], "ash");
        assert_eq!(body["enrolled"], true);
        assert_eq!(body["bucket"], Value::Null);
        assert_eq!(body["refreshesLeft"], 3);
    }

    #[test]
    fn no_api_key_is_503_in_demo_mode() {
        let error = demo_mode();
        assert_eq!(error.status(), 503);
        let body = error.body();
        assert_eq!(body["error"], "service_unavailable");
        assert_eq!(body["mode"], "demo");
    }

    #[test]
    fn settings_carry_the_personas_instructions_in_the_language() {
        let settings = session_settings(Persona::StudentTutor, "de", "gpt-realtime", "ash", 60);
        assert_eq!(
            settings.instructions,
            Persona::StudentTutor.instructions("de", "German")
        );
        assert_eq!(settings.voice, "ash");
        assert_eq!(settings.ttl_seconds, 60);
    }

    #[test]
    fn config_names_a_bad_ttl() {
        let vars: HashMap<&'static str, String> = [
            (
                config::DB_URL,
                "postgres://u:p@127.0.0.1:5432/db".to_string(),
            ),
            (
                config::SUPABASE_JWT_SECRET,
                "a-secret-of-enough-length-for-hs256".to_string(),
            ),
            (config::TOKEN_TTL_SECONDS, "9000".to_string()),
        ]
        .into_iter()
        .collect();
        let error = TokenConfig::load(&vars).unwrap_err();
        assert!(error.to_string().contains("token_ttl_seconds"));
    }
}
