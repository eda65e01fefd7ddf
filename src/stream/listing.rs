//! The read path of object types without search (the catalogue's [`ReadPath::List`], such as
//! contracts): pages of HubSpot's list endpoint, resumed from the opaque `after` cursor HubSpot
//! gives. It owns how a page of records is fetched so that a wide portal never meets `414 URI
//! Too Long`: the property names go into the URL only while they fit [`URL_PROPERTIES_MAX`];
//! beyond that a page lists ids alone and batch-reads the records with the properties in the
//! body (two calls per 100 records instead of one).
//!
//! List cannot filter by last-modified time, so CDC over this path lists every record's id and
//! cursor (one call per 100 records a pass) and batch-reads only the changed ones; `hsync
//! plan` shows that cost. Search is never called for these types: HubSpot refuses it.
//!
//! [`ReadPath::List`]: crate::hubspot::ReadPath::List

use crate::hubspot::model::CrmObject;
use crate::hubspot::{HubSpotClient, ListParams, ObjectRef};

/// HubSpot's list page maximum.
pub const PAGE: u32 = 100;
/// The longest comma-joined property list sent in a list URL. HubSpot documents no URL limit;
/// 2,000 bytes keeps the whole URL within what every proxy and CDN on the way accepts.
pub const URL_PROPERTIES_MAX: usize = 2_000;
const ID_PROPERTY: &str = "hs_object_id";

/// One page of a list walk.
#[derive(Debug, Default)]
pub struct Page {
    pub records: Vec<CrmObject>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
    /// The ids HubSpot listed, in its order (a record gone before its batch read is listed
    /// but not in `records`).
    pub listed: Vec<String>,
    /// HubSpot calls the page took.
    pub calls: u64,
}

/// Whether `properties` fit in a list URL (see [`URL_PROPERTIES_MAX`]).
pub fn fits_in_url(properties: &[String]) -> bool {
    properties.iter().map(|p| p.len() + 1).sum::<usize>() <= URL_PROPERTIES_MAX
}

/// The list calls one record costs with `properties`: 1/100, or 2/100 when they do not fit
/// in the URL.
pub fn calls_per_page(properties: &[String]) -> u64 {
    if fits_in_url(properties) {
        1
    } else {
        2
    }
}

/// The page of live records of `object` starting at `after` (the start when `None`), with
/// `properties` (the id always included).
pub async fn page(
    client: &HubSpotClient,
    object: &ObjectRef,
    after: Option<&str>,
    properties: &[String],
) -> Result<Page, crate::hubspot::Error> {
    if fits_in_url(properties) {
        let listed = client.list(&object.api_name, &params(after, properties.to_vec())).await?;
        let next = listed.next_after().map(str::to_owned);
        let ids = listed.results.iter().map(|r| r.id.clone()).collect();
        return Ok(Page { records: listed.results, next, listed: ids, calls: 1 });
    }
    let ids = client.list(&object.api_name, &params(after, vec![ID_PROPERTY.to_owned()])).await?;
    let next = ids.next_after().map(str::to_owned);
    if ids.results.is_empty() {
        return Ok(Page { records: Vec::new(), next, listed: Vec::new(), calls: 1 });
    }
    let wanted: Vec<String> = ids.results.into_iter().map(|r| r.id).collect();
    // An id listed and gone before the read was archived or deleted meanwhile: the deletes
    // reconcile finds it, and a page never waits for it.
    let read = client.batch_read(&object.api_name, &wanted, properties, false).await?;
    Ok(Page { records: read.found, next, listed: wanted, calls: 2 })
}

fn params(after: Option<&str>, properties: Vec<String>) -> ListParams {
    ListParams { limit: PAGE, after: after.map(str::to_owned), properties, archived: false }
}

/// Reads back by id (100 per call, properties in the body) the live records among `ids`.
pub async fn read(
    client: &HubSpotClient,
    object: &ObjectRef,
    ids: &[String],
    properties: &[String],
) -> Result<Vec<CrmObject>, crate::hubspot::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(client.batch_read(&object.api_name, ids, properties, false).await?.found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_go_in_the_url_only_while_they_fit() {
        let names = |n: usize| (0..n).map(|i| format!("property_{i:05}")).collect::<Vec<_>>();
        // 15 bytes a name with its comma.
        assert!(fits_in_url(&names(133)));
        assert_eq!(calls_per_page(&names(133)), 1);
        assert!(!fits_in_url(&names(134)));
        assert_eq!(calls_per_page(&names(134)), 2);
    }
}
