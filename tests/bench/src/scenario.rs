//! What a scenario is, and what it hands back.
//!
//! To add one: write `scenarios/<name>.rs` with a `pub const SCENARIO: Scenario`, whose
//! `run` seeds the database through `env.db`, builds its requests with
//! [`crate::http1::Request`], calls [`crate::load::drive`] (warm-up first, if it wants
//! one), and checks the rows; then list it in [`crate::scenarios::ALL`].

use crate::env::Env;
use crate::load::LoadReport;

/// How much load a run may apply.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Measured requests at most.
    pub requests: usize,
    /// Seconds of measured load at most.
    pub seconds: f64,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Requests sent before measuring (same kind, counted in the row checks).
    pub warmup: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            requests: 20_000,
            seconds: 30.0,
            connections: 8,
            warmup: 500,
        }
    }
}

/// A correctness check made after the load: passes or not, with what was seen.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl Check {
    /// A check that `actual` equals `expected`.
    pub fn equal(name: &str, actual: i64, expected: i64) -> Check {
        Check {
            name: name.to_string(),
            passed: actual == expected,
            detail: format!("{actual} (expected {expected})"),
        }
    }
}

/// What a scenario measured and checked.
#[derive(Debug)]
pub struct Outcome {
    pub load: LoadReport,
    /// Lines of extra measurements (instantiation cost, …), printed as they are.
    pub notes: Vec<String>,
    pub checks: Vec<Check>,
}

/// A benchmark scenario.
pub struct Scenario {
    /// The name on the command line.
    pub name: &'static str,
    /// One line for `--help` and the report.
    pub description: &'static str,
    /// Whether the app needs the OpenAI stand-in.
    pub needs_openai: bool,
    /// The performance target, printed beside the numbers.
    pub target: &'static str,
    pub run: fn(&Env, &Limits) -> anyhow::Result<Outcome>,
}
