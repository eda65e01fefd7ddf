//! BigQuery SQL text (GoogleSQL). [`quote_ident`] is the one function that puts an identifier
//! into SQL; every statement hsync sends to BigQuery is rendered here by a pure `render_*`
//! function and snapshot-tested. No value is ever rendered: statements take values as named
//! query parameters (`@synced_at`) or read them from a loaded staging table.
//!
//! Times are bound as int64 epoch milliseconds and converted with `TIMESTAMP_MILLIS`, so
//! neither side's time zone or timestamp text format matters.

use super::types::sql_type;
use crate::destination::flag_sql::{unflagged, FlagClauses, INSERTED_COLUMNS};
use crate::destination::history_sql::{spans_select, versions_select};
use crate::destination::{EdgeEnd, HISTORY_SPANS_VIEW};
use crate::schema::dimension::{DimensionTable, PROPERTY_HISTORY, REMOVED_AT};
use crate::schema::{hsync_columns, Change, ColumnType, ExistingColumn, SchemaPlan};

pub use crate::destination::flag_sql::FLAG_COLUMNS;
pub use crate::destination::{
    ASSOCIATIONS_LIVE_VIEW, ASSOCIATIONS_TABLE, ASSOCIATION_COLUMNS, EDGE_KEY, REJECTS_TABLE, REJECT_COLUMNS,
    STAGE_PREFIX,
};

/// The view of the edges that are not tombstoned (idempotent: the table's columns are fixed).
pub fn render_create_associations_live(ds: Dataset) -> String {
    format!(
        "CREATE VIEW IF NOT EXISTS {} AS\nSELECT *\nFROM {}\nWHERE {} IS NULL",
        ds.table(ASSOCIATIONS_LIVE_VIEW),
        ds.table(ASSOCIATIONS_TABLE),
        quote_ident("deleted_at")
    )
}

/// (Re)creates [`HISTORY_SPANS_VIEW`]; the seconds are `TIMESTAMP_DIFF` in milliseconds over
/// 1,000.
pub fn render_replace_history_spans(ds: Dataset) -> String {
    let seconds = |later: &str, earlier: &str| format!("TIMESTAMP_DIFF({later}, {earlier}, MILLISECOND) / 1000");
    format!(
        "CREATE OR REPLACE VIEW {} AS\n{}",
        ds.table(HISTORY_SPANS_VIEW),
        spans_select(quote_ident, &ds.table(PROPERTY_HISTORY.name), seconds)
    )
}

/// The stored versions of some records (see `Destination::history_versions`). Parameters
/// `@object_type` and `@record_ids`; `changed_at` as epoch milliseconds.
pub fn render_history_versions(ds: Dataset) -> String {
    let ms = |column: &str| format!("UNIX_MILLIS({column})");
    let ids = |record: &str| format!("{record} IN UNNEST(@record_ids)");
    versions_select(quote_ident, &ds.table(PROPERTY_HISTORY.name), ms, "@object_type", ids)
}

/// Quotes an identifier: wrapped in backticks, with backslashes and backticks escaped.
/// BigQuery then takes it verbatim (case, reserved words, unicode).
pub fn quote_ident(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('`');
    for c in name.chars() {
        if c == '`' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('`');
    quoted
}

/// The dataset every statement addresses.
#[derive(Clone, Copy, Debug)]
pub struct Dataset<'a> {
    pub project: &'a str,
    pub dataset: &'a str,
}

impl Dataset<'_> {
    /// `` `project`.`dataset`.`table` ``
    pub fn table(&self, name: &str) -> String {
        format!("{}.{}.{}", quote_ident(self.project), quote_ident(self.dataset), quote_ident(name))
    }
}

fn column_list<S: AsRef<str>>(columns: &[S]) -> String {
    columns.iter().map(|c| quote_ident(c.as_ref())).collect::<Vec<_>>().join(", ")
}

/// The staging table of one batch of `table`: `_hsync_stage_<table>_<8 hex>`.
pub fn stage_table_name(table: &str, suffix: u32) -> String {
    format!("{STAGE_PREFIX}{table}_{suffix:08x}")
}

