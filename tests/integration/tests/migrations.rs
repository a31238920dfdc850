//! The database: `sql/migrations` against a real PostgreSQL.
//!
//! On fresh databases of the shared test cluster (tests/testkit): the isolation spec's
//! two verification queries after migrating a database that holds the production
//! tables; idempotence (a second application changes neither the schema nor a row);
//! the upgrade of the practice tables the Python back end made (rows kept, triggers and
//! their functions gone, status check constraints in force); the demo relay's role
//! confined to the demo tables and the rate-limit table; the row level security that
//! lets a student read their own rows; the seed.
//!
//! Run: `cargo test --profile host -p voice-edge-integration --test migrations`.

use std::collections::BTreeSet;
use std::path::Path;

use postgres::Client;
use postgres::error::SqlState;
use uuid::Uuid;
use voice_edge_testkit::pg::{self, TestDb};

const PRODUCTION_TABLES: [&str; 3] = ["manual_assessments", "voice_sessions", "voice_interactions"];

fn legacy_practice_file() -> std::path::PathBuf {
    pg::repo_root().join("tests/fixtures/legacy_practice.sql")
}

fn apply(client: &mut Client, path: &Path) {
    if let Err(error) = pg::apply_sql_file(client, path) {
        panic!("{error:#}");
    }
}

/// Applies every migration. The tests' databases share one cluster, and so its roles:
/// two tests granting to or revoking from `demo_relay` at the same moment can make
/// PostgreSQL refuse one with `tuple concurrently deleted` (XX000), which a deploy
/// (one database, one migration run) never meets. The migrations are idempotent
/// (`applying_every_migration_twice_changes_nothing`), so that one error is retried.
fn apply_migrations(client: &mut Client) {
    for attempt in 1..=3 {
        match pg::apply_sql_dir(client, &pg::migrations_dir()) {
            Ok(_) => return,
            Err(error) if attempt < 3 && format!("{error:#}").contains("tuple concurrently") => {
                std::thread::sleep(std::time::Duration::from_millis(100 * attempt));
            }
            Err(error) => panic!("{error:#}"),
        }
    }
}

/// An empty database holding what production holds before our migrations: Supabase's
/// auth schema (stood in for) and the production tables.
fn production_like_db() -> (TestDb, Client) {
    let db = TestDb::create_empty();
    let mut client = db.client();
    apply(&mut client, &pg::supabase_auth_file());
    apply(&mut client, &pg::production_tables_file());
    (db, client)
}

/// The SQLSTATE of a failed statement.
fn sqlstate(result: Result<impl Sized, postgres::Error>) -> SqlState {
    match result {
        Ok(_) => panic!("the statement succeeded, but it should have been refused"),
        Err(error) => error
            .code()
            .cloned()
            .unwrap_or_else(|| panic!("not a database error: {error}")),
    }
}

fn texts(client: &mut Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .unwrap_or_else(|error| panic!("{sql}: {}", pg::describe(&error)))
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect()
}

fn count(client: &mut Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .unwrap_or_else(|error| panic!("{sql}: {}", pg::describe(&error)))
        .get::<_, i64>(0)
}

/// Everything a migration could change about the schema, one line per fact, in a stable
/// order: columns, constraints, indexes, row level security and policies, triggers,
/// functions, grants, publication membership and our roles.
fn schema_dump(client: &mut Client) -> Vec<String> {
    let queries = [
        "SELECT format('column %s.%s.%s %s null=%s default=%s', table_schema, table_name,
                column_name, data_type, is_nullable, coalesce(column_default, '-'))
         FROM information_schema.columns
         WHERE table_schema IN ('public', 'auth')",
        "SELECT format('constraint %s %s %s valid=%s', conrelid::regclass, conname,
                pg_get_constraintdef(oid), convalidated)
         FROM pg_constraint
         WHERE connamespace IN ('public'::regnamespace, 'auth'::regnamespace)",
        "SELECT format('index %s.%s %s', schemaname, indexname, indexdef)
         FROM pg_indexes WHERE schemaname IN ('public', 'auth')",
        "SELECT format('rls %s %s', c.oid::regclass, c.relrowsecurity)
         FROM pg_class c
         WHERE c.relnamespace IN ('public'::regnamespace, 'auth'::regnamespace)
           AND c.relkind = 'r'",
        "SELECT format('policy %s.%s %s %s %s using=%s check=%s', schemaname, tablename,
                policyname, roles::text, cmd, coalesce(qual, '-'), coalesce(with_check, '-'))
         FROM pg_policies",
        "SELECT format('trigger %s %s', tgrelid::regclass, tgname)
         FROM pg_trigger WHERE NOT tgisinternal",
        "SELECT format('function %s(%s) %s', p.oid::regproc, pg_get_function_identity_arguments(p.oid),
                md5(p.prosrc))
         FROM pg_proc p
         WHERE p.pronamespace IN ('public'::regnamespace, 'auth'::regnamespace)",
        "SELECT format('grant %s %s.%s %s', grantee, table_schema, table_name, privilege_type)
         FROM information_schema.role_table_grants
         WHERE table_schema IN ('public', 'auth')",
        "SELECT format('publication %s %s.%s', pubname, schemaname, tablename)
         FROM pg_publication_tables",
        "SELECT format('role %s login=%s bypassrls=%s', rolname, rolcanlogin, rolbypassrls)
         FROM pg_roles
         WHERE rolname IN ('anon', 'authenticated', 'service_role', 'demo_relay')",
    ];
    let mut lines = Vec::new();
    for query in queries {
        lines.extend(texts(client, query));
    }
    lines.sort();
    lines
}

