//! Property history rows: one row of `property_history` ([`PROPERTY_HISTORY`]) per version
//! HubSpot lists in `propertiesWithHistory`.
//!
//! # Keys
//! A row's key is its object type and its `version_id`: `<record id>/<property>/<epoch ms>/
//! <digest>`, the digest being the first 16 hex digits of a SHA-256 of what else the version
//! says (value, source type, source id, source label, user). So two versions in the same
//! millisecond stay apart when anything about them differs, a later read of the same version
//! gives the same key (a replay adds nothing), and versions that are the same in every field
//! within one answer are numbered (`…/<digest>/2`) rather than folded into one.
//!
//! A version without a readable timestamp cannot be keyed: it is left out and recorded as a
//! reject, as is every version [`PropertyHistory::skipped`] lists.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::dimension::PROPERTY_HISTORY;
use super::{parse_instant_ms, Reject};
use crate::hubspot::model::{CrmObject, PropertyVersion};

/// Rows of [`PROPERTY_HISTORY`] (its columns, in order, as raw text) for the versions of
/// `records`, records of the table `object_type`, with what had to be left out.
pub fn version_rows(object_type: &str, records: &[CrmObject]) -> (Vec<Vec<Option<String>>>, Vec<Reject>) {
    let mut rows = Vec::new();
    let mut rejects = Vec::new();
    let reject = |id: &str, property: &str, raw: String, reason: String| Reject {
        object: PROPERTY_HISTORY.name.to_owned(),
        id: format!("{object_type}/{id}"),
        property: property.to_owned(),
        raw,
        reason,
    };
    for record in records {
        if let Some(unreadable) = &record.unreadable {
            rejects.push(reject(&record.id, "", unreadable.raw.clone(), unreadable.reason.clone()));
            continue;
        }
        let history = &record.properties_with_history;
        for (property, why) in &history.skipped {
            rejects.push(reject(&record.id, property, String::new(), format!("a version was left out: {why}")));
        }
        if history.versions.is_empty() {
            continue;
        }
        if record.id.trim().parse::<i64>().is_err() {
            let reason = "the record id is not an integer; its history was not stored".to_owned();
            rejects.push(reject(&record.id, "", record.id.clone(), reason));
            continue;
        }
        for (property, versions) in &history.versions {
            let mut seen: HashMap<String, u32> = HashMap::new();
            for version in versions {
                let Some(at_ms) = parse_instant_ms(&version.timestamp) else {
                    let reason = "the version's timestamp is not an ISO 8601 instant; the version was not stored";
                    rejects.push(reject(&record.id, property, version.timestamp.clone(), reason.to_owned()));
                    continue;
                };
                let base = format!("{}/{property}/{at_ms}/{}", record.id.trim(), digest(version));
                let repeats = seen.entry(base.clone()).or_insert(0);
                *repeats += 1;
                let version_id = if *repeats == 1 { base } else { format!("{base}/{repeats}") };
                rows.push(vec![
                    Some(object_type.to_owned()),
                    Some(version_id),
                    Some(record.id.trim().to_owned()),
                    Some(property.clone()),
                    version.value.clone(),
                    Some(version.timestamp.clone()),
                    version.source_type.clone(),
                    version.source_id.clone(),
                    version.source_label.clone(),
                    version.updated_by_user_id.map(|u| u.to_string()),
                ]);
            }
        }
    }
    (rows, rejects)
}

