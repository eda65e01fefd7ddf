//! hsync's configuration: one TOML file plus `HSYNC_<SECTION>__<KEY>` environment overrides.
//!
//! Unknown keys are rejected with the key's name, so a typo never silently falls back to a
//! default. Secrets are never read from the file or the command line: the HubSpot token comes
//! from an environment variable or a file named here, and passwords inside destination URLs are
//! redacted whenever the configuration is shown.
//!
//! The HubSpot client never reads the configuration: [`Config::hubspot_client_config`] and
//! [`Config::token_source`] turn the `[hubspot]` and `[limits]` sections into its settings.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::error::{Classify, ErrorClass};
use crate::hubspot::{
    is_env_var_name, ApiFamily, BudgetConfig, BudgetSetting, ClientConfig, PortalZone, RateSettings, RetryPolicy,
    TokenSource, WindowLimit,
};

/// The environment variable prefix for overrides: `HSYNC_HUBSPOT__BASE_URL=...`.
pub const ENV_PREFIX: &str = "HSYNC_";

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file named with `--config` does not exist.
    #[error("config file {path} does not exist; create it (see deploy/hsync.example.toml) or pass another --config")]
    Missing { path: PathBuf },
    /// The file or an override is malformed or has an unknown key.
    #[error("invalid configuration: {detail}; fix the key named here (see deploy/hsync.example.toml for every key)")]
    Invalid { detail: String },
    /// The values parse but contradict each other.
    #[error("invalid configuration: {0}")]
    Inconsistent(String),
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        ErrorClass::Config
    }
}

/// Connection to HubSpot.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubSpotConfig {
    /// `https://api.hubapi.com`, or a simulator's address.
    pub base_url: String,
    /// The environment variable that holds the private-app or service-key token.
    pub token_env: String,
    /// A file holding the token (used when set; takes precedence over `token_env`).
    pub token_file: Option<PathBuf>,
    /// The path family to call.
    pub api_family: ApiFamily,
    /// Connect timeout, seconds.
    pub connect_timeout_secs: u64,
    /// Whole-request timeout, seconds.
    pub request_timeout_secs: u64,
}

impl fmt::Debug for HubSpotConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A base URL through a proxy may carry a password.
        f.debug_struct("HubSpotConfig")
            .field("base_url", &redact_url(&self.base_url))
            .field("token_env", &self.token_env)
            .field("token_file", &self.token_file)
            .field("api_family", &self.api_family)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .finish()
    }
}

impl Default for HubSpotConfig {
    fn default() -> Self {
        HubSpotConfig {
            base_url: "https://api.hubapi.com".to_owned(),
            token_env: "HUBSPOT_TOKEN".to_owned(),
            token_file: None,
            api_family: ApiFamily::Numbered,
            connect_timeout_secs: 10,
            request_timeout_secs: 60,
        }
    }
}

/// A URL that may hold credentials. `Display` and `Debug` show it redacted (see
/// [`redact_url`]), so formatting it can never leak a password; [`DestinationUrl::expose`] is
/// for connecting only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DestinationUrl(String);

impl DestinationUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> DestinationUrl {
        DestinationUrl(url.into())
    }

    /// The URL with its password, for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with every credential replaced by `***` (see [`redact_url`]).
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Display for DestinationUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DestinationUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DestinationUrl({})", self.redacted())
    }
}

/// `url` with every credential it can carry replaced by `***`, for any scheme:
///
/// - the password of the user-info: everything between the first `:` and the LAST `@` after
///   `://`. Taking the last `@`, even one after a `/` or `?`, masks a password that holds an
///   unencoded `/`, `?` or `@` (an `@` that is really in the path or a query value costs only
///   over-masking);
/// - the value of every query parameter whose name looks like a credential (see
///   [`is_credential_parameter`]), up to the next `&` (a `?` inside the value stays masked).
///
/// The two are worked out on the original text and their union is masked, so neither reading
/// of an ambiguous URL can show a secret.
pub fn redact_url(url: &str) -> String {
    let (prefix, rest) = match url.find("://") {
        Some(i) if url[..i].chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) => {
            url.split_at(i + 3)
        }
        _ => ("", url),
    };
    let mut masked: Vec<(usize, usize)> = Vec::new();
    if !prefix.is_empty() {
        if let Some(at) = rest.rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                masked.push((colon + 1, at));
            }
        }
    }
    // The query starts at the first `?`, or, when that `?` is inside the password, at the first
    // `?` after the last `@`: both readings are scanned.
    let after_userinfo = rest.rfind('@').map_or(0, |at| at + 1);
    let starts = [rest.find('?'), rest[after_userinfo..].find('?').map(|q| after_userinfo + q)];
    for query in starts.into_iter().flatten() {
        let mut start = query + 1;
        for pair in rest[start..].split('&') {
            if let Some(eq) = pair.find('=') {
                let name: String =
                    form_urlencoded::parse(&pair.as_bytes()[..eq]).map(|(k, _)| k.into_owned()).collect();
                if is_credential_parameter(&name) {
                    masked.push((start + eq + 1, start + pair.len()));
                }
            }
            start += pair.len() + 1;
        }
    }
    masked.retain(|(from, to)| from < to);
    masked.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (from, to) in masked {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    let mut shown = String::with_capacity(url.len());
    shown.push_str(prefix);
    let mut at = 0;
    for (from, to) in merged {
        shown.push_str(&rest[at..from]);
        shown.push_str("***");
        at = to;
    }
    shown.push_str(&rest[at..]);
    shown
}

/// Whether a URL query parameter carries a credential: its name (case and `-`/`_` aside) is
/// `key` or `sig`, or contains `pass` (password, sslpassword, passphrase, passwd), `pwd`,
/// `secret`, `token`, `credential`, `auth`, `signature` or `private_key`, or ends in `key`
/// (api_key, access_key) except `sslkey`, which names a key file rather than holding one.
pub fn is_credential_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace('-', "_");
    if matches!(name.as_str(), "sslkey" | "ssl_key") {
        return false;
    }
    matches!(name.as_str(), "key" | "sig")
        || name.ends_with("key")
        || ["pass", "pwd", "secret", "token", "credential", "auth", "signature", "private_key"]
            .iter()
            .any(|word| name.contains(word))
}

/// Where the data goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DestinationConfig {
    /// `sqlite://path.db` (the default), `postgres://user@host/db`,
    /// `bigquery://PROJECT/DATASET`, `snowflake://USER@ACCOUNT/DATABASE/SCHEMA?warehouse=W&role=R`
    /// or `parquet://DIRECTORY`.
    pub url: DestinationUrl,
    /// Postgres: the schema of the object tables.
    pub schema: String,
    /// Postgres: the schema of hsync's bookkeeping (checkpoints, runs, stages).
    pub state_schema: String,
    /// BigQuery, Snowflake and Parquet keep hsync's state (checkpoints, runs, snapshots, the
    /// budget ledger) in this local SQLite file. Default: `hsync-state.db` beside the config
    /// file, or in the working directory without one.
    pub state_path: Option<PathBuf>,
    pub bigquery: BigQueryConfig,
    pub snowflake: SnowflakeConfig,
}

