//! Column types in BigQuery: the mapping between [`ColumnType`] and BigQuery types (both ways),
//! the types and values of staging tables, the Parquet file a load job reads, and the values
//! the REST API returns.
//!
//! # Staging
//! A stage holds exact decimals and JSON as `STRING` (the `MERGE` casts them): Parquet has no
//! decimal wide enough for hsync's 76 digits that every loader reads exactly, and JSON does not
//! load from Parquet into a `JSON` column everywhere. Instants are written as microseconds,
//! BigQuery's own resolution. Everything else loads as itself.
//!
//! # Reading back
//! Query results come as strings: timestamps as int64 microseconds (hsync always asks for
//! `formatOptions.useInt64Timestamp`), decimals as the text hsync stored, JSON as compact text.
//! The conformance suite's read-back (`inspect.rs`) normalises them further.
//!
//! # A push query's rows
//! [`text_rows`] turns the result of a query the operator wrote into text: a `TIMESTAMP` as
//! RFC 3339 in UTC (`2026-01-01T12:00:00Z`, a fraction only when there is one), `NUMERIC` and
//! `BIGNUMERIC` as BigQuery writes them (plain notation, no trailing fractional zeros; bqemulator
//! answers `1.500000000` or `-1E-9`), everything else as BigQuery writes it (`DATE`, `DATETIME`,
//! `INT64`, `FLOAT64`, `BOOL` as `true`/`false`, `JSON` as compact text).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{
    DataType, Decimal128Type, Decimal256Type, DecimalType, Field, Schema, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;

use gcp_bigquery_client::model::field_type::FieldType;
use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;

use crate::destination::{Cell, TextRows};
use crate::schema::{format_decimal, ColumnType, DECIMAL_PRECISION, DECIMAL_SCALE};

/// The description that marks a `STRING` column as an exact decimal (a HubSpot `number`; see
/// the module docs of `bigquery` for why decimals are text). It is how hsync tells such a
/// column from free text when it reads a table's schema back, and it tells analysts how to
/// compute with the column.
pub const DECIMAL_DESCRIPTION: &str =
    "hsync decimal: a HubSpot number as exact text; use CAST(column AS BIGNUMERIC) to compute with it";

/// Whether a column's description marks it as an exact decimal (see [`DECIMAL_DESCRIPTION`]).
pub fn is_decimal_description(description: Option<&str>) -> bool {
    description.is_some_and(|d| d.starts_with("hsync decimal:"))
}

/// The BigQuery type of a column type.
pub fn bq_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text | ColumnType::Decimal => "STRING",
        ColumnType::Boolean => "BOOL",
        ColumnType::Date => "DATE",
        ColumnType::Timestamp => "TIMESTAMP",
        ColumnType::Json => "JSON",
        ColumnType::BigInt => "INT64",
    }
}

/// A column's type in DDL text: decimals carry the description that marks them.
pub fn sql_type(ty: ColumnType) -> String {
    match ty {
        ColumnType::Decimal => format!("STRING OPTIONS(description = \"{DECIMAL_DESCRIPTION}\")"),
        other => bq_type(other).to_owned(),
    }
}

/// The type a staging table gives a column of this type (see the module docs).
pub fn stage_type(ty: ColumnType) -> ColumnType {
    match ty {
        ColumnType::Decimal | ColumnType::Json => ColumnType::Text,
        other => other,
    }
}

/// The column type of a BigQuery column as tables.get describes it (legacy or standard type
/// spelling, and the description that marks decimals), or `None` for a type hsync does not
/// write. A decimal column whose description was changed reads as text, which still holds
/// every value exactly.
pub fn column_type_of_bq(type_name: &str, description: Option<&str>) -> Option<ColumnType> {
    Some(match type_name.to_ascii_uppercase().as_str() {
        "STRING" if is_decimal_description(description) => ColumnType::Decimal,
        "STRING" => ColumnType::Text,
        "BOOL" | "BOOLEAN" => ColumnType::Boolean,
        "DATE" => ColumnType::Date,
        "TIMESTAMP" => ColumnType::Timestamp,
        "JSON" => ColumnType::Json,
        "INT64" | "INTEGER" => ColumnType::BigInt,
        _ => return None,
    })
}

