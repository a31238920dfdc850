//! The repository of `webhook_events`: one row per authenticated delivery, keyed by its
//! `webhook-id`, written in the same transaction as the delivery's effects.

use spin_sdk::pg4::ParameterValue;
use uuid::Uuid;

use super::status::WebhookEventStatus;
use crate::db::{self, Db, DbError};

/// A delivery to record.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
    pub status: WebhookEventStatus,
    /// The body as `jsonb`: the raw bytes when they are JSON, else the text as a string.
    pub payload: ParameterValue,
    pub error: Option<&'a str>,
}

/// What [`claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The id is already `processed` or `ignored`: nothing was written.
    Duplicate,
    /// The row is this delivery's now; `session_locked` says whether the session asked
    /// for exists and is locked until the transaction ends.
    Claimed { session_locked: bool },
}

/// Records a delivery with the outcome it is expected to have, or takes over a
/// `failed` row with the same id (the sender's retry), and then locks the practice
/// session the event is about.
///
/// The insert comes first in the delivery's transaction, so a concurrent delivery of
/// the same id waits on the primary key until this one commits or rolls back. The
/// session lock is taken in the same statement (one round trip fewer per delivery,
/// which is why this statement reaches into `practice_sessions`); the session's rows
/// must then be read by a later statement, whose snapshot sees everything committed by
/// the transactions this one waited for.
pub fn claim(db: &Db, event: &NewEvent<'_>, lock_session: Option<Uuid>) -> Result<Claim, DbError> {
    let rows = db.query(
        "WITH claimed AS (
             INSERT INTO webhook_events (id, event_type, status, payload, error, processed_at)
             VALUES ($1, $2, $3, $4, $5, now())
             ON CONFLICT (id) DO UPDATE
                SET event_type = excluded.event_type,
                    status = excluded.status,
                    payload = excluded.payload,
                    error = excluded.error,
                    attempts = webhook_events.attempts + 1,
                    processed_at = excluded.processed_at
              WHERE webhook_events.status = 'failed'
             RETURNING id
         ), locked AS (
             SELECT id FROM practice_sessions
              WHERE id = $6::uuid AND EXISTS (SELECT 1 FROM claimed)
                FOR UPDATE
         )
         SELECT EXISTS (SELECT 1 FROM claimed) AS claimed,
                EXISTS (SELECT 1 FROM locked) AS session_locked",
        &[
            db::text(event.id),
            db::text(event.event_type),
            db::text(event.status.as_str()),
            event.payload.clone(),
            optional_text(event.error),
            super::or_null(lock_session.map(Into::into)),
        ],
    )?;
    let row = rows
        .rows()
        .next()
        .ok_or_else(|| DbError::Other("the claim returned no row".into()))?;
    Ok(if db::column::<bool>(&row, "claimed")? {
        Claim::Claimed {
            session_locked: db::column(&row, "session_locked")?,
        }
    } else {
        Claim::Duplicate
    })
}

/// Sets the outcome of a delivery claimed earlier in the same transaction.
pub fn set_outcome(
    db: &Db,
    id: &str,
    status: WebhookEventStatus,
    error: Option<&str>,
) -> Result<(), DbError> {
    db.execute(
        "UPDATE webhook_events SET status = $2, error = $3, processed_at = now() WHERE id = $1",
        &[
            db::text(id),
            db::text(status.as_str()),
            optional_text(error),
        ],
    )?;
    Ok(())
}

/// A stored delivery, for replay.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: String,
    /// The payload as JSON text.
    pub payload: String,
}

/// Locks a stored delivery for a replay and counts the attempt; `None` when no
/// delivery has that id.
pub fn lock_for_replay(db: &Db, id: &str) -> Result<Option<StoredEvent>, DbError> {
    let rows = db.query(
        "UPDATE webhook_events SET attempts = attempts + 1 WHERE id = $1
         RETURNING id, payload::text AS payload",
        &[db::text(id)],
    )?;
    rows.rows()
        .next()
        .map(|row| {
            Ok(StoredEvent {
                id: db::column(&row, "id")?,
                payload: db::column(&row, "payload")?,
            })
        })
        .transpose()
}

/// The ids of stored deliveries in `status`, oldest first, at most `limit`.
pub fn ids_with_status(
    db: &Db,
    status: WebhookEventStatus,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    let rows = db.query(
        "SELECT id FROM webhook_events WHERE status = $1 ORDER BY received_at, id LIMIT $2",
        &[db::text(status.as_str()), limit.into()],
    )?;
    rows.rows().map(|row| db::column(&row, "id")).collect()
}

fn optional_text(value: Option<&str>) -> ParameterValue {
    super::or_null(value.map(db::text))
}
