//! `handler replay FILE…`: pushes Event Grid JSON files through the same pipeline as the host's invocations.
//!
//! A file holds one event or an array of events, in either schema — including Event Grid dead-letter blobs, whose
//! events carry extra fields such as `deadLetterReason`. It is the newcomer's demo and the operator's way to recover
//! dead-lettered events; since every merge is idempotent, replaying a file twice changes nothing.

use std::borrow::Cow;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::value::RawValue;

use crate::error::error_chain;
use crate::host::invocation::unwrap_object;
use crate::pipeline::{Outcome, Pipeline};

/// Attempts per event when the store fails; the waits between them double from the first.
const ATTEMPTS: usize = 3;
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(500);
/// Events in a run from which a progress bar is shown (when stderr is a terminal).
const PROGRESS_FROM: usize = 50;

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
}

impl ReplaySummary {
    pub fn events(&self) -> usize {
        self.stored + self.ignored + self.quarantined + self.failed
    }

    pub fn succeeded(&self) -> bool {
        self.failed == 0 && self.unreadable_files == 0
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
        Ok(())
    }
}

/// Replays `files` in order, writing one line per event and per unreadable file to `out`.
pub async fn replay(pipeline: &Pipeline, files: &[PathBuf], out: &mut impl Write) -> std::io::Result<ReplaySummary> {
    let mut summary = ReplaySummary {
        files: files.len(),
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
    let progress = if total >= PROGRESS_FROM {
        ProgressBar::new(total as u64)
    } else {
        ProgressBar::hidden()
    };
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events  {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for (path, events) in parsed {
        for (index, event) in events.iter().enumerate() {
            let line = match process_with_retries(pipeline, event).await {
                Ok(outcome) => {
                    let line = describe(pipeline, &outcome);
                    match outcome {
                        Outcome::Stored { .. } => summary.stored += 1,
                        Outcome::Ignored { .. } => summary.ignored += 1,
                        Outcome::Quarantined { .. } => summary.quarantined += 1,
                    }
                    line
                }
                Err(error) => {
                    summary.failed += 1;
                    format!("failed, not kept: {}", error_chain(&error))
                }
            };
            progress.suspend(|| writeln!(out, "{}[{index}]: {line}", path.display()))?;
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    Ok(summary)
}

fn describe(pipeline: &Pipeline, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Stored { call_id, id, change } => {
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
    let policy = ExponentialBuilder::default()
        .with_min_delay(FIRST_RETRY_WAIT)
        .with_max_times(ATTEMPTS - 1);
    (|| pipeline.process_event(event)).retry(policy).await
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
