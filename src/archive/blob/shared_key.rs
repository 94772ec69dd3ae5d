//! Shared Key signing for Blob Storage, for archives configured with a storage connection string (local
//! development, Azurite). The official client signs only with Microsoft Entra ID or a SAS, so this policy — the last
//! the client's pipeline runs before its transport, on every try — signs each request as Blob Storage's "Authorize
//! with Shared Key" documentation describes: HMAC-SHA256, with the decoded account key, of the verb, the standard
//! headers, every `x-ms-` header and the canonicalized resource.
//!
//! The key is decoded once and kept only here; neither it nor a signature is ever logged or printed.

use std::sync::Arc;
use std::time::SystemTime;

use crate::digest::HmacKey;
use crate::secret::Secret;
use async_trait::async_trait;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, Url};

/// The standard headers the string to sign names, in its order, after the verb.
const SIGNED_HEADERS: [&str; 11] = [
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
];

/// The account key is not base64.
#[derive(Debug, thiserror::Error)]
#[error("the storage account key is not valid base64")]
pub struct InvalidKey;

/// Signs every request with the account's key. `Debug` never shows the key.
#[derive(Debug)]
pub struct SharedKeyPolicy {
    account: String,
    key: HmacKey,
}

impl SharedKeyPolicy {
    pub fn new(account: &str, key: &Secret) -> Result<Arc<Self>, InvalidKey> {
        Ok(Arc::new(Self {
            account: account.to_owned(),
            key: HmacKey::from_base64(key).ok_or(InvalidKey)?,
        }))
    }

    /// `SharedKey ACCOUNT:SIGNATURE` for a request whose headers (lower-case names) are `headers`.
    fn authorization(&self, method: &str, url: &Url, headers: &[(String, String)]) -> String {
        let text = string_to_sign(&self.account, method, url, headers);
        format!("SharedKey {}:{}", self.account, self.key.sign(&text))
    }
}

#[async_trait]
impl Policy for SharedKeyPolicy {
    async fn send(&self, ctx: &Context, request: &mut Request, next: &[Arc<dyn Policy>]) -> PolicyResult {
        // Every try is dated and signed anew: a retry after a long back-off must not carry a stale date.
        request.insert_header("x-ms-date", httpdate::fmt_http_date(SystemTime::now()));
        let mut headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_ascii_lowercase(), value.as_str().to_owned()))
            .collect();
        if !headers.iter().any(|(name, _)| name == "content-length")
            && let Some(length) = request.body().len()
        {
            // The transport sets it from the body; the signature must name it all the same.
            headers.push(("content-length".to_owned(), length.to_string()));
        }
        let method = request.method().to_string().to_ascii_uppercase();
        let authorization = self.authorization(&method, request.url(), &headers);
        request.insert_header("authorization", authorization);
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// The string Shared Key signs: the verb, the standard headers, the canonicalized `x-ms-` headers and the
/// canonicalized resource, each as the documentation defines it.
pub fn string_to_sign(account: &str, method: &str, url: &Url, headers: &[(String, String)]) -> String {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    };
    let mut text = String::from(method);
    for name in SIGNED_HEADERS {
        text.push('\n');
        let value = header(name);
        // Since version 2015-02-21, a zero Content-Length is signed as an empty string.
        if !(name == "content-length" && value == "0") {
            text.push_str(value);
        }
    }
    text.push('\n');
    let mut ms_headers: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(name, _)| name.starts_with("x-ms-"))
        .map(|(name, value)| (name.as_str(), value.trim()))
        .collect();
    ms_headers.sort();
    for (name, value) in ms_headers {
        text.push_str(name);
        text.push(':');
        text.push_str(value);
        text.push('\n');
    }
    text.push_str(&canonicalized_resource(account, url));
    text
}

