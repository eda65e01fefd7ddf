//! The BigQuery destination: object tables, the bookkeeping tables and short-lived staging
//! tables in one dataset (`bigquery://PROJECT/DATASET`). BigQuery has no transaction spanning a
//! load and a `MERGE`, so it does not hold hsync's state ([`Destination::holds_state`] is false):
//! checkpoints live in the local state file and the runner commits them after the merge has
//! returned; a crash in between replays one batch, which the guarded merge absorbs.
//!
//! This module owns the [`Destination`] implementation; [`client`] owns credentials, the REST
//! calls and error classes, [`sql`] every statement's text and [`types`] the type mapping and
//! the Parquet files loads read.
//!
//! # How a batch lands
//! 1. `stage` creates `_hsync_stage_<table>_<8 hex>` with tables.insert and an explicit schema:
//!    the target's columns **in the target's order**, restricted to the batch's columns, with
//!    JSON as `STRING`. It writes the batch, in that column order, to an
//!    in-memory Parquet file and appends it with a multipart load job, waits for the job and
//!    checks `status.errorResult`. Stages expire after a day, so even a stage no sweep reaches
//!    goes away.
//! 2. `merge` runs one `MERGE` (explicit column lists, the newest staged version of each id by
//!    `ROW_NUMBER`, the cursor guard `t._hsync_cursor IS NULL OR t._hsync_cursor <=
//!    s._hsync_cursor`, JSON parsed from the stage's text), appends the
//!    rejects to `_hsync_rejects` with a load job, and drops the stage. `written` is the
//!    `MERGE`'s affected rows and `skipped` the other staged rows.
//! 3. `sweep_stages` drops every `_hsync_stage_*` table of the dataset. Run it at start-up: it
//!    cannot tell a crash's leftovers from a stage in flight. `flag`, `merge_edges` and
//!    `replace_dimensions` load their inputs into scratch tables under the same prefix.
//!
//! # Schema changes
//! Tables are created with tables.insert and an explicit schema (`id` REQUIRED). New columns:
//! one `ALTER TABLE ... ADD COLUMN IF NOT EXISTS` per column (bqemulator accepts no more), then
//! tables.patch with the union of the table's schema and the new fields when tables.get does
//! not list them yet (bqemulator's catalog does not follow `ALTER TABLE`; on BigQuery the patch
//! is skipped). Of hsync's widenings BigQuery applies only decimal to text in place (the column
//! loses its decimal description, the same way); the others stop the stream with a schema
//! error that says what to do.
//!
//! # Decimals
//! hsync's decimals (HubSpot numbers) have up to 76 digits, 38 after the point: exactly
//! `BIGNUMERIC`, which bqemulator (DuckDB, 38 digits at most) cannot create. A type only
//! production could run is a path no test here covers, so a decimal column is a `STRING`
//! holding the exact canonical text (`-0.5`, `100`, never an exponent), marked by
//! [`types::DECIMAL_DESCRIPTION`], as Snowflake's are `VARCHAR(80)`: the storage production
//! uses is the one the conformance suite runs against the emulator. Analysts compute with
//! `CAST(amount AS BIGNUMERIC)`, which is exact for every value hsync writes.
//!
//! # Bookkeeping tables
//! `prepare` creates the dataset when missing (in `destination.bigquery.location`), then
//! `_hsync_rejects`, `associations` (one edge table for every object pair, as in Postgres) and
//! the dimension tables. BigQuery has no primary keys or unique constraints: every write goes
//! through a `MERGE` on the key, and the inputs are deduplicated before they are loaded.
//!
//! # Push queries
//! `query_text` runs an operator's query (`hsync push`) as a query job of its own whose default
//! dataset is this dataset, so hsync's tables are reachable unqualified, after
//! `read_only_query` has checked it is one SELECT (BigQuery has no read-only transaction), and
//! reads every page of its rows as text ([`types::text_rows`]).

pub mod client;
#[cfg(feature = "test-support")]
mod inspect;
pub mod sql;
pub mod types;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use gcp_bigquery_client::model::dataset::Dataset as BqDataset;
use gcp_bigquery_client::model::field_type::FieldType;
use gcp_bigquery_client::model::table::Table;
use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;
use gcp_bigquery_client::model::table_schema::TableSchema as BqSchema;
use gcp_bigquery_client::table::ListOptions;

use self::client::{from_bq, int_array_param, int_param, is_duplicate, is_not_found, string_param, Api, Credentials};
use self::sql::Dataset;
use super::{
    Destination, DimensionOutcome, Edge, EdgeEnd, EdgeOutcome, Error, IdFlags, MergeOutcome, Row as Cells, RowFlag,
    Stage, StoredVersion,
};
use crate::config::BigQueryConfig;
use crate::schema::dimension::{DimensionBatch, DIMENSION_TABLES};
use crate::schema::{hsync_columns, Change, ColumnBudget, ColumnType, ExistingColumn, Reject, SchemaPlan};
use crate::state::Checkpoint;

pub(crate) const KIND: crate::config::DestinationKind = crate::config::DestinationKind::BigQuery;