/// Every table of public and auth with its row count and a digest of its rows.
fn row_digests(client: &mut Client) -> Vec<String> {
    let tables = texts(
        client,
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
         WHERE schemaname IN ('public', 'auth') ORDER BY 1",
    );
    tables
        .iter()
        .map(|table| {
            let digest = texts(
                client,
                &format!(
                    "SELECT format('%s rows=%s md5=%s', '{table}', count(*),
                            coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '-'))
                     FROM {table} t"
                ),
            );
            digest.into_iter().next().expect("one row")
        })
        .collect()
}

/// The production tables' columns, constraints, indexes, policies and rows.
fn production_snapshot(client: &mut Client) -> Vec<String> {
    let tables = "('manual_assessments', 'voice_sessions', 'voice_interactions')";
    let mut lines = texts(
        client,
        &format!(
            "SELECT format('%s.%s %s %s %s %s', table_name, column_name, ordinal_position,
                    data_type, is_nullable, coalesce(column_default, '-'))
             FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name IN {tables}
             UNION ALL
             SELECT format('%s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
             FROM pg_constraint WHERE conrelid::regclass::text IN {tables}
             UNION ALL
             SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename IN {tables}
             UNION ALL
             SELECT format('%s %s %s', tablename, policyname, qual)
             FROM pg_policies WHERE tablename IN {tables}
             UNION ALL
             SELECT format('%s %s %s', grantee, table_name, privilege_type)
             FROM information_schema.role_table_grants WHERE table_name IN {tables}
             UNION ALL
             SELECT format('%s %s', tgrelid::regclass, tgname)
             FROM pg_trigger WHERE tgrelid::regclass::text IN {tables}"
        ),
    );
    lines.sort();
    lines.extend(row_digests(client).into_iter().filter(|line| {
        PRODUCTION_TABLES
            .iter()
            .any(|table| line.starts_with(&format!("public.{table} ")))
    }));
    lines
}

fn insert_user(client: &mut Client, id: Uuid) {
    client
        .execute(
            "INSERT INTO auth.users (id, email) VALUES ($1, $2)",
            &[&id, &format!("{id}@example.com")],
        )
        .expect("insert a user");
}

fn insert_production_rows(client: &mut Client) {
    let teacher = Uuid::new_v4();
    let student = Uuid::new_v4();
    insert_user(client, teacher);
    insert_user(client, student);
    client
        .batch_execute(&format!(
            "INSERT INTO manual_assessments (id, teacher_id, title, content, is_published)
             VALUES ('0a000000-0000-4000-8000-000000000001', '{teacher}', 'Fractions', '{{\"items\": 3}}', true);
             INSERT INTO voice_sessions (id, activity_id, student_id, status)
             VALUES ('0b000000-0000-4000-8000-000000000001', '0a000000-0000-4000-8000-000000000001', '{student}', 'completed');
             INSERT INTO voice_interactions (session_id, role, transcript)
             VALUES ('0b000000-0000-4000-8000-000000000001', 'user', 'one half plus one quarter'),
                    ('0b000000-0000-4000-8000-000000000001', 'assistant', 'three quarters');"
        ))
        .expect("insert production rows");
}

#[test]
fn migrations_leave_the_production_tables_untouched_and_isolated() {
    let (_db, mut client) = production_like_db();
    insert_production_rows(&mut client);
    let before = production_snapshot(&mut client);

    apply_migrations(&mut client);

    // The isolation spec's two verification queries, verbatim.
    let demo_columns = texts(
        &mut client,
        "SELECT column_name::text
         FROM information_schema.columns
         WHERE table_name IN ('manual_assessments', 'voice_sessions', 'voice_interactions')
           AND column_name LIKE '%demo%'",
    );
    assert_eq!(demo_columns, Vec::<String>::new());
    let demo_tables: BTreeSet<String> = texts(
        &mut client,
        "SELECT table_name::text
         FROM information_schema.tables
         WHERE table_name LIKE 'demo_%'",
    )
    .into_iter()
    .collect();
    assert_eq!(
        demo_tables,
        BTreeSet::from([
            "demo_activities".to_string(),
            "demo_interactions".to_string(),
            "demo_voice_sessions".to_string()
        ])
    );

    assert_eq!(production_snapshot(&mut client), before);
}

#[test]
fn applying_every_migration_twice_changes_nothing() {
    let (_db, mut client) = production_like_db();
    apply(&mut client, &legacy_practice_file());
    insert_production_rows(&mut client);
    apply_migrations(&mut client);
    pg::apply_sql_dir(&mut client, &pg::seed_dir()).expect("seed");
    // What the functions write, so that a second run is seen to keep rows too.
    client
        .batch_execute(
            "UPDATE voice_feature_flags SET enabled = true, rollout_percentage = 10
             WHERE flag_name = 'voice_webrtc_migration';
             INSERT INTO webhook_events (id, event_type, status, payload)
             VALUES ('msg_1', 'practice.session.failed', 'processed', '{}');
             INSERT INTO rate_limits (bucket_key, window_start, count)
             VALUES ('token:someone', date_trunc('minute', now()), 3);",
        )
        .expect("write rows");
    let schema = schema_dump(&mut client);
    let rows = row_digests(&mut client);

    apply(&mut client, &pg::supabase_auth_file());
    apply_migrations(&mut client);
    pg::apply_sql_dir(&mut client, &pg::seed_dir()).expect("seed again");

    let schema_again = schema_dump(&mut client);
    let changed: Vec<_> = schema
        .iter()
        .filter(|line| !schema_again.contains(line))
        .chain(schema_again.iter().filter(|line| !schema.contains(line)))
        .collect();
    assert!(
        changed.is_empty(),
        "the second run changed the schema: {changed:#?}"
    );
    assert_eq!(row_digests(&mut client), rows);
    // The rollout in progress was not reset, and demo_relay kept the login the test
    // cluster gave it.
    assert_eq!(
        count(
            &mut client,
            "SELECT rollout_percentage::int8 FROM voice_feature_flags
             WHERE flag_name = 'voice_webrtc_migration' AND enabled"
        ),
        10
    );
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM pg_roles WHERE rolname = 'demo_relay' AND rolcanlogin"
        ),
        1
    );
}

