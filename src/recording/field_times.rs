//! Which of two values of one field wins a merge: the one from the later event, by `eventTime`, with ties settled
//! by the value itself so that the outcome never depends on which delivery came first.
//!
//! The merge works in place: our values and `fieldTimes` are updated where theirs win, and every pick reports
//! whether it changed anything, so that a redelivery that adds nothing is seen to add nothing without comparing
//! whole documents.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use time::OffsetDateTime;

use crate::event::EventTime;

/// For each single-valued field, the `eventTime` of the event its value came from. The fields of one event share
/// one time text, and the names the document itself gives fields are not copied.
pub type FieldTimes = BTreeMap<Cow<'static, str>, Arc<str>>;

/// Picks, field by field, between our values and theirs, keeping our `fieldTimes` up to date.
pub(super) struct Picker<'a> {
    ours: &'a mut FieldTimes,
    theirs: FieldTimes,
    /// Each time text read once, as nanoseconds since the Unix epoch: a document's fields mostly share one or two
    /// times.
    parsed: Vec<(String, Option<i128>)>,
}

impl<'a> Picker<'a> {
    /// Our `fieldTimes`, updated in place, and theirs.
    pub(super) fn new(ours: &'a mut FieldTimes, theirs: FieldTimes) -> Self {
        Self {
            ours,
            theirs,
            parsed: Vec::new(),
        }
    }

    /// Picks between our value of a field and theirs; returns whether ours changed.
    pub(super) fn pick<T: Serialize + PartialEq>(
        &mut self,
        key: &str,
        ours: &mut Option<T>,
        theirs: Option<T>,
    ) -> bool {
        let Some(theirs) = theirs else {
            return false;
        };
        // Looked up, not removed: theirs is dropped whole after the merge.
        let their_time = self.theirs.get(key).map(Arc::clone);
        let our_time = self.ours.get_mut(key);
        let our_text = our_time.as_deref().map(|t| &**t);
        let wins = match ours.as_ref() {
            None => true,
            Some(current) => {
                compare(&mut self.parsed, our_text, their_time.as_deref()).then_with(|| tie(current, &theirs))
                    == Ordering::Less
            }
        };
        if !wins {
            return false;
        }
        let changed = ours.as_ref() != Some(&theirs) || our_text != their_time.as_deref();
        *ours = Some(theirs);
        match (their_time, our_time) {
            (Some(time), Some(ours)) => *ours = time,
            (Some(time), None) => {
                self.ours.insert(Cow::Owned(key.to_owned()), time);
            }
            (None, Some(_)) => {
                self.ours.remove(key);
            }
            (None, None) => {}
        }
        changed
    }

    /// [`Picker::pick`] for a field every document has.
    pub(super) fn pick_required<T: Serialize + PartialEq + Default>(
        &mut self,
        key: &str,
        ours: &mut T,
        theirs: T,
    ) -> bool {
        let mut slot = Some(std::mem::take(ours));
        let changed = self.pick(key, &mut slot, Some(theirs));
        *ours = slot.unwrap_or_default();
        changed
    }

    /// Picks every field of a map (`data`, `extraData`), under `prefix` in `fieldTimes`; returns whether ours
    /// changed.
    pub(super) fn pick_each(
        &mut self,
        prefix: &str,
        ours: &mut Map<String, Value>,
        theirs: Map<String, Value>,
    ) -> bool {
        let mut changed = false;
        for (name, their_value) in theirs {
            let key = field_key(prefix, &name);
            match ours.get_mut(&name) {
                Some(current) => {
                    let mut slot = Some(std::mem::take(current));
                    changed |= self.pick(&key, &mut slot, Some(their_value));
                    *current = slot.unwrap_or_default();
                }
                None => {
                    let mut slot = None;
                    changed |= self.pick(&key, &mut slot, Some(their_value));
                    if let Some(value) = slot {
                        ours.insert(name, value);
                    }
                }
            }
        }
        changed
    }

    /// Keeps the one of two times that sorts `wanted` (Less: the earlier, Greater: the later); returns whether ours
    /// changed.
    pub(super) fn pick_time(&mut self, ours: &mut Option<String>, theirs: Option<String>, wanted: Ordering) -> bool {
        let Some(theirs) = theirs else {
            return false;
        };
        let take = match ours.as_deref() {
            None => true,
            Some(current) => {
                current != theirs
                    && compare(&mut self.parsed, Some(&theirs), Some(current))
                        .then_with(|| theirs.as_str().cmp(current))
                        == wanted
            }
        };
        if take {
            *ours = Some(theirs);
        }
        take
    }
}

/// Orders two stored event times, a missing or unreadable one older than any readable one, reading each time text
/// once (`parsed` caches what was read).
fn compare(parsed: &mut Vec<(String, Option<i128>)>, a: Option<&str>, b: Option<&str>) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let mut read = |text: &str| match parsed.iter().position(|(known, _)| known == text) {
        Some(index) => index,
        None => {
            let instant = EventTime::instant(text).map(OffsetDateTime::unix_timestamp_nanos);
            parsed.push((text.to_owned(), instant));
            parsed.len() - 1
        }
    };
    let (a, b) = (a.map(&mut read), b.map(&mut read));
    // By instant, then by text: two spellings of one instant still order one way, as `EventTime` orders them.
    let time = |i: Option<usize>| i.and_then(|i| parsed[i].1.map(|instant| (instant, parsed[i].0.as_str())));
    time(a).cmp(&time(b))
}

/// Orders two stored event times as [`Picker`] does: by instant, a missing or unreadable time first, then by text.
pub(super) fn compare_times(a: Option<&str>, b: Option<&str>) -> Ordering {
    compare(&mut Vec::new(), a, b)
}

/// The `fieldTimes` key of a `data` (no prefix) or `extraData` field.
fn field_key<'a>(prefix: &str, name: &'a str) -> Cow<'a, str> {
    if prefix.is_empty() {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(format!("{prefix}{name}"))
    }
}

/// Settles a tie in time by the values' JSON texts; equal values (a redelivery) tie without writing either out.
fn tie<T: Serialize + PartialEq>(ours: &T, theirs: &T) -> Ordering {
    if ours == theirs {
        Ordering::Equal
    } else {
        canonical(ours).cmp(&canonical(theirs))
    }
}

/// A JSON text with sorted keys, to settle ties the same way on every instance.
pub(super) fn canonical<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
