//! The client's view of HubSpot's JSON: records, pages, property definitions, schemas,
//! associations, owners and pipelines. Parsing is lenient where HubSpot is inconsistent (absent
//! versus `null` values, numbers sent as strings or numbers) and never panics.
//!
//! # Values that are not Unicode
//! JSON may carry a lone UTF-16 surrogate escape (`"a \ud800 b"`), which no Rust string (and no
//! warehouse text column) can hold. Property values and names are read leniently: the surrogate
//! becomes U+FFFD and the value is listed in [`Properties::repairs`] with its raw form, so the
//! batch builder records it as a reject instead of the whole page failing. A record page that
//! still does not parse is read record by record ([`salvage`]), and a record that cannot be read
//! at all is kept as [`CrmObject::unreadable`], so one bad record never costs its neighbours.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// One CRM record (`SimplePublicObject`). Values stay strings, as HubSpot sends them; `None`
/// means HubSpot sent `null`, absence means it left the property out.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrmObject {
    pub id: String,
    #[serde(default)]
    pub properties: Properties,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    #[serde(default)]
    pub archived: bool,
    pub archived_at: Option<String>,
    /// `propertiesWithHistory`, when the read asked for it.
    #[serde(default)]
    pub properties_with_history: PropertyHistory,
    /// Set when the record could not be read at all (see [`salvage`]): the batch builder rejects
    /// it whole, with this reason and raw text.
    #[serde(skip)]
    pub unreadable: Option<Unreadable>,
}

/// One version of a property's value (HubSpot's `ValueWithTimestamp`), as HubSpot lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertyVersion {
    /// The value the property took; `None` when HubSpot sent `null`.
    pub value: Option<String>,
    /// When it took it (ISO 8601, as HubSpot sends it).
    pub timestamp: String,
    /// What made the change (`CRM_UI`, `INTEGRATION`, `CALCULATED`, `IMPORT` …).
    pub source_type: Option<String>,
    pub source_id: Option<String>,
    pub source_label: Option<String>,
    pub updated_by_user_id: Option<i64>,
}

/// A record's `propertiesWithHistory`: per property, its versions in HubSpot's order, read
/// leniently. A version that is not the JSON HubSpot documents is left out and listed in
/// [`PropertyHistory::skipped`], so one bad version costs only itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PropertyHistory {
    pub versions: BTreeMap<String, Vec<PropertyVersion>>,
    /// `(property, why)` of each version left out.
    pub skipped: Vec<(String, String)>,
}

impl PropertyVersion {
    /// Reads one version; the error says what is wrong with it.
    fn from_json(v: &Value) -> Result<PropertyVersion, String> {
        let Value::Object(map) = v else { return Err("the version is not a JSON object".to_owned()) };
        let text = |key: &str| match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(format!("{key} is {other} where HubSpot documents a string")),
        };
        let timestamp = text("timestamp")?.ok_or("the version has no timestamp")?;
        let updated_by_user_id = match map.get("updatedByUserId") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.as_i64().ok_or(format!("updatedByUserId {n} is not an integer"))?),
            Some(Value::String(s)) => {
                Some(s.trim().parse().map_err(|_| format!("updatedByUserId {s:?} is not an integer"))?)
            }
            Some(other) => return Err(format!("updatedByUserId is {other} where HubSpot documents an integer")),
        };
        Ok(PropertyVersion {
            value: text("value")?,
            timestamp,
            source_type: text("sourceType")?,
            source_id: text("sourceId")?,
            source_label: text("sourceLabel")?,
            updated_by_user_id,
        })
    }
}

impl<'de> Deserialize<'de> for PropertyHistory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Option::<BTreeMap<String, Value>>::deserialize(d)?.unwrap_or_default();
        let mut out = PropertyHistory::default();
        for (property, versions) in raw {
            let Value::Array(versions) = versions else {
                out.skipped.push((property, "the history is not a JSON array of versions".to_owned()));
                continue;
            };
            let mut kept = Vec::with_capacity(versions.len());
            for version in &versions {
                match PropertyVersion::from_json(version) {
                    Ok(v) => kept.push(v),
                    Err(why) => out.skipped.push((property.clone(), why)),
                }
            }
            out.versions.insert(property, kept);
        }
        Ok(out)
    }
}

