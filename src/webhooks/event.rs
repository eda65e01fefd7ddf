//! Webhook events: HubSpot's payload (a JSON array of events, docs/hubspot-api.md §13) read
//! into [`Event`]s, what hsync keeps of each (type, id, time, what happened, property names;
//! never property values), and what a set of events asks hsync to do ([`plan`], pure): which
//! records to look up by id and whose associations to read.
//!
//! An event is a hint, not data: HubSpot sends ids and names, may send an event twice or out of
//! order, and a retry carries a new `attemptNumber`. So every event that touches a record
//! becomes a read of the record as HubSpot holds it *now* (found live: merged through the
//! guarded merge; archived: flagged; neither: flagged deleted), and events for one record
//! coalesce into one read. Order stops mattering: the last read wins, and the merge's cursor
//! guard keeps an older read from overwriting a newer row.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::hubspot::catalogue;

/// The objects HubSpot names in the singular in subscription types (`contact.creation`), by
/// catalogue name; every other type's events are `object.*` with an `objectTypeId`.
const SINGULAR: [(&str, &str); 6] = [
    ("contact", "contacts"),
    ("company", "companies"),
    ("deal", "deals"),
    ("ticket", "tickets"),
    ("line_item", "line_items"),
    ("product", "products"),
];

/// What happened to the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    Creation,
    PropertyChange {
        property: String,
    },
    Deletion,
    Restore,
    /// The record absorbed others (`mergedObjectIds`); `survivor` is the record that remains.
    Merge {
        survivor: i64,
        merged: Vec<i64>,
    },
    AssociationChange {
        removed: bool,
    },
    /// A GDPR deletion: the record is gone for good.
    PrivacyDeletion,
}

/// One event as hsync keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// HubSpot's object type id (`0-1` for contacts, `2-…` for custom objects).
    pub type_id: String,
    pub object_id: i64,
    pub occurred_at_ms: i64,
    pub action: Action,
    /// The subscription that sent it (part of the duplicate key).
    pub subscription_id: Option<u64>,
    /// HubSpot's subscription type, as sent (`contact.propertyChange`).
    pub subscription_type: String,
}

impl Event {
    /// Equal for the same event sent again (HubSpot's retries change `attemptNumber`, and
    /// `eventId` is not guaranteed unique): subscription, type, object, time and what changed.
    pub fn dedupe_key(&self) -> String {
        let what = match &self.action {
            Action::PropertyChange { property } => property.clone(),
            Action::AssociationChange { removed } => removed.to_string(),
            _ => String::new(),
        };
        format!(
            "{}|{}|{}|{}|{}|{what}",
            self.subscription_id.map(|s| s.to_string()).unwrap_or_default(),
            self.subscription_type,
            self.type_id,
            self.object_id,
            self.occurred_at_ms
        )
    }

    /// The records this event asks to look up by id (the survivor and the absorbed ids of a
    /// merge; the record itself for everything else but association changes).
    fn lookups(&self) -> Vec<i64> {
        match &self.action {
            Action::AssociationChange { .. } => Vec::new(),
            Action::Merge { survivor, merged } => {
                let mut ids = vec![*survivor, self.object_id];
                ids.extend(merged);
                ids
            }
            _ => vec![self.object_id],
        }
    }
}

/// HubSpot's event as sent; only what hsync keeps is read (`propertyValue` never is).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    subscription_id: Option<u64>,
    occurred_at: Option<i64>,
    subscription_type: Option<String>,
    object_id: Option<i64>,
    object_type_id: Option<String>,
    property_name: Option<String>,
    primary_object_id: Option<i64>,
    new_object_id: Option<i64>,
    merged_object_ids: Option<Vec<i64>>,
    association_removed: Option<bool>,
}

/// Why a delivery's body was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is not a JSON array of webhook events: {0}")]
    NotEvents(String),
}

/// What a delivery held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub events: Vec<Event>,
    /// Events of a kind hsync does not act on (`conversation.*`, `event.completed`, unknown
    /// types) or missing the fields it needs: acknowledged and dropped.
    pub ignored: u64,
}

