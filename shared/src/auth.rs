//! Supabase-compatible authentication: what Supabase's `verify_jwt` does at its gateway,
//! done inside the function, since no gateway stands in front of Spin (CONTRACT.md §2).
//!
//! [`authenticate`] reads `Authorization: Bearer <jwt>` and hands the token to
//! [`verify_jwt`], which accepts HS256 signed with `supabase_jwt_secret` (the raw string
//! is the HMAC key, as Supabase uses it) and ES256 / RS256 signed with a key of
//! `supabase_jwks`, chosen by the token's `kid`. It refuses `alg: none` and every other
//! algorithm, a key of the wrong type, malformed tokens, bad signatures, an `exp` more
//! than [`LEEWAY_SECS`] in the past (or none at all) and an `nbf` more than
//! [`LEEWAY_SECS`] in the future. The clock is an argument, so the known-answer tests
//! (tokens minted by PyJWT, `fixtures/jwt/`) need no host and no sleeping.
//!
//! Every refusal is an [`AuthError`] whose text is for the log; it becomes
//! `401 invalid_jwt` through [`ApiError`], and the token itself is never logged, echoed
//! or put in an error. `aud` and `iss` are not checked, as Supabase's gateway does not
//! check them either (the anon key has no audience).

mod keys;

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::config::{self, ConfigError, Variables};
use crate::error::ApiError;
use crate::http::Incoming;

pub use keys::Algorithm;
use keys::{PublicKey, SEGMENT};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 30;

/// Tokens longer than this are refused before any decoding.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token was refused. The text is for the log (it never contains the token);
/// callers see only `401 invalid_jwt`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not three base64url segments of JSON, or a header we cannot honour.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// `none`, or any algorithm but HS256, ES256 and RS256.
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// No key of the algorithm's type is configured (HS256 without a secret, ES256
    /// without an EC key in the JWKS).
    #[error("no {0} key is configured")]
    NoKey(Algorithm),
    /// The token's `kid` is not in the JWKS.
    #[error("unknown kid {0}")]
    UnknownKid(String),
    /// No `kid`, and the JWKS holds several keys of the algorithm's type.
    #[error("token has no kid and several {0} keys are configured")]
    KidRequired(Algorithm),
    /// The `kid` names a key of another type than the header's algorithm.
    #[error("kid {kid} is a {key} key, not usable for {alg}")]
    KeyTypeMismatch {
        kid: String,
        key: Algorithm,
        alg: Algorithm,
    },
    #[error("bad signature")]
    BadSignature,
    #[error("token has no exp")]
    MissingExp,
    #[error("token expired at {exp} (now {now}, leeway {LEEWAY_SECS} s)")]
    Expired { exp: i64, now: i64 },
    #[error("token not valid before {nbf} (now {now}, leeway {LEEWAY_SECS} s)")]
    NotYetValid { nbf: i64, now: i64 },
    /// A registered or Supabase claim of the wrong type (`sub` a number, `exp` a string).
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        ApiError::InvalidJwt {
            reason: error.to_string(),
        }
    }
}

/// A caller-controlled string (an `alg`, a `kid`) made safe for a log line: quoted,
/// escaped and cut short.
fn quoted(value: &str) -> String {
    let short: String = value.chars().take(40).collect();
    format!("{short:?}")
}

/// The database role a token carries (`role`), as Supabase's PostgREST understands it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// The anon key, and supabase-js before sign-in.
    Anon,
    /// A signed-in user, anonymous sign-ins included.
    Authenticated,
    /// The service role key: servers and operators.
    ServiceRole,
    /// Any other role (custom Postgres roles); empty when the token has none.
    Other(String),
}

impl Role {
    /// The claim's value (`"service_role"`).
    pub fn as_str(&self) -> &str {
        match self {
            Role::Anon => "anon",
            Role::Authenticated => "authenticated",
            Role::ServiceRole => "service_role",
            Role::Other(other) => other,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Infallible;

    fn from_str(value: &str) -> Result<Self, Infallible> {
        Ok(match value {
            "anon" => Role::Anon,
            "authenticated" => Role::Authenticated,
            "service_role" => Role::ServiceRole,
            other => Role::Other(other.to_string()),
        })
    }
}

/// `aud`: one audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// Whether `audience` is among the token's audiences.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|one| one == audience),
        }
    }
}