impl Default for DestinationConfig {
    fn default() -> Self {
        DestinationConfig {
            url: DestinationUrl("sqlite://hsync.db".to_owned()),
            schema: "hubspot".to_owned(),
            state_schema: "hsync".to_owned(),
            state_path: None,
            bigquery: BigQueryConfig::default(),
            snowflake: SnowflakeConfig::default(),
        }
    }
}

impl DestinationConfig {
    /// The destination's kind from the URL's scheme, or `None` for an unknown scheme.
    pub fn kind(&self) -> Option<DestinationKind> {
        let url = self.url.expose();
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme {
            "sqlite" => Some(DestinationKind::Sqlite),
            "postgres" | "postgresql" if url.contains("://") => Some(DestinationKind::Postgres),
            "bigquery" if url.contains("://") => Some(DestinationKind::BigQuery),
            "snowflake" if url.contains("://") => Some(DestinationKind::Snowflake),
            "parquet" if url.contains("://") => Some(DestinationKind::Parquet),
            _ => None,
        }
    }

    /// The local state file for destinations that cannot hold hsync's state.
    pub fn state_file(&self) -> PathBuf {
        self.state_path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_FILE))
    }
}

/// The local state file's name when `destination.state_path` is unset.
pub const DEFAULT_STATE_FILE: &str = "hsync-state.db";

/// The kinds of destination hsync writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestinationKind {
    Sqlite,
    Postgres,
    BigQuery,
    Snowflake,
    Parquet,
}

impl std::fmt::Display for DestinationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DestinationKind {
    /// The kind's name in messages (`postgres`, `bigquery`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationKind::Sqlite => "sqlite",
            DestinationKind::Postgres => "postgres",
            DestinationKind::BigQuery => "bigquery",
            DestinationKind::Snowflake => "snowflake",
            DestinationKind::Parquet => "parquet",
        }
    }

    /// Whether the destination keeps hsync's state itself (in the merge's transaction).
    pub fn holds_state(self) -> bool {
        matches!(self, DestinationKind::Sqlite | DestinationKind::Postgres)
    }
}

/// BigQuery settings beside `destination.url = "bigquery://PROJECT/DATASET"`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BigQueryConfig {
    /// A service-account key file (JSON). Unset: application default credentials
    /// (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's ADC file, then the metadata server).
    pub credentials_file: Option<PathBuf>,
    /// The API's root (`https://bigquery.googleapis.com` when unset); an emulator's address
    /// such as `http://127.0.0.1:9050`, which also turns authentication off.
    pub endpoint: Option<String>,
    /// Where the dataset is created when missing (`US` when unset).
    pub location: Option<String>,
}

/// Snowflake settings beside
/// `destination.url = "snowflake://USER@ACCOUNT/DATABASE/SCHEMA?warehouse=W&role=R"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnowflakeConfig {
    /// The environment variable that holds the password (password authentication).
    pub password_env: String,
    /// A PKCS#8 PEM private key file: key-pair (JWT) authentication, used when set.
    pub private_key_file: Option<PathBuf>,
    /// The account's address (`https://ACCOUNT.snowflakecomputing.com` when unset); an
    /// emulator's address such as `http://127.0.0.1:8085`.
    pub endpoint: Option<String>,
}

impl Default for SnowflakeConfig {
    fn default() -> Self {
        SnowflakeConfig { password_env: "HSYNC_SNOWFLAKE_PASSWORD".to_owned(), private_key_file: None, endpoint: None }
    }
}

/// What to sync.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Object types by name (`contacts`), type id (`0-1`) or custom object name.
    pub objects: Vec<String>,
    /// When non-empty, only these properties are synced (plus the id and cursor).
    pub include_properties: Vec<String>,
    /// Properties never synced.
    pub exclude_properties: Vec<String>,
    /// How far behind now the durable CDC watermark stays, for HubSpot's search index lag.
    pub settle_lag_secs: u64,
    /// Fetch the backfill's next page while the current one is written: wide portals backfill
    /// faster, and a `kill -9` may then cost two pages instead of one.
    pub backfill_fetch_ahead: bool,
    /// Id ranges a large backfill walks at once, so requests in flight hide HubSpot's latency
    /// and fill the search bucket; a `kill -9` costs at most one page per range. `1` walks in
    /// turn. Tables with fewer than ten pages per range left walk in turn anyway.
    pub backfill_concurrency: u64,
    /// Let a large backfill read list pages in HubSpot's general bucket beside its searches
    /// (about three times as fast on Professional, for more calls per record). Off keeps the
    /// general bucket for other integrations on the portal; a tight daily budget turns it off
    /// for the day on its own.
    pub backfill_list: bool,
    /// Properties whose every version is kept, per object (a `sync.objects` entry): property
    /// names, `"default"` for the catalogue's history properties of the type (deal stage,
    /// amount, close date, owner and pipeline for deals; lifecycle stage, lead status and
    /// owner for contacts; pipeline and stage for the types with pipelines), or `"*"` alone
    /// for every property. Objects not named keep no history; `hsync plan` shows the cost.
    pub history: std::collections::BTreeMap<String, Vec<String>>,
}

/// The `sync.history` keyword for the catalogue's history properties of a type.
pub const HISTORY_DEFAULT: &str = "default";
/// The `sync.history` keyword for every property of an object.
pub const HISTORY_EVERY: &str = "*";

/// Which properties of one object keep every version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistorySelection {
    /// Every property the object has (`"*"`).
    Every,
    /// These properties, each once, in the order given (`"default"` expanded in place).
    Named(Vec<String>),
}

impl SyncConfig {
    /// What `sync.history` keeps for a resolved object, whichever way `sync.objects` names it
    /// (table name, type id, or a custom object's name or id).
    pub fn history_for(&self, object: &crate::hubspot::ObjectRef) -> Option<HistorySelection> {
        let facts = object.facts;
        let key = self.history.keys().find(|k| {
            **k == object.table
                || **k == object.api_name
                || (facts.family != crate::hubspot::Family::Custom && **k == facts.type_id)
        })?;
        self.history_of(key, Some(facts))
    }

    /// What `sync.history` keeps for `object` (a `sync.objects` entry) of catalogue type
    /// `facts` (`None` for a custom object); `None` when it keeps nothing.
    pub fn history_of(&self, object: &str, facts: Option<&crate::hubspot::ObjectType>) -> Option<HistorySelection> {
        let names = self.history.get(object).filter(|names| !names.is_empty())?;
        if names.iter().any(|n| n == HISTORY_EVERY) {
            return Some(HistorySelection::Every);
        }
        let mut out: Vec<String> = Vec::new();
        for name in names {
            let expanded: Vec<&str> = if name == HISTORY_DEFAULT {
                facts.map_or(&[][..], |f| f.history_properties).to_vec()
            } else {
                vec![name.as_str()]
            };
            for property in expanded {
                if !out.iter().any(|p| p == property) {
                    out.push(property.to_owned());
                }
            }
        }
        Some(HistorySelection::Named(out))
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            objects: ["contacts", "companies", "deals", "tickets"].map(str::to_owned).to_vec(),
            include_properties: Vec::new(),
            exclude_properties: Vec::new(),
            settle_lag_secs: 300,
            backfill_fetch_ahead: false,
            backfill_concurrency: crate::stream::backfill::DEFAULT_CONCURRENCY as u64,
            backfill_list: true,
            history: std::collections::BTreeMap::new(),
        }
    }
}

