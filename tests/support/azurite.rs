//! A Blob Storage endpoint for tests: by default Azurite's Blob service (`tests/azurite`, installed with npm on first
//! use and started on a reserved loopback port, one per test, stopped on drop and when the test process exits); with
//! `ARCHIVE_TEST_BLOB_URI` a real account instead (`ARCHIVE_TEST_BLOB_KEY` for Shared Key, otherwise the developer's
//! Azure CLI sign-in), where each test makes a container of its own named `test-…`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use acs_recording_handler::archive::BlobArchive;
use acs_recording_handler::config::{BlobAuth, BlobConfig, DEVELOPMENT_ACCOUNT, DEVELOPMENT_KEY};
use acs_recording_handler::secret::Secret;

use super::npm::ServerProcess;
use super::ports::Port;
use super::wait::{Start, Tail, wait_for_start};

/// How long Azurite may take to listen (Node.js starting on a loaded machine), and how often a start is tried again
/// when another process took its port.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
const START_ATTEMPTS: usize = 5;

/// Where Azurite keeps blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    Memory,
    /// In the server's temporary folder, for blobs too large to keep in memory (the bench).
    Disk,
}

pub struct BlobTarget {
    server: Option<ServerProcess>,
    port: Option<Port>,
    /// Azurite's working folder, removed on drop.
    _workdir: Option<tempfile::TempDir>,
    /// The blob service URL, `http://127.0.0.1:PORT/devstoreaccount1` locally.
    pub service_uri: String,
    /// The account key for Shared Key; `None` signs in with the Azure CLI (live targets only).
    key: Option<(String, String)>,
    /// Requests Azurite has answered (its access log's lines).
    requests: Arc<AtomicUsize>,
}

/// Why a test needs the local Azurite, whatever `ARCHIVE_TEST_BLOB_URI` says.
#[derive(Clone, Copy)]
enum Local<'a> {
    Http,
    /// Over HTTPS with this certificate and key.
    Https(&'a std::path::Path, &'a std::path::Path),
}

impl BlobTarget {
    pub fn start() -> BlobTarget {
        Self::start_with(Persistence::Memory)
    }

    pub fn start_with(persistence: Persistence) -> BlobTarget {
        Self::launch(persistence, None)
    }

    /// A local Azurite, even when `ARCHIVE_TEST_BLOB_URI` names a live account: for the tests that put a proxy in
    /// front of the server.
    pub fn start_local() -> BlobTarget {
        Self::launch(Persistence::Memory, Some(Local::Http))
    }

    /// A local Azurite over HTTPS with this certificate and key (PEM files), which also takes Microsoft Entra ID
    /// bearer tokens (Azurite's `--oauth basic`: it checks a token's audience, issuer and lifetime, not its
    /// signature). Always local: the Entra ID path is tested against it, never against a live account.
    pub fn start_https(cert: &std::path::Path, key: &std::path::Path) -> BlobTarget {
        Self::launch(Persistence::Memory, Some(Local::Https(cert, key)))
    }

