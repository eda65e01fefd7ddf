//! What every syncing command opens: the configuration, the destination (with its state store
//! and budget ledger) under the destination's lease, and the jobs (HubSpot client and runner)
//! that the commands run, with a progress bar on a terminal.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use indicatif::ProgressBar;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::destination::{AnyDestination, AnyStateStore, Destination, Holder, Lease};
use crate::hubspot::{self, HubSpotClient, ObjectRef};
use crate::job::{Job, Jobs, Outcome, Progress};
use crate::telemetry::progress;

/// How often a command waiting for the lease (`--wait-for-lease`) tries again.
const LEASE_POLL: Duration = Duration::from_secs(1);

/// How a writing command takes the destination's lease.
#[derive(Debug, Clone)]
pub struct Leasing {
    /// The command, as the lease's holder description names it (`hsync backfill`).
    pub command: &'static str,
    /// How long to wait for a lease another process holds; zero refuses at once.
    pub wait: Duration,
}

/// An open session.
#[derive(Debug)]
pub struct Session {
    pub config: Config,
    pub jobs: Jobs,
    /// Held for the session's life; `None` only for a session that never writes.
    _lease: Option<Lease>,
}

impl Session {
    /// Loads the configuration, connects, takes the destination's lease and prepares the
    /// destination, builds the client.
    pub async fn open(config_path: Option<&Path>, leasing: &Leasing) -> anyhow::Result<Session> {
        let config = Config::load(config_path).context("loading the configuration")?;
        Session::open_config(config, leasing).await
    }

    /// Connects to the destination of `config`, takes its lease (the daemon's too, so a
    /// command never writes beside a daemon or another command), prepares it, sweeps the
    /// stages a crash left (safe only under the lease) and builds the client. A destination
    /// that is briefly down is waited for, as the daemon does (see [`ride_out`]); a held lease
    /// is not (see [`Leasing`]).
    pub async fn open_config(config: Config, leasing: &Leasing) -> anyhow::Result<Session> {
        let never = CancellationToken::new();
        let dest = ride_out("connecting to the destination", &never, |_| async {
            Ok(AnyDestination::connect(&config.destination).await?)
        })
        .await
        .context("connecting to the destination")?;
        let lease = take_lease(&dest, &config.destination.state_schema, leasing).await?;
        ride_out("preparing the destination", &never, |_| async { Ok(dest.prepare().await?) })
            .await
            .context("preparing the destination")?;
        let swept = dest.sweep_stages().await.context("removing staging tables left by a crash")?;
        if swept > 0 {
            tracing::info!(stages = swept, "removed staging tables left by an earlier crash");
        }
        let jobs = Jobs::from_config(&config, &dest)?;
        Ok(Session { jobs, config, _lease: Some(lease) })
    }

    /// A session for `hsync push`, which writes HubSpot and only its own results table and
    /// checkpoint in the destination, so it runs beside a syncing daemon: no lease and no
    /// stage sweep; the destination is prepared (idempotent) so the results table exists.
    pub async fn open_beside_sync(config_path: Option<&Path>) -> anyhow::Result<Session> {
        let Warehouse { config, dest, .. } = Warehouse::open(config_path).await?;
        let never = CancellationToken::new();
        ride_out("preparing the destination", &never, |_| async { Ok(dest.prepare().await?) })
            .await
            .context("preparing the destination")?;
        let jobs = Jobs::from_config(&config, &dest)?;
        Ok(Session { jobs, config, _lease: None })
    }

    /// A session that only reads (`schema-diff` without `--apply`): no lease and no stage
    /// sweep, so it is safe beside a running sync.
    pub async fn open_read_only(config_path: Option<&Path>) -> anyhow::Result<Session> {
        let Warehouse { config, dest, .. } = Warehouse::open(config_path).await?;
        let jobs = Jobs::from_config(&config, &dest)?;
        Ok(Session { jobs, config, _lease: None })
    }

    /// The configured objects, or `only` when given.
    pub async fn objects(&self, only: &[String]) -> anyhow::Result<Vec<ObjectRef>> {
        let names = if only.is_empty() { self.config.sync.objects.clone() } else { only.to_vec() };
        Ok(hubspot::resolve_objects(&self.jobs.runner.client, &names).await?)
    }

    /// Runs `job` as one recorded run (see [`Jobs::run`]), a backfill with a progress bar when
    /// stdout is a terminal.
    pub async fn run(&self, job: &Job, stop: &CancellationToken) -> anyhow::Result<Outcome> {
        Ok(self.jobs.run(job, stop, &Bar::default()).await?)
    }
}

/// A backfill's progress bar (see `telemetry::progress`): rows, rate and time left.
#[derive(Debug, Default)]
struct Bar(std::sync::Mutex<Option<ProgressBar>>);

