//! The simulated portal: object types, property definitions, records, the search index with its
//! lag, associations, owners and pipelines, and every mutation the API and the admin API make.
//!
//! Records store only what was written to them; the values of generated properties are derived
//! on demand from the seed (see `generate`), so a portal of millions of records stays small.
//!
//! Property history (`propertiesWithHistory`) follows the same split: a record keeps a linked log
//! of the writes made after the portal was generated (newest first, shared between the record's
//! versions, so a write costs one node), and the versions a seeded record had before that are
//! derived from the seed when asked for (`generate::seeded_history`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::catalogue::{ObjectKind, PipelineRow};
use super::generate::{self, GenKind};
use super::phone;

/// Milliseconds since the Unix epoch, the simulator's only time unit.
pub type Millis = i64;

/// Index of an object type in [`Portal::types`].
pub type TypeIdx = usize;

/// The facts the simulator needs about one object type.
#[derive(Clone, Debug)]
pub struct ObjectTypeDef {
    /// Path name, e.g. `contacts` (plural), or the custom object's name.
    pub name: String,
    /// `0-1` style id, or `2-<n>` for custom objects.
    pub type_id: String,
    /// Fully qualified name for custom objects (`p<portal>_<name>`).
    pub fully_qualified_name: Option<String>,
    /// Singular lower-case name used in association error messages (`contact`).
    pub singular: String,
    /// Upper-case singular used in batch-read errors (`CONTACT`).
    pub upper: String,
    /// The last-modified property: `lastmodifieddate` for contacts, `hs_lastmodifieddate` else.
    pub cursor_property: &'static str,
    /// The created-at property: `createdate`, or `hs_createdate` for custom objects.
    pub created_property: &'static str,
    /// Properties returned by search and list when none are requested.
    pub default_properties: Vec<&'static str>,
    /// Whether the type is a custom object.
    pub custom: bool,
    /// The type's catalogue row: scopes, search and merge support, pipelines.
    pub kind: &'static ObjectKind,
}

/// Where a property's value comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum PropSource {
    /// `hs_object_id`.
    ObjectId,
    /// `createdate` / `hs_createdate`.
    CreatedAt,
    /// The object's cursor property.
    UpdatedAt,
    /// `hs_merged_object_ids`.
    MergedIds,
    /// Derived from the seed unless overwritten.
    Generated(GenKind),
    /// Only what was written.
    Stored,
    /// HubSpot's association-count rollup (`num_associated_deals`): how many live records of the
    /// named type the record is associated with. The portal keeps it up to date as
    /// associations change ([`Portal::recount`]), as a calculated version that does not move
    /// the record's last-modified time.
    AssociationCount(&'static str),
    /// HubSpot's searchable phone number (`hs_searchable_calculated_phone_number`): the named
    /// phone property's value as `phone::searchable` gives it. Derived whenever it is read, so
    /// it follows every write of the phone property, moves last-modified only as that write
    /// does, and its versions are the phone's, as `CALCULATED`.
    SearchablePhone(&'static str),
}

/// How sensitive a property's values are (HubSpot's `dataSensitivity`). The definitions list
/// shows one level per call (`?dataSensitivity=`, `non_sensitive` by default), so a client that
/// never asks does not see sensitive properties at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sensitivity {
    #[default]
    NonSensitive,
    Sensitive,
    HighlySensitive,
}

impl Sensitivity {
    pub fn as_str(self) -> &'static str {
        match self {
            Sensitivity::NonSensitive => "non_sensitive",
            Sensitivity::Sensitive => "sensitive",
            Sensitivity::HighlySensitive => "highly_sensitive",
        }
    }

    pub fn parse(text: &str) -> Option<Sensitivity> {
        [Sensitivity::NonSensitive, Sensitivity::Sensitive, Sensitivity::HighlySensitive]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A property definition, in the simulator's own terms.
#[derive(Clone, Debug)]
pub struct PropertyDef {
    pub name: String,
    pub label: String,
    pub kind: String,
    pub field_type: String,
    pub group: String,
    pub options: Vec<(String, String)>,
    pub calculated: bool,
    pub unique: bool,
    pub hidden: bool,
    pub hubspot_defined: bool,
    pub read_only: bool,
    pub archived_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub display_order: i64,
    pub source: PropSource,
    pub sensitivity: Sensitivity,
}

impl PropertyDef {
    /// Whether search compares values of this property as numbers.
    pub fn is_numeric(&self) -> bool {
        self.kind == "number"
    }

    /// Whether search compares values of this property as instants.
    pub fn is_temporal(&self) -> bool {
        self.kind == "date" || self.kind == "datetime"
    }
}

/// Who made a write, as a property version names it (`sourceType`, `sourceId`,
/// `updatedByUserId`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteSource {
    /// A user in HubSpot's UI (the admin API's writes): `CRM_UI`, `userId:<id>`, the user id.
    User(u64),
    /// An app through the public API: `INTEGRATION`, the app id.
    Integration(u64),
    /// HubSpot itself (record id, created and last-modified dates, merged ids): `CALCULATED`.
    Calculated,
}

/// The app id of the simulator's API writes (the `sourceId` of their `INTEGRATION` versions).
pub const API_APP_ID: u64 = 3_141_592;

/// One version of a property's value, as `propertiesWithHistory` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    pub value: String,
    pub at: Millis,
    pub source: WriteSource,
}

/// One write of a record after the portal was generated, linked to the write before it.
pub struct Write {
    pub at: Millis,
    pub source: WriteSource,
    /// Whether this write created the record: its history has no seeded versions before it.
    pub creation: bool,
    /// The record's last-modified time before this write: the oldest write's bounds the
    /// seeded versions.
    pub updated_before: Millis,
    /// The properties written and their new values (`None`: cleared).
    pub values: Vec<(String, Option<String>)>,
    pub earlier: Option<Arc<Write>>,
}

impl std::fmt::Debug for Write {
    // The chain can be long: show this write only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Write")
            .field("at", &self.at)
            .field("source", &self.source)
            .field("creation", &self.creation)
            .field("updated_before", &self.updated_before)
            .field("values", &self.values)
            .field("earlier", &self.earlier.is_some())
            .finish()
    }
}

impl Drop for Write {
    // Unlink iteratively: dropping a long chain recursively would overflow the stack.
    fn drop(&mut self) {
        let mut next = self.earlier.take();
        while let Some(write) = next {
            next = match Arc::try_unwrap(write) {
                Ok(mut only) => only.earlier.take(),
                Err(_) => None,
            };
        }
    }
}