fn legacy_rows(client: &mut Client) -> Vec<String> {
    texts(
        client,
        "SELECT format('session %s %s %s %s %s %s %s %s %s', id, user_id, status, transcript,
                improved_transcript, sentences, attempt_count, pronunciation_score, created_at)
         FROM practice_sessions
         UNION ALL
         SELECT format('attempt %s %s %s %s %s %s %s %s %s', id, session_id, attempt_type,
                sentence_index, audio_url, status, pronunciation_score, is_passed, word_level_scores)
         FROM practice_attempts
         ORDER BY 1",
    )
}

const OLD_TRIGGERS: &str = "('practice_session_auto_improve_trigger', \
    'practice_session_auto_start_trigger', 'practice_attempts_auto_submit_trigger')";

const OLD_FUNCTIONS: &str = "('trigger_auto_improve_transcript', 'trigger_auto_start_practice', \
    'trigger_auto_submit_recording', 'disable_practice_triggers', 'enable_practice_triggers')";

#[test]
fn existing_practice_tables_keep_their_rows_and_lose_their_triggers() {
    let (_db, mut client) = production_like_db();
    apply(&mut client, &legacy_practice_file());
    let rows = legacy_rows(&mut client);
    assert_eq!(rows.len(), 7, "the fixture's 3 sessions and 4 attempts");
    let old_triggers = format!("SELECT count(*) FROM pg_trigger WHERE tgname IN {OLD_TRIGGERS}");
    let old_functions = format!(
        "SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname IN {OLD_FUNCTIONS}"
    );
    assert_eq!(count(&mut client, &old_triggers), 3);
    assert_eq!(count(&mut client, &old_functions), 5);

    apply_migrations(&mut client);

    assert_eq!(legacy_rows(&mut client), rows);
    assert_eq!(count(&mut client, &old_triggers), 0);
    assert_eq!(count(&mut client, &old_functions), 0);
    // What the old tables lacked is there, with its defaults on the old rows.
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM practice_sessions
             WHERE NOT is_passed AND error_message IS NULL AND last_event_at IS NULL"
        ),
        3
    );
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM practice_attempts
             WHERE error_message IS NULL AND last_event_at IS NULL AND updated_at IS NOT NULL"
        ),
        4
    );
    // The constraints hold for every old row, so they were validated.
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM pg_constraint
             WHERE conname IN ('practice_sessions_status_check', 'practice_attempts_status_check')
               AND convalidated"
        ),
        2
    );
    // The back end's own policy is left alone beside ours.
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM pg_policies WHERE tablename = 'practice_sessions'
             AND policyname IN ('Users can view own practice sessions', 'practice_sessions_read_own')"
        ),
        2
    );

    let bad_session = client.execute(
        "UPDATE practice_sessions SET status = 'done' WHERE id = '5e550000-0000-4000-8000-000000000001'",
        &[],
    );
    assert_eq!(sqlstate(bad_session), SqlState::CHECK_VIOLATION);
    let bad_attempt = client.execute(
        "UPDATE practice_attempts SET status = 'analyzing' WHERE id = 'a77e0000-0000-4000-8000-000000000001'",
        &[],
    );
    assert_eq!(sqlstate(bad_attempt), SqlState::CHECK_VIOLATION);
    let moved = client
        .execute(
            "UPDATE practice_sessions SET status = 'processing' WHERE id = '5e550000-0000-4000-8000-000000000001'",
            &[],
        )
        .expect("a known status is accepted");
    assert_eq!(moved, 1);
}

#[test]
fn an_old_row_with_an_unknown_status_is_kept_and_new_rows_are_still_checked() {
    let (_db, mut client) = production_like_db();
    apply(&mut client, &legacy_practice_file());
    client
        .batch_execute(
            "INSERT INTO practice_sessions (id, user_id, status)
             VALUES ('5e550000-0000-4000-8000-0000000000ff', 'a1111111-1111-4111-8111-111111111111', 'in_progress')",
        )
        .expect("the old table takes any status");

    apply_migrations(&mut client);

    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM practice_sessions WHERE status = 'in_progress'"
        ),
        1
    );
    let validated = "SELECT count(*) FROM pg_constraint
                     WHERE conname = 'practice_sessions_status_check' AND convalidated";
    assert_eq!(count(&mut client, validated), 0);
    let bad = client.execute(
        "INSERT INTO practice_sessions (user_id, status)
         VALUES ('a1111111-1111-4111-8111-111111111111', 'bogus')",
        &[],
    );
    assert_eq!(sqlstate(bad), SqlState::CHECK_VIOLATION);

    // Once the row is fixed, running the migrations again validates the constraint.
    client
        .batch_execute(
            "UPDATE practice_sessions SET status = 'processing' WHERE status = 'in_progress'",
        )
        .expect("fix the row");
    apply_migrations(&mut client);
    assert_eq!(count(&mut client, validated), 1);
}