impl Bar {
    fn bar(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Progress for Bar {
    fn wants_total(&self) -> bool {
        progress::shown()
    }

    fn start(&self, object: &str, total: u64, done: u64) {
        *self.bar() = Some(progress::records_bar(object, total, done));
    }

    fn advance(&self, rows: u64) {
        if let Some(bar) = &*self.bar() {
            bar.inc(rows);
        }
    }

    fn end(&self) {
        if let Some(bar) = self.bar().take() {
            progress::finish(&bar);
        }
    }
}

/// How long a one-shot command waits out failures that retrying can fix, in total.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs `attempt` (given the attempt number, from 1) until it succeeds, fails with an error
/// retrying cannot fix, or the next wait would take the time waited past [`PATIENCE`]: so a
/// one-shot command rides out a 429 storm or a short database outage with the daemon's policy
/// (the waits of `daemon::schedule::backoff`, by class), each retry logged. A stop signal ends
/// the waiting with the last error.
pub async fn ride_out<T, F, Fut>(what: &str, shutdown: &CancellationToken, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut waited = std::time::Duration::ZERO;
    let mut failures = 0;
    loop {
        let error = match attempt(failures + 1).await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        let class = super::class_of(&error);
        failures += 1;
        let wait = crate::daemon::schedule::backoff(class, failures);
        if !class.is_retryable() || waited + wait > PATIENCE || shutdown.is_cancelled() {
            return Err(error);
        }
        waited += wait;
        tracing::warn!(what, class = %class, failures, retry_in_s = wait.as_secs(), error = %format!("{error:#}"), "failed; retrying");
        tokio::select! {
            () = shutdown.cancelled() => return Err(error),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Takes the lease `name` of `dest`, waiting up to `leasing.wait` while another process holds
/// it; refuses, naming the holder, after that.
async fn take_lease(dest: &AnyDestination, name: &str, leasing: &Leasing) -> anyhow::Result<Lease> {
    let holder = Holder::this_process(leasing.command);
    let deadline = tokio::time::Instant::now() + leasing.wait;
    let mut looked_again = false;
    let mut announced = false;
    loop {
        if let Some(lease) = dest.try_lease(name, &holder).await.context("taking the destination's lease")? {
            return Ok(lease);
        }
        let held_by = dest.lease_holder(name).await.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "cannot look up the lease's holder");
            None
        });
        // No visible holder: it let go (or has not named itself yet) a moment ago.
        if held_by.is_none() && !looked_again {
            looked_again = true;
            continue;
        }
        let holder = held_by.unwrap_or_else(|| "another process, which has not said who it is".to_owned());
        let now = tokio::time::Instant::now();
        if now >= deadline {
            let refused = crate::destination::Error::Leased { lease: dest.lease_location(name), holder };
            let hint = if leasing.wait.is_zero() {
                "another process is writing to this destination (--wait-for-lease SECONDS waits for it)".to_owned()
            } else {
                format!("another process is writing to this destination; waited {}s", leasing.wait.as_secs())
            };
            return Err(anyhow::Error::new(refused).context(hint));
        }
        if !announced {
            tracing::warn!(holder = %holder, "waiting for the destination's lease");
            announced = true;
        }
        tokio::time::sleep(LEASE_POLL.min(deadline - now)).await;
    }
}

/// A token cancelled on SIGINT or SIGTERM, so commands finish the batch in flight and stop.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        super::wait_for_signal().await;
        tracing::info!("stopping after the batch in flight");
        trigger.cancel();
    });
    token
}

/// What the read-only commands (`status`, `verify`) open: the configuration and the prepared
/// destination with its state store. Unlike [`Session::open`] it never sweeps staging tables,
/// so it is safe beside a running sync, and it builds a HubSpot client only when asked.
#[derive(Debug)]
pub struct Warehouse {
    pub config: Config,
    pub dest: AnyDestination,
    pub state: AnyStateStore,
    pub clock: Arc<dyn crate::clock::Clock>,
}

impl Warehouse {
    /// Loads the configuration and connects to (and prepares) the destination.
    pub async fn open(config_path: Option<&Path>) -> anyhow::Result<Warehouse> {
        let config = Config::load(config_path).context("loading the configuration")?;
        let dest = AnyDestination::connect(&config.destination).await.context("connecting to the destination")?;
        dest.prepare().await.context("preparing the destination")?;
        let state = dest.state_store();
        Ok(Warehouse { config, dest, state, clock: crate::clock::system() })
    }

    /// A HubSpot client that spends from the budget ledger in the state store.
    pub fn client(&self) -> anyhow::Result<HubSpotClient> {
        Ok(HubSpotClient::new(
            self.config.hubspot_client_config(),
            self.config.token_source(),
            Arc::new(self.state.clone()),
            Arc::clone(&self.clock),
        )?)
    }

    /// The configured objects, or `only` when given.
    pub async fn objects(&self, client: &HubSpotClient, only: &[String]) -> anyhow::Result<Vec<ObjectRef>> {
        let names = if only.is_empty() { self.config.sync.objects.clone() } else { only.to_vec() };
        Ok(hubspot::resolve_objects(client, &names).await?)
    }
}
