//! The status values of practice sessions, practice attempts and webhook events, as the
//! check constraints of `sql/migrations/0003_practice.sql` and `0004_webhook_events.sql`
//! spell them, and the one rule for moving a session or attempt: forward only.
//!
//! Sessions go `pending` → `processing` → `analyzing` → `completed` | `failed`;
//! attempts go `pending` → `processing` → `completed` | `failed`. A step may skip states
//! (a webhook can report a result for a session the back end never marked `analyzing`),
//! a terminal state is never left, and staying in the same state is allowed (a newer
//! event may refresh an attempt's results or a failure's message).

use std::fmt;
use std::str::FromStr;

/// A value that is not one of an enum's statuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status `{0}`")]
pub struct UnknownStatus(pub String);

macro_rules! status_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal, rank $rank:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
        }

        impl $name {
            /// The value stored in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Position in the lifecycle; terminal states share the highest rank.
            fn rank(self) -> u8 {
                match self {
                    $($name::$variant => $rank,)+
                }
            }

            /// Whether a row in this status may be put into `next`: forward, or the same.
            pub fn may_become(self, next: Self) -> bool {
                next == self || next.rank() > self.rank()
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownStatus(other.to_string())),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

status_enum! {
    /// `practice_sessions.status`.
    SessionStatus {
        Pending = "pending", rank 0;
        Processing = "processing", rank 1;
        Analyzing = "analyzing", rank 2;
        Completed = "completed", rank 3;
        Failed = "failed", rank 3;
    }
}

status_enum! {
    /// `practice_attempts.status`.
    AttemptStatus {
        Pending = "pending", rank 0;
        Processing = "processing", rank 1;
        Completed = "completed", rank 2;
        Failed = "failed", rank 2;
    }
}

/// `webhook_events.status`: what became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookEventStatus {
    /// Its effects are applied (or it was older than what already stood).
    Processed,
    /// An event type this function does not handle; kept, acknowledged with `202`.
    Ignored,
    /// Refused (unknown session, invalid data); a retry or a replay processes it again.
    Failed,
}

impl WebhookEventStatus {
    /// The value stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEventStatus::Processed => "processed",
            WebhookEventStatus::Ignored => "ignored",
            WebhookEventStatus::Failed => "failed",
        }
    }
}

impl FromStr for WebhookEventStatus {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "processed" => Ok(WebhookEventStatus::Processed),
            "ignored" => Ok(WebhookEventStatus::Ignored),
            "failed" => Ok(WebhookEventStatus::Failed),
            other => Err(UnknownStatus(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION_STATUSES: [SessionStatus; 5] = [
        SessionStatus::Pending,
        SessionStatus::Processing,
        SessionStatus::Analyzing,
        SessionStatus::Completed,
        SessionStatus::Failed,
    ];

    #[test]
    fn session_status_moves_only_forward() {
        use SessionStatus::*;
        assert!(Pending.may_become(Processing));
        assert!(Processing.may_become(Analyzing));
        assert!(Pending.may_become(Analyzing), "skipping ahead is forward");
        assert!(Analyzing.may_become(Completed));
        assert!(Analyzing.may_become(Failed));
        assert!(!Analyzing.may_become(Processing));
        assert!(!Completed.may_become(Analyzing));
        assert!(!Failed.may_become(Pending));
    }

    #[test]
    fn terminal_states_are_never_left_but_may_be_refreshed() {
        use SessionStatus::*;
        assert!(!Completed.may_become(Failed));
        assert!(!Failed.may_become(Completed));
        assert!(Completed.may_become(Completed));
        assert!(Failed.may_become(Failed));
        assert!(!AttemptStatus::Failed.may_become(AttemptStatus::Completed));
        assert!(AttemptStatus::Completed.may_become(AttemptStatus::Completed));
        assert!(AttemptStatus::Pending.may_become(AttemptStatus::Failed));
    }

    #[test]
    fn statuses_round_trip_the_check_constraint_spellings() {
        let spelled: Vec<&str> = SESSION_STATUSES.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            spelled,
            ["pending", "processing", "analyzing", "completed", "failed"]
        );
        for status in SESSION_STATUSES {
            assert_eq!(status.as_str().parse::<SessionStatus>(), Ok(status));
        }
        assert_eq!(
            "completed".parse::<AttemptStatus>(),
            Ok(AttemptStatus::Completed)
        );
        assert!(
            "analyzing".parse::<AttemptStatus>().is_err(),
            "attempts are never analyzing"
        );
        assert_eq!(
            "ignored".parse::<WebhookEventStatus>(),
            Ok(WebhookEventStatus::Ignored)
        );
        assert!("done".parse::<WebhookEventStatus>().is_err());
    }
}
