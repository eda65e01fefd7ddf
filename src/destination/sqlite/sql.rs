//! The SQLite dialect as pure functions: [`quote_ident`], the one way an identifier enters SQL
//! text, and `render_*` functions that build every dynamic statement the destination runs.
//! Values never appear here: statements carry `?` placeholders and the caller binds values.
//! Every statement is snapshot-tested (`snapshots/`), including awkward identifiers.
//!
//! Static statements (bookkeeping tables, checkpoint commit, introspection) live in
//! `sql/sqlite/*.sql` and are loaded with `include_str!`.

use std::fmt::Write as _;

use crate::destination::flag_sql::{flag_column_names, unflagged, FlagClauses, FLAG_COLUMNS, INSERTED_COLUMNS};
use crate::destination::history_sql::{spans_select, versions_select};
use crate::destination::{EdgeEnd, EDGE_KEY, HISTORY_SPANS_VIEW};
use crate::schema::dimension::{DimensionTable, PROPERTY_HISTORY, REMOVED_AT};
use crate::schema::{hsync_columns, ColumnType, ExistingColumn};

use super::types::declared_type;

/// Creates the rejects and associations tables (idempotent).
pub const PREPARE: &str = include_str!("../../../sql/sqlite/prepare.sql");
/// Records one rejected value.
pub const INSERT_REJECT: &str = include_str!("../../../sql/sqlite/insert_reject.sql");
/// Lists the staging tables.
pub const LIST_STAGES: &str = include_str!("../../../sql/sqlite/list_stages.sql");
/// Describes a table's columns.
pub const DESCRIBE_TABLE: &str = include_str!("../../../sql/sqlite/describe_table.sql");
/// Reads an object's rejected values.
#[cfg(feature = "test-support")]
pub const READ_REJECTS: &str = include_str!("../../../sql/sqlite/read_rejects.sql");
/// Lists the indexes and triggers created on a table.
pub const TABLE_DEPENDENTS: &str = include_str!("../../../sql/sqlite/table_dependents.sql");
/// While on, `alter table ... rename` neither rewrites nor checks views that name the table, so
/// a view over the table survives its rebuild (SQLite's documented way for the rebuild).
pub const LEGACY_ALTER_TABLE_ON: &str = "pragma legacy_alter_table = on";
/// Restores SQLite's normal `alter table ... rename`.
pub const LEGACY_ALTER_TABLE_OFF: &str = "pragma legacy_alter_table = off";

/// Staging tables are named `_hsync_stage_<table>_<8 hex digits>`.
pub use crate::destination::STAGE_PREFIX;
/// The staging table's own row number: the tie-break between duplicate ids with the same cursor
/// (the later row of the batch wins). Not a batch column.
pub const STAGE_SEQ: &str = "_hsync_seq";
/// The rank of a staged row among the rows with its id (1 = the newest).
const RANK: &str = "_hsync_rank";
/// The table a widen rebuild writes before it takes the original's name.
const REBUILD_PREFIX: &str = "_hsync_rebuild_";

/// Quotes an identifier: double quotes around it, embedded double quotes doubled. The only way
/// a table or column name enters SQL text.
pub fn quote_ident(name: &str) -> String {
    crate::destination::double_quoted(name)
}

fn quoted_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().map(quote_ident).collect::<Vec<_>>().join(", ")
}

fn column_definition(column: &ExistingColumn) -> String {
    let definition = format!("{} {}", quote_ident(&column.name), declared_type(column.ty));
    if column.name == hsync_columns::ID {
        format!("{definition} not null primary key")
    } else {
        definition
    }
}

/// `create table` for an object table; `id` is the primary key.
pub fn render_create_table(table: &str, columns: &[ExistingColumn]) -> String {
    let body: Vec<String> = columns.iter().map(|c| format!("    {}", column_definition(c))).collect();
    format!("create table {} (\n{}\n)", quote_ident(table), body.join(",\n"))
}

/// `alter table ... add column` for one (nullable) column.
pub fn render_add_column(table: &str, column: &ExistingColumn) -> String {
    format!("alter table {}\nadd column {} {}", quote_ident(table), quote_ident(&column.name), declared_type(column.ty))
}

