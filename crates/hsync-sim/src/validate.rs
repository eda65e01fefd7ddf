//! The checks HubSpot makes on property values written through the API (docs/hubspot-write-api.md
//! §3): a value must suit its property's definition, or the write is refused with one
//! [`PropertyProblem`] per bad property. The admin API skips these checks, so tests can plant
//! values HubSpot would refuse.
//!
//! What HubSpot documents (or real answers show), each rule's source in the write-API notes:
//! numbers are plain decimals (`INVALID_INTEGER`, exponent notation refused), `date` values are
//! `YYYY-MM-DD` or epoch milliseconds at midnight UTC (`INVALID_DATE`), `datetime` values epoch
//! milliseconds or ISO 8601, booleans and enumerations take an option's `value`
//! (`INVALID_OPTION`), a multi-select takes `;`-separated values, contacts' `email` must look
//! like an address (`INVALID_EMAIL`), a value holds at most 65,536 characters, and `""` always
//! clears. Details no source gives (the 65,536 code name, the message of a date that does not
//! parse, the exact options list in `INVALID_OPTION`) are the simulator's choices, listed as
//! UNVERIFIED in docs/simulator.md.

use std::collections::BTreeMap;

use super::portal::{PropertyDef, PropertySet};

/// The longest value HubSpot stores ("A plain text string, limited to 65,536 characters").
pub const MAX_VALUE_CHARS: usize = 65_536;

/// The simulator's code for a value over [`MAX_VALUE_CHARS`]. UNVERIFIED: no source names it.
pub const TOO_LONG: &str = "VALUE_TOO_LONG";

const DAY_MS: i64 = 86_400_000;

/// One property of a write HubSpot refuses, as its `errors[]` and the JSON array in its
/// message name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertyProblem {
    pub name: String,
    /// HubSpot's `code` (`error` in the message's array): `INVALID_OPTION`, ...
    pub code: &'static str,
    pub message: String,
    /// The value sent (`propertyValue`), left out for unknown properties and values too long
    /// to repeat.
    pub value: Option<String>,
}

impl PropertyProblem {
    /// A property the type does not have.
    pub fn unknown(name: &str) -> PropertyProblem {
        PropertyProblem {
            name: name.to_owned(),
            code: "PROPERTY_DOESNT_EXIST",
            message: format!("Property \"{name}\" does not exist"),
            value: None,
        }
    }

    fn bad_value(def: &PropertyDef, code: &'static str, message: String, value: &str) -> PropertyProblem {
        PropertyProblem { name: def.name.clone(), code, message, value: Some(value.to_owned()) }
    }
}

/// Why a write's property values are refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A read-only or calculated property was written (answered as before: 400 naming it).
    ReadOnly(String),
    /// Unknown properties and values that do not suit their definitions.
    Problems(Vec<PropertyProblem>),
}

/// Checks the values of one write to a record of `type_name` (its path name, `contacts`).
/// `None` and `""` clear a value and are always accepted.
pub fn check_properties(
    type_name: &str,
    properties: &PropertySet,
    values: &BTreeMap<String, Option<String>>,
) -> Result<(), Refusal> {
    let mut problems = Vec::new();
    for (name, value) in values {
        let Some(def) = properties.live(name) else {
            problems.push(PropertyProblem::unknown(name));
            continue;
        };
        if def.read_only {
            return Err(Refusal::ReadOnly(name.clone()));
        }
        if let Some(problem) = value.as_deref().and_then(|v| check_value(type_name, def, v)) {
            problems.push(problem);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Refusal::Problems(problems))
    }
}

/// What is wrong with writing `value` to `def`, if anything.
pub fn check_value(type_name: &str, def: &PropertyDef, value: &str) -> Option<PropertyProblem> {
    if value.is_empty() {
        return None;
    }
    let chars = value.chars().count();
    if chars > MAX_VALUE_CHARS {
        return Some(PropertyProblem {
            name: def.name.clone(),
            code: TOO_LONG,
            message: format!(
                "Property \"{}\" is {chars} characters long; values are limited to {MAX_VALUE_CHARS} characters",
                def.name
            ),
            value: None,
        });
    }
    let bad = |code, message| Some(PropertyProblem::bad_value(def, code, message, value));
    if is_boolean(def) {
        return (value != "true" && value != "false")
            .then(|| PropertyProblem::bad_value(def, "INVALID_OPTION", not_an_option(def, value), value));
    }
    match def.kind.as_str() {
        "number" if !is_plain_decimal(value) => bad("INVALID_INTEGER", format!("{value} was not a valid number.")),
        "date" => check_date(value).err().and_then(|message| bad("INVALID_DATE", message)),
        "datetime" if !is_instant(value) => bad("INVALID_DATE", format!("{value} was not a valid date.")),
        "enumeration" if !def.options.is_empty() => {
            let allowed = |v: &str| def.options.iter().any(|(_, option)| option == v);
            let fits = if is_multi_select(def) {
                value.split(';').filter(|v| !v.is_empty()).all(allowed)
            } else {
                allowed(value)
            };
            (!fits).then(|| PropertyProblem::bad_value(def, "INVALID_OPTION", not_an_option(def, value), value))
        }
        _ if type_name == "contacts" && def.name == "email" && !is_plausible_email(value) => {
            bad("INVALID_EMAIL", format!("Email address {value} is invalid"))
        }
        _ => None,
    }
}

