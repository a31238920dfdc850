//! The runtime boundary: the only modules of `shared/` that name spin-sdk or wasi.
//!
//! - [`http`]: Spin's incoming request in, the response out in one write ([`serve`]);
//! - [`postgres`]: the `spin:postgres` interface, its connection builder and its
//!   value types, which [`crate::db`] hands to the repositories;
//! - [`variables`]: `spin:variables` as a [`crate::config::Variables`] source;
//! - [`outbound`]: `wasi:http/outgoing-handler` with a deadline.
//!
//! The pipeline ([`crate::http::handle`]), the SQL rules ([`crate::db`]) and every
//! domain module are plain Rust over the types these modules hand out, so a move to
//! another SDK or `wasi:http` version is a change to these files.

pub mod http;
pub mod outbound;
pub mod postgres;
pub mod variables;

pub use http::serve;
pub use variables::SpinVariables;
