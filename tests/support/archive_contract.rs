//! The archive contract every archive passes (`tests/archive_contract.rs`): a file read back as written, a write
//! resumed after a cut with the same bytes and hash, one whole file however many writers race, an archive that never
//! vouches for bytes it does not hold, and names that no id can bend.

use std::path::PathBuf;
use std::sync::Arc;

use acs_recording_handler::archive::{Archive, ArchiveError, BlobArchive, FileKey, FileKind};
use acs_recording_handler::digest::hex;
use acs_recording_handler::recording::ArchivedFile;
use async_trait::async_trait;
use azure_storage_blob::models::{
    BlobClientGetPropertiesResultHeaders, BlobClientUploadOptions, BlobContainerClientListBlobsOptions,
    ListBlobsIncludeItem,
};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

/// The URL the contract's bytes come from.
pub const SOURCE: &str = "https://us-storage.asm.skype.com/v1/objects/d0/content/video";

/// How a test sees into an archive from outside it, to check what it really holds.
#[async_trait]
pub trait Inspect: Send + Sync {
    /// The SHA-256 (lowercase hex) and size of the bytes kept at `location`; `None` when nothing is there.
    async fn read(&self, location: &str) -> Option<(String, u64)>;
    /// Replaces the bytes of a committed file behind the archive's back, keeping whatever else it records.
    async fn tamper(&self, location: &str, bytes: &[u8]);
    /// The location of every complete file the archive holds.
    async fn names(&self) -> Vec<String>;
    /// Everything the archive keeps, complete or not (partial files, blobs with staged blocks only), each named
    /// by its path under the root.
    async fn everything(&self) -> Vec<String>;
    /// What every location starts with.
    fn root(&self) -> String;
    /// Whether the archive keeps each file's committed digest and size beside its bytes (Blob Storage's metadata),
    /// so that it can tell a file changed behind its back; the embedded archive keeps only the bytes.
    fn keeps_committed_digests(&self) -> bool;
}

/// The embedded archive's folder, read straight from disk.
pub struct Folder {
    pub root: PathBuf,
}

#[async_trait]
impl Inspect for Folder {
    async fn read(&self, location: &str) -> Option<(String, u64)> {
        let path = url::Url::parse(location).unwrap().to_file_path().unwrap();
        let bytes = std::fs::read(path).ok()?;
        Some((sha256(&bytes), bytes.len() as u64))
    }

    async fn tamper(&self, location: &str, bytes: &[u8]) {
        std::fs::write(url::Url::parse(location).unwrap().to_file_path().unwrap(), bytes).unwrap();
    }

    async fn names(&self) -> Vec<String> {
        super::files_under(&self.root)
            .into_iter()
            .filter(|path| !path.file_name().unwrap().to_string_lossy().starts_with('.'))
            .map(|path| url::Url::from_file_path(&path).unwrap().to_string())
            .collect()
    }

    async fn everything(&self) -> Vec<String> {
        // Lock files hold no bytes: one stays beside a removed file, so that writers racing the removal still
        // exclude each other.
        let mut paths: Vec<String> = super::files_under(&self.root)
            .into_iter()
            .filter(|path| !path.to_string_lossy().ends_with(".lock"))
            .map(|path| path.strip_prefix(&self.root).unwrap().to_string_lossy().into_owned())
            .collect();
        paths.sort();
        paths
    }

    fn root(&self) -> String {
        format!(
            "{}/",
            url::Url::from_directory_path(&self.root)
                .unwrap()
                .as_str()
                .trim_end_matches('/')
        )
    }

    fn keeps_committed_digests(&self) -> bool {
        false
    }
}

/// A Blob Storage archive's container, read and listed with the archive's own signing.
pub struct Container {
    pub archive: BlobArchive,
}

