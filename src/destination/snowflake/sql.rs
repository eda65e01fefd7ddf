//! Snowflake SQL text. [`quote_ident`] is the one function that puts an identifier into SQL;
//! every statement hsync sends to Snowflake is rendered here by a pure `render_*` function and
//! snapshot-tested. No value is ever rendered: statements take values as `?` bind parameters.
//!
//! # Names and case
//! Every identifier is quoted, so Snowflake keeps it exactly as hsync names it: tables and
//! columns are lower-case like HubSpot's names (`"contacts"."email"`), and unusual names
//! (`"order"`, `"MixedCase"`, `"ñandú"`) work. Query them quoted (`select "email" from
//! "contacts"`). The database and schema come from `destination.url` (see
//! [`super::SnowflakeDestination::connect`]). Everything is qualified by [`Location`], so no
//! statement depends on the session's current database or schema, except a push query, which
//! runs after [`render_use_schema`].

use super::types::{epoch_ms, sf_type, stage_type};
use crate::destination::flag_sql::{unflagged, FlagClauses, FLAG_COLUMNS, INSERTED_COLUMNS};
use crate::destination::history_sql::{spans_select, versions_select};
use crate::destination::{EdgeEnd, HISTORY_SPANS_VIEW};
use crate::schema::dimension::{DimensionTable, PROPERTY_HISTORY, REMOVED_AT};
use crate::schema::{hsync_columns, Change, Column, ColumnType, SchemaPlan, TableSchema};

pub use crate::destination::{ASSOCIATIONS_LIVE_VIEW, ASSOCIATIONS_TABLE, REJECTS_TABLE, STAGE_PREFIX};
/// Snowflake's identifier limit (bytes).
pub const MAX_IDENTIFIER_BYTES: usize = 255;

/// Quotes an identifier: wrapped in double quotes, embedded double quotes doubled. Snowflake
/// then takes it verbatim (case, reserved words, unicode).
pub fn quote_ident(name: &str) -> String {
    crate::destination::double_quoted(name)
}

/// The database and schema hsync writes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub database: String,
    pub schema: String,
}

impl Location {
    /// `"DATABASE"."SCHEMA"."name"`.
    pub fn table(&self, name: &str) -> String {
        format!("{}.{}.{}", quote_ident(&self.database), quote_ident(&self.schema), quote_ident(name))
    }

    fn schema(&self) -> String {
        format!("{}.{}", quote_ident(&self.database), quote_ident(&self.schema))
    }
}

fn column_list<S: AsRef<str>>(columns: &[S]) -> String {
    columns.iter().map(|c| quote_ident(c.as_ref())).collect::<Vec<_>>().join(", ")
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// A bound instant: `CAST(? AS TIMESTAMP_TZ)` (bound as ISO 8601 text with `Z`).
const BOUND_INSTANT: &str = "CAST(? AS TIMESTAMP_TZ)";

/// A staging (or scratch) table's name: `_hsync_stage_<what>_<8 hex>`, cut to the limit.
pub fn stage_table_name(what: &str, suffix: u32) -> String {
    crate::destination::stage_name(STAGE_PREFIX, what, suffix, MAX_IDENTIFIER_BYTES)
}

pub fn render_create_database(location: &Location) -> String {
    format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(&location.database))
}

pub fn render_create_schema(location: &Location) -> String {
    format!("CREATE SCHEMA IF NOT EXISTS {}", location.schema())
}

/// Makes the data schema the session's current one, so a push query reaches hsync's tables
/// unqualified (the one statement that relies on the session's schema).
pub fn render_use_schema(location: &Location) -> String {
    format!("USE SCHEMA {}", location.schema())
}

/// Creates an object table; `id` is the (informational, as always in Snowflake) primary key.
pub fn render_create_table(location: &Location, table: &TableSchema) -> String {
    let mut body: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            let required = if c.name == hsync_columns::ID { " NOT NULL" } else { "" };
            format!("    {} {}{required}", quote_ident(&c.name), sf_type(c.ty))
        })
        .collect();
    body.push(format!("    PRIMARY KEY ({})", quote_ident(hsync_columns::ID)));
    format!("CREATE TABLE IF NOT EXISTS {} (\n{}\n)", location.table(&table.name), body.join(",\n"))
}

pub fn render_add_column(location: &Location, table: &str, column: &Column) -> String {
    format!(
        "ALTER TABLE {}\nADD COLUMN IF NOT EXISTS {} {}",
        location.table(table),
        quote_ident(&column.name),
        sf_type(column.ty)
    )
}

