//! The voice personas of `realtime-student-guide-token`, and their instructions.
//!
//! This is the one place that says how each persona speaks: `demo-guide` is warm,
//! friendly and less formal, for quick platform demos; `student-tutor` is a
//! professional, formal tutor for classroom activities. Both speak the language the
//! caller chose. The instructions are sent to OpenAI as `session.instructions`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Who the model is in a voice session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Persona {
    /// Warm and friendly; quick platform demos (`/demo/realtime-guide`). Anon callers allowed.
    DemoGuide,
    /// Professional and formal; classroom activities. Signed-in students, behind the rollout.
    StudentTutor,
}

impl Persona {
    /// Every persona, in the order the contract lists them.
    pub const ALL: [Persona; 2] = [Persona::StudentTutor, Persona::DemoGuide];

    /// The persona's name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Persona::DemoGuide => "demo-guide",
            Persona::StudentTutor => "student-tutor",
        }
    }

    /// Whether the persona is gated by the `voice_webrtc_migration` rollout flag.
    pub fn behind_rollout(self) -> bool {
        matches!(self, Persona::StudentTutor)
    }

    /// The instructions for a session held in `language` (a BCP 47 tag and the
    /// language's English name, as the allow-list gives them).
    pub fn instructions(self, language_tag: &str, language_name: &str) -> String {
        let character = match self {
            Persona::DemoGuide => DEMO_GUIDE,
            Persona::StudentTutor => STUDENT_TUTOR,
        };
        format!(
            "{character}\n\nLanguage: speak {language_name} (BCP 47 tag `{language_tag}`) \
             at all times, from your first word on. If the student uses another language, \
             answer in {language_name} anyway, simply and clearly, unless they ask you \
             to translate or explain a word."
        )
    }
}

impl fmt::Display for Persona {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A persona name that is not one of [`Persona::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown persona `{0}`: expected `student-tutor` or `demo-guide`")]
pub struct UnknownPersona(pub String);

impl FromStr for Persona {
    type Err = UnknownPersona;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Persona::ALL
            .into_iter()
            .find(|persona| persona.as_str() == name)
            .ok_or_else(|| UnknownPersona(name.to_string()))
    }
}

const DEMO_GUIDE: &str = "You are the demo guide of a school learning platform, showing \
visitors around in a quick voice demo. Be warm, friendly and relaxed: talk like a \
helpful friend, not a lecturer, and keep the tone light and encouraging. Keep each \
answer short (two or three sentences), invite the visitor to try things out loud, and \
show what practising with a voice tutor feels like: reading aloud, pronunciation and \
quick quizzes. If you do not know something about the platform, say so plainly rather \
than guessing.";

const STUDENT_TUTOR: &str = "You are a professional tutor guiding a student through a \
classroom activity. Be formal, courteous and precise: address the student respectfully, \
explain step by step, and check understanding before moving on. Keep to the activity at \
hand; encourage the student to attempt each step themselves before you give the answer, \
correct mistakes clearly and kindly, and give specific feedback on pronunciation and \
wording. Keep answers concise and suitable for a school setting; decline politely to \
discuss anything inappropriate for students.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_as_str_from_str_and_serde() {
        for persona in Persona::ALL {
            assert_eq!(persona.as_str().parse::<Persona>(), Ok(persona));
            let json = serde_json::to_string(&persona).unwrap();
            assert_eq!(json, format!("\"{}\"", persona.as_str()));
            assert_eq!(serde_json::from_str::<Persona>(&json).unwrap(), persona);
        }
    }

    #[test]
    fn unknown_persona_names_are_refused() {
        assert_eq!(
            "pirate".parse::<Persona>(),
            Err(UnknownPersona("pirate".into()))
        );
        assert!("Student-Tutor".parse::<Persona>().is_err());
        assert!(serde_json::from_str::<Persona>("\"student_tutor\"").is_err());
    }

    #[test]
    fn only_the_student_tutor_is_behind_the_rollout() {
        assert!(Persona::StudentTutor.behind_rollout());
        assert!(!Persona::DemoGuide.behind_rollout());
    }

    #[test]
    fn demo_guide_is_warm_and_informal_and_tutor_is_formal() {
        let guide = Persona::DemoGuide.instructions("en", "English");
        let tutor = Persona::StudentTutor.instructions("en", "English");
        assert!(guide.contains("warm, friendly"));
        assert!(guide.contains("demo"));
        assert!(tutor.contains("professional tutor"));
        assert!(tutor.contains("formal"));
        assert!(tutor.contains("classroom activity"));
        assert_ne!(guide, tutor);
    }

    #[test]
    fn instructions_tell_the_model_to_speak_the_chosen_language() {
        for persona in Persona::ALL {
            let text = persona.instructions("pt-BR", "Brazilian Portuguese");
            assert!(text.contains("speak Brazilian Portuguese"), "{text}");
            assert!(text.contains("`pt-BR`"), "{text}");
            assert!(!text.contains("English"), "{text}");
        }
    }
}
