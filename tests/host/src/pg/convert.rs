//! Spin's `spin:postgres@4` type mapping, between WIT values and what
//! `tokio-postgres` reads and writes.
//!
//! Results: `bool`, `int2/4/8`, `float4/8`, `text`/`varchar`/`bpchar`, `bytea`,
//! `date`, `time`, `timestamp` (a date-time tuple; a `timestamptz` column fails the
//! query, as in Spin),
//! `uuid`, `jsonb`, `numeric` (decimal string), `int4range`/`int8range`/`numrange`,
//! `int4[]`/`int8[]`/`numeric[]`/`text[]`, `interval`; NULL is `db-null`; anything
//! else (`json` included) is `unsupported` with the raw bytes, and its column type is
//! `other(<name>)`.
//!
//! Parameters are typed: each Rust value is checked by `tokio-postgres` against the
//! type the server inferred for the placeholder, so a string for a `uuid` column fails
//! as it does in Spin. A `datetime` parameter is a naive `timestamp`; `timestamp`
//! (seconds since the epoch) is a `timestamptz`.

use anyhow::{Context, anyhow};
use bytes::{Buf, BufMut, BytesMut};
use chrono::{Datelike, Timelike};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::bindings::spin::postgres::postgres::{
    Column, DbDataType, DbValue, Interval, ParameterValue, RangeBoundKind,
};

/// A boxed parameter ready for `tokio-postgres`.
pub type SqlParam = Box<dyn ToSql + Send + Sync>;

/// The WIT type of a column.
pub fn data_type(pg_type: &Type) -> DbDataType {
    match *pg_type {
        Type::BOOL => DbDataType::Boolean,
        Type::BYTEA => DbDataType::Binary,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => DbDataType::Str,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_RANGE => DbDataType::RangeInt32,
        Type::INT8_RANGE => DbDataType::RangeInt64,
        Type::NUM_RANGE => DbDataType::RangeDecimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::NUMERIC_ARRAY => DbDataType::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => DbDataType::ArrayStr,
        Type::INTERVAL => DbDataType::Interval,
        _ => DbDataType::Other(pg_type.name().to_owned()),
    }
}

/// The columns of a result, as Spin reports them: read from the first row, so a result
/// without rows has no columns.
pub fn columns(rows: &[Row]) -> Vec<Column> {
    let Some(first) = rows.first() else {
        return Vec::new();
    };
    first
        .columns()
        .iter()
        .map(|column| Column {
            name: column.name().to_owned(),
            data_type: data_type(column.type_()),
        })
        .collect()
}

fn value<'a, T: FromSql<'a>>(
    row: &'a Row,
    index: usize,
    wrap: impl Fn(T) -> DbValue,
) -> anyhow::Result<DbValue> {
    let value: Option<T> = row.try_get(index)?;
    Ok(value.map(wrap).unwrap_or(DbValue::DbNull))
}

fn try_value<'a, T: FromSql<'a>>(
    row: &'a Row,
    index: usize,
    wrap: impl Fn(T) -> anyhow::Result<DbValue>,
) -> anyhow::Result<DbValue> {
    let value: Option<T> = row.try_get(index)?;
    match value {
        Some(value) => wrap(value),
        None => Ok(DbValue::DbNull),
    }
}

fn datetime_tuple(value: chrono::NaiveDateTime) -> anyhow::Result<(i32, u8, u8, u8, u8, u8, u32)> {
    Ok((
        value.year(),
        value.month().try_into()?,
        value.day().try_into()?,
        value.hour().try_into()?,
        value.minute().try_into()?,
        value.second().try_into()?,
        value.nanosecond(),
    ))
}

fn bound_kind(kind: postgres_range::BoundType) -> RangeBoundKind {
    match kind {
        postgres_range::BoundType::Inclusive => RangeBoundKind::Inclusive,
        postgres_range::BoundType::Exclusive => RangeBoundKind::Exclusive,
    }
}

