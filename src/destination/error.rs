//! Destination errors, classed so the scheduler can retry a lost connection and stop on a
//! permission, login or schema problem. Messages name the table or statement kind, never row
//! values, and never a password or a URL holding one; a SQLite file's path is not a secret and
//! is named so the operator knows what to fix.

use std::path::{Path, PathBuf};

use crate::config::DestinationKind;
use crate::error::{Classify, ErrorClass};

/// A destination failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database cannot be reached or dropped the connection.
    #[error("cannot reach the {kind} destination: {detail}; check that it is running and destination.url is right")]
    Unavailable { kind: DestinationKind, detail: String },
    /// The database refused for lack of a privilege.
    #[error("the {kind} destination refused {action}: {detail}; grant hsync's user the privilege")]
    Permission { kind: DestinationKind, action: String, detail: String },
    /// A statement failed for a reason retrying will not fix.
    #[error("{kind} {action} failed: {detail}")]
    Statement { kind: DestinationKind, action: String, detail: String },
    /// A plan change the destination cannot apply.
    #[error("{kind} cannot apply the schema change to {table}: {detail}")]
    Schema { kind: DestinationKind, table: String, detail: String },
    /// The destination URL is unusable.
    #[error("invalid destination url: {0}")]
    Config(String),
    /// The warehouse refused hsync's credentials (a cloud warehouse's login or token).
    #[error("the {kind} destination refused hsync's credentials: {detail}; check the key file, password or grants named in the destination settings")]
    Auth { kind: DestinationKind, detail: String },
    /// The warehouse asked hsync to slow down (a quota or concurrency limit).
    #[error("the {kind} destination is throttling hsync: {detail}; hsync retries later")]
    Throttled { kind: DestinationKind, detail: String },
    /// The database file cannot be opened or written: its directory is missing, the file or its
    /// file system is read-only, or hsync's user lacks the permission. `detail` says which and
    /// what to fix.
    #[error("cannot {action}: the {kind} database file{} {detail}", shown_path(.path.as_deref()))]
    File { kind: DestinationKind, action: String, path: Option<PathBuf>, detail: String },
    /// A query the operator wrote (`push.<name>.query`) failed or cannot run here.
    #[error("the {kind} destination could not run the push query: {detail}; fix the query (push.<name>.query) or push from a CSV file (push.<name>.file)")]
    Query { kind: DestinationKind, detail: String },
    /// Another process holds the destination's lease (`lease` says where it lives).
    #[error(
        "{lease} is held by {holder}; wait for it to finish, or stop it (a daemon holds it for as long as it runs)"
    )]
    Leased { lease: String, holder: String },
}

fn shown_path(path: Option<&Path>) -> String {
    path.map(|p| format!(" {}", p.display())).unwrap_or_default()
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::Unavailable { .. } | Error::Leased { .. } => ErrorClass::Transient,
            Error::Permission { .. } | Error::Config(_) | Error::File { .. } | Error::Query { .. } => {
                ErrorClass::Config
            }
            Error::Schema { .. } => ErrorClass::Data,
            Error::Statement { .. } => ErrorClass::Bug,
            Error::Auth { .. } => ErrorClass::Auth,
            Error::Throttled { .. } => ErrorClass::RateLimited,
        }
    }
}

/// What a SQLite result code says about the database file, for the codes that are about the
/// file rather than a statement (SQLite's primary code is the low byte of an extended one).
fn sqlite_file_problem(code: i32) -> Option<&'static str> {
    match code & 0xff {
        3 | 23 => Some("may not be accessed by hsync's user"), // SQLITE_PERM, SQLITE_AUTH
        8 => Some("is read-only"),                             // SQLITE_READONLY (and its extended codes)
        14 => Some("cannot be opened"),                        // SQLITE_CANTOPEN (and its extended codes)
        _ => None,
    }
}

/// What to do about a SQLite file problem, naming the file and its directory when known.
pub(crate) fn sqlite_file_fix(code: i32, path: Option<&Path>) -> String {
    let Some(path) = path else {
        return "check that destination.url (or destination.state_path) names a file in an existing directory that \
                hsync's user may write"
            .to_owned();
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if code & 0xff == 14 {
        format!(
            "check that the directory {} exists and that hsync's user may create and write files in it, or point \
             destination.url at another file",
            dir.display()
        )
    } else {
        format!(
            "make {} and its directory {} writable by hsync's user (SQLite also writes the -wal and -shm files \
             beside it), or point destination.url at a writable file",
            path.display(),
            dir.display()
        )
    }
}

/// The class a Postgres SQLSTATE gives a failure, when the code alone decides it.
/// <https://www.postgresql.org/docs/current/errcodes-appendix.html>
fn postgres_problem(kind: DestinationKind, code: &str, message: &str) -> Option<Error> {
    let detail = |why: &str| format!("{message} (SQLSTATE {code}: {why})");
    Some(match code {
        // invalid_password
        "28P01" => Error::Auth { kind, detail: detail("the user or password in destination.url is wrong") },
        // invalid_authorization_specification: an unknown role, or pg_hba.conf refuses it
        "28000" => Error::Auth {
            kind,
            detail: detail("the user in destination.url does not exist or may not connect from this host"),
        },
        // invalid_catalog_name: the database does not exist
        "3D000" => Error::Config(format!(
            "the {kind} server has no database by the name in destination.url: {message} (SQLSTATE {code}); create \
             it or fix the database name in destination.url"
        )),
        // connection exceptions, insufficient resources (too many connections), operator
        // intervention (admin shutdown, crash shutdown, cannot connect now)
        _ if code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") => {
            Error::Unavailable { kind, detail: detail("the server is unavailable or shutting down") }
        }
        _ => return None,
    })
}

