//! `spin:postgres/postgres@4.1.0`, bound here with its synchronous calls: spin-sdk 7
//! exposes Postgres only as async calls (`query-async`, …) and the domain code is
//! synchronous (see [`crate::runtime`]). 4.1.0 is 4.0.0 plus the `connection-builder`
//! resource, through which a component gives Spin the root CA to verify the database
//! server with (`set-ca-root`); Spin 4 serves it (its host implements 4.2.0, which
//! adds the async calls, and links a 4.1.0 import to it by semver). Every value type
//! of the interface is mapped onto spin-sdk 7's `pg` type of the same name, which has
//! the same shape, so parameters and values keep the SDK's conversions (`Decode`,
//! `From<…> for ParameterValue`); the resources and the `row-set` record are generated
//! here, and [`RowSet::rows`] gives rows by column name.
//!
//! This module and the rest of [`crate::runtime`] are the only ones that name
//! spin-sdk: the rest of `shared/` takes the value and error types below from
//! [`crate::db`].

pub use spin_sdk::pg::{
    Column, DbError as WireDbError, DbValue, Decode, Error as SdkError, ParameterValue, PgError,
    QueryError,
};

pub use bindings::spin::postgres::postgres::{Connection, ConnectionBuilder, RowSet};

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "postgres",
        path: "wit",
        with: {
            "spin:postgres/postgres@4.1.0": generate,
            "spin:postgres/postgres@4.1.0/error": spin_sdk::pg::PgError,
            "spin:postgres/postgres@4.1.0/query-error": spin_sdk::pg::QueryError,
            "spin:postgres/postgres@4.1.0/db-error": spin_sdk::pg::DbError,
            "spin:postgres/postgres@4.1.0/db-data-type": spin_sdk::pg::DbDataType,
            "spin:postgres/postgres@4.1.0/db-value": spin_sdk::pg::DbValue,
            "spin:postgres/postgres@4.1.0/parameter-value": spin_sdk::pg::ParameterValue,
            "spin:postgres/postgres@4.1.0/interval": spin_sdk::pg::Interval,
            "spin:postgres/postgres@4.1.0/column": spin_sdk::pg::Column,
            "spin:postgres/postgres@4.1.0/range-bound-kind": spin_sdk::pg::RangeBoundKind,
        },
    });
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
