//! Record writes through the HubSpot API: single create and update, and batch create, update
//! and upsert (docs/hubspot-write-api.md §2). Every input is checked before anything is
//! written: its property values ([`super::validate`]), the properties a type requires, a
//! contact's email against the contacts that have it, its inline associations, and, for update
//! and upsert, the record its `id` (or `idProperty` value) names.
//!
//! A batch whose every input carries an `objectWriteTraceId` fails input by input: the valid
//! inputs are written and each refused one becomes an entry of `errors` naming its trace id
//! (HubSpot answers 207). Without trace ids on every input, the first refused input fails the
//! whole batch with HubSpot's single error and nothing is written (a 400 listing every invalid
//! property of every input, or the 409 of a contact that exists). Ids that name no record are
//! reported in `errors` either way, as HubSpot's batch update does, and the other inputs are
//! written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::api::{mutation_error, parse_id, properties_of, value_string};
use super::catalogue::REQUIRED_ON_CREATE;
use super::portal::{Millis, MutationError, Portal, Record, TypeIdx, WriteSource};
use super::render::{error_response, invalid_properties, object_not_found, problems_message, validation_error};
use super::validate::{check_properties, is_multi_select, multi_select_value, PropertyProblem, Refusal};

/// The batch write endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchOp {
    Create,
    Update,
    Upsert,
}

/// A record a write made or changed; `created` for `new` in upsert results.
#[derive(Debug)]
pub struct Written {
    pub record: Arc<Record>,
    pub created: bool,
}

/// What a batch wrote and the entries of its `errors`.
#[derive(Debug)]
pub struct BatchOutcome {
    pub written: Vec<Written>,
    pub errors: Vec<Value>,
}

/// Why one input is refused.
#[derive(Debug)]
enum Failure {
    /// Unknown properties and invalid values: HubSpot's "Property values were not valid".
    Problems(Vec<PropertyProblem>),
    /// A contact with this email exists: 409 `CONFLICT`.
    Conflict(u64),
    /// No record has this id (as the `ids` context lists it).
    Missing(String),
    /// Any other refusal, with the `context` HubSpot gives it.
    Other { status: StatusCode, category: &'static str, message: String, context: Map<String, Value> },
}

impl Failure {
    fn validation(message: String, context: Map<String, Value>) -> Failure {
        Failure::Other { status: StatusCode::BAD_REQUEST, category: "VALIDATION_ERROR", message, context }
    }

    fn conflict_message(existing: u64) -> String {
        format!("Contact already exists. Existing ID: {existing}")
    }

    /// The answer when this failure fails a whole request.
    fn response(&self, w: &Writer<'_>) -> Response {
        match self {
            Failure::Problems(problems) => invalid_properties(problems, Some(w.portal_id)),
            Failure::Conflict(existing) => {
                error_response(StatusCode::CONFLICT, "CONFLICT", &Failure::conflict_message(*existing), None)
            }
            Failure::Missing(raw) => object_not_found(raw),
            Failure::Other { status, category, message, context } => {
                let extra = (!context.is_empty()).then(|| Map::from_iter([("context".to_owned(), json!(context))]));
                error_response(*status, category, message, extra)
            }
        }
    }

    /// The `errors` entry of this failure in a batch where every input has a trace id: HubSpot's
    /// `StandardError` with the trace id in `context` (the property names are only in the
    /// message, as in the error-handling guide's 207 example).
    fn entry(&self, w: &Writer<'_>, trace: &str) -> Value {
        let mut context = Map::from_iter([("objectWriteTraceId".to_owned(), json!([trace]))]);
        let (category, message) = match self {
            Failure::Problems(problems) => ("VALIDATION_ERROR", problems_message(problems, Some(w.portal_id))),
            Failure::Conflict(existing) => {
                context.insert("existingId".into(), json!([existing.to_string()]));
                ("CONFLICT", Failure::conflict_message(*existing))
            }
            Failure::Missing(raw) => {
                context.insert("ids".into(), json!([raw]));
                ("OBJECT_NOT_FOUND", w.missing_message())
            }
            Failure::Other { category, message, context: own, .. } => {
                context.extend(own.clone());
                (*category, message.clone())
            }
        };
        json!({ "status": "error", "category": category, "message": message, "context": context })
    }
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Failure {
        match refusal {
            // Answered as the portal always refused it: 400 naming the property.
            Refusal::ReadOnly(name) => {
                Failure::validation(MutationError::ReadOnlyProperty(name).to_string(), Map::new())
            }
            Refusal::Problems(problems) => Failure::Problems(problems),
        }
    }
}

/// An association a created record gets: `(to type, to id, type ids)`.
type Link = (TypeIdx, u64, Vec<u32>);

/// A checked input: what to write where.
#[derive(Debug)]
struct Plan {
    /// The record to update; `None` creates one.
    target: Option<u64>,
    properties: BTreeMap<String, Option<String>>,
    links: Vec<Link>,
}

/// One type's writes, made at `now` by `source`.
struct Writer<'a> {
    portal: &'a mut Portal,
    t: TypeIdx,
    now: Millis,
    source: WriteSource,
    portal_id: u64,
    type_name: String,
}