#[test]
fn unknown_status_values_are_refused_by_check_constraints() {
    let db = TestDb::create();
    let mut client = db.client();
    let user = Uuid::new_v4();
    insert_user(&mut client, user);
    let session: Uuid = client
        .query_one(
            "INSERT INTO practice_sessions (user_id) VALUES ($1) RETURNING id",
            &[&user],
        )
        .expect("a new session")
        .get(0);

    let refused = [
        client.execute(
            "INSERT INTO practice_sessions (user_id, status) VALUES ($1, 'done')",
            &[&user],
        ),
        client.execute(
            "INSERT INTO practice_attempts (session_id, status) VALUES ($1, 'analyzing')",
            &[&session],
        ),
        client.execute(
            "INSERT INTO practice_attempts (session_id, pronunciation_score) VALUES ($1, 100.5)",
            &[&session],
        ),
        client.execute(
            "INSERT INTO demo_voice_sessions (demo_activity_id, student_id, status)
             VALUES ('d3e00000-0000-4000-8000-000000000001', $1, 'paused')",
            &[&user],
        ),
        client.execute(
            "INSERT INTO demo_voice_sessions (demo_activity_id, student_id, status)
             VALUES ('d3e00000-0000-4000-8000-000000000001', $1, 'ended')",
            &[&user],
        ),
        client.execute(
            "INSERT INTO webhook_events (id, event_type, status, payload) VALUES ('m', 't', 'pending', '{}')",
            &[],
        ),
        client.execute(
            "UPDATE voice_feature_flags SET rollout_percentage = 101",
            &[],
        ),
        client.execute(
            "INSERT INTO voice_session_metrics (user_id, implementation_type, connection_success)
             VALUES ($1, 'carrier-pigeon', true)",
            &[&user],
        ),
    ];
    for (index, result) in refused.into_iter().enumerate() {
        assert_eq!(
            sqlstate(result),
            SqlState::CHECK_VIOLATION,
            "statement {index}"
        );
    }
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM practice_attempts"),
        0
    );
}

#[test]
fn demo_relay_is_refused_every_table_but_its_own() {
    let db = TestDb::create();
    let mut relay = db.demo_client();
    for table in [
        "voice_sessions",
        "manual_assessments",
        "voice_interactions",
        "practice_sessions",
        "practice_attempts",
        "voice_feature_flags",
        "voice_session_metrics",
        "voice_session_errors",
        "voice_rollout_audit",
        "webhook_events",
        "realtime_token_sessions",
        "search_cache",
        "rate_limits",
        "rate_limits_demo",
        "health_probes",
        "auth.users",
    ] {
        let read = relay.query(&format!("SELECT 1 FROM {table} LIMIT 1"), &[]);
        assert_eq!(
            sqlstate(read),
            SqlState::INSUFFICIENT_PRIVILEGE,
            "SELECT on {table}"
        );
    }
    let delete = relay.execute("DELETE FROM demo_voice_sessions", &[]);
    assert_eq!(sqlstate(delete), SqlState::INSUFFICIENT_PRIVILEGE);
    let write = relay.execute("UPDATE demo_activities SET title = 'x'", &[]);
    assert_eq!(sqlstate(write), SqlState::INSUFFICIENT_PRIVILEGE);
}

#[test]
fn demo_relay_runs_a_demo_session_through_its_own_tables() {
    let db = TestDb::create();
    let mut admin = db.client();
    let student = Uuid::new_v4();
    insert_user(&mut admin, student);
    admin
        .batch_execute(
            "INSERT INTO demo_activities (id, demo_type, language, title, content, is_published)
             VALUES ('d3e00000-0000-4000-8000-0000000000ee', 'readflow', 'en', 'Draft', '{}', false)",
        )
        .expect("an unpublished activity");
    let mut relay = db.demo_client();

    // It sees the published activities only.
    assert_eq!(
        count(&mut relay, "SELECT count(*) FROM demo_activities"),
        12
    );

    let session: Uuid = relay
        .query_one(
            "INSERT INTO demo_voice_sessions (demo_activity_id, student_id, session_config)
             VALUES ('d3e00000-0000-4000-8000-000000000011', $1, '{\"voice\": \"ash\"}')
             RETURNING id",
            &[&student],
        )
        .expect("the relay creates a session")
        .get(0);
    let inserted = relay
        .execute(
            "INSERT INTO demo_interactions (demo_session_id, interaction_type, transcript, words)
             VALUES ($1, 'user_utterance', 'think three bath',
                     '[{\"word\": \"think\", \"start_ms\": 0, \"end_ms\": 300}]'),
                    ($1, 'assistant_feedback', 'Great TH sound!', NULL)",
            &[&session],
        )
        .expect("the relay logs interactions");
    assert_eq!(inserted, 2);
    let ended = relay
        .execute(
            "UPDATE demo_voice_sessions
             SET status = 'ended', ended_at = now(), updated_at = now(),
                 telemetry = telemetry || '{\"duration_ms\": 42000}'
             WHERE id = $1 AND status = 'active'",
            &[&session],
        )
        .expect("the relay ends the session");
    assert_eq!(ended, 1);
    for expected in 1..=2_i64 {
        let counted: Option<i64> = relay
            .query_one(
                "SELECT count FROM public.demo_rate_limit_hit('sdp:user:' || $1::text, 5)",
                &[&student.to_string()],
            )
            .expect("the relay counts requests through its function")
            .get(0);
        assert_eq!(counted, Some(expected));
    }
    let key: String = admin
        .query_one("SELECT bucket_key FROM rate_limits_demo", &[])
        .expect("the one counter")
        .get(0);
    assert_eq!(key, format!("demo:sdp:user:{student}"));
    assert_eq!(
        count(&mut admin, "SELECT count(*) FROM rate_limits"),
        0,
        "the demo counts in its own table, never in production's"
    );

    let row = admin
        .query_one(
            "SELECT s.status, s.telemetry ->> 'duration_ms', count(i.id)
             FROM demo_voice_sessions s JOIN demo_interactions i ON i.demo_session_id = s.id
             WHERE s.id = $1 GROUP BY s.id",
            &[&session],
        )
        .expect("the session's rows");
    assert_eq!(row.get::<_, String>(0), "ended");
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("42000"));
    assert_eq!(row.get::<_, i64>(2), 2);
}

