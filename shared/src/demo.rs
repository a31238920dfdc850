//! The `realtime-voice-demo-relay` function: the isolated demo system of the isolation
//! spec, rebuilt for Spin (contract section 4).
//!
//! Spin serves no inbound WebSockets, so the relay is OpenAI's WebRTC SDP relay: the
//! browser posts its offer to `/sessions/{id}/sdp`, this function adds the session
//! configuration built from the demo activity ([`session_config`]) and the server's key,
//! forwards both to `/v1/realtime/calls` ([`openai`]), and returns OpenAI's answer; the
//! media then flows between the browser and OpenAI directly. The client logs what
//! happened as interactions and ends the session with its telemetry.
//!
//! Isolation: the function connects with `demo_db_url` only, as the `demo_relay` role,
//! whose grants cover the `demo_*` tables and `EXECUTE` on one counting function
//! (`demo_rate_limit_hit`, which counts under a `demo:` prefix only, in the demo's own
//! table `rate_limits_demo`, and only keys of the relay's shapes) and nothing else;
//! its repositories ([`activities`], [`sessions`], [`interactions`]) name no other
//! table.
//!
//! Every route that writes rows or calls OpenAI counts against a per-caller limit
//! (`rate_limit_per_minute`): session creation, interaction batches, SDP relaying and
//! token minting. An anonymous sign-in owns its sessions as the user it is, but counts
//! as an anonymous caller: by client address, and inside `anon_rate_limit_per_minute`
//! over all anonymous callers ([`ratelimit::RateCaller`]). The count comes last, after the body, the caller and the session
//! were checked, and where the write after it can still be refused it shares the
//! write's transaction, so a refused request leaves no count behind. Dropping the three demo tables removes the demo system and leaves every
//! other function working.
//!
//! Routes below `/functions/v1/realtime-voice-demo-relay`:
//!
//! | route | who |
//! |---|---|
//! | `GET /activities[?type=…]`, `GET /activities/{id}` | any valid JWT, `anon` included |
//! | `POST /sessions` | `authenticated` (anonymous sign-ins included) |
//! | `POST /sessions/{id}/sdp`, `/token`, `/interactions`, `/end` | the session's owner |
//!
//! Unit tests: `cargo test --profile host -p voice-edge-shared demo::`; the component
//! tests are `tests/integration/tests/realtime_voice_demo_relay.rs`.

pub mod activities;
pub mod interactions;
pub mod model;
pub mod openai;
pub mod requests;
pub mod session_config;
pub mod sessions;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::{self, AuthConfig, Claims, Role};
use crate::config::{self, OpenAiConfig, Variables};
use crate::db::{Db, DbAddress, DbError};
use crate::error::ApiError;
use crate::http::{Incoming, JSON_LIMIT, Reply, SDP_LIMIT};
use crate::log::Level;
use crate::ratelimit::{self, CallerLimits, Counter, Limit, RateCaller};

use model::{DemoSession, SessionStatus, utc_rfc3339};
use requests::{CreateSessionRequest, EndSessionRequest};
use session_config::{RealtimeSettings, build_session_config};

/// The function's name, in its log lines.
pub const FUNCTION: &str = "realtime-voice-demo-relay";

/// Bounds of `token_ttl_seconds` (OpenAI accepts 10 s to 2 h).
const TOKEN_TTL_RANGE: (i64, i64) = (10, 7200);

/// What the demo relay reads from its Spin variables.
#[derive(Clone)]
pub struct DemoConfig {
    /// `demo_db_url`: the `demo_relay` role's connection string; never `db_url`.
    demo_db_url: DbAddress,
    /// How callers' JWTs are verified.
    pub auth: AuthConfig,
    /// The key (optional: without it the relay answers `503` in demo mode) and base URL.
    pub openai: OpenAiConfig,
    /// `openai_realtime_model`.
    pub realtime_model: String,
    /// `realtime_voice`.
    pub voice: String,
    /// `token_ttl_seconds`, 10–7200.
    pub token_ttl_seconds: i64,
    /// `rate_limit_per_minute` per caller (for every counted action),
    /// `anon_rate_limit_per_minute` over anonymous callers, and `trusted_proxies`.
    pub limits: CallerLimits,
}

