//! HTTP functions without `enableForwardingHttpRequest`: the request as the host puts it in the invocation payload,
//! and the HTTP response the host makes of the worker's reply.
//!
//! Host, the request: src/WebJobs.Script/Workers/MessageExtensions/ScriptInvocationContextExtensions.cs,
//! `ToHttpScriptInvocationContext` (the trigger's value is `HttpRequest.GetRequestAsJObject()`; binding data that is
//! the request itself, or whose key ends in "trigger", stays out of `Metadata`), and
//! src/WebJobs.Script/Extensions/HttpRequestExtensions.cs, `GetRequestAsJObject`: `Url` (scheme, host, path and the
//! query string as sent), `Method`, `Query` (each name once, in any case, its values joined by `,`), `Headers`
//! (`JObject.FromObject(request.Headers)`: each name with an *array* of its values), `Params` (the route values;
//! src/WebJobs.Script.WebHost/Middleware/FunctionInvocationMiddleware.cs, `PopulateRouteData`, adds an optional
//! parameter that was not given as `null`), `Identities` (the request's `ClaimsIdentity`s) and `Body` only when
//! `Content-Length` is above 0: a string, or base64 for `application/octet-stream` and `multipart/*`.
//!
//! Host, the reply: src/WebJobs.Script/Workers/Http/HttpScriptInvocationResultExtensions.cs, `GetOutputValue` and
//! `GetHttpOutputBindingResponse` (an `http` output other than `$return` is read into `HttpOutputBindingResponse`
//! {StatusCode (a string), Status, Body, Headers}; a value that does not read fails the invocation), then
//! src/WebJobs.Script/Binding/Http/HttpBinding.cs, `CreateResult`, `ParseResponseObject`, `TryParseStatusCode`
//! (`statusCode` first, `status` only when no `statusCode` key exists at all — so through the named output, whose
//! object always has `StatusCode`, `status` is never read) and src/WebJobs.Script/Binding/Http/RawScriptResult.cs,
//! `ExecuteResultAsync` (headers one by one, `content-type` setting the content type, a name already set dropped; a
//! body that is not a string written as its .NET `ToString()`, by ASP.NET Core's `StringOutputFormatter`, which
//! adds `charset=utf-8` and defaults to `text/plain`).
//!
//! Not modeled: the `cookies` and `enableContentNegotiation` fields of a `$return` object, base64 `$return`
//! strings (the host decodes them to bytes), `Accept-Charset`, UTF-16 bodies, JSON request bodies' properties in
//! `Metadata`, Kestrel's order of known request headers and original spelling of unknown header names (hyper hands
//! them over in lower case).

use serde_json::{Value, json};

use super::app::FunctionInfo;
use super::envelope::{Ordered, sys};
use super::http_front::{FrontRequest, HttpAnswer, Identity};

/// The body the host posts for one HTTP trigger invocation.
pub fn request_envelope(
    function: &FunctionInfo,
    request: &FrontRequest,
    params: &[(String, Option<String>)],
    identity: &Identity,
) -> Vec<u8> {
    let trigger = function.http_trigger().expect("an HTTP function has an httpTrigger");
    let query = request.query_collection();
    let query_json = object(
        query
            .iter()
            .map(|(k, values)| (k.clone(), Value::from(values.join(",")).to_string())),
    );
    let headers = request.header_collection();
    let headers_json = object(headers.iter().map(|(k, values)| (k.clone(), json!(values).to_string())));
    let params_json = object(params.iter().map(|(k, v)| (k.clone(), json!(v).to_string())));
    let mut fields = vec![
        ("Url".to_owned(), json!(request.url()).to_string()),
        ("Method".to_owned(), json!(request.method).to_string()),
        ("Query".to_owned(), query_json.clone()),
        ("Headers".to_owned(), headers_json),
        ("Params".to_owned(), params_json),
        ("Identities".to_owned(), identity.to_json().to_string()),
    ];
    if request.content_length().is_some_and(|n| n > 0) {
        let body = if request.is_octet_or_multipart() {
            use base64::Engine as _;
            Value::from(base64::engine::general_purpose::STANDARD.encode(&request.body))
        } else {
            Value::from(String::from_utf8_lossy(&request.body).into_owned())
        };
        fields.push(("Body".to_owned(), body.to_string()));
    }
    // The HTTP extension's binding data: the route values given, the query and headers as strings, and `sys`.
    let mut metadata: Vec<(String, String)> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), json!(v).to_string())))
        .collect();
    metadata.push(("Query".to_owned(), query_json));
    metadata.push((
        "Headers".to_owned(),
        object(
            headers
                .iter()
                .map(|(k, values)| (k.clone(), Value::from(values.join(",")).to_string())),
        ),
    ));
    metadata.push(("sys".to_owned(), sys(&function.name).to_string()));
    let data = object([(trigger.name.clone(), object(fields))]);
    format!(r#"{{"Data":{data},"Metadata":{}}}"#, object(metadata)).into_bytes()
}

