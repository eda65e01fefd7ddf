//! `hsync run`: the long-running daemon. It owns the process's life cycle: the HTTP endpoints
//! ([`http`]), the leader lease (a standby waits for it), the job scheduler ([`jobs`], with its
//! timing policy in [`schedule`]), systemd readiness and watchdog notifications, and the bounded
//! graceful stop. What it is doing right now is shared through [`live`].

mod jobs;

pub mod http;
pub mod live;
pub mod schedule;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use self::live::{Live, Role};
use crate::config::Config;
use crate::destination::{AnyDestination, Destination, Holder, Lease};
use crate::error::{Classify, ErrorClass};
use crate::hubspot::{self, Secret};
use crate::job::Jobs;

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {detail}; pick a free address in daemon.listen")]
    Listen { addr: String, detail: String },
    #[error("{key} names {var}, which is unset or empty; export the token or remove the key")]
    BearerToken { key: &'static str, var: String },
    #[error("daemon.listen {addr} is not a loopback address and daemon.bearer_token_env is not set, so /metrics and /status would be open to anyone who can reach it; set daemon.bearer_token_env (and export the token), listen on 127.0.0.1, or set daemon.allow_unauthenticated_listen = true where the network keeps strangers out")]
    Unauthenticated { addr: String },
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
    #[error("the batch in flight did not commit within {0}s of the stop signal; hsync stopped anyway and the next start resumes from the last committed page")]
    ShutdownTimeout(u64),
    #[error(transparent)]
    HubSpot(#[from] hubspot::Error),
    #[error(transparent)]
    WebhookSecret(#[from] crate::webhooks::SecretError),
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::Listen { .. } | Error::BearerToken { .. } | Error::Unauthenticated { .. } => ErrorClass::Config,
            Error::Metrics(_) => ErrorClass::Bug,
            Error::ShutdownTimeout(_) => ErrorClass::Transient,
            Error::HubSpot(e) => e.class(),
            Error::WebhookSecret(e) => e.class(),
        }
    }
}

/// Runs the daemon until `shutdown` fires, then lets the batch in flight commit (for at most
/// `daemon.shutdown_grace_secs`) and returns.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let metrics = install_metrics()?;
    let bearer = bearer_token(&config)?;
    // Validated when the configuration was loaded.
    let addr: SocketAddr = config
        .daemon
        .listen
        .parse()
        .map_err(|e| Error::Listen { addr: config.daemon.listen.clone(), detail: format!("{e}") })?;
    if !addr.ip().is_loopback() && bearer.is_none() {
        if !config.daemon.allow_unauthenticated_listen {
            return Err(Error::Unauthenticated { addr: addr.to_string() });
        }
        tracing::warn!(%addr, "the endpoints listen beyond loopback without daemon.bearer_token_env (daemon.allow_unauthenticated_listen is set): /metrics and /status are open to anyone who can reach them");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Listen { addr: addr.to_string(), detail: e.to_string() })?;
    let bound = listener.local_addr().map_err(|e| Error::Listen { addr: addr.to_string(), detail: e.to_string() })?;
    let clock = crate::clock::system();
    let live = Arc::new(Live::new(config.hubspot_client_config().budget, Arc::clone(&clock)));
    live.set_role(Role::Starting, None);
    let http_stop = CancellationToken::new();
    let pushes = match token_from(config.daemon.push_token_env.as_ref(), "daemon.push_token_env")? {
        Some(token) => Some(Arc::new(http::PushEndpoint { token, pushes: config.push.clone() })),
        None => None,
    };
    let app = http::router(http::HttpState::new(Arc::clone(&live), metrics, bearer).with_push(pushes));
    let server = tokio::spawn(http::serve(listener, app, http_stop.clone()));
    tracing::info!(address = %bound, "daemon endpoints listening (/healthz /readyz /metrics /status)");
    println!("hsync run: endpoints on http://{bound}");
    let receiver = match webhook_receiver(&config, &live, &http_stop).await {
        Ok(receiver) => receiver,
        Err(e) => {
            http_stop.cancel();
            return Err(e);
        }
    };
    systemd_notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("starting")]);
    let watchdog = spawn_watchdog();

    let grace = Duration::from_secs(config.daemon.shutdown_grace_secs);
    let outcome = tokio::select! {
        () = supervise(&config, &live, &shutdown) => Ok(()),
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            Err(Error::ShutdownTimeout(grace.as_secs()))
        }
    };
    live.set_role(Role::Stopping, None);
    systemd_notify(&[sd_notify::NotifyState::Stopping]);
    if let Some(w) = watchdog {
        w.abort();
    }
    http_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    if let Some(receiver) = receiver {
        let _ = tokio::time::timeout(Duration::from_secs(2), receiver).await;
    }
    outcome
}

