//! Where a push's rows come from: a query on the destination (`push.<name>.query`, read-only)
//! or a CSV file with a header row (`push.<name>.file`). Both give column names and text
//! values; an empty CSV field is an empty value, as a NULL is.

use std::path::Path;

use super::Error;
use crate::config::PushConfig;
use crate::destination::{Destination, TextRows};

/// Reads every row of the push's source.
pub async fn read<D: Destination>(push: &PushConfig, dest: &D) -> Result<TextRows, Error> {
    match (&push.query, &push.file) {
        (Some(query), _) => Ok(dest.query_text(query).await?),
        (None, Some(file)) => read_csv(file),
        (None, None) => Err(Error::NoSource),
    }
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

    #[test]
    fn a_ragged_csv_line_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        std::fs::write(&path, "email,score\na@x.io,1,extra\n").unwrap();
        let err = read_csv(&path).unwrap_err().to_string();
        assert!(err.contains("rows.csv"), "{err}");
    }
}
