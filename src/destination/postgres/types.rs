//! Column types in Postgres: the mapping between [`ColumnType`] and Postgres types (both ways),
//! the `using` expressions that widen a column, the expressions that read a column back as
//! text, and the `COPY ... from stdin` text encoding of every Arrow value a batch can hold.
//!
//! # COPY text encoding
//! One line per row, columns separated by a tab, `\N` for NULL. In text values a backslash,
//! tab, newline and carriage return are escaped (`\\`, `\t`, `\n`, `\r`); an empty string stays
//! an empty string. Postgres text cannot hold a NUL character, so a NUL becomes U+FFFD.
//! Decimals are written exactly (`schema::format_decimal`), timestamps as ISO text with an
//! explicit `+00` offset (so the session time zone never matters), dates as `YYYY-MM-DD`
//! (`BC` suffixed before year 1, as Postgres reads them), booleans as `t`/`f`.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, DecimalType, Int64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

use sqlx::postgres::PgRow;
use sqlx::Row as _;

use super::KIND;
use crate::destination::{Cell, Error};
use crate::schema::{format_decimal, ColumnType, ExistingColumn, DECIMAL_PRECISION, DECIMAL_SCALE};

/// The Postgres type of a column type. Decimals are unconstrained `numeric`: exact, any scale.
pub fn pg_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text => "text",
        ColumnType::Decimal => "numeric",
        ColumnType::Boolean => "boolean",
        ColumnType::Date => "date",
        ColumnType::Timestamp => "timestamptz",
        ColumnType::Json => "jsonb",
        ColumnType::BigInt => "bigint",
    }
}

/// The column type of a Postgres type as `information_schema.columns.data_type` names it, or
/// `None` for a type hsync does not write.
pub fn column_type_of_pg(data_type: &str) -> Option<ColumnType> {
    Some(match data_type {
        "text" => ColumnType::Text,
        "numeric" => ColumnType::Decimal,
        "boolean" => ColumnType::Boolean,
        "date" => ColumnType::Date,
        "timestamp with time zone" => ColumnType::Timestamp,
        "jsonb" => ColumnType::Json,
        "bigint" => ColumnType::BigInt,
        _ => return None,
    })
}

