//! HubSpot's CRM routes: objects (list, get, batch read, create, update, archive, merge, GDPR
//! delete, search), properties, schemas, associations v4, owners and pipelines, served under
//! both the numbered (`/crm/v3`, `/crm/v4`) and the dated (`2026-03`) path families.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::{json, Map, Value};

use super::input::{checked, unreadable_json, Shape};
use super::latency::counted;
use super::portal::{
    iso_millis, MutationError, Portal, PropSource, PropertyDef, Record, Sensitivity, TypeIdx, ValueContext,
    WriteSource, API_APP_ID,
};
use super::render::{
    error_response, history_json, in_key_order, invalid_properties, json_response, method_not_allowed, no_route,
    object_not_found, property_json, unknown_type, unparsable_parameter, validation_error, RecordStyle, RecordView,
};
use super::search::{SearchBody, SearchPlan};
use super::validate::PropertyProblem;
use super::webhooks::ChangeSource;
use super::writes::{self, BatchOp, Written};
use super::{Answer, ListCursor, OverLimit, SimState};

type Shared = State<Arc<SimState>>;

/// HubSpot's documented page and batch limits outside search.
const LIST_MAX: usize = 100;
const LIST_DEFAULT: usize = 10;
const LIST_MAX_WITH_HISTORY: usize = 50;
const BATCH_MAX: usize = 100;
const BATCH_MAX_WITH_HISTORY: usize = 50;
/// Who the API's writes are made by in property history: the app the token belongs to.
const API_WRITER: WriteSource = WriteSource::Integration(API_APP_ID);
const ASSOCIATION_BATCH_MAX: usize = 1_000;
const ASSOCIATION_CREATE_MAX: usize = 2_000;
/// The owners list's default and largest page.
const OWNERS_DEFAULT: usize = 100;
const OWNERS_MAX: usize = 500;

/// The HubSpot API router, before the gate is layered on.
pub fn routes(state: Arc<SimState>) -> Router {
    let objects = || {
        Router::new()
            .route("/{t}", get(list).post(create))
            .route("/{t}/{id}", get(get_one).patch(update_one).delete(archive_one).post(object_action))
            .route("/{t}/batch/{op}", post(batch))
            .route("/{t}/{id}/associations/{to}", get(object_associations))
            .route("/{t}/{id}/associations/default/{to}/{to_id}", put(associate_default))
    };
    let properties = || {
        Router::new()
            .route("/{t}", get(list_properties).post(create_property))
            .route("/{t}/groups", get(property_groups))
            .route("/{t}/groups/{group}", get(property_group))
            .route("/{t}/batch/read", post(batch_read_properties))
            .route("/{t}/{name}", get(get_property).delete(archive_property))
    };
    let schemas = || {
        Router::new()
            .route("/", get(list_schemas))
            .route("/batch/read", post(batch_read_schemas))
            .route("/{t}", get(get_schema))
    };
    let associations = || {
        Router::new()
            .route("/{from}/{to}/batch/{op}", post(association_batch))
            .route("/{from}/{to}/batch/associate/default", post(association_default_batch))
            .route("/{from}/{to}/labels", get(association_labels))
            .route("/definitions/configurations/all", get(association_configurations_all))
            .route("/definitions/configurations/{from}/{to}", get(association_configurations))
    };
    let owners = || Router::new().route("/", get(list_owners)).route("/{id}", get(get_owner));
    Router::new()
        .nest("/crm/v3/objects", objects())
        .nest("/crm/v4/objects", objects())
        .nest("/crm/objects/2026-03", objects())
        .nest("/crm/v3/properties", properties())
        .nest("/crm/properties/2026-03", properties())
        .nest("/crm/v3/schemas", schemas())
        .nest("/crm-object-schemas/v3/schemas", schemas())
        .nest("/crm-object-schemas/2026-03/schemas", schemas())
        .nest("/crm/v4/associations", associations())
        .nest("/crm/associations/v4", associations())
        .nest("/crm/associations/2026-03", associations())
        .nest("/crm/v3/owners", owners())
        .nest("/crm/owners/2026-03", owners())
        .route("/crm/v3/owners/", get(list_owners)) // HubSpot's official SDKs list owners with the trailing slash
        .nest("/crm/v3/pipelines", pipeline_routes())
        .nest("/crm/pipelines/2026-03", pipeline_routes())
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
}

fn pipeline_routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/{t}", get(list_pipelines))
        .route("/{t}/{pipeline}", get(get_pipeline))
        .route("/{t}/{pipeline}/audit", get(pipeline_audit))
        .route("/{t}/{pipeline}/stages", get(list_stages))
        .route("/{t}/{pipeline}/stages/{stage}", get(get_stage))
        .route("/{t}/{pipeline}/stages/{stage}/audit", get(stage_audit))
}

/// Query parameters, accepting both `a=1,2` and repeated `a=1&a=2`.
#[derive(Debug, Default)]
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<String>) -> Query {
        Query(raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default())
    }

    fn one(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn list(&self, key: &str) -> Option<Vec<String>> {
        let items: Vec<String> = self
            .0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned))
            .collect();
        (!items.is_empty()).then_some(items)
    }

    fn flag(&self, key: &str) -> bool {
        self.one(key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(bytes).map_err(|e| unreadable_json(&e))
}

fn resolve_type(portal: &Portal, name: &str) -> Result<TypeIdx, Response> {
    portal.type_idx(name).ok_or_else(|| unknown_type(name))
}

pub(super) fn mutation_error(e: &MutationError) -> Response {
    match e {
        MutationError::NotFound(id) => object_not_found(&id.to_string()),
        MutationError::UnknownProperty(name) => invalid_properties(&[PropertyProblem::unknown(name)], None),
        MutationError::PropertyExists(_) => {
            error_response(StatusCode::CONFLICT, "OBJECT_ALREADY_EXISTS", &e.to_string(), None)
        }
        MutationError::Invalid(m) if m.contains("250 identities") => {
            error_response(StatusCode::URI_TOO_LONG, "VALIDATION_ERROR", m, None)
        }
        other => validation_error(&other.to_string()),
    }
}

pub(super) fn value_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

pub(super) fn properties_of(body: &Value) -> BTreeMap<String, Option<String>> {
    body.get("properties")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), value_string(v))).collect())
        .unwrap_or_default()
}

pub(super) fn parse_id(raw: &str) -> Option<u64> {
    raw.trim().parse().ok()
}

/// Indices of the named live properties; `None` selects the type's defaults. HubSpot always
/// adds the id, created and last-modified properties.
fn select(ctx: &ValueContext, names: Option<&[String]>, defaults: &[&str]) -> Vec<usize> {
    let defs = &ctx.properties.defs;
    // By name through the index: a wide request names hundreds of properties.
    let pick = |n: &str| ctx.properties.position(n).filter(|&i| defs[i].archived_at.is_none());
    let always = defs
        .iter()
        .enumerate()
        .filter(|(_, d)| matches!(d.source, PropSource::ObjectId | PropSource::CreatedAt | PropSource::UpdatedAt))
        .map(|(i, _)| i);
    let mut chosen: Vec<usize> = match names {
        Some(names) => names.iter().filter_map(|n| pick(n)).collect(),
        None => defaults.iter().filter_map(|n| pick(n)).collect(),
    };
    for i in always {
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen
}

/// Renders records to JSON values outside the portal lock.
struct Rendered {
    ctx: ValueContext,
    portal_id: u64,
    type_id: String,
}

impl Rendered {
    fn of(portal: &Portal, t: TypeIdx) -> Rendered {
        Rendered {
            ctx: portal.value_context(t),
            portal_id: portal.portal_id,
            type_id: portal.store(t).def.type_id.clone(),
        }
    }

    fn record(&self, rec: &Record, props: &[usize], nulls: bool, associations: Option<Value>) -> Value {
        serde_json::to_value(RecordView { associations, ..self.view(rec, props, nulls) }).unwrap_or(Value::Null)
    }

    /// A record to serialize straight into a response body; `props` should come from
    /// [`in_key_order`] so the bytes are those `record` would give.
    fn view<'a>(&'a self, rec: &'a Record, props: &'a [usize], nulls: bool) -> RecordView<'a> {
        let style = RecordStyle { properties: props, nulls, portal_id: self.portal_id, type_id: &self.type_id };
        RecordView { ctx: &self.ctx, rec, style, associations: None, history: None }
    }
}

