//! The `voice-monitoring` function: the migration guide's monitoring page as an API.
//!
//! - `POST /metrics` and `POST /errors` (any signed-in user, for themselves): one
//!   session's metrics (one row per user and session id), one client error; validated
//!   and bounded in [`ingest`], counted against the user's `rate_limit_per_minute`,
//!   stored by [`session_metrics`] and [`session_errors`].
//! - `GET /summary?hours=24` (teachers, admins, `service_role`): per implementation,
//!   the window's sessions, success rate, latency average / p95 / p99, error rate,
//!   underruns and reconnections per session (aggregated in SQL); the rollout flag; the
//!   red flags and the recommendation of [`rules`].
//! - `POST /rollout` (admins, `service_role`): the guarded change of [`rollout`], made
//!   with its [`rollout_audit`] row in one transaction.
//! - `POST /erase` (admins, `service_role`): one student's data erased everywhere the
//!   functions stored it ([`crate::erasure`]).
//!
//! Teacher and admin come from the JWT's `app_metadata.role`. Unit tests:
//! `cargo test --profile host -p voice-edge-shared monitoring`; the HTTP behaviour is
//! tested in `tests/integration/tests/voice_monitoring.rs`.

pub mod ingest;
pub mod rollout;
pub mod rollout_audit;
pub mod rules;
pub mod session_errors;
pub mod session_metrics;

use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::auth::{self, AuthConfig, Claims, Role};
use crate::config::{self, Variables};
use crate::db::{Db, DbAddress, DbError};
use crate::erasure;
use crate::error::ApiError;
use crate::flags;
use crate::http::{Incoming, Reply};
use crate::ratelimit::{self, CallerLimits, Counter};
use ingest::{ImplementationType, SessionErrorBody, SessionMetricsBody};
use rollout::{FlagState, RolloutBody, RolloutDirection};
use rules::{ImplementationReport, ImplementationStats, Recommendation, RedFlag};

/// The summary's window when `hours` is not given.
pub const DEFAULT_WINDOW_HOURS: i32 = 24;
/// The longest window a summary may cover (30 days).
pub const MAX_WINDOW_HOURS: i32 = 720;
/// The window whose red flags guard a raise: the guide's "monitor for 24–48 hours"
/// before each phase, at its shorter end, so a fresh problem is not averaged away.
pub const ROLLOUT_GUARD_WINDOW_HOURS: i32 = 24;

/// What `voice-monitoring` reads from its Spin variables.
#[derive(Debug, Clone)]
pub struct MonitoringConfig {
    db_url: DbAddress,
    pub auth: AuthConfig,
    /// `rate_limit_per_minute`: reports (metrics and errors, each) per user; anonymous
    /// sign-ins per client address, inside `anon_rate_limit_per_minute`.
    pub limits: CallerLimits,
}

impl MonitoringConfig {
    pub fn load(vars: &impl Variables) -> Result<Self, ApiError> {
        Ok(Self {
            db_url: DbAddress::load(vars, config::DB_URL)?,
            auth: AuthConfig::load(vars)?,
            limits: CallerLimits::load(vars)?,
        })
    }

    async fn connect(&self) -> Result<Db, ApiError> {
        Ok(Db::connect(&self.db_url).await?)
    }
}

/// The function's sub-routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Metrics,
    Errors,
    Summary,
    Rollout,
    Erase,
}

impl Route {
    /// The route for a request: `404` for an unknown path, `405` for a wrong method.
    fn of(incoming: &Incoming) -> Result<Self, ApiError> {
        let route = match incoming.segments().as_slice() {
            ["metrics"] => Route::Metrics,
            ["errors"] => Route::Errors,
            ["summary"] => Route::Summary,
            ["rollout"] => Route::Rollout,
            ["erase"] => Route::Erase,
            _ => return Err(ApiError::not_found("No such route")),
        };
        incoming.allow(if route == Route::Summary {
            &["GET"]
        } else {
            &["POST"]
        })?;
        Ok(route)
    }
}

/// Handles a request to `/functions/v1/voice-monitoring/...`; `now_unix` is the clock
/// the JWT's `exp` and `nbf` are checked against.
pub async fn handle(
    incoming: &Incoming,
    vars: &impl Variables,
    now_unix: i64,
) -> Result<Reply, ApiError> {
    let route = Route::of(incoming)?;
    let config = MonitoringConfig::load(vars)?;
    let claims = auth::authenticate(incoming, &config.auth, now_unix)?;
    match route {
        Route::Metrics => record_metrics(incoming, &config, &claims).await,
        Route::Errors => record_error(incoming, &config, &claims).await,
        Route::Summary => summary(incoming, &config, &claims).await,
        Route::Rollout => change_rollout(incoming, &config, &claims).await,
        Route::Erase => erase(incoming, &config, &claims).await,
    }
}

