//! The catalogue of object types the simulator serves: one row per type with the facts that
//! shape how HubSpot serves it (type id, names, cursor and created properties, read scopes,
//! search and merge support, pipelines, default and generated properties, default record count),
//! and one row per association type pair. Everything type-specific in the generator, the API
//! and the gate reads these tables, so a wrong fact is a one-line fix here.
//!
//! Sources: /work/shared/docs/simulator.md (the facts table and its sources: HubSpot's public
//! API spec collection, the object-type-id and associations v4 docs, the official SDKs' enums).
//! Facts marked `// unconfirmed` are best knowledge only.
//!
//! Order matters: a type's index in [`TYPES`] is its index in the portal and part of the seed
//! of its generated values, and the first five rows (the types the simulator served before the
//! catalogue) must stay first and unchanged so the same seed keeps generating the same portal.
//! Append new types at the end.

use super::generate::GenKind;

/// How many records of a type the generator makes by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// One of [`crate::PortalSpec`]'s own fields (the five original types).
    Spec,
    /// Per thousand contacts.
    PerMille(u64),
    /// A fixed number whatever the portal's size (catalogues such as products or taxes).
    Fixed(u64),
}

/// A generated property.
#[derive(Debug)]
pub struct Prop {
    pub name: &'static str,
    pub label: &'static str,
    /// HubSpot's `type`: `string`, `number`, `datetime`, `date`, `enumeration`, `bool`.
    pub kind: &'static str,
    pub field: &'static str,
    pub gen: GenKind,
    pub options: &'static [&'static str],
}

const fn p(name: &'static str, label: &'static str, kind: &'static str, field: &'static str, gen: GenKind) -> Prop {
    Prop { name, label, kind, field, gen, options: &[] }
}

const fn choice(
    name: &'static str,
    label: &'static str,
    field: &'static str,
    options: &'static [&'static str],
) -> Prop {
    Prop { name, label, kind: "enumeration", field, gen: GenKind::Choice(false), options }
}

const fn text(name: &'static str, label: &'static str, gen: GenKind) -> Prop {
    p(name, label, "string", "text", gen)
}

const fn number(name: &'static str, label: &'static str, gen: GenKind) -> Prop {
    p(name, label, "number", "number", gen)
}

const fn datetime(name: &'static str, label: &'static str) -> Prop {
    p(name, label, "datetime", "date", GenKind::DateTime)
}

const OWNER: Prop = p("hubspot_owner_id", "Owner", "enumeration", "select", GenKind::Owner);
const TIMESTAMP: Prop = datetime("hs_timestamp", "Activity date");
const PIPELINE: Prop = p("hs_pipeline", "Pipeline", "enumeration", "select", GenKind::Pipeline);
const STAGE: Prop = p("hs_pipeline_stage", "Pipeline stage", "enumeration", "select", GenKind::Stage);
const ATTACHMENTS: Prop = text("hs_attachment_ids", "Attachment IDs", GenKind::Sentence);
const CURRENCY: Prop = choice("hs_currency_code", "Currency", "select", &["USD", "EUR", "GBP", "JPY"]);
const BILLING_FREQUENCY: Prop =
    choice("recurringbillingfrequency", "Billing frequency", "select", &["monthly", "quarterly", "annually"]);
const BILLING_PERIOD: Prop = choice("hs_recurring_billing_period", "Term", "select", &["P1M", "P12M", "P24M", "P36M"]);

/// A pipeline stage: id, label, metadata.
pub type StageRow = (&'static str, &'static str, &'static [(&'static str, &'static str)]);

/// A pipeline of a type, created with the portal.
#[derive(Debug)]
pub struct PipelineRow {
    pub id: &'static str,
    pub label: &'static str,
    pub stages: &'static [StageRow],
}

/// One object type.
#[derive(Debug)]
pub struct ObjectKind {
    /// Path name (plural, snake_case).
    pub name: &'static str,
    /// `0-n`, or `2-n` for the custom object.
    pub type_id: &'static str,
    /// Singular lower-case name (association error messages, legacy v3 association names).
    pub singular: &'static str,
    /// Upper-case singular (batch-read errors).
    pub upper: &'static str,
    /// The last-modified property search pages by.
    pub cursor: &'static str,
    pub created: &'static str,
    /// Scopes that grant reading the type's records; any one suffices. Write scopes are the
    /// `.read` ones with `.write`, others unchanged.
    pub read_scopes: &'static [&'static str],
    /// Scopes that grant reading the type's property definitions; any one suffices.
    pub schema_scopes: &'static [&'static str],
    /// Whether `POST /crm/v3/objects/{type}/search` exists.
    pub search: bool,
    /// Whether `POST /crm/v3/objects/{type}/merge` exists.
    pub merge: bool,
    /// Pipelines created with the portal; a type has pipelines when this is not empty.
    pub pipelines: &'static [PipelineRow],
    /// Properties list and batch read return when none are requested.
    pub defaults: &'static [&'static str],
    /// Generated properties, after `hs_object_id`, the created and cursor properties and
    /// `hs_merged_object_ids`.
    pub properties: &'static [Prop],
    pub count: Count,
    /// Whether the type is a custom object (its schema is served under `/crm/v3/schemas`).
    pub custom: bool,
}

impl ObjectKind {
    /// Whether the pipelines endpoints serve this type.
    pub fn has_pipelines(&self) -> bool {
        !self.pipelines.is_empty()
    }

    /// Default record count in a portal of `contacts` contacts (`None` for the original five).
    pub fn default_count(&self, contacts: u64) -> Option<u64> {
        match self.count {
            Count::Spec => None,
            Count::PerMille(n) => Some(contacts * n / 1000),
            Count::Fixed(n) => Some(n),
        }
    }
}

const HS_DEFAULTS: &[&str] = &["hs_createdate", "hs_lastmodifieddate", "hs_object_id"];
const CONTACTS_READ: &[&str] = &["crm.objects.contacts.read"];
const LINE_ITEMS_READ: &[&str] = &["crm.objects.line_items.read", "e-commerce"];

