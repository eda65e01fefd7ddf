//! `hsync demo`: the whole sync on a laptop with no token and no database server. It starts
//! the simulator in this process on a loopback port with a seeded portal
//! ([`PortalSpec::demo`]), backfills every object into a SQLite file, sweeps the
//! associations, changes records through the simulator's admin API (updates, creations, a
//! merge, archives, new associations), runs a CDC pass, an association poll and a deletes
//! reconcile, and prints what each step did with SQL to try on the file. Every step is the one
//! the real commands run (`backfill`, `associations`, `cdc`, `deletes`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use hsync_sim::{PortalSpec, SimConfig, DEFAULT_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

use super::session::{shutdown_on_signal, Session};
use crate::config::{Config, DestinationConfig, DestinationUrl, HubSpotConfig, SyncConfig};
use crate::destination::{AnyDestination, Destination};
use crate::hubspot::{HubSpotClient, Secret, TokenSource};
use crate::stream::backfill::Mode;
use crate::telemetry::progress;

/// Options of `hsync demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The SQLite file the demo writes.
    #[arg(long, default_value = "hsync-demo.db")]
    pub db: PathBuf,
    /// Delete the file first when it exists (an earlier demo's).
    #[arg(long)]
    pub replace: bool,
}

/// The objects the demo syncs, in the order pairs are stored: the core four, engagements,
/// commerce and the custom object.
const OBJECTS: [&str; 9] =
    ["contacts", "companies", "deals", "tickets", "calls", "notes", "products", "line_items", "cars"];
/// The first name the demo gives the contacts it updates.
const UPDATED_NAME: &str = "Ada (changed by the demo)";
const UPDATES: usize = 25;
const CREATES: usize = 10;
const ARCHIVES: usize = 5;

/// What the demo changed in the simulated portal.
#[derive(Debug, Default)]
struct Changes {
    updated: Vec<i64>,
    created: Vec<i64>,
    /// (survivor, absorbed)
    merged: Option<(i64, i64)>,
    archived_deals: Vec<i64>,
    company: Option<i64>,
}

/// Runs the demo.
pub async fn run(args: DemoArgs, leasing: &super::session::Leasing) -> anyhow::Result<ExitCode> {
    prepare_file(&args.db, args.replace)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("listening on a loopback port")?;
    let spec = PortalSpec::demo();
    let sim = hsync_sim::start(SimConfig { portal: spec.clone(), ..SimConfig::default() }, listener)
        .await
        .context("starting the simulator")?;
    let base = sim.base_url();
    let count = |name: &str| spec.objects.get(name).copied().unwrap_or_default();
    println!(
        "hsync demo: a simulated HubSpot portal on {base} ({} contacts, {} companies, {} deals, {} tickets, {} calls, {} notes, {} products, {} line items, {} cars; seed {})",
        spec.contacts,
        spec.companies,
        spec.deals,
        spec.tickets,
        count("calls"),
        count("notes"),
        count("products"),
        count("line_items"),
        spec.cars,
        spec.seed
    );
    println!("syncing it into {}\n", args.db.display());
    let outcome = sync(&args.db, &base, leasing).await;
    tokio::time::timeout(hsync_sim::SHUTDOWN_GRACE, sim.stop()).await.ok();
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// Refuses to overwrite a file unless asked to; removes it (and SQLite's WAL files) when asked.
fn prepare_file(db: &Path, replace: bool) -> anyhow::Result<()> {
    if !db.exists() {
        return Ok(());
    }
    if !replace {
        return Err(crate::stream::Error::Precondition(format!(
            "{} already exists; run `hsync demo --replace` to start over, or pick another file with --db",
            db.display()
        ))
        .into());
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", Path::new(&path).display())),
        }
    }
    Ok(())
}

fn demo_config(db: &Path, base_url: &str) -> Config {
    Config {
        hubspot: HubSpotConfig { base_url: base_url.to_owned(), ..HubSpotConfig::default() },
        destination: DestinationConfig {
            url: DestinationUrl::new(format!("sqlite://{}", db.display())),
            ..DestinationConfig::default()
        },
        sync: SyncConfig { objects: OBJECTS.map(str::to_owned).to_vec(), settle_lag_secs: 5, ..SyncConfig::default() },
        ..Config::default()
    }
}

