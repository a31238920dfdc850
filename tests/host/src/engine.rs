//! One wasmtime `Engine` per process, components compiled once, and the linker with
//! every interface a Spin component may import here.
//!
//! Compiled components are kept in memory by the SHA-256 of their `.wasm`, so every app
//! of a test process shares them; with a cache directory they are also kept on disk
//! (keyed by content and by the engine's compatibility hash), so a new process does not
//! compile them again. An app's components are compiled concurrently. The engine uses
//! the pooling allocator when the machine lets it reserve the address space, which makes
//! a fresh instance per request cheap.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings;
use crate::state::Ctx;

fn config(pooling: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // WASIp3 components (async lifts, streams, futures), as Spin enables it.
    config.wasm_component_model_async(true);
    if pooling {
        // The limits `spin up` uses by default: up to 1000 concurrent instances.
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(1000)
            .total_memories(1000)
            .total_tables(2000)
            .total_stacks(1000)
            .total_core_instances(4000)
            .table_elements(100_000)
            .max_component_instance_size(10 << 20)
            .max_core_instance_size(10 << 20)
            .max_core_instances_per_component(200)
            .max_tables_per_component(64)
            .max_memories_per_component(32)
            .max_tables_per_module(2)
            .max_memories_per_module(2)
            .max_memory_size(4 << 30)
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(512 << 10);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// The process's engine.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let pooling = std::env::var("VOICE_EDGE_HOST_POOLING").map(|v| v != "0").unwrap_or(true);
        if pooling {
            match Engine::new(&config(true)) {
                Ok(engine) => return engine,
                Err(error) => eprintln!("voice-edge-host: pooling allocator unavailable ({error}); using on-demand instances"),
            }
        }
        Engine::new(&config(false)).expect("the default wasmtime configuration is valid")
    })
}

/// The linker for [`Ctx`]: WASI 0.2 and 0.3, wasi:http 0.2 and 0.3, Spin's Postgres and
/// variables. A WASIp3 component built for `wasm32-wasip2` imports both WASI versions
/// (its standard library uses 0.2), as Spin links them.
pub fn linker() -> &'static Linker<Ctx> {
    static LINKER: OnceLock<Linker<Ctx>> = OnceLock::new();
    LINKER.get_or_init(|| {
        let mut linker = Linker::new(engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("WASI links once");
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .expect("wasi:http links once");
        wasmtime_wasi::p3::add_to_linker(&mut linker).expect("WASI 0.3 links once");
        wasmtime_wasi_http::p3::add_to_linker(&mut linker).expect("wasi:http 0.3 links once");
        // `spin:postgres@4.2.0`, which serves `@4.0.0` and `@4.1.0` imports by semver.
        bindings::spin::postgres::postgres::add_to_linker::<Ctx, crate::pg::PgData>(
            &mut linker,
            |ctx| ctx,
        )
        .expect("spin:postgres links once");
        bindings::fermyon::spin::variables::add_to_linker::<Ctx, HasSelf<Ctx>>(
            &mut linker,
            |ctx| ctx,
        )
        .expect("fermyon:spin/variables links once");
        linker
    })
}

/// One slot per component content (SHA-256 of the `.wasm`): the compiled component,
/// once there is one.
type Slot = Arc<Mutex<Option<Component>>>;

fn compiled_slots() -> &'static Mutex<HashMap<[u8; 32], Slot>> {
    static SLOTS: OnceLock<Mutex<HashMap<[u8; 32], Slot>>> = OnceLock::new();
    SLOTS.get_or_init(Default::default)
}

fn disk_cache_path(dir: &Path, digest: &[u8; 32]) -> PathBuf {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine().precompile_compatibility_hash().hash(&mut hasher);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}-{:016x}.cwasm", hasher.finish()))
}

