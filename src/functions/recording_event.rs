//! `RecordingEvent`: the Event Grid trigger. Each invocation carries one event; the [`Pipeline`] stores, ignores or
//! quarantines it, and the reply's log line says which. With archival on, the reply also carries one archive job per
//! chunk of the event not archived yet, for the host to queue — again on a redelivery, since the host writes outputs
//! only after a successful reply, and a job lost with a failed one is made again by the next.

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{Function, FunctionError};
use crate::archive::ArchiveJob;
use crate::event::{Event, WireEvent};
use crate::host::InvocationReply;
use crate::host::invocation::{self, binding_object, parse_binding};
use crate::pipeline::{Outcome, Pipeline};
use crate::store::StoreError;

/// The function's folder and route.
pub const NAME: &str = "RecordingEvent";
/// The trigger binding's name in `RecordingEvent/function.json`; the host keys the event by it.
pub const TRIGGER: &str = "eventGridEvent";
/// The queue output binding's name: the archive jobs of the event's chunks, for `ArchiveRecording`.
pub const ARCHIVE_JOBS: &str = "archiveJobs";

/// The time allowed for one event. Event Grid waits 30 s for an answer; answering well before lets the host report
/// the failure and Event Grid schedule the retry, instead of timing out.
const BUDGET: Duration = Duration::from_secs(20);

pub struct RecordingEvent {
    pipeline: Pipeline,
}

impl RecordingEvent {
    pub fn new(pipeline: Pipeline) -> Self {
        Self { pipeline }
    }

    /// What becomes of one invocation body: the event it carries processed, or the body quarantined when it
    /// carries none that can be read.
    pub async fn handle(&self, body: &[u8]) -> Result<Outcome, StoreError> {
        // The common case, an event object, is read in the one pass over the envelope; anything else (an event
        // given as a string, a body that is not an invocation) takes the path that keeps its text for quarantine.
        if let Some(event) = parse_binding::<WireEvent>(body, TRIGGER).and_then(|wire| Event::from_wire(wire).ok()) {
            let text = || binding_object(body, TRIGGER).unwrap_or(Cow::Borrowed(""));
            return self.pipeline.process(event, &text).await;
        }
        match binding_object(body, TRIGGER) {
            Ok(event) => self.pipeline.process_event(&event).await,
            Err(error) => {
                self.pipeline
                    .quarantine(invocation::quarantine_payload(body), error.to_string())
                    .await
            }
        }
    }
}

#[async_trait]
impl Function for RecordingEvent {
    fn name(&self) -> &'static str {
        NAME
    }

    fn budget(&self) -> Duration {
        BUDGET
    }

    async fn invoke(&self, body: &[u8], _invocation_id: &str) -> Result<InvocationReply, FunctionError> {
        let outcome = self.handle(body).await?;
        let reply = InvocationReply::with_log(outcome.to_string());
        Ok(match outcome {
            Outcome::Stored { jobs, .. } if !jobs.is_empty() => {
                // An array of objects: the host writes one message per object (a string would be base64-decoded).
                let jobs = jobs.iter().map(ArchiveJob::to_value).collect();
                reply.with_output(ARCHIVE_JOBS, Value::Array(jobs))
            }
            _ => reply,
        })
    }
}
