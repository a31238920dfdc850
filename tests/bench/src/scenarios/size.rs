//! `size`: the `.wasm` size of every component of `spin.toml`, raw and gzip-compressed
//! (`gzip -9`, as a registry or a CDN would ship it).
//!
//! What it checks: every component named by `spin.toml` is built and is a WebAssembly
//! component (not a core module). No load is applied; the runtime does not matter.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use voice_edge_host::manifest::Manifest;
use voice_edge_testkit::child::ChildRuntime;
use voice_edge_testkit::pg::repo_root;

use crate::scenario::{Check, Limits, Report, Scenario, Table};

pub const SCENARIO: Scenario = Scenario {
    name: "size",
    description: "the .wasm size of each component, raw and gzip -9 (no load)",
    target: "none set; smaller components compile and cold-start faster",
    run,
};

/// The preamble of a WebAssembly component: magic, then version 0x0d and layer 1.
const COMPONENT_PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// One component's sizes, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSize {
    pub id: String,
    pub file: String,
    pub raw: u64,
    pub gzip: u64,
    pub is_component: bool,
}

/// The size of `path` once compressed with `gzip -9` (no name or time in the header).
fn gzip_size(path: &Path) -> Result<u64> {
    let output = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(path)
        .output()
        .context("running gzip")?;
    if !output.status.success() {
        bail!("gzip failed on {}", path.display());
    }
    Ok(output.stdout.len() as u64)
}

/// Every component of the repository's `spin.toml`, in the manifest's order of ids.
pub fn measure() -> Result<Vec<ComponentSize>> {
    let manifest = Manifest::load(&repo_root().join("spin.toml"))?;
    let mut sizes = Vec::new();
    for (id, component) in &manifest.components {
        let bytes = std::fs::read(&component.source).with_context(|| {
            format!(
                "component {id}: {} is not built (make build)",
                component.source.display()
            )
        })?;
        sizes.push(ComponentSize {
            id: id.clone(),
            file: component
                .source
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
            raw: bytes.len() as u64,
            gzip: gzip_size(&component.source)?,
            is_component: bytes.starts_with(&COMPONENT_PREAMBLE),
        });
    }
    Ok(sizes)
}

fn kib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0
}

fn run(_runtimes: &[ChildRuntime], _limits: &Limits) -> Result<Report> {
    let sizes = measure()?;
    let mut table = Table::new(vec!["raw KiB".into(), "gzip KiB".into()]);
    for size in &sizes {
        table.set(&size.id, 0, format!("{:.1}", kib(size.raw)));
        table.set(&size.id, 1, format!("{:.1}", kib(size.gzip)));
    }
    let raw: u64 = sizes.iter().map(|s| s.raw).sum();
    let gzip: u64 = sizes.iter().map(|s| s.gzip).sum();
    table.set("all", 0, format!("{:.1}", kib(raw)));
    table.set("all", 1, format!("{:.1}", kib(gzip)));
    let checks = sizes
        .iter()
        .map(|size| {
            Check::that(
                &format!("{} is a component", size.id),
                size.is_component,
                format!(
                    "{} starts with the component preamble: {}",
                    size.file, size.is_component
                ),
            )
        })
        .collect();
    Ok(Report {
        table,
        notes: vec![
            "reproduce: cargo run --profile host -p voice-edge-bench --bin voice-edge-bench -- size"
                .to_string(),
        ],
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_of_a_repetitive_file_is_smaller_than_the_file() {
        let dir = std::env::temp_dir().join(format!("voice-edge-size-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("zeros.bin");
        std::fs::write(&file, vec![0u8; 64 * 1024]).unwrap();
        let compressed = gzip_size(&file).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(compressed > 0 && compressed < 1024, "{compressed}");
    }
}