/// `/ACCOUNT/PATH` (the path as sent, encoded), then each query parameter on its own line, `name:value` with the
/// name in lower case, the values decoded, sorted and joined with commas, the names sorted.
pub fn canonicalized_resource(account: &str, url: &Url) -> String {
    let mut resource = format!("/{account}{}", url.path());
    let mut parameters: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
    for (name, value) in url.query_pairs() {
        parameters
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value.into_owned());
    }
    for (name, mut values) in parameters {
        values.sort();
        resource.push('\n');
        resource.push_str(&name);
        resource.push(':');
        resource.push_str(&values.join(","));
    }
    resource
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_resource_is_canonicalized_as_in_the_documentation() {
        // The documentation's example for version 2009-09-19 and later.
        let url = Url::parse(
            "http://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=list&include=snapshots\
             &include=metadata&include=uncommittedblobs",
        )
        .unwrap();
        assert_eq!(
            canonicalized_resource("myaccount", &url),
            "/myaccount/mycontainer\ncomp:list\ninclude:metadata,snapshots,uncommittedblobs\nrestype:container"
        );
    }

    #[test]
    fn the_string_to_sign_lists_the_standard_headers_then_the_ms_headers_then_the_resource() {
        // The layout of the documentation's Get Container Metadata example.
        let url =
            Url::parse("http://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=metadata&timeout=20")
                .unwrap();
        let text = string_to_sign(
            "myaccount",
            "GET",
            &url,
            &headers(&[
                ("x-ms-version", "2009-09-19"),
                ("x-ms-date", "Sun, 11 Oct 2009 21:49:13 GMT"),
                ("content-length", "0"),
                ("user-agent", "not signed"),
            ]),
        );
        assert_eq!(
            text,
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Sun, 11 Oct 2009 21:49:13 GMT\nx-ms-version:2009-09-19\n\
             /myaccount/mycontainer\ncomp:metadata\nrestype:container\ntimeout:20"
        );
    }

    #[test]
    fn an_emulator_path_names_the_account_twice_and_encoded_names_stay_encoded() {
        let url = Url::parse(
            "http://127.0.0.1:10000/devstoreaccount1/recordings/call%251/rec/d0/content.mp4?comp=block&blockid=YWJj%2BZA%3D%3D",
        )
        .unwrap();
        let text = string_to_sign(
            "devstoreaccount1",
            "PUT",
            &url,
            &headers(&[
                ("content-length", "4194304"),
                ("content-type", "application/octet-stream"),
                ("if-none-match", "*"),
                ("x-ms-version", "2026-02-06"),
                ("x-ms-date", "Sat, 28 Nov 2026 12:00:00 GMT"),
            ]),
        );
        assert!(
            text.starts_with("PUT\n\n\n4194304\n\napplication/octet-stream\n\n\n\n*\n\n\n"),
            "{text:?}"
        );
        assert!(
            text.ends_with(
                "\n/devstoreaccount1/devstoreaccount1/recordings/call%251/rec/d0/content.mp4\nblockid:YWJj+ZA==\ncomp:block"
            ),
            "{text:?}"
        );
    }

    #[test]
    fn authorizations_match_the_official_sdks_for_every_vector() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/storage.json");
        let vectors: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let account = vectors["account"].as_str().unwrap();
        let policy = SharedKeyPolicy::new(account, &Secret::new(vectors["accountKey"].as_str().unwrap())).unwrap();
        let cases = vectors["sharedKey"].as_array().unwrap();
        assert!(!cases.is_empty());
        for case in cases {
            let url = Url::parse(case["url"].as_str().unwrap()).unwrap();
            let headers: Vec<(String, String)> = case["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pair| {
                    let name = pair[0].as_str().unwrap().to_ascii_lowercase();
                    (name, pair[1].as_str().unwrap().to_owned())
                })
                .collect();
            let method = case["method"].as_str().unwrap();
            assert_eq!(
                policy.authorization(method, &url, &headers),
                case["authorization"].as_str().unwrap(),
                "{}",
                case["name"]
            );
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_string_with_the_decoded_key() {
        let key = Secret::new(BASE64.encode(b"a key of any length"));
        let policy = SharedKeyPolicy::new("acct", &key).unwrap();
        let url = Url::parse("https://acct.blob.core.windows.net/c/b").unwrap();
        let headers = headers(&[("x-ms-date", "Sat, 28 Nov 2026 12:00:00 GMT")]);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"a key of any length").unwrap();
        mac.update(string_to_sign("acct", "HEAD", &url, &headers).as_bytes());
        assert_eq!(
            policy.authorization("HEAD", &url, &headers),
            format!("SharedKey acct:{}", BASE64.encode(mac.finalize().into_bytes()))
        );
        assert!(SharedKeyPolicy::new("acct", &Secret::new("not*base64")).is_err());
        assert!(!format!("{policy:?}").contains("key of"), "Debug never shows the key");
    }
}
