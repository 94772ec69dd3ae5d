//! The recording event's `subject`: the call and recording ids ACS puts there.
//!
//! ACS has published several forms over the years, all starting with `/recording/call/{callId}` and followed by
//! any of the `serverCallId/{id}`, `recordingId/{id}` and `callConnectionId/{id}` pairs, in any order. A server call
//! id is base64 and may itself contain `/`, so the pairs are found by their keys, not by counting slashes: each value
//! runs to the next known key.

/// The ids named by a recording event's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSubject {
    pub call_id: String,
    pub server_call_id: Option<String>,
    pub recording_id: Option<String>,
    pub call_connection_id: Option<String>,
}

/// Why a subject names no call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("the subject does not start with /recording/call/")]
    NotARecordingSubject,
    #[error("the subject names no call id")]
    NoCallId,
}

impl RecordingSubject {
    /// Parses `/recording/call/{callId}[/{key}/{value}]…`. Keys are matched case-insensitively, the first of a
    /// repeated key wins, and empty values count as absent. The call id is one segment; anything between it and the
    /// first known key is ignored (the raw subject is kept in the document anyway).
    pub fn parse(subject: &str) -> Result<Self, SubjectError> {
        let rest = subject.strip_prefix('/').unwrap_or(subject);
        let mut prefix = rest.splitn(3, '/');
        let is = |segment: Option<&str>, word: &str| segment.is_some_and(|s| s.eq_ignore_ascii_case(word));
        if !is(prefix.next(), "recording") || !is(prefix.next(), "call") {
            return Err(SubjectError::NotARecordingSubject);
        }
        let after_call = prefix.next().unwrap_or_default();
        let (call_id, pairs) = after_call.split_once('/').unwrap_or((after_call, ""));
        if call_id.is_empty() {
            return Err(SubjectError::NoCallId);
        }
        let mut parsed = RecordingSubject {
            call_id: call_id.to_owned(),
            server_call_id: None,
            recording_id: None,
            call_connection_id: None,
        };
        // Where each known key starts: a segment equal to the key (in any case) and followed by another, in order of
        // position. A key's segment right after its own match is a value, not a key (`recordingId/recordingId/x`).
        let mut starts: Vec<(usize, &str)> = Vec::new();
        for key in KEYS {
            let (mut offset, mut after_match) = (0, false);
            let mut segments = pairs.split('/').peekable();
            while let Some(segment) = segments.next() {
                let at = offset;
                offset += segment.len() + 1;
                if std::mem::take(&mut after_match) {
                    continue;
                }
                if segments.peek().is_some() && segment.eq_ignore_ascii_case(key) {
                    starts.push((at, key));
                    after_match = true;
                }
            }
        }
        starts.sort_unstable();
        for (i, (at, key)) in starts.iter().enumerate() {
            let value_start = at + key.len() + 1;
            let value_end = starts
                .get(i + 1)
                .map_or(pairs.len(), |(next, _)| next.saturating_sub(1));
            let Some(value) = pairs.get(value_start..value_end.max(value_start)) else {
                continue;
            };
            let slot = match *key {
                "serverCallId" => &mut parsed.server_call_id,
                "recordingId" => &mut parsed.recording_id,
                _ => &mut parsed.call_connection_id,
            };
            if slot.is_none() && !value.is_empty() {
                *slot = Some(value.to_owned());
            }
        }
        Ok(parsed)
    }
}

