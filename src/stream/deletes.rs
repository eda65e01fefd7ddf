//! Deletes and merges reconciliation for one object: finds the records HubSpot no longer holds
//! as live and flags their rows, and un-flags rows whose records are live again. It owns the
//! reading (three sources), the decision for every id (a pure function, [`plan`]) and the
//! `deletes:<table>` checkpoint; the runner writes the flags with it (`Runner::write_flags`).
//!
//! # Sources
//! 1. **Archived** records: the whole `archived=true` list (100 per page, properties id, cursor
//!    and `hs_merged_object_ids`). Each is flagged `_hsync_archived_at = archivedAt`; an id the
//!    warehouse never held gets a row carrying only its id and flags.
//! 2. **Merges**: every survivor's `hs_merged_object_ids` (semicolon-separated), read from the
//!    live sweep below and the archived list, so the values are HubSpot's current ones and not
//!    the warehouse's (which may be behind, or the property excluded from sync). Each absorbed
//!    id is flagged `_hsync_merged_into = survivor`; chains (A into B, then B into C) resolve
//!    to the last survivor.
//! 3. **Live ids**: an id-only keyset search (`hs_object_id > last`, sorted by it, 200 per
//!    page), as the backfill walks (for a type without search, the list of ids, 100 per page). A warehouse id that is none of live, archived or merged is
//!    a deletion candidate. Search is an eventually consistent index, so candidates are
//!    confirmed with batch reads, which read the records themselves: found live means live,
//!    found archived means archived, and only ids missing from both are flagged
//!    `_hsync_deleted_at = now` (hard deletes: GDPR, or the recycle bin's 90 days passing).
//!
//! # Decisions
//! - Archived beats live (the list reads the records; search may not have caught up), live
//!   beats merged (a record HubSpot serves is never hidden), and an id already flagged
//!   deleted or merged stays so unless HubSpot serves it again.
//! - A row whose record is live is un-flagged (a restore; CDC's full-row merge clears the
//!   flags too, since a live record's batch carries them as NULL).
//! - An archived flag carries the cursor of the archived version it was read from; the
//!   destination applies it only to a row that is not newer, so a record restored (and merged
//!   by CDC) while the reconcile ran keeps its live row.
//! - Flags bypass the merge's cursor guard and never move `_hsync_cursor`; only rows whose
//!   flags change are sent, so a second reconcile with nothing new writes nothing.
//!
//! A reconcile reads everything before it writes, so a stop (shutdown, crash) writes nothing
//! and the next run starts over; the checkpoint records when the last complete run started.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio_util::sync::CancellationToken;

use super::listing;
use super::runner::{PreparedTable, Runner};
use super::state::DeletesState;
use super::{record_cursor_ms, Error};
use crate::destination::{Destination, IdFlags, RowFlag};
use crate::hubspot::model::CrmObject;
use crate::hubspot::{Direction, Filter, FilterGroup, ListParams, Operator, ReadPath, SearchRequest};
use crate::schema::parse_instant_ms;
use crate::state::StateStore;

/// Archived list page size: HubSpot's list maximum.
pub const LIST_PAGE: u32 = 100;
/// Live id sweep page size: HubSpot's search maximum.
pub const SWEEP_PAGE: u32 = 200;
/// The survivor's list of absorbed ids.
pub const MERGED_IDS: &str = "hs_merged_object_ids";
const ID_PROPERTY: &str = "hs_object_id";

/// An archived record as the list showed it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Archived {
    /// `archivedAt`, when HubSpot sent a readable one.
    pub archived_at_ms: Option<i64>,
    /// The record's last-modified time (archiving does not change it).
    pub cursor_ms: Option<i64>,
}

/// What HubSpot holds for one object type, as a reconcile read it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Ids HubSpot serves as live.
    pub live: BTreeSet<i64>,
    /// Records in the recycle bin.
    pub archived: BTreeMap<i64, Archived>,
    /// Absorbed id to survivor, as the survivors list them (chains not yet resolved).
    pub merged: BTreeMap<i64, i64>,
    /// Ids confirmed gone from HubSpot: neither live nor archived when read by id.
    pub gone: BTreeSet<i64>,
}

