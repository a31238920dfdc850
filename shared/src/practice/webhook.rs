//! The `practice-webhook` function: ClassConnect's deliveries, verified, applied exactly
//! once and in order, and the operators' replay of stored deliveries.
//!
//! The most frequent delivery, `practice.attempt.scored`, is applied by one statement:
//! a call of `practice_record_scored` (`sql/migrations/0140_practice_record_scored.sql`)
//! that dedupes it, writes the attempt, recomputes the session's results from the
//! contract's rules (the same as [`apply`] and [`super::scores`], against which the
//! integration tests check it) and records it ([`webhook_events::record_scored`]).
//! Other known event types take an optimistic path of two autocommit statements: one
//! reads whether the `webhook-id` is stored and the session with its attempts and row
//! version ([`webhook_events::look_up`]); the event's changes are planned from that
//! ([`apply::plan_changes`]); one statement then writes the changes and the
//! `webhook_events` row together, only if the session is still at the version read
//! ([`webhook_events::record_if_unchanged`]). A stored id is a duplicate and changes
//! nothing. Everything else — the session changed in between, no such session, the
//! sender's retry of a `failed` delivery, an attempt of another session, a body that is
//! not a valid event — takes the locked path, one transaction of four round trips:
//! `BEGIN`; the `webhook_events` row inserted first, the session locked and read, in
//! one statement ([`webhook_events::claim`]), so a repeated `webhook-id` — also one
//! arriving while the first is still being applied — finds the row and changes nothing,
//! and deliveries for one session apply one after the other; the event's changes
//! written in one statement; `COMMIT`. A refusal the sender can cure (unknown session,
//! invalid data) commits the row as `failed` with its reason and nothing else; a
//! database failure rolls everything back and answers `503`, so the sender's retry
//! finds nothing half-done. Either way a delivery's row and its effects commit
//! together or not at all.

use crate::db::ParameterValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::apply::{self, Changes, SessionState};
use super::event::{self, EventKind, ParsedBody, PracticeEvent};
use super::status::WebhookEventStatus;
use super::webhook_events::{Claim, LockedSession, Lookup, ScoredOutcome};
use super::{attempts, sessions, webhook_events};
use crate::auth::{self, AuthConfig, Role};
use crate::config::{self, ConfigError, Variables};
use crate::db::{self, Db, DbAddress};
use crate::error::ApiError;
use crate::http::{Incoming, Reply, WEBHOOK_LIMIT};
use crate::webhook_signature::{WebhookHeaders, WebhookSecrets, verify_webhook_signature};

/// The most stored deliveries one `{"status": …}` replay processes (oldest first).
pub const REPLAY_BATCH: i64 = 100;

/// What `practice-webhook` reads from its Spin variables.
#[derive(Clone)]
pub struct WebhookConfig {
    db_url: DbAddress,
    secrets: WebhookSecrets,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookConfig { db_url: [redacted], secrets: [redacted] }")
    }
}

impl WebhookConfig {
    /// Reads `db_url` and `classconnect_webhook_secret`; a secret whose key is under 16
    /// bytes is an error naming the variable.
    pub fn load(vars: &impl Variables) -> Result<Self, ConfigError> {
        Ok(Self {
            secrets: WebhookSecrets::load(vars)?,
            db_url: DbAddress::load(vars, config::DB_URL)?,
        })
    }
}

/// Serves `POST /functions/v1/practice-webhook` and `POST …/replay`.
pub async fn handle(
    incoming: &Incoming,
    vars: &impl Variables,
    now: DateTime<Utc>,
) -> Result<Reply, ApiError> {
    let config = WebhookConfig::load(vars)?;
    match incoming.segments().as_slice() {
        [] => {
            incoming.allow(&["POST"])?;
            receive(incoming, &config, now.timestamp()).await
        }
        ["replay"] => {
            incoming.allow(&["POST"])?;
            let auth = AuthConfig::load(vars)?;
            let claims = auth::authenticate(incoming, &auth, now.timestamp())?;
            auth::require_role(&claims, &[Role::ServiceRole])?;
            replay(incoming, &config).await
        }
        _ => Err(ApiError::not_found("No such route")),
    }
}

/// A delivery: `200 processed`, `200 duplicate`, `202 ignored`, or the refusal.
async fn receive(
    incoming: &Incoming,
    config: &WebhookConfig,
    now_unix: i64,
) -> Result<Reply, ApiError> {
    let body = incoming.body(WEBHOOK_LIMIT)?;
    let headers = WebhookHeaders {
        id: incoming.header("webhook-id"),
        timestamp: incoming.header("webhook-timestamp"),
        signature: incoming.header("webhook-signature"),
    };
    let delivery = verify_webhook_signature(&config.secrets, headers, body, now_unix)?;
    let parsed = event::parse_body(body);
    let db = Db::connect(&config.db_url).await?;
    crate::retention::sweep_if_due(&db, incoming);
    let optimistic = match &parsed {
        ParsedBody::Event(event) => record_unlocked(&db, &delivery.id, body, event).await?,
        _ => None,
    };
    let answer = match optimistic {
        Some(answer) => answer,
        None => {
            db.transaction(async |db| record_delivery(db, &delivery.id, body, parsed).await)
                .await?
        }
    };
    match answer {
        Delivered::Duplicate => Ok(Reply::json(200, &json!({"status": "duplicate"}))),
        Delivered::Settled(Settled { status, refusal }) => match (status, refusal) {
            (_, Some(refusal)) => Err(refusal),
            (WebhookEventStatus::Ignored, None) => {
                Ok(Reply::json(202, &json!({"status": "ignored"})))
            }
            (_, None) => Ok(Reply::json(200, &json!({"status": "processed"}))),
        },
    }
}

