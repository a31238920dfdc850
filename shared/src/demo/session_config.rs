//! The OpenAI Realtime session configuration of a demo session, built from its demo
//! activity: instructions for the demo type in the activity's language and at its grade
//! level, the voice, input transcription on (so the client gets word-level transcripts
//! to post back as interactions), turn detection suited to the type, and the type's
//! tools for function calling.
//!
//! The same configuration goes into the `session` part of the SDP relay's multipart
//! body and into the `session` of a client-secret request, so both ways of connecting
//! get the same model behaviour. Pure code: the model and voice are passed in.

use serde::Serialize;
use serde_json::{Value, json};

use super::model::{DemoActivity, DemoType};
use crate::languages;

/// The model that transcribes the student's audio.
pub const TRANSCRIPTION_MODEL: &str = "gpt-4o-transcribe";

/// Most characters of activity content put into the instructions.
const CONTENT_CHAR_LIMIT: usize = 6000;

/// Seconds per quiz question when the activity does not say.
const DEFAULT_QUIZ_SECONDS: u64 = 15;

/// The server-side settings a session configuration needs.
#[derive(Debug, Clone, Copy)]
pub struct RealtimeSettings<'a> {
    /// `openai_realtime_model`.
    pub model: &'a str,
    /// `realtime_voice`.
    pub voice: &'a str,
}

/// A Realtime session configuration (`type: realtime`), as OpenAI takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionConfig {
    #[serde(rename = "type")]
    pub session_type: &'static str,
    pub model: String,
    pub instructions: String,
    pub audio: AudioConfig,
    /// Per-token log probabilities of the transcription, for word confidence.
    pub include: Vec<&'static str>,
    pub tools: Vec<Tool>,
    pub tool_choice: &'static str,
}

/// `audio.input` and `audio.output` of a session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioConfig {
    pub input: AudioInput,
    pub output: AudioOutput,
}

/// `audio.input`: what happens to the student's audio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioInput {
    pub transcription: Transcription,
    pub turn_detection: TurnDetection,
}

/// Input transcription: on for every demo, in the activity's language.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcription {
    pub model: &'static str,
    /// ISO 639-1, the primary subtag of the activity's language.
    pub language: String,
}

/// Semantic voice activity detection; `low` eagerness lets a reader pause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnDetection {
    #[serde(rename = "type")]
    pub detection_type: &'static str,
    pub eagerness: &'static str,
}

/// `audio.output`: the model's voice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioOutput {
    pub voice: String,
}

/// A function the model may call; its arguments come back to the client, which posts
/// them as a `tool_call` interaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tool {
    #[serde(rename = "type")]
    pub tool_type: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    /// A JSON Schema object.
    pub parameters: Value,
}

impl SessionConfig {
    /// The configuration as a JSON value (what is stored and sent).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a session configuration always serialises")
    }
}

/// Builds the session configuration for `activity`.
pub fn build_session_config(
    activity: &DemoActivity,
    settings: RealtimeSettings<'_>,
) -> SessionConfig {
    SessionConfig {
        session_type: "realtime",
        model: settings.model.to_string(),
        instructions: instructions(activity),
        audio: AudioConfig {
            input: AudioInput {
                transcription: Transcription {
                    model: TRANSCRIPTION_MODEL,
                    language: primary_subtag(&activity.language),
                },
                turn_detection: TurnDetection {
                    detection_type: "semantic_vad",
                    eagerness: match activity.demo_type {
                        DemoType::Readflow => "low",
                        DemoType::Pronunciation | DemoType::SpeedQuiz => "auto",
                    },
                },
            },
            output: AudioOutput {
                voice: settings.voice.to_string(),
            },
        },
        include: vec!["item.input_audio_transcription.logprobs"],
        tools: tools_for(activity.demo_type),
        tool_choice: "auto",
    }
}

/// `pt` for `pt-BR`, `zh` for `zh-Hant`: what the transcription model takes.
fn primary_subtag(tag: &str) -> String {
    tag.split(['-', '_'])
        .next()
        .unwrap_or(tag)
        .to_ascii_lowercase()
}

/// The English name of an activity's language, for the instructions; a tag outside
/// the allow-list (the table does not constrain it) is named by the tag itself.
fn language_name(tag: &str) -> &str {
    languages::lookup(tag).map_or(tag, |language| language.name)
}

