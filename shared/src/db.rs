//! Postgres through Spin's `spin:postgres/postgres@4.2.0` interface, with its async
//! calls ([`crate::runtime::postgres`]: a request waiting for Postgres lets the
//! instance serve other requests), and the rules real Spin imposes on SQL (`../shared/SPIN.md`), one helper per rule,
//! so that the repositories follow them without thinking:
//!
//! 1. **Time columns never come back as `timestamptz`.** Spin decodes `timestamp` and
//!    `timestamptz` through chrono's `NaiveDateTime`, which tokio-postgres accepts for
//!    `timestamp` only: a `timestamptz` column (NULLs included) fails the whole query.
//!    Read one as `(col AT TIME ZONE 'UTC') AS col` ([`utc_column`]), a `timestamp` that
//!    decodes as a UTC [`chrono::NaiveDateTime`], or as epoch seconds
//!    (`floor(extract(epoch FROM col))::int8`). Never `col::text`: its value depends on
//!    the session's time zone.
//! 2. **Time parameters go in as text**: `$n::text::timestamptz` with [`utc_param`]
//!    (RFC 3339, UTC). Spin accepts only whole epoch seconds for a bare `$n` of type
//!    `timestamptz`.
//! 3. **No `query` returns zero rows.** Spin's synchronous `query` never returns when a
//!    statement yields no row (spinframework/spin#3671): the request hangs and keeps a
//!    pooled connection. `query-async` answers such a statement, but without its
//!    columns; the rule stays, so that every result names its columns and a statement
//!    that should have found a row says so. [`Db::query_one`] is for statements written to always yield a row (an
//!    aggregate, or `FROM (SELECT 1) AS one LEFT JOIN …`); [`Db::query_rows`] wraps any
//!    other statement so that it does; statements without a result go through
//!    [`Db::execute`].
//! 4. **SQL errors are mapped by their code however they arrive**: Spin hands over an
//!    error raised while a `query` runs (`23505`, `23503`, `23514`, …) as
//!    `QueryError::Text` holding the error's debug text, and the same error raised
//!    while parsing or binding as a structured `DbError` ([`DbError::from_pg`]).
//! 5. **A transaction never outlives its request.** Spin keeps a transaction that a
//!    request left open on the pooled connection, and the next request on that
//!    connection runs inside it. [`Db::transaction`] ends every transaction it begins on
//!    every return path, and rolls it back before a panic turns into a trap
//!    ([`install_panic_rollback`]). Where one statement can do the work, use one
//!    statement instead.
//!
//! **Where connections go** is a [`DbAddress`]: a connection string (`db_url`,
//! `demo_db_url`) and, when the `db_ca_cert` variable holds a PEM certificate, the
//! root CA the server's certificate must chain to. With a CA, every connection is
//! opened through Spin's `connection-builder` with `set-ca-root`, and the connection
//! string is made to insist on TLS (`sslmode=require`, which Spin's client verifies
//! against the CA and the server's name): an `sslmode` that allows plain text is
//! refused as a configuration error, never quietly used ([`DbAddress::new`]). Without
//! a CA (local runs) the connection string is used as it is.
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

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use crate::runtime::postgres::Connection;
pub use crate::runtime::postgres::{DbValue, ParameterValue, Row, RowSet};
use crate::runtime::postgres::{Decode, PgError, QueryError, SdkError};

use crate::config::{self, ConfigError, Variables};
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
    /// The runtime refused `db_ca_cert` as a root certificate (`set-ca-root`).
    #[error("variable `db_ca_cert` is invalid: the runtime refused it as a root certificate: {0}")]
    InvalidCaRoot(String),
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

    /// `23505`: a row with this key exists.
    pub fn is_unique_violation(&self) -> bool {
        self.sqlstate() == Some("23505")
    }

    /// `23503`: a referenced row (a user, a session) does not exist.
    pub fn is_foreign_key_violation(&self) -> bool {
        self.sqlstate() == Some("23503")
    }

    /// Classifies an error of the interface. A SQL error is recognised by its SQLSTATE
    /// whether it arrives structured or, as Spin sends errors raised while a `query`
    /// runs, inside `QueryError::Text`.
    pub fn from_pg(error: PgError) -> Self {
        match error {
            PgError::ConnectionFailed(text) => DbError::Unavailable(text),
            PgError::QueryFailed(QueryError::DbError(db)) => {
                Self::from_sqlstate(db.code, db.message)
            }
            PgError::QueryFailed(QueryError::Text(text)) => match sql_error_in_text(&text) {
                Some((code, message)) => Self::from_sqlstate(code, message),
                None if text_means_unavailable(&text) => DbError::Unavailable(text),
                None => DbError::Other(text),
            },
            PgError::BadParameter(text)
            | PgError::ValueConversionFailed(text)
            | PgError::Other(text) => DbError::Other(text),
        }
    }

    fn from_sqlstate(code: String, message: String) -> Self {
        if sqlstate_means_unavailable(&code) {
            DbError::Unavailable(format!("{code}: {message}"))
        } else {
            DbError::Sql { code, message }
        }
    }
}

/// The SQLSTATE and message of a server error carried as text. Spin's text is the
/// debug form of the structured error (`… code: "23505", message: "duplicate key …",
/// …`); tokio-postgres's own debug form names the code `SqlState(E23505)`.
fn sql_error_in_text(text: &str) -> Option<(String, String)> {
    let code = quoted_field(text, "code: \"")
        .filter(|code| is_sqlstate(code))
        .or_else(|| {
            let start = text.find("SqlState(E")? + "SqlState(E".len();
            let code = text.get(start..start + 5)?;
            is_sqlstate(code).then(|| code.to_string())
        })?;
    let message = quoted_field(text, "message: \"").unwrap_or_default();
    Some((code, message))
}

