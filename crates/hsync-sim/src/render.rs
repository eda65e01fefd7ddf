//! The JSON the simulator sends, built from its own data and never from the client's types:
//! records (serialized straight from the portal without an intermediate tree), property
//! definitions, and HubSpot's error bodies.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Map, Value};

use super::portal::{iso_millis, PropertyDef, Record, ValueContext, Version, WriteSource};
use super::validate::PropertyProblem;

/// HubSpot's JSON content type.
pub const JSON_CONTENT_TYPE: &str = "application/json;charset=utf-8";

/// A JSON response with HubSpot's content type and a correlation id header.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).expect("invariant: simulator JSON always serializes");
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
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

/// 400 for a body or parameter HubSpot could not read into its input type: the three keys
/// HubSpot's CRM answers with there, no `category` (recorded in rudderlabs/rudder-transformer's
/// HubSpot fixtures: `{"status":"error","message":"Invalid input JSON on line 3, column 9:
/// Cannot deserialize value of type ...","correlationId":"..."}`).
pub fn unreadable_input(message: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "status": "error", "message": message, "correlationId": uuid::Uuid::new_v4().to_string() }),
    )
}

/// 400 for a query parameter that does not parse, in HubSpot's words.
pub fn unparsable_parameter(name: &str) -> Response {
    unreadable_input(&format!("Unable to parse value for query parameter: {name}"))
}

/// 404 for a path HubSpot serves nothing at: the HTML page its web server answers with
/// (captured from real portals: hubcli's EU1 probe of 2026-04; hubspot-api-nodejs #240).
pub fn no_route() -> Response {
    web_server_page(StatusCode::NOT_FOUND, "Not Found", "Resource not found")
}

/// 405 for a method a route does not take: the same web server's HTML page (hubcli's probe).
pub fn method_not_allowed() -> Response {
    web_server_page(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", "Method not allowed")
}

fn web_server_page(status: StatusCode, title: &str, detail: &str) -> Response {
    let code = status.as_u16();
    let page = format!(
        "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=utf-8\"/>\n<title>Error {code} {title}</title>\n</head>\n<body><h2>HTTP ERROR {code}</h2>\n<p>{detail}</p>\n</body>\n</html>\n"
    );
    let mut resp = (status, page).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html;charset=utf-8"));
    resp
}

/// 400 `VALIDATION_ERROR`.
pub fn validation_error(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message, None)
}

/// HubSpot's message for refused property values: `Property values were not valid: ` and a
/// JSON array with one validation result per problem (the shape of the error-handling guide's
/// example and of real answers: `isValid`, `message`, `error`, `name`, `localizedErrorMessage`,
/// `propertyValue` where there was one, `portalId`).
pub fn problems_message(problems: &[PropertyProblem], portal_id: Option<u64>) -> String {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ValidationResult<'a> {
        is_valid: bool,
        message: &'a str,
        error: &'a str,
        name: &'a str,
        localized_error_message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        property_value: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        portal_id: Option<u64>,
    }
    let results: Vec<ValidationResult<'_>> = problems
        .iter()
        .map(|p| ValidationResult {
            is_valid: false,
            message: &p.message,
            error: p.code,
            name: &p.name,
            localized_error_message: &p.message,
            property_value: p.value.as_deref(),
            portal_id,
        })
        .collect();
    let array = serde_json::to_string(&results).expect("invariant: validation results always serialize");
    format!("Property values were not valid: {array}")
}

/// The `errors` HubSpot lists beside [`problems_message`]: `{message, code, context:
/// {propertyName: [name]}}` per problem.
pub fn problems_errors(problems: &[PropertyProblem]) -> Value {
    problems
        .iter()
        .map(|p| json!({ "message": p.message, "code": p.code, "context": { "propertyName": [p.name] } }))
        .collect()
}

/// 400 `VALIDATION_ERROR` for refused property values, listing every problem.
pub fn invalid_properties(problems: &[PropertyProblem], portal_id: Option<u64>) -> Response {
    let mut extra = Map::new();
    extra.insert("errors".into(), problems_errors(problems));
    error_response(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &problems_message(problems, portal_id), Some(extra))
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
    /// Indices into the type's property definitions to include, serialized in this order (use
    /// [`in_key_order`] when the record is written straight to bytes).
    pub properties: &'a [usize],
    /// `true` sends requested properties without a value as `null` (search does this);
    /// `false` leaves them out (GET, list and batch read).
    pub nulls: bool,
    pub portal_id: u64,
    pub type_id: &'a str,
}

/// `properties` in the order, and with the uniqueness, of the keys of a `serde_json::Map`
/// (sorted by name; a repeated name keeps its last occurrence), so that a record serialized
/// straight to bytes reads exactly like one built as a `serde_json::Value` first.
pub fn in_key_order(defs: &[PropertyDef], properties: &[usize]) -> Vec<usize> {
    let mut ordered: Vec<usize> = properties.iter().rev().copied().collect();
    ordered.sort_by(|&a, &b| defs[a].name.cmp(&defs[b].name));
    ordered.dedup_by(|a, b| defs[*a].name == defs[*b].name);
    ordered
}

