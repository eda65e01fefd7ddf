//! Postgres SQL text. [`quote_ident`] is the one function that puts an identifier into SQL;
//! every statement hsync generates for Postgres is rendered here by a pure `render_*` function
//! (lowercase keywords, one clause per line) and snapshot-tested. No value is ever rendered:
//! statements take values as bind parameters (`$1`) or through `COPY`.
//!
//! Static statements that need no identifier live in `sql/postgres/` instead.

use super::types::{pg_type, read_as_text, widen_using};
use crate::destination::flag_sql::{flag_column_names, unflagged, FlagClauses, FLAG_COLUMNS, INSERTED_COLUMNS};
use crate::destination::history_sql::{spans_select, versions_select};
use crate::destination::HISTORY_SPANS_VIEW;
use crate::schema::dimension::{DimensionTable, PROPERTY_HISTORY, REMOVED_AT};
use crate::schema::{hsync_columns, Change, Column, ColumnType, SchemaPlan, TableSchema, ViewReason};

use crate::destination::{EdgeEnd, EDGE_KEY};
pub use crate::destination::{ASSOCIATIONS_LIVE_VIEW, ASSOCIATIONS_TABLE, REJECTS_TABLE};
/// Every staging table's name starts with this (see [`stage_table_name`]).
pub const STAGE_PREFIX: &str = "stage_";
/// Postgres truncates longer identifiers (`NAMEDATALEN - 1`).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Quotes an identifier: wrapped in double quotes, embedded double quotes doubled. Postgres
/// then takes it verbatim (case, reserved words, unicode).
pub fn quote_ident(name: &str) -> String {
    crate::destination::double_quoted(name)
}

fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

fn column_list<S: AsRef<str>>(columns: &[S]) -> String {
    columns.iter().map(|c| quote_ident(c.as_ref())).collect::<Vec<_>>().join(", ")
}

/// The staging table for one batch of `table`: `stage_<table>_<8 hex>`, the table part cut (at
/// a character boundary) so the whole name stays within 63 bytes.
pub fn stage_table_name(table: &str, suffix: u32) -> String {
    crate::destination::stage_name(STAGE_PREFIX, table, suffix, MAX_IDENTIFIER_BYTES)
}

pub fn render_create_schema(schema: &str) -> String {
    format!("create schema if not exists {}", quote_ident(schema))
}

/// Creates an object table; `id` is the primary key.
pub fn render_create_table(schema: &str, table: &TableSchema) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            let key = if c.name == hsync_columns::ID { " primary key" } else { "" };
            format!("    {} {}{key}", quote_ident(&c.name), pg_type(c.ty))
        })
        .collect();
    format!("create table if not exists {} (\n{}\n)", qualified(schema, &table.name), columns.join(",\n"))
}

pub fn render_add_column(schema: &str, table: &str, column: &Column) -> String {
    format!(
        "alter table {}\nadd column if not exists {} {}",
        qualified(schema, table),
        quote_ident(&column.name),
        pg_type(column.ty)
    )
}

/// Changes a column's type; the `using` expression keeps every value (see
/// [`widen_using`]).
pub fn render_widen(schema: &str, table: &str, column: &str, from: ColumnType, to: ColumnType) -> String {
    let quoted = quote_ident(column);
    format!(
        "alter table {}\nalter column {quoted} type {}\nusing {}",
        qualified(schema, table),
        pg_type(to),
        widen_using(&quoted, from, to)
    )
}

/// The statements applying a plan's altering changes, in order, run in one transaction.
/// Reports (overflow, removed and incompatible properties) render nothing: hsync never drops a
/// table or a column. The live view comes last: `create or replace view` when the table only
/// gains columns (they come last in `*`, which Postgres allows a replaced view), else the view
/// is dropped first, since Postgres refuses to change the type of a column a view uses or to
/// replace a view whose columns differ.
pub fn render_plan(schema: &str, plan: &SchemaPlan) -> Vec<String> {
    let live = plan.live_view();
    let drop_first = live.is_some_and(|(_, reason)| plan.widens() || reason == ViewReason::Stale);
    let mut out = Vec::new();
    if let (Some((view, _)), true) = (live, drop_first) {
        out.push(render_drop_view(schema, view));
    }
    out.extend(plan.changes.iter().filter_map(|change| match change {
        Change::CreateTable { schema: table } => Some(render_create_table(schema, table)),
        Change::AddColumn { column } => Some(render_add_column(schema, &plan.table, column)),
        Change::Widen { column, from, to } => Some(render_widen(schema, &plan.table, column, *from, *to)),
        Change::Incompatible { .. }
        | Change::Overflow { .. }
        | Change::PropertyRemoved { .. }
        | Change::Unmappable { .. }
        | Change::ReplaceView { .. } => None,
    }));
    if let Some((view, _)) = live {
        out.push(render_create_live_view(schema, &plan.table, view, !drop_first));
    }
    out
}

