//! The migration guide's rollback rules as code: per-implementation statistics, the red
//! flags with their thresholds, and the recommendation the dashboard shows.
//!
//! The statistics are aggregated in SQL (see [`super::session_metrics`] and
//! [`super::session_errors`]); this module only turns totals into rates and compares
//! them with the thresholds. Comparisons are made on the integer totals by
//! cross-multiplying (`successful × 100 < 90 × sessions`), so a window that sits exactly
//! on a threshold is judged exactly, never by a rounding error.
//!
//! Definitions:
//! - **Session**: a row of `voice_session_metrics` created in the window (one report per
//!   voice session, successful or not).
//! - **Success rate**: the share of sessions with `connection_success = true`.
//! - **Error rate**: the sessions with an error reported in `voice_session_errors` in
//!   the window for an implementation (distinct user and `session_id`; a user's
//!   reports without a session id count as one session), per session of that
//!   implementation in the same window, as a percentage. Not the share of failed
//!   connections: the guide lists "error rate > 5 % in any implementation" beside, and
//!   separately from, "WebRTC success rate < 90 %", and says that *all* client errors
//!   are logged to `voice_session_errors`; counting failed connections again would make
//!   the third rule a weaker copy of the first and ignore every error that happens after
//!   a connection is up (dropped data channels, audio decode failures). Errors of one
//!   session count once however often they are posted.
//! - **Latency**: statistics over the sessions' `avg_latency_ms`, counting only sessions
//!   that connected (a session that never connected measured no latency, and the zero it
//!   reports would pull the numbers down). The 2× rule compares the **average** of those
//!   values, which is the dashboard's headline number in the guide ("Average latency")
//!   and the quantity of its success criterion ("WebRTC latency ≤ WebSocket latency +
//!   100 ms"). A p95 over a few dozen sessions is set by the slowest one or two of them,
//!   so one bad network would trip a p95-based rule on its own.
//! - **Underruns / reconnections per session**: the totals divided by the sessions.
//!
//! **No single user makes a red flag stand, or hides one.** Each user counts once per
//! session (one metrics row per user and session id), with at most their 50 most
//! recent sessions of an implementation in a window, and a red flag stands only when
//! at least [`MIN_USERS_FOR_RED_FLAG`] distinct users reported what it measures: a
//! failed connection, an error, an underrun, a reconnection, a WebRTC latency above
//! the ratio times WebSocket's average. Reports are bounded too (`ingest`), and every
//! report counts against the reporter's rate limit.

use serde::Serialize;

use super::ingest::ImplementationType;

/// Rule 1: WebRTC's success rate must be at least this (percent).
pub const WEBRTC_MIN_SUCCESS_RATE_PERCENT: i64 = 90;
/// Rule 2: WebRTC's average latency must be at most this multiple of WebSocket's.
pub const MAX_WEBRTC_LATENCY_RATIO: f64 = 2.0;
/// Rule 3: either implementation's error rate must be at most this (percent).
pub const MAX_ERROR_RATE_PERCENT: i64 = 5;
/// Rule 4: buffer underruns per session must be at most this, in either implementation.
pub const MAX_BUFFER_UNDERRUNS_PER_SESSION: i64 = 10;
/// Rule 5: reconnection attempts per session must be at most this, in either.
pub const MAX_RECONNECTIONS_PER_SESSION: i64 = 3;

/// A red flag stands only when at least this many distinct users reported what it
/// measures, so no one user (or one broken client) can force a rollback.
pub const MIN_USERS_FOR_RED_FLAG: i64 = 3;

/// Below this many sessions of either implementation in the window, and with no red
/// flag standing, the recommendation is `hold`.
///
/// Twenty is the smallest count at which each rule can be told apart from one unlucky
/// session: one failure among 20 is 95 %, still clear of the 90 % line, where among 10
/// it would already sit on the line; one error among 20 is exactly the 5 % the third
/// rule allows, where among 19 it would break it. More would be statistically nicer,
/// but the contract caps the minimum at 20, and the guide's first phase (10 % of
/// students, watched for 24–48 hours) must be able to reach it in a small school.
pub const MIN_SESSIONS_PER_IMPLEMENTATION: i64 = 20;

