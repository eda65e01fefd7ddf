//! The dimension tables: HubSpot's owners, and the pipelines and pipeline stages of every
//! object type that has them. They are small lists refreshed in full (`stream::dimensions`);
//! this module owns their dialect-neutral layout and the Arrow batch of a complete list.
//!
//! Each table has text keys (`pipelines` and `pipeline_stages` include the object type: ids
//! like `default` repeat across types), typed columns, and two hsync columns:
//! `_hsync_synced_at`, the refresh that last read the row from HubSpot, and
//! `_hsync_removed_at`, set when a refresh no longer finds the row and cleared if it comes back.
//! Rows are never deleted, so records that still name a removed owner or stage keep a label.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;

use super::batch::typed_array;
use super::{hsync_columns, parse_value, storable_text, ColumnType, ExistingColumn, ParsedValue, Reject};

/// When a refresh no longer found the row in HubSpot; NULL while HubSpot lists it.
pub const REMOVED_AT: &str = "_hsync_removed_at";

/// The layout of one dimension table.
#[derive(Debug, PartialEq, Eq)]
pub struct DimensionTable {
    pub name: &'static str,
    /// The primary key's columns, in order (all text).
    pub key: &'static [&'static str],
    /// The columns a refresh fills from HubSpot, in table order, the key's first.
    pub columns: &'static [(&'static str, ColumnType)],
    /// Whether each write is the complete list, so stored rows it lacks get
    /// `_hsync_removed_at` (owners, pipelines). `false` for tables that only ever gain rows
    /// (property history): a write upserts its rows and leaves every other row alone, and the
    /// table has no `_hsync_removed_at`.
    pub complete_lists: bool,
}

use ColumnType::{BigInt, Boolean, Decimal, Json, Text, Timestamp};

/// `GET /crm/v3/owners`, active and archived.
pub const OWNERS: DimensionTable = DimensionTable {
    name: "owners",
    key: &["id"],
    columns: &[
        ("id", Text),
        ("email", Text),
        ("first_name", Text),
        ("last_name", Text),
        ("user_id", BigInt),
        ("user_id_including_inactive", BigInt),
        ("type", Text),
        ("teams", Json),
        ("archived", Boolean),
        ("created_at", Timestamp),
        ("updated_at", Timestamp),
    ],
    complete_lists: true,
};

/// `GET /crm/v3/pipelines/{objectType}` of every type with pipelines; `object_type` is the
/// type's table name (`deals`, `tickets`, a custom object's name).
pub const PIPELINES: DimensionTable = DimensionTable {
    name: "pipelines",
    key: &["object_type", "id"],
    columns: &[
        ("object_type", Text),
        ("id", Text),
        ("label", Text),
        ("display_order", BigInt),
        ("archived", Boolean),
        ("archived_at", Timestamp),
        ("created_at", Timestamp),
        ("updated_at", Timestamp),
    ],
    complete_lists: true,
};

/// The stages of those pipelines. `metadata` is HubSpot's map as JSON; `probability` and
/// `is_closed` are typed from it (`is_closed` from `isClosed`, else from a ticket's
/// `ticketState`).
pub const PIPELINE_STAGES: DimensionTable = DimensionTable {
    name: "pipeline_stages",
    key: &["object_type", "pipeline_id", "id"],
    columns: &[
        ("object_type", Text),
        ("pipeline_id", Text),
        ("id", Text),
        ("label", Text),
        ("display_order", BigInt),
        ("archived", Boolean),
        ("probability", Decimal),
        ("is_closed", Boolean),
        ("metadata", Json),
        ("archived_at", Timestamp),
        ("created_at", Timestamp),
        ("updated_at", Timestamp),
    ],
    complete_lists: true,
};

/// Every version of the properties `sync.history` names, of every object, read with
/// `propertiesWithHistory` (`stream::history`; layout and keys in [`super::history`]).
pub const PROPERTY_HISTORY: DimensionTable = DimensionTable {
    name: "property_history",
    key: &["object_type", "version_id"],
    columns: &[
        ("object_type", Text),
        ("version_id", Text),
        ("record_id", BigInt),
        ("property", Text),
        ("value", Text),
        ("changed_at", Timestamp),
        ("source_type", Text),
        ("source_id", Text),
        ("source_label", Text),
        ("updated_by_user_id", BigInt),
    ],
    complete_lists: false,
};

