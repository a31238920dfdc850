//! Repository of `voice_session_errors`: one row per error a client reports. The
//! summary counts an error only for a session the same user reported metrics for
//! ([`super::session_metrics::stats_in_window`]).

use uuid::Uuid;

use super::ingest::SessionError;
use crate::db::{self, Db, ParameterValue};
use crate::error::ApiError;

/// The stored row's identity.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredError {
    pub id: Uuid,
    pub created_at: chrono::NaiveDateTime,
}

/// Stores one error for `user_id`.
pub async fn insert(db: &Db, user_id: Uuid, error: &SessionError) -> Result<StoredError, ApiError> {
    let sql = "INSERT INTO voice_session_errors (
                   user_id, error_type, error_message, stack_trace, is_retryable,
                   implementation_type, context, session_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
               RETURNING id, (created_at AT TIME ZONE 'UTC') AS created_at";
    let params = [
        ParameterValue::from(user_id),
        db::text(&error.error_type),
        db::text(&error.error_message),
        error
            .stack_trace
            .as_deref()
            .map_or(ParameterValue::DbNull, db::text),
        ParameterValue::Boolean(error.is_retryable),
        db::text(error.implementation_type.as_str()),
        error
            .context
            .as_ref()
            .map_or(ParameterValue::DbNull, db::jsonb),
        error
            .session_id
            .map_or(ParameterValue::DbNull, |id| db::text(&id.to_string())),
    ];
    let rows = db
        .query_one(sql, &params)
        .await
        .map_err(super::unknown_user_is_forbidden)?;
    let row = rows
        .rows()
        .next()
        .ok_or_else(|| ApiError::internal("INSERT … RETURNING gave no row"))?;
    Ok(StoredError {
        id: db::column(&row, "id")?,
        created_at: db::column(&row, "created_at")?,
    })
}