fn pg_bound_kind(kind: RangeBoundKind) -> postgres_range::BoundType {
    match kind {
        RangeBoundKind::Inclusive => postgres_range::BoundType::Inclusive,
        RangeBoundKind::Exclusive => postgres_range::BoundType::Exclusive,
    }
}

type WitRange<T> = (Option<(T, RangeBoundKind)>, Option<(T, RangeBoundKind)>);

fn range_to_wit<T: Clone + postgres_range::Normalizable + PartialOrd, U>(
    range: postgres_range::Range<T>,
    map: impl Fn(&T) -> U,
) -> WitRange<U> {
    (
        range.lower().map(|b| (map(&b.value), bound_kind(b.type_))),
        range.upper().map(|b| (map(&b.value), bound_kind(b.type_))),
    )
}

/// One value of a result row.
pub fn db_value(row: &Row, index: usize) -> anyhow::Result<DbValue> {
    let column = &row.columns()[index];
    match *column.type_() {
        Type::BOOL => value(row, index, DbValue::Boolean),
        Type::BYTEA => value(row, index, DbValue::Binary),
        Type::FLOAT4 => value(row, index, DbValue::Floating32),
        Type::FLOAT8 => value(row, index, DbValue::Floating64),
        Type::INT2 => value(row, index, DbValue::Int16),
        Type::INT4 => value(row, index, DbValue::Int32),
        Type::INT8 => value(row, index, DbValue::Int64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => value(row, index, DbValue::Str),
        // As in Spin, both through chrono's `NaiveDateTime`, which tokio-postgres takes
        // from a `timestamp` only: a `timestamptz` column fails the row with "error
        // deserializing column N … cannot convert between the Rust type
        // `core::option::Option<chrono::naive::datetime::NaiveDateTime>` and the Postgres
        // type `timestamptz`", NULL or not.
        Type::TIMESTAMP | Type::TIMESTAMPTZ => try_value(row, index, |v: chrono::NaiveDateTime| {
            Ok(DbValue::Datetime(datetime_tuple(v)?))
        }),
        Type::DATE => try_value(row, index, |v: chrono::NaiveDate| {
            Ok(DbValue::Date((
                v.year(),
                v.month().try_into()?,
                v.day().try_into()?,
            )))
        }),
        Type::TIME => try_value(row, index, |v: chrono::NaiveTime| {
            Ok(DbValue::Time((
                v.hour().try_into()?,
                v.minute().try_into()?,
                v.second().try_into()?,
                v.nanosecond(),
            )))
        }),
        Type::UUID => value(row, index, |v: uuid::Uuid| DbValue::Uuid(v.to_string())),
        Type::JSONB => try_value(row, index, |v: serde_json::Value| {
            Ok(DbValue::Jsonb(
                serde_json::to_vec(&v).context("invalid JSON from database")?,
            ))
        }),
        Type::NUMERIC => value(row, index, |v: rust_decimal::Decimal| {
            DbValue::Decimal(v.to_string())
        }),
        Type::INT4_RANGE => value(row, index, |v: postgres_range::Range<i32>| {
            DbValue::RangeInt32(range_to_wit(v, |x| *x))
        }),
        Type::INT8_RANGE => value(row, index, |v: postgres_range::Range<i64>| {
            DbValue::RangeInt64(range_to_wit(v, |x| *x))
        }),
        Type::NUM_RANGE => value(row, index, |v: postgres_range::Range<RangeableDecimal>| {
            DbValue::RangeDecimal(range_to_wit(v, |x| x.0.to_string()))
        }),
        Type::INT4_ARRAY => value(row, index, DbValue::ArrayInt32),
        Type::INT8_ARRAY => value(row, index, DbValue::ArrayInt64),
        Type::NUMERIC_ARRAY => value(row, index, |v: Vec<Option<rust_decimal::Decimal>>| {
            DbValue::ArrayDecimal(v.iter().map(|d| d.map(|d| d.to_string())).collect())
        }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            value(row, index, DbValue::ArrayStr)
        }
        Type::INTERVAL => value(row, index, |v: PgInterval| DbValue::Interval(v.0)),
        _ => value(row, index, |v: RawBytes| DbValue::Unsupported(v.0)),
    }
}

/// Every value of a row.
pub fn db_row(row: &Row) -> anyhow::Result<Vec<DbValue>> {
    (0..row.len()).map(|index| db_value(row, index)).collect()
}

fn date(&(y, m, d): &(i32, u8, u8)) -> anyhow::Result<chrono::NaiveDate> {
    chrono::NaiveDate::from_ymd_opt(y, m.into(), d.into())
        .ok_or_else(|| anyhow!("invalid date y={y}, m={m}, d={d}"))
}

fn time(&(h, min, s, ns): &(u8, u8, u8, u32)) -> anyhow::Result<chrono::NaiveTime> {
    chrono::NaiveTime::from_hms_nano_opt(h.into(), min.into(), s.into(), ns)
        .ok_or_else(|| anyhow!("invalid time {h}:{min}:{s}:{ns}"))
}

fn decimal(text: &str) -> anyhow::Result<rust_decimal::Decimal> {
    rust_decimal::Decimal::from_str_exact(text).with_context(|| format!("invalid decimal {text}"))
}

fn range_to_pg<T: postgres_range::Normalizable + PartialOrd, U>(
    (lower, upper): &WitRange<U>,
    map: impl Fn(&U) -> anyhow::Result<T>,
) -> anyhow::Result<postgres_range::Range<T>> {
    let lower = match lower {
        Some((value, kind)) => Some(postgres_range::RangeBound::new(
            map(value)?,
            pg_bound_kind(*kind),
        )),
        None => None,
    };
    let upper = match upper {
        Some((value, kind)) => Some(postgres_range::RangeBound::new(
            map(value)?,
            pg_bound_kind(*kind),
        )),
        None => None,
    };
    Ok(postgres_range::Range::new(lower, upper))
}

/// A WIT parameter as a typed `tokio-postgres` parameter.
pub fn sql_param(value: &ParameterValue) -> anyhow::Result<SqlParam> {
    Ok(match value {
        ParameterValue::Boolean(v) => Box::new(*v),
        ParameterValue::Int8(v) => Box::new(*v),
        ParameterValue::Int16(v) => Box::new(*v),
        ParameterValue::Int32(v) => Box::new(*v),
        ParameterValue::Int64(v) => Box::new(*v),
        ParameterValue::Floating32(v) => Box::new(*v),
        ParameterValue::Floating64(v) => Box::new(*v),
        ParameterValue::Str(v) => Box::new(v.clone()),
        ParameterValue::Binary(v) => Box::new(v.clone()),
        ParameterValue::Date(v) => Box::new(date(v)?),
        ParameterValue::Time(v) => Box::new(time(v)?),
        ParameterValue::Datetime((y, mon, d, h, min, s, ns)) => Box::new(
            chrono::NaiveDateTime::new(date(&(*y, *mon, *d))?, time(&(*h, *min, *s, *ns))?),
        ),
        ParameterValue::Timestamp(seconds) => Box::new(
            chrono::DateTime::<chrono::Utc>::from_timestamp(*seconds, 0)
                .ok_or_else(|| anyhow!("invalid epoch timestamp {seconds}"))?,
        ),
        ParameterValue::Uuid(v) => {
            Box::new(uuid::Uuid::parse_str(v).with_context(|| format!("invalid UUID {v}"))?)
        }
        ParameterValue::Jsonb(v) => Box::new(
            serde_json::from_slice::<serde_json::Value>(v)
                .with_context(|| format!("invalid JSON {}", String::from_utf8_lossy(v)))?,
        ),
        ParameterValue::Decimal(v) => Box::new(decimal(v)?),
        ParameterValue::RangeInt32(v) => Box::new(range_to_pg(v, |x: &i32| Ok(*x))?),
        ParameterValue::RangeInt64(v) => Box::new(range_to_pg(v, |x: &i64| Ok(*x))?),
        ParameterValue::RangeDecimal(v) => Box::new(range_to_pg(v, |x: &String| {
            Ok(RangeableDecimal(decimal(x)?))
        })?),
        ParameterValue::ArrayInt32(v) => Box::new(v.clone()),
        ParameterValue::ArrayInt64(v) => Box::new(v.clone()),
        ParameterValue::ArrayDecimal(v) => Box::new(
            v.iter()
                .map(|item| item.as_deref().map(decimal).transpose())
                .collect::<anyhow::Result<Vec<Option<rust_decimal::Decimal>>>>()?,
        ),
        ParameterValue::ArrayStr(v) => Box::new(v.clone()),
        ParameterValue::Interval(v) => Box::new(PgInterval(*v)),
        ParameterValue::DbNull => Box::new(PgNull),
    })
}

/// Every parameter, or the first conversion error.
pub fn sql_params(values: &[ParameterValue]) -> anyhow::Result<Vec<SqlParam>> {
    values.iter().map(sql_param).collect()
}

/// A `NULL` of whatever type the server expects (an `Option::None` would be checked
/// against one Rust type).
#[derive(Debug)]
struct PgNull;

impl ToSql for PgNull {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn to_sql_checked(
        &self,
        _: &Type,
        _: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
}

/// An `interval` in Postgres's binary form: microseconds, days, months.
#[derive(Debug)]
struct PgInterval(Interval);

impl ToSql for PgInterval {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_i64(self.0.micros);
        out.put_i32(self.0.days);
        out.put_i32(self.0.months);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgInterval {
    fn from_sql(
        _: &Type,
        mut raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        if raw.len() != 16 {
            return Err("unexpected binary format for Postgres INTERVAL".into());
        }
        let micros = raw.get_i64();
        let days = raw.get_i32();
        let months = raw.get_i32();
        Ok(Self(Interval {
            micros,
            days,
            months,
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

/// The raw bytes of a value of a type Spin does not map.
struct RawBytes(Vec<u8>);

impl<'a> FromSql<'a> for RawBytes {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A decimal usable as a range bound.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct RangeableDecimal(rust_decimal::Decimal);

impl ToSql for RangeableDecimal {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <rust_decimal::Decimal as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for RangeableDecimal {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(rust_decimal::Decimal::from_sql(ty, raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        <rust_decimal::Decimal as FromSql>::accepts(ty)
    }
}

impl postgres_range::Normalizable for RangeableDecimal {
    fn normalize<S: postgres_range::BoundSided>(
        bound: postgres_range::RangeBound<S, Self>,
    ) -> postgres_range::RangeBound<S, Self> {
        bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_parameters_are_conversion_errors() {
        assert!(sql_param(&ParameterValue::Uuid("not-a-uuid".into())).is_err());
        assert!(sql_param(&ParameterValue::Decimal("1.2.3".into())).is_err());
        assert!(sql_param(&ParameterValue::Date((2024, 2, 30))).is_err());
        assert!(sql_param(&ParameterValue::Jsonb(b"{".to_vec())).is_err());
        assert!(sql_param(&ParameterValue::Decimal("12.50".into())).is_ok());
    }

    #[test]
    fn column_types_map_as_in_spin() {
        assert!(matches!(
            data_type(&Type::TIMESTAMPTZ),
            DbDataType::Datetime
        ));
        assert!(matches!(data_type(&Type::JSONB), DbDataType::Jsonb));
        assert!(matches!(data_type(&Type::JSON), DbDataType::Other(name) if name == "json"));
        assert!(matches!(
            data_type(&Type::VARCHAR_ARRAY),
            DbDataType::ArrayStr
        ));
    }
}
