//! `coldstart`: from spawning the host binary to its first successful response.
//!
//! `target/release/voice-edge-host -f spin.toml --listen 127.0.0.1:<free port>` is
//! started with the scenario's database and secrets as `SPIN_VARIABLE_*`, and
//! `GET /functions/v1/health` is polled until it answers `200` (which includes opening
//! the first Postgres connection, as a real first request would). Two series: with an
//! empty compiled-code cache (`--cache-dir` fresh each run: every component compiled by
//! Cranelift) and with the cache the first of those runs filled (components
//! deserialised). Each run's process is killed before the next starts.
//!
//! What it checks: every run answered. No load is applied; the load lines printed for
//! this scenario are empty on purpose. Spin 4.1 on this kind of machine (SPIN.md):
//! 0.3–0.4 s compiling afresh, about 0.05 s with its cache.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use voice_edge_testkit::pg::repo_root;

use crate::env::Env;
use crate::load;
use crate::scenario::{Check, Limits, Outcome, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "coldstart",
    description: "spawn the host binary, time to the first 200 from health; fresh compile and compiled-code cache (no load)",
    needs_openai: false,
    target: "Spin 4.1 here: 0.3-0.4 s compiling afresh, ~0.05 s cached",
    run,
};

/// Runs per series.
const FRESH_RUNS: usize = 3;
const CACHED_RUNS: usize = 5;
/// A run that has not answered by then has failed.
const DEADLINE: Duration = Duration::from_secs(60);

/// The newer of the host binary `make build` leaves and the one cargo's `host` profile
/// built, so that a run after a plain `cargo build --profile host` measures that build.
fn host_binary() -> Result<PathBuf> {
    let root = repo_root();
    [
        "target/release/voice-edge-host",
        "target/host/voice-edge-host",
    ]
    .iter()
    .map(|candidate| root.join(candidate))
    .filter_map(|path| {
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
        Some((modified, path))
    })
    .max()
    .map(|(_, path)| path)
    .context("voice-edge-host is not built: run make build")
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One `GET path` with `connection: close`; the status code, if the server answered.
fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Kills the child when dropped, so a failed run leaves no host behind.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the host with `cache_dir` and returns the time to the first `200` from health.
fn cold_start(env: &Env, binary: &Path, cache_dir: &Path) -> Result<Duration> {
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut command = Command::new(binary);
    command
        .current_dir(repo_root())
        .args([
            "-f",
            "spin.toml",
            "--listen",
            &addr.to_string(),
            "--cache-dir",
        ])
        .arg(cache_dir)
        .env("SPIN_VARIABLE_SUPABASE_JWT_SECRET", &env.jwt_secret)
        .env(
            "SPIN_VARIABLE_CLASSCONNECT_WEBHOOK_SECRET",
            &env.webhook_secret,
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in env.db.app_vars() {
        command.env(format!("SPIN_VARIABLE_{}", name.to_uppercase()), value);
    }
    let started = Instant::now();
    let mut child = Spawned(
        command
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?,
    );
    loop {
        if get_status(addr, "/functions/v1/health") == Some(200) {
            return Ok(started.elapsed());
        }
        if let Some(status) = child.0.try_wait()? {
            bail!("the host exited ({status}) before answering");
        }
        if started.elapsed() > DEADLINE {
            bail!("no answer within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `min / median / max` of a series, in milliseconds.
fn summary(samples: &[Duration]) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "min {:.0} ms, median {:.0} ms, max {:.0} ms over {} runs",
        ms(sorted[0]),
        ms(sorted[sorted.len() / 2]),
        ms(sorted[sorted.len() - 1]),
        sorted.len()
    )
}

fn run(env: &Env, _limits: &Limits) -> Result<Outcome> {
    let binary = host_binary()?;
    let scratch = repo_root().join(format!("target/bench-coldstart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);

    let mut fresh = Vec::new();
    let mut failures = Vec::new();
    for run in 0..FRESH_RUNS {
        let cache = scratch.join(format!("fresh-{run}"));
        match cold_start(env, &binary, &cache) {
            Ok(elapsed) => fresh.push(elapsed),
            Err(error) => failures.push(format!("fresh run {run}: {error:#}")),
        }
    }
    // The first fresh run filled its cache; every cached run reuses it.
    let warm_cache = scratch.join("fresh-0");
    let mut cached = Vec::new();
    for run in 0..CACHED_RUNS {
        match cold_start(env, &binary, &warm_cache) {
            Ok(elapsed) => cached.push(elapsed),
            Err(error) => failures.push(format!("cached run {run}: {error:#}")),
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);

    let mut notes = Vec::new();
    if !fresh.is_empty() {
        notes.push(format!(
            "first 200 after spawn, compiling afresh: {}",
            summary(&fresh)
        ));
    }
    if !cached.is_empty() {
        notes.push(format!(
            "first 200 after spawn, compiled-code cache: {}",
            summary(&cached)
        ));
    }
    notes.push(format!("host binary: {}", binary.display()));
    notes.push("reproduce: cargo run --profile host -p voice-edge-bench --bin voice-edge-bench -- coldstart".into());
    let checks = vec![Check {
        name: "every run answered".into(),
        passed: failures.is_empty(),
        detail: if failures.is_empty() {
            format!("{} runs", FRESH_RUNS + CACHED_RUNS)
        } else {
            failures.join("; ")
        },
    }];
    let load = load::drive(env.addr()?, &[], 1, Duration::ZERO);
    Ok(Outcome {
        load,
        notes,
        checks,
    })
}