/// Starts the webhook receiver on its own listener when `webhooks.enabled` (see
/// [`webhooks`]); it runs until `stop`.
async fn webhook_receiver(
    config: &Config,
    live: &Arc<Live>,
    stop: &CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>, Error> {
    let w = &config.webhooks;
    if !w.enabled {
        return Ok(None);
    }
    let secret = Arc::new(crate::webhooks::client_secret(w)?);
    // Both validated when the configuration was loaded.
    let listen_error = |detail: String| Error::Listen { addr: w.listen.clone(), detail };
    let addr: SocketAddr = w.listen.parse().map_err(|e| listen_error(format!("{e}")))?;
    let (Some(target_url), Some(path)) = (w.target_url.clone(), w.path()) else {
        return Err(listen_error("webhooks.target_url is not set".to_owned()));
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| listen_error(e.to_string()))?;
    let bound = listener.local_addr().map_err(|e| listen_error(e.to_string()))?;
    live.update_webhooks(|_| {});
    let receiver = webhooks::Receiver {
        live: Arc::clone(live),
        secret,
        target_url,
        max_body_bytes: usize::try_from(w.max_body_bytes).unwrap_or(usize::MAX),
    };
    let app = webhooks::router(receiver, &path);
    tracing::info!(address = %bound, path = %path, "webhook receiver listening");
    println!("hsync run: webhooks on http://{bound}{path}");
    Ok(Some(tokio::spawn(http::serve(listener, app, stop.clone()))))
}

/// Connects, then alternates between standby and leader until the stop signal.
async fn supervise(config: &Config, live: &Arc<Live>, shutdown: &CancellationToken) {
    let retry = Duration::from_secs(config.daemon.lease_retry_secs);
    let Some(dest) = connect(config, live, shutdown).await else { return };
    live.set_warehouse(dest.clone(), dest.state_store());
    let name = &config.destination.state_schema;
    let mut announced_standby = false;
    while !shutdown.is_cancelled() {
        match dest.try_lease(name, &Holder::this_process("hsync run")).await {
            Ok(Some(lease)) => {
                announced_standby = false;
                let lost = lead(config, &dest, lease, live, shutdown).await;
                live.clear_jobs();
                if !lost {
                    return;
                }
                live.set_role(Role::Standby, None);
            }
            Ok(None) => {
                if !announced_standby {
                    let holder = dest.lease_holder(name).await.ok().flatten().unwrap_or_default();
                    tracing::info!(holder = %holder, "another instance holds the leader lease: standing by to take over");
                    systemd_notify(&[sd_notify::NotifyState::Status("standby: another instance is syncing")]);
                    announced_standby = true;
                }
                live.set_role(Role::Standby, None);
            }
            Err(e) => tracing::warn!(error = %e, "cannot take the leader lease; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(retry) => {}
        }
    }
}

/// Connects to the destination, retrying until it answers or the stop signal; the last failure
/// (with its class: a wrong login or a missing database needs an operator) shows in `/status`.
async fn connect(config: &Config, live: &Live, shutdown: &CancellationToken) -> Option<AnyDestination> {
    let mut failures = 0;
    loop {
        match AnyDestination::connect(&config.destination).await {
            Ok(dest) => {
                live.set_connect_error(None);
                return Some(dest);
            }
            Err(e) => {
                live.set_connect_error(Some(live::JobFailure {
                    at: live.clock.now(),
                    class: e.class(),
                    message: e.to_string(),
                }));
                failures += 1;
                let wait = schedule::backoff(e.class(), failures);
                tracing::warn!(error = %e, retry_in_s = wait.as_secs(), "cannot connect to the destination");
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Syncs while holding `lease`; returns true when the lease was lost (rather than the daemon
/// being stopped), so the caller goes back to standby.
async fn lead(
    config: &Config,
    dest: &AnyDestination,
    lease: Lease,
    live: &Arc<Live>,
    shutdown: &CancellationToken,
) -> bool {
    let described = lease.describe();
    tracing::info!(lease = %described, "took the leader lease: syncing");
    live.set_role(Role::Leader, Some(described));
    systemd_notify(&[sd_notify::NotifyState::Status("leader: syncing")]);
    let leading = shutdown.child_token();
    let lost = Arc::new(AtomicBool::new(false));
    let lease = Arc::new(tokio::sync::Mutex::new(Some(lease)));
    let watcher = tokio::spawn(watch_lease(
        Arc::clone(&lease),
        leading.clone(),
        Arc::clone(&lost),
        Duration::from_secs(config.daemon.lease_retry_secs),
    ));
    if let Some(jobs) = prepare(config, dest, &leading).await {
        let jobs = Arc::new(jobs);
        // Both in this task, polled together: each waits on I/O while the other runs, and both
        // end when `leading` is cancelled.
        let applier = async {
            if config.webhooks.enabled {
                jobs::apply_webhooks(config, Arc::clone(&jobs), live, &leading).await;
            }
        };
        let mut scheduler = jobs::Scheduler::new(config, Arc::clone(&jobs), live);
        let (queue, pushed) = tokio::sync::mpsc::channel(PUSHES_WAITING);
        live.set_push_queue(Some(queue));
        tokio::join!(scheduler.run(&leading), applier, jobs::run_pushes(&jobs, pushed, &leading));
        live.set_push_queue(None);
    }
    leading.cancel();
    let _ = watcher.await;
    if let Some(held) = lease.lock().await.take() {
        held.release().await;
    }
    lost.load(Ordering::SeqCst)
}

/// Requests of `POST /push/<name>` waiting for the leader; more are answered 503.
const PUSHES_WAITING: usize = 16;

/// Checks the lease every `every`; cancels `leading` when it is lost.
async fn watch_lease(
    lease: Arc<tokio::sync::Mutex<Option<Lease>>>,
    leading: CancellationToken,
    lost: Arc<AtomicBool>,
    every: Duration,
) {
    loop {
        tokio::select! {
            () = leading.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let mut guard = lease.lock().await;
        let Some(held) = guard.as_mut() else { return };
        if let Err(e) = held.check().await {
            tracing::error!(error = %e, "lost the leader lease: stopping work and standing by");
            lost.store(true, Ordering::SeqCst);
            leading.cancel();
            return;
        }
    }
}

/// Prepares the destination, sweeps stages left by a crash (safe only now, as the lease holder)
/// and builds the jobs; retries until it works or `leading` is cancelled.
async fn prepare(config: &Config, dest: &AnyDestination, leading: &CancellationToken) -> Option<Jobs> {
    let mut failures = 0;
    loop {
        let attempt = async {
            dest.prepare().await?;
            let swept = dest.sweep_stages().await?;
            if swept > 0 {
                tracing::info!(stages = swept, "removed staging tables left by an earlier crash");
            }
            Ok::<_, crate::destination::Error>(())
        };
        let error = match attempt.await {
            Ok(()) => match Jobs::from_config(config, dest) {
                Ok(jobs) => return Some(jobs),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        failures += 1;
        let wait = schedule::backoff(ErrorClass::Transient, failures);
        tracing::warn!(error = %error, retry_in_s = wait.as_secs(), "cannot prepare the destination");
        tokio::select! {
            () = leading.cancelled() => return None,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

fn install_metrics() -> Result<PrometheusHandle, Error> {
    let handle = PrometheusBuilder::new().install_recorder().map_err(|e| Error::Metrics(e.to_string()))?;
    metrics::describe_counter!("hsync_hubspot_requests_total", "HubSpot requests by endpoint and status class");
    metrics::describe_counter!("hsync_hubspot_rate_limited_total", "HubSpot 429 answers by policy");
    metrics::describe_counter!("hsync_hubspot_retries_total", "HubSpot request retries by reason");
    metrics::describe_gauge!("hsync_hubspot_budget_remaining", "Calls left in today's API budget");
    metrics::describe_gauge!("hsync_budget_paused", "1 while every stream waits for the daily budget to reset");
    metrics::describe_counter!("hsync_rows_merged_total", "Rows merged into the warehouse by object");
    metrics::describe_gauge!("hsync_stream_lag_seconds", "How far the CDC watermark trails now, by object");
    metrics::describe_counter!("hsync_errors_total", "Failed job runs by stream and error class");
    metrics::describe_gauge!("hsync_backfill_progress_ratio", "Share of an object's records the backfill copied");
    metrics::describe_gauge!("hsync_stream_last_success_timestamp_seconds", "When each stream last ran without error");
    metrics::describe_gauge!("hsync_leader", "1 while this instance holds the leader lease");
    metrics::gauge!("hsync_leader").set(0.0);
    metrics::gauge!("hsync_budget_paused").set(0.0);
    Ok(handle)
}

fn bearer_token(config: &Config) -> Result<Option<Arc<Secret>>, Error> {
    token_from(config.daemon.bearer_token_env.as_ref(), "daemon.bearer_token_env")
}

/// The token in the environment variable `var` names (`key` is the setting naming it).
fn token_from(var: Option<&String>, key: &'static str) -> Result<Option<Arc<Secret>>, Error> {
    let Some(var) = var else { return Ok(None) };
    match std::env::var(var) {
        Ok(token) if !token.trim().is_empty() => Ok(Some(Arc::new(Secret::new(token.trim())))),
        _ => Err(Error::BearerToken { key, var: var.clone() }),
    }
}

/// Tells systemd (when it started us with `Type=notify`) how we are; a no-op elsewhere.
fn systemd_notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "systemd notification failed");
    }
}

/// Pings systemd's watchdog at half its timeout while the runtime is healthy.
fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let timeout = sd_notify::watchdog_enabled()?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(timeout / 2);
        loop {
            tick.tick().await;
            systemd_notify(&[sd_notify::NotifyState::Watchdog]);
        }
    }))
}