/// A record hsync could not read, kept so it is recorded as a reject rather than lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// What was wrong with it.
    pub reason: String,
    /// The record's JSON as HubSpot sent it (cut at [`UNREADABLE_RAW_MAX`] bytes).
    pub raw: String,
}

/// How much of an unreadable record's JSON is kept in its reject.
pub const UNREADABLE_RAW_MAX: usize = 64 * 1024;

/// A property value hsync stored in a changed form, with the value as HubSpot sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueRepair {
    pub property: String,
    /// The value as it came, JSON escapes kept where the text cannot hold it (`a \ud800 b`).
    pub raw: String,
    pub reason: String,
}

/// A record's property values, read leniently (see the module docs), with the values that had
/// to be repaired on the way. Dereferences to the map of values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Properties {
    values: HashMap<String, Option<String>>,
    repairs: Vec<ValueRepair>,
}

impl std::ops::Deref for Properties {
    type Target = HashMap<String, Option<String>>;

    fn deref(&self) -> &Self::Target {
        &self.values
    }
}

impl Properties {
    /// Values that were stored in a changed form, in the order HubSpot sent them.
    pub fn repairs(&self) -> &[ValueRepair] {
        &self.repairs
    }

    /// The repair made to `property`'s value, if any.
    pub fn repair(&self, property: &str) -> Option<&ValueRepair> {
        self.repairs.iter().find(|r| r.property == property)
    }
}

impl<'de> Deserialize<'de> for Properties {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PropertiesVisitor;
        impl<'de> Visitor<'de> for PropertiesVisitor {
            type Value = Properties;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of property values")
            }

            fn visit_unit<E>(self) -> Result<Properties, E> {
                Ok(Properties::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Properties, A::Error> {
                let mut out = Properties::default();
                out.values.reserve(map.size_hint().unwrap_or(0));
                while let Some(LenientText { text: name, .. }) = map.next_key::<LenientText>()? {
                    let value = map.next_value::<Option<LenientText>>()?;
                    let value = value.map(|v| {
                        if let Some(raw) = v.raw {
                            out.repairs.push(ValueRepair {
                                property: name.clone(),
                                raw,
                                reason: SURROGATE_REASON.into(),
                            });
                        }
                        v.text
                    });
                    out.values.insert(name, value);
                }
                Ok(out)
            }
        }
        d.deserialize_any(PropertiesVisitor)
    }
}

/// Why a value with a lone surrogate was stored changed.
const SURROGATE_REASON: &str =
    "the value holds a lone UTF-16 surrogate escape, which is not Unicode text; stored with U+FFFD in its place";

/// A JSON string read through serde_json's byte path, which accepts lone surrogate escapes
/// (as WTF-8) where its string path fails the whole document. `raw` is set when the text had
/// to be repaired: the value with each lone surrogate written back as its `\uXXXX` escape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LenientText {
    pub text: String,
    pub raw: Option<String>,
}

impl LenientText {
    fn from_bytes(bytes: &[u8]) -> LenientText {
        match simdutf8::basic::from_utf8(bytes) {
            Ok(text) => LenientText { text: text.to_owned(), raw: None },
            Err(_) => repair_wtf8(bytes),
        }
    }
}

/// Decodes WTF-8 (UTF-8 that may also encode surrogates, as serde_json writes lone surrogate
/// escapes into byte strings): each surrogate becomes U+FFFD in `text` and its escape in `raw`.
/// Any other invalid byte also becomes U+FFFD (serde_json never produces one).
fn repair_wtf8(bytes: &[u8]) -> LenientText {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(bytes.len());
    let mut raw = String::with_capacity(bytes.len() + 8);
    let mut rest = bytes;
    while !rest.is_empty() {
        let valid = match std::str::from_utf8(rest) {
            Ok(all) => all,
            Err(e) => std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default(),
        };
        text.push_str(valid);
        raw.push_str(valid);
        rest = &rest[valid.len()..];
        match rest {
            [] => {}
            [0xED, b1 @ 0xA0..=0xBF, b2 @ 0x80..=0xBF, ..] => {
                let unit = 0xD000 | (u32::from(b1 & 0x3F) << 6) | u32::from(b2 & 0x3F);
                text.push(char::REPLACEMENT_CHARACTER);
                let _ = write!(raw, "\\u{unit:04x}");
                rest = &rest[3..];
            }
            [_, tail @ ..] => {
                text.push(char::REPLACEMENT_CHARACTER);
                raw.push(char::REPLACEMENT_CHARACTER);
                rest = tail;
            }
        }
    }
    LenientText { text, raw: Some(raw) }
}

