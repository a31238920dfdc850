//! Conformance of the host's `spin:postgres@4.0.0` with Spin, against a real
//! PostgreSQL: the address allow-list, pooled connections and transactions, TLS modes,
//! every type mapping in both directions, and the error variants.
//!
//! Needs `cargo build --target wasm32-wasip2 --release -p conformance-probe` first and
//! PostgreSQL binaries on the PATH (the testkit starts its own cluster).

mod common;

use common::{post_json, start};
use serde_json::{Value, json};
use voice_edge_testkit::app::TestApp;
use voice_edge_testkit::pg::{PgCluster, TestDb};

/// Runs `steps` on one connection to `address` through the probe.
fn pg(app: &TestApp, address: &str, steps: Value) -> Value {
    post_json(
        &app.url("/probe?op=pg"),
        &json!({"address": address, "steps": steps}),
    )
}

fn query(statement: &str, params: Value) -> Value {
    json!({"kind": "query", "statement": statement, "params": params})
}

fn execute(statement: &str, params: Value) -> Value {
    json!({"kind": "execute", "statement": statement, "params": params})
}

fn app_for(db: &TestDb) -> TestApp {
    let host = db.db_host();
    start(&[("db_host", host.as_str())])
}

/// The single value of a one-step, one-row, one-column query.
fn single(answer: &Value) -> (&Value, &Value) {
    let step = &answer["steps"][0];
    assert!(step.get("error").is_none(), "{answer}");
    (&step["rows"][0][0], &step["columns"][0]["type"])
}

#[test]
fn an_allowed_address_connects_and_queries() {
    let db = TestDb::create();
    let app = app_for(&db);
    let answer = pg(
        &app,
        &db.url(),
        json!([query("SELECT 1::int4 AS one, 'x'::text AS two", json!([]))]),
    );
    assert_eq!(
        answer["steps"][0]["columns"],
        json!([{"name": "one", "type": "Int32"}, {"name": "two", "type": "Str"}])
    );
    assert_eq!(
        answer["steps"][0]["rows"],
        json!([[{"int32": 1}, {"str": "x"}]])
    );
}

#[test]
fn an_address_outside_the_allow_list_is_refused_before_connecting() {
    let db = TestDb::create();
    let app = app_for(&db);
    let port = db.db_host().rsplit_once(':').unwrap().1.to_string();
    let localhost = db.url().replace("127.0.0.1", "localhost");
    let answer = pg(&app, &localhost, json!([]));
    assert_eq!(
        answer["open-error"],
        json!({"connection-failed": format!("address postgres://localhost:{port} is not permitted")})
    );
    let without_port = db.url().replace(&format!("127.0.0.1:{port}"), "127.0.0.1");
    let answer = pg(&app, &without_port, json!([]));
    // tokio-postgres reads a missing port as 5432, so Spin reports it with that port.
    assert_eq!(
        answer["open-error"],
        json!({"connection-failed": "address postgres://127.0.0.1:5432 is not permitted"})
    );
    let answer = post_json(
        &app.url("/closed?op=pg"),
        &json!({"address": db.url(), "steps": []}),
    );
    assert_eq!(
        answer["open-error"],
        json!({"connection-failed": format!("address postgres://127.0.0.1:{port} is not permitted")})
    );
}

#[test]
fn a_connection_string_without_port_counts_as_5432() {
    let db = TestDb::create();
    let app = start(&[("db_host", "127.0.0.1:5432")]);
    let port = db.db_host().rsplit_once(':').unwrap().1.to_string();
    let without_port = db.url().replace(&format!("127.0.0.1:{port}"), "127.0.0.1");
    let answer = pg(&app, &without_port, json!([]));
    // Whatever listens on 5432 here (usually nothing) may refuse us, but the
    // allow-list must not.
    let refused = answer["open-error"]["connection-failed"]
        .as_str()
        .is_some_and(|error| error.contains("not permitted"));
    assert!(!refused, "the allow-list refused a 5432 address: {answer}");
    let answer = pg(&app, &db.url(), json!([]));
    assert_eq!(
        answer["open-error"]["connection-failed"],
        format!("address postgres://127.0.0.1:{port} is not permitted")
    );
}

