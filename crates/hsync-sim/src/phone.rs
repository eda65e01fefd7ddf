//! The searchable form of a phone number, as HubSpot's `hs_searchable_calculated_*` properties
//! hold it: "Phone numbers: searched through `hs_searchable_calculated_*` properties using only
//! area code + local number; do not send the country code" (HubSpot's search guide;
//! /work/shared/docs/hubspot-api.md §4). Which properties carry it: `catalogue::SEARCHABLE_PHONES`.

/// The national significant number of `phone` as digits only (`+1 (415) 555-2671` →
/// `4155552671`, `+44 20 7946 0958` → `2079460958`), or `None` when it has no digits.
///
/// A number with `+` and a country code is parsed by the `phonenumber` crate. Anything else (no
/// `+`, or a `+` number the crate cannot parse) keeps its digits as given, except that an
/// 11-digit number starting with `1` (a North American number written with its country code but
/// without `+`) loses the `1`. HubSpot does not document how it treats such numbers: that part is
/// the simulator's choice.
pub fn searchable(phone: &str) -> Option<String> {
    let phone = phone.trim();
    if phone.starts_with('+') {
        if let Ok(parsed) = phonenumber::parse(None, phone) {
            return Some(parsed.national().to_string());
        }
    }
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    match digits.len() {
        0 => None,
        11 if digits.starts_with('1') => Some(digits[1..].to_owned()),
        _ => Some(digits),
    }
}

#[cfg(test)]
mod tests {
    use super::searchable;

    #[test]
    fn international_numbers_lose_their_country_code_and_punctuation() {
        assert_eq!(searchable("+1 (415) 555-2671").as_deref(), Some("4155552671"));
        assert_eq!(searchable("+1 415-555-2671").as_deref(), Some("4155552671"));
        assert_eq!(searchable("+44 20 7946 0958").as_deref(), Some("2079460958"));
        assert_eq!(searchable(" +14155552671 ").as_deref(), Some("4155552671"));
        // Italy keeps the leading zero of its fixed lines in the national number.
        assert_eq!(searchable("+39 06 6982 1234").as_deref(), Some("0669821234"));
        // The extension is not part of the number.
        assert_eq!(searchable("+1 415-555-2671 ext. 12").as_deref(), Some("4155552671"));
    }

    #[test]
    fn numbers_without_a_country_code_keep_their_digits() {
        assert_eq!(searchable("(415) 555-2671").as_deref(), Some("4155552671"));
        assert_eq!(searchable("1-415-555-2671").as_deref(), Some("4155552671"));
        assert_eq!(searchable("020 7946 0958").as_deref(), Some("02079460958"));
        assert_eq!(searchable("555-0100").as_deref(), Some("5550100"));
        assert_eq!(searchable("call me"), None);
        assert_eq!(searchable(""), None);
    }
}
