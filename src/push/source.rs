//! Where a push's rows come from: a query on the destination (`push.<name>.query`, read-only)
//! or a file (`push.<name>.file`): a Parquet file when its name ends in `.parquet`, else a CSV
//! file with a header row. All give column names and text values; an empty CSV field or an
//! empty Parquet string is an empty value, as a NULL is. A Parquet value is text as arrow
//! displays it (integers and decimals as written, `true`/`false`, dates `YYYY-MM-DD`,
//! timestamps ISO 8601: a column with a zone in UTC with its offset, one without as written).

use std::path::Path;

use super::Error;
use crate::config::PushConfig;
use crate::destination::{Destination, TextRows};

/// Reads every row of the push's source.
pub async fn read<D: Destination>(push: &PushConfig, dest: &D) -> Result<TextRows, Error> {
    match (&push.query, &push.file) {
        (Some(query), _) => Ok(dest.query_text(query).await?),
        (None, Some(file)) => read_file(file),
        (None, None) => Err(Error::NoSource),
    }
}

/// A push's file: Parquet when its name ends in `.parquet` (any case), else CSV.
pub fn read_file(path: &Path) -> Result<TextRows, Error> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet")) {
        read_parquet(path)
    } else {
        read_csv(path)
    }
}

/// A Parquet file: the schema's column names, every value as arrow displays it, NULL and an
/// empty string as `None`.
#[cfg(feature = "parquet")]
pub fn read_parquet(path: &Path) -> Result<TextRows, Error> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let shown = path.display().to_string();
    let fail = |detail: String| Error::File { path: shown.clone(), detail };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let unreadable = |e: &dyn std::fmt::Display| fail(format!("reading it as Parquet failed ({e})"));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| unreadable(&e))?;
    let columns: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    let reader = builder.build().map_err(|e| unreadable(&e))?;
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| unreadable(&e))?;
        let arrays: Vec<arrow::array::ArrayRef> = batch.columns().iter().map(in_utc).collect();
        let formatters = arrays
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unreadable(&e))?;
        for row in 0..batch.num_rows() {
            let values = arrays
                .iter()
                .zip(&formatters)
                .zip(&columns)
                .map(|((array, formatter), name)| {
                    if array.is_null(row) {
                        return Ok(None);
                    }
                    // A value arrow cannot display (a timestamp out of range) names its column
                    // and row, never the value.
                    let text = formatter.value(row).try_to_string().map_err(|_| {
                        fail(format!("row {} of column {name} holds a value hsync cannot read as text", rows.len() + 1))
                    })?;
                    Ok(Some(text).filter(|v| !v.is_empty()))
                })
                .collect::<Result<Vec<_>, Error>>()?;
            rows.push(values);
        }
    }
    Ok(TextRows { columns, rows })
}

/// A timestamp column with a zone, shown in UTC: the instants are the same (arrow stores UTC),
/// and arrow names no zone but offsets without the `chrono-tz` feature (pandas writes `UTC`).
#[cfg(feature = "parquet")]
fn in_utc(array: &arrow::array::ArrayRef) -> arrow::array::ArrayRef {
    use std::sync::Arc;

    use arrow::array::AsArray;
    use arrow::datatypes::{
        DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    const UTC: &str = "+00:00";
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, Some(_)) => {
            Arc::new(array.as_primitive::<TimestampSecondType>().clone().with_timezone(UTC))
        }
        DataType::Timestamp(TimeUnit::Millisecond, Some(_)) => {
            Arc::new(array.as_primitive::<TimestampMillisecondType>().clone().with_timezone(UTC))
        }
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => {
            Arc::new(array.as_primitive::<TimestampMicrosecondType>().clone().with_timezone(UTC))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, Some(_)) => {
            Arc::new(array.as_primitive::<TimestampNanosecondType>().clone().with_timezone(UTC))
        }
        _ => Arc::clone(array),
    }
}

/// Without the `parquet` feature a Parquet file cannot be read.
#[cfg(not(feature = "parquet"))]
pub fn read_parquet(path: &Path) -> Result<TextRows, Error> {
    Err(Error::File {
        path: path.display().to_string(),
        detail: "this hsync was built without Parquet support; use a build with the parquet feature (the \
                 default) or convert the file to CSV"
            .to_owned(),
    })
}