impl std::fmt::Debug for DemoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoConfig")
            .field("demo_db_url", &"[redacted]")
            .field("openai", &self.openai)
            .field("realtime_model", &self.realtime_model)
            .field("voice", &self.voice)
            .field("token_ttl_seconds", &self.token_ttl_seconds)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl DemoConfig {
    /// Reads the variables; a missing secret is an error naming it.
    pub fn load(vars: &impl Variables) -> Result<Self, ApiError> {
        Ok(Self {
            demo_db_url: DbAddress::load(vars, config::DEMO_DB_URL)?,
            auth: AuthConfig::load(vars)?,
            openai: OpenAiConfig::load(vars)?,
            realtime_model: config::optional(
                vars,
                config::OPENAI_REALTIME_MODEL,
                config::DEFAULT_OPENAI_REALTIME_MODEL,
            )?,
            voice: config::optional(vars, config::REALTIME_VOICE, config::DEFAULT_REALTIME_VOICE)?,
            token_ttl_seconds: config::ranged(
                vars,
                config::TOKEN_TTL_SECONDS,
                config::DEFAULT_TOKEN_TTL_SECONDS,
                TOKEN_TTL_RANGE.0,
                TOKEN_TTL_RANGE.1,
            )?,
            limits: CallerLimits::load(vars)?,
        })
    }

    fn settings(&self) -> RealtimeSettings<'_> {
        RealtimeSettings {
            model: &self.realtime_model,
            voice: &self.voice,
        }
    }
}

/// What a session route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAction {
    /// `POST /sessions/{id}/sdp`: relay an SDP offer to OpenAI.
    Sdp,
    /// `POST /sessions/{id}/token`: mint an ephemeral client secret.
    Token,
    /// `POST /sessions/{id}/interactions`: log a batch of interactions.
    Interactions,
    /// `POST /sessions/{id}/end`: end the session with its telemetry.
    End,
}

