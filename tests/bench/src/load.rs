//! The load generator: prepared requests replayed over keep-alive connections, each
//! connection sending its next request when the previous answer is in (closed loop),
//! until every request is sent or the time limit passes.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::http1::{Connection, Request, Response};

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Which request (its index in the slice given to [`drive`]).
    pub index: usize,
    /// The response, or the I/O error that took its place.
    pub result: Result<Response, String>,
    pub latency: Duration,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub connections: usize,
    pub elapsed: Duration,
    /// Every answer, in index order.
    pub answers: Vec<Answer>,
    /// Every latency, sorted.
    latencies: Vec<Duration>,
}

impl LoadReport {
    /// Requests answered per second.
    pub fn rate(&self) -> f64 {
        self.answers.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The `p`-th percentile latency (nearest rank), `p` in 0–100.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    pub fn max(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }
}

/// Sends `requests` over `connections` keep-alive connections to `addr`, stopping
/// early after `limit`.
pub fn drive(
    addr: SocketAddr,
    requests: &[Request],
    connections: usize,
    limit: Duration,
) -> LoadReport {
    let next = AtomicUsize::new(0);
    let answers = Mutex::new(Vec::with_capacity(requests.len()));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..connections.max(1) {
            scope.spawn(|| {
                let mut mine = Vec::new();
                let mut connection: Option<Connection> = None;
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= requests.len() || started.elapsed() >= limit {
                        break;
                    }
                    let sent = Instant::now();
                    let result = send(&mut connection, addr, &requests[index]);
                    mine.push(Answer {
                        index,
                        result,
                        latency: sent.elapsed(),
                    });
                }
                answers.lock().unwrap().extend(mine);
            });
        }
    });
    let elapsed = started.elapsed();
    let mut answers = answers.into_inner().unwrap();
    answers.sort_by_key(|answer| answer.index);
    let mut latencies: Vec<Duration> = answers.iter().map(|answer| answer.latency).collect();
    latencies.sort_unstable();
    LoadReport {
        connections,
        elapsed,
        answers,
        latencies,
    }
}

/// Sends on the open connection, opening one first when there is none; a failed
/// connection is dropped so the next request reconnects.
fn send(
    connection: &mut Option<Connection>,
    addr: SocketAddr,
    request: &Request,
) -> Result<Response, String> {
    if connection.as_ref().is_none_or(Connection::is_closed) {
        *connection = Some(Connection::open(addr).map_err(|error| format!("connect: {error}"))?);
    }
    let open = connection.as_mut().expect("opened above");
    open.send(request).map_err(|error| {
        *connection = None;
        error.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(millis: &[u64]) -> LoadReport {
        let mut latencies: Vec<Duration> =
            millis.iter().map(|ms| Duration::from_millis(*ms)).collect();
        latencies.sort_unstable();
        LoadReport {
            connections: 1,
            elapsed: Duration::from_secs(1),
            answers: Vec::new(),
            latencies,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let report = report(&(1..=100).collect::<Vec<_>>());
        assert_eq!(report.percentile(50.0), Duration::from_millis(50));
        assert_eq!(report.percentile(99.0), Duration::from_millis(99));
        assert_eq!(report.percentile(100.0), Duration::from_millis(100));
        assert_eq!(report.percentile(0.0), Duration::from_millis(1));
        assert_eq!(report.max(), Duration::from_millis(100));
    }

    #[test]
    fn an_empty_run_has_zero_latencies() {
        assert_eq!(report(&[]).percentile(99.0), Duration::ZERO);
    }
}
