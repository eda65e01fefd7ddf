//! Checking rows against HubSpot's property definitions before anything is sent, so a push
//! causes no API error through its data. This module owns the rules, as pure functions: which
//! columns go to which properties ([`Rules::new`], refusing the whole push when the mapping
//! cannot work), and what each value must look like ([`Rules::check`], refusing one row with
//! a reason per bad value). Values leave in the form HubSpot documents for writes
//! (docs/hubspot-write-api.md): numbers as plain decimals, booleans `true`/`false`, dates
//! `YYYY-MM-DD`, datetimes epoch milliseconds, enumerations by option value (multi-select
//! joined with `;`), phone numbers in E.164.
//!
//! An empty or NULL value is not sent (pushing never clears a property), except that the id
//! property must have one.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};

use crate::hubspot::model::PropertyDefinition;

/// The longest value HubSpot stores in a property, in characters.
pub const MAX_VALUE_CHARS: usize = 65_536;

/// The record id: rows matched on it update records and never create one.
pub const RECORD_ID: &str = "hs_object_id";

/// Why a mapping cannot be pushed at all (a configuration problem).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("property {property} (from column {column}) does not exist on {object}; fix push.columns or create the property in HubSpot")]
    UnknownProperty { object: String, column: String, property: String },
    #[error(
        "property {property} (from column {column}) is set by HubSpot and cannot be written; leave the column out"
    )]
    ReadOnly { column: String, property: String },
    #[error("no column goes to the id property {property}; add one named {property} or map one to it in push.columns")]
    NoIdColumn { property: String },
    #[error("two columns go to property {property} ({first} and {second}); keep one")]
    TwoColumns { property: String, first: String, second: String },
    #[error("no column goes to {property}, which HubSpot needs to create a record of {object}; add one")]
    MissingRequired { object: String, property: String },
    #[error("{property} cannot match records: HubSpot upserts by email on contacts or by a property with unique values; use hs_object_id, or mark the property unique in HubSpot")]
    NotUnique { property: String },
}

/// What a value must look like.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Bool,
    Date,
    DateTime,
    /// Option values, and the value of each label; `multi` for a multi-select (`checkbox`).
    Enumeration {
        values: BTreeSet<String>,
        by_label: BTreeMap<String, String>,
        multi: bool,
    },
    Email,
    Phone,
    /// The record id: a positive integer.
    RecordId,
}

/// One mapped column.
#[derive(Clone, Debug)]
struct Target {
    column: usize,
    property: String,
    kind: Kind,
}

/// The checks of one push: its columns' properties and their kinds.
#[derive(Clone, Debug)]
pub struct Rules {
    targets: Vec<Target>,
    /// Index into `targets` of the id property.
    id: usize,
    /// Indexes into `targets` of the properties a create needs (rows can always create,
    /// except when matched on the record id).
    required: Vec<usize>,
    region: Option<phonenumber::country::Id>,
}

/// One bad value of a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub property: String,
    /// What is wrong, without the value (reports may be read by others than the data's owner).
    pub reason: String,
}

/// A row ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The id property's value as sent (an email lower-cased): rows with the same key are the
    /// same record.
    pub key: String,
    /// Property values to write, the id property's included.
    pub properties: BTreeMap<String, String>,
}