/// Runs `sql` as a frontend role with the given JWT claims, as PostgREST would.
fn count_as(client: &mut Client, role: &str, claims: &str, sql: &str) -> i64 {
    let mut transaction = client.transaction().expect("begin");
    transaction
        .batch_execute(&format!("SET LOCAL ROLE {role}"))
        .expect("set role");
    transaction
        .execute(
            "SELECT set_config('request.jwt.claims', $1, true)",
            &[&claims],
        )
        .expect("set claims");
    let counted = transaction
        .query_one(sql, &[])
        .unwrap_or_else(|error| panic!("{sql} as {role}: {}", pg::describe(&error)))
        .get::<_, i64>(0);
    transaction.rollback().expect("rollback");
    counted
}

#[test]
fn students_read_only_their_own_rows_and_staff_read_the_dashboard() {
    let db = TestDb::create();
    let mut client = db.client();
    let (ana, ben) = (Uuid::new_v4(), Uuid::new_v4());
    insert_user(&mut client, ana);
    insert_user(&mut client, ben);
    for user in [ana, ben] {
        client
            .execute(
                "WITH s AS (INSERT INTO practice_sessions (user_id) VALUES ($1) RETURNING id)
                 INSERT INTO practice_attempts (session_id) SELECT id FROM s",
                &[&user],
            )
            .expect("practice rows");
        client
            .execute(
                "INSERT INTO voice_session_metrics (user_id, implementation_type, connection_success)
                 VALUES ($1, 'webrtc', true)",
                &[&user],
            )
            .expect("a metrics row");
        client
            .execute(
                "INSERT INTO demo_voice_sessions (demo_activity_id, student_id)
                 VALUES ('d3e00000-0000-4000-8000-000000000021', $1)",
                &[&user],
            )
            .expect("a demo session");
    }
    client
        .batch_execute(
            "INSERT INTO webhook_events (id, event_type, status, payload)
             VALUES ('msg_rls', 'practice.session.failed', 'failed', '{}')",
        )
        .expect("a webhook event");

    let student = format!(r#"{{"sub": "{ana}", "role": "authenticated"}}"#);
    let teacher = format!(
        r#"{{"sub": "{}", "role": "authenticated", "app_metadata": {{"role": "teacher"}}}}"#,
        Uuid::new_v4()
    );
    let anon = r#"{"role": "anon"}"#;

    for (table, own) in [
        ("practice_sessions", 1),
        ("practice_attempts", 1),
        ("voice_session_metrics", 1),
        ("demo_voice_sessions", 1),
        ("webhook_events", 0),
        ("rate_limits", 0),
        ("search_cache", 0),
    ] {
        let sql = format!("SELECT count(*) FROM {table}");
        assert_eq!(
            count_as(&mut client, "authenticated", &student, &sql),
            own,
            "{table}"
        );
    }
    assert_eq!(
        count_as(
            &mut client,
            "authenticated",
            &student,
            "SELECT count(*) FROM practice_sessions WHERE user_id <> auth.uid()"
        ),
        0
    );
    assert_eq!(
        count_as(
            &mut client,
            "authenticated",
            &teacher,
            "SELECT count(*) FROM voice_session_metrics"
        ),
        2
    );
    assert_eq!(
        count_as(
            &mut client,
            "authenticated",
            &teacher,
            "SELECT count(*) FROM practice_sessions"
        ),
        0
    );
    assert_eq!(
        count_as(
            &mut client,
            "authenticated",
            &student,
            "SELECT count(*) FROM voice_feature_flags"
        ),
        1
    );
    assert_eq!(
        count_as(
            &mut client,
            "anon",
            anon,
            "SELECT count(*) FROM demo_activities"
        ),
        12
    );
    assert_eq!(
        count_as(
            &mut client,
            "anon",
            anon,
            "SELECT count(*) FROM demo_voice_sessions"
        ),
        0
    );
}

#[test]
fn the_seed_publishes_every_demo_type_in_english_and_spanish() {
    let db = TestDb::create();
    let mut client = db.client();
    let groups = texts(
        &mut client,
        "SELECT format('%s %s %s', demo_type, language, count(*))
         FROM demo_activities WHERE is_published
         GROUP BY demo_type, language ORDER BY demo_type, language",
    );
    assert_eq!(
        groups,
        [
            "pronunciation en 2",
            "pronunciation es 2",
            "readflow en 2",
            "readflow es 2",
            "speed-quiz en 2",
            "speed-quiz es 2",
        ]
    );
    // Each type carries the material its instructions are built from.
    let incomplete = count(
        &mut client,
        "SELECT count(*) FROM demo_activities WHERE NOT CASE demo_type
             WHEN 'readflow' THEN content ? 'passage' AND jsonb_array_length(content -> 'comprehension_questions') > 0
             WHEN 'pronunciation' THEN jsonb_array_length(content -> 'words') > 0
                 AND content -> 'words' -> 0 ? 'phonemes'
             WHEN 'speed-quiz' THEN jsonb_array_length(content -> 'questions') > 0
                 AND content -> 'questions' -> 0 ? 'answer'
         END",
    );
    assert_eq!(incomplete, 0);
}

#[test]
fn the_rollout_flag_starts_disabled_at_zero_percent() {
    let db = TestDb::create();
    let mut client = db.client();
    let row = client
        .query_one(
            "SELECT enabled, rollout_percentage FROM voice_feature_flags
             WHERE flag_name = 'voice_webrtc_migration'",
            &[],
        )
        .expect("the flag row");
    assert!(!row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i32>(1), 0);
}

#[test]
fn migration_files_are_numbered_in_order_and_free_of_psql_commands() {
    let files = pg::sql_files(&pg::migrations_dir()).expect("sql/migrations");
    assert!(!files.is_empty());
    let mut numbers = BTreeSet::new();
    for file in &files {
        let name = file
            .file_name()
            .and_then(|name| name.to_str())
            .expect("a UTF-8 name");
        let (number, rest) = name.split_at(4);
        assert!(
            number.bytes().all(|byte| byte.is_ascii_digit()),
            "{name}: NNNN_<name>.sql"
        );
        assert!(
            rest.starts_with('_') && rest.ends_with(".sql"),
            "{name}: NNNN_<name>.sql"
        );
        assert!(
            rest.trim_end_matches(".sql")[1..]
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_'),
            "{name}: lower-case snake_case name"
        );
        assert!(
            numbers.insert(number.to_string()),
            "{name}: number used twice"
        );
        let sql = std::fs::read_to_string(file).expect("readable");
        assert!(
            !sql.lines().any(|line| line.trim_start().starts_with('\\')),
            "{name}: psql backslash commands do not run through a driver"
        );
        for owned_by_supabase in [
            "CREATE SCHEMA",
            "CREATE TABLE IF NOT EXISTS auth.",
            "FUNCTION auth.",
        ] {
            assert!(
                !sql.contains(owned_by_supabase),
                "{name}: the auth schema is Supabase's (sql/local stands in for it locally)"
            );
        }
    }
}

/// Every privilege `demo_relay` holds, in every schema but the system's, as
/// `kind name privilege` lines: explicit grants to it (tables, columns, sequences,
/// functions, schemas, types, default privileges, memberships), what it can reach on
/// any relation through PUBLIC or otherwise, and every SECURITY DEFINER function it
/// may execute (a function that runs with its owner's rights).
fn demo_relay_privileges(client: &mut postgres::Client) -> Vec<String> {
    let sql = "
        WITH demo AS (SELECT oid FROM pg_roles WHERE rolname = 'demo_relay'),
        user_schemas AS (
            SELECT oid, nspname FROM pg_namespace
             WHERE nspname NOT IN ('pg_catalog', 'information_schema')
               AND nspname NOT LIKE 'pg_toast%' AND nspname NOT LIKE 'pg_temp%'
        ),
        relation_privileges AS (
            SELECT CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END AS kind,
                   n.nspname || '.' || c.relname AS name, p.privilege
              FROM pg_class c JOIN user_schemas n ON n.oid = c.relnamespace
             CROSS JOIN (VALUES ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'),
                                ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')) AS p(privilege)
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
               AND has_table_privilege('demo_relay', c.oid, p.privilege)
            UNION ALL
            SELECT 'sequence', n.nspname || '.' || c.relname, p.privilege
              FROM pg_class c JOIN user_schemas n ON n.oid = c.relnamespace
             CROSS JOIN (VALUES ('USAGE'), ('SELECT'), ('UPDATE')) AS p(privilege)
             WHERE c.relkind = 'S'
               AND has_sequence_privilege('demo_relay', c.oid, p.privilege)
        ),
        column_privileges AS (
            SELECT 'column', c.oid::regclass::text || '.' || a.attname, g.privilege_type
              FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid,
                   aclexplode(a.attacl) g, demo
             WHERE g.grantee = demo.oid
        ),
        function_privileges AS (
            SELECT 'function', p.oid::regprocedure::text, 'EXECUTE'
              FROM pg_proc p JOIN user_schemas n ON n.oid = p.pronamespace, demo
             WHERE has_function_privilege('demo_relay', p.oid, 'EXECUTE')
               AND (p.prosecdef OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) g
                                            WHERE g.grantee = demo.oid))
        ),
        schema_privileges AS (
            SELECT 'schema', n.nspname, p.privilege
              FROM user_schemas n CROSS JOIN (VALUES ('USAGE'), ('CREATE')) AS p(privilege)
             WHERE has_schema_privilege('demo_relay', n.oid, p.privilege)
        ),
        type_privileges AS (
            SELECT 'type', t.oid::regtype::text, g.privilege_type
              FROM pg_type t, aclexplode(t.typacl) g, demo WHERE g.grantee = demo.oid
        ),
        default_privileges AS (
            SELECT 'default', d.defaclobjtype::text, g.privilege_type
              FROM pg_default_acl d, aclexplode(d.defaclacl) g, demo WHERE g.grantee = demo.oid
        ),
        memberships AS (
            SELECT 'member of', m.roleid::regrole::text, 'MEMBER'
              FROM pg_auth_members m, demo WHERE m.member = demo.oid
        ),
        everything AS (
            SELECT * FROM relation_privileges UNION ALL SELECT * FROM column_privileges
            UNION ALL SELECT * FROM function_privileges UNION ALL SELECT * FROM schema_privileges
            UNION ALL SELECT * FROM type_privileges UNION ALL SELECT * FROM default_privileges
            UNION ALL SELECT * FROM memberships
        )
        SELECT DISTINCT kind || ' ' || name || ' ' || privilege AS line FROM everything ORDER BY 1";
    client
        .query(sql, &[])
        .expect("listing demo_relay's privileges")
        .iter()
        .map(|row| row.get("line"))
        .collect()
}