/// How hsync shares the portal's API limits with other integrations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// At most this many calls a day (takes precedence over `reserve_percent`).
    pub daily_budget: Option<u64>,
    /// Otherwise: leave this share of the portal's daily limit to other integrations.
    pub reserve_percent: u8,
    /// The portal's daily limit, when known; otherwise learned from HubSpot's headers.
    pub portal_daily_limit: Option<u64>,
    /// The portal's time zone (IANA name, or a UTC offset such as `+05:30`): the daily limit
    /// resets at its midnight.
    pub timezone: String,
    /// Requests per rolling ten seconds (100 Starter, 190 Professional and Enterprise);
    /// learned from HubSpot's headers when absent.
    pub requests_per_10s: Option<u32>,
    /// Search requests per second (HubSpot: 5 per portal).
    pub searches_per_second: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            daily_budget: None,
            reserve_percent: 20,
            portal_daily_limit: None,
            timezone: "UTC".to_owned(),
            requests_per_10s: None,
            searches_per_second: 5,
        }
    }
}

/// The daemon (`hsync run`): its HTTP endpoints and how often each stream runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Where `/healthz`, `/readyz`, `/metrics` and `/status` listen (loopback by default).
    pub listen: String,
    /// The environment variable holding a bearer token the endpoints then require; needed when
    /// `listen` is not a loopback address.
    pub bearer_token_env: Option<String>,
    /// Serve `/metrics` and `/status` beyond loopback without a bearer token (only where the
    /// network itself keeps strangers out); without it such a `listen` refuses to start.
    pub allow_unauthenticated_listen: bool,
    /// The environment variable holding the token `POST /push/<name>` requires (docs/push.md
    /// "Events"); without it the daemon takes no pushed records. Always required, even on
    /// loopback: a push writes to HubSpot.
    pub push_token_env: Option<String>,
    /// Seconds between CDC passes of an object (after its backfill finished).
    pub cdc_interval_secs: u64,
    /// Seconds between CDC passes of an object HubSpot serves no search for (contracts): each
    /// pass lists every record, so it runs less often than `cdc_interval_secs`.
    pub list_cdc_interval_secs: u64,
    /// Seconds between association polls (edges of records changed since the last poll).
    pub associations_interval_secs: u64,
    /// Seconds between full association sweeps (catch changes that moved no timestamp).
    pub association_sweep_interval_secs: u64,
    /// Per object, seconds between the sweeps of the pairs stored from its side, in place of
    /// `association_sweep_interval_secs` (`{ calls = 604800 }` sweeps calls' pairs weekly):
    /// engagement volumes make a daily sweep of every pair costly. `hsync plan` shows the cost.
    pub association_sweep_interval_by_object: std::collections::BTreeMap<String, u64>,
    /// Seconds between delete, merge and restore reconciles of an object.
    pub deletes_interval_secs: u64,
    /// Seconds between schema checks (new, changed and archived properties) of an object.
    pub schema_interval_secs: u64,
    /// Seconds between full refreshes of owners and pipelines.
    pub dimensions_interval_secs: u64,
    /// Seconds between sweeps that re-read every record's calculated properties (rollups,
    /// formulas, scores), which change without moving last-modified; records around changed
    /// associations are re-read at once by the association poll.
    pub calculated_interval_secs: u64,
    /// A calculated-property sweep pauses while less than this share of the day's call budget
    /// is left, keeping it for CDC and the other streams; it continues the next day.
    pub calculated_budget_reserve_percent: u8,
    /// Each interval is stretched or shrunk at random by up to this share, so streams and
    /// daemons do not fire in lockstep.
    pub jitter_percent: u8,
    /// After SIGTERM, the batch in flight gets this long to commit before hsync exits anyway.
    pub shutdown_grace_secs: u64,
    /// How often a standby tries to take the leader lease.
    pub lease_retry_secs: u64,
}

impl DaemonConfig {
    /// Seconds between the sweeps of the association pairs stored from `object`'s side: its
    /// own setting, else `association_sweep_interval_secs`. `object` is a `sync.objects` entry.
    pub fn association_sweep_secs(&self, object: &str) -> u64 {
        self.association_sweep_interval_by_object.get(object).copied().unwrap_or(self.association_sweep_interval_secs)
    }
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: "127.0.0.1:9464".to_owned(),
            bearer_token_env: None,
            allow_unauthenticated_listen: false,
            push_token_env: None,
            cdc_interval_secs: 60,
            list_cdc_interval_secs: 3_600,
            associations_interval_secs: 300,
            association_sweep_interval_secs: 86_400,
            association_sweep_interval_by_object: std::collections::BTreeMap::new(),
            deletes_interval_secs: 3_600,
            schema_interval_secs: 900,
            dimensions_interval_secs: 3_600,
            calculated_interval_secs: 86_400,
            calculated_budget_reserve_percent: 30,
            jitter_percent: 10,
            shutdown_grace_secs: 30,
            lease_retry_secs: 5,
        }
    }
}

/// HubSpot webhooks into `hsync run` (docs/webhooks.md): a receiver on its own listener whose
/// events are read back by id within seconds; CDC keeps running as the safety net.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Receive HubSpot's webhooks (off by default).
    pub enabled: bool,
    /// Where the receiver listens: its own listener, serving only the target URL's path, so
    /// it can be exposed (behind TLS) without exposing `/metrics` and `/status`.
    pub listen: String,
    /// The target URL exactly as set in the HubSpot app (`https://hsync.example.com/hubspot/webhooks`):
    /// HubSpot signs it, and its path is the one the receiver serves.
    pub target_url: Option<String>,
    /// The environment variable holding the HubSpot app's client secret...
    pub client_secret_env: String,
    /// ...or a file holding it (takes precedence when set), e.g. a mounted Kubernetes secret.
    pub client_secret_file: Option<PathBuf>,
    /// Larger bodies are refused with 413 (HubSpot sends batches of events, about 100 at most).
    pub max_body_bytes: u64,
    /// Events that arrive within this many milliseconds are applied together, one read per
    /// record.
    pub coalesce_ms: u64,
    /// Seconds between CDC passes while webhooks are healthy (a delivery accepted within
    /// `healthy_within_secs` and the last application succeeded); otherwise CDC runs every
    /// `daemon.cdc_interval_secs`.
    pub cdc_interval_secs: u64,
    /// How recent the last accepted delivery must be for webhooks to count as healthy.
    pub healthy_within_secs: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            enabled: false,
            listen: "127.0.0.1:9465".to_owned(),
            target_url: None,
            client_secret_env: "HSYNC_WEBHOOK_SECRET".to_owned(),
            client_secret_file: None,
            max_body_bytes: 1_048_576,
            coalesce_ms: 250,
            cdc_interval_secs: 900,
            healthy_within_secs: 3_600,
        }
    }
}

impl WebhooksConfig {
    /// The path the receiver serves: the target URL's.
    pub fn path(&self) -> Option<String> {
        let url = reqwest::Url::parse(self.target_url.as_deref()?).ok()?;
        Some(url.path().to_owned())
    }
}

