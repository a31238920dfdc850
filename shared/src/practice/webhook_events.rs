//! The repository of `webhook_events`: one row per authenticated delivery, keyed by its
//! `webhook-id`, written in the same transaction as the delivery's effects.

use spin_sdk::pg4::ParameterValue;
use uuid::Uuid;

use super::apply::SessionState;
use super::sessions;
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
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The id is already `processed` or `ignored`: nothing was written.
    Duplicate,
    /// The row is this delivery's now, and the session asked for is locked.
    Claimed(LockedSession),
}

/// The session a claim locked, as far as the claim could read it.
#[derive(Debug, Clone, PartialEq)]
pub enum LockedSession {
    /// No session with that id (or none asked for).
    Missing,
    /// Locked, and read as it stands.
    Read(SessionState),
    /// Locked but not read: changed by a transaction that committed after the claim's
    /// snapshot (the claim waited for it, or raced it). Read it in a new statement.
    Unread,
}

/// Records a delivery with the outcome it is expected to have, or takes over a
/// `failed` row with the same id (the sender's retry), then locks the practice session
/// the event is about and reads it with its attempts — one round trip.
///
/// The insert comes first, so a concurrent delivery of the same id waits on the
/// primary key until this one commits or rolls back. The lock serialises deliveries for
/// one session. The read shares the statement's snapshot, taken before any wait for
/// the lock: it is only current when the session's row version the snapshot sees is
/// the one locked (every write of an attempt writes its session in the same
/// transaction, so a newer attempt comes with a newer session row). Otherwise the
/// answer is [`LockedSession::Unread`] and the caller reads it.
pub fn claim(db: &Db, event: &NewEvent<'_>, lock_session: Option<Uuid>) -> Result<Claim, DbError> {
    let sql = format!(
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
             SELECT id, xmin::text AS version FROM practice_sessions
              WHERE id = $6::uuid AND EXISTS (SELECT 1 FROM claimed)
                FOR UPDATE
         )
         SELECT EXISTS (SELECT 1 FROM claimed) AS claimed,
                locked.id IS NOT NULL AS locked,
                locked.version IS NOT DISTINCT FROM s.xmin::text AS current,
                {}
           FROM (SELECT 1) AS one
           LEFT JOIN locked ON true
           LEFT JOIN practice_sessions s ON s.id = locked.id
           LEFT JOIN practice_attempts a ON a.session_id = s.id",
        sessions::STATE_COLUMNS
    );
    let rows = db.query(
        &sql,
        &[
            db::text(event.id),
            db::text(event.event_type),
            db::text(event.status.as_str()),
            event.payload.clone(),
            optional_text(event.error),
            super::or_null(lock_session.map(Into::into)),
        ],
    )?;
    let first = rows
        .rows()
        .next()
        .ok_or_else(|| DbError::Other("the claim returned no row".into()))?;
    if !db::column::<bool>(&first, "claimed")? {
        return Ok(Claim::Duplicate);
    }
    let (Some(session_id), true) = (lock_session, db::column::<bool>(&first, "locked")?) else {
        return Ok(Claim::Claimed(LockedSession::Missing));
    };
    if !db::column::<bool>(&first, "current")? {
        return Ok(Claim::Claimed(LockedSession::Unread));
    }
    Ok(Claim::Claimed(
        match sessions::state_from_rows(&rows, session_id)? {
            Some(state) => LockedSession::Read(state),
            None => LockedSession::Unread,
        },
    ))
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