fn is_sqlstate(code: &str) -> bool {
    code.len() == 5
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// The Rust-debug-quoted string that follows the first `marker` in `text`, unescaped.
fn quoted_field(text: &str, marker: &str) -> Option<String> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let mut value = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => value.push(chars.next()?),
            c => value.push(c),
        }
    }
    None
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
            DbError::InvalidCaRoot(_) => ApiError::Config {
                detail: error.to_string(),
            },
            other => ApiError::Internal {
                detail: other.to_string(),
            },
        }
    }
}

/// `(col AT TIME ZONE 'UTC') AS col`: a `timestamptz` column read as the `timestamp`
/// of its UTC wall-clock time, which Spin decodes (rule 1).
pub fn utc_column(column: &str) -> String {
    let name = column.rsplit('.').next().unwrap_or(column);
    format!("({column} AT TIME ZONE 'UTC') AS {name}")
}

/// A UTC time as the text parameter of `$n::text::timestamptz` (rule 2).
pub fn utc_param(at: chrono::NaiveDateTime) -> ParameterValue {
    ParameterValue::Str(
        at.and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    )
}

/// The column [`Db::query_rows`] numbers rows with; it never reaches a caller.
const ROW_NUMBER_COLUMN: &str = "voice_edge_row_number";

/// Where a component's database connections go: a connection string and, when
/// `db_ca_cert` is set, the root CA that the server's certificate must chain to.
/// Its `Debug` shows neither (the string holds a password).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DbAddress {
    url: String,
    ca_root: Option<String>,
}

impl std::fmt::Debug for DbAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbAddress")
            .field("url", &"[redacted]")
            .field("ca_root", &self.ca_root.as_ref().map(|_| "[set]"))
            .finish()
    }
}

impl DbAddress {
    /// The connection string of `url_variable` (`db_url` or `demo_db_url`, required)
    /// with the CA of `db_ca_cert` (optional; empty means none), checked as
    /// [`DbAddress::new`] does.
    pub fn load(vars: &impl Variables, url_variable: &'static str) -> Result<Self, ConfigError> {
        let url = config::required(vars, url_variable)?;
        let ca_root = config::optional_secret(vars, config::DB_CA_CERT)?;
        let address = Self::new(url_variable, url, ca_root)?;
        if address.ca_root.is_none() && plain_text_to_the_network(&address.url) {
            crate::log::event(
                crate::log::Level::Warn,
                "config",
                None,
                "database_tls_disabled",
                &format!(
                    "`{url_variable}` says sslmode=disable for a host that is not loopback: \
                     its connections are not encrypted"
                ),
            );
        }
        Ok(address)
    }

    /// A connection string and an optional root CA (PEM). Without a CA, a string that
    /// reaches any host but loopback must state its `sslmode`: `require` or stricter, or
    /// `disable` written out (logged as a warning by [`DbAddress::load`]); none,
    /// `prefer` or `allow` (which an attacker on the path can strip to plain text) is
    /// refused, naming `url_variable` ([`check_tls_is_stated`]). With a CA the connection
    /// must be verified TLS: the string must be a `postgres://` URL, an absent or
    /// `prefer` `sslmode` becomes `require`, `verify-ca` and `verify-full` (which Spin's
    /// client does not parse, and whose checks its `require` makes with a CA) become
    /// `require`, and `disable`, `allow` or an unknown mode are refused, naming
    /// `url_variable`. The CA must hold a PEM certificate; the runtime checks the rest.
    pub fn new(
        url_variable: &'static str,
        url: String,
        ca_root: Option<String>,
    ) -> Result<Self, ConfigError> {
        let Some(ca_root) = ca_root.filter(|ca| !ca.trim().is_empty()) else {
            check_tls_is_stated(&url).map_err(|reason| ConfigError::Invalid {
                name: url_variable,
                reason: format!("without `{}`, {reason}", config::DB_CA_CERT),
            })?;
            return Ok(Self { url, ca_root: None });
        };
        match ca_root.matches("-----BEGIN CERTIFICATE-----").count() {
            0 => {
                return Err(ConfigError::Invalid {
                    name: config::DB_CA_CERT,
                    reason: "not a PEM certificate (-----BEGIN CERTIFICATE----- …): give the \
                             certificate's text, not its path"
                        .into(),
                });
            }
            1 => {}
            // Spin trusts the first certificate of the text and ignores the rest.
            count => {
                return Err(ConfigError::Invalid {
                    name: config::DB_CA_CERT,
                    reason: format!(
                        "holds {count} certificates, and Spin would trust only the first: \
                         give the one CA that signs the database's certificate"
                    ),
                });
            }
        }
        let url = require_tls(&url).map_err(|reason| ConfigError::Invalid {
            name: url_variable,
            reason: format!("with `{}` set, {reason}", config::DB_CA_CERT),
        })?;
        Ok(Self {
            url,
            ca_root: Some(ca_root),
        })
    }

    /// Whether connections are verified against a CA of our own.
    pub fn has_ca_root(&self) -> bool {
        self.ca_root.is_some()
    }
}

/// The `sslmode` values that never send anything in plain text once a CA is given.
const TLS_MODES_UPGRADED_TO_REQUIRE: [&str; 4] = ["prefer", "require", "verify-ca", "verify-full"];

