//! `hsync plan [--json] [--object ...]`: before a backfill, estimates per object the HubSpot
//! calls it takes and how long they take under the configured (or learned) rate limits and the
//! daily budget, which read path each object takes (search, or the list endpoint for a type
//! without search), what a CDC pass of a list-path object costs, and what each association
//! pair's sweep costs a day. It reads each object's record count from one search (`limit 1`,
//! its `total`; a list-path object has none, so its ids are listed, 100 per call) and which
//! object pairs have associations from the labels endpoint, and writes nothing. It also shows
//! what keeping each object's property history costs (`sync.history`), and for an object
//! without it what turning it on for the type's default properties would cost. The arithmetic
//! follows the streams' own page sizes; the assumptions are printed with it.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use indicatif::{HumanCount, HumanDuration};
use serde::Serialize;

use super::session::Warehouse;
use crate::config::HistorySelection;
use crate::hubspot::{
    Family, ObjectRef, ReadPath, WindowLimit, ASSOCIATION_BATCH_MAX, BATCH_READ_MAX, HISTORY_BATCH_MAX,
};
use crate::stream::associations::{self, candidate_pairs};
use crate::stream::backfill::{self, PAGE};
use crate::stream::listing;
use crate::stream::readers;

/// Options of `hsync plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only these object types (default: sync.objects). Associations are planned among the
    /// selected objects.
    #[arg(long = "object")]
    pub objects: Vec<String>,
}

/// The time between two requests of each bucket, as the client spaces them.
#[derive(Clone, Copy, Debug)]
struct Spacing {
    search: Duration,
    general: Duration,
}

/// What the backfill's choice of readers depends on besides the object (see
/// [`readers::choose`]).
#[derive(Clone, Copy, Debug)]
struct ReaderSettings {
    /// `sync.backfill_concurrency`.
    walkers: usize,
    /// `sync.backfill_list`.
    list_allowed: bool,
    /// The daily budget's calls left today; `None` when unlimited.
    budget_left: Option<u64>,
}

/// The estimate for one object's backfill and first association sweep.
#[derive(Clone, Debug, PartialEq, Serialize)]
struct ObjectPlan {
    object: String,
    /// `search`, or `list` for a type HubSpot serves no search for.
    path: &'static str,
    /// What the backfill reads with: `search`, `search+list` (both buckets at once, for a
    /// search-path object large enough to walk in ranges) or `list`.
    readers: &'static str,
    /// Why a large search-path object reads with search alone.
    readers_reason: Option<String>,
    /// HubSpot's search `total`, or the ids listed.
    records: u64,
    /// One search per page of 200 (the last page says it is the last; an empty object costs one).
    backfill_searches: u64,
    /// List calls of the backfill (a list-path object's, or a search-path object's list
    /// walkers'): one per 100 records, and a batch read per 100 more when the property names do
    /// not fit in the list URL.
    backfill_list_calls: u64,
    /// List-path CDC: each pass lists every id and cursor (a call per 100 records) besides
    /// reading the changed records back; `None` for search, whose passes read only changes.
    cdc_calls_per_pass: Option<u64>,
    /// The property definitions read before the backfill.
    property_reads: u64,
    /// Association batch reads of 1,000 records for each pair stored from this object.
    association_reads: u64,
    search_calls: u64,
    general_calls: u64,
    calls: u64,
    seconds: f64,
    /// Property history: what `sync.history` costs, or what the type's default history would
    /// cost; `None` when it is off and the type has no default.
    history: Option<HistoryPlan>,
    /// What keeping its calculated properties fresh costs; `None` when it has none.
    calculated: Option<CalculatedPlan>,
}

/// What re-reading one object's calculated properties costs (see `stream::calculated`): a
/// sweep of every record on `daemon.calculated_interval_secs`, and batch reads of the records
/// around association changes. Neither is part of the backfill's calls.
#[derive(Clone, Debug, PartialEq, Serialize)]
struct CalculatedPlan {
    /// The calculated properties synced (rollups, formulas, scores).
    properties: u64,
    /// Calls of one sweep: a search per 200 records, or a list call per 100 for a type
    /// without search.
    sweep_calls: u64,
    sweep_interval_secs: u64,
    /// Sweep calls a day at that interval.
    sweep_calls_per_day: u64,
    /// Batch reads (100 records a call) per 1,000 records around association changes.
    calls_per_1000_around_changes: u64,
}

