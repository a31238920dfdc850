//! The rules of Spin's `spin:postgres@4.0.0` (`../shared/SPIN.md`), each stated once
//! and run against both runtimes (`VOICE_EDGE_RUNTIME=host|spin`), against a real
//! PostgreSQL: the address allow-list, pooled connections and transactions (a
//! transaction left open is inherited), TLS modes, every type mapping in both
//! directions (a `timestamptz` column fails the query), zero-row queries, and the
//! error variants (errors raised while a `query` runs arrive as text). Then
//! `@4.1.0`'s connection builder against a server that speaks TLS only: verified TLS
//! with the CA given to `set-ca-root`, `connection-failed` for a server that does not
//! chain to it, its `invalid root certificate` error, pools kept per address and CA.
//! The probe imports both `@4.0.0` (spin-sdk's `pg4`) and `@4.1.0` (shared's
//! binding), and both runtimes serve such a component.
//!
//! Needs `cargo build --target wasm32-wasip2 --release -p conformance-probe` first,
//! PostgreSQL binaries on the PATH (the testkit starts its own clusters) and `openssl`.

mod common;

use common::{post_json, start};
use serde_json::{Value, json};
use voice_edge_testkit::app::TestApp;
use voice_edge_testkit::pg::{PgCluster, TestDb};
use voice_edge_testkit::runtime::Runtime;
use voice_edge_testkit::tls::TestCa;

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
        // `timestamptz` has rules of its own (the tests below): it does not round-trip.
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
fn a_timestamptz_column_fails_the_whole_query_nulls_included() {
    let db = TestDb::create();
    let app = app_for(&db);
    let answer = pg(
        &app,
        &db.url(),
        json!([
            query("SELECT now() AS at", json!([])),
            query("SELECT NULL::timestamptz AS at, 1::int4 AS one", json!([])),
        ]),
    );
    for step in answer["steps"].as_array().unwrap() {
        let text = step["error"]["query-failed"]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("a text error: {answer}"));
        assert!(text.contains("error deserializing column 0"), "{text}");
        assert!(
            text.contains(
                "cannot convert between the Rust type \
                 `core::option::Option<chrono::naive::datetime::NaiveDateTime>` and the \
                 Postgres type `timestamptz`"
            ),
            "{text}"
        );
    }
}

