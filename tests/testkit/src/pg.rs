//! Throwaway PostgreSQL for tests: real servers on loopback, one fresh database per test.
//!
//! [`PgCluster::shared`] starts one cluster per test process (initdb into
//! `target/test-pg/<unique>`, password auth, a free port on 127.0.0.1, the unix socket in
//! the data directory, durability settings left at PostgreSQL's defaults so benchmarks
//! measure real commits). It builds a template database holding what a migrated
//! production database holds: the local `auth` stand-in, the production tables fixture,
//! every migration and the demo seed, with `demo_relay` given `LOGIN` and
//! [`DEMO_RELAY_PASSWORD`]. [`TestDb::create`] copies that template
//! (`CREATE DATABASE … TEMPLATE`), which takes milliseconds, so every test gets its own
//! database and tests never see each other's rows.
//!
//! [`PgCluster::start_private_tls`] and [`PgCluster::shared_tls`] give a cluster that
//! speaks TLS only, as a hosted PostgreSQL that enforces it does: `ssl=on` with a
//! server certificate for `127.0.0.1` signed by a [`TestCa`] of the test's own, and a
//! `pg_hba.conf` whose only TCP line is `hostssl`. Its databases' URLs ask for
//! `sslmode=require`; the testkit's own connections to it (setting up, checking rows)
//! go through the server's Unix socket.
//!
//! The shared clusters stop when the test process exits (`atexit`). Every postmaster is
//! also started with a parent-death signal bound to a thread that lives exactly as long
//! as that postmaster, so a test binary that panics, aborts or is killed leaves no server
//! behind. [`PgCluster::start_private`] gives a test its own cluster (for outages:
//! [`PgCluster::stop`] and [`PgCluster::start`] keep the port and the data), stopped and
//! removed on drop.
//!
//! When the tests run as root, initdb and the server run as the `postgres` system user,
//! which PostgreSQL requires.

use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::tls::TestCa;

/// The superuser's password in every test cluster.
pub const SUPERUSER_PASSWORD: &str = "voice-edge-test-superuser";

/// The password the test clusters give the `demo_relay` role.
pub const DEMO_RELAY_PASSWORD: &str = "voice-edge-test-demo-relay";

/// The database every [`TestDb`] is copied from.
pub const TEMPLATE_DB: &str = "voice_edge_template";

/// How long a server may take to accept connections after it is spawned.
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// How long a fast shutdown may take before the server is told to quit immediately.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A unique suffix for directory and database names: process id, a counter and the clock,
/// so parallel test binaries and repeated runs never collide.
pub(crate) fn unique_suffix() -> String {
    let count = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    format!("{}_{count}_{nanos:09}", std::process::id())
}

/// The root of the repository (the workspace holding `sql/` and `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the testkit lives two levels below the repository root")
}

/// `sql/migrations`, applied in name order.
pub fn migrations_dir() -> PathBuf {
    repo_root().join("sql/migrations")
}

/// `sql/local/supabase_auth.sql`, the local stand-in for Supabase's `auth` schema.
pub fn supabase_auth_file() -> PathBuf {
    repo_root().join("sql/local/supabase_auth.sql")
}

/// `sql/seed`, the demo data.
pub fn seed_dir() -> PathBuf {
    repo_root().join("sql/seed")
}

/// `tests/fixtures/production_tables.sql`: the running system's production tables.
pub fn production_tables_file() -> PathBuf {
    repo_root().join("tests/fixtures/production_tables.sql")
}

/// The `.sql` files of a directory, sorted by name (the order migrations apply in).
pub fn sql_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|extension| extension == "sql") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Runs one SQL file as a single batch (simple query protocol, as `psql` would).
pub fn apply_sql_file(client: &mut postgres::Client, path: &Path) -> Result<()> {
    let sql = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    client
        .batch_execute(&sql)
        .map_err(|error| anyhow!("applying {}: {}", path.display(), describe(&error)))
}

/// Runs every `.sql` file of a directory in name order; returns the files applied.
pub fn apply_sql_dir(client: &mut postgres::Client, dir: &Path) -> Result<Vec<PathBuf>> {
    let files = sql_files(dir)?;
    for file in &files {
        apply_sql_file(client, file)?;
    }
    Ok(files)
}

