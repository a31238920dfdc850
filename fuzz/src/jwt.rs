//! `jwt`: [`verify_jwt`] against the HS256 secret and a JWKS (EC and RSA keys), with
//! random tokens (the seeds hold HS256, ES256 and RS256 tokens from the fixtures),
//! random headers and payloads signed by keys the harness holds (configured ones and
//! others), and random JWKS documents.
//!
//! Input: byte 0 chooses the configuration and the signer (bits 0–1: the fixture JWKS, a
//! fuzzed JWKS, none, a wrong one; bits 2–4: raw token, HS256 with the secret or another,
//! the EC key or another; bit 5: no HS256 secret), the rest is NUL-separated
//! fields: `[jwks document]`, then either `token` (no signer) or `header`, `payload`
//! (the harness base64url-encodes them and signs `header.payload`).
//!
//! Oracle: an accepted token has `alg` HS256, ES256 or RS256, an `exp` not past (with
//! the leeway), and a signature that an independent check (HMAC here, `p256`/`rsa` on
//! keys read here from the configured JWKS) finds made by a configured key of that
//! algorithm. Anything else accepted is a wrong accept, and the target panics.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::pkcs8::DecodePrivateKey;
use serde_json::Value;
use sha2::{Digest, Sha256};
use voice_edge_shared::auth::{AuthConfig, LEEWAY_SECS, verify_jwt};

use crate::{fields, mode, text};

/// The clock of the fixture tokens (`shared/fixtures/jwt/tokens.json`).
pub const NOW: i64 = 1_893_456_000;

const SECRET: &str = include_str!("../../shared/fixtures/jwt/hs256_secret.txt");
const JWKS: &str = include_str!("../../shared/fixtures/jwt/jwks.json");
const WRONG_EC_JWKS: &str = include_str!("../../shared/fixtures/jwt/wrong_ec_jwks.json");
const EC_PRIVATE: &str = include_str!("../../shared/fixtures/jwt/ec_p256_private.pem");
const EC_WRONG_PRIVATE: &str = include_str!("../../shared/fixtures/jwt/ec_p256_wrong_private.pem");
#[cfg(test)]
const RSA_PRIVATE: &str = include_str!("../../shared/fixtures/jwt/rsa_2048_private.pem");
const OTHER_SECRET: &str = "another-secret-of-at-least-thirty-two-characters";

/// JWK members as base64url, padded or not (a lenient reading: the oracle may know
/// more keys than the code under test, never fewer).
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

struct Signers {
    ec: p256::ecdsa::SigningKey,
    ec_wrong: p256::ecdsa::SigningKey,
}

fn signers() -> &'static Signers {
    static SIGNERS: OnceLock<Signers> = OnceLock::new();
    SIGNERS.get_or_init(|| Signers {
        ec: p256::ecdsa::SigningKey::from_pkcs8_pem(EC_PRIVATE).expect("fixture EC key"),
        ec_wrong: p256::ecdsa::SigningKey::from_pkcs8_pem(EC_WRONG_PRIVATE)
            .expect("fixture EC key"),
    })
}

