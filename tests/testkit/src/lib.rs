//! `voice-edge-testkit`: what the integration tests share.
//!
//! - [`pg`]: throwaway PostgreSQL clusters on loopback and one fresh database per test,
//!   with every migration and the local `auth` stand-in applied;
//! - [`app`]: the app of `spin.toml` served by the run's runtime ([`runtime`]: the
//!   host in-process, or real Spin as a child process, [`child`]), with the variables
//!   a test chooses, and its captured log lines;
//! - [`tls`]: a root CA of a test's own and the server certificates it signs, for a
//!   PostgreSQL that speaks TLS only.

pub mod app;
pub mod child;
pub mod pg;
pub mod runtime;
pub mod tls;
