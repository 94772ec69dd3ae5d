//! The embedded store: recording documents as JSON files on local disk, the default on a developer's machine.
//!
//! Layout under the data directory: `recordings/{callId}/{id}.json` (exactly the document Cosmos DB holds) and
//! `quarantine/{id}.json`. Names are encoded so that no id can leave its folder and two ids never share a file where
//! the file system ignores case ([`crate::local_names`]); a document an earlier version wrote under its own name is
//! still found, and kept there. Every write goes to a temporary file
//! that is flushed to disk and renamed over the target, so a crash leaves the old or the new document, never a torn
//! one. Merges of one call are serialized by an exclusive `flock` on the call's directory, which holds across
//! threads and processes sharing the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use time::OffsetDateTime;

use serde_json::{Map, Value};

use super::{Edit, Edited, Erasure, MergeOutcome, Merged, RecordingStore, StoreError};
use crate::health::{RecordingSummary, Status, Tally};
use crate::local_names;
use crate::quarantine::QuarantineEntry;
use crate::recording::{RecordingDocument, Stored, Tombstone};

/// How old a temporary file of a vanished process must be before it is removed.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    recordings: PathBuf,
    quarantine: PathBuf,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store under `data_dir` and checks that it can write there. It reads none of the
    /// stored documents, so opening takes the same time however many there are; see
    /// [`EmbeddedStore::remove_abandoned_temp_files`] for the one walk over them.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let data_dir = data_dir.as_ref();
        let store = Self {
            recordings: data_dir.join("recordings"),
            quarantine: data_dir.join("quarantine"),
        };
        for dir in [&store.recordings, &store.quarantine] {
            fs::create_dir_all(dir).map_err(io_error("create", dir))?;
            let probe = dir.join(format!(".probe-{}", std::process::id()));
            File::create(&probe).map_err(io_error("write to", dir))?;
            fs::remove_file(&probe).map_err(io_error("write to", dir))?;
        }
        Ok(store)
    }

    /// Removes temporary files left by writers that crashed: their process is gone and the file is older than
    /// [`ABANDONED_AFTER`] (a process id means nothing to another machine sharing the folder). They were never renamed
    /// over a document, so nothing is lost. It walks every call's folder, so the handler runs it in the background,
    /// after it starts answering; running beside writers is safe.
    pub fn remove_abandoned_temp_files(&self) {
        let call_dirs = fs::read_dir(&self.recordings)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.is_dir());
        for dir in call_dirs.chain([self.quarantine.clone()]) {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = entry.file_name();
                let stale = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|modified| modified.elapsed().unwrap_or_default() > ABANDONED_AFTER);
                if let Some(pid) = temp_file_owner(&name.to_string_lossy())
                    && stale
                    && !Path::new(&format!("/proc/{pid}")).exists()
                {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }

    /// The call's folder, found under an earlier version's name too (blocking, like the paths below).
    fn call_dir(&self, call_id: &str) -> PathBuf {
        local_names::entry(&self.recordings, call_id, "")
    }

    fn document_path(&self, call_id: &str, id: &str) -> PathBuf {
        local_names::entry(&self.call_dir(call_id), id, ".json")
    }

    fn merge_blocking(&self, update: RecordingDocument) -> Result<Merged, StoreError> {
        let archivable = update.archivable_chunk_ids();
        let (call_id, id) = (update.call_id.clone(), update.id.clone());
        let (outcome, stored) = self.change_blocking(&call_id, &id, |stored| match stored {
            None => Change::Write(Stored::Recording(Box::new(update)), MergeOutcome::Created),
            Some(Stored::Recording(mut stored)) => {
                if stored.merge_from(update) {
                    Change::Write(Stored::Recording(stored), MergeOutcome::Updated)
                } else {
                    Change::Keep(Some(Stored::Recording(stored)))
                }
            }
            Some(erased @ Stored::Erased(_)) => Change::Keep(Some(erased)),
        })?;
        Ok(match stored {
            Some(Stored::Recording(stored)) => {
                Merged::new(outcome.unwrap_or(MergeOutcome::Unchanged), &archivable, &stored)
            }
            Some(Stored::Erased(_)) | None => Merged {
                outcome: MergeOutcome::Erased,
                to_archive: Vec::new(),
            },
        })
    }

    fn edit_blocking(&self, call_id: &str, id: &str, edit: Edit) -> Result<Edited, StoreError> {
        let (changed, stored) = self.change_blocking(call_id, id, |stored| match stored {
            Some(Stored::Recording(mut document)) => {
                if edit(&mut document) {
                    Change::Write(Stored::Recording(document), ())
                } else {
                    Change::Keep(Some(Stored::Recording(document)))
                }
            }
            other => Change::Keep(other),
        })?;
        Ok(match (changed, stored) {
            (_, None) => Edited::Missing,
            (_, Some(Stored::Erased(_))) => Edited::Erased,
            (Some(()), Some(Stored::Recording(document))) => Edited::Changed(document),
            (None, Some(Stored::Recording(document))) => Edited::Unchanged(document),
        })
    }

    fn erase_blocking(&self, call_id: &str, id: &str, erased_at: &str) -> Result<Erasure, StoreError> {
        let (erased, _) = self.change_blocking(call_id, id, |stored| match stored {
            Some(Stored::Recording(document)) => {
                if let Some(hold) = super::erase_hold::hold(call_id, id) {
                    hold();
                }
                let tombstone = Tombstone::of(&document, erased_at);
                Change::Write(Stored::Erased(tombstone), Erasure::Erased(document))
            }
            other => Change::Keep(other),
        })?;
        if let Some(erased) = erased {
            return Ok(erased);
        }
        Ok(match read_stored(&self.document_path(call_id, id))? {
            Some(Stored::Erased(tombstone)) => Erasure::AlreadyErased(tombstone),
            _ => Erasure::Missing,
        })
    }

    /// Reads the document under the call folder's lock and writes what `change` makes of it, if anything; returns
    /// what `change` reported and the document as stored afterwards.
    fn change_blocking<T>(
        &self,
        call_id: &str,
        id: &str,
        change: impl FnOnce(Option<Stored>) -> Change<T>,
    ) -> Result<(Option<T>, Option<Stored>), StoreError> {
        let dir = self.call_dir(call_id);
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        let lock = File::open(&dir).map_err(io_error("open", &dir))?;
        lock.lock().map_err(io_error("lock", &dir))?;

        let path = self.document_path(call_id, id);
        let stored = read_stored(&path)?;
        let (changed, report) = match change(stored) {
            Change::Write(changed, report) => (changed, report),
            Change::Keep(stored) => {
                // Nothing to write — perhaps already written by a writer that crashed before flushing its rename:
                // flush it now, since the answer says the document is kept.
                sync_dir(&dir)?;
                sync_dir(&self.recordings)?;
                return Ok((None, stored));
            }
        };
        write_atomically(&path, &to_json(&changed))?;
        // The call's folder may be new, made by this writer or by another that has not flushed it yet.
        sync_dir(&self.recordings)?;
        Ok((Some(report), Some(changed)))
        // `lock` is released when the file closes here, after the rename.
    }

    /// Everything stored under the recordings folder, or one call's: documents and tombstones.
    fn stored_blocking(&self, call_id: Option<&str>) -> Result<Vec<Stored>, StoreError> {
        let dirs: Vec<PathBuf> = match call_id {
            Some(call_id) => vec![self.call_dir(call_id)],
            None => fs::read_dir(&self.recordings)
                .map_err(io_error("read", &self.recordings))?
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.is_dir())
                .collect(),
        };
        let mut documents = Vec::new();
        for dir in dirs {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = entry.file_name();
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                if let Some(stored) = read_stored(&entry.path())? {
                    documents.push(stored);
                }
            }
        }
        Ok(documents)
    }

    fn quarantine_path(&self, id: &str) -> PathBuf {
        local_names::entry(&self.quarantine, id, ".json")
    }

    fn erase_quarantined_blocking(&self, call_id: &str) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.quarantine).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let quarantined = match read_json::<QuarantineEntry>(&path) {
                Ok(Some(quarantined)) => quarantined,
                Ok(None) => continue,
                Err(e) => {
                    // One file an operator must look at does not stop every erase.
                    tracing::warn!(error = %crate::error::error_chain(&e), "skipped an unreadable quarantine file");
                    continue;
                }
            };
            if quarantined.names_call(call_id) {
                match fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error("remove", &path)(e)),
                }
            }
        }
        if removed > 0 {
            sync_dir(&self.quarantine)?;
        }
        Ok(removed)
    }

    /// Reads every document and tombstone, and counts the quarantine's entries by name (without reading them).
    fn status_blocking(&self, now: OffsetDateTime, at_risk: time::Duration) -> Result<Status, StoreError> {
        let mut tally = Tally::new(now, at_risk);
        for stored in self.stored_blocking(None)? {
            match stored {
                Stored::Recording(document) => tally.add(&RecordingSummary::of(&document)),
                Stored::Erased(tombstone) => tally.add(&RecordingSummary::tombstone(&tombstone.call_id, &tombstone.id)),
            }
        }
        let entries = fs::read_dir(&self.quarantine).map_err(io_error("read", &self.quarantine))?;
        let quarantined = entries
            .flatten()
            .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
            .count();
        tally.add_quarantined(quarantined as u64);
        Ok(tally.finish())
    }

    fn quarantine_blocking(&self, entry: QuarantineEntry) -> Result<(), StoreError> {
        let path = self.quarantine_path(&entry.id);
        if path.exists() {
            return Ok(());
        }
        write_atomically(&path, &to_json(&entry))
    }
}

