//! The archival settings: how to reach ACS (named like the Cosmos DB connection settings), where downloads may go,
//! where archived files are kept (the embedded folder, or Blob Storage named like a Functions storage connection),
//! and what to do once a chunk is archived. Archival is on when an ACS connection is set.

use std::path::PathBuf;

use super::{Settings, SignIn, data_dir};
use crate::archive::sources::{ArchiveSources, DEFAULT_SOURCES, is_loopback_host};
use crate::secret::{Secret, quoted};

/// The connection settings that turn archival on: the ACS connection string (HMAC with the access key), or the
/// resource's endpoint (Microsoft Entra ID).
pub const ACS_VARIABLES: [&str; 2] = ["AcsConnection", "AcsConnection__endpoint"];

/// The settings that archive to Blob Storage: a storage connection string (Shared Key, local development and
/// Azurite), or the account's blob service URI (Microsoft Entra ID, the production path).
pub const BLOB_VARIABLES: [&str; 2] = ["ArchiveStorage", "ArchiveStorage__blobServiceUri"];

/// The archive container when `RECORDINGS_ARCHIVE_CONTAINER` is unset.
pub const DEFAULT_ARCHIVE_CONTAINER: &str = "recordings";

/// Azurite's well-known development account, which `UseDevelopmentStorage=true` names.
pub const DEVELOPMENT_ACCOUNT: &str = "devstoreaccount1";
pub const DEVELOPMENT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
pub const DEVELOPMENT_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    pub acs: AcsConnection,
    /// Where downloads may go (`RECORDINGS_ARCHIVE_SOURCES`).
    pub sources: ArchiveSources,
    /// Delete a chunk's files at ACS once both are archived (`RECORDINGS_DELETE_AFTER_ARCHIVE`).
    pub delete_after_archive: bool,
    /// How long a read link to an archived file works (`RECORDINGS_LINK_MINUTES`).
    pub link_lifetime: std::time::Duration,
    pub location: ArchiveLocation,
}

/// Where archived files are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveLocation {
    /// The embedded archive: the `archive/` folder of the data folder (`RECORDINGS_DATA_DIR`), outside Azure only.
    Embedded { data_dir: PathBuf },
    /// A container in Azure Blob Storage (`ArchiveStorage…`).
    Blob(BlobConfig),
}

/// A Blob Storage container to archive into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobConfig {
    /// The blob service's URL without a trailing slash: `https://ACCOUNT.blob.core.windows.net`, or Azurite's
    /// `http://127.0.0.1:10000/devstoreaccount1`.
    pub service_uri: url::Url,
    pub auth: BlobAuth,
    /// `RECORDINGS_ARCHIVE_CONTAINER`.
    pub container: String,
    /// Create the container at startup when missing (`RECORDINGS_CREATE_IF_NOT_EXISTS`).
    pub create_container: bool,
    /// The access tier every archived blob is committed in (`RECORDINGS_ARCHIVE_ACCESS_TIER`); `None` leaves the
    /// account's default.
    pub access_tier: Option<AccessTier>,
}

/// How requests to Blob Storage are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobAuth {
    /// Shared Key with the account key of a connection string; the handler signs each request itself.
    SharedKey { account: String, key: Secret },
    /// A managed identity's token: the system-assigned one, or the user-assigned one with this client id.
    ManagedIdentity { client_id: Option<String> },
    /// The developer's own sign-in (Azure CLI), outside Azure.
    DeveloperCredential,
}

/// The Blob Storage access tiers a recording can be archived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessTier {
    Hot,
    Cool,
    Cold,
    Archive,
}

impl AccessTier {
    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "hot" => Some(Self::Hot),
            "cool" => Some(Self::Cool),
            "cold" => Some(Self::Cold),
            "archive" => Some(Self::Archive),
            _ => None,
        }
    }
}