/// BigQuery allows 10,000 columns per table; hsync keeps room for its own and some spare.
pub const COLUMN_BUDGET: ColumnBudget = ColumnBudget(9_900);
/// The API root when `destination.bigquery.endpoint` is unset.
pub const DEFAULT_ENDPOINT: &str = "https://bigquery.googleapis.com";
/// How long a staging table lives if nothing drops it.
const STAGE_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Time allowed for one HTTP exchange (load uploads included).
const HTTP_TIMEOUT: Duration = Duration::from_secs(300);

/// Project and dataset from `bigquery://PROJECT/DATASET`.
pub fn parse_url(url: &str) -> Result<(String, String), Error> {
    let bad = |why: &str| Error::Config(format!("{why}; a BigQuery destination is bigquery://PROJECT/DATASET"));
    let rest = url.strip_prefix("bigquery://").ok_or_else(|| bad("the URL does not start with bigquery://"))?;
    let (project, dataset) = rest.split_once('/').ok_or_else(|| bad("the URL names no dataset"))?;
    let dataset = dataset.trim_end_matches('/');
    let project_ok = !project.is_empty()
        && project.len() <= 128
        && project.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':'));
    if !project_ok {
        return Err(bad("the project id must be lowercase letters, digits and hyphens (with an optional domain:)"));
    }
    let dataset_ok =
        !dataset.is_empty() && dataset.len() <= 1024 && dataset.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !dataset_ok {
        return Err(bad("the dataset name must be 1 to 1,024 letters, digits and underscores"));
    }
    Ok((project.to_owned(), dataset.to_owned()))
}

/// A BigQuery dataset hsync writes to (cloning shares the HTTP connections).
#[derive(Clone)]
pub struct BigQueryDestination {
    api: Api,
    dataset: String,
    location: Option<String>,
    /// Talking to bqemulator (a plain `http://` endpoint).
    emulator: bool,
}

impl fmt::Debug for BigQueryDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials are never shown.
        f.debug_struct("BigQueryDestination")
            .field("project", &self.api.project)
            .field("dataset", &self.dataset)
            .finish_non_exhaustive()
    }
}

/// A column of a table hsync creates.
fn field(name: &str, ty: ColumnType, required: bool) -> TableFieldSchema {
    let field_type = match ty {
        ColumnType::Text | ColumnType::Decimal => FieldType::String,
        ColumnType::Boolean => FieldType::Bool,
        ColumnType::Date => FieldType::Date,
        ColumnType::Timestamp => FieldType::Timestamp,
        ColumnType::Json => FieldType::Json,
        ColumnType::BigInt => FieldType::Int64,
    };
    let mut f = TableFieldSchema::new(name, field_type);
    f.mode = Some(if required { "REQUIRED" } else { "NULLABLE" }.to_owned());
    if ty == ColumnType::Decimal {
        f.description = Some(types::DECIMAL_DESCRIPTION.to_owned());
    }
    f
}

