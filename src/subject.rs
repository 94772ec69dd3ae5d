//! The recording event's `subject`: the call and recording ids ACS puts there.
//!
//! ACS has published several forms over the years, all starting with `/recording/call/{callId}` and followed by
//! any of the `serverCallId/{id}`, `recordingId/{id}` and `callConnectionId/{id}` pairs, in any order. Parsing them
//! as key/value pairs accepts every published form and any future pair without a code change.

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
    /// repeated key wins, empty values count as absent, and unknown keys or a trailing lone segment are ignored
    /// (the raw subject is kept in the document anyway).
    pub fn parse(subject: &str) -> Result<Self, SubjectError> {
        let mut segments = subject.strip_prefix('/').unwrap_or(subject).split('/');
        let is = |segment: Option<&str>, word: &str| segment.is_some_and(|s| s.eq_ignore_ascii_case(word));
        if !is(segments.next(), "recording") || !is(segments.next(), "call") {
            return Err(SubjectError::NotARecordingSubject);
        }
        let call_id = match segments.next() {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => return Err(SubjectError::NoCallId),
        };
        let mut parsed = RecordingSubject {
            call_id,
            server_call_id: None,
            recording_id: None,
            call_connection_id: None,
        };
        while let (Some(key), Some(value)) = (segments.next(), segments.next()) {
            let slot = if key.eq_ignore_ascii_case("serverCallId") {
                &mut parsed.server_call_id
            } else if key.eq_ignore_ascii_case("recordingId") {
                &mut parsed.recording_id
            } else if key.eq_ignore_ascii_case("callConnectionId") {
                &mut parsed.call_connection_id
            } else {
                continue;
            };
            if slot.is_none() && !value.is_empty() {
                *slot = Some(value.to_owned());
            }
        }
        Ok(parsed)
    }
}

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
    fn pairs_are_accepted_in_any_order_with_unknown_keys() {
        let s = parse("/recording/call/c1/future/x/callConnectionId/cc1/recordingId/r1/serverCallId/s1");
        assert_eq!(s.call_connection_id.as_deref(), Some("cc1"));
        assert_eq!(s.recording_id.as_deref(), Some("r1"));
        assert_eq!(s.server_call_id.as_deref(), Some("s1"));
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
