//! Push sources on the cloud warehouses (`Destination::query_text`): a query runs against
//! bqemulator and fakesnow over loopback with hsync's tables reachable unqualified, its rows
//! come back as text in the query's column order, every page or chunk of a large result is
//! read, and anything but one SELECT is refused before it reaches the warehouse (the table is
//! unchanged afterwards). Snowflake's chunked results, which the emulator never produces, run
//! against a small scripted server on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hsync::destination::snowflake::SnowflakeDestination;
use hsync::destination::{Destination, Error, TextRows};
use hsync::error::{Classify, ErrorClass};
use serde_json::{json, Value as Json};

use crate::support::bigquery::{FreshDataset, PROJECT};
use crate::support::snowflake::{emulator, fresh_config, fresh_destination};

fn text(values: &[Option<&str>]) -> Vec<Option<String>> {
    values.iter().map(|v| v.map(str::to_owned)).collect()
}

/// Each statement is refused as a push query, naming the rule, and classed as configuration.
async fn assert_refused<D: Destination>(dest: &D, statements: &[&str]) {
    for statement in statements {
        let e = dest.query_text(statement).await.expect_err(statement);
        assert!(matches!(e, Error::Query { .. }), "{statement}: {e:?}");
        assert_eq!(e.class(), ErrorClass::Config, "{statement}");
        assert!(e.to_string().contains("only a single SELECT"), "{statement}: {e}");
    }
}

#[tokio::test]
async fn bigquery_runs_a_push_query_on_the_dataset_and_refuses_writes() {
    let Some(fresh) = FreshDataset::new() else { return };
    let dest = fresh.connect().await;
    dest.prepare().await.expect("prepare");
    fresh
        .create_table(
            "lead_scores",
            &[
                ("email", "STRING"),
                ("score", "INT64"),
                ("amount", "NUMERIC"),
                ("seen", "TIMESTAMP"),
                ("active", "BOOL"),
            ],
        )
        .await;
    let table = format!("`{PROJECT}.{}.lead_scores`", fresh.dataset);
    let inserted = fresh
        .query(&format!(
            "INSERT INTO {table} (email, score, amount, seen, active) VALUES \
             ('b@x.io', NULL, 1.5, TIMESTAMP '2026-01-01 00:00:00.123+00', false), \
             ('a@x.io', 42, NULL, TIMESTAMP '2026-01-01 00:00:00+00', true)"
        ))
        .await;
    assert!(inserted.get("errors").is_none(), "{inserted}");

    // Unqualified: the job's default dataset is the destination's; columns in the query's order.
    let read = dest
        .query_text("select score as lead_score, email, amount, seen, active from lead_scores order by email")
        .await
        .expect("the push query runs");
    assert_eq!(read.columns, ["lead_score", "email", "amount", "seen", "active"]);
    assert_eq!(
        read.rows,
        [
            text(&[Some("42"), Some("a@x.io"), None, Some("2026-01-01T00:00:00Z"), Some("true")]),
            text(&[None, Some("b@x.io"), Some("1.5"), Some("2026-01-01T00:00:00.123Z"), Some("false")]),
        ]
    );

    assert_refused(
        &dest,
        &[
            "delete from lead_scores where true",
            "insert into lead_scores (email) values ('c@x.io')",
            "select email from lead_scores; delete from lead_scores where true",
            "merge lead_scores t using lead_scores s on t.email = s.email when matched then delete",
            "create table copied as select * from lead_scores",
        ],
    )
    .await;
    let after = dest.query_text("select email from lead_scores order by email").await.expect("read again");
    assert_eq!(after.rows, [text(&[Some("a@x.io")]), text(&[Some("b@x.io")])], "the table is unchanged");

    // A query BigQuery refuses is the operator's to fix.
    let missing = dest.query_text("select email from no_such_table").await.expect_err("no such table");
    assert!(matches!(missing, Error::Query { .. }), "{missing:?}");
    fresh.drop().await;
}

