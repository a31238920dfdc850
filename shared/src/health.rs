//! The `health` function: is the database up, is an API key configured, and (with
//! `?deep=1`) does OpenAI know the configured Realtime model.
//!
//! `healthy` when all is well, `degraded` without an API key (or when a deep probe
//! fails), `unhealthy` with `503` when the database does not answer.

use std::time::Duration;

use serde::Serialize;

use crate::config::{self, OpenAiConfig, Variables};
use crate::db::{Db, DbAddress};
use crate::error::ApiError;
use crate::http::{Incoming, Reply};
use crate::outbound::{self, OutboundRequest};

/// How long a deep probe of OpenAI may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What `health` reads from its Spin variables.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    db_url: DbAddress,
    pub openai: OpenAiConfig,
    pub realtime_model: String,
}

impl HealthConfig {
    pub fn load(vars: &impl Variables) -> Result<Self, config::ConfigError> {
        Ok(Self {
            db_url: DbAddress::load(vars, config::DB_URL)?,
            openai: OpenAiConfig::load(vars)?,
            realtime_model: config::optional(
                vars,
                config::OPENAI_REALTIME_MODEL,
                config::DEFAULT_OPENAI_REALTIME_MODEL,
            )?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

/// The body of a health answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    pub status: HealthStatus,
    pub database: bool,
    #[serde(rename = "apiKey")]
    pub api_key: bool,
    /// `null` unless a deep check was asked for.
    #[serde(rename = "realtimeAPI")]
    pub realtime_api: Option<bool>,
    pub timestamp: String,
    pub version: &'static str,
}

impl HealthReport {
    /// Combines the probes' results into a report.
    pub fn from_probes(
        database: bool,
        api_key: bool,
        realtime_api: Option<bool>,
        timestamp: String,
    ) -> Self {
        let status = if !database {
            HealthStatus::Unhealthy
        } else if !api_key || realtime_api == Some(false) {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };
        Self {
            status,
            database,
            api_key,
            realtime_api,
            timestamp,
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    /// `503` when unhealthy, else `200`.
    pub fn http_status(&self) -> u16 {
        if self.status == HealthStatus::Unhealthy {
            503
        } else {
            200
        }
    }
}

/// Handles `GET /functions/v1/health`.
pub fn handle(incoming: &Incoming, vars: &impl Variables) -> Result<Reply, ApiError> {
    if !incoming.segments().is_empty() {
        return Err(ApiError::not_found("No such route"));
    }
    incoming.allow(&["GET", "HEAD"])?;
    let config = HealthConfig::load(vars)?;
    let deep = matches!(
        incoming.query_param("deep").as_deref(),
        Some("1" | "true" | "yes")
    );

    let database = probe_database(&config.db_url);
    let api_key = config.openai.api_key.is_some();
    let realtime_api = deep.then(|| probe_realtime_model(&config));
    let report = HealthReport::from_probes(
        database,
        api_key,
        realtime_api,
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    let mut reply = Reply::json(report.http_status(), &report);
    if report.status == HealthStatus::Unhealthy {
        reply = reply.header(
            "retry-after",
            crate::error::DATABASE_RETRY_AFTER_SECS.to_string(),
        );
    }
    Ok(reply.header("cache-control", "no-store"))
}

fn probe_database(db_url: &DbAddress) -> bool {
    let answered = Db::connect(db_url).and_then(|db| db.query_one("SELECT 1 AS ok", &[]));
    match answered {
        Ok(rows) => rows.rows.len() == 1,
        Err(error) => {
            eprintln!(
                "health: database probe failed: {}",
                crate::http::redact(&error.to_string())
            );
            false
        }
    }
}

/// Asks OpenAI for the configured model (`GET /v1/models/{model}`).
fn probe_realtime_model(config: &HealthConfig) -> bool {
    let Some(key) = &config.openai.api_key else {
        return false;
    };
    let request = OutboundRequest {
        method: "GET",
        url: format!(
            "{}/v1/models/{}",
            config.openai.base_url, config.realtime_model
        ),
        headers: vec![("authorization".into(), format!("Bearer {key}"))],
        body: Vec::new(),
        timeout: PROBE_TIMEOUT,
    };
    match outbound::send(&request) {
        Ok(response) => response.status == 200,
        Err(error) => {
            eprintln!("health: OpenAI probe failed: {error}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_down_is_unhealthy_503() {
        let report = HealthReport::from_probes(false, true, None, "t".into());
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert_eq!(report.http_status(), 503);
    }

    #[test]
    fn no_api_key_is_degraded_200() {
        let report = HealthReport::from_probes(true, false, None, "t".into());
        assert_eq!(report.status, HealthStatus::Degraded);
        assert_eq!(report.http_status(), 200);
    }

    #[test]
    fn failed_deep_probe_is_degraded() {
        let report = HealthReport::from_probes(true, true, Some(false), "t".into());
        assert_eq!(report.status, HealthStatus::Degraded);
        let report = HealthReport::from_probes(true, true, Some(true), "t".into());
        assert_eq!(report.status, HealthStatus::Healthy);
    }

    #[test]
    fn report_serialises_with_the_contracts_names() {
        let report = HealthReport::from_probes(true, true, None, "2026-11-21T00:00:00Z".into());
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(value["status"], "healthy");
        assert_eq!(value["database"], true);
        assert_eq!(value["apiKey"], true);
        assert!(value["realtimeAPI"].is_null());
        assert_eq!(value["timestamp"], "2026-11-21T00:00:00Z");
        assert!(value["version"].is_string());
    }
}
