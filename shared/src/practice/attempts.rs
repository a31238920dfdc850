//! The repository of `practice_attempts`: the write of a scored or failed attempt,
//! creating the row when ClassConnect reports on an attempt id that has none yet.

use crate::db::ParameterValue;
use uuid::Uuid;

use super::apply::{AttemptChange, SessionChange};
use super::sessions;
use super::status::AttemptStatus;
use super::utc_param;
use crate::db::{self, Db, DbError};

/// The upsert of an attempt, for a `WITH attempt AS (…)` clause: `$1` is the session
/// (shared with [`sessions::UPDATE_SQL`]), the attempt's own parameters start at `$10`
/// ([`upsert_params`]). It writes nothing when the attempt id belongs to another
/// session, and nothing unless `gate` (a SQL condition, `true` when none) holds: a
/// caller that must not write without a guard passing names the guard there.
pub(super) fn upsert_sql(attempt: &AttemptChange<'_>, gate: &str) -> String {
    match attempt {
        AttemptChange::Scored { .. } => format!(
            "INSERT INTO practice_attempts
                (id, session_id, sentence_index, status, pronunciation_score, is_passed,
                 pronunciation_analysis, feedback_data, transcription_results,
                 word_level_scores, error_message, last_event_at)
         SELECT $10::uuid, $1::uuid, $11::int4, $12::text, $13::numeric, $14::bool,
                $15::jsonb, $16::jsonb, $17::jsonb, $18::jsonb, NULL, $19::text::timestamptz
          WHERE {gate}
         ON CONFLICT (id) DO UPDATE
            SET sentence_index = excluded.sentence_index,
                status = excluded.status,
                pronunciation_score = excluded.pronunciation_score,
                is_passed = excluded.is_passed,
                pronunciation_analysis = excluded.pronunciation_analysis,
                feedback_data = excluded.feedback_data,
                transcription_results = excluded.transcription_results,
                word_level_scores = excluded.word_level_scores,
                error_message = NULL,
                last_event_at = excluded.last_event_at,
                updated_at = now()
          WHERE practice_attempts.session_id = excluded.session_id
         RETURNING id"
        ),
        AttemptChange::Failed { .. } => format!(
            "INSERT INTO practice_attempts
                (id, session_id, status, error_message, last_event_at)
         SELECT $10::uuid, $1::uuid, $11::text, $12::text, $13::text::timestamptz
          WHERE {gate}
         ON CONFLICT (id) DO UPDATE
            SET status = excluded.status,
                error_message = excluded.error_message,
                last_event_at = excluded.last_event_at,
                updated_at = now()
          WHERE practice_attempts.session_id = excluded.session_id
         RETURNING id"
        ),
    }
}

/// The attempt's parameters of [`upsert_sql`], `$10` onwards.
pub(super) fn upsert_params(attempt: &AttemptChange<'_>) -> Vec<ParameterValue> {
    match attempt {
        AttemptChange::Scored {
            attempt_id,
            at,
            score,
        } => vec![
            (*attempt_id).into(),
            score.sentence_index.into(),
            db::text(AttemptStatus::Completed.as_str()),
            score.pronunciation_score.into(),
            score.is_passed.into(),
            db::jsonb(&score.pronunciation_analysis),
            db::jsonb(&score.feedback_data),
            db::jsonb(&score.transcription_results),
            db::jsonb(&serde_json::json!(score.word_level_scores)),
            utc_param(*at),
        ],
        AttemptChange::Failed {
            attempt_id,
            at,
            error_message,
        } => vec![
            (*attempt_id).into(),
            db::text(AttemptStatus::Failed.as_str()),
            db::text(error_message),
            utc_param(*at),
        ],
    }
}

/// Writes an attempt's new state and its session's change in one statement (one
/// round trip per delivery fewer). `false` when the attempt id belongs to another
/// session: then neither is written.
pub async fn write_with_session(
    db: &Db,
    session_id: Uuid,
    attempt: &AttemptChange<'_>,
    session: &SessionChange<'_>,
) -> Result<bool, DbError> {
    let mut params = sessions::update_params(session_id, session);
    params.extend(upsert_params(attempt));
    let upsert = upsert_sql(attempt, "true");
    let sql = format!(
        "WITH attempt AS ({upsert}),
              session AS ({} AND EXISTS (SELECT 1 FROM attempt) RETURNING id)
         SELECT EXISTS (SELECT 1 FROM attempt) AS attempt_written",
        sessions::UPDATE_SQL
    );
    let rows = db.query_one(&sql, &params).await?;
    let row = rows
        .rows()
        .next()
        .ok_or_else(|| DbError::Other("the attempt write returned no row".into()))?;
    db::column(&row, "attempt_written")
}
