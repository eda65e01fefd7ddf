//! `hsync config`: shows the configuration hsync would run with.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Config;

/// Loads the configuration and prints it as TOML with secrets redacted.
pub fn run(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = Config::load(path).with_context(|| match path {
        Some(p) => format!("loading configuration from {}", p.display()),
        None => "loading configuration from defaults and environment".to_owned(),
    })?;
    print!("{}", config.to_redacted_toml());
    Ok(ExitCode::SUCCESS)
}
