//! The leader lease: so two daemons pointed at the same destination never sync at once, the
//! active one holds a lock the destination itself keeps, and releases it by dying.
//!
//! - Postgres: a session-level advisory lock on a connection detached from the pool. Postgres
//!   drops it when that session ends, however the holder dies (crash, SIGKILL, lost network).
//! - SQLite: an exclusive OS file lock on `<database>.lease` beside the database. The kernel
//!   drops it when the holding process exits. BigQuery, Snowflake and Parquet lock the local
//!   state file the same way, so two daemons sharing that file (one host or a shared volume)
//!   never sync at once.
//!
//! A lease is checked before each job and while one runs; a lost Postgres session means the
//! lock may already be someone else's, so the holder must stop writing.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use sqlx::{Connection, PgConnection};

use super::postgres::PostgresDestination;
use super::{AnyDestination, Error};

/// Takes the Postgres lock named by `$1` without waiting; true when taken.
const TRY_ADVISORY_LOCK: &str = "select pg_try_advisory_lock(hashtextextended($1, 0))";
/// Proves the session (and so the lock) is still alive.
const PING: &str = "select 1";

/// A held lease; dropping it releases the lock.
#[derive(Debug)]
pub enum Lease {
    Postgres(PgConnection),
    Sqlite { _file: File, path: PathBuf },
}

impl Lease {
    /// Where the lease lives, for logs and `/status`.
    pub fn describe(&self) -> String {
        match self {
            Lease::Postgres(_) => "Postgres advisory lock".to_owned(),
            Lease::Sqlite { path, .. } => format!("file lock {}", path.display()),
        }
    }

    /// Fails when the lease may have been lost (its Postgres session died).
    pub async fn check(&mut self) -> Result<(), Error> {
        match self {
            Lease::Postgres(conn) => sqlx::query(PING)
                .execute(&mut *conn)
                .await
                .map(|_| ())
                .map_err(|e| Error::from_sqlx("postgres", "check the leader lease", e)),
            // The kernel keeps the lock for as long as this process holds the file open.
            Lease::Sqlite { .. } => Ok(()),
        }
    }

    /// Releases the lease now (a clean shutdown hands over without waiting for a timeout).
    pub async fn release(self) {
        if let Lease::Postgres(conn) = self {
            let _ = conn.close().await;
        }
    }
}

impl AnyDestination {
    /// Takes the lease for this destination if no one holds it; `None` when another instance
    /// does. `name` tells leases apart within one database (the state schema, say).
    pub async fn try_lease(&self, name: &str) -> Result<Option<Lease>, Error> {
        match self {
            AnyDestination::Postgres(d) => try_postgres(d, name).await,
            AnyDestination::Sqlite(d) => try_file_lock(&d.database_path()),
            AnyDestination::Parquet(_, local) => try_file_lock(&local.path),
            AnyDestination::Snowflake(_, local) => try_file_lock(&local.path),
            AnyDestination::BigQuery(_, local) => try_file_lock(&local.path),
        }
    }
}

async fn try_postgres(dest: &PostgresDestination, name: &str) -> Result<Option<Lease>, Error> {
    let failed = |e| Error::from_sqlx("postgres", "take the leader lease", e);
    // Detached, so the pool never recycles the session that holds the lock.
    let mut conn = dest.pool().acquire().await.map_err(failed)?.detach();
    let taken: bool = sqlx::query_scalar(TRY_ADVISORY_LOCK)
        .bind(format!("hsync leader {name}"))
        .fetch_one(&mut conn)
        .await
        .map_err(failed)?;
    if taken {
        Ok(Some(Lease::Postgres(conn)))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

/// Locks `<database>.lease` beside a SQLite file (the destination's, or the local state file of a
/// destination that cannot hold hsync's state).
pub(crate) fn try_file_lock(database: &Path) -> Result<Option<Lease>, Error> {
    let mut path = database.to_owned();
    path.as_mut_os_string().push(".lease");
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| {
        Error::Unavailable { kind: "sqlite", detail: format!("cannot open the lease file {}: {e}", path.display()) }
    })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Lease::Sqlite { _file: file, path })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Unavailable {
            kind: "sqlite",
            detail: format!("cannot lock the lease file {}: {e}", path.display()),
        }),
    }
}
