//! A faithful HubSpot CRM API simulator served over real HTTP: what `hsync sim` and `hsync demo`
//! serve and what hsync's tests and benchmarks run against.
//!
//! It owns the catalogue of object types it serves (`catalogue`), the simulated portal
//! (`portal`), the seeded generator (`generate`), search semantics (`search`), rate limits
//! (`limits`), injected faults (`faults`), response latency (`latency`), the gate every API
//! request passes (`gate`: auth, faults, limits, latency, request log), the HubSpot routes
//! (`api`), the admin API under `/_sim` (`admin`) and the webhooks it sends on every change
//! (`webhooks`). It builds its JSON itself and shares no
//! types with hsync's HubSpot client: it is its own crate and does not depend on `hsync`, so a
//! client bug cannot be mirrored here.

// Handlers answer with a ready `Response` on their error paths; boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod admin;
mod api;
pub mod catalogue;
mod faults;
mod gate;
pub mod generate;
mod input;
mod latency;
mod limits;
mod oauth;
mod phone;
mod portal;
mod render;
mod search;
mod validate;
mod webhooks;
mod writes;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use faults::{FaultKind, FaultRule, FaultTarget};
pub use generate::PortalSpec;
pub use latency::{FamilyLatency, LatencySettings};
pub use limits::{LimitSettings, Tier};
pub use oauth::OAuthClient;

use gate::{RequestLog, TokenTable};
use portal::{Millis, Portal};
use webhooks::{ChangeSource, PortalWrite, Webhooks};

/// The default bearer token the simulator accepts, with every scope.
pub const DEFAULT_TOKEN: &str = "pat-sim-00000000-0000-0000-0000-000000000000";

/// How `list` treats a `limit` above 100 (HubSpot's behaviour is undocumented).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum OverLimit {
    /// Serve at most 100 records.
    #[default]
    Clamp,
    /// Answer 400 `VALIDATION_ERROR`.
    Reject,
}

/// What `paging.next.after` of a list page is. HubSpot documents "the Record ID of the next
/// record"; the other two stand for servers that do otherwise, so clients that start a list
/// walk at an id can be tested against them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ListCursor {
    /// The next record's id, as HubSpot documents.
    #[default]
    Id,
    /// An opaque token; a plain id as `after` answers 400.
    Opaque,
    /// The number of records before the next page (an offset, not an id).
    Offset,
}

/// Behaviour switches that can change at runtime.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Behaviour {
    /// Search sends requested properties without a value as `null`.
    pub search_nulls: bool,
    pub list_over_limit: OverLimit,
    pub list_cursor: ListCursor,
    /// How long a `hang` fault holds a request before giving up with a 504.
    pub hang_ms: u64,
    /// Search accepts pages larger than 200 (benchmarks only; HubSpot never does).
    pub unlimited_search_page: bool,
    /// Lifetime of OAuth access tokens (HubSpot: 1,800 s).
    pub oauth_token_lifetime_secs: u64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            search_nulls: true,
            list_over_limit: OverLimit::Clamp,
            list_cursor: ListCursor::Id,
            hang_ms: 120_000,
            unlimited_search_page: false,
            oauth_token_lifetime_secs: 1800,
        }
    }
}

/// A token and the scopes it was granted (`None` grants every scope).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenGrant {
    pub token: String,
    pub scopes: Option<Vec<String>>,
}

/// Everything the simulator starts with.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub portal: PortalSpec,
    pub limits: LimitSettings,
    pub faults: Vec<FaultRule>,
    pub tokens: Vec<TokenGrant>,
    /// OAuth apps whose refresh tokens `POST /oauth/v1/token` accepts.
    pub oauth_clients: Vec<OAuthClient>,
    pub behaviour: Behaviour,
    /// How long answers are held before they are sent; zero (off) by default.
    pub latency: LatencySettings,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            portal: PortalSpec::default(),
            limits: LimitSettings::default(),
            faults: Vec::new(),
            tokens: vec![TokenGrant { token: DEFAULT_TOKEN.to_owned(), scopes: None }],
            oauth_clients: Vec::new(),
            behaviour: Behaviour::default(),
            latency: LatencySettings::default(),
        }
    }
}

/// The simulator's clock: wall time plus an offset the admin API can move forward, or a frozen
/// wall time (so that several writes share one millisecond).
#[derive(Debug, Default)]
pub struct SimClock {
    offset_ms: AtomicI64,
    /// The wall time the clock stopped at; 0 while it runs.
    frozen_at: AtomicI64,
}

impl SimClock {
    pub fn now(&self) -> Millis {
        let frozen = self.frozen_at.load(Ordering::Relaxed);
        let wall = if frozen == 0 { chrono::Utc::now().timestamp_millis() } else { frozen };
        wall + self.offset_ms.load(Ordering::Relaxed)
    }

