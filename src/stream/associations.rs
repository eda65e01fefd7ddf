//! The associations stream: keeps the warehouse's `associations` edge table equal to the edges
//! HubSpot holds between the configured objects. It owns which object pairs are synced, which
//! records' edges are read on each pass, and the `associations:<object>` checkpoints; the
//! runner writes the edges ([`Runner::write_edges`]) and the destination diffs them
//! ([`crate::destination::Destination::merge_edges`]).
//!
//! # Which pairs, stored from which side
//! Every association exists in HubSpot in both directions (contact → company with type 279,
//! company → contact with 280). hsync stores each pair **from one side only**: the object that
//! comes first in `sync.objects` (`contacts, companies` gives contacts → companies, never also
//! companies → contacts). Reading both directions would cost twice the API calls for the same
//! facts; a reader who wants the other direction swaps the columns (the table is indexed on
//! `(to_type, to_id)` for that). The type ids, categories and labels are those of the stored
//! direction. A pair is synced when HubSpot defines at least one association type for it (the
//! v4 labels endpoint, one call per pair per pass); a type paired with itself (company parent
//! and child) is stored with both directions, as HubSpot lists them.
//!
//! # What a pass reads
//! Changing an association does not move either record's last-modified cursor, so CDC cannot
//! see it. Two passes cover it:
//! - **Incremental** ([`poll_changes`]): for each pair `from → to`, reads (v4 batch read, 1,000
//!   ids per call, each input's own paging followed) the edges of the `from` records modified
//!   since the last poll, plus the `from` records at the far end of the `to` records modified
//!   since then (found through HubSpot's reverse read and through the stored edges, so a new
//!   deal's contacts and an edge a changed record lost are both seen). "Modified since" is
//!   `_hsync_cursor >= watermark - settle lag` in the warehouse; the watermark is the point up
//!   to which CDC (or the backfill) has put every record in the warehouse, so a record CDC
//!   writes late is still polled next time. The first pass of a stream is a full sweep, and so
//!   is the first pass of a pair whose target joined `sync.objects` after the watermark began
//!   (the checkpoint lists the targets it covers).
//! - **Full sweep** ([`sweep_all`], slower schedule): reads the edges of every live record of
//!   `from`, and of every record that still has live edges stored (an archived, merged or
//!   deleted record: HubSpot lists none for it, so its edges get tombstoned once). It catches
//!   changes on records whose cursor never moved.
//!
//! Each batch of 1,000 records is written with `merge_edges`: new edges inserted, changed
//! labels and categories updated, vanished edges tombstoned (never deleted), tombstoned edges
//! that reappear revived. Replaying a pass changes nothing, so a crash costs at most a re-read;
//! the watermark is committed only after every pair of the object was read.
//!
//! Around the edges it reads, a pass re-reads the calculated properties of the records at both
//! ends ([`Around`], [`super::calculated`]): after every batch of an incremental poll, and
//! after the batches of a sweep whose stored edges changed. A sweep interrupted between a
//! batch's merge and that re-read finds the edges unchanged when it runs again, so those
//! records wait for the next calculated-property sweep. The targets re-read include those of
//! the edges stored before the batch (read from the warehouse first): an association that
//! disappeared, or a record archived, merged or deleted, changes the rollups at its far end.
//! A re-read that fails for a reason retrying cannot fix (a data-class error) is logged and
//! left to that sweep; the edges are written and the pass goes on.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::runner::{PreparedTable, Runner};
use super::state::AssociationsState;
use super::Error;
use crate::destination::{Destination, Edge, EdgeEnd};
use crate::error::{Classify, ErrorClass};
use crate::hubspot::model::AssociationTarget;
use crate::hubspot::{HubSpotClient, ObjectRef, ASSOCIATION_BATCH_MAX};
use crate::state::StateStore;
use crate::state::StreamId;

/// One object pair whose edges are stored from `from`'s side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub from: ObjectRef,
    pub to: ObjectRef,
}

