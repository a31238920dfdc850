//! `reuse-probe`: a WASIp3 component (spin-sdk 7, `wasi:http/handler@0.3.0`) that tells
//! which instance served a request, for the host's instance-reuse conformance tests
//! (`tests/host/tests/reuse.rs`).
//!
//! Every answer is `{"instance": "<id>", "served": <n>, "peak": <p>}` (JSON, with
//! `content-length`): `instance` is a random id drawn on the instance's first request,
//! `served` how many requests this instance has started, this one included, and `peak`
//! the most requests this instance has had in progress at once so far; with
//! `headers=1`, also `uri` and the `spin-full-url` and `spin-path-info` headers it got.
//! Query parameters:
//! - `wait_ms=N`: wait N milliseconds (on the host's monotonic clock) before answering,
//!   so that requests overlap and the runtime's concurrency limit can be observed;
//! - `op=shared-transaction-panic` (POST `{"address", "statement"}`): runs the
//!   statement inside `voice_edge_shared::db::Db::transaction` and panics before the
//!   transaction ends, to show that the shared helper rolls it back before the trap
//!   in a WASIp3 instance (`tests/host/tests/postgres.rs`);
//! - `op=pg-query`, `op=pg-execute`, `op=pg-sync-rollback` (POST `{"address",
//!   "statement", "ca_root"?}`): spin-sdk 7's async Postgres (`spin:postgres@4.2.0`:
//!   `open-async`, `build-async`, `query-async`, `execute-async`), for
//!   `tests/host/tests/postgres_async.rs`. `pg-query` reads the row stream to its end
//!   and then the result future, and answers `{"columns", "rows", "result"}`;
//!   `pg-execute` answers `{"affected"}`; `pg-sync-rollback` runs `BEGIN` and the
//!   statement with `execute-async`, then the sync `execute("ROLLBACK")` on the same
//!   connection, then the query `"check"` with `query-async`. Every one of them also
//!   says `instance` and `finished` (how many of these ops this instance had completed,
//!   this one included), so that a test can tell the order in which concurrent requests
//!   of one instance completed. Errors are `{"open-error"|"error": {<variant>: …}}`.
//!
//! Its own manifest is `spin.toml` beside this crate. Build:
//! `cargo build --target wasm32-wasip2 --release -p reuse-probe`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

static INSTANCE: OnceLock<String> = OnceLock::new();
static SERVED: AtomicU64 = AtomicU64::new(0);
static IN_PROGRESS: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

/// A random id, drawn once per instance (std's `RandomState` keys come from
/// `wasi:random`).
fn instance_id() -> &'static str {
    INSTANCE.get_or_init(|| {
        let state = RandomState::new();
        format!("{:016x}{:016x}", state.hash_one(1u8), state.hash_one(2u8))
    })
}

fn wait_ms(request: &Request) -> u64 {
    request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("wait_ms="))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// Runs `statement` inside shared's transaction helper and panics before it ends.
async fn shared_transaction_panic(spec: &serde_json::Value) -> String {
    use voice_edge_shared::db::{Db, DbAddress, DbError};
    let address = spec["address"].as_str().unwrap_or_default().to_string();
    let statement = spec["statement"].as_str().unwrap_or_default();
    let address = match DbAddress::new("address", address, None) {
        Ok(address) => address,
        Err(error) => return format!("{{\"error\":{:?}}}", error.to_string()),
    };
    let db = match Db::connect(&address).await {
        Ok(db) => db,
        Err(error) => return format!("{{\"error\":{:?}}}", error.to_string()),
    };
    let result: Result<(), DbError> = db
        .transaction(async |tx: &Db| {
            tx.execute(statement, &[]).await?;
            panic!("the probe panics inside a shared transaction");
        })
        .await;
    format!("{{\"unexpected\":{:?}}}", format!("{result:?}"))
}

/// How many `pg-*` ops this instance has completed.
static FINISHED: AtomicU64 = AtomicU64::new(0);

