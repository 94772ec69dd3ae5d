//! Payloads that can never be processed, kept verbatim with the reason so that nothing the host delivers is lost.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::digest::sha256_hex;

/// One quarantined payload. Its id is a digest of the payload, so a redelivery lands on the same entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuarantineEntry {
    pub id: String,
    /// Why the payload cannot be processed, in plain words.
    pub reason: String,
    /// When this handler first received it (RFC 3339, UTC).
    pub received_at: String,
    /// The payload as it arrived, when it is UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The payload as it arrived, base64-encoded, when it is not UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// Set when only the start of the payload could be kept (a store's item size limit): its full size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_from_bytes: Option<usize>,
}

impl QuarantineEntry {
    pub fn new(payload: &[u8], reason: impl Into<String>, received_at: impl Into<String>) -> Self {
        let id = sha256_hex(&[b"quarantine", payload]);
        let (payload, payload_base64) = match std::str::from_utf8(payload) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (None, Some(base64::engine::general_purpose::STANDARD.encode(payload))),
        };
        Self {
            id,
            reason: reason.into(),
            received_at: received_at.into(),
            payload,
            payload_base64,
            truncated_from_bytes: None,
        }
    }

    /// The same entry keeping only the first `max_bytes` of the payload (at a character boundary), for a store
    /// that cannot hold it whole; the id still names the whole payload.
    pub fn truncated(&self, max_bytes: usize) -> Self {
        let cut = |text: &str| {
            let mut end = max_bytes.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text[..end].to_owned()
        };
        Self {
            payload: self.payload.as_deref().map(cut),
            payload_base64: self.payload_base64.as_deref().map(cut),
            truncated_from_bytes: Some(self.payload_bytes().len()),
            ..self.clone()
        }
    }

    /// Whether the payload names the call: a recording subject `…/recording/call/{call_id}` in it, as the subject
    /// parser reads one — `recording` and `call` in any case, slashes JSON-escaped or not — ending there or followed
    /// by `/`, `\\` or `"`. Erasing a call removes the entries that name it. A payload kept as base64 (not UTF-8) is
    /// decoded and read as text: UTF-16 when its first bytes say so (a byte-order mark, or RFC 4627's pattern of
    /// zeros), otherwise UTF-8 with every invalid sequence replaced, which leaves an ASCII call id readable in any
    /// ASCII-compatible encoding. What it cannot read: a call id written with JSON escapes (`\u0063…`), another
    /// encoding (UTF-32, compressed bytes), or a subject past the part a truncated entry kept.
    pub fn names_call(&self, call_id: &str) -> bool {
        let bytes = match (&self.payload, &self.payload_base64) {
            (Some(text), _) => std::borrow::Cow::Borrowed(text.as_bytes()),
            // A truncated entry's base64 may stop within a group of four: only whole groups are decoded.
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(&encoded[..encoded.len() - encoded.len() % 4])
                .map_or_else(|_| Default::default(), std::borrow::Cow::Owned),
            (None, None) => return false,
        };
        subject_names_call(&as_text(&bytes), call_id)
    }

    /// The payload's bytes as they arrived.
    pub fn payload_bytes(&self) -> Vec<u8> {
        match (&self.payload, &self.payload_base64) {
            (Some(text), _) => text.as_bytes().to_vec(),
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }
}

/// Whether `text` holds a subject `recording/call/{call_id}` (see [`QuarantineEntry::names_call`]).
fn subject_names_call(text: &str, call_id: &str) -> bool {
    if call_id.is_empty() {
        return false;
    }
    // ASCII lower case keeps every byte where it was: positions in `lower` are positions in `text`.
    let lower = text.to_ascii_lowercase();
    let separator = |at: usize| -> Option<usize> {
        let rest = lower.get(at..)?;
        if rest.starts_with('/') {
            Some(at + 1)
        } else if rest.starts_with("\\/") {
            Some(at + 2)
        } else {
            None
        }
    };
    lower.match_indices("recording").any(|(at, word)| {
        let Some(at) = separator(at + word.len()) else {
            return false;
        };
        if !lower[at..].starts_with("call") {
            return false;
        }
        let Some(at) = separator(at + "call".len()) else {
            return false;
        };
        text.get(at..)
            .and_then(|rest| rest.strip_prefix(call_id))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '\\', '"']))
    })
}

