//! A chunk's locations at ACS and when it was announced: the fields that decide what is archived, deleted and swept,
//! and so the fields no single event may take over.
//!
//! A chunk's three locations (`contentLocation`, `metadataLocation`, `deleteLocation`) travel together, as one
//! announcement, so that a chunk's content and metadata never come from two events. Of every announcement of a chunk
//! the document keeps the one that ranks first: one whose files the archive can download (not `locationsRefused`)
//! before one it cannot, then one naming files before one naming none, then the earliest (`locationsAnnouncedAt`, a
//! missing time — a document of an earlier version — first), then the smaller JSON. That is a minimum over the set of
//! announcements, so the document is the same whatever order, and however often, the events arrive; and an event can
//! take a chunk's locations away from the allowed sources only by announcing it earlier, at allowed sources too.
//!
//! `announcedAt` is the time of the chunk's earliest announcement, which the archive's settle time and ACS's
//! deadline count from. Both times are the event's, never later than when the handler received it
//! ([`clamp_times`]).

use std::cmp::Ordering;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::field_times::{canonical, compare_times};
use crate::event::EventTime;

pub const CONTENT: &str = "contentLocation";
pub const METADATA: &str = "metadataLocation";
pub const DELETE: &str = "deleteLocation";
/// When the chunk was first announced (the earliest event time among its announcements).
pub const ANNOUNCED_AT: &str = "announcedAt";
/// When the announcement the locations come from was made.
pub const LOCATIONS_ANNOUNCED_AT: &str = "locationsAnnouncedAt";
/// `true` when the locations are not files the archive downloads: a URL outside `RECORDINGS_ARCHIVE_SOURCES`, a
/// file missing, or content and metadata that are not files of one object.
pub const LOCATIONS_REFUSED: &str = "locationsRefused";

/// The fields of one announcement, which win or lose together.
const ANNOUNCEMENT: [&str; 5] = [CONTENT, METADATA, DELETE, LOCATIONS_ANNOUNCED_AT, LOCATIONS_REFUSED];

/// Every chunk field the handler writes from an announcement: an event's own value of one is set aside.
pub const OWN_FIELDS: [&str; 3] = [ANNOUNCED_AT, LOCATIONS_ANNOUNCED_AT, LOCATIONS_REFUSED];

/// How long past the moment the handler received an event its time may lie (clocks differ): a later time is taken
/// as the moment of receipt.
pub const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

type Chunk = Map<String, Value>;

/// A chunk's locations at ACS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkLocations {
    pub content: Option<String>,
    pub metadata: Option<String>,
    pub delete: Option<String>,
}

impl ChunkLocations {
    pub(super) fn of(chunk: &Chunk) -> Self {
        let text = |field: &str| chunk.get(field).and_then(Value::as_str).map(str::to_owned);
        Self {
            content: text(CONTENT),
            metadata: text(METADATA),
            delete: text(DELETE),
        }
    }
}

/// Whether `field` is one the announcement rule decides (not the field-by-field union).
pub(super) fn is_own(field: &str) -> bool {
    ANNOUNCEMENT.contains(&field) || field == ANNOUNCED_AT
}

/// Where an announcement ranks: 0 files the archive can download, 1 refused ones, 2 none named.
fn rank(chunk: &Chunk) -> u8 {
    if chunk.get(LOCATIONS_REFUSED) == Some(&Value::Bool(true)) {
        1
    } else if chunk.contains_key(CONTENT) || chunk.contains_key(METADATA) {
        0
    } else {
        2
    }
}

fn announcement(chunk: &Chunk) -> Map<String, Value> {
    ANNOUNCEMENT
        .iter()
        .filter_map(|field| Some(((*field).to_owned(), chunk.get(*field)?.clone())))
        .collect()
}

fn time_of<'a>(chunk: &'a Chunk, field: &str) -> Option<&'a str> {
    chunk.get(field).and_then(Value::as_str)
}