/// The first 16 hex digits of a SHA-256 over the version's fields other than its time, each
/// marked present or absent so that `None` and `""` differ.
fn digest(version: &PropertyVersion) -> String {
    let mut hash = Sha256::new();
    let user = version.updated_by_user_id.map(|u| u.to_string());
    for field in [&version.value, &version.source_type, &version.source_id, &version.source_label, &user] {
        match field {
            None => hash.update([0u8]),
            Some(text) => {
                hash.update([1u8]);
                hash.update((text.len() as u64).to_le_bytes());
                hash.update(text.as_bytes());
            }
        }
    }
    hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::dimension::build_dimension_batch;

    fn record(json: &str) -> CrmObject {
        serde_json::from_str(json).unwrap()
    }

    fn column(rows: &[Vec<Option<String>>], name: &str) -> Vec<Option<String>> {
        let i = PROPERTY_HISTORY.columns.iter().position(|(c, _)| *c == name).unwrap();
        rows.iter().map(|r| r[i].clone()).collect()
    }

    const DEAL: &str = r#"{"id":"42","properties":{},"propertiesWithHistory":{"dealstage":[
        {"value":"closedwon","timestamp":"2025-03-02T10:00:00.120Z","sourceType":"CRM_UI","sourceId":"userId:5","updatedByUserId":5},
        {"value":"closedwon","timestamp":"2025-03-02T10:00:00.120Z","sourceType":"INTEGRATION","sourceId":"3141"},
        {"value":"contractsent","timestamp":"2025-03-02T10:00:00.120Z","sourceType":"CRM_UI","sourceId":"userId:5","updatedByUserId":5},
        {"value":"qualifiedtobuy","timestamp":"2025-02-01T09:00:00Z","sourceType":"CRM_UI"},
        {"value":"qualifiedtobuy","timestamp":"2025-02-01T09:00:00Z","sourceType":"CRM_UI"},
        {"value":"appointmentscheduled","timestamp":"yesterday","sourceType":"CRM_UI"}
    ],"amount":[{"value":null,"timestamp":"2025-01-01T00:00:00Z","sourceType":"CALCULATED"}]}}"#;

    #[test]
    fn versions_in_one_millisecond_stay_apart_and_repeats_are_numbered() {
        let (rows, rejects) = version_rows("deals", &[record(DEAL)]);
        assert_eq!(rows.len(), 6, "every version with a timestamp");
        let ids = column(&rows, "version_id");
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), rows.len(), "keys never collide: {ids:?}");
        let same_ms: Vec<&String> =
            ids.iter().flatten().filter(|id| id.starts_with("42/dealstage/1740909600120/")).collect();
        assert_eq!(same_ms.len(), 3, "three versions in one millisecond: {ids:?}");
        let repeats: Vec<&String> =
            ids.iter().flatten().filter(|id| id.starts_with("42/dealstage/1738400400000/")).collect();
        assert_eq!(repeats.len(), 2);
        assert!(repeats[1].ends_with("/2") && repeats[1].starts_with(repeats[0].as_str()), "{repeats:?}");
        let amount = column(&rows, "property").iter().position(|p| p.as_deref() == Some("amount")).unwrap();
        assert_eq!(column(&rows, "value")[amount], None, "a null value stays NULL");
        assert_eq!(rejects.len(), 1, "{rejects:?}");
        assert_eq!(
            (rejects[0].id.as_str(), rejects[0].property.as_str(), rejects[0].raw.as_str()),
            ("deals/42", "dealstage", "yesterday")
        );
    }

    #[test]
    fn a_replay_gives_the_same_keys_and_the_digest_covers_every_field() {
        let (first, _) = version_rows("deals", &[record(DEAL)]);
        let (again, _) = version_rows("deals", &[record(DEAL)]);
        assert_eq!(first, again);
        let base = PropertyVersion {
            value: Some("a".into()),
            timestamp: "2025-01-01T00:00:00Z".into(),
            source_type: Some("CRM_UI".into()),
            source_id: None,
            source_label: None,
            updated_by_user_id: None,
        };
        let variants = [
            PropertyVersion { value: None, ..base.clone() },
            PropertyVersion { value: Some(String::new()), ..base.clone() },
            PropertyVersion { source_type: Some("IMPORT".into()), ..base.clone() },
            PropertyVersion { source_id: Some("a".into()), ..base.clone() },
            PropertyVersion { source_label: Some("a".into()), ..base.clone() },
            PropertyVersion { updated_by_user_id: Some(1), ..base.clone() },
            PropertyVersion { value: Some("aCRM_UI".into()), source_type: Some(String::new()), ..base.clone() },
        ];
        let mut digests: Vec<String> = variants.iter().map(digest).collect();
        digests.push(digest(&base));
        digests.sort();
        digests.dedup();
        assert_eq!(digests.len(), variants.len() + 1, "each field changes the digest");
        assert_eq!(digest(&base), digest(&PropertyVersion { timestamp: "other".into(), ..base }), "time is not in it");
    }

    #[test]
    fn rows_build_into_a_checked_batch_and_bad_records_cost_only_themselves() {
        let odd = record(
            r#"{"id":"x-1","properties":{},"propertiesWithHistory":{"a":[{"value":"1","timestamp":"2025-01-01T00:00:00Z","sourceType":"CRM_UI"}]}}"#,
        );
        let skipped = record(r#"{"id":"7","properties":{},"propertiesWithHistory":{"b":["nope"]}}"#);
        let (rows, rejects) = version_rows("deals", &[record(DEAL), odd, skipped]);
        assert_eq!(rows.len(), 6);
        let reasons: Vec<&str> = rejects.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(reasons, ["deals/42", "deals/x-1", "deals/7"]);
        let (built, more) = build_dimension_batch(&PROPERTY_HISTORY, &rows);
        assert!(more.is_empty(), "every value types: {more:?}");
        assert_eq!(PROPERTY_HISTORY.check(&built.batch), Ok(()));
        assert_eq!(built.batch.num_rows(), 6);
    }
}