/// The expression that converts a column's stored value from `from` to `to` while copying it.
fn converted(column: &str, from: ColumnType, to: ColumnType) -> String {
    let c = quote_ident(column);
    match (from, to) {
        _ if from == to => c,
        // A date is midnight UTC.
        (ColumnType::Date, ColumnType::Timestamp) => format!("{c} || 'T00:00:00.000Z'"),
        // Booleans become the words HubSpot sends.
        (ColumnType::Boolean, ColumnType::Text) => format!("case {c} when 1 then 'true' when 0 then 'false' end"),
        _ => format!("cast({c} as text)"),
    }
}

/// Changes column types, which SQLite's `alter table` cannot: creates the table anew with the
/// `to` layout, copies every row (converting widened columns), drops the original and renames
/// the copy. `from` and `to` list the same columns in the same order. Run the statements, in
/// order, inside one transaction, with [`LEGACY_ALTER_TABLE_ON`] so views over the table keep
/// working, then re-create the table's indexes and triggers ([`TABLE_DEPENDENTS`]).
pub fn render_rebuild_for_widen(table: &str, from: &[ExistingColumn], to: &[ExistingColumn]) -> Vec<String> {
    debug_assert!(from.iter().map(|c| &c.name).eq(to.iter().map(|c| &c.name)), "same columns, same order");
    let rebuild = format!("{REBUILD_PREFIX}{table}");
    let names = quoted_list(to.iter().map(|c| c.name.as_str()));
    let values: Vec<String> = from.iter().zip(to).map(|(f, t)| converted(&f.name, f.ty, t.ty)).collect();
    vec![
        render_create_table(&rebuild, to),
        format!(
            "insert into {} ({names})\nselect {}\nfrom {}",
            quote_ident(&rebuild),
            values.join(", "),
            quote_ident(table)
        ),
        format!("drop table {}", quote_ident(table)),
        format!("alter table {}\nrename to {}", quote_ident(&rebuild), quote_ident(table)),
    ]
}

/// `create table` for a staging table: the batch's columns without constraints (a batch may
/// hold an id twice), after the stage's own row number.
pub fn render_create_stage(stage: &str, columns: &[ExistingColumn]) -> String {
    let mut body = vec![format!("    {} integer primary key", quote_ident(STAGE_SEQ))];
    body.extend(columns.iter().map(|c| format!("    {} {}", quote_ident(&c.name), declared_type(c.ty))));
    format!("create table {} (\n{}\n)", quote_ident(stage), body.join(",\n"))
}

/// A multi-row `insert` of `rows` rows into a staging table, one `?` per value, row by row.
pub fn render_insert_stage(stage: &str, columns: &[String], rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns.len()].join(", "));
    let mut sql =
        format!("insert into {} ({})\nvalues ", quote_ident(stage), quoted_list(columns.iter().map(String::as_str)));
    for i in 0..rows {
        if i > 0 {
            sql.push_str(",\n       ");
        }
        sql.push_str(&row);
    }
    sql
}