impl Error {
    /// This failure as a state store reports it: a lost connection stays transient, a failed
    /// statement a bug, and anything else a refusal with this error's class and message.
    pub(crate) fn into_state(self) -> crate::state::Error {
        use crate::state::Error as S;
        match self {
            Error::Unavailable { detail, .. } => S::Unavailable(detail),
            Error::Statement { action, detail, .. } => S::Statement { action, detail },
            other => S::refused(&other),
        }
    }

    /// Classifies an sqlx error raised while doing `action`.
    pub fn from_sqlx(kind: DestinationKind, action: impl Into<String>, e: sqlx::Error) -> Error {
        Error::from_sqlx_at(kind, None, action, e)
    }

    /// Classifies an sqlx error raised while doing `action` on the database file `path` (SQLite),
    /// so an unusable file is reported by name.
    pub fn from_sqlx_at(
        kind: DestinationKind,
        path: Option<&Path>,
        action: impl Into<String>,
        e: sqlx::Error,
    ) -> Error {
        let action = action.into();
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => Error::Unavailable { kind, detail: e.to_string() },
            sqlx::Error::Configuration(_) => {
                Error::Config(format!("{kind} refused the connection settings: {e}; fix destination.url"))
            }
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let message = db.message().to_owned();
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    let number: i32 = code.parse().unwrap_or_default();
                    if let Some(problem) = sqlite_file_problem(number) {
                        let fix = sqlite_file_fix(number, path);
                        return Error::File {
                            kind,
                            action,
                            path: path.map(Path::to_owned),
                            detail: format!("{problem} ({message}, SQLite code {number}); {fix}"),
                        };
                    }
                    // SQLITE_BUSY, SQLITE_LOCKED: another writer held the database too long.
                    if matches!(number & 0xff, 5 | 6) {
                        return Error::Unavailable { kind, detail: message };
                    }
                    return Error::Statement { kind, action, detail: message };
                }
                // Postgres: 42501 insufficient_privilege.
                if code == "42501" {
                    return Error::Permission { kind, action, detail: message };
                }
                postgres_problem(kind, &code, &message).unwrap_or(Error::Statement { kind, action, detail: message })
            }
            _ => Error::Statement { kind, action, detail: e.to_string() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_login_and_database_codes_are_auth_and_config_not_bugs() {
        let class = |code: &str| postgres_problem(DestinationKind::Postgres, code, "m").map(|e| e.class());
        assert_eq!(class("28P01"), Some(ErrorClass::Auth));
        assert_eq!(class("28000"), Some(ErrorClass::Auth));
        assert_eq!(class("3D000"), Some(ErrorClass::Config));
        assert_eq!(class("08006"), Some(ErrorClass::Transient));
        assert_eq!(class("53300"), Some(ErrorClass::Transient));
        assert_eq!(class("57P01"), Some(ErrorClass::Transient));
        assert_eq!(class("23505"), None, "a statement's own failure is left to the caller");
        let text =
            postgres_problem(DestinationKind::Postgres, "28P01", "password authentication failed for user \"u\"")
                .unwrap()
                .to_string();
        assert!(text.contains("destination.url") && text.contains("28P01"), "{text}");
    }

    #[test]
    fn a_refusal_reaches_the_state_store_with_its_class_and_message() {
        use crate::state::Error as S;
        for refusal in [
            Error::Auth { kind: DestinationKind::Postgres, detail: "password authentication failed".into() },
            Error::Permission {
                kind: DestinationKind::Postgres,
                action: "create the state schema".into(),
                detail: "denied".into(),
            },
            Error::File {
                kind: DestinationKind::Sqlite,
                action: "open".into(),
                path: Some("/srv/ro/hsync.db".into()),
                detail: "is read-only".into(),
            },
        ] {
            let (class, message) = (refusal.class(), refusal.to_string());
            let state = refusal.into_state();
            assert!(matches!(state, S::Refused { .. }), "{state:?}");
            assert_eq!((state.class(), state.to_string()), (class, message));
        }
        let lost =
            Error::Unavailable { kind: DestinationKind::Postgres, detail: "connection reset".into() }.into_state();
        assert!(matches!(&lost, S::Unavailable(detail) if detail == "connection reset"), "{lost:?}");
        let failed = Error::Statement {
            kind: DestinationKind::Sqlite,
            action: "load a checkpoint".into(),
            detail: "no such table".into(),
        };
        assert!(
            matches!(failed.into_state(), S::Statement { action, detail } if action == "load a checkpoint" && detail == "no such table")
        );
    }

    #[test]
    fn sqlite_file_codes_name_the_file_and_the_fix() {
        // Extended codes share the primary code's low byte: 1032 is SQLITE_READONLY_DBMOVED.
        for code in [3, 8, 14, 23, 1032, 526] {
            assert!(sqlite_file_problem(code).is_some(), "{code}");
        }
        for code in [1, 5, 6, 19, 2067] {
            assert!(sqlite_file_problem(code).is_none(), "{code}");
        }
        let fix = sqlite_file_fix(14, Some(Path::new("/srv/missing/hsync.db")));
        assert!(fix.contains("/srv/missing exists"), "{fix}");
        let fix = sqlite_file_fix(8, Some(Path::new("/srv/data/hsync.db")));
        assert!(fix.contains("/srv/data/hsync.db") && fix.contains("writable"), "{fix}");
    }
}
