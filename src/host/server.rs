//! The HTTP face the Functions host talks to: readiness on `GET /`, each function's invocations on `POST /{name}`.
//!
//! A thin adapter: it reads the (chunked) body within a size limit, hands it to the function within the function's
//! time budget, and maps the outcome to the host's reply. 2xx tells the host the input is handled; any other status
//! fails the invocation so that its trigger delivers it again — used only when a retry can help, and decided here
//! alone, from the error.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use tokio::net::TcpListener;
use tracing::{Instrument, debug_span, error, warn};
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use super::invocation::InvocationReply;
use crate::error::error_chain;
use crate::functions::{Function, FunctionError};

/// The largest invocation body accepted. Event Grid caps an event at 1 MB; the host's envelope carries the event
/// and a copy of its `data`, possibly string-escaped, so this leaves room for about four times that. Queue
/// messages are at most 64 KiB.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// What the worker says when the host polls `GET /`: any answer means ready. `workerId` echoes the id the host
/// gave this process (`FUNCTIONS_CUSTOMHANDLER_WORKER_ID`), so that whoever polls can tell this process from
/// another one answering on the same port.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    pub worker_id: Option<String>,
}

/// Serves the routes on `listener` until `shutdown` completes, then finishes in-flight invocations and returns.
pub async fn serve(
    listener: TcpListener,
    functions: Vec<Arc<dyn Function>>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    warp::serve(routes(functions, readiness))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

/// Binds the loopback interface only: the host always dials 127.0.0.1, and nothing else may reach the handler.
pub async fn bind_loopback(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// Every route: readiness, one `POST /{name}` per function, and one JSON reply for anything else.
pub fn routes(
    functions: Vec<Arc<dyn Function>>,
    readiness: Readiness,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let ready_body = serde_json::json!({"status": "ready", "workerId": readiness.worker_id});
    let ready = warp::path::end()
        .and(warp::get())
        .map(move || warp::reply::json(&ready_body).into_response());
    let names: Arc<[&'static str]> = functions.iter().map(|f| f.name()).collect();
    let functions: Arc<[Arc<dyn Function>]> = functions.into();
    let invoke = warp::path::param::<String>()
        .and(warp::path::end())
        .and(warp::post())
        .and(warp::header::optional::<String>("x-azure-functions-invocationid"))
        .and(warp::body::stream())
        .and_then(move |name: String, invocation_id: Option<String>, body| {
            let function = functions.iter().find(|f| f.name() == name).cloned();
            async move {
                let Some(function) = function else {
                    return Err(warp::reject::not_found());
                };
                let invocation_id = invocation_id.unwrap_or_default();
                // At `debug` only: a span costs its fields' formatting on every invocation, and the lines logged
                // at the default level (warnings and errors) name the function and invocation themselves.
                let span = debug_span!(
                    "invocation",
                    function = function.name(),
                    invocation_id = invocation_id.as_str(),
                    event_id = tracing::field::Empty,
                    recording_id = tracing::field::Empty,
                    chunk_id = tracing::field::Empty,
                );
                Ok(invoke(function.as_ref(), &invocation_id, body).instrument(span).await)
            }
        });
    ready
        .or(invoke)
        .unify()
        .recover(move |rejection| recover(rejection, names.clone()))
        .unify()
}

async fn invoke(
    function: &dyn Function,
    invocation_id: &str,
    body: impl Stream<Item = Result<impl Buf, warp::Error>>,
) -> Response {
    let name = function.name();
    let body = match read_limited(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            error!(
                function = name,
                invocation_id,
                limit = MAX_BODY_BYTES,
                "invocation body is larger than the limit; refused, so the trigger retries and then gives it up"
            );
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "refused: the invocation body is too large",
            );
        }
        Err(BodyError::Read(e)) => {
            warn!(function = name, invocation_id, error = %e, "could not read the invocation body");
            return reply(StatusCode::BAD_REQUEST, "failed: the invocation body could not be read");
        }
    };
    let budget = function.budget();
    let outcome = tokio::time::timeout(budget, function.invoke(&body))
        .await
        .unwrap_or(Err(FunctionError::TimedOut(budget)));
    match outcome {
        Ok(reply) => warp::reply::json(&reply).into_response(),
        Err(e) => {
            let cause = error_chain(&e);
            if e.needs_operator() {
                error!(
                    function = name,
                    invocation_id,
                    error = %cause,
                    "invocation failed and needs an operator; its trigger will retry it"
                );
            } else {
                error!(function = name, invocation_id, error = %cause, "invocation failed; its trigger will retry it");
            }
            reply(StatusCode::SERVICE_UNAVAILABLE, "failed: retry later")
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
async fn recover(rejection: warp::Rejection, names: Arc<[&'static str]>) -> Result<Response, Infallible> {
    let status = if rejection.is_not_found() {
        StatusCode::NOT_FOUND
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        StatusCode::METHOD_NOT_ALLOWED
    } else {
        StatusCode::BAD_REQUEST
    };
    let routes: Vec<String> = names.iter().map(|name| format!("POST /{name}")).collect();
    Ok(reply(
        status,
        format!("no such function: this handler serves {}", routes.join(", ")),
    ))
}