/// The pairs stored from one object's side: one association stream, one checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub from: ObjectRef,
    pub targets: Vec<ObjectRef>,
}

/// What reading one pair did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PairReport {
    pub from: String,
    pub to: String,
    /// Records whose associations were read.
    pub records: u64,
    /// Edges (one per association type) HubSpot listed for them.
    pub edges: u64,
    /// Edges inserted, relabelled or revived.
    pub upserted: u64,
    /// Edges found gone and tombstoned.
    pub tombstoned: u64,
    /// Rows whose calculated properties were re-read around the edges (see
    /// [`super::calculated`]).
    pub refreshed: u64,
    /// Whether every record of `from` was read (a sweep), not only changed ones.
    pub swept: bool,
    /// False when a shutdown stopped the read before the end.
    pub finished: bool,
}

/// What a pass over one source did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub pairs: Vec<PairReport>,
    /// Whether the pass was a full sweep of every pair (see [`PairReport::swept`] per pair).
    pub swept: bool,
    /// False when a shutdown stopped it (nothing committed; the next pass reads it again).
    pub finished: bool,
    /// The watermark committed (the previous one when not finished).
    pub watermark_ms: i64,
}

/// The candidate pairs among `objects`, canonical by their order: `(i, j)` for `i <= j`, each
/// object once (a repeated name counts at its first place).
pub fn candidate_pairs(objects: &[ObjectRef]) -> Vec<Pair> {
    let mut unique: Vec<&ObjectRef> = Vec::new();
    for object in objects {
        if !unique.iter().any(|o| o.table == object.table) {
            unique.push(object);
        }
    }
    let mut pairs = Vec::new();
    for (i, from) in unique.iter().enumerate() {
        for to in &unique[i..] {
            pairs.push(Pair { from: (*from).clone(), to: (*to).clone() });
        }
    }
    pairs
}

