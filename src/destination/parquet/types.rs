//! Column types in Parquet files: the Arrow type each [`ColumnType`] is written as, and the
//! conversion of Arrow arrays (a batch to stage, a file read back) to and from [`Value`]s, the
//! form the log replay keeps rows in.
//!
//! Decimals are written as their exact text (`"0.1"`, `"12345678901234.56"`), not as Parquet
//! `DECIMAL`: hsync's decimals need 76 digits (38 on each side of the point), and DuckDB,
//! Spark and Trino all stop at 38 (DuckDB reads wider decimals as a lossy `DOUBLE`; Spark and
//! Trino refuse the file). Text is exact in every engine; `CAST(amount AS DECIMAL(38, 10))`
//! types it where the values fit. JSON is text too. Every field carries its hsync type in the
//! `hsync.type` field metadata, so a reader can tell a decimal or JSON column from plain text.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Date32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{
    i256, DataType, Date32Type, Decimal128Type, Decimal256Type, DecimalType, Field, Int32Type, Int64Type, TimeUnit,
    TimestampMillisecondType,
};

use crate::destination::Cell;
use crate::schema::ColumnType;

/// The field metadata key naming a column's hsync type (`text`, `decimal`, `json`, ...).
pub const TYPE_KEY: &str = "hsync.type";

/// One stored value. Text, JSON and decimals (as exact text) are all `Text`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    Null,
    Int(i64),
    Bool(bool),
    /// Days since the Unix epoch.
    Date(i32),
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp(i64),
    Text(String),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The instant a timestamp holds.
    pub fn as_timestamp(&self) -> Option<i64> {
        match self {
            Value::Timestamp(ms) => Some(*ms),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(v) => Some(v),
            _ => None,
        }
    }

    pub fn time(ms: Option<i64>) -> Value {
        ms.map_or(Value::Null, Value::Timestamp)
    }
}

/// The name of a column type in `_schema.json` and in the `hsync.type` metadata.
pub fn type_name(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text => "text",
        ColumnType::Decimal => "decimal",
        ColumnType::Boolean => "boolean",
        ColumnType::Date => "date",
        ColumnType::Timestamp => "timestamp",
        ColumnType::Json => "json",
        ColumnType::BigInt => "big_int",
    }
}

/// The column type named by [`type_name`].
pub fn type_named(name: &str) -> Option<ColumnType> {
    ColumnType::ALL.into_iter().find(|ty| type_name(*ty) == name)
}

/// The Arrow type a column of type `ty` is written as.
pub fn file_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Text | ColumnType::Json | ColumnType::Decimal => DataType::Utf8,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        ColumnType::BigInt => DataType::Int64,
    }
}

/// The field of a column in a file, nullable, its hsync type in the metadata.
pub fn file_field(name: &str, ty: ColumnType) -> Field {
    Field::new(name, file_type(ty), true)
        .with_metadata(std::collections::HashMap::from([(TYPE_KEY.to_owned(), type_name(ty).to_owned())]))
}

/// The hsync type a file's field declares, falling back to what its Arrow type stands for.
pub fn field_type(field: &Field) -> ColumnType {
    field.metadata().get(TYPE_KEY).and_then(|name| type_named(name)).unwrap_or(match field.data_type() {
        DataType::Decimal128(..) | DataType::Decimal256(..) => ColumnType::Decimal,
        DataType::Boolean => ColumnType::Boolean,
        DataType::Date32 => ColumnType::Date,
        DataType::Timestamp(..) => ColumnType::Timestamp,
        DataType::Int64 | DataType::Int32 => ColumnType::BigInt,
        _ => ColumnType::Text,
    })
}