async fn sync(db: &Path, base_url: &str, leasing: &super::session::Leasing) -> anyhow::Result<()> {
    let config = demo_config(db, base_url);
    let mut session = Session::open_config(config.clone(), leasing).await?;
    // The simulator's built-in token, handed over directly: nothing to export.
    session.jobs.runner.client = HubSpotClient::new(
        config.hubspot_client_config(),
        TokenSource::Fixed { token: Secret::new(DEFAULT_TOKEN), origin: "the demo simulator's token".to_owned() },
        Arc::new(session.jobs.runner.state.clone()),
        Arc::clone(&session.jobs.runner.clock),
    )?;
    let shutdown = shutdown_on_signal();
    let objects = session.objects(&[]).await?;

    println!("1. backfill: every record, one committed page of 200 at a time");
    for object in &objects {
        let report = super::backfill::backfill_object(&session, object, Mode::Fresh, false, &shutdown).await?;
        let pages = if report.pages == 1 { "page" } else { "pages" };
        progress::suspend(|| println!("   {:<10} {:>6} rows in {} {pages}", object.table, report.rows, report.pages));
    }

    let sources = session.jobs.association_sources(&objects).await?;
    println!("2. associations: the first pass sweeps every record's edges");
    for source in &sources {
        let report = super::associations::associations_source(&session, source, true, &shutdown).await?;
        for pair in &report.pairs {
            println!("   {} -> {}: {} edges", pair.from, pair.to, pair.upserted);
        }
    }

    let admin = Admin { http: reqwest::Client::new(), base: base_url.to_owned() };
    let changes = change_portal(&session, &admin).await?;
    println!("3. changes in the simulated portal (through its admin API):");
    println!("   updated the first name of {} contacts to {UPDATED_NAME:?}", changes.updated.len());
    println!(
        "   created {} contacts (demo-1@example.com ...) and associated them with company {}",
        changes.created.len(),
        changes.company.unwrap_or_default()
    );
    if let Some((survivor, absorbed)) = changes.merged {
        println!("   merged contact {absorbed} into contact {survivor}");
    }
    println!("   archived {} deals: {}", changes.archived_deals.len(), ids(&changes.archived_deals));

    println!("4. cdc: what changed since the backfill started");
    for object in &objects {
        let report = super::cdc::cdc_object(&session, object, &shutdown).await?;
        println!("   {:<10} {:>6} changed rows", object.table, report.rows);
    }
    println!("5. associations: the edges of the records that changed");
    for source in &sources {
        let report = super::associations::associations_source(&session, source, false, &shutdown).await?;
        for pair in report.pairs.iter().filter(|p| p.upserted + p.tombstoned > 0) {
            println!(
                "   {} -> {}: {} new or changed edges, {} gone",
                pair.from, pair.to, pair.upserted, pair.tombstoned
            );
        }
    }
    println!("6. deletes: archived and merged-away records get flagged, never deleted");
    for object in &objects {
        let report = super::deletes::deletes_object(&session, object, &shutdown).await?;
        if report.written > 0 {
            println!(
                "   {:<10} {} archived, {} merged away: {} rows flagged",
                object.table, report.archived, report.merged, report.written
            );
        }
    }

    println!("\n{}: rows per table (live: not archived, merged away or deleted)", db.display());
    for object in &objects {
        let rows = session.jobs.runner.dest.id_flags(&object.table).await?;
        let live = rows.iter().filter(|r| !r.flagged()).count();
        println!("   {:<10} {:>6} rows, {:>6} live", object.table, rows.len(), live);
    }
    if let AnyDestination::Sqlite(dest) = &session.jobs.runner.dest {
        // Checkpoints the WAL into the file, so any SQLite reader sees everything.
        dest.close().await;
    }
    print!("{}", queries(db, &changes));
    Ok(())
}

/// The simulator's admin API over loopback HTTP.
#[derive(Debug)]
struct Admin {
    http: reqwest::Client,
    base: String,
}

impl Admin {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("calling the simulator's {method} {path}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "the simulator answered {status} to {method} {path}: {body}");
        Ok(body)
    }
}