impl<'a> Writer<'a> {
    fn new(portal: &'a mut Portal, t: TypeIdx, now: Millis, source: WriteSource) -> Writer<'a> {
        let (portal_id, type_name) = (portal.portal_id, portal.store(t).def.name.clone());
        Writer { portal, t, now, source, portal_id, type_name }
    }

    fn is_contacts(&self) -> bool {
        self.type_name == "contacts"
    }

    /// Batch update's message for ids that name no record (a real 207 captured in
    /// amp-labs/connectors, `providers/hubspot/test/batch/update/contacts/err-partial-success.json`).
    fn missing_message(&self) -> String {
        format!(
            "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
            self.portal.store(self.t).def.upper
        )
    }

    /// `value` of property `name` as lookups compare it: contacts' emails without case, as
    /// HubSpot stores them lower-cased.
    fn key(&self, name: &str, value: &str) -> String {
        if self.is_contacts() && name == "email" {
            value.to_lowercase()
        } else {
            value.to_owned()
        }
    }

    /// Whether `name` may identify records in an update (`email_too`: or an upsert), or the
    /// 400 HubSpot answers: only properties with unique values, never `hs_object_id`, and
    /// contacts' `email` for upserts (docs/hubspot-write-api.md §2.2).
    fn check_id_property(&self, name: &str, email_too: bool) -> Result<(), Response> {
        let store = self.portal.store(self.t);
        // HubSpot lists contacts' `email` as unique, yet refuses it for batch update.
        let email = self.is_contacts() && name == "email";
        let eligible = name != "hs_object_id"
            && store.properties.live(name).is_some_and(|d| if email { email_too } else { d.unique });
        if eligible {
            return Ok(());
        }
        Err(validation_error(&format!(
            "Unable to perform update/upsert by non-unique {} property {name} in portal ID {}",
            store.def.type_id, self.portal_id
        )))
    }

    /// The live records whose `name` holds one of `keys` (as [`Writer::key`] gives them), by
    /// key; where several do, the lowest id (which one HubSpot takes is not documented).
    fn find_by(&self, name: &str, keys: &HashSet<String>) -> HashMap<String, u64> {
        let mut found = HashMap::new();
        if keys.is_empty() {
            return found;
        }
        let ctx = self.portal.value_context(self.t);
        let Some(def) = ctx.properties.live(name) else { return found };
        for rec in self.portal.store(self.t).live.values() {
            if let Some(value) = ctx.value(rec, def).filter(|v| !v.is_empty()) {
                let key = self.key(name, &value);
                if keys.contains(&key) {
                    found.entry(key).or_insert(rec.id);
                }
            }
        }
        found
    }

    /// The lower-cased, non-empty emails the inputs would create contacts with.
    fn emails_of<'p>(&self, properties: impl IntoIterator<Item = &'p BTreeMap<String, Option<String>>>) -> Vec<String> {
        if !self.is_contacts() {
            return Vec::new();
        }
        properties
            .into_iter()
            .filter_map(|p| p.get("email").cloned().flatten())
            .filter(|e| !e.is_empty())
            .map(|e| e.to_lowercase())
            .collect()
    }

