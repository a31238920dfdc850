//! Instance reuse, as Spin 4.1 does it and as our host must: a WASIp3 component
//! (`reuse-probe`, spin-sdk 7, `wasi:http/handler@0.3.0`) keeps its instance across
//! requests, sequential and concurrent, within Spin's limits and flags
//! (`--max-instance-reuse-count`, `--max-instance-concurrent-reuse-count`,
//! `--idle-instance-timeout`, `--request-timeout`); a WASIp2 component (the
//! `conformance-probe`) still gets a fresh instance per request. The app is
//! `tests/components/reuse-probe/spin.toml`. Every test runs under both runtimes
//! (`VOICE_EDGE_RUNTIME=spin` for real Spin) and checks answers, never timings.
//!
//! Needs `cargo build --target wasm32-wasip2 --release -p reuse-probe -p conformance-probe`
//! (or `make build-components`) first.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::{get, get_json};
use voice_edge_testkit::app::TestApp;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../components/reuse-probe/spin.toml")
}

fn start(flags: &[(&str, &str)]) -> TestApp {
    TestApp::start_manifest_with_flags(&manifest(), &[], flags)
}

/// What the probe answered: the instance's id, how many requests it has started and
/// the most it has had in progress at once.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Served {
    instance: String,
    served: u64,
    peak: u64,
}

fn probe(app: &TestApp, wait_ms: u64) -> Served {
    let answer = get_json(&app.url(&format!("/p3/?wait_ms={wait_ms}")));
    Served {
        instance: answer["instance"]
            .as_str()
            .unwrap_or_else(|| panic!("no instance id: {answer}"))
            .to_string(),
        served: answer["served"]
            .as_u64()
            .unwrap_or_else(|| panic!("no count: {answer}")),
        peak: answer["peak"]
            .as_u64()
            .unwrap_or_else(|| panic!("no peak: {answer}")),
    }
}

/// `n` overlapping requests, each waiting `wait_ms` inside the guest, sent 100 ms apart
/// (a request that arrives while an instance is still busy starting another request
/// goes to another instance, in Spin as here: the spacing lets the first instance
/// settle into waiting, so that it can take the next).
fn probe_concurrently(app: &TestApp, n: usize, wait_ms: u64) -> Vec<Served> {
    std::thread::scope(|scope| {
        let requests: Vec<_> = (0..n)
            .map(|_| {
                let request = scope.spawn(|| probe(app, wait_ms));
                std::thread::sleep(Duration::from_millis(100));
                request
            })
            .collect();
        requests
            .into_iter()
            .map(|request| request.join().expect("a request thread"))
            .collect()
    })
}

fn instances(answers: &[Served]) -> BTreeSet<&str> {
    answers.iter().map(|a| a.instance.as_str()).collect()
}

#[test]
fn a_wasip3_instance_serves_sequential_requests() {
    let app = start(&[]);
    let answers: Vec<Served> = (0..5).map(|_| probe(&app, 0)).collect();
    assert_eq!(instances(&answers).len(), 1, "{answers:?}");
    let counts: Vec<u64> = answers.iter().map(|a| a.served).collect();
    assert_eq!(counts, vec![1, 2, 3, 4, 5], "{answers:?}");
}

#[test]
fn a_wasip3_request_carries_spins_headers_and_full_url() {
    let app = start(&[]);
    let answer = get_json(&app.url("/p3/a/b?headers=1"));
    let full = app.url("/p3/a/b?headers=1");
    assert_eq!(answer["uri"], full.as_str(), "{answer}");
    assert_eq!(answer["full_url"], full.as_str(), "{answer}");
    assert_eq!(answer["path_info"], "/a/b", "{answer}");
}

#[test]
fn max_instance_reuse_count_one_gives_every_request_a_fresh_instance() {
    let app = start(&[("max-instance-reuse-count", "1")]);
    let answers: Vec<Served> = (0..4).map(|_| probe(&app, 0)).collect();
    assert_eq!(instances(&answers).len(), 4, "{answers:?}");
    assert!(answers.iter().all(|a| a.served == 1), "{answers:?}");
}