/// Who signs `header.payload`, from bits 2–4 of the mode byte.
#[derive(Debug, Clone, Copy)]
enum KeyChoice {
    /// The token is taken as the fuzzer wrote it.
    Raw,
    Hs256(&'static str),
    Ec,
    EcWrong,
    /// Only in the oracle's own tests: RSA signing costs about 0.1 s in an instrumented
    /// build, which would starve the fuzzer. RS256 tokens reach the target through the
    /// fixture tokens of the seeds (raw mode) and their mutations.
    #[cfg(test)]
    Rsa,
}

pub fn run(data: &[u8]) {
    let (mode, rest) = mode(data);
    let with_secret = mode & 0b0010_0000 == 0;
    let signer = match (mode >> 2) & 0b111 {
        1 => KeyChoice::Hs256(SECRET),
        2 => KeyChoice::Hs256(OTHER_SECRET),
        3 | 4 => KeyChoice::Ec,
        5 => KeyChoice::EcWrong,
        6 => KeyChoice::Hs256(SECRET),
        _ => KeyChoice::Raw,
    };
    let (jwks, rest): (Option<String>, &[u8]) = match mode & 0b11 {
        0 => (Some(JWKS.to_string()), rest),
        1 => {
            let [jwks, rest] = fields(rest, 2).try_into().expect("two fields");
            (Some(text(jwks)), rest)
        }
        2 => (None, rest),
        _ => (Some(WRONG_EC_JWKS.to_string()), rest),
    };
    let secret = with_secret.then_some(SECRET);
    let Ok(config) = AuthConfig::new(secret, jwks.as_deref()) else {
        return;
    };
    let token = match signer {
        KeyChoice::Raw => text(rest),
        signer => {
            let [header, payload] = fields(rest, 2).try_into().expect("two fields");
            sign(signer, header, payload)
        }
    };
    if let Ok(claims) = verify_jwt(&token, &config, NOW) {
        assert_signed_by_configured_key(&token, secret, jwks.as_deref());
        assert!(
            (NOW as f64) < claims.exp as f64 + 1.0 + LEEWAY_SECS as f64,
            "accepted a token that expired at {}",
            claims.exp
        );
    }
}

fn sign(signer: KeyChoice, header: &[u8], payload: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature: Vec<u8> = match signer {
        KeyChoice::Raw => Vec::new(),
        KeyChoice::Hs256(secret) => hmac_sha256(secret.as_bytes(), input.as_bytes()),
        KeyChoice::Ec => {
            let signature: p256::ecdsa::Signature = signers().ec.sign(input.as_bytes());
            signature.to_bytes().to_vec()
        }
        KeyChoice::EcWrong => {
            let signature: p256::ecdsa::Signature = signers().ec_wrong.sign(input.as_bytes());
            signature.to_bytes().to_vec()
        }
        #[cfg(test)]
        KeyChoice::Rsa => {
            use rsa::signature::SignatureEncoding;
            let key = rsa::RsaPrivateKey::from_pkcs8_pem(RSA_PRIVATE).expect("fixture RSA key");
            rsa::pkcs1v15::SigningKey::<Sha256>::new(key)
                .sign(input.as_bytes())
                .to_vec()
        }
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Panics unless `token`, which `verify_jwt` accepted, is signed by a configured key of
/// its header's algorithm, by a check that shares no code with `shared::auth`.
fn assert_signed_by_configured_key(token: &str, secret: Option<&str>, jwks: Option<&str>) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(
        parts.len(),
        3,
        "accepted a token of {} segments",
        parts.len()
    );
    let signing_input = &token[..parts[0].len() + 1 + parts[1].len()];
    let header: Value = URL_SAFE_NO_PAD
        .decode(parts[0])
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .expect("accepted a token whose header is not base64url JSON");
    let signature = URL_SAFE_NO_PAD
        .decode(parts[2])
        .expect("accepted a token whose signature is not base64url");
    let alg = header.get("alg").and_then(Value::as_str);
    let keys = jwks.map(independent_keys).unwrap_or_default();
    let verified = match alg {
        Some("HS256") => secret.is_some_and(|secret| {
            hmac_sha256(secret.as_bytes(), signing_input.as_bytes()) == signature
        }),
        Some("ES256") => p256::ecdsa::Signature::from_slice(&signature).is_ok_and(|signature| {
            keys.iter().any(|key| match key {
                IndependentKey::Ec(key) => key.verify(signing_input.as_bytes(), &signature).is_ok(),
                IndependentKey::Rsa(_) => false,
            })
        }),
        Some("RS256") => {
            let digest = Sha256::digest(signing_input.as_bytes());
            keys.iter().any(|key| match key {
                IndependentKey::Rsa(key) => key
                    .verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, &signature)
                    .is_ok(),
                IndependentKey::Ec(_) => false,
            })
        }
        other => panic!("accepted a token with alg {other:?}"),
    };
    assert!(
        verified,
        "accepted a token with alg {alg:?} not signed by any configured key"
    );
}

enum IndependentKey {
    Ec(p256::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

/// Every EC P-256 and RSA key of a JWKS document, whatever its `use`, `alg` or `kid`.
fn independent_keys(document: &str) -> Vec<IndependentKey> {
    let Ok(document) = serde_json::from_str::<Value>(document) else {
        return Vec::new();
    };
    let member = |key: &Value, name: &str| -> Option<Vec<u8>> {
        LENIENT_URL_SAFE.decode(key.get(name)?.as_str()?).ok()
    };
    let Some(keys) = document.get("keys").and_then(Value::as_array) else {
        return Vec::new();
    };
    keys.iter()
        .filter_map(|key| match key.get("kty")?.as_str()? {
            "EC" => {
                let mut sec1 = vec![4u8];
                sec1.extend(member(key, "x")?);
                sec1.extend(member(key, "y")?);
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                    .ok()
                    .map(IndependentKey::Ec)
            }
            "RSA" => rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&member(key, "n")?),
                rsa::BigUint::from_bytes_be(&member(key, "e")?),
            )
            .ok()
            .map(IndependentKey::Rsa),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Vec<u8> {
        format!(r#"{{"sub":"u","role":"authenticated","exp":{exp}}}"#).into_bytes()
    }

    #[test]
    fn the_oracle_accepts_what_a_configured_key_signed() {
        for signer in [KeyChoice::Hs256(SECRET), KeyChoice::Ec, KeyChoice::Rsa] {
            let alg = match signer {
                KeyChoice::Ec => "ES256",
                KeyChoice::Rsa => "RS256",
                _ => "HS256",
            };
            let header = format!(r#"{{"alg":"{alg}"}}"#);
            let token = sign(signer, header.as_bytes(), &claims(NOW + 60));
            let config = AuthConfig::new(Some(SECRET), Some(JWKS)).unwrap();
            assert!(verify_jwt(&token, &config, NOW).is_ok(), "{signer:?}");
            assert_signed_by_configured_key(&token, Some(SECRET), Some(JWKS));
        }
    }

    #[test]
    #[should_panic(expected = "not signed by any configured key")]
    fn the_oracle_refuses_a_token_signed_by_another_key() {
        let token = sign(KeyChoice::EcWrong, br#"{"alg":"ES256"}"#, &claims(NOW + 60));
        assert_signed_by_configured_key(&token, Some(SECRET), Some(JWKS));
    }

    #[test]
    #[should_panic(expected = "not signed by any configured key")]
    fn the_oracle_refuses_an_hs256_token_keyed_with_another_secret() {
        let token = sign(
            KeyChoice::Hs256(OTHER_SECRET),
            br#"{"alg":"HS256"}"#,
            &claims(NOW + 60),
        );
        assert_signed_by_configured_key(&token, Some(SECRET), Some(JWKS));
    }
}
