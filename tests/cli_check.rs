//! `hsync check` as a real subprocess: everything passes against the simulator with SQLite and
//! with Postgres (and the write probe leaves no table behind); a rejected token, a token
//! without a scope and an unreachable Postgres each fail on their own line, named with the
//! fix, and set the exit code by class. `hsync config` and `hsync check` never print a
//! destination password or a token, refuse absurd settings (78) saying what is allowed, and
//! tell a token with a line break inside (77) from one with a line break around it (trimmed).
//! With webhooks on, check fails (78) until the app's client secret is readable.

use std::path::Path;

use hsync_sim::{SimConfig, TokenGrant, DEFAULT_TOKEN};

use crate::support::cli::{command, explain, hsync, stdout, write_config, TOKEN_VAR};
use crate::support::{small_portal, unlimited, FreshPostgres, Sim};

const OBJECTS: &str = "[sync]\nobjects = [\"contacts\", \"deals\", \"cars\"]\n";

/// The line for check `name` if it has `status` (`ok`, `FAILED`, `skipped`).
fn line<'a>(output: &'a str, status: &str, name: &str) -> Option<&'a str> {
    output.lines().find(|l| {
        let mut words = l.splitn(2, char::is_whitespace);
        words.next() == Some(status)
            && words.next().is_some_and(|rest| rest.trim_start().starts_with(&format!("{name}:")))
    })
}

fn sqlite_sections(dir: &Path) -> String {
    format!("[destination]\nurl = \"sqlite://{}\"\n\n{OBJECTS}", dir.join("w.db").display())
}

/// Every check of a healthy set-up says ok, one line each.
fn assert_all_ok(out: &std::process::Output) {
    let text = stdout(out);
    assert_eq!(out.status.code(), Some(0), "{}", explain(out));
    for name in [
        "config",
        "destination",
        "hubspot",
        "contacts properties",
        "contacts records",
        "deals properties",
        "deals records",
        "cars properties",
        "cars records",
        "owners",
    ] {
        assert!(line(&text, "ok", name).is_some(), "no ok line for {name}: {}", explain(out));
    }
    assert!(!text.contains("FAILED"), "{}", explain(out));
    assert!(line(&text, "ok", "hubspot").unwrap().contains(TOKEN_VAR), "names where the token came from");
}

#[tokio::test]
async fn check_passes_against_the_simulator_and_sqlite_and_leaves_no_table() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.handle.base_url(), &sqlite_sections(dir.path()));
    let out = hsync(&config, &["check"]).await;
    assert_all_ok(&out);

    use sqlx::Connection;
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let probes: i64 =
        sqlx::query_scalar("select count(*) from sqlite_master where name like '\\_hsync\\_check\\_%' escape '\\'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(probes, 0, "the scratch table was dropped");
    let state: i64 = sqlx::query_scalar("select count(*) from sqlite_master where name = '_hsync_checkpoints'")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(state, 1, "the bookkeeping tables were prepared");
}

#[tokio::test]
async fn check_passes_against_postgres_and_leaves_no_table() {
    let Some(pg) = FreshPostgres::create().await else { return };
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let sections = format!("[destination]\n{}\n\n{OBJECTS}", pg.destination_keys());
    let config = write_config(dir.path(), &sim.handle.base_url(), &sections);
    let out = hsync(&config, &["check"]).await;
    assert_all_ok(&out);
    assert!(line(&stdout(&out), "ok", "destination").unwrap().contains(&pg.data_schema), "{}", explain(&out));

    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(&pg.url).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("select table_name::text from information_schema.tables where table_schema = $1")
            .bind(&pg.data_schema)
            .fetch_all(&mut db)
            .await
            .unwrap();
    assert!(!tables.is_empty(), "prepare created hsync's tables in the data schema");
    assert!(!tables.iter().any(|t| t.starts_with("_hsync_check_")), "the scratch table was dropped: {tables:?}");
    pg.drop_schemas().await;
}

#[tokio::test]
async fn check_names_a_rejected_token_and_what_to_do() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.handle.base_url(), &sqlite_sections(dir.path()));
    let out = command(Some(&config), &["check"], Some("pat-na1-not-the-right-token")).output().await.unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(77), "auth failures exit 77: {}", explain(&out));
    let failed = line(&text, "FAILED", "hubspot").unwrap_or_else(|| panic!("{}", explain(&out)));
    assert!(failed.contains("401") && failed.contains(TOKEN_VAR), "names the status and the token's origin: {failed}");
    assert!(failed.contains("check that it is a valid private-app"), "says what to do: {failed}");
    assert!(line(&text, "skipped", "other HubSpot checks").is_some(), "{}", explain(&out));
    assert!(line(&text, "ok", "destination").is_some(), "the destination is checked all the same: {}", explain(&out));
    assert!(!explain(&out).contains("not-the-right-token"), "the token never shows");

    let unset = command(Some(&config), &["check"], None).output().await.unwrap();
    assert_eq!(unset.status.code(), Some(77), "{}", explain(&unset));
    let unset_text = stdout(&unset);
    let failed = line(&unset_text, "FAILED", "hubspot").unwrap_or_else(|| panic!("{}", explain(&unset)));
    assert!(failed.contains(&format!("{TOKEN_VAR} is not set")) && failed.contains("export"), "{failed}");
}