/// How requests to ACS are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcsConnection {
    /// HMAC with the resource's access key; `host` is the endpoint's host, which every signature names.
    Key { host: String, key: Secret },
    /// A managed identity's token: the system-assigned one, or the user-assigned one with this client id.
    ManagedIdentity { client_id: Option<String> },
    /// The developer's own sign-in (Azure CLI), outside Azure.
    DeveloperCredential,
}

/// Reads the archival settings; `None` when no ACS connection is set (archival is off).
pub(super) fn read(settings: &mut Settings<'_>) -> Option<ArchiveConfig> {
    let acs = connection(settings)?;
    let sources = match ArchiveSources::parse(
        &settings
            .get("RECORDINGS_ARCHIVE_SOURCES")
            .unwrap_or_else(|| DEFAULT_SOURCES.to_owned()),
    ) {
        Ok(sources) => sources,
        Err(problem) => {
            settings.problem(format!("RECORDINGS_ARCHIVE_SOURCES: {problem}"));
            ArchiveSources::default_list()
        }
    };
    let location = match blob(settings) {
        Some(blob) => ArchiveLocation::Blob(blob),
        None => {
            if settings.in_azure() {
                settings.problem(format!(
                    "archival is on (an ACS connection is set) while running in Azure (WEBSITE_INSTANCE_ID is set) \
                     without Blob Storage, and the embedded archive would keep recordings on the instance's temporary \
                     disk; set {} (with the app's managed identity) or {}, or unset the ACS connection",
                    BLOB_VARIABLES[1], BLOB_VARIABLES[0]
                ));
            }
            ArchiveLocation::Embedded {
                data_dir: data_dir(settings),
            }
        }
    };
    Some(ArchiveConfig {
        acs,
        sources,
        delete_after_archive: settings.flag("RECORDINGS_DELETE_AFTER_ARCHIVE", false),
        link_lifetime: link_lifetime(settings),
        location,
    })
}

/// `RECORDINGS_LINK_MINUTES` when unset.
pub const DEFAULT_LINK_MINUTES: u64 = 15;
/// The longest a read link may work: a week, as long as a user delegation key can last.
pub const MAX_LINK_MINUTES: u64 = 7 * 24 * 60;

/// How long read links work: `RECORDINGS_LINK_MINUTES`, from 1 to [`MAX_LINK_MINUTES`].
fn link_lifetime(settings: &mut Settings<'_>) -> std::time::Duration {
    let minutes = match settings.get("RECORDINGS_LINK_MINUTES") {
        None => DEFAULT_LINK_MINUTES,
        Some(text) => match text.trim().parse::<u64>() {
            Ok(minutes) if (1..=MAX_LINK_MINUTES).contains(&minutes) => minutes,
            _ => {
                settings.problem(format!(
                    "RECORDINGS_LINK_MINUTES must be a whole number of minutes from 1 to {MAX_LINK_MINUTES}, not {}",
                    crate::secret::quoted(&text)
                ));
                DEFAULT_LINK_MINUTES
            }
        },
    };
    std::time::Duration::from_secs(minutes * 60)
}

