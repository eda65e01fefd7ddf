//! Associations made from columns (docs/push.md "Associations"). Each `[push.<name>.associations]`
//! entry names a column whose value (or the email addresses or phone numbers found in it, when
//! it is free text) finds records of another type by one of their properties. This module owns
//! that chain: the keys a cell gives ([`keys_in`], pure), finding their records a batch at a time
//! before the batch is written ([`Link::find`]: by record id, a batch read by a unique property,
//! or a search for any other), each row's targets or the reason it has none ([`Link::targets`],
//! pure), and the association writes after the batch ([`Link::associate`]), HubSpot's default
//! type, idempotent so a rerun associates again without harm.

use std::collections::{BTreeSet, HashMap};

use super::validate::RECORD_ID;
use crate::config::{FindIn, PushAssociation};
use crate::hubspot::model::CrmObject;
use crate::hubspot::{self, Filter, FilterGroup, HubSpotClient, ObjectRef, Operator, SearchRequest, BATCH_READ_MAX};

/// The owner property copied to a written record when an association asks for it.
pub const OWNER: &str = "hubspot_owner_id";

/// Values in one search's `IN` filter. HubSpot documents no limit for `IN` (docs/push.md); a
/// batch's keys fit in one page of results when each finds at most two records.
const SEARCH_VALUES_MAX: usize = 100;

/// How a link finds records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The value is the record id.
    RecordId,
    /// A batch read by a property with unique values.
    Unique,
    /// A search on any other property (`IN`, values lower-cased as HubSpot needs).
    Search,
}

/// Why a link could not be made ready: a configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("association {name}: column {column} is not in the source (it has: {have})")]
    NoColumn { name: String, column: String, have: String },
    #[error("association {name}: {to} has no property {by}; fix push.associations.{name}.by")]
    NoProperty { name: String, to: String, by: String },
    #[error("association {name}: HubSpot has no default association from {from} to {to}")]
    NoDefaultType { name: String, from: String, to: String },
}

/// One association, ready: its column, target type and how keys find records.
#[derive(Clone, Debug)]
pub struct Link {
    pub name: String,
    pub column: usize,
    pub to: ObjectRef,
    pub by: String,
    pub lookup: Lookup,
    pub find: Option<FindIn>,
    pub required: bool,
    pub owner: bool,
}

/// A record a key found: its id and owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub id: String,
    pub owner: Option<String>,
}

/// What a link gives one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Targets {
    /// The records to associate with (never empty).
    Found(Vec<Found>),
    /// Nothing to associate with, and why (never the value: reports may be read by others).
    None(String),
}

