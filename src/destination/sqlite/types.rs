//! SQLite column types and values: how each [`ColumnType`] is declared, how a declared type is
//! read back by `describe`, and how a value of an Arrow batch becomes a bound SQLite value.
//!
//! SQLite has no exact decimal and no timestamp type, and decides a column's storage by the
//! *affinity* of its declared type. hsync declares types whose affinity keeps values exact and
//! whose names still say what the column holds:
//!
//! | column type | declared type    | affinity | stored value |
//! | ----------- | ---------------- | -------- | ------------ |
//! | Text        | `TEXT`           | TEXT     | the text; `""` stays `""`, never NULL |
//! | Decimal     | `DECIMAL_TEXT`   | TEXT     | exact decimal text from [`format_decimal`] (`0.1` stays `0.1`; 30 digits stay 30 digits) |
//! | Timestamp   | `TIMESTAMP_TEXT` | TEXT     | fixed-width ISO-8601 UTC, `YYYY-MM-DDTHH:MM:SS.sssZ` |
//! | Date        | `DATE_TEXT`      | TEXT     | `YYYY-MM-DD` |
//! | Json        | `JSON_TEXT`      | TEXT     | the JSON text as HubSpot sent it |
//! | Boolean     | `BOOLEAN`        | NUMERIC  | `0` or `1` |
//! | BigInt      | `INTEGER`        | INTEGER  | a 64-bit integer |
//!
//! Timestamps are fixed width so that comparing them as text orders them as instants: the
//! merge guard (`_hsync_cursor <= excluded._hsync_cursor`) relies on it. That holds for years
//! 0000 to 9999; an instant outside that range cannot be written (the batch builder should
//! have rejected it). NULL is NULL in every type. A declared type `describe` does not know
//! (a column someone added by hand) reads back as [`ColumnType::Text`].

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Date32Type, Decimal256Type, Int64Type, TimeUnit, TimestampMillisecondType};
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};

use sqlx::sqlite::SqliteRow;
use sqlx::Row as _;

use crate::destination::Cell;
use crate::schema::{format_decimal, ColumnType, ExistingColumn, DECIMAL_SCALE};

/// The declared type of a column of type `ty`.
pub fn declared_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text => "TEXT",
        ColumnType::Decimal => "DECIMAL_TEXT",
        ColumnType::Timestamp => "TIMESTAMP_TEXT",
        ColumnType::Date => "DATE_TEXT",
        ColumnType::Json => "JSON_TEXT",
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::BigInt => "INTEGER",
    }
}

