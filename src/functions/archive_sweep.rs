//! `ArchiveSweep`: the timer trigger (`0 */10 * * * *`) that queues a job again for every chunk whose own job was
//! lost — still `pending`, or `failed` after the queue gave up — while ACS keeps its files ([`crate::archive::sweep`]).
//!
//! The host posts the timer's state (`{Schedule, ScheduleStatus, IsPastDue}`); the sweep needs none of it: whenever
//! it runs, late or not, it looks at the store as it is. A store it cannot read fails the invocation, and the next
//! tick tries again.
//!
//! Every pending chunk it finds at risk or past ACS's deadline gets its record (`chunk_at_risk`,
//! `chunk_past_deadline`, [`crate::loss`]) on each sweep until it is settled, and is queued again like any other.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tracing::warn;

use super::{Function, FunctionError};
use crate::archive::ArchiveJob;
use crate::archive::sweep::{PAGE, Sweep};
use crate::clock::SharedClock;
use crate::health::Risk;
use crate::host::InvocationReply;
use crate::loss;
use crate::store::{PageRequest, RecordingStore};

/// The function's folder and route.
pub const NAME: &str = "ArchiveSweep";
/// The queue output binding's name in `ArchiveSweep/function.json`: `recording-archive`, as `RecordingEvent`'s.
pub const ARCHIVE_JOBS: &str = "archiveJobs";

/// A query's pages and an answer: well inside the ten minutes between ticks.
const BUDGET: Duration = Duration::from_secs(5 * 60);

pub struct ArchiveSweep {
    store: Arc<dyn RecordingStore>,
    /// Whether archival is on; with it off there is nothing to queue.
    archival: bool,
    clock: SharedClock,
    /// How long before ACS's deadline a pending chunk is at risk (`RECORDINGS_AT_RISK_HOURS`).
    at_risk: time::Duration,
}

impl ArchiveSweep {
    pub fn new(store: Arc<dyn RecordingStore>, archival: bool) -> Self {
        Self {
            store,
            archival,
            clock: crate::clock::system(),
            at_risk: crate::health::DEFAULT_AT_RISK,
        }
    }

    /// Finds pending chunks at risk `window` before ACS's deadline.
    pub fn with_at_risk(mut self, window: time::Duration) -> Self {
        self.at_risk = window;
        self
    }

    /// Reads the time from `clock` instead of the system's.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Reads the store's unfinished archives a page at a time, until the sweep has its share of jobs.
    pub async fn sweep(&self) -> Result<Sweep, crate::store::StoreError> {
        let now = self.clock.now();
        let mut found = Sweep::with_risk_window(self.at_risk);
        let mut continuation = None;
        loop {
            let page = self
                .store
                .unfinished_archives(&PageRequest {
                    limit: PAGE,
                    continuation,
                })
                .await?;
            found.add(&page.documents, now);
            continuation = page.continuation;
            if continuation.is_none() {
                return Ok(found);
            }
            if found.is_full() {
                found.unread = true;
                return Ok(found);
            }
        }
    }
}

#[async_trait]
impl Function for ArchiveSweep {
    fn name(&self) -> &'static str {
        NAME
    }

    fn budget(&self) -> Duration {
        BUDGET
    }

    async fn invoke(&self, _body: &[u8], _invocation_id: &str) -> Result<InvocationReply, FunctionError> {
        if !self.archival {
            return Ok(InvocationReply::with_log(
                "archive sweep: archival is off; nothing to queue",
            ));
        }
        let found = self.sweep().await?;
        for (job, risk, deadline) in &found.at_risk {
            let announced_at = job.event_time.as_deref().unwrap_or_default();
            let deadline = crate::health::format_time(*deadline);
            match risk {
                Risk::PastDeadline => loss::chunk_past_deadline(job.ids(), announced_at, &deadline),
                _ => loss::chunk_at_risk(job.ids(), announced_at, &deadline),
            }
        }
        let past_deadline = found
            .at_risk
            .iter()
            .filter(|(_, risk, _)| *risk == Risk::PastDeadline)
            .count();
        let now = self.clock.now();
        loss::archive_sweep(loss::SweepSummary {
            pending: found.pending as u64,
            at_risk: (found.at_risk.len() - past_deadline) as u64,
            past_deadline: past_deadline as u64,
            queued: found.jobs.len() as u64,
            oldest_pending_age_seconds: found.oldest_pending.map(|oldest| (now - oldest).whole_seconds()),
            complete: !found.unread,
        });
        if !found.jobs.is_empty() {
            warn!(
                jobs = found.jobs.len(),
                "the archive sweep found chunks whose archive job was lost or gave up, and queued them again"
            );
        }
        let reply = InvocationReply::with_log(found.to_string());
        Ok(if found.jobs.is_empty() {
            reply
        } else {
            let jobs = found.jobs.iter().map(ArchiveJob::to_value).collect();
            reply.with_output(ARCHIVE_JOBS, Value::Array(jobs))
        })
    }
}
