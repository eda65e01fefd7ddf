//! The HubSpot API client: one `send()` with two rate buckets, a persisted daily budget, the
//! retry policy and error classes (`client`, `limits`, `budget`, `retry`, `error`), auth
//! (`auth`), the JSON model (`model`), and typed operations (`search`, `objects`, `properties`,
//! `associations`). The facts about object types live in `catalogue`, the API paths here.

mod associations;
mod auth;
mod budget;
pub mod catalogue;
mod client;
mod error;
mod limits;
pub mod model;
mod objects;
mod properties;
mod retry;
mod search;
mod writes;

pub use associations::ASSOCIATION_BATCH_MAX;
pub use auth::{is_env_var_name, Secret, TokenSource};
pub use budget::{
    BoxFuture, BudgetConfig, BudgetRecord, BudgetSetting, BudgetStatus, BudgetStore, DailyBudget, FileBudgetStore,
    MemoryBudgetStore, PortalZone, StoreError,
};
pub use catalogue::{Family, ObjectType, ReadPath, CATALOGUE};
pub use client::{ApiRequest, ClientConfig, HubSpotClient};
pub use error::Error;
pub use limits::{Bucket, RateSettings, WindowLimit};
pub use objects::{ListParams, BATCH_READ_MAX, HISTORY_BATCH_MAX};
pub use retry::RetryPolicy;
pub use search::{Direction, Filter, FilterGroup, Operator, SearchRequest, MAX_PAGE as SEARCH_PAGE_MAX};
pub use writes::{WriteInput, WriteResult, ASSOCIATE_BATCH_MAX, WRITE_BATCH_MAX};

use serde::{Deserialize, Serialize};

/// An object type to sync: its table name, the name its API paths use and its catalogue facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    /// The warehouse table (`contacts`, or the custom object's name).
    pub table: String,
    /// The path segment for its API calls (`contacts`, or the custom type id `2-123`).
    pub api_name: String,
    pub cursor_property: &'static str,
    /// The catalogue entry ([`catalogue::CUSTOM`] for custom objects).
    pub facts: &'static ObjectType,
}

impl ObjectRef {
    /// The catalogue type `facts`, under its own name.
    pub fn of(facts: &'static ObjectType) -> ObjectRef {
        ObjectRef {
            table: facts.name.to_owned(),
            api_name: facts.name.to_owned(),
            cursor_property: facts.cursor_property,
            facts,
        }
    }

    /// HubSpot's type id (`0-1`; a custom object's own `2-…`), as webhook events name types.
    pub fn type_id(&self) -> &str {
        if self.facts.family == catalogue::Family::Custom {
            &self.api_name
        } else {
            self.facts.type_id
        }
    }

    /// How the backfill and CDC read this type.
    pub fn read_path(&self) -> ReadPath {
        self.facts.read_path()
    }
}

/// The cursor property of a type by name or type id; custom objects use `hs_lastmodifieddate`.
pub fn cursor_property(object: &str) -> &'static str {
    catalogue::find(object).map_or(catalogue::CUSTOM.cursor_property, |o| o.cursor_property)
}

/// Resolves configured object names: catalogue types by name or type id, custom objects by
/// name, fully qualified name or type id through the schemas API (called only when needed).
/// Two names of one type (`cars` and its type id) are refused: the object would sync twice.
pub async fn resolve_objects(client: &HubSpotClient, names: &[String]) -> Result<Vec<ObjectRef>, Error> {
    let mut schemas = None;
    let mut out: Vec<ObjectRef> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let resolved = resolve_object(client, name, &mut schemas).await?;
        if let Some(j) = out.iter().position(|o| o.api_name == resolved.api_name) {
            return Err(Error::DuplicateObject {
                table: resolved.table,
                first: names[j].clone(),
                second: names[i].clone(),
            });
        }
        out.push(resolved);
    }
    Ok(out)
}

