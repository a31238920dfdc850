//! Repository of `voice_session_metrics`: one row per reported voice session, and one
//! per user and `session_id` (a report for a session the user already reported
//! replaces it; rows without a session id are one per report).
//!
//! Parameters carry explicit casts (`$4::float8`, `$8::int8`) so that the statement's
//! parameter types are the Rust values' types whatever numeric type a column has; the
//! insert then applies Postgres's assignment casts. The window's statistics are
//! aggregated here, in SQL, so a summary never loads the rows into the component.

use uuid::Uuid;

use super::ingest::{ImplementationType, SessionMetrics};
use super::rules::{ImplementationStats, UserCounts};
use crate::db::{self, Db, ParameterValue, Row};
use crate::error::ApiError;

/// The stored row's identity.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMetrics {
    pub id: Uuid,
    pub created_at: chrono::NaiveDateTime,
}

/// Stores one session's metrics for `user_id`, replacing the user's earlier report of
/// the same `session_id` (an upsert always returns its row).
pub fn upsert(db: &Db, user_id: Uuid, metrics: &SessionMetrics) -> Result<StoredMetrics, ApiError> {
    let sql = "INSERT INTO voice_session_metrics AS m (
                   user_id, session_id, implementation_type, connection_success,
                   connection_time_ms, avg_latency_ms, p95_latency_ms, p99_latency_ms,
                   audio_chunks_sent, audio_chunks_received, buffer_underruns,
                   reconnection_attempts, duration_ms)
               VALUES ($1, $2, $3, $4, $5::float8, $6::float8, $7::float8, $8::float8,
                       $9::int8, $10::int8, $11::int8, $12::int8, $13::float8)
               ON CONFLICT (user_id, session_id) DO UPDATE SET
                   implementation_type = excluded.implementation_type,
                   connection_success = excluded.connection_success,
                   connection_time_ms = excluded.connection_time_ms,
                   avg_latency_ms = excluded.avg_latency_ms,
                   p95_latency_ms = excluded.p95_latency_ms,
                   p99_latency_ms = excluded.p99_latency_ms,
                   audio_chunks_sent = excluded.audio_chunks_sent,
                   audio_chunks_received = excluded.audio_chunks_received,
                   buffer_underruns = excluded.buffer_underruns,
                   reconnection_attempts = excluded.reconnection_attempts,
                   duration_ms = excluded.duration_ms,
                   created_at = now()
               RETURNING m.id, (m.created_at AT TIME ZONE 'UTC') AS created_at";
    let params = [
        ParameterValue::from(user_id),
        // `session_id` is a `text` column; the UUID goes in in its canonical form.
        metrics
            .session_id
            .map_or(ParameterValue::DbNull, |id| db::text(&id.to_string())),
        db::text(metrics.implementation_type.as_str()),
        ParameterValue::Boolean(metrics.connection_success),
        ParameterValue::Floating64(metrics.connection_time_ms),
        ParameterValue::Floating64(metrics.avg_latency_ms),
        ParameterValue::Floating64(metrics.p95_latency_ms),
        ParameterValue::Floating64(metrics.p99_latency_ms),
        ParameterValue::Int64(metrics.audio_chunks_sent),
        ParameterValue::Int64(metrics.audio_chunks_received),
        ParameterValue::Int64(metrics.buffer_underruns),
        ParameterValue::Int64(metrics.reconnection_attempts),
        ParameterValue::Floating64(metrics.duration_ms),
    ];
    let rows = db
        .query_one(sql, &params)
        .map_err(super::unknown_user_is_forbidden)?;
    let row = rows
        .rows()
        .next()
        .ok_or_else(|| ApiError::internal("INSERT … RETURNING gave no row"))?;
    Ok(StoredMetrics {
        id: db::column(&row, "id")?,
        created_at: db::column(&row, "created_at")?,
    })
}