/// What `hsync push` did with each row of each run (`crate::push`): one row per source row,
/// keyed by the push job's name, the run and the row's position in its source (`row_key`,
/// the position as text, as keys are text in every dialect; `row_number` is the same
/// position as a number, to sort by).
pub const PUSH_RESULTS: DimensionTable = DimensionTable {
    name: "push_results",
    key: &["push", "run_id", "row_key"],
    columns: &[
        ("push", Text),
        ("run_id", Text),
        ("row_key", Text),
        ("row_number", BigInt),
        ("object_type", Text),
        ("id_value", Text),
        ("outcome", Text),
        ("reason", Text),
        ("record_id", BigInt),
        ("correlation_id", Text),
        ("pushed_at", Timestamp),
    ],
    complete_lists: false,
};

/// Every dimension table: `prepare` creates them all.
pub const DIMENSION_TABLES: [&DimensionTable; 5] =
    [&OWNERS, &PIPELINES, &PIPELINE_STAGES, &PROPERTY_HISTORY, &PUSH_RESULTS];

impl DimensionTable {
    /// Every column in table order: the refreshed ones, then [`Self::hsync_columns`].
    pub fn all_columns(&self) -> Vec<ExistingColumn> {
        self.columns
            .iter()
            .map(|(name, ty)| (*name, *ty))
            .chain(self.hsync_columns().iter().map(|c| (*c, Timestamp)))
            .map(|(name, ty)| ExistingColumn { name: name.to_owned(), ty })
            .collect()
    }

    /// hsync's columns after the refreshed ones (both timestamps): `_hsync_synced_at`, and
    /// `_hsync_removed_at` for a table of [`Self::complete_lists`].
    pub fn hsync_columns(&self) -> &'static [&'static str] {
        if self.complete_lists {
            &[hsync_columns::SYNCED_AT, REMOVED_AT]
        } else {
            &[hsync_columns::SYNCED_AT]
        }
    }

    /// The names of the refreshed columns, in order.
    pub fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|(name, _)| *name).collect()
    }

    /// The Arrow schema of a batch: the refreshed columns, all nullable ([`Self::check`]
    /// refuses a row without a key).
    pub fn arrow_schema(&self) -> Schema {
        Schema::new(self.columns.iter().map(|(name, ty)| Field::new(*name, ty.arrow_type(), true)).collect::<Vec<_>>())
    }

    /// Checks that `batch` has this table's refreshed columns with their types, and that every
    /// row has a key and no key repeats. The error says what is wrong.
    pub fn check(&self, batch: &RecordBatch) -> Result<(), String> {
        if batch.schema().fields() != self.arrow_schema().fields() {
            return Err(format!("the batch does not have the columns of {}", self.name));
        }
        let keys: Vec<_> = self
            .key
            .iter()
            .map(|k| batch.column_by_name(k).map(|c| c.as_string::<i32>()))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("the batch has no key columns of {}", self.name))?;
        let mut seen = std::collections::HashSet::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            if keys.iter().any(|k| k.is_null(row)) {
                return Err(format!("a row of {} has no key", self.name));
            }
            let key: Vec<&str> = keys.iter().map(|k| k.value(row)).collect();
            if !seen.insert(key.clone()) {
                return Err(format!("{} holds the key {} twice", self.name, key.join("/")));
            }
        }
        Ok(())
    }
}

/// The complete current list of one dimension table.
#[derive(Clone, Debug)]
pub struct DimensionBatch {
    pub table: &'static DimensionTable,
    /// Every row HubSpot lists now, with the table's refreshed columns.
    pub batch: RecordBatch,
}