fn field_type_name(ty: &FieldType) -> String {
    serde_json::to_value(ty).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

impl BigQueryDestination {
    /// Connects to `bigquery://PROJECT/DATASET` with the given settings: an `http://` endpoint
    /// is an emulator (no authentication), anything else uses the key file or application
    /// default credentials. Nothing is called yet.
    pub async fn connect(url: &str, config: &BigQueryConfig) -> Result<BigQueryDestination, Error> {
        let (project, dataset) = parse_url(url)?;
        let endpoint = config.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT).trim_end_matches('/').to_owned();
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(Error::Config(format!(
                "destination.bigquery.endpoint {endpoint} is not an http:// or https:// address"
            )));
        }
        let emulator = endpoint.starts_with("http://");
        let credentials = if emulator {
            Credentials::Emulator
        } else {
            Credentials::google(config.credentials_file.as_deref()).await?
        };
        let credentials = Arc::new(credentials);
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        let client = gcp_bigquery_client::client_builder::ClientBuilder::new()
            .with_v2_base_url(format!("{endpoint}/bigquery/v2"))
            .with_client(http.clone())
            .build_from_authenticator(Arc::clone(&credentials) as Arc<dyn gcp_bigquery_client::auth::Authenticator>)
            .await
            .map_err(|e| from_bq("connect", e))?;
        Ok(BigQueryDestination {
            api: Api {
                client,
                credentials,
                http,
                project,
                api_base: format!("{endpoint}/bigquery/v2"),
                upload_base: format!("{endpoint}/upload/bigquery/v2"),
                location: config.location.clone(),
            },
            dataset,
            location: config.location.clone(),
            emulator,
        })
    }

    pub fn project(&self) -> &str {
        &self.api.project
    }

    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    fn ds(&self) -> Dataset<'_> {
        Dataset { project: &self.api.project, dataset: &self.dataset }
    }

    /// The statements `alter` would run for a plan (`hsync schema-diff`).
    pub fn render_alter(&self, plan: &SchemaPlan) -> Vec<String> {
        sql::render_plan(self.ds(), plan)
    }

    /// The stored schema of a table (fields in table order), or `None` when it does not exist.
    async fn get_table(&self, table: &str) -> Result<Option<Table>, Error> {
        match self.api.client.table().get(&self.api.project, &self.dataset, table, None).await {
            Ok(t) => Ok(Some(t)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(from_bq(&format!("read the schema of {table}"), e)),
        }
    }

    /// Creates a table with an explicit schema; an existing one is left as it is.
    /// bqemulator builds its DuckDB table from a tables.insert without escaping column names,
    /// so there a name with a double quote goes through `CREATE TABLE` (which it parses
    /// properly) and a tables.patch that gives its catalog the explicit schema.
    async fn create_table(&self, table: &str, fields: Vec<TableFieldSchema>, expires: bool) -> Result<(), Error> {
        let action = format!("create table {table}");
        if self.emulator && fields.iter().any(|f| f.name.contains('"')) {
            let columns: Vec<(&str, String, bool)> = fields
                .iter()
                .map(|f| {
                    let name = field_type_name(&f.r#type);
                    let ty = types::column_type_of_bq(&name, f.description.as_deref()).map_or(name, types::sql_type);
                    (f.name.as_str(), ty, f.mode.as_deref() == Some("REQUIRED"))
                })
                .collect();
            let columns: Vec<(&str, &str, bool)> = columns.iter().map(|(n, t, r)| (*n, t.as_str(), *r)).collect();
            self.api.query(&action, sql::render_create_table(self.ds(), table, &columns), Vec::new()).await?;
            return self.patch_schema(table, |stored| *stored = fields).await;
        }
        let mut t = Table::new(&self.api.project, &self.dataset, table, BqSchema::new(fields));
        if expires {
            t = t.expiration_time(SystemTime::now() + STAGE_LIFETIME);
        }
        match self.api.client.table().create(t).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate(&e) => Ok(()),
            Err(e) => Err(from_bq(&action, e)),
        }
    }

    async fn drop_table(&self, table: &str) -> Result<(), Error> {
        match self.api.client.table().delete(&self.api.project, &self.dataset, table).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(from_bq(&format!("drop table {table}"), e)),
        }
    }

    /// Drops a scratch or staging table whose work is done or failed; a failing drop is left
    /// to the start-up sweep and the table's expiry.
    async fn discard(&self, table: &str) {
        if let Err(e) = self.drop_table(table).await {
            tracing::warn!(table, error = %e, "could not drop a staging table; the start-up sweep drops it");
        }
    }

    /// Creates a staging or scratch table with `columns` (staging types) and loads `batch`,
    /// whose columns must be those, in that order. Returns the rows loaded.
    async fn load_scratch(
        &self,
        scratch: &str,
        columns: &[(String, ColumnType)],
        batch: &RecordBatch,
        table: &str,
    ) -> Result<u64, Error> {
        let staged = types::stage_batch(batch).map_err(|e| Error::Schema {
            kind: KIND,
            table: table.to_owned(),
            detail: e.to_string(),
        })?;
        let fields = columns.iter().map(|(name, ty)| field(name, types::stage_type(*ty), false)).collect::<Vec<_>>();
        self.create_table(scratch, fields, true).await?;
        if staged.num_rows() == 0 {
            return Ok(0);
        }
        let file = types::parquet_file(&staged).map_err(|e| Error::Schema {
            kind: KIND,
            table: table.to_owned(),
            detail: e.to_string(),
        })?;
        let action = format!("load a batch for {table}");
        let loaded = self.api.load_parquet(&action, &self.dataset, scratch, file).await?;
        if loaded != staged.num_rows() as u64 {
            return Err(Error::Unavailable {
                kind: KIND,
                detail: format!("{action}: the load job reports {loaded} of {} rows", staged.num_rows()),
            });
        }
        Ok(loaded)
    }

    async fn list_stages(&self) -> Result<Vec<String>, Error> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut options = ListOptions::default().max_results(1_000);
            if let Some(t) = token.take() {
                options = options.page_token(t);
            }
            let page = self
                .api
                .client
                .table()
                .list(&self.api.project, &self.dataset, options)
                .await
                .map_err(|e| from_bq("list staging tables", e))?;
            names.extend(
                page.tables
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| t.table_reference.table_id)
                    .filter(|name| name.starts_with(sql::STAGE_PREFIX)),
            );
            match page.next_page_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        names.sort();
        Ok(names)
    }

    /// Appends rejects to `_hsync_rejects` with a load job (values loaded as data).
    async fn insert_rejects(&self, rejects: &[Reject]) -> Result<(), Error> {
        if rejects.is_empty() {
            return Ok(());
        }
        let text = |get: fn(&Reject) -> &str| -> ArrayRef {
            Arc::new(rejects.iter().map(|r| Some(get(r))).collect::<StringArray>())
        };
        let now = chrono::Utc::now().timestamp_millis();
        let seen: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![now; rejects.len()]).with_timezone("UTC"));
        let columns = vec![
            text(|r| &r.object),
            text(|r| &r.id),
            text(|r| &r.property),
            text(|r| &r.raw),
            text(|r| &r.reason),
            seen,
        ];
        let batch = batch_of(&sql::REJECT_COLUMNS, columns, sql::REJECTS_TABLE)?;
        let file = types::stage_batch(&batch).and_then(|b| types::parquet_file(&b)).map_err(|e| Error::Schema {
            kind: KIND,
            table: sql::REJECTS_TABLE.to_owned(),
            detail: e.to_string(),
        })?;
        self.api.load_parquet("record rejected values", &self.dataset, sql::REJECTS_TABLE, file).await?;
        Ok(())
    }

    /// Proves hsync may create, write and drop a table in the dataset (`hsync check`): a
    /// scratch table `_hsync_check_<8 hex>` is created, gets one bound row and is dropped.
    pub async fn probe_write(&self) -> Result<(), Error> {
        let table = format!("{}{:08x}", super::PROBE_PREFIX, rand::random::<u32>());
        self.create_table(&table, vec![field(hsync_columns::ID, ColumnType::BigInt, true)], true).await?;
        let written = self
            .api
            .query(&format!("write to {table}"), sql::render_insert_id(self.ds(), &table), vec![int_param("id", 1)])
            .await;
        let dropped = self.drop_table(&table).await;
        let written = written?.affected.unwrap_or_default();
        dropped?;
        if written != 1 {
            return Err(Error::Statement {
                kind: KIND,
                action: format!("write to {table}"),
                detail: format!("{written} rows written instead of 1"),
            });
        }
        Ok(())
    }

    /// Adds columns one statement each, then patches the table's schema with those its
    /// stored schema lacks (see the module docs).
    async fn add_columns(&self, table: &str, columns: &[(String, ColumnType)]) -> Result<(), Error> {
        for (name, ty) in columns {
            self.api
                .query(
                    &format!("add column {name} to {table}"),
                    sql::render_add_column(self.ds(), table, name, *ty),
                    Vec::new(),
                )
                .await?;
        }
        self.patch_schema(table, |fields| {
            for (name, ty) in columns {
                if !fields.iter().any(|f| &f.name == name) {
                    fields.push(field(name, *ty, false));
                }
            }
        })
        .await
    }

    /// Applies `change` to the stored schema and patches the table when it changed anything.
    async fn patch_schema(&self, table: &str, change: impl FnOnce(&mut Vec<TableFieldSchema>)) -> Result<(), Error> {
        let action = format!("update the schema of {table}");
        let Some(mut stored) = self.get_table(table).await? else {
            return Err(Error::Schema {
                kind: KIND,
                table: table.to_owned(),
                detail: "the table does not exist".into(),
            });
        };
        let mut fields = stored.schema.fields().clone().unwrap_or_default();
        let before = serde_json::to_value(&fields).unwrap_or_default();
        change(&mut fields);
        if serde_json::to_value(&fields).unwrap_or_default() == before {
            return Ok(());
        }
        stored.schema = BqSchema::new(fields);
        self.api
            .client
            .table()
            .patch(&self.api.project, &self.dataset, table, stored)
            .await
            .map_err(|e| from_bq(&action, e))?;
        Ok(())
    }

    async fn merge_stage(&self, stage: &Stage, rejects: &[Reject]) -> Result<MergeOutcome, Error> {
        let table = stage.table.as_str();
        let action = format!("merge into {table}");
        let existing = self.describe(table).await?.ok_or_else(|| Error::Schema {
            kind: KIND,
            table: table.to_owned(),
            detail: "the table does not exist".to_owned(),
        })?;
        let columns: Vec<ExistingColumn> = stage
            .columns
            .iter()
            .map(|name| {
                existing.iter().find(|c| &c.name == name).cloned().ok_or_else(|| Error::Schema {
                    kind: KIND,
                    table: table.to_owned(),
                    detail: format!("the stage has a column {name} the table lacks"),
                })
            })
            .collect::<Result<_, _>>()?;
        let merged = self
            .api
            .query(&action, sql::render_merge(self.ds(), table, &stage.stage_table, &columns), Vec::new())
            .await?;
        let written = merged.affected.ok_or_else(|| Error::Statement {
            kind: KIND,
            action: action.clone(),
            detail: "BigQuery reported no affected row count for the MERGE".to_owned(),
        })?;
        self.insert_rejects(rejects).await?;
        Ok(MergeOutcome { written, skipped: stage.rows.saturating_sub(written) })
    }

    async fn read_rows(
        &self,
        action: &str,
        sql: String,
        params: Vec<gcp_bigquery_client::model::query_parameter::QueryParameter>,
    ) -> Result<Vec<Vec<Option<String>>>, Error> {
        Ok(self.api.query(action, sql, params).await?.rows)
    }

    async fn read_ids(
        &self,
        action: &str,
        sql: String,
        params: Vec<gcp_bigquery_client::model::query_parameter::QueryParameter>,
    ) -> Result<Vec<i64>, Error> {
        let rows = self.read_rows(action, sql, params).await?;
        rows.iter().map(|r| int_at(action, r, 0)?.ok_or_else(|| unreadable(action, "an id is NULL"))).collect()
    }

    async fn edge_outcome(
        &self,
        from_type: &str,
        to_type: &str,
        from_ids: &[i64],
        scratch: &str,
        synced_at_ms: i64,
    ) -> Result<EdgeOutcome, Error> {
        let action = format!("merge association edges from {from_type} to {to_type}");
        let params = || {
            vec![
                string_param("from_type", from_type),
                string_param("to_type", to_type),
                int_param("synced_at", synced_at_ms),
            ]
        };
        let upserted = self
            .api
            .query(&action, sql::render_upsert_edges(self.ds(), scratch), params())
            .await?
            .affected
            .unwrap_or(0);
        let mut tombstone = params();
        tombstone.push(int_array_param("from_ids", from_ids));
        let tombstoned = self
            .api
            .query(&action, sql::render_tombstone_edges(self.ds(), scratch), tombstone)
            .await?
            .affected
            .unwrap_or(0);
        Ok(EdgeOutcome { upserted, tombstoned })
    }

    async fn replace_dimension(&self, d: &DimensionBatch, synced_at_ms: i64) -> Result<DimensionOutcome, Error> {
        let table = d.table;
        let scratch = sql::stage_table_name(table.name, rand::random());
        let columns: Vec<(String, ColumnType)> = table.columns.iter().map(|(n, ty)| ((*n).to_owned(), *ty)).collect();
        let action = format!("replace the dimension table {}", table.name);
        let result = async {
            let rows = self.load_scratch(&scratch, &columns, &d.batch, table.name).await?;
            self.api
                .query(
                    &action,
                    sql::render_upsert_dimension(self.ds(), table, &scratch),
                    vec![int_param("synced_at", synced_at_ms)],
                )
                .await?;
            let removed = if table.complete_lists {
                self.api
                    .query(
                        &action,
                        sql::render_remove_missing_dimension(self.ds(), table, &scratch),
                        vec![int_param("synced_at", synced_at_ms)],
                    )
                    .await?
                    .affected
                    .unwrap_or(0)
            } else {
                0
            };
            Ok(DimensionOutcome { table: table.name, rows, removed })
        }
        .await;
        self.discard(&scratch).await;
        result
    }
}