const DEAL_STAGE_ROWS: &[StageRow] = &[
    ("appointmentscheduled", "appointmentscheduled", &[("probability", "0.10"), ("isClosed", "false")]),
    ("qualifiedtobuy", "qualifiedtobuy", &[("probability", "0.20"), ("isClosed", "false")]),
    ("presentationscheduled", "presentationscheduled", &[("probability", "0.30"), ("isClosed", "false")]),
    ("decisionmakerboughtin", "decisionmakerboughtin", &[("probability", "0.40"), ("isClosed", "false")]),
    ("contractsent", "contractsent", &[("probability", "0.50"), ("isClosed", "false")]),
    ("closedwon", "closedwon", &[("probability", "1.0"), ("isClosed", "true")]),
    ("closedlost", "closedlost", &[("probability", "0.0"), ("isClosed", "true")]),
];

/// Every type the simulator serves. Deal splits are not here: HubSpot serves them only
/// through `/crm/v3/objects/deals/splits`, not the objects API.
pub static TYPES: &[ObjectKind] = &[
    ObjectKind {
        name: "contacts",
        type_id: "0-1",
        singular: "contact",
        upper: "CONTACT",
        cursor: "lastmodifieddate",
        created: "createdate",
        read_scopes: CONTACTS_READ,
        schema_scopes: &["crm.schemas.contacts.read"],
        search: true,
        merge: true,
        pipelines: &[],
        defaults: &["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
        properties: &[
            text("email", "Email", GenKind::Email),
            text("firstname", "First Name", GenKind::FirstName),
            text("lastname", "Last Name", GenKind::LastName),
            p("phone", "Phone Number", "string", "phonenumber", GenKind::Phone),
            text("jobtitle", "Job Title", GenKind::JobTitle),
            text("city", "City", GenKind::City),
            choice(
                "lifecyclestage",
                "Lifecycle Stage",
                "radio",
                &["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer"],
            ),
            OWNER,
        ],
        count: Count::Spec,
        custom: false,
    },
    ObjectKind {
        name: "companies",
        type_id: "0-2",
        singular: "company",
        upper: "COMPANY",
        cursor: "hs_lastmodifieddate",
        created: "createdate",
        read_scopes: &["crm.objects.companies.read"],
        schema_scopes: &["crm.schemas.companies.read"],
        search: true,
        merge: true,
        pipelines: &[],
        defaults: &["name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"],
        properties: &[
            text("name", "Name", GenKind::CompanyName),
            text("domain", "Company Domain Name", GenKind::Domain),
            text("city", "City", GenKind::City),
            text("country", "Country/Region", GenKind::Country),
            number("numberofemployees", "Number of Employees", GenKind::Integer(100_000)),
            number("annualrevenue", "Annual Revenue", GenKind::Money),
            p("is_public", "Is Public", "bool", "booleancheckbox", GenKind::Bool),
            choice(
                "industry",
                "Industry",
                "select",
                &["COMPUTER_SOFTWARE", "FINANCIAL_SERVICES", "HOSPITAL_HEALTH_CARE", "RETAIL"],
            ),
            OWNER,
        ],
        count: Count::Spec,
        custom: false,
    },
    ObjectKind {
        name: "deals",
        type_id: "0-3",
        singular: "deal",
        upper: "DEAL",
        cursor: "hs_lastmodifieddate",
        created: "createdate",
        read_scopes: &["crm.objects.deals.read"],
        schema_scopes: &["crm.schemas.deals.read"],
        search: true,
        merge: true,
        pipelines: &[
            PipelineRow { id: "default", label: "Sales Pipeline", stages: DEAL_STAGE_ROWS },
            PipelineRow {
                id: "renewals",
                label: "Renewals",
                stages: &[
                    ("renewal_open", "Open", &[("probability", "0.5"), ("isClosed", "false")]),
                    ("renewal_won", "Won", &[("probability", "1.0"), ("isClosed", "true")]),
                    ("renewal_lost", "Lost", &[("probability", "0.0"), ("isClosed", "true")]),
                ],
            },
        ],
        defaults: &[
            "dealname",
            "amount",
            "closedate",
            "pipeline",
            "dealstage",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
        ],
        properties: &[
            text("dealname", "Deal Name", GenKind::CompanyName),
            number("amount", "Amount", GenKind::Money),
            datetime("closedate", "Close Date"),
            p("pipeline", "Pipeline", "enumeration", "select", GenKind::Pipeline),
            p("dealstage", "Deal Stage", "enumeration", "radio", GenKind::Stage),
            OWNER,
        ],
        count: Count::Spec,
        custom: false,
    },
    ObjectKind {
        name: "tickets",
        type_id: "0-5",
        singular: "ticket",
        upper: "TICKET",
        cursor: "hs_lastmodifieddate",
        created: "createdate",
        read_scopes: &["tickets"],
        schema_scopes: &["tickets"],
        search: true,
        merge: true,
        pipelines: &[PipelineRow {
            id: "0",
            label: "Support Pipeline",
            stages: &[
                ("1", "New", &[("ticketState", "OPEN")]),
                ("2", "Waiting on contact", &[("ticketState", "OPEN")]),
                ("3", "Waiting on us", &[("ticketState", "OPEN")]),
                ("4", "Closed", &[("ticketState", "CLOSED")]),
            ],
        }],
        defaults: &[
            "content",
            "hs_pipeline",
            "hs_pipeline_stage",
            "hs_ticket_category",
            "hs_ticket_priority",
            "subject",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
        ],
        properties: &[
            text("subject", "Ticket name", GenKind::Sentence),
            p("content", "Ticket description", "string", "textarea", GenKind::LongText),
            p("hs_pipeline", "Pipeline", "enumeration", "select", GenKind::Pipeline),
            p("hs_pipeline_stage", "Ticket status", "enumeration", "select", GenKind::Stage),
            choice("hs_ticket_priority", "Priority", "select", &["LOW", "MEDIUM", "HIGH", "URGENT"]),
            Prop {
                name: "hs_ticket_category",
                label: "Category",
                kind: "enumeration",
                field: "checkbox",
                gen: GenKind::Choice(true),
                options: &["PRODUCT_ISSUE", "BILLING_ISSUE", "FEATURE_REQUEST", "GENERAL_INQUIRY"],
            },
            OWNER,
        ],
        count: Count::Spec,
        custom: false,
    },
    ObjectKind {
        name: "cars",
        type_id: "2-3508482",
        singular: "car",
        upper: "CAR",
        cursor: "hs_lastmodifieddate",
        created: "hs_createdate",
        read_scopes: &["crm.objects.custom.read"],
        schema_scopes: &["crm.schemas.custom.read"],
        search: true,
        // Whether custom objects merge is unconfirmed; the simulator always allowed it. // unconfirmed
        merge: true,
        pipelines: &[],
        defaults: HS_DEFAULTS,
        properties: &[
            text("make", "Make", GenKind::CompanyName),
            text("model", "Model", GenKind::Sentence),
            number("year", "Year", GenKind::Integer(2030)),
            text("vin", "VIN", GenKind::Vin),
            p("purchase_date", "Purchase date", "date", "date", GenKind::Date),
        ],
        count: Count::Spec,
        custom: true,
    },
    // Engagements: their per-object specs accept `crm.objects.contacts.read` only; the granular
    // `crm.objects.calls.read` etc. appear in the generic spec, and whether they suffice alone
    // is unconfirmed, so they are not accepted here.
    engagement(
        "calls",
        "0-48",
        "call",
        "CALL",
        CONTACTS_READ,
        Count::PerMille(400),
        &[
            TIMESTAMP,
            text("hs_call_title", "Call title", GenKind::Sentence),
            p("hs_call_body", "Call notes", "string", "html", GenKind::LongText),
            number("hs_call_duration", "Call duration (ms)", GenKind::Integer(3_600_000)),
            choice("hs_call_direction", "Call direction", "select", &["INBOUND", "OUTBOUND"]),
            // HubSpot's default call outcomes (`GET /calling/v1/dispositions`). // unconfirmed
            choice(
                "hs_call_disposition",
                "Call outcome",
                "select",
                &[
                    "f240bbac-87c9-4f6e-bf70-924b57d47db7",
                    "73a0d17f-1163-4015-bdd5-ec830791da20",
                    "b2cf5968-551e-4856-9783-52b3da59a7d0",
                    "9d9162e7-6cf3-4944-bf63-4dff82258764",
                    "17b47fee-58de-441e-a44c-c6300d46f273",
                ],
            ),
            choice(
                "hs_call_status",
                "Call status",
                "select",
                &["BUSY", "CANCELED", "COMPLETED", "FAILED", "IN_PROGRESS", "NO_ANSWER", "QUEUED", "RINGING"],
            ),
            p("hs_call_from_number", "From number", "string", "phonenumber", GenKind::Phone),
            p("hs_call_to_number", "To number", "string", "phonenumber", GenKind::Phone),
            OWNER,
        ],
    ),
    engagement(
        "emails",
        "0-49",
        "email",
        "EMAIL",
        &["crm.objects.contacts.read", "sales-email-read"],
        Count::PerMille(600),
        &[
            TIMESTAMP,
            text("hs_email_subject", "Email subject", GenKind::Sentence),
            p("hs_email_text", "Email body", "string", "textarea", GenKind::LongText),
            p("hs_email_html", "Email HTML", "string", "html", GenKind::LongText),
            choice("hs_email_direction", "Email direction", "select", &["EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL"]),
            choice(
                "hs_email_status",
                "Email send status",
                "select",
                &["BOUNCED", "FAILED", "SCHEDULED", "SENDING", "SENT"],
            ),
            text("hs_email_sender_email", "From", GenKind::Email),
            text("hs_email_to_email", "To", GenKind::Email),
            ATTACHMENTS,
            OWNER,
        ],
    ),
    engagement(
        "meetings",
        "0-47",
        "meeting",
        "MEETING",
        CONTACTS_READ,
        Count::PerMille(200),
        &[
            TIMESTAMP,
            text("hs_meeting_title", "Meeting name", GenKind::Sentence),
            p("hs_meeting_body", "Meeting description", "string", "html", GenKind::LongText),
            p("hs_internal_meeting_notes", "Internal notes", "string", "html", GenKind::LongText),
            text("hs_meeting_location", "Location", GenKind::City),
            datetime("hs_meeting_start_time", "Start time"),
            datetime("hs_meeting_end_time", "End time"),
            choice(
                "hs_meeting_outcome",
                "Meeting outcome",
                "select",
                &["SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED"],
            ),
            ATTACHMENTS,
            OWNER,
        ],
    ),
    engagement(
        "notes",
        "0-46",
        "note",
        "NOTE",
        CONTACTS_READ,
        Count::PerMille(600),
        &[TIMESTAMP, p("hs_note_body", "Note body", "string", "html", GenKind::LongText), ATTACHMENTS, OWNER],
    ),
    engagement(
        "tasks",
        "0-27",
        "task",
        "TASK",
        CONTACTS_READ,
        Count::PerMille(400),
        &[
            TIMESTAMP,
            text("hs_task_subject", "Task title", GenKind::Sentence),
            p("hs_task_body", "Task notes", "string", "html", GenKind::LongText),
            choice(
                "hs_task_status",
                "Task status",
                "select",
                &["NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"],
            ),
            choice("hs_task_priority", "Priority", "select", &["NONE", "LOW", "MEDIUM", "HIGH"]),
            choice("hs_task_type", "Task type", "select", &["CALL", "EMAIL", "TODO", "LINKED_IN"]),
            OWNER,
        ],
    ),
    engagement(
        "communications",
        "0-18",
        "communication",
        "COMMUNICATION",
        CONTACTS_READ,
        Count::PerMille(100),
        &[
            TIMESTAMP,
            choice(
                "hs_communication_channel_type",
                "Channel type",
                "select",
                &["SMS", "WHATS_APP", "LINKEDIN_MESSAGE"],
            ),
            choice("hs_communication_logged_from", "Logged from", "select", &["CRM"]),
            p("hs_communication_body", "Body", "string", "html", GenKind::LongText),
            OWNER,
        ],
    ),
    engagement(
        "postal_mail",
        "0-116",
        "postal_mail",
        "POSTAL_MAIL",
        CONTACTS_READ,
        Count::PerMille(20),
        &[TIMESTAMP, p("hs_postal_mail_body", "Body", "string", "html", GenKind::LongText), ATTACHMENTS, OWNER],
    ),
    // Commerce.
    plain(
        "products",
        "0-7",
        "product",
        "PRODUCT",
        "createdate",
        &["crm.objects.products.read", "e-commerce"],
        &["name", "description", "price", "createdate", "hs_lastmodifieddate", "hs_object_id"],
        Count::Fixed(40),
        &[
            text("name", "Name", GenKind::CompanyName),
            p("description", "Description", "string", "textarea", GenKind::Sentence),
            number("price", "Unit price", GenKind::Money),
            text("hs_sku", "SKU", GenKind::Key),
            number("hs_cost_of_goods_sold", "Unit cost", GenKind::Money),
            BILLING_PERIOD,
            BILLING_FREQUENCY,
            choice("hs_product_type", "Product type", "select", &["inventory", "non_inventory", "service"]),
        ],
    ),
    plain(
        "line_items",
        "0-8",
        "line_item",
        "LINE_ITEM",
        // Line items and products carry `createdate` like deals; quotes `hs_createdate`. // unconfirmed
        "createdate",
        LINE_ITEMS_READ,
        &["name", "quantity", "price", "amount", "hs_product_id", "createdate", "hs_lastmodifieddate", "hs_object_id"],
        // About two per deal: 0.3 deals per contact in the default portal.
        Count::PerMille(600),
        &[
            text("name", "Name", GenKind::CompanyName),
            number("quantity", "Quantity", GenKind::Integer(20)),
            number("price", "Unit price", GenKind::Money),
            number("amount", "Net price", GenKind::LineAmount),
            number("hs_product_id", "Product ID", GenKind::ProductId),
            text("hs_sku", "SKU", GenKind::Key),
            number("hs_discount_percentage", "Unit discount (%)", GenKind::Integer(50)),
            BILLING_PERIOD,
            BILLING_FREQUENCY,
            choice("hs_line_item_currency_code", "Currency", "select", &["USD", "EUR", "GBP"]),
            number("hs_position_on_quote", "Position on quote", GenKind::Integer(10)),
        ],
    ),
    plain(
        "quotes",
        "0-14",
        "quote",
        "QUOTE",
        "hs_createdate",
        &["crm.objects.quotes.read", "e-commerce"],
        &[
            "hs_createdate",
            "hs_expiration_date",
            "hs_lastmodifieddate",
            "hs_object_id",
            "hs_public_url_key",
            "hs_status",
            "hs_title",
        ],
        // About 0.3 per deal.
        Count::PerMille(90),
        &[
            text("hs_title", "Quote name", GenKind::Sentence),
            choice(
                "hs_status",
                "Quote approval status",
                "select",
                &["DRAFT", "APPROVAL_NOT_NEEDED", "PENDING_APPROVAL", "APPROVED", "REJECTED"],
            ),
            datetime("hs_expiration_date", "Expiration date"),
            number("hs_quote_amount", "Quote amount", GenKind::Money),
            choice("hs_currency", "Currency", "select", &["USD", "EUR", "GBP"]),
            choice("hs_language", "Language", "select", &["en", "de", "fr", "ja"]),
            text("hs_public_url_key", "Public URL key", GenKind::Key),
            text("hs_sender_email", "Sender email", GenKind::Email),
            p("hs_esign_enabled", "E-signature enabled", "bool", "booleancheckbox", GenKind::Bool),
            OWNER,
        ],
    ),
    with_pipelines(
        plain(
            "orders",
            "0-123",
            "order",
            "ORDER",
            "hs_createdate",
            &["crm.objects.orders.read"],
            HS_DEFAULTS,
            Count::PerMille(100),
            &[
                text("hs_order_name", "Name", GenKind::Sentence),
                CURRENCY,
                number("hs_total_price", "Total", GenKind::Money),
                number("hs_subtotal_price", "Subtotal", GenKind::Money),
                number("hs_tax", "Tax", GenKind::Money),
                number("hs_shipping_cost", "Shipping cost", GenKind::Money),
                text("hs_external_order_id", "External order ID", GenKind::Key),
                choice("hs_source_store", "Source store", "select", &["shopify", "woocommerce", "hubspot"]),
                choice(
                    "hs_fulfillment_status",
                    "Fulfillment status",
                    "select",
                    &["unfulfilled", "partial", "fulfilled", "restocked"],
                ),
                text("hs_shipping_address_city", "Shipping city", GenKind::City),
                PIPELINE,
                STAGE,
            ],
        ),
        &[PipelineRow {
            id: "default",
            label: "Orders pipeline",
            stages: &[
                ("open", "Open", &[]),
                ("processed", "Processed", &[]),
                ("shipped", "Shipped", &[]),
                ("delivered", "Delivered", &[]),
                ("cancelled", "Cancelled", &[]),
            ],
        }],
    ),
    plain(
        "carts",
        "0-142",
        "cart",
        "CART",
        "hs_createdate",
        &["crm.objects.carts.read"],
        HS_DEFAULTS,
        Count::PerMille(50),
        &[
            text("hs_cart_name", "Name", GenKind::Sentence),
            CURRENCY,
            number("hs_total_price", "Total", GenKind::Money),
            number("hs_subtotal_price", "Subtotal", GenKind::Money),
            number("hs_tax", "Tax", GenKind::Money),
            text("hs_external_cart_id", "External cart ID", GenKind::Key),
            choice("hs_source_store", "Source store", "select", &["shopify", "woocommerce", "hubspot"]),
            text("hs_cart_url", "Cart URL", GenKind::Key),
        ],
    ),
    plain(
        "invoices",
        "0-53",
        "invoice",
        "INVOICE",
        "hs_createdate",
        &["crm.objects.invoices.read"],
        HS_DEFAULTS,
        Count::PerMille(100),
        &[
            choice("hs_invoice_status", "Invoice status", "select", &["draft", "open", "paid", "voided"]),
            choice("hs_currency", "Currency", "select", &["USD", "EUR", "GBP"]),
            datetime("hs_invoice_date", "Invoice date"),
            datetime("hs_due_date", "Due date"),
            number("hs_amount_billed", "Amount billed", GenKind::Money),
            number("hs_balance_due", "Balance due", GenKind::Money),
            text("hs_number", "Invoice number", GenKind::Key),
            OWNER,
        ],
    ),
    plain(
        "commerce_payments",
        "0-101",
        "commerce_payment",
        "COMMERCE_PAYMENT",
        "createdate",
        &["crm.objects.commercepayments.read"],
        &["createdate", "hs_initial_amount", "hs_lastmodifieddate", "hs_latest_status", "hs_object_id"],
        Count::PerMille(100),
        &[
            number("hs_initial_amount", "Gross amount", GenKind::Money),
            number("hs_net_amount", "Net amount", GenKind::Money),
            choice(
                "hs_latest_status",
                "Status",
                "select",
                &["succeeded", "processing", "failed", "refunded", "partially_refunded"],
            ),
            choice("hs_payment_method_type", "Payment method", "select", &["card", "ach", "sepa"]),
            CURRENCY,
            text("hs_customer_email", "Customer email", GenKind::Email),
            choice("hs_processor_type", "Processor", "select", &["hubspot", "stripe"]),
            datetime("hs_initiated_date", "Payment date"),
        ],
    ),
    plain(
        "subscriptions",
        "0-69",
        "subscription",
        "SUBSCRIPTION",
        "hs_createdate",
        &["crm.objects.subscriptions.read"],
        HS_DEFAULTS,
        Count::PerMille(50),
        &[
            text("hs_name", "Name", GenKind::Sentence),
            choice(
                "hs_status",
                "Status",
                "select",
                &["active", "past_due", "canceled", "expired", "scheduled", "paused"],
            ),
            datetime("hs_recurring_billing_start_date", "Start date"),
            datetime("hs_next_payment_due_date", "Next payment due date"),
            number("hs_last_payment_amount", "Last payment amount", GenKind::Money),
            choice(
                "hs_recurring_billing_frequency",
                "Billing frequency",
                "select",
                &["monthly", "quarterly", "annually"],
            ),
            CURRENCY,
        ],
    ),
    price_modifier("discounts", "0-84", "discount", "DISCOUNT", LINE_ITEMS_READ, Count::Fixed(10)),
    price_modifier("fees", "0-85", "fee", "FEE", LINE_ITEMS_READ, Count::Fixed(5)),
    price_modifier("taxes", "0-86", "tax", "TAX", &["crm.objects.line_items.read"], Count::Fixed(5)),
    // Other objects.
    with_pipelines(
        plain(
            "leads",
            "0-136",
            "lead",
            "LEAD",
            "hs_createdate",
            &["crm.objects.leads.read"],
            HS_DEFAULTS,
            Count::PerMille(200),
            &[
                text("hs_lead_name", "Lead name", GenKind::Sentence),
                choice("hs_lead_type", "Lead type", "select", &["NEW_BUSINESS", "UPSELL", "RE_ATTEMPTING"]),
                choice("hs_lead_label", "Lead label", "select", &["COLD", "WARM", "HOT"]),
                PIPELINE,
                STAGE,
                OWNER,
            ],
        ),
        &[PipelineRow {
            id: "lead-pipeline-id",
            label: "Lead pipeline",
            stages: &[
                ("new-stage-id", "New", &[]),
                ("attempting-stage-id", "Attempting", &[]),
                ("connected-stage-id", "Connected", &[]),
                ("qualified-stage-id", "Qualified", &[]),
                ("unqualified-stage-id", "Disqualified", &[]),
            ],
        }],
    ),
    plain(
        "goal_targets",
        "0-74",
        "goal_target",
        "GOAL_TARGET",
        "hs_createdate",
        &["crm.objects.goals.read"],
        HS_DEFAULTS,
        Count::Fixed(20),
        &[
            text("hs_goal_name", "Goal name", GenKind::Sentence),
            number("hs_target_amount", "Target", GenKind::Money),
            datetime("hs_start_datetime", "Start date"),
            datetime("hs_end_datetime", "End date"),
            OWNER,
        ],
    ),
    plain(
        "feedback_submissions",
        "0-19",
        "feedback_submission",
        "FEEDBACK_SUBMISSION",
        "hs_createdate",
        &["crm.objects.contacts.read", "crm.objects.feedback_submissions.read"],
        HS_DEFAULTS,
        Count::PerMille(100),
        &[
            text("hs_survey_id", "Survey ID", GenKind::Key),
            choice("hs_survey_type", "Survey type", "select", &["NPS", "CSAT", "CES", "CUSTOM"]),
            choice("hs_survey_channel", "Survey channel", "select", &["EMAIL", "WEB", "LINK"]),
            number("hs_value", "Response value", GenKind::Integer(11)),
            choice("hs_sentiment", "Sentiment", "select", &["Promoter", "Passive", "Detractor"]),
            p("hs_content", "Response", "string", "textarea", GenKind::Sentence),
        ],
    ),
    with_pipelines(
        plain(
            "listings",
            "0-420",
            "listing",
            "LISTING",
            "hs_createdate",
            &["crm.objects.listings.read"],
            HS_DEFAULTS,
            Count::PerMille(20),
            &[
                text("hs_name", "Listing name", GenKind::Sentence),
                number("hs_price", "Listing price", GenKind::Money),
                text("hs_address_1", "Address", GenKind::Sentence),
                text("hs_city", "City", GenKind::City),
                number("hs_bedrooms", "Bedrooms", GenKind::Integer(8)),
                number("hs_bathrooms", "Bathrooms", GenKind::Integer(5)),
                number("hs_square_footage", "Square footage", GenKind::Integer(10_000)),
                choice("hs_listing_type", "Listing type", "select", &["house", "townhouse", "apartment", "land"]),
                PIPELINE,
                STAGE,
                OWNER,
            ],
        ),
        &[PipelineRow {
            id: "default",
            label: "Listings pipeline",
            stages: &[
                ("coming_soon", "Coming soon", &[]),
                ("active", "Active", &[]),
                ("under_contract", "Under contract", &[]),
                ("sold", "Sold", &[]),
                ("withdrawn", "Withdrawn", &[]),
            ],
        }],
    ),
    with_pipelines(
        plain(
            "appointments",
            "0-421",
            "appointment",
            "APPOINTMENT",
            "hs_createdate",
            &["crm.objects.appointments.read"],
            HS_DEFAULTS,
            Count::PerMille(50),
            &[
                text("hs_appointment_name", "Appointment name", GenKind::Sentence),
                datetime("hs_appointment_start", "Start"),
                datetime("hs_appointment_end", "End"),
                PIPELINE,
                STAGE,
                OWNER,
            ],
        ),
        &[PipelineRow {
            id: "default",
            label: "Appointments pipeline",
            stages: &[
                ("scheduled", "Scheduled", &[]),
                ("completed", "Completed", &[]),
                ("canceled", "Canceled", &[]),
                ("no_show", "No show", &[]),
            ],
        }],
    ),
    with_pipelines(
        plain(
            "courses",
            "0-410",
            "course",
            "COURSE",
            "hs_createdate",
            &["crm.objects.courses.read"],
            HS_DEFAULTS,
            Count::Fixed(10),
            &[
                text("hs_course_name", "Course name", GenKind::Sentence),
                p("hs_description", "Description", "string", "textarea", GenKind::Sentence),
                PIPELINE,
                STAGE,
                OWNER,
            ],
        ),
        &[PipelineRow {
            id: "default",
            label: "Courses pipeline",
            stages: &[("draft", "Draft", &[]), ("open", "Open", &[]), ("closed", "Closed", &[])],
        }],
    ),
    with_pipelines(
        plain(
            "services",
            "0-162",
            "service",
            "SERVICE",
            "hs_createdate",
            &["crm.objects.services.read"],
            HS_DEFAULTS,
            Count::Fixed(10),
            &[
                text("hs_name", "Service name", GenKind::Sentence),
                p("hs_description", "Description", "string", "textarea", GenKind::Sentence),
                PIPELINE,
                STAGE,
                OWNER,
            ],
        ),
        &[PipelineRow {
            id: "default",
            label: "Services pipeline",
            stages: &[
                ("planned", "Planned", &[]),
                ("in_progress", "In progress", &[]),
                ("delivered", "Delivered", &[]),
            ],
        }],
    ),
    plain(
        "users",
        "0-115",
        "user",
        "USER",
        "hs_createdate",
        &["crm.objects.users.read"],
        HS_DEFAULTS,
        Count::Fixed(25),
        &[
            text("hs_email", "Email", GenKind::Email),
            text("hs_given_name", "First name", GenKind::FirstName),
            text("hs_family_name", "Last name", GenKind::LastName),
            number("hs_internal_user_id", "User ID", GenKind::Integer(10_000_000)),
            text("hs_job_title", "Job title", GenKind::JobTitle),
            choice("hs_availability_status", "Availability", "select", &["available", "away"]),
            OWNER,
        ],
    ),
    // HubSpot's contracts document has list, get and batch read but no search
    // (https://developers.hubspot.com/docs/api-reference/crm-contracts-v3/guide, type id 0-721).
    ObjectKind {
        search: false,
        ..plain(
            "contracts",
            "0-721",
            "contract",
            "CONTRACT",
            "hs_createdate",
            &["crm.objects.contracts.read"],
            HS_DEFAULTS,
            Count::PerMille(30),
            &[
                text("hs_name", "Contract name", GenKind::Sentence),
                CURRENCY,
                p("hs_contract_effective_date", "Effective start date", "date", "date", GenKind::Date),
                p("hs_contract_end_date", "End date", "date", "date", GenKind::Date),
                number("hs_total_contract_value", "Total contract value", GenKind::Money),
                choice("hs_status", "Status", "select", &["DRAFT", "ACTIVE", "EXPIRED"]),
                OWNER,
            ],
        )
    },
];

/// A type with HubSpot's usual newer-object facts: `hs_lastmodifieddate` cursor (best
/// knowledge for most of them, see the facts table), search, no merge, no pipelines, schema
/// reads granted by the object's read scopes. // unconfirmed: the properties API's scopes
#[allow(clippy::too_many_arguments)]
const fn plain(
    name: &'static str,
    type_id: &'static str,
    singular: &'static str,
    upper: &'static str,
    created: &'static str,
    read_scopes: &'static [&'static str],
    defaults: &'static [&'static str],
    count: Count,
    properties: &'static [Prop],
) -> ObjectKind {
    ObjectKind {
        name,
        type_id,
        singular,
        upper,
        cursor: "hs_lastmodifieddate",
        created,
        read_scopes,
        schema_scopes: read_scopes,
        search: true,
        merge: false,
        pipelines: &[],
        defaults,
        properties,
        count,
        custom: false,
    }
}

