//! The repository of `practice_sessions`: the lock every event for a session takes
//! first, the session read with its attempts, and the write of what an event changed.

use std::str::FromStr;

use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::apply::{AttemptState, SessionChange, SessionState};
use super::status::UnknownStatus;
use super::{or_null, utc_param};
use crate::db::ParameterValue;
use crate::db::{self, Db, DbError, RowSet};

/// Locks the session's row until the transaction ends; `false` when there is no such
/// session. Every event for a session takes this lock before reading it (deliveries take
/// it with their claim, [`super::webhook_events::claim`]), so events for one session
/// apply one at a time and each sees the ones before it.
pub async fn lock(db: &Db, session_id: Uuid) -> Result<bool, DbError> {
    // `execute` counts the rows the SELECT locked: no `query` that could find none.
    let locked = db
        .execute(
            "SELECT id FROM practice_sessions WHERE id = $1 FOR UPDATE",
            &[session_id.into()],
        )
        .await?;
    Ok(locked > 0)
}

/// The columns [`state_from_rows`] decodes: a session `s` joined with its attempts
/// `a` (one row per attempt). [`super::webhook_events::claim`] reads them too.
pub(super) const STATE_COLUMNS: &str = "s.status,
                (s.last_event_at AT TIME ZONE 'UTC') AS last_event_at,
                CASE WHEN jsonb_typeof(s.sentences) = 'array'
                     THEN jsonb_array_length(s.sentences) END AS sentence_count,
                a.id AS attempt_id,
                a.status AS attempt_status,
                a.sentence_index,
                a.pronunciation_score,
                a.is_passed,
                (a.last_event_at AT TIME ZONE 'UTC') AS attempt_last_event_at";

/// Reads a session with its attempts. Call it after the lock, in a statement of its
/// own: a statement that waited for the lock would still read the attempts as they
/// were before the wait.
pub async fn read_with_attempts(
    db: &Db,
    session_id: Uuid,
) -> Result<Option<SessionState>, DbError> {
    let sql = format!(
        "SELECT {STATE_COLUMNS}
           FROM (SELECT 1) AS one
           LEFT JOIN practice_sessions s ON s.id = $1
           LEFT JOIN practice_attempts a ON a.session_id = s.id"
    );
    let rows = db.query_one(&sql, &[session_id.into()]).await?;
    state_from_rows(&rows, session_id)
}

/// The session of rows holding [`STATE_COLUMNS`]; rows without a session (`status`
/// null, from an outer join) are skipped, and `None` means there was none.
pub(super) fn state_from_rows(
    rows: &RowSet,
    session_id: Uuid,
) -> Result<Option<SessionState>, DbError> {
    let mut session: Option<SessionState> = None;
    for row in rows.rows() {
        let Some(status) = db::column::<Option<String>>(&row, "status")? else {
            continue;
        };
        let state = match &mut session {
            Some(state) => state,
            None => {
                let sentence_count: Option<i32> = db::column(&row, "sentence_count")?;
                session.insert(SessionState {
                    id: session_id,
                    status: parse_status(&status)?,
                    sentence_count: sentence_count.and_then(|count| usize::try_from(count).ok()),
                    last_event_at: db::column::<Option<NaiveDateTime>>(&row, "last_event_at")?,
                    attempts: Vec::new(),
                })
            }
        };
        let Some(attempt_id) = db::column::<Option<Uuid>>(&row, "attempt_id")? else {
            continue;
        };
        state.attempts.push(AttemptState {
            id: attempt_id,
            status: parse_status(&db::column::<String>(&row, "attempt_status")?)?,
            sentence_index: db::column(&row, "sentence_index")?,
            pronunciation_score: db::column::<Option<Decimal>>(&row, "pronunciation_score")?,
            is_passed: db::column(&row, "is_passed")?,
            last_event_at: db::column(&row, "attempt_last_event_at")?,
        });
    }
    Ok(session)
}

/// The write of a [`SessionChange`]: parameters `$1`–`$9` from [`update_params`];
/// fields the change leaves `None` keep their values. [`super::attempts`] embeds it
/// in the statement that writes an attempt.
pub(super) const UPDATE_SQL: &str = "UPDATE practice_sessions
            SET status = COALESCE($2::text, status),
                improved_transcript = COALESCE($3::text, improved_transcript),
                sentences = COALESCE($4::jsonb, sentences),
                error_message = COALESCE($5::text, error_message),
                attempt_count = COALESCE($6::int4, attempt_count),
                pronunciation_score = CASE WHEN $6::int4 IS NULL THEN pronunciation_score
                                           ELSE $7::numeric END,
                is_passed = COALESCE($8::bool, is_passed),
                last_event_at = COALESCE($9::text::timestamptz, last_event_at),
                updated_at = now()
          WHERE id = $1::uuid";

/// The parameters of [`UPDATE_SQL`].
pub(super) fn update_params(session_id: Uuid, change: &SessionChange<'_>) -> Vec<ParameterValue> {
    let results = change.results.as_ref();
    let sentences = change
        .sentences
        .map(|sentences| db::jsonb(&serde_json::json!(sentences)));
    vec![
        session_id.into(),
        or_null(change.status.map(|status| db::text(status.as_str()))),
        or_null(change.improved_transcript.map(db::text)),
        or_null(sentences),
        or_null(change.error_message.map(db::text)),
        or_null(results.map(|results| results.attempt_count.into())),
        or_null(
            results
                .and_then(|results| results.pronunciation_score)
                .map(Into::into),
        ),
        or_null(results.map(|results| results.is_passed.into())),
        or_null(change.last_event_at.map(utc_param)),
    ]
}

/// Writes what a session-level event changed.
pub async fn update(db: &Db, session_id: Uuid, change: &SessionChange<'_>) -> Result<(), DbError> {
    db.execute(UPDATE_SQL, &update_params(session_id, change))
        .await?;
    Ok(())
}

fn parse_status<T: FromStr<Err = UnknownStatus>>(text: &str) -> Result<T, DbError> {
    text.parse()
        .map_err(|error: UnknownStatus| DbError::Other(error.to_string()))
}