/// The Blob Storage settings, `None` when neither connection setting is set (problems are still reported).
fn blob(settings: &mut Settings<'_>) -> Option<BlobConfig> {
    let (service_uri, auth) = match (settings.get(BLOB_VARIABLES[0]), settings.get(BLOB_VARIABLES[1])) {
        (None, None) => return None,
        (Some(_), Some(_)) => {
            settings.problem(format!(
                "both {} and {} are set; set only one: the connection string for the account key, the blob \
                 service URI for Microsoft Entra ID",
                BLOB_VARIABLES[0], BLOB_VARIABLES[1]
            ));
            return None;
        }
        (Some(connection_string), None) => match parse_storage_connection_string(&connection_string) {
            Ok(parsed) => parsed,
            Err(problem) => {
                settings.problem(format!("{} {problem}", BLOB_VARIABLES[0]));
                return None;
            }
        },
        (None, Some(uri)) => {
            if uri.to_ascii_lowercase().contains("accountkey") {
                settings.problem(format!(
                    "{} looks like a connection string; put connection strings in {}",
                    BLOB_VARIABLES[1], BLOB_VARIABLES[0]
                ));
                return None;
            }
            let Some(service_uri) = service_url(&uri).filter(is_private_enough) else {
                settings.problem(format!(
                    "{} must be the account's https blob service URL (https://ACCOUNT.blob.core.windows.net; plain \
                     http only on this machine), not {}",
                    BLOB_VARIABLES[1],
                    quoted(&uri)
                ));
                return None;
            };
            let auth = match settings.sign_in(BLOB_VARIABLES[0])? {
                SignIn::ManagedIdentity { client_id } => BlobAuth::ManagedIdentity { client_id },
                SignIn::Developer => BlobAuth::DeveloperCredential,
            };
            (service_uri, auth)
        }
    };
    let container = settings
        .get("RECORDINGS_ARCHIVE_CONTAINER")
        .unwrap_or_else(|| DEFAULT_ARCHIVE_CONTAINER.to_owned());
    if !is_container_name(&container) {
        settings.problem(format!(
            "RECORDINGS_ARCHIVE_CONTAINER must be a Blob Storage container name (3 to 63 lowercase letters, digits \
             and single hyphens, starting with a letter or digit), not {}",
            quoted(&container)
        ));
    }
    let access_tier = match settings.get("RECORDINGS_ARCHIVE_ACCESS_TIER") {
        None => None,
        Some(text) => AccessTier::parse(&text).or_else(|| {
            settings.problem(format!(
                "RECORDINGS_ARCHIVE_ACCESS_TIER must be Hot, Cool, Cold or Archive (or unset), not {}",
                quoted(&text)
            ));
            None
        }),
    };
    Some(BlobConfig {
        service_uri,
        auth,
        container,
        create_container: settings.flag("RECORDINGS_CREATE_IF_NOT_EXISTS", false),
        access_tier,
    })
}

