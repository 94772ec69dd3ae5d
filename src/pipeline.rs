//! From an invocation body or an event's JSON to its outcome in the store: stored, ignored or quarantined.
//!
//! This is the one place that decides what happens to a payload; the HTTP layer and `handler replay` both call it.
//! Anything that can never be processed is quarantined (and acknowledged); only a store failure is an error, and
//! every such error means "not kept, deliver again".

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{info, warn};

use crate::event::Event;
use crate::invocation;
use crate::quarantine::QuarantineEntry;
use crate::recording::{RECORDING_EVENT_TYPE, RecordingDocument};
use crate::store::{MergeOutcome, RecordingStore, StoreError};

/// What became of one payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Stored {
        call_id: String,
        id: String,
        change: MergeOutcome,
    },
    Ignored {
        event_type: String,
    },
    Quarantined {
        id: String,
        reason: String,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Stored { call_id, id, change } => {
                write!(f, "stored recording {id} of call {call_id} ({})", change.as_str())
            }
            Outcome::Ignored { event_type } => write!(f, "ignored {event_type} event"),
            Outcome::Quarantined { id, reason } => write!(f, "quarantined as {id}: {reason}"),
        }
    }
}

#[derive(Clone)]
pub struct Pipeline {
    store: Arc<dyn RecordingStore>,
}

impl Pipeline {
    pub fn new(store: Arc<dyn RecordingStore>) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Arc<dyn RecordingStore> {
        &self.store
    }

    /// Processes the body of a host invocation of `RecordingEvent`.
    pub async fn process_invocation(&self, body: &[u8]) -> Result<Outcome, StoreError> {
        match invocation::event_json(body) {
            Ok(event) => self.process_event(&event).await,
            Err(error) => self.quarantine(body, error.to_string()).await,
        }
    }

    /// Processes one event's JSON text, in either schema.
    pub async fn process_event(&self, json: &str) -> Result<Outcome, StoreError> {
        let event = match Event::parse(json) {
            Ok(event) => event,
            Err(error) => return self.quarantine(json.as_bytes(), error.to_string()).await,
        };
        let span = tracing::Span::current();
        span.record("event_id", event.id.as_str());
        if !event.event_type.eq_ignore_ascii_case(RECORDING_EVENT_TYPE) {
            info!(event_type = %event.event_type, "not a recording event; acknowledged without storing");
            return Ok(Outcome::Ignored {
                event_type: event.event_type,
            });
        }
        if let Some(time) = &event.unreadable_time {
            warn!(time = %time, "event time is not RFC 3339; the event is stored but ranks oldest among its recording's events");
        }
        let document = match RecordingDocument::from_event(&event) {
            Ok(document) => document,
            Err(error) => return self.quarantine(json.as_bytes(), error.to_string()).await,
        };
        span.record("recording_id", document.id.as_str());
        let (call_id, id) = (document.call_id.clone(), document.id.clone());
        let change = self.store.merge(document).await?;
        let outcome = Outcome::Stored { call_id, id, change };
        info!(%outcome);
        Ok(outcome)
    }

    async fn quarantine(&self, payload: &[u8], reason: String) -> Result<Outcome, StoreError> {
        let entry = QuarantineEntry::new(payload, reason, now());
        let outcome = Outcome::Quarantined {
            id: entry.id.clone(),
            reason: entry.reason.clone(),
        };
        self.store.quarantine(entry).await?;
        warn!(%outcome);
        Ok(outcome)
    }
}

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}
