//! The SQLite dialect as pure functions: [`quote_ident`], the one way an identifier enters SQL
//! text, and `render_*` functions that build every dynamic statement the destination runs.
//! Values never appear here: statements carry `?` placeholders and the caller binds values.
//! Every statement is snapshot-tested (`snapshots/`), including awkward identifiers.
//!
//! Static statements (bookkeeping tables, checkpoint commit, introspection) live in
//! `sql/sqlite/*.sql` and are loaded with `include_str!`.

use std::fmt::Write as _;

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
pub const READ_REJECTS: &str = include_str!("../../../sql/sqlite/read_rejects.sql");
/// Lists the indexes and triggers created on a table.
pub const TABLE_DEPENDENTS: &str = include_str!("../../../sql/sqlite/table_dependents.sql");
/// While on, `alter table ... rename` neither rewrites nor checks views that name the table, so
/// a view over the table survives its rebuild (SQLite's documented way for the rebuild).
pub const LEGACY_ALTER_TABLE_ON: &str = "pragma legacy_alter_table = on";
/// Restores SQLite's normal `alter table ... rename`.
pub const LEGACY_ALTER_TABLE_OFF: &str = "pragma legacy_alter_table = off";

/// Staging tables are named `_hsync_stage_<table>_<8 hex digits>`.
pub const STAGE_PREFIX: &str = "_hsync_stage_";
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
    format!("\"{}\"", name.replace('"', "\"\""))
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

/// `drop table if exists`.
pub fn render_drop(table: &str) -> String {
    format!("drop table if exists {}", quote_ident(table))
}

/// Every row of a table, by id (for read-back).
pub fn render_select_all(table: &str) -> String {
    format!("select *\nfrom {}\norder by {}", quote_ident(table), quote_ident(hsync_columns::ID))
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
    fn drop_and_select_all() {
        assert_snapshot!([render_drop("_hsync_stage_has\"quote_0a1b2c3d"), render_select_all("default")].join(";\n\n"));
    }
}
