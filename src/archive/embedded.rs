//! The embedded archive: archived files in a folder on local disk, the default on a developer's machine.
//!
//! Layout under `RECORDINGS_DATA_DIR/archive/`: `{callId}/{recording id}/{chunk documentId}.content.{ext}` and
//! `….metadata.json`, every name encoded so that no id can leave its folder and two ids never share a file where the
//! file system ignores case ([`crate::local_names`]); a file an earlier version archived under its own name is still
//! found. A file is written to a hidden `.{name}.{source digest}.partial` beside it — kept between attempts, so a
//! retry resumes where the last one stopped, and named after the URL its bytes came from, so that bytes of one source
//! are never continued with another's — under an exclusive lock on `.{name}.lock` that holds across processes, then
//! flushed to disk and renamed to its name: a file under its final name is always whole and verified. Partial files
//! of other sources (and the `.{name}.partial` of earlier versions, whose source is unknown) are removed when a
//! writer starts. Beside each archived file, a hidden `.{name}.source` holds the URL its bytes came from.
//!
//! Writes go to the page cache through a large buffer on the calling thread; only the opening (which re-reads a
//! partial file to resume its hash) and the final flush run on blocking threads.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::{Archive, ArchiveError, FileKey, FileKind, FileWriter, LinkRequest, ReadLink};
use crate::digest::{hex, sha256_hex};
use crate::local_names;
use crate::recording::ArchivedFile;

/// The write buffer: large enough that a download costs few system calls.
const BUFFER_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct EmbeddedArchive {
    root: PathBuf,
}

impl EmbeddedArchive {
    /// Opens (creating if needed) the archive under `data_dir/archive` and checks that it can write there.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Self, ArchiveError> {
        let root = data_dir.as_ref().join("archive");
        fs::create_dir_all(&root).map_err(io_error("create", &root))?;
        let probe = root.join(format!(".probe-{}", std::process::id()));
        File::create(&probe).map_err(io_error("write to", &root))?;
        fs::remove_file(&probe).map_err(io_error("write to", &root))?;
        let root = root.canonicalize().map_err(io_error("find", &root))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn folder(&self, key: &FileKey) -> PathBuf {
        self.root
            .join(local_names::file_name(&key.call_id))
            .join(local_names::file_name(&key.recording_id))
    }

    fn name(key: &FileKey) -> String {
        format!("{}{}", local_names::file_name(&key.chunk_id), Self::suffix(key))
    }

    /// What follows the chunk's encoded id in a file's name.
    fn suffix(key: &FileKey) -> String {
        match &key.kind {
            FileKind::Content { extension } => format!(".content.{extension}"),
            FileKind::Metadata => ".metadata.json".to_owned(),
        }
    }

    fn path(&self, key: &FileKey) -> PathBuf {
        self.folder(key).join(Self::name(key))
    }

    /// Where an archived file is: under its name, or under the one an earlier version gave it (blocking).
    fn found_path(&self, key: &FileKey) -> PathBuf {
        let call = local_names::entry(&self.root, &key.call_id, "");
        let recording = local_names::entry(&call, &key.recording_id, "");
        local_names::entry(&recording, &key.chunk_id, &Self::suffix(key))
    }
}

/// A file's location as archive states record it: its `file://` URL.
fn file_location(path: &Path) -> String {
    url::Url::from_file_path(path)
        .map(String::from)
        .unwrap_or_else(|()| path.display().to_string())
}

#[async_trait]
impl Archive for EmbeddedArchive {
    fn location(&self, key: &FileKey) -> String {
        file_location(&self.path(key))
    }