/// What a migrated production database holds, in the order it comes about: the `auth`
/// stand-in (Supabase's own schema), the production tables, every migration, the seed.
pub fn apply_full_schema(client: &mut postgres::Client) -> Result<()> {
    apply_sql_file(client, &supabase_auth_file())?;
    apply_sql_file(client, &production_tables_file())?;
    apply_sql_dir(client, &migrations_dir())?;
    apply_sql_dir(client, &seed_dir())?;
    Ok(())
}

/// A Postgres error with its SQLSTATE, message and detail (the `Display` of
/// `postgres::Error` alone says only "db error").
pub fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!(
            "{} {}: {}{}",
            db.severity(),
            db.code().code(),
            db.message(),
            db.detail()
                .map(|detail| format!(" ({detail})"))
                .unwrap_or_default()
        ),
        None => error.to_string(),
    }
}

/// The uid and gid the server must run as: the `postgres` user's when we are root
/// (PostgreSQL refuses to run as root), none otherwise.
fn server_identity() -> Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = c"postgres";
    // SAFETY: `name` is a valid C string; the returned record is copied out before any
    // other call that could overwrite it.
    let record = unsafe { libc::getpwnam(name.as_ptr()) };
    if record.is_null() {
        bail!("running as root, but there is no `postgres` user to run the server as");
    }
    // SAFETY: non-null, returned by getpwnam just above.
    let (uid, gid) = unsafe { ((*record).pw_uid, (*record).pw_gid) };
    Ok(Some((uid, gid)))
}

fn chown(path: &Path, identity: Option<(u32, u32)>) -> Result<()> {
    if let Some((uid, gid)) = identity {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

/// Removes the directories of clusters whose test process is gone (a killed test binary
/// cannot clean up; its server died with it). Directory names start with the pid.
pub(crate) fn remove_leftovers(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.split('_').next())
            .and_then(|pid| pid.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only asks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone && !entry.path().join("data/postmaster.pid").exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Whether a spawned postmaster has exited, and how.
#[derive(Default)]
struct ExitWatch {
    status: Mutex<Option<io::Result<ExitStatus>>>,
    changed: Condvar,
}

impl ExitWatch {
    fn has_exited(&self) -> bool {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Waits up to `limit` for the exit; true once it has happened.
    fn wait(&self, limit: Duration) -> bool {
        let guard = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, limit, |status| status.is_none())
            .unwrap_or_else(|e| e.into_inner());
        guard.is_some()
    }
}

/// A running `postgres` process.
struct Postmaster {
    pid: libc::pid_t,
    exit: Arc<ExitWatch>,
}

impl Postmaster {
    /// Spawns the server from a thread that then waits for it. The server gets
    /// `PR_SET_PDEATHSIG`, which fires when the *thread* that forked it ends; this thread
    /// ends only when the server has exited or the whole process is going away, so the
    /// server can never outlive the test process.
    fn spawn(
        data_dir: &Path,
        port: u16,
        log_file: &Path,
        identity: Option<(u32, u32)>,
        settings: &[(String, String)],
    ) -> Result<Self> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_file)
            .with_context(|| format!("opening {}", log_file.display()))?;
        let log_err = log.try_clone()?;
        let mut command = Command::new("postgres");
        command
            .arg("-D")
            .arg(data_dir)
            .arg("-p")
            .arg(port.to_string())
            .arg("-c")
            .arg("listen_addresses=127.0.0.1")
            .arg("-c")
            .arg(format!("unix_socket_directories={}", data_dir.display()))
            // Several test binaries' hosts pool connections at once; 100 is tight.
            .arg("-c")
            .arg("max_connections=200");
        for (name, value) in settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        command.stdin(Stdio::null()).stdout(log).stderr(log_err);
        if let Some((uid, gid)) = identity {
            command.uid(uid).gid(gid);
        }
        // SAFETY: prctl and getppid are async-signal-safe; nothing here allocates.
        // std runs this after setuid/setgid, which would otherwise clear the setting.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() == 1 {
                    return Err(io::Error::other("the test process is already gone"));
                }
                Ok(())
            });
        }

        let exit = Arc::new(ExitWatch::default());
        let watch = Arc::clone(&exit);
        let (started, pid) = mpsc::channel();
        thread::Builder::new()
            .name(format!("postmaster-{port}"))
            .spawn(move || match command.spawn() {
                Ok(mut child) => {
                    let _ = started.send(Ok(child.id()));
                    let status = child.wait();
                    *watch.status.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
                    watch.changed.notify_all();
                }
                Err(error) => {
                    let _ = started.send(Err(error));
                }
            })
            .context("spawning the postmaster's watch thread")?;
        let pid = pid
            .recv()
            .context("the postmaster's watch thread died")?
            .context("spawning postgres (is it on PATH?)")?;
        Ok(Self {
            pid: pid as libc::pid_t,
            exit,
        })
    }

    /// Fast shutdown (clients disconnected, a shutdown checkpoint), escalating to an
    /// immediate shutdown and then SIGKILL if the server does not go in time.
    fn stop(&self) {
        for (signal, limit) in [
            (libc::SIGINT, SHUTDOWN_DEADLINE),
            (libc::SIGQUIT, Duration::from_secs(5)),
            (libc::SIGKILL, Duration::from_secs(5)),
        ] {
            if self.exit.has_exited() {
                return;
            }
            // SAFETY: plain kill(2) on the pid of a child we have not yet reaped (the
            // watch thread reaps it and records the exit before we could reuse the pid).
            unsafe { libc::kill(self.pid, signal) };
            if self.exit.wait(limit) {
                return;
            }
        }
    }
}