/// The claims of a verified Supabase token. Fields Supabase does not always set are
/// optional; unknown claims are kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id (`auth.users.id`); absent for the anon and service role keys.
    #[serde(default)]
    pub sub: Option<String>,
    /// The database role; see [`Claims::role`].
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub aud: Option<Audience>,
    /// Expiry, unix seconds (fractions are dropped).
    #[serde(deserialize_with = "numeric_date")]
    pub exp: i64,
    #[serde(default, deserialize_with = "optional_numeric_date")]
    pub iat: Option<i64>,
    #[serde(default, deserialize_with = "optional_numeric_date")]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    /// The Supabase Auth session (`auth.sessions.id`).
    #[serde(default)]
    pub session_id: Option<String>,
    /// True for anonymous sign-ins (role `authenticated`, no email or phone).
    #[serde(default)]
    pub is_anonymous: bool,
    /// Authenticator assurance level (`aal1`, `aal2`).
    #[serde(default)]
    pub aal: Option<String>,
    /// Authentication methods: Supabase writes `[{"method", "timestamp"}]`, RFC 8176
    /// writes strings; kept as sent.
    #[serde(default)]
    pub amr: Value,
    /// Set by the server only; holds the platform's `role` (`teacher`, `admin`).
    #[serde(default)]
    pub app_metadata: Value,
    /// Set by the user; never trusted for authorisation.
    #[serde(default)]
    pub user_metadata: Value,
    /// Every other claim (`ref`, custom claims).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Claims {
    /// `sub` as a UUID, when it is one.
    pub fn user_id(&self) -> Option<uuid::Uuid> {
        self.sub
            .as_deref()
            .and_then(|sub| uuid::Uuid::parse_str(sub).ok())
    }

    /// The token's database role; [`Role::Other`]`("")` when it has none.
    pub fn role(&self) -> Role {
        let Ok(role) = self.role.as_deref().unwrap_or("").parse();
        role
    }

    /// The platform role in `app_metadata.role` (`"teacher"`, `"admin"`), which only
    /// the server can set.
    pub fn app_role(&self) -> Option<&str> {
        self.app_metadata.get("role").and_then(Value::as_str)
    }

    /// A teacher or an admin by `app_metadata.role`.
    pub fn is_teacher_or_admin(&self) -> bool {
        matches!(self.app_role(), Some("teacher" | "admin"))
    }

    /// An admin by `app_metadata.role`.
    pub fn is_admin(&self) -> bool {
        self.app_role() == Some("admin")
    }
}

/// A NumericDate (RFC 7519 §2): an integer or a fraction of unix seconds.
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let seconds = f64::deserialize(deserializer)?;
    if !seconds.is_finite() {
        return Err(serde::de::Error::custom("a date must be a finite number"));
    }
    Ok(seconds.floor() as i64)
}

fn optional_numeric_date<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "numeric_date")] i64);
    Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(seconds)| seconds))
}

/// The keys tokens are verified with: `supabase_jwt_secret` and `supabase_jwks`.
#[derive(Clone)]
pub struct AuthConfig {
    jwt_secret: Option<String>,
    keys: Vec<PublicKey>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("keys", &self.keys)
            .finish()
    }
}

impl AuthConfig {
    /// Reads `supabase_jwt_secret` (required) and `supabase_jwks` (optional, may be
    /// empty). A JWKS that does not parse is an error naming the variable.
    pub fn load(vars: &impl Variables) -> Result<Self, ConfigError> {
        let secret = config::required(vars, config::SUPABASE_JWT_SECRET)?;
        let jwks = vars.get(config::SUPABASE_JWKS)?;
        Self::new(Some(&secret), jwks.as_deref())
    }

    /// A configuration from values: the HS256 secret, if HS256 is accepted, and a JWKS
    /// document, if any (empty counts as none).
    pub fn new(jwt_secret: Option<&str>, jwks: Option<&str>) -> Result<Self, ConfigError> {
        let keys = match jwks.map(str::trim).filter(|jwks| !jwks.is_empty()) {
            None => Vec::new(),
            Some(document) => keys::parse_jwks(document).map_err(|error| ConfigError::Invalid {
                name: config::SUPABASE_JWKS,
                reason: error.0,
            })?,
        };
        Ok(Self {
            jwt_secret: jwt_secret
                .filter(|secret| !secret.is_empty())
                .map(str::to_string),
            keys,
        })
    }

