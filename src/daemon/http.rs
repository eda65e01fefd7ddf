//! The daemon's HTTP endpoints: `/healthz` (the process answers), `/readyz` (the destination
//! answers and HubSpot accepts the token), `/metrics` (Prometheus text) and `/status` (the
//! document `hsync status --json` prints, plus the daemon's live view under `daemon` and how the
//! state store answered under `database`).
//!
//! `/metrics` and `/status` require `Authorization: Bearer <token>` when a token is configured,
//! compared in constant time; the probes stay open so orchestrators need no secret, and they
//! reveal nothing but check names.
//!
//! `/status` never waits long on the database: the state store read gets [`STATUS_TIMEOUT`], and
//! when it fails or times out the last document read is served again, under `database` marked
//! unreachable (with the error's class) and stale, so a monitor sees the outage at once.
//!
//! [`serve`] accepts connections itself rather than through `axum::serve`, which sets no header
//! read timeout: a client gets [`HEADER_READ_TIMEOUT`] to send a request's headers (and an idle
//! keep-alive connection as long to send the next), and at most [`MAX_CONNECTIONS`] are served
//! at once; connections beyond that are closed at once, so half-open connections cannot pile up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use subtle::ConstantTimeEq;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::live::Live;
use crate::destination::Destination;
use crate::error::{Classify, ErrorClass};
use crate::hubspot::Secret;

/// How long `/readyz` waits for the destination before calling it unreachable.
const READY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `/status` waits for the state store before serving its last document.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client has to send a request's headers (or, kept alive, the next request's).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 256;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct HttpState {
    pub live: Arc<Live>,
    pub metrics: PrometheusHandle,
    pub bearer: Option<Arc<Secret>>,
    /// `POST /push/<name>`, when `daemon.push_token_env` is set.
    pub push: Option<Arc<PushEndpoint>>,
    /// The last `/status` document read from the state store, served again while it is unreachable.
    last_status: Arc<Mutex<Option<serde_json::Value>>>,
}

impl HttpState {
    pub fn new(live: Arc<Live>, metrics: PrometheusHandle, bearer: Option<Arc<Secret>>) -> HttpState {
        HttpState { live, metrics, bearer, push: None, last_status: Arc::new(Mutex::new(None)) }
    }

    /// The state with the push endpoint on (when `push` is some).
    pub fn with_push(mut self, push: Option<Arc<PushEndpoint>>) -> HttpState {
        self.push = push;
        self
    }
}

/// What `POST /push/<name>` needs: its token and the push jobs records may go to.
#[derive(Debug)]
pub struct PushEndpoint {
    pub token: Arc<Secret>,
    pub pushes: std::collections::BTreeMap<String, crate::config::PushConfig>,
}

/// Serves `app` on `listener` until `stop` fires (see the module docs for the limits).
pub async fn serve(listener: TcpListener, app: Router, stop: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(%error, "cannot accept a connection on the daemon's endpoints");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!("closed a connection: {MAX_CONNECTIONS} are open already");
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(error) = served {
                        tracing::debug!(%error, "a connection to the daemon's endpoints ended");
                    }
                }
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(slot);
        });
    }
}

/// The router.
pub fn router(state: HttpState) -> Router {
    let guarded = Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_bearer));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/push/{name}", axum::routing::post(push_records))
        .merge(guarded)
        .with_state(state)
}

