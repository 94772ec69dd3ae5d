//! The handler's commands for a terminal: `replay` pushes Event Grid files through the pipeline, `archive` archives
//! what the store still has to archive. Both report on stdout, one line per item, and log to stderr.

pub mod archive;
pub mod recordings;
pub mod replay;

use std::io::Write;

use backon::Retryable;
use indicatif::{ProgressBar, ProgressStyle};

use crate::archive::archiver::JobError;
use crate::archive::{ArchiveJob, Archiver, JobOutcome};
use crate::error::error_chain;

/// What a command reports last: a summary line, and whether everything went through (the exit status).
pub trait Summary: std::fmt::Display {
    fn succeeded(&self) -> bool;
}

/// Items in a run from which a progress bar is shown (when stderr is a terminal).
const PROGRESS_FROM: usize = 50;
/// A progress bar over `total` items, hidden for short runs.
fn progress(total: usize, unit: &str) -> ProgressBar {
    let bar = if total >= PROGRESS_FROM {
        ProgressBar::new(total as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {unit}  {{elapsed}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// What archiving did in a command, job by job.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ArchiveCounts {
    pub archived: usize,
    /// Jobs for chunks archived or expired before.
    pub already: usize,
    pub expired: usize,
    pub failed: usize,
    /// Jobs that could not finish, even after retries (run the command again).
    pub errors: usize,
}

impl ArchiveCounts {
    pub fn jobs(&self) -> usize {
        self.archived + self.already + self.expired + self.failed + self.errors
    }
}

impl std::fmt::Display for ArchiveCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} chunk(s) archived, {} already done, {} expired, {} failed, {} not finished",
            self.archived, self.already, self.expired, self.failed, self.errors
        )
    }
}

/// Runs one job inline, with the command's retries, and writes where its files landed (`indent` first).
async fn archive_inline(
    archiver: &Archiver,
    job: &ArchiveJob,
    attempt: u32,
    counts: &mut ArchiveCounts,
    progress: &ProgressBar,
    indent: &str,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let run = || archiver.run(job, attempt);
    let result: Result<JobOutcome, JobError> = run.retry(crate::retry::command_item()).await;
    let line = match &result {
        Ok(outcome) => {
            let count = match outcome {
                JobOutcome::Archived { .. } => &mut counts.archived,
                JobOutcome::AlreadyDone(_) | JobOutcome::Erased { .. } => &mut counts.already,
                JobOutcome::Expired(_) => &mut counts.expired,
                JobOutcome::Failed { .. } | JobOutcome::NoDocument => &mut counts.failed,
            };
            *count += 1;
            outcome.to_string()
        }
        Err(error) => {
            counts.errors += 1;
            format!("not finished (run the command again): {}", error_chain(error))
        }
    };
    progress.suspend(|| writeln!(out, "{indent}chunk {}: {line}", job.chunk_document_id))
}