/// A batch whose columns are `layout`, typed as Arrow types them.
fn batch_of(layout: &[(&str, ColumnType)], columns: Vec<ArrayRef>, table: &str) -> Result<RecordBatch, Error> {
    let fields: Vec<Field> =
        layout.iter().zip(&columns).map(|((name, _), a)| Field::new(*name, a.data_type().clone(), true)).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| Error::Statement {
        kind: KIND,
        action: format!("build a batch for {table}"),
        detail: e.to_string(),
    })
}

fn owned(layout: &[(&str, ColumnType)]) -> Vec<(String, ColumnType)> {
    layout.iter().map(|(n, ty)| ((*n).to_owned(), *ty)).collect()
}

fn unreadable(action: &str, what: &str) -> Error {
    Error::Statement { kind: KIND, action: action.to_owned(), detail: format!("BigQuery returned {what}") }
}

fn int_at(action: &str, row: &[Option<String>], i: usize) -> Result<Option<i64>, Error> {
    row.get(i)
        .ok_or_else(|| unreadable(action, "too few columns"))?
        .as_deref()
        .map(|v| v.parse::<i64>().map_err(|_| unreadable(action, "an integer that does not parse")))
        .transpose()
}

fn text_at(action: &str, row: &[Option<String>], i: usize) -> Result<Option<String>, Error> {
    Ok(row.get(i).ok_or_else(|| unreadable(action, "too few columns"))?.clone())
}

