//! Column types in Snowflake: the mapping between [`ColumnType`] and Snowflake types (both
//! ways), the expressions that read a column back in a session-independent form, and the text
//! each Arrow value is bound as, and the text of a push query's values ([`query_text`]).
//!
//! # Decimals
//! hsync's decimals carry 38 digits on each side of the point (`Decimal256(76, 38)`), so that
//! `12345678901234.56` and `0.000000000000000001` both round-trip. Snowflake's `NUMBER` holds
//! 38 digits in all: any fixed `NUMBER(38, s)` would either round small fractions or refuse
//! large amounts. Decimal columns are therefore `VARCHAR(80)` holding the exact canonical
//! decimal text (`-0.5`, `100`, never an exponent), which never rounds; the length 80 is what
//! marks the column as a decimal when hsync describes the table. Query them with
//! `"amount"::NUMBER(38, 2)` (or `TRY_TO_NUMBER`) where the range is known.
//!
//! # Binding
//! Every value is bound as `TEXT` and converted by Snowflake into the column's type: integers
//! in decimal, booleans `true`/`false`, dates `YYYY-MM-DD`, instants ISO 8601 with `Z` (the
//! emulator refuses an offset after a space), JSON as its text (parsed with `PARSE_JSON` in
//! the statement that writes the `VARIANT`).

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, DecimalType, Int64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};

use super::client::Value;
use super::KIND;
use crate::destination::{Cell, Error};
use crate::schema::{format_decimal, ColumnType, DECIMAL_PRECISION, DECIMAL_SCALE};

/// The length of the `VARCHAR` decimal columns (see the module docs): room for 76 digits, a
/// sign and a point.
pub const DECIMAL_TEXT_LENGTH: i64 = 80;

/// The Snowflake type of a column type.
pub fn sf_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text => "VARCHAR",
        ColumnType::Decimal => "VARCHAR(80)",
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::Date => "DATE",
        ColumnType::Timestamp => "TIMESTAMP_TZ",
        ColumnType::Json => "VARIANT",
        ColumnType::BigInt => "NUMBER(38,0)",
    }
}

/// The type a column has in a staging table: JSON and decimals stay text there (JSON is parsed
/// when merged; decimal text is stored as it is).
pub fn stage_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Json | ColumnType::Decimal => "VARCHAR",
        other => sf_type(other),
    }
}

/// The column type of a column as `information_schema.columns` describes it (`data_type`,
/// `character_maximum_length`, `numeric_scale`), or `None` for a type hsync does not write.
pub fn column_type_of_sf(data_type: &str, length: Option<i64>, scale: Option<i64>) -> Option<ColumnType> {
    Some(match data_type.to_ascii_uppercase().as_str() {
        "TEXT" | "VARCHAR" if length == Some(DECIMAL_TEXT_LENGTH) => ColumnType::Decimal,
        "TEXT" | "VARCHAR" => ColumnType::Text,
        "NUMBER" | "FIXED" if scale.unwrap_or(0) == 0 => ColumnType::BigInt,
        "NUMBER" | "FIXED" => ColumnType::Decimal,
        "BOOLEAN" => ColumnType::Boolean,
        "DATE" => ColumnType::Date,
        "TIMESTAMP_TZ" => ColumnType::Timestamp,
        "VARIANT" => ColumnType::Json,
        _ => return None,
    })
}

/// An expression reading the (quoted) column so that strict Arrow decoding always works and
/// nothing depends on the session: instants as epoch milliseconds (a NULL `TIMESTAMP_TZ`
/// struct from the emulator would fail to decode), everything else as stored.
pub fn read_expr(column: &str, ty: ColumnType) -> String {
    match ty {
        ColumnType::Timestamp => epoch_ms(column),
        _ => column.to_owned(),
    }
}

/// `DATE_PART(EPOCH_MILLISECOND, <expr>)`.
pub fn epoch_ms(expr: &str) -> String {
    format!("DATE_PART(EPOCH_MILLISECOND, {expr})")
}

