//! Load generator for `hsync sim`, driven by `scripts/bench-sim`.
//!
//! Walks every contact of a running simulator the way hsync's backfill does — keyset-paginated
//! search (`hs_object_id GT <last id>`, ascending, 200 per page) and, for comparison, list pages
//! of 100 — with 1 and with N concurrent walkers over disjoint id ranges, and prints a Markdown
//! table: records/s, requests/s, p50/p99 latency, response bytes/s, the simulator's CPU seconds
//! and peak RSS (from `/proc/<pid>`), and this load generator's own CPU seconds.
//!
//! It runs on a single-threaded Tokio runtime so that, on a small machine, it takes at most one
//! core away from the simulator; its CPU time is reported so the reader can see the competition.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::{Parser, ValueEnum};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};

const SEARCH_PAGE: usize = 200;
const LIST_PAGE: usize = 100;

#[derive(Debug, Parser)]
#[command(about = "Drives `hsync sim` with backfill-shaped load and reports throughput")]
struct Args {
    /// Base URL of the running simulator.
    #[arg(long)]
    base: String,
    /// Bearer token.
    #[arg(long, default_value = "pat-sim-00000000-0000-0000-0000-000000000000")]
    token: String,
    /// Process id of the simulator, for its CPU time and peak RSS.
    #[arg(long)]
    sim_pid: Option<u32>,
    /// Clock ticks per second of /proc/<pid>/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    /// How many properties to request (the first N of GET /crm/v3/properties/contacts).
    #[arg(long, default_value_t = 50)]
    properties: usize,
    /// Concurrent walker counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    walkers: Vec<usize>,
    /// Full walks per measurement; the round with the median records/s is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Which endpoints to measure.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "search,list")]
    kinds: Vec<Kind>,
    /// Before the load, measure how much faster `nproc` busy threads are than one.
    #[arg(long)]
    calibrate: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    Search,
    List,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Search => "search, 200/page",
            Kind::List => "list, 100/page",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Page {
    results: Vec<Item>,
    #[serde(default)]
    paging: Option<Paging>,
    #[serde(default)]
    total: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Item {
    id: String,
    #[serde(default)]
    #[allow(dead_code)]
    properties: IgnoredAny,
}

#[derive(Debug, Deserialize)]
struct Paging {
    next: Option<Next>,
}

#[derive(Debug, Deserialize)]
struct Next {
    after: String,
}

#[derive(Debug)]
struct Ctx {
    base: String,
    token: String,
    names: Vec<String>,
}

/// What one walker (or one round, merged) saw.
#[derive(Debug, Default)]
struct Tally {
    records: u64,
    requests: u64,
    bytes: u64,
    latencies: Vec<Duration>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.records += other.records;
        self.requests += other.requests;
        self.bytes += other.bytes;
        self.latencies.extend(other.latencies);
    }
}

#[derive(Debug)]
struct Round {
    tally: Tally,
    elapsed: Duration,
    sim_cpu: Option<f64>,
    sim_hwm_kib: Option<u64>,
    own_cpu: Option<f64>,
}

impl Round {
    fn records_per_sec(&self) -> f64 {
        self.tally.records as f64 / self.elapsed.as_secs_f64()
    }
}

/// utime + stime of a process in seconds.
fn cpu_seconds(pid: &str, clk_tck: u64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clk_tck as f64)
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Resets the simulator's peak RSS (VmHWM) so each round reports its own peak; needs the
/// right to write `/proc/<pid>/clear_refs` (same user). Returns whether it worked.
fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

async fn post_search(client: &reqwest::Client, ctx: &Ctx, body: &Value) -> anyhow::Result<(Page, u64, Duration)> {
    let started = Instant::now();
    let resp = client
        .post(format!("{}/crm/v3/objects/contacts/search", ctx.base))
        .bearer_auth(&ctx.token)
        .json(body)
        .send()
        .await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    let latency = started.elapsed();
    ensure!(status.is_success(), "search answered {status}: {}", String::from_utf8_lossy(&bytes));
    let page: Page = serde_json::from_slice(&bytes).context("parsing a search page")?;
    Ok((page, bytes.len() as u64, latency))
}

fn search_body(ctx: &Ctx, after_id: u64, upto: Option<u64>, limit: usize) -> Value {
    let mut filters = vec![json!({"propertyName": "hs_object_id", "operator": "GT", "value": after_id.to_string()})];
    if let Some(hi) = upto {
        filters.push(json!({"propertyName": "hs_object_id", "operator": "LTE", "value": hi.to_string()}));
    }
    json!({
        "filterGroups": [{"filters": filters}],
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "properties": ctx.names,
        "limit": limit,
    })
}

/// Keyset walk over ids in `(lo, hi]`; `hi = None` is the open-ended walk hsync makes.
async fn walk_search(ctx: &Ctx, lo: u64, hi: Option<u64>) -> anyhow::Result<Tally> {
    let client = reqwest::Client::new();
    let mut tally = Tally::default();
    let mut last = lo;
    loop {
        let body = search_body(ctx, last, hi, SEARCH_PAGE);
        let (page, bytes, latency) = post_search(&client, ctx, &body).await?;
        tally.requests += 1;
        tally.bytes += bytes;
        tally.latencies.push(latency);
        tally.records += page.results.len() as u64;
        let Some(item) = page.results.last() else { break };
        last = item.id.parse().context("record id")?;
        if page.paging.and_then(|p| p.next).is_none() {
            break;
        }
    }
    Ok(tally)
}

/// List walk over ids in `(lo, hi]`, counting only records inside the range.
async fn walk_list(ctx: &Ctx, lo: u64, hi: Option<u64>) -> anyhow::Result<Tally> {
    let client = reqwest::Client::new();
    let mut tally = Tally::default();
    let props = ctx.names.join(",");
    let mut after = (lo > 0).then(|| (lo + 1).to_string());
    loop {
        let mut query = vec![("limit", LIST_PAGE.to_string()), ("properties", props.clone())];
        if let Some(a) = &after {
            query.push(("after", a.clone()));
        }
        let started = Instant::now();
        let resp = client
            .get(format!("{}/crm/v3/objects/contacts", ctx.base))
            .bearer_auth(&ctx.token)
            .query(&query)
            .send()
            .await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        tally.latencies.push(started.elapsed());
        ensure!(status.is_success(), "list answered {status}: {}", String::from_utf8_lossy(&bytes));
        let page: Page = serde_json::from_slice(&bytes).context("parsing a list page")?;
        tally.requests += 1;
        tally.bytes += bytes.len() as u64;
        let mut passed_end = false;
        for item in &page.results {
            let id: u64 = item.id.parse().context("record id")?;
            if hi.is_some_and(|hi| id > hi) {
                passed_end = true;
            } else {
                tally.records += 1;
            }
        }
        match page.paging.and_then(|p| p.next) {
            Some(next) if !passed_end => after = Some(next.after),
            _ => break,
        }
    }
    Ok(tally)
}

/// Splits ids `(min - 1, max]` into `n` ranges of equal width.
fn ranges(min: u64, max: u64, n: usize) -> Vec<(u64, Option<u64>)> {
    let lo = min.saturating_sub(1);
    let width = (max - lo).div_ceil(n as u64);
    (0..n as u64)
        .map(|i| {
            let start = lo + i * width;
            let end = if i + 1 == n as u64 { None } else { Some(start + width) };
            (start, end)
        })
        .collect()
}

async fn run_round(
    ctx: &Arc<Ctx>,
    args: &Args,
    kind: Kind,
    walkers: usize,
    min: u64,
    max: u64,
) -> anyhow::Result<Round> {
    let own_pid = std::process::id().to_string();
    let sim_pid = args.sim_pid.map(|p| p.to_string());
    let sim_before = sim_pid.as_deref().and_then(|p| cpu_seconds(p, args.clk_tck));
    let own_before = cpu_seconds(&own_pid, args.clk_tck);
    let peak_reset = args.sim_pid.is_some_and(reset_peak_rss);
    let started = Instant::now();
    let walks: Vec<_> = ranges(min, max, walkers)
        .into_iter()
        .map(|(lo, hi)| {
            let ctx = Arc::clone(ctx);
            tokio::spawn(async move {
                match kind {
                    Kind::Search => walk_search(&ctx, lo, hi).await,
                    Kind::List => walk_list(&ctx, lo, hi).await,
                }
            })
        })
        .collect();
    let mut tally = Tally::default();
    for walk in walks {
        tally.merge(walk.await??);
    }
    let elapsed = started.elapsed();
    let sim_after = sim_pid.as_deref().and_then(|p| cpu_seconds(p, args.clk_tck));
    let own_after = cpu_seconds(&own_pid, args.clk_tck);
    Ok(Round {
        tally,
        elapsed,
        sim_cpu: sim_before.zip(sim_after).map(|(a, b)| b - a),
        sim_hwm_kib: args.sim_pid.filter(|_| peak_reset).and_then(|p| status_kib(p, "VmHWM:")),
        own_cpu: own_before.zip(own_after).map(|(a, b)| b - a),
    })
}

/// A fixed amount of integer work, for the parallelism check.
fn spin() -> u64 {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..300_000_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x)
}

