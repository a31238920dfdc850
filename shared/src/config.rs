//! Configuration from Spin variables, named once.
//!
//! Each Spin variable name is a `const` here. A component reads its variables through
//! a [`Variables`] source ([`crate::runtime::SpinVariables`] in a component, a map in unit tests) with
//! [`required`], [`optional`] and [`ranged`]: a missing or malformed variable is a
//! [`ConfigError`] that names it (never its value).

use std::collections::HashMap;

pub const DB_URL: &str = "db_url";
pub const DEMO_DB_URL: &str = "demo_db_url";
pub const SUPABASE_JWT_SECRET: &str = "supabase_jwt_secret";
pub const SUPABASE_JWKS: &str = "supabase_jwks";
pub const OPENAI_API_KEY: &str = "openai_api_key";
pub const OPENAI_BASE_URL: &str = "openai_base_url";
pub const OPENAI_REALTIME_MODEL: &str = "openai_realtime_model";
pub const REALTIME_VOICE: &str = "realtime_voice";
pub const TOKEN_TTL_SECONDS: &str = "token_ttl_seconds";
pub const CLASSCONNECT_WEBHOOK_SECRET: &str = "classconnect_webhook_secret";
pub const ALLOWED_ORIGINS: &str = "allowed_origins";
pub const RATE_LIMIT_PER_MINUTE: &str = "rate_limit_per_minute";
pub const ANON_RATE_LIMIT_PER_MINUTE: &str = "anon_rate_limit_per_minute";
pub const TRUSTED_PROXIES: &str = "trusted_proxies";
pub const OPENAI_SEARCH_MODEL: &str = "openai_search_model";
pub const DB_HOST: &str = "db_host";
/// The PEM of the CA that signs the database server's certificate (`crate::db::DbAddress`).
pub const DB_CA_CERT: &str = "db_ca_cert";

pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com";
pub const DEFAULT_OPENAI_REALTIME_MODEL: &str = "gpt-realtime";
pub const DEFAULT_REALTIME_VOICE: &str = "ash";
pub const DEFAULT_TOKEN_TTL_SECONDS: i64 = 60;
pub const DEFAULT_ALLOWED_ORIGINS: &str = "*";
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: i64 = 60;
pub const DEFAULT_ANON_RATE_LIMIT_PER_MINUTE: i64 = 600;
pub const DEFAULT_OPENAI_SEARCH_MODEL: &str = "gpt-4.1-mini";

/// A variable that is missing or does not parse. Names the variable, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("required variable `{0}` is not set")]
    Missing(&'static str),
    #[error("variable `{name}` is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl From<ConfigError> for crate::ApiError {
    fn from(error: ConfigError) -> Self {
        crate::ApiError::Config {
            detail: error.to_string(),
        }
    }
}

/// Where variable values come from.
pub trait Variables {
    /// The value, or `None` when the variable is not defined for this component.
    fn get(&self, name: &'static str) -> Result<Option<String>, ConfigError>;
}

/// Fixed values, for unit tests.
impl Variables for HashMap<&'static str, String> {
    fn get(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        Ok(HashMap::get(self, name).cloned())
    }
}

/// A variable that must be set and non-empty (secrets have no silent default).
pub fn required(vars: &impl Variables, name: &'static str) -> Result<String, ConfigError> {
    match vars.get(name)? {
        Some(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// A variable with a default when it is unset or empty.
pub fn optional(
    vars: &impl Variables,
    name: &'static str,
    default: &str,
) -> Result<String, ConfigError> {
    match vars.get(name)? {
        Some(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
        _ => Ok(default.to_string()),
    }
}

/// A variable that may be empty (an unset API key means "not configured").
pub fn optional_secret(
    vars: &impl Variables,
    name: &'static str,
) -> Result<Option<String>, ConfigError> {
    Ok(vars
        .get(name)?
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty()))
}

/// An integer variable with a default, refused outside `min..=max`.
pub fn ranged(
    vars: &impl Variables,
    name: &'static str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    let raw = optional(vars, name, &default.to_string())?;
    let value: i64 = raw.parse().map_err(|_| ConfigError::Invalid {
        name,
        reason: "not an integer".into(),
    })?;
    if !(min..=max).contains(&value) {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("must be between {min} and {max}"),
        });
    }
    Ok(value)
}

/// The OpenAI connection settings most functions share.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// `None` when no key is configured (the app answers in demo mode).
    pub api_key: Option<String>,
    /// Without a trailing slash.
    pub base_url: String,
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl OpenAiConfig {
    pub fn load(vars: &impl Variables) -> Result<Self, ConfigError> {
        let base_url = optional(vars, OPENAI_BASE_URL, DEFAULT_OPENAI_BASE_URL)?;
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                name: OPENAI_BASE_URL,
                reason: "must start with http:// or https://".into(),
            });
        }
        Ok(Self {
            api_key: optional_secret(vars, OPENAI_API_KEY)?,
            base_url: base_url.trim_end_matches('/').to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&'static str, &str)]) -> HashMap<&'static str, String> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn required_names_the_missing_variable() {
        let error = required(&vars(&[]), DB_URL).unwrap_err();
        assert_eq!(error.to_string(), "required variable `db_url` is not set");
        let error = required(&vars(&[(DB_URL, "  ")]), DB_URL).unwrap_err();
        assert_eq!(error, ConfigError::Missing(DB_URL));
    }

    #[test]
    fn ranged_refuses_out_of_range_and_garbage() {
        let ok = ranged(
            &vars(&[(TOKEN_TTL_SECONDS, "120")]),
            TOKEN_TTL_SECONDS,
            60,
            10,
            7200,
        );
        assert_eq!(ok, Ok(120));
        assert_eq!(ranged(&vars(&[]), TOKEN_TTL_SECONDS, 60, 10, 7200), Ok(60));
        assert!(
            ranged(
                &vars(&[(TOKEN_TTL_SECONDS, "5")]),
                TOKEN_TTL_SECONDS,
                60,
                10,
                7200
            )
            .is_err()
        );
        let error = ranged(
            &vars(&[(TOKEN_TTL_SECONDS, "ten")]),
            TOKEN_TTL_SECONDS,
            60,
            10,
            7200,
        )
        .unwrap_err();
        assert!(error.to_string().contains("token_ttl_seconds"));
    }

    #[test]
    fn openai_config_debug_redacts_the_key() {
        let config = OpenAiConfig::load(&vars(&[
            (OPENAI_API_KEY, "sk-live-secret"),
            (OPENAI_BASE_URL, "http://127.0.0.1:9000/"),
        ]))
        .unwrap();
        assert_eq!(config.base_url, "http://127.0.0.1:9000");
        let printed = format!("{config:?}");
        assert!(!printed.contains("sk-live-secret"));
        assert!(printed.contains("[redacted]"));
    }

    #[test]
    fn empty_api_key_means_not_configured() {
        let config = OpenAiConfig::load(&vars(&[(OPENAI_API_KEY, "")])).unwrap();
        assert!(config.api_key.is_none());
        assert_eq!(config.base_url, DEFAULT_OPENAI_BASE_URL);
    }
}
