//! Standard Webhooks signatures (<https://www.standardwebhooks.com>), as ClassConnect
//! sends them: headers `webhook-id`, `webhook-timestamp` (unix seconds) and
//! `webhook-signature` (space-separated `v1,<base64>` entries); the signed content is
//! `{id}.{timestamp}.{raw body bytes}`, HMAC-SHA256 keyed with the base64 after `whsec_`.
//!
//! Pure code over the raw bytes: the secrets and the clock are arguments, so the
//! known-answer tests below (vectors computed once with the `standardwebhooks`
//! reference package, `shared/fixtures/webhooks/`) need no host. Several secrets may be
//! configured at once for rotation; any `v1` entry that matches any of them wins, and
//! every comparison is constant-time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::{self, ConfigError, Variables};
use crate::error::ApiError;

/// How far a delivery's timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 5 * 60;
/// The shortest decoded key accepted.
pub const MIN_KEY_BYTES: usize = 16;

const SECRET_PREFIX: &str = "whsec_";
const SIGNATURE_VERSION: &str = "v1";

/// The keys of `classconnect_webhook_secret`, decoded once per request.
#[derive(Clone)]
pub struct WebhookSecrets {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecrets([redacted] x{})", self.keys.len())
    }
}

impl WebhookSecrets {
    /// Parses one or more `whsec_<base64>` secrets separated by whitespace. A secret
    /// that is not base64, or whose key is shorter than [`MIN_KEY_BYTES`], makes the
    /// whole value a configuration error naming the variable (never the value).
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            name: config::CLASSCONNECT_WEBHOOK_SECRET,
            reason,
        };
        let mut keys = Vec::new();
        for (position, secret) in value.split_whitespace().enumerate() {
            let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
            let key = decode_base64(encoded).ok_or_else(|| {
                invalid(format!(
                    "secret {} is not `whsec_` followed by base64",
                    position + 1
                ))
            })?;
            if key.len() < MIN_KEY_BYTES {
                return Err(invalid(format!(
                    "secret {} decodes to {} bytes; at least {MIN_KEY_BYTES} are required",
                    position + 1,
                    key.len()
                )));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(ConfigError::Missing(config::CLASSCONNECT_WEBHOOK_SECRET));
        }
        Ok(Self { keys })
    }

    /// Reads and parses `classconnect_webhook_secret`.
    pub fn load(vars: &impl Variables) -> Result<Self, ConfigError> {
        Self::parse(&config::required(
            vars,
            config::CLASSCONNECT_WEBHOOK_SECRET,
        )?)
    }
}

/// The three Standard Webhooks headers, as received (absent ones are `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// A delivery whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDelivery {
    /// The `webhook-id`: the key that makes processing exactly-once.
    pub id: String,
    /// The `webhook-timestamp`, unix seconds.
    pub timestamp: i64,
}

/// Why a delivery was refused; every case is a `401`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing header `{0}`")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not an integer")]
    MalformedTimestamp,
    #[error("webhook-timestamp is more than {TOLERANCE_SECS} s in the past")]
    Stale,
    #[error("webhook-timestamp is more than {TOLERANCE_SECS} s in the future")]
    Future,
    #[error("no v1 signature matches")]
    NoMatch,
}

impl From<SignatureError> for ApiError {
    fn from(error: SignatureError) -> Self {
        ApiError::InvalidSignature {
            reason: error.to_string(),
        }
    }
}

