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
    /// The certificate Azurite serves HTTPS with (PEM), when it does.
    certificate: Option<Vec<u8>>,
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
                certificate: None,
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
                certificate: tls.map(|(cert, _)| std::fs::read(cert).unwrap()),
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

    /// An HTTP client with no credential, as anyone holding a link has, that trusts the server's certificate (and only
    /// it) when the server is Azurite over HTTPS.
    pub fn client(&self) -> reqwest::Client {
        match &self.certificate {
            Some(pem) => reqwest::Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(pem).unwrap()])
                .build()
                .unwrap(),
            None => reqwest::Client::new(),
        }
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

/// What anyone holding a read link can do with it and no other credential, asked of the server that holds the blob
/// (Azurite judges a service SAS by the account key and a user delegation SAS by the key it issued): the link reads
/// the blob; the same link with its signature tampered with is refused; a write (Put Blob) and a delete through it
/// are refused for want of permission, not for a bad signature; and the blob reads the same afterwards. Returns the
/// download's `Content-Disposition` and bytes.
pub async fn read_through_link(client: &reqwest::Client, link: &url::Url) -> (String, Vec<u8>) {
    let read = || async {
        let response = client.get(link.as_str()).send().await.unwrap();
        assert_eq!(response.status(), 200, "{link}");
        let disposition = response
            .headers()
            .get("content-disposition")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (disposition, response.bytes().await.unwrap().to_vec())
    };
    let (disposition, bytes) = read().await;
    let tampered = link.as_str().replace("sig=", "sig=A");
    assert_eq!(client.get(&tampered).send().await.unwrap().status(), 403, "{tampered}");
    let write = client
        .put(link.as_str())
        .header("x-ms-blob-type", "BlockBlob")
        .body("overwritten")
        .send()
        .await
        .unwrap();
    let delete = client.delete(link.as_str()).send().await.unwrap();
    for (what, response) in [("a write", write), ("a delete", delete)] {
        assert_eq!(response.status(), 403, "{what} through a read link: {link}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains("AuthorizationPermissionMismatch"),
            "{what} refused for want of permission: {body}"
        );
    }
    assert_eq!(read().await, (disposition.clone(), bytes.clone()), "unchanged: {link}");
    (disposition, bytes)
}
