//! The simulator's integration tests, compiled as one binary. Each drives a simulator over
//! loopback HTTP, as a HubSpot client would, and checks HubSpot's documented behaviour.

mod support;

mod sim_admin;
mod sim_auth_limits;
mod sim_calculated;
mod sim_catalogue;
mod sim_faults;
mod sim_history;
mod sim_latency;
mod sim_objects;
mod sim_search;
mod sim_strict;
mod sim_webhooks;
mod sim_writes;
