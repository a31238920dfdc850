//! `voice-edge-testkit`: what the integration tests share.
//!
//! - [`pg`]: throwaway PostgreSQL clusters on loopback and one fresh database per test,
//!   with every migration and the local `auth` stand-in applied;
//! - [`app`]: the app of `spin.toml` served in-process by the test host, with the
//!   variables a test chooses, and its captured log lines.

pub mod app;
pub mod pg;
