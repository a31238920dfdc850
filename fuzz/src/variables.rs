//! `variables`: what operators write in Spin variables, read through the loaders the
//! components call: `allowed_origins` ([`CorsPolicy::parse`] of [`config::optional`]),
//! `classconnect_webhook_secret` ([`WebhookSecrets::load`]), `supabase_jwt_secret` with
//! `supabase_jwks` ([`AuthConfig::load`]) and the ranged integers (`token_ttl_seconds`);
//! and [`redact`], which every log detail goes through. Byte 0 chooses; the rest is the
//! value (for the auth variables: NUL-separated secret and JWKS). No CIDR list is read
//! by any function, so there is no parser of one to fuzz.
//!
//! Oracle: an origin list holds no empty, `*`, separator-containing or `/`-ended entry,
//! and "any origin" comes only from `*` or a value of separators alone; a configuration
//! error names the variable and never holds a secret of the value; `Debug` of the keys
//! is redacted; a ranged value is within its range; redacted text is at most 500
//! characters and keeps no key-like word or `password=` value.

use std::collections::HashMap;

use voice_edge_shared::auth::AuthConfig;
use voice_edge_shared::config::{self, CLASSCONNECT_WEBHOOK_SECRET, TOKEN_TTL_SECONDS};
use voice_edge_shared::http::CorsPolicy;
use voice_edge_shared::log::redact;
use voice_edge_shared::webhook_signature::WebhookSecrets;

use crate::{fields, mode, text};

const SEPARATORS: [char; 4] = [',', ' ', '\n', '\t'];
const KEY_PREFIXES: [&str; 4] = ["sk-", "ek_", "whsec_", "eyJ"];

pub fn run(data: &[u8]) {
    let (mode, rest) = mode(data);
    match mode % 5 {
        0 => allowed_origins(&text(rest)),
        1 => webhook_secrets(&text(rest)),
        2 => {
            let [secret, jwks] = fields(rest, 2).try_into().expect("two fields");
            auth(&text(secret), &text(jwks));
        }
        3 => {
            let vars = HashMap::from([(TOKEN_TTL_SECONDS, text(rest))]);
            if let Ok(ttl) = config::ranged(&vars, TOKEN_TTL_SECONDS, 60, 10, 7200) {
                assert!((10..=7200).contains(&ttl));
            }
        }
        _ => redacted(&text(rest)),
    }
}

fn allowed_origins(value: &str) {
    let vars = HashMap::from([(config::ALLOWED_ORIGINS, value.to_string())]);
    // CORS fails closed: only a `*` allows any origin; an empty list allows none.
    match CorsPolicy::load(&vars).expect("a map never fails") {
        CorsPolicy::AnyOrigin => assert!(value.contains('*'), "{value:?} allows any origin"),
        CorsPolicy::Origins(origins) => {
            for origin in origins {
                assert!(!origin.is_empty() && origin != "*" && !origin.ends_with('/'));
                assert!(!origin.contains(SEPARATORS), "{origin:?}");
                assert!(value.contains(&origin));
            }
        }
    }
}

fn webhook_secrets(value: &str) {
    let vars = HashMap::from([(CLASSCONNECT_WEBHOOK_SECRET, value.to_string())]);
    match WebhookSecrets::load(&vars) {
        Ok(secrets) => assert!(format!("{secrets:?}").contains("[redacted]")),
        Err(error) => {
            let message = error.to_string();
            assert!(message.contains(CLASSCONNECT_WEBHOOK_SECRET), "{message}");
            for word in value.split_whitespace() {
                if word.starts_with("whsec_") && word.len() >= 12 {
                    assert!(!message.contains(word), "the error quotes a secret");
                }
            }
        }
    }
}

fn auth(secret: &str, jwks: &str) {
    let vars = HashMap::from([
        (config::SUPABASE_JWT_SECRET, secret.to_string()),
        (config::SUPABASE_JWKS, jwks.to_string()),
    ]);
    match AuthConfig::load(&vars) {
        Ok(config) => {
            let debug = format!("{config:?}");
            // What Debug shows with another secret: text found there too is no leak.
            let other =
                AuthConfig::new(Some("another secret"), Some(jwks)).map(|c| format!("{c:?}"));
            let secret = secret.trim();
            if secret.len() >= 8 && other.is_ok_and(|other| !other.contains(secret)) {
                assert!(!debug.contains(secret), "Debug shows the JWT secret");
            }
        }
        Err(error) => {
            let message = error.to_string();
            let named = [config::SUPABASE_JWT_SECRET, config::SUPABASE_JWKS];
            assert!(named.iter().any(|name| message.contains(name)), "{message}");
        }
    }
}

fn redacted(text: &str) {
    let out = redact(text);
    let count = out.chars().count();
    assert!(count <= 500);
    let mut words: Vec<&str> = out.split(' ').collect();
    if count == 500 {
        // The last word may be cut short by the limit.
        words.pop();
    }
    for word in words {
        if let Some((_, rest)) = word.split_once("://")
            && let Some((userinfo, _)) = rest.split_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            assert_eq!(
                password, "[redacted]",
                "a URL's password survived redaction"
            );
            continue;
        }
        let bare = word.trim_start_matches(['"', '\'', '(']);
        if KEY_PREFIXES.iter().any(|prefix| bare.starts_with(prefix)) {
            assert!(word.len() <= 12, "a key-like word survived redaction");
        }
        if let Some(value) = word.strip_prefix("password=") {
            assert_eq!(value, "[redacted]");
        }
    }
}