/// A yes/no property: `type: bool`, or an enumeration shown as a single checkbox.
fn is_boolean(def: &PropertyDef) -> bool {
    def.kind == "bool" || def.field_type == "booleancheckbox"
}

/// A multi-select enumeration: its value is `;`-separated options.
pub fn is_multi_select(def: &PropertyDef) -> bool {
    def.kind == "enumeration" && def.field_type == "checkbox"
}

/// `INVALID_OPTION`'s message: the value and the property's options (the list's exact layout is
/// UNVERIFIED; the captures quote `[label: "..."\nvalue: "..."...]`).
fn not_an_option(def: &PropertyDef, value: &str) -> String {
    let yes_no = [("Yes".to_owned(), "true".to_owned()), ("No".to_owned(), "false".to_owned())];
    let options = if def.options.is_empty() && is_boolean(def) { &yes_no[..] } else { &def.options[..] };
    let listed: Vec<String> =
        options.iter().map(|(label, value)| format!("label: \"{label}\"\nvalue: \"{value}\"\n")).collect();
    format!("{value} was not one of the allowed options: [{}]", listed.join(", "))
}

/// `17`, `-3`, `12.5`, `.5`: digits with at most one decimal point and an optional minus sign;
/// no exponent, no spaces, no `NaN` or `Infinity`.
fn is_plain_decimal(value: &str) -> bool {
    let unsigned = value.strip_prefix('-').unwrap_or(value);
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !(int.is_empty() && frac.is_empty()) && digits(int) && digits(frac)
}

/// Epoch milliseconds: an optional minus sign and digits that fit an `i64`.
fn epoch_millis(value: &str) -> Option<i64> {
    let unsigned = value.strip_prefix('-').unwrap_or(value);
    if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// A `date` value: `YYYY-MM-DD`, or epoch milliseconds at exactly midnight UTC. The message of
/// a non-midnight instant is HubSpot's (`1521225089103 is at 18:31:29.103 UTC, not midnight!`,
/// fields unpadded as in `13:1:0.0`).
fn check_date(value: &str) -> Result<(), String> {
    if let Some(ms) = epoch_millis(value) {
        let into_day = ms.rem_euclid(DAY_MS);
        if into_day == 0 {
            return Ok(());
        }
        let (h, m, s, milli) = (into_day / 3_600_000, into_day / 60_000 % 60, into_day / 1000 % 60, into_day % 1000);
        return Err(format!("{ms} is at {h}:{m}:{s}.{milli} UTC, not midnight!"));
    }
    if is_calendar_date(value) {
        Ok(())
    } else {
        Err(format!("{value} was not a valid date."))
    }
}

/// `YYYY-MM-DD`, a day that exists.
fn is_calendar_date(value: &str) -> bool {
    let b = value.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    shape && chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok()
}

/// A `datetime` value: epoch milliseconds, or ISO 8601 with a time and a zone
/// (`2025-01-02T03:04:05.678Z`, `2025-01-02T03:04:05+01:00`).
fn is_instant(value: &str) -> bool {
    epoch_millis(value).is_some() || chrono::DateTime::parse_from_rfc3339(value).is_ok()
}

/// One `@`, something before it, a domain with a dot inside it and no empty label, no
/// whitespace.
fn is_plausible_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else { return false };
    !local.is_empty()
        && !domain.contains('@')
        && !value.chars().any(char::is_whitespace)
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
}

