//! The admin API under `/_sim`: mutate the portal (records, properties, associations, owners,
//! pipelines), change faults, limits, latency and behaviour at runtime, set the search index lag or take
//! a stale search replica that answers the next searches with older versions, move or
//! freeze the clock, read the request log, set up webhooks, and dump ground truth for
//! comparisons. It needs no token and counts against no limit. Its record changes are a user's
//! in HubSpot's UI: webhooks report them with `changeSource` `CRM_UI`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::seq::IteratorRandom;
use rand::SeedableRng;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::faults::FaultRule;
use super::latency::LatencySettings;
use super::limits::LimitSettings;
use super::portal::{iso_millis, MutationError, Portal, TypeIdx, WriteSource};
use super::render::history_json;
use super::webhooks::{ChangeSource, WebhookSettings};
use super::{lock, Answer, Behaviour, SimState, TokenGrant};

type Shared = State<Arc<SimState>>;

/// The admin routes.
pub fn routes(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/_sim/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/_sim/truth", get(truth))
        .route("/_sim/objects/{t}", post(create))
        .route("/_sim/objects/{t}/touch", post(touch))
        .route("/_sim/objects/{t}/merge", post(merge))
        .route("/_sim/objects/{t}/{id}", axum::routing::patch(update))
        .route("/_sim/objects/{t}/{id}/raw", axum::routing::put(put_raw))
        .route("/_sim/objects/{t}/{id}/{action}", post(record_action))
        .route("/_sim/properties/{t}", post(add_property))
        .route("/_sim/properties/{t}/{name}", axum::routing::delete(archive_property))
        .route("/_sim/associations", post(add_associations).delete(remove_associations))
        .route("/_sim/owners/{id}", axum::routing::put(put_owner).delete(remove_owner))
        .route("/_sim/pipelines/{t}/{id}", axum::routing::put(put_pipeline).delete(remove_pipeline))
        .route("/_sim/faults", get(get_faults).put(put_faults).post(add_fault))
        .route("/_sim/limits", get(get_limits).put(put_limits))
        .route("/_sim/limits/exhaust-daily", post(exhaust_daily))
        .route("/_sim/behaviour", get(get_behaviour).put(put_behaviour))
        .route("/_sim/latency", get(get_latency).put(put_latency))
        .route("/_sim/index", get(get_index).put(put_index))
        .route("/_sim/index/replica", get(get_replica).post(snapshot_replica).put(put_replica).delete(drop_replica))
        .route("/_sim/clock", get(get_clock).post(advance_clock))
        .route("/_sim/requests", get(requests).delete(clear_requests))
        .route("/_sim/tokens", axum::routing::put(put_token))
        .route("/_sim/oauth/revoke", post(revoke_oauth))
        .route("/_sim/webhooks", get(get_webhooks).put(put_webhooks).delete(delete_webhooks))
        .with_state(state)
}

fn bad_request(message: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message.to_string() }))).into_response()
}

fn not_found(message: impl std::fmt::Display) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": message.to_string() }))).into_response()
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid JSON: {e}")))
}

fn type_of(portal: &Portal, name: &str) -> Result<TypeIdx, Response> {
    portal.type_idx(name).ok_or_else(|| not_found(format!("unknown object type {name}")))
}

fn mutation(e: &MutationError) -> Response {
    match e {
        MutationError::NotFound(_) => not_found(e),
        _ => bad_request(e),
    }
}

fn props_of(v: &Value) -> BTreeMap<String, Option<String>> {
    v.get("properties")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        other => Some(other.to_string()),
                    };
                    (k.clone(), s)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Who an admin write is made by in property history: a user in HubSpot's UI, the body's
/// `userId` or else the first generated owner's.
fn ui_writer(portal: &Portal, body: &Value) -> WriteSource {
    WriteSource::User(body.get("userId").and_then(Value::as_u64).unwrap_or_else(|| portal.default_user()))
}

