//! The wall clock, read once per request by each function's adapter and passed into the
//! pure code. A clock that cannot be read is an error (`500`), never "now is 0": with
//! a zero clock every token would look unexpired and every timestamp ancient.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::ApiError;

/// Seconds since the Unix epoch, or an internal error when the clock is before it.
pub fn now_unix() -> Result<i64, ApiError> {
    unix_seconds(SystemTime::now())
}

/// `at` as seconds since the Unix epoch; an error for a time before it or beyond `i64`.
pub fn unix_seconds(at: SystemTime) -> Result<i64, ApiError> {
    at.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|elapsed| i64::try_from(elapsed.as_secs()).ok())
        .filter(|seconds| *seconds > 0)
        .ok_or_else(|| ApiError::internal("the clock could not be read (before 1970)"))
}

/// Now as a UTC date-time, or an internal error when the clock cannot be read.
pub fn now_utc() -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    chrono::DateTime::from_timestamp(now_unix()?, 0)
        .ok_or_else(|| ApiError::internal("the clock is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_clock_before_the_epoch_is_an_error_not_zero() {
        let before = UNIX_EPOCH - Duration::from_secs(5);
        let error = unix_seconds(before).unwrap_err();
        assert_eq!(error.status(), 500);
        assert!(unix_seconds(UNIX_EPOCH).is_err());
        assert_eq!(
            unix_seconds(UNIX_EPOCH + Duration::from_secs(1_700_000_000)).unwrap(),
            1_700_000_000
        );
        assert!(now_unix().unwrap() > 1_700_000_000);
    }
}