/// `CREATE TABLE IF NOT EXISTS` with `(name, BigQuery type, required)` columns. hsync creates
/// tables with tables.insert; this statement is what `hsync schema-diff` shows, and what creates
/// tables bqemulator's tables.insert cannot (see `BigQueryDestination::create_table`).
pub fn render_create_table(ds: Dataset, table: &str, columns: &[(&str, &str, bool)]) -> String {
    let body: Vec<String> = columns
        .iter()
        .map(|(name, ty, required)| format!("  {} {ty}{}", quote_ident(name), if *required { " NOT NULL" } else { "" }))
        .collect();
    format!("CREATE TABLE IF NOT EXISTS {} (\n{}\n)", ds.table(table), body.join(",\n"))
}

/// One column per statement: BigQuery allows several, bqemulator only one.
pub fn render_add_column(ds: Dataset, table: &str, column: &str, ty: ColumnType) -> String {
    format!("ALTER TABLE {}\nADD COLUMN IF NOT EXISTS {} {}", ds.table(table), quote_ident(column), sql_type(ty))
}

/// The one widening BigQuery applies in place: a decimal column (exact text, marked by its
/// description) becomes free text by losing the mark. Every other change of type hsync would
/// make (`INT64` to text, `DATE` to `TIMESTAMP`) BigQuery refuses in place.
pub fn widens_in_place(from: ColumnType, to: ColumnType) -> bool {
    matches!((from, to), (ColumnType::Decimal, ColumnType::Text))
}

/// Turns a decimal column into free text (see [`widens_in_place`]).
pub fn render_decimal_to_text(ds: Dataset, table: &str, column: &str) -> String {
    format!("ALTER TABLE {}\nALTER COLUMN {} SET OPTIONS (description = NULL)", ds.table(table), quote_ident(column))
}

/// The statements applying a plan's altering changes, in order, for `hsync schema-diff`. A
/// widening BigQuery cannot apply in place renders as a comment saying so.
pub fn render_plan(ds: Dataset, plan: &SchemaPlan) -> Vec<String> {
    plan.changes
        .iter()
        .filter_map(|change| match change {
            Change::CreateTable { schema } => {
                let types: Vec<String> = schema.columns.iter().map(|c| sql_type(c.ty)).collect();
                let columns: Vec<(&str, &str, bool)> = schema
                    .columns
                    .iter()
                    .zip(&types)
                    .map(|(c, ty)| (c.name.as_str(), ty.as_str(), c.name == hsync_columns::ID))
                    .collect();
                Some(render_create_table(ds, &plan.table, &columns))
            }
            Change::AddColumn { column } => Some(render_add_column(ds, &plan.table, &column.name, column.ty)),
            Change::Widen { column, from, to } if widens_in_place(*from, *to) => {
                Some(render_decimal_to_text(ds, &plan.table, column))
            }
            Change::Widen { column, from, to } => Some(format!(
                "-- {column}: BigQuery cannot change {from:?} to {to:?} in place; hsync stops this stream"
            )),
            Change::ReplaceView { view, .. } => Some(render_replace_live_view(ds, &plan.table, view)),
            Change::Incompatible { .. }
            | Change::Overflow { .. }
            | Change::PropertyRemoved { .. }
            | Change::Unmappable { .. } => None,
        })
        .collect()
}

/// (Re)creates the live view of an object table: every column, only the rows no reconciliation
/// flag marks. BigQuery resolves `*` when the view is queried, but the view's stored schema is
/// the one of its creation, so it is replaced whenever the table's columns change.
pub fn render_replace_live_view(ds: Dataset, table: &str, view: &str) -> String {
    format!(
        "CREATE OR REPLACE VIEW {} AS\nSELECT *\nFROM {}\nWHERE {}",
        ds.table(view),
        ds.table(table),
        unflagged(quote_ident, "IS NULL").join("\n  AND ")
    )
}

/// A staged column as the target types it: stages hold JSON as text (and decimals as the
/// exact text the target keeps).
fn from_stage(column: &str, ty: ColumnType) -> String {
    let q = quote_ident(column);
    match ty {
        ColumnType::Json => format!("PARSE_JSON({q}) AS {q}"),
        _ => q,
    }
}

