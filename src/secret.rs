//! A secret setting (an account key) that `Debug`, `Display` and logs cannot print, and the one way a setting's
//! value is quoted in a problem, without the secrets people paste into the wrong setting.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one call that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

/// A setting's value as a configuration problem quotes it: in quotes, with every query string or fragment
/// (`?sv=…&sig=…`) cut to `?REDACTED`, every user name and password in a URL replaced, and the value of every part
/// whose name says it holds a secret (`sig=`, `SharedAccessSignature=`, `AccountKey=`, `accesskey=`, `password=`, …)
/// replaced by `REDACTED`. People paste whole URLs and connection strings into the wrong setting: the problem must say
/// what is wrong without repeating what the value holds.
pub fn quoted(value: &str) -> String {
    format!("{:?}", redacted(value))
}

fn redacted(value: &str) -> String {
    let is_delimiter = |c: char| matches!(c, ';' | '&' | '?' | '#' | ',') || c.is_whitespace();
    let mut out = String::with_capacity(value.len());
    let mut in_query = false;
    for piece in value.split_inclusive(is_delimiter) {
        let (part, delimiter) = match piece.chars().next_back() {
            Some(last) if is_delimiter(last) => (&piece[..piece.len() - last.len_utf8()], Some(last)),
            _ => (piece, None),
        };
        if !in_query {
            out.push_str(&redacted_part(part));
        }
        match delimiter {
            Some(start @ ('?' | '#')) if !in_query => {
                out.push(start);
                out.push_str("REDACTED");
                in_query = true;
            }
            Some('?' | '#' | '&') if in_query => {}
            // A query runs to the end of its connection string part, list entry or word.
            Some(other) => {
                in_query &= other == '&';
                out.push(other);
            }
            None => {}
        }
    }
    out
}

/// One `name=value` part, or one URL, with its secret replaced.
fn redacted_part(part: &str) -> std::borrow::Cow<'_, str> {
    const SECRET_NAMES: [&str; 7] = ["sig", "signature", "key", "secret", "password", "pwd", "token"];
    if let Some((name, _)) = part.split_once('=') {
        let name_lower = name.trim().to_ascii_lowercase();
        if SECRET_NAMES.iter().any(|secret| name_lower.ends_with(secret)) {
            return format!("{name}=REDACTED").into();
        }
    }
    if let Some((scheme, rest)) = part.split_once("://")
        && let Some((user_info, host)) = rest.split_once('@')
        && !user_info.contains('/')
    {
        return format!("{scheme}://REDACTED@{host}").into();
    }
    part.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_never_formatted() {
        let secret = Secret::new("C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM");
        assert!(!format!("{secret:?} {secret} {:?}", Some(&secret)).contains("C2y6"));
        assert_eq!(secret.expose(), "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM");
    }

    #[test]
    fn quoted_values_keep_no_query_signature_or_key() {
        for (value, expected) in [
            (
                "https://a.blob.core.windows.net/c?sv=2024-11-04&sig=c2VjcmV0%3D",
                "\"https://a.blob.core.windows.net/c?REDACTED\"",
            ),
            (
                "BlobEndpoint=https://a/?sv=1&sig=c2VjcmV0;AccountName=a",
                "\"BlobEndpoint=https://a/?REDACTED;AccountName=a\"",
            ),
            (
                "BlobEndpoint=https://a/;SharedAccessSignature=sv=1&ss=b&sig=c2VjcmV0",
                "\"BlobEndpoint=https://a/;SharedAccessSignature=REDACTED&ss=b&sig=REDACTED\"",
            ),
            (
                "AccountName=a;AccountKey=c2VjcmV0;EndpointSuffix=x",
                "\"AccountName=a;AccountKey=REDACTED;EndpointSuffix=x\"",
            ),
            ("https://u:c2VjcmV0@x.example/p", "\"https://REDACTED@x.example/p\""),
            (
                "https://x.example/a#access_token=c2VjcmV0, https://y.example",
                "\"https://x.example/a#REDACTED, https://y.example\"",
            ),
            ("contoso", "\"contoso\""),
        ] {
            assert_eq!(quoted(value), expected, "{value}");
        }
    }
}
