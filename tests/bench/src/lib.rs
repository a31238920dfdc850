//! `voice-edge-bench`: benchmarks of the functions as a sender sees them, under our
//! host and real Spin side by side, and the ClassConnect stand-in.
//!
//! Each scenario starts, for each runtime ([`env::runtimes`]: our host's binary, and
//! Spin when `SPIN_BIN` or `spin` on the `PATH` finds one), a private PostgreSQL
//! cluster with PostgreSQL's default durability (every commit flushed), one migrated
//! database, the app of `spin.toml` in a process of its own ([`env::Env`]), and the
//! OpenAI stand-in when it needs one. The webhook's load comes from `wrk` in a process
//! of its own ([`wrk`]), beside the ceiling of PostgreSQL alone running the same
//! statements with `pgbench` ([`ceiling`]); other scenarios use the in-process
//! keep-alive load generator ([`load::drive`]). Each scenario is one module under
//! [`scenarios`] with a [`scenario::Scenario`] entry in [`scenarios::ALL`]; it fills a
//! table with a column per runtime.
//!
//! ```sh
//! make build
//! cargo run --profile host -p voice-edge-bench -- all        # or: -- webhook --seconds 20 --connections 16
//! ```
//!
//! Numbers are printed, never asserted: the exit status is non-zero only when a check
//! of correctness fails (an unexpected answer, a lost or doubled row).

pub mod ceiling;
pub mod cpu;
pub mod env;
pub mod http1;
pub mod load;
pub mod peer;
pub mod scenario;
pub mod scenarios;
pub mod wrk;