    /// Checks a create: values, required properties, a contact's email (`existing`: contacts by
    /// lower-cased email), inline associations.
    fn plan_create(
        &self,
        properties: BTreeMap<String, Option<String>>,
        associations: &[Value],
        existing: &HashMap<String, u64>,
    ) -> Result<Plan, Failure> {
        check_properties(&self.type_name, &self.portal.store(self.t).properties, &properties)?;
        let required: Vec<&str> = REQUIRED_ON_CREATE
            .iter()
            .filter(|(t, _)| *t == self.type_name)
            .flat_map(|(_, names)| names.iter().copied())
            .filter(|name| properties.get(*name).and_then(Option::as_deref).is_none_or(str::is_empty))
            .collect();
        if !required.is_empty() {
            let upper = &self.portal.store(self.t).def.upper;
            return Err(Failure::validation(
                format!("Error creating {upper}. Some required properties were not set."),
                Map::from_iter([("properties".to_owned(), json!(required))]),
            ));
        }
        if let Some(email) = self.emails_of([&properties]).first() {
            if let Some(&id) = existing.get(email) {
                return Err(Failure::Conflict(id));
            }
        }
        let links = associations.iter().map(|link| self.plan_link(link)).collect::<Result<_, _>>()?;
        Ok(Plan { target: None, properties, links })
    }

    /// Checks an update of record `id`.
    fn plan_update(&self, id: u64, properties: BTreeMap<String, Option<String>>) -> Result<Plan, Failure> {
        check_properties(&self.type_name, &self.portal.store(self.t).properties, &properties)?;
        Ok(Plan { target: Some(id), properties, links: Vec::new() })
    }

    /// One inline association of a create, `{to: {id}, types: [{associationCategory,
    /// associationTypeId}]}`: the target type is the one the type ids lead to.
    fn plan_link(&self, link: &Value) -> Result<Link, Failure> {
        let to_id = link.pointer("/to/id").and_then(value_string).and_then(|s| parse_id(&s));
        let type_ids: Vec<u32> = link
            .get("types")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("associationTypeId").and_then(value_string))
            .filter_map(|s| s.parse().ok())
            .collect();
        let Some(to_id) = to_id else {
            return Err(Failure::validation("association input needs to.id".into(), Map::new()));
        };
        let portal = &*self.portal;
        let to = portal
            .association_types
            .iter()
            .find(|a| a.from == self.t && type_ids.contains(&a.type_id))
            .map(|a| a.to)
            .filter(|&to| {
                type_ids.iter().all(|id| portal.association_types_between(self.t, to).any(|a| a.type_id == *id))
            })
            .ok_or_else(|| {
                Failure::validation("association types must name a valid associationTypeId".into(), Map::new())
            })?;
        if !portal.is_live(to, to_id) {
            return Err(Failure::Other {
                status: StatusCode::NOT_FOUND,
                category: "OBJECT_NOT_FOUND",
                message: "Object not found.  objectId are usually numeric.".into(),
                context: Map::from_iter([("id".to_owned(), json!([to_id.to_string()]))]),
            });
        }
        Ok((to, to_id, type_ids))
    }

    /// Writes a checked input. A multi-select value with a leading `;` adds to the values the
    /// record holds.
    fn apply(&mut self, plan: Plan) -> Result<Written, Response> {
        let (t, now, source) = (self.t, self.now, self.source);
        let ctx = self.portal.value_context(t);
        let old = plan.target.and_then(|id| self.portal.store(t).live.get(&id).cloned());
        let properties: BTreeMap<String, Option<String>> = plan
            .properties
            .into_iter()
            .map(|(name, value)| {
                let value = match (ctx.properties.live(&name), value) {
                    (Some(def), Some(v)) if is_multi_select(def) && v.starts_with(';') => {
                        let held = old.as_ref().and_then(|rec| ctx.value(rec, def)).map(|v| v.into_owned());
                        Some(multi_select_value(held.as_deref(), &v))
                    }
                    (_, v) => v,
                };
                (name, value)
            })
            .collect();
        let record = match plan.target {
            Some(id) => self.portal.update(t, id, now, source, properties),
            None => self.portal.create(t, now, source, properties),
        }
        .map_err(|e| mutation_error(&e))?;
        for (to, to_id, type_ids) in &plan.links {
            self.portal.associate_at(t, record.id, *to, *to_id, type_ids, now).map_err(|e| mutation_error(&e))?;
        }
        // Associations recount rollups: answer with the record as it is now.
        let record = self.portal.store(t).live.get(&record.id).cloned().unwrap_or(record);
        Ok(Written { record, created: plan.target.is_none() })
    }
}