#[test]
fn timestamptz_read_at_time_zone_utc_decodes_as_the_utc_time_whatever_the_session_zone() {
    let db = TestDb::create();
    let app = app_for(&db);
    let answer = pg(
        &app,
        &db.url(),
        json!([execute("SET TIME ZONE 'America/New_York'", json!([])), {
            "kind": "query",
            "statement": "SELECT ($1::text::timestamptz AT TIME ZONE 'UTC') AS at, \
                          floor(extract(epoch FROM $1::text::timestamptz))::int8 AS epoch, \
                          $2::uuid AS id, 12.5::numeric AS n, '{\"k\":1}'::jsonb AS j, \
                          ARRAY['a', NULL]::text[] AS t",
            "params": [{"str": "2024-01-02T03:04:05.25+02:00"}, {"uuid": "00000000-0000-0000-0000-000000000001"}],
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
        json!({"datetime": [2024, 1, 2, 1, 4, 5, 250_000_000]}),
        "{answer}"
    );
    assert_eq!(step["rows"][0][1], json!({"int64": 1_704_157_445}));
    assert_eq!(
        step["decoded"],
        json!([
            "2024-01-02 01:04:05.250",
            "00000000-0000-0000-0000-000000000001",
            "12.5",
            "{\"k\":1}",
            "[Some(\"a\"), None]"
        ])
    );
}

#[test]
fn timestamptz_parameters_take_epoch_seconds_or_text_but_not_a_datetime() {
    let db = TestDb::create();
    let app = app_for(&db);
    let epoch = |statement: &str, param: Value| {
        query(
            &format!("SELECT floor(extract(epoch FROM {statement}))::int8 AS epoch"),
            json!([param]),
        )
    };
    let answer = pg(
        &app,
        &db.url(),
        json!([
            epoch("$1::timestamptz", json!({"timestamp": 1_704_157_445})),
            epoch(
                "$1::text::timestamptz",
                json!({"str": "2024-01-02T01:04:05Z"})
            ),
            epoch("to_timestamp($1)", json!({"floating64": 1_704_157_445.5})),
            epoch(
                "$1::timestamptz",
                json!({"datetime": [2024, 1, 2, 1, 4, 5, 0]})
            ),
            epoch("$1::timestamptz", json!({"str": "2024-01-02T01:04:05Z"})),
        ]),
    );
    let steps = answer["steps"].as_array().unwrap();
    for step in &steps[..3] {
        assert_eq!(
            step["rows"],
            json!([[{"int64": 1_704_157_445}]]),
            "{answer}"
        );
    }
    for step in &steps[3..] {
        let text = step["error"]["query-failed"]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("a typed-parameter error: {answer}"));
        assert!(text.contains("WrongType"), "{text}");
    }
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

/// A request for `steps` that gives up after `seconds`: `None` when no answer came.
fn pg_within(app: &TestApp, address: &str, steps: Value, seconds: u64) -> Option<Value> {
    common::post_within(
        &app.url("/probe?op=pg"),
        &json!({"address": address, "steps": steps}),
        std::time::Duration::from_secs(seconds),
    )
}

#[test]
fn a_query_that_returns_no_rows_never_answers_and_the_host_says_so_at_once() {
    let db = TestDb::create();
    let app = app_for(&db);
    let no_rows = json!([query("SELECT 1::int4 AS one WHERE false", json!([]))]);
    match app.runtime() {
        // spinframework/spin#3671: Spin waits for a first row that never comes.
        Runtime::Spin { .. } => assert_eq!(pg_within(&app, &db.url(), no_rows, 3), None),
        Runtime::Host => {
            let answer = pg_within(&app, &db.url(), no_rows, 3).expect("the host answers");
            let text = answer["steps"][0]["error"]["query-failed"]["text"]
                .as_str()
                .unwrap_or_else(|| panic!("a text error: {answer}"));
            assert!(text.contains("spinframework/spin#3671"), "{text}");
        }
    }
}

#[test]
fn the_same_statements_through_execute_or_written_to_return_a_row_answer_at_once() {
    let db = TestDb::create();
    let app = app_for(&db);
    let answer = pg_within(
        &app,
        &db.url(),
        json!([
            execute("SELECT 1 WHERE false", json!([])),
            execute("CREATE TABLE probe_none (x int4)", json!([])),
            execute("UPDATE probe_none SET x = 1 WHERE false", json!([])),
            query(
                "WITH changed AS (UPDATE probe_none SET x = 2 WHERE x = 3 RETURNING x) \
                 SELECT changed.x FROM (SELECT 1) AS one LEFT JOIN changed ON true",
                json!([])
            ),
            query(
                "SELECT count(*)::int8 AS n FROM probe_none WHERE false",
                json!([])
            ),
        ]),
        10,
    )
    .expect("every step answers");
    let steps = answer["steps"].as_array().unwrap();
    assert_eq!(steps[0], json!({"affected": 0}), "{answer}");
    assert_eq!(steps[2], json!({"affected": 0}), "{answer}");
    assert_eq!(steps[3]["rows"], json!([["db-null"]]), "{answer}");
    assert_eq!(steps[4]["rows"], json!([[{"int64": 0}]]), "{answer}");
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
fn an_error_raised_while_a_query_runs_arrives_as_text_holding_its_code() {
    let db = TestDb::create();
    let app = app_for(&db);
    let answer = pg(
        &app,
        &db.url(),
        json!([
            execute(
                "CREATE TABLE probe_checked (id int4 PRIMARY KEY, v int4 CHECK (v > 0))",
                json!([])
            ),
            query(
                "INSERT INTO probe_checked VALUES (1, 1) RETURNING id",
                json!([])
            ),
            query(
                "INSERT INTO probe_checked VALUES (1, 1) RETURNING id",
                json!([])
            ),
            query(
                "INSERT INTO probe_checked VALUES (2, -1) RETURNING id",
                json!([])
            ),
            query("SELECT 1 / (v - 1) AS x FROM probe_checked", json!([])),
            query("SELECT 1 / 0 AS x", json!([])),
        ]),
    );
    let steps = answer["steps"].as_array().unwrap();
    assert_eq!(steps[1]["rows"], json!([[{"int32": 1}]]), "{answer}");
    for (step, code) in [(2, "23505"), (3, "23514"), (4, "22012")] {
        let text = steps[step]["error"]["query-failed"]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("step {step}: a text error: {answer}"));
        assert!(
            text.starts_with("Error::QueryFailed(QueryError::DbError(DbError {"),
            "{text}"
        );
        assert!(text.contains(&format!("code: \"{code}\"")), "{text}");
    }
    // Found while planning: structured.
    assert_eq!(
        steps[5]["error"]["query-failed"]["db-error"]["code"], "22012",
        "{answer}"
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
fn a_transaction_left_open_is_inherited_by_the_next_request_on_the_connection() {
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
            execute("ROLLBACK", json!([])),
            query("SELECT count(*)::int8 AS n FROM probe_leak", json!([])),
        ]),
    );
    // The same pooled session served both requests...
    assert_eq!(
        first["steps"][0]["rows"], second["steps"][0]["rows"],
        "{first} {second}"
    );
    // ...and the second ran inside the first one's transaction: it saw the
    // uncommitted row, and could roll it back.
    assert_eq!(
        second["steps"][1]["rows"],
        json!([[{"int64": 1}]]),
        "{second}"
    );
    assert_eq!(
        second["steps"][3]["rows"],
        json!([[{"int64": 0}]]),
        "{second}"
    );
}

#[test]
fn session_settings_are_reset_before_a_connection_is_reused() {
    let db = TestDb::create();
    let app = app_for(&db);
    let zone = || query("SELECT current_setting('TimeZone') AS zone", json!([]));
    let first = pg(
        &app,
        &db.url(),
        json!([
            execute("SET TIME ZONE 'America/New_York'", json!([])),
            zone()
        ]),
    );
    assert_eq!(
        first["steps"][1]["rows"],
        json!([[{"str": "America/New_York"}]])
    );
    let second = pg(&app, &db.url(), json!([zone()]));
    assert_ne!(
        second["steps"][0]["rows"],
        json!([[{"str": "America/New_York"}]]),
        "{second}"
    );
}

/// How many sessions of `db` sit idle inside a transaction, after a moment for the
/// server to catch up with a request that just ended.
fn sessions_idle_in_a_transaction(db: &TestDb) -> i64 {
    std::thread::sleep(std::time::Duration::from_millis(200));
    db.client()
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
fn a_guest_that_traps_inside_a_transaction_leaves_it_open_on_the_pooled_connection() {
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
    assert_eq!(sessions_idle_in_a_transaction(&db), 1);
    let next = pg(
        &app,
        &db.url(),
        json!([query(
            "SELECT count(*)::int8 AS n FROM probe_trap",
            json!([])
        )]),
    );
    assert_eq!(next["steps"][0]["rows"], json!([[{"int64": 1}]]), "{next}");
    let committed: i64 = db
        .client()
        .query_one("SELECT count(*) FROM probe_trap", &[])
        .unwrap()
        .get(0);
    assert_eq!(committed, 0);
}

#[test]
fn the_shared_transaction_helper_rolls_back_before_a_panic_traps() {
    let db = TestDb::create();
    let app = app_for(&db);
    pg(
        &app,
        &db.url(),
        json!([execute("CREATE TABLE probe_trap (x int4)", json!([]))]),
    );
    let (status, body) = common::post(
        &app.url("/p3probe/?op=shared-transaction-panic"),
        &json!({"address": db.url(), "statement": "INSERT INTO probe_trap VALUES (1)"}),
    );
    assert_eq!((status, body.as_str()), (500, ""));
    assert_eq!(sessions_idle_in_a_transaction(&db), 0);
    let next = pg(
        &app,
        &db.url(),
        json!([query(
            "SELECT count(*)::int8 AS n FROM probe_trap",
            json!([])
        )]),
    );
    assert_eq!(next["steps"][0]["rows"], json!([[{"int64": 0}]]), "{next}");
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

// ---------------------------------------------------------------------------------------
// The connection builder (`spin:postgres@4.1.0`) and its root CA, against a server that
// speaks TLS only (`hostssl` in pg_hba.conf), with a certificate signed by a CA of the
// test's own.

/// Runs `steps` on a connection from the connection builder, given `ca_root` when set.
fn pg_built(app: &TestApp, address: &str, ca_root: Option<&str>, steps: Value) -> Value {
    let builder = match ca_root {
        Some(ca_root) => json!({"ca_root": ca_root}),
        None => json!({}),
    };
    post_json(
        &app.url("/probe?op=pg"),
        &json!({"address": address, "builder": builder, "steps": steps}),
    )
}

/// Whether the session of the answering connection is encrypted, as the server sees it.
fn ssl_in_use() -> Value {
    json!([query(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        json!([])
    )])
}

fn connection_failed(answer: &Value) -> &str {
    answer["open-error"]["connection-failed"]
        .as_str()
        .unwrap_or_else(|| panic!("expected connection-failed: {answer}"))
}

#[test]
fn the_builder_with_the_servers_ca_connects_over_verified_tls() {
    let tls = PgCluster::shared_tls();
    let db = TestDb::create_in(&tls.cluster);
    let app = app_for(&db);
    let ca = tls.ca.pem();
    for address in [
        db.url(),
        // `prefer` (and no sslmode at all) tries TLS first, and verifies it too.
        db.url().replace("sslmode=require", "sslmode=prefer"),
        db.url().replace("?sslmode=require", ""),
    ] {
        let answer = pg_built(&app, &address, Some(&ca), ssl_in_use());
        assert_eq!(
            answer["steps"][0]["rows"],
            json!([[{"boolean": true}]]),
            "{address}: {answer}"
        );
    }
    // The builder's connection is the same `connection` as `open`'s: a transaction on it
    // runs on one session.
    let answer = pg_built(
        &app,
        &db.url(),
        Some(&ca),
        json!([
            execute("BEGIN", json!([])),
            execute("CREATE TEMP TABLE built (n int4)", json!([])),
            query("SELECT count(*)::int8 AS n FROM built", json!([])),
            execute("ROLLBACK", json!([])),
        ]),
    );
    assert_eq!(
        answer["steps"][2]["rows"],
        json!([[{"int64": 0}]]),
        "{answer}"
    );
}

#[test]
fn a_server_whose_certificate_does_not_chain_to_the_ca_is_connection_failed() {
    let tls = PgCluster::shared_tls();
    let db = TestDb::create_in(&tls.cluster);
    let app = app_for(&db);
    let other_ca = TestCa::new("a CA the server does not know");
    let one = json!([query("SELECT 1::int4 AS one", json!([]))]);
    // Another CA, with require or prefer: no fallback to plain text.
    for address in [
        db.url(),
        db.url().replace("sslmode=require", "sslmode=prefer"),
    ] {
        let answer = pg_built(&app, &address, Some(&other_ca.pem()), one.clone());
        connection_failed(&answer);
    }
    // No CA at all: the public roots do not know the server either.
    connection_failed(&pg_built(&app, &db.url(), None, one.clone()));
    connection_failed(&pg(&app, &db.url(), one.clone()));
    // And plain text is refused by the server (hostssl only).
    let plain = db.url().replace("sslmode=require", "sslmode=disable");
    connection_failed(&pg(&app, &plain, one.clone()));
    connection_failed(&pg_built(&app, &plain, Some(&tls.ca.pem()), one));
}

#[test]
fn pools_are_kept_per_address_and_ca() {
    let tls = PgCluster::shared_tls();
    let db = TestDb::create_in(&tls.cluster);
    let app = app_for(&db);
    let (ca, other_ca) = (tls.ca.pem(), TestCa::new("another pool's CA").pem());
    let one = json!([query("SELECT 1::int4 AS one", json!([]))]);
    let works = |answer: Value| {
        assert_eq!(
            answer["steps"][0]["rows"],
            json!([[{"int32": 1}]]),
            "{answer}"
        )
    };
    // A verified connection in the pool is never handed to a guest that gave another
    // CA, or none, for the same address.
    works(pg_built(&app, &db.url(), Some(&ca), one.clone()));
    connection_failed(&pg_built(&app, &db.url(), Some(&other_ca), one.clone()));
    connection_failed(&pg_built(&app, &db.url(), None, one.clone()));
    connection_failed(&pg(&app, &db.url(), one.clone()));
    works(pg_built(&app, &db.url(), Some(&ca), one.clone()));
    // A failed CA does not poison the address for the right one.
    let other_db = TestDb::create_in(&tls.cluster);
    connection_failed(&pg_built(
        &app,
        &other_db.url(),
        Some(&other_ca),
        one.clone(),
    ));
    works(pg_built(&app, &other_db.url(), Some(&ca), one));
}

#[test]
fn a_text_without_a_certificate_is_an_invalid_root_certificate() {
    let tls = PgCluster::shared_tls();
    let db = TestDb::create_in(&tls.cluster);
    let app = app_for(&db);
    let ca = tls.ca.pem();
    let body: String = ca
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    for text in [
        String::new(),
        "not a certificate".to_string(),
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            &body[..body.len() / 2]
        ),
        format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
    ] {
        let answer = pg_built(&app, &db.url(), Some(&text), json!([]));
        let error = answer["set-ca-root-error"]["other"]
            .as_str()
            .unwrap_or_else(|| panic!("{text:?}: {answer}"));
        assert_eq!(
            error, "invalid root certificate: invalid root certificate",
            "{text:?}"
        );
    }
    // Text around the PEM block does not matter.
    let answer = pg_built(
        &app,
        &db.url(),
        Some(&format!("Supabase root CA\n{ca}\n")),
        ssl_in_use(),
    );
    assert_eq!(
        answer["steps"][0]["rows"],
        json!([[{"boolean": true}]]),
        "{answer}"
    );
}

#[test]
fn only_the_first_certificate_of_the_text_is_trusted() {
    let tls = PgCluster::shared_tls();
    let db = TestDb::create_in(&tls.cluster);
    let app = app_for(&db);
    let (ca, other_ca) = (tls.ca.pem(), TestCa::new("the first of two").pem());
    let one = json!([query("SELECT 1::int4 AS one", json!([]))]);
    let answer = pg_built(
        &app,
        &db.url(),
        Some(&format!("{ca}{other_ca}")),
        one.clone(),
    );
    assert_eq!(
        answer["steps"][0]["rows"],
        json!([[{"int32": 1}]]),
        "{answer}"
    );
    connection_failed(&pg_built(
        &app,
        &db.url(),
        Some(&format!("{other_ca}{ca}")),
        one,
    ));
}

#[test]
fn the_builder_skips_the_allow_list_under_spin_and_the_host_applies_it() {
    let tls = PgCluster::shared_tls();
    let db = TestDb::create_in(&tls.cluster);
    let app = app_for(&db);
    let port = db.db_host().rsplit_once(':').unwrap().1.to_string();
    let ca = tls.ca.pem();
    let localhost = db.url().replace("127.0.0.1", "localhost");
    let outside = pg_built(&app, &localhost, Some(&ca), ssl_in_use());
    let closed = post_json(
        &app.url("/closed?op=pg"),
        &json!({"address": db.url(), "builder": {"ca_root": ca}, "steps": ssl_in_use()}),
    );
    match app.runtime() {
        // Spin's synchronous `build` (4.0.0 to 4.0.2, and main at 94a8fc8a) opens the
        // connection without the check that `open` and `build-async` make, even for a
        // component with no `allowed_outbound_hosts`. Pinned here so that a fix shows.
        Runtime::Spin { .. } => {
            for answer in [&outside, &closed] {
                assert_eq!(
                    answer["steps"][0]["rows"],
                    json!([[{"boolean": true}]]),
                    "{answer}"
                );
            }
        }
        // The host applies the allow-list as `open` does: stricter than Spin, which a
        // component cannot rely on either way (a fixed Spin will refuse).
        Runtime::Host => {
            assert_eq!(
                connection_failed(&outside),
                format!("address postgres://localhost:{port} is not permitted")
            );
            assert_eq!(
                connection_failed(&closed),
                format!("address postgres://127.0.0.1:{port} is not permitted")
            );
        }
    }
}