fn record_summary(rec: &super::portal::Record) -> Value {
    json!({ "id": rec.id.to_string(), "updatedAt": iso_millis(rec.updated_at), "updatedAtMs": rec.updated_at })
}

/// Ground truth: every live record with its property values, archived and purged ids, the
/// merge map, every association edge (one entry per direction), every owner (active and
/// archived) and every pipeline with its stages by object type, as the API renders them. With
/// `history=a,b` (or `*`), live and archived records also carry `history`: the named
/// properties' versions, newest first, as `propertiesWithHistory` renders them.
async fn truth(State(state): Shared, RawQuery(raw): RawQuery) -> Response {
    let params: Vec<(String, String)> =
        raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let wanted: Option<Vec<String>> =
        params.iter().find(|(k, _)| k == "objects").map(|(_, v)| v.split(',').map(str::to_owned).collect());
    let with_values = !params.iter().any(|(k, v)| k == "values" && v == "false");
    // `history=a,b` (or `*`: every live property) adds each record's property versions.
    let history: Option<Vec<String>> = params
        .iter()
        .find(|(k, _)| k == "history")
        .map(|(_, v)| v.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect());
    let portal = state.portal();
    let now = state.clock.now();
    let mut objects = Map::new();
    for (ti, store) in portal.types.iter().enumerate() {
        if wanted.as_ref().is_some_and(|w| !w.contains(&store.def.name)) {
            continue;
        }
        let ctx = portal.value_context(ti);
        let history_names: Option<Vec<&str>> = history.as_ref().map(|names| {
            if names.iter().any(|n| n == "*") {
                ctx.properties.defs.iter().filter(|d| d.archived_at.is_none()).map(|d| d.name.as_str()).collect()
            } else {
                names.iter().map(String::as_str).collect()
            }
        });
        let history_of = |rec: &super::portal::Record| {
            history_names.as_ref().map(|names| history_json(&ctx, rec, names.iter().copied()))
        };
        let live: Vec<Value> = store
            .live
            .values()
            .map(|rec| {
                let mut entry = record_summary(rec);
                if with_values {
                    let mut props = Map::new();
                    for def in ctx.properties.defs.iter().filter(|d| d.archived_at.is_none()) {
                        if let Some(v) = ctx.value(rec, def) {
                            props.insert(def.name.clone(), Value::String(v.into_owned()));
                        }
                    }
                    entry["properties"] = Value::Object(props);
                }
                if let Some(h) = history_of(rec) {
                    entry["history"] = h;
                }
                entry
            })
            .collect();
        let archived: Vec<Value> = store
            .archived
            .values()
            .map(|r| {
                let mut entry = json!({ "id": r.id.to_string(), "archivedAt": r.archived_at.map(iso_millis) });
                if let Some(h) = history_of(r) {
                    entry["history"] = h;
                }
                entry
            })
            .collect();
        let merged: Map<String, Value> =
            store.merged_into.iter().map(|(a, s)| (a.to_string(), Value::String(s.to_string()))).collect();
        let purged: Vec<String> = store.gdpr_deleted.iter().map(u64::to_string).collect();
        objects.insert(
            store.def.name.clone(),
            json!({
                "objectTypeId": store.def.type_id,
                "cursorProperty": store.def.cursor_property,
                "live": live,
                "archived": archived,
                "mergedInto": merged,
                "gdprDeleted": purged,
                "pendingIndexWrites": store.index.len() != store.live.len(),
            }),
        );
    }
    let mut edges = Vec::new();
    for ((ft, fid), targets) in &portal.edges {
        let from_name = &portal.store(*ft).def.name;
        if wanted.as_ref().is_some_and(|w| !w.contains(from_name)) {
            continue;
        }
        for ((tt, tid), types) in targets {
            let labels: Vec<Value> = types
                .iter()
                .filter_map(|id| portal.association_types_between(*ft, *tt).find(|a| a.type_id == *id))
                .map(|a| json!({ "typeId": a.type_id, "category": a.category, "label": a.label }))
                .collect();
            edges.push(json!({
                "fromType": from_name,
                "fromId": fid.to_string(),
                "toType": portal.store(*tt).def.name,
                "toId": tid.to_string(),
                "types": labels,
            }));
        }
    }
    let owners: Vec<Value> = portal.owners.iter().map(super::api::owner_json).collect();
    let pipelines: Map<String, Value> = portal
        .pipelines
        .iter()
        .map(|(ti, list)| {
            (portal.store(*ti).def.name.clone(), list.iter().map(super::api::pipeline_json).collect::<Vec<_>>().into())
        })
        .collect();
    drop(portal);
    Json(json!({ "now": now, "objects": objects, "associations": edges, "owners": owners, "pipelines": pipelines }))
        .into_response()
}