#[test]
fn demo_role_holds_only_its_allow_list() {
    let db = TestDb::create();
    let mut admin = db.client();
    // What an operator or an old migration may have granted by mistake is taken back by
    // the migrations too: grant it, then run them again.
    admin
        .batch_execute(
            "GRANT SELECT ON auth.users TO demo_relay;
             GRANT USAGE ON SCHEMA auth TO demo_relay;
             GRANT EXECUTE ON FUNCTION auth.uid() TO demo_relay;
             GRANT SELECT (id) ON public.practice_sessions TO demo_relay;
             GRANT authenticated TO demo_relay;
             ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO demo_relay;",
        )
        .expect("granting too much");
    apply_migrations(&mut admin);

    let allowed = [
        "function demo_rate_limit_hit(text,bigint) EXECUTE",
        "schema public USAGE",
        "table public.demo_activities SELECT",
        "table public.demo_interactions INSERT",
        "table public.demo_interactions SELECT",
        "table public.demo_voice_sessions INSERT",
        "table public.demo_voice_sessions SELECT",
        "table public.demo_voice_sessions UPDATE",
    ];
    assert_eq!(demo_relay_privileges(&mut admin), allowed);

    // And the one function counts under its own prefix only: it can neither read nor
    // exhaust a production counter.
    admin
        .batch_execute(
            "INSERT INTO rate_limits (bucket_key, window_start, count)
             VALUES ('mint:user:6f1c1a52-5d0b-4b7e-9a51-3f8f7f0f2a10', date_trunc('minute', now()), 3)",
        )
        .expect("a production counter");
    let mut relay = db.demo_client();
    for _ in 0..3 {
        relay
            .query_one(
                "SELECT count FROM demo_rate_limit_hit('mint:user:6f1c1a52-5d0b-4b7e-9a51-3f8f7f0f2a10', 1)",
                &[],
            )
            .expect("counting");
    }
    let production: i32 = admin
        .query_one(
            "SELECT count FROM rate_limits WHERE bucket_key = 'mint:user:6f1c1a52-5d0b-4b7e-9a51-3f8f7f0f2a10'",
            &[],
        )
        .expect("the production counter")
        .get(0);
    assert_eq!(production, 3, "the demo role moved a production counter");
    assert_eq!(
        sqlstate(relay.execute("DELETE FROM rate_limits", &[])),
        SqlState::INSUFFICIENT_PRIVILEGE
    );
    assert_eq!(
        sqlstate(relay.query("SELECT * FROM demo_rate_limit_hit('', 1)", &[])),
        SqlState::INVALID_PARAMETER_VALUE
    );
}

