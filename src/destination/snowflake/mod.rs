//! The Snowflake destination: object tables, `_hsync_rejects`, `associations` and the dimension
//! tables in the database and schema `destination.url` names. This module owns the
//! [`Destination`] implementation; the wire protocol is [`client`]'s, statement text
//! [`sql`]'s, type mapping and value binding [`types`]'.
//!
//! # State
//! Snowflake has no transaction hsync could share with its state store, so the destination
//! does not hold hsync's state ([`Destination::holds_state`] is false): the checkpoint given to
//! `merge` and `replace_dimensions` is ignored, and the runner commits it to the local SQLite
//! state file right after the merge returns. A crash in between replays one batch, which the
//! guarded MERGE absorbs.
//!
//! # How a batch lands
//! 1. `stage` creates a **transient table** `_hsync_stage_<table>_<8 hex>` (not a temporary
//!    one: a temporary table lives in one session, while `stage` and `merge` are separate
//!    calls that may run on different sessions of the pool, and concurrent stages would
//!    otherwise queue on one session) and fills it with array-bound INSERTs, in chunks, every
//!    value bound as text ([`types`]).
//! 2. `merge` runs the guarded `MERGE` (newest staged version per id, applied only where the
//!    stored row's `_hsync_cursor` is NULL or not newer), records the rejects (array-bound),
//!    and drops the stage. The MERGE is one statement and atomic on its own; the emulator
//!    cannot run a MERGE inside an explicit transaction, and nothing else needs to share it (a
//!    replayed batch re-records its rejects: the rejects table is a log).
//! 3. `sweep_stages` drops every `_hsync_stage_%` table in the schema (also the scratch tables
//!    of `flag`, `merge_edges` and `replace_dimensions` a crash left behind).
//!
//! `flag`, `merge_edges` and `replace_dimensions` load their rows into scratch tables the same
//! way, then apply them with UPDATE and INSERT statements inside one explicit transaction on
//! one session (`BEGIN` ... `COMMIT`, each its own request: one statement per request).
//!
//! # Reading back
//! Instants are read as `DATE_PART(EPOCH_MILLISECOND, ts)`, so strict Arrow decoding never
//! meets the emulator's NULL timestamp struct (see [`client`]).
//!
//! # Push queries
//! `query_text` runs an operator's query (`hsync push`) after `read_only_query` has checked it
//! is one SELECT (Snowflake has no read-only transaction), on a session whose current schema is
//! the data schema (`USE SCHEMA`), so hsync's tables are reachable unqualified, quoted as they
//! are named (`select "email" from "contacts"`). Every chunk of a large result is read
//! ([`client`]); values become text by [`types::query_text`].

pub mod client;
#[cfg(feature = "test-support")]
mod inspect;
pub mod sql;
pub mod types;

use std::fmt;

use arrow::record_batch::RecordBatch;

use self::client::{Bindings, Client, ClientConfig, Credentials, Session, Value};
use self::sql::Location;
use super::{
    Destination, DimensionOutcome, Edge, EdgeEnd, EdgeOutcome, Error, IdFlags, MergeOutcome, Row as Cells, RowFlag,
    Stage, StoredVersion,
};
use crate::config::DestinationConfig;
use crate::schema::dimension::{DimensionBatch, DIMENSION_TABLES};
use crate::schema::{
    column_type_of, hsync_columns, Change, Column, ColumnBudget, ColumnType, ExistingColumn, Reject, SchemaPlan,
    TableSchema,
};
use crate::state::Checkpoint;

const KIND: crate::config::DestinationKind = crate::config::DestinationKind::Snowflake;
/// Bound values per INSERT request (rows × columns): keeps each request a few megabytes.
const BIND_VALUES_PER_REQUEST: usize = 20_000;

/// Snowflake tables take far more columns than HubSpot has properties; hsync stops at 1,500
/// like Postgres, so wide portals overflow identically everywhere.
pub const COLUMN_BUDGET: ColumnBudget = ColumnBudget(1_500);

/// A Snowflake schema hsync writes to.
#[derive(Clone)]
pub struct SnowflakeDestination {
    client: Client,
    location: Location,
}

impl fmt::Debug for SnowflakeDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnowflakeDestination").field("client", &self.client).field("location", &self.location).finish()
    }
}

