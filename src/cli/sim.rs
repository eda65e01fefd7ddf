//! `hsync sim`: serves a seeded, simulated HubSpot portal until interrupted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};
use hsync_sim::catalogue::{Count, TYPES};
use hsync_sim::{
    Behaviour, FaultRule, LatencySettings, LimitSettings, ListCursor, OverLimit, PortalSpec, SimConfig, Tier,
    TokenGrant, DEFAULT_TOKEN,
};

/// Options of `hsync sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4010")]
    pub listen: SocketAddr,
    /// Seed of the generated portal: the same seed always serves the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 1_000)]
    pub contacts: u64,
    #[arg(long, default_value_t = 200)]
    pub companies: u64,
    #[arg(long, default_value_t = 300)]
    pub deals: u64,
    #[arg(long, default_value_t = 100)]
    pub tickets: u64,
    /// Records of the custom object `cars` (type 2-3508482).
    #[arg(long, default_value_t = 50)]
    pub cars: u64,
    #[command(flatten)]
    pub objects: CatalogueCounts,
    /// Custom properties added to every object type, cycling through every property type.
    #[arg(long, default_value_t = 20)]
    pub custom_properties: usize,
    /// List only the generated properties, the rollups and the sensitive one, not the hundreds
    /// of HubSpot's own (mostly empty) properties a real portal lists.
    #[arg(long)]
    pub narrow_catalogue: bool,
    /// Thousandths of records whose last-modified time is one shared millisecond (a bulk update).
    #[arg(long, default_value_t = 150)]
    pub bulk_update_permille: u64,
    /// Delay before writes become visible to search, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub index_lag_ms: i64,
    /// Targets per input page in association batch reads.
    #[arg(long, default_value_t = 100)]
    pub association_page_size: usize,
    /// The subscription tier whose limits are enforced.
    #[arg(long, value_enum, default_value_t = Tier::Professional)]
    pub tier: Tier,
    /// Serve without any rate limit (for benchmarks).
    #[arg(long)]
    pub no_limits: bool,
    /// Override the tier's daily limit.
    #[arg(long)]
    pub daily_limit: Option<u64>,
    /// The portal's time zone (IANA name): the daily limit resets at its midnight.
    #[arg(long, default_value = "UTC")]
    pub timezone: String,
    /// Send Retry-After on 429 responses (HubSpot does not document one).
    #[arg(long)]
    pub retry_after: bool,
    /// Accepted token, optionally with scopes: TOKEN or TOKEN=scope1,scope2. Repeatable.
    /// Without any, the built-in simulator token with every scope is accepted.
    #[arg(long = "token", value_name = "TOKEN[=SCOPES]")]
    pub tokens: Vec<String>,
    /// A fault rule as JSON, e.g. '{"kind":"server_error","status":502,"html":true,"remaining":3}'. Repeatable.
    #[arg(long = "fault", value_name = "JSON")]
    pub faults: Vec<String>,
    /// What list does with limit above 100.
    #[arg(long, value_enum, default_value_t = OverLimit::Clamp)]
    pub list_over_limit: OverLimit,
    /// What a list page's `paging.next.after` is: the next record's id (HubSpot's documented
    /// cursor), or an opaque token or an offset, to try clients against servers that differ.
    #[arg(long, value_enum, default_value_t = ListCursor::Id)]
    pub list_cursor: ListCursor,
    /// Leave requested-but-empty properties out of search results instead of sending null.
    #[arg(long)]
    pub search_omit_nulls: bool,
    /// Hold answers as long as HubSpot takes: a realistic profile whose search median is this
    /// many milliseconds (list pages 0.8x, batch and association calls 0.7x, other calls 0.5x,
    /// plus a small cost per record returned). Without it answers are not held.
    #[arg(long, value_name = "MS")]
    pub latency_ms: Option<u32>,
    /// Spread of those delays: sigma of the log-normal factor around each median.
    #[arg(long, value_name = "SIGMA", default_value_t = 0.3, requires = "latency_ms")]
    pub latency_jitter: f64,
}

