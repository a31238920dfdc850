//! Rate limits held in Postgres (`rate_limits`), so they hold across every instance.
//!
//! A fixed window per minute and per key (`mint:user:<uuid>`, `mint:ip:<addr>`,
//! `sdp:user:<uuid>`, …): one statement both counts the request and decides, an
//! `INSERT … ON CONFLICT … DO UPDATE … WHERE count < limit RETURNING count`, so that
//! concurrent requests can never get more than `limit` through in a window, and a
//! request that is refused writes nothing. The window's start comes from the
//! database's clock, the one clock every instance shares. Expired windows are swept by
//! the first request of each new window, a few hundred rows at a time, so no scheduler
//! is needed and the table stays as small as the set of keys active in a minute.

use uuid::Uuid;

use crate::db::{self, Db};
use crate::error::ApiError;

/// Length of a window in seconds.
pub const WINDOW_SECONDS: i64 = 60;

/// How many expired windows one sweep deletes at most.
const SWEEP_BATCH: i64 = 500;

/// The key of a caller for `action` (`mint`, `sdp`, `search`): the user when the caller
/// is one, else the client address Spin reports, else one shared bucket for callers
/// with neither (which is safer than no limit at all).
pub fn caller_key(action: &str, user_id: Option<Uuid>, client_ip: Option<&str>) -> String {
    match (user_id, client_ip) {
        (Some(user_id), _) => format!("{action}:user:{user_id}"),
        (None, Some(ip)) if !ip.is_empty() => format!("{action}:ip:{ip}"),
        (None, _) => format!("{action}:ip:unknown"),
    }
}

/// What one counted request learned about its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    /// The request's position in the window; `None` when it was over the limit and so
    /// not counted.
    pub count: Option<i64>,
    /// Seconds left in the window, by the database's clock.
    pub seconds_left: i64,
}

impl WindowCount {
    /// `Ok` when the request is within the limit; `429` with `Retry-After` (the rest of
    /// the window, at least one second) otherwise.
    pub fn verdict(self, limit_per_minute: i64) -> Result<(), ApiError> {
        match self.count {
            Some(count) if count <= limit_per_minute => Ok(()),
            _ => Err(ApiError::RateLimited {
                retry_after: self.seconds_left.clamp(1, WINDOW_SECONDS) as u64,
                message: format!(
                    "Rate limit exceeded: at most {limit_per_minute} requests a minute"
                ),
            }),
        }
    }

    /// Whether this request opened its window (and should sweep expired ones).
    fn opened_window(self) -> bool {
        self.count == Some(1)
    }
}

/// Counts a request against `bucket_key`, allowing `limit_per_minute` a minute: `Ok`
/// within the limit, `429 rate_limited` with `Retry-After` over it.
pub fn enforce(db: &Db, bucket_key: &str, limit_per_minute: i64) -> Result<(), ApiError> {
    let window = count_request(db, bucket_key, limit_per_minute)?;
    if window.opened_window() {
        sweep_expired(db);
    }
    window.verdict(limit_per_minute)
}

/// The counting statement. The `WHERE` on the conflict branch leaves a full window
/// untouched and returns no row, which is how "over the limit" comes back.
fn count_request(
    db: &Db,
    bucket_key: &str,
    limit_per_minute: i64,
) -> Result<WindowCount, ApiError> {
    let rows = db.query_one(
        "WITH counted AS ( \
             INSERT INTO rate_limits AS r (bucket_key, window_start, count) \
             VALUES ($1, date_trunc('minute', now()), 1) \
             ON CONFLICT (bucket_key, window_start) \
             DO UPDATE SET count = r.count + 1 WHERE r.count < $2::int8 \
             RETURNING r.count \
         ) \
         SELECT (SELECT count FROM counted)::int8 AS count, \
                ceil(extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now()))::int8 \
                    AS seconds_left",
        &[db::text(bucket_key), limit_per_minute.into()],
    )?;
    let row = rows
        .rows()
        .next()
        .ok_or_else(|| ApiError::internal("rate limit statement returned no row"))?;
    Ok(WindowCount {
        count: db::column(&row, "count")?,
        seconds_left: db::column(&row, "seconds_left")?,
    })
}

/// Deletes windows that ended before the previous minute. Locked rows are skipped, so
/// concurrent sweeps never wait on each other; a failure only delays the cleanup, so it
/// is logged and the request goes on.
fn sweep_expired(db: &Db) {
    let swept = db.execute(
        "DELETE FROM rate_limits WHERE ctid = ANY(ARRAY( \
             SELECT ctid FROM rate_limits \
             WHERE window_start < date_trunc('minute', now()) - interval '1 minute' \
             LIMIT $1::int8 FOR UPDATE SKIP LOCKED))",
        &[SWEEP_BATCH.into()],
    );
    if let Err(error) = swept {
        eprintln!(
            "ratelimit: sweeping expired windows failed: {}",
            crate::http::redact(&error.to_string())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_keyed_by_id_and_anonymous_callers_by_address() {
        let user = Uuid::parse_str("6f1c1a52-5d0b-4b7e-9a51-3f8f7f0f2a10").unwrap();
        assert_eq!(
            caller_key("mint", Some(user), Some("10.0.0.1")),
            "mint:user:6f1c1a52-5d0b-4b7e-9a51-3f8f7f0f2a10"
        );
        assert_eq!(
            caller_key("mint", None, Some("10.0.0.1")),
            "mint:ip:10.0.0.1"
        );
        assert_eq!(caller_key("sdp", None, Some("::1")), "sdp:ip:::1");
        assert_eq!(caller_key("mint", None, None), "mint:ip:unknown");
        assert_eq!(caller_key("mint", None, Some("")), "mint:ip:unknown");
    }

    #[test]
    fn requests_up_to_the_limit_pass() {
        for count in [1, 59, 60] {
            let window = WindowCount {
                count: Some(count),
                seconds_left: 30,
            };
            assert!(window.verdict(60).is_ok(), "count {count}");
        }
    }

    #[test]
    fn a_request_over_the_limit_is_429_with_the_rest_of_the_window_as_retry_after() {
        let refused = WindowCount {
            count: None,
            seconds_left: 17,
        }
        .verdict(60)
        .unwrap_err();
        assert_eq!(refused.status(), 429);
        assert_eq!(refused.code(), "rate_limited");
        assert_eq!(
            refused.headers(),
            vec![("retry-after".to_string(), "17".to_string())]
        );
        assert!(refused.body()["message"].as_str().unwrap().contains("60"));
        // A lower limit than the stored count (the limit was lowered mid-window).
        let lowered = WindowCount {
            count: Some(61),
            seconds_left: 5,
        }
        .verdict(60);
        assert!(lowered.is_err());
    }

    #[test]
    fn retry_after_is_always_between_one_second_and_a_window() {
        for (left, expected) in [(0, "1"), (-3, "1"), (1, "1"), (60, "60"), (61, "60")] {
            let refused = WindowCount {
                count: None,
                seconds_left: left,
            }
            .verdict(1)
            .unwrap_err();
            assert_eq!(refused.headers()[0].1, expected, "seconds left {left}");
        }
    }

    #[test]
    fn only_the_first_request_of_a_window_sweeps() {
        assert!(
            WindowCount {
                count: Some(1),
                seconds_left: 59
            }
            .opened_window()
        );
        assert!(
            !WindowCount {
                count: Some(2),
                seconds_left: 59
            }
            .opened_window()
        );
        assert!(
            !WindowCount {
                count: None,
                seconds_left: 59
            }
            .opened_window()
        );
    }
}
