//! The destination's lease over the real binary: while another process holds it (a daemon, or
//! another command), every writing command refuses at once with exit 69 and a message naming
//! the holder, or waits for it with `--wait-for-lease`; read-only commands are not held up;
//! two backfills started together on a fresh Postgres schema leave one writer and a complete
//! table.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use hsync::config::Config;
use hsync::destination::{AnyDestination, Holder, Lease};
use hsync_sim::DEFAULT_TOKEN;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::support::cli::{command, explain, hsync, write_config};
use crate::support::{FreshPostgres, Sim};

/// How long a test waits for a process before failing with what it saw.
const PATIENCE: Duration = Duration::from_secs(180);
/// Exit code of a transient failure (`crate::error::ErrorClass::Transient`).
const EXIT_TRANSIENT: i32 = 69;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn config_for(dir: &Path, base_url: &str, destination: &str) -> PathBuf {
    write_config(dir, base_url, &format!("[destination]\n{destination}\n\n[sync]\nobjects = [\"contacts\"]\n"))
}

/// Takes the lease of the destination `config` names, in this process, as a daemon would.
async fn hold_lease(config: &Path) -> (Lease, Holder) {
    let config = Config::load(Some(config)).expect("config");
    let dest = AnyDestination::connect(&config.destination).await.expect("connect");
    let holder = Holder::this_process("hsync run");
    let lease = dest.try_lease(&config.destination.state_schema, &holder).await.expect("try").expect("free");
    (lease, holder)
}

/// Every writing command refuses (69) naming `named`; a read-only one still runs.
async fn writers_refuse(config: &Path, named: &str) {
    for args in [&["backfill"][..], &["cdc", "--once"], &["deletes"], &["schema-diff", "--apply"]] {
        let out = hsync(config, args).await;
        assert_eq!(out.status.code(), Some(EXIT_TRANSIENT), "{args:?}: {}", explain(&out));
        let said = stderr(&out);
        assert!(said.contains("is held by") && said.contains(named), "{args:?} names the holder: {said}");
        assert!(said.contains("--wait-for-lease"), "{args:?} says how to wait: {said}");
    }
    // Read-only: a plan of the drift (3: the tables do not exist yet), no lease needed.
    let out = hsync(config, &["schema-diff"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_sqlite_lease_refuses_every_writer_naming_the_holder() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let config = config_for(dir.path(), &sim.handle.base_url(), &format!("url = \"sqlite://{}\"", db.display()));
    let (lease, holder) = hold_lease(&config).await;
    writers_refuse(&config, &format!("hsync pid {} on host {} (`hsync run`, since ", holder.pid, holder.host)).await;
    drop(lease);
    let out = hsync(&config, &["backfill"]).await;
    assert!(out.status.success(), "once the lease is free: {}", explain(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_postgres_lease_refuses_every_writer_naming_the_holder() {
    let Some(pg) = FreshPostgres::create().await else { return };
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(dir.path(), &sim.handle.base_url(), &pg.destination_keys());
    let (lease, holder) = hold_lease(&config).await;
    writers_refuse(&config, &format!("`hsync run pid {}@{}", holder.pid, holder.host)).await;
    drop(lease);
    let out = hsync(&config, &["backfill"]).await;
    pg.drop_schemas().await;
    assert!(out.status.success(), "once the lease is free: {}", explain(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_lease_waits_until_the_holder_lets_go() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let config = config_for(dir.path(), &sim.handle.base_url(), &format!("url = \"sqlite://{}\"", db.display()));
    let (lease, holder) = hold_lease(&config).await;
    let mut child = command(Some(&config), &["--wait-for-lease", "600", "backfill"], Some(DEFAULT_TOKEN))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let waiting = tokio::time::timeout(PATIENCE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            let found = line.contains("waiting for the destination's lease");
            seen.push(line);
            if found {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(waiting, Ok(true), "the command says it waits: {seen:?}");
    assert!(seen.last().unwrap().contains(&format!("hsync pid {}", holder.pid)), "{seen:?}");
    drop(lease);
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let status = tokio::time::timeout(PATIENCE, child.wait()).await.expect("exits").unwrap();
    assert!(status.success(), "the backfill runs once the lease is free: {status:?}");
}

/// A TCP forwarder to HubSpot that holds every connection until released.
struct HeldHubSpot {
    base_url: String,
    release: tokio::sync::watch::Sender<bool>,
}

impl HeldHubSpot {
    async fn start(upstream: &str) -> HeldHubSpot {
        let upstream = reqwest::Url::parse(upstream).unwrap();
        let upstream = format!("{}:{}", upstream.host_str().unwrap(), upstream.port().unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let (release, released) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut released = released.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if released.wait_for(|r| *r).await.is_err() {
                        return;
                    }
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        HeldHubSpot { base_url, release }
    }
}

/// Two backfills at the same moment on a fresh Postgres schema: HubSpot is held, so the one
/// that took the lease cannot finish before the other has tried. The other refuses (69, naming
/// the first; never 70 or a duplicate key from racing set-up), the first completes the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_backfills_at_once_on_fresh_postgres_leave_one_writer_and_a_complete_table() {
    let Some(pg) = FreshPostgres::create().await else { return };
    let sim = Sim::small().await;
    let held = HeldHubSpot::start(&sim.handle.base_url()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(dir.path(), &held.base_url, &pg.destination_keys());
    let start = || {
        command(Some(&config), &["backfill"], Some(DEFAULT_TOKEN))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(), start());
    let pids = [a.id().unwrap(), b.id().unwrap()];
    let mut a = tokio::spawn(a.wait_with_output());
    let mut b = tokio::spawn(b.wait_with_output());
    let (first, refused, winner_pid, rest) = tokio::time::timeout(PATIENCE, async {
        tokio::select! {
            out = &mut a => (out.unwrap().unwrap(), pids[0], pids[1], b),
            out = &mut b => (out.unwrap().unwrap(), pids[1], pids[0], a),
        }
    })
    .await
    .expect("one backfill ends while HubSpot is held");
    assert_eq!(first.status.code(), Some(EXIT_TRANSIENT), "pid {refused} refuses: {}", explain(&first));
    let said = stderr(&first);
    assert!(said.contains(&format!("`hsync backfill pid {winner_pid}@")), "names the writer: {said}");
    held.release.send_replace(true);
    let second = tokio::time::timeout(PATIENCE, rest).await.expect("the writer ends").unwrap().unwrap();
    let rows: i64 = {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&pg.url).await.unwrap();
        let sql = format!("select count(*) from \"{}\".contacts", pg.data_schema);
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut conn).await.unwrap()
    };
    pg.drop_schemas().await;
    assert!(second.status.success(), "the writer completes: {}", explain(&second));
    assert_eq!(usize::try_from(rows).unwrap(), sim.truth_ids("contacts").await.len());
}
