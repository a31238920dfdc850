//! The guarded rollout change: what an admin asks for, and whether it may happen.
//!
//! The guide's rule is "if any red flag occurs, immediately roll back", so a change
//! that *exposes more students* to WebRTC while a red flag stands is refused (`409`)
//! unless the admin insists with `force: true`; a change that exposes the same or fewer
//! students (lowering, disabling, fixing the reason) is always allowed, so a rollback can
//! never be blocked by the very numbers that call for it.

use serde::{Deserialize, Serialize};

use super::rules::RedFlag;
use crate::error::ApiError;

/// Longest `reason` accepted.
pub const MAX_REASON_CHARS: usize = 500;

/// The `reason` an audit row keeps (rollout changes, erasures): trimmed, 1 to
/// [`MAX_REASON_CHARS`] characters, else `400` naming the field.
pub fn audit_reason(raw: &str) -> Result<String, ApiError> {
    let reason = raw.trim().to_string();
    if reason.is_empty() {
        return Err(ApiError::bad_field("reason", "reason must not be empty"));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::bad_field(
            "reason",
            format!("reason must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(reason)
}

/// The rollout flag's state, as far as enrolment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FlagState {
    pub enabled: bool,
    pub rollout_percentage: i64,
}

impl FlagState {
    /// The percentage of buckets enrolled: a student is enrolled when the flag is
    /// enabled and their bucket (0–99) is below the percentage.
    pub fn exposure(self) -> i64 {
        if self.enabled {
            self.rollout_percentage.clamp(0, 100)
        } else {
            0
        }
    }
}

/// The body of `POST /rollout` as sent.
#[derive(Debug, Clone, Deserialize)]
pub struct RolloutBody {
    pub percentage: i64,
    #[serde(default)]
    pub enabled: Option<bool>,
    pub reason: String,
    #[serde(default)]
    pub force: bool,
}

/// A checked rollout request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutRequest {
    /// The state asked for. `enabled` defaults to `percentage > 0`: asking for 10 %
    /// means the guide's "enable for 10 %", asking for 0 % its rollback.
    pub target: FlagState,
    pub reason: String,
    pub force: bool,
}

impl RolloutBody {
    /// Checks the percentage's range and that a reason is given.
    pub fn validate(self) -> Result<RolloutRequest, ApiError> {
        if !(0..=100).contains(&self.percentage) {
            return Err(ApiError::bad_field(
                "percentage",
                "percentage must be between 0 and 100",
            ));
        }
        let reason = audit_reason(&self.reason)?;
        Ok(RolloutRequest {
            target: FlagState {
                enabled: self.enabled.unwrap_or(self.percentage > 0),
                rollout_percentage: self.percentage,
            },
            reason,
            force: self.force,
        })
    }
}

/// Whether a change exposes more students, fewer, or the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RolloutDirection {
    Raise,
    Lower,
    Unchanged,
}

impl RolloutDirection {
    /// The direction from `from` to `to`, by exposure.
    pub fn between(from: FlagState, to: FlagState) -> Self {
        match to.exposure().cmp(&from.exposure()) {
            std::cmp::Ordering::Greater => RolloutDirection::Raise,
            std::cmp::Ordering::Less => RolloutDirection::Lower,
            std::cmp::Ordering::Equal => RolloutDirection::Unchanged,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RolloutDirection::Raise => "raise",
            RolloutDirection::Lower => "lower",
            RolloutDirection::Unchanged => "unchanged",
        }
    }
}

/// A change that may go ahead.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutDecision {
    pub from: FlagState,
    pub to: FlagState,
    pub direction: RolloutDirection,
    /// True when the change went through only because of `force` (a raise over
    /// standing red flags); this is what the audit row's `forced` records.
    pub forced: bool,
}

