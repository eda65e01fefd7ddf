//! `hsync verify [--object ...] [--json]`: compares the warehouse with HubSpot (counts, missing
//! and extra ids, stale rows, a sample's property history and calculated values; see
//! [`crate::stream::verify`])
//! and prints the report. Exits 0
//! when everything matches and [`DIFFERS`] when anything differs, so cron or CI can alert.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::session::Warehouse;
use crate::state::StateStore;
use crate::stream::verify::{self, Difference, ObjectReport, Options, VerifyReport};

/// The exit code when the warehouse and HubSpot differ.
pub const DIFFERS: u8 = 5;

/// Options of `hsync verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Only these object types (default: sync.objects).
    #[arg(long = "object")]
    pub objects: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Example ids shown per kind of difference.
    #[arg(long, default_value_t = verify::DEFAULT_EXAMPLES)]
    pub examples: usize,
    /// Compare counts only (one search call per object) instead of sweeping every id.
    #[arg(long)]
    pub counts_only: bool,
    /// Live records whose property history is compared, per object `sync.history` names
    /// (one call per 50; 0 skips the history).
    #[arg(long, default_value_t = verify::history::DEFAULT_SAMPLE)]
    pub history_sample: usize,
    /// Live records whose calculated properties (rollups, formulas, scores) are compared with
    /// HubSpot's current values, per object (one call per 100; 0 skips the check).
    #[arg(long, default_value_t = verify::calculated::DEFAULT_SAMPLE)]
    pub calculated_sample: usize,
}

/// Verifies each object and prints the report.
pub async fn run(config_path: Option<&Path>, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let warehouse = Warehouse::open(config_path).await?;
    let client = warehouse.client()?;
    let options = Options {
        examples: args.examples,
        counts_only: args.counts_only,
        history_sample: args.history_sample,
        calculated_sample: args.calculated_sample,
        sample_seed: warehouse.clock.now().timestamp_millis().unsigned_abs(),
    };
    let mut objects = Vec::new();
    for object in warehouse.objects(&client, &args.objects).await? {
        let kept = warehouse.config.sync.history_for(&object);
        let column_map = warehouse
            .state
            .load_column_map(&object.table)
            .await
            .with_context(|| format!("reading the column map of {}", object.table))?;
        let report = verify::object(&client, &warehouse.dest, &object, kept.as_ref(), &column_map, &options)
            .await
            .with_context(|| format!("verifying {}", object.table))?;
        objects.push(report);
    }
    let report = VerifyReport::new(warehouse.clock.now(), objects);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("encoding the report as JSON")?);
    } else {
        print!("{}", render_text(&report));
    }
    Ok(if report.matches { ExitCode::SUCCESS } else { ExitCode::from(DIFFERS) })
}

fn examples(kind: &str, object: &str, d: &Difference) -> Option<String> {
    (d.count > 0).then(|| {
        let more = if (d.examples.len() as u64) < d.count { ", ..." } else { "" };
        format!("{object}: {} {kind} (ids {}{more})", d.count, d.examples.join(", "))
    })
}

/// The HISTORY cell: `-` without history, else the pairs compared and whether any differs.
fn history_cell(o: &ObjectReport) -> String {
    match &o.history {
        None => "-".to_owned(),
        Some(h) if h.matches => format!("{} ok", h.pairs_compared),
        Some(h) => format!("{} differ", h.versions_differ.count.max(h.latest_differs.count)),
    }
}