fn plan_calculated(properties: u64, records: u64, path: ReadPath, interval_secs: u64) -> Option<CalculatedPlan> {
    if properties == 0 {
        return None;
    }
    let per_call = match path {
        ReadPath::Search => u64::from(PAGE),
        ReadPath::List => u64::from(listing::PAGE),
    };
    let sweep_calls = records.div_ceil(per_call).max(1);
    let sweeps_per_day = 86_400f64 / interval_secs.max(1) as f64;
    Some(CalculatedPlan {
        properties,
        sweep_calls,
        sweep_interval_secs: interval_secs,
        sweep_calls_per_day: (sweep_calls as f64 * sweeps_per_day).ceil() as u64,
        calls_per_1000_around_changes: 1_000u64.div_ceil(BATCH_READ_MAX as u64),
    })
}

/// What keeping one object's property history costs.
#[derive(Clone, Debug, PartialEq, Serialize)]
struct HistoryPlan {
    /// Whether `sync.history` keeps it: its first load is then counted in the object's calls;
    /// otherwise the numbers are what `["default"]` would cost.
    on: bool,
    /// The properties whose versions are kept (`*`: every property).
    properties: Vec<String>,
    /// Batch reads with history for the first load (50 records a call, HubSpot's limit).
    first_load_calls: u64,
    /// Batch reads per 1,000 records changed, on each later pass.
    calls_per_1000_changes: u64,
}

/// The history plan of an object of `records` records: `selection` is what `sync.history`
/// keeps, `defaults` the type's default properties.
fn plan_history(selection: Option<HistorySelection>, defaults: &[&str], records: u64) -> Option<HistoryPlan> {
    let (on, properties) = match selection {
        Some(HistorySelection::Every) => (true, vec![crate::config::HISTORY_EVERY.to_owned()]),
        Some(HistorySelection::Named(names)) => (true, names),
        None if defaults.is_empty() => return None,
        None => (false, defaults.iter().map(|p| (*p).to_owned()).collect()),
    };
    let per_call = HISTORY_BATCH_MAX as u64;
    Some(HistoryPlan {
        on,
        properties,
        first_load_calls: records.div_ceil(per_call),
        calls_per_1000_changes: 1_000u64.div_ceil(per_call),
    })
}

/// Adds `history` to `plan`, counting its first load in the object's calls when it is on.
fn add_history(plan: &mut ObjectPlan, history: Option<HistoryPlan>, spacing: Spacing) {
    if let Some(h) = history.as_ref().filter(|h| h.on) {
        plan.general_calls += h.first_load_calls;
        plan.calls = plan.search_calls + plan.general_calls;
        plan.seconds = object_seconds(plan, spacing);
    }
    plan.history = history;
}

