//! From an invocation body or an event's JSON to its outcome in the store: stored, ignored or quarantined.
//!
//! This is the one place that decides what happens to a payload; the HTTP layer and `handler replay` both call it.
//! Anything that can never be processed is quarantined (and acknowledged); only a store failure is an error, and
//! every such error means "not kept, deliver again".

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use time::format_description::well_known::Rfc3339;
use tracing::{debug, info, warn};

use crate::archive::ArchiveJob;
use crate::archive::sources::ArchiveSources;
use crate::clock::SharedClock;
use crate::event::Event;
use crate::loss;
use crate::quarantine::QuarantineEntry;
use crate::recording::{RECORDING_EVENT_TYPE, RecordingDocument};
use crate::store::{MergeOutcome, RecordingStore, StoreError};
use crate::subject::RecordingSubject;

/// What became of one payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Stored {
        call_id: String,
        id: String,
        change: MergeOutcome,
        /// With archival on: one job per chunk of the event still to archive.
        jobs: Vec<ArchiveJob>,
    },
    Ignored {
        event_type: String,
    },
    Quarantined {
        id: String,
        reason: String,
    },
    /// The recording was erased: the event is acknowledged, and neither stored nor archived.
    Erased {
        call_id: String,
        id: String,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Stored {
                call_id,
                id,
                change,
                jobs,
            } => {
                write!(f, "stored recording {id} of call {call_id} ({})", change.as_str())?;
                if !jobs.is_empty() {
                    write!(f, "; {} chunk(s) queued for archiving", jobs.len())?;
                }
                Ok(())
            }
            Outcome::Ignored { event_type } => write!(f, "ignored {event_type} event"),
            Outcome::Quarantined { id, reason } => write!(f, "quarantined as {id}: {reason}"),
            Outcome::Erased { call_id, id } => write!(
                f,
                "recording {id} of call {call_id} was erased: the event is acknowledged and not stored"
            ),
        }
    }
}

#[derive(Clone)]
pub struct Pipeline {
    store: Arc<dyn RecordingStore>,
    allowed_sources: Option<AllowedSources>,
    /// With archival on, the sources files are archived from: chunks are stored `pending` (or `external`, in the
    /// customer's own storage) and archive jobs made for them.
    archival: Option<ArchiveSources>,
    /// When an event is received: no chunk is announced later than that (beyond the clocks' skew).
    clock: SharedClock,
    /// With archival off, the sources chunks' locations are judged by (see
    /// [`RecordingDocument::with_judged_locations`]), so that documents stored before archival was turned on rank
    /// their chunks' locations as it will.
    default_sources: ArchiveSources,
}

/// The ACS resources whose events are accepted (`RECORDINGS_ALLOWED_SOURCES`), compared case-insensitively, since
/// Event Grid and ARM spell resource ids in varying case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedSources(Vec<String>);

impl AllowedSources {
    pub fn new(sources: impl IntoIterator<Item = String>) -> Self {
        Self(sources.into_iter().map(|s| normalize_source(&s)).collect())
    }

    fn allows(&self, source: &str) -> bool {
        let source = normalize_source(source);
        self.0.contains(&source)
    }
}

fn normalize_source(source: &str) -> String {
    source.trim().trim_end_matches('/').to_ascii_lowercase()
}

impl Pipeline {
    pub fn new(store: Arc<dyn RecordingStore>) -> Self {
        Self {
            store,
            allowed_sources: None,
            archival: None,
            clock: crate::clock::system(),
            default_sources: ArchiveSources::default_list(),
        }
    }

    /// Reads the time from `clock` instead of the system's.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Stores chunks as `pending` archives and makes an archive job for each one not archived yet; files outside
    /// `sources` in the customer's own storage are recorded `external`.
    pub fn with_archival(mut self, sources: Option<ArchiveSources>) -> Self {
        self.archival = sources;
        self
    }

    /// Accepts events from these resources only; events from any other are quarantined.
    pub fn with_allowed_sources(mut self, allowed: Option<AllowedSources>) -> Self {
        self.allowed_sources = allowed;
        self
    }

    pub fn store(&self) -> &Arc<dyn RecordingStore> {
        &self.store
    }

    /// Processes one event's JSON text, in either schema.
    pub async fn process_event(&self, json: &str) -> Result<Outcome, StoreError> {
        match Event::parse(json) {
            Ok(event) => self.process(event, &|| Cow::Borrowed(json)).await,
            Err(error) => self.quarantine(json.as_bytes(), error.to_string()).await,
        }
    }

