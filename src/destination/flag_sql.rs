//! What the SQL dialects' reconciliation flag statements (see [`super::Destination::flag`])
//! share: the columns of a flag row, which of them writes which object-table column, and the
//! clauses made of those, and what makes a row live. Each dialect's `sql.rs` renders its own statements around these
//! clauses (flag rows from bound arrays, a scratch table or a `values` list; `update` and
//! `insert`, or one `merge`), quoting through its own `quote_ident`; values are always bound.

use crate::schema::{hsync_columns, ColumnType};

/// The columns of a flag row, in bind order, with their types: the id, then for the archived,
/// merged and deleted flags whether to write the flag and its value, then the observed cursor
/// (see [`super::RowFlag`]).
pub const FLAG_COLUMNS: [(&str, ColumnType); 8] = [
    ("id", ColumnType::BigInt),
    ("set_archived", ColumnType::Boolean),
    ("archived_at", ColumnType::Timestamp),
    ("set_merged", ColumnType::Boolean),
    ("merged_into", ColumnType::BigInt),
    ("set_deleted", ColumnType::Boolean),
    ("deleted_at", ColumnType::Timestamp),
    ("observed", ColumnType::Timestamp),
];

/// The names of [`FLAG_COLUMNS`], in order.
pub fn flag_column_names() -> [&'static str; 8] {
    FLAG_COLUMNS.map(|(name, _)| name)
}

/// Each flag: the flag row's column saying whether to write it, the one holding its value, and
/// the object table's column it writes.
const FLAGS: [(&str, &str, &str); 3] = [
    ("set_archived", "archived_at", hsync_columns::ARCHIVED_AT),
    ("set_merged", "merged_into", hsync_columns::MERGED_INTO),
    ("set_deleted", "deleted_at", hsync_columns::DELETED_AT),
];

/// One condition per flag column of an object table, true where the row does not carry that
/// flag (a live row meets all three); `is_null` as the dialect writes it.
pub fn unflagged(quote: fn(&str) -> String, is_null: &str) -> Vec<String> {
    FLAGS.iter().map(|(_, _, column)| format!("{} {is_null}", quote(column))).collect()
}

/// The object table's columns an id-only row (for an id the table does not hold) is inserted
/// with; [`FlagClauses::inserted_values`] are its values.
pub const INSERTED_COLUMNS: [&str; 4] =
    [hsync_columns::ID, hsync_columns::ARCHIVED_AT, hsync_columns::MERGED_INTO, hsync_columns::DELETED_AT];

/// The flag row's columns holding the values of [`INSERTED_COLUMNS`].
const INSERTED_VALUES: [&str; 4] = ["id", "archived_at", "merged_into", "deleted_at"];

/// The clauses as one dialect writes them.
#[derive(Clone, Copy, Debug)]
pub struct FlagClauses<'a> {
    /// The dialect's one identifier quoting function.
    pub quote: fn(&str) -> String,
    /// Keywords in upper case (BigQuery, Snowflake) rather than lower case (Postgres, SQLite).
    pub upper: bool,
    /// The comparison that treats NULL as a value (`is distinct from`; SQLite's `is not`),
    /// written as the dialect writes it.
    pub distinct: &'static str,
    /// The flag rows as the statement refers to them: an alias or a quoted name.
    pub rows: &'a str,
    /// The object table as the statement refers to it: an alias or a quoted name.
    pub target: &'a str,
}

impl FlagClauses<'_> {
    fn keyword(&self, lower: &str) -> String {
        if self.upper {
            lower.to_ascii_uppercase()
        } else {
            lower.to_owned()
        }
    }

    /// One assignment per flag: the flag's value where its `set_*` column is true, the stored
    /// value otherwise.
    pub fn assignments(&self) -> Vec<String> {
        let (q, r, t) = (self.quote, self.rows, self.target);
        let (case_when, then, else_, end) =
            (self.keyword("case when"), self.keyword("then"), self.keyword("else"), self.keyword("end"));
        FLAGS
            .iter()
            .map(|(flag, value, column)| {
                let c = q(column);
                format!("{c} = {case_when} {r}.{} {then} {r}.{} {else_} {t}.{c} {end}", q(flag), q(value))
            })
            .collect()
    }

    /// One condition per flag, true where the flag row writes a value the row does not hold
    /// (so rows already holding the values are not touched, and a change count counts changes).
    pub fn changes(&self) -> Vec<String> {
        let (q, r, t) = (self.quote, self.rows, self.target);
        let and = self.keyword("and");
        FLAGS
            .iter()
            .map(|(flag, value, column)| {
                format!("({r}.{} {and} {r}.{} {} {t}.{})", q(flag), q(value), self.distinct, q(column))
            })
            .collect()
    }

    /// The row and the flag row have the same id.
    pub fn same_id(&self) -> String {
        let q = self.quote;
        format!("{}.{} = {}.{}", self.target, q(hsync_columns::ID), self.rows, q(FLAG_COLUMNS[0].0))
    }

    /// A flag row observed on a version applies only where the row's cursor is NULL or not
    /// newer than that version.
    pub fn observed_guard(&self) -> String {
        let (q, r, t) = (self.quote, self.rows, self.target);
        let (is_null, or) = (self.keyword("is null"), self.keyword("or"));
        let (observed, cursor) = (q("observed"), q(hsync_columns::CURSOR));
        format!("({r}.{observed} {is_null} {or} {t}.{cursor} {is_null} {or} {t}.{cursor} <= {r}.{observed})")
    }

    /// One condition per flag, true where the flag row sets it (an id-only row is inserted only
    /// when one holds).
    pub fn sets_a_flag(&self) -> Vec<String> {
        let is_not_null = self.keyword("is not null");
        FLAGS.iter().map(|(_, value, _)| format!("{}.{} {is_not_null}", self.rows, (self.quote)(value))).collect()
    }

    /// The values of an id-only row's [`INSERTED_COLUMNS`], from the flag row.
    pub fn inserted_values(&self) -> Vec<String> {
        INSERTED_VALUES.iter().map(|c| format!("{}.{}", self.rows, (self.quote)(c))).collect()
    }
}
