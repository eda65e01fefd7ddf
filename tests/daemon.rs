//! `hsync run` as a real subprocess against the simulator: graceful SIGTERM mid-backfill,
//! Prometheus metrics that move, readiness that follows the destination, a leader/standby pair
//! with failover, a spent daily budget that pauses and resumes, systemd notifications, the
//! bearer token on the endpoints, a token without one type's scope stopping only that type's
//! jobs, and property history kept after the backfill and after CDC.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use chrono::Timelike;
use hsync::destination::sqlite::SqliteDestination;
use hsync::state::StateStore;
use hsync::state::StreamId;
use hsync::stream::state::BackfillState;
use hsync_sim::{LimitSettings, PortalSpec, DEFAULT_TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::support::{limited, unlimited, FreshPostgres, Sim};

const TOKEN_VAR: &str = "HSYNC_TEST_SIM_TOKEN";
/// How long a test waits for the daemon to reach a state before failing with what it saw.
const PATIENCE: Duration = Duration::from_secs(180);

/// Where a daemon's destination is.
enum Target<'a> {
    Sqlite(&'a Path),
    Postgres { url: String, pg: &'a FreshPostgres },
}

fn write_config(dir: &Path, sim: &Sim, target: &Target<'_>, objects: &[&str], extra: &str) -> PathBuf {
    let destination = match target {
        Target::Sqlite(db) => format!("url = \"sqlite://{}\"", db.display()),
        Target::Postgres { url, pg } => {
            format!("url = \"{url}\"\nschema = \"{}\"\nstate_schema = \"{}\"", pg.data_schema, pg.state_schema)
        }
    };
    let objects = objects.iter().map(|o| format!("\"{o}\"")).collect::<Vec<_>>().join(", ");
    let text = format!(
        "[hubspot]\nbase_url = \"{base}\"\ntoken_env = \"{TOKEN_VAR}\"\n\n[destination]\n{destination}\n\n\
         [sync]\nobjects = [{objects}]\nsettle_lag_secs = 1\n\n\
         [daemon]\ncdc_interval_secs = 1\nassociations_interval_secs = 2\ndeletes_interval_secs = 30\n\
         lease_retry_secs = 1\nshutdown_grace_secs = 60\n{extra}",
        base = sim.handle.base_url(),
    );
    let path = dir.join(format!("hsync-{:08x}.toml", rand::random::<u32>()));
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `hsync run`.
struct Daemon {
    child: tokio::process::Child,
    base: String,
    http: reqwest::Client,
    log: PathBuf,
}

impl Daemon {
    async fn start(config: &Path, envs: &[(&str, &str)]) -> Daemon {
        let log = config.with_extension(format!("{:08x}.log", rand::random::<u32>()));
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hsync"));
        cmd.arg("--config").arg(config).args(["run", "--listen", "127.0.0.1:0"]).env(TOKEN_VAR, DEFAULT_TOKEN);
        // Only the systemd test hands the daemon a notification socket.
        cmd.env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC").envs(envs.iter().copied());
        cmd.stdout(std::process::Stdio::piped()).stderr(std::fs::File::create(&log).unwrap()).kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(PATIENCE, lines.next_line()).await.ok().and_then(|l| l.ok().flatten());
        let Some(base) = first.as_deref().and_then(|l| l.strip_prefix("hsync run: endpoints on ")) else {
            panic!("the daemon printed no address ({first:?}); its log:\n{}", std::fs::read_to_string(&log).unwrap());
        };
        let base = base.to_owned();
        // Keep draining stdout so the daemon never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Daemon { child, base, http: reqwest::Client::new(), log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get_as(&self, path: &str, bearer: Option<&str>) -> (StatusCode, String) {
        let mut request = self.http.get(format!("{}{path}", self.base)).timeout(Duration::from_secs(20));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(reply) => (reply.status(), reply.text().await.unwrap_or_default()),
            Err(e) => panic!("GET {path}: {e}; daemon log:\n{}", self.log()),
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        self.get_as(path, None).await
    }

    async fn post_as(&self, path: &str, body: &[u8], bearer: Option<&str>) -> (StatusCode, String) {
        let mut request =
            self.http.post(format!("{}{path}", self.base)).body(body.to_vec()).timeout(Duration::from_secs(60));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(reply) => (reply.status(), reply.text().await.unwrap_or_default()),
            Err(e) => panic!("POST {path}: {e}; daemon log:\n{}", self.log()),
        }
    }

    async fn status(&self) -> Value {
        let (_, body) = self.get("/status").await;
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    /// Polls `/status` until `done` holds; fails with the last document otherwise.
    async fn wait_status(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let status = self.status().await;
            if done(&status) {
                return status;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; last /status:\n{status:#}\ndaemon log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn metrics(&self) -> prometheus_parse::Scrape {
        let (code, body) = self.get("/metrics").await;
        assert_eq!(code, StatusCode::OK, "{body}");
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text")
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill").args([name, &pid]).status().unwrap();
        assert!(status.success());
    }

    async fn wait_exit(&mut self) -> ExitStatus {
        match tokio::time::timeout(PATIENCE, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!("the daemon did not exit; its log:\n{}", self.log()),
        }
    }
}

fn role(status: &Value) -> &str {
    status["daemon"]["role"].as_str().unwrap_or_default()
}

fn stream<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["streams"].as_array()?.iter().find(|s| s["stream"] == name)
}

fn backfill_done(status: &Value, objects: &[&str]) -> bool {
    objects.iter().all(|o| stream(status, &format!("backfill:{o}")).is_some_and(|s| s["phase"] == "done"))
}

/// Sum of a metric's samples whose labels include `labels`.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let values: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Search pages requested more than once, keyed by path and filters.
fn repeated_pages(log: &Value) -> usize {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for entry in log["entries"].as_array().unwrap() {
        let body: Value = serde_json::from_str(entry["body"].as_str().unwrap_or("{}")).unwrap_or_default();
        if body["limit"] == 1 || entry["status"] != 200 {
            continue; // the progress count, not a data page; or a page never answered
        }
        if let Some(key) = crate::support::data_page_key(entry) {
            *seen.entry(key).or_default() += 1;
        }
    }
    seen.values().map(|n| n - 1).sum()
}

async fn sqlite_ids(db: &Path, table: &str) -> Vec<i64> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let sql = format!("select id from \"{table}\" where _hsync_archived_at is null and _hsync_deleted_at is null and _hsync_merged_into is null order by id");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&mut conn).await.unwrap()
}

async fn truth_ids(sim: &Sim, table: &str) -> Vec<i64> {
    sim.truth_ids(table).await.into_iter().map(|id| id as i64).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_backfill_commits_and_resume_repeats_at_most_one_page_per_range() {
    // Professional limits: 5 searches a second, so 150 pages take long enough to stop midway.
    let portal =
        PortalSpec { contacts: 30_000, companies: 10, deals: 10, tickets: 10, cars: 5, ..PortalSpec::default() };
    let sim = Sim::start(limited(portal, LimitSettings::default())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let config = write_config(dir.path(), &sim, &Target::Sqlite(&db), &["contacts"], "");
    let mut daemon = Daemon::start(&config, &[]).await;
    daemon
        .wait_status("a backfill well under way", |s| {
            stream(s, "backfill:contacts").and_then(|b| b["rows"].as_u64()).is_some_and(|rows| rows >= 3_000)
        })
        .await;
    daemon.signal("-TERM");
    let exit = daemon.wait_exit().await;
    assert!(exit.success(), "exit {exit:?}; log:\n{}", daemon.log());

    // The checkpoint was committed with its data: its row count and last id match the table.
    let dest = SqliteDestination::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let saved = dest.state_store().load_checkpoint(&StreamId::backfill("contacts")).await.unwrap().expect("checkpoint");
    let Some(BackfillState::Running { after_id, rows, ranged, .. }) = BackfillState::from_checkpoint(&saved).ok()
    else {
        panic!("expected an interrupted backfill, found {:?}", saved.state);
    };
    let stored = sqlite_ids(&db, "contacts").await;
    assert_eq!(stored.len() as i64, rows, "rows in the checkpoint and in the table");
    // Walked in ranges: every id outside the unfinished ranges is stored, none inside beyond
    // a range's start.
    let ranged = ranged.expect("30,000 contacts are walked in concurrent ranges");
    assert!(ranged.ranges.len() >= 2, "{ranged:?}");
    let truth = truth_ids(&sim, "contacts").await;
    let outside: Vec<i64> = truth.iter().copied().filter(|id| !ranged.ranges.iter().any(|r| r.holds(*id))).collect();
    let stored_set: std::collections::BTreeSet<i64> = stored.iter().copied().collect();
    assert!(outside.iter().all(|id| stored_set.contains(id)), "every id outside the unfinished ranges is stored");
    assert_eq!(outside.len(), stored.len(), "and nothing inside them is");
    assert!(stored.iter().take_while(|id| **id <= after_id).count() > 0, "the prefix up to {after_id} is stored");
    assert!(stored.len() < 30_000, "the backfill must have been stopped midway");
    dest.close().await;

    // Resume with the CLI: nothing lost or doubled, at most one page read twice.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hsync"))
        .arg("--config")
        .arg(&config)
        .args(["backfill", "--resume"])
        .env(TOKEN_VAR, DEFAULT_TOKEN)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sqlite_ids(&db, "contacts").await, truth_ids(&sim, "contacts").await);
    let log = sim.admin(Method::GET, "/_sim/requests", None).await.1;
    let repeated = repeated_pages(&log);
    let walkers = hsync::stream::backfill::DEFAULT_CONCURRENCY;
    let ranges = walkers + hsync::stream::readers::list_walkers(walkers, 1);
    assert!(repeated <= ranges, "{repeated} pages were read twice: at most one per range");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_move_with_work() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let objects = ["contacts", "companies"];
    let config = write_config(dir.path(), &sim, &Target::Sqlite(&db), &objects, "");
    let daemon = Daemon::start(&config, &[]).await;
    daemon.wait_status("backfills done", |s| backfill_done(s, &objects)).await;
    daemon.wait_status("the first CDC pass", |s| stream(s, "cdc:contacts").is_some()).await;

    let before = daemon.metrics().await;
    assert_eq!(sample(&before, "hsync_leader", &[]), Some(1.0));
    assert_eq!(sample(&before, "hsync_budget_paused", &[]), Some(0.0));
    assert_eq!(sample(&before, "hsync_backfill_progress_ratio", &[("object", "contacts")]), Some(1.0));
    let merged_before = sample(&before, "hsync_rows_merged_total", &[("object", "contacts")]).unwrap();
    assert!(merged_before >= 250.0, "the backfill merged every contact, got {merged_before}");
    let requests_before = sample(&before, "hsync_hubspot_requests_total", &[]).unwrap();
    assert!(sample(&before, "hsync_hubspot_budget_remaining", &[]).is_some());
    assert!(sample(&before, "hsync_stream_lag_seconds", &[("object", "contacts")]).is_some());
    assert!(sample(&before, "hsync_stream_last_success_timestamp_seconds", &[("stream", "cdc:contacts")]).is_some());

    // Change records; the next CDC passes merge them and the counters move.
    let (code, reply) =
        sim.admin(Method::POST, "/_sim/objects/contacts/touch", Some(&json!({"count": 40, "spreadMs": 200}))).await;
    assert!(code.is_success(), "{reply}");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = daemon.metrics().await;
        let merged = sample(&now, "hsync_rows_merged_total", &[("object", "contacts")]).unwrap();
        let requests = sample(&now, "hsync_hubspot_requests_total", &[]).unwrap();
        if merged >= merged_before + 40.0 && requests > requests_before {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "metrics did not move: merged {merged}, requests {requests}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// What a [`Gate`] does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Passage {
    Open,
    /// Connections are closed: the client sees the server go away.
    Closed,
    /// Connections stay open and nothing passes: the client waits, as behind a dead network.
    Stalled,
}

/// A TCP forwarder the test can cut, stall and restore, standing between the daemon and Postgres.
struct Gate {
    addr: std::net::SocketAddr,
    passage: tokio::sync::watch::Sender<Passage>,
}

impl Gate {
    async fn start(upstream: std::net::SocketAddr) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (passage, watch) = tokio::sync::watch::channel(Passage::Open);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                let mut changed = watch.clone();
                let now = *watch.borrow();
                match now {
                    Passage::Closed => continue, // dropped: the client sees the connection close
                    Passage::Stalled => {
                        // Held without an answer until the passage changes, then dropped.
                        tokio::spawn(async move {
                            let _ = changed.wait_for(|p| *p != Passage::Stalled).await;
                            drop(inbound);
                        });
                    }
                    Passage::Open => {
                        tokio::spawn(async move {
                            let Ok(mut outbound) = TcpStream::connect(upstream).await else { return };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                _ = changed.wait_for(|p| *p != Passage::Open) => {}
                            }
                            // A stalled passage keeps both ends open and silent until it changes.
                            let _ = changed.wait_for(|p| *p != Passage::Stalled).await;
                        });
                    }
                }
            }
        });
        Gate { addr, passage }
    }

    fn set_open(&self, open: bool) {
        self.passage.send_replace(if open { Passage::Open } else { Passage::Closed });
    }

    /// The Postgres URL of `pg` through a new gate.
    async fn before(pg: &FreshPostgres) -> (Gate, String) {
        let upstream_url = reqwest::Url::parse(&pg.url).unwrap();
        let upstream = format!("{}:{}", upstream_url.host_str().unwrap(), upstream_url.port().unwrap_or(5432));
        let upstream: std::net::SocketAddr = tokio::net::lookup_host(upstream).await.unwrap().next().unwrap();
        let gate = Gate::start(upstream).await;
        let mut via_gate = upstream_url.clone();
        via_gate.set_port(Some(gate.addr.port())).unwrap();
        via_gate.set_host(Some("127.0.0.1")).unwrap();
        (gate, via_gate.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_destination_going_away_and_coming_back() {
    let Some(pg) = FreshPostgres::create().await else { return };
    let (gate, via_gate) = Gate::before(&pg).await;

    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let target = Target::Postgres { url: via_gate, pg: &pg };
    let config = write_config(dir.path(), &sim, &target, &["contacts"], "");
    let daemon = Daemon::start(&config, &[]).await;
    let wait_ready = |want: StatusCode| {
        let daemon = &daemon;
        async move {
            let deadline = tokio::time::Instant::now() + PATIENCE;
            loop {
                let (code, body) = daemon.get("/readyz").await;
                if code == want {
                    return body;
                }
                assert!(tokio::time::Instant::now() < deadline, "/readyz stayed {code}: {body}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    wait_ready(StatusCode::OK).await;
    gate.set_open(false);
    let body = wait_ready(StatusCode::SERVICE_UNAVAILABLE).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["ready"], false);
    assert_ne!(body["checks"]["destination"], "ok", "{body}");
    assert_eq!(body["checks"]["hubspot_token"], "ok", "{body}");
    let (alive, _) = daemon.get("/healthz").await;
    assert_eq!(alive, StatusCode::OK, "liveness does not depend on the destination");
    gate.set_open(true);
    wait_ready(StatusCode::OK).await;
    // And the sync itself carries on through the outage.
    daemon.wait_status("the backfill", |s| backfill_done(s, &["contacts"])).await;
    drop(daemon);
    pg.drop_schemas().await;
}

/// While the database does not answer, `/status` answers at once from memory: the last
/// document read, marked stale, with the database marked unreachable and the error's class.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_answers_from_memory_while_the_database_does_not() {
    let Some(pg) = FreshPostgres::create().await else { return };
    let (gate, via_gate) = Gate::before(&pg).await;
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim, &Target::Postgres { url: via_gate, pg: &pg }, &["contacts"], "");
    let daemon = Daemon::start(&config, &[]).await;
    let mut last = daemon
        .wait_status("the backfill, read from the database", |s| {
            backfill_done(s, &["contacts"]) && s["database"]["reachable"] == true
        })
        .await;
    assert_eq!(last["database"]["stale"], false, "{last:#}");

    for (what, cut) in [("stalled", Passage::Stalled), ("closed", Passage::Closed)] {
        gate.passage.send_replace(cut);
        // Daemon::get fails the test when an answer takes 20 s; a read already under way when
        // the gate shut may still succeed, so poll until one does not.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let during = loop {
            let (code, body) = daemon.get("/status").await;
            assert_eq!(code, StatusCode::OK, "{what}: {body}");
            let during: Value = serde_json::from_str(&body).unwrap();
            if during["database"]["reachable"] == false {
                break during;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: the database stayed reachable: {during:#}");
            last = during;
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(during["database"]["stale"], true, "{what}: {during:#}");
        assert_eq!(during["database"]["class"], "transient", "{what}: {during:#}");
        assert!(during["database"]["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: {during:#}");
        assert_eq!(during["generated_at"], last["generated_at"], "{what}: the last document read is served");
        assert!(stream(&during, "backfill:contacts").is_some(), "{what}: {during:#}");
        assert!(during["daemon"]["role"].is_string(), "the daemon's own view is live: {during:#}");
        gate.set_open(true);
        last = daemon.wait_status("the database answering again", |s| s["database"]["reachable"] == true).await;
    }
    drop(daemon);
    pg.drop_schemas().await;
}

/// A destination that refuses for good (an unknown database) shows in `/status` with its class
/// while the daemon keeps running and retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_a_refused_connection_with_its_class() {
    let Some(pg) = FreshPostgres::create().await else { return };
    let mut url = reqwest::Url::parse(&pg.url).unwrap();
    let name = format!("hsync_missing_{:08x}", rand::random::<u32>());
    url.set_path(&format!("/{name}"));
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let target = Target::Postgres { url: url.to_string(), pg: &pg };
    let config = write_config(dir.path(), &sim, &target, &["contacts"], "");
    let daemon = Daemon::start(&config, &[]).await;
    let status = daemon.wait_status("the refused connection", |s| s["database"]["class"] == "config").await;
    assert_eq!(status["database"]["reachable"], false, "{status:#}");
    assert!(status["database"]["error"].as_str().is_some_and(|e| e.contains(&name)), "{status:#}");
    assert_eq!(status["daemon"]["connect_error"]["class"], "config", "{status:#}");
    assert_eq!(daemon.get("/healthz").await.0, StatusCode::OK, "the daemon keeps running");
}

/// Connections that send nothing, or only part of a request's headers, are closed by the
/// daemon after its header read timeout (and beyond its connection cap at once), and the
/// endpoints keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_closed_by_the_daemon() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let config = write_config(dir.path(), &sim, &Target::Sqlite(&db), &["contacts"], "");
    let daemon = Daemon::start(&config, &[]).await;
    let addr = daemon.base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for n in 0..300 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        if n % 2 == 1 {
            stream.write_all(b"GET /status HTTP/1.1\r\nHost: hsync\r\n").await.unwrap();
        }
        idle.push(stream);
    }
    // Generous: the daemon's timeout is seconds; a server without one never closes them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut still_open = 0;
    for mut stream in idle {
        let mut buf = [0u8; 1024];
        let closed = loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Err(_) => break false,
                Ok(Ok(0) | Err(_)) => break true,
                Ok(Ok(_)) => continue, // e.g. a 408 answer before the close
            }
        };
        still_open += usize::from(!closed);
    }
    assert_eq!(still_open, 0, "connections the daemon left open after 60 s");
    assert_eq!(daemon.get("/healthz").await.0, StatusCode::OK, "{}", daemon.log());
}

/// A `listen` beyond loopback without a bearer token is refused (config, 78) naming both keys,
/// unless `daemon.allow_unauthenticated_listen` says the network keeps strangers out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_listen_without_a_token_is_refused_unless_allowed() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let run = |config: PathBuf| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hsync"));
        cmd.arg("--config").arg(config).args(["run", "--listen", "0.0.0.0:0"]).env(TOKEN_VAR, DEFAULT_TOKEN);
        cmd.env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC").kill_on_drop(true);
        cmd
    };
    let refused = write_config(dir.path(), &sim, &Target::Sqlite(&db), &["contacts"], "");
    let out = tokio::time::timeout(PATIENCE, run(refused).output()).await.expect("exits").unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    for key in ["daemon.bearer_token_env", "daemon.allow_unauthenticated_listen", "0.0.0.0"] {
        assert!(stderr.contains(key), "names {key}: {stderr}");
    }
    assert!(!db.exists(), "refused before touching the destination");

    let allowed =
        write_config(dir.path(), &sim, &Target::Sqlite(&db), &["contacts"], "allow_unauthenticated_listen = true\n");
    let mut child = run(allowed).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(PATIENCE, lines.next_line()).await.expect("prints its address").unwrap();
    assert!(first.is_some_and(|l| l.starts_with("hsync run: endpoints on http://0.0.0.0:")), "serves when allowed");
    child.kill().await.unwrap();
}

