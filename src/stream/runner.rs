//! The runner: the one place that writes data and commits state, always in this order per
//! batch: fetch (by the stream) ─► diff schema ─► alter if needed ─► stage ─► merge with the
//! checkpoint. A crash between merge and commit cannot happen for SQLite and Postgres (they commit
//! the checkpoint in the merge's transaction); elsewhere the checkpoint is committed to the local
//! state store right after the merge, and a replayed batch is absorbed by the guarded merge.

use std::sync::Arc;

use crate::clock::Clock;
use crate::destination::{Destination, DimensionOutcome, Edge, EdgeOutcome, MergeOutcome, RowFlag};
use crate::hubspot::model::{CrmObject, PropertyDefinition};
use crate::hubspot::{HubSpotClient, ObjectRef};
use crate::schema::dimension::DimensionBatch;
use crate::schema::{
    build_batch, diff, live_view_name, plan_live_view, BuiltBatch, Change, Reject, SchemaPlan, TableSchema,
};
use crate::state::{stored_property_name, Checkpoint, ColumnMap, PropertySnapshot, StateStore};

use super::Error;

/// Which properties to sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PropertyFilter {
    /// When non-empty, only these (plus the id and cursor properties).
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl PropertyFilter {
    /// Whether property `name` is synced for a type whose cursor property is `cursor`.
    pub fn keeps(&self, name: &str, cursor: &str) -> bool {
        if name == "hs_object_id" || name == cursor {
            return true;
        }
        (self.include.is_empty() || self.include.iter().any(|i| i == name)) && !self.exclude.iter().any(|e| e == name)
    }
}

/// An object's table as the runner prepared it for this pass.
#[derive(Clone, Debug)]
pub struct PreparedTable {
    pub object: ObjectRef,
    pub schema: TableSchema,
    /// Property names to request (in the request body, never the URL).
    pub properties: Vec<String>,
    /// Properties that became columns in this preparation (existing rows need their values).
    pub added: Vec<String>,
    /// The properties HubSpot calculates, which can change without moving the record's
    /// last-modified time (see [`super::calculated`]).
    pub calculated: Vec<String>,
}

/// A schema plan with what applying it needs (see [`Runner::plan_schema`]).
#[derive(Clone, Debug)]
pub struct PlannedSchema {
    pub plan: SchemaPlan,
    /// The property definitions the plan was made from.
    pub properties: Vec<PropertyDefinition>,
    pub snapshot: PropertySnapshot,
    pub recorded: ColumnMap,
    /// Whether the table existed when planned.
    pub existed: bool,
}

/// Shared handles for every stream.
#[derive(Debug)]
pub struct Runner<D, S> {
    pub client: HubSpotClient,
    pub dest: D,
    pub state: S,
    pub clock: Arc<dyn Clock>,
    pub filter: PropertyFilter,
}

impl<D: Destination, S: StateStore> Runner<D, S> {
    /// Reads the object's property definitions, plans the drift and applies it (never drops;
    /// an incompatible change stops this object only).
    pub async fn prepare(&self, object: &ObjectRef) -> Result<PreparedTable, Error> {
        let planned = self.plan_schema(object).await?;
        self.apply_planned(object, planned).await
    }

