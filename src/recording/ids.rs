//! Document ids: the recording id when it is safe in every store, otherwise an id derived from it or from the call.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;

use crate::digest::sha256_hex;
use crate::event::EventTime;

/// The longest recording id used verbatim as a document id (Cosmos DB's limit is 255 bytes).
const MAX_VERBATIM_ID_BYTES: usize = 255;

/// The document id for a recording id: verbatim when safe in every store, else a digest of it.
pub fn document_id(recording_id: &str) -> String {
    let refused = |c: char| c.is_control() || matches!(c, '/' | '\\' | '?' | '#');
    // Recording ids are base64 text: printable ASCII throughout is safe without the Unicode checks.
    let plain = |b: u8| b.is_ascii_graphic() && !refused(char::from(b));
    let safe = !recording_id.is_empty()
        && recording_id.len() <= MAX_VERBATIM_ID_BYTES
        && (recording_id.bytes().all(plain)
            || (recording_id.trim() == recording_id && !recording_id.chars().any(refused)));
    if safe {
        recording_id.to_owned()
    } else {
        format!("rid-{}", sha256_hex(&[recording_id.as_bytes()]))
    }
}

/// The id of a recording no event names: a digest of the call id and `recordingStartTime` — the same for every event
/// of that recording — or, without a start time, of the call id and the event id, so that a redelivery still lands
/// on the same document.
pub(super) fn derived_id(call_id: &str, start_time: Option<&Value>, event_id: &str) -> String {
    let digest = match start_time {
        Some(Value::String(text)) => {
            // The instant, not its spelling: a tool that re-serializes the time must not split the recording. An
            // instant whose UTC spelling leaves the calendar (9999-12-31T23:30:00-01:00) keeps its own text.
            let start = EventTime::parse(text)
                .and_then(|t| t.instant.checked_to_offset(time::UtcOffset::UTC))
                .and_then(|utc| utc.format(&Rfc3339).ok())
                .unwrap_or_else(|| text.clone());
            sha256_hex(&[b"start", call_id.as_bytes(), start.as_bytes()])
        }
        Some(start) if !start.is_null() => sha256_hex(&[b"start", call_id.as_bytes(), start.to_string().as_bytes()]),
        _ => sha256_hex(&[b"event", call_id.as_bytes(), event_id.as_bytes()]),
    };
    format!("rec-{}", &digest[..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_recording_ids_are_kept_and_others_digested() {
        assert_eq!(document_id("a?b"), document_id("a?b"));
        assert!(document_id("a?b").starts_with("rid-"));
        assert_eq!(document_id("plain-id_1:2"), "plain-id_1:2");
        assert!(document_id(&"x".repeat(300)).starts_with("rid-"));
        assert!(document_id(" padded").starts_with("rid-"));
    }

    #[test]
    fn derived_ids_follow_the_start_instant_not_its_spelling() {
        let a = derived_id("c1", Some(&Value::from("2021-07-27T15:20:23.6089755Z")), "e1");
        let b = derived_id("c1", Some(&Value::from("2021-07-27T17:20:23.60897550+02:00")), "e2");
        assert_eq!(a, b);
        assert_ne!(
            a,
            derived_id("c2", Some(&Value::from("2021-07-27T15:20:23.6089755Z")), "e1")
        );
        assert_ne!(derived_id("c1", None, "e1"), derived_id("c1", None, "e2"));
        assert!(a.starts_with("rec-") && a.len() == 36);
    }

    #[test]
    fn start_times_at_the_edges_of_the_calendar_keep_their_own_text() {
        for edge in [
            "9999-12-31T23:30:00-01:00",
            "9999-12-31T23:59:59.9999999Z",
            "0000-01-01T00:30:00+01:00",
            "0000-01-01T00:00:00Z",
        ] {
            let id = derived_id("c1", Some(&Value::from(edge)), "e1");
            assert!(id.starts_with("rec-") && id.len() == 36, "{edge}: {id}");
            assert_eq!(
                id,
                derived_id("c1", Some(&Value::from(edge)), "e2"),
                "{edge}: one id per recording"
            );
        }
        assert_ne!(
            derived_id("c1", Some(&Value::from("9999-12-31T23:30:00-01:00")), "e1"),
            derived_id("c1", Some(&Value::from("9999-12-31T23:30:00-02:00")), "e1"),
        );
    }
}
