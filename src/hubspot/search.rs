//! Search requests, built so HubSpot cannot reject them: at most 5 filter groups of 6 filters
//! and 18 in total, one sort, pages of at most 200, never past the 10,000-result cap, `IN`
//! values in lower case, and properties in the body (never the URL, so no `414`).

use serde_json::{json, Value};

use super::client::{ApiRequest, HubSpotClient};
use super::error::Error;
use super::limits::Bucket;
use super::model::SearchPage;

pub const MAX_GROUPS: usize = 5;
pub const MAX_FILTERS_PER_GROUP: usize = 6;
pub const MAX_FILTERS: usize = 18;
pub const MAX_PAGE: u32 = 200;
pub const RESULT_CAP: u64 = 10_000;

/// A filter operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
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

impl Operator {
    fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "EQ",
            Operator::Neq => "NEQ",
            Operator::Lt => "LT",
            Operator::Lte => "LTE",
            Operator::Gt => "GT",
            Operator::Gte => "GTE",
            Operator::Between => "BETWEEN",
            Operator::In => "IN",
            Operator::NotIn => "NOT_IN",
            Operator::HasProperty => "HAS_PROPERTY",
            Operator::NotHasProperty => "NOT_HAS_PROPERTY",
            Operator::ContainsToken => "CONTAINS_TOKEN",
            Operator::NotContainsToken => "NOT_CONTAINS_TOKEN",
        }
    }
}

/// One filter.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    pub property: String,
    pub operator: Operator,
    pub value: Option<String>,
    pub high_value: Option<String>,
    pub values: Vec<String>,
}

impl Filter {
    fn new(property: &str, operator: Operator, value: Option<String>) -> Filter {
        Filter { property: property.to_owned(), operator, value, high_value: None, values: Vec::new() }
    }

    /// A comparison (`EQ`, `NEQ`, `LT`, `LTE`, `GT`, `GTE`, `CONTAINS_TOKEN`, ...).
    pub fn compare(property: &str, operator: Operator, value: impl ToString) -> Filter {
        Filter::new(property, operator, Some(value.to_string()))
    }

    pub fn between(property: &str, low: impl ToString, high: impl ToString) -> Filter {
        Filter { high_value: Some(high.to_string()), ..Filter::new(property, Operator::Between, Some(low.to_string())) }
    }

    /// `IN` / `NOT_IN`; HubSpot needs the values in lower case.
    pub fn one_of(property: &str, operator: Operator, values: Vec<String>) -> Filter {
        Filter { values, ..Filter::new(property, operator, None) }
    }

    pub fn has(property: &str) -> Filter {
        Filter::new(property, Operator::HasProperty, None)
    }

    fn to_json(&self) -> Value {
        let mut f = json!({ "propertyName": self.property, "operator": self.operator.as_str() });
        if let Some(v) = &self.value {
            f["value"] = json!(v);
        }
        if let Some(h) = &self.high_value {
            f["highValue"] = json!(h);
        }
        if !self.values.is_empty() {
            f["values"] = json!(self.values);
        }
        f
    }

    fn check(&self) -> Result<(), String> {
        let needs_value =
            !matches!(self.operator, Operator::In | Operator::NotIn | Operator::HasProperty | Operator::NotHasProperty);
        if needs_value && self.value.is_none() {
            return Err(format!("{} on {} needs a value", self.operator.as_str(), self.property));
        }
        if self.operator == Operator::Between && self.high_value.is_none() {
            return Err(format!("BETWEEN on {} needs a high value", self.property));
        }
        if matches!(self.operator, Operator::In | Operator::NotIn) {
            if self.values.is_empty() {
                return Err(format!("{} on {} needs values", self.operator.as_str(), self.property));
            }
            if self.values.iter().any(|v| v.chars().any(char::is_uppercase)) {
                return Err(format!("{} values on {} must be lower case", self.operator.as_str(), self.property));
            }
        }
        Ok(())
    }
}

/// Filters that must all hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FilterGroup(pub Vec<Filter>);

/// Sort direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Ascending,
    Descending,
}

/// A validated search request.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchRequest {
    groups: Vec<FilterGroup>,
    sort: Option<(String, Direction)>,
    properties: Vec<String>,
    limit: u32,
    after: u64,
}