/// Calls made once per run rather than per object.
#[derive(Clone, Debug, PartialEq, Serialize)]
struct SetupPlan {
    /// The custom object schemas, read when a custom object is configured.
    schema_reads: u64,
    /// One labels read per candidate object pair, to learn which pairs have associations.
    association_label_reads: u64,
    general_calls: u64,
    seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
struct PairPlan {
    from: String,
    to: String,
    /// Association batch reads of one full sweep (1,000 `from` records a call).
    sweep_reads: u64,
    /// Seconds between sweeps of the pairs stored from `from`.
    sweep_interval_secs: u64,
    /// Sweep reads a day at that interval.
    sweep_reads_per_day: u64,
}

#[derive(Clone, Debug, Serialize)]
struct Totals {
    records: u64,
    search_calls: u64,
    general_calls: u64,
    calls: u64,
    seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
struct LimitsPlan {
    searches_per_second: u32,
    search_spacing_ms: f64,
    general_max: u32,
    general_window_ms: u64,
    /// `configured`, `learned` (from HubSpot's headers) or `assumed` (the Starter tier).
    general_source: &'static str,
    general_spacing_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
struct BudgetPlan {
    /// Calls a day hsync may spend (`None`: no budget of hsync's own).
    allowed_per_day: Option<u64>,
    /// Where the allowance comes from.
    source: String,
    used_today: u64,
    remaining_today: Option<u64>,
    resets_at: DateTime<Utc>,
    /// Whole days of budget the plan's calls need (a partial day counts as one).
    days_needed: Option<u64>,
    /// The plan's calls as a share of one day's budget.
    share_of_a_day: Option<f64>,
    fits_in_remaining_today: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
struct Plan {
    objects: Vec<ObjectPlan>,
    setup: SetupPlan,
    pairs: Vec<PairPlan>,
    totals: Totals,
    limits: LimitsPlan,
    budget: BudgetPlan,
    assumptions: Vec<String>,
    /// The calls this plan itself made.
    calls_made: u64,
}

fn seconds(search_calls: u64, general_calls: u64, spacing: Spacing) -> f64 {
    search_calls as f64 * spacing.search.as_secs_f64() + general_calls as f64 * spacing.general.as_secs_f64()
}

/// An object's time: its backfill's searches and list calls go on at once, each bucket at its
/// pace; its other calls (property and association reads, history) follow in the general one.
fn object_seconds(plan: &ObjectPlan, spacing: Spacing) -> f64 {
    let backfill = (plan.search_calls as f64 * spacing.search.as_secs_f64())
        .max(plan.backfill_list_calls as f64 * spacing.general.as_secs_f64());
    backfill + plan.general_calls.saturating_sub(plan.backfill_list_calls) as f64 * spacing.general.as_secs_f64()
}

/// How an object is read: its path, and list calls per 100 records (1, or 2 when its property
/// names do not fit in a list URL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reading {
    Search { calls_per_page: u64 },
    List { calls_per_page: u64 },
}

/// The backfill's choice of readers for a search-path object of `records` records, `None`
/// when it is too small to walk in ranges (or `sync.backfill_concurrency` is 1): search alone,
/// in turn.
fn choose_readers(
    records: u64,
    calls_per_page: u64,
    spacing: Spacing,
    settings: ReaderSettings,
) -> Option<readers::Choice> {
    let walkers = settings.walkers + readers::list_walkers(settings.walkers, calls_per_page);
    let left = records.saturating_sub(u64::from(PAGE));
    if settings.walkers < 2 || backfill::ranges_for(left, walkers) < 2 {
        return None;
    }
    Some(readers::choose(readers::Inputs {
        records: left,
        list_calls_per_page: calls_per_page,
        search_spacing: spacing.search,
        general_spacing: spacing.general,
        budget_left: settings.budget_left,
        walkers: settings.walkers,
        list_allowed: settings.list_allowed,
    }))
}

/// The estimate for an object of `records` records with `pairs_from` association pairs
/// stored from its side.
fn plan_object(
    object: &str,
    reading: Reading,
    records: u64,
    pairs_from: u64,
    spacing: Spacing,
    settings: ReaderSettings,
) -> ObjectPlan {
    let list_pages = records.div_ceil(u64::from(listing::PAGE)).max(1);
    let mut readers = match reading {
        Reading::Search { .. } => "search",
        Reading::List { .. } => "list",
    };
    let mut readers_reason = None;
    // The last page says it is the last (or an empty object answers one empty search).
    let (backfill_searches, backfill_list_calls, cdc_calls_per_pass) = match reading {
        Reading::Search { calls_per_page } => match choose_readers(records, calls_per_page, spacing, settings) {
            // The first page is read before the walk is planned.
            Some(choice) => {
                readers = choice.label();
                readers_reason = choice.reason();
                (1 + choice.search_calls, choice.list_calls, None)
            }
            None => (records.div_ceil(u64::from(PAGE)).max(1), 0, None),
        },
        Reading::List { calls_per_page } => (0, list_pages * calls_per_page, Some(list_pages)),
    };
    let property_reads = 1;
    let association_reads = pairs_from * records.div_ceil(ASSOCIATION_BATCH_MAX as u64);
    let search_calls = backfill_searches;
    let general_calls = property_reads + association_reads + backfill_list_calls;
    let mut plan = ObjectPlan {
        object: object.to_owned(),
        path: match reading {
            Reading::Search { .. } => ReadPath::Search.as_str(),
            Reading::List { .. } => ReadPath::List.as_str(),
        },
        readers,
        readers_reason,
        records,
        backfill_searches,
        backfill_list_calls,
        cdc_calls_per_pass,
        property_reads,
        association_reads,
        search_calls,
        general_calls,
        calls: search_calls + general_calls,
        seconds: 0.0,
        history: None,
        calculated: None,
    };
    plan.seconds = object_seconds(&plan, spacing);
    plan
}

/// The cost of sweeping one pair, once and per day at `interval_secs`.
fn plan_pair(from: &str, to: &str, from_records: u64, interval_secs: u64) -> PairPlan {
    let sweep_reads = from_records.div_ceil(ASSOCIATION_BATCH_MAX as u64);
    let sweeps_per_day = 86_400f64 / interval_secs.max(1) as f64;
    PairPlan {
        from: from.to_owned(),
        to: to.to_owned(),
        sweep_reads,
        sweep_interval_secs: interval_secs,
        sweep_reads_per_day: (sweep_reads as f64 * sweeps_per_day).ceil() as u64,
    }
}

/// The names the objects were configured by, in their order (what per-object settings use).
fn names_of(objects: &[ObjectRef], args: &PlanArgs, config: &crate::config::Config) -> Vec<String> {
    let names = if args.objects.is_empty() { &config.sync.objects } else { &args.objects };
    debug_assert_eq!(names.len(), objects.len());
    names.clone()
}

/// An object's record count and how it is read: search's `total`, or for a type without
/// search the ids listed (100 per call), and whether the property names `filter` keeps fit in
/// a list URL.
async fn count(
    client: &crate::hubspot::HubSpotClient,
    object: &ObjectRef,
    filter: &crate::stream::runner::PropertyFilter,
) -> anyhow::Result<(u64, Reading, u64)> {
    let definitions: Vec<_> = client
        .properties(&object.api_name, false)
        .await?
        .into_iter()
        .filter(|p| filter.keeps(&p.name, object.cursor_property))
        .collect();
    let calculated = crate::stream::calculated::refreshed_properties(object, &definitions).len() as u64;
    let properties: Vec<String> = definitions.into_iter().map(|p| p.name).collect();
    let calls_per_page = listing::calls_per_page(&properties);
    if object.read_path() == ReadPath::Search {
        return Ok((client.count(&object.api_name).await?, Reading::Search { calls_per_page }, calculated));
    }
    let ids = vec!["hs_object_id".to_owned()];
    let (mut total, mut after) = (0u64, None::<String>);
    loop {
        let page = listing::page(client, object, after.as_deref(), &ids).await?;
        total += page.records.len() as u64;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok((total, Reading::List { calls_per_page }, calculated))
}

fn plan_setup(custom_objects: bool, candidate_pairs: u64, spacing: Spacing) -> SetupPlan {
    let schema_reads = u64::from(custom_objects);
    let general_calls = schema_reads + candidate_pairs;
    SetupPlan {
        schema_reads,
        association_label_reads: candidate_pairs,
        general_calls,
        seconds: seconds(0, general_calls, spacing),
    }
}

/// Whole days of `allowed` calls that `calls` need; a partial day counts as one.
fn days_needed(calls: u64, allowed: u64) -> Option<u64> {
    (allowed > 0).then(|| calls.div_ceil(allowed).max(1))
}

/// Reads the counts, estimates and prints.
pub async fn run(config_path: Option<&Path>, args: PlanArgs) -> anyhow::Result<ExitCode> {
    let warehouse = Warehouse::open(config_path).await?;
    let config = &warehouse.config;
    let client = warehouse.client()?;
    let before = client.budget_status().await.used;
    let objects = warehouse.objects(&client, &args.objects).await?;
    let mut records = Vec::new();
    let mut readings = Vec::new();
    let mut calculated_counts = Vec::new();
    let filter = crate::stream::runner::PropertyFilter {
        include: config.sync.include_properties.clone(),
        exclude: config.sync.exclude_properties.clone(),
    };
    for object in &objects {
        let (total, reading, calculated) = count(&client, object, &filter)
            .await
            .with_context(|| format!("counting the records of {}", object.table))?;
        records.push(total);
        readings.push(reading);
        calculated_counts.push(calculated);
    }
    let pairs = associations::defined_pairs(&client, &objects).await.context("reading the association types")?;
    let candidates = candidate_pairs(&objects).len() as u64;

    let rates = config.hubspot_client_config().rates;
    let general = client.general_limit();
    let general_source = if config.limits.requests_per_10s.is_some() {
        "configured"
    } else if general != WindowLimit::STARTER {
        "learned"
    } else {
        "assumed"
    };
    let spacing =
        Spacing { search: rates.search.spacing(rates.search_margin), general: general.spacing(rates.general_margin) };
    let budget_now = client.budget_status().await;
    let settings = ReaderSettings {
        walkers: usize::try_from(config.sync.backfill_concurrency).unwrap_or(1),
        list_allowed: config.sync.backfill_list,
        budget_left: budget_now.allowed.map(|a| a.saturating_sub(budget_now.used)),
    };
    let plans: Vec<ObjectPlan> = objects
        .iter()
        .zip(records.iter().zip(readings.iter().zip(&calculated_counts)))
        .map(|(object, (&n, (&reading, &calculated)))| {
            let pairs_from = pairs.iter().filter(|p| p.from.table == object.table).count() as u64;
            let mut plan = plan_object(&object.table, reading, n, pairs_from, spacing, settings);
            let history = plan_history(config.sync.history_for(object), object.facts.history_properties, n);
            add_history(&mut plan, history, spacing);
            let interval = config.daemon.calculated_interval_secs;
            plan.calculated = plan_calculated(calculated, n, object.read_path(), interval);
            plan
        })
        .collect();
    let names = names_of(&objects, &args, config);
    let pair_plans: Vec<PairPlan> = pairs
        .iter()
        .map(|p| {
            let at = objects.iter().position(|o| o.table == p.from.table).unwrap_or_default();
            let interval = config.daemon.association_sweep_secs(names.get(at).map_or("", String::as_str));
            plan_pair(&p.from.table, &p.to.table, records[at], interval)
        })
        .collect();
    let custom = objects.iter().any(|o| o.facts.family == Family::Custom);
    let setup = plan_setup(custom, candidates, spacing);
    let search_calls: u64 = plans.iter().map(|p| p.search_calls).sum();
    let general_calls = plans.iter().map(|p| p.general_calls).sum::<u64>() + setup.general_calls;
    let totals = Totals {
        records: records.iter().sum(),
        search_calls,
        general_calls,
        calls: search_calls + general_calls,
        seconds: plans.iter().map(|p| p.seconds).sum::<f64>() + setup.seconds,
    };

    let status = client.budget_status().await;
    let source = match config.limits.daily_budget {
        Some(calls) => format!("limits.daily_budget = {calls}"),
        None => format!(
            "the portal's daily limit less limits.reserve_percent = {}% for other integrations",
            config.limits.reserve_percent
        ),
    };
    let remaining = status.allowed.map(|a| a.saturating_sub(status.used));
    let budget = BudgetPlan {
        allowed_per_day: status.allowed,
        source,
        used_today: status.used,
        remaining_today: remaining,
        resets_at: status.resets_at,
        days_needed: status.allowed.and_then(|a| days_needed(totals.calls, a)),
        share_of_a_day: status.allowed.filter(|a| *a > 0).map(|a| totals.calls as f64 / a as f64),
        fits_in_remaining_today: remaining.map(|r| totals.calls <= r),
    };
    let limits = LimitsPlan {
        searches_per_second: config.limits.searches_per_second,
        search_spacing_ms: spacing.search.as_secs_f64() * 1000.0,
        general_max: general.max,
        general_window_ms: general.window.as_millis() as u64,
        general_source,
        general_spacing_ms: spacing.general.as_secs_f64() * 1000.0,
    };
    let plan = Plan {
        assumptions: assumptions(&limits),
        objects: plans,
        setup,
        pairs: pair_plans,
        totals,
        limits,
        budget,
        calls_made: status.used.saturating_sub(before),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan).context("encoding the plan as JSON")?);
    } else {
        print!("{}", render(&plan));
    }
    Ok(ExitCode::SUCCESS)
}

fn assumptions(limits: &LimitsPlan) -> Vec<String> {
    vec![
        format!(
            "backfill: one search per {PAGE} records (the last page ends it), and one read of the property definitions per object; a type without search (path list) takes a list call per {} records, and a batch read per {} more when its property names do not fit in the list URL",
            listing::PAGE, listing::PAGE
        ),
        format!(
            "associations: the first sweep reads {} records per call for each pair with associations, stored from the pair's first object in sync.objects; a record with more associated records of one type than HubSpot's page needs more calls",
            HumanCount(ASSOCIATION_BATCH_MAX as u64)
        ),
        format!(
            "readers: an object with more than {} records left after its first page walks id ranges at once, by search and (reads by search+list) by list pages of {} in the general bucket, each bucket's share of the records what it reads in the time; search alone when sync.backfill_list is off or today's budget cannot take both",
            thousands(2 * backfill::RECORDS_PER_RANGE),
            listing::PAGE
        ),
        format!(
            "time: requests spaced as hsync spaces them (a search every {:.0} ms, another call every {:.0} ms), an object's searches and list pages at once and its other calls after, objects one after another, HubSpot answering at once, nothing else using the portal's limits, and no time for writing to the destination",
            limits.search_spacing_ms, limits.general_spacing_ms
        ),
        "not counted: CDC passes (a search per 200 changed records per pass; a list-path object lists every record each pass, shown above), deletes reconciles (about one search per 200 records each, on their own schedule), later association polls, and retries".to_owned(),
    ]
}

fn thousands(n: u64) -> String {
    HumanCount(n).to_string()
}

fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else {
        HumanDuration(Duration::from_secs_f64(seconds)).to_string()
    }
}

fn percent(share: f64) -> String {
    if share > 0.0 && share < 0.0001 {
        "under 0.01%".to_owned()
    } else {
        format!("{:.2}%", share * 100.0)
    }
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let row = |out: &mut String, cells: [&str; 7]| {
        out.push_str(&format!(
            "{:<22} {:<11} {:>10} {:>9} {:>9} {:>9} {:>10}\n",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]
        ));
    };
    row(&mut out, ["object", "reads by", "records", "searches", "other", "calls", "time"]);
    for p in &plan.objects {
        row(
            &mut out,
            [
                &p.object,
                p.readers,
                &thousands(p.records),
                &thousands(p.search_calls),
                &thousands(p.general_calls),
                &thousands(p.calls),
                &duration(p.seconds),
            ],
        );
    }
    let s = &plan.setup;
    row(
        &mut out,
        [
            "(schemas, labels)",
            "",
            "",
            "0",
            &thousands(s.general_calls),
            &thousands(s.general_calls),
            &duration(s.seconds),
        ],
    );
    let t = &plan.totals;
    row(
        &mut out,
        [
            "total",
            "",
            &thousands(t.records),
            &thousands(t.search_calls),
            &thousands(t.general_calls),
            &thousands(t.calls),
            &duration(t.seconds),
        ],
    );
    let l = &plan.limits;
    out.push_str(&format!(
        "\nlimits: {} searches a second (a search every {:.0} ms); {} other calls per {} s, {} (one every {:.0} ms)\n",
        l.searches_per_second,
        l.search_spacing_ms,
        l.general_max,
        l.general_window_ms / 1000,
        match l.general_source {
            "configured" => "configured",
            "learned" => "learned from HubSpot's headers",
            _ => "HubSpot's Starter tier, assumed: set limits.requests_per_10s",
        },
        l.general_spacing_ms
    ));
    let b = &plan.budget;
    match (b.allowed_per_day, b.days_needed, b.remaining_today) {
        (Some(allowed), Some(days), Some(remaining)) => out.push_str(&format!(
            "budget: {} calls a day ({}); {} used today, {} left until {}\n        the plan's {} calls are {} of a day's budget: {} day{}{}\n",
            thousands(allowed),
            b.source,
            thousands(b.used_today),
            thousands(remaining),
            iso(b.resets_at),
            thousands(t.calls),
            percent(b.share_of_a_day.unwrap_or_default()),
            days,
            if days == 1 { "" } else { "s" },
            if b.fits_in_remaining_today == Some(true) { ", and they fit in what is left today" } else { "" },
        )),
        _ => out.push_str("budget: no daily budget of hsync's own; HubSpot's daily limit still applies\n"),
    }
    for p in plan.objects.iter().filter(|p| p.cdc_calls_per_pass.is_some()) {
        out.push_str(&format!(
            "{}: HubSpot serves no search for it, so it is read through the list endpoint; each CDC pass lists every record ({} calls) and reads the changed ones back\n",
            p.object,
            thousands(p.cdc_calls_per_pass.unwrap_or_default())
        ));
    }
    for p in &plan.objects {
        if let Some(reason) = &p.readers_reason {
            out.push_str(&format!("{}: reads by search alone: {reason}\n", p.object));
        }
    }
    for p in &plan.objects {
        let Some(h) = &p.history else { continue };
        let what = if h.on {
            "history (sync.history)".to_owned()
        } else {
            format!("history is off; sync.history.{} = [\"default\"] would keep", p.object)
        };
        out.push_str(&format!(
            "{}: {what} {}: {} calls for the first load{}, then {} calls per 1,000 records changed\n",
            p.object,
            h.properties.join(", "),
            thousands(h.first_load_calls),
            if h.on { " (counted above)" } else { "" },
            thousands(h.calls_per_1000_changes)
        ));
    }
    for p in &plan.objects {
        let Some(c) = &p.calculated else { continue };
        out.push_str(&format!(
            "{}: {} calculated properties (rollups, formulas) change without moving last-modified: a sweep every {} re-reads them ({} calls, {} a day), and {} calls per 1,000 records around association changes\n",
            p.object,
            c.properties,
            HumanDuration(Duration::from_secs(c.sweep_interval_secs)),
            thousands(c.sweep_calls),
            thousands(c.sweep_calls_per_day),
            thousands(c.calls_per_1000_around_changes)
        ));
    }
    if plan.pairs.is_empty() {
        out.push_str("associations: HubSpot defines none between the selected objects\n");
    } else {
        out.push_str("associations (pair, calls per sweep, sweep interval, sweep calls a day):\n");
        for p in &plan.pairs {
            out.push_str(&format!(
                "  {} -> {}: {} calls, every {}, {} a day\n",
                p.from,
                p.to,
                thousands(p.sweep_reads),
                HumanDuration(Duration::from_secs(p.sweep_interval_secs)),
                thousands(p.sweep_reads_per_day)
            ));
        }
        out.push_str("  (set daemon.association_sweep_interval_by_object to sweep an object's pairs less often)\n");
    }
    out.push_str("assumptions:\n");
    for a in &plan.assumptions {
        out.push_str(&format!("  - {a}\n"));
    }
    out.push_str(&format!("this plan made {} HubSpot calls\n", plan.calls_made));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACING: Spacing = Spacing { search: Duration::from_millis(200), general: Duration::from_millis(50) };
    const SETTINGS: ReaderSettings = ReaderSettings { walkers: 8, list_allowed: true, budget_left: None };
    const SEARCH: Reading = Reading::Search { calls_per_page: 1 };