const fn engagement(
    name: &'static str,
    type_id: &'static str,
    singular: &'static str,
    upper: &'static str,
    read_scopes: &'static [&'static str],
    count: Count,
    properties: &'static [Prop],
) -> ObjectKind {
    plain(name, type_id, singular, upper, "hs_createdate", read_scopes, HS_DEFAULTS, count, properties)
}

const fn with_pipelines(kind: ObjectKind, pipelines: &'static [PipelineRow]) -> ObjectKind {
    ObjectKind { pipelines, ..kind }
}

const PRICE_MODIFIER_PROPS: &[Prop] = &[
    text("hs_label", "Label", GenKind::Sentence),
    choice("hs_type", "Type", "select", &["PERCENT", "FIXED"]),
    number("hs_value", "Value", GenKind::Integer(100)),
    choice("hs_duration", "Duration", "select", &["ONCE", "FOREVER"]),
    number("hs_sort_order", "Sort order", GenKind::Integer(10)),
];

/// Discounts, fees and taxes share one shape. // unconfirmed: properties are best knowledge
const fn price_modifier(
    name: &'static str,
    type_id: &'static str,
    singular: &'static str,
    upper: &'static str,
    read_scopes: &'static [&'static str],
    count: Count,
) -> ObjectKind {
    plain(name, type_id, singular, upper, "hs_createdate", read_scopes, HS_DEFAULTS, count, PRICE_MODIFIER_PROPS)
}

