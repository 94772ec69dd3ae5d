//! `handler recordings` and `handler erase`: the recordings API for the embedded default and for operators, on the
//! command line.
//!
//! `recordings` prints what `GET /api/recordings` answers — `{"recordings": [document, …], "continuationToken":
//! null}` — with every page in one answer; `erase` prints what `DELETE /api/recordings/{callId}` answers.

use std::io::Write;

use serde_json::json;

use crate::api::erase::{EraseError, Erased};
use crate::api::request::{ListRequest, MAX_LIMIT};
use crate::api::{Problem, RecordingsApi};
use crate::store::ListFilter;

/// Why the recordings could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The store or the archive failed; the cause is logged where it happened.
    #[error("{}", .0.detail)]
    Api(Problem),
    #[error("cannot write the answer")]
    Write(#[from] std::io::Error),
}

/// Writes every recording `filter` selects to `out`, page after page; returns how many.
pub async fn recordings(api: &RecordingsApi, filter: &ListFilter, out: &mut impl Write) -> Result<usize, ListError> {
    let mut request = ListRequest {
        filter: filter.clone(),
        limit: MAX_LIMIT,
        continuation: None,
    };
    let mut listed = Vec::new();
    loop {
        let (page, next) = api.page(&request).await.map_err(ListError::Api)?;
        listed.extend(page);
        match next {
            Some(next) => request.continuation = Some(next),
            None => break,
        }
    }
    let count = listed.len();
    serde_json::to_writer(&mut *out, &json!({"recordings": listed, "continuationToken": null}))
        .map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(count)
}

/// Erases the call, or one recording, everywhere, and writes the counts as the API answers them.
pub async fn erase(
    api: &RecordingsApi,
    call_id: &str,
    recording_id: Option<&str>,
    out: &mut impl Write,
) -> Result<Erased, EraseError> {
    let erased = api.erase_everywhere(call_id, recording_id, "handler erase").await?;
    serde_json::to_writer(&mut *out, &json!({"erased": erased})).map_err(|e| EraseError::Write(e.into()))?;
    writeln!(out).map_err(EraseError::Write)?;
    Ok(erased)
}
