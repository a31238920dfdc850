//! The app under test, served by the runtime of the run ([`Runtime::current`]): our
//! host in-process (the default), or real Spin as a child process
//! (`VOICE_EDGE_RUNTIME=spin`, what `make test-spin` sets).
//!
//! `TestApp::start(&[("db_url", …), …])` serves the repository's `spin.toml` on
//! `127.0.0.1` with a free port and exactly the variables given (a required variable
//! that is not given fails the start with Spin's own message); `app.url(path)` builds
//! request URLs; `app.logs()` returns the guest's stdout and stderr lines. The app stops
//! when the `TestApp` is dropped, and prints its captured log lines if the test is
//! failing. Compiled components are shared by every `TestApp` of the test process (and
//! cached on disk under `target/voice-edge-host-cache`; Spin keeps its own compilation
//! cache), so only the first start pays for compilation.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use voice_edge_host::{
    App, HostOptions, InstanceReuse, Server, VariableProviders, manifest::Manifest,
};

use crate::child::{ChildApp, ChildOptions, ChildRuntime};
use crate::pg::repo_root;
use crate::runtime::Runtime;

/// The app of a manifest, served by the run's runtime.
pub struct TestApp {
    served: Served,
    addr: SocketAddr,
}

enum Served {
    Host {
        server: Option<Server>,
        app: Arc<App>,
    },
    Spin(ChildApp),
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Where compiled components are cached between test processes.
fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("voice-edge-host-cache")
}

/// Panics with a useful message when a component of the manifest has not been built.
fn require_built_components(manifest: &Path) {
    let parsed = match Manifest::load(manifest) {
        Ok(parsed) => parsed,
        Err(error) => panic!("cannot read {}: {error:#}", manifest.display()),
    };
    for (id, component) in &parsed.components {
        assert!(
            component.source.exists(),
            "component `{id}`: {} is missing — run `make build` first",
            component.source.display()
        );
    }
}

/// `VOICE_EDGE_MAX_INSTANCE_REUSE`, when set: the `--max-instance-reuse-count` every
/// app of this run is served with (unless it is started with flags of its own).
pub fn max_instance_reuse() -> Option<u32> {
    let value = std::env::var("VOICE_EDGE_MAX_INSTANCE_REUSE").ok()?;
    match value.trim() {
        "" => None,
        text => Some(text.parse().unwrap_or_else(|_| {
            panic!("VOICE_EDGE_MAX_INSTANCE_REUSE={text:?} is not a number of requests")
        })),
    }
}

impl TestApp {
    /// Serves the repository's `spin.toml` with these variables.
    pub fn start(vars: &[(&str, &str)]) -> TestApp {
        Self::start_manifest(&repo_root().join("spin.toml"), vars)
    }

    /// Serves the manifest at `path` with these variables.
    pub fn start_manifest(path: &Path, vars: &[(&str, &str)]) -> TestApp {
        require_built_components(path);
        match Self::try_start_manifest(path, vars) {
            Ok(app) => app,
            Err(error) => panic!("the app did not start: {error}"),
        }
    }

    /// Serves the repository's `spin.toml` with these variables and these `spin up`
    /// flags (see [`TestApp::start_manifest_with_flags`]).
    pub fn start_with_flags(vars: &[(&str, &str)], flags: &[(&str, &str)]) -> TestApp {
        Self::start_manifest_with_flags(&repo_root().join("spin.toml"), vars, flags)
    }

    /// Like [`TestApp::start_manifest`], but returns the start-up error (as Spin words
    /// it) instead of panicking.
    ///
    /// With `VOICE_EDGE_MAX_INSTANCE_REUSE=N` in the environment, the app is served with
    /// `--max-instance-reuse-count N` (`1`: a fresh instance per request, as on a
    /// platform without instance reuse); `make test-reuse-1` runs the conformance and
    /// integration tests so. Apps started with explicit flags keep their own.
    pub fn try_start_manifest(path: &Path, vars: &[(&str, &str)]) -> Result<TestApp, String> {
        match max_instance_reuse() {
            Some(count) => Self::try_start_manifest_with_flags(
                path,
                vars,
                &[("max-instance-reuse-count", count.to_string().as_str())],
            ),
            None => Self::try_start_manifest_with_flags(path, vars, &[]),
        }
    }

