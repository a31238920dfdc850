//! The bodies `realtime-student-guide-token` accepts, parsed into typed requests.
//!
//! Every refusal is a `400` naming the field: an unknown persona, a language outside
//! the allow-list, a malformed UUID, a body that is not JSON.

use serde::Deserialize;
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::parse_json;
use crate::languages::{self, Language};
use crate::personas::Persona;

/// `POST /functions/v1/realtime-student-guide-token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    pub persona: Persona,
    /// From the allow-list; English when the body names none.
    pub language: &'static Language,
    /// The classroom activity the session is for, when the client says.
    pub activity_id: Option<Uuid>,
}

#[derive(Deserialize)]
struct MintBody {
    persona: Persona,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    activity_id: Option<Uuid>,
}

/// `POST /functions/v1/realtime-student-guide-token/refresh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshRequest {
    pub session_id: Uuid,
}

#[derive(Deserialize)]
struct RefreshBody {
    #[serde(rename = "sessionId")]
    session_id: Uuid,
}

impl MintRequest {
    /// Parses a mint body.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let MintBody {
            persona,
            language,
            activity_id,
        } = parse_json(body)?;
        Ok(Self {
            persona,
            language: languages::parse("language", language.as_deref())?,
            activity_id,
        })
    }
}

impl RefreshRequest {
    /// Parses a refresh body.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let RefreshBody { session_id } = parse_json(body)?;
        Ok(Self { session_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_field(error: ApiError) -> Option<String> {
        assert_eq!(error.status(), 400, "{error:?}");
        match error {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("not a bad request: {other:?}"),
        }
    }

    #[test]
    fn a_minimal_body_gets_english_and_no_activity() {
        let request = MintRequest::parse(br#"{"persona": "student-tutor"}"#).unwrap();
        assert_eq!(request.persona, Persona::StudentTutor);
        assert_eq!(request.language.tag, "en");
        assert_eq!(request.activity_id, None);
    }

    #[test]
    fn language_and_activity_are_read_and_the_tag_made_canonical() {
        let request = MintRequest::parse(
            br#"{"persona": "demo-guide", "language": "pt-br",
                 "activity_id": "0b6f8a2e-8d0e-4c55-9d43-2f1f8f3b1c77"}"#,
        )
        .unwrap();
        assert_eq!(request.persona, Persona::DemoGuide);
        assert_eq!(request.language.tag, "pt-BR");
        assert_eq!(
            request.activity_id.unwrap().to_string(),
            "0b6f8a2e-8d0e-4c55-9d43-2f1f8f3b1c77"
        );
    }

    #[test]
    fn an_unknown_persona_is_refused_naming_persona() {
        let error = MintRequest::parse(br#"{"persona": "pirate"}"#).unwrap_err();
        assert_eq!(refused_field(error).as_deref(), Some("persona"));
    }

    #[test]
    fn a_missing_persona_is_refused_naming_persona() {
        let error = MintRequest::parse(br#"{"language": "en"}"#).unwrap_err();
        assert_eq!(refused_field(error).as_deref(), Some("persona"));
    }

    #[test]
    fn a_language_outside_the_list_or_of_the_wrong_type_is_refused_naming_language() {
        for body in [
            br#"{"persona": "demo-guide", "language": "tlh"}"#.as_slice(),
            br#"{"persona": "demo-guide", "language": 7}"#,
        ] {
            let error = MintRequest::parse(body).unwrap_err();
            assert_eq!(refused_field(error).as_deref(), Some("language"));
        }
    }

    #[test]
    fn a_malformed_activity_id_is_refused_naming_it() {
        let error =
            MintRequest::parse(br#"{"persona": "demo-guide", "activity_id": "nope"}"#).unwrap_err();
        assert_eq!(refused_field(error).as_deref(), Some("activity_id"));
    }

    #[test]
    fn a_body_that_is_not_json_is_refused() {
        for body in [b"persona=demo-guide".as_slice(), b"", b"[]"] {
            assert_eq!(MintRequest::parse(body).unwrap_err().status(), 400);
        }
    }

    #[test]
    fn refresh_needs_a_session_id_that_is_a_uuid() {
        let id = "d2c4f4f0-2d5e-4d8f-8a4e-0b7a3f5b8e21";
        let request =
            RefreshRequest::parse(format!(r#"{{"sessionId": "{id}"}}"#).as_bytes()).unwrap();
        assert_eq!(request.session_id.to_string(), id);
        let error = RefreshRequest::parse(br#"{"sessionId": "42"}"#).unwrap_err();
        assert_eq!(refused_field(error).as_deref(), Some("sessionId"));
        let error = RefreshRequest::parse(br#"{}"#).unwrap_err();
        assert_eq!(refused_field(error).as_deref(), Some("sessionId"));
    }
}
