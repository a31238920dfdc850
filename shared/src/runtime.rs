//! The runtime boundary: the only modules of `shared/` that name spin-sdk or wasi.
//!
//! - [`http`]: Spin's incoming request in, the response out in one write ([`serve`]);
//! - [`postgres`]: `spin:postgres@4.2.0`'s async calls, its connection builder and
//!   its value types, which [`crate::db`] hands to the repositories;
//! - [`variables`]: `spin:variables` as a [`crate::config::Variables`] source;
//! - [`outbound`]: `wasi:http/client@0.3.0` with a deadline.
//!
//! The pipeline ([`crate::http::handle`]), the SQL rules ([`crate::db`]) and every
//! domain module are plain Rust over the types these modules hand out, so a move to
//! another SDK or `wasi:http` version is a change to these files.
//!
//! **What may outlive a request.** Every function is a WASIp3 component (spin-sdk 7),
//! and Spin 4.1 reuses its instances: up to 128 requests each, up to 16 at once
//! (`--max-instance-reuse-count`, `--max-instance-concurrent-reuse-count`; our host
//! has the same defaults and flags). The rule, for every module of `shared/`:
//! - instance state is configuration and connections only: the variables' values
//!   ([`variables`], read once per instance), the idle connections of
//!   [`crate::db::pool`], the id and counters of [`instance`] (for the log),
//!   `crate::db`'s record of the transactions in flight (for the panic hook), and
//!   when the instance last asked whether a retention sweep is due
//!   ([`crate::retention`]: housekeeping, no caller's);
//! - everything that belongs to a caller (identity and claims, rate-limit counts,
//!   bodies, errors, the log line, work scheduled after the response) is a local value
//!   of the request that [`serve`] builds and drops; no `static`, `thread_local!` or
//!   `OnceCell` holds any of it;
//! - requests in one instance interleave at every `await`: reading the body, each
//!   database statement, each upstream call, writing the response. So nothing of a
//!   request may sit where another could reach it across an `await`: a connection
//!   belongs to one request from its checkout to its return ([`crate::db::Db`]), a
//!   transaction is open on that request's connection only, and the work after the
//!   response runs in the request's own task, on its own connection.
//!
//! `tests/integration/tests/instance_isolation.rs` interleaves many callers in one
//! instance, under both runtimes, and checks that each answer and each row is its own
//! caller's.

pub mod http;
pub mod instance;
pub mod outbound;
pub mod postgres;
pub mod variables;

pub use http::{SpinRequest, SpinResponse, serve};
pub use variables::SpinVariables;