    async fn existing(&self, key: &FileKey) -> Result<Option<ArchivedFile>, ArchiveError> {
        let (archive, key) = (self.clone(), key.clone());
        blocking(move || {
            let path = archive.found_path(&key);
            let location = file_location(&path);
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_error("read", &path)(e)),
            };
            let (bytes, hasher) = hash(&mut file).map_err(io_error("read", &path))?;
            let source = match fs::read_to_string(source_path(&path)) {
                Ok(source) => Some(source),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_error("read", &source_path(&path))(e)),
            };
            Ok(Some(ArchivedFile {
                location,
                bytes,
                sha256: hex(&hasher.finalize()),
                source,
            }))
        })
        .await
    }

    async fn read_link(&self, key: &FileKey, _: &LinkRequest) -> Result<ReadLink, ArchiveError> {
        let (archive, key) = (self.clone(), key.clone());
        let path = blocking(move || Ok(archive.found_path(&key))).await?;
        let url = url::Url::from_file_path(&path).map_err(|()| ArchiveError::Io {
            action: "link",
            path: path.clone(),
            source: io::Error::other("not an absolute path"),
        })?;
        Ok(ReadLink { url, expires_on: None })
    }

    async fn remove(&self, key: &FileKey) -> Result<bool, ArchiveError> {
        let (archive, key) = (self.clone(), key.clone());
        blocking(move || {
            let path = archive.found_path(&key);
            let removed = remove_file(&path)?;
            remove_file(&source_path(&path))?;
            if let Some(folder) = path.parent() {
                remove_other_partials(folder, &Self::name(&key), Path::new(""));
                sync(folder)?;
            }
            Ok(removed)
        })
        .await
    }

    async fn erase(&self, call_id: &str, recording_id: Option<&str>) -> Result<u64, ArchiveError> {
        let (root, call_id, recording_id) = (self.root.clone(), call_id.to_owned(), recording_id.map(str::to_owned));
        blocking(move || {
            // Under every name an id may have (an earlier version's folder, and the one written to since), with
            // the partial files in them.
            let mut folders = local_names::entries(&root, &call_id, "");
            if let Some(recording_id) = &recording_id {
                folders = folders
                    .iter()
                    .flat_map(|call| local_names::entries(call, recording_id, ""))
                    .collect();
            }
            let mut files = 0;
            for folder in &folders {
                files += count_files(folder).map_err(io_error("read", folder))?;
                match fs::remove_dir_all(folder) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error("remove", folder)(e)),
                }
                if let Some(parent) = folder.parent() {
                    sync(parent)?;
                }
            }
            Ok(files)
        })
        .await
    }

    async fn writer(&self, key: &FileKey, source: &str) -> Result<Box<dyn FileWriter>, ArchiveError> {
        let folder = self.folder(key);
        let name = Self::name(key);
        let location = self.location(key);
        let root = self.root.clone();
        let tag = sha256_hex(&[b"source", source.as_bytes()]);
        let source = source.to_owned();
        blocking(move || {
            fs::create_dir_all(&folder).map_err(io_error("create", &folder))?;
            let lock_path = folder.join(format!(".{name}.lock"));
            let lock = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
                .map_err(io_error("open", &lock_path))?;
            match lock.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Err(ArchiveError::Busy(location)),
                Err(TryLockError::Error(e)) => return Err(io_error("lock", &lock_path)(e)),
            }
            let target = folder.join(&name);
            if target.exists() {
                // Another worker finished the file between our look and our lock.
                return Err(ArchiveError::Busy(location));
            }
            let partial = folder.join(format!(".{name}.{}.partial", &tag[..32]));
            remove_other_partials(&folder, &name, &partial);
            let mut file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(&partial)
                .map_err(io_error("open", &partial))?;
            let (written, hasher) = hash(&mut file).map_err(io_error("read", &partial))?;
            Ok(Box::new(EmbeddedWriter {
                source: source.clone(),
                file: BufWriter::with_capacity(BUFFER_BYTES, file),
                _lock: lock,
                lock_path,
                partial,
                target,
                folders: vec![
                    folder.clone(),
                    folder.parent().map(Path::to_owned).unwrap_or_default(),
                    root,
                ],
                location,
                written,
                hasher: BackgroundHasher::start(hasher),
            }) as Box<dyn FileWriter>)
        })
        .await
    }
}

/// Removes the partial files of `name` other than `keep`: another source's bytes, or an earlier version's
/// `.{name}.partial`, which no writer may continue. Called under the file's lock; a file that cannot be removed is
/// left for the next writer.
fn remove_other_partials(folder: &Path, name: &str, keep: &Path) {
    let prefix = format!(".{name}.");
    let Ok(entries) = fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        let entry_name = entry_name.to_string_lossy();
        if entry_name.starts_with(&prefix) && entry_name.ends_with(".partial") && entry.path() != keep {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The hidden file beside an archived file that holds the URL its bytes came from.
fn source_path(file: &Path) -> PathBuf {
    let name = file.file_name().map(|name| name.to_string_lossy()).unwrap_or_default();
    file.with_file_name(format!(".{name}.source"))
}

/// Flushes a folder's entries to disk; a folder that is not there has none.
fn sync(folder: &Path) -> Result<(), ArchiveError> {
    match File::open(folder).and_then(|dir| dir.sync_all()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("flush", folder)(e)),
    }
}

/// Removes a file; whether it was there.
fn remove_file(path: &Path) -> Result<bool, ArchiveError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("remove", path)(e)),
    }
}