impl<'de> Deserialize<'de> for LenientText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl Visitor<'_> for TextVisitor {
            type Value = LenientText;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E>(self, v: &str) -> Result<LenientText, E> {
                Ok(LenientText { text: v.to_owned(), raw: None })
            }

            fn visit_string<E>(self, v: String) -> Result<LenientText, E> {
                Ok(LenientText { text: v, raw: None })
            }

            fn visit_bytes<E>(self, v: &[u8]) -> Result<LenientText, E> {
                Ok(LenientText::from_bytes(v))
            }

            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<LenientText, E> {
                match String::from_utf8(v) {
                    Ok(text) => Ok(LenientText { text, raw: None }),
                    Err(e) => Ok(repair_wtf8(e.as_bytes())),
                }
            }
        }
        d.deserialize_bytes(TextVisitor)
    }
}

/// A lenient string field: see [`LenientText`]; a repaired value keeps only its text.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    LenientText::deserialize(d).map(|t| t.text)
}

/// A page of search results. `total` is the number of matches, which can exceed what paging
/// can reach (10,000).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SearchPage {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub results: Vec<CrmObject>,
    pub paging: Option<Paging>,
}

/// A page of a list call; there is no `total`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ListPage<T> {
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
    pub paging: Option<Paging>,
}

impl<T> ListPage<T> {
    /// The cursor of the next page, if there is one.
    pub fn next_after(&self) -> Option<&str> {
        self.paging.as_ref().and_then(|p| p.next.as_ref()).map(|n| n.after.as_str())
    }
}

impl SearchPage {
    /// The offset of the next page, if there is one.
    pub fn next_after(&self) -> Option<&str> {
        self.paging.as_ref().and_then(|p| p.next.as_ref()).map(|n| n.after.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Paging {
    pub next: Option<NextPage>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct NextPage {
    #[serde(deserialize_with = "string_or_number")]
    pub after: String,
}

/// A batch read's outcome: the records found and the ids HubSpot reported missing (207).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchRead {
    pub found: Vec<CrmObject>,
    pub missing: Vec<String>,
}

/// The envelope of batch responses, including 207 partial results.
#[derive(Debug, Deserialize)]
pub(crate) struct BatchEnvelope<T> {
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
    #[serde(default)]
    pub errors: Vec<BatchError>,
}

impl BatchError {
    /// `OBJECT_NOT_FOUND`, which batch reads use for missing ids and association reads for ids
    /// without associations.
    pub fn is_not_found(&self) -> bool {
        self.category.as_deref() == Some("OBJECT_NOT_FOUND")
    }
}

/// One entry of a batch response's `errors`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchError {
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub context: HashMap<String, Vec<String>>,
}

/// A property definition (`Property`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyDefinition {
    #[serde(deserialize_with = "lenient_string")]
    pub name: String,
    #[serde(default)]
    pub label: String,
    /// `string`, `number`, `bool`, `date`, `datetime`, `enumeration`, `phone_number`, and on
    /// read anything else HubSpot invents (`json`, `object_coordinates`).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub field_type: String,
    #[serde(default)]
    pub group_name: String,
    #[serde(default)]
    pub calculated: bool,
    #[serde(default)]
    pub has_unique_value: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub hubspot_defined: bool,
    #[serde(default)]
    pub options: Vec<PropertyOption>,
    #[serde(default)]
    pub modification_metadata: ModificationMetadata,
}

/// What may change a property (`modificationMetadata`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModificationMetadata {
    /// HubSpot sets the value itself; no client can write it.
    #[serde(default)]
    pub read_only_value: bool,
}