/// One record version. Versions are immutable; a write makes a new one.
#[derive(Clone, Debug)]
pub struct Record {
    pub id: u64,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub archived_at: Option<Millis>,
    /// Explicit writes; `None` means the property was cleared.
    pub written: BTreeMap<String, Option<String>>,
    pub merged_ids: Vec<u64>,
    /// Values sent as this JSON text instead of their written string (the admin API's hostile
    /// data: lone surrogate escapes, numbers or objects where HubSpot documents strings). A
    /// later write of the property drops its override.
    pub raw_json: BTreeMap<String, Box<serde_json::value::RawValue>>,
    /// The newest write made after the portal was generated (`None` for a seeded record never
    /// written since).
    pub last_write: Option<Arc<Write>>,
}

impl Record {
    /// The writes made after the portal was generated, newest first.
    pub fn writes(&self) -> impl Iterator<Item = &Write> {
        std::iter::successors(self.last_write.as_deref(), |w| w.earlier.as_deref())
    }

    /// Appends a write to the record's log. Call it before moving `updated_at`: every mutation
    /// that moves it is logged (a write of no property too), so that the seeded versions keep
    /// the bounds they were generated with.
    fn log_write(&mut self, at: Millis, source: WriteSource, values: Vec<(String, Option<String>)>, creation: bool) {
        let earlier = self.last_write.take();
        let updated_before = self.updated_at;
        self.last_write = Some(Arc::new(Write { at, source, creation, updated_before, values, earlier }));
    }
}

/// The property definitions of one type, with a name index.
#[derive(Clone, Debug, Default)]
pub struct PropertySet {
    pub defs: Vec<PropertyDef>,
    by_name: HashMap<String, usize>,
}

impl PropertySet {
    pub fn new(defs: Vec<PropertyDef>) -> Self {
        let by_name = defs.iter().enumerate().map(|(i, d)| (d.name.clone(), i)).collect();
        PropertySet { defs, by_name }
    }

    pub fn get(&self, name: &str) -> Option<&PropertyDef> {
        self.by_name.get(name).map(|&i| &self.defs[i])
    }

    /// The position of a property in `defs`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// A live (not archived) property by name.
    pub fn live(&self, name: &str) -> Option<&PropertyDef> {
        self.get(name).filter(|d| d.archived_at.is_none())
    }

    pub fn push(&mut self, def: PropertyDef) {
        self.by_name.insert(def.name.clone(), self.defs.len());
        self.defs.push(def);
    }
}

/// Everything needed to compute a record's property values outside the portal lock.
#[derive(Clone, Debug)]
pub struct ValueContext {
    pub seed: u64,
    pub type_idx: TypeIdx,
    pub properties: Arc<PropertySet>,
    pub owner_ids: Arc<Vec<u64>>,
    /// The pipelines the type was generated with (values of pipeline and stage properties).
    pub pipelines: &'static [PipelineRow],
    /// Ids of the generated products (values of `hs_product_id`).
    pub product_ids: Arc<Vec<u64>>,
    /// User ids of the generated active owners (who made the seeded versions).
    pub user_ids: Arc<Vec<u64>>,
}

impl ValueContext {
    /// The value HubSpot would send for `prop` on `rec`, or `None` when it has none.
    pub fn value<'a>(&self, rec: &'a Record, prop: &PropertyDef) -> Option<Cow<'a, str>> {
        if let Some(written) = rec.written.get(&prop.name) {
            return written.as_deref().map(Cow::Borrowed);
        }
        match &prop.source {
            PropSource::ObjectId => Some(Cow::Owned(rec.id.to_string())),
            PropSource::CreatedAt => Some(Cow::Owned(iso_millis(rec.created_at))),
            PropSource::UpdatedAt => Some(Cow::Owned(iso_millis(rec.updated_at))),
            PropSource::MergedIds => (!rec.merged_ids.is_empty()).then(|| {
                let ids: Vec<String> = rec.merged_ids.iter().map(u64::to_string).collect();
                Cow::Owned(ids.join(";"))
            }),
            PropSource::Generated(kind) => generate::value(self, kind, rec.id, prop).map(Cow::Owned),
            PropSource::SearchablePhone(phone) => {
                let phone = self.properties.get(phone)?;
                phone::searchable(&self.value(rec, phone)?).map(Cow::Owned)
            }
            PropSource::Stored | PropSource::AssociationCount(_) => None,
        }
    }

    /// The versions of `prop` on `rec`, newest first (among writes in the same millisecond, the
    /// later first); empty when the property never had a value. The newest version's value is
    /// the current value; a cleared value is an empty-string version, as HubSpot records it.
    /// Raw JSON overrides are not versions: their history shows the value the portal holds.
    pub fn history(&self, rec: &Record, prop: &PropertyDef) -> Vec<Version> {
        let calculated = |at| {
            self.value(rec, prop)
                .map(|v| Version { value: v.into_owned(), at, source: WriteSource::Calculated })
                .into_iter()
                .collect()
        };
        match &prop.source {
            PropSource::ObjectId | PropSource::CreatedAt => calculated(rec.created_at),
            PropSource::UpdatedAt => calculated(rec.updated_at),
            PropSource::SearchablePhone(phone) => {
                let Some(phone) = self.properties.get(phone) else { return Vec::new() };
                // Oldest first, a version each time the searchable form changes (a cleared or
                // digit-less phone clears it), newest first again at the end.
                let mut versions: Vec<Version> = Vec::new();
                for v in self.history(rec, phone).into_iter().rev() {
                    let value = phone::searchable(&v.value).unwrap_or_default();
                    if versions.last().map_or("", |last| last.value.as_str()) != value {
                        versions.push(Version { value, at: v.at, source: WriteSource::Calculated });
                    }
                }
                versions.reverse();
                versions
            }
            source => {
                let mut versions = Vec::new();
                let mut oldest = None;
                for write in rec.writes() {
                    oldest = Some(write);
                    if let Some((_, v)) = write.values.iter().find(|(name, _)| *name == prop.name) {
                        let value = v.clone().unwrap_or_default();
                        versions.push(Version { value, at: write.at, source: write.source });
                    }
                }
                let seeded_until = match oldest {
                    Some(write) if write.creation => None,
                    Some(write) => Some(write.updated_before),
                    None => Some(rec.updated_at),
                };
                if let (PropSource::Generated(kind), Some(until)) = (source, seeded_until) {
                    versions.extend(generate::seeded_history(self, kind, rec.id, rec.created_at, until, prop));
                }
                versions
            }
        }
    }
}

/// Formats epoch milliseconds as HubSpot does: ISO 8601 UTC, dropping a zero fraction the way
/// Java's `Instant.toString()` does.
pub fn iso_millis(ms: Millis) -> String {
    let dt = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    // `to_rfc3339_opts` writes the digits directly; `format` would parse a pattern on every call,
    // and rendering pages calls this several times per record.
    let fraction = if ms.rem_euclid(1000) == 0 { chrono::SecondsFormat::Secs } else { chrono::SecondsFormat::Millis };
    dt.to_rfc3339_opts(fraction, true)
}

