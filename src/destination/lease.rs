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
//! The daemon holds it for as long as it runs; every one-shot command that writes holds it for
//! its own life, so a command and a daemon (or two commands) never write at once. The holder
//! records who it is ([`Holder`]): in the lease file, or as the Postgres session's
//! `application_name`, so a process refused can name it ([`AnyDestination::lease_holder`]).
//!
//! A lease is checked before each job and while one runs; a lost Postgres session means the
//! lock may already be someone else's, so the holder must stop writing.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};

use super::postgres::PostgresDestination;
use super::{AnyDestination, Error};

/// Takes the Postgres lock named by `$1` without waiting; true when taken.
const TRY_ADVISORY_LOCK: &str = "select pg_try_advisory_lock(hashtextextended($1, 0))";
/// Names the lease's session for a process refused the lock (`$1`).
const SET_APPLICATION_NAME: &str = "select set_config('application_name', $1, false)";
const LEASE_HOLDER: &str = include_str!("../../sql/postgres/lease_holder.sql");
/// Proves the session (and so the lock) is still alive.
const PING: &str = "select 1";
/// The most of a lease file a refused process reads: one line describes the holder.
const MAX_HOLDER_BYTES: u64 = 1024;

/// Who holds a lease, as the holder records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// The command alone (`hsync run`), never its arguments.
    pub command: String,
    pub since: DateTime<Utc>,
}

impl Holder {
    /// This process, running `command`, from now.
    pub fn this_process(command: &str) -> Holder {
        Holder { pid: std::process::id(), host: host_name(), command: command.to_owned(), since: Utc::now() }
    }

    /// The lease session's Postgres `application_name` (Postgres keeps its first 63 bytes).
    fn application_name(&self) -> String {
        format!("{} pid {}@{}", self.command, self.pid, self.host)
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hsync pid {} on host {} (`{}`, since {})",
            self.pid,
            self.host,
            self.command,
            self.since.format("%Y-%m-%dT%H:%M:%SZ")
        )
    }
}

/// The kernel's host name (the pod name under Kubernetes).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

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
            Lease::Postgres(conn) => {
                sqlx::query(PING).execute(&mut *conn).await.map(|_| ()).map_err(|e| {
                    Error::from_sqlx(crate::config::DestinationKind::Postgres, "check the leader lease", e)
                })
            }
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
    /// Takes the lease for this destination if no one holds it, recording `holder`; `None`
    /// when another process does. `name` tells leases apart within one database (the state
    /// schema, say).
    pub async fn try_lease(&self, name: &str, holder: &Holder) -> Result<Option<Lease>, Error> {
        match self {
            AnyDestination::Postgres(d) => try_postgres(d, name, holder).await,
            AnyDestination::Sqlite(d) => try_file_lock(&d.database_path(), holder),
            #[cfg(feature = "parquet")]
            AnyDestination::Parquet(_, local) => try_file_lock(&local.path, holder),
            #[cfg(feature = "snowflake")]
            AnyDestination::Snowflake(_, local) => try_file_lock(&local.path, holder),
            #[cfg(feature = "bigquery")]
            AnyDestination::BigQuery(_, local) => try_file_lock(&local.path, holder),
        }
    }

    /// Where the lease `name` lives, for messages: the file or the Postgres lock.
    pub fn lease_location(&self, name: &str) -> String {
        match self {
            AnyDestination::Postgres(_) => format!("the Postgres advisory lock \"{}\"", lock_name(name)),
            AnyDestination::Sqlite(d) => format!("the lease file {}", lease_path(&d.database_path()).display()),
            #[cfg(feature = "parquet")]
            AnyDestination::Parquet(_, local) => format!("the lease file {}", lease_path(&local.path).display()),
            #[cfg(feature = "snowflake")]
            AnyDestination::Snowflake(_, local) => format!("the lease file {}", lease_path(&local.path).display()),
            #[cfg(feature = "bigquery")]
            AnyDestination::BigQuery(_, local) => format!("the lease file {}", lease_path(&local.path).display()),
        }
    }

    /// Who holds the lease `name`, as it recorded itself; `None` when no one visibly does (it
    /// was released meanwhile, or its holder has not written its description yet).
    pub async fn lease_holder(&self, name: &str) -> Result<Option<String>, Error> {
        match self {
            AnyDestination::Postgres(d) => postgres_holder(d, name).await,
            AnyDestination::Sqlite(d) => Ok(file_holder(&d.database_path())),
            #[cfg(feature = "parquet")]
            AnyDestination::Parquet(_, local) => Ok(file_holder(&local.path)),
            #[cfg(feature = "snowflake")]
            AnyDestination::Snowflake(_, local) => Ok(file_holder(&local.path)),
            #[cfg(feature = "bigquery")]
            AnyDestination::BigQuery(_, local) => Ok(file_holder(&local.path)),
        }
    }
}

