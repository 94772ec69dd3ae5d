//! Shared access signatures that let anyone holding a link read one archived blob, and nothing else, for a short
//! time: a service SAS signed with the account key (a Shared Key connection), or a user delegation SAS signed with a
//! user delegation key (Microsoft Entra ID: the key is asked of Blob Storage with the app's token and lasts at most
//! seven days). Both are computed exactly as the official SDKs compute them — the string to sign of Azure Storage's
//! "Create a service SAS" and "Create a user delegation SAS" for versions 2020-12-06 and later — and the tests hold
//! them to tokens the official Python SDK (azure-storage-blob 12.31.1) made for fixed inputs
//! (`tests/fixtures/storage.json`).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;

use crate::digest::HmacKey;

/// The service version links are signed for: the official SDK's own.
pub const SAS_VERSION: &str = "2026-10-06";

/// One blob, readable until `expiry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadGrant<'a> {
    pub container: &'a str,
    /// The blob's name as stored (the archive's names are already encoded: `call-1/rec%3A1/d0/content.mp4`).
    pub blob: &'a str,
    pub start: OffsetDateTime,
    pub expiry: OffsetDateTime,
    /// `spr=https`; only links to a loopback test endpoint allow plain `http` too.
    pub https_only: bool,
    /// `rscd`: the `Content-Disposition` the download gets (an attachment's file name).
    pub content_disposition: Option<&'a str>,
    /// `rsct`: the `Content-Type` the download gets.
    pub content_type: Option<&'a str>,
    /// `sv`.
    pub version: &'a str,
}

/// A user delegation key, as Get User Delegation Key returns it: who it was issued to, for how long, and the key.
#[derive(Debug, Clone)]
pub struct UserDelegationKey {
    pub signed_oid: String,
    pub signed_tid: String,
    pub signed_start: String,
    pub signed_expiry: String,
    pub signed_service: String,
    pub signed_version: String,
    pub value: HmacKey,
    /// When it stops signing: no link it signs may outlive it.
    pub expires_on: OffsetDateTime,
}

impl UserDelegationKey {
    /// The key from Blob Storage's answer; `None` when a field is missing.
    pub fn issued(key: azure_storage_common::models::UserDelegationKey) -> Option<Self> {
        let expires_on = key.signed_expiry?;
        Some(Self {
            signed_oid: key.signed_oid?,
            signed_tid: key.signed_tid?,
            signed_start: sas_time(key.signed_start?),
            signed_expiry: sas_time(expires_on),
            signed_service: key.signed_service?,
            signed_version: key.signed_version?,
            value: HmacKey::from_bytes(&key.value?)?,
            expires_on,
        })
    }
}

/// What signs a link.
#[derive(Debug, Clone, Copy)]
pub enum SasSigner<'a> {
    /// A service SAS: the account's key.
    AccountKey { account: &'a str, key: &'a HmacKey },
    /// A user delegation SAS: a key Blob Storage issued to the app's identity.
    UserDelegation {
        account: &'a str,
        key: &'a UserDelegationKey,
    },
}

/// A time as a SAS spells it: UTC, to the second.
fn sas_time(time: OffsetDateTime) -> String {
    let utc = time
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(time);
    utc.format(&Rfc3339).unwrap_or_default()
}

/// A query value as the SDKs encode it: every byte but letters, digits, `-._~` and `/` as `%XX`.
fn encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The SAS token (the query string, without `?`) that grants `grant`, signed by `signer`. The parameters come in
/// the order the official Python SDK writes them.
pub fn blob_sas(grant: &ReadGrant<'_>, signer: SasSigner<'_>) -> String {
    let (start, expiry) = (sas_time(grant.start), sas_time(grant.expiry));
    let protocol = if grant.https_only { "https" } else { "https,http" };
    let account = match signer {
        SasSigner::AccountKey { account, .. } | SasSigner::UserDelegation { account, .. } => account,
    };
    let resource = format!("/blob/{account}/{}/{}", grant.container, grant.blob);
    let mut lines: Vec<&str> = vec!["r", &start, &expiry, &resource];
    let mut query: Vec<(&str, &str)> = vec![
        ("st", &start),
        ("se", &expiry),
        ("sp", "r"),
        ("spr", protocol),
        ("sv", grant.version),
        ("sr", "b"),
    ];
    if let Some(disposition) = grant.content_disposition {
        query.push(("rscd", disposition));
    }
    if let Some(content_type) = grant.content_type {
        query.push(("rsct", content_type));
    }
    match signer {
        SasSigner::AccountKey { .. } => lines.push(""), // signedIdentifier: no stored access policy
        SasSigner::UserDelegation { key, .. } => {
            lines.extend([
                key.signed_oid.as_str(),
                &key.signed_tid,
                &key.signed_start,
                &key.signed_expiry,
                &key.signed_service,
                &key.signed_version,
            ]);
            // saoid, suoid, scid, skdutid, sduoid: no delegation to another identity, no correlation id.
            lines.extend(["", "", "", "", ""]);
            query.extend([
                ("skoid", key.signed_oid.as_str()),
                ("sktid", &key.signed_tid),
                ("skt", &key.signed_start),
                ("ske", &key.signed_expiry),
                ("sks", &key.signed_service),
                ("skv", &key.signed_version),
            ]);
        }
    }
    // sip, spr, sv, sr, the snapshot time, ses.
    lines.extend(["", protocol, grant.version, "b", "", ""]);
    if matches!(signer, SasSigner::UserDelegation { .. }) {
        // srh, srq: no request headers or query parameters bound. The official SDK writes both lines whatever the
        // version it is asked for, and so does this signer.
        lines.extend(["", ""]);
    }
    let disposition = grant.content_disposition.unwrap_or_default();
    let content_type = grant.content_type.unwrap_or_default();
    // rscc, rscd, rsce, rscl, rsct.
    lines.extend(["", disposition, "", "", content_type]);
    let signature = match signer {
        SasSigner::AccountKey { key, .. } => key.sign(&lines.join("\n")),
        SasSigner::UserDelegation { key, .. } => key.value.sign(&lines.join("\n")),
    };
    let mut token: Vec<String> = query
        .into_iter()
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect();
    token.push(format!("sig={}", encode(&signature)));
    token.join("&")
}