/// Merges the announcement fields of `theirs` into `ours` (see the module's documentation); returns whether ours
/// changed. Both are one chunk's.
pub(super) fn merge(ours: &mut Chunk, theirs: &Chunk) -> bool {
    let mut changed = false;
    let (mine, other) = (announcement(ours), announcement(theirs));
    if mine != other {
        let order = rank(ours).cmp(&rank(theirs)).then_with(|| {
            compare_times(
                time_of(ours, LOCATIONS_ANNOUNCED_AT),
                time_of(theirs, LOCATIONS_ANNOUNCED_AT),
            )
            .then_with(|| canonical(&mine).cmp(&canonical(&other)))
        });
        if order == Ordering::Greater {
            for field in ANNOUNCEMENT {
                ours.remove(field);
            }
            ours.extend(other);
            changed = true;
        }
    }
    // The earliest announcement's time. A chunk stored without one (by an earlier version) keeps none, whichever
    // side it is on: its deadline is then the recording's first event's.
    match (ours.get(ANNOUNCED_AT), theirs.get(ANNOUNCED_AT)) {
        (Some(mine), Some(other)) if mine != other => {
            let order =
                compare_times(mine.as_str(), other.as_str()).then_with(|| canonical(mine).cmp(&canonical(other)));
            if order == Ordering::Greater {
                ours.insert(ANNOUNCED_AT.to_owned(), other.clone());
                changed = true;
            }
        }
        (Some(_), None) => {
            ours.remove(ANNOUNCED_AT);
            changed = true;
        }
        _ => {}
    }
    changed
}

/// Stamps an event's chunks with the event's time, as the time of their announcement (`time` `None`: the event has
/// none; [`clamp_times`] gives them the moment of receipt).
pub(super) fn stamp(chunk: &mut Chunk, time: Option<&str>) {
    if let Some(time) = time {
        chunk.insert(ANNOUNCED_AT.to_owned(), Value::String(time.to_owned()));
        chunk.insert(LOCATIONS_ANNOUNCED_AT.to_owned(), Value::String(time.to_owned()));
    }
}

/// Gives an event's chunk the moment the handler received the event as its announcement time when the event's own
/// is missing, unreadable, or later than `received` by more than [`CLOCK_SKEW`]; returns the time replaced, if any
/// (`Some(None)`: there was none).
pub(super) fn clamp_times(chunk: &mut Chunk, received: OffsetDateTime) -> Option<Option<String>> {
    let given = time_of(chunk, ANNOUNCED_AT).map(str::to_owned);
    let latest = received.checked_add(CLOCK_SKEW);
    let acceptable = given
        .as_deref()
        .and_then(EventTime::instant)
        .is_some_and(|instant| latest.is_none_or(|latest| instant <= latest));
    if acceptable {
        return None;
    }
    let now = Value::String(received.format(&Rfc3339).unwrap_or_default());
    chunk.insert(ANNOUNCED_AT.to_owned(), now.clone());
    chunk.insert(LOCATIONS_ANNOUNCED_AT.to_owned(), now);
    Some(given)
}

/// Marks an event's chunk `locationsRefused` when its files are not ones the archive downloads: a URL `is_source`
/// refuses, a file not named, or content and metadata that are not files of one object.
pub(super) fn judge(chunk: &mut Chunk, is_source: &dyn Fn(&str) -> bool) {
    let ChunkLocations { content, metadata, .. } = ChunkLocations::of(chunk);
    let usable = match (&content, &metadata) {
        (Some(content), Some(metadata)) => {
            is_source(content) && is_source(metadata) && one_object(content, metadata).is_some()
        }
        _ => false,
    };
    if !usable && (content.is_some() || metadata.is_some()) {
        chunk.insert(LOCATIONS_REFUSED.to_owned(), Value::Bool(true));
    }
}

/// The object two files of one chunk lie under (ACS: `{origin}/v1/objects/{id}` for
/// `…/v1/objects/{id}/content/video` and `…/content/acsmetadata`); `None` when they are not files of one object.
pub fn one_object(content: &str, metadata: &str) -> Option<String> {
    let (content, metadata) = (url::Url::parse(content).ok()?, url::Url::parse(metadata).ok()?);
    if content.origin() != metadata.origin() || content.query().is_some() || metadata.query().is_some() {
        return None;
    }
    let object = |url: &url::Url| {
        let (object, name) = url.path().rsplit_once("/content/")?;
        (!object.is_empty() && !name.is_empty() && !name.contains('/')).then(|| object.to_owned())
    };
    let object_path = object(&content)?;
    (object(&metadata)? == object_path).then(|| format!("{}{object_path}", content.origin().ascii_serialization()))
}