impl Link {
    /// Checks `config` against the source's `columns` and HubSpot: the target type, its
    /// property `by` and a default association from `from` exist. Two calls (the target's
    /// properties and the association types).
    pub async fn ready(
        client: &HubSpotClient,
        name: &str,
        config: &PushAssociation,
        from: &ObjectRef,
        columns: &[String],
    ) -> Result<Link, super::Error> {
        let column = columns.iter().position(|c| *c == config.column).ok_or_else(|| LinkError::NoColumn {
            name: name.to_owned(),
            column: config.column.clone(),
            have: columns.join(", "),
        })?;
        let to = hubspot::resolve_objects(client, std::slice::from_ref(&config.to))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| crate::stream::Error::Bug("resolving one object gave none".into()))?;
        let by = config.by_property().to_owned();
        let lookup = if by == RECORD_ID {
            Lookup::RecordId
        } else {
            let defs = client.properties(&to.api_name, false).await?;
            let def = defs.iter().find(|d| d.name == by && !d.archived).ok_or_else(|| LinkError::NoProperty {
                name: name.to_owned(),
                to: to.table.clone(),
                by: by.clone(),
            })?;
            if def.has_unique_value || (to.table == "contacts" && by == "email") {
                Lookup::Unique
            } else {
                Lookup::Search
            }
        };
        let types = client.association_types(&from.api_name, &to.api_name).await?;
        if !types.iter().any(|t| t.label.is_none()) {
            return Err(LinkError::NoDefaultType {
                name: name.to_owned(),
                from: from.table.clone(),
                to: to.table.clone(),
            }
            .into());
        }
        Ok(Link {
            name: name.to_owned(),
            column,
            to,
            by,
            lookup,
            find: config.find,
            required: config.required,
            owner: config.owner,
        })
    }

    /// The keys `row` gives this link.
    pub fn keys(&self, row: &[Option<String>], region: Option<phonenumber::country::Id>) -> Vec<String> {
        let text = row.get(self.column).and_then(Option::as_deref).unwrap_or_default();
        keys_in(text, self.find, self.lookup, region)
    }

    /// Finds the records of `keys` (deduplicated): each key maps to every record it matches,
    /// a key with none is absent. Also returns the calls made: one batch read per 100 keys, or
    /// one search per 100 keys and page.
    pub async fn find(
        &self,
        client: &HubSpotClient,
        keys: &BTreeSet<String>,
    ) -> Result<(HashMap<String, Vec<Found>>, u64), hubspot::Error> {
        let keys: Vec<String> = keys.iter().cloned().collect();
        if keys.is_empty() {
            return Ok((HashMap::new(), 0));
        }
        let wanted = vec![self.by.clone(), OWNER.to_owned()];
        let reads = keys.len().div_ceil(BATCH_READ_MAX) as u64;
        let (records, calls): (Vec<CrmObject>, u64) = match self.lookup {
            Lookup::RecordId => (client.batch_read(&self.to.api_name, &keys, &wanted, false).await?.found, reads),
            Lookup::Unique => (client.batch_read_by(&self.to.api_name, &self.by, &keys, &wanted).await?.found, reads),
            Lookup::Search => self.search(client, &keys, &wanted).await?,
        };
        let mut out: HashMap<String, Vec<Found>> = HashMap::new();
        for record in records {
            let key = match self.lookup {
                Lookup::RecordId => record.id.clone(),
                _ => record.properties.get(&self.by).cloned().flatten().unwrap_or_default().to_lowercase(),
            };
            let found = Found { id: record.id.clone(), owner: record.properties.get(OWNER).cloned().flatten() };
            let entry = out.entry(key).or_default();
            if !entry.contains(&found) {
                entry.push(found);
            }
        }
        Ok((out, calls))
    }

    async fn search(
        &self,
        client: &HubSpotClient,
        keys: &[String],
        wanted: &[String],
    ) -> Result<(Vec<CrmObject>, u64), hubspot::Error> {
        let (mut out, mut calls) = (Vec::new(), 0);
        for chunk in keys.chunks(SEARCH_VALUES_MAX) {
            let filter = Filter::one_of(&self.by, Operator::In, chunk.to_vec());
            let first = SearchRequest::new(
                vec![FilterGroup(vec![filter])],
                Some((RECORD_ID.to_owned(), hubspot::Direction::Ascending)),
                wanted.to_vec(),
                hubspot::SEARCH_PAGE_MAX,
                0,
            )?;
            let mut request = first;
            loop {
                let page = client.search(&self.to.api_name, &request).await?;
                calls += 1;
                let next = page.paging.and_then(|p| p.next).and_then(|n| n.after.parse::<u64>().ok());
                out.extend(page.results);
                match next {
                    Some(after) if after > 0 => request = request.at(after)?,
                    _ => break,
                }
            }
        }
        Ok((out, calls))
    }

    /// What this link gives a row whose keys are `keys`, with `found` from [`Link::find`]: the
    /// records found, or why none (no key in the cell, no record, or a key matching several
    /// records, which is never guessed between).
    pub fn targets(&self, keys: &[String], found: &HashMap<String, Vec<Found>>) -> Targets {
        if keys.is_empty() {
            return Targets::None(match self.find {
                Some(FindIn::Email) => "no email address in the text".to_owned(),
                Some(FindIn::Phone) => "no phone number in the text".to_owned(),
                None => format!("no {} value", self.by),
            });
        }
        let mut targets: Vec<Found> = Vec::new();
        let mut reasons = Vec::new();
        for key in keys {
            match found.get(key).map(Vec::as_slice) {
                None | Some([]) => reasons.push(format!("no {} record has this {}", self.to.table, self.by)),
                Some([one]) => {
                    if !targets.contains(one) {
                        targets.push(one.clone());
                    }
                }
                Some(many) => reasons.push(format!(
                    "{} {} records have this {}; none is chosen",
                    many.len(),
                    self.to.table,
                    self.by
                )),
            }
        }
        if targets.is_empty() {
            reasons.dedup();
            Targets::None(reasons.join("; "))
        } else {
            Targets::Found(targets)
        }
    }

    /// Associates each `(written record id, target id)` pair; returns the pairs HubSpot
    /// associated.
    pub async fn associate(
        &self,
        client: &HubSpotClient,
        from: &ObjectRef,
        pairs: &[(String, String)],
    ) -> Result<usize, hubspot::Error> {
        if pairs.is_empty() {
            return Ok(0);
        }
        client.associate_default(&from.api_name, &self.to.api_name, pairs).await
    }
}