/// The user a report belongs to: a signed-in user's own id, never one from the body.
fn reporting_user(claims: &Claims) -> Result<Uuid, ApiError> {
    auth::require_role(claims, &[Role::Authenticated])?;
    claims
        .user_id()
        .ok_or_else(|| ApiError::forbidden("The token does not name a user"))
}

/// Teachers, admins (signed-in users with that `app_metadata.role`) and `service_role`
/// may read the summary.
fn may_read_summary(claims: &Claims) -> bool {
    match claims.role() {
        Role::ServiceRole => true,
        Role::Authenticated => claims.is_teacher_or_admin(),
        _ => false,
    }
}

/// Admins and `service_role` may change the rollout.
fn may_change_rollout(claims: &Claims) -> bool {
    match claims.role() {
        Role::ServiceRole => true,
        Role::Authenticated => claims.is_admin(),
        _ => false,
    }
}

async fn record_metrics(
    incoming: &Incoming,
    config: &MonitoringConfig,
    claims: &Claims,
) -> Result<Reply, ApiError> {
    let user_id = reporting_user(claims)?;
    let metrics = incoming.json::<SessionMetricsBody>()?.validate()?;
    let db = config.connect().await?;
    let stored = counted(&db, incoming, config, "metrics", claims, async |tx| {
        session_metrics::upsert(tx, user_id, claims.is_anonymous, &metrics).await
    })
    .await?;
    Ok(Reply::json(
        201,
        &json!({"id": stored.id, "created_at": utc(stored.created_at)}),
    ))
}

async fn record_error(
    incoming: &Incoming,
    config: &MonitoringConfig,
    claims: &Claims,
) -> Result<Reply, ApiError> {
    let user_id = reporting_user(claims)?;
    let error = incoming.json::<SessionErrorBody>()?.validate()?;
    let db = config.connect().await?;
    let stored = counted(&db, incoming, config, "errors", claims, async |tx| {
        session_errors::insert(tx, user_id, &error).await
    })
    .await?;
    Ok(Reply::json(
        201,
        &json!({"id": stored.id, "created_at": utc(stored.created_at)}),
    ))
}

/// Stores a report counted against the caller's limits for `action` (the user's; an
/// anonymous sign-in's address and the anonymous ceiling), in one transaction: a report
/// refused (over a limit, or by the database) leaves no count and no row.
async fn counted<T>(
    db: &Db,
    incoming: &Incoming,
    config: &MonitoringConfig,
    action: &str,
    claims: &Claims,
    store: impl AsyncFnOnce(&Db) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let limits = config.limits.for_request(incoming, claims, action);
    ratelimit::within_limits(db, incoming, Counter::Table, &limits, store).await
}

/// The `hours` query parameter: 1–720, 24 when absent.
pub fn window_hours(raw: Option<&str>) -> Result<i32, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_WINDOW_HOURS);
    };
    match raw.trim().parse::<i32>() {
        Ok(hours) if (1..=MAX_WINDOW_HOURS).contains(&hours) => Ok(hours),
        _ => Err(ApiError::bad_field(
            "hours",
            format!("hours must be a whole number from 1 to {MAX_WINDOW_HOURS}"),
        )),
    }
}

/// The window's statistics for both implementations (zeros where nothing was reported).
pub async fn window_stats(
    db: &Db,
    hours: i32,
) -> Result<(ImplementationStats, ImplementationStats), ApiError> {
    let mut webrtc = ImplementationStats::empty(ImplementationType::Webrtc);
    let mut websocket = ImplementationStats::empty(ImplementationType::Websocket);
    for stats in session_metrics::stats_in_window(db, hours).await? {
        match stats.implementation {
            ImplementationType::Webrtc => webrtc = stats,
            ImplementationType::Websocket => websocket = stats,
        }
    }
    Ok((webrtc, websocket))
}

/// The rollout flag as the summary shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FlagReport {
    pub name: &'static str,
    pub enabled: bool,
    pub rollout_percentage: i64,
    pub updated_at: Option<String>,
}

/// Both implementations, keyed by their `implementation_type`.
#[derive(Debug, Clone, Serialize)]
pub struct Implementations {
    pub webrtc: ImplementationReport,
    pub websocket: ImplementationReport,
}