/// A list or search page. Its records are serialized straight into the body instead of being
/// built as a `Value` tree first (a search page of 200 records with 50 properties is megabytes);
/// its keys come out in the sorted order a `serde_json::Map` would give them.
#[derive(serde::Serialize)]
struct RecordPage<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    paging: Option<Value>,
    results: Vec<RecordView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<usize>,
}

/// Where a request was sent, for the absolute `paging.next.link` HubSpot answers with: the
/// same address and query, `after` replaced (amp-labs/connectors records
/// `https://api.hubapi.com/crm/v3/objects/contacts?limit=100&properties=listId%2Cname&after=394`).
struct Origin {
    address: String,
    /// The request's query pairs other than `after`, as sent.
    query: Vec<String>,
}

impl Origin {
    fn of(uri: &axum::http::Uri, headers: &axum::http::HeaderMap) -> Origin {
        let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        // The query as sent (HubSpot echoes it, encoding and all), less its `after`.
        let query = uri
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|pair| !pair.is_empty() && !pair.starts_with("after="))
            .map(str::to_owned)
            .collect();
        Origin { address: format!("http://{host}{}", uri.path()), query }
    }

    /// `paging.next` pointing at `after`.
    fn next_page(&self, after: Option<impl std::fmt::Display>) -> Option<Value> {
        after.map(|next| {
            let next = next.to_string();
            let after: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
            let query: Vec<String> = self.query.iter().cloned().chain([format!("after={after}")]).collect();
            json!({ "next": { "after": next, "link": format!("{}?{}", self.address, query.join("&")) } })
        })
    }
}