/// The one widening Snowflake applies in place: a longer `VARCHAR` (a decimal column, text of
/// length 80, becoming free text). `None` for the others: Snowflake cannot change a column's
/// type, so hsync stops the stream with a message instead (see `alter`).
pub fn render_widen(
    location: &Location,
    table: &str,
    column: &str,
    from: ColumnType,
    to: ColumnType,
) -> Option<String> {
    (from == ColumnType::Decimal && to == ColumnType::Text).then(|| {
        format!(
            "ALTER TABLE {}\nALTER COLUMN {} SET DATA TYPE {}",
            location.table(table),
            quote_ident(column),
            sf_type(to)
        )
    })
}

/// The statements applying a plan's altering changes, in order. A widening Snowflake cannot
/// apply renders as a comment saying so (`alter` refuses the plan). Reports render nothing.
pub fn render_plan(location: &Location, plan: &SchemaPlan) -> Vec<String> {
    plan.changes
        .iter()
        .filter_map(|change| match change {
            Change::CreateTable { schema } => Some(render_create_table(location, schema)),
            Change::AddColumn { column } => Some(render_add_column(location, &plan.table, column)),
            Change::Widen { column, from, to } => {
                Some(render_widen(location, &plan.table, column, *from, *to).unwrap_or_else(|| {
                    format!(
                        "-- Snowflake cannot change {}.{} from {} to {} in place; hsync will not do it",
                        quote_ident(&plan.table),
                        quote_ident(column),
                        sf_type(*from),
                        sf_type(*to)
                    )
                }))
            }
            Change::ReplaceView { view, .. } => Some(render_replace_live_view(location, &plan.table, view)),
            Change::Incompatible { .. }
            | Change::Overflow { .. }
            | Change::PropertyRemoved { .. }
            | Change::Unmappable { .. } => None,
        })
        .collect()
}

/// (Re)creates the live view of an object table: every column (`*`, fixed when the view is
/// created: Snowflake refuses to read a `*` view whose table has gained columns, so it is
/// replaced after every change), only the rows no reconciliation flag marks. `COPY GRANTS` keeps
/// the privileges granted on the view it replaces.
pub fn render_replace_live_view(location: &Location, table: &str, view: &str) -> String {
    format!(
        "CREATE OR REPLACE VIEW {} COPY GRANTS AS\nSELECT *\nFROM {}\nWHERE {}",
        location.table(view),
        location.table(table),
        unflagged(quote_ident, "IS NULL").join("\n  AND ")
    )
}

/// The rejects table: one row per value that did not parse (a log: a replayed batch adds its
/// rejects again).
pub fn render_create_rejects(location: &Location) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\n    \
         \"object\" VARCHAR NOT NULL,\n    \
         \"id\" VARCHAR NOT NULL,\n    \
         \"property\" VARCHAR NOT NULL,\n    \
         \"raw_value\" VARCHAR,\n    \
         \"reason\" VARCHAR NOT NULL,\n    \
         \"seen_at\" TIMESTAMP_TZ NOT NULL DEFAULT CURRENT_TIMESTAMP()\n)",
        location.table(REJECTS_TABLE)
    )
}

/// Records rejects: array-bound, one row per reject.
pub fn render_insert_rejects(location: &Location) -> String {
    format!(
        "INSERT INTO {} (\"object\", \"id\", \"property\", \"raw_value\", \"reason\")\nVALUES (?, ?, ?, ?, ?)",
        location.table(REJECTS_TABLE)
    )
}

/// The rejects of one object (`?`).
#[cfg(feature = "test-support")]
pub fn render_read_rejects(location: &Location) -> String {
    format!(
        "SELECT \"object\", \"id\", \"property\", \"raw_value\", \"reason\"\nFROM {}\nWHERE \"object\" = ?\n\
         ORDER BY \"seen_at\", \"id\", \"property\"",
        location.table(REJECTS_TABLE)
    )
}

/// The association edge table: one table for every object pair, one row per edge and type; a
/// vanished edge keeps its row with `deleted_at` set.
pub fn render_create_associations(location: &Location) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\n    \
         \"from_type\" VARCHAR NOT NULL,\n    \
         \"from_id\" NUMBER(38,0) NOT NULL,\n    \
         \"to_type\" VARCHAR NOT NULL,\n    \
         \"to_id\" NUMBER(38,0) NOT NULL,\n    \
         \"type_id\" NUMBER(38,0) NOT NULL,\n    \
         \"category\" VARCHAR NOT NULL,\n    \
         \"label\" VARCHAR,\n    \
         \"synced_at\" TIMESTAMP_TZ NOT NULL,\n    \
         \"deleted_at\" TIMESTAMP_TZ,\n    \
         PRIMARY KEY (\"from_type\", \"from_id\", \"to_type\", \"to_id\", \"type_id\")\n)",
        location.table(ASSOCIATIONS_TABLE)
    )
}

