//! The retention sweep the functions run themselves where the database has no pg_cron
//! (contract section 7a).
//!
//! The sweeps are SQL (`sql/migrations/0160_data_retention.sql`): with pg_cron, the job
//! `voice-edge-retention-sweep` runs `public.retention_sweep()` every minute (0162).
//! Without it, a function that holds a connection as the tables' owner schedules
//! [`sweep_if_due`] after its response ([`Incoming::after_response`]): one call of
//! `public.retention_sweep_if_due()`, which does nothing when the pg_cron job exists or
//! when a sweep started less than a minute ago (the gate is a row in Postgres, since
//! instances are fresh per request), and otherwise sweeps one bounded batch per table.
//! The caller never waits for it; a failure is logged and only delays the cleanup.
//! Tests: `tests/integration/tests/data_lifecycle.rs`.

use crate::db::Db;
use crate::http::Incoming;
use crate::log::Level;

/// Schedules one `retention_sweep_if_due()` on `db`'s connection for after the response.
pub fn sweep_if_due(db: &Db, incoming: &Incoming) {
    let db = db.share();
    let function = incoming.function();
    let request_id = incoming.request_id().to_string();
    incoming.after_response(async move {
        let swept = db
            .query_one("SELECT public.retention_sweep_if_due()::text AS swept", &[])
            .await;
        match swept {
            Ok(rows) => {
                let swept = rows
                    .rows()
                    .next()
                    .and_then(|row| crate::db::column::<Option<String>>(&row, "swept").ok())
                    .flatten();
                if let Some(counts) = swept {
                    crate::log::event(
                        Level::Info,
                        function,
                        Some(&request_id),
                        "retention_sweep",
                        &counts,
                    );
                }
            }
            Err(error) => crate::log::event(
                Level::Warn,
                function,
                Some(&request_id),
                "retention_sweep_failed",
                &error.to_string(),
            ),
        }
    });
}
