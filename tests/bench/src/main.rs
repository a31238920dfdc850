//! `voice-edge-bench [all | <scenario>…] [--requests N] [--seconds S] [--connections C]
//! [--warmup W]`: runs benchmark scenarios and prints their numbers and checks. See the
//! crate documentation (`src/lib.rs`).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use voice_edge_bench::env::Env;
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
        .map(|scenario| format!("  {:<10} {}", scenario.name, scenario.description))
        .collect();
    let defaults = Limits::default();
    format!(
        "usage: voice-edge-bench [all | SCENARIO…] [--requests N] [--seconds S] [--connections C] [--warmup W]\n\
         defaults: --requests {} --seconds {} --connections {} --warmup {}\nscenarios:\n{}",
        defaults.requests,
        defaults.seconds,
        defaults.connections,
        defaults.warmup,
        names.join("\n")
    )
}

/// Runs the chosen scenarios; `false` when a check failed.
fn run() -> Result<bool> {
    let mut limits = Limits::default();
    let mut chosen: Vec<&Scenario> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<String> {
            args.next()
                .with_context(|| format!("{name} needs a value\n{}", usage()))
        };
        match arg.as_str() {
            "--requests" => limits.requests = value("--requests")?.parse()?,
            "--seconds" => limits.seconds = value("--seconds")?.parse()?,
            "--connections" => limits.connections = value("--connections")?.parse()?,
            "--warmup" => limits.warmup = value("--warmup")?.parse()?,
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

    println!("voice-edge-bench on {}", machine());
    let mut all_passed = true;
    for scenario in chosen {
        println!("\n== {}: {}", scenario.name, scenario.description);
        let env = Env::start(scenario.needs_openai)?;
        let outcome = (scenario.run)(&env, &limits)?;
        let load = &outcome.load;
        let ms = |duration: std::time::Duration| duration.as_secs_f64() * 1e3;
        println!(
            "   {} requests over {} keep-alive connections in {:.2} s: {:.0} /s",
            load.answers.len(),
            load.connections,
            load.elapsed.as_secs_f64(),
            load.rate()
        );
        println!(
            "   latency p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(load.percentile(50.0)),
            ms(load.percentile(95.0)),
            ms(load.percentile(99.0)),
            ms(load.max())
        );
        println!("   target: {}", scenario.target);
        for note in &outcome.notes {
            println!("   {note}");
        }
        for check in &outcome.checks {
            let verdict = if check.passed { "ok  " } else { "FAIL" };
            println!("   check {verdict} {}: {}", check.name, check.detail);
            all_passed &= check.passed;
        }
    }
    Ok(all_passed)
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