/// A batch value a stage cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {reason}")]
pub struct EncodeError {
    pub column: String,
    pub reason: String,
}

/// The batch a stage loads: `batch` with decimals as exact text and instants in microseconds,
/// other columns unchanged, in the same order.
pub fn stage_batch(batch: &RecordBatch) -> Result<RecordBatch, EncodeError> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        let fail = |reason: &str| EncodeError { column: field.name().clone(), reason: reason.to_owned() };
        let (ty, converted): (DataType, ArrayRef) = match array.data_type() {
            DataType::Decimal256(p, s) => {
                let a = array.as_primitive::<Decimal256Type>();
                let text: StringArray = (0..a.len())
                    .map(|i| {
                        a.is_valid(i).then(|| {
                            if (*p, *s) == (DECIMAL_PRECISION, DECIMAL_SCALE) {
                                format_decimal(a.value(i))
                            } else {
                                trim_fraction(<Decimal256Type as DecimalType>::format_decimal(a.value(i), *p, *s))
                            }
                        })
                    })
                    .collect();
                (DataType::Utf8, Arc::new(text))
            }
            DataType::Decimal128(p, s) => {
                let a = array.as_primitive::<Decimal128Type>();
                let text: StringArray = (0..a.len())
                    .map(|i| {
                        a.is_valid(i)
                            .then(|| trim_fraction(<Decimal128Type as DecimalType>::format_decimal(a.value(i), *p, *s)))
                    })
                    .collect();
                (DataType::Utf8, Arc::new(text))
            }
            DataType::Timestamp(unit, _) => {
                let micros = timestamp_micros(array.as_ref(), *unit).ok_or_else(|| fail("an instant out of range"))?;
                let a = TimestampMicrosecondArray::from(micros).with_timezone("UTC");
                (a.data_type().clone(), Arc::new(a))
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Int64 | DataType::Boolean | DataType::Date32 => {
                (array.data_type().clone(), Arc::clone(array))
            }
            other => return Err(fail(&format!("hsync does not stage Arrow type {other}"))),
        };
        fields.push(Field::new(field.name(), ty, field.is_nullable()));
        columns.push(converted);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| EncodeError { column: String::new(), reason: e.to_string() })
}

fn timestamp_micros(array: &dyn Array, unit: TimeUnit) -> Option<Vec<Option<i64>>> {
    let convert = |v: i64| -> Option<i64> {
        match unit {
            TimeUnit::Second => v.checked_mul(1_000_000),
            TimeUnit::Millisecond => v.checked_mul(1_000),
            TimeUnit::Microsecond => Some(v),
            TimeUnit::Nanosecond => Some(v.div_euclid(1_000)),
        }
    };
    let value = |i: usize| -> i64 {
        match unit {
            TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(i),
            TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(i),
            TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(i),
            TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(i),
        }
    };
    (0..array.len()).map(|i| if array.is_valid(i) { convert(value(i)).map(Some) } else { Some(None) }).collect()
}

pub(super) fn trim_fraction(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A Parquet file holding `batch`, its columns in the batch's order (bqemulator matches a
/// Parquet load's columns to the table's by position).
pub fn parquet_file(batch: &RecordBatch) -> Result<Vec<u8>, EncodeError> {
    let fail = |e: parquet::errors::ParquetError| EncodeError { column: String::new(), reason: e.to_string() };
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), None).map_err(fail)?;
    writer.write(batch).map_err(fail)?;
    writer.close().map_err(fail)?;
    Ok(out)
}