/// A blob service URL, normalized without a trailing slash, query or fragment.
fn service_url(text: &str) -> Option<url::Url> {
    let mut url = url::Url::parse(text.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || url.cannot_be_a_base() {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Some(url)
}

/// Whether requests to a blob service URL keep the recordings and the credential from the network: https, or
/// plain http to this machine (Azurite).
fn is_private_enough(url: &url::Url) -> bool {
    url.scheme() == "https" || url.host().is_some_and(|host| is_loopback_host(&host))
}

/// Blob Storage's container naming rule.
fn is_container_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// Reads an Azure Storage connection string: `DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…` with an
/// optional `EndpointSuffix` or `BlobEndpoint`, or `UseDevelopmentStorage=true` (Azurite's well-known account).
/// Problems never quote the key.
fn parse_storage_connection_string(text: &str) -> Result<(url::Url, BlobAuth), &'static str> {
    let mut fields = std::collections::HashMap::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = part.split_once('=') else {
            return Err("is not a storage connection string of the form AccountName=…;AccountKey=…");
        };
        fields.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let field = |name: &str| fields.get(name).filter(|v| !v.is_empty()).cloned();
    if field("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        let service_uri = service_url(DEVELOPMENT_BLOB_ENDPOINT).ok_or("has no usable blob endpoint")?;
        let auth = BlobAuth::SharedKey {
            account: DEVELOPMENT_ACCOUNT.to_owned(),
            key: Secret::new(DEVELOPMENT_KEY),
        };
        return Ok((service_uri, auth));
    }
    if field("sharedaccesssignature").is_some() {
        return Err(
            "holds a shared access signature, which the handler does not take; use a connection string \
                    with the account key, or ArchiveStorage__blobServiceUri with Microsoft Entra ID",
        );
    }
    let account = field("accountname").ok_or("has no AccountName")?;
    let key = Secret::new(field("accountkey").ok_or("has no AccountKey")?);
    use base64::Engine;
    if base64::engine::general_purpose::STANDARD.decode(key.expose()).is_err() {
        return Err("has an AccountKey that is not valid base64");
    }
    let endpoint = match field("blobendpoint") {
        Some(endpoint) => endpoint,
        None => {
            let protocol = field("defaultendpointsprotocol").unwrap_or_else(|| "https".to_owned());
            let suffix = field("endpointsuffix").unwrap_or_else(|| "core.windows.net".to_owned());
            format!("{}://{account}.blob.{suffix}", protocol.to_ascii_lowercase())
        }
    };
    let service_uri = service_url(&endpoint).ok_or("has a BlobEndpoint that is not an http(s) URL")?;
    if !is_private_enough(&service_uri) {
        return Err(
            "has a blob endpoint that uses plain http (BlobEndpoint=http://… or DefaultEndpointsProtocol=http), \
             allowed only for this machine (localhost, 127.0.0.1, ::1): elsewhere the recordings and the signed \
             requests would cross the network unencrypted; use https",
        );
    }
    Ok((service_uri, BlobAuth::SharedKey { account, key }))
}

fn connection(settings: &mut Settings<'_>) -> Option<AcsConnection> {
    match (settings.get(ACS_VARIABLES[0]), settings.get(ACS_VARIABLES[1])) {
        (None, None) => None,
        (Some(_), Some(_)) => {
            settings.problem(format!(
                "both {} and {} are set; set only one: the connection string for the access key, the endpoint for \
                 Microsoft Entra ID",
                ACS_VARIABLES[0], ACS_VARIABLES[1]
            ));
            None
        }
        (Some(connection_string), None) => match parse_connection_string(&connection_string) {
            Ok((host, key)) => Some(AcsConnection::Key { host, key }),
            Err(problem) => {
                settings.problem(format!("{} {problem}", ACS_VARIABLES[0]));
                None
            }
        },
        (None, Some(endpoint)) => {
            if endpoint.to_ascii_lowercase().contains("accesskey") {
                settings.problem(format!(
                    "{} looks like a connection string; put connection strings in {}",
                    ACS_VARIABLES[1], ACS_VARIABLES[0]
                ));
                return None;
            }
            if endpoint_host(&endpoint).is_none() {
                settings.problem(format!(
                    "{} must be an https URL, not {}",
                    ACS_VARIABLES[1],
                    quoted(&endpoint)
                ));
                return None;
            }
            Some(match settings.sign_in(ACS_VARIABLES[0])? {
                SignIn::ManagedIdentity { client_id } => AcsConnection::ManagedIdentity { client_id },
                SignIn::Developer => AcsConnection::DeveloperCredential,
            })
        }
    }
}

/// The host of an `https://…` endpoint.
fn endpoint_host(endpoint: &str) -> Option<String> {
    let url = url::Url::parse(endpoint).ok()?;
    (url.scheme() == "https").then(|| url.host_str().map(str::to_ascii_lowercase))?
}

/// Splits `endpoint=https://NAME.communication.azure.com/;accesskey=KEY` into the endpoint's host and the key.
/// Problems never quote the key.
fn parse_connection_string(text: &str) -> Result<(String, Secret), &'static str> {
    let mut endpoint = None;
    let mut key = None;
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = part.split_once('=') else {
            return Err("is not a connection string of the form endpoint=https://…;accesskey=…");
        };
        if name.trim().eq_ignore_ascii_case("endpoint") {
            endpoint = Some(value.trim().to_owned());
        } else if name.trim().eq_ignore_ascii_case("accesskey") {
            key = Some(value.trim().to_owned());
        }
    }
    let host = endpoint_host(&endpoint.ok_or("has no endpoint")?).ok_or("has an endpoint that is not an https URL")?;
    let key = Secret::new(key.ok_or("has no accesskey")?);
    use base64::Engine;
    if base64::engine::general_purpose::STANDARD.decode(key.expose()).is_err() {
        return Err("has an accesskey that is not valid base64");
    }
    Ok((host, key))
}