async fn create(State(state): Shared, Path(t): Path<String>, body: Bytes) -> Answer {
    let body: Value = parse(&body)?;
    let now = state.clock.now();
    let mut portal = state.portal_write(ChangeSource::CrmUi);
    let ti = type_of(&portal, &t)?;
    let writer = ui_writer(&portal, &body);
    let rec = portal.create(ti, now, writer, props_of(&body)).map_err(|e| mutation(&e))?;
    Ok((StatusCode::CREATED, Json(record_summary(&rec))).into_response())
}

async fn update(State(state): Shared, Path((t, id)): Path<(String, u64)>, body: Bytes) -> Answer {
    let body: Value = parse(&body)?;
    let now = state.clock.now();
    let mut portal = state.portal_write(ChangeSource::CrmUi);
    let ti = type_of(&portal, &t)?;
    let writer = ui_writer(&portal, &body);
    let rec = portal.update(ti, id, now, writer, props_of(&body)).map_err(|e| mutation(&e))?;
    Ok(Json(record_summary(&rec)).into_response())
}

/// `PUT /_sim/objects/{t}/{id}/raw` with `{"properties": {"name": {"json": "<JSON text>",
/// "value": "..."}}}`: the API sends each JSON text verbatim as the property's value (a lone
/// surrogate escape, a number where a string belongs ...); `value` (optional, default: the JSON
/// string's text, or the JSON text of any other value) is what the portal holds for search and
/// ground truth. Counts as an update of the record.
async fn put_raw(State(state): Shared, Path((t, id)): Path<(String, u64)>, body: Bytes) -> Answer {
    let body: Value = parse(&body)?;
    let Some(props) = body.get("properties").and_then(Value::as_object) else {
        return Err(bad_request("properties must be an object of {json, value}"));
    };
    let mut raw = BTreeMap::new();
    for (name, spec) in props {
        let Some(json) = spec.get("json").and_then(Value::as_str) else {
            return Err(bad_request(format!("properties.{name}.json must be a string of JSON text")));
        };
        let parsed = serde_json::value::RawValue::from_string(json.to_owned())
            .map_err(|e| bad_request(format!("properties.{name}.json is not JSON text: {e}")))?;
        let value = match spec.get("value") {
            Some(Value::String(v)) => Some(v.clone()),
            Some(Value::Null) => None,
            Some(_) => return Err(bad_request(format!("properties.{name}.value must be a string or null"))),
            None => match serde_json::from_str::<Value>(json) {
                Ok(Value::String(v)) => Some(v),
                Ok(Value::Null) | Err(_) => None,
                Ok(other) => Some(other.to_string()),
            },
        };
        raw.insert(name.clone(), (parsed, value));
    }
    let now = state.clock.now();
    let mut portal = state.portal_write(ChangeSource::CrmUi);
    let ti = type_of(&portal, &t)?;
    let writer = ui_writer(&portal, &body);
    let rec = portal.set_raw_json(ti, id, now, writer, raw).map_err(|e| mutation(&e))?;
    Ok(Json(record_summary(&rec)).into_response())
}

