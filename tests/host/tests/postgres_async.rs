//! `spin:postgres@4.2.0`'s async functions, as spin-sdk 7's `pg` module calls them
//! (`open-async`, `build-async`, `query-async`, `execute-async`), run against both
//! runtimes (`VOICE_EDGE_RUNTIME=host|spin`) and a real PostgreSQL through the WASIp3
//! `reuse-probe` (the fixture's `p3-probe` component). What Spin's `query-async` does,
//! and the host must too: the columns come from the first row, so a result without
//! rows has none, with an empty stream and `ok` (no hang, unlike the sync `query`,
//! spinframework/spin#3671); an error raised while the rows come arrives in the result
//! future after the rows before it, as a structured `db-error` with its SQLSTATE (the
//! sync `query` flattens it to text); a `timestamptz` column still fails, in the
//! future, after the columns. And the calls are concurrent: a request whose query
//! waits on a lock does not hold up another request served by the same instance.
//!
//! Needs `cargo build --target wasm32-wasip2 --release -p reuse-probe` first and
//! PostgreSQL binaries on the PATH (the testkit starts its own cluster).

mod common;

use std::time::{Duration, Instant};

use common::{post_json, post_within, start};
use serde_json::{Value, json};
use voice_edge_testkit::app::TestApp;
use voice_edge_testkit::pg::TestDb;
use voice_edge_testkit::tls::TestCa;

fn app_for(db: &TestDb) -> TestApp {
    let host = db.db_host();
    start(&[("db_host", host.as_str())])
}

/// Runs one of the probe's async ops (`pg-query`, `pg-execute`, `pg-sync-rollback`).
fn op(app: &TestApp, op: &str, spec: Value) -> Value {
    post_json(&app.url(&format!("/p3probe/?op={op}")), &spec)
}

/// `query-async` of `statement`: the columns, rows and result the guest saw.
fn query(app: &TestApp, db: &TestDb, statement: &str) -> Value {
    op(
        app,
        "pg-query",
        json!({"address": db.url(), "statement": statement}),
    )
}

fn execute(app: &TestApp, db: &TestDb, statement: &str) -> Value {
    op(
        app,
        "pg-execute",
        json!({"address": db.url(), "statement": statement}),
    )
}

#[test]
fn query_async_streams_the_rows_with_their_columns() {
    let db = TestDb::create();
    let app = app_for(&db);
    let answer = query(
        &app,
        &db,
        "SELECT x::int4 AS n, 'row ' || x AS label FROM generate_series(1, 3) AS x",
    );
    assert_eq!(
        answer["columns"],
        json!([{"name": "n", "type": "Int32"}, {"name": "label", "type": "Str"}]),
        "{answer}"
    );
    assert_eq!(
        answer["rows"],
        json!([
            [{"int32": 1}, {"str": "row 1"}],
            [{"int32": 2}, {"str": "row 2"}],
            [{"int32": 3}, {"str": "row 3"}],
        ]),
        "{answer}"
    );
    assert_eq!(answer["result"], "ok", "{answer}");
}

#[test]
fn a_query_async_without_rows_answers_no_columns_an_empty_stream_and_ok() {
    let db = TestDb::create();
    let app = app_for(&db);
    for statement in [
        "SELECT 1::int4 AS n WHERE false",
        "SELECT x FROM generate_series(1, 0) AS x",
    ] {
        // Within a bound, so that a hang (the sync `query` of Spin's #3671) fails the
        // test instead of stalling it.
        let answer = post_within(
            &app.url("/p3probe/?op=pg-query"),
            &json!({"address": db.url(), "statement": statement}),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|| panic!("{statement}: no answer within 30 s"));
        assert_eq!(answer["columns"], json!([]), "{statement}: {answer}");
        assert_eq!(answer["rows"], json!([]), "{statement}: {answer}");
        assert_eq!(answer["result"], "ok", "{statement}: {answer}");
    }
}