/// Issue 23, item 4: every migration grants only its end state. A migration run stopped
/// right after 0008 (each file is its own transaction) on a fresh database leaves
/// `demo_relay` with a subset of what the finished migrations give it: above all, no
/// access to `rate_limits` (production user ids and client addresses), directly or by
/// a policy.
#[test]
fn a_run_stopped_after_0008_leaves_demo_relay_no_more_than_its_end_state() {
    let (db, mut admin) = production_like_db();
    let files = pg::sql_files(&pg::migrations_dir()).expect("the migrations");
    let mut applied = Vec::new();
    for file in &files {
        apply(&mut admin, file);
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        applied.push(name.clone());
        if name.starts_with("0008_") {
            break;
        }
    }
    assert_eq!(
        applied.last().map(|n| &n[..5]),
        Some("0008_"),
        "{applied:?}"
    );

    let end_state: BTreeSet<&str> = [
        "function demo_rate_limit_hit(text,bigint) EXECUTE",
        "schema public USAGE",
        "table public.demo_activities SELECT",
        "table public.demo_interactions INSERT",
        "table public.demo_interactions SELECT",
        "table public.demo_voice_sessions INSERT",
        "table public.demo_voice_sessions SELECT",
        "table public.demo_voice_sessions UPDATE",
    ]
    .into_iter()
    .collect();
    let held = demo_relay_privileges(&mut admin);
    for privilege in &held {
        assert!(
            end_state.contains(privilege.as_str()),
            "after 0008 demo_relay holds {privilege}, which the finished migrations do not give it"
        );
    }
    assert!(
        held.iter().all(|line| !line.contains("rate_limits")),
        "{held:?}"
    );
    assert_eq!(
        count(
            &mut admin,
            "SELECT count(*) FROM pg_policies WHERE 'demo_relay' = ANY(roles) AND tablename = 'rate_limits'"
        ),
        0
    );

    // What the role can do, as itself: its demo tables, and nothing of rate_limits.
    admin
        .batch_execute(
            "INSERT INTO rate_limits (bucket_key, window_start, count)
             VALUES ('mint:user:6f1c1a52-5d0b-4b7e-9a51-3f8f7f0f2a10', date_trunc('minute', now()), 3)",
        )
        .expect("a production counter");
    let mut relay = db.demo_client();
    for statement in [
        "SELECT bucket_key FROM rate_limits",
        "DELETE FROM rate_limits",
        "UPDATE rate_limits SET count = 0",
        "INSERT INTO rate_limits (bucket_key, window_start, count) VALUES ('x', now(), 1)",
    ] {
        assert_eq!(
            sqlstate(relay.execute(statement, &[])),
            SqlState::INSUFFICIENT_PRIVILEGE,
            "{statement}"
        );
    }
    assert_eq!(
        count(&mut relay, "SELECT count(*) FROM demo_voice_sessions"),
        0
    );
    assert_eq!(
        count(&mut admin, "SELECT count::int8 FROM rate_limits"),
        3,
        "the production counter is untouched"
    );
}