/// `POST /push/<name>` (docs/push.md "Events"): the push token, always; a body of records
/// checked before anything is sent; each record's outcome in the answer. A standby, or a
/// failure retrying may fix, answers 503 with `Retry-After`.
async fn push_records(
    State(state): State<HttpState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let refuse = |status: StatusCode, message: String| (status, Json(json!({ "error": message }))).into_response();
    let Some(endpoint) = &state.push else {
        return refuse(StatusCode::NOT_FOUND, "this daemon takes no pushed records: set daemon.push_token_env".into());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !bool::from(presented.as_bytes().ct_eq(endpoint.token.expose().as_bytes())) {
        metrics::counter!("hsync_push_requests_total", "outcome" => "unauthorized").increment(1);
        let mut answer = refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send the token from daemon.push_token_env as Authorization: Bearer <token>".into(),
        );
        answer.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        return answer;
    }
    let Some(push) = endpoint.pushes.get(&name) else {
        return refuse(StatusCode::NOT_FOUND, format!("no push named {name}: add a [push.{name}] table"));
    };
    let rows = match crate::push::events::records(&body) {
        Ok(rows) => rows,
        Err(e) => {
            metrics::counter!("hsync_push_requests_total", "outcome" => "bad_body").increment(1);
            return refuse(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let unavailable = |message: String| {
        let mut answer = refuse(StatusCode::SERVICE_UNAVAILABLE, message);
        answer.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("30"));
        answer
    };
    let Some(queue) = state.live.push_queue() else {
        return unavailable("this instance does not lead (standby or starting); retry, or send to the leader".into());
    };
    let job = crate::job::Job::PushRecords { name, push: push.clone(), rows };
    let (answer, outcome) = tokio::sync::oneshot::channel();
    if queue.try_send((job, answer)).is_err() {
        return unavailable("too many pushes are waiting; retry".into());
    }
    let Ok(outcome) = outcome.await else {
        return unavailable("the leader stopped before running the push; retry".into());
    };
    match outcome {
        Ok(done) => {
            let crate::job::Report::PushRecords(pushed) = done.report else {
                return refuse(StatusCode::INTERNAL_SERVER_ERROR, "a push reported something else".into());
            };
            metrics::counter!("hsync_push_requests_total", "outcome" => "pushed").increment(1);
            (StatusCode::OK, Json(pushed)).into_response()
        }
        Err(e) => {
            metrics::counter!("hsync_push_requests_total", "outcome" => "failed").increment(1);
            match e.class() {
                ErrorClass::Config | ErrorClass::Data => refuse(StatusCode::BAD_REQUEST, e.to_string()),
                ErrorClass::Transient | ErrorClass::RateLimited | ErrorClass::Auth => unavailable(format!(
                    "{e}; retry the request (records are upserted, so those already written are not doubled)"
                )),
                ErrorClass::Bug => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
    }
}

async fn require_bearer(State(state): State<HttpState>, headers: HeaderMap, request: Request, next: Next) -> Response {
    let Some(expected) = &state.bearer else { return next.run(request).await };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(presented.as_bytes().ct_eq(expected.expose().as_bytes())) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong bearer token: send the token from daemon.bearer_token_env as Authorization: Bearer <token>\n",
        )
            .into_response()
    }
}

async fn healthz(State(state): State<HttpState>) -> Response {
    Json(json!({ "status": "ok", "role": state.live.role() })).into_response()
}

async fn readyz(State(state): State<HttpState>) -> Response {
    let destination = match state.live.warehouse() {
        None => Err("not connected yet".to_owned()),
        Some((dest, _)) => match tokio::time::timeout(READY_TIMEOUT, dest.healthcheck()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("unreachable ({})", crate::error::Classify::class(&e))),
            Err(_) => Err(format!("no answer within {}s", READY_TIMEOUT.as_secs())),
        },
    };
    let token = match state.live.auth_error() {
        None => Ok(()),
        Some(_) => Err("HubSpot refused the token (see /status)".to_owned()),
    };
    let ready = destination.is_ok() && token.is_ok();
    let show = |check: &Result<(), String>| match check {
        Ok(()) => "ok".to_owned(),
        Err(why) => why.clone(),
    };
    let body = json!({
        "ready": ready,
        "role": state.live.role(),
        "checks": { "destination": show(&destination), "hubspot_token": show(&token) },
    });
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

async fn metrics(State(state): State<HttpState>) -> Response {
    state.metrics.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response()
}

/// How the state store answered the latest `/status` read.
fn database(outcome: &Result<(), (ErrorClass, String)>, stale: bool) -> serde_json::Value {
    match outcome {
        Ok(()) => json!({ "reachable": true, "stale": false }),
        Err((class, error)) => json!({ "reachable": false, "stale": stale, "class": class, "error": error }),
    }
}

async fn status(State(state): State<HttpState>) -> Response {
    let live = &state.live;
    let daemon = live.snapshot();
    let report = match live.warehouse() {
        None => Err(match live.connect_error() {
            Some(failure) => (failure.class, format!("cannot connect to the destination: {}", failure.message)),
            None => (ErrorClass::Transient, "not connected to the destination yet".to_owned()),
        }),
        Some((_, store)) => {
            let read = crate::stream::status::collect(
                store,
                Arc::new(store.clone()),
                live.budget.clone(),
                Arc::clone(&live.clock),
            );
            match tokio::time::timeout(STATUS_TIMEOUT, read).await {
                Ok(Ok(report)) => serde_json::to_value(report).map_err(|e| (ErrorClass::Bug, e.to_string())),
                Ok(Err(e)) => Err((e.class(), format!("cannot read the state store: {e}"))),
                Err(_) => Err((
                    ErrorClass::Transient,
                    format!("the state store did not answer within {}s", STATUS_TIMEOUT.as_secs()),
                )),
            }
        }
    };
    let cached = state.last_status.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let (mut document, outcome) = match report {
        Ok(document) => {
            *state.last_status.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(document.clone());
            (document, Ok(()))
        }
        Err(failure) => {
            tracing::debug!(error = %failure.1, "/status serves the last state store read");
            (cached.unwrap_or_else(|| json!({})), Err(failure))
        }
    };
    let stale = outcome.is_err() && document.get("generated_at").is_some();
    if let Some(fields) = document.as_object_mut() {
        fields.insert("database".to_owned(), database(&outcome, stale));
        fields.insert("daemon".to_owned(), json!(daemon));
    }
    Json(document).into_response()
}
