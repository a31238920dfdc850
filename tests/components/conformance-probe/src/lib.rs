//! `conformance-probe`: a spin-sdk 5.2 component that reports what the host gives it,
//! for the host's conformance tests (`tests/host/tests`).
//!
//! Operations, chosen by the `op` query parameter:
//! - `headers`: the method, URI and every request header;
//! - `counter`: a static counter, incremented once per call (a fresh instance per
//!   request always answers 1);
//! - `var&name=…`: `fermyon:spin/variables.get`;
//! - `http` (POST `{"url", "first_byte_timeout_ms"?}`): an outbound GET through
//!   `wasi:http/outgoing-handler`, reporting the status or the error code;
//! - `pg` (POST `{"address", "steps": [{"kind": "query"|"execute", "statement",
//!   "params": [...], "decode"?: [{"column", "as"}]}]}`): opens one connection and runs
//!   the steps on it, reporting every value as the host sent it (with
//!   `"trap_after_steps": true` it panics instead of answering, connection still open).
//!   The connection comes from `spin:postgres@4.0.0`'s `connection.open` (spin-sdk's
//!   `pg4`), or, with `"builder": {"ca_root"?: "<PEM>"}`, from `@4.1.0`'s
//!   `connection-builder` (bound from the probe's `wit/`): `set-ca-root` when `ca_root` is given
//!   (its error is reported as `set-ca-root-error`), then `build`;
//! - `log&text=…`: prints the text on stdout and stderr;
//! - `trap`: panics before answering.
//!
//! Build: `cargo build --target wasm32-wasip2 --release -p conformance-probe`.

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use spin_sdk::pg4::{
    Connection, DbValue, Interval, ParameterValue, PgError, QueryError, RangeBoundKind, RowSet,
};
/// `spin:postgres@4.1.0`'s resources (its connection builder), with spin-sdk 5.2's
/// `pg4` value types, which have the same shape; bound from the probe's own `wit/`.
/// (shared is on spin-sdk 7, which a WASIp2 probe on spin-sdk 5.2 cannot link beside.)
#[allow(missing_docs, clippy::all)]
mod spin_postgres {
    wit_bindgen::generate!({
        world: "postgres",
        path: "wit",
        with: {
            "spin:postgres/postgres@4.1.0": generate,
            "spin:postgres/postgres@4.1.0/error": spin_sdk::pg4::PgError,
            "spin:postgres/postgres@4.1.0/query-error": spin_sdk::pg4::QueryError,
            "spin:postgres/postgres@4.1.0/db-error": spin_sdk::pg4::DbError,
            "spin:postgres/postgres@4.1.0/db-data-type": spin_sdk::pg4::DbDataType,
            "spin:postgres/postgres@4.1.0/db-value": spin_sdk::pg4::DbValue,
            "spin:postgres/postgres@4.1.0/parameter-value": spin_sdk::pg4::ParameterValue,
            "spin:postgres/postgres@4.1.0/interval": spin_sdk::pg4::Interval,
            "spin:postgres/postgres@4.1.0/column": spin_sdk::pg4::Column,
            "spin:postgres/postgres@4.1.0/row-set": spin_sdk::pg4::RowSet,
            "spin:postgres/postgres@4.1.0/range-bound-kind": spin_sdk::pg4::RangeBoundKind,
        },
    });
    pub use spin::postgres::postgres::{Connection, ConnectionBuilder};
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn query_param(request: &Request, name: &str) -> Option<String> {
    request.query().split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                Ok(byte) => {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

#[http_component]
fn handle(request: Request) -> Response {
    let op = query_param(&request, "op").unwrap_or_default();
    match op.as_str() {
        "headers" => {
            let headers: serde_json::Map<String, Value> = request
                .headers()
                .map(|(name, value)| (name.to_string(), json!(value.as_str().unwrap_or_default())))
                .collect();
            json_response(
                200,
                json!({"method": request.method().to_string(), "uri": request.uri(), "headers": headers}),
            )
        }
        "counter" => {
            let count = COUNTER.fetch_add(1, Ordering::SeqCst) + 1;
            json_response(200, json!({"count": count}))
        }
        "var" => {
            let name = query_param(&request, "name").unwrap_or_default();
            match spin_sdk::variables::get(&name) {
                Ok(value) => json_response(200, json!({"value": value})),
                Err(error) => json_response(200, json!({"error": format!("{error:?}")})),
            }
        }
        "http" => match serde_json::from_slice::<Value>(request.body()) {
            Ok(spec) => json_response(200, outbound_http(&spec)),
            Err(error) => json_response(400, json!({"error": error.to_string()})),
        },
        "pg" => match serde_json::from_slice::<Value>(request.body()) {
            Ok(spec) => json_response(200, postgres(&spec)),
            Err(error) => json_response(400, json!({"error": error.to_string()})),
        },
        "log" => {
            let text = query_param(&request, "text").unwrap_or_default();
            println!("stdout: {text}");
            eprintln!("stderr: {text}");
            json_response(200, json!({"logged": text}))
        }
        "trap" => panic!("the probe was asked to trap"),
        other => json_response(404, json!({"error": format!("unknown op {other:?}")})),
    }
}

fn outbound_http(spec: &Value) -> Value {
    use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
    use spin_sdk::wit::wasi::http0_2_0::types::{
        Fields, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
    };

    let url = spec["url"].as_str().unwrap_or_default();
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", rest)) => (Scheme::Https, rest),
        Some((_, rest)) => (Scheme::Http, rest),
        None => (Scheme::Http, url),
    };
    let (authority, path) = match rest.find('/') {
        Some(index) => (&rest[..index], &rest[index..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&scheme));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    let Ok(body) = request.body() else {
        return json!({"error": "no body"});
    };
    let options = RequestOptions::new();
    if let Some(ms) = spec["first_byte_timeout_ms"].as_u64() {
        let _ = options.set_first_byte_timeout(Some(ms * 1_000_000));
    }
    let pending = match outgoing_handler::handle(request, Some(options)) {
        Ok(pending) => pending,
        Err(code) => return json!({"error": format!("{code:?}"), "stage": "handle"}),
    };
    let _ = OutgoingBody::finish(body, None);
    let response = loop {
        if let Some(result) = pending.get() {
            break result;
        }
        pending.subscribe().block();
    };
    match response {
        Ok(Ok(response)) => {
            let status = response.status();
            let mut bytes = Vec::new();
            if let Ok(body) = response.consume()
                && let Ok(stream) = body.stream()
            {
                while let Ok(chunk) = stream.blocking_read(64 * 1024) {
                    bytes.extend_from_slice(&chunk);
                }
            }
            json!({"status": status, "body": String::from_utf8_lossy(&bytes)})
        }
        Ok(Err(code)) => json!({"error": format!("{code:?}"), "stage": "response"}),
        Err(()) => json!({"error": "response taken twice"}),
    }
}

fn bound<T: Into<Value> + Clone>(bound: &Option<(T, RangeBoundKind)>) -> Value {
    match bound {
        None => Value::Null,
        Some((value, kind)) => {
            let kind = match kind {
                RangeBoundKind::Inclusive => "inclusive",
                RangeBoundKind::Exclusive => "exclusive",
            };
            json!([value.clone().into(), kind])
        }
    }
}

fn value_json(value: &DbValue) -> Value {
    match value {
        DbValue::Boolean(v) => json!({"boolean": v}),
        DbValue::Int8(v) => json!({"int8": v}),
        DbValue::Int16(v) => json!({"int16": v}),
        DbValue::Int32(v) => json!({"int32": v}),
        DbValue::Int64(v) => json!({"int64": v}),
        DbValue::Floating32(v) => json!({"floating32": v}),
        DbValue::Floating64(v) => json!({"floating64": v}),
        DbValue::Str(v) => json!({"str": v}),
        DbValue::Binary(v) => json!({"binary": v}),
        DbValue::Date((y, m, d)) => json!({"date": [y, m, d]}),
        DbValue::Time((h, m, s, ns)) => json!({"time": [h, m, s, ns]}),
        DbValue::Datetime((y, mo, d, h, mi, s, ns)) => {
            json!({"datetime": [y, mo, d, h, mi, s, ns]})
        }
        DbValue::Timestamp(v) => json!({"timestamp": v}),
        DbValue::Uuid(v) => json!({"uuid": v}),
        DbValue::Jsonb(v) => json!({"jsonb": String::from_utf8_lossy(v)}),
        DbValue::Decimal(v) => json!({"decimal": v}),
        DbValue::RangeInt32((lo, hi)) => json!({"range-int32": [bound(lo), bound(hi)]}),
        DbValue::RangeInt64((lo, hi)) => json!({"range-int64": [bound(lo), bound(hi)]}),
        DbValue::RangeDecimal((lo, hi)) => json!({"range-decimal": [bound(lo), bound(hi)]}),
        DbValue::ArrayInt32(v) => json!({"array-int32": v}),
        DbValue::ArrayInt64(v) => json!({"array-int64": v}),
        DbValue::ArrayDecimal(v) => json!({"array-decimal": v}),
        DbValue::ArrayStr(v) => json!({"array-str": v}),
        DbValue::Interval(i) => {
            json!({"interval": {"micros": i.micros, "days": i.days, "months": i.months}})
        }
        DbValue::DbNull => json!("db-null"),
        DbValue::Unsupported(v) => json!({"unsupported": v}),
    }
}

fn tuple<const N: usize>(value: &Value) -> Option<[i64; N]> {
    let items = value.as_array()?;
    let numbers: Vec<i64> = items.iter().map(Value::as_i64).collect::<Option<_>>()?;
    numbers.try_into().ok()
}

fn range_bound<T>(
    value: &Value,
    item: impl Fn(&Value) -> Option<T>,
) -> Option<(T, RangeBoundKind)> {
    let pair = value.as_array()?;
    let kind = match pair.get(1)?.as_str()? {
        "inclusive" => RangeBoundKind::Inclusive,
        _ => RangeBoundKind::Exclusive,
    };
    Some((item(pair.first()?)?, kind))
}

fn param(spec: &Value) -> Result<ParameterValue, String> {
    if spec.as_str() == Some("db-null") {
        return Ok(ParameterValue::DbNull);
    }
    let object = spec
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| format!("bad parameter {spec}"))?;
    let (kind, value) = object.iter().next().expect("one entry");
    let bad = || format!("bad {kind} parameter {value}");
    let int = || value.as_i64().ok_or_else(bad);
    let strings = || -> Result<Vec<Option<String>>, String> {
        value.as_array().ok_or_else(bad).map(|items| {
            items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect()
        })
    };
    Ok(match kind.as_str() {
        "boolean" => ParameterValue::Boolean(value.as_bool().ok_or_else(bad)?),
        "int8" => ParameterValue::Int8(int()? as i8),
        "int16" => ParameterValue::Int16(int()? as i16),
        "int32" => ParameterValue::Int32(int()? as i32),
        "int64" => ParameterValue::Int64(int()?),
        "floating32" => ParameterValue::Floating32(value.as_f64().ok_or_else(bad)? as f32),
        "floating64" => ParameterValue::Floating64(value.as_f64().ok_or_else(bad)?),
        "str" => ParameterValue::Str(value.as_str().ok_or_else(bad)?.to_string()),
        "binary" => ParameterValue::Binary(
            value
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|b| b.as_u64().unwrap_or(0) as u8)
                .collect(),
        ),
        "date" => {
            let [y, m, d] = tuple::<3>(value).ok_or_else(bad)?;
            ParameterValue::Date((y as i32, m as u8, d as u8))
        }
        "time" => {
            let [h, m, s, ns] = tuple::<4>(value).ok_or_else(bad)?;
            ParameterValue::Time((h as u8, m as u8, s as u8, ns as u32))
        }
        "datetime" => {
            let [y, mo, d, h, mi, s, ns] = tuple::<7>(value).ok_or_else(bad)?;
            ParameterValue::Datetime((
                y as i32, mo as u8, d as u8, h as u8, mi as u8, s as u8, ns as u32,
            ))
        }
        "timestamp" => ParameterValue::Timestamp(int()?),
        "uuid" => ParameterValue::Uuid(value.as_str().ok_or_else(bad)?.to_string()),
        "jsonb" => ParameterValue::Jsonb(value.to_string().into_bytes()),
        "jsonb-raw" => ParameterValue::Jsonb(value.as_str().ok_or_else(bad)?.as_bytes().to_vec()),
        "decimal" => ParameterValue::Decimal(value.as_str().ok_or_else(bad)?.to_string()),
        "range-int32" => {
            let items = value.as_array().ok_or_else(bad)?;
            let item = |v: &Value| v.as_i64().map(|n| n as i32);
            ParameterValue::RangeInt32((range_bound(&items[0], item), range_bound(&items[1], item)))
        }
        "range-int64" => {
            let items = value.as_array().ok_or_else(bad)?;
            ParameterValue::RangeInt64((
                range_bound(&items[0], Value::as_i64),
                range_bound(&items[1], Value::as_i64),
            ))
        }
        "array-int32" => ParameterValue::ArrayInt32(
            value
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|v| v.as_i64().map(|n| n as i32))
                .collect(),
        ),
        "array-int64" => ParameterValue::ArrayInt64(
            value
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(Value::as_i64)
                .collect(),
        ),
        "array-str" => ParameterValue::ArrayStr(strings()?),
        "array-decimal" => ParameterValue::ArrayDecimal(strings()?),
        "interval" => ParameterValue::Interval(Interval {
            micros: value["micros"].as_i64().ok_or_else(bad)?,
            days: value["days"].as_i64().ok_or_else(bad)? as i32,
            months: value["months"].as_i64().ok_or_else(bad)? as i32,
        }),
        other => return Err(format!("unknown parameter kind {other}")),
    })
}