#[test]
fn an_unparsable_or_unsupported_connection_string_is_connection_failed() {
    let db = TestDb::create();
    let app = app_for(&db);
    for address in [
        "not a url ://",
        &db.url().replace("sslmode=disable", "sslmode=verify-full"),
    ] {
        let answer = pg(&app, address, json!([]));
        assert!(
            answer["open-error"]["connection-failed"].is_string(),
            "{address}: {answer}"
        );
    }
}

#[test]
fn sslmode_prefer_falls_back_to_plain_and_require_fails_without_tls() {
    let db = TestDb::create();
    let app = app_for(&db);
    let prefer = db.url().replace("sslmode=disable", "sslmode=prefer");
    let answer = pg(
        &app,
        &prefer,
        json!([query("SELECT 1::int4 AS one", json!([]))]),
    );
    assert_eq!(
        answer["steps"][0]["rows"],
        json!([[{"int32": 1}]]),
        "{answer}"
    );
    let absent = db.url().replace("?sslmode=disable", "");
    let answer = pg(
        &app,
        &absent,
        json!([query("SELECT 1::int4 AS one", json!([]))]),
    );
    assert_eq!(
        answer["steps"][0]["rows"],
        json!([[{"int32": 1}]]),
        "{answer}"
    );
    let require = db.url().replace("sslmode=disable", "sslmode=require");
    let answer = pg(&app, &require, json!([]));
    assert!(
        answer["open-error"]["connection-failed"].is_string(),
        "{answer}"
    );
}

#[test]
fn a_wrong_password_or_missing_database_is_connection_failed() {
    let db = TestDb::create();
    let app = app_for(&db);
    let url = db.url();
    let (scheme_user, rest) = url.split_once('@').unwrap();
    let (scheme, user_password) = scheme_user.split_at(scheme_user.find("//").unwrap() + 2);
    let user = user_password.split(':').next().unwrap();
    let wrong_password = format!("{scheme}{user}:wrong@{rest}");
    let answer = pg(&app, &wrong_password, json!([]));
    assert!(
        answer["open-error"]["connection-failed"].is_string(),
        "{answer}"
    );
    let (before_db, after_db) = url.rsplit_once('/').unwrap();
    let query_string = after_db.split_once('?').map(|(_, q)| q).unwrap_or("");
    let missing_db = format!("{before_db}/no_such_database_here?{query_string}");
    let answer = pg(&app, &missing_db, json!([]));
    assert!(
        answer["open-error"]["connection-failed"].is_string(),
        "{answer}"
    );
}

#[test]
fn an_unreachable_server_is_connection_failed_and_recovers_when_it_returns() {
    let cluster = PgCluster::start_private();
    let db = TestDb::create_in(&cluster);
    let app = app_for(&db);
    let one = json!([query("SELECT 1::int4 AS one", json!([]))]);
    assert_eq!(
        pg(&app, &db.url(), one.clone())["steps"][0]["rows"],
        json!([[{"int32": 1}]])
    );
    cluster.stop();
    let answer = pg(&app, &db.url(), one.clone());
    let failed = answer["open-error"]["connection-failed"]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            // A pooled connection can die between the check and the query.
            answer["steps"][0]["error"]["query-failed"]["text"]
                .as_str()
                .map(str::to_string)
        });
    assert!(failed.is_some(), "{answer}");
    cluster.start();
    let mut recovered = pg(&app, &db.url(), one.clone());
    if recovered["steps"][0]["rows"].is_null() {
        recovered = pg(&app, &db.url(), one);
    }
    assert_eq!(
        recovered["steps"][0]["rows"],
        json!([[{"int32": 1}]]),
        "{recovered}"
    );
}

