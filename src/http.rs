//! The HTTP face the Functions host talks to: readiness on `GET /`, invocations on `POST /RecordingEvent`.
//!
//! A thin adapter: it reads the (chunked) body within a size limit, hands it to the [`Pipeline`] within a time
//! budget, and maps the outcome to the host's reply. 2xx tells the host the event is handled; any other status fails
//! the invocation so that Event Grid delivers it again — used only when a retry can help.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use tokio::net::TcpListener;
use tracing::{Instrument, error, info_span, warn};
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use crate::invocation::InvocationReply;
use crate::pipeline::Pipeline;
use crate::store::StoreError;

/// The function's name: its folder, and the path the host posts to (exact case, no `/api` prefix).
pub const FUNCTION_NAME: &str = "RecordingEvent";

/// Limits of one invocation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest body accepted. Event Grid caps an event at 1 MB; the host's envelope carries the event and a copy
    /// of its `data`, possibly string-escaped, so the default leaves room for about four times that.
    pub max_body_bytes: usize,
    /// The time allowed for the store. Event Grid waits 30 s for an answer; answering well before lets the
    /// host report the failure and Event Grid schedule the retry, instead of timing out.
    pub store_budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            store_budget: Duration::from_secs(20),
        }
    }
}

/// Serves the routes on `listener` until `shutdown` completes, then finishes in-flight invocations and returns.
pub async fn serve(
    listener: TcpListener,
    pipeline: Pipeline,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    warp::serve(routes(pipeline, limits))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

/// Binds the loopback interface only: the host always dials 127.0.0.1, and nothing else may reach the handler.
pub async fn bind_loopback(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await
}

pub fn routes(
    pipeline: Pipeline,
    limits: Limits,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let ready = warp::path::end()
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ready"})).into_response());
    let invoke = warp::path(FUNCTION_NAME)
        .and(warp::path::end())
        .and(warp::post())
        .and(warp::header::optional::<String>("x-azure-functions-invocationid"))
        .and(warp::body::stream())
        .then(move |invocation_id: Option<String>, body| {
            let pipeline = pipeline.clone();
            let span = info_span!(
                "invocation",
                invocation_id = invocation_id.as_deref().unwrap_or("-"),
                event_id = tracing::field::Empty,
                recording_id = tracing::field::Empty,
            );
            async move { invoke(&pipeline, limits, body).await }.instrument(span)
        });
    ready.or(invoke).unify().recover(recover).unify()
}

async fn invoke(
    pipeline: &Pipeline,
    limits: Limits,
    body: impl Stream<Item = Result<impl Buf, warp::Error>>,
) -> Response {
    let body = match read_limited(body, limits.max_body_bytes).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            error!(
                limit = limits.max_body_bytes,
                "invocation body is larger than the limit; refused, so Event Grid retries and then dead-letters it"
            );
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "refused: the invocation body is too large",
            );
        }
        Err(BodyError::Read(e)) => {
            warn!(error = %e, "could not read the invocation body");
            return reply(StatusCode::BAD_REQUEST, "failed: the invocation body could not be read");
        }
    };
    let outcome = tokio::time::timeout(limits.store_budget, pipeline.process_invocation(&body))
        .await
        .unwrap_or(Err(StoreError::TimedOut(limits.store_budget)));
    match outcome {
        Ok(outcome) => reply(StatusCode::OK, outcome.to_string()),
        Err(e) => {
            let cause = error_chain(&e);
            if e.needs_operator() {
                error!(error = %cause, "the store needs attention; the event is not kept and Event Grid will retry");
            } else {
                error!(error = %cause, "the store failed; the event is not kept and Event Grid will retry");
            }
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "failed: the recording store is unavailable; retry later",
            )
        }
    }
}

#[derive(Debug)]
enum BodyError {
    TooLarge,
    Read(warp::Error),
}

/// Collects a body of unknown length (the host sends it chunked, without Content-Length) up to `limit` bytes.
async fn read_limited(
    body: impl Stream<Item = Result<impl Buf, warp::Error>>,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(BodyError::Read)?;
        if bytes.len() + chunk.remaining() > limit {
            return Err(BodyError::TooLarge);
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            bytes.extend_from_slice(part);
            let read = part.len();
            chunk.advance(read);
        }
    }
    Ok(bytes)
}

fn reply(status: StatusCode, log: impl Into<String>) -> Response {
    warp::reply::with_status(warp::reply::json(&InvocationReply::with_log(log)), status).into_response()
}

/// Turns every rejection into a JSON reply; the host only ever calls the routes above.
async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    let status = if rejection.is_not_found() {
        StatusCode::NOT_FOUND
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        StatusCode::METHOD_NOT_ALLOWED
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(reply(
        status,
        format!("no such function: this handler serves POST /{FUNCTION_NAME}"),
    ))
}

/// An error and all its causes, for one log line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
