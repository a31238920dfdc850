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
//!
//! **What may outlive a request.** Today every function is a WASIp2 component and Spin
//! gives each request a fresh instance, so nothing can. Spin 4.1 reuses WASIp3
//! instances (up to 128 requests each, 16 at once), and then the rule is: only
//! configuration read from variables and connections may be instance state; everything
//! that belongs to a caller (identity and claims, rate-limit counts, bodies, errors, the
//! log line, work scheduled after the response) is a local value of the request that
//! [`serve`] builds and drops. A connection goes back to an instance's pool only when
//! its transaction is known to have ended; Spin's own pool does not roll back what a
//! dropped connection left open (README, "WASIp3"). The one instance-wide value today is
//! `crate::db`'s record of the transaction in flight, for the panic hook to roll back:
//! a single slot, right only while an instance serves one request at a time.

pub mod http;
pub mod outbound;
pub mod postgres;
pub mod variables;

pub use http::{SpinRequest, SpinResponse, serve};
pub use variables::SpinVariables;
