//! The repository of `webhook_events`: one row per authenticated delivery, keyed by its
//! `webhook-id`, written in the same transaction as the delivery's effects.
//!
//! Every transaction that records or replays a delivery first takes an advisory lock
//! on its id ([`serialise_sql`]), before any row lock: deliveries of one id then run one
//! after the other, and the statements that lock a session before inserting the event
//! row ([`record_if_unchanged`]) and those that insert it before locking the session
//! ([`claim`]) can never wait for each other in a cycle.

use crate::db::ParameterValue;
use uuid::Uuid;

use super::apply::{Changes, SessionState};
use super::event::{AttemptScore, PracticeEvent};
use super::status::UnknownStatus;
use super::status::WebhookEventStatus;
use super::{attempts, sessions};
use crate::db::{self, Db, DbError};

/// A statement for a `WITH serialised AS (…)` clause: the transaction's advisory lock on
/// the delivery id in parameter `$param` (in a key space of its own, the two-key form).
fn serialise_sql(param: usize) -> String {
    format!(
        "SELECT pg_advisory_xact_lock(hashtext('practice-webhook delivery'), hashtext(${param}::text))"
    )
}

/// A delivery to record.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
    pub status: WebhookEventStatus,
    /// The body as `jsonb`: the raw bytes when they are JSON `jsonb` can hold, else the
    /// text as a string.
    pub payload: ParameterValue,
    /// The bytes as they came, when `payload` is not them (`webhook_events.raw_body`).
    pub raw_body: Option<Vec<u8>>,
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
pub async fn claim(
    db: &Db,
    event: &NewEvent<'_>,
    lock_session: Option<Uuid>,
) -> Result<Claim, DbError> {
    let sql = format!(
        "WITH serialised AS ({}),
         claimed AS (
             INSERT INTO webhook_events (id, event_type, status, payload, raw_body, error, processed_at)
             SELECT $1, $2, $3, $4, $7::bytea, $5, now()
              WHERE EXISTS (SELECT 1 FROM serialised)
             ON CONFLICT (id) DO UPDATE
                SET event_type = excluded.event_type,
                    status = excluded.status,
                    payload = excluded.payload,
                    raw_body = excluded.raw_body,
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
        serialise_sql(1),
        sessions::STATE_COLUMNS
    );
    let rows = db
        .query_one(
            &sql,
            &[
                db::text(event.id),
                db::text(event.event_type),
                db::text(event.status.as_str()),
                event.payload.clone(),
                db::optional_text(event.error),
                super::or_null(lock_session.map(Into::into)),
                super::or_null(event.raw_body.clone().map(ParameterValue::Binary)),
            ],
        )
        .await?;
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

/// A session as [`look_up`] read it, with the version [`record_if_unchanged`] compares.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedSession {
    pub state: SessionState,
    /// The row version read (`xmin`): every write of the session, and every write of
    /// one of its attempts (which always writes the session too), changes it.
    pub version: String,
}

/// What [`look_up`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    /// The status of a stored delivery with the id, if there is one.
    pub event: Option<WebhookEventStatus>,
    /// The session the event is about, if it exists.
    pub session: Option<VersionedSession>,
}

/// Reads, in one statement and without locking anything, whether a delivery id is
/// stored and the session an event is about, with its attempts and version.
pub async fn look_up(db: &Db, id: &str, session_id: Uuid) -> Result<Lookup, DbError> {
    let rows = db
        .query_one(&look_up_statement(), &[db::text(id), session_id.into()])
        .await?;
    let first = rows
        .rows()
        .next()
        .ok_or_else(|| DbError::Other("the look-up returned no row".into()))?;
    let event = db::column::<Option<String>>(&first, "event_status")?
        .map(|status| status.parse())
        .transpose()
        .map_err(|error: UnknownStatus| DbError::Other(error.to_string()))?;
    let version: Option<String> = db::column(&first, "version")?;
    let session = match (version, sessions::state_from_rows(&rows, session_id)?) {
        (Some(version), Some(state)) => Some(VersionedSession { state, version }),
        _ => None,
    };
    Ok(Lookup { event, session })
}

/// The statement of [`look_up`]: `$1` the delivery id, `$2` the session id.
fn look_up_statement() -> String {
    format!(
        "SELECT e.status AS event_status,
                s.xmin::text AS version,
                {}
           FROM (SELECT 1) AS one
           LEFT JOIN webhook_events e ON e.id = $1::text
           LEFT JOIN practice_sessions s ON s.id = $2::uuid
           LEFT JOIN practice_attempts a ON a.session_id = s.id",
        sessions::STATE_COLUMNS
    )
}