/// The keys in a cell: the whole value, or each email address or phone number found in free
/// text; lower-cased (emails match whatever their case, and search `IN` values must be lower
/// case); phone numbers as their national number's digits, as HubSpot's searchable phone
/// properties hold them. Record ids must be positive integers.
pub fn keys_in(
    text: &str,
    find: Option<FindIn>,
    lookup: Lookup,
    region: Option<phonenumber::country::Id>,
) -> Vec<String> {
    let text = text.trim();
    let mut keys: Vec<String> = match find {
        None if text.is_empty() => Vec::new(),
        None => vec![text.to_owned()],
        Some(FindIn::Email) => linkify::LinkFinder::new()
            .kinds(&[linkify::LinkKind::Email])
            .links(text)
            .map(|link| link.as_str().to_owned())
            .collect(),
        Some(FindIn::Phone) => phones_in(text, region),
    };
    keys = keys.into_iter().map(|k| k.to_lowercase()).collect();
    if lookup == Lookup::RecordId {
        keys.retain(|k| k.parse::<u64>().is_ok_and(|id| id > 0));
    }
    let mut seen = BTreeSet::new();
    keys.retain(|k| seen.insert(k.clone()));
    keys
}

/// Phone numbers in free text: runs of digits, spaces and `+().-/` long enough to be one, each
/// parsed by the `phonenumber` crate (without a `+country` prefix, in `region`) and kept when
/// valid, as its national significant number.
fn phones_in(text: &str, region: Option<phonenumber::country::Id>) -> Vec<String> {
    static CANDIDATE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\+?\d[\d\s().\-/]{5,22}\d").expect("invariant: the phone pattern compiles")
    });
    CANDIDATE
        .find_iter(text)
        .filter_map(|m| phonenumber::parse(region, m.as_str()).ok())
        .filter(phonenumber::is_valid)
        .map(|n| n.national().value().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(lookup: Lookup, find: Option<FindIn>, by: &str) -> Link {
        Link {
            name: "company".into(),
            column: 0,
            to: ObjectRef::of(crate::hubspot::catalogue::find("companies").unwrap()),
            by: by.into(),
            lookup,
            find,
            required: false,
            owner: false,
        }
    }

    #[test]
    fn emails_are_found_in_free_text_once_each_and_lower_cased() {
        let keys = keys_in(
            "From: Ada <Ada@Example.com>, cc bob@x.io; again ada@example.com.",
            Some(FindIn::Email),
            Lookup::Unique,
            None,
        );
        assert_eq!(keys, ["ada@example.com", "bob@x.io"]);
        assert!(keys_in("no address here", Some(FindIn::Email), Lookup::Unique, None).is_empty());
    }

    #[test]
    fn phones_are_found_in_free_text_as_national_digits() {
        let us = Some(phonenumber::country::Id::US);
        let text = "Customer called from (415) 555-2671 about order 12, later from +44 20 7946 0958.";
        assert_eq!(keys_in(text, Some(FindIn::Phone), Lookup::Search, us), ["4155552671", "2079460958"]);
        assert!(keys_in("order 1234567 shipped", Some(FindIn::Phone), Lookup::Search, us).is_empty());
    }

    #[test]
    fn a_whole_value_is_one_key_and_record_ids_must_be_integers() {
        assert_eq!(keys_in(" Acme.IO ", None, Lookup::Search, None), ["acme.io"]);
        assert!(keys_in("  ", None, Lookup::Search, None).is_empty());
        assert_eq!(keys_in("42", None, Lookup::RecordId, None), ["42"]);
        assert!(keys_in("acme", None, Lookup::RecordId, None).is_empty());
    }

    #[test]
    fn a_key_matching_several_records_or_none_gives_no_target_and_says_why() {
        let l = link(Lookup::Search, None, "domain");
        let one = |id: &str| Found { id: id.into(), owner: None };
        let found: HashMap<String, Vec<Found>> =
            [("acme.io".to_owned(), vec![one("1")]), ("twin.io".to_owned(), vec![one("2"), one("3")])].into();
        assert_eq!(l.targets(&["acme.io".into()], &found), Targets::Found(vec![one("1")]));
        let Targets::None(why) = l.targets(&["twin.io".into()], &found) else { panic!() };
        assert!(why.contains("2 companies records") && !why.contains("twin"), "{why}");
        let Targets::None(why) = l.targets(&["new.io".into()], &found) else { panic!() };
        assert_eq!(why, "no companies record has this domain");
        assert_eq!(
            l.targets(&["new.io".into(), "acme.io".into()], &found),
            Targets::Found(vec![one("1")]),
            "one found is enough"
        );
        let e = link(Lookup::Unique, Some(FindIn::Email), "email");
        assert_eq!(e.targets(&[], &found), Targets::None("no email address in the text".into()));
    }
}
