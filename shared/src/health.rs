//! The `health` function: is the database up, is an API key configured, and (with
//! `?deep=1`) does OpenAI know the configured Realtime model.
//!
//! `healthy` when all is well, `degraded` without an API key (or when a deep probe
//! fails), `unhealthy` with `503` when the database does not answer.
//!
//! The deep probe is shared by every caller: the route needs no auth, so it calls
//! OpenAI at most once per [`DEEP_PROBE_INTERVAL_SECONDS`], whoever asks. The last
//! answer is kept in Postgres (`health_probes`, one row per probe), since instances are
//! fresh per request; a request that does not win the claim is answered from that row.

use std::time::Duration;

use serde::Serialize;

use crate::config::{self, OpenAiConfig, Variables};
use crate::db::{self, Db, DbAddress, ParameterValue};
use crate::error::ApiError;
use crate::http::{Incoming, Reply};
use crate::log::Level;
use crate::outbound::{self, OutboundRequest};

/// How long a deep probe of OpenAI may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one upstream probe per this many seconds, over all callers and instances.
pub const DEEP_PROBE_INTERVAL_SECONDS: f64 = 30.0;
/// The `health_probes` row of the Realtime model probe.
const REALTIME_PROBE: &str = "openai_realtime_model";

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
pub async fn handle(incoming: &Incoming, vars: &impl Variables) -> Result<Reply, ApiError> {
    if !incoming.segments().is_empty() {
        return Err(ApiError::not_found("No such route"));
    }
    incoming.allow(&["GET", "HEAD"])?;
    let config = HealthConfig::load(vars)?;
    let deep = matches!(
        incoming.query_param("deep").as_deref(),
        Some("1" | "true" | "yes")
    );

    let probed = match Db::connect(&config.db_url).await {
        Ok(db) => db.query_one("SELECT 1 AS ok", &[]).await.map(|_| db),
        Err(error) => Err(error),
    };
    let db = match probed {
        Ok(db) => Some(db),
        Err(error) => {
            incoming.log(Level::Warn, "database_probe_failed", &error.to_string());
            None
        }
    };
    let api_key = config.openai.api_key.is_some();
    let realtime_api = match (deep, &db) {
        (false, _) => None,
        // Without the database the probe cannot be shared, so it is not made.
        (true, None) => None,
        (true, Some(db)) => shared_realtime_probe(incoming, db, &config).await?,
    };
    let report = HealthReport::from_probes(
        db.is_some(),
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

/// The Realtime probe's answer: a fresh one when this request wins the claim on the
/// probe (no probe started in the last 30 s), else the last one kept (`None` while
/// the first probe is still under way).
async fn shared_realtime_probe(
    incoming: &Incoming,
    db: &Db,
    config: &HealthConfig,
) -> Result<Option<bool>, ApiError> {
    let claim = db
        .query_one(
            "WITH previous AS (SELECT ok FROM health_probes WHERE probe = $1),
              claimed AS (
                  INSERT INTO health_probes AS h (probe, started_at) VALUES ($1, now())
                  ON CONFLICT (probe) DO UPDATE SET started_at = now()
                   WHERE h.started_at <= now() - make_interval(secs => $2::float8)
                  RETURNING 1)
         SELECT EXISTS (SELECT 1 FROM claimed) AS claimed, (SELECT ok FROM previous) AS ok",
            &[
                db::text(REALTIME_PROBE),
                ParameterValue::Floating64(DEEP_PROBE_INTERVAL_SECONDS),
            ],
        )
        .await?;
    let row = claim
        .rows()
        .next()
        .ok_or_else(|| ApiError::internal("the probe claim returned no row"))?;
    let claimed: bool = db::column(&row, "claimed")?;
    let last: Option<bool> = db::column(&row, "ok")?;
    if !claimed {
        return Ok(last);
    }
    let ok = probe_realtime_model(incoming, config).await;
    db.execute(
        "UPDATE health_probes SET ok = $2, answered_at = now() WHERE probe = $1",
        &[db::text(REALTIME_PROBE), ParameterValue::Boolean(ok)],
    )
    .await?;
    Ok(Some(ok))
}

/// Asks OpenAI for the configured model (`GET /v1/models/{model}`).
async fn probe_realtime_model(incoming: &Incoming, config: &HealthConfig) -> bool {
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
    match outbound::send(&request).await {
        Ok(response) => response.status == 200,
        Err(error) => {
            incoming.log(Level::Warn, "openai_probe_failed", &error.to_string());
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
