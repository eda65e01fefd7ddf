//! What a push will do with each source row, as plain data decided before any call: rows
//! checked ([`super::validate`]), later rows with an id already seen refused as duplicates (one
//! record, one write a run), the rest cut into batches of [`WRITE_BATCH_MAX`], and where a run
//! resumes: after the rows an unfinished run recorded, when the source still starts with the
//! same ids ([`digest`]).

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use super::validate::{Checked, Problem, Rules};
use crate::hubspot::WRITE_BATCH_MAX;

/// One source row's fate before any call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    /// Valid: to send.
    Send(Checked),
    /// Refused before the API: every reason.
    Rejected(Vec<Problem>),
}

/// One source row in the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedRow {
    /// 1-based position in the source.
    pub row_number: i64,
    /// The id property's value as given (empty when it has none).
    pub id_value: String,
    pub planned: Planned,
    /// The keys each association finds records by (one list per link, see
    /// [`super::associate`]); empty when the push has none.
    pub link_keys: Vec<Vec<String>>,
}

/// Checks every row and refuses duplicates of an id seen in an earlier row.
pub fn plan_rows(rules: &Rules, rows: &[Vec<Option<String>>]) -> Vec<PlannedRow> {
    let mut first_with: HashMap<String, i64> = HashMap::new();
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let row_number = i as i64 + 1;
            let planned = match rules.check(row) {
                Ok(checked) => match first_with.get(&checked.key) {
                    Some(first) => Planned::Rejected(vec![Problem {
                        property: rules.id_property().to_owned(),
                        reason: format!(
                            "the same {} as row {first}: one record is written once a run",
                            rules.id_property()
                        ),
                    }]),
                    None => {
                        first_with.insert(checked.key.clone(), row_number);
                        Planned::Send(checked)
                    }
                },
                Err(problems) => Planned::Rejected(problems),
            };
            let id_value = match &planned {
                Planned::Send(c) => c.properties.get(rules.id_property()).cloned().unwrap_or_default(),
                Planned::Rejected(_) => String::new(),
            };
            PlannedRow { row_number, id_value, planned, link_keys: Vec::new() }
        })
        .collect()
}

/// Consecutive source rows holding at most [`WRITE_BATCH_MAX`] rows to send (and the refused
/// rows among them): each is written, recorded and checkpointed as one step. Ranges are
/// half-open indexes into the plan.
pub fn batches(rows: &[PlannedRow]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut sending) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        if matches!(row.planned, Planned::Send(_)) {
            if sending == WRITE_BATCH_MAX {
                out.push(start..i);
                start = i;
                sending = 0;
            }
            sending += 1;
        }
    }
    if start < rows.len() {
        out.push(start..rows.len());
    }
    out
}

/// A digest of the first `n` rows' ids (and of whether each was valid), so a resumed run skips
/// them only when the source still begins with the same rows.
pub fn digest(rows: &[PlannedRow], n: usize) -> String {
    let mut running = RunningDigest::default();
    running.add(rows.iter().take(n));
    running.hex()
}

/// [`digest`] kept up to date row by row, so a run recording batch after batch hashes each
/// row once.
#[derive(Clone, Default)]
pub struct RunningDigest(Sha256);

impl std::fmt::Debug for RunningDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunningDigest({})", self.hex())
    }
}

impl RunningDigest {
    pub fn add<'a>(&mut self, rows: impl IntoIterator<Item = &'a PlannedRow>) {
        for row in rows {
            self.0.update(row.row_number.to_le_bytes());
            self.0.update(row.id_value.as_bytes());
            self.0.update([u8::from(matches!(row.planned, Planned::Send(_))), 0]);
        }
    }

    /// The digest of the rows added so far.
    pub fn hex(&self) -> String {
        self.0.clone().finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Counts of outcomes by name.
pub fn tally<'a>(outcomes: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for outcome in outcomes {
        *counts.entry(outcome.to_owned()).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hubspot::model::PropertyDefinition;

    fn rules() -> Rules {
        let defs: Vec<PropertyDefinition> = serde_json::from_value(serde_json::json!([
            {"name": "email", "type": "string", "fieldType": "text"},
            {"name": "score", "type": "number", "fieldType": "number"}
        ]))
        .unwrap();
        let columns = vec!["email".to_owned(), "score".to_owned()];
        Rules::new("contacts", &defs, &columns, &BTreeMap::new(), "email", &Default::default(), None).unwrap()
    }

    fn row(email: &str, score: &str) -> Vec<Option<String>> {
        vec![Some(email.to_owned()), Some(score.to_owned())]
    }

    #[test]
    fn a_later_row_with_an_id_already_seen_is_refused_naming_the_first() {
        let planned = plan_rows(&rules(), &[row("a@x.io", "1"), row("bad", "2"), row("A@X.io", "3")]);
        assert!(matches!(planned[0].planned, Planned::Send(_)));
        assert!(matches!(planned[1].planned, Planned::Rejected(_)));
        let Planned::Rejected(why) = &planned[2].planned else { panic!("{planned:?}") };
        assert!(why[0].reason.contains("row 1"), "{why:?}");
    }

    #[test]
    fn batches_hold_at_most_a_hundred_rows_to_send_and_the_refused_rows_between() {
        let mut rows: Vec<Vec<Option<String>>> = (0..250).map(|i| row(&format!("u{i}@x.io"), "1")).collect();
        rows.insert(100, row("not an email", "1"));
        let planned = plan_rows(&rules(), &rows);
        let ranges = batches(&planned);
        assert_eq!(ranges, vec![0..101, 101..201, 201..251]);
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn the_digest_tells_a_source_that_changed_its_first_rows() {
        let a = plan_rows(&rules(), &[row("a@x.io", "1"), row("b@x.io", "1"), row("c@x.io", "1")]);
        let b = plan_rows(&rules(), &[row("a@x.io", "9"), row("b@x.io", "9"), row("z@x.io", "1")]);
        assert_eq!(digest(&a, 2), digest(&b, 2), "same ids, other values: the same rows were done");
        assert_ne!(digest(&a, 3), digest(&b, 3));
        let mut running = RunningDigest::default();
        running.add(&a[..1]);
        running.add(&a[1..3]);
        assert_eq!(running.hex(), digest(&a, 3), "added batch by batch, the same digest");
    }
}
