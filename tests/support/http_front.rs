//! The stand-in host's public HTTP endpoint: a loopback server that routes each request to an HTTP-triggered
//! function, checks its key, and either forwards the request to the worker as it came
//! (`customHandler.enableForwardingHttpRequest`) or posts the worker an invocation payload and makes the response of
//! its reply ([`super::http_payload`]). Callers use a plain HTTP client against [`HttpFront::url`].
//!
//! Host, in the order a request meets it:
//! - routing: [`super::http_route`] (unknown path or method: 404, empty);
//! - keys: src/WebJobs.Script.WebHost/Security/Authentication/Keys/AuthenticationLevelHandler.cs,
//!   `GetAuthorizationKeyInfoAsync`: the `x-functions-key` header, when present, else the `code` query parameter;
//!   the master key is `Admin`, a host key or the function's own key `Function`; `authLevel` (default `function`)
//!   is the least level a request needs, else 401 with no body
//!   (src/WebJobs.Script.WebHost/Middleware/FunctionInvocationMiddleware.cs, `GetResultAsync`, `UnauthorizedResult`).
//!   The key stays in the request the worker sees. `HandleAuthenticateAsync` gives a keyed request one identity,
//!   `WebJobsAuthLevel`, with the level and key name as claims;
//! - forwarding: src/WebJobs.Script/Workers/Http/DefaultHttpWorkerService.cs, `InvokeAsync` (only functions whose
//!   only input is an `httpTrigger` and only output an `http`, `FunctionMetadataExtensions.IsHttpInAndOutFunction`;
//!   every other function keeps the payload), `ProcessHttpInAndOutInvocationRequest`, `GetPathValue` (the request's
//!   path, prefix included) and `AddHeaders` (`X-Azure-Functions-HostVersion`, `X-Azure-Functions-InvocationId`,
//!   and `Azure-Functions-Host/{version}` added to `User-Agent`); src/WebJobs.Script/Extensions/HttpRequestExtensions.cs,
//!   `ToHttpRequestMessage`: the query rebuilt from the parsed query (`QueryHelpers.AddQueryString`: each name once,
//!   values joined by `,`, both URL-encoded), every header copied except content headers (which .NET's request
//!   headers refuse), and a body only when `Content-Length` is above 0 — so a chunked request, whose
//!   `Transfer-Encoding: chunked` is copied without content, fails in .NET's `SocketsHttpHandler`
//!   (`ValidateAndNormalizeRequest`: "chunked not allowed with empty content"): 500. The worker's response comes
//!   back whatever its status, with its headers (a lone `Transfer-Encoding: chunked` left to the server) and body
//!   (`HttpBinding.SetResponse` with ASP.NET Core's `HttpResponseMessageOutputFormatter`);
//! - payload mode: a failed invocation (a non-2xx reply, a reply that does not read, a timeout) is a 500 with no
//!   body;
//! - logging: each request is logged by method and path only — never its query string, so never a `code` — like
//!   the host's `SystemTraceMiddleware` (which logs the URI's absolute path).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::{Request, Response};
use serde_json::{Value, json};

use super::acs::serve::{Answer, Background, full};
use super::envelope::{HOST_VERSION, uuid_like};
use super::http_payload;
use super::http_route::{Route, decode};
use super::invoker::{Exchange, Invoker};

/// The master key: `Admin` level for every function.
pub const MASTER_KEY: &str = "test-master-key-000000000000000000000000";
/// The host key `default`: `Function` level for every function.
pub const HOST_KEY: &str = "test-host-key-0000000000000000000000000000";

/// A function's own key `default`.
pub fn function_key(function: &str) -> String {
    format!("test-function-key-{}", function.to_ascii_lowercase())
}

