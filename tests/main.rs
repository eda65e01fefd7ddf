//! hsync's integration tests, compiled as one binary. Every test talks to real things over
//! loopback: the simulator over HTTP, real SQLite files and real Postgres.

mod support;

mod cli_check;
mod cli_demo;
mod cli_destination_errors;
mod cli_lease;
mod cli_plan;
mod cli_progress;
mod cli_reset;
mod cli_ride_out;
mod cli_schema_diff;
mod cli_status_verify;
mod cli_unreadable;
mod daemon;

mod deploy_files;
mod dest_bigquery;
mod dest_parquet;
mod dest_postgres;
mod dest_snowflake;
mod dest_sqlite;
mod hubspot_client;

mod chaos_kill;
mod push;
mod push_sources;
mod sync_associations;
mod sync_bad_values;
mod sync_bigquery;
mod sync_calculated;
mod sync_catalogue;
mod sync_column_names;
mod sync_deletes;
mod sync_dimensions;
mod sync_engine;
mod sync_history;
mod sync_parquet;
mod sync_ranges;
mod sync_scale;
mod sync_snowflake;