#[async_trait]
impl RecordingStore for EmbeddedStore {
    async fn merge(&self, update: RecordingDocument) -> Result<Merged, StoreError> {
        let store = self.clone();
        blocking(move || store.merge_blocking(update)).await
    }

    async fn edit(&self, call_id: &str, id: &str, edit: Edit) -> Result<Edited, StoreError> {
        let store = self.clone();
        let (call_id, id) = (call_id.to_owned(), id.to_owned());
        blocking(move || store.edit_blocking(&call_id, &id, edit)).await
    }

    async fn documents(&self, call_id: Option<&str>) -> Result<Vec<RecordingDocument>, StoreError> {
        let store = self.clone();
        let call_id = call_id.map(str::to_owned);
        let stored = blocking(move || store.stored_blocking(call_id.as_deref())).await?;
        Ok(stored.into_iter().filter_map(Stored::into_recording).collect())
    }

    async fn erase(&self, call_id: &str, id: &str, erased_at: &str) -> Result<Erasure, StoreError> {
        let (store, call_id, id, erased_at) = (self.clone(), call_id.to_owned(), id.to_owned(), erased_at.to_owned());
        blocking(move || store.erase_blocking(&call_id, &id, &erased_at)).await
    }

    async fn tombstones(&self, call_id: &str) -> Result<Vec<Tombstone>, StoreError> {
        let (store, call_id) = (self.clone(), call_id.to_owned());
        let stored = blocking(move || store.stored_blocking(Some(&call_id))).await?;
        Ok(stored.into_iter().filter_map(Stored::into_tombstone).collect())
    }

