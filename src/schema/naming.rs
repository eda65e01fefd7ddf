//! Which column each property of one table gets. The assignment is
//! - **injective**: no two properties share a column, nor a property and one of hsync's own
//!   columns, even where a dialect compares names without case (SQLite and BigQuery do, so names
//!   are compared case-folded in every dialect, and one layout serves them all);
//! - **stable**: a property keeps the column it was first given. Assignments are recorded in the
//!   state store, and a recorded one is never changed, whatever properties appear later;
//! - **total**: a property whose name no column can carry (empty, or holding a NUL) is reported
//!   as unmappable and skipped, never failing the table.
//!
//! A new property gets its natural name ([`column_name`]) when that is free. When it is taken,
//! the natural name is cut to leave room for `_` and 8 hex digits of a hash of the property name
//! (and of a counter, in the unlikely case that is taken too). A column the table already has
//! under a property's natural name is that property's (tables made before assignments were
//! recorded are adopted as they are).
//!
//! Each object table also has a view of its live rows, named by [`live_view_name`].
//!
//! Pure: the state store and the runner do the recording.

use std::collections::{BTreeMap, HashSet};

use super::mapping::{column_name, fnv1a32, KEPT_PREFIX_BYTES, MAX_IDENTIFIER_BYTES};
use super::TableSchema;

/// What a live view's name adds to its table's name.
pub const LIVE_VIEW_SUFFIX: &str = "_live";

/// Why a property cannot have a column.
pub const EMPTY_NAME: &str = "the property name is empty, which no warehouse column can be named";
/// Why a property cannot have a column.
pub const NUL_IN_NAME: &str = "the property name holds a NUL character, which no warehouse column name can";

/// The result of [`assign_columns`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Property to column, for every mappable property given.
    pub columns: BTreeMap<String, String>,
    /// The assignments made now (not recorded before), to record.
    pub new: Vec<(String, String)>,
    /// Properties that cannot have a column, with the reason.
    pub unmappable: Vec<(String, &'static str)>,
}

/// Whether a property name can name a column; the reason when not.
pub fn unmappable_reason(property: &str) -> Option<&'static str> {
    if property.is_empty() {
        Some(EMPTY_NAME)
    } else if property.contains('\0') {
        Some(NUL_IN_NAME)
    } else {
        None
    }
}

/// The key under which two column names collide in some dialect.
fn collision_key(column: &str) -> String {
    column.to_lowercase()
}

/// Assigns a column to each of `properties` (see the module docs). `recorded` holds the
/// assignments made before (property to column); `existing` the table's columns, if it exists.
pub fn assign_columns(properties: &[&str], recorded: &BTreeMap<String, String>, existing: &[&str]) -> Assignment {
    let mut out = Assignment::default();
    let mut taken: HashSet<String> = TableSchema::hsync_columns().iter().map(|c| collision_key(&c.name)).collect();
    taken.extend(recorded.values().map(|c| collision_key(c)));
    let owned_by_record: HashSet<&str> = recorded.values().map(String::as_str).collect();
    let adoptable: HashSet<&str> = existing.iter().copied().filter(|c| !owned_by_record.contains(c)).collect();
    // Every existing column is taken: one no recorded property owns may still hold the values
    // of a property that is gone, and only its own property (by natural name) may adopt it.
    taken.extend(existing.iter().map(|c| collision_key(c)));

    let mut fresh: Vec<(&str, String)> = Vec::new();
    for &property in properties {
        if let Some(column) = recorded.get(property) {
            out.columns.insert(property.to_owned(), column.clone());
        } else if let Some(reason) = unmappable_reason(property) {
            out.unmappable.push((property.to_owned(), reason));
        } else {
            fresh.push((property, column_name(property)));
        }
    }
    // Who gets a contested natural name: a property adopting its existing column, then one
    // whose name is its column verbatim, then a lower-case name (HubSpot's own style), by name.
    fresh.sort_by(|(pa, na), (pb, nb)| {
        let rank = |p: &str, n: &str| (!adoptable.contains(n), p != n, p != p.to_lowercase());
        rank(pa, na).cmp(&rank(pb, nb)).then_with(|| pa.cmp(pb))
    });
    let mut adopted: HashSet<String> = HashSet::new();
    for (property, natural) in fresh {
        let adopts = adoptable.contains(natural.as_str()) && adopted.insert(natural.clone());
        let column = if adopts || taken.insert(collision_key(&natural)) {
            natural
        } else {
            (0u32..)
                .map(|n| suffixed(&natural, property, n))
                .find(|candidate| taken.insert(collision_key(candidate)))
                .unwrap_or_default()
        };
        out.columns.insert(property.to_owned(), column.clone());
        out.new.push((property.to_owned(), column));
    }
    out.new.sort();
    out
}

/// The name of the view of `table`'s live rows: `<table>_live`. When that passes the identifier
/// limit every dialect accepts (63 bytes, Postgres's), the table name is cut at a character
/// boundary to leave room for `_`, 8 hex digits of a hash of the whole table name, and `_live`,
/// as a long property name is cut for its column: deterministic, and distinct for two long
/// table names that share their first bytes.
pub fn live_view_name(table: &str) -> String {
    let natural = format!("{table}{LIVE_VIEW_SUFFIX}");
    if natural.len() <= MAX_IDENTIFIER_BYTES {
        return natural;
    }
    let mut cut = MAX_IDENTIFIER_BYTES - 9 - LIVE_VIEW_SUFFIX.len();
    while !table.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{:08x}{LIVE_VIEW_SUFFIX}", &table[..cut], fnv1a32(table))
}

