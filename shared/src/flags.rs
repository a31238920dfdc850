//! The rollout flags (`voice_feature_flags`): the repository, and who a flag enrols.
//!
//! A user is enrolled in a flag's rollout when the flag is enabled and their bucket
//! ([`crate::bucket::bucket_for_user`]) is below its `rollout_percentage`, so raising the
//! percentage only ever adds users and a user's answer never flips back and forth.
//! SQL for the table lives here and nowhere else.

use chrono::NaiveDateTime;
use uuid::Uuid;

use crate::db::{self, Db, DbError, Row};
use crate::error::ApiError;

/// The WebRTC migration flag of the migration guide.
pub const VOICE_WEBRTC_MIGRATION: &str = "voice_webrtc_migration";

/// One row of `voice_feature_flags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureFlag {
    pub flag_name: String,
    pub enabled: bool,
    /// 0–100 (a check constraint holds it there).
    pub rollout_percentage: i32,
    /// UTC.
    pub updated_at: NaiveDateTime,
    /// Who last changed it, when a signed-in user did.
    pub updated_by: Option<Uuid>,
}

impl FeatureFlag {
    /// Whether a user in `bucket` (0–99) is enrolled: enabled and bucket below the percentage.
    pub fn enrolls(&self, bucket: u8) -> bool {
        self.enabled && i32::from(bucket) < self.rollout_percentage
    }

    fn from_row(row: &Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            flag_name: db::column(row, "flag_name")?,
            enabled: db::column(row, "enabled")?,
            rollout_percentage: db::column(row, "rollout_percentage")?,
            updated_at: db::column(row, "updated_at")?,
            updated_by: db::column(row, "updated_by")?,
        })
    }
}

const COLUMNS: &str = "flag_name, enabled, rollout_percentage::int4 AS rollout_percentage, \
                       (updated_at AT TIME ZONE 'UTC') AS updated_at, updated_by";

/// The flag named `name`, or `None` when there is no such row.
pub async fn find(db: &Db, name: &str) -> Result<Option<FeatureFlag>, ApiError> {
    let rows = db
        .query_rows(
            &format!("SELECT {COLUMNS} FROM voice_feature_flags WHERE flag_name = $1"),
            &[db::text(name)],
        )
        .await?;
    Ok(rows
        .rows()
        .next()
        .map(|row| FeatureFlag::from_row(&row))
        .transpose()?)
}

/// The flag named `name`. The migrations create every flag the code names, so a missing
/// row is a deployment fault (`500`), not a caller's mistake.
pub async fn get(db: &Db, name: &str) -> Result<FeatureFlag, ApiError> {
    find(db, name).await?.ok_or_else(|| {
        ApiError::internal(format!(
            "feature flag `{name}` has no row; apply the migrations"
        ))
    })
}

/// Sets a flag's state and returns the new row; `404` when the flag does not exist,
/// `400` for a percentage outside 0–100. Call it inside the transaction that writes
/// the matching audit row.
pub async fn set(
    db: &Db,
    name: &str,
    enabled: bool,
    percentage: i32,
    updated_by: Option<Uuid>,
) -> Result<FeatureFlag, ApiError> {
    if !(0..=100).contains(&percentage) {
        return Err(ApiError::bad_field(
            "percentage",
            "`percentage` must be between 0 and 100",
        ));
    }
    let rows = db
        .query_rows(
            &format!(
                "UPDATE voice_feature_flags \
             SET enabled = $2, rollout_percentage = $3::int4, updated_at = now(), updated_by = $4 \
             WHERE flag_name = $1 \
             RETURNING {COLUMNS}"
            ),
            &[
                db::text(name),
                enabled.into(),
                percentage.into(),
                updated_by.into(),
            ],
        )
        .await?;
    let row = rows
        .rows()
        .next()
        .ok_or_else(|| ApiError::not_found(format!("No feature flag named `{name}`")))?;
    Ok(FeatureFlag::from_row(&row)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(enabled: bool, rollout_percentage: i32) -> FeatureFlag {
        FeatureFlag {
            flag_name: VOICE_WEBRTC_MIGRATION.into(),
            enabled,
            rollout_percentage,
            updated_at: NaiveDateTime::default(),
            updated_by: None,
        }
    }

    #[test]
    fn a_disabled_flag_enrols_nobody_whatever_the_percentage() {
        let disabled = flag(false, 100);
        assert!((0..100).all(|bucket| !disabled.enrolls(bucket)));
    }

    #[test]
    fn an_enabled_flag_enrols_exactly_the_buckets_below_the_percentage() {
        for percentage in [0, 1, 10, 50, 99, 100] {
            let enabled = flag(true, percentage);
            let enrolled = (0..100u8).filter(|bucket| enabled.enrolls(*bucket)).count();
            assert_eq!(enrolled as i32, percentage);
            assert_eq!(enabled.enrolls(0), percentage > 0);
            assert!(!enabled.enrolls(99) || percentage == 100);
        }
    }

    #[test]
    fn raising_the_percentage_never_drops_an_enrolled_bucket() {
        let steps = [0, 10, 50, 100];
        for pair in steps.windows(2) {
            let (before, after) = (flag(true, pair[0]), flag(true, pair[1]));
            for bucket in 0..100u8 {
                assert!(
                    !before.enrolls(bucket) || after.enrolls(bucket),
                    "bucket {bucket}"
                );
            }
        }
    }
}