/// Canonical decimal text: no trailing fractional zeros, no point without a fraction.
pub fn normalise_decimal(text: &str) -> String {
    match text.split_once('.') {
        Some((int, frac)) => {
            let frac = frac.trim_end_matches('0');
            let int = if int.is_empty() || int == "-" { format!("{int}0") } else { int.to_owned() };
            let joined = if frac.is_empty() { int } else { format!("{int}.{frac}") };
            if joined == "-0" {
                "0".to_owned()
            } else {
                joined
            }
        }
        None => text.to_owned(),
    }
}

/// A batch value that cannot be bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {reason}")]
pub struct EncodeError {
    pub column: String,
    pub reason: String,
}

/// The values of one batch column as bind text (`None` for NULL), row by row.
pub fn encode_column(name: &str, array: &dyn Array) -> Result<Vec<Option<String>>, EncodeError> {
    let fail = |reason: String| EncodeError { column: name.to_owned(), reason };
    let n = array.len();
    let each = |f: &dyn Fn(usize) -> Result<String, String>| -> Result<Vec<Option<String>>, EncodeError> {
        (0..n).map(|i| if array.is_null(i) { Ok(None) } else { f(i).map(Some).map_err(fail) }).collect()
    };
    match array.data_type() {
        DataType::Null => Ok(vec![None; n]),
        DataType::Int64 => each(&|i| Ok(array.as_primitive::<Int64Type>().value(i).to_string())),
        DataType::Utf8 => each(&|i| Ok(array.as_string::<i32>().value(i).to_owned())),
        DataType::LargeUtf8 => each(&|i| Ok(array.as_string::<i64>().value(i).to_owned())),
        DataType::Boolean => each(&|i| Ok(array.as_boolean().value(i).to_string())),
        DataType::Date32 => each(&|i| {
            let days = array.as_primitive::<Date32Type>().value(i);
            chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .ok_or_else(|| "a date outside the range Snowflake stores".to_owned())
        }),
        DataType::Decimal256(p, s) => {
            let (p, s) = (*p, *s);
            each(&|i| {
                let v = array.as_primitive::<Decimal256Type>().value(i);
                Ok(if (p, s) == (DECIMAL_PRECISION, DECIMAL_SCALE) {
                    format_decimal(v)
                } else {
                    normalise_decimal(&<Decimal256Type as DecimalType>::format_decimal(v, p, s))
                })
            })
        }
        DataType::Decimal128(p, s) => {
            let (p, s) = (*p, *s);
            each(&|i| {
                Ok(normalise_decimal(&<Decimal128Type as DecimalType>::format_decimal(
                    array.as_primitive::<Decimal128Type>().value(i),
                    p,
                    s,
                )))
            })
        }
        DataType::Timestamp(unit, _) => {
            let unit = *unit;
            each(&|i| {
                let nanos: i128 = match unit {
                    TimeUnit::Second => {
                        i128::from(array.as_primitive::<TimestampSecondType>().value(i)) * 1_000_000_000
                    }
                    TimeUnit::Millisecond => {
                        i128::from(array.as_primitive::<TimestampMillisecondType>().value(i)) * 1_000_000
                    }
                    TimeUnit::Microsecond => {
                        i128::from(array.as_primitive::<TimestampMicrosecondType>().value(i)) * 1_000
                    }
                    TimeUnit::Nanosecond => i128::from(array.as_primitive::<TimestampNanosecondType>().value(i)),
                };
                iso_instant(nanos).ok_or_else(|| "an instant outside the range Snowflake stores".to_owned())
            })
        }
        other => Err(fail(format!("the Arrow type {other} has no Snowflake binding"))),
    }
}