/// A CSV file with a header row.
pub fn read_csv(path: &Path) -> Result<TextRows, Error> {
    let shown = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_path(path)
        .map_err(|e| Error::File { path: shown.clone(), detail: e.to_string() })?;
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| Error::File { path: shown.clone(), detail: e.to_string() })?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        // A malformed line (an unclosed quote, a wrong field count) names its line and stops
        // the push before anything is sent: rows after it cannot be trusted to line up.
        let record = record.map_err(|e| Error::File { path: shown.clone(), detail: e.to_string() })?;
        rows.push(record.iter().map(|v| Some(v.to_owned()).filter(|v| !v.is_empty())).collect());
    }
    Ok(TextRows { columns, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_file_gives_its_header_and_rows_with_empty_fields_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        std::fs::write(&path, "email, score\na@x.io,\"1,5\"\nb@x.io,\n").unwrap();
        let read = read_csv(&path).unwrap();
        assert_eq!(read.columns, ["email", "score"]);
        assert_eq!(read.rows[0], [Some("a@x.io".to_owned()), Some("1,5".to_owned())]);
        assert_eq!(read.rows[1], [Some("b@x.io".to_owned()), None]);
    }

    #[cfg(feature = "parquet")]
    fn write_parquet(path: &Path, batch: &arrow::record_batch::RecordBatch) {
        let file = std::fs::File::create(path).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
    }

    #[cfg(feature = "parquet")]
    #[test]
    fn a_parquet_file_gives_its_columns_and_values_as_arrow_displays_them() {
        use std::sync::Arc;

        use arrow::array::{
            ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Scores.PARQUET");
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("email", Arc::new(StringArray::from(vec![Some("a@x.io"), Some("b@x.io"), Some("")]))),
            ("score", Arc::new(Int64Array::from(vec![Some(42), None, Some(-7)]))),
            ("ratio", Arc::new(Float64Array::from(vec![Some(0.25), Some(1.5), None]))),
            ("active", Arc::new(BooleanArray::from(vec![Some(true), Some(false), None]))),
            ("closed", Arc::new(Date32Array::from(vec![Some(20_541), None, None]))),
            (
                "seen",
                Arc::new(
                    TimestampMillisecondArray::from(vec![Some(1_767_225_600_123), None, Some(1_767_225_600_000)])
                        .with_timezone("UTC"),
                ),
            ),
            ("local", Arc::new(TimestampMillisecondArray::from(vec![Some(1_767_225_600_000), None, None]))),
            (
                "zoned",
                Arc::new(
                    TimestampMillisecondArray::from(vec![None, Some(1_767_225_600_000), None])
                        .with_timezone("America/New_York"),
                ),
            ),
        ];
        let batch = arrow::record_batch::RecordBatch::try_from_iter(columns).unwrap();
        write_parquet(&path, &batch);

        let read = read_file(&path).unwrap();
        assert_eq!(read.columns, ["email", "score", "ratio", "active", "closed", "seen", "local", "zoned"]);
        let text = |values: &[Option<&str>]| values.iter().map(|v| v.map(str::to_owned)).collect::<Vec<_>>();
        assert_eq!(
            read.rows,
            [
                text(&[
                    Some("a@x.io"),
                    Some("42"),
                    Some("0.25"),
                    Some("true"),
                    Some("2026-03-29"),
                    Some("2026-01-01T00:00:00.123Z"),
                    Some("2026-01-01T00:00:00"),
                    None
                ]),
                text(&[
                    Some("b@x.io"),
                    None,
                    Some("1.5"),
                    Some("false"),
                    None,
                    None,
                    None,
                    Some("2026-01-01T00:00:00Z")
                ]),
                text(&[None, Some("-7"), None, None, None, Some("2026-01-01T00:00:00Z"), None, None]),
            ]
        );
    }

    #[cfg(feature = "parquet")]
    #[test]
    fn a_file_that_is_not_parquet_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.parquet");
        std::fs::write(&path, "email,score\na@x.io,1\n").unwrap();
        let err = read_file(&path).unwrap_err();
        assert!(matches!(err, Error::File { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("rows.parquet") && text.contains("as Parquet"), "{text}");
        let missing = read_file(&dir.path().join("missing.parquet")).unwrap_err().to_string();
        assert!(missing.contains("missing.parquet"), "{missing}");
    }

    #[test]
    fn a_ragged_csv_line_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        std::fs::write(&path, "email,score\na@x.io,1,extra\n").unwrap();
        let err = read_csv(&path).unwrap_err().to_string();
        assert!(err.contains("rows.csv"), "{err}");
    }
}