/// The archived files under `folder` (not the hidden partial and lock files), however deep; none when it is missing.
fn count_files(folder: &Path) -> io::Result<u64> {
    let entries = match fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut files = 0;
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            files += count_files(&entry.path())?;
        } else if !entry.file_name().to_string_lossy().starts_with('.') {
            files += 1;
        }
    }
    Ok(files)
}

/// The size and running hash of a file's bytes, reading it from the start.
fn hash(file: &mut File) -> io::Result<(u64, Sha256)> {
    use std::io::Seek;
    file.seek(io::SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok((total, hasher));
        }
        hasher.update(&buffer[..read]);
        total += read as u64;
    }
}

/// A writer dropped without its commit keeps what it wrote (the buffer is flushed on drop), for the next attempt to
/// resume from.
struct EmbeddedWriter {
    /// The URL the bytes come from, kept beside the file at its commit.
    source: String,
    /// The partial file of this writer's source.
    file: BufWriter<File>,
    /// The file's lock, held for as long as this writer lives (until after the rename at its commit).
    _lock: File,
    lock_path: PathBuf,
    partial: PathBuf,
    target: PathBuf,
    /// The folders whose entries must reach the disk with the file: the recording's, the call's, the archive's.
    folders: Vec<PathBuf>,
    location: String,
    written: u64,
    hasher: BackgroundHasher,
}