/// The candidate pairs HubSpot defines an association type for (see the module docs). A pair
/// whose types the token may not read (a scope of one of its objects is missing) is left out
/// with a warning, so the other pairs go on; that object's own streams fail and say which
/// scope it needs.
pub async fn defined_pairs(client: &HubSpotClient, objects: &[ObjectRef]) -> Result<Vec<Pair>, Error> {
    let mut out = Vec::new();
    for pair in candidate_pairs(objects) {
        match client.association_types(&pair.from.api_name, &pair.to.api_name).await {
            Ok(types) if types.is_empty() => {}
            Ok(_) => out.push(pair),
            Err(e @ crate::hubspot::Error::MissingScopes { .. }) => {
                tracing::warn!(from = %pair.from.table, to = %pair.to.table, error = %e, "association pair left out: the token may not read it");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Groups pairs by the object they are stored from, in order.
pub fn sources(pairs: &[Pair]) -> Vec<Source> {
    let mut out: Vec<Source> = Vec::new();
    for pair in pairs {
        match out.iter_mut().find(|s| s.from.table == pair.from.table) {
            Some(source) => source.targets.push(pair.to.clone()),
            None => out.push(Source { from: pair.from.clone(), targets: vec![pair.to.clone()] }),
        }
    }
    out
}

/// Turns a batch read into edges of `from_ids`. Entries that do not fit (an id outside the
/// batch, a non-numeric id, a type id out of range) are left out and counted.
pub fn edges_of(from_ids: &[i64], read: HashMap<String, Vec<AssociationTarget>>) -> (Vec<Edge>, u64) {
    let wanted: HashSet<i64> = from_ids.iter().copied().collect();
    let mut edges = Vec::new();
    let mut skipped = 0;
    for (id, targets) in read {
        let Some(from_id) = id.parse::<i64>().ok().filter(|id| wanted.contains(id)) else {
            skipped += targets.iter().map(|t| t.association_types.len() as u64).sum::<u64>();
            continue;
        };
        for target in targets {
            let Ok(to_id) = target.to_object_id.parse::<i64>() else {
                skipped += target.association_types.len() as u64;
                continue;
            };
            for kind in target.association_types {
                let Ok(type_id) = i32::try_from(kind.type_id) else {
                    skipped += 1;
                    continue;
                };
                edges.push(Edge { from_id, to_id, type_id, category: kind.category, label: kind.label });
            }
        }
    }
    (edges, skipped)
}

/// The prepared tables of a source's objects, whose calculated properties (rollups such as
/// `num_associated_deals`) the pass re-reads around the edges it reads: for every batch of an
/// incremental poll (its records changed), and for the batches of a sweep whose stored edges
/// changed. Empty: no re-read.
#[derive(Clone, Copy, Debug)]
pub struct Around<'a> {
    pub tables: &'a [PreparedTable],
    /// Re-read around every batch, not only those whose edges changed.
    pub every_batch: bool,
}

impl Around<'_> {
    /// No re-read around the edges.
    pub const NONE: Around<'static> = Around { tables: &[], every_batch: false };

    fn table(&self, name: &str) -> Option<&PreparedTable> {
        self.tables.iter().find(|t| t.object.table == name)
    }
}

/// Re-reads the calculated properties of both ends of one batch's edges (see [`Around`]): the
/// edges HubSpot lists now and those stored before the batch was written (an edge that
/// disappeared changed its target's rollups too).
async fn refresh_around<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    around: Around<'_>,
    from: &ObjectRef,
    to: &ObjectRef,
    from_ids: &[i64],
    edges: &[Edge],
    stored_targets: Vec<i64>,
) -> Result<u64, Error> {
    let mut ends: Vec<(&str, BTreeSet<i64>)> = vec![(&from.table, from_ids.iter().copied().collect())];
    let mut targets: BTreeSet<i64> = edges.iter().map(|e| e.to_id).collect();
    targets.extend(stored_targets);
    if to.table == from.table {
        ends[0].1.extend(targets);
    } else {
        ends.push((&to.table, targets));
    }
    let mut rows = 0;
    for (name, ids) in ends {
        let Some(table) = around.table(name) else { continue };
        match super::calculated::refresh_records(runner, table, &ids).await {
            Ok(written) => rows += written,
            // The edges are this pass's data: a re-read HubSpot's answer cannot serve (an
            // unreadable body, a value the table cannot take) is left to the calculated sweep,
            // which reports it as its own stream's error, instead of holding every edge back.
            // Anything retrying may fix (limits, outages) fails the pass, which repeats.
            Err(e) if e.class() == ErrorClass::Data => {
                tracing::warn!(table = %name, records = ids.len(), error = %e, "calculated properties around changed edges could not be re-read; the calculated sweep will");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(rows)
}

/// Reads the associations of `ids` (records of `from`) to `to`, 1,000 ids per call, and writes
/// them: the stored edges of those records become exactly what HubSpot lists. The calculated
/// properties around them are re-read as `around` says.
pub async fn poll<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    from: &ObjectRef,
    to: &ObjectRef,
    ids: &[String],
    around: Around<'_>,
) -> Result<PairReport, Error> {
    let mut report =
        PairReport { from: from.table.clone(), to: to.table.clone(), finished: true, ..PairReport::default() };
    for chunk in ids.chunks(ASSOCIATION_BATCH_MAX) {
        let from_ids: Vec<i64> = chunk.iter().filter_map(|id| id.parse().ok()).collect();
        if from_ids.len() != chunk.len() {
            tracing::warn!(from = %from.table, skipped = chunk.len() - from_ids.len(), "ids that are not numeric were not read");
        }
        let read = runner.client.associations(&from.api_name, &to.api_name, chunk).await?;
        let (edges, skipped) = edges_of(&from_ids, read);
        if skipped > 0 {
            tracing::warn!(from = %from.table, to = %to.table, skipped, "association entries HubSpot sent in an unexpected form were not stored");
        }
        // The targets stored before the write: those of edges about to be tombstoned are
        // listed nowhere else.
        let stored_targets = match around.table(&to.table) {
            Some(_) => runner.dest.edge_ends(&from.table, &to.table, EdgeEnd::To, Some(&from_ids)).await?,
            None => Vec::new(),
        };
        let outcome = runner.write_edges(from, to, &from_ids, &edges).await?;
        if around.every_batch || outcome.upserted + outcome.tombstoned > 0 {
            report.refreshed += refresh_around(runner, around, from, to, &from_ids, &edges, stored_targets).await?;
        }
        report.records += from_ids.len() as u64;
        report.edges += edges.len() as u64;
        report.upserted += outcome.upserted;
        report.tombstoned += outcome.tombstoned;
    }
    Ok(report)
}

fn target_names(source: &Source) -> Vec<String> {
    source.targets.iter().map(|t| t.table.clone()).collect()
}

fn as_strings(ids: impl IntoIterator<Item = i64>) -> Vec<String> {
    ids.into_iter().map(|id| id.to_string()).collect()
}

/// Reads the associations to `to` of every live record of `from` in the warehouse, and of
/// every record that still has live edges stored, in batches of 1,000 (stops between batches
/// when `shutdown` fires).
pub async fn sweep<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    from: &ObjectRef,
    to: &ObjectRef,
    around: Around<'_>,
    shutdown: &CancellationToken,
) -> Result<PairReport, Error> {
    let mut ids: BTreeSet<i64> = runner.dest.live_ids(&from.table).await?.into_iter().collect();
    ids.extend(runner.dest.edge_ends(&from.table, &to.table, EdgeEnd::From, None).await?);
    let ids = as_strings(ids);
    let mut report =
        PairReport { from: from.table.clone(), to: to.table.clone(), swept: true, ..PairReport::default() };
    for chunk in ids.chunks(ASSOCIATION_BATCH_MAX) {
        if shutdown.is_cancelled() {
            return Ok(report);
        }
        let part = poll(runner, from, to, chunk, Around { every_batch: false, ..around }).await?;
        report.records += part.records;
        report.edges += part.edges;
        report.upserted += part.upserted;
        report.tombstoned += part.tombstoned;
        report.refreshed += part.refreshed;
    }
    report.finished = true;
    tracing::info!(
        from = %from.table, to = %to.table, records = report.records, upserted = report.upserted,
        tombstoned = report.tombstoned, "association sweep finished"
    );
    Ok(report)
}

/// The source restricted to the targets whose records are in the warehouse (their backfill
/// finished), and the earliest of [`super::state::settled_through`] over the source and those targets. A pair
/// whose target is not backfilled (its backfill failed, say for a scope the token lacks, or has
/// not run) waits with a warning and the other pairs go on; the checkpoint then does not list
/// that target, so the pair is swept in full once it is ready.
async fn ready<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    source: &Source,
    settle_ms: i64,
) -> Result<(Source, i64), Error> {
    let mut settled = super::state::settled_through(&runner.state, &source.from.table, settle_ms).await?;
    let mut targets = Vec::new();
    for to in &source.targets {
        match super::state::settled_through(&runner.state, &to.table, settle_ms).await {
            Ok(at) => {
                settled = settled.min(at);
                targets.push(to.clone());
            }
            Err(Error::Precondition(why)) => {
                tracing::warn!(from = %source.from.table, to = %to.table, reason = %why, "association pair waits for its target's backfill");
            }
            Err(e) => return Err(e),
        }
    }
    Ok((Source { from: source.from.clone(), targets }, settled))
}

async fn load_state<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &str,
) -> Result<Option<AssociationsState>, Error> {
    super::state::load::<AssociationsState>(&runner.state, &StreamId::associations(table)).await
}

