//! `upstream`: token requests that arrive together while OpenAI is slow.
//!
//! The OpenAI stand-in waits [`UPSTREAM`] before answering `client_secrets`; [`CALLERS`]
//! students (each with a JWT of their own, the rollout at 100 %) post to
//! `realtime-student-guide-token` at the same moment, once per round, [`ROUNDS`] rounds.
//! Each request needs the upstream's time and little else, so with enough instances
//! every request takes about [`UPSTREAM`]. The functions' host calls are synchronous
//! and hold their instance while they wait (README, "How the functions run"), so where
//! the runtime sends several requests into one instance (Spin 4.1's default: up to 16
//! at once) they wait for each other. The table shows it beside
//! `--max-instance-concurrent-reuse-count 1` and `--max-instance-reuse-count 1`.
//!
//! What it checks: every request gets a token.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use serde_json::json;
use voice_edge_integration::{AuthUser, bearer, send, user_jwt};
use voice_edge_openai_standin::Endpoint;
use voice_edge_testkit::child::ChildRuntime;

use crate::env::{Env, reuse_variants};
use crate::scenario::{Check, Limits, Report, Scenario, Table};

pub const SCENARIO: Scenario = Scenario {
    name: "upstream",
    description: "token requests arriving together while OpenAI takes 300 ms: does one wait for another?",
    target: "none set; each request should take about the upstream's time",
    run,
};

const CALLERS: usize = 16;
const ROUNDS: usize = 5;
const UPSTREAM: Duration = Duration::from_millis(300);
const ROUTE: &str = "/functions/v1/realtime-student-guide-token";

fn run(runtimes: &[ChildRuntime], _limits: &Limits) -> Result<Report> {
    let variants = reuse_variants(runtimes);
    let mut report = Report {
        table: Table::new(variants.iter().map(|(label, _, _)| label.clone()).collect()),
        ..Report::default()
    };
    for (column, (label, runtime, flags)) in variants.iter().enumerate() {
        let env = Env::start_with_flags(runtime, true, flags)?;
        env.client().execute(
            "UPDATE voice_feature_flags SET enabled = true, rollout_percentage = 100 \
             WHERE flag_name = 'voice_webrtc_migration'",
            &[],
        )?;
        let tokens: Vec<String> = (0..CALLERS)
            .map(|_| {
                user_jwt(
                    AuthUser::with_email("bench.example").insert(&env.db),
                    &env.jwt_secret,
                )
            })
            .collect();
        let openai = env.openai.as_ref().ok_or_else(|| anyhow!("no stand-in"))?;
        let url = format!("http://{}{ROUTE}", env.addr()?);
        let body = json!({"persona": "student-tutor", "language": "de"}).to_string();
        // One request first, so that an instance is warm, as under steady traffic.
        send(
            "POST",
            &url,
            &[
                ("content-type", "application/json"),
                ("authorization", &bearer(&tokens[0])),
            ],
            body.as_bytes(),
        );
        openai.set_delay(Endpoint::ClientSecrets, UPSTREAM);
        let mut times = Vec::new();
        let mut tokens_given = 0;
        for _ in 0..ROUNDS {
            let round: Vec<(u16, Duration)> = std::thread::scope(|scope| {
                let threads: Vec<_> = tokens
                    .iter()
                    .map(|token| {
                        let (url, body) = (&url, &body);
                        scope.spawn(move || {
                            let authorization = bearer(token);
                            let started = Instant::now();
                            let answer = send(
                                "POST",
                                url,
                                &[
                                    ("content-type", "application/json"),
                                    ("authorization", &authorization),
                                ],
                                body.as_bytes(),
                            );
                            (answer.status, started.elapsed())
                        })
                    })
                    .collect();
                threads.into_iter().map(|t| t.join().unwrap()).collect()
            });
            tokens_given += round.iter().filter(|(status, _)| *status == 200).count();
            times.extend(round.into_iter().map(|(_, took)| took));
            std::thread::sleep(Duration::from_millis(200));
        }
        times.sort();
        let at = |share: f64| times[((times.len() - 1) as f64 * share).round() as usize];
        let ms = |took: Duration| format!("{:.0}", took.as_secs_f64() * 1e3);
        report.table.set("fastest ms", column, ms(times[0]));
        report.table.set("median ms", column, ms(at(0.5)));
        report.table.set("p90 ms", column, ms(at(0.9)));
        report
            .table
            .set("slowest ms", column, ms(times[times.len() - 1]));
        report.checks.push(Check::equal(
            &format!("{label}: every request got a token"),
            tokens_given as i64,
            (CALLERS * ROUNDS) as i64,
        ));
    }
    report.notes.push(format!(
        "{CALLERS} students at once, {ROUNDS} rounds 200 ms apart, the stand-in answering client_secrets after {} ms",
        UPSTREAM.as_millis()
    ));
    Ok(report)
}