/// How the generator links records of an association pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    /// The original pairs, generated by their own code as before the catalogue existed.
    Original,
    /// Each record of the `from` type links to one random record of the `to` type with this
    /// percent chance.
    Percent(u32),
}

/// An association type pair: from, to, the unlabeled type id and its inverse, labeled types
/// `(typeId, inverse, category, label)`, and how the generator links records.
pub type AssociationRow = (&'static str, &'static str, u32, u32, &'static [Labeled], Links);
pub type Labeled = (u32, u32, &'static str, &'static str);

/// HubSpot-defined association types the simulator serves. The first seven rows are the
/// original pairs and stay first. An inverse HubSpot documents in only one direction is the
/// documented id ±1, HubSpot's usual pairing. // unconfirmed where marked
pub static ASSOCIATIONS: &[AssociationRow] = &[
    (
        "contacts",
        "companies",
        279,
        280,
        &[(1, 2, "HUBSPOT_DEFINED", "Primary"), (28, 29, "USER_DEFINED", "Billing contact")],
        Links::Original,
    ),
    ("contacts", "deals", 4, 3, &[(30, 31, "USER_DEFINED", "Decision maker")], Links::Original),
    ("contacts", "tickets", 15, 16, &[], Links::Original),
    ("deals", "companies", 341, 342, &[(5, 6, "HUBSPOT_DEFINED", "Primary")], Links::Original),
    ("tickets", "companies", 339, 340, &[(26, 25, "HUBSPOT_DEFINED", "Primary")], Links::Original),
    ("deals", "tickets", 27, 28, &[], Links::Original),
    ("cars", "contacts", 117, 118, &[(119, 120, "USER_DEFINED", "Driver")], Links::Original),
    // Engagements to contacts, companies, deals and tickets.
    ("calls", "contacts", 194, 193, &[], Links::Percent(90)),
    ("calls", "companies", 182, 181, &[], Links::Percent(50)),
    ("calls", "deals", 206, 205, &[], Links::Percent(30)),
    ("calls", "tickets", 220, 219, &[], Links::Percent(10)),
    ("emails", "contacts", 198, 197, &[], Links::Percent(90)),
    ("emails", "companies", 186, 185, &[], Links::Percent(50)),
    ("emails", "deals", 210, 209, &[], Links::Percent(30)),
    ("emails", "tickets", 224, 223, &[], Links::Percent(10)),
    ("meetings", "contacts", 200, 199, &[], Links::Percent(90)),
    ("meetings", "companies", 188, 187, &[], Links::Percent(50)),
    ("meetings", "deals", 212, 211, &[], Links::Percent(30)),
    ("meetings", "tickets", 226, 225, &[], Links::Percent(10)),
    ("notes", "contacts", 202, 201, &[], Links::Percent(90)),
    ("notes", "companies", 190, 189, &[], Links::Percent(50)),
    ("notes", "deals", 214, 213, &[], Links::Percent(30)),
    ("notes", "tickets", 228, 227, &[], Links::Percent(10)),
    ("tasks", "contacts", 204, 203, &[], Links::Percent(90)),
    ("tasks", "companies", 192, 191, &[], Links::Percent(50)),
    ("tasks", "deals", 216, 215, &[], Links::Percent(30)),
    ("tasks", "tickets", 230, 229, &[], Links::Percent(10)),
    ("communications", "contacts", 81, 82, &[], Links::Percent(90)),
    ("communications", "companies", 87, 88, &[], Links::Percent(50)),
    ("communications", "deals", 85, 86, &[], Links::Percent(30)),
    ("communications", "tickets", 83, 84, &[], Links::Percent(10)),
    ("postal_mail", "contacts", 453, 454, &[], Links::Percent(90)),
    ("postal_mail", "companies", 459, 460, &[], Links::Percent(50)),
    ("postal_mail", "deals", 457, 458, &[], Links::Percent(30)),
    ("postal_mail", "tickets", 455, 456, &[], Links::Percent(10)),
    ("tasks", "quotes", 218, 217, &[], Links::Percent(2)),
    // Commerce. Line items have no association to products: they carry `hs_product_id`.
    ("line_items", "deals", 20, 19, &[], Links::Percent(100)),
    ("quotes", "deals", 64, 63, &[], Links::Percent(100)),
    ("quotes", "line_items", 67, 68, &[], Links::Percent(100)),
    ("quotes", "contacts", 69, 70, &[], Links::Percent(80)),
    ("quotes", "companies", 71, 72, &[], Links::Percent(60)),
    ("quotes", "discounts", 362, 363, &[], Links::Percent(20)), // unconfirmed inverse
    ("quotes", "fees", 364, 365, &[], Links::Percent(10)),      // unconfirmed inverse
    ("quotes", "taxes", 366, 367, &[], Links::Percent(30)),     // unconfirmed inverse
    ("orders", "contacts", 507, 508, &[], Links::Percent(90)),
    ("orders", "companies", 509, 510, &[], Links::Percent(50)),
    ("orders", "deals", 512, 511, &[], Links::Percent(40)),
    ("orders", "line_items", 513, 514, &[], Links::Percent(100)), // unconfirmed inverse
    ("orders", "carts", 593, 592, &[], Links::Percent(20)),
    ("tickets", "orders", 526, 525, &[], Links::Percent(5)),
    ("carts", "contacts", 586, 587, &[], Links::Percent(90)),
    ("carts", "line_items", 590, 591, &[], Links::Percent(100)), // unconfirmed inverse
    ("invoices", "contacts", 177, 178, &[], Links::Percent(90)), // unconfirmed id (inverse documented)
    ("invoices", "companies", 179, 180, &[], Links::Percent(50)), // unconfirmed id (inverse documented)
    ("invoices", "deals", 175, 176, &[], Links::Percent(40)),    // unconfirmed id (inverse documented)
    ("orders", "invoices", 518, 517, &[], Links::Percent(20)),   // unconfirmed inverse
    ("commerce_payments", "contacts", 387, 388, &[], Links::Percent(90)), // unconfirmed id (inverse documented)
    ("commerce_payments", "companies", 389, 390, &[], Links::Percent(50)), // unconfirmed id (inverse documented)
    ("commerce_payments", "deals", 391, 392, &[], Links::Percent(30)), // unconfirmed id (inverse documented)
    ("subscriptions", "contacts", 295, 296, &[], Links::Percent(90)), // unconfirmed id (inverse documented)
    ("subscriptions", "companies", 297, 298, &[], Links::Percent(50)), // unconfirmed id (inverse documented)
    ("subscriptions", "deals", 299, 300, &[], Links::Percent(30)), // unconfirmed id (inverse documented)
    // Leads: the unlabeled and primary contact ids are documented, their inverses are not.
    ("leads", "contacts", 608, 609, &[(578, 579, "HUBSPOT_DEFINED", "Primary")], Links::Percent(100)), // unconfirmed inverses
    ("leads", "companies", 610, 611, &[], Links::Percent(70)), // unconfirmed inverse
    ("feedback_submissions", "contacts", 98, 97, &[], Links::Percent(95)),
    ("feedback_submissions", "tickets", 100, 99, &[], Links::Percent(30)),
];

/// Properties a create must set, by type: HubSpot refuses a task or a note without
/// `hs_timestamp` (its objects guide's required-properties table, the tasks and notes guides;
/// the answer is captured in PipedreamHQ/pipedream #12366: "Error creating TASK. Some required
/// properties were not set."). Other types' required properties are not modelled.
pub static REQUIRED_ON_CREATE: &[(&str, &[&str])] = &[("tasks", &["hs_timestamp"]), ("notes", &["hs_timestamp"])];

/// HubSpot's association-count rollups: `(object, property, label, counted type)`. The portal
/// keeps each equal to the number of live records of the counted type the record is associated
/// with, without moving its last-modified time. Names and labels: docs/hubspot-properties.md.
pub static ROLLUPS: &[(&str, &str, &str, &str)] = &[
    ("contacts", "num_associated_deals", "Number of Associated Deals", "deals"),
    ("companies", "num_associated_contacts", "Number of Associated Contacts", "contacts"),
    ("companies", "num_associated_deals", "Number of Associated Deals", "deals"),
    ("deals", "num_associated_contacts", "Number of Contacts", "contacts"),
    ("deals", "hs_num_of_associated_line_items", "Number of Line Items", "line_items"),
];

/// HubSpot's searchable phone numbers: `(object, property, label, phone property)`. Each holds
/// the national number of the phone property's value, digits only (`phone::searchable`), so that
/// a search can find the record by area code and local number, as HubSpot's search guide says
/// ("searched through `hs_searchable_calculated_*` properties using only area code + local
/// number"). The portal derives the value from the phone property whenever it is read, so it
/// follows every write of it; a type gets the property only when it has the phone property.
/// Definitions: the catalogue's rows (read-only, calculated) where it has them.
pub static SEARCHABLE_PHONES: &[(&str, &str, &str, &str)] = &[
    ("contacts", "hs_searchable_calculated_phone_number", "Calculated Phone Number without country code", "phone"),
    (
        "contacts",
        "hs_searchable_calculated_mobile_number",
        "Calculated Mobile Number without country code",
        "mobilephone",
    ),
    ("companies", "hs_searchable_calculated_phone_number", "Calculated Phone Number without country code", "phone"),
];

/// One of HubSpot's own property definitions from `data/hubspot-properties.tsv`: the names,
/// types and flags a real portal lists beyond what the simulator generates values for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedProperty {
    pub object: &'static str,
    pub name: &'static str,
    pub label: &'static str,
    pub kind: &'static str,
    pub field: &'static str,
    pub group: &'static str,
    /// `r` readOnlyValue, `c` calculated, `u` hasUniqueValue, `h` hidden, `x` externalOptions,
    /// `s` sensitive, `S` highly sensitive.
    pub flags: &'static str,
}