/// The blob's URL with the token: a link that works with no other credential until the grant's expiry.
pub fn read_link(blob_url: &Url, token: &str) -> Url {
    let mut link = blob_url.clone();
    link.set_query(Some(token));
    link
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use serde_json::Value;

    fn vectors() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/storage.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn time(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &Rfc3339).unwrap()
    }

    fn text(value: &Value) -> &str {
        value.as_str().unwrap()
    }

    #[test]
    fn tokens_match_the_official_sdks_for_every_vector() {
        let vectors = vectors();
        let account = text(&vectors["account"]);
        let account_key = HmacKey::from_base64(&Secret::new(text(&vectors["accountKey"]))).unwrap();
        let cases = vectors["sas"].as_array().unwrap();
        assert!(cases.len() >= 7, "service and user delegation SAS, in two versions");
        let mut delegated = 0;
        for case in cases {
            let grant = ReadGrant {
                container: text(&case["container"]),
                blob: text(&case["blob"]),
                start: time(text(&case["start"])),
                expiry: time(text(&case["expiry"])),
                https_only: case["protocol"] == "https",
                content_disposition: case["contentDisposition"].as_str(),
                content_type: case["contentType"].as_str(),
                version: text(&case["sv"]),
            };
            assert_eq!(case["permission"], "r");
            let token = match case.get("userDelegationKey") {
                None => blob_sas(
                    &grant,
                    SasSigner::AccountKey {
                        account,
                        key: &account_key,
                    },
                ),
                Some(udk) => {
                    delegated += 1;
                    let key = UserDelegationKey {
                        signed_oid: text(&udk["signedOid"]).to_owned(),
                        signed_tid: text(&udk["signedTid"]).to_owned(),
                        signed_start: text(&udk["signedStart"]).to_owned(),
                        signed_expiry: text(&udk["signedExpiry"]).to_owned(),
                        signed_service: text(&udk["signedService"]).to_owned(),
                        signed_version: text(&udk["signedVersion"]).to_owned(),
                        value: HmacKey::from_base64(&Secret::new(text(&udk["value"]))).unwrap(),
                        expires_on: time(text(&udk["signedExpiry"])),
                    };
                    blob_sas(&grant, SasSigner::UserDelegation { account, key: &key })
                }
            };
            assert_eq!(token, text(&case["token"]), "{}", case["name"]);
        }
        assert!(delegated >= 3, "user delegation SAS vectors are covered");
    }

    #[test]
    fn a_changed_grant_signs_differently_and_times_are_utc_to_the_second() {
        let key = HmacKey::from_base64(&Secret::new("AAAA")).unwrap();
        let signer = SasSigner::AccountKey {
            account: "acct",
            key: &key,
        };
        let grant = ReadGrant {
            container: "recordings",
            blob: "c/r/d0/content.mp4",
            start: time("2026-11-28T16:00:00.123+01:00"),
            expiry: time("2026-11-28T15:15:00Z"),
            https_only: true,
            content_disposition: None,
            content_type: None,
            version: SAS_VERSION,
        };
        let token = blob_sas(&grant, signer);
        assert!(
            token.starts_with("st=2026-11-28T15%3A00%3A00Z&se=2026-11-28T15%3A15%3A00Z&sp=r&spr=https&"),
            "{token}"
        );
        let signature = |token: &str| token.rsplit_once("sig=").unwrap().1.to_owned();
        let other_blob = ReadGrant {
            blob: "c/r/d1/content.mp4",
            ..grant.clone()
        };
        assert_ne!(signature(&blob_sas(&other_blob, signer)), signature(&token));
        let plain_http = ReadGrant {
            https_only: false,
            ..grant.clone()
        };
        assert!(blob_sas(&plain_http, signer).contains("&spr=https%2Chttp&"));
        let link = read_link(
            &Url::parse("https://acct.blob.core.windows.net/recordings/c/r/d0/content.mp4").unwrap(),
            &token,
        );
        assert_eq!(link.query(), Some(token.as_str()));
    }
}