/// How many single-thread units of work `threads` busy threads get done in parallel.
fn parallel_speedup(threads: usize) -> (f64, f64) {
    let started = Instant::now();
    spin();
    let one = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let handles: Vec<_> = (0..threads).map(|_| std::thread::spawn(spin)).collect();
    for h in handles {
        let _ = h.join();
    }
    let all = started.elapsed().as_secs_f64();
    (one, threads as f64 * one / all)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.digits$}"))
}

fn row(kind: Kind, walkers: usize, rounds: &mut [Round]) -> String {
    rounds.sort_by(|a, b| a.records_per_sec().total_cmp(&b.records_per_sec()));
    let lowest = rounds.first().map_or(0.0, Round::records_per_sec);
    let highest = rounds.last().map_or(0.0, Round::records_per_sec);
    let r = &mut rounds[rounds.len() / 2];
    r.tally.latencies.sort_unstable();
    let secs = r.elapsed.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let sim_cpu_share = r.sim_cpu.map(|c| c / secs * 100.0);
    let records_per_sim_cpu = r.sim_cpu.filter(|c| *c > 0.0).map(|c| r.tally.records as f64 / c);
    format!(
        "| {} | {walkers} | {} | {:.1} | **{:.0}** ({:.0}–{:.0}) | {:.1} | {:.1} | {:.1} | {:.1} | {} ({}%) | {} | {} | {} |",
        kind.label(),
        r.tally.records,
        secs,
        r.records_per_sec(),
        lowest,
        highest,
        r.tally.requests as f64 / secs,
        ms(percentile(&r.tally.latencies, 50.0)),
        ms(percentile(&r.tally.latencies, 99.0)),
        r.tally.bytes as f64 / secs / 1_048_576.0,
        fmt_opt(r.sim_cpu, 2),
        fmt_opt(sim_cpu_share, 0),
        fmt_opt(records_per_sim_cpu, 0),
        r.sim_hwm_kib.map_or_else(|| "n/a".to_owned(), |k| format!("{:.0}", k as f64 / 1024.0)),
        fmt_opt(r.own_cpu, 2),
    )
}

