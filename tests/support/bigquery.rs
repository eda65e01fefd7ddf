//! BigQuery against bqemulator: a fresh dataset per test, a destination on it, and a runner
//! keeping hsync's state in a local SQLite file, as the CLI does.

use hsync::config::BigQueryConfig;
use hsync::destination::bigquery::BigQueryDestination;
use hsync::destination::sqlite::SqliteStateStore;
use hsync::destination::Destination;
use hsync::state::StateStore;
use hsync::stream::runner::{PropertyFilter, Runner};
use serde_json::Value;

use super::{emulator_url, sim_client, Sim};

/// The project the emulator serves (any name works; this one is what `scripts/emulators` passes).
pub const PROJECT: &str = "hsync-test";

/// A uniquely named dataset on the emulator.
pub struct FreshDataset {
    pub endpoint: String,
    pub dataset: String,
}

impl FreshDataset {
    /// `None` (the test skips) when `HSYNC_BQ_EMULATOR_URL` is unset outside CI.
    pub fn new() -> Option<FreshDataset> {
        let endpoint = emulator_url("HSYNC_BQ_EMULATOR_URL", "the BigQuery emulator")?;
        Some(FreshDataset { endpoint, dataset: format!("t_{:08x}", rand::random::<u32>()) })
    }

    pub fn url(&self) -> String {
        format!("bigquery://{PROJECT}/{}", self.dataset)
    }

    /// The `[destination]` keys of a configuration for the `hsync` binary on this dataset.
    pub fn destination_keys(&self) -> String {
        format!("url = \"{}\"\n\n[destination.bigquery]\nendpoint = \"{}\"", self.url(), self.endpoint)
    }

    pub fn config(&self) -> BigQueryConfig {
        BigQueryConfig { endpoint: Some(self.endpoint.clone()), ..BigQueryConfig::default() }
    }

    /// A destination on the dataset (not prepared).
    pub async fn connect(&self) -> BigQueryDestination {
        BigQueryDestination::connect(&self.url(), &self.config()).await.expect("connect to the emulator")
    }

    /// `GET` on the REST API (`path` after `/bigquery/v2/projects/PROJECT`).
    pub async fn get(&self, path: &str) -> (reqwest::StatusCode, Value) {
        let url = format!("{}/bigquery/v2/projects/{PROJECT}{path}", self.endpoint);
        let resp = reqwest::get(url).await.expect("emulator GET");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A table's stored field names and types, in order.
    pub async fn fields(&self, table: &str) -> Vec<(String, String)> {
        let (status, body) = self.get(&format!("/datasets/{}/tables/{table}", self.dataset)).await;
        assert!(status.is_success(), "tables.get {table}: {status} {body}");
        body["schema"]["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .map(|f| (f["name"].as_str().unwrap().to_owned(), f["type"].as_str().unwrap().to_owned()))
            .collect()
    }

    /// A column's description as tables.get reports it.
    pub async fn field_description(&self, table: &str, column: &str) -> Option<String> {
        let (status, body) = self.get(&format!("/datasets/{}/tables/{table}", self.dataset)).await;
        assert!(status.is_success(), "tables.get {table}: {status} {body}");
        let fields = body["schema"]["fields"].as_array().expect("fields");
        let field = fields.iter().find(|f| f["name"] == column).unwrap_or_else(|| panic!("no column {column}"));
        field["description"].as_str().map(str::to_owned)
    }

    /// Runs SQL through jobs.query and returns the raw response.
    pub async fn query(&self, sql: &str) -> Value {
        let url = format!("{}/bigquery/v2/projects/{PROJECT}/queries", self.endpoint);
        let body =
            serde_json::json!({ "query": sql, "useLegacySql": false, "formatOptions": { "useInt64Timestamp": true } });
        reqwest::Client::new().post(url).json(&body).send().await.expect("jobs.query").json().await.expect("json")
    }

    /// Creates a table with the given `(name, type)` fields through tables.insert.
    pub async fn create_table(&self, table: &str, fields: &[(&str, &str)]) {
        let url = format!("{}/bigquery/v2/projects/{PROJECT}/datasets/{}/tables", self.endpoint, self.dataset);
        let fields: Vec<Value> = fields.iter().map(|(n, t)| serde_json::json!({ "name": n, "type": t })).collect();
        let body = serde_json::json!({
            "tableReference": { "projectId": PROJECT, "datasetId": self.dataset, "tableId": table },
            "schema": { "fields": fields },
        });
        let resp = reqwest::Client::new().post(url).json(&body).send().await.expect("tables.insert");
        assert!(resp.status().is_success(), "tables.insert {table}: {}", resp.status());
    }

    /// Deletes the dataset and everything in it.
    pub async fn drop(&self) {
        let url =
            format!("{}/bigquery/v2/projects/{PROJECT}/datasets/{}?deleteContents=true", self.endpoint, self.dataset);
        let _ = reqwest::Client::new().delete(url).send().await;
    }
}

/// A runner syncing `sim` into the fresh dataset, with its state in a SQLite file in `dir`.
pub async fn bigquery_runner(
    sim: &Sim,
    fresh: &FreshDataset,
    dir: &std::path::Path,
) -> Runner<BigQueryDestination, SqliteStateStore> {
    let dest = fresh.connect().await;
    dest.prepare().await.expect("prepare");
    assert_eq!(dest.sweep_stages().await.expect("sweep"), 0);
    let state = SqliteStateStore::open(&dir.join("hsync-state.db")).await.expect("state file");
    state.migrate().await.expect("migrate the state file");
    Runner {
        client: sim_client(sim, std::sync::Arc::new(state.clone())),
        dest,
        state,
        clock: hsync::clock::system(),
        filter: PropertyFilter::default(),
    }
}
