//! The daemon's HTTP endpoints: `/healthz` (the process answers), `/readyz` (the destination
//! answers and HubSpot accepts the token), `/metrics` (Prometheus text) and `/status` (the
//! document `hsync status --json` prints, plus the daemon's live view under `daemon`).
//!
//! `/metrics` and `/status` require `Authorization: Bearer <token>` when a token is configured,
//! compared in constant time; the probes stay open so orchestrators need no secret, and they
//! reveal nothing but check names.

use std::sync::Arc;
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

use super::live::Live;
use crate::destination::Destination;
use crate::hubspot::Secret;

/// How long `/readyz` waits for the destination before calling it unreachable.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct HttpState {
    pub live: Arc<Live>,
    pub metrics: PrometheusHandle,
    pub bearer: Option<Arc<Secret>>,
}

/// The router.
pub fn router(state: HttpState) -> Router {
    let guarded = Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_bearer));
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).merge(guarded).with_state(state)
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

async fn status(State(state): State<HttpState>) -> Response {
    let live = &state.live;
    let daemon = live.snapshot();
    let Some((_, store)) = live.warehouse() else {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "daemon": daemon }))).into_response();
    };
    let report =
        crate::stream::status::collect(store, Arc::new(store.clone()), live.budget.clone(), Arc::clone(&live.clock))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| serde_json::to_value(r).map_err(|e| e.to_string()));
    match report {
        Ok(mut document) => {
            if let Some(fields) = document.as_object_mut() {
                fields.insert("daemon".to_owned(), json!(daemon));
            }
            Json(document).into_response()
        }
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": format!("cannot read the state store: {error}"), "daemon": daemon })),
        )
            .into_response(),
    }
}
