//! The recordings API: a call's recordings, one recording, or a filtered listing, paged, with read links to the
//! archived files; and erasing a call or a recording everywhere ([`erase`]).
//!
//! Apart from HTTP: [`RecordingsApi`] takes what a request asks (route parameters, decoded query pairs) and gives
//! an [`ApiResponse`]; the two ways the host reaches the handler — the request forwarded as it is
//! (`host::server`), or an invocation payload (`functions::recordings`) — only translate. User input never
//! produces a 5xx: bad values are `400`, unknown recordings `404`, and only a store or archive that cannot answer
//! is `503` with `Retry-After`, its cause logged here and never told.

pub mod erase;
pub mod links;
pub mod problem;
pub mod request;
mod token;

use std::sync::Arc;

use serde_json::{Value, json};
use tracing::error;

use crate::archive::acs::RecordingFiles;
use crate::error::error_chain;
use crate::recording::{RecordingDocument, document_id};
use crate::store::{PageRequest, RecordingStore};

pub use links::Linker;
pub use problem::Problem;
use request::{ListRequest, list_request};

/// The route prefix the host puts before every HTTP function's route (`host.json`'s
/// `extensions.http.routePrefix`, which this app leaves at its default); forwarded requests arrive with it.
pub const ROUTE_PREFIX: &str = "api";

/// An answer, whichever way it goes back to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub content_type: &'static str,
    /// Seconds, for a `503`.
    pub retry_after: Option<u64>,
    pub body: Vec<u8>,
}

impl ApiResponse {
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            retry_after: None,
            // A `Value` always serializes.
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    /// The response's headers besides the body's length.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![("Content-Type", self.content_type.to_owned())];
        if let Some(seconds) = self.retry_after {
            headers.push(("Retry-After", seconds.to_string()));
        }
        headers
    }
}

impl From<Problem> for ApiResponse {
    fn from(problem: Problem) -> Self {
        problem.into_response()
    }
}

/// The API over one store, with the archive (read links, erasing files) and ACS (erasing what it still holds) when
/// archival is on.
#[derive(Clone)]
pub struct RecordingsApi {
    store: Arc<dyn RecordingStore>,
    links: Option<Linker>,
    acs: Option<Arc<dyn RecordingFiles>>,
}

impl RecordingsApi {
    pub fn new(store: Arc<dyn RecordingStore>) -> Self {
        Self {
            store,
            links: None,
            acs: None,
        }
    }

    /// Links archived chunks, and erases archived files and the files still at ACS.
    pub fn with_archive(mut self, links: Linker, acs: Arc<dyn RecordingFiles>) -> Self {
        self.links = Some(links);
        self.acs = Some(acs);
        self
    }

    /// `GET recordings/{callId?}/{recordingId?}`: one recording when both are given, otherwise a listing.
    pub async fn get(
        &self,
        call_id: Option<&str>,
        recording_id: Option<&str>,
        query: &[(String, String)],
    ) -> ApiResponse {
        let answer = match (
            call_id.filter(|c| !c.is_empty()),
            recording_id.filter(|r| !r.is_empty()),
        ) {
            (Some(call_id), Some(recording_id)) => self.recording(call_id, recording_id).await,
            (call_id, None) => match list_request(call_id, query) {
                Ok(request) => self.list(&request).await,
                Err(problem) => Err(problem),
            },
            (None, Some(_)) => Err(Problem::not_found(
                "a recording is found under its call: recordings/{callId}/{recordingId}",
            )),
        };
        answer.unwrap_or_else(ApiResponse::from)
    }

    /// One page of a listing, as the API answers it.
    pub async fn list(&self, request: &ListRequest) -> Result<ApiResponse, Problem> {
        let (recordings, continuation) = self.page(request).await?;
        let token = continuation.map(|continuation| token::issue(&request.filter, &continuation));
        Ok(ApiResponse::json(
            200,
            &json!({"recordings": recordings, "continuationToken": token}),
        ))
    }