/// The guarded merge of a stage: the newest staged version of each id (`ROW_NUMBER`), applied
/// only where the table's row is not newer (a row without a cursor, one reconciliation
/// inserted with only its flags, takes any version). Only the staged columns are written, with
/// explicit column lists on both sides.
pub fn render_merge(ds: Dataset, table: &str, stage: &str, columns: &[ExistingColumn]) -> String {
    let id = quote_ident(hsync_columns::ID);
    let cursor = quote_ident(hsync_columns::CURSOR);
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let selected: Vec<String> = columns.iter().map(|c| from_stage(&c.name, c.ty)).collect();
    let updates: Vec<String> =
        names.iter().filter(|c| **c != hsync_columns::ID).map(|c| format!("{q} = s.{q}", q = quote_ident(c))).collect();
    let values: Vec<String> = names.iter().map(|c| format!("s.{}", quote_ident(c))).collect();
    let mut lines = vec![
        format!("MERGE {} AS t", ds.table(table)),
        "USING (".to_owned(),
        format!("  SELECT {}", selected.join(", ")),
        "  FROM (".to_owned(),
        format!(
            "    SELECT *, ROW_NUMBER() OVER (PARTITION BY {id} ORDER BY {cursor} DESC) AS {}",
            quote_ident("_hsync_rank")
        ),
        format!("    FROM {}", ds.table(stage)),
        "  )".to_owned(),
        format!("  WHERE {} = 1", quote_ident("_hsync_rank")),
        ") AS s".to_owned(),
        format!("ON t.{id} = s.{id}"),
    ];
    if !updates.is_empty() {
        lines.push(format!("WHEN MATCHED AND (t.{cursor} IS NULL OR t.{cursor} <= s.{cursor}) THEN"));
        lines.push(format!("  UPDATE SET {}", updates.join(", ")));
    }
    lines.push("WHEN NOT MATCHED THEN".to_owned());
    lines.push(format!("  INSERT ({})", column_list(&names)));
    lines.push(format!("  VALUES ({})", values.join(", ")));
    lines.join("\n")
}

/// How BigQuery writes the flag statements' shared clauses: the scratch table `f`, the table `t`.
const FLAG_CLAUSES: FlagClauses<'static> =
    FlagClauses { quote: quote_ident, upper: true, distinct: "IS DISTINCT FROM", rows: "f", target: "t" };

/// Applies reconciliation flags from a scratch table ([`FLAG_COLUMNS`]) in one statement:
/// existing rows get each flag whose `set_*` is true, without the cursor guard and without
/// writing `_hsync_cursor` (a flag row with an `observed` cursor applies only where the row's
/// cursor is NULL or not newer); unknown ids get a row with only their id and flags when a
/// flag is set. Rows whose flags already hold the values are not touched, so the affected
/// count is the rows changed.
pub fn render_flag(ds: Dataset, table: &str, flags: &str) -> String {
    [
        format!("MERGE {} AS t", ds.table(table)),
        format!("USING {} AS f", ds.table(flags)),
        format!("ON {}", FLAG_CLAUSES.same_id()),
        format!("WHEN MATCHED AND {}", FLAG_CLAUSES.observed_guard()),
        format!("  AND ({}) THEN", FLAG_CLAUSES.changes().join(" OR ")),
        format!("  UPDATE SET {}", FLAG_CLAUSES.assignments().join(", ")),
        format!("WHEN NOT MATCHED AND ({}) THEN", FLAG_CLAUSES.sets_a_flag().join(" OR ")),
        format!("  INSERT ({})", column_list(&INSERTED_COLUMNS)),
        format!("  VALUES ({})", FLAG_CLAUSES.inserted_values().join(", ")),
    ]
    .join("\n")
}

/// The columns of an edge scratch table, in order.
pub const EDGE_COLUMNS: [(&str, ColumnType); 5] = [
    ("from_id", ColumnType::BigInt),
    ("to_id", ColumnType::BigInt),
    ("type_id", ColumnType::BigInt),
    ("category", ColumnType::Text),
    ("label", ColumnType::Text),
];