/// The column type a declared type stands for (case-insensitive; unknown types are text).
pub fn column_type(declared: &str) -> ColumnType {
    let declared = declared.trim();
    ColumnType::ALL.into_iter().find(|ty| declared_type(*ty).eq_ignore_ascii_case(declared)).unwrap_or(ColumnType::Text)
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.sssZ`; `None` outside years 0000-9999.
pub fn format_timestamp_ms(ms: i64) -> Option<String> {
    let instant = DateTime::<Utc>::from_timestamp_millis(ms)?;
    (0..=9999).contains(&instant.year()).then(|| instant.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Reads a stored timestamp back as epoch milliseconds.
pub fn parse_timestamp_ms(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok().map(|instant| instant.timestamp_millis())
}

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Formats days since the Unix epoch as `YYYY-MM-DD`; `None` outside years 0000-9999.
pub fn format_date(days: i32) -> Option<String> {
    let date = NaiveDate::from_num_days_from_ce_opt(days.checked_add(EPOCH_DAYS_FROM_CE)?)?;
    (0..=9999).contains(&date.year()).then(|| date.format("%Y-%m-%d").to_string())
}

/// A value ready to bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    Integer(i64),
    Text(String),
}

/// Why a batch column cannot be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueError {
    /// The Arrow type is not one a batch built by `schema::build_batch` has.
    UnsupportedType(DataType),
    /// A timestamp or date outside years 0000-9999.
    OutOfRange,
}

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueError::UnsupportedType(t) => {
                write!(f, "has Arrow type {t}, which the sqlite destination does not store")
            }
            ValueError::OutOfRange => f.write_str("holds a date or time outside the years 0000 to 9999"),
        }
    }
}

fn each(
    array: &dyn Array,
    mut value: impl FnMut(usize) -> Result<Value, ValueError>,
) -> Result<Vec<Value>, ValueError> {
    (0..array.len()).map(|i| if array.is_null(i) { Ok(Value::Null) } else { value(i) }).collect()
}

/// The bound values of one batch column, row by row.
pub fn column_values(array: &dyn Array) -> Result<Vec<Value>, ValueError> {
    match array.data_type() {
        DataType::Int64 => {
            let a = array.as_primitive::<Int64Type>();
            each(array, |i| Ok(Value::Integer(a.value(i))))
        }
        DataType::Boolean => {
            let a = array.as_boolean();
            each(array, |i| Ok(Value::Integer(i64::from(a.value(i)))))
        }
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            each(array, |i| Ok(Value::Text(a.value(i).to_owned())))
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            each(array, |i| Ok(Value::Text(a.value(i).to_owned())))
        }
        DataType::Decimal256(_, scale) if *scale == DECIMAL_SCALE => {
            let a = array.as_primitive::<Decimal256Type>();
            each(array, |i| Ok(Value::Text(format_decimal(a.value(i)))))
        }
        DataType::Date32 => {
            let a = array.as_primitive::<Date32Type>();
            each(array, |i| format_date(a.value(i)).map(Value::Text).ok_or(ValueError::OutOfRange))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            let a = array.as_primitive::<TimestampMillisecondType>();
            each(array, |i| format_timestamp_ms(a.value(i)).map(Value::Text).ok_or(ValueError::OutOfRange))
        }
        other => Err(ValueError::UnsupportedType(other.clone())),
    }
}

/// Reads one stored value back as a [`Cell`]; the error names what was wrong, never the value.
pub(super) fn cell(row: &SqliteRow, index: usize, column: &ExistingColumn) -> Result<Cell, String> {
    let unreadable = |e: sqlx::Error| format!("column {} cannot be read: {e}", column.name);
    match column.ty {
        ColumnType::BigInt | ColumnType::Boolean => {
            let value: Option<i64> = row.try_get_unchecked(index).map_err(unreadable)?;
            Ok(match (value, column.ty) {
                (None, _) => Cell::Null,
                (Some(v), ColumnType::Boolean) => Cell::Bool(v != 0),
                (Some(v), _) => Cell::Int(v),
            })
        }
        ty => {
            let Some(text) = row.try_get_unchecked::<Option<String>, _>(index).map_err(unreadable)? else {
                return Ok(Cell::Null);
            };
            Ok(match ty {
                ColumnType::Decimal => Cell::Decimal(text),
                ColumnType::Date => Cell::Date(text),
                ColumnType::Timestamp => Cell::TimestampMs(
                    parse_timestamp_ms(&text)
                        .ok_or_else(|| format!("column {} holds a value that is not a timestamp", column.name))?,
                ),
                ColumnType::Json => Cell::Json(
                    serde_json::from_str(&text)
                        .map_err(|_| format!("column {} holds a value that is not JSON", column.name))?,
                ),
                _ => Cell::Text(text),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BooleanArray, Date32Array, Int64Array, StringArray, TimestampMillisecondArray};

    use super::*;
    use crate::schema::{parse_value, ParsedValue};

    #[test]
    fn declared_types_round_trip_and_unknown_ones_are_text() {
        for ty in ColumnType::ALL {
            assert_eq!(column_type(declared_type(ty)), ty, "{ty:?}");
        }
        assert_eq!(column_type("timestamp_text"), ColumnType::Timestamp, "case-insensitive");
        assert_eq!(column_type("VARCHAR(20)"), ColumnType::Text);
        assert_eq!(column_type(""), ColumnType::Text);
    }

    #[test]
    fn declared_types_have_the_affinity_that_keeps_values_exact() {
        // SQLite's affinity rules, in order: INT anywhere means INTEGER; CHAR, CLOB or TEXT
        // means TEXT. None of the text types may contain INT.
        for ty in [ColumnType::Text, ColumnType::Decimal, ColumnType::Timestamp, ColumnType::Date, ColumnType::Json] {
            let declared = declared_type(ty);
            assert!(!declared.contains("INT") && declared.contains("TEXT"), "{declared}");
        }
    }

    #[test]
    fn timestamps_are_fixed_width_utc_text_that_sorts() {
        assert_eq!(format_timestamp_ms(0).as_deref(), Some("1970-01-01T00:00:00.000Z"));
        assert_eq!(format_timestamp_ms(1_774_747_800_123).as_deref(), Some("2026-03-29T01:30:00.123Z"));
        assert_eq!(format_timestamp_ms(-1).as_deref(), Some("1969-12-31T23:59:59.999Z"));
        assert_eq!(format_timestamp_ms(253_402_300_800_000), None, "year 10000");
        assert_eq!(format_timestamp_ms(i64::MAX), None);
        let mut texts: Vec<String> = [5_000, 1_767_225_600_000, 1, 1_767_225_600_001, 999]
            .iter()
            .map(|ms| format_timestamp_ms(*ms).expect("in range"))
            .collect();
        texts.sort();
        let back: Vec<i64> = texts.iter().map(|t| parse_timestamp_ms(t).expect("parses")).collect();
        assert_eq!(back, [1, 999, 5_000, 1_767_225_600_000, 1_767_225_600_001], "text order is time order");
    }

    #[test]
    fn dates_are_iso_days() {
        assert_eq!(format_date(0).as_deref(), Some("1970-01-01"));
        assert_eq!(format_date(20_454).as_deref(), Some("2026-01-01"));
        assert_eq!(format_date(i32::MAX), None);
    }

    #[test]
    fn batch_values_are_exact_and_nulls_stay_null() {
        let ParsedValue::Decimal(tenth) = parse_value(ColumnType::Decimal, "0.1").expect("parses").value else {
            panic!("a decimal")
        };
        let ParsedValue::Decimal(wide) =
            parse_value(ColumnType::Decimal, "123456789012345678901234.56789").expect("parses").value
        else {
            panic!("a decimal")
        };
        let decimals = arrow::array::Decimal256Array::from(vec![Some(tenth), None, Some(wide)])
            .with_precision_and_scale(crate::schema::DECIMAL_PRECISION, DECIMAL_SCALE)
            .expect("valid");
        assert_eq!(
            column_values(&decimals).expect("values"),
            [Value::Text("0.1".into()), Value::Null, Value::Text("123456789012345678901234.56789".into())]
        );
        let text: ArrayRef = Arc::new(StringArray::from(vec![Some(""), None, Some("ñandú")]));
        assert_eq!(
            column_values(&text).expect("values"),
            [Value::Text(String::new()), Value::Null, Value::Text("ñandú".into())],
            "empty text is not NULL"
        );
        let flags = BooleanArray::from(vec![Some(true), Some(false), None]);
        assert_eq!(column_values(&flags).expect("values"), [Value::Integer(1), Value::Integer(0), Value::Null]);
        let ids = Int64Array::from(vec![Some(i64::MAX), None]);
        assert_eq!(column_values(&ids).expect("values"), [Value::Integer(i64::MAX), Value::Null]);
        let days = Date32Array::from(vec![Some(20_454), None]);
        assert_eq!(column_values(&days).expect("values"), [Value::Text("2026-01-01".into()), Value::Null]);
        let instants = TimestampMillisecondArray::from(vec![Some(1_767_225_600_500), None]).with_timezone("UTC");
        assert_eq!(
            column_values(&instants).expect("values"),
            [Value::Text("2026-01-01T00:00:00.500Z".into()), Value::Null]
        );
        let far = TimestampMillisecondArray::from(vec![Some(i64::MAX / 2)]);
        assert_eq!(column_values(&far), Err(ValueError::OutOfRange));
        let floats = arrow::array::Float64Array::from(vec![1.5]);
        assert_eq!(column_values(&floats), Err(ValueError::UnsupportedType(DataType::Float64)));
    }
}
