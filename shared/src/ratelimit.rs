//! Rate limits held in Postgres (`rate_limits`), so they hold across every instance.
//!
//! A fixed window per minute and per key (`mint:user:<uuid>`, `mint:ip:<IPv4>`,
//! `mint:ip6:<IPv6 /64>`, `mint:anon`, `metrics:user:<uuid>`, …): one statement both
//! counts the request and decides, an `INSERT … ON CONFLICT … DO UPDATE … WHERE count <
//! limit RETURNING count`, so that concurrent requests can never get more than `limit`
//! through in a window, and a request over a limit writes nothing. The window's start
//! comes from the database's clock, the one clock every instance shares. Expired
//! windows are swept by the first request of each new window, a few hundred rows at a
//! time, after its response has gone out ([`Incoming::after_response`]), so no
//! scheduler is needed, no caller waits for it, and the table stays as small as the set
//! of keys active in a minute.
//!
//! **Nothing is counted for a refused request.** A function checks input, auth and
//! configuration first, and counts last, right before the work the limit protects;
//! where a request counts against several limits (an anonymous caller's own and the
//! global anonymous ceiling), or where the work after counting can still be refused
//! (a session that is not the caller's), the counts and the work share one transaction
//! ([`within_limits`]), so a refusal rolls the counts back too.
//!
//! **Who a caller is** is decided in one place, [`RateCaller`]: a signed-in user by
//! their id; the anon key and anonymous sign-ins (`is_anonymous: true`, which anyone can
//! mint at will) by client address and inside the ceiling over all anonymous callers.
//!
//! **The demo relay counts through a function.** Its role holds no privilege on
//! `rate_limits`; it may only `EXECUTE` `public.demo_rate_limit_hit(key, limit)`, a
//! `SECURITY DEFINER` function that counts in the demo's own table, `rate_limits_demo`,
//! under a `demo:` prefix, and only keys of the shapes [`RateCaller::key`] and
//! [`anon_ceiling_key`] make ([`Counter::DemoFunction`]): the demo system can neither
//! read production keys (user ids, client addresses) nor reset or exhaust anyone
//! else's counter, nor slow production's counting by filling its table.

use std::net::IpAddr;

use uuid::Uuid;

use crate::auth::Claims;
use crate::client_addr::{self, TrustedProxies};
use crate::config::{self, ConfigError, Variables};
use crate::db::{self, Db};
use crate::error::ApiError;
use crate::http::Incoming;
use crate::log::Level;

/// Length of a window in seconds.
pub const WINDOW_SECONDS: i64 = 60;

/// How many expired windows one sweep deletes at most.
const SWEEP_BATCH: i64 = 500;

/// The key of a caller for `action` (`mint`, `sdp`, `search`): the user when the caller
/// is one, else the client's address (IPv4, or the IPv6 /64), else one shared bucket
/// for callers with neither (which is safer than no limit at all). Functions key their
/// callers through [`RateCaller`], which decides who is a user.
pub fn caller_key(action: &str, user_id: Option<Uuid>, client: Option<IpAddr>) -> String {
    match (user_id, client) {
        (Some(user_id), _) => format!("{action}:user:{user_id}"),
        (None, Some(address)) => format!("{action}:{}", client_addr::rate_key(address)),
        (None, None) => format!("{action}:ip:unknown"),
    }
}

/// The key of the ceiling over all anonymous callers of `action` together.
pub fn anon_ceiling_key(action: &str) -> String {
    format!("{action}:anon")
}

/// Who a request counts as, for every rate limit of every function: the one place
/// that decides it.
///
/// A signed-in user is a [`RateCaller::User`]. Everyone else is
/// [`RateCaller::Anonymous`], keyed by client address (IPv4, or IPv6 /64) and inside
/// the global anonymous ceiling: the anon key, a token without a user id, and an
/// **anonymous sign-in** (`is_anonymous: true`, from supabase-js's
/// `signInAnonymously`), since anyone can mint such users at will and per-user limits
/// would then multiply with them. Only the limits see an anonymous sign-in this way: it
/// still owns what it creates as the user it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateCaller {
    User(Uuid),
    Anonymous(Option<IpAddr>),
}

impl RateCaller {
    /// The caller of a verified token coming from `client`.
    pub fn of(claims: &Claims, client: Option<IpAddr>) -> Self {
        match claims.user_id() {
            Some(user_id) if !claims.is_anonymous => RateCaller::User(user_id),
            _ => RateCaller::Anonymous(client),
        }
    }

    pub fn is_anonymous(self) -> bool {
        matches!(self, RateCaller::Anonymous(_))
    }