/// A result larger than one page (the emulator's pages hold 10,000 rows, as jobs.query's
/// default) is read page by page to its last row.
#[tokio::test]
async fn bigquery_reads_every_page_of_a_large_push_query() {
    let Some(fresh) = FreshDataset::new() else { return };
    let dest = fresh.connect().await;
    dest.prepare().await.expect("prepare");
    let read = dest
        .query_text("select n, concat('row ', cast(n as string)) as label from unnest(generate_array(1, 25000)) as n order by n")
        .await
        .expect("the push query runs");
    assert_eq!(read.columns, ["n", "label"]);
    assert_eq!(read.rows.len(), 25_000, "every page is read");
    assert_eq!(read.rows[10_000], text(&[Some("10001"), Some("row 10001")]));
    assert_eq!(read.rows[24_999], text(&[Some("25000"), Some("row 25000")]));
    fresh.drop().await;
}

#[tokio::test]
async fn snowflake_runs_a_push_query_in_the_data_schema_and_refuses_writes() {
    use hsync::destination::snowflake::client::Bindings;
    let Some(endpoint) = emulator() else { return };
    let dest = fresh_destination(&endpoint).await;
    let table = dest.location().table("lead_scores");
    let client = dest.client();
    client
        .query(
            &format!(
                "CREATE TABLE {table} (\"email\" VARCHAR, \"score\" NUMBER(38,0), \"amount\" NUMBER(10,2), \
                 \"active\" BOOLEAN, \"closed\" DATE)"
            ),
            &Bindings::None,
            "create",
        )
        .await
        .expect("create");
    let column = |values: [Option<&str>; 2]| values.map(|v| v.map(str::to_owned)).to_vec();
    client
        .query(
            &format!(
                "INSERT INTO {table} (\"email\", \"score\", \"amount\", \"active\", \"closed\") VALUES (?, ?, ?, ?, ?)"
            ),
            &Bindings::Array(vec![
                column([Some("b@x.io"), Some("a@x.io")]),
                column([None, Some("42")]),
                column([Some("1.5"), None]),
                column([Some("false"), Some("true")]),
                column([None, Some("2026-03-29")]),
            ]),
            "insert",
        )
        .await
        .expect("insert");

    // Unqualified (the session's schema is the data schema), quoted as hsync names tables.
    let read = dest
        .query_text(
            "select \"score\" as \"lead_score\", \"email\", \"amount\", \"active\", \"closed\" from \"lead_scores\" \
             order by \"email\"",
        )
        .await
        .expect("the push query runs");
    assert_eq!(read.columns, ["lead_score", "email", "amount", "active", "closed"]);
    assert_eq!(
        read.rows,
        [
            text(&[Some("42"), Some("a@x.io"), None, Some("true"), Some("2026-03-29")]),
            text(&[None, Some("b@x.io"), Some("1.50"), Some("false"), None]),
        ]
    );
    let instant = dest
        .query_text("select to_timestamp_tz('2026-01-01 00:00:00.123 +00:00') as \"seen\"")
        .await
        .expect("a timestamp");
    assert_eq!(instant.rows, [text(&[Some("2026-01-01T00:00:00.123Z")])]);

    assert_refused(
        &dest,
        &[
            "delete from \"lead_scores\"",
            "insert into \"lead_scores\" (\"email\") values ('c@x.io')",
            "select 1; delete from \"lead_scores\"",
            "update \"lead_scores\" set \"score\" = 0",
            "create table \"copied\" as select * from \"lead_scores\"",
        ],
    )
    .await;
    let after = dest.query_text("select \"email\" from \"lead_scores\" order by \"email\"").await.expect("read again");
    assert_eq!(after.rows, [text(&[Some("a@x.io")]), text(&[Some("b@x.io")])], "the table is unchanged");

    let missing = dest.query_text("select 1 from \"no_such_table\"").await.expect_err("no such table");
    assert!(matches!(missing, Error::Query { .. }), "{missing:?}");
}

/// What the chunk server saw.
#[derive(Default)]
struct ChunkScript {
    statements: Mutex<Vec<String>>,
    downloads: Mutex<Vec<(String, Option<String>)>>,
    /// Which chunk answer the query gets: 0 good, 1 a short chunk, 2 a refused download.
    variant: AtomicUsize,
}