/// Shortest exact text of a decimal (`0.1`, `42`).
fn decimal_text(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// The values of an Arrow array (a batch's column or a file's), each read as the kind of value
/// a column of type `to` holds. A column widened since the array was written converts its
/// values the way widening does (a date becomes midnight UTC, anything becomes its text); the
/// error names what cannot be converted, never a value.
pub fn values_of(array: &ArrayRef, to: ColumnType) -> Result<Vec<Value>, String> {
    let n = array.len();
    let read: Vec<Value> = match array.data_type() {
        DataType::Null => vec![Value::Null; n],
        DataType::Int64 => {
            let a = array.as_primitive::<Int64Type>();
            (0..n).map(|i| if a.is_null(i) { Value::Null } else { Value::Int(a.value(i)) }).collect()
        }
        DataType::Int32 => {
            let a = array.as_primitive::<Int32Type>();
            (0..n).map(|i| if a.is_null(i) { Value::Null } else { Value::Int(i64::from(a.value(i))) }).collect()
        }
        DataType::Boolean => {
            let a = array.as_boolean();
            (0..n).map(|i| if a.is_null(i) { Value::Null } else { Value::Bool(a.value(i)) }).collect()
        }
        DataType::Date32 => {
            let a = array.as_primitive::<Date32Type>();
            (0..n).map(|i| if a.is_null(i) { Value::Null } else { Value::Date(a.value(i)) }).collect()
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            let a = array.as_primitive::<TimestampMillisecondType>();
            (0..n).map(|i| if a.is_null(i) { Value::Null } else { Value::Timestamp(a.value(i)) }).collect()
        }
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            (0..n).map(|i| if a.is_null(i) { Value::Null } else { Value::Text(a.value(i).to_owned()) }).collect()
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            (0..n).map(|i| if a.is_null(i) { Value::Null } else { Value::Text(a.value(i).to_owned()) }).collect()
        }
        DataType::Decimal256(precision, scale) => {
            let a = array.as_primitive::<Decimal256Type>();
            let text = |v: i256| decimal_text(Decimal256Type::format_decimal(v, *precision, *scale));
            (0..n).map(|i| if a.is_null(i) { Value::Null } else { Value::Text(text(a.value(i))) }).collect()
        }
        DataType::Decimal128(precision, scale) => {
            let a = array.as_primitive::<Decimal128Type>();
            let text = |v: i128| decimal_text(Decimal128Type::format_decimal(v, *precision, *scale));
            (0..n).map(|i| if a.is_null(i) { Value::Null } else { Value::Text(text(a.value(i))) }).collect()
        }
        other => return Err(format!("has the Arrow type {other}, which hsync does not write")),
    };
    read.into_iter().map(|v| convert(v, to)).collect()
}

/// A value as the kind a column of type `to` holds.
fn convert(value: Value, to: ColumnType) -> Result<Value, String> {
    Ok(match (value, to) {
        (Value::Null, _) => Value::Null,
        (v @ Value::Int(_), ColumnType::BigInt)
        | (v @ Value::Bool(_), ColumnType::Boolean)
        | (v @ Value::Date(_), ColumnType::Date)
        | (v @ Value::Timestamp(_), ColumnType::Timestamp)
        | (v @ Value::Text(_), ColumnType::Text | ColumnType::Json | ColumnType::Decimal) => v,
        (Value::Int(v), ColumnType::Decimal | ColumnType::Text) => Value::Text(v.to_string()),
        (Value::Date(days), ColumnType::Timestamp) => Value::Timestamp(i64::from(days) * 86_400_000),
        (Value::Bool(v), ColumnType::Text) => Value::Text(v.to_string()),
        (Value::Date(days), ColumnType::Text) => Value::Text(date_text(days)),
        (Value::Timestamp(ms), ColumnType::Text) => Value::Text(timestamp_text(ms)),
        (v, to) => return Err(format!("holds {} values, which a {} column cannot hold", kind_name(&v), type_name(to))),
    })
}

/// What kind of value `v` is, for messages that must not show the value.
fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Int(_) => "integer",
        Value::Bool(_) => "boolean",
        Value::Date(_) => "date",
        Value::Timestamp(_) => "timestamp",
        Value::Text(_) => "text",
    }
}