/// Reads a delivery's body. A body that is not a JSON array of objects is refused as a whole;
/// an event within it that hsync cannot use is counted and left out, so one odd event never
/// makes HubSpot retry the others.
pub fn parse_delivery(body: &[u8]) -> Result<Delivery, BodyError> {
    let raw: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(body).map_err(|e| BodyError::NotEvents(e.to_string()))?;
    let mut delivery = Delivery::default();
    for object in raw {
        let parsed = serde_json::from_value::<Payload>(serde_json::Value::Object(object)).ok().and_then(event_of);
        match parsed {
            Some(event) => delivery.events.push(event),
            None => delivery.ignored += 1,
        }
    }
    Ok(delivery)
}

fn event_of(p: Payload) -> Option<Event> {
    let subscription_type = p.subscription_type?;
    let (subject, kind) = subscription_type.split_once('.')?;
    let type_id = match subject {
        "object" => p.object_type_id.clone()?,
        singular => {
            let (_, name) = SINGULAR.iter().find(|(s, _)| *s == singular)?;
            catalogue::find(name)?.type_id.to_owned()
        }
    };
    let object_id = p.object_id?;
    let action = match kind {
        "creation" => Action::Creation,
        "propertyChange" => Action::PropertyChange { property: p.property_name? },
        "deletion" => Action::Deletion,
        "restore" => Action::Restore,
        "merge" => Action::Merge {
            survivor: p.new_object_id.or(p.primary_object_id).unwrap_or(object_id),
            merged: p.merged_object_ids.unwrap_or_default(),
        },
        "associationChange" => Action::AssociationChange { removed: p.association_removed.unwrap_or(false) },
        "privacyDeletion" => Action::PrivacyDeletion,
        _ => return None,
    };
    Some(Event {
        type_id,
        object_id,
        occurred_at_ms: p.occurred_at?,
        action,
        subscription_id: p.subscription_id,
        subscription_type,
    })
}

/// What a set of events asks for, per object type id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Records to look up by id.
    pub lookups: BTreeMap<String, BTreeSet<i64>>,
    /// Records whose associations to read.
    pub associations: BTreeMap<String, BTreeSet<i64>>,
    /// Events planned.
    pub events: u64,
    /// Events that asked for nothing a earlier event in the set had not asked for already.
    pub coalesced: u64,
    /// The latest `occurredAt` among them.
    pub latest_ms: Option<i64>,
}