pub fn render_drop_view(schema: &str, view: &str) -> String {
    format!("drop view if exists {}", qualified(schema, view))
}

/// Creates (or, with `replace`, replaces) the live view of an object table: every column (`*`,
/// expanded when the view is created), only the rows no reconciliation flag marks.
pub fn render_create_live_view(schema: &str, table: &str, view: &str, replace: bool) -> String {
    format!(
        "create {}view {} as\nselect *\nfrom {}\nwhere {}",
        if replace { "or replace " } else { "" },
        qualified(schema, view),
        qualified(schema, table),
        unflagged(quote_ident, "is null").join("\n  and ")
    )
}

/// The rejects table: one row per value that did not parse (a replayed batch adds its rejects
/// again: it is a log, read by object and time).
pub fn render_create_rejects(schema: &str) -> Vec<String> {
    vec![
        format!(
            "create table if not exists {} (\n    \
             \"object\" text not null,\n    \
             \"id\" text not null,\n    \
             \"property\" text not null,\n    \
             \"raw_value\" text,\n    \
             \"reason\" text not null,\n    \
             \"seen_at\" timestamptz not null default now()\n)",
            qualified(schema, REJECTS_TABLE)
        ),
        format!(
            "create index if not exists {}\non {} (\"object\", \"seen_at\")",
            quote_ident("_hsync_rejects_object_seen_at"),
            qualified(schema, REJECTS_TABLE)
        ),
    ]
}

/// The association edge table: one table for every object pair, one row per edge and type
/// (`type_id` is in the key: two records can be associated under several labels). A vanished
/// edge keeps its row with `deleted_at` set.
pub fn render_create_associations(schema: &str) -> Vec<String> {
    vec![
        format!(
            "create table if not exists {} (\n    \
             \"from_type\" text not null,\n    \
             \"from_id\" bigint not null,\n    \
             \"to_type\" text not null,\n    \
             \"to_id\" bigint not null,\n    \
             \"type_id\" integer not null,\n    \
             \"category\" text not null,\n    \
             \"label\" text,\n    \
             \"synced_at\" timestamptz not null,\n    \
             \"deleted_at\" timestamptz,\n    \
             primary key (\"from_type\", \"from_id\", \"to_type\", \"to_id\", \"type_id\")\n)",
            qualified(schema, ASSOCIATIONS_TABLE)
        ),
        format!(
            "create index if not exists {}\non {} (\"to_type\", \"to_id\")",
            quote_ident("associations_to"),
            qualified(schema, ASSOCIATIONS_TABLE)
        ),
        // The edges that are not tombstoned; the table's columns are fixed.
        format!(
            "create or replace view {} as\nselect *\nfrom {}\nwhere \"deleted_at\" is null",
            qualified(schema, ASSOCIATIONS_LIVE_VIEW),
            qualified(schema, ASSOCIATIONS_TABLE)
        ),
    ]
}

/// (Re)creates [`HISTORY_SPANS_VIEW`]; the seconds are `extract(epoch ...)` of the interval.
pub fn render_replace_history_spans(schema: &str) -> String {
    let seconds = |later: &str, earlier: &str| format!("extract(epoch from ({later} - {earlier}))");
    format!(
        "create or replace view {} as\n{}",
        qualified(schema, HISTORY_SPANS_VIEW),
        spans_select(quote_ident, &qualified(schema, PROPERTY_HISTORY.name), seconds)
    )
}

/// The stored versions of some records (see `Destination::history_versions`). Binds `$1` the
/// object type and `$2` the record ids; `changed_at` as epoch milliseconds.
pub fn render_history_versions(schema: &str) -> String {
    let ms = |column: &str| format!("(extract(epoch from {column}) * 1000)::bigint");
    let ids = |record: &str| format!("{record} = any($2::bigint[])");
    versions_select(quote_ident, &qualified(schema, PROPERTY_HISTORY.name), ms, "$1", ids)
}