#[async_trait]
impl Inspect for Container {
    async fn read(&self, location: &str) -> Option<(String, u64)> {
        let client = self.archive.blob_client(url::Url::parse(location).unwrap()).unwrap();
        let response = match client.download(None).await {
            Ok(response) => response,
            Err(e) if e.http_status().map(u16::from) == Some(404) => return None,
            Err(e) => panic!("download {location}: {e}"),
        };
        let mut body = response.body;
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        while let Some(piece) = body.next().await {
            let piece = piece.unwrap();
            bytes += piece.len() as u64;
            hasher.update(&piece);
        }
        Some((hex(&hasher.finalize()), bytes))
    }

    async fn tamper(&self, location: &str, bytes: &[u8]) {
        let client = self.archive.blob_client(url::Url::parse(location).unwrap()).unwrap();
        let metadata = client.get_properties(None).await.unwrap().metadata().unwrap();
        let options = BlobClientUploadOptions {
            metadata: Some(metadata),
            ..Default::default()
        };
        let body = azure_core::http::Body::from(bytes.to_vec());
        client.upload(body.into(), Some(options)).await.unwrap();
    }

    async fn names(&self) -> Vec<String> {
        let mut pages = self
            .archive
            .container_client()
            .unwrap()
            .list_blobs(None)
            .unwrap()
            .into_pages();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            for name in page
                .unwrap()
                .into_model()
                .unwrap()
                .blob_items
                .into_iter()
                .filter_map(|b| b.name)
            {
                let mut location = self.archive.container_url().clone();
                location.path_segments_mut().unwrap().extend(name.split('/'));
                names.push(location.to_string());
            }
        }
        names.sort();
        names
    }

    async fn everything(&self) -> Vec<String> {
        let options = BlobContainerClientListBlobsOptions {
            include: Some(vec![ListBlobsIncludeItem::UncommittedBlobs]),
            ..Default::default()
        };
        let mut pages = self
            .archive
            .container_client()
            .unwrap()
            .list_blobs(Some(options))
            .unwrap()
            .into_pages();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            names.extend(
                page.unwrap()
                    .into_model()
                    .unwrap()
                    .blob_items
                    .into_iter()
                    .filter_map(|b| b.name),
            );
        }
        names.sort();
        names
    }

    fn root(&self) -> String {
        format!("{}/", self.archive.container_url())
    }

    fn keeps_committed_digests(&self) -> bool {
        true
    }
}

/// `n` bytes that differ with `seed`.
pub fn content(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 ^ seed)
        .collect()
}

pub fn key(chunk: &str) -> FileKey {
    FileKey {
        call_id: "call-1".into(),
        recording_id: "rec-1".into(),
        chunk_id: chunk.into(),
        kind: FileKind::Content {
            extension: "mp4".into(),
        },
    }
}

