//! The Cosmos DB account's own properties, read once at startup. The SDK reads them too but keeps them to itself,
//! and the handler must know one of them: whether the account takes writes in several regions.
//!
//! With multi-region writes, `If-Match` and create conflicts hold only within one write region: two instances
//! writing one recording through different regions can each succeed, and Cosmos DB then keeps one write and drops
//! the other (last writer wins). The merge loop's guarantee — no chunk lost — does not hold there.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::Error;
use crate::secret::Secret;
use crate::store::StoreError;

/// The REST API version the request speaks.
const API_VERSION: &str = "2020-07-15";
/// The Microsoft Entra ID scope of Cosmos DB's data plane, the one the SDK asks for.
const TOKEN_SCOPE: &str = "https://cosmos.azure.com/.default";

/// How the handler signs the one request it makes itself.
pub(super) enum Signer {
    /// The account key (`type=master`).
    Key(Secret),
    /// A Microsoft Entra ID token for the account (`type=aad`).
    Token(Arc<dyn TokenCredential>),
}

/// What the handler needs to know of the account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountProperties {
    #[serde(default)]
    pub writable_locations: Vec<Location>,
    #[serde(default)]
    pub enable_multiple_write_locations: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Location {
    #[serde(default)]
    pub name: String,
}

impl AccountProperties {
    /// The write regions when the account can take writes in more than one, `None` when writes go to one region.
    /// An account with multi-region writes switched on counts even with one region today: a second can be added
    /// while the handler runs.
    pub fn multi_region_writes(&self) -> Option<Vec<String>> {
        let regions: Vec<String> = self.writable_locations.iter().map(|l| l.name.clone()).collect();
        (self.enable_multiple_write_locations || regions.len() > 1).then_some(regions)
    }
}

/// Reads the account's properties (`GET /` on the account endpoint).
pub(super) async fn read(endpoint: &str, signer: &Signer) -> Result<AccountProperties, StoreError> {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let authorization = match signer {
        Signer::Key(key) => master_key_authorization(key, "get", "", "", &date)?,
        Signer::Token(credential) => {
            let token = credential
                .get_token(&[TOKEN_SCOPE], None)
                .await
                .map_err(|e| Error::Credential(e.to_string()))?;
            encode(&format!("type=aad&ver=1.0&sig={}", token.token.secret()))
        }
    };
    let response = reqwest::Client::new()
        .get(endpoint)
        .header("authorization", authorization)
        .header("x-ms-date", &date)
        .header("x-ms-version", API_VERSION)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(Error::AccountUnreachable)?;
    let status = response.status().as_u16();
    if !response.status().is_success() {
        return Err(Error::AccountRefused { status }.into());
    }
    let body = response.bytes().await.map_err(Error::AccountUnreachable)?;
    serde_json::from_slice(&body).map_err(|source| StoreError::Invalid {
        what: format!("the Cosmos DB account description at {endpoint}"),
        source,
    })
}

/// `type=master&ver=1.0&sig=…`, URL-encoded: the signature Cosmos DB's REST API documents for key authentication.
fn master_key_authorization(
    key: &Secret,
    verb: &str,
    resource_type: &str,
    resource_link: &str,
    date: &str,
) -> Result<String, StoreError> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(key.expose())
        .map_err(|_| Error::Credential("the account key is not valid base64".to_owned()))?;
    let text = format!(
        "{}\n{}\n{}\n{}\n\n",
        verb.to_ascii_lowercase(),
        resource_type.to_ascii_lowercase(),
        resource_link,
        date.to_ascii_lowercase()
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|_| Error::Credential("the account key cannot sign".to_owned()))?;
    mac.update(text.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    Ok(encode(&format!("type=master&ver=1.0&sig={signature}")))
}

/// Form-URL-encodes an authorization value, as the SDK does.
fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties(json: &str) -> AccountProperties {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn one_write_region_is_not_multi_region() {
        let single = properties(
            r#"{"id":"contoso","writableLocations":[{"name":"West Europe","databaseAccountEndpoint":"https://x/"}],
                "readableLocations":[{"name":"West Europe"},{"name":"North Europe"}],"enableMultipleWriteLocations":false}"#,
        );
        assert_eq!(single.multi_region_writes(), None);
    }

    #[test]
    fn several_write_regions_or_the_switch_count_as_multi_region() {
        let two = properties(
            r#"{"writableLocations":[{"name":"West Europe"},{"name":"North Europe"}],"enableMultipleWriteLocations":true}"#,
        );
        assert_eq!(
            two.multi_region_writes(),
            Some(vec!["West Europe".to_owned(), "North Europe".to_owned()])
        );
        let switched_on =
            properties(r#"{"writableLocations":[{"name":"West Europe"}],"enableMultipleWriteLocations":true}"#);
        assert!(switched_on.multi_region_writes().is_some());
    }

    #[test]
    fn master_key_signature_matches_the_documented_example() {
        // The example of Cosmos DB's "Access control" REST documentation: GET of a database's collections.
        let key =
            Secret::new("dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxLzR4y+O/0H/t4bQtVNw==");
        let authorization =
            master_key_authorization(&key, "GET", "dbs", "dbs/ToDoList", "Thu, 27 Apr 2017 00:51:12 GMT").unwrap();
        assert_eq!(
            authorization,
            "type%3Dmaster%26ver%3D1.0%26sig%3Dc09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu%2Bc%2Bc%3D"
        );
    }
}
