//! The daily call budget: how much of the portal's daily limit hsync may spend, persisted so a
//! restart does not reset it, reset at the portal's midnight, and tightened when HubSpot's
//! `X-HubSpot-RateLimit-Daily-Remaining` shows other integrations using more than expected.
//!
//! Persistence reserves calls in blocks: the stored figure is always at or above what was spent,
//! so a crash can waste at most one block of budget but never lets hsync overspend.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::error::Error;
use crate::clock::Clock;

/// A boxed future, so the store trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How much of the portal's daily limit hsync may use.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetSetting {
    /// At most this many calls a day.
    Calls(u64),
    /// Leave this percentage of the portal's daily limit to other integrations.
    ReservePercent(u8),
    /// No budget of hsync's own (HubSpot's daily limit still applies).
    Unlimited,
}

/// The persisted part of the budget: the day (in the portal's time zone) and the calls reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetRecord {
    pub day: NaiveDate,
    pub reserved: u64,
}

/// A failure to read or write the budget record.
#[derive(Debug, thiserror::Error)]
#[error("cannot persist the daily API budget: {0}; check that the state location is writable")]
pub struct StoreError(pub String);

/// Where the budget is persisted. The state store implements it; [`FileBudgetStore`] serves
/// until one is configured.
pub trait BudgetStore: Send + Sync + fmt::Debug {
    /// The last saved record, if any.
    fn load(&self) -> BoxFuture<'_, Result<Option<BudgetRecord>, StoreError>>;
    /// Saves the record.
    fn save(&self, record: BudgetRecord) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// A JSON file, replaced atomically on every save.
#[derive(Clone, Debug)]
pub struct FileBudgetStore {
    path: PathBuf,
}

impl FileBudgetStore {
    pub fn new(path: impl Into<PathBuf>) -> FileBudgetStore {
        FileBudgetStore { path: path.into() }
    }
}

impl BudgetStore for FileBudgetStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<BudgetRecord>, StoreError>> {
        Box::pin(async move {
            match tokio::fs::read(&self.path).await {
                Ok(bytes) => serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError(format!("{} is not a budget record: {e}", self.path.display()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(StoreError(format!("reading {}: {e}", self.path.display()))),
            }
        })
    }

    fn save(&self, record: BudgetRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let tmp = self.path.with_extension("tmp");
            let bytes = serde_json::to_vec(&record).map_err(|e| StoreError(e.to_string()))?;
            tokio::fs::write(&tmp, bytes).await.map_err(|e| StoreError(format!("writing {}: {e}", tmp.display())))?;
            tokio::fs::rename(&tmp, &self.path)
                .await
                .map_err(|e| StoreError(format!("replacing {}: {e}", self.path.display())))
        })
    }
}

/// The portal's time zone: an IANA name, or a fixed UTC offset such as `+05:30` for portals
/// (and tests) that need one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PortalZone {
    Named(Tz),
    Fixed(FixedOffset),
}

impl PortalZone {
    /// The calendar date at `at` in this zone.
    pub fn date_at(&self, at: DateTime<Utc>) -> NaiveDate {
        match self {
            PortalZone::Named(tz) => at.with_timezone(tz).date_naive(),
            PortalZone::Fixed(offset) => at.with_timezone(offset).date_naive(),
        }
    }

    /// The first instant of local time `local` (None when the zone skips it).
    pub fn earliest(&self, local: &NaiveDateTime) -> Option<DateTime<Utc>> {
        match self {
            PortalZone::Named(tz) => tz.from_local_datetime(local).earliest().map(|t| t.with_timezone(&Utc)),
            PortalZone::Fixed(offset) => offset.from_local_datetime(local).earliest().map(|t| t.with_timezone(&Utc)),
        }
    }
}

impl std::str::FromStr for PortalZone {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(tz) = text.parse::<Tz>() {
            return Ok(PortalZone::Named(tz));
        }
        let offset = text.strip_prefix("UTC").unwrap_or(text);
        offset.parse::<FixedOffset>().map(PortalZone::Fixed).map_err(|_| {
            format!("{text:?} is neither an IANA time zone name (UTC, America/New_York) nor a UTC offset (+05:30)")
        })
    }
}