/// The view of the edges that are not tombstoned (idempotent: the table's columns are fixed).
pub fn render_create_associations_live(location: &Location) -> String {
    format!(
        "CREATE VIEW IF NOT EXISTS {} AS\nSELECT *\nFROM {}\nWHERE {} IS NULL",
        location.table(ASSOCIATIONS_LIVE_VIEW),
        location.table(ASSOCIATIONS_TABLE),
        quote_ident("deleted_at")
    )
}

/// (Re)creates [`HISTORY_SPANS_VIEW`]; the seconds are `DATEDIFF` in milliseconds over 1,000.
pub fn render_replace_history_spans(location: &Location) -> String {
    let seconds = |later: &str, earlier: &str| format!("DATEDIFF('millisecond', {earlier}, {later}) / 1000");
    format!(
        "CREATE OR REPLACE VIEW {} AS\n{}",
        location.table(HISTORY_SPANS_VIEW),
        spans_select(quote_ident, &location.table(PROPERTY_HISTORY.name), seconds)
    )
}

/// The stored versions of `ids` records (see `Destination::history_versions`). Binds the
/// object type, then each record id; `changed_at` as epoch milliseconds.
pub fn render_history_versions(location: &Location, ids: usize) -> String {
    let ids = |record: &str| format!("{record} IN ({})", placeholders(ids));
    versions_select(quote_ident, &location.table(PROPERTY_HISTORY.name), epoch_ms, "?", ids)
}

/// `CREATE TRANSIENT TABLE` for a staging or scratch table with the given columns and types
/// (transient: no fail-safe storage for data that lives seconds).
pub fn render_create_scratch(location: &Location, name: &str, columns: &[(&str, &str)]) -> String {
    let body: Vec<String> = columns.iter().map(|(c, ty)| format!("    {} {ty}", quote_ident(c))).collect();
    format!("CREATE TRANSIENT TABLE {} (\n{}\n)", location.table(name), body.join(",\n"))
}

/// The columns of a stage for a batch's columns, typed by [`stage_type`].
pub fn stage_columns(columns: &[(String, ColumnType)]) -> Vec<(&str, &'static str)> {
    columns.iter().map(|(c, ty)| (c.as_str(), stage_type(*ty))).collect()
}

/// Array-bound insert of all columns of a staging or scratch table.
pub fn render_insert_rows<S: AsRef<str>>(location: &Location, name: &str, columns: &[S]) -> String {
    format!("INSERT INTO {} ({})\nVALUES ({})", location.table(name), column_list(columns), placeholders(columns.len()))
}

/// An expression turning a staged column into the target's type (JSON text is parsed).
fn from_stage(column: &str, ty: ColumnType) -> String {
    let q = quote_ident(column);
    match ty {
        ColumnType::Json => format!("PARSE_JSON({q}) AS {q}"),
        _ => q,
    }
}

/// The guarded MERGE: the newest staged version of each id (duplicates in one stage keep the
/// newest cursor; NULL cursors last), applied only where the table's row is not newer (a row
/// without a cursor, an id-only row from reconciliation, takes any version). Only the staged
/// columns are written.
pub fn render_merge(location: &Location, table: &str, stage: &str, columns: &[(String, ColumnType)]) -> String {
    let id = quote_ident(hsync_columns::ID);
    let cursor = quote_ident(hsync_columns::CURSOR);
    let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
    let selected: Vec<String> = columns.iter().map(|(c, ty)| from_stage(c, *ty)).collect();
    let updates: Vec<String> =
        names.iter().filter(|c| **c != hsync_columns::ID).map(|c| format!("{q} = s.{q}", q = quote_ident(c))).collect();
    let values: Vec<String> = names.iter().map(|c| format!("s.{}", quote_ident(c))).collect();
    format!(
        "MERGE INTO {target} AS t\n\
         USING (\n    \
         SELECT {selected}\n    \
         FROM {stage}\n    \
         QUALIFY ROW_NUMBER() OVER (PARTITION BY {id} ORDER BY {cursor} DESC NULLS LAST) = 1\n\
         ) AS s\n\
         ON t.{id} = s.{id}\n\
         WHEN MATCHED AND (t.{cursor} IS NULL OR t.{cursor} <= s.{cursor}) THEN UPDATE SET\n    \
         {updates}\n\
         WHEN NOT MATCHED THEN INSERT ({list})\n    \
         VALUES ({values})",
        target = location.table(table),
        selected = selected.join(", "),
        stage = location.table(stage),
        updates = updates.join(",\n    "),
        list = column_list(&names),
        values = values.join(", "),
    )
}

pub fn render_drop_table(location: &Location, name: &str) -> String {
    format!("DROP TABLE IF EXISTS {}", location.table(name))
}

