//! HubSpot webhooks (docs/webhooks.md): what hsync does with the events HubSpot pushes, as pure
//! decisions. This module owns the v3 signature and its freshness ([`signature`]), the events'
//! shape, their duplicate key and the reads they ask for ([`event`]), and where the app's client
//! secret comes from ([`client_secret`]). The receiver's HTTP side is the daemon's
//! (`daemon::webhooks`); applying the events is a stream (`stream::webhooks`), and CDC stays
//! the safety net for any event HubSpot never delivered.

pub mod event;
mod receipts;
pub mod signature;

use std::path::Path;

pub use event::{parse_delivery, plan, Action, BodyError, Delivery, Event, Plan};
pub use receipts::Receipts;
pub use signature::{check, Rejection, Signed, MAX_AGE_MS};

use crate::config::WebhooksConfig;
use crate::error::{Classify, ErrorClass};
use crate::hubspot::Secret;

/// The client secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("webhooks.client_secret_env names {var}, which is unset or empty; export the HubSpot app's client secret there, or set webhooks.client_secret_file")]
    Unset { var: String },
    #[error(
        "webhooks.client_secret_file {path} cannot be read ({detail}); mount the HubSpot app's client secret there"
    )]
    File { path: String, detail: String },
}

impl Classify for SecretError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Config
    }
}

/// The HubSpot app's client secret: from `webhooks.client_secret_file` when set, else from the
/// environment variable `webhooks.client_secret_env` names. Surrounding whitespace (a file's
/// final newline) is not part of it.
pub fn client_secret(config: &WebhooksConfig) -> Result<Secret, SecretError> {
    let text = match &config.client_secret_file {
        Some(path) => read_file(path)?,
        None => std::env::var(&config.client_secret_env).unwrap_or_default(),
    };
    let secret = text.trim();
    if secret.is_empty() {
        return match &config.client_secret_file {
            Some(path) => Err(SecretError::File { path: path.display().to_string(), detail: "it is empty".to_owned() }),
            None => Err(SecretError::Unset { var: config.client_secret_env.clone() }),
        };
    }
    Ok(Secret::new(secret))
}

fn read_file(path: &Path) -> Result<String, SecretError> {
    std::fs::read_to_string(path)
        .map_err(|e| SecretError::File { path: path.display().to_string(), detail: e.kind().to_string() })
}
