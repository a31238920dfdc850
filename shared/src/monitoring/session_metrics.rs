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
use super::rules::{self, ImplementationStats, UserCounts};
use crate::db::{self, Db, ParameterValue, Row};
use crate::error::ApiError;

/// The stored row's identity.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMetrics {
    pub id: Uuid,
    pub created_at: chrono::NaiveDateTime,
}

/// Stores one session's metrics for `user_id`, replacing the user's earlier report of
/// the same `session_id` (an upsert always returns its row). `anonymous`: the reporter
/// is an anonymous sign-in, whose reports the summary does not count.
pub async fn upsert(
    db: &Db,
    user_id: Uuid,
    anonymous: bool,
    metrics: &SessionMetrics,
) -> Result<StoredMetrics, ApiError> {
    let sql = "INSERT INTO voice_session_metrics AS m (
                   user_id, session_id, implementation_type, connection_success,
                   connection_time_ms, avg_latency_ms, p95_latency_ms, p99_latency_ms,
                   audio_chunks_sent, audio_chunks_received, buffer_underruns,
                   reconnection_attempts, duration_ms, reporter_anonymous)
               VALUES ($1, $2, $3, $4, $5::float8, $6::float8, $7::float8, $8::float8,
                       $9::int8, $10::int8, $11::int8, $12::int8, $13::float8, $14)
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
                   reporter_anonymous = excluded.reporter_anonymous,
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
        ParameterValue::Boolean(anonymous),
    ];
    let rows = db
        .query_one(sql, &params)
        .await
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

