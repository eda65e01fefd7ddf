//! `HubSpotClient` and its one `send()`: every request passes the daily budget, its rate bucket,
//! authentication, timeouts and the retry policy here, and is counted in metrics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::auth::{Authenticator, TokenSource};
use super::budget::{BudgetConfig, BudgetStatus, BudgetStore, DailyBudget};
use super::error::Error;
use super::limits::{Bucket, RateLimits, RateSettings};
use super::model::{self, ErrorBody, RecordPage};
use super::retry::{Decision, Policy, RetryPolicy, RetryReason};
use super::{ApiFamily, ApiPaths};
use crate::clock::Clock;

/// Everything the client needs besides the token and the budget store.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `https://api.hubapi.com` or a simulator.
    pub base_url: String,
    pub api_family: ApiFamily,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    pub rates: RateSettings,
    pub budget: BudgetConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: "https://api.hubapi.com".to_owned(),
            api_family: ApiFamily::Numbered,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            rates: RateSettings::default(),
            budget: BudgetConfig::default(),
        }
    }
}

/// One request, before it is sent.
#[derive(Clone, Debug)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    pub bucket: Bucket,
    /// A low-cardinality name for metrics and errors (`search`, `list`, `batch_read`, ...).
    pub endpoint: &'static str,
}

impl ApiRequest {
    pub fn get(endpoint: &'static str, path: String) -> ApiRequest {
        ApiRequest { method: Method::GET, path, query: Vec::new(), body: None, bucket: Bucket::General, endpoint }
    }

    pub fn post(endpoint: &'static str, path: String, body: Value) -> ApiRequest {
        ApiRequest {
            method: Method::POST,
            path,
            query: Vec::new(),
            body: Some(body),
            bucket: Bucket::General,
            endpoint,
        }
    }

    pub fn query(mut self, key: &str, value: impl Into<String>) -> ApiRequest {
        self.query.push((key.to_owned(), value.into()));
        self
    }

    pub fn bucket(mut self, bucket: Bucket) -> ApiRequest {
        self.bucket = bucket;
        self
    }
}

/// The HubSpot API client. Cheap to clone; clones share buckets, budget and connections.
#[derive(Clone, Debug)]
pub struct HubSpotClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base_url: String,
    paths: ApiPaths,
    auth: Authenticator,
    limits: RateLimits,
    budget: DailyBudget,
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
    rng: Mutex<rand_chacha::ChaCha8Rng>,
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

/// Why a successful answer's body could not be used.
#[derive(Debug)]
pub(crate) struct BodyError {
    detail: String,
    /// The body ended early (a dropped connection): asking again should help.
    truncated: bool,
}

impl BodyError {
    fn of(e: &serde_json::Error) -> BodyError {
        BodyError { detail: e.to_string(), truncated: e.is_eof() }
    }
}

/// Parses a successful answer's JSON. The body is checked as UTF-8 once, as a whole, with SIMD
/// (`simdutf8`), and then parsed as text: checking it string by string (`serde_json::from_slice`)
/// or with `std::str::from_utf8` was 15% of hsync's CPU in a 300-property backfill, whose
/// values are full of non-ASCII text (docs/benchmarks.md, profile).
fn parse_json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    serde_json::from_str(body_text(body)?).map_err(|e| BodyError::of(&e))
}

fn body_text(body: &[u8]) -> Result<&str, BodyError> {
    simdutf8::compat::from_utf8(body)
        .map_err(|e| BodyError { detail: format!("not UTF-8: {e}"), truncated: e.error_len().is_none() })
}

