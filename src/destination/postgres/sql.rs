//! Postgres SQL text. [`quote_ident`] is the one function that puts an identifier into SQL;
//! every statement hsync generates for Postgres is rendered here by a pure `render_*` function
//! (lowercase keywords, one clause per line) and snapshot-tested. No value is ever rendered:
//! statements take values as bind parameters (`$1`) or through `COPY`.
//!
//! Static statements that need no identifier live in `sql/postgres/` instead.

use super::types::{pg_type, read_as_text, widen_using};
use crate::schema::{hsync_columns, Change, Column, ColumnType, ExistingColumn, SchemaPlan, TableSchema};

/// The table holding values that did not parse, in the data schema.
pub const REJECTS_TABLE: &str = "_hsync_rejects";
/// The association edge table, in the data schema.
pub const ASSOCIATIONS_TABLE: &str = "associations";
/// Every staging table's name starts with this (see [`stage_table_name`]).
pub const STAGE_PREFIX: &str = "stage_";
/// Postgres truncates longer identifiers (`NAMEDATALEN - 1`).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Quotes an identifier: wrapped in double quotes, embedded double quotes doubled. Postgres
/// then takes it verbatim (case, reserved words, unicode).
pub fn quote_ident(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        if c == '"' {
            quoted.push('"');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
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
    let room = MAX_IDENTIFIER_BYTES - STAGE_PREFIX.len() - 9;
    let mut cut = table.len().min(room);
    while !table.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{STAGE_PREFIX}{}_{suffix:08x}", &table[..cut])
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

/// The statements applying a plan's altering changes, in order. Reports (overflow, removed
/// and incompatible properties) render nothing: hsync never drops.
pub fn render_plan(schema: &str, plan: &SchemaPlan) -> Vec<String> {
    plan.changes
        .iter()
        .filter_map(|change| match change {
            Change::CreateTable { schema: table } => Some(render_create_table(schema, table)),
            Change::AddColumn { column } => Some(render_add_column(schema, &plan.table, column)),
            Change::Widen { column, from, to } => Some(render_widen(schema, &plan.table, column, *from, *to)),
            Change::Incompatible { .. } | Change::Overflow { .. } | Change::PropertyRemoved { .. } => None,
        })
        .collect()
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
    ]
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
/// row is not newer. Only the staged columns are written.
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
         where t.{cursor} <= excluded.{cursor}",
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

pub fn render_read_rejects(schema: &str) -> String {
    format!(
        "select \"object\", \"id\", \"property\", \"raw_value\", \"reason\"\n\
         from {}\n\
         where \"object\" = $1\n\
         order by \"seen_at\", \"id\", \"property\"",
        qualified(schema, REJECTS_TABLE)
    )
}

pub fn render_drop_table(schema: &str, table: &str) -> String {
    format!("drop table if exists {}", qualified(schema, table))
}

/// Every row of a table, each column as session-independent text (see
/// `types::read_as_text`), ordered by id.
pub fn render_read_table(schema: &str, table: &str, columns: &[ExistingColumn]) -> String {
    let exprs: Vec<String> = columns.iter().map(|c| read_as_text(&quote_ident(&c.name), c.ty)).collect();
    format!(
        "select {}\nfrom {}\norder by {}",
        exprs.join(", "),
        qualified(schema, table),
        quote_ident(hsync_columns::ID)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{diff, ColumnBudget, TableSchema};

    const AWKWARD: [&str; 7] = ["order", "user", "default", "select", "MixedCase", "ñandú", "has\"quote"];

    fn awkward_table() -> TableSchema {
        let props: Vec<crate::hubspot::model::PropertyDefinition> = AWKWARD
            .iter()
            .zip(["string", "number", "bool", "date", "datetime", "json", "enumeration"])
            .map(|(n, t)| serde_json::from_value(serde_json::json!({ "name": n, "type": t })).unwrap())
            .collect();
        diff("select", &props, None, &[], ColumnBudget::POSTGRES).target
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
        let first = diff("deals", &props(["number", "bool", "date"]), None, &[], ColumnBudget::POSTGRES);
        let existing: Vec<ExistingColumn> =
            first.target.columns.iter().map(|c| ExistingColumn { name: c.name.clone(), ty: c.ty }).collect();
        let mut next = props(["number", "string", "datetime"]);
        next.push(serde_json::from_value(serde_json::json!({ "name": "user", "type": "string" })).unwrap());
        let plan = diff("deals", &next, Some(&existing), &[], ColumnBudget::POSTGRES);
        insta::assert_snapshot!("plan", render_plan("hubspot", &plan).join(";\n\n"));
    }

    #[test]
    fn bookkeeping_tables() {
        insta::assert_snapshot!("create_rejects", render_create_rejects("hubspot").join(";\n\n"));
        insta::assert_snapshot!("create_associations", render_create_associations("hubspot").join(";\n\n"));
        insta::assert_snapshot!("insert_rejects", render_insert_rejects("hubspot"));
        insta::assert_snapshot!("read_rejects", render_read_rejects("hubspot"));
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
    fn read_table() {
        let table = awkward_table();
        let columns: Vec<ExistingColumn> =
            table.columns.iter().map(|c| ExistingColumn { name: c.name.clone(), ty: c.ty }).collect();
        insta::assert_snapshot!("read_table", render_read_table("hubspot", "select", &columns));
    }
}
