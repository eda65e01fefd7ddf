//! What the daemon is doing right now, shared between the scheduler (which writes it) and the
//! HTTP endpoints (which read it): role, budget pause, token health and each job's schedule.
//! Durable progress lives in the state store; this is only the process's own view.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::Clock;
use crate::destination::{AnyDestination, AnyStateStore};
use crate::error::ErrorClass;
use crate::hubspot::BudgetConfig;

/// The daemon's part in a leader/standby pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Connecting to the destination.
    Starting,
    /// Another instance holds the lease; this one waits to take over.
    Standby,
    /// This instance holds the lease and syncs.
    Leader,
    /// Shutting down after a signal.
    Stopping,
}

/// A job's last failure.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobFailure {
    pub at: DateTime<Utc>,
    pub class: ErrorClass,
    pub message: String,
}

/// One scheduled job as `/status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobView {
    /// The job (`backfill:contacts`, `cdc:deals`, `associations-sweep:contacts`, ...).
    pub job: String,
    pub running: bool,
    /// When it runs next (absent while it runs or waits for a backfill).
    pub next_run: Option<DateTime<Utc>>,
    /// Why it is not scheduled yet, e.g. waiting for a backfill.
    pub waiting_for: Option<String>,
    pub last_success: Option<DateTime<Utc>>,
    /// Failures in a row since the last success.
    pub failures: u32,
    pub last_failure: Option<JobFailure>,
}

/// The daemon's own view, serialised into `/status` under `daemon`.
#[derive(Clone, Debug, Serialize)]
pub struct LiveView {
    pub role: Role,
    pub started_at: DateTime<Utc>,
    /// Where the lease lives, while held.
    pub lease: Option<String>,
    /// Set while the daily API budget is spent: every stream waits until then.
    pub paused_until: Option<DateTime<Utc>>,
    /// Why HubSpot refused the token, until a call succeeds again.
    pub auth_error: Option<String>,
    /// Why the last attempt to connect to the destination failed, until one succeeds.
    pub connect_error: Option<JobFailure>,
    pub jobs: Vec<JobView>,
    /// The webhook receiver and the application of its events, when webhooks are on.
    pub webhooks: Option<WebhookView>,
}

/// What the webhook receiver took in and what was applied, since the daemon started.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WebhookView {
    /// Deliveries and events accepted and refused.
    #[serde(flatten)]
    pub received: crate::webhooks::Receipts,
    pub last_accepted_at: Option<DateTime<Utc>>,
    /// Events applied (records read back and merged).
    pub events_applied: u64,
    /// Applied events that needed no read of their own (another event named the same record).
    pub events_coalesced: u64,
    /// From the latest applied event's `occurredAt` to its merge, in milliseconds.
    pub lag_ms: Option<i64>,
    /// Whether the last application of events failed (CDC then runs at its usual interval).
    pub failing: bool,
}

/// The shared state.
#[derive(Debug)]
pub struct Live {
    view: Mutex<LiveView>,
    jobs: Mutex<BTreeMap<String, JobView>>,
    /// The destination and its state store, once connected.
    warehouse: OnceLock<(AnyDestination, AnyStateStore)>,
    pub budget: BudgetConfig,
    pub clock: Arc<dyn Clock>,
    /// Wakes the leader's scheduler when webhook events were stored.
    pub webhook_arrivals: tokio::sync::Notify,
    /// Where records pushed to the daemon go while this instance leads: the leader runs them.
    pushes: Mutex<Option<tokio::sync::mpsc::Sender<PushRequest>>>,
}

/// A push of records for the leader to run, and where its outcome goes.
pub type PushRequest =
    (crate::job::Job, tokio::sync::oneshot::Sender<Result<crate::job::Outcome, crate::stream::Error>>);