/// Decodes `%XX` escapes (user names and passwords in the URL).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A database or schema name from the URL, as Snowflake resolves an unquoted name: a plain
/// identifier (letters, digits, `_`, `$`, not starting with a digit) is upper-cased; anything
/// else is taken verbatim (as if quoted).
pub fn object_name(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if plain {
        name.to_ascii_uppercase()
    } else {
        name.to_owned()
    }
}

/// What `destination.url` names: user, password (when given there), account, database, schema,
/// warehouse and role.
#[derive(Clone, PartialEq, Eq)]
pub struct SnowflakeUrl {
    pub user: String,
    pub password: Option<String>,
    pub account: String,
    pub database: String,
    pub schema: String,
    pub warehouse: Option<String>,
    pub role: Option<String>,
}

impl fmt::Debug for SnowflakeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnowflakeUrl")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("account", &self.account)
            .field("database", &self.database)
            .field("schema", &self.schema)
            .field("warehouse", &self.warehouse)
            .field("role", &self.role)
            .finish()
    }
}

impl SnowflakeUrl {
    /// Parses `snowflake://USER[:PASSWORD]@ACCOUNT/DATABASE/SCHEMA[?warehouse=W&role=R]`.
    pub fn parse(url: &str) -> Result<SnowflakeUrl, Error> {
        let bad = |what: &str| {
            Error::Config(format!(
                "a Snowflake URL is snowflake://USER@ACCOUNT/DATABASE/SCHEMA?warehouse=W&role=R; {what}"
            ))
        };
        let rest = url.strip_prefix("snowflake://").ok_or_else(|| bad("it must start with snowflake://"))?;
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = main.split_once('/').ok_or_else(|| bad("the database and schema are missing"))?;
        let (userinfo, account) = authority.rsplit_once('@').ok_or_else(|| bad("the user is missing"))?;
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (percent_decode(u), Some(percent_decode(p))),
            None => (percent_decode(userinfo), None),
        };
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let [database, schema] = parts[..] else { return Err(bad("give exactly a database and a schema")) };
        if user.is_empty() || account.is_empty() || database.is_empty() || schema.is_empty() {
            return Err(bad("the user, account, database and schema must not be empty"));
        }
        let mut parsed = SnowflakeUrl {
            user,
            password,
            account: account.to_owned(),
            database: object_name(&percent_decode(database)),
            schema: object_name(&percent_decode(schema)),
            warehouse: None,
            role: None,
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "warehouse" => parsed.warehouse = Some(value.into_owned()),
                "role" => parsed.role = Some(value.into_owned()),
                other => return Err(bad(&format!("the parameter {other:?} is not one hsync knows"))),
            }
        }
        Ok(parsed)
    }
}

fn value_text(v: Value) -> Option<String> {
    v.into_text()
}

fn chunk_rows(columns: usize) -> usize {
    (BIND_VALUES_PER_REQUEST / columns.max(1)).max(1)
}

/// Array-binds `columns` (one vector of values per column, all the same length) into an INSERT,
/// in chunks of rows; returns the rows inserted.
async fn insert_columns(
    session: &mut Session,
    statement: &str,
    columns: &[Vec<Option<String>>],
    action: &str,
) -> Result<u64, Error> {
    let rows = columns.first().map_or(0, Vec::len);
    let mut inserted = 0;
    let step = chunk_rows(columns.len());
    let mut start = 0;
    while start < rows {
        let end = (start + step).min(rows);
        let chunk: Vec<Vec<Option<String>>> = columns.iter().map(|c| c[start..end].to_vec()).collect();
        inserted += session.query(statement, &Bindings::Array(chunk), action).await?.count("number of rows inserted");
        start = end;
    }
    Ok(inserted)
}

fn instant(ms: i64, action: &str) -> Result<String, Error> {
    types::iso_ms(ms).ok_or_else(|| Error::Statement {
        kind: KIND,
        action: action.to_owned(),
        detail: "a time is out of range".to_owned(),
    })
}

impl SnowflakeDestination {
    /// A destination over an explicit client configuration.
    pub fn new(config: ClientConfig) -> Result<SnowflakeDestination, Error> {
        let location = Location { database: config.database.clone(), schema: config.schema.clone() };
        Ok(SnowflakeDestination { client: Client::new(config)?, location })
    }

