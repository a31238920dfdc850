//! The repository of `practice_attempts`: the write of a scored or failed attempt,
//! creating the row when ClassConnect reports on an attempt id that has none yet.

use super::apply::AttemptChange;
use super::status::AttemptStatus;
use super::utc_param;
use crate::db::{self, Db, DbError};

/// Writes an attempt's new state. `false` when the attempt id belongs to another
/// session (nothing is written).
pub fn upsert(db: &Db, change: &AttemptChange<'_>) -> Result<bool, DbError> {
    let rows = match change {
        AttemptChange::Scored {
            attempt_id,
            session_id,
            at,
            score,
        } => db.query(
            "INSERT INTO practice_attempts
                    (id, session_id, sentence_index, status, pronunciation_score, is_passed,
                     pronunciation_analysis, feedback_data, transcription_results,
                     word_level_scores, error_message, last_event_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11::text::timestamptz)
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
             RETURNING id",
            &[
                (*attempt_id).into(),
                (*session_id).into(),
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
        )?,
        AttemptChange::Failed {
            attempt_id,
            session_id,
            at,
            error_message,
        } => db.query(
            "INSERT INTO practice_attempts (id, session_id, status, error_message, last_event_at)
             VALUES ($1, $2, $3, $4, $5::text::timestamptz)
             ON CONFLICT (id) DO UPDATE
                SET status = excluded.status,
                    error_message = excluded.error_message,
                    last_event_at = excluded.last_event_at,
                    updated_at = now()
              WHERE practice_attempts.session_id = excluded.session_id
             RETURNING id",
            &[
                (*attempt_id).into(),
                (*session_id).into(),
                db::text(AttemptStatus::Failed.as_str()),
                db::text(error_message),
                utc_param(*at),
            ],
        )?,
    };
    Ok(!rows.rows.is_empty())
}
