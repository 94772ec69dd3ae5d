//! The Cosmos DB settings, named after the Functions Cosmos DB binding's connection conventions.

use base64::Engine;

use super::{Settings, SignIn};
use crate::secret::{Secret, quoted};

/// The connection settings that select Cosmos DB: a connection string (key authentication), or the account
/// endpoint (Microsoft Entra ID).
pub const COSMOS_VARIABLES: [&str; 2] = ["CosmosDbConnection", "CosmosDbConnection__accountEndpoint"];

pub const DEFAULT_DATABASE: &str = "recordings";
pub const DEFAULT_CONTAINER: &str = "recordings";
pub const DEFAULT_QUARANTINE_CONTAINER: &str = "quarantine";

/// Where and how to reach Cosmos DB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosmosConfig {
    /// The account URL, e.g. `https://contoso.documents.azure.com:443/`.
    pub endpoint: String,
    pub auth: CosmosAuth,
    pub database: String,
    pub container: String,
    pub quarantine_container: String,
    /// Create the database and containers at startup when missing (key auth only: control-plane calls need a key).
    pub create_if_not_exists: bool,
    /// The Azure region the app runs in (`REGION_NAME`, set by Azure Functions): the SDK prefers the account's
    /// regions closest to it. Outside Azure, the account's own region order applies.
    pub region: Option<String>,
    /// Accept an account that takes writes in several regions (`RECORDINGS_ALLOW_MULTI_REGION_WRITES`). There,
    /// `If-Match` and create conflicts hold only within one region, so two instances writing through different
    /// regions can silently drop one write; the handler refuses such an account unless told otherwise.
    pub allow_multi_region_writes: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CosmosAuth {
    /// The account key of a connection string (local development, the emulator).
    Key(Secret),
    /// A managed identity: the system-assigned one, or the user-assigned one with this client id.
    ManagedIdentity { client_id: Option<String> },
    /// The developer's own sign-in (Azure CLI), outside Azure.
    DeveloperCredential,
}

/// Reads the Cosmos DB settings, `None` when no connection is configured (problems are still reported).
pub(super) fn read(settings: &mut Settings<'_>) -> Option<CosmosConfig> {
    let (endpoint, auth) = connection(settings)?;
    if endpoint.to_ascii_lowercase().contains("accountkey") {
        // Never echo it: it holds a key.
        settings.problem(format!(
            "{} looks like a connection string; put connection strings in {}",
            COSMOS_VARIABLES[1], COSMOS_VARIABLES[0]
        ));
    } else if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
        settings.problem(format!(
            "the Cosmos DB account endpoint must be an http(s) URL, not {}",
            quoted(&endpoint)
        ));
    }
    let create_if_not_exists = settings.flag("RECORDINGS_CREATE_IF_NOT_EXISTS", false);
    if create_if_not_exists && !matches!(auth, CosmosAuth::Key(_)) {
        settings.problem(
            "RECORDINGS_CREATE_IF_NOT_EXISTS=true needs key authentication (a CosmosDbConnection connection string): \
             Cosmos DB accepts database and container creation only with an account key; create them with the \
             Azure CLI or Bicep instead",
        );
    }
    let allow_multi_region_writes = settings.flag("RECORDINGS_ALLOW_MULTI_REGION_WRITES", false);
    let name = |variable: &str, default: &str| settings.get(variable).unwrap_or_else(|| default.to_owned());
    Some(CosmosConfig {
        endpoint,
        auth,
        database: name("RECORDINGS_DATABASE", DEFAULT_DATABASE),
        container: name("RECORDINGS_CONTAINER", DEFAULT_CONTAINER),
        quarantine_container: name("RECORDINGS_QUARANTINE_CONTAINER", DEFAULT_QUARANTINE_CONTAINER),
        create_if_not_exists,
        region: settings.get("REGION_NAME"),
        allow_multi_region_writes,
    })
}

/// The endpoint and how to sign in, from exactly one of the two connection settings.
fn connection(settings: &mut Settings<'_>) -> Option<(String, CosmosAuth)> {
    match (settings.get(COSMOS_VARIABLES[0]), settings.get(COSMOS_VARIABLES[1])) {
        (None, None) => None,
        (Some(_), Some(_)) => {
            settings.problem(format!(
                "both {} and {} are set; set only one: the connection string for key authentication, the account \
                 endpoint for Microsoft Entra ID",
                COSMOS_VARIABLES[0], COSMOS_VARIABLES[1]
            ));
            None
        }
        (Some(connection_string), None) => match parse_connection_string(&connection_string) {
            Ok((endpoint, key)) => Some((endpoint, CosmosAuth::Key(key))),
            Err(problem) => {
                settings.problem(format!("{} {problem}", COSMOS_VARIABLES[0]));
                None
            }
        },
        (None, Some(endpoint)) => {
            // After a problem (reported) the credential does not matter: the handler does not start.
            let auth = match settings.sign_in(COSMOS_VARIABLES[0]) {
                Some(SignIn::ManagedIdentity { client_id }) => CosmosAuth::ManagedIdentity { client_id },
                Some(SignIn::Developer) | None => CosmosAuth::DeveloperCredential,
            };
            Some((endpoint, auth))
        }
    }
}