/// Sweeps every pair of `source` (see [`sweep`]) and, when all finished, commits the stream's
/// checkpoint: the watermark moves up to where the warehouse was complete when the sweep began.
pub async fn sweep_all<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    source: &Source,
    settle_lag: Duration,
    around: Around<'_>,
    shutdown: &CancellationToken,
) -> Result<Report, Error> {
    let settle_ms = settle_lag.as_millis() as i64;
    let previous = load_state(runner, &source.from.table).await?;
    let started_ms = runner.clock.now().timestamp_millis();
    // Read before any id: every record modified before it is in the warehouse now.
    let (source, settled) = ready(runner, source, settle_ms).await?;
    let source = &source;
    let mut report =
        Report { swept: true, watermark_ms: previous.as_ref().map_or(0, |p| p.watermark_ms()), ..Report::default() };
    for to in &source.targets {
        let pair = sweep(runner, &source.from, to, around, shutdown).await?;
        let finished = pair.finished;
        report.pairs.push(pair);
        if !finished {
            tracing::info!(from = %source.from.table, "association sweep stopped; the next pass starts it again");
            return Ok(report);
        }
    }
    let (watermark_ms, last_poll_ms) = match previous {
        Some(AssociationsState::Polling { watermark_ms, last_poll_ms, .. }) => {
            (watermark_ms.max(settled), last_poll_ms)
        }
        None => (settled, None),
    };
    let state = AssociationsState::Polling {
        watermark_ms,
        last_poll_ms,
        last_sweep_ms: Some(started_ms),
        targets: target_names(source),
    };
    runner.commit(&state.checkpoint(&source.from.table)).await?;
    report.watermark_ms = watermark_ms;
    report.finished = true;
    Ok(report)
}

