//! `hsync check`: validates what a sync needs before one runs, one line per check: the
//! configuration, the destination (connect, prepare hsync's bookkeeping, and create, write and
//! drop a scratch table where object tables go), HubSpot (the token is accepted) and, per
//! configured object, the scopes its reads need (property definitions and records), plus
//! owners. A failed line says what happened and what to do; the exit code is the class of the
//! first failure (see the README's exit codes).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::config::Config;
use crate::destination::{AnyDestination, Destination};
use crate::error::{Classify, ErrorClass};
use crate::hubspot::{self, ApiRequest, BudgetStore, HubSpotClient, ListParams, MemoryBudgetStore};

/// What one check found.
#[derive(Debug)]
enum Outcome {
    Ok(String),
    Failed { class: ErrorClass, message: String },
    Skipped(String),
}

/// One printed line.
#[derive(Debug)]
struct Line {
    name: String,
    outcome: Outcome,
}

impl Line {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Line {
        Line { name: name.into(), outcome: Outcome::Ok(detail.into()) }
    }

    fn failed(name: impl Into<String>, class: ErrorClass, message: impl Into<String>) -> Line {
        Line { name: name.into(), outcome: Outcome::Failed { class, message: message.into() } }
    }

    fn from_error<E: Classify + std::fmt::Display>(name: impl Into<String>, step: &str, error: &E) -> Line {
        Line::failed(name, error.class(), format!("{step}: {error}"))
    }

    fn render(&self) -> String {
        match &self.outcome {
            Outcome::Ok(detail) => format!("ok       {}: {detail}", self.name),
            Outcome::Failed { message, .. } => format!("FAILED   {}: {message}", self.name),
            Outcome::Skipped(reason) => format!("skipped  {}: {reason}", self.name),
        }
    }
}

/// Runs every check, prints one line each and exits with the first failure's class.
pub async fn run(config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut lines = Vec::new();
    match Config::load(config_path) {
        Err(e) => lines.push(Line::from_error("config", "loading", &e)),
        Ok(config) => {
            lines.push(Line::ok("config", describe_config(config_path, &config)));
            let state = check_destination(&config, &mut lines).await;
            check_hubspot(&config, state, &mut lines).await;
            check_webhooks(&config, &mut lines);
        }
    }
    for line in &lines {
        println!("{}", line.render());
    }
    let failures: Vec<ErrorClass> = lines
        .iter()
        .filter_map(|l| match l.outcome {
            Outcome::Failed { class, .. } => Some(class),
            _ => None,
        })
        .collect();
    match failures.first() {
        None => {
            println!("all checks passed");
            Ok(ExitCode::SUCCESS)
        }
        Some(first) => {
            println!(
                "{} check{} failed; fix {} and run `hsync check` again (exit code {} is the first failure's class, {first})",
                failures.len(),
                if failures.len() == 1 { "" } else { "s" },
                if failures.len() == 1 { "it" } else { "them" },
                first.exit_code()
            );
            Ok(ExitCode::from(first.exit_code()))
        }
    }
}

/// With webhooks on, the app's client secret must be readable (the receiver checks every
/// delivery's signature with it); the line names where it came from, never the secret.
fn check_webhooks(config: &Config, lines: &mut Vec<Line>) {
    let w = &config.webhooks;
    if !w.enabled {
        return;
    }
    match crate::webhooks::client_secret(w) {
        Ok(_) => {
            let origin = w.client_secret_file.as_ref().map_or_else(
                || format!("environment variable {}", w.client_secret_env),
                |path| format!("file {}", path.display()),
            );
            let target = w.target_url.as_deref().unwrap_or_default();
            lines.push(Line::ok("webhooks", format!("client secret from {origin}; HubSpot's target URL {target}")));
        }
        Err(e) => lines.push(Line::from_error("webhooks", "reading the client secret", &e)),
    }
}

fn describe_config(path: Option<&Path>, config: &Config) -> String {
    let source = path.map_or_else(|| "defaults and HSYNC_* environment".to_owned(), |p| p.display().to_string());
    format!("{source}: objects {}, destination {}", config.sync.objects.join(", "), config.destination.url)
}

/// Connects, prepares and probes the destination; returns its state store (for the budget
/// ledger) when it is usable.
async fn check_destination(config: &Config, lines: &mut Vec<Line>) -> Option<Arc<dyn BudgetStore>> {
    let name = "destination";
    let shown = &config.destination.url;
    if let Err(e) = AnyDestination::reach(&config.destination).await {
        lines.push(Line::from_error(name, "connecting", &e));
        return None;
    }
    let dest = match AnyDestination::connect(&config.destination).await {
        Ok(dest) => dest,
        Err(e) => {
            lines.push(Line::from_error(name, "connecting", &e));
            return None;
        }
    };
    if let Err(e) = dest.prepare().await {
        lines.push(Line::from_error(name, "creating hsync's bookkeeping tables", &e));
        return None;
    }
    if let Err(e) = dest.probe_write().await {
        lines.push(Line::from_error(name, "creating, writing and dropping a scratch table", &e));
        return None;
    }
    let place = match &dest {
        AnyDestination::Postgres(pg) => format!(" in schema {}", pg.data_schema()),
        AnyDestination::Sqlite(_) => String::new(),
        #[cfg(feature = "parquet")]
        AnyDestination::Parquet(_, local) => format!(" (hsync's state in {})", local.path.display()),
        #[cfg(feature = "snowflake")]
        AnyDestination::Snowflake(d, local) => {
            format!(" in {}.{} (state in {})", d.location().database, d.location().schema, local.path.display())
        }
        #[cfg(feature = "bigquery")]
        AnyDestination::BigQuery(bq, local) => {
            format!(" in dataset {}.{} (state in {})", bq.project(), bq.dataset(), local.path.display())
        }
    };
    lines.push(Line::ok(
        name,
        format!("{shown}: connected, bookkeeping tables ready, created, wrote and dropped a table{place}"),
    ));
    Some(Arc::new(dest.state_store()))
}

