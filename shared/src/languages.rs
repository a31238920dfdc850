//! The languages the voice functions accept (CONTRACT.md sections 3 and 6a).
//!
//! A client names a language with a BCP 47 tag; [`lookup`] matches it against the
//! allow-list without regard to case (`pt-br`, `PT-BR` and `pt-BR` are the same tag, as
//! BCP 47 says) and returns the canonical tag with the language's English name, which is
//! what model instructions say ("Speak Portuguese (Brazil)"). Tags outside the list are
//! refused rather than guessed at: the list is what the instructions are written for.

use crate::error::ApiError;

/// A language of the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Language {
    /// The canonical BCP 47 tag (`pt-BR`).
    pub tag: &'static str,
    /// The English name, for model instructions (`Portuguese (Brazil)`).
    pub name: &'static str,
}

/// The tag used when a request names no language.
pub const DEFAULT_TAG: &str = "en";

/// Every accepted language, canonical tags first by base language.
pub const SUPPORTED: &[Language] = &[
    Language {
        tag: "en",
        name: "English",
    },
    Language {
        tag: "en-US",
        name: "English (United States)",
    },
    Language {
        tag: "en-GB",
        name: "English (United Kingdom)",
    },
    Language {
        tag: "es",
        name: "Spanish",
    },
    Language {
        tag: "es-MX",
        name: "Spanish (Mexico)",
    },
    Language {
        tag: "fr",
        name: "French",
    },
    Language {
        tag: "de",
        name: "German",
    },
    Language {
        tag: "pt",
        name: "Portuguese",
    },
    Language {
        tag: "pt-BR",
        name: "Portuguese (Brazil)",
    },
    Language {
        tag: "it",
        name: "Italian",
    },
    Language {
        tag: "nl",
        name: "Dutch",
    },
    Language {
        tag: "pl",
        name: "Polish",
    },
    Language {
        tag: "ru",
        name: "Russian",
    },
    Language {
        tag: "uk",
        name: "Ukrainian",
    },
    Language {
        tag: "tr",
        name: "Turkish",
    },
    Language {
        tag: "zh",
        name: "Chinese",
    },
    Language {
        tag: "zh-CN",
        name: "Chinese (Simplified)",
    },
    Language {
        tag: "zh-TW",
        name: "Chinese (Traditional)",
    },
    Language {
        tag: "ja",
        name: "Japanese",
    },
    Language {
        tag: "ko",
        name: "Korean",
    },
    Language {
        tag: "vi",
        name: "Vietnamese",
    },
    Language {
        tag: "ar",
        name: "Arabic",
    },
    Language {
        tag: "hi",
        name: "Hindi",
    },
];

/// The allow-listed language for `tag`, matched without regard to case.
pub fn lookup(tag: &str) -> Option<&'static Language> {
    SUPPORTED
        .iter()
        .find(|language| language.tag.eq_ignore_ascii_case(tag))
}

/// The language of a request field: the default when absent, a `400` naming `field`
/// (and listing the accepted tags) when the tag is not on the list.
pub fn parse(field: &str, tag: Option<&str>) -> Result<&'static Language, ApiError> {
    let tag = tag.unwrap_or(DEFAULT_TAG);
    lookup(tag).ok_or_else(|| {
        let accepted: Vec<&str> = SUPPORTED.iter().map(|language| language.tag).collect();
        ApiError::bad_field(
            field,
            format!("`{field}` must be one of {}", accepted.join(", ")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contracts_languages_are_all_accepted() {
        for tag in [
            "en", "es", "fr", "de", "pt", "pt-BR", "it", "zh", "ja", "ko", "ar", "hi",
        ] {
            assert_eq!(lookup(tag).map(|language| language.tag), Some(tag), "{tag}");
        }
    }

    #[test]
    fn tags_match_without_regard_to_case_and_come_back_canonical() {
        assert_eq!(lookup("pt-br").unwrap().tag, "pt-BR");
        assert_eq!(lookup("PT-BR").unwrap().tag, "pt-BR");
        assert_eq!(lookup("EN").unwrap().tag, "en");
        assert_eq!(lookup("zh-tw").unwrap().name, "Chinese (Traditional)");
    }

    #[test]
    fn names_are_english_names_for_instructions() {
        assert_eq!(lookup("de").unwrap().name, "German");
        assert_eq!(lookup("ja").unwrap().name, "Japanese");
        assert_eq!(lookup("pt-BR").unwrap().name, "Portuguese (Brazil)");
    }

    #[test]
    fn unlisted_or_malformed_tags_are_refused() {
        for tag in [
            "",
            "xx",
            "pt_BR",
            "english",
            "en-",
            " en",
            "fr-CA",
            "zh-Hans-CN",
        ] {
            assert_eq!(lookup(tag), None, "{tag:?}");
        }
    }

    #[test]
    fn parse_defaults_to_english_and_names_the_field_when_refusing() {
        assert_eq!(parse("language", None).unwrap().tag, "en");
        assert_eq!(parse("locale", Some("KO")).unwrap().tag, "ko");
        let error = parse("locale", Some("klingon")).unwrap_err();
        assert_eq!(error.status(), 400);
        let body = error.body();
        assert_eq!(body["field"], "locale");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("pt-BR"), "{message}");
        assert!(
            !message.contains("klingon"),
            "the refused value is not echoed: {message}"
        );
    }

    #[test]
    fn canonical_tags_are_unique_case_insensitively() {
        for (index, language) in SUPPORTED.iter().enumerate() {
            for other in &SUPPORTED[index + 1..] {
                assert!(
                    !language.tag.eq_ignore_ascii_case(other.tag),
                    "{}",
                    language.tag
                );
            }
        }
    }
}
