//! The external load generator: `wrk` (Debian's package, installed here when missing),
//! replaying pre-signed deliveries over keep-alive connections from a process of its
//! own, as a real sender would, each delivery sent once.
//!
//! The deliveries go in a file, one per line: `webhook-id`, `webhook-timestamp`,
//! `webhook-signature` and the body, separated by tabs. Each wrk thread takes every
//! n-th line; [`SCRIPT`] formats the requests once, then sends them in order. When a
//! thread runs out it resends its last delivery (a duplicate, answered `200`) and the
//! run says so, since its figures then include duplicates.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The Lua side: formats each thread's share of the deliveries once, sends them one
/// after the other, and prints the run's figures as one JSON line at the end.
const SCRIPT: &str = r#"
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local file, target, count = args[1], args[2], tonumber(args[3])
  deliveries = {}
  local index = 0
  for line in io.lines(file) do
    if index % count == id then
      local wid, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      deliveries[#deliveries + 1] = wrk.format("POST", target, {
        ["content-type"] = "application/json",
        ["webhook-id"] = wid,
        ["webhook-timestamp"] = ts,
        ["webhook-signature"] = sig,
      }, body)
    end
    index = index + 1
  end
  cursor = 0
  sent = 0
  exhausted = 0
end

function request()
  if cursor < #deliveries then
    cursor = cursor + 1
    sent = sent + 1
  else
    exhausted = exhausted + 1
  end
  return deliveries[cursor]
end

function done(summary, latency, requests)
  local sent, exhausted = 0, 0
  for _, thread in ipairs(threads) do
    sent = sent + thread:get("sent")
    exhausted = exhausted + thread:get("exhausted")
  end
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"sent":%d,"exhausted":%d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    sent, exhausted))
end
"#;

/// One delivery for the file.
#[derive(Debug, Clone)]
pub struct SignedDelivery {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    /// One line of JSON.
    pub body: String,
}

/// What a wrk run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct WrkRun {
    /// Answers received.
    pub answered: u64,
    pub duration: Duration,
    /// Answers with a status of 400 or more (wrk's "Non-2xx or 3xx" counts these).
    pub non_2xx: u64,
    /// Connect, read, write and timeout errors.
    pub socket_errors: u64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Distinct deliveries sent (requests written, answered or not).
    pub sent: u64,
    /// Requests beyond the deliveries prepared (resends of the last one).
    pub exhausted: u64,
    /// CPU time (user + system) wrk used.
    pub cpu: Duration,
}

impl WrkRun {
    /// Answers per second.
    pub fn rate(&self) -> f64 {
        self.answered as f64 / self.duration.as_secs_f64().max(f64::EPSILON)
    }
}

/// `wrk` on the PATH, installed from Debian's packages when missing (as root).
pub fn ensure_installed() -> Result<PathBuf> {
    if let Some(path) = which("wrk") {
        return Ok(path);
    }
    println!("   (installing wrk, Debian's package, for the external load)");
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        bail!("wrk is not installed: sudo apt-get install wrk");
    }
    let status = Command::new("sh")
        .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null"])
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("apt-get install wrk failed");
    }
    which("wrk").context("wrk is still not on the PATH")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Writes the deliveries file.
pub fn write_deliveries(path: &Path, deliveries: &[SignedDelivery]) -> Result<()> {
    let mut text = String::with_capacity(deliveries.len() * 1200);
    for delivery in deliveries {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            delivery.id, delivery.timestamp, delivery.signature, delivery.body
        ));
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// CPU time (user + system) of the children this process has waited for, so far.
pub fn children_cpu() -> Duration {
    // SAFETY: an all-zero `rusage` is a valid value, and getrusage only writes into
    // the one it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let micros = |t: libc::timeval| t.tv_sec.max(0) as u64 * 1_000_000 + t.tv_usec.max(0) as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// Runs wrk against `addr` for `seconds` over `connections` connections (two threads),
/// replaying `deliveries_file`.
pub fn replay(
    wrk: &Path,
    addr: SocketAddr,
    path: &str,
    deliveries_file: &Path,
    connections: usize,
    seconds: u64,
) -> Result<WrkRun> {
    let threads = connections.clamp(1, 2);
    let script = deliveries_file.with_extension("lua");
    std::fs::write(&script, SCRIPT)?;
    let cpu_before = children_cpu();
    let output = Command::new(wrk)
        .arg(format!("--threads={threads}"))
        .arg(format!("--connections={connections}"))
        .arg(format!("--duration={seconds}s"))
        .arg("--timeout=10s")
        .arg(format!("--script={}", script.display()))
        .arg(format!("http://{addr}{path}"))
        .arg("--")
        .arg(deliveries_file)
        .arg(path)
        .arg(threads.to_string())
        .output()
        .context("running wrk")?;
    let cpu = children_cpu().saturating_sub(cpu_before);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .with_context(|| format!("wrk printed no figures: {stdout}"))?;
    let figures: Value = serde_json::from_str(line).with_context(|| line.to_string())?;
    let number = |name: &str| figures[name].as_u64().unwrap_or(0);
    let micros = |name: &str| Duration::from_micros(number(name));
    Ok(WrkRun {
        answered: number("requests"),
        duration: micros("duration_us"),
        non_2xx: number("non_2xx"),
        socket_errors: number("socket_errors"),
        p50: micros("p50_us"),
        p90: micros("p90_us"),
        p99: micros("p99_us"),
        max: micros("max_us"),
        sent: number("sent"),
        exhausted: number("exhausted"),
        cpu,
    })
}