impl PropertyDefinition {
    /// Whether HubSpot computes the value itself (rollups such as `num_associated_deals`,
    /// formulas, scores, `hs_time_in_*`), so that it can change without the record's
    /// last-modified time moving and only a re-read finds it. `calculated` alone cannot be
    /// trusted: captured rollup definitions say `false`; `readOnlyValue` and a `calculation_*`
    /// field type are the reliable marks (docs/hubspot-properties.md).
    pub fn is_calculated(&self) -> bool {
        self.calculated || self.modification_metadata.read_only_value || self.field_type.starts_with("calculation_")
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PropertyOption {
    #[serde(default)]
    pub label: String,
    pub value: String,
}

/// A custom object type from the schemas API.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectSchema {
    pub object_type_id: String,
    pub name: String,
    pub fully_qualified_name: Option<String>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub properties: Vec<PropertyDefinition>,
}

/// One association type on an edge.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationType {
    pub category: String,
    pub type_id: u32,
    pub label: Option<String>,
}

/// One associated record with every association type between the two.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationTarget {
    /// A JSON number in HubSpot's examples, a string in newer specs: both are accepted.
    #[serde(deserialize_with = "string_or_number")]
    pub to_object_id: String,
    #[serde(default)]
    pub association_types: Vec<AssociationType>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AssociationResult {
    pub from: AssociationFrom,
    #[serde(default)]
    pub to: Vec<AssociationTarget>,
    pub paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AssociationFrom {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
}

/// A HubSpot user who can own records.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub user_id: Option<i64>,
    pub user_id_including_inactive: Option<i64>,
    /// `PERSON` or `QUEUE`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub teams: Vec<OwnerTeam>,
    #[serde(default)]
    pub archived: bool,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// A team an owner belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerTeam {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub name: Option<String>,
    #[serde(default)]
    pub primary: bool,
}

/// A pipeline (of deals, tickets or another type with pipelines) with its stages.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pipeline {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub display_order: i64,
    #[serde(default)]
    pub archived: bool,
    pub archived_at: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    #[serde(default)]
    pub stages: Vec<PipelineStage>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStage {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub display_order: i64,
    #[serde(default)]
    pub archived: bool,
    /// HubSpot's map of strings (`probability` and `isClosed` for deals, `ticketState` for
    /// tickets); any JSON value is accepted.
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
    pub archived_at: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// A response that carries records (a search, list or batch read page, or one record), so a
/// body that does not parse as a whole can be read record by record ([`salvage`]).
pub(crate) trait RecordPage: serde::de::DeserializeOwned {
    fn from_salvage(page: SalvagedPage) -> Self;
}

/// What [`salvage`] read from a record response.
#[derive(Debug, Default)]
pub(crate) struct SalvagedPage {
    total: u64,
    results: Vec<CrmObject>,
    paging: Option<Paging>,
    errors: Vec<BatchError>,
}

impl RecordPage for SearchPage {
    fn from_salvage(page: SalvagedPage) -> Self {
        SearchPage { total: page.total, results: page.results, paging: page.paging }
    }
}

impl RecordPage for ListPage<CrmObject> {
    fn from_salvage(page: SalvagedPage) -> Self {
        ListPage { results: page.results, paging: page.paging }
    }
}

impl RecordPage for BatchEnvelope<CrmObject> {
    fn from_salvage(page: SalvagedPage) -> Self {
        BatchEnvelope { results: page.results, errors: page.errors }
    }
}

impl RecordPage for CrmObject {
    fn from_salvage(mut page: SalvagedPage) -> Self {
        page.results.pop().unwrap_or_else(|| unreadable_record(None, "the record could not be read", ""))
    }
}

#[derive(Deserialize)]
struct LooseEnvelope<'a> {
    #[serde(default)]
    total: u64,
    #[serde(default, borrow)]
    results: Vec<&'a RawValue>,
    paging: Option<Paging>,
    #[serde(default)]
    errors: Vec<BatchError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LooseRecord<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    properties: Option<HashMap<LenientText, &'a RawValue>>,
    #[serde(borrow)]
    created_at: Option<&'a RawValue>,
    #[serde(borrow)]
    updated_at: Option<&'a RawValue>,
    #[serde(borrow)]
    archived: Option<&'a RawValue>,
    #[serde(borrow)]
    archived_at: Option<&'a RawValue>,
    #[serde(borrow)]
    properties_with_history: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
}

