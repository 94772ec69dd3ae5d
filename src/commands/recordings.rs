//! `handler recordings`: the stored recordings as JSON — a call's, those naming a server call, those with a chunk in
//! an archive state — with, on request, a read link to each archived file.
//!
//! The answer has the recordings API's shape, `{"recordings": [document, …], "continuationToken": null}`; every
//! recording comes in one answer here, so there is never a next page.

use std::io::Write;

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::archive::{Archive, ArchiveError, ArchiveJob, FileKey, LinkRequest};
use crate::recording::{ArchiveStatus, RecordingDocument};
use crate::store::{RecordingStore, StoreError};

/// Which recordings to list; every filter given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub call_id: Option<String>,
    pub server_call_id: Option<String>,
    /// Recordings with at least one chunk in this state.
    pub archive_state: Option<ArchiveStatus>,
}

impl Filter {
    fn matches(&self, document: &RecordingDocument) -> bool {
        self.server_call_id
            .as_deref()
            .is_none_or(|wanted| document.server_call_id.as_deref() == Some(wanted))
            && self.archive_state.is_none_or(|wanted| {
                document
                    .archive_states()
                    .any(|(_, state)| state.is_some_and(|state| state.state == wanted))
            })
    }
}

/// Why the recordings could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot make a read link")]
    Link(#[from] ArchiveError),
    #[error("cannot write the answer")]
    Write(#[from] std::io::Error),
}

/// Writes the recordings `filter` selects to `out`, with read links from `links` (the archive, and how long a link
/// works) when given.
pub async fn recordings(
    store: &dyn RecordingStore,
    links: Option<(&dyn Archive, std::time::Duration)>,
    filter: &Filter,
    out: &mut impl Write,
) -> Result<usize, ListError> {
    let mut documents = store.documents(filter.call_id.as_deref()).await?;
    documents.retain(|document| filter.matches(document));
    documents.sort_by(|a, b| (&a.call_id, &a.id).cmp(&(&b.call_id, &b.id)));
    let mut listed = Vec::with_capacity(documents.len());
    for document in &documents {
        let mut value = serde_json::to_value(document).map_err(std::io::Error::from)?;
        if let Some((archive, lifetime)) = links {
            add_links(document, &mut value, archive, lifetime).await?;
        }
        listed.push(value);
    }
    let count = listed.len();
    serde_json::to_writer(&mut *out, &json!({"recordings": listed, "continuationToken": null}))
        .map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(count)
}

/// Gives every archived chunk of `value` (the document as JSON) `links`: its content's and metadata's read links,
/// and when they stop working.
async fn add_links(
    document: &RecordingDocument,
    value: &mut Value,
    archive: &dyn Archive,
    lifetime: std::time::Duration,
) -> Result<(), ArchiveError> {
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
            lifetime,
            file_name: name,
            content_type: key.kind.content_type().to_owned(),
        };
        let content_link = archive
            .read_link(
                &content,
                &request(&content, format!("{recording}-{index}.{}", job.content_extension())),
            )
            .await?;
        let metadata_link = archive
            .read_link(&metadata, &request(&metadata, format!("{recording}-{index}.json")))
            .await?;
        let mut links = json!({"content": content_link.url.as_str(), "metadata": metadata_link.url.as_str()});
        if let Some(expires_on) = content_link.expires_on.and_then(|t| t.format(&Rfc3339).ok()) {
            links["expiresOn"] = Value::String(expires_on);
        }
        chunk["links"] = links;
    }
    Ok(())
}