/// An instant (nanoseconds since the epoch) as ISO 8601 UTC with a `Z`, microsecond precision.
pub fn iso_instant(nanos: i128) -> Option<String> {
    let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
    let sub = u32::try_from(nanos.rem_euclid(1_000_000_000)).ok()?;
    chrono::DateTime::from_timestamp(secs, sub).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

/// Milliseconds since the epoch as ISO 8601 UTC (for bound times).
pub fn iso_ms(ms: i64) -> Option<String> {
    iso_instant(i128::from(ms) * 1_000_000)
}

/// A value of a push query's result (`hsync push`) as text, `None` for NULL: numbers as
/// Snowflake gives them (a `NUMBER(p, s)` with its `s` digits), `true`/`false`, a date as
/// `YYYY-MM-DD`, a `TIME` as `HH:MM:SS` with its fraction, any timestamp as RFC 3339 in UTC
/// (`2026-01-01T12:00:00Z`, a fraction only when there is one; a `TIMESTAMP_NTZ` read as UTC),
/// text, `VARIANT`, `OBJECT` and `ARRAY` as their text. `None` in the error position when the
/// value is out of range.
pub(super) fn query_text(value: Value, column_type: &str) -> Result<Option<String>, ()> {
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Date(days) => {
            chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0).ok_or(())?.format("%Y-%m-%d").to_string()
        }
        Value::Timestamp(micros) => chrono::DateTime::from_timestamp_micros(micros)
            .ok_or(())?
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        Value::Decimal(seconds) | Value::Text(seconds) if column_type == "time" => time_of_day(&seconds).ok_or(())?,
        Value::Int(seconds) if column_type == "time" => time_of_day(&seconds.to_string()).ok_or(())?,
        other => other.into_text().unwrap_or_default(),
    }))
}

/// A `TIME` as Snowflake sends it (seconds since midnight, with the column's fraction) as
/// `HH:MM:SS[.fraction]`.
fn time_of_day(seconds: &str) -> Option<String> {
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    let whole: u32 = whole.parse().ok()?;
    let mut nanos = fraction.chars().take(9).collect::<String>();
    if !nanos.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    while nanos.len() < 9 {
        nanos.push('0');
    }
    let time = chrono::NaiveTime::from_num_seconds_from_midnight_opt(whole, nanos.parse().ok()?)?;
    Some(time.format("%H:%M:%S%.f").to_string())
}

