//! The object catalogue: the one table of facts about every CRM object type HubSpot serves
//! through the objects API (`/crm/v3/objects/{type}`), and the types it serves elsewhere.
//!
//! Every fact here is HubSpot's documented behaviour; `docs/objects.md` gives the source of each
//! (HubSpot's per-object OpenAPI documents and developer guides) and marks what is best
//! knowledge. A type's entry decides how hsync reads it: types with search are backfilled by
//! an id keyset over search and kept current by CDC on their last-modified property; a type
//! without search is read through the list endpoint (see [`ReadPath`]), whose cost `hsync
//! plan` shows before anything runs. Custom objects share one entry ([`CUSTOM`]): their names
//! and type ids come from the schemas API.

/// The catalogue's grouping, as HubSpot's documentation groups the types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Contacts, companies, deals, tickets.
    Core,
    /// Activities: calls, emails, meetings, notes, tasks, communications, postal mail.
    Engagement,
    /// Products, line items, quotes, orders, carts, invoices, payments, subscriptions and the
    /// quote adjustments (discounts, fees, taxes), and contracts.
    Commerce,
    /// Leads, goals, feedback, the activated objects (listings, appointments, courses,
    /// services) and users.
    Other,
    /// Portal-defined objects (`2-<n>`).
    Custom,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Core => "core",
            Family::Engagement => "engagement",
            Family::Commerce => "commerce",
            Family::Other => "other",
            Family::Custom => "custom",
        }
    }
}

/// How the backfill and CDC read a type's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPath {
    /// `POST …/search`: an id keyset for the backfill (200 per call), the last-modified
    /// cursor for CDC (only changed records are read).
    Search,
    /// `GET …/{type}` pages of 100 record ids, then `POST …/batch/read` of 100 (properties in
    /// the body, so a wide portal never meets `414 URI Too Long`): two calls per 100 records.
    /// List cannot filter by last-modified time, so every CDC pass re-reads the whole type and
    /// writes what changed.
    List,
}

impl ReadPath {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadPath::Search => "search",
            ReadPath::List => "list",
        }
    }
}

/// The record endpoints HubSpot serves for a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// `POST /crm/v3/objects/{type}/search`.
    pub search: bool,
    /// `GET /crm/v3/objects/{type}` (every catalogue type has it).
    pub list: bool,
    /// `POST /crm/v3/objects/{type}/batch/read`.
    pub batch_read: bool,
    /// `GET /crm/v3/objects/{type}?archived=true` (the recycle bin).
    pub archived: bool,
    /// `POST /crm/v3/objects/{type}/merge`: merged records leave `hs_merged_object_ids`.
    pub merge: bool,
    /// The associations v4 endpoints.
    pub associations: bool,
}

/// Every endpoint but merge: what HubSpot's per-object documents give most types.
const READABLE: Endpoints =
    Endpoints { search: true, list: true, batch_read: true, archived: true, merge: false, associations: true };
/// Every endpoint: the four core types.
const MERGEABLE: Endpoints = Endpoints { merge: true, ..READABLE };
/// List and batch read only (contracts).
const LIST_ONLY: Endpoints = Endpoints { search: false, ..READABLE };

/// What hsync knows about one object type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectType {
    /// The path name (`line_items`), also the warehouse table's name.
    pub name: &'static str,
    /// HubSpot's type id (`0-8`); paths accept it in place of the name.
    pub type_id: &'static str,
    pub family: Family,
    /// The last-modified property search filters and sorts on.
    pub cursor_property: &'static str,
    pub endpoints: Endpoints,
    /// The read scopes HubSpot accepts for the type's records: any one of them is enough.
    pub read_scopes: &'static [&'static str],
    /// The properties that carry the type's meaning (HubSpot's defaults where it documents
    /// them): shown in the README, and what a narrow `sync.include_properties` should keep.
    pub key_properties: &'static [&'static str],
    /// Whether `GET /crm/v3/pipelines/{type}` serves pipelines for it.
    pub pipelines: bool,
    /// The properties whose every version `sync.history = { <type> = ["default"] }` keeps: the
    /// stages, statuses, owners and amounts analysts trend (empty: no default).
    pub history_properties: &'static [&'static str],
}

impl ObjectType {
    /// How records are read: search when HubSpot serves it, else the list endpoint.
    pub fn read_path(&self) -> ReadPath {
        if self.endpoints.search {
            ReadPath::Search
        } else {
            ReadPath::List
        }
    }

    /// The scopes a token needs, as one phrase (`crm.objects.line_items.read or e-commerce`).
    pub fn scope_phrase(&self) -> String {
        self.read_scopes.join(" or ")
    }
}

