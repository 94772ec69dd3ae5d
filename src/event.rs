//! One Event Grid event, in either schema a subscription can deliver: Event Grid or CloudEvents 1.0.
//!
//! Both carry the same facts under different names (`eventType`/`type`, `topic`/`source`, `eventTime`/`time`);
//! this module reads either into one [`Event`]. Extra fields, such as those of dead-letter blobs, are ignored.

use std::cmp::Ordering;

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The schema an event arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    EventGrid,
    CloudEvents,
}

/// An event's time: the text as sent (kept in documents) and the instant it names (used to order events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTime {
    pub text: String,
    pub instant: OffsetDateTime,
}

impl EventTime {
    /// Parses an RFC 3339 time; ACS sends seven fractional digits, which this keeps to the nanosecond.
    pub fn parse(text: &str) -> Option<Self> {
        let instant = Self::instant(text)?;
        Some(Self {
            text: text.to_owned(),
            instant,
        })
    }

    /// The instant an RFC 3339 time names, without a copy of its text.
    pub fn instant(text: &str) -> Option<OffsetDateTime> {
        utc_instant(text).or_else(|| OffsetDateTime::parse(text, &Rfc3339).ok())
    }
}

/// The value of at most nine decimal digits; `None` if any byte is not one.
fn decimal(digits: &[u8]) -> Option<u32> {
    digits
        .iter()
        .try_fold(0u32, |n, &b| b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0')))
}

/// The form every Event Grid and ACS time takes, `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, read directly: the general
/// RFC 3339 parser costs more than the rest of an event's merge. `None` for any other form (offsets, lowercase
/// letters, a leap second), which the general parser then reads.
fn utc_instant(text: &str) -> Option<OffsetDateTime> {
    let bytes = text.strip_suffix('Z')?.as_bytes();
    let (head, fraction) = bytes.split_at_checked(19)?;
    if !matches!(
        head,
        [_, _, _, _, b'-', _, _, b'-', _, _, b'T', _, _, b':', _, _, b':', _, _]
    ) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| decimal(&head[range]);
    let nanosecond = match fraction {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => decimal(digits)? * 10u32.pow(9 - digits.len() as u32),
        _ => return None,
    };
    let month = time::Month::try_from(u8::try_from(number(5..7)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(number(0..4)?).ok()?, month, number(8..10)? as u8).ok()?;
    let (hour, minute, second) = (number(11..13)? as u8, number(14..16)? as u8, number(17..19)? as u8);
    let time = time::Time::from_hms_nano(hour, minute, second, nanosecond).ok()?;
    Some(date.with_time(time).assume_utc())
}

impl Ord for EventTime {
    /// Orders by instant; two spellings of one instant are ordered by their text so that the order is total.
    fn cmp(&self, other: &Self) -> Ordering {
        self.instant
            .cmp(&other.instant)
            .then_with(|| self.text.cmp(&other.text))
    }
}

impl PartialOrd for EventTime {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The facts of an event that decide what happens to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub schema: Schema,
    pub id: String,
    pub event_type: String,
    /// The resource that published the event: `topic` (Event Grid) or `source` (CloudEvents).
    pub source: Option<String>,
    pub subject: Option<String>,
    /// `None` when the event has no time or one that is not RFC 3339; see [`Event::unreadable_time`].
    pub time: Option<EventTime>,
    /// The time text when it could not be read, so that callers can report it.
    pub unreadable_time: Option<String>,
    pub data: Option<Value>,
}

/// Why a text is not an event we can classify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event is not a JSON object with string fields: {0}")]
    Malformed(String),
    #[error("the event has no id")]
    NoId,
    #[error("the event has no event type")]
    NoType,
}

/// Both schemas' fields, as they arrive; which ones are present tells the schema.
#[derive(Deserialize)]
pub struct WireEvent {
    id: Option<String>,
    #[serde(rename = "eventType")]
    event_type: Option<String>,
    #[serde(rename = "type")]
    cloud_type: Option<String>,
    topic: Option<String>,
    source: Option<String>,
    subject: Option<String>,
    #[serde(rename = "eventTime")]
    event_time: Option<String>,
    time: Option<String>,
    specversion: Option<String>,
    data: Option<Value>,
}

impl Event {
    pub fn parse(json: &str) -> Result<Self, EventError> {
        let wire: WireEvent = serde_json::from_str(json).map_err(|e| EventError::Malformed(e.to_string()))?;
        Self::from_wire(wire)
    }

    /// The event in its fields as deserialized (from the text, or straight out of an envelope).
    pub fn from_wire(wire: WireEvent) -> Result<Self, EventError> {
        let schema = if wire.specversion.is_some() {
            Schema::CloudEvents
        } else {
            Schema::EventGrid
        };
        let (event_type, source, time) = match schema {
            Schema::EventGrid => (wire.event_type, wire.topic, wire.event_time),
            Schema::CloudEvents => (wire.cloud_type, wire.source, wire.time),
        };
        let id = wire.id.filter(|id| !id.is_empty()).ok_or(EventError::NoId)?;
        let event_type = event_type.filter(|t| !t.is_empty()).ok_or(EventError::NoType)?;
        let parsed_time = time.as_deref().and_then(EventTime::parse);
        let unreadable_time = if parsed_time.is_none() { time } else { None };
        Ok(Self {
            schema,
            id,
            event_type,
            source,
            subject: wire.subject,
            time: parsed_time,
            unreadable_time,
            data: wire.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_grid_schema_is_read() {
        let e = Event::parse(
            r#"{"id":"1","topic":"/t","subject":"/s","eventType":"T","eventTime":"2021-07-27T15:20:34.2199328Z",
                "data":{"x":1},"dataVersion":"1.0","metadataVersion":"1"}"#,
        )
        .unwrap();
        assert_eq!(e.schema, Schema::EventGrid);
        assert_eq!((e.id.as_str(), e.event_type.as_str()), ("1", "T"));
        assert_eq!((e.source.as_deref(), e.subject.as_deref()), (Some("/t"), Some("/s")));
        assert_eq!(e.time.unwrap().instant.nanosecond(), 219_932_800);
        assert_eq!(e.data, Some(serde_json::json!({"x": 1})));
    }

    #[test]
    fn cloud_events_schema_is_read() {
        let e = Event::parse(
            r#"{"id":"1","source":"/t","subject":"/s","type":"T","time":"2021-07-27T15:20:34Z","specversion":"1.0",
                "data":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(e.schema, Schema::CloudEvents);
        assert_eq!((e.event_type.as_str(), e.source.as_deref()), ("T", Some("/t")));
        assert!(e.time.is_some());
    }

    #[test]
    fn dead_letter_fields_are_ignored() {
        let e = Event::parse(
            r#"{"id":"1","eventType":"T","deadLetterReason":"MaxDeliveryAttemptsExceeded","deliveryAttempts":30}"#,
        )
        .unwrap();
        assert_eq!(e.id, "1");
    }

    #[test]
    fn acs_times_are_read_to_the_nanosecond() {
        let read = |text: &str| EventTime::instant(text).map(OffsetDateTime::unix_timestamp_nanos);
        assert_eq!(read("2026-11-27T15:20:34.2199328Z"), Some(1_795_792_834_219_932_800));
        assert_eq!(read("2026-11-27T15:20:34Z"), Some(1_795_792_834_000_000_000));
        assert_eq!(
            read("2026-11-27T16:20:34.2199328+01:00"),
            read("2026-11-27T15:20:34.2199328Z")
        );
        for refused in ["2026-02-30T00:00:00Z", "2026-11-27T24:00:00Z", "2026-11-27T15:20:34.Z"] {
            assert_eq!(read(refused), None, "{refused}");
        }
    }

    proptest::proptest! {
        /// The direct reading of the usual form agrees with the general RFC 3339 parser wherever it answers.
        #[test]
        fn the_usual_form_reads_as_rfc_3339_reads_it(
            text in "[0-9]{4}-[0-1][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{0,10})?[Zz]?",
        ) {
            if let Some(instant) = utc_instant(&text) {
                proptest::prop_assert_eq!(Some(instant), OffsetDateTime::parse(&text, &Rfc3339).ok());
            }
            proptest::prop_assert_eq!(EventTime::instant(&text), OffsetDateTime::parse(&text, &Rfc3339).ok());
        }
    }

    #[test]
    fn unreadable_time_is_reported_not_fatal() {
        let e = Event::parse(r#"{"id":"1","eventType":"T","eventTime":"yesterday"}"#).unwrap();
        assert_eq!((e.time, e.unreadable_time.as_deref()), (None, Some("yesterday")));
    }

    #[test]
    fn events_without_id_or_type_or_shape_are_refused() {
        assert_eq!(Event::parse(r#"{"eventType":"T"}"#), Err(EventError::NoId));
        assert_eq!(Event::parse(r#"{"id":"","eventType":"T"}"#), Err(EventError::NoId));
        assert_eq!(Event::parse(r#"{"id":"1"}"#), Err(EventError::NoType));
        assert_eq!(
            Event::parse(r#"{"id":"1","type":"T"}"#),
            Err(EventError::NoType),
            "type without specversion"
        );
        assert!(matches!(
            Event::parse(r#"{"id":1,"eventType":"T"}"#),
            Err(EventError::Malformed(_))
        ));
        assert!(matches!(Event::parse("[]"), Err(EventError::Malformed(_))));
    }

    #[test]
    fn times_order_by_instant_then_text() {
        let a = EventTime::parse("2021-07-27T15:20:34Z").unwrap();
        let b = EventTime::parse("2021-07-27T17:20:33+02:00").unwrap();
        let c = EventTime::parse("2021-07-27T15:20:34.0000000Z").unwrap();
        assert!(b < a);
        assert_eq!(a.instant, c.instant);
        assert_eq!(
            a.cmp(&c),
            a.text.cmp(&c.text),
            "one instant, two spellings: ordered by text"
        );
    }
}
