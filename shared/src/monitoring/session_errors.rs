//! Repository of `voice_session_errors`: one row per error a client reports.

use uuid::Uuid;

use super::ingest::{ImplementationType, SessionError};
use crate::db::{self, Db, ParameterValue};
use crate::error::ApiError;

/// The stored row's identity.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredError {
    pub id: Uuid,
    pub created_at: chrono::NaiveDateTime,
}

/// Stores one error for `user_id`.
pub fn insert(db: &Db, user_id: Uuid, error: &SessionError) -> Result<StoredError, ApiError> {
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

/// What the window's error reports add up to, for one implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCounts {
    /// Error reports.
    pub reports: i64,
    /// Sessions with an error: distinct (user, `session_id`), a user's reports without
    /// a session id counting as one session, and each user counting with at most
    /// [`super::session_metrics::MAX_SESSIONS_PER_USER`].
    pub sessions: i64,
    /// Distinct users who reported an error.
    pub users: i64,
}

/// Errors reported in the last `hours` hours, per implementation.
pub fn counts_in_window(
    db: &Db,
    hours: i32,
) -> Result<Vec<(ImplementationType, ErrorCounts)>, ApiError> {
    let sql = "WITH per_session AS (
                   SELECT implementation_type, user_id, coalesce(session_id, '') AS session,
                          count(*) AS reports
                     FROM voice_session_errors
                    WHERE created_at >= now() - make_interval(hours => $1::int4)
                    GROUP BY implementation_type, user_id, coalesce(session_id, '')
               ), ranked AS (
                   SELECT *, row_number() OVER (PARTITION BY implementation_type, user_id
                                                ORDER BY session) AS user_rank
                     FROM per_session
               )
               SELECT implementation_type,
                      sum(reports)::int8 AS errors,
                      count(*) FILTER (WHERE user_rank <= $2::int8)::int8 AS error_sessions,
                      count(DISTINCT user_id)::int8 AS error_users
                 FROM ranked
                GROUP BY implementation_type";
    let rows = db.query_rows(
        sql,
        &[
            ParameterValue::Int32(hours),
            ParameterValue::Int64(super::session_metrics::MAX_SESSIONS_PER_USER),
        ],
    )?;
    rows.rows()
        .map(|row| {
            let implementation: String = db::column(&row, "implementation_type")?;
            let implementation = implementation
                .parse::<ImplementationType>()
                .map_err(ApiError::internal)?;
            Ok((
                implementation,
                ErrorCounts {
                    reports: db::column(&row, "errors")?,
                    sessions: db::column(&row, "error_sessions")?,
                    users: db::column(&row, "error_users")?,
                },
            ))
        })
        .collect()
}