    /// Serves the manifest at `path` with these variables and these `spin up` flags
    /// (names without `--`; our host takes the instance-reuse ones:
    /// `max-instance-reuse-count`, `max-instance-concurrent-reuse-count`,
    /// `request-timeout`, `idle-instance-timeout`).
    pub fn start_manifest_with_flags(
        path: &Path,
        vars: &[(&str, &str)],
        flags: &[(&str, &str)],
    ) -> TestApp {
        require_built_components(path);
        match Self::try_start_manifest_with_flags(path, vars, flags) {
            Ok(app) => app,
            Err(error) => panic!("the app did not start: {error}"),
        }
    }

    /// [`TestApp::start_manifest_with_flags`], returning the start-up error.
    pub fn try_start_manifest_with_flags(
        path: &Path,
        vars: &[(&str, &str)],
        flags: &[(&str, &str)],
    ) -> Result<TestApp, String> {
        match Runtime::current() {
            Runtime::Host => {
                let reuse = InstanceReuse::from_flags(flags.iter().copied())?;
                Self::start_in_host_with(path, vars, reuse)
            }
            Runtime::Spin { bin } => {
                let runtime = ChildRuntime::Spin(bin.clone());
                let options = ChildOptions::with_flags(flags);
                let spin = ChildApp::start(&runtime, path, vars, &options)?;
                Ok(TestApp {
                    addr: spin.addr(),
                    served: Served::Spin(spin),
                })
            }
        }
    }

    /// Serves the manifest at `path` in-process through our host, whatever the run's
    /// runtime (for measurements of the host itself).
    pub fn start_in_host(path: &Path, vars: &[(&str, &str)]) -> Result<TestApp, String> {
        Self::start_in_host_with(path, vars, InstanceReuse::default())
    }

    fn start_in_host_with(
        path: &Path,
        vars: &[(&str, &str)],
        reuse: InstanceReuse,
    ) -> Result<TestApp, String> {
        let options = HostOptions {
            manifest: path.to_path_buf(),
            providers: VariableProviders {
                explicit: vars
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<HashMap<_, _>>(),
                environment: false,
                dotenv: HashMap::new(),
            },
            forward_output: false,
            capture_output: true,
            cache_dir: Some(cache_dir()),
            log_dir: None,
            reuse,
        };
        let app = Arc::new(App::load(&options).map_err(|error| error.to_string())?);
        let runtime = voice_edge_host::runtime();
        let server = runtime
            .block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                Server::start(app.clone(), listener)
            })
            .map_err(|error| format!("{error:#}"))?;
        let addr = server.local_addr();
        Ok(TestApp {
            served: Served::Host {
                server: Some(server),
                app,
            },
            addr,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// The guest's stdout and stderr lines so far, in order (host errors about a
    /// request, such as a trap, are included with a `[host] ` prefix).
    pub fn logs(&self) -> Vec<String> {
        match &self.served {
            Served::Host { app, .. } => app.logs(),
            Served::Spin(spin) => spin.logs(),
        }
    }

    /// The app loaded in-process (for benchmarks: [`App::measure_instantiation`]);
    /// `None` under Spin.
    pub fn app(&self) -> Option<&Arc<App>> {
        match &self.served {
            Served::Host { app, .. } => Some(app),
            Served::Spin(_) => None,
        }
    }

    /// Which runtime serves this app.
    pub fn runtime(&self) -> &'static Runtime {
        Runtime::current()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.logs();
            eprintln!(
                "--- guest output of the app at {} ({} lines) ---",
                self.base_url(),
                logs.len()
            );
            for line in logs {
                eprintln!("{line}");
            }
            eprintln!("--- end of guest output ---");
        }
        if let Served::Host { server, .. } = &mut self.served
            && let Some(server) = server.take()
        {
            voice_edge_host::runtime().block_on(server.shutdown());
        }
    }
}