    /// The client configuration `destination` describes: the URL, then the key file
    /// (key-pair login) or the password (from the URL, else the `password_env` variable).
    pub fn client_config(destination: &DestinationConfig) -> Result<ClientConfig, Error> {
        let url = SnowflakeUrl::parse(destination.url.expose())?;
        let settings = &destination.snowflake;
        let credentials = match (&settings.private_key_file, &url.password) {
            (Some(path), _) => {
                let pem = std::fs::read_to_string(path).map_err(|e| {
                    Error::Config(format!(
                        "cannot read the Snowflake private key {}: {e}; check destination.snowflake.private_key_file",
                        path.display()
                    ))
                })?;
                Credentials::key_pair(&pem)?
            }
            (None, Some(password)) => Credentials::Password(password.clone()),
            (None, None) => Credentials::Password(std::env::var(&settings.password_env).map_err(|_| {
                Error::Config(format!(
                    "no Snowflake credentials: set destination.snowflake.private_key_file, or put the password in \
                     the environment variable {}",
                    settings.password_env
                ))
            })?),
        };
        let endpoint = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{}.snowflakecomputing.com", url.account))
            .trim_end_matches('/')
            .to_owned();
        Ok(ClientConfig {
            endpoint,
            account: url.account,
            user: url.user,
            database: url.database,
            schema: url.schema,
            warehouse: url.warehouse,
            role: url.role,
            credentials,
        })
    }

    pub fn from_config(destination: &DestinationConfig) -> Result<SnowflakeDestination, Error> {
        SnowflakeDestination::new(Self::client_config(destination)?)
    }

    /// One login, no retries (`hsync check`).
    pub async fn reach(destination: &DestinationConfig) -> Result<(), Error> {
        Client::new(Self::client_config(destination)?)?.reach().await
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The client, for statements outside the [`Destination`] contract (tests, `hsync verify`).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Proves hsync may create, write and drop a table in the schema (`hsync check`).
    pub async fn probe_write(&self) -> Result<(), Error> {
        let table = format!("{}{:08x}", super::PROBE_PREFIX, rand::random::<u32>());
        let scratch = TableSchema {
            name: table.clone(),
            columns: vec![Column::hsync(hsync_columns::ID, ColumnType::BigInt)],
            overflow: Vec::new(),
            retired: Vec::new(),
        };
        let mut session = self.client.session().await?;
        let action = format!("create, write and drop {table}");
        session.query(&sql::render_create_table(&self.location, &scratch), &Bindings::None, &action).await?;
        let written = session
            .query(
                &sql::render_insert_id(&self.location, &table),
                &Bindings::Positional(vec![Some("1".to_owned())]),
                &action,
            )
            .await
            .map(|r| r.count("number of rows inserted"));
        let dropped = session.query(&sql::render_drop_table(&self.location, &table), &Bindings::None, &action).await;
        match (written?, dropped) {
            (1, Ok(_)) => Ok(()),
            (_, Err(e)) => Err(e),
            (n, Ok(_)) => {
                Err(Error::Statement { kind: KIND, action, detail: format!("{n} rows written instead of 1") })
            }
        }
    }

    async fn list_stages(&self) -> Result<Vec<String>, Error> {
        let result = self
            .client
            .query(
                &sql::render_list_stages(&self.location),
                &Bindings::Positional(vec![Some(self.location.schema.clone()), Some(sql::STAGE_PREFIX.to_owned())]),
                "list staging tables",
            )
            .await?;
        Ok(result.rows.into_iter().filter_map(|r| r.into_iter().next().and_then(value_text)).collect())
    }

    /// Creates a scratch table and fills it; the caller drops it.
    async fn load_scratch(
        &self,
        session: &mut Session,
        name: &str,
        columns: &[(&str, &str)],
        values: &[Vec<Option<String>>],
        action: &str,
    ) -> Result<(), Error> {
        session.query(&sql::render_create_scratch(&self.location, name, columns), &Bindings::None, action).await?;
        let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
        insert_columns(session, &sql::render_insert_rows(&self.location, name, &names), values, action).await?;
        Ok(())
    }

    /// Drops scratch tables, logging (not failing) when one cannot be dropped: the start-up
    /// sweep removes it.
    async fn drop_scratch(&self, session: &mut Session, names: &[&str]) {
        for name in names {
            let action = format!("drop scratch table {name}");
            if let Err(e) = session.query(&sql::render_drop_table(&self.location, name), &Bindings::None, &action).await
            {
                tracing::warn!(table = %name, error = %e, "could not drop a scratch table; the next stage sweep will");
            }
        }
    }

    async fn insert_rejects(&self, session: &mut Session, rejects: &[Reject], action: &str) -> Result<(), Error> {
        if rejects.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&Reject) -> &str| rejects.iter().map(|r| Some(f(r).to_owned())).collect::<Vec<_>>();
        let columns = [
            column(|r| &r.object),
            column(|r| &r.id),
            column(|r| &r.property),
            column(|r| &r.raw),
            column(|r| &r.reason),
        ];
        insert_columns(session, &sql::render_insert_rejects(&self.location), &columns, action).await?;
        Ok(())
    }