    fn plan_object(object: &str, reading: Reading, records: u64, pairs_from: u64, spacing: Spacing) -> ObjectPlan {
        super::plan_object(object, reading, records, pairs_from, spacing, SETTINGS)
    }

    #[test]
    fn a_backfill_pages_by_200_and_ends_on_its_last_page() {
        assert_eq!(plan_object("t", SEARCH, 0, 0, SPACING).backfill_searches, 1, "one empty search");
        assert_eq!(plan_object("t", SEARCH, 400, 0, SPACING).backfill_searches, 2);
        assert_eq!(plan_object("t", SEARCH, 401, 0, SPACING).backfill_searches, 3);
    }

    #[test]
    fn a_large_object_reads_by_both_buckets_unless_the_budget_or_the_configuration_says_no() {
        let both = plan_object("contacts", SEARCH, 100_000, 0, SPACING);
        assert_eq!((both.readers, both.readers_reason.as_deref()), ("search+list", None));
        // 1,000 records a second by search and 2,000 by list: a third and two thirds.
        assert_eq!((both.backfill_searches, both.backfill_list_calls), (1 + 167, 666));
        assert_eq!(both.general_calls, 666 + 1);
        // The two buckets at once, then the property read.
        assert!((both.seconds - (168.0 * 0.2 + 0.05)).abs() < 1e-9, "{}", both.seconds);
        let tight = ReaderSettings { budget_left: Some(600), ..SETTINGS };
        let alone = super::plan_object("contacts", SEARCH, 100_000, 0, SPACING, tight);
        assert_eq!((alone.readers, alone.backfill_searches, alone.backfill_list_calls), ("search", 500, 0));
        assert!(alone.readers_reason.unwrap().contains("600 left today"));
        let off = ReaderSettings { list_allowed: false, ..SETTINGS };
        let off = super::plan_object("contacts", SEARCH, 100_000, 0, SPACING, off);
        assert_eq!(off.readers_reason.as_deref(), Some("sync.backfill_list is off"));
        let in_turn = ReaderSettings { walkers: 1, ..SETTINGS };
        let in_turn = super::plan_object("contacts", SEARCH, 100_000, 0, SPACING, in_turn);
        assert_eq!((in_turn.readers, in_turn.readers_reason), ("search", None));
        // Too small for ranges: search in turn.
        assert_eq!(plan_object("contacts", SEARCH, 4_000, 0, SPACING).readers, "search");
    }