/// Reads a record response that did not parse as a whole, record by record: each record that
/// parses is kept as it is, one that does is rebuilt field by field (a value of another JSON type
/// than HubSpot documents is kept as its JSON text), and one that cannot be read at all becomes an
/// [`Unreadable`] record. Fails only when the envelope itself is not JSON.
pub(crate) fn salvage<T: RecordPage>(text: &str) -> Result<T, serde_json::Error> {
    let trimmed = text.trim_start();
    let page = if trimmed.starts_with('{') && !looks_like_record(trimmed) {
        let envelope: LooseEnvelope<'_> = serde_json::from_str(text)?;
        SalvagedPage {
            total: envelope.total,
            results: envelope.results.into_iter().map(salvage_record).collect(),
            paging: envelope.paging,
            errors: envelope.errors,
        }
    } else {
        let raw: &RawValue = serde_json::from_str(text)?;
        SalvagedPage { results: vec![salvage_record(raw)], ..SalvagedPage::default() }
    };
    Ok(T::from_salvage(page))
}

/// Whether a JSON object is one record rather than a page (pages have `results`).
fn looks_like_record(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        results: Option<&'a RawValue>,
        #[serde(borrow)]
        id: Option<&'a RawValue>,
    }
    matches!(serde_json::from_str::<Probe<'_>>(text), Ok(Probe { results: None, id: Some(_) }))
}

fn salvage_record(raw: &RawValue) -> CrmObject {
    if let Ok(rec) = serde_json::from_str::<CrmObject>(raw.get()) {
        return rec;
    }
    let loose = match serde_json::from_str::<LooseRecord<'_>>(raw.get()) {
        Ok(loose) => loose,
        Err(e) => {
            let id = serde_json::from_str::<IdOnly<'_>>(raw.get()).ok().and_then(|r| r.id).and_then(loose_id);
            return unreadable_record(id, &format!("the record is not the JSON HubSpot documents ({e})"), raw.get());
        }
    };
    let Some(id) = loose.id.and_then(loose_id) else {
        return unreadable_record(None, "the record has no readable id", raw.get());
    };
    let mut properties = Properties::default();
    for (name, value) in loose.properties.unwrap_or_default() {
        let (text, repair) = loose_text(value);
        if let Some((raw, reason)) = repair {
            properties.repairs.push(ValueRepair { property: name.text.clone(), raw, reason });
        }
        properties.values.insert(name.text, text);
    }
    let text = |v: Option<&RawValue>| v.and_then(|v| loose_text(v).0);
    CrmObject {
        id,
        properties,
        created_at: text(loose.created_at),
        updated_at: text(loose.updated_at),
        archived: loose.archived.is_some_and(|v| v.get() == "true"),
        archived_at: text(loose.archived_at),
        properties_with_history: loose_history(loose.properties_with_history),
        unreadable: None,
    }
}

/// The history of a record read loosely: what parses, or one note that none of it did.
fn loose_history(raw: Option<&RawValue>) -> PropertyHistory {
    match raw.map(|r| serde_json::from_str::<PropertyHistory>(r.get())) {
        None => PropertyHistory::default(),
        Some(Ok(history)) => history,
        Some(Err(e)) => PropertyHistory {
            versions: BTreeMap::new(),
            skipped: vec![(String::new(), format!("propertiesWithHistory is not the JSON HubSpot documents ({e})"))],
        },
    }
}

/// A record id from a string or a number; `None` for anything else or an empty string.
fn loose_id(raw: &RawValue) -> Option<String> {
    match loose_text(raw) {
        (Some(text), None) if !text.trim().is_empty() => Some(text),
        _ => None,
    }
}

/// The text of one loose JSON value: a string's text (lenient), a number's or boolean's JSON
/// text, `None` for null; objects and arrays are kept as their JSON text with a reason.
fn loose_text(raw: &RawValue) -> (Option<String>, Option<(String, String)>) {
    let json = raw.get();
    match json.as_bytes().first() {
        Some(b'"') => match serde_json::from_str::<LenientText>(json) {
            Ok(LenientText { text, raw: None }) => (Some(text), None),
            Ok(LenientText { text, raw: Some(raw) }) => (Some(text), Some((raw, SURROGATE_REASON.to_owned()))),
            Err(e) => (
                None,
                Some((json.to_owned(), format!("the value is not a readable JSON string ({e}); stored as NULL"))),
            ),
        },
        Some(b'n') => (None, None),
        Some(b'{' | b'[') => (
            Some(json.to_owned()),
            Some((
                json.to_owned(),
                "the value is a JSON object or array where HubSpot documents a string; stored as its JSON text"
                    .to_owned(),
            )),
        ),
        _ => (Some(json.to_owned()), None),
    }
}