#[async_trait]
impl FileWriter for EmbeddedWriter {
    fn offset(&self) -> u64 {
        self.written
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ArchiveError> {
        self.file.write_all(bytes).map_err(io_error("write", &self.partial))?;
        self.hasher.update(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    async fn restart(&mut self) -> Result<(), ArchiveError> {
        self.file.flush().map_err(io_error("write", &self.partial))?;
        self.file
            .get_ref()
            .set_len(0)
            .map_err(io_error("truncate", &self.partial))?;
        std::mem::replace(&mut self.hasher, BackgroundHasher::start(Sha256::new())).discard();
        self.written = 0;
        Ok(())
    }

    async fn commit(self: Box<Self>, expected_bytes: Option<u64>) -> Result<ArchivedFile, ArchiveError> {
        let mut this = *self;
        if let Some(expected) = expected_bytes.filter(|expected| *expected != this.written) {
            return Err(ArchiveError::WrongSize {
                what: this.location,
                expected,
                actual: this.written,
            });
        }
        let sha256 = hex(&std::mem::replace(&mut this.hasher, BackgroundHasher::idle())
            .finish()?
            .finalize());
        let (written, location, source) = (this.written, this.location.clone(), this.source.clone());
        blocking(move || {
            let file = this
                .file
                .into_inner()
                .map_err(|e| io_error("write", &this.partial)(e.into_error()))?;
            file.sync_all().map_err(io_error("flush", &this.partial))?;
            let on_disk = file.metadata().map_err(io_error("read", &this.partial))?.len();
            if on_disk != written {
                return Err(ArchiveError::WrongSize {
                    what: this.partial.display().to_string(),
                    expected: written,
                    actual: on_disk,
                });
            }
            // The source first: a file under its name always says where its bytes came from (a file without one is
            // an earlier version's).
            let source = source_path(&this.target);
            fs::write(&source, this.source.as_bytes()).map_err(io_error("write", &source))?;
            fs::rename(&this.partial, &this.target).map_err(io_error("rename", &this.target))?;
            // A writer that opens the lock file after this finds the file there under the lock, and stops.
            let _ = fs::remove_file(&this.lock_path);
            for folder in &this.folders {
                File::open(folder)
                    .and_then(|d| d.sync_all())
                    .map_err(io_error("flush", folder))?;
            }
            Ok(())
            // The lock is released when `_lock` closes here, after the rename.
        })
        .await?;
        Ok(ArchivedFile {
            location,
            bytes: written,
            sha256,
            source: Some(source),
        })
    }
}

/// A SHA-256 computed on a thread of its own, so that hashing a download overlaps with receiving and writing it (on
/// two cores, hashing inline cost a quarter of the archive's throughput: SHA-256 runs at about 1.2 GB/s here, a
/// copy to the page cache at about 0.5 GB/s). Bytes wait in a bounded queue — at most [`HASH_QUEUE`] pieces, a few
/// MiB — so a hasher that falls behind slows the download rather than growing memory.
struct BackgroundHasher {
    pieces: Option<std::sync::mpsc::SyncSender<bytes::Bytes>>,
    thread: Option<std::thread::JoinHandle<Sha256>>,
}

/// Pieces of a download queued for the hashing thread (each is what one read of the connection gave, up to 64 KiB).
const HASH_QUEUE: usize = 64;

impl BackgroundHasher {
    /// Continues `hasher` (the bytes kept so far) on a new thread.
    fn start(hasher: Sha256) -> Self {
        let (pieces, queue) = std::sync::mpsc::sync_channel::<bytes::Bytes>(HASH_QUEUE);
        let thread = std::thread::Builder::new()
            .name("archive-sha256".to_owned())
            .spawn(move || {
                let mut hasher = hasher;
                for piece in queue {
                    hasher.update(&piece);
                }
                hasher
            });
        match thread {
            Ok(thread) => Self {
                pieces: Some(pieces),
                thread: Some(thread),
            },
            // No thread to be had: [`BackgroundHasher::update`] reports it, and the job runs again later.
            Err(_) => Self::idle(),
        }
    }

    /// A hasher with no thread, standing in for one that was taken.
    fn idle() -> Self {
        Self {
            pieces: None,
            thread: None,
        }
    }

    fn update(&mut self, bytes: &[u8]) -> Result<(), ArchiveError> {
        let sent = self
            .pieces
            .as_ref()
            .is_some_and(|pieces| pieces.send(bytes::Bytes::copy_from_slice(bytes)).is_ok());
        if sent { Ok(()) } else { Err(hasher_gone()) }
    }

    /// The hash of every byte sent, once the thread has taken them all.
    fn finish(mut self) -> Result<Sha256, ArchiveError> {
        drop(self.pieces.take());
        self.thread
            .take()
            .and_then(|thread| thread.join().ok())
            .ok_or_else(hasher_gone)
    }

    /// Stops the thread without waiting for its hash.
    fn discard(mut self) {
        drop(self.pieces.take());
    }
}

fn hasher_gone() -> ArchiveError {
    ArchiveError::Io {
        action: "hash",
        path: PathBuf::from("a file of the embedded archive"),
        source: io::Error::other("the hashing thread could not be started or stopped unexpectedly"),
    }
}

/// Runs file work off the async runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ArchiveError> + Send + 'static,
) -> Result<T, ArchiveError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|join_error| {
        Err(ArchiveError::Io {
            action: "finish a write in",
            path: PathBuf::from("the embedded archive"),
            source: io::Error::other(join_error.to_string()),
        })
    })
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ArchiveError {
    move |source| ArchiveError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "https://us-storage.asm.skype.com/v1/objects/d0/content/video";

    fn key(chunk: &str) -> FileKey {
        FileKey {
            call_id: "call-1".into(),
            recording_id: "rec-1".into(),
            chunk_id: chunk.into(),
            kind: FileKind::Content {
                extension: "mp4".into(),
            },
        }
    }

    #[tokio::test]
    async fn a_file_appears_under_its_name_only_when_committed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let archive = EmbeddedArchive::open(dir.path()).unwrap();
        let mut writer = archive.writer(&key("d0"), SOURCE).await.unwrap();
        writer.write(b"hello ").await.unwrap();
        assert!(
            archive.existing(&key("d0")).await.unwrap().is_none(),
            "not there before the commit"
        );
        writer.write(b"world").await.unwrap();
        let file = writer.commit(Some(11)).await.unwrap();
        assert_eq!(file.bytes, 11);
        assert_eq!(file.sha256, hex(&Sha256::digest(b"hello world")));
        assert!(file.location.starts_with("file:///") && file.location.ends_with("/call-1/rec-1/d0.content.mp4"));
        assert_eq!(archive.existing(&key("d0")).await.unwrap(), Some(file));
        let mut names: Vec<String> = fs::read_dir(archive.root().join("call-1/rec-1"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [".d0.content.mp4.source", "d0.content.mp4"],
            "no partial or lock file left; the file's source beside it"
        );
    }

    #[tokio::test]
    async fn a_later_writer_resumes_where_an_earlier_one_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let archive = EmbeddedArchive::open(dir.path()).unwrap();
        let mut first = archive.writer(&key("d0"), SOURCE).await.unwrap();
        first.write(b"hello ").await.unwrap();
        drop(first);
        let mut second = archive.writer(&key("d0"), SOURCE).await.unwrap();
        assert_eq!(second.offset(), 6);
        second.write(b"world").await.unwrap();
        let file = second.commit(Some(11)).await.unwrap();
        assert_eq!(
            file.sha256,
            hex(&Sha256::digest(b"hello world")),
            "the hash covers the resumed bytes"
        );
    }

