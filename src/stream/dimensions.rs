//! The owners and pipelines refresh: reads HubSpot's complete lists of owners (active and
//! archived) and of the pipelines, with their stages, of the object types that have them
//! (deals and tickets always, every synced catalogue type with pipelines such as leads, orders
//! and appointments, and every custom object that has some), and has the runner replace the dimension
//! tables with them in one transaction with the checkpoint. A row HubSpot no longer lists is
//! kept and flagged `_hsync_removed_at` (see [`crate::schema::dimension`]). The daemon calls
//! [`refresh`] on an interval; `hsync dimensions` runs it once.

use std::collections::BTreeMap;

use serde_json::Value;

use super::runner::Runner;
use super::state::DimensionsState;
use super::Error;
use crate::destination::Destination;
use crate::hubspot::model::{Owner, Pipeline};
use crate::hubspot::{catalogue, HubSpotClient, ObjectRef};
use crate::schema::dimension::{build_dimension_batch, OWNERS, PIPELINES, PIPELINE_STAGES};
use crate::state::StateStore;

/// What a refresh wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Rows HubSpot lists now, per table.
    pub owners: u64,
    pub pipelines: u64,
    pub stages: u64,
    /// Stored rows newly flagged as gone from HubSpot, over the three tables.
    pub removed: u64,
    /// Values that did not parse (NULL in their column, recorded in `_hsync_rejects`).
    pub rejects: u64,
}

impl Report {
    /// Rows written over the three tables.
    pub fn rows(&self) -> u64 {
        self.owners + self.pipelines + self.stages
    }
}

/// An object type whose pipelines are read: its table name and the name its paths use.
struct PipelineType {
    table: String,
    api_name: String,
    /// Standard types always have pipelines; a custom object may not.
    custom: bool,
}

/// Reads the complete lists and replaces the dimension tables with them, committing the
/// refresh's checkpoint in the same transaction.
/// `synced` are the configured objects: their types' pipelines are read besides deals' and
/// tickets'.
pub async fn refresh<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    synced: &[ObjectRef],
) -> Result<Report, Error> {
    let started_at_ms = runner.clock.now().timestamp_millis();
    let owners = read_owners(&runner.client).await?;
    let pipelines = read_pipelines(&runner.client, synced).await?;

    let (owners_batch, mut rejects) = build_dimension_batch(&OWNERS, &owner_rows(&owners));
    let (pipelines_batch, more) = build_dimension_batch(&PIPELINES, &pipeline_rows(&pipelines));
    rejects.extend(more);
    let (stages_batch, more) = build_dimension_batch(&PIPELINE_STAGES, &stage_rows(&pipelines));
    rejects.extend(more);

    let count = |b: &crate::schema::dimension::DimensionBatch| b.batch.num_rows() as i64;
    let (o, p, s) = (count(&owners_batch), count(&pipelines_batch), count(&stages_batch));
    let state = DimensionsState::Refreshed {
        started_at_ms,
        finished_at_ms: runner.clock.now().timestamp_millis(),
        rows: o + p + s,
        owners: o,
        pipelines: p,
        stages: s,
    };
    let outcomes =
        runner.write_dimensions(&[owners_batch, pipelines_batch, stages_batch], &rejects, &state.checkpoint()).await?;
    let rows_of = |table: &str| outcomes.iter().find(|o| o.table == table).map_or(0, |o| o.rows);
    let report = Report {
        owners: rows_of(OWNERS.name),
        pipelines: rows_of(PIPELINES.name),
        stages: rows_of(PIPELINE_STAGES.name),
        removed: outcomes.iter().map(|o| o.removed).sum(),
        rejects: rejects.len() as u64,
    };
    tracing::info!(
        owners = report.owners,
        pipelines = report.pipelines,
        stages = report.stages,
        removed = report.removed,
        "dimensions refreshed"
    );
    Ok(report)
}

/// Active and archived owners, one per id: an owner listed twice (archived or restored between
/// the two calls) keeps the version updated last, the archived list's on a tie.
async fn read_owners(client: &HubSpotClient) -> Result<Vec<Owner>, Error> {
    let mut by_id: BTreeMap<String, Owner> = BTreeMap::new();
    for archived in [false, true] {
        for owner in client.owners(archived).await? {
            let newer = by_id.get(&owner.id).is_none_or(|kept| {
                let instant = |o: &Owner| o.updated_at.as_deref().and_then(crate::schema::parse_instant_ms);
                instant(&owner) >= instant(kept)
            });
            if newer {
                by_id.insert(owner.id.clone(), owner);
            }
        }
    }
    Ok(by_id.into_values().collect())
}

/// The catalogue types whose pipelines are read: deals and tickets always (their stage ids fill
/// the deal and ticket tables whichever objects are synced), and the synced types with pipelines.
fn catalogue_pipeline_types(synced: &[ObjectRef]) -> Vec<&'static catalogue::ObjectType> {
    catalogue::CATALOGUE
        .iter()
        .filter(|t| t.pipelines)
        .filter(|t| matches!(t.name, "deals" | "tickets") || synced.iter().any(|o| o.table == t.name))
        .collect()
}