fn unreadable_record(id: Option<String>, reason: &str, raw: &str) -> CrmObject {
    let mut cut = raw.len().min(UNREADABLE_RAW_MAX);
    while !raw.is_char_boundary(cut) {
        cut -= 1;
    }
    CrmObject {
        id: id.unwrap_or_default(),
        properties: Properties::default(),
        created_at: None,
        updated_at: None,
        archived: false,
        archived_at: None,
        properties_with_history: PropertyHistory::default(),
        unreadable: Some(Unreadable { reason: reason.to_owned(), raw: raw[..cut].to_owned() }),
    }
}

/// HubSpot's error body; every field is optional, as HubSpot advises.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    pub message: Option<String>,
    pub category: Option<String>,
    pub correlation_id: Option<String>,
    pub policy_name: Option<String>,
    #[serde(default)]
    pub errors: Vec<ErrorDetail>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub context: HashMap<String, Value>,
}

impl ErrorBody {
    /// The scopes a 403 `MISSING_SCOPES` names.
    pub fn required_scopes(&self) -> Vec<String> {
        self.errors
            .iter()
            .flat_map(|e| {
                ["requiredGranularScopes", "requiredScopes", "missingScopes"]
                    .iter()
                    .filter_map(|k| e.context.get(*k))
                    .filter_map(Value::as_array)
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("expected a string or a number, got {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_accepts_null_and_absent_values() {
        let rec: CrmObject = serde_json::from_str(
            r#"{"id":"7","properties":{"email":null,"firstname":"Zoë"},"createdAt":"2024-01-01T00:00:00Z","updatedAt":"2024-01-02T00:00:00.5Z","archived":false}"#,
        )
        .unwrap();
        assert_eq!(rec.properties["email"], None);
        assert_eq!(rec.properties["firstname"].as_deref(), Some("Zoë"));
        assert!(!rec.properties.contains_key("lastname"));
    }

    #[test]
    fn lone_surrogates_become_replacement_characters_and_are_listed_with_their_escape() {
        let rec: CrmObject = serde_json::from_str(
            r#"{"id":"7","properties":{"firstname":"a \ud800 b","lastname":"\udc00","city":"Zo\u00eb \ud83d\ude00","n\udfffame":"x"}}"#,
        )
        .unwrap();
        assert_eq!(rec.properties["firstname"].as_deref(), Some("a \u{FFFD} b"));
        assert_eq!(rec.properties["lastname"].as_deref(), Some("\u{FFFD}"));
        assert_eq!(rec.properties["city"].as_deref(), Some("Zoë 😀"), "a valid pair is one character");
        assert!(rec.properties.contains_key("n\u{FFFD}ame"), "a name is repaired too");
        let repair = rec.properties.repair("firstname").unwrap();
        assert_eq!(repair.raw, r"a \ud800 b");
        assert_eq!(rec.properties.repair("lastname").unwrap().raw, r"\udc00");
        assert!(rec.properties.repair("city").is_none());
    }

    #[test]
    fn history_versions_are_read_leniently_and_a_bad_version_costs_only_itself() {
        let rec: CrmObject = serde_json::from_str(
            r#"{"id":"7","properties":{},"propertiesWithHistory":{
                "dealstage":[
                    {"value":"closedwon","timestamp":"2025-03-02T10:00:00.120Z","sourceType":"CRM_UI","sourceId":"userId:5","updatedByUserId":5},
                    {"value":"closedwon","timestamp":"2025-03-02T10:00:00.120Z","sourceType":"INTEGRATION","sourceId":"3141","sourceLabel":"App"},
                    {"value":"qualifiedtobuy","sourceType":"CRM_UI"},
                    {"value":7,"timestamp":"2025-01-01T00:00:00Z","sourceType":"IMPORT","updatedByUserId":"12"},
                    {"value":null,"timestamp":"2024-12-01T00:00:00Z","sourceType":"CALCULATED"},
                    "not a version",
                    {"value":"x","timestamp":"2024-01-01T00:00:00Z","sourceType":"CRM_UI","updatedByUserId":1.5}
                ],
                "amount":{"value":"1"}
            }}"#,
        )
        .unwrap();
        let history = &rec.properties_with_history;
        let stage = &history.versions["dealstage"];
        assert_eq!(stage.len(), 4, "versions kept in HubSpot's order: {stage:?}");
        assert_eq!(stage[0].updated_by_user_id, Some(5));
        assert_eq!(stage[1].source_label.as_deref(), Some("App"), "same time, another source: kept apart");
        assert_eq!((stage[2].value.as_deref(), stage[2].updated_by_user_id), (Some("7"), Some(12)));
        assert_eq!(stage[3].value, None);
        let why: Vec<&str> =
            history.skipped.iter().map(|(p, w)| if p == "amount" { "amount" } else { w.as_str() }).collect();
        assert_eq!(why.len(), 4, "{why:?}");
        assert!(why.contains(&"the version has no timestamp"));
        assert!(why.contains(&"the version is not a JSON object"));
        assert!(why.contains(&"updatedByUserId 1.5 is not an integer"));
        assert!(why.contains(&"amount"), "a history that is not an array is skipped");

        let without: CrmObject = serde_json::from_str(r#"{"id":"8","properties":{}}"#).unwrap();
        assert_eq!(without.properties_with_history, PropertyHistory::default());
    }

    #[test]
    fn a_page_that_does_not_parse_whole_is_read_record_by_record() {
        let text = r#"{"total":4,"results":[
            {"id":"1","properties":{"a":"x"}},
            {"id":"2","properties":{"a":5,"b":{"k":1},"c":true,"d":null},"archived":"nope"},
            {"id":{"bad":1},"properties":{"a":"y"}},
            {"id":"4","properties":["not","a","map"]}
        ],"paging":{"next":{"after":"4"}}}"#;
        assert!(serde_json::from_str::<SearchPage>(text).is_err());
        let page: SearchPage = salvage(text).unwrap();
        assert_eq!((page.total, page.next_after()), (4, Some("4")));
        assert_eq!(page.results[0].properties["a"].as_deref(), Some("x"));
        let second = &page.results[1];
        assert_eq!(second.properties["a"].as_deref(), Some("5"), "a number keeps its text");
        assert_eq!(second.properties["c"].as_deref(), Some("true"));
        assert_eq!(second.properties["d"], None);
        assert_eq!(second.properties["b"].as_deref(), Some(r#"{"k":1}"#));
        assert!(second.properties.repair("b").is_some(), "an object where a string belongs is recorded");
        assert!(second.unreadable.is_none());
        assert!(page.results[2].unreadable.is_some() && page.results[2].id.is_empty());
        assert_eq!(page.results[3].id, "4", "the id of an unreadable record is kept when it can be read");
        assert!(page.results[3].unreadable.as_ref().unwrap().raw.contains("not"));
        let one: CrmObject = salvage(r#"{"id":"9","properties":{"a":[1]}}"#).unwrap();
        assert_eq!(one.properties["a"].as_deref(), Some("[1]"));
        assert!(salvage::<SearchPage>("<html>").is_err(), "a body that is not JSON stays an error");
    }

    #[test]
    fn association_target_id_may_be_number_or_string() {
        let a: AssociationTarget = serde_json::from_str(r#"{"toObjectId":5790939450,"associationTypes":[]}"#).unwrap();
        let b: AssociationTarget = serde_json::from_str(r#"{"toObjectId":"5790939450"}"#).unwrap();
        assert_eq!(a.to_object_id, b.to_object_id);
    }

    #[test]
    fn missing_scopes_are_read_from_any_known_key() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"status":"error","category":"MISSING_SCOPES","errors":[{"context":{"requiredGranularScopes":["crm.objects.deals.read"]}}]}"#,
        )
        .unwrap();
        assert_eq!(body.required_scopes(), ["crm.objects.deals.read"]);
    }
}
