//! An app served by real Spin: `spin up -f <manifest> --listen 127.0.0.1:<free port>`
//! as a child process with exactly the variables a test gives (as `SPIN_VARIABLE_*`,
//! so that no secret appears in a process listing), its own log and state directories
//! under `target/spin-test/`, stopped when dropped.
//!
//! Spin's compilation cache (on by default) is shared by every start, so only the first
//! start after a build compiles the components.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pg::repo_root;

/// How long a start may take before it is given up (a cold compile of six components
/// takes about 5 s on 2 cores).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A running `spin up`.
#[derive(Debug)]
pub struct SpinApp {
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

impl SpinApp {
    /// Starts `spin` on `manifest` with `vars`; the error is what Spin printed.
    pub fn start(bin: &Path, manifest: &Path, vars: &[(&str, &str)]) -> Result<SpinApp, String> {
        let mut last_error = String::new();
        // A port picked free can be taken before Spin binds it: try a few.
        for _ in 0..3 {
            match Self::start_once(bin, manifest, vars) {
                Ok(app) => return Ok(app),
                Err(error) if error.contains("Address already in use") => last_error = error,
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    fn start_once(bin: &Path, manifest: &Path, vars: &[(&str, &str)]) -> Result<SpinApp, String> {
        let dir = run_dir();
        std::fs::create_dir_all(dir.join("logs")).map_err(|e| format!("{}: {e}", dir.display()))?;
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let stdout = std::fs::File::create(dir.join("spin.stdout")).map_err(|e| e.to_string())?;
        let stderr = std::fs::File::create(dir.join("spin.stderr")).map_err(|e| e.to_string())?;
        let mut command = Command::new(bin);
        command
            .arg("up")
            .arg("-f")
            .arg(manifest)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--log-dir")
            .arg(dir.join("logs"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            // Component output goes to the log files only, not also to Spin's own.
            .arg("--quiet")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // Exactly the test's variables: none inherited from the environment.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SPIN_VARIABLE_") {
                command.env_remove(name);
            }
        }
        for (name, value) in vars {
            command.env(
                format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
                value,
            );
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut app = SpinApp { child, addr, dir };
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
                            "spin up exited ({status}) before serving:\n{}",
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
                let _ = self.child.kill();
                return Err(format!(
                    "spin up did not serve within {START_TIMEOUT:?}:\n{}",
                    self.spin_output().trim_end()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address Spin listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What Spin itself printed (start-up, request errors, traps).
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

impl Drop for SpinApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