    async fn erase_quarantined(&self, call_id: &str) -> Result<usize, StoreError> {
        let (store, call_id) = (self.clone(), call_id.to_owned());
        blocking(move || store.erase_quarantined_blocking(&call_id)).await
    }

    async fn quarantine(&self, entry: QuarantineEntry) -> Result<(), StoreError> {
        let store = self.clone();
        blocking(move || store.quarantine_blocking(entry)).await
    }

    async fn lookup(&self, call_id: &str, id: &str) -> Result<Option<Stored>, StoreError> {
        let (store, call_id, id) = (self.clone(), call_id.to_owned(), id.to_owned());
        blocking(move || read_stored(&store.document_path(&call_id, &id))).await
    }

    async fn read_quarantined(&self, id: &str) -> Result<Option<QuarantineEntry>, StoreError> {
        let (store, id) = (self.clone(), id.to_owned());
        blocking(move || read_json(&store.quarantine_path(&id))).await
    }

    async fn status(&self, now: OffsetDateTime, at_risk: time::Duration) -> Result<Status, StoreError> {
        let store = self.clone();
        blocking(move || store.status_blocking(now, at_risk)).await
    }

    fn location(&self, call_id: &str, id: &str) -> String {
        self.document_path(call_id, id).display().to_string()
    }
}

/// Whether `dir` lies inside `root` (or is `root`). Existing paths are compared after resolving links, others by
/// their absolute spelling with `.` and `..` resolved by name.
pub fn is_inside(dir: &Path, root: &Path) -> bool {
    let resolve = |path: &Path| {
        path.canonicalize()
            .or_else(|_| std::path::absolute(path).map(|p| lexical(&p)))
    };
    match (resolve(dir), resolve(root)) {
        (Ok(dir), Ok(root)) => dir.starts_with(root),
        _ => false,
    }
}

/// A path with `.` and `..` resolved by name, without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut resolved = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                resolved.pop();
            }
            other => resolved.push(other),
        }
    }
    resolved
}

/// What a change makes of the stored document.
enum Change<T> {
    /// Write this document or tombstone, and report this.
    Write(Stored, T),
    /// Write nothing; what is stored stays (or stays missing).
    Keep(Option<Stored>),
}

/// Runs file work off the async runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|join_error| {
        Err(StoreError::Io {
            action: "finish a write in",
            path: PathBuf::from("the embedded store"),
            source: io::Error::other(join_error.to_string()),
        })
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Invalid {
                what: format!("stored file {}", path.display()),
                source,
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", path)(e)),
    }
}

/// Reads a stored recording file: a document or a tombstone.
fn read_stored(path: &Path) -> Result<Option<Stored>, StoreError> {
    let Some(item) = read_json::<Map<String, Value>>(path)? else {
        return Ok(None);
    };
    Stored::from_json(item).map(Some).map_err(|source| StoreError::Invalid {
        what: format!("stored file {}", path.display()),
        source,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing a document of strings, numbers and maps with string keys cannot fail.
    let mut json = serde_json::to_vec_pretty(value).unwrap_or_default();
    json.push(b'\n');
    json
}

/// Writes `bytes` to `path` so that readers and crashes see the old file or the new one, never a mix.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let temp = dir.join(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&temp);
        return Err(io_error("write", path)(e));
    }
    sync_dir(dir)
}