impl Observed {
    /// Records a survivor's absorbed ids.
    pub(crate) fn add_merges(&mut self, survivor: i64, rec: &CrmObject) {
        let Some(Some(list)) = rec.properties.get(MERGED_IDS) else { return };
        for absorbed in list.split(';').filter_map(|s| s.trim().parse::<i64>().ok()) {
            if absorbed != survivor {
                self.merged.insert(absorbed, survivor);
            }
        }
    }

    /// Absorbed id to its final survivor: chains followed to the end (a survivor that was
    /// itself absorbed hands its ids on), ids HubSpot serves as live or archived left out.
    pub fn merges(&self) -> BTreeMap<i64, i64> {
        self.merged
            .iter()
            .filter(|(id, _)| !self.live.contains(id) && !self.archived.contains_key(id))
            .filter_map(|(&absorbed, &first)| {
                let mut survivor = first;
                // At most one step per known merge, so a cycle in bad data cannot loop.
                for _ in 0..self.merged.len() {
                    match self.merged.get(&survivor) {
                        Some(&next) if next != absorbed && !self.live.contains(&survivor) => survivor = next,
                        _ => break,
                    }
                }
                (survivor != absorbed).then_some((absorbed, survivor))
            })
            .collect()
    }

    /// Warehouse ids that HubSpot did not show in any source and that are not already flagged
    /// deleted or merged: the ids to read back one by one before flagging them deleted.
    pub fn candidates(&self, stored: &[IdFlags]) -> Vec<i64> {
        stored
            .iter()
            .filter(|s| s.deleted_at.is_none() && s.merged_into.is_none())
            .map(|s| s.id)
            .filter(|id| !self.live.contains(id) && !self.archived.contains_key(id) && !self.merged.contains_key(id))
            .collect()
    }
}

/// The flags one reconcile writes, and what they amount to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Only the rows whose flags change, by id.
    pub flags: Vec<RowFlag>,
    /// Rows newly flagged deleted.
    pub deleted: u64,
    /// Flagged rows whose records are live again, un-flagged.
    pub restored: u64,
}

/// Decides every id's flags from what HubSpot holds and what the warehouse stores (see the
/// module docs). Pure: `now_ms` is the deletion time of ids found gone.
pub fn plan(observed: &Observed, stored: &[IdFlags], now_ms: i64) -> Plan {
    let by_id: HashMap<i64, &IdFlags> = stored.iter().map(|s| (s.id, s)).collect();
    let merges = observed.merges();
    let mut flags: BTreeMap<i64, RowFlag> = BTreeMap::new();
    let mut out = Plan::default();
    for (&id, archived) in &observed.archived {
        let row = by_id.get(&id);
        if let (Some(row_cursor), Some(seen)) = (row.and_then(|r| r.cursor), archived.cursor_ms) {
            if row_cursor > seen {
                // The warehouse holds a newer (restored) version than the one archived.
                continue;
            }
        }
        let at = archived.archived_at_ms.or(row.and_then(|r| r.archived_at)).unwrap_or(now_ms);
        let wanted = IdFlags { id, cursor: None, archived_at: Some(at), merged_into: None, deleted_at: None };
        if row.is_some_and(|r| same_flags(r, &wanted)) {
            continue;
        }
        flags.insert(
            id,
            RowFlag {
                id,
                archived_at: Some(Some(at)),
                merged_into: Some(None),
                deleted_at: Some(None),
                observed_cursor: archived.cursor_ms,
            },
        );
    }
    for (&id, &survivor) in &merges {
        let wanted = IdFlags { id, cursor: None, archived_at: None, merged_into: Some(survivor), deleted_at: None };
        if by_id.get(&id).is_some_and(|r| same_flags(r, &wanted)) {
            continue;
        }
        flags.insert(
            id,
            RowFlag {
                id,
                archived_at: Some(None),
                merged_into: Some(Some(survivor)),
                deleted_at: Some(None),
                observed_cursor: None,
            },
        );
    }
    for row in stored {
        let id = row.id;
        if observed.archived.contains_key(&id) || merges.contains_key(&id) {
            continue;
        }
        if observed.live.contains(&id) {
            if row.flagged() {
                out.restored += 1;
                flags.insert(
                    id,
                    RowFlag {
                        id,
                        archived_at: Some(None),
                        merged_into: Some(None),
                        deleted_at: Some(None),
                        observed_cursor: None,
                    },
                );
            }
        } else if observed.gone.contains(&id) && row.deleted_at.is_none() {
            out.deleted += 1;
            // The archived time (a record purged from the recycle bin) and the merge stay.
            flags.insert(id, RowFlag { id, deleted_at: Some(Some(now_ms)), ..RowFlag::default() });
        }
    }
    out.flags = flags.into_values().collect();
    out
}

