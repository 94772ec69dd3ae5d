//! `Recordings` (GET) and `EraseRecordings` (DELETE): the recordings API's two HTTP functions, when the host reaches
//! them with an invocation payload rather than the request itself.
//!
//! This app turns `customHandler.enableForwardingHttpRequest` on, so the host forwards both functions' requests as
//! they are (`host::server` serves them); these are the same API for a host with forwarding off. The host then
//! posts `/{FunctionName}` with the request in `Data.req` — `{Url, Method, Query, Headers, Params, Identities,
//! Body}` — and answers the caller with `Outputs.res` — `{statusCode, headers, body}`. An API answer, whatever its
//! status, is a successful invocation: a failed one would make the host answer 500 on its own.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Function, FunctionError};
use crate::api::request::query_pairs;
use crate::api::{ApiResponse, Problem, RecordingsApi};
use crate::host::InvocationReply;
use crate::host::invocation::parse_binding;

/// The HTTP trigger's binding name in both functions' `function.json`.
pub const TRIGGER: &str = "req";
/// The HTTP output's binding name.
pub const RESPONSE: &str = "res";

/// A listing reads one page and makes its links; an erase may delete many files. The API itself answers 503 a few
/// seconds before (`ANSWER_MARGIN`): a function that runs out of time fails, and the host answers that with a 500.
pub const LIST_BUDGET: Duration = Duration::from_secs(30);
pub const ERASE_BUDGET: Duration = Duration::from_secs(120);
const ANSWER_MARGIN: Duration = Duration::from_secs(5);

/// `answer`, or a 503 when it is not ready within `budget` less [`ANSWER_MARGIN`].
pub async fn in_time(budget: Duration, answer: impl std::future::Future<Output = ApiResponse>) -> ApiResponse {
    tokio::time::timeout(budget.saturating_sub(ANSWER_MARGIN), answer)
        .await
        .unwrap_or_else(|_| {
            tracing::error!(?budget, "an API request did not finish in time; answered 503");
            Problem::unavailable().into()
        })
}

/// The request as the host puts it in `Data.req` (only what the API reads).
#[derive(Debug, Default, Deserialize)]
pub(super) struct HttpRequest {
    /// The request's whole URL, query string included, as the caller sent it.
    #[serde(rename = "Url", default)]
    url: Option<String>,
    /// The query's parameters, when the URL is missing.
    #[serde(rename = "Query", default)]
    query: Map<String, Value>,
    /// The route's parameters (`callId`, `recordingId`).
    #[serde(rename = "Params", default)]
    params: Map<String, Value>,
}

impl HttpRequest {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
    }

    /// The query's decoded pairs: from the URL when there is one (every value, in order), otherwise from `Query`.
    fn query_pairs(&self) -> Vec<(String, String)> {
        if let Some(url) = self.url.as_deref().and_then(|url| url::Url::parse(url).ok()) {
            return query_pairs(url.query().unwrap_or_default());
        }
        let mut pairs = Vec::new();
        for (name, value) in &self.query {
            match value {
                Value::String(value) => pairs.push((name.clone(), value.clone())),
                Value::Array(values) => pairs.extend(
                    values
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|value| (name.clone(), value.to_owned())),
                ),
                _ => {}
            }
        }
        pairs
    }
}

/// Reads `Data.req`; a body without one gets a `400` answer (it cannot come from the host).
pub(super) fn request(body: &[u8]) -> Result<HttpRequest, ApiResponse> {
    parse_binding::<HttpRequest>(body, TRIGGER)
        .ok_or_else(|| Problem::bad_request("the invocation carries no HTTP request in Data.req").into())
}

/// The host's reply carrying `response` in `Outputs.res`.
pub(super) fn reply(response: &ApiResponse) -> InvocationReply {
    let headers: Map<String, Value> = response
        .headers()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), Value::String(value)))
        .collect();
    let body = String::from_utf8_lossy(&response.body).into_owned();
    InvocationReply::with_log(format!("answered {}", response.status)).with_output(
        RESPONSE,
        json!({"statusCode": response.status, "headers": headers, "body": body}),
    )
}

/// `GET /api/recordings/{callId?}/{recordingId?}`.
pub struct Recordings {
    api: RecordingsApi,
}

impl Recordings {
    pub const NAME: &'static str = "Recordings";

    pub fn new(api: RecordingsApi) -> Self {
        Self { api }
    }
}

#[async_trait]
impl Function for Recordings {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn budget(&self) -> Duration {
        LIST_BUDGET
    }

    async fn invoke(&self, body: &[u8], _invocation_id: &str) -> Result<InvocationReply, FunctionError> {
        let response = match request(body) {
            Ok(request) => {
                let query = request.query_pairs();
                let answer = self
                    .api
                    .get(request.param("callId"), request.param("recordingId"), &query);
                in_time(LIST_BUDGET, answer).await
            }
            Err(response) => response,
        };
        Ok(reply(&response))
    }
}

/// `DELETE /api/recordings/{callId}/{recordingId?}` (admin key).
pub struct EraseRecordings {
    api: RecordingsApi,
}

impl EraseRecordings {
    pub const NAME: &'static str = "EraseRecordings";

    pub fn new(api: RecordingsApi) -> Self {
        Self { api }
    }
}

#[async_trait]
impl Function for EraseRecordings {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn budget(&self) -> Duration {
        ERASE_BUDGET
    }

    async fn invoke(&self, body: &[u8], invocation_id: &str) -> Result<InvocationReply, FunctionError> {
        let response = match request(body) {
            Ok(request) => {
                let answer = self
                    .api
                    .erase(request.param("callId"), request.param("recordingId"), invocation_id);
                in_time(ERASE_BUDGET, answer).await
            }
            Err(response) => response,
        };
        Ok(reply(&response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_comes_from_the_url_with_every_value_and_from_query_without_one() {
        let with_url: HttpRequest = serde_json::from_value(json!({
            "Url": "http://localhost:7071/api/recordings/c1?limit=5&serverCallId=a%2Fb&limit=6",
            "Query": {"limit": "5"},
            "Params": {"callId": "c1", "recordingId": ""}
        }))
        .unwrap();
        assert_eq!(
            with_url.query_pairs(),
            vec![
                ("limit".into(), "5".into()),
                ("serverCallId".into(), "a/b".into()),
                ("limit".into(), "6".into())
            ]
        );
        assert_eq!(
            (with_url.param("callId"), with_url.param("recordingId")),
            (Some("c1"), None)
        );

        let without_url: HttpRequest =
            serde_json::from_value(json!({"Query": {"limit": "5", "archiveState": ["failed"]}})).unwrap();
        assert_eq!(
            without_url.query_pairs(),
            vec![("archiveState".into(), "failed".into()), ("limit".into(), "5".into())]
        );
    }

    #[test]
    fn an_answer_goes_back_in_outputs_res_with_its_status_headers_and_body() {
        let reply = reply(&Problem::unavailable().into());
        let res = &reply.outputs[RESPONSE];
        assert_eq!(res["statusCode"], 503);
        assert_eq!(res["headers"]["Content-Type"], "application/problem+json");
        assert_eq!(res["headers"]["Retry-After"], "5");
        let body: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["status"], 503);
    }
}