#[tokio::test]
async fn check_names_the_missing_scope_per_object() {
    let scopes = ["crm.objects.contacts.read", "crm.schemas.contacts.read", "crm.schemas.custom.read"]
        .map(str::to_owned)
        .to_vec();
    let sim = Sim::start(SimConfig {
        tokens: vec![
            TokenGrant { token: DEFAULT_TOKEN.to_owned(), scopes: None },
            TokenGrant { token: "pat-contacts-only".to_owned(), scopes: Some(scopes) },
        ],
        ..unlimited(small_portal())
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.handle.base_url(), &sqlite_sections(dir.path()));
    let out = command(Some(&config), &["check"], Some("pat-contacts-only")).output().await.unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(77), "{}", explain(&out));
    assert!(line(&text, "ok", "hubspot").is_some(), "the token itself is accepted: {}", explain(&out));
    assert!(line(&text, "ok", "contacts records").is_some(), "{}", explain(&out));
    for (name, scope) in [
        ("deals properties", "crm.schemas.deals.read"),
        ("deals records", "crm.objects.deals.read"),
        ("cars records", "crm.objects.custom.read"),
        ("owners", "crm.objects.owners.read"),
    ] {
        let failed = line(&text, "FAILED", name).unwrap_or_else(|| panic!("no failure for {name}: {}", explain(&out)));
        assert!(failed.contains(scope), "{name} names {scope}: {failed}");
        assert!(failed.contains("add it to the private app"), "{name} says what to do: {failed}");
    }
}