    #[test]
    fn association_reads_take_1000_records_per_pair() {
        let p = plan_object("contacts", SEARCH, 2_500, 2, SPACING);
        assert_eq!(p.association_reads, 6);
        assert_eq!(p.general_calls, 7, "six association reads and one property read");
        assert_eq!(p.calls, p.search_calls + p.general_calls);
        assert!((p.seconds - (13.0 * 0.2 + 7.0 * 0.05)).abs() < 1e-9, "{}", p.seconds);
        assert_eq!(plan_object("cars", SEARCH, 0, 3, SPACING).association_reads, 0);
    }

    #[test]
    fn a_list_path_backfill_takes_a_call_per_100_records_or_two_for_wide_types() {
        let narrow = plan_object("contracts", Reading::List { calls_per_page: 1 }, 1_000, 0, SPACING);
        assert_eq!((narrow.path, narrow.backfill_searches, narrow.backfill_list_calls), ("list", 0, 10));
        assert_eq!(narrow.search_calls, 0);
        assert_eq!(narrow.general_calls, 11, "ten list calls and one property read");
        assert_eq!(narrow.cdc_calls_per_pass, Some(10));
        let wide = plan_object("contracts", Reading::List { calls_per_page: 2 }, 1_001, 0, SPACING);
        assert_eq!(wide.backfill_list_calls, 22);
        assert_eq!(plan_object("calls", SEARCH, 1_000, 0, SPACING).cdc_calls_per_pass, None);
    }

