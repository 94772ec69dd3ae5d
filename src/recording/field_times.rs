//! Which of two values of one field wins a merge: the one from the later event, by `eventTime`, with ties settled
//! by the value itself so that the outcome never depends on which delivery came first.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::event::EventTime;

/// The winner between two values of one field, by (event time, canonical JSON): the later event wins and equal
/// times are settled by the value itself, so the choice never depends on which delivery came first.
pub(super) struct FieldTimes {
    ours: BTreeMap<String, String>,
    theirs: BTreeMap<String, String>,
    merged: BTreeMap<String, String>,
    /// Each time text read once: a document's fields mostly share one or two times.
    parsed: Vec<(String, Option<EventTime>)>,
}

impl FieldTimes {
    /// Two documents' `fieldTimes`, to pick their fields' winners from.
    pub(super) fn new(ours: BTreeMap<String, String>, theirs: BTreeMap<String, String>) -> Self {
        Self {
            ours,
            theirs,
            merged: BTreeMap::new(),
            parsed: Vec::new(),
        }
    }

    /// The merged document's `fieldTimes`: the time of each winning value.
    pub(super) fn into_merged(self) -> BTreeMap<String, String> {
        self.merged
    }

    pub(super) fn pick<T: Serialize>(&mut self, key: &str, ours: Option<T>, theirs: Option<T>) -> Option<T> {
        let (value, time) = match (ours, theirs) {
            (None, None) => return None,
            (Some(ours), None) => (ours, self.ours.remove(key)),
            (None, Some(theirs)) => (theirs, self.theirs.remove(key)),
            (Some(ours), Some(theirs)) => {
                let our_time = self.ours.remove(key);
                let their_time = self.theirs.remove(key);
                let order = self
                    .compare(our_time.as_deref(), their_time.as_deref())
                    .then_with(|| canonical(&ours).cmp(&canonical(&theirs)));
                if order == Ordering::Less {
                    (theirs, their_time)
                } else {
                    (ours, our_time)
                }
            }
        };
        if let Some(time) = time {
            self.merged.insert(key.to_owned(), time);
        }
        Some(value)
    }

    /// Orders two stored event times, a missing or unreadable one older than any readable one, reading each time
    /// text once.
    fn compare(&mut self, a: Option<&str>, b: Option<&str>) -> Ordering {
        if a == b {
            return Ordering::Equal;
        }
        let a = a.map(|a| self.parse(a));
        let b = b.map(|b| self.parse(b));
        let (a, b) = (
            a.and_then(|i| self.parsed[i].1.as_ref()),
            b.and_then(|i| self.parsed[i].1.as_ref()),
        );
        a.cmp(&b)
    }

    /// The one of two times that sorts `wanted` (Less: the earlier, Greater: the later).
    pub(super) fn pick_time(&mut self, a: Option<String>, b: Option<String>, wanted: Ordering) -> Option<String> {
        match (a, b) {
            (Some(a), Some(b)) => {
                if self.compare(Some(&b), Some(&a)).then_with(|| b.cmp(&a)) == wanted {
                    Some(b)
                } else {
                    Some(a)
                }
            }
            (a, b) => a.or(b),
        }
    }

    fn parse(&mut self, text: &str) -> usize {
        match self.parsed.iter().position(|(known, _)| known == text) {
            Some(index) => index,
            None => {
                self.parsed.push((text.to_owned(), EventTime::parse(text)));
                self.parsed.len() - 1
            }
        }
    }

    pub(super) fn pick_each(
        &mut self,
        prefix: &str,
        mut ours: BTreeMap<String, Value>,
        theirs: BTreeMap<String, Value>,
    ) -> BTreeMap<String, Value> {
        let mut merged = BTreeMap::new();
        for (name, their_value) in theirs {
            let our_value = ours.remove(&name);
            if let Some(value) = self.pick(&field_key(prefix, &name), our_value, Some(their_value)) {
                merged.insert(name, value);
            }
        }
        for (name, our_value) in ours {
            if let Some(value) = self.pick(&field_key(prefix, &name), Some(our_value), None) {
                merged.insert(name, value);
            }
        }
        merged
    }
}

/// The `fieldTimes` key of a `data` (no prefix) or `extraData` field.
fn field_key<'a>(prefix: &str, name: &'a str) -> Cow<'a, str> {
    if prefix.is_empty() {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(format!("{prefix}{name}"))
    }
}

/// A JSON text with sorted keys, to settle ties the same way on every instance.
pub(super) fn canonical<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
