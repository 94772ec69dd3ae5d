//! The union of two chunk lists: one chunk per `documentId`, the fields of each chunk united, ordered by `index`.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::field_times::canonical;
use super::{archive, locations};

/// Chunk lists longer than this are searched through an index rather than one by one.
const INDEXED_FROM: usize = 32;

type Chunk = Map<String, Value>;

fn document_id(chunk: &Chunk) -> Option<&str> {
    match chunk.get("documentId") {
        Some(Value::String(id)) => Some(id),
        _ => None,
    }
}

/// Merges `theirs` into `ours`: one chunk per `documentId` (chunks without one are kept as they are, once each),
/// fields of the same chunk united — the locations and announcement times by their own rule ([`locations::merge`]),
/// the `archive` field by its own ([`archive::merge`]), and where two announcements disagree on any other field the
/// greater JSON value wins — ordered by `index` then `documentId`. Returns whether `ours` changed.
pub(super) fn merge_chunks(ours: &mut Vec<Chunk>, theirs: Vec<Chunk>) -> bool {
    let mut index: Option<HashMap<String, usize>> = None;
    let (mut changed, mut reorder) = (false, false);
    for chunk in theirs {
        if index.is_none() && ours.len() >= INDEXED_FROM {
            index = Some(
                ours.iter()
                    .enumerate()
                    .filter_map(|(i, c)| document_id(c).map(|id| (id.to_owned(), i)))
                    .collect(),
            );
        }
        let position = match (document_id(&chunk), &index) {
            (Some(id), Some(index)) => index.get(id).copied(),
            (Some(id), None) => ours.iter().position(|c| document_id(c) == Some(id)),
            (None, _) => ours.iter().position(|c| document_id(c).is_none() && *c == chunk),
        };
        match position {
            Some(i) => {
                let (fields_changed, index_changed) = merge_fields(&mut ours[i], chunk);
                changed |= fields_changed;
                reorder |= index_changed;
            }
            None => {
                if let (Some(index), Some(id)) = (index.as_mut(), document_id(&chunk)) {
                    index.insert(id.to_owned(), ours.len());
                }
                ours.push(chunk);
                changed = true;
                reorder = true;
            }
        }
    }
    if reorder {
        ours.sort_by(order);
    }
    changed
}

/// Unites two announcements of one chunk into `ours`; returns whether it changed, and whether its `index` did.
fn merge_fields(ours: &mut Chunk, theirs: Chunk) -> (bool, bool) {
    let (mut changed, mut index_changed) = (locations::merge(ours, &theirs), false);
    for (field, value) in theirs {
        if locations::is_own(&field) {
            continue;
        }
        let is_index = field == "index";
        let field_changed = match ours.get_mut(&field) {
            None => {
                ours.insert(field, value);
                true
            }
            Some(current) if *current == value => false,
            Some(current) if field == archive::FIELD => {
                let merged = archive::merge(current.clone(), value);
                let differs = merged != *current;
                *current = merged;
                differs
            }
            Some(current) if canonical(current) >= canonical(&value) => false,
            Some(current) => {
                *current = value;
                true
            }
        };
        changed |= field_changed;
        index_changed |= field_changed && is_index;
    }
    (changed, index_changed)
}

/// Chunks in order of `index` (chunks without one last), then `documentId` (chunks without one first, in the order
/// of their JSON).
fn order(a: &Chunk, b: &Chunk) -> Ordering {
    let index = |chunk: &Chunk| chunk.get("index").and_then(Value::as_f64);
    let by_index = match (index(a), index(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_index.then_with(|| match (document_id(a), document_id(b)) {
        (Some(x), Some(y)) => x.cmp(y),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (None, None) => canonical(a).cmp(&canonical(b)),
    })
}