/// `key(chunk)` in another recording of the call.
fn key_in(recording: &str, chunk: &str) -> FileKey {
    FileKey {
        recording_id: recording.into(),
        ..key(chunk)
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Writes `bytes` in uneven pieces from the writer's offset on, and commits.
async fn write_rest(archive: &dyn Archive, key: &FileKey, bytes: &[u8]) -> Result<ArchivedFile, ArchiveError> {
    let mut writer = archive.writer(key, SOURCE).await?;
    let mut at = writer.offset() as usize;
    assert!(at <= bytes.len(), "a writer never holds more than was written");
    let mut piece = 1000;
    while at < bytes.len() {
        let end = (at + piece).min(bytes.len());
        writer.write(&bytes[at..end]).await?;
        at = end;
        piece = piece * 7 % 70_001 + 1;
    }
    writer.commit(Some(bytes.len() as u64)).await
}

pub async fn a_file_is_read_back_as_written(archive: Arc<dyn Archive>, inspect: &dyn Inspect, size: usize) {
    let bytes = content(1, size);
    let d0 = key("d0");
    let mut writer = archive.writer(&d0, SOURCE).await.unwrap();
    assert_eq!(writer.offset(), 0);
    writer.write(&bytes[..size / 2]).await.unwrap();
    assert!(
        archive.existing(&d0).await.unwrap().is_none(),
        "nothing under the name before the commit"
    );
    assert_eq!(writer.offset(), (size / 2) as u64);
    writer.write(&bytes[size / 2..]).await.unwrap();
    let file = writer.commit(Some(size as u64)).await.unwrap();
    assert_eq!(
        file,
        ArchivedFile {
            location: archive.location(&d0),
            bytes: size as u64,
            sha256: sha256(&bytes),
            source: Some(SOURCE.to_owned()),
        }
    );
    assert_eq!(archive.existing(&d0).await.unwrap(), Some(file.clone()));
    assert_eq!(inspect.read(&file.location).await, Some((sha256(&bytes), size as u64)));
    let metadata = FileKey {
        kind: FileKind::Metadata,
        ..d0.clone()
    };
    assert_ne!(archive.location(&metadata), file.location);
    assert!(archive.existing(&metadata).await.unwrap().is_none());
    let short = archive.writer(&key("d1"), SOURCE).await.unwrap();
    assert!(
        matches!(short.commit(Some(5)).await, Err(ArchiveError::WrongSize { .. })),
        "a file shorter than announced is never committed"
    );
    assert_eq!(inspect.names().await.len(), 1, "{:?}", inspect.names().await);
}

/// A writer dropped after `cut` bytes; the next resumes from what was kept and ends with the same bytes and hash.
pub async fn a_write_resumes_after_a_cut(archive: Arc<dyn Archive>, inspect: &dyn Inspect, size: usize, cut: usize) {
    let bytes = content(2, size);
    let mut first = archive.writer(&key("d0"), SOURCE).await.unwrap();
    first.write(&bytes[..cut]).await.unwrap();
    drop(first);
    let mut second = archive.writer(&key("d0"), SOURCE).await.unwrap();
    let kept = second.offset();
    assert!(kept > 0 && kept <= cut as u64, "kept {kept} of the {cut} bytes written");
    second.write(&bytes[kept as usize..]).await.unwrap();
    let file = second.commit(Some(size as u64)).await.unwrap();
    assert_eq!(file.sha256, sha256(&bytes), "the hash covers the resumed bytes");
    assert_eq!(inspect.read(&file.location).await, Some((sha256(&bytes), size as u64)));

    // A restart (the server ignored the range asked for) drops what was kept.
    let mut third = archive.writer(&key("d1"), SOURCE).await.unwrap();
    third.write(&content(9, cut)).await.unwrap();
    drop(third);
    let mut fourth = archive.writer(&key("d1"), SOURCE).await.unwrap();
    fourth.restart().await.unwrap();
    assert_eq!(fourth.offset(), 0);
    fourth.write(&bytes).await.unwrap();
    assert_eq!(fourth.commit(None).await.unwrap().sha256, sha256(&bytes));
}

/// Bytes kept from one source are never continued with another's: a writer for a second URL of the same file
/// starts over, and two attempts that got different bytes for one file are never committed together — the file
/// holds exactly one source's bytes.
pub async fn bytes_of_two_sources_are_never_spliced(
    archive: Arc<dyn Archive>,
    inspect: &dyn Inspect,
    size: usize,
    cut: usize,
) {
    let (first_bytes, second_bytes) = (content(3, size), content(4, size));
    let other = "https://us-storage.asm.skype.com/v1/objects/d0-again/content/video";
    let mut first = archive.writer(&key("d0"), SOURCE).await.unwrap();
    first.write(&first_bytes[..cut]).await.unwrap();
    drop(first);
    let mut second = archive.writer(&key("d0"), other).await.unwrap();
    assert_eq!(second.offset(), 0, "another source's bytes are not continued");
    second.write(&second_bytes[..cut]).await.unwrap();
    drop(second);
    // Back to the first source: whatever it resumes from, the file it commits holds the first source's bytes only.
    let mut third = archive.writer(&key("d0"), SOURCE).await.unwrap();
    let kept = third.offset() as usize;
    assert!(kept <= cut, "kept {kept} of the {cut} bytes written");
    third.write(&first_bytes[kept..]).await.unwrap();
    let file = third.commit(Some(size as u64)).await.unwrap();
    assert_eq!(file.sha256, sha256(&first_bytes), "the hash is of one source's bytes");
    assert_eq!(
        inspect.read(&file.location).await,
        Some((sha256(&first_bytes), size as u64))
    );
}

/// `writers` writers of one file at once: every one either commits the same whole file or is told the file is busy,
/// at least one commits, and exactly one file is left.
pub async fn concurrent_writers_leave_one_whole_file(
    archive: Arc<dyn Archive>,
    inspect: &dyn Inspect,
    size: usize,
    writers: usize,
) {
    let bytes: Arc<Vec<u8>> = Arc::new(content(3, size));
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (archive, bytes) = (archive.clone(), bytes.clone());
            tokio::spawn(async move { write_rest(archive.as_ref(), &key("d0"), &bytes).await })
        })
        .collect();
    let mut committed = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(file) => committed.push(file),
            Err(ArchiveError::Busy(_)) => {}
            Err(e) => panic!("a writer failed: {e:?}"),
        }
    }
    assert!(!committed.is_empty(), "one writer commits");
    let expected = ArchivedFile {
        location: archive.location(&key("d0")),
        bytes: size as u64,
        sha256: sha256(&bytes),
        source: Some(SOURCE.to_owned()),
    };
    assert!(committed.iter().all(|file| *file == expected), "{committed:?}");
    assert_eq!(archive.existing(&key("d0")).await.unwrap(), Some(expected.clone()));
    assert_eq!(
        inspect.read(&expected.location).await,
        Some((sha256(&bytes), size as u64))
    );
    assert_eq!(inspect.names().await.len(), 1, "{:?}", inspect.names().await);
}

