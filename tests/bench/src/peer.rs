//! The yardstick beside our components: the Deno + postgres.js practice webhook of
//! `../shared/peers/deno-practice-webhook` (what a team would get by keeping a Supabase
//! Edge Function), started from that folder with its own `run.sh` against its own
//! database on a private cluster, and measured from outside exactly as our runtimes are.
//! Nothing of it is copied into this project: when the folder is not beside the project,
//! the scenario says so and measures without it.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use voice_edge_testkit::pg::{PgCluster, TestDb, repo_root};

/// How long the peer may take to start: the first start installs Deno from npm and
/// fetches `npm:postgres` into its cache.
const START_LIMIT: Duration = Duration::from_secs(300);

/// The peer's folder, when it is beside the project.
pub fn folder() -> Option<PathBuf> {
    let folder = repo_root().join("../shared/peers/deno-practice-webhook");
    folder.join("run.sh").is_file().then_some(folder)
}

/// The running peer. Fields drop in order: the process before the database's cluster.
pub struct DenoPeer {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    pub db: TestDb,
    /// `whsec_…`, the peer's `WEBHOOK_SECRET`.
    pub webhook_secret: String,
    cluster: PgCluster,
}

impl DenoPeer {
    /// Starts a private cluster, an empty database with the peer's `schema.sql`, and the
    /// peer on a free port; waits until it accepts connections.
    pub fn start(folder: &std::path::Path) -> Result<DenoPeer> {
        let cluster = PgCluster::start_private();
        let db = TestDb::create_empty_in(&cluster);
        let schema = std::fs::read_to_string(folder.join("schema.sql"))
            .context("reading the peer's schema.sql")?;
        db.client()
            .batch_execute(&schema)
            .context("applying the peer's schema.sql")?;
        let mut key = [0u8; 32];
        File::open("/dev/urandom")
            .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut key))
            .context("reading /dev/urandom")?;
        let webhook_secret = format!("whsec_{}", STANDARD.encode(key));
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = cluster
            .data_dir()
            .parent()
            .unwrap_or(cluster.data_dir())
            .join(format!("deno-peer-{}.log", std::process::id()));
        let mut command = Command::new("bash");
        command
            .arg(folder.join("run.sh"))
            .env("DB_URL", db.url())
            .env("WEBHOOK_SECRET", &webhook_secret)
            .env("PORT", port.to_string())
            .env("LISTEN_HOST", "127.0.0.1")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            // One JSON line per request: to a file, never to the bench's own output.
            .stdout(Stdio::from(File::create(&log)?))
            .stderr(Stdio::from(File::create(log.with_extension("err"))?));
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().context("starting the peer's run.sh")?;
        let mut peer = DenoPeer {
            child,
            addr,
            log,
            db,
            webhook_secret,
            cluster,
        };
        peer.wait_until_serving()?;
        Ok(peer)
    }

    fn wait_until_serving(&mut self) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < START_LIMIT {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the peer exited ({status}) before serving: {}",
                    std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default()
                );
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("the peer did not serve within {} s", START_LIMIT.as_secs())
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process to charge CPU to (`run.sh` execs Deno, so this is Deno).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The peer's database cluster.
    pub fn cluster(&self) -> &PgCluster {
        &self.cluster
    }

    /// `deno --version`'s first line, as `run.sh` printed it.
    pub fn describe(&self) -> String {
        std::fs::read_to_string(self.log.with_extension("err"))
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|line| line.contains("deno "))
                    .map(|line| line.trim_start_matches("run.sh: ").to_string())
            })
            .unwrap_or_else(|| "deno (version not printed)".into())
    }
}

impl Drop for DenoPeer {
    fn drop(&mut self) {
        let group = -(self.child.id() as i32);
        // SAFETY: kill has no memory effects; the peer leads its own process group.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(self.log.with_extension("err"));
    }
}
