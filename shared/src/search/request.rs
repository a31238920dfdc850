//! The body `voice-agent-search` accepts, checked into a typed [`SearchRequest`].
//!
//! `{"query": string, "locale"?: BCP 47 tag, "max_citations"?: integer}`: the query is
//! 1–[`MAX_QUERY_CHARS`] characters once trimmed, the locale comes from the shared
//! allow-list (`crate::languages`), `max_citations` is 1–[`MAX_CITATIONS`] and
//! [`DEFAULT_MAX_CITATIONS`] when absent. Every refusal is a `400` naming the field;
//! none of them quotes the query back, since queries are the caller's words.

use serde::Deserialize;

use crate::error::ApiError;
use crate::http::parse_json;
use crate::languages::{self, Language};

/// The longest query accepted, in characters (Unicode scalar values), after trimming.
pub const MAX_QUERY_CHARS: usize = 500;
/// Citations returned when the body does not say.
pub const DEFAULT_MAX_CITATIONS: usize = 5;
/// The most citations a caller may ask for.
pub const MAX_CITATIONS: usize = 10;

/// A checked search request.
#[derive(Clone, PartialEq, Eq)]
pub struct SearchRequest {
    /// The query, trimmed (case and inner spacing as the caller wrote them).
    pub query: String,
    /// The language the answer should be in; `None` leaves it to the model.
    pub locale: Option<&'static Language>,
    /// How many citations the answer carries at most.
    pub max_citations: usize,
}

// The query is a user's words: keep it out of any debug print that could reach a log.
impl std::fmt::Debug for SearchRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchRequest")
            .field(
                "query",
                &format_args!("[{} chars]", self.query.chars().count()),
            )
            .field("locale", &self.locale.map(|language| language.tag))
            .field("max_citations", &self.max_citations)
            .finish()
    }
}

#[derive(Deserialize)]
struct SearchBody {
    query: String,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    max_citations: Option<i64>,
}

impl SearchRequest {
    /// Parses and checks a request body.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let SearchBody {
            query,
            locale,
            max_citations,
        } = parse_json(body)?;

        let query = query.trim();
        let length = query.chars().count();
        if length == 0 {
            return Err(ApiError::bad_field("query", "`query` must not be empty"));
        }
        if length > MAX_QUERY_CHARS {
            return Err(ApiError::bad_field(
                "query",
                format!("`query` must be at most {MAX_QUERY_CHARS} characters (it has {length})"),
            ));
        }

        let locale = match locale {
            None => None,
            Some(tag) => Some(languages::parse("locale", Some(&tag))?),
        };

        let max_citations = match max_citations {
            None => DEFAULT_MAX_CITATIONS,
            Some(count) if (1..=MAX_CITATIONS as i64).contains(&count) => count as usize,
            Some(_) => {
                return Err(ApiError::bad_field(
                    "max_citations",
                    format!("`max_citations` must be between 1 and {MAX_CITATIONS}"),
                ));
            }
        };

        Ok(Self {
            query: query.to_string(),
            locale,
            max_citations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_field(body: &str) -> Option<String> {
        let error = SearchRequest::parse(body.as_bytes()).unwrap_err();
        assert_eq!(error.status(), 400, "{error:?}");
        match error {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("not a bad request: {other:?}"),
        }
    }

    #[test]
    fn a_minimal_body_gets_no_locale_and_five_citations() {
        let request = SearchRequest::parse(br#"{"query": "  tides in Lisbon today "}"#).unwrap();
        assert_eq!(request.query, "tides in Lisbon today");
        assert_eq!(request.locale, None);
        assert_eq!(request.max_citations, 5);
    }

    #[test]
    fn locale_is_made_canonical_and_max_citations_read() {
        let request =
            SearchRequest::parse(br#"{"query": "q", "locale": "pt-br", "max_citations": 10}"#)
                .unwrap();
        assert_eq!(request.locale.map(|language| language.tag), Some("pt-BR"));
        assert_eq!(request.max_citations, 10);
        let request =
            SearchRequest::parse(br#"{"query": "q", "locale": null, "max_citations": 1}"#).unwrap();
        assert_eq!(request.locale, None);
        assert_eq!(request.max_citations, 1);
    }

    #[test]
    fn an_empty_or_blank_or_missing_query_is_refused_naming_query() {
        for body in [
            r#"{"query": ""}"#,
            r#"{"query": " \n\t "}"#,
            r#"{"locale": "en"}"#,
            r#"{"query": null}"#,
            r#"{"query": 42}"#,
        ] {
            assert_eq!(refused_field(body).as_deref(), Some("query"), "{body}");
        }
    }

    #[test]
    fn the_query_limit_counts_characters_after_trimming() {
        let at_limit = format!(r#"{{"query": "  {}  "}}"#, "é".repeat(MAX_QUERY_CHARS));
        assert_eq!(
            SearchRequest::parse(at_limit.as_bytes())
                .unwrap()
                .query
                .chars()
                .count(),
            MAX_QUERY_CHARS
        );
        let over = format!(r#"{{"query": "{}"}}"#, "a".repeat(MAX_QUERY_CHARS + 1));
        assert_eq!(refused_field(&over).as_deref(), Some("query"));
    }

    #[test]
    fn a_refusal_does_not_quote_the_query() {
        let over = format!(
            r#"{{"query": "secret-topic {}"}}"#,
            "a".repeat(MAX_QUERY_CHARS)
        );
        let error = SearchRequest::parse(over.as_bytes()).unwrap_err();
        assert!(!error.body().to_string().contains("secret-topic"));
        assert!(!format!("{error:?}").contains("secret-topic"));
    }

    #[test]
    fn an_unknown_or_mistyped_locale_is_refused_naming_locale() {
        for body in [
            r#"{"query": "q", "locale": "tlh"}"#,
            r#"{"query": "q", "locale": ""}"#,
            r#"{"query": "q", "locale": 3}"#,
        ] {
            assert_eq!(refused_field(body).as_deref(), Some("locale"), "{body}");
        }
    }

    #[test]
    fn max_citations_outside_one_to_ten_or_not_an_integer_is_refused_naming_it() {
        for value in ["0", "11", "-1", "2.5", "\"5\"", "99999999999999999999"] {
            let body = format!(r#"{{"query": "q", "max_citations": {value}}}"#);
            assert_eq!(
                refused_field(&body).as_deref(),
                Some("max_citations"),
                "{value}"
            );
        }
    }

    #[test]
    fn a_body_that_is_not_a_json_object_is_refused() {
        for body in [b"query=x".as_slice(), b"", b"[]", b"\"q\""] {
            assert_eq!(SearchRequest::parse(body).unwrap_err().status(), 400);
        }
    }

    #[test]
    fn debug_hides_the_query() {
        let request = SearchRequest::parse(br#"{"query": "my private question"}"#).unwrap();
        let printed = format!("{request:?}");
        assert!(!printed.contains("private"), "{printed}");
        assert!(printed.contains("19 chars"), "{printed}");
    }
}