    pub fn advance(&self, ms: Millis) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Stops the clock at the current wall time (`advance` still moves it).
    pub fn freeze(&self) {
        let _ = self.frozen_at.compare_exchange(
            0,
            chrono::Utc::now().timestamp_millis(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Lets a frozen clock run again; it jumps forward to the wall time.
    pub fn resume(&self) {
        self.frozen_at.store(0, Ordering::Relaxed);
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen_at.load(Ordering::Relaxed) != 0
    }
}

/// Shared state behind every handler.
#[derive(Debug)]
pub struct SimState {
    portal: Mutex<Portal>,
    limits: Mutex<limits::LimitState>,
    faults: Mutex<faults::FaultPlan>,
    log: Mutex<RequestLog>,
    tokens: Mutex<TokenTable>,
    behaviour: Mutex<Behaviour>,
    latency: Mutex<latency::LatencyModel>,
    oauth_clients: Vec<OAuthClient>,
    clock: SimClock,
    webhooks: Webhooks,
}

/// What a handler answers: its response, or the error response it stopped at, so that early
/// exits are `?`. Both are the bytes sent; which side a response is on changes nothing on the wire.
type Answer = Result<axum::response::Response, axum::response::Response>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler must not take the whole simulator down with a poisoned lock.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SimState {
    fn new(config: SimConfig) -> SimState {
        let clock = SimClock::default();
        let now = clock.now();
        SimState {
            portal: Mutex::new(generate::build(&config.portal)),
            limits: Mutex::new(limits::LimitState::new(config.limits, now)),
            faults: Mutex::new(faults::FaultPlan::new(config.portal.seed, config.faults)),
            log: Mutex::new(RequestLog::default()),
            tokens: Mutex::new(TokenTable::new(config.tokens)),
            behaviour: Mutex::new(config.behaviour),
            latency: Mutex::new(latency::LatencyModel::new(config.portal.seed, config.latency)),
            oauth_clients: config.oauth_clients,
            clock,
            webhooks: Webhooks::new(config.portal.seed),
        }
    }

    /// The portal, to read it or to change what webhooks do not report (properties, owners,
    /// pipelines, the index); record changes go through [`SimState::portal_write`].
    fn portal(&self) -> MutexGuard<'_, Portal> {
        let portal = lock(&self.portal);
        // Changes left behind mean a handler changed records through this lock: their events
        // would go out late, under the next writer's change source.
        debug_assert!(
            portal.changes.as_ref().is_none_or(Vec::is_empty),
            "record changes made without SimState::portal_write"
        );
        portal
    }

    /// The portal, to change records for `source`: the changes become webhook events.
    fn portal_write(&self, source: ChangeSource) -> PortalWrite<'_> {
        PortalWrite::new(self.portal(), &self.webhooks, source)
    }

    fn behaviour(&self) -> Behaviour {
        lock(&self.behaviour).clone()
    }
}

/// The simulator's HTTP application: HubSpot's routes plus the admin API. HubSpot's answers
/// are gzipped when the request accepts it, as HubSpot's are, inside the gate, so a
/// `truncated_json` fault cuts the compressed body.
pub fn router(state: Arc<SimState>) -> Router {
    let gzip = tower_http::compression::CompressionLayer::new().quality(tower_http::CompressionLevel::Fastest);
    api::routes(Arc::clone(&state))
        .layer(gzip)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), gate::gate))
        .merge(admin::routes(Arc::clone(&state)))
        .merge(oauth::routes(Arc::clone(&state)))
}

/// A running simulator.
#[derive(Debug)]
pub struct SimHandle {
    pub addr: SocketAddr,
    pub state: Arc<SimState>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    webhooks: tokio::task::JoinHandle<()>,
}

impl SimHandle {
    /// `http://127.0.0.1:port`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and sending webhooks, and waits for both to end.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
        let _ = self.webhooks.await;
    }
}

/// Builds the portal and serves it on `listener`, and sends its webhooks once the admin API
/// turns them on, until [`SimHandle::stop`].
pub async fn start(config: SimConfig, listener: TcpListener) -> std::io::Result<SimHandle> {
    let addr = listener.local_addr()?;
    let client = webhooks::client().map_err(std::io::Error::other)?;
    let state = Arc::new(SimState::new(config));
    let shutdown = CancellationToken::new();
    let app = router(Arc::clone(&state));
    let task = tokio::spawn(gate::serve(listener, app, shutdown.clone()));
    let webhooks = tokio::spawn(webhooks::run(Arc::clone(&state), client, shutdown.clone()));
    Ok(SimHandle { addr, state, shutdown, task, webhooks })
}

/// Builds the portal and serves it on an ephemeral port of 127.0.0.1, for tests and tools that
/// run a simulator in their own process.
pub async fn start_loopback(config: SimConfig) -> std::io::Result<SimHandle> {
    start(config, TcpListener::bind("127.0.0.1:0").await?).await
}

/// How long `hsync sim` waits for in-flight requests at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