    /// Applies a plan from [`Runner::plan_schema`] for `object` unless a change in it is
    /// incompatible (see [`Runner::prepare`]).
    pub async fn apply_planned(&self, object: &ObjectRef, planned: PlannedSchema) -> Result<PreparedTable, Error> {
        if let Some(Change::Incompatible { column, reason, .. }) = planned.plan.incompatible().next() {
            return Err(Error::Incompatible {
                table: object.table.clone(),
                column: column.clone(),
                reason: reason.clone(),
            });
        }
        let added: Vec<String> = if planned.existed {
            planned
                .plan
                .changes
                .iter()
                .filter_map(|c| match c {
                    Change::AddColumn { column } => column.property.clone(),
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        let names = planned.properties.iter().map(|p| p.name.clone()).collect();
        let calculated = super::calculated::refreshed_properties(object, &planned.properties);
        let schema = self.apply_schema(planned).await?;
        Ok(PreparedTable { object: object.clone(), schema, properties: names, added, calculated })
    }

    /// Reads the object's property definitions (as the property filter keeps them) and plans
    /// the drift against the table and the recorded column map, changing nothing.
    pub async fn plan_schema(&self, object: &ObjectRef) -> Result<PlannedSchema, Error> {
        let all: Vec<PropertyDefinition> = self.client.properties(&object.api_name, false).await?;
        let properties: Vec<PropertyDefinition> =
            all.into_iter().filter(|p| self.filter.keeps(&p.name, object.cursor_property)).collect();
        let existing = self.dest.describe(&object.table).await?;
        let snapshot = self.state.load_snapshot(&object.table).await?.unwrap_or_default();
        let recorded = self.state.load_column_map(&object.table).await?;
        let mut plan = diff(
            &object.table,
            &properties,
            existing.as_deref(),
            &snapshot.acknowledged_removed,
            &recorded.columns,
            self.dest.column_budget(),
        );
        if self.dest.has_views() {
            let view = match &existing {
                Some(_) => self.dest.describe(&live_view_name(&object.table)).await?,
                None => None,
            };
            plan_live_view(&mut plan, existing.as_deref(), view.as_deref());
        }
        Ok(PlannedSchema { plan, properties, snapshot, recorded, existed: existing.is_some() })
    }

    /// Applies a plan from [`Runner::plan_schema`]: records the columns it gives to properties
    /// (before altering, so a crash in between cannot give a property another column next
    /// time), records newly unmappable properties as rejects, alters the table and saves the
    /// property snapshot. Returns the table's layout.
    pub async fn apply_schema(&self, planned: PlannedSchema) -> Result<TableSchema, Error> {
        let PlannedSchema { plan, properties, snapshot, recorded, .. } = planned;
        let table = plan.table.clone();
        let mut new_entries = ColumnMap { columns: plan.assigned.iter().cloned().collect(), ..ColumnMap::default() };
        let mut rejects = Vec::new();
        for change in &plan.changes {
            let Change::Unmappable { property, reason } = change else { continue };
            tracing::warn!(table = %table, reason = %reason, "a property has no column and is skipped; see _hsync_rejects");
            let stored = stored_property_name(property).into_owned();
            if !recorded.unmappable.contains_key(&stored) {
                rejects.push(Reject {
                    object: table.clone(),
                    id: String::new(),
                    property: stored.clone(),
                    raw: stored.clone(),
                    reason: format!("{reason}; the property is skipped (rename it in HubSpot to sync it)"),
                });
                new_entries.unmappable.insert(stored, reason.clone());
            }
        }
        if !new_entries.columns.is_empty() || !new_entries.unmappable.is_empty() {
            self.state.record_column_map(&table, &new_entries).await?;
        }
        if !rejects.is_empty() {
            // Rejects outside a batch: a dimension replace of no tables writes just them.
            let now = self.clock.now().timestamp_millis();
            self.dest.replace_dimensions(&[], now, &rejects, None).await?;
        }
        if plan.alters() {
            self.dest.alter(&plan).await?;
            tracing::info!(table = %table, changes = plan.changes.len(), "applied schema plan");
        }
        let mut acknowledged = snapshot.acknowledged_removed;
        acknowledged.extend(plan.removed_columns());
        acknowledged.sort();
        acknowledged.dedup();
        // A NUL cannot be stored in the snapshot (Postgres jsonb refuses it); such a property has
        // no column anyway.
        let properties = properties.into_iter().filter(|p| !p.name.contains('\0')).collect();
        self.state
            .save_snapshot(&PropertySnapshot { object: table, properties, acknowledged_removed: acknowledged })
            .await?;
        Ok(plan.target)
    }

    /// Writes one batch and commits `checkpoint` with it.
    pub async fn write(
        &self,
        table: &PreparedTable,
        records: &[CrmObject],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<MergeOutcome, Error> {
        let built = self.build(table, records);
        self.stage_and_merge(table, built, checkpoint).await
    }

    /// [`Runner::write`] for records the caller no longer needs: they are freed once the batch
    /// is built, so a wide page is not held twice while it is staged.
    pub async fn write_owned(
        &self,
        table: &PreparedTable,
        records: Vec<CrmObject>,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<MergeOutcome, Error> {
        let built = self.build(table, &records);
        drop(records);
        self.stage_and_merge(table, built, checkpoint).await
    }

    fn build(&self, table: &PreparedTable, records: &[CrmObject]) -> BuiltBatch {
        let now = self.clock.now().timestamp_millis();
        let built = build_batch(&table.schema, &table.object.table, table.object.cursor_property, records, now);
        if !built.rejects.is_empty() {
            tracing::warn!(table = %table.object.table, rejects = built.rejects.len(), "values rejected; see _hsync_rejects");
        }
        built
    }

    async fn stage_and_merge(
        &self,
        table: &PreparedTable,
        built: BuiltBatch,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<MergeOutcome, Error> {
        let stage = self.dest.stage(&table.object.table, &built.batch).await?;
        drop(built.batch);
        let outcome = self.merge(stage, &built.rejects, checkpoint).await?;
        metrics::counter!("hsync_rows_merged_total", "object" => table.object.table.clone()).increment(outcome.written);
        Ok(outcome)
    }

    /// Writes the current association edges of `from_ids` (records of `from`) to `to`: new
    /// edges inserted, changed ones updated, vanished ones tombstoned (see
    /// [`Destination::merge_edges`]).
    pub async fn write_edges(
        &self,
        from: &ObjectRef,
        to: &ObjectRef,
        from_ids: &[i64],
        edges: &[Edge],
    ) -> Result<EdgeOutcome, Error> {
        let now = self.clock.now().timestamp_millis();
        let outcome = self.dest.merge_edges(&from.table, &to.table, from_ids, edges, now).await?;
        let pair = format!("{}:{}", from.table, to.table);
        metrics::counter!("hsync_edges_written_total", "pair" => pair.clone()).increment(outcome.upserted);
        metrics::counter!("hsync_edges_tombstoned_total", "pair" => pair).increment(outcome.tombstoned);
        Ok(outcome)
    }

    /// Replaces the dimension tables in `batches` with the complete lists they carry and commits
    /// `checkpoint` in the same transaction (see [`Destination::replace_dimensions`]).
    pub async fn write_dimensions(
        &self,
        batches: &[DimensionBatch],
        rejects: &[Reject],
        checkpoint: &Checkpoint,
    ) -> Result<Vec<DimensionOutcome>, Error> {
        let now = self.clock.now().timestamp_millis();
        if !rejects.is_empty() {
            tracing::warn!(rejects = rejects.len(), "dimension values rejected; see _hsync_rejects");
        }
        let in_destination = self.dest.holds_state();
        let outcomes =
            self.dest.replace_dimensions(batches, now, rejects, Some(checkpoint).filter(|_| in_destination)).await?;
        if !in_destination {
            self.commit(checkpoint).await?;
        }
        for o in &outcomes {
            metrics::gauge!("hsync_dimension_rows", "table" => o.table).set(o.rows as f64);
            metrics::counter!("hsync_dimension_rows_removed_total", "table" => o.table).increment(o.removed);
        }
        Ok(outcomes)
    }

    /// Commits a checkpoint that covers no new data (an empty page, a finished stream).
    pub async fn commit(&self, checkpoint: &Checkpoint) -> Result<bool, Error> {
        Ok(self.state.commit_checkpoint(checkpoint).await?)
    }

    /// Writes reconciliation flags (no cursor guard, the cursor untouched; see
    /// [`Destination::flag`]), then commits `checkpoint`: a crash between the two repeats the
    /// reconcile, which writes the same flags again harmlessly. Returns the rows changed.
    pub async fn write_flags(&self, table: &str, flags: &[RowFlag], checkpoint: &Checkpoint) -> Result<u64, Error> {
        let written = self.dest.flag(table, flags).await?;
        metrics::counter!("hsync_rows_flagged_total", "object" => table.to_owned()).increment(written);
        self.commit(checkpoint).await?;
        Ok(written)
    }

    /// Writes a batch carrying only some columns (flags, or a newly added property).
    pub async fn write_columns(
        &self,
        table: &PreparedTable,
        records: &[CrmObject],
        columns: &[&str],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<MergeOutcome, Error> {
        let now = self.clock.now().timestamp_millis();
        let built = build_batch(&table.schema, &table.object.table, table.object.cursor_property, records, now);
        let schema = built.batch.schema();
        let indices: Vec<usize> = columns.iter().filter_map(|c| schema.index_of(c).ok()).collect();
        let batch = built.batch.project(&indices).map_err(|e| Error::Bug(format!("projecting a batch: {e}")))?;
        let stage = self.dest.stage(&table.object.table, &batch).await?;
        self.merge(stage, &built.rejects, checkpoint).await
    }

    /// Merges a stage and commits `checkpoint`: in the merge's transaction when the destination
    /// holds the state, else right after the merge returns.
    async fn merge(
        &self,
        stage: crate::destination::Stage,
        rejects: &[Reject],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<MergeOutcome, Error> {
        if self.dest.holds_state() {
            return Ok(self.dest.merge(stage, rejects, checkpoint).await?);
        }
        let outcome = self.dest.merge(stage, rejects, None).await?;
        if let Some(checkpoint) = checkpoint {
            self.commit(checkpoint).await?;
        }
        Ok(outcome)
    }
}
