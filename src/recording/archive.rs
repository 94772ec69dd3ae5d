//! A chunk's archive state in the recording document (`chunks[].archive`), and how two states of one chunk merge.
//!
//! States rank `external` < `pending` < `failed` < `expired` < `archived`: a failure may be followed by a success (a
//! retry, or `handler archive`), files found gone are more definite than a failure to fetch them, and archived files
//! are the truth whatever else was reported. `external` (the files are in the customer's own storage, nothing to
//! download) ranks lowest, so that an event that announces the same chunk at ACS (an export that failed) still gets
//! it archived. A merge keeps the higher-ranked state — equal ranks are settled by the greater
//! JSON, so the outcome never depends on arrival order — with the most `attempts` either side counted. That makes it
//! commutative, associative and idempotent like the rest of the document's merge: a redelivered or reordered event
//! never turns `archived` back into `pending`, and an archive result and a concurrent event never lose each other.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::field_times::canonical;

/// The chunk field that holds the archive state.
pub const FIELD: &str = "archive";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveStatus {
    /// ACS wrote the files to the customer's own storage (bring your own storage): there is nothing to download, and
    /// the state keeps where they are. Final.
    External,
    /// Announced and not yet archived (written when the event is stored with archival on).
    Pending,
    /// Archiving gave up (every retry failed, or the files' URL is not an allowed source); `reason` says why.
    Failed,
    /// ACS no longer has the files (404/410, or past its 24-hour deadline); `reason` says why.
    Expired,
    /// Both files are in the archive, verified.
    Archived,
}

impl ArchiveStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveStatus::External => "external",
            ArchiveStatus::Pending => "pending",
            ArchiveStatus::Failed => "failed",
            ArchiveStatus::Expired => "expired",
            ArchiveStatus::Archived => "archived",
        }
    }
}

/// One archived file: where it is, how long, its SHA-256 (lowercase hex), and the URL its bytes came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedFile {
    pub location: String,
    pub bytes: u64,
    pub sha256: String,
    /// The URL the bytes were downloaded from; `None` for a file an earlier version archived, which did not say.
    pub source: Option<String>,
}

/// The `archive` field of a chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkArchive {
    pub state: ArchiveStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
    /// The URL the archived content came from (absent in states earlier versions wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_sha256: Option<String>,
    /// The URL the archived metadata came from (absent in states earlier versions wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_source: Option<String>,
    /// When the files were archived (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<String>,
    /// Why the chunk is `expired` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set on a `failed` state that a later job may still turn around: the queue gave up after its retries (not a
    /// URL outside the allowed sources). The archive sweep queues such chunks again while ACS keeps their files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retryable: bool,
    /// Why an archived chunk's files were not deleted at ACS although `RECORDINGS_DELETE_AFTER_ARCHIVE` asked for it
    /// (its `deleteLocation` is not the object its files lie under, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_skipped: Option<String>,
    /// Archive jobs run for this chunk so far.
    #[serde(default)]
    pub attempts: u32,
}

impl ChunkArchive {
    fn with_state(state: ArchiveStatus, attempts: u32) -> Self {
        Self {
            state,
            content_location: None,
            content_bytes: None,
            content_sha256: None,
            content_source: None,
            metadata_location: None,
            metadata_bytes: None,
            metadata_sha256: None,
            metadata_source: None,
            archived_at: None,
            reason: None,
            retryable: false,
            delete_skipped: None,
            attempts,
        }
    }

    pub fn pending() -> Self {
        Self::with_state(ArchiveStatus::Pending, 0)
    }

    pub fn archived(content: ArchivedFile, metadata: ArchivedFile, archived_at: String, attempts: u32) -> Self {
        Self {
            content_location: Some(content.location),
            content_bytes: Some(content.bytes),
            content_sha256: Some(content.sha256),
            content_source: content.source,
            metadata_location: Some(metadata.location),
            metadata_bytes: Some(metadata.bytes),
            metadata_sha256: Some(metadata.sha256),
            metadata_source: metadata.source,
            archived_at: Some(archived_at),
            ..Self::with_state(ArchiveStatus::Archived, attempts)
        }
    }