/// The instructions: a common opening, the type's coaching, then the content.
pub fn instructions(activity: &DemoActivity) -> String {
    let language_name = language_name(&activity.language);
    let grade = match activity.grade_level {
        level if level <= 0 => "kindergarten".to_string(),
        level => format!("grade {level}"),
    };
    let mut text = format!(
        "You are a warm, patient voice coach in a short demo of a school learning \
         platform. The activity is \"{title}\". Speak only {language_name} ({tag}) \
         throughout; if the student uses another language, answer briefly in \
         {language_name} and bring them back to the activity. The student is in {grade}: \
         use words and sentences a {grade} student understands. Keep each of your turns \
         to one or two short sentences, encourage effort, and never ask for personal \
         information.\n\n",
        title = activity.title,
        tag = activity.language,
    );
    match activity.demo_type {
        DemoType::Readflow => readflow_instructions(&activity.content, &mut text),
        DemoType::Pronunciation => pronunciation_instructions(&activity.content, &mut text),
        DemoType::SpeedQuiz => speed_quiz_instructions(&activity.content, &mut text),
    }
    text
}

fn readflow_instructions(content: &Value, text: &mut String) {
    text.push_str(
        "This is a read-along session. Greet the student and ask them to read the passage \
         below aloud. Follow along word by word while they read and do not interrupt a \
         fluent reader. When they finish, or stop for a long time, estimate their reading \
         speed in words per minute and their accuracy (the percentage of the passage's \
         words read correctly), call record_reading_metrics with those numbers and the \
         words they skipped or misread, then tell them how it went: praise one thing, \
         and model the correct reading of at most three words they missed. Offer to \
         read it again.",
    );
    if let Some(target) = content.get("target_wpm").and_then(Value::as_u64) {
        text.push_str(&format!(
            " A good pace for this passage is about {target} words per minute."
        ));
    }
    let focus_words = string_list(content, &["focus_words"]);
    if !focus_words.is_empty() {
        text.push_str(&format!(
            " Listen closely to these words: {}.",
            focus_words.join(", ")
        ));
    }
    let Some(passage) = string_field(content, &["passage", "text"]) else {
        append_raw_content(content, text);
        return;
    };
    let words = passage.split_whitespace().count();
    text.push_str(&format!(
        "\n\nPassage ({words} words):\n\"\"\"\n{}\n\"\"\"",
        clip(passage)
    ));
    let questions = questions(content);
    if !questions.is_empty() {
        text.push_str(
            "\n\nAfter the feedback, check understanding with these questions, one at a \
             time:",
        );
        append_numbered(&questions, text);
    }
}

fn pronunciation_instructions(content: &Value, text: &mut String) {
    text.push_str(
        "This is a pronunciation session. Take the items below one at a time: say the \
         item clearly, ask the student to repeat it, and listen sound by sound. Name the \
         exact sound that was off (for example the \"th\" in \"think\"), explain how to \
         shape the lips, tongue or breath for it, and let them try again, at most three \
         times per item. After each try, call record_pronunciation_feedback with the \
         item, the sound you judged, a score from 0 to 100 and a short tip. Move on with \
         praise when the item is right.",
    );
    let mut sounds = string_list(content, &["focus_sounds", "sounds"]);
    if let Some(sound) = string_field(content, &["focus_sound"]) {
        sounds.insert(0, sound.to_string());
    }
    if !sounds.is_empty() {
        text.push_str(&format!(" The sounds to work on: {}.", sounds.join(", ")));
    }
    // Words may be plain strings or {word, ipa, phonemes, tip}; sentences follow them.
    let mut items: Vec<String> = content
        .get("words")
        .or_else(|| content.get("phrases"))
        .and_then(Value::as_array)
        .map(|words| words.iter().filter_map(pronunciation_item).collect())
        .unwrap_or_default();
    items.extend(string_list(content, &["sentences"]));
    if items.is_empty() {
        append_raw_content(content, text);
        return;
    }
    text.push_str("\n\nItems:");
    append_numbered(&items, text);
}

