//! Pooled PostgreSQL connections, one pool per connection string and root CA, shared
//! by every request of an app.
//!
//! A guest's `connection` resource holds one pooled client for its whole life, so
//! `BEGIN` … `COMMIT` on one resource run on one server session. When the resource is
//! dropped the client goes back to the pool as it is, as in Spin (deadpool-postgres
//! with `RecyclingMethod::Clean`): a transaction the guest left open (it began one and
//! never ended it, or the instance trapped) stays open, and the next request that
//! checks the client out runs inside it. Before a client is handed out again it is
//! cleaned as deadpool does ([`CLEAN_SESSION`]: session settings reset, cursors closed,
//! advisory locks released), and discarded if that fails (an aborted transaction).
//! Each pooled client keeps its prepared statements, so a statement is parsed once per
//! connection rather than once per query.
//!
//! TLS follows `sslmode` as Spin does (through `tokio-postgres`): absent or `prefer`
//! tries TLS and falls back to plain, `require` insists on TLS, `disable` never uses it;
//! other modes (`verify-full`) make the connection string invalid. TLS verifies the
//! server's certificate chain and name against the public roots, plus the root CA a
//! guest gave through the connection builder ([`RootCa`]): Spin adds such a root to
//! its client's trust store the same way. A pool is keyed by the connection string
//! and the CA's hash, as Spin's are, so connections verified against one CA are never
//! handed to a guest that asked for another (or for none).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, RowStream, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Most connections per address, as in Spin.
const POOL_SIZE: usize = 64;
/// Most prepared statements kept per connection before the cache starts over.
const STATEMENT_CACHE_SIZE: usize = 256;
/// What deadpool-postgres's `RecyclingMethod::Clean` (Spin's) runs on a pooled client
/// before handing it out again. Inside a transaction left open it succeeds and leaves
/// the transaction open; inside an aborted one it fails and the client is discarded.
const CLEAN_SESSION: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
     UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES;";

/// A root CA a guest handed over with `set-ca-root`: the first certificate of a PEM
/// text, and the SHA-256 of the whole text (part of a pool's key, as in Spin).
#[derive(Clone)]
pub struct RootCa {
    certificate: CertificateDer<'static>,
    hash: [u8; 32],
}

impl std::fmt::Debug for RootCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hash: String = self.hash[..8].iter().map(|b| format!("{b:02x}")).collect();
        write!(f, "RootCa {{ sha256: {hash}… }}")
    }
}

impl RootCa {
    /// Reads the first `CERTIFICATE` block of `pem`, as Spin's client does (OpenSSL's
    /// `PEM_read_bio_X509`: text around the block is ignored, and so are further
    /// certificates). The error says what is wrong, never what the text holds.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let certificate = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| "no PEM certificate found".to_string())?;
        // What the verifier will need of it: a well-formed X.509 certificate.
        rustls::RootCertStore::empty()
            .add(certificate.clone())
            .map_err(|_| "the PEM block is not an X.509 certificate".to_string())?;
        Ok(Self {
            certificate,
            hash: Sha256::digest(pem.as_bytes()).into(),
        })
    }
}

/// The TLS client of a pool: the public roots, and the guest's root CA when it gave one.
fn tls_connector(ca_root: Option<&RootCa>) -> MakeRustlsConnect {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(ca_root) = ca_root {
        // Checked by `RootCa::from_pem`.
        let _ = roots.add(ca_root.certificate.clone());
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// A pool's key: the connection string and the hash of the guest's root CA.
type PoolKey = (String, Option<[u8; 32]>);

/// The pools of one app.
pub struct PgPools {
    pools: Mutex<HashMap<PoolKey, Arc<Pool>>>,
    tls: MakeRustlsConnect,
}

impl std::fmt::Debug for PgPools {
    // Pool keys are connection strings with passwords.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.pools.lock().map(|pools| pools.len()).unwrap_or(0);
        write!(f, "PgPools {{ {count} pools }}")
    }
}

impl Default for PgPools {
    fn default() -> Self {
        Self::new()
    }
}

impl PgPools {
    /// No pools yet; they open on first use.
    pub fn new() -> Self {
        Self {
            pools: Mutex::new(HashMap::new()),
            tls: tls_connector(None),
        }
    }

    /// A client for `address` (verified against `ca_root` as well as the public roots
    /// when there is one), from the pool or newly connected. The error text is what
    /// the guest gets in `connection-failed`.
    pub async fn checkout(
        &self,
        address: &str,
        ca_root: Option<&RootCa>,
    ) -> Result<Checkout, String> {
        let pool = {
            let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
            let key = (address.to_string(), ca_root.map(|ca_root| ca_root.hash));
            match pools.get(&key) {
                Some(pool) => pool.clone(),
                None => {
                    let config = address.parse::<tokio_postgres::Config>().map_err(|error| {
                        format!(
                            "{:?}",
                            anyhow::Error::new(error).context("parsing Postgres connection string")
                        )
                    })?;
                    let tls = match ca_root {
                        Some(ca_root) => tls_connector(Some(ca_root)),
                        None => self.tls.clone(),
                    };
                    let pool = Arc::new(Pool {
                        config,
                        tls,
                        idle: Mutex::new(Vec::new()),
                        permits: Arc::new(Semaphore::new(POOL_SIZE)),
                        tasks: Mutex::new(Vec::new()),
                    });
                    pools.insert(key, pool.clone());
                    pool
                }
            }
        };
        let permit = pool
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| "too many connections".to_string())?;
        while let Some(client) = pool.take_idle() {
            if client.client.batch_execute(CLEAN_SESSION).await.is_ok() {
                return Ok(Checkout {
                    client: Some(client),
                    pool,
                    _permit: permit,
                });
            }
        }
        let client = pool.connect().await?;
        Ok(Checkout {
            client: Some(client),
            pool,
            _permit: permit,
        })
    }

    /// Closes every idle connection and waits (briefly) for the connections to end, so
    /// that a test can drop its database right after.
    pub async fn close(&self) {
        let pools: Vec<Arc<Pool>> = self
            .pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, pool)| pool)
            .collect();
        for pool in pools {
            pool.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
            let tasks: Vec<JoinHandle<()>> =
                std::mem::take(&mut *pool.tasks.lock().unwrap_or_else(|e| e.into_inner()));
            for task in tasks {
                if !task.is_finished() {
                    // A connection still checked out by a request in flight ends when
                    // that request does; do not wait for it forever.
                    let _ = tokio::time::timeout(Duration::from_millis(500), task).await;
                }
            }
        }
    }
}

