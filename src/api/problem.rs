//! Errors as the API answers them: `application/problem+json` (RFC 9457), with a detail in the caller's terms and
//! never an internal cause — those are logged where they happen.

use serde_json::json;

use super::ApiResponse;

/// Seconds a caller should wait before trying again after a `503`.
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// One problem: `type` is `about:blank`, so `title` is the status's own phrase, and `detail` says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: u16,
    pub detail: String,
}

impl Problem {
    /// A value the caller sent is not one the API takes.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self {
            status: 400,
            detail: detail.into(),
        }
    }

    /// A continuation token the API did not give for this listing (the store's own check included).
    pub fn unknown_token() -> Self {
        Self::bad_request("continuationToken is not one this API gave for this listing; start again without it")
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self {
            status: 404,
            detail: detail.into(),
        }
    }

    /// The store or the archive cannot answer now; the cause is logged, not told.
    pub fn unavailable() -> Self {
        Self {
            status: 503,
            detail: "the recordings store or archive cannot be reached right now; try again shortly".to_owned(),
        }
    }

    pub fn title(&self) -> &'static str {
        match self.status {
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            503 => "Service Unavailable",
            _ => "Error",
        }
    }

    pub fn into_response(self) -> ApiResponse {
        let body = json!({
            "type": "about:blank",
            "title": self.title(),
            "status": self.status,
            "detail": self.detail,
        });
        let mut response = ApiResponse::json(self.status, &body);
        response.content_type = "application/problem+json";
        if self.status == 503 {
            response.retry_after = Some(RETRY_AFTER_SECONDS);
        }
        response
    }
}