fn error_json(error: &PgError) -> Value {
    match error {
        PgError::ConnectionFailed(text) => json!({"connection-failed": text}),
        PgError::BadParameter(text) => json!({"bad-parameter": text}),
        PgError::ValueConversionFailed(text) => json!({"value-conversion-failed": text}),
        PgError::Other(text) => json!({"other": text}),
        PgError::QueryFailed(QueryError::Text(text)) => json!({"query-failed": {"text": text}}),
        PgError::QueryFailed(QueryError::DbError(db)) => json!({"query-failed": {"db-error": {
            "code": db.code, "message": db.message, "severity": db.severity, "detail": db.detail,
            "extras": db.extras.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        }}}),
    }
}

/// What the SDK's typed decoding makes of the first row's `column`.
fn decoded(rows: &RowSet, column: &str, as_type: &str) -> Value {
    let Some(row) = rows.rows().next() else {
        return Value::Null;
    };
    let text = match as_type {
        "naive_datetime" => row
            .get::<chrono::NaiveDateTime>(column)
            .map(|v| v.to_string()),
        "naive_date" => row.get::<chrono::NaiveDate>(column).map(|v| v.to_string()),
        "uuid" => row.get::<uuid::Uuid>(column).map(|v| v.to_string()),
        "decimal" => row
            .get::<rust_decimal::Decimal>(column)
            .map(|v| v.to_string()),
        "json" => row.get::<serde_json::Value>(column).map(|v| v.to_string()),
        "string_array" => row
            .get::<Vec<Option<String>>>(column)
            .map(|v| format!("{v:?}")),
        "i64" => row.get::<i64>(column).map(|v| v.to_string()),
        "i32" => row.get::<i32>(column).map(|v| v.to_string()),
        "string" => row.get::<String>(column),
        "bool" => row.get::<bool>(column).map(|v| v.to_string()),
        "optional_string" => row.get::<Option<String>>(column).map(|v| format!("{v:?}")),
        other => Some(format!("unknown decode type {other}")),
    };
    text.map(Value::String).unwrap_or(Value::Null)
}