/// The guarded upsert of a stage into its table.
///
/// Only the newest staged version of each id is taken (the latest cursor; among equal cursors
/// the later row of the batch). It inserts new ids and updates an existing row only when the
/// staged version is newer (`_hsync_cursor` greater), or is the same version and changes a
/// staged column other than the cursor and the synced-at time (a targeted re-read of a
/// property, a flag set by reconciliation). So a row never goes back to an older version, and
/// a replayed batch changes no row: the statement's change count is exactly the rows written.
/// Only the staged columns are set; the table's other columns keep their values.
///
/// `columns` must hold `id` and `_hsync_cursor`.
pub fn render_merge(table: &str, stage: &str, columns: &[String]) -> String {
    use hsync_columns::{CURSOR, ID, SYNCED_AT};
    let t = quote_ident(table);
    let list = quoted_list(columns.iter().map(String::as_str));
    let id = quote_ident(ID);
    let cursor = quote_ident(CURSOR);
    let mut sql = String::new();
    let _ = writeln!(sql, "insert into {t} ({list})");
    let _ = writeln!(sql, "select {list}");
    let _ = writeln!(sql, "from (");
    let _ = writeln!(
        sql,
        "    select {list}, row_number() over (partition by {id} order by {cursor} desc, {} desc) as {}",
        quote_ident(STAGE_SEQ),
        quote_ident(RANK)
    );
    let _ = writeln!(sql, "    from {}", quote_ident(stage));
    let _ = writeln!(sql, ")");
    let _ = writeln!(sql, "where {} = 1", quote_ident(RANK));
    let _ = writeln!(sql, "order by {id}");
    let _ = writeln!(sql, "on conflict ({id}) do update");
    let set: Vec<String> = columns
        .iter()
        .filter(|c| c.as_str() != ID)
        .map(|c| format!("{} = excluded.{}", quote_ident(c), quote_ident(c)))
        .collect();
    let _ = writeln!(sql, "set {}", set.join(",\n    "));
    let _ = write!(sql, "where {t}.{cursor} is null\n   or {t}.{cursor} < excluded.{cursor}");
    let compared: Vec<&str> =
        columns.iter().map(String::as_str).filter(|c| ![ID, CURSOR, SYNCED_AT].contains(c)).collect();
    if !compared.is_empty() {
        let target: Vec<String> = compared.iter().map(|c| format!("{t}.{}", quote_ident(c))).collect();
        let staged: Vec<String> = compared.iter().map(|c| format!("excluded.{}", quote_ident(c))).collect();
        let _ = write!(
            sql,
            "\n   or ({t}.{cursor} = excluded.{cursor} and ({}) is not ({}))",
            target.join(", "),
            staged.join(", ")
        );
    }
    sql
}

/// The association edge table (created by [`PREPARE`]).
pub use crate::destination::{ASSOCIATIONS_LIVE_VIEW, ASSOCIATIONS_TABLE};

/// Creates the view of the edges that are not tombstoned (idempotent: its columns are fixed).
pub fn render_create_associations_live() -> String {
    format!(
        "create view if not exists {} as\nselect *\nfrom {}\nwhere {} is null",
        quote_ident(ASSOCIATIONS_LIVE_VIEW),
        quote_ident(ASSOCIATIONS_TABLE),
        quote_ident("deleted_at")
    )
}

/// (Re)creates [`HISTORY_SPANS_VIEW`] (SQLite has no `create or replace view`: run both
/// statements in one transaction). Times are stored as ISO text; the seconds come from
/// `julianday`, rounded to the millisecond.
pub fn render_replace_history_spans() -> Vec<String> {
    let seconds = |later: &str, earlier: &str| {
        format!("round((julianday({later}) - julianday({earlier})) * 86400000.0) / 1000.0")
    };
    vec![
        format!("drop view if exists {}", quote_ident(HISTORY_SPANS_VIEW)),
        format!(
            "create view {} as\n{}",
            quote_ident(HISTORY_SPANS_VIEW),
            spans_select(quote_ident, &quote_ident(PROPERTY_HISTORY.name), seconds)
        ),
    ]
}

/// The stored versions of some records (see `Destination::history_versions`). Binds the
/// object type, then the record ids as one JSON array; `changed_at` stays stored text.
pub fn render_history_versions() -> String {
    let ids = |record: &str| format!("{record} in (select {} from json_each(?))", quote_ident("value"));
    versions_select(quote_ident, &quote_ident(PROPERTY_HISTORY.name), str::to_owned, "?", ids)
}

/// `json_extract("value", '$[i]')`: element `i` of the current element of `json_each`.
fn element(i: usize) -> String {
    format!("json_extract({}, '$[{i}]')", quote_ident("value"))
}