    /// The key for a token's `alg` and `kid`.
    fn key_for(&self, alg: Algorithm, kid: Option<&str>) -> Result<Verifier<'_>, AuthError> {
        if alg == Algorithm::Hs256 {
            // HS256 has one key, the project secret; a `kid` cannot select anything else.
            return self
                .jwt_secret
                .as_deref()
                .map(Verifier::Secret)
                .ok_or(AuthError::NoKey(alg));
        }
        if let Some(kid) = kid {
            let key = self
                .keys
                .iter()
                .find(|key| key.kid.as_deref() == Some(kid))
                .ok_or_else(|| AuthError::UnknownKid(quoted(kid)))?;
            if key.algorithm() != alg {
                return Err(AuthError::KeyTypeMismatch {
                    kid: quoted(kid),
                    key: key.algorithm(),
                    alg,
                });
            }
            return Ok(Verifier::Public(key));
        }
        let mut candidates = self.keys.iter().filter(|key| key.algorithm() == alg);
        match (candidates.next(), candidates.next()) {
            (Some(key), None) => Ok(Verifier::Public(key)),
            (None, _) => Err(AuthError::NoKey(alg)),
            (Some(_), Some(_)) => Err(AuthError::KidRequired(alg)),
        }
    }
}

enum Verifier<'a> {
    Secret(&'a str),
    Public(&'a PublicKey),
}

impl Verifier<'_> {
    fn verify(&self, signing_input: &[u8], signature: &[u8]) -> Result<(), AuthError> {
        match self {
            Verifier::Secret(secret) => {
                keys::verify_hs256(secret.as_bytes(), signing_input, signature)
            }
            Verifier::Public(key) => key.verify(signing_input, signature),
        }
    }
}

/// The JOSE header members we read. `jku`, `x5u` and `jwk` are ignored: keys come from
/// our configuration, never from the token.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// Extensions the signer says we must understand; we understand none.
    #[serde(default)]
    crit: Option<Value>,
}

/// Verifies a compact JWS token and returns its claims, at the time `now_unix`.
pub fn verify_jwt(token: &str, config: &AuthConfig, now_unix: i64) -> Result<Claims, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Malformed(format!(
            "longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    let mut segments = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(AuthError::Malformed(
            "not three dot-separated segments".into(),
        ));
    };

    // Read as a whole JSON value first: serde skips the members `Header` does not name
    // without checking them, and RFC 7515 wants the whole header valid UTF-8 JSON.
    let header: Header = serde_json::from_slice::<Value>(&decode_segment(header_b64, "header")?)
        .and_then(Header::deserialize)
        .map_err(|_| {
            AuthError::Malformed("header is not a JSON object with a string alg".into())
        })?;
    let alg: Algorithm = header.alg.parse()?;
    if header.crit.is_some() {
        return Err(AuthError::Malformed("header has crit extensions".into()));
    }
    let verifier = config.key_for(alg, header.kid.as_deref())?;
    let signature = decode_segment(signature_b64, "signature")?;
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    verifier.verify(signing_input.as_bytes(), &signature)?;

    // Only now, with the signature checked, is the payload read.
    let payload = decode_segment(payload_b64, "payload")?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload)
        .map_err(|_| AuthError::Malformed("payload is not a JSON object".into()))?;
    check_times(&claims, now_unix)?;
    serde_json::from_value(Value::Object(claims))
        .map_err(|error| AuthError::InvalidClaims(error.to_string()))
}

fn decode_segment(segment: &str, name: &str) -> Result<Vec<u8>, AuthError> {
    SEGMENT
        .decode(segment)
        .map_err(|_| AuthError::Malformed(format!("{name} is not base64url")))
}