/// One implementation's totals over the window, as aggregated in SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct ImplementationStats {
    pub implementation: ImplementationType,
    /// Sessions reported in the window.
    pub sessions: i64,
    /// Of which connected.
    pub successful_sessions: i64,
    /// Mean of connected sessions' `avg_latency_ms`; `None` without any.
    pub avg_latency_ms: Option<f64>,
    /// `percentile_cont(0.95)` of connected sessions' `avg_latency_ms`.
    pub p95_latency_ms: Option<f64>,
    /// `percentile_cont(0.99)` of connected sessions' `avg_latency_ms`.
    pub p99_latency_ms: Option<f64>,
    /// Sum of `buffer_underruns`.
    pub buffer_underruns: i64,
    /// Sum of `reconnection_attempts`.
    pub reconnection_attempts: i64,
    /// Rows of `voice_session_errors` in the window.
    pub errors: i64,
    /// Sessions with an error (see the module's definitions).
    pub error_sessions: i64,
    /// How many distinct users stand behind each measure.
    pub users: UserCounts,
}

/// Distinct users in the window, per what their sessions showed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserCounts {
    /// Who reported a session at all.
    pub reporting: i64,
    /// Who had a session that did not connect.
    pub failed: i64,
    /// Who reported an error.
    pub erring: i64,
    /// Who had a session with a buffer underrun.
    pub underrun: i64,
    /// Who had a session with a reconnection attempt.
    pub reconnecting: i64,
    /// Who had a connected session slower than the latency ratio times WebSocket's
    /// average (WebRTC only).
    pub slow: i64,
}

impl ImplementationStats {
    /// No sessions and no errors.
    pub fn empty(implementation: ImplementationType) -> Self {
        Self {
            implementation,
            sessions: 0,
            successful_sessions: 0,
            avg_latency_ms: None,
            p95_latency_ms: None,
            p99_latency_ms: None,
            buffer_underruns: 0,
            reconnection_attempts: 0,
            errors: 0,
            error_sessions: 0,
            users: UserCounts::default(),
        }
    }

    fn per_session(&self, total: i64, scale: f64) -> Option<f64> {
        (self.sessions > 0).then(|| scale * total as f64 / self.sessions as f64)
    }

    /// Percent of sessions that connected.
    pub fn success_rate_percent(&self) -> Option<f64> {
        self.per_session(self.successful_sessions, 100.0)
    }

    /// Sessions with an error per session, in percent (see the module's definitions).
    pub fn error_rate_percent(&self) -> Option<f64> {
        self.per_session(self.error_sessions, 100.0)
    }

    pub fn buffer_underruns_per_session(&self) -> Option<f64> {
        self.per_session(self.buffer_underruns, 1.0)
    }

    pub fn reconnections_per_session(&self) -> Option<f64> {
        self.per_session(self.reconnection_attempts, 1.0)
    }

    /// What the summary shows for this implementation.
    pub fn report(&self) -> ImplementationReport {
        ImplementationReport {
            sessions: self.sessions,
            successful_sessions: self.successful_sessions,
            success_rate_percent: self.success_rate_percent(),
            avg_latency_ms: self.avg_latency_ms,
            p95_latency_ms: self.p95_latency_ms,
            p99_latency_ms: self.p99_latency_ms,
            errors: self.errors,
            error_sessions: self.error_sessions,
            users: self.users.reporting,
            error_rate_percent: self.error_rate_percent(),
            buffer_underruns_per_session: self.buffer_underruns_per_session(),
            reconnections_per_session: self.reconnections_per_session(),
        }
    }
}

/// One implementation in the summary's JSON. Rates are percentages; `null` where there
/// were no sessions (or no connected session, for latencies).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImplementationReport {
    pub sessions: i64,
    pub successful_sessions: i64,
    pub success_rate_percent: Option<f64>,
    pub avg_latency_ms: Option<f64>,
    pub p95_latency_ms: Option<f64>,
    pub p99_latency_ms: Option<f64>,
    pub errors: i64,
    pub error_sessions: i64,
    /// Distinct users who reported a session.
    pub users: i64,
    pub error_rate_percent: Option<f64>,
    pub buffer_underruns_per_session: Option<f64>,
    pub reconnections_per_session: Option<f64>,
}