const LMD: &str = "lastmodifieddate";
const HS_LMD: &str = "hs_lastmodifieddate";
/// Engagements are read with the contacts scope: HubSpot's per-object documents list no other.
const CONTACTS_READ: &[&str] = &["crm.objects.contacts.read"];
const LINE_ITEMS_READ: &[&str] = &["crm.objects.line_items.read", "e-commerce"];

const fn object(
    name: &'static str,
    type_id: &'static str,
    family: Family,
    read_scopes: &'static [&'static str],
    key_properties: &'static [&'static str],
) -> ObjectType {
    ObjectType {
        name,
        type_id,
        family,
        cursor_property: HS_LMD,
        endpoints: READABLE,
        read_scopes,
        key_properties,
        pipelines: false,
        history_properties: &[],
    }
}

/// The history every type with pipelines keeps by default, except deals (which name theirs
/// `pipeline` and `dealstage`).
const PIPELINE_HISTORY: &[&str] = &["hs_pipeline", "hs_pipeline_stage"];

const fn with_pipelines(t: ObjectType) -> ObjectType {
    ObjectType { pipelines: true, history_properties: PIPELINE_HISTORY, ..t }
}

const fn with_history(t: ObjectType, history_properties: &'static [&'static str]) -> ObjectType {
    ObjectType { history_properties, ..t }
}

const fn with_endpoints(t: ObjectType, endpoints: Endpoints) -> ObjectType {
    ObjectType { endpoints, ..t }
}

