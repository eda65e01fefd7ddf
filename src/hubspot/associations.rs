//! Associations v4: batch reads of up to 1,000 ids per call, each input followed through its
//! own paging token to the end, `NO_ASSOCIATIONS_FOUND` read as "no edges"; and the association
//! types (labels) defined from one object type to another.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;

use super::client::{ApiRequest, HubSpotClient};
use super::error::Error;
use super::limits::Bucket;
use super::model::{AssociationResult, AssociationTarget, AssociationType, BatchEnvelope};

/// HubSpot's association batch read limit.
pub const ASSOCIATION_BATCH_MAX: usize = 1_000;

#[derive(serde::Deserialize)]
struct Labels {
    #[serde(default = "Vec::new")]
    results: Vec<AssociationType>,
}

impl HubSpotClient {
    /// The association types defined from `from` to `to` (`GET .../{from}/{to}/labels`): the
    /// unlabeled default and every label, each with its direction's type id. Empty when the
    /// portal defines no association between the two types.
    pub async fn association_types(&self, from: &str, to: &str) -> Result<Vec<AssociationType>, Error> {
        let path = format!("{}/labels", self.paths().associations(from, to));
        match self.send::<Labels>(&ApiRequest::get("associations", path).bucket(Bucket::Associations)).await {
            Ok(labels) => Ok(labels.results),
            Err(Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Every association from each id in `ids` to records of type `to`. Ids without
    /// associations (or unknown to HubSpot, which answers the same) map to an empty list.
    pub async fn associations(
        &self,
        from: &str,
        to: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<AssociationTarget>>, Error> {
        let path = format!("{}/batch/read", self.paths().associations(from, to));
        let mut out: HashMap<String, Vec<AssociationTarget>> = ids.iter().map(|id| (id.clone(), Vec::new())).collect();
        // Inputs still to read: id -> paging token (None for the first page).
        let mut pending: BTreeMap<String, Option<String>> = ids.iter().map(|id| (id.clone(), None)).collect();
        while !pending.is_empty() {
            let batch: Vec<(String, Option<String>)> =
                pending.iter().take(ASSOCIATION_BATCH_MAX).map(|(k, v)| (k.clone(), v.clone())).collect();
            let inputs: Vec<_> = batch
                .iter()
                .map(|(id, after)| match after {
                    Some(a) => json!({ "id": id, "after": a }),
                    None => json!({ "id": id }),
                })
                .collect();
            let envelope: BatchEnvelope<AssociationResult> = self
                .send(
                    &ApiRequest::post("associations", path.clone(), json!({ "inputs": inputs }))
                        .bucket(Bucket::Associations),
                )
                .await?;
            for (id, _) in &batch {
                pending.remove(id);
            }
            if let Some(error) = envelope.errors.into_iter().find(|e| !e.is_not_found()) {
                return Err(Error::Rejected {
                    endpoint: "associations".into(),
                    status: 207,
                    category: error.category,
                    message: error.message.unwrap_or_default(),
                    correlation_id: None,
                });
            }
            for result in envelope.results {
                let next = result.paging.and_then(|p| p.next).map(|n| n.after);
                let sent = batch.iter().find(|(id, _)| *id == result.from.id).and_then(|(_, a)| a.clone());
                if let Some(next) = next {
                    // A token that does not move would loop forever: treat it as the end.
                    if Some(&next) != sent.as_ref() {
                        pending.insert(result.from.id.clone(), Some(next));
                    }
                }
                out.entry(result.from.id).or_default().extend(result.to);
            }
        }
        Ok(out)
    }
}