    /// Starts Azurite, or uses the live account `ARCHIVE_TEST_BLOB_URI` names unless `local` says otherwise.
    fn launch(persistence: Persistence, local: Option<Local<'_>>) -> BlobTarget {
        let tls = match local {
            Some(Local::Https(cert, key)) => Some((cert, key)),
            _ => None,
        };
        if let Some(uri) = std::env::var("ARCHIVE_TEST_BLOB_URI").ok().filter(|_| local.is_none()) {
            let account = url::Url::parse(&uri)
                .ok()
                .and_then(|u| u.host_str().map(|h| h.split('.').next().unwrap_or_default().to_owned()))
                .expect("ARCHIVE_TEST_BLOB_URI is https://ACCOUNT.blob.core.windows.net");
            return BlobTarget {
                server: None,
                port: None,
                _workdir: None,
                service_uri: uri.trim_end_matches('/').to_owned(),
                key: std::env::var("ARCHIVE_TEST_BLOB_KEY").ok().map(|key| (account, key)),
                requests: Arc::default(),
            };
        }
        let dir = server_dir();
        super::npm::install(&dir, "azurite");
        let tail = Tail::default();
        for _ in 0..START_ATTEMPTS {
            let workdir = tempfile::tempdir().unwrap();
            // A reserved port, so that no other test of this process is handed it while the server runs.
            let port = Port::reserve();
            let mut command = Command::new("node");
            command
                .arg("start.js")
                .arg(port.0.to_string())
                .arg(workdir.path())
                .current_dir(&dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            command.arg(match persistence {
                Persistence::Disk => "disk",
                Persistence::Memory => "memory",
            });
            if let Some((cert, key)) = tls {
                command.env("AZURITE_CERT", cert).env("AZURITE_KEY", key);
            }
            let mut child = command
                .spawn()
                .expect("start Azurite: Node.js 20 or newer must be installed");
            // Keep reading its output, so that it never blocks on a full pipe, and count the requests it logs.
            let requests: Arc<AtomicUsize> = Arc::default();
            let count = requests.clone();
            let stdout = child.stdout.take().expect("stdout");
            let started = wait_for_start(
                stdout,
                START_TIMEOUT,
                &tail,
                |line| line.contains("successfully listens"),
                move |line| {
                    if line.contains("\" ") && line.contains(" HTTP/") {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                },
            );
            if started
                .ready_line(&mut child, "Azurite", START_TIMEOUT, &tail)
                .is_none()
            {
                continue;
            }
            let server = ServerProcess::new(child);
            return BlobTarget {
                server: Some(server),
                service_uri: format!(
                    "{}://127.0.0.1:{}/{DEVELOPMENT_ACCOUNT}",
                    if tls.is_some() { "https" } else { "http" },
                    port.0
                ),
                port: Some(port),
                _workdir: Some(workdir),
                key: Some((DEVELOPMENT_ACCOUNT.to_owned(), DEVELOPMENT_KEY.to_owned())),
                requests,
            };
        }
        panic!(
            "Azurite stopped before it listened, {START_ATTEMPTS} times; its last lines:\n{}",
            tail.text()
        );
    }

    /// The requests Azurite has answered so far (0 for a live target). It logs a request once answered, so a count
    /// read just after a client finishes may lag by a moment.
    pub fn request_count(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// The storage account's name.
    pub fn account(&self) -> String {
        match &self.key {
            Some((account, _)) => account.clone(),
            None => url::Url::parse(&self.service_uri)
                .ok()
                .and_then(|u| u.host_str().map(|h| h.split('.').next().unwrap_or_default().to_owned()))
                .unwrap_or_default(),
        }
    }

    pub fn is_local(&self) -> bool {
        self.server.is_some()
    }

    /// Azurite's port (panics for a live target).
    pub fn port(&self) -> u16 {
        self.port.as_ref().expect("a local server").0
    }

    /// The archive settings of a container (created if missing), with the service at `service_uri` (a proxy's, say)
    /// instead of the target's own.
    pub fn config(&self, container: &str, service_uri: Option<&str>) -> BlobConfig {
        let service_uri = url::Url::parse(service_uri.unwrap_or(&self.service_uri)).unwrap();
        let auth = match &self.key {
            Some((account, key)) => BlobAuth::SharedKey {
                account: account.clone(),
                key: Secret::new(key.clone()),
            },
            None => BlobAuth::DeveloperCredential,
        };
        BlobConfig {
            service_uri,
            auth,
            container: container.to_owned(),
            create_container: true,
            access_tier: None,
        }
    }

    /// An archive on a container of its own, created.
    pub async fn archive(&self, container: &str) -> BlobArchive {
        let archive = BlobArchive::new(&self.config(container, None)).unwrap();
        archive.prepare(true).await.unwrap();
        archive
    }

    /// The handler's settings for a container of its own (created at startup), through `service_uri` when given.
    pub fn handler_settings(&self, container: &str, service_uri: Option<&str>) -> Vec<(String, String)> {
        let uri = service_uri.unwrap_or(&self.service_uri);
        let connection = match &self.key {
            Some((account, key)) => {
                vec![(
                    "ArchiveStorage".to_owned(),
                    format!("DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};BlobEndpoint={uri};"),
                )]
            }
            None => vec![("ArchiveStorage__blobServiceUri".to_owned(), uri.to_owned())],
        };
        let mut settings = connection;
        settings.extend([
            ("RECORDINGS_ARCHIVE_CONTAINER".to_owned(), container.to_owned()),
            ("RECORDINGS_CREATE_IF_NOT_EXISTS".to_owned(), "true".to_owned()),
        ]);
        settings
    }
}

/// A container name no other test uses.
pub fn unique_container() -> String {
    super::npm::unique_name()
}

fn server_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/azurite")
}

/// Blob Storage reached with Microsoft Entra ID, as in Azure: Azurite over HTTPS with a certificate made for the
/// test, a managed identity endpoint that hands out storage tokens, and the handler's settings for both (it trusts
/// that certificate, and only it).
pub struct EntraBlob {
    pub blob: BlobTarget,
    pub identity: super::identity::IdentityEndpoint,
    /// The handler's settings: the identity endpoint, `ArchiveStorage__blobServiceUri` with the managed identity, a
    /// container of its own (created at startup), and `SSL_CERT_FILE`.
    pub settings: Vec<(String, String)>,
}

impl EntraBlob {
    /// Starts both servers; the certificate and its key are written to `dir`.
    pub fn start(dir: &std::path::Path) -> EntraBlob {
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
        let blob = BlobTarget::start_https(&cert, &key);
        let identity = super::identity::IdentityEndpoint::start(&super::identity::storage_token());
        let mut settings = identity.settings();
        settings.extend([
            ("ArchiveStorage__blobServiceUri".to_owned(), blob.service_uri.clone()),
            ("ArchiveStorage__credential".to_owned(), "managedidentity".to_owned()),
            ("RECORDINGS_ARCHIVE_CONTAINER".to_owned(), unique_container()),
            ("RECORDINGS_CREATE_IF_NOT_EXISTS".to_owned(), "true".to_owned()),
            ("SSL_CERT_FILE".to_owned(), cert.display().to_string()),
        ]);
        EntraBlob {
            blob,
            identity,
            settings,
        }
    }
}

/// Checks that `link` is a user delegation SAS signed with the key Azurite issued. Azurite derives a key's value from
/// what the key names with a secret of its own (its `USERDELEGATIONKEY_BASIC_KEY`); the link must be signed with
/// that value, as the official SDK signs (the signer itself is held to the SDK's tokens by the unit tests). Azurite
/// 3.35.0 checks user delegation SAS with an older string to sign (without the signed request headers and query
/// lines the SDK writes), so its own verdict on such a link is not the tests'.
pub fn assert_signed_with_the_issued_key(link: &url::Url) {
    let query: std::collections::HashMap<_, _> = link.query_pairs().into_owned().collect();
    let time =
        |name: &str| time::OffsetDateTime::parse(&query[name], &time::format_description::well_known::Rfc3339).unwrap();
    use hmac::{Hmac, Mac};
    let mut derive = Hmac::<sha2::Sha256>::new_from_slice(
        b"I17GKLvcJUossaebtsEDZZ2RJ8GNLwLH4m7hRMxbVbkx6wNIRAABj4Rtw0FBhFuEAgmbL4gFMzUw+AStz9Sqdg==",
    )
    .unwrap();
    let named = [
        &query["skoid"],
        &query["sktid"],
        &query["skt"],
        &query["ske"],
        "b",
        &query["skv"],
    ];
    derive.update(named.join("\n").as_bytes());
    let value = derive.finalize().into_bytes();
    let key = acs_recording_handler::archive::blob::sas::UserDelegationKey {
        signed_oid: query["skoid"].clone(),
        signed_tid: query["sktid"].clone(),
        signed_start: query["skt"].clone(),
        signed_expiry: query["ske"].clone(),
        signed_service: "b".to_owned(),
        signed_version: query["skv"].clone(),
        value: acs_recording_handler::digest::HmacKey::from_bytes(&value).unwrap(),
        expires_on: time("ske"),
    };
    let segments: Vec<&str> = link.path().trim_start_matches('/').splitn(3, '/').collect();
    let grant = acs_recording_handler::archive::blob::sas::ReadGrant {
        container: segments[1],
        blob: segments[2],
        start: time("st"),
        expiry: time("se"),
        https_only: false,
        content_disposition: Some(&query["rscd"]),
        content_type: Some(&query["rsct"]),
        version: &query["sv"],
    };
    let expected = acs_recording_handler::archive::blob::sas::blob_sas(
        &grant,
        acs_recording_handler::archive::blob::sas::SasSigner::UserDelegation {
            account: segments[0],
            key: &key,
        },
    );
    assert_eq!(
        link.query(),
        Some(expected.as_str()),
        "signed with the key the server issued"
    );
}
