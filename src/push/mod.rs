//! `hsync push` (docs/push.md): rows from the warehouse or a CSV file written into one HubSpot
//! object type, upserted by an id property through the sync's own client, limiter and daily
//! budget, so push and sync together never spend more than the operator allows.
//!
//! This module owns the push's sequence ([`run`]): the source's rows ([`source`]) are checked
//! against HubSpot's property definitions ([`validate`]), planned into batches with duplicates
//! refused ([`plan`]), written 100 a call, and each batch's outcomes (created, updated,
//! rejected with the reason, failed with HubSpot's error) are recorded in `push_results` in
//! one transaction with the job's checkpoint `push:<name>`, so a stopped or killed run resumes
//! after its last recorded batch. Upserts are idempotent: a batch written again after a crash
//! writes the same records.

pub mod associate;
pub mod events;
pub mod plan;
mod run;
pub mod source;
pub mod validate;

pub use run::{run, write_batch, Options, Outcome, PushState, Summary, Target, UNASSOCIATED};

use crate::error::{Classify, ErrorClass};

/// Why a push stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no push named {name} in the configuration (it has: {known}); add a [push.{name}] table")]
    Unknown { name: String, known: String },
    #[error("the push has no source (it takes records sent to the daemon only); set push.<name>.query or push.<name>.file to run it here")]
    NoSource,
    #[error("cannot read the file {path}: {detail}; fix the file or push.<name>.file")]
    File { path: String, detail: String },
    #[error("the push's columns cannot be written: {0}")]
    Mapping(#[from] validate::MappingError),
    #[error("{0}; fix push.<name>.associations")]
    Link(#[from] associate::LinkError),
    #[error(transparent)]
    Stream(#[from] crate::stream::Error),
}

impl From<crate::hubspot::Error> for Error {
    fn from(e: crate::hubspot::Error) -> Error {
        Error::Stream(e.into())
    }
}

impl From<crate::destination::Error> for Error {
    fn from(e: crate::destination::Error) -> Error {
        Error::Stream(e.into())
    }
}

impl From<crate::state::Error> for Error {
    fn from(e: crate::state::Error) -> Error {
        Error::Stream(e.into())
    }
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::Unknown { .. } | Error::NoSource | Error::File { .. } | Error::Mapping(_) | Error::Link(_) => {
                ErrorClass::Config
            }
            Error::Stream(e) => e.class(),
        }
    }
}