/// One `hsync push` job (docs/push.md): rows from a query on the destination or a CSV file,
/// upserted into one HubSpot object type by an id property.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// The object type written (`contacts`, `companies`, a custom object's name).
    pub object: String,
    /// The property rows are matched on: `hs_object_id` (update only), `email` on contacts, or a
    /// property with unique values (created when no record has the value).
    pub id_property: String,
    /// A SQL query on the destination; its columns are the rows' values.
    #[serde(default)]
    pub query: Option<String>,
    /// A CSV file with a header row, instead of `query`.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Column to property; a column not named here goes to the property of its own name.
    #[serde(default)]
    pub columns: std::collections::BTreeMap<String, String>,
    /// The region (ISO 3166, `US`) phone numbers without a country code are read in; without
    /// it such numbers are rejected.
    #[serde(default)]
    pub default_region: Option<String>,
    /// Read each batch's records first and leave out rows whose values HubSpot already holds
    /// (reported `unchanged`): no write, no new last-modified time, no workflow set off.
    #[serde(default = "default_true")]
    pub skip_unchanged: bool,
    /// Associations made from columns, by name.
    #[serde(default)]
    pub associations: std::collections::BTreeMap<String, PushAssociation>,
}

fn default_true() -> bool {
    true
}

/// One association of a push (docs/push.md "Associations"): the value in `column` finds
/// records of `to` by their property `by`, and each written record is associated with them
/// (HubSpot's default association type).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushAssociation {
    /// The source column naming the other record. It is not written as a property.
    pub column: String,
    /// The object type associated with (`companies`, `contacts`, a custom object's name).
    pub to: String,
    /// The property of `to` that matches: `hs_object_id`, a property with unique values (`email`
    /// on contacts) read in batches, or any other (`domain`) found by search. Defaults to
    /// `email` with `find = "email"` and `hs_searchable_calculated_phone_number` with
    /// `find = "phone"`.
    #[serde(default)]
    pub by: Option<String>,
    /// Look inside free text for `email` addresses or `phone` numbers, instead of taking the
    /// whole value.
    #[serde(default)]
    pub find: Option<FindIn>,
    /// Write the row only when a record is found: with several required associations, when one
    /// of them finds one (a ticket never created without its contact, found by email or phone).
    #[serde(default)]
    pub required: bool,
    /// Give the written record the found record's owner (`hubspot_owner_id`) when the row has
    /// none: a task for the owner of the company it concerns.
    #[serde(default)]
    pub owner: bool,
}

/// What an association looks for inside free text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindIn {
    Email,
    Phone,
}