/// A loopback Snowflake whose push query answers with two rows and two chunks: the first a
/// gzipped JSON chunk served without `Content-Encoding` (as cloud storage may), the second a
/// plain one. Downloads must carry the SSE-C headers from `qrmk`.
async fn chunk_server(script: Arc<ChunkScript>) -> String {
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post};
    use axum::Json as AxumJson;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    async fn login() -> AxumJson<Json> {
        AxumJson(json!({"data": {"token": "t"}, "success": true}))
    }
    let query_base = base.clone();
    let query = move |State(s): State<Arc<ChunkScript>>, AxumJson(body): AxumJson<Json>| {
        let base = query_base.clone();
        async move {
            let sql = body["sqlText"].as_str().unwrap_or_default().to_owned();
            s.statements.lock().unwrap().push(sql.clone());
            if !sql.starts_with("select") {
                return AxumJson(json!({"data": {"rowtype": [], "rowset": []}, "success": true}));
            }
            let second = match s.variant.load(Ordering::SeqCst) {
                0 => 2,
                1 => 3,
                _ => 403,
            };
            AxumJson(json!({"success": true, "data": {
                "queryResultFormat": "json",
                "rowtype": [{"name": "n", "type": "fixed", "scale": 0}, {"name": "email", "type": "text"}],
                "rowset": [["1", "a@x.io"], ["2", null]],
                "qrmk": "a2V5LWZvci1jaHVua3M=",
                "chunks": [
                    {"url": format!("{base}/chunks/1?sig=s3cr3t"), "rowCount": 3},
                    {"url": format!("{base}/chunks/{second}?sig=s3cr3t"), "rowCount": 2},
                ],
            }}))
        }
    };
    async fn chunk(State(s): State<Arc<ChunkScript>>, Path(n): Path<u32>, headers: HeaderMap) -> (StatusCode, Vec<u8>) {
        let key = headers.get("x-amz-server-side-encryption-customer-key").and_then(|v| v.to_str().ok());
        s.downloads.lock().unwrap().push((n.to_string(), key.map(str::to_owned)));
        match n {
            1 => {
                use std::io::Write as _;
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(br#"["3","c@x.io"],["4",null],["5","e@x.io"]"#).unwrap();
                (StatusCode::OK, gz.finish().unwrap())
            }
            2 => (
                StatusCode::OK,
                br#"["6","f@x.io"],
["7","g@x.io"]"#
                    .to_vec(),
            ),
            3 => (StatusCode::OK, br#"["6","f@x.io"]"#.to_vec()),
            _ => (StatusCode::FORBIDDEN, b"<Error>signature s3cr3t expired</Error>".to_vec()),
        }
    }
    let app = axum::Router::new()
        .route("/session/v1/login-request", post(login))
        .route("/queries/v1/query-request", post(query))
        .route("/chunks/{n}", get(chunk))
        .with_state(script);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test]
async fn snowflake_reads_every_chunk_of_a_large_push_query() {
    let script = Arc::new(ChunkScript::default());
    let endpoint = chunk_server(Arc::clone(&script)).await;
    let dest = SnowflakeDestination::new(fresh_config(&endpoint)).expect("destination");
    let read: TextRows = dest.query_text("select n, email from big order by n").await.expect("every chunk");
    assert_eq!(read.columns, ["n", "email"]);
    let numbers: Vec<Option<String>> = read.rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(numbers, text(&[Some("1"), Some("2"), Some("3"), Some("4"), Some("5"), Some("6"), Some("7")]));
    assert_eq!(read.rows[1][1], None);
    assert_eq!(read.rows[6][1].as_deref(), Some("g@x.io"));
    let statements = script.statements.lock().unwrap().clone();
    assert!(statements[0].starts_with("USE SCHEMA \"T_"), "{statements:?}");
    let downloads = script.downloads.lock().unwrap().clone();
    assert_eq!(
        downloads,
        [
            ("1".to_owned(), Some("a2V5LWZvci1jaHVua3M=".to_owned())),
            ("2".to_owned(), Some("a2V5LWZvci1jaHVua3M=".to_owned()))
        ],
        "in order, with the result's key"
    );

    // A chunk short of its listed rows fails the whole read rather than pushing part of it.
    script.variant.store(1, Ordering::SeqCst);
    let short = dest.query_text("select n, email from big order by n").await.expect_err("short chunk");
    assert!(short.to_string().contains("part 2 of 2") && short.to_string().contains("not the 2 listed"), "{short}");
    // A refused download is transient and never shows the signed URL or the body.
    script.variant.store(2, Ordering::SeqCst);
    let refused = dest.query_text("select n, email from big order by n").await.expect_err("refused download");
    assert_eq!(refused.class(), ErrorClass::Transient, "{refused:?}");
    let shown = refused.to_string();
    assert!(shown.contains("403") && !shown.contains("s3cr3t") && !shown.contains("a2V5"), "{shown}");
}
