//! The archive contract, run against every archive: the embedded folder, and Blob Storage (Azurite, or a real
//! account with `ARCHIVE_TEST_BLOB_URI`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use acs_recording_handler::archive::blob::BLOCK_BYTES;
use acs_recording_handler::archive::{Archive, ArchiveError, BlobArchive, EmbeddedArchive, FileKey, FileKind};
use support::archive_contract::{self as contract, Container, Folder, Inspect};
use support::azurite::{BlobTarget, unique_container};

/// Small blocks, so that a few hundred kilobytes cross many block boundaries.
const SMALL_BLOCK: u32 = 64 * 1024;

fn embedded() -> (tempfile::TempDir, Arc<dyn Archive>, Folder) {
    let dir = tempfile::tempdir().unwrap();
    let archive = EmbeddedArchive::open(dir.path()).unwrap();
    let folder = Folder {
        root: archive.root().to_owned(),
    };
    (dir, Arc::new(archive), folder)
}

async fn blob(block_bytes: u32) -> (Arc<dyn Archive>, Container, BlobTarget) {
    let target = BlobTarget::start();
    let archive = target.archive(&unique_container()).await.with_block_bytes(block_bytes);
    (Arc::new(archive.clone()), Container { archive }, target)
}

#[tokio::test]
async fn embedded_a_file_is_read_back_as_written() {
    let (_dir, archive, folder) = embedded();
    contract::a_file_is_read_back_as_written(archive, &folder, 300_000).await;
}

#[tokio::test]
async fn embedded_a_write_resumes_after_a_cut() {
    let (_dir, archive, folder) = embedded();
    contract::a_write_resumes_after_a_cut(archive, &folder, 300_000, 200_000).await;
}

#[tokio::test]
async fn embedded_erasing_leaves_nothing_an_unfinished_write_kept() {
    let (_dir, archive, folder) = embedded();
    contract::erasing_leaves_nothing_an_unfinished_write_kept(archive, &folder, 300_000, 200_000).await;
}