/// Verifies a delivery: headers present, timestamp within [`TOLERANCE_SECS`] of
/// `now_unix`, and some `v1` entry of `webhook-signature` equal to the HMAC of
/// `{id}.{timestamp}.{body}` under one of the secrets. Entries of other versions
/// (`v1a,` …) and malformed entries are skipped.
pub fn verify_webhook_signature(
    secrets: &WebhookSecrets,
    headers: WebhookHeaders<'_>,
    body: &[u8],
    now_unix: i64,
) -> Result<VerifiedDelivery, SignatureError> {
    let id = present(headers.id, "webhook-id")?;
    let timestamp_text = present(headers.timestamp, "webhook-timestamp")?;
    let signature = present(headers.signature, "webhook-signature")?;

    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| SignatureError::MalformedTimestamp)?;
    if timestamp < now_unix.saturating_sub(TOLERANCE_SECS) {
        return Err(SignatureError::Stale);
    }
    if timestamp > now_unix.saturating_add(TOLERANCE_SECS) {
        return Err(SignatureError::Future);
    }

    let candidates: Vec<Vec<u8>> = signature
        .split_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == SIGNATURE_VERSION)
        .filter_map(|(_, encoded)| decode_base64(encoded))
        .collect();
    let matched = secrets.keys.iter().any(|key| {
        let expected = signature_bytes(key, id, timestamp_text, body);
        // `|` rather than `any` so every candidate is compared, whatever matches.
        candidates
            .iter()
            .fold(subtle::Choice::from(0), |found, candidate| {
                found | expected.as_slice().ct_eq(candidate.as_slice())
            })
            .into()
    });
    if !matched {
        return Err(SignatureError::NoMatch);
    }
    Ok(VerifiedDelivery {
        id: id.to_string(),
        timestamp,
    })
}

/// The `webhook-signature` entry (`v1,<base64>`) for a delivery: what a sender puts
/// in the header. Used by the tests, the benchmark and the ClassConnect stand-in.
pub fn sign_webhook(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let signature = signature_bytes(key, id, &timestamp.to_string(), body);
    format!("{SIGNATURE_VERSION},{}", STANDARD.encode(signature))
}

/// A fresh `webhook-id`, for senders (the ClassConnect stand-in).
pub fn new_webhook_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

/// The key inside a `whsec_…` secret, for senders (tests, the stand-in).
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    decode_base64(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
}

/// A header's value, trimmed; absent and empty headers are both missing.
fn present<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, SignatureError> {
    value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(SignatureError::MissingHeader(name))
}

