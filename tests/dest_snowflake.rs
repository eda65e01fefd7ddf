//! The Snowflake destination against the fakesnow emulator (`HSYNC_SF_EMULATOR_URL`): the
//! shared conformance suite, then what is particular to Snowflake: both result formats, the
//! emulator's NULL-timestamp Arrow quirk, JSON in VARIANT, SQL errors with their codes, the
//! wiring through `AnyDestination` (local state, lease, probe, plan rendering), and secrets.
//! The protocol paths the emulator cannot produce (an expired session, throttling, refused
//! credentials, the key-pair login request) run against a small scripted server on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hsync::config::DestinationConfig;
use hsync::destination::conformance::{self, batch_of, ensure_table, load, property, record, Cell, Inspect};
use hsync::destination::snowflake::client::{Bindings, Client, ClientConfig, Credentials, JwtClaims, Value};
use hsync::destination::snowflake::{sql, SnowflakeDestination};
use hsync::destination::{AnyDestination, AnyStateStore, Destination, Error};
use hsync::schema::diff;
use serde_json::{json, Value as Json};

use crate::support::snowflake::{emulator, fresh_config, fresh_destination, PASSWORD};

#[tokio::test]
async fn snowflake_passes_the_conformance_suite() {
    let Some(endpoint) = emulator() else { return };
    let dest = fresh_destination(&endpoint).await;
    conformance::run_all(&dest).await;
}

#[tokio::test]
async fn both_result_formats_decode() {
    let Some(endpoint) = emulator() else { return };
    let dest = fresh_destination(&endpoint).await;
    let client = dest.client();
    let table = dest.location().table("formats");
    client
        .query(&format!("CREATE TABLE {table} (\"n\" NUMBER(38,0), \"t\" VARCHAR)"), &Bindings::None, "create")
        .await
        .expect("create");
    // DML answers with a JSON rowset of counters.
    let inserted = client
        .query(
            &format!("INSERT INTO {table} (\"n\", \"t\") VALUES (?, ?)"),
            &Bindings::Array(vec![vec![Some("1".into()), Some("2".into())], vec![Some("é".into()), None]]),
            "insert",
        )
        .await
        .expect("insert");
    assert_eq!(inserted.count("number of rows inserted"), 2);
    assert_eq!(inserted.columns[0].name, "number of rows inserted");
    // A query answers with base64 Arrow.
    let selected = client
        .query(
            &format!(
                "SELECT \"n\", \"t\", TRUE, CAST('12.50' AS NUMBER(10,2)), CAST('2026-03-29' AS DATE) FROM {table} \
                 ORDER BY \"n\""
            ),
            &Bindings::None,
            "select",
        )
        .await
        .expect("select");
    assert_eq!(
        selected.rows,
        vec![
            vec![
                Value::Int(1),
                Value::Text("é".into()),
                Value::Bool(true),
                Value::Decimal("12.50".into()),
                Value::Date(20_541)
            ],
            vec![Value::Int(2), Value::Null, Value::Bool(true), Value::Decimal("12.50".into()), Value::Date(20_541)],
        ]
    );
    // No rows: an empty rowsetBase64.
    let none = client
        .query(
            &format!("SELECT \"n\" FROM {table} WHERE \"n\" > ?"),
            &Bindings::Positional(vec![Some("9".into())]),
            "s",
        )
        .await
        .expect("select");
    assert!(none.rows.is_empty());
}

#[tokio::test]
async fn timestamps_decode_from_structs_and_null_timestamps_read_back_as_null() {
    let Some(endpoint) = emulator() else { return };
    let dest = fresh_destination(&endpoint).await;
    let schema = ensure_table(&dest, "times", &[property("seen", "datetime")]).await;
    let (b, r) = batch_of(
        &schema,
        &[
            record(1, "2026-01-01T00:00:00.000Z", &[("seen", Some("2026-03-29T01:30:00.123Z"))]),
            record(2, "2026-01-01T00:00:00.000Z", &[("seen", None)]),
        ],
    );
    load(&dest, "times", &b, &r).await;
    // hsync's own reads select epoch milliseconds: the NULL row reads back as NULL.
    let rows = dest.read_table("times").await.expect("read");
    assert_eq!(rows[0]["seen"], Cell::TimestampMs(1_774_747_800_123));
    assert_eq!(rows[1]["seen"], Cell::Null);
    // The struct form decodes (epoch seconds + nanosecond fraction), for a non-NULL row.
    let table = dest.location().table("times");
    let raw = dest
        .client()
        .query(&format!("SELECT \"seen\" FROM {table} WHERE \"id\" = 1"), &Bindings::None, "select")
        .await
        .expect("struct timestamps decode");
    assert_eq!(raw.rows, vec![vec![Value::Timestamp(1_774_747_800_123_000)]]);
    assert_eq!(raw.columns[0].ty, "timestamp_tz");
    // With the NULL row, the emulator's struct has no validity bit: strict Arrow decoding
    // refuses it, and the error says how hsync reads timestamps instead (real Snowflake
    // decodes it, a NULL struct reading as NULL).
    match dest.client().query(&format!("SELECT \"seen\" FROM {table} ORDER BY \"id\""), &Bindings::None, "select").await
    {
        Ok(result) => assert_eq!(result.rows[1], vec![Value::Null]),
        Err(e) => assert!(e.to_string().contains("DATE_PART(EPOCH_MILLISECOND"), "{e}"),
    }
}