    /// Processes an event already read; `text` gives its JSON when it must be quarantined (only then, so that the
    /// common path never copies it).
    pub async fn process<'t>(
        &self,
        event: Event,
        text: &(dyn Fn() -> Cow<'t, str> + Sync),
    ) -> Result<Outcome, StoreError> {
        let span = tracing::Span::current();
        span.record("event_id", event.id.as_str());
        // The ids a quarantine record names, when the subject gives them.
        let named = event
            .subject
            .as_deref()
            .and_then(|subject| RecordingSubject::parse(subject).ok());
        let named = named.as_ref();
        if let Some(allowed) = &self.allowed_sources {
            let reason = match event.source.as_deref() {
                None => Some("the event names no source, and RECORDINGS_ALLOWED_SOURCES is set".to_owned()),
                Some(source) if !allowed.allows(source) => Some(format!(
                    "the event's source {source} is not in RECORDINGS_ALLOWED_SOURCES"
                )),
                Some(_) => None,
            };
            if let Some(reason) = reason {
                return self.quarantine_named(text().as_bytes(), reason, named).await;
            }
        }
        if !event.event_type.eq_ignore_ascii_case(RECORDING_EVENT_TYPE) {
            debug!(event_type = %event.event_type, "not a recording event; acknowledged without storing");
            return Ok(Outcome::Ignored {
                event_type: event.event_type,
            });
        }
        if let Some(time) = &event.unreadable_time {
            warn!(time = %time, "event time is not RFC 3339; the event is stored but ranks oldest among its recording's events");
        }
        let document = match RecordingDocument::from_event(event) {
            Ok(mut document) => {
                for (chunk_id, given) in document.received_at(self.clock.now()) {
                    warn!(
                        %chunk_id,
                        event_time = given.as_deref().unwrap_or("none"),
                        "the event's time is missing, unreadable, or later than when it was received (beyond the \
                         clocks' skew): the chunk is taken as announced when the event was received"
                    );
                }
                let sources = self.archival.as_ref().unwrap_or(&self.default_sources);
                let is_source = |url: &str| url::Url::parse(url).is_ok_and(|url| sources.allows(&url));
                let document = document.with_judged_locations(is_source);
                match &self.archival {
                    Some(_) => document.with_archive_states(is_source),
                    None => document,
                }
            }
            Err(error) => return self.quarantine_named(text().as_bytes(), error.to_string(), named).await,
        };
        span.record("recording_id", document.id.as_str());
        let (call_id, id) = (document.call_id.clone(), document.id.clone());
        let candidates = ArchiveJob::for_chunks(&document);
        let merged = match self.store.merge(document).await {
            Ok(merged) => merged,
            Err(StoreError::Refused(reason)) => {
                let reason = format!("the store refuses the recording document: {reason}");
                return self.quarantine_named(text().as_bytes(), reason, named).await;
            }
            Err(e) => return Err(e),
        };
        if merged.outcome == MergeOutcome::Erased {
            let outcome = Outcome::Erased { call_id, id };
            info!(%outcome);
            return Ok(outcome);
        }
        let jobs = candidates
            .into_iter()
            .filter(|job| merged.to_archive.contains(&job.chunk_document_id))
            .collect();
        let outcome = Outcome::Stored {
            call_id,
            id,
            change: merged.outcome,
            jobs,
        };
        // The reply's `Logs` line carries the outcome into the host's invocation log; repeating it on stderr would
        // log every event twice.
        debug!(%outcome);
        Ok(outcome)
    }

    /// Keeps a payload that can never be processed, with the reason, and writes its loss record.
    pub async fn quarantine(&self, payload: &[u8], reason: String) -> Result<Outcome, StoreError> {
        self.quarantine_named(payload, reason, None).await
    }

