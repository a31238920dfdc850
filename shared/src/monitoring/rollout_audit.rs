//! Repository of `voice_rollout_audit`: who changed the rollout flag, from what to
//! what, why, and whether they forced it past red flags. Written in the same
//! transaction as the flag change, so there is never a change without its row.

use serde_json::Value;
use uuid::Uuid;

use super::rollout::FlagState;
use crate::db::{self, Db, ParameterValue};
use crate::error::ApiError;

/// One audit row to write.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry<'a> {
    pub flag_name: &'a str,
    /// The admin's user id; `None` for a `service_role` token without a `sub`.
    pub actor_id: Option<Uuid>,
    /// `admin` or `service_role`.
    pub actor_role: &'a str,
    pub from: FlagState,
    pub to: FlagState,
    pub reason: &'a str,
    pub forced: bool,
    /// The red flags standing when the change was made (a JSON array; empty when none
    /// were computed, as for a rollback).
    pub red_flags: &'a Value,
}

/// The written row's identity.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAudit {
    pub id: Uuid,
    pub created_at: chrono::NaiveDateTime,
}

/// Makes concurrent rollout changes take turns until the end of the current
/// transaction, so each one reads the state the previous one left and its audit row's
/// "from" is true. An advisory lock rather than a row lock: the flag row belongs to the
/// flags module, and the lock must also cover the red-flag check.
pub async fn lock_rollout_changes(db: &Db) -> Result<(), ApiError> {
    db.execute(
        "SELECT pg_advisory_xact_lock(hashtext('voice_rollout_audit'))",
        &[],
    )
    .await?;
    Ok(())
}

/// Writes one audit row.
pub async fn insert(db: &Db, entry: &AuditEntry<'_>) -> Result<StoredAudit, ApiError> {
    let sql = "INSERT INTO voice_rollout_audit (
                   flag_name, actor_id, actor_role, from_enabled, from_percentage,
                   to_enabled, to_percentage, reason, forced, red_flags)
               VALUES ($1, $2, $3, $4, $5::int8, $6, $7::int8, $8, $9, $10)
               RETURNING id, (created_at AT TIME ZONE 'UTC') AS created_at";
    let params = [
        db::text(entry.flag_name),
        entry.actor_id.into(),
        db::text(entry.actor_role),
        ParameterValue::Boolean(entry.from.enabled),
        ParameterValue::Int64(entry.from.rollout_percentage),
        ParameterValue::Boolean(entry.to.enabled),
        ParameterValue::Int64(entry.to.rollout_percentage),
        db::text(entry.reason),
        ParameterValue::Boolean(entry.forced),
        db::jsonb(entry.red_flags),
    ];
    let rows = db
        .query_one(sql, &params)
        .await
        .map_err(super::unknown_user_is_forbidden)?;
    let row = rows
        .rows()
        .next()
        .ok_or_else(|| ApiError::internal("INSERT … RETURNING gave no row"))?;
    Ok(StoredAudit {
        id: db::column(&row, "id")?,
        created_at: db::column(&row, "created_at")?,
    })
}
