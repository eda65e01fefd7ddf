//! Errors of the HubSpot client. None of them carries the token or record values; HubSpot's
//! `category` and `correlationId` are kept so an operator can quote them to HubSpot support.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{Classify, ErrorClass};

/// Where the token came from, named in auth errors so the operator knows what to fix.
pub type TokenOrigin = String;

/// A HubSpot client failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configured daily budget is spent; calls resume at `resets_at`.
    #[error("daily API budget spent ({used} of {budget} calls); hsync pauses until {resets_at} (the portal's midnight) or a larger budget is configured")]
    BudgetExhausted { used: u64, budget: u64, resets_at: DateTime<Utc> },

    /// HubSpot refused with 429 and retrying now would not help.
    #[error("HubSpot rate limit {policy} reached; retry after {}s (correlation id {})", retry_after.as_secs(), correlation_id.as_deref().unwrap_or("none"))]
    RateLimited { policy: String, retry_after: Duration, correlation_id: Option<String> },

    /// 401: the token is missing, wrong or expired.
    #[error("HubSpot rejected the token from {origin} (401 {}); check that it is a valid private-app or service-key token for this portal (correlation id {})", category.as_deref().unwrap_or("INVALID_AUTHENTICATION"), correlation_id.as_deref().unwrap_or("none"))]
    Unauthorized { origin: TokenOrigin, category: Option<String>, correlation_id: Option<String> },

    /// 403 `MISSING_SCOPES`: the token lacks a scope.
    #[error("the token from {origin} lacks scope {}; add it to the private app (Settings > Integrations > Private apps > Scopes) and rotate the token (correlation id {})", if scopes.is_empty() { "(HubSpot did not say which)".to_owned() } else { scopes.join(" or ") }, correlation_id.as_deref().unwrap_or("none"))]
    MissingScopes { origin: TokenOrigin, scopes: Vec<String>, correlation_id: Option<String> },

    /// 404 on a path that must exist: a wrong object type or base URL.
    #[error("HubSpot answered 404 for {endpoint}: {message}; check the object type name and hubspot.base_url (correlation id {})", correlation_id.as_deref().unwrap_or("none"))]
    NotFound { endpoint: String, message: String, correlation_id: Option<String> },

    /// 400 or another permanent 4xx: the request is wrong and retrying will not help.
    #[error("HubSpot rejected the request to {endpoint} ({status} {}): {message}; check the configured objects and properties (correlation id {})", category.as_deref().unwrap_or("error"), correlation_id.as_deref().unwrap_or("none"))]
    Rejected {
        endpoint: String,
        status: u16,
        category: Option<String>,
        message: String,
        correlation_id: Option<String>,
    },

    /// 5xx (or 423/477) that did not clear within the retry budget.
    #[error("HubSpot kept failing on {endpoint} (last status {status}) after {attempts} attempts; it is probably degraded, hsync will retry later")]
    Server { endpoint: String, status: u16, attempts: u32 },

    /// Connection errors and timeouts that did not clear within the retry budget.
    #[error("cannot reach HubSpot for {endpoint} after {attempts} attempts: {detail}; check the network and hubspot.base_url")]
    Transport { endpoint: String, attempts: u32, detail: String },

    /// A body that is not the JSON we expect (truncated, HTML, wrong shape) after retries.
    #[error("HubSpot sent an unreadable response for {endpoint} after {attempts} attempts: {detail}")]
    Decode { endpoint: String, attempts: u32, detail: String },

    /// A complete body that is not JSON, or whose records could not even be told apart, every
    /// time it was asked for: the same request will keep failing.
    #[error("HubSpot's answer for {endpoint} could not be read after {attempts} attempts: {detail}; this stream stops until the data changes (other streams go on); report the correlation ids in the log to HubSpot if it persists")]
    Unreadable { endpoint: String, attempts: u32, detail: String },

    /// Two configured names are one object type (a custom object by name and by type id).
    #[error("sync.objects (or --object) names the object type {table} twice, as {first:?} and {second:?}; list each object type once")]
    DuplicateObject { table: String, first: String, second: String },

    /// A configured name HubSpot serves outside the objects API (deal splits, owners).
    #[error("sync.objects (or --object) names {name}, which HubSpot does not serve through the objects API ({served_by}); remove it from sync.objects")]
    NotServed { name: String, served_by: &'static str },

    /// The token could not be read at all.
    #[error("no HubSpot token: {0}")]
    Token(String),

    /// The OAuth refresh failed.
    #[error("refreshing the OAuth access token failed ({status}): {message}; check the client id, client secret and refresh token")]
    OAuth { status: u16, message: String },

    /// The daily budget could not be read or saved.
    #[error(transparent)]
    Budget(#[from] super::budget::StoreError),

    /// hsync built a request HubSpot would reject (a filter over the limits, a page past the cap).
    #[error("invalid request built by hsync: {0}")]
    InvalidRequest(String),
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::BudgetExhausted { .. } | Error::RateLimited { .. } => ErrorClass::RateLimited,
            Error::Unauthorized { .. } | Error::MissingScopes { .. } | Error::Token(_) | Error::OAuth { .. } => {
                ErrorClass::Auth
            }
            Error::NotFound { .. }
            | Error::Rejected { .. }
            | Error::DuplicateObject { .. }
            | Error::NotServed { .. } => ErrorClass::Config,
            Error::Server { .. } | Error::Transport { .. } | Error::Decode { .. } | Error::Budget(_) => {
                ErrorClass::Transient
            }
            Error::Unreadable { .. } => ErrorClass::Data,
            Error::InvalidRequest(_) => ErrorClass::Bug,
        }
    }
}

impl Error {
    /// When the caller may try again, for errors that say so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => Some(*retry_after),
            Error::BudgetExhausted { resets_at, .. } => {
                Some((*resets_at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            }
            _ => None,
        }
    }
}
