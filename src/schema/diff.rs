//! Schema drift as pure data: `diff(properties, existing columns) -> SchemaPlan`.
//!
//! A plan creates tables and adds columns, widens a column whose property changed type when
//! that loses nothing, reports archived properties, and marks anything else incompatible. It
//! never drops a table or a column. Where the destination has views, [`plan_live_view`] adds
//! the (re)creation of the table's live view (`<table>_live`: every column, only the rows no
//! reconciliation flag marks). Each destination renders the plan in its own dialect.

use serde::Serialize;

use std::collections::BTreeMap;

use super::mapping::column_type;
use super::naming::{assign_columns, live_view_name};
use super::{Column, ColumnBudget, ColumnType, ExistingColumn, TableSchema};
use crate::hubspot::model::PropertyDefinition;

/// One change to a table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// The table does not exist yet.
    CreateTable { schema: TableSchema },
    /// A property (or hsync column) without a column.
    AddColumn { column: Column },
    /// A column whose property changed type; the new type holds every old value.
    Widen { column: String, from: ColumnType, to: ColumnType },
    /// A column whose property changed type in a way hsync will not apply by itself.
    Incompatible { column: String, from: ColumnType, to: ColumnType, reason: String },
    /// The table is at its column limit: the property's values go to the overflow column.
    Overflow { property: String },
    /// A column whose property is archived or gone in HubSpot. Reported; never dropped.
    PropertyRemoved { column: String, property: String },
    /// A property whose name no column can carry: skipped, the rest of the table goes on.
    Unmappable { property: String, reason: String },
    /// (Re)creates the table's live view: `select *` of the rows whose `_hsync_archived_at`,
    /// `_hsync_merged_into` and `_hsync_deleted_at` are all NULL. Applied after the table's
    /// changes, in their transaction where the dialect has one.
    ReplaceView { view: String, reason: ViewReason },
}

/// Why a plan (re)creates the live view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewReason {
    /// The table is created.
    TableCreated,
    /// The table's columns change (a view's `*` is fixed when it is created).
    ColumnsChanged,
    /// The table exists without its view (made before hsync kept views, or dropped by hand).
    Missing,
    /// The view's columns are not the table's.
    Stale,
}

impl ViewReason {
    /// How `hsync schema-diff` says it.
    pub fn describe(self) -> &'static str {
        match self {
            ViewReason::TableCreated => "the table is created",
            ViewReason::ColumnsChanged => "the table's columns change",
            ViewReason::Missing => "the view is missing",
            ViewReason::Stale => "the view's columns are not the table's",
        }
    }
}

impl Change {
    /// Whether applying the change alters the table (reports do not).
    pub fn alters(&self) -> bool {
        matches!(
            self,
            Change::CreateTable { .. } | Change::AddColumn { .. } | Change::Widen { .. } | Change::ReplaceView { .. }
        )
    }
}

/// The changes one table needs, and the table's resulting layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SchemaPlan {
    pub table: String,
    pub changes: Vec<Change>,
    /// The table as it will be once the plan is applied (what batches are built against).
    pub target: TableSchema,
    /// Columns given to properties for the first time (property, column): recorded before the
    /// plan is applied, so each property keeps its column for good (see `naming`).
    pub assigned: Vec<(String, String)>,
}

impl SchemaPlan {
    /// No drift: nothing to alter and nothing new to report. Overflowing and unmappable
    /// properties are a steady state, not drift.
    pub fn is_empty(&self) -> bool {
        self.changes.iter().all(|c| matches!(c, Change::Overflow { .. } | Change::Unmappable { .. }))
    }

    /// Columns whose properties are gone, reported by this plan (to acknowledge once applied).
    pub fn removed_columns(&self) -> Vec<String> {
        self.changes
            .iter()
            .filter_map(|c| match c {
                Change::PropertyRemoved { column, .. } => Some(column.clone()),
                _ => None,
            })
            .collect()
    }

    /// Whether applying would alter the table.
    pub fn alters(&self) -> bool {
        self.changes.iter().any(Change::alters)
    }