async fn one_leader_and_failover(sim: &Sim, dir: &Path, target: Target<'_>) {
    let objects = ["contacts", "companies", "deals"];
    let config = write_config(dir, sim, &target, &objects, "");
    let mut first = Daemon::start(&config, &[]).await;
    first.wait_status("the first daemon leading", |s| role(s) == "leader").await;
    let second = Daemon::start(&config, &[]).await;
    let standby = second.wait_status("the second daemon standing by", |s| role(s) == "standby").await;
    assert_eq!(standby["daemon"]["jobs"].as_array().map(Vec::len), Some(0), "a standby schedules nothing");
    // While the first works, the second stays a standby that runs nothing.
    first.wait_status("the first daemon's backfills", |s| backfill_done(s, &objects)).await;
    let still = second.status().await;
    assert_eq!(role(&still), "standby");
    assert_eq!(sample(&second.metrics().await, "hsync_leader", &[]), Some(0.0));
    assert_eq!(sample(&first.metrics().await, "hsync_leader", &[]), Some(1.0));

    // Kill the leader outright: the standby takes over and keeps the warehouse current.
    first.signal("-KILL");
    first.wait_exit().await;
    second.wait_status("the standby taking over", |s| role(s) == "leader").await;
    let (code, reply) =
        sim.admin(Method::POST, "/_sim/objects/deals/touch", Some(&json!({"count": 5, "spreadMs": 50}))).await;
    assert!(code.is_success(), "{reply}");
    let touched_at = chrono::Utc::now();
    second
        .wait_status("the new leader's CDC pass after the change", |s| {
            stream(s, "cdc:deals").and_then(|c| c["last_run"]["started_at"].as_str()).is_some_and(|at| {
                chrono::DateTime::parse_from_rfc3339(at).is_ok_and(|at| at > touched_at + chrono::Duration::seconds(2))
            })
        })
        .await;
    assert_eq!(sample(&second.metrics().await, "hsync_leader", &[]), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_one_sqlite_file_one_leads_and_the_other_takes_over() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    one_leader_and_failover(&sim, dir.path(), Target::Sqlite(&db)).await;
    let ids = sqlite_ids(&db, "deals").await;
    assert_eq!(ids, truth_ids(&sim, "deals").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_one_postgres_one_leads_and_the_other_takes_over() {
    let Some(pg) = FreshPostgres::create().await else { return };
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    one_leader_and_failover(&sim, dir.path(), Target::Postgres { url: pg.url.clone(), pg: &pg }).await;
    pg.drop_schemas().await;
}

/// A UTC offset whose midnight comes between 25 and 85 seconds from now, so a budget spent
/// now resets while the test waits.
fn zone_with_midnight_soon() -> String {
    let now = chrono::Utc::now();
    let seconds_left_in_minute = 60 - i64::from(now.second());
    let target_minute = if seconds_left_in_minute >= 25 { 23 * 60 + 59 } else { 23 * 60 + 58 };
    let utc_minute = i64::from(now.hour() * 60 + now.minute());
    let offset = (target_minute - utc_minute).rem_euclid(24 * 60);
    format!("+{:02}:{:02}", offset / 60, offset % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_pauses_every_stream_until_the_reset_then_work_resumes() {
    // Room on each day for setup, the schema read and the owners and pipelines refresh besides
    // backfill pages, and far more pages than two days' budgets allow.
    let portal =
        PortalSpec { contacts: 10_000, companies: 10, deals: 10, tickets: 10, cars: 5, ..PortalSpec::default() };
    let sim = Sim::start(unlimited(portal)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let zone = zone_with_midnight_soon();
    let limits = format!("\n[limits]\ndaily_budget = 20\ntimezone = \"{zone}\"\n");
    let config = write_config(dir.path(), &sim, &Target::Sqlite(&db), &["contacts"], &limits);
    let daemon = Daemon::start(&config, &[]).await;
    let paused = daemon.wait_status("the budget pause", |s| s["daemon"]["paused_until"].is_string()).await;
    let until = chrono::DateTime::parse_from_rfc3339(paused["daemon"]["paused_until"].as_str().unwrap()).unwrap();
    assert!(until > chrono::Utc::now(), "the pause lasts until the coming reset");
    assert_eq!(paused["budget"]["used"], 20, "{:#}", paused["budget"]);
    let rows_paused = stream(&paused, "backfill:contacts").and_then(|b| b["rows"].as_u64()).unwrap_or(0);
    assert!(rows_paused < 10_000, "the budget stops the backfill midway");
    let metrics = daemon.metrics().await;
    assert_eq!(sample(&metrics, "hsync_budget_paused", &[]), Some(1.0));

    // After the portal's midnight the budget is fresh and the backfill moves on.
    let resumed = daemon
        .wait_status("work after the reset", |s| {
            s["daemon"]["paused_until"].is_null()
                && stream(s, "backfill:contacts").and_then(|b| b["rows"].as_u64()).is_some_and(|r| r > rows_paused)
        })
        .await;
    assert!(chrono::DateTime::parse_from_rfc3339(resumed["generated_at"].as_str().unwrap()).unwrap() >= until);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_require_the_bearer_token_except_the_probes() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let extra = "bearer_token_env = \"HSYNC_TEST_HTTP_TOKEN\"\n";
    let config = write_config(dir.path(), &sim, &Target::Sqlite(&db), &["contacts"], extra);
    let daemon = Daemon::start(&config, &[("HSYNC_TEST_HTTP_TOKEN", "s3cret-for-the-test")]).await;
    // /status answers 503 until the leader has prepared the state store; wait for that.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while daemon.get_as("/status", Some("s3cret-for-the-test")).await.0 == StatusCode::SERVICE_UNAVAILABLE {
        assert!(tokio::time::Instant::now() < deadline, "/status stayed unavailable: {}", daemon.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for path in ["/metrics", "/status"] {
        assert_eq!(daemon.get(path).await.0, StatusCode::UNAUTHORIZED, "{path} without a token");
        assert_eq!(daemon.get_as(path, Some("wrong")).await.0, StatusCode::UNAUTHORIZED, "{path} with a wrong token");
        assert_eq!(daemon.get_as(path, Some("s3cret-for-the-test")).await.0, StatusCode::OK, "{path} with the token");
    }
    assert_eq!(daemon.get("/healthz").await.0, StatusCode::OK);
    assert!(!daemon.log().contains("s3cret"), "the token never reaches the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_watchdog_and_stopping() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let config = write_config(dir.path(), &sim, &Target::Sqlite(&db), &["contacts"], "");
    let socket_path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let heard = Arc::new(tokio::sync::Mutex::new(String::new()));
    let stop = CancellationToken::new();
    let listener = {
        let heard = Arc::clone(&heard);
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    got = socket.recv(&mut buf) => {
                        let n = got.unwrap();
                        let mut heard = heard.lock().await;
                        heard.push_str(&String::from_utf8_lossy(&buf[..n]));
                        heard.push('\n');
                    }
                }
            }
        })
    };
    let socket_env = socket_path.to_string_lossy().into_owned();
    let mut cmd_envs = vec![("WATCHDOG_USEC", "400000")];
    cmd_envs.push(("NOTIFY_SOCKET", socket_env.as_str()));
    let mut daemon = Daemon::start(&config, &cmd_envs).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !heard.lock().await.contains("WATCHDOG=1") {
        assert!(tokio::time::Instant::now() < deadline, "no watchdog ping; heard:\n{}", heard.lock().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    daemon.signal("-TERM");
    assert!(daemon.wait_exit().await.success(), "{}", daemon.log());
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    listener.await.unwrap();
    let heard = heard.lock().await.clone();
    let ready = heard.find("READY=1").expect("READY=1");
    let stopping = heard.find("STOPPING=1").expect("STOPPING=1");
    assert!(ready < stopping, "{heard}");
}

/// The owners rows a SQLite destination holds: id and whether `_hsync_removed_at` is set.
async fn sqlite_owners(db: &Path) -> Vec<(String, bool)> {
    use sqlx::Connection;
    let Ok(mut conn) = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await else {
        return Vec::new();
    };
    let sql = "select id, _hsync_removed_at is not null from owners order by id";
    sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_refreshes_owners_and_pipelines_on_their_interval() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let config = write_config(dir.path(), &sim, &Target::Sqlite(&db), &["contacts"], "dimensions_interval_secs = 1\n");
    let truth = sim.admin_ok(Method::GET, "/_sim/truth?objects=contacts", None).await;
    let listed = truth["owners"].as_array().expect("the simulator lists owners").len();
    assert!(listed > 2, "the seeded portal has owners to refresh, got {listed}");
    let daemon = Daemon::start(&config, &[]).await;

    let deadline = tokio::time::Instant::now() + PATIENCE;
    while sqlite_owners(&db).await.len() != listed {
        assert!(tokio::time::Instant::now() < deadline, "owners never refreshed:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let status =
        daemon.wait_status("the dimensions stream", |s| stream(s, "dimensions:owners_pipelines").is_some()).await;
    assert!(stream(&status, "dimensions:owners_pipelines").is_some(), "{status}");

    // An owner HubSpot stops listing is flagged by a later refresh, without anyone asking.
    let gone = match &truth["owners"][1]["id"] {
        Value::String(id) => id.clone(),
        other => other.to_string(),
    };
    sim.admin_ok(Method::DELETE, &format!("/_sim/owners/{gone}"), None).await;
    loop {
        let owners = sqlite_owners(&db).await;
        if owners.iter().any(|(id, removed)| *id == gone && *removed) {
            assert_eq!(owners.iter().filter(|(_, removed)| *removed).count(), 1, "{owners:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "owner {gone} never flagged:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn job<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["daemon"]["jobs"].as_array()?.iter().find(|j| j["job"] == name)
}

async fn sqlite_edge_count(db: &Path, from: &str, to: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let sql = "select count(*) from associations where from_type = ?1 and to_type = ?2 and deleted_at is null";
    sqlx::query_scalar(sql).bind(from).bind(to).fetch_one(&mut conn).await.unwrap()
}

/// The token cannot read line items: their backfill fails with the auth class and names the
/// scope, while every other object backfills, polls CDC and reads its associations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_scope_stops_only_that_objects_jobs() {
    let objects = [("calls", 80_u64), ("line_items", 30)].map(|(n, c)| (n.to_owned(), c)).into_iter().collect();
    let portal =
        PortalSpec { contacts: 60, companies: 5, deals: 20, tickets: 0, cars: 0, objects, ..PortalSpec::default() };
    let sim = Sim::start(unlimited(portal)).await;
    let token = "pat-na1-daemon-without-line-items";
    let scopes = crate::sync_catalogue::scopes_without_line_items();
    sim.admin_ok(Method::PUT, "/_sim/tokens", Some(&json!({"token": token, "scopes": scopes}))).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let synced = ["contacts", "deals", "calls"];
    let config =
        write_config(dir.path(), &sim, &Target::Sqlite(&db), &["contacts", "deals", "line_items", "calls"], "");
    let daemon = Daemon::start(&config, &[(TOKEN_VAR, token)]).await;

    let ran = |s: &Value, name: &str| job(s, name).is_some_and(|j| j["last_success"].is_string());
    let status = daemon
        .wait_status("the other objects' jobs", |s| {
            backfill_done(s, &synced)
                && job(s, "backfill:line_items").is_some_and(|j| j["failures"].as_u64() >= Some(1))
                && synced.iter().all(|o| ran(s, &format!("cdc:{o}")) && ran(s, &format!("associations:{o}")))
        })
        .await;
    let failure = &job(&status, "backfill:line_items").unwrap()["last_failure"];
    assert_eq!(failure["class"], "auth", "{failure}");
    assert!(
        failure["message"].as_str().unwrap().contains("crm.objects.line_items.read"),
        "the scope is named: {failure}"
    );
    for other in ["cdc:line_items", "deletes:line_items", "associations:line_items"] {
        let waiting = job(&status, other).map(|j| j["waiting_for"].clone());
        assert_eq!(waiting, Some(json!("backfill:line_items")), "{other} waits for its own backfill");
    }
    for object in synced {
        assert_eq!(sqlite_ids(&db, object).await, truth_ids(&sim, object).await, "{object} synced completely");
    }
    assert!(sqlite_edge_count(&db, "contacts", "calls").await > 0, "contacts' calls are stored:\n{}", daemon.log());
}

async fn sqlite_history_versions(db: &Path, record: i64) -> Vec<String> {
    use sqlx::Connection;
    let Ok(mut conn) = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await else {
        return Vec::new();
    };
    let sql = "select value from property_history where object_type = 'deals' and record_id = ?1 \
               and property = 'dealstage' order by changed_at";
    sqlx::query_scalar(sql).bind(record).fetch_all(&mut conn).await.unwrap_or_default()
}

/// With `sync.history`, the daemon loads the deals' history once their backfill is done, then
/// reads again the deals CDC writes: a stage change shows up as a new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_keeps_property_history_after_cdc() {
    let portal = PortalSpec { contacts: 30, companies: 5, deals: 40, tickets: 0, cars: 0, ..PortalSpec::default() };
    let sim = Sim::start(unlimited(portal)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let history = "\n[sync.history]\ndeals = [\"default\"]\n";
    let config = write_config(dir.path(), &sim, &Target::Sqlite(&db), &["deals"], "");
    // The [sync.history] table must follow [sync], before [daemon].
    let text = std::fs::read_to_string(&config).unwrap().replace("\n[daemon]", &format!("{history}\n[daemon]"));
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&config, &[]).await;
    daemon
        .wait_status("the first history pass", |s| {
            job(s, "history:deals").is_some_and(|j| j["last_success"].is_string())
        })
        .await;
    let deal = truth_ids(&sim, "deals").await[0];
    let before = sqlite_history_versions(&db, deal).await;
    assert!(!before.is_empty(), "the deal's stage history is loaded:\n{}", daemon.log());

    let body = json!({"properties": {"dealstage": "closedlost"}});
    sim.admin_ok(Method::PATCH, &format!("/_sim/objects/deals/{deal}"), Some(&body)).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = sqlite_history_versions(&db, deal).await;
        if now.len() == before.len() + 1 {
            assert_eq!(now.last().map(String::as_str), Some("closedlost"), "{now:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the change never reached the history ({now:?}):\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The stored `num_associated_deals` of company `id`, as text (NULL as `None`).
async fn sqlite_company_deals(db: &Path, id: i64) -> Option<String> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.ok()?;
    let sql = "select num_associated_deals from companies where id = ?1";
    sqlx::query_scalar::<_, Option<String>>(sql).bind(id).fetch_optional(&mut conn).await.ok().flatten().flatten()
}

/// A rollup HubSpot changes without moving last-modified (a deal linked to a company, deals not
/// synced, so no association pass re-reads around it) reaches the warehouse through the
/// daemon's calculated-property sweep, which runs on its own interval as `calculated:companies`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_sweeps_calculated_properties_on_their_interval() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let extra = "calculated_interval_secs = 2\ncalculated_budget_reserve_percent = 0\n";
    let config = write_config(dir.path(), &sim, &Target::Sqlite(&db), &["companies"], extra);
    let daemon = Daemon::start(&config, &[]).await;
    let status = daemon
        .wait_status("the first calculated sweep", |s| {
            backfill_done(s, &["companies"])
                && stream(s, "calculated:companies").is_some_and(|c| c["last_run"]["status"] == "ok")
        })
        .await;
    assert!(job(&status, "calculated:companies").is_some(), "the sweep is a daemon job: {status}");

    let company = truth_ids(&sim, "companies").await[0];
    let before = sqlite_company_deals(&db, company).await;
    for deal in truth_ids(&sim, "deals").await.into_iter().rev().take(2) {
        let link = json!({"from": "deals", "fromId": deal, "to": "companies", "toId": company});
        sim.admin_ok(Method::POST, "/_sim/associations", Some(&link)).await;
    }
    let path = format!("/crm/v3/objects/companies/{company}?properties=num_associated_deals");
    let (_, _, record) = sim.call(Method::GET, &path, None).await;
    let truth = record["properties"]["num_associated_deals"].as_str().map(str::to_owned);
    assert_ne!(truth, before, "the links moved the rollup");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while sqlite_company_deals(&db, company).await != truth {
        assert!(tokio::time::Instant::now() < deadline, "the rollup never refreshed:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

const WEBHOOK_SECRET: &str = "test-app-client-secret-0001";
const WEBHOOK_SECRET_VAR: &str = "HSYNC_TEST_WEBHOOK_SECRET";

/// A configuration with webhooks on: the receiver on a free loopback port, CDC every
/// `cdc_secs` (and `webhook_cdc_secs` while webhooks are healthy), other streams rarely.
fn webhook_config(
    dir: &Path,
    sim: &Sim,
    db: &Path,
    coalesce_ms: u64,
    cdc_secs: u64,
    webhook_cdc_secs: u64,
) -> (PathBuf, String) {
    webhook_config_syncing(dir, sim, db, "objects = [\"contacts\"]\n", coalesce_ms, cdc_secs, webhook_cdc_secs)
}

/// [`webhook_config`] with `sync` as the `[sync]` table's keys (and any tables after it).
fn webhook_config_syncing(
    dir: &Path,
    sim: &Sim,
    db: &Path,
    sync: &str,
    coalesce_ms: u64,
    cdc_secs: u64,
    webhook_cdc_secs: u64,
) -> (PathBuf, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let target = format!("http://127.0.0.1:{port}/hubspot/webhooks");
    let text = format!(
        "[hubspot]\nbase_url = \"{base}\"\ntoken_env = \"{TOKEN_VAR}\"\n\n[destination]\nurl = \"sqlite://{db}\"\n\n\
         [sync]\nsettle_lag_secs = 1\n{sync}\n\
         [daemon]\ncdc_interval_secs = {cdc_secs}\nassociations_interval_secs = 3600\ndeletes_interval_secs = 3600\n\
         dimensions_interval_secs = 3600\nlease_retry_secs = 1\nshutdown_grace_secs = 60\njitter_percent = 0\n\n\
         [webhooks]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\ntarget_url = \"{target}\"\n\
         client_secret_env = \"{WEBHOOK_SECRET_VAR}\"\ncoalesce_ms = {coalesce_ms}\ncdc_interval_secs = {webhook_cdc_secs}\n",
        base = sim.handle.base_url(),
        db = db.display(),
    );
    let path = dir.join(format!("hsync-{:08x}.toml", rand::random::<u32>()));
    std::fs::write(&path, text).unwrap();
    (path, target)
}

async fn start_with_webhooks(config: &Path) -> Daemon {
    Daemon::start(config, &[(WEBHOOK_SECRET_VAR, WEBHOOK_SECRET)]).await
}

/// Tells the simulator to send every event to `target`, signed with the test secret.
async fn subscribe(sim: &Sim, target: &str, extra: Value) {
    let mut settings =
        json!({"target_url": target, "client_secret": WEBHOOK_SECRET, "delay_ms": 50, "delay_jitter_ms": 20});
    settings.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    sim.admin_ok(Method::PUT, "/_sim/webhooks", Some(&settings)).await;
}

/// One text column of a contact as stored, or `None` (no row, or NULL).
async fn sqlite_text(db: &Path, table: &str, column: &str, id: i64) -> Option<String> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.ok()?;
    let sql = format!("select \"{column}\" from \"{table}\" where id = ?1");
    sqlx::query_scalar::<_, Option<String>>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut conn)
        .await
        .ok()
        .flatten()
        .flatten()
}

async fn wait_for(daemon: &Daemon, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; daemon log:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A signed delivery of `body` to `target`, as HubSpot sends one (timestamp `at_ms`).
async fn deliver(target: &str, body: &[u8], at_ms: i64, secret: &str) -> StatusCode {
    use base64::Engine;
    use hmac::Mac;
    let ts = at_ms.to_string();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(b"POST");
    mac.update(target.as_bytes());
    mac.update(body);
    mac.update(ts.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    send(target, body.to_vec(), Some(&ts), Some(&signature)).await
}

async fn send(target: &str, body: Vec<u8>, ts: Option<&str>, signature: Option<&str>) -> StatusCode {
    let mut request = reqwest::Client::new().post(target).header("content-type", "application/json").body(body);
    if let Some(ts) = ts {
        request = request.header("X-HubSpot-Request-Timestamp", ts);
    }
    if let Some(signature) = signature {
        request = request.header("X-HubSpot-Signature-v3", signature);
    }
    request.send().await.expect("the receiver answers").status()
}

/// Connects to the receiver and sends the headers of a delivery announcing `length` bytes.
async fn open_delivery(target: &str, length: usize) -> TcpStream {
    use tokio::io::AsyncWriteExt;
    let url = reqwest::Url::parse(target).unwrap();
    let mut stream = TcpStream::connect((url.host_str().unwrap(), url.port().unwrap())).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\
         X-HubSpot-Request-Timestamp: {}\r\nX-HubSpot-Signature-v3: AAAA\r\n\r\n",
        url.path(),
        url.authority(),
        now_ms()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Starts a 10 MB delivery (headers and the first 64 KiB) and reads the status line the
/// receiver answers with before the rest would have been sent.
async fn announce_ten_megabytes(target: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = open_delivery(target, 10 * 1_048_576).await;
    // The receiver may answer and close at once: a write after that is allowed to fail.
    let _ = stream.write_all(&[b' '; 65_536]).await;
    let mut reply = vec![0_u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut reply)).await.unwrap().unwrap();
    let line = String::from_utf8_lossy(&reply[..n]).lines().next().unwrap_or_default().to_owned();
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"))
}

/// Sends a signed delivery's headers announcing `body` in full, then half of it, and closes the
/// connection's sending side: a delivery cut off in transit. Returns the status the receiver
/// answered with, if it answered before closing.
async fn cut_in_transit(target: &str, body: &[u8]) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = open_delivery(target, body.len()).await;
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut reply)).await.unwrap();
    let text = String::from_utf8_lossy(&reply);
    text.lines().next()?.split_whitespace().nth(1)?.parse().ok()
}

/// Recorded runs of `stream` in the SQLite state store.
async fn sqlite_runs(db: &Path, stream: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    sqlx::query_scalar("select count(*) from _hsync_runs where stream = ?1")
        .bind(stream)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

fn property_change(id: i64, at_ms: i64, property: &str) -> Vec<u8> {
    serde_json::to_vec(&json!([{"eventId": 1, "subscriptionId": 7, "portalId": 1, "occurredAt": at_ms,
        "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": id,
        "propertyName": property, "propertyValue": "x", "changeSource": "CRM"}]))
    .unwrap()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Changes reach the warehouse through webhooks while CDC waits an hour: a property change, a
/// creation and an archive, each merged or flagged within seconds. Deliveries with a bad
/// signature, a stale timestamp, a body cut short, a body over the limit, or a replay of an
/// accepted request are refused with their status and counted, and store nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_bring_changes_in_seconds_and_bad_deliveries_change_nothing() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let (config, target) = webhook_config(dir.path(), &sim, &db, 100, 3_600, 3_600);
    let daemon = start_with_webhooks(&config).await;
    daemon
        .wait_status("the backfill and the first CDC pass", |s| {
            backfill_done(s, &["contacts"])
                && stream(s, "cdc:contacts").is_some_and(|c| c["last_run"]["status"] == "ok")
        })
        .await;
    // HubSpot retries a delivery not answered 2xx within 5 s; on a loaded machine one can be, so
    // retries come within a second here and the counts below wait for the simulator's outbox.
    subscribe(&sim, &target, json!({"retry_time_scale": 0.01})).await;

    let ids = truth_ids(&sim, "contacts").await;
    let (changed, archived) = (ids[3], ids[4]);
    sim.admin_ok(
        Method::PATCH,
        &format!("/_sim/objects/contacts/{changed}"),
        Some(&json!({"properties": {"firstname": "Webhooked"}})),
    )
    .await;
    let created = sim.admin_create("contacts", json!({"email": "hook@example.com", "firstname": "New"})).await as i64;
    sim.admin_ok(Method::POST, &format!("/_sim/objects/contacts/{archived}/archive"), None).await;
    wait_for(&daemon, "the webhook changes in the warehouse", async || {
        sqlite_text(&db, "contacts", "firstname", changed).await.as_deref() == Some("Webhooked")
            && sqlite_text(&db, "contacts", "firstname", created).await.as_deref() == Some("New")
            && sqlite_text(&db, "contacts", "_hsync_archived_at", archived).await.is_some()
    })
    .await;
    let sent = sim_outbox_empty(&sim).await;
    let status = daemon.wait_status("the webhook stream", |s| stream(s, "webhooks:events").is_some()).await;
    let applied = &status["daemon"]["webhooks"];
    assert!(applied["events_accepted"].as_u64().unwrap() >= 3, "{status:#}");
    assert!(applied["events_applied"].as_u64().unwrap() >= 3, "{status:#}");
    let events = stream(&status, "webhooks:events").unwrap();
    assert!(events["rows"].as_i64().unwrap() >= 3, "{status:#}");
    assert!(events["lag_seconds"].as_i64().is_some_and(|lag| (0..60).contains(&lag)), "{status:#}");

    // Refused deliveries: each status, a count per reason, nothing stored.
    let accepted_before = daemon.status().await["daemon"]["webhooks"]["events_accepted"].as_u64().unwrap();
    let body = property_change(ids[5], now_ms(), "firstname");
    assert_eq!(deliver(&target, &body, now_ms(), "wrong secret").await, StatusCode::UNAUTHORIZED);
    let stale = now_ms() - 6 * 60 * 1_000;
    assert_eq!(deliver(&target, &body, stale, WEBHOOK_SECRET).await, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&target, body.clone(), None, None).await, StatusCode::UNAUTHORIZED);
    let cut = &body[..body.len() / 2];
    assert_eq!(deliver(&target, cut, now_ms(), WEBHOOK_SECRET).await, StatusCode::BAD_REQUEST);
    assert_eq!(announce_ten_megabytes(&target).await, 413, "refused on its Content-Length, before the body");
    let in_transit = cut_in_transit(&target, &body).await;
    assert!(matches!(in_transit, None | Some(400)), "a body cut off in transit: {in_transit:?}");
    let at = now_ms();
    let once = property_change(ids[6], at, "lastname");
    assert_eq!(deliver(&target, &once, at, WEBHOOK_SECRET).await, StatusCode::OK);
    assert_eq!(deliver(&target, &once, at, WEBHOOK_SECRET).await, StatusCode::CONFLICT, "the same signed request");
    let status = daemon.status().await;
    let hooks = &status["daemon"]["webhooks"];
    assert_eq!(
        hooks["events_accepted"].as_u64().unwrap(),
        accepted_before + 1,
        "only the valid delivery stored: {status:#}"
    );
    let rejected = &hooks["deliveries_rejected"];
    let reasons =
        [("bad_signature", 1), ("stale", 1), ("unsigned", 1), ("malformed", 1), ("too_large", 1), ("replay", 1)];
    for (reason, count) in reasons.iter().chain(&[("truncated", 1)]) {
        assert_eq!(rejected[reason], *count, "{reason}: {status:#}");
    }
    let scrape = daemon.metrics().await;
    let rejected_total: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "hsync_webhook_deliveries_rejected_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(rejected_total, 7.0);
    assert!(!daemon.log().contains(WEBHOOK_SECRET), "the secret never shows");

    // `hsync status`, another process, shows the receiver's counts (folded into the state store
    // within seconds) and that nothing waits.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let shown = loop {
        let out = crate::support::hsync(&config, &["status", "--json"]).await;
        assert!(out.status.success(), "{}", crate::support::explain(&out));
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
        let hooks = &shown["webhooks"];
        if hooks["deliveries_rejected"]["truncated"] == 1 && hooks["events_waiting"] == 0 {
            break shown;
        }
        assert!(tokio::time::Instant::now() < deadline, "hsync status never showed the counts: {shown:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let hooks = &shown["webhooks"];
    for (reason, count) in reasons {
        assert_eq!(hooks["deliveries_rejected"][reason], count, "{reason}: {shown:#}");
    }
    assert_eq!(hooks["events_accepted"].as_u64().unwrap(), accepted_before + 1, "{shown:#}");
    assert!(hooks["events_applied"].as_i64().unwrap() >= 4, "{shown:#}");
    assert!(hooks["events_coalesced"].is_i64() && hooks["lag_seconds"].is_i64(), "{shown:#}");
    let table = crate::support::stdout(&crate::support::hsync(&config, &["status"]).await);
    assert!(table.contains("7 deliveries refused") && table.contains("0 waiting"), "{table}");

    // With nothing waiting the applier looks every five seconds and records no run.
    let runs = sqlite_runs(&db, "webhooks:events").await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let counters = sim.admin_ok(Method::GET, "/_sim/webhooks", None).await["counters"].clone();
    assert_eq!(counters["delivered_events"], sent["delivered_events"], "the simulator sent more: {counters}");
    assert_eq!(
        sqlite_runs(&db, "webhooks:events").await,
        runs,
        "an idle applier records no run; simulator: {counters}; daemon log:\n{}",
        daemon.log()
    );
}

/// Waits until the simulator has delivered every webhook event it generated (retries
/// included), and returns its counters.
async fn sim_outbox_empty(sim: &Sim) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let counters = sim.admin_ok(Method::GET, "/_sim/webhooks", None).await["counters"].clone();
        if counters["pending_events"] == 0 {
            return counters;
        }
        assert!(tokio::time::Instant::now() < deadline, "the simulator never delivered everything: {counters}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Webhook events for two objects, while HubSpot answers one object's batch reads with a page
/// hsync cannot read (a data error, which retrying cannot fix): the other object's changes are
/// merged within seconds, with the property history of the records read back, and the failing
/// object's events are counted and left to CDC rather than holding the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_objects_unreadable_reads_leave_the_others_applied_with_their_history() {
    let portal = PortalSpec { contacts: 20, companies: 5, deals: 30, tickets: 20, cars: 0, ..PortalSpec::default() };
    let sim = Sim::start(unlimited(portal)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let sync = "objects = [\"deals\", \"tickets\"]\n\n[sync.history]\ndeals = [\"default\"]\n";
    let (config, target) = webhook_config_syncing(dir.path(), &sim, &db, sync, 100, 3_600, 3_600);
    let daemon = start_with_webhooks(&config).await;
    daemon
        .wait_status("the backfills, the first CDC passes and the first history pass", |s| {
            let polled = |name| stream(s, name).is_some_and(|c| c["last_run"]["status"] == "ok");
            backfill_done(s, &["deals", "tickets"])
                && polled("cdc:deals")
                && polled("cdc:tickets")
                && job(s, "history:deals").is_some_and(|j| j["last_success"].is_string())
        })
        .await;
    let deal = truth_ids(&sim, "deals").await[0];
    let ticket = truth_ids(&sim, "tickets").await[0];
    let versions_before = sqlite_history_versions(&db, deal).await;
    subscribe(&sim, &target, json!({})).await;
    let unreadable =
        json!([{"kind": "server_error", "status": 200, "html": true, "target": "batch_read", "object": "tickets"}]);
    sim.admin_ok(Method::PUT, "/_sim/faults", Some(&unreadable)).await;

    let closed = json!({"properties": {"dealstage": "closedlost"}});
    sim.admin_ok(
        Method::PATCH,
        &format!("/_sim/objects/tickets/{ticket}"),
        Some(&json!({"properties": {"subject": "Hooked"}})),
    )
    .await;
    sim.admin_ok(Method::PATCH, &format!("/_sim/objects/deals/{deal}"), Some(&closed)).await;
    wait_for(&daemon, "the deal's change and its history", async || {
        sqlite_text(&db, "deals", "dealstage", deal).await.as_deref() == Some("closedlost")
            && sqlite_history_versions(&db, deal).await.len() == versions_before.len() + 1
    })
    .await;
    assert_eq!(sqlite_history_versions(&db, deal).await.last().map(String::as_str), Some("closedlost"));
    let status = daemon
        .wait_status("the queue emptied", |s| s["daemon"]["webhooks"]["events_applied"].as_u64() >= Some(2))
        .await;
    assert_eq!(status["daemon"]["webhooks"]["failing"], false, "{status:#}");
    assert_ne!(
        sqlite_text(&db, "tickets", "subject", ticket).await.as_deref(),
        Some("Hooked"),
        "left to CDC:\n{}",
        daemon.log()
    );
    let failed: f64 = daemon
        .metrics()
        .await
        .samples
        .iter()
        .filter(|s| s.metric == "hsync_webhook_events_failed_total" && s.labels.get("object") == Some("tickets"))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert!(failed >= 1.0, "the tickets' failure is counted:\n{}", daemon.log());
    let events = stream(&status, "webhooks:events").expect("the webhook stream");
    assert_eq!(events["last_run"]["status"], "ok", "the run succeeded for the deals: {status:#}");
}

/// An event accepted (answered 200) and then the daemon killed before applying it: the event
/// waits in the state store, and the next start applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_event_survives_a_kill_before_it_is_applied() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    // A minute's coalescing window: nothing is applied before the kill.
    let (config, target) = webhook_config(dir.path(), &sim, &db, 60_000, 3_600, 3_600);
    let mut daemon = start_with_webhooks(&config).await;
    daemon.wait_status("the backfill", |s| backfill_done(s, &["contacts"])).await;
    let id = truth_ids(&sim, "contacts").await[7];
    sim.admin_ok(
        Method::PATCH,
        &format!("/_sim/objects/contacts/{id}"),
        Some(&json!({"properties": {"lastname": "Survivor"}})),
    )
    .await;
    let at = now_ms();
    assert_eq!(deliver(&target, &property_change(id, at, "lastname"), at, WEBHOOK_SECRET).await, StatusCode::OK);
    daemon.signal("-KILL");
    daemon.wait_exit().await;
    let queued = {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        sqlx::query_scalar::<_, i64>("select count(*) from _hsync_webhook_events").fetch_one(&mut conn).await.unwrap()
    };
    assert_eq!(queued, 1, "the accepted event is durable");

    let (restart, _) = webhook_config(dir.path(), &sim, &db, 100, 3_600, 3_600);
    // The same listen address is not needed: the queue is in the state store.
    let daemon = start_with_webhooks(&restart).await;
    let status = daemon
        .wait_status("the queued event applied", |s| {
            stream(s, "webhooks:events").is_some_and(|w| w["rows"].as_i64().unwrap_or(0) >= 1)
        })
        .await;
    assert!(stream(&status, "webhooks:events").is_some(), "{status:#}");
    assert_eq!(sqlite_text(&db, "contacts", "lastname", id).await.as_deref(), Some("Survivor"));
}

/// HubSpot drops one delivery in ten, sends a third of them twice and out of order: no row ever
/// goes back to an older version, and after the next CDC pass the warehouse equals HubSpot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_duplicated_and_reordered_webhooks_never_regress_and_cdc_catches_up() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let (config, target) = webhook_config(dir.path(), &sim, &db, 100, 2, 4);
    let daemon = start_with_webhooks(&config).await;
    daemon.wait_status("the backfill", |s| backfill_done(s, &["contacts"])).await;
    let faults = json!({"max_batch": 1, "drop_probability": 0.1, "duplicate_probability": 0.3, "reorder": true});
    subscribe(&sim, &target, faults).await;
    let ids = truth_ids(&sim, "contacts").await;
    let watched = ids[2];
    let cursor_of = |db: PathBuf| async move { sqlite_text(&db, "contacts", "_hsync_cursor", watched).await };
    let mut seen: Vec<String> = Vec::new();
    for round in 0..6 {
        for &id in &ids[..10] {
            let body =
                json!({"properties": {"firstname": format!("Round {round}"), "lastname": format!("{id}-{round}")}});
            sim.admin_ok(Method::PATCH, &format!("/_sim/objects/contacts/{id}"), Some(&body)).await;
        }
        for _ in 0..5 {
            if let Some(c) = cursor_of(db.clone()).await {
                seen.push(c);
            }
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }
    let dest = SqliteDestination::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(c) = cursor_of(db.clone()).await {
            seen.push(c);
        }
        let differences = crate::sync_engine::differences_in(&dest, &sim, &["contacts"]).await;
        if differences.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{differences:?}\ndaemon log:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Fixed-width ISO text: ordered as instants.
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "a stored version went back: {seen:?}");
    let counters = sim.admin_ok(Method::GET, "/_sim/webhooks", None).await["counters"].clone();
    assert!(counters["dropped_deliveries"].as_u64().unwrap() > 0, "some deliveries were dropped: {counters}");
    assert!(counters["duplicated_deliveries"].as_u64().unwrap() > 0, "some were sent twice: {counters}");
    dest.close().await;
}

const PUSH_TOKEN: &str = "push-token-for-tests-0001";

/// `POST /push/<name>`: records are taken only with the push token (401 without it or with
/// another, even on loopback), a body that is not records is refused with what to send (400),
/// and good records are checked and written like a push's rows, each answered with its
/// outcome and recorded in `push_results`; sending the same records again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_endpoint_needs_its_token_refuses_bad_bodies_and_answers_each_record() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hsync.db");
    let extra = "push_token_env = \"HSYNC_TEST_PUSH_TOKEN\"\n\n\
                 [push.signups]\nobject = \"contacts\"\nid_property = \"email\"\n";
    let config = write_config(dir.path(), &sim, &Target::Sqlite(&db), &["contacts"], extra);
    let daemon = Daemon::start(&config, &[("HSYNC_TEST_PUSH_TOKEN", PUSH_TOKEN)]).await;
    let records = serde_json::to_vec(&json!({"records": [
        {"email": "event.one@example.com", "firstname": "One"},
        {"email": "not an email", "firstname": "Bad"},
        {"email": "EVENT.ONE@example.com", "firstname": "Again"},
    ]}))
    .unwrap();

    assert_eq!(daemon.post_as("/push/signups", &records, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(daemon.post_as("/push/signups", &records, Some("wrong")).await.0, StatusCode::UNAUTHORIZED);
    let token = Some(PUSH_TOKEN);
    let (status, body) = daemon.post_as("/push/signups", b"{\"records\": [", token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("not JSON"), "{body}");
    let (status, body) = daemon.post_as("/push/signups", b"{\"records\": [{\"email\": [1]}]}", token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = daemon.post_as("/push/signups", b"{\"records\": [{\"nosuch\": 1}]}", token).await;
    assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::SERVICE_UNAVAILABLE, "{status} {body}");
    assert_eq!(daemon.post_as("/push/nosuch", &records, token).await.0, StatusCode::NOT_FOUND);

    // Until this instance leads, a push is answered 503 with Retry-After.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let answer: Value = loop {
        let (status, body) = daemon.post_as("/push/signups", &records, token).await;
        if status == StatusCode::OK {
            break serde_json::from_str(&body).unwrap();
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}; daemon log:\n{}", daemon.log());
        assert!(tokio::time::Instant::now() < deadline, "the push was never taken: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let outcomes: Vec<&str> =
        answer["results"].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["created", "rejected", "rejected"], "{answer:#}");
    assert!(answer["results"][1]["reason"].as_str().unwrap().starts_with("email: not an email address"), "{answer:#}");
    assert!(answer["results"][2]["reason"].as_str().unwrap().contains("as row 1"), "{answer:#}");
    let truth = sim.truth("contacts").await;
    let created: Vec<&Value> = truth["objects"]["contacts"]["live"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["properties"]["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case("event.one@example.com")))
        .collect();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["properties"]["firstname"], "One");
    assert_eq!(created[0]["id"].as_str(), answer["results"][0]["record_id"].as_str());

    // Bad bodies changed nothing, and the same records again are left as they are.
    let (status, body) = daemon.post_as("/push/signups", &records, token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let again: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(again["results"][0]["outcome"], "unchanged", "{again:#}");
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let recorded: i64 = sqlx::query_scalar("select count(*) from push_results where push = 'signups'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(recorded, 6, "both requests' records are in push_results");
    assert!(!daemon.log().contains(PUSH_TOKEN), "the token never shows");
}
