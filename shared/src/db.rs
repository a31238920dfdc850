//! Postgres through Spin's `spin:postgres/postgres@4.0.0` interface (the SDK's `pg4`).
//!
//! Errors are mapped once, by SQLSTATE: an unreachable database, a connection that
//! died or a timeout is [`ApiError::DatabaseUnavailable`] (`503` with `Retry-After`);
//! a unique violation is a conflict; anything else is an internal error whose detail
//! goes to the log only.
//!
//! Parameters travel with the Rust type the SDK gives them and are checked against the
//! column's type by the host, as in Spin: pass a `uuid::Uuid` for a `uuid`, an `i64`
//! for an `int8`, and write an explicit cast (`$1::int4`, `$2::text::timestamptz`) where
//! the types differ.

use spin_sdk::pg4::{Connection, Decode, Error as SdkError, PgError, QueryError};
pub use spin_sdk::pg4::{DbValue, ParameterValue, Row, RowSet};

use crate::error::ApiError;

/// What went wrong talking to Postgres.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    /// The server could not be reached, the connection died, or it timed out.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The server refused the statement with this SQLSTATE.
    #[error("SQL error {code}: {message}")]
    Sql { code: String, message: String },
    /// A value that could not be converted either way, or another host error.
    #[error("database error: {0}")]
    Other(String),
}

impl DbError {
    /// The SQLSTATE, for SQL errors.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            DbError::Sql { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn is_unique_violation(&self) -> bool {
        self.sqlstate() == Some("23505")
    }

    fn from_pg(error: PgError) -> Self {
        match error {
            PgError::ConnectionFailed(text) => DbError::Unavailable(text),
            PgError::QueryFailed(QueryError::DbError(db)) => {
                if sqlstate_means_unavailable(&db.code) {
                    DbError::Unavailable(format!("{}: {}", db.code, db.message))
                } else {
                    DbError::Sql {
                        code: db.code,
                        message: db.message,
                    }
                }
            }
            PgError::QueryFailed(QueryError::Text(text)) => {
                if text_means_unavailable(&text) {
                    DbError::Unavailable(text)
                } else {
                    DbError::Other(text)
                }
            }
            PgError::BadParameter(text)
            | PgError::ValueConversionFailed(text)
            | PgError::Other(text) => DbError::Other(text),
        }
    }
}

/// SQLSTATEs that say "the database is not there for you right now", not "your SQL is
/// wrong": connection exceptions, shutdowns, cancellations (statement timeouts), too many
/// connections, and serialisation failures or deadlocks, which a retry resolves.
fn sqlstate_means_unavailable(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("57P")
        || matches!(code, "57014" | "53300" | "53400" | "40001" | "40P01")
}

fn text_means_unavailable(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    [
        "connection",
        "closed",
        "timed out",
        "timeout",
        "communicating",
        "broken pipe",
        "reset",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(detail) => ApiError::DatabaseUnavailable { detail },
            DbError::Sql { ref code, .. } if code == "23505" => ApiError::Conflict {
                error: "conflict",
                message: "The resource already exists".into(),
            },
            other => ApiError::Internal {
                detail: other.to_string(),
            },
        }
    }
}

/// One connection to Postgres, held for the whole request.
pub struct Db {
    connection: Connection,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db { .. }")
    }
}

impl Db {
    /// Opens a connection (`postgres://user:password@host:port/db?sslmode=…`).
    pub fn connect(url: &str) -> Result<Self, DbError> {
        Connection::open(url)
            .map(|connection| Self { connection })
            .map_err(DbError::from_pg)
    }

    /// Runs a statement that returns rows.
    pub fn query(&self, sql: &str, params: &[ParameterValue]) -> Result<RowSet, DbError> {
        self.connection.query(sql, params).map_err(DbError::from_pg)
    }

    /// Runs a statement and returns the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[ParameterValue]) -> Result<u64, DbError> {
        self.connection
            .execute(sql, params)
            .map_err(DbError::from_pg)
    }

    /// Runs `work` inside `BEGIN … COMMIT` on this connection; any error rolls back.
    pub fn transaction<T, E>(&self, work: impl FnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        self.execute("BEGIN", &[])?;
        match work(self) {
            Ok(value) => {
                if let Err(error) = self.execute("COMMIT", &[]) {
                    let _ = self.execute("ROLLBACK", &[]);
                    return Err(error.into());
                }
                Ok(value)
            }
            Err(error) => {
                // A failed ROLLBACK leaves nothing committed either: the server
                // discards the open transaction when the connection goes away.
                let _ = self.execute("ROLLBACK", &[]);
                Err(error)
            }
        }
    }
}

/// A column of a row by name, decoded; a missing column or a type mismatch is an
/// internal error naming the column.
pub fn column<T: Decode>(row: &Row<'_>, name: &str) -> Result<T, DbError> {
    row.get::<T>(name).ok_or_else(|| {
        DbError::Other(format!(
            "column `{name}` is missing or has an unexpected type"
        ))
    })
}

/// Decodes a raw value (for callers that walk `RowSet::rows` by index).
pub fn decode<T: Decode>(value: &DbValue) -> Result<T, DbError> {
    T::decode(value).map_err(|error| match error {
        SdkError::Decode(text) => DbError::Other(text),
        SdkError::PgError(error) => DbError::from_pg(error),
    })
}

/// A text parameter.
pub fn text(value: &str) -> ParameterValue {
    ParameterValue::Str(value.to_string())
}

/// A JSON parameter for a `jsonb` column.
pub fn jsonb(value: &serde_json::Value) -> ParameterValue {
    ParameterValue::Jsonb(serde_json::to_vec(value).expect("JSON values always serialise"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spin_sdk::pg4::DbError as WireDbError;

    fn db_error(code: &str) -> PgError {
        PgError::QueryFailed(QueryError::DbError(WireDbError {
            as_text: String::new(),
            severity: "ERROR".into(),
            code: code.into(),
            message: "boom".into(),
            detail: None,
            extras: Vec::new(),
        }))
    }

    #[test]
    fn connection_failures_are_unavailable_and_become_503() {
        let error = DbError::from_pg(PgError::ConnectionFailed("refused".into()));
        assert!(matches!(error, DbError::Unavailable(_)));
        assert_eq!(ApiError::from(error).status(), 503);
    }

    #[test]
    fn sqlstates_are_classified() {
        assert!(matches!(
            DbError::from_pg(db_error("57P01")),
            DbError::Unavailable(_)
        ));
        assert!(matches!(
            DbError::from_pg(db_error("08006")),
            DbError::Unavailable(_)
        ));
        assert!(matches!(
            DbError::from_pg(db_error("57014")),
            DbError::Unavailable(_)
        ));
        let unique = DbError::from_pg(db_error("23505"));
        assert!(unique.is_unique_violation());
        assert_eq!(ApiError::from(unique).status(), 409);
        let missing_table = DbError::from_pg(db_error("42P01"));
        assert_eq!(missing_table.sqlstate(), Some("42P01"));
        let api = ApiError::from(missing_table);
        assert_eq!(api.status(), 500);
        assert!(!api.body().to_string().contains("42P01"));
    }

    #[test]
    fn a_closed_connection_reported_as_text_is_unavailable() {
        let error = DbError::from_pg(PgError::QueryFailed(QueryError::Text(
            "connection closed".into(),
        )));
        assert!(matches!(error, DbError::Unavailable(_)));
    }
}