/// A PostgreSQL server of our own, on 127.0.0.1.
pub struct PgCluster {
    base_dir: PathBuf,
    data_dir: PathBuf,
    log_file: PathBuf,
    port: u16,
    identity: Option<(u32, u32)>,
    /// Whether TCP connections must be TLS (the testkit's own go through the socket).
    tls_only: bool,
    /// Server settings beyond the testkit's own (`-c name=value`), such as pg_cron's.
    settings: Vec<(String, String)>,
    postmaster: Mutex<Option<Postmaster>>,
}

/// A cluster that speaks TLS only, and the CA that signed its certificate.
#[derive(Debug)]
pub struct TlsCluster {
    /// The cluster.
    pub cluster: PgCluster,
    /// The CA its server certificate chains to.
    pub ca: TestCa,
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster")
            .field("data_dir", &self.data_dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

static SHARED: OnceLock<std::result::Result<PgCluster, String>> = OnceLock::new();
static SHARED_TLS: OnceLock<std::result::Result<TlsCluster, String>> = OnceLock::new();

extern "C" fn stop_shared_cluster_at_exit() {
    if let Some(Ok(cluster)) = SHARED.get() {
        cluster.shut_down_and_remove();
    }
}

extern "C" fn stop_shared_tls_cluster_at_exit() {
    if let Some(Ok(tls)) = SHARED_TLS.get() {
        tls.cluster.shut_down_and_remove();
        tls.ca.remove_files();
    }
}

impl PgCluster {
    /// The cluster shared by every test of this process, started on first use with the
    /// template database ready, and stopped when the process exits.
    pub fn shared() -> &'static PgCluster {
        let cluster = SHARED.get_or_init(|| match PgCluster::start_new(None) {
            Ok(cluster) => {
                // SAFETY: registering a plain extern "C" function with no arguments.
                unsafe { libc::atexit(stop_shared_cluster_at_exit) };
                Ok(cluster)
            }
            Err(error) => Err(format!("{error:#}")),
        });
        match cluster {
            Ok(cluster) => cluster,
            Err(error) => panic!("the shared test PostgreSQL could not start: {error}"),
        }
    }

    /// A cluster of this test's own (same setup as the shared one), stopped and removed
    /// when dropped.
    pub fn start_private() -> PgCluster {
        PgCluster::start_private_with(&[])
    }

    /// A cluster of this test's own started with extra server settings, for example
    /// `shared_preload_libraries = 'pg_cron'` and `cron.database_name` (pg_cron runs its
    /// jobs from one database per cluster); stopped and removed when dropped.
    pub fn start_private_with(settings: &[(&str, &str)]) -> PgCluster {
        let settings = settings
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        match PgCluster::start_new_with(None, settings) {
            Ok(cluster) => cluster,
            Err(error) => panic!("a private test PostgreSQL could not start: {error:#}"),
        }
    }

    /// A cluster of this test's own that accepts TCP connections over TLS only, with a
    /// certificate for `127.0.0.1` signed by `ca`; stopped and removed when dropped.
    pub fn start_private_tls(ca: &TestCa) -> PgCluster {
        match PgCluster::start_new(Some(ca)) {
            Ok(cluster) => cluster,
            Err(error) => panic!("a TLS test PostgreSQL could not start: {error:#}"),
        }
    }

    /// The TLS-only cluster shared by every test of this process (see
    /// [`PgCluster::start_private_tls`]), with its CA; stopped when the process exits.
    pub fn shared_tls() -> &'static TlsCluster {
        let tls = SHARED_TLS.get_or_init(|| {
            let ca = TestCa::new("voice-edge test database CA");
            match PgCluster::start_new(Some(&ca)) {
                Ok(cluster) => {
                    // SAFETY: registering a plain extern "C" function with no arguments.
                    unsafe { libc::atexit(stop_shared_tls_cluster_at_exit) };
                    Ok(TlsCluster { cluster, ca })
                }
                Err(error) => Err(format!("{error:#}")),
            }
        });
        match tls {
            Ok(tls) => tls,
            Err(error) => panic!("the shared TLS test PostgreSQL could not start: {error}"),
        }
    }