/// `exp` is required and enforced, `nbf` when present, both with [`LEEWAY_SECS`].
fn check_times(claims: &Map<String, Value>, now_unix: i64) -> Result<(), AuthError> {
    let exp = match claims.get("exp") {
        None | Some(Value::Null) => return Err(AuthError::MissingExp),
        Some(value) => numeric(value, "exp")?,
    };
    // RFC 7519 §4.1.4: the token is valid strictly before `exp`.
    if now_unix as f64 >= exp + LEEWAY_SECS as f64 {
        return Err(AuthError::Expired {
            exp: exp.floor() as i64,
            now: now_unix,
        });
    }
    if let Some(value) = claims.get("nbf").filter(|value| !value.is_null()) {
        let nbf = numeric(value, "nbf")?;
        // RFC 7519 §4.1.5: valid from `nbf` on.
        if ((now_unix + LEEWAY_SECS) as f64) < nbf {
            return Err(AuthError::NotYetValid {
                nbf: nbf.ceil() as i64,
                now: now_unix,
            });
        }
    }
    Ok(())
}

fn numeric(value: &Value, name: &str) -> Result<f64, AuthError> {
    value
        .as_f64()
        .filter(|seconds| seconds.is_finite())
        .ok_or_else(|| AuthError::InvalidClaims(format!("{name} is not a number")))
}