/// Upserts the edges of one object pair. Binds, in order: the from type, the to type, the
/// synced-at timestamp, and the edges as one JSON array of `[from_id, to_id, type_id,
/// category, label]` (values travel as data in a bound parameter, never in SQL text). A stored
/// edge is updated only when its category or label changed or it was tombstoned (the
/// tombstone is cleared), so the change count is the edges written and a replay writes none.
pub fn render_upsert_edges() -> String {
    let t = quote_ident(ASSOCIATIONS_TABLE);
    let columns = quoted_list(EDGE_KEY.into_iter().chain(["category", "label", "synced_at", "deleted_at"]));
    let mut sql = String::new();
    let _ = writeln!(sql, "insert into {t} ({columns})");
    let _ = writeln!(
        sql,
        "select ?, {}, ?, {}, {}, {}, {}, ?, null",
        element(0),
        element(1),
        element(2),
        element(3),
        element(4)
    );
    let _ = writeln!(sql, "from json_each(?)");
    // `where true` tells SQLite's parser the `on conflict` belongs to the insert.
    let _ = writeln!(sql, "where true");
    let _ = writeln!(sql, "on conflict ({}) do update", quoted_list(EDGE_KEY));
    let set: Vec<String> = ["category", "label", "synced_at"]
        .iter()
        .map(|c| format!("{} = excluded.{}", quote_ident(c), quote_ident(c)))
        .chain([format!("{} = null", quote_ident("deleted_at"))])
        .collect();
    let _ = writeln!(sql, "set {}", set.join(",\n    "));
    let _ = write!(
        sql,
        "where {t}.{deleted} is not null\n   or {t}.{category} is not excluded.{category}\n   or {t}.{label} is not excluded.{label}",
        deleted = quote_ident("deleted_at"),
        category = quote_ident("category"),
        label = quote_ident("label"),
    );
    sql
}

/// Tombstones the live edges of some records of one object pair that are not in the current
/// list. Binds, in order: the tombstone time (twice: `deleted_at` and `synced_at`), the from
/// type, the to type, the from ids as a JSON array, and the current edges as in
/// [`render_upsert_edges`] (only the first three elements are read).
pub fn render_tombstone_edges() -> String {
    let q = quote_ident;
    let (deleted, from_id) = (q("deleted_at"), q("from_id"));
    [
        format!("update {}", q(ASSOCIATIONS_TABLE)),
        format!("set {deleted} = ?,"),
        format!("    {} = ?", q("synced_at")),
        format!("where {} = ?", q("from_type")),
        format!("  and {} = ?", q("to_type")),
        format!("  and {deleted} is null"),
        format!("  and {from_id} in (select {} from json_each(?))", q("value")),
        format!("  and ({from_id}, {}, {}) not in (", q("to_id"), q("type_id")),
        format!("      select {}, {}, {}", element(0), element(1), element(2)),
        "      from json_each(?)".to_owned(),
        "  )".to_owned(),
    ]
    .join("\n")
}

/// The distinct from ids with a live edge of one object pair. Binds: the from type, the to
/// type and, when `to_ids` is true, the target ids as a JSON array.
pub fn render_edge_ends(end: EdgeEnd, ids: bool) -> String {
    let q = quote_ident;
    let (wanted, other) = end.columns();
    let mut sql = format!(
        "select distinct {wanted}\nfrom {t}\nwhere {from_type} = ?\n  and {to_type} = ?\n  and {deleted} is null",
        t = q(ASSOCIATIONS_TABLE),
        wanted = q(wanted),
        from_type = q("from_type"),
        to_type = q("to_type"),
        deleted = q("deleted_at"),
    );
    if ids {
        let _ = write!(sql, "\n  and {} in (select {} from json_each(?))", q(other), q("value"));
    }
    let _ = write!(sql, "\norder by {}", q(wanted));
    sql
}

/// Every stored edge, tombstoned ones included, in key order (for read-back).
#[cfg(feature = "test-support")]
pub fn render_read_edges() -> String {
    let columns = quoted_list(EDGE_KEY.into_iter().chain(["category", "label", "synced_at", "deleted_at"]));
    format!("select {columns}\nfrom {}\norder by {}", quote_ident(ASSOCIATIONS_TABLE), quoted_list(EDGE_KEY))
}