/// The thresholds the red flags are judged by, for the dashboard to show beside them.
#[derive(Debug, Clone, Serialize)]
pub struct Thresholds {
    pub webrtc_min_success_rate_percent: i64,
    pub max_webrtc_latency_ratio: f64,
    pub max_error_rate_percent: i64,
    pub max_buffer_underruns_per_session: i64,
    pub max_reconnections_per_session: i64,
    pub min_sessions_per_implementation: i64,
}

impl Thresholds {
    /// The thresholds of [`rules`].
    pub const CURRENT: Thresholds = Thresholds {
        webrtc_min_success_rate_percent: rules::WEBRTC_MIN_SUCCESS_RATE_PERCENT,
        max_webrtc_latency_ratio: rules::MAX_WEBRTC_LATENCY_RATIO,
        max_error_rate_percent: rules::MAX_ERROR_RATE_PERCENT,
        max_buffer_underruns_per_session: rules::MAX_BUFFER_UNDERRUNS_PER_SESSION,
        max_reconnections_per_session: rules::MAX_RECONNECTIONS_PER_SESSION,
        min_sessions_per_implementation: rules::MIN_SESSIONS_PER_IMPLEMENTATION,
    };
}

/// The body of `GET /summary`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub window_hours: i32,
    pub generated_at: String,
    pub implementations: Implementations,
    pub flag: FlagReport,
    pub red_flags: Vec<RedFlag>,
    pub recommendation: Recommendation,
    pub thresholds: Thresholds,
}

async fn summary(
    incoming: &Incoming,
    config: &MonitoringConfig,
    claims: &Claims,
) -> Result<Reply, ApiError> {
    if !may_read_summary(claims) {
        return Err(ApiError::forbidden(
            "The monitoring summary is for teachers and admins",
        ));
    }
    let hours = window_hours(incoming.query_param("hours").as_deref())?;
    let db = config.connect().await?;
    let (webrtc, websocket) = window_stats(&db, hours).await?;
    let flag = flags::get(&db, flags::VOICE_WEBRTC_MIGRATION).await?;
    let red_flags = rules::red_flags(&webrtc, &websocket);
    let recommendation = rules::recommend(&red_flags, &webrtc, &websocket);
    let summary = Summary {
        window_hours: hours,
        generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        implementations: Implementations {
            webrtc: webrtc.report(),
            websocket: websocket.report(),
        },
        flag: FlagReport {
            name: flags::VOICE_WEBRTC_MIGRATION,
            enabled: flag.enabled,
            rollout_percentage: i64::from(flag.rollout_percentage),
            updated_at: Some(utc(flag.updated_at)),
        },
        red_flags,
        recommendation,
        thresholds: Thresholds::CURRENT,
    };
    Ok(Reply::json(200, &summary).header("cache-control", "no-store"))
}

async fn change_rollout(
    incoming: &Incoming,
    config: &MonitoringConfig,
    claims: &Claims,
) -> Result<Reply, ApiError> {
    if !may_change_rollout(claims) {
        return Err(ApiError::forbidden("Only admins may change the rollout"));
    }
    let request = incoming.json::<RolloutBody>()?.validate()?;
    let changed_by_role = if claims.role() == Role::ServiceRole {
        "service_role"
    } else {
        "admin"
    };
    let changed_by = claims.user_id();
    let db = config.connect().await?;
    db.transaction(async |tx| {
        rollout_audit::lock_rollout_changes(tx).await?;
        let current = flags::get(tx, flags::VOICE_WEBRTC_MIGRATION).await?;
        let from = FlagState {
            enabled: current.enabled,
            rollout_percentage: i64::from(current.rollout_percentage),
        };
        let red_flags =
            if RolloutDirection::between(from, request.target) == RolloutDirection::Raise {
                let (webrtc, websocket) = window_stats(tx, ROLLOUT_GUARD_WINDOW_HOURS).await?;
                rules::red_flags(&webrtc, &websocket)
            } else {
                Vec::new()
            };
        let decision = rollout::decide_rollout(from, &request, &red_flags)?;
        let updated = flags::set(
            tx,
            flags::VOICE_WEBRTC_MIGRATION,
            decision.to.enabled,
            decision.to.rollout_percentage as i32,
            changed_by,
        )
        .await?;
        let red_flags_json =
            serde_json::to_value(&red_flags).map_err(|e| ApiError::internal(e.to_string()))?;
        let audit = rollout_audit::insert(
            tx,
            &rollout_audit::AuditEntry {
                flag_name: flags::VOICE_WEBRTC_MIGRATION,
                actor_id: changed_by,
                actor_role: changed_by_role,
                from: decision.from,
                to: decision.to,
                reason: &request.reason,
                forced: decision.forced,
                red_flags: &red_flags_json,
            },
        )
        .await?;
        Ok(Reply::json(
            200,
            &json!({
                "flag": {
                    "name": flags::VOICE_WEBRTC_MIGRATION,
                    "enabled": updated.enabled,
                    "rollout_percentage": updated.rollout_percentage,
                    "updated_at": utc(updated.updated_at),
                },
                "previous": decision.from,
                "direction": decision.direction,
                "forced": decision.forced,
                "red_flags": red_flags,
                "audit_id": audit.id,
                "changed_at": utc(audit.created_at),
            }),
        ))
    })
    .await
}

