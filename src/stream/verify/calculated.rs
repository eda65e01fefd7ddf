//! The calculated-property part of `hsync verify`: for a sample of an object's live records,
//! the stored values of the properties HubSpot calculates (those a refresh re-reads, see
//! [`crate::stream::calculated`]) are compared with HubSpot's current values, read by batch
//! read (100 records a call) with the cursor property alongside.
//!
//! A calculated value can change without moving the record's last-modified time, so a row
//! whose cursor is current can still hold an old rollup: that is what this check finds, and
//! what the id comparison cannot. A row whose stored cursor is older than HubSpot's is stale as
//! a whole (the id comparison reports it) and is left out here, as are records HubSpot no
//! longer returns and rows the warehouse lacks. HubSpot's value is parsed for the column as a
//! write would store it (a value that does not parse is stored as NULL with a reject), so equal
//! means the warehouse holds what a refresh would write now.
//!
//! The sample is spread over the live ids like the history sample ([`super::history::sample`]).
//! Reports carry ids and property names, never values.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Difference;
use crate::destination::{Cell, Row};
use crate::hubspot::model::CrmObject;
use crate::schema::{hsync_columns, parse_value, ExistingColumn};
use crate::stream::record_cursor_ms;

/// Records sampled per object unless asked otherwise: one batch read.
pub const DEFAULT_SAMPLE: usize = 100;

/// The calculated-property comparison of one object's sample.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CalculatedReport {
    /// The calculated properties compared (those with a column).
    pub properties: Vec<String>,
    /// Sampled records compared: in both places, with the stored cursor current.
    pub records_sampled: u64,
    /// Sampled records left out because their whole row is stale (an older stored cursor).
    pub records_behind: u64,
    /// Record and property pairs compared.
    pub values_compared: u64,
    /// Pairs whose stored value is not HubSpot's current one; examples are `record/property`.
    pub stale: Difference,
    /// No pair differs.
    pub matches: bool,
}

/// A calculated property and its column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalculatedColumn {
    pub property: String,
    pub column: ExistingColumn,
}

/// The value a write of `record` would store in `column`: HubSpot's value parsed for the
/// column's type, NULL when absent or when it does not parse.
fn expected(record: &CrmObject, column: &CalculatedColumn) -> Cell {
    let raw = record.properties.get(&column.property).and_then(|v| v.as_deref());
    raw.and_then(|raw| parse_value(column.column.ty, raw).ok())
        .and_then(|parsed| Cell::from_parsed(&parsed.value))
        .unwrap_or(Cell::Null)
}

