//! hsync keeps a data warehouse in sync with a HubSpot CRM portal.
//!
//! # Layout
//! - [`cli`]: the `hsync` command line, one file per command (the only place `anyhow` is used).
//! - [`config`]: the TOML configuration with `HSYNC_*` environment overrides.
//! - [`daemon`]: `hsync run`: scheduler, leader lease, HTTP endpoints and systemd integration.
//! - [`clock`]: the one source of wall time.
//! - [`destination`]: the warehouses hsync writes to (SQLite, Postgres) and their shared contract.
//! - [`error`]: error classes that decide retry, wait or stop.
//! - [`hubspot`]: the HubSpot API client with rate buckets, daily budget and retries.
//! - [`push`]: `hsync push`: rows from the warehouse or a file, checked and written to HubSpot.
//! - [`job`]: the units of sync work and the one sequence that runs each, for the CLI and the
//!   daemon.
//! - [`schema`]: dialect-neutral tables, HubSpot-to-column mapping, drift plans and Arrow batches.
//! - [`state`]: checkpoints, run history, property snapshots and the budget ledger.
//! - [`stream`]: backfill and CDC streams and the runner that writes them; the status model
//!   and the warehouse-against-HubSpot verification.
//! - [`telemetry`]: logging set-up.
//! - [`webhooks`]: HubSpot's webhook events: signature checks, the events' shape and the reads
//!   they ask for.
//!
//! The HubSpot simulator that `hsync sim` and `hsync demo` serve is its own crate, [`hsync_sim`]
//! (`crates/hsync-sim`), which does not depend on hsync, so it cannot share the client's types.

pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod destination;
pub mod error;
pub mod hubspot;
pub mod job;
pub mod push;
pub mod schema;
pub mod state;
pub mod stream;
pub mod telemetry;
pub mod webhooks;
