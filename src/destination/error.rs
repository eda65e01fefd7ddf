//! Destination errors, classed so the scheduler can retry a lost connection and stop on a
//! permission or schema problem. Messages name the table or statement kind, never row values.

use crate::error::{Classify, ErrorClass};

/// A destination failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database cannot be reached or dropped the connection.
    #[error("cannot reach the {kind} destination: {detail}; check that it is running and destination.url is right")]
    Unavailable { kind: &'static str, detail: String },
    /// The database refused for lack of a privilege.
    #[error("the {kind} destination refused {action}: {detail}; grant hsync's user the privilege")]
    Permission { kind: &'static str, action: String, detail: String },
    /// A statement failed for a reason retrying will not fix.
    #[error("{kind} {action} failed: {detail}")]
    Statement { kind: &'static str, action: String, detail: String },
    /// A plan change the destination cannot apply.
    #[error("{kind} cannot apply the schema change to {table}: {detail}")]
    Schema { kind: &'static str, table: String, detail: String },
    /// The destination URL is unusable.
    #[error("invalid destination url: {0}")]
    Config(String),
    /// The warehouse refused hsync's credentials (a cloud warehouse's login or token).
    #[error("the {kind} destination refused hsync's credentials: {detail}; check the key file, password or grants named in the destination settings")]
    Auth { kind: &'static str, detail: String },
    /// The warehouse asked hsync to slow down (a quota or concurrency limit).
    #[error("the {kind} destination is throttling hsync: {detail}; hsync retries later")]
    Throttled { kind: &'static str, detail: String },
    /// Another process holds the destination's lease (`lease` says where it lives).
    #[error(
        "{lease} is held by {holder}; wait for it to finish, or stop it (a daemon holds it for as long as it runs)"
    )]
    Leased { lease: String, holder: String },
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::Unavailable { .. } | Error::Leased { .. } => ErrorClass::Transient,
            Error::Permission { .. } | Error::Config(_) => ErrorClass::Config,
            Error::Schema { .. } => ErrorClass::Data,
            Error::Statement { .. } => ErrorClass::Bug,
            Error::Auth { .. } => ErrorClass::Auth,
            Error::Throttled { .. } => ErrorClass::RateLimited,
        }
    }
}

impl Error {
    /// Classifies an sqlx error raised while doing `action`.
    pub fn from_sqlx(kind: &'static str, action: impl Into<String>, e: sqlx::Error) -> Error {
        let action = action.into();
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => Error::Unavailable { kind, detail: e.to_string() },
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                // Postgres: 42501 insufficient_privilege; 08xxx connection exceptions;
                // 57P01 admin shutdown. SQLite: 8 read-only, 5/6 busy/locked.
                if code == "42501" || code == "8" {
                    Error::Permission { kind, action, detail: db.message().to_owned() }
                } else if code.starts_with("08") || code == "57P01" || code == "5" || code == "6" {
                    Error::Unavailable { kind, detail: db.message().to_owned() }
                } else {
                    Error::Statement { kind, action, detail: db.message().to_owned() }
                }
            }
            _ => Error::Statement { kind, action, detail: e.to_string() },
        }
    }
}
