//! The shapes of the JSON bodies the object routes accept, checked before a handler reads
//! them. HubSpot deserializes each body into its documented input type and answers 400
//! `VALIDATION_ERROR` to a body of another shape (`[null, null]` for a create, `{"inputs": {}}`
//! for a batch); the simulator does the same, so a client that sends a wrong shape fails here
//! as it would against HubSpot. Like HubSpot's deserializer, a field that is absent is not an
//! error unless HubSpot needs it (batch `inputs`, an update's `id`), unknown fields are
//! ignored, and numbers and booleans are taken where a string is documented (property values,
//! ids).

use std::collections::BTreeMap;

use axum::response::Response;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::render::unreadable_input;

/// `T` read from a JSON object only: serde reads a struct from an array too (`[null, null]`
/// as a record with no properties), HubSpot's deserializer does not.
#[derive(Debug)]
struct Object<T>(T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = serde_json::Map::deserialize(deserializer)?;
        T::deserialize(Value::Object(map)).map(Object).map_err(serde::de::Error::custom)
    }
}

/// A property value or an id: HubSpot documents strings and coerces numbers and booleans.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
#[expect(dead_code, reason = "deserializing is the check: the values are never read")]
enum Scalar {
    Text(String),
    Number(serde_json::Number),
    Flag(bool),
}

/// `SimplePublicObjectInputForCreate` and `SimplePublicObjectInput`.
#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "deserializing is the check: the fields are never read")]
struct RecordInput {
    #[serde(default)]
    properties: Option<BTreeMap<String, Option<Scalar>>>,
    #[serde(default)]
    associations: Option<Vec<serde_json::Map<String, Value>>>,
}

/// `SimplePublicObjectId`.
#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "deserializing is the check: the fields are never read")]
struct ObjectId {
    id: Scalar,
}

type Record = Object<RecordInput>;

/// `BatchInputSimplePublicObjectId` (archive) and `BatchReadInputSimplePublicObjectId`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[expect(dead_code, reason = "deserializing is the check: the fields are never read")]
struct BatchOfIds {
    inputs: Vec<Object<ObjectId>>,
    #[serde(default)]
    properties: Option<Vec<String>>,
    #[serde(default)]
    properties_with_history: Option<Vec<String>>,
    #[serde(default)]
    id_property: Option<String>,
}

/// `SimplePublicObjectBatchInput` (update) and its upsert form.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[expect(dead_code, reason = "deserializing is the check: the fields are never read")]
struct BatchRecord {
    id: Scalar,
    properties: BTreeMap<String, Option<Scalar>>,
    #[serde(default)]
    id_property: Option<String>,
}

#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "deserializing is the check: the fields are never read")]
struct BatchOf<T> {
    inputs: Vec<T>,
}

/// `BatchReadInputPropertyName`.
#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "deserializing is the check: the fields are never read")]
struct PropertyNames {
    inputs: Vec<Object<PropertyName>>,
    #[serde(default)]
    archived: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "deserializing is the check: the fields are never read")]
struct PropertyName {
    name: String,
}

/// `ObjectSchemaBatchReadRequest`.
#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "deserializing is the check: the fields are never read")]
struct SchemaNames {
    inputs: Vec<String>,
}

/// The body shape a route takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A create or an update of one record.
    Record,
    /// Batch read and batch archive.
    BatchIds,
    /// Batch create.
    BatchCreate,
    /// Batch update and upsert.
    BatchUpdate,
    /// The association batch routes: `inputs`, an array of objects.
    AssociationInputs,
    /// Property batch read.
    PropertyNames,
    /// Schema batch read.
    SchemaNames,
}

/// Parses `bytes` as JSON of `shape`, or HubSpot's 400 naming where it did not fit.
pub fn checked(bytes: &[u8], shape: Shape) -> Result<Value, Response> {
    match shape {
        Shape::Record => fits::<Record>(bytes),
        Shape::BatchIds => fits::<Object<BatchOfIds>>(bytes),
        Shape::BatchCreate => fits::<Object<BatchOf<Record>>>(bytes),
        Shape::BatchUpdate => fits::<Object<BatchOf<Object<BatchRecord>>>>(bytes),
        Shape::AssociationInputs => fits::<Object<BatchOf<serde_json::Map<String, Value>>>>(bytes),
        Shape::PropertyNames => fits::<Object<PropertyNames>>(bytes),
        Shape::SchemaNames => fits::<Object<SchemaNames>>(bytes),
    }?;
    serde_json::from_slice(bytes).map_err(|e| unreadable_json(&e))
}

fn fits<T: DeserializeOwned>(bytes: &[u8]) -> Result<(), Response> {
    serde_json::from_slice::<T>(bytes).map(drop).map_err(|e| unreadable_json(&e))
}

/// HubSpot's answer to a body that does not read as its input type.
pub fn unreadable_json(e: &serde_json::Error) -> Response {
    unreadable_input(&format!("Invalid input JSON on line {}, column {}: {e}", e.line(), e.column()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str, shape: Shape) -> bool {
        checked(body.as_bytes(), shape).is_ok()
    }

    #[test]
    fn a_record_body_is_an_object_of_property_values() {
        assert!(ok(r#"{"properties": {"email": "a@b.c", "n": 3, "flag": true, "gone": null}}"#, Shape::Record));
        assert!(ok(r#"{"properties": {}, "associations": []}"#, Shape::Record));
        assert!(!ok("[null, null]", Shape::Record));
        assert!(!ok(r#"{"properties": ["email"]}"#, Shape::Record));
        assert!(!ok(r#"{"properties": {"email": {"value": 1}}}"#, Shape::Record));
        assert!(!ok("\n", Shape::Record));
    }

    #[test]
    fn a_batch_needs_an_array_of_inputs_of_its_shape() {
        assert!(ok(r#"{"inputs": [{"id": "1"}, {"id": 2}], "properties": ["email"]}"#, Shape::BatchIds));
        assert!(!ok(r#"{"inputs": {}}"#, Shape::BatchIds));
        assert!(!ok(r#"{"properties": ["email"]}"#, Shape::BatchIds));
        assert!(!ok(r#"{"inputs": [{"name": "1"}]}"#, Shape::BatchIds));
        assert!(!ok(r#"{"inputs": [{"id": "1"}], "properties": "email"}"#, Shape::BatchIds));
        assert!(ok(r#"{"inputs": [{"properties": {"email": "a@b.c"}}]}"#, Shape::BatchCreate));
        assert!(!ok(r#"{"inputs": [null]}"#, Shape::BatchCreate));
        assert!(ok(r#"{"inputs": [{"id": "1", "properties": {"email": "a@b.c"}}]}"#, Shape::BatchUpdate));
        assert!(!ok(r#"{"inputs": [{"properties": {"email": "a@b.c"}}]}"#, Shape::BatchUpdate));
    }
}
