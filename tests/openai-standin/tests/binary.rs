//! The `openai-standin` binary: prints where it listens, serves the same endpoints,
//! honours `--api-key`, and logs one line per request without keys or bodies.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{post_raw, search_request};
use serde_json::Value;

/// The child process, killed when the test ends however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn binary_listens_checks_the_key_and_logs_without_secrets() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_openai-standin"))
        .args(["--listen", "127.0.0.1:0", "--api-key", "sk-binary-secret"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);

    let (lines_in, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_in.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || {
        lines
            .recv_timeout(Duration::from_secs(30))
            .expect("a line on stdout")
    };

    let banner = next_line();
    let base = banner
        .split_whitespace()
        .find(|word| word.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {banner:?}"))
        .to_owned();

    let query = "private query about tides";
    let body = search_request(query).to_string();
    let accepted = post_raw(
        &base,
        "/v1/responses",
        "application/json",
        Some("Bearer sk-binary-secret"),
        body.as_bytes(),
    );
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    let refused = post_raw(
        &base,
        "/v1/responses",
        "application/json",
        Some("Bearer sk-wrong-secret"),
        body.as_bytes(),
    );
    assert_eq!(refused.status, 401);
    assert_eq!(refused.openai_error()["code"], "invalid_api_key");

    let first: Value = serde_json::from_str(&next_line()).expect("a JSON log line");
    let second_line = next_line();
    let second: Value = serde_json::from_str(&second_line).expect("a JSON log line");
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/v1/responses");
    assert_eq!(first["status"], 200);
    assert_eq!(second["status"], 401);
    for line in [first.to_string(), second_line] {
        assert!(
            !line.contains("sk-binary-secret") && !line.contains("sk-wrong-secret"),
            "{line}"
        );
        assert!(!line.contains(query), "{line}");
    }
}

#[test]
fn binary_refuses_unknown_arguments() {
    let output = Command::new(env!("CARGO_BIN_EXE_openai-standin"))
        .arg("--port")
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("usage"));
}