    #[test]
    fn history_costs_a_call_per_50_records_and_counts_only_when_on() {
        let named = Some(HistorySelection::Named(vec!["dealstage".to_owned()]));
        let on = plan_history(named, &["dealstage", "amount"], 1_001).unwrap();
        assert_eq!((on.on, on.first_load_calls, on.calls_per_1000_changes), (true, 21, 20));
        assert_eq!(on.properties, ["dealstage"]);
        let off = plan_history(None, &["dealstage", "amount"], 1_001).unwrap();
        assert_eq!((off.on, off.properties.len(), off.first_load_calls), (false, 2, 21));
        assert_eq!(plan_history(None, &[], 1_001), None, "no default, nothing to show");
        let every = plan_history(Some(HistorySelection::Every), &[], 0).unwrap();
        assert_eq!((every.properties, every.first_load_calls), (vec!["*".to_owned()], 0));

        let mut counted = plan_object("deals", SEARCH, 1_001, 0, SPACING);
        let before = counted.general_calls;
        add_history(&mut counted, Some(on), SPACING);
        assert_eq!(counted.general_calls, before + 21);
        assert_eq!(counted.calls, counted.search_calls + counted.general_calls);
        assert!(
            (counted.seconds - seconds(counted.search_calls, counted.general_calls, SPACING)).abs() < 1e-9,
            "in turn"
        );
        let mut shown = plan_object("deals", SEARCH, 1_001, 0, SPACING);
        add_history(&mut shown, Some(off), SPACING);
        assert_eq!(shown.general_calls, before, "a history that is off costs nothing yet");
        assert!(shown.history.is_some());
    }

