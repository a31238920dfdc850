//! `spin:postgres/postgres@4.1.0` for guests (which serves their `@4.0.0` imports too,
//! as Spin's 4.2.0 host does): the address allow-list, pooled connections, the
//! connection builder's root CA, and Spin's type mapping and error variants.
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

// The error type is the interface's own (`spin:postgres` `error`), large as it is;
// Spin's host allows the same lint for the same reason.
#![allow(clippy::result_large_err)]

pub mod convert;
pub mod pool;

use wasmtime::component::Resource;

use crate::bindings::spin::postgres::postgres::{
    self as wit, DbError, Error, ParameterValue, QueryError, RowSet,
};
use crate::state::Ctx;
use pool::QueryFailure;

/// The host side of a guest's `connection` resource.
pub struct PgConnection {
    checkout: pool::Checkout,
}

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

impl Ctx {
    fn pg_connection(
        &mut self,
        connection: &Resource<PgConnection>,
    ) -> Result<&mut PgConnection, Error> {
        self.table
            .get_mut(connection)
            .map_err(|_| Error::ConnectionFailed("no connection found".into()))
    }
}

impl Ctx {
    /// Connects to `address` (allowed hosts first) and hands the guest the connection.
    async fn open_connection(
        &mut self,
        address: &str,
        ca_root: Option<&pool::RootCa>,
    ) -> Result<Resource<PgConnection>, Error> {
        ensure_address_allowed(&self.component.allowed_hosts, address)?;
        let checkout = self
            .component
            .pg_pools
            .checkout(address, ca_root)
            .await
            .map_err(Error::ConnectionFailed)?;
        self.table
            .push(PgConnection { checkout })
            .map_err(|_| Error::ConnectionFailed("too many connections".into()))
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
        let builder = self
            .table
            .get(&builder)
            .map_err(|_| Error::ConnectionFailed("no builder found".into()))?;
        let (address, ca_root) = (builder.address.clone(), builder.ca_root.clone());
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
        let client = self.pg_connection(&connection)?.checkout.client();
        let rows = match client.query(&statement, &as_refs(&params)).await {
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
        let client = self.pg_connection(&connection)?.checkout.client();
        client
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