impl Rules {
    /// The rules for pushing `columns` (a source's column names) to `object`, whose property
    /// definitions are `defs`, matched on `id_property`: each column goes to the property
    /// `renames` names for it, else to the property of its own name; columns in `not_written`
    /// (an association's) go to none.
    pub fn new(
        object: &str,
        defs: &[PropertyDefinition],
        columns: &[String],
        renames: &BTreeMap<String, String>,
        id_property: &str,
        not_written: &BTreeSet<String>,
        region: Option<phonenumber::country::Id>,
    ) -> Result<Rules, MappingError> {
        let mut targets: Vec<Target> = Vec::new();
        for (i, column) in columns.iter().enumerate() {
            if not_written.contains(column) {
                continue;
            }
            let property = renames.get(column).unwrap_or(column).clone();
            if let Some(first) = targets.iter().find(|t| t.property == property) {
                return Err(MappingError::TwoColumns {
                    property,
                    first: columns[first.column].clone(),
                    second: column.clone(),
                });
            }
            let kind = if property == RECORD_ID {
                Kind::RecordId
            } else {
                let def = defs.iter().find(|d| d.name == property && !d.archived).ok_or_else(|| {
                    MappingError::UnknownProperty {
                        object: object.to_owned(),
                        column: column.clone(),
                        property: property.clone(),
                    }
                })?;
                if def.modification_metadata.read_only_value || def.calculated {
                    return Err(MappingError::ReadOnly { column: column.clone(), property });
                }
                kind_of(def)
            };
            targets.push(Target { column: i, property, kind });
        }
        let id = targets
            .iter()
            .position(|t| t.property == id_property)
            .ok_or_else(|| MappingError::NoIdColumn { property: id_property.to_owned() })?;
        let unique = id_property == RECORD_ID
            || (object == "contacts" && id_property == "email")
            || defs.iter().any(|d| d.name == id_property && d.has_unique_value);
        if !unique {
            return Err(MappingError::NotUnique { property: id_property.to_owned() });
        }
        let mut required = Vec::new();
        if id_property != RECORD_ID {
            for property in crate::hubspot::catalogue::required_on_create(object) {
                let at = targets.iter().position(|t| t.property == *property).ok_or_else(|| {
                    MappingError::MissingRequired { object: object.to_owned(), property: (*property).to_owned() }
                })?;
                required.push(at);
            }
        }
        Ok(Rules { targets, id, required, region })
    }

    /// Whether HubSpot already holds every value of `checked` (`stored`: the record's current
    /// values as HubSpot reads them back), compared as the property's kind compares: numbers
    /// by value, instants by time, multi-select options as sets, emails ignoring case.
    pub fn unchanged(&self, checked: &Checked, stored: &BTreeMap<String, Option<String>>) -> bool {
        self.targets.iter().all(|target| {
            let Some(sent) = checked.properties.get(&target.property) else { return true };
            if target.kind == Kind::RecordId {
                return true;
            }
            let Some(held) = stored.get(&target.property).and_then(Option::as_deref).filter(|v| !v.is_empty()) else {
                return false;
            };
            let Ok(held) = normalise(&target.kind, held.trim(), self.region) else { return false };
            same_value(&target.kind, sent, &held)
        })
    }

    /// The properties whose current values [`Rules::unchanged`] needs.
    pub fn properties(&self) -> Vec<String> {
        self.targets.iter().filter(|t| t.kind != Kind::RecordId).map(|t| t.property.clone()).collect()
    }

    /// Whether rows are matched on the record id (updates only).
    pub fn by_record_id(&self) -> bool {
        self.targets[self.id].kind == Kind::RecordId
    }

    /// The id property.
    pub fn id_property(&self) -> &str {
        &self.targets[self.id].property
    }

