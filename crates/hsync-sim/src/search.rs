//! The CRM search endpoint's semantics: request validation with HubSpot's limits, the filter
//! operators, one sort, offset paging with the 10,000-result cap, and range scans over the
//! search index so keyset backfills and cursor windows stay fast on large portals.

use std::cmp::Ordering;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::portal::{tie_key, Millis, ObjectStore, PropSource, PropertyDef, Record, SearchIndex, ValueContext};

/// HubSpot's documented search limits.
pub const MAX_PAGE_SIZE: i64 = 200;
pub const DEFAULT_PAGE_SIZE: i64 = 10;
pub const RESULT_CAP: i64 = 10_000;
pub const MAX_FILTER_GROUPS: usize = 5;
pub const MAX_FILTERS_PER_GROUP: usize = 6;
pub const MAX_FILTERS_TOTAL: usize = 18;
pub const MAX_QUERY_CHARS: usize = 3_000;

/// The search request body, parsed by the simulator's own types.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchBody {
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub filter_groups: Vec<FilterGroupBody>,
    #[serde(default)]
    pub sorts: Vec<Value>,
    #[serde(default)]
    pub properties: Option<Vec<String>>,
    #[serde(default)]
    pub limit: Option<Value>,
    #[serde(default)]
    pub after: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct FilterGroupBody {
    #[serde(default)]
    pub filters: Vec<FilterBody>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterBody {
    pub property_name: String,
    pub operator: String,
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub high_value: Option<Value>,
    #[serde(default)]
    pub values: Option<Vec<Value>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Between,
    In,
    NotIn,
    HasProperty,
    NotHasProperty,
    ContainsToken,
    NotContainsToken,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "EQ" => Op::Eq,
            "NEQ" => Op::Neq,
            "LT" => Op::Lt,
            "LTE" => Op::Lte,
            "GT" => Op::Gt,
            "GTE" => Op::Gte,
            "BETWEEN" => Op::Between,
            "IN" => Op::In,
            "NOT_IN" => Op::NotIn,
            "HAS_PROPERTY" => Op::HasProperty,
            "NOT_HAS_PROPERTY" => Op::NotHasProperty,
            "CONTAINS_TOKEN" => Op::ContainsToken,
            "NOT_CONTAINS_TOKEN" => Op::NotContainsToken,
            _ => return None,
        })
    }
}

