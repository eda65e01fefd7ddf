//! Logging set-up: human-readable lines on a terminal, JSON lines otherwise (for journald,
//! Kubernetes and log shippers). Messages are short lowercase phrases; data goes in fields, and
//! never secrets or row values. Interactive commands draw progress bars ([`progress`]); log
//! lines suspend them so they never tear.

pub mod progress;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How chatty the logs are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    /// Warnings and errors only.
    Quiet,
    /// `info` and above (the default).
    Normal,
    /// `debug` for hsync's own modules.
    Verbose,
}

/// Installs the global subscriber. `RUST_LOG` overrides the verbosity when set.
pub fn init(verbosity: Verbosity) {
    let default = match verbosity {
        Verbosity::Quiet => "warn",
        Verbosity::Normal => "info",
        Verbosity::Verbose => "info,hsync=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    progress::init(verbosity != Verbosity::Quiet);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(progress::LogWriter);
    let result = if std::io::stderr().is_terminal() {
        builder.compact().try_init()
    } else {
        builder.json().flatten_event(true).with_current_span(false).try_init()
    };
    // A second init (tests, embedded use) keeps the first subscriber.
    drop(result);
}
