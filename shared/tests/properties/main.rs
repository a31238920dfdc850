//! Property tests of `voice-edge-shared` (proptest): each rule that has a model is
//! checked against a small reference model written here from CONTRACT.md, never from
//! the code under test.
//!
//! - [`webhook_order`]: the practice webhook's exactly-once-in-order rule (section 5);
//! - [`bucket`]: bucketing equals the frontend's JavaScript (section 3);
//! - [`scores`]: a session's mean score and `is_passed` (section 5);
//! - [`json`]: the responses' JSON round trips and shapes.
//!
//! ```sh
//! cargo test --profile host -p voice-edge-shared --test properties   # part of make unit
//! ```
//!
//! A case that fails is printed shrunk; it then becomes a named regression test beside
//! the property (nothing is persisted to files).

mod bucket;
mod json;
mod scores;
mod webhook_order;

use proptest::test_runner::Config;

/// `cases` cases, no regression files written.
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}
