//! Read links in a listed recording: every archived chunk gets `links` to its content and metadata, which work
//! with no other credential until `expiresOn`.
//!
//! A link names the files the chunk's archive state recorded — never a name made again from the recording's format
//! now, which a later event may have changed — and is given only to a chunk the handler archived.

use std::time::Duration;

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::archive::{Archive, ArchiveError, FileKey, FileKind, LinkRequest};
use crate::recording::{ArchiveStatus, LINKS, RecordingDocument};

/// The archive links come from, and how long a link works (`RECORDINGS_LINK_MINUTES`).
#[derive(Clone)]
pub struct Linker {
    pub archive: std::sync::Arc<dyn Archive>,
    pub lifetime: Duration,
}

/// Removes every chunk's `links` from a document's JSON: a document an earlier version stored may hold an event's.
pub fn remove_stored_links(value: &mut Value) {
    for chunk in value["chunks"].as_array_mut().into_iter().flatten() {
        if let Some(chunk) = chunk.as_object_mut() {
            chunk.remove(LINKS);
        }
    }
}

/// The extension of an archived content file, read from the location its archive state recorded
/// (`….content.mp4`, `…/content.mp3`); `None` when the location ends in none this handler writes.
fn recorded_extension(location: &str) -> Option<String> {
    let name = location.rsplit('/').next()?;
    let (_, extension) = name.rsplit_once('.')?;
    (!extension.is_empty() && extension.len() <= 8 && extension.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| extension.to_owned())
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
            let Some((content, _)) = document
                .chunk_archive(chunk_id)
                .filter(|state| state.state == ArchiveStatus::Archived)
                .and_then(|state| state.files())
            else {
                continue;
            };
            let Some(extension) = recorded_extension(&content.location) else {
                continue;
            };
            let key = |kind: FileKind| FileKey {
                call_id: document.call_id.clone(),
                recording_id: document.id.clone(),
                chunk_id: chunk_id.to_owned(),
                kind,
            };
            let content = key(FileKind::Content {
                extension: extension.clone(),
            });
            let metadata = key(FileKind::Metadata);
            let index = chunk.get("index").map_or_else(|| chunk_id.to_owned(), Value::to_string);
            let request = |key: &FileKey, name: String| LinkRequest {
                lifetime: self.lifetime,
                file_name: name,
                content_type: key.kind.content_type().to_owned(),
            };
            let content_name = download_name(recording, &index, &extension);
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
            chunk[LINKS] = links;
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
    fn the_extension_is_the_recorded_files() {
        assert_eq!(
            recorded_extension("file:///data/archive/c/r/d0.content.mp4").as_deref(),
            Some("mp4")
        );
        assert_eq!(
            recorded_extension("https://a.blob.core.windows.net/r/c/r/d0/content.mp3").as_deref(),
            Some("mp3")
        );
        assert_eq!(recorded_extension("https://a.example/r/c/r/d0/content"), None);
        assert_eq!(recorded_extension("https://a.example/x.../"), None);
    }

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