/// An HTTP response as the caller received it.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpAnswer {
    pub status: u16,
    /// In the order they came, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// A response with no content, as `OkResult`, `UnauthorizedResult` or `NotFoundResult` write it.
    pub fn empty(status: u16) -> HttpAnswer {
        HttpAnswer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The first value of a header, by name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A request as the front door received it.
#[derive(Debug, Clone)]
pub struct FrontRequest {
    pub method: String,
    /// As sent, percent-encoded.
    pub path: String,
    /// As sent, without `?`.
    pub query: Option<String>,
    /// In order, names in lower case (hyper's).
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
}

impl FrontRequest {
    fn from_hyper(request: &Request<Bytes>) -> FrontRequest {
        FrontRequest {
            method: request.method().as_str().to_owned(),
            path: request.uri().path().to_owned(),
            query: request.uri().query().map(str::to_owned),
            headers: request
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
            body: request.body().clone(),
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// `Url`: scheme, the `Host` header, path and query string as sent.
    pub fn url(&self) -> String {
        let query = self.query.as_ref().map(|q| format!("?{q}")).unwrap_or_default();
        format!("http://{}{}{query}", self.header("host").unwrap_or_default(), self.path)
    }

    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|n| n.trim().parse().ok())
    }

    /// `Utility.IsMediaTypeOctetOrMultipart`.
    pub fn is_octet_or_multipart(&self) -> bool {
        let media = self.header("content-type").unwrap_or_default();
        let media = media.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        media == "application/octet-stream" || media.contains("multipart/")
    }

    /// ASP.NET Core's query collection: names in any case grouped under their first spelling, `+` and `%XX`
    /// decoded, in order.
    pub fn query_collection(&self) -> Vec<(String, Vec<String>)> {
        let mut collection: Vec<(String, Vec<String>)> = Vec::new();
        for pair in self
            .query
            .as_deref()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (name, value) = (form_decode(name), form_decode(value));
            if name.is_empty() {
                continue;
            }
            match collection.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                Some((_, values)) => values.push(value),
                None => collection.push((name, vec![value])),
            }
        }
        collection
    }

    /// The request headers as Kestrel holds them: each name once (well-known names in their usual spelling),
    /// with all its values.
    pub fn header_collection(&self) -> Vec<(String, Vec<String>)> {
        let mut collection: Vec<(String, Vec<String>)> = Vec::new();
        for (name, value) in &self.headers {
            let value = String::from_utf8_lossy(value).into_owned();
            match collection.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some((_, values)) => values.push(value),
                None => collection.push((canonical_header(name), vec![value])),
            }
        }
        collection
    }
}

fn form_decode(text: &str) -> String {
    decode(&text.replace('+', " ").replace("%2F", "/").replace("%2f", "/"))
}

/// Kestrel's spelling of the headers it knows; any other name as it came.
fn canonical_header(name: &str) -> String {
    const KNOWN: &[&str] = &[
        "Accept",
        "Accept-Charset",
        "Accept-Encoding",
        "Accept-Language",
        "Authorization",
        "Cache-Control",
        "Connection",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Location",
        "Content-MD5",
        "Content-Range",
        "Content-Type",
        "Cookie",
        "Date",
        "Expect",
        "From",
        "Host",
        "If-Match",
        "If-Modified-Since",
        "If-None-Match",
        "If-Range",
        "If-Unmodified-Since",
        "Keep-Alive",
        "Max-Forwards",
        "Origin",
        "Pragma",
        "Proxy-Authorization",
        "Range",
        "Referer",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "User-Agent",
        "Via",
        "Warning",
        "traceparent",
        "tracestate",
        "baggage",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_owned(), |k| (*k).to_owned())
}

/// A request's authorization level, from its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuthLevel {
    Anonymous,
    Function,
    Admin,
}

/// The identity the host gives a request: none for an anonymous one (ASP.NET Core's empty identity), else the key's.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub level: AuthLevel,
    pub key_name: Option<&'static str>,
}

impl Identity {
    /// `Identities` as `HttpRequestExtensions.GetUserIdentitiesAsJArray` writes the `ClaimsIdentity`s.
    pub fn to_json(&self) -> Value {
        let claim = |kind: &str, value: &str| {
            json!({
                "Issuer": "LOCAL AUTHORITY",
                "OriginalIssuer": "LOCAL AUTHORITY",
                "Properties": {},
                "Type": kind,
                "Value": value,
                "ValueType": "http://www.w3.org/2001/XMLSchema#string",
            })
        };
        let (authentication_type, claims) = match self.level {
            AuthLevel::Anonymous => (Value::Null, Vec::new()),
            level => {
                let mut claims = vec![claim(
                    "http://schemas.microsoft.com/2017/07/functions/claims/authlevel",
                    &format!("{level:?}"),
                )];
                if let Some(name) = self.key_name {
                    claims.push(claim(
                        "http://schemas.microsoft.com/2017/07/functions/claims/keyid",
                        name,
                    ));
                }
                (json!("WebJobsAuthLevel"), claims)
            }
        };
        json!([{
            "AuthenticationType": authentication_type,
            "IsAuthenticated": self.level != AuthLevel::Anonymous,
            "Actor": null,
            "BootstrapContext": null,
            "Claims": claims,
            "Label": null,
            "Name": null,
            "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
            "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
        }])
    }
}