/// Rows the query API returned for `columns` (in that order), as [`Cells`].
fn cells_of(action: &str, columns: &[ExistingColumn], rows: &[Vec<Option<String>>]) -> Result<Vec<Cells>, Error> {
    rows.iter()
        .map(|r| {
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let cell = types::cell_of(c.ty, text_at(action, r, i)?.as_deref())
                        .ok_or_else(|| unreadable(action, &format!("a {:?} value that does not parse", c.ty)))?;
                    Ok((c.name.clone(), cell))
                })
                .collect()
        })
        .collect()
}

fn ms_at(action: &str, row: &[Option<String>], i: usize) -> Result<Option<i64>, Error> {
    row.get(i)
        .ok_or_else(|| unreadable(action, "too few columns"))?
        .as_deref()
        .map(|v| types::timestamp_ms(v).ok_or_else(|| unreadable(action, "a timestamp that is not int64 microseconds")))
        .transpose()
}

impl Destination for BigQueryDestination {
    fn kind(&self) -> crate::config::DestinationKind {
        KIND
    }

    fn holds_state(&self) -> bool {
        false
    }

    fn column_budget(&self) -> ColumnBudget {
        COLUMN_BUDGET
    }

    async fn prepare(&self) -> Result<(), Error> {
        match self.api.client.dataset().get(&self.api.project, &self.dataset).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {
                let mut dataset = BqDataset::new(&self.api.project, &self.dataset);
                if let Some(location) = &self.location {
                    dataset = dataset.location(location);
                }
                match self.api.client.dataset().create(dataset).await {
                    Ok(_) => {}
                    Err(e) if is_duplicate(&e) => {}
                    Err(e) => return Err(from_bq(&format!("create dataset {}", self.dataset), e)),
                }
            }
            Err(e) => return Err(from_bq(&format!("read dataset {}", self.dataset), e)),
        }
        let required = |layout: &[(&str, ColumnType)], key: &[&str]| -> Vec<TableFieldSchema> {
            layout.iter().map(|(n, ty)| field(n, *ty, key.contains(n))).collect()
        };
        self.create_table(
            sql::REJECTS_TABLE,
            required(&sql::REJECT_COLUMNS, &["object", "id", "property", "reason"]),
            false,
        )
        .await?;
        self.create_table(
            sql::ASSOCIATIONS_TABLE,
            required(
                &sql::ASSOCIATION_COLUMNS,
                &["from_type", "from_id", "to_type", "to_id", "type_id", "category", "synced_at"],
            ),
            false,
        )
        .await?;
        self.api
            .query(
                &format!("create view {}", sql::ASSOCIATIONS_LIVE_VIEW),
                sql::render_create_associations_live(self.ds()),
                Vec::new(),
            )
            .await?;
        for table in DIMENSION_TABLES {
            let fields = table
                .all_columns()
                .iter()
                .map(|c| {
                    let required = table.key.contains(&c.name.as_str()) || c.name == hsync_columns::SYNCED_AT;
                    field(&c.name, c.ty, required)
                })
                .collect();
            self.create_table(table.name, fields, false).await?;
        }
        self.api
            .query(
                &format!("create view {}", crate::destination::HISTORY_SPANS_VIEW),
                sql::render_replace_history_spans(self.ds()),
                Vec::new(),
            )
            .await?;
        Ok(())
    }

    async fn healthcheck(&self) -> Result<(), Error> {
        match self.api.client.dataset().get(&self.api.project, &self.dataset).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Err(Error::Config(format!(
                "the dataset {}.{} does not exist; hsync creates it when it starts (or create it yourself)",
                self.api.project, self.dataset
            ))),
            Err(e) => Err(from_bq("read the dataset", e)),
        }
    }

    async fn describe(&self, table: &str) -> Result<Option<Vec<ExistingColumn>>, Error> {
        let Some(stored) = self.get_table(table).await? else { return Ok(None) };
        stored
            .schema
            .fields()
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|f| {
                let name = field_type_name(&f.r#type);
                types::column_type_of_bq(&name, f.description.as_deref())
                    .map(|ty| ExistingColumn { name: f.name.clone(), ty })
                    .ok_or_else(|| Error::Schema {
                        kind: KIND,
                        table: table.to_owned(),
                        detail: format!("column {} has type {name}, which hsync does not write", f.name),
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    async fn alter(&self, plan: &SchemaPlan) -> Result<(), Error> {
        let table = plan.table.as_str();
        let mut added = Vec::new();
        for change in &plan.changes {
            match change {
                Change::CreateTable { schema } => {
                    let fields =
                        schema.columns.iter().map(|c| field(&c.name, c.ty, c.name == hsync_columns::ID)).collect();
                    self.create_table(table, fields, false).await?;
                }
                Change::AddColumn { column } => added.push((column.name.clone(), column.ty)),
                Change::Widen { column, from, to } if sql::widens_in_place(*from, *to) => {
                    self.api
                        .query(
                            &format!("widen column {column} of {table}"),
                            sql::render_decimal_to_text(self.ds(), table, column),
                            Vec::new(),
                        )
                        .await?;
                    // bqemulator's catalog does not follow the statement (BigQuery's does).
                    self.patch_schema(table, |fields| {
                        for f in fields.iter_mut().filter(|f| &f.name == column) {
                            if types::is_decimal_description(f.description.as_deref()) {
                                f.description = None;
                            }
                        }
                    })
                    .await?;
                }
                Change::Widen { column, from, to } => {
                    return Err(Error::Schema {
                        kind: KIND,
                        table: table.to_owned(),
                        detail: format!(
                            "column {column} would change from {from:?} to {to:?}, which BigQuery cannot do in place; \
                             add a new column in BigQuery, copy the values, and exclude or rename the property"
                        ),
                    })
                }
                Change::Incompatible { .. }
                | Change::Overflow { .. }
                | Change::PropertyRemoved { .. }
                | Change::Unmappable { .. }
                | Change::ReplaceView { .. } => {}
            }
        }
        if !added.is_empty() {
            self.add_columns(table, &added).await?;
        }
        // Last, once the table has its columns: the view's `*` is resolved now.
        if let Some((view, _)) = plan.live_view() {
            self.api
                .query(
                    &format!("replace view {view}"),
                    sql::render_replace_live_view(self.ds(), table, view),
                    Vec::new(),
                )
                .await?;
        }
        Ok(())
    }

    async fn stage(&self, table: &str, batch: &RecordBatch) -> Result<Stage, Error> {
        let schema = batch.schema();
        super::check_batch_keys(KIND, table, batch)?;
        let existing = self.describe(table).await?.ok_or_else(|| Error::Schema {
            kind: KIND,
            table: table.to_owned(),
            detail: "the table does not exist; alter creates it before anything is staged".to_owned(),
        })?;
        if let Some(stray) = schema.fields().iter().find(|f| !existing.iter().any(|c| c.name == *f.name())) {
            return Err(Error::Schema {
                kind: KIND,
                table: table.to_owned(),
                detail: format!("the batch has a column {} the table lacks", stray.name()),
            });
        }
        // The target's order, restricted to the batch's columns.
        let columns: Vec<(String, ColumnType)> =
            existing.iter().filter(|c| schema.index_of(&c.name).is_ok()).map(|c| (c.name.clone(), c.ty)).collect();
        let indices: Vec<usize> = columns.iter().filter_map(|(n, _)| schema.index_of(n).ok()).collect();
        let ordered = batch.project(&indices).map_err(|e| Error::Schema {
            kind: KIND,
            table: table.to_owned(),
            detail: e.to_string(),
        })?;
        let stage_table = sql::stage_table_name(table, rand::random());
        let loaded = self.load_scratch(&stage_table, &columns, &ordered, table).await;
        match loaded {
            Ok(rows) => Ok(Stage {
                table: table.to_owned(),
                stage_table,
                columns: columns.into_iter().map(|(n, _)| n).collect(),
                rows,
            }),
            Err(e) => {
                self.discard(&stage_table).await;
                Err(e)
            }
        }
    }

    async fn merge(
        &self,
        stage: Stage,
        rejects: &[Reject],
        _commit: Option<&Checkpoint>,
    ) -> Result<MergeOutcome, Error> {
        stage.check_keys(KIND)?;
        let outcome = self.merge_stage(&stage, rejects).await;
        // Merged or not, the stage is done: a failed merge is staged again by the caller.
        self.discard(&stage.stage_table).await;
        outcome
    }

    async fn sweep_stages(&self) -> Result<u64, Error> {
        let stages = self.list_stages().await?;
        for stage in &stages {
            self.drop_table(stage).await?;
        }
        Ok(stages.len() as u64)
    }

    async fn merge_edges(
        &self,
        from_type: &str,
        to_type: &str,
        from_ids: &[i64],
        edges: &[Edge],
        synced_at_ms: i64,
    ) -> Result<EdgeOutcome, Error> {
        let edges = super::edges_by_key(KIND, from_ids, edges)?;
        if from_ids.is_empty() {
            return Ok(EdgeOutcome::default());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(edges.iter().map(|e| Some(e.from_id)).collect::<Int64Array>()),
            Arc::new(edges.iter().map(|e| Some(e.to_id)).collect::<Int64Array>()),
            Arc::new(edges.iter().map(|e| Some(i64::from(e.type_id))).collect::<Int64Array>()),
            Arc::new(edges.iter().map(|e| Some(e.category.as_str())).collect::<StringArray>()),
            Arc::new(edges.iter().map(|e| e.label.as_deref()).collect::<StringArray>()),
        ];
        let batch = batch_of(&sql::EDGE_COLUMNS, columns, sql::ASSOCIATIONS_TABLE)?;
        let scratch = sql::stage_table_name("edges", rand::random());
        let result = async {
            self.load_scratch(&scratch, &owned(&sql::EDGE_COLUMNS), &batch, sql::ASSOCIATIONS_TABLE).await?;
            self.edge_outcome(from_type, to_type, from_ids, &scratch, synced_at_ms).await
        }
        .await;
        self.discard(&scratch).await;
        result
    }

    async fn replace_dimensions(
        &self,
        batches: &[DimensionBatch],
        synced_at_ms: i64,
        rejects: &[Reject],
        _commit: Option<&Checkpoint>,
    ) -> Result<Vec<DimensionOutcome>, Error> {
        super::check_dimensions(KIND, batches)?;
        let mut outcomes = Vec::with_capacity(batches.len());
        for d in batches {
            outcomes.push(self.replace_dimension(d, synced_at_ms).await?);
        }
        self.insert_rejects(rejects).await?;
        Ok(outcomes)
    }

    async fn live_ids(&self, table: &str) -> Result<Vec<i64>, Error> {
        if self.get_table(table).await?.is_none() {
            return Ok(Vec::new());
        }
        self.read_ids(&format!("read the live ids of {table}"), sql::render_live_ids(self.ds(), table), Vec::new())
            .await
    }

    async fn ids_modified_since(&self, table: &str, since_ms: i64) -> Result<Vec<i64>, Error> {
        if self.get_table(table).await?.is_none() {
            return Ok(Vec::new());
        }
        self.read_ids(
            &format!("read the ids of {table} modified since a time"),
            sql::render_ids_modified_since(self.ds(), table),
            vec![int_param("since", since_ms)],
        )
        .await
    }

    async fn edge_ends(
        &self,
        from_type: &str,
        to_type: &str,
        end: EdgeEnd,
        ids: Option<&[i64]>,
    ) -> Result<Vec<i64>, Error> {
        let mut params = vec![string_param("from_type", from_type), string_param("to_type", to_type)];
        if let Some(ids) = ids {
            params.push(int_array_param("ids", ids));
        }
        self.read_ids(&end.action(from_type, to_type), sql::render_edge_ends(self.ds(), end, ids.is_some()), params)
            .await
    }

    async fn history_versions(&self, object_type: &str, record_ids: &[i64]) -> Result<Vec<StoredVersion>, Error> {
        let action = format!("read the stored history of {} {object_type}", record_ids.len());
        if record_ids.is_empty() {
            return Ok(Vec::new());
        }
        let params = vec![string_param("object_type", object_type), int_array_param("record_ids", record_ids)];
        let rows = self.read_rows(&action, sql::render_history_versions(self.ds()), params).await?;
        let text = |row: &[Option<String>], i: usize| -> Result<Option<String>, Error> {
            Ok(row.get(i).ok_or_else(|| unreadable(&action, "too few columns"))?.clone())
        };
        rows.iter()
            .map(|r| {
                let required = |v: Option<String>| v.ok_or_else(|| unreadable(&action, "a NULL key column"));
                Ok(StoredVersion {
                    record_id: int_at(&action, r, 0)?.ok_or_else(|| unreadable(&action, "a NULL record id"))?,
                    property: required(text(r, 1)?)?,
                    version_id: required(text(r, 2)?)?,
                    value: text(r, 3)?,
                    changed_at_ms: int_at(&action, r, 4)?,
                })
            })
            .collect()
    }

    async fn flag(&self, table: &str, flags: &[RowFlag]) -> Result<u64, Error> {
        if flags.is_empty() {
            return Ok(0);
        }
        let ids: HashSet<i64> = flags.iter().map(|f| f.id).collect();
        if ids.len() != flags.len() {
            return Err(Error::Statement {
                kind: KIND,
                action: format!("flag rows of {table}"),
                detail: "an id is given twice (BigQuery's MERGE refuses two source rows for one target row)".into(),
            });
        }
        let set = |get: fn(&RowFlag) -> bool| -> ArrayRef {
            Arc::new(flags.iter().map(|f| Some(get(f))).collect::<BooleanArray>())
        };
        let instants = |get: fn(&RowFlag) -> Option<i64>| -> ArrayRef {
            Arc::new(TimestampMillisecondArray::from(flags.iter().map(get).collect::<Vec<_>>()).with_timezone("UTC"))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(flags.iter().map(|f| Some(f.id)).collect::<Int64Array>()),
            set(|f| f.archived_at.is_some()),
            instants(|f| f.archived_at.flatten()),
            set(|f| f.merged_into.is_some()),
            Arc::new(flags.iter().map(|f| f.merged_into.flatten()).collect::<Int64Array>()),
            set(|f| f.deleted_at.is_some()),
            instants(|f| f.deleted_at.flatten()),
            instants(|f| f.observed_cursor),
        ];
        let batch = batch_of(&sql::FLAG_COLUMNS, columns, table)?;
        let scratch = sql::stage_table_name("flags", rand::random());
        let result = async {
            self.load_scratch(&scratch, &owned(&sql::FLAG_COLUMNS), &batch, table).await?;
            let changed = self
                .api
                .query(&format!("flag rows of {table}"), sql::render_flag(self.ds(), table, &scratch), Vec::new())
                .await?;
            Ok(changed.affected.unwrap_or(0))
        }
        .await;
        self.discard(&scratch).await;
        result
    }

    async fn id_flags(&self, table: &str) -> Result<Vec<IdFlags>, Error> {
        if self.get_table(table).await?.is_none() {
            return Ok(Vec::new());
        }
        let action = format!("read the ids and flags of {table}");
        let rows = self.read_rows(&action, sql::render_id_flags(self.ds(), table), Vec::new()).await?;
        rows.iter()
            .map(|r| {
                Ok(IdFlags {
                    id: int_at(&action, r, 0)?.ok_or_else(|| unreadable(&action, "a NULL id"))?,
                    cursor: ms_at(&action, r, 1)?,
                    archived_at: ms_at(&action, r, 2)?,
                    merged_into: int_at(&action, r, 3)?,
                    deleted_at: ms_at(&action, r, 4)?,
                })
            })
            .collect()
    }

    async fn read_cells(&self, table: &str, columns: &[String], ids: &[i64]) -> Result<Vec<Cells>, Error> {
        let described = self.describe(table).await?;
        let Some(columns) = super::wanted_columns(KIND, table, described.as_deref(), columns, ids)? else {
            return Ok(Vec::new());
        };
        let action = format!("read {} columns of {} rows of {table}", columns.len(), ids.len());
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let statement = sql::render_read_cells(self.ds(), table, &names);
        let rows = self.read_rows(&action, statement, vec![int_array_param("ids", ids)]).await?;
        cells_of(&action, &columns, &rows)
    }

    async fn query_text(&self, query: &str) -> Result<super::TextRows, Error> {
        // BigQuery has no read-only transaction: the query is checked to be one SELECT first.
        super::read_only_query::check(KIND, query)?;
        let output =
            self.api.query_in("run the push query", query.to_owned(), &self.dataset).await.map_err(query_failure)?;
        types::text_rows(&output.fields, output.rows).map_err(|detail| Error::Query { kind: KIND, detail })
    }
}

/// A push query BigQuery refused is the operator's to fix ([`Error::Query`]); a lost
/// connection, throttling, credentials and privileges keep their own classes.
fn query_failure(e: Error) -> Error {
    match e {
        Error::Statement { detail, .. } | Error::Schema { detail, .. } => Error::Query { kind: KIND, detail },
        other => other,
    }
}

/// One call to the API, for `hsync check`: it answers and takes the credentials. A dataset
/// that does not exist yet is fine here (`prepare` creates it).
pub async fn reach(url: &str, config: &BigQueryConfig) -> Result<(), Error> {
    let dest = BigQueryDestination::connect(url, config).await?;
    match dest.api.client.dataset().get(&dest.api.project, &dest.dataset).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(from_bq("read the dataset", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_project_and_a_dataset() {
        assert_eq!(parse_url("bigquery://my-proj/hub_spot").expect("url"), ("my-proj".into(), "hub_spot".into()));
        assert_eq!(parse_url("bigquery://example.com:proj/d/").expect("url"), ("example.com:proj".into(), "d".into()));
        for bad in ["bigquery://proj", "bigquery:///d", "bigquery://Proj/d", "bigquery://p/has-dash", "postgres://p/d"]
        {
            assert!(matches!(parse_url(bad), Err(Error::Config(_))), "{bad}");
        }
    }
}