/// A comparable form of a property or filter value.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
enum Scalar {
    Num(f64),
    Text(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Typing {
    Numeric,
    Temporal,
    Text,
}

/// One validated filter.
#[derive(Debug)]
struct Filter {
    prop: Arc<str>,
    typing: Typing,
    op: Op,
    value: Option<Scalar>,
    high: Option<Scalar>,
    values: Vec<String>,
    token: Option<String>,
}

/// Why a search was refused; rendered as a 400 `VALIDATION_ERROR`.
#[derive(Debug, PartialEq)]
pub struct SearchRejection(pub String);

/// A validated search, ready to run.
#[derive(Debug)]
pub struct SearchPlan {
    groups: Vec<Vec<Filter>>,
    sort: Option<(Arc<str>, Typing, bool)>,
    query_tokens: Vec<String>,
    pub properties: Vec<usize>,
    pub limit: usize,
    pub after: usize,
}

/// The page a search returns.
#[derive(Debug)]
pub struct SearchPage {
    pub total: usize,
    pub records: Vec<Arc<Record>>,
    pub next_after: Option<usize>,
}

fn typing_of(def: Option<&PropertyDef>) -> Typing {
    match def {
        Some(d) if d.is_numeric() => Typing::Numeric,
        Some(d) if d.is_temporal() => Typing::Temporal,
        _ => Typing::Text,
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses an instant given as epoch milliseconds, ISO 8601 date-time or a plain date.
pub fn parse_instant(s: &str) -> Option<Millis> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

fn scalar(typing: Typing, raw: &str) -> Option<Scalar> {
    match typing {
        Typing::Numeric => raw.trim().parse::<f64>().ok().map(Scalar::Num),
        Typing::Temporal => parse_instant(raw).map(|ms| Scalar::Num(ms as f64)),
        Typing::Text => Some(Scalar::Text(raw.to_lowercase())),
    }
}

fn glob_match(pattern: &str, text: &str) -> bool {
    // '*' matches any run of characters; everything else matches itself.
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(pos) = rest.find(part) {
            rest = &rest[pos + part.len()..];
        } else {
            return false;
        }
    }
    true
}

fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric() && c != '@' && c != '.' && c != '_' && c != '-')
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
}

impl SearchPlan {
    /// Validates a request against HubSpot's limits and the type's properties.
    pub fn parse(body: SearchBody, store: &ObjectStore, unlimited_page: bool) -> Result<SearchPlan, SearchRejection> {
        let reject = |m: String| Err(SearchRejection(m));
        let props = &store.properties;
        if let Some(q) = &body.query {
            if q.chars().count() > MAX_QUERY_CHARS {
                return reject(format!("The query string may be at most {MAX_QUERY_CHARS} characters long."));
            }
        }
        if body.filter_groups.len() > MAX_FILTER_GROUPS {
            return reject(format!(
                "Too many filter groups: {} were given, but at most {MAX_FILTER_GROUPS} are allowed.",
                body.filter_groups.len()
            ));
        }
        let total: usize = body.filter_groups.iter().map(|g| g.filters.len()).sum();
        if total > MAX_FILTERS_TOTAL {
            return reject(format!(
                "Too many filters: {total} were given, but at most {MAX_FILTERS_TOTAL} are allowed across all filter groups."
            ));
        }
        let mut groups = Vec::new();
        for g in body.filter_groups {
            if g.filters.len() > MAX_FILTERS_PER_GROUP {
                return reject(format!(
                    "Too many filters in a filter group: {} were given, but at most {MAX_FILTERS_PER_GROUP} are allowed.",
                    g.filters.len()
                ));
            }
            let mut filters = Vec::new();
            for f in g.filters {
                let Some(op) = Op::parse(&f.operator) else {
                    return reject(format!("Unknown filter operator \"{}\".", f.operator));
                };
                let def = props.live(&f.property_name);
                let typing = typing_of(def);
                let raw = f.value.as_ref().map(value_text);
                let needs_value = matches!(
                    op,
                    Op::Eq
                        | Op::Neq
                        | Op::Lt
                        | Op::Lte
                        | Op::Gt
                        | Op::Gte
                        | Op::Between
                        | Op::ContainsToken
                        | Op::NotContainsToken
                );
                if needs_value && raw.is_none() {
                    return reject(format!(
                        "The operator {} requires a value for property {}.",
                        f.operator, f.property_name
                    ));
                }
                let value = match &raw {
                    Some(r) if op != Op::ContainsToken && op != Op::NotContainsToken => match scalar(typing, r) {
                        Some(s) => Some(s),
                        None => {
                            return reject(format!(
                                "The value \"{r}\" is not valid for property {} of type {}.",
                                f.property_name,
                                def.map_or("string", |d| d.kind.as_str())
                            ))
                        }
                    },
                    _ => None,
                };
                let high = if op == Op::Between {
                    let Some(h) = f.high_value.as_ref().map(value_text) else {
                        return reject(format!(
                            "The operator BETWEEN requires a highValue for property {}.",
                            f.property_name
                        ));
                    };
                    match scalar(typing, &h) {
                        Some(s) => Some(s),
                        None => {
                            return reject(format!(
                                "The highValue \"{h}\" is not valid for property {}.",
                                f.property_name
                            ))
                        }
                    }
                } else {
                    None
                };
                let values = if matches!(op, Op::In | Op::NotIn) {
                    match &f.values {
                        Some(v) if !v.is_empty() => v.iter().map(value_text).collect(),
                        _ => return reject(format!("The operator {} requires a values list.", f.operator)),
                    }
                } else {
                    Vec::new()
                };
                let token = if matches!(op, Op::ContainsToken | Op::NotContainsToken) {
                    raw.map(|r| r.to_lowercase())
                } else {
                    None
                };
                filters.push(Filter {
                    prop: Arc::from(f.property_name.as_str()),
                    typing,
                    op,
                    value,
                    high,
                    values,
                    token,
                });
            }
            groups.push(filters);
        }
        if body.sorts.len() > 1 {
            return reject("Only one sort is supported.".to_owned());
        }
        let sort = match body.sorts.first() {
            None => None,
            Some(Value::String(s)) => {
                let (name, desc) = match s.strip_prefix('-') {
                    Some(n) => (n, true),
                    None => (s.as_str(), false),
                };
                Some((Arc::from(name), typing_of(props.live(name)), desc))
            }
            Some(Value::Object(o)) => {
                let Some(name) = o.get("propertyName").and_then(Value::as_str) else {
                    return reject("A sort needs a propertyName.".to_owned());
                };
                let desc = match o.get("direction").and_then(Value::as_str) {
                    None | Some("ASCENDING") => false,
                    Some("DESCENDING") => true,
                    Some(other) => return reject(format!("Unknown sort direction \"{other}\".")),
                };
                Some((Arc::from(name), typing_of(props.live(name)), desc))
            }
            Some(_) => return reject("A sort must be an object or a property name.".to_owned()),
        };
        let limit = match &body.limit {
            None | Some(Value::Null) => DEFAULT_PAGE_SIZE,
            Some(v) => match value_text(v).parse::<i64>() {
                Ok(n) => n,
                Err(_) => return reject("limit must be an integer.".to_owned()),
            },
        };
        if limit < 1 || (limit > MAX_PAGE_SIZE && !unlimited_page) {
            return reject(format!("limit must be between 1 and {MAX_PAGE_SIZE}, but was {limit}."));
        }
        let after = match &body.after {
            None | Some(Value::Null) => 0,
            Some(v) => {
                let text = value_text(v);
                if text.is_empty() {
                    0
                } else {
                    match text.parse::<i64>() {
                        Ok(n) if n >= 0 => n,
                        _ => {
                            return reject(format!("after must be a non-negative integer offset, but was \"{text}\"."))
                        }
                    }
                }
            }
        };
        if after >= RESULT_CAP || after + limit > RESULT_CAP {
            return reject(format!(
                "Search results are capped at {RESULT_CAP} records per query; after={after} with limit={limit} goes past the cap. Narrow the query to page further."
            ));
        }
        let names: Vec<String> = match body.properties {
            Some(list) if !list.is_empty() => list,
            _ => store.def.default_properties.iter().map(|s| (*s).to_owned()).collect(),
        };
        let mut properties: Vec<usize> = names
            .iter()
            .filter_map(|n| props.defs.iter().position(|d| &d.name == n && d.archived_at.is_none()))
            .collect();
        // HubSpot always returns the id, created and last-modified properties.
        for (i, d) in props.defs.iter().enumerate() {
            let always = matches!(d.source, PropSource::ObjectId | PropSource::CreatedAt | PropSource::UpdatedAt);
            if always && !properties.contains(&i) {
                properties.push(i);
            }
        }
        let query_tokens = body.query.as_deref().map(|q| tokens(q).collect()).unwrap_or_default();
        Ok(SearchPlan { groups, sort, query_tokens, properties, limit: limit as usize, after: after as usize })
    }