/// A committed file whose bytes were cut short behind the archive's back is never vouched for as the original: an
/// archive that keeps the committed digest and size refuses it (an operator must look); one that keeps only the
/// bytes reports exactly the bytes it holds now — also when they changed at the same size — never the original's
/// digest. (An archive keeping digests reads back sizes, not whole files: a change at the same size is not its case.)
pub async fn a_short_file_is_never_vouched_for(archive: Arc<dyn Archive>, inspect: &dyn Inspect) {
    let bytes = content(4, 10_000);
    let mut same_size = bytes.clone();
    same_size[5_000] ^= 0xff;
    let mut cases = vec![("d0", &bytes[..6_000])];
    if !inspect.keeps_committed_digests() {
        cases.push(("d1", &same_size[..]));
    }
    for (chunk, tampered) in cases {
        let key = key(chunk);
        let original = write_rest(archive.as_ref(), &key, &bytes).await.unwrap();
        inspect.tamper(&original.location, tampered).await;
        let held = inspect.read(&original.location).await;
        assert_eq!(
            held,
            Some((sha256(tampered), tampered.len() as u64)),
            "{chunk}: the tampering took"
        );
        let found = archive.existing(&key).await;
        if inspect.keeps_committed_digests() {
            match found {
                Err(e) => assert!(e.needs_operator(), "{chunk}: {e:?}"),
                Ok(file) => panic!("{chunk}: a file that no longer matches its commit was accepted: {file:?}"),
            }
        } else {
            let file = found.unwrap().expect("the file is still there");
            assert_ne!(file.sha256, original.sha256, "{chunk}: vouched for as the original");
            assert_eq!(
                (file.sha256, file.bytes),
                (sha256(tampered), tampered.len() as u64),
                "{chunk}"
            );
        }
    }
}

