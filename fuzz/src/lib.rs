//! Fuzz targets for every parser of `voice-edge-shared`, run natively under afl.rs
//! (`cargo afl`, stable Rust).
//!
//! Each target is a function here taking the fuzzer's bytes; `src/bin/<target>.rs` hands
//! it to `afl::fuzz!`. A target calls the very `shared/` function the component calls,
//! and besides "never panic" asserts what must hold of the answer: an oracle written
//! here, independently of the code under test (a token is accepted only when an
//! independent check finds it signed by a configured key; a webhook only with the right
//! HMAC; a validated body only within its bounds).
//!
//! ```sh
//! make fuzz FUZZ_SECONDS=60    # every target, with executions, exec/s, corpus, crashes
//! make fuzz-smoke              # every target for a few seconds (part of make test)
//! cargo test --manifest-path fuzz/Cargo.toml   # every target over its committed corpus
//! ```

pub mod demo;
pub mod http;
pub mod jwt;
pub mod monitoring;
pub mod practice;
pub mod requests;
pub mod variables;
pub mod webhook;

/// A target's entry point: the fuzzer's bytes in, a panic on a finding.
pub type Target = fn(&[u8]);

/// Every target: its name (the binary under `src/bin/` and the corpus folder under
/// `corpus/`) and its function.
pub const TARGETS: &[(&str, Target)] = &[
    ("jwt", jwt::run),
    ("webhook", webhook::run),
    ("practice_event", practice::run),
    ("demo", demo::run),
    ("monitoring", monitoring::run),
    ("requests", requests::run),
    ("http", http::run),
    ("variables", variables::run),
];

/// Splits the fuzzer's bytes into at most `count` fields at NUL bytes; missing fields
/// are empty. The last field keeps any further NULs.
pub fn fields(data: &[u8], count: usize) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.splitn(count, |&byte| byte == 0).collect();
    out.resize(count, &[]);
    out
}

/// A field as text (lossy: the components only ever see UTF-8 strings here).
pub fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(field).into_owned()
}

/// The first byte (the target's mode switch) and the rest.
pub fn mode(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&first, rest)) => (first, rest),
        None => (0, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed seed passes its target's oracle (what `make fuzz` starts from).
    #[test]
    fn every_target_passes_its_committed_corpus() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for (name, run) in TARGETS {
            let entries = std::fs::read_dir(corpus.join(name)).expect("a corpus per target");
            let inputs: Vec<Vec<u8>> = entries
                .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
                .collect();
            assert!(inputs.len() >= 3, "{name} has {} seeds", inputs.len());
            for input in inputs {
                run(&input);
            }
        }
    }

    #[test]
    fn fields_split_at_nul_and_pad_with_empty_fields() {
        assert_eq!(fields(b"a\0b\0c\0d", 3), [&b"a"[..], b"b", b"c\0d"]);
        assert_eq!(fields(b"a", 3), [&b"a"[..], b"", b""]);
        assert_eq!(mode(b""), (0, &b""[..]));
        assert_eq!(mode(b"\x07xy"), (7, &b"xy"[..]));
    }
}