/// Makes a directory's entries (a rename, a new subdirectory) durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("flush", dir))
}

/// The process id in a temporary file's name, `.{name}.{pid}-{n}.tmp` (see [`write_atomically`]).
fn temp_file_owner(file_name: &str) -> Option<u32> {
    let stem = file_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (_, owner) = stem.rsplit_once('.')?;
    owner.split_once('-')?.0.parse().ok()
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    move |source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_files_of_crashed_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let call = dir.path().join("recordings/call-1");
        fs::create_dir_all(&call).unwrap();
        let dead = call.join(".rec-1.json.4000000-0.tmp"); // no such process: pids stay below 2^22
        let alive = call.join(format!(".rec-1.json.{}-7.tmp", std::process::id()));
        fs::write(&dead, b"{\"torn").unwrap();
        fs::write(&alive, b"{").unwrap();
        let long_ago = std::time::SystemTime::now() - ABANDONED_AFTER * 2;
        for path in [&dead, &alive] {
            File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        EmbeddedStore::open(dir.path()).unwrap().remove_abandoned_temp_files();
        assert!(!dead.exists() && alive.exists());
        assert_eq!(temp_file_owner(".a.b.json.12-3.tmp"), Some(12));
        assert_eq!(temp_file_owner("rec.json"), None);
    }

    #[test]
    fn folders_inside_and_outside_a_root_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        fs::create_dir_all(root.join("existing")).unwrap();
        assert!(is_inside(&root.join(".data"), &root));
        assert!(is_inside(&root.join("existing"), &root));
        assert!(is_inside(&root.join("x/../.data"), &root));
        assert!(!is_inside(&root.join("../data"), &root));
        assert!(
            !is_inside(&dir.path().join("app-data"), &root),
            "a sibling sharing the prefix is outside"
        );
    }

    fn document(recording_id: &str, event_id: &str, chunk: &str) -> RecordingDocument {
        let event = serde_json::json!({
            "id": event_id, "topic": "/acs", "eventTime": "2026-11-27T15:20:34Z",
            "subject": format!("/recording/call/4b1d8a9e-c4ll/serverCallId/s1/recordingId/{recording_id}"),
            "eventType": "Microsoft.Communication.RecordingFileStatusUpdated",
            "data": {"recordingStorageInfo": {"recordingChunks": [{"documentId": chunk, "index": 0}]}}});
        RecordingDocument::from_event(crate::event::Event::parse(&event.to_string()).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_document_an_earlier_version_wrote_is_still_found_and_kept_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let first = document("eyJQbGF0", "e1", "d0");
        assert_eq!(first.id, "eyJQbGF0");
        // The earlier version's name: the id's bytes as they are, whatever their case.
        let call = dir.path().join("recordings/4b1d8a9e-c4ll");
        fs::create_dir_all(&call).unwrap();
        fs::write(call.join("eyJQbGF0.json"), to_json(&first)).unwrap();
        assert_ne!(
            store.document_path("4b1d8a9e-c4ll", "EYJQBGF0"),
            call.join("EYJQBGF0.json")
        );

        let read = store.read("4b1d8a9e-c4ll", "eyJQbGF0").await.unwrap();
        assert_eq!(read.as_ref().map(|d| d.chunks.len()), Some(1));
        assert_eq!(
            store.read("4b1d8a9e-c4ll", "EYJQBGF0").await.unwrap(),
            None,
            "a case variant is another recording"
        );
        let merged = store.merge(document("eyJQbGF0", "e2", "d1")).await.unwrap();
        assert_eq!(merged.outcome, MergeOutcome::Updated);
        let names: Vec<String> = fs::read_dir(&call)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["eyJQbGF0.json"], "merged into the earlier file, not beside it");
        let stored = store.read("4b1d8a9e-c4ll", "eyJQbGF0").await.unwrap().unwrap();
        assert_eq!(stored.chunks.len(), 2);
    }

    #[tokio::test]
    async fn documents_whose_ids_differ_only_in_case_get_files_that_differ_in_any_case() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        for id in ["abc", "Abc", "ABC", "abc."] {
            store.merge(document(id, id, "d0")).await.unwrap();
        }
        let mut names: Vec<String> = fs::read_dir(dir.path().join("recordings/4b1d8a9e-c4ll"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_ascii_lowercase())
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(
            names.iter().all(|name| !name.trim_end_matches(".json").ends_with('.')),
            "{names:?}"
        );
    }
}
