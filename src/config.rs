//! hsync's configuration: one TOML file plus `HSYNC_<SECTION>__<KEY>` environment overrides.
//!
//! Unknown keys are rejected with the key's name, so a typo never silently falls back to a
//! default. Secrets are never read from the file or the command line: the HubSpot token comes
//! from an environment variable or a file named here, and passwords inside destination URLs are
//! redacted whenever the configuration is shown.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::error::{Classify, ErrorClass};

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

/// Which HubSpot path family requests use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiFamily {
    /// `/crm/v3/...` and `/crm/v4/associations/...`.
    #[default]
    #[serde(rename = "v3")]
    Numbered,
    /// `/crm/objects/2026-03/...` and friends.
    #[serde(rename = "2026-03")]
    Dated202603,
}

/// Connection to HubSpot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

/// A URL that may hold a password; shown with the password replaced.
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

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let s = &self.0;
        let Some(scheme_end) = s.find("://") else {
            return s.clone();
        };
        let rest = &s[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                format!("{}://{}:***{}", &s[..scheme_end], &authority[..colon], &rest[at..])
            }
            _ => s.clone(),
        }
    }
}

impl fmt::Debug for DestinationUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DestinationUrl({})", self.redacted())
    }
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

impl DestinationKind {
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
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            objects: ["contacts", "companies", "deals", "tickets"].map(str::to_owned).to_vec(),
            include_properties: Vec::new(),
            exclude_properties: Vec::new(),
            settle_lag_secs: 300,
            backfill_fetch_ahead: false,
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
    /// Seconds between CDC passes of an object (after its backfill finished).
    pub cdc_interval_secs: u64,
    /// Seconds between association polls (edges of records changed since the last poll).
    pub associations_interval_secs: u64,
    /// Seconds between full association sweeps (catch changes that moved no timestamp).
    pub association_sweep_interval_secs: u64,
    /// Seconds between delete, merge and restore reconciles of an object.
    pub deletes_interval_secs: u64,
    /// Seconds between schema checks (new, changed and archived properties) of an object.
    pub schema_interval_secs: u64,
    /// Seconds between full refreshes of owners and pipelines.
    pub dimensions_interval_secs: u64,
    /// Each interval is stretched or shrunk at random by up to this share, so streams and
    /// daemons do not fire in lockstep.
    pub jitter_percent: u8,
    /// After SIGTERM, the batch in flight gets this long to commit before hsync exits anyway.
    pub shutdown_grace_secs: u64,
    /// How often a standby tries to take the leader lease.
    pub lease_retry_secs: u64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: "127.0.0.1:9464".to_owned(),
            bearer_token_env: None,
            allow_unauthenticated_listen: false,
            cdc_interval_secs: 60,
            associations_interval_secs: 300,
            association_sweep_interval_secs: 86_400,
            deletes_interval_secs: 3_600,
            schema_interval_secs: 900,
            dimensions_interval_secs: 3_600,
            jitter_percent: 10,
            shutdown_grace_secs: 30,
            lease_retry_secs: 5,
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

    fn validate(&self) -> Result<(), Error> {
        if !(self.hubspot.base_url.starts_with("http://") || self.hubspot.base_url.starts_with("https://")) {
            return Err(Error::Inconsistent(format!(
                "hubspot.base_url must start with http:// or https://, got {:?}",
                self.hubspot.base_url
            )));
        }
        if self.destination.kind().is_none() {
            return Err(Error::Inconsistent(format!(
                "destination.url must be sqlite://PATH, postgres://..., bigquery://PROJECT/DATASET, \
                 snowflake://USER@ACCOUNT/DATABASE/SCHEMA or parquet://DIRECTORY, got {}",
                self.destination.url.redacted()
            )));
        }
        if let Err(reason) = self.limits.timezone.parse::<crate::hubspot::PortalZone>() {
            return Err(Error::Inconsistent(format!("limits.timezone {reason}")));
        }
        if self.limits.reserve_percent >= 100 {
            return Err(Error::Inconsistent("limits.reserve_percent must be below 100".to_owned()));
        }
        if self.limits.searches_per_second == 0 || self.limits.requests_per_10s == Some(0) {
            return Err(Error::Inconsistent(
                "limits.searches_per_second and limits.requests_per_10s must be positive".to_owned(),
            ));
        }
        if self.daemon.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(Error::Inconsistent(format!(
                "daemon.listen must be an address with a port such as 127.0.0.1:9464, got {:?}",
                self.daemon.listen
            )));
        }
        if self.daemon.jitter_percent >= 100 {
            return Err(Error::Inconsistent("daemon.jitter_percent must be below 100".to_owned()));
        }
        let d = &self.daemon;
        if [d.cdc_interval_secs, d.associations_interval_secs, d.association_sweep_interval_secs]
            .into_iter()
            .chain([d.deletes_interval_secs, d.schema_interval_secs, d.dimensions_interval_secs, d.lease_retry_secs])
            .any(|secs| secs == 0)
        {
            return Err(Error::Inconsistent("daemon intervals must be at least one second".to_owned()));
        }
        if self.sync.objects.is_empty() {
            return Err(Error::Inconsistent("sync.objects is empty: name at least one object type".to_owned()));
        }
        Ok(())
    }

    /// The configuration as TOML with secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.destination.url = DestinationUrl(self.destination.url.redacted());
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
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
        let config =
            Config { destination: DestinationConfig { url, ..DestinationConfig::default() }, ..Config::default() };
        assert!(!config.to_redacted_toml().contains("s3cret"));
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn shipped_example_config_parses() {
        let text = include_str!("../deploy/hsync.example.toml");
        Config::from_toml(text).expect("deploy/hsync.example.toml must stay valid");
    }
}