/// A value read by [`read_expr`], normalised as a [`Cell`].
pub(super) fn cell_of(value: Value, ty: ColumnType, table: &str, column: &str) -> Result<Cell, Error> {
    let corrupt = |detail: String| Error::Statement { kind: KIND, action: format!("read {table}.{column}"), detail };
    if value == Value::Null {
        return Ok(Cell::Null);
    }
    Ok(match (ty, value) {
        (ColumnType::Boolean, Value::Bool(b)) => Cell::Bool(b),
        (ColumnType::Date, Value::Date(days)) => Cell::Date(
            chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .ok_or_else(|| corrupt("a date out of range".to_owned()))?,
        ),
        (ColumnType::Timestamp, v) => {
            Cell::TimestampMs(v.as_i64().ok_or_else(|| corrupt("not epoch milliseconds".into()))?)
        }
        (ColumnType::BigInt, v) => Cell::Int(v.as_i64().ok_or_else(|| corrupt("not an integer".into()))?),
        (ColumnType::Decimal, v) => Cell::Decimal(normalise_decimal(&v.into_text().unwrap_or_default())),
        (ColumnType::Json, v) => {
            Cell::Json(serde_json::from_str(&v.into_text().unwrap_or_default()).map_err(|e| corrupt(e.to_string()))?)
        }
        (ColumnType::Text, v) => Cell::Text(v.into_text().unwrap_or_default()),
        (ty, v) => return Err(corrupt(format!("a {ty:?} column held {v:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, BooleanArray, Date32Array, Int64Array, StringArray, TimestampMillisecondArray};
    use std::sync::Arc;

    #[test]
    fn every_column_type_maps_both_ways() {
        for ty in ColumnType::ALL {
            // information_schema names VARCHAR `TEXT` with its length, NUMBER with its scale.
            let (data_type, length, scale) = match sf_type(ty) {
                "VARCHAR" => ("TEXT", Some(16_777_216), None),
                "VARCHAR(80)" => ("TEXT", Some(80), None),
                "NUMBER(38,0)" => ("NUMBER", None, Some(0)),
                other => (other, None, None),
            };
            assert_eq!(column_type_of_sf(data_type, length, scale), Some(ty), "{ty:?}");
        }
        assert_eq!(column_type_of_sf("NUMBER", None, Some(2)), Some(ColumnType::Decimal));
        assert_eq!(column_type_of_sf("TIMESTAMP_NTZ", None, None), None);
        assert_eq!(column_type_of_sf("FLOAT", None, None), None);
    }

    #[test]
    fn push_query_values_are_text() {
        let text = |v: Value, ty: &str| query_text(v, ty).expect("in range");
        assert_eq!(text(Value::Null, "text"), None);
        assert_eq!(text(Value::Text("a@x.io".into()), "text"), Some("a@x.io".into()));
        assert_eq!(text(Value::Int(42), "fixed"), Some("42".into()));
        assert_eq!(text(Value::Decimal("12.50".into()), "fixed"), Some("12.50".into()));
        assert_eq!(text(Value::Float(0.25), "real"), Some("0.25".into()));
        assert_eq!(text(Value::Bool(false), "boolean"), Some("false".into()));
        assert_eq!(text(Value::Date(20_541), "date"), Some("2026-03-29".into()));
        assert_eq!(text(Value::Timestamp(1_767_225_600_000_000), "timestamp_ntz"), Some("2026-01-01T00:00:00Z".into()));
        assert_eq!(
            text(Value::Timestamp(1_767_225_600_123_456), "timestamp_tz"),
            Some("2026-01-01T00:00:00.123456Z".into())
        );
        assert_eq!(text(Value::Decimal("45296.500000000".into()), "time"), Some("12:34:56.500".into()));
        assert_eq!(text(Value::Text("45296".into()), "time"), Some("12:34:56".into()));
        assert_eq!(text(Value::Int(0), "time"), Some("00:00:00".into()));
        assert_eq!(query_text(Value::Date(i32::MAX), "date"), Err(()));
        assert_eq!(query_text(Value::Text("90000".into()), "time"), Err(()));
    }

    #[test]
    fn decimals_normalise() {
        assert_eq!(normalise_decimal("1.500"), "1.5");
        assert_eq!(normalise_decimal("100"), "100");
        assert_eq!(normalise_decimal("2.000"), "2");
        assert_eq!(normalise_decimal("-0.0"), "0");
        assert_eq!(normalise_decimal(".5"), "0.5");
    }

    #[test]
    fn values_bind_as_text() {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("id", Arc::new(Int64Array::from(vec![Some(7), None]))),
            ("s", Arc::new(StringArray::from(vec![Some("x'y"), Some("")]))),
            ("b", Arc::new(BooleanArray::from(vec![Some(true), None]))),
            ("d", Arc::new(Date32Array::from(vec![Some(20_541), Some(-1)]))),
            (
                "t",
                Arc::new(TimestampMillisecondArray::from(vec![Some(1_774_747_800_123), Some(-1)]).with_timezone("UTC")),
            ),
        ];
        let encoded: Vec<Vec<Option<String>>> =
            columns.iter().map(|(n, a)| encode_column(n, a.as_ref()).unwrap()).collect();
        assert_eq!(encoded[0], [Some("7".into()), None]);
        assert_eq!(encoded[1], [Some("x'y".into()), Some(String::new())]);
        assert_eq!(encoded[2], [Some("true".into()), None]);
        assert_eq!(encoded[3], [Some("2026-03-29".into()), Some("1969-12-31".into())]);
        assert_eq!(
            encoded[4],
            [Some("2026-03-29T01:30:00.123000Z".into()), Some("1969-12-31T23:59:59.999000Z".into())]
        );
    }
}