/// A change waiting to become visible to search.
#[derive(Clone, Debug)]
struct PendingIndexWrite {
    visible_at: Millis,
    id: u64,
    version: Option<Arc<Record>>,
}

/// What search sees: a lagging copy of the live records with sorted keys for range scans.
#[derive(Clone, Debug, Default)]
pub struct SearchIndex {
    records: HashMap<u64, Arc<Record>>,
    by_id: Vec<u64>,
    by_updated: Vec<(Millis, u64, u64)>,
    sorted: bool,
    pending: Vec<PendingIndexWrite>,
}

/// Order among equal sort keys is unspecified in HubSpot; the simulator makes it deterministic
/// but unrelated to the id, so a client that assumes id order within ties is caught.
pub fn tie_key(id: u64) -> u64 {
    let mut x = id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl SearchIndex {
    fn put_now(&mut self, id: u64, version: Option<Arc<Record>>) {
        match version {
            Some(v) => {
                self.records.insert(id, v);
            }
            None => {
                self.records.remove(&id);
            }
        }
        self.sorted = false;
    }

    /// Adds a record at build time; keys are sorted on the first search.
    pub fn insert_unsorted(&mut self, rec: Arc<Record>) {
        self.records.insert(rec.id, rec);
        self.sorted = false;
    }

    fn enqueue(&mut self, now: Millis, lag: Millis, id: u64, version: Option<Arc<Record>>) {
        if lag <= 0 {
            self.put_now(id, version);
        } else {
            self.pending.push(PendingIndexWrite { visible_at: now + lag, id, version });
        }
    }

    /// Applies the writes whose lag has passed and re-sorts the keys if anything changed.
    pub fn catch_up(&mut self, now: Millis) {
        if !self.pending.is_empty() {
            let (due, waiting): (Vec<_>, Vec<_>) =
                std::mem::take(&mut self.pending).into_iter().partition(|p| p.visible_at <= now);
            self.pending = waiting;
            let mut due = due;
            due.sort_by_key(|p| p.visible_at);
            for p in due {
                self.put_now(p.id, p.version);
            }
        }
        if !self.sorted {
            self.by_id = self.records.keys().copied().collect();
            self.by_id.sort_unstable();
            self.by_updated = self.records.values().map(|r| (r.updated_at, tie_key(r.id), r.id)).collect();
            self.by_updated.sort_unstable();
            self.sorted = true;
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn get(&self, id: u64) -> Option<&Arc<Record>> {
        self.records.get(&id)
    }

    /// Ids in ascending order (valid after `catch_up`).
    pub fn ids(&self) -> &[u64] {
        &self.by_id
    }

    /// `(updated_at, tie, id)` in ascending order (valid after `catch_up`).
    pub fn by_updated(&self) -> &[(Millis, u64, u64)] {
        &self.by_updated
    }
}

/// All records of one object type.
#[derive(Debug)]
pub struct ObjectStore {
    pub def: ObjectTypeDef,
    pub properties: Arc<PropertySet>,
    pub live: BTreeMap<u64, Arc<Record>>,
    pub archived: BTreeMap<u64, Arc<Record>>,
    /// Absorbed id to surviving id.
    pub merged_into: BTreeMap<u64, u64>,
    pub gdpr_deleted: BTreeSet<u64>,
    pub index: SearchIndex,
    /// A stale replica of `index`: a copy frozen when the admin API took it. HubSpot's search
    /// is served by replicas that can lag one another, so a query can see older versions of
    /// records than the query before it did; searches are served from here while
    /// [`Portal::replica_reads`] lasts.
    pub replica: Option<SearchIndex>,
}

/// An association type between two object types, in one direction.
#[derive(Clone, Debug, PartialEq)]
pub struct AssociationType {
    pub from: TypeIdx,
    pub to: TypeIdx,
    pub type_id: u32,
    pub category: &'static str,
    pub label: Option<String>,
    /// The type id of the same association seen from the other side.
    pub inverse: u32,
    /// Whether this is the pair's unlabeled default type.
    pub unlabeled: bool,
}

/// Targets of one record: `(to type, to id)` to the set of type ids.
pub type EdgeTargets = BTreeMap<(TypeIdx, u64), BTreeSet<u32>>;

/// A HubSpot user who can own records.
#[derive(Clone, Debug)]
pub struct Owner {
    pub id: u64,
    pub user_id: u64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// `(id, name, primary)` of each team the owner belongs to.
    pub teams: Vec<(u64, String, bool)>,
    pub archived: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A pipeline with its stages.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub id: String,
    pub label: String,
    pub display_order: i64,
    pub archived: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub stages: Vec<PipelineStage>,
}

/// One stage of a pipeline; `metadata` holds HubSpot's string map (`probability`,
/// `isClosed`, `ticketState`).
#[derive(Clone, Debug)]
pub struct PipelineStage {
    pub id: String,
    pub label: String,
    pub display_order: i64,
    pub archived: bool,
    pub metadata: BTreeMap<String, String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// Why a mutation was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum MutationError {
    NotFound(u64),
    UnknownProperty(String),
    ReadOnlyProperty(String),
    PropertyExists(String),
    NoAssociationType { from: String, to: String, type_id: u32 },
    Invalid(String),
}

impl std::fmt::Display for MutationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MutationError::NotFound(id) => write!(f, "Object not found.  objectId are usually numeric. ({id})"),
            MutationError::UnknownProperty(p) => write!(f, "Property \"{p}\" does not exist"),
            MutationError::ReadOnlyProperty(p) => write!(f, "Property \"{p}\" is read only"),
            MutationError::PropertyExists(p) => write!(f, "A property named \"{p}\" already exists"),
            MutationError::NoAssociationType { from, to, type_id } => {
                write!(f, "association type {type_id} does not exist between {from} and {to}")
            }
            MutationError::Invalid(m) => f.write_str(m),
        }
    }
}

/// A change of a record, as webhooks report it (`webhooks` turns these into events). The portal
/// notes the facts of each mutation while [`Portal::changes`] is on; rollup recounts are not
/// noted, as HubSpot's calculated properties change without a webhook.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub t: TypeIdx,
    pub id: u64,
    /// When it happened: the mutation's `now`, or the record's new last-modified time where the
    /// mutation moved it (a write is never dated before the record's last modification).
    pub at: Millis,
    /// Who wrote the properties, for creates and updates.
    pub writer: Option<WriteSource>,
    pub kind: ChangeKind,
}

