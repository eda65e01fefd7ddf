//! The gate every HubSpot API request passes, in HubSpot's order: authentication and scopes,
//! injected faults, rate limits (counted when the request arrives), then the handler and the
//! latency model's delay; plus the request log and the accept loop that lets a fault close a
//! connection without answering.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::{json, Map};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::faults::{cloudflare_page, FaultKind, FaultTarget};
use super::latency::{Family, ResultCount, LATENCY_HEADER};
use super::limits::{Bucket, Policy, Refusal};
use super::portal::Millis;
use super::render::{error_response, JSON_CONTENT_TYPE};
use super::{lock, SimState, TokenGrant};

/// Lets a handler close its connection without a response.
#[derive(Clone, Debug, Default)]
pub struct ConnectionKiller(Arc<Notify>);

impl ConnectionKiller {
    fn kill(&self) {
        self.0.notify_one();
    }
}

/// Accepts connections until `shutdown`, serving each with HTTP/1.1 and dropping it at once
/// when a handler asks (the `drop_connection` fault).
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(error = %error, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let killer = ConnectionKiller::default();
        let app = app.clone();
        let conn_killer = killer.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(killer.clone());
                app.clone().oneshot(req.map(Body::new))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = conn_killer.0.notified() => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
}

/// One logged API request.
#[derive(Clone, Debug, Serialize)]
pub struct LoggedRequest {
    pub seq: u64,
    pub at_ms: Millis,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The answer's status; 0 when none was sent (a hang or dropped connection fault, or a
    /// client that went away first).
    pub status: u16,
    pub bucket: &'static str,
    pub fault: Option<&'static str>,
    /// The request body (first 16 KiB) of POST, PATCH and PUT requests.
    pub body: Option<String>,
}

/// The request log and counters the admin API reads.
#[derive(Debug, Default)]
pub struct RequestLog {
    pub next_seq: u64,
    pub entries: VecDeque<LoggedRequest>,
    pub by_status: BTreeMap<u16, u64>,
    pub by_bucket: BTreeMap<&'static str, u64>,
    pub by_policy: BTreeMap<&'static str, u64>,
}

const LOG_CAPACITY: usize = 100_000;
// A search naming every property of a realistic catalogue (about 380 names) is about 10 KB.
const LOGGED_BODY_BYTES: usize = 16 * 1024;

impl RequestLog {
    fn record(&mut self, mut entry: LoggedRequest) {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        *self.by_status.entry(entry.status).or_default() += 1;
        *self.by_bucket.entry(entry.bucket).or_default() += 1;
        if self.entries.len() == LOG_CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    pub fn clear(&mut self) {
        *self = RequestLog { next_seq: self.next_seq, ..RequestLog::default() };
    }
}

/// An accepted token: its scopes (`None` grants all) and, for OAuth access tokens, its expiry.
#[derive(Clone, Debug)]
pub struct Grant {
    pub scopes: Option<Vec<String>>,
    pub expires_at: Option<Millis>,
    pub oauth: bool,
}

/// Tokens and their scopes.
#[derive(Debug, Default)]
pub struct TokenTable {
    grants: HashMap<String, Grant>,
}

impl TokenTable {
    pub fn new(grants: Vec<TokenGrant>) -> TokenTable {
        let mut table = TokenTable::default();
        for g in grants {
            table.set(g);
        }
        table
    }

    pub fn set(&mut self, grant: TokenGrant) {
        self.grants.insert(grant.token, Grant { scopes: grant.scopes, expires_at: None, oauth: false });
    }

    /// Registers an OAuth access token that expires at `expires_at`.
    pub fn issue(&mut self, token: String, scopes: Option<Vec<String>>, expires_at: Millis) {
        self.grants.insert(token, Grant { scopes, expires_at: Some(expires_at), oauth: true });
    }

    /// Revokes every OAuth access token issued so far; returns how many.
    pub fn revoke_oauth(&mut self) -> usize {
        let before = self.grants.len();
        self.grants.retain(|_, g| !g.oauth);
        before - self.grants.len()
    }