/// Milliseconds from a TIMESTAMP value as the API returns it with `useInt64Timestamp`
/// (int64 microseconds since the epoch, as a string).
pub fn timestamp_ms(value: &str) -> Option<i64> {
    value.parse::<i64>().ok().map(|micros| micros.div_euclid(1_000))
}

/// A decimal in plain notation: bqemulator answers small `NUMERIC` values in scientific
/// notation (`-1E-9`), BigQuery never does. `None` for text that is not a decimal.
fn plain_decimal(value: &str) -> Option<String> {
    let (sign, unsigned) = match value.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", value.strip_prefix('+').unwrap_or(value)),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let point = i64::try_from(int.len()).ok()? + exponent;
    let len = i64::try_from(digits.len()).ok()?;
    let (int, frac) = if point <= 0 {
        ("0".to_owned(), format!("{}{digits}", "0".repeat(usize::try_from(-point).ok()?)))
    } else if point >= len {
        (format!("{digits}{}", "0".repeat(usize::try_from(point - len).ok()?)), String::new())
    } else {
        let at = usize::try_from(point).ok()?;
        (digits[..at].to_owned(), digits[at..].to_owned())
    };
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    Some(if frac.is_empty() { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") })
}

/// A value the query API returned (text), normalised as a [`Cell`]; `None` when it does not
/// parse as its column type.
pub(super) fn cell_of(ty: ColumnType, value: Option<&str>) -> Option<Cell> {
    let Some(v) = value else { return Some(Cell::Null) };
    Some(match ty {
        ColumnType::Text => Cell::Text(v.to_owned()),
        ColumnType::Decimal => Cell::Decimal(trim_fraction(plain_decimal(v)?)),
        ColumnType::Boolean => Cell::Bool(v.parse().ok()?),
        ColumnType::Date => Cell::Date(v.to_owned()),
        ColumnType::Timestamp => Cell::TimestampMs(timestamp_ms(v)?),
        ColumnType::Json => Cell::Json(serde_json::from_str(v).ok()?),
        ColumnType::BigInt => Cell::Int(v.parse().ok()?),
    })
}

/// The rows of a query the operator wrote, as text, with the result's column names in order
/// (see the module docs). An `ARRAY` or `STRUCT` column is refused: the API gives it in its
/// own nested `{"v": ...}` form, which no HubSpot property takes.
pub fn text_rows(fields: &[TableFieldSchema], rows: Vec<Vec<Option<String>>>) -> Result<TextRows, String> {
    if let Some(nested) = fields
        .iter()
        .find(|f| f.mode.as_deref() == Some("REPEATED") || matches!(f.r#type, FieldType::Record | FieldType::Struct))
    {
        let name = &nested.name;
        return Err(format!(
            "column {name} is an ARRAY or STRUCT; select it as text (TO_JSON_STRING({name})) or select its fields"
        ));
    }
    let rows = rows
        .into_iter()
        .map(|row| {
            if row.len() != fields.len() {
                return Err(format!("BigQuery returned a row of {} values for {} columns", row.len(), fields.len()));
            }
            fields.iter().zip(row).map(|(field, value)| value.map(|v| text_of(field, v)).transpose()).collect()
        })
        .collect::<Result<_, String>>()?;
    Ok(TextRows { columns: fields.iter().map(|f| f.name.clone()).collect(), rows })
}

/// One non-NULL value of a push query's result as text (see the module docs).
fn text_of(field: &TableFieldSchema, value: String) -> Result<String, String> {
    let unreadable = |what: &str| format!("column {} holds a {what} hsync cannot read", field.name);
    match field.r#type {
        FieldType::Timestamp => value
            .parse::<i64>()
            .ok()
            .and_then(chrono::DateTime::from_timestamp_micros)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .ok_or_else(|| unreadable("TIMESTAMP")),
        FieldType::Numeric | FieldType::Bignumeric => {
            plain_decimal(&value).map(trim_fraction).ok_or_else(|| unreadable("NUMERIC"))
        }
        _ => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, Decimal256Array, Int64Array, TimestampMillisecondArray};
    use arrow::datatypes::i256;

    #[test]
    fn every_column_type_maps_and_maps_back() {
        for ty in ColumnType::ALL {
            let description = (ty == ColumnType::Decimal).then_some(DECIMAL_DESCRIPTION);
            assert_eq!(column_type_of_bq(bq_type(ty), description), Some(ty));
        }
        assert_eq!(bq_type(ColumnType::Decimal), "STRING");
        assert_eq!(column_type_of_bq("STRING", None), Some(ColumnType::Text));
        assert_eq!(column_type_of_bq("STRING", Some("a note an analyst wrote")), Some(ColumnType::Text));
        assert_eq!(column_type_of_bq("INTEGER", None), Some(ColumnType::BigInt));
        assert_eq!(column_type_of_bq("BOOLEAN", None), Some(ColumnType::Boolean));
        assert_eq!(column_type_of_bq("NUMERIC", None), None, "hsync never writes NUMERIC");
        assert_eq!(column_type_of_bq("FLOAT", None), None);
        assert_eq!(stage_type(ColumnType::Json), ColumnType::Text);
        assert_eq!(stage_type(ColumnType::Decimal), ColumnType::Text);
        assert_eq!(stage_type(ColumnType::Timestamp), ColumnType::Timestamp);
        assert_eq!(sql_type(ColumnType::Decimal), format!("STRING OPTIONS(description = \"{DECIMAL_DESCRIPTION}\")"));
    }

    #[test]
    fn stage_batches_carry_exact_decimal_text_and_microseconds() {
        let ten_to_38 = i256::from_i128(10_i128.pow(19)).wrapping_mul(i256::from_i128(10_i128.pow(19)));
        let tenth = ten_to_38.wrapping_div(i256::from_i128(10));
        let decimals = Decimal256Array::from(vec![Some(tenth), None, Some(i256::from_i128(-1))])
            .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)
            .expect("decimal type");
        let instants =
            TimestampMillisecondArray::from(vec![Some(1_767_225_600_123), None, Some(-1)]).with_timezone("UTC");
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("amount", decimals.data_type().clone(), true),
            Field::new("seen", instants.data_type().clone(), true),
            Field::new("day", DataType::Date32, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(decimals),
                Arc::new(instants),
                Arc::new(Date32Array::from(vec![Some(1), None, None])),
            ],
        )
        .expect("batch");
        let staged = stage_batch(&batch).expect("stage");
        let names: Vec<_> = staged.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["id", "amount", "seen", "day"], "column order is kept");
        let amount = staged.column(1).as_string::<i32>();
        assert_eq!(amount.value(0), "0.1");
        assert!(amount.is_null(1));
        assert_eq!(amount.value(2), "-0.00000000000000000000000000000000000001");
        let seen = staged.column(2).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(seen.value(0), 1_767_225_600_123_000);
        assert!(seen.is_null(1));
        assert_eq!(seen.value(2), -1_000);
        assert!(!parquet_file(&staged).expect("parquet").is_empty());
    }

    #[test]
    fn values_read_back_are_normalised() {
        assert_eq!(
            cell_of(ColumnType::Decimal, Some("12345678901234.560000000")),
            Some(Cell::Decimal("12345678901234.56".into()))
        );
        assert_eq!(cell_of(ColumnType::Decimal, Some("100.000000000")), Some(Cell::Decimal("100".into())));
        assert_eq!(cell_of(ColumnType::Decimal, Some("100")), Some(Cell::Decimal("100".into())));
        assert_eq!(cell_of(ColumnType::Decimal, Some("-1E-9")), Some(Cell::Decimal("-0.000000001".into())));
        assert_eq!(cell_of(ColumnType::Decimal, Some("1.5e3")), Some(Cell::Decimal("1500".into())));
        assert_eq!(cell_of(ColumnType::Decimal, Some("12.5E-1")), Some(Cell::Decimal("1.25".into())));
        assert_eq!(cell_of(ColumnType::Decimal, Some("twelve")), None);
        assert_eq!(
            cell_of(ColumnType::Timestamp, Some("1767225600123000")),
            Some(Cell::TimestampMs(1_767_225_600_123))
        );
        assert_eq!(cell_of(ColumnType::Timestamp, Some("-1")), Some(Cell::TimestampMs(-1)));
        assert_eq!(cell_of(ColumnType::Timestamp, Some("1.7040672E9")), None, "float seconds are refused");
        assert_eq!(cell_of(ColumnType::Boolean, Some("true")), Some(Cell::Bool(true)));
        assert_eq!(cell_of(ColumnType::Json, Some(r#"{"a":[1]}"#)), Some(Cell::Json(serde_json::json!({"a": [1]}))));
        assert_eq!(cell_of(ColumnType::Text, None), Some(Cell::Null));
    }

    fn column(name: &str, ty: FieldType) -> TableFieldSchema {
        TableFieldSchema::new(name, ty)
    }

    #[test]
    fn a_push_querys_rows_are_text_in_column_order() {
        let fields = [
            column("email", FieldType::String),
            column("score", FieldType::Int64),
            column("amount", FieldType::Numeric),
            column("ratio", FieldType::Float64),
            column("seen", FieldType::Timestamp),
            column("closed", FieldType::Date),
            column("ok", FieldType::Bool),
        ];
        let row = |values: [Option<&str>; 7]| values.map(|v| v.map(str::to_owned)).to_vec();
        let read = text_rows(
            &fields,
            vec![
                row([
                    Some("a@x.io"),
                    Some("42"),
                    Some("-1E-9"),
                    Some("0.25"),
                    Some("1767225600123000"),
                    Some("2026-01-01"),
                    Some("true"),
                ]),
                row([Some("b@x.io"), None, Some("1.500000000"), None, Some("1767225600000000"), None, Some("false")]),
            ],
        )
        .expect("text");
        assert_eq!(read.columns, ["email", "score", "amount", "ratio", "seen", "closed", "ok"]);
        let text = |values: &[Option<&str>]| values.iter().map(|v| v.map(str::to_owned)).collect::<Vec<_>>();
        assert_eq!(
            read.rows[0],
            text(&[
                Some("a@x.io"),
                Some("42"),
                Some("-0.000000001"),
                Some("0.25"),
                Some("2026-01-01T00:00:00.123Z"),
                Some("2026-01-01"),
                Some("true")
            ])
        );
        assert_eq!(
            read.rows[1],
            text(&[Some("b@x.io"), None, Some("1.5"), None, Some("2026-01-01T00:00:00Z"), None, Some("false")])
        );
    }

    #[test]
    fn a_push_query_with_nested_or_unreadable_values_is_refused_by_column() {
        let mut tags = column("tags", FieldType::String);
        tags.mode = Some("REPEATED".to_owned());
        let e = text_rows(&[column("id", FieldType::Int64), tags], Vec::new()).unwrap_err();
        assert!(e.contains("column tags is an ARRAY or STRUCT") && e.contains("TO_JSON_STRING(tags)"), "{e}");
        let e = text_rows(&[column("address", FieldType::Record)], Vec::new()).unwrap_err();
        assert!(e.contains("column address"), "{e}");
        let e =
            text_rows(&[column("seen", FieldType::Timestamp)], vec![vec![Some("yesterday".to_owned())]]).unwrap_err();
        assert!(e.contains("column seen") && !e.contains("yesterday"), "{e}");
        let empty = text_rows(&[column("id", FieldType::Int64)], Vec::new()).expect("no rows");
        assert_eq!((empty.columns, empty.rows.len()), (vec!["id".to_owned()], 0));
    }
}
