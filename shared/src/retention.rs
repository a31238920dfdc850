//! The retention sweep the functions run themselves where the database has no pg_cron
//! (contract section 7a).
//!
//! The sweeps are SQL (`sql/migrations/0160_data_retention.sql`): with pg_cron, the job
//! `voice-edge-retention-sweep` runs `public.retention_sweep()` every minute (0162).
//! Without it, a function that holds a connection as the tables' owner schedules
//! [`sweep_if_due`] after its response ([`Incoming::after_response`]): one call of
//! `public.retention_sweep_if_due()`, which does nothing when the pg_cron job exists or
//! when a sweep started less than a minute ago (the gate is a row in Postgres, shared by
//! every instance), and otherwise sweeps one bounded batch per table.
//! The caller never waits for it; a failure is logged and only delays the cleanup.
//!
//! An instance asks at most once every [`ASK_AT_MOST_EVERY`]: asking costs a statement
//! (a PL/pgSQL call and its round trip), and asking after every response was the
//! largest charge on a webhook delivery under instance reuse (`make bench`'s `webhook`,
//! BENCHMARKS.md). When it last asked is the one piece of instance state here: a
//! time of housekeeping, which belongs to no caller (see [`crate::runtime`]). A new
//! instance asks with its first response, so the sweeps still run once a minute
//! under any traffic. Tests: `tests/integration/tests/data_lifecycle.rs`.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::db::Db;
use crate::http::Incoming;
use crate::log::Level;

/// The shortest time between two questions of one instance to the database's gate.
pub const ASK_AT_MOST_EVERY: Duration = Duration::from_secs(10);

thread_local! {
    /// When this instance last asked the gate.
    static LAST_ASKED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Whether this instance should ask the gate now; if so, notes that it did.
fn time_to_ask(now: Instant) -> bool {
    LAST_ASKED.with(|last| {
        let due = last
            .get()
            .is_none_or(|asked| now.duration_since(asked) >= ASK_AT_MOST_EVERY);
        if due {
            last.set(Some(now));
        }
        due
    })
}

/// Schedules one `retention_sweep_if_due()` on `db`'s connection for after the response,
/// unless this instance asked less than [`ASK_AT_MOST_EVERY`] ago.
pub fn sweep_if_due(db: &Db, incoming: &Incoming) {
    if !time_to_ask(Instant::now()) {
        return;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_asks_the_gate_once_and_again_only_after_the_interval() {
        let start = Instant::now();
        assert!(time_to_ask(start));
        assert!(!time_to_ask(start));
        assert!(!time_to_ask(
            start + ASK_AT_MOST_EVERY - Duration::from_millis(1)
        ));
        assert!(time_to_ask(start + ASK_AT_MOST_EVERY));
        assert!(!time_to_ask(start + ASK_AT_MOST_EVERY));
    }
}