/// [`parse_json_body`] for responses that carry records: a body that is complete JSON but does
/// not parse as a whole is read record by record ([`model::salvage`]), so one bad record costs
/// only itself.
pub(crate) fn parse_record_body<T: RecordPage>(body: &[u8]) -> Result<T, BodyError> {
    let text = body_text(body)?;
    match serde_json::from_str::<T>(text) {
        Ok(page) => Ok(page),
        Err(e) if e.is_eof() => Err(BodyError::of(&e)),
        Err(e) => match model::salvage::<T>(text) {
            Ok(page) => {
                tracing::warn!(error = %e, "a record response did not parse as a whole; read it record by record");
                Ok(page)
            }
            Err(_) => Err(BodyError::of(&e)),
        },
    }
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "2xx",
        429 => "429",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl HubSpotClient {
    /// Builds a client. Fails only if the TLS backend cannot start.
    pub fn new(
        config: ClientConfig,
        token: TokenSource,
        budget_store: Arc<dyn BudgetStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<HubSpotClient, Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("hsync/", env!("CARGO_PKG_VERSION"), " (+https://github.com/hsync/hsync)"))
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .gzip(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Transport { endpoint: "client".into(), attempts: 0, detail: e.to_string() })?;
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        Ok(HubSpotClient {
            inner: Arc::new(Inner {
                auth: Authenticator::new(token, &base_url, http.clone(), Arc::clone(&clock)),
                http,
                paths: ApiPaths::new(config.api_family),
                limits: RateLimits::new(config.rates),
                budget: DailyBudget::new(config.budget, Arc::clone(&clock), budget_store),
                retry: config.retry,
                rng: Mutex::new(rand_chacha::ChaCha8Rng::from_os_rng()),
                base_url,
                clock,
            }),
        })
    }

    /// The path builders for the configured API family.
    pub fn paths(&self) -> &ApiPaths {
        &self.inner.paths
    }

    /// The daily budget's use today.
    pub async fn budget_status(&self) -> BudgetStatus {
        self.inner.budget.status().await
    }

    /// The general bucket's limit in force (configured or learned).
    pub fn general_limit(&self) -> super::limits::WindowLimit {
        self.inner.limits.general_limit()
    }

    /// The time between two requests of `bucket` as the client spaces them now.
    pub fn spacing(&self, bucket: super::limits::Bucket) -> std::time::Duration {
        self.inner.limits.spacing(bucket)
    }

    /// The association bucket's limit in force (learned, or the Starter tier's).
    pub fn association_limit(&self) -> super::limits::WindowLimit {
        self.inner.limits.association_limit()
    }

    fn decide<F>(&self, f: F) -> Decision
    where
        F: FnOnce(&RetryPolicy, &mut rand_chacha::ChaCha8Rng) -> Decision,
    {
        let mut rng = self.inner.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&self.inner.retry, &mut rng)
    }

    /// Sends a request and parses a JSON body, applying budget, buckets, auth and retries.
    /// A 207 counts as success: its body carries both results and errors.
    pub async fn send<T: DeserializeOwned>(&self, req: &ApiRequest) -> Result<T, Error> {
        self.send_parsed(req, parse_json_body::<T>).await
    }

    /// [`HubSpotClient::send`] for responses that carry records (see [`parse_record_body`]).
    pub(crate) async fn send_records<T: RecordPage>(&self, req: &ApiRequest) -> Result<T, Error> {
        self.send_parsed(req, parse_record_body::<T>).await
    }

    async fn send_parsed<T>(&self, req: &ApiRequest, parse: fn(&[u8]) -> Result<T, BodyError>) -> Result<T, Error> {
        let inner = &self.inner;
        let url = format!("{}{}", inner.base_url, req.path);
        let mut renewed = false;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            inner.budget.acquire().await?;
            let token = inner.auth.bearer().await?;
            let mut builder = inner.http.request(req.method.clone(), &url).bearer_auth(token.expose());
            if !req.query.is_empty() {
                builder = builder.query(&req.query);
            }
            if let Some(body) = &req.body {
                builder = builder.json(body);
            }
            // The slot is taken last, after the token and the body: the less work between it
            // and the send, the less concurrent requests can bunch up in HubSpot's window.
            inner.limits.acquire(req.bucket).await;
            let decision = match builder.send().await {
                Err(e) => {
                    metrics::counter!("hsync_hubspot_requests_total", "endpoint" => req.endpoint, "status_class" => "transport")
                        .increment(1);
                    let detail = e.without_url().to_string();
                    match self.decide(|p, rng| p.on_failure(RetryReason::Transport, attempt, rng)) {
                        Decision::GiveUp { .. } => {
                            return Err(Error::Transport { endpoint: req.endpoint.into(), attempts: attempt, detail })
                        }
                        retry => retry,
                    }
                }
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    metrics::counter!("hsync_hubspot_requests_total", "endpoint" => req.endpoint, "status_class" => status_class(status))
                        .increment(1);
                    self.learn(&headers, req.bucket).await;
                    let body = match resp.bytes().await {
                        Ok(b) => b,
                        Err(e) => {
                            let detail = e.without_url().to_string();
                            match self.decide(|p, rng| p.on_failure(RetryReason::Transport, attempt, rng)) {
                                Decision::GiveUp { .. } => {
                                    return Err(Error::Transport {
                                        endpoint: req.endpoint.into(),
                                        attempts: attempt,
                                        detail,
                                    })
                                }
                                retry => {
                                    self.pause(&retry).await;
                                    continue;
                                }
                            }
                        }
                    };
                    if status.is_success() {
                        match parse(&body) {
                            Ok(parsed) => return Ok(parsed),
                            Err(e) => {
                                let detail =
                                    format!("{status} with a body that is not the expected JSON ({})", e.detail);
                                match self.decide(|p, rng| p.on_failure(RetryReason::Decode, attempt, rng)) {
                                    Decision::GiveUp { .. } if e.truncated => {
                                        return Err(Error::Decode {
                                            endpoint: req.endpoint.into(),
                                            attempts: attempt,
                                            detail,
                                        })
                                    }
                                    Decision::GiveUp { .. } => {
                                        return Err(Error::Unreadable {
                                            endpoint: req.endpoint.into(),
                                            attempts: attempt,
                                            detail,
                                        })
                                    }
                                    retry => retry,
                                }
                            }
                        }
                    } else {
                        let error: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
                        match self.on_error_status(req, status, &headers, error, attempt, &mut renewed).await? {
                            Some(retry) => retry,
                            None => continue,
                        }
                    }
                }
            };
            self.pause(&decision).await;
        }
    }

    async fn pause(&self, decision: &Decision) {
        if let Decision::Retry { after, reason } = decision {
            metrics::counter!("hsync_hubspot_retries_total", "reason" => reason.label()).increment(1);
            tracing::debug!(reason = reason.label(), wait_ms = after.as_millis() as u64, "retrying hubspot request");
            tokio::time::sleep(*after).await;
        }
    }

    /// Maps a non-success status to a retry decision, an immediate retry (`None`, after a
    /// token renewal) or a final error.
    async fn on_error_status(
        &self,
        req: &ApiRequest,
        status: StatusCode,
        headers: &HeaderMap,
        error: ErrorBody,
        attempt: u32,
        renewed: &mut bool,
    ) -> Result<Option<Decision>, Error> {
        let inner = &self.inner;
        let retry_after = header_u64(headers, "retry-after").map(Duration::from_secs);
        let correlation_id = error.correlation_id.clone();
        let endpoint = req.endpoint.to_owned();
        match status.as_u16() {
            429 => {
                let policy = Policy::from_body(error.policy_name.as_deref(), error.message.as_deref());
                metrics::counter!("hsync_hubspot_rate_limited_total", "policy" => policy.name().to_owned())
                    .increment(1);
                tracing::warn!(policy = policy.name(), endpoint = req.endpoint, "hubspot answered 429");
                match self.decide(|p, rng| p.on_rate_limited(&policy, retry_after, attempt, rng)) {
                    Decision::GiveUp { wait } => {
                        let retry_after = match policy {
                            Policy::Daily => {
                                (inner.budget.resets_at() - inner.clock.now()).to_std().unwrap_or_default()
                            }
                            _ => wait.unwrap_or(inner.retry.window),
                        };
                        Err(Error::RateLimited { policy: policy.name().to_owned(), retry_after, correlation_id })
                    }
                    retry => Ok(Some(retry)),
                }
            }
            401 => {
                if !*renewed && inner.auth.renew_after_unauthorized().await? {
                    *renewed = true;
                    return Ok(None);
                }
                Err(Error::Unauthorized { origin: inner.auth.origin(), category: error.category, correlation_id })
            }
            403 => Err(Error::MissingScopes {
                origin: inner.auth.origin(),
                scopes: error.required_scopes(),
                correlation_id,
            }),
            404 => Err(Error::NotFound {
                endpoint,
                message: error.message.unwrap_or_else(|| "not found".to_owned()),
                correlation_id,
            }),
            code => match self.decide(|p, rng| p.on_status(code, retry_after, attempt, rng)) {
                Decision::GiveUp { wait } => {
                    if code == 477 || code == 423 || code >= 500 {
                        if let (477, Some(wait)) = (code, wait) {
                            return Err(Error::RateLimited {
                                policy: "MIGRATION_IN_PROGRESS".into(),
                                retry_after: wait,
                                correlation_id,
                            });
                        }
                        return Err(Error::Server { endpoint, status: code, attempts: attempt });
                    }
                    Err(Error::Rejected {
                        endpoint,
                        status: code,
                        category: error.category,
                        message: error.message.unwrap_or_else(|| format!("HTTP {code}")),
                        correlation_id,
                    })
                }
                retry => Ok(Some(retry)),
            },
        }
    }

    async fn learn(&self, headers: &HeaderMap, bucket: Bucket) {
        if bucket == Bucket::Search {
            return;
        }
        if let (Some(max), Some(interval)) = (
            header_u64(headers, "x-hubspot-ratelimit-max"),
            header_u64(headers, "x-hubspot-ratelimit-interval-milliseconds"),
        ) {
            let max = u32::try_from(max).unwrap_or(u32::MAX);
            self.inner.limits.learn(bucket, max, Duration::from_millis(interval));
        }
        let daily = header_u64(headers, "x-hubspot-ratelimit-daily");
        let remaining = header_u64(headers, "x-hubspot-ratelimit-daily-remaining");
        if daily.is_some() || remaining.is_some() {
            self.inner.budget.observe(daily, remaining).await;
        }
    }
}