    /// The files are where the event says, in the customer's storage: their locations are kept, and nothing is
    /// downloaded.
    pub fn external(content_location: Option<String>, metadata_location: Option<String>) -> Self {
        Self {
            content_location,
            metadata_location,
            ..Self::with_state(ArchiveStatus::External, 0)
        }
    }

    pub fn expired(reason: impl Into<String>, attempts: u32) -> Self {
        Self {
            reason: Some(reason.into()),
            ..Self::with_state(ArchiveStatus::Expired, attempts)
        }
    }

    pub fn failed(reason: impl Into<String>, attempts: u32) -> Self {
        Self {
            reason: Some(reason.into()),
            ..Self::with_state(ArchiveStatus::Failed, attempts)
        }
    }

    /// `failed` after the queue's last retry: a later job may still succeed (see [`ChunkArchive::retryable`]).
    pub fn gave_up(reason: impl Into<String>, attempts: u32) -> Self {
        Self {
            retryable: true,
            ..Self::failed(reason, attempts)
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Reads a chunk's `archive` field; `None` when it is absent or not a state this handler wrote.
    pub fn from_value(value: &Value) -> Option<Self> {
        serde_json::from_value(value.clone()).ok()
    }

    /// The archived content and metadata files, when the state records both.
    pub fn files(&self) -> Option<(ArchivedFile, ArchivedFile)> {
        let file = |location: &Option<String>, bytes: Option<u64>, sha256: &Option<String>, source: &Option<String>| {
            Some(ArchivedFile {
                location: location.clone()?,
                bytes: bytes?,
                sha256: sha256.clone()?,
                source: source.clone(),
            })
        };
        Some((
            file(
                &self.content_location,
                self.content_bytes,
                &self.content_sha256,
                &self.content_source,
            )?,
            file(
                &self.metadata_location,
                self.metadata_bytes,
                &self.metadata_sha256,
                &self.metadata_source,
            )?,
        ))
    }

    /// The URLs an `archived` state's content and metadata came from, when it names them (an earlier version's
    /// state does not).
    pub fn sources(&self) -> Option<(Option<&str>, Option<&str>)> {
        let sources = (self.content_source.as_deref(), self.metadata_source.as_deref());
        (self.state == ArchiveStatus::Archived && sources != (None, None)).then_some(sources)
    }

    /// A chunk's state; `None` when it has none, or one of a shape this handler never writes.
    pub fn of(chunk: &serde_json::Map<String, Value>) -> Option<Self> {
        Self::from_value(chunk.get(FIELD)?)
    }

    /// Whether an archive job should (still) run for the chunk: its state is not final.
    pub fn needs_archiving(&self) -> bool {
        matches!(self.state, ArchiveStatus::Pending | ArchiveStatus::Failed)
    }

    /// Whether the archive sweep queues a job for the chunk: `pending`, or `failed` and retryable.
    pub fn needs_sweeping(&self) -> bool {
        self.state == ArchiveStatus::Pending || (self.state == ArchiveStatus::Failed && self.retryable)
    }
}

/// The rank of an `archive` value; a value of a shape this handler never writes ranks below every state.
fn rank(value: &Value) -> i8 {
    match value.get("state").and_then(Value::as_str) {
        Some("external") => 0,
        Some("pending") => 1,
        Some("failed") => 2,
        Some("expired") => 3,
        Some("archived") => 4,
        _ => -1,
    }
}

fn attempts(value: &Value) -> Option<u64> {
    value.get("attempts").and_then(Value::as_u64)
}

/// The value without its attempt count, to compare two values of equal rank.
fn without_attempts(value: &Value) -> String {
    match value {
        Value::Object(fields) => {
            let mut fields = fields.clone();
            fields.remove("attempts");
            canonical(&fields)
        }
        other => canonical(other),
    }
}

/// Merges two `archive` values of one chunk (see the module's documentation).
pub(super) fn merge(ours: Value, theirs: Value) -> Value {
    let most_attempts = attempts(&ours).max(attempts(&theirs));
    let ours_wins = (rank(&ours), without_attempts(&ours)) >= (rank(&theirs), without_attempts(&theirs));
    let mut winner = if ours_wins { ours } else { theirs };
    if let (Value::Object(fields), Some(attempts)) = (&mut winner, most_attempts) {
        fields.insert("attempts".to_owned(), Value::from(attempts));
    }
    winner
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> ArchivedFile {
        ArchivedFile {
            location: format!("file:///archive/{name}"),
            bytes: 3,
            sha256: "ab".repeat(32),
            source: Some(format!("https://us-storage.asm.skype.com/v1/objects/o/content/{name}")),
        }
    }

    fn states() -> Vec<Value> {
        vec![
            ChunkArchive::pending().to_value(),
            ChunkArchive::external(Some("https://contoso.blob.core.windows.net/r/c.mp4".into()), None).to_value(),
            ChunkArchive::failed("503 ten times", 10).to_value(),
            ChunkArchive::gave_up("the queue gave up", 10).to_value(),
            ChunkArchive::failed("not an allowed source", 1).to_value(),
            ChunkArchive::expired("ACS answered 404", 2).to_value(),
            ChunkArchive::archived(file("a"), file("m"), "2026-11-28T10:00:00Z".into(), 3).to_value(),
            ChunkArchive::archived(file("a"), file("m"), "2026-11-28T10:00:01Z".into(), 1).to_value(),
            serde_json::json!({"state": "unknown-future-state"}),
        ]
    }

    #[test]
    fn merge_is_commutative_associative_and_idempotent() {
        let all = states();
        for a in &all {
            assert_eq!(merge(a.clone(), a.clone()), *a, "idempotent");
            for b in &all {
                assert_eq!(merge(a.clone(), b.clone()), merge(b.clone(), a.clone()), "commutative");
                for c in &all {
                    assert_eq!(
                        merge(merge(a.clone(), b.clone()), c.clone()),
                        merge(a.clone(), merge(b.clone(), c.clone())),
                        "associative"
                    );
                }
            }
        }
    }

    #[test]
    fn archived_is_never_turned_back_and_attempts_only_grow() {
        let archived = ChunkArchive::archived(file("a"), file("m"), "2026-11-28T10:00:00Z".into(), 3).to_value();
        for other in states() {
            let merged = ChunkArchive::from_value(&merge(archived.clone(), other.clone())).unwrap();
            assert_eq!(merged.state, ArchiveStatus::Archived, "{other}");
            assert!(merged.attempts >= 3);
        }
        let merged = merge(
            ChunkArchive::pending().to_value(),
            ChunkArchive::failed("x", 7).to_value(),
        );
        assert_eq!(ChunkArchive::from_value(&merged).unwrap().state, ArchiveStatus::Failed);
        let merged = merge(
            ChunkArchive::expired("gone", 1).to_value(),
            ChunkArchive::failed("x", 7).to_value(),
        );
        let merged = ChunkArchive::from_value(&merged).unwrap();
        assert_eq!((merged.state, merged.attempts), (ArchiveStatus::Expired, 7));
    }

    #[test]
    fn stored_shape_has_the_documented_fields() {
        let archived = ChunkArchive::archived(file("c.mp4"), file("m.json"), "2026-11-28T10:00:00Z".into(), 2);
        let value = archived.to_value();
        for field in [
            "state",
            "contentLocation",
            "contentBytes",
            "contentSha256",
            "metadataLocation",
            "metadataBytes",
            "metadataSha256",
            "archivedAt",
            "attempts",
        ] {
            assert!(value.get(field).is_some(), "{field}: {value}");
        }
        assert!(value.get("reason").is_none(), "reason only for expired and failed");
        assert_eq!(value["state"], "archived");
        assert_eq!(ChunkArchive::from_value(&value), Some(archived));
        assert_eq!(
            ChunkArchive::pending().to_value(),
            serde_json::json!({"state": "pending", "attempts": 0})
        );
    }
}
