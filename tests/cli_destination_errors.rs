//! Permanent destination problems exit with their class and say what to fix, so a supervisor
//! stops restarting and the alert names the cause: a SQLite file in a missing directory or one
//! hsync's user cannot write (config, 78, naming the path), an unknown Postgres database
//! (config, 78), an unknown Postgres role (auth, 77) and a Postgres user without the privilege to
//! create hsync's schema (config, 78, saying to grant it). The real binary runs each time.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;

use hsync_sim::DEFAULT_TOKEN;

use crate::support::cli::{explain, hsync, stdout, write_config, TOKEN_VAR};
use crate::support::{FreshPostgres, Sim};

const OBJECTS: &str = "[sync]\nobjects = [\"contacts\"]\n";

/// The `FAILED destination:` line of `hsync check`.
fn failed_destination(out: &Output) -> String {
    stdout(out)
        .lines()
        .find(|l| l.starts_with("FAILED") && l.contains("destination:"))
        .unwrap_or_else(|| panic!("no failed destination line: {}", explain(out)))
        .to_owned()
}

fn sqlite_config(dir: &Path, sim: &Sim, db: &Path) -> std::path::PathBuf {
    write_config(
        dir,
        &sim.handle.base_url(),
        &format!("[destination]\nurl = \"sqlite://{}\"\n\n{OBJECTS}", db.display()),
    )
}

#[tokio::test]
async fn a_sqlite_file_in_a_missing_directory_is_a_config_error_naming_the_directory() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let config = sqlite_config(dir.path(), &sim, &missing.join("w.db"));

    let check = hsync(&config, &["check"]).await;
    assert_eq!(check.status.code(), Some(78), "{}", explain(&check));
    let line = failed_destination(&check);
    assert!(line.contains(&format!("check that the directory {} exists", missing.display())), "{line}");

    let backfill = hsync(&config, &["backfill"]).await;
    assert_eq!(backfill.status.code(), Some(78), "{}", explain(&backfill));
    let stderr = String::from_utf8_lossy(&backfill.stderr);
    assert!(stderr.contains(&missing.join("w.db").display().to_string()), "names the file: {stderr}");
    assert!(stderr.contains("cannot be opened"), "{stderr}");
}

