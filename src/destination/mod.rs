//! Destinations: where batches land. Each dialect lives in its own folder with the same files
//! (`mod.rs` for the [`Destination`] implementation, `sql.rs` for pure `render_*` functions
//! with snapshot tests, `types.rs` for the column type mapping). The contract every destination
//! keeps is checked by [`conformance`], a suite every destination's tests run.
//!
//! # The contract
//! - `stage` loads a batch into a new staging table and commits it; nothing reading the object
//!   table sees it.
//! - `merge` upserts a stage into its table **guarded by the cursor** (a row is never replaced
//!   by an older version of itself: `target._hsync_cursor <= staged._hsync_cursor`), records the
//!   batch's rejects, commits the stream checkpoint when the destination holds the state, and
//!   drops the stage, all in one transaction. Merging the same batch twice equals merging it
//!   once; duplicate ids inside one stage keep the newest version.
//! - `sweep_stages` drops stages a crash left between `stage` and `merge`.
//! - `alter` applies a plan's creating, adding and widening changes and never drops anything.
//! - Identifiers are quoted by one function per dialect; values are bound or loaded as data,
//!   never interpolated into SQL text.

mod any;
pub mod conformance;
mod error;
pub mod postgres;
pub mod sqlite;

use std::future::Future;

use arrow::record_batch::RecordBatch;

pub use any::{AnyDestination, AnyStateStore};
pub use error::Error;

use crate::schema::{ColumnBudget, ExistingColumn, Reject, SchemaPlan};
use crate::state::Checkpoint;

/// A batch loaded into a staging table, waiting to be merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    /// The object table the stage merges into.
    pub table: String,
    /// The staging table's name (unquoted).
    pub stage_table: String,
    /// The staged columns, in order (a batch may carry a subset of the table's columns).
    pub columns: Vec<String>,
    pub rows: u64,
}

/// What a merge did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    /// Rows inserted or updated.
    pub written: u64,
    /// Staged rows not applied because the table already held the same or a newer version
    /// (or a newer duplicate in the same stage).
    pub skipped: u64,
}

/// A warehouse hsync writes to.
pub trait Destination: Send + Sync {
    /// `sqlite`, `postgres`, ...
    fn kind(&self) -> &'static str;

    /// How many property columns a table may have before properties overflow.
    fn column_budget(&self) -> ColumnBudget;

    /// Checks that the destination answers and hsync may write; creates hsync's bookkeeping
    /// (state tables from `migrations/`, the rejects and association tables) when missing.
    fn prepare(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// Checks that the destination answers, without changing anything.
    fn healthcheck(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// The columns of an object table, or `None` when the table does not exist.
    fn describe(&self, table: &str) -> impl Future<Output = Result<Option<Vec<ExistingColumn>>, Error>> + Send;

    /// Applies a plan's altering changes (create table, add column, widen). Never drops.
    fn alter(&self, plan: &SchemaPlan) -> impl Future<Output = Result<(), Error>> + Send;

    /// Loads `batch` into a new staging table for `table`.
    fn stage(&self, table: &str, batch: &RecordBatch) -> impl Future<Output = Result<Stage, Error>> + Send;

    /// Merges a stage (see the module docs), in one transaction with `rejects` and `commit`.
    fn merge(
        &self,
        stage: Stage,
        rejects: &[Reject],
        commit: Option<&Checkpoint>,
    ) -> impl Future<Output = Result<MergeOutcome, Error>> + Send;

    /// Drops staging tables left behind by a crash; returns how many.
    fn sweep_stages(&self) -> impl Future<Output = Result<u64, Error>> + Send;
}