/// Folds `events` into one plan: each record looked up once and each record's associations
/// read once, however many events name it and in whatever order they came.
pub fn plan(events: &[Event]) -> Plan {
    let mut out = Plan::default();
    for e in events {
        out.events += 1;
        out.latest_ms = out.latest_ms.max(Some(e.occurred_at_ms));
        let mut new = false;
        for id in e.lookups() {
            new |= out.lookups.entry(e.type_id.clone()).or_default().insert(id);
        }
        if matches!(e.action, Action::AssociationChange { .. }) {
            new |= out.associations.entry(e.type_id.clone()).or_default().insert(e.object_id);
        }
        if !new {
            out.coalesced += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(events: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&events).unwrap()
    }

    #[test]
    fn hubspots_documented_example_reads_as_a_contact_creation() {
        let d = parse_delivery(br#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#).unwrap();
        assert_eq!(d.ignored, 0);
        assert_eq!(
            d.events,
            [Event {
                type_id: "0-1".into(),
                object_id: 123,
                occurred_at_ms: 1_564_113_600_000,
                action: Action::Creation,
                subscription_id: Some(12_345),
                subscription_type: "contact.creation".into(),
            }]
        );
    }

    #[test]
    fn every_kind_and_generic_objects_are_read_and_values_are_not_kept() {
        let d = parse_delivery(&body(json!([
            {"subscriptionType": "deal.propertyChange", "objectId": 7, "occurredAt": 5, "propertyName": "amount", "propertyValue": "secret 1000"},
            {"subscriptionType": "object.deletion", "objectTypeId": "2-99", "objectId": 8, "occurredAt": 6},
            {"subscriptionType": "company.merge", "objectId": 9, "occurredAt": 7, "primaryObjectId": 9, "mergedObjectIds": [10, 11], "newObjectId": 12},
            {"subscriptionType": "ticket.associationChange", "objectId": 13, "occurredAt": 8, "associationRemoved": true, "fromObjectId": 13, "toObjectId": 1},
            {"subscriptionType": "contact.privacyDeletion", "objectId": 14, "occurredAt": 9},
            {"subscriptionType": "line_item.restore", "objectId": 15, "occurredAt": 10},
        ])))
        .unwrap();
        let actions: Vec<(&str, &Action)> = d.events.iter().map(|e| (e.type_id.as_str(), &e.action)).collect();
        assert_eq!(
            actions,
            [
                ("0-3", &Action::PropertyChange { property: "amount".into() }),
                ("2-99", &Action::Deletion),
                ("0-2", &Action::Merge { survivor: 12, merged: vec![10, 11] }),
                ("0-5", &Action::AssociationChange { removed: true }),
                ("0-1", &Action::PrivacyDeletion),
                ("0-8", &Action::Restore),
            ]
        );
        let kept = serde_json::to_string(&d.events).unwrap();
        assert!(!kept.contains("secret"), "property values are never kept: {kept}");
    }

    #[test]
    fn odd_events_are_skipped_and_a_body_that_is_not_events_is_refused() {
        let d = parse_delivery(&body(json!([
            {"subscriptionType": "conversation.creation", "objectId": 1, "occurredAt": 1},
            {"subscriptionType": "contact.creation", "occurredAt": 1},
            {"subscriptionType": "object.creation", "objectId": 1, "occurredAt": 1},
            {"subscriptionType": "contact.propertyChange", "objectId": 1, "occurredAt": 1},
            {"subscriptionType": "contact.creation", "objectId": "x", "occurredAt": 1},
            {"subscriptionType": "contact.creation", "objectId": 2, "occurredAt": 1},
        ])))
        .unwrap();
        assert_eq!((d.events.len(), d.ignored), (1, 5));
        for bad in [&b"{\"objectId\": 1}"[..], b"[1, 2]", b"[{\"objectId\": 1}", b"", b"null"] {
            assert!(parse_delivery(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_delivery(b"[]").unwrap(), Delivery::default());
    }

    #[test]
    fn a_retry_has_the_same_key_and_another_change_does_not() {
        let first = &parse_delivery(&body(json!([{"subscriptionId": 1, "subscriptionType": "contact.propertyChange",
            "objectId": 5, "occurredAt": 100, "propertyName": "email", "attemptNumber": 0, "eventId": 1}])))
        .unwrap()
        .events[0];
        let retry = &parse_delivery(&body(json!([{"subscriptionId": 1, "subscriptionType": "contact.propertyChange",
            "objectId": 5, "occurredAt": 100, "propertyName": "email", "attemptNumber": 3, "eventId": 99}])))
        .unwrap()
        .events[0];
        assert_eq!(first.dedupe_key(), retry.dedupe_key());
        let other = Event { action: Action::PropertyChange { property: "phone".into() }, ..first.clone() };
        assert_ne!(first.dedupe_key(), other.dedupe_key());
        let later = Event { occurred_at_ms: 101, ..first.clone() };
        assert_ne!(first.dedupe_key(), later.dedupe_key());
    }

    #[test]
    fn events_coalesce_into_one_lookup_per_record_in_any_order() {
        let event = |id: i64, at: i64, action: Action| Event {
            type_id: "0-1".into(),
            object_id: id,
            occurred_at_ms: at,
            action,
            subscription_id: None,
            subscription_type: String::new(),
        };
        let events = [
            event(1, 30, Action::PropertyChange { property: "email".into() }),
            event(1, 10, Action::Creation),
            event(2, 20, Action::Deletion),
            event(1, 40, Action::PropertyChange { property: "phone".into() }),
            event(3, 50, Action::AssociationChange { removed: false }),
            event(3, 51, Action::AssociationChange { removed: true }),
            event(4, 60, Action::Merge { survivor: 4, merged: vec![5] }),
        ];
        let p = plan(&events);
        assert_eq!(p.lookups["0-1"], BTreeSet::from([1, 2, 4, 5]));
        assert_eq!(p.associations["0-1"], BTreeSet::from([3]));
        assert_eq!((p.events, p.coalesced, p.latest_ms), (7, 3, Some(60)));
        let mut reversed = events.to_vec();
        reversed.reverse();
        let q = plan(&reversed);
        assert_eq!((q.lookups, q.associations, q.coalesced), (p.lookups, p.associations, p.coalesced));
    }
}