/// `natural` cut to leave room for `_` and 8 hex digits of a hash of the property (and of
/// `n`, after the first try), within the identifier limit.
fn suffixed(natural: &str, property: &str, n: u32) -> String {
    let mut cut = natural.len().min(KEPT_PREFIX_BYTES);
    while !natural.is_char_boundary(cut) {
        cut -= 1;
    }
    let hash = if n == 0 { fnv1a32(property) } else { fnv1a32(&format!("{property}\u{0}{n}")) };
    format!("{}_{hash:08x}", &natural[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assign(properties: &[&str]) -> Assignment {
        assign_columns(properties, &BTreeMap::new(), &[])
    }

    fn distinct_case_folded(a: &Assignment) -> bool {
        let mut keys: Vec<String> = a.columns.values().map(|c| collision_key(c)).collect();
        keys.extend(TableSchema::hsync_columns().iter().map(|c| c.name.clone()));
        let n = keys.len();
        keys.sort();
        keys.dedup();
        keys.len() == n
    }

    #[test]
    fn plain_names_keep_their_names() {
        let a = assign(&["email", "order", "firstname"]);
        assert_eq!(a.columns["order"], "order");
        assert_eq!(a.new.len(), 3);
        assert!(a.unmappable.is_empty());
    }

    #[test]
    fn a_property_named_like_a_renamed_one_gets_a_distinct_column() {
        let a = assign(&["id", "p_id", "_hsync_cursor", "p__hsync_cursor"]);
        assert_eq!(a.columns["p_id"], "p_id", "the verbatim name wins its own name");
        assert_eq!(a.columns["p__hsync_cursor"], "p__hsync_cursor");
        assert!(a.columns["id"].starts_with("p_id_"), "{:?}", a.columns);
        assert!(a.columns["_hsync_cursor"].starts_with("p__hsync_cursor_"));
        assert!(distinct_case_folded(&a));
    }

    #[test]
    fn names_differing_only_in_case_get_distinct_columns_and_lower_case_keeps_its_name() {
        let a = assign(&["DealName", "dealname", "DEALNAME"]);
        assert_eq!(a.columns["dealname"], "dealname");
        assert!(distinct_case_folded(&a), "{:?}", a.columns);
    }

    #[test]
    fn a_long_name_beside_its_own_hashed_form_gets_a_distinct_column() {
        let long = "a".repeat(80);
        let hashed = column_name(&long);
        let a = assign(&[&long, &hashed]);
        assert_eq!(a.columns[&hashed], hashed, "the verbatim name wins");
        assert_ne!(a.columns[&long], hashed);
        assert!(a.columns.values().all(|c| c.len() <= MAX_IDENTIFIER_BYTES));
        assert!(distinct_case_folded(&a));
    }

    #[test]
    fn empty_and_nul_names_are_unmappable_and_the_rest_goes_on() {
        let a = assign(&["", "a\0b", "email"]);
        assert_eq!(a.unmappable, [(String::new(), EMPTY_NAME), ("a\0b".to_owned(), NUL_IN_NAME)]);
        assert_eq!(a.columns.keys().collect::<Vec<_>>(), ["email"]);
    }

    #[test]
    fn recorded_assignments_never_change_whatever_arrives_later() {
        // First run: only `id`, which takes p_id.
        let first = assign(&["id"]);
        assert_eq!(first.columns["id"], "p_id");
        let recorded: BTreeMap<String, String> = first.new.into_iter().collect();
        // Later, `p_id` appears: `id` keeps p_id, the newcomer gets a hashed name.
        let existing = ["id", "_hsync_cursor", "p_id"];
        let second = assign_columns(&["id", "p_id"], &recorded, &existing);
        assert_eq!(second.columns["id"], "p_id");
        assert!(second.columns["p_id"].starts_with("p_id_"));
        assert_eq!(second.new.len(), 1, "only the newcomer is recorded");
    }

    #[test]
    fn existing_columns_are_adopted_by_their_own_property_only() {
        // A table made before assignments were recorded, on a dialect that kept case apart.
        let existing = ["id", "DealName", "dealname", "legacy"];
        let a = assign_columns(&["DealName", "dealname", "Legacy"], &BTreeMap::new(), &existing);
        assert_eq!(a.columns["DealName"], "DealName");
        assert_eq!(a.columns["dealname"], "dealname");
        assert_ne!(a.columns["Legacy"].to_lowercase(), "legacy", "a retired column is not taken over by case");
    }

    #[test]
    fn live_view_names_add_live_and_long_table_names_are_cut_with_a_hash() {
        assert_eq!(live_view_name("contacts"), "contacts_live");
        let at_limit = "t".repeat(MAX_IDENTIFIER_BYTES - LIVE_VIEW_SUFFIX.len());
        assert_eq!(live_view_name(&at_limit), format!("{at_limit}_live"));
        let long = "t".repeat(MAX_IDENTIFIER_BYTES);
        let name = live_view_name(&long);
        assert_eq!(name.len(), MAX_IDENTIFIER_BYTES);
        assert!(name.starts_with("tttt") && name.ends_with("_live"), "{name}");
        assert_eq!(live_view_name(&long), name, "deterministic");
        let other = format!("{}u", "t".repeat(MAX_IDENTIFIER_BYTES - 1));
        assert_ne!(live_view_name(&other), name, "the hash keeps shared prefixes apart");
        let unicode = "ñ".repeat(40);
        assert!(live_view_name(&unicode).len() <= MAX_IDENTIFIER_BYTES);
    }

    #[test]
    fn the_assignment_does_not_depend_on_the_order_properties_come_in() {
        let names = ["id", "p_id", "DealName", "dealname", "x"];
        let forward = assign(&names);
        let mut reversed = names;
        reversed.reverse();
        assert_eq!(assign(&reversed), forward);
    }
}