fn signature_bytes(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Standard base64, padded or not (the reference implementations accept both).
fn decode_base64(encoded: &str) -> Option<Vec<u8>> {
    let trimmed = encoded.trim_end_matches('=');
    let mut padded = trimmed.to_string();
    padded.extend(std::iter::repeat_n('=', (4 - trimmed.len() % 4) % 4));
    STANDARD.decode(padded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Fixture {
        vectors: Vec<Vector>,
    }

    #[derive(Deserialize)]
    struct Vector {
        name: String,
        secrets: String,
        now: i64,
        headers: std::collections::HashMap<String, String>,
        body: String,
        valid: bool,
    }

    fn vectors() -> Vec<Vector> {
        let text = include_str!("../fixtures/webhooks/vectors.json");
        serde_json::from_str::<Fixture>(text).unwrap().vectors
    }

    fn verify(vector: &Vector) -> Result<VerifiedDelivery, SignatureError> {
        let secrets = WebhookSecrets::parse(&vector.secrets).unwrap();
        let header = |name: &str| vector.headers.get(name).map(String::as_str);
        verify_webhook_signature(
            &secrets,
            WebhookHeaders {
                id: header("webhook-id"),
                timestamp: header("webhook-timestamp"),
                signature: header("webhook-signature"),
            },
            vector.body.as_bytes(),
            vector.now,
        )
    }

    fn vector(name: &str) -> Vector {
        vectors().into_iter().find(|v| v.name == name).unwrap()
    }

    #[test]
    fn every_reference_vector_gets_the_reference_verdict() {
        let vectors = vectors();
        assert!(vectors.len() >= 15);
        for vector in &vectors {
            assert_eq!(
                verify(vector).is_ok(),
                vector.valid,
                "vector {}",
                vector.name
            );
        }
    }

    #[test]
    fn a_signed_delivery_yields_its_id_and_timestamp() {
        let vector = vector("signed_delivery");
        let delivery = verify(&vector).unwrap();
        assert_eq!(delivery.id, "msg_2nQ8XxL0aZ");
        assert_eq!(delivery.timestamp, vector.now - 2);
    }

    #[test]
    fn rotation_accepts_either_configured_secret() {
        assert!(verify(&vector("rotation_old_and_new_secret_signed_with_new")).is_ok());
        assert!(verify(&vector("rotation_signed_with_old")).is_ok());
    }

    #[test]
    fn a_v1a_entry_is_skipped_even_when_its_bytes_would_match() {
        assert_eq!(
            verify(&vector("v1a_entry_is_skipped")),
            Err(SignatureError::NoMatch)
        );
        assert!(verify(&vector("v1a_entry_then_v1")).is_ok());
    }

    #[test]
    fn missing_headers_are_named() {
        assert_eq!(
            verify(&vector("missing_webhook_id")),
            Err(SignatureError::MissingHeader("webhook-id"))
        );
        assert_eq!(
            verify(&vector("missing_webhook_timestamp")),
            Err(SignatureError::MissingHeader("webhook-timestamp"))
        );
        assert_eq!(
            verify(&vector("missing_webhook_signature")),
            Err(SignatureError::MissingHeader("webhook-signature"))
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused_past_five_minutes() {
        assert_eq!(
            verify(&vector("stale_timestamp")),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&vector("future_timestamp")),
            Err(SignatureError::Future)
        );
        assert!(verify(&vector("timestamp_exactly_five_minutes_old")).is_ok());
        assert!(verify(&vector("timestamp_exactly_five_minutes_ahead")).is_ok());
    }

    #[test]
    fn a_body_changed_by_one_byte_does_not_verify() {
        assert_eq!(
            verify(&vector("body_changed_by_one_byte")),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(&vector("wrong_secret")),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn sign_webhook_reproduces_the_reference_signature() {
        let vector = vector("signed_delivery");
        let key = decode_secret(&vector.secrets).unwrap();
        let timestamp: i64 = vector.headers["webhook-timestamp"].parse().unwrap();
        let signed = sign_webhook(&key, "msg_2nQ8XxL0aZ", timestamp, vector.body.as_bytes());
        assert_eq!(signed, vector.headers["webhook-signature"]);
    }

    #[test]
    fn malformed_entries_and_timestamps_are_refused_not_panicked_on() {
        let vector = vector("signed_delivery");
        let secrets = WebhookSecrets::parse(&vector.secrets).unwrap();
        let headers = WebhookHeaders {
            id: Some("msg_2nQ8XxL0aZ"),
            timestamp: Some("1763769598"),
            signature: Some("v1 garbage v1,!!! ,"),
        };
        assert_eq!(
            verify_webhook_signature(&secrets, headers, vector.body.as_bytes(), vector.now),
            Err(SignatureError::NoMatch)
        );
        let headers = WebhookHeaders {
            timestamp: Some("1763769598.5"),
            ..headers
        };
        assert_eq!(
            verify_webhook_signature(&secrets, headers, vector.body.as_bytes(), vector.now),
            Err(SignatureError::MalformedTimestamp)
        );
    }

    #[test]
    fn short_keys_are_a_configuration_error_naming_the_variable() {
        // 15 bytes of key.
        let error = WebhookSecrets::parse("whsec_MTIzNDU2Nzg5MDEyMzQ1").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("classconnect_webhook_secret"), "{text}");
        assert!(text.contains("15 bytes"), "{text}");
        assert!(
            !text.contains("MTIzNDU2"),
            "the value must not be named: {text}"
        );
        let api = ApiError::from(error);
        assert_eq!(api.status(), 500);
        assert_eq!(api.code(), "configuration_error");
    }

    #[test]
    fn one_bad_secret_among_several_refuses_the_whole_value() {
        let good = "whsec_MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=";
        assert!(WebhookSecrets::parse(good).is_ok());
        assert!(WebhookSecrets::parse(&format!("{good} whsec_%%%")).is_err());
        assert_eq!(
            WebhookSecrets::parse("   ").unwrap_err(),
            ConfigError::Missing("classconnect_webhook_secret")
        );
    }

    #[test]
    fn debug_redacts_the_keys() {
        let secrets =
            WebhookSecrets::parse("whsec_MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=").unwrap();
        let printed = format!("{secrets:?}");
        assert!(printed.contains("[redacted]"));
        assert!(!printed.contains("49"), "{printed}");
    }
}
