//! From HubSpot to the warehouse: property type to column type, property name to column name,
//! and HubSpot's string values to typed values.
//!
//! # Column names
//! A column is named after its property, unchanged (HubSpot's internal names are lower-case ASCII;
//! reserved words such as `order` work because every dialect quotes identifiers). Two cases are
//! renamed, deterministically:
//! - a name longer than 63 bytes (Postgres's limit, used by every dialect so names agree) keeps
//!   its first 54 bytes, then `_` and 8 hex digits of the FNV-1a hash of the full name;
//! - the names `id` and anything starting with `_hsync_` get a `p_` prefix, so they never
//!   collide with hsync's own columns.

use std::borrow::Cow;

use arrow::datatypes::{i256, Decimal256Type, DecimalType};

use super::{ColumnType, DECIMAL_PRECISION, DECIMAL_SCALE};
use crate::hubspot::model::PropertyDefinition;

/// The longest identifier every supported dialect accepts (Postgres: 63 bytes).
pub const MAX_IDENTIFIER_BYTES: usize = 63;
pub(super) const KEPT_PREFIX_BYTES: usize = 54;

/// The column type for a property definition.
pub fn column_type(def: &PropertyDefinition) -> ColumnType {
    match def.kind.as_str() {
        "number" => ColumnType::Decimal,
        "bool" | "boolean" => ColumnType::Boolean,
        "date" => ColumnType::Date,
        "datetime" => ColumnType::Timestamp,
        "json" | "object_coordinates" => ColumnType::Json,
        // string, enumeration (multi-select stays "a;b"), phone_number, and unknown types.
        _ => ColumnType::Text,
    }
}

pub(super) fn fnv1a32(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// The column name for a property (see the module docs for the rule).
pub fn column_name(property: &str) -> String {
    let name =
        if property == "id" || property.starts_with("_hsync_") { format!("p_{property}") } else { property.to_owned() };
    if name.len() <= MAX_IDENTIFIER_BYTES {
        return name;
    }
    let mut cut = KEPT_PREFIX_BYTES;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{:08x}", &name[..cut], fnv1a32(property))
}

/// A HubSpot value parsed for its column.
#[derive(Clone, Debug, PartialEq)]
pub enum ParsedValue<'a> {
    Null,
    Text(Cow<'a, str>),
    Decimal(i256),
    Boolean(bool),
    /// Days since the Unix epoch.
    Date(i32),
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp(i64),
    Json(Cow<'a, str>),
    BigInt(i64),
}

/// A parsed value, and how it differs from what HubSpot sent when it had to be changed to be
/// storable (the batch builder records the change as a reject).
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed<'a> {
    pub value: ParsedValue<'a>,
    pub altered: Option<Altered>,
}

impl<'a> Parsed<'a> {
    fn exact(value: ParsedValue<'a>) -> Self {
        Parsed { value, altered: None }
    }
}

/// Why a value was stored changed, with the original in a form every warehouse can hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Altered {
    pub raw: String,
    pub reason: &'static str,
}

const NUL_REASON: &str =
    "the text holds a NUL character, which Postgres and other warehouses cannot store; stored with U+FFFD in its place";

/// Text as every destination can store it: a NUL character (which Postgres text and `jsonb`
/// refuse) becomes U+FFFD, in every destination alike so they all hold the same value; the
/// original is kept with `\u0000` escapes.
pub fn storable_text(raw: &str) -> (Cow<'_, str>, Option<Altered>) {
    if !raw.contains('\0') {
        return (Cow::Borrowed(raw), None);
    }
    let altered = Altered { raw: raw.replace('\0', "\\u0000"), reason: NUL_REASON };
    (Cow::Owned(raw.replace('\0', "\u{FFFD}")), Some(altered))
}