/// Which rule a red flag comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedFlagRule {
    /// WebRTC success rate below [`WEBRTC_MIN_SUCCESS_RATE_PERCENT`].
    WebrtcSuccessRate,
    /// WebRTC average latency above [`MAX_WEBRTC_LATENCY_RATIO`] × WebSocket's.
    WebrtcLatencyRatio,
    /// Error rate above [`MAX_ERROR_RATE_PERCENT`].
    ErrorRate(ImplementationType),
    /// Underruns per session above [`MAX_BUFFER_UNDERRUNS_PER_SESSION`].
    BufferUnderruns(ImplementationType),
    /// Reconnections per session above [`MAX_RECONNECTIONS_PER_SESSION`].
    Reconnections(ImplementationType),
}

impl RedFlagRule {
    /// The flag's name in the summary (`webrtc_success_rate`, `websocket_error_rate`, …).
    pub fn name(self) -> &'static str {
        use ImplementationType::{Webrtc, Websocket};
        match self {
            RedFlagRule::WebrtcSuccessRate => "webrtc_success_rate",
            RedFlagRule::WebrtcLatencyRatio => "webrtc_latency_ratio",
            RedFlagRule::ErrorRate(Webrtc) => "webrtc_error_rate",
            RedFlagRule::ErrorRate(Websocket) => "websocket_error_rate",
            RedFlagRule::BufferUnderruns(Webrtc) => "webrtc_buffer_underruns_per_session",
            RedFlagRule::BufferUnderruns(Websocket) => "websocket_buffer_underruns_per_session",
            RedFlagRule::Reconnections(Webrtc) => "webrtc_reconnections_per_session",
            RedFlagRule::Reconnections(Websocket) => "websocket_reconnections_per_session",
        }
    }

    /// The implementation the rule judges.
    pub fn implementation(self) -> ImplementationType {
        match self {
            RedFlagRule::WebrtcSuccessRate | RedFlagRule::WebrtcLatencyRatio => {
                ImplementationType::Webrtc
            }
            RedFlagRule::ErrorRate(implementation)
            | RedFlagRule::BufferUnderruns(implementation)
            | RedFlagRule::Reconnections(implementation) => implementation,
        }
    }
}

/// A rule that the window breaks: its measured value and the threshold it crossed, in
/// the same unit (percent, ratio, or count per session).
#[derive(Debug, Clone, PartialEq)]
pub struct RedFlag {
    pub rule: RedFlagRule,
    pub value: f64,
    pub threshold: f64,
}

impl Serialize for RedFlag {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut flag = serializer.serialize_struct("RedFlag", 4)?;
        flag.serialize_field("name", self.rule.name())?;
        flag.serialize_field("implementation", &self.rule.implementation())?;
        flag.serialize_field("value", &self.value)?;
        flag.serialize_field("threshold", &self.threshold)?;
        flag.end()
    }
}

/// What the dashboard advises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Recommendation {
    /// No red flag and enough sessions of both implementations: the next phase may start.
    Proceed,
    /// No red flag, but too few sessions of one implementation to judge.
    Hold,
    /// A red flag stands: roll back now.
    Rollback,
}

impl Recommendation {
    pub fn as_str(self) -> &'static str {
        match self {
            Recommendation::Proceed => "proceed",
            Recommendation::Hold => "hold",
            Recommendation::Rollback => "rollback",
        }
    }
}

/// Whether enough distinct users stand behind a measure for its red flag to stand.
fn enough_users(users: i64) -> bool {
    users >= MIN_USERS_FOR_RED_FLAG
}