impl PushAssociation {
    /// The property of `to` that matches (see [`PushAssociation::by`]).
    pub fn by_property(&self) -> &str {
        match (&self.by, self.find) {
            (Some(by), _) => by,
            (None, Some(FindIn::Phone)) => "hs_searchable_calculated_phone_number",
            (None, _) => "email",
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub hubspot: HubSpotConfig,
    pub limits: LimitsConfig,
    pub destination: DestinationConfig,
    pub sync: SyncConfig,
    pub daemon: DaemonConfig,
    pub webhooks: WebhooksConfig,
    /// `hsync push` jobs by name (docs/push.md).
    pub push: std::collections::BTreeMap<String, PushConfig>,
}

impl Config {
    /// Loads defaults, then the file (when given), then `HSYNC_<SECTION>__<KEY>` overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, Error> {
        Self::load_from(path, Env::prefixed(ENV_PREFIX))
    }

    /// Loads with an explicit environment provider (tests pass their own).
    pub fn load_from(path: Option<&Path>, env: Env) -> Result<Config, Error> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = path {
            if !path.exists() {
                return Err(Error::Missing { path: path.to_owned() });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only double-underscore keys are overrides, so HSYNC_-prefixed secrets such as a token
        // variable never collide with configuration keys.
        let env = env.filter(|key| key.as_str().contains("__")).split("__");
        let mut config: Config = figment.merge(env).extract().map_err(|e| Error::Invalid { detail: describe(e) })?;
        if let (None, Some(dir)) = (&config.destination.state_path, path.and_then(Path::parent)) {
            config.destination.state_path = Some(dir.join(DEFAULT_STATE_FILE));
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document on its own (no environment), e.g. the shipped example.
    pub fn from_toml(text: &str) -> Result<Config, Error> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| Error::Invalid { detail: describe(e) })?;
        config.validate()?;
        Ok(config)
    }

    /// Every problem at once, so one edit fixes them all; each names its key and what is allowed.
    fn validate(&self) -> Result<(), Error> {
        let mut problems = Vec::new();
        if !(self.hubspot.base_url.starts_with("http://") || self.hubspot.base_url.starts_with("https://")) {
            problems.push(format!(
                "hubspot.base_url must start with http:// or https://, got {:?}",
                redact_url(&self.hubspot.base_url)
            ));
        }
        match self.destination.kind() {
            None => problems.push(format!(
                "destination.url must be sqlite://PATH, postgres://..., bigquery://PROJECT/DATASET, \
                 snowflake://USER@ACCOUNT/DATABASE/SCHEMA or parquet://DIRECTORY, got {}",
                self.destination.url
            )),
            Some(DestinationKind::Postgres | DestinationKind::Snowflake) => {
                if ambiguous_user_info(self.destination.url.expose()) {
                    problems.push(
                        "destination.url has an @ after a /, ? or # that follows ://, so its user name and password \
                         cannot be told from its host: percent-encode /, ?, #, @ and : inside the user name, \
                         password and query values (%2F, %3F, %23, %40, %3A)"
                            .to_owned(),
                    );
                }
            }
            Some(_) => {}
        }
        self.validate_secrets_sources(&mut problems);
        self.validate_ranges(&mut problems);
        self.validate_sync(&mut problems);
        if let Err(reason) = self.limits.timezone.parse::<PortalZone>() {
            problems.push(format!("limits.timezone {reason}"));
        }
        if self.daemon.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!(
                "daemon.listen must be an address with a port such as 127.0.0.1:9464, got {:?}",
                self.daemon.listen
            ));
        }
        self.validate_webhooks(&mut problems);
        self.validate_push(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Inconsistent(problems.join("; ")))
        }
    }

    /// Each push job reads at most one source (one without takes records sent to the daemon
    /// only) and names its object and id property.
    fn validate_push(&self, problems: &mut Vec<String>) {
        for (name, push) in &self.push {
            let key = format!("push.{name}");
            match (&push.query, &push.file) {
                (Some(_), Some(_)) => problems.push(format!("{key} sets both query and file: keep one source")),
                (Some(q), None) if q.trim().is_empty() => problems.push(format!("{key}.query is empty")),
                _ => {}
            }
            for (field, value) in [("object", &push.object), ("id_property", &push.id_property)] {
                if value.trim().is_empty() {
                    problems.push(format!("{key}.{field} is empty"));
                }
            }
            for (label, link) in &push.associations {
                for (field, value) in [("column", &link.column), ("to", &link.to)] {
                    if value.trim().is_empty() {
                        problems.push(format!("{key}.associations.{label}.{field} is empty"));
                    }
                }
                if link.column == push.id_property || push.columns.get(&link.column) == Some(&push.id_property) {
                    problems.push(format!(
                        "{key}.associations.{label}.column {} is the id column; name another column",
                        link.column
                    ));
                }
            }
            if let Some(region) = &push.default_region {
                if region.parse::<phonenumber::country::Id>().is_err() {
                    problems
                        .push(format!("{key}.default_region {region:?} is not an ISO 3166 region such as US or DE"));
                }
            }
        }
    }

    /// Webhooks need where to listen and the target URL HubSpot calls (and signs).
    fn validate_webhooks(&self, problems: &mut Vec<String>) {
        let w = &self.webhooks;
        if w.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!(
                "webhooks.listen must be an address with a port such as 0.0.0.0:9465, got {:?}",
                w.listen
            ));
        }
        if w.enabled && w.listen == self.daemon.listen {
            problems
                .push("webhooks.listen must differ from daemon.listen: the receiver has its own listener".to_owned());
        }
        match &w.target_url {
            None if w.enabled => problems.push(
                "webhooks.enabled needs webhooks.target_url: the URL exactly as set in the HubSpot app \
                 (https://hsync.example.com/hubspot/webhooks), which HubSpot signs"
                    .to_owned(),
            ),
            Some(url) if reqwest::Url::parse(url).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) => problems
                .push(format!("webhooks.target_url must be an http:// or https:// URL, got {:?}", redact_url(url))),
            _ => {}
        }
    }

    /// The settings that name where a secret lives must be names, never the secret itself
    /// (which `hsync config` would then print).
    fn validate_secrets_sources(&self, problems: &mut Vec<String>) {
        let names = [
            ("hubspot.token_env", Some(&self.hubspot.token_env), "HUBSPOT_TOKEN"),
            ("daemon.bearer_token_env", self.daemon.bearer_token_env.as_ref(), "HSYNC_BEARER_TOKEN"),
            ("daemon.push_token_env", self.daemon.push_token_env.as_ref(), "HSYNC_PUSH_TOKEN"),
            ("webhooks.client_secret_env", Some(&self.webhooks.client_secret_env), "HSYNC_WEBHOOK_SECRET"),
            (
                "destination.snowflake.password_env",
                Some(&self.destination.snowflake.password_env),
                "HSYNC_SNOWFLAKE_PASSWORD",
            ),
        ];
        for (key, name, example) in names {
            if name.is_some_and(|n| !is_env_var_name(n)) {
                problems.push(format!(
                    "{key} must be the NAME of an environment variable (a letter or _, then letters, digits \
                     and _, at most 64 characters), not the secret itself: put the secret in a variable such \
                     as {example} and name that variable here"
                ));
            }
        }
    }

    /// Counts, timeouts and intervals within the ranges hsync can work with.
    fn validate_ranges(&self, problems: &mut Vec<String>) {
        const HOUR: u64 = 3_600;
        const DAY: u64 = 24 * HOUR;
        let (h, d, l) = (&self.hubspot, &self.daemon, &self.limits);
        let ranges = [
            ("hubspot.connect_timeout_secs", h.connect_timeout_secs, 1, 300),
            ("hubspot.request_timeout_secs", h.request_timeout_secs, 1, HOUR),
            // The CDC watermark is now minus this: a week keeps it far from wrapping.
            ("sync.settle_lag_secs", self.sync.settle_lag_secs, 0, 7 * DAY),
            ("sync.backfill_concurrency", self.sync.backfill_concurrency, 1, 64),
            ("daemon.cdc_interval_secs", d.cdc_interval_secs, 1, DAY),
            ("daemon.list_cdc_interval_secs", d.list_cdc_interval_secs, 1, DAY),
            ("daemon.associations_interval_secs", d.associations_interval_secs, 1, 7 * DAY),
            ("daemon.association_sweep_interval_secs", d.association_sweep_interval_secs, 1, 30 * DAY),
            ("daemon.deletes_interval_secs", d.deletes_interval_secs, 1, 7 * DAY),
            ("daemon.schema_interval_secs", d.schema_interval_secs, 1, 7 * DAY),
            ("daemon.dimensions_interval_secs", d.dimensions_interval_secs, 1, 7 * DAY),
            ("daemon.calculated_interval_secs", d.calculated_interval_secs, 1, 30 * DAY),
            ("daemon.shutdown_grace_secs", d.shutdown_grace_secs, 1, HOUR),
            ("daemon.lease_retry_secs", d.lease_retry_secs, 1, HOUR),
            ("webhooks.max_body_bytes", self.webhooks.max_body_bytes, 1_024, 64 * 1_048_576),
            ("webhooks.coalesce_ms", self.webhooks.coalesce_ms, 0, 60_000),
            ("webhooks.cdc_interval_secs", self.webhooks.cdc_interval_secs, 1, DAY),
            ("webhooks.healthy_within_secs", self.webhooks.healthy_within_secs, 1, 7 * DAY),
            ("limits.searches_per_second", u64::from(l.searches_per_second), 1, 1_000),
        ];
        let optional = [
            ("limits.daily_budget", l.daily_budget, 1, u64::MAX),
            ("limits.portal_daily_limit", l.portal_daily_limit, 1, u64::MAX),
            ("limits.requests_per_10s", l.requests_per_10s.map(u64::from), 1, 100_000),
        ];
        let given = optional.into_iter().filter_map(|(key, value, min, max)| value.map(|v| (key, v, min, max)));
        for (key, value, min, max) in ranges.into_iter().chain(given) {
            if !(min..=max).contains(&value) {
                let allowed = if max == u64::MAX { format!("at least {min}") } else { format!("from {min} to {max}") };
                problems.push(format!("{key} must be {allowed}, got {value}"));
            }
        }
        for (object, &secs) in &d.association_sweep_interval_by_object {
            let key = format!("daemon.association_sweep_interval_by_object.{object}");
            if !(1..=30 * DAY).contains(&secs) {
                problems.push(format!("{key} must be from 1 to {}, got {secs}", 30 * DAY));
            }
            if !self.sync.objects.iter().any(|o| o == object) {
                problems.push(format!(
                    "{key} names an object that is not in sync.objects; use a name exactly as sync.objects lists it"
                ));
            }
        }
        for (key, percent) in [
            ("limits.reserve_percent", l.reserve_percent),
            ("daemon.jitter_percent", d.jitter_percent),
            ("daemon.calculated_budget_reserve_percent", d.calculated_budget_reserve_percent),
        ] {
            if percent >= 100 {
                problems.push(format!("{key} must be from 0 to 99, got {percent}"));
            }
        }
    }

    /// The objects and property lists: each object once, and no property both included and
    /// excluded.
    fn validate_sync(&self, problems: &mut Vec<String>) {
        let sync = &self.sync;
        if sync.objects.is_empty() {
            problems.push("sync.objects is empty: name at least one object type".to_owned());
        }
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for name in &sync.objects {
            if name.trim().is_empty() {
                problems.push("sync.objects has an empty name: name object types such as \"contacts\"".to_owned());
                continue;
            }
            // The same catalogue type by name and by type id (`contacts` and `0-1`) is one object.
            let object = crate::hubspot::catalogue::find(name).map_or(name.as_str(), |o| o.name);
            match seen.iter().find(|(_, o)| *o == object) {
                Some((first, _)) if first == name => {
                    problems.push(format!("sync.objects names {name:?} twice: list each object type once"))
                }
                Some((first, _)) => problems.push(format!(
                    "sync.objects names {object} twice, as {first:?} and {name:?}: list each object type once"
                )),
                None => seen.push((name, object)),
            }
        }
        let both: Vec<&str> = sync
            .include_properties
            .iter()
            .filter(|p| sync.exclude_properties.contains(p))
            .map(String::as_str)
            .collect();
        if !both.is_empty() {
            problems.push(format!(
                "sync.include_properties and sync.exclude_properties both name {}: keep each property in one list",
                both.join(", ")
            ));
        }
        self.validate_history(problems);
    }

    /// `sync.history`: synced objects only, `"*"` alone, `"default"` only for types that have
    /// default history properties, no empty lists or names.
    fn validate_history(&self, problems: &mut Vec<String>) {
        for (object, names) in &self.sync.history {
            let key = format!("sync.history.{object}");
            if !self.sync.objects.iter().any(|o| o == object) {
                problems.push(format!(
                    "{key} names an object that is not in sync.objects; use a name exactly as sync.objects lists it"
                ));
            }
            if names.is_empty() {
                problems.push(format!(
                    "{key} is empty: list property names, \"{HISTORY_DEFAULT}\" or \"{HISTORY_EVERY}\", or remove the key"
                ));
            }
            if names.iter().any(|n| n == HISTORY_EVERY) && names.len() > 1 {
                problems.push(format!(
                    "{key} lists \"{HISTORY_EVERY}\" (every property) with other names: use \"{HISTORY_EVERY}\" alone"
                ));
            }
            if names.iter().any(|n| n.trim().is_empty()) {
                problems.push(format!("{key} has an empty property name"));
            }
            let has_default = crate::hubspot::catalogue::find(object).is_some_and(|t| !t.history_properties.is_empty());
            if names.iter().any(|n| n == HISTORY_DEFAULT) && !has_default {
                let with: Vec<&str> = crate::hubspot::CATALOGUE
                    .iter()
                    .filter(|t| !t.history_properties.is_empty())
                    .map(|t| t.name)
                    .collect();
                problems.push(format!(
                    "{key}: {object} has no default history properties (the types that have them: {}); name its properties instead",
                    with.join(", ")
                ));
            }
        }
    }

    /// The configuration as TOML with secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.destination.url = DestinationUrl(self.destination.url.redacted());
        shown.hubspot.base_url = redact_url(&self.hubspot.base_url);
        for url in
            [&mut shown.destination.bigquery.endpoint, &mut shown.destination.snowflake.endpoint].into_iter().flatten()
        {
            *url = redact_url(url);
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }

    /// The HubSpot client settings this configuration describes.
    pub fn hubspot_client_config(&self) -> ClientConfig {
        let limits = &self.limits;
        let setting = match limits.daily_budget {
            Some(calls) => BudgetSetting::Calls(calls),
            None => BudgetSetting::ReservePercent(limits.reserve_percent),
        };
        ClientConfig {
            base_url: self.hubspot.base_url.clone(),
            api_family: self.hubspot.api_family,
            connect_timeout: Duration::from_secs(self.hubspot.connect_timeout_secs),
            request_timeout: Duration::from_secs(self.hubspot.request_timeout_secs),
            retry: RetryPolicy::default(),
            rates: RateSettings {
                search: WindowLimit { max: limits.searches_per_second, window: Duration::from_secs(1) },
                general: limits.requests_per_10s.map(|max| WindowLimit { max, window: Duration::from_secs(10) }),
                ..RateSettings::default()
            },
            budget: BudgetConfig {
                setting,
                // Validated when the configuration was loaded.
                timezone: limits.timezone.parse().unwrap_or(PortalZone::Named(chrono_tz::Tz::UTC)),
                portal_daily_limit: limits.portal_daily_limit,
                ..BudgetConfig::default()
            },
        }
    }

    /// Where the HubSpot token comes from: the file when `hubspot.token_file` is set, otherwise
    /// the environment variable `hubspot.token_env` names.
    pub fn token_source(&self) -> TokenSource {
        match &self.hubspot.token_file {
            Some(path) => TokenSource::File { path: path.clone() },
            None => TokenSource::Env { var: self.hubspot.token_env.clone() },
        }
    }
}