fn v3_associations(portal: &Portal, t: TypeIdx, id: u64, to_types: &[String]) -> Option<Value> {
    let mut out = Map::new();
    for name in to_types {
        let Some(to) = portal.type_idx(name) else { continue };
        let from_def = &portal.store(t).def;
        let to_def = &portal.store(to).def;
        let results: Vec<Value> = portal
            .targets(t, id, to)
            .into_iter()
            .flat_map(|(to_id, types)| types.into_iter().map(move |type_id| (to_id, type_id)))
            .map(|(to_id, type_id)| {
                // Legacy v3 names: the primary type (or the only one) is `contact_to_company`,
                // the unlabeled one next to a primary is `contact_to_company_unlabeled`.
                let base = format!("{}_to_{}", from_def.singular, to_def.singular);
                let at = portal.association_types_between(t, to).find(|a| a.type_id == type_id);
                let has_primary =
                    portal.association_types_between(t, to).any(|a| a.label.as_deref() == Some("Primary"));
                let kind = match at {
                    Some(a) if a.unlabeled && has_primary => format!("{base}_unlabeled"),
                    Some(a) if a.unlabeled || a.label.as_deref() == Some("Primary") => base,
                    _ => format!("{base}_{type_id}"),
                };
                json!({ "id": to_id.to_string(), "type": kind })
            })
            .collect();
        if !results.is_empty() {
            out.insert(to_def.name.clone(), json!({ "results": results }));
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

async fn list(
    State(state): Shared,
    Path(t): Path<String>,
    RawQuery(raw): RawQuery,
    OriginalUri(uri): OriginalUri,
    headers: axum::http::HeaderMap,
) -> Answer {
    let origin = Origin::of(&uri, &headers);
    let q = Query::parse(raw);
    let behaviour = state.behaviour();
    let history = q.list("propertiesWithHistory");
    let max = if history.is_some() { LIST_MAX_WITH_HISTORY } else { LIST_MAX };
    let limit = match q.one("limit").map(str::parse::<usize>) {
        None => LIST_DEFAULT,
        Some(Ok(n)) if n >= 1 && n <= max => n,
        Some(Ok(n)) if n > max && behaviour.list_over_limit == OverLimit::Clamp => max,
        Some(Ok(_)) => return Err(validation_error(&format!("limit must be between 1 and {max}"))),
        Some(Err(_)) => return Err(unparsable_parameter("limit")),
    };
    let cursor = behaviour.list_cursor;
    let after = match q.one("after").filter(|a| !a.is_empty()).map(|a| match cursor {
        ListCursor::Opaque => decode_after(a),
        ListCursor::Id | ListCursor::Offset => parse_id(a),
    }) {
        None => 0,
        Some(Some(a)) => a,
        Some(None) => return Err(validation_error("after must be a paging cursor this endpoint gave")),
    };
    let archived = q.flag("archived");
    let assoc_types = q.list("associations").unwrap_or_default();
    let (render, page, next, assocs) = {
        let portal = state.portal();
        let ti = resolve_type(&portal, &t)?;
        let store = portal.store(ti);
        let source = if archived { &store.archived } else { &store.live };
        let (page, next) = if cursor == ListCursor::Offset {
            let offset = usize::try_from(after).unwrap_or(usize::MAX);
            let mut iter = source.values().skip(offset);
            let page: Vec<Arc<Record>> = iter.by_ref().take(limit).map(Arc::clone).collect();
            (page, iter.next().map(|_| (offset + limit).to_string()))
        } else {
            let mut iter = source.range(after..);
            let page: Vec<Arc<Record>> = iter.by_ref().take(limit).map(|(_, r)| Arc::clone(r)).collect();
            let next = iter.next().map(|(id, _)| *id);
            (page, next.map(|id| if cursor == ListCursor::Opaque { encode_after(id) } else { id.to_string() }))
        };
        let assocs: Vec<Option<Value>> = page
            .iter()
            .map(|r| if assoc_types.is_empty() { None } else { v3_associations(&portal, ti, r.id, &assoc_types) })
            .collect();
        (Rendered::of(&portal, ti), page, next, assocs)
    };
    let defaults = {
        let portal = state.portal();
        portal.type_idx(&t).map(|ti| portal.store(ti).def.default_properties.clone()).unwrap_or_default()
    };
    let props = select(&render.ctx, q.list("properties").as_deref(), &defaults);
    let props = in_key_order(&render.ctx.properties.defs, &props);
    let results = page
        .iter()
        .zip(assocs)
        .map(|(r, associations)| RecordView {
            associations,
            history: history.as_ref().map(|h| history_json(&render.ctx, r, h.iter().map(String::as_str))),
            ..render.view(r, &props, false)
        })
        .collect::<Vec<_>>();
    let n = results.len();
    Ok(counted(json_response(StatusCode::OK, &RecordPage { paging: origin.next_page(next), results, total: None }), n))
}

async fn get_one(State(state): Shared, Path((t, raw_id)): Path<(String, String)>, RawQuery(raw): RawQuery) -> Answer {
    let q = Query::parse(raw);
    let archived = q.flag("archived");
    let id_property = q.one("idProperty").filter(|p| *p != "hs_object_id");
    let assoc_types = q.list("associations").unwrap_or_default();
    let (render, rec, assoc, defaults) = {
        let portal = state.portal();
        let ti = resolve_type(&portal, &t)?;
        let store = portal.store(ti);
        let source = if archived { &store.archived } else { &store.live };
        let found = match id_property {
            Some(prop) => {
                let ctx = portal.value_context(ti);
                match store.properties.live(prop) {
                    Some(def) if def.unique || prop == "email" => {
                        source.values().find(|r| ctx.value(r, def).as_deref() == Some(raw_id.as_str())).cloned()
                    }
                    _ => return Err(validation_error(&format!("{prop} is not a unique property"))),
                }
            }
            None => parse_id(&raw_id).and_then(|id| {
                let id = if archived { id } else { portal.resolve_merged(ti, id) };
                source.get(&id).cloned()
            }),
        };
        let Some(rec) = found else {
            return Err(object_not_found(&raw_id));
        };
        let assoc = if assoc_types.is_empty() { None } else { v3_associations(&portal, ti, rec.id, &assoc_types) };
        (Rendered::of(&portal, ti), rec, assoc, store.def.default_properties.clone())
    };
    let props = select(&render.ctx, q.list("properties").as_deref(), &defaults);
    let props = in_key_order(&render.ctx.properties.defs, &props);
    let history =
        q.list("propertiesWithHistory").map(|h| history_json(&render.ctx, &rec, h.iter().map(String::as_str)));
    let view = RecordView { associations: assoc, history, ..render.view(&rec, &props, false) };
    Ok(counted(json_response(StatusCode::OK, &view), 1))
}

fn all_written(render: &Rendered, rec: &Record) -> Vec<usize> {
    render
        .ctx
        .properties
        .defs
        .iter()
        .enumerate()
        .filter(|(_, d)| d.archived_at.is_none())
        .filter(|(_, d)| {
            rec.written.contains_key(&d.name)
                || !matches!(
                    d.source,
                    PropSource::Generated(_)
                        | PropSource::Stored
                        | PropSource::AssociationCount(_)
                        | PropSource::SearchablePhone(_)
                )
        })
        .map(|(i, _)| i)
        .collect()
}

async fn create(State(state): Shared, Path(t): Path<String>, body: Bytes) -> Answer {
    let body = checked(&body, Shape::Record)?;
    let now = state.clock.now();
    let (render, rec) = {
        let mut portal = state.portal_write(ChangeSource::Api);
        let ti = resolve_type(&portal, &t)?;
        let rec = writes::create_one(&mut portal, ti, &body, now, API_WRITER)?;
        (Rendered::of(&portal, ti), rec)
    };
    let props = all_written(&render, &rec);
    Ok(json_response(StatusCode::CREATED, &render.record(&rec, &props, false, None)))
}

async fn update_one(
    State(state): Shared,
    Path((t, raw_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Answer {
    let body = checked(&body, Shape::Record)?;
    // As for GET, `hs_object_id` names the record id.
    let q = Query::parse(raw);
    let id_property = q.one("idProperty").filter(|p| *p != "hs_object_id");
    let now = state.clock.now();
    let (render, rec) = {
        let mut portal = state.portal_write(ChangeSource::Api);
        let ti = resolve_type(&portal, &t)?;
        let rec = writes::update_one(&mut portal, ti, &raw_id, id_property, &body, now, API_WRITER)?;
        (Rendered::of(&portal, ti), rec)
    };
    let props = all_written(&render, &rec);
    Ok(json_response(StatusCode::OK, &render.record(&rec, &props, false, None)))
}

async fn archive_one(State(state): Shared, Path((t, raw_id)): Path<(String, String)>) -> Answer {
    let now = state.clock.now();
    let mut portal = state.portal_write(ChangeSource::Api);
    let ti = resolve_type(&portal, &t)?;
    // Archiving an unknown or already archived id succeeds silently, as HubSpot does.
    if let Some(id) = parse_id(&raw_id) {
        let _ = portal.archive(ti, id, now);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /{type}/search`, `/{type}/merge` and `/contacts/gdpr-delete`.
async fn object_action(State(state): Shared, Path((t, action)): Path<(String, String)>, body: Bytes) -> Answer {
    let kind = {
        let portal = state.portal();
        portal.store(resolve_type(&portal, &t)?).def.kind
    };
    match action.as_str() {
        "search" if kind.search => search(state, t, body),
        // A type without search: HubSpot documents no search path for it. The answer is the
        // simulator's validation error, as HubSpot's is not documented. // unconfirmed
        "search" => Err(validation_error(&format!("Search is not supported for object type {t}"))),
        // A type without merge has no merge path: the same answer as any other unknown action.
        "merge" if kind.merge => merge(state, t, body),
        "gdpr-delete" => gdpr_delete(state, t, body),
        _ => Err(error_response(StatusCode::METHOD_NOT_ALLOWED, "VALIDATION_ERROR", "Method not allowed", None)),
    }
}

fn search(state: Arc<SimState>, t: String, body: Bytes) -> Answer {
    let body: SearchBody = parse_json(&body)?;
    let behaviour = state.behaviour();
    let now = state.clock.now();
    let (render, plan, page) = {
        let mut portal = state.portal();
        let ti = resolve_type(&portal, &t)?;
        let plan = SearchPlan::parse(body, portal.store(ti), behaviour.unlimited_search_page)
            .map_err(|rejection| validation_error(&rejection.0))?;
        portal.types[ti].index.catch_up(now);
        let render = Rendered::of(&portal, ti);
        let stale = portal.replica_reads > 0 && portal.store(ti).replica.is_some();
        if stale {
            portal.replica_reads -= 1;
        }
        let store = portal.store(ti);
        let index = if stale { store.replica.as_ref().unwrap_or(&store.index) } else { &store.index };
        let page = plan.run(store, index, &render.ctx);
        (render, plan, page)
    };
    let props = in_key_order(&render.ctx.properties.defs, &plan.properties);
    let results = page.records.iter().map(|r| render.view(r, &props, behaviour.search_nulls)).collect();
    // A search pages by the `after` of its body: there is no address to link to.
    let paging = page.next_after.map(|next| json!({ "next": { "after": next.to_string() } }));
    let body = RecordPage { paging, results, total: Some(page.total) };
    Ok(counted(json_response(StatusCode::OK, &body), page.records.len()))
}

fn merge(state: Arc<SimState>, t: String, body: Bytes) -> Answer {
    let body: Value = parse_json(&body)?;
    let id_of = |key: &str| body.get(key).and_then(value_string).and_then(|s| parse_id(&s));
    let (Some(primary), Some(absorbed)) = (id_of("primaryObjectId"), id_of("objectIdToMerge")) else {
        return Err(validation_error("primaryObjectId and objectIdToMerge are required"));
    };
    let now = state.clock.now();
    let (render, rec) = {
        let mut portal = state.portal_write(ChangeSource::Api);
        let ti = resolve_type(&portal, &t)?;
        let rec = portal.merge(ti, primary, absorbed, now).map_err(|e| mutation_error(&e))?;
        (Rendered::of(&portal, ti), rec)
    };
    let props = all_written(&render, &rec);
    Ok(json_response(StatusCode::OK, &render.record(&rec, &props, false, None)))
}

fn gdpr_delete(state: Arc<SimState>, t: String, body: Bytes) -> Answer {
    let body: Value = parse_json(&body)?;
    let now = state.clock.now();
    let mut portal = state.portal_write(ChangeSource::Api);
    let ti = resolve_type(&portal, &t)?;
    if portal.store(ti).def.name != "contacts" {
        return Err(error_response(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "GDPR delete exists for contacts only",
            None,
        ));
    }
    let Some(raw) = body.get("objectId").and_then(value_string) else {
        return Err(validation_error("objectId is required"));
    };
    let id = match body.get("idProperty").and_then(Value::as_str) {
        Some("email") => {
            let ctx = portal.value_context(ti);
            let def = ctx.properties.live("email").cloned();
            def.and_then(|d| {
                portal.store(ti).live.values().find(|r| ctx.value(r, &d).as_deref() == Some(raw.as_str())).map(|r| r.id)
            })
        }
        _ => parse_id(&raw),
    };
    // An unknown email is blocklisted by HubSpot and still answers 204.
    if let Some(id) = id {
        let _ = portal.purge(ti, id, now);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn batch(
    State(state): Shared,
    Path((t, op)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Answer {
    let shape = match op.as_str() {
        "read" | "archive" => Shape::BatchIds,
        "create" => Shape::BatchCreate,
        "update" | "upsert" => Shape::BatchUpdate,
        _ => return Err(error_response(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", "Unknown batch operation", None)),
    };
    let body = checked(&body, shape)?;
    let inputs = body.get("inputs").and_then(Value::as_array).cloned().unwrap_or_default();
    if inputs.len() > BATCH_MAX {
        return Err(validation_error(&format!(
            "Object API batch endpoints are limited to {BATCH_MAX} inputs per request; got {}",
            inputs.len()
        )));
    }
    match shape {
        Shape::BatchIds if op == "read" => batch_read(state, t, Query::parse(raw), body, inputs),
        Shape::BatchIds => {
            let now = state.clock.now();
            let mut portal = state.portal_write(ChangeSource::Api);
            let ti = resolve_type(&portal, &t)?;
            for input in inputs {
                if let Some(id) = input.get("id").and_then(value_string).and_then(|s| parse_id(&s)) {
                    let _ = portal.archive(ti, id, now);
                }
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => batch_write(state, t, &op, inputs),
    }
}

/// A batch answer: 200, or 207 when some inputs failed. Its keys come out sorted, as from a
/// `serde_json::Map`, and its results are serialized straight (records may carry raw values).
fn batch_envelope(now: i64, results: impl serde::Serialize, errors: Vec<Value>) -> Response {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct BatchBody<R> {
        completed_at: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        errors: Vec<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        num_errors: Option<usize>,
        results: R,
        started_at: String,
        status: &'static str,
    }
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::MULTI_STATUS };
    let body = BatchBody {
        completed_at: iso_millis(now),
        num_errors: (!errors.is_empty()).then_some(errors.len()),
        errors,
        results,
        started_at: iso_millis(now),
        status: "COMPLETE",
    };
    json_response(status, &body)
}

fn batch_read(state: Arc<SimState>, t: String, q: Query, body: Value, inputs: Vec<Value>) -> Answer {
    let now = state.clock.now();
    let archived = q.flag("archived") || body.get("archived").and_then(Value::as_bool).unwrap_or(false);
    let string_list = |key: &str| -> Option<Vec<String>> {
        body.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .filter(|v: &Vec<String>| !v.is_empty())
    };
    let names = string_list("properties");
    let history = string_list("propertiesWithHistory");
    if history.is_some() && inputs.len() > BATCH_MAX_WITH_HISTORY {
        // HubSpot's wording (quoted by PipedreamHQ/pipedream PR #8462, activepieces PR #9359).
        return Err(validation_error(&format!(
            "The maximum number of inputs supported in a batch request for property histories is {BATCH_MAX_WITH_HISTORY}. Please reduce the number of items and try again"
        )));
    }
    let id_property =
        body.get("idProperty").and_then(Value::as_str).filter(|p| *p != "hs_object_id").map(str::to_owned);
    let (render, found, missing, upper, defaults) = {
        let portal = state.portal();
        let ti = resolve_type(&portal, &t)?;
        let store = portal.store(ti);
        let source = if archived { &store.archived } else { &store.live };
        let ctx = portal.value_context(ti);
        let mut found: Vec<Arc<Record>> = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        for input in &inputs {
            let Some(raw) = input.get("id").and_then(value_string) else {
                continue;
            };
            let rec = match &id_property {
                Some(prop) => ctx.properties.live(prop).and_then(|def| {
                    source.values().find(|r| ctx.value(r, def).as_deref() == Some(raw.as_str())).cloned()
                }),
                // Batch endpoints do not resolve ids absorbed by a merge.
                None => parse_id(&raw).and_then(|id| source.get(&id).cloned()),
            };
            match rec {
                Some(r) if !found.iter().any(|f| f.id == r.id) => found.push(r),
                Some(_) => {}
                None => missing.push(raw),
            }
        }
        // HubSpot does not keep input order: callers must match results by id.
        found.sort_by_key(|r| super::portal::tie_key(r.id));
        (Rendered::of(&portal, ti), found, missing, store.def.upper.clone(), store.def.default_properties.clone())
    };
    let props = select(&render.ctx, names.as_deref(), &defaults);
    let props = in_key_order(&render.ctx.properties.defs, &props);
    let results: Vec<RecordView<'_>> = found
        .iter()
        .map(|r| RecordView {
            history: history.as_ref().map(|h| history_json(&render.ctx, r, h.iter().map(String::as_str))),
            ..render.view(r, &props, false)
        })
        .collect();
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![json!({
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": format!("Could not get some {upper} objects, they may be deleted or not exist. Check that ids are valid."),
            "context": { "ids": missing },
        })]
    };
    let n = results.len();
    Ok(counted(batch_envelope(now, results, errors), n))
}

/// Batch create, update and upsert ([`writes::batch`]): 201 (create) or 200 when every input
/// was written, 207 when `errors` is not empty. Results are not in input order (HubSpot does
/// not promise it; callers match them by id or key); upsert results carry `new`.
fn batch_write(state: Arc<SimState>, t: String, op: &str, inputs: Vec<Value>) -> Answer {
    let op = match op {
        "create" => BatchOp::Create,
        "update" => BatchOp::Update,
        _ => BatchOp::Upsert,
    };
    let now = state.clock.now();
    let mut portal = state.portal_write(ChangeSource::Api);
    let ti = resolve_type(&portal, &t)?;
    let mut outcome = writes::batch(&mut portal, ti, op, &inputs, now, API_WRITER)?;
    let render = Rendered::of(&portal, ti);
    drop(portal);
    outcome.written.sort_by_key(|w| super::portal::tie_key(w.record.id));
    let results: Vec<Value> = outcome
        .written
        .iter()
        .map(|Written { record, created }| {
            let mut result = render.record(record, &all_written(&render, record), false, None);
            if op == BatchOp::Upsert {
                // `SimplePublicUpsertObject` requires `new`: whether the upsert created the record.
                result["new"] = json!(created);
            }
            result
        })
        .collect();
    let n = results.len();
    let failed = !outcome.errors.is_empty();
    let answer = counted(batch_envelope(now, results, outcome.errors), n);
    if op == BatchOp::Create && !failed {
        let (mut parts, body) = answer.into_parts();
        parts.status = StatusCode::CREATED;
        return Ok(Response::from_parts(parts, body));
    }
    Ok(answer)
}

fn list_properties_json(portal: &Portal, ti: TypeIdx, archived: bool, sensitivity: Sensitivity) -> Vec<Value> {
    portal
        .store(ti)
        .properties
        .defs
        .iter()
        .filter(|d| d.archived_at.is_some() == archived && d.sensitivity == sensitivity)
        .map(property_json)
        .collect()
}

/// The `dataSensitivity` a properties call asks for (`non_sensitive` when it does not).
fn asked_sensitivity(text: Option<&str>) -> Result<Sensitivity, Response> {
    match text {
        None => Ok(Sensitivity::NonSensitive),
        Some(t) => Sensitivity::parse(t).ok_or_else(|| unparsable_parameter("dataSensitivity")),
    }
}

async fn list_properties(State(state): Shared, Path(t): Path<String>, RawQuery(raw): RawQuery) -> Answer {
    let q = Query::parse(raw);
    let sensitivity = asked_sensitivity(q.one("dataSensitivity"))?;
    let portal = state.portal();
    let ti = resolve_type(&portal, &t)?;
    let results = list_properties_json(&portal, ti, q.flag("archived"), sensitivity);
    drop(portal);
    Ok(json_response(StatusCode::OK, &json!({ "results": results })))
}

async fn get_property(
    State(state): Shared,
    Path((t, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let archived = Query::parse(raw).flag("archived");
    let portal = state.portal();
    let ti = resolve_type(&portal, &t)?;
    match portal.store(ti).properties.get(&name).filter(|d| d.archived_at.is_some() == archived) {
        Some(def) => Ok(json_response(StatusCode::OK, &property_json(def))),
        None => Err(error_response(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            &format!("Unable to find property {name} for object type {t}"),
            None,
        )),
    }
}

/// The groups the type's properties belong to, as `PropertyGroup`s.
fn groups_json(portal: &Portal, ti: TypeIdx) -> Vec<Value> {
    let mut names: Vec<&str> = portal.store(ti).properties.defs.iter().map(|d| d.group.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .iter()
        .enumerate()
        .map(|(i, n)| json!({ "name": n, "label": n.replace('_', " "), "displayOrder": i, "archived": false }))
        .collect()
}

/// `GET /properties/{type}/groups`.
async fn property_groups(State(state): Shared, Path(t): Path<String>) -> Answer {
    let portal = state.portal();
    let results = groups_json(&portal, resolve_type(&portal, &t)?);
    drop(portal);
    Ok(json_response(StatusCode::OK, &json!({ "results": results })))
}

/// `GET /properties/{type}/groups/{groupName}`.
async fn property_group(State(state): Shared, Path((t, group)): Path<(String, String)>) -> Answer {
    let portal = state.portal();
    let groups = groups_json(&portal, resolve_type(&portal, &t)?);
    drop(portal);
    match groups.into_iter().find(|g| g["name"] == group.as_str()) {
        Some(g) => Ok(json_response(StatusCode::OK, &g)),
        None => Err(error_response(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            &format!("Unable to find property group {group} for object type {t}"),
            None,
        )),
    }
}

/// `POST /properties/{type}/batch/read`: `{inputs: [{name}], archived}`; names it does not
/// have are left out, as HubSpot does.
async fn batch_read_properties(State(state): Shared, Path(t): Path<String>, body: Bytes) -> Answer {
    let body = checked(&body, Shape::PropertyNames)?;
    let archived = body.get("archived").and_then(Value::as_bool).unwrap_or(false);
    let sensitivity = asked_sensitivity(body.get("dataSensitivity").and_then(Value::as_str))
        .map_err(|_| validation_error("dataSensitivity must be non_sensitive, sensitive or highly_sensitive"))?;
    let names: Vec<&str> = body["inputs"].as_array().into_iter().flatten().filter_map(|i| i["name"].as_str()).collect();
    let now = state.clock.now();
    let portal = state.portal();
    let ti = resolve_type(&portal, &t)?;
    let results: Vec<Value> = names
        .iter()
        .filter_map(|n| portal.store(ti).properties.get(n))
        .filter(|d| d.archived_at.is_some() == archived && d.sensitivity == sensitivity)
        .map(property_json)
        .collect();
    drop(portal);
    Ok(batch_envelope(now, results, Vec::new()))
}

/// Builds a property definition from HubSpot's `PropertyCreate` body.
/// A property definition from a create body. `check_name` applies HubSpot's rule for names
/// created through the API; the admin API may skip it to model what older portals and
/// integrations hold (names with capitals, `id`, an empty name).
pub fn property_from_body(body: &Value, check_name: bool) -> Result<PropertyDef, String> {
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let name = text("name").ok_or("name is required")?;
    if check_name
        && (name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
    {
        return Err(format!("Property name \"{name}\" must be lower-case letters, digits and underscores"));
    }
    let kind = text("type").ok_or("type is required")?;
    const TYPES: &[&str] = &["string", "number", "date", "datetime", "enumeration", "bool", "phone_number"];
    if !TYPES.contains(&kind.as_str()) {
        return Err(format!("type must be one of {}", TYPES.join(", ")));
    }
    let options = body
        .get("options")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|o| Some((o.get("label")?.as_str()?.to_owned(), o.get("value")?.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Ok(PropertyDef {
        label: text("label").unwrap_or_else(|| name.clone()),
        name,
        kind,
        field_type: text("fieldType").unwrap_or_else(|| "text".to_owned()),
        group: text("groupName").unwrap_or_else(|| "custom_properties".to_owned()),
        options,
        calculated: false,
        unique: body.get("hasUniqueValue").and_then(Value::as_bool).unwrap_or(false),
        hidden: body.get("hidden").and_then(Value::as_bool).unwrap_or(false),
        hubspot_defined: false,
        read_only: false,
        archived_at: None,
        created_at: 0,
        updated_at: 0,
        display_order: 0,
        source: PropSource::Stored,
        sensitivity: match body.get("dataSensitivity").and_then(Value::as_str) {
            None => Sensitivity::NonSensitive,
            Some(text) => Sensitivity::parse(text)
                .ok_or("dataSensitivity must be non_sensitive, sensitive or highly_sensitive")?,
        },
    })
}

async fn create_property(State(state): Shared, Path(t): Path<String>, body: Bytes) -> Answer {
    let body: Value = parse_json(&body)?;
    let def = property_from_body(&body, true).map_err(|m| validation_error(&m))?;
    let now = state.clock.now();
    let mut portal = state.portal();
    let ti = resolve_type(&portal, &t)?;
    let name = def.name.clone();
    portal.add_property(ti, def, now).map_err(|e| mutation_error(&e))?;
    let created = portal.store(ti).properties.get(&name).map(property_json).unwrap_or_default();
    Ok(json_response(StatusCode::CREATED, &created))
}

async fn archive_property(State(state): Shared, Path((t, name)): Path<(String, String)>) -> Answer {
    let now = state.clock.now();
    let mut portal = state.portal();
    let ti = resolve_type(&portal, &t)?;
    match portal.archive_property(ti, &name, now) {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(MutationError::UnknownProperty(_)) => Err(error_response(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            &format!("Unable to find property {name} for object type {t}"),
            None,
        )),
        Err(e) => Err(mutation_error(&e)),
    }
}

fn schema_json(portal: &Portal, ti: TypeIdx) -> Value {
    let store = portal.store(ti);
    let def = &store.def;
    let associations: Vec<Value> = portal
        .association_types
        .iter()
        .filter(|a| (a.from == ti || a.to == ti) && a.unlabeled)
        .map(|a| {
            json!({
                "id": a.type_id.to_string(),
                "fromObjectTypeId": portal.store(a.from).def.type_id,
                "toObjectTypeId": portal.store(a.to).def.type_id,
                "name": format!("{}_to_{}", portal.store(a.from).def.singular, portal.store(a.to).def.singular).to_uppercase(),
                "createdAt": iso_millis(super::generate::ANCHOR_MS),
                "updatedAt": iso_millis(super::generate::ANCHOR_MS),
            })
        })
        .collect();
    json!({
        "id": def.type_id.trim_start_matches("2-"),
        "name": def.name,
        "labels": { "singular": "Car", "plural": "Cars" },
        "objectTypeId": def.type_id,
        "fullyQualifiedName": def.fully_qualified_name,
        "primaryDisplayProperty": "make",
        "secondaryDisplayProperties": ["model"],
        "requiredProperties": ["make"],
        "searchableProperties": ["make", "model", "vin"],
        "properties": list_properties_json(portal, ti, false, Sensitivity::NonSensitive),
        "associations": associations,
        "archived": false,
        "allowsSensitiveProperties": false,
        "createdAt": iso_millis(super::generate::ANCHOR_MS),
        "updatedAt": iso_millis(super::generate::ANCHOR_MS),
        "createdByUserId": 5000001,
        "updatedByUserId": 5000001,
    })
}

async fn list_schemas(State(state): Shared) -> Response {
    let portal = state.portal();
    let results: Vec<Value> =
        (0..portal.types.len()).filter(|&i| portal.store(i).def.custom).map(|i| schema_json(&portal, i)).collect();
    drop(portal);
    json_response(StatusCode::OK, &json!({ "results": results }))
}

async fn get_schema(State(state): Shared, Path(t): Path<String>) -> Response {
    let portal = state.portal();
    match portal.type_idx(&t).filter(|&i| portal.store(i).def.custom) {
        Some(ti) => json_response(StatusCode::OK, &schema_json(&portal, ti)),
        None => error_response(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            &format!("Unable to find object schema {t}"),
            None,
        ),
    }
}

/// `POST /crm-object-schemas/v3/schemas/batch/read`: `{inputs: [objectType]}`, the custom
/// types among them.
async fn batch_read_schemas(State(state): Shared, body: Bytes) -> Answer {
    let body = checked(&body, Shape::SchemaNames)?;
    let portal = state.portal();
    let results: Vec<Value> = body["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|t| portal.type_idx(t).filter(|&i| portal.store(i).def.custom))
        .map(|ti| schema_json(&portal, ti))
        .collect();
    drop(portal);
    Ok(json_response(StatusCode::OK, &json!({ "results": results })))
}

/// `PublicAssociationDefinitionUserConfiguration`s of the types from `from` to `to`.
fn configurations_json(portal: &Portal, from: TypeIdx, to: TypeIdx) -> Vec<Value> {
    portal
        .association_types_between(from, to)
        .map(|a| json!({ "category": a.category, "typeId": a.type_id, "label": a.label }))
        .collect()
}

/// `GET /crm/associations/v4/definitions/configurations/all`.
async fn association_configurations_all(State(state): Shared) -> Response {
    let portal = state.portal();
    let n = portal.types.len();
    let results: Vec<Value> = (0..n)
        .flat_map(|from| (0..n).map(move |to| (from, to)))
        .flat_map(|(f, t)| configurations_json(&portal, f, t))
        .collect();
    drop(portal);
    json_response(StatusCode::OK, &json!({ "results": results }))
}

/// `GET /crm/associations/v4/definitions/configurations/{from}/{to}`.
async fn association_configurations(State(state): Shared, Path((from, to)): Path<(String, String)>) -> Answer {
    let portal = state.portal();
    let results = configurations_json(&portal, resolve_type(&portal, &from)?, resolve_type(&portal, &to)?);
    drop(portal);
    Ok(json_response(StatusCode::OK, &json!({ "results": results })))
}

/// Any path HubSpot does not serve: the HTML 404 its web server answers with.
async fn unknown_route() -> Response {
    no_route()
}

/// A method a route does not take: the HTML 405 of the same web server.
async fn wrong_method() -> Response {
    method_not_allowed()
}

fn association_types_json(portal: &Portal, from: TypeIdx, to: TypeIdx, type_ids: &[u32]) -> Vec<Value> {
    type_ids
        .iter()
        .filter_map(|id| portal.association_types_between(from, to).find(|a| a.type_id == *id))
        .map(|a| json!({ "category": a.category, "typeId": a.type_id, "label": a.label }))
        .collect()
}

/// The opaque per-input paging token: the next target id, disguised.
fn encode_after(to_id: u64) -> String {
    format!("MC0{:x}", to_id ^ 0x5A5A_5A5A)
}

fn decode_after(token: &str) -> Option<u64> {
    let hex = token.strip_prefix("MC0")?;
    u64::from_str_radix(hex, 16).ok().map(|v| v ^ 0x5A5A_5A5A)
}

async fn association_batch(
    State(state): Shared,
    OriginalUri(uri): OriginalUri,
    Path((from, to, op)): Path<(String, String, String)>,
    body: Bytes,
) -> Answer {
    let body = checked(&body, Shape::AssociationInputs)?;
    let inputs = body.get("inputs").and_then(Value::as_array).cloned().unwrap_or_default();
    let now = state.clock.now();
    let mut portal = state.portal_write(ChangeSource::Api);
    let (fi, ti) = (resolve_type(&portal, &from)?, resolve_type(&portal, &to)?);
    match op.as_str() {
        "read" => {
            if inputs.len() > ASSOCIATION_BATCH_MAX {
                return Err(validation_error(&format!(
                    "Association batch read is limited to {ASSOCIATION_BATCH_MAX} inputs per request body; got {}",
                    inputs.len()
                )));
            }
            let page_size = portal.association_page_size.max(1);
            let mut results = Vec::new();
            let mut errors = Vec::new();
            for input in &inputs {
                let Some(raw) = input.get("id").and_then(value_string) else {
                    continue;
                };
                let after = input.get("after").and_then(Value::as_str).and_then(decode_after).unwrap_or(0);
                let targets = parse_id(&raw).filter(|id| portal.is_live(fi, *id)).map(|id| portal.targets(fi, id, ti));
                let targets: Vec<_> = targets.unwrap_or_default().into_iter().filter(|(id, _)| *id >= after).collect();
                if targets.is_empty() {
                    let (fs, ts) = (&portal.store(fi).def.singular, &portal.store(ti).def.singular);
                    errors.push(json!({
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                        "message": format!("No {ts} is associated with {fs} {raw}."),
                        "context": { "fromObjectId": [raw], "fromObjectType": [fs], "toObjectType": [ts] },
                    }));
                    continue;
                }
                let page: Vec<Value> = targets
                    .iter()
                    .take(page_size)
                    .map(|(to_id, types)| json!({ "toObjectId": to_id, "associationTypes": association_types_json(&portal, fi, ti, types) }))
                    .collect();
                let mut result = json!({ "from": { "id": raw }, "to": page });
                if let Some((next, _)) = targets.get(page_size) {
                    result["paging"] = json!({ "next": { "after": encode_after(*next), "link": null } });
                }
                results.push(result);
            }
            drop(portal);
            let n = results.len();
            Ok(counted(batch_envelope(now, results, errors), n))
        }
        "create" => {
            if inputs.len() > ASSOCIATION_CREATE_MAX {
                return Err(validation_error(&format!(
                    "Association batch create is limited to {ASSOCIATION_CREATE_MAX} inputs"
                )));
            }
            let mut results = Vec::new();
            for input in &inputs {
                let from_id = input.pointer("/from/id").and_then(value_string).and_then(|s| parse_id(&s));
                let to_id = input.pointer("/to/id").and_then(value_string).and_then(|s| parse_id(&s));
                let (Some(from_id), Some(to_id)) = (from_id, to_id) else {
                    return Err(validation_error("each input needs from.id and to.id"));
                };
                if !portal.is_live(fi, from_id) || !portal.is_live(ti, to_id) {
                    return Err(object_not_found(&format!("{from_id} or {to_id}")));
                }
                let types: Vec<u32> = input
                    .get("types")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| t.get("associationTypeId").and_then(Value::as_u64))
                            .map(|n| n as u32)
                            .collect()
                    })
                    .unwrap_or_default();
                let labeled: Vec<u32> = types
                    .iter()
                    .copied()
                    .filter(|id| !portal.association_types_between(fi, ti).any(|a| a.type_id == *id && a.unlabeled))
                    .collect();
                portal.associate_at(fi, from_id, ti, to_id, &labeled, now).map_err(|e| mutation_error(&e))?;
                let all: Vec<u32> = portal
                    .targets(fi, from_id, ti)
                    .into_iter()
                    .find(|(id, _)| *id == to_id)
                    .map(|(_, t)| t)
                    .unwrap_or_default();
                results.push(json!({
                    "fromObjectTypeId": portal.store(fi).def.type_id,
                    "fromObjectId": from_id,
                    "toObjectTypeId": portal.store(ti).def.type_id,
                    "toObjectId": to_id,
                    "labels": association_types_json(&portal, fi, ti, &all).iter().filter_map(|v| v["label"].as_str().map(str::to_owned)).collect::<Vec<_>>(),
                }));
            }
            drop(portal);
            let (mut parts, b) = batch_envelope(now, results, Vec::new()).into_parts();
            parts.status = StatusCode::CREATED;
            Ok(Response::from_parts(parts, b))
        }
        "archive" | "labels-archive" => {
            for input in &inputs {
                let Some(from_id) = input.pointer("/from/id").and_then(value_string).and_then(|s| parse_id(&s)) else {
                    continue;
                };
                for target in input.get("to").and_then(Value::as_array).cloned().unwrap_or_default() {
                    if let Some(to_id) = target.get("id").and_then(value_string).and_then(|s| parse_id(&s)) {
                        portal.dissociate_at(fi, from_id, ti, to_id, &[], now);
                    }
                }
            }
            // HubSpot's 2026-03 document answers with 200 and a `BatchResponse`, v4's with 204.
            if uri.path().contains("/2026-03/") {
                return Ok(batch_envelope(now, Vec::<Value>::new(), Vec::new()));
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => {
            Err(error_response(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", "Unknown association batch operation", None))
        }
    }
}

/// `POST /crm/v4/associations/{from}/{to}/batch/associate/default`: `{inputs: [{from: {id},
/// to: {id}}]}`. Each pair gets the pair's unlabeled (default) association type, in both
/// directions; 200 with `{from: {id}, to: {id}, associationSpec: {associationCategory,
/// associationTypeId}}` per input (HubSpot's spec). Every input is checked before any is
/// written; the input limit is the labelled create's 2,000 (HubSpot documents none).
async fn association_default_batch(
    State(state): Shared,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let body = checked(&body, Shape::AssociationInputs)?;
    let inputs = body.get("inputs").and_then(Value::as_array).cloned().unwrap_or_default();
    if inputs.len() > ASSOCIATION_CREATE_MAX {
        return Err(validation_error(&format!(
            "Association batch create is limited to {ASSOCIATION_CREATE_MAX} inputs"
        )));
    }
    let now = state.clock.now();
    let mut portal = state.portal_write(ChangeSource::Api);
    let (fi, ti) = (resolve_type(&portal, &from)?, resolve_type(&portal, &to)?);
    let Some(spec) = portal
        .association_types_between(fi, ti)
        .find(|a| a.unlabeled)
        .map(|a| json!({ "associationCategory": a.category, "associationTypeId": a.type_id }))
    else {
        return Err(validation_error(&format!("There is no default association type from {from} to {to}")));
    };
    let mut pairs = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let id = |side: &str| input.pointer(&format!("/{side}/id")).and_then(value_string).and_then(|s| parse_id(&s));
        let (Some(from_id), Some(to_id)) = (id("from"), id("to")) else {
            return Err(validation_error("each input needs from.id and to.id"));
        };
        if !portal.is_live(fi, from_id) || !portal.is_live(ti, to_id) {
            return Err(object_not_found(&format!("{from_id} or {to_id}")));
        }
        pairs.push((from_id, to_id));
    }
    let mut results = Vec::with_capacity(pairs.len());
    for (from_id, to_id) in pairs {
        portal.associate_at(fi, from_id, ti, to_id, &[], now).map_err(|e| mutation_error(&e))?;
        results.push(json!({
            "from": { "id": from_id.to_string() },
            "to": { "id": to_id.to_string() },
            "associationSpec": spec,
        }));
    }
    drop(portal);
    Ok(batch_envelope(now, results, Vec::new()))
}

async fn association_labels(State(state): Shared, Path((from, to)): Path<(String, String)>) -> Answer {
    let portal = state.portal();
    let (fi, ti) = (resolve_type(&portal, &from)?, resolve_type(&portal, &to)?);
    let results: Vec<Value> = portal
        .association_types_between(fi, ti)
        .map(|a| json!({ "category": a.category, "typeId": a.type_id, "label": a.label }))
        .collect();
    drop(portal);
    Ok(json_response(StatusCode::OK, &json!({ "results": results })))
}

async fn object_associations(
    State(state): Shared,
    Path((t, raw_id, to)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q = Query::parse(raw);
    let limit = q.one("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(500).clamp(1, 500);
    let after = q.one("after").and_then(decode_after).unwrap_or(0);
    let portal = state.portal();
    let (fi, ti) = (resolve_type(&portal, &t)?, resolve_type(&portal, &to)?);
    let Some(id) = parse_id(&raw_id).filter(|id| portal.is_live(fi, *id)) else {
        return Err(object_not_found(&raw_id));
    };
    let targets: Vec<_> = portal.targets(fi, id, ti).into_iter().filter(|(id, _)| *id >= after).collect();
    let results: Vec<Value> = targets
        .iter()
        .take(limit)
        .map(|(to_id, types)| json!({ "toObjectId": to_id, "associationTypes": association_types_json(&portal, fi, ti, types) }))
        .collect();
    let n = results.len();
    let mut body = json!({ "results": results });
    if let Some((next, _)) = targets.get(limit) {
        body["paging"] = json!({ "next": { "after": encode_after(*next), "link": null } });
    }
    drop(portal);
    Ok(counted(json_response(StatusCode::OK, &body), n))
}

async fn associate_default(
    State(state): Shared,
    Path((t, raw_id, to, raw_to)): Path<(String, String, String, String)>,
) -> Answer {
    let now = state.clock.now();
    let mut portal = state.portal_write(ChangeSource::Api);
    let (fi, ti) = (resolve_type(&portal, &t)?, resolve_type(&portal, &to)?);
    let (Some(from_id), Some(to_id)) = (parse_id(&raw_id), parse_id(&raw_to)) else {
        return Err(object_not_found(&raw_id));
    };
    if !portal.is_live(fi, from_id) || !portal.is_live(ti, to_id) {
        return Err(object_not_found(&format!("{from_id} or {to_id}")));
    }
    portal.associate_at(fi, from_id, ti, to_id, &[], now).map_err(|e| mutation_error(&e))?;
    let body = json!({
        "status": "COMPLETE",
        "results": [{
            "from": { "id": from_id.to_string() },
            "to": { "id": to_id.to_string() },
            "associationSpec": portal.association_types_between(fi, ti).find(|a| a.unlabeled).map(|a| json!({"associationCategory": a.category, "associationTypeId": a.type_id})),
        }],
        "startedAt": iso_millis(now),
        "completedAt": iso_millis(now),
    });
    drop(portal);
    Ok(json_response(StatusCode::OK, &body))
}

/// An owner as `/crm/v3/owners` shows it (also used by the ground-truth dump).
pub(super) fn owner_json(o: &super::portal::Owner) -> Value {
    let teams: Vec<Value> = o
        .teams
        .iter()
        .map(|(id, name, primary)| json!({ "id": id.to_string(), "name": name, "primary": primary }))
        .collect();
    json!({
        "id": o.id.to_string(),
        "email": o.email,
        "firstName": o.first_name,
        "lastName": o.last_name,
        "userId": o.user_id,
        "userIdIncludingInactive": o.user_id,
        "type": "PERSON",
        "teams": teams,
        "archived": o.archived,
        "createdAt": iso_millis(o.created_at),
        "updatedAt": iso_millis(o.updated_at),
    })
}

async fn list_owners(
    State(state): Shared,
    RawQuery(raw): RawQuery,
    OriginalUri(uri): OriginalUri,
    headers: axum::http::HeaderMap,
) -> Response {
    let q = Query::parse(raw);
    let limit = match q.one("limit").map(str::parse::<usize>) {
        None => OWNERS_DEFAULT,
        Some(Ok(n)) => n.clamp(1, OWNERS_MAX),
        Some(Err(_)) => return unparsable_parameter("limit"),
    };
    let after = match q.one("after").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return unparsable_parameter("after"),
    };
    let archived = q.flag("archived");
    let email = q.one("email").map(str::to_lowercase);
    let owners = Arc::clone(&state.portal().owners);
    let matching: Vec<_> =
        owners.iter().filter(|o| o.archived == archived && email.as_ref().is_none_or(|e| &o.email == e)).collect();
    let page: Vec<Value> = matching.iter().skip(after).take(limit).map(|o| owner_json(o)).collect();
    let mut body = json!({ "results": page });
    if let Some(paging) =
        Origin::of(&uri, &headers).next_page((after + limit < matching.len()).then_some(after + limit))
    {
        body["paging"] = paging;
    }
    json_response(StatusCode::OK, &body)
}

async fn get_owner(State(state): Shared, Path(raw_id): Path<String>, RawQuery(raw): RawQuery) -> Response {
    let by_user = Query::parse(raw).one("idProperty") == Some("userId");
    let owners = Arc::clone(&state.portal().owners);
    let id = parse_id(&raw_id);
    match owners.iter().find(|o| Some(if by_user { o.user_id } else { o.id }) == id) {
        Some(o) => json_response(StatusCode::OK, &owner_json(o)),
        None => object_not_found(&raw_id),
    }
}

fn stages_json(p: &super::portal::Pipeline) -> Vec<Value> {
    p.stages.iter().map(stage_json).collect()
}

fn stage_json(s: &super::portal::PipelineStage) -> Value {
    json!({
        "id": s.id, "label": s.label, "displayOrder": s.display_order, "metadata": s.metadata,
        "archived": s.archived, "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
        "createdAt": iso_millis(s.created_at), "updatedAt": iso_millis(s.updated_at),
    })
}

/// A pipeline with its stages as `/crm/v3/pipelines/{type}` shows it (also used by the
/// ground-truth dump).
pub(super) fn pipeline_json(p: &super::portal::Pipeline) -> Value {
    json!({
        "id": p.id, "label": p.label, "displayOrder": p.display_order, "archived": p.archived,
        "createdAt": iso_millis(p.created_at), "updatedAt": iso_millis(p.updated_at), "stages": stages_json(p),
    })
}

/// Runs `f` on the pipelines of type `t`, or answers HubSpot's error for a type without them.
fn with_pipelines<T>(
    state: &SimState,
    t: &str,
    f: impl FnOnce(u64, &[super::portal::Pipeline]) -> Result<T, Response>,
) -> Result<T, Response> {
    let portal = state.portal();
    let ti = resolve_type(&portal, t)?;
    let Some(pipelines) = portal.pipelines.get(&ti) else {
        return Err(validation_error(&format!("Pipelines are not supported for object type {t}")));
    };
    f(portal.portal_id, pipelines)
}

fn pipeline_of<'a>(
    pipelines: &'a [super::portal::Pipeline],
    t: &str,
    id: &str,
) -> Result<&'a super::portal::Pipeline, Response> {
    pipelines.iter().find(|p| p.id == id).ok_or_else(|| {
        error_response(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            &format!("Unable to find pipeline {id} for object type {t}"),
            None,
        )
    })
}

fn stage_of<'a>(p: &'a super::portal::Pipeline, id: &str) -> Result<&'a super::portal::PipelineStage, Response> {
    p.stages.iter().find(|s| s.id == id).ok_or_else(|| {
        error_response(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            &format!("Unable to find stage {id} in pipeline {}", p.id),
            None,
        )
    })
}

/// `PublicAuditInfo` entries for something created at `created_at` and last changed at
/// `updated_at`, newest first, as HubSpot lists them.
fn audit_json(portal_id: u64, identifier: &str, created_at: i64, updated_at: i64) -> Value {
    let entry = |action: &str, at: i64| json!({ "identifier": identifier, "action": action, "portalId": portal_id, "timestamp": iso_millis(at) });
    let mut results = vec![entry("CREATE", created_at)];
    if updated_at > created_at {
        results.insert(0, entry("UPDATE", updated_at));
    }
    json!({ "results": results })
}

/// `GET /pipelines/{type}`.
async fn list_pipelines(State(state): Shared, Path(t): Path<String>) -> Answer {
    let body = with_pipelines(&state, &t, |_, pipelines| {
        Ok(json!({ "results": pipelines.iter().map(pipeline_json).collect::<Vec<_>>() }))
    })?;
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /pipelines/{type}/{pipelineId}`.
async fn get_pipeline(State(state): Shared, Path((t, id)): Path<(String, String)>) -> Answer {
    let body = with_pipelines(&state, &t, |_, pipelines| Ok(pipeline_json(pipeline_of(pipelines, &t, &id)?)))?;
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /pipelines/{type}/{pipelineId}/audit`.
async fn pipeline_audit(State(state): Shared, Path((t, id)): Path<(String, String)>) -> Answer {
    let body = with_pipelines(&state, &t, |portal_id, pipelines| {
        let p = pipeline_of(pipelines, &t, &id)?;
        Ok(audit_json(portal_id, &p.id, p.created_at, p.updated_at))
    })?;
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /pipelines/{type}/{pipelineId}/stages`.
async fn list_stages(State(state): Shared, Path((t, id)): Path<(String, String)>) -> Answer {
    let body = with_pipelines(&state, &t, |_, pipelines| {
        Ok(json!({ "results": stages_json(pipeline_of(pipelines, &t, &id)?) }))
    })?;
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /pipelines/{type}/{pipelineId}/stages/{stageId}`.
async fn get_stage(State(state): Shared, Path((t, id, stage)): Path<(String, String, String)>) -> Answer {
    let body =
        with_pipelines(&state, &t, |_, pipelines| Ok(stage_json(stage_of(pipeline_of(pipelines, &t, &id)?, &stage)?)))?;
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /pipelines/{type}/{pipelineId}/stages/{stageId}/audit`.
async fn stage_audit(State(state): Shared, Path((t, id, stage)): Path<(String, String, String)>) -> Answer {
    let body = with_pipelines(&state, &t, |portal_id, pipelines| {
        let s = stage_of(pipeline_of(pipelines, &t, &id)?, &stage)?;
        Ok(audit_json(portal_id, &s.id, s.created_at, s.updated_at))
    })?;
    Ok(json_response(StatusCode::OK, &body))
}