    fn start_new(tls: Option<&TestCa>) -> Result<PgCluster> {
        PgCluster::start_new_with(tls, Vec::new())
    }

    fn start_new_with(tls: Option<&TestCa>, settings: Vec<(String, String)>) -> Result<PgCluster> {
        let identity = server_identity()?;
        let parent = repo_root().join("target/test-pg");
        fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        remove_leftovers(&parent);
        let base_dir = parent.join(unique_suffix());
        fs::create_dir(&base_dir)?;
        chown(&base_dir, identity)?;
        fs::set_permissions(&base_dir, fs::Permissions::from_mode(0o700))?;

        let mut cluster = PgCluster {
            data_dir: base_dir.join("data"),
            log_file: base_dir.join("postgres.log"),
            base_dir,
            port: 0,
            identity,
            tls_only: false,
            settings,
            postmaster: Mutex::new(None),
        };
        // Dropping the half-built cluster on any error below stops and removes it.
        cluster.init_data_dir()?;
        cluster.start_on_a_free_port()?;
        cluster.create_template()?;
        if let Some(ca) = tls {
            cluster.require_tls(ca)?;
        }
        Ok(cluster)
    }

    /// Turns TLS on with a certificate `ca` signs, makes `hostssl` the only way in over
    /// TCP (the Unix socket stays open to the testkit), and restarts the server.
    fn require_tls(&mut self, ca: &TestCa) -> Result<()> {
        let server = ca.issue_server_certificate(&self.base_dir, "127.0.0.1")?;
        for file in [&server.certificate, &server.key] {
            chown(file, self.identity)?;
        }
        // PostgreSQL refuses a key that others can read.
        fs::set_permissions(&server.key, fs::Permissions::from_mode(0o600))?;
        let mut admin = self.connect("postgres")?;
        for statement in [
            "ALTER SYSTEM SET ssl = on".to_string(),
            format!(
                "ALTER SYSTEM SET ssl_cert_file = '{}'",
                server.certificate.display()
            ),
            format!("ALTER SYSTEM SET ssl_key_file = '{}'", server.key.display()),
        ] {
            admin
                .batch_execute(&statement)
                .map_err(|error| anyhow!("{statement}: {}", describe(&error)))?;
        }
        drop(admin);
        fs::write(
            self.data_dir.join("pg_hba.conf"),
            "# voice-edge TLS tests: TCP over TLS only; the socket for the testkit
             local   all  all                 scram-sha-256
             hostssl all  all  127.0.0.1/32   scram-sha-256
",
        )?;
        self.tls_only = true;
        self.stop();
        self.start_server()
    }