/// A record serialized lazily from the portal. Its keys come out in sorted order, as from a
/// `serde_json::Map`.
#[derive(Debug)]
pub struct RecordView<'a> {
    pub ctx: &'a ValueContext,
    pub rec: &'a Record,
    pub style: RecordStyle<'a>,
    /// v3 `associations` block for list and GET with `?associations=`.
    pub associations: Option<Value>,
    /// `propertiesWithHistory` for GET, list and batch read that ask for it.
    pub history: Option<Value>,
}

struct PropertiesView<'a>(&'a RecordView<'a>);

impl Serialize for PropertiesView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let view = self.0;
        let defs = &view.ctx.properties.defs;
        let mut map = s.serialize_map(None)?;
        for &i in view.style.properties {
            let def: &PropertyDef = &defs[i];
            if let Some(raw) = view.rec.raw_json.get(&def.name) {
                map.serialize_entry(&def.name, raw)?;
                continue;
            }
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
        map.serialize_entry("archived", &rec.archived_at.is_some())?;
        if let Some(at) = rec.archived_at {
            map.serialize_entry("archivedAt", &iso_millis(at))?;
        }
        if let Some(assoc) = &self.associations {
            map.serialize_entry("associations", assoc)?;
        }
        map.serialize_entry("createdAt", &iso_millis(rec.created_at))?;
        map.serialize_entry("id", &rec.id.to_string())?;
        map.serialize_entry("properties", &PropertiesView(self))?;
        if let Some(history) = &self.history {
            map.serialize_entry("propertiesWithHistory", history)?;
        }
        map.serialize_entry("updatedAt", &iso_millis(rec.updated_at))?;
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

/// A version in HubSpot's `ValueWithTimestamp` shape.
pub fn version_json(version: &Version) -> Value {
    let mut v = json!({
        "value": version.value,
        "timestamp": iso_millis(version.at),
    });
    match version.source {
        WriteSource::User(user_id) => {
            v["sourceType"] = json!("CRM_UI");
            v["sourceId"] = json!(format!("userId:{user_id}"));
            v["updatedByUserId"] = json!(user_id);
        }
        WriteSource::Integration(app_id) => {
            v["sourceType"] = json!("INTEGRATION");
            v["sourceId"] = json!(app_id.to_string());
        }
        WriteSource::Calculated => v["sourceType"] = json!("CALCULATED"),
    }
    v
}

/// `propertiesWithHistory` of `rec` for the named properties: the versions of each live one,
/// newest first; names that are no live property, and properties that never had a value, are
/// left out.
pub fn history_json<'a>(ctx: &ValueContext, rec: &Record, names: impl IntoIterator<Item = &'a str>) -> Value {
    let mut out = Map::new();
    for name in names {
        let Some(def) = ctx.properties.live(name) else { continue };
        let versions = ctx.history(rec, def);
        if !versions.is_empty() {
            out.insert(name.to_owned(), versions.iter().map(version_json).collect());
        }
    }
    Value::Object(out)
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
        "dataSensitivity": def.sensitivity.as_str(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{build, PortalSpec, CONTACTS};

    /// Pages render records straight to bytes; they must read exactly as the `Value` trees did.
    #[test]
    fn records_written_straight_match_their_value_trees() {
        let mut portal = build(&PortalSpec { contacts: 30, ..PortalSpec::default() });
        let first = *portal.types[CONTACTS].live.keys().next().unwrap();
        portal.archive(CONTACTS, first, 1_767_225_600_123).unwrap();
        let ctx = portal.value_context(CONTACTS);
        let defs = &ctx.properties.defs;
        // Every property, out of order, some twice.
        let mut wanted: Vec<usize> = (0..defs.len()).rev().collect();
        wanted.extend([0, 4, 0]);
        let ordered = in_key_order(defs, &wanted);
        let store = &portal.types[CONTACTS];
        for rec in store.live.values().chain(store.archived.values()) {
            for (nulls, extras) in [(false, false), (true, false), (false, true)] {
                let view = |properties| RecordView {
                    ctx: &ctx,
                    rec,
                    style: RecordStyle { properties, nulls, portal_id: 62_515, type_id: "0-1" },
                    associations: extras.then(|| json!({ "companies": { "results": [] } })),
                    history: extras.then(|| json!({ "email": [] })),
                };
                let straight = serde_json::to_string(&view(&ordered)).unwrap();
                let tree = serde_json::to_string(&serde_json::to_value(view(&wanted)).unwrap()).unwrap();
                assert_eq!(straight, tree);
            }
        }
    }
}
