//! Signing algorithms and verification keys: the HS256 secret and the ES256 / RS256
//! public keys of a JWKS document (`supabase_jwks`).
//!
//! Only what Supabase signs with is accepted: HS256 (the project's legacy JWT secret,
//! whose raw string is the HMAC key) and its asymmetric signing keys, ES256 on P-256 and
//! RS256. A JWKS may list other keys (symmetric, Ed25519, encryption keys); those are
//! skipped, since no token we accept could be verified with them. A key we would use
//! but cannot read is a configuration error, so a broken `supabase_jwks` shows at the
//! first request instead of as a stream of 401s.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::AuthError;

/// JWS segments are base64url without padding (RFC 7515 §2); anything else is refused.
pub(crate) const SEGMENT: GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// JWK members are base64url too, but some publishers pad them; accept both.
const JWK_MEMBER: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// RSA keys shorter than this are refused (NIST SP 800-131A; Supabase issues 2048).
const MIN_RSA_BITS: usize = 2048;

/// A signing algorithm we accept. Names are case-sensitive (RFC 7515 §4.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA256 with `supabase_jwt_secret`.
    Hs256,
    /// ECDSA on P-256 with SHA-256, a JWKS `EC` key.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, a JWKS `RSA` key.
    Rs256,
}

impl Algorithm {
    /// The JOSE name (`"HS256"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::Es256 => "ES256",
            Algorithm::Rs256 => "RS256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = AuthError;

    /// `none` and every algorithm not listed above are refused.
    fn from_str(name: &str) -> Result<Self, AuthError> {
        match name {
            "HS256" => Ok(Algorithm::Hs256),
            "ES256" => Ok(Algorithm::Es256),
            "RS256" => Ok(Algorithm::Rs256),
            other => Err(AuthError::UnsupportedAlgorithm(super::quoted(other))),
        }
    }
}

/// A public key from the JWKS, ready to verify with.
#[derive(Clone)]
pub(crate) struct PublicKey {
    pub(crate) kid: Option<String>,
    material: PublicKeyMaterial,
}

#[derive(Clone)]
enum PublicKeyMaterial {
    P256(p256::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

impl PublicKey {
    /// The algorithm this key verifies.
    pub(crate) fn algorithm(&self) -> Algorithm {
        match self.material {
            PublicKeyMaterial::P256(_) => Algorithm::Es256,
            PublicKeyMaterial::Rsa(_) => Algorithm::Rs256,
        }
    }

    /// Checks `signature` over `signing_input` (the `header.payload` text).
    pub(crate) fn verify(&self, signing_input: &[u8], signature: &[u8]) -> Result<(), AuthError> {
        match &self.material {
            PublicKeyMaterial::P256(key) => {
                // JWS carries ES256 signatures as the raw 64-byte r || s, never DER.
                let signature = p256::ecdsa::Signature::from_slice(signature)
                    .map_err(|_| AuthError::BadSignature)?;
                key.verify(signing_input, &signature)
                    .map_err(|_| AuthError::BadSignature)
            }
            PublicKeyMaterial::Rsa(key) => {
                let digest = Sha256::digest(signing_input);
                key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, signature)
                    .map_err(|_| AuthError::BadSignature)
            }
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}({})",
            self.algorithm(),
            self.kid.as_deref().unwrap_or("no kid")
        )
    }
}

/// Checks an HS256 signature in constant time.
pub(crate) fn verify_hs256(
    secret: &[u8],
    signing_input: &[u8],
    signature: &[u8],
) -> Result<(), AuthError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| AuthError::BadSignature)?;
    mac.update(signing_input);
    mac.verify_slice(signature)
        .map_err(|_| AuthError::BadSignature)
}

