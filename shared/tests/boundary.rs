//! The runtime boundary holds: outside `src/runtime/` (and `src/runtime.rs`), no module
//! of `shared/` names spin-sdk, wasi or wit-bindgen in code, so that moving to another
//! SDK or `wasi:http` version changes only the boundary's files.
//!
//! ```sh
//! cargo test -p voice-edge-shared --test boundary
//! ```

use std::fs;
use std::path::{Path, PathBuf};

/// What names the runtime: the SDK, the wasi bindings, and generated bindings.
const RUNTIME_NAMES: [&str; 4] = ["spin_sdk", "wasi::", "wit_bindgen", "http_component"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("shared/src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The code of a line: what comes before a `//` comment (doc comments included).
fn code_of(line: &str) -> &str {
    line.split_once("//").map_or(line, |(code, _)| code)
}

/// The places outside the boundary that name the runtime, as `path:line: text`.
fn crossings(src: &Path) -> Vec<String> {
    let boundary = src.join("runtime");
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut found = Vec::new();
    for file in files {
        if file.starts_with(&boundary) || file == src.join("runtime.rs") {
            continue;
        }
        let text = fs::read_to_string(&file).expect("a source file is UTF-8");
        for (number, line) in text.lines().enumerate() {
            let code = code_of(line);
            if RUNTIME_NAMES.iter().any(|name| code.contains(name)) {
                found.push(format!(
                    "{}:{}: {}",
                    file.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    found
}

#[test]
fn only_the_runtime_modules_name_spin_sdk_or_wasi() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = crossings(&src);
    assert!(
        found.is_empty(),
        "these lines name the runtime outside shared/src/runtime/ \
         (move them there, or use the types crate::db and crate::http hand out):\n{}",
        found.join("\n")
    );
}

#[test]
fn a_domain_module_that_names_the_sdk_is_found() {
    let dir = std::env::temp_dir().join(format!("boundary-check-{}", std::process::id()));
    let domain = dir.join("practice");
    let runtime = dir.join("runtime");
    fs::create_dir_all(&domain).unwrap();
    fs::create_dir_all(&runtime).unwrap();
    fs::write(
        domain.join("sessions.rs"),
        "//! uses spin_sdk in a comment only\nuse spin_sdk::pg4::ParameterValue;\n",
    )
    .unwrap();
    fs::write(runtime.join("postgres.rs"), "pub use spin_sdk::pg4::Row;\n").unwrap();
    fs::write(
        dir.join("db.rs"),
        "// spin_sdk named in a comment is fine\n",
    )
    .unwrap();
    let found = crossings(&dir);
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("sessions.rs:2"), "{found:?}");
}
