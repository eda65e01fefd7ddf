//! The BigQuery destination against bqemulator: the shared conformance suite on a fresh
//! dataset, and what is particular to BigQuery (staging tables in the target's column order,
//! the schema patch after `ADD COLUMN`, errors carried by 200 answers, multipart loads).

use hsync::destination::conformance::{self, batch_of, ensure_table, property, record, Cell, Inspect};
use hsync::destination::{Destination, Error};
use hsync::error::{Classify, ErrorClass};
use hsync::schema::hsync_columns;

use crate::support::bigquery::FreshDataset;

/// The whole conformance suite, as every destination runs it.
#[tokio::test]
async fn bigquery_passes_the_conformance_suite() {
    let Some(fresh) = FreshDataset::new() else { return };
    let dest = fresh.connect().await;
    dest.prepare().await.expect("prepare twice (run_all prepares again)");
    conformance::run_all(&dest).await;
    fresh.drop().await;
}

/// A decimal column is a `STRING` marked by its description, holding the exact canonical text
/// of hsync's widest decimals (76 digits, 38 after the point), which bqemulator's DuckDB could
/// hold in no numeric type; it reads back as a decimal.
/// When the property becomes a string the column keeps its values and loses the mark, in
/// BigQuery's catalog as in bqemulator's.
#[tokio::test]
async fn decimals_are_exact_text_marked_by_their_description_and_widen_to_text() {
    use hsync::destination::bigquery::types::DECIMAL_DESCRIPTION;
    let Some(fresh) = FreshDataset::new() else { return };
    let dest = fresh.connect().await;
    dest.prepare().await.expect("prepare");
    let schema = ensure_table(&dest, "decimals", &[property("amount", "number")]).await;
    assert_eq!(fresh.field_description("decimals", "amount").await.as_deref(), Some(DECIMAL_DESCRIPTION));
    let cases = [
        "1.00000000000000000000000000000000000001",
        "-98765432109876543210987654321098765432.12345678901234567890123456789012345678",
        "100",
    ];
    let records: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, v)| record(i as u64 + 1, "2026-01-01T00:00:00.000Z", &[("amount", Some(*v))]))
        .collect();
    let (b, r) = batch_of(&schema, &records);
    assert!(r.is_empty(), "{r:?}");
    conformance::load(&dest, "decimals", &b, &r).await;
    let rows = dest.read_table("decimals").await.expect("read");
    for (row, v) in rows.iter().zip(cases) {
        assert_eq!(row["amount"], Cell::Decimal(v.to_owned()));
    }

    let widened = ensure_table(&dest, "decimals", &[property("amount", "string")]).await;
    assert_eq!(fresh.field_description("decimals", "amount").await, None, "the decimal mark is gone");
    let amount = dest.describe("decimals").await.expect("describe").expect("table");
    let amount = amount.iter().find(|c| c.name == "amount").expect("amount");
    assert_eq!(amount.ty, hsync::schema::ColumnType::Text);
    let (b, r) = batch_of(&widened, &[record(4, "2026-01-02T00:00:00.000Z", &[("amount", Some("about 5"))])]);
    conformance::load(&dest, "decimals", &b, &r).await;
    let rows = dest.read_table("decimals").await.expect("read");
    assert_eq!(rows[0]["amount"], Cell::Text(cases[0].to_owned()), "values are kept");
    assert_eq!(rows[3]["amount"], Cell::Text("about 5".to_owned()));
    fresh.drop().await;
}