    /// The caller's own key for `action`.
    pub fn key(self, action: &str) -> String {
        match self {
            RateCaller::User(user_id) => caller_key(action, Some(user_id), None),
            RateCaller::Anonymous(client) => caller_key(action, None, client),
        }
    }

    /// The limits a request for `action` counts against: the caller's own, at
    /// `per_minute`, and for an anonymous caller also the ceiling over every anonymous
    /// caller of `action`, at `anon_per_minute`. Count them together
    /// ([`within_limits`]): both or neither.
    pub fn limits(self, action: &str, per_minute: i64, anon_per_minute: i64) -> Vec<Limit> {
        let own = Limit::new(self.key(action), per_minute);
        if self.is_anonymous() {
            vec![own, Limit::new(anon_ceiling_key(action), anon_per_minute)]
        } else {
            vec![own]
        }
    }
}

/// The limits a function reads from its variables: `rate_limit_per_minute` per caller,
/// `anon_rate_limit_per_minute` over all anonymous callers together, and the
/// `trusted_proxies` whose `X-Forwarded-For` names an anonymous caller's address.
#[derive(Debug, Clone)]
pub struct CallerLimits {
    pub per_minute: i64,
    pub anon_per_minute: i64,
    pub trusted_proxies: TrustedProxies,
}

impl CallerLimits {
    pub fn load(vars: &impl Variables) -> Result<Self, ConfigError> {
        Ok(Self {
            per_minute: config::ranged(
                vars,
                config::RATE_LIMIT_PER_MINUTE,
                config::DEFAULT_RATE_LIMIT_PER_MINUTE,
                1,
                1_000_000,
            )?,
            anon_per_minute: config::ranged(
                vars,
                config::ANON_RATE_LIMIT_PER_MINUTE,
                config::DEFAULT_ANON_RATE_LIMIT_PER_MINUTE,
                1,
                10_000_000,
            )?,
            trusted_proxies: TrustedProxies::load(vars)?,
        })
    }

    /// Who the request's caller counts as.
    pub fn caller(&self, incoming: &Incoming, claims: &Claims) -> RateCaller {
        RateCaller::of(claims, incoming.client_addr(&self.trusted_proxies))
    }

    /// The limits of the request's caller for `action` ([`RateCaller::limits`]).
    pub fn for_request(&self, incoming: &Incoming, claims: &Claims, action: &str) -> Vec<Limit> {
        self.caller(incoming, claims)
            .limits(action, self.per_minute, self.anon_per_minute)
    }
}

/// One limit a request counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub key: String,
    pub per_minute: i64,
}

impl Limit {
    pub fn new(key: impl Into<String>, per_minute: i64) -> Self {
        Self {
            key: key.into(),
            per_minute,
        }
    }
}

/// How a request is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// The `rate_limits` table itself (every function but the demo relay).
    Table,
    /// `public.demo_rate_limit_hit`, the demo relay's only way to its counters.
    DemoFunction,
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
/// within the limit, `429 rate_limited` with `Retry-After` over it (and then nothing
/// was written).
pub async fn enforce(
    db: &Db,
    incoming: &Incoming,
    counter: Counter,
    bucket_key: &str,
    limit_per_minute: i64,
) -> Result<(), ApiError> {
    let window = count_request(db, counter, bucket_key, limit_per_minute).await?;
    if window.opened_window() && counter == Counter::Table {
        sweep_expired(db, incoming);
    }
    window.verdict(limit_per_minute)
}

/// Counts a request against every limit and runs `work`, all in one transaction: over
/// any limit (`429`), or refused by `work`, and nothing is kept, counts included.
/// `work` runs inside the transaction, so it must be short and must not call out.
pub async fn within_limits<T>(
    db: &Db,
    incoming: &Incoming,
    counter: Counter,
    limits: &[Limit],
    work: impl AsyncFnOnce(&Db) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut opened = false;
    let done = db
        .transaction(async |tx| {
            for limit in limits {
                let window = count_request(tx, counter, &limit.key, limit.per_minute).await?;
                opened |= window.opened_window();
                window.verdict(limit.per_minute)?;
            }
            work(tx).await
        })
        .await?;
    if opened && counter == Counter::Table {
        sweep_expired(db, incoming);
    }
    Ok(done)
}