/// Compiles (or finds already compiled) the component at `path`.
///
/// Each distinct component is compiled at most once per process: a caller that asks
/// for one being compiled (tests start apps in parallel) waits for that compilation
/// instead of repeating it, while different components compile at the same time.
pub fn load_component(path: &Path, cache_dir: Option<&Path>) -> anyhow::Result<Component> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    let slot = compiled_slots()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(digest)
        .or_default()
        .clone();
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(component) = slot.as_ref() {
        return Ok(component.clone());
    }
    let cached_file = cache_dir.map(|dir| disk_cache_path(dir, &digest));
    let mut component = None;
    if let Some(file) = cached_file.as_ref().filter(|file| file.exists()) {
        // SAFETY: the file was written by `Component::serialize` of this same engine
        // configuration (its name carries the engine's compatibility hash), and wasmtime
        // checks the header again; a stale or damaged file fails and is recompiled.
        component = unsafe { Component::deserialize_file(engine(), file) }.ok();
    }
    let component = match component {
        Some(component) => component,
        None => {
            let component = Component::from_binary(engine(), &bytes)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot compile {}", path.display()))?;
            if let Some(file) = &cached_file {
                // The disk cache is an optimisation: a failed write only costs time later.
                let _ = write_atomically(file, &component);
            }
            component
        }
    };
    *slot = Some(component.clone());
    Ok(component)
}

/// [`load_component`] for each of `paths`, all at once, one thread per component.
///
/// Wasmtime already compiles one component's functions in parallel, but the rest of
/// a compilation (reading and translating the component, its trampolines, linking and
/// publishing the code) runs on the calling thread; overlapping those steps of one
/// component with the code generation of the others shortens a cold start. The code
/// produced is the same. The results are in the order of `paths`.
pub fn load_components(
    paths: &[&Path],
    cache_dir: Option<&Path>,
) -> Vec<anyhow::Result<Component>> {
    std::thread::scope(|scope| {
        let loading: Vec<_> = paths
            .iter()
            .map(|path| scope.spawn(move || load_component(path, cache_dir)))
            .collect();
        loading
            .into_iter()
            .zip(paths)
            .map(|(thread, path)| {
                thread.join().unwrap_or_else(|_| {
                    Err(anyhow::anyhow!("compiling {} panicked", path.display()))
                })
            })
            .collect()
    })
}

fn write_atomically(file: &Path, component: &Component) -> anyhow::Result<()> {
    let bytes = component.serialize().map_err(anyhow::Error::from)?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, file)?;
    if let Some(dir) = file.parent() {
        prune(dir);
    }
    Ok(())
}

/// Most compiled components kept on disk; every rebuild of a component adds one.
const DISK_CACHE_ENTRIES: usize = 48;

/// Deletes the oldest cached components beyond [`DISK_CACHE_ENTRIES`].
fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "cwasm"))
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .collect();
    if files.len() <= DISK_CACHE_ENTRIES {
        return;
    }
    files.sort();
    for (_, path) in &files[..files.len() - DISK_CACHE_ENTRIES] {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid component: the preamble of the component binary format.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn components_loaded_together_keep_their_order_and_their_own_errors() {
        let dir =
            std::env::temp_dir().join(format!("voice-edge-host-engine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.wasm");
        std::fs::write(&empty, EMPTY_COMPONENT).unwrap();
        let missing = dir.join("missing.wasm");
        let broken = dir.join("broken.wasm");
        std::fs::write(&broken, b"\0asm\x0d\0\x01\0\xff").unwrap();

        let results = load_components(&[&empty, &missing, &broken, &empty], None);
        let _ = std::fs::remove_dir_all(&dir);

        assert_eq!(results.len(), 4);
        assert!(results[0].is_ok(), "{:?}", results[0].as_ref().err());
        let missing_error = format!("{:#}", results[1].as_ref().unwrap_err());
        assert!(missing_error.contains("cannot read"), "{missing_error}");
        let broken_error = format!("{:#}", results[2].as_ref().unwrap_err());
        assert!(broken_error.contains("cannot compile"), "{broken_error}");
        assert!(results[3].is_ok());
    }
}