#[cfg(test)]
mod tests {
    use super::super::tests::config;
    use super::super::{ConfigError, Purpose};
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";

    fn archive(vars: &[(&str, &str)]) -> Result<Option<ArchiveConfig>, ConfigError> {
        config(Purpose::Replay, vars).map(|c| c.archive)
    }

    #[test]
    fn links_last_from_one_minute_to_a_week_to_the_minute() {
        let connection = format!("endpoint=https://contoso-acs.communication.azure.com/;accesskey={KEY}");
        let lifetime = |minutes: &str| {
            archive(&[("AcsConnection", &connection), ("RECORDINGS_LINK_MINUTES", minutes)])
                .map(|archive| archive.unwrap().link_lifetime.as_secs())
        };
        assert!(lifetime("0").is_err());
        assert_eq!(lifetime("1").unwrap(), 60);
        assert_eq!(lifetime("10080").unwrap(), 7 * 24 * 60 * 60);
        assert!(lifetime("10081").is_err(), "a minute past a week");
        assert_eq!(
            archive(&[("AcsConnection", &connection)])
                .unwrap()
                .unwrap()
                .link_lifetime
                .as_secs(),
            15 * 60,
            "fifteen minutes unset"
        );
    }

    #[test]
    fn archival_is_off_without_an_acs_connection() {
        assert_eq!(archive(&[]).unwrap(), None);
    }

    #[test]
    fn the_portals_connection_string_turns_archival_on_with_the_access_key() {
        let connection = format!("endpoint=https://contoso-acs.communication.azure.com/;accesskey={KEY}");
        let archive = archive(&[("AcsConnection", &connection)]).unwrap().unwrap();
        assert_eq!(
            archive.acs,
            AcsConnection::Key {
                host: "contoso-acs.communication.azure.com".into(),
                key: Secret::new(KEY)
            }
        );
        assert_eq!(archive.sources, ArchiveSources::default_list());
        assert!(!archive.delete_after_archive);
        assert_eq!(
            archive.location,
            ArchiveLocation::Embedded {
                data_dir: PathBuf::from(".data")
            }
        );
        assert!(
            !format!("{archive:?}").contains(&KEY[..12]),
            "Debug never shows the key"
        );
    }

