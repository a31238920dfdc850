//! Which runtime serves the app in a test run: our host in-process (the default), or
//! real Spin as a child process.
//!
//! `VOICE_EDGE_RUNTIME=spin` (what `make test-spin` sets) runs every test of the
//! conformance, integration and bench crates against `spin up`; the Spin binary is
//! `SPIN_BIN`, else `spin` on the `PATH`. Unset or `host`: the in-process host.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The runtime a test app is served by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// `voice-edge-host`, in the test process.
    Host,
    /// Real Spin: `spin up` as a child process.
    Spin {
        /// The `spin` binary.
        bin: PathBuf,
    },
}

/// The environment variable that picks the runtime (`host` or `spin`).
pub const RUNTIME_VAR: &str = "VOICE_EDGE_RUNTIME";

impl Runtime {
    /// The runtime of this test process, read once from [`RUNTIME_VAR`]. Panics with
    /// a clear message when Spin is asked for and cannot be found or run.
    pub fn current() -> &'static Runtime {
        static CURRENT: OnceLock<Runtime> = OnceLock::new();
        CURRENT.get_or_init(|| match std::env::var(RUNTIME_VAR).as_deref() {
            Err(_) | Ok("") | Ok("host") => Runtime::Host,
            Ok("spin") => {
                let bin = find_spin().unwrap_or_else(|| {
                    panic!(
                        "{RUNTIME_VAR}=spin, but no Spin was found: set SPIN_BIN or put `spin` \
                         on the PATH (../shared/tools/install-spin.sh installs one)"
                    )
                });
                Runtime::Spin { bin }
            }
            Ok(other) => panic!("{RUNTIME_VAR}={other}: expected `host` or `spin`"),
        })
    }

    /// Whether this run is served by real Spin.
    pub fn is_spin(&self) -> bool {
        matches!(self, Runtime::Spin { .. })
    }

    /// `host`, or Spin's own `spin --version` line.
    pub fn describe(&self) -> String {
        match self {
            Runtime::Host => "voice-edge-host (in-process)".to_string(),
            Runtime::Spin { bin } => {
                spin_version(bin).unwrap_or_else(|| format!("{} (version unknown)", bin.display()))
            }
        }
    }
}

/// `SPIN_BIN`, else `spin` on the `PATH`, provided it runs.
pub fn find_spin() -> Option<PathBuf> {
    let candidate = match std::env::var_os("SPIN_BIN").filter(|bin| !bin.is_empty()) {
        Some(bin) => PathBuf::from(bin),
        None => std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("spin"))
                .find(|bin| bin.is_file())
        })?,
    };
    spin_version(&candidate).map(|_| candidate)
}

/// The first line of `spin --version`.
pub fn spin_version(bin: &std::path::Path) -> Option<String> {
    let output = Command::new(bin).arg("--version").output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines().next().map(|line| line.trim().to_string())
}