/// Upserts the edges of one object pair. Binds: `$1` from type, `$2` to type, `$3` synced-at
/// time, and the edges as five parallel arrays: `$4` from ids, `$5` to ids, `$6` type ids,
/// `$7` categories, `$8` labels. A stored edge is updated only when its category or label
/// changed or it was tombstoned (the tombstone is cleared), so the change count is the edges
/// written and a replay writes none. The arrays must hold each key once.
pub fn render_upsert_edges(schema: &str) -> String {
    let q = quote_ident;
    let all: Vec<&str> = EDGE_KEY.into_iter().chain(["category", "label", "synced_at", "deleted_at"]).collect();
    let set: Vec<String> = ["category", "label", "synced_at"]
        .iter()
        .map(|c| format!("{} = excluded.{}", q(c), q(c)))
        .chain([format!("{} = null", q("deleted_at"))])
        .collect();
    [
        format!("insert into {} as a ({})", qualified(schema, ASSOCIATIONS_TABLE), column_list(&all)),
        format!(
            "select $1::text, e.{from_id}, $2::text, e.{to_id}, e.{type_id}, e.{category}, e.{label}, $3::timestamptz, null::timestamptz",
            from_id = q("from_id"),
            to_id = q("to_id"),
            type_id = q("type_id"),
            category = q("category"),
            label = q("label"),
        ),
        format!(
            "from unnest($4::bigint[], $5::bigint[], $6::integer[], $7::text[], $8::text[]) as e({})",
            column_list(&["from_id", "to_id", "type_id", "category", "label"])
        ),
        format!("on conflict ({}) do update", column_list(&EDGE_KEY)),
        format!("set {}", set.join(",\n    ")),
        format!("where a.{} is not null", q("deleted_at")),
        format!("   or a.{c} is distinct from excluded.{c}", c = q("category")),
        format!("   or a.{c} is distinct from excluded.{c}", c = q("label")),
    ]
    .join("\n")
}

/// Tombstones the live edges of some records of one object pair that are not in the current
/// list. Binds: `$1` from type, `$2` to type, `$3` tombstone time, `$4` the records' ids, and
/// the current edges' keys as `$5` from ids, `$6` to ids, `$7` type ids.
pub fn render_tombstone_edges(schema: &str) -> String {
    let q = quote_ident;
    let (from_id, to_id, type_id) = (q("from_id"), q("to_id"), q("type_id"));
    [
        format!("update {} as a", qualified(schema, ASSOCIATIONS_TABLE)),
        format!("set {} = $3,", q("deleted_at")),
        format!("    {} = $3", q("synced_at")),
        format!("where a.{} = $1", q("from_type")),
        format!("  and a.{} = $2", q("to_type")),
        format!("  and a.{} is null", q("deleted_at")),
        format!("  and a.{from_id} = any($4::bigint[])"),
        "  and not exists (".to_owned(),
        "      select 1".to_owned(),
        format!("      from unnest($5::bigint[], $6::bigint[], $7::integer[]) as e({from_id}, {to_id}, {type_id})"),
        format!("      where e.{from_id} = a.{from_id}"),
        format!("        and e.{to_id} = a.{to_id}"),
        format!("        and e.{type_id} = a.{type_id}"),
        "  )".to_owned(),
    ]
    .join("\n")
}

/// The distinct from ids with a live edge of one object pair. Binds: `$1` from type, `$2` to
/// type and, when `to_ids` is true, `$3` the target ids.
pub fn render_edge_ends(schema: &str, end: EdgeEnd, ids: bool) -> String {
    let q = quote_ident;
    let (wanted, other) = end.columns();
    let mut lines = vec![
        format!("select distinct {}", q(wanted)),
        format!("from {}", qualified(schema, ASSOCIATIONS_TABLE)),
        format!("where {} = $1", q("from_type")),
        format!("  and {} = $2", q("to_type")),
        format!("  and {} is null", q("deleted_at")),
    ];
    if ids {
        lines.push(format!("  and {} = any($3::bigint[])", q(other)));
    }
    lines.push(format!("order by {}", q(wanted)));
    lines.join("\n")
}

/// Every stored edge, tombstoned ones included, times as epoch milliseconds, in key order.
#[cfg(feature = "test-support")]
pub fn render_read_edges(schema: &str) -> String {
    let mut columns: Vec<String> = EDGE_KEY.into_iter().chain(["category", "label"]).map(quote_ident).collect();
    columns.extend(
        ["synced_at", "deleted_at"].map(|c| format!("(extract(epoch from {}) * 1000)::bigint", quote_ident(c))),
    );
    format!(
        "select {}\nfrom {}\norder by {}",
        columns.join(", "),
        qualified(schema, ASSOCIATIONS_TABLE),
        column_list(&EDGE_KEY)
    )
}

/// The schema Postgres resolves to the session's own temporary schema.
pub const TEMP_SCHEMA: &str = "pg_temp";