/// Every type HubSpot serves through the objects API, in the README's order.
pub const CATALOGUE: &[ObjectType] = &[
    ObjectType {
        cursor_property: LMD,
        ..with_history(
            with_endpoints(
                object(
                    "contacts",
                    "0-1",
                    Family::Core,
                    &["crm.objects.contacts.read"],
                    &["email", "firstname", "lastname", "lifecyclestage", "hubspot_owner_id"],
                ),
                MERGEABLE,
            ),
            &["lifecyclestage", "hs_lead_status", "hubspot_owner_id"],
        )
    },
    with_history(
        with_endpoints(
            object(
                "companies",
                "0-2",
                Family::Core,
                &["crm.objects.companies.read"],
                &["name", "domain", "industry", "hubspot_owner_id"],
            ),
            MERGEABLE,
        ),
        &["lifecyclestage", "hubspot_owner_id"],
    ),
    with_history(
        with_pipelines(with_endpoints(
            object(
                "deals",
                "0-3",
                Family::Core,
                &["crm.objects.deals.read"],
                &["dealname", "amount", "closedate", "pipeline", "dealstage", "hubspot_owner_id"],
            ),
            MERGEABLE,
        )),
        &["dealstage", "amount", "closedate", "hubspot_owner_id", "pipeline"],
    ),
    with_history(
        with_pipelines(with_endpoints(
            object(
                "tickets",
                "0-5",
                Family::Core,
                &["tickets"],
                &["subject", "content", "hs_pipeline", "hs_pipeline_stage", "hs_ticket_priority"],
            ),
            MERGEABLE,
        )),
        &["hs_pipeline_stage", "hs_pipeline", "hubspot_owner_id"],
    ),
    object(
        "calls",
        "0-48",
        Family::Engagement,
        CONTACTS_READ,
        &[
            "hs_timestamp",
            "hs_call_title",
            "hs_call_body",
            "hs_call_direction",
            "hs_call_duration",
            "hs_call_disposition",
            "hs_call_status",
        ],
    ),
    object(
        "emails",
        "0-49",
        Family::Engagement,
        &["crm.objects.contacts.read", "sales-email-read"],
        &["hs_timestamp", "hs_email_direction", "hs_email_subject", "hs_email_text", "hs_email_status"],
    ),
    object(
        "meetings",
        "0-47",
        Family::Engagement,
        CONTACTS_READ,
        &[
            "hs_timestamp",
            "hs_meeting_title",
            "hs_meeting_body",
            "hs_meeting_start_time",
            "hs_meeting_end_time",
            "hs_meeting_outcome",
        ],
    ),
    object("notes", "0-46", Family::Engagement, CONTACTS_READ, &["hs_timestamp", "hs_note_body", "hubspot_owner_id"]),
    object(
        "tasks",
        "0-27",
        Family::Engagement,
        CONTACTS_READ,
        &["hs_timestamp", "hs_task_subject", "hs_task_body", "hs_task_status", "hs_task_priority", "hs_task_type"],
    ),
    object(
        "communications",
        "0-18",
        Family::Engagement,
        CONTACTS_READ,
        &["hs_timestamp", "hs_communication_channel_type", "hs_communication_body"],
    ),
    object("postal_mail", "0-116", Family::Engagement, CONTACTS_READ, &["hs_timestamp", "hs_postal_mail_body"]),
    object(
        "products",
        "0-7",
        Family::Commerce,
        &["crm.objects.products.read", "e-commerce"],
        &["name", "description", "price", "hs_sku"],
    ),
    object(
        "line_items",
        "0-8",
        Family::Commerce,
        LINE_ITEMS_READ,
        &["name", "quantity", "price", "amount", "hs_product_id"],
    ),
    object(
        "quotes",
        "0-14",
        Family::Commerce,
        &["crm.objects.quotes.read", "e-commerce"],
        &["hs_title", "hs_status", "hs_expiration_date"],
    ),
    with_pipelines(object(
        "orders",
        "0-123",
        Family::Commerce,
        &["crm.objects.orders.read"],
        &["hs_order_name", "hs_currency_code", "hs_pipeline", "hs_pipeline_stage"],
    )),
    object("carts", "0-142", Family::Commerce, &["crm.objects.carts.read"], &["hs_cart_name", "hs_total_price"]),
    object(
        "invoices",
        "0-53",
        Family::Commerce,
        &["crm.objects.invoices.read"],
        &["hs_invoice_status", "hs_amount_billed", "hs_balance_due", "hs_due_date"],
    ),
    object(
        "commerce_payments",
        "0-101",
        Family::Commerce,
        &["crm.objects.commercepayments.read"],
        &["hs_initial_amount", "hs_latest_status"],
    ),
    object("subscriptions", "0-69", Family::Commerce, &["crm.objects.subscriptions.read"], &["hs_name", "hs_status"]),
    object("discounts", "0-84", Family::Commerce, LINE_ITEMS_READ, &["hs_label", "hs_type", "hs_value"]),
    object("fees", "0-85", Family::Commerce, LINE_ITEMS_READ, &["hs_label", "hs_type", "hs_value"]),
    object("taxes", "0-86", Family::Commerce, &["crm.objects.line_items.read"], &["hs_label", "hs_type", "hs_value"]),
    with_endpoints(
        object(
            "contracts",
            "0-721",
            Family::Commerce,
            &["crm.objects.contracts.read"],
            &["hs_name", "hs_currency_code", "hs_contract_effective_date"],
        ),
        LIST_ONLY,
    ),
    with_pipelines(object(
        "leads",
        "0-136",
        Family::Other,
        &["crm.objects.leads.read"],
        &["hs_lead_name", "hs_lead_type", "hs_lead_label", "hs_pipeline", "hs_pipeline_stage"],
    )),
    object(
        "goal_targets",
        "0-74",
        Family::Other,
        &["crm.objects.goals.read"],
        &["hs_goal_name", "hs_target_amount", "hs_start_datetime", "hs_end_datetime"],
    ),
    object(
        "feedback_submissions",
        "0-19",
        Family::Other,
        &["crm.objects.contacts.read", "crm.objects.feedback_submissions.read"],
        &["hs_survey_type", "hs_value", "hs_sentiment", "hs_content"],
    ),
    with_pipelines(object(
        "listings",
        "0-420",
        Family::Other,
        &["crm.objects.listings.read"],
        &["hs_name", "hs_price", "hs_city", "hs_pipeline", "hs_pipeline_stage"],
    )),
    with_pipelines(object(
        "appointments",
        "0-421",
        Family::Other,
        &["crm.objects.appointments.read"],
        &["hs_appointment_name", "hs_appointment_start", "hs_appointment_end", "hs_pipeline", "hs_pipeline_stage"],
    )),
    with_pipelines(object(
        "courses",
        "0-410",
        Family::Other,
        &["crm.objects.courses.read"],
        &["hs_course_name", "hs_pipeline", "hs_pipeline_stage"],
    )),
    with_pipelines(object(
        "services",
        "0-162",
        Family::Other,
        &["crm.objects.services.read"],
        &["hs_name", "hs_pipeline", "hs_pipeline_stage"],
    )),
    object(
        "users",
        "0-115",
        Family::Other,
        &["crm.objects.users.read"],
        &["hs_internal_user_id", "hs_email", "hs_given_name", "hs_family_name"],
    ),
];

/// Custom objects: names and type ids from the schemas API, every endpoint but merge, and
/// pipelines only when the portal defines some (HubSpot refuses the path otherwise).
pub const CUSTOM: ObjectType = ObjectType {
    name: "custom",
    type_id: "2-<n>",
    family: Family::Custom,
    cursor_property: HS_LMD,
    endpoints: READABLE,
    read_scopes: &["crm.objects.custom.read"],
    key_properties: &[],
    pipelines: true,
    history_properties: &[],
};

/// A name people sync from HubSpot that the objects API does not serve, and where HubSpot
/// serves it instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServedElsewhere {
    pub name: &'static str,
    pub served_by: &'static str,
}