    /// The scopes of a valid token at `now`, or `None` when the token is unknown or expired.
    fn check(&self, token: &str, now: Millis) -> Option<Option<Vec<String>>> {
        self.grants.get(token).filter(|g| g.expires_at.is_none_or(|at| now < at)).map(|g| g.scopes.clone())
    }
}

/// What a request needs, worked out from its path.
#[derive(Debug)]
struct RouteClass {
    bucket: Bucket,
    family: Family,
    targets: Vec<FaultTarget>,
    /// Scopes of which the token needs any one.
    scope: Option<Vec<String>>,
    /// The object type the request is about (its name and type id), for faults of one type.
    object: Vec<String>,
}

/// The write scope matching a read scope: `crm.objects.deals.read` becomes
/// `crm.objects.deals.write`; scopes without an access suffix (`tickets`, `e-commerce`) grant both.
fn with_access(scope: &str, access: &str) -> String {
    match scope.strip_suffix(".read") {
        Some(base) => format!("{base}.{access}"),
        None => scope.to_owned(),
    }
}

fn classify(state: &SimState, method: &Method, path: &str) -> RouteClass {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let write = !(method == Method::GET || path.ends_with("/search") || path.ends_with("/batch/read"));
    let access = if write { "write" } else { "read" };
    let portal = state.portal();
    let kind = |t: &str| portal.type_idx(t).map(|i| portal.store(i).def.kind);
    let scopes = |list: &[&str], access: &str| list.iter().map(|s| with_access(s, access)).collect::<Vec<_>>();
    let object_scope = |t: &str| kind(t).map(|k| scopes(k.read_scopes, access));
    let mut targets = Vec::new();
    let mut bucket = Bucket::General;
    let mut family = Family::Other;
    let named =
        |t: &str| portal.type_idx(t).map(|i| &portal.store(i).def).map(|d| vec![d.name.clone(), d.type_id.clone()]);
    let mut object = Vec::new();
    let scope = match segs.as_slice() {
        ["crm", "v3" | "v4", "objects", t, rest @ ..] | ["crm", "objects", _, t, rest @ ..] => {
            if path.ends_with("/search") {
                bucket = Bucket::Search;
                family = Family::Search;
                targets.push(FaultTarget::Search);
            } else if segs.contains(&"associations") {
                // A record's associations (`/crm/v4/objects/...`): the spec does not exempt
                // these from the `ten-secondly` limit, so they stay in the general window.
                family = Family::Associations;
                targets.push(FaultTarget::Associations);
            } else if rest.first() == Some(&"batch") {
                family = Family::Batch;
                if rest.get(1) == Some(&"read") {
                    targets.push(FaultTarget::BatchRead);
                }
            } else if *method == Method::GET {
                family = Family::List;
                targets.push(FaultTarget::List);
            }
            object = named(t).unwrap_or_default();
            object_scope(t)
        }
        ["crm", "v3", "properties", t, ..] | ["crm", "properties", _, t, ..] => {
            kind(t).map(|k| scopes(k.schema_scopes, access))
        }
        ["crm", "v3", "schemas", ..] | ["crm-object-schemas", ..] => Some(vec![format!("crm.schemas.custom.{access}")]),
        ["crm", "v4", "associations", from, ..] | ["crm", "associations", _, from, ..] => {
            // The spec exempts these from the `ten-secondly` limit; the associations guide gives
            // them limits of their own.
            bucket = Bucket::Associations;
            family = Family::Associations;
            targets.push(FaultTarget::Associations);
            object = named(from).unwrap_or_default();
            object_scope(from)
        }
        ["crm", "v3", "owners", ..] | ["crm", "owners", ..] => Some(vec!["crm.objects.owners.read".to_owned()]),
        ["crm", "v3", "pipelines", t, ..] | ["crm", "pipelines", _, t, ..] => {
            kind(t).map(|k| scopes(k.read_scopes, "read"))
        }
        _ => None,
    };
    if bucket != Bucket::Search {
        targets.push(FaultTarget::General);
    }
    RouteClass { bucket, family, targets, scope, object }
}

fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

fn unauthenticated() -> Response {
    error_response(
        StatusCode::UNAUTHORIZED,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        None,
    )
}

fn missing_scope(scopes: &[String]) -> Response {
    let mut extra = Map::new();
    extra.insert(
        "errors".into(),
        json!([{ "message": "One or more of the following scopes are required.", "context": { "requiredGranularScopes": scopes } }]),
    );
    extra.insert("links".into(), json!({ "scopes": "https://developers.hubspot.com/scopes" }));
    error_response(
        StatusCode::FORBIDDEN,
        "MISSING_SCOPES",
        "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
        Some(extra),
    )
}

/// HubSpot's 429 body for a policy.
pub fn rate_limited(refusal: Refusal, send_retry_after: bool) -> Response {
    let mut extra = Map::new();
    extra.insert("errorType".into(), json!("RATE_LIMIT"));
    extra.insert("policyName".into(), json!(refusal.policy.name()));
    extra.insert("requestId".into(), json!(uuid::Uuid::new_v4().to_string()));
    let mut resp = error_response(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITS", refusal.policy.message(), Some(extra));
    if send_retry_after {
        let secs = (refusal.retry_after_ms + 999) / 1000;
        if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}

/// The middleware in front of every HubSpot route.
pub async fn gate(State(state): State<Arc<SimState>>, req: Request, next: Next) -> Response {
    let now = state.clock.now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let killer = req.extensions().get::<ConnectionKiller>().cloned();
    let class = classify(&state, &method, &path);
    let token_ok = bearer(&req).map(|t| lock(&state.tokens).check(t, now));

    // Buffer the body so the log can keep it; HubSpot bodies are small.
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, 16 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => Bytes::new(),
    };
    let logged_body = (method == Method::POST || method == Method::PATCH || method == Method::PUT)
        .then(|| String::from_utf8_lossy(&bytes[..bytes.len().min(LOGGED_BODY_BYTES)]).into_owned());
    let req = Request::from_parts(parts, Body::from(bytes));
    let mut unanswered = LogIfAbandoned {
        state: &state,
        entry: Some(LoggedRequest {
            seq: 0,
            at_ms: now,
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            status: 0,
            bucket: class.bucket.name(),
            fault: None,
            body: logged_body.clone(),
        }),
    };

    let mut fault_name = None;
    let mut logged = false;
    let response = 'respond: {
        let scopes = match token_ok {
            None | Some(None) => break 'respond unauthenticated(),
            Some(Some(scopes)) => scopes,
        };
        if let (Some(need), Some(granted)) = (&class.scope, &scopes) {
            if !granted.iter().any(|g| need.contains(g)) {
                break 'respond missing_scope(need);
            }
        }
        let object: Vec<&str> = class.object.iter().map(String::as_str).collect();
        let fault = lock(&state.faults).draw(|t| class.targets.contains(&t), &object);
        let mut truncate = false;
        if let Some(kind) = &fault {
            fault_name = Some(super::faults::kind_name(kind));
            match kind {
                FaultKind::RateLimit => {
                    let policy = match class.bucket {
                        Bucket::Search => Policy::Secondly,
                        Bucket::General => Policy::TenSecondlyRolling,
                        Bucket::Associations => Policy::AssociationsTenSecondlyRolling,
                    };
                    let send = lock(&state.limits).settings.send_retry_after;
                    break 'respond rate_limited(Refusal { policy, retry_after_ms: 1000 }, send);
                }
                FaultKind::ServerError { status, html } => {
                    let code = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
                    if *html {
                        let mut resp = (code, cloudflare_page(*status)).into_response();
                        resp.headers_mut()
                            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=UTF-8"));
                        break 'respond resp;
                    }
                    break 'respond error_response(code, "INTERNAL_ERROR", "internal error", None);
                }
                FaultKind::Slow { delay_ms } => tokio::time::sleep(Duration::from_millis(*delay_ms)).await,
                FaultKind::Hang => {
                    // The client usually gives up first and the request never completes: log
                    // it now, as unanswered.
                    unanswered.entry = None;
                    record(
                        &state,
                        now,
                        &method,
                        &path,
                        query.clone(),
                        0,
                        class.bucket,
                        fault_name,
                        logged_body.clone(),
                    );
                    logged = true;
                    let hang = state.behaviour().hang_ms;
                    tokio::time::sleep(Duration::from_millis(hang)).await;
                    let mut resp = (StatusCode::GATEWAY_TIMEOUT, cloudflare_page(524)).into_response();
                    resp.headers_mut()
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=UTF-8"));
                    break 'respond resp;
                }
                FaultKind::DropConnection => {
                    unanswered.entry = None;
                    record(&state, now, &method, &path, query, 0, class.bucket, fault_name, logged_body);
                    if let Some(k) = killer {
                        k.kill();
                    }
                    return std::future::pending().await;
                }
                FaultKind::Locked => {
                    break 'respond error_response(
                        StatusCode::LOCKED,
                        "LOCKED",
                        "The resource is locked; retry in a few seconds",
                        None,
                    )
                }
                FaultKind::MigrationInProgress { retry_after_secs } => {
                    let mut resp = error_response(
                        StatusCode::from_u16(477).expect("invariant: 477 is a valid status code"),
                        "MIGRATION_IN_PROGRESS",
                        "This portal is being migrated; retry later",
                        None,
                    );
                    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                        resp.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                    break 'respond resp;
                }
                FaultKind::TruncatedJson => truncate = true,
                FaultKind::ExhaustDaily => {
                    let mut limits = lock(&state.limits);
                    limits.exhaust_daily(now);
                    let refusal = Refusal { policy: Policy::Daily, retry_after_ms: limits.ms_until_reset(now) };
                    let send = limits.settings.send_retry_after;
                    drop(limits);
                    break 'respond rate_limited(refusal, send);
                }
            }
        }
        let admitted = lock(&state.limits).admit(class.bucket, now);
        let headers = match admitted {
            Ok(h) => h,
            Err(refusal) => {
                *lock(&state.log).by_policy.entry(refusal.policy.name()).or_default() += 1;
                let send = lock(&state.limits).settings.send_retry_after;
                break 'respond rate_limited(refusal, send);
            }
        };
        let mut resp = next.run(req).await;
        // The latency model holds the answer after the handler has made it (its size sets the
        // per-result cost), without blocking other requests; a `slow` fault's delay came first.
        let results = resp.extensions().get::<ResultCount>().map_or(0, |c| c.0);
        let delay_ms = lock(&state.latency).draw(class.family, results);
        if delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            resp.headers_mut().insert(LATENCY_HEADER, HeaderValue::from(delay_ms));
        }
        for (name, value) in headers.pairs {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        if truncate {
            let (parts, body) = resp.into_parts();
            let full = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
            let cut = full.slice(..full.len() / 2);
            let mut parts = parts;
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
            break 'respond Response::from_parts(parts, Body::from(cut));
        }
        resp
    };
    unanswered.entry = None;
    if !logged {
        record(&state, now, &method, &path, query, response.status().as_u16(), class.bucket, fault_name, logged_body);
    }
    response
}

/// Logs a request as unanswered (status 0) when its handling is dropped before an answer: the
/// client went away (killed, timed out) and the server stopped serving it. Without it a request
/// in flight when a client crashed would leave no trace, and the client's repeat of it after a
/// restart would look like its first.
struct LogIfAbandoned<'a> {
    state: &'a SimState,
    /// Taken once the request is logged some other way.
    entry: Option<LoggedRequest>,
}

impl Drop for LogIfAbandoned<'_> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            lock(&self.state.log).record(entry);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    state: &SimState,
    now: Millis,
    method: &Method,
    path: &str,
    query: Option<String>,
    status: u16,
    bucket: Bucket,
    fault: Option<&'static str>,
    body: Option<String>,
) {
    lock(&state.log).record(LoggedRequest {
        seq: 0,
        at_ms: now,
        method: method.to_string(),
        path: path.to_owned(),
        query,
        status,
        bucket: bucket.name(),
        fault,
        body,
    });
}
