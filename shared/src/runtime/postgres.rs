//! `spin:postgres/postgres@4.2.0` through spin-sdk 7: connections opened with
//! `open-async` or the connection builder's `build-async` (with the root CA the
//! server's certificate must chain to), statements run with `query-async` and
//! `execute-async`. Each call suspends only the request that makes it: while one
//! request waits for Postgres, the instance serves the others (see
//! [`crate::runtime`]).
//!
//! A query's rows arrive as a stream, and its outcome in a future that resolves after
//! the last row: [`Connection::query`] reads both and hands back the whole
//! [`RowSet`], or the error, whichever row it came after (Spin reports an error raised
//! while rows stream, a constraint violation or a `timestamptz` column it cannot
//! decode, only in that future).
//!
//! One synchronous call stays: [`Connection::roll_back_now`], for the places that
//! cannot wait (a `Drop`, the panic hook) and must not let a transaction outlive its
//! request.
//!
//! This module and the rest of [`crate::runtime`] are the only ones that name
//! spin-sdk: the rest of `shared/` takes the value and error types below from
//! [`crate::db`].

// The error type is the interface's own (`spin:postgres` `error`), large as it is.
#![allow(clippy::result_large_err)]

pub use spin_sdk::pg::{
    Column, DbError as WireDbError, DbValue, Decode, Error as SdkError, ParameterValue, PgError,
    QueryError,
};

use spin_sdk::pg::wit::postgres as wire;

/// A connection to Postgres, owned by one request at a time ([`crate::db`]).
pub struct Connection(wire::Connection);

impl Connection {
    /// Connects to `address` (`connection.open-async`).
    pub async fn open(address: &str) -> Result<Self, PgError> {
        wire::Connection::open_async(address.to_string())
            .await
            .map(Self)
    }

    /// Connects to `address` through the connection builder, trusting `ca_root` (a PEM
    /// certificate) for the server's certificate.
    pub async fn open_with_ca(address: &str, ca_root: &str) -> Result<Self, PgError> {
        let builder = wire::ConnectionBuilder::new(address);
        builder.set_ca_root(ca_root)?;
        builder.build_async().await.map(Self)
    }

    /// Runs `sql` and reads every row it yields, then its outcome.
    pub async fn query(&self, sql: &str, params: &[ParameterValue]) -> Result<RowSet, PgError> {
        let (columns, rows, outcome) = self.0.query_async(sql.to_string(), params.to_vec()).await?;
        let rows = rows.collect().await;
        outcome.await?;
        Ok(RowSet { columns, rows })
    }

    /// Runs `sql` and answers how many rows it changed.
    pub async fn execute(&self, sql: &str, params: &[ParameterValue]) -> Result<u64, PgError> {
        self.0.execute_async(sql.to_string(), params.to_vec()).await
    }

    /// `ROLLBACK`, with the synchronous call: it returns before anything else of the
    /// instance runs, so it can end a transaction from a `Drop` or the panic hook.
    pub fn roll_back_now(&self) -> Result<u64, PgError> {
        self.0.execute("ROLLBACK", &[])
    }
}

/// The rows of a query, with its columns.
#[derive(Debug, Clone, Default)]
pub struct RowSet {
    /// The columns, in order; empty when the statement yielded no row (Spin's
    /// `query-async` learns the columns from the first row).
    pub columns: Vec<Column>,
    /// Each row's values, in the columns' order.
    pub rows: Vec<Vec<DbValue>>,
}

impl RowSet {
    /// The rows, each readable by column name.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row {
            columns: &self.columns,
            values,
        })
    }
}

/// A row of a [`RowSet`], read by column name.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [Column],
    values: &'a [DbValue],
}

impl Row<'_> {
    /// The value of `column` decoded as `T`; `None` when there is no such column or the
    /// value does not decode as `T`.
    pub fn get<T: Decode>(&self, column: &str) -> Option<T> {
        let index = self.columns.iter().position(|c| c.name == column)?;
        T::decode(self.values.get(index)?).ok()
    }
}