/// `YYYY-MM-DD` of a day count since the epoch.
pub fn date_text(days: i32) -> String {
    (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("invariant: a valid date")
        + chrono::Duration::days(i64::from(days)))
    .to_string()
}

/// RFC 3339 with milliseconds, UTC.
fn timestamp_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The Arrow array a column of type `ty` is written as, from `values` (each of the kind the
/// column holds; any other kind is written as NULL).
pub fn array_of<'a>(ty: ColumnType, values: impl Iterator<Item = &'a Value>) -> ArrayRef {
    match ty {
        ColumnType::Text | ColumnType::Json | ColumnType::Decimal => {
            let mut b = StringBuilder::new();
            for v in values {
                b.append_option(v.as_text());
            }
            Arc::new(b.finish())
        }
        ColumnType::BigInt => {
            let mut b = Int64Builder::new();
            for v in values {
                b.append_option(v.as_int());
            }
            Arc::new(b.finish())
        }
        ColumnType::Boolean => {
            let mut b = BooleanBuilder::new();
            for v in values {
                b.append_option(match v {
                    Value::Bool(x) => Some(*x),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::Date => {
            let mut b = Date32Builder::new();
            for v in values {
                b.append_option(match v {
                    Value::Date(x) => Some(*x),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::Timestamp => {
            let mut b = TimestampMillisecondBuilder::new().with_timezone("UTC");
            for v in values {
                b.append_option(v.as_timestamp());
            }
            Arc::new(b.finish())
        }
    }
}

/// A stored value as a [`Cell`]; the error names the column, never the value.
pub(super) fn cell(value: &Value, ty: ColumnType, column: &str) -> Result<Cell, String> {
    Ok(match value {
        Value::Null => Cell::Null,
        Value::Int(v) => Cell::Int(*v),
        Value::Bool(v) => Cell::Bool(*v),
        Value::Date(days) => Cell::Date(date_text(*days)),
        Value::Timestamp(ms) => Cell::TimestampMs(*ms),
        Value::Text(text) => match ty {
            ColumnType::Decimal => Cell::Decimal(text.clone()),
            ColumnType::Json => Cell::Json(
                serde_json::from_str(text).map_err(|_| format!("column {column} holds a value that is not JSON"))?,
            ),
            _ => Cell::Text(text.clone()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, Decimal256Array, Int64Array};

    #[test]
    fn widened_values_convert_like_the_sql_destinations() {
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![Some(1), None]));
        assert_eq!(values_of(&dates, ColumnType::Timestamp).unwrap(), [Value::Timestamp(86_400_000), Value::Null]);
        assert_eq!(values_of(&dates, ColumnType::Text).unwrap()[0], Value::Text("1970-01-02".into()));
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![42]));
        assert_eq!(values_of(&ints, ColumnType::Decimal).unwrap(), [Value::Text("42".into())]);
        assert!(values_of(&ints, ColumnType::Date).is_err(), "narrowing is refused");
    }

    #[test]
    fn decimals_become_their_shortest_exact_text() {
        let a = Decimal256Array::from(vec![Some(i256::from_i128(1_000_000_000_000_000_000_000_000_000_000_000_000))])
            .with_precision_and_scale(76, 38)
            .unwrap();
        let array: ArrayRef = Arc::new(a);
        assert_eq!(values_of(&array, ColumnType::Decimal).unwrap(), [Value::Text("0.01".into())]);
    }

    #[test]
    fn type_names_round_trip() {
        for ty in [ColumnType::Text, ColumnType::Decimal, ColumnType::Json, ColumnType::BigInt, ColumnType::Date] {
            assert_eq!(type_named(type_name(ty)), Some(ty));
            assert_eq!(field_type(&file_field("c", ty)), ty);
        }
    }
}