/// `create table if not exists` for a dimension table: its columns, `_hsync_synced_at` and
/// `_hsync_removed_at`, keyed by its key columns.
pub fn render_create_dimension(table: &DimensionTable) -> String {
    let mut body: Vec<String> = table
        .all_columns()
        .iter()
        .map(|c| {
            let required = table.key.contains(&c.name.as_str()) || c.name == hsync_columns::SYNCED_AT;
            format!("    {} {}{}", quote_ident(&c.name), declared_type(c.ty), if required { " not null" } else { "" })
        })
        .collect();
    body.push(format!("    primary key ({})", quoted_list(table.key.iter().copied())));
    format!("create table if not exists {} (\n{}\n)", quote_ident(table.name), body.join(",\n"))
}

/// Upserts `rows` listed rows of a dimension table: per row one `?` per refreshed column, in
/// order, then one for `_hsync_synced_at`. A stored row takes every value and (in a table of
/// complete lists) loses its `_hsync_removed_at`.
pub fn render_upsert_dimension(table: &DimensionTable, rows: usize) -> String {
    let names = table.column_names();
    let removed: &[&str] = if table.complete_lists { &[REMOVED_AT] } else { &[] };
    let columns = quoted_list(names.iter().copied().chain(table.hsync_columns().iter().copied()));
    let nulls: String = removed.iter().map(|_| ", null").collect();
    let row = format!("({}, ?{nulls})", vec!["?"; names.len()].join(", "));
    let set: Vec<String> = names
        .iter()
        .copied()
        .filter(|c| !table.key.contains(c))
        .chain([hsync_columns::SYNCED_AT])
        .map(|c| format!("{} = excluded.{}", quote_ident(c), quote_ident(c)))
        .chain(removed.iter().map(|c| format!("{} = null", quote_ident(c))))
        .collect();
    format!(
        "insert into {} ({columns})\nvalues {}\non conflict ({}) do update\nset {}",
        quote_ident(table.name),
        vec![row; rows].join(",\n       "),
        quoted_list(table.key.iter().copied()),
        set.join(",\n    ")
    )
}

/// Flags the stored rows of a dimension table that the current list lacks. Binds: the removal
/// time, then the list's keys as one JSON array of arrays of key values, in key order.
pub fn render_remove_missing_dimension(table: &DimensionTable) -> String {
    let removed = quote_ident(REMOVED_AT);
    let elements: Vec<String> = (0..table.key.len()).map(element).collect();
    [
        format!("update {}", quote_ident(table.name)),
        format!("set {removed} = ?"),
        format!("where {removed} is null"),
        format!("  and ({}) not in (", quoted_list(table.key.iter().copied())),
        format!("      select {}", elements.join(", ")),
        "      from json_each(?)".to_owned(),
        "  )".to_owned(),
    ]
    .join("\n")
}

/// (Re)creates the live view of an object table: every column (`*`, expanded when the view is
/// created, hence recreated whenever the table's columns change), only the rows no
/// reconciliation flag marks. SQLite has no `create or replace view`: run both statements in
/// one transaction.
pub fn render_replace_live_view(table: &str, view: &str) -> Vec<String> {
    vec![
        format!("drop view if exists {}", quote_ident(view)),
        format!(
            "create view {} as\nselect *\nfrom {}\nwhere {}",
            quote_ident(view),
            quote_ident(table),
            unflagged(quote_ident, "is null").join("\n  and ")
        ),
    ]
}

/// Ids of the live rows of an object table: no archived, merged or deleted flag.
pub fn render_live_ids(table: &str) -> String {
    format!(
        "select {id}\nfrom {}\nwhere {}\norder by {id}",
        quote_ident(table),
        unflagged(quote_ident, "is null").join("\n  and "),
        id = quote_ident(hsync_columns::ID),
    )
}

/// Ids of the rows of an object table whose cursor is at or after the bound timestamp.
pub fn render_ids_modified_since(table: &str) -> String {
    use hsync_columns::{CURSOR, ID};
    format!(
        "select {id}\nfrom {}\nwhere {} >= ?\norder by {id}",
        quote_ident(table),
        quote_ident(CURSOR),
        id = quote_ident(ID),
    )
}

/// `drop table if exists`.
pub fn render_drop(table: &str) -> String {
    format!("drop table if exists {}", quote_ident(table))
}