    /// One page of a listing: the recordings as JSON with their links, and the store's continuation to the next.
    pub async fn page(&self, request: &ListRequest) -> Result<(Vec<Value>, Option<String>), Problem> {
        let page = PageRequest {
            limit: request.limit,
            continuation: request.continuation.clone(),
        };
        let page = match self.store.list(&request.filter, &page).await {
            Ok(page) => page,
            Err(crate::store::StoreError::BadContinuation) => return Err(Problem::unknown_token()),
            Err(e) => return Err(unavailable("list recordings", &e)),
        };
        let mut recordings = Vec::with_capacity(page.documents.len());
        for document in &page.documents {
            recordings.push(self.with_links(document).await?);
        }
        Ok((recordings, page.continuation))
    }

    /// `GET recordings/{callId}/{recordingId}`: the recording whose `recordingId` or document `id` this is.
    async fn recording(&self, call_id: &str, recording_id: &str) -> Result<ApiResponse, Problem> {
        let document = match self.find(call_id, recording_id).await {
            Ok(Some(document)) => document,
            Ok(None) => {
                return Err(Problem::not_found(format!(
                    "call {call_id:?} has no recording {recording_id:?}"
                )));
            }
            Err(e) => return Err(unavailable("read a recording", &e)),
        };
        Ok(ApiResponse::json(200, &self.with_links(&document).await?))
    }

    async fn find(
        &self,
        call_id: &str,
        recording_id: &str,
    ) -> Result<Option<RecordingDocument>, crate::store::StoreError> {
        // A document's id is derived from its recording id (the id itself whenever it is a safe one): one point
        // read finds it, and an id no store could take is never sent as one.
        if let Some(document) = self.store.read(call_id, &document_id(recording_id)).await? {
            return Ok(Some(document));
        }
        let documents = self.store.documents(Some(call_id)).await?;
        Ok(documents
            .into_iter()
            .find(|document| document.recording_id.as_deref() == Some(recording_id)))
    }

    /// The document as JSON, with read links when the archive is known. Only the product's links are served: a
    /// `links` field a document of an earlier version kept from an event is left out.
    async fn with_links(&self, document: &RecordingDocument) -> Result<Value, Problem> {
        let mut value = serde_json::to_value(document).map_err(|e| unavailable("write a recording", &e))?;
        links::remove_stored_links(&mut value);
        if let Some(linker) = &self.links {
            linker
                .add_links(document, &mut value)
                .await
                .map_err(|e| unavailable("make read links", &e))?;
        }
        Ok(value)
    }

    /// `DELETE recordings/{callId}/{recordingId?}`: erases the call, or one recording, everywhere; one audit line.
    pub async fn erase(&self, call_id: Option<&str>, recording_id: Option<&str>, invocation_id: &str) -> ApiResponse {
        let Some(call_id) = call_id.filter(|c| !c.is_empty()) else {
            return Problem::not_found(
                "erase a call as recordings/{callId}, or one recording as recordings/{callId}/{recordingId}",
            )
            .into();
        };
        match self.erase_everywhere(call_id, recording_id, invocation_id).await {
            Ok(erased) => ApiResponse::json(200, &json!({"erased": erased})),
            Err(e) => unavailable("erase recordings", &e).into(),
        }
    }

    /// Erases the call, or one recording, everywhere, and writes the audit line: the invocation, the ids and the
    /// counts, nothing else.
    pub async fn erase_everywhere(
        &self,
        call_id: &str,
        recording_id: Option<&str>,
        invocation_id: &str,
    ) -> Result<erase::Erased, erase::EraseError> {
        let recording_id = recording_id.filter(|r| !r.is_empty());
        let reach = erase::Reach {
            store: self.store.as_ref(),
            archive: self.links.as_ref().map(|links| links.archive.as_ref()),
            acs: self.acs.as_deref(),
        };
        let erased = erase::erase(&reach, call_id, recording_id).await?;
        let counts = crate::loss::ErasedCounts {
            recordings: erased.recordings as u64,
            files: erased.files,
            acs_files: erased.acs_files as u64,
            quarantined: erased.quarantined as u64,
        };
        crate::loss::recording_erased(invocation_id, call_id, recording_id, counts);
        Ok(erased)
    }
}

/// The `503` for a failure on this side, its cause logged once here.
fn unavailable(action: &str, error: &(dyn std::error::Error + 'static)) -> Problem {
    error!(error = %error_chain(error), "cannot {action}; answered 503");
    Problem::unavailable()
}
