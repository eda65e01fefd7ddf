//! Record reads: list pages, get by id, batch read (with 207 partial results) and batch read
//! of property history.

use serde_json::json;

use super::client::{ApiRequest, HubSpotClient};
use super::error::Error;
use super::model::{BatchEnvelope, BatchRead, CrmObject, ListPage};

/// HubSpot's batch read limit.
pub const BATCH_READ_MAX: usize = 100;
/// HubSpot's list page limit.
pub const LIST_MAX: u32 = 100;
/// HubSpot's batch read limit when the read asks for `propertiesWithHistory`: more inputs are
/// refused with "The maximum number of inputs supported in a batch request for property
/// histories is 50" (docs/history.md has the sources).
pub const HISTORY_BATCH_MAX: usize = 50;
/// Batch reads of one call kept in flight at once: a history pass's chunk of 200 records is
/// four reads, sent together instead of one after another.
pub const BATCH_READS_IN_FLIGHT: usize = 4;

/// Parameters of one list page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListParams {
    pub limit: u32,
    pub after: Option<String>,
    pub properties: Vec<String>,
    /// `true` lists only archived (recycle-bin) records.
    pub archived: bool,
}

impl HubSpotClient {
    /// One page of `GET /objects/{type}`.
    pub async fn list(&self, object: &str, params: &ListParams) -> Result<ListPage<CrmObject>, Error> {
        let limit = params.limit.clamp(1, LIST_MAX);
        let mut req = ApiRequest::get("list", self.paths().objects(object)).query("limit", limit.to_string());
        if let Some(after) = &params.after {
            req = req.query("after", after.clone());
        }
        if !params.properties.is_empty() {
            req = req.query("properties", params.properties.join(","));
        }
        if params.archived {
            req = req.query("archived", "true");
        }
        self.send_records(&req).await
    }

    /// One record by id, or `None` when HubSpot does not have it.
    pub async fn get(&self, object: &str, id: &str, properties: &[String]) -> Result<Option<CrmObject>, Error> {
        let mut req = ApiRequest::get("get", format!("{}/{id}", self.paths().objects(object)));
        if !properties.is_empty() {
            req = req.query("properties", properties.join(","));
        }
        match self.send_records(&req).await {
            Ok(rec) => Ok(Some(rec)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads records by id in batches of 100. Ids HubSpot does not have come back in
    /// `missing` (its 207 answer), never as an error; results are matched by id, not order.
    pub async fn batch_read(
        &self,
        object: &str,
        ids: &[String],
        properties: &[String],
        archived: bool,
    ) -> Result<BatchRead, Error> {
        self.batch_read_in(object, ids, BATCH_READ_MAX, json!({ "properties": properties }), archived).await
    }

    /// Reads the live records whose `id_property` (a property with unique values, or `email`
    /// on contacts) is one of `values`, in batches of 100, with `properties` (the id property
    /// is always read). Values HubSpot has no record for come back in `missing`.
    pub async fn batch_read_by(
        &self,
        object: &str,
        id_property: &str,
        values: &[String],
        properties: &[String],
    ) -> Result<BatchRead, Error> {
        let mut wanted: Vec<&String> = properties.iter().collect();
        let id = id_property.to_owned();
        if !wanted.contains(&&id) {
            wanted.push(&id);
        }
        let fields = json!({ "properties": wanted, "idProperty": id_property });
        self.batch_read_in(object, values, BATCH_READ_MAX, fields, false).await
    }

    /// Reads the versions of `properties` of live records by id, in batches of
    /// [`HISTORY_BATCH_MAX`], the names in the body (a wide selection never meets `414`); each
    /// record's versions are in [`CrmObject::properties_with_history`], its current values in
    /// its properties. Ids HubSpot does not
    /// have come back in `missing`.
    pub async fn batch_read_history(
        &self,
        object: &str,
        ids: &[String],
        properties: &[String],
    ) -> Result<BatchRead, Error> {
        // The current values too: `hsync verify` compares them with the latest version.
        let current: Vec<&str> = std::iter::once("hs_object_id").chain(properties.iter().map(String::as_str)).collect();
        let fields = json!({ "properties": current, "propertiesWithHistory": properties });
        self.batch_read_in(object, ids, HISTORY_BATCH_MAX, fields, false).await
    }

    /// Batch reads of `chunk` ids each, `fields` merged into each request body beside the inputs,
    /// [`BATCH_READS_IN_FLIGHT`] at a time so HubSpot's latency does not idle the general bucket
    /// (the limiter still paces them); results in the order of `ids`' chunks.
    async fn batch_read_in(
        &self,
        object: &str,
        ids: &[String],
        chunk: usize,
        fields: serde_json::Value,
        archived: bool,
    ) -> Result<BatchRead, Error> {
        use futures_util::{StreamExt, TryStreamExt};
        let reads: Vec<BatchRead> = futures_util::stream::iter(ids.chunks(chunk.max(1)))
            .map(|chunk| self.batch_read_chunk(object, chunk, &fields, archived))
            .buffered(BATCH_READS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut out = BatchRead::default();
        for read in reads {
            out.found.extend(read.found);
            out.missing.extend(read.missing);
        }
        Ok(out)
    }

    /// One batch read of `chunk`.
    async fn batch_read_chunk(
        &self,
        object: &str,
        chunk: &[String],
        fields: &serde_json::Value,
        archived: bool,
    ) -> Result<BatchRead, Error> {
        let inputs: Vec<_> = chunk.iter().map(|id| json!({ "id": id })).collect();
        let mut body = fields.clone();
        body["inputs"] = json!(inputs);
        let mut req = ApiRequest::post("batch_read", format!("{}/batch/read", self.paths().objects(object)), body);
        if archived {
            req = req.query("archived", "true");
        }
        let envelope: BatchEnvelope<CrmObject> = self.send_records(&req).await?;
        let mut out = BatchRead::default();
        for error in envelope.errors {
            if !error.is_not_found() {
                return Err(Error::Rejected {
                    endpoint: "batch_read".into(),
                    status: 207,
                    category: error.category,
                    message: error.message.unwrap_or_default(),
                    correlation_id: None,
                });
            }
            out.missing.extend(error.context.get("ids").cloned().unwrap_or_default());
        }
        out.found = envelope.results;
        Ok(out)
    }
}
