//! `handler archive [--call ID]`: archives, inline, every chunk in the configured store that still needs it — its
//! archive state `pending` or `failed`, or none (stored while archival was off) — and is not past ACS's 24-hour
//! deadline. It is the way to retry failed chunks, and to archive on a machine with no Functions host.

use std::io::Write;

use time::OffsetDateTime;

use super::{ArchiveCounts, archive_inline, progress};
use crate::archive::{ArchiveJob, Archiver};
use crate::error::error_chain;

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ArchiveSummary {
    pub counts: ArchiveCounts,
    /// Chunks left alone: past their deadline, when ACS has deleted their files.
    pub past_deadline: usize,
    /// The store could not be read.
    pub unreadable: bool,
}

impl super::Summary for ArchiveSummary {
    fn succeeded(&self) -> bool {
        !self.unreadable && self.counts.errors == 0 && self.counts.failed == 0
    }
}

impl std::fmt::Display for ArchiveSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; {} chunk(s) past ACS's 24-hour deadline left alone",
            self.counts, self.past_deadline
        )
    }
}

/// Archives what needs archiving in the store (or one call of it), writing one line per chunk to `out`.
pub async fn archive(
    archiver: &Archiver,
    call_id: Option<&str>,
    out: &mut impl Write,
) -> std::io::Result<ArchiveSummary> {
    let mut summary = ArchiveSummary::default();
    let documents = match archiver.store().documents(call_id).await {
        Ok(documents) => documents,
        Err(e) => {
            summary.unreadable = true;
            writeln!(out, "cannot read the store: {}", error_chain(&e))?;
            return Ok(summary);
        }
    };
    let now = OffsetDateTime::now_utc();
    let mut jobs = Vec::new();
    for document in &documents {
        for (chunk_id, state) in document.archive_states() {
            if state.as_ref().is_some_and(|s| !s.needs_archiving()) {
                continue;
            }
            let Some(job) = ArchiveJob::for_chunk(document, chunk_id) else {
                continue;
            };
            if job.deadline().is_some_and(|deadline| now > deadline) {
                summary.past_deadline += 1;
                writeln!(
                    out,
                    "{}/{} chunk {}: past ACS's 24-hour deadline; left as it is",
                    job.call_id, job.recording_document_id, job.chunk_document_id
                )?;
                continue;
            }
            let attempts = state.map_or(0, |s| s.attempts);
            jobs.push((job, attempts + 1));
        }
    }
    let bar = progress(jobs.len(), "chunks");
    for (job, attempt) in &jobs {
        let indent = format!("{}/{} ", job.call_id, job.recording_document_id);
        archive_inline(archiver, job, *attempt, &mut summary.counts, &bar, &indent, out).await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(summary)
}
