//! Continuation tokens: the store's own continuation, wrapped so that a token is only taken back for the listing it
//! was given for, and a token the API did not give (garbage, edited, or another listing's) is a `400`.
//!
//! A token is `base64url(JSON {"f": filter digest, "s": store continuation})`, then `.` and a digest of both. It is
//! not a secret and not a signature: someone who builds a token by hand can only page a listing their key already
//! lets them read, and the store refuses a continuation it did not give ([`StoreError::BadContinuation`]).
//!
//! [`StoreError::BadContinuation`]: crate::store::StoreError::BadContinuation

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::digest::sha256_hex;
use crate::store::ListFilter;

#[derive(Serialize, Deserialize)]
struct Payload {
    f: String,
    s: String,
}

/// The token for the next page of the listing `filter` selects.
pub fn issue(filter: &ListFilter, store_continuation: &str) -> String {
    let payload = Payload {
        f: filter_digest(filter),
        s: store_continuation.to_owned(),
    };
    // A struct of two strings always serializes.
    let json = serde_json::to_vec(&payload).unwrap_or_default();
    format!("{}.{}", URL_SAFE_NO_PAD.encode(&json), &check(&json)[..16])
}

/// The store's continuation in a token given for the same `filter`; `None` for any other token.
pub fn redeem(token: &str, filter: &ListFilter) -> Option<String> {
    let (encoded, digest) = token.split_once('.')?;
    let json = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    if check(&json)[..16] != *digest {
        return None;
    }
    let payload: Payload = serde_json::from_slice(&json).ok()?;
    (payload.f == filter_digest(filter)).then_some(payload.s)
}

fn check(json: &[u8]) -> String {
    sha256_hex(&[b"continuation", json])
}

fn filter_digest(filter: &ListFilter) -> String {
    let state = filter.archive_state.map(|state| state.as_str()).unwrap_or_default();
    let part = |value: &Option<String>| value.as_deref().map(|v| format!("={v}")).unwrap_or_default();
    sha256_hex(&[
        b"filter",
        part(&filter.call_id).as_bytes(),
        b"\0",
        part(&filter.server_call_id).as_bytes(),
        b"\0",
        state.as_bytes(),
    ])[..16]
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::ArchiveStatus;

    fn filter(call: &str) -> ListFilter {
        ListFilter {
            call_id: Some(call.to_owned()),
            ..ListFilter::default()
        }
    }

    #[test]
    fn a_token_gives_back_the_store_continuation_for_its_own_listing_only() {
        let token = issue(&filter("c1"), r#"["c1","r9"]"#);
        assert_eq!(redeem(&token, &filter("c1")).as_deref(), Some(r#"["c1","r9"]"#));
        assert_eq!(redeem(&token, &filter("c2")), None, "another call's listing");
        let by_state = ListFilter {
            archive_state: Some(ArchiveStatus::Archived),
            ..filter("c1")
        };
        assert_eq!(redeem(&token, &by_state), None, "the same call with another filter");
        assert_eq!(
            redeem(&issue(&ListFilter::default(), "x"), &ListFilter::default()).as_deref(),
            Some("x")
        );
    }

    #[test]
    fn garbage_and_edited_tokens_are_refused() {
        let token = issue(&filter("c1"), "continuation");
        for bad in [
            "",
            "abc",
            ".",
            "abc.def",
            &token[1..],
            &format!("{token}0"),
            &token.replace('.', ""),
        ] {
            assert_eq!(redeem(bad, &filter("c1")), None, "{bad:?}");
        }
        let (encoded, digest) = token.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"f":"x","s":"y"}"#);
        assert_eq!(redeem(&format!("{forged}.{digest}"), &filter("c1")), None);
        assert!(redeem(&format!("{encoded}.{digest}"), &filter("c1")).is_some());
    }
}
