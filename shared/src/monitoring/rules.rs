//! The migration guide's rollback rules as code: per-implementation statistics, the red
//! flags with their thresholds, and the recommendation the dashboard shows.
//!
//! The statistics are aggregated in SQL (see [`super::session_metrics`]); this module
//! only compares them with the thresholds.
//!
//! **Every number is computed per user first, then averaged over users**, so that each
//! user weighs the same whatever they report. For each implementation and each user
//! (signed-in users only: reports of anonymous sign-ins are stored but not counted, since
//! anyone can mint such users at will), over that user's sessions in the window (at most
//! their [`super::session_metrics::MAX_SESSIONS_PER_USER`] most recent):
//! - **success rate**: the share of their sessions with `connection_success = true`;
//! - **error rate**: the share of their sessions for which the same user reported an
//!   error (`voice_session_errors` with the same `session_id` and implementation) in the
//!   window. An error without a session id, or for a session the user did not report,
//!   counts for nothing; a session's errors count once however often they are posted.
//!   Not the share of failed connections: the guide lists "error rate > 5 %" beside, and
//!   separately from, "WebRTC success rate < 90 %", and says that *all* client errors
//!   are logged to `voice_session_errors` (dropped data channels, audio decode failures);
//! - **latency**: the mean `avg_latency_ms` of their sessions that connected (a session
//!   that never connected measured no latency);
//! - **underruns / reconnections per session**: their totals divided by their sessions.
//!
//! The dashboard's number for each is the **mean of the per-user values, each user's
//! value capped**: rates are capped by nature (0–100 %); underruns and reconnections per
//! session at [`USER_CAP_FACTOR`] times their threshold; latency at [`USER_CAP_FACTOR`]
//! times the median user's latency of that implementation. The latency percentiles are
//! taken over the same capped per-user latencies. So among `n` users one user moves a
//! number by at most its cap divided by `n`, however many sessions of whatever extreme
//! (but allowed) values they post.
//!
//! **A red flag stands only when the mean crosses its threshold and at least
//! [`MIN_USERS_FOR_RED_FLAG`] distinct users are each over it on their own values**
//! (success rate below 90 %, error rate above 5 %, underruns above 10 or reconnections
//! above 3 per session, WebRTC latency above twice WebSocket's mean): one user, or two,
//! can never make one stand, and one user cannot hide one that many users' own numbers
//! show, beyond their one vote among `n` users. The 2× latency rule compares the two
//! means, the dashboard's headline "Average latency" of the guide; a p95 would be set by
//! the slowest one or two users.
//!
//! Thresholds are compared as the guide states them: exactly on a threshold is no red
//! flag.

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

/// A red flag stands only when at least this many distinct users are each over its
/// threshold, so no one user (or one broken client) can force a rollback.
pub const MIN_USERS_FOR_RED_FLAG: i64 = 3;

/// Each user's value counts at most this many times its threshold (underruns and
/// reconnections per session) or the median user's value (latency) in the means.
pub const USER_CAP_FACTOR: f64 = 2.0;

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

/// One implementation's window, as aggregated in SQL: counts, and the means over users
/// of each user's own (capped) values (see the module's definitions).
#[derive(Debug, Clone, PartialEq)]
pub struct ImplementationStats {
    pub implementation: ImplementationType,
    /// Sessions counted in the window (signed-in users, at most 50 each).
    pub sessions: i64,
    /// Of which connected.
    pub successful_sessions: i64,
    /// Error reports that name a counted session of the same user.
    pub errors: i64,
    /// Counted sessions with such an error.
    pub error_sessions: i64,
    /// Mean over users of each user's success rate (percent).
    pub success_rate_percent: Option<f64>,
    /// Mean over users of each user's error rate (percent).
    pub error_rate_percent: Option<f64>,
    /// Mean over users of each user's (capped) underruns per session.
    pub buffer_underruns_per_session: Option<f64>,
    /// Mean over users of each user's (capped) reconnections per session.
    pub reconnections_per_session: Option<f64>,
    /// Mean over users with a connected session of each one's (capped) mean latency.
    pub avg_latency_ms: Option<f64>,
    /// `percentile_cont(0.95)` of the same per-user latencies.
    pub p95_latency_ms: Option<f64>,
    /// `percentile_cont(0.99)` of the same per-user latencies.
    pub p99_latency_ms: Option<f64>,
    /// How many distinct users stand behind each measure.
    pub users: UserCounts,
}

