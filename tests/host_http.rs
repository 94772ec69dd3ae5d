//! The stand-in host's HTTP triggers held to the real host's behaviour, in both of its modes: routes and route
//! prefix, methods, keys, forwarding (`customHandler.enableForwardingHttpRequest`) and the invocation payload with
//! the response made of the reply. The worker is a script the host starts, with a server in the test answering for
//! it ([`support::fake_worker`]), so the tests need nothing of the product.
//!
//! Each expectation names, in a `Host:` comment, where the real host does it (paths in
//! github.com/Azure/azure-functions-host; the module docs of `tests/support/http_*.rs` hold the longer account).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::app::FunctionApp;
use support::fake_worker::{FakeWorker, Reply, Seen, json_reply, with_script_worker};
use support::http_front::{absolute_path, rebuilt_query};
use support::http_payload::answer_from_reply;
use support::http_route::Route;
use support::{AppDir, Host, Phase};

/// An HTTP function with the route the brief's examples use.
fn items(auth_level: &str) -> Value {
    json!([
        { "type": "httpTrigger", "direction": "in", "name": "req", "authLevel": auth_level,
          "methods": ["get", "post"], "route": "items/{id?}/{sub?}" },
        { "type": "http", "direction": "out", "name": "res" }
    ])
}

fn app(forwarding: bool) -> AppDir {
    with_script_worker(AppDir::new())
        .with_forwarding(forwarding)
        .with_function("Items", items("function"))
        .with_function(
            "Secret",
            json!([
                { "type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "admin", "route": "secret" },
                { "type": "http", "direction": "out", "name": "res" }
            ]),
        )
        .with_function(
            "Open",
            json!([
                { "type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous",
                  "route": "numbers/{n:int}" },
                { "type": "http", "direction": "out", "name": "res" }
            ]),
        )
}

/// Starts the host on `app` with a worker answering every invocation with `reply`.
async fn start(app: AppDir, reply: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> (Host, FakeWorker) {
    let root = app.root();
    let host = Host::launch(app, &[]);
    let worker = FakeWorker::start(host.port(), root, reply).await;
    assert_eq!(host.wait_until_ready().await, Phase::Ready, "{}", host.diagnosis());
    (host, worker)
}

fn forwarded_reply(_: &Seen) -> Reply {
    (
        201,
        vec![
            ("x-reply".to_owned(), "yes".to_owned()),
            ("content-type".to_owned(), "text/csv".to_owned()),
        ],
        b"a,b\n1,2\n".to_vec(),
    )
}

fn payload_reply(res: Value) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |_| json_reply(&json!({ "Outputs": { "res": res.clone() }, "Logs": ["answered"], "ReturnValue": null }))
}

// Host: src/WebJobs.Script/Workers/Http/DefaultHttpWorkerService.cs, `ProcessHttpInAndOutInvocationRequest`,
// `GetPathValue` (the request's own path) and `AddHeaders`; src/WebJobs.Script/Extensions/HttpRequestExtensions.cs,
// `ToHttpRequestMessage` (query rebuilt by `QueryHelpers.AddQueryString` from the parsed query; headers copied;
// content headers only with a body). The response is the worker's, whatever it is (`HttpBinding.SetResponse`).
#[tokio::test]
async fn forwarded_requests_reach_the_worker_as_they_came_and_its_response_comes_back_unchanged() {
    let (host, worker) = start(app(true), forwarded_reply).await;
    let key = host.function_key("Items");
    let answer = host
        .http_with(
            "POST",
            &format!("/api/items/c1?code={key}&x=1&x=2&q=a%20b"),
            &[
                ("X-Custom", "one"),
                ("Content-Type", "text/plain"),
                ("User-Agent", "tester/1"),
            ],
            "hello",
        )
        .await;
    assert_eq!(answer.status, 201);
    assert_eq!(answer.header("x-reply"), Some("yes"));
    assert_eq!(answer.header("content-type"), Some("text/csv"));
    assert_eq!(answer.text(), "a,b\n1,2\n");

    let seen = worker.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(
        seen.path_and_query,
        format!("/api/items/c1?code={key}&x=1%2C2&q=a%20b"),
        "the path with its prefix; the query rebuilt, values joined and encoded"
    );
    assert_eq!(seen.header("x-custom"), Some("one"));
    assert_eq!(seen.header("content-type"), Some("text/plain"));
    assert_eq!(seen.header("content-length"), Some("5"));
    assert_eq!(seen.body, b"hello");
    assert_eq!(
        seen.header("user-agent"),
        Some(format!("tester/1 Azure-Functions-Host/{}", support::envelope::HOST_VERSION).as_str())
    );
    assert_eq!(
        seen.header("x-azure-functions-hostversion"),
        Some(support::envelope::HOST_VERSION)
    );
    assert_eq!(seen.header_values("x-azure-functions-invocationid").len(), 1);
}

// Host: src/WebJobs.Script/Workers/Http/DefaultHttpWorkerService.cs, `ProcessHttpInAndOutInvocationRequest` (no
// `EnsureSuccessStatusCode`: the worker's status is the caller's); `CreateHttpClient` (`AllowAutoRedirect` off).
#[tokio::test]
async fn forwarding_passes_error_statuses_and_redirects_through() {
    let (host, _worker) = start(app(true), |seen: &Seen| {
        if seen.path_and_query.starts_with("/api/numbers/1") {
            (302, vec![("location".to_owned(), "/elsewhere".to_owned())], Vec::new())
        } else {
            (503, vec![("retry-after".to_owned(), "7".to_owned())], b"busy".to_vec())
        }
    })
    .await;
    let busy = host.http("GET", "/api/numbers/2").await;
    assert_eq!(
        (busy.status, busy.header("retry-after"), busy.text().as_str()),
        (503, Some("7"), "busy")
    );
    let moved = host.http("GET", "/api/numbers/1").await;
    assert_eq!((moved.status, moved.header("location")), (302, Some("/elsewhere")));
}

// Host: src/WebJobs.Script/Extensions/HttpRequestExtensions.cs, `ToHttpRequestMessage` (a body only with a
// `Content-Length` above 0, but `Transfer-Encoding` copied) and .NET's `SocketsHttpHandler.ValidateAndNormalizeRequest`
// ("chunked not allowed with empty content"): a chunked request never reaches the worker.
#[tokio::test]
async fn a_chunked_request_fails_when_forwarded() {
    let (host, worker) = start(app(true), forwarded_reply).await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(b"he".to_vec()), Ok(b"llo".to_vec())];
    let response = reqwest::Client::new()
        .post(host.http_url("/api/numbers/3"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    assert!(worker.seen().is_empty());
}

// Host: src/WebJobs.Script/Workers/Http/DefaultHttpWorkerService.cs, `ProcessDefaultInvocationRequest` (`POST
// /{function}`), src/WebJobs.Script/Workers/MessageExtensions/ScriptInvocationContextExtensions.cs,
// `ToHttpScriptInvocationContext`, and src/WebJobs.Script/Extensions/HttpRequestExtensions.cs, `GetRequestAsJObject`
// (Query values as strings joined by `,`, Headers as arrays, Body only with a Content-Length);
// src/WebJobs.Script.WebHost/Middleware/FunctionInvocationMiddleware.cs, `PopulateRouteData` (a missing optional
// parameter is `null`); src/WebJobs.Script.WebHost/Security/Authentication/Keys/AuthenticationLevelHandler.cs,
// `HandleAuthenticateAsync` (the key's identity).
#[tokio::test]
async fn without_forwarding_the_worker_gets_the_request_in_the_hosts_payload() {
    let (host, worker) = start(app(false), payload_reply(json!({ "statusCode": 200, "body": "ok" }))).await;
    let key = host.function_key("Items");
    assert_eq!(
        host.http_with(
            "GET",
            &format!("/api/items/c1?code={key}&x=1&X=2"),
            &[("X-Custom", "one")],
            ""
        )
        .await
        .status,
        200
    );
    let seen = worker.last();
    assert_eq!((seen.method.as_str(), seen.path_and_query.as_str()), ("POST", "/Items"));
    let envelope = seen.json();
    let req = &envelope["Data"]["req"];
    assert_eq!(
        req["Url"],
        format!("{}/api/items/c1?code={key}&x=1&X=2", host.http_url(""))
    );
    assert_eq!(req["Method"], "GET");
    assert_eq!(req["Query"], json!({ "code": key, "x": "1,2" }));
    assert_eq!(req["Headers"]["x-custom"], json!(["one"]));
    assert!(req["Headers"]["Host"].is_array());
    assert_eq!(req["Params"], json!({ "id": "c1", "sub": null }));
    assert_eq!(req["Identities"][0]["AuthenticationType"], "WebJobsAuthLevel");
    assert_eq!(req["Identities"][0]["Claims"][0]["Value"], "Function");
    assert!(req.get("Body").is_none(), "no body without a Content-Length");
    assert_eq!(envelope["Metadata"]["sys"]["MethodName"], "Items");
    assert_eq!(envelope["Metadata"]["id"], "c1");
    assert_eq!(host.function_log(), [("Items".to_owned(), "answered".to_owned())]);

    host.http_with(
        "POST",
        &format!("/api/items?code={key}"),
        &[("Content-Type", "application/json")],
        r#"{"a":1}"#,
    )
    .await;
    let req = &worker.last().json()["Data"]["req"];
    assert_eq!(req["Body"], r#"{"a":1}"#, "the body as a string");
    assert_eq!(req["Params"], json!({ "id": null, "sub": null }));
    assert_eq!(req["Url"].as_str().map(|u| u.contains("code=")), Some(true));
}

// Host: src/WebJobs.Script/Workers/Http/HttpScriptInvocationResultExtensions.cs, `GetHttpOutputBindingResponse`,
// then src/WebJobs.Script/Binding/Http/HttpBinding.cs, `CreateResult`/`TryParseStatusCode`, and
// src/WebJobs.Script/Binding/Http/RawScriptResult.cs, `ExecuteResultAsync` (content type `text/plain` unless a
// `content-type` header, `charset=utf-8` added by `StringOutputFormatter`; an object body written indented).
#[tokio::test]
async fn without_forwarding_the_response_is_made_of_the_replys_http_output() {
    let res = json!({ "statusCode": "201", "body": { "a": 1 }, "headers": { "X-Reply": "yes", "Content-Type": "application/json" } });
    let (host, _worker) = start(app(false), payload_reply(res)).await;
    let answer = host.http("GET", "/api/numbers/3").await;
    assert_eq!(answer.status, 201);
    assert_eq!(answer.header("x-reply"), Some("yes"));
    assert_eq!(answer.header("content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(answer.text(), "{\n  \"a\": 1\n}");
}

// Host: src/WebJobs.Script/Workers/Http/DefaultHttpWorkerService.cs, `ProcessDefaultInvocationRequest`
// (`EnsureSuccessStatusCode`) and `HttpScriptInvocationResultExtensions.GetHttpOutputBindingResponse` (an output
// that does not read as an object throws): both fail the invocation, which the host answers 500.
#[tokio::test]
async fn without_forwarding_a_failed_invocation_is_a_500() {
    let (host, _worker) = start(app(false), |seen: &Seen| {
        if seen.path_and_query == "/Open" && seen.json()["Data"]["req"]["Params"]["n"] == "1" {
            (503, vec![], b"{}".to_vec())
        } else {
            json_reply(&json!({ "Outputs": { "res": "not an object" } }))
        }
    })
    .await;
    for path in ["/api/numbers/1", "/api/numbers/2"] {
        let answer = host.http("GET", path).await;
        assert_eq!((answer.status, answer.body.len()), (500, 0), "{path}");
    }
}

// Host: Microsoft.Azure.WebJobs.Extensions.Http's routes (`extensions.http.routePrefix`, default `api`, empty for
// none; the trigger's `route` or the function's name; `methods` an `HttpMethodRouteConstraint`, so another method
// is a 404 like an unknown path; inline constraints as ASP.NET's).
#[tokio::test]
async fn routes_follow_the_prefix_the_template_and_the_methods() {
    let (host, worker) = start(
        app(false).with_route_prefix("v1"),
        payload_reply(json!({ "body": "ok" })),
    )
    .await;
    let key = host.master_key();
    assert_eq!(host.http("GET", &format!("/v1/items/a/b?code={key}")).await.status, 200);
    assert_eq!(
        worker.last().json()["Data"]["req"]["Params"],
        json!({ "id": "a", "sub": "b" })
    );
    assert_eq!(host.http("GET", &format!("/api/items/a?code={key}")).await.status, 404);
    assert_eq!(
        host.http("GET", &format!("/v1/items/a/b/c?code={key}")).await.status,
        404
    );
    assert_eq!(
        host.http("DELETE", &format!("/v1/items/a?code={key}")).await.status,
        404,
        "methods: 404, not 405"
    );
    assert_eq!(host.http("GET", "/v1/numbers/x").await.status, 404, "{{n:int}}");
    assert_eq!(
        host.http("GET", "/V1/NUMBERS/7/").await.status,
        200,
        "literals in any case, a trailing slash"
    );
    drop((host, worker));

    let (host, _worker) = start(app(false).with_route_prefix(""), payload_reply(json!({ "body": "ok" }))).await;
    assert_eq!(host.http("GET", "/numbers/7").await.status, 200);
    assert_eq!(host.http("GET", "/api/numbers/7").await.status, 404);
}

// Host: src/WebJobs.Script.WebHost/Security/Authentication/Keys/AuthenticationLevelHandler.cs,
// `GetAuthorizationKeyInfoAsync` (the header before `code`), and FunctionInvocationMiddleware `GetResultAsync`
// (`UnauthorizedResult` before the function runs).
#[tokio::test]
async fn keys_are_checked_before_the_worker_sees_anything() {
    let (host, worker) = start(app(true), forwarded_reply).await;
    let own = host.function_key("Items");
    let other = host.function_key("Secret");
    let status = |path: String, headers: Vec<(&'static str, String)>| {
        let host = &host;
        async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            host.http_with("GET", &path, &headers, "").await.status
        }
    };
    assert_eq!(status("/api/items".into(), vec![]).await, 401, "no key");
    assert_eq!(status("/api/items?code=wrong".into(), vec![]).await, 401, "a wrong key");
    assert_eq!(
        status(format!("/api/items?code={other}"), vec![]).await,
        401,
        "another function's key"
    );
    assert_eq!(
        status(
            format!("/api/items?code={own}"),
            vec![("x-functions-key", "wrong".into())]
        )
        .await,
        401,
        "the header wins over code"
    );
    assert!(worker.seen().is_empty(), "nothing refused reached the worker");
    assert_eq!(status(format!("/api/items?code={own}"), vec![]).await, 201);
    assert_eq!(
        status("/api/items".into(), vec![("x-functions-key", own.clone())]).await,
        201
    );
    assert_eq!(
        status(format!("/api/items?code={}", host.host_key()), vec![]).await,
        201
    );
    assert_eq!(
        status(format!("/api/secret?code={own}"), vec![]).await,
        401,
        "admin needs the master key"
    );
    assert_eq!(
        status(format!("/api/secret?code={}", host.host_key()), vec![]).await,
        401
    );
    assert_eq!(
        status(format!("/api/secret?code={}", host.master_key()), vec![]).await,
        201
    );
    assert_eq!(status("/api/numbers/1".into(), vec![]).await, 201, "anonymous");
    assert!(
        worker.seen()[0].path_and_query.contains(&format!("code={own}")),
        "code reaches the worker"
    );

    host.set_key_checks(false);
    assert_eq!(
        status("/api/secret".into(), vec![]).await,
        201,
        "Core Tools checks no keys"
    );
    let log = host.http_log().join("\n");
    assert!(
        log.contains("/api/items") && !log.contains(&own) && !log.contains(host.master_key()),
        "{log}"
    );
}

// Host: src/WebJobs.Script/Workers/Http/DefaultHttpWorkerService.cs, `InvokeAsync`: only functions that are
// `IsHttpInAndOutFunction` are forwarded; every other one, HTTP-triggered with another output or not HTTP at all,
// keeps the invocation payload.
#[tokio::test]
async fn forwarding_leaves_every_other_function_on_the_payload() {
    let app = app(true).with_function("Mixed", json!([
        { "type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous" },
        { "type": "http", "direction": "out", "name": "res" },
        { "type": "queue", "direction": "out", "name": "jobs", "queueName": "mixed-jobs", "connection": "AzureWebJobsStorage" }
    ]));
    let (host, worker) = start(app, payload_reply(json!({ "statusCode": 202, "body": "queued" }))).await;
    let answer = host.http("GET", "/api/Mixed").await;
    assert_eq!((answer.status, answer.text().as_str()), (202, "queued"));
    assert_eq!(worker.last().path_and_query, "/Mixed");
    let event = host.invoke_event_text("RecordingEvent", r#"{"id":"1"}"#).await;
    assert!(event.succeeded(), "{event:?}");
    assert_eq!(worker.last().path_and_query, "/RecordingEvent");
    assert_eq!(worker.last().json()["Data"]["eventGridEvent"]["id"], "1");
}

fn function(bindings: Value) -> support::app::FunctionInfo {
    let app = with_script_worker(AppDir::new()).with_function("F", bindings);
    FunctionApp::load(&app.root()).function("F").clone()
}

// Host: HttpScriptInvocationResultExtensions `GetHttpOutputBindingResponse` (an `ExpandoObject` that always has
// `StatusCode`, so `status` is never read; a missing output is an empty object, written `{}`; no `Outputs` binds
// nothing: `OkResult`), HttpBinding `TryParseStatusCode` (a number or a string that parses), RawScriptResult
// (values' .NET `ToString()`, a null header fails, `$return` objects are `ExpandoObject`s).
#[test]
fn replies_are_made_into_responses_as_the_host_makes_them() {
    let f = function(items("anonymous"));
    let answer = |reply: Value| answer_from_reply(&f, &reply.to_string());
    let ok = answer(json!({ "Outputs": { "res": { "statusCode": 204, "body": "" } } })).unwrap();
    assert_eq!(
        (ok.status, ok.header("content-type")),
        (204, Some("text/plain; charset=utf-8"))
    );
    assert_eq!(
        answer(json!({ "Outputs": { "res": { "statusCode": 201.0, "body": 5 } } }))
            .unwrap()
            .status,
        201
    );
    assert_eq!(
        answer(json!({ "Outputs": { "res": { "statusCode": "nope" } } }))
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        answer(json!({ "Outputs": { "res": { "status": 201, "body": "x" } } }))
            .unwrap()
            .status,
        200,
        "status is never read"
    );
    assert_eq!(
        answer(json!({ "Outputs": { "res": { "body": true } } }))
            .unwrap()
            .text(),
        "True"
    );
    assert_eq!(
        answer(json!({ "Outputs": { "res": "{\"statusCode\":418}" } }))
            .unwrap()
            .status,
        418,
        "an object as a JSON string"
    );
    assert_eq!(answer(json!({ "Outputs": {} })).unwrap().text(), "{}");
    let nothing = answer(json!({ "Logs": [] })).unwrap();
    assert_eq!(
        (nothing.status, nothing.header("content-type"), nothing.body.len()),
        (200, None, 0)
    );
    assert!(answer(json!({ "Outputs": { "res": null } })).is_err());
    assert!(answer(json!({ "Outputs": { "res": [1] } })).is_err());
    assert!(answer(json!({ "Outputs": { "res": { "body": "x", "headers": { "X-A": null } } } })).is_err());
    assert!(
        answer(json!({ "Outputs": { "res": { "body": "x", "headers": { "X-A": ["a", "b"] } } } })).is_err(),
        "Kestrel refuses a multi-line value"
    );
    let charset = answer(json!({ "Outputs": { "res": { "body": "x", "headers": { "content-type": "text/html; charset=latin1", "x-a": 1, "X-A": 2 } } } })).unwrap();
    assert_eq!(charset.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        charset
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("x-a"))
            .count(),
        1,
        "a name set once"
    );

    let r = function(json!([
        { "type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous" },
        { "type": "http", "direction": "out", "name": "$return" }
    ]));
    let answer = |reply: Value| answer_from_reply(&r, &reply.to_string()).unwrap();
    let returned = answer(json!({ "ReturnValue": { "status": "202", "body": { "a": [1] } } }));
    assert_eq!((returned.status, returned.text().as_str()), (202, r#"{"a":[1]}"#));
    assert_eq!(
        answer(json!({ "ReturnValue": { "a": 1 } })).text(),
        r#"{"a":1}"#,
        "no body: the object is the body"
    );
    assert_eq!(answer(json!({ "ReturnValue": "plain" })).text(), "plain");
}

// Host: ASP.NET route templates (Microsoft.AspNetCore.Routing), as the HTTP extension registers each function's.
#[test]
fn route_templates_match_as_aspnet_matches_them() {
    let f = function(items("anonymous"));
    let route = Route::of(&f, "api");
    assert_eq!(route.template, "api/items/{id?}/{sub?}");
    let values = |method, path| route.matches(method, path).map(|m| m.values);
    assert_eq!(
        values("GET", "/api/items/a%20b"),
        Some(vec![
            ("id".to_owned(), Some("a b".to_owned())),
            ("sub".to_owned(), None)
        ])
    );
    assert_eq!(
        values("post", "/API/Items"),
        Some(vec![("id".to_owned(), None), ("sub".to_owned(), None)])
    );
    assert_eq!(values("PUT", "/api/items"), None);
    assert_eq!(values("GET", "/api/items/a/b/c"), None);
    assert_eq!(values("GET", "/api/itemsx"), None);
    let named = function(json!([{ "type": "httpTrigger", "direction": "in", "name": "req", "route": "" }]));
    assert_eq!(Route::of(&named, "").template, "F", "no route: the function's name");
    let constrained = function(json!([{ "type": "httpTrigger", "direction": "in", "name": "req",
        "route": "r/{id:guid}/{n:range(1,5)?}/{*rest}" }]));
    let route = Route::of(&constrained, "api");
    assert!(
        route
            .matches("GET", "/api/r/6f9619ff-8b86-d011-b42d-00c04fc964ff/3/x/y")
            .is_some()
    );
    assert!(route.matches("GET", "/api/r/not-a-guid").is_none());
    assert!(
        route
            .matches("GET", "/api/r/6f9619ff8b86d011b42d00c04fc964ff/9")
            .is_none()
    );
}

// Host: src/WebJobs.Script/Extensions/HttpRequestExtensions.cs, `ToHttpRequestMessage` (`QueryHelpers.AddQueryString`
// with `UrlEncoder.Default`) and `GetRequestUri().AbsolutePath` as `GetPathValue` takes it.
#[test]
fn forwarded_paths_and_queries_are_respelled_as_dotnet_respells_them() {
    assert_eq!(absolute_path("/api/a%41b/%2F/%7e"), "/api/aAb/%2F/~");
    assert_eq!(absolute_path("/api/a%20b/ä"), "/api/a%20b/%C3%A4");
    let query = vec![
        ("code".to_owned(), vec!["k/1=".to_owned()]),
        ("x".to_owned(), vec!["1".to_owned(), "a b".to_owned()]),
    ];
    assert_eq!(rebuilt_query(&query), "?code=k%2F1%3D&x=1%2Ca%20b");
    assert_eq!(rebuilt_query(&[]), "");
}
