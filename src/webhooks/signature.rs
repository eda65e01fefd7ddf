//! HubSpot's v3 webhook signature, as pure decisions (docs/hubspot-api.md §13, from HubSpot's
//! "Validating requests" guide and its Python client's `signature.py`): the base64 of an
//! HMAC-SHA256, keyed with the app's client secret, over `method + uri + body + timestamp`,
//! where `uri` is the full URL HubSpot called with a fixed set of escapes decoded; a request
//! whose timestamp is more than five minutes away from now is refused. The caller gives the
//! clock, so every rule has a test.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a request's timestamp may be from now: HubSpot's five minutes.
pub const MAX_AGE_MS: i64 = 5 * 60 * 1_000;

/// The escapes HubSpot decodes in the URI before signing it; no other.
const DECODED: [(&str, char); 12] = [
    ("3A", ':'),
    ("2F", '/'),
    ("3F", '?'),
    ("40", '@'),
    ("21", '!'),
    ("24", '$'),
    ("27", '\''),
    ("28", '('),
    ("29", ')'),
    ("2A", '*'),
    ("2C", ','),
    ("3B", ';'),
];

/// Why a delivery was refused before its events were read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the request has no X-HubSpot-Signature-v3 header; HubSpot signs every webhook with it")]
    MissingSignature,
    #[error("the request has no X-HubSpot-Request-Timestamp header; HubSpot sends it with every webhook")]
    MissingTimestamp,
    #[error("X-HubSpot-Request-Timestamp is not epoch milliseconds")]
    BadTimestamp,
    #[error("the request's timestamp is more than five minutes from this clock: a replay, or a clock to fix")]
    Stale,
    #[error("the v3 signature does not match: check webhooks.target_url (exactly as set in the HubSpot app) and the client secret")]
    BadSignature,
}

impl Rejection {
    /// The `reason` label of the rejected-deliveries metric.
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::MissingSignature | Rejection::MissingTimestamp => "unsigned",
            Rejection::BadTimestamp | Rejection::Stale => "stale",
            Rejection::BadSignature => "bad_signature",
        }
    }
}

