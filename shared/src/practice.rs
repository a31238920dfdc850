//! Practice sessions and attempts, as ClassConnect's webhooks shape them: the logic of
//! the `practice-webhook` function (contract section 5).
//!
//! - [`event`]: the delivery body, parsed and validated (pure);
//! - [`status`]: the statuses and the forward-only rule (pure);
//! - [`scores`]: a session's results from its attempts (pure);
//! - [`apply`]: what an event changes, from the locked session and the event (pure);
//! - [`sessions`], [`attempts`], [`webhook_events`]: the SQL, one repository per table;
//! - [`webhook`]: the function itself — verification, the one transaction per delivery,
//!   replay.
//!
//! Unit tests: `cargo test --profile host -p voice-edge-shared practice`; the
//! function's tests through the host: `tests/integration/tests/practice_webhook.rs`.

pub mod apply;
pub mod attempts;
pub mod event;
pub mod scores;
pub mod sessions;
pub mod status;
pub mod webhook;
pub mod webhook_events;

pub use webhook::handle;

use crate::db::ParameterValue;

use crate::db::utc_param;

/// An optional parameter: `NULL` when absent.
fn or_null(value: Option<ParameterValue>) -> ParameterValue {
    value.unwrap_or(ParameterValue::DbNull)
}