/// Whether a URL's user-info cannot be told from the rest: an `@` comes after a `/`, `?` or `#`
/// that follows `://` (an unencoded `/` or `?` in the password, or an `@` in a query value).
/// Drivers would read such a URL differently from hsync's redaction.
fn ambiguous_user_info(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else { return false };
    match (rest.find(['/', '?', '#']), rest.rfind('@')) {
        (Some(end), Some(at)) => at > end,
        _ => false,
    }
}

fn describe(e: figment::Error) -> String {
    // Figment's own message names the key path and the source (file or environment variable).
    e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return its own large error type
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_rejected_naming_the_key() {
        let err = Config::from_toml("[hubspot]\nbase_ulr = \"http://x\"\n").unwrap_err().to_string();
        assert!(err.contains("base_ulr"), "{err}");
    }

    #[test]
    fn unknown_section_is_rejected_naming_it() {
        let err = Config::from_toml("[hubspott]\n").unwrap_err().to_string();
        assert!(err.contains("hubspott"), "{err}");
    }

    #[test]
    fn file_then_environment_overrides() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "hsync.toml",
                "[hubspot]\nbase_url = \"http://file\"\n[sync]\nobjects = [\"contacts\"]\n",
            )?;
            jail.set_env("HSYNC_HUBSPOT__BASE_URL", "http://env");
            jail.set_env("HSYNC_HUBSPOT_TOKEN", "not-a-config-key");
            let c = Config::load(Some(Path::new("hsync.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.hubspot.base_url, "http://env");
            assert_eq!(c.sync.objects, ["contacts"]);
            Ok(())
        });
    }

    #[test]
    fn unknown_environment_override_is_rejected_naming_it() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("HSYNC_HUBSPOT__NOPE", "1");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("nope"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn missing_file_says_which() {
        let err = Config::load(Some(Path::new("/nonexistent/hsync.toml"))).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/hsync.toml"), "{err}");
    }

    #[test]
    fn destination_kind_comes_from_the_url_scheme() {
        let kind =
            |url: &str| DestinationConfig { url: DestinationUrl::new(url.to_owned()), ..Default::default() }.kind();
        assert_eq!(kind("sqlite://hsync.db"), Some(DestinationKind::Sqlite));
        assert_eq!(kind("postgresql://db/warehouse"), Some(DestinationKind::Postgres));
        assert_eq!(kind("bigquery://proj/hubspot"), Some(DestinationKind::BigQuery));
        assert_eq!(kind("snowflake://hsync@acme-prod/ANALYTICS/HUBSPOT"), Some(DestinationKind::Snowflake));
        assert_eq!(kind("parquet:///var/lib/hsync/lake"), Some(DestinationKind::Parquet));
        assert_eq!(kind("mysql://db/x"), None);
        assert_eq!(kind("bigquery:proj"), None);
        assert!(!DestinationKind::BigQuery.holds_state() && DestinationKind::Postgres.holds_state());
    }

    #[test]
    fn local_state_file_defaults_to_beside_the_config_file() {
        figment::Jail::expect_with(|jail| {
            std::fs::create_dir("etc").map_err(|e| e.to_string())?;
            jail.create_file(
                "etc/hsync.toml",
                "[destination]\nurl = \"parquet://lake\"\n[sync]\nobjects = [\"contacts\"]\n",
            )?;
            let c = Config::load(Some(Path::new("etc/hsync.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.destination.state_file(), Path::new("etc").join(DEFAULT_STATE_FILE));
            jail.create_file(
                "set.toml",
                "[destination]\nurl = \"parquet://lake\"\nstate_path = \"/srv/state.db\"\n[sync]\nobjects = [\"contacts\"]\n",
            )?;
            let c = Config::load(Some(Path::new("set.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.destination.state_file(), Path::new("/srv/state.db"));
            Ok(())
        });
    }

    #[test]
    fn destination_password_is_redacted_everywhere() {
        let url = DestinationUrl("postgres://app:s3cret@db.internal:5432/warehouse".to_owned());
        assert_eq!(url.redacted(), "postgres://app:***@db.internal:5432/warehouse");
        assert!(!format!("{url:?}").contains("s3cret"));
        let hubspot =
            HubSpotConfig { base_url: "https://proxy:s3cret@hubapi.example".to_owned(), ..Default::default() };
        let config = Config {
            destination: DestinationConfig { url, ..DestinationConfig::default() },
            hubspot,
            ..Config::default()
        };
        assert!(!config.to_redacted_toml().contains("s3cret"));
        assert!(config.to_redacted_toml().contains("https://proxy:***@hubapi.example"));
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn every_credential_form_of_a_url_is_redacted() {
        let cases = [
            ("postgres://app:s3cret@db:5432/w", "postgres://app:***@db:5432/w"),
            ("postgres://app:s3/cret@db:5432/w", "postgres://app:***@db:5432/w"),
            ("postgres://app:s3?cret@db:5432/w", "postgres://app:***@db:5432/w"),
            ("postgres://app:s3@cr@et@db:5432/w", "postgres://app:***@db:5432/w"),
            ("postgres://app:12/s3cret@db/w", "postgres://app:***@db/w"),
            ("postgres://app:?a=s3cret@db/w?password=s3cret", "postgres://app:***@db/w?password=***"),
            ("postgres://app@db/w?password=s3cret&sslmode=require", "postgres://app@db/w?password=***&sslmode=require"),
            ("postgres://db/w?sslmode=require&sslpassword=s3cret", "postgres://db/w?sslmode=require&sslpassword=***"),
            ("postgres://db/w?PassWord=s3?cret", "postgres://db/w?PassWord=***"),
            ("postgres://db/w?pass%77ord=s3cret", "postgres://db/w?pass%77ord=***"),
            ("postgres://db:5432/w?password=s3@cret", "postgres://db:***"),
            ("snowflake://hsync:s3cret@acme/DB/SCH?warehouse=W", "snowflake://hsync:***@acme/DB/SCH?warehouse=W"),
            (
                "snowflake://hsync@acme/DB/SCH?private_key_passphrase=s3cret",
                "snowflake://hsync@acme/DB/SCH?private_key_passphrase=***",
            ),
            (
                "https://user:s3cret@proxy/api?token=s3cret&api_key=s3cret",
                "https://user:***@proxy/api?token=***&api_key=***",
            ),
            ("sqlite:hsync.db?secret=s3cret", "sqlite:hsync.db?secret=***"),
            ("sqlite://hsync.db?mode=rwc", "sqlite://hsync.db?mode=rwc"),
            (
                "postgres://db/w?sslkey=/etc/k.pem&sslmode=verify-full",
                "postgres://db/w?sslkey=/etc/k.pem&sslmode=verify-full",
            ),
            ("bigquery://proj/ds", "bigquery://proj/ds"),
            ("parquet:///var/lib/lake", "parquet:///var/lib/lake"),
        ];
        for (url, shown) in cases {
            let url = DestinationUrl::new(url);
            assert_eq!(url.redacted(), shown, "{url:?}");
            assert_eq!(url.to_string(), shown);
            assert!(!format!("{url} {url:?}").contains("s3"), "a secret (all start with s3) shows in {url}");
        }
    }

    #[test]
    fn credential_parameters_are_recognised_by_name() {
        for name in [
            "password",
            "sslpassword",
            "PASSWORD",
            "passphrase",
            "pwd",
            "client_secret",
            "access-token",
            "api_key",
            "key",
            "sig",
        ] {
            assert!(is_credential_parameter(name), "{name}");
        }
        for name in ["sslmode", "sslkey", "ssl-key", "sslcert", "warehouse", "role", "application_name", "host"] {
            assert!(!is_credential_parameter(name), "{name}");
        }
    }

    fn refused(toml: &str) -> String {
        match Config::from_toml(toml) {
            Ok(_) => panic!("accepted: {toml}"),
            Err(e) => {
                assert_eq!(e.class(), ErrorClass::Config);
                e.to_string()
            }
        }
    }

    #[test]
    fn association_sweeps_are_set_per_object_of_sync_objects() {
        let toml = "[sync]\nobjects = [\"contacts\", \"calls\"]\n[daemon]\nassociation_sweep_interval_secs = 3600\n[daemon.association_sweep_interval_by_object]\ncalls = 604800\n";
        let config = Config::from_toml(toml).unwrap();
        assert_eq!(config.daemon.association_sweep_secs("calls"), 604_800);
        assert_eq!(config.daemon.association_sweep_secs("contacts"), 3_600);
        let err =
            refused("[sync]\nobjects = [\"contacts\"]\n[daemon.association_sweep_interval_by_object]\nnotes = 60\n");
        assert!(
            err.contains("association_sweep_interval_by_object.notes names an object that is not in sync.objects"),
            "{err}"
        );
        let err = refused("[sync]\nobjects = [\"calls\"]\n[daemon.association_sweep_interval_by_object]\ncalls = 0\n");
        assert!(err.contains("association_sweep_interval_by_object.calls must be from 1 to 2592000, got 0"), "{err}");
    }

    #[test]
    fn push_jobs_need_at_most_one_source_an_object_an_id_property_and_a_real_region() {
        let ok = "[push.scores]\nobject = \"contacts\"\nid_property = \"email\"\nfile = \"s.csv\"\ndefault_region = \"DE\"\n";
        let config = Config::from_toml(ok).unwrap();
        assert_eq!(config.push["scores"].file.as_deref(), Some(Path::new("s.csv")));
        assert!(config.push["scores"].skip_unchanged, "unchanged rows are left alone unless told otherwise");
        let events_only = "[push.events]\nobject = \"contacts\"\nid_property = \"email\"\n";
        assert!(Config::from_toml(events_only).is_ok(), "records sent to the daemon need no source");
        for (toml, says) in [
            (
                "[push.a]\nobject = \"contacts\"\nid_property = \"email\"\n[push.a.associations.c]\ncolumn = \"email\"\nto = \"companies\"\n",
                "is the id column",
            ),
            (
                "[push.a]\nobject = \"contacts\"\nid_property = \"email\"\nfile = \"x\"\nquery = \"select 1\"\n",
                "keep one source",
            ),
            ("[push.a]\nobject = \" \"\nid_property = \"email\"\nfile = \"x\"\n", "push.a.object is empty"),
            (
                "[push.a]\nobject = \"contacts\"\nid_property = \"email\"\nfile = \"x\"\ndefault_region = \"Mars\"\n",
                "is not an ISO 3166 region",
            ),
            ("[push.a]\nobject = \"contacts\"\nfile = \"x\"\n", "id_property"),
        ] {
            let err = Config::from_toml(toml).unwrap_err().to_string();
            assert!(err.contains(says), "{toml}: {err}");
        }
    }

    #[test]
    fn history_names_properties_defaults_or_every_property_per_synced_object() {
        let toml = "[sync]\nobjects = [\"deals\", \"contacts\", \"cars\", \"calls\"]\n[sync.history]\n\
                    deals = [\"default\", \"hs_forecast_amount\", \"amount\"]\ncontacts = [\"*\"]\ncars = [\"model\"]\n";
        let config = Config::from_toml(toml).unwrap();
        let deals = crate::hubspot::catalogue::find("deals");
        let expected = ["dealstage", "amount", "closedate", "hubspot_owner_id", "pipeline", "hs_forecast_amount"];
        assert_eq!(
            config.sync.history_of("deals", deals),
            Some(HistorySelection::Named(expected.map(str::to_owned).to_vec())),
            "the defaults expanded in place, each property once"
        );
        let contacts = crate::hubspot::catalogue::find("contacts");
        assert_eq!(config.sync.history_of("contacts", contacts), Some(HistorySelection::Every));
        assert_eq!(config.sync.history_of("cars", None), Some(HistorySelection::Named(vec!["model".to_owned()])));
        assert_eq!(config.sync.history_of("calls", crate::hubspot::catalogue::find("calls")), None);
        assert!(
            Config::from_toml("[sync]\nobjects = [\"deals\"]\n").unwrap().sync.history.is_empty(),
            "off by default"
        );

        for (toml, expected) in [
            ("[sync]\nobjects = [\"deals\"]\n[sync.history]\ncontacts = [\"default\"]\n", "sync.history.contacts names an object that is not in sync.objects"),
            ("[sync]\nobjects = [\"deals\"]\n[sync.history]\ndeals = []\n", "sync.history.deals is empty"),
            ("[sync]\nobjects = [\"deals\"]\n[sync.history]\ndeals = [\"*\", \"amount\"]\n", "use \"*\" alone"),
            ("[sync]\nobjects = [\"calls\"]\n[sync.history]\ncalls = [\"default\"]\n", "calls has no default history properties (the types that have them: contacts, companies, deals, tickets"),
            ("[sync]\nobjects = [\"deals\"]\n[sync.history]\ndeals = [\" \"]\n", "sync.history.deals has an empty property name"),
        ] {
            let err = refused(toml);
            assert!(err.contains(expected), "{toml}: {err}");
        }
    }

    #[test]
    fn absurd_numbers_are_refused_saying_what_is_allowed() {
        for (toml, expected) in [
            ("[hubspot]\nconnect_timeout_secs = 0", "hubspot.connect_timeout_secs must be from 1 to 300, got 0"),
            ("[hubspot]\nrequest_timeout_secs = 0", "hubspot.request_timeout_secs must be from 1 to 3600, got 0"),
            ("[sync]\nsettle_lag_secs = 9223372036854775807", "sync.settle_lag_secs must be from 0 to 604800"),
            ("[daemon]\ncdc_interval_secs = 0", "daemon.cdc_interval_secs must be from 1 to 86400, got 0"),
            ("[daemon]\nshutdown_grace_secs = 0", "daemon.shutdown_grace_secs must be from 1 to 3600"),
            ("[daemon]\nassociation_sweep_interval_secs = 99999999999", "must be from 1 to 2592000"),
            ("[limits]\ndaily_budget = 0", "limits.daily_budget must be at least 1, got 0"),
            ("[limits]\nrequests_per_10s = 0", "limits.requests_per_10s must be from 1 to 100000, got 0"),
            ("[limits]\nreserve_percent = 100", "limits.reserve_percent must be from 0 to 99, got 100"),
        ] {
            let err = refused(toml);
            assert!(err.contains(expected), "{toml}: {err}");
        }
        let both = refused("[hubspot]\nconnect_timeout_secs = 0\n[daemon]\nlease_retry_secs = 0\n");
        assert!(both.contains("connect_timeout_secs") && both.contains("lease_retry_secs"), "all at once: {both}");
        Config::from_toml("[sync]\nsettle_lag_secs = 0\n[daemon]\ncdc_interval_secs = 1\n")
            .expect("the edges are allowed");
    }

    #[test]
    fn an_object_named_twice_is_refused_naming_it() {
        let err = refused("[sync]\nobjects = [\"contacts\", \"deals\", \"0-1\"]");
        assert!(err.contains("names contacts twice, as \"contacts\" and \"0-1\""), "{err}");
        let err = refused("[sync]\nobjects = [\"cars\", \"cars\"]");
        assert!(err.contains("names \"cars\" twice"), "{err}");
        let err = refused("[sync]\nobjects = [\"contacts\", \" \"]");
        assert!(err.contains("empty name"), "{err}");
        let err = refused("[sync]\ninclude_properties = [\"email\", \"phone\"]\nexclude_properties = [\"phone\"]");
        assert!(err.contains("both name phone"), "{err}");
    }

    #[test]
    fn a_secret_where_its_variable_name_belongs_is_refused_without_echoing_it() {
        for (toml, key) in [
            ("[hubspot]\ntoken_env = \"pat-na1-11112222-3333\"", "hubspot.token_env"),
            ("[daemon]\nbearer_token_env = \"s3cret token\"", "daemon.bearer_token_env"),
            ("[destination.snowflake]\npassword_env = \"hunter2!\"", "destination.snowflake.password_env"),
        ] {
            let err = refused(toml);
            assert!(err.contains(&format!("{key} must be the NAME of an environment variable")), "{err}");
            for secret in ["pat-na1", "11112222", "s3cret", "hunter2"] {
                assert!(!err.contains(secret), "{secret} echoed: {err}");
            }
        }
    }

    #[test]
    fn a_user_info_that_cannot_be_told_from_the_host_is_refused_without_echoing_it() {
        for url in ["postgres://app:s3/cret@db/w", "postgres://app:s3?cret@db/w", "snowflake://u:s3/cret@acct/DB/S"] {
            let err = refused(&format!("[destination]\nurl = \"{url}\""));
            assert!(err.contains("percent-encode"), "{err}");
            assert!(!err.contains("cret"), "{err}");
        }
        Config::from_toml("[destination]\nurl = \"postgres://app:s3@cret@db/w?password=x\"")
            .expect("an @ before the host is fine");
    }

    #[test]
    fn configuration_maps_to_client_settings() {
        let config = Config::from_toml(
            "[limits]\ndaily_budget = 400000\ntimezone = \"Europe/Berlin\"\nrequests_per_10s = 190\n[hubspot]\napi_family = \"2026-03\"\ntoken_file = \"/run/secrets/t\"\n",
        )
        .unwrap();
        let client = config.hubspot_client_config();
        assert_eq!(client.budget.setting, BudgetSetting::Calls(400_000));
        assert_eq!(client.budget.timezone, PortalZone::Named(chrono_tz::Tz::Europe__Berlin));
        assert_eq!(client.rates.general.map(|g| g.max), Some(190));
        assert_eq!(client.api_family, ApiFamily::Dated202603);
        assert!(matches!(config.token_source(), TokenSource::File { .. }));
        let default = Config::default().hubspot_client_config();
        assert_eq!(default.budget.setting, BudgetSetting::ReservePercent(20));
        assert_eq!(default.rates.general, None, "learned from headers");
    }

    #[test]
    fn shipped_example_config_parses() {
        let text = include_str!("../deploy/hsync.example.toml");
        Config::from_toml(text).expect("deploy/hsync.example.toml must stay valid");
    }
}
