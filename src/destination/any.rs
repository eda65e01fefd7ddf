//! Runtime choice of destination from the configured URL: a closed enum that dispatches to the
//! concrete destinations (and their state stores), so the rest of hsync stays generic.

use arrow::record_batch::RecordBatch;

#[cfg(feature = "bigquery")]
use super::bigquery::BigQueryDestination;
#[cfg(feature = "parquet")]
use super::parquet::ParquetDestination;
use super::postgres::{PostgresDestination, PostgresStateStore};
#[cfg(feature = "snowflake")]
use super::snowflake::SnowflakeDestination;
use super::sqlite::{SqliteDestination, SqliteStateStore};
use super::{
    Destination, DimensionOutcome, Edge, EdgeEnd, EdgeOutcome, Error, IdFlags, MergeOutcome, Row, RowFlag, Stage,
    StoredVersion,
};
use crate::config::{DestinationConfig, DestinationKind};
use crate::hubspot::{BoxFuture, BudgetRecord, BudgetStore, StoreError};
use crate::schema::dimension::DimensionBatch;
use crate::schema::{Change, ColumnBudget, ExistingColumn, Reject, SchemaPlan};
use crate::state::{
    Checkpoint, ColumnMap, Enqueued, Error as StateError, EventBacklog, PendingEvent, PropertySnapshot, QueuedEvent,
    RunRecord, StateStore,
};

/// The configured destination (cloning shares its connection pool).
#[derive(Clone, Debug)]
pub enum AnyDestination {
    Sqlite(SqliteDestination),
    Postgres(PostgresDestination),
    /// A directory of Parquet files, with hsync's state in a local SQLite file.
    #[cfg(feature = "parquet")]
    Parquet(ParquetDestination, LocalState),
    /// Snowflake, with hsync's state in the local state file.
    #[cfg(feature = "snowflake")]
    Snowflake(SnowflakeDestination, LocalState),
    /// BigQuery, with hsync's state in the local state file.
    #[cfg(feature = "bigquery")]
    BigQuery(Box<BigQueryDestination>, LocalState),
}

/// The state store that lives in the configured destination.
#[derive(Clone, Debug)]
pub enum AnyStateStore {
    Sqlite(SqliteStateStore),
    Postgres(PostgresStateStore),
}

impl AnyDestination {
    /// Connects to the destination `config.url` names.
    pub async fn connect(config: &DestinationConfig) -> Result<AnyDestination, Error> {
        let url = config.url.expose();
        match config.kind() {
            Some(DestinationKind::Sqlite) => Ok(AnyDestination::Sqlite(SqliteDestination::connect(url).await?)),
            Some(DestinationKind::Postgres) => Ok(AnyDestination::Postgres(
                PostgresDestination::connect(url, &config.schema, &config.state_schema).await?,
            )),
            #[cfg(feature = "parquet")]
            Some(DestinationKind::Parquet) => {
                Ok(AnyDestination::Parquet(ParquetDestination::connect(url)?, LocalState::open(config).await?))
            }
            #[cfg(feature = "snowflake")]
            Some(DestinationKind::Snowflake) => Ok(AnyDestination::Snowflake(
                SnowflakeDestination::from_config(config)?,
                LocalState::open(config).await?,
            )),
            #[cfg(feature = "bigquery")]
            Some(DestinationKind::BigQuery) => Ok(AnyDestination::BigQuery(
                Box::new(BigQueryDestination::connect(url, &config.bigquery).await?),
                LocalState::open(config).await?,
            )),
            #[cfg(not(all(feature = "parquet", feature = "snowflake", feature = "bigquery")))]
            Some(kind) => Err(not_built(kind)),
            None => Err(Error::Config(format!(
                "{} names no destination hsync knows; see destination.url in deploy/hsync.example.toml",
                config.url.redacted()
            ))),
        }
    }

    /// One connection attempt without retries, so `hsync check` reports a server that is down
    /// at once. A SQLite file has no server: [`AnyDestination::connect`] reports a missing
    /// directory or an unwritable file without retrying.
    pub async fn reach(config: &DestinationConfig) -> Result<(), Error> {
        let url = config.url.expose();
        match config.kind() {
            Some(DestinationKind::Postgres) => super::postgres::reach(url).await,
            #[cfg(feature = "snowflake")]
            Some(DestinationKind::Snowflake) => SnowflakeDestination::reach(config).await,
            #[cfg(feature = "bigquery")]
            Some(DestinationKind::BigQuery) => super::bigquery::reach(url, &config.bigquery).await,
            #[cfg(feature = "parquet")]
            Some(DestinationKind::Parquet) => super::parquet::reach(url),
            Some(DestinationKind::Sqlite) | None => Ok(()),
            // `connect` says the kind was not built in.
            #[cfg(not(all(feature = "parquet", feature = "snowflake", feature = "bigquery")))]
            Some(_) => Ok(()),
        }
    }