#[test]
fn each_type_maps_as_in_spin_in_both_directions() {
    let db = TestDb::create();
    let app = app_for(&db);
    let uuid = "5f0c6f5e-8f6a-4c7e-9d8e-2b1c3a4d5e6f";
    let cases = [
        (
            "bool",
            json!({"boolean": true}),
            json!({"boolean": true}),
            "Boolean",
        ),
        ("int2", json!({"int16": -5}), json!({"int16": -5}), "Int16"),
        ("int4", json!({"int32": 7}), json!({"int32": 7}), "Int32"),
        (
            "int8",
            json!({"int64": 9007199254740993i64}),
            json!({"int64": 9007199254740993i64}),
            "Int64",
        ),
        (
            "float4",
            json!({"floating32": 1.5}),
            json!({"floating32": 1.5}),
            "Floating32",
        ),
        (
            "float8",
            json!({"floating64": 2.25}),
            json!({"floating64": 2.25}),
            "Floating64",
        ),
        (
            "text",
            json!({"str": "héllo"}),
            json!({"str": "héllo"}),
            "Str",
        ),
        ("varchar", json!({"str": "v"}), json!({"str": "v"}), "Str"),
        (
            "bytea",
            json!({"binary": [0, 1, 255]}),
            json!({"binary": [0, 1, 255]}),
            "Binary",
        ),
        (
            "date",
            json!({"date": [2024, 2, 29]}),
            json!({"date": [2024, 2, 29]}),
            "Date",
        ),
        (
            "time",
            json!({"time": [13, 14, 15, 123456000]}),
            json!({"time": [13, 14, 15, 123456000]}),
            "Time",
        ),
        (
            "timestamp",
            json!({"datetime": [2024, 1, 2, 3, 4, 5, 6000]}),
            json!({"datetime": [2024, 1, 2, 3, 4, 5, 6000]}),
            "Datetime",
        ),
        (
            "timestamptz",
            json!({"timestamp": 86400}),
            json!({"datetime": [1970, 1, 2, 0, 0, 0, 0]}),
            "Datetime",
        ),
        ("uuid", json!({"uuid": uuid}), json!({"uuid": uuid}), "Uuid"),
        (
            "jsonb",
            json!({"jsonb": {"a": [1, 2]}}),
            json!({"jsonb": "{\"a\":[1,2]}"}),
            "Jsonb",
        ),
        (
            "numeric",
            json!({"decimal": "12.50"}),
            json!({"decimal": "12.50"}),
            "Decimal",
        ),
        (
            "int4range",
            json!({"range-int32": [[1, "inclusive"], [5, "exclusive"]]}),
            json!({"range-int32": [[1, "inclusive"], [5, "exclusive"]]}),
            "RangeInt32",
        ),
        (
            "int8range",
            json!({"range-int64": [[10, "inclusive"], [20, "exclusive"]]}),
            json!({"range-int64": [[10, "inclusive"], [20, "exclusive"]]}),
            "RangeInt64",
        ),
        (
            "int4[]",
            json!({"array-int32": [1, null, 3]}),
            json!({"array-int32": [1, null, 3]}),
            "ArrayInt32",
        ),
        (
            "int8[]",
            json!({"array-int64": [4, null]}),
            json!({"array-int64": [4, null]}),
            "ArrayInt64",
        ),
        (
            "text[]",
            json!({"array-str": ["a", null]}),
            json!({"array-str": ["a", null]}),
            "ArrayStr",
        ),
        (
            "numeric[]",
            json!({"array-decimal": ["1.5", null]}),
            json!({"array-decimal": ["1.5", null]}),
            "ArrayDecimal",
        ),
        (
            "interval",
            json!({"interval": {"micros": 1000000, "days": 2, "months": 3}}),
            json!({"interval": {"micros": 1000000, "days": 2, "months": 3}}),
            "Interval",
        ),
        ("text", json!("db-null"), json!("db-null"), "Str"),
    ];
    for (sql_type, param, expected, column_type) in cases {
        let answer = pg(
            &app,
            &db.url(),
            json!([query(
                &format!("SELECT $1::{sql_type} AS v"),
                json!([param])
            )]),
        );
        let (value, data_type) = single(&answer);
        assert_eq!(value, &expected, "{sql_type}: {answer}");
        assert_eq!(data_type, column_type, "{sql_type}: {answer}");
    }
}

#[test]
fn timestamptz_arrives_as_a_utc_datetime_that_the_sdk_decodes() {
    let db = TestDb::create();
    let app = app_for(&db);
    let answer = pg(
        &app,
        &db.url(),
        json!([{
            "kind": "query",
            "statement": "SET TIME ZONE 'America/New_York'",
            "params": []
        }, {
            "kind": "query",
            "statement": "SELECT $1::text::timestamptz AS at, $2::uuid AS id, 12.5::numeric AS n, '{\"k\":1}'::jsonb AS j, ARRAY['a', NULL]::text[] AS t",
            "params": [{"str": "2024-01-02 03:04:05+02"}, {"uuid": "00000000-0000-0000-0000-000000000001"}],
            "decode": [
                {"column": "at", "as": "naive_datetime"},
                {"column": "id", "as": "uuid"},
                {"column": "n", "as": "decimal"},
                {"column": "j", "as": "json"},
                {"column": "t", "as": "string_array"}
            ]
        }]),
    );
    let step = &answer["steps"][1];
    assert_eq!(
        step["rows"][0][0],
        json!({"datetime": [2024, 1, 2, 1, 4, 5, 0]}),
        "{answer}"
    );
    assert_eq!(
        step["decoded"],
        json!([
            "2024-01-02 01:04:05",
            "00000000-0000-0000-0000-000000000001",
            "12.5",
            "{\"k\":1}",
            "[Some(\"a\"), None]"
        ])
    );
}