/// What became of a stored event: its status and, when `failed`, why.
#[derive(Debug)]
struct Settled {
    status: WebhookEventStatus,
    refusal: Option<ApiError>,
}

#[derive(Debug)]
enum Delivered {
    Duplicate,
    Settled(Settled),
}

/// The optimistic path: the delivery recorded and applied in two autocommit
/// statements, without holding a lock between them; `None` when it has to take the
/// locked path ([`record_delivery`]) instead, nothing having been written.
async fn record_unlocked(
    db: &Db,
    id: &str,
    body: &[u8],
    event: &PracticeEvent,
) -> Result<Option<Delivered>, ApiError> {
    if let EventKind::AttemptScored(score) = &event.kind {
        return Ok(
            match webhook_events::record_scored(db, id, body, event, score).await? {
                ScoredOutcome::Processed => Some(Delivered::Settled(Settled {
                    status: WebhookEventStatus::Processed,
                    refusal: None,
                })),
                ScoredOutcome::Duplicate => Some(Delivered::Duplicate),
                ScoredOutcome::Refused => None,
            },
        );
    }
    let Lookup {
        event: stored,
        session,
    } = webhook_events::look_up(db, id, event.session_id).await?;
    let session = match (stored, session) {
        (Some(WebhookEventStatus::Processed | WebhookEventStatus::Ignored), _) => {
            return Ok(Some(Delivered::Duplicate));
        }
        (None, Some(session)) => session,
        // A retry of a failed delivery, or no such session: rare, and the locked path
        // records them.
        (Some(WebhookEventStatus::Failed), _) | (None, None) => return Ok(None),
    };
    let changes = apply::plan_changes(&session.state, event);
    let new_event = webhook_events::NewEvent {
        id,
        event_type: event.event_type.as_str(),
        status: WebhookEventStatus::Processed,
        payload: ParameterValue::Jsonb(body.to_vec()),
        raw_body: None,
        error: None,
    };
    match webhook_events::record_if_unchanged(db, &new_event, &session, &changes).await {
        Ok(true) => Ok(Some(Delivered::Settled(Settled {
            status: WebhookEventStatus::Processed,
            refusal: None,
        }))),
        Ok(false) => Ok(None),
        // The id was stored after the look-up: the locked path tells a duplicate from
        // a failed delivery to take over.
        Err(error) if error.is_unique_violation() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Records and applies one delivery inside the caller's transaction.
async fn record_delivery(
    db: &Db,
    id: &str,
    body: &[u8],
    parsed: ParsedBody,
) -> Result<Delivered, ApiError> {
    let (expected, reason) = match &parsed {
        ParsedBody::Event(_) => (WebhookEventStatus::Processed, None),
        ParsedBody::Unknown { .. } => (WebhookEventStatus::Ignored, None),
        ParsedBody::Malformed { error } | ParsedBody::Invalid { error, .. } => {
            (WebhookEventStatus::Failed, Some(error.to_string()))
        }
    };
    let session = match &parsed {
        ParsedBody::Event(event) => Some(event.session_id),
        _ => None,
    };
    let (payload, raw_body) = stored_body(body, &parsed);
    let new_event = webhook_events::NewEvent {
        id,
        event_type: parsed.event_type(),
        status: expected,
        payload,
        raw_body,
        error: reason.as_deref(),
    };
    let Claim::Claimed(locked) = webhook_events::claim(db, &new_event, session).await? else {
        return Ok(Delivered::Duplicate);
    };
    let settled = settle(db, parsed, locked).await?;
    if settled.status != expected {
        let reason = settled.refusal.as_ref().map(ToString::to_string);
        webhook_events::set_outcome(db, id, settled.status, reason.as_deref()).await?;
    }
    Ok(Delivered::Settled(settled))
}

/// Applies a body's effects to its `locked` session; a refusal the sender can cure is
/// returned as `failed`, any other error aborts the transaction.
async fn settle(db: &Db, parsed: ParsedBody, locked: LockedSession) -> Result<Settled, ApiError> {
    let settled = |status, refusal| Settled { status, refusal };
    Ok(match parsed {
        ParsedBody::Event(event) => match apply_event(db, &event, locked).await {
            Ok(()) => settled(WebhookEventStatus::Processed, None),
            Err(refusal) if refusal.status() < 500 => {
                settled(WebhookEventStatus::Failed, Some(refusal))
            }
            Err(error) => return Err(error),
        },
        ParsedBody::Unknown { .. } => settled(WebhookEventStatus::Ignored, None),
        ParsedBody::Malformed { error } | ParsedBody::Invalid { error, .. } => {
            settled(WebhookEventStatus::Failed, Some(error))
        }
    })
}

/// Writes what the event changes in its locked session (read here when the claim
/// could not read it).
async fn apply_event(
    db: &Db,
    event: &PracticeEvent,
    locked: LockedSession,
) -> Result<(), ApiError> {
    let not_found =
        || ApiError::not_found(format!("Practice session {} not found", event.session_id));
    let session: SessionState = match locked {
        LockedSession::Missing => return Err(not_found()),
        LockedSession::Read(session) => session,
        LockedSession::Unread => sessions::read_with_attempts(db, event.session_id)
            .await?
            .ok_or_else(not_found)?,
    };
    match apply::plan_changes(&session, event) {
        Changes::Nothing => {}
        Changes::Session(change) => sessions::update(db, session.id, &change).await?,
        Changes::AttemptAndSession(attempt, change) => {
            if !attempts::write_with_session(db, session.id, &attempt, &change).await? {
                return Err(ApiError::bad_field(
                    "data.attempt_id",
                    "data.attempt_id belongs to another practice session",
                ));
            }
        }
    }
    Ok(())
}

/// The body as `webhook_events` keeps it: `payload` is the body itself when it is JSON
/// that `jsonb` can hold; otherwise (not JSON, or a `\u0000` in a string) `payload` is
/// the body's text as a JSON string, with what `jsonb` refuses replaced, for people to
/// read, and `raw_body` is the body's bytes exactly as they came, which a replay reads.
fn stored_body(body: &[u8], parsed: &ParsedBody) -> (ParameterValue, Option<Vec<u8>>) {
    let malformed = matches!(parsed, ParsedBody::Malformed { .. });
    if !malformed && crate::http::nul_field(body).is_none() {
        return (ParameterValue::Jsonb(body.to_vec()), None);
    }
    let text = String::from_utf8_lossy(body).replace('\0', "\u{FFFD}");
    (
        db::jsonb(&serde_json::Value::String(text)),
        Some(body.to_vec()),
    )
}

/// `{"event_id": …}` or `{"status": "failed" | "ignored"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    event_id: Option<String>,
    status: Option<WebhookEventStatus>,
}

/// One replayed delivery in the answer.
#[derive(Debug, Serialize)]
struct ReplayResult {
    event_id: String,
    status: WebhookEventStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Processes stored deliveries again, each in its own transaction, and answers what
/// became of each.
async fn replay(incoming: &Incoming, config: &WebhookConfig) -> Result<Reply, ApiError> {
    let request: ReplayRequest = incoming.json()?;
    let db = Db::connect(&config.db_url).await?;
    let ids = match (request.event_id, request.status) {
        (Some(id), None) => vec![id],
        (None, Some(status @ (WebhookEventStatus::Failed | WebhookEventStatus::Ignored))) => {
            webhook_events::ids_with_status(&db, status, REPLAY_BATCH).await?
        }
        (None, Some(WebhookEventStatus::Processed)) => {
            return Err(ApiError::bad_field(
                "status",
                "status must be `failed` or `ignored`: processed deliveries are replayed by event_id",
            ));
        }
        _ => {
            return Err(ApiError::bad_request(
                "Send exactly one of `event_id` and `status`",
            ));
        }
    };
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        let settled = db.transaction(async |db| replay_one(db, &id).await).await?;
        let Some(Settled { status, refusal }) = settled else {
            return Err(ApiError::not_found(format!(
                "No webhook event with id {id}"
            )));
        };
        results.push(ReplayResult {
            event_id: id,
            status,
            code: refusal.as_ref().map(ApiError::status),
            error: refusal.as_ref().map(ToString::to_string),
        });
    }
    Ok(Reply::json(
        200,
        &json!({"replayed": results.len(), "results": results}),
    ))
}

async fn replay_one(db: &Db, id: &str) -> Result<Option<Settled>, ApiError> {
    let Some(stored) = webhook_events::lock_for_replay(db, id).await? else {
        return Ok(None);
    };
    let body = match stored.raw_body {
        Some(bytes) => bytes,
        None => stored.payload.into_bytes(),
    };
    let parsed = event::parse_body(&body);
    let locked = match &parsed {
        ParsedBody::Event(event) if sessions::lock(db, event.session_id).await? => {
            LockedSession::Unread
        }
        _ => LockedSession::Missing,
    };
    let settled = settle(db, parsed, locked).await?;
    let reason = settled.refusal.as_ref().map(ToString::to_string);
    webhook_events::set_outcome(db, &stored.id, settled.status, reason.as_deref()).await?;
    Ok(Some(settled))
}
