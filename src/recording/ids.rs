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

    /// The SHA-256 of `text` and a NUL byte, computed here without the crate's digest helpers.
    fn sha256_with_nul(text: &str) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new().chain_update(text.as_bytes()).chain_update([0]).finalize();
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn an_unsafe_recording_id_becomes_rid_and_the_sha256_of_the_id_and_a_nul() {
        // Pinned: `printf 'a?b\0' | sha256sum`.
        assert_eq!(
            document_id("a?b"),
            "rid-3db35d3d1cb1b6b0b4ba5c58a1d199484d7977f3d13137cb8585500517fac465"
        );
        for unsafe_id in ["a/b", "a\\b", "a#b", " padded", "tab\t", "", "nul\u{0}"] {
            assert_eq!(
                document_id(unsafe_id),
                format!("rid-{}", sha256_with_nul(unsafe_id)),
                "{unsafe_id:?}"
            );
        }
        assert_eq!(document_id("plain-id_1:2"), "plain-id_1:2");
        assert_eq!(document_id("é-ü"), "é-ü");
    }

    #[test]
    fn a_recording_id_of_255_bytes_is_kept_and_one_of_256_is_digested() {
        let longest = "x".repeat(MAX_VERBATIM_ID_BYTES);
        assert_eq!(longest.len(), 255);
        assert_eq!(document_id(&longest), longest);
        let one_more = "x".repeat(256);
        assert_eq!(document_id(&one_more), format!("rid-{}", sha256_with_nul(&one_more)));
        // Bytes, not characters: 127 two-byte characters and one byte are 255 bytes; one more character is 257.
        let wide = format!("{}x", "é".repeat(127));
        assert_eq!(document_id(&wide), wide);
        let wider = "é".repeat(128) + "x";
        assert_eq!(document_id(&wider), format!("rid-{}", sha256_with_nul(&wider)));
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
            "0001-01-01T00:00:00Z",
            "2021-07-27T15:20:23+23:59",
            "2021-07-27T15:20:23-23:59",
        ] {
            let id = derived_id("c1", Some(&Value::from(edge)), "e1");
            assert!(id.starts_with("rec-") && id.len() == 36, "{edge}: {id}");
            assert_eq!(
                id,
                derived_id("c1", Some(&Value::from(edge)), "e2"),
                "{edge}: one id per recording"
            );
            assert_ne!(id, derived_id("c2", Some(&Value::from(edge)), "e1"), "{edge}");
        }
        assert_ne!(
            derived_id("c1", Some(&Value::from("9999-12-31T23:30:00-01:00")), "e1"),
            derived_id("c1", Some(&Value::from("9999-12-31T23:30:00-02:00")), "e1"),
        );
    }
}
