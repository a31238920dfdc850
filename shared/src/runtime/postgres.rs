//! `spin:postgres/postgres@4.1.0`, bound here because spin-sdk 5.2 binds only 4.0.0
//! (its `pg4`). 4.1.0 is 4.0.0 plus the `connection-builder` resource, through which
//! a component gives Spin the root CA to verify the database server with
//! (`set-ca-root`). Every type of the interface is mapped onto spin-sdk's `pg4` type
//! of the same name, which has the same shape, so rows, parameters and errors keep the
//! SDK's conversions (`Decode`, `RowSet::rows`, `From<…> for ParameterValue`); only the
//! two resources are generated here.
//!
//! The whole of `Db` goes through this interface, with or without a CA, so a component
//! that uses it imports one version of `spin:postgres` for its own connections.
//!
//! This module and [`crate::runtime::http`] are the only ones that name spin-sdk: the
//! rest of `shared/` takes the value and error types below from [`crate::db`].

pub use spin_sdk::pg4::{
    DbError as WireDbError, DbValue, Decode, Error as SdkError, ParameterValue, PgError,
    QueryError, Row, RowSet,
};

pub use bindings::spin::postgres::postgres::{Connection, ConnectionBuilder};

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "postgres",
        path: "wit",
        with: {
            "spin:postgres/postgres@4.1.0": generate,
            "spin:postgres/postgres@4.1.0/error": spin_sdk::pg4::PgError,
            "spin:postgres/postgres@4.1.0/query-error": spin_sdk::pg4::QueryError,
            "spin:postgres/postgres@4.1.0/db-error": spin_sdk::pg4::DbError,
            "spin:postgres/postgres@4.1.0/db-data-type": spin_sdk::pg4::DbDataType,
            "spin:postgres/postgres@4.1.0/db-value": spin_sdk::pg4::DbValue,
            "spin:postgres/postgres@4.1.0/parameter-value": spin_sdk::pg4::ParameterValue,
            "spin:postgres/postgres@4.1.0/interval": spin_sdk::pg4::Interval,
            "spin:postgres/postgres@4.1.0/column": spin_sdk::pg4::Column,
            "spin:postgres/postgres@4.1.0/row-set": spin_sdk::pg4::RowSet,
            "spin:postgres/postgres@4.1.0/range-bound-kind": spin_sdk::pg4::RangeBoundKind,
        },
    });
}