/// The function's routes, from the path below its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /activities[?type=…]`.
    ListActivities,
    /// `GET /activities/{id}`, with the id as written in the path.
    GetActivity(&'a str),
    /// `POST /sessions`.
    CreateSession,
    /// `POST /sessions/{id}/{action}`, with the id as written in the path.
    Session(&'a str, SessionAction),
}

impl<'a> Route<'a> {
    /// The route of `segments`, or `404`.
    pub fn parse(segments: &[&'a str]) -> Result<Self, ApiError> {
        let route = match segments {
            ["activities"] => Route::ListActivities,
            ["activities", id] => Route::GetActivity(id),
            ["sessions"] => Route::CreateSession,
            ["sessions", id, action] => {
                let action = match *action {
                    "sdp" => SessionAction::Sdp,
                    "token" => SessionAction::Token,
                    "interactions" => SessionAction::Interactions,
                    "end" => SessionAction::End,
                    _ => return Err(ApiError::not_found("No such route")),
                };
                Route::Session(id, action)
            }
            _ => return Err(ApiError::not_found("No such route")),
        };
        Ok(route)
    }

    /// The one method each route serves.
    pub fn method(&self) -> &'static str {
        match self {
            Route::ListActivities | Route::GetActivity(_) => "GET",
            Route::CreateSession | Route::Session(..) => "POST",
        }
    }
}

/// Handles a request to the demo relay; `now_unix` is the clock JWTs are checked against.
pub async fn handle(
    incoming: &Incoming,
    vars: &impl Variables,
    now_unix: i64,
) -> Result<Reply, ApiError> {
    let segments = incoming.segments();
    let route = Route::parse(&segments)?;
    incoming.allow(&[route.method()])?;
    let config = DemoConfig::load(vars)?;
    let claims = auth::authenticate(incoming, &config.auth, now_unix)?;

    match route {
        Route::ListActivities => list_activities(incoming, &config).await,
        Route::GetActivity(id) => get_activity(&config, id).await,
        Route::CreateSession => create_session(incoming, &config, &claims).await,
        Route::Session(id, action) => {
            let student_id = require_student(&claims)?;
            let session_id = requests::parse_path_id(id, "session_id")?;
            let rate = config.limits.caller(incoming, &claims);
            match action {
                SessionAction::Sdp => {
                    relay_sdp(incoming, &config, student_id, rate, session_id).await
                }
                SessionAction::Token => {
                    mint_token(incoming, &config, student_id, rate, session_id).await
                }
                SessionAction::Interactions => {
                    post_interactions(incoming, &config, student_id, rate, session_id).await
                }
                SessionAction::End => end_session(incoming, &config, student_id, session_id).await,
            }
        }
    }
}

/// The caller's limits for `action` (`demo:<action>:user:<id>` once counted; for an
/// anonymous sign-in `demo:<action>:ip:<address>` and the ceiling `demo:<action>:anon`:
/// [`RateCaller`]).
fn caller_limits(config: &DemoConfig, action: &str, rate: RateCaller) -> Vec<Limit> {
    rate.limits(
        action,
        config.limits.per_minute,
        config.limits.anon_per_minute,
    )
}

/// Counts one request of the caller for `action`, against each of its limits or none;
/// `429` over any.
async fn count(db: &Db, incoming: &Incoming, limits: &[Limit]) -> Result<(), ApiError> {
    ratelimit::within_limits(
        db,
        incoming,
        Counter::DemoFunction,
        limits,
        async |_| Ok(()),
    )
    .await
}

async fn connect(config: &DemoConfig) -> Result<Db, ApiError> {
    Ok(Db::connect(&config.demo_db_url).await?)
}

/// The caller as a student: role `authenticated` (anonymous sign-ins have it too) with
/// a user id.
fn require_student(claims: &Claims) -> Result<Uuid, ApiError> {
    auth::require_role(claims, &[Role::Authenticated])?;
    claims.user_id().ok_or_else(|| ApiError::InvalidJwt {
        reason: "an authenticated token without a UUID `sub`".into(),
    })
}

async fn list_activities(incoming: &Incoming, config: &DemoConfig) -> Result<Reply, ApiError> {
    let demo_type = requests::parse_type_filter(incoming.query_param("type").as_deref())?;
    let db = connect(config).await?;
    let activities = activities::list_published(&db, demo_type).await?;
    Ok(Reply::json(200, &json!({ "activities": activities })))
}

async fn get_activity(config: &DemoConfig, id: &str) -> Result<Reply, ApiError> {
    let id = requests::parse_path_id(id, "activity_id")?;
    let db = connect(config).await?;
    let activity = activities::find_published(&db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Demo activity not found"))?;
    Ok(Reply::json(200, &activity))
}

async fn create_session(
    incoming: &Incoming,
    config: &DemoConfig,
    claims: &Claims,
) -> Result<Reply, ApiError> {
    let student_id = require_student(claims)?;
    let request: CreateSessionRequest = incoming.json()?;
    let db = connect(config).await?;
    let activity = activities::find_published(&db, request.demo_activity_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Demo activity not found"))?;
    let session_config = build_session_config(&activity, config.settings()).to_value();
    let limits = caller_limits(config, "sessions", config.limits.caller(incoming, claims));
    let session =
        ratelimit::within_limits(&db, incoming, Counter::DemoFunction, &limits, async |tx| {
            sessions::insert(tx, activity.id, student_id, &session_config)
                .await
                .map_err(|error| insert_failure(error, &activity.id))
        })
        .await?;
    Ok(Reply::json(
        201,
        &json!({
            "session_id": session.id,
            "status": session.status,
            "started_at": utc_rfc3339(session.started_at),
            "activity": activity,
            "session_config": session.session_config,
        }),
    ))
}

/// A foreign-key refusal on insert: the activity vanished meanwhile (`404`), or the
/// token's user is not a user of this project (`403`).
fn insert_failure(error: DbError, activity_id: &Uuid) -> ApiError {
    match &error {
        DbError::Sql { code, message } if code == "23503" => {
            if message.contains("student_id") {
                ApiError::forbidden("The signed-in user is not known to this project")
            } else {
                ApiError::not_found(format!("Demo activity {activity_id} not found"))
            }
        }
        _ => error.into(),
    }
}

/// The caller's active session, or `404` / `403` (someone else's) / `409` (ended).
async fn owned_active_session(
    db: &Db,
    student_id: Uuid,
    session_id: Uuid,
) -> Result<DemoSession, ApiError> {
    let session = sessions::find(db, session_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Demo session not found"))?;
    if session.student_id != student_id {
        return Err(ApiError::forbidden(
            "This demo session belongs to another user",
        ));
    }
    if session.status == SessionStatus::Ended {
        return Err(session_ended());
    }
    Ok(session)
}

/// Why a change conditional on "the caller's active session" changed nothing: `404`,
/// `403` or `409`, told apart only on this unhappy path.
async fn refusal(db: &Db, student_id: Uuid, session_id: Uuid) -> ApiError {
    match owned_active_session(db, student_id, session_id).await {
        Err(error) => error,
        // Active and the caller's now, so it was not a moment ago: an end in between.
        Ok(_) => session_ended(),
    }
}

fn session_ended() -> ApiError {
    ApiError::Conflict {
        error: "session_ended",
        message: "This demo session has ended".into(),
    }
}

async fn relay_sdp(
    incoming: &Incoming,
    config: &DemoConfig,
    student_id: Uuid,
    rate: RateCaller,
    session_id: Uuid,
) -> Result<Reply, ApiError> {
    if incoming.content_type().as_deref() != Some("application/sdp") {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/sdp",
        });
    }
    let offer = requests::check_sdp_offer(incoming.body(SDP_LIMIT)?)?;
    let db = connect(config).await?;
    let session = owned_active_session(&db, student_id, session_id).await?;
    openai::require_api_key(&config.openai)?;
    count(&db, incoming, &caller_limits(config, "sdp", rate)).await?;

    let answer = openai::relay_offer(&config.openai, offer, &session.session_config).await?;
    if answer.call_id.is_none() {
        incoming.log(
            Level::Warn,
            "call_without_location",
            "OpenAI created a call without a usable Location header",
        );
    }
    if !sessions::set_call_id(&db, session_id, student_id, answer.call_id.as_deref()).await? {
        return Err(session_ended());
    }
    let mut reply = Reply::with_type(201, "application/sdp", answer.sdp);
    if let Some(call_id) = answer.call_id {
        reply = reply.header("x-openai-call-id", call_id);
    }
    Ok(reply.header("cache-control", "no-store"))
}

async fn mint_token(
    incoming: &Incoming,
    config: &DemoConfig,
    student_id: Uuid,
    rate: RateCaller,
    session_id: Uuid,
) -> Result<Reply, ApiError> {
    let db = connect(config).await?;
    let session = owned_active_session(&db, student_id, session_id).await?;
    openai::require_api_key(&config.openai)?;
    count(&db, incoming, &caller_limits(config, "mint", rate)).await?;

    let secret = openai::mint_client_secret(
        &config.openai,
        &session.session_config,
        config.token_ttl_seconds,
    )
    .await?;
    let model = session
        .session_config
        .get("model")
        .cloned()
        .unwrap_or(Value::Null);
    let voice = session
        .session_config
        .pointer("/audio/output/voice")
        .cloned()
        .unwrap_or(Value::Null);
    let reply = Reply::json(
        200,
        &json!({
            "success": true,
            "token": secret.value,
            "expiresAt": secret.expires_at,
            "sessionId": session.id,
            "mode": "realtime",
            "implementation": "webrtc",
            "model": model,
            "voice": voice,
        }),
    );
    Ok(reply.header("cache-control", "no-store"))
}

async fn post_interactions(
    incoming: &Incoming,
    config: &DemoConfig,
    student_id: Uuid,
    rate: RateCaller,
    session_id: Uuid,
) -> Result<Reply, ApiError> {
    let items = requests::parse_interaction_batch(incoming.body(JSON_LIMIT)?)?;
    let db = connect(config).await?;
    let limits = caller_limits(config, "interactions", rate);
    let inserted =
        ratelimit::within_limits(&db, incoming, Counter::DemoFunction, &limits, async |tx| {
            match interactions::insert_batch(tx, session_id, student_id, &items).await? {
                0 => Err(refusal(tx, student_id, session_id).await),
                inserted => Ok(inserted),
            }
        })
        .await?;
    Ok(Reply::json(201, &json!({ "inserted": inserted })))
}

async fn end_session(
    incoming: &Incoming,
    config: &DemoConfig,
    student_id: Uuid,
    session_id: Uuid,
) -> Result<Reply, ApiError> {
    let request: EndSessionRequest = incoming.json_or_empty()?;
    let telemetry = Value::Object(request.telemetry.unwrap_or_default());
    let db = connect(config).await?;
    let session = match sessions::end(&db, session_id, student_id, &telemetry).await? {
        Some(session) => session,
        None => return Err(refusal(&db, student_id, session_id).await),
    };
    let ended_at = session.ended_at.unwrap_or(session.started_at);
    Ok(Reply::json(
        200,
        &json!({
            "session_id": session.id,
            "status": session.status,
            "started_at": utc_rfc3339(session.started_at),
            "ended_at": utc_rfc3339(ended_at),
            "duration_ms": (ended_at - session.started_at).num_milliseconds().max(0),
            "openai_call_id": session.openai_call_id,
            "telemetry": session.telemetry,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_parsed_from_the_path_segments() {
        assert_eq!(
            Route::parse(&["activities"]).unwrap(),
            Route::ListActivities
        );
        assert_eq!(
            Route::parse(&["activities", "a1"]).unwrap(),
            Route::GetActivity("a1")
        );
        assert_eq!(Route::parse(&["sessions"]).unwrap(), Route::CreateSession);
        assert_eq!(
            Route::parse(&["sessions", "s1", "sdp"]).unwrap(),
            Route::Session("s1", SessionAction::Sdp)
        );
        assert_eq!(
            Route::parse(&["sessions", "s1", "interactions"]).unwrap(),
            Route::Session("s1", SessionAction::Interactions)
        );
        assert_eq!(
            Route::parse(&["sessions", "s1", "end"]).unwrap().method(),
            "POST"
        );
        assert_eq!(Route::parse(&["activities"]).unwrap().method(), "GET");
    }

    #[test]
    fn unknown_routes_are_404() {
        for segments in [
            &[][..],
            &["sessions", "s1"][..],
            &["sessions", "s1", "pause"][..],
            &["activities", "a1", "extra"][..],
            &["demo"][..],
        ] {
            let error = Route::parse(segments).unwrap_err();
            assert_eq!(error.status(), 404, "{segments:?}");
        }
    }

    #[test]
    fn config_debug_redacts_the_database_url() {
        let vars: std::collections::HashMap<&'static str, String> = [
            (
                config::DEMO_DB_URL,
                "postgres://demo_relay:hunter2@127.0.0.1:5432/app".to_string(),
            ),
            (
                config::SUPABASE_JWT_SECRET,
                "a-test-secret-of-at-least-32-bytes!!".to_string(),
            ),
        ]
        .into_iter()
        .collect();
        let config = DemoConfig::load(&vars).unwrap();
        assert_eq!(config.voice, "ash");
        assert_eq!(config.limits.per_minute, 60);
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn config_names_a_missing_demo_db_url() {
        let vars: std::collections::HashMap<&'static str, String> =
            [(config::DB_URL, "postgres://app@127.0.0.1/app".to_string())]
                .into_iter()
                .collect();
        let error = DemoConfig::load(&vars).unwrap_err();
        assert_eq!(error.status(), 500);
        assert!(error.log_detail().unwrap().contains("demo_db_url"));
    }
}