const LISTED: &str = include_str!("../data/hubspot-properties.tsv");

/// HubSpot's own property definitions listed for `object` (a header line, then one row per
/// property; the file's last column names where each row was seen).
pub fn listed_properties(object: &str) -> impl Iterator<Item = ListedProperty> + '_ {
    LISTED.lines().skip(1).filter(|l| !l.trim().is_empty()).filter_map(move |line| {
        let mut cols = line.split('\t');
        let row = ListedProperty {
            object: cols.next()?,
            name: cols.next()?,
            label: cols.next()?,
            kind: cols.next()?,
            field: cols.next()?,
            group: cols.next()?,
            flags: cols.next().unwrap_or(""),
        };
        (row.object == object).then_some(row)
    })
}

/// The catalogue row of a type by path name.
pub fn kind(name: &str) -> Option<&'static ObjectKind> {
    TYPES.iter().find(|k| k.name == name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn names_type_ids_and_association_ids_are_unique_and_pairs_name_served_types() {
        let names: BTreeSet<_> = TYPES.iter().map(|k| k.name).collect();
        assert_eq!(names.len(), TYPES.len());
        let ids: BTreeSet<_> = TYPES.iter().map(|k| k.type_id).collect();
        assert_eq!(ids.len(), TYPES.len());
        assert!(!names.contains("deal_splits"), "HubSpot serves deal splits outside the objects API");
        let mut type_ids = BTreeSet::new();
        for (from, to, unlabeled, inverse, labeled, _) in ASSOCIATIONS {
            assert!(names.contains(from) && names.contains(to), "{from} -> {to}");
            for (a, b) in std::iter::once((*unlabeled, *inverse)).chain(labeled.iter().map(|l| (l.0, l.1))) {
                assert!(type_ids.insert((*from, *to, a)), "{from} -> {to} {a} twice");
                assert!(type_ids.insert((*to, *from, b)), "{to} -> {from} {b} twice");
            }
        }
    }

    #[test]
    fn every_default_and_pipeline_property_is_generated() {
        for k in TYPES {
            let generated: BTreeSet<&str> =
                k.properties.iter().map(|p| p.name).chain(["hs_object_id", k.created, k.cursor]).collect();
            for d in k.defaults {
                assert!(generated.contains(d), "{}: default {d} is not a property", k.name);
            }
            let has_stage = k.properties.iter().any(|p| p.gen == GenKind::Stage);
            assert_eq!(has_stage, k.has_pipelines(), "{}: stage property iff pipelines", k.name);
        }
    }
}
