//! `spin:postgres/postgres@4.2.0` for guests (which serves their `@4.0.0` and `@4.1.0`
//! imports too, as Spin's 4.2.0 host does): the address allow-list, pooled
//! connections, the connection builder's root CA, and Spin's type mapping and error
//! variants.
//!
//! - `open` refuses an address whose host and port are not in the component's
//!   `allowed_outbound_hosts` (`connection-failed("address postgres://… is not
//!   permitted")`); an unparsable connection string, a refused or unreachable server, a
//!   wrong password, a missing database and a TLS failure are `connection-failed` too.
//! - `connection-builder`: `set-ca-root` takes the first PEM certificate of its text
//!   (a text without one is `other("invalid root certificate: …")`, as in Spin) and
//!   `build` connects as `open` does, with that CA trusted besides the public roots:
//!   a server whose certificate does not chain to either is `connection-failed`.
//!   `build` checks the allow-list as `open` does. Spin's synchronous `build` does not
//!   (4.0.0 to 4.0.2, and main at 94a8fc8a; its `build-async` does): this host is the
//!   stricter one there, deliberately, and `tests/postgres.rs` pins both behaviours.
//! - SQL errors found while parsing or binding, and every `execute` error, are
//!   `query-failed(db-error{code, message, severity, detail, extras})`; an error raised
//!   while a `query`'s rows come (a constraint violation, a row that does not decode: a
//!   `timestamptz` column) is `query-failed(text)` holding the error's debug text, as in
//!   Spin; failures without a server error (a dropped connection) are text too.
//! - A `query` that returns no rows is `query-failed(text)` naming spinframework/spin#3671
//!   ([`NO_ROWS`]): Spin never answers it at all.
//! - Malformed parameter values are `bad-parameter` for `query` and
//!   `value-conversion-failed` for `execute`, as in Spin.
//!
//! The `*-async` functions of 4.2.0 (spin-sdk 7's `pg` module) are concurrent host
//! functions ([`PgData`]: `HostConnectionWithStore`, `HostConnectionBuilderWithStore`):
//! they take what they need out of the store, await the network without it, and put
//! the result back, so that the instance runs its other tasks (other requests, in a
//! reused WASIp3 instance) meanwhile. They answer as Spin's do:
//! - `open-async` and `build-async` are `open` and `build` (allow-list, root CA, the
//!   same `connection-failed` texts).
//! - `query-async` answers once the statement is bound and its first row (or its end)
//!   has come: the columns, read from that first row (so a result without rows has
//!   none: no columns, an empty stream, and `ok` in the future; the sync rule of
//!   [`NO_ROWS`] is not applied, since Spin's `query-async` answers such a query), a
//!   stream of the rows, and a future of how the query ended. Parsing and binding
//!   errors are the call's own `query-failed(db-error)`; an error raised while the rows
//!   come arrives in the future after the rows before it, structured
//!   (`query-failed(db-error)` with its SQLSTATE, unlike the sync `query`'s text), and a
//!   row that does not decode (a `timestamptz` column) is `query-failed(text)` in the
//!   future, after the columns.
//! - `execute-async` is `execute`.
//!
//! A connection opened either way serves both the sync and the async functions (a
//! guest may send a sync `ROLLBACK` from a panic hook on a connection it uses async).

// The error type is the interface's own (`spin:postgres` `error`), large as it is;
// Spin's host allows the same lint for the same reason.
#![allow(clippy::result_large_err)]

pub mod convert;
pub mod pool;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::TryStreamExt;
use tokio::sync::{mpsc, oneshot};
use wasmtime::StoreContextMut;
use wasmtime::component::{
    Accessor, Destination, FutureReader, HasData, Resource, ResourceTable, StreamProducer,
    StreamReader, StreamResult, VecBuffer,
};

use crate::bindings::spin::postgres::postgres::{
    self as wit, Column, DbError, DbValue, Error, ParameterValue, QueryError, RowSet,
};
use crate::state::{ComponentRuntime, Ctx};
use pool::QueryFailure;