/// Splits `AccountEndpoint=…;AccountKey=…;` into the endpoint and the key. Problems never quote the key.
fn parse_connection_string(text: &str) -> Result<(String, Secret), &'static str> {
    let mut endpoint = None;
    let mut key = None;
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = part.split_once('=') else {
            return Err("is not a connection string of the form AccountEndpoint=…;AccountKey=…;");
        };
        if name.trim().eq_ignore_ascii_case("AccountEndpoint") {
            endpoint = Some(value.trim().to_owned());
        } else if name.trim().eq_ignore_ascii_case("AccountKey") {
            key = Some(value.trim().to_owned());
        }
    }
    let endpoint = endpoint.ok_or("has no AccountEndpoint")?;
    let key = key.ok_or("has no AccountKey")?;
    if base64::engine::general_purpose::STANDARD.decode(&key).is_err() {
        return Err("has an AccountKey that is not valid base64");
    }
    Ok((endpoint, Secret::new(key)))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{KEY, config};
    use super::super::{ConfigError, Purpose, StoreConfig};
    use super::*;

    fn cosmos(vars: &[(&str, &str)]) -> Result<CosmosConfig, ConfigError> {
        match config(Purpose::Replay, vars)?.store {
            StoreConfig::Cosmos(cosmos) => Ok(cosmos),
            other => panic!("not Cosmos: {other:?}"),
        }
    }

    #[test]
    fn connection_string_selects_cosmos_with_key_auth_and_default_names() {
        let connection = format!("AccountEndpoint=https://contoso.documents.azure.com:443/;AccountKey={KEY};");
        let c = cosmos(&[("CosmosDbConnection", &connection)]).unwrap();
        assert_eq!(c.endpoint, "https://contoso.documents.azure.com:443/");
        assert_eq!(c.auth, CosmosAuth::Key(Secret::new(KEY)));
        assert_eq!(
            (c.database.as_str(), c.container.as_str()),
            (DEFAULT_DATABASE, DEFAULT_CONTAINER)
        );
        assert_eq!(c.quarantine_container, DEFAULT_QUARANTINE_CONTAINER);
        assert!(!c.create_if_not_exists);
        assert!(
            !c.allow_multi_region_writes,
            "multi-region writes are refused unless allowed"
        );
        assert!(!format!("{c:?}").contains(&KEY[..12]), "Debug never shows the key");
    }

    #[test]
    fn multi_region_writes_are_allowed_only_when_asked() {
        let connection = format!("AccountEndpoint=https://contoso.documents.azure.com:443/;AccountKey={KEY};");
        let allowed = cosmos(&[
            ("CosmosDbConnection", &connection),
            ("RECORDINGS_ALLOW_MULTI_REGION_WRITES", "true"),
        ])
        .unwrap();
        assert!(allowed.allow_multi_region_writes);
        assert!(
            config(
                Purpose::Replay,
                &[
                    ("CosmosDbConnection", &connection),
                    ("RECORDINGS_ALLOW_MULTI_REGION_WRITES", "maybe")
                ]
            )
            .is_err()
        );
    }

    #[test]
    fn account_endpoint_selects_entra_id() {
        let endpoint = (
            "CosmosDbConnection__accountEndpoint",
            "https://contoso.documents.azure.com:443/",
        );
        assert_eq!(cosmos(&[endpoint]).unwrap().auth, CosmosAuth::DeveloperCredential);
        let managed = cosmos(&[
            endpoint,
            ("CosmosDbConnection__credential", "managedidentity"),
            ("CosmosDbConnection__clientId", "11111111-2222-3333-4444-555555555555"),
        ])
        .unwrap();
        assert_eq!(
            managed.auth,
            CosmosAuth::ManagedIdentity {
                client_id: Some("11111111-2222-3333-4444-555555555555".into())
            }
        );
        let in_azure = cosmos(&[endpoint, ("WEBSITE_INSTANCE_ID", "abc")]).unwrap();
        assert_eq!(in_azure.auth, CosmosAuth::ManagedIdentity { client_id: None });
    }

    #[test]
    fn cosmos_problems_are_reported_without_the_key() {
        let bad_key = "AccountEndpoint=https://x/;AccountKey=not*base64;";
        let ConfigError(problems) = config(Purpose::Replay, &[("CosmosDbConnection", bad_key)]).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("not valid base64") && !problems[0].contains("not*base64"));

        let ConfigError(problems) = config(
            Purpose::Replay,
            &[
                ("CosmosDbConnection__accountEndpoint", "contoso"),
                ("RECORDINGS_CREATE_IF_NOT_EXISTS", "true"),
            ],
        )
        .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:#?}");

        let pasted = format!("AccountEndpoint=https://x/;AccountKey={KEY};");
        let ConfigError(problems) =
            config(Purpose::Replay, &[("CosmosDbConnection__accountEndpoint", &pasted)]).unwrap_err();
        assert!(
            problems.concat().contains("looks like a connection string"),
            "{problems:?}"
        );
        assert!(!problems.concat().contains(&KEY[..12]), "the key is never echoed");

        let both = [
            ("CosmosDbConnection", "AccountEndpoint=https://x/;AccountKey=a2V5;"),
            ("CosmosDbConnection__accountEndpoint", "https://x/"),
        ];
        assert!(config(Purpose::Replay, &both).is_err());
    }
}
