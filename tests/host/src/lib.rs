//! `voice-edge-host`: a small Spin-compatible host on wasmtime, for development and
//! tests where no Spin binary can be installed.
//!
//! It serves the components of a `spin.toml` as `spin up` does wherever a component
//! can tell: Spin's routing and `spin-*` request headers, a fresh instance per request
//! for WASIp2 components and Spin's instance reuse for WASIp3 ones ([`reuse`]: the
//! same flags, defaults and idle timeout),
//! variables from `--variable` and `SPIN_VARIABLE_*` with Spin's templating and errors,
//! outbound HTTP (over pooled connections, as in Spin) and PostgreSQL limited to
//! `allowed_outbound_hosts`, and `spin:postgres@4.2.0` (which serves `@4.0.0` and
//! `@4.1.0` imports too, as Spin does; its `*-async` functions are concurrent, so an
//! instance runs its other tasks while one awaits a query) over pooled real
//! connections with Spin's type mapping and the connection builder's root CA.
//!
//! As a binary: `voice-edge-host -f spin.toml --listen 127.0.0.1:3000 --variable k=v`.
//! As a library: [`app::App::load`] and [`app::Server::start`] (the testkit's `TestApp`
//! wraps them). Tests: `cargo test --profile host -p voice-edge-host` (the conformance
//! tests need `cargo build --target wasm32-wasip2 --release -p conformance-probe
//! -p reuse-probe` first and a PostgreSQL on the PATH). WASIp3 components get WASI 0.3
//! and `wasi:http@0.3` (beside 0.2, which their standard library imports); Spin's
//! variables are linked in their WASIp2-era version only, and Postgres as
//! `spin:postgres@4.2.0`, whose `*-async` functions spin-sdk 7's `pg` module calls.

#![warn(missing_docs)]

pub mod allowed_hosts;
pub mod app;
pub mod engine;
pub mod manifest;
pub mod outbound_http;
pub mod output;
pub mod pg;
pub mod reuse;
pub mod routes;
pub mod state;
pub mod variables;

/// Host bindings for the Spin interfaces in `wit/`.
#[allow(missing_docs)]
pub mod bindings {
    wasmtime::component::bindgen!({
        // `spin:postgres@4.2.0` is `wit/deps/spin-postgres-4.2.0` (Spin's own file),
        // found as a dependency of `wit`; `fermyon:spin/variables@2.0.0` is the file the
        // components bind (`shared/wit`). The `*-async` functions of `spin:postgres`
        // are concurrent (`HostConnectionWithStore`, `HostConnectionBuilderWithStore`:
        // see [`crate::pg`]).
        path: [
            "../../shared/wit/deps/spin-variables",
            "wit",
        ],
        world: "voice-edge:host/spin-imports",
        imports: { default: async },
        with: {
            "spin:postgres/postgres.connection": crate::pg::PgConnection,
            "spin:postgres/postgres.connection-builder": crate::pg::PgConnectionBuilder,
        },
    });
}

pub use app::{App, HostOptions, InstantiationReport, Server};
pub use reuse::InstanceReuse;
pub use variables::VariableProviders;

/// A multi-threaded tokio runtime shared by every app of the process (tests start
/// many apps; each one need not start its own threads).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("voice-edge-host")
            .build()
            .expect("a tokio runtime starts")
    })
}
