//! `voice-edge-bench [all | <scenario>…] [--seconds S] [--connections C[,C…]]
//! [--requests N] [--warmup W] [--runtime host|spin|both]`: runs benchmark scenarios under
//! our host and real Spin side by side and prints their numbers and checks. See the
//! crate documentation (`src/lib.rs`).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use voice_edge_bench::env::runtimes;
use voice_edge_bench::scenario::{Limits, Scenario};
use voice_edge_bench::scenarios::ALL;

/// Deliveries are signed before the clock starts and Standard Webhooks refuses
/// timestamps older than five minutes, so a measured run stays well under that.
const MAX_SECONDS: f64 = 150.0;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("voice-edge-bench: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn usage() -> String {
    let names: Vec<String> = ALL
        .iter()
        .map(|scenario| format!("  {:<12} {}", scenario.name, scenario.description))
        .collect();
    let defaults = Limits::default();
    format!(
        "usage: voice-edge-bench [all | SCENARIO…] [--seconds S] [--connections C[,C…]] [--requests N] [--warmup W] [--runtime host|spin|both]\n\
         defaults: --seconds {} --connections {} --requests {} --warmup {} --runtime both (spin when found)\nscenarios:\n{}",
        defaults.seconds,
        defaults
            .connections
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        defaults.requests,
        defaults.warmup,
        names.join("\n")
    )
}

/// Runs the chosen scenarios; `false` when a check failed.
fn run() -> Result<bool> {
    let mut limits = Limits::default();
    let mut chosen: Vec<&Scenario> = Vec::new();
    let mut which = "both".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<String> {
            args.next()
                .with_context(|| format!("{name} needs a value\n{}", usage()))
        };
        match arg.as_str() {
            "--requests" => limits.requests = value("--requests")?.parse()?,
            "--seconds" => limits.seconds = value("--seconds")?.parse()?,
            "--connections" => {
                limits.connections = value("--connections")?
                    .split(',')
                    .map(|count| count.trim().parse::<usize>())
                    .collect::<Result<_, _>>()?;
            }
            "--warmup" => limits.warmup = value("--warmup")?.parse()?,
            "--runtime" => which = value("--runtime")?,
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(true);
            }
            "all" => chosen.extend(ALL.iter()),
            name => match ALL.iter().find(|scenario| scenario.name == name) {
                Some(scenario) => chosen.push(scenario),
                None => bail!("unknown scenario `{name}`\n{}", usage()),
            },
        }
    }
    if chosen.is_empty() {
        chosen.extend(ALL.iter());
    }
    if limits.seconds > MAX_SECONDS {
        bail!("--seconds is at most {MAX_SECONDS}");
    }
    if limits.connections.is_empty() || limits.connections.contains(&0) {
        bail!("--connections needs counts above zero");
    }
    let mut runtimes = runtimes()?;
    match which.as_str() {
        "both" => {}
        "host" | "spin" => runtimes.retain(|runtime| runtime.name() == which),
        other => bail!("--runtime {other}: expected host, spin or both"),
    }
    if which == "spin" && runtimes.is_empty() {
        bail!("--runtime spin, but no Spin was found (SPIN_BIN, or spin on the PATH)");
    }

    println!("voice-edge-bench on {}", machine());
    println!(
        "runtimes: {}",
        runtimes.iter().map(describe).collect::<Vec<_>>().join("; ")
    );
    if !runtimes.iter().any(|runtime| runtime.name() == "spin") {
        println!("(no Spin found: SPIN_BIN or spin on the PATH; only our host is measured)");
    }
    let mut all_passed = true;
    for scenario in chosen {
        println!("\n== {}: {}", scenario.name, scenario.description);
        println!("   goal: {}", scenario.target);
        let report = (scenario.run)(&runtimes, &limits)?;
        println!("{}", report.table.render());
        for note in &report.notes {
            println!("   {note}");
        }
        for check in &report.checks {
            let verdict = if check.passed { "ok  " } else { "FAIL" };
            println!("   check {verdict} {}: {}", check.name, check.detail);
            all_passed &= check.passed;
        }
    }
    Ok(all_passed)
}

/// `host: <path>` or `spin: <spin --version>`.
fn describe(runtime: &voice_edge_testkit::child::ChildRuntime) -> String {
    use voice_edge_testkit::child::ChildRuntime;
    match runtime {
        ChildRuntime::Host(bin) => format!("host: {}", bin.display()),
        ChildRuntime::Spin(bin) => format!(
            "spin: {}",
            voice_edge_testkit::runtime::spin_version(bin)
                .unwrap_or_else(|| bin.display().to_string())
        ),
    }
}

/// The CPU model, the cores this process may use, and the date, for BENCHMARKS.md.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {date}")
}