fn pronunciation_item(word: &Value) -> Option<String> {
    let fields = match word {
        Value::String(text) => return non_empty(text).map(str::to_string),
        Value::Object(fields) => fields,
        _ => return None,
    };
    let mut line = non_empty(fields.get("word")?.as_str()?)?.to_string();
    if let Some(ipa) = fields
        .get("ipa")
        .and_then(Value::as_str)
        .and_then(non_empty)
    {
        line.push_str(&format!(" ({ipa})"));
    }
    let phonemes: Vec<&str> = fields
        .get("phonemes")
        .and_then(Value::as_array)
        .map(|phonemes| phonemes.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !phonemes.is_empty() {
        line.push_str(&format!(", sounds: {}", phonemes.join(" ")));
    }
    if let Some(tip) = fields
        .get("tip")
        .and_then(Value::as_str)
        .and_then(non_empty)
    {
        line.push_str(&format!(", tip: {tip}"));
    }
    Some(line)
}

fn speed_quiz_instructions(content: &Value, text: &mut String) {
    let seconds = content
        .get("time_limit_seconds")
        .and_then(Value::as_u64)
        .filter(|seconds| *seconds > 0)
        .unwrap_or(DEFAULT_QUIZ_SECONDS);
    text.push_str(&format!(
        "This is a speed quiz. Ask the questions below one at a time, in order, and keep \
         the pace brisk and fun. The student has {seconds} seconds for each answer; when \
         the time is up, give the answer and move on. After each answer say in one short \
         sentence whether it is right, with the correct answer when it is not, and call \
         record_quiz_answer with the question's number, what the student said and whether \
         it was correct. After the last question, call finish_quiz with the score and \
         tell the student how they did."
    ));
    if let Some(topic) = string_field(content, &["topic"]) {
        text.push_str(&format!(" The quiz is about {topic}."));
    }
    let questions = questions(content);
    if questions.is_empty() {
        append_raw_content(content, text);
        return;
    }
    text.push_str("\n\nQuestions:");
    append_numbered(&questions, text);
}

/// `questions` (speed quiz) or `comprehension_questions` (readflow), each a string or
/// `{question, answer, accepted_answers}`, as one line per question.
fn questions(content: &Value) -> Vec<String> {
    content
        .get("questions")
        .or_else(|| content.get("comprehension_questions"))
        .and_then(Value::as_array)
        .map(|questions| questions.iter().filter_map(question_line).collect())
        .unwrap_or_default()
}

fn question_line(question: &Value) -> Option<String> {
    let fields = match question {
        Value::String(text) => return non_empty(text).map(str::to_string),
        Value::Object(fields) => fields,
        _ => return None,
    };
    let mut line = non_empty(fields.get("question")?.as_str()?)?.to_string();
    let answer = fields.get("answer").and_then(|answer| match answer {
        Value::String(text) => non_empty(text).map(str::to_string),
        Value::Null => None,
        other => Some(other.to_string()),
    });
    if let Some(answer) = answer {
        line.push_str(&format!(" (expected answer: {answer}"));
        let accepted: Vec<&str> = fields
            .get("accepted_answers")
            .and_then(Value::as_array)
            .map(|accepted| accepted.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !accepted.is_empty() {
            line.push_str(&format!("; also accept: {}", accepted.join(", ")));
        }
        line.push(')');
    }
    Some(line)
}

fn non_empty(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|text| !text.is_empty())
}

fn string_field<'a>(content: &'a Value, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|name| content.get(*name).and_then(Value::as_str))
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