#[test]
fn an_error_raised_mid_query_arrives_in_the_future_after_the_rows_as_a_db_error() {
    let db = TestDb::create();
    let app = app_for(&db);
    let answer = query(
        &app,
        &db,
        "SELECT 1 / (x - 3) AS q FROM generate_series(1, 5) AS x",
    );
    assert_eq!(
        answer["columns"],
        json!([{"name": "q", "type": "Int32"}]),
        "{answer}"
    );
    // 1 / -2 and 1 / -1, then the division by zero at x = 3.
    assert_eq!(
        answer["rows"],
        json!([[{"int32": 0}], [{"int32": -1}]]),
        "{answer}"
    );
    let error = &answer["result"]["error"]["query-failed"]["db-error"];
    assert_eq!(error["code"], "22012", "{answer}");
    assert_eq!(error["severity"], "ERROR", "{answer}");
    assert_eq!(error["message"], "division by zero", "{answer}");
}

#[test]
fn an_error_found_before_the_rows_is_the_calls_own_db_error() {
    let db = TestDb::create();
    let app = app_for(&db);
    let answer = query(&app, &db, "SELECT * FROM no_such_table");
    assert_eq!(
        answer["error"]["query-failed"]["db-error"]["code"], "42P01",
        "{answer}"
    );
    let answer = query(&app, &db, "SELECT 1 / 0 AS x");
    assert_eq!(
        answer["error"]["query-failed"]["db-error"]["code"], "22012",
        "{answer}"
    );
}

#[test]
fn a_timestamptz_column_fails_in_the_future_after_the_columns() {
    let db = TestDb::create();
    let app = app_for(&db);
    let answer = query(&app, &db, "SELECT 7::int4 AS id, now() AS at");
    assert_eq!(
        answer["columns"],
        json!([{"name": "id", "type": "Int32"}, {"name": "at", "type": "Datetime"}]),
        "{answer}"
    );
    assert_eq!(answer["rows"], json!([]), "{answer}");
    let text = answer["result"]["error"]["query-failed"]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("a text error in the future: {answer}"));
    assert!(text.contains("error deserializing column 1"), "{text}");
    assert!(text.contains("timestamptz"), "{text}");
}

#[test]
fn execute_async_answers_the_rows_affected() {
    let db = TestDb::create();
    let app = app_for(&db);
    let create = execute(&app, &db, "CREATE TABLE probe_async (id int4 PRIMARY KEY)");
    assert_eq!(create["affected"], 0, "{create}");
    let insert = execute(
        &app,
        &db,
        "INSERT INTO probe_async SELECT generate_series(1, 3)",
    );
    assert_eq!(insert["affected"], 3, "{insert}");
    let update = execute(
        &app,
        &db,
        "UPDATE probe_async SET id = id + 10 WHERE id > 1",
    );
    assert_eq!(update["affected"], 2, "{update}");
    let duplicate = execute(&app, &db, "INSERT INTO probe_async VALUES (1)");
    assert_eq!(
        duplicate["error"]["query-failed"]["db-error"]["code"], "23505",
        "{duplicate}"
    );
}

#[test]
fn open_async_and_build_async_refuse_an_address_outside_the_allow_list() {
    let db = TestDb::create();
    let app = app_for(&db);
    let port = db.db_host().rsplit_once(':').unwrap().1.to_string();
    let localhost = db.url().replace("127.0.0.1", "localhost");
    let expected = json!({"connection-failed": format!("address postgres://localhost:{port} is not permitted")});
    let answer = op(
        &app,
        "pg-query",
        json!({"address": localhost, "statement": "SELECT 1"}),
    );
    assert_eq!(answer["open-error"], expected, "{answer}");
    // The connection builder's `build-async` (spin-sdk's `open_with_options`) checks
    // the allow-list too.
    let ca = TestCa::new("postgres-async");
    let answer = op(
        &app,
        "pg-query",
        json!({"address": localhost, "statement": "SELECT 1", "ca_root": ca.pem()}),
    );
    assert_eq!(answer["open-error"], expected, "{answer}");
}