/// Compares HubSpot's `records` (read with the `columns`' properties and `cursor_property`)
/// with the `stored` rows (the id, `_hsync_cursor` and each column, from
/// [`crate::destination::Destination::read_cells`]).
pub fn compare(
    columns: &[CalculatedColumn],
    cursor_property: &str,
    records: &[CrmObject],
    stored: &[Row],
    examples: usize,
) -> CalculatedReport {
    let by_id: BTreeMap<i64, &Row> = stored
        .iter()
        .filter_map(|row| match row.get(hsync_columns::ID) {
            Some(Cell::Int(id)) => Some((*id, row)),
            _ => None,
        })
        .collect();
    let mut sorted: Vec<(i64, &CrmObject)> =
        records.iter().filter_map(|r| Some((r.id.trim().parse::<i64>().ok()?, r))).collect();
    sorted.sort_by_key(|(id, _)| *id);
    sorted.dedup_by_key(|(id, _)| *id);
    let mut report = CalculatedReport {
        properties: columns.iter().map(|c| c.property.clone()).collect(),
        ..CalculatedReport::default()
    };
    for (id, record) in sorted {
        let Some(row) = by_id.get(&id) else { continue };
        let ours = match row.get(hsync_columns::CURSOR) {
            Some(Cell::TimestampMs(ms)) => Some(*ms),
            _ => None,
        };
        if let Some(theirs) = record_cursor_ms(record, cursor_property) {
            if ours.is_none_or(|ours| ours < theirs) {
                report.records_behind += 1;
                continue;
            }
        }
        report.records_sampled += 1;
        for column in columns {
            report.values_compared += 1;
            let stored = row.get(&column.column.name).unwrap_or(&Cell::Null);
            if *stored != expected(record, column) {
                report.stale.record_example(format!("{id}/{}", column.property), examples);
            }
        }
    }
    report.matches = report.stale.count == 0;
    report
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::ColumnType;

    const CURSOR: &str = "hs_lastmodifieddate";

    fn column(property: &str, ty: ColumnType) -> CalculatedColumn {
        CalculatedColumn { property: property.into(), column: ExistingColumn { name: property.into(), ty } }
    }

    fn record(id: i64, modified: &str, deals: Option<&str>) -> CrmObject {
        serde_json::from_value(json!({
            "id": id.to_string(),
            "properties": { CURSOR: modified, "num_associated_deals": deals, "hs_num_open_deals": "1" },
        }))
        .unwrap()
    }

    fn row(id: i64, cursor_ms: i64, deals: Cell) -> Row {
        Row::from([
            (hsync_columns::ID.to_owned(), Cell::Int(id)),
            (hsync_columns::CURSOR.to_owned(), Cell::TimestampMs(cursor_ms)),
            ("num_associated_deals".to_owned(), deals),
            ("hs_num_open_deals".to_owned(), Cell::Decimal("1".into())),
        ])
    }

    const T: &str = "2026-01-01T00:00:00Z";
    const T_MS: i64 = 1_767_225_600_000;

    #[test]
    fn a_rollup_that_moved_without_the_cursor_is_stale() {
        let columns =
            [column("num_associated_deals", ColumnType::Decimal), column("hs_num_open_deals", ColumnType::Decimal)];
        let records = [record(2, T, Some("3")), record(1, T, Some("2.0")), record(3, T, None)];
        let stored = [
            row(1, T_MS, Cell::Decimal("2".into())),
            row(2, T_MS, Cell::Decimal("2".into())),
            row(3, T_MS, Cell::Null),
        ];
        let report = compare(&columns, CURSOR, &records, &stored, 10);
        assert_eq!((report.records_sampled, report.values_compared, report.records_behind), (3, 6, 0));
        assert_eq!(report.stale.count, 1);
        assert_eq!(report.stale.examples, ["2/num_associated_deals"]);
        assert!(!report.matches);
        assert_eq!(report.properties, ["num_associated_deals", "hs_num_open_deals"]);
    }

    #[test]
    fn rows_behind_and_records_on_one_side_only_are_left_out() {
        let columns = [column("num_associated_deals", ColumnType::Decimal)];
        // Record 1's row predates HubSpot's version; 2 is not stored; 4 is not in HubSpot.
        let records = [record(1, T, Some("9")), record(2, T, Some("1"))];
        let stored = [row(1, T_MS - 1, Cell::Decimal("1".into())), row(4, T_MS, Cell::Decimal("1".into()))];
        let report = compare(&columns, CURSOR, &records, &stored, 10);
        assert_eq!((report.records_sampled, report.records_behind, report.values_compared), (0, 1, 0));
        assert!(report.matches);
    }

    #[test]
    fn a_value_that_does_not_parse_is_expected_as_null() {
        let columns = [column("num_associated_deals", ColumnType::Decimal)];
        let records = [record(1, T, Some("many"))];
        let report = compare(&columns, CURSOR, &records, &[row(1, T_MS, Cell::Null)], 10);
        assert!(report.matches, "the write stored NULL and a reject");
        let report = compare(&columns, CURSOR, &records, &[row(1, T_MS, Cell::Decimal("1".into()))], 10);
        assert_eq!(report.stale.examples, ["1/num_associated_deals"]);
    }
}