/// Records a delivery together with the `changes` planned from `session` as it was
/// read, in one statement (so one transaction), provided the session is still at that
/// version: `true` when everything was written; `false` when nothing was, because the
/// session changed since it was read (or the attempt turned out to be another
/// session's), and the delivery has to be applied under the session's lock instead.
///
/// The statement takes the delivery's advisory lock, then locks the session only if
/// its newest version is the one read (in READ COMMITTED a lock waits for a concurrent
/// writer and then looks at the version it left), then writes the attempt, the session
/// and the event row, each only if the one before was written. A delivery id stored
/// since the read fails the statement with a unique violation, which writes nothing.
pub async fn record_if_unchanged(
    db: &Db,
    event: &NewEvent<'_>,
    session: &VersionedSession,
    changes: &Changes<'_>,
) -> Result<bool, DbError> {
    let (sql, params) = record_statement(event, session, changes);
    let rows = db.query_one(&sql, &params).await?;
    let row = rows
        .rows()
        .next()
        .ok_or_else(|| DbError::Other("the delivery write returned no row".into()))?;
    db::column(&row, "recorded")
}

/// The statement and parameters of [`record_if_unchanged`]; every parameter carries an
/// explicit type in the SQL.
fn record_statement(
    event: &NewEvent<'_>,
    session: &VersionedSession,
    changes: &Changes<'_>,
) -> (String, Vec<ParameterValue>) {
    const GUARD: &str = "EXISTS (SELECT 1 FROM guard)";
    let session_id = session.state.id;
    let mut params = match changes.session() {
        Some(change) => sessions::update_params(session_id, change),
        None => vec![session_id.into()],
    };
    let effects = match changes {
        Changes::Nothing => String::new(),
        Changes::Session(_) => format!(
            ", session AS ({} AND {GUARD} RETURNING id)",
            sessions::UPDATE_SQL
        ),
        Changes::AttemptAndSession(attempt, _) => {
            params.extend(attempts::upsert_params(attempt));
            format!(
                ", attempt AS ({}),
                   session AS ({} AND EXISTS (SELECT 1 FROM attempt) RETURNING id)",
                attempts::upsert_sql(attempt, GUARD),
                sessions::UPDATE_SQL
            )
        }
    };
    let last_write = match changes {
        Changes::Nothing => "guard",
        _ => "session",
    };
    let first = params.len() + 1;
    let [id, event_type, status, payload, error, version] =
        std::array::from_fn(|offset| first + offset);
    params.extend([
        db::text(event.id),
        db::text(event.event_type),
        db::text(event.status.as_str()),
        event.payload.clone(),
        db::optional_text(event.error),
        db::text(&session.version),
    ]);
    let sql = format!(
        "WITH serialised AS ({}),
         guard AS (
             SELECT id FROM practice_sessions
              WHERE id = $1::uuid AND xmin::text = ${version}::text
                AND EXISTS (SELECT 1 FROM serialised)
                FOR NO KEY UPDATE
         ){effects},
         recorded AS (
             INSERT INTO webhook_events (id, event_type, status, payload, error, processed_at)
             SELECT ${id}::text, ${event_type}::text, ${status}::text, ${payload}::jsonb,
                    ${error}::text, now()
              WHERE EXISTS (SELECT 1 FROM {last_write})
             RETURNING id
         )
         SELECT EXISTS (SELECT 1 FROM recorded) AS recorded",
        serialise_sql(id)
    );
    (sql, params)
}

/// What [`record_scored`] did with a scored attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoredOutcome {
    /// Applied (or older than what stood) and recorded `processed`.
    Processed,
    /// The id is already `processed` or `ignored`: nothing was written.
    Duplicate,
    /// No such session, or the attempt id is another session's: nothing was written;
    /// the locked path records the delivery as `failed` with its reason.
    Refused,
}

/// The statement of [`record_scored`]: one call of `practice_record_scored`
/// (`sql/migrations/0140_practice_record_scored.sql`), which always returns one row.
pub const RECORD_SCORED_SQL: &str = "SELECT practice_record_scored(
        $1::text, $2::text, $3::jsonb, $4::uuid, $5::uuid, $6::int4, $7::numeric, $8::bool,
        $9::jsonb, $10::jsonb, $11::jsonb, $12::jsonb, $13::text::timestamptz) AS outcome";