    /// [`Pipeline::quarantine`], the record naming the call and recording the payload's subject names.
    async fn quarantine_named(
        &self,
        payload: &[u8],
        reason: String,
        named: Option<&RecordingSubject>,
    ) -> Result<Outcome, StoreError> {
        let entry = QuarantineEntry::new(payload, reason, self.clock.now().format(&Rfc3339).unwrap_or_default());
        let outcome = Outcome::Quarantined {
            id: entry.id.clone(),
            reason: entry.reason.clone(),
        };
        self.store.quarantine(entry).await?;
        if let Outcome::Quarantined { id, reason } = &outcome {
            loss::payload_quarantined(
                id,
                named.map(|subject| subject.call_id.as_str()),
                named.and_then(|subject| subject.recording_id.as_deref()),
                reason,
            );
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::recording::{Stored, Tombstone};
    use crate::store::{Edit, Edited, Erasure, Merged};

    /// A store that records what it is asked and fails merges as told.
    #[derive(Default)]
    struct ScriptedStore {
        merged: Mutex<Vec<RecordingDocument>>,
        quarantined: Mutex<Vec<QuarantineEntry>>,
        refuse: bool,
        unavailable: bool,
    }

    #[async_trait]
    impl RecordingStore for ScriptedStore {
        async fn merge(&self, update: RecordingDocument) -> Result<Merged, StoreError> {
            if self.refuse {
                return Err(StoreError::Refused("larger than 2 MB".into()));
            }
            if self.unavailable {
                return Err(StoreError::TimedOut(std::time::Duration::from_secs(1)));
            }
            let archivable = update.archivable_chunk_ids();
            let merged = Merged::new(MergeOutcome::Created, &archivable, &update);
            self.merged.lock().unwrap().push(update);
            Ok(merged)
        }
        async fn edit(&self, _: &str, _: &str, _: Edit) -> Result<Edited, StoreError> {
            Ok(Edited::Missing)
        }
        async fn documents(&self, _: Option<&str>) -> Result<Vec<RecordingDocument>, StoreError> {
            Ok(Vec::new())
        }
        async fn quarantine(&self, entry: QuarantineEntry) -> Result<(), StoreError> {
            self.quarantined.lock().unwrap().push(entry);
            Ok(())
        }
        async fn lookup(&self, _: &str, _: &str) -> Result<Option<Stored>, StoreError> {
            Ok(None)
        }
        async fn erase(&self, _: &str, _: &str, _: &str) -> Result<Erasure, StoreError> {
            Ok(Erasure::Missing)
        }
        async fn tombstones(&self, _: &str) -> Result<Vec<Tombstone>, StoreError> {
            Ok(Vec::new())
        }
        async fn erase_quarantined(&self, _: &str) -> Result<usize, StoreError> {
            Ok(0)
        }
        async fn read_quarantined(&self, _: &str) -> Result<Option<QuarantineEntry>, StoreError> {
            Ok(None)
        }
        async fn status(
            &self,
            _: time::OffsetDateTime,
            _: time::Duration,
        ) -> Result<crate::health::Status, StoreError> {
            Ok(crate::health::Status::default())
        }
        fn location(&self, call_id: &str, id: &str) -> String {
            format!("{call_id}/{id}")
        }
    }

    fn recording_event() -> String {
        json!({"id": "e1", "subject": "/recording/call/c1/recordingId/r1", "eventType": RECORDING_EVENT_TYPE,
               "eventTime": "2026-11-27T15:20:34Z", "data": {"recordingStorageInfo": {"recordingChunks": []}}})
        .to_string()
    }

    async fn run(store: ScriptedStore, event: &str) -> (Result<Outcome, StoreError>, Arc<ScriptedStore>) {
        let store = Arc::new(store);
        let outcome = Pipeline::new(store.clone()).process_event(event).await;
        (outcome, store)
    }

    #[tokio::test]
    async fn recording_event_is_merged() {
        let (outcome, store) = run(ScriptedStore::default(), &recording_event()).await;
        assert_eq!(
            outcome.unwrap(),
            Outcome::Stored {
                call_id: "c1".into(),
                id: "r1".into(),
                change: MergeOutcome::Created,
                jobs: Vec::new(),
            }
        );
        assert_eq!(store.merged.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn document_the_store_refuses_is_quarantined_with_the_event() {
        let (outcome, store) = run(
            ScriptedStore {
                refuse: true,
                ..Default::default()
            },
            &recording_event(),
        )
        .await;
        assert!(matches!(outcome.unwrap(), Outcome::Quarantined { reason, .. } if reason.contains("2 MB")));
        let quarantined = store.quarantined.lock().unwrap();
        assert_eq!(quarantined[0].payload.as_deref(), Some(recording_event().as_str()));
    }

    #[tokio::test]
    async fn unavailable_store_is_an_error_not_a_quarantine() {
        let (outcome, store) = run(
            ScriptedStore {
                unavailable: true,
                ..Default::default()
            },
            &recording_event(),
        )
        .await;
        assert!(outcome.is_err());
        assert!(store.quarantined.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn events_from_resources_outside_the_allow_list_are_quarantined() {
        let store = Arc::new(ScriptedStore::default());
        let allowed = AllowedSources::new([
            "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Communication/communicationServices/ACS/"
                .to_owned(),
        ]);
        let pipeline = Pipeline::new(store.clone()).with_allowed_sources(Some(allowed));
        let event = |source: &str| {
            json!({"id": "e1", "topic": source, "subject": "/recording/call/c1/recordingId/r1",
                   "eventType": RECORDING_EVENT_TYPE, "data": {"recordingStorageInfo": {"recordingChunks": []}}})
            .to_string()
        };
        let same_in_other_case =
            event("/SUBSCRIPTIONS/s/resourcegroups/rg/providers/microsoft.communication/communicationservices/acs");
        assert!(matches!(
            pipeline.process_event(&same_in_other_case).await.unwrap(),
            Outcome::Stored { .. }
        ));
        let other = pipeline
            .process_event(&event(
                "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Communication/communicationServices/OTHER",
            ))
            .await;
        assert!(
            matches!(other.unwrap(), Outcome::Quarantined { reason, .. } if reason.contains("not in RECORDINGS_ALLOWED_SOURCES"))
        );
        let unsourced = json!({"id": "e2", "eventType": "Microsoft.Communication.CallEnded"}).to_string();
        assert!(matches!(
            pipeline.process_event(&unsourced).await.unwrap(),
            Outcome::Quarantined { .. }
        ));
        assert_eq!(store.merged.lock().unwrap().len(), 1);
        assert_eq!(store.quarantined.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn other_event_types_touch_no_store() {
        let event = json!({"id": "e1", "eventType": "Microsoft.Communication.CallEnded", "data": {}}).to_string();
        let (outcome, store) = run(ScriptedStore::default(), &event).await;
        assert_eq!(
            outcome.unwrap(),
            Outcome::Ignored {
                event_type: "Microsoft.Communication.CallEnded".into()
            }
        );
        assert!(store.merged.lock().unwrap().is_empty() && store.quarantined.lock().unwrap().is_empty());
    }
}