    /// Checks one row (values in the source's column order) and returns what to send, or every
    /// problem it has.
    pub fn check(&self, row: &[Option<String>]) -> Result<Checked, Vec<Problem>> {
        let mut properties = BTreeMap::new();
        let mut problems = Vec::new();
        for (i, target) in self.targets.iter().enumerate() {
            let text = row.get(target.column).and_then(Option::as_deref).map(str::trim).filter(|t| !t.is_empty());
            let Some(text) = text else {
                if i == self.id {
                    problems.push(Problem {
                        property: target.property.clone(),
                        reason: "the id property is empty: the row matches no record".to_owned(),
                    });
                } else if self.required.contains(&i) {
                    problems.push(Problem {
                        property: target.property.clone(),
                        reason: "empty, and HubSpot needs it to create the record".to_owned(),
                    });
                }
                continue;
            };
            match normalise(&target.kind, text, self.region) {
                Ok(value) => {
                    properties.insert(target.property.clone(), value);
                }
                Err(reason) => problems.push(Problem { property: target.property.clone(), reason }),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let id = &self.targets[self.id];
        let key = properties[&id.property].clone();
        let key = if id.kind == Kind::Email { key.to_lowercase() } else { key };
        Ok(Checked { key, properties })
    }
}

fn kind_of(def: &PropertyDefinition) -> Kind {
    match (def.kind.as_str(), def.field_type.as_str()) {
        (_, "phonenumber") | ("phone_number", _) => Kind::Phone,
        ("number", _) => Kind::Number,
        ("bool", _) => Kind::Bool,
        ("date", _) => Kind::Date,
        ("datetime", _) => Kind::DateTime,
        ("enumeration", field_type) => Kind::Enumeration {
            values: def.options.iter().map(|o| o.value.clone()).collect(),
            by_label: def.options.iter().map(|o| (o.label.to_lowercase(), o.value.clone())).collect(),
            multi: field_type == "checkbox",
        },
        _ if def.name == "email" => Kind::Email,
        _ => Kind::Text,
    }
}

/// The value to send for `text` (trimmed, non-empty), or why it cannot be sent.
fn normalise(kind: &Kind, text: &str, region: Option<phonenumber::country::Id>) -> Result<String, String> {
    match kind {
        Kind::Text => {
            let chars = text.chars().count();
            if chars > MAX_VALUE_CHARS {
                return Err(format!("{chars} characters, more than HubSpot's {MAX_VALUE_CHARS}"));
            }
            Ok(text.to_owned())
        }
        Kind::RecordId => match text.parse::<u64>() {
            Ok(id) if id > 0 => Ok(id.to_string()),
            _ => Err("not a record id (a positive integer)".to_owned()),
        },
        Kind::Number => number(text),
        Kind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "t" | "y" => Ok("true".to_owned()),
            "false" | "no" | "0" | "f" | "n" => Ok("false".to_owned()),
            _ => Err("not a boolean (true/false, yes/no, 1/0)".to_owned()),
        },
        Kind::Date => date(text),
        Kind::DateTime => datetime_ms(text).map(|ms| ms.to_string()),
        Kind::Enumeration { values, by_label, multi } => {
            let parts: Vec<&str> =
                if *multi { text.split(';').map(str::trim).filter(|p| !p.is_empty()).collect() } else { vec![text] };
            let mut chosen = Vec::with_capacity(parts.len());
            for part in parts {
                let value = if values.contains(part) {
                    part.to_owned()
                } else if let Some(value) = by_label.get(&part.to_lowercase()) {
                    value.clone()
                } else {
                    return Err(format!("not one of the property's {} options", values.len()));
                };
                if !chosen.contains(&value) {
                    chosen.push(value);
                }
            }
            Ok(chosen.join(";"))
        }
        Kind::Email => {
            let address =
                email_address::EmailAddress::from_str(text).map_err(|e| format!("not an email address ({e})"))?;
            if !address.domain().contains('.') {
                return Err("not an email address (its domain has no dot)".to_owned());
            }
            Ok(address.as_str().to_owned())
        }
        Kind::Phone => {
            let parsed = phonenumber::parse(region, text).map_err(|_| {
                if region.is_none() && !text.starts_with('+') {
                    "not a phone number with a country code (+...); or set push.default_region".to_owned()
                } else {
                    "not a phone number".to_owned()
                }
            })?;
            if !phonenumber::is_valid(&parsed) {
                return Err("not a valid phone number for its country".to_owned());
            }
            Ok(parsed.format().mode(phonenumber::Mode::E164).to_string())
        }
    }
}

/// Whether two normalised values of `kind` are the same value.
fn same_value(kind: &Kind, a: &str, b: &str) -> bool {
    match kind {
        Kind::Number => decimal_digits(a) == decimal_digits(b),
        Kind::Email => a.eq_ignore_ascii_case(b),
        Kind::Enumeration { multi: true, .. } => {
            a.split(';').collect::<BTreeSet<_>>() == b.split(';').collect::<BTreeSet<_>>()
        }
        _ => a == b,
    }
}

/// A plain decimal's sign and significant digits, so `012.50` and `12.5` compare equal and
/// `-0` equals `0`.
fn decimal_digits(text: &str) -> (bool, String, String) {
    let negative = text.starts_with('-');
    let digits = text.trim_start_matches(['-', '+']);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let whole = whole.trim_start_matches('0').to_owned();
    let fraction = fraction.trim_end_matches('0').to_owned();
    let zero = whole.is_empty() && fraction.is_empty();
    (negative && !zero, whole, fraction)
}

/// A decimal as HubSpot takes it: no exponent, no thousands separators, finite.
fn number(text: &str) -> Result<String, String> {
    let plain = text.strip_prefix('+').unwrap_or(text);
    let digits = plain.strip_prefix('-').unwrap_or(plain);
    let mut parts = digits.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next();
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let ok = all_digits(whole)
        && fraction.is_none_or(|f| all_digits(f) && !f.is_empty())
        && !(whole.is_empty() && fraction.is_none());
    if !ok {
        return Err("not a number (digits, an optional sign and decimal point; no exponent or separators)".to_owned());
    }
    Ok(plain.to_owned())
}

fn date(text: &str) -> Result<String, String> {
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.format("%Y-%m-%d").to_string());
    }
    match datetime_ms(text) {
        Ok(ms) if ms.rem_euclid(86_400_000) == 0 => {
            Ok(Utc.timestamp_millis_opt(ms).single().map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default())
        }
        Ok(_) => Err("a date must be a day (YYYY-MM-DD) or midnight UTC".to_owned()),
        Err(_) => Err("not a date (YYYY-MM-DD)".to_owned()),
    }
}