/// The staging and scratch tables in the schema. Binds: the schema, the prefix.
pub fn render_list_stages(location: &Location) -> String {
    format!(
        "SELECT table_name\nFROM {}.information_schema.tables\nWHERE table_schema = ?\n  AND STARTSWITH(table_name, ?)\n\
         ORDER BY table_name",
        quote_ident(&location.database)
    )
}

/// A table's columns in order. Binds: the schema, the table.
pub fn render_describe(location: &Location) -> String {
    format!(
        "SELECT column_name, data_type, character_maximum_length, numeric_scale\n\
         FROM {}.information_schema.columns\n\
         WHERE table_schema = ?\n  AND table_name = ?\n\
         ORDER BY ordinal_position",
        quote_ident(&location.database)
    )
}

/// Inserts one row with only its id (`?`), for the write check.
pub fn render_insert_id(location: &Location, table: &str) -> String {
    format!("INSERT INTO {} ({}) VALUES (?)", location.table(table), quote_ident(hsync_columns::ID))
}

/// The columns of a flag scratch table ([`FLAG_COLUMNS`]), in bind order, with their types.
pub fn flag_columns() -> [(&'static str, &'static str); 8] {
    FLAG_COLUMNS.map(|(name, ty)| (name, sf_type(ty)))
}

/// How Snowflake writes the flag statements' shared clauses: the scratch table `f`, the table `t`.
const FLAG_CLAUSES: FlagClauses<'static> =
    FlagClauses { quote: quote_ident, upper: true, distinct: "IS DISTINCT FROM", rows: "f", target: "t" };

/// Inserts an id-only row for each flag row that sets a flag and whose id the table lacks.
pub fn render_flag_insert(location: &Location, table: &str, flags: &str) -> String {
    format!(
        "INSERT INTO {} ({})\nSELECT {}\nFROM {} AS f\nWHERE ({})\n  AND NOT EXISTS (SELECT 1 FROM {} AS t WHERE {})",
        location.table(table),
        column_list(&INSERTED_COLUMNS),
        FLAG_CLAUSES.inserted_values().join(", "),
        location.table(flags),
        FLAG_CLAUSES.sets_a_flag().join(" OR "),
        location.table(table),
        FLAG_CLAUSES.same_id(),
    )
}

/// Sets or clears the flags of existing rows from a flag scratch table: no cursor guard,
/// `_hsync_cursor` never written; a flag row with an `observed` cursor applies only where the
/// row's cursor is NULL or not newer; rows already holding the values are not touched.
pub fn render_flag_update(location: &Location, table: &str, flags: &str) -> String {
    format!(
        "UPDATE {} AS t\nSET {}\nFROM {} AS f\nWHERE {}\n  AND {}\n  AND ({})",
        location.table(table),
        FLAG_CLAUSES.assignments().join(",\n    "),
        location.table(flags),
        FLAG_CLAUSES.same_id(),
        FLAG_CLAUSES.observed_guard(),
        FLAG_CLAUSES.changes().join("\n    OR "),
    )
}

/// Every id with its cursor and flags (times as epoch milliseconds), by id.
pub fn render_id_flags(location: &Location, table: &str) -> String {
    use hsync_columns::{ARCHIVED_AT, CURSOR, DELETED_AT, ID, MERGED_INTO};
    format!(
        "SELECT {}, {}, {}, {}, {}\nFROM {}\nORDER BY {}",
        quote_ident(ID),
        epoch_ms(&quote_ident(CURSOR)),
        epoch_ms(&quote_ident(ARCHIVED_AT)),
        quote_ident(MERGED_INTO),
        epoch_ms(&quote_ident(DELETED_AT)),
        location.table(table),
        quote_ident(ID)
    )
}

/// Ids of the live rows of an object table.
pub fn render_live_ids(location: &Location, table: &str) -> String {
    let id = quote_ident(hsync_columns::ID);
    format!(
        "SELECT {id}\nFROM {}\nWHERE {}\nORDER BY {id}",
        location.table(table),
        unflagged(quote_ident, "IS NULL").join("\n  AND ")
    )
}

/// Ids of the rows whose cursor is at or after the bound instant.
pub fn render_ids_modified_since(location: &Location, table: &str) -> String {
    let id = quote_ident(hsync_columns::ID);
    format!(
        "SELECT {id}\nFROM {}\nWHERE {} >= {BOUND_INSTANT}\nORDER BY {id}",
        location.table(table),
        quote_ident(hsync_columns::CURSOR)
    )
}

/// The columns of an edge scratch table, in bind order.
pub const EDGE_COLUMNS: [(&str, &str); 5] = [
    ("from_id", "NUMBER(38,0)"),
    ("to_id", "NUMBER(38,0)"),
    ("type_id", "NUMBER(38,0)"),
    ("category", "VARCHAR"),
    ("label", "VARCHAR"),
];