    fn matches(&self, ctx: &ValueContext, rec: &Record) -> bool {
        let groups_ok =
            self.groups.is_empty() || self.groups.iter().any(|g| g.iter().all(|f| filter_matches(ctx, rec, f)));
        groups_ok && self.query_matches(ctx, rec)
    }

    fn query_matches(&self, ctx: &ValueContext, rec: &Record) -> bool {
        if self.query_tokens.is_empty() {
            return true;
        }
        let mut text = String::new();
        for def in ctx.properties.defs.iter().filter(|d| d.kind == "string" && d.hubspot_defined) {
            if let Some(v) = ctx.value(rec, def) {
                text.push_str(&v);
                text.push(' ');
            }
        }
        let have: Vec<String> = tokens(&text).collect();
        self.query_tokens.iter().all(|q| have.iter().any(|t| t.starts_with(q.as_str())))
    }

    /// Runs the search over `index`, the (already caught-up) search index of `store` or a stale
    /// replica of it.
    pub fn run(&self, store: &ObjectStore, index: &SearchIndex, ctx: &ValueContext) -> SearchPage {
        let cursor = store.def.cursor_property;
        let (candidates, ordered, exact) = self.candidates(index, cursor);
        let page_of = |ids: &[u64], total: usize| -> SearchPage {
            let start = self.after.min(ids.len());
            let end = (self.after + self.limit).min(ids.len());
            let records = ids[start..end].iter().filter_map(|id| index.get(*id).cloned()).collect();
            let next_after = (end < total).then_some(end);
            SearchPage { total, records, next_after }
        };
        if ordered && exact {
            let total = candidates.len();
            return page_of(&candidates, total);
        }
        let mut hits: Vec<u64> =
            candidates.iter().copied().filter(|id| index.get(*id).is_some_and(|r| self.matches(ctx, r))).collect();
        if !ordered {
            self.sort_ids(&mut hits, index, ctx);
        }
        let total = hits.len();
        page_of(&hits, total)
    }

