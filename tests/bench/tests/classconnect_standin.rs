//! The ClassConnect stand-in against the app: what a person sees after `make up`.
//!
//! `cargo test --profile host -p voice-edge-bench` (the components built first).

use std::process::Command;

use voice_edge_testkit::app::TestApp;
use voice_edge_testkit::pg::TestDb;

const SECRET: &str = "whsec_c3RhbmQtaW4tdGVzdC1rZXktMDAwMDAwMDAwMDAwMDA=";

#[test]
fn the_stand_in_creates_a_session_and_its_deliveries_complete_it() {
    let db = TestDb::create();
    let mut vars = db.app_vars();
    vars.push((
        "supabase_jwt_secret".into(),
        "stand-in-test-jwt-secret-0123456789".into(),
    ));
    vars.push(("classconnect_webhook_secret".into(), SECRET.into()));
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = TestApp::start(&pairs);

    let output = Command::new(env!("CARGO_BIN_EXE_classconnect-standin"))
        .args(["--url", &app.url("/functions/v1/practice-webhook")])
        .args(["--secret", SECRET, "--db-url", &db.url()])
        .env_remove("CLASSCONNECT_WEBHOOK_SECRET")
        .env_remove("DB_URL")
        .output()
        .expect("the stand-in runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.matches(r#"-> 200 {"status":"processed"}"#).count(),
        5,
        "{stdout}"
    );
    assert_eq!(
        stdout.matches(r#"-> 200 {"status":"duplicate"}"#).count(),
        1,
        "{stdout}"
    );

    let row = db
        .client()
        .query_one(
            "SELECT status, attempt_count, pronunciation_score::text, is_passed,
                    (SELECT count(*) FROM webhook_events) AS events
               FROM practice_sessions",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "completed");
    assert_eq!(row.get::<_, i32>(1), 3);
    assert_eq!(row.get::<_, String>(2), "75.58"); // (91 + 58.5 + 77.25) / 3
    assert!(!row.get::<_, bool>(3), "the second sentence did not pass");
    assert_eq!(row.get::<_, i64>(4), 5);
    assert!(
        stdout.contains(r#""pronunciation_score":"75.58""#),
        "{stdout}"
    );
}