    #[test]
    fn the_endpoint_turns_archival_on_with_entra_id() {
        let endpoint = (
            "AcsConnection__endpoint",
            "https://contoso-acs.communication.azure.com/",
        );
        assert_eq!(
            archive(&[endpoint]).unwrap().unwrap().acs,
            AcsConnection::DeveloperCredential
        );
        let managed = archive(&[
            endpoint,
            ("AcsConnection__credential", "managedidentity"),
            ("AcsConnection__clientId", "11111111-2222-3333-4444-555555555555"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            managed.acs,
            AcsConnection::ManagedIdentity {
                client_id: Some("11111111-2222-3333-4444-555555555555".into())
            }
        );
    }

    #[test]
    fn archive_problems_are_reported_without_the_key() {
        for (vars, expected) in [
            (
                vec![("AcsConnection", "endpoint=https://x.communication.azure.com/")],
                "no accesskey",
            ),
            (
                vec![("AcsConnection", "endpoint=http://x/;accesskey=a2V5")],
                "not an https URL",
            ),
            (
                vec![("AcsConnection", "accesskey=not*base64;endpoint=https://x/")],
                "not valid base64",
            ),
            (vec![("AcsConnection__endpoint", "contoso")], "https URL"),
            (
                vec![
                    ("AcsConnection__endpoint", "https://x/"),
                    ("RECORDINGS_ARCHIVE_SOURCES", "https://*.blob.core.windows.net"),
                ],
                "anyone",
            ),
            (
                vec![
                    ("AcsConnection__endpoint", "https://x/"),
                    ("RECORDINGS_DELETE_AFTER_ARCHIVE", "yes"),
                ],
                "RECORDINGS_DELETE_AFTER_ARCHIVE",
            ),
            (
                vec![
                    ("AcsConnection__endpoint", "https://x/"),
                    ("WEBSITE_INSTANCE_ID", "abc"),
                ],
                "ArchiveStorage__blobServiceUri",
            ),
            (
                vec![
                    ("AcsConnection__endpoint", "https://x/"),
                    ("ArchiveStorage", "AccountName=a;AccountKey=not*base64"),
                    ("RECORDINGS_ARCHIVE_CONTAINER", "Recordings"),
                    ("RECORDINGS_ARCHIVE_ACCESS_TIER", "Frozen"),
                ],
                "not valid base64",
            ),
        ] {
            let ConfigError(problems) = archive(&vars).unwrap_err();
            assert!(problems.concat().contains(expected), "{vars:?}: {problems:?}");
            assert!(!problems.concat().contains("not*base64"));
        }
    }

    const ACS: (&str, &str) = (
        "AcsConnection__endpoint",
        "https://contoso-acs.communication.azure.com/",
    );

    fn blob_config(vars: &[(&str, &str)]) -> Result<BlobConfig, ConfigError> {
        let mut vars = vars.to_vec();
        vars.push(ACS);
        match archive(&vars)?.unwrap().location {
            ArchiveLocation::Blob(blob) => Ok(blob),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_storage_connection_string_archives_to_blob_storage_with_shared_key() {
        let blob = blob_config(&[(
            "ArchiveStorage",
            &format!(
                "DefaultEndpointsProtocol=https;AccountName=contoso;AccountKey={KEY};EndpointSuffix=core.windows.net"
            ),
        )])
        .unwrap();
        assert_eq!(blob.service_uri.as_str(), "https://contoso.blob.core.windows.net/");
        assert_eq!(
            blob.auth,
            BlobAuth::SharedKey {
                account: "contoso".into(),
                key: Secret::new(KEY)
            }
        );
        assert_eq!(blob.container, "recordings");
        assert!(!blob.create_container);
        assert_eq!(blob.access_tier, None);
        assert!(!format!("{blob:?}").contains(&KEY[..12]), "Debug never shows the key");
        let explicit = blob_config(&[
            (
                "ArchiveStorage",
                &format!("AccountName=a;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:10000/a/"),
            ),
            ("RECORDINGS_ARCHIVE_CONTAINER", "call-archive"),
            ("RECORDINGS_CREATE_IF_NOT_EXISTS", "true"),
            ("RECORDINGS_ARCHIVE_ACCESS_TIER", "cold"),
        ])
        .unwrap();
        assert_eq!(explicit.service_uri.as_str(), "http://127.0.0.1:10000/a");
        assert_eq!(explicit.container, "call-archive");
        assert!(explicit.create_container);
        assert_eq!(explicit.access_tier, Some(AccessTier::Cold));
    }

    #[test]
    fn plain_http_blob_endpoints_are_accepted_only_on_this_machine() {
        for endpoint in [
            "http://127.0.0.1:10000/a",
            "http://127.0.0.2:10000/a",
            "http://localhost:10000/a",
            "http://[::1]:10000/a",
        ] {
            let connection = format!("AccountName=a;AccountKey={KEY};BlobEndpoint={endpoint}");
            let blob = blob_config(&[("ArchiveStorage", &connection)]).unwrap();
            assert_eq!(blob.service_uri.scheme(), "http", "{endpoint}");
        }
        let uri = blob_config(&[(
            "ArchiveStorage__blobServiceUri",
            "http://127.0.0.1:10000/devstoreaccount1",
        )]);
        assert_eq!(
            uri.unwrap().service_uri.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        for connection in [
            format!("AccountName=a;AccountKey={KEY};BlobEndpoint=http://a.blob.core.windows.net"),
            format!("AccountName=a;AccountKey={KEY};BlobEndpoint=http://10.0.0.4:10000/a"),
            format!("DefaultEndpointsProtocol=http;AccountName=a;AccountKey={KEY};EndpointSuffix=core.windows.net"),
        ] {
            let ConfigError(problems) = blob_config(&[("ArchiveStorage", &connection)]).unwrap_err();
            assert!(problems.concat().contains("plain http"), "{connection}: {problems:?}");
        }
        let ConfigError(problems) =
            blob_config(&[("ArchiveStorage__blobServiceUri", "http://a.blob.core.windows.net")]).unwrap_err();
        assert!(
            problems.concat().contains("plain http only on this machine"),
            "{problems:?}"
        );
    }

    #[test]
    fn use_development_storage_means_azurites_well_known_account() {
        let blob = blob_config(&[("ArchiveStorage", "UseDevelopmentStorage=true")]).unwrap();
        assert_eq!(blob.service_uri.as_str(), "http://127.0.0.1:10000/devstoreaccount1");
        assert_eq!(
            blob.auth,
            BlobAuth::SharedKey {
                account: DEVELOPMENT_ACCOUNT.into(),
                key: Secret::new(DEVELOPMENT_KEY)
            }
        );
    }

    #[test]
    fn the_blob_service_uri_archives_with_entra_id_and_is_accepted_in_azure() {
        let uri = (
            "ArchiveStorage__blobServiceUri",
            "https://contoso.blob.core.windows.net/",
        );
        assert_eq!(blob_config(&[uri]).unwrap().auth, BlobAuth::DeveloperCredential);
        let in_azure = blob_config(&[
            uri,
            ("ArchiveStorage__clientId", "11111111-2222-3333-4444-555555555555"),
            ("WEBSITE_INSTANCE_ID", "abc"),
            (
                "CosmosDbConnection__accountEndpoint",
                "https://c.documents.azure.com:443/",
            ),
        ])
        .unwrap();
        assert_eq!(
            in_azure.auth,
            BlobAuth::ManagedIdentity {
                client_id: Some("11111111-2222-3333-4444-555555555555".into())
            }
        );
    }

    #[test]
    fn blob_problems_are_reported_together_without_the_key() {
        for (vars, expected) in [
            (
                vec![
                    ("ArchiveStorage", "UseDevelopmentStorage=true"),
                    ("ArchiveStorage__blobServiceUri", "https://a.blob.core.windows.net"),
                ],
                "set only one",
            ),
            (
                vec![("ArchiveStorage__blobServiceUri", "http://a.blob.core.windows.net")],
                "https",
            ),
            (
                vec![("ArchiveStorage__blobServiceUri", "AccountName=a;AccountKey=c2VjcmV0")],
                "looks like a connection string",
            ),
            (vec![("ArchiveStorage", "AccountName=a")], "no AccountKey"),
            (
                vec![(
                    "ArchiveStorage",
                    "BlobEndpoint=https://a/;SharedAccessSignature=sv=1&sig=c2VjcmV0",
                )],
                "shared access signature",
            ),
            (
                vec![
                    ("ArchiveStorage__blobServiceUri", "https://a.blob.core.windows.net"),
                    ("ArchiveStorage__credential", "password"),
                ],
                "managedidentity",
            ),
        ] {
            let ConfigError(problems) = blob_config(&vars).unwrap_err();
            assert!(problems.concat().contains(expected), "{vars:?}: {problems:?}");
            assert!(!problems.concat().contains("c2VjcmV0"), "{problems:?}");
        }
        let ConfigError(problems) = blob_config(&[
            ("ArchiveStorage", "UseDevelopmentStorage=true"),
            ("RECORDINGS_ARCHIVE_CONTAINER", "Bad--Name"),
            ("RECORDINGS_ARCHIVE_ACCESS_TIER", "Frozen"),
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 2, "every problem at once: {problems:?}");
    }
}