/// A stage is created with the target's column order, restricted to the batch's columns,
/// whatever order the batch has (bqemulator matches Parquet columns by position), with
/// decimals and JSON staged as text; the merge then lands every value in its column.
#[tokio::test]
async fn staging_tables_follow_the_targets_column_order() {
    let Some(fresh) = FreshDataset::new() else { return };
    let dest = fresh.connect().await;
    dest.prepare().await.expect("prepare");
    let props = [property("email", "string"), property("amount", "number"), property("seen", "datetime")];
    let schema = ensure_table(&dest, "ordered", &props).await;
    let rec = record(
        1,
        "2026-01-01T00:00:00.000Z",
        &[("email", Some("a@example.com")), ("amount", Some("2.5")), ("seen", Some("2026-02-01T00:00:00Z"))],
    );
    let (batch, rejects) = batch_of(&schema, &[rec]);
    // The batch's columns reversed, without `_hsync_synced_at` and the flags.
    let wanted = ["seen", "amount", "email", hsync_columns::CURSOR, hsync_columns::ID];
    let indices: Vec<usize> = wanted.iter().map(|c| batch.schema().index_of(c).unwrap()).collect();
    let reversed = batch.project(&indices).unwrap();
    let stage = dest.stage("ordered", &reversed).await.expect("stage");
    let target_order: Vec<String> =
        fresh.fields("ordered").await.into_iter().map(|(n, _)| n).filter(|n| wanted.contains(&n.as_str())).collect();
    assert_eq!(stage.columns, target_order);
    let staged = fresh.fields(&stage.stage_table).await;
    let staged_names: Vec<&str> = staged.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(staged_names, target_order.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(staged.iter().find(|(n, _)| n == "amount").unwrap().1, "STRING", "decimals are staged as text");
    dest.merge(stage, &rejects, None).await.expect("merge");
    let rows = dest.read_table("ordered").await.expect("read");
    assert_eq!(rows[0]["email"], Cell::Text("a@example.com".into()));
    assert_eq!(rows[0]["amount"], Cell::Decimal("2.5".into()));
    assert_eq!(rows[0]["seen"], Cell::TimestampMs(hsync::schema::parse_instant_ms("2026-02-01T00:00:00Z").unwrap()));
    assert!(dest.stage_tables().await.expect("stages").is_empty(), "the merge drops its stage");
    fresh.drop().await;
}

/// `ADD COLUMN` is followed by a schema patch, so tables.get (the catalog bqemulator answers
/// from) lists the new columns with their types, and a merge can write them.
#[tokio::test]
async fn added_columns_are_visible_in_tables_get() {
    let Some(fresh) = FreshDataset::new() else { return };
    let dest = fresh.connect().await;
    dest.prepare().await.expect("prepare");
    ensure_table(&dest, "grown", &[property("email", "string")]).await;
    let before = fresh.fields("grown").await;
    let props = [
        property("email", "string"),
        property("closed", "bool"),
        property("payload", "json"),
        property("order", "date"),
    ];
    let schema = ensure_table(&dest, "grown", &props).await;
    let after = fresh.fields("grown").await;
    assert_eq!(&after[..before.len()], &before[..], "existing columns keep their place");
    let added: Vec<(&str, &str)> = after[before.len()..].iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    assert_eq!(added, [("closed", "BOOL"), ("order", "DATE"), ("payload", "JSON")], "in the plan's order");
    // Describing again plans nothing; the new columns take values.
    let existing = dest.describe("grown").await.expect("describe");
    let plan =
        hsync::schema::diff("grown", &props, existing.as_deref(), &[], &Default::default(), dest.column_budget());
    assert!(plan.is_empty(), "{:?}", plan.changes);
    let rec = record(
        1,
        "2026-01-01T00:00:00.000Z",
        &[("closed", Some("true")), ("payload", Some(r#"{"a":1}"#)), ("order", Some("2026-01-05"))],
    );
    let (b, r) = batch_of(&schema, &[rec]);
    conformance::load(&dest, "grown", &b, &r).await;
    let rows = dest.read_table("grown").await.expect("read");
    assert_eq!(rows[0]["closed"], Cell::Bool(true));
    assert_eq!(rows[0]["payload"], Cell::Json(serde_json::json!({"a": 1})));
    assert_eq!(rows[0]["order"], Cell::Date("2026-01-05".into()));
    fresh.drop().await;
}

/// jobs.query reports SQL errors in a 200 answer; they surface as errors, classed as bugs,
/// not as empty results.
#[tokio::test]
async fn errors_in_200_answers_are_errors() {
    let Some(fresh) = FreshDataset::new() else { return };
    let dest = fresh.connect().await;
    dest.prepare().await.expect("prepare");
    // A table without hsync's flag columns: reading its live ids names missing columns.
    fresh.create_table("foreign", &[("id", "INT64")]).await;
    let raw = fresh.query(&format!("SELECT `_hsync_archived_at` FROM `{}`.`foreign`", fresh.dataset)).await;
    assert!(raw["errors"].is_array(), "the emulator answers 200 with errors: {raw}");
    let e = dest.live_ids("foreign").await.expect_err("a failing query is an error");
    assert!(matches!(e, Error::Statement { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::Bug);
    // A dataset that does not exist: a configuration problem, said so.
    let missing = FreshDataset { endpoint: fresh.endpoint.clone(), dataset: "never_created".into() };
    let e = missing.connect().await.healthcheck().await.expect_err("missing dataset");
    assert_eq!(e.class(), ErrorClass::Config, "{e}");
    fresh.drop().await;
}

/// A batch bigger than one page is staged by one multipart load job: every row arrives, and
/// nothing but the stage is visible until the merge.
#[tokio::test]
async fn multipart_loads_stage_every_row() {
    let Some(fresh) = FreshDataset::new() else { return };
    let dest = fresh.connect().await;
    dest.prepare().await.expect("prepare");
    let schema = ensure_table(&dest, "bulk", &[property("email", "string"), property("note", "string")]).await;
    let records: Vec<_> = (1..=2_500)
        .map(|i| {
            record(
                i,
                "2026-01-01T00:00:00.000Z",
                &[("email", Some(&format!("{i}@example.com"))), ("note", Some("ünïcode \"quoted\"\ttab\nline"))],
            )
        })
        .collect();
    let (b, r) = batch_of(&schema, &records);
    let stage = dest.stage("bulk", &b).await.expect("stage");
    assert_eq!(stage.rows, 2_500);
    let counted = fresh.query(&format!("SELECT COUNT(*) FROM `{}`.`{}`", fresh.dataset, stage.stage_table)).await;
    assert_eq!(counted["rows"][0]["f"][0]["v"], "2500", "{counted}");
    assert!(dest.read_table("bulk").await.expect("read").is_empty());
    let outcome = dest.merge(stage, &r, None).await.expect("merge");
    assert_eq!((outcome.written, outcome.skipped), (2_500, 0));
    let rows = dest.read_table("bulk").await.expect("read");
    assert_eq!(rows.len(), 2_500, "every row, read back across result pages");
    assert_eq!(rows[2_499]["note"], Cell::Text("ünïcode \"quoted\"\ttab\nline".into()));
    assert_eq!(dest.live_ids("bulk").await.expect("ids").len(), 2_500);
    fresh.drop().await;
}

/// `hsync check` as a subprocess against the simulator and the emulator: the destination line
/// names the dataset and the local state file, the write probe leaves no table behind, and the
/// state file is created.
#[tokio::test]
async fn check_passes_against_the_simulator_and_bigquery() {
    use crate::support::cli::{explain, hsync, stdout, write_config};
    let Some(fresh) = FreshDataset::new() else { return };
    let sim = crate::support::Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let sections = format!(
        "[destination]\nurl = \"{}\"\nstate_path = \"{}\"\n\n[destination.bigquery]\nendpoint = \"{}\"\n\n\
         [sync]\nobjects = [\"contacts\"]\n",
        fresh.url(),
        state.display(),
        fresh.endpoint
    );
    let config = write_config(dir.path(), &sim.handle.base_url(), &sections);
    let out = hsync(&config, &["check"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let text = stdout(&out);
    let destination = text.lines().find(|l| l.contains("destination:")).unwrap_or_else(|| panic!("{text}"));
    assert!(destination.contains(&format!("in dataset {}.{}", crate::support::bigquery::PROJECT, fresh.dataset)));
    assert!(state.is_file(), "the local state file is created");
    let (_, tables) = fresh.get(&format!("/datasets/{}/tables", fresh.dataset)).await;
    let names: Vec<&str> =
        tables["tables"].as_array().unwrap().iter().map(|t| t["tableReference"]["tableId"].as_str().unwrap()).collect();
    assert!(names.contains(&"_hsync_rejects") && names.contains(&"associations"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with(hsync::destination::PROBE_PREFIX)), "{names:?}");
    fresh.drop().await;
}