/// `url` with every `sslmode` set to `require` (one added when there is none), or why
/// that would change what its writer asked for: a mode that allows plain text, an
/// unknown mode, or a string that is not a `postgres://` URL.
fn require_tls(url: &str) -> Result<String, String> {
    let url = url.trim();
    let is_url = ["postgres://", "postgresql://"].iter().any(|scheme| {
        url.len() > scheme.len()
            && url
                .get(..scheme.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
    });
    if !is_url {
        return Err("the connection string must be a postgres:// URL".into());
    }
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut params: Vec<String> = Vec::new();
    let mut has_mode = false;
    for param in query.into_iter().flat_map(|query| query.split('&')) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        // PostgreSQL percent-decodes keys too: `ssl%6Dode` is `sslmode`.
        if percent_decode(key) != "sslmode" {
            if !param.is_empty() {
                params.push(param.to_string());
            }
            continue;
        }
        has_mode = true;
        let mode = percent_decode(value);
        if !TLS_MODES_UPGRADED_TO_REQUIRE.contains(&mode.as_str()) {
            return Err(match mode.as_str() {
                "disable" | "allow" => format!(
                    "sslmode={mode} would send the connection in plain text: use \
                     sslmode=require"
                ),
                _ => "an unknown sslmode: use sslmode=require".to_string(),
            });
        }
        params.push("sslmode=require".into());
    }
    if !has_mode {
        params.push("sslmode=require".into());
    }
    Ok(format!("{base}?{}", params.join("&")))
}

/// The `sslmode` values that never send anything in plain text (with the public roots
/// when no CA is given: `require` and stricter).
const TLS_MODES: [&str; 3] = ["require", "verify-ca", "verify-full"];

/// A connection string as PostgreSQL reads it: the hosts it reaches and its parameters,
/// keys and values percent-decoded (URL form) or unquoted (`key=value` form).
#[derive(Debug, Default, PartialEq)]
struct ConnInfo {
    hosts: Vec<String>,
    params: Vec<(String, String)>,
}

impl ConnInfo {
    fn parse(text: &str) -> ConnInfo {
        let text = text.trim();
        let scheme = ["postgresql://", "postgres://"].into_iter().find(|scheme| {
            text.get(..scheme.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
        });
        let mut info = match scheme {
            Some(scheme) => Self::parse_url(&text[scheme.len()..]),
            None => Self::parse_key_values(text),
        };
        // A `host` or `hostaddr` parameter names hosts too (a list, comma-separated).
        let named: Vec<String> = info
            .params
            .iter()
            .filter(|(key, _)| key == "host" || key == "hostaddr")
            .flat_map(|(_, value)| value.split(',').map(|host| host.trim().to_string()))
            .collect();
        info.hosts.extend(named);
        info
    }

    fn parse_url(rest: &str) -> ConnInfo {
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = before_query.split('/').next().unwrap_or("");
        let host_list = authority
            .rsplit_once('@')
            .map_or(authority, |(_, hosts)| hosts);
        let hosts = host_list
            .split(',')
            .map(|host| {
                let host = match host.strip_prefix('[') {
                    Some(v6) => v6.split(']').next().unwrap_or(""),
                    None => host.split(':').next().unwrap_or(""),
                };
                percent_decode(host)
            })
            .collect();
        let params = query
            .split('&')
            .filter(|param| !param.is_empty())
            .map(|param| {
                let (key, value) = param.split_once('=').unwrap_or((param, ""));
                (percent_decode(key), percent_decode(value))
            })
            .collect();
        ConnInfo { hosts, params }
    }

    /// `key = value` pairs separated by spaces; a value may be single-quoted, with `\`
    /// escaping a quote or a backslash.
    fn parse_key_values(text: &str) -> ConnInfo {
        let mut params = Vec::new();
        let mut chars = text.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let mut key = String::new();
            while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
                key.push(c);
            }
            if key.is_empty() {
                break;
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.next_if_eq(&'=').is_none() {
                params.push((key, String::new()));
                continue;
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let mut value = String::new();
            if chars.next_if_eq(&'\'').is_some() {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '\'' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    if c == '\\' {
                        value.extend(chars.next());
                    } else {
                        value.push(c);
                    }
                }
            }
            params.push((key, value));
        }
        ConnInfo {
            hosts: Vec::new(),
            params,
        }
    }

    /// Whether every host is this machine: loopback addresses, `localhost`, a Unix
    /// socket directory, or no host at all (PostgreSQL's default is a local socket).
    fn only_loopback(&self) -> bool {
        self.hosts.iter().all(|host| {
            host.is_empty()
                || host.starts_with('/')
                || host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|address| match address {
                        std::net::IpAddr::V4(v4) => v4.is_loopback(),
                        std::net::IpAddr::V6(v6) => {
                            v6.is_loopback()
                                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
                        }
                    })
        })
    }

    /// Every `sslmode` the string states.
    fn ssl_modes(&self) -> impl Iterator<Item = &str> {
        self.params
            .iter()
            .filter(|(key, _)| key == "sslmode")
            .map(|(_, value)| value.as_str())
    }
}

/// Without a CA: a connection string that reaches a host other than loopback must
/// state how it treats TLS, every `sslmode` it holds being `require` or stricter, or
/// `disable`; none, `prefer`, `allow` or an unknown mode is why it is refused.
fn check_tls_is_stated(url: &str) -> Result<(), String> {
    let info = ConnInfo::parse(url);
    if info.only_loopback() {
        return Ok(());
    }
    let mut stated = false;
    for mode in info.ssl_modes() {
        stated = true;
        if !(TLS_MODES.contains(&mode) || mode == "disable") {
            return Err(match mode {
                "prefer" | "allow" => format!(
                    "sslmode={mode} to a host that is not loopback lets an attacker on the \
                     path strip TLS: use sslmode=require (or verify-full), or write \
                     sslmode=disable for a private network"
                ),
                _ => "an unknown sslmode: use sslmode=require".to_string(),
            });
        }
    }
    if stated {
        Ok(())
    } else {
        Err(
            "a connection string to a host that is not loopback must state its sslmode \
             (PostgreSQL's default, prefer, lets an attacker on the path strip TLS): use \
             sslmode=require (or verify-full), or write sslmode=disable for a private \
             network"
                .to_string(),
        )
    }
}