/// Every red flag the window raises. A rule is judged only where it has something to
/// measure: no sessions, no rate; no connected session on either side, no latency ratio;
/// and a rule stands only with reports from [`MIN_USERS_FOR_RED_FLAG`] distinct users.
pub fn red_flags(webrtc: &ImplementationStats, websocket: &ImplementationStats) -> Vec<RedFlag> {
    let mut flags = Vec::new();

    if webrtc.sessions > 0
        && enough_users(webrtc.users.failed)
        && webrtc.successful_sessions * 100 < WEBRTC_MIN_SUCCESS_RATE_PERCENT * webrtc.sessions
    {
        flags.push(RedFlag {
            rule: RedFlagRule::WebrtcSuccessRate,
            value: webrtc.success_rate_percent().unwrap_or_default(),
            threshold: WEBRTC_MIN_SUCCESS_RATE_PERCENT as f64,
        });
    }

    if let (Some(webrtc_latency), Some(websocket_latency)) =
        (webrtc.avg_latency_ms, websocket.avg_latency_ms)
        && websocket_latency > 0.0
        && enough_users(webrtc.users.slow)
        && webrtc_latency > MAX_WEBRTC_LATENCY_RATIO * websocket_latency
    {
        flags.push(RedFlag {
            rule: RedFlagRule::WebrtcLatencyRatio,
            value: webrtc_latency / websocket_latency,
            threshold: MAX_WEBRTC_LATENCY_RATIO,
        });
    }

    for stats in [webrtc, websocket] {
        if stats.sessions == 0 {
            continue;
        }
        let implementation = stats.implementation;
        if enough_users(stats.users.erring)
            && stats.error_sessions * 100 > MAX_ERROR_RATE_PERCENT * stats.sessions
        {
            flags.push(RedFlag {
                rule: RedFlagRule::ErrorRate(implementation),
                value: stats.error_rate_percent().unwrap_or_default(),
                threshold: MAX_ERROR_RATE_PERCENT as f64,
            });
        }
        if enough_users(stats.users.underrun)
            && stats.buffer_underruns > MAX_BUFFER_UNDERRUNS_PER_SESSION * stats.sessions
        {
            flags.push(RedFlag {
                rule: RedFlagRule::BufferUnderruns(implementation),
                value: stats.buffer_underruns_per_session().unwrap_or_default(),
                threshold: MAX_BUFFER_UNDERRUNS_PER_SESSION as f64,
            });
        }
        if enough_users(stats.users.reconnecting)
            && stats.reconnection_attempts > MAX_RECONNECTIONS_PER_SESSION * stats.sessions
        {
            flags.push(RedFlag {
                rule: RedFlagRule::Reconnections(implementation),
                value: stats.reconnections_per_session().unwrap_or_default(),
                threshold: MAX_RECONNECTIONS_PER_SESSION as f64,
            });
        }
    }
    flags
}