#[test]
fn json_is_unsupported_while_jsonb_maps() {
    let db = TestDb::create();
    let app = app_for(&db);
    let answer = pg(
        &app,
        &db.url(),
        json!([query("SELECT '{\"a\":1}'::json AS v", json!([]))]),
    );
    let (value, data_type) = single(&answer);
    assert_eq!(value, &json!({"unsupported": b"{\"a\":1}".to_vec()}));
    assert_eq!(data_type, "Other(\"json\")");
}

#[test]
fn a_result_without_rows_has_no_columns_as_in_spin() {
    let db = TestDb::create();
    let app = app_for(&db);
    let answer = pg(
        &app,
        &db.url(),
        json!([query("SELECT 1::int4 AS one WHERE false", json!([]))]),
    );
    assert_eq!(answer["steps"][0]["columns"], json!([]));
    assert_eq!(answer["steps"][0]["rows"], json!([]));
}

#[test]
fn parameters_are_typed_against_the_statement() {
    let db = TestDb::create();
    let app = app_for(&db);
    let answer = pg(
        &app,
        &db.url(),
        json!([
            query(
                "SELECT $1::uuid AS v",
                json!([{"str": "00000000-0000-0000-0000-000000000001"}])
            ),
            query("SELECT $1::int8 AS v", json!([{"int32": 1}])),
            query("SELECT $1::int4 AS v", json!([{"int32": 1}])),
        ]),
    );
    for step in [&answer["steps"][0], &answer["steps"][1]] {
        let text = step["error"]["query-failed"]["text"]
            .as_str()
            .expect("a typed-parameter error");
        assert!(text.contains("WrongType"), "{text}");
    }
    assert_eq!(answer["steps"][2]["rows"], json!([[{"int32": 1}]]));
}

#[test]
fn malformed_parameter_values_are_bad_parameter_or_value_conversion_failed() {
    let db = TestDb::create();
    let app = app_for(&db);
    let answer = pg(
        &app,
        &db.url(),
        json!([
            query("SELECT $1::uuid AS v", json!([{"uuid": "nope"}])),
            execute("SELECT $1::uuid", json!([{"uuid": "nope"}])),
        ]),
    );
    assert!(
        answer["steps"][0]["error"]["bad-parameter"].is_string(),
        "{answer}"
    );
    assert!(
        answer["steps"][1]["error"]["value-conversion-failed"].is_string(),
        "{answer}"
    );
}

#[test]
fn sql_errors_carry_the_servers_code_and_fields() {
    let db = TestDb::create();
    let app = app_for(&db);
    let answer = pg(
        &app,
        &db.url(),
        json!([
            query("SELECT * FROM no_such_table", json!([])),
            execute("CREATE TABLE probe_unique (id int4 PRIMARY KEY)", json!([])),
            execute("INSERT INTO probe_unique VALUES (1)", json!([])),
            execute("INSERT INTO probe_unique VALUES (1)", json!([])),
        ]),
    );
    let missing = &answer["steps"][0]["error"]["query-failed"]["db-error"];
    assert_eq!(missing["code"], "42P01", "{answer}");
    assert_eq!(missing["severity"], "ERROR");
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("no_such_table")
    );
    assert_eq!(answer["steps"][2], json!({"affected": 1}));
    let unique = &answer["steps"][3]["error"]["query-failed"]["db-error"];
    assert_eq!(unique["code"], "23505", "{answer}");
    assert_eq!(unique["detail"], "Key (id)=(1) already exists.");
    let extras = unique["extras"].as_array().unwrap();
    assert!(
        extras.contains(&json!(["constraint", "probe_unique_pkey"])),
        "{extras:?}"
    );
    assert!(
        extras.contains(&json!(["table", "probe_unique"])),
        "{extras:?}"
    );
}