/// `columns` of the rows whose id is in a bound JSON array of ids, by id (see
/// `Destination::read_cells`).
pub fn render_read_cells<S: AsRef<str>>(table: &str, columns: &[S]) -> String {
    let list: Vec<String> = columns.iter().map(|c| quote_ident(c.as_ref())).collect();
    format!(
        "select {}\nfrom {}\nwhere {id} in (select {} from json_each(?))\norder by {id}",
        list.join(", "),
        quote_ident(table),
        quote_ident("value"),
        id = quote_ident(hsync_columns::ID),
    )
}

/// Every row of a table, by id (for read-back).
#[cfg(feature = "test-support")]
pub fn render_select_all(table: &str) -> String {
    format!("select *\nfrom {}\norder by {}", quote_ident(table), quote_ident(hsync_columns::ID))
}

/// The name of the flag rows inside a flag statement.
const FLAGS: &str = "_hsync_flags";

/// How SQLite writes the flag statements' shared clauses: the flag rows and the table by name.
fn flag_clauses<'a>(flags: &'a str, table: &'a str) -> FlagClauses<'a> {
    FlagClauses { quote: quote_ident, upper: false, distinct: "is not", rows: flags, target: table }
}

/// `with "_hsync_flags" (...) as (values (?, ...), ...)`: `rows` flag rows, one `?` per column
/// of [`FLAG_COLUMNS`], row by row.
fn flag_rows(rows: usize) -> String {
    let row = format!("({})", vec!["?"; FLAG_COLUMNS.len()].join(", "));
    format!(
        "with {} ({}) as (\n    values {}\n)",
        quote_ident(FLAGS),
        quoted_list(flag_column_names()),
        vec![row; rows].join(",\n           ")
    )
}

/// Inserts a row carrying only its id and flags for each of `rows` flag rows that sets a flag
/// and whose id the table does not hold. Bind [`FLAG_COLUMNS`] per row: booleans as 0/1,
/// times as stored timestamps.
pub fn render_flag_insert(table: &str, rows: usize) -> String {
    let f = quote_ident(FLAGS);
    let clauses = flag_clauses(&f, table);
    format!(
        "{}\ninsert into {} ({})\nselect {}\nfrom {f}\nwhere {}\non conflict ({}) do nothing",
        flag_rows(rows),
        quote_ident(table),
        quoted_list(INSERTED_COLUMNS),
        clauses.inserted_values().join(", "),
        clauses.sets_a_flag().join("\n   or "),
        quote_ident(hsync_columns::ID),
    )
}

/// Sets or clears the flags of existing rows: each flag whose `set_*` is true takes the bound
/// value, the others keep theirs; no cursor guard, and `_hsync_cursor` is never written. A
/// flag row with an `observed` cursor applies only where the row's cursor is NULL or not
/// newer. Rows whose flags already hold the values are not touched, so the change count is
/// the rows changed. Bind as for [`render_flag_insert`].
pub fn render_flag_update(table: &str, rows: usize) -> String {
    let t = quote_ident(table);
    let f = quote_ident(FLAGS);
    let clauses = flag_clauses(&f, &t);
    format!(
        "{}\nupdate {t}\nset {}\nfrom {f}\nwhere {}\n  and {}\n  and ({})",
        flag_rows(rows),
        clauses.assignments().join(",\n    "),
        clauses.same_id(),
        clauses.observed_guard(),
        clauses.changes().join("\n    or "),
    )
}