/// `POST /crm/v3/objects/{type}`: checks the body, then creates the record and its inline
/// associations.
pub fn create_one(
    portal: &mut Portal,
    t: TypeIdx,
    body: &Value,
    now: Millis,
    source: WriteSource,
) -> Result<Arc<Record>, Response> {
    let mut w = Writer::new(portal, t, now, source);
    let properties = properties_of(body);
    let emails: HashSet<String> = w.emails_of([&properties]).into_iter().collect();
    let existing = w.find_by("email", &emails);
    let associations = body.get("associations").and_then(Value::as_array).cloned().unwrap_or_default();
    let plan = w.plan_create(properties, &associations, &existing).map_err(|f| f.response(&w))?;
    Ok(w.apply(plan)?.record)
}

/// `PATCH /crm/v3/objects/{type}/{id}[?idProperty=]`: the record by id (ids absorbed by a merge
/// resolve to the survivor) or by a unique property (or `email`, as the contacts spec allows),
/// its values checked before the update.
pub fn update_one(
    portal: &mut Portal,
    t: TypeIdx,
    raw_id: &str,
    id_property: Option<&str>,
    body: &Value,
    now: Millis,
    source: WriteSource,
) -> Result<Arc<Record>, Response> {
    let mut w = Writer::new(portal, t, now, source);
    let id = match id_property.filter(|p| !p.is_empty()) {
        Some(name) => {
            w.check_id_property(name, true)?;
            let key = w.key(name, raw_id);
            w.find_by(name, &HashSet::from([key.clone()])).get(&key).copied()
        }
        None => parse_id(raw_id).map(|id| w.portal.resolve_merged(t, id)).filter(|&id| w.portal.is_live(t, id)),
    };
    let Some(id) = id else {
        return Err(object_not_found(raw_id));
    };
    let plan = w.plan_update(id, properties_of(body)).map_err(|f| f.response(&w))?;
    Ok(w.apply(plan)?.record)
}

/// One batch input, as read.
struct Input<'v> {
    trace: Option<String>,
    properties: BTreeMap<String, Option<String>>,
    associations: &'v [Value],
    id: Option<String>,
    id_property: Option<String>,
}

impl<'v> Input<'v> {
    fn read(v: &'v Value) -> Input<'v> {
        Input {
            trace: v.get("objectWriteTraceId").and_then(value_string).filter(|s| !s.is_empty()),
            properties: properties_of(v),
            associations: v.get("associations").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default(),
            id: v.get("id").and_then(value_string),
            id_property: v.get("idProperty").and_then(Value::as_str).filter(|p| !p.is_empty()).map(str::to_owned),
        }
    }
}

/// 400 for two inputs of one batch naming the same record (HubSpot's words for batch update,
/// captured in amp-labs/connectors `providers/hubspot/test/batch/update/contacts/err-duplicate-ids.json`).
fn duplicates(ids: &[String]) -> Response {
    let mut extra = Map::new();
    extra.insert("context".into(), json!({ "ids": ids }));
    error_response(
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
        &format!("Duplicate IDs found in batch input: [{}]. IDs must be unique", ids.join(", ")),
        Some(extra),
    )
}

/// The values that occur more than once, in order of their second occurrence.
fn repeated<T: Clone + Eq + std::hash::Hash>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    let mut again = Vec::new();
    for item in items {
        if !seen.insert(item.clone()) && !again.contains(&item) {
            again.push(item);
        }
    }
    again
}

