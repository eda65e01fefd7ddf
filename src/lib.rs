//! hsync keeps a data warehouse in sync with a HubSpot CRM portal.
//!
//! # Layout
//! - [`cli`]: the `hsync` command line, one file per command (the only place `anyhow` is used).
//! - [`config`]: the TOML configuration with `HSYNC_*` environment overrides.
//! - [`error`]: error classes that decide retry, wait or stop.
//! - [`simulator`]: `hsync sim`, a faithful HubSpot API simulator over real HTTP.
//! - [`telemetry`]: logging set-up.

pub mod cli;
pub mod config;
pub mod error;
pub mod simulator;
pub mod telemetry;