/// A database migrated by an older 0008 (which granted demo_relay every row of
/// `rate_limits` through a `USING (true)` policy) converges on re-running today's 0008
/// alone: the grant and the policy are taken back.
#[test]
fn rerunning_0008_takes_back_what_older_versions_of_it_granted() {
    let db = TestDb::create();
    let mut admin = db.client();
    admin
        .batch_execute(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON public.rate_limits TO demo_relay;
             CREATE POLICY demo_relay_rate_limits ON public.rate_limits
                 FOR ALL TO demo_relay USING (true) WITH CHECK (true);",
        )
        .expect("what 0008 used to grant");
    let file = pg::sql_files(&pg::migrations_dir())
        .expect("the migrations")
        .into_iter()
        .find(|file| {
            file.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("0008_")
        })
        .expect("0008");
    apply(&mut admin, &file);
    let held = demo_relay_privileges(&mut admin);
    assert!(
        held.iter().all(|line| !line.contains("rate_limits")),
        "{held:?}"
    );
    assert_eq!(
        count(
            &mut admin,
            "SELECT count(*) FROM pg_policies WHERE policyname = 'demo_relay_rate_limits'"
        ),
        0
    );
    let mut relay = db.demo_client();
    assert_eq!(
        sqlstate(relay.execute("DELETE FROM rate_limits", &[])),
        SqlState::INSUFFICIENT_PRIVILEGE
    );
}

/// Issue 23, item 6: the demo's counting function accepts only the keys the relay uses
/// (`voice_edge_shared`'s demo module: `<action>:user:<uuid>`, `<action>:ip:<IPv4>`,
/// `<action>:ip6:<IPv6>/64`, `<action>:ip:unknown`, `<action>:anon`, for sessions,
/// interactions, sdp and mint), and counts in the demo's own table: any other key is
/// refused and writes nothing anywhere.
#[test]
fn the_demo_counting_function_refuses_keys_the_relay_never_uses_and_writes_nothing() {
    let db = TestDb::create();
    let mut admin = db.client();
    let mut relay = db.demo_client();
    let user = "6f1c1a52-5d0b-4b7e-9a51-3f8f7f0f2a10";
    let accepted = [
        format!("sessions:user:{user}"),
        format!("interactions:user:{user}"),
        format!("sdp:user:{user}"),
        format!("mint:user:{user}"),
        "sdp:ip:198.51.100.7".to_string(),
        "sessions:ip:127.0.0.1".to_string(),
        "mint:ip6:2001:db8:1:2::/64".to_string(),
        "sdp:ip:unknown".to_string(),
        "sessions:anon".to_string(),
    ];
    for key in &accepted {
        let counted: Option<i64> = relay
            .query_one("SELECT count FROM demo_rate_limit_hit($1, 5)", &[key])
            .unwrap_or_else(|error| panic!("{key}: {}", pg::describe(&error)))
            .get(0);
        assert_eq!(counted, Some(1), "{key}");
    }
    let refused = [
        String::new(),
        "x".to_string(),
        format!("demo:sdp:user:{user}"),
        format!("search:user:{user}"),
        format!("sdp:user:{}", user.to_uppercase()),
        format!("sdp:user:{user}:extra"),
        format!("sdp:user:{user}\n"),
        "sdp:user:not-a-uuid".to_string(),
        "sdp:ip:256.1.1.1".to_string(),
        "sdp:ip:10.0.0".to_string(),
        "sdp:ip6:2001:db8::1".to_string(),
        "sdp:anon:more".to_string(),
        "sdp:user:".to_string(),
        format!("sdp:{}", "a".repeat(300)),
        format!("sdp:user:{user} OR 1=1"),
    ];
    for key in &refused {
        assert_eq!(
            sqlstate(relay.query("SELECT * FROM demo_rate_limit_hit($1, 5)", &[key])),
            SqlState::INVALID_PARAMETER_VALUE,
            "{key:?}"
        );
    }
    assert_eq!(
        sqlstate(relay.query("SELECT * FROM demo_rate_limit_hit($1, 0)", &[&accepted[0]])),
        SqlState::INVALID_PARAMETER_VALUE,
        "a limit under 1"
    );
    let mut stored = texts(
        &mut admin,
        "SELECT bucket_key FROM rate_limits_demo ORDER BY 1",
    );
    stored.sort();
    let mut expected: Vec<String> = accepted.iter().map(|key| format!("demo:{key}")).collect();
    expected.sort();
    assert_eq!(stored, expected, "only the accepted keys were written");
    assert_eq!(count(&mut admin, "SELECT count(*) FROM rate_limits"), 0);
}