/// Whether an accepted connection string (without a CA) sends plain text over the
/// network: `sslmode=disable` to a host that is not loopback.
fn plain_text_to_the_network(url: &str) -> bool {
    let info = ConnInfo::parse(url);
    !info.only_loopback() && info.ssl_modes().any(|mode| mode == "disable")
}

/// `%XX` escapes decoded (a connection string's parameter values may carry them).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One connection to Postgres, held for the whole request, taken from the instance's
/// pool ([`pool`]) and given back when the last handle on it is dropped.
pub struct Db {
    lease: Rc<Lease>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db { .. }")
    }
}

/// The connections an instance keeps between requests, and the rules that make
/// keeping them safe.
///
/// Under Spin 4.1 a WASIp3 instance serves up to 128 requests, up to 16 at once, so a
/// connection opened for one request can serve the next ones: no new checkout from
/// Spin's pool (and its clean-up round trip) per request. The pool is instance state,
/// like configuration; nothing of a request lives in it:
/// - a connection belongs to one request from [`Db::connect`] until its last handle
///   is dropped: requests that share an instance interleave at every statement (each
///   one is an async call), never on one connection;
/// - a connection goes back only when no transaction is open on it: every
///   [`Db::transaction`] ends in `COMMIT` or `ROLLBACK` before it returns; a
///   transaction whose request is dropped half-way (cancelled) is rolled back there
///   and then, with the synchronous call; and a connection whose `ROLLBACK` failed,
///   or that lost its server, is dropped instead (Spin's own pool does not roll back
///   what a dropped connection left open, so the component must; README, "WASIp3");
/// - a panic traps the instance, after the panic hook has rolled back every open
///   transaction of every request in it; the instance is not used again;
/// - a kept connection whose server went away (a Postgres restart) fails its first
///   statement: that statement is tried once more on a fresh connection, when nothing
///   ran on the kept one in this request and no transaction was open, so the first
///   request after a restart succeeds instead of answering `503`.
///
/// At most [`pool::MAX_IDLE`] idle connections are kept per address (production and
/// demo roles have different addresses); Spin closes the instance, and with it these
/// connections, after one idle second.
pub mod pool {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::{Connection, DbAddress};

    /// The most idle connections kept per address: Spin's limit of concurrent requests
    /// per instance.
    pub const MAX_IDLE: usize = 16;

    thread_local! {
        static IDLE: RefCell<HashMap<DbAddress, Vec<Connection>>> = RefCell::default();
    }

    /// An idle connection to `address`, if the instance keeps one.
    pub(super) fn take(address: &DbAddress) -> Option<Connection> {
        IDLE.with(|idle| idle.borrow_mut().get_mut(address).and_then(Vec::pop))
    }

    /// Keeps `connection` for the next request, or drops it when enough are kept.
    pub(super) fn put(address: DbAddress, connection: Connection) {
        IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let kept = idle.entry(address).or_default();
            if kept.len() < MAX_IDLE {
                kept.push(connection);
            }
        });
    }

    /// How many idle connections the instance keeps for `address` (for tests).
    pub fn idle(address: &DbAddress) -> usize {
        IDLE.with(|idle| idle.borrow().get(address).map_or(0, Vec::len))
    }
}

/// A connection lent to one request.
///
/// The connection sits behind an `Rc` so that a statement holds its own handle while
/// it awaits, and no `RefCell` borrow ever spans an `await`.
struct Lease {
    address: DbAddress,
    connection: RefCell<Option<Rc<Connection>>>,
    /// Taken from the pool (it served an earlier request), not opened for this one.
    kept: Cell<bool>,
    /// A statement has succeeded on it in this request.
    proven: Cell<bool>,
    /// A transaction is open on it ([`Db::transaction`]).
    in_transaction: Cell<bool>,
}

impl Lease {
    async fn open(address: &DbAddress) -> Result<Connection, DbError> {
        match &address.ca_root {
            None => Connection::open(&address.url)
                .await
                .map_err(DbError::from_pg),
            Some(ca_root) => Connection::open_with_ca(&address.url, ca_root)
                .await
                .map_err(|error| match error {
                    // The text names what the runtime disliked, never the PEM itself.
                    PgError::Other(text) => DbError::InvalidCaRoot(text),
                    other => DbError::from_pg(other),
                }),
        }
    }

    /// The connection, for one statement.
    fn current(&self) -> Result<Rc<Connection>, DbError> {
        self.connection.borrow().clone().ok_or_else(|| {
            DbError::Unavailable("the connection was lost earlier in this request".into())
        })
    }