fn lock_name(name: &str) -> String {
    format!("hsync leader {name}")
}

async fn try_postgres(dest: &PostgresDestination, name: &str, holder: &Holder) -> Result<Option<Lease>, Error> {
    let failed = |e| Error::from_sqlx(crate::config::DestinationKind::Postgres, "take the leader lease", e);
    // Detached, so the pool never recycles the session that holds the lock.
    let mut conn = dest.pool().acquire().await.map_err(failed)?.detach();
    // Named before the lock is taken, so a holder is never seen without its name.
    sqlx::query(SET_APPLICATION_NAME).bind(holder.application_name()).execute(&mut conn).await.map_err(failed)?;
    let taken: bool =
        sqlx::query_scalar(TRY_ADVISORY_LOCK).bind(lock_name(name)).fetch_one(&mut conn).await.map_err(failed)?;
    if taken {
        Ok(Some(Lease::Postgres(conn)))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

async fn postgres_holder(dest: &PostgresDestination, name: &str) -> Result<Option<String>, Error> {
    /// Backend pid, application_name, client address, backend start.
    type HolderRow = (i32, Option<String>, Option<String>, Option<DateTime<Utc>>);
    let row: Option<HolderRow> =
        sqlx::query_as(LEASE_HOLDER)
            .bind(lock_name(name))
            .fetch_optional(dest.pool())
            .await
            .map_err(|e| Error::from_sqlx(crate::config::DestinationKind::Postgres, "look up the lease's holder", e))?;
    Ok(row.map(|(pid, application, client, since)| {
        // Another role's sessions show no details unless hsync's user may read all statistics.
        let who = application.filter(|a| !a.is_empty()).unwrap_or_else(|| "an unnamed session".to_owned());
        let from = client.map_or_else(|| "a local socket".to_owned(), |c| format!("client {c}"));
        let since = since.map(|t| format!(", connected since {}", t.format("%Y-%m-%dT%H:%M:%SZ"))).unwrap_or_default();
        format!("`{who}` (Postgres backend pid {pid}, {from}{since})")
    }))
}

fn lease_path(database: &Path) -> PathBuf {
    let mut path = database.to_owned();
    path.as_mut_os_string().push(".lease");
    path
}

/// Locks `<database>.lease` beside a SQLite file (the destination's, or the local state file of a
/// destination that cannot hold hsync's state), then writes `holder` into it.
pub(crate) fn try_file_lock(database: &Path, holder: &Holder) -> Result<Option<Lease>, Error> {
    let path = lease_path(database);
    let failed = |doing: &str, e: std::io::Error| Error::Unavailable {
        kind: crate::config::DestinationKind::Sqlite,
        detail: format!("cannot {doing} the lease file {}: {e}", path.display()),
    };
    let mut file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(|e| {
        match e.kind() {
            // The file beside the database cannot be made: a problem with the database's folder
            // an operator must fix (config), like the database file's own.
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem | ErrorKind::NotFound => {
                let (problem, code) =
                    if e.kind() == ErrorKind::NotFound { ("cannot be opened", 14) } else { ("is read-only", 8) };
                Error::File {
                    kind: crate::config::DestinationKind::Sqlite,
                    action: "take the destination's lease".to_owned(),
                    path: Some(database.to_owned()),
                    detail: format!(
                        "{problem} to hsync's user: the lease file {} beside it cannot be created ({e}); {}",
                        path.display(),
                        super::error::sqlite_file_fix(code, Some(database))
                    ),
                }
            }
            _ => failed("open", e),
        }
    })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(failed("lock", e)),
    }
    // Only the holder writes, and only once it holds the lock.
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{holder}"))
        .and_then(|()| file.flush())
        .map_err(|e| failed("write", e))?;
    Ok(Some(Lease::Sqlite { _file: file, path }))
}

/// The first line of the lease file, as its holder wrote it.
fn file_holder(database: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(lease_path(database)).ok()?.take(MAX_HOLDER_BYTES).read_to_string(&mut text).ok()?;
    let line: String = text.lines().next()?.chars().filter(|c| !c.is_control()).collect();
    Some(line.trim().to_owned()).filter(|l| !l.is_empty())
}