/// The async Postgres ops (`op=pg-…`).
mod pg_async {
    use serde_json::{Value, json};
    use spin_sdk::pg::wit::postgres::{self as wit, DbValue};
    use spin_sdk::pg::{Certificate, Connection, OpenOptions};

    /// A `spin:postgres` error as JSON: `{"<variant>": …}`, a database error with its
    /// code, severity and message.
    pub fn error(error: &wit::Error) -> Value {
        match error {
            wit::Error::ConnectionFailed(text) => json!({"connection-failed": text}),
            wit::Error::BadParameter(text) => json!({"bad-parameter": text}),
            wit::Error::ValueConversionFailed(text) => json!({"value-conversion-failed": text}),
            wit::Error::Other(text) => json!({"other": text}),
            wit::Error::QueryFailed(wit::QueryError::Text(text)) => {
                json!({"query-failed": {"text": text}})
            }
            wit::Error::QueryFailed(wit::QueryError::DbError(db)) => json!({"query-failed": {
                "db-error": {"code": db.code, "severity": db.severity, "message": db.message}
            }}),
        }
    }

    fn sdk_error(error: spin_sdk::pg::Error) -> Value {
        match error {
            spin_sdk::pg::Error::PgError(error) => self::error(&error),
            spin_sdk::pg::Error::Decode(text) => json!({"decode": text}),
        }
    }

    fn value(value: &DbValue) -> Value {
        match value {
            DbValue::Boolean(v) => json!({"boolean": v}),
            DbValue::Int32(v) => json!({"int32": v}),
            DbValue::Int64(v) => json!({"int64": v}),
            DbValue::Str(v) => json!({"str": v}),
            DbValue::DbNull => json!("null"),
            other => json!({"debug": format!("{other:?}")}),
        }
    }

    fn columns(columns: &[wit::Column]) -> Value {
        columns
            .iter()
            .map(|column| {
                let data_type = format!("{:?}", column.data_type);
                let data_type = data_type.trim_start_matches("DbDataType::");
                json!({"name": column.name, "type": data_type})
            })
            .collect()
    }

    async fn open(spec: &Value) -> Result<Connection, Value> {
        let address = spec["address"].as_str().unwrap_or_default();
        let opened = match spec["ca_root"].as_str() {
            Some(ca_root) => {
                let options = OpenOptions {
                    ca_root: Some(Certificate::Text(ca_root.to_string())),
                };
                Connection::open_with_options(address, options).await
            }
            None => Connection::open(address).await,
        };
        opened.map_err(|error| json!({"open-error": sdk_error(error)}))
    }

    /// `query-async`: the columns, every row in the order the stream gave them, then
    /// the result future.
    pub async fn query(spec: &Value) -> Value {
        let connection = match open(spec).await {
            Ok(connection) => connection,
            Err(answer) => return answer,
        };
        let statement = spec["statement"].as_str().unwrap_or_default();
        let mut result = match connection.query(statement, vec![]).await {
            Ok(result) => result,
            Err(error) => return json!({"error": sdk_error(error)}),
        };
        let columns = columns(result.columns());
        let mut rows = Vec::new();
        while let Some(row) = result.rows().next().await {
            rows.push(row.iter().map(value).collect::<Value>());
        }
        let outcome = match result.result().await {
            Ok(()) => json!("ok"),
            Err(error) => json!({"error": sdk_error(error)}),
        };
        json!({"columns": columns, "rows": rows, "result": outcome})
    }

    /// `execute-async`: the number of rows affected.
    pub async fn execute(spec: &Value) -> Value {
        let connection = match open(spec).await {
            Ok(connection) => connection,
            Err(answer) => return answer,
        };
        let statement = spec["statement"].as_str().unwrap_or_default();
        match connection.execute(statement, vec![]).await {
            Ok(affected) => json!({"affected": affected}),
            Err(error) => json!({"error": sdk_error(error)}),
        }
    }

