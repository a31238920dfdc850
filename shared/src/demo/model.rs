//! The demo system's vocabulary: demo types, session states and interaction types,
//! each an enum whose `as_str` matches the SQL check constraints of the `demo_*`
//! tables, and the rows the repositories return.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDateTime;
use serde::{Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

/// A value that is not one of an enum's spellings; names the accepted ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value `{value}`, expected one of: {expected}")]
pub struct UnknownValue {
    /// What was given (at most 64 characters of it).
    pub value: String,
    /// The accepted spellings, comma-separated.
    pub expected: &'static str,
}

/// Serialises an enum with `as_str` as its string, like the database holds it.
macro_rules! string_enum {
    ($name:ident, $expected:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling used in the database and in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue {
                        value: value.chars().take(64).collect(),
                        expected: $expected,
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// The kind of demo an activity is (`demo_activities.demo_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DemoType {
    /// Read-along coaching: the student reads a passage aloud.
    Readflow,
    /// Sound-by-sound pronunciation feedback on words and phrases.
    Pronunciation,
    /// Timed questions from the activity's content.
    SpeedQuiz,
}

string_enum!(DemoType, "readflow, pronunciation, speed-quiz", {
    Readflow => "readflow",
    Pronunciation => "pronunciation",
    SpeedQuiz => "speed-quiz",
});

/// Where a demo session stands (`demo_voice_sessions.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionStatus {
    /// Created and not yet ended: it may relay, mint and log.
    Active,
    /// Ended by its owner; it refuses everything with `409`.
    Ended,
}

string_enum!(SessionStatus, "active, ended", {
    Active => "active",
    Ended => "ended",
});

/// What a logged interaction records (`demo_interactions.interaction_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InteractionType {
    /// What the student said, as transcribed (with word timings when known).
    UserTranscript,
    /// What the model said.
    AssistantTranscript,
    /// A function call the model made: `payload` is `{"name", "arguments"}`.
    ToolCall,
    /// Anything else the client observed (a reconnect, a barge-in, a UI step).
    Event,
}

string_enum!(
    InteractionType,
    "user_transcript, assistant_transcript, tool_call, event",
    {
        UserTranscript => "user_transcript",
        AssistantTranscript => "assistant_transcript",
        ToolCall => "tool_call",
        Event => "event",
    }
);

/// A row of `demo_activities`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoActivity {
    pub id: Uuid,
    pub demo_type: DemoType,
    /// A BCP 47 tag (`en`, `es`, `pt-BR`).
    pub language: String,
    pub grade_level: i32,
    pub title: String,
    pub description: Option<String>,
    /// Type-specific: a passage, words to pronounce, quiz questions.
    pub content: Value,
    pub is_published: bool,
}

/// A row of `demo_voice_sessions`.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSession {
    pub id: Uuid,
    pub demo_activity_id: Uuid,
    pub student_id: Uuid,
    pub status: SessionStatus,
    /// What is sent to OpenAI for this session, fixed when the session is created.
    pub session_config: Value,
    pub openai_call_id: Option<String>,
    pub telemetry: Value,
    /// UTC.
    pub started_at: NaiveDateTime,
    /// UTC; set when the session ends.
    pub ended_at: Option<NaiveDateTime>,
}

/// A UTC timestamp as RFC 3339 with a `Z`, the way the API shows times.
pub fn utc_rfc3339(at: NaiveDateTime) -> String {
    at.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_their_sql_spelling() {
        for demo_type in DemoType::ALL {
            assert_eq!(demo_type.as_str().parse::<DemoType>(), Ok(*demo_type));
        }
        for status in SessionStatus::ALL {
            assert_eq!(status.as_str().parse::<SessionStatus>(), Ok(*status));
        }
        for kind in InteractionType::ALL {
            assert_eq!(kind.as_str().parse::<InteractionType>(), Ok(*kind));
        }
        assert_eq!("speed-quiz".parse::<DemoType>(), Ok(DemoType::SpeedQuiz));
    }

    #[test]
    fn unknown_values_name_the_accepted_ones() {
        let error = "karaoke".parse::<DemoType>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown value `karaoke`, expected one of: readflow, pronunciation, speed-quiz"
        );
        assert!("Readflow".parse::<DemoType>().is_err());
    }

    #[test]
    fn enums_serialise_as_their_sql_spelling() {
        assert_eq!(
            serde_json::to_value(DemoType::SpeedQuiz).unwrap(),
            "speed-quiz"
        );
        let kind: InteractionType = serde_json::from_str("\"tool_call\"").unwrap();
        assert_eq!(kind, InteractionType::ToolCall);
        assert!(serde_json::from_str::<InteractionType>("\"shout\"").is_err());
    }

    #[test]
    fn timestamps_print_as_utc_rfc3339() {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 21)
            .unwrap()
            .and_hms_milli_opt(9, 30, 0, 250)
            .unwrap();
        assert_eq!(utc_rfc3339(at), "2026-11-21T09:30:00.250Z");
    }
}