    #[test]
    fn a_sweep_costs_a_call_per_1000_records_at_its_interval() {
        let daily = plan_pair("calls", "contacts", 100_000, 86_400);
        assert_eq!((daily.sweep_reads, daily.sweep_reads_per_day), (100, 100));
        let weekly = plan_pair("calls", "contacts", 100_000, 7 * 86_400);
        assert_eq!(weekly.sweep_reads_per_day, 15, "100 calls a week, rounded up to whole calls a day");
    }

    #[test]
    fn calculated_properties_cost_a_sweep_at_their_interval_and_reads_around_changes() {
        assert_eq!(plan_calculated(0, 10_000, ReadPath::Search, 86_400), None, "nothing to refresh");
        let daily = plan_calculated(12, 10_000, ReadPath::Search, 86_400).unwrap();
        assert_eq!((daily.sweep_calls, daily.sweep_calls_per_day), (50, 50));
        assert_eq!(daily.calls_per_1000_around_changes, 10);
        let hourly = plan_calculated(3, 1, ReadPath::List, 3_600).unwrap();
        assert_eq!((hourly.sweep_calls, hourly.sweep_calls_per_day), (1, 24));
    }

    #[test]
    fn days_round_up_and_need_a_budget() {
        assert_eq!(days_needed(1, 100), Some(1));
        assert_eq!(days_needed(100, 100), Some(1));
        assert_eq!(days_needed(101, 100), Some(2));
        assert_eq!(days_needed(5, 0), None);
    }
}
