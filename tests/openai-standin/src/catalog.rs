//! What the stand-in knows of OpenAI's catalogue: the models (with their dated
//! snapshots, `gpt-4o-realtime-preview-2024-12-17`), which of them can run a Realtime
//! session, and the Realtime voices.

use serde_json::{Value, json};

/// Model families that can run a Realtime session; each also exists as dated snapshots.
pub const REALTIME_MODELS: &[&str] = &[
    "gpt-realtime",
    "gpt-realtime-mini",
    "gpt-4o-realtime-preview",
    "gpt-4o-mini-realtime-preview",
];

/// Other model families `GET /v1/models/{model}` answers for (the search models).
const OTHER_MODELS: &[&str] = &[
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4o-search-preview",
    "gpt-4o-mini-search-preview",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "o3",
    "o4-mini",
];

/// The built-in voices of the Realtime API.
pub const VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar",
];

/// The `created` time every model reports: fixed, so answers are reproducible.
const MODEL_CREATED: i64 = 1_698_959_748;

/// Whether `model` is a Realtime model family or one of its dated snapshots.
pub fn is_realtime_model(model: &str) -> bool {
    family_of(model, REALTIME_MODELS).is_some()
}

/// Whether `voice` is one of the Realtime voices.
pub fn is_voice(voice: &str) -> bool {
    VOICES.contains(&voice)
}

/// OpenAI's model object for `model`, or `None` when OpenAI has no such model.
pub fn model_object(model: &str) -> Option<Value> {
    family_of(model, REALTIME_MODELS).or_else(|| family_of(model, OTHER_MODELS))?;
    Some(json!({
        "id": model,
        "object": "model",
        "created": MODEL_CREATED,
        "owned_by": "system",
    }))
}

/// Every model family, as OpenAI's list object.
pub fn model_list() -> Value {
    let data: Vec<Value> = REALTIME_MODELS
        .iter()
        .chain(OTHER_MODELS)
        .filter_map(|model| model_object(model))
        .collect();
    json!({"object": "list", "data": data})
}

/// The family `model` belongs to: the family itself or `family-YYYY-MM-DD`.
fn family_of(model: &str, families: &[&'static str]) -> Option<&'static str> {
    families.iter().copied().find(|family| {
        model == *family
            || model
                .strip_prefix(family)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(is_date)
    })
}

fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            4 | 7 => *byte == b'-',
            _ => byte.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_families_and_dated_snapshots_are_realtime_models() {
        assert!(is_realtime_model("gpt-realtime"));
        assert!(is_realtime_model("gpt-realtime-mini"));
        assert!(is_realtime_model("gpt-realtime-2025-08-28"));
        assert!(is_realtime_model("gpt-4o-realtime-preview-2024-12-17"));
        assert!(is_realtime_model("gpt-4o-mini-realtime-preview-2024-12-17"));
    }

    #[test]
    fn other_names_are_not_realtime_models() {
        assert!(!is_realtime_model("gpt-4.1-mini"));
        assert!(!is_realtime_model("gpt-realtime-latest"));
        assert!(!is_realtime_model("gpt-realtime-2025-8-28"));
        assert!(!is_realtime_model("GPT-REALTIME"));
        assert!(!is_realtime_model(""));
    }

    #[test]
    fn voices_are_the_documented_ten() {
        for voice in ["alloy", "ash", "marin", "cedar", "verse"] {
            assert!(is_voice(voice), "{voice}");
        }
        assert!(!is_voice("nova"));
        assert!(!is_voice("Ash"));
    }

    #[test]
    fn model_object_has_openai_shape_for_known_models_only() {
        let model = model_object("gpt-4.1-mini-2025-04-14").unwrap();
        assert_eq!(model["id"], "gpt-4.1-mini-2025-04-14");
        assert_eq!(model["object"], "model");
        assert_eq!(model["owned_by"], "system");
        assert!(model["created"].is_i64());
        assert!(model_object("gpt-unknown").is_none());
    }
}