/// The pipelines of [`catalogue_pipeline_types`] and every custom object that has some, by
/// object type.
async fn read_pipelines(client: &HubSpotClient, synced: &[ObjectRef]) -> Result<Vec<(String, Pipeline)>, Error> {
    let mut types: Vec<PipelineType> = catalogue_pipeline_types(synced)
        .into_iter()
        .map(|t| PipelineType { table: t.name.to_owned(), api_name: t.name.to_owned(), custom: false })
        .collect();
    types.extend(client.schemas().await?.into_iter().filter(|s| !s.archived).map(|s| PipelineType {
        table: s.name,
        api_name: s.object_type_id,
        custom: true,
    }));
    let mut out = Vec::new();
    for t in types {
        match client.pipelines(&t.api_name).await {
            Ok(list) => out.extend(list.into_iter().map(|p| (t.table.clone(), p))),
            // A custom object without pipelines: HubSpot refuses the path for it.
            Err(crate::hubspot::Error::Rejected { status: 400, .. } | crate::hubspot::Error::NotFound { .. })
                if t.custom =>
            {
                tracing::debug!(object = %t.table, "no pipelines for this object type");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

fn text(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

/// Owner rows in the column order of [`OWNERS`].
fn owner_rows(owners: &[Owner]) -> Vec<Vec<Option<String>>> {
    owners
        .iter()
        .map(|o| {
            vec![
                text(&o.id),
                o.email.clone(),
                o.first_name.clone(),
                o.last_name.clone(),
                o.user_id.map(|v| v.to_string()),
                o.user_id_including_inactive.map(|v| v.to_string()),
                o.kind.clone(),
                serde_json::to_string(&o.teams).ok(),
                text(o.archived),
                o.created_at.clone(),
                o.updated_at.clone(),
            ]
        })
        .collect()
}

/// One row per `(object type, pipeline id)`, the last listed winning.
fn pipeline_rows(pipelines: &[(String, Pipeline)]) -> Vec<Vec<Option<String>>> {
    let rows: BTreeMap<(&str, &str), Vec<Option<String>>> = pipelines
        .iter()
        .map(|(object_type, p)| {
            let row = vec![
                text(object_type),
                text(&p.id),
                text(&p.label),
                text(p.display_order),
                text(p.archived),
                p.archived_at.clone(),
                p.created_at.clone(),
                p.updated_at.clone(),
            ];
            ((object_type.as_str(), p.id.as_str()), row)
        })
        .collect();
    rows.into_values().collect()
}

/// A metadata value as text (HubSpot sends strings; numbers and booleans are accepted).
fn metadata_text(metadata: &BTreeMap<String, Value>, key: &str) -> Option<String> {
    match metadata.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Whether a stage closes its record: `isClosed` when HubSpot gives it, else a ticket stage's
/// `ticketState`.
fn is_closed(metadata: &BTreeMap<String, Value>) -> Option<String> {
    metadata_text(metadata, "isClosed").or_else(|| match metadata_text(metadata, "ticketState")?.as_str() {
        "CLOSED" => text(true),
        "OPEN" => text(false),
        _ => None,
    })
}

/// One row per `(object type, pipeline id, stage id)`, the last listed winning.
fn stage_rows(pipelines: &[(String, Pipeline)]) -> Vec<Vec<Option<String>>> {
    let rows: BTreeMap<(&str, &str, &str), Vec<Option<String>>> = pipelines
        .iter()
        .flat_map(|(object_type, p)| p.stages.iter().map(move |s| (object_type, p, s)))
        .map(|(object_type, p, s)| {
            let row = vec![
                text(object_type),
                text(&p.id),
                text(&s.id),
                text(&s.label),
                text(s.display_order),
                text(s.archived),
                metadata_text(&s.metadata, "probability"),
                is_closed(&s.metadata),
                serde_json::to_string(&s.metadata).ok(),
                s.archived_at.clone(),
                s.created_at.clone(),
                s.updated_at.clone(),
            ];
            ((object_type.as_str(), p.id.as_str(), s.id.as_str()), row)
        })
        .collect();
    rows.into_values().collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pipelines_of_deals_tickets_and_the_synced_types_that_have_them() {
        let synced: Vec<ObjectRef> = ["contacts", "leads", "orders", "calls"]
            .iter()
            .map(|n| ObjectRef::of(catalogue::find(n).unwrap()))
            .collect();
        let names: Vec<&str> = catalogue_pipeline_types(&synced).iter().map(|t| t.name).collect();
        assert_eq!(names, ["deals", "tickets", "orders", "leads"]);
    }

    fn metadata(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_stage_is_closed_by_is_closed_else_by_its_ticket_state() {
        assert_eq!(is_closed(&metadata(json!({"isClosed": "true", "probability": "1.0"}))), text(true));
        assert_eq!(is_closed(&metadata(json!({"isClosed": false}))), text(false));
        assert_eq!(is_closed(&metadata(json!({"ticketState": "CLOSED"}))), text(true));
        assert_eq!(is_closed(&metadata(json!({"ticketState": "OPEN"}))), text(false));
        assert_eq!(is_closed(&metadata(json!({"ticketState": "LIMBO"}))), None);
        assert_eq!(is_closed(&metadata(json!({}))), None);
    }

    #[test]
    fn stage_rows_follow_the_layout_and_keep_one_row_per_key() {
        let pipeline: Pipeline = serde_json::from_value(json!({
            "id": "default", "label": "Sales", "displayOrder": 0,
            "stages": [
                {"id": "won", "label": "Won", "displayOrder": 5, "metadata": {"probability": 0.9, "isClosed": "true"}},
                {"id": "won", "label": "Won again", "displayOrder": 6, "metadata": {}},
            ]
        }))
        .unwrap();
        let rows = stage_rows(&[("deals".to_owned(), pipeline.clone()), ("tickets".to_owned(), pipeline)]);
        assert_eq!(rows.len(), 2, "one per object type, the later duplicate winning");
        for row in &rows {
            assert_eq!(row.len(), PIPELINE_STAGES.columns.len());
            assert_eq!(row[3].as_deref(), Some("Won again"));
        }
        let (_, rejects) = build_dimension_batch(&PIPELINE_STAGES, &rows);
        assert!(rejects.is_empty(), "{rejects:?}");
    }
}