/// The host side of a guest's `connection` resource. The checkout is shared with the
/// calls in flight on it, so that the guest's tasks can use one connection at once; the
/// client goes back to the pool when the resource is dropped and no call holds it.
pub struct PgConnection {
    checkout: Arc<pool::Checkout>,
}

/// How `spin:postgres` reaches an instance's [`Ctx`], for the linker and for the
/// concurrent (`*-async`) functions.
pub struct PgData;

impl HasData for PgData {
    type Data<'a> = &'a mut Ctx;
}

/// A result row as the guest gets it.
type WitRow = Vec<DbValue>;

/// Rows buffered between the task that reads them from the server and the guest: the
/// task waits when the guest is this far behind, as Spin's does.
const ROW_BUFFER: usize = 16;

/// The host side of a guest's `connection-builder` resource.
pub struct PgConnectionBuilder {
    address: String,
    ca_root: Option<pool::RootCa>,
}

/// What Spin's `set-ca-root` says of a text it cannot use: its client wraps the
/// parser's failure in this context and reports the context alone.
const INVALID_ROOT_CERTIFICATE: &str = "invalid root certificate";

/// Checks a connection string's hosts against the allow-list, as Spin does.
pub fn ensure_address_allowed(
    allowed: &crate::allowed_hosts::AllowedHosts,
    address: &str,
) -> Result<(), Error> {
    let config = address
        .parse::<tokio_postgres::Config>()
        .map_err(|error| Error::ConnectionFailed(error.to_string()))?;
    let ports = config.get_ports();
    for (index, host) in config.get_hosts().iter().enumerate() {
        match host {
            tokio_postgres::config::Host::Tcp(host) => {
                let port = ports.get(index).or_else(|| {
                    if ports.len() == 1 {
                        ports.first()
                    } else {
                        None
                    }
                });
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                let url = format!("{host}{port}");
                if !allowed.allows_url(&url, "postgres") {
                    return Err(Error::ConnectionFailed(format!(
                        "address postgres://{url} is not permitted"
                    )));
                }
            }
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(_) => {
                return Err(Error::ConnectionFailed(
                    "Unix sockets are not supported on WebAssembly".into(),
                ));
            }
        }
    }
    Ok(())
}

/// What a `query` that yields no row gets here. Spin never answers such a query
/// (spinframework/spin#3671): its host waits for a first row to learn the columns, and
/// the request hangs with its pooled connection. Failing loudly instead lets a test on
/// this host catch the statement at once.
pub const NO_ROWS: &str = "the statement returned no rows: under Spin a `query` that \
     returns no rows never answers (spinframework/spin#3671); write it to return at \
     least one row, or send it with `execute`";

fn query_failed(error: tokio_postgres::Error) -> Error {
    let as_text = format!("{error:?}");
    match error.as_db_error() {
        None => Error::QueryFailed(QueryError::Text(as_text)),
        Some(db) => {
            let mut extras = Vec::new();
            let mut extra = |name: &str, value: Option<String>| {
                if let Some(value) = value {
                    extras.push((name.to_string(), value));
                }
            };
            extra("column", db.column().map(str::to_string));
            extra("constraint", db.constraint().map(str::to_string));
            extra("routine", db.routine().map(str::to_string));
            extra("hint", db.hint().map(str::to_string));
            extra("table", db.table().map(str::to_string));
            extra("datatype", db.datatype().map(str::to_string));
            extra("schema", db.schema().map(str::to_string));
            extra("file", db.file().map(str::to_string));
            extra("line", db.line().map(|line| line.to_string()));
            extra("where_", db.where_().map(str::to_string));
            Error::QueryFailed(QueryError::DbError(DbError {
                as_text,
                severity: db.severity().to_string(),
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                extras,
            }))
        }
    }
}