/// `uri` with HubSpot's listed escapes decoded (either case of hex digits); every other byte,
/// other escapes included, stays as it is.
pub fn canonical_uri(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at + 1..at + 3).map(str::to_ascii_uppercase);
        match DECODED.iter().find(|(hex, _)| Some(*hex) == escape.as_deref()) {
            Some((_, c)) => {
                out.push(*c);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn mac(secret: &[u8], method: &str, uri: &str, body: &[u8], timestamp: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("invariant: HMAC takes a key of any length");
    mac.update(method.as_bytes());
    mac.update(canonical_uri(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    mac
}

/// The v3 signature of a request (what HubSpot puts in `X-HubSpot-Signature-v3`).
pub fn sign(secret: &[u8], method: &str, uri: &str, body: &[u8], timestamp: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(secret, method, uri, body, timestamp).finalize().into_bytes())
}

/// A request as the checks need it: the headers' values (`None` when absent) and the body.
#[derive(Clone, Copy, Debug)]
pub struct Signed<'a> {
    pub method: &'a str,
    /// The full URL HubSpot called (the app's target URL).
    pub uri: &'a str,
    pub body: &'a [u8],
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Checks a request's timestamp against `now_ms` and its v3 signature against `secret`, in
/// constant time. Returns the request's timestamp.
pub fn check(secret: &[u8], request: &Signed<'_>, now_ms: i64) -> Result<i64, Rejection> {
    let signature = request.signature.ok_or(Rejection::MissingSignature)?;
    let timestamp = request.timestamp.ok_or(Rejection::MissingTimestamp)?;
    let at: i64 = timestamp.trim().parse().map_err(|_| Rejection::BadTimestamp)?;
    if now_ms.abs_diff(at) > MAX_AGE_MS as u64 {
        return Err(Rejection::Stale);
    }
    let given =
        base64::engine::general_purpose::STANDARD.decode(signature.trim()).map_err(|_| Rejection::BadSignature)?;
    mac(secret, request.method, request.uri, request.body, timestamp)
        .verify_slice(&given)
        .map_err(|_| Rejection::BadSignature)?;
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"app-client-secret";
    const NOW: i64 = 1_700_000_000_000;
    const URI: &str = "https://hsync.example.com/hubspot/webhooks";
    const BODY: &[u8] =
        br#"[{"eventId":1,"objectId":123,"subscriptionType":"contact.creation","occurredAt":1700000000000}]"#;

    fn request<'a>(timestamp: &'a str, signature: &'a str) -> Signed<'a> {
        Signed { method: "POST", uri: URI, body: BODY, timestamp: Some(timestamp), signature: Some(signature) }
    }

    #[test]
    fn a_signature_over_method_uri_body_and_timestamp_passes() {
        let ts = NOW.to_string();
        let sig = sign(SECRET, "POST", URI, BODY, &ts);
        assert_eq!(check(SECRET, &request(&ts, &sig), NOW), Ok(NOW));
        // Computed independently: HMAC-SHA256 of the concatenation, base64.
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(format!("POST{URI}{}{ts}", std::str::from_utf8(BODY).unwrap()).as_bytes());
        assert_eq!(sig, base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    }

    #[test]
    fn any_change_to_what_is_signed_fails() {
        let ts = NOW.to_string();
        let sig = sign(SECRET, "POST", URI, BODY, &ts);
        let other_body = Signed { body: b"[]", ..request(&ts, &sig) };
        assert_eq!(check(SECRET, &other_body, NOW), Err(Rejection::BadSignature));
        let other_uri = Signed { uri: "https://evil.example.com/hubspot/webhooks", ..request(&ts, &sig) };
        assert_eq!(check(SECRET, &other_uri, NOW), Err(Rejection::BadSignature));
        let other_method = Signed { method: "PUT", ..request(&ts, &sig) };
        assert_eq!(check(SECRET, &other_method, NOW), Err(Rejection::BadSignature));
        let later = (NOW + 1).to_string();
        assert_eq!(check(SECRET, &request(&later, &sig), NOW), Err(Rejection::BadSignature), "the timestamp is signed");
        assert_eq!(check(b"another secret", &request(&ts, &sig), NOW), Err(Rejection::BadSignature));
        assert_eq!(check(SECRET, &request(&ts, "not base64!"), NOW), Err(Rejection::BadSignature));
    }

    #[test]
    fn timestamps_older_or_newer_than_five_minutes_are_stale() {
        for at in [NOW - MAX_AGE_MS - 1, NOW + MAX_AGE_MS + 1] {
            let ts = at.to_string();
            let sig = sign(SECRET, "POST", URI, BODY, &ts);
            assert_eq!(check(SECRET, &request(&ts, &sig), NOW), Err(Rejection::Stale), "{at}");
        }
        let edge = (NOW - MAX_AGE_MS).to_string();
        let sig = sign(SECRET, "POST", URI, BODY, &edge);
        assert!(check(SECRET, &request(&edge, &sig), NOW).is_ok(), "exactly five minutes is still fresh");
        let seconds = (NOW / 1_000).to_string();
        let sig = sign(SECRET, "POST", URI, BODY, &seconds);
        assert_eq!(check(SECRET, &request(&seconds, &sig), NOW), Err(Rejection::Stale), "seconds are not milliseconds");
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        let ts = NOW.to_string();
        let sig = sign(SECRET, "POST", URI, BODY, &ts);
        assert_eq!(
            check(SECRET, &Signed { signature: None, ..request(&ts, &sig) }, NOW),
            Err(Rejection::MissingSignature)
        );
        assert_eq!(
            check(SECRET, &Signed { timestamp: None, ..request(&ts, &sig) }, NOW),
            Err(Rejection::MissingTimestamp)
        );
        assert_eq!(check(SECRET, &request("yesterday", &sig), NOW), Err(Rejection::BadTimestamp));
    }

    #[test]
    fn only_the_listed_escapes_are_decoded_before_signing() {
        assert_eq!(
            canonical_uri("https://h.example.com/hook%3Fa=b%2Cc%40d%21%24%27%28%29%2A%3B%3a%2f"),
            "https://h.example.com/hook?a=b,c@d!$'()*;:/"
        );
        assert_eq!(
            canonical_uri("https://h.example.com/a%20b%25c%"),
            "https://h.example.com/a%20b%25c%",
            "others stay"
        );
        let ts = NOW.to_string();
        let encoded = "https://h.example.com/hook?portal=1%2C2";
        let sig = sign(SECRET, "POST", "https://h.example.com/hook?portal=1,2", BODY, &ts);
        let req = Signed { uri: encoded, ..request(&ts, &sig) };
        assert!(check(SECRET, &req, NOW).is_ok(), "HubSpot signs the decoded form");
    }
}
