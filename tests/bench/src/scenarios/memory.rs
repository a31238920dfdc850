//! `memory`: what an instance of a function costs in resident memory, under each
//! runtime, with its default instance reuse and (for Spin) with
//! `--max-instance-reuse-count 1`.
//!
//! The app (`spin.toml`) is started on a database of its own and warmed with one
//! delivery; its process tree's resident memory is read. Then [`HELD`] webhook
//! requests are opened at once and held: each sends its head and the first bytes of
//! its body, so each waits inside an instance for the rest (a function reads its body
//! first). With every request held, the memory is read again; then the bodies are
//! finished (their signatures are wrong: each is answered `401`), and the log lines
//! (one per request, naming its instance) tell how many instances served them. Memory
//! per instance = (held - idle) / instances. With reuse an instance holds up to 16
//! requests at once, so far fewer instances (and less memory) serve the same requests.
//!
//! What it checks: every held request is answered `401`.

use std::collections::HashSet;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result};
use voice_edge_testkit::child::ChildRuntime;

use crate::cpu::rss_of_tree;
use crate::env::{Env, reuse_variants};
use crate::scenario::{Check, Limits, Report, Scenario, Table};

pub const SCENARIO: Scenario = Scenario {
    name: "memory",
    description: "resident memory per live instance: webhook requests held open at once, with and without instance reuse",
    target: "none set; what a burst of requests costs in memory",
    run,
};

/// Requests held open at once.
const HELD: usize = 48;
/// The body each held request announces; the first [`SENT_FIRST`] bytes go at once.
const BODY: usize = 2_000;
const SENT_FIRST: usize = 16;

fn run(runtimes: &[ChildRuntime], _limits: &Limits) -> Result<Report> {
    let variants = reuse_variants(runtimes);
    let mut report = Report {
        table: Table::new(variants.iter().map(|(label, _, _)| label.clone()).collect()),
        ..Report::default()
    };
    for (column, (label, runtime, flags)) in variants.iter().enumerate() {
        let env = Env::start_with_flags(runtime, false, flags)?;
        let addr = env.addr()?;
        let warm = send_whole(addr, b"{}").context("the warm-up request")?;
        report.checks.push(Check::equal(
            &format!("{label}: warm-up answered 401"),
            warm.into(),
            401,
        ));
        std::thread::sleep(Duration::from_millis(300));
        let idle = rss_of_tree(env.app.pid());

        let mut held = Vec::new();
        for _ in 0..HELD {
            let mut stream = TcpStream::connect(addr)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(60)))?;
            stream.write_all(head(addr, BODY).as_bytes())?;
            stream.write_all(&[b' '; SENT_FIRST])?;
            held.push(stream);
        }
        std::thread::sleep(Duration::from_millis(1_500));
        let loaded = rss_of_tree(env.app.pid());

        let mut answered = 0;
        for mut stream in held {
            stream.write_all(&vec![b' '; BODY - SENT_FIRST])?;
            let mut reader = BufReader::new(stream);
            if let Ok(response) = voice_edge_integration::read_response(&mut reader)
                && response.status == 401
            {
                answered += 1;
            }
        }
        report.checks.push(Check::equal(
            &format!("{label}: every held request answered 401"),
            answered,
            HELD as i64,
        ));
        std::thread::sleep(Duration::from_millis(300));
        let instances: HashSet<String> = env
            .app
            .logs()
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| line["function"] == "practice-webhook" && line["status"] == 401)
            .filter_map(|line| line["instance"]["id"].as_str().map(str::to_string))
            .collect();
        // The warm-up's instance may have served held requests too.
        let grown = loaded.saturating_sub(idle);
        report
            .table
            .set("resident MiB, idle (after one request)", column, mib(idle));
        report.table.set(
            &format!("resident MiB, {HELD} requests held"),
            column,
            mib(loaded),
        );
        report.table.set(
            "instances that served them",
            column,
            instances.len().to_string(),
        );
        report.table.set(
            "MiB per instance",
            column,
            format!(
                "{:.2}",
                grown as f64 / 1024.0 / instances.len().max(1) as f64
            ),
        );
        report.table.set(
            "KiB per held request",
            column,
            format!("{:.0}", grown as f64 / HELD as f64),
        );
    }
    report.notes.push(format!(
        "{HELD} POST practice-webhook requests, each announcing {BODY} bytes and sending {SENT_FIRST}, held 1.5 s; resident memory (VmRSS) of the runtime's process tree"
    ));
    Ok(report)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn head(addr: std::net::SocketAddr, length: usize) -> String {
    format!(
        "POST /functions/v1/practice-webhook HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         webhook-id: msg_memory\r\nwebhook-timestamp: 1\r\nwebhook-signature: v1,AAAA\r\n\
         content-length: {length}\r\nconnection: close\r\n\r\n"
    )
}

/// One whole request with `body`; the status.
fn send_whole(addr: std::net::SocketAddr, body: &[u8]) -> Result<u16> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(head(addr, body.len()).as_bytes())?;
    stream.write_all(body)?;
    let mut reader = BufReader::new(stream);
    Ok(voice_edge_integration::read_response(&mut reader)?.status)
}