impl SimArgs {
    /// The simulator configuration these options describe.
    pub fn to_config(&self) -> anyhow::Result<SimConfig> {
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            anyhow::bail!("--timezone {:?} is not an IANA time zone name such as UTC or Europe/Berlin", self.timezone);
        }
        let mut limits = LimitSettings::for_tier(self.tier);
        limits.enabled = !self.no_limits;
        limits.send_retry_after = self.retry_after;
        limits.timezone.clone_from(&self.timezone);
        if let Some(daily) = self.daily_limit {
            limits.daily_limit = daily;
        }
        let latency = match self.latency_ms {
            Some(ms) => LatencySettings::realistic(f64::from(ms), self.latency_jitter),
            None => LatencySettings::default(),
        };
        latency.validate().map_err(|e| anyhow::anyhow!("--latency-ms/--latency-jitter: {e}"))?;
        let faults = self
            .faults
            .iter()
            .map(|f| serde_json::from_str::<FaultRule>(f).with_context(|| format!("parsing --fault {f}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let tokens = if self.tokens.is_empty() {
            vec![TokenGrant { token: DEFAULT_TOKEN.to_owned(), scopes: None }]
        } else {
            self.tokens
                .iter()
                .map(|t| match t.split_once('=') {
                    Some((token, scopes)) => TokenGrant {
                        token: token.to_owned(),
                        scopes: Some(scopes.split(',').map(str::to_owned).collect()),
                    },
                    None => TokenGrant { token: t.clone(), scopes: None },
                })
                .collect()
        };
        Ok(SimConfig {
            portal: PortalSpec {
                seed: self.seed,
                contacts: self.contacts,
                companies: self.companies,
                deals: self.deals,
                tickets: self.tickets,
                cars: self.cars,
                objects: self.objects.counts(self.contacts),
                custom_properties: self.custom_properties,
                hubspot_catalogue: !self.narrow_catalogue,
                bulk_update_permille: self.bulk_update_permille,
                index_lag_ms: self.index_lag_ms,
                association_page_size: self.association_page_size,
                ..PortalSpec::default()
            },
            limits,
            faults,
            tokens,
            oauth_clients: Vec::new(),
            behaviour: Behaviour {
                search_nulls: !self.search_omit_nulls,
                list_over_limit: self.list_over_limit,
                list_cursor: self.list_cursor,
                ..Behaviour::default()
            },
            latency,
        })
    }
}

/// Record counts of the catalogue's types beyond the original five, one `--<type> N` option
/// per type (`--calls`, `--line_items`, ...), made from the simulator's catalogue so a type added
/// there gets its option here. Only the options given are held.
#[derive(Clone, Debug, Default)]
pub struct CatalogueCounts(pub BTreeMap<String, u64>);

impl CatalogueCounts {
    /// The counts to generate: the given ones, the catalogue's defaults for `contacts`
    /// contacts for the rest.
    pub fn counts(&self, contacts: u64) -> BTreeMap<String, u64> {
        let mut counts = PortalSpec::catalogue_counts(contacts);
        counts.extend(self.0.iter().map(|(k, v)| (k.clone(), *v)));
        counts
    }
}

impl FromArgMatches for CatalogueCounts {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut counts = CatalogueCounts::default();
        counts.update_from_arg_matches(matches)?;
        Ok(counts)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for kind in TYPES.iter().filter(|k| k.count != Count::Spec) {
            if let Some(n) = matches.get_one::<u64>(kind.name) {
                self.0.insert(kind.name.to_owned(), *n);
            }
        }
        Ok(())
    }
}

impl Args for CatalogueCounts {
    fn augment_args(cmd: Command) -> Command {
        TYPES.iter().filter(|k| k.count != Count::Spec).fold(cmd, |cmd, kind| {
            let default = match kind.count {
                Count::PerMille(n) => format!("{n} per thousand contacts"),
                Count::Fixed(n) => n.to_string(),
                Count::Spec => String::new(),
            };
            cmd.arg(
                Arg::new(kind.name)
                    .long(kind.name)
                    .value_name("N")
                    .value_parser(clap::value_parser!(u64))
                    .help(format!("Records of {} (type {}) [default: {default}]", kind.name, kind.type_id)),
            )
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

/// Runs the simulator until SIGINT or SIGTERM.
pub async fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    let config = args.to_config()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}; pick a free address with --listen", args.listen))?;
    let started = std::time::Instant::now();
    let handle = hsync_sim::start(config, listener).await.context("starting the simulator")?;
    let base = handle.base_url();
    tracing::info!(
        address = %handle.addr,
        seed = args.seed,
        contacts = args.contacts,
        build_ms = started.elapsed().as_millis() as u64,
        "simulator listening"
    );
    println!("hsync sim listening on {base}");
    if args.tokens.is_empty() {
        println!("token: {DEFAULT_TOKEN}");
        println!(
            "try:   curl -s -H 'Authorization: Bearer {DEFAULT_TOKEN}' '{base}/crm/v3/objects/contacts?limit=2&properties=email,firstname'"
        );
    }
    println!("admin: {base}/_sim/truth, {base}/_sim/requests, {base}/_sim/faults, {base}/_sim/latency");
    super::wait_for_signal().await;
    tracing::info!("simulator stopping");
    tokio::time::timeout(hsync_sim::SHUTDOWN_GRACE, handle.stop()).await.ok();
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};
    use super::*;

    fn config(args: &[&str]) -> Result<SimConfig, String> {
        let cli = Cli::try_parse_from(["hsync", "sim"].iter().chain(args)).map_err(|e| e.to_string())?;
        let Command::Sim(sim) = cli.command else { panic!("parsed as another command") };
        sim.to_config().map_err(|e| e.to_string())
    }

    #[test]
    fn latency_flags_set_a_profile_scaled_to_the_search_median() {
        assert_eq!(config(&[]).unwrap().latency, LatencySettings::default(), "off without --latency-ms");
        let latency = config(&["--latency-ms", "300"]).unwrap().latency;
        assert_eq!(latency, LatencySettings::realistic(300.0, 0.3));
        assert_eq!((latency.search.median_ms, latency.list.median_ms, latency.other.median_ms), (300.0, 240.0, 150.0));
        let latency = config(&["--latency-ms", "100", "--latency-jitter", "0"]).unwrap().latency;
        assert_eq!(latency.batch.jitter, 0.0);
        assert!(config(&["--latency-jitter", "0.5"]).unwrap_err().contains("--latency-ms"), "jitter needs a median");
        assert!(config(&["--latency-ms", "300", "--latency-jitter", "NaN"]).unwrap_err().contains("jitter"));
    }
}
