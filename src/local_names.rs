//! Names of untrusted ids in a local folder (the embedded store's documents, the embedded archive's files): distinct
//! even where the file system ignores case (macOS, Windows), never ending in `.` (which Windows drops), and still
//! finding what an earlier version wrote under its own names.
//!
//! A name is [`digest::file_name`]'s encoding (ASCII letters, digits, `-`, `_` and inner `.` kept, every other byte
//! `%XX`) with a final `.` written `%2E` and, when the id has upper-case letters, `~` and a hex mask saying which of
//! its letters are upper case (`Abc` → `Abc~8`, `abc` → `abc`): folded to one case, the name still gives back the id.
//! An id without upper-case letters or a final `.` — GUID call ids, chunk document ids, `rec-`/`rid-` ids, quarantine
//! digests — keeps the name it always had. The others must change (`Abc` and `abc` cannot both keep theirs); a suffix
//! keeps them readable, where writing each upper-case letter `%XX` would make a base64 recording id about twice as
//! long, past [`MAX_NAME_BYTES`], where only a digest is left.
//!
//! What an earlier version wrote keeps its name: [`entry`] looks for the current name, then for the earlier one
//! spelled exactly as listed in the folder (opening it by name would, on a case-insensitive file system, also open
//! another id's file). New files are written under the current name. On a case-insensitive file system an earlier
//! version's `Abc` still answers to `abc`, as it did then; no name written now collides with another.

use std::path::{Path, PathBuf};

use crate::digest::{self, MAX_NAME_BYTES, sha256_hex};

/// The name of `id` in a local folder; see the module documentation.
pub fn file_name(id: &str) -> String {
    let mut name = digest::file_name(id);
    if name.starts_with('~') {
        return name;
    }
    if name.ends_with('.') {
        name.pop();
        name.push_str("%2E");
    }
    let letters: Vec<bool> = id
        .bytes()
        .filter(u8::is_ascii_alphabetic)
        .map(|b| b.is_ascii_uppercase())
        .collect();
    if let Some(last_upper) = letters.iter().rposition(|&upper| upper) {
        name.push('~');
        for nibble in letters[..=last_upper].chunks(4) {
            let bits = nibble
                .iter()
                .enumerate()
                .fold(0u32, |bits, (i, &upper)| bits | (u32::from(upper) << (3 - i)));
            name.extend(char::from_digit(bits, 16));
        }
    }
    if name.len() > MAX_NAME_BYTES {
        format!("~{}", sha256_hex(&[id.as_bytes()]))
    } else {
        name
    }
}

/// Where the entry for `id` (its name followed by `suffix`) is in `folder`: under its current name, or under the name
/// an earlier version gave it ([`digest::file_name`]) when only that one is there, spelled exactly. Blocking: it may
/// list the folder, but only for an id whose name changed and which has no entry under the current one.
pub fn entry(folder: &Path, id: &str, suffix: &str) -> PathBuf {
    let current = folder.join(format!("{}{suffix}", file_name(id)));
    let earlier = format!("{}{suffix}", digest::file_name(id));
    if current.ends_with(&earlier) || current.exists() {
        return current;
    }
    let listed = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| entry.file_name() == earlier.as_str());
    if listed { folder.join(earlier) } else { current }
}

/// Every entry `id` may have in `folder`: under its current name, and under the name an earlier version gave it
/// when that one is listed there, spelled exactly. Both can exist — an earlier version's folder, and the one files
/// written since went to — and erasing must remove both. Blocking: it may list the folder.
pub fn entries(folder: &Path, id: &str, suffix: &str) -> Vec<PathBuf> {
    let current = folder.join(format!("{}{suffix}", file_name(id)));
    let earlier = format!("{}{suffix}", digest::file_name(id));
    let mut entries = vec![current.clone()];
    if !current.ends_with(&earlier)
        && std::fs::read_dir(folder)
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| entry.file_name() == earlier.as_str())
    {
        entries.push(folder.join(earlier));
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differing_only_in_case_get_names_that_differ_in_any_case() {
        let ids = ["abc", "Abc", "aBc", "ABC", "abC", "eyJQbGF0", "EYjqBgf0", "a~8", "A%41"];
        let folded: Vec<String> = ids.iter().map(|id| file_name(id).to_ascii_lowercase()).collect();
        for (i, name) in folded.iter().enumerate() {
            for (j, other) in folded.iter().enumerate().skip(i + 1) {
                assert_ne!(name, other, "{} and {} share a name", ids[i], ids[j]);
            }
        }
        let long_upper = "A".repeat(MAX_NAME_BYTES);
        assert_ne!(
            file_name(&long_upper).to_ascii_lowercase(),
            file_name(&long_upper.to_ascii_lowercase()).to_ascii_lowercase()
        );
    }

    #[test]
    fn no_name_ends_in_a_dot() {
        for id in ["a.", "a..", "A.", "x.y.", ".", "..", "é."] {
            let name = file_name(id);
            assert!(!name.ends_with('.'), "{id:?} -> {name}");
            assert!(
                !name.contains(['/', '\\', '\0']) && !name.starts_with('.'),
                "{id:?} -> {name}"
            );
        }
        assert_ne!(file_name("a."), file_name("a"));
    }

    #[test]
    fn names_without_upper_case_or_a_final_dot_are_unchanged() {
        for id in [
            "4b1d8a9e-0f3c-4a5e-9b2d-7c6e5f4a3b21",
            "0-eus-d2-3cca2175891f21c6c9a5975a12c0141c",
            "rec-0123abcd",
            "a.b_c",
            "a/b",
        ] {
            assert_eq!(file_name(id), digest::file_name(id), "{id}");
        }
        assert_eq!(file_name("Abc"), "Abc~8");
        assert_eq!(file_name("eyJQ"), "eyJQ~3");
    }

    #[test]
    fn an_entry_an_earlier_version_named_is_still_found_when_spelled_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let earlier = dir.path().join("eyJQ.json");
        std::fs::write(&earlier, "{}").unwrap();
        assert_eq!(entry(dir.path(), "eyJQ", ".json"), earlier);
        assert_eq!(
            entry(dir.path(), "EYJQ", ".json"),
            dir.path().join("EYJQ~f.json"),
            "a case variant is not the earlier entry, even where the file system would open it"
        );
        assert_eq!(entry(dir.path(), "new", ".json"), dir.path().join("new.json"));
        std::fs::write(dir.path().join("eyJQ~3.json"), "{}").unwrap();
        assert_eq!(
            entry(dir.path(), "eyJQ", ".json"),
            dir.path().join("eyJQ~3.json"),
            "the current name comes first"
        );
    }

    #[test]
    fn every_entry_of_an_id_is_its_current_name_and_the_earlier_one_when_listed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(entries(dir.path(), "eyJQ", ""), [dir.path().join("eyJQ~3")]);
        std::fs::create_dir(dir.path().join("eyJQ")).unwrap();
        assert_eq!(
            entries(dir.path(), "eyJQ", ""),
            [dir.path().join("eyJQ~3"), dir.path().join("eyJQ")]
        );
        assert_eq!(
            entries(dir.path(), "EYJQ", ""),
            [dir.path().join("EYJQ~f")],
            "a case variant's earlier name is not spelled so"
        );
        assert_eq!(entries(dir.path(), "abc", ""), [dir.path().join("abc")], "one name");
    }
}