    fn init_data_dir(&self) -> Result<()> {
        let password_file = self.base_dir.join("superuser-password");
        fs::write(&password_file, SUPERUSER_PASSWORD)?;
        chown(&password_file, self.identity)?;
        let mut command = Command::new("initdb");
        command
            .arg("--pgdata")
            .arg(&self.data_dir)
            .args([
                "--username=postgres",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
            ])
            .args(["--locale=C"])
            .arg(format!("--pwfile={}", password_file.display()))
            // Only initdb's own final fsync of the new files is skipped; the server runs
            // with fsync, synchronous_commit and full_page_writes at their defaults.
            .arg("--no-sync")
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.identity {
            command.uid(uid).gid(gid);
        }
        let output = command
            .output()
            .context("running initdb (is it on PATH?)")?;
        let _ = fs::remove_file(&password_file);
        if !output.status.success() {
            bail!(
                "initdb failed: {}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Starts the server on a free port, trying again with another port if someone else
    /// took the one we found between finding and binding it.
    fn start_on_a_free_port(&mut self) -> Result<()> {
        let mut last_error = anyhow!("no attempt made");
        for _ in 0..5 {
            self.port = free_port()?;
            match self.start_server() {
                Ok(()) => return Ok(()),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    fn start_server(&self) -> Result<()> {
        let mut slot = self.postmaster.lock().unwrap_or_else(|e| e.into_inner());
        if slot
            .as_ref()
            .is_some_and(|postmaster| !postmaster.exit.has_exited())
        {
            return Ok(());
        }
        let postmaster = Postmaster::spawn(
            &self.data_dir,
            self.port,
            &self.log_file,
            self.identity,
            &self.settings,
        )?;
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            if postmaster.exit.has_exited() {
                bail!(
                    "postgres exited during start-up on port {}; log:\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            match self.try_connect("postgres") {
                Ok(_) => break,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                Err(error) => {
                    postmaster.stop();
                    bail!(
                        "postgres did not accept connections within {STARTUP_DEADLINE:?}: {}; log:\n{}",
                        describe(&error),
                        self.log_tail()
                    );
                }
            }
        }
        *slot = Some(postmaster);
        Ok(())
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log_file).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn create_template(&self) -> Result<()> {
        let mut admin = self.connect("postgres")?;
        admin
            .batch_execute(&format!("CREATE DATABASE {TEMPLATE_DB}"))
            .map_err(|error| anyhow!("creating the template: {}", describe(&error)))?;
        {
            let mut template = self.connect(TEMPLATE_DB)?;
            apply_full_schema(&mut template)?;
            template
                .batch_execute(&format!(
                    "ALTER ROLE demo_relay WITH LOGIN PASSWORD '{DEMO_RELAY_PASSWORD}'"
                ))
                .map_err(|error| anyhow!("enabling demo_relay: {}", describe(&error)))?;
            // The connection closes here: CREATE DATABASE … TEMPLATE refuses a template
            // that has sessions.
        }
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {TEMPLATE_DB} WITH IS_TEMPLATE true"
            ))
            .map_err(|error| anyhow!("marking the template: {}", describe(&error)))?;
        Ok(())
    }

    fn try_connect(
        &self,
        database: &str,
    ) -> std::result::Result<postgres::Client, postgres::Error> {
        if self.tls_only {
            return socket_config(&self.data_dir, self.port, "postgres", SUPERUSER_PASSWORD)
                .dbname(database)
                .connect(postgres::NoTls);
        }
        postgres::Client::connect(&self.url(database), postgres::NoTls)
    }

    fn connect(&self, database: &str) -> Result<postgres::Client> {
        self.try_connect(database)
            .map_err(|error| anyhow!("connecting to {database}: {}", describe(&error)))
    }

    /// The port the server listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`, the value of the `db_host` variable.
    pub fn db_host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The superuser's URL for a database of this cluster (`sslmode=require` when it
    /// speaks TLS only, else `disable`).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{}/{database}?sslmode={}",
            self.port,
            self.sslmode()
        )
    }

    fn sslmode(&self) -> &'static str {
        if self.tls_only { "require" } else { "disable" }
    }

    /// Whether TCP connections must use TLS.
    pub fn is_tls_only(&self) -> bool {
        self.tls_only
    }

    /// The data directory (its `postgres.log` sits beside it).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether the server is up.
    pub fn is_running(&self) -> bool {
        self.postmaster
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|postmaster| !postmaster.exit.has_exited())
    }