    /// The state store in the same database.
    pub fn state_store(&self) -> AnyStateStore {
        match self {
            AnyDestination::Sqlite(d) => AnyStateStore::Sqlite(d.state_store()),
            AnyDestination::Postgres(d) => AnyStateStore::Postgres(d.state_store()),
            #[cfg(feature = "parquet")]
            AnyDestination::Parquet(_, local) => AnyStateStore::Sqlite(local.store.clone()),
            #[cfg(feature = "snowflake")]
            AnyDestination::Snowflake(_, local) => AnyStateStore::Sqlite(local.store.clone()),
            #[cfg(feature = "bigquery")]
            AnyDestination::BigQuery(_, local) => AnyStateStore::Sqlite(local.store.clone()),
        }
    }

    /// Proves hsync may create, write and drop a table where object tables go (`hsync check`);
    /// leaves nothing behind.
    pub async fn probe_write(&self) -> Result<(), Error> {
        match self {
            AnyDestination::Sqlite(d) => d.probe_write().await,
            AnyDestination::Postgres(d) => d.probe_write().await,
            #[cfg(feature = "parquet")]
            AnyDestination::Parquet(d, _) => d.probe_write().await,
            #[cfg(feature = "snowflake")]
            AnyDestination::Snowflake(d, _) => d.probe_write().await,
            #[cfg(feature = "bigquery")]
            AnyDestination::BigQuery(d, _) => d.probe_write().await,
        }
    }

    /// The statements `alter` would run for a plan, for `hsync schema-diff`.
    pub fn render_alter(&self, plan: &SchemaPlan) -> Vec<String> {
        match self {
            AnyDestination::Postgres(d) => super::postgres::sql::render_plan(d.data_schema(), plan),
            AnyDestination::Sqlite(_) => render_sqlite_plan(plan),
            #[cfg(feature = "parquet")]
            AnyDestination::Parquet(..) => super::parquet::layout::render_plan(plan),
            #[cfg(feature = "snowflake")]
            AnyDestination::Snowflake(d, _) => super::snowflake::sql::render_plan(d.location(), plan),
            #[cfg(feature = "bigquery")]
            AnyDestination::BigQuery(d, _) => d.render_alter(plan),
        }
    }
}

fn render_sqlite_plan(plan: &SchemaPlan) -> Vec<String> {
    use super::sqlite::sql;
    let as_existing = |cols: &[crate::schema::Column]| -> Vec<ExistingColumn> {
        cols.iter().map(|c| ExistingColumn { name: c.name.clone(), ty: c.ty }).collect()
    };
    let mut out = Vec::new();
    let mut widened = Vec::new();
    for change in &plan.changes {
        match change {
            Change::CreateTable { schema } => {
                out.push(sql::render_create_table(&plan.table, &as_existing(&schema.columns)))
            }
            Change::AddColumn { column } => out.push(sql::render_add_column(
                &plan.table,
                &ExistingColumn { name: column.name.clone(), ty: column.ty },
            )),
            Change::Widen { column, from, .. } => widened.push((column.clone(), *from)),
            Change::Incompatible { .. }
            | Change::Overflow { .. }
            | Change::PropertyRemoved { .. }
            | Change::Unmappable { .. }
            | Change::ReplaceView { .. } => {}
        }
    }
    if !widened.is_empty() {
        let to = as_existing(&plan.target.columns);
        let from: Vec<ExistingColumn> = to
            .iter()
            .map(|c| match widened.iter().find(|(name, _)| *name == c.name) {
                Some((_, ty)) => ExistingColumn { name: c.name.clone(), ty: *ty },
                None => c.clone(),
            })
            .collect();
        out.extend(sql::render_rebuild_for_widen(&plan.table, &from, &to));
    }
    if let Some((view, _)) = plan.live_view() {
        out.extend(sql::render_replace_live_view(&plan.table, view));
    }
    out
}

/// The error for a destination kind this build of hsync leaves out (see the Cargo features).
#[cfg(not(all(feature = "parquet", feature = "snowflake", feature = "bigquery")))]
fn not_built(kind: DestinationKind) -> Error {
    Error::Config(format!(
        "destination.url names a {kind} destination, but this hsync was built without the `{kind}` feature; use the released binary or build with `cargo build --release --features {kind}`"
    ))
}