    async fn merge_stage(
        &self,
        session: &mut Session,
        stage: &Stage,
        rejects: &[Reject],
    ) -> Result<MergeOutcome, Error> {
        let table = stage.table.as_str();
        let action = format!("merge into {table}");
        let existing = self.describe(table).await?.ok_or_else(|| Error::Schema {
            kind: KIND,
            table: table.to_owned(),
            detail: "the table does not exist; hsync creates it before merging, so it was dropped meanwhile".to_owned(),
        })?;
        let columns: Vec<(String, ColumnType)> = stage
            .columns
            .iter()
            .map(|c| (c.clone(), existing.iter().find(|e| e.name == *c).map_or(ColumnType::Text, |e| e.ty)))
            .collect();
        let merged = session
            .query(&sql::render_merge(&self.location, table, &stage.stage_table, &columns), &Bindings::None, &action)
            .await?;
        self.insert_rejects(session, rejects, &format!("record rejects for {table}")).await?;
        let written = merged.written();
        Ok(MergeOutcome { written, skipped: stage.rows.saturating_sub(written) })
    }

    async fn ids(&self, statement: &str, bindings: Bindings, action: &str) -> Result<Vec<i64>, Error> {
        let result = self.client.query(statement, &bindings, action).await?;
        result
            .rows
            .into_iter()
            .map(|r| {
                r.first().and_then(Value::as_i64).ok_or_else(|| Error::Statement {
                    kind: KIND,
                    action: action.to_owned(),
                    detail: "an id is not an integer".to_owned(),
                })
            })
            .collect()
    }
}