/// What a [`Change`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum ChangeKind {
    /// Created with these property values (only the properties given a value).
    Created(Vec<(String, String)>),
    /// These properties now hold these values (`None`: cleared); properties written with the
    /// value they already held are left out.
    Properties(Vec<(String, Option<String>)>),
    /// Moved to the recycle bin.
    Archived,
    /// Brought back from the recycle bin.
    Restored,
    /// Deleted for good (GDPR delete).
    Purged,
    /// `absorbed` was merged into this record, the survivor.
    Merged { absorbed: u64 },
    /// An association with `(to, to_id)` was added or removed (`removed`); `primary` when a
    /// type labeled `Primary` was among the types added or removed.
    Association { to: TypeIdx, to_id: u64, removed: bool, primary: bool },
}

/// The whole simulated portal.
#[derive(Debug)]
pub struct Portal {
    pub portal_id: u64,
    pub seed: u64,
    pub types: Vec<ObjectStore>,
    pub association_types: Vec<AssociationType>,
    pub edges: HashMap<(TypeIdx, u64), EdgeTargets>,
    pub owners: Arc<Vec<Owner>>,
    pub owner_ids: Arc<Vec<u64>>,
    pub pipelines: HashMap<TypeIdx, Vec<Pipeline>>,
    pub next_id: u64,
    pub index_lag_ms: Millis,
    /// How many more searches are answered from the stale replicas (types without one are
    /// answered from their index).
    pub replica_reads: u64,
    /// Targets per input page in association batch reads.
    pub association_page_size: usize,
    /// Ids of the generated products, which line items refer to.
    pub product_ids: Arc<Vec<u64>>,
    /// User ids of the generated active owners: who made the seeded versions, and the default
    /// user of the admin API's writes.
    pub user_ids: Arc<Vec<u64>>,
    /// Changes made since the webhooks last took them; `None` while webhooks are off, so a
    /// portal nobody listens to notes nothing.
    pub changes: Option<Vec<Change>>,
}

impl Portal {
    /// Finds a type by path name, `0-1` style id or fully qualified name.
    pub fn type_idx(&self, name: &str) -> Option<TypeIdx> {
        self.types.iter().position(|s| {
            s.def.name.eq_ignore_ascii_case(name)
                || s.def.type_id == name
                || s.def.fully_qualified_name.as_deref() == Some(name)
                || s.def.singular.eq_ignore_ascii_case(name)
        })
    }

    pub fn store(&self, t: TypeIdx) -> &ObjectStore {
        &self.types[t]
    }

    /// The context needed to render values of type `t`.
    pub fn value_context(&self, t: TypeIdx) -> ValueContext {
        ValueContext {
            seed: self.seed,
            type_idx: t,
            properties: Arc::clone(&self.types[t].properties),
            owner_ids: Arc::clone(&self.owner_ids),
            pipelines: self.types[t].def.kind.pipelines,
            product_ids: Arc::clone(&self.product_ids),
            user_ids: Arc::clone(&self.user_ids),
        }
    }

    /// The user the admin API writes as unless told otherwise: the first generated owner's.
    pub fn default_user(&self) -> u64 {
        self.user_ids.first().copied().unwrap_or(1)
    }

    fn allocate_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Notes a change for the webhooks, if they listen.
    fn note(&mut self, t: TypeIdx, id: u64, at: Millis, writer: Option<WriteSource>, kind: ChangeKind) {
        if let Some(changes) = self.changes.as_mut() {
            changes.push(Change { t, id, at, writer, kind });
        }
    }

    /// Of `props` about to be written to `rec`, those whose value differs from what `rec` holds
    /// (an empty string counts as no value); empty while webhooks are off, to spare the values'
    /// derivation.
    fn changed_values(
        &self,
        t: TypeIdx,
        rec: &Record,
        props: &BTreeMap<String, Option<String>>,
    ) -> Vec<(String, Option<String>)> {
        if self.changes.is_none() {
            return Vec::new();
        }
        let ctx = self.value_context(t);
        let nonempty = |v: Option<&str>| v.filter(|v| !v.is_empty()).map(str::to_owned);
        props
            .iter()
            .filter(|(name, new)| {
                let old = ctx.properties.get(name).and_then(|def| ctx.value(rec, def));
                nonempty(old.as_deref()) != nonempty(new.as_deref())
            })
            .map(|(name, new)| (name.clone(), new.clone()))
            .collect()
    }

    /// The association types between two records, from `from`'s side.
    fn edge_types(&self, from: TypeIdx, from_id: u64, to: TypeIdx, to_id: u64) -> BTreeSet<u32> {
        self.edges.get(&(from, from_id)).and_then(|targets| targets.get(&(to, to_id))).cloned().unwrap_or_default()
    }

    /// Notes an association change between two records when their types went from `before` to
    /// `after`: added types when the set grew, removed ones when it shrank.
    fn note_association(
        &mut self,
        (from, from_id): (TypeIdx, u64),
        (to, to_id): (TypeIdx, u64),
        before: &BTreeSet<u32>,
        now: Millis,
    ) {
        if self.changes.is_none() {
            return;
        }
        let after = self.edge_types(from, from_id, to, to_id);
        let (removed, moved): (bool, Vec<u32>) = if after.len() > before.len() {
            (false, after.difference(before).copied().collect())
        } else if after.len() < before.len() {
            (true, before.difference(&after).copied().collect())
        } else {
            return;
        };
        let primary = self
            .association_types_between(from, to)
            .any(|a| moved.contains(&a.type_id) && a.label.as_deref() == Some("Primary"));
        self.note(from, from_id, now, None, ChangeKind::Association { to, to_id, removed, primary });
    }

    fn check_writable(store: &ObjectStore, props: &BTreeMap<String, Option<String>>) -> Result<(), MutationError> {
        for name in props.keys() {
            let def = store.properties.live(name).ok_or_else(|| MutationError::UnknownProperty(name.clone()))?;
            if def.read_only {
                return Err(MutationError::ReadOnlyProperty(name.clone()));
            }
        }
        Ok(())
    }

    fn publish(&mut self, t: TypeIdx, now: Millis, rec: Arc<Record>) {
        let lag = self.index_lag_ms;
        let store = &mut self.types[t];
        store.index.enqueue(now, lag, rec.id, Some(Arc::clone(&rec)));
        store.live.insert(rec.id, rec);
    }

    fn unpublish(&mut self, t: TypeIdx, now: Millis, id: u64) {
        let lag = self.index_lag_ms;
        self.types[t].index.enqueue(now, lag, id, None);
    }