#[test]
fn a_transaction_runs_on_the_one_connection_of_the_resource() {
    let db = TestDb::create();
    let app = app_for(&db);
    let count = query("SELECT count(*)::int8 AS n FROM probe_tx", json!([]));
    let answer = pg(
        &app,
        &db.url(),
        json!([
            execute("CREATE TABLE probe_tx (x int4)", json!([])),
            execute("BEGIN", json!([])),
            execute("INSERT INTO probe_tx VALUES ($1)", json!([{"int32": 1}])),
            count.clone(),
            execute("ROLLBACK", json!([])),
            count.clone(),
            execute("BEGIN", json!([])),
            execute("INSERT INTO probe_tx VALUES ($1)", json!([{"int32": 2}])),
            execute("COMMIT", json!([])),
            count,
        ]),
    );
    let steps = answer["steps"].as_array().unwrap();
    assert_eq!(steps[3]["rows"], json!([[{"int64": 1}]]), "{answer}");
    assert_eq!(steps[5]["rows"], json!([[{"int64": 0}]]), "{answer}");
    assert_eq!(steps[9]["rows"], json!([[{"int64": 1}]]), "{answer}");
    let mut client = db.client();
    let rows = client.query("SELECT x FROM probe_tx", &[]).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
        [2]
    );
}

#[test]
fn a_transaction_left_open_does_not_leak_into_the_next_request() {
    let db = TestDb::create();
    let app = app_for(&db);
    pg(
        &app,
        &db.url(),
        json!([execute("CREATE TABLE probe_leak (x int4)", json!([]))]),
    );
    let first = pg(
        &app,
        &db.url(),
        json!([
            query("SELECT pg_backend_pid()::int8 AS pid", json!([])),
            execute("BEGIN", json!([])),
            execute("INSERT INTO probe_leak VALUES (99)", json!([])),
        ]),
    );
    let second = pg(
        &app,
        &db.url(),
        json!([
            query("SELECT pg_backend_pid()::int8 AS pid", json!([])),
            query("SELECT count(*)::int8 AS n FROM probe_leak", json!([])),
        ]),
    );
    // The same pooled session served both requests...
    assert_eq!(
        first["steps"][0]["rows"], second["steps"][0]["rows"],
        "{first} {second}"
    );
    // ...and the first request's open transaction was rolled back, not inherited.
    // (inside a leaked transaction the session would still see its own insert).
    assert_eq!(
        second["steps"][1]["rows"],
        json!([[{"int64": 0}]]),
        "{second}"
    );
}

/// Waits until no session of `db` is idle inside a transaction (a leaked transaction
/// would stay so forever); returns whether that happened within two seconds.
fn no_session_left_in_a_transaction(db: &TestDb) -> bool {
    let mut client = db.client();
    for _ in 0..40 {
        let open: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
                &[],
            )
            .unwrap()
            .get(0);
        if open == 0 {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

#[test]
fn a_guest_that_traps_inside_a_transaction_leaves_none_open() {
    let db = TestDb::create();
    let app = app_for(&db);
    pg(
        &app,
        &db.url(),
        json!([execute("CREATE TABLE probe_trap (x int4)", json!([]))]),
    );
    let (status, body) = common::post(
        &app.url("/probe?op=pg"),
        &json!({
            "address": db.url(),
            "steps": [execute("BEGIN", json!([])), execute("INSERT INTO probe_trap VALUES (1)", json!([]))],
            "trap_after_steps": true
        }),
    );
    assert_eq!((status, body.as_str()), (500, ""));
    assert!(
        no_session_left_in_a_transaction(&db),
        "the trapped request's transaction is still open"
    );
    let mut client = db.client();
    let rows: i64 = client
        .query_one("SELECT count(*) FROM probe_trap", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

#[test]
fn connections_are_pooled_across_requests() {
    let db = TestDb::create();
    let app = app_for(&db);
    let pid = || {
        pg(
            &app,
            &db.url(),
            json!([query("SELECT pg_backend_pid()::int8 AS pid", json!([]))]),
        )["steps"][0]["rows"]
            .clone()
    };
    let first = pid();
    assert!(first[0][0]["int64"].is_i64(), "{first}");
    assert_eq!(pid(), first);
    assert_eq!(pid(), first);
}
