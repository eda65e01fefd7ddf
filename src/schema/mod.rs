//! The warehouse schema, independent of any dialect: column types, the table layout hsync
//! writes (one table per object type plus its bookkeeping columns), the mapping from HubSpot
//! property definitions (`mapping`), the drift plan (`diff`), typed Arrow batches built from
//! HubSpot records (`batch`), and the owners and pipelines dimension tables (`dimension`).

mod batch;
mod diff;
pub mod dimension;
pub mod history;
mod mapping;
pub mod naming;

pub use batch::{build_batch, BuiltBatch, Reject, WHOLE_RECORD};
pub use diff::{diff, plan_live_view, Change, SchemaPlan, ViewReason};
pub use mapping::{
    column_name, column_type, format_decimal, parse_instant_ms, parse_value, storable_text, Altered, Parsed,
    ParsedValue, MAX_IDENTIFIER_BYTES,
};
pub use naming::live_view_name;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

/// A column type every destination can store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// Free text (string, enumeration, phone number, and anything HubSpot invents).
    Text,
    /// An exact decimal: money must not pick up float rounding.
    Decimal,
    Boolean,
    /// A calendar date (HubSpot's `date`, midnight UTC).
    Date,
    /// An instant in UTC.
    Timestamp,
    /// JSON (HubSpot's `json` properties, and the overflow column).
    Json,
    /// A 64-bit integer (record ids).
    BigInt,
}

// `ColumnType::ALL` holds every variant once: a new variant stops `count` compiling (its match
// has no wildcard) until it is counted, and the count and order are checked against `ALL`.
const _: () = {
    const fn count(ty: ColumnType) -> usize {
        match ty {
            ColumnType::Text
            | ColumnType::Decimal
            | ColumnType::Boolean
            | ColumnType::Date
            | ColumnType::Timestamp
            | ColumnType::Json
            | ColumnType::BigInt => 7,
        }
    }
    assert!(ColumnType::ALL.len() == count(ColumnType::Text));
    let mut i = 0;
    while i < ColumnType::ALL.len() {
        assert!(ColumnType::ALL[i] as usize == i, "ColumnType::ALL lists the variants once, in order");
        i += 1;
    }
};

/// Decimal precision and scale in Arrow: 38 digits on each side of the point.
pub const DECIMAL_PRECISION: u8 = 76;
pub const DECIMAL_SCALE: i8 = 38;

impl ColumnType {
    /// Every column type, in declaration order: what a dialect's mapping is checked over.
    pub const ALL: [ColumnType; 7] = [
        ColumnType::Text,
        ColumnType::Decimal,
        ColumnType::Boolean,
        ColumnType::Date,
        ColumnType::Timestamp,
        ColumnType::Json,
        ColumnType::BigInt,
    ];

    /// The Arrow type a batch column of this type has.
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Text | ColumnType::Json => DataType::Utf8,
            ColumnType::Decimal => DataType::Decimal256(DECIMAL_PRECISION, DECIMAL_SCALE),
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ColumnType::BigInt => DataType::Int64,
        }
    }

    /// Whether values of `other` fit in a column of this type without change.
    pub fn holds(self, other: ColumnType) -> bool {
        self == other
            || self == ColumnType::Text
            || matches!(
                (self, other),
                (ColumnType::Timestamp, ColumnType::Date) | (ColumnType::Decimal, ColumnType::BigInt)
            )
    }

    /// Whether a column of this type can be changed to `to` without losing any value.
    pub fn widens_to(self, to: ColumnType) -> bool {
        to == ColumnType::Text
            || matches!(
                (self, to),
                (ColumnType::Date, ColumnType::Timestamp) | (ColumnType::BigInt, ColumnType::Decimal)
            )
    }
}

/// hsync's own columns, present in every object table. Property names cannot start with an
/// underscore in HubSpot, so the prefix never collides with a property.
pub mod hsync_columns {
    /// HubSpot's record id: the primary key.
    pub const ID: &str = "id";
    /// The record's last-modified time as HubSpot reported it: the guard of every merge.
    pub const CURSOR: &str = "_hsync_cursor";
    /// When hsync last wrote the row.
    pub const SYNCED_AT: &str = "_hsync_synced_at";
    /// When HubSpot archived the record (recycle bin); NULL while live.
    pub const ARCHIVED_AT: &str = "_hsync_archived_at";
    /// The surviving record's id when this one was merged away.
    pub const MERGED_INTO: &str = "_hsync_merged_into";
    /// When hsync found the record permanently deleted (GDPR delete).
    pub const DELETED_AT: &str = "_hsync_deleted_at";
    /// Properties beyond the dialect's column limit, as a JSON object of raw values.
    pub const OVERFLOW: &str = "_hsync_overflow";
}