/// A batch create, update or upsert of `inputs` (at most 100, checked by the caller).
pub fn batch(
    portal: &mut Portal,
    t: TypeIdx,
    op: BatchOp,
    inputs: &[Value],
    now: Millis,
    source: WriteSource,
) -> Result<BatchOutcome, Response> {
    let mut w = Writer::new(portal, t, now, source);
    let inputs: Vec<Input<'_>> = inputs.iter().map(Input::read).collect();
    let partial = !inputs.is_empty() && inputs.iter().all(|i| i.trace.is_some());

    // What each input names: a record id, or a key value of its `idProperty`.
    let mut keyed: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    if op != BatchOp::Create {
        for input in &inputs {
            if let Some(name) = &input.id_property {
                w.check_id_property(name, op == BatchOp::Upsert)?;
                let key = w.key(name, input.id.as_deref().unwrap_or_default());
                keyed.entry(name.clone()).or_default().insert(key);
            }
        }
        let names = inputs.iter().map(|i| match &i.id_property {
            Some(name) => (Some(name.clone()), w.key(name, i.id.as_deref().unwrap_or_default())),
            None => (
                None,
                i.id.as_deref()
                    .map(|raw| parse_id(raw).map_or(raw.to_owned(), |id| id.to_string()))
                    .unwrap_or_default(),
            ),
        });
        let again = repeated(names);
        if !again.is_empty() {
            return Err(duplicates(&again.into_iter().map(|(_, key)| key).collect::<Vec<_>>()));
        }
    } else {
        let again = repeated(w.emails_of(inputs.iter().map(|i| &i.properties)));
        if !again.is_empty() {
            return Err(duplicates(&again));
        }
    }
    let found: BTreeMap<String, HashMap<String, u64>> =
        keyed.iter().map(|(name, keys)| (name.clone(), w.find_by(name, keys))).collect();
    let created_emails: HashSet<String> = match op {
        BatchOp::Update => HashSet::new(),
        BatchOp::Create | BatchOp::Upsert => w.emails_of(inputs.iter().map(|i| &i.properties)).into_iter().collect(),
    };
    let existing = w.find_by("email", &created_emails);

    // The record each update or upsert input names (`None`: none has it).
    let targets: Vec<Option<u64>> = inputs
        .iter()
        .map(|input| {
            let raw = input.id.as_deref().unwrap_or_default();
            match &input.id_property {
                Some(name) => found.get(name).and_then(|f| f.get(&w.key(name, raw))).copied(),
                // Batch update does not follow ids absorbed by a merge.
                None => parse_id(raw).filter(|&id| w.portal.is_live(t, id)),
            }
        })
        .collect();
    if op != BatchOp::Create {
        // Two keys naming one record (HubSpot rejects the batch: segmentio/action-destinations #3969).
        let again = repeated(targets.iter().flatten().copied());
        if !again.is_empty() {
            return Err(duplicates(&again.iter().map(u64::to_string).collect::<Vec<_>>()));
        }
    }

    // Check every input before writing any.
    let mut checked: Vec<Result<Plan, Failure>> = Vec::with_capacity(inputs.len());
    for (input, target) in inputs.iter().zip(&targets) {
        let properties = input.properties.clone();
        let plan = match (op, target) {
            (BatchOp::Create, _) => w.plan_create(properties, input.associations, &existing),
            (_, Some(id)) => w.plan_update(*id, properties),
            (BatchOp::Upsert, None) if input.id_property.is_some() => {
                // Not found by its key: created with the key set.
                let (name, raw) = (input.id_property.clone().unwrap_or_default(), input.id.clone().unwrap_or_default());
                let mut properties = properties;
                properties.entry(name).or_insert(Some(raw));
                w.plan_create(properties, &[], &existing)
            }
            (_, None) => {
                let raw = input.id.as_deref().unwrap_or_default();
                Err(Failure::Missing(match &input.id_property {
                    Some(_) => raw.to_owned(),
                    // HubSpot lists an id that is not a number as "" (the capture above).
                    None => parse_id(raw).map(|id| id.to_string()).unwrap_or_default(),
                }))
            }
        };
        checked.push(plan);
    }
    if !partial {
        let refused = checked.iter().find_map(|c| c.as_ref().err().filter(|f| !matches!(f, Failure::Missing(_))));
        match refused {
            Some(Failure::Problems(_)) => {
                // HubSpot lists the invalid properties of every input in one answer.
                let problems: Vec<PropertyProblem> = checked
                    .iter()
                    .filter_map(|c| match c {
                        Err(Failure::Problems(p)) => Some(p.iter().cloned()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                return Err(invalid_properties(&problems, Some(w.portal_id)));
            }
            Some(failure) => return Err(failure.response(&w)),
            None => {}
        }
    }

    let mut errors = Vec::new();
    let mut missing = Vec::new();
    let mut written = Vec::new();
    for (input, plan) in inputs.iter().zip(checked) {
        match (plan, &input.trace) {
            (Ok(plan), _) => written.push(w.apply(plan)?),
            (Err(failure), Some(trace)) if partial => errors.push(failure.entry(&w, trace)),
            (Err(Failure::Missing(raw)), _) => missing.push(raw),
            (Err(failure), _) => return Err(failure.response(&w)),
        }
    }
    if !missing.is_empty() {
        errors.push(json!({
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": w.missing_message(),
            "context": { "ids": missing },
        }));
    }
    Ok(BatchOutcome { written, errors })
}