    /// Stops the server (fast shutdown), keeping its data and port: an outage.
    pub fn stop(&self) {
        let postmaster = self
            .postmaster
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(postmaster) = postmaster {
            postmaster.stop();
        }
    }

    /// Starts the server again on the same port with the same data.
    pub fn start(&self) {
        if let Err(error) = self.start_server() {
            panic!("restarting the test PostgreSQL failed: {error:#}");
        }
    }

    fn shut_down_and_remove(&self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.base_dir);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.shut_down_and_remove();
    }
}

/// Connection settings for the server's Unix socket in `dir`.
fn socket_config(dir: &Path, port: u16, user: &str, password: &str) -> postgres::Config {
    let mut config = postgres::Config::new();
    config
        .host_path(dir)
        .port(port)
        .user(user)
        .password(password);
    config
}

/// A database of its own for one test: a copy of the template (or an empty one).
#[derive(Debug, Clone)]
pub struct TestDb {
    name: String,
    port: u16,
    /// The server's socket directory, when TCP needs TLS (the testkit's own
    /// connections then go through the socket).
    socket_dir: Option<PathBuf>,
}

impl TestDb {
    /// A fresh copy of the template in the shared cluster.
    pub fn create() -> TestDb {
        TestDb::create_in(PgCluster::shared())
    }

    /// A fresh copy of the template in the given cluster.
    pub fn create_in(cluster: &PgCluster) -> TestDb {
        TestDb::create_with(cluster, Some(TEMPLATE_DB))
    }

    /// An empty database (nothing of ours in it, not even the `auth` stand-in) in the
    /// shared cluster, for tests that apply the schema themselves. The cluster-wide roles
    /// (`anon`, `authenticated`, `service_role`, `demo_relay`) exist already.
    pub fn create_empty() -> TestDb {
        TestDb::create_with(PgCluster::shared(), None)
    }

    /// An empty database in the given cluster, for schemas that are not ours (the bench's
    /// Deno peer applies its own).
    pub fn create_empty_in(cluster: &PgCluster) -> TestDb {
        TestDb::create_with(cluster, None)
    }

    fn create_with(cluster: &PgCluster, template: Option<&str>) -> TestDb {
        let name = format!("test_{}", unique_suffix());
        let statement = match template {
            Some(template) => format!("CREATE DATABASE {name} TEMPLATE {template}"),
            None => format!("CREATE DATABASE {name}"),
        };
        let created = cluster.connect("postgres").and_then(|mut admin| {
            admin
                .batch_execute(&statement)
                .map_err(|error| anyhow!("{statement}: {}", describe(&error)))
        });
        if let Err(error) = created {
            panic!("creating a test database failed: {error:#}");
        }
        TestDb {
            name,
            port: cluster.port(),
            socket_dir: cluster.tls_only.then(|| cluster.data_dir.clone()),
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The superuser's URL: `postgres://postgres:…@127.0.0.1:<port>/<db>?sslmode=disable`
    /// (`sslmode=require` in a TLS-only cluster).
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{}/{}?sslmode={}",
            self.port,
            self.name,
            self.sslmode()
        )
    }

    /// The `demo_relay` role's URL for this database.
    pub fn demo_url(&self) -> String {
        format!(
            "postgres://demo_relay:{DEMO_RELAY_PASSWORD}@127.0.0.1:{}/{}?sslmode={}",
            self.port,
            self.name,
            self.sslmode()
        )
    }

