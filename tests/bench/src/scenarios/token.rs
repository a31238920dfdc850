//! `token`: `realtime-student-guide-token` minting student-tutor tokens, the OpenAI
//! stand-in answering at once.
//!
//! The rollout flag is at 100 % and many students are seeded, each request coming from
//! the next one round robin (no student goes near the per-minute limit), so every
//! request takes the whole path: JWT check, the rate-limit upsert, the flag read, the
//! `client_secrets` call to the stand-in, the token-session insert and its commit.
//!
//! Three loads: the throughput run over `--connections` keep-alive connections; a
//! latency run over one connection, where nothing queues behind anything; and the
//! stand-in alone, sent the very request the component sends it, over one connection
//! (kept alive, as the host's pooled outbound client keeps it, and new for each request
//! for comparison).
//! What the component and the host add is the latency run minus the stand-in alone
//! (per percentile, and as a share of the mean); the goal is under 2 ms at p99.
//!
//! Checks afterwards: every answer a token; one session row, one counted rate-limit hit
//! and one upstream call per token.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;
use voice_edge_shared::personas::Persona;
use voice_edge_shared::token::openai::{SessionSettings, client_secret_request};

use voice_edge_testkit::child::ChildRuntime;

use crate::env::{Env, STANDIN_API_KEY};
use crate::http1::Request;
use crate::load::{self, Answer, LoadReport};
use crate::scenario::{Check, Limits, Report, Scenario, Table};

pub const SCENARIO: Scenario = Scenario {
    name: "token",
    description: "student-tutor token minting under each runtime, the OpenAI stand-in answering at once",
    target: "what the component and the runtime add to the upstream call: p99 <= 2 ms (1 connection)",
    run,
};

fn run(runtimes: &[ChildRuntime], limits: &Limits) -> Result<Report> {
    let mut report = Report {
        table: Table::new(runtimes.iter().map(|r| r.name().to_string()).collect()),
        ..Report::default()
    };
    for (column, runtime) in runtimes.iter().enumerate() {
        let env = Env::start(runtime, true)?;
        measure(&env, limits, column, &mut report)
            .with_context(|| format!("token under {}", runtime.name()))?;
    }
    report.notes.push(
        "added = the function's latency over one connection minus the stand-in's alone, \
         sent the very request the component sends it (kept alive, as the runtimes' \
         pooled outbound clients keep it), per percentile"
            .into(),
    );
    Ok(report)
}

const PATH: &str = "/functions/v1/realtime-student-guide-token";
const UPSTREAM_PATH: &str = "/v1/realtime/client_secrets";
/// Requests per student over the whole run, well under the limit of 60 a minute.
const REQUESTS_PER_STUDENT: usize = 30;
/// Requests of the one-connection latency run (and of the stand-in alone) at most.
const LATENCY_REQUESTS: usize = 3_000;
/// The warm-up may take longer: the first requests open the host's connection pool.
const WARMUP_LIMIT: Duration = Duration::from_secs(120);

