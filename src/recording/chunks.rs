//! The union of two chunk lists: one chunk per `documentId`, the fields of each chunk united, ordered by `index`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::archive;
use super::field_times::canonical;

/// The union of two chunk lists: one chunk per `documentId` (chunks without one are kept as they are, once each),
/// fields of the same chunk united — where two announcements disagree on a field the greater JSON value wins, and
/// the `archive` field follows its own merge ([`archive::merge`]) — ordered by `index` then `documentId`.
pub(super) fn merge_chunks(ours: Vec<Map<String, Value>>, theirs: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
    let mut by_key: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for chunk in ours.into_iter().chain(theirs) {
        let key = match chunk.get("documentId") {
            Some(Value::String(id)) => format!("id:{id}"),
            _ => format!("anonymous:{}", canonical(&chunk)),
        };
        match by_key.get_mut(&key) {
            None => {
                by_key.insert(key, chunk);
            }
            Some(existing) => {
                for (field, value) in chunk {
                    match existing.get_mut(&field) {
                        Some(current) if field == archive::FIELD => {
                            *current = archive::merge(current.take(), value);
                        }
                        Some(current) if canonical(current) >= canonical(&value) => {}
                        Some(current) => *current = value,
                        None => {
                            existing.insert(field, value);
                        }
                    }
                }
            }
        }
    }
    let mut chunks: Vec<(String, Map<String, Value>)> = by_key.into_iter().collect();
    chunks.sort_by(|(key_a, a), (key_b, b)| {
        let index = |chunk: &Map<String, Value>| chunk.get("index").and_then(Value::as_f64);
        match (index(a), index(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
        .then_with(|| key_a.cmp(key_b))
    });
    chunks.into_iter().map(|(_, chunk)| chunk).collect()
}