    /// The live view the plan (re)creates, with why.
    pub fn live_view(&self) -> Option<(&str, ViewReason)> {
        self.changes.iter().find_map(|c| match c {
            Change::ReplaceView { view, reason } => Some((view.as_str(), *reason)),
            _ => None,
        })
    }

    /// Whether the plan changes the type of an existing column.
    pub fn widens(&self) -> bool {
        self.changes.iter().any(|c| matches!(c, Change::Widen { .. }))
    }

    /// The incompatible changes, which stop the stream until an operator acts.
    pub fn incompatible(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| matches!(c, Change::Incompatible { .. }))
    }
}

/// Properties in the order they claim columns: HubSpot's own first, then by name, so the
/// overflow (if any) is deterministic.
fn ordered(properties: &[PropertyDefinition]) -> Vec<&PropertyDefinition> {
    let mut live: Vec<&PropertyDefinition> = properties.iter().filter(|p| !p.archived).collect();
    live.sort_by(|a, b| b.hubspot_defined.cmp(&a.hubspot_defined).then_with(|| a.name.cmp(&b.name)));
    live
}

/// Compares HubSpot's property definitions with the table's existing columns (`None`: no
/// table yet) and plans the changes, keeping at most `budget` property columns. Columns in
/// `acknowledged` were already reported as orphaned and are not reported again. `recorded`
/// holds the columns given to properties before (see `naming`); the plan's `assigned` lists
/// the ones it gives now.
pub fn diff(
    table: &str,
    properties: &[PropertyDefinition],
    existing: Option<&[ExistingColumn]>,
    acknowledged: &[String],
    recorded: &BTreeMap<String, String>,
    budget: ColumnBudget,
) -> SchemaPlan {
    let existing_names: Vec<&str> = existing.unwrap_or_default().iter().map(|c| c.name.as_str()).collect();
    let names: Vec<&str> = properties.iter().filter(|p| !p.archived).map(|p| p.name.as_str()).collect();
    let assignment = assign_columns(&names, recorded, &existing_names);
    let unmappable = assignment
        .unmappable
        .iter()
        .map(|(property, reason)| Change::Unmappable { property: property.clone(), reason: (*reason).to_owned() });
    let column_of = |p: &PropertyDefinition| assignment.columns.get(&p.name).cloned();
    let wanted: Vec<(&PropertyDefinition, String)> =
        ordered(properties).into_iter().filter_map(|p| column_of(p).map(|c| (p, c))).collect();
    let Some(existing) = existing else {
        let mut columns = TableSchema::hsync_columns();
        let mut overflow = Vec::new();
        for (p, name) in wanted {
            if columns.len() - TableSchema::hsync_columns().len() < budget.0 {
                columns.push(Column { name, property: Some(p.name.clone()), ty: column_type(p) });
            } else {
                overflow.push(p.name.clone());
            }
        }
        let schema = TableSchema { name: table.to_owned(), columns, overflow: overflow.clone(), retired: Vec::new() };
        let mut changes = vec![Change::CreateTable { schema: schema.clone() }];
        changes.extend(overflow.into_iter().map(|property| Change::Overflow { property }));
        changes.extend(unmappable);
        return SchemaPlan { table: table.to_owned(), changes, target: schema, assigned: assignment.new };
    };

    let mut changes = Vec::new();
    let mut columns: Vec<Column> = Vec::new();
    let find = |name: &str| existing.iter().find(|c| c.name == name);
    for hsync in TableSchema::hsync_columns() {
        match find(&hsync.name) {
            None => changes.push(Change::AddColumn { column: hsync.clone() }),
            Some(col) if col.ty != hsync.ty && !col.ty.holds(hsync.ty) => changes.push(Change::Incompatible {
                column: hsync.name.clone(),
                from: col.ty,
                to: hsync.ty,
                reason: "an hsync bookkeeping column has an unexpected type; restore it or recreate the table"
                    .to_owned(),
            }),
            Some(_) => {}
        }
        columns.push(hsync);
    }
    let hsync_count = columns.len();
    let property_columns_in_use =
        existing.iter().filter(|c| !TableSchema::hsync_columns().iter().any(|h| h.name == c.name)).count();
    let mut free = budget.0.saturating_sub(property_columns_in_use);
    let mut overflow = Vec::new();
    for (p, name) in wanted {
        let ty = column_type(p);
        match find(&name) {
            Some(col) => {
                let kept = if col.ty.holds(ty) {
                    col.ty
                } else if col.ty.widens_to(ty) {
                    changes.push(Change::Widen { column: name.clone(), from: col.ty, to: ty });
                    ty
                } else if col.ty.widens_to(ColumnType::Text) {
                    // The property changed to a type the column cannot hold: text holds both.
                    changes.push(Change::Widen { column: name.clone(), from: col.ty, to: ColumnType::Text });
                    ColumnType::Text
                } else {
                    changes.push(Change::Incompatible {
                        column: name.clone(),
                        from: col.ty,
                        to: ty,
                        reason: format!("property {} changed from {:?} to {:?}", p.name, col.ty, ty),
                    });
                    col.ty
                };
                columns.push(Column { name, property: Some(p.name.clone()), ty: kept });
            }
            None if free > 0 => {
                free -= 1;
                let column = Column { name, property: Some(p.name.clone()), ty };
                changes.push(Change::AddColumn { column: column.clone() });
                columns.push(column);
            }
            None => {
                overflow.push(p.name.clone());
                changes.push(Change::Overflow { property: p.name.clone() });
            }
        }
    }
    // Columns that no live property claims: reported once, kept in the table, never dropped,
    // and left out of batches so their historical values stay.
    let mut retired = Vec::new();
    for col in existing {
        let known = columns.iter().any(|c| c.name == col.name);
        if !known {
            let property = recorded
                .iter()
                .chain(&assignment.columns)
                .find(|(_, column)| **column == col.name)
                .map_or_else(|| col.name.clone(), |(p, _)| p.clone());
            if !acknowledged.contains(&col.name) {
                changes.push(Change::PropertyRemoved { column: col.name.clone(), property: property.clone() });
            }
            retired.push(col.name.clone());
        }
    }
    changes.extend(unmappable);
    debug_assert!(columns.len() >= hsync_count);
    SchemaPlan {
        table: table.to_owned(),
        changes,
        target: TableSchema { name: table.to_owned(), columns, overflow, retired },
        assigned: assignment.new,
    }
}