#[test]
fn max_instance_reuse_count_retires_an_instance_after_that_many_requests() {
    let app = start(&[("max-instance-reuse-count", "3")]);
    let answers: Vec<Served> = (0..6).map(|_| probe(&app, 0)).collect();
    let counts: Vec<u64> = answers.iter().map(|a| a.served).collect();
    assert_eq!(counts, vec![1, 2, 3, 1, 2, 3], "{answers:?}");
    assert_eq!(answers[0].instance, answers[2].instance);
    assert_eq!(answers[3].instance, answers[5].instance);
    assert_ne!(answers[0].instance, answers[3].instance);
}

#[test]
fn an_instance_idle_for_longer_than_the_idle_timeout_is_replaced() {
    // Spin's default idle timeout: 1 s.
    let app = start(&[]);
    let first = probe(&app, 0);
    let again = probe(&app, 0);
    assert_eq!(again.instance, first.instance);
    std::thread::sleep(Duration::from_millis(2000));
    let later = probe(&app, 0);
    assert_ne!(later.instance, first.instance, "{first:?} {later:?}");
    assert_eq!(later.served, 1);
}

#[test]
fn a_longer_idle_timeout_keeps_the_instance() {
    let app = start(&[("idle-instance-timeout", "60s")]);
    let first = probe(&app, 0);
    std::thread::sleep(Duration::from_millis(2000));
    let later = probe(&app, 0);
    assert_eq!(later.instance, first.instance, "{first:?} {later:?}");
    assert_eq!(later.served, 2);
}

#[test]
fn concurrent_requests_share_an_instance_up_to_the_concurrency_cap() {
    // Spin's default cap, 16: an instance takes overlapping requests.
    let app = start(&[]);
    probe(&app, 0);
    let answers = probe_concurrently(&app, 8, 2000);
    assert!(answers.iter().any(|a| a.peak >= 2), "{answers:?}");
    assert!(instances(&answers).len() < 8, "{answers:?}");

    // A cap of 2: never more than two at once in an instance.
    let app = start(&[("max-instance-concurrent-reuse-count", "2")]);
    probe(&app, 0);
    let answers = probe_concurrently(&app, 8, 2000);
    assert!(answers.iter().all(|a| a.peak <= 2), "{answers:?}");
    assert!(answers.iter().any(|a| a.peak == 2), "{answers:?}");
}

#[test]
fn a_concurrency_cap_of_one_spreads_concurrent_requests_over_instances() {
    let app = start(&[("max-instance-concurrent-reuse-count", "1")]);
    probe(&app, 0);
    let answers = probe_concurrently(&app, 8, 2000);
    // Eight overlapping requests, one at a time per instance: several instances, none
    // of which ever had two requests in progress.
    assert!(instances(&answers).len() >= 2, "{answers:?}");
    assert!(answers.iter().all(|a| a.peak == 1), "{answers:?}");
}

#[test]
fn a_request_past_the_request_timeout_gets_500() {
    let app = start(&[("request-timeout", "200ms")]);
    let (status, body) = get(&app.url("/p3/?wait_ms=3000"));
    assert_eq!((status, body.as_str()), (500, ""));
    let (status, _) = get(&app.url("/p3/?wait_ms=0"));
    assert_eq!(status, 200);
}

#[test]
fn wasip2_components_still_get_a_fresh_instance_per_request() {
    // Spin's flags do not apply to WASIp2 components, whatever their values.
    for flags in [
        &[][..],
        &[
            ("max-instance-reuse-count", "128"),
            ("idle-instance-timeout", "60s"),
        ][..],
    ] {
        let app = start(flags);
        for _ in 0..3 {
            assert_eq!(get_json(&app.url("/p2/?op=counter"))["count"], 1);
        }
        // The WASIp3 component of the same app is reused meanwhile.
        assert_eq!(probe(&app, 0).served, 1);
        assert_eq!(probe(&app, 0).served, 2);
    }
}