fn history_details(o: &ObjectReport) -> Vec<String> {
    let Some(h) = &o.history else { return Vec::new() };
    let versions = format!(
        "record properties whose stored history differs from HubSpot's ({} versions missing, {} extra)",
        h.versions_missing, h.versions_extra
    );
    [
        examples(&versions, &o.object, &h.versions_differ),
        examples(
            "record properties whose latest stored version is not HubSpot's current value",
            &o.object,
            &h.latest_differs,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The CALCULATED cell: `-` without the check, else the values compared and how many are stale.
fn calculated_cell(o: &ObjectReport) -> String {
    match &o.calculated {
        None => "-".to_owned(),
        Some(c) if c.matches => format!("{} ok", c.values_compared),
        Some(c) => format!("{} stale", c.stale.count),
    }
}

/// The human report: a table of counts per object, then example ids per difference.
pub fn render_text(report: &VerifyReport) -> String {
    let header: Vec<String> =
        ["OBJECT", "HUBSPOT", "WAREHOUSE", "MISSING", "EXTRA", "STALE", "HISTORY", "CALCULATED", "RESULT"]
            .map(str::to_owned)
            .into();
    let unswept = |n: u64, compared: bool| if compared { n.to_string() } else { "-".to_owned() };
    let rows: Vec<Vec<String>> = std::iter::once(header)
        .chain(report.objects.iter().map(|o| {
            vec![
                o.object.clone(),
                o.hubspot_total.to_string(),
                o.warehouse_live.to_string(),
                unswept(o.missing.count, o.ids_compared),
                unswept(o.extra.count, o.ids_compared),
                unswept(o.stale.count, o.ids_compared),
                history_cell(o),
                calculated_cell(o),
                if o.matches { "ok" } else { "differs" }.to_owned(),
            ]
        }))
        .collect();
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    let details: Vec<String> = report
        .objects
        .iter()
        .flat_map(|o| {
            [
                examples("missing from the warehouse", &o.object, &o.missing),
                examples("extra in the warehouse", &o.object, &o.extra),
                examples("stale in the warehouse", &o.object, &o.stale),
            ]
            .into_iter()
            .flatten()
            .chain(history_details(o))
            .chain(o.calculated.as_ref().and_then(|c| {
                examples(
                    "calculated values that are not HubSpot's current ones (`hsync refresh-calculated` re-reads them)",
                    &o.object,
                    &c.stale,
                )
            }))
        })
        .collect();
    if !details.is_empty() {
        out.push('\n');
        out.push_str(&details.join("\n"));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(if report.matches {
        "the warehouse matches HubSpot\n"
    } else {
        "the warehouse differs from HubSpot (exit 5); a CDC pass (and `hsync history` for history, `hsync refresh-calculated` for calculated values) fixes changes made since the last one\n"
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::verify::{CalculatedReport, HistoryReport};

    #[test]
    fn text_report_names_ids_and_aligns_columns() {
        let contacts = ObjectReport {
            object: "contacts".into(),
            hubspot_total: 251,
            warehouse_live: 250,
            ids_compared: true,
            hubspot_swept: Some(251),
            missing: Difference { count: 3, examples: vec!["7".into(), "9".into()] },
            extra: Difference { count: 1, examples: vec!["999999".into()] },
            stale: Difference::default(),
            history: Some(HistoryReport {
                records_sampled: 50,
                pairs_compared: 100,
                versions_differ: Difference {
                    count: 2,
                    examples: vec!["7/lifecyclestage".into(), "9/lifecyclestage".into()],
                },
                versions_missing: 3,
                versions_extra: 0,
                latest_differs: Difference { count: 1, examples: vec!["7/lifecyclestage".into()] },
                matches: false,
            }),
            calculated: Some(CalculatedReport {
                properties: vec!["num_associated_deals".into()],
                records_sampled: 100,
                records_behind: 0,
                values_compared: 100,
                stale: Difference { count: 1, examples: vec!["7/num_associated_deals".into()] },
                matches: false,
            }),
            matches: false,
        };
        let cars = ObjectReport {
            object: "cars".into(),
            hubspot_total: 30,
            warehouse_live: 30,
            ids_compared: false,
            hubspot_swept: None,
            missing: Difference::default(),
            extra: Difference::default(),
            stale: Difference::default(),
            history: Some(HistoryReport { pairs_compared: 60, matches: true, ..HistoryReport::default() }),
            calculated: None,
            matches: true,
        };
        let text = render_text(&VerifyReport::new(chrono::Utc::now(), vec![contacts, cars]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0].find("HUBSPOT"), lines[1].find("251"), "{text}");
        assert!(lines[2].contains("cars") && lines[2].ends_with("ok"), "{text}");
        assert!(text.contains("contacts: 3 missing from the warehouse (ids 7, 9, ...)"), "{text}");
        assert!(text.contains("contacts: 1 extra in the warehouse (ids 999999)"), "{text}");
        assert!(lines[1].contains("2 differ") && lines[2].contains("60 ok"), "{text}");
        assert!(
            text.contains("contacts: 2 record properties whose stored history differs from HubSpot's (3 versions missing, 0 extra) (ids 7/lifecyclestage, 9/lifecyclestage)"),
            "{text}"
        );
        assert!(text.contains("contacts: 1 record properties whose latest stored version is not HubSpot's current value (ids 7/lifecyclestage)"), "{text}");
        assert_eq!(lines[0].find("CALCULATED"), lines[1].find("1 stale"), "{text}");
        assert!(text.contains("contacts: 1 calculated values that are not HubSpot's current ones (`hsync refresh-calculated` re-reads them) (ids 7/num_associated_deals)"), "{text}");
        assert!(text.contains("exit 5"), "{text}");
    }
}