/// Adds the (re)creation of the table's live view to `plan` when the view would otherwise be
/// missing or not show the table's columns once the plan is applied: always when the plan
/// creates the table or changes its columns, else when `view` (the view's columns as the
/// destination describes them, `None` when it does not exist) differs from `existing` (the
/// table's columns). A plan with an incompatible change is refused as a whole, so it gets none.
pub fn plan_live_view(plan: &mut SchemaPlan, existing: Option<&[ExistingColumn]>, view: Option<&[ExistingColumn]>) {
    if plan.incompatible().next().is_some() || plan.live_view().is_some() {
        return;
    }
    let created = plan.changes.iter().any(|c| matches!(c, Change::CreateTable { .. }));
    let reason = if created {
        ViewReason::TableCreated
    } else if plan.alters() {
        ViewReason::ColumnsChanged
    } else {
        let Some(existing) = existing else { return };
        match view {
            None => ViewReason::Missing,
            Some(view) if !view.iter().map(|c| &c.name).eq(existing.iter().map(|c| &c.name)) => ViewReason::Stale,
            Some(_) => return,
        }
    };
    plan.changes.push(Change::ReplaceView { view: live_view_name(&plan.table), reason });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_and_unmappable_names_never_fail_the_table() {
        let props = [prop("id", "string"), prop("p_id", "string"), prop("", "string"), prop("DealName", "string")];
        let mut props = props.to_vec();
        props.push(prop("dealname", "number"));
        let plan = diff("t", &props, None, &[], &BTreeMap::new(), ColumnBudget::POSTGRES);
        let mut keys: Vec<String> = plan.target.columns.iter().map(|c| c.name.to_lowercase()).collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "no two columns collide, even case-folded");
        assert_eq!(n, TableSchema::hsync_columns().len() + 4);
        assert!(plan.changes.contains(&Change::Unmappable {
            property: String::new(),
            reason: super::super::naming::EMPTY_NAME.into()
        }));
        assert_eq!(plan.assigned.len(), 4);
        // Applied and recorded, the next diff is empty and assigns nothing new.
        let recorded: BTreeMap<String, String> = plan.assigned.iter().cloned().collect();
        let next = diff("t", &props, Some(&existing_of(&plan)), &[], &recorded, ColumnBudget::POSTGRES);
        assert!(next.is_empty() && next.assigned.is_empty(), "{:?}", next.changes);
    }

    fn prop(name: &str, kind: &str) -> PropertyDefinition {
        serde_json::from_value(serde_json::json!({ "name": name, "type": kind })).unwrap()
    }

    fn existing_of(plan: &SchemaPlan) -> Vec<ExistingColumn> {
        plan.target.columns.iter().map(|c| ExistingColumn { name: c.name.clone(), ty: c.ty }).collect()
    }

    #[test]
    fn new_table_is_created_with_hsync_and_property_columns() {
        let plan = diff(
            "contacts",
            &[prop("email", "string"), prop("amount", "number")],
            None,
            &[],
            &BTreeMap::new(),
            ColumnBudget::POSTGRES,
        );
        assert!(matches!(plan.changes[0], Change::CreateTable { .. }));
        assert_eq!(plan.target.columns[0].name, "id");
        assert_eq!(plan.target.column("amount").unwrap().ty, ColumnType::Decimal);
    }

    #[test]
    fn applying_a_plan_makes_the_next_diff_empty() {
        let props = vec![prop("email", "string"), prop("order", "number"), prop("closed", "bool")];
        let first = diff("t", &props, None, &[], &BTreeMap::new(), ColumnBudget::POSTGRES);
        let second = diff("t", &props, Some(&existing_of(&first)), &[], &BTreeMap::new(), ColumnBudget::POSTGRES);
        assert!(second.is_empty(), "{:?}", second.changes);
    }

    #[test]
    fn added_property_becomes_a_column_and_archived_one_is_reported_not_dropped() {
        let before = vec![prop("email", "string"), prop("legacy", "string")];
        let first = diff("t", &before, None, &[], &BTreeMap::new(), ColumnBudget::POSTGRES);
        let mut after = vec![prop("email", "string"), prop("new_one", "datetime")];
        let mut archived = prop("legacy", "string");
        archived.archived = true;
        after.push(archived);
        let plan = diff("t", &after, Some(&existing_of(&first)), &[], &BTreeMap::new(), ColumnBudget::POSTGRES);
        assert!(plan.changes.contains(&Change::AddColumn {
            column: Column { name: "new_one".into(), property: Some("new_one".into()), ty: ColumnType::Timestamp }
        }));
        assert!(plan.changes.contains(&Change::PropertyRemoved { column: "legacy".into(), property: "legacy".into() }));
        assert_eq!(plan.target.retired, ["legacy"], "kept in the table, left out of batches");
        assert!(plan.target.column("legacy").is_none());
        let acknowledged = plan.removed_columns();
        let next =
            diff("t", &after, Some(&existing_of(&plan)), &acknowledged, &BTreeMap::new(), ColumnBudget::POSTGRES);
        assert!(next.is_empty(), "reported once: {:?}", next.changes);
    }

    #[test]
    fn type_changes_widen_or_are_kept() {
        let first = diff(
            "t",
            &[prop("flag", "bool"), prop("when", "date"), prop("note", "string")],
            None,
            &[],
            &BTreeMap::new(),
            ColumnBudget::POSTGRES,
        );
        let plan = diff(
            "t",
            &[prop("flag", "string"), prop("when", "datetime"), prop("note", "number")],
            Some(&existing_of(&first)),
            &[],
            &BTreeMap::new(),
            ColumnBudget::POSTGRES,
        );
        assert!(plan.changes.contains(&Change::Widen {
            column: "flag".into(),
            from: ColumnType::Boolean,
            to: ColumnType::Text
        }));
        assert!(plan.changes.contains(&Change::Widen {
            column: "when".into(),
            from: ColumnType::Date,
            to: ColumnType::Timestamp
        }));
        assert_eq!(plan.target.column("note").unwrap().ty, ColumnType::Text, "text already holds numbers");
        assert_eq!(plan.incompatible().count(), 0);
    }

    #[test]
    fn beyond_the_column_budget_properties_overflow_deterministically() {
        let props: Vec<_> = (0..10).map(|i| prop(&format!("p{i:02}"), "string")).collect();
        let plan = diff("t", &props, None, &[], &BTreeMap::new(), ColumnBudget(6));
        assert_eq!(plan.target.overflow, ["p06", "p07", "p08", "p09"]);
        let again = diff("t", &props, Some(&existing_of(&plan)), &[], &BTreeMap::new(), ColumnBudget(6));
        assert_eq!(again.target.overflow, ["p06", "p07", "p08", "p09"]);
        assert!(again.changes.iter().all(|c| matches!(c, Change::Overflow { .. })));
    }

    #[test]
    fn the_live_view_follows_the_table_and_is_restored_when_missing_or_stale() {
        let props = [prop("email", "string")];
        let mut created = diff("contacts", &props, None, &[], &BTreeMap::new(), ColumnBudget::POSTGRES);
        plan_live_view(&mut created, None, None);
        assert_eq!(created.live_view(), Some(("contacts_live", ViewReason::TableCreated)));
        assert_eq!(
            created.changes.last(),
            Some(&Change::ReplaceView { view: "contacts_live".into(), reason: ViewReason::TableCreated }),
            "applied after the table's changes"
        );
        let table = existing_of(&created);

        let mut steady = diff("contacts", &props, Some(&table), &[], &BTreeMap::new(), ColumnBudget::POSTGRES);
        plan_live_view(&mut steady, Some(&table), Some(&table));
        assert!(steady.is_empty() && !steady.alters(), "{:?}", steady.changes);

        let mut missing = diff("contacts", &props, Some(&table), &[], &BTreeMap::new(), ColumnBudget::POSTGRES);
        plan_live_view(&mut missing, Some(&table), None);
        assert_eq!(missing.live_view(), Some(("contacts_live", ViewReason::Missing)));
        assert!(!missing.is_empty() && missing.alters(), "a missing view is drift the plan applies");

        let mut stale = diff("contacts", &props, Some(&table), &[], &BTreeMap::new(), ColumnBudget::POSTGRES);
        plan_live_view(&mut stale, Some(&table), Some(&table[..table.len() - 1]));
        assert_eq!(stale.live_view(), Some(("contacts_live", ViewReason::Stale)));

        let grown = [prop("email", "string"), prop("phone", "string")];
        let mut added = diff("contacts", &grown, Some(&table), &[], &BTreeMap::new(), ColumnBudget::POSTGRES);
        plan_live_view(&mut added, Some(&table), Some(&table));
        assert_eq!(added.live_view(), Some(("contacts_live", ViewReason::ColumnsChanged)));

        let mut refused = diff("contacts", &props, Some(&table), &[], &BTreeMap::new(), ColumnBudget::POSTGRES);
        refused.changes.push(Change::Incompatible {
            column: "email".into(),
            from: ColumnType::Text,
            to: ColumnType::Boolean,
            reason: "test".into(),
        });
        plan_live_view(&mut refused, Some(&table), None);
        assert_eq!(refused.live_view(), None, "an incompatible plan is not applied at all");
    }

    #[test]
    fn a_tampered_hsync_column_is_incompatible() {
        let first = diff("t", &[prop("email", "string")], None, &[], &BTreeMap::new(), ColumnBudget::POSTGRES);
        let mut existing = existing_of(&first);
        existing[1].ty = ColumnType::Boolean; // _hsync_cursor
        let plan =
            diff("t", &[prop("email", "string")], Some(&existing), &[], &BTreeMap::new(), ColumnBudget::POSTGRES);
        assert_eq!(plan.incompatible().count(), 1);
    }
}