    /// Runs `call` on the connection, with the restart rule of [`pool`].
    async fn run<T>(
        &self,
        call: impl AsyncFn(&Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let error = match call(&*self.current()?).await {
            Ok(value) => {
                self.proven.set(true);
                return Ok(value);
            }
            Err(error) => error,
        };
        if !matches!(error, DbError::Unavailable(_)) {
            return Err(error);
        }
        let retry = self.kept.get() && !self.proven.get() && !self.in_transaction.get();
        // A connection that lost its server is never given back.
        self.discard().await;
        if !retry {
            return Err(error);
        }
        let fresh = Rc::new(Self::open(&self.address).await?);
        *self.connection.borrow_mut() = Some(fresh.clone());
        self.kept.set(false);
        match call(&fresh).await {
            Ok(value) => {
                self.proven.set(true);
                Ok(value)
            }
            Err(error) => {
                if matches!(error, DbError::Unavailable(_)) {
                    self.discard().await;
                }
                Err(error)
            }
        }
    }

    /// Drops the connection rather than giving it back. `Unavailable` also covers
    /// errors of a live connection (a statement timeout, a deadlock), so a transaction
    /// still open on it is rolled back first: Spin's pool would hand it on otherwise.
    async fn discard(&self) {
        let taken = self.connection.borrow_mut().take();
        if let Some(connection) = taken
            && self.in_transaction.get()
        {
            let _ = connection.execute("ROLLBACK", &[]).await;
        }
    }

    /// Ends the open transaction now, with the synchronous call, and drops the
    /// connection: for a request dropped inside [`Db::transaction`].
    fn abandon_transaction(&self) {
        let taken = self
            .connection
            .try_borrow_mut()
            .ok()
            .and_then(|mut connection| connection.take());
        if let Some(connection) = taken {
            let _ = connection.roll_back_now();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(connection) = self.connection.get_mut().take() else {
            return;
        };
        if self.in_transaction.get() {
            // Unreachable through `Db::transaction`; should it happen, the transaction
            // ends here rather than in Spin's pool, and the connection is not kept.
            let _ = connection.roll_back_now();
            return;
        }
        // Every statement's handle is gone by now; should one not be, the connection
        // is dropped rather than kept.
        if let Ok(connection) = Rc::try_unwrap(connection) {
            pool::put(self.address.clone(), connection);
        }
    }
}

impl Db {
    /// A connection to `address`: one the instance kept from an earlier request, or a
    /// new one, through Spin's connection builder with the address's root CA when it
    /// has one, else with `connection.open-async`.
    pub async fn connect(address: &DbAddress) -> Result<Self, DbError> {
        install_panic_rollback();
        let (connection, kept) = match pool::take(address) {
            Some(connection) => (connection, true),
            None => (Lease::open(address).await?, false),
        };
        Ok(Self {
            lease: Rc::new(Lease {
                address: address.clone(),
                connection: RefCell::new(Some(Rc::new(connection))),
                kept: Cell::new(kept),
                proven: Cell::new(false),
                in_transaction: Cell::new(false),
            }),
        })
    }

    /// Another handle on the same connection, for work scheduled after the response
    /// ([`crate::http::Incoming::after_response`]); the connection goes back to the
    /// pool when the last handle is dropped. Not for use inside a transaction of the
    /// other handle: statements on either run in that transaction.
    pub fn share(&self) -> Db {
        Db {
            lease: Rc::clone(&self.lease),
        }
    }

    /// Runs a statement written to return at least one row whatever the data (rule 3):
    /// an aggregate, `SELECT … FROM (SELECT 1) AS one LEFT JOIN …`, or a `WITH` whose
    /// final `SELECT` has no `FROM` or `WHERE` that could drop its row. A result
    /// without rows is an error here (under Spin's synchronous `query` such a
    /// statement would never answer).
    pub async fn query_one(&self, sql: &str, params: &[ParameterValue]) -> Result<RowSet, DbError> {
        let rows = self
            .lease
            .run(async |connection| {
                connection
                    .query(sql, params)
                    .await
                    .map_err(DbError::from_pg)
            })
            .await?;
        if rows.rows.is_empty() {
            return Err(DbError::Other(
                "a statement written to return a row returned none".into(),
            ));
        }
        Ok(rows)
    }

    /// Runs any statement that returns rows — a `SELECT`, or an `INSERT`/`UPDATE`/
    /// `DELETE … RETURNING` — and returns its rows in order, none included (rule 3).
    ///
    /// The statement becomes a `WITH` query that always yields a row: its rows
    /// numbered in the order it produced them, outer-joined to a single row, so that a
    /// statement that finds nothing yields one row of NULLs, which is taken away
    /// again here. The statement must not itself hold a data-modifying `WITH` (Postgres
    /// allows those only at the top level): write such statements for
    /// [`Db::query_one`].
    pub async fn query_rows(
        &self,
        sql: &str,
        params: &[ParameterValue],
    ) -> Result<RowSet, DbError> {
        let wrapped = format!(
            "WITH found AS ({sql}), \
                  numbered AS (SELECT found.*, row_number() OVER () AS {ROW_NUMBER_COLUMN} FROM found) \
             SELECT numbered.* FROM (SELECT 1) AS one LEFT JOIN numbered ON true \
             ORDER BY numbered.{ROW_NUMBER_COLUMN}"
        );
        let mut rows = self.query_one(&wrapped, params).await?;
        let number = rows
            .columns
            .iter()
            .position(|column| column.name == ROW_NUMBER_COLUMN)
            .ok_or_else(|| DbError::Other("the row numbers are missing".into()))?;
        rows.columns.remove(number);
        rows.rows.retain_mut(|row| {
            let padding = matches!(row.get(number), Some(DbValue::DbNull));
            if number < row.len() {
                row.remove(number);
            }
            !padding
        });
        Ok(rows)
    }

    /// Runs a statement and returns the number of rows it changed.
    pub async fn execute(&self, sql: &str, params: &[ParameterValue]) -> Result<u64, DbError> {
        self.lease
            .run(async |connection| {
                connection
                    .execute(sql, params)
                    .await
                    .map_err(DbError::from_pg)
            })
            .await
    }

    /// Runs `work` inside `BEGIN … COMMIT` on this connection; any error rolls back, and
    /// so does a panic inside `work` (before it traps) and a request dropped while
    /// `work` awaits, so that the transaction never outlives the request on Spin's
    /// pooled connection (rule 5). `work` should be short and free of anything that
    /// could trap otherwise (no unchecked indexing, no `unwrap`).
    pub async fn transaction<T, E>(
        &self,
        work: impl AsyncFnOnce(&Db) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        self.execute("BEGIN", &[]).await?;
        let mut open = OpenTransaction::begin(&self.lease);
        let result = work(self).await;
        let ended = match result {
            Ok(value) => match self.execute("COMMIT", &[]).await {
                Ok(_) => Ok(value),
                Err(error) => {
                    self.roll_back().await;
                    Err(error.into())
                }
            },
            Err(error) => {
                self.roll_back().await;
                Err(error)
            }
        };
        open.ended = true;
        drop(open);
        ended
    }

    /// `ROLLBACK`; a connection whose `ROLLBACK` failed is dropped rather than kept, as
    /// its transaction state is unknown. A failed `ROLLBACK` leaves nothing committed
    /// either: the server discards the open transaction when the connection goes away.
    async fn roll_back(&self) {
        if self.execute("ROLLBACK", &[]).await.is_err() {
            self.lease.connection.borrow_mut().take();
        }
    }
}

thread_local! {
    /// The connections whose transactions are open, for the panic hook to roll back:
    /// one per request inside [`Db::transaction`], since requests that share an
    /// instance interleave at every statement.
    static OPEN_TRANSACTIONS: RefCell<Vec<Weak<Lease>>> = const { RefCell::new(Vec::new()) };
}

/// Marks a connection as inside [`Db::transaction`] for as long as it lives; dropped
/// before the transaction `ended` (its request was dropped at an `await`), it rolls
/// the transaction back at once and drops the connection.
struct OpenTransaction {
    lease: Rc<Lease>,
    ended: bool,
}

impl OpenTransaction {
    fn begin(lease: &Rc<Lease>) -> Self {
        lease.in_transaction.set(true);
        OPEN_TRANSACTIONS.with(|open| open.borrow_mut().push(Rc::downgrade(lease)));
        OpenTransaction {
            lease: lease.clone(),
            ended: false,
        }
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        let _ = OPEN_TRANSACTIONS.try_with(|open| {
            if let Ok(mut open) = open.try_borrow_mut() {
                let lease = Rc::as_ptr(&self.lease);
                open.retain(|other| other.as_ptr() != lease && other.strong_count() > 0);
            }
        });
        if !self.ended {
            self.lease.abandon_transaction();
        }
        self.lease.in_transaction.set(false);
    }
}

/// Installs (once per instance) a panic hook that rolls back every transaction a panic
/// interrupts, then runs the previous hook. On `wasm32-wasip2` a panic aborts the
/// instance at once, so no destructor runs and, without this, Spin would hand the
/// open transactions to later requests on its pooled connections.
pub fn install_panic_rollback() {
    thread_local! {
        static INSTALLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if INSTALLED.with(|installed| installed.replace(true)) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let open: Vec<Rc<Lease>> = OPEN_TRANSACTIONS
            .try_with(|open| {
                open.try_borrow_mut()
                    .map(|mut open| open.drain(..).filter_map(|lease| lease.upgrade()).collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        for lease in open {
            if let Ok(connection) = lease.connection.try_borrow()
                && let Some(connection) = connection.as_ref()
            {
                let _ = connection.roll_back_now();
            }
        }
        previous(info);
    }));
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

/// An optional text parameter: `NULL` when absent.
pub fn optional_text(value: Option<&str>) -> ParameterValue {
    value.map_or(ParameterValue::DbNull, text)
}

/// A JSON parameter for a `jsonb` column.
pub fn jsonb(value: &serde_json::Value) -> ParameterValue {
    ParameterValue::Jsonb(serde_json::to_vec(value).expect("JSON values always serialise"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::postgres::WireDbError;

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

    /// What Spin 4.1 hands a guest for a unique violation raised while a `query` runs
    /// (observed; the backtrace shortened).
    const SPIN_UNIQUE_VIOLATION_TEXT: &str = r#"Error::QueryFailed(QueryError::DbError(DbError { as-text: "Error { kind: Db, cause: Some(DbError { severity: \"ERROR\", parsed_severity: Some(Error), code: SqlState(E23505), message: \"duplicate key value violates unique constraint \\\"t_probe_pkey\\\"\", detail: Some(\"Key (id)=(1) already exists.\"), hint: None }) }", severity: "ERROR", code: "23505", message: "duplicate key value violates unique constraint \"t_probe_pkey\"", detail: Some("Key (id)=(1) already exists."), extras: [("constraint", "t_probe_pkey")] }))

Stack backtrace:
   0: <unknown>"#;

    #[test]
    fn sql_errors_arriving_as_text_are_mapped_by_their_code() {
        let error = DbError::from_pg(PgError::QueryFailed(QueryError::Text(
            SPIN_UNIQUE_VIOLATION_TEXT.into(),
        )));
        assert_eq!(
            error,
            DbError::Sql {
                code: "23505".into(),
                message: "duplicate key value violates unique constraint \"t_probe_pkey\"".into(),
            }
        );
        assert!(error.is_unique_violation());
        assert_eq!(ApiError::from(error).status(), 409);

        let foreign_key = SPIN_UNIQUE_VIOLATION_TEXT.replace("23505", "23503");
        let error = DbError::from_pg(PgError::QueryFailed(QueryError::Text(foreign_key)));
        assert!(error.is_foreign_key_violation());
    }

    #[test]
    fn a_serialisation_failure_arriving_as_text_is_unavailable() {
        let text = SPIN_UNIQUE_VIOLATION_TEXT.replace("23505", "40001");
        let error = DbError::from_pg(PgError::QueryFailed(QueryError::Text(text)));
        assert!(matches!(error, DbError::Unavailable(_)), "{error:?}");
    }

    #[test]
    fn tokio_postgres_debug_text_is_mapped_by_its_code_too() {
        let text = "Error { kind: Db, cause: Some(DbError { severity: \"ERROR\", code: SqlState(E23514), message: \"new row violates check constraint\" }) }";
        let error = DbError::from_pg(PgError::QueryFailed(QueryError::Text(text.into())));
        assert_eq!(error.sqlstate(), Some("23514"));
    }

    #[test]
    fn a_decoding_failure_is_neither_sql_nor_unavailable() {
        let text = "Error::QueryFailed(QueryError::Text(\"error deserializing column 0\\n\\nCaused by:\\n    cannot convert between the Rust type `core::option::Option<chrono::naive::datetime::NaiveDateTime>` and the Postgres type `timestamptz`\"))";
        let error = DbError::from_pg(PgError::QueryFailed(QueryError::Text(text.into())));
        assert!(matches!(error, DbError::Other(_)), "{error:?}");
    }

    #[test]
    fn utc_columns_and_parameters_follow_the_spin_rules() {
        assert_eq!(
            utc_column("created_at"),
            "(created_at AT TIME ZONE 'UTC') AS created_at"
        );
        assert_eq!(
            utc_column("s.updated_at"),
            "(s.updated_at AT TIME ZONE 'UTC') AS updated_at"
        );
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 29)
            .unwrap()
            .and_hms_micro_opt(22, 9, 5, 120)
            .unwrap();
        let ParameterValue::Str(text) = utc_param(at) else {
            panic!("a time parameter is text");
        };
        assert_eq!(text, "2026-11-29T22:09:05.000120Z");
    }

    const CA: &str =
        "-----BEGIN CERTIFICATE-----\nMIIBfzCCASWgAwIBAgIU\n-----END CERTIFICATE-----\n";

    fn address(url: &str, ca: Option<&str>) -> Result<DbAddress, ConfigError> {
        DbAddress::new(config::DB_URL, url.to_string(), ca.map(str::to_string))
    }

    #[test]
    fn without_a_ca_the_connection_string_is_used_as_it_is() {
        for url in [
            "postgres://app:pw@127.0.0.1:5432/app?sslmode=disable",
            "host=127.0.0.1 user=app",
        ] {
            for ca in [None, Some(""), Some("  \n")] {
                let address = address(url, ca).unwrap();
                assert_eq!(address.url, url);
                assert!(!address.has_ca_root());
            }
        }
    }

    #[test]
    fn without_a_ca_a_string_to_another_host_must_state_require_or_disable() {
        for url in [
            "postgres://a:pw@db.internal:5432/app?sslmode=require",
            "postgres://a:pw@db.internal/app?sslmode=verify-full",
            "postgresql://a:pw@10.0.0.5/app?sslmode=verify-ca",
            "postgres://a:pw@10.0.0.5/app?ssl%6Dode=%72equire",
            "host=db.internal user=a sslmode=require",
            "host='db.internal' sslmode = 'verify-full'",
            "postgres://a:pw@localhost/app",
            "postgres://a:pw@127.0.0.2:5432/app",
            "postgres://a:pw@[::1]:5432/app",
            "postgres://a:pw@%6Cocalhost/app",
            "host=127.0.0.1 user=app",
            "postgres:///app",
        ] {
            let address = address(url, None).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(address.url, url, "used as it is");
            assert!(!plain_text_to_the_network(url), "{url}");
        }
        for url in [
            "postgres://a:pw@db.internal/app?sslmode=disable",
            "postgres://a:pw@db.internal/app?ssl%6Dode=disable",
            "postgres://a:pw@db.internal/app?sslmode=%64isable",
            "host=10.0.0.5 sslmode=disable",
        ] {
            assert!(address(url, None).is_ok(), "{url}");
            assert!(plain_text_to_the_network(url), "{url}: warned");
        }
        for url in [
            "postgres://a:secret-pw@db.internal:5432/app",
            "postgres://a:secret-pw@db.internal/app?sslmode=prefer",
            "postgres://a:secret-pw@db.internal/app?sslmode=allow",
            "postgres://a:secret-pw@db.internal/app?ssl%6Dode=prefer",
            "postgres://a:secret-pw@db.internal/app?sslmode=require&sslmode=prefer",
            "postgres://a:secret-pw@db.internal/app?sslmode=sometimes",
            "postgres://a:secret-pw@127.0.0.1,db.internal/app",
            "postgres://a:secret-pw@127.0.0.1/app?host=db.internal",
            "postgres://a:secret-pw@127.0.0.1/app?ho%73t=db.internal",
            "host=db.internal user=a password=secret-pw",
            "host=db.internal sslmode=prefer",
            "postgres://a:secret-pw@[2001:db8::1]/app",
        ] {
            let error = address(url, None).unwrap_err();
            let text = error.to_string();
            assert!(
                text.contains("`db_url`")
                    && text.contains("db_ca_cert")
                    && text.contains("sslmode"),
                "{url}: {text}"
            );
            assert!(!text.contains("secret-pw"), "no value in the error: {text}");
            let api = ApiError::from(error);
            assert_eq!((api.status(), api.code()), (500, "configuration_error"));
        }
    }

    #[test]
    fn with_a_ca_a_percent_encoded_sslmode_key_counts_as_sslmode() {
        let error = address("postgres://a:pw@db/postgres?ssl%6Dode=disable", Some(CA)).unwrap_err();
        assert!(error.to_string().contains("sslmode=disable"), "{error}");
    }

    #[test]
    fn with_a_ca_every_connection_string_insists_on_tls() {
        let cases = [
            (
                "postgres://a:pw@db:5432/postgres",
                "postgres://a:pw@db:5432/postgres?sslmode=require",
            ),
            (
                "postgres://a:pw@db:5432/postgres?sslmode=prefer",
                "postgres://a:pw@db:5432/postgres?sslmode=require",
            ),
            (
                "postgres://a:pw@db:5432/postgres?sslmode=require",
                "postgres://a:pw@db:5432/postgres?sslmode=require",
            ),
            (
                "postgresql://a:pw@db/postgres?sslmode=verify-full",
                "postgresql://a:pw@db/postgres?sslmode=require",
            ),
            (
                "postgres://a:pw@db/postgres?application_name=x&sslmode=verify-ca",
                "postgres://a:pw@db/postgres?application_name=x&sslmode=require",
            ),
            (
                "postgres://a:pw@db/postgres?connect_timeout=5",
                "postgres://a:pw@db/postgres?connect_timeout=5&sslmode=require",
            ),
            (
                "postgres://a:pw@db/postgres?",
                "postgres://a:pw@db/postgres?sslmode=require",
            ),
            (
                "postgres://a:pw@db/postgres?sslmode=%72equire",
                "postgres://a:pw@db/postgres?sslmode=require",
            ),
        ];
        for (given, used) in cases {
            let address = address(given, Some(CA)).unwrap();
            assert_eq!(address.url, used, "{given}");
            assert!(address.has_ca_root());
        }
    }

    #[test]
    fn with_a_ca_a_mode_that_allows_plain_text_is_refused_naming_the_variable() {
        for url in [
            "postgres://a:secret-pw@db/postgres?sslmode=disable",
            "postgres://a:secret-pw@db/postgres?sslmode=allow",
            "postgres://a:secret-pw@db/postgres?sslmode=require&sslmode=disable",
            "postgres://a:secret-pw@db/postgres?sslmode=sometimes",
            "host=db user=a password=secret-pw sslmode=require",
            "pøstgres://a:secret-pw@db/postgres",
        ] {
            let error = address(url, Some(CA)).unwrap_err();
            let text = error.to_string();
            assert!(
                text.contains("`db_url`") && text.contains("db_ca_cert"),
                "{text}"
            );
            assert!(!text.contains("secret-pw"), "no value in the error: {text}");
            let api = ApiError::from(error);
            assert_eq!(api.status(), 500);
            assert_eq!(api.code(), "configuration_error");
        }
    }

    #[test]
    fn a_ca_that_is_not_pem_is_refused_without_echoing_it() {
        let error = address(
            "postgres://a@db/postgres",
            Some("/etc/ssl/prod-ca-2021.crt"),
        )
        .unwrap_err();
        assert_eq!(
            error,
            ConfigError::Invalid {
                name: config::DB_CA_CERT,
                reason: "not a PEM certificate (-----BEGIN CERTIFICATE----- …): give the \
                         certificate's text, not its path"
                    .into()
            }
        );
        assert!(!error.to_string().contains("prod-ca-2021"));
    }

    #[test]
    fn a_ca_with_more_than_one_certificate_is_refused() {
        let error = address("postgres://a@db/postgres", Some(&format!("{CA}{CA}"))).unwrap_err();
        assert!(error.to_string().contains("2 certificates"), "{error}");
    }

    #[test]
    fn loading_reads_the_url_variable_and_db_ca_cert() {
        let vars: std::collections::HashMap<&'static str, String> = [
            (
                config::DEMO_DB_URL,
                "postgres://demo_relay:pw@db/postgres".to_string(),
            ),
            (config::DB_CA_CERT, format!("\n{CA}\n")),
        ]
        .into_iter()
        .collect();
        let address = DbAddress::load(&vars, config::DEMO_DB_URL).unwrap();
        assert_eq!(
            address.url,
            "postgres://demo_relay:pw@db/postgres?sslmode=require"
        );
        assert_eq!(address.ca_root.as_deref(), Some(CA.trim()));
        let printed = format!("{address:?}");
        assert!(
            !printed.contains("pw") && !printed.contains("BEGIN"),
            "{printed}"
        );
        let error = DbAddress::load(&vars, config::DB_URL).unwrap_err();
        assert_eq!(error, ConfigError::Missing(config::DB_URL));
    }

    #[test]
    fn a_ca_the_runtime_refuses_is_a_configuration_error() {
        let error =
            DbError::InvalidCaRoot("invalid root certificate: invalid root certificate".into());
        let api = ApiError::from(error);
        assert_eq!(api.status(), 500);
        assert_eq!(api.code(), "configuration_error");
        assert!(api.log_detail().unwrap().contains("db_ca_cert"));
    }

    #[test]
    fn a_closed_connection_reported_as_text_is_unavailable() {
        let error = DbError::from_pg(PgError::QueryFailed(QueryError::Text(
            "connection closed".into(),
        )));
        assert!(matches!(error, DbError::Unavailable(_)));
    }
}
