//! Writing records: batch upsert by an id property, and batch update by record id
//! (docs/hubspot-write-api.md). Both are idempotent, so the client's retries (a lost answer, a
//! 429, a 5xx) never write twice. Every input carries an `objectWriteTraceId` so that HubSpot
//! answers an input it refuses in `errors` (207) instead of refusing the whole batch, and each
//! outcome is matched back to its input. Associations between written records go through
//! v4's `batch/associate/default`.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::json;

use super::client::{ApiRequest, HubSpotClient};
use super::limits::Bucket;
use super::model::BatchError;
use super::Error;

/// Inputs per batch write, HubSpot's limit.
pub const WRITE_BATCH_MAX: usize = 100;

/// One record to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteInput {
    /// Ours, echoed in HubSpot's errors: the input's position in the caller's list, as text.
    pub trace_id: String,
    /// The id property's value (the record id when writing by record id).
    pub id: String,
    pub properties: std::collections::BTreeMap<String, String>,
}

/// What HubSpot did with one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteResult {
    Written {
        record_id: String,
        /// Whether the upsert created the record (`None` when HubSpot does not say).
        created: Option<bool>,
    },
    /// HubSpot refused the input: its category and message.
    Refused { category: String, message: String },
}

#[derive(Debug, Deserialize)]
struct Written {
    id: String,
    #[serde(default)]
    new: Option<bool>,
    #[serde(default)]
    properties: HashMap<String, Option<String>>,
}

#[derive(Debug, Deserialize)]
struct WriteEnvelope {
    #[serde(default)]
    results: Vec<Written>,
    #[serde(default)]
    errors: Vec<BatchError>,
}

impl HubSpotClient {
    /// Writes `inputs` (at most [`WRITE_BATCH_MAX`]) to `object`: an upsert by `id_property`,
    /// or an update by record id when `id_property` is `None`. Returns one result per input, in
    /// order; an input HubSpot neither wrote nor refused by name is refused as unanswered.
    pub async fn batch_write(
        &self,
        object: &str,
        id_property: Option<&str>,
        inputs: &[WriteInput],
    ) -> Result<Vec<WriteResult>, Error> {
        let body_inputs: Vec<_> = inputs
            .iter()
            .map(|i| {
                let mut input = json!({ "id": i.id, "properties": i.properties, "objectWriteTraceId": i.trace_id });
                if let Some(p) = id_property {
                    input["idProperty"] = json!(p);
                }
                input
            })
            .collect();
        let (endpoint, op) =
            if id_property.is_some() { ("batch_upsert", "upsert") } else { ("batch_update", "update") };
        let path = format!("{}/batch/{op}", self.paths().objects(object));
        let answer: WriteEnvelope =
            self.send(&ApiRequest::post(endpoint, path, json!({ "inputs": body_inputs }))).await?;
        Ok(match_results(inputs, id_property, answer))
    }
}

/// Pairs per association write: HubSpot's batch create limit, which `batch/associate/default`
/// is assumed to share (it documents none; docs/hubspot-write-api.md §4.1).
pub const ASSOCIATE_BATCH_MAX: usize = 1_000;

#[derive(Debug, Deserialize)]
struct Associated {
    #[serde(default)]
    results: Vec<serde_json::Value>,
    #[serde(default)]
    errors: Vec<BatchError>,
}