    /// Candidate ids from a range scan when one filter group bounds the id or the cursor.
    /// Returns `(ids, already in result order, every filter already satisfied)`.
    fn candidates(&self, index: &SearchIndex, cursor: &str) -> (Vec<u64>, bool, bool) {
        let sort_is = |name: &str| self.sort.as_ref().is_some_and(|(n, _, _)| &**n == name);
        let desc = self.sort.as_ref().is_some_and(|(_, _, d)| *d);
        if self.groups.len() == 1 && self.query_tokens.is_empty() {
            let group = &self.groups[0];
            for key in ["hs_object_id", cursor] {
                let bounds: Vec<&Filter> = group
                    .iter()
                    .filter(|f| {
                        &*f.prop == key && matches!(f.op, Op::Eq | Op::Lt | Op::Lte | Op::Gt | Op::Gte | Op::Between)
                    })
                    .collect();
                if bounds.is_empty() {
                    continue;
                }
                let (lo, hi) = range_of(&bounds);
                let exact = bounds.len() == group.len();
                if key == "hs_object_id" {
                    let ids = index.ids();
                    let a = ids.partition_point(|&id| (id as f64) < lo.0 || (!lo.1 && id as f64 == lo.0));
                    let b = ids.partition_point(|&id| (id as f64) < hi.0 || (hi.1 && id as f64 == hi.0));
                    let mut slice = ids[a..b.max(a)].to_vec();
                    let ordered = self.sort.is_none() || sort_is("hs_object_id");
                    if ordered && desc {
                        slice.reverse();
                    }
                    return (slice, ordered, exact);
                }
                let rows = index.by_updated();
                let a = rows.partition_point(|r| (r.0 as f64) < lo.0 || (!lo.1 && r.0 as f64 == lo.0));
                let b = rows.partition_point(|r| (r.0 as f64) < hi.0 || (hi.1 && r.0 as f64 == hi.0));
                let mut slice: Vec<u64> = rows[a..b.max(a)].iter().map(|r| r.2).collect();
                let ordered = sort_is(cursor);
                if ordered && desc {
                    slice.reverse();
                }
                return (slice, ordered, exact);
            }
        }
        let all: Vec<u64> = index.ids().to_vec();
        let ordered = self.sort.is_none() || sort_is("hs_object_id");
        let mut all = all;
        if ordered && desc {
            all.reverse();
        }
        (all, ordered, self.groups.is_empty() && self.query_tokens.is_empty())
    }