/// Upserts the edges of one object pair from a scratch table ([`EDGE_COLUMNS`], one row per
/// key). Parameters: `@from_type`, `@to_type`, `@synced_at` (epoch ms). A stored edge is
/// updated only when its category or label changed or it was tombstoned (the tombstone is
/// cleared), so the affected count is the edges written and a replay writes none.
pub fn render_upsert_edges(ds: Dataset, edges: &str) -> String {
    let q = quote_ident;
    let all: Vec<&str> = ASSOCIATION_COLUMNS.iter().map(|(c, _)| *c).collect();
    let on: Vec<String> = EDGE_KEY.iter().map(|c| format!("a.{q} = s.{q}", q = q(c))).collect();
    let values: Vec<String> = EDGE_KEY
        .iter()
        .chain(&["category", "label"])
        .map(|c| format!("s.{}", q(c)))
        .chain(["TIMESTAMP_MILLIS(@synced_at)".to_owned(), "NULL".to_owned()])
        .collect();
    [
        format!("MERGE {} AS a", ds.table(ASSOCIATIONS_TABLE)),
        "USING (".to_owned(),
        format!(
            "  SELECT @from_type AS {}, e.{}, @to_type AS {}, e.{}, e.{}, e.{}, e.{}",
            q("from_type"),
            q("from_id"),
            q("to_type"),
            q("to_id"),
            q("type_id"),
            q("category"),
            q("label")
        ),
        format!("  FROM {} AS e", ds.table(edges)),
        ") AS s".to_owned(),
        format!("ON {}", on.join(" AND ")),
        format!(
            "WHEN MATCHED AND (a.{d} IS NOT NULL OR a.{c} IS DISTINCT FROM s.{c} OR a.{l} IS DISTINCT FROM s.{l}) THEN",
            d = q("deleted_at"),
            c = q("category"),
            l = q("label")
        ),
        format!(
            "  UPDATE SET {c} = s.{c}, {l} = s.{l}, {s} = TIMESTAMP_MILLIS(@synced_at), {d} = NULL",
            c = q("category"),
            l = q("label"),
            s = q("synced_at"),
            d = q("deleted_at")
        ),
        "WHEN NOT MATCHED THEN".to_owned(),
        format!("  INSERT ({})", column_list(&all)),
        format!("  VALUES ({})", values.join(", ")),
    ]
    .join("\n")
}

/// Tombstones the live edges of some records of one object pair that the scratch table of
/// current edges lacks. Parameters: `@from_type`, `@to_type`, `@synced_at` (epoch ms) and
/// `@from_ids` (the records' ids).
pub fn render_tombstone_edges(ds: Dataset, edges: &str) -> String {
    let q = quote_ident;
    let (from_id, to_id, type_id) = (q("from_id"), q("to_id"), q("type_id"));
    [
        format!("UPDATE {} AS a", ds.table(ASSOCIATIONS_TABLE)),
        format!(
            "SET {} = TIMESTAMP_MILLIS(@synced_at), {} = TIMESTAMP_MILLIS(@synced_at)",
            q("deleted_at"),
            q("synced_at")
        ),
        format!("WHERE a.{} = @from_type", q("from_type")),
        format!("  AND a.{} = @to_type", q("to_type")),
        format!("  AND a.{} IS NULL", q("deleted_at")),
        format!("  AND a.{from_id} IN UNNEST(@from_ids)"),
        "  AND NOT EXISTS (".to_owned(),
        "    SELECT 1".to_owned(),
        format!("    FROM {} AS e", ds.table(edges)),
        format!("    WHERE e.{from_id} = a.{from_id} AND e.{to_id} = a.{to_id} AND e.{type_id} = a.{type_id}"),
        "  )".to_owned(),
    ]
    .join("\n")
}

/// The distinct from ids with a live edge of one object pair. Parameters: `@from_type`,
/// `@to_type` and, when `to_ids` is true, `@to_ids`.
pub fn render_edge_ends(ds: Dataset, end: EdgeEnd, ids: bool) -> String {
    let q = quote_ident;
    let (wanted, other) = end.columns();
    let mut lines = vec![
        format!("SELECT DISTINCT {}", q(wanted)),
        format!("FROM {}", ds.table(ASSOCIATIONS_TABLE)),
        format!("WHERE {} = @from_type", q("from_type")),
        format!("  AND {} = @to_type", q("to_type")),
        format!("  AND {} IS NULL", q("deleted_at")),
    ];
    if ids {
        lines.push(format!("  AND {} IN UNNEST(@ids)", q(other)));
    }
    lines.push(format!("ORDER BY {}", q(wanted)));
    lines.join("\n")
}

