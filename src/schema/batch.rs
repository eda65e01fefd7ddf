//! Typed Arrow batches built from HubSpot records, column by column. A value that does not parse
//! becomes NULL plus a [`Reject`] carrying the raw value and the reason; a value stored in a
//! changed form (a NUL character, a lone surrogate: see `mapping` and `hubspot::model`) is
//! stored so and rejected too, with the original; a record that could not be read, or has no
//! usable id or last-modified time, is left out and rejected whole. Nothing here panics on input.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal256Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::record_batch::RecordBatch;
use serde::Serialize;

use super::mapping::{parse_instant_ms, parse_value, storable_text, Parsed, ParsedValue};
use super::{hsync_columns, Column, ColumnType, TableSchema, DECIMAL_PRECISION, DECIMAL_SCALE};
use crate::hubspot::model::CrmObject;

/// The property name of a reject that stands for a whole record that could not be read.
pub const WHOLE_RECORD: &str = "(record)";

/// A value hsync could not store in its typed column, or stored changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reject {
    pub object: String,
    pub id: String,
    pub property: String,
    pub raw: String,
    pub reason: String,
}

/// A batch ready to stage, with what had to be rejected while building it.
#[derive(Clone, Debug)]
pub struct BuiltBatch {
    pub batch: RecordBatch,
    pub rejects: Vec<Reject>,
}

struct Row<'a> {
    rec: &'a CrmObject,
    id: i64,
    cursor: i64,
}

fn raw<'a>(rec: &'a CrmObject, property: &str) -> Option<&'a str> {
    rec.properties.get(property).and_then(|v| v.as_deref())
}

/// Builds the batch for `table` from `records` of `object`, whose last-modified property is
/// `cursor_property`; `synced_at_ms` stamps every row.
pub fn build_batch(
    table: &TableSchema,
    object: &str,
    cursor_property: &str,
    records: &[CrmObject],
    synced_at_ms: i64,
) -> BuiltBatch {
    let mut rejects = Vec::new();
    let mut reject = |rec: &CrmObject, property: &str, raw: &str, reason: String| {
        rejects.push(Reject {
            object: object.to_owned(),
            id: rec.id.clone(),
            property: property.to_owned(),
            raw: raw.to_owned(),
            reason,
        });
    };
    let mut rows = Vec::with_capacity(records.len());
    for rec in records {
        if let Some(unreadable) = &rec.unreadable {
            reject(rec, WHOLE_RECORD, &unreadable.raw, format!("{}; the record was skipped", unreadable.reason));
            continue;
        }
        let Ok(id) = rec.id.trim().parse::<i64>() else {
            reject(rec, hsync_columns::ID, &rec.id, "the record id is not an integer; the record was skipped".into());
            continue;
        };
        let cursor_raw = raw(rec, cursor_property).or(rec.updated_at.as_deref());
        let Some(cursor) = cursor_raw.and_then(parse_instant_ms) else {
            reject(
                rec,
                cursor_property,
                cursor_raw.unwrap_or_default(),
                "no readable last-modified time; the record was skipped".into(),
            );
            continue;
        };
        rows.push(Row { rec, id, cursor });
    }

    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(table.columns.len());
    for column in &table.columns {
        let array = match (column.name.as_str(), &column.property) {
            (hsync_columns::ID, None) => {
                Arc::new(rows.iter().map(|r| Some(r.id)).collect::<arrow::array::Int64Array>()) as ArrayRef
            }
            (hsync_columns::CURSOR, None) => timestamps(rows.iter().map(|r| Some(r.cursor))),
            (hsync_columns::SYNCED_AT, None) => timestamps(rows.iter().map(|_| Some(synced_at_ms))),
            (hsync_columns::ARCHIVED_AT, None) => timestamps(
                rows.iter()
                    .map(|r| r.rec.archived.then(|| r.rec.archived_at.as_deref().and_then(parse_instant_ms)).flatten()),
            ),
            (hsync_columns::OVERFLOW, None) => overflow(&rows, &table.overflow, &mut reject),
            (_, None) => null_array(column.ty, rows.len()),
            (_, Some(property)) => property_array(column, property, &rows, &mut reject),
        };
        arrays.push(array);
    }
    let batch = RecordBatch::try_new(Arc::new(table.arrow_schema()), arrays)
        .expect("invariant: every column was built with its schema type and the same row count");
    BuiltBatch { batch, rejects }
}