    fn sort_ids(&self, ids: &mut [u64], index: &SearchIndex, ctx: &ValueContext) {
        match &self.sort {
            None => ids.sort_unstable(),
            Some((name, typing, desc)) => {
                let def = ctx.properties.live(name);
                let mut keyed: Vec<(Option<Scalar>, u64, u64)> = ids
                    .iter()
                    .map(|&id| {
                        let key = def.and_then(|d| {
                            index.get(id).and_then(|r| ctx.value(r, d)).and_then(|v| scalar(*typing, &v))
                        });
                        (key, tie_key(id), id)
                    })
                    .collect();
                keyed.sort_by(|a, b| {
                    let by_key = match (&a.0, &b.0) {
                        (Some(x), Some(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
                        (Some(_), None) => Ordering::Less,
                        (None, Some(_)) => Ordering::Greater,
                        (None, None) => Ordering::Equal,
                    };
                    let by_key = if *desc { by_key.reverse() } else { by_key };
                    by_key.then(a.1.cmp(&b.1))
                });
                for (slot, k) in ids.iter_mut().zip(keyed) {
                    *slot = k.2;
                }
            }
        }
    }
}

/// The tightest `[lo, hi]` the bound filters allow; each bound carries whether it is inclusive.
fn range_of(bounds: &[&Filter]) -> ((f64, bool), (f64, bool)) {
    let mut lo = (f64::NEG_INFINITY, true);
    let mut hi = (f64::INFINITY, true);
    let num = |s: &Option<Scalar>| match s {
        Some(Scalar::Num(n)) => *n,
        _ => f64::NAN,
    };
    let raise = |lo: &mut (f64, bool), v: f64, inclusive: bool| {
        if v > lo.0 || (v == lo.0 && !inclusive) {
            *lo = (v, inclusive);
        }
    };
    let lower = |hi: &mut (f64, bool), v: f64, inclusive: bool| {
        if v < hi.0 || (v == hi.0 && !inclusive) {
            *hi = (v, inclusive);
        }
    };
    for f in bounds {
        let v = num(&f.value);
        match f.op {
            Op::Eq => {
                raise(&mut lo, v, true);
                lower(&mut hi, v, true);
            }
            Op::Gt => raise(&mut lo, v, false),
            Op::Gte => raise(&mut lo, v, true),
            Op::Lt => lower(&mut hi, v, false),
            Op::Lte => lower(&mut hi, v, true),
            Op::Between => {
                raise(&mut lo, v, true);
                lower(&mut hi, num(&f.high), true);
            }
            _ => {}
        }
    }
    (lo, hi)
}

fn filter_matches(ctx: &ValueContext, rec: &Record, f: &Filter) -> bool {
    let def = ctx.properties.live(&f.prop);
    let raw = def.and_then(|d| ctx.value(rec, d));
    let present = raw.as_deref().is_some_and(|v| !v.is_empty());
    match f.op {
        Op::HasProperty => return present,
        Op::NotHasProperty => return !present,
        _ => {}
    }
    let Some(raw) = raw.filter(|v| !v.is_empty()) else {
        // A record without a value only matches the negative operators.
        return matches!(f.op, Op::Neq | Op::NotIn | Op::NotContainsToken);
    };
    let multi = def.is_some_and(|d| d.kind == "enumeration");
    let options: Vec<String> =
        if multi { raw.split(';').map(str::to_lowercase).collect() } else { vec![raw.to_lowercase()] };
    let cmp_one = |target: &Option<Scalar>| -> Option<Ordering> {
        let target = target.as_ref()?;
        let own =
            if f.typing == Typing::Text { Some(Scalar::Text(raw.to_lowercase())) } else { scalar(f.typing, &raw) }?;
        own.partial_cmp(target)
    };
    match f.op {
        Op::Eq if multi && f.typing == Typing::Text => {
            matches!(&f.value, Some(Scalar::Text(t)) if options.iter().any(|o| o == t))
        }
        Op::Neq if multi && f.typing == Typing::Text => {
            !matches!(&f.value, Some(Scalar::Text(t)) if options.iter().any(|o| o == t))
        }
        Op::Eq => cmp_one(&f.value) == Some(Ordering::Equal),
        Op::Neq => cmp_one(&f.value) != Some(Ordering::Equal),
        Op::Lt => cmp_one(&f.value) == Some(Ordering::Less),
        Op::Lte => matches!(cmp_one(&f.value), Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => cmp_one(&f.value) == Some(Ordering::Greater),
        Op::Gte => matches!(cmp_one(&f.value), Some(Ordering::Greater | Ordering::Equal)),
        Op::Between => {
            matches!(cmp_one(&f.value), Some(Ordering::Greater | Ordering::Equal))
                && matches!(cmp_one(&f.high), Some(Ordering::Less | Ordering::Equal))
        }
        // IN and NOT_IN values must be lower-case; upper-case values never match, as in HubSpot.
        Op::In | Op::NotIn => {
            let hit = if f.typing == Typing::Text {
                f.values.iter().any(|v| options.iter().any(|o| o == v))
            } else {
                f.values.iter().any(|v| scalar(f.typing, v).is_some() && scalar(f.typing, v) == scalar(f.typing, &raw))
            };
            hit == (f.op == Op::In)
        }
        Op::ContainsToken | Op::NotContainsToken => {
            let pattern = f.token.as_deref().unwrap_or_default();
            let hit = tokens(&raw).any(|t| glob_match(pattern, &t)) || glob_match(pattern, &raw.to_lowercase());
            hit == (f.op == Op::ContainsToken)
        }
        Op::HasProperty | Op::NotHasProperty => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_wildcards() {
        assert!(glob_match("exa*", "example"));
        assert!(glob_match("*ample", "example"));
        assert!(glob_match("e*m*e", "example"));
        assert!(!glob_match("x*", "example"));
        assert!(glob_match("example", "example"));
    }

    #[test]
    fn parse_instant_accepts_epoch_iso_and_date() {
        assert_eq!(parse_instant("1767225600000"), Some(1_767_225_600_000));
        assert_eq!(parse_instant("2026-01-01T00:00:00Z"), Some(1_767_225_600_000));
        assert_eq!(parse_instant("2026-01-01T00:00:00.000+00:00"), Some(1_767_225_600_000));
        assert_eq!(parse_instant("2026-01-01"), Some(1_767_225_600_000));
        assert_eq!(parse_instant("yesterday"), None);
    }
}