#[tokio::test]
async fn json_properties_are_variants_queryable_by_path() {
    let Some(endpoint) = emulator() else { return };
    let dest = fresh_destination(&endpoint).await;
    let schema = ensure_table(&dest, "docs", &[property("payload", "json")]).await;
    let doc = r#"{"plan":{"tier":"gold","seats":[3,5]},"note":"ünïcode"}"#;
    let (b, r) = batch_of(&schema, &[record(1, "2026-01-01T00:00:00.000Z", &[("payload", Some(doc))])]);
    load(&dest, "docs", &b, &r).await;
    let table = dest.location().table("docs");
    let result = dest
        .client()
        .query(
            &format!(
                "SELECT \"payload\":plan.tier::VARCHAR, \"payload\":plan.seats[1]::NUMBER, \"payload\":note::VARCHAR \
                 FROM {table}"
            ),
            &Bindings::None,
            "query the variant",
        )
        .await
        .expect("variant path");
    assert_eq!(result.rows, vec![vec![Value::Text("gold".into()), Value::Int(5), Value::Text("ünïcode".into())]]);
    let describe = dest.describe("docs").await.expect("describe").expect("table");
    assert_eq!(describe.iter().find(|c| c.name == "payload").map(|c| c.ty), Some(hsync::schema::ColumnType::Json));
    assert_eq!(
        dest.read_table("docs").await.expect("read")[0]["payload"],
        Cell::Json(serde_json::from_str(doc).unwrap())
    );
}

#[tokio::test]
async fn sql_errors_surface_with_their_code_and_never_the_password() {
    let Some(endpoint) = emulator() else { return };
    let dest = fresh_destination(&endpoint).await;
    let e = dest
        .client()
        .query("SELECT * FROM \"no_such_table\"", &Bindings::None, "read a missing table")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Statement { .. }), "{e:?}");
    let shown = e.to_string();
    assert!(shown.contains("002003") && shown.contains("read a missing table"), "{shown}");
    assert!(!shown.contains(PASSWORD));
    let debug = format!("{dest:?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
    assert!(debug.contains("Password(***)"), "{debug}");
    // A server that is down: unavailable, without the password.
    let mut config = fresh_config("http://127.0.0.1:9");
    config.credentials = Credentials::Password(PASSWORD.to_owned());
    let down = SnowflakeDestination::new(config).expect("destination");
    let e = down.healthcheck().await.unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains(PASSWORD));
}

#[tokio::test]
async fn schema_changes_add_columns_and_refuse_what_snowflake_cannot_change() {
    let Some(endpoint) = emulator() else { return };
    let dest = fresh_destination(&endpoint).await;
    ensure_table(&dest, "deals", &[property("amount", "number"), property("closed", "bool")]).await;
    // A decimal becoming text widens in place (a longer VARCHAR); a boolean becoming text cannot.
    let existing = dest.describe("deals").await.expect("describe");
    let next = [property("amount", "string"), property("closed", "bool"), property("stage", "enumeration")];
    let plan = diff("deals", &next, existing.as_deref(), &[], &Default::default(), dest.column_budget());
    dest.alter(&plan).await.expect("alter");
    let columns = dest.describe("deals").await.expect("describe").expect("table");
    let ty = |name: &str| columns.iter().find(|c| c.name == name).map(|c| c.ty);
    assert_eq!(ty("amount"), Some(hsync::schema::ColumnType::Text));
    assert_eq!(ty("stage"), Some(hsync::schema::ColumnType::Text));
    let existing = dest.describe("deals").await.expect("describe");
    let plan = diff(
        "deals",
        &[property("amount", "string"), property("closed", "string")],
        existing.as_deref(),
        &[],
        &Default::default(),
        dest.column_budget(),
    );
    let e = dest.alter(&plan).await.unwrap_err();
    assert!(matches!(e, Error::Schema { .. }), "{e:?}");
    let rendered = sql::render_plan(dest.location(), &plan);
    assert!(rendered.iter().any(|s| s.starts_with("-- Snowflake cannot change")), "{rendered:?}");
}