/// A JSON value as every destination can store it: NUL characters in its strings (a `\u0000`
/// escape, which Postgres `jsonb` refuses) become U+FFFD.
fn storable_json(raw: &str) -> Result<(Cow<'_, str>, Option<Altered>), String> {
    if !raw.contains("\\u0000") && !raw.contains('\0') {
        serde_json::from_str::<serde::de::IgnoredAny>(raw).map_err(|e| format!("not JSON: {e}"))?;
        return Ok((Cow::Borrowed(raw), None));
    }
    let mut value: serde_json::Value = serde_json::from_str(raw).map_err(|e| format!("not JSON: {e}"))?;
    if !replace_nul(&mut value) {
        return Ok((Cow::Borrowed(raw), None));
    }
    let altered = Altered { raw: raw.replace('\0', "\\u0000"), reason: NUL_REASON };
    Ok((Cow::Owned(value.to_string()), Some(altered)))
}

/// Replaces NUL characters in every string and key of `value`; true when there was one.
fn replace_nul(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    let fix = |s: &str| s.contains('\0').then(|| s.replace('\0', "\u{FFFD}"));
    match value {
        Value::String(s) => fix(s).map(|fixed| *s = fixed).is_some(),
        Value::Array(items) => {
            let mut found = false;
            for v in items {
                found |= replace_nul(v);
            }
            found
        }
        Value::Object(map) => {
            let mut found = false;
            let entries = std::mem::take(map);
            for (key, mut v) in entries {
                found |= replace_nul(&mut v);
                match fix(&key) {
                    Some(fixed) => {
                        found = true;
                        map.insert(fixed, v);
                    }
                    None => {
                        map.insert(key, v);
                    }
                }
            }
            found
        }
        _ => false,
    }
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: every dialect stores these.
const MIN_INSTANT_MS: i64 = -62_135_596_800_000;
const MAX_INSTANT_MS: i64 = 253_402_300_799_999;

/// Parses an instant: epoch milliseconds, RFC 3339 with or without a fraction, or a date.
/// Instants outside years 1 to 9999 are refused (no warehouse stores them).
pub fn parse_instant_ms(raw: &str) -> Option<i64> {
    parse_any_instant_ms(raw).filter(|ms| (MIN_INSTANT_MS..=MAX_INSTANT_MS).contains(ms))
}

fn parse_any_instant_ms(raw: &str) -> Option<i64> {
    let s = raw.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    // Some HubSpot values omit the zone; they are UTC.
    if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(naive.and_utc().timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Parses a HubSpot value for a column of type `ty`. An empty string is NULL for every typed
/// column (HubSpot clears values that way) but stays an empty string in text columns. A value
/// that does not parse is an error with the reason, never a panic; one that parses but had to be
/// changed to be storable says how ([`Parsed::altered`]).
pub fn parse_value(ty: ColumnType, raw: &str) -> Result<Parsed<'_>, String> {
    if raw.is_empty() {
        return Ok(Parsed::exact(match ty {
            ColumnType::Text => ParsedValue::Text(Cow::Borrowed(raw)),
            _ => ParsedValue::Null,
        }));
    }
    let value = match ty {
        ColumnType::Text => {
            let (text, altered) = storable_text(raw);
            return Ok(Parsed { value: ParsedValue::Text(text), altered });
        }
        ColumnType::Json => {
            let (json, altered) = storable_json(raw)?;
            return Ok(Parsed { value: ParsedValue::Json(json), altered });
        }
        ColumnType::Boolean => match raw.trim().to_ascii_lowercase().as_str() {
            "true" => ParsedValue::Boolean(true),
            "false" => ParsedValue::Boolean(false),
            _ => return Err("not true or false".to_owned()),
        },
        ColumnType::BigInt => {
            ParsedValue::BigInt(raw.trim().parse::<i64>().map_err(|e| format!("not an integer: {e}"))?)
        }
        ColumnType::Decimal => ParsedValue::Decimal(parse_decimal(raw.trim())?),
        ColumnType::Timestamp => ParsedValue::Timestamp(parse_instant_ms(raw).ok_or_else(|| {
            "not a date-time between the years 1 and 9999 (no warehouse stores instants outside them)".to_owned()
        })?),
        ColumnType::Date => ParsedValue::Date(parse_date_days(raw.trim()).ok_or_else(|| {
            "not a date between the years 1 and 9999 (no warehouse stores dates outside them)".to_owned()
        })?),
    };
    Ok(Parsed::exact(value))
}

/// Parses a date (`YYYY-MM-DD`, or an instant HubSpot sent for one) as days since the Unix
/// epoch; dates outside years 1 to 9999, which some warehouses cannot store, are refused.
fn parse_date_days(s: &str) -> Option<i32> {
    let date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .or_else(|| parse_instant_ms(s).and_then(chrono::DateTime::from_timestamp_millis).map(|dt| dt.date_naive()))?;
    (1..=9999)
        .contains(&chrono::Datelike::year(&date))
        .then(|| chrono::Datelike::num_days_from_ce(&date) - EPOCH_DAYS_FROM_CE)
}

fn parse_decimal(s: &str) -> Result<i256, String> {
    // Reject what Arrow's parser would round or misread: exponents, more than 38 fraction
    // digits, more than 38 integer digits.
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let well_formed = !digits.is_empty()
        && (!int.is_empty() || !frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return Err("not a decimal number".to_owned());
    }
    if frac.len() > DECIMAL_SCALE as usize {
        return Err(format!("more than {DECIMAL_SCALE} digits after the decimal point"));
    }
    if int.trim_start_matches('0').len() > (DECIMAL_PRECISION as usize - DECIMAL_SCALE as usize) {
        return Err(format!("more than {} digits before the decimal point", DECIMAL_PRECISION as i8 - DECIMAL_SCALE));
    }
    arrow::compute::kernels::cast_utils::parse_decimal::<Decimal256Type>(s, DECIMAL_PRECISION, DECIMAL_SCALE)
        .map_err(|e| format!("not a decimal number: {e}"))
}

/// Formats a decimal from a batch as its shortest exact text (`0.1`, not `0.1000…`).
pub fn format_decimal(value: i256) -> String {
    let text = arrow::datatypes::Decimal256Type::format_decimal(value, DECIMAL_PRECISION, DECIMAL_SCALE);
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: &str) -> PropertyDefinition {
        serde_json::from_value(serde_json::json!({ "name": "p", "type": kind })).unwrap()
    }

    #[test]
    fn property_types_map_to_columns() {
        assert_eq!(column_type(&def("number")), ColumnType::Decimal);
        assert_eq!(column_type(&def("bool")), ColumnType::Boolean);
        assert_eq!(column_type(&def("date")), ColumnType::Date);
        assert_eq!(column_type(&def("datetime")), ColumnType::Timestamp);
        assert_eq!(column_type(&def("enumeration")), ColumnType::Text);
        assert_eq!(column_type(&def("phone_number")), ColumnType::Text);
        assert_eq!(column_type(&def("json")), ColumnType::Json);
        assert_eq!(column_type(&def("something_new")), ColumnType::Text);
    }

    #[test]
    fn column_names_are_kept_or_renamed_deterministically() {
        assert_eq!(column_name("order"), "order");
        assert_eq!(column_name("id"), "p_id");
        assert_eq!(column_name("_hsync_cursor"), "p__hsync_cursor");
        let long = "a_very_long_custom_property_name_that_goes_well_past_the_postgres_identifier_limit";
        let renamed = column_name(long);
        assert_eq!(renamed.len(), 63);
        assert_eq!(renamed, column_name(long), "deterministic");
        assert!(renamed.starts_with(&long[..54]));
        let other = format!("{}_other", &long[..60]);
        assert_ne!(column_name(&other), renamed, "names sharing a prefix stay distinct");
        let unicode = "ñ".repeat(40); // 80 bytes
        assert!(column_name(&unicode).len() <= 63);
    }

    #[test]
    fn decimals_round_trip_exactly() {
        for s in ["0.1", "12345678901234.56", "123456789012345678901234.56789", "-0.000000000000000001", "42", "0"] {
            let ParsedValue::Decimal(v) = parse_value(ColumnType::Decimal, s).unwrap().value else { panic!() };
            assert_eq!(format_decimal(v), s.trim_start_matches('+'), "{s}");
        }
        assert!(parse_value(ColumnType::Decimal, "1e5").is_err());
        assert!(parse_value(ColumnType::Decimal, "12abc").is_err());
        assert!(parse_value(ColumnType::Decimal, &"9".repeat(39)).is_err());
        assert_eq!(parse_value(ColumnType::Decimal, "").unwrap().value, ParsedValue::Null);
    }

    #[test]
    fn instants_accept_iso_with_or_without_fraction_and_epoch_ms() {
        let expected = 1_767_225_600_000;
        for s in ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.000Z", "1767225600000", "2026-01-01T01:00:00+01:00"] {
            assert_eq!(parse_value(ColumnType::Timestamp, s).unwrap().value, ParsedValue::Timestamp(expected), "{s}");
        }
        assert_eq!(parse_value(ColumnType::Date, "2026-01-01").unwrap().value, ParsedValue::Date(20_454));
        assert_eq!(parse_value(ColumnType::Date, "1767225600000").unwrap().value, ParsedValue::Date(20_454));
        assert!(parse_value(ColumnType::Timestamp, "next tuesday").is_err());
        assert!(parse_value(ColumnType::Timestamp, "253402300800000").is_err(), "year 10000");
        assert!(parse_value(ColumnType::Date, "-62135596800001").is_err(), "before year 1");
    }

    #[test]
    fn empty_is_null_for_typed_columns_but_empty_text_stays() {
        assert_eq!(parse_value(ColumnType::Text, "").unwrap().value, ParsedValue::Text("".into()));
        assert_eq!(parse_value(ColumnType::Boolean, "").unwrap().value, ParsedValue::Null);
        assert_eq!(parse_value(ColumnType::Boolean, "TRUE").unwrap().value, ParsedValue::Boolean(true));
        assert!(parse_value(ColumnType::Boolean, "yes please").is_err());
        assert!(parse_value(ColumnType::Json, "{not json").is_err());
    }

    #[test]
    fn dates_outside_years_1_to_9999_are_refused_like_instants() {
        for bad in ["-0001-01-01", "0000-12-31", "+10000-01-01", "-62135596800001"] {
            assert!(parse_value(ColumnType::Date, bad).is_err(), "{bad}");
        }
        assert_eq!(parse_value(ColumnType::Date, "0001-01-01").unwrap().value, ParsedValue::Date(-719_162));
        assert_eq!(parse_value(ColumnType::Date, "9999-12-31").unwrap().value, ParsedValue::Date(2_932_896));
    }

    #[test]
    fn nul_characters_become_replacement_characters_with_the_original_kept_escaped() {
        let parsed = parse_value(ColumnType::Text, "a\0b").unwrap();
        assert_eq!(parsed.value, ParsedValue::Text("a\u{FFFD}b".into()));
        assert_eq!(parsed.altered.unwrap().raw, "a\\u0000b");
        assert_eq!(parse_value(ColumnType::Text, "plain").unwrap().altered, None);
        let json = parse_value(ColumnType::Json, r#"{"k\u0000":["x\u0000"],"n":1}"#).unwrap();
        assert_eq!(json.value, ParsedValue::Json("{\"k\u{FFFD}\":[\"x\u{FFFD}\"],\"n\":1}".into()));
        assert!(json.altered.is_some());
        let escaped_backslash = r#"{"k":"\\u0000"}"#; // the text backslash-u0000, not a NUL
        assert_eq!(parse_value(ColumnType::Json, escaped_backslash).unwrap().altered, None);
    }
}