/// Per implementation, the totals of the sessions reported in the last `hours` hours
/// (errors are counted by [`super::session_errors::counts_in_window`] and left at 0).
/// Latency statistics are over connected sessions only; the percentiles are
/// `percentile_cont`, i.e. linear interpolation between the closest ranks.
///
/// No single user can tip the numbers: each user counts with at most their
/// [`MAX_SESSIONS_PER_USER`] most recent sessions of an implementation in the window,
/// and for each red flag the rows carry how many distinct users had a session that
/// points that way (a failed connection, an underrun, a reconnection, a WebRTC latency
/// above the ratio times WebSocket's average), which [`super::rules`] requires to be
/// at least [`super::rules::MIN_USERS_FOR_RED_FLAG`].
pub fn stats_in_window(db: &Db, hours: i32) -> Result<Vec<ImplementationStats>, ApiError> {
    let sql = "WITH windowed AS (
                   SELECT user_id, implementation_type, connection_success,
                          avg_latency_ms::float8 AS latency, buffer_underruns,
                          reconnection_attempts,
                          row_number() OVER (PARTITION BY user_id, implementation_type
                                             ORDER BY created_at DESC, id) AS user_rank
                     FROM voice_session_metrics
                    WHERE created_at >= now() - make_interval(hours => $1::int4)
               ), counted AS (
                   SELECT * FROM windowed WHERE user_rank <= $2::int8
               ), websocket AS (
                   SELECT avg(latency) FILTER (WHERE connection_success) AS latency
                     FROM counted WHERE implementation_type = 'websocket'
               )
               SELECT implementation_type,
                      count(*)::int8 AS sessions,
                      count(*) FILTER (WHERE connection_success)::int8 AS successful_sessions,
                      (avg(latency) FILTER (WHERE connection_success))::float8 AS avg_latency_ms,
                      percentile_cont(0.95) WITHIN GROUP (ORDER BY latency)
                          FILTER (WHERE connection_success) AS p95_latency_ms,
                      percentile_cont(0.99) WITHIN GROUP (ORDER BY latency)
                          FILTER (WHERE connection_success) AS p99_latency_ms,
                      coalesce(sum(buffer_underruns), 0)::int8 AS buffer_underruns,
                      coalesce(sum(reconnection_attempts), 0)::int8 AS reconnection_attempts,
                      count(DISTINCT user_id)::int8 AS users,
                      count(DISTINCT user_id) FILTER (WHERE NOT connection_success)::int8
                          AS failed_users,
                      count(DISTINCT user_id) FILTER (WHERE buffer_underruns > 0)::int8
                          AS underrun_users,
                      count(DISTINCT user_id) FILTER (WHERE reconnection_attempts > 0)::int8
                          AS reconnecting_users,
                      count(DISTINCT user_id) FILTER (
                          WHERE connection_success
                            AND latency > $3::float8 * (SELECT latency FROM websocket))::int8
                          AS slow_users
                 FROM counted
                GROUP BY implementation_type";
    let rows = db.query_rows(
        sql,
        &[
            ParameterValue::Int32(hours),
            ParameterValue::Int64(MAX_SESSIONS_PER_USER),
            ParameterValue::Floating64(super::rules::MAX_WEBRTC_LATENCY_RATIO),
        ],
    )?;
    rows.rows().map(|row| stats_from_row(&row)).collect()
}

/// The most sessions of one implementation a user counts with in a window.
pub const MAX_SESSIONS_PER_USER: i64 = 50;

fn stats_from_row(row: &Row<'_>) -> Result<ImplementationStats, ApiError> {
    let implementation: String = db::column(row, "implementation_type")?;
    let implementation = implementation
        .parse::<ImplementationType>()
        .map_err(ApiError::internal)?;
    Ok(ImplementationStats {
        implementation,
        sessions: db::column(row, "sessions")?,
        successful_sessions: db::column(row, "successful_sessions")?,
        avg_latency_ms: db::column(row, "avg_latency_ms")?,
        p95_latency_ms: db::column(row, "p95_latency_ms")?,
        p99_latency_ms: db::column(row, "p99_latency_ms")?,
        buffer_underruns: db::column(row, "buffer_underruns")?,
        reconnection_attempts: db::column(row, "reconnection_attempts")?,
        users: UserCounts {
            reporting: db::column(row, "users")?,
            failed: db::column(row, "failed_users")?,
            underrun: db::column(row, "underrun_users")?,
            reconnecting: db::column(row, "reconnecting_users")?,
            slow: db::column(row, "slow_users")?,
            erring: 0,
        },
        errors: 0,
        error_sessions: 0,
    })
}