impl HubSpotClient {
    /// Associates each `(from id, to id)` pair with the default (unlabeled) association type
    /// from `from` to `to` (`POST /crm/v4/associations/{from}/{to}/batch/associate/default`),
    /// in calls of [`ASSOCIATE_BATCH_MAX`] on the association bucket. Associating a pair that
    /// already is changes nothing, so a retried call is harmless. Returns the pairs HubSpot
    /// reported associated; an error it names for some pairs fails the call.
    pub async fn associate_default(&self, from: &str, to: &str, pairs: &[(String, String)]) -> Result<usize, Error> {
        let path = format!("{}/batch/associate/default", self.paths().associations(from, to));
        let mut done = 0;
        for chunk in pairs.chunks(ASSOCIATE_BATCH_MAX) {
            let inputs: Vec<_> = chunk.iter().map(|(f, t)| json!({ "from": { "id": f }, "to": { "id": t } })).collect();
            let req = ApiRequest::post("associate_default", path.clone(), json!({ "inputs": inputs }))
                .bucket(Bucket::Associations);
            let answer: Associated = self.send(&req).await?;
            if let Some(error) = answer.errors.into_iter().next() {
                return Err(Error::Rejected {
                    endpoint: "associate_default".into(),
                    status: 207,
                    category: error.category,
                    message: error.message.unwrap_or_default(),
                    correlation_id: None,
                });
            }
            done += answer.results.len();
        }
        Ok(done)
    }
}

/// Each input's result: refusals by trace id, writes by id property value (case-insensitively,
/// as HubSpot matches emails) or record id.
fn match_results(inputs: &[WriteInput], id_property: Option<&str>, answer: WriteEnvelope) -> Vec<WriteResult> {
    let mut refused: HashMap<&str, (String, String)> = HashMap::new();
    for error in &answer.errors {
        let why = (error.category.clone().unwrap_or_default(), error.message.clone().unwrap_or_default());
        for trace in error.context.get("objectWriteTraceId").into_iter().flatten() {
            refused.insert(trace.as_str(), why.clone());
        }
    }
    let mut written: HashMap<String, &Written> = HashMap::new();
    for w in &answer.results {
        let key = match id_property {
            Some(p) => w.properties.get(p).cloned().flatten().unwrap_or_default().to_lowercase(),
            None => w.id.clone(),
        };
        written.insert(key, w);
    }
    inputs
        .iter()
        .map(|input| {
            if let Some((category, message)) = refused.get(input.trace_id.as_str()) {
                return WriteResult::Refused { category: category.clone(), message: message.clone() };
            }
            let key = if id_property.is_some() { input.id.to_lowercase() } else { input.id.clone() };
            match written.get(&key) {
                Some(w) => WriteResult::Written { record_id: w.id.clone(), created: w.new },
                None => WriteResult::Refused {
                    category: "UNANSWERED".to_owned(),
                    message: "HubSpot's answer named neither a result nor an error for this input".to_owned(),
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(trace: &str, id: &str) -> WriteInput {
        WriteInput { trace_id: trace.into(), id: id.into(), properties: Default::default() }
    }

    #[test]
    fn results_match_their_inputs_by_id_value_and_refusals_by_trace_id() {
        let answer: WriteEnvelope = serde_json::from_value(json!({
            "status": "COMPLETE",
            "results": [{"id": "11", "new": true, "properties": {"email": "b@x.io"}},
                        {"id": "10", "new": false, "properties": {"email": "a@x.io"}}],
            "numErrors": 1,
            "errors": [{"status": "error", "category": "VALIDATION_ERROR", "message": "Email address c@ is invalid",
                        "context": {"objectWriteTraceId": ["2"]}}]
        }))
        .unwrap();
        let inputs = [input("0", "A@x.io"), input("1", "b@x.io"), input("2", "c@"), input("3", "d@x.io")];
        let results = match_results(&inputs, Some("email"), answer);
        assert_eq!(results[0], WriteResult::Written { record_id: "10".into(), created: Some(false) });
        assert_eq!(results[1], WriteResult::Written { record_id: "11".into(), created: Some(true) });
        assert!(matches!(&results[2], WriteResult::Refused { category, .. } if category == "VALIDATION_ERROR"));
        assert!(matches!(&results[3], WriteResult::Refused { category, .. } if category == "UNANSWERED"));
    }

    #[test]
    fn updates_by_record_id_match_on_the_id() {
        let answer: WriteEnvelope =
            serde_json::from_value(json!({"results": [{"id": "7", "properties": {}}]})).unwrap();
        let results = match_results(&[input("0", "7")], None, answer);
        assert_eq!(results, [WriteResult::Written { record_id: "7".into(), created: None }]);
    }
}