    /// Creates a record; empty-string values are stored as empty strings, as HubSpot does. Each
    /// property given a value gets its first version at `now`, made by `source`.
    pub fn create(
        &mut self,
        t: TypeIdx,
        now: Millis,
        source: WriteSource,
        props: BTreeMap<String, Option<String>>,
    ) -> Result<Arc<Record>, MutationError> {
        Self::check_writable(&self.types[t], &props)?;
        let id = self.allocate_id();
        let mut written: BTreeMap<String, Option<String>> = BTreeMap::new();
        // A created record has no generated values: everything it holds was written.
        for def in &self.types[t].properties.defs {
            if matches!(def.source, PropSource::Generated(_)) {
                written.insert(def.name.clone(), None);
            }
        }
        let versions: Vec<(String, Option<String>)> =
            props.iter().filter(|(_, v)| v.is_some()).map(|(k, v)| (k.clone(), v.clone())).collect();
        written.extend(props);
        let mut rec = Record {
            id,
            created_at: now,
            updated_at: now,
            archived_at: None,
            written,
            merged_ids: Vec::new(),
            raw_json: BTreeMap::new(),
            last_write: None,
        };
        let set: Vec<(String, String)> =
            versions.iter().filter_map(|(name, v)| v.as_ref().map(|v| (name.clone(), v.clone()))).collect();
        rec.log_write(now, source, versions, true);
        let rec = Arc::new(rec);
        self.publish(t, now, Arc::clone(&rec));
        self.note(t, id, now, Some(source), ChangeKind::Created(set));
        Ok(rec)
    }

    /// Updates a live record and moves its last-modified time to `now`; each written property
    /// gets a version at `now`, made by `source`.
    pub fn update(
        &mut self,
        t: TypeIdx,
        id: u64,
        now: Millis,
        source: WriteSource,
        props: BTreeMap<String, Option<String>>,
    ) -> Result<Arc<Record>, MutationError> {
        Self::check_writable(&self.types[t], &props)?;
        let id = self.resolve_merged(t, id);
        let old = self.types[t].live.get(&id).ok_or(MutationError::NotFound(id))?;
        let mut rec = Record::clone(old);
        // HubSpot stamps a write with its own clock: a version never predates the record's
        // last modification (the current value is always the latest version).
        let at = now.max(rec.updated_at);
        let changed = self.changed_values(t, old, &props);
        rec.raw_json.retain(|name, _| !props.contains_key(name));
        rec.log_write(at, source, props.iter().map(|(k, v)| (k.clone(), v.clone())).collect(), false);
        rec.written.extend(props);
        rec.updated_at = at;
        let rec = Arc::new(rec);
        self.publish(t, now, Arc::clone(&rec));
        if !changed.is_empty() {
            self.note(t, id, at, Some(source), ChangeKind::Properties(changed));
        }
        Ok(rec)
    }

    /// Makes the API send `raw` (property name to JSON text) for a live record's properties from
    /// now on, as an update at `now`; `written` is what the portal holds for them (search and
    /// ground truth).
    pub fn set_raw_json(
        &mut self,
        t: TypeIdx,
        id: u64,
        now: Millis,
        source: WriteSource,
        raw: BTreeMap<String, (Box<serde_json::value::RawValue>, Option<String>)>,
    ) -> Result<Arc<Record>, MutationError> {
        let old = self.types[t].live.get(&id).ok_or(MutationError::NotFound(id))?;
        let mut rec = Record::clone(old);
        let versions: BTreeMap<String, Option<String>> =
            raw.iter().map(|(name, (_, written))| (name.clone(), written.clone())).collect();
        let changed = self.changed_values(t, old, &versions);
        // As in `update`: a version never predates the record's last modification.
        let at = now.max(rec.updated_at);
        rec.log_write(at, source, versions.into_iter().collect(), false);
        for (name, (json, written)) in raw {
            rec.written.insert(name.clone(), written);
            rec.raw_json.insert(name, json);
        }
        rec.updated_at = at;
        let rec = Arc::new(rec);
        self.publish(t, now, Arc::clone(&rec));
        if !changed.is_empty() {
            self.note(t, id, at, Some(source), ChangeKind::Properties(changed));
        }
        Ok(rec)
    }

    /// Basic update accepts ids absorbed by a merge; batch update does not.
    pub fn resolve_merged(&self, t: TypeIdx, id: u64) -> u64 {
        self.types[t].merged_into.get(&id).copied().unwrap_or(id)
    }

    /// Moves a record to the recycle bin.
    pub fn archive(&mut self, t: TypeIdx, id: u64, now: Millis) -> Result<(), MutationError> {
        let old = self.types[t].live.remove(&id).ok_or(MutationError::NotFound(id))?;
        let mut rec = Record::clone(&old);
        rec.archived_at = Some(now);
        self.types[t].archived.insert(id, Arc::new(rec));
        self.unpublish(t, now, id);
        self.recount_around(t, id, now);
        self.note(t, id, now, None, ChangeKind::Archived);
        Ok(())
    }

    /// Brings a record back from the recycle bin; restoring counts as a modification (but writes
    /// no property value, so it adds no version).
    pub fn restore(&mut self, t: TypeIdx, id: u64, now: Millis) -> Result<Arc<Record>, MutationError> {
        let old = self.types[t].archived.remove(&id).ok_or(MutationError::NotFound(id))?;
        let mut rec = Record::clone(&old);
        rec.archived_at = None;
        rec.log_write(now, WriteSource::Calculated, Vec::new(), false);
        rec.updated_at = now.max(rec.updated_at);
        let at = rec.updated_at;
        let rec = Arc::new(rec);
        self.publish(t, now, Arc::clone(&rec));
        self.recount_around(t, id, now);
        self.note(t, id, at, None, ChangeKind::Restored);
        Ok(self.types[t].live.get(&id).cloned().unwrap_or(rec))
    }

    /// Deletes a record for good, with its associations (GDPR delete).
    pub fn purge(&mut self, t: TypeIdx, id: u64, now: Millis) -> Result<(), MutationError> {
        let store = &mut self.types[t];
        let existed = store.live.remove(&id).is_some() | store.archived.remove(&id).is_some();
        if !existed {
            return Err(MutationError::NotFound(id));
        }
        store.gdpr_deleted.insert(id);
        self.unpublish(t, now, id);
        let neighbours: Vec<(TypeIdx, u64)> =
            self.edges.get(&(t, id)).map(|targets| targets.keys().copied().collect()).unwrap_or_default();
        self.remove_all_edges(t, id);
        for (other, other_id) in neighbours {
            self.recount(other, other_id, now);
        }
        self.note(t, id, now, None, ChangeKind::Purged);
        Ok(())
    }