async fn contacts_id_bounds(ctx: &Ctx) -> anyhow::Result<(u64, u64, u64)> {
    let client = reqwest::Client::new();
    let mut ends = Vec::new();
    let mut total = 0;
    for direction in ["ASCENDING", "DESCENDING"] {
        let body = json!({
            "sorts": [{"propertyName": "hs_object_id", "direction": direction}],
            "properties": ["hs_object_id"],
            "limit": 1,
        });
        let (page, _, _) = post_search(&client, ctx, &body).await?;
        total = page.total.unwrap_or_default();
        let first = page.results.first().context("the portal has no contacts")?;
        ends.push(first.id.parse::<u64>()?);
    }
    Ok((ends[0], ends[1], total))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.calibrate {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let (one, speedup) = parallel_speedup(threads);
        println!(
            "- CPU parallelism check: {threads} busy threads finish {speedup:.2}× the work of one in the same time \
             (ideal {threads}×; one unit took {one:.2} s)."
        );
    }
    let base = args.base.trim_end_matches('/').to_owned();
    let client = reqwest::Client::new();
    let props: Value = client
        .get(format!("{base}/crm/v3/properties/contacts"))
        .bearer_auth(&args.token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let names: Vec<String> = props["results"]
        .as_array()
        .context("properties response without results")?
        .iter()
        .filter(|p| p["archived"] != json!(true))
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .take(args.properties)
        .collect();
    if names.len() < args.properties {
        bail!("the portal has only {} contact properties", names.len());
    }
    let ctx = Arc::new(Ctx { base, token: args.token.clone(), names });
    let (min, max, total) = contacts_id_bounds(&ctx).await?;
    eprintln!("sim_load: {total} contacts, ids {min}..={max}, {} properties", ctx.names.len());
    if let Some(pid) = args.sim_pid {
        if let Some(rss) = status_kib(pid, "VmRSS:") {
            println!("- Simulator resident memory before the load: {:.0} MiB.", rss as f64 / 1024.0);
        }
    }
    // Warm up: the first search sorts the index; the first requests open connections.
    walk_search(&ctx, max.saturating_sub(1000), None).await?;

    println!();
    println!("| Load | Walkers | Records | Seconds | Records/s (min–max of {} rounds) | Requests/s | p50 ms | p99 ms | MiB/s | Sim CPU s (share of wall) | Records per sim CPU s | Sim peak RSS MiB | Load generator CPU s |", args.rounds);
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut headline = Vec::new();
    for &kind in &args.kinds {
        for &walkers in &args.walkers {
            let mut rounds = Vec::new();
            for round in 0..args.rounds.max(1) {
                let r = run_round(&ctx, &args, kind, walkers, min, max).await?;
                ensure!(
                    r.tally.records == total,
                    "{} with {walkers} walkers saw {} records, expected {total}",
                    kind.label(),
                    r.tally.records
                );
                eprintln!(
                    "sim_load: {} x{walkers} round {}: {:.0} records/s",
                    kind.label(),
                    round + 1,
                    r.records_per_sec()
                );
                rounds.push(r);
            }
            println!("{}", row(kind, walkers, &mut rounds));
            if kind == Kind::Search {
                headline.push(format!(
                    "{:.0} records/s with {walkers} walker{}",
                    rounds[rounds.len() / 2].records_per_sec(),
                    if walkers == 1 { "" } else { "s" }
                ));
            }
        }
    }
    if !headline.is_empty() {
        println!();
        println!("**Search pages of 200 contacts with {} properties: {}.**", ctx.names.len(), headline.join("; "));
    }
    Ok(())
}