/// The column of an id scratch table.
pub const ID_COLUMNS: [(&str, &str); 1] = [("id", "NUMBER(38,0)")];

const EDGE_KEY_MATCH: &str =
    "a.\"from_id\" = e.\"from_id\" AND a.\"to_id\" = e.\"to_id\" AND a.\"type_id\" = e.\"type_id\"";

/// Updates the stored edges of one pair whose category or label changed or that were
/// tombstoned (the tombstone is cleared). Binds: synced-at, from type, to type.
pub fn render_update_edges(location: &Location, edges: &str) -> String {
    format!(
        "UPDATE {} AS a\n\
         SET \"category\" = e.\"category\",\n    \
         \"label\" = e.\"label\",\n    \
         \"synced_at\" = {BOUND_INSTANT},\n    \
         \"deleted_at\" = NULL\n\
         FROM {} AS e\n\
         WHERE a.\"from_type\" = ?\n  \
         AND a.\"to_type\" = ?\n  \
         AND {EDGE_KEY_MATCH}\n  \
         AND (a.\"deleted_at\" IS NOT NULL OR a.\"category\" IS DISTINCT FROM e.\"category\" \
         OR a.\"label\" IS DISTINCT FROM e.\"label\")",
        location.table(ASSOCIATIONS_TABLE),
        location.table(edges),
    )
}

/// Inserts the edges of one pair the table does not hold. Binds: from type, to type,
/// synced-at, from type, to type.
pub fn render_insert_edges(location: &Location, edges: &str) -> String {
    format!(
        "INSERT INTO {assoc} (\"from_type\", \"from_id\", \"to_type\", \"to_id\", \"type_id\", \"category\", \"label\", \
         \"synced_at\", \"deleted_at\")\n\
         SELECT CAST(? AS VARCHAR), e.\"from_id\", CAST(? AS VARCHAR), e.\"to_id\", e.\"type_id\", e.\"category\", \
         e.\"label\", {BOUND_INSTANT}, NULL\n\
         FROM {edges} AS e\n\
         WHERE NOT EXISTS (\n    \
         SELECT 1 FROM {assoc} AS a\n    \
         WHERE a.\"from_type\" = ? AND a.\"to_type\" = ? AND {EDGE_KEY_MATCH}\n)",
        assoc = location.table(ASSOCIATIONS_TABLE),
        edges = location.table(edges),
    )
}

/// Tombstones the live edges of the listed records of one pair that the current list lacks.
/// Binds: tombstone time, tombstone time, from type, to type.
pub fn render_tombstone_edges(location: &Location, edges: &str, ids: &str) -> String {
    format!(
        "UPDATE {} AS a\n\
         SET \"deleted_at\" = {BOUND_INSTANT},\n    \
         \"synced_at\" = {BOUND_INSTANT}\n\
         WHERE a.\"from_type\" = ?\n  \
         AND a.\"to_type\" = ?\n  \
         AND a.\"deleted_at\" IS NULL\n  \
         AND a.\"from_id\" IN (SELECT \"id\" FROM {})\n  \
         AND NOT EXISTS (SELECT 1 FROM {} AS e WHERE {EDGE_KEY_MATCH})",
        location.table(ASSOCIATIONS_TABLE),
        location.table(ids),
        location.table(edges),
    )
}

/// The distinct from ids with a live edge of one pair. Binds: from type, to type, then with
/// `to_ids` that many target ids.
pub fn render_edge_ends(location: &Location, end: EdgeEnd, ids: usize) -> String {
    let (wanted, other) = end.columns();
    let mut lines = vec![
        format!("SELECT DISTINCT \"{wanted}\""),
        format!("FROM {}", location.table(ASSOCIATIONS_TABLE)),
        "WHERE \"from_type\" = ?".to_owned(),
        "  AND \"to_type\" = ?".to_owned(),
        "  AND \"deleted_at\" IS NULL".to_owned(),
    ];
    if ids > 0 {
        lines.push(format!("  AND \"{other}\" IN ({})", placeholders(ids)));
    }
    lines.push(format!("ORDER BY \"{wanted}\""));
    lines.join("\n")
}

/// Every stored edge, times as epoch milliseconds, in key order.
#[cfg(feature = "test-support")]
pub fn render_read_edges(location: &Location) -> String {
    format!(
        "SELECT \"from_type\", \"from_id\", \"to_type\", \"to_id\", \"type_id\", \"category\", \"label\", {}, {}\n\
         FROM {}\n\
         ORDER BY \"from_type\", \"from_id\", \"to_type\", \"to_id\", \"type_id\"",
        epoch_ms("\"synced_at\""),
        epoch_ms("\"deleted_at\""),
        location.table(ASSOCIATIONS_TABLE)
    )
}

