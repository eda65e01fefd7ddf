//! Definitions and small dimensions: property definitions, custom object schemas, owners and
//! pipelines.

use serde::Deserialize;

use super::client::{ApiRequest, HubSpotClient};
use super::error::Error;
use super::model::{ListPage, ObjectSchema, Owner, Pipeline, PropertyDefinition};

#[derive(Deserialize)]
struct Results<T> {
    #[serde(default = "Vec::new")]
    results: Vec<T>,
}

impl HubSpotClient {
    /// Every property definition of a type (`archived` lists only archived ones).
    pub async fn properties(&self, object: &str, archived: bool) -> Result<Vec<PropertyDefinition>, Error> {
        let mut req = ApiRequest::get("properties", self.paths().properties(object));
        if archived {
            req = req.query("archived", "true");
        }
        Ok(self.send::<Results<PropertyDefinition>>(&req).await?.results)
    }

    /// Custom object types.
    pub async fn schemas(&self) -> Result<Vec<ObjectSchema>, Error> {
        let req = ApiRequest::get("schemas", self.paths().schemas());
        Ok(self.send::<Results<ObjectSchema>>(&req).await?.results)
    }

    /// Every owner, active or archived, following the paging to the end.
    pub async fn owners(&self, archived: bool) -> Result<Vec<Owner>, Error> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut req = ApiRequest::get("owners", self.paths().owners()).query("limit", "100");
            if archived {
                req = req.query("archived", "true");
            }
            if let Some(a) = &after {
                req = req.query("after", a.clone());
            }
            let page: ListPage<Owner> = self.send(&req).await?;
            let next = page.next_after().map(str::to_owned);
            out.extend(page.results);
            match next {
                Some(n) if Some(&n) != after.as_ref() => after = Some(n),
                _ => return Ok(out),
            }
        }
    }

    /// The pipelines of `deals` or `tickets`.
    pub async fn pipelines(&self, object: &str) -> Result<Vec<Pipeline>, Error> {
        let req = ApiRequest::get("pipelines", self.paths().pipelines(object));
        Ok(self.send::<Results<Pipeline>>(&req).await?.results)
    }
}