/// Builds the batch of a complete list from rows of raw values (HubSpot's text, `None` for
/// null or absent), one per column of `table.columns`, in order. A value that does not parse
/// into its column's type becomes NULL plus a reject naming the table, the row's key (its key
/// values joined by `/`) and the column. Key checks are [`DimensionTable::check`]'s.
pub fn build_dimension_batch(
    table: &'static DimensionTable,
    rows: &[Vec<Option<String>>],
) -> (DimensionBatch, Vec<Reject>) {
    let mut rejects = Vec::new();
    let key_of = |row: &[Option<String>]| -> String {
        table
            .columns
            .iter()
            .zip(row)
            .filter(|((name, _), _)| table.key.contains(name))
            .map(|(_, v)| v.as_deref().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("/")
    };
    let arrays: Vec<ArrayRef> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| {
            let values = rows.iter().map(|row| match row.get(i).and_then(Option::as_deref) {
                None => ParsedValue::Null,
                Some(raw) => {
                    let mut reject = |raw: String, reason: String| {
                        rejects.push(Reject {
                            object: table.name.to_owned(),
                            id: key_of(row),
                            property: (*name).to_owned(),
                            raw,
                            reason,
                        })
                    };
                    match parse_value(*ty, raw) {
                        Ok(parsed) => {
                            if let Some(altered) = parsed.altered {
                                reject(altered.raw, altered.reason.to_owned());
                            }
                            parsed.value
                        }
                        Err(reason) => {
                            reject(storable_text(raw).1.map_or_else(|| raw.to_owned(), |a| a.raw), reason);
                            ParsedValue::Null
                        }
                    }
                }
            });
            typed_array(*ty, values, rows.len())
        })
        .collect();
    let batch = RecordBatch::try_new(Arc::new(table.arrow_schema()), arrays)
        .expect("invariant: every column was built with its schema type and the same row count");
    (DimensionBatch { table, batch }, rejects)
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::Decimal256Type;

    use super::*;

    fn row(values: &[Option<&str>]) -> Vec<Option<String>> {
        values.iter().map(|v| v.map(str::to_owned)).collect()
    }

    fn stage(pipeline: &str, id: &str, probability: Option<&str>, closed: Option<&str>) -> Vec<Option<String>> {
        row(&[
            Some("deals"),
            Some(pipeline),
            Some(id),
            Some("Stage"),
            Some("1"),
            Some("false"),
            probability,
            closed,
            Some("{}"),
            None,
            Some("2026-01-01T00:00:00Z"),
            Some("2026-01-01T00:00:00Z"),
        ])
    }

    #[test]
    fn values_are_typed_and_bad_ones_rejected_with_the_row_key() {
        let (built, rejects) = build_dimension_batch(
            &PIPELINE_STAGES,
            &[stage("default", "won", Some("0.1"), Some("true")), stage("default", "odd", Some("high"), Some("maybe"))],
        );
        assert_eq!(built.batch.num_rows(), 2);
        let probability = built.batch.column_by_name("probability").unwrap().as_primitive::<Decimal256Type>();
        assert_eq!(crate::schema::format_decimal(probability.value(0)), "0.1");
        assert!(probability.is_null(1));
        let found: Vec<_> = rejects.iter().map(|r| (r.id.as_str(), r.property.as_str(), r.raw.as_str())).collect();
        assert_eq!(found, [("deals/default/odd", "probability", "high"), ("deals/default/odd", "is_closed", "maybe")]);
        assert!(rejects.iter().all(|r| r.object == "pipeline_stages" && !r.reason.is_empty()));
        assert_eq!(PIPELINE_STAGES.check(&built.batch), Ok(()));
    }

    #[test]
    fn check_refuses_missing_and_repeated_keys() {
        let (twice, _) = build_dimension_batch(
            &PIPELINE_STAGES,
            &[stage("default", "won", None, None), stage("default", "won", None, None)],
        );
        assert_eq!(
            PIPELINE_STAGES.check(&twice.batch),
            Err("pipeline_stages holds the key deals/default/won twice".into())
        );
        // The same stage id in another pipeline is another key.
        let (apart, _) = build_dimension_batch(
            &PIPELINE_STAGES,
            &[stage("default", "won", None, None), stage("renewals", "won", None, None)],
        );
        assert_eq!(PIPELINE_STAGES.check(&apart.batch), Ok(()));
        let (keyless, _) = build_dimension_batch(&PIPELINE_STAGES, &[stage("default", "won", None, None)]);
        let mut columns = keyless.batch.columns().to_vec();
        columns[2] = arrow::array::new_null_array(&arrow::datatypes::DataType::Utf8, 1);
        let keyless = RecordBatch::try_new(keyless.batch.schema(), columns).unwrap();
        assert_eq!(PIPELINE_STAGES.check(&keyless), Err("a row of pipeline_stages has no key".into()));
        assert!(OWNERS.check(&apart.batch).is_err(), "another table's columns");
    }

    #[test]
    fn every_table_ends_with_the_hsync_columns_and_keys_come_first() {
        for table in DIMENSION_TABLES {
            let names: Vec<String> = table.all_columns().into_iter().map(|c| c.name).collect();
            let hsync: &[&str] = if table.complete_lists {
                &[hsync_columns::SYNCED_AT, REMOVED_AT]
            } else {
                &[hsync_columns::SYNCED_AT]
            };
            assert_eq!(names[names.len() - hsync.len()..], *hsync, "{}", table.name);
            assert_eq!(&table.column_names()[..table.key.len()], table.key, "{}", table.name);
            assert!(table.key.iter().all(|k| table.columns.iter().any(|(n, ty)| n == k && *ty == Text)));
        }
    }
}
