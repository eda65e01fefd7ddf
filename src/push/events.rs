//! Records pushed as events (docs/push.md "Events"): systems that emit events instead of
//! tables `POST` JSON records to the daemon, which checks and writes them exactly as a push
//! writes rows ([`super::write_batch`]) and answers each record's outcome. This module owns the
//! request body's rules ([`records`], pure) and one request's sequence ([`push_records`]):
//! plan, write 100 a call, record every outcome in `push_results` under the stream
//! `push:<name>.events`.

use serde::Serialize;
use serde_json::Value;

use super::plan::{batches, tally};
use super::run::{record, write_batch, Outcome, PushState, Target};
use super::Error;
use crate::destination::{Destination, TextRows};
use crate::state::{StateStore, StreamId};
use crate::stream::runner::Runner;

/// Records one request may carry: ten batch writes.
pub const MAX_RECORDS: usize = 1_000;

/// Why a request body cannot be pushed (answered 400).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is not JSON ({0}); send {{\"records\": [{{\"email\": \"…\", …}}]}}")]
    NotJson(String),
    #[error("the body needs a \"records\" array of objects: {{\"records\": [{{\"email\": \"…\", …}}]}}")]
    NoRecords,
    #[error("\"records\" is empty; send at least one record")]
    Empty,
    #[error("{count} records; one request takes at most {MAX_RECORDS}: split it")]
    TooMany { count: usize },
    #[error("record {index} is not a JSON object of column names to values")]
    NotAnObject { index: usize },
    #[error(
        "record {index}, field {field}: a value must be a string, number, boolean or null, not an array or object"
    )]
    NotScalar { index: usize, field: String },
}

/// The records of a request body as rows: columns in the order they first appear (a record's
/// own fields in name order; the order matters to nothing but the report), strings as they are, numbers and booleans as JSON writes them, null or absent as no value.
pub fn records(body: &[u8]) -> Result<TextRows, BodyError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
    let Some(list) = value.get("records").and_then(Value::as_array) else { return Err(BodyError::NoRecords) };
    if list.is_empty() {
        return Err(BodyError::Empty);
    }
    if list.len() > MAX_RECORDS {
        return Err(BodyError::TooMany { count: list.len() });
    }
    let mut columns: Vec<String> = Vec::new();
    for (index, record) in list.iter().enumerate() {
        let fields = record.as_object().ok_or(BodyError::NotAnObject { index })?;
        for (field, v) in fields {
            if v.is_array() || v.is_object() {
                return Err(BodyError::NotScalar { index, field: field.clone() });
            }
            if !columns.contains(field) {
                columns.push(field.clone());
            }
        }
    }
    let rows = list
        .iter()
        .map(|record| {
            columns
                .iter()
                .map(|c| match record.get(c) {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()).filter(|s| !s.is_empty()),
                    Some(other) => Some(other.to_string()),
                })
                .collect()
        })
        .collect();
    Ok(TextRows { columns, rows })
}

/// One record's outcome, as answered.
#[derive(Clone, Debug, Serialize)]
pub struct RecordResult {
    /// The record's position in the request, from 0.
    pub index: usize,
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// What one request did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Pushed {
    pub run_id: String,
    pub object: String,
    /// Outcomes by name.
    pub counts: std::collections::BTreeMap<String, i64>,
    pub results: Vec<RecordResult>,
    /// Calls made to HubSpot.
    pub calls: u64,
}

/// Pushes `rows` (a request's records) through `target`, recording each outcome under
/// `push:<name>.events` and returning them.
pub async fn push_records<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    name: &str,
    target: &Target,
    rows: &TextRows,
) -> Result<Pushed, Error> {
    let planned = target.plan(&rows.rows);
    let stream = StreamId::push_events(name);
    let mut state = crate::stream::state::load::<PushState>(&runner.state, &stream).await?.unwrap_or_default();
    let run_id = uuid::Uuid::new_v4().to_string();
    let now_ms = runner.clock.now().timestamp_millis();
    state = PushState {
        phase: "events".to_owned(),
        run_id: run_id.clone(),
        started_at_ms: now_ms,
        total_rows: state.total_rows,
        outcomes: state.outcomes,
        ..PushState::default()
    };
    let mut pushed = Pushed { run_id, object: target.object.table.clone(), ..Pushed::default() };
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(planned.len());
    for range in batches(&planned) {
        let batch = &planned[range];
        let (written, calls) = write_batch(&runner.client, target, batch).await?;
        pushed.calls += calls;
        for outcome in &written {
            *state.outcomes.entry(outcome.name.to_owned()).or_default() += 1;
        }
        state.rows = batch.last().map_or(0, |r| r.row_number);
        state.total_rows += batch.len() as i64;
        state.finished_at_ms = runner.clock.now().timestamp_millis();
        record(runner, name, &target.object.table, &state, batch, &written, &stream).await?;
        outcomes.extend(written);
    }
    pushed.counts = tally(outcomes.iter().map(|o| o.name));
    pushed.results = outcomes
        .into_iter()
        .enumerate()
        .map(|(index, o)| RecordResult {
            index,
            outcome: o.name,
            reason: Some(o.reason).filter(|r| !r.is_empty()),
            record_id: o.record_id,
            correlation_id: o.correlation_id,
        })
        .collect();
    metrics::counter!("hsync_push_calls_total", "push" => name.to_owned()).increment(pushed.calls);
    Ok(pushed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_rows_with_columns_in_first_seen_order() {
        let rows = records(br#"{"records": [{"email": "a@x.io", "score": 7}, {"score": 1.5, "vip": true, "email": null, "tier": ""}]}"#)
            .unwrap();
        assert_eq!(rows.columns, ["email", "score", "tier", "vip"]);
        assert_eq!(rows.rows[0], [Some("a@x.io".into()), Some("7".into()), None, None]);
        assert_eq!(rows.rows[1], [None, Some("1.5".into()), None, Some("true".into())]);
    }

    #[test]
    fn bodies_that_are_not_records_are_refused_with_what_to_send() {
        assert!(matches!(records(b"{\"records\": [1"), Err(BodyError::NotJson(_))));
        assert_eq!(records(b"[{\"email\": \"a@x.io\"}]"), Err(BodyError::NoRecords));
        assert_eq!(records(b"{\"records\": []}"), Err(BodyError::Empty));
        assert_eq!(records(b"{\"records\": [{\"a\": 1}, 2]}"), Err(BodyError::NotAnObject { index: 1 }));
        assert_eq!(
            records(b"{\"records\": [{\"a\": {\"b\": 1}}]}"),
            Err(BodyError::NotScalar { index: 0, field: "a".into() })
        );
        let many = format!("{{\"records\": [{}]}}", vec!["{}"; MAX_RECORDS + 1].join(","));
        assert_eq!(records(many.as_bytes()), Err(BodyError::TooMany { count: MAX_RECORDS + 1 }));
    }
}