/// `rollback` whenever a red flag stands; else `hold` while either implementation has
/// fewer than [`MIN_SESSIONS_PER_IMPLEMENTATION`] sessions; else `proceed`.
pub fn recommend(
    flags: &[RedFlag],
    webrtc: &ImplementationStats,
    websocket: &ImplementationStats,
) -> Recommendation {
    if !flags.is_empty() {
        Recommendation::Rollback
    } else if webrtc.sessions < MIN_SESSIONS_PER_IMPLEMENTATION
        || websocket.sessions < MIN_SESSIONS_PER_IMPLEMENTATION
    {
        Recommendation::Hold
    } else {
        Recommendation::Proceed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ImplementationType::{Webrtc, Websocket};

    /// A healthy implementation: `sessions` sessions, all connected, 200 ms, nothing wrong.
    fn healthy(implementation: ImplementationType, sessions: i64) -> ImplementationStats {
        ImplementationStats {
            implementation,
            sessions,
            successful_sessions: sessions,
            avg_latency_ms: Some(200.0),
            p95_latency_ms: Some(250.0),
            p99_latency_ms: Some(280.0),
            buffer_underruns: 0,
            reconnection_attempts: 0,
            errors: 0,
            error_sessions: 0,
            // One user per session: every measure has as many users as sessions.
            users: UserCounts {
                reporting: sessions,
                failed: sessions,
                erring: sessions,
                underrun: sessions,
                reconnecting: sessions,
                slow: sessions,
            },
        }
    }

    fn names(flags: &[RedFlag]) -> Vec<&'static str> {
        flags.iter().map(|flag| flag.rule.name()).collect()
    }

    #[test]
    fn healthy_windows_with_enough_sessions_proceed() {
        let (webrtc, websocket) = (healthy(Webrtc, 20), healthy(Websocket, 40));
        let flags = red_flags(&webrtc, &websocket);
        assert!(flags.is_empty());
        assert_eq!(
            recommend(&flags, &webrtc, &websocket),
            Recommendation::Proceed
        );
    }

    #[test]
    fn too_few_sessions_of_either_implementation_hold() {
        let websocket = healthy(Websocket, 100);
        for webrtc in [healthy(Webrtc, 19), ImplementationStats::empty(Webrtc)] {
            let flags = red_flags(&webrtc, &websocket);
            assert_eq!(recommend(&flags, &webrtc, &websocket), Recommendation::Hold);
        }
        let (webrtc, websocket) = (healthy(Webrtc, 50), healthy(Websocket, 19));
        assert_eq!(recommend(&[], &webrtc, &websocket), Recommendation::Hold);
    }

    #[test]
    fn webrtc_success_rate_flags_below_90_percent_only() {
        let websocket = healthy(Websocket, 20);
        let mut webrtc = healthy(Webrtc, 20);
        webrtc.successful_sessions = 18;
        assert!(
            red_flags(&webrtc, &websocket).is_empty(),
            "exactly 90 % is no red flag"
        );
        webrtc.successful_sessions = 17;
        let flags = red_flags(&webrtc, &websocket);
        assert_eq!(names(&flags), ["webrtc_success_rate"]);
        assert_eq!(flags[0].value, 85.0);
        assert_eq!(flags[0].threshold, 90.0);
        assert_eq!(
            recommend(&flags, &webrtc, &websocket),
            Recommendation::Rollback
        );
    }

    #[test]
    fn websocket_success_rate_is_not_a_red_flag() {
        let mut websocket = healthy(Websocket, 20);
        websocket.successful_sessions = 10;
        assert!(red_flags(&healthy(Webrtc, 20), &websocket).is_empty());
    }

    #[test]
    fn a_red_flag_rolls_back_even_with_few_sessions() {
        let mut webrtc = healthy(Webrtc, 3);
        webrtc.successful_sessions = 2;
        let websocket = healthy(Websocket, 3);
        let flags = red_flags(&webrtc, &websocket);
        assert_eq!(
            recommend(&flags, &webrtc, &websocket),
            Recommendation::Rollback
        );
    }

    #[test]
    fn latency_flags_above_twice_websockets_average() {
        let mut webrtc = healthy(Webrtc, 20);
        let mut websocket = healthy(Websocket, 20);
        websocket.avg_latency_ms = Some(150.0);
        webrtc.avg_latency_ms = Some(300.0);
        assert!(
            red_flags(&webrtc, &websocket).is_empty(),
            "exactly 2x is no red flag"
        );
        webrtc.avg_latency_ms = Some(300.5);
        let flags = red_flags(&webrtc, &websocket);
        assert_eq!(names(&flags), ["webrtc_latency_ratio"]);
        assert!((flags[0].value - 300.5 / 150.0).abs() < 1e-12);
        assert_eq!(flags[0].threshold, 2.0);
    }

    #[test]
    fn latency_is_not_judged_without_connected_sessions_on_both_sides() {
        let mut webrtc = healthy(Webrtc, 20);
        webrtc.avg_latency_ms = Some(10_000.0);
        let mut websocket = ImplementationStats::empty(Websocket);
        assert!(red_flags(&webrtc, &websocket).is_empty());
        websocket = healthy(Websocket, 5);
        websocket.avg_latency_ms = None;
        assert!(red_flags(&webrtc, &websocket).is_empty());
    }

    #[test]
    fn error_rate_flags_above_5_percent_in_either() {
        for implementation in ImplementationType::ALL {
            let mut stats = healthy(implementation, 40);
            stats.error_sessions = 2;
            let other = healthy(
                if implementation == Webrtc {
                    Websocket
                } else {
                    Webrtc
                },
                40,
            );
            let (webrtc, websocket) = if implementation == Webrtc {
                (&stats, &other)
            } else {
                (&other, &stats)
            };
            assert!(
                red_flags(webrtc, websocket).is_empty(),
                "exactly 5 % is no red flag"
            );
            stats.error_sessions = 3;
            let (webrtc, websocket) = if implementation == Webrtc {
                (&stats, &other)
            } else {
                (&other, &stats)
            };
            let flags = red_flags(webrtc, websocket);
            assert_eq!(flags.len(), 1);
            assert_eq!(flags[0].rule, RedFlagRule::ErrorRate(implementation));
            assert_eq!(flags[0].value, 7.5);
            assert_eq!(flags[0].threshold, 5.0);
        }
    }

    #[test]
    fn underruns_flag_above_10_per_session() {
        let mut webrtc = healthy(Webrtc, 20);
        webrtc.buffer_underruns = 200;
        let websocket = healthy(Websocket, 20);
        assert!(
            red_flags(&webrtc, &websocket).is_empty(),
            "exactly 10 is no red flag"
        );
        webrtc.buffer_underruns = 201;
        let flags = red_flags(&webrtc, &websocket);
        assert_eq!(names(&flags), ["webrtc_buffer_underruns_per_session"]);
        assert_eq!(flags[0].value, 10.05);
    }

    #[test]
    fn reconnections_flag_above_3_per_session() {
        let webrtc = healthy(Webrtc, 20);
        let mut websocket = healthy(Websocket, 20);
        websocket.reconnection_attempts = 60;
        assert!(
            red_flags(&webrtc, &websocket).is_empty(),
            "exactly 3 is no red flag"
        );
        websocket.reconnection_attempts = 61;
        let flags = red_flags(&webrtc, &websocket);
        assert_eq!(names(&flags), ["websocket_reconnections_per_session"]);
        assert_eq!(flags[0].value, 3.05);
    }

    #[test]
    fn empty_windows_raise_nothing_and_report_nulls() {
        let (webrtc, websocket) = (
            ImplementationStats::empty(Webrtc),
            ImplementationStats::empty(Websocket),
        );
        assert!(red_flags(&webrtc, &websocket).is_empty());
        let report = serde_json::to_value(webrtc.report()).unwrap();
        assert_eq!(report["sessions"], 0);
        assert!(report["success_rate_percent"].is_null());
        assert!(report["avg_latency_ms"].is_null());
    }

    #[test]
    fn red_flag_serialises_with_name_value_and_threshold() {
        let flag = RedFlag {
            rule: RedFlagRule::WebrtcSuccessRate,
            value: 85.0,
            threshold: 90.0,
        };
        assert_eq!(
            serde_json::to_value(&flag).unwrap(),
            serde_json::json!({"name": "webrtc_success_rate", "implementation": "webrtc", "value": 85.0, "threshold": 90.0})
        );
    }

    #[test]
    fn one_or_two_users_cannot_make_a_red_flag_stand() {
        let websocket = healthy(Websocket, 20);
        let mut webrtc = healthy(Webrtc, 20);
        webrtc.successful_sessions = 10;
        webrtc.error_sessions = 20;
        webrtc.buffer_underruns = 100_000;
        webrtc.reconnection_attempts = 1_000;
        webrtc.avg_latency_ms = Some(50_000.0);
        for users in [1, 2] {
            webrtc.users = UserCounts {
                reporting: 20,
                failed: users,
                erring: users,
                underrun: users,
                reconnecting: users,
                slow: users,
            };
            assert!(red_flags(&webrtc, &websocket).is_empty(), "{users} users");
        }
        webrtc.users = UserCounts {
            reporting: 20,
            failed: 3,
            erring: 3,
            underrun: 3,
            reconnecting: 3,
            slow: 3,
        };
        assert_eq!(
            names(&red_flags(&webrtc, &websocket)),
            [
                "webrtc_success_rate",
                "webrtc_latency_ratio",
                "webrtc_error_rate",
                "webrtc_buffer_underruns_per_session",
                "webrtc_reconnections_per_session"
            ]
        );
    }
}