/// Distinct signed-in users in the window: who reported, and who is over each rule's
/// threshold on their own values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserCounts {
    /// Who reported a session at all.
    pub reporting: i64,
    /// Whose own success rate is below the threshold.
    pub failed: i64,
    /// Whose own error rate is above the threshold.
    pub erring: i64,
    /// Whose own underruns per session are above the threshold.
    pub underrun: i64,
    /// Whose own reconnections per session are above the threshold.
    pub reconnecting: i64,
    /// Whose own WebRTC latency is above the ratio times WebSocket's mean (WebRTC only).
    pub slow: i64,
}

impl ImplementationStats {
    /// No sessions and no errors.
    pub fn empty(implementation: ImplementationType) -> Self {
        Self {
            implementation,
            sessions: 0,
            successful_sessions: 0,
            errors: 0,
            error_sessions: 0,
            success_rate_percent: None,
            error_rate_percent: None,
            buffer_underruns_per_session: None,
            reconnections_per_session: None,
            avg_latency_ms: None,
            p95_latency_ms: None,
            p99_latency_ms: None,
            users: UserCounts::default(),
        }
    }

    /// What the summary shows for this implementation.
    pub fn report(&self) -> ImplementationReport {
        ImplementationReport {
            sessions: self.sessions,
            successful_sessions: self.successful_sessions,
            success_rate_percent: self.success_rate_percent,
            avg_latency_ms: self.avg_latency_ms,
            p95_latency_ms: self.p95_latency_ms,
            p99_latency_ms: self.p99_latency_ms,
            errors: self.errors,
            error_sessions: self.error_sessions,
            users: self.users.reporting,
            error_rate_percent: self.error_rate_percent,
            buffer_underruns_per_session: self.buffer_underruns_per_session,
            reconnections_per_session: self.reconnections_per_session,
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
    /// Distinct signed-in users who reported a session.
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

/// Whether enough distinct users are over a rule's threshold for its red flag to stand.
fn enough_users(users: i64) -> bool {
    users >= MIN_USERS_FOR_RED_FLAG
}

/// Every red flag the window raises. A rule is judged only where it has something to
/// measure (no sessions, no rate; no connected session on either side, no latency
/// ratio), and stands only when its mean over users crosses the threshold and
/// [`MIN_USERS_FOR_RED_FLAG`] distinct users are each over it.
pub fn red_flags(webrtc: &ImplementationStats, websocket: &ImplementationStats) -> Vec<RedFlag> {
    let mut flags = Vec::new();

    if let Some(rate) = webrtc.success_rate_percent
        && enough_users(webrtc.users.failed)
        && rate < WEBRTC_MIN_SUCCESS_RATE_PERCENT as f64
    {
        flags.push(RedFlag {
            rule: RedFlagRule::WebrtcSuccessRate,
            value: rate,
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
        let implementation = stats.implementation;
        let rules = [
            (
                RedFlagRule::ErrorRate(implementation),
                stats.error_rate_percent,
                stats.users.erring,
                MAX_ERROR_RATE_PERCENT,
            ),
            (
                RedFlagRule::BufferUnderruns(implementation),
                stats.buffer_underruns_per_session,
                stats.users.underrun,
                MAX_BUFFER_UNDERRUNS_PER_SESSION,
            ),
            (
                RedFlagRule::Reconnections(implementation),
                stats.reconnections_per_session,
                stats.users.reconnecting,
                MAX_RECONNECTIONS_PER_SESSION,
            ),
        ];
        for (rule, value, users, threshold) in rules {
            if let Some(value) = value
                && enough_users(users)
                && value > threshold as f64
            {
                flags.push(RedFlag {
                    rule,
                    value,
                    threshold: threshold as f64,
                });
            }
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

    /// A healthy implementation: `users` users of one session each, all connected,
    /// 200 ms, nothing wrong.
    fn healthy(implementation: ImplementationType, users: i64) -> ImplementationStats {
        ImplementationStats {
            implementation,
            sessions: users,
            successful_sessions: users,
            errors: 0,
            error_sessions: 0,
            success_rate_percent: Some(100.0),
            error_rate_percent: Some(0.0),
            buffer_underruns_per_session: Some(0.0),
            reconnections_per_session: Some(0.0),
            avg_latency_ms: Some(200.0),
            p95_latency_ms: Some(200.0),
            p99_latency_ms: Some(200.0),
            users: UserCounts {
                reporting: users,
                ..UserCounts::default()
            },
        }
    }

    /// Every user of `stats` over every threshold.
    fn all_over(stats: &mut ImplementationStats) {
        let n = stats.users.reporting;
        stats.users = UserCounts {
            reporting: n,
            failed: n,
            erring: n,
            underrun: n,
            reconnecting: n,
            slow: n,
        };
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
        all_over(&mut webrtc);
        webrtc.success_rate_percent = Some(90.0);
        assert!(
            red_flags(&webrtc, &websocket).is_empty(),
            "exactly 90 % is no red flag"
        );
        webrtc.success_rate_percent = Some(85.0);
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
        all_over(&mut websocket);
        websocket.success_rate_percent = Some(50.0);
        assert!(red_flags(&healthy(Webrtc, 20), &websocket).is_empty());
    }

    #[test]
    fn a_red_flag_rolls_back_even_with_few_sessions() {
        let mut webrtc = healthy(Webrtc, 3);
        all_over(&mut webrtc);
        webrtc.success_rate_percent = Some(0.0);
        let websocket = healthy(Websocket, 3);
        let flags = red_flags(&webrtc, &websocket);
        assert_eq!(
            recommend(&flags, &webrtc, &websocket),
            Recommendation::Rollback
        );
    }

    #[test]
    fn latency_flags_above_twice_websockets_mean() {
        let mut webrtc = healthy(Webrtc, 20);
        all_over(&mut webrtc);
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
        all_over(&mut webrtc);
        webrtc.avg_latency_ms = Some(10_000.0);
        let mut websocket = ImplementationStats::empty(Websocket);
        assert!(red_flags(&webrtc, &websocket).is_empty());
        websocket = healthy(Websocket, 5);
        websocket.avg_latency_ms = None;
        assert!(red_flags(&webrtc, &websocket).is_empty());
    }

    #[test]
    fn error_underrun_and_reconnection_rules_flag_just_past_their_thresholds_in_either() {
        type Set = fn(&mut ImplementationStats, f64);
        let rules: [(&str, f64, f64, Set); 3] = [
            ("error_rate", 5.0, 5.5, |s, v| {
                s.error_rate_percent = Some(v)
            }),
            ("buffer_underruns_per_session", 10.0, 10.05, |s, v| {
                s.buffer_underruns_per_session = Some(v)
            }),
            ("reconnections_per_session", 3.0, 3.05, |s, v| {
                s.reconnections_per_session = Some(v)
            }),
        ];
        for implementation in ImplementationType::ALL {
            for (rule, at, past, set) in rules {
                let mut stats = healthy(implementation, 40);
                all_over(&mut stats);
                let other = healthy(
                    if implementation == Webrtc {
                        Websocket
                    } else {
                        Webrtc
                    },
                    40,
                );
                let judge = |stats: &ImplementationStats| {
                    if implementation == Webrtc {
                        red_flags(stats, &other)
                    } else {
                        red_flags(&other, stats)
                    }
                };
                set(&mut stats, at);
                assert!(judge(&stats).is_empty(), "{rule} exactly at {at}");
                set(&mut stats, past);
                let flags = judge(&stats);
                assert_eq!(
                    names(&flags),
                    [format!("{}_{rule}", implementation.as_str()).as_str()]
                );
                assert_eq!(flags[0].value, past);
                assert_eq!(flags[0].threshold, at);
            }
        }
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
    fn fewer_than_three_users_over_a_threshold_cannot_make_its_red_flag_stand() {
        let websocket = healthy(Websocket, 20);
        let mut webrtc = healthy(Webrtc, 20);
        webrtc.success_rate_percent = Some(10.0);
        webrtc.error_rate_percent = Some(100.0);
        webrtc.buffer_underruns_per_session = Some(20.0);
        webrtc.reconnections_per_session = Some(6.0);
        webrtc.avg_latency_ms = Some(50_000.0);
        for users in [0, 1, 2] {
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
        all_over(&mut webrtc);
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
