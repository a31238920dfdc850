//! The `realtime_token_sessions` repository: one row per minted token session.
//!
//! The `sessionId` a client gets with its token is a row's id; the row says who owns it
//! (`user_id`, or `client_key` for anonymous callers), which persona, language, model
//! and voice it was minted with, when, and how many times it was refreshed. Tokens
//! themselves are never stored.

use chrono::NaiveDateTime;
use uuid::Uuid;

use crate::db::{self, Db, DbError, Row};
use crate::error::ApiError;
use crate::personas::Persona;

/// A row of `realtime_token_sessions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSession {
    pub id: Uuid,
    /// `None` for anonymous (anon key) callers.
    pub user_id: Option<Uuid>,
    /// `user:<uuid>` or `ip:<addr>`: who may refresh it.
    pub client_key: String,
    pub persona: Persona,
    /// Canonical BCP 47 tag.
    pub language: String,
    pub model: String,
    pub voice: String,
    pub activity_id: Option<Uuid>,
    pub refresh_count: i32,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// UTC.
    pub last_refreshed_at: Option<NaiveDateTime>,
}

/// What a new row is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTokenSession<'a> {
    pub user_id: Option<Uuid>,
    pub client_key: &'a str,
    pub persona: Persona,
    pub language: &'a str,
    pub model: &'a str,
    pub voice: &'a str,
    pub activity_id: Option<Uuid>,
}

const COLUMNS: &str = "id, user_id, client_key, persona, language, model, voice, activity_id, \
                       refresh_count::int4 AS refresh_count, \
                       (created_at AT TIME ZONE 'UTC') AS created_at, \
                       (last_refreshed_at AT TIME ZONE 'UTC') AS last_refreshed_at";

impl TokenSession {
    fn from_row(row: &Row<'_>) -> Result<Self, DbError> {
        let persona: String = db::column(row, "persona")?;
        Ok(Self {
            id: db::column(row, "id")?,
            user_id: db::column(row, "user_id")?,
            client_key: db::column(row, "client_key")?,
            persona: persona.parse().map_err(|error| {
                DbError::Other(format!("realtime_token_sessions.persona: {error}"))
            })?,
            language: db::column(row, "language")?,
            model: db::column(row, "model")?,
            voice: db::column(row, "voice")?,
            activity_id: db::column(row, "activity_id")?,
            refresh_count: db::column(row, "refresh_count")?,
            created_at: db::column(row, "created_at")?,
            last_refreshed_at: db::column(row, "last_refreshed_at")?,
        })
    }
}

fn first(rows: db::RowSet) -> Result<Option<TokenSession>, ApiError> {
    Ok(rows
        .rows()
        .next()
        .map(|row| TokenSession::from_row(&row))
        .transpose()?)
}

/// Stores a new session and returns it, id and creation time included.
///
/// The statement commits asynchronously (`synchronous_commit` off for its own
/// transaction, so call it outside [`Db::transaction`]): waiting for the WAL flush cost
/// several milliseconds a token on a busy disk, more than everything else the function
/// does. What that risks is only this: if PostgreSQL crashes, the rows of the last
/// fraction of a second may be gone (whole rows, never half of one), and a refresh of
/// such a session gets `404`, after which the client mints a new token.
pub async fn insert(db: &Db, new: &NewTokenSession<'_>) -> Result<TokenSession, ApiError> {
    let rows = db
        .query_one(
            &format!(
                "INSERT INTO realtime_token_sessions \
                 (user_id, client_key, persona, language, model, voice, activity_id) \
             SELECT $1::uuid, $2::text, $3::text, $4::text, $5::text, $6::text, $7::uuid \
             FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit \
             RETURNING {COLUMNS}"
            ),
            &[
                new.user_id.into(),
                db::text(new.client_key),
                db::text(new.persona.as_str()),
                db::text(new.language),
                db::text(new.model),
                db::text(new.voice),
                new.activity_id.into(),
            ],
        )
        .await?;
    first(rows)?.ok_or_else(|| ApiError::internal("INSERT … RETURNING gave no row"))
}

/// The session with this id, if there is one.
pub async fn find(db: &Db, id: Uuid) -> Result<Option<TokenSession>, ApiError> {
    let rows = db
        .query_rows(
            &format!("SELECT {COLUMNS} FROM realtime_token_sessions WHERE id = $1"),
            &[id.into()],
        )
        .await?;
    first(rows)
}

/// Counts one refresh, atomically and only while the session has refreshes left and is
/// younger than `max_age_minutes` by the database's clock: `None` when a concurrent
/// refresh or the clock got there first.
pub async fn record_refresh(
    db: &Db,
    id: Uuid,
    max_refreshes: i32,
    max_age_minutes: i32,
) -> Result<Option<TokenSession>, ApiError> {
    let rows = db
        .query_rows(
            &format!(
                "UPDATE realtime_token_sessions \
             SET refresh_count = refresh_count + 1, last_refreshed_at = now() \
             WHERE id = $1 \
               AND refresh_count < $2::int4 \
               AND created_at > now() - make_interval(mins => $3::int4) \
             RETURNING {COLUMNS}"
            ),
            &[id.into(), max_refreshes.into(), max_age_minutes.into()],
        )
        .await?;
    first(rows)
}