/// The keys ACS has used in recording subjects.
const KEYS: [&str; 3] = ["serverCallId", "recordingId", "callConnectionId"];

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(subject: &str) -> RecordingSubject {
        RecordingSubject::parse(subject).unwrap_or_else(|e| panic!("{subject}: {e}"))
    }

    #[test]
    fn oldest_form_names_call_and_server_call() {
        let s = parse("/recording/call/c1/serverCallId/s1");
        assert_eq!(s.call_id, "c1");
        assert_eq!(s.server_call_id.as_deref(), Some("s1"));
        assert_eq!(s.recording_id, None);
    }

    #[test]
    fn recording_id_form_names_the_recording() {
        let s = parse("/recording/call/c1/recordingId/r1");
        assert_eq!((s.call_id.as_str(), s.recording_id.as_deref()), ("c1", Some("r1")));
    }

    #[test]
    fn newest_form_names_every_id() {
        let s = parse("/recording/call/c1/serverCallId/s1/recordingId/r1");
        assert_eq!(s.server_call_id.as_deref(), Some("s1"));
        assert_eq!(s.recording_id.as_deref(), Some("r1"));
    }

    #[test]
    fn pairs_are_accepted_in_any_order_after_unknown_segments() {
        let s = parse("/recording/call/c1/future/x/callConnectionId/cc1/recordingId/r1/serverCallId/s1");
        assert_eq!(s.call_id, "c1");
        assert_eq!(s.call_connection_id.as_deref(), Some("cc1"));
        assert_eq!(s.recording_id.as_deref(), Some("r1"));
        assert_eq!(s.server_call_id.as_deref(), Some("s1"));
    }

    #[test]
    fn base64_server_call_id_may_contain_slashes() {
        let server_call_id =
            "aHR0cHM6Ly9hcGkuZmxpZ2h0cHJveHkuc2t5cGUuY29tL2FwaS92Mi9jcC9jb252/dXMtMDE/P2k9MTAmZT02Mzg=";
        let s = parse(&format!(
            "/recording/call/c1/serverCallId/{server_call_id}/recordingId/r1"
        ));
        assert_eq!(s.server_call_id.as_deref(), Some(server_call_id));
        assert_eq!(s.recording_id.as_deref(), Some("r1"));
        let s = parse(&format!(
            "/recording/call/c1/recordingId/r1/serverCallId/{server_call_id}"
        ));
        assert_eq!(s.server_call_id.as_deref(), Some(server_call_id));
    }

    #[test]
    fn keys_are_matched_in_any_case() {
        let s = parse("/Recording/Call/c1/SERVERCALLID/s1/recordingid/r1");
        assert_eq!(
            (s.server_call_id.as_deref(), s.recording_id.as_deref()),
            (Some("s1"), Some("r1"))
        );
    }

    #[test]
    fn bare_call_subject_and_trailing_segment_are_accepted() {
        assert_eq!(parse("/recording/call/c1").call_id, "c1");
        assert_eq!(parse("recording/call/c1/recordingId").recording_id, None);
    }

    #[test]
    fn first_of_a_repeated_key_wins() {
        assert_eq!(
            parse("/recording/call/c/recordingId/a/recordingId/b")
                .recording_id
                .as_deref(),
            Some("a")
        );
    }

    /// The first implementation, kept to check the current one against: it searched a lower-cased copy for
    /// `/key/` markers.
    fn parse_by_markers(subject: &str) -> Option<RecordingSubject> {
        let parsed = RecordingSubject::parse(subject).ok()?;
        let rest = subject.strip_prefix('/').unwrap_or(subject);
        let after_call = rest.splitn(3, '/').nth(2).unwrap_or_default();
        let pairs = after_call.split_once('/').map_or("", |(_, pairs)| pairs);
        let pairs_with_slash = format!("/{pairs}");
        let lower = pairs_with_slash.to_ascii_lowercase();
        let mut starts: Vec<(usize, &str)> = Vec::new();
        for key in KEYS {
            let marker = format!("/{}/", key.to_ascii_lowercase());
            starts.extend(lower.match_indices(&marker).map(|(at, _)| (at, key)));
        }
        starts.sort_unstable();
        let mut old = RecordingSubject {
            server_call_id: None,
            recording_id: None,
            call_connection_id: None,
            ..parsed
        };
        for (i, (at, key)) in starts.iter().enumerate() {
            let value_start = at + key.len() + 2;
            let value_end = starts.get(i + 1).map_or(pairs_with_slash.len(), |(next, _)| *next);
            let Some(value) = pairs_with_slash.get(value_start..value_end.max(value_start)) else {
                continue;
            };
            let slot = match *key {
                "serverCallId" => &mut old.server_call_id,
                "recordingId" => &mut old.recording_id,
                _ => &mut old.call_connection_id,
            };
            if slot.is_none() && !value.is_empty() {
                *slot = Some(value.to_owned());
            }
        }
        Some(old)
    }

    proptest::proptest! {
        #[test]
        fn segments_are_read_as_the_marker_search_read_them(
            segments in proptest::collection::vec(
                "recordingId|RECORDINGID|serverCallId|callconnectionid|x|a=|abc==|",
                0..8,
            )
        ) {
            let subject = format!("/recording/call/c/{}", segments.join("/"));
            proptest::prop_assert_eq!(RecordingSubject::parse(&subject).ok(), parse_by_markers(&subject));
        }
    }

    #[test]
    fn subjects_without_a_call_are_refused() {
        assert_eq!(
            RecordingSubject::parse("call/abc"),
            Err(SubjectError::NotARecordingSubject)
        );
        assert_eq!(RecordingSubject::parse(""), Err(SubjectError::NotARecordingSubject));
        assert_eq!(RecordingSubject::parse("/recording/call/"), Err(SubjectError::NoCallId));
        assert_eq!(RecordingSubject::parse("/recording/call"), Err(SubjectError::NoCallId));
    }
}