/// Names a user may put in `sync.objects` that are not objects-API types.
pub const SERVED_ELSEWHERE: &[ServedElsewhere] = &[
    ServedElsewhere {
        name: "deal_splits",
        served_by: "POST /crm/v3/objects/deals/splits/batch/read, per deal id (Sales Hub Enterprise, scope crm.dealsplits.read_write); hsync does not read deal splits yet",
    },
    ServedElsewhere { name: "owners", served_by: "the owners API; hsync keeps the owners table (`hsync dimensions`)" },
    ServedElsewhere {
        name: "pipelines",
        served_by: "the pipelines API; hsync keeps the pipelines and pipeline_stages tables (`hsync dimensions`)",
    },
];

/// Properties HubSpot refuses to create a record without, by object name: a task or a note
/// without `hs_timestamp` gets "Some required properties were not set"
/// (docs/hubspot-write-api.md §5). Other types' create rules are not listed.
pub static REQUIRED_ON_CREATE: &[(&str, &[&str])] = &[("tasks", &["hs_timestamp"]), ("notes", &["hs_timestamp"])];

/// The properties a create of `object` must set ([`REQUIRED_ON_CREATE`]).
pub fn required_on_create(object: &str) -> &'static [&'static str] {
    REQUIRED_ON_CREATE.iter().find(|(name, _)| *name == object).map_or(&[], |(_, names)| names)
}

/// The catalogue type named `name` (its path name or type id).
pub fn find(name: &str) -> Option<&'static ObjectType> {
    CATALOGUE.iter().find(|t| t.name == name || t.type_id == name)
}

/// Where HubSpot serves `name` when the objects API does not.
pub fn served_elsewhere(name: &str) -> Option<&'static ServedElsewhere> {
    SERVED_ELSEWHERE.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_type_ids_are_unique() {
        for (i, a) in CATALOGUE.iter().enumerate() {
            for b in &CATALOGUE[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.type_id, b.type_id, "{} and {}", a.name, b.name);
            }
            assert!(a.type_id.starts_with("0-"), "{}", a.name);
            assert!(!a.read_scopes.is_empty(), "{}", a.name);
        }
    }

    #[test]
    fn found_by_name_or_type_id() {
        assert_eq!(find("0-48").map(|t| t.name), Some("calls"));
        assert_eq!(find("line_items").map(|t| t.type_id), Some("0-8"));
        assert_eq!(find("deal_splits"), None);
        assert!(served_elsewhere("deal_splits").is_some());
    }

    #[test]
    fn contacts_alone_use_lastmodifieddate() {
        for t in CATALOGUE {
            let expected = if t.name == "contacts" { "lastmodifieddate" } else { "hs_lastmodifieddate" };
            assert_eq!(t.cursor_property, expected, "{}", t.name);
        }
    }

    #[test]
    fn a_type_without_search_is_read_through_the_list() {
        assert_eq!(find("contracts").map(ObjectType::read_path), Some(ReadPath::List));
        assert_eq!(find("calls").map(ObjectType::read_path), Some(ReadPath::Search));
        let merges: Vec<&str> = CATALOGUE.iter().filter(|t| t.endpoints.merge).map(|t| t.name).collect();
        assert_eq!(merges, ["contacts", "companies", "deals", "tickets"]);
    }

    #[test]
    fn docs_objects_md_lists_every_type_as_the_catalogue_has_it() {
        let doc = include_str!("../../docs/objects.md");
        for t in CATALOGUE {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| {} | ", t.name)))
                .unwrap_or_else(|| panic!("docs/objects.md has no row for {}", t.name));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(cells[2], t.type_id, "{row}");
            assert_eq!(cells[3], t.family.as_str(), "{row}");
            assert_eq!(cells[4], t.read_path().as_str(), "{row}");
            assert_eq!(cells[5], t.read_scopes.join(", "), "{row}");
            assert_eq!(cells[6], if t.endpoints.merge { "yes" } else { "no" }, "{row}");
            assert_eq!(cells[7], if t.pipelines { "yes" } else { "no" }, "{row}");
        }
    }

    #[test]
    fn default_history_is_among_each_types_properties_and_covers_every_pipeline_stage() {
        for t in CATALOGUE {
            if t.pipelines {
                let stage = if t.name == "deals" { "dealstage" } else { "hs_pipeline_stage" };
                assert!(t.history_properties.contains(&stage), "{} keeps its stage history", t.name);
            }
            let mut seen = t.history_properties.to_vec();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), t.history_properties.len(), "{} names a property twice", t.name);
        }
        assert!(find("calls").unwrap().history_properties.is_empty(), "engagements keep no history by default");
    }

    #[test]
    fn pipelines_where_hubspot_documents_them() {
        let with: Vec<&str> = CATALOGUE.iter().filter(|t| t.pipelines).map(|t| t.name).collect();
        assert_eq!(with, ["deals", "tickets", "orders", "leads", "listings", "appointments", "courses", "services"]);
    }
}
