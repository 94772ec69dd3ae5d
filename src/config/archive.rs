//! The archival settings: how to reach ACS (named like the Cosmos DB connection settings), where downloads may go,
//! and what to do once a chunk is archived. Archival is on when an ACS connection is set.

use std::path::PathBuf;

use super::{Settings, data_dir};
use crate::archive::sources::{ArchiveSources, DEFAULT_SOURCES};
use crate::secret::Secret;

/// The connection settings that turn archival on: the ACS connection string (HMAC with the access key), or the
/// resource's endpoint (Microsoft Entra ID).
pub const ACS_VARIABLES: [&str; 2] = ["AcsConnection", "AcsConnection__endpoint"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    pub acs: AcsConnection,
    /// Where downloads may go (`RECORDINGS_ARCHIVE_SOURCES`).
    pub sources: ArchiveSources,
    /// Delete a chunk's files at ACS once both are archived (`RECORDINGS_DELETE_AFTER_ARCHIVE`).
    pub delete_after_archive: bool,
    /// The embedded archive's data folder (`RECORDINGS_DATA_DIR`); the archive is its `archive/` folder.
    pub data_dir: PathBuf,
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
    if settings.in_azure() {
        settings.problem(
            "archival is on (an ACS connection is set) while running in Azure (WEBSITE_INSTANCE_ID is set), where the \
             embedded archive would keep recordings on the instance's temporary disk; archive to Blob Storage, or \
             unset the ACS connection",
        );
    }
    Some(ArchiveConfig {
        acs,
        sources,
        delete_after_archive: settings.flag("RECORDINGS_DELETE_AFTER_ARCHIVE", false),
        data_dir: data_dir(settings),
    })
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
                settings.problem(format!("{} must be an https URL, not {endpoint:?}", ACS_VARIABLES[1]));
                return None;
            }
            let client_id = settings.get("AcsConnection__clientId");
            match settings
                .get("AcsConnection__credential")
                .map(|c| c.to_ascii_lowercase())
                .as_deref()
            {
                Some("managedidentity") => Some(AcsConnection::ManagedIdentity { client_id }),
                None if settings.in_azure() => Some(AcsConnection::ManagedIdentity { client_id }),
                None => Some(AcsConnection::DeveloperCredential),
                Some(other) => {
                    settings.problem(format!(
                        "AcsConnection__credential must be \"managedidentity\" or unset, not {other:?}"
                    ));
                    None
                }
            }
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
        assert_eq!(archive.data_dir, PathBuf::from(".data"));
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
                "embedded archive",
            ),
        ] {
            let ConfigError(problems) = archive(&vars).unwrap_err();
            assert!(problems.concat().contains(expected), "{vars:?}: {problems:?}");
            assert!(!problems.concat().contains("not*base64"));
        }
    }
}