struct Pool {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    idle: Mutex<Vec<PooledClient>>,
    permits: Arc<Semaphore>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    fn take_idle(&self) -> Option<PooledClient> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(client) = idle.pop() {
            if !client.client.is_closed() {
                return Some(client);
            }
        }
        None
    }

    async fn connect(&self) -> Result<PooledClient, String> {
        let (client, connection) =
            self.config
                .connect(self.tls.clone())
                .await
                .map_err(|error| {
                    format!(
                        "{:?}",
                        anyhow::Error::new(error).context("connecting to PostgreSQL")
                    )
                })?;
        let task = tokio::spawn(async move {
            // The connection ends when the client is dropped or the server goes away;
            // the next checkout sees `is_closed` and connects again.
            let _ = connection.await;
        });
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|task| !task.is_finished());
        tasks.push(task);
        Ok(PooledClient {
            client,
            statements: Mutex::new(HashMap::new()),
        })
    }

    fn put_back(&self, client: PooledClient) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(client);
    }
}

/// A connection with its prepared statements. Its methods take `&self`: a guest's
/// concurrent calls on one `connection` (`query-async` while another task of the
/// instance runs `execute`) are pipelined on the one server session, as tokio-postgres
/// (and so Spin) does.
pub struct PooledClient {
    client: Client,
    statements: Mutex<HashMap<String, Statement>>,
}

/// Why a `query` failed: before its rows (parsing, binding: the server's error arrives
/// structured in Spin) or while they streamed (execution, a row that does not decode:
/// Spin flattens the error to text).
#[derive(Debug)]
pub enum QueryFailure {
    /// While preparing or binding the statement.
    Start(tokio_postgres::Error),
    /// While the statement ran and its rows came.
    Rows(tokio_postgres::Error),
}

impl PooledClient {
    /// The statement for `sql`, prepared once per connection.
    async fn statement(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.cached_statements().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        let mut statements = self.cached_statements();
        if statements.len() >= STATEMENT_CACHE_SIZE {
            statements.clear();
        }
        statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    fn cached_statements(&self) -> std::sync::MutexGuard<'_, HashMap<String, Statement>> {
        self.statements.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A cached statement whose result shape changed after DDL must be prepared again.
    fn is_stale_statement(error: &tokio_postgres::Error) -> bool {
        error
            .as_db_error()
            .is_some_and(|db| db.code().code() == "0A000" && db.message().contains("cached plan"))
    }

    /// Binds and starts a statement that returns rows; its rows then come through the
    /// stream. An error here is the server's answer to parsing or binding.
    pub async fn start_query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<RowStream, tokio_postgres::Error> {
        let mut retried = false;
        loop {
            let statement = self.statement(sql).await?;
            match self
                .client
                .query_raw(&statement, params.iter().copied())
                .await
            {
                Err(error) if !retried && Self::is_stale_statement(&error) => {
                    self.cached_statements().remove(sql);
                    retried = true;
                }
                other => return other,
            }
        }
    }

    /// Runs a statement that returns rows, as Spin does: the statement is bound and
    /// started, then its rows are read one by one.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, QueryFailure> {
        let stream = self
            .start_query(sql, params)
            .await
            .map_err(QueryFailure::Start)?;
        let mut stream = std::pin::pin!(stream);
        let mut rows = Vec::new();
        while let Some(row) = stream.try_next().await.map_err(QueryFailure::Rows)? {
            rows.push(row);
        }
        Ok(rows)
    }

    /// Runs a statement and returns the number of rows it changed.
    pub async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let mut retried = false;
        loop {
            let statement = self.statement(sql).await?;
            match self.client.execute(&statement, params).await {
                Err(error) if !retried && Self::is_stale_statement(&error) => {
                    self.cached_statements().remove(sql);
                    retried = true;
                }
                other => return other,
            }
        }
    }
}

/// A client checked out of its pool for the life of one guest `connection`.
pub struct Checkout {
    client: Option<PooledClient>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Checkout {
    /// The client.
    pub fn client(&self) -> &PooledClient {
        self.client
            .as_ref()
            .expect("a checkout holds its client until released")
    }
}

impl Drop for Checkout {
    /// Returns the client to the pool as it is (a transaction left open stays open, as
    /// in Spin); a closed client is dropped. The pool permit goes with the checkout.
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && !client.client.is_closed()
        {
            self.pool.put_back(client);
        }
    }
}