/// One column of a table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Column {
    /// The warehouse column name (see [`column_name`]).
    pub name: String,
    /// The HubSpot property it holds; `None` for hsync's own columns.
    pub property: Option<String>,
    pub ty: ColumnType,
}

impl Column {
    pub fn hsync(name: &str, ty: ColumnType) -> Column {
        Column { name: name.to_owned(), property: None, ty }
    }
}

/// The layout of one object table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TableSchema {
    pub name: String,
    /// hsync's columns first, then one per property.
    pub columns: Vec<Column>,
    /// Properties stored in the overflow JSON column because the table is at its column limit.
    pub overflow: Vec<String>,
    /// Columns whose properties are gone from HubSpot: kept in the table with their values,
    /// never written again.
    pub retired: Vec<String>,
}

impl TableSchema {
    /// hsync's own columns, in table order.
    pub fn hsync_columns() -> Vec<Column> {
        use hsync_columns::*;
        vec![
            Column::hsync(ID, ColumnType::BigInt),
            Column::hsync(CURSOR, ColumnType::Timestamp),
            Column::hsync(SYNCED_AT, ColumnType::Timestamp),
            Column::hsync(ARCHIVED_AT, ColumnType::Timestamp),
            Column::hsync(MERGED_INTO, ColumnType::BigInt),
            Column::hsync(DELETED_AT, ColumnType::Timestamp),
            Column::hsync(OVERFLOW, ColumnType::Json),
        ]
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The Arrow schema of a full batch for this table. Each field carries its property name
    /// in the `hsync.property` metadata key.
    pub fn arrow_schema(&self) -> Schema {
        Schema::new(self.columns.iter().map(arrow_field).collect::<Vec<_>>())
    }
}

/// The Arrow field of a column.
pub fn arrow_field(c: &Column) -> Field {
    let field = Field::new(&c.name, c.ty.arrow_type(), c.name != hsync_columns::ID);
    match &c.property {
        Some(p) => field.with_metadata(std::collections::HashMap::from([("hsync.property".to_owned(), p.clone())])),
        None => field,
    }
}

/// The column type an Arrow field stands for.
pub fn column_type_of(data_type: &DataType, name: &str) -> ColumnType {
    match data_type {
        DataType::Decimal256(..) | DataType::Decimal128(..) => ColumnType::Decimal,
        DataType::Boolean => ColumnType::Boolean,
        DataType::Date32 => ColumnType::Date,
        DataType::Timestamp(..) => ColumnType::Timestamp,
        DataType::Int64 => ColumnType::BigInt,
        _ if name == hsync_columns::OVERFLOW => ColumnType::Json,
        _ => ColumnType::Text,
    }
}

/// A column that exists in the warehouse, as a destination describes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ExistingColumn {
    pub name: String,
    pub ty: ColumnType,
}

/// How many property columns a table may have before properties go to the overflow column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnBudget(pub usize);

impl ColumnBudget {
    /// Postgres allows 1,600 columns (dropped ones included); hsync keeps 93 spare.
    pub const POSTGRES: ColumnBudget = ColumnBudget(1_500);
    /// SQLite's default limit is 2,000.
    pub const SQLITE: ColumnBudget = ColumnBudget(1_900);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_and_holding_rules() {
        assert!(ColumnType::Text.holds(ColumnType::Decimal));
        assert!(ColumnType::Timestamp.holds(ColumnType::Date));
        assert!(!ColumnType::Decimal.holds(ColumnType::Text));
        assert!(ColumnType::Boolean.widens_to(ColumnType::Text));
        assert!(ColumnType::Date.widens_to(ColumnType::Timestamp));
        assert!(!ColumnType::Timestamp.widens_to(ColumnType::Date));
        assert!(!ColumnType::Text.widens_to(ColumnType::Decimal));
    }
}