/// The counting statement. The `WHERE` on the conflict branch leaves a full window
/// untouched and returns no row, which is how "over the limit" comes back.
async fn count_request(
    db: &Db,
    counter: Counter,
    bucket_key: &str,
    limit_per_minute: i64,
) -> Result<WindowCount, ApiError> {
    let sql = match counter {
        Counter::Table => {
            "WITH counted AS ( \
                 INSERT INTO rate_limits AS r (bucket_key, window_start, count) \
                 VALUES ($1, date_trunc('minute', now()), 1) \
                 ON CONFLICT (bucket_key, window_start) \
                 DO UPDATE SET count = r.count + 1 WHERE r.count < $2::int8 \
                 RETURNING r.count \
             ) \
             SELECT (SELECT count FROM counted)::int8 AS count, \
                    ceil(extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now()))::int8 \
                        AS seconds_left"
        }
        // A function returning one row whatever happens (rule 3 of `db`).
        Counter::DemoFunction => {
            "SELECT hit.count, hit.seconds_left FROM public.demo_rate_limit_hit($1, $2::int8) AS hit"
        }
    };
    let rows = db
        .query_one(sql, &[db::text(bucket_key), limit_per_minute.into()])
        .await?;
    let row = rows
        .rows()
        .next()
        .ok_or_else(|| ApiError::internal("rate limit statement returned no row"))?;
    Ok(WindowCount {
        count: db::column(&row, "count")?,
        seconds_left: db::column(&row, "seconds_left")?,
    })
}

/// Schedules the deletion of windows that ended before the previous minute for after
/// the response ([`Incoming::after_response`]): the caller does not wait for it. Locked
/// rows are skipped, so concurrent sweeps never wait on each other; a failure only
/// delays the cleanup, so it is logged and nothing else happens.
fn sweep_expired(db: &Db, incoming: &Incoming) {
    // The first request of a window also lets the retention sweeps run where there is
    // no pg_cron (at most once a minute, whoever calls: `retention`).
    crate::retention::sweep_if_due(db, incoming);
    let db = db.share();
    let function = incoming.function();
    let request_id = incoming.request_id().to_string();
    incoming.after_response(async move {
        let swept = db
            .execute(
                "DELETE FROM rate_limits WHERE ctid = ANY(ARRAY( \
                 SELECT ctid FROM rate_limits \
                 WHERE window_start < date_trunc('minute', now()) - interval '1 minute' \
                 LIMIT $1::int8 FOR UPDATE SKIP LOCKED))",
                &[SWEEP_BATCH.into()],
            )
            .await;
        if let Err(error) = swept {
            crate::log::event(
                Level::Warn,
                function,
                Some(&request_id),
                "rate_limit_sweep_failed",
                &error.to_string(),
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_keyed_by_id_and_anonymous_callers_by_address() {
        let user = Uuid::parse_str("6f1c1a52-5d0b-4b7e-9a51-3f8f7f0f2a10").unwrap();
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            caller_key("mint", Some(user), Some(v4)),
            "mint:user:6f1c1a52-5d0b-4b7e-9a51-3f8f7f0f2a10"
        );
        assert_eq!(caller_key("mint", None, Some(v4)), "mint:ip:10.0.0.1");
        assert_eq!(
            caller_key("sdp", None, Some("2001:db8::1".parse().unwrap())),
            "sdp:ip6:2001:db8::/64"
        );
        assert_eq!(caller_key("mint", None, None), "mint:ip:unknown");
    }

    #[test]
    fn anonymous_sign_ins_count_as_anonymous_callers_by_address_inside_the_ceiling() {
        let user = Uuid::parse_str("6f1c1a52-5d0b-4b7e-9a51-3f8f7f0f2a10").unwrap();
        let v6: IpAddr = "2001:db8:1:2::7".parse().unwrap();
        let signed_in = Claims {
            sub: Some(user.to_string()),
            role: Some("authenticated".into()),
            ..Claims::default()
        };
        let anonymous = Claims {
            is_anonymous: true,
            ..signed_in.clone()
        };
        let anon_key = Claims {
            role: Some("anon".into()),
            ..Claims::default()
        };
        assert_eq!(RateCaller::of(&signed_in, Some(v6)), RateCaller::User(user));
        assert_eq!(
            RateCaller::of(&signed_in, Some(v6)).limits("search", 60, 600),
            [Limit::new(format!("search:user:{user}"), 60)]
        );
        for claims in [&anonymous, &anon_key] {
            let caller = RateCaller::of(claims, Some(v6));
            assert_eq!(caller, RateCaller::Anonymous(Some(v6)));
            assert_eq!(
                caller.limits("sdp", 60, 600),
                [
                    Limit::new("sdp:ip6:2001:db8:1:2::/64", 60),
                    Limit::new("sdp:anon", 600)
                ]
            );
        }
        assert_eq!(
            RateCaller::of(&anonymous, None).key("mint"),
            "mint:ip:unknown"
        );
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
