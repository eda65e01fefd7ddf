//! Error classes: the one place that states how a failure should be handled.
//!
//! Every module has its own `thiserror` enum; each implements [`Classify`] so the scheduler and the
//! CLI can decide to retry, wait, stop or alert without knowing the module's details.

use std::fmt;

/// What the caller should do about a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// A network blip, a 5xx or a timeout: retry with backoff.
    Transient,
    /// HubSpot's limits or our own budget: wait as told, then retry.
    RateLimited,
    /// The token is missing, invalid or lacks a scope: stop and alert.
    Auth,
    /// The configuration is wrong: stop and alert.
    Config,
    /// HubSpot sent something we cannot store: stop the stream and alert.
    Data,
    /// An invariant of hsync itself broke: stop and alert.
    Bug,
}

impl ErrorClass {
    /// Whether retrying the same operation later can succeed without an operator.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::Transient | ErrorClass::RateLimited)
    }

    /// The process exit code the CLI uses for an error of this class.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorClass::Transient => 69,   // EX_UNAVAILABLE
            ErrorClass::RateLimited => 75, // EX_TEMPFAIL
            ErrorClass::Auth => 77,        // EX_NOPERM
            ErrorClass::Config => 78,      // EX_CONFIG
            ErrorClass::Data => 65,        // EX_DATAERR
            ErrorClass::Bug => 70,         // EX_SOFTWARE
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorClass::Transient => "transient",
            ErrorClass::RateLimited => "rate-limited",
            ErrorClass::Auth => "auth",
            ErrorClass::Config => "config",
            ErrorClass::Data => "data",
            ErrorClass::Bug => "bug",
        };
        f.write_str(name)
    }
}

/// Implemented by every module error so callers can act on the class.
pub trait Classify {
    /// The class of this error.
    fn class(&self) -> ErrorClass;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_and_rate_limited_are_retryable() {
        let all = [
            ErrorClass::Transient,
            ErrorClass::RateLimited,
            ErrorClass::Auth,
            ErrorClass::Config,
            ErrorClass::Data,
            ErrorClass::Bug,
        ];
        let retryable: Vec<_> = all.iter().filter(|c| c.is_retryable()).collect();
        assert_eq!(retryable, [&ErrorClass::Transient, &ErrorClass::RateLimited]);
        let mut codes: Vec<_> = all.iter().map(|c| c.exit_code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len(), "each class has its own exit code");
    }
}