/// Every stored edge, tombstoned ones included, in key order.
#[cfg(feature = "test-support")]
pub fn render_read_edges(ds: Dataset) -> String {
    let all: Vec<&str> = ASSOCIATION_COLUMNS.iter().map(|(c, _)| *c).collect();
    format!("SELECT {}\nFROM {}\nORDER BY {}", column_list(&all), ds.table(ASSOCIATIONS_TABLE), column_list(&EDGE_KEY))
}

/// Upserts a dimension list from its scratch table (the refreshed columns, decimals and JSON
/// as text): a stored row takes every value and (in a table of complete lists) loses its
/// `_hsync_removed_at`. Parameter:
/// `@synced_at` (epoch ms).
pub fn render_upsert_dimension(ds: Dataset, table: &DimensionTable, scratch: &str) -> String {
    let q = quote_ident;
    let names = table.column_names();
    let selected: Vec<String> = table.columns.iter().map(|(c, ty)| from_stage(c, *ty)).collect();
    let on: Vec<String> = table.key.iter().map(|k| format!("t.{q} = s.{q}", q = q(k))).collect();
    let removed: &[&str] = if table.complete_lists { &[REMOVED_AT] } else { &[] };
    let set: Vec<String> = names
        .iter()
        .filter(|c| !table.key.contains(c))
        .map(|c| format!("{q} = s.{q}", q = q(c)))
        .chain([format!("{} = TIMESTAMP_MILLIS(@synced_at)", q(hsync_columns::SYNCED_AT))])
        .chain(removed.iter().map(|c| format!("{} = NULL", q(c))))
        .collect();
    let all: Vec<&str> = names.iter().copied().chain(table.hsync_columns().iter().copied()).collect();
    let values: Vec<String> = names
        .iter()
        .map(|c| format!("s.{}", q(c)))
        .chain(["TIMESTAMP_MILLIS(@synced_at)".to_owned()])
        .chain(removed.iter().map(|_| "NULL".to_owned()))
        .collect();
    [
        format!("MERGE {} AS t", ds.table(table.name)),
        format!("USING (\n  SELECT {}\n  FROM {}\n) AS s", selected.join(", "), ds.table(scratch)),
        format!("ON {}", on.join(" AND ")),
        "WHEN MATCHED THEN".to_owned(),
        format!("  UPDATE SET {}", set.join(", ")),
        "WHEN NOT MATCHED THEN".to_owned(),
        format!("  INSERT ({})", column_list(&all)),
        format!("  VALUES ({})", values.join(", ")),
    ]
    .join("\n")
}

/// Flags the stored rows of a dimension table that the list in its scratch table lacks.
/// Parameter: `@synced_at` (epoch ms), the removal time.
pub fn render_remove_missing_dimension(ds: Dataset, table: &DimensionTable, scratch: &str) -> String {
    let removed = quote_ident(REMOVED_AT);
    let matches: Vec<String> = table.key.iter().map(|k| format!("c.{q} = t.{q}", q = quote_ident(k))).collect();
    [
        format!("UPDATE {} AS t", ds.table(table.name)),
        format!("SET {removed} = TIMESTAMP_MILLIS(@synced_at)"),
        format!("WHERE t.{removed} IS NULL"),
        "  AND NOT EXISTS (".to_owned(),
        "    SELECT 1".to_owned(),
        format!("    FROM {} AS c", ds.table(scratch)),
        format!("    WHERE {}", matches.join(" AND ")),
        "  )".to_owned(),
    ]
    .join("\n")
}

/// Ids of the live rows of an object table: no archived, merged or deleted flag.
pub fn render_live_ids(ds: Dataset, table: &str) -> String {
    let id = quote_ident(hsync_columns::ID);
    format!(
        "SELECT {id}\nFROM {}\nWHERE {}\nORDER BY {id}",
        ds.table(table),
        unflagged(quote_ident, "IS NULL").join("\n  AND ")
    )
}

