//! The repository of `demo_voice_sessions`: one row per demo session, owned by the
//! student who created it. Changes to a session are conditional on its owner and on it
//! being active, so a race with a concurrent end cannot change an ended session.

use serde_json::Value;
use uuid::Uuid;

use super::model::{DemoSession, SessionStatus};
use crate::db::{self, Db, DbError, Row};

const COLUMNS: &str = "id, demo_activity_id, student_id, status, session_config, \
     openai_call_id, telemetry, (started_at AT TIME ZONE 'UTC') AS started_at, \
     (ended_at AT TIME ZONE 'UTC') AS ended_at";

fn from_row(row: &Row<'_>) -> Result<DemoSession, DbError> {
    let status: String = db::column(row, "status")?;
    Ok(DemoSession {
        id: db::column(row, "id")?,
        demo_activity_id: db::column(row, "demo_activity_id")?,
        student_id: db::column(row, "student_id")?,
        status: status
            .parse::<SessionStatus>()
            .map_err(|error| DbError::Other(format!("demo_voice_sessions.status: {error}")))?,
        session_config: db::column(row, "session_config")?,
        openai_call_id: db::column(row, "openai_call_id")?,
        telemetry: db::column(row, "telemetry")?,
        started_at: db::column(row, "started_at")?,
        ended_at: db::column(row, "ended_at")?,
    })
}

fn first(rows: &db::RowSet) -> Result<Option<DemoSession>, DbError> {
    rows.rows().next().map(|row| from_row(&row)).transpose()
}

/// Creates an active session of `student_id` on an activity, with its configuration.
pub async fn insert(
    db: &Db,
    demo_activity_id: Uuid,
    student_id: Uuid,
    session_config: &Value,
) -> Result<DemoSession, DbError> {
    let rows = db
        .query_one(
            &format!(
                "INSERT INTO demo_voice_sessions \
               (id, demo_activity_id, student_id, status, session_config, telemetry, started_at) \
             VALUES ($1, $2, $3, $4, $5, '{{}}'::jsonb, now()) \
             RETURNING {COLUMNS}"
            ),
            &[
                Uuid::new_v4().into(),
                demo_activity_id.into(),
                student_id.into(),
                db::text(SessionStatus::Active.as_str()),
                db::jsonb(session_config),
            ],
        )
        .await?;
    first(&rows)?.ok_or_else(|| DbError::Other("INSERT … RETURNING gave no row".into()))
}

/// A session by id, whoever owns it.
pub async fn find(db: &Db, id: Uuid) -> Result<Option<DemoSession>, DbError> {
    let rows = db
        .query_rows(
            &format!("SELECT {COLUMNS} FROM demo_voice_sessions WHERE id = $1"),
            &[id.into()],
        )
        .await?;
    first(&rows)
}

/// Records OpenAI's call id on an active session of `student_id`; `false` when the
/// session is no longer active.
pub async fn set_call_id(
    db: &Db,
    id: Uuid,
    student_id: Uuid,
    call_id: Option<&str>,
) -> Result<bool, DbError> {
    let changed = db
        .execute(
            "UPDATE demo_voice_sessions SET openai_call_id = $3, updated_at = now() \
         WHERE id = $1 AND student_id = $2 AND status = $4",
            &[
                id.into(),
                student_id.into(),
                call_id.map(str::to_string).into(),
                db::text(SessionStatus::Active.as_str()),
            ],
        )
        .await?;
    Ok(changed == 1)
}

/// Ends an active session of `student_id`, merging `telemetry` into what it holds
/// (key by key, the new value winning); `None` when it was not active.
pub async fn end(
    db: &Db,
    id: Uuid,
    student_id: Uuid,
    telemetry: &Value,
) -> Result<Option<DemoSession>, DbError> {
    let rows = db
        .query_rows(
            &format!(
                "UPDATE demo_voice_sessions \
             SET status = $3, ended_at = now(), updated_at = now(), \
                 telemetry = COALESCE(telemetry, '{{}}'::jsonb) || $4 \
             WHERE id = $1 AND student_id = $2 AND status = $5 \
             RETURNING {COLUMNS}"
            ),
            &[
                id.into(),
                student_id.into(),
                db::text(SessionStatus::Ended.as_str()),
                db::jsonb(telemetry),
                db::text(SessionStatus::Active.as_str()),
            ],
        )
        .await?;
    first(&rows)
}