/// `create table if not exists` for a dimension table: its columns, `_hsync_synced_at` and
/// `_hsync_removed_at`, keyed by its key columns.
pub fn render_create_dimension(schema: &str, table: &DimensionTable) -> String {
    let mut body: Vec<String> = table
        .all_columns()
        .iter()
        .map(|c| {
            let required = table.key.contains(&c.name.as_str()) || c.name == hsync_columns::SYNCED_AT;
            format!("    {} {}{}", quote_ident(&c.name), pg_type(c.ty), if required { " not null" } else { "" })
        })
        .collect();
    body.push(format!("    primary key ({})", column_list(table.key)));
    format!("create table if not exists {} (\n{}\n)", qualified(schema, table.name), body.join(",\n"))
}

/// The temporary table a dimension list is copied into: `_hsync_dimension_<table>`.
pub fn dimension_stage_name(table: &DimensionTable) -> String {
    format!("_hsync_dimension_{}", table.name)
}

/// Creates the temporary table holding a dimension list for one transaction, typed as the
/// dimension table types its columns (load it with [`render_copy`] into [`TEMP_SCHEMA`]).
pub fn render_create_dimension_stage(schema: &str, table: &DimensionTable) -> String {
    format!(
        "create temporary table {} on commit drop as\nselect {}\nfrom {}\nwith no data",
        qualified(TEMP_SCHEMA, &dimension_stage_name(table)),
        column_list(&table.column_names()),
        qualified(schema, table.name)
    )
}

/// Upserts the listed rows from the temporary table: a stored row takes every value and (in a
/// table of complete lists) loses its `_hsync_removed_at`. `$1` the sync time.
pub fn render_upsert_dimension(schema: &str, table: &DimensionTable) -> String {
    let names = table.column_names();
    let removed: &[&str] = if table.complete_lists { &[REMOVED_AT] } else { &[] };
    let all: Vec<&str> = names.iter().copied().chain(table.hsync_columns().iter().copied()).collect();
    let set: Vec<String> = names
        .iter()
        .copied()
        .filter(|c| !table.key.contains(c))
        .chain([hsync_columns::SYNCED_AT])
        .map(|c| format!("{q} = excluded.{q}", q = quote_ident(c)))
        .chain(removed.iter().map(|c| format!("{} = null", quote_ident(c))))
        .collect();
    let nulls: String = removed.iter().map(|_| ", null::timestamptz").collect();
    [
        format!("insert into {} as t ({})", qualified(schema, table.name), column_list(&all)),
        format!("select {}, $1::timestamptz{nulls}", column_list(&names)),
        format!("from {}", qualified(TEMP_SCHEMA, &dimension_stage_name(table))),
        format!("on conflict ({}) do update", column_list(table.key)),
        format!("set {}", set.join(",\n    ")),
    ]
    .join("\n")
}

/// Flags the stored rows of a dimension table that the list in the temporary table lacks.
/// `$1` the removal time.
pub fn render_remove_missing_dimension(schema: &str, table: &DimensionTable) -> String {
    let removed = quote_ident(REMOVED_AT);
    let matches: Vec<String> = table.key.iter().map(|k| format!("c.{q} = t.{q}", q = quote_ident(k))).collect();
    [
        format!("update {} as t", qualified(schema, table.name)),
        format!("set {removed} = $1::timestamptz"),
        format!("where t.{removed} is null"),
        "  and not exists (".to_owned(),
        "      select 1".to_owned(),
        format!("      from {} as c", qualified(TEMP_SCHEMA, &dimension_stage_name(table))),
        format!("      where {}", matches.join("\n        and ")),
        "  )".to_owned(),
    ]
    .join("\n")
}

/// Ids of the live rows of an object table: no archived, merged or deleted flag.
pub fn render_live_ids(schema: &str, table: &str) -> String {
    let id = quote_ident(hsync_columns::ID);
    format!(
        "select {id}\nfrom {}\nwhere {}\norder by {id}",
        qualified(schema, table),
        unflagged(quote_ident, "is null").join("\n  and ")
    )
}

/// Ids of the rows of an object table whose cursor is at or after `$1` (a timestamptz).
pub fn render_ids_modified_since(schema: &str, table: &str) -> String {
    let id = quote_ident(hsync_columns::ID);
    format!(
        "select {id}\nfrom {}\nwhere {} >= $1\norder by {id}",
        qualified(schema, table),
        quote_ident(hsync_columns::CURSOR)
    )
}

/// Creates an empty unlogged staging table in the state schema with the batch's columns,
/// typed exactly as the object table types them (so `jsonb`, `numeric`, widened columns and
/// the rest need no cast in the merge).
pub fn render_create_stage<S: AsRef<str>>(
    state_schema: &str,
    stage_table: &str,
    data_schema: &str,
    table: &str,
    columns: &[S],
) -> String {
    format!(
        "create unlogged table {} as\nselect {}\nfrom {}\nwith no data",
        qualified(state_schema, stage_table),
        column_list(columns),
        qualified(data_schema, table)
    )
}

