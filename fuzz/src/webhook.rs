//! `webhook`: `classconnect_webhook_secret` parsing ([`WebhookSecrets::parse`]) and
//! Standard Webhooks verification ([`verify_webhook_signature`]) with random secrets,
//! ids, timestamps, signature lists and bodies.
//!
//! Input: byte 0 chooses the signer (none: the `webhook-signature` header is the
//! fuzzer's; a configured key; a key not configured) and an offset of the timestamp from
//! now; then NUL-separated `secrets`, `webhook-id`, `webhook-timestamp`,
//! `webhook-signature`, body. When the harness signs, its entry is added to the
//! fuzzer's signature list.
//!
//! Oracle: an accepted delivery has non-empty headers, a timestamp within five minutes
//! of now, an id and timestamp equal to the headers', and a `v1,` entry equal to the
//! HMAC-SHA256 of `id.timestamp.body` under a configured key of at least 16 bytes,
//! computed here. A delivery signed with a configured key and a fresh timestamp is
//! accepted.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use voice_edge_shared::webhook_signature::{
    MIN_KEY_BYTES, TOLERANCE_SECS, WebhookHeaders, WebhookSecrets, verify_webhook_signature,
};

use crate::{fields, mode, text};

pub const NOW: i64 = 1_763_769_600;

const OTHER_KEY: &[u8] = b"a key nobody configured, 32 byte";

pub fn run(data: &[u8]) {
    let (mode, rest) = mode(data);
    let [secrets_text, id, timestamp, signature, body] =
        fields(rest, 5).try_into().expect("five fields");
    let Ok(secrets) = WebhookSecrets::parse(&text(secrets_text)) else {
        return;
    };
    let keys = independent_keys(&text(secrets_text));
    assert!(
        !keys.is_empty() && keys.iter().all(|key| key.len() >= MIN_KEY_BYTES),
        "secrets parsed although a key is missing or short"
    );

    let id = text(id);
    // Half the inputs use a timestamp near now, so that signatures get checked.
    let timestamp = if mode & 0b1000_0000 == 0 {
        text(timestamp)
    } else {
        (NOW + i64::from(mode & 0b0111_1111) * 8 - 500).to_string()
    };
    let mut signature = text(signature);
    let signer = match (mode >> 5) & 0b11 {
        1 => Some(keys[usize::from(mode & 0b11) % keys.len()].clone()),
        2 => Some(OTHER_KEY.to_vec()),
        _ => None,
    };
    if let Some(key) = &signer {
        let mac = hmac(key, id.trim(), timestamp.trim(), body);
        signature = format!("{signature} v1,{}", STANDARD.encode(mac));
    }

    let headers = WebhookHeaders {
        id: Some(&id),
        timestamp: Some(&timestamp),
        signature: Some(&signature),
    };
    let verdict = verify_webhook_signature(&secrets, headers, body, NOW);

    let fresh = timestamp
        .trim()
        .parse::<i64>()
        .is_ok_and(|at| at.abs_diff(NOW) <= TOLERANCE_SECS.unsigned_abs());
    if signer.as_ref().is_some_and(|key| keys.contains(key)) && fresh && !id.trim().is_empty() {
        assert!(
            verdict.is_ok(),
            "refused a correctly signed delivery: {verdict:?}"
        );
    }
    let Ok(delivery) = verdict else {
        return;
    };
    assert!(
        fresh,
        "accepted the stale or malformed timestamp {timestamp:?}"
    );
    assert_eq!(delivery.id, id.trim());
    assert!(!delivery.id.is_empty());
    assert_eq!(Ok(delivery.timestamp), timestamp.trim().parse::<i64>());
    let entries: Vec<&str> = signature
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .map(|encoded| encoded.trim_end_matches('='))
        .collect();
    let signed = keys.iter().any(|key| {
        let expected = STANDARD_NO_PAD.encode(hmac(key, id.trim(), timestamp.trim(), body));
        entries.contains(&expected.as_str())
    });
    assert!(signed, "accepted a delivery without the right HMAC");
}

fn hmac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// The keys of a secrets value, read here: each whitespace-separated word, `whsec_`
/// removed, as standard base64 with or without padding; words that do not decode are
/// left out (the code under test refuses the whole value then).
fn independent_keys(value: &str) -> Vec<Vec<u8>> {
    value
        .split_whitespace()
        .filter_map(|word| {
            let encoded = word.strip_prefix("whsec_").unwrap_or(word);
            STANDARD_NO_PAD.decode(encoded.trim_end_matches('=')).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=";

    fn input(mode: u8, signature: &str) -> Vec<u8> {
        let mut data = vec![mode];
        for field in [SECRET, "msg_1", "0", signature, r#"{"type":"x"}"#] {
            data.extend(field.as_bytes());
            data.push(0);
        }
        data.pop();
        data
    }

    #[test]
    fn a_delivery_signed_by_the_harness_with_the_configured_key_passes_the_oracle() {
        // Signed by the configured key, timestamp near now: must be accepted.
        run(&input(0b1010_0000 | 60, "v1,AAAA"));
        // Signed by another key: refused, and the oracle has nothing to say.
        run(&input(0b1100_0000 | 60, ""));
    }

    #[test]
    fn the_independent_keys_follow_the_whsec_format() {
        assert_eq!(independent_keys(SECRET).len(), 1);
        assert_eq!(independent_keys(SECRET)[0].len(), 32);
        assert!(independent_keys("whsec_%%%").is_empty());
    }
}
