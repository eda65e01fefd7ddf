//! The webhook receiver of `hsync run` (docs/webhooks.md): one `POST` route, at the path of
//! `webhooks.target_url`, on its own listener (`webhooks.listen`), so it can face HubSpot
//! without exposing `/metrics` and `/status`.
//!
//! Per delivery, in this order: the body is read up to `webhooks.max_body_bytes` (413 beyond),
//! the v3 signature and its timestamp are checked ([`crate::webhooks::signature`]; 401), the
//! body is parsed (400), and the events are stored in the state store with the delivery's
//! signature in one transaction (a signature seen before is a replay: 409, nothing stored).
//! Only once they are durable does HubSpot get its 200, so a kill right after the answer loses
//! nothing; until the state store answers, HubSpot gets 503 and retries. The receiver never
//! calls HubSpot and answers within milliseconds (HubSpot retries anything slower than five
//! seconds); the leader's scheduler, woken through [`Live::webhook_arrivals`], applies the
//! events. Refusals are counted by reason in `hsync_webhook_deliveries_rejected_total` and
//! `/status`, and never log the body or the secret.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::json;

use super::live::Live;
use crate::hubspot::Secret;
use crate::state::{QueuedEvent, StateStore};
use crate::webhooks::{self, Signed, MAX_AGE_MS};

/// What the route needs.
#[derive(Clone, Debug)]
pub struct Receiver {
    pub live: Arc<Live>,
    pub secret: Arc<Secret>,
    /// The URL HubSpot calls, exactly as set in the app (HubSpot signs it).
    pub target_url: String,
    pub max_body_bytes: usize,
}

/// The receiver's router: the target URL's path, every method (anything but POST is 405).
pub fn router(receiver: Receiver, path: &str) -> Router {
    Router::new().route(path, any(receive)).with_state(receiver)
}

fn refuse(status: StatusCode, reason: &'static str, message: String, live: &Live) -> Response {
    metrics::counter!("hsync_webhook_deliveries_rejected_total", "reason" => reason).increment(1);
    live.update_webhooks(|w| *w.received.deliveries_rejected.entry(reason.to_owned()).or_default() += 1);
    tracing::warn!(reason, status = status.as_u16(), detail = %message, "webhook delivery refused");
    (status, Json(json!({ "status": "error", "reason": reason, "message": message }))).into_response()
}

async fn receive(State(r): State<Receiver>, request: Request) -> Response {
    let live = &r.live;
    if request.method() != Method::POST {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "method", "HubSpot delivers webhooks with POST".into(), live);
    }
    let headers = request.headers().clone();
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > r.max_body_bytes) {
        return too_large(&r);
    }
    let body: Bytes = match axum::body::to_bytes(Body::new(request.into_body()), r.max_body_bytes).await {
        Ok(body) => body,
        Err(e) if is_length_limit(&e) => return too_large(&r),
        Err(_) => {
            return refuse(StatusCode::BAD_REQUEST, "truncated", "the body ended before it was complete".into(), live)
        }
    };
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = Signed {
        method: "POST",
        uri: &r.target_url,
        body: &body,
        timestamp: text("x-hubspot-request-timestamp"),
        signature: text("x-hubspot-signature-v3"),
    };
    let now_ms = live.clock.now().timestamp_millis();
    if let Err(rejection) = webhooks::check(r.secret.expose().as_bytes(), &signed, now_ms) {
        return refuse(StatusCode::UNAUTHORIZED, rejection.reason(), rejection.to_string(), live);
    }
    let delivery = match webhooks::parse_delivery(&body) {
        Ok(d) => d,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, "malformed", e.to_string(), live),
    };
    let Some((_, state)) = live.warehouse() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the state store is not connected yet; HubSpot retries the delivery".into(),
            live,
        );
    };
    let queued: Vec<QueuedEvent> = delivery
        .events
        .iter()
        .map(|e| QueuedEvent {
            dedupe_key: e.dedupe_key(),
            object_id: e.object_id,
            occurred_at_ms: e.occurred_at_ms,
            event: serde_json::to_string(e).expect("invariant: an event serializes"),
        })
        .collect();
    // The signature stands for the delivery: HubSpot's retries carry a new attemptNumber and
    // timestamp, so only a replay of the very request repeats it.
    let signature = signed.signature.unwrap_or_default();
    let stored = match state.enqueue_events(signature, now_ms, now_ms - 2 * MAX_AGE_MS, &queued).await {
        Ok(stored) => stored,
        Err(e) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "state_store",
                format!("the events could not be stored ({e}); HubSpot retries the delivery"),
                live,
            )
        }
    };
    if stored.replayed {
        return refuse(
            StatusCode::CONFLICT,
            "replay",
            "this signed request was accepted before: a replay, refused without effect".into(),
            live,
        );
    }
    metrics::counter!("hsync_webhook_deliveries_accepted_total").increment(1);
    metrics::counter!("hsync_webhook_events_accepted_total").increment(stored.stored);
    metrics::counter!("hsync_webhook_events_duplicate_total").increment(stored.duplicates);
    metrics::counter!("hsync_webhook_events_ignored_total").increment(delivery.ignored);
    live.update_webhooks(|w| {
        w.received.deliveries_accepted += 1;
        w.received.events_accepted += stored.stored;
        w.received.events_duplicate += stored.duplicates;
        w.last_accepted_at = Some(live.clock.now());
    });
    if stored.stored > 0 {
        live.webhook_arrivals.notify_one();
    }
    (StatusCode::OK, Json(json!({ "status": "ok", "stored": stored.stored, "duplicates": stored.duplicates })))
        .into_response()
}

fn too_large(r: &Receiver) -> Response {
    let message = format!("the body is larger than webhooks.max_body_bytes ({} bytes)", r.max_body_bytes);
    refuse(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message, &r.live)
}

/// Whether reading the body stopped at the size limit (rather than a broken connection).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}