/// `POST /erase`: the checks here, the work in [`crate::erasure`].
async fn erase(
    incoming: &Incoming,
    config: &MonitoringConfig,
    claims: &Claims,
) -> Result<Reply, ApiError> {
    let Some(actor_role) = erasure::eraser_role(claims) else {
        return Err(ApiError::forbidden("Only admins may erase a user's data"));
    };
    let request = incoming.json::<erasure::EraseBody>()?.validate()?;
    let db = config.connect().await?;
    let erased = erasure::erase(&db, &request, claims.user_id(), actor_role).await?;
    Ok(Reply::json(200, &erased).header("cache-control", "no-store"))
}

/// A token whose `sub` is not (or no longer) in `auth.users` breaks a foreign key:
/// that is the caller's problem, not a server error.
fn unknown_user_is_forbidden(error: DbError) -> ApiError {
    if error.is_foreign_key_violation() {
        ApiError::forbidden("The token's user does not exist")
    } else {
        error.into()
    }
}

/// A UTC time from Postgres as RFC 3339.
fn utc(time: chrono::NaiveDateTime) -> String {
    time.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(role: &str, app_role: Option<&str>) -> Claims {
        Claims {
            sub: Some("6f1c1f0e-8f55-4a4e-9a35-3f7d2b0c9e11".into()),
            role: Some(role.into()),
            app_metadata: match app_role {
                Some(app_role) => json!({"provider": "email", "role": app_role}),
                None => json!({"provider": "email"}),
            },
            ..Claims::default()
        }
    }

    #[test]
    fn teachers_admins_and_service_role_read_the_summary_and_students_do_not() {
        assert!(may_read_summary(&claims("authenticated", Some("teacher"))));
        assert!(may_read_summary(&claims("authenticated", Some("admin"))));
        assert!(may_read_summary(&claims("service_role", None)));
        assert!(!may_read_summary(&claims("authenticated", None)));
        assert!(!may_read_summary(&claims("authenticated", Some("student"))));
        assert!(!may_read_summary(&claims("anon", Some("admin"))));
    }

    #[test]
    fn only_admins_and_service_role_change_the_rollout() {
        assert!(may_change_rollout(&claims("authenticated", Some("admin"))));
        assert!(may_change_rollout(&claims("service_role", None)));
        assert!(!may_change_rollout(&claims(
            "authenticated",
            Some("teacher")
        )));
        assert!(!may_change_rollout(&claims("authenticated", None)));
        assert!(!may_change_rollout(&claims("anon", Some("admin"))));
    }

    #[test]
    fn reports_belong_to_the_signed_in_user_only() {
        let student = claims("authenticated", None);
        assert_eq!(
            reporting_user(&student).unwrap(),
            student.user_id().unwrap()
        );
        assert_eq!(
            reporting_user(&claims("anon", None)).unwrap_err().status(),
            403
        );
        assert_eq!(
            reporting_user(&claims("service_role", None))
                .unwrap_err()
                .status(),
            403
        );
        let nameless = Claims {
            sub: None,
            ..claims("authenticated", None)
        };
        assert_eq!(reporting_user(&nameless).unwrap_err().status(), 403);
    }

    #[test]
    fn window_defaults_to_24_hours_and_accepts_1_to_720() {
        assert_eq!(window_hours(None).unwrap(), 24);
        assert_eq!(window_hours(Some("1")).unwrap(), 1);
        assert_eq!(window_hours(Some("720")).unwrap(), 720);
    }

    #[test]
    fn window_outside_1_to_720_is_400_naming_hours() {
        for raw in ["0", "721", "-5", "2.5", "day", ""] {
            let error = window_hours(Some(raw)).unwrap_err();
            assert!(
                matches!(&error, ApiError::BadRequest { field: Some(f), .. } if f == "hours"),
                "{raw}: {error:?}"
            );
        }
    }
}
