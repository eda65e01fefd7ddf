//! The client's view of HubSpot's JSON: records, pages, property definitions, schemas,
//! associations, owners and pipelines. Parsing is lenient where HubSpot is inconsistent (absent
//! versus `null` values, numbers sent as strings or numbers) and never panics.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// One CRM record (`SimplePublicObject`). Values stay strings, as HubSpot sends them; `None`
/// means HubSpot sent `null`, absence means it left the property out.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrmObject {
    pub id: String,
    #[serde(default)]
    pub properties: HashMap<String, Option<String>>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    #[serde(default)]
    pub archived: bool,
    pub archived_at: Option<String>,
}

/// A page of search results. `total` is the number of matches, which can exceed what paging
/// can reach (10,000).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SearchPage {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub results: Vec<CrmObject>,
    pub paging: Option<Paging>,
}

/// A page of a list call; there is no `total`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ListPage<T> {
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
    pub paging: Option<Paging>,
}

impl<T> ListPage<T> {
    /// The cursor of the next page, if there is one.
    pub fn next_after(&self) -> Option<&str> {
        self.paging.as_ref().and_then(|p| p.next.as_ref()).map(|n| n.after.as_str())
    }
}

impl SearchPage {
    /// The offset of the next page, if there is one.
    pub fn next_after(&self) -> Option<&str> {
        self.paging.as_ref().and_then(|p| p.next.as_ref()).map(|n| n.after.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Paging {
    pub next: Option<NextPage>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct NextPage {
    #[serde(deserialize_with = "string_or_number")]
    pub after: String,
}

/// A batch read's outcome: the records found and the ids HubSpot reported missing (207).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchRead {
    pub found: Vec<CrmObject>,
    pub missing: Vec<String>,
}

/// The envelope of batch responses, including 207 partial results.
#[derive(Debug, Deserialize)]
pub(crate) struct BatchEnvelope<T> {
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
    #[serde(default)]
    pub errors: Vec<BatchError>,
}

impl BatchError {
    /// `OBJECT_NOT_FOUND`, which batch reads use for missing ids and association reads for ids
    /// without associations.
    pub fn is_not_found(&self) -> bool {
        self.category.as_deref() == Some("OBJECT_NOT_FOUND")
    }
}

/// One entry of a batch response's `errors`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchError {
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub context: HashMap<String, Vec<String>>,
}

/// A property definition (`Property`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyDefinition {
    pub name: String,
    #[serde(default)]
    pub label: String,
    /// `string`, `number`, `bool`, `date`, `datetime`, `enumeration`, `phone_number`, and on
    /// read anything else HubSpot invents (`json`, `object_coordinates`).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub field_type: String,
    #[serde(default)]
    pub group_name: String,
    #[serde(default)]
    pub calculated: bool,
    #[serde(default)]
    pub has_unique_value: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub hubspot_defined: bool,
    #[serde(default)]
    pub options: Vec<PropertyOption>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PropertyOption {
    #[serde(default)]
    pub label: String,
    pub value: String,
}

/// A custom object type from the schemas API.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectSchema {
    pub object_type_id: String,
    pub name: String,
    pub fully_qualified_name: Option<String>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub properties: Vec<PropertyDefinition>,
}

/// One association type on an edge.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationType {
    pub category: String,
    pub type_id: u32,
    pub label: Option<String>,
}

/// One associated record with every association type between the two.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationTarget {
    /// A JSON number in HubSpot's examples, a string in newer specs: both are accepted.
    #[serde(deserialize_with = "string_or_number")]
    pub to_object_id: String,
    #[serde(default)]
    pub association_types: Vec<AssociationType>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AssociationResult {
    pub from: AssociationFrom,
    #[serde(default)]
    pub to: Vec<AssociationTarget>,
    pub paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AssociationFrom {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
}

/// A HubSpot user who can own records.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub user_id: Option<i64>,
    pub user_id_including_inactive: Option<i64>,
    /// `PERSON` or `QUEUE`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub teams: Vec<OwnerTeam>,
    #[serde(default)]
    pub archived: bool,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// A team an owner belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerTeam {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub name: Option<String>,
    #[serde(default)]
    pub primary: bool,
}

/// A pipeline (of deals, tickets or another type with pipelines) with its stages.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pipeline {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub display_order: i64,
    #[serde(default)]
    pub archived: bool,
    pub archived_at: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    #[serde(default)]
    pub stages: Vec<PipelineStage>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStage {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub display_order: i64,
    #[serde(default)]
    pub archived: bool,
    /// HubSpot's map of strings (`probability` and `isClosed` for deals, `ticketState` for
    /// tickets); any JSON value is accepted.
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
    pub archived_at: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// HubSpot's error body; every field is optional, as HubSpot advises.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    pub message: Option<String>,
    pub category: Option<String>,
    pub correlation_id: Option<String>,
    pub policy_name: Option<String>,
    #[serde(default)]
    pub errors: Vec<ErrorDetail>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub context: HashMap<String, Value>,
}

impl ErrorBody {
    /// The scopes a 403 `MISSING_SCOPES` names.
    pub fn required_scopes(&self) -> Vec<String> {
        self.errors
            .iter()
            .flat_map(|e| {
                ["requiredGranularScopes", "requiredScopes", "missingScopes"]
                    .iter()
                    .filter_map(|k| e.context.get(*k))
                    .filter_map(Value::as_array)
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("expected a string or a number, got {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_accepts_null_and_absent_values() {
        let rec: CrmObject = serde_json::from_str(
            r#"{"id":"7","properties":{"email":null,"firstname":"Zoë"},"createdAt":"2024-01-01T00:00:00Z","updatedAt":"2024-01-02T00:00:00.5Z","archived":false}"#,
        )
        .unwrap();
        assert_eq!(rec.properties["email"], None);
        assert_eq!(rec.properties["firstname"].as_deref(), Some("Zoë"));
        assert!(!rec.properties.contains_key("lastname"));
    }

    #[test]
    fn association_target_id_may_be_number_or_string() {
        let a: AssociationTarget = serde_json::from_str(r#"{"toObjectId":5790939450,"associationTypes":[]}"#).unwrap();
        let b: AssociationTarget = serde_json::from_str(r#"{"toObjectId":"5790939450"}"#).unwrap();
        assert_eq!(a.to_object_id, b.to_object_id);
    }

    #[test]
    fn missing_scopes_are_read_from_any_known_key() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"status":"error","category":"MISSING_SCOPES","errors":[{"context":{"requiredGranularScopes":["crm.objects.deals.read"]}}]}"#,
        )
        .unwrap();
        assert_eq!(body.required_scopes(), ["crm.objects.deals.read"]);
    }
}