/// Whether an error concerns HubSpot as a whole (the token, the network, the budget) rather
/// than one call's scope or name, so the remaining HubSpot checks would only repeat it.
fn stops_hubspot(error: &hubspot::Error) -> bool {
    !matches!(
        error,
        hubspot::Error::MissingScopes { .. }
            | hubspot::Error::NotFound { .. }
            | hubspot::Error::Rejected { .. }
            | hubspot::Error::DuplicateObject { .. }
    )
}

/// One HubSpot call of the checks and what it showed.
#[derive(Debug)]
struct Probe {
    name: String,
    result: Result<String, hubspot::Error>,
}

/// Adds a probe; true when its failure stops the remaining calls.
fn push(probes: &mut Vec<Probe>, name: String, result: Result<String, hubspot::Error>) -> bool {
    let stop = result.as_ref().is_err_and(stops_hubspot);
    probes.push(Probe { name, result });
    stop
}

/// The HubSpot calls, in order, until one fails in a way that stops them all; the flag says
/// whether calls were left out because of it.
async fn probe_hubspot(client: &HubSpotClient, config: &Config) -> (Vec<Probe>, bool) {
    let mut probes = Vec::new();
    let mut seen: Vec<(String, &String)> = Vec::new();
    for name in &config.sync.objects {
        let object = match hubspot::resolve_objects(client, std::slice::from_ref(name)).await {
            Ok(mut objects) => objects.remove(0),
            Err(e) => {
                if push(&mut probes, name.clone(), Err(e)) {
                    return (probes, true);
                }
                continue;
            }
        };
        // One at a time, so each name gets its own line; a type named twice is caught here.
        if let Some((_, first)) = seen.iter().find(|(api_name, _)| *api_name == object.api_name) {
            let (first, second) = ((*first).clone(), name.clone());
            push(
                &mut probes,
                name.clone(),
                Err(hubspot::Error::DuplicateObject { table: object.table, first, second }),
            );
            continue;
        }
        seen.push((object.api_name.clone(), name));
        let properties = client.properties(&object.api_name, false).await;
        let properties = properties.map(|p| format!("{} property definitions readable", p.len()));
        if push(&mut probes, format!("{} properties", object.table), properties) {
            return (probes, true);
        }
        let records = client.list(&object.api_name, &ListParams { limit: 1, ..ListParams::default() }).await;
        let records = records.map(|_| format!("readable ({} path)", object.read_path().as_str())).map_err(|e| {
            // HubSpot does not always say which scope is missing: the catalogue knows.
            match e {
                hubspot::Error::MissingScopes { origin, scopes, correlation_id } if scopes.is_empty() => {
                    let scopes = object.facts.read_scopes.iter().map(|s| (*s).to_owned()).collect();
                    hubspot::Error::MissingScopes { origin, scopes, correlation_id }
                }
                other => other,
            }
        });
        if push(&mut probes, format!("{} records", object.table), records) {
            return (probes, true);
        }
    }
    let owners = ApiRequest::get("owners", client.paths().owners()).query("limit", "1");
    let owners = client.send::<serde_json::Value>(&owners).await.map(|_| "readable".to_owned());
    push(&mut probes, "owners".to_owned(), owners);
    (probes, false)
}

async fn check_hubspot(config: &Config, state: Option<Arc<dyn BudgetStore>>, lines: &mut Vec<Line>) {
    // Without the state store the calls are counted in memory only: a handful, not a sync.
    let store = state.unwrap_or_else(|| Arc::new(MemoryBudgetStore::default()));
    let source = config.token_source();
    let origin = source.origin();
    let client = match HubSpotClient::new(config.hubspot_client_config(), source, store, crate::clock::system()) {
        Ok(client) => client,
        Err(e) => {
            lines.push(Line::from_error("hubspot", "starting the HTTP client", &e));
            return;
        }
    };
    let (probes, cut_short) = probe_hubspot(&client, config).await;
    // Any answer other than a stopping failure means HubSpot took the token.
    let accepted = probes.iter().any(|p| p.result.as_ref().map_or_else(|e| !stops_hubspot(e), |_| true));
    if accepted {
        let base_url = crate::config::redact_url(&config.hubspot.base_url);
        lines.push(Line::ok("hubspot", format!("{base_url} accepted the token from {origin}")));
    }
    for probe in probes {
        lines.push(match probe.result {
            Ok(detail) => Line::ok(probe.name, detail),
            Err(e) if !accepted => Line::failed("hubspot", e.class(), e.to_string()),
            Err(e) => Line::failed(probe.name, e.class(), e.to_string()),
        });
    }
    if cut_short {
        lines.push(Line {
            name: "other HubSpot checks".to_owned(),
            outcome: Outcome::Skipped("they need the failure above fixed first".to_owned()),
        });
    }
}