#[tokio::test]
async fn check_reports_an_unreachable_postgres_and_what_to_do() {
    let sim = Sim::small().await;
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let sections =
        format!("[destination]\nurl = \"postgres://hsync:pw-5ecret@127.0.0.1:{port}/warehouse\"\n\n{OBJECTS}");
    let config = write_config(dir.path(), &sim.handle.base_url(), &sections);
    let out = hsync(&config, &["check"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(69), "an unreachable destination is transient (69): {}", explain(&out));
    let failed = line(&text, "FAILED", "destination").unwrap_or_else(|| panic!("{}", explain(&out)));
    assert!(failed.contains("cannot reach the postgres destination"), "{failed}");
    assert!(failed.contains("check that it is running and destination.url is right"), "says what to do: {failed}");
    assert!(line(&text, "ok", "contacts records").is_some(), "HubSpot is checked all the same: {}", explain(&out));
    assert!(!explain(&out).contains("pw-5ecret"), "the password never shows: {}", explain(&out));
}

/// sqlx 0.9.0 leaves Nagle's algorithm on, which stalls each COPY behind a delayed ACK; hsync
/// sets TCP_NODELAY on every pooled Postgres connection itself (src/destination/postgres/nodelay.rs).
#[tokio::test]
async fn postgres_connections_over_tcp_get_tcp_nodelay() {
    let Some(pg) = FreshPostgres::create().await else { return };
    if pg.url.contains("host=/") {
        eprintln!("skipped: {} is a Unix socket, which has no Nagle's algorithm to turn off", pg.url);
        pg.drop_schemas().await;
        return;
    }
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let sections = format!("[destination]\n{}\n\n{OBJECTS}", pg.destination_keys());
    let config = write_config(dir.path(), &sim.handle.base_url(), &sections);
    let out = command(Some(&config), &["check"], Some(DEFAULT_TOKEN))
        .env("RUST_LOG", "warn,hsync::destination::postgres::nodelay=debug")
        .output()
        .await
        .unwrap();
    assert_all_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TCP_NODELAY set on the Postgres connection"), "{}", explain(&out));
    assert!(!stderr.contains("TCP_NODELAY not set"), "{}", explain(&out));
    pg.drop_schemas().await;
}

/// `url` (`postgres://USER@REST`, the test database's) with `password` in its user-info, or
/// `None` when the test database's URL has another shape.
fn with_password(url: &str, password: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let (user, host) = rest.split_once('@')?;
    (!user.contains(':')).then(|| format!("{scheme}://{user}:{password}@{host}"))
}

/// `url` with `pairs` added to its query.
fn with_query(url: &str, pairs: &str) -> String {
    format!("{url}{}{pairs}", if url.contains('?') { '&' } else { '?' })
}

/// Neither `hsync config` nor `hsync check` (with warnings logged) prints a password, whatever
/// form the URL gives it: in the user-info holding `@`, `/` or `?` unencoded, or as
/// `password=` or `sslpassword=` parameters. Those the driver can read reach the local
/// (trust-auth) Postgres and pass; the ambiguous ones are refused as configuration (78).
#[tokio::test]
async fn config_and_check_never_print_a_destination_password() {
    let Some(pg) = FreshPostgres::create().await else { return };
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let mut forms = vec![
        (with_query(&pg.url, "password=5ecret-q"), true),
        (with_query(&pg.url, "sslmode=prefer&sslpassword=5ecret-s"), true),
    ];
    for (password, connects) in [("5ecret@at", true), ("5ecret/slash", false), ("5ecret?mark", false)] {
        match with_password(&pg.url, password) {
            Some(url) => forms.push((url, connects)),
            None => eprintln!("not testing a user-info password: {} has no plain user@host", pg.url),
        }
    }
    for (url, connects) in forms {
        let keys = format!(
            "[destination]\nurl = \"{url}\"\nschema = \"{}\"\nstate_schema = \"{}\"\n\n[sync]\nobjects = [\"contacts\"]\n",
            pg.data_schema, pg.state_schema
        );
        let config = write_config(dir.path(), &sim.handle.base_url(), &keys);
        let shown = hsync(&config, &["config"]).await;
        assert!(!explain(&shown).contains("5ecret"), "hsync config shows the password of {url}: {}", explain(&shown));
        let out = hsync(&config, &["check"]).await;
        assert!(!explain(&out).contains("5ecret"), "hsync check shows the password of {url}: {}", explain(&out));
        if connects {
            assert_eq!(shown.status.code(), Some(0), "{}", explain(&shown));
            assert!(stdout(&shown).contains("***"), "the password is masked, not dropped: {}", explain(&shown));
            assert!(line(&stdout(&out), "ok", "destination").is_some(), "{url} connects: {}", explain(&out));
        } else {
            assert_eq!(shown.status.code(), Some(78), "{}", explain(&shown));
            assert_eq!(out.status.code(), Some(78), "{}", explain(&out));
            let text = stdout(&out);
            let failed = line(&text, "FAILED", "config").unwrap_or_else(|| panic!("{}", explain(&out)));
            assert!(failed.contains("percent-encode"), "says how to write it: {failed}");
        }
    }
    pg.drop_schemas().await;
}

/// An absurd configuration is refused as such (78) by `hsync config` and `hsync check`, each
/// problem named with what is allowed.
#[tokio::test]
async fn absurd_configuration_is_refused_naming_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hsync.toml");
    let text = format!(
        "[hubspot]\nbase_url = \"http://127.0.0.1:9\"\ntoken_env = \"{TOKEN_VAR}\"\nconnect_timeout_secs = 0\n\n\
         [destination]\nurl = \"sqlite://{}\"\n\n[sync]\nobjects = [\"contacts\", \"0-1\"]\n\n\
         [daemon]\ncdc_interval_secs = 0\n",
        dir.path().join("w.db").display()
    );
    std::fs::write(&config, text).unwrap();
    for args in [["config"], ["check"]] {
        let out = hsync(&config, &args).await;
        assert_eq!(out.status.code(), Some(78), "{}", explain(&out));
        let text = explain(&out);
        for expected in [
            "hubspot.connect_timeout_secs must be from 1 to 300, got 0",
            "daemon.cdc_interval_secs must be from 1 to 86400, got 0",
            "sync.objects names contacts twice, as \"contacts\" and \"0-1\"",
        ] {
            assert!(text.contains(expected), "{args:?} says {expected:?}: {text}");
        }
    }
    let out = command(Some(&config), &["cdc", "--interval-secs", "0"], None).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2), "a flag out of range is a usage error: {}", explain(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1..=86400"), "{}", explain(&out));
}

/// A token pasted where its variable's name belongs is refused without being echoed.
#[tokio::test]
async fn a_token_in_token_env_is_refused_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hsync.toml");
    std::fs::write(&config, "[hubspot]\ntoken_env = \"pat-na1-5ecret-0000\"\n").unwrap();
    for args in [["config"], ["check"]] {
        let out = hsync(&config, &args).await;
        assert_eq!(out.status.code(), Some(78), "{}", explain(&out));
        assert!(
            explain(&out).contains("hubspot.token_env must be the NAME of an environment variable"),
            "{}",
            explain(&out)
        );
        assert!(!explain(&out).contains("5ecret"), "{}", explain(&out));
    }
}