/// Loads a stage from COPY text (see `types::encode_copy_text`).
pub fn render_copy<S: AsRef<str>>(state_schema: &str, stage_table: &str, columns: &[S]) -> String {
    format!("copy {} ({})\nfrom stdin\nwith (format text)", qualified(state_schema, stage_table), column_list(columns))
}

pub fn render_count(schema: &str, table: &str) -> String {
    format!("select count(*)\nfrom {}", qualified(schema, table))
}

/// The guarded upsert: the newest staged version of each id, applied only where the table's
/// row is not newer (a row without a cursor, one reconciliation inserted with only its flags,
/// takes any version). Only the staged columns are written.
pub fn render_merge<S: AsRef<str>>(
    data_schema: &str,
    table: &str,
    state_schema: &str,
    stage_table: &str,
    columns: &[S],
) -> String {
    let id = quote_ident(hsync_columns::ID);
    let cursor = quote_ident(hsync_columns::CURSOR);
    let list = column_list(columns);
    let updates: Vec<String> = columns
        .iter()
        .map(AsRef::as_ref)
        .filter(|c| *c != hsync_columns::ID)
        .map(|c| {
            let q = quote_ident(c);
            format!("{q} = excluded.{q}")
        })
        .collect();
    format!(
        "insert into {target} as t ({list})\n\
         select distinct on ({id}) {list}\n\
         from {stage}\n\
         order by {id}, {cursor} desc\n\
         on conflict ({id}) do update\n\
         set {updates}\n\
         where t.{cursor} is null\n   \
         or t.{cursor} <= excluded.{cursor}",
        target = qualified(data_schema, table),
        stage = qualified(state_schema, stage_table),
        updates = updates.join(",\n    "),
    )
}

/// Records rejects; the five bound arrays are the columns.
pub fn render_insert_rejects(schema: &str) -> String {
    format!(
        "insert into {} (\"object\", \"id\", \"property\", \"raw_value\", \"reason\")\n\
         select *\n\
         from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])",
        qualified(schema, REJECTS_TABLE)
    )
}

#[cfg(feature = "test-support")]
pub fn render_read_rejects(schema: &str) -> String {
    format!(
        "select \"object\", \"id\", \"property\", \"raw_value\", \"reason\"\n\
         from {}\n\
         where \"object\" = $1\n\
         order by \"seen_at\", \"id\", \"property\"",
        qualified(schema, REJECTS_TABLE)
    )
}

/// Inserts one row with only its id, bound as `$1` (the write check of `probe_write`).
pub fn render_insert_id(schema: &str, table: &str) -> String {
    format!("insert into {} ({}) values ($1)", qualified(schema, table), quote_ident(hsync_columns::ID))
}

pub fn render_drop_table(schema: &str, table: &str) -> String {
    format!("drop table if exists {}", qualified(schema, table))
}

/// How Postgres writes the flag statements' shared clauses: flag rows `f`, the table `t`.
const FLAG_CLAUSES: FlagClauses<'static> =
    FlagClauses { quote: quote_ident, upper: false, distinct: "is distinct from", rows: "f", target: "t" };

/// The flag rows of a flag statement: the bound arrays of [`FLAG_COLUMNS`], in order, typed.
fn flag_rows() -> String {
    let arrays: Vec<String> =
        FLAG_COLUMNS.iter().enumerate().map(|(i, (_, ty))| format!("${}::{}[]", i + 1, pg_type(*ty))).collect();
    format!("unnest({})\n     as f ({})", arrays.join(", "), column_list(&flag_column_names()))
}

/// Inserts a row carrying only its id and flags for each flag row that sets a flag and whose
/// id the table does not hold. Binds: the arrays of [`FLAG_COLUMNS`].
pub fn render_flag_insert(schema: &str, table: &str) -> String {
    format!(
        "insert into {} ({})\nselect {}\nfrom {}\nwhere {}\non conflict ({}) do nothing",
        qualified(schema, table),
        column_list(&INSERTED_COLUMNS),
        FLAG_CLAUSES.inserted_values().join(", "),
        flag_rows(),
        FLAG_CLAUSES.sets_a_flag().join("\n   or "),
        quote_ident(hsync_columns::ID),
    )
}