impl Live {
    pub fn new(budget: BudgetConfig, clock: Arc<dyn Clock>) -> Live {
        let view = LiveView {
            role: Role::Starting,
            started_at: clock.now(),
            lease: None,
            paused_until: None,
            auth_error: None,
            connect_error: None,
            jobs: Vec::new(),
            webhooks: None,
        };
        Live {
            view: Mutex::new(view),
            jobs: Mutex::new(BTreeMap::new()),
            warehouse: OnceLock::new(),
            budget,
            clock,
            webhook_arrivals: tokio::sync::Notify::new(),
            pushes: Mutex::new(None),
        }
    }

    /// Records where pushed records go while leading (`None` when it stops).
    pub fn set_push_queue(&self, queue: Option<tokio::sync::mpsc::Sender<PushRequest>>) {
        *self.pushes.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = queue;
    }

    /// Where pushed records go, when this instance leads.
    pub fn push_queue(&self) -> Option<tokio::sync::mpsc::Sender<PushRequest>> {
        self.pushes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn lock_view(&self) -> MutexGuard<'_, LiveView> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.view.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_jobs(&self) -> MutexGuard<'_, BTreeMap<String, JobView>> {
        self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the view with the jobs in name order.
    pub fn snapshot(&self) -> LiveView {
        let mut view = self.lock_view().clone();
        view.jobs = self.lock_jobs().values().cloned().collect();
        view
    }

    pub fn role(&self) -> Role {
        self.lock_view().role
    }

    pub fn set_role(&self, role: Role, lease: Option<String>) {
        let mut view = self.lock_view();
        view.role = role;
        view.lease = lease;
        metrics::gauge!("hsync_leader").set(if role == Role::Leader { 1.0 } else { 0.0 });
    }

    pub fn set_paused(&self, until: Option<DateTime<Utc>>) {
        self.lock_view().paused_until = until;
        metrics::gauge!("hsync_budget_paused").set(if until.is_some() { 1.0 } else { 0.0 });
    }

    pub fn paused_until(&self) -> Option<DateTime<Utc>> {
        self.lock_view().paused_until
    }

    pub fn set_auth_error(&self, error: Option<String>) {
        self.lock_view().auth_error = error;
    }

    pub fn auth_error(&self) -> Option<String> {
        self.lock_view().auth_error.clone()
    }

    pub fn set_connect_error(&self, error: Option<JobFailure>) {
        self.lock_view().connect_error = error;
    }

    pub fn connect_error(&self) -> Option<JobFailure> {
        self.lock_view().connect_error.clone()
    }

    /// Replaces one job's entry.
    pub fn update_job(&self, job: JobView) {
        self.lock_jobs().insert(job.job.clone(), job);
    }

    /// Forgets every job (a standby schedules nothing).
    pub fn clear_jobs(&self) {
        self.lock_jobs().clear();
    }

    /// Records the connected destination (first call wins).
    pub fn set_warehouse(&self, dest: AnyDestination, state: AnyStateStore) {
        let _ = self.warehouse.set((dest, state));
    }

    /// Changes the webhook view (turning it on the first time).
    pub fn update_webhooks(&self, change: impl FnOnce(&mut WebhookView)) {
        change(self.lock_view().webhooks.get_or_insert_with(WebhookView::default));
    }

    /// What the webhook receiver counted since the daemon started.
    pub fn webhook_receipts(&self) -> crate::webhooks::Receipts {
        self.lock_view().webhooks.as_ref().map(|w| w.received.clone()).unwrap_or_default()
    }

    /// Whether webhooks carry changes now: a delivery accepted within `within` and the last
    /// application succeeded. While they do, CDC runs on the longer webhook interval.
    pub fn webhooks_healthy(&self, within: chrono::Duration) -> bool {
        let now = self.clock.now();
        self.lock_view()
            .webhooks
            .as_ref()
            .is_some_and(|w| !w.failing && w.last_accepted_at.is_some_and(|at| now - at <= within))
    }

    pub fn warehouse(&self) -> Option<&(AnyDestination, AnyStateStore)> {
        self.warehouse.get()
    }
}