/// A record kept in memory only, for a one-off command that cannot reach the state store
/// (`hsync check` with the destination down). It forgets the calls spent at exit, so syncing
/// never uses it: a restart would reset the budget.
#[derive(Debug, Default)]
pub struct MemoryBudgetStore(std::sync::Mutex<Option<BudgetRecord>>);

impl BudgetStore for MemoryBudgetStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<BudgetRecord>, StoreError>> {
        let record = *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Box::pin(async move { Ok(record) })
    }

    fn save(&self, record: BudgetRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(record);
        Box::pin(async { Ok(()) })
    }
}

/// Budget configuration.
#[derive(Clone, Debug)]
pub struct BudgetConfig {
    pub setting: BudgetSetting,
    /// The portal's time zone: the budget resets at its midnight.
    pub timezone: PortalZone,
    /// The portal's daily limit when known up front; otherwise learned from the headers.
    pub portal_daily_limit: Option<u64>,
    /// Calls reserved per persisted write.
    pub reserve_block: u64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            setting: BudgetSetting::ReservePercent(20),
            timezone: PortalZone::Named(Tz::UTC),
            portal_daily_limit: None,
            reserve_block: 20,
        }
    }
}

/// The smallest tier's daily limit, assumed until the portal's is known.
const ASSUMED_DAILY_LIMIT: u64 = 250_000;
/// With an absolute budget, hsync still stops when the portal is down to this share.
const ABSOLUTE_FLOOR_PERCENT: u64 = 5;

#[derive(Debug)]
struct BudgetState {
    day: Option<NaiveDate>,
    used: u64,
    reserved: u64,
    portal_limit: Option<u64>,
    /// The portal's remaining calls as last reported, and our `used` at that moment.
    portal_remaining: Option<(u64, u64)>,
}

/// A snapshot for status output and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BudgetStatus {
    pub used: u64,
    /// `None` when unlimited.
    pub allowed: Option<u64>,
    pub resets_at: DateTime<Utc>,
}

/// The daily budget, shared by every task using the client.
#[derive(Debug)]
pub struct DailyBudget {
    config: BudgetConfig,
    clock: Arc<dyn Clock>,
    store: Arc<dyn BudgetStore>,
    state: tokio::sync::Mutex<BudgetState>,
}

impl DailyBudget {
    pub fn new(config: BudgetConfig, clock: Arc<dyn Clock>, store: Arc<dyn BudgetStore>) -> DailyBudget {
        let portal_limit = config.portal_daily_limit;
        DailyBudget {
            config,
            clock,
            store,
            state: tokio::sync::Mutex::new(BudgetState {
                day: None,
                used: 0,
                reserved: 0,
                portal_limit,
                portal_remaining: None,
            }),
        }
    }

    fn today(&self) -> NaiveDate {
        self.config.timezone.date_at(self.clock.now())
    }

    /// The next midnight of the portal, in UTC.
    pub fn resets_at(&self) -> DateTime<Utc> {
        let next = self.today().succ_opt().unwrap_or(NaiveDate::MAX).and_hms_opt(0, 0, 0).unwrap_or_default();
        self.config.timezone.earliest(&next).unwrap_or_else(|| self.clock.now() + chrono::Duration::days(1))
    }

    async fn roll(&self, state: &mut BudgetState) -> Result<(), Error> {
        let today = self.today();
        if state.day == Some(today) {
            return Ok(());
        }
        let loaded = self.store.load().await?;
        // A record from today (written before a restart) counts as spent.
        let carried = loaded.filter(|r| r.day == today).map_or(0, |r| r.reserved);
        state.day = Some(today);
        state.used = carried;
        state.reserved = carried;
        state.portal_remaining = None;
        Ok(())
    }

    fn allowance(&self, state: &BudgetState) -> Option<u64> {
        let limit = state.portal_limit.unwrap_or(ASSUMED_DAILY_LIMIT);
        let (cap, keep_free) = match self.config.setting {
            BudgetSetting::Unlimited => return None,
            BudgetSetting::Calls(k) => (k, limit * ABSOLUTE_FLOOR_PERCENT / 100),
            BudgetSetting::ReservePercent(p) => {
                let keep = limit * u64::from(p.min(100)) / 100;
                (limit - keep, keep)
            }
        };
        let tightened = state.portal_remaining.map(|(remaining, used_then)| {
            let portal_left = remaining.saturating_sub(state.used.saturating_sub(used_then));
            state.used + portal_left.saturating_sub(keep_free)
        });
        Some(tightened.map_or(cap, |t| t.min(cap)))
    }