/// Calls the same method on whichever destination `self` is.
macro_rules! dispatch_destination {
    ($self:ident, $dest:ident => $call:expr) => {
        match $self {
            AnyDestination::Sqlite($dest) => $call,
            AnyDestination::Postgres($dest) => $call,
            #[cfg(feature = "parquet")]
            AnyDestination::Parquet($dest, _) => $call,
            #[cfg(feature = "snowflake")]
            AnyDestination::Snowflake($dest, _) => $call,
            #[cfg(feature = "bigquery")]
            AnyDestination::BigQuery($dest, _) => $call,
        }
    };
}

impl Destination for AnyDestination {
    fn kind(&self) -> crate::config::DestinationKind {
        dispatch_destination!(self, d => d.kind())
    }

    fn holds_state(&self) -> bool {
        dispatch_destination!(self, d => d.holds_state())
    }

    fn column_budget(&self) -> ColumnBudget {
        dispatch_destination!(self, d => d.column_budget())
    }

    fn has_views(&self) -> bool {
        dispatch_destination!(self, d => d.has_views())
    }

    async fn prepare(&self) -> Result<(), Error> {
        dispatch_destination!(self, d => d.prepare().await)
    }

    async fn healthcheck(&self) -> Result<(), Error> {
        dispatch_destination!(self, d => d.healthcheck().await)
    }

    async fn describe(&self, table: &str) -> Result<Option<Vec<ExistingColumn>>, Error> {
        dispatch_destination!(self, d => d.describe(table).await)
    }

    async fn alter(&self, plan: &SchemaPlan) -> Result<(), Error> {
        dispatch_destination!(self, d => d.alter(plan).await)
    }

    async fn stage(&self, table: &str, batch: &RecordBatch) -> Result<Stage, Error> {
        dispatch_destination!(self, d => d.stage(table, batch).await)
    }

    async fn merge(
        &self,
        stage: Stage,
        rejects: &[Reject],
        commit: Option<&Checkpoint>,
    ) -> Result<MergeOutcome, Error> {
        dispatch_destination!(self, d => d.merge(stage, rejects, commit).await)
    }

    async fn sweep_stages(&self) -> Result<u64, Error> {
        dispatch_destination!(self, d => d.sweep_stages().await)
    }

    async fn flag(&self, table: &str, flags: &[RowFlag]) -> Result<u64, Error> {
        dispatch_destination!(self, d => d.flag(table, flags).await)
    }

    async fn id_flags(&self, table: &str) -> Result<Vec<IdFlags>, Error> {
        dispatch_destination!(self, d => d.id_flags(table).await)
    }

    async fn read_cells(&self, table: &str, columns: &[String], ids: &[i64]) -> Result<Vec<Row>, Error> {
        dispatch_destination!(self, d => d.read_cells(table, columns, ids).await)
    }

    async fn query_text(&self, query: &str) -> Result<super::TextRows, Error> {
        dispatch_destination!(self, d => d.query_text(query).await)
    }

    async fn merge_edges(
        &self,
        from_type: &str,
        to_type: &str,
        from_ids: &[i64],
        edges: &[Edge],
        synced_at_ms: i64,
    ) -> Result<EdgeOutcome, Error> {
        dispatch_destination!(self, d => d.merge_edges(from_type, to_type, from_ids, edges, synced_at_ms).await)
    }

    async fn replace_dimensions(
        &self,
        batches: &[DimensionBatch],
        synced_at_ms: i64,
        rejects: &[Reject],
        commit: Option<&Checkpoint>,
    ) -> Result<Vec<DimensionOutcome>, Error> {
        dispatch_destination!(self, d => d.replace_dimensions(batches, synced_at_ms, rejects, commit).await)
    }

    async fn live_ids(&self, table: &str) -> Result<Vec<i64>, Error> {
        dispatch_destination!(self, d => d.live_ids(table).await)
    }

    async fn ids_modified_since(&self, table: &str, since_ms: i64) -> Result<Vec<i64>, Error> {
        dispatch_destination!(self, d => d.ids_modified_since(table, since_ms).await)
    }

    async fn edge_ends(
        &self,
        from_type: &str,
        to_type: &str,
        end: EdgeEnd,
        ids: Option<&[i64]>,
    ) -> Result<Vec<i64>, Error> {
        dispatch_destination!(self, d => d.edge_ends(from_type, to_type, end, ids).await)
    }