/// One incremental pass over every pair of `source` (see the module docs); the first pass of
/// a stream is a full sweep.
pub async fn poll_changes<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    source: &Source,
    settle_lag: Duration,
    around: Around<'_>,
    shutdown: &CancellationToken,
) -> Result<Report, Error> {
    let Some(AssociationsState::Polling { watermark_ms, last_sweep_ms, targets: covered, .. }) =
        load_state(runner, &source.from.table).await?
    else {
        tracing::info!(from = %source.from.table, "associations never read: sweeping every record first");
        return sweep_all(runner, source, settle_lag, around, shutdown).await;
    };
    let settle_ms = settle_lag.as_millis() as i64;
    // Read before any id: every record modified before it is in the warehouse now.
    let (source, settled) = ready(runner, source, settle_ms).await?;
    let source = &source;
    let since = watermark_ms - settle_ms;
    let from = &source.from;
    let changed_from = runner.dest.ids_modified_since(&from.table, since).await?;
    let mut report = Report { watermark_ms, ..Report::default() };
    for to in &source.targets {
        if shutdown.is_cancelled() {
            return Ok(report);
        }
        if !covered.contains(&to.table) {
            // A pair the watermark does not cover yet (its target was added to sync.objects).
            tracing::info!(from = %from.table, to = %to.table, "new association pair: sweeping every record first");
            let pair = sweep(runner, from, to, around, shutdown).await?;
            let finished = pair.finished;
            report.pairs.push(pair);
            if !finished {
                return Ok(report);
            }
            continue;
        }
        let mut ids: BTreeSet<i64> = changed_from.iter().copied().collect();
        let changed_to = if to.table == from.table {
            changed_from.clone()
        } else {
            runner.dest.ids_modified_since(&to.table, since).await?
        };
        if !changed_to.is_empty() {
            // The edges of a changed `to` record are stored under the `from` records at their
            // other end: those HubSpot lists now, and those stored edges point from.
            for chunk in as_strings(changed_to.iter().copied()).chunks(ASSOCIATION_BATCH_MAX) {
                let back = runner.client.associations(&to.api_name, &from.api_name, chunk).await?;
                ids.extend(back.values().flatten().filter_map(|t| t.to_object_id.parse::<i64>().ok()));
            }
            ids.extend(runner.dest.edge_ends(&from.table, &to.table, EdgeEnd::From, Some(&changed_to)).await?);
        }
        report.pairs.push(poll(runner, from, to, &as_strings(ids), Around { every_batch: true, ..around }).await?);
    }
    let now = runner.clock.now().timestamp_millis();
    let watermark_ms = watermark_ms.max(settled);
    let state = AssociationsState::Polling {
        watermark_ms,
        last_poll_ms: Some(now),
        last_sweep_ms,
        targets: target_names(source),
    };
    runner.commit(&state.checkpoint(&from.table)).await?;
    report.watermark_ms = watermark_ms;
    report.finished = true;
    tracing::info!(
        from = %from.table,
        records = report.pairs.iter().map(|p| p.records).sum::<u64>(),
        upserted = report.pairs.iter().map(|p| p.upserted).sum::<u64>(),
        tombstoned = report.pairs.iter().map(|p| p.tombstoned).sum::<u64>(),
        "association poll finished"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str) -> ObjectRef {
        ObjectRef::of(crate::hubspot::catalogue::find(name).expect("a catalogue type"))
    }

    fn names(pairs: &[Pair]) -> Vec<(String, String)> {
        pairs.iter().map(|p| (p.from.table.clone(), p.to.table.clone())).collect()
    }

    #[test]
    fn pairs_are_canonical_by_the_configured_order() {
        let objects = [object("contacts"), object("companies"), object("deals")];
        let pairs = candidate_pairs(&objects);
        let expected = [
            ("contacts", "contacts"),
            ("contacts", "companies"),
            ("contacts", "deals"),
            ("companies", "companies"),
            ("companies", "deals"),
            ("deals", "deals"),
        ];
        assert_eq!(names(&pairs), expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
        let reversed = [object("deals"), object("companies"), object("contacts"), object("deals")];
        let pairs = candidate_pairs(&reversed);
        assert!(names(&pairs).contains(&("deals".to_owned(), "contacts".to_owned())));
        assert!(!names(&pairs).contains(&("contacts".to_owned(), "deals".to_owned())), "one side only");
        assert_eq!(pairs.len(), 6, "a repeated object counts once");
    }

    #[test]
    fn sources_group_pairs_by_their_first_object() {
        let pairs = candidate_pairs(&[object("contacts"), object("companies")]);
        let grouped = sources(&pairs);
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped[0].from.table, "contacts");
        assert_eq!(grouped[0].targets.iter().map(|t| t.table.as_str()).collect::<Vec<_>>(), ["contacts", "companies"]);
        assert_eq!(grouped[1].targets.iter().map(|t| t.table.as_str()).collect::<Vec<_>>(), ["companies"]);
    }

    #[test]
    fn a_batch_read_becomes_one_edge_per_type() {
        let target = |json: serde_json::Value| -> AssociationTarget { serde_json::from_value(json).unwrap() };
        let read = HashMap::from([
            (
                "1".to_owned(),
                vec![
                    target(serde_json::json!({"toObjectId": 5_790_939_450_i64, "associationTypes": [
                        {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": null},
                        {"category": "USER_DEFINED", "typeId": 28, "label": "Billing contact"}]})),
                    target(serde_json::json!({"toObjectId": "not a number", "associationTypes": [
                        {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": null}]})),
                ],
            ),
            ("2".to_owned(), vec![]),
            (
                "99".to_owned(),
                vec![target(serde_json::json!({"toObjectId": 7, "associationTypes": [
                    {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": null}]}))],
            ),
        ]);
        let (mut edges, skipped) = edges_of(&[1, 2], read);
        edges.sort_by_key(|e| e.type_id);
        assert_eq!(skipped, 2, "the non-numeric target and the id outside the batch");
        assert_eq!(
            edges,
            [
                Edge {
                    from_id: 1,
                    to_id: 5_790_939_450,
                    type_id: 28,
                    category: "USER_DEFINED".into(),
                    label: Some("Billing contact".into())
                },
                Edge {
                    from_id: 1,
                    to_id: 5_790_939_450,
                    type_id: 279,
                    category: "HUBSPOT_DEFINED".into(),
                    label: None
                },
            ]
        );
    }
}