/// Sets or clears the flags of existing rows: each flag whose `set_*` is true takes the bound
/// value, the others keep theirs; no cursor guard, and `_hsync_cursor` is never written. A
/// flag row with an `observed` cursor applies only where the row's cursor is NULL or not
/// newer. Rows whose flags already hold the values are not touched, so the count is the rows
/// changed. Binds as [`render_flag_insert`].
pub fn render_flag_update(schema: &str, table: &str) -> String {
    format!(
        "update {} as t\nset {}\nfrom {}\nwhere {}\n  and {}\n  and ({})",
        qualified(schema, table),
        FLAG_CLAUSES.assignments().join(",\n    "),
        flag_rows(),
        FLAG_CLAUSES.same_id(),
        FLAG_CLAUSES.observed_guard(),
        FLAG_CLAUSES.changes().join("\n    or "),
    )
}

/// Every id with its cursor and flags, by id.
pub fn render_id_flags(schema: &str, table: &str) -> String {
    use hsync_columns::{ARCHIVED_AT, CURSOR, DELETED_AT, ID, MERGED_INTO};
    format!(
        "select {}\nfrom {}\norder by {}",
        column_list(&[ID, CURSOR, ARCHIVED_AT, MERGED_INTO, DELETED_AT]),
        qualified(schema, table),
        quote_ident(ID)
    )
}

/// `columns` of the rows whose id is in the bound array `$1`, each as session-independent
/// text (see `types::read_as_text`), by id (see `Destination::read_cells`).
pub fn render_read_cells(schema: &str, table: &str, columns: &[crate::schema::ExistingColumn]) -> String {
    let exprs: Vec<String> = columns.iter().map(|c| read_as_text(&quote_ident(&c.name), c.ty)).collect();
    format!(
        "select {}\nfrom {}\nwhere {id} = any($1)\norder by {id}",
        exprs.join(", "),
        qualified(schema, table),
        id = quote_ident(hsync_columns::ID)
    )
}