/// A destination configuration naming the emulator, with the local state under `dir`.
fn destination_config(endpoint: &str, dir: &std::path::Path) -> DestinationConfig {
    let mut config = DestinationConfig::default();
    let database = format!("t_{:08x}", rand::random::<u32>());
    config.url = hsync::config::DestinationUrl::new(format!(
        "snowflake://hsync:{PASSWORD}@hsync_test/{database}/hubspot?warehouse=load_wh&role=loader"
    ));
    config.snowflake.endpoint = Some(endpoint.to_owned());
    config.state_path = Some(dir.join("state.db"));
    config
}

#[tokio::test]
async fn any_destination_connects_with_local_state_and_a_file_lease() {
    let Some(endpoint) = emulator() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = destination_config(&endpoint, dir.path());
    AnyDestination::reach(&config).await.expect("reach");
    let dest = AnyDestination::connect(&config).await.expect("connect");
    assert!(!format!("{dest:?}").contains(PASSWORD));
    assert_eq!((dest.kind(), dest.holds_state()), (hsync::config::DestinationKind::Snowflake, false));
    let AnyDestination::Snowflake(inner, _) = &dest else { panic!("not snowflake") };
    // Unquoted-style names in the URL resolve as Snowflake resolves them: upper-case.
    assert!(inner.location().database.starts_with("T_") && inner.location().schema == "HUBSPOT");
    assert!(matches!(dest.state_store(), AnyStateStore::Sqlite(_)));
    assert!(dir.path().join("state.db").exists(), "the local state file is created");
    dest.prepare().await.expect("prepare");
    dest.probe_write().await.expect("probe");
    let lease =
        dest.try_lease("test", &hsync::destination::Holder::this_process("test")).await.expect("lease").expect("taken");
    assert!(
        dest.try_lease("test", &hsync::destination::Holder::this_process("test")).await.expect("lease").is_none(),
        "held once"
    );
    drop(lease);
    let plan = diff("contacts", &[property("email", "string")], None, &[], &Default::default(), dest.column_budget());
    let rendered = dest.render_alter(&plan);
    assert!(rendered[0].starts_with("CREATE TABLE IF NOT EXISTS \"T_"), "{rendered:?}");
    // The probe leaves nothing behind.
    let AnyDestination::Snowflake(inner, _) = &dest else { unreachable!() };
    let leftovers = inner
        .client()
        .query(
            &format!(
                "SELECT table_name FROM \"{}\".information_schema.tables WHERE STARTSWITH(table_name, '_hsync_check_')",
                inner.location().database
            ),
            &Bindings::None,
            "list",
        )
        .await
        .expect("list");
    assert!(leftovers.rows.is_empty(), "{:?}", leftovers.rows);
}

/// What the scripted server saw and how it answers.
#[derive(Default)]
struct Script {
    logins: AtomicUsize,
    login_bodies: Mutex<Vec<Json>>,
    auth_headers: Mutex<Vec<String>>,
}