fn string_list(content: &Value, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .find_map(|name| content.get(*name).and_then(Value::as_array))
        .map(|values| {
            values
                .iter()
                .filter_map(Value::as_str)
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn append_numbered(lines: &[String], text: &mut String) {
    let mut list = String::new();
    for (index, line) in lines.iter().enumerate() {
        list.push_str(&format!("\n{}. {line}", index + 1));
    }
    text.push_str(&clip(&list));
}

/// Content that does not have the type's usual shape still reaches the model.
fn append_raw_content(content: &Value, text: &mut String) {
    text.push_str(&format!(
        "\n\nActivity content (JSON):\n{}",
        clip(&content.to_string())
    ));
}

fn clip(text: &str) -> String {
    if text.chars().count() <= CONTENT_CHAR_LIMIT {
        return text.to_string();
    }
    let mut clipped: String = text.chars().take(CONTENT_CHAR_LIMIT).collect();
    clipped.push_str(" …");
    clipped
}

/// The demo type's tools for function calling.
pub fn tools_for(demo_type: DemoType) -> Vec<Tool> {
    match demo_type {
        DemoType::Readflow => vec![Tool {
            tool_type: "function",
            name: "record_reading_metrics",
            description: "Record how the student read the passage: reading speed, accuracy \
                          and the words they skipped or misread.",
            parameters: json!({
                "type": "object",
                "properties": {
                    "words_per_minute": {"type": "number", "minimum": 0,
                        "description": "Estimated reading speed."},
                    "accuracy_percent": {"type": "number", "minimum": 0, "maximum": 100,
                        "description": "Share of the passage's words read correctly."},
                    "words_read": {"type": "integer", "minimum": 0},
                    "misread_words": {"type": "array", "items": {"type": "string"}},
                    "skipped_words": {"type": "array", "items": {"type": "string"}}
                },
                "required": ["words_per_minute", "accuracy_percent"],
                "additionalProperties": false
            }),
        }],
        DemoType::Pronunciation => vec![Tool {
            tool_type: "function",
            name: "record_pronunciation_feedback",
            description: "Record the feedback on one try at one item: the sound judged, a \
                          score and a tip.",
            parameters: json!({
                "type": "object",
                "properties": {
                    "item": {"type": "string", "description": "The word or phrase tried."},
                    "sound": {"type": "string",
                        "description": "The sound judged, as letters or IPA."},
                    "score": {"type": "number", "minimum": 0, "maximum": 100},
                    "is_correct": {"type": "boolean"},
                    "tip": {"type": "string"}
                },
                "required": ["item", "score", "is_correct"],
                "additionalProperties": false
            }),
        }],
        DemoType::SpeedQuiz => vec![
            Tool {
                tool_type: "function",
                name: "record_quiz_answer",
                description: "Record the student's answer to one question.",
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "question_number": {"type": "integer", "minimum": 1},
                        "student_answer": {"type": "string"},
                        "is_correct": {"type": "boolean"},
                        "timed_out": {"type": "boolean"}
                    },
                    "required": ["question_number", "is_correct"],
                    "additionalProperties": false
                }),
            },
            Tool {
                tool_type: "function",
                name: "finish_quiz",
                description: "Record the final score once the last question is done.",
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "correct_answers": {"type": "integer", "minimum": 0},
                        "total_questions": {"type": "integer", "minimum": 0}
                    },
                    "required": ["correct_answers", "total_questions"],
                    "additionalProperties": false
                }),
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const SETTINGS: RealtimeSettings<'static> = RealtimeSettings {
        model: "gpt-realtime",
        voice: "ash",
    };

    fn activity(demo_type: DemoType, language: &str, grade: i32, content: Value) -> DemoActivity {
        DemoActivity {
            id: Uuid::nil(),
            demo_type,
            language: language.into(),
            grade_level: grade,
            title: "The Fox".into(),
            description: None,
            content,
            is_published: true,
        }
    }

    #[test]
    fn readflow_config_coaches_reading_with_metrics_and_the_passage() {
        let activity = activity(
            DemoType::Readflow,
            "en",
            3,
            json!({"passage": "The quick brown fox jumps.", "target_wpm": 90,
                   "focus_words": ["quick"],
                   "comprehension_questions": [{"question": "What jumps?", "answer": "The fox"}]}),
        );
        let config = build_session_config(&activity, SETTINGS).to_value();
        assert_eq!(config["type"], "realtime");
        assert_eq!(config["model"], "gpt-realtime");
        assert_eq!(config["audio"]["output"]["voice"], "ash");
        assert_eq!(
            config["audio"]["input"]["transcription"]["model"],
            TRANSCRIPTION_MODEL
        );
        assert_eq!(config["audio"]["input"]["transcription"]["language"], "en");
        assert_eq!(
            config["audio"]["input"]["turn_detection"]["eagerness"],
            "low"
        );
        assert_eq!(config["tools"][0]["name"], "record_reading_metrics");
        assert_eq!(config["tools"][0]["type"], "function");
        let instructions = config["instructions"].as_str().unwrap();
        assert!(instructions.contains("words per minute"), "{instructions}");
        assert!(instructions.contains("accuracy"));
        assert!(instructions.contains("Passage (5 words)"));
        assert!(instructions.contains("The quick brown fox jumps."));
        assert!(instructions.contains("about 90 words per minute"));
        assert!(instructions.contains("Listen closely to these words: quick."));
        assert!(instructions.contains("1. What jumps? (expected answer: The fox)"));
        assert!(instructions.contains("Speak only English (en)"));
        assert!(instructions.contains("grade 3"));
    }

    #[test]
    fn pronunciation_config_asks_for_sound_by_sound_feedback() {
        let activity = activity(
            DemoType::Pronunciation,
            "es",
            2,
            json!({"focus_sound": "rr", "words": [
                "perro",
                {"word": "ferrocarril", "ipa": "fe.ro.ka'ril", "phonemes": ["f", "e", "r"], "tip": "trill"}
            ], "sentences": ["El perro corre."]}),
        );
        let config = build_session_config(&activity, SETTINGS);
        assert_eq!(config.tools.len(), 1);
        assert_eq!(config.tools[0].name, "record_pronunciation_feedback");
        assert!(config.instructions.contains("sound by sound"));
        assert!(
            config.instructions.contains(
                "\n1. perro\n2. ferrocarril (fe.ro.ka'ril), sounds: f e r, tip: trill\n3. El perro corre."
            ),
            "{}",
            config.instructions
        );
        assert!(config.instructions.contains("Speak only Spanish (es)"));
        assert!(config.instructions.contains("The sounds to work on: rr."));
        assert_eq!(config.audio.input.transcription.language, "es");
    }

    #[test]
    fn speed_quiz_config_lists_timed_questions_with_answers() {
        let activity = activity(
            DemoType::SpeedQuiz,
            "pt-BR",
            5,
            json!({"topic": "everyday facts", "time_limit_seconds": 10, "questions": [
                {"question": "2 + 2?", "answer": 4},
                {"question": "Capital of France?", "answer": "Paris", "accepted_answers": ["paris"]}
            ]}),
        );
        let config = build_session_config(&activity, SETTINGS);
        let names: Vec<_> = config.tools.iter().map(|tool| tool.name).collect();
        assert_eq!(names, ["record_quiz_answer", "finish_quiz"]);
        assert!(config.instructions.contains("10 seconds"));
        assert!(
            config
                .instructions
                .contains("1. 2 + 2? (expected answer: 4)")
        );
        assert!(
            config
                .instructions
                .contains("2. Capital of France? (expected answer: Paris; also accept: paris)")
        );
        assert!(
            config
                .instructions
                .contains("The quiz is about everyday facts.")
        );
        assert_eq!(config.audio.input.transcription.language, "pt");
        assert!(
            config
                .instructions
                .contains("Speak only Portuguese (Brazil) (pt-BR)")
        );
        assert_eq!(config.audio.input.turn_detection.eagerness, "auto");
    }

    #[test]
    fn content_of_an_unexpected_shape_still_reaches_the_model() {
        let activity = activity(
            DemoType::SpeedQuiz,
            "en",
            0,
            json!({"prompts": ["Name a colour"]}),
        );
        let config = build_session_config(&activity, SETTINGS);
        assert!(config.instructions.contains("Name a colour"));
        assert!(
            config
                .instructions
                .contains(&DEFAULT_QUIZ_SECONDS.to_string())
        );
        assert!(config.instructions.contains("kindergarten"));
    }

    #[test]
    fn a_language_outside_the_allow_list_is_named_by_its_tag() {
        let activity = activity(DemoType::Readflow, "sw", 2, json!({"passage": "Habari"}));
        let config = build_session_config(&activity, SETTINGS);
        assert!(config.instructions.contains("Speak only sw (sw)"));
        assert_eq!(config.audio.input.transcription.language, "sw");
    }

    #[test]
    fn long_content_is_clipped() {
        let passage = "word ".repeat(5000);
        let activity = activity(DemoType::Readflow, "en", 4, json!({ "passage": passage }));
        let config = build_session_config(&activity, SETTINGS);
        assert!(config.instructions.len() < CONTENT_CHAR_LIMIT + 2000);
        assert!(config.instructions.contains("Passage (5000 words)"));
    }

    #[test]
    fn every_tool_has_an_object_schema_with_its_required_fields_defined() {
        for demo_type in DemoType::ALL {
            for tool in tools_for(*demo_type) {
                assert_eq!(tool.parameters["type"], "object", "{}", tool.name);
                let properties = tool.parameters["properties"].as_object().unwrap();
                for required in tool.parameters["required"].as_array().unwrap() {
                    assert!(
                        properties.contains_key(required.as_str().unwrap()),
                        "{}",
                        tool.name
                    );
                }
            }
        }
    }
}