impl SearchRequest {
    /// Builds and validates a request. Any group matching is enough (groups are ORed).
    pub fn new(
        groups: Vec<FilterGroup>,
        sort: Option<(String, Direction)>,
        properties: Vec<String>,
        limit: u32,
        after: u64,
    ) -> Result<SearchRequest, Error> {
        let refuse = |m: String| Err(Error::InvalidRequest(m));
        if groups.len() > MAX_GROUPS {
            return refuse(format!("{} filter groups; HubSpot allows {MAX_GROUPS}", groups.len()));
        }
        let total: usize = groups.iter().map(|g| g.0.len()).sum();
        if total > MAX_FILTERS {
            return refuse(format!("{total} filters; HubSpot allows {MAX_FILTERS} in total"));
        }
        for g in &groups {
            if g.0.len() > MAX_FILTERS_PER_GROUP {
                return refuse(format!("{} filters in a group; HubSpot allows {MAX_FILTERS_PER_GROUP}", g.0.len()));
            }
            for f in &g.0 {
                f.check().map_err(Error::InvalidRequest)?;
            }
        }
        if limit == 0 || limit > MAX_PAGE {
            return refuse(format!("page size {limit}; HubSpot allows 1 to {MAX_PAGE}"));
        }
        if after + u64::from(limit) > RESULT_CAP {
            return refuse(format!(
                "offset {after} with page size {limit} passes the {RESULT_CAP}-result cap; narrow the query instead"
            ));
        }
        Ok(SearchRequest { groups, sort, properties, limit, after })
    }

    /// The same request at another offset (validated again).
    pub fn at(&self, after: u64) -> Result<SearchRequest, Error> {
        SearchRequest::new(self.groups.clone(), self.sort.clone(), self.properties.clone(), self.limit, after)
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The JSON body HubSpot expects.
    pub fn to_json(&self) -> Value {
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|g| json!({ "filters": g.0.iter().map(Filter::to_json).collect::<Vec<_>>() }))
            .collect();
        let mut body = json!({ "filterGroups": groups, "properties": self.properties, "limit": self.limit });
        if let Some((prop, dir)) = &self.sort {
            let direction = match dir {
                Direction::Ascending => "ASCENDING",
                Direction::Descending => "DESCENDING",
            };
            body["sorts"] = json!([{ "propertyName": prop, "direction": direction }]);
        }
        if self.after > 0 {
            body["after"] = json!(self.after.to_string());
        }
        body
    }
}

impl HubSpotClient {
    /// One page of a search.
    pub async fn search(&self, object: &str, request: &SearchRequest) -> Result<SearchPage, Error> {
        let req = ApiRequest::post("search", format!("{}/search", self.paths().objects(object)), request.to_json())
            .bucket(Bucket::Search);
        self.send_records(&req).await
    }

    /// How many live records of `object` HubSpot holds: one search for one id, read for its
    /// `total`.
    pub async fn count(&self, object: &str) -> Result<u64, Error> {
        let request = SearchRequest::new(Vec::new(), None, vec!["hs_object_id".to_owned()], 1, 0)?;
        Ok(self.search(object, &request).await?.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt(id: u64) -> Filter {
        Filter::compare("hs_object_id", Operator::Gt, id)
    }

    #[test]
    fn builder_refuses_what_hubspot_would_reject() {
        let many = |n: usize| FilterGroup((0..n).map(|i| gt(i as u64)).collect());
        assert!(SearchRequest::new(vec![many(1); 6], None, vec![], 10, 0).is_err(), "6 groups");
        assert!(SearchRequest::new(vec![many(7)], None, vec![], 10, 0).is_err(), "7 filters in a group");
        assert!(
            SearchRequest::new(vec![many(6), many(6), many(6), many(1)], None, vec![], 10, 0).is_err(),
            "19 filters"
        );
        assert!(SearchRequest::new(vec![many(6), many(6), many(6)], None, vec![], 10, 0).is_ok(), "18 filters");
        assert!(SearchRequest::new(vec![], None, vec![], 201, 0).is_err(), "page over 200");
        assert!(SearchRequest::new(vec![], None, vec![], 200, 9_800).is_ok());
        assert!(SearchRequest::new(vec![], None, vec![], 200, 9_801).is_err(), "past the cap");
        let upper = Filter::one_of("lifecyclestage", Operator::In, vec!["Lead".into()]);
        assert!(SearchRequest::new(vec![FilterGroup(vec![upper])], None, vec![], 10, 0).is_err(), "upper-case IN");
        let between = Filter { high_value: None, ..Filter::between("amount", 1, 2) };
        assert!(SearchRequest::new(vec![FilterGroup(vec![between])], None, vec![], 10, 0).is_err());
    }

    #[test]
    fn body_carries_properties_sort_and_offset() {
        let req = SearchRequest::new(
            vec![FilterGroup(vec![gt(41)])],
            Some(("hs_object_id".into(), Direction::Ascending)),
            vec!["email".into()],
            200,
            400,
        )
        .unwrap();
        let body = req.to_json();
        assert_eq!(body["filterGroups"][0]["filters"][0]["value"], "41");
        assert_eq!(body["sorts"][0]["direction"], "ASCENDING");
        assert_eq!(body["properties"][0], "email");
        assert_eq!(body["after"], "400");
    }
}