/// Epoch milliseconds of an RFC 3339 instant, a `YYYY-MM-DD HH:MM:SS` (UTC) or epoch ms.
fn datetime_ms(text: &str) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).unwrap_or_default());
    }
    match text.parse::<i64>() {
        Ok(ms) if ms.abs() < 100_000_000_000_000 => Ok(ms),
        _ => Err("not a date and time (RFC 3339, YYYY-MM-DD HH:MM:SS in UTC, or epoch milliseconds)".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hubspot::model::PropertyOption;

    fn def(name: &str, kind: &str, field_type: &str, options: &[(&str, &str)]) -> PropertyDefinition {
        let mut d: PropertyDefinition =
            serde_json::from_value(serde_json::json!({"name": name, "type": kind, "fieldType": field_type})).unwrap();
        d.options = options
            .iter()
            .map(|(label, value)| PropertyOption { label: (*label).into(), value: (*value).into() })
            .collect();
        d
    }

    fn defs() -> Vec<PropertyDefinition> {
        let mut read_only = def("hs_lead_status_calc", "string", "text", &[]);
        read_only.modification_metadata.read_only_value = true;
        let mut unique = def("erp_id", "string", "text", &[]);
        unique.has_unique_value = true;
        vec![
            def("email", "string", "text", &[]),
            def("score", "number", "number", &[]),
            def("vip", "bool", "booleancheckbox", &[]),
            def("renewal", "date", "date", &[]),
            def("seen", "datetime", "date", &[]),
            def("tier", "enumeration", "select", &[("Gold tier", "gold"), ("Silver", "silver")]),
            def("tags", "enumeration", "checkbox", &[("A", "a"), ("B", "b")]),
            def("phone", "string", "phonenumber", &[]),
            def("notes", "string", "textarea", &[]),
            read_only,
            unique,
        ]
    }

    fn columns(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn rules(names: &[&str], id: &str) -> Rules {
        let region = Some(phonenumber::country::Id::US);
        Rules::new("contacts", &defs(), &columns(names), &BTreeMap::new(), id, &BTreeSet::new(), region).unwrap()
    }

    fn row(values: &[&str]) -> Vec<Option<String>> {
        values.iter().map(|v| Some((*v).to_owned())).collect()
    }

    #[test]
    fn values_leave_in_the_form_hubspot_documents() {
        let r = rules(&["email", "score", "vip", "renewal", "seen", "tier", "tags", "phone"], "email");
        let checked = r
            .check(&row(&[
                " Ada@Example.COM ",
                "-12.50",
                "Yes",
                "2026-03-01T00:00:00Z",
                "2026-03-01 10:00:00",
                "gold tier",
                "b; a;b",
                "(415) 555-2671",
            ]))
            .unwrap();
        assert_eq!(checked.key, "ada@example.com", "emails match whatever their case");
        let p = &checked.properties;
        assert_eq!(p["email"], "Ada@Example.COM");
        assert_eq!(p["score"], "-12.50");
        assert_eq!(p["vip"], "true");
        assert_eq!(p["renewal"], "2026-03-01");
        assert_eq!(p["seen"], "1772359200000");
        assert_eq!(p["tier"], "gold", "a label becomes its value");
        assert_eq!(p["tags"], "b;a", "multi-select: values, once each, no leading ;");
        assert_eq!(p["phone"], "+14155552671");
    }

    #[test]
    fn each_bad_value_is_named_with_its_reason_and_the_row_is_refused() {
        let r = rules(&["email", "score", "vip", "renewal", "tier", "tags", "phone"], "email");
        let problems = r
            .check(&row(&["ada@localhost", "1.4e-14", "maybe", "2026-03-01T10:00:00Z", "bronze", "a;z", "12"]))
            .unwrap_err();
        let named: Vec<&str> = problems.iter().map(|p| p.property.as_str()).collect();
        assert_eq!(named, ["email", "score", "vip", "renewal", "tier", "tags", "phone"]);
        assert!(problems[1].reason.contains("no exponent"), "{problems:?}");
        assert!(problems[3].reason.contains("midnight"), "{problems:?}");
        assert!(problems.iter().all(|p| !p.reason.contains("bronze")), "reasons never carry the value");
    }

    #[test]
    fn empty_values_are_not_sent_but_the_id_must_have_one() {
        let r = rules(&["email", "score"], "email");
        let checked = r.check(&[Some("a@b.co".into()), None]).unwrap();
        assert!(!checked.properties.contains_key("score"));
        let problems = r.check(&[Some("  ".into()), Some("3".into())]).unwrap_err();
        assert_eq!(problems[0].property, "email");
    }

    #[test]
    fn long_text_and_phones_without_a_region_are_refused() {
        let r = rules(&["email", "notes"], "email");
        let long = "x".repeat(MAX_VALUE_CHARS + 1);
        assert!(r.check(&row(&["a@b.co", &long])).unwrap_err()[0].reason.contains("65536"));
        let no_region = Rules::new(
            "contacts",
            &defs(),
            &columns(&["email", "phone"]),
            &BTreeMap::new(),
            "email",
            &BTreeSet::new(),
            None,
        )
        .unwrap();
        let problems = no_region.check(&row(&["a@b.co", "415 555 2671"])).unwrap_err();
        assert!(problems[0].reason.contains("default_region"), "{problems:?}");
        assert_eq!(
            no_region.check(&row(&["a@b.co", "+44 20 7946 0958"])).unwrap().properties["phone"],
            "+442079460958"
        );
    }

    #[test]
    fn mappings_that_cannot_work_refuse_the_whole_push() {
        let new = |names: &[&str], renames: &[(&str, &str)], id: &str| {
            let renames = renames.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect();
            Rules::new("contacts", &defs(), &columns(names), &renames, id, &BTreeSet::new(), None).map(|_| ())
        };
        assert!(matches!(new(&["email", "nope"], &[], "email"), Err(MappingError::UnknownProperty { .. })));
        assert!(matches!(new(&["email", "hs_lead_status_calc"], &[], "email"), Err(MappingError::ReadOnly { .. })));
        assert!(matches!(new(&["score"], &[], "email"), Err(MappingError::NoIdColumn { .. })));
        assert!(matches!(new(&["email", "mail"], &[("mail", "email")], "email"), Err(MappingError::TwoColumns { .. })));
        assert!(matches!(new(&["notes"], &[], "notes"), Err(MappingError::NotUnique { .. })));
        assert_eq!(new(&["erp", "score"], &[("erp", "erp_id")], "erp_id"), Ok(()));
        assert_eq!(new(&["hs_object_id", "score"], &[], "hs_object_id"), Ok(()));
    }

    #[test]
    fn record_ids_are_positive_integers() {
        let r = rules(&["hs_object_id", "score"], "hs_object_id");
        assert!(r.by_record_id());
        assert_eq!(r.check(&row(&["0042", "1"])).unwrap().key, "42");
        assert!(r.check(&row(&["-3", "1"])).is_err());
        assert!(r.check(&row(&["abc", "1"])).is_err());
    }

    #[test]
    fn a_row_is_unchanged_when_hubspot_holds_the_same_values_in_its_read_form() {
        let r = rules(&["email", "score", "seen", "tags", "phone"], "email");
        let checked = r.check(&row(&["ada@x.io", "12.50", "2026-03-01 10:00:00", "b;a", "+1 415 555 2671"])).unwrap();
        let stored = |score: &str| -> BTreeMap<String, Option<String>> {
            [
                ("email", "Ada@X.io"),
                ("score", score),
                ("seen", "2026-03-01T10:00:00.000Z"),
                ("tags", "a;b"),
                ("phone", "(415) 555-2671"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Some(v.to_owned())))
            .collect()
        };
        assert!(r.unchanged(&checked, &stored("012.5")), "numbers by value, instants by time, options as sets");
        assert!(!r.unchanged(&checked, &stored("12.51")));
        let mut missing = stored("12.5");
        missing.insert("tags".into(), None);
        assert!(!r.unchanged(&checked, &missing), "a value HubSpot lacks is a change");
        let empty_sent = r.check(&[Some("ada@x.io".into()), None, None, None, None]).unwrap();
        assert!(r.unchanged(&empty_sent, &stored("1")), "an empty cell sends nothing, so changes nothing");
    }

    #[test]
    fn a_task_needs_its_timestamp_unless_matched_on_the_record_id() {
        let mut task_defs =
            vec![def("hs_timestamp", "datetime", "date", &[]), def("hs_task_subject", "string", "text", &[])];
        let mut key = def("alert_key", "string", "text", &[]);
        key.has_unique_value = true;
        task_defs.push(key);
        let none = BTreeSet::new();
        let new = |names: &[&str], id: &str| {
            Rules::new("tasks", &task_defs, &columns(names), &BTreeMap::new(), id, &none, None)
        };
        assert!(matches!(
            new(&["alert_key", "hs_task_subject"], "alert_key"),
            Err(MappingError::MissingRequired { property, .. }) if property == "hs_timestamp"
        ));
        assert!(new(&["hs_object_id", "hs_task_subject"], "hs_object_id").is_ok(), "updates create nothing");
        let r = new(&["alert_key", "hs_timestamp", "hs_task_subject"], "alert_key").unwrap();
        let problems = r.check(&[Some("k1".into()), None, Some("Call".into())]).unwrap_err();
        assert_eq!(problems[0].property, "hs_timestamp");
        assert!(r.check(&row(&["k1", "2026-03-01T00:00:00Z", "Call"])).is_ok());
    }

    #[test]
    fn an_association_column_is_no_property() {
        let skip: BTreeSet<String> = ["company_domain".to_owned()].into();
        let r = Rules::new(
            "contacts",
            &defs(),
            &columns(&["email", "company_domain"]),
            &BTreeMap::new(),
            "email",
            &skip,
            None,
        )
        .unwrap();
        assert_eq!(r.properties(), ["email"]);
        assert_eq!(r.check(&row(&["a@b.co", "acme.io"])).unwrap().properties.len(), 1);
    }
}