/// A SQLite file hsync's user may read but not write. Root writes any file whatever its mode
/// bits, so under root the binary runs as `nobody`, as a service's own user would.
#[tokio::test]
async fn a_read_only_sqlite_file_is_a_config_error_naming_the_file() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let config = sqlite_config(dir.path(), &sim, &db);
    // A prepared warehouse, then made read-only (with its directory, as a read-only mount is).
    let first = hsync(&config, &["check"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", explain(&first));
    let as_root = std::fs::metadata(&db).unwrap().uid() == 0;
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let path = file.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();

    // `nobody` must be able to run the binary: copy it where it can when its folders are private.
    let copies = tempfile::tempdir().unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_hsync"));
    let binary = if as_root && !runnable_by_others(binary) {
        std::fs::set_permissions(copies.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = copies.path().join("hsync");
        std::fs::copy(binary, &copy).unwrap();
        copy
    } else {
        binary.to_owned()
    };
    for args in [&["check"][..], &["backfill"][..]] {
        let mut cmd = tokio::process::Command::new(&binary);
        cmd.arg("--config").arg(&config).args(args).env("RUST_LOG", "warn").env(TOKEN_VAR, DEFAULT_TOKEN);
        if as_root {
            cmd.uid(65534).gid(65534);
        }
        let out = cmd.output().await.unwrap();
        assert_eq!(out.status.code(), Some(78), "{args:?}: {}", explain(&out));
        // The failure itself (not the configuration echoed by `check`) names the file and the fix.
        let failure = match args {
            ["check"] => failed_destination(&out),
            _ => String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(failure.contains(&format!("file {} is read-only", db.display())), "{args:?}: {}", explain(&out));
        assert!(failure.contains("writable by hsync's user"), "{args:?}: {failure}");
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Whether users other than the owner may run `binary` (it, and every folder above it, open to them).
fn runnable_by_others(binary: &Path) -> bool {
    let open = |path: &Path, bits: u32| std::fs::metadata(path).is_ok_and(|m| m.mode() & bits == bits);
    open(binary, 0o005) && binary.ancestors().skip(1).filter(|d| !d.as_os_str().is_empty()).all(|d| open(d, 0o001))
}

/// `url` with its user (and password) or database replaced.
fn variant(url: &str, user: Option<&str>, database: Option<&str>) -> String {
    let mut url = reqwest::Url::parse(url).unwrap();
    if let Some(user) = user {
        url.set_username(user).unwrap();
        url.set_password(Some("pw-5ecret")).unwrap();
    }
    if let Some(database) = database {
        url.set_path(&format!("/{database}"));
    }
    url.to_string()
}

fn postgres_config(dir: &Path, sim: &Sim, pg: &FreshPostgres, url: &str) -> std::path::PathBuf {
    let sections = format!(
        "[destination]\nurl = \"{url}\"\nschema = \"{}\"\nstate_schema = \"{}\"\n\n{OBJECTS}",
        pg.data_schema, pg.state_schema
    );
    write_config(dir, &sim.handle.base_url(), &sections)
}

#[tokio::test]
async fn an_unknown_postgres_database_is_a_config_error() {
    let Some(pg) = FreshPostgres::create().await else { return };
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let name = format!("hsync_missing_{:08x}", rand::random::<u32>());
    let config = postgres_config(dir.path(), &sim, &pg, &variant(&pg.url, None, Some(&name)));

    let check = hsync(&config, &["check"]).await;
    assert_eq!(check.status.code(), Some(78), "{}", explain(&check));
    let line = failed_destination(&check);
    assert!(line.contains(&name) && line.contains("fix the database name in destination.url"), "{line}");

    let backfill = hsync(&config, &["backfill"]).await;
    assert_eq!(backfill.status.code(), Some(78), "{}", explain(&backfill));
    assert!(String::from_utf8_lossy(&backfill.stderr).contains("3D000"), "{}", explain(&backfill));
}

#[tokio::test]
async fn an_unknown_postgres_role_is_an_auth_error() {
    let Some(pg) = FreshPostgres::create().await else { return };
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let role = format!("hsync_nobody_{:08x}", rand::random::<u32>());
    let config = postgres_config(dir.path(), &sim, &pg, &variant(&pg.url, Some(&role), None));

    for args in [&["check"][..], &["backfill"][..]] {
        let out = hsync(&config, args).await;
        assert_eq!(out.status.code(), Some(77), "{args:?}: {}", explain(&out));
        let text = explain(&out);
        assert!(text.contains("28000") && text.contains("the user in destination.url"), "{args:?}: {text}");
        assert!(!text.contains("pw-5ecret"), "the password never shows: {text}");
    }
}

/// A role that may log in but not create schemas: hsync's bookkeeping cannot be prepared, and
/// the state store's refusal keeps its class instead of becoming a bug.
#[tokio::test]
async fn a_postgres_user_without_create_privilege_is_told_to_grant_it() {
    let Some(pg) = FreshPostgres::create().await else { return };
    use sqlx::Connection;
    let role = format!("hsync_noprivs_{:08x}", rand::random::<u32>());
    let mut admin = sqlx::PgConnection::connect(&pg.url).await.unwrap();
    let ddl = |sql: String| sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
    ddl(format!("create role {role} login")).execute(&mut admin).await.unwrap();

    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let config = postgres_config(dir.path(), &sim, &pg, &variant(&pg.url, Some(&role), None));
    let backfill = hsync(&config, &["backfill"]).await;
    let check = hsync(&config, &["check"]).await;
    ddl(format!("drop role {role}")).execute(&mut admin).await.unwrap();

    assert_eq!(backfill.status.code(), Some(78), "{}", explain(&backfill));
    assert!(
        String::from_utf8_lossy(&backfill.stderr).contains("grant hsync's user the privilege"),
        "{}",
        explain(&backfill)
    );
    assert_eq!(check.status.code(), Some(78), "{}", explain(&check));
    assert!(failed_destination(&check).contains("permission denied"), "{}", explain(&check));
}
