//! The `search_cache` repository (`sql/migrations/0007_search_cache.sql`): answers by
//! cache key, with their age measured by the database's clock, the one clock every
//! instance shares.
//!
//! An answer is [`FRESH_SECONDS`] old at most to be served instead of asking OpenAI,
//! and [`STALE_SECONDS`] old at most to be served when OpenAI fails; older rows are
//! expired and [`delete_expired`] removes them, a batch at a time, when a new answer is
//! written, so no scheduler is needed and the table holds about a day of distinct
//! queries.

use chrono::NaiveDateTime;
use serde_json::Value;

use crate::db::{self, Db, ParameterValue};
use crate::error::ApiError;

use super::openai::Citation;

/// How old an answer may be to be served without asking OpenAI (10 minutes).
pub const FRESH_SECONDS: i64 = 10 * 60;
/// How old an answer may be to be served when OpenAI fails (24 hours).
pub const STALE_SECONDS: i64 = 24 * 60 * 60;
/// How many expired rows one write deletes at most.
const EXPIRY_BATCH: i64 = 200;

/// A cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAnswer {
    pub answer: String,
    /// Every distinct citation of the answer, as OpenAI gave them.
    pub citations: Vec<Citation>,
    /// When it was stored (UTC).
    pub created_at: NaiveDateTime,
    /// How old it is, in whole seconds, by the database's clock.
    pub age_seconds: i64,
}

/// An answer to store.
#[derive(Debug, Clone, Copy)]
pub struct NewCachedAnswer<'a> {
    pub cache_key: &'a str,
    pub normalized_query: &'a str,
    /// The canonical tag, or `None` when the request named no locale.
    pub locale: Option<&'a str>,
    pub answer: &'a str,
    pub citations: &'a [Citation],
}

/// The answer stored under `cache_key`, if it is at most `max_age_seconds` old.
pub async fn find_younger_than(
    db: &Db,
    cache_key: &str,
    max_age_seconds: i64,
) -> Result<Option<CachedAnswer>, ApiError> {
    let rows = db
        .query_rows(
            "SELECT answer, citations, (created_at AT TIME ZONE 'UTC') AS created_at, \
                floor(extract(epoch FROM now() - created_at))::int8 AS age_seconds \
         FROM search_cache \
         WHERE cache_key = $1 \
           AND created_at >= now() - make_interval(secs => $2::int8::float8)",
            &[db::text(cache_key), max_age_seconds.into()],
        )
        .await?;
    let Some(row) = rows.rows().next() else {
        return Ok(None);
    };
    let citations: Value = db::column(&row, "citations")?;
    let citations: Vec<Citation> = serde_json::from_value(citations).map_err(|error| {
        ApiError::internal(format!(
            "search_cache.citations has an unexpected shape: {error}"
        ))
    })?;
    Ok(Some(CachedAnswer {
        answer: db::column(&row, "answer")?,
        citations,
        created_at: db::column(&row, "created_at")?,
        age_seconds: db::column::<i64>(&row, "age_seconds")?.max(0),
    }))
}

/// Stores an answer under its key, replacing what was there, as of now.
pub async fn store(db: &Db, entry: &NewCachedAnswer<'_>) -> Result<(), ApiError> {
    let citations = serde_json::to_value(entry.citations)
        .map_err(|error| ApiError::internal(format!("citations do not serialise: {error}")))?;
    db.execute(
        "INSERT INTO search_cache (cache_key, normalized_query, locale, answer, citations, created_at) \
         VALUES ($1, $2, $3, $4, $5, now()) \
         ON CONFLICT (cache_key) DO UPDATE SET \
             normalized_query = EXCLUDED.normalized_query, \
             locale = EXCLUDED.locale, \
             answer = EXCLUDED.answer, \
             citations = EXCLUDED.citations, \
             created_at = EXCLUDED.created_at",
        &[
            db::text(entry.cache_key),
            db::text(entry.normalized_query),
            entry.locale.map_or(ParameterValue::DbNull, db::text),
            db::text(entry.answer),
            db::jsonb(&citations),
        ],
    ).await?;
    Ok(())
}

/// Deletes answers older than [`STALE_SECONDS`], at most a batch of them, skipping rows
/// another request holds; returns how many went.
pub async fn delete_expired(db: &Db) -> Result<u64, ApiError> {
    let deleted = db
        .execute(
            "DELETE FROM search_cache WHERE cache_key IN ( \
             SELECT cache_key FROM search_cache \
             WHERE created_at < now() - make_interval(secs => $1::int8::float8) \
             ORDER BY created_at \
             LIMIT $2::int8 \
             FOR UPDATE SKIP LOCKED)",
            &[STALE_SECONDS.into(), EXPIRY_BATCH.into()],
        )
        .await?;
    Ok(deleted)
}