/// Ids of the rows of an object table whose cursor is at or after `@since` (epoch ms).
pub fn render_ids_modified_since(ds: Dataset, table: &str) -> String {
    let id = quote_ident(hsync_columns::ID);
    format!(
        "SELECT {id}\nFROM {}\nWHERE {} >= TIMESTAMP_MILLIS(@since)\nORDER BY {id}",
        ds.table(table),
        quote_ident(hsync_columns::CURSOR)
    )
}

/// Every id with its cursor and flags, by id.
pub fn render_id_flags(ds: Dataset, table: &str) -> String {
    use hsync_columns::{ARCHIVED_AT, CURSOR, DELETED_AT, ID, MERGED_INTO};
    format!(
        "SELECT {}\nFROM {}\nORDER BY {}",
        column_list(&[ID, CURSOR, ARCHIVED_AT, MERGED_INTO, DELETED_AT]),
        ds.table(table),
        quote_ident(ID)
    )
}

/// `columns` of the rows whose id is in `@ids` (an INT64 array), by id (see
/// `Destination::read_cells`).
pub fn render_read_cells<S: AsRef<str>>(ds: Dataset, table: &str, columns: &[S]) -> String {
    format!(
        "SELECT {}\nFROM {}\nWHERE {id} IN UNNEST(@ids)\nORDER BY {id}",
        column_list(columns),
        ds.table(table),
        id = quote_ident(hsync_columns::ID)
    )
}

/// Every row of a table, every column, ordered by `order` (the id, or a dimension's key).
#[cfg(feature = "test-support")]
pub fn render_read_table<S: AsRef<str>>(ds: Dataset, table: &str, columns: &[S], order: &[&str]) -> String {
    format!("SELECT {}\nFROM {}\nORDER BY {}", column_list(columns), ds.table(table), column_list(order))
}

/// The rejects of one object (`@object`), oldest first.
#[cfg(feature = "test-support")]
pub fn render_read_rejects(ds: Dataset) -> String {
    format!(
        "SELECT `object`, `id`, `property`, `raw_value`, `reason`\nFROM {}\nWHERE `object` = @object\nORDER BY `seen_at`, `id`, `property`",
        ds.table(REJECTS_TABLE)
    )
}