/// `value` for a multi-select written over `old`: a leading `;` adds the values to those the
/// record holds instead of replacing them (HubSpot's properties guide), each value once.
pub fn multi_select_value(old: Option<&str>, value: &str) -> String {
    let Some(added) = value.strip_prefix(';') else { return value.to_owned() };
    let mut values: Vec<&str> = old.unwrap_or_default().split(';').filter(|v| !v.is_empty()).collect();
    for v in added.split(';').filter(|v| !v.is_empty()) {
        if !values.contains(&v) {
            values.push(v);
        }
    }
    values.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portal::{PropSource, Sensitivity};

    fn def(kind: &str, field: &str, options: &[&str]) -> PropertyDef {
        PropertyDef {
            name: "p".into(),
            label: "P".into(),
            kind: kind.into(),
            field_type: field.into(),
            group: "g".into(),
            options: options.iter().map(|o| (o.to_uppercase(), (*o).to_owned())).collect(),
            calculated: false,
            unique: false,
            hidden: false,
            hubspot_defined: false,
            read_only: false,
            archived_at: None,
            created_at: 0,
            updated_at: 0,
            display_order: 0,
            source: PropSource::Stored,
            sensitivity: Sensitivity::NonSensitive,
        }
    }

    fn code(def: &PropertyDef, value: &str) -> Option<&'static str> {
        check_value("deals", def, value).map(|p| p.code)
    }

    #[test]
    fn numbers_are_plain_decimals() {
        let n = def("number", "number", &[]);
        for ok in ["17", "-3", "12.5", ".5", "12.", "000123456789012345678901234567890.5", ""] {
            assert_eq!(code(&n, ok), None, "{ok}");
        }
        for bad in ["1.42e-14", "1E5", "abc", " 1", "1 ", "1,5", "NaN", "Infinity", "-", ".", "+1", "1.2.3"] {
            assert_eq!(code(&n, bad), Some("INVALID_INTEGER"), "{bad}");
        }
    }

    #[test]
    fn dates_are_days_or_midnight_instants() {
        let d = def("date", "date", &[]);
        assert_eq!(code(&d, "2025-02-28"), None);
        assert_eq!(code(&d, "1735689600000"), None, "2025-01-01T00:00:00Z");
        assert_eq!(code(&d, "-86400000"), None);
        for bad in ["2025-02-30", "2025-2-3", "2025-01-01T00:00:00Z", "yesterday"] {
            assert_eq!(code(&d, bad), Some("INVALID_DATE"), "{bad}");
        }
        let late = check_value("deals", &d, "1521225089103").unwrap();
        assert_eq!(late.message, "1521225089103 is at 18:31:29.103 UTC, not midnight!");
        let early = check_value("deals", &d, "1579179660000").unwrap();
        assert_eq!(early.message, "1579179660000 is at 13:1:0.0 UTC, not midnight!");
    }

    #[test]
    fn datetimes_are_epoch_millis_or_iso_instants() {
        let d = def("datetime", "date", &[]);
        for ok in ["1735689600123", "2025-01-02T03:04:05.678Z", "2025-01-02T03:04:05+01:00"] {
            assert_eq!(code(&d, ok), None, "{ok}");
        }
        for bad in ["2025-01-02 03:04", "2025-01-02T03:04:05", "tomorrow", "1.5"] {
            assert_eq!(code(&d, bad), Some("INVALID_DATE"), "{bad}");
        }
    }

    #[test]
    fn booleans_and_enumerations_take_option_values() {
        let b = def("bool", "booleancheckbox", &[]);
        assert_eq!((code(&b, "true"), code(&b, "false")), (None, None));
        for bad in ["True", "1", "yes"] {
            assert_eq!(code(&b, bad), Some("INVALID_OPTION"), "{bad}");
        }
        let one = def("enumeration", "select", &["alpha", "beta"]);
        assert_eq!(code(&one, "alpha"), None);
        assert_eq!(code(&one, "ALPHA"), Some("INVALID_OPTION"), "the label is not the value");
        assert_eq!(code(&one, "alpha;beta"), Some("INVALID_OPTION"), "one value only");
        let many = def("enumeration", "checkbox", &["red", "blue"]);
        for ok in ["red", "red;blue", ";blue"] {
            assert_eq!(code(&many, ok), None, "{ok}");
        }
        assert_eq!(code(&many, "red;green"), Some("INVALID_OPTION"));
        let open = def("enumeration", "select", &[]);
        assert_eq!(code(&open, "anything"), None, "no options listed: nothing to check against");
    }

    #[test]
    fn contact_emails_must_look_like_addresses() {
        let mut email = def("string", "text", &[]);
        email.name = "email".into();
        for ok in ["a@b.co", "first.last+tag@mail.example.com"] {
            assert_eq!(check_value("contacts", &email, ok), None, "{ok}");
        }
        for bad in ["plain", "@b.co", "a@b", "a@@b.co", "a b@c.co", "a@b..co", "a@.b.co", "a@b.co."] {
            let problem = check_value("contacts", &email, bad).unwrap_or_else(|| panic!("{bad} passed"));
            assert_eq!((problem.code, problem.message), ("INVALID_EMAIL", format!("Email address {bad} is invalid")));
        }
        assert_eq!(check_value("companies", &email, "plain"), None, "only contacts' email is an address");
    }

    #[test]
    fn values_are_limited_to_65536_characters() {
        let s = def("string", "textarea", &[]);
        assert_eq!(code(&s, &"é".repeat(MAX_VALUE_CHARS)), None, "characters, not bytes");
        assert_eq!(code(&s, &"x".repeat(MAX_VALUE_CHARS + 1)), Some(TOO_LONG));
    }

    #[test]
    fn a_leading_semicolon_adds_to_a_multi_select() {
        assert_eq!(multi_select_value(Some("red;blue"), ";green;red"), "red;blue;green");
        assert_eq!(multi_select_value(None, ";green"), "green");
        assert_eq!(multi_select_value(Some("red"), "blue"), "blue");
    }
}
