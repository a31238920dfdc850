//! The scenarios, one module each.

pub mod coldstart;
pub mod costs;
pub mod instantiate;
pub mod memory;
pub mod retention;
pub mod size;
pub mod token;
pub mod upstream;
pub mod webhook;

use crate::scenario::Scenario;

/// Every scenario, in the order `all` runs them.
pub const ALL: &[Scenario] = &[
    webhook::SCENARIO,
    token::SCENARIO,
    upstream::SCENARIO,
    instantiate::SCENARIO,
    costs::SCENARIO,
    coldstart::SCENARIO,
    memory::SCENARIO,
    size::SCENARIO,
    retention::SCENARIO,
];
