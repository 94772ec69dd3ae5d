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

    /// Whether the payload names the call: a recording subject `…/call/{call_id}` in it, ending there or followed by
    /// `/` (JSON-escaped slashes too). Erasing a call removes the entries that name it; a payload that is not text
    /// names nothing.
    pub fn names_call(&self, call_id: &str) -> bool {
        let Some(text) = &self.payload else {
            return false;
        };
        ["call/", "call\\/"].iter().any(|marker| {
            let needle = format!("{marker}{call_id}");
            text.match_indices(&needle).any(|(at, _)| {
                let rest = &text[at + needle.len()..];
                rest.is_empty() || rest.starts_with(['/', '\\', '"'])
            })
        })
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