/// Every row of a table, each column as session-independent text (see
/// `types::read_as_text`), ordered by id.
#[cfg(feature = "test-support")]
pub fn render_read_table(schema: &str, table: &str, columns: &[crate::schema::ExistingColumn]) -> String {
    let exprs: Vec<String> = columns.iter().map(|c| read_as_text(&quote_ident(&c.name), c.ty)).collect();
    // Ordered by the id, or the first column of a table without one (property_history).
    let order = columns.iter().map(|c| c.name.as_str()).find(|c| *c == hsync_columns::ID);
    let order = order.or(columns.first().map(|c| c.name.as_str())).unwrap_or(hsync_columns::ID);
    format!("select {}\nfrom {}\norder by {}", exprs.join(", "), qualified(schema, table), quote_ident(order))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{diff, ColumnBudget, ExistingColumn, TableSchema};

    const AWKWARD: [&str; 7] = ["order", "user", "default", "select", "MixedCase", "ñandú", "has\"quote"];

    fn awkward_table() -> TableSchema {
        let props: Vec<crate::hubspot::model::PropertyDefinition> = AWKWARD
            .iter()
            .zip(["string", "number", "bool", "date", "datetime", "json", "enumeration"])
            .map(|(n, t)| serde_json::from_value(serde_json::json!({ "name": n, "type": t })).unwrap())
            .collect();
        diff("select", &props, None, &[], &Default::default(), ColumnBudget::POSTGRES).target
    }

    fn awkward_columns() -> Vec<&'static str> {
        let mut columns = vec![hsync_columns::ID, hsync_columns::CURSOR, hsync_columns::SYNCED_AT];
        columns.extend(AWKWARD);
        columns
    }

    #[test]
    fn quote_ident_wraps_and_doubles_quotes() {
        assert_eq!(quote_ident("order"), "\"order\"");
        assert_eq!(quote_ident("MixedCase"), "\"MixedCase\"");
        assert_eq!(quote_ident("ñandú"), "\"ñandú\"");
        assert_eq!(quote_ident("has\"quote"), "\"has\"\"quote\"");
        assert_eq!(quote_ident("\""), "\"\"\"\"");
        assert_eq!(quote_ident(""), "\"\"");
        let all: Vec<String> = AWKWARD.iter().map(|n| quote_ident(n)).collect();
        insta::assert_snapshot!("quote_ident", all.join("\n"));
    }

    #[test]
    fn stage_names_stay_within_the_identifier_limit() {
        assert_eq!(stage_table_name("contacts", 0xab), "stage_contacts_000000ab");
        let long = "x".repeat(80);
        let name = stage_table_name(&long, u32::MAX);
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_ffffffff"));
        let unicode = "ñ".repeat(40);
        let name = stage_table_name(&unicode, 1);
        assert!(name.len() <= 63, "{}", name.len());
        assert!(name.starts_with("stage_ñ"));
    }

    #[test]
    fn create_schema() {
        insta::assert_snapshot!("create_schema", render_create_schema("hsync"));
        insta::assert_snapshot!("create_schema_awkward", render_create_schema("My \"State\" ñ"));
    }

    #[test]
    fn create_table_with_awkward_names() {
        insta::assert_snapshot!("create_table", render_create_table("hubspot", &awkward_table()));
    }

    #[test]
    fn add_column() {
        let column = Column { name: "default".into(), property: Some("default".into()), ty: ColumnType::Decimal };
        insta::assert_snapshot!("add_column", render_add_column("hubspot", "user", &column));
    }

    #[test]
    fn widen_every_pair_diff_produces() {
        let cases = [
            ("order", ColumnType::Boolean, ColumnType::Text),
            ("ñandú", ColumnType::Date, ColumnType::Timestamp),
            ("MixedCase", ColumnType::Timestamp, ColumnType::Text),
            ("default", ColumnType::Date, ColumnType::Text),
            ("has\"quote", ColumnType::BigInt, ColumnType::Decimal),
            ("select", ColumnType::Decimal, ColumnType::Text),
            ("user", ColumnType::Json, ColumnType::Text),
        ];
        let rendered: Vec<String> =
            cases.iter().map(|(c, from, to)| render_widen("hubspot", "contacts", c, *from, *to)).collect();
        insta::assert_snapshot!("widen", rendered.join(";\n\n"));
    }

    #[test]
    fn plan_renders_only_altering_changes() {
        let props = |kinds: [&str; 3]| -> Vec<crate::hubspot::model::PropertyDefinition> {
            ["order", "closed", "note"]
                .iter()
                .zip(kinds)
                .map(|(n, t)| serde_json::from_value(serde_json::json!({ "name": n, "type": t })).unwrap())
                .collect()
        };
        let first =
            diff("deals", &props(["number", "bool", "date"]), None, &[], &Default::default(), ColumnBudget::POSTGRES);
        let existing: Vec<ExistingColumn> =
            first.target.columns.iter().map(|c| ExistingColumn { name: c.name.clone(), ty: c.ty }).collect();
        let mut next = props(["number", "string", "datetime"]);
        next.push(serde_json::from_value(serde_json::json!({ "name": "user", "type": "string" })).unwrap());
        let plan = diff("deals", &next, Some(&existing), &[], &Default::default(), ColumnBudget::POSTGRES);
        insta::assert_snapshot!("plan", render_plan("hubspot", &plan).join(";\n\n"));
    }

    #[test]
    fn live_view_is_replaced_after_added_columns_and_dropped_first_around_a_widen() {
        let prop = |n: &str, t: &str| -> crate::hubspot::model::PropertyDefinition {
            serde_json::from_value(serde_json::json!({ "name": n, "type": t })).unwrap()
        };
        let mut created =
            diff("select", &[prop("order", "bool")], None, &[], &Default::default(), ColumnBudget::POSTGRES);
        crate::schema::plan_live_view(&mut created, None, None);
        insta::assert_snapshot!("plan_create_with_live_view", render_plan("My \"Data\"", &created).join(";\n\n"));
        let existing: Vec<ExistingColumn> =
            created.target.columns.iter().map(|c| ExistingColumn { name: c.name.clone(), ty: c.ty }).collect();
        let grown = [prop("order", "bool"), prop("user", "string")];
        let mut added = diff("select", &grown, Some(&existing), &[], &Default::default(), ColumnBudget::POSTGRES);
        crate::schema::plan_live_view(&mut added, Some(&existing), Some(&existing));
        insta::assert_snapshot!("plan_add_column_with_live_view", render_plan("hubspot", &added).join(";\n\n"));
        let mut widened = diff(
            "select",
            &[prop("order", "string")],
            Some(&existing),
            &[],
            &Default::default(),
            ColumnBudget::POSTGRES,
        );
        crate::schema::plan_live_view(&mut widened, Some(&existing), Some(&existing));
        insta::assert_snapshot!("plan_widen_with_live_view", render_plan("hubspot", &widened).join(";\n\n"));
        let mut missing =
            diff("select", &[prop("order", "bool")], Some(&existing), &[], &Default::default(), ColumnBudget::POSTGRES);
        crate::schema::plan_live_view(&mut missing, Some(&existing), None);
        assert_eq!(
            render_plan("hubspot", &missing),
            [render_create_live_view("hubspot", "select", "select_live", true)],
            "a missing view is created, nothing else"
        );
    }

    #[test]
    fn bookkeeping_tables() {
        insta::assert_snapshot!("create_rejects", render_create_rejects("hubspot").join(";\n\n"));
        insta::assert_snapshot!("create_associations", render_create_associations("hubspot").join(";\n\n"));
        insta::assert_snapshot!("insert_rejects", render_insert_rejects("hubspot"));
        #[cfg(feature = "test-support")]
        insta::assert_snapshot!("read_rejects", render_read_rejects("hubspot"));
    }

    #[test]
    fn edge_statements() {
        insta::assert_snapshot!("upsert_edges", render_upsert_edges("My \"Data\""));
        insta::assert_snapshot!("tombstone_edges", render_tombstone_edges("hubspot"));
        let ends =
            |end| [render_edge_ends("hubspot", end, false), render_edge_ends("hubspot", end, true)].join(";\n\n");
        insta::assert_snapshot!("edge_sources", ends(EdgeEnd::From));
        insta::assert_snapshot!("edge_targets", ends(EdgeEnd::To));
        #[cfg(feature = "test-support")]
        insta::assert_snapshot!("read_edges", render_read_edges("hubspot"));
        insta::assert_snapshot!(
            "ids",
            [render_live_ids("hubspot", "has\"quote"), render_ids_modified_since("hubspot", "select")].join(";\n\n")
        );
    }

    #[test]
    fn stage_copy_merge_and_drop() {
        let stage = stage_table_name("select", 0x1a2b_3c4d);
        let columns = awkward_columns();
        insta::assert_snapshot!("create_stage", render_create_stage("hsync", &stage, "hubspot", "select", &columns));
        insta::assert_snapshot!("copy", render_copy("hsync", &stage, &columns));
        insta::assert_snapshot!("count_stage", render_count("hsync", &stage));
        insta::assert_snapshot!("merge", render_merge("hubspot", "select", "hsync", &stage, &columns));
        insta::assert_snapshot!("drop_stage", render_drop_table("hsync", &stage));
    }

    #[test]
    fn merge_of_a_partial_batch_sets_only_its_columns() {
        let columns = [hsync_columns::ID, hsync_columns::CURSOR, "city"];
        insta::assert_snapshot!(
            "merge_partial",
            render_merge("hubspot", "contacts", "hsync", "stage_contacts_00000001", &columns)
        );
    }

    #[test]
    fn flag_statements() {
        insta::assert_snapshot!("flag_insert", render_flag_insert("My \"Data\"", "select"));
        insta::assert_snapshot!("flag_update", render_flag_update("hubspot", "has\"quote"));
        insta::assert_snapshot!("id_flags", render_id_flags("hubspot", "MixedCase"));
    }

    #[test]
    fn dimension_statements() {
        use crate::schema::dimension::{DIMENSION_TABLES, OWNERS, PIPELINES, PIPELINE_STAGES};
        let create: Vec<String> = DIMENSION_TABLES.iter().map(|t| render_create_dimension("My \"Data\"", t)).collect();
        insta::assert_snapshot!("create_dimensions", create.join(";\n\n"));
        let stage = dimension_stage_name(&PIPELINE_STAGES);
        let load = [
            render_create_dimension_stage("hubspot", &PIPELINE_STAGES),
            render_copy(TEMP_SCHEMA, &stage, &PIPELINE_STAGES.column_names()),
            render_upsert_dimension("hubspot", &PIPELINE_STAGES),
        ];
        insta::assert_snapshot!("replace_dimension", load.join(";\n\n"));
        let remove: Vec<String> =
            [&OWNERS, &PIPELINES].iter().map(|t| render_remove_missing_dimension("hubspot", t)).collect();
        insta::assert_snapshot!("remove_missing_dimension", remove.join(";\n\n"));
        let history = [
            render_upsert_dimension("hubspot", &PROPERTY_HISTORY),
            render_replace_history_spans("hubspot"),
            render_history_versions("hubspot"),
        ];
        insta::assert_snapshot!("property_history", history.join(";\n\n"));
        let columns = [
            ExistingColumn { name: hsync_columns::ID.into(), ty: ColumnType::BigInt },
            ExistingColumn { name: "num_associated_deals".into(), ty: ColumnType::Decimal },
            ExistingColumn { name: "has\"quote".into(), ty: ColumnType::Timestamp },
        ];
        insta::assert_snapshot!("read_cells", render_read_cells("hubspot", "companies", &columns));
    }

    #[test]
    #[cfg(feature = "test-support")]
    fn read_table() {
        let table = awkward_table();
        let columns: Vec<ExistingColumn> =
            table.columns.iter().map(|c| ExistingColumn { name: c.name.clone(), ty: c.ty }).collect();
        insta::assert_snapshot!("read_table", render_read_table("hubspot", "select", &columns));
    }
}
