//! ACS's request authentication, written from ACS's rule (and checked against the official SDK's signatures) rather
//! than taken from the product, so that the two can check each other: HMAC-SHA256 over the method, the path and
//! query, the date, the ACS endpoint host and the body's hash; or an Entra ID bearer token.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use hyper::{Request, Uri};
use sha2::{Digest, Sha256};

use super::AcsOptions;

/// The `x-ms-content-sha256` of an empty body, which every GET and DELETE carries.
pub const EMPTY_BODY_SHA256: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
/// The only `SignedHeaders` ACS's SDKs send. `host` stands for the ACS endpoint host, not the storage host.
pub const SIGNED_HEADERS: &str = "x-ms-date;host;x-ms-content-sha256";
/// How far `x-ms-date` may be from the server's clock.
pub const DATE_TOLERANCE: Duration = Duration::from_secs(15 * 60);

/// Why a request was refused with 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the request has no {0} header")]
    Missing(&'static str),
    #[error("the request has more than one {0} header")]
    Repeated(&'static str),
    #[error("the Authorization header is neither HMAC-SHA256 nor Bearer")]
    UnknownScheme,
    #[error("the Authorization header signs {0:?}, not {SIGNED_HEADERS}")]
    SignedHeaders(String),
    #[error("x-ms-host is {0:?}, not the resource's endpoint host")]
    WrongHost(String),
    #[error("x-ms-content-sha256 is not the SHA-256 of the body")]
    ContentHash,
    #[error("x-ms-date {0:?} is not an RFC 1123 date")]
    UnreadableDate(String),
    #[error("x-ms-date is {0} s away from the server's clock, more than 15 minutes")]
    StaleDate(u64),
    #[error("the signature does not match")]
    Signature,
    #[error("the bearer token is not the resource's")]
    WrongToken,
    #[error("this resource does not accept bearer tokens")]
    BearerNotAccepted,
}

/// What ACS signs: `METHOD\npath?query\ndate;acs host;content hash`.
pub fn string_to_sign(method: &str, path_and_query: &str, date: &str, acs_host: &str, content_sha256: &str) -> String {
    format!("{method}\n{path_and_query}\n{date};{acs_host};{content_sha256}")
}

/// The base64 HMAC-SHA256 of `string_to_sign`, keyed with the decoded `access_key`; panics on a key that is not
/// base64 ([`super::AcsServer::start`] checks its key up front).
pub fn expected_signature(access_key: &str, string_to_sign: &str) -> String {
    let key = BASE64.decode(access_key).expect("the access key is base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes a key of any length");
    mac.update(string_to_sign.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// The `x-ms-content-sha256` of a body: base64 of its SHA-256.
pub fn content_sha256(body: &[u8]) -> String {
    BASE64.encode(Sha256::digest(body))
}

/// The headers ACS's SDKs send with a request to `url` signed with `options`' key at `date`, for tests that sign
/// their own requests.
pub fn hmac_headers(
    options: &AcsOptions,
    method: &str,
    url: &str,
    body: &[u8],
    date: SystemTime,
) -> Vec<(&'static str, String)> {
    let uri: Uri = url.parse().expect("a URL");
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let date = httpdate::fmt_http_date(date);
    let hash = content_sha256(body);
    let signature = expected_signature(
        &options.access_key,
        &string_to_sign(method, path_and_query, &date, &options.acs_host, &hash),
    );
    vec![
        ("x-ms-date", date),
        ("x-ms-content-sha256", hash),
        ("x-ms-host", options.acs_host.clone()),
        (
            "authorization",
            format!("HMAC-SHA256 SignedHeaders={SIGNED_HEADERS}&Signature={signature}"),
        ),
    ]
}

/// Whether ACS would accept this request at `now`: a bearer token equal to the configured one, or an HMAC
/// signature over the right host, body hash and a date within [`DATE_TOLERANCE`] of `now`. Pure: tests of fixed
/// vectors pass the vector's own date as `now`.
pub fn verify(options: &AcsOptions, request: &Request<Bytes>, now: SystemTime) -> Result<(), AuthError> {
    let header = |name: &'static str| {
        let mut values = request.headers().get_all(name).iter();
        match (values.next(), values.next()) {
            (_, Some(_)) => Err(AuthError::Repeated(name)),
            (value, None) => value.and_then(|v| v.to_str().ok()).ok_or(AuthError::Missing(name)),
        }
    };
    let authorization = header("authorization")?;
    if let Some(token) = authorization.strip_prefix("Bearer ") {
        return match &options.bearer_token {
            Some(expected) if expected == token => Ok(()),
            Some(_) => Err(AuthError::WrongToken),
            None => Err(AuthError::BearerNotAccepted),
        };
    }
    let (signed_headers, signature) = authorization
        .strip_prefix("HMAC-SHA256 SignedHeaders=")
        .and_then(|rest| rest.split_once("&Signature="))
        .ok_or(AuthError::UnknownScheme)?;
    if signed_headers != SIGNED_HEADERS {
        return Err(AuthError::SignedHeaders(signed_headers.to_owned()));
    }
    let host = header("x-ms-host")?;
    if host != options.acs_host {
        return Err(AuthError::WrongHost(host.to_owned()));
    }
    let hash = header("x-ms-content-sha256")?;
    if hash != content_sha256(request.body()) {
        return Err(AuthError::ContentHash);
    }
    let date = header("x-ms-date")?;
    let at = httpdate::parse_http_date(date)
        .ok()
        // httpdate also reads the obsolete RFC 850 and asctime forms; ACS's SDKs send only RFC 1123.
        .filter(|at| httpdate::fmt_http_date(*at) == date)
        .ok_or_else(|| AuthError::UnreadableDate(date.to_owned()))?;
    let skew = now.duration_since(at).unwrap_or_else(|e| e.duration());
    if skew > DATE_TOLERANCE {
        return Err(AuthError::StaleDate(skew.as_secs()));
    }
    let path_and_query = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let expected = expected_signature(
        &options.access_key,
        &string_to_sign(request.method().as_str(), path_and_query, date, host, hash),
    );
    if signature != expected {
        return Err(AuthError::Signature);
    }
    Ok(())
}