/// A payload's bytes as text: see [`QuarantineEntry::names_call`]. (UTF-16 of ASCII is valid UTF-8 too, with a
/// zero byte after or before every character: its pattern is looked for in text as well.)
fn as_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    let utf16 = |bytes: &[u8], word: fn([u8; 2]) -> u16| {
        let words: Vec<u16> = bytes.chunks_exact(2).map(|pair| word([pair[0], pair[1]])).collect();
        std::borrow::Cow::Owned(String::from_utf16_lossy(&words))
    };
    match bytes {
        [0xff, 0xfe, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xfe, 0xff, rest @ ..] => utf16(rest, u16::from_be_bytes),
        [a, 0, b, 0, ..] if *a != 0 && *b != 0 => utf16(bytes, u16::from_le_bytes),
        [0, a, 0, b, ..] if *a != 0 && *b != 0 => utf16(bytes, u16::from_be_bytes),
        _ => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_names_a_call_by_its_subject_in_either_spelling_and_no_call_that_merely_starts_alike() {
        let entry = |payload: &str| QuarantineEntry::new(payload.as_bytes(), "reason", "2026-12-02T12:00:00Z");
        let plain = entry(r#"{"subject":"/recording/call/c-1/serverCallId/s1","data":{}}"#);
        assert!(plain.names_call("c-1"));
        assert!(!plain.names_call("c-"), "a prefix of the call id is another call");
        assert!(!plain.names_call("s1"));
        assert!(entry(r#"{"subject":"\/recording\/call\/c-1\/recordingId\/r"}"#).names_call("c-1"));
        assert!(entry(r#"{"subject":"/recording/call/c-1"}"#).names_call("c-1"));
        assert!(entry("/recording/call/c-1").names_call("c-1"));
        assert!(!QuarantineEntry::new(&[0xff, 0xfe], "reason", "t").names_call("c-1"));
        assert!(
            !entry(r#"{"subject":"/recall/c-1"}"#).names_call("c-1"),
            "not a recording subject"
        );
        assert!(!entry("/recording/call/c-1").names_call(""));
    }

    #[test]
    fn a_subject_in_any_case_names_the_call_as_the_parser_reads_it() {
        let entry = |payload: &str| QuarantineEntry::new(payload.as_bytes(), "reason", "t");
        for subject in [
            "/Recording/Call/X-1/serverCallId/s1",
            "/RECORDING/CALL/X-1",
            r"\/recording\/Call\/X-1\/recordingId\/r",
            "recording/call/X-1",
        ] {
            let payload = serde_json::json!({"subject": subject})
                .to_string()
                .replace("\\\\", "\\");
            assert!(entry(&payload).names_call("X-1"), "{payload}");
            assert_eq!(
                crate::subject::RecordingSubject::parse(&subject.replace("\\/", "/")).map(|parsed| parsed.call_id),
                Ok("X-1".to_owned()),
                "the parser reads {subject} so"
            );
            assert!(
                !entry(&payload).names_call("x-1"),
                "the call id itself keeps its case: {payload}"
            );
        }
    }

    #[test]
    fn a_payload_kept_as_base64_is_matched_when_it_reads_as_text() {
        let subject = format!(
            r#"{{"subject":"/recording/call/c-1/serverCallId/s1","data":{{"padding":"{}","x":"#,
            "p".repeat(200)
        );
        let subject = subject.as_str();
        // UTF-8 with an invalid byte, Latin-1, UTF-16 with and without a byte-order mark (kept as base64, but for
        // UTF-16 of ASCII, which is valid UTF-8).
        let mut invalid = subject.as_bytes().to_vec();
        invalid.extend_from_slice(b"\xff\xfe\"}}");
        let latin1: Vec<u8> = format!("{subject}\"caf\u{e9}\"}}}}").chars().map(|c| c as u8).collect();
        let utf16le: Vec<u8> = subject.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let utf16be: Vec<u8> = subject.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let with_bom = [&[0xff, 0xfe][..], &utf16le].concat();
        for (name, payload) in [
            ("invalid UTF-8", invalid),
            ("Latin-1", latin1),
            ("UTF-16LE", utf16le),
            ("UTF-16BE", utf16be),
            ("UTF-16 with its mark", with_bom),
        ] {
            let entry = QuarantineEntry::new(&payload, "not UTF-8", "t");
            assert!(entry.names_call("c-1"), "{name}");
            assert!(!entry.names_call("c-2"), "{name}");
            let truncated = entry.truncated(101);
            let kept =
                |entry: &QuarantineEntry| entry.payload.as_ref().or(entry.payload_base64.as_ref()).unwrap().len();
            assert!(
                kept(&truncated) <= 101 && kept(&truncated) < kept(&entry),
                "{name} is cut"
            );
            assert!(truncated.names_call("c-1"), "{name}: the kept start still names it");
        }
        let utf32: Vec<u8> = subject.chars().flat_map(|c| (c as u32).to_le_bytes()).collect();
        assert!(
            !QuarantineEntry::new(&utf32, "not UTF-8", "t").names_call("c-1"),
            "UTF-32 is not read"
        );
    }

    #[test]
    fn same_payload_gives_same_id_and_text_is_kept_verbatim() {
        let a = QuarantineEntry::new(b"{\"x\": 1}", "reason", "2026-01-01T00:00:00Z");
        let b = QuarantineEntry::new(b"{\"x\": 1}", "reason", "2026-01-02T00:00:00Z");
        assert_eq!(a.id, b.id);
        assert_eq!(a.payload.as_deref(), Some("{\"x\": 1}"));
        assert_ne!(a.id, QuarantineEntry::new(b"{\"x\":1}", "reason", "t").id);
    }

    #[test]
    fn the_id_is_the_sha256_of_quarantine_nul_the_payload_and_nul() {
        use sha2::{Digest, Sha256};
        let payload = b"{\"x\": 1}";
        // Pinned: `printf 'quarantine\0{"x": 1}\0' | sha256sum`.
        let pinned = "d41e2659c5b056def61b70f1a68eef131138c7dc08be59ebb4c1488278f2fccb";
        assert_eq!(QuarantineEntry::new(payload, "reason", "t").id, pinned);
        for payload in [&b""[..], b"\xff\xfe{", b"not json"] {
            let digest = Sha256::new()
                .chain_update(b"quarantine\0")
                .chain_update(payload)
                .chain_update([0])
                .finalize();
            let expected: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
            assert_eq!(QuarantineEntry::new(payload, "reason", "t").id, expected, "{payload:?}");
        }
    }

    #[test]
    fn truncation_keeps_the_start_the_id_and_the_full_size() {
        let entry = QuarantineEntry::new("é".repeat(10).as_bytes(), "too large", "t");
        let short = entry.truncated(5);
        assert_eq!(short.payload.as_deref(), Some("éé"));
        assert_eq!((short.id, short.truncated_from_bytes), (entry.id, Some(20)));
    }

    #[test]
    fn binary_payload_is_kept_as_base64() {
        let entry = QuarantineEntry::new(b"\xff\xfe{", "not UTF-8", "t");
        assert_eq!(entry.payload, None);
        assert_eq!(entry.payload_bytes(), b"\xff\xfe{");
    }
}