fn measure(env: &Env, limits: &Limits, column: usize, report: &mut Report) -> Result<()> {
    let connections = limits.connections.first().copied().unwrap_or(8);
    let openai = env
        .openai
        .as_ref()
        .ok_or_else(|| anyhow!("the token scenario needs the OpenAI stand-in"))?;
    let mut client = env.client();
    client.execute(
        "UPDATE voice_feature_flags SET enabled = true, rollout_percentage = 100 \
         WHERE flag_name = 'voice_webrtc_migration'",
        &[],
    )?;

    let latency_requests = limits.requests.min(LATENCY_REQUESTS);
    let total = limits.warmup + limits.requests + latency_requests;
    let students = seed_students(&mut client, total.div_ceil(REQUESTS_PER_STUDENT))?;
    let addr = env.addr()?;
    let body = json!({"persona": "student-tutor", "language": "en"}).to_string();
    let requests: Vec<Request> = (0..total)
        .map(|index| {
            let authorization = format!(
                "Bearer {}",
                student_jwt(&env.jwt_secret, students[index % students.len()])
            );
            Request::post(
                addr,
                PATH,
                &[
                    ("content-type", "application/json"),
                    ("authorization", authorization.as_str()),
                ],
                body.as_bytes(),
            )
        })
        .collect();
    let (warmup_requests, rest) = requests.split_at(limits.warmup);
    let (throughput_requests, latency_run_requests) = rest.split_at(limits.requests);

    let warmup = load::drive(addr, warmup_requests, connections, WARMUP_LIMIT);
    let throughput = load::drive(
        addr,
        throughput_requests,
        connections,
        Duration::from_secs_f64(limits.seconds),
    );
    let latency = load::drive(
        addr,
        latency_run_requests,
        1,
        Duration::from_secs_f64(limits.seconds),
    );

    let tokens = [&warmup, &throughput, &latency]
        .iter()
        .map(|report| {
            report
                .answers
                .iter()
                .filter(|answer| is_token(answer))
                .count()
        })
        .sum::<usize>() as i64;
    let answered = (warmup.answers.len() + throughput.answers.len() + latency.answers.len()) as i64;
    let upstream_calls = openai.requests_to(UPSTREAM_PATH).len() as i64;
    openai.clear();

    let upstream = upstream_alone(
        openai.address(),
        latency.answers.len().max(1),
        false,
        limits,
    )?;
    let upstream_fresh =
        upstream_alone(openai.address(), latency.answers.len().max(1), true, limits)?;
    let upstream_ok = upstream
        .answers
        .iter()
        .chain(&upstream_fresh.answers)
        .filter(|answer| matches!(&answer.result, Ok(response) if response.status == 200))
        .count();

    let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
    let added = |p: f64| ms(latency.percentile(p)) - ms(upstream.percentile(p));
    let (ours_mean, upstream_mean) = (mean_ms(&latency), mean_ms(&upstream));
    let table = &mut report.table;
    table.set(
        &format!("tokens/s ({connections} connections)"),
        column,
        format!("{:.0}", throughput.rate()),
    );
    table.set(
        "1 connection: p50 ms",
        column,
        format!("{:.2}", ms(latency.percentile(50.0))),
    );
    table.set(
        "1 connection: p99 ms",
        column,
        format!("{:.2}", ms(latency.percentile(99.0))),
    );
    table.set(
        "stand-in alone: p50 / p99 ms",
        column,
        format!(
            "{:.2} / {:.2}",
            ms(upstream.percentile(50.0)),
            ms(upstream.percentile(99.0))
        ),
    );
    table.set("added: p50 ms", column, format!("{:.2}", added(50.0)));
    table.set("added: p99 ms", column, format!("{:.2}", added(99.0)));
    table.set(
        "added: share of the mean request",
        column,
        format!(
            "{:.0} %",
            100.0 * (ours_mean - upstream_mean) / ours_mean.max(f64::EPSILON)
        ),
    );
    let name = env.runtime.name();
    report.notes.push(format!(
        "{name}: {} requests at 1 connection, {} at {connections}; the stand-in alone over a new \
         connection per request (what an unpooled client would pay): p50 {:.2} ms, p99 {:.2} ms; \
         {} students, {} requests each at most; synchronous_commit={}",
        latency.answers.len(),
        throughput.answers.len(),
        ms(upstream_fresh.percentile(50.0)),
        ms(upstream_fresh.percentile(99.0)),
        students.len(),
        REQUESTS_PER_STUDENT,
        setting(&mut client, "synchronous_commit")?
    ));

    let count = |client: &mut postgres::Client, sql: &str| -> Result<i64> {
        Ok(client
            .query_one(sql, &[])
            .with_context(|| sql.to_string())?
            .get(0))
    };
    let checks = vec![
        Check::equal("answers that are not a token", answered - tokens, 0),
        Check::equal(
            "realtime_token_sessions rows = tokens",
            count(&mut client, "SELECT count(*) FROM realtime_token_sessions")?,
            tokens,
        ),
        Check::equal(
            "rate-limit hits counted = tokens",
            count(
                &mut client,
                "SELECT coalesce(sum(count), 0)::int8 FROM rate_limits WHERE bucket_key LIKE 'mint:user:%'",
            )?,
            tokens,
        ),
        Check::equal("client_secrets calls = tokens", upstream_calls, tokens),
        Check::equal(
            "stand-in alone: answers that are not 200",
            (upstream.answers.len() + upstream_fresh.answers.len() - upstream_ok) as i64,
            0,
        ),
    ];
    report.checks.extend(checks.into_iter().map(|check| Check {
        name: format!("{name}: {}", check.name),
        ..check
    }));
    Ok(())
}