/// Decides a change: `409 red_flags_standing` for a raise while `red_flags` is not
/// empty and `force` is not set; anything else goes ahead. `red_flags` need only be
/// computed for raises.
pub fn decide_rollout(
    current: FlagState,
    request: &RolloutRequest,
    red_flags: &[RedFlag],
) -> Result<RolloutDecision, ApiError> {
    let direction = RolloutDirection::between(current, request.target);
    let blocked = direction == RolloutDirection::Raise && !red_flags.is_empty();
    if blocked && !request.force {
        let standing: Vec<&str> = red_flags.iter().map(|flag| flag.rule.name()).collect();
        return Err(ApiError::Conflict {
            error: "red_flags_standing",
            message: format!(
                "Raising the rollout from {} % to {} % is refused while red flags stand ({}); \
                 roll back, or send \"force\": true to override",
                current.exposure(),
                request.target.exposure(),
                standing.join(", ")
            ),
        });
    }
    Ok(RolloutDecision {
        from: current,
        to: request.target,
        direction,
        forced: blocked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_json;
    use crate::monitoring::rules::RedFlagRule;
    use serde_json::json;

    fn state(enabled: bool, rollout_percentage: i64) -> FlagState {
        FlagState {
            enabled,
            rollout_percentage,
        }
    }

    fn request(body: serde_json::Value) -> Result<RolloutRequest, ApiError> {
        parse_json::<RolloutBody>(body.to_string().as_bytes())?.validate()
    }

    fn a_red_flag() -> Vec<RedFlag> {
        vec![RedFlag {
            rule: RedFlagRule::WebrtcSuccessRate,
            value: 85.0,
            threshold: 90.0,
        }]
    }

    fn field_of(error: &ApiError) -> Option<&str> {
        match error {
            ApiError::BadRequest { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    #[test]
    fn enabled_defaults_to_whether_the_percentage_is_above_zero() {
        let raise = request(json!({"percentage": 10, "reason": "phase 1"})).unwrap();
        assert_eq!(raise.target, state(true, 10));
        assert!(!raise.force);
        let rollback = request(json!({"percentage": 0, "reason": "red flag"})).unwrap();
        assert_eq!(rollback.target, state(false, 0));
        let armed = request(json!({"percentage": 0, "enabled": true, "reason": "arm"})).unwrap();
        assert_eq!(armed.target, state(true, 0));
    }

    #[test]
    fn bad_bodies_name_the_field() {
        for (body, field) in [
            (json!({"percentage": 101, "reason": "x"}), "percentage"),
            (json!({"percentage": -1, "reason": "x"}), "percentage"),
            (json!({"percentage": 10.5, "reason": "x"}), "percentage"),
            (json!({"reason": "x"}), "percentage"),
            (json!({"percentage": 10}), "reason"),
            (json!({"percentage": 10, "reason": "   "}), "reason"),
            (
                json!({"percentage": 10, "reason": "x".repeat(MAX_REASON_CHARS + 1)}),
                "reason",
            ),
            (
                json!({"percentage": 10, "reason": "x", "force": "yes"}),
                "force",
            ),
            (
                json!({"percentage": 10, "reason": "x", "enabled": 1}),
                "enabled",
            ),
        ] {
            let error = request(body.clone()).unwrap_err();
            assert_eq!(field_of(&error), Some(field), "{body}: {error:?}");
        }
    }

    #[test]
    fn raising_while_a_red_flag_stands_is_409_naming_the_flag() {
        let ask = request(json!({"percentage": 50, "reason": "phase 2"})).unwrap();
        let error = decide_rollout(state(true, 10), &ask, &a_red_flag()).unwrap_err();
        assert_eq!(error.status(), 409);
        assert_eq!(error.code(), "red_flags_standing");
        assert!(error.to_string().contains("webrtc_success_rate"));
    }

    #[test]
    fn enabling_a_disabled_flag_is_a_raise() {
        let ask = request(json!({"percentage": 10, "reason": "phase 1"})).unwrap();
        let error = decide_rollout(state(false, 10), &ask, &a_red_flag()).unwrap_err();
        assert_eq!(error.status(), 409);
    }

    #[test]
    fn force_lets_a_raise_through_and_is_recorded() {
        let ask = request(json!({"percentage": 50, "reason": "known false alarm", "force": true}))
            .unwrap();
        let decision = decide_rollout(state(true, 10), &ask, &a_red_flag()).unwrap();
        assert_eq!(decision.direction, RolloutDirection::Raise);
        assert!(decision.forced);
        assert_eq!(decision.to, state(true, 50));
    }

    #[test]
    fn force_without_red_flags_is_not_recorded_as_forced() {
        let ask = request(json!({"percentage": 50, "reason": "phase 2", "force": true})).unwrap();
        let decision = decide_rollout(state(true, 10), &ask, &[]).unwrap();
        assert!(!decision.forced);
    }

    #[test]
    fn lowering_and_disabling_are_always_allowed() {
        for body in [
            json!({"percentage": 0, "reason": "rollback"}),
            json!({"percentage": 5, "reason": "partial rollback"}),
            json!({"percentage": 50, "enabled": false, "reason": "disable"}),
            json!({"percentage": 50, "reason": "unchanged, new reason"}),
        ] {
            let ask = request(body.clone()).unwrap();
            let decision = decide_rollout(state(true, 50), &ask, &a_red_flag()).unwrap();
            assert_ne!(decision.direction, RolloutDirection::Raise, "{body}");
            assert!(!decision.forced);
        }
    }

    #[test]
    fn exposure_counts_only_enabled_flags() {
        assert_eq!(state(false, 80).exposure(), 0);
        assert_eq!(state(true, 80).exposure(), 80);
        assert_eq!(
            RolloutDirection::between(state(false, 80), state(true, 0)),
            RolloutDirection::Unchanged
        );
    }
}
