//! An app served by a runtime in a process of its own: `spin up -f <manifest> --listen
//! 127.0.0.1:<free port>` (real Spin) or `voice-edge-host up` with the same flags (our
//! host, for benchmarks that measure it from outside), with exactly the variables a
//! test gives (as `SPIN_VARIABLE_*`, so that no secret appears in a process listing),
//! its own log (and, for Spin, state) directory under `target/spin-test/`, stopped when
//! dropped.
//!
//! Spin's compilation cache (on by default) is shared by every start, so only the first
//! start after a build compiles the components; [`ChildOptions::no_cache`] turns it
//! off (for cold-start measurements), as `--disable-cache` does.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pg::repo_root;

/// How long a start may take before it is given up (a cold compile of six components
/// takes about 5 s on 2 cores).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Which runtime a child process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildRuntime {
    /// Real Spin: the `spin` binary.
    Spin(PathBuf),
    /// Our host: the `voice-edge-host` binary.
    Host(PathBuf),
}

impl ChildRuntime {
    /// `spin` or `host`.
    pub fn name(&self) -> &'static str {
        match self {
            ChildRuntime::Spin(_) => "spin",
            ChildRuntime::Host(_) => "host",
        }
    }

    fn binary(&self) -> &Path {
        match self {
            ChildRuntime::Spin(bin) | ChildRuntime::Host(bin) => bin,
        }
    }
}

/// How to start a child app beyond its variables.
#[derive(Debug, Clone, Default)]
pub struct ChildOptions {
    /// Compile every component afresh (Spin's `--disable-cache`; our host without a
    /// cache directory).
    pub no_cache: bool,
    /// Further `spin up` flags and their values (without `--`), e.g.
    /// `("max-instance-reuse-count", "1")`; both runtimes take Spin's flags.
    pub flags: Vec<(String, String)>,
}

/// A running app in a process of its own.
impl ChildOptions {
    /// The defaults, with these `spin up` flags (names without `--`).
    pub fn with_flags(flags: &[(&str, &str)]) -> ChildOptions {
        ChildOptions {
            flags: flags
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            ..ChildOptions::default()
        }
    }
}

#[derive(Debug)]
pub struct ChildApp {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

fn run_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let unique = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
    target.join("spin-test").join(unique)
}

/// A port nobody listens on right now.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl ChildApp {
    /// Starts `runtime` on `manifest` with `vars`; the error is what the runtime printed.
    pub fn start(
        runtime: &ChildRuntime,
        manifest: &Path,
        vars: &[(&str, &str)],
        options: &ChildOptions,
    ) -> Result<ChildApp, String> {
        let mut last_error = String::new();
        // A port picked free can be taken before the runtime binds it: try a few.
        for _ in 0..3 {
            match Self::start_once(runtime, manifest, vars, options) {
                Ok(app) => return Ok(app),
                Err(error) if error.contains("Address already in use") => last_error = error,
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    fn start_once(
        runtime: &ChildRuntime,
        manifest: &Path,
        vars: &[(&str, &str)],
        options: &ChildOptions,
    ) -> Result<ChildApp, String> {
        let dir = run_dir();
        std::fs::create_dir_all(dir.join("logs")).map_err(|e| format!("{}: {e}", dir.display()))?;
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let stdout = std::fs::File::create(dir.join("spin.stdout")).map_err(|e| e.to_string())?;
        let stderr = std::fs::File::create(dir.join("spin.stderr")).map_err(|e| e.to_string())?;
        let bin = runtime.binary();
        let mut command = Command::new(bin);
        command
            .arg("up")
            .arg("-f")
            .arg(manifest)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--log-dir")
            .arg(dir.join("logs"))
            // Component output goes to the log files only, not also to the runtime's own.
            .arg("--quiet")
            .args(
                options
                    .flags
                    .iter()
                    .flat_map(|(name, value)| [format!("--{name}"), value.clone()]),
            )
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        match (runtime, options.no_cache) {
            (ChildRuntime::Spin(_), no_cache) => {
                command.arg("--state-dir").arg(dir.join("state"));
                if no_cache {
                    command.arg("--disable-cache");
                }
            }
            // Our host keeps compiled code only where --cache-dir says; a directory of
            // the run's own starts empty.
            (ChildRuntime::Host(_), true) => {
                command.arg("--cache-dir").arg(dir.join("cache"));
            }
            (ChildRuntime::Host(_), false) => {}
        }
        // Exactly the test's variables: none inherited from the environment.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SPIN_VARIABLE_") {
                command.env_remove(name);
            }
        }
        // The runtime as production runs it: with `RUST_BACKTRACE` set (as it often is
        // in a developer's shell or CI), Spin captures a backtrace with every error it
        // makes while serving, which cost it about 0.2 ms of CPU per webhook delivery.
        command
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE");
        for (name, value) in vars {
            command.env(
                format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
                value,
            );
        }
        // A process group of its own: `spin up` runs its trigger as a child process, and
        // stopping the app must stop both.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut app = ChildApp { child, addr, dir };
        app.wait_until_serving()?;
        Ok(app)
    }

    fn wait_until_serving(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let output = self.spin_output();
                // Spin's own error line, as the host's start-up error reads.
                return Err(
                    match output.lines().find_map(|line| line.strip_prefix("Error: ")) {
                        Some(error) => error.to_string(),
                        None => format!(
                            "the app exited ({status}) before serving:\n{}",
                            output.trim_end()
                        ),
                    },
                );
            }
            let serving = std::fs::read_to_string(self.dir.join("spin.stdout"))
                .is_ok_and(|out| out.contains("Serving http://"));
            if serving && TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                self.stop();
                return Err(format!(
                    "the app did not serve within {START_TIMEOUT:?}:\n{}",
                    self.spin_output().trim_end()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address the app listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id of the runtime (for CPU accounting).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the runtime itself printed (start-up, request errors, traps).
    pub fn spin_output(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}{}", read("spin.stdout"), read("spin.stderr"))
    }

    /// The components' stdout and stderr lines, component by component (Spin writes
    /// each to `<log-dir>/<component>_stdout.txt` and `_stderr.txt`), then Spin's own
    /// error lines with a `[host] ` prefix, as the in-process host marks them.
    pub fn logs(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("logs"))
            .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
            .unwrap_or_default();
        files.sort();
        let mut lines: Vec<String> = files
            .iter()
            .flat_map(|file| {
                std::fs::read_to_string(file)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        let spin_errors = std::fs::read_to_string(self.dir.join("spin.stderr")).unwrap_or_default();
        lines.extend(spin_errors.lines().map(|line| format!("[host] {line}")));
        lines
    }
}

impl ChildApp {
    /// Stops the app: SIGTERM (on which `spin up` stops its trigger process too), then,
    /// if it has not exited within five seconds, SIGKILL to its whole process group.
    fn stop(&mut self) {
        let group = -(self.child.id() as i32);
        // SAFETY: kill has no memory effects; a negative pid names the process group
        // the child leads (it was spawned with `process_group(0)`).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                // The trigger may outlive `spin up` by a moment: stop what is left.
                unsafe { libc::kill(group, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for ChildApp {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
