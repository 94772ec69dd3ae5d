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
            let content_name = download_name(recording, &index, &job.content_extension());
            let content_link = self
                .archive
                .read_link(&content, &request(&content, content_name))
                .await?;
            let metadata_name = download_name(recording, &index, "json");
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

/// The name a download is saved as: `{recording}-{index}.{extension}`, with every character that has no place in a
/// file name — a control character (a CR or LF would also end the header it travels in), `/`, `\\` — made `_`. The
/// ids come from events; the archive writes the name into the link's `Content-Disposition` (see
/// [`crate::archive::LinkRequest::content_disposition`]).
fn download_name(recording: &str, index: &str, extension: &str) -> String {
    format!("{recording}-{index}.{extension}")
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_name_keeps_the_ids_but_nothing_that_cannot_stand_in_a_file_name() {
        assert_eq!(download_name("rec-1", "0", "mp4"), "rec-1-0.mp4");
        assert_eq!(
            download_name("eyJQbGF0Zm9ybSI6", "3", "json"),
            "eyJQbGF0Zm9ybSI6-3.json"
        );
        assert_eq!(
            download_name("rec\r\nX-Evil: 1/../é", "\"7\"", "wav"),
            "rec__X-Evil: 1_.._é-\"7\".wav"
        );
    }
}