/// Per implementation, the window's statistics as [`super::rules`] defines them: each
/// signed-in user's own values over their counted sessions (at most their
/// [`MAX_SESSIONS_PER_USER`] most recent of the implementation in the last `hours`
/// hours), then the mean over users of those values, each capped, and how many users
/// are over each rule's threshold on their own values. The percentiles are
/// `percentile_cont` (linear interpolation between the closest ranks) over the users'
/// capped latencies. Reports of anonymous sign-ins are left out.
pub async fn stats_in_window(db: &Db, hours: i32) -> Result<Vec<ImplementationStats>, ApiError> {
    let sql = "WITH windowed AS (
                   SELECT id, user_id, session_id, implementation_type, connection_success,
                          avg_latency_ms::float8 AS latency,
                          buffer_underruns::float8 AS underruns,
                          reconnection_attempts::float8 AS reconnections,
                          row_number() OVER (PARTITION BY user_id, implementation_type
                                             ORDER BY created_at DESC, id) AS user_rank
                     FROM voice_session_metrics
                    WHERE created_at >= now() - make_interval(hours => $1::int4)
                      AND NOT reporter_anonymous
               ), counted AS (
                   SELECT w.*,
                          (SELECT count(*) FROM voice_session_errors e
                            WHERE e.user_id = w.user_id
                              AND e.session_id = w.session_id
                              AND e.implementation_type = w.implementation_type
                              AND e.created_at >= now() - make_interval(hours => $1::int4))
                              AS error_reports
                     FROM windowed w
                    WHERE w.user_rank <= $2::int8
               ), per_user AS (
                   SELECT implementation_type, user_id,
                          count(*)::int8 AS sessions,
                          count(*) FILTER (WHERE connection_success)::int8 AS successful,
                          count(*) FILTER (WHERE error_reports > 0)::int8 AS erred,
                          sum(error_reports)::int8 AS error_reports,
                          (100 * count(*) FILTER (WHERE connection_success))::float8
                              / count(*)::float8 AS success_rate,
                          (100 * count(*) FILTER (WHERE error_reports > 0))::float8
                              / count(*)::float8 AS error_rate,
                          sum(underruns) / count(*)::float8 AS underruns,
                          sum(reconnections) / count(*)::float8 AS reconnections,
                          avg(latency) FILTER (WHERE connection_success) AS latency
                     FROM counted
                    GROUP BY implementation_type, user_id
               ), medians AS (
                   SELECT implementation_type,
                          percentile_cont(0.5) WITHIN GROUP (ORDER BY latency) AS latency
                     FROM per_user
                    GROUP BY implementation_type
               ), capped AS (
                   SELECT p.*,
                          CASE WHEN p.latency IS NULL THEN NULL
                               ELSE least(p.latency, $3::float8 * m.latency) END
                              AS capped_latency
                     FROM per_user p JOIN medians m USING (implementation_type)
               ), websocket AS (
                   SELECT avg(capped_latency) AS latency
                     FROM capped WHERE implementation_type = 'websocket'
               )
               SELECT implementation_type,
                      sum(sessions)::int8 AS sessions,
                      sum(successful)::int8 AS successful_sessions,
                      sum(error_reports)::int8 AS errors,
                      sum(erred)::int8 AS error_sessions,
                      count(*)::int8 AS users,
                      avg(success_rate) AS success_rate_percent,
                      avg(error_rate) AS error_rate_percent,
                      avg(least(underruns, $4::float8)) AS buffer_underruns_per_session,
                      avg(least(reconnections, $5::float8)) AS reconnections_per_session,
                      avg(capped_latency) AS avg_latency_ms,
                      percentile_cont(0.95) WITHIN GROUP (ORDER BY capped_latency)
                          AS p95_latency_ms,
                      percentile_cont(0.99) WITHIN GROUP (ORDER BY capped_latency)
                          AS p99_latency_ms,
                      count(*) FILTER (WHERE success_rate < $6::float8)::int8 AS failed_users,
                      count(*) FILTER (WHERE error_rate > $7::float8)::int8 AS erring_users,
                      count(*) FILTER (WHERE underruns > $8::float8)::int8 AS underrun_users,
                      count(*) FILTER (WHERE reconnections > $9::float8)::int8
                          AS reconnecting_users,
                      count(*) FILTER (
                          WHERE latency > $10::float8 * (SELECT latency FROM websocket))::int8
                          AS slow_users
                 FROM capped
                GROUP BY implementation_type";
    let underruns = rules::MAX_BUFFER_UNDERRUNS_PER_SESSION as f64;
    let reconnections = rules::MAX_RECONNECTIONS_PER_SESSION as f64;
    let rows = db
        .query_rows(
            sql,
            &[
                ParameterValue::Int32(hours),
                ParameterValue::Int64(MAX_SESSIONS_PER_USER),
                ParameterValue::Floating64(rules::USER_CAP_FACTOR),
                ParameterValue::Floating64(rules::USER_CAP_FACTOR * underruns),
                ParameterValue::Floating64(rules::USER_CAP_FACTOR * reconnections),
                ParameterValue::Floating64(rules::WEBRTC_MIN_SUCCESS_RATE_PERCENT as f64),
                ParameterValue::Floating64(rules::MAX_ERROR_RATE_PERCENT as f64),
                ParameterValue::Floating64(underruns),
                ParameterValue::Floating64(reconnections),
                ParameterValue::Floating64(rules::MAX_WEBRTC_LATENCY_RATIO),
            ],
        )
        .await?;
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
        errors: db::column(row, "errors")?,
        error_sessions: db::column(row, "error_sessions")?,
        success_rate_percent: db::column(row, "success_rate_percent")?,
        error_rate_percent: db::column(row, "error_rate_percent")?,
        buffer_underruns_per_session: db::column(row, "buffer_underruns_per_session")?,
        reconnections_per_session: db::column(row, "reconnections_per_session")?,
        avg_latency_ms: db::column(row, "avg_latency_ms")?,
        p95_latency_ms: db::column(row, "p95_latency_ms")?,
        p99_latency_ms: db::column(row, "p99_latency_ms")?,
        users: UserCounts {
            reporting: db::column(row, "users")?,
            failed: db::column(row, "failed_users")?,
            erring: db::column(row, "erring_users")?,
            underrun: db::column(row, "underrun_users")?,
            reconnecting: db::column(row, "reconnecting_users")?,
            slow: db::column(row, "slow_users")?,
        },
    })
}