fn id_of(record: &Value) -> anyhow::Result<i64> {
    record["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .with_context(|| format!("no id in the simulator's answer {record}"))
}

/// Every `len / count`-th id, `count` of them.
fn spread(ids: &[i64], count: usize) -> Vec<i64> {
    let step = (ids.len() / count.max(1)).max(1);
    ids.iter().step_by(step).take(count).copied().collect()
}

async fn change_portal(session: &Session, admin: &Admin) -> anyhow::Result<Changes> {
    let dest = &session.jobs.runner.dest;
    let contacts = dest.live_ids("contacts").await?;
    let deals = dest.live_ids("deals").await?;
    let companies = dest.live_ids("companies").await?;
    let mut changes = Changes { updated: spread(&contacts, UPDATES), ..Changes::default() };
    for id in &changes.updated {
        let body = json!({ "properties": { "firstname": UPDATED_NAME } });
        admin.call(Method::PATCH, &format!("/_sim/objects/contacts/{id}"), Some(body)).await?;
    }
    changes.company = companies.first().copied();
    for i in 1..=CREATES {
        let body = json!({ "properties": {
            "email": format!("demo-{i}@example.com"), "firstname": "New", "lastname": format!("Contact {i}")
        }});
        let id = id_of(&admin.call(Method::POST, "/_sim/objects/contacts", Some(body)).await?)?;
        if let Some(company) = changes.company {
            let edge = json!({ "from": "contacts", "fromId": id, "to": "companies", "toId": company });
            admin.call(Method::POST, "/_sim/associations", Some(edge)).await?;
        }
        changes.created.push(id);
    }
    // The last two contacts: never among the updated ones, which start at the first.
    if let [.., survivor, absorbed] = contacts[..] {
        let body = json!({ "primary": survivor, "absorbed": absorbed });
        admin.call(Method::POST, "/_sim/objects/contacts/merge", Some(body)).await?;
        changes.merged = Some((survivor, absorbed));
    }
    changes.archived_deals = spread(&deals, ARCHIVES);
    for id in &changes.archived_deals {
        admin.call(Method::POST, &format!("/_sim/objects/deals/{id}/archive"), None).await?;
    }
    Ok(changes)
}

fn ids(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

/// SQL to try on the file, each query one line a shell can paste.
fn queries(db: &Path, changes: &Changes) -> String {
    let db = db.display();
    let mut out = String::from("\ntry:\n");
    let mut add = |sql: String| out.push_str(&format!("  sqlite3 -header {db} \"{sql}\"\n"));
    add(format!(
        "select id, firstname, lastname, _hsync_cursor from contacts where firstname = '{UPDATED_NAME}' limit 5"
    ));
    add("select id, email, firstname, lastname from contacts where email like 'demo-%@example.com' order by id"
        .to_owned());
    if changes.merged.is_some() {
        add("select id, _hsync_merged_into from contacts where _hsync_merged_into is not null".to_owned());
    }
    add("select id, dealname, _hsync_archived_at from deals where _hsync_archived_at is not null".to_owned());
    add("select to_type, count(*) as edges from associations where from_type = 'contacts' and deleted_at is null group by to_type".to_owned());
    add("select d.id, d.dealname, round(sum(li.amount), 2) as line_item_total from deals d join associations a on a.from_type = 'deals' and a.from_id = d.id and a.to_type = 'line_items' and a.deleted_at is null join line_items li on li.id = a.to_id group by d.id, d.dealname order by line_item_total desc limit 5".to_owned());
    add("select hs_call_direction, count(*) as calls from calls group by hs_call_direction".to_owned());
    add("select stream, status, rows_written, finished_at from _hsync_runs order by id desc limit 10".to_owned());
    out.push_str("next: point hsync at your portal (see README: hsync check, hsync plan, hsync backfill)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_evenly_spaced_ids_from_the_start() {
        let ids: Vec<i64> = (1..=100).collect();
        assert_eq!(spread(&ids, 4), vec![1, 26, 51, 76]);
        assert_eq!(spread(&ids[..3], 5), vec![1, 2, 3]);
        assert!(spread(&[], 5).is_empty());
    }
}
