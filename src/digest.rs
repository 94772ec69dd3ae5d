//! Stable, file-name- and Cosmos-safe names derived from untrusted text, digests in hex, and the HMAC key that signs
//! requests to ACS and to Blob Storage.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// Encoded names longer than this are replaced by a digest, keeping clear of the usual 255-byte file name limit.
pub const MAX_NAME_BYTES: usize = 200;

/// Lower-case hex SHA-256 of the parts, each followed by a NUL so that `["ab", "c"]` and `["a", "bc"]` differ.
pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
        hasher.update([0]);
    }
    hex(&hasher.finalize())
}

/// Lower-case hex of bytes (a digest's output).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A file name for an untrusted id: ASCII letters, digits, `-`, `_` and inner `.` are kept, every other byte is
/// written `%XX`, so names stay readable, distinct and inside their folder (`..`, `/` and NUL cannot survive).
/// Names that would be too long become `~` and a digest of the id.
pub fn file_name(id: &str) -> String {
    let mut name = String::with_capacity(id.len());
    for (i, byte) in id.bytes().enumerate() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || (byte == b'.' && i > 0) {
            name.push(char::from(byte));
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        format!("~{}", sha256_hex(&[id.as_bytes()]))
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_never_leave_their_folder() {
        for id in ["..", ".", "../x", "a/b", "a\\b", "\0", "", "..%2F", &"é".repeat(300)] {
            let name = file_name(id);
            assert!(
                !name.contains(['/', '\\', '\0']) && name != "." && name != "..",
                "{id:?} -> {name}"
            );
            assert!(
                !name.starts_with('.') && name.len() <= MAX_NAME_BYTES + 1,
                "{id:?} -> {name}"
            );
        }
    }

    #[test]
    fn file_names_are_distinct_and_readable() {
        assert_eq!(file_name("abc-DEF_1.2"), "abc-DEF_1.2");
        assert_ne!(file_name("a/b"), file_name("a%2Fb"));
        assert_ne!(file_name("a b"), file_name("a_b"));
    }

    #[test]
    fn a_name_of_200_bytes_is_kept_and_a_longer_one_becomes_a_tilde_and_a_digest() {
        let longest = "x".repeat(MAX_NAME_BYTES);
        assert_eq!(file_name(&longest), longest);
        let one_more = "x".repeat(MAX_NAME_BYTES + 1);
        // 201 bytes: `~` and the SHA-256 of the id and a NUL, computed here with `sha2` directly.
        let digest = Sha256::new()
            .chain_update(one_more.as_bytes())
            .chain_update([0])
            .finalize();
        assert_eq!(file_name(&one_more), format!("~{}", hex(&digest)));
        // Encoded length counts: 67 `/` are 201 bytes as `%2F`.
        assert!(file_name(&"/".repeat(67)).starts_with('~'));
        assert_eq!(file_name(&"/".repeat(66)), "%2F".repeat(66));
    }

    #[test]
    fn digest_is_stable_and_separates_parts() {
        assert_eq!(sha256_hex(&[b"ab", b"c"]), sha256_hex(&[b"ab", b"c"]));
        assert_ne!(sha256_hex(&[b"ab", b"c"]), sha256_hex(&[b"a", b"bc"]));
        assert_eq!(sha256_hex(&[]).len(), 64);
        assert!(
            sha256_hex(&[b"x"])
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
}

/// An HMAC-SHA256 key given in base64, as ACS access keys and storage account keys are. `Debug` never shows it.
/// Shared: the keyed state is a few hundred bytes, copied only to sign.
#[derive(Clone)]
pub struct HmacKey(std::sync::Arc<Hmac<Sha256>>);

impl HmacKey {
    /// A key given as its bytes (a user delegation key, as the storage client decodes it).
    pub fn from_bytes(key: &[u8]) -> Option<Self> {
        Hmac::<Sha256>::new_from_slice(key)
            .ok()
            .map(|mac| Self(std::sync::Arc::new(mac)))
    }

    /// The key a base64 text holds; `None` when it is not base64.
    pub fn from_base64(key: &Secret) -> Option<Self> {
        let bytes = BASE64.decode(key.expose()).ok()?;
        // HMAC takes keys of any length.
        Hmac::<Sha256>::new_from_slice(&bytes)
            .ok()
            .map(|mac| Self(std::sync::Arc::new(mac)))
    }

    /// The base64 HMAC-SHA256 of `text`.
    pub fn sign(&self, text: &str) -> String {
        let mut mac = Hmac::clone(&self.0);
        mac.update(text.as_bytes());
        BASE64.encode(mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(…)")
    }
}