#[tokio::test]
async fn blob_erasing_leaves_nothing_an_unfinished_write_kept() {
    let (archive, container, _target) = blob(SMALL_BLOCK).await;
    contract::erasing_leaves_nothing_an_unfinished_write_kept(archive, &container, 300_000, 200_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_concurrent_writers_leave_one_whole_file() {
    let (_dir, archive, folder) = embedded();
    contract::concurrent_writers_leave_one_whole_file(archive, &folder, 300_000, 4).await;
}

#[tokio::test]
async fn embedded_a_short_file_is_never_vouched_for() {
    let (_dir, archive, folder) = embedded();
    contract::a_short_file_is_never_vouched_for(archive, &folder).await;
}

#[tokio::test]
async fn embedded_names_from_hostile_ids_stay_distinct_and_inside() {
    let (_dir, archive, folder) = embedded();
    contract::names_from_hostile_ids_stay_distinct_and_inside(archive, &folder).await;
}

#[tokio::test]
async fn embedded_bytes_of_two_sources_are_never_spliced() {
    let (_dir, archive, folder) = embedded();
    contract::bytes_of_two_sources_are_never_spliced(archive, &folder, 300_000, 200_000).await;
}

#[tokio::test]
async fn blob_bytes_of_two_sources_are_never_spliced() {
    let (archive, container, _target) = blob(SMALL_BLOCK).await;
    contract::bytes_of_two_sources_are_never_spliced(archive, &container, 300_000, 200_000).await;
}

#[tokio::test]
async fn blob_a_file_is_read_back_as_written() {
    let (archive, container, _target) = blob(SMALL_BLOCK).await;
    contract::a_file_is_read_back_as_written(archive, &container, 300_000).await;
}

#[tokio::test]
async fn blob_a_write_resumes_after_a_cut() {
    let (archive, container, _target) = blob(SMALL_BLOCK).await;
    contract::a_write_resumes_after_a_cut(archive, &container, 300_000, 200_000).await;
}

#[tokio::test]
async fn blob_a_write_of_full_size_blocks_resumes_after_a_cut() {
    let (archive, container, _target) = blob(BLOCK_BYTES).await;
    let block = BLOCK_BYTES as usize;
    contract::a_write_resumes_after_a_cut(archive, &container, 2 * block + 12_345, block + 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blob_concurrent_writers_leave_one_whole_file() {
    let (archive, container, _target) = blob(SMALL_BLOCK).await;
    contract::concurrent_writers_leave_one_whole_file(archive, &container, 300_000, 4).await;
}

#[tokio::test]
async fn blob_a_short_file_is_never_vouched_for() {
    let (archive, container, _target) = blob(SMALL_BLOCK).await;
    contract::a_short_file_is_never_vouched_for(archive.clone(), &container).await;
    assert!(
        matches!(
            archive.existing(&contract::key("d0")).await,
            Err(ArchiveError::Unverified { .. })
        ),
        "Blob Storage refuses a blob whose length disagrees with its metadata"
    );
}

#[tokio::test]
async fn blob_names_from_hostile_ids_stay_distinct_and_inside() {
    let (archive, container, _target) = blob(SMALL_BLOCK).await;
    contract::names_from_hostile_ids_stay_distinct_and_inside(archive, &container).await;
}

#[tokio::test]
async fn blob_a_blob_without_the_archives_metadata_is_left_for_an_operator() {
    let (archive, container, _target) = blob(SMALL_BLOCK).await;
    let key = FileKey {
        kind: FileKind::Metadata,
        ..contract::key("d0")
    };
    let client = container
        .archive
        .blob_client(url::Url::parse(&archive.location(&key)).unwrap())
        .unwrap();
    client
        .upload(azure_core::http::Body::from(b"{}".to_vec()).into(), None)
        .await
        .unwrap();
    let refused = archive.existing(&key).await.unwrap_err();
    assert!(refused.needs_operator(), "{refused:?}");
    assert!(refused.to_string().contains("no SHA-256"), "{refused}");
    // A writer never replaces it: its conditional commit finds the blob there, which it cannot vouch for either.
    let mut writer = archive.writer(&key, contract::SOURCE).await.unwrap();
    writer.write(b"{\"a\":1}").await.unwrap();
    assert!(matches!(
        writer.commit(None).await,
        Err(ArchiveError::Unverified { .. })
    ));
    assert_eq!(
        container.read(&archive.location(&key)).await.unwrap().1,
        2,
        "the blob is untouched"
    );
}

#[tokio::test]
async fn blob_a_missing_container_needs_an_operator_at_startup() {
    let target = BlobTarget::start();
    let mut config = target.config(&unique_container(), None);
    config.create_container = false;
    let archive = BlobArchive::new(&config).unwrap();
    let missing = archive.prepare(false).await.unwrap_err();
    assert!(matches!(missing, ArchiveError::MissingContainer { .. }), "{missing:?}");
    assert!(missing.needs_operator());
    assert!(
        missing.to_string().contains("RECORDINGS_CREATE_IF_NOT_EXISTS"),
        "{missing}"
    );
    archive.prepare(true).await.unwrap();
    archive.prepare(true).await.unwrap();
}

#[tokio::test]
async fn blob_a_wrong_key_needs_an_operator() {
    // A live account refuses a wrong key the same way.
    let target = BlobTarget::start();
    let mut config = target.config(&unique_container(), None);
    config.auth = acs_recording_handler::config::BlobAuth::SharedKey {
        account: target.account(),
        key: acs_recording_handler::secret::Secret::new("d3Jvbmcga2V5"),
    };
    let refused = BlobArchive::new(&config).unwrap().prepare(true).await.unwrap_err();
    assert!(refused.needs_operator(), "{refused:?}");
    assert!(refused.to_string().contains("403"), "{refused}");
}

#[tokio::test]
async fn blob_files_are_committed_in_the_configured_access_tier() {
    use azure_storage_blob::models::BlobClientGetPropertiesResultHeaders;
    let target = BlobTarget::start();
    let mut config = target.config(&unique_container(), None);
    config.access_tier = Some(acs_recording_handler::config::AccessTier::Cold);
    let archive = BlobArchive::new(&config).unwrap();
    archive.prepare(true).await.unwrap();
    let mut writer = archive.writer(&contract::key("d0"), contract::SOURCE).await.unwrap();
    writer.write(&contract::content(5, 1000)).await.unwrap();
    let file = writer.commit(Some(1000)).await.unwrap();
    let properties = archive
        .blob_client(url::Url::parse(&file.location).unwrap())
        .unwrap()
        .get_properties(None)
        .await
        .unwrap();
    assert_eq!(properties.access_tier().unwrap().as_deref(), Some("Cold"));
    assert_eq!(properties.content_type().unwrap().as_deref(), Some("video/mp4"));
}

#[tokio::test]
async fn blob_a_read_link_downloads_the_exact_bytes_and_a_tampered_or_expired_one_is_refused() {
    use acs_recording_handler::archive::blob::sas::{ReadGrant, SAS_VERSION, SasSigner, blob_sas, read_link};
    use acs_recording_handler::config::{DEVELOPMENT_ACCOUNT, DEVELOPMENT_KEY};
    use acs_recording_handler::digest::HmacKey;
    use acs_recording_handler::secret::Secret;

    // A service SAS is signed with the account key: the local server's well-known one.
    let target = BlobTarget::start_local();
    let container = unique_container();
    let archive = target.archive(&container).await;
    let key = contract::key("d0");
    let bytes = contract::content(7, 100_000);
    let mut writer = archive.writer(&key, contract::SOURCE).await.unwrap();
    writer.write(&bytes).await.unwrap();
    let file = writer.commit(Some(bytes.len() as u64)).await.unwrap();

    let url = url::Url::parse(&file.location).unwrap();
    let prefix = format!("/{DEVELOPMENT_ACCOUNT}/{container}/");
    let blob = url.path().strip_prefix(&prefix).unwrap().to_owned();
    let account_key = HmacKey::from_base64(&Secret::new(DEVELOPMENT_KEY)).unwrap();
    let signer = SasSigner::AccountKey {
        account: DEVELOPMENT_ACCOUNT,
        key: &account_key,
    };
    let now = time::OffsetDateTime::now_utc();
    let grant = ReadGrant {
        container: &container,
        blob: &blob,
        start: now - time::Duration::minutes(5),
        expiry: now + time::Duration::minutes(15),
        https_only: false, // the local server speaks plain http on loopback
        content_disposition: Some("attachment; filename=\"rec-1-0.mp4\""),
        content_type: Some("video/mp4"),
        version: SAS_VERSION,
    };
    let link = read_link(&url, &blob_sas(&grant, signer));
    let client = reqwest::Client::new();
    let response = client.get(link.clone()).send().await.unwrap();
    assert_eq!(response.status(), 200, "{link}");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"rec-1-0.mp4\""
    );
    assert_eq!(
        response.bytes().await.unwrap(),
        bytes,
        "the link downloads the archived bytes"
    );

    let tampered = link.as_str().replace("sp=r", "sp=rw");
    assert_eq!(
        client.get(tampered).send().await.unwrap().status(),
        403,
        "a changed grant is refused"
    );
    let expired = ReadGrant {
        start: now - time::Duration::hours(2),
        expiry: now - time::Duration::hours(1),
        ..grant.clone()
    };
    let expired = read_link(&url, &blob_sas(&expired, signer));
    assert_eq!(
        client.get(expired).send().await.unwrap().status(),
        403,
        "an expired link is refused"
    );
}

#[tokio::test]
async fn blob_a_read_link_names_its_download_safely_whatever_the_name() {
    use acs_recording_handler::archive::LinkRequest;
    let target = BlobTarget::start_local();
    let archive = target.archive(&unique_container()).await;
    let key = contract::key("d0");
    let mut writer = archive.writer(&key, contract::SOURCE).await.unwrap();
    writer.write(b"the bytes").await.unwrap();
    writer.commit(Some(9)).await.unwrap();
    let client = reqwest::Client::new();
    for (file_name, expected) in [
        ("rec-1-0.mp4", "attachment; filename=\"rec-1-0.mp4\""),
        (
            "rec\r\nSet-Cookie: a=b-0.mp4",
            "attachment; filename=\"rec__Set-Cookie: a=b-0.mp4\"",
        ),
        (
            "réc-€-0.mp4",
            "attachment; filename=\"r_c-_-0.mp4\"; filename*=UTF-8''r%C3%A9c-%E2%82%AC-0.mp4",
        ),
    ] {
        let request = LinkRequest {
            lifetime: std::time::Duration::from_secs(900),
            file_name: file_name.to_owned(),
            content_type: "video/mp4".to_owned(),
        };
        let link = archive.read_link(&key, &request).await.unwrap();
        let response = client.get(link.url.clone()).send().await.unwrap();
        assert_eq!(response.status(), 200, "{file_name:?}: {}", link.url);
        assert_eq!(response.headers()["content-disposition"], expected, "{file_name:?}");
        assert!(response.headers().get("set-cookie").is_none());
        assert_eq!(&response.bytes().await.unwrap()[..], b"the bytes");
    }
}