impl Destination for SnowflakeDestination {
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
        let action = "create hsync's tables";
        let mut session = self.client.session().await?;
        let schema = sql::render_create_schema(&self.location);
        if let Err(first) = session.query(&schema, &Bindings::None, action).await {
            // A missing database: create it (needs the privilege), then the schema.
            if !matches!(&first, Error::Statement { detail, .. } if detail.starts_with("002003")) {
                return Err(first);
            }
            session.query(&sql::render_create_database(&self.location), &Bindings::None, action).await?;
            session.query(&schema, &Bindings::None, action).await?;
        }
        let statements = [
            sql::render_create_rejects(&self.location),
            sql::render_create_associations(&self.location),
            sql::render_create_associations_live(&self.location),
        ]
        .into_iter()
        .chain(DIMENSION_TABLES.iter().map(|t| sql::render_create_dimension(&self.location, t)))
        .chain([sql::render_replace_history_spans(&self.location)]);
        for s in statements {
            session.query(&s, &Bindings::None, action).await?;
        }
        Ok(())
    }

    async fn healthcheck(&self) -> Result<(), Error> {
        self.client.query("SELECT 1", &Bindings::None, "healthcheck").await.map(|_| ())
    }

    async fn describe(&self, table: &str) -> Result<Option<Vec<ExistingColumn>>, Error> {
        let result = self
            .client
            .query(
                &sql::render_describe(&self.location),
                &Bindings::Positional(vec![Some(self.location.schema.clone()), Some(table.to_owned())]),
                &format!("describe {table}"),
            )
            .await?;
        if result.rows.is_empty() {
            return Ok(None);
        }
        result
            .rows
            .into_iter()
            .map(|row| {
                let mut cells = row.into_iter();
                let name = cells.next().and_then(value_text).unwrap_or_default();
                let data_type = cells.next().and_then(value_text).unwrap_or_default();
                let length = cells.next().and_then(|v| v.as_i64());
                let scale = cells.next().and_then(|v| v.as_i64());
                match types::column_type_of_sf(&data_type, length, scale) {
                    Some(ty) => Ok(ExistingColumn { name, ty }),
                    None => Err(Error::Schema {
                        kind: KIND,
                        table: table.to_owned(),
                        detail: format!(
                            "column {name} has type {data_type}, which hsync does not write; change it back to one of \
                             VARCHAR, VARCHAR(80) (decimals), BOOLEAN, DATE, TIMESTAMP_TZ, VARIANT or NUMBER(38,0)"
                        ),
                    }),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    async fn alter(&self, plan: &SchemaPlan) -> Result<(), Error> {
        let table = plan.table.as_str();
        for change in &plan.changes {
            if let Change::Widen { column, from, to } = change {
                if sql::render_widen(&self.location, table, column, *from, *to).is_none() {
                    return Err(Error::Schema {
                        kind: KIND,
                        table: table.to_owned(),
                        detail: format!(
                            "column {column} must change from {} to {}, which Snowflake cannot do in place; add a \
                             new column, copy the values with a cast, drop the old column and rename the new one, \
                             then run hsync again",
                            types::sf_type(*from),
                            types::sf_type(*to)
                        ),
                    });
                }
            }
        }
        let statements = sql::render_plan(&self.location, plan);
        if statements.is_empty() {
            return Ok(());
        }
        let action = format!("alter {table}");
        let mut session = self.client.session().await?;
        for s in statements {
            session.query(&s, &Bindings::None, &action).await.map_err(|e| match e {
                Error::Statement { detail, .. } => Error::Schema { kind: KIND, table: table.to_owned(), detail },
                other => other,
            })?;
        }
        Ok(())
    }

    async fn stage(&self, table: &str, batch: &RecordBatch) -> Result<Stage, Error> {
        let schema = batch.schema();
        let columns: Vec<(String, ColumnType)> =
            schema.fields().iter().map(|f| (f.name().clone(), column_type_of(f.data_type(), f.name()))).collect();
        super::check_batch_keys(KIND, table, batch)?;
        let values: Vec<Vec<Option<String>>> = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(f, a)| types::encode_column(f.name(), a.as_ref()))
            .collect::<Result<_, _>>()
            .map_err(|e| Error::Schema { kind: KIND, table: table.to_owned(), detail: e.to_string() })?;
        let stage_table = sql::stage_table_name(table, rand::random());
        let action = format!("stage a batch for {table}");
        let mut session = self.client.session().await?;
        let loaded =
            self.load_scratch(&mut session, &stage_table, &sql::stage_columns(&columns), &values, &action).await;
        if let Err(e) = loaded {
            self.drop_scratch(&mut session, &[&stage_table]).await;
            return Err(e);
        }
        Ok(Stage {
            table: table.to_owned(),
            stage_table,
            columns: columns.into_iter().map(|(c, _)| c).collect(),
            rows: batch.num_rows() as u64,
        })
    }

    async fn merge(
        &self,
        stage: Stage,
        rejects: &[Reject],
        _commit: Option<&Checkpoint>,
    ) -> Result<MergeOutcome, Error> {
        stage.check_keys(KIND)?;
        let mut session = self.client.session().await?;
        let outcome = self.merge_stage(&mut session, &stage, rejects).await;
        // Merged or not, the stage is done with (a failed merge is staged anew by the caller).
        self.drop_scratch(&mut session, &[&stage.stage_table]).await;
        outcome
    }

    async fn sweep_stages(&self) -> Result<u64, Error> {
        let stages = self.list_stages().await?;
        let mut session = self.client.session().await?;
        for stage in &stages {
            let action = format!("drop staging table {stage}");
            session.query(&sql::render_drop_table(&self.location, stage), &Bindings::None, &action).await?;
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
        let action = format!("merge association edges from {from_type} to {to_type}");
        let edges = super::edges_by_key(KIND, from_ids, edges)?;
        if from_ids.is_empty() {
            return Ok(EdgeOutcome::default());
        }
        let synced_at = instant(synced_at_ms, &action)?;
        let text = |v: String| Some(v);
        let edge_values: Vec<Vec<Option<String>>> = vec![
            edges.iter().map(|e| text(e.from_id.to_string())).collect(),
            edges.iter().map(|e| text(e.to_id.to_string())).collect(),
            edges.iter().map(|e| text(e.type_id.to_string())).collect(),
            edges.iter().map(|e| text(e.category.clone())).collect(),
            edges.iter().map(|e| e.label.clone()).collect(),
        ];
        let id_values = vec![from_ids.iter().map(|id| text(id.to_string())).collect::<Vec<_>>()];
        let suffix: u32 = rand::random();
        let (edge_table, id_table) = (sql::stage_table_name("edges", suffix), sql::stage_table_name("ids", suffix));
        let mut session = self.client.session().await?;
        let outcome = async {
            self.load_scratch(&mut session, &edge_table, &sql::EDGE_COLUMNS, &edge_values, &action).await?;
            self.load_scratch(&mut session, &id_table, &sql::ID_COLUMNS, &id_values, &action).await?;
            let (from, to) = (Some(from_type.to_owned()), Some(to_type.to_owned()));
            let at = Some(synced_at.clone());
            session.begin().await?;
            let updated = session
                .query(
                    &sql::render_update_edges(&self.location, &edge_table),
                    &Bindings::Positional(vec![at.clone(), from.clone(), to.clone()]),
                    &action,
                )
                .await?
                .count("number of rows updated");
            let inserted = session
                .query(
                    &sql::render_insert_edges(&self.location, &edge_table),
                    &Bindings::Positional(vec![from.clone(), to.clone(), at.clone(), from.clone(), to.clone()]),
                    &action,
                )
                .await?
                .count("number of rows inserted");
            let tombstoned = session
                .query(
                    &sql::render_tombstone_edges(&self.location, &edge_table, &id_table),
                    &Bindings::Positional(vec![at.clone(), at, from, to]),
                    &action,
                )
                .await?
                .count("number of rows updated");
            session.commit().await?;
            Ok(EdgeOutcome { upserted: updated + inserted, tombstoned })
        }
        .await;
        if outcome.is_err() {
            session.rollback().await;
        }
        self.drop_scratch(&mut session, &[&edge_table, &id_table]).await;
        outcome
    }

    async fn replace_dimensions(
        &self,
        batches: &[DimensionBatch],
        synced_at_ms: i64,
        rejects: &[Reject],
        _commit: Option<&Checkpoint>,
    ) -> Result<Vec<DimensionOutcome>, Error> {
        let action = "replace the owners and pipelines tables";
        super::check_dimensions(KIND, batches)?;
        let synced_at = Some(instant(synced_at_ms, action)?);
        // Encoded up front: a value that cannot be bound fails before anything is written.
        let encoded: Vec<Vec<Vec<Option<String>>>> = batches
            .iter()
            .map(|d| {
                d.batch
                    .schema()
                    .fields()
                    .iter()
                    .zip(d.batch.columns())
                    .map(|(f, a)| types::encode_column(f.name(), a.as_ref()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Error::Schema { kind: KIND, table: d.table.name.to_owned(), detail: e.to_string() })
            })
            .collect::<Result<_, _>>()?;
        let suffix: u32 = rand::random();
        let scratch: Vec<String> = batches.iter().map(|d| sql::stage_table_name(d.table.name, suffix)).collect();
        let mut session = self.client.session().await?;
        let outcome = async {
            for ((d, values), name) in batches.iter().zip(&encoded).zip(&scratch) {
                let columns = sql::dimension_scratch_columns(d.table);
                self.load_scratch(&mut session, name, &columns, values, action).await?;
            }
            session.begin().await?;
            let mut outcomes = Vec::with_capacity(batches.len());
            for (d, name) in batches.iter().zip(&scratch) {
                let at = Bindings::Positional(vec![synced_at.clone()]);
                let table_action = format!("replace the {} table", d.table.name);
                session.query(&sql::render_update_dimension(&self.location, d.table, name), &at, &table_action).await?;
                session.query(&sql::render_insert_dimension(&self.location, d.table, name), &at, &table_action).await?;
                let removed = if d.table.complete_lists {
                    session
                        .query(&sql::render_remove_missing_dimension(&self.location, d.table, name), &at, &table_action)
                        .await?
                        .count("number of rows updated")
                } else {
                    0
                };
                outcomes.push(DimensionOutcome { table: d.table.name, rows: d.batch.num_rows() as u64, removed });
            }
            self.insert_rejects(&mut session, rejects, "record dimension rejects").await?;
            session.commit().await?;
            Ok(outcomes)
        }
        .await;
        if outcome.is_err() {
            session.rollback().await;
        }
        let names: Vec<&str> = scratch.iter().map(String::as_str).collect();
        self.drop_scratch(&mut session, &names).await;
        outcome
    }

    async fn live_ids(&self, table: &str) -> Result<Vec<i64>, Error> {
        if self.describe(table).await?.is_none() {
            return Ok(Vec::new());
        }
        self.ids(&sql::render_live_ids(&self.location, table), Bindings::None, &format!("read the live ids of {table}"))
            .await
    }

    async fn ids_modified_since(&self, table: &str, since_ms: i64) -> Result<Vec<i64>, Error> {
        let action = format!("read the ids of {table} modified since a time");
        if self.describe(table).await?.is_none() {
            return Ok(Vec::new());
        }
        let since = instant(since_ms, &action)?;
        self.ids(
            &sql::render_ids_modified_since(&self.location, table),
            Bindings::Positional(vec![Some(since)]),
            &action,
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
        let action = end.action(from_type, to_type);
        let types = vec![Some(from_type.to_owned()), Some(to_type.to_owned())];
        let Some(to_ids) = ids else {
            return self
                .ids(&sql::render_edge_ends(&self.location, end, 0), Bindings::Positional(types), &action)
                .await;
        };
        // Bound as an IN list, in chunks under Snowflake's expression-list limit.
        let mut found = std::collections::BTreeSet::new();
        for chunk in to_ids.chunks(1_000) {
            let mut bindings = types.clone();
            bindings.extend(chunk.iter().map(|id| Some(id.to_string())));
            let ids = self
                .ids(&sql::render_edge_ends(&self.location, end, chunk.len()), Bindings::Positional(bindings), &action)
                .await?;
            found.extend(ids);
        }
        Ok(found.into_iter().collect())
    }

    async fn history_versions(&self, object_type: &str, record_ids: &[i64]) -> Result<Vec<StoredVersion>, Error> {
        let action = format!("read the stored history of {} {object_type}", record_ids.len());
        let mut versions = Vec::new();
        // Bound as an IN list, in chunks under Snowflake's expression-list limit.
        for chunk in record_ids.chunks(1_000) {
            let mut bindings = vec![Some(object_type.to_owned())];
            bindings.extend(chunk.iter().map(|id| Some(id.to_string())));
            let sql = sql::render_history_versions(&self.location, chunk.len());
            let result = self.client.query(&sql, &Bindings::Positional(bindings), &action).await?;
            for row in result.rows {
                let text = |i: usize| row.get(i).cloned().and_then(Value::into_text);
                let required = |i: usize| {
                    text(i).ok_or_else(|| Error::Statement {
                        kind: KIND,
                        action: action.clone(),
                        detail: format!("a stored version has no value in column {}", i + 1),
                    })
                };
                versions.push(StoredVersion {
                    record_id: row.first().and_then(Value::as_i64).ok_or_else(|| Error::Statement {
                        kind: KIND,
                        action: action.clone(),
                        detail: "a stored version has no record id".to_owned(),
                    })?,
                    property: required(1)?,
                    version_id: required(2)?,
                    value: text(3),
                    changed_at_ms: row.get(4).and_then(Value::as_i64),
                });
            }
        }
        Ok(versions)
    }

    async fn flag(&self, table: &str, flags: &[RowFlag]) -> Result<u64, Error> {
        if flags.is_empty() {
            return Ok(0);
        }
        let action = format!("flag rows of {table}");
        let time = |ms: Option<i64>| ms.map(|ms| instant(ms, &action)).transpose();
        let times = |get: fn(&RowFlag) -> Option<i64>| -> Result<Vec<Option<String>>, Error> {
            flags.iter().map(|f| time(get(f))).collect()
        };
        let set = |get: fn(&RowFlag) -> bool| -> Vec<Option<String>> {
            flags.iter().map(|f| Some(get(f).to_string())).collect()
        };
        let values = vec![
            flags.iter().map(|f| Some(f.id.to_string())).collect(),
            set(|f| f.archived_at.is_some()),
            times(|f| f.archived_at.flatten())?,
            set(|f| f.merged_into.is_some()),
            flags.iter().map(|f| f.merged_into.flatten().map(|v| v.to_string())).collect(),
            set(|f| f.deleted_at.is_some()),
            times(|f| f.deleted_at.flatten())?,
            times(|f| f.observed_cursor)?,
        ];
        let scratch = sql::stage_table_name("flags", rand::random());
        let mut session = self.client.session().await?;
        let outcome = async {
            self.load_scratch(&mut session, &scratch, &sql::flag_columns(), &values, &action).await?;
            session.begin().await?;
            let inserted = session
                .query(&sql::render_flag_insert(&self.location, table, &scratch), &Bindings::None, &action)
                .await?
                .count("number of rows inserted");
            let updated = session
                .query(&sql::render_flag_update(&self.location, table, &scratch), &Bindings::None, &action)
                .await?
                .count("number of rows updated");
            session.commit().await?;
            Ok(inserted + updated)
        }
        .await;
        if outcome.is_err() {
            session.rollback().await;
        }
        self.drop_scratch(&mut session, &[&scratch]).await;
        outcome
    }

    async fn id_flags(&self, table: &str) -> Result<Vec<IdFlags>, Error> {
        if self.describe(table).await?.is_none() {
            return Ok(Vec::new());
        }
        let action = format!("read the ids and flags of {table}");
        let result = self.client.query(&sql::render_id_flags(&self.location, table), &Bindings::None, &action).await?;
        result
            .rows
            .into_iter()
            .map(|row| {
                let get = |i: usize| row.get(i).and_then(Value::as_i64);
                Ok(IdFlags {
                    id: get(0).ok_or_else(|| Error::Statement {
                        kind: KIND,
                        action: action.clone(),
                        detail: "a row has no id".to_owned(),
                    })?,
                    cursor: get(1),
                    archived_at: get(2),
                    merged_into: get(3),
                    deleted_at: get(4),
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
        let mut rows = Vec::new();
        // Bound as an IN list, in chunks under Snowflake's expression-list limit.
        for chunk in ids.chunks(1_000) {
            let statement = sql::render_read_cells(&self.location, table, &columns, chunk.len());
            let bindings = Bindings::Positional(chunk.iter().map(|id| Some(id.to_string())).collect());
            let result = self.client.query(&statement, &bindings, &action).await?;
            rows.extend(cells_of(table, &columns, result.rows)?);
        }
        Ok(rows)
    }

    async fn query_text(&self, query: &str) -> Result<super::TextRows, Error> {
        // Snowflake has no read-only transaction: the query is checked to be one SELECT first.
        super::read_only_query::check(KIND, query)?;
        let mut session = self.client.session().await?;
        session.query(&sql::render_use_schema(&self.location), &Bindings::None, "use the data schema").await?;
        let result = session.query(query, &Bindings::None, "run the push query").await.map_err(query_failure)?;
        let columns: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
        let rows = result
            .rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .zip(&result.columns)
                    .map(|(value, column)| {
                        types::query_text(value, &column.ty).map_err(|()| Error::Query {
                            kind: KIND,
                            detail: format!("column {} holds a {} value out of range", column.name, column.ty),
                        })
                    })
                    .collect()
            })
            .collect::<Result<_, Error>>()?;
        Ok(super::TextRows { columns, rows })
    }
}

/// A push query Snowflake refused is the operator's to fix ([`Error::Query`]); a lost
/// connection, throttling, credentials and privileges keep their own classes.
fn query_failure(e: Error) -> Error {
    match e {
        Error::Statement { detail, .. } | Error::Schema { detail, .. } => Error::Query { kind: KIND, detail },
        other => other,
    }
}

/// Rows read for `columns` of `table` (in that order, by [`types::read_expr`]), as [`Cells`].
fn cells_of(table: &str, columns: &[ExistingColumn], rows: Vec<Vec<Value>>) -> Result<Vec<Cells>, Error> {
    rows.into_iter()
        .map(|row| {
            columns
                .iter()
                .zip(row)
                .map(|(c, v)| Ok((c.name.clone(), types::cell_of(v, c.ty, table, &c.name)?)))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_snowflake_name_resolution() {
        let url = SnowflakeUrl::parse(
            "snowflake://loader:s%40cret@xy12345.us-east-1/analytics/Hub%20Spot?warehouse=LOAD&role=SYNC",
        )
        .unwrap();
        assert_eq!(url.user, "loader");
        assert_eq!(url.password.as_deref(), Some("s@cret"));
        assert_eq!(url.account, "xy12345.us-east-1");
        assert_eq!((url.database.as_str(), url.schema.as_str()), ("ANALYTICS", "Hub Spot"));
        assert_eq!((url.warehouse.as_deref(), url.role.as_deref()), (Some("LOAD"), Some("SYNC")));
        assert!(!format!("{url:?}").contains("s@cret"));
        for bad in
            ["postgres://a@b/c/d", "snowflake://acct/db/schema", "snowflake://u@acct/db", "snowflake://u@a/d/s?x=1"]
        {
            assert!(matches!(SnowflakeUrl::parse(bad), Err(Error::Config(_))), "{bad}");
        }
    }

    #[test]
    fn percent_escapes_decode() {
        assert_eq!(percent_decode("a%2Fb%"), "a/b%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
