//! Injected faults: the failures a real HubSpot integration meets (429 bursts, Cloudflare 5xx
//! pages, slow or missing responses, dropped connections, truncated JSON), settable at start
//! and at runtime, matched against requests by route class, count and probability.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What a fault does to the request it hits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// A 429 `TEN_SECONDLY_ROLLING` (or the search "secondly" message on search routes), as if
    /// another integration had used the window.
    RateLimit,
    /// A 5xx; `html` sends a Cloudflare-style HTML page instead of JSON.
    ServerError { status: u16, html: bool },
    /// The response arrives after `delay_ms`.
    Slow { delay_ms: u64 },
    /// No response at all until the client gives up (the connection stays open).
    Hang,
    /// The connection is closed without a response.
    DropConnection,
    /// A 200 whose JSON body is cut in half.
    TruncatedJson,
    /// 423 Locked: HubSpot asks to wait at least two seconds.
    Locked,
    /// 477 Migration in Progress, with `Retry-After` in seconds.
    MigrationInProgress { retry_after_secs: u64 },
    /// The daily limit is spent: this and every later call gets 429 `DAILY` until the reset.
    ExhaustDaily,
}

/// Which requests a rule applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    /// Every HubSpot API request.
    #[default]
    Any,
    /// Only search requests.
    Search,
    /// Every request except search.
    General,
    /// Only association requests.
    Associations,
    /// Only list and get requests of objects.
    List,
    /// Only batch reads of objects (`POST /crm/v3/objects/{type}/batch/read`).
    BatchRead,
}

/// One fault rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(default)]
    pub target: FaultTarget,
    /// How many requests the rule may still hit; `None` means no limit.
    #[serde(default)]
    pub remaining: Option<u64>,
    /// Chance that a matching request is hit (1.0 when absent).
    #[serde(default)]
    pub probability: Option<f64>,
    /// Skip this many matching requests before the rule starts hitting.
    #[serde(default)]
    pub skip: u64,
    /// Only requests about this object type (its name, `deals`, or type id, `0-3`): the object
    /// routes and the v4 associations of records of that type. Any type when absent.
    #[serde(default)]
    pub object: Option<String>,
}

/// The fault rules in force, in order; the first rule that fires wins.
#[derive(Debug)]
pub struct FaultPlan {
    pub rules: Vec<FaultRule>,
    rng: ChaCha8Rng,
    /// Faults injected so far, by kind name.
    pub injected: std::collections::BTreeMap<String, u64>,
}

impl FaultPlan {
    pub fn new(seed: u64, rules: Vec<FaultRule>) -> FaultPlan {
        FaultPlan { rules, rng: ChaCha8Rng::seed_from_u64(seed ^ 0xFA17), injected: Default::default() }
    }

    /// The fault to inject for a request of `target` class about the object type `object`
    /// names (its name and type id), if any rule fires.
    pub fn draw(&mut self, is: impl Fn(FaultTarget) -> bool, object: &[&str]) -> Option<FaultKind> {
        let mut fired = None;
        for rule in &mut self.rules {
            if !(rule.target == FaultTarget::Any || is(rule.target)) || rule.remaining == Some(0) {
                continue;
            }
            if rule.object.as_deref().is_some_and(|o| !object.iter().any(|n| n.eq_ignore_ascii_case(o))) {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
                continue;
            }
            if let Some(p) = rule.probability {
                if !self.rng.random_bool(p.clamp(0.0, 1.0)) {
                    continue;
                }
            }
            if let Some(n) = rule.remaining.as_mut() {
                *n -= 1;
            }
            fired = Some(rule.kind.clone());
            break;
        }
        self.rules.retain(|r| r.remaining != Some(0));
        if let Some(kind) = &fired {
            *self.injected.entry(kind_name(kind).to_owned()).or_default() += 1;
        }
        fired
    }
}

/// A stable name per fault kind, for counters.
pub fn kind_name(kind: &FaultKind) -> &'static str {
    match kind {
        FaultKind::RateLimit => "rate_limit",
        FaultKind::ServerError { .. } => "server_error",
        FaultKind::Slow { .. } => "slow",
        FaultKind::Hang => "hang",
        FaultKind::DropConnection => "drop_connection",
        FaultKind::TruncatedJson => "truncated_json",
        FaultKind::Locked => "locked",
        FaultKind::MigrationInProgress { .. } => "migration_in_progress",
        FaultKind::ExhaustDaily => "exhaust_daily",
    }
}

/// The HTML page Cloudflare sends for a 5xx from the origin.
pub fn cloudflare_page(status: u16) -> String {
    let title = match status {
        502 => "Bad gateway",
        504 => "Gateway time-out",
        521 => "Web server is down",
        524 => "A timeout occurred",
        _ => "Internal server error",
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en-US\">\n<head><title>api.hubapi.com | {status}: {title}</title></head>\n\
         <body><div id=\"cf-error-details\"><h1>{title}</h1><span>Error code {status}</span>\
         <p>Visit cloudflare.com for more information.</p></div></body>\n</html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_rule_fires_exactly_remaining_times_after_skip() {
        let rule = FaultRule {
            kind: FaultKind::RateLimit,
            target: FaultTarget::Search,
            remaining: Some(2),
            probability: None,
            skip: 1,
            object: None,
        };
        let mut plan = FaultPlan::new(1, vec![rule]);
        let search = |t| t == FaultTarget::Search;
        let general = |t| t == FaultTarget::General;
        assert_eq!(plan.draw(general, &[]), None, "other targets are not hit");
        assert_eq!(plan.draw(search, &[]), None, "the first match is skipped");
        assert_eq!(plan.draw(search, &[]), Some(FaultKind::RateLimit));
        assert_eq!(plan.draw(search, &[]), Some(FaultKind::RateLimit));
        assert_eq!(plan.draw(search, &[]), None);
        assert!(plan.rules.is_empty());
        assert_eq!(plan.injected["rate_limit"], 2);
    }

    #[test]
    fn a_rule_for_one_object_type_spares_the_others() {
        let rules: Vec<FaultRule> =
            serde_json::from_str(r#"[{"kind":"truncated_json","target":"batch_read","object":"deals"}]"#).unwrap();
        let mut plan = FaultPlan::new(1, rules);
        let batch_read = |t| t == FaultTarget::BatchRead;
        assert_eq!(plan.draw(batch_read, &["contacts", "0-1"]), None);
        assert_eq!(plan.draw(batch_read, &[]), None, "a request about no object type is spared");
        assert_eq!(plan.draw(batch_read, &["deals", "0-3"]), Some(FaultKind::TruncatedJson));
        assert_eq!(plan.draw(batch_read, &["DEALS", "0-3"]), Some(FaultKind::TruncatedJson));
    }

    #[test]
    fn rules_parse_from_json() {
        let rules: Vec<FaultRule> = serde_json::from_str(
            r#"[{"kind":"server_error","status":502,"html":true,"remaining":3},
                {"kind":"slow","delay_ms":200,"target":"search","probability":0.5}]"#,
        )
        .unwrap();
        assert_eq!(rules[0].kind, FaultKind::ServerError { status: 502, html: true });
        assert_eq!(rules[1].target, FaultTarget::Search);
    }
}