/// One configured name (see [`resolve_objects`]); `schemas` caches the custom object schemas.
async fn resolve_object(
    client: &HubSpotClient,
    name: &str,
    schemas: &mut Option<Vec<model::ObjectSchema>>,
) -> Result<ObjectRef, Error> {
    if let Some(facts) = catalogue::find(name) {
        return Ok(ObjectRef::of(facts));
    }
    if let Some(elsewhere) = catalogue::served_elsewhere(name) {
        return Err(Error::NotServed { name: name.to_owned(), served_by: elsewhere.served_by });
    }
    if schemas.is_none() {
        *schemas = Some(client.schemas().await?);
    }
    let found = schemas.iter().flatten().find(|s| {
        !s.archived && (s.name == name || s.object_type_id == name || s.fully_qualified_name.as_deref() == Some(name))
    });
    match found {
        Some(schema) => Ok(ObjectRef {
            table: schema.name.clone(),
            api_name: schema.object_type_id.clone(),
            cursor_property: catalogue::CUSTOM.cursor_property,
            facts: &catalogue::CUSTOM,
        }),
        None => Err(Error::NotFound {
            endpoint: "schemas".into(),
            message: format!(
                "no HubSpot object type or custom object is named {name}; check sync.objects against the supported objects in the README (custom objects need the crm.schemas.custom.read scope)"
            ),
            correlation_id: None,
        }),
    }
}

/// Which HubSpot path family requests use (`hubspot.api_family` in the configuration).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiFamily {
    /// `/crm/v3/...` and `/crm/v4/associations/...`.
    #[default]
    #[serde(rename = "v3")]
    Numbered,
    /// `/crm/objects/2026-03/...` and friends.
    #[serde(rename = "2026-03")]
    Dated202603,
}

/// The path family, in one place: switching to dated paths is a configuration change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiPaths {
    family: ApiFamily,
}

impl ApiPaths {
    pub fn new(family: ApiFamily) -> ApiPaths {
        ApiPaths { family }
    }

    pub fn objects(&self, object: &str) -> String {
        match self.family {
            ApiFamily::Numbered => format!("/crm/v3/objects/{object}"),
            ApiFamily::Dated202603 => format!("/crm/objects/2026-03/{object}"),
        }
    }

    pub fn properties(&self, object: &str) -> String {
        match self.family {
            ApiFamily::Numbered => format!("/crm/v3/properties/{object}"),
            ApiFamily::Dated202603 => format!("/crm/properties/2026-03/{object}"),
        }
    }

    pub fn schemas(&self) -> String {
        match self.family {
            ApiFamily::Numbered => "/crm-object-schemas/v3/schemas".to_owned(),
            ApiFamily::Dated202603 => "/crm-object-schemas/2026-03/schemas".to_owned(),
        }
    }

    pub fn associations(&self, from: &str, to: &str) -> String {
        match self.family {
            ApiFamily::Numbered => format!("/crm/v4/associations/{from}/{to}"),
            ApiFamily::Dated202603 => format!("/crm/associations/2026-03/{from}/{to}"),
        }
    }

    pub fn owners(&self) -> String {
        match self.family {
            ApiFamily::Numbered => "/crm/v3/owners".to_owned(),
            ApiFamily::Dated202603 => "/crm/owners/2026-03".to_owned(),
        }
    }

    pub fn pipelines(&self, object: &str) -> String {
        match self.family {
            ApiFamily::Numbered => format!("/crm/v3/pipelines/{object}"),
            ApiFamily::Dated202603 => format!("/crm/pipelines/2026-03/{object}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_use_lastmodifieddate_and_the_rest_hs_lastmodifieddate() {
        assert_eq!(cursor_property("contacts"), "lastmodifieddate");
        assert_eq!(cursor_property("0-1"), "lastmodifieddate");
        assert_eq!(cursor_property("deals"), "hs_lastmodifieddate");
        assert_eq!(cursor_property("2-3508482"), "hs_lastmodifieddate");
    }

    #[test]
    fn dated_family_switches_every_path() {
        let dated = ApiPaths::new(ApiFamily::Dated202603);
        assert_eq!(dated.objects("contacts"), "/crm/objects/2026-03/contacts");
        assert_eq!(dated.associations("contacts", "companies"), "/crm/associations/2026-03/contacts/companies");
        assert_eq!(ApiPaths::new(ApiFamily::Numbered).schemas(), "/crm-object-schemas/v3/schemas");
    }
}
