//! Bucketing equals the frontend's console snippet (CONTRACT.md section 3) for random
//! strings, astral-plane characters included:
//!
//! ```js
//! const hash = [...userId].reduce((h, c) => ((h << 5) - h) + c.charCodeAt(0), 0);
//! const bucket = Math.abs(hash) % 100;
//! ```
//!
//! The reference below follows ECMA-262 step by step: `h << 5` is ToInt32(h) shifted
//! in 32 bits; `-` and `+` are double arithmetic; `[...s]` yields code points and
//! `charCodeAt(0)` the first UTF-16 code unit of each; `%` is the double remainder.

use proptest::prelude::*;
use voice_edge_shared::bucket::bucket_for_user;

/// ECMA-262 ToInt32: the integer modulo 2^32, read as a signed 32-bit integer.
fn to_int32(number: f64) -> i32 {
    if !number.is_finite() {
        return 0;
    }
    let modulo = number.trunc().rem_euclid(4_294_967_296.0);
    modulo as u32 as i32
}

/// `String.prototype.charCodeAt(0)` of a one-code-point string.
fn first_code_unit(c: char) -> u16 {
    let mut units = [0u16; 2];
    c.encode_utf16(&mut units)[0]
}

fn javascript_hash(user_id: &str) -> f64 {
    user_id.chars().fold(0.0f64, |h, c| {
        let shifted = f64::from(to_int32(h) << 5);
        (shifted - h) + f64::from(first_code_unit(c))
    })
}

fn javascript_bucket(user_id: &str) -> f64 {
    javascript_hash(user_id).abs() % 100.0
}

/// Characters from every plane, weighted towards what user ids hold.
fn character() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::char::range('0', 'z'),
        2 => prop::char::range('\u{80}', '\u{ffff}'),
        2 => prop::char::range('\u{10000}', '\u{10ffff}'),
        1 => any::<char>(),
    ]
}

proptest! {
    #![proptest_config(crate::config(20_000))]

    #[test]
    fn buckets_equal_the_frontends_javascript(
        chars in prop::collection::vec(character(), 0..80),
    ) {
        let user_id: String = chars.into_iter().collect();
        let expected = javascript_bucket(&user_id);
        prop_assert_eq!(f64::from(bucket_for_user(&user_id)), expected, "{:?}", user_id);
    }
}

proptest! {
    #![proptest_config(crate::config(300))]

    /// Long ids drive the hash far past 32 bits, where ToInt32 wraps.
    #[test]
    fn long_ids_still_bucket_as_javascript(
        chars in prop::collection::vec(character(), 200..2_000),
    ) {
        let user_id: String = chars.into_iter().collect();
        prop_assert_eq!(f64::from(bucket_for_user(&user_id)), javascript_bucket(&user_id));
    }
}

/// The reference against hashes and buckets computed by the snippet in Node
/// (`fixtures/bucket/`), bit for bit.
#[test]
fn the_reference_agrees_with_node_on_known_ids() {
    let text = include_str!("../../fixtures/bucket/vectors.json");
    let fixture: serde_json::Value = serde_json::from_str(text).unwrap();
    let users = fixture["users"].as_array().unwrap();
    assert!(users.len() >= 10);
    for user in users {
        let id = user["input"].as_str().unwrap();
        let bits = u64::from_str_radix(user["hash_bits"].as_str().unwrap(), 16).unwrap();
        assert_eq!(javascript_hash(id).to_bits(), bits, "{id:?}");
        assert_eq!(
            javascript_bucket(id),
            user["bucket"].as_f64().unwrap(),
            "{id:?}"
        );
    }
}
