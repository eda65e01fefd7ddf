//! What the SQL dialects' property history view ([`super::HISTORY_SPANS_VIEW`]) shares: its
//! columns and the window that orders a record's versions of one property. Each dialect's
//! `sql.rs` wraps this select in its own view statement, quoting through its own
//! `quote_ident` and giving its own expression for the seconds between two timestamps.

use crate::schema::dimension::PROPERTY_HISTORY;

/// The view's select over `table` (the qualified `property_history`). `quote` is the dialect's
/// identifier quoting; `seconds(later, earlier)` its expression for the seconds from `earlier`
/// to `later` (NULL when `later` is).
pub(crate) fn spans_select(
    quote: impl Fn(&str) -> String,
    table: &str,
    seconds: impl Fn(&str, &str) -> String,
) -> String {
    let q = |name: &str| quote(name);
    let window = format!(
        "(PARTITION BY {}, {}, {} ORDER BY {}, {})",
        q("object_type"),
        q("record_id"),
        q("property"),
        q("changed_at"),
        q("version_id")
    );
    let changed = q("changed_at");
    let next = format!("LEAD({changed}) OVER {window}");
    let kept: Vec<String> = ["object_type", "record_id", "property", "value"].iter().map(|c| q(c)).collect();
    let sources: Vec<String> = ["source_type", "source_id", "updated_by_user_id"].iter().map(|c| q(c)).collect();
    debug_assert!(PROPERTY_HISTORY.columns.iter().any(|(c, _)| *c == "version_id"));
    [
        format!("SELECT {},", kept.join(", ")),
        format!("    {changed} AS {},", q("entered_at")),
        format!("    {next} AS {},", q("exited_at")),
        format!("    {} AS {},", seconds(&next, &changed), q("seconds_in_value")),
        format!("    ({next} IS NULL) AS {},", q("is_current")),
        format!("    {}", sources.join(", ")),
        format!("FROM {table}"),
    ]
    .join("\n")
}

/// The select behind [`super::Destination::history_versions`] over `table` (the qualified
/// `property_history`): record id, property, version id, value and `changed_at` as
/// `changed_ms(column)` gives it, of one object type (`object_type`, the dialect's parameter)
/// and the records `ids_match(column)` admits, in record, property and version order.
pub(crate) fn versions_select(
    quote: impl Fn(&str) -> String,
    table: &str,
    changed_ms: impl Fn(&str) -> String,
    object_type: &str,
    ids_match: impl Fn(&str) -> String,
) -> String {
    let q = |name: &str| quote(name);
    let (record, property, version) = (q("record_id"), q("property"), q("version_id"));
    [
        format!("SELECT {record}, {property}, {version}, {}, {}", q("value"), changed_ms(&q("changed_at"))),
        format!("FROM {table}"),
        format!("WHERE {} = {object_type}", q("object_type")),
        format!("  AND {}", ids_match(&record)),
        format!("ORDER BY {record}, {property}, {version}"),
    ]
    .join("\n")
}