/// The bearer token of an `Authorization` header, if it has one.
fn bearer_token(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Authenticates a request by its `Authorization: Bearer <jwt>` header and records the
/// caller's `sub` for the request log. No header, or another scheme, is
/// `401 missing_authorization`; a token that does not verify is `401 invalid_jwt`.
pub fn authenticate(
    incoming: &Incoming,
    config: &AuthConfig,
    now_unix: i64,
) -> Result<Claims, ApiError> {
    let token =
        bearer_token(incoming.header("authorization")).ok_or(ApiError::MissingAuthorization)?;
    let claims = verify_jwt(token, config, now_unix)?;
    if let Some(sub) = &claims.sub {
        incoming.set_user_id(sub);
    }
    Ok(claims)
}

/// `403 forbidden` unless the token's role is one of `allowed`.
pub fn require_role(claims: &Claims, allowed: &[Role]) -> Result<(), ApiError> {
    if allowed.contains(&claims.role()) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(Role::as_str).collect();
    Err(ApiError::forbidden(format!(
        "This request needs the role {}",
        names.join(" or ")
    )))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::http::{CorsPolicy, RawRequest, handle};

    const SECRET: &str = include_str!("../fixtures/jwt/hs256_secret.txt");
    const JWKS: &str = include_str!("../fixtures/jwt/jwks.json");
    const WRONG_EC_JWKS: &str = include_str!("../fixtures/jwt/wrong_ec_jwks.json");
    const TOKENS: &str = include_str!("../fixtures/jwt/tokens.json");

    #[derive(Deserialize)]
    struct Fixture {
        now: i64,
        leeway: i64,
        cases: Vec<Case>,
    }

    #[derive(Deserialize)]
    struct Case {
        name: String,
        token: String,
        expect: String,
        #[serde(default)]
        claims: Map<String, Value>,
    }

    fn fixture() -> Fixture {
        serde_json::from_str(TOKENS).expect("fixtures/jwt/tokens.json parses")
    }

    fn token(name: &str) -> String {
        fixture()
            .cases
            .into_iter()
            .find(|case| case.name == name)
            .unwrap_or_else(|| panic!("no fixture case {name}"))
            .token
    }

    fn now() -> i64 {
        fixture().now
    }

    fn config() -> AuthConfig {
        AuthConfig::new(Some(SECRET.trim()), Some(JWKS)).unwrap()
    }

    /// The fixture JWKS with the second EC key (`ec-2`) added.
    fn config_with_second_ec_key() -> AuthConfig {
        let mut jwks: Value = serde_json::from_str(JWKS).unwrap();
        let extra: Value = serde_json::from_str(WRONG_EC_JWKS).unwrap();
        jwks["keys"]
            .as_array_mut()
            .unwrap()
            .extend(extra["keys"].as_array().unwrap().iter().cloned());
        AuthConfig::new(Some(SECRET.trim()), Some(&jwks.to_string())).unwrap()
    }

    /// The fixture's name for a refusal.
    fn kind(error: &AuthError) -> &'static str {
        match error {
            AuthError::Malformed(_) => "malformed",
            AuthError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            AuthError::NoKey(_) => "no_key",
            AuthError::UnknownKid(_) => "unknown_kid",
            AuthError::KidRequired(_) => "kid_required",
            AuthError::KeyTypeMismatch { .. } => "key_type_mismatch",
            AuthError::BadSignature => "bad_signature",
            AuthError::MissingExp => "missing_exp",
            AuthError::Expired { .. } => "expired",
            AuthError::NotYetValid { .. } => "not_yet_valid",
            AuthError::InvalidClaims(_) => "invalid_claims",
        }
    }

    fn outcome(result: &Result<Claims, AuthError>) -> &'static str {
        match result {
            Ok(_) => "valid",
            Err(error) => kind(error),
        }
    }

    #[test]
    fn every_pyjwt_fixture_verifies_as_expected() {
        let fixture = fixture();
        assert_eq!(fixture.leeway, LEEWAY_SECS);
        let config = config();
        let mut wrong = Vec::new();
        for case in &fixture.cases {
            let result = verify_jwt(&case.token, &config, fixture.now);
            if outcome(&result) != case.expect {
                wrong.push(format!(
                    "{}: expected {}, got {result:?}",
                    case.name, case.expect
                ));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn valid_fixtures_give_the_claims_pyjwt_signed() {
        let fixture = fixture();
        let config = config();
        for case in fixture.cases.iter().filter(|case| case.expect == "valid") {
            let claims = verify_jwt(&case.token, &config, fixture.now)
                .unwrap_or_else(|error| panic!("{}: {error}", case.name));
            for (name, expected) in &case.claims {
                let actual = match name.as_str() {
                    "role" => json!(claims.role().as_str()),
                    "sub" => json!(claims.sub),
                    "app_role" => json!(claims.app_role()),
                    "email" => json!(claims.email),
                    "session_id" => json!(claims.session_id),
                    "aal" => json!(claims.aal),
                    "is_anonymous" => json!(claims.is_anonymous),
                    "aud" => json!(claims.aud),
                    other => panic!("{}: no check for claim {other}", case.name),
                };
                assert_eq!(&actual, expected, "{}: claim {name}", case.name);
            }
        }
    }

    #[test]
    fn the_fixtures_cover_every_refusal_the_contract_names() {
        let expected: Vec<String> = fixture()
            .cases
            .into_iter()
            .map(|case| case.expect)
            .collect();
        for kind in [
            "valid",
            "malformed",
            "unsupported_algorithm",
            "unknown_kid",
            "key_type_mismatch",
            "bad_signature",
            "missing_exp",
            "expired",
            "not_yet_valid",
            "invalid_claims",
        ] {
            assert!(
                expected.iter().any(|expect| expect == kind),
                "no fixture expects {kind}"
            );
        }
    }

    #[test]
    fn valid_tokens_carry_every_role() {
        let config = config();
        for alg in ["hs256", "es256", "rs256"] {
            for (role, expected) in [
                ("anon", Role::Anon),
                ("teacher", Role::Authenticated),
                ("service_role", Role::ServiceRole),
            ] {
                let claims =
                    verify_jwt(&token(&format!("{alg}_{role}_is_valid")), &config, now()).unwrap();
                assert_eq!(claims.role(), expected, "{alg} {role}");
            }
        }
    }

    #[test]
    fn teacher_token_has_supabase_claims() {
        let claims = verify_jwt(&token("es256_teacher_is_valid"), &config(), now()).unwrap();
        assert_eq!(
            claims.user_id(),
            Some(uuid::Uuid::parse_str("6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f").unwrap())
        );
        assert!(claims.is_teacher_or_admin());
        assert!(!claims.is_admin());
        assert_eq!(claims.aud, Some(Audience::One("authenticated".into())));
        assert_eq!(claims.exp, now() + 3600);
        assert_eq!(claims.iat, Some(now() - 60));
        assert_eq!(claims.user_metadata["full_name"], "Ada Teacher");
        assert_eq!(claims.amr[0]["method"], "password");
        assert!(!claims.is_anonymous);
    }

    #[test]
    fn anon_and_service_keys_have_no_user_and_keep_extra_claims() {
        let claims = verify_jwt(&token("hs256_anon_is_valid"), &config(), now()).unwrap();
        assert_eq!(claims.user_id(), None);
        assert_eq!(claims.app_role(), None);
        assert!(!claims.is_teacher_or_admin());
        assert_eq!(claims.extra["ref"], "voiceedgelocal");
        let claims = verify_jwt(&token("unknown_claims_are_tolerated"), &config(), now()).unwrap();
        assert_eq!(claims.extra["custom_claim"]["tier"], "gold");
    }

    #[test]
    fn admin_is_read_from_app_metadata_only() {
        let claims = verify_jwt(
            &token("admin_app_role_is_read_from_app_metadata"),
            &config(),
            now(),
        )
        .unwrap();
        assert!(claims.is_admin());
        assert!(claims.is_teacher_or_admin());
        let user_says_admin = Claims {
            user_metadata: json!({"role": "admin"}),
            ..Claims::default()
        };
        assert!(!user_says_admin.is_admin());
    }

    #[test]
    fn exp_leeway_is_thirty_seconds_and_exclusive() {
        let token = token("hs256_teacher_is_valid");
        let exp = now() + 3600;
        assert!(verify_jwt(&token, &config(), exp + LEEWAY_SECS - 1).is_ok());
        assert_eq!(
            verify_jwt(&token, &config(), exp + LEEWAY_SECS),
            Err(AuthError::Expired {
                exp,
                now: exp + LEEWAY_SECS
            })
        );
    }

    #[test]
    fn nbf_leeway_is_thirty_seconds_and_inclusive() {
        let token = token("nbf_in_the_future_is_refused");
        let nbf = now() + LEEWAY_SECS + 1;
        assert_eq!(
            outcome(&verify_jwt(&token, &config(), nbf - LEEWAY_SECS - 1)),
            "not_yet_valid"
        );
        assert!(verify_jwt(&token, &config(), nbf - LEEWAY_SECS).is_ok());
    }

    #[test]
    fn es256_with_the_wrong_key_is_a_bad_signature() {
        let result = verify_jwt(
            &token("es256_with_the_wrong_key_is_refused"),
            &config(),
            now(),
        );
        assert_eq!(result, Err(AuthError::BadSignature));
    }

    #[test]
    fn kid_selects_among_several_keys_of_a_type() {
        let config = config_with_second_ec_key();
        let second = token("es256_signed_by_ec_2_is_unknown_until_its_jwk_is_configured");
        assert!(verify_jwt(&second, &config, now()).is_ok());
        assert!(verify_jwt(&token("es256_teacher_is_valid"), &config, now()).is_ok());
        assert_eq!(
            verify_jwt(
                &token("es256_with_the_wrong_key_is_refused"),
                &config,
                now()
            ),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn no_kid_is_refused_when_several_keys_of_the_type_exist() {
        let result = verify_jwt(
            &token("es256_without_kid_uses_the_only_ec_key"),
            &config_with_second_ec_key(),
            now(),
        );
        assert_eq!(result, Err(AuthError::KidRequired(Algorithm::Es256)));
    }

    #[test]
    fn hs256_is_refused_when_no_secret_is_configured() {
        let config = AuthConfig::new(None, Some(JWKS)).unwrap();
        let result = verify_jwt(&token("hs256_teacher_is_valid"), &config, now());
        assert_eq!(result, Err(AuthError::NoKey(Algorithm::Hs256)));
        assert!(verify_jwt(&token("rs256_teacher_is_valid"), &config, now()).is_ok());
    }

    #[test]
    fn asymmetric_tokens_are_refused_without_a_jwks() {
        let config = AuthConfig::new(Some(SECRET.trim()), Some("  ")).unwrap();
        assert_eq!(
            verify_jwt(
                &token("es256_without_kid_uses_the_only_ec_key"),
                &config,
                now()
            ),
            Err(AuthError::NoKey(Algorithm::Es256))
        );
        assert_eq!(
            outcome(&verify_jwt(
                &token("rs256_teacher_is_valid"),
                &config,
                now()
            )),
            "unknown_kid"
        );
        assert!(verify_jwt(&token("hs256_teacher_is_valid"), &config, now()).is_ok());
    }

    #[test]
    fn refusal_reasons_never_contain_the_token() {
        let fixture = fixture();
        let config = config();
        for case in fixture.cases.iter().filter(|case| case.expect != "valid") {
            let reason = verify_jwt(&case.token, &config, fixture.now)
                .unwrap_err()
                .to_string();
            for segment in case.token.split('.').filter(|segment| segment.len() > 8) {
                assert!(!reason.contains(segment), "{}: {reason}", case.name);
            }
        }
    }

    #[test]
    fn an_oversized_token_is_refused_before_decoding() {
        let token = format!("{}.e30.", "e".repeat(MAX_TOKEN_BYTES));
        assert_eq!(outcome(&verify_jwt(&token, &config(), now())), "malformed");
    }

    #[test]
    fn every_refusal_maps_to_401_invalid_jwt() {
        let error: ApiError = AuthError::BadSignature.into();
        assert_eq!(error.status(), 401);
        assert_eq!(
            error.body(),
            json!({"code": 401, "message": "Invalid JWT", "error": "invalid_jwt"})
        );
        assert_eq!(error.log_detail(), Some("bad signature"));
    }

    fn vars(pairs: &[(&'static str, &str)]) -> HashMap<&'static str, String> {
        pairs
            .iter()
            .map(|(name, value)| (*name, value.to_string()))
            .collect()
    }

    #[test]
    fn load_requires_the_jwt_secret() {
        let error = AuthConfig::load(&vars(&[(config::SUPABASE_JWKS, JWKS)])).unwrap_err();
        assert_eq!(error, ConfigError::Missing(config::SUPABASE_JWT_SECRET));
    }

    #[test]
    fn load_accepts_an_absent_or_empty_jwks() {
        let config = AuthConfig::load(&vars(&[(config::SUPABASE_JWT_SECRET, SECRET)])).unwrap();
        assert!(verify_jwt(&token("hs256_anon_is_valid"), &config, now()).is_ok());
        let config = AuthConfig::load(&vars(&[
            (config::SUPABASE_JWT_SECRET, SECRET),
            (config::SUPABASE_JWKS, ""),
        ]))
        .unwrap();
        assert!(verify_jwt(&token("hs256_anon_is_valid"), &config, now()).is_ok());
    }

    #[test]
    fn load_reads_the_jwks() {
        let config = AuthConfig::load(&vars(&[
            (config::SUPABASE_JWT_SECRET, SECRET),
            (config::SUPABASE_JWKS, JWKS),
        ]))
        .unwrap();
        assert!(verify_jwt(&token("rs256_service_role_is_valid"), &config, now()).is_ok());
    }

    #[test]
    fn a_malformed_jwks_is_a_config_error_naming_the_variable() {
        let error = AuthConfig::load(&vars(&[
            (config::SUPABASE_JWT_SECRET, SECRET),
            (
                config::SUPABASE_JWKS,
                "{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\"}]}",
            ),
        ]))
        .unwrap_err();
        assert!(
            matches!(error, ConfigError::Invalid { name, .. } if name == config::SUPABASE_JWKS)
        );
        assert!(error.to_string().contains("supabase_jwks"), "{error}");
    }

    #[test]
    fn debug_redacts_the_secret() {
        let printed = format!("{:?}", config());
        assert!(!printed.contains(SECRET.trim()), "{printed}");
        assert!(printed.contains("[redacted]"));
        assert!(printed.contains("ec-1"));
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in [
            Role::Anon,
            Role::Authenticated,
            Role::ServiceRole,
            Role::Other("supabase_admin".into()),
        ] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role.clone()));
        }
        assert_eq!(Claims::default().role(), Role::Other(String::new()));
    }

    #[test]
    fn user_id_is_none_for_a_sub_that_is_not_a_uuid() {
        let claims = Claims {
            sub: Some("not-a-uuid".into()),
            ..Claims::default()
        };
        assert_eq!(claims.user_id(), None);
    }

    #[test]
    fn audience_contains_checks_one_or_many() {
        assert!(Audience::One("authenticated".into()).contains("authenticated"));
        let many = Audience::Many(vec!["a".into(), "authenticated".into()]);
        assert!(many.contains("authenticated"));
        assert!(!many.contains("service"));
    }

    #[test]
    fn require_role_allows_listed_roles_and_forbids_others() {
        let claims = verify_jwt(&token("hs256_anon_is_valid"), &config(), now()).unwrap();
        assert!(require_role(&claims, &[Role::Anon, Role::Authenticated]).is_ok());
        let error = require_role(&claims, &[Role::Authenticated]).unwrap_err();
        assert_eq!(error.status(), 403);
        assert_eq!(error.code(), "forbidden");
        assert!(error.to_string().contains("authenticated"), "{error}");
    }

    fn request_with(authorization: Option<&str>) -> RawRequest {
        RawRequest {
            method: "POST".into(),
            path: "/functions/v1/test".into(),
            headers: authorization
                .map(|value| vec![("authorization".to_string(), value.to_string())])
                .unwrap_or_default(),
            ..RawRequest::default()
        }
    }

    /// Runs `authenticate` through the request pipeline: (status, body, log line).
    fn through_pipeline(authorization: Option<&str>) -> (u16, Value, String) {
        let config = config();
        let handled = crate::block_on(handle(
            "test",
            request_with(authorization),
            &Ok(CorsPolicy::AnyOrigin),
            async |incoming| {
                let claims = authenticate(incoming, &config, now())?;
                Ok(crate::http::Reply::json(
                    200,
                    &json!({"role": claims.role().as_str()}),
                ))
            },
        ));
        let body = serde_json::from_slice(&handled.reply.body).unwrap();
        (handled.reply.status, body, handled.log_line)
    }

    #[test]
    fn a_valid_bearer_token_authenticates_and_logs_the_user() {
        let bearer = format!("Bearer {}", token("rs256_teacher_is_valid"));
        let (status, body, log) = through_pipeline(Some(&bearer));
        assert_eq!(status, 200);
        assert_eq!(body, json!({"role": "authenticated"}));
        let log: Value = serde_json::from_str(&log).unwrap();
        assert_eq!(log["user_id"], "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let bearer = format!("bearer  {}", token("hs256_service_role_is_valid"));
        let (status, body, _) = through_pipeline(Some(&bearer));
        assert_eq!(status, 200);
        assert_eq!(body["role"], "service_role");
    }

    #[test]
    fn a_missing_or_non_bearer_header_is_missing_authorization() {
        for header in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer   "),
            Some("Basic dXNlcjpwYXNz"),
        ] {
            let (status, body, _) = through_pipeline(header);
            assert_eq!(status, 401, "{header:?}");
            assert_eq!(
                body,
                json!({"code": 401, "message": "Missing authorization header", "error": "missing_authorization"}),
                "{header:?}"
            );
        }
    }

    #[test]
    fn an_invalid_token_is_401_invalid_jwt_and_never_logged() {
        for name in [
            "expired_beyond_leeway_is_refused",
            "alg_none_is_refused",
            "es256_with_the_wrong_key_is_refused",
            "tampered_hs256_payload_is_refused",
        ] {
            let token = token(name);
            let (status, body, log) = through_pipeline(Some(&format!("Bearer {token}")));
            assert_eq!(status, 401, "{name}");
            assert_eq!(
                body,
                json!({"code": 401, "message": "Invalid JWT", "error": "invalid_jwt"}),
                "{name}"
            );
            let log_line: Value = serde_json::from_str(&log).unwrap();
            assert_eq!(log_line["error"], "invalid_jwt", "{name}");
            assert!(
                log_line["detail"].is_string(),
                "{name}: the reason is logged"
            );
            assert_eq!(log_line["user_id"], Value::Null, "{name}");
            for segment in token.split('.').filter(|segment| segment.len() > 8) {
                assert!(!log.contains(segment), "{name}: {log}");
            }
        }
    }

    /// Found by the `jwt` fuzz target: a header whose unread member is not UTF-8 was
    /// accepted (serde skips members it does not name without checking them).
    #[test]
    fn a_header_that_is_not_utf8_json_is_refused_even_when_signed() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use hmac::{Hmac, Mac};
        let config = AuthConfig::new(Some(SECRET), None).unwrap();
        let sign = |header: &[u8]| {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(br#"{"sub":"u","exp":1893459600}"#)
            );
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(input.as_bytes());
            format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            )
        };
        let now = 1_893_456_000;
        assert!(verify_jwt(&sign(br#"{"alg":"HS256","typ":"JWT"}"#), &config, now).is_ok());
        let token = sign(b"{\"alg\":\"HS256\",\"typ\":\"J\xa2T\"}");
        assert!(matches!(
            verify_jwt(&token, &config, now),
            Err(AuthError::Malformed(_))
        ));
    }
}
