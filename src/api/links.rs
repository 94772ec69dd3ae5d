//! Read links in a listed recording: every archived chunk gets `links` to its content and metadata, which work
//! with no other credential until `expiresOn`.

use std::time::Duration;

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::archive::{Archive, ArchiveError, ArchiveJob, FileKey, LinkRequest};
use crate::recording::{ArchiveStatus, RecordingDocument};

/// The archive links come from, and how long a link works (`RECORDINGS_LINK_MINUTES`).
#[derive(Clone)]
pub struct Linker {
    pub archive: std::sync::Arc<dyn Archive>,
    pub lifetime: Duration,
}

impl Linker {
    /// Gives every archived chunk of `value` (the document as JSON) `links`: its content's and metadata's read links,
    /// and when they stop working. A download is saved as `{recordingId}-{index}.{ext}`.
    pub async fn add_links(&self, document: &RecordingDocument, value: &mut Value) -> Result<(), ArchiveError> {
        let recording = document.recording_id.as_deref().unwrap_or(&document.id);
        for chunk in value["chunks"].as_array_mut().into_iter().flatten() {
            let Some(chunk_id) = chunk.get("documentId").and_then(Value::as_str) else {
                continue;
            };
            let archived = document
                .chunk_archive(chunk_id)
                .is_some_and(|state| state.state == ArchiveStatus::Archived);
            let Some(job) = ArchiveJob::for_chunk(document, chunk_id).filter(|_| archived) else {
                continue;
            };
            let index = chunk.get("index").map_or_else(|| chunk_id.to_owned(), Value::to_string);
            let (content, metadata) = (FileKey::content(&job), FileKey::metadata(&job));
            let request = |key: &FileKey, name: String| LinkRequest {
                lifetime: self.lifetime,
                file_name: name,
                content_type: key.kind.content_type().to_owned(),
            };
            let content_name = format!("{recording}-{index}.{}", job.content_extension());
            let content_link = self
                .archive
                .read_link(&content, &request(&content, content_name))
                .await?;
            let metadata_name = format!("{recording}-{index}.json");
            let metadata_link = self
                .archive
                .read_link(&metadata, &request(&metadata, metadata_name))
                .await?;
            let mut links = json!({"content": content_link.url.as_str(), "metadata": metadata_link.url.as_str()});
            if let Some(expires_on) = content_link.expires_on.and_then(|t| t.format(&Rfc3339).ok()) {
                links["expiresOn"] = Value::String(expires_on);
            }
            chunk["links"] = links;
        }
        Ok(())
    }
}