/// A loopback server speaking just enough of the protocol: logins hand out `t1`, `t2`, ...;
/// a query on `t1` finds its session expired; the SQL text picks the answer.
async fn scripted_server(script: Arc<Script>) -> String {
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use axum::Json as AxumJson;
    async fn login(State(s): State<Arc<Script>>, AxumJson(body): AxumJson<Json>) -> (StatusCode, AxumJson<Json>) {
        s.login_bodies.lock().unwrap().push(body.clone());
        if body["data"]["PASSWORD"] == json!("wrong") {
            return (
                StatusCode::OK,
                AxumJson(
                    json!({"data": null, "code": "390100", "message": "Incorrect username or password was specified.", "success": false}),
                ),
            );
        }
        let n = s.logins.fetch_add(1, Ordering::SeqCst) + 1;
        (StatusCode::OK, AxumJson(json!({"data": {"token": format!("t{n}")}, "success": true})))
    }
    async fn query(
        State(s): State<Arc<Script>>,
        headers: HeaderMap,
        AxumJson(body): AxumJson<Json>,
    ) -> (StatusCode, AxumJson<Json>) {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        s.auth_headers.lock().unwrap().push(auth.clone());
        if auth == "Snowflake Token=\"t1\"" {
            return (
                StatusCode::OK,
                AxumJson(
                    json!({"data": null, "code": "390112", "message": "Your session has expired. Please login again.", "success": false}),
                ),
            );
        }
        match body["sqlText"].as_str().unwrap_or_default() {
            "THROTTLE" => (StatusCode::TOO_MANY_REQUESTS, AxumJson(json!({}))),
            "DOWN" => (StatusCode::SERVICE_UNAVAILABLE, AxumJson(json!({}))),
            "DENIED" => (
                StatusCode::OK,
                AxumJson(
                    json!({"data": null, "code": "003001", "message": "Insufficient privileges to operate on table 'X'", "success": false}),
                ),
            ),
            _ => (
                StatusCode::OK,
                AxumJson(json!({"data": {
                    "rowtype": [{"name": "number of rows inserted", "type": "fixed", "scale": 0}],
                    "queryResultFormat": "json", "rowset": [["3"]]}, "success": true})),
            ),
        }
    }
    let app = axum::Router::new()
        .route("/session/v1/login-request", post(login))
        .route("/queries/v1/query-request", post(query))
        .with_state(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn scripted_client(endpoint: &str, credentials: Credentials) -> Client {
    Client::new(ClientConfig { credentials, ..fresh_config(endpoint) }).expect("client")
}

#[tokio::test]
async fn an_expired_session_logs_in_again_and_failures_are_classed() {
    let script = Arc::new(Script::default());
    let endpoint = scripted_server(Arc::clone(&script)).await;
    let client = scripted_client(&endpoint, Credentials::Password(PASSWORD.to_owned()));
    let result = client.query("INSERT", &Bindings::None, "insert").await.expect("retried on a new session");
    assert_eq!(result.count("number of rows inserted"), 3);
    assert_eq!(script.logins.load(Ordering::SeqCst), 2, "one login, then one more after the expiry");
    assert_eq!(
        *script.auth_headers.lock().unwrap(),
        ["Snowflake Token=\"t1\"", "Snowflake Token=\"t2\""],
        "the header is exactly Snowflake Token=\"<token>\""
    );
    let login = script.login_bodies.lock().unwrap()[0].clone();
    assert_eq!(
        (login["data"]["LOGIN_NAME"].as_str(), login["data"]["PASSWORD"].as_str()),
        (Some("hsync"), Some(PASSWORD))
    );
    // The fresh session went back to the pool: no third login.
    client.query("INSERT", &Bindings::None, "insert").await.expect("pooled session");
    assert_eq!(script.logins.load(Ordering::SeqCst), 2);

    let classed = |r: Result<_, Error>| r.unwrap_err();
    assert!(matches!(classed(client.query("THROTTLE", &Bindings::None, "t").await), Error::Throttled { .. }));
    assert!(matches!(classed(client.query("DOWN", &Bindings::None, "t").await), Error::Unavailable { .. }));
    assert!(matches!(classed(client.query("DENIED", &Bindings::None, "t").await), Error::Permission { .. }));
    let refused = scripted_client(&endpoint, Credentials::Password("wrong".to_owned()));
    let e = classed(refused.query("INSERT", &Bindings::None, "t").await);
    assert!(matches!(e, Error::Auth { .. }) && e.to_string().contains("390100"), "{e:?}");
    assert!(!e.to_string().contains("wrong"));
}

#[tokio::test]
async fn key_pair_login_sends_a_jwt_the_public_key_verifies() {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let script = Arc::new(Script::default());
    let endpoint = scripted_server(Arc::clone(&script)).await;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("key");
    let pem = key.to_pkcs8_pem(LineEnding::LF).expect("pem");
    let credentials = Credentials::key_pair(&pem).expect("credentials");
    let client = scripted_client(&endpoint, credentials);
    client.reach().await.expect("login");
    let body = script.login_bodies.lock().unwrap()[0].clone();
    assert_eq!(body["data"]["AUTHENTICATOR"], json!("SNOWFLAKE_JWT"));
    assert!(body["data"].get("PASSWORD").is_none());
    let token = body["data"]["TOKEN"].as_str().expect("token");
    let public = key.to_public_key().to_public_key_pem(LineEnding::LF).expect("public pem");
    let decoded = jsonwebtoken::decode::<JwtClaims>(
        token,
        &jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()).unwrap(),
        &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256),
    )
    .expect("verifies");
    assert_eq!(decoded.claims.sub, "HSYNC_TEST.HSYNC");
    assert!(decoded.claims.iss.starts_with("HSYNC_TEST.HSYNC.SHA256:"), "{}", decoded.claims.iss);
    assert!(!format!("{client:?}").contains("PRIVATE KEY"));
}