fn timestamps(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    let mut b = TimestampMillisecondBuilder::new().with_timezone("UTC");
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn null_array(ty: ColumnType, len: usize) -> ArrayRef {
    arrow::array::new_null_array(&ty.arrow_type(), len)
}

fn overflow(
    rows: &[Row<'_>],
    properties: &[String],
    reject: &mut impl FnMut(&CrmObject, &str, &str, String),
) -> ArrayRef {
    let mut b = StringBuilder::new();
    for r in rows {
        let values: serde_json::Map<String, serde_json::Value> = properties
            .iter()
            .filter_map(|p| {
                let v = raw(r.rec, p)?;
                let (text, altered) = storable_text(v);
                let original = r.rec.properties.repair(p).map(|repair| (repair.raw.as_str(), repair.reason.as_str()));
                match (original, altered) {
                    (Some((raw, reason)), _) => reject(r.rec, p, raw, reason.to_owned()),
                    (None, Some(a)) => reject(r.rec, p, &a.raw, a.reason.to_owned()),
                    (None, None) => {}
                }
                Some((p.clone(), serde_json::Value::String(text.into_owned())))
            })
            .collect();
        if values.is_empty() {
            b.append_null();
        } else {
            b.append_value(serde_json::Value::Object(values).to_string());
        }
    }
    Arc::new(b.finish())
}

fn property_array(
    column: &Column,
    property: &str,
    rows: &[Row<'_>],
    reject: &mut impl FnMut(&CrmObject, &str, &str, String),
) -> ArrayRef {
    // Parses each row's value, recording a reject and yielding NULL when it does not parse, and
    // recording one beside the stored value when it had to be stored changed. The raw value of a
    // reject is the value as HubSpot sent it (escaped where a warehouse cannot hold it).
    let parsed = rows.iter().map(|r| match raw(r.rec, property) {
        None => ParsedValue::Null,
        Some(v) => {
            let repair = r.rec.properties.repair(property);
            let original = repair.map_or(v, |repair| repair.raw.as_str());
            match parse_value(column.ty, v) {
                Ok(Parsed { value, altered }) => {
                    match (repair, altered) {
                        (Some(repair), _) => reject(r.rec, property, original, repair.reason.clone()),
                        (None, Some(a)) => reject(r.rec, property, &a.raw, a.reason.to_owned()),
                        (None, None) => {}
                    }
                    value
                }
                Err(reason) => {
                    let raw_kept = storable_text(original);
                    reject(r.rec, property, &raw_kept.1.map_or_else(|| original.to_owned(), |a| a.raw), reason);
                    ParsedValue::Null
                }
            }
        }
    });
    typed_array(column.ty, parsed, rows.len())
}

/// The Arrow array of a column of type `ty` holding `values` (`n` of them); a value of
/// another kind than the column's is stored as NULL.
pub(crate) fn typed_array<'a>(ty: ColumnType, mut values: impl Iterator<Item = ParsedValue<'a>>, n: usize) -> ArrayRef {
    match ty {
        ColumnType::Text | ColumnType::Json => {
            let mut b = StringBuilder::with_capacity(n, n * 16);
            for v in values.by_ref() {
                match v {
                    ParsedValue::Text(s) | ParsedValue::Json(s) => b.append_value(&*s),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Decimal => {
            let mut b = Decimal256Builder::with_capacity(n);
            for v in values.by_ref() {
                match v {
                    ParsedValue::Decimal(d) => b.append_value(d),
                    _ => b.append_null(),
                }
            }
            Arc::new(
                b.finish()
                    .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)
                    .expect("invariant: 76 and 38 are a valid Decimal256 precision and scale"),
            )
        }
        ColumnType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(n);
            for v in values.by_ref() {
                b.append_option(match v {
                    ParsedValue::Boolean(x) => Some(x),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::Date => {
            let mut b = Date32Builder::with_capacity(n);
            for v in values.by_ref() {
                b.append_option(match v {
                    ParsedValue::Date(x) => Some(x),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColumnType::Timestamp => timestamps(values.by_ref().map(|v| match v {
            ParsedValue::Timestamp(x) => Some(x),
            _ => None,
        })),
        ColumnType::BigInt => {
            let mut b = Int64Builder::with_capacity(n);
            for v in values.by_ref() {
                b.append_option(match v {
                    ParsedValue::BigInt(x) => Some(x),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{diff, ColumnBudget};
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Decimal256Type, TimestampMillisecondType};

    fn prop(name: &str, kind: &str) -> crate::hubspot::model::PropertyDefinition {
        serde_json::from_value(serde_json::json!({ "name": name, "type": kind })).unwrap()
    }

    fn record(id: &str, props: serde_json::Value) -> CrmObject {
        serde_json::from_value(serde_json::json!({
            "id": id, "properties": props, "updatedAt": "2026-01-02T00:00:00Z", "archived": false
        }))
        .unwrap()
    }

    #[test]
    fn values_are_typed_and_bad_ones_rejected_not_fatal() {
        let props = [
            prop("amount", "number"),
            prop("closed", "bool"),
            prop("note", "string"),
            prop("lastmodifieddate", "datetime"),
        ];
        let table = diff("contacts", &props, None, &[], &Default::default(), ColumnBudget::POSTGRES).target;
        let records = vec![
            record(
                "1",
                serde_json::json!({"amount": "0.1", "closed": "true", "note": "", "lastmodifieddate": "2026-01-01T00:00:00.5Z"}),
            ),
            record("2", serde_json::json!({"amount": "lots", "closed": null, "note": "héllo"})),
            record("x", serde_json::json!({"amount": "1"})),
        ];
        let built = build_batch(&table, "contacts", "lastmodifieddate", &records, 7);
        assert_eq!(built.batch.num_rows(), 2, "the record with a bad id is skipped");
        let amount = built.batch.column_by_name("amount").unwrap().as_primitive::<Decimal256Type>();
        assert_eq!(crate::schema::mapping::format_decimal(amount.value(0)), "0.1");
        assert!(amount.is_null(1));
        let note = built.batch.column_by_name("note").unwrap().as_string::<i32>();
        assert_eq!((note.value(0), note.is_null(0)), ("", false), "empty string is not NULL");
        let cursor = built.batch.column_by_name("_hsync_cursor").unwrap().as_primitive::<TimestampMillisecondType>();
        assert_eq!(cursor.value(0), 1_767_225_600_500);
        assert_eq!(cursor.value(1), 1_767_312_000_000, "falls back to updatedAt");
        let reasons: Vec<_> = built.rejects.iter().map(|r| (r.id.as_str(), r.property.as_str())).collect();
        assert_eq!(reasons, [("x", "id"), ("2", "amount")]);
        assert_eq!(built.rejects[1].raw, "lots");
    }

    #[test]
    fn an_unreadable_record_is_rejected_whole_with_its_json_and_its_neighbours_are_kept() {
        let table = diff("t", &[prop("note", "string")], None, &[], &Default::default(), ColumnBudget(2)).target;
        let page: crate::hubspot::model::SearchPage = crate::hubspot::model::salvage(
            r#"{"total":2,"results":[{"id":"1","properties":{"note":"ok","hs_lastmodifieddate":"1"}},{"id":"2","properties":["x"]}]}"#,
        )
        .unwrap();
        let built = build_batch(&table, "t", "hs_lastmodifieddate", &page.results, 0);
        assert_eq!(built.batch.num_rows(), 1);
        assert_eq!(built.rejects.len(), 1);
        let reject = &built.rejects[0];
        assert_eq!((reject.id.as_str(), reject.property.as_str()), ("2", WHOLE_RECORD));
        assert!(reject.raw.contains(r#"["x"]"#) && reject.reason.ends_with("the record was skipped"), "{reject:?}");
    }

    #[test]
    fn overflow_properties_land_in_the_json_column() {
        let props: Vec<_> = (0..4).map(|i| prop(&format!("p{i}"), "string")).collect();
        let table = diff("t", &props, None, &[], &Default::default(), ColumnBudget(2)).target;
        let built = build_batch(
            &table,
            "t",
            "hs_lastmodifieddate",
            &[record("5", serde_json::json!({"p0": "a", "p3": "d"}))],
            0,
        );
        let overflow = built.batch.column_by_name("_hsync_overflow").unwrap().as_string::<i32>();
        assert_eq!(overflow.value(0), r#"{"p3":"d"}"#);
    }
}