    #[tokio::test]
    async fn bytes_of_one_source_are_never_continued_with_another() {
        let dir = tempfile::tempdir().unwrap();
        let archive = EmbeddedArchive::open(dir.path()).unwrap();
        let mut first = archive.writer(&key("d0"), SOURCE).await.unwrap();
        first.write(b"from the first URL ").await.unwrap();
        drop(first);
        let other = "https://us-storage.asm.skype.com/v1/objects/d0-again/content/video";
        let mut second = archive.writer(&key("d0"), other).await.unwrap();
        assert_eq!(second.offset(), 0, "another source starts over");
        second.write(b"hello").await.unwrap();
        let file = second.commit(Some(5)).await.unwrap();
        assert_eq!(file.sha256, hex(&Sha256::digest(b"hello")));
        let left: Vec<String> = fs::read_dir(archive.root().join("call-1/rec-1"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".partial"))
            .collect();
        assert!(left.is_empty(), "the first source's bytes are removed: {left:?}");
    }

    #[tokio::test]
    async fn an_earlier_versions_partial_file_of_unknown_source_is_not_continued() {
        let dir = tempfile::tempdir().unwrap();
        let archive = EmbeddedArchive::open(dir.path()).unwrap();
        let folder = archive.root().join("call-1/rec-1");
        fs::create_dir_all(&folder).unwrap();
        fs::write(folder.join(".d0.content.mp4.partial"), b"old bytes").unwrap();
        let writer = archive.writer(&key("d0"), SOURCE).await.unwrap();
        assert_eq!(writer.offset(), 0);
        assert!(!folder.join(".d0.content.mp4.partial").exists());
    }

    #[tokio::test]
    async fn one_writer_at_a_time_and_a_short_file_is_never_committed() {
        let dir = tempfile::tempdir().unwrap();
        let archive = EmbeddedArchive::open(dir.path()).unwrap();
        let mut first = archive.writer(&key("d0"), SOURCE).await.unwrap();
        assert!(matches!(
            archive.writer(&key("d0"), SOURCE).await,
            Err(ArchiveError::Busy(_))
        ));
        first.write(b"abc").await.unwrap();
        assert!(matches!(
            first.commit(Some(4)).await,
            Err(ArchiveError::WrongSize { .. })
        ));
        assert!(archive.existing(&key("d0")).await.unwrap().is_none());
        let mut again = archive.writer(&key("d0"), SOURCE).await.unwrap();
        assert_eq!(again.offset(), 3, "the bytes are kept for a resume");
        again.restart().await.unwrap();
        assert_eq!(again.offset(), 0);
    }

