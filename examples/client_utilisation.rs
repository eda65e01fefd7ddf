//! Measures how much of HubSpot's rate limits the client uses without ever being refused,
//! driven by `scripts/bench-client`.
//!
//! It starts the simulator in-process with a tier's limits, lets several tasks share one
//! `HubSpotClient` (list pages on the general bucket, keyset searches on the search bucket) for
//! a fixed time, and reads from the simulator's request log how many calls each bucket served
//! and how many were refused. Utilisation is calls made divided by calls the limit allows over
//! the same time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hsync::hubspot::{
    BudgetConfig, BudgetSetting, ClientConfig, Direction, FileBudgetStore, Filter, FilterGroup, HubSpotClient,
    ListParams, Operator, SearchRequest, Secret, TokenSource,
};
use hsync_sim::{LimitSettings, PortalSpec, SimConfig, Tier, DEFAULT_TOKEN};

#[derive(Debug, Parser)]
#[command(about = "Measures the client's rate-bucket utilisation against the simulator")]
struct Args {
    /// How long to drive the client.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Tasks calling list (general bucket).
    #[arg(long, default_value_t = 4)]
    list_tasks: usize,
    /// Tasks calling search (search bucket).
    #[arg(long, default_value_t = 2)]
    search_tasks: usize,
    /// The simulated tier.
    #[arg(long, value_enum, default_value_t = Tier::Professional)]
    tier: Tier,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let limits = LimitSettings::for_tier(args.tier);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let portal = PortalSpec { contacts: 5_000, custom_properties: 10, ..PortalSpec::default() };
    let sim = hsync_sim::start(SimConfig { portal, limits: limits.clone(), ..SimConfig::default() }, listener).await?;
    let dir = tempfile::tempdir()?;
    let client = HubSpotClient::new(
        ClientConfig {
            base_url: sim.base_url(),
            budget: BudgetConfig { setting: BudgetSetting::Unlimited, ..BudgetConfig::default() },
            ..ClientConfig::default()
        },
        TokenSource::Fixed { token: Secret::new(DEFAULT_TOKEN), origin: "simulator token".into() },
        Arc::new(FileBudgetStore::new(dir.path().join("budget.json"))),
        hsync::clock::system(),
    )?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..args.list_tasks {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut after = None;
            while Instant::now() < deadline {
                let page = client.list("contacts", &ListParams { limit: 100, after, ..ListParams::default() }).await?;
                after = page.next_after().map(str::to_owned);
            }
            anyhow::Ok(())
        }));
    }
    for _ in 0..args.search_tasks {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = 0u64;
            while Instant::now() < deadline {
                let request = SearchRequest::new(
                    vec![FilterGroup(vec![Filter::compare("hs_object_id", Operator::Gt, last)])],
                    Some(("hs_object_id".into(), Direction::Ascending)),
                    vec!["email".into()],
                    200,
                    0,
                )?;
                let page = client.search("contacts", &request).await?;
                last = page.results.last().map_or(0, |r| r.id.parse().unwrap_or(0));
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await.context("task panicked")??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let http = reqwest::Client::new();
    let log: serde_json::Value = http.get(format!("{}/_sim/requests", sim.base_url())).send().await?.json().await?;
    let bucket = |name: &str| log["byBucket"][name].as_u64().unwrap_or(0);
    let refused = log["byStatus"]["429"].as_u64().unwrap_or(0);
    let general = bucket("general");
    let search = bucket("search");
    let general_allowed = f64::from(limits.window_max) * elapsed / (f64::from(limits.window_ms) / 1000.0);
    let search_allowed = f64::from(limits.search_per_second) * elapsed;
    println!("| bucket | limit | calls made | calls allowed | utilisation | 429s |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| general | {} per {} s | {general} | {general_allowed:.0} | {:.1}% | {} |",
        limits.window_max,
        limits.window_ms / 1000,
        100.0 * general as f64 / general_allowed,
        log["byPolicy"]["TEN_SECONDLY_ROLLING"].as_u64().unwrap_or(0)
    );
    println!(
        "| search | {} per s | {search} | {search_allowed:.0} | {:.1}% | {} |",
        limits.search_per_second,
        100.0 * search as f64 / search_allowed,
        log["byPolicy"]["SECONDLY"].as_u64().unwrap_or(0)
    );
    println!();
    println!(
        "{:.1} s, {} list tasks and {} search tasks sharing one client; {refused} responses were 429.",
        elapsed, args.list_tasks, args.search_tasks
    );
    sim.stop().await;
    Ok(())
}
