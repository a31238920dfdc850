//! Pooled PostgreSQL connections, one pool per connection string, shared by every
//! request of an app.
//!
//! A guest's `connection` resource holds one pooled client for its whole life, so
//! `BEGIN` … `COMMIT` on one resource run on one server session. When the resource is
//! dropped the client goes back to the pool; if the guest left a transaction open
//! (it began one and never committed or rolled back, or the instance trapped), the
//! client is rolled back first, and discarded if that fails: no transaction leaks into
//! the next request. Each pooled client keeps its prepared statements, so a statement
//! is parsed once per connection rather than once per query.
//!
//! TLS follows `sslmode` as Spin does (through `tokio-postgres`): absent or `prefer`
//! tries TLS and falls back to plain, `require` insists on TLS, `disable` never uses it;
//! other modes (`verify-full`) make the connection string invalid.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Most connections per address, as in Spin.
const POOL_SIZE: usize = 64;
/// Most prepared statements kept per connection before the cache starts over.
const STATEMENT_CACHE_SIZE: usize = 256;

/// The pools of one app.
pub struct PgPools {
    pools: Mutex<HashMap<String, Arc<Pool>>>,
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
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Self {
            pools: Mutex::new(HashMap::new()),
            tls: MakeRustlsConnect::new(config),
        }
    }

    /// A client for `address`, from the pool or newly connected. The error text is
    /// what the guest gets in `connection-failed`.
    pub async fn checkout(&self, address: &str) -> Result<Checkout, String> {
        let pool = {
            let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
            match pools.get(address) {
                Some(pool) => pool.clone(),
                None => {
                    let config = address.parse::<tokio_postgres::Config>().map_err(|error| {
                        format!(
                            "{:?}",
                            anyhow::Error::new(error).context("parsing Postgres connection string")
                        )
                    })?;
                    let pool = Arc::new(Pool {
                        config,
                        idle: Mutex::new(Vec::new()),
                        permits: Arc::new(Semaphore::new(POOL_SIZE)),
                        tasks: Mutex::new(Vec::new()),
                    });
                    pools.insert(address.to_string(), pool.clone());
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
        if let Some(client) = pool.take_idle() {
            return Ok(Checkout {
                client: Some(client),
                pool,
                _permit: permit,
            });
        }
        let client = pool.connect(&self.tls).await?;
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

    async fn connect(&self, tls: &MakeRustlsConnect) -> Result<PooledClient, String> {
        let (client, connection) = self.config.connect(tls.clone()).await.map_err(|error| {
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
            statements: HashMap::new(),
            transaction_open: false,
        })
    }

    fn put_back(&self, client: PooledClient) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(client);
    }
}

/// A connection with its prepared statements.
pub struct PooledClient {
    client: Client,
    statements: HashMap<String, Statement>,
    transaction_open: bool,
}

/// What a statement does to the session's transaction, judged by its first keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransactionEffect {
    Begins,
    Ends,
    None,
}

fn first_keywords(sql: &str) -> (String, String) {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(comment) = rest.strip_prefix("--") {
            rest = comment
                .split_once('\n')
                .map(|(_, after)| after)
                .unwrap_or("");
        } else if let Some(comment) = rest.strip_prefix("/*") {
            rest = comment
                .split_once("*/")
                .map(|(_, after)| after)
                .unwrap_or("");
        } else {
            break;
        }
    }
    let mut words = rest
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|word| !word.is_empty())
        .map(|word| word.to_ascii_uppercase());
    (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    )
}

fn transaction_effect(sql: &str) -> TransactionEffect {
    let (first, second) = first_keywords(sql);
    match first.as_str() {
        "BEGIN" | "START" => TransactionEffect::Begins,
        "COMMIT" | "END" | "ABORT" => TransactionEffect::Ends,
        "ROLLBACK" if second != "TO" => TransactionEffect::Ends,
        "PREPARE" if second == "TRANSACTION" => TransactionEffect::Ends,
        _ => TransactionEffect::None,
    }
}