    /// `BEGIN` and the statement through `execute-async`, the sync `ROLLBACK` on the same
    /// connection (as a panic hook would send it), then `check` through `query-async`.
    pub async fn sync_rollback(spec: &Value) -> Value {
        let address = spec["address"].as_str().unwrap_or_default().to_string();
        let connection = match wit::Connection::open_async(address).await {
            Ok(connection) => connection,
            Err(error) => return json!({"open-error": self::error(&error)}),
        };
        let statement = spec["statement"].as_str().unwrap_or_default().to_string();
        let mut steps = Vec::new();
        for statement in ["BEGIN".to_string(), statement] {
            steps.push(match connection.execute_async(statement, vec![]).await {
                Ok(affected) => json!({"affected": affected}),
                Err(error) => json!({"error": self::error(&error)}),
            });
        }
        steps.push(match connection.execute("ROLLBACK", &[]) {
            Ok(affected) => json!({"affected": affected}),
            Err(error) => json!({"error": self::error(&error)}),
        });
        let check = spec["check"].as_str().unwrap_or_default().to_string();
        let check = match connection.query_async(check, vec![]).await {
            Ok((_columns, mut rows, outcome)) => {
                let mut values = Vec::new();
                while let Some(row) = rows.next().await {
                    values.push(row.iter().map(value).collect::<Value>());
                }
                match outcome.await {
                    Ok(()) => json!({"rows": values}),
                    Err(error) => json!({"error": self::error(&error)}),
                }
            }
            Err(error) => json!({"error": self::error(&error)}),
        };
        json!({"steps": steps, "check": check})
    }
}

/// Runs one of the `pg-*` ops on the request's JSON body.
async fn pg_op(op: &str, request: Request) -> http::Response<String> {
    use http_body_util::BodyExt;
    let instance = instance_id();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes());
    let spec: serde_json::Value = body
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let mut answer = match op {
        "pg-query" => pg_async::query(&spec).await,
        "pg-execute" => pg_async::execute(&spec).await,
        "pg-sync-rollback" => pg_async::sync_rollback(&spec).await,
        _ => serde_json::json!({"unknown-op": op}),
    };
    let finished = FINISHED.fetch_add(1, Ordering::SeqCst) + 1;
    answer["instance"] = instance.into();
    answer["finished"] = finished.into();
    let body = answer.to_string();
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("content-length", body.len().to_string())
        .body(body)
        .expect("a valid response")
}

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    let op = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("op="))
        .unwrap_or("")
        .to_string();
    if op.starts_with("pg-") {
        return Ok(pg_op(&op, request).await);
    }
    if request
        .uri()
        .query()
        .unwrap_or("")
        .contains("op=shared-transaction-panic")
    {
        use http_body_util::BodyExt;
        let body = request
            .into_body()
            .collect()
            .await
            .map(|body| body.to_bytes());
        let spec = body
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let body = shared_transaction_panic(&spec).await;
        return http::Response::builder()
            .status(500)
            .header("content-length", body.len().to_string())
            .body(body);
    }
    let instance = instance_id();
    let served = SERVED.fetch_add(1, Ordering::SeqCst) + 1;
    let in_progress = IN_PROGRESS.fetch_add(1, Ordering::SeqCst) + 1;
    PEAK.fetch_max(in_progress, Ordering::SeqCst);
    let wait = wait_ms(&request);
    if wait > 0 {
        spin_sdk::time::sleep(Duration::from_millis(wait)).await;
    }
    IN_PROGRESS.fetch_sub(1, Ordering::SeqCst);
    let peak = PEAK.load(Ordering::SeqCst);
    let mut body = format!("{{\"instance\":\"{instance}\",\"served\":{served},\"peak\":{peak}");
    if request.uri().query().unwrap_or("").contains("headers=1") {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .replace(['"', '\\'], "")
        };
        body.push_str(&format!(
            ",\"uri\":\"{}\",\"full_url\":\"{}\",\"path_info\":\"{}\"",
            request.uri().to_string().replace(['"', '\\'], ""),
            header("spin-full-url"),
            header("spin-path-info"),
        ));
    }
    body.push('}');
    // Always a content-length: a chunked answer under Spin waits for a delayed ACK.
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("content-length", body.len().to_string())
        .body(body)
}