/// Inserts one row with only its id, `@id` (the write check of `probe_write`).
pub fn render_insert_id(ds: Dataset, table: &str) -> String {
    format!("INSERT INTO {} ({}) VALUES (@id)", ds.table(table), quote_ident(hsync_columns::ID))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::dimension::{OWNERS, PIPELINE_STAGES};
    use crate::schema::{diff, TableSchema};

    const DS: Dataset = Dataset { project: "my-project", dataset: "hubspot" };

    fn cols(list: &[(&str, ColumnType)]) -> Vec<ExistingColumn> {
        list.iter().map(|(n, ty)| ExistingColumn { name: (*n).to_owned(), ty: *ty }).collect()
    }

    #[test]
    fn quote_ident_escapes_backticks_and_backslashes() {
        let quoted: Vec<String> = ["order", "MixedCase", "ñandú", "has\"quote", "back`tick", "back\\slash"]
            .iter()
            .map(|n| quote_ident(n))
            .collect();
        insta::assert_snapshot!(quoted.join("\n"));
    }

    #[test]
    fn merge() {
        let columns = cols(&[
            ("id", ColumnType::BigInt),
            ("_hsync_cursor", ColumnType::Timestamp),
            ("_hsync_synced_at", ColumnType::Timestamp),
            ("amount", ColumnType::Decimal),
            ("payload", ColumnType::Json),
            ("select", ColumnType::Text),
        ]);
        insta::assert_snapshot!(render_merge(DS, "contacts", "_hsync_stage_contacts_0000abcd", &columns));
    }

    #[test]
    fn merge_of_bookkeeping_columns_only() {
        let columns = cols(&[("id", ColumnType::BigInt)]);
        insta::assert_snapshot!(render_merge(DS, "contacts", "_hsync_stage_contacts_0000abcd", &columns));
    }

    #[test]
    fn flag() {
        insta::assert_snapshot!(render_flag(DS, "contacts", "_hsync_stage_flags_0000abcd"));
    }

    #[test]
    #[cfg(feature = "test-support")]
    fn edges() {
        let all = [
            render_upsert_edges(DS, "_hsync_stage_edges_0000abcd"),
            render_tombstone_edges(DS, "_hsync_stage_edges_0000abcd"),
            render_edge_ends(DS, EdgeEnd::From, false),
            render_edge_ends(DS, EdgeEnd::From, true),
            render_edge_ends(DS, EdgeEnd::To, true),
            render_read_edges(DS),
        ];
        insta::assert_snapshot!(all.join("\n\n"));
    }

    #[test]
    fn dimensions() {
        let all = [
            render_upsert_dimension(DS, &OWNERS, "_hsync_stage_owners_0000abcd"),
            render_upsert_dimension(DS, &PIPELINE_STAGES, "_hsync_stage_pipeline_stages_0000abcd"),
            render_remove_missing_dimension(DS, &PIPELINE_STAGES, "_hsync_stage_pipeline_stages_0000abcd"),
        ];
        insta::assert_snapshot!(all.join("\n\n"));
        let history = [
            render_upsert_dimension(DS, &PROPERTY_HISTORY, "_hsync_stage_property_history_0000abcd"),
            render_replace_history_spans(DS),
            render_history_versions(DS),
        ];
        insta::assert_snapshot!("property_history", history.join("\n\n"));
    }

    #[test]
    #[cfg(feature = "test-support")]
    fn reads() {
        let all = [
            render_live_ids(DS, "contacts"),
            render_ids_modified_since(DS, "contacts"),
            render_id_flags(DS, "contacts"),
            render_read_table(DS, "pipelines", &["object_type", "id", "label"], &["object_type", "id"]),
            render_read_rejects(DS),
            render_insert_id(DS, "_hsync_check_0000abcd"),
        ];
        insta::assert_snapshot!(all.join("\n\n"));
    }

    #[test]
    fn read_cells() {
        insta::assert_snapshot!(render_read_cells(DS, "companies", &["id", "_hsync_cursor", "num_associated_deals"]));
    }

    #[test]
    fn plan() {
        let props: Vec<crate::hubspot::model::PropertyDefinition> = [("email", "string"), ("amount", "number")]
            .iter()
            .map(|(n, t)| serde_json::from_value(serde_json::json!({ "name": n, "type": t })).expect("property"))
            .collect();
        let create = diff("deals", &props, None, &[], &Default::default(), crate::schema::ColumnBudget(10_000));
        let existing: Vec<ExistingColumn> = TableSchema::hsync_columns()
            .into_iter()
            .map(|c| ExistingColumn { name: c.name, ty: c.ty })
            .chain([
                ExistingColumn { name: "amount".into(), ty: ColumnType::BigInt },
                ExistingColumn { name: "note".into(), ty: ColumnType::Decimal },
            ])
            .collect();
        let more: Vec<_> =
            props
                .iter()
                .cloned()
                .chain([("order", "bool"), ("note", "string")].map(|(n, t)| {
                    serde_json::from_value(serde_json::json!({ "name": n, "type": t })).expect("property")
                }))
                .collect();
        let alter = diff(
            "deals",
            &more,
            Some(existing.as_slice()),
            &[],
            &Default::default(),
            crate::schema::ColumnBudget(10_000),
        );
        let mut all = render_plan(DS, &create);
        all.extend(render_plan(DS, &alter));
        insta::assert_snapshot!(all.join(";\n\n"));
        let mut with_view = alter;
        crate::schema::plan_live_view(&mut with_view, Some(existing.as_slice()), Some(existing.as_slice()));
        insta::assert_snapshot!("plan_with_live_view", render_plan(DS, &with_view).join(";\n\n"));
    }

    #[test]
    fn create_associations_live() {
        insta::assert_snapshot!(render_create_associations_live(DS));
    }

    #[test]
    fn replace_live_view_with_awkward_names() {
        let ds = Dataset { project: "my-project", dataset: "hub`spot" };
        insta::assert_snapshot!(render_replace_live_view(ds, "back\\slash", "back\\slash_live"));
    }

    #[test]
    fn stage_names_are_recognisable() {
        assert_eq!(stage_table_name("contacts", 0xabcd), "_hsync_stage_contacts_0000abcd");
        assert!(stage_table_name("select", 1).starts_with(STAGE_PREFIX));
    }
}