    #[tokio::test]
    async fn hostile_ids_stay_inside_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let archive = EmbeddedArchive::open(dir.path()).unwrap();
        let hostile = FileKey {
            call_id: "..".into(),
            recording_id: "../../etc".into(),
            chunk_id: "/passwd".into(),
            kind: FileKind::Metadata,
        };
        let mut writer = archive.writer(&hostile, SOURCE).await.unwrap();
        writer.write(b"{}").await.unwrap();
        let file = writer.commit(None).await.unwrap();
        let path = url::Url::parse(&file.location).unwrap().to_file_path().unwrap();
        assert!(path.starts_with(archive.root()), "{}", path.display());
    }

    fn file_key(call_id: &str, recording_id: &str, chunk_id: &str) -> FileKey {
        FileKey {
            call_id: call_id.into(),
            recording_id: recording_id.into(),
            chunk_id: chunk_id.into(),
            kind: FileKind::Metadata,
        }
    }

    #[test]
    fn ids_differing_only_in_case_get_paths_that_differ_in_any_case() {
        let archive = EmbeddedArchive {
            root: PathBuf::from("/archive"),
        };
        let folded = |key: &FileKey| archive.path(key).to_string_lossy().to_ascii_lowercase();
        assert_ne!(folded(&file_key("Call", "r", "c")), folded(&file_key("call", "r", "c")));
        assert_ne!(folded(&file_key("c", "eyJQ", "c")), folded(&file_key("c", "eyjq", "c")));
        assert_ne!(folded(&file_key("c", "r", "D0")), folded(&file_key("c", "r", "d0")));
    }

    #[test]
    fn no_folder_or_file_name_ends_in_a_dot() {
        let archive = EmbeddedArchive {
            root: PathBuf::from("/archive"),
        };
        let path = archive.path(&file_key("call.", "rec.", "chunk."));
        for name in path.strip_prefix("/archive").unwrap() {
            assert!(!name.to_string_lossy().ends_with('.'), "{}", path.display());
        }
        assert_ne!(
            archive.path(&file_key("call.", "r", "c")),
            archive.path(&file_key("call", "r", "c"))
        );
    }

    #[tokio::test]
    async fn a_file_an_earlier_version_archived_is_still_found() {
        let dir = tempfile::tempdir().unwrap();
        let archive = EmbeddedArchive::open(dir.path()).unwrap();
        let key = FileKey {
            call_id: "4b1d8a9e-Call".into(),
            recording_id: "eyJQbGF0".into(),
            chunk_id: "0-eus-D2".into(),
            kind: FileKind::Content {
                extension: "mp4".into(),
            },
        };
        // The earlier version's names: the id's bytes as they are, whatever their case.
        let folder = archive.root().join("4b1d8a9e-Call/eyJQbGF0");
        fs::create_dir_all(&folder).unwrap();
        fs::write(folder.join("0-eus-D2.content.mp4"), b"hello world").unwrap();
        assert_ne!(
            archive.path(&key),
            folder.join("0-eus-D2.content.mp4"),
            "the name changed"
        );
        let found = archive
            .existing(&key)
            .await
            .unwrap()
            .expect("found under the earlier name");
        assert_eq!(found.bytes, 11);
        assert_eq!(found.sha256, hex(&Sha256::digest(b"hello world")));
        assert!(
            found.location.ends_with("/4b1d8a9e-Call/eyJQbGF0/0-eus-D2.content.mp4"),
            "{}",
            found.location
        );
        let variant = FileKey {
            recording_id: "EYJQBGF0".into(),
            ..key.clone()
        };
        assert_eq!(
            archive.existing(&variant).await.unwrap(),
            None,
            "a case variant is another recording"
        );
    }

    #[tokio::test]
    async fn erasing_removes_a_call_under_every_name_it_has_with_the_bytes_of_unfinished_writes() {
        let dir = tempfile::tempdir().unwrap();
        let archive = EmbeddedArchive::open(dir.path()).unwrap();
        let key = |recording: &str, chunk: &str| FileKey {
            call_id: "4b1d8a9e-Call".into(),
            recording_id: recording.into(),
            chunk_id: chunk.into(),
            kind: FileKind::Content {
                extension: "mp4".into(),
            },
        };
        // An earlier version archived d0 under the ids' own names; d1 went to the current ones since, and d2 is
        // half downloaded.
        let earlier = archive.root().join("4b1d8a9e-Call/eyJQbGF0");
        fs::create_dir_all(&earlier).unwrap();
        fs::write(earlier.join("d0.content.mp4"), b"old bytes").unwrap();
        let mut writer = archive.writer(&key("eyJQbGF0", "d1"), SOURCE).await.unwrap();
        writer.write(b"new bytes").await.unwrap();
        writer.commit(Some(9)).await.unwrap();
        let mut unfinished = archive.writer(&key("eyJQbGF0", "d2"), SOURCE).await.unwrap();
        unfinished.write(b"half").await.unwrap();
        drop(unfinished);
        let mut other = archive.writer(&key("other", "d3"), SOURCE).await.unwrap();
        other.write(b"kept").await.unwrap();
        other.commit(Some(4)).await.unwrap();

        assert_eq!(archive.erase("4b1d8a9e-Call", Some("eyJQbGF0")).await.unwrap(), 2);
        let left: Vec<String> = files_under(archive.root());
        assert_eq!(
            left,
            [
                "4b1d8a9e-Call~08/other/.d3.content.mp4.source",
                "4b1d8a9e-Call~08/other/d3.content.mp4"
            ],
            "only the other recording's file, with the record of its source"
        );
        assert_eq!(archive.erase("4b1d8a9e-Call", None).await.unwrap(), 1);
        assert!(files_under(archive.root()).is_empty());
    }

    /// Every file under `root`, hidden ones too, relative to it.
    fn files_under(root: &Path) -> Vec<String> {
        let mut files = Vec::new();
        let mut folders = vec![root.to_owned()];
        while let Some(folder) = folders.pop() {
            for entry in fs::read_dir(&folder).unwrap().flatten() {
                if entry.file_type().unwrap().is_dir() {
                    folders.push(entry.path());
                } else {
                    let path = entry.path();
                    files.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        files.sort();
        files
    }
}
