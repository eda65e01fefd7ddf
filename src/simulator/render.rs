//! The JSON the simulator sends, built from its own data and never from the client's types:
//! records (serialized straight from the portal without an intermediate tree), property
//! definitions, and HubSpot's error bodies.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Map, Value};

use super::portal::{iso_millis, PropertyDef, Record, ValueContext};

/// HubSpot's JSON content type.
pub const JSON_CONTENT_TYPE: &str = "application/json;charset=utf-8";

/// A JSON response with HubSpot's content type and a correlation id header.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).expect("invariant: simulator JSON always serializes");
    let mut resp = (status, bytes).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        resp.headers_mut().insert("x-hubspot-correlation-id", v);
    }
    resp
}

/// HubSpot's error body: `{status:"error", message, correlationId, category, ...extra}`.
pub fn error_response(
    status: StatusCode,
    category: &str,
    message: &str,
    extra: Option<Map<String, Value>>,
) -> Response {
    let mut body = Map::new();
    body.insert("status".into(), json!("error"));
    body.insert("message".into(), json!(message));
    body.insert("correlationId".into(), json!(uuid::Uuid::new_v4().to_string()));
    body.insert("category".into(), json!(category));
    if let Some(extra) = extra {
        body.extend(extra);
    }
    json_response(status, &Value::Object(body))
}

/// 400 `VALIDATION_ERROR`.
pub fn validation_error(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message, None)
}

/// 400 for a path naming an object type the portal does not have.
pub fn unknown_type(name: &str) -> Response {
    validation_error(&format!("Unable to infer object type from: {name}"))
}

/// 404 for a record that does not exist, as HubSpot words it.
pub fn object_not_found(id: &str) -> Response {
    let mut extra = Map::new();
    extra.insert("context".into(), json!({ "id": [id] }));
    error_response(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        "Object not found.  objectId are usually numeric.",
        Some(extra),
    )
}

/// How a record is rendered.
#[derive(Clone, Copy, Debug)]
pub struct RecordStyle<'a> {
    /// Indices into the type's property definitions to include.
    pub properties: &'a [usize],
    /// `true` sends requested properties without a value as `null` (search does this);
    /// `false` leaves them out (GET, list and batch read).
    pub nulls: bool,
    pub portal_id: u64,
    pub type_id: &'a str,
}

/// A record serialized lazily from the portal.
#[derive(Debug)]
pub struct RecordView<'a> {
    pub ctx: &'a ValueContext,
    pub rec: &'a Record,
    pub style: RecordStyle<'a>,
    /// v3 `associations` block for list and GET with `?associations=`.
    pub associations: Option<Value>,
}

struct PropertiesView<'a>(&'a RecordView<'a>);

impl Serialize for PropertiesView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let view = self.0;
        let defs = &view.ctx.properties.defs;
        let mut map = s.serialize_map(None)?;
        for &i in view.style.properties {
            let def: &PropertyDef = &defs[i];
            match view.ctx.value(view.rec, def) {
                Some(v) => map.serialize_entry(&def.name, &*v)?,
                None if view.style.nulls => map.serialize_entry(&def.name, &Value::Null)?,
                None => {}
            }
        }
        map.end()
    }
}

impl Serialize for RecordView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let rec = self.rec;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", &rec.id.to_string())?;
        map.serialize_entry("properties", &PropertiesView(self))?;
        map.serialize_entry("createdAt", &iso_millis(rec.created_at))?;
        map.serialize_entry("updatedAt", &iso_millis(rec.updated_at))?;
        map.serialize_entry("archived", &rec.archived_at.is_some())?;
        if let Some(at) = rec.archived_at {
            map.serialize_entry("archivedAt", &iso_millis(at))?;
        }
        if let Some(assoc) = &self.associations {
            map.serialize_entry("associations", assoc)?;
        }
        map.serialize_entry(
            "url",
            &format!(
                "https://app.hubspot.com/contacts/{}/record/{}/{}",
                self.style.portal_id, self.style.type_id, rec.id
            ),
        )?;
        map.end()
    }
}

/// A property definition in HubSpot's `Property` shape.
pub fn property_json(def: &PropertyDef) -> Value {
    let options: Vec<Value> = def
        .options
        .iter()
        .enumerate()
        .map(|(i, (label, value))| json!({"label": label, "value": value, "displayOrder": i, "hidden": false}))
        .collect();
    let mut v = json!({
        "name": def.name,
        "label": def.label,
        "type": def.kind,
        "fieldType": def.field_type,
        "groupName": def.group,
        "description": "",
        "options": options,
        "displayOrder": def.display_order,
        "calculated": def.calculated,
        "externalOptions": false,
        "hasUniqueValue": def.unique,
        "hidden": def.hidden,
        "hubspotDefined": def.hubspot_defined,
        "formField": !def.read_only,
        "dataSensitivity": "non_sensitive",
        "modificationMetadata": {
            "archivable": !def.hubspot_defined,
            "readOnlyDefinition": def.hubspot_defined,
            "readOnlyValue": def.read_only,
        },
        "createdAt": iso_millis(def.created_at),
        "updatedAt": iso_millis(def.updated_at),
        "archived": def.archived_at.is_some(),
    });
    if let Some(at) = def.archived_at {
        v["archivedAt"] = json!(iso_millis(at));
    }
    if def.name == "hubspot_owner_id" {
        v["referencedObjectType"] = json!("OWNER");
        v["externalOptions"] = json!(true);
    }
    v
}
