//! Read-back for the conformance suite (built with the `test-support` feature): rows, stages,
//! rejects and edges as stored (BigQuery holds no checkpoints), values normalised as the suite
//! compares them.

use super::client::string_param;
use super::{hsync_columns, int_at, ms_at, sql, types, unreadable, BigQueryDestination, DIMENSION_TABLES, KIND};
use crate::destination::conformance::{Cell, EdgeRow, Inspect, Row};
use crate::destination::{Destination, Error};
use crate::schema::{ColumnType, Reject};
use crate::state::Checkpoint;

impl Inspect for BigQueryDestination {
    async fn read_table(&self, table: &str) -> Result<Vec<Row>, Error> {
        let action = format!("read {table}");
        let Some(columns) = self.describe(table).await? else {
            return Err(Error::Statement { kind: KIND, action, detail: "the table does not exist".to_owned() });
        };
        let order: Vec<&str> = match DIMENSION_TABLES.iter().find(|d| d.name == table) {
            Some(d) => d.key.to_vec(),
            None => vec![hsync_columns::ID],
        };
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let rows =
            self.read_rows(&action, sql::render_read_table(self.ds(), table, &names, &order), Vec::new()).await?;
        rows.iter()
            .map(|r| {
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let raw = text_at(&action, r, i)?;
                        let cell = cell_of(c.ty, raw.as_deref())
                            .ok_or_else(|| unreadable(&action, &format!("a {:?} value that does not parse", c.ty)))?;
                        Ok((c.name.clone(), cell))
                    })
                    .collect::<Result<Row, Error>>()
            })
            .collect()
    }

    async fn stage_tables(&self) -> Result<Vec<String>, Error> {
        self.list_stages().await
    }

    async fn read_rejects(&self, object: &str) -> Result<Vec<Reject>, Error> {
        let action = "read rejects";
        let rows =
            self.read_rows(action, sql::render_read_rejects(self.ds()), vec![string_param("object", object)]).await?;
        rows.iter()
            .map(|r| {
                let text = |i| text_at(action, r, i).map(Option::unwrap_or_default);
                Ok(Reject { object: text(0)?, id: text(1)?, property: text(2)?, raw: text(3)?, reason: text(4)? })
            })
            .collect()
    }

    /// BigQuery holds no checkpoint: they live in the local state file (see the module docs).
    async fn checkpoint(&self, _stream: &crate::state::StreamId) -> Result<Option<Checkpoint>, Error> {
        Ok(None)
    }

    async fn read_edges(&self) -> Result<Vec<EdgeRow>, Error> {
        let action = "read the association edges";
        let rows = self.read_rows(action, sql::render_read_edges(self.ds()), Vec::new()).await?;
        rows.iter()
            .map(|r| {
                let required = |v: Option<i64>| v.ok_or_else(|| unreadable(action, "a NULL in a required column"));
                let text = |i| text_at(action, r, i)?.ok_or_else(|| unreadable(action, "a NULL in a required column"));
                Ok(EdgeRow {
                    from_type: text(0)?,
                    from_id: required(int_at(action, r, 1)?)?,
                    to_type: text(2)?,
                    to_id: required(int_at(action, r, 3)?)?,
                    type_id: i32::try_from(required(int_at(action, r, 4)?)?)
                        .map_err(|_| unreadable(action, "a type id out of range"))?,
                    category: text(5)?,
                    label: text_at(action, r, 6)?,
                    synced_at_ms: required(ms_at(action, r, 7)?)?,
                    deleted_at_ms: ms_at(action, r, 8)?,
                })
            })
            .collect()
    }
}

fn text_at(action: &str, row: &[Option<String>], i: usize) -> Result<Option<String>, Error> {
    Ok(row.get(i).ok_or_else(|| unreadable(action, "too few columns"))?.clone())
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

/// A value read back, normalised for the conformance suite.
fn cell_of(ty: ColumnType, value: Option<&str>) -> Option<Cell> {
    let Some(v) = value else { return Some(Cell::Null) };
    Some(match ty {
        ColumnType::Text => Cell::Text(v.to_owned()),
        ColumnType::Decimal => Cell::Decimal(types::trim_fraction(plain_decimal(v)?)),
        ColumnType::Boolean => Cell::Bool(v.parse().ok()?),
        ColumnType::Date => Cell::Date(v.to_owned()),
        ColumnType::Timestamp => Cell::TimestampMs(types::timestamp_ms(v)?),
        ColumnType::Json => Cell::Json(serde_json::from_str(v).ok()?),
        ColumnType::BigInt => Cell::Int(v.parse().ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
