//! The cache key of a search: the normalised query and the locale.
//!
//! Two queries that differ only in surrounding spaces, case or the runs of whitespace
//! between words are the same question to a voice agent ("What's the weather" and
//! "what's  the WEATHER"), so [`normalize_query`] folds them together; the locale is
//! part of the key because it changes the answer's language. [`cache_key`] hashes both
//! with SHA-256 into a fixed-length key, so that the primary key stays small whatever
//! the query's length.

use sha2::{Digest, Sha256};

/// Trimmed, lower-cased, with every run of inner whitespace folded to one space.
pub fn normalize_query(query: &str) -> String {
    query
        .split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `search_cache.cache_key` of a normalised query in a locale (`None`: no locale
/// was asked for, which is a key of its own): `v1:` and 64 hex digits.
pub fn cache_key(normalized_query: &str, locale: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    // The locale has no newline and comes first, so no two (locale, query) pairs
    // hash the same input.
    hasher.update(locale.unwrap_or("").as_bytes());
    hasher.update(b"\n");
    hasher.update(normalized_query.as_bytes());
    let digest = hasher.finalize();
    let mut key = String::with_capacity(3 + 64);
    key.push_str("v1:");
    for byte in digest {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_and_case_do_not_change_the_normalised_query() {
        assert_eq!(
            normalize_query("  What's the WEATHER\tin  Paris?\n"),
            "what's the weather in paris?"
        );
        assert_eq!(
            normalize_query("what's the weather in paris?"),
            "what's the weather in paris?"
        );
        assert_eq!(normalize_query("Straße ÉTÉ"), "straße été");
        assert_eq!(
            normalize_query("a\u{3000}b"),
            "a b",
            "ideographic space is whitespace too"
        );
    }

    #[test]
    fn the_key_is_the_sha256_of_locale_and_query() {
        // printf 'fr\nmeteo paris' | sha256sum
        assert_eq!(
            cache_key("meteo paris", Some("fr")),
            "v1:d33c721a98c1b50ebc9008af1a339150f42ecca458be73335d6e06acab43557c"
        );
    }

    #[test]
    fn the_locale_is_part_of_the_key() {
        let query = normalize_query("Capital of Peru");
        let keys = [
            cache_key(&query, None),
            cache_key(&query, Some("en")),
            cache_key(&query, Some("es")),
        ];
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[1], keys[2]);
        assert_ne!(keys[0], keys[2]);
        assert_eq!(cache_key(&query, Some("es")), keys[2]);
        assert_eq!(keys[0].len(), 3 + 64);
    }

    #[test]
    fn queries_differing_in_spacing_or_case_share_a_key() {
        let a = cache_key(&normalize_query("Who won the  Tour de France?"), Some("en"));
        let b = cache_key(
            &normalize_query(" who WON the tour de france? "),
            Some("en"),
        );
        assert_eq!(a, b);
        let c = cache_key(
            &normalize_query("Who won the Tour de France 2024?"),
            Some("en"),
        );
        assert_ne!(a, c);
    }
}