impl PooledClient {
    /// The statement for `sql`, prepared once per connection.
    async fn statement(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        if self.statements.len() >= STATEMENT_CACHE_SIZE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    fn note(&mut self, sql: &str, succeeded: bool) {
        match transaction_effect(sql) {
            TransactionEffect::Begins if succeeded => self.transaction_open = true,
            TransactionEffect::Ends if succeeded => self.transaction_open = false,
            _ => {}
        }
    }

    /// A cached statement whose result shape changed after DDL must be prepared again.
    fn is_stale_statement(error: &tokio_postgres::Error) -> bool {
        error
            .as_db_error()
            .is_some_and(|db| db.code().code() == "0A000" && db.message().contains("cached plan"))
    }

    /// Runs a statement that returns rows.
    pub async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let mut retried = false;
        let result = loop {
            let statement = match self.statement(sql).await {
                Ok(statement) => statement,
                Err(error) => break Err(error),
            };
            match self.client.query(&statement, params).await {
                Err(error) if !retried && Self::is_stale_statement(&error) => {
                    self.statements.remove(sql);
                    retried = true;
                }
                other => break other,
            }
        };
        self.note(sql, result.is_ok());
        result
    }

    /// Runs a statement and returns the number of rows it changed.
    pub async fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let mut retried = false;
        let result = loop {
            let statement = match self.statement(sql).await {
                Ok(statement) => statement,
                Err(error) => break Err(error),
            };
            match self.client.execute(&statement, params).await {
                Err(error) if !retried && Self::is_stale_statement(&error) => {
                    self.statements.remove(sql);
                    retried = true;
                }
                other => break other,
            }
        };
        self.note(sql, result.is_ok());
        result
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
    pub fn client(&mut self) -> &mut PooledClient {
        self.client
            .as_mut()
            .expect("a checkout holds its client until released")
    }

    /// Returns the client to the pool, rolling back a transaction the guest left open.
    pub async fn release(mut self) {
        if let Some(client) = self.client.take() {
            release(client, &self.pool).await;
        }
    }
}

async fn release(mut client: PooledClient, pool: &Pool) {
    if client.client.is_closed() {
        return;
    }
    if client.transaction_open {
        if client.client.batch_execute("ROLLBACK").await.is_err() {
            return;
        }
        client.transaction_open = false;
    }
    pool.put_back(client);
}

impl Drop for Checkout {
    fn drop(&mut self) {
        // Dropped without `release` (the instance trapped or its store was dropped):
        // release in the background, keeping the pool permit until it is done.
        let Some(client) = self.client.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.pool.clone();
        let permit = std::mem::replace(&mut self._permit, placeholder_permit());
        runtime.spawn(async move {
            release(client, &pool).await;
            drop(permit);
        });
    }
}

/// A permit of a throwaway semaphore, to move the real one out of a dropped checkout.
fn placeholder_permit() -> OwnedSemaphorePermit {
    Arc::new(Semaphore::new(1))
        .try_acquire_owned()
        .expect("a fresh semaphore has a permit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_statements_are_recognised() {
        assert_eq!(transaction_effect("BEGIN"), TransactionEffect::Begins);
        assert_eq!(
            transaction_effect("  begin isolation level serializable"),
            TransactionEffect::Begins
        );
        assert_eq!(
            transaction_effect("-- c\nSTART TRANSACTION"),
            TransactionEffect::Begins
        );
        assert_eq!(transaction_effect("commit"), TransactionEffect::Ends);
        assert_eq!(transaction_effect("ROLLBACK"), TransactionEffect::Ends);
        assert_eq!(
            transaction_effect("ROLLBACK TO SAVEPOINT a"),
            TransactionEffect::None
        );
        assert_eq!(transaction_effect("/* x */ END"), TransactionEffect::Ends);
        assert_eq!(transaction_effect("SELECT 1"), TransactionEffect::None);
        assert_eq!(
            transaction_effect("DO $$ BEGIN END $$"),
            TransactionEffect::None
        );
    }
}