fn same_flags(row: &IdFlags, wanted: &IdFlags) -> bool {
    row.archived_at == wanted.archived_at
        && row.merged_into == wanted.merged_into
        && row.deleted_at == wanted.deleted_at
}

/// What a reconcile did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Live records HubSpot serves.
    pub live: u64,
    /// Records in HubSpot's recycle bin.
    pub archived: u64,
    /// Merged-away ids the survivors name.
    pub merged: u64,
    /// Rows newly flagged deleted.
    pub deleted: u64,
    /// Flagged rows live again, un-flagged.
    pub restored: u64,
    /// Rows the flags inserted or changed.
    pub written: u64,
    /// HubSpot calls made.
    pub calls: u64,
    /// False when a shutdown stopped it before it wrote anything.
    pub finished: bool,
}

/// Runs one reconcile of one object (see the module docs) and commits its checkpoint.
pub async fn reconcile<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    shutdown: &CancellationToken,
) -> Result<Report, Error> {
    let name = &table.object.table;
    let api = &table.object.api_name;
    let cursor_property = table.object.cursor_property;
    let started_at_ms = runner.clock.now().timestamp_millis();
    let mut report = Report::default();
    let mut observed = Observed::default();

    // 1. The recycle bin, and the merges of archived survivors.
    let mut after: Option<String> = None;
    loop {
        if shutdown.is_cancelled() {
            return Ok(report);
        }
        let params = ListParams {
            limit: LIST_PAGE,
            after: after.clone(),
            properties: vec![ID_PROPERTY.to_owned(), cursor_property.to_owned(), MERGED_IDS.to_owned()],
            archived: true,
        };
        let page = runner.client.list(api, &params).await?;
        report.calls += 1;
        for rec in &page.results {
            let Ok(id) = rec.id.trim().parse::<i64>() else { continue };
            let archived_at_ms = rec.archived_at.as_deref().and_then(parse_instant_ms);
            observed
                .archived
                .insert(id, Archived { archived_at_ms, cursor_ms: record_cursor_ms(rec, cursor_property) });
            observed.add_merges(id, rec);
        }
        match page.next_after() {
            Some(next) if !page.results.is_empty() => after = Some(next.to_owned()),
            _ => break,
        }
    }

    // 2. Every live id, and the merges of live survivors.
    if table.object.read_path() == ReadPath::List {
        let wanted = vec![ID_PROPERTY.to_owned(), MERGED_IDS.to_owned()];
        let mut after: Option<String> = None;
        loop {
            if shutdown.is_cancelled() {
                return Ok(report);
            }
            let page = listing::page(&runner.client, &table.object, after.as_deref(), &wanted).await?;
            report.calls += page.calls;
            for rec in &page.records {
                let Ok(id) = rec.id.trim().parse::<i64>() else { continue };
                observed.live.insert(id);
                observed.add_merges(id, rec);
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    let mut last = 0_i64;
    while table.object.read_path() == ReadPath::Search {
        if shutdown.is_cancelled() {
            return Ok(report);
        }
        let request = SearchRequest::new(
            vec![FilterGroup(vec![Filter::compare(ID_PROPERTY, Operator::Gt, last)])],
            Some((ID_PROPERTY.to_owned(), Direction::Ascending)),
            vec![ID_PROPERTY.to_owned(), MERGED_IDS.to_owned()],
            SWEEP_PAGE,
            0,
        )?;
        let page = runner.client.search(api, &request).await?;
        report.calls += 1;
        let mut max = last;
        for rec in &page.results {
            let Ok(id) = rec.id.trim().parse::<i64>() else { continue };
            observed.live.insert(id);
            observed.add_merges(id, rec);
            max = max.max(id);
        }
        if page.results.is_empty() || page.next_after().is_none() {
            break;
        }
        if max <= last {
            return Err(Error::Bug(format!("the id sweep of {name} for ids above {last} returned nothing above it")));
        }
        last = max;
    }

    // 3. Warehouse ids no source named: read them back by id before calling them deleted.
    let stored = runner.dest.id_flags(name).await?;
    let candidates = observed.candidates(&stored);
    if !candidates.is_empty() {
        if shutdown.is_cancelled() {
            return Ok(report);
        }
        let ids: Vec<String> = candidates.iter().map(i64::to_string).collect();
        let wanted: BTreeSet<i64> = candidates.iter().copied().collect();
        let live = runner.client.batch_read(api, &ids, &[ID_PROPERTY.to_owned()], false).await?;
        report.calls += ids.len().div_ceil(crate::hubspot::BATCH_READ_MAX) as u64;
        for rec in &live.found {
            if let Ok(id) = rec.id.trim().parse::<i64>() {
                if wanted.contains(&id) {
                    observed.live.insert(id);
                }
            }
        }
        let rest: Vec<String> =
            candidates.iter().filter(|id| !observed.live.contains(id)).map(i64::to_string).collect();
        if !rest.is_empty() {
            let properties = [ID_PROPERTY.to_owned(), cursor_property.to_owned()];
            let archived = runner.client.batch_read(api, &rest, &properties, true).await?;
            report.calls += rest.len().div_ceil(crate::hubspot::BATCH_READ_MAX) as u64;
            for rec in &archived.found {
                let Ok(id) = rec.id.trim().parse::<i64>() else { continue };
                if wanted.contains(&id) {
                    let archived_at_ms = rec.archived_at.as_deref().and_then(parse_instant_ms);
                    let cursor_ms = record_cursor_ms(rec, cursor_property);
                    observed.archived.insert(id, Archived { archived_at_ms, cursor_ms });
                }
            }
        }
        observed.gone = candidates
            .into_iter()
            .filter(|id| !observed.live.contains(id) && !observed.archived.contains_key(id))
            .collect();
    }

    // 4. Write the changed flags and record the run.
    let now_ms = runner.clock.now().timestamp_millis();
    let decided = plan(&observed, &stored, now_ms);
    report.live = observed.live.len() as u64;
    report.archived = observed.archived.len() as u64;
    report.merged = observed.merges().len() as u64;
    report.deleted = decided.deleted;
    report.restored = decided.restored;
    report.finished = true;
    let state = DeletesState::Reconciled {
        started_at_ms,
        finished_at_ms: runner.clock.now().timestamp_millis(),
        live: report.live as i64,
        archived: report.archived as i64,
        merged: report.merged as i64,
        deleted: stored.iter().filter(|s| s.deleted_at.is_some()).count() as i64 + decided.deleted as i64,
    };
    report.written = runner.write_flags(name, &decided.flags, &state.checkpoint(name)).await?;
    metrics::gauge!("hsync_archived_records", "object" => name.clone()).set(report.archived as f64);
    tracing::info!(
        table = %name,
        live = report.live,
        archived = report.archived,
        merged = report.merged,
        deleted = report.deleted,
        restored = report.restored,
        written = report.written,
        "deletes reconciled"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64) -> IdFlags {
        IdFlags { id, cursor: Some(100), ..IdFlags::default() }
    }

    fn observed(live: &[i64]) -> Observed {
        Observed { live: live.iter().copied().collect(), ..Observed::default() }
    }

    fn flag_of(plan: &Plan, id: i64) -> Option<RowFlag> {
        plan.flags.iter().find(|f| f.id == id).copied()
    }

    #[test]
    fn archived_records_are_flagged_with_their_time_and_unknown_ones_too() {
        let mut seen = observed(&[1]);
        seen.archived.insert(2, Archived { archived_at_ms: Some(500), cursor_ms: Some(100) });
        seen.archived.insert(9, Archived { archived_at_ms: Some(600), cursor_ms: Some(90) });
        let plan = plan(&seen, &[row(1), row(2)], 1_000);
        let two = flag_of(&plan, 2).unwrap();
        assert_eq!((two.archived_at, two.merged_into, two.deleted_at), (Some(Some(500)), Some(None), Some(None)));
        assert_eq!(two.observed_cursor, Some(100), "applies only to the archived version");
        assert_eq!(flag_of(&plan, 9).unwrap().archived_at, Some(Some(600)), "never synced, still flagged");
        assert_eq!(flag_of(&plan, 1), None, "live and unflagged: nothing to write");
    }

    #[test]
    fn a_newer_stored_version_than_the_archived_one_is_left_alone() {
        let mut seen = observed(&[]);
        seen.archived.insert(2, Archived { archived_at_ms: Some(500), cursor_ms: Some(50) });
        assert!(plan(&seen, &[row(2)], 1_000).flags.is_empty());
    }

    #[test]
    fn merge_chains_resolve_to_the_last_survivor() {
        let mut seen = observed(&[3]);
        seen.merged.insert(1, 2);
        seen.merged.insert(2, 3);
        assert_eq!(seen.merges(), BTreeMap::from([(1, 3), (2, 3)]));
        let cycle = Observed { merged: BTreeMap::from([(1, 2), (2, 1)]), ..Observed::default() };
        assert_eq!(cycle.merges().len(), 2, "a cycle in bad data ends");
    }

    #[test]
    fn merged_ids_are_parsed_from_the_survivor() {
        let mut seen = Observed::default();
        let rec: CrmObject = serde_json::from_value(
            serde_json::json!({"id": "7", "properties": {"hs_merged_object_ids": "3;4; 5;x;7"}}),
        )
        .unwrap();
        seen.add_merges(7, &rec);
        assert_eq!(seen.merged, BTreeMap::from([(3, 7), (4, 7), (5, 7)]));
    }

    #[test]
    fn live_beats_merged_and_archived_beats_live() {
        let mut seen = observed(&[1, 2, 5]);
        seen.merged.insert(1, 5);
        seen.archived.insert(2, Archived { archived_at_ms: Some(10), cursor_ms: None });
        assert!(seen.merges().is_empty());
        let plan = plan(&seen, &[row(1), row(2)], 1_000);
        assert_eq!(flag_of(&plan, 1), None);
        assert_eq!(flag_of(&plan, 2).unwrap().archived_at, Some(Some(10)));
    }

    #[test]
    fn only_confirmed_gone_ids_are_flagged_deleted_and_keep_their_other_flags() {
        let mut seen = observed(&[1]);
        let archived_before = IdFlags { archived_at: Some(40), ..row(3) };
        let stored = [row(1), row(2), archived_before, row(4)];
        assert_eq!(seen.candidates(&stored), vec![2, 3, 4]);
        seen.gone = BTreeSet::from([2, 3]);
        let plan = plan(&seen, &stored, 1_000);
        assert_eq!(plan.deleted, 2);
        let three = flag_of(&plan, 3).unwrap();
        assert_eq!((three.archived_at, three.deleted_at), (None, Some(Some(1_000))), "archived time kept");
        assert_eq!(flag_of(&plan, 4), None, "not confirmed gone: untouched");
    }

    #[test]
    fn deleted_and_merged_rows_are_not_candidates_again_but_come_back_when_live() {
        let deleted = IdFlags { deleted_at: Some(5), ..row(1) };
        let merged = IdFlags { merged_into: Some(9), ..row(2) };
        let seen = observed(&[2]);
        assert!(seen.candidates(&[deleted, merged]).is_empty());
        let plan = plan(&seen, &[deleted, merged], 1_000);
        assert_eq!(plan.restored, 1);
        let two = flag_of(&plan, 2).unwrap();
        assert_eq!((two.archived_at, two.merged_into, two.deleted_at), (Some(None), Some(None), Some(None)));
        assert_eq!(flag_of(&plan, 1), None);
    }

    #[test]
    fn a_second_plan_over_its_own_result_writes_nothing() {
        let mut seen = observed(&[5]);
        seen.merged.insert(1, 5);
        seen.archived.insert(2, Archived { archived_at_ms: Some(10), cursor_ms: Some(100) });
        let first = plan(&seen, &[row(1), row(2), row(5)], 1_000);
        let applied: Vec<IdFlags> = [row(1), row(2), row(5)]
            .into_iter()
            .map(|mut r| {
                if let Some(f) = flag_of(&first, r.id) {
                    r.archived_at = f.archived_at.unwrap_or(r.archived_at);
                    r.merged_into = f.merged_into.unwrap_or(r.merged_into);
                    r.deleted_at = f.deleted_at.unwrap_or(r.deleted_at);
                }
                r
            })
            .collect();
        assert_eq!(first.flags.len(), 2);
        assert!(plan(&seen, &applied, 2_000).flags.is_empty());
    }
}