/// A JSON object from its entries' names and JSON texts, in order.
fn object(entries: impl IntoIterator<Item = (String, String)>) -> String {
    let fields: Vec<String> = entries
        .into_iter()
        .map(|(name, value)| format!("{}:{value}", Value::from(name)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// Where a response object came from: the named `http` output (read by Json.NET into `JObject`s and `JArray`s) or
/// `$return` (read into `ExpandoObject`s and `List<object>`s), which .NET writes out differently.
#[derive(Clone, Copy, PartialEq)]
enum Source {
    Named,
    Return,
}

/// The HTTP response the host makes of a successful reply; `Err` when the host fails the request (500).
pub fn answer_from_reply(function: &FunctionInfo, reply: &str) -> Result<HttpAnswer, String> {
    let reply = Ordered::parse(reply).ok_or("the reply is not JSON")?;
    let Some(output) = function.outputs().find(|b| b.kind == "http") else {
        return Ok(HttpAnswer::empty(200));
    };
    let outputs = reply.get_ci("Outputs").filter(|o| !o.is_null());
    if output.name == "$return" {
        let value = reply
            .get_ci("ReturnValue")
            .filter(|v| !v.is_null())
            .or_else(|| outputs.and_then(|o| o.get("$return")));
        return match value {
            None => Ok(HttpAnswer::empty(200)),
            Some(Ordered::String(text)) => match Ordered::parse(text) {
                Some(parsed) => result_of(&parsed, Source::Return),
                None => raw_result(200, Some(&Ordered::String(text.clone())), None, Source::Return),
            },
            Some(value) => result_of(value, Source::Return),
        };
    }
    // No `Outputs` at all: nothing is bound, and the host answers `OkResult`.
    let Some(outputs) = outputs else {
        return Ok(HttpAnswer::empty(200));
    };
    // The binding's value missing from `Outputs`: an empty `ExpandoObject`, written as `{}`.
    let Some(value) = outputs.get(&output.name) else {
        return text_answer(200, None, "{}".to_owned());
    };
    let text = match value {
        Ordered::String(s) => s.clone(),
        Ordered::Null => return Err("the http output is null".to_owned()),
        Ordered::Bool(b) => dotnet_bool(*b).to_owned(),
        other => other.to_json(),
    };
    let response = Ordered::parse(&text)
        .filter(|r| matches!(r, Ordered::Object(_)))
        .ok_or("Failed while trying to Deserialize to httpOutputBindingResponse. Output is not in expected format")?;
    let status_code = match response.get_ci("statusCode") {
        None | Some(Ordered::Null) => None,
        Some(Ordered::String(s)) => Some(s.clone()),
        Some(Ordered::Number(n)) => Some(dotnet_number(n)),
        Some(Ordered::Bool(b)) => Some(dotnet_bool(*b).to_owned()),
        Some(_) => return Err("statusCode does not read as a string".to_owned()),
    };
    let headers = match response.get_ci("headers") {
        None | Some(Ordered::Null) => None,
        Some(headers @ Ordered::Object(_)) => Some(headers),
        Some(_) => return Err("headers do not read as a dictionary".to_owned()),
    };
    let status = status_code.and_then(|s| s.trim().parse::<i32>().ok()).unwrap_or(200);
    let body = response.get_ci("body").filter(|b| !b.is_null());
    raw_result(status, body, headers, Source::Named)
}

/// `HttpBinding.CreateResult` for a value that is not a string: a response object when it is an object with a
/// `body`, otherwise the value itself as the body.
fn result_of(content: &Ordered, source: Source) -> Result<HttpAnswer, String> {
    let Ordered::Object(_) = content else {
        return raw_result(200, Some(content), None, source);
    };
    let Some(body) = expando_get(content, "body") else {
        // The object itself is the body, written as compact JSON (`Utility.ToJson(expando, Formatting.None)`).
        return text_answer(200, None, content.to_json());
    };
    let status_value = expando_get(content, "statusCode").or_else(|| expando_get(content, "status"));
    let status = match status_value {
        Some(Ordered::Number(n)) => n.as_i64().and_then(|n| i32::try_from(n).ok()).unwrap_or(200),
        Some(Ordered::String(s)) => s.trim().parse::<i32>().unwrap_or(200),
        _ => 200,
    };
    let headers = expando_get(content, "headers").filter(|h| matches!(h, Ordered::Object(_)));
    raw_result(status, Some(body).filter(|b| !b.is_null()), headers, source)
}

/// `IDictionaryExtensions.TryGetValue(…, ignoreCase: true)`: the exact key, else the first in any case.
fn expando_get<'a>(object: &'a Ordered, key: &str) -> Option<&'a Ordered> {
    let Ordered::Object(entries) = object else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| k == key)
        .or_else(|| entries.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
        .map(|(_, v)| v)
}

/// `RawScriptResult.ExecuteResultAsync`.
fn raw_result(
    status: i32,
    body: Option<&Ordered>,
    headers: Option<&Ordered>,
    source: Source,
) -> Result<HttpAnswer, String> {
    let mut content_type = None;
    let mut set: Vec<(String, String)> = Vec::new();
    if let Some(Ordered::Object(entries)) = headers {
        for (name, value) in entries {
            let text = match value {
                Ordered::Null => return Err(format!("header {name} is null")),
                value => dotnet_to_string(value, source),
            };
            if name.eq_ignore_ascii_case("content-type") {
                content_type = Some(text);
            } else if !set.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                set.push((name.clone(), text));
            }
        }
    }
    let body = match (body, source) {
        // `RawScriptResult.WriteResponseBodyAsync` writes an `ExpandoObject` as compact JSON.
        (Some(object @ Ordered::Object(_)), Source::Return) => object.to_json(),
        (Some(body), _) => dotnet_to_string(body, source),
        (None, _) => String::new(),
    };
    text_answer(status, Some((content_type.unwrap_or_default(), set)), body)
}