/// Why a JWKS document could not be read; the caller turns it into a `ConfigError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JwksError(pub(crate) String);

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    public_key_use: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// Reads the verification keys of a JWKS document (`{"keys": [...]}`).
pub(crate) fn parse_jwks(document: &str) -> Result<Vec<PublicKey>, JwksError> {
    let document: JwksDocument = serde_json::from_str(document).map_err(|error| {
        JwksError(format!(
            "not a JWKS document ({{\"keys\": [...]}}): {error}"
        ))
    })?;
    let mut keys: Vec<PublicKey> = Vec::new();
    for (index, value) in document.keys.into_iter().enumerate() {
        let raw: RawJwk = serde_json::from_value(value)
            .map_err(|error| JwksError(format!("key {index} is not a JWK: {error}")))?;
        let Some(key) =
            read_jwk(raw).map_err(|reason| JwksError(format!("key {index}: {reason}")))?
        else {
            continue;
        };
        if let Some(kid) = &key.kid
            && keys.iter().any(|other| other.kid.as_ref() == Some(kid))
        {
            return Err(JwksError(format!("key {index}: kid {kid:?} appears twice")));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// A key we verify with, `None` for one we have no use for, or why it is unreadable.
fn read_jwk(raw: RawJwk) -> Result<Option<PublicKey>, String> {
    let for_signatures = raw
        .public_key_use
        .as_deref()
        .is_none_or(|value| value == "sig")
        && raw
            .key_ops
            .as_ref()
            .is_none_or(|ops| ops.iter().any(|op| op == "verify"));
    if !for_signatures {
        return Ok(None);
    }
    let material = match raw.kty.as_str() {
        "EC" => {
            if raw.crv.as_deref() != Some("P-256") || !alg_is(&raw.alg, Algorithm::Es256) {
                return Ok(None);
            }
            let x = coordinate(raw.x.as_deref(), "x")?;
            let y = coordinate(raw.y.as_deref(), "y")?;
            let point = p256::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
            let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                .map_err(|_| "x and y are not a point on P-256".to_string())?;
            PublicKeyMaterial::P256(key)
        }
        "RSA" => {
            if !alg_is(&raw.alg, Algorithm::Rs256) {
                return Ok(None);
            }
            let n = member(raw.n.as_deref(), "n")?;
            let e = member(raw.e.as_deref(), "e")?;
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&n),
                rsa::BigUint::from_bytes_be(&e),
            )
            .map_err(|error| format!("not a usable RSA public key: {error}"))?;
            let bits = key.n().bits();
            if bits < MIN_RSA_BITS {
                return Err(format!("RSA modulus of {bits} bits, under {MIN_RSA_BITS}"));
            }
            PublicKeyMaterial::Rsa(key)
        }
        _ => return Ok(None),
    };
    Ok(Some(PublicKey {
        kid: raw.kid,
        material,
    }))
}

/// A key without `alg` may be used with its type's algorithm; one with a different
/// `alg` (an RSA key marked PS256) is not for us.
fn alg_is(alg: &Option<String>, expected: Algorithm) -> bool {
    alg.as_deref().is_none_or(|alg| alg == expected.as_str())
}

fn member(value: Option<&str>, name: &str) -> Result<Vec<u8>, String> {
    let value = value.ok_or_else(|| format!("missing `{name}`"))?;
    let bytes = JWK_MEMBER
        .decode(value)
        .map_err(|_| format!("`{name}` is not base64url"))?;
    if bytes.is_empty() {
        return Err(format!("`{name}` is empty"));
    }
    Ok(bytes)
}

fn coordinate(value: Option<&str>, name: &str) -> Result<[u8; 32], String> {
    let bytes = member(value, name)?;
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| format!("`{name}` has {} bytes, not 32", bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const JWKS: &str = include_str!("../../fixtures/jwt/jwks.json");

    fn fixture_key(kty: &str) -> serde_json::Value {
        let document: serde_json::Value = serde_json::from_str(JWKS).unwrap();
        document["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|key| key["kty"] == kty)
            .cloned()
            .unwrap()
    }

    /// `key` with the members of `changes` set.
    fn with(mut key: serde_json::Value, changes: serde_json::Value) -> serde_json::Value {
        for (name, value) in changes.as_object().unwrap() {
            key[name] = value.clone();
        }
        key
    }

    fn parse(keys: serde_json::Value) -> Result<Vec<PublicKey>, JwksError> {
        parse_jwks(&json!({ "keys": keys }).to_string())
    }

    #[test]
    fn the_fixture_jwks_gives_one_ec_and_one_rsa_key() {
        let keys = parse_jwks(JWKS).unwrap();
        let summary: Vec<(Option<&str>, Algorithm)> = keys
            .iter()
            .map(|key| (key.kid.as_deref(), key.algorithm()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (Some("ec-1"), Algorithm::Es256),
                (Some("rsa-1"), Algorithm::Rs256)
            ]
        );
    }

    #[test]
    fn keys_we_cannot_use_are_skipped() {
        let keys = parse(json!([
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA", "kid": "p384"},
            with(fixture_key("EC"), json!({"use": "enc", "kid": "encryption"})),
            with(fixture_key("EC"), json!({"key_ops": ["encrypt"], "kid": "ops"})),
            with(fixture_key("RSA"), json!({"alg": "PS256", "kid": "pss"})),
            fixture_key("RSA"),
        ]))
        .unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("rsa-1"));
    }

    #[test]
    fn a_key_without_alg_is_used_with_its_types_algorithm() {
        let mut key = fixture_key("EC");
        key.as_object_mut().unwrap().remove("alg");
        let keys = parse(json!([key])).unwrap();
        assert_eq!(keys[0].algorithm(), Algorithm::Es256);
    }

    #[test]
    fn an_ec_point_off_the_curve_is_a_configuration_error() {
        let mut key = fixture_key("EC");
        key["y"] = json!(SEGMENT.encode([7_u8; 32]));
        let error = parse(json!([key])).unwrap_err();
        assert!(error.0.contains("not a point on P-256"), "{error:?}");
    }

    #[test]
    fn a_short_ec_coordinate_is_a_configuration_error() {
        let mut key = fixture_key("EC");
        key["x"] = json!(SEGMENT.encode([1_u8; 31]));
        let error = parse(json!([key])).unwrap_err();
        assert!(error.0.contains("31 bytes"), "{error:?}");
    }

    #[test]
    fn a_weak_rsa_key_is_a_configuration_error() {
        let mut key = fixture_key("RSA");
        key["n"] = json!(SEGMENT.encode([0xC5_u8; 128]));
        let error = parse(json!([key])).unwrap_err();
        assert!(error.0.contains("1024 bits"), "{error:?}");
    }

    #[test]
    fn an_rsa_key_without_n_is_a_configuration_error() {
        let mut key = fixture_key("RSA");
        key.as_object_mut().unwrap().remove("n");
        let error = parse(json!([key])).unwrap_err();
        assert!(error.0.contains("missing `n`"), "{error:?}");
    }

    #[test]
    fn a_duplicate_kid_is_a_configuration_error() {
        let error = parse(json!([fixture_key("EC"), fixture_key("EC")])).unwrap_err();
        assert!(error.0.contains("appears twice"), "{error:?}");
    }

    #[test]
    fn a_document_without_keys_is_a_configuration_error() {
        assert!(parse_jwks("{}").is_err());
        assert!(parse_jwks("[]").is_err());
        assert!(parse_jwks("{\"keys\": [").is_err());
        assert!(parse_jwks("{\"keys\": [{\"kid\": \"no kty\"}]}").is_err());
        assert_eq!(parse_jwks("{\"keys\": []}").unwrap().len(), 0);
    }

    #[test]
    fn padded_jwk_members_are_accepted() {
        let mut key = fixture_key("RSA");
        key["e"] = json!("AQAB");
        let padded_n = format!("{}==", key["n"].as_str().unwrap());
        // A 2048-bit modulus is 256 bytes: base64 of it needs two padding characters.
        key["n"] = json!(padded_n);
        assert_eq!(parse(json!([key])).unwrap().len(), 1);
    }

    #[test]
    fn algorithm_names_are_case_sensitive_and_none_is_refused() {
        assert_eq!("ES256".parse::<Algorithm>().unwrap(), Algorithm::Es256);
        for name in [
            "none", "None", "hs256", "HS384", "HS512", "RS512", "PS256", "ES384", "EdDSA", "",
        ] {
            assert!(
                matches!(
                    name.parse::<Algorithm>(),
                    Err(AuthError::UnsupportedAlgorithm(_))
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn hs256_verification_rejects_a_truncated_mac() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(b"a.b");
        let full = mac.finalize().into_bytes();
        assert_eq!(verify_hs256(b"secret", b"a.b", &full), Ok(()));
        assert_eq!(
            verify_hs256(b"secret", b"a.b", &full[..16]),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify_hs256(b"secret", b"a.c", &full),
            Err(AuthError::BadSignature)
        );
    }
}
