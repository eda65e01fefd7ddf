//! Stored values read back, normalised across dialects ([`Cell`], [`Row`]): what
//! [`super::Destination::read_cells`] returns, what `hsync verify` compares with HubSpot's
//! values (parsed for the column as a write would store them, [`Cell::from_parsed`]), and what
//! the conformance suite checks.

use std::collections::BTreeMap;

use crate::schema::{format_decimal, ParsedValue};

/// A value read back from a destination, normalised across dialects.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    /// Exact decimal text without trailing fractional zeros (`0.1`, `42`).
    Decimal(String),
    Bool(bool),
    /// `YYYY-MM-DD`.
    Date(String),
    /// Milliseconds since the Unix epoch, UTC.
    TimestampMs(i64),
    Int(i64),
    Json(serde_json::Value),
}

/// A row: column name to value.
pub type Row = BTreeMap<String, Cell>;

/// What a query the operator wrote returned ([`super::Destination::query_text`]): its column
/// names and each row's values as text (NULL as `None`), in the query's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextRows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl Cell {
    /// The cell a destination holds after storing `value`; `None` for JSON that does not parse
    /// (the parser has checked it, so never for a parsed value).
    pub fn from_parsed(value: &ParsedValue<'_>) -> Option<Cell> {
        Some(match value {
            ParsedValue::Null => Cell::Null,
            ParsedValue::Text(text) => Cell::Text(text.clone().into_owned()),
            ParsedValue::Decimal(d) => Cell::Decimal(format_decimal(*d)),
            ParsedValue::Boolean(b) => Cell::Bool(*b),
            ParsedValue::Date(days) => Cell::Date(
                chrono::DateTime::from_timestamp(i64::from(*days) * 86_400, 0)?.format("%Y-%m-%d").to_string(),
            ),
            ParsedValue::Timestamp(ms) => Cell::TimestampMs(*ms),
            ParsedValue::Json(json) => Cell::Json(serde_json::from_str(json).ok()?),
            ParsedValue::BigInt(i) => Cell::Int(*i),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{parse_value, ColumnType};

    fn stored(ty: ColumnType, raw: &str) -> Option<Cell> {
        Cell::from_parsed(&parse_value(ty, raw).unwrap().value)
    }

    #[test]
    fn parsed_values_become_the_cells_destinations_read_back() {
        assert_eq!(stored(ColumnType::Decimal, "12.500"), Some(Cell::Decimal("12.5".into())));
        assert_eq!(stored(ColumnType::Decimal, "3"), Some(Cell::Decimal("3".into())));
        assert_eq!(stored(ColumnType::Decimal, ""), Some(Cell::Null), "HubSpot clears a number with \"\"");
        assert_eq!(stored(ColumnType::Text, ""), Some(Cell::Text(String::new())), "text keeps the empty string");
        assert_eq!(stored(ColumnType::Date, "2026-02-28"), Some(Cell::Date("2026-02-28".into())));
        assert_eq!(stored(ColumnType::Date, "1969-12-31"), Some(Cell::Date("1969-12-31".into())));
        assert_eq!(
            stored(ColumnType::Timestamp, "2026-01-01T00:00:00.123Z"),
            Some(Cell::TimestampMs(1_767_225_600_123))
        );
        assert_eq!(stored(ColumnType::Boolean, "TRUE"), Some(Cell::Bool(true)));
        assert_eq!(stored(ColumnType::BigInt, "42"), Some(Cell::Int(42)));
        assert_eq!(stored(ColumnType::Json, r#"{"a": [1]}"#), Some(Cell::Json(serde_json::json!({"a": [1]}))));
    }
}