/// `CREATE TABLE IF NOT EXISTS` for a dimension table: its columns, `_hsync_synced_at` and
/// `_hsync_removed_at`, keyed by its key columns.
pub fn render_create_dimension(location: &Location, table: &DimensionTable) -> String {
    let mut body: Vec<String> = table
        .all_columns()
        .iter()
        .map(|c| {
            let required = table.key.contains(&c.name.as_str()) || c.name == hsync_columns::SYNCED_AT;
            format!("    {} {}{}", quote_ident(&c.name), sf_type(c.ty), if required { " NOT NULL" } else { "" })
        })
        .collect();
    body.push(format!("    PRIMARY KEY ({})", column_list(table.key)));
    format!("CREATE TABLE IF NOT EXISTS {} (\n{}\n)", location.table(table.name), body.join(",\n"))
}

/// The columns of a dimension list's scratch table (typed for staging), in bind order.
pub fn dimension_scratch_columns(table: &DimensionTable) -> Vec<(&'static str, &'static str)> {
    table.columns.iter().map(|(name, ty)| (*name, stage_type(*ty))).collect()
}

fn dimension_source(location: &Location, table: &DimensionTable, scratch: &str) -> String {
    let selected: Vec<String> = table.columns.iter().map(|(name, ty)| from_stage(name, *ty)).collect();
    format!("(SELECT {} FROM {})", selected.join(", "), location.table(scratch))
}

fn key_match(table: &DimensionTable, left: &str, right: &str) -> String {
    table.key.iter().map(|k| format!("{left}.{q} = {right}.{q}", q = quote_ident(k))).collect::<Vec<_>>().join(" AND ")
}

/// Updates the listed rows that the table holds: every value, the sync time (bound), and (in a
/// table of complete lists) the removal flag cleared.
pub fn render_update_dimension(location: &Location, table: &DimensionTable, scratch: &str) -> String {
    let removed: &[&str] = if table.complete_lists { &[REMOVED_AT] } else { &[] };
    let set: Vec<String> = table
        .columns
        .iter()
        .filter(|(name, _)| !table.key.contains(name))
        .map(|(name, _)| format!("{q} = s.{q}", q = quote_ident(name)))
        .chain([format!("{} = {BOUND_INSTANT}", quote_ident(hsync_columns::SYNCED_AT))])
        .chain(removed.iter().map(|c| format!("{} = NULL", quote_ident(c))))
        .collect();
    format!(
        "UPDATE {} AS t\nSET {}\nFROM {} AS s\nWHERE {}",
        location.table(table.name),
        set.join(",\n    "),
        dimension_source(location, table, scratch),
        key_match(table, "t", "s")
    )
}

/// Inserts the listed rows the table lacks, with the sync time (bound).
pub fn render_insert_dimension(location: &Location, table: &DimensionTable, scratch: &str) -> String {
    let names = table.column_names();
    let all: Vec<&str> = names.iter().copied().chain(table.hsync_columns().iter().copied()).collect();
    let values: Vec<String> = names.iter().map(|c| format!("s.{}", quote_ident(c))).collect();
    let nulls = if table.complete_lists { ", NULL" } else { "" };
    format!(
        "INSERT INTO {target} ({})\nSELECT {}, {BOUND_INSTANT}{nulls}\nFROM {} AS s\n\
         WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {})",
        column_list(&all),
        values.join(", "),
        dimension_source(location, table, scratch),
        key_match(table, "t", "s"),
        target = location.table(table.name),
    )
}

/// Flags the stored rows the list lacks (bound removal time), unless flagged already.
pub fn render_remove_missing_dimension(location: &Location, table: &DimensionTable, scratch: &str) -> String {
    let removed = quote_ident(REMOVED_AT);
    format!(
        "UPDATE {} AS t\nSET {removed} = {BOUND_INSTANT}\nWHERE t.{removed} IS NULL\n  \
         AND NOT EXISTS (SELECT 1 FROM {} AS s WHERE {})",
        location.table(table.name),
        location.table(scratch),
        key_match(table, "s", "t")
    )
}

/// Every row of a table (instants as epoch milliseconds), ordered by its key columns.
/// `columns` of the rows whose id is one of `ids` bound values, by id (see
/// `Destination::read_cells`), read as [`super::types::read_expr`] reads them.
pub fn render_read_cells(
    location: &Location,
    table: &str,
    columns: &[crate::schema::ExistingColumn],
    ids: usize,
) -> String {
    let exprs: Vec<String> = columns.iter().map(|c| super::types::read_expr(&quote_ident(&c.name), c.ty)).collect();
    format!(
        "SELECT {}\nFROM {}\nWHERE {id} IN ({})\nORDER BY {id}",
        exprs.join(", "),
        location.table(table),
        placeholders(ids),
        id = quote_ident(hsync_columns::ID)
    )
}