/// The parameters of [`RECORD_SCORED_SQL`] for one delivery.
pub fn record_scored_params(
    id: &str,
    body: &[u8],
    event: &PracticeEvent,
    score: &AttemptScore,
) -> Vec<ParameterValue> {
    vec![
        db::text(id),
        db::text(event.event_type.as_str()),
        ParameterValue::Jsonb(body.to_vec()),
        event.session_id.into(),
        score.attempt_id.into(),
        score.sentence_index.into(),
        score.pronunciation_score.into(),
        score.is_passed.into(),
        db::jsonb(&score.pronunciation_analysis),
        db::jsonb(&score.feedback_data),
        db::jsonb(&score.transcription_results),
        db::jsonb(&serde_json::json!(score.word_level_scores)),
        db::utc_param(event.at),
    ]
}

/// Applies a `practice.attempt.scored` delivery and records it, in one statement (one
/// transaction, one round trip): dedupe by id, the attempt, the session's results, the
/// `webhook_events` row.
pub async fn record_scored(
    db: &Db,
    id: &str,
    body: &[u8],
    event: &PracticeEvent,
    score: &AttemptScore,
) -> Result<ScoredOutcome, DbError> {
    let rows = db
        .query_one(
            RECORD_SCORED_SQL,
            &record_scored_params(id, body, event, score),
        )
        .await?;
    let row = rows
        .rows()
        .next()
        .ok_or_else(|| DbError::Other("practice_record_scored returned no row".into()))?;
    match db::column::<String>(&row, "outcome")?.as_str() {
        "processed" => Ok(ScoredOutcome::Processed),
        "duplicate" => Ok(ScoredOutcome::Duplicate),
        "no_session" | "other_session" => Ok(ScoredOutcome::Refused),
        other => Err(DbError::Other(format!(
            "practice_record_scored answered {other:?}"
        ))),
    }
}

/// Sets the outcome of a delivery claimed earlier in the same transaction.
pub async fn set_outcome(
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
            db::optional_text(error),
        ],
    )
    .await?;
    Ok(())
}

/// A stored delivery, for replay.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: String,
    /// The payload as JSON text.
    pub payload: String,
    /// The bytes as they came, when the payload could not hold them.
    pub raw_body: Option<Vec<u8>>,
}

/// Locks a stored delivery for a replay and counts the attempt; `None` when no
/// delivery has that id, or when its content was emptied (by retention or an erasure,
/// `sql/migrations/0160`, `0161`): there is nothing left to apply, and replaying `{}`
/// would turn a processed delivery into a failed one that a retry could apply again.
pub async fn lock_for_replay(db: &Db, id: &str) -> Result<Option<StoredEvent>, DbError> {
    let sql = format!(
        "WITH serialised AS ({}),
         counted AS (
             UPDATE webhook_events SET attempts = attempts + 1
              WHERE id = $1 AND EXISTS (SELECT 1 FROM serialised)
                AND (payload <> '{{}}'::jsonb OR raw_body IS NOT NULL)
             RETURNING id, payload::text AS payload, raw_body
         )
         SELECT counted.id, counted.payload, counted.raw_body
           FROM (SELECT 1) AS one LEFT JOIN counted ON true",
        serialise_sql(1)
    );
    let rows = db.query_one(&sql, &[db::text(id)]).await?;
    let Some(row) = rows.rows().next() else {
        return Ok(None);
    };
    let Some(id) = db::column::<Option<String>>(&row, "id")? else {
        return Ok(None);
    };
    Ok(Some(StoredEvent {
        id,
        payload: db::column(&row, "payload")?,
        raw_body: db::column(&row, "raw_body")?,
    }))
}

/// The ids of stored deliveries in `status` whose content is still there, oldest first,
/// at most `limit`.
pub async fn ids_with_status(
    db: &Db,
    status: WebhookEventStatus,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    let rows = db
        .query_rows(
            "SELECT id FROM webhook_events WHERE status = $1 \
           AND (payload <> '{}'::jsonb OR raw_body IS NOT NULL) \
         ORDER BY received_at, id LIMIT $2",
            &[db::text(status.as_str()), limit.into()],
        )
        .await?;
    rows.rows().map(|row| db::column(&row, "id")).collect()
}
