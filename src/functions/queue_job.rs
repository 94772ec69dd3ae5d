//! What both queue-triggered functions do with a message: read the archive job (and the message's metadata) out of
//! the invocation, or keep a message that is no job in quarantine.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::FunctionError;
use crate::archive::ArchiveJob;
use crate::host::InvocationReply;
use crate::host::invocation::{self, InvocationError};
use crate::quarantine::QuarantineEntry;
use crate::store::RecordingStore;

/// The job and the message's metadata from a queue trigger invocation.
pub fn read(body: &[u8], binding: &'static str) -> Result<(ArchiveJob, Option<Value>), String> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "Metadata", default)]
        metadata: Option<Value>,
        #[serde(rename = "Data", borrow)]
        _data: &'a RawValue,
    }
    let value = invocation::binding_value(body, binding).map_err(|e: InvocationError| e.to_string())?;
    let job = ArchiveJob::from_binding(value).map_err(|e| e.to_string())?;
    let metadata = serde_json::from_slice::<Envelope<'_>>(body)
        .ok()
        .and_then(|e| e.metadata);
    Ok((job, metadata))
}

/// Keeps a message that is not a job in quarantine, and acknowledges it: no retry can make it one.
pub async fn quarantine(
    store: &dyn RecordingStore,
    body: &[u8],
    reason: String,
) -> Result<InvocationReply, FunctionError> {
    let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
    let entry = QuarantineEntry::new(invocation::quarantine_payload(body), reason, now);
    let line = format!("quarantined as {}: {}", entry.id, entry.reason);
    let (id, reason) = (entry.id.clone(), entry.reason.clone());
    store.quarantine(entry).await?;
    crate::loss::payload_quarantined(&id, None, None, &reason);
    Ok(InvocationReply::with_log(line))
}