/// A connection of either version of the interface (their types are the same).
trait PgConnection {
    fn query(&self, statement: &str, params: &[ParameterValue]) -> Result<RowSet, PgError>;
    fn execute(&self, statement: &str, params: &[ParameterValue]) -> Result<u64, PgError>;
}

impl PgConnection for Connection {
    fn query(&self, statement: &str, params: &[ParameterValue]) -> Result<RowSet, PgError> {
        Connection::query(self, statement, params)
    }
    fn execute(&self, statement: &str, params: &[ParameterValue]) -> Result<u64, PgError> {
        Connection::execute(self, statement, params)
    }
}

impl PgConnection for spin_postgres::Connection {
    fn query(&self, statement: &str, params: &[ParameterValue]) -> Result<RowSet, PgError> {
        spin_postgres::Connection::query(self, statement, params)
    }
    fn execute(&self, statement: &str, params: &[ParameterValue]) -> Result<u64, PgError> {
        spin_postgres::Connection::execute(self, statement, params)
    }
}

fn run_step(connection: &dyn PgConnection, step: &Value) -> Value {
    let statement = step["statement"].as_str().unwrap_or_default();
    let params: Result<Vec<ParameterValue>, String> = step["params"]
        .as_array()
        .map(|items| items.iter().map(param).collect())
        .unwrap_or(Ok(Vec::new()));
    let params = match params {
        Ok(params) => params,
        Err(error) => return json!({"probe-error": error}),
    };
    if step["kind"].as_str() == Some("execute") {
        return match connection.execute(statement, &params) {
            Ok(count) => json!({"affected": count}),
            Err(error) => json!({"error": error_json(&error)}),
        };
    }
    match connection.query(statement, &params) {
        Ok(rows) => {
            let columns: Vec<Value> = rows
                .columns
                .iter()
                .map(|c| json!({"name": c.name, "type": format!("{:?}", c.data_type).trim_start_matches("DbDataType::")}))
                .collect();
            let values: Vec<Value> = rows
                .rows
                .iter()
                .map(|row| Value::Array(row.iter().map(value_json).collect()))
                .collect();
            let decodes: Vec<Value> = step["decode"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|d| {
                            decoded(
                                &rows,
                                d["column"].as_str().unwrap_or_default(),
                                d["as"].as_str().unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({"columns": columns, "rows": values, "decoded": decodes})
        }
        Err(error) => json!({"error": error_json(&error)}),
    }
}

/// Opens the connection `spec` asks for, or says why it could not.
fn open(spec: &Value) -> Result<Box<dyn PgConnection>, Value> {
    let address = spec["address"].as_str().unwrap_or_default();
    let Some(builder_spec) = spec.get("builder") else {
        return match Connection::open(address) {
            Ok(connection) => Ok(Box::new(connection)),
            Err(error) => Err(json!({"open-error": error_json(&error)})),
        };
    };
    let builder = spin_postgres::ConnectionBuilder::new(address);
    if let Some(ca_root) = builder_spec["ca_root"].as_str()
        && let Err(error) = builder.set_ca_root(ca_root)
    {
        return Err(json!({"set-ca-root-error": error_json(&error)}));
    }
    match builder.build() {
        Ok(connection) => Ok(Box::new(connection)),
        Err(error) => Err(json!({"open-error": error_json(&error)})),
    }
}

fn postgres(spec: &Value) -> Value {
    let connection = match open(spec) {
        Ok(connection) => connection,
        Err(answer) => return answer,
    };
    let steps: Vec<Value> = spec["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|step| run_step(connection.as_ref(), step))
                .collect()
        })
        .unwrap_or_default();
    if spec["trap_after_steps"].as_bool() == Some(true) {
        panic!("the probe traps with its connection open");
    }
    json!({"steps": steps})
}