    fn sslmode(&self) -> &'static str {
        if self.socket_dir.is_some() {
            "require"
        } else {
            "disable"
        }
    }

    fn connect_as(&self, url: &str, user: &str, password: &str) -> postgres::Client {
        let connected = match &self.socket_dir {
            Some(dir) => socket_config(dir, self.port, user, password)
                .dbname(&self.name)
                .connect(postgres::NoTls),
            None => postgres::Client::connect(url, postgres::NoTls),
        };
        match connected {
            Ok(client) => client,
            Err(error) => panic!(
                "connecting as {user} to test database {}: {}",
                self.name,
                describe(&error)
            ),
        }
    }

    /// `127.0.0.1:<port>`, the value of the `db_host` variable.
    pub fn db_host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A superuser connection, for setting up and checking rows.
    pub fn client(&self) -> postgres::Client {
        self.connect_as(&self.url(), "postgres", SUPERUSER_PASSWORD)
    }

    /// A connection as `demo_relay`.
    pub fn demo_client(&self) -> postgres::Client {
        self.connect_as(&self.demo_url(), "demo_relay", DEMO_RELAY_PASSWORD)
    }

    /// The Spin variables that point the app at this database: `db_url`, `demo_db_url`,
    /// `db_host`.
    pub fn app_vars(&self) -> Vec<(String, String)> {
        vec![
            ("db_url".to_string(), self.url()),
            ("demo_db_url".to_string(), self.demo_url()),
            ("db_host".to_string(), self.db_host()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_cluster_keeps_its_data_and_port_across_an_outage() {
        let cluster = PgCluster::start_private();
        let db = TestDb::create_in(&cluster);
        db.client()
            .batch_execute("CREATE TABLE kept (note text); INSERT INTO kept VALUES ('before')")
            .expect("write a row");

        cluster.stop();
        assert!(!cluster.is_running());
        assert!(postgres::Client::connect(&db.url(), postgres::NoTls).is_err());

        cluster.start();
        let note: String = db
            .client()
            .query_one("SELECT note FROM kept", &[])
            .expect("the row survived")
            .get(0);
        assert_eq!(note, "before");
        assert_eq!(db.db_host(), format!("127.0.0.1:{}", cluster.port()));

        let data_dir = cluster.data_dir().to_path_buf();
        drop(cluster);
        assert!(!data_dir.exists(), "dropping a private cluster removes it");
    }

    #[test]
    fn template_copies_are_migrated_and_demo_relay_can_log_in() {
        let db = TestDb::create();
        let flags: i64 = db
            .client()
            .query_one("SELECT count(*) FROM voice_feature_flags", &[])
            .expect("the migrations are applied")
            .get(0);
        assert_eq!(flags, 1);
        let activities: i64 = db
            .demo_client()
            .query_one("SELECT count(*) FROM demo_activities", &[])
            .expect("demo_relay logs in and reads the seeded activities")
            .get(0);
        assert_eq!(activities, 12);
        let names: Vec<String> = db.app_vars().into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["db_url", "demo_db_url", "db_host"]);
        assert_ne!(TestDb::create().name(), db.name());
    }

    #[test]
    fn a_tls_cluster_refuses_plain_tcp_and_keeps_the_socket_for_the_testkit() {
        let tls = PgCluster::shared_tls();
        assert!(tls.cluster.is_tls_only());
        let db = TestDb::create_in(&tls.cluster);
        assert!(db.url().ends_with("?sslmode=require"), "{}", db.url());
        let plain = db.url().replace("sslmode=require", "sslmode=disable");
        let refused = postgres::Client::connect(&plain, postgres::NoTls)
            .err()
            .and_then(|error| error.as_db_error().map(|db| db.message().to_string()))
            .unwrap_or_default();
        assert!(
            refused.contains("no pg_hba.conf entry") && refused.contains("no encryption"),
            "plain TCP is refused by pg_hba.conf: {refused}"
        );
        let activities: i64 = db
            .demo_client()
            .query_one("SELECT count(*) FROM demo_activities", &[])
            .expect("demo_relay reads through the socket")
            .get(0);
        assert_eq!(activities, 12);
        let ssl: String = db
            .client()
            .query_one("SHOW ssl", &[])
            .expect("the superuser reads through the socket")
            .get(0);
        assert_eq!(ssl, "on");
    }
}
