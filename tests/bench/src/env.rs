//! What a scenario runs against: a private PostgreSQL cluster (default durability),
//! one migrated database, the app of `spin.toml` served by one runtime in a process of
//! its own (real Spin, or our host's binary: either way measured from outside, as a
//! sender sees it), and the OpenAI stand-in when asked for.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use voice_edge_openai_standin::StandIn;
use voice_edge_testkit::child::{ChildApp, ChildOptions, ChildRuntime};
use voice_edge_testkit::pg::{PgCluster, TestDb, repo_root};
use voice_edge_testkit::runtime::find_spin;

/// The OpenAI key the app is given when the stand-in serves it.
pub const STANDIN_API_KEY: &str = "sk-bench-standin-0123456789";

/// The runtimes a bench run compares: our host's binary always, real Spin when found
/// (`SPIN_BIN`, or `spin` on the `PATH`).
pub fn runtimes() -> Result<Vec<ChildRuntime>> {
    let mut runtimes = vec![ChildRuntime::Host(host_binary()?)];
    if let Some(spin) = find_spin() {
        runtimes.push(ChildRuntime::Spin(spin));
    }
    Ok(runtimes)
}

/// The newer of the host binary `make build` leaves and the one cargo's `host` profile
/// built, so that a run after a plain `cargo build --profile host` measures that build.
pub fn host_binary() -> Result<PathBuf> {
    let root = repo_root();
    [
        "target/release/voice-edge-host",
        "target/host/voice-edge-host",
    ]
    .iter()
    .map(|candidate| root.join(candidate))
    .filter_map(|path| {
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
        Some((modified, path))
    })
    .max()
    .map(|(_, path)| path)
    .context("voice-edge-host is not built: run make build")
}

/// The running pieces. Fields drop in order: the app before the database's cluster.
pub struct Env {
    pub app: ChildApp,
    pub runtime: ChildRuntime,
    pub openai: Option<StandIn>,
    pub db: TestDb,
    /// `whsec_…`, as the app's `classconnect_webhook_secret`.
    pub webhook_secret: String,
    /// The app's `supabase_jwt_secret` (HS256), for scenarios that mint JWTs.
    pub jwt_secret: String,
    cluster: PgCluster,
}

/// A cluster and a migrated database without an app, for measurements of PostgreSQL
/// alone (the ceiling) and for scenarios that start the app themselves.
pub struct Database {
    pub db: TestDb,
    pub cluster: PgCluster,
}

impl Database {
    /// Starts a private cluster with one migrated database.
    pub fn start() -> Database {
        let cluster = PgCluster::start_private();
        let db = TestDb::create_in(&cluster);
        Database { db, cluster }
    }
}

impl Env {
    /// Starts a cluster, a database and the app under `runtime` (and the stand-in).
    pub fn start(runtime: &ChildRuntime, needs_openai: bool) -> Result<Env> {
        Self::start_with_flags(runtime, needs_openai, &[])
    }

    /// [`Env::start`], with these `spin up` flags (both runtimes take them), e.g.
    /// `("max-instance-reuse-count", "1")`.
    pub fn start_with_flags(
        runtime: &ChildRuntime,
        needs_openai: bool,
        flags: &[(&str, &str)],
    ) -> Result<Env> {
        let Database { db, cluster } = Database::start();
        let webhook_secret = format!("whsec_{}", STANDARD.encode(random_bytes()));
        let jwt_secret = STANDARD.encode(random_bytes());
        let openai = needs_openai.then(StandIn::start);
        let vars = app_vars(&db, &webhook_secret, &jwt_secret, openai.as_ref());
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let app = ChildApp::start(
            runtime,
            &repo_root().join("spin.toml"),
            &pairs,
            &ChildOptions::with_flags(flags),
        )
        .map_err(|error| {
            anyhow::anyhow!("the app did not start under {}: {error}", runtime.name())
        })?;
        Ok(Env {
            app,
            runtime: runtime.clone(),
            openai,
            db,
            webhook_secret,
            jwt_secret,
            cluster,
        })
    }

    /// The app's address on loopback.
    pub fn addr(&self) -> Result<SocketAddr> {
        Ok(self.app.addr())
    }

    /// A superuser connection to the scenario's database.
    pub fn client(&self) -> postgres::Client {
        self.db.client()
    }

    /// The PostgreSQL cluster (port, data directory).
    pub fn cluster(&self) -> &PgCluster {
        &self.cluster
    }
}

/// The variables an app of the bench gets: the database, the secrets, the stand-in.
pub fn app_vars(
    db: &TestDb,
    webhook_secret: &str,
    jwt_secret: &str,
    openai: Option<&StandIn>,
) -> Vec<(String, String)> {
    let mut vars = db.app_vars();
    vars.push(("supabase_jwt_secret".into(), jwt_secret.into()));
    vars.push(("classconnect_webhook_secret".into(), webhook_secret.into()));
    if let Some(openai) = openai {
        vars.push(("openai_api_key".into(), STANDIN_API_KEY.into()));
        vars.push(("openai_base_url".into(), openai.base_url()));
    }
    vars
}

/// 32 random bytes for a secret that lives as long as the run.
pub fn random_bytes() -> Vec<u8> {
    let mut bytes = uuid::Uuid::new_v4().as_bytes().to_vec();
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes
}

/// One way of running the app: a label, the runtime and its `spin up` flags.
pub type Variant = (String, ChildRuntime, Vec<(&'static str, &'static str)>);

/// The ways each runtime is measured: with its defaults (Spin 4.1's instance reuse,
/// which our host copies), and for Spin also with `--max-instance-concurrent-reuse-count
/// 1` (`spin-c1`: instances reused one request at a time; the functions' host calls are
/// synchronous and hold their instance, so requests sent into a busy instance wait:
/// README, "How the functions run") and with `--max-instance-reuse-count 1`
/// (`spin-reuse1`: a fresh instance per request, as on a platform without reuse). Each
/// is a label, the runtime and its `spin up` flags.
pub fn reuse_variants(runtimes: &[ChildRuntime]) -> Vec<Variant> {
    let mut variants = Vec::new();
    for runtime in runtimes {
        variants.push((runtime.name().to_string(), runtime.clone(), Vec::new()));
        if matches!(runtime, ChildRuntime::Spin(_)) {
            variants.push((
                "spin-c1".to_string(),
                runtime.clone(),
                vec![("max-instance-concurrent-reuse-count", "1")],
            ));
            variants.push((
                "spin-reuse1".to_string(),
                runtime.clone(),
                vec![("max-instance-reuse-count", "1")],
            ));
        }
    }
    variants
}