    async fn history_versions(&self, object_type: &str, record_ids: &[i64]) -> Result<Vec<StoredVersion>, Error> {
        dispatch_destination!(self, d => d.history_versions(object_type, record_ids).await)
    }
}

/// hsync's state in a local SQLite file (`destination.state_path`), for destinations that
/// cannot hold it (BigQuery, Snowflake, Parquet). The leader lease locks `<file>.lease`.
#[derive(Clone, Debug)]
#[cfg(any(feature = "parquet", feature = "snowflake", feature = "bigquery"))]
pub struct LocalState {
    pub store: SqliteStateStore,
    pub path: std::path::PathBuf,
}

#[cfg(any(feature = "parquet", feature = "snowflake", feature = "bigquery"))]
impl LocalState {
    /// Opens (creating and migrating when missing) the configured local state file.
    pub async fn open(config: &DestinationConfig) -> Result<LocalState, Error> {
        let path = config.state_file();
        let unusable = |e: StateError| {
            Error::Config(format!(
                "cannot use the local state file {}: {e}; set destination.state_path to a writable file",
                path.display()
            ))
        };
        let store = SqliteStateStore::open(&path).await.map_err(unusable)?;
        store.migrate().await.map_err(unusable)?;
        Ok(LocalState { store, path })
    }
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStateStore::Sqlite($store) => $call,
            AnyStateStore::Postgres($store) => $call,
        }
    };
}

impl StateStore for AnyStateStore {
    async fn migrate(&self) -> Result<(), StateError> {
        dispatch!(self, s => s.migrate().await)
    }

    async fn load_checkpoint(&self, stream: &crate::state::StreamId) -> Result<Option<Checkpoint>, StateError> {
        dispatch!(self, s => s.load_checkpoint(stream).await)
    }

    async fn commit_checkpoint(&self, checkpoint: &Checkpoint) -> Result<bool, StateError> {
        dispatch!(self, s => s.commit_checkpoint(checkpoint).await)
    }

    async fn reset_checkpoint(&self, stream: &crate::state::StreamId) -> Result<(), StateError> {
        dispatch!(self, s => s.reset_checkpoint(stream).await)
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StateError> {
        dispatch!(self, s => s.checkpoints().await)
    }

    async fn start_run(
        &self,
        stream: &crate::state::StreamId,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<i64, StateError> {
        dispatch!(self, s => s.start_run(stream, at).await)
    }

    async fn finish_run(
        &self,
        run: i64,
        at: chrono::DateTime<chrono::Utc>,
        status: crate::state::RunStatus,
        rows: i64,
        error: Option<&str>,
    ) -> Result<(), StateError> {
        dispatch!(self, s => s.finish_run(run, at, status, rows, error).await)
    }

    async fn recent_runs(&self, limit: i64) -> Result<Vec<RunRecord>, StateError> {
        dispatch!(self, s => s.recent_runs(limit).await)
    }

    async fn load_snapshot(&self, object: &str) -> Result<Option<PropertySnapshot>, StateError> {
        dispatch!(self, s => s.load_snapshot(object).await)
    }

    async fn save_snapshot(&self, snapshot: &PropertySnapshot) -> Result<(), StateError> {
        dispatch!(self, s => s.save_snapshot(snapshot).await)
    }

    async fn load_column_map(&self, object: &str) -> Result<ColumnMap, StateError> {
        dispatch!(self, s => s.load_column_map(object).await)
    }

    async fn record_column_map(&self, object: &str, map: &ColumnMap) -> Result<(), StateError> {
        dispatch!(self, s => s.record_column_map(object, map).await)
    }

    async fn enqueue_events(
        &self,
        signature: &str,
        received_at_ms: i64,
        forget_before_ms: i64,
        events: &[QueuedEvent],
    ) -> Result<Enqueued, StateError> {
        dispatch!(self, s => s.enqueue_events(signature, received_at_ms, forget_before_ms, events).await)
    }

    async fn pending_events(&self, limit: i64) -> Result<Vec<PendingEvent>, StateError> {
        dispatch!(self, s => s.pending_events(limit).await)
    }

    async fn remove_events(&self, seqs: &[i64]) -> Result<(), StateError> {
        dispatch!(self, s => s.remove_events(seqs).await)
    }

    async fn event_backlog(&self) -> Result<EventBacklog, StateError> {
        dispatch!(self, s => s.event_backlog().await)
    }
}

impl BudgetStore for AnyStateStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<BudgetRecord>, StoreError>> {
        dispatch!(self, s => s.load())
    }

    fn save(&self, record: BudgetRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        dispatch!(self, s => s.save(record))
    }
}