/// A body written by `StringOutputFormatter`: the content type given (`text/plain` when none) with
/// `charset=utf-8`; Kestrel refuses header values with control or non-ASCII characters (a 500).
fn text_answer(
    status: i32,
    typed: Option<(String, Vec<(String, String)>)>,
    body: String,
) -> Result<HttpAnswer, String> {
    let (content_type, mut headers) = typed.unwrap_or_default();
    let status = u16::try_from(status)
        .ok()
        .filter(|s| (100..=999).contains(s))
        .ok_or(format!("status {status} is not an HTTP status"))?;
    let media = if content_type.is_empty() {
        "text/plain".to_owned()
    } else {
        content_type
    };
    headers.push(("Content-Type".to_owned(), with_utf8_charset(&media)));
    for (name, value) in &headers {
        let valid = value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
            && !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if !valid {
            return Err(format!("Kestrel refuses the header {name}: {value:?}"));
        }
    }
    Ok(HttpAnswer {
        status,
        headers,
        body: body.into_bytes(),
    })
}

/// `MediaType.ReplaceEncoding` with UTF-8: the charset parameter set, or appended.
fn with_utf8_charset(media: &str) -> String {
    let parts: Vec<&str> = media.split(';').collect();
    if parts
        .iter()
        .skip(1)
        .any(|p| p.trim().to_ascii_lowercase().starts_with("charset="))
    {
        parts
            .iter()
            .map(|p| {
                if p.trim().to_ascii_lowercase().starts_with("charset=") {
                    " charset=utf-8"
                } else {
                    p
                }
            })
            .collect::<Vec<_>>()
            .join(";")
    } else {
        format!("{media}; charset=utf-8")
    }
}

/// `object.ToString()` of the value .NET holds for this JSON.
fn dotnet_to_string(value: &Ordered, source: Source) -> String {
    match (value, source) {
        (Ordered::Null, _) => String::new(),
        (Ordered::String(s), _) => s.clone(),
        (Ordered::Bool(b), _) => dotnet_bool(*b).to_owned(),
        (Ordered::Number(n), _) => dotnet_number(n),
        (Ordered::Object(_) | Ordered::Array(_), Source::Named) => value.to_indented(),
        (Ordered::Object(_), Source::Return) => "System.Dynamic.ExpandoObject".to_owned(),
        (Ordered::Array(_), Source::Return) => "System.Collections.Generic.List`1[System.Object]".to_owned(),
    }
}

fn dotnet_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// A JSON number as .NET writes the `long` or `double` Json.NET reads it into (`201.0` is `201`).
fn dotnet_number(n: &serde_json::Number) -> String {
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => i.to_string(),
        (None, Some(u), _) => u.to_string(),
        (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        _ => n.to_string(),
    }
}
