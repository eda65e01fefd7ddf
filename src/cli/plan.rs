//! `hsync plan [--json] [--object ...]`: before a backfill, estimates per object the HubSpot
//! calls it takes and how long they take under the configured (or learned) rate limits and the
//! daily budget. It reads each object's record count from one search (`limit 1`, its `total`)
//! and which object pairs have associations from the labels endpoint, and writes nothing.
//! The arithmetic follows the streams' own page sizes; the assumptions are printed with it.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use indicatif::{HumanCount, HumanDuration};
use serde::Serialize;

use super::session::Warehouse;
use crate::hubspot::{WindowLimit, ASSOCIATION_BATCH_MAX, STANDARD_OBJECTS};
use crate::stream::associations::{self, candidate_pairs};
use crate::stream::backfill::PAGE;

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

/// The estimate for one object's backfill and first association sweep.
#[derive(Clone, Debug, PartialEq, Serialize)]
struct ObjectPlan {
    object: String,
    /// HubSpot's search `total`.
    records: u64,
    /// One search per page of 200 (the last page says it is the last; an empty object costs one).
    backfill_searches: u64,
    /// The property definitions read before the backfill.
    property_reads: u64,
    /// Association batch reads of 1,000 records for each pair stored from this object.
    association_reads: u64,
    search_calls: u64,
    general_calls: u64,
    calls: u64,
    seconds: f64,
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

/// The estimate for an object of `records` records with `pairs_from` association pairs
/// stored from its side.
fn plan_object(object: &str, records: u64, pairs_from: u64, spacing: Spacing) -> ObjectPlan {
    // The last page says it is the last (or an empty object answers one empty search).
    let backfill_searches = records.div_ceil(u64::from(PAGE)).max(1);
    let property_reads = 1;
    let association_reads = pairs_from * records.div_ceil(ASSOCIATION_BATCH_MAX as u64);
    let search_calls = backfill_searches;
    let general_calls = property_reads + association_reads;
    ObjectPlan {
        object: object.to_owned(),
        records,
        backfill_searches,
        property_reads,
        association_reads,
        search_calls,
        general_calls,
        calls: search_calls + general_calls,
        seconds: seconds(search_calls, general_calls, spacing),
    }
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
    for object in &objects {
        let total = client
            .count(&object.api_name)
            .await
            .with_context(|| format!("counting the records of {}", object.table))?;
        records.push(total);
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
    let plans: Vec<ObjectPlan> = objects
        .iter()
        .zip(&records)
        .map(|(object, &n)| {
            let pairs_from = pairs.iter().filter(|p| p.from.table == object.table).count() as u64;
            plan_object(&object.table, n, pairs_from, spacing)
        })
        .collect();
    let custom = objects.iter().any(|o| !STANDARD_OBJECTS.iter().any(|s| s.name == o.table));
    let setup = plan_setup(custom, candidates, spacing);
    let search_calls: u64 = plans.iter().map(|p| p.search_calls).sum();
    let general_calls = plans.iter().map(|p| p.general_calls).sum::<u64>() + setup.general_calls;
    let totals = Totals {
        records: records.iter().sum(),
        search_calls,
        general_calls,
        calls: search_calls + general_calls,
        seconds: seconds(search_calls, general_calls, spacing),
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
        pairs: pairs.iter().map(|p| PairPlan { from: p.from.table.clone(), to: p.to.table.clone() }).collect(),
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
            "backfill: one search per {PAGE} records (the last page ends it), and one read of the property definitions per object"
        ),
        format!(
            "associations: the first sweep reads {} records per call for each pair with associations, stored from the pair's first object in sync.objects; a record with more associated records of one type than HubSpot's page needs more calls",
            HumanCount(ASSOCIATION_BATCH_MAX as u64)
        ),
        format!(
            "time: requests spaced as hsync spaces them (a search every {:.0} ms, another call every {:.0} ms), HubSpot answering at once, nothing else using the portal's limits, and no time for writing to the destination",
            limits.search_spacing_ms, limits.general_spacing_ms
        ),
        "not counted: CDC passes (a search per 200 changed records per pass), deletes reconciles (about one search per 200 records each, on their own schedule), later association polls, and retries".to_owned(),
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
    let row = |out: &mut String, cells: [&str; 6]| {
        out.push_str(&format!(
            "{:<20} {:>10} {:>9} {:>9} {:>9} {:>10}\n",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
        ));
    };
    row(&mut out, ["object", "records", "searches", "other", "calls", "time"]);
    for p in &plan.objects {
        row(
            &mut out,
            [
                &p.object,
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
        ["(schemas, labels)", "", "0", &thousands(s.general_calls), &thousands(s.general_calls), &duration(s.seconds)],
    );
    let t = &plan.totals;
    row(
        &mut out,
        [
            "total",
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
    if plan.pairs.is_empty() {
        out.push_str("associations: HubSpot defines none between the selected objects\n");
    } else {
        let pairs: Vec<String> = plan.pairs.iter().map(|p| format!("{} -> {}", p.from, p.to)).collect();
        out.push_str(&format!("associations: {}\n", pairs.join(", ")));
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

    #[test]
    fn a_backfill_pages_by_200_and_ends_on_its_last_page() {
        assert_eq!(plan_object("t", 0, 0, SPACING).backfill_searches, 1, "one empty search");
        assert_eq!(plan_object("t", 400, 0, SPACING).backfill_searches, 2);
        assert_eq!(plan_object("t", 401, 0, SPACING).backfill_searches, 3);
    }

    #[test]
    fn association_reads_take_1000_records_per_pair() {
        let p = plan_object("contacts", 2_500, 2, SPACING);
        assert_eq!(p.association_reads, 6);
        assert_eq!(p.general_calls, 7, "six association reads and one property read");
        assert_eq!(p.calls, p.search_calls + p.general_calls);
        assert!((p.seconds - (13.0 * 0.2 + 7.0 * 0.05)).abs() < 1e-9, "{}", p.seconds);
        assert_eq!(plan_object("cars", 0, 3, SPACING).association_reads, 0);
    }

    #[test]
    fn days_round_up_and_need_a_budget() {
        assert_eq!(days_needed(1, 100), Some(1));
        assert_eq!(days_needed(100, 100), Some(1));
        assert_eq!(days_needed(101, 100), Some(2));
        assert_eq!(days_needed(5, 0), None);
    }
}