/// Ids that are paths, escapes, unicode or too long each get a name of their own, under the archive's root.
pub async fn names_from_hostile_ids_stay_distinct_and_inside(archive: Arc<dyn Archive>, inspect: &dyn Inspect) {
    let long = "x".repeat(300);
    let ids = [
        "..",
        ".",
        "../../etc",
        "/passwd",
        "a/b",
        "a%2Fb",
        "100%",
        "é🎙️",
        "sp ace?#&=+",
        &long,
        "",
    ];
    let mut locations = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let key = FileKey {
            call_id: (*id).to_owned(),
            recording_id: (*id).to_owned(),
            chunk_id: (*id).to_owned(),
            kind: FileKind::Metadata,
        };
        let bytes = content(i as u8, 100 + i);
        let file = write_rest(archive.as_ref(), &key, &bytes).await.unwrap();
        assert!(
            file.location.starts_with(&inspect.root()),
            "{id:?}: {} is outside {}",
            file.location,
            inspect.root()
        );
        assert_eq!(archive.existing(&key).await.unwrap(), Some(file.clone()), "{id:?}");
        assert_eq!(
            inspect.read(&file.location).await,
            Some((sha256(&bytes), bytes.len() as u64))
        );
        locations.push(file.location);
    }
    let mut distinct = locations.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len(), "{locations:#?}");
    assert_eq!(inspect.names().await.len(), ids.len(), "{:#?}", inspect.names().await);
}

/// Erasing a recording removes its files and every byte an unfinished write kept for them — a partial file, blocks
/// staged for a blob never committed — and nothing of another recording; erasing the call leaves nothing at all.
/// Removing one file removes the bytes kept for it too: a writer there starts from nothing.
pub async fn erasing_leaves_nothing_an_unfinished_write_kept(
    archive: Arc<dyn Archive>,
    inspect: &dyn Inspect,
    size: usize,
    cut: usize,
) {
    let bytes = content(5, size);
    write_rest(archive.as_ref(), &key("d0"), &bytes).await.unwrap();
    for key in [key("d1"), key_in("rec-2", "d2"), key_in("rec-3", "d3")] {
        let mut unfinished = archive.writer(&key, SOURCE).await.unwrap();
        unfinished.write(&bytes[..cut]).await.unwrap();
        drop(unfinished);
        let again = archive.writer(&key, SOURCE).await.unwrap();
        assert!(again.offset() > 0, "{key:?}: the cut write kept bytes");
    }
    let kept_for = |recording: &str, everything: &[String]| {
        everything
            .iter()
            .filter(|path| path.split('/').any(|segment| segment == recording))
            .count()
    };
    assert!(kept_for("rec-3", &inspect.everything().await) > 0);

    assert!(
        !archive.remove(&key_in("rec-3", "d3")).await.unwrap(),
        "no whole file was there"
    );
    assert_eq!(
        kept_for("rec-3", &inspect.everything().await),
        0,
        "{:?}",
        inspect.everything().await
    );
    let mut fresh = archive.writer(&key_in("rec-3", "d3"), SOURCE).await.unwrap();
    assert_eq!(fresh.offset(), 0, "nothing kept for the removed file");
    // Other bytes from the same source: were any of the removed bytes still kept (hidden, say), they would meet
    // these and nothing could be resumed.
    fresh.write(&content(6, cut)).await.unwrap();
    drop(fresh);
    let resumed = archive.writer(&key_in("rec-3", "d3"), SOURCE).await.unwrap();
    assert!(
        resumed.offset() > 0,
        "what a writer keeps after the removal is its own alone"
    );
    drop(resumed);
    assert!(archive.remove(&key_in("rec-3", "d3")).await.is_ok());

    assert_eq!(
        archive.erase("call-1", Some("rec-1")).await.unwrap(),
        1,
        "one whole file"
    );
    let left = inspect.everything().await;
    assert_eq!(kept_for("rec-1", &left), 0, "nothing of the erased recording: {left:?}");
    assert!(
        kept_for("rec-2", &left) > 0,
        "another recording keeps its bytes: {left:?}"
    );
    let fresh = archive.writer(&key("d1"), SOURCE).await.unwrap();
    assert_eq!(fresh.offset(), 0, "nothing kept for the erased recording");
    drop(fresh);

    assert_eq!(archive.erase("call-1", None).await.unwrap(), 0);
    assert_eq!(
        inspect.everything().await,
        Vec::<String>::new(),
        "nothing left of the call"
    );
}
