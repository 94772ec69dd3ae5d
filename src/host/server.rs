//! The HTTP face the Functions host talks to: readiness on `GET /`, each function's invocations on `POST /{name}`,
//! and the HTTP functions' requests as the host forwards them (`/api/recordings/…`, see [`crate::api`]; `/api/status`,
//! see [`crate::health`]).
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
use crate::api::request::query_pairs;
use crate::api::{ApiResponse, Problem, ROUTE_PREFIX, RecordingsApi};
use crate::error::error_chain;
use crate::functions::recordings::{ERASE_BUDGET, LIST_BUDGET, in_time};
use crate::functions::{Function, FunctionError, status};
use crate::health::Health;

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
    forwarded: Forwarded,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    warp::serve(routes(functions, forwarded, readiness))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

/// Binds the loopback interface only: the host always dials 127.0.0.1, and nothing else may reach the handler.
pub async fn bind_loopback(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// What answers the HTTP functions' requests when the host forwards them.
#[derive(Clone)]
pub struct Forwarded {
    /// `Recordings` and `EraseRecordings`.
    pub api: RecordingsApi,
    /// `Status`.
    pub health: Health,
}

/// Every route: readiness, one `POST /{name}` per function, the forwarded HTTP requests, and one JSON reply for
/// anything else.
pub fn routes(
    functions: Vec<Arc<dyn Function>>,
    forwarded: Forwarded,
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
        .or(forwarded_api(forwarded.api))
        .unify()
        .or(forwarded_status(forwarded.health))
        .unify()
        .recover(move |rejection| recover(rejection, names.clone()))
        .unify()
}

/// The recordings API's requests as the host forwards them (`enableForwardingHttpRequest`): the caller's method,
/// path with the route prefix, and query. The host routes without regard to case, so `/API/Recordings/…` arrives as
/// the caller spelled it and is served the same, problems included. The host has checked the function key already;
/// the query's `code` is never read or logged here.
fn forwarded_api(
    api: RecordingsApi,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    warp::path::full()
        .and_then(|path: warp::path::FullPath| async move {
            recordings_route(path.as_str()).ok_or_else(warp::reject::not_found)
        })
        .and(warp::method())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("x-azure-functions-invocationid"))
        .then(
            move |segments: Vec<String>, method: warp::http::Method, query: String, invocation_id: Option<String>| {
                let api = api.clone();
                async move {
                    let response = match (segments, method) {
                        (segments, _) if segments.len() > 2 => {
                            Problem::not_found("the API serves recordings/{callId}/{recordingId} and no deeper").into()
                        }
                        (segments, warp::http::Method::GET) => {
                            let query = query_pairs(&query);
                            let run = api.get(
                                segments.first().map(String::as_str),
                                segments.get(1).map(String::as_str),
                                &query,
                            );
                            in_time(LIST_BUDGET, run).await
                        }
                        (segments, warp::http::Method::DELETE) => {
                            let run = api.erase(
                                segments.first().map(String::as_str),
                                segments.get(1).map(String::as_str),
                                invocation_id.as_deref().unwrap_or_default(),
                            );
                            in_time(ERASE_BUDGET, run).await
                        }
                        (_, _) => Problem {
                            status: 405,
                            detail: "recordings are read with GET and erased with DELETE".to_owned(),
                        }
                        .into(),
                    };
                    http_response(response)
                }
            },
        )
}

/// `GET /api/status` as the host forwards it (the route prefix and `status` in any case): the health summary.
fn forwarded_status(
    health: Health,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    warp::path::full()
        .and_then(|path: warp::path::FullPath| async move {
            is_status_route(path.as_str())
                .then_some(())
                .ok_or_else(warp::reject::not_found)
        })
        .untuple_one()
        .and(warp::method())
        .then(move |method: warp::http::Method| {
            let health = health.clone();
            async move {
                let response = if method == warp::http::Method::GET {
                    status::answer(&health).await
                } else {
                    Problem {
                        status: 405,
                        detail: "the health summary is read with GET".to_owned(),
                    }
                    .into()
                };
                http_response(response)
            }
        })
}

/// Whether `path` is `/api/status` (the prefix and the route in any case, a trailing slash allowed).
fn is_status_route(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').filter(|segment| !segment.is_empty()).collect();
    matches!(segments.as_slice(), [prefix, route]
        if prefix.eq_ignore_ascii_case(ROUTE_PREFIX) && route.eq_ignore_ascii_case(status::ROUTE))
}

/// The decoded segments after `/api/recordings` in `path` (as sent, percent-encoded), empty ones left out: the route
/// prefix and `recordings` in any case, as the host matches routes; `None` for any other path.
fn recordings_route(path: &str) -> Option<Vec<String>> {
    let mut segments = path.trim_start_matches('/').split('/');
    let prefix = segments.next()?.eq_ignore_ascii_case(ROUTE_PREFIX);
    let recordings = segments.next()?.eq_ignore_ascii_case("recordings");
    (prefix && recordings).then(|| {
        segments
            .filter(|segment| !segment.is_empty())
            .map(|segment| {
                percent_encoding::percent_decode_str(segment)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect()
    })
}

fn http_response(response: ApiResponse) -> Response {
    let headers = response.headers();
    let mut http = Response::new(response.body.into());
    *http.status_mut() = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let Ok(value) = warp::http::HeaderValue::from_str(&value) {
            http.headers_mut().insert(name, value);
        }
    }
    http
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
    let outcome = tokio::time::timeout(budget, function.invoke(&body, invocation_id))
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