/// The stand-in sent what the component sends it, over one keep-alive connection, or
/// over a new connection each time (`connection: close`) when `fresh`.
fn upstream_alone(
    addr: std::net::SocketAddr,
    requests: usize,
    fresh: bool,
    limits: &Limits,
) -> Result<LoadReport> {
    let settings = SessionSettings {
        model: voice_edge_shared::config::DEFAULT_OPENAI_REALTIME_MODEL.into(),
        voice: voice_edge_shared::config::DEFAULT_REALTIME_VOICE.into(),
        instructions: Persona::StudentTutor.instructions("en", "English"),
        ttl_seconds: voice_edge_shared::config::DEFAULT_TOKEN_TTL_SECONDS,
    };
    let outbound = client_secret_request(&format!("http://{addr}"), STANDIN_API_KEY, &settings);
    let mut headers: Vec<(&str, &str)> = outbound
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    if fresh {
        headers.push(("connection", "close"));
    }
    let request = Request::post(addr, UPSTREAM_PATH, &headers, &outbound.body);
    let warmup = vec![request.clone(); 200];
    load::drive(addr, &warmup, 1, WARMUP_LIMIT);
    Ok(load::drive(
        addr,
        &vec![request; requests],
        1,
        Duration::from_secs_f64(limits.seconds),
    ))
}

fn is_token(answer: &Answer) -> bool {
    let Ok(response) = &answer.result else {
        return false;
    };
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    response.status == 200
        && body.as_ref().is_some_and(|body| {
            body["mode"] == "realtime"
                && body["token"]
                    .as_str()
                    .is_some_and(|token| token.starts_with("ek_"))
        })
}

fn mean_ms(report: &LoadReport) -> f64 {
    let answers = &report.answers;
    if answers.is_empty() {
        return 0.0;
    }
    let total: f64 = answers
        .iter()
        .map(|answer| answer.latency.as_secs_f64())
        .sum();
    total * 1e3 / answers.len() as f64
}

/// `count` students in `auth.users`.
fn seed_students(client: &mut postgres::Client, count: usize) -> Result<Vec<Uuid>> {
    let rows = client.query(
        "INSERT INTO auth.users (id) SELECT gen_random_uuid() FROM generate_series(1, $1::int4) \
         RETURNING id",
        &[&(count as i32)],
    )?;
    Ok(rows.iter().map(|row| row.get::<_, Uuid>("id")).collect())
}

/// A signed-in student's HS256 token, valid for an hour.
fn student_jwt(secret: &str, student: Uuid) -> String {
    let now = chrono::Utc::now().timestamp();
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let signing_input = format!(
        "{}.{}",
        encode(&json!({"alg": "HS256", "typ": "JWT"})),
        encode(&json!({
            "sub": student, "role": "authenticated", "aud": "authenticated",
            "iat": now, "exp": now + 3600,
        }))
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn setting(client: &mut postgres::Client, name: &str) -> Result<String> {
    Ok(client.query_one(&format!("SHOW {name}"), &[])?.get(0))
}
