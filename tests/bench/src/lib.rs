//! `voice-edge-bench`: benchmarks of the functions as they are served, and the
//! ClassConnect stand-in.
//!
//! The runner ([`env::Env`]) starts a private PostgreSQL cluster with PostgreSQL's
//! default durability (every commit is flushed), one migrated database, the app of
//! `spin.toml` in-process through the host, and the OpenAI stand-in when a scenario asks
//! for it. [`load::drive`] replays prepared HTTP requests over keep-alive connections on
//! loopback, bounded by a request count and a time limit, and records every latency.
//! Each scenario is one module under [`scenarios`] with a [`scenario::Scenario`] entry
//! in [`scenarios::ALL`]: it seeds what it needs, prepares its requests, drives them,
//! and checks the rows afterwards.
//!
//! ```sh
//! for f in functions/*/; do cargo build --target wasm32-wasip2 --release -p $(basename $f); done
//! cargo run --profile host -p voice-edge-bench -- all        # or: -- webhook --requests 20000
//! ```
//!
//! Numbers are printed, never asserted: the exit status is non-zero only when a check
//! of correctness fails (an unexpected answer, a lost or doubled row).

pub mod cpu;
pub mod env;
pub mod http1;
pub mod load;
pub mod scenario;
pub mod scenarios;