/// Every id with its cursor and flags, by id.
pub fn render_id_flags(table: &str) -> String {
    use hsync_columns::{ARCHIVED_AT, CURSOR, DELETED_AT, ID, MERGED_INTO};
    format!(
        "select {}\nfrom {}\norder by {}",
        quoted_list([ID, CURSOR, ARCHIVED_AT, MERGED_INTO, DELETED_AT]),
        quote_ident(table),
        quote_ident(ID)
    )
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use super::*;

    fn col(name: &str, ty: ColumnType) -> ExistingColumn {
        ExistingColumn { name: name.to_owned(), ty }
    }

    /// hsync's columns plus awkward property columns.
    fn awkward_columns() -> Vec<ExistingColumn> {
        let mut columns: Vec<ExistingColumn> =
            crate::schema::TableSchema::hsync_columns().into_iter().map(|c| col(&c.name, c.ty)).collect();
        columns.extend([
            col("order", ColumnType::Decimal),
            col("user", ColumnType::Text),
            col("default", ColumnType::Boolean),
            col("select", ColumnType::Date),
            col("MixedCase", ColumnType::Timestamp),
            col("ñandú", ColumnType::Json),
            col("has\"quote", ColumnType::Text),
        ]);
        columns
    }

    fn names(columns: &[ExistingColumn]) -> Vec<String> {
        columns.iter().map(|c| c.name.clone()).collect()
    }

    #[test]
    fn quote_ident_doubles_embedded_quotes() {
        assert_eq!(quote_ident("order"), r#""order""#);
        assert_eq!(quote_ident("MixedCase"), r#""MixedCase""#);
        assert_eq!(quote_ident("ñandú"), r#""ñandú""#);
        assert_eq!(quote_ident(r#"has"quote"#), r#""has""quote""#);
        assert_eq!(quote_ident(r#"""#), r#""""""#);
        assert_eq!(quote_ident(r#"x"; drop table t; --"#), r#""x""; drop table t; --""#);
    }

    #[test]
    fn create_table() {
        assert_snapshot!(render_create_table("select", &awkward_columns()));
    }

    #[test]
    fn create_associations_live() {
        assert_snapshot!(render_create_associations_live());
    }

    #[test]
    fn replace_live_view() {
        assert_snapshot!(render_replace_live_view("contacts", "contacts_live").join(";\n\n"));
        assert_snapshot!(
            "replace_live_view_awkward",
            render_replace_live_view(r#"se"lect"#, r#"se"lect_live"#).join(";\n\n")
        );
    }

    #[test]
    fn edges() {
        assert_snapshot!("upsert_edges", render_upsert_edges());
        assert_snapshot!("tombstone_edges", render_tombstone_edges());
        let ends = |end| [render_edge_ends(end, false), render_edge_ends(end, true)].join(";\n\n");
        assert_snapshot!("edge_sources", ends(EdgeEnd::From));
        assert_snapshot!("edge_targets", ends(EdgeEnd::To));
        #[cfg(feature = "test-support")]
        assert_snapshot!("read_edges", render_read_edges());
    }

    #[test]
    fn edge_statements_bind_every_value() {
        assert_eq!(render_upsert_edges().matches('?').count(), 4);
        assert_eq!(render_tombstone_edges().matches('?').count(), 6);
        assert_eq!(render_edge_ends(EdgeEnd::To, true).matches('?').count(), 3);
    }

    #[test]
    fn ids_of_awkward_tables() {
        assert_snapshot!("ids", [render_live_ids("has\"quote"), render_ids_modified_since("select")].join(";\n\n"));
    }

    #[test]
    fn add_column() {
        let statements: Vec<String> = [
            col("order", ColumnType::Decimal),
            col("user", ColumnType::Text),
            col("default", ColumnType::Boolean),
            col("MixedCase", ColumnType::Timestamp),
            col("ñandú", ColumnType::Date),
            col("has\"quote", ColumnType::Json),
        ]
        .iter()
        .map(|c| render_add_column("user", c))
        .collect();
        assert_snapshot!(statements.join(";\n\n"));
    }

    #[test]
    fn rebuild_for_widen() {
        let from = vec![
            col("id", ColumnType::BigInt),
            col("_hsync_cursor", ColumnType::Timestamp),
            col("default", ColumnType::Boolean),
            col("select", ColumnType::Date),
            col("order", ColumnType::BigInt),
            col("has\"quote", ColumnType::Decimal),
            col("ñandú", ColumnType::Text),
        ];
        let mut to = from.clone();
        to[2].ty = ColumnType::Text;
        to[3].ty = ColumnType::Timestamp;
        to[4].ty = ColumnType::Decimal;
        to[5].ty = ColumnType::Text;
        assert_snapshot!(render_rebuild_for_widen("Mixed\"Case", &from, &to).join(";\n\n"));
    }

    #[test]
    fn create_stage() {
        assert_snapshot!(render_create_stage("_hsync_stage_select_0a1b2c3d", &awkward_columns()));
    }

    #[test]
    fn insert_stage() {
        let columns = names(&awkward_columns()[..3]).into_iter().chain(["has\"quote".to_owned()]).collect::<Vec<_>>();
        assert_snapshot!(render_insert_stage("_hsync_stage_order_0a1b2c3d", &columns, 3));
    }

    #[test]
    fn insert_stage_has_one_placeholder_per_value() {
        let columns: Vec<String> = (0..7).map(|i| format!("c{i}")).collect();
        let sql = render_insert_stage("s", &columns, 11);
        assert_eq!(sql.matches('?').count(), 77);
    }

    #[test]
    fn merge() {
        assert_snapshot!(render_merge("select", "_hsync_stage_select_0a1b2c3d", &names(&awkward_columns())));
    }

    #[test]
    fn merge_of_a_partial_batch_sets_only_its_columns() {
        let columns: Vec<String> = ["id", "_hsync_cursor", "_hsync_synced_at", "ñandú"].map(str::to_owned).into();
        assert_snapshot!(render_merge("Mixed\"Case", "_hsync_stage_Mixed\"Case_0a1b2c3d", &columns));
    }

    #[test]
    fn merge_of_bookkeeping_columns_only_compares_cursors() {
        let columns: Vec<String> = ["id", "_hsync_cursor", "_hsync_synced_at"].map(str::to_owned).into();
        assert_snapshot!(render_merge("user", "_hsync_stage_user_0a1b2c3d", &columns));
    }

    #[test]
    fn flag_statements() {
        assert_snapshot!("flag_insert", render_flag_insert("has\"quote", 2));
        assert_snapshot!("flag_update", render_flag_update("select", 2));
        assert_snapshot!("id_flags", render_id_flags("MixedCase"));
    }

    #[test]
    fn flag_statements_have_one_placeholder_per_value() {
        for sql in [render_flag_insert("t", 5), render_flag_update("t", 5)] {
            assert_eq!(sql.matches('?').count(), 5 * FLAG_COLUMNS.len());
        }
    }

    #[test]
    fn dimension_statements() {
        use crate::schema::dimension::{DIMENSION_TABLES, OWNERS, PIPELINE_STAGES};
        let create: Vec<String> = DIMENSION_TABLES.iter().map(|t| render_create_dimension(t)).collect();
        assert_snapshot!("create_dimensions", create.join(";\n\n"));
        assert_snapshot!("upsert_dimension", render_upsert_dimension(&PIPELINE_STAGES, 2));
        let remove: Vec<String> =
            [&OWNERS, &PIPELINE_STAGES].iter().map(|t| render_remove_missing_dimension(t)).collect();
        assert_snapshot!("remove_missing_dimension", remove.join(";\n\n"));
    }

    #[test]
    fn dimension_statements_bind_every_value() {
        use crate::schema::dimension::OWNERS;
        let sql = render_upsert_dimension(&OWNERS, 3);
        assert_eq!(sql.matches('?').count(), 3 * (OWNERS.columns.len() + 1));
        assert_eq!(render_remove_missing_dimension(&OWNERS).matches('?').count(), 2);
        let history = render_upsert_dimension(&PROPERTY_HISTORY, 2);
        assert_eq!(history.matches('?').count(), 2 * (PROPERTY_HISTORY.columns.len() + 1));
    }

    #[test]
    fn property_history_statements() {
        assert_snapshot!("upsert_property_history", render_upsert_dimension(&PROPERTY_HISTORY, 2));
        assert_snapshot!("replace_history_spans", render_replace_history_spans().join(";\n\n"));
        assert_snapshot!("history_versions", render_history_versions());
        assert_snapshot!("read_cells", render_read_cells("select", &["id", "_hsync_cursor", "has\"quote"]));
    }

    #[test]
    #[cfg(feature = "test-support")]
    fn drop_and_select_all() {
        assert_snapshot!([render_drop("_hsync_stage_has\"quote_0a1b2c3d"), render_select_all("default")].join(";\n\n"));
    }
}