/// The `using` expression that converts the (quoted) column from `from` to `to` without
/// depending on the session's time zone or date style. Instants become HubSpot's own ISO form.
pub fn widen_using(column: &str, from: ColumnType, to: ColumnType) -> String {
    match (from, to) {
        (ColumnType::Timestamp, ColumnType::Text) => {
            format!("to_char({column} at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
        }
        (ColumnType::Date, ColumnType::Text) => format!("to_char({column}, 'YYYY-MM-DD')"),
        (ColumnType::Date, ColumnType::Timestamp) => format!("({column}::timestamp at time zone 'UTC')"),
        (_, to) => format!("{column}::{}", pg_type(to)),
    }
}

/// An expression reading the (quoted) column as text that does not depend on session
/// settings: timestamps as epoch milliseconds, dates as `YYYY-MM-DD`, booleans as
/// `true`/`false`, decimals exactly.
pub fn read_as_text(column: &str, ty: ColumnType) -> String {
    match ty {
        ColumnType::Text => column.to_owned(),
        ColumnType::Timestamp => format!("(extract(epoch from {column}) * 1000)::bigint::text"),
        ColumnType::Date => format!("to_char({column}, 'YYYY-MM-DD')"),
        ColumnType::Decimal | ColumnType::Boolean | ColumnType::Json | ColumnType::BigInt => format!("{column}::text"),
    }
}

/// A batch value COPY text cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {reason}")]
pub struct EncodeError {
    pub column: String,
    pub reason: String,
}

/// One batch column, downcast once.
enum Cells<'a> {
    Null,
    Int64(&'a arrow::array::Int64Array),
    Utf8(&'a arrow::array::StringArray),
    LargeUtf8(&'a arrow::array::LargeStringArray),
    Boolean(&'a arrow::array::BooleanArray),
    Date32(&'a arrow::array::Date32Array),
    Decimal256(&'a arrow::array::Decimal256Array, u8, i8),
    Decimal128(&'a arrow::array::Decimal128Array, u8, i8),
    /// Values and how many of them make a second.
    Timestamp(&'a dyn Array, TimeUnit),
}

impl<'a> Cells<'a> {
    fn of(array: &'a dyn Array) -> Option<Cells<'a>> {
        Some(match array.data_type() {
            DataType::Null => Cells::Null,
            DataType::Int64 => Cells::Int64(array.as_primitive::<Int64Type>()),
            DataType::Utf8 => Cells::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Cells::LargeUtf8(array.as_string::<i64>()),
            DataType::Boolean => Cells::Boolean(array.as_boolean()),
            DataType::Date32 => Cells::Date32(array.as_primitive::<Date32Type>()),
            DataType::Decimal256(p, s) => Cells::Decimal256(array.as_primitive::<Decimal256Type>(), *p, *s),
            DataType::Decimal128(p, s) => Cells::Decimal128(array.as_primitive::<Decimal128Type>(), *p, *s),
            DataType::Timestamp(unit, _) => Cells::Timestamp(array, *unit),
            _ => return None,
        })
    }

    /// Appends the value at `row` (never NULL here).
    fn write(&self, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            Cells::Null => out.extend_from_slice(b"\\N"),
            Cells::Int64(a) => out.extend_from_slice(a.value(row).to_string().as_bytes()),
            Cells::Utf8(a) => write_text(a.value(row), out),
            Cells::LargeUtf8(a) => write_text(a.value(row), out),
            Cells::Boolean(a) => out.push(if a.value(row) { b't' } else { b'f' }),
            Cells::Date32(a) => {
                let date = i32::try_from(EPOCH_DAYS_FROM_CE + i64::from(a.value(row)))
                    .ok()
                    .and_then(NaiveDate::from_num_days_from_ce_opt)
                    .filter(|d| *d >= min_date())
                    .ok_or("a date outside the range Postgres stores")?;
                write_date(date, out);
            }
            Cells::Decimal256(a, p, s) => {
                let v = a.value(row);
                let text = if (*p, *s) == (DECIMAL_PRECISION, DECIMAL_SCALE) {
                    format_decimal(v)
                } else {
                    trim_fraction(<Decimal256Type as DecimalType>::format_decimal(v, *p, *s))
                };
                out.extend_from_slice(text.as_bytes());
            }
            Cells::Decimal128(a, p, s) => {
                let text = trim_fraction(<Decimal128Type as DecimalType>::format_decimal(a.value(row), *p, *s));
                out.extend_from_slice(text.as_bytes());
            }
            Cells::Timestamp(a, unit) => {
                let (secs, nanos) = split_instant(*a, *unit, row);
                let instant = chrono::DateTime::from_timestamp(secs, nanos)
                    .map(|dt| dt.naive_utc())
                    .filter(|dt| dt.date() >= min_date())
                    .ok_or("an instant outside the range Postgres stores")?;
                write_timestamp(instant, out);
            }
        }
        Ok(())
    }
}

const EPOCH_DAYS_FROM_CE: i64 = 719_163;

/// The first day Postgres can store (4713-11-24 BC, Julian day 0).
fn min_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(-4712, 11, 24).unwrap_or(NaiveDate::MIN)
}

fn trim_fraction(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

fn split_instant(array: &dyn Array, unit: TimeUnit, row: usize) -> (i64, u32) {
    let (value, per_second) = match unit {
        TimeUnit::Second => (array.as_primitive::<TimestampSecondType>().value(row), 1),
        TimeUnit::Millisecond => (array.as_primitive::<TimestampMillisecondType>().value(row), 1_000),
        TimeUnit::Microsecond => (array.as_primitive::<TimestampMicrosecondType>().value(row), 1_000_000),
        TimeUnit::Nanosecond => (array.as_primitive::<TimestampNanosecondType>().value(row), 1_000_000_000),
    };
    let nanos_per_unit = 1_000_000_000 / per_second;
    let secs = value.div_euclid(per_second);
    // In 0..1e9 by construction.
    let nanos = u32::try_from(value.rem_euclid(per_second) * nanos_per_unit).unwrap_or(0);
    (secs, nanos)
}

/// Writes `YYYY-MM-DD` with the year counted Postgres's way (1 BC is year 0 in chrono); the
/// ` BC` suffix goes at the very end of the value ([`era_suffix`]).
fn write_ymd(date: NaiveDate, out: &mut Vec<u8>) {
    let year = if date.year() <= 0 { 1 - date.year() } else { date.year() };
    out.extend_from_slice(format!("{year:04}-{:02}-{:02}", date.month(), date.day()).as_bytes());
}

fn era_suffix(date: NaiveDate, out: &mut Vec<u8>) {
    if date.year() <= 0 {
        out.extend_from_slice(b" BC");
    }
}

fn write_date(date: NaiveDate, out: &mut Vec<u8>) {
    write_ymd(date, out);
    era_suffix(date, out);
}

fn write_timestamp(instant: NaiveDateTime, out: &mut Vec<u8>) {
    let date = instant.date();
    write_ymd(date, out);
    out.extend_from_slice(format!(" {:02}:{:02}:{:02}", instant.hour(), instant.minute(), instant.second()).as_bytes());
    // Leap seconds are folded into the fraction by chrono; Postgres has none.
    let nanos = instant.nanosecond().min(999_999_999);
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push(b'.');
        out.extend_from_slice(fraction.trim_end_matches('0').as_bytes());
    }
    out.extend_from_slice(b"+00");
    era_suffix(date, out);
}

/// Whether a byte needs escaping in COPY's text format.
fn needs_escape(b: u8) -> bool {
    matches!(b, b'\\' | b'\t' | b'\n' | b'\r' | 0)
}

/// Appends text escaped for COPY's text format. Most values need no escaping and are copied
/// whole; byte-by-byte appending was the largest item of a wide backfill's CPU profile.
fn write_text(value: &str, out: &mut Vec<u8>) {
    let bytes = value.as_bytes();
    if !bytes.iter().any(|&b| needs_escape(b)) {
        out.extend_from_slice(bytes);
        return;
    }
    out.reserve(bytes.len() + 8);
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice("\u{FFFD}".as_bytes()),
            _ => out.push(b),
        }
    }
}

/// Encodes every row of `batch` as COPY text, columns in batch order.
pub fn encode_copy_text(batch: &RecordBatch) -> Result<Vec<u8>, EncodeError> {
    let schema = batch.schema();
    let columns: Vec<Cells<'_>> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(array, field)| {
            Cells::of(array.as_ref()).ok_or_else(|| EncodeError {
                column: field.name().clone(),
                reason: format!("hsync does not load Arrow type {} into Postgres", array.data_type()),
            })
        })
        .collect::<Result<_, _>>()?;
    let arrays = batch.columns();
    let mut out = Vec::with_capacity(batch.num_rows() * columns.len() * 8);
    for row in 0..batch.num_rows() {
        for (i, cells) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            if arrays[i].is_null(row) {
                out.extend_from_slice(b"\\N");
            } else {
                cells
                    .write(row, &mut out)
                    .map_err(|reason| EncodeError { column: schema.field(i).name().clone(), reason })?;
            }
        }
        out.push(b'\n');
    }
    Ok(out)
}

/// A decimal as Postgres prints it (`12.50`), without trailing fractional zeros (`12.5`).
pub fn normalise_decimal(text: &str) -> String {
    trim_fraction(text.to_owned())
}

/// One value of a row [`super::sql::render_read_cells`] (or the whole-table read-back) read,
/// as text from [`read_as_text`], normalised as a [`Cell`].
pub(super) fn cell_of(row: &PgRow, index: usize, column: &ExistingColumn, table: &str) -> Result<Cell, Error> {
    let corrupt =
        |detail: String| Error::Statement { kind: KIND, action: format!("read {table}.{}", column.name), detail };
    let text: Option<String> = row.try_get(index).map_err(|e| Error::from_sqlx(KIND, format!("read {table}"), e))?;
    let Some(text) = text else { return Ok(Cell::Null) };
    Ok(match column.ty {
        ColumnType::Text => Cell::Text(text),
        ColumnType::Decimal => Cell::Decimal(normalise_decimal(&text)),
        ColumnType::Boolean => Cell::Bool(text == "true"),
        ColumnType::Date => Cell::Date(text),
        ColumnType::Timestamp => {
            Cell::TimestampMs(text.parse().map_err(|_| corrupt("not epoch milliseconds".to_owned()))?)
        }
        ColumnType::Json => Cell::Json(serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?),
        ColumnType::BigInt => Cell::Int(text.parse().map_err(|_| corrupt("not an integer".to_owned()))?),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Decimal256Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::schema::{parse_value, ParsedValue};
    use arrow::datatypes::i256;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let fields: Vec<Field> = columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, a)| a).collect()).unwrap()
    }

    fn encoded(columns: Vec<(&str, ArrayRef)>) -> String {
        String::from_utf8(encode_copy_text(&batch(columns)).unwrap()).unwrap()
    }

    fn decimal(s: &str) -> i256 {
        let ParsedValue::Decimal(v) = parse_value(ColumnType::Decimal, s).unwrap().value else { panic!("{s}") };
        v
    }

    #[test]
    fn text_is_escaped_and_empty_is_not_null() {
        let text =
            StringArray::from(vec![Some("a\\b\tc\nd\re"), Some(""), None, Some("\\N"), Some("\\."), Some("x\0y")]);
        let out = encoded(vec![("t", Arc::new(text))]);
        assert_eq!(out, "a\\\\b\\tc\\nd\\re\n\n\\N\n\\\\N\n\\\\.\nx\u{FFFD}y\n");
    }

    #[test]
    fn values_of_every_type_are_encoded() {
        let ts = TimestampMillisecondArray::from(vec![Some(1_767_225_600_500), Some(0), Some(-1)]).with_timezone("UTC");
        let dec = Decimal256Array::from(vec![Some(decimal("0.1")), Some(decimal("12345678901234.56")), None])
            .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)
            .unwrap();
        let out = encoded(vec![
            ("id", Arc::new(Int64Array::from(vec![1, -2, i64::MAX]))),
            ("b", Arc::new(BooleanArray::from(vec![Some(true), Some(false), None]))),
            ("d", Arc::new(Date32Array::from(vec![Some(20_454), Some(0), Some(-719_528)]))),
            ("ts", Arc::new(ts)),
            ("n", Arc::new(dec)),
        ]);
        assert_eq!(
            out,
            "1\tt\t2026-01-01\t2026-01-01 00:00:00.5+00\t0.1\n\
             -2\tf\t1970-01-01\t1970-01-01 00:00:00+00\t12345678901234.56\n\
             9223372036854775807\t\\N\t0001-01-01 BC\t1969-12-31 23:59:59.999+00\t\\N\n"
        );
    }

    #[test]
    fn thirty_digit_decimals_are_exact() {
        let s = "123456789012345678901234.567891";
        let dec = Decimal256Array::from(vec![Some(decimal(s))])
            .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)
            .unwrap();
        assert_eq!(encoded(vec![("n", Arc::new(dec))]), format!("{s}\n"));
    }

    #[test]
    fn out_of_range_instants_are_errors_naming_the_column() {
        let ts = TimestampMillisecondArray::from(vec![Some(i64::MIN)]);
        let err = encode_copy_text(&batch(vec![("when", Arc::new(ts))])).unwrap_err();
        assert_eq!(err.column, "when");
        let ancient = Date32Array::from(vec![Some(-3_000_000)]);
        assert!(encode_copy_text(&batch(vec![("day", Arc::new(ancient))])).is_err());
    }

    #[test]
    fn unsupported_arrow_types_are_errors() {
        let floats = arrow::array::Float64Array::from(vec![1.5]);
        let err = encode_copy_text(&batch(vec![("f", Arc::new(floats))])).unwrap_err();
        assert!(err.reason.contains("Float64"), "{err}");
    }

    #[test]
    fn types_map_both_ways() {
        for ty in ColumnType::ALL {
            let described = match pg_type(ty) {
                "timestamptz" => "timestamp with time zone",
                other => other,
            };
            assert_eq!(column_type_of_pg(described), Some(ty));
        }
        assert_eq!(column_type_of_pg("integer"), None);
    }
}