#[test]
fn a_sync_rollback_works_on_a_connection_used_async() {
    let db = TestDb::create();
    db.client()
        .batch_execute("CREATE TABLE probe_rollback (id int4)")
        .unwrap();
    let app = app_for(&db);
    let answer = op(
        &app,
        "pg-sync-rollback",
        json!({
            "address": db.url(),
            "statement": "INSERT INTO probe_rollback VALUES (1)",
            "check": "SELECT count(*) AS n FROM probe_rollback",
        }),
    );
    assert_eq!(
        answer["steps"],
        json!([{"affected": 0}, {"affected": 1}, {"affected": 0}]),
        "{answer}"
    );
    assert_eq!(
        answer["check"],
        json!({"rows": [[{"int64": 0}]]}),
        "{answer}"
    );
    let count: i64 = db
        .client()
        .query_one("SELECT count(*) FROM probe_rollback", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
}

/// An advisory lock key of this test's own.
const LOCK_KEY: i64 = 730_214;

/// Whether a session of `db` is waiting for the advisory lock [`LOCK_KEY`].
fn someone_waits_for_the_lock(db: &TestDb) -> bool {
    let waiting: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM pg_locks \
             WHERE locktype = 'advisory' AND NOT granted AND objid::int8 = $1 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[&LOCK_KEY],
        )
        .unwrap()
        .get(0);
    waiting > 0
}

/// A session of the test's holding the advisory lock [`LOCK_KEY`]: dropping it (on
/// success or when an assertion fails) releases the lock, so that a request waiting
/// for it ends and the test cannot hang.
struct LockHolder(postgres::Client);

impl LockHolder {
    fn take(db: &TestDb) -> Self {
        let mut client = db.client();
        client
            .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
            .unwrap();
        Self(client)
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self
            .0
            .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]);
    }
}

#[test]
fn an_instance_serves_other_requests_while_one_awaits_a_query() {
    let db = TestDb::create();
    // Spin's defaults, stated so that a reuse-1 run (`VOICE_EDGE_MAX_INSTANCE_REUSE`)
    // keeps them, and an idle timeout long enough for a slow machine.
    let db_host = db.db_host();
    let app = TestApp::start_manifest_with_flags(
        &common::fixture(),
        &[("secret_token", "s3cret"), ("db_host", db_host.as_str())],
        &[
            ("max-instance-reuse-count", "128"),
            ("max-instance-concurrent-reuse-count", "16"),
            ("idle-instance-timeout", "60s"),
        ],
    );
    // One instance, warm.
    let first = query(&app, &db, "SELECT 1::int4 AS n");
    assert_eq!(first["result"], "ok", "{first}");

    // The test holds the lock; request A's query waits for it inside the instance.
    let waiting =
        format!("SELECT count(*) AS n FROM (SELECT pg_advisory_xact_lock({LOCK_KEY})) AS locked");
    std::thread::scope(|scope| {
        let holder = LockHolder::take(&db);
        let request_a = scope.spawn(|| query(&app, &db, &waiting));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !someone_waits_for_the_lock(&db) {
            assert!(
                Instant::now() < deadline,
                "request A's query never waited for the lock"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Request B, while A waits: it must complete now, in the same instance (within
        // a bound: an instance blocked by A's query would hold B until the lock goes).
        let b = post_within(
            &app.url("/p3probe/?op=pg-query"),
            &json!({"address": db.url(), "statement": "SELECT 2::int4 AS n"}),
            Duration::from_secs(20),
        )
        .expect("request B completes while request A's query waits");
        assert_eq!(b["rows"], json!([[{"int32": 2}]]), "{b}");
        assert!(
            !request_a.is_finished(),
            "A finished before the lock was released"
        );
        drop(holder);
        let a = request_a.join().expect("request A");
        assert_eq!(a["rows"], json!([[{"int64": 1}]]), "{a}");
        assert_eq!(a["result"], "ok", "{a}");
        assert_eq!(a["instance"], first["instance"], "A: {a}, first: {first}");
        assert_eq!(b["instance"], a["instance"], "A: {a}, B: {b}");
        let (a_done, b_done) = (a["finished"].as_u64(), b["finished"].as_u64());
        assert!(
            b_done.is_some() && a_done.is_some() && b_done < a_done,
            "B must complete before A in the one instance: A {a}, B {b}"
        );
    });
}