    /// Merges `absorbed` into `primary`: the absorbed id disappears (it is neither live nor
    /// archived), its associations move to the survivor, and the survivor lists it in
    /// `hs_merged_object_ids` (a `CALCULATED` version at `now`). The survivor keeps its own
    /// property history; the absorbed record's versions are not folded in.
    pub fn merge(
        &mut self,
        t: TypeIdx,
        primary: u64,
        absorbed: u64,
        now: Millis,
    ) -> Result<Arc<Record>, MutationError> {
        if primary == absorbed {
            return Err(MutationError::Invalid("Cannot merge an object with itself".into()));
        }
        let store = &self.types[t];
        let survivor = store.live.get(&primary).ok_or(MutationError::NotFound(primary))?;
        let gone = store.live.get(&absorbed).ok_or(MutationError::NotFound(absorbed))?;
        if survivor.merged_ids.len() + gone.merged_ids.len() >= 250 {
            return Err(MutationError::Invalid("Cannot have more than 250 identities on a profile".into()));
        }
        let mut rec = Record::clone(survivor);
        rec.merged_ids.push(absorbed);
        rec.merged_ids.extend(gone.merged_ids.iter().copied());
        let merged_ids = store.properties.defs.iter().find(|d| d.source == PropSource::MergedIds).map(|def| {
            let ids: Vec<String> = rec.merged_ids.iter().map(u64::to_string).collect();
            (def.name.clone(), Some(ids.join(";")))
        });
        let merged_ids: Vec<(String, Option<String>)> = merged_ids.into_iter().collect();
        rec.log_write(now, WriteSource::Calculated, merged_ids.clone(), false);
        rec.updated_at = now.max(rec.updated_at);
        let at = rec.updated_at;
        let previously_absorbed = gone.merged_ids.clone();
        let rec = Arc::new(rec);
        let store = &mut self.types[t];
        store.live.remove(&absorbed);
        store.merged_into.insert(absorbed, primary);
        for id in previously_absorbed {
            store.merged_into.insert(id, primary);
        }
        self.unpublish(t, now, absorbed);
        self.publish(t, now, Arc::clone(&rec));
        self.move_edges(t, absorbed, primary);
        self.recount_around(t, primary, now);
        self.note(t, primary, at, None, ChangeKind::Merged { absorbed });
        if !merged_ids.is_empty() {
            self.note(t, primary, at, None, ChangeKind::Properties(merged_ids));
        }
        Ok(self.types[t].live.get(&primary).cloned().unwrap_or(rec))
    }

    /// The association types defined from `from` to `to`.
    pub fn association_types_between(&self, from: TypeIdx, to: TypeIdx) -> impl Iterator<Item = &AssociationType> {
        self.association_types.iter().filter(move |a| a.from == from && a.to == to)
    }

    fn association_type(&self, from: TypeIdx, to: TypeIdx, type_id: u32) -> Option<&AssociationType> {
        self.association_types_between(from, to).find(|a| a.type_id == type_id)
    }

    fn unlabeled_type(&self, from: TypeIdx, to: TypeIdx) -> Option<&AssociationType> {
        self.association_types_between(from, to).find(|a| a.unlabeled)
    }

    /// Whether a record exists (live) for association writes.
    pub fn is_live(&self, t: TypeIdx, id: u64) -> bool {
        self.types[t].live.contains_key(&id)
    }

    /// Adds association types between two records, in both directions. Any labeled type also
    /// brings the pair's unlabeled type, as in HubSpot. `type_ids` empty means the default.
    pub fn associate(
        &mut self,
        from: TypeIdx,
        from_id: u64,
        to: TypeIdx,
        to_id: u64,
        type_ids: &[u32],
    ) -> Result<(), MutationError> {
        let no_type = |type_id| MutationError::NoAssociationType {
            from: self.types[from].def.name.clone(),
            to: self.types[to].def.name.clone(),
            type_id,
        };
        let unlabeled = self.unlabeled_type(from, to).ok_or_else(|| no_type(0))?.clone();
        let mut wanted = vec![(unlabeled.type_id, unlabeled.inverse)];
        for &type_id in type_ids {
            let at = self.association_type(from, to, type_id).ok_or_else(|| no_type(type_id))?;
            wanted.push((at.type_id, at.inverse));
        }
        for (forward, inverse) in wanted {
            self.edges.entry((from, from_id)).or_default().entry((to, to_id)).or_default().insert(forward);
            self.edges.entry((to, to_id)).or_default().entry((from, from_id)).or_default().insert(inverse);
        }
        Ok(())
    }

    /// Removes association types between two records in both directions. Removing the
    /// unlabeled type (or passing none) removes the whole association.
    pub fn dissociate(&mut self, from: TypeIdx, from_id: u64, to: TypeIdx, to_id: u64, type_ids: &[u32]) {
        let unlabeled = self.unlabeled_type(from, to).map(|a| a.type_id);
        let remove_all = type_ids.is_empty() || type_ids.iter().any(|t| Some(*t) == unlabeled);
        let inverse_of: HashMap<u32, u32> =
            self.association_types_between(from, to).map(|a| (a.type_id, a.inverse)).collect();
        let mut drop_side = |key: (TypeIdx, u64), target: (TypeIdx, u64), ids: Option<Vec<u32>>| {
            if let Some(targets) = self.edges.get_mut(&key) {
                match ids {
                    None => {
                        targets.remove(&target);
                    }
                    Some(ids) => {
                        if let Some(set) = targets.get_mut(&target) {
                            for id in ids {
                                set.remove(&id);
                            }
                            if set.is_empty() {
                                targets.remove(&target);
                            }
                        }
                    }
                }
                if targets.is_empty() {
                    self.edges.remove(&key);
                }
            }
        };
        if remove_all {
            drop_side((from, from_id), (to, to_id), None);
            drop_side((to, to_id), (from, from_id), None);
        } else {
            let inverse: Vec<u32> = type_ids.iter().filter_map(|t| inverse_of.get(t).copied()).collect();
            drop_side((from, from_id), (to, to_id), Some(type_ids.to_vec()));
            drop_side((to, to_id), (from, from_id), Some(inverse));
        }
    }

    fn remove_all_edges(&mut self, t: TypeIdx, id: u64) {
        if let Some(targets) = self.edges.remove(&(t, id)) {
            for (other, _) in targets {
                if let Some(back) = self.edges.get_mut(&other) {
                    back.remove(&(t, id));
                    if back.is_empty() {
                        self.edges.remove(&other);
                    }
                }
            }
        }
    }

    fn move_edges(&mut self, t: TypeIdx, from_id: u64, to_id: u64) {
        let Some(targets) = self.edges.remove(&(t, from_id)) else {
            return;
        };
        for (other, types) in targets {
            if other == (t, to_id) {
                continue;
            }
            let back_types = self.edges.get_mut(&other).and_then(|back| back.remove(&(t, from_id))).unwrap_or_default();
            self.edges.entry((t, to_id)).or_default().entry(other).or_default().extend(types);
            self.edges.entry(other).or_default().entry((t, to_id)).or_default().extend(back_types);
        }
        if let Some(back) = self.edges.get_mut(&(t, to_id)) {
            back.remove(&(t, from_id));
        }
    }