fn as_refs(params: &[convert::SqlParam]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|param| param.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

/// The client behind a guest's `connection`.
fn connection_checkout(
    table: &ResourceTable,
    connection: &Resource<PgConnection>,
) -> Result<Arc<pool::Checkout>, Error> {
    table
        .get(connection)
        .map(|connection| connection.checkout.clone())
        .map_err(|_| Error::ConnectionFailed("no connection found".into()))
}

/// The address and root CA of a guest's `connection-builder`.
fn builder_settings(
    table: &ResourceTable,
    builder: &Resource<PgConnectionBuilder>,
) -> Result<(String, Option<pool::RootCa>), Error> {
    let builder = table
        .get(builder)
        .map_err(|_| Error::ConnectionFailed("no builder found".into()))?;
    Ok((builder.address.clone(), builder.ca_root.clone()))
}

/// Checks `address` against the component's allowed hosts, then takes a client for it
/// out of the app's pools. Needs nothing of the instance's store.
async fn checkout(
    component: &ComponentRuntime,
    address: &str,
    ca_root: Option<&pool::RootCa>,
) -> Result<pool::Checkout, Error> {
    ensure_address_allowed(&component.allowed_hosts, address)?;
    component
        .pg_pools
        .checkout(address, ca_root)
        .await
        .map_err(Error::ConnectionFailed)
}

/// Hands the guest a connection resource for `checkout`.
fn push_connection(
    table: &mut ResourceTable,
    checkout: pool::Checkout,
) -> Result<Resource<PgConnection>, Error> {
    table
        .push(PgConnection {
            checkout: Arc::new(checkout),
        })
        .map_err(|_| Error::ConnectionFailed("too many connections".into()))
}

impl Ctx {
    /// Connects to `address` (allowed hosts first) and hands the guest the connection.
    async fn open_connection(
        &mut self,
        address: &str,
        ca_root: Option<&pool::RootCa>,
    ) -> Result<Resource<PgConnection>, Error> {
        let component = self.component.clone();
        let checkout = checkout(&component, address, ca_root).await?;
        push_connection(&mut self.table, checkout)
    }
}

impl wit::HostConnectionBuilder for Ctx {
    async fn new(&mut self, address: String) -> Resource<PgConnectionBuilder> {
        self.table
            .push(PgConnectionBuilder {
                address,
                ca_root: None,
            })
            .expect("the resource table has room for a builder")
    }

    async fn set_ca_root(
        &mut self,
        builder: Resource<PgConnectionBuilder>,
        certificate: String,
    ) -> Result<(), Error> {
        let ca_root = pool::RootCa::from_pem(&certificate).map_err(|_reason| {
            // Spin words every unusable text alike; so does this host.
            Error::Other(format!(
                "{INVALID_ROOT_CERTIFICATE}: {INVALID_ROOT_CERTIFICATE}"
            ))
        })?;
        let builder = self
            .table
            .get_mut(&builder)
            .map_err(|_| Error::ConnectionFailed("no builder found".into()))?;
        builder.ca_root = Some(ca_root);
        Ok(())
    }

    async fn build(
        &mut self,
        builder: Resource<PgConnectionBuilder>,
    ) -> Result<Resource<PgConnection>, Error> {
        let (address, ca_root) = builder_settings(&self.table, &builder)?;
        self.open_connection(&address, ca_root.as_ref()).await
    }

    async fn drop(&mut self, builder: Resource<PgConnectionBuilder>) -> wasmtime::Result<()> {
        self.table.delete(builder)?;
        Ok(())
    }
}

impl wit::HostConnection for Ctx {
    async fn open(&mut self, address: String) -> Result<Resource<PgConnection>, Error> {
        self.open_connection(&address, None).await
    }

    async fn query(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<RowSet, Error> {
        let params = convert::sql_params(&params)
            .map_err(|error| Error::BadParameter(format!("{error:?}")))?;
        let checkout = connection_checkout(&self.table, &connection)?;
        let rows = match checkout.client().query(&statement, &as_refs(&params)).await {
            Ok(rows) => rows,
            Err(QueryFailure::Start(error)) => return Err(query_failed(error)),
            // Spin reads the rows inside an `anyhow` context and flattens whatever
            // fails there, a server error included, to its debug text.
            Err(QueryFailure::Rows(error)) => {
                return Err(Error::QueryFailed(QueryError::Text(format!(
                    "{:?}",
                    query_failed(error)
                ))));
            }
        };
        if rows.is_empty() {
            return Err(Error::QueryFailed(QueryError::Text(NO_ROWS.into())));
        }
        let columns = convert::columns(&rows);
        let rows = rows
            .iter()
            .map(convert::db_row)
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(|error| Error::QueryFailed(QueryError::Text(format!("{error:?}"))))?;
        Ok(RowSet { columns, rows })
    }

    async fn execute(
        &mut self,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<u64, Error> {
        let params = convert::sql_params(&params)
            .map_err(|error| Error::ValueConversionFailed(format!("{error:?}")))?;
        let checkout = connection_checkout(&self.table, &connection)?;
        checkout
            .client()
            .execute(&statement, &as_refs(&params))
            .await
            .map_err(query_failed)
    }

    async fn drop(&mut self, connection: Resource<PgConnection>) -> wasmtime::Result<()> {
        // Dropping the checkout returns the client to the pool as it is.
        self.table.delete(connection)?;
        Ok(())
    }
}

impl wit::Host for Ctx {}

impl<T: Send> wit::HostConnectionBuilderWithStore<T> for PgData {
    async fn build_async(
        accessor: &Accessor<T, Self>,
        builder: Resource<PgConnectionBuilder>,
    ) -> Result<Resource<PgConnection>, Error> {
        let (component, (address, ca_root)) = accessor.with(|mut access| {
            let ctx = access.get();
            builder_settings(&ctx.table, &builder).map(|settings| (ctx.component.clone(), settings))
        })?;
        let checkout = checkout(&component, &address, ca_root.as_ref()).await?;
        accessor.with(|mut access| push_connection(&mut access.get().table, checkout))
    }
}

impl<T: Send> wit::HostConnectionWithStore<T> for PgData {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> Result<Resource<PgConnection>, Error> {
        let component = accessor.with(|mut access| access.get().component.clone());
        let checkout = checkout(&component, &address, None).await?;
        accessor.with(|mut access| push_connection(&mut access.get().table, checkout))
    }

    #[allow(clippy::type_complexity)] // the interface's own result type
    async fn query_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<
        (
            Vec<Column>,
            StreamReader<WitRow>,
            FutureReader<Result<(), Error>>,
        ),
        Error,
    > {
        let params = convert::sql_params(&params)
            .map_err(|error| Error::BadParameter(format!("{error:?}")))?;
        let checkout =
            accessor.with(|mut access| connection_checkout(&access.get().table, &connection))?;
        let rows = checkout
            .client()
            .start_query(&statement, &as_refs(&params))
            .await
            .map_err(query_failed)?;
        drop(params);
        let QueryRows {
            columns,
            rows,
            outcome,
        } = QueryRows::read(rows);
        // Spin answers once the first row (or the end) has come: the columns are that
        // row's, and none when there is none.
        let columns = columns.await.unwrap_or_default();
        accessor
            .with(|mut access| {
                let rows = StreamReader::new(&mut access, RowProducer(rows))?;
                let outcome = FutureReader::new(&mut access, async move {
                    let outcome: Result<(), Error> = outcome.await.unwrap_or_else(|_| {
                        Err(Error::Other("the query's reader ended early".into()))
                    });
                    wasmtime::Result::<_, wasmtime::Error>::Ok(outcome)
                })?;
                wasmtime::Result::<_, wasmtime::Error>::Ok((columns, rows, outcome))
            })
            .map_err(|error: wasmtime::Error| Error::Other(format!("{error:?}")))
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<u64, Error> {
        let params = convert::sql_params(&params)
            .map_err(|error| Error::ValueConversionFailed(format!("{error:?}")))?;
        let checkout =
            accessor.with(|mut access| connection_checkout(&access.get().table, &connection))?;
        checkout
            .client()
            .execute(&statement, &as_refs(&params))
            .await
            .map_err(query_failed)
    }
}

/// The three parts of a `query-async` answer, fed by a task that reads the rows.
struct QueryRows {
    /// The columns, sent with the first row; dropped unsent when there is none.
    columns: oneshot::Receiver<Vec<Column>>,
    /// The converted rows.
    rows: mpsc::Receiver<WitRow>,
    /// How the query ended.
    outcome: oneshot::Receiver<Result<(), Error>>,
}

impl QueryRows {
    /// Starts reading `stream` on the runtime: each row is converted and handed on
    /// (at most [`ROW_BUFFER`] ahead of the guest), until the rows end, one fails (a
    /// server error raised mid-query, structured; a value that does not decode, as
    /// text), or the guest stops reading.
    fn read(stream: tokio_postgres::RowStream) -> Self {
        let (columns_tx, columns) = oneshot::channel();
        let (rows_tx, rows) = mpsc::channel(ROW_BUFFER);
        let (outcome_tx, outcome) = oneshot::channel();
        tokio::spawn(async move {
            let mut columns_tx = Some(columns_tx);
            let mut stream = std::pin::pin!(stream);
            let result = loop {
                let row = tokio::select! {
                    biased;
                    // The guest dropped the stream: stop reading.
                    () = rows_tx.closed() => break Ok(()),
                    row = stream.try_next() => row,
                };
                let row = match row {
                    Ok(Some(row)) => row,
                    Ok(None) => break Ok(()),
                    Err(error) => break Err(query_failed(error)),
                };
                if let Some(columns_tx) = columns_tx.take() {
                    let _ = columns_tx.send(convert::columns(std::slice::from_ref(&row)));
                }
                let values = match convert::db_row(&row) {
                    Ok(values) => values,
                    Err(error) => {
                        break Err(Error::QueryFailed(QueryError::Text(format!("{error:?}"))));
                    }
                };
                if rows_tx.send(values).await.is_err() {
                    break Ok(());
                }
            };
            // No first row: the answer goes out without columns.
            drop(columns_tx);
            // The rows end before the outcome is known to the guest.
            drop(rows_tx);
            let _ = outcome_tx.send(result);
        });
        Self {
            columns,
            rows,
            outcome,
        }
    }
}

/// The guest's end of a `query-async` row stream.
struct RowProducer(mpsc::Receiver<WitRow>);

impl<D> StreamProducer<D> for RowProducer {
    type Item = WitRow;
    type Buffer = VecBuffer<WitRow>;

    fn poll_produce<'a>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        store: StoreContextMut<'a, D>,
        mut destination: Destination<'a, Self::Item, Self::Buffer>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let capacity = destination.remaining(store);
        if capacity == Some(0) {
            // A zero-length read asks whether rows are ready; say so without taking one
            // (a row handed over here could be lost if the guest then closes).
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let receiver = &mut self.get_mut().0;
        match receiver.poll_recv(cx) {
            Poll::Ready(Some(row)) => {
                let mut batch = vec![row];
                let limit = capacity.unwrap_or(1);
                while batch.len() < limit {
                    match receiver.try_recv() {
                        Ok(row) => batch.push(row),
                        Err(_) => break,
                    }
                }
                destination.set_buffer(batch.into());
                Poll::Ready(Ok(StreamResult::Completed))
            }
            Poll::Ready(None) => Poll::Ready(Ok(StreamResult::Dropped)),
            Poll::Pending if finish => Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => Poll::Pending,
        }
    }
}
