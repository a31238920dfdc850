//! `requests`: the token function's mint and refresh bodies ([`MintRequest::parse`],
//! [`RefreshRequest::parse`]) and the search function's body ([`SearchRequest::parse`]),
//! byte 0 choosing which.
//!
//! Oracle: a mint request names a persona and a language of the allow-list; a search
//! request's query is trimmed, not empty, at most 500 characters, its locale from the allow-list and its citation count 1–10;
//! every refusal is a `400`.

use voice_edge_shared::languages;
use voice_edge_shared::search::request::{MAX_CITATIONS, MAX_QUERY_CHARS, SearchRequest};
use voice_edge_shared::token::request::{MintRequest, RefreshRequest};

use crate::mode;

pub fn run(data: &[u8]) {
    let (mode, body) = mode(data);
    match mode % 3 {
        0 => match MintRequest::parse(body) {
            Ok(request) => {
                let listed = languages::lookup(request.language.tag);
                assert_eq!(
                    listed.map(|language| language.tag),
                    Some(request.language.tag)
                );
            }
            Err(error) => assert_eq!(error.status(), 400),
        },
        1 => {
            if let Err(error) = RefreshRequest::parse(body) {
                assert_eq!(error.status(), 400);
            }
        }
        _ => match SearchRequest::parse(body) {
            Ok(request) => {
                assert_eq!(request.query.trim(), request.query);
                let chars = request.query.chars().count();
                assert!((1..=MAX_QUERY_CHARS).contains(&chars));
                assert!((1..=MAX_CITATIONS).contains(&request.max_citations));
                if let Some(locale) = request.locale {
                    assert!(languages::lookup(locale.tag).is_some());
                }
            }
            Err(error) => assert_eq!(error.status(), 400),
        },
    }
}