/// A line break around the token is trimmed; one inside it is an auth failure (77) that says
/// what is wrong and where, without printing the token.
#[tokio::test]
async fn a_token_with_a_line_break_is_trimmed_or_refused_as_auth() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.handle.base_url(), &sqlite_sections(dir.path()));
    let padded = format!(" {DEFAULT_TOKEN}\r\n");
    let out = command(Some(&config), &["check"], Some(&padded)).output().await.unwrap();
    assert_all_ok(&out);

    let (head, tail) = DEFAULT_TOKEN.split_at(4);
    for (broken, kind) in [(format!("{head}\n{tail}\n"), "a line break"), (format!("{head} {tail}"), "a space")] {
        let out = command(Some(&config), &["check"], Some(&broken)).output().await.unwrap();
        assert_eq!(out.status.code(), Some(77), "a malformed token is an auth failure: {}", explain(&out));
        let text = stdout(&out);
        let failed = line(&text, "FAILED", "hubspot").unwrap_or_else(|| panic!("{}", explain(&out)));
        assert!(failed.contains(&format!("has {kind} inside it (character 5 of")), "{failed}");
        assert!(failed.contains(TOKEN_VAR), "names where the token came from: {failed}");
        assert!(!explain(&out).contains(tail), "the token never shows: {}", explain(&out));
    }
}

/// A custom object named twice (by name and by type id) is found once HubSpot's schemas are
/// read: `hsync check` fails that name's line and a sync command refuses to start, both 78.
#[tokio::test]
async fn a_custom_object_named_twice_is_refused_once_resolved() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let sections = format!(
        "[destination]\nurl = \"sqlite://{}\"\n\n[sync]\nobjects = [\"contacts\", \"cars\", \"2-3508482\"]\n",
        dir.path().join("w.db").display()
    );
    let config = write_config(dir.path(), &sim.handle.base_url(), &sections);
    let out = hsync(&config, &["check"]).await;
    assert_eq!(out.status.code(), Some(78), "{}", explain(&out));
    let text = stdout(&out);
    let failed = line(&text, "FAILED", "2-3508482").unwrap_or_else(|| panic!("{}", explain(&out)));
    assert!(failed.contains("names the object type cars twice, as \"cars\" and \"2-3508482\""), "{failed}");
    assert!(line(&text, "ok", "cars records").is_some(), "the first name is checked: {}", explain(&out));

    let out = hsync(&config, &["cdc", "--once"]).await;
    assert_eq!(out.status.code(), Some(78), "{}", explain(&out));
    assert!(explain(&out).contains("list each object type once"), "{}", explain(&out));
}

/// With webhooks on, a missing client secret fails its own line with the config class, naming
/// the variable to set; once set, the line passes and never shows the secret.
#[tokio::test]
async fn check_needs_the_webhook_secret_when_webhooks_are_on() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let sections = format!(
        "{}\n[webhooks]\nenabled = true\nlisten = \"127.0.0.1:0\"\ntarget_url = \"https://hsync.example.com/hubspot/webhooks\"\n\
         client_secret_env = \"HSYNC_TEST_CHECK_WEBHOOK_SECRET\"\n",
        sqlite_sections(dir.path())
    );
    let config = write_config(dir.path(), &sim.handle.base_url(), &sections);
    let missing = command(Some(&config), &["check"], Some(DEFAULT_TOKEN))
        .env_remove("HSYNC_TEST_CHECK_WEBHOOK_SECRET")
        .output()
        .await
        .unwrap();
    assert_eq!(missing.status.code(), Some(78), "{}", explain(&missing));
    let text = stdout(&missing);
    let failed = line(&text, "FAILED", "webhooks").unwrap_or_else(|| panic!("{}", explain(&missing)));
    assert!(failed.contains("HSYNC_TEST_CHECK_WEBHOOK_SECRET"), "{failed}");
    let secret = "app-secret-never-printed";
    let set = command(Some(&config), &["check"], Some(DEFAULT_TOKEN))
        .env("HSYNC_TEST_CHECK_WEBHOOK_SECRET", secret)
        .output()
        .await
        .unwrap();
    assert_eq!(set.status.code(), Some(0), "{}", explain(&set));
    assert!(line(&stdout(&set), "ok", "webhooks").is_some(), "{}", explain(&set));
    assert!(!stdout(&set).contains(secret) && !String::from_utf8_lossy(&set.stderr).contains(secret));
}