    /// Targets of one record of type `to`, in id order.
    pub fn targets(&self, from: TypeIdx, from_id: u64, to: TypeIdx) -> Vec<(u64, Vec<u32>)> {
        self.edges
            .get(&(from, from_id))
            .map(|targets| {
                targets
                    .range((to, 0)..=(to, u64::MAX))
                    .map(|((_, id), types)| (*id, types.iter().copied().collect()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// [`Portal::associate`] made by a client at `now`: the association-count rollups of both
    /// records follow.
    pub fn associate_at(
        &mut self,
        from: TypeIdx,
        from_id: u64,
        to: TypeIdx,
        to_id: u64,
        type_ids: &[u32],
        now: Millis,
    ) -> Result<(), MutationError> {
        let before = self.edge_types(from, from_id, to, to_id);
        self.associate(from, from_id, to, to_id, type_ids)?;
        self.recount(from, from_id, now);
        self.recount(to, to_id, now);
        self.note_association((from, from_id), (to, to_id), &before, now);
        Ok(())
    }

    /// [`Portal::dissociate`] made by a client at `now`: the association-count rollups of both
    /// records follow.
    pub fn dissociate_at(
        &mut self,
        from: TypeIdx,
        from_id: u64,
        to: TypeIdx,
        to_id: u64,
        type_ids: &[u32],
        now: Millis,
    ) {
        let before = self.edge_types(from, from_id, to, to_id);
        self.dissociate(from, from_id, to, to_id, type_ids);
        self.recount(from, from_id, now);
        self.recount(to, to_id, now);
        self.note_association((from, from_id), (to, to_id), &before, now);
    }

    /// Recounts the rollups of a record and of every record associated with it (its own
    /// liveness changed: archived, restored, merged, purged).
    fn recount_around(&mut self, t: TypeIdx, id: u64, now: Millis) {
        let neighbours: Vec<(TypeIdx, u64)> =
            self.edges.get(&(t, id)).map(|targets| targets.keys().copied().collect()).unwrap_or_default();
        for (other, other_id) in neighbours {
            self.recount(other, other_id, now);
        }
        self.recount(t, id, now);
    }

    /// Brings a live record's association-count rollups up to date. A changed count is a
    /// `CALCULATED` version at `now` (never before the record's last modification) and does
    /// **not** move the record's last-modified time: HubSpot's rollups change without it, which
    /// is why a client following the last-modified cursor alone goes stale
    /// (estuary/connectors #3515). A count that never had a value stays empty at zero.
    pub fn recount(&mut self, t: TypeIdx, id: u64, now: Millis) {
        let counted: Vec<(String, TypeIdx)> = self.types[t]
            .properties
            .defs
            .iter()
            .filter(|d| d.archived_at.is_none())
            .filter_map(|d| match d.source {
                PropSource::AssociationCount(to) => self.type_idx(to).map(|to| (d.name.clone(), to)),
                _ => None,
            })
            .collect();
        if counted.is_empty() {
            return;
        }
        let Some(old) = self.types[t].live.get(&id) else { return };
        let changes: Vec<(String, Option<String>)> = counted
            .into_iter()
            .filter_map(|(name, to)| {
                let count = self.targets(t, id, to).iter().filter(|(other, _)| self.is_live(to, *other)).count();
                let current = old.written.get(&name).cloned().flatten();
                let value = (count > 0 || current.is_some()).then(|| count.to_string());
                (value != current).then_some((name, value))
            })
            .collect();
        if changes.is_empty() {
            return;
        }
        let mut rec = Record::clone(old);
        rec.log_write(now.max(rec.updated_at), WriteSource::Calculated, changes.clone(), false);
        rec.written.extend(changes);
        let rec = Arc::new(rec);
        self.publish(t, now, rec);
    }

    /// Gives the generated records their association-count rollups, as calculated versions at
    /// their last modification.
    pub(crate) fn seed_rollups(&mut self) {
        let mut keys: Vec<(TypeIdx, u64)> = self
            .edges
            .keys()
            .copied()
            .filter(|(t, _)| {
                self.types[*t].properties.defs.iter().any(|d| matches!(d.source, PropSource::AssociationCount(_)))
            })
            .collect();
        keys.sort_unstable();
        for (t, id) in keys {
            if let Some(at) = self.types[t].live.get(&id).map(|r| r.updated_at) {
                self.recount(t, id, at);
            }
        }
    }

    /// Adds a property definition (the admin API and `POST /crm/v3/properties`).
    pub fn add_property(&mut self, t: TypeIdx, mut def: PropertyDef, now: Millis) -> Result<(), MutationError> {
        let store = &mut self.types[t];
        if store.properties.get(&def.name).is_some_and(|d| d.archived_at.is_none()) {
            return Err(MutationError::PropertyExists(def.name));
        }
        def.created_at = now;
        def.updated_at = now;
        def.display_order = i64::try_from(store.properties.defs.len()).unwrap_or(i64::MAX);
        let mut set = PropertySet::clone(&store.properties);
        if let Some(existing) = set.defs.iter_mut().find(|d| d.name == def.name) {
            *existing = def;
        } else {
            set.push(def);
        }
        store.properties = Arc::new(set);
        Ok(())
    }

    /// Archives a property definition; values stay on records but are no longer served.
    pub fn archive_property(&mut self, t: TypeIdx, name: &str, now: Millis) -> Result<(), MutationError> {
        let store = &mut self.types[t];
        let def = store.properties.live(name).ok_or_else(|| MutationError::UnknownProperty(name.to_owned()))?;
        if def.hubspot_defined {
            return Err(MutationError::Invalid(format!(
                "Property \"{name}\" is HubSpot-defined and cannot be archived"
            )));
        }
        let mut set = PropertySet::clone(&store.properties);
        if let Some(d) = set.defs.iter_mut().find(|d| d.name == name) {
            d.archived_at = Some(now);
            d.updated_at = now;
        }
        store.properties = Arc::new(set);
        Ok(())
    }

    /// Creates or replaces an owner; a replaced owner keeps its creation time. Record values
    /// keep drawing from the owners the portal was generated with.
    pub fn put_owner(&mut self, mut owner: Owner, now: Millis) {
        let owners = Arc::make_mut(&mut self.owners);
        owner.updated_at = now;
        match owners.iter_mut().find(|o| o.id == owner.id) {
            Some(existing) => {
                owner.created_at = existing.created_at;
                *existing = owner;
            }
            None => {
                owner.created_at = now;
                owners.push(owner);
            }
        }
    }

    /// Removes an owner entirely (HubSpot lists it neither as active nor as archived).
    pub fn remove_owner(&mut self, id: u64) -> Result<(), MutationError> {
        let owners = Arc::make_mut(&mut self.owners);
        let before = owners.len();
        owners.retain(|o| o.id != id);
        if owners.len() == before {
            return Err(MutationError::NotFound(id));
        }
        Ok(())
    }

    /// Creates or replaces a pipeline of type `t` with its stages. The pipeline and each stage
    /// that already existed keep their creation time; a stage whose label, order, flag or
    /// metadata changed gets `now` as its update time.
    pub fn put_pipeline(&mut self, t: TypeIdx, mut pipeline: Pipeline, now: Millis) {
        let pipelines = self.pipelines.entry(t).or_default();
        let existing = pipelines.iter().position(|p| p.id == pipeline.id);
        let previous = existing.map(|i| pipelines[i].clone());
        for stage in &mut pipeline.stages {
            match previous.as_ref().and_then(|p| p.stages.iter().find(|s| s.id == stage.id)) {
                Some(old) => {
                    stage.created_at = old.created_at;
                    let same = old.label == stage.label
                        && old.display_order == stage.display_order
                        && old.archived == stage.archived
                        && old.metadata == stage.metadata;
                    stage.updated_at = if same { old.updated_at } else { now };
                }
                None => {
                    stage.created_at = now;
                    stage.updated_at = now;
                }
            }
        }
        pipeline.created_at = previous.as_ref().map_or(now, |p| p.created_at);
        pipeline.updated_at = now;
        match existing {
            Some(i) => pipelines[i] = pipeline,
            None => pipelines.push(pipeline),
        }
    }

    /// Removes a pipeline of type `t` with its stages.
    pub fn remove_pipeline(&mut self, t: TypeIdx, id: &str) -> Result<(), MutationError> {
        let pipelines = self.pipelines.get_mut(&t);
        let Some(pipelines) = pipelines.filter(|p| p.iter().any(|p| p.id == id)) else {
            return Err(MutationError::Invalid(format!("no pipeline {id} for this object type")));
        };
        pipelines.retain(|p| p.id != id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{build, PortalSpec, CONTACTS, DEALS};

    fn values(versions: &[Version]) -> Vec<(&str, Millis, WriteSource)> {
        versions.iter().map(|v| (v.value.as_str(), v.at, v.source)).collect()
    }

    #[test]
    fn writes_append_versions_newest_first_before_the_seeded_ones() {
        let mut portal = build(&PortalSpec { deals: 20, ..PortalSpec::default() });
        let id = *portal.types[DEALS].live.keys().next().unwrap();
        let ctx = portal.value_context(DEALS);
        let def = ctx.properties.get("dealname").unwrap().clone();
        let seeded = ctx.history(&portal.types[DEALS].live[&id], &def);
        let at = crate::generate::ANCHOR_MS + 5;
        let (ui, app) = (WriteSource::User(5_000_001), WriteSource::Integration(API_APP_ID));
        let write = |v: Option<&str>| BTreeMap::from([("dealname".to_owned(), v.map(str::to_owned))]);
        portal.update(DEALS, id, at, ui, write(Some("first"))).unwrap();
        portal.update(DEALS, id, at, app, write(Some("second"))).unwrap();
        let rec = portal.update(DEALS, id, at + 1, app, write(None)).unwrap();
        let history = ctx.history(&rec, &def);
        assert_eq!(values(&history[..3]), [("", at + 1, app), ("second", at, app), ("first", at, ui)]);
        assert_eq!(history[3..], seeded[..], "the seeded versions stay behind the writes");
        // A created record has only what was written to it, from its creation.
        let created = portal.create(DEALS, at, ui, write(Some("new"))).unwrap();
        assert_eq!(values(&ctx.history(&created, &def)), [("new", at, ui)]);
        let amount = ctx.properties.get("amount").unwrap();
        assert!(ctx.history(&created, amount).is_empty(), "a property never given a value has no versions");
    }

    #[test]
    fn webhook_changes_are_noted_while_listening_and_rollups_are_not_changes() {
        let spec = PortalSpec {
            contacts: 5,
            deals: 5,
            objects: BTreeMap::new(),
            hubspot_catalogue: false,
            ..PortalSpec::default()
        };
        let mut portal = build(&spec);
        let contact = *portal.types[CONTACTS].live.keys().next().unwrap();
        let deal = *portal.types[DEALS].live.keys().next().unwrap();
        let at = crate::generate::ANCHOR_MS + 5;
        let ui = WriteSource::User(5_000_001);
        let write = |v: &str| BTreeMap::from([("firstname".to_owned(), Some(v.to_owned()))]);
        portal.update(CONTACTS, contact, at, ui, write("Ann")).unwrap();
        portal.dissociate_at(CONTACTS, contact, DEALS, deal, &[], at);
        assert!(portal.changes.is_none(), "nothing is noted while webhooks are off");

        portal.changes = Some(Vec::new());
        portal.update(CONTACTS, contact, at + 1, ui, write("Ann")).unwrap();
        assert_eq!(portal.changes.as_deref(), Some(&[][..]), "writing the value it holds is no change");
        let count = |p: &Portal| p.types[CONTACTS].live[&contact].written.get("num_associated_deals").cloned();
        let before = count(&portal);
        portal.associate_at(CONTACTS, contact, DEALS, deal, &[], at + 2).unwrap();
        assert_ne!(count(&portal), before, "the rollup was recounted");
        let association = ChangeKind::Association { to: DEALS, to_id: deal, removed: false, primary: false };
        let expected = Change { t: CONTACTS, id: contact, at: at + 2, writer: None, kind: association };
        assert_eq!(portal.changes.as_deref(), Some(&[expected][..]), "a recount is not a change");
    }

    #[test]
    fn a_long_write_log_drops_without_overflowing_the_stack() {
        let mut rec = Record {
            id: 1,
            created_at: 0,
            updated_at: 0,
            archived_at: None,
            written: BTreeMap::new(),
            merged_ids: Vec::new(),
            raw_json: BTreeMap::new(),
            last_write: None,
        };
        for at in 0..300_000 {
            rec.log_write(at, WriteSource::Calculated, vec![("p".to_owned(), None)], false);
        }
        assert_eq!(rec.writes().count(), 300_000);
        drop(rec);
    }

    #[test]
    fn iso_millis_matches_the_strftime_patterns() {
        assert_eq!(iso_millis(1_767_225_600_100), "2026-01-01T00:00:00.100Z");
        assert_eq!(iso_millis(-1), "1969-12-31T23:59:59.999Z");
        // The same text as the strftime patterns it replaced, from year 1 to 9999.
        let mut ms: Millis = -62_135_596_800_000;
        while ms < 253_402_300_800_000 {
            for ms in [ms, ms - ms.rem_euclid(1000)] {
                let dt = chrono::DateTime::from_timestamp_millis(ms).unwrap();
                let pattern = if ms.rem_euclid(1000) == 0 { "%Y-%m-%dT%H:%M:%SZ" } else { "%Y-%m-%dT%H:%M:%S%.3fZ" };
                assert_eq!(iso_millis(ms), dt.format(pattern).to_string(), "{ms}");
            }
            ms += 7_919_999_999;
        }
    }
}