#[cfg(feature = "test-support")]
pub fn render_read_table<S: AsRef<str>>(
    location: &Location,
    table: &str,
    columns: &[crate::schema::ExistingColumn],
    key: &[S],
) -> String {
    let exprs: Vec<String> = columns.iter().map(|c| super::types::read_expr(&quote_ident(&c.name), c.ty)).collect();
    format!("SELECT {}\nFROM {}\nORDER BY {}", exprs.join(", "), location.table(table), column_list(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{diff, ColumnBudget, ExistingColumn};

    const AWKWARD: [&str; 7] = ["order", "user", "default", "select", "MixedCase", "ñandú", "has\"quote"];

    fn here() -> Location {
        Location { database: "ANALYTICS".into(), schema: "HUBSPOT".into() }
    }

    #[test]
    fn use_schema_quotes_the_database_and_schema() {
        let odd = Location { database: "Analytics".into(), schema: "Hub \"Spot\"".into() };
        assert_eq!(render_use_schema(&odd), "USE SCHEMA \"Analytics\".\"Hub \"\"Spot\"\"\"");
        assert_eq!(render_use_schema(&here()), "USE SCHEMA \"ANALYTICS\".\"HUBSPOT\"");
    }

    fn awkward_table() -> TableSchema {
        let props: Vec<crate::hubspot::model::PropertyDefinition> = AWKWARD
            .iter()
            .zip(["string", "number", "bool", "date", "datetime", "json", "enumeration"])
            .map(|(n, t)| serde_json::from_value(serde_json::json!({ "name": n, "type": t })).unwrap())
            .collect();
        diff("select", &props, None, &[], &Default::default(), ColumnBudget(1_000)).target
    }

    #[test]
    fn quote_ident_wraps_and_doubles_quotes() {
        assert_eq!(quote_ident("order"), "\"order\"");
        assert_eq!(quote_ident("has\"quote"), "\"has\"\"quote\"");
        assert_eq!(quote_ident(""), "\"\"");
        let all: Vec<String> = AWKWARD.iter().map(|n| quote_ident(n)).collect();
        insta::assert_snapshot!("quote_ident", all.join("\n"));
    }

    #[test]
    fn stage_names_stay_within_the_identifier_limit() {
        assert_eq!(stage_table_name("contacts", 0xab), "_hsync_stage_contacts_000000ab");
        let name = stage_table_name(&"ñ".repeat(200), u32::MAX);
        assert!(name.len() <= MAX_IDENTIFIER_BYTES, "{}", name.len());
        assert!(name.ends_with("_ffffffff"));
    }

    #[test]
    fn tables_and_plans() {
        let location = Location { database: "My \"Db\"".into(), schema: "ñ".into() };
        insta::assert_snapshot!(
            "create_schema",
            [render_create_database(&location), render_create_schema(&location)].join(";\n\n")
        );
        insta::assert_snapshot!("create_table", render_create_table(&here(), &awkward_table()));
        let props = |kinds: [&str; 3]| -> Vec<crate::hubspot::model::PropertyDefinition> {
            ["order", "amount", "note"]
                .iter()
                .zip(kinds)
                .map(|(n, t)| serde_json::from_value(serde_json::json!({ "name": n, "type": t })).unwrap())
                .collect()
        };
        let first =
            diff("deals", &props(["number", "number", "date"]), None, &[], &Default::default(), ColumnBudget(1_000));
        let existing: Vec<ExistingColumn> =
            first.target.columns.iter().map(|c| ExistingColumn { name: c.name.clone(), ty: c.ty }).collect();
        let mut next = props(["number", "string", "datetime"]);
        next.push(serde_json::from_value(serde_json::json!({ "name": "user", "type": "json" })).unwrap());
        let plan = diff("deals", &next, Some(&existing), &[], &Default::default(), ColumnBudget(1_000));
        insta::assert_snapshot!("plan", render_plan(&here(), &plan).join(";\n\n"));
        let mut with_view = plan;
        crate::schema::plan_live_view(&mut with_view, Some(&existing), Some(&existing));
        insta::assert_snapshot!("plan_with_live_view", render_plan(&here(), &with_view).join(";\n\n"));
    }

    #[test]
    fn create_associations_live() {
        insta::assert_snapshot!(render_create_associations_live(&here()));
    }

    #[test]
    fn replace_live_view_with_awkward_names() {
        let location = Location { database: "my\"db".into(), schema: "ñ schema".into() };
        insta::assert_snapshot!(render_replace_live_view(&location, "select", "select_live"));
    }

    #[test]
    fn stage_and_merge() {
        let columns: Vec<(String, ColumnType)> = [
            (hsync_columns::ID, ColumnType::BigInt),
            (hsync_columns::CURSOR, ColumnType::Timestamp),
            ("amount", ColumnType::Decimal),
            ("payload", ColumnType::Json),
            ("MixedCase", ColumnType::Text),
        ]
        .iter()
        .map(|(c, t)| ((*c).to_owned(), *t))
        .collect();
        let stage = stage_table_name("select", 0x1a2b_3c4d);
        let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
        let load = [
            render_create_scratch(&here(), &stage, &stage_columns(&columns)),
            render_insert_rows(&here(), &stage, &names),
            render_merge(&here(), "select", &stage, &columns),
            render_drop_table(&here(), &stage),
            render_list_stages(&here()),
        ];
        insta::assert_snapshot!("stage_and_merge", load.join(";\n\n"));
    }

    #[test]
    #[cfg(feature = "test-support")]
    fn bookkeeping_and_reads() {
        let statements = [
            render_create_rejects(&here()),
            render_insert_rejects(&here()),
            render_read_rejects(&here()),
            render_create_associations(&here()),
            render_describe(&here()),
            render_insert_id(&here(), "_hsync_check_00000001"),
            render_live_ids(&here(), "has\"quote"),
            render_ids_modified_since(&here(), "select"),
            render_id_flags(&here(), "MixedCase"),
        ];
        insta::assert_snapshot!("bookkeeping_and_reads", statements.join(";\n\n"));
        let table = awkward_table();
        let columns: Vec<ExistingColumn> =
            table.columns.iter().map(|c| ExistingColumn { name: c.name.clone(), ty: c.ty }).collect();
        insta::assert_snapshot!("read_table", render_read_table(&here(), "select", &columns, &[hsync_columns::ID]));
    }

    #[test]
    fn flag_statements() {
        let flags = stage_table_name("flags", 1);
        let statements = [
            render_create_scratch(&here(), &flags, &flag_columns()),
            render_flag_insert(&here(), "select", &flags),
            render_flag_update(&here(), "has\"quote", &flags),
        ];
        insta::assert_snapshot!("flags", statements.join(";\n\n"));
    }

    #[test]
    #[cfg(feature = "test-support")]
    fn edge_statements() {
        let (edges, ids) = (stage_table_name("edges", 1), stage_table_name("ids", 2));
        let statements = [
            render_update_edges(&here(), &edges),
            render_insert_edges(&here(), &edges),
            render_tombstone_edges(&here(), &edges, &ids),
            render_edge_ends(&here(), EdgeEnd::From, 0),
            render_edge_ends(&here(), EdgeEnd::From, 3),
            render_edge_ends(&here(), EdgeEnd::To, 2),
            render_read_edges(&here()),
        ];
        insta::assert_snapshot!("edges", statements.join(";\n\n"));
    }

    #[test]
    fn dimension_statements() {
        use crate::schema::dimension::{DIMENSION_TABLES, PIPELINE_STAGES};
        let create: Vec<String> = DIMENSION_TABLES.iter().map(|t| render_create_dimension(&here(), t)).collect();
        insta::assert_snapshot!("create_dimensions", create.join(";\n\n"));
        let scratch = stage_table_name("pipeline_stages", 3);
        let statements = [
            render_create_scratch(&here(), &scratch, &dimension_scratch_columns(&PIPELINE_STAGES)),
            render_update_dimension(&here(), &PIPELINE_STAGES, &scratch),
            render_insert_dimension(&here(), &PIPELINE_STAGES, &scratch),
            render_remove_missing_dimension(&here(), &PIPELINE_STAGES, &scratch),
        ];
        insta::assert_snapshot!("replace_dimension", statements.join(";\n\n"));
        let scratch = stage_table_name("property_history", 3);
        let history = [
            render_update_dimension(&here(), &PROPERTY_HISTORY, &scratch),
            render_insert_dimension(&here(), &PROPERTY_HISTORY, &scratch),
            render_replace_history_spans(&here()),
            render_history_versions(&here(), 3),
        ];
        insta::assert_snapshot!("property_history", history.join(";\n\n"));
    }

    #[test]
    fn read_cells() {
        let columns = [
            ExistingColumn { name: hsync_columns::ID.into(), ty: ColumnType::BigInt },
            ExistingColumn { name: "num_associated_deals".into(), ty: ColumnType::Decimal },
            ExistingColumn { name: "has\"quote".into(), ty: ColumnType::Timestamp },
        ];
        insta::assert_snapshot!(render_read_cells(&here(), "companies", &columns, 3));
    }
}