/// What the front door shares between requests.
struct Front {
    invoker: Invoker,
    routes: Vec<Route>,
    check_keys: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
}

/// The running front door. Dropping it stops the server (and its runtime) before its port is released.
pub struct HttpFront {
    server: Background,
    log: Arc<Mutex<Vec<String>>>,
}

impl HttpFront {
    /// Starts the front door for the app the invoker serves.
    pub fn start(invoker: &Invoker, check_keys: Arc<AtomicBool>) -> HttpFront {
        let app = &invoker.app;
        let log = Arc::new(Mutex::new(Vec::new()));
        let front = Arc::new(Front {
            invoker: invoker.for_another_runtime(),
            routes: Route::all(app.functions.values().cloned(), &app.http.route_prefix),
            check_keys,
            log: log.clone(),
        });
        let server = Background::start("http-front", move |request: Request<Bytes>, _hangup| {
            let front = front.clone();
            async move { Ok::<_, std::io::Error>(front.answer(FrontRequest::from_hyper(&request)).await.into_hyper()) }
        });
        HttpFront { server, log }
    }

    pub fn port(&self) -> u16 {
        self.server.port.0
    }

    /// `http://127.0.0.1:{port}{path_and_query}`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{path_and_query}", self.port())
    }

    /// Sends a request as any client would (a body with `Content-Length`, none when empty), waiting at most
    /// `deadline` for the whole answer.
    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        deadline: Duration,
    ) -> Result<HttpAnswer, String> {
        let url = self.url(path_and_query);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = client.request(method.clone(), &url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if !body.is_empty() {
            request = request.body(body);
        }
        let exchange = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = response.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(HttpAnswer { status, headers, body })
        };
        match tokio::time::timeout(deadline, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(format!("{method} {url}: {e}")),
            Err(_) => Err(format!("{method} {url} was not answered within {deadline:?}")),
        }
    }

    /// The front door's log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl HttpAnswer {
    fn into_hyper(self) -> Response<super::acs::serve::Body> {
        let mut response = Response::new(full(Bytes::from(self.body)));
        *response.status_mut() =
            hyper::StatusCode::from_u16(self.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                hyper::header::HeaderName::from_bytes(name.as_bytes()),
                hyper::header::HeaderValue::from_str(&value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

impl Front {
    async fn answer(&self, request: FrontRequest) -> HttpAnswer {
        let request_id = uuid_like();
        self.log(format!(
            "Executing HTTP request: {{ requestId: {request_id}, method: {}, uri: {} }}",
            request.method, request.path
        ));
        let answer = self.route(&request).await;
        self.log(format!(
            "Executed HTTP request: {{ requestId: {request_id}, status: {} }}",
            answer.status
        ));
        answer
    }

    fn log(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }

    async fn route(&self, request: &FrontRequest) -> HttpAnswer {
        let Some(matched) = self
            .routes
            .iter()
            .find_map(|r| r.matches(&request.method, &request.path))
        else {
            return HttpAnswer::empty(404);
        };
        let function = self.invoker.app.function(&matched.function).clone();
        let identity = self.identity(request, &function.name);
        let required = function
            .http_trigger()
            .and_then(|t| t.property("authLevel"))
            .unwrap_or("function")
            .to_ascii_lowercase();
        let allowed = match required.as_str() {
            "anonymous" => true,
            "function" => identity.level >= AuthLevel::Function,
            "admin" | "system" => identity.level >= AuthLevel::Admin,
            _ => false,
        };
        if !allowed && self.check_keys.load(Ordering::SeqCst) {
            return HttpAnswer::empty(401);
        }
        if self.invoker.app.http.forwarding && function.is_http_in_and_out() {
            return self.forward(request).await;
        }
        let body = http_payload::request_envelope(&function, request, &matched.values, &identity);
        let invocation = self.invoker.post_to(&function.name, body).await;
        if !invocation.succeeded() {
            self.log(format!(
                "Executed '{}' (Failed): {:?}",
                function.name, invocation.verdict
            ));
            return HttpAnswer::empty(500);
        }
        http_payload::answer_from_reply(&function, &invocation.body).unwrap_or_else(|why| {
            self.log(format!("Executed '{}' (Failed): {why}", function.name));
            HttpAnswer::empty(500)
        })
    }

    /// The level and key name of the key the request carries.
    fn identity(&self, request: &FrontRequest, function: &str) -> Identity {
        let key = match request.header("x-functions-key") {
            Some(key) => Some(key),
            None => request
                .query_collection()
                .into_iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("code"))
                .and_then(|(_, values)| values.into_iter().next()),
        };
        match key.as_deref() {
            Some(MASTER_KEY) => Identity {
                level: AuthLevel::Admin,
                key_name: Some("master"),
            },
            Some(key) if key == HOST_KEY || key == function_key(function) => Identity {
                level: AuthLevel::Function,
                key_name: Some("default"),
            },
            _ => Identity {
                level: AuthLevel::Anonymous,
                key_name: None,
            },
        }
    }

    /// `ProcessHttpInAndOutInvocationRequest`: the request to the worker, its response back as it came.
    async fn forward(&self, request: &FrontRequest) -> HttpAnswer {
        if self.invoker.wait_until_ready().await != super::host::Phase::Ready {
            return HttpAnswer::empty(500);
        }
        let chunked = request
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        let has_content = request.content_length().is_some_and(|n| n > 0);
        if chunked && !has_content {
            self.log("Executed (Failed): 'Transfer-Encoding: chunked' header can not be used when content object is not specified.".to_owned());
            return HttpAnswer::empty(500);
        }
        let url = self.invoker.worker_url(&format!(
            "{}{}",
            absolute_path(&request.path),
            rebuilt_query(&request.query_collection())
        ));
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut forwarded = self.invoker.client.request(method, url);
        let mut user_agent = None;
        for (name, value) in &request.headers {
            if is_content_header(name) {
                continue;
            }
            if name == "user-agent" {
                user_agent = Some(String::from_utf8_lossy(value).into_owned());
                continue;
            }
            forwarded = forwarded.header(name.as_str(), value.as_slice());
        }
        let agent = format!("Azure-Functions-Host/{HOST_VERSION}");
        forwarded = forwarded
            .header(
                "User-Agent",
                user_agent.map_or(agent.clone(), |ua| format!("{ua} {agent}")),
            )
            .header("X-Azure-Functions-HostVersion", HOST_VERSION)
            .header("X-Azure-Functions-InvocationId", uuid_like());
        if has_content {
            forwarded = forwarded.header("Content-Length", request.body.len().to_string());
            if let Some(content_type) = request.header("content-type") {
                forwarded = forwarded.header("Content-Type", content_type);
            }
            forwarded = forwarded.body(request.body.clone());
        }
        match self.invoker.exchange(forwarded).await {
            Exchange::Answered {
                status, headers, body, ..
            } => HttpAnswer {
                status,
                headers: headers
                    .into_iter()
                    .filter(|(n, v)| !(n == "transfer-encoding" && v.eq_ignore_ascii_case(b"chunked")))
                    .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
                    .collect(),
                body: body.to_vec(),
            },
            Exchange::NoAnswer(why) => {
                self.log(format!("Executed (Failed): {why}"));
                HttpAnswer::empty(500)
            }
            Exchange::TimedOut => HttpAnswer::empty(500),
        }
    }
}

/// The headers .NET keeps on content, not on the request: `TryAddWithoutValidation` on request headers refuses them.
fn is_content_header(name: &str) -> bool {
    [
        "allow",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "expires",
        "last-modified",
    ]
    .contains(&name.to_ascii_lowercase().as_str())
}

/// `new Uri(request.GetDisplayUrl()).AbsolutePath`: the path Kestrel decoded (but `%2F`), escaped again as
/// `System.Uri` escapes a path.
pub fn absolute_path(raw: &str) -> String {
    let decoded = raw.split('/').map(decode).collect::<Vec<_>>().join("/");
    let bytes = decoded.as_bytes();
    let mut escaped = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let kept_escape = b == b'%'
            && bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        if kept_escape || b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            escaped.push(b as char);
        } else {
            escaped.push_str(&format!("%{b:02X}"));
        }
        i += 1;
    }
    escaped
}

/// `QueryHelpers.AddQueryString` over the parsed query: `?name=value&…`, each name once with its values joined by
/// `,`, both encoded by `UrlEncoder.Default` (everything but letters, digits and `-._~`).
pub fn rebuilt_query(collection: &[(String, Vec<String>)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    collection
        .iter()
        .enumerate()
        .map(|(i, (name, values))| {
            format!(
                "{}{}={}",
                if i == 0 { '?' } else { '&' },
                encode(name),
                encode(&values.join(","))
            )
        })
        .collect()
}
