//! `handler replay FILE…`: pushes Event Grid JSON files through the same pipeline as the host's invocations.
//!
//! A file holds one event or an array of events, in either schema — including Event Grid dead-letter blobs, whose
//! events carry extra fields such as `deadLetterReason`. It is the newcomer's demo and the operator's way to recover
//! dead-lettered events; since every merge is idempotent, replaying a file twice changes nothing.

use std::borrow::Cow;
use std::io::Write;
use std::path::PathBuf;

use backon::Retryable;
use serde_json::value::RawValue;

use super::{ArchiveCounts, archive_inline, progress};
use crate::archive::Archiver;
use crate::error::error_chain;
use crate::host::invocation::unwrap_object;
use crate::pipeline::{Outcome, Pipeline};

/// What a replay did, event by event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    pub files: usize,
    pub stored: usize,
    pub ignored: usize,
    pub quarantined: usize,
    /// Events the store failed to keep after every attempt.
    pub failed: usize,
    /// Files that could not be read or are not JSON.
    pub unreadable_files: usize,
    /// The stored events' chunks archived inline, when archival is on.
    pub archive: Option<ArchiveCounts>,
}

impl ReplaySummary {
    pub fn events(&self) -> usize {
        self.stored + self.ignored + self.quarantined + self.failed
    }
}

impl super::Summary for ReplaySummary {
    fn succeeded(&self) -> bool {
        self.failed == 0 && self.unreadable_files == 0 && self.archive.as_ref().is_none_or(|a| a.errors == 0)
    }
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replayed {} event(s) from {} file(s): {} stored, {} ignored, {} quarantined, {} failed",
            self.events(),
            self.files,
            self.stored,
            self.ignored,
            self.quarantined,
            self.failed
        )?;
        if self.unreadable_files > 0 {
            write!(f, "; {} file(s) unreadable", self.unreadable_files)?;
        }
        if let Some(archive) = &self.archive {
            write!(f, "; {archive}")?;
        }
        Ok(())
    }
}

/// Replays `files` in order, writing one line per event and per unreadable file to `out`; with an archiver, the
/// stored events' chunks are archived inline, one line each.
pub async fn replay(
    pipeline: &Pipeline,
    archiver: Option<&Archiver>,
    files: &[PathBuf],
    out: &mut impl Write,
) -> std::io::Result<ReplaySummary> {
    let mut summary = ReplaySummary {
        files: files.len(),
        archive: archiver.map(|_| ArchiveCounts::default()),
        ..ReplaySummary::default()
    };
    let mut loaded = Vec::new();
    for path in files {
        match std::fs::read(path) {
            Ok(bytes) => loaded.push((path, bytes)),
            Err(e) => {
                summary.unreadable_files += 1;
                writeln!(out, "{}: cannot read: {e}", path.display())?;
            }
        }
    }
    let mut parsed = Vec::new();
    for (path, bytes) in &loaded {
        match events_in(bytes) {
            Ok(events) => parsed.push((*path, events)),
            Err(e) => {
                summary.unreadable_files += 1;
                writeln!(out, "{}: not an Event Grid JSON file: {e}", path.display())?;
            }
        }
    }

    let total: usize = parsed.iter().map(|(_, events)| events.len()).sum();
    let bar = progress(total, "events");
    for (path, events) in parsed {
        for (index, event) in events.iter().enumerate() {
            let (line, jobs) = match process_with_retries(pipeline, event).await {
                Ok(outcome) => {
                    let line = describe(pipeline, &outcome);
                    let jobs = match outcome {
                        Outcome::Stored { jobs, .. } => {
                            summary.stored += 1;
                            jobs
                        }
                        Outcome::Ignored { .. } | Outcome::Erased { .. } => {
                            summary.ignored += 1;
                            Vec::new()
                        }
                        Outcome::Quarantined { .. } => {
                            summary.quarantined += 1;
                            Vec::new()
                        }
                    };
                    (line, jobs)
                }
                Err(error) => {
                    summary.failed += 1;
                    (format!("failed, not kept: {}", error_chain(&error)), Vec::new())
                }
            };
            bar.suspend(|| writeln!(out, "{}[{index}]: {line}", path.display()))?;
            if let (Some(archiver), Some(counts)) = (archiver, summary.archive.as_mut()) {
                for job in &jobs {
                    archive_inline(archiver, job, 1, counts, &bar, "  ", out).await?;
                }
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(summary)
}

fn describe(pipeline: &Pipeline, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Stored {
            call_id, id, change, ..
        } => {
            format!(
                "stored ({}) in {}",
                change.as_str(),
                pipeline.store().location(call_id, id)
            )
        }
        _ => outcome.to_string(),
    }
}

async fn process_with_retries(pipeline: &Pipeline, event: &str) -> Result<Outcome, crate::store::StoreError> {
    (|| pipeline.process_event(event))
        .retry(crate::retry::command_item())
        .await
}

/// The events of a file: a single event or an array of them, each an object or a string holding one. Elements that
/// are neither are passed on as they are, so that the pipeline quarantines them.
fn events_in(bytes: &[u8]) -> Result<Vec<Cow<'_, str>>, serde_json::Error> {
    let raw: &RawValue = serde_json::from_slice(bytes)?;
    let elements: Vec<&RawValue> = if raw.get().starts_with('[') {
        serde_json::from_str(raw.get())?
    } else {
        vec![raw]
    };
    Ok(elements
        .into_iter()
        .map(|element| unwrap_object(element).unwrap_or(Cow::Borrowed(element.get())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_holds_one_event_or_an_array() {
        assert_eq!(events_in(br#"{"id":"1"}"#).unwrap(), vec![r#"{"id":"1"}"#]);
        assert_eq!(
            events_in(br#" [ {"id":"1"}, "{\"id\":\"2\"}", 3 ] "#).unwrap(),
            vec![r#"{"id":"1"}"#, r#"{"id":"2"}"#, "3"]
        );
        assert!(events_in(b"not json").is_err());
    }
}
