//! The continuation of a Cosmos DB listing: the SDK's own token (`QueryPageIterator::to_continuation_token`), handed
//! to the caller as it is and checked when it comes back.
//!
//! The SDK's tokens are `c1.` and the base64url (no padding) of a JSON document: the operation (`"op": "Query"`),
//! the container's resource id, and the query pipeline's state under `root`, whose `kind` is `drained` once every
//! page has been read. That format is the SDK's (`azure_data_cosmos_driver::models::continuation_token`, pinned
//! with the SDK in `Cargo.toml`); this module reads only those two fields, and only to refuse what the SDK would
//! otherwise send to the server as an opaque token (a token without `c1.`, which Cosmos DB answers with 400 but the
//! test server silently reads as "from the start") and to tell the last page from one that merely filled up. Should
//! a later SDK change the format, tokens it gives are still passed through, and a drained one costs one more,
//! empty, page.

use azure_data_cosmos::feed::ContinuationToken;
use base64::Engine;
use serde_json::Value;

use crate::store::StoreError;

/// The prefix of the SDK's version 1 tokens, the only ones this SDK gives.
const SDK_V1_PREFIX: &str = "c1.";

/// The SDK's token, as the store passes it around.
pub type Token = ContinuationToken;

/// The SDK's sub-statuses for a token it cannot resume from: a state it cannot read (20020), of another shape than
/// the query's (20203, 20204), with broken ranges (20205) or ordering state (20214). A token of another container
/// is refused with 400, like a continuation Cosmos DB cannot read.
pub const REFUSED_STATES: [u16; 5] = [20020, 20203, 20204, 20205, 20214];

/// A continuation a caller brought back: the SDK's token, if it is one.
pub fn parse(given: &str) -> Result<ContinuationToken, StoreError> {
    let state = decode(given).ok_or(StoreError::BadContinuation)?;
    if state.get("op").and_then(Value::as_str) != Some("Query")
        || !state.get("rid").is_some_and(Value::is_string)
        || !state.get("root").is_some_and(Value::is_object)
    {
        return Err(StoreError::BadContinuation);
    }
    Ok(ContinuationToken::from_string(given.to_owned()))
}

/// Whether the token says that every page has been read. A token this module cannot read is taken as not drained:
/// the next page is then empty and the last.
pub fn is_drained(token: &ContinuationToken) -> bool {
    decode(token.as_str())
        .and_then(|state| state.get("root")?.get("kind")?.as_str().map(|kind| kind == "drained"))
        .unwrap_or(false)
}

fn decode(token: &str) -> Option<Value> {
    let payload = token.strip_prefix(SDK_V1_PREFIX)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Value>(&json).ok().filter(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token(state: Value) -> String {
        format!(
            "{SDK_V1_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(state.to_string())
        )
    }

    #[test]
    fn a_token_the_sdk_gives_comes_back_as_it_was() {
        let given = token(json!({"op": "Query", "rid": "r1", "root": {"kind": "request", "server_continuation": "x"}}));
        let parsed = parse(&given).unwrap();
        assert_eq!(parsed.as_str(), given);
        assert!(!is_drained(&parsed));
    }

    #[test]
    fn a_drained_query_is_told_apart() {
        let drained = token(json!({"op": "Query", "rid": "r1", "root": {"kind": "drained"}}));
        assert!(is_drained(&parse(&drained).unwrap()));
    }

    #[test]
    fn anything_else_is_a_bad_continuation() {
        for given in [
            "garbage".to_owned(),
            "[\"call-1\",\"rec-1\"]".to_owned(),
            "c1.".to_owned(),
            "c1.!!!".to_owned(),
            "c2.e30".to_owned(),
            token(json!(["not", "an", "object"])),
            token(json!({"op": "ChangeFeed", "rid": "r1", "root": {"kind": "drained"}})),
            token(json!({"op": "Query", "rid": "r1"})),
        ] {
            assert!(matches!(parse(&given), Err(StoreError::BadContinuation)), "{given:?}");
        }
    }

    #[test]
    fn a_token_of_another_format_is_never_taken_as_drained() {
        assert!(!is_drained(&ContinuationToken::from_string("opaque".to_owned())));
    }
}