    /// Takes one call from the budget, or fails with the reset time when it is spent.
    pub async fn acquire(&self) -> Result<(), Error> {
        let mut state = self.state.lock().await;
        self.roll(&mut state).await?;
        let Some(allowed) = self.allowance(&state) else {
            state.used += 1;
            return Ok(());
        };
        if state.used >= allowed {
            metrics::gauge!("hsync_hubspot_budget_remaining").set(0.0);
            return Err(Error::BudgetExhausted { used: state.used, budget: allowed, resets_at: self.resets_at() });
        }
        if state.used >= state.reserved {
            let reserved = (state.used + self.config.reserve_block.max(1)).min(allowed);
            let day = state.day.unwrap_or_else(|| self.today());
            self.store.save(BudgetRecord { day, reserved }).await?;
            state.reserved = reserved;
        }
        state.used += 1;
        metrics::gauge!("hsync_hubspot_budget_remaining").set((allowed - state.used) as f64);
        Ok(())
    }

    /// Learns from HubSpot's daily headers (not sent on search or OAuth calls).
    pub async fn observe(&self, daily_limit: Option<u64>, daily_remaining: Option<u64>) {
        let mut state = self.state.lock().await;
        if let Some(limit) = daily_limit.filter(|l| *l > 0) {
            if self.config.portal_daily_limit.is_none() {
                state.portal_limit = Some(limit);
            }
        }
        if let Some(remaining) = daily_remaining {
            let used = state.used;
            state.portal_remaining = Some((remaining, used));
        }
    }

    /// Calls used and allowed today as the persisted ledger records them, without calling
    /// HubSpot (for `hsync status`, which must work when the token is missing or the budget is
    /// spent). `used` is what the ledger reserved, at most one reserve block above the calls
    /// made; `allowed` is the configured budget, not yet tightened by HubSpot's headers. Unlike
    /// [`DailyBudget::status`], a ledger that cannot be read is an error, not zero.
    pub async fn ledger_status(&self) -> Result<BudgetStatus, Error> {
        let mut state = self.state.lock().await;
        self.roll(&mut state).await?;
        Ok(BudgetStatus { used: state.used, allowed: self.allowance(&state), resets_at: self.resets_at() })
    }

    /// The portal's current day, in its time zone: the day the budget counts.
    pub fn day(&self) -> NaiveDate {
        self.today()
    }

    /// Calls used and allowed today.
    pub async fn status(&self) -> BudgetStatus {
        let mut state = self.state.lock().await;
        let _ = self.roll(&mut state).await;
        BudgetStatus { used: state.used, allowed: self.allowance(&state), resets_at: self.resets_at() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn budget(setting: BudgetSetting, clock: &ManualClock, store: &Arc<MemoryBudgetStore>) -> DailyBudget {
        let config =
            BudgetConfig { setting, portal_daily_limit: Some(1_000), reserve_block: 3, ..BudgetConfig::default() };
        DailyBudget::new(config, Arc::new(clock.clone()), Arc::clone(store) as Arc<dyn BudgetStore>)
    }

    #[tokio::test]
    async fn absolute_budget_stops_at_exactly_k_and_survives_restart() {
        let clock = ManualClock::new();
        let store = Arc::new(MemoryBudgetStore::default());
        let first = budget(BudgetSetting::Calls(10), &clock, &store);
        for _ in 0..7 {
            first.acquire().await.unwrap();
        }
        drop(first);
        let second = budget(BudgetSetting::Calls(10), &clock, &store);
        let mut more = 0;
        while second.acquire().await.is_ok() {
            more += 1;
        }
        assert!(7 + more <= 10, "never more than K across a restart: {more}");
        assert!(more >= 1, "at most one block is lost to the restart");
    }

    #[tokio::test]
    async fn reserve_tightens_when_others_use_the_portal() {
        let clock = ManualClock::new();
        let store = Arc::new(MemoryBudgetStore::default());
        let b = budget(BudgetSetting::ReservePercent(20), &clock, &store);
        assert_eq!(b.status().await.allowed, Some(800));
        // Others used 700 of 1000: 300 left, 200 must stay free, so 100 more for us.
        b.observe(Some(1_000), Some(300)).await;
        assert_eq!(b.status().await.allowed, Some(100));
    }
}
