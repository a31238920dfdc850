//! Rollout bucketing, identical to the frontend's console snippet.
//!
//! The frontend (and the people reading its console) place a user in a bucket with
//!
//! ```js
//! const hash = [...userId].reduce((h, c) => ((h << 5) - h) + c.charCodeAt(0), 0);
//! const bucket = Math.abs(hash) % 100;
//! ```
//!
//! and the server must agree for every string, or a user would see one implementation
//! in the dashboard and get the other. The port keeps JavaScript's number semantics:
//! the running hash is a double; `h << 5` first converts it to a 32-bit signed integer
//! (ToInt32: truncate, then wrap modulo 2^32) and shifts with 32-bit wrap-around; the
//! subtraction and the addition are double arithmetic, so the hash itself leaves the
//! int32 range between steps. `[...userId]` walks code points and `charCodeAt(0)` takes
//! the first UTF-16 unit of each (the high surrogate for an astral character).
//! The known-answer vectors in `fixtures/bucket/vectors.json` were computed by Node with
//! the snippet itself (`fixtures/bucket/generate.mjs`).

/// The rollout bucket (0–99) of a user id, as the frontend computes it. A user is in a
/// rollout at `p` percent when their bucket is below `p`.
pub fn bucket_for_user(user_id: &str) -> u8 {
    let hash = frontend_hash(user_id);
    // `Math.abs(hash) % 100`: the hash is a finite integral double, so the remainder is
    // an exact integer in 0..100.
    (hash.abs() % 100.0) as u8
}

/// The snippet's `reduce`, with JavaScript's number semantics.
fn frontend_hash(user_id: &str) -> f64 {
    user_id.chars().fold(0.0_f64, |h, c| {
        let shifted = to_int32(h).wrapping_shl(5);
        (f64::from(shifted) - h) + f64::from(first_utf16_unit(c))
    })
}

/// ECMAScript's ToInt32: NaN and infinities become 0; otherwise truncate toward zero
/// and wrap modulo 2^32 into the signed range.
fn to_int32(value: f64) -> i32 {
    if !value.is_finite() {
        return 0;
    }
    const TWO_32: f64 = 4_294_967_296.0;
    // `%` on doubles is exact, and so is adding 2^32 to a remainder in (-2^32, 0).
    let wrapped = value.trunc().rem_euclid(TWO_32);
    wrapped as u32 as i32
}

/// `String.fromCodePoint(c).charCodeAt(0)`.
fn first_utf16_unit(c: char) -> u16 {
    let mut units = [0_u16; 2];
    c.encode_utf16(&mut units)[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Vectors {
        users: Vec<UserVector>,
        shifts: Vec<ShiftVector>,
    }

    #[derive(Deserialize)]
    struct UserVector {
        input: String,
        hash_bits: String,
        bucket: u8,
    }

    #[derive(Deserialize)]
    struct ShiftVector {
        bits: String,
        shifted: i32,
    }

    fn vectors() -> Vectors {
        serde_json::from_str(include_str!("../fixtures/bucket/vectors.json"))
            .expect("fixtures/bucket/vectors.json parses")
    }

    fn from_bits(hex: &str) -> f64 {
        f64::from_bits(u64::from_str_radix(hex, 16).expect("hex bit pattern"))
    }

    #[test]
    fn every_node_vector_gets_the_frontends_bucket() {
        let vectors = vectors();
        assert!(
            vectors.users.len() >= 3000,
            "the fixture holds a few thousand users"
        );
        let mismatches: Vec<String> = vectors
            .users
            .iter()
            .filter(|vector| bucket_for_user(&vector.input) != vector.bucket)
            .map(|vector| format!("{:?} (expected {})", short(&vector.input), vector.bucket))
            .collect();
        assert!(mismatches.is_empty(), "buckets differ for {mismatches:?}");
    }

    #[test]
    fn every_node_vector_gets_the_frontends_hash_bit_for_bit() {
        for vector in vectors().users {
            let expected = from_bits(&vector.hash_bits);
            let actual = frontend_hash(&vector.input);
            assert_eq!(
                actual.to_bits(),
                expected.to_bits(),
                "hash of {:?}: {actual} != {expected}",
                short(&vector.input)
            );
        }
    }

    #[test]
    fn the_vectors_reach_hashes_far_outside_int32() {
        let largest = vectors()
            .users
            .iter()
            .map(|vector| from_bits(&vector.hash_bits).abs())
            .fold(0.0, f64::max);
        assert!(
            largest > 2.0_f64.powi(36),
            "largest |hash| is only {largest}"
        );
    }

    #[test]
    fn shift_by_five_wraps_like_javascript_for_every_node_vector() {
        for vector in vectors().shifts {
            let value = from_bits(&vector.bits);
            assert_eq!(
                to_int32(value).wrapping_shl(5),
                vector.shifted,
                "{value:e} << 5"
            );
        }
    }

    #[test]
    fn empty_string_is_bucket_zero() {
        assert_eq!(bucket_for_user(""), 0);
    }

    #[test]
    fn astral_characters_count_their_high_surrogate_once() {
        // 😀 is U+1F600, UTF-16 D83D DE00; the snippet adds only 0xD83D.
        assert_eq!(frontend_hash("😀"), f64::from(0xD83D_u16));
        assert_eq!(bucket_for_user("😀"), (0xD83D % 100) as u8);
    }

    #[test]
    fn to_int32_truncates_and_wraps() {
        assert_eq!(to_int32(2_147_483_648.0), i32::MIN);
        assert_eq!(to_int32(-2_147_483_649.0), i32::MAX);
        assert_eq!(to_int32(4_294_967_301.0), 5);
        assert_eq!(to_int32(-1.9), -1);
        assert_eq!(to_int32(f64::NAN), 0);
        assert_eq!(to_int32(f64::NEG_INFINITY), 0);
    }

    fn short(input: &str) -> String {
        input.chars().take(40).collect()
    }
}