async fn record_action(State(state): Shared, Path((t, id, action)): Path<(String, u64, String)>) -> Answer {
    let now = state.clock.now();
    let mut portal = state.portal_write(ChangeSource::CrmUi);
    let ti = type_of(&portal, &t)?;
    let result = match action.as_str() {
        "archive" => portal.archive(ti, id, now).map(|()| json!({ "id": id.to_string(), "archived": true })),
        "restore" => portal.restore(ti, id, now).map(|r| record_summary(&r)),
        "gdpr-delete" => portal.purge(ti, id, now).map(|()| json!({ "id": id.to_string(), "deleted": true })),
        other => return Err(not_found(format!("unknown action {other}"))),
    };
    let v = result.map_err(|e| mutation(&e))?;
    Ok(Json(v).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    primary: u64,
    absorbed: u64,
}

async fn merge(State(state): Shared, Path(t): Path<String>, body: Bytes) -> Answer {
    let body: MergeBody = parse(&body)?;
    let now = state.clock.now();
    let mut portal = state.portal_write(ChangeSource::CrmUi);
    let ti = type_of(&portal, &t)?;
    let rec = portal.merge(ti, body.primary, body.absorbed, now).map_err(|e| mutation(&e))?;
    Ok(Json(record_summary(&rec)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TouchBody {
    /// How many random live records to modify.
    #[serde(default)]
    count: usize,
    /// Specific ids to modify, in addition to the random ones.
    #[serde(default)]
    ids: Vec<u64>,
    /// The property to change (default: the first writable generated string property).
    #[serde(default)]
    property: Option<String>,
    /// Spread the writes over this many milliseconds instead of one shared millisecond.
    #[serde(default)]
    spread_ms: i64,
    /// Seed for choosing the records (default: the request's sequence).
    #[serde(default)]
    seed: Option<u64>,
}

/// Modifies records as a bulk update would: by default every touched record gets the same
/// last-modified millisecond.
async fn touch(State(state): Shared, Path(t): Path<String>, body: Bytes) -> Answer {
    let body: TouchBody = parse(&body)?;
    let now = state.clock.now();
    let mut portal = state.portal_write(ChangeSource::CrmUi);
    let ti = type_of(&portal, &t)?;
    let property = match body.property {
        Some(p) => p,
        None => match portal
            .store(ti)
            .properties
            .defs
            .iter()
            .find(|d| d.kind == "string" && !d.read_only && d.archived_at.is_none() && d.field_type == "text")
        {
            Some(d) => d.name.clone(),
            None => return Err(bad_request("no writable string property to touch; name one with \"property\"")),
        },
    };
    let seed = body.seed.unwrap_or(now as u64);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut ids: Vec<u64> = portal.store(ti).live.keys().copied().choose_multiple(&mut rng, body.count);
    ids.extend(body.ids);
    ids.sort_unstable();
    ids.dedup();
    let n = ids.len().max(1) as i64;
    let mut touched = Vec::new();
    let writer = WriteSource::User(portal.default_user());
    for (i, id) in ids.iter().enumerate() {
        let at = now + body.spread_ms * i as i64 / n;
        let value = format!("touched {seed} {i}");
        let rec = portal
            .update(ti, *id, at, writer, BTreeMap::from([(property.clone(), Some(value))]))
            .map_err(|e| mutation(&e))?;
        touched.push(record_summary(&rec));
    }
    Ok(Json(json!({ "property": property, "records": touched })).into_response())
}

async fn add_property(State(state): Shared, Path(t): Path<String>, body: Bytes) -> Answer {
    let body: Value = parse(&body)?;
    let unchecked = body.get("unchecked").and_then(Value::as_bool).unwrap_or(false);
    let def = super::api::property_from_body(&body, !unchecked).map_err(bad_request)?;
    let now = state.clock.now();
    let mut portal = state.portal();
    let ti = type_of(&portal, &t)?;
    portal.add_property(ti, def, now).map_err(|e| mutation(&e))?;
    Ok(StatusCode::CREATED.into_response())
}

async fn archive_property(State(state): Shared, Path((t, name)): Path<(String, String)>) -> Answer {
    let now = state.clock.now();
    let mut portal = state.portal();
    let ti = type_of(&portal, &t)?;
    portal.archive_property(ti, &name, now).map_err(|e| mutation(&e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EdgeBody {
    from: String,
    from_id: u64,
    to: String,
    to_id: u64,
    /// Labeled type ids to add or remove; empty means the unlabeled default (all, on remove).
    #[serde(default)]
    type_ids: Vec<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EdgesBody {
    One(EdgeBody),
    Many(Vec<EdgeBody>),
}

impl EdgesBody {
    fn into_vec(self) -> Vec<EdgeBody> {
        match self {
            EdgesBody::One(e) => vec![e],
            EdgesBody::Many(v) => v,
        }
    }
}

async fn add_associations(State(state): Shared, body: Bytes) -> Answer {
    let edges: EdgesBody = parse(&body)?;
    let now = state.clock.now();
    let mut portal = state.portal_write(ChangeSource::CrmUi);
    let mut count = 0;
    for e in edges.into_vec() {
        let (f, t) = (type_of(&portal, &e.from)?, type_of(&portal, &e.to)?);
        if !portal.is_live(f, e.from_id) || !portal.is_live(t, e.to_id) {
            return Err(not_found(format!("{} {} or {} {} is not a live record", e.from, e.from_id, e.to, e.to_id)));
        }
        portal.associate_at(f, e.from_id, t, e.to_id, &e.type_ids, now).map_err(|err| mutation(&err))?;
        count += 1;
    }
    Ok(Json(json!({ "added": count })).into_response())
}

async fn remove_associations(State(state): Shared, body: Bytes) -> Answer {
    let edges: EdgesBody = parse(&body)?;
    let now = state.clock.now();
    let mut portal = state.portal_write(ChangeSource::CrmUi);
    let mut count = 0;
    for e in edges.into_vec() {
        let (f, t) = (type_of(&portal, &e.from)?, type_of(&portal, &e.to)?);
        portal.dissociate_at(f, e.from_id, t, e.to_id, &e.type_ids, now);
        count += 1;
    }
    Ok(Json(json!({ "removed": count })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TeamBody {
    id: u64,
    name: String,
    #[serde(default)]
    primary: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OwnerBody {
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    /// Defaults to the owner id minus 5,000,000 (the generator's numbering).
    #[serde(default)]
    user_id: Option<u64>,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    teams: Vec<TeamBody>,
}

/// Creates or replaces an owner (`archived: true` deactivates it).
async fn put_owner(State(state): Shared, Path(id): Path<u64>, body: Bytes) -> Answer {
    let body: OwnerBody = parse(&body)?;
    let owner = super::portal::Owner {
        id,
        user_id: body.user_id.unwrap_or(id.saturating_sub(5_000_000)),
        email: body.email,
        first_name: body.first_name,
        last_name: body.last_name,
        teams: body.teams.into_iter().map(|t| (t.id, t.name, t.primary)).collect(),
        archived: body.archived,
        created_at: 0,
        updated_at: 0,
    };
    let now = state.clock.now();
    state.portal().put_owner(owner, now);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn remove_owner(State(state): Shared, Path(id): Path<u64>) -> Response {
    match state.portal().remove_owner(id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => mutation(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StageBody {
    id: String,
    label: String,
    /// Defaults to the stage's position in the list.
    #[serde(default)]
    display_order: Option<i64>,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PipelineBody {
    label: String,
    #[serde(default)]
    display_order: i64,
    #[serde(default)]
    archived: bool,
    stages: Vec<StageBody>,
}

/// Creates or replaces a pipeline with its complete list of stages (a stage left out is
/// removed). Any object type can be given one, which makes it a type with pipelines.
async fn put_pipeline(State(state): Shared, Path((t, id)): Path<(String, String)>, body: Bytes) -> Answer {
    let body: PipelineBody = parse(&body)?;
    let stages = body
        .stages
        .into_iter()
        .enumerate()
        .map(|(i, s)| super::portal::PipelineStage {
            id: s.id,
            label: s.label,
            display_order: s.display_order.unwrap_or(i as i64),
            archived: s.archived,
            metadata: s.metadata,
            created_at: 0,
            updated_at: 0,
        })
        .collect();
    let pipeline = super::portal::Pipeline {
        id,
        label: body.label,
        display_order: body.display_order,
        archived: body.archived,
        created_at: 0,
        updated_at: 0,
        stages,
    };
    let now = state.clock.now();
    let mut portal = state.portal();
    let ti = type_of(&portal, &t)?;
    portal.put_pipeline(ti, pipeline, now);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn remove_pipeline(State(state): Shared, Path((t, id)): Path<(String, String)>) -> Answer {
    let mut portal = state.portal();
    let ti = type_of(&portal, &t)?;
    portal.remove_pipeline(ti, &id).map_err(not_found)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_faults(State(state): Shared) -> Response {
    let plan = lock(&state.faults);
    Json(json!({ "rules": plan.rules, "injected": plan.injected })).into_response()
}

async fn put_faults(State(state): Shared, body: Bytes) -> Answer {
    let rules: Vec<FaultRule> = parse(&body)?;
    lock(&state.faults).rules = rules;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn add_fault(State(state): Shared, body: Bytes) -> Answer {
    let rule: FaultRule = parse(&body)?;
    lock(&state.faults).rules.push(rule);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_limits(State(state): Shared) -> Response {
    let now = state.clock.now();
    let mut limits = lock(&state.limits);
    // The clock may have passed midnight without an API call to roll the day.
    limits.roll_day(now);
    Json(json!({
        "settings": limits.settings,
        "dailyUsed": limits.daily_used,
        "associationsDailyUsed": limits.associations_daily_used,
        "msUntilReset": limits.ms_until_reset(now),
    }))
    .into_response()
}

async fn put_limits(State(state): Shared, body: Bytes) -> Answer {
    let settings: LimitSettings = parse(&body)?;
    let now = state.clock.now();
    lock(&state.limits).configure(settings, now);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn exhaust_daily(State(state): Shared) -> Response {
    let now = state.clock.now();
    lock(&state.limits).exhaust_daily(now);
    StatusCode::NO_CONTENT.into_response()
}

async fn get_behaviour(State(state): Shared) -> Response {
    Json(state.behaviour()).into_response()
}

async fn put_behaviour(State(state): Shared, body: Bytes) -> Answer {
    let behaviour: Behaviour = parse(&body)?;
    *lock(&state.behaviour) = behaviour;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_latency(State(state): Shared) -> Response {
    Json(lock(&state.latency).settings.clone()).into_response()
}

/// Replaces the latency settings; families left out are off.
async fn put_latency(State(state): Shared, body: Bytes) -> Answer {
    let settings: LatencySettings = parse(&body)?;
    settings.validate().map_err(|e| bad_request(format!("invalid latency: {e}")))?;
    lock(&state.latency).settings = settings;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IndexBody {
    lag_ms: i64,
}

async fn get_index(State(state): Shared) -> Response {
    Json(json!({ "lagMs": state.portal().index_lag_ms })).into_response()
}

async fn put_index(State(state): Shared, body: Bytes) -> Answer {
    let body: IndexBody = parse(&body)?;
    state.portal().index_lag_ms = body.lag_ms.max(0);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Takes a stale replica of every type's search index as it is now (pending lagged writes stay
/// pending in it): what a lagging search replica would keep serving after later changes.
async fn snapshot_replica(State(state): Shared) -> Response {
    let now = state.clock.now();
    let mut portal = state.portal();
    for store in &mut portal.types {
        store.index.catch_up(now);
        store.replica = Some(store.index.clone());
    }
    Json(json!({ "at": now })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReplicaBody {
    /// How many of the next searches the replica answers.
    reads: u64,
}

async fn put_replica(State(state): Shared, body: Bytes) -> Answer {
    let body: ReplicaBody = parse(&body)?;
    let mut portal = state.portal();
    if portal.types.iter().all(|t| t.replica.is_none()) {
        return Err(bad_request("no replica to read from; POST /_sim/index/replica takes one"));
    }
    portal.replica_reads = body.reads;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_replica(State(state): Shared) -> Response {
    let portal = state.portal();
    let taken = portal.types.iter().any(|t| t.replica.is_some());
    Json(json!({ "taken": taken, "readsLeft": portal.replica_reads })).into_response()
}

async fn drop_replica(State(state): Shared) -> Response {
    let mut portal = state.portal();
    for store in &mut portal.types {
        store.replica = None;
    }
    portal.replica_reads = 0;
    StatusCode::NO_CONTENT.into_response()
}

async fn get_clock(State(state): Shared) -> Response {
    let now = state.clock.now();
    Json(json!({ "now": now, "iso": iso_millis(now), "frozen": state.clock.is_frozen() })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClockBody {
    #[serde(default)]
    advance_ms: i64,
    /// `true` stops the clock (every call sees the same millisecond until it moves or resumes);
    /// `false` lets it run again.
    #[serde(default)]
    frozen: Option<bool>,
}

async fn advance_clock(State(state): Shared, body: Bytes) -> Answer {
    let body: ClockBody = parse(&body)?;
    if body.advance_ms < 0 {
        return Err(bad_request("the clock only moves forward"));
    }
    match body.frozen {
        Some(true) => state.clock.freeze(),
        Some(false) => state.clock.resume(),
        None => {}
    }
    state.clock.advance(body.advance_ms);
    Ok(get_clock(State(state)).await)
}

async fn requests(State(state): Shared, RawQuery(raw): RawQuery) -> Response {
    let since: u64 = raw
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "since").and_then(|(_, v)| v.parse().ok())
        })
        .unwrap_or(0);
    let log = lock(&state.log);
    let entries: Vec<_> = log.entries.iter().filter(|e| e.seq >= since).cloned().collect();
    Json(json!({
        "nextSeq": log.next_seq,
        "count": log.by_status.values().sum::<u64>(),
        "byStatus": log.by_status,
        "byBucket": log.by_bucket,
        "byPolicy": log.by_policy,
        "entries": entries,
    }))
    .into_response()
}

async fn clear_requests(State(state): Shared) -> Response {
    lock(&state.log).clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn put_token(State(state): Shared, body: Bytes) -> Answer {
    let grant: TokenGrant = parse(&body)?;
    lock(&state.tokens).set(grant);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Revokes every OAuth access token issued so far, so the next call with one gets a 401.
async fn revoke_oauth(State(state): Shared) -> Response {
    let revoked = lock(&state.tokens).revoke_oauth();
    Json(json!({ "revoked": revoked })).into_response()
}

/// The webhook settings (without the client secret), `enabled`, and the delivery counters.
async fn get_webhooks(State(state): Shared) -> Response {
    Json(state.webhooks.status()).into_response()
}

/// Replaces the webhook settings and turns webhooks on; events not yet delivered are discarded.
async fn put_webhooks(State(state): Shared, body: Bytes) -> Answer {
    let settings = WebhookSettings::parse(&body).map_err(bad_request)?;
    // With the portal locked, no change falls between the portal noting changes and the new
    // settings.
    let mut portal = state.portal();
    portal.changes.get_or_insert_with(Vec::new);
    state.webhooks.configure(Some(settings));
    drop(portal);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Turns webhooks off; events not yet delivered are discarded. The counters stay.
async fn delete_webhooks(State(state): Shared) -> Response {
    let mut portal = state.portal();
    portal.changes = None;
    state.webhooks.configure(None);
    drop(portal);
    StatusCode::NO_CONTENT.into_response()
}
