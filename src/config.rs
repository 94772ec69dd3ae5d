//! The handler's settings, read once from the environment (the Function App's app settings) and validated together,
//! so that a misconfigured app reports every problem in one message at startup.

use std::fmt;
use std::path::PathBuf;

use base64::Engine;

use crate::secret::Secret;

/// The port variable set by current Functions hosts, and the one older hosts set.
pub const PORT_VARIABLES: [&str; 2] = ["FUNCTIONS_CUSTOMHANDLER_PORT", "FUNCTIONS_HTTPWORKER_PORT"];
/// The connection settings that select Cosmos DB, following the Functions Cosmos DB binding's conventions.
pub const COSMOS_VARIABLES: [&str; 2] = ["CosmosDbConnection", "CosmosDbConnection__accountEndpoint"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The loopback port the host dials; only `serve` needs one.
    pub port: Option<u16>,
    pub store: StoreConfig,
    pub log_format: LogFormat,
    /// The ACS resource ids whose events are accepted (`RECORDINGS_ALLOWED_SOURCES`); `None` accepts every source.
    pub allowed_sources: Option<Vec<String>>,
    /// A `tracing` filter directive (`RUST_LOG`): `info` by default when serving, `warn` when replaying (whose
    /// report already says what happened to each event).
    pub log_filter: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// Documents as files under this directory.
    Embedded {
        data_dir: PathBuf,
    },
    Cosmos(CosmosConfig),
    /// Documents in memory, lost when the process ends: for benchmarks and tests only (`RECORDINGS_STORE=memory`).
    Memory,
}

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

pub const DEFAULT_DATABASE: &str = "recordings";
pub const DEFAULT_CONTAINER: &str = "recordings";
pub const DEFAULT_QUARANTINE_CONTAINER: &str = "quarantine";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, the default.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Which command the configuration is for: serving needs a port, replaying does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Serve,
    Replay,
}

/// Every problem found in the configuration, each in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the handler's configuration has {} problem(s):", self.0.len())?;
        for problem in &self.0 {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    pub fn from_env(purpose: Purpose) -> Result<Self, ConfigError> {
        Self::from_lookup(purpose, |name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`; an empty value counts as unset, as in the Functions portal.
    pub fn from_lookup(purpose: Purpose, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut problems = Vec::new();

        let port = match PORT_VARIABLES
            .iter()
            .find_map(|name| get(name).map(|value| (*name, value)))
        {
            Some((name, value)) => match value.parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => {
                    problems.push(format!(
                        "{name} must be a TCP port number from 1 to 65535, not {value:?}"
                    ));
                    None
                }
            },
            None => {
                if purpose == Purpose::Serve {
                    problems.push(format!(
                        "{} is not set: the Functions host sets it when it starts the handler; to run the handler \
                         by hand, set it to a free port",
                        PORT_VARIABLES[0]
                    ));
                }
                None
            }
        };

        let in_azure = get("WEBSITE_INSTANCE_ID").is_some();
        let cosmos = cosmos_config(&get, in_azure, &mut problems);
        let chosen = get("RECORDINGS_STORE").map(|v| v.to_ascii_lowercase());
        let store = match (chosen.as_deref(), cosmos) {
            (None | Some("cosmos"), Some(cosmos)) => StoreConfig::Cosmos(cosmos),
            (Some("cosmos"), None) => {
                problems.push(format!(
                    "RECORDINGS_STORE is \"cosmos\" but no usable Cosmos DB connection is set; set {} or {}",
                    COSMOS_VARIABLES[0], COSMOS_VARIABLES[1]
                ));
                StoreConfig::Memory
            }
            (Some("memory"), _) => {
                if in_azure {
                    problems.push(
                        "RECORDINGS_STORE is \"memory\" while running in Azure (WEBSITE_INSTANCE_ID is set): the \
                         memory store keeps nothing and is for benchmarks only"
                            .to_owned(),
                    );
                }
                StoreConfig::Memory
            }
            (None | Some("embedded"), _) => {
                if in_azure {
                    problems.push(format!(
                        "the handler is running in Azure (WEBSITE_INSTANCE_ID is set) on the embedded store, which \
                         would keep recordings on the instance's temporary disk, where they would be lost; set {} or \
                         {}, and leave RECORDINGS_STORE unset or \"cosmos\"",
                        COSMOS_VARIABLES[0], COSMOS_VARIABLES[1]
                    ));
                }
                let data_dir = PathBuf::from(get("RECORDINGS_DATA_DIR").unwrap_or_else(|| ".data".to_owned()));
                StoreConfig::Embedded { data_dir }
            }
            (Some(other), _) => {
                problems.push(format!(
                    "RECORDINGS_STORE must be \"cosmos\", \"embedded\" or \"memory\" (or unset: Cosmos DB when a \
                     connection is set, else embedded), not {other:?}"
                ));
                StoreConfig::Memory
            }
        };

        let allowed_sources = get("RECORDINGS_ALLOWED_SOURCES").map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
        if allowed_sources.as_ref().is_some_and(Vec::is_empty) {
            problems
                .push("RECORDINGS_ALLOWED_SOURCES lists no resource id; unset it to accept every source".to_owned());
        }
        if let Some(sources) = &allowed_sources {
            for source in sources.iter().filter(|s| !s.starts_with('/')) {
                problems.push(format!(
                    "RECORDINGS_ALLOWED_SOURCES must list resource ids such as /subscriptions/…/communicationServices/NAME, \
                     not {source:?}"
                ));
            }
        }

        let log_format = match get("RECORDINGS_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                problems.push(format!(
                    "RECORDINGS_LOG_FORMAT must be \"text\" or \"json\", not {other:?}"
                ));
                LogFormat::Text
            }
        };
        let default_filter = match purpose {
            Purpose::Serve => "info",
            Purpose::Replay => "warn",
        };
        let log_filter = get("RUST_LOG").unwrap_or_else(|| default_filter.to_owned());
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&log_filter) {
            problems.push(format!("RUST_LOG is not a valid log filter ({error}): {log_filter:?}"));
        }

        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Config {
            port,
            store,
            allowed_sources,
            log_format,
            log_filter,
        })
    }
}

/// Reads the Cosmos DB settings, `None` when no connection is configured (problems are still reported).
fn cosmos_config(
    get: &impl Fn(&str) -> Option<String>,
    in_azure: bool,
    problems: &mut Vec<String>,
) -> Option<CosmosConfig> {
    let connection_string = get(COSMOS_VARIABLES[0]);
    let account_endpoint = get(COSMOS_VARIABLES[1]);
    let (endpoint, auth) = match (connection_string, account_endpoint) {
        (None, None) => return None,
        (Some(_), Some(_)) => {
            problems.push(format!(
                "both {} and {} are set; set only one: the connection string for key authentication, the \
                 account endpoint for Microsoft Entra ID",
                COSMOS_VARIABLES[0], COSMOS_VARIABLES[1]
            ));
            return None;
        }
        (Some(connection_string), None) => match parse_connection_string(&connection_string) {
            Ok((endpoint, key)) => (endpoint, CosmosAuth::Key(key)),
            Err(problem) => {
                problems.push(format!("{} {problem}", COSMOS_VARIABLES[0]));
                return None;
            }
        },
        (None, Some(endpoint)) => {
            let credential = get("CosmosDbConnection__credential");
            let client_id = get("CosmosDbConnection__clientId");
            let auth = match credential.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("managedidentity") => CosmosAuth::ManagedIdentity { client_id },
                None if in_azure => CosmosAuth::ManagedIdentity { client_id },
                None => CosmosAuth::DeveloperCredential,
                Some(other) => {
                    problems.push(format!(
                        "CosmosDbConnection__credential must be \"managedidentity\" or unset, not {other:?}"
                    ));
                    CosmosAuth::DeveloperCredential
                }
            };
            (endpoint, auth)
        }
    };
    if endpoint.to_ascii_lowercase().contains("accountkey") {
        // Never echo it: it holds a key.
        problems.push(format!(
            "{} looks like a connection string; put connection strings in {}",
            COSMOS_VARIABLES[1], COSMOS_VARIABLES[0]
        ));
    } else if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
        problems.push(format!(
            "the Cosmos DB account endpoint must be an http(s) URL, not {endpoint:?}"
        ));
    }
    let create_if_not_exists = match get("RECORDINGS_CREATE_IF_NOT_EXISTS").map(|v| v.to_ascii_lowercase()) {
        None => false,
        Some(v) if v == "true" => true,
        Some(v) if v == "false" => false,
        Some(v) => {
            problems.push(format!(
                "RECORDINGS_CREATE_IF_NOT_EXISTS must be \"true\" or \"false\", not {v:?}"
            ));
            false
        }
    };
    if create_if_not_exists && !matches!(auth, CosmosAuth::Key(_)) {
        problems.push(
            "RECORDINGS_CREATE_IF_NOT_EXISTS=true needs key authentication (a CosmosDbConnection connection \
             string): Cosmos DB accepts database and container creation only with an account key; create them \
             with the Azure CLI or Bicep instead"
                .to_owned(),
        );
    }
    let name = |variable: &str, default: &str| get(variable).unwrap_or_else(|| default.to_owned());
    Some(CosmosConfig {
        endpoint,
        auth,
        database: name("RECORDINGS_DATABASE", DEFAULT_DATABASE),
        container: name("RECORDINGS_CONTAINER", DEFAULT_CONTAINER),
        quarantine_container: name("RECORDINGS_QUARANTINE_CONTAINER", DEFAULT_QUARANTINE_CONTAINER),
        create_if_not_exists,
        region: get("REGION_NAME"),
    })
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
    use super::*;
    use std::collections::HashMap;

    fn config(purpose: Purpose, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(purpose, |name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_keep_recordings_under_dot_data() {
        let c = config(Purpose::Serve, &[("FUNCTIONS_CUSTOMHANDLER_PORT", "7072")]).unwrap();
        assert_eq!(c.port, Some(7072));
        assert_eq!(
            c.store,
            StoreConfig::Embedded {
                data_dir: PathBuf::from(".data")
            }
        );
        assert_eq!((c.log_format, c.log_filter.as_str()), (LogFormat::Text, "info"));
    }

    #[test]
    fn older_hosts_port_variable_is_accepted() {
        let c = config(Purpose::Serve, &[("FUNCTIONS_HTTPWORKER_PORT", "7073")]).unwrap();
        assert_eq!(c.port, Some(7073));
    }

    #[test]
    fn replay_needs_no_port() {
        assert_eq!(config(Purpose::Replay, &[]).unwrap().port, None);
        assert!(config(Purpose::Serve, &[]).is_err());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let ConfigError(problems) = config(
            Purpose::Serve,
            &[
                ("FUNCTIONS_CUSTOMHANDLER_PORT", "70000"),
                ("WEBSITE_INSTANCE_ID", "abc"),
                ("RECORDINGS_LOG_FORMAT", "xml"),
                ("RUST_LOG", "=[bad"),
            ],
        )
        .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].contains("FUNCTIONS_CUSTOMHANDLER_PORT"));
        assert!(problems[1].contains("WEBSITE_INSTANCE_ID"));
    }

    #[test]
    fn recordings_store_chooses_the_backend_explicitly() {
        let store = |vars: &[(&str, &str)]| config(Purpose::Replay, vars).map(|c| c.store);
        assert_eq!(store(&[("RECORDINGS_STORE", "memory")]).unwrap(), StoreConfig::Memory);
        let connection = format!("AccountEndpoint=https://contoso.documents.azure.com:443/;AccountKey={KEY};");
        let embedded = store(&[("RECORDINGS_STORE", "Embedded"), ("CosmosDbConnection", &connection)]).unwrap();
        assert!(matches!(embedded, StoreConfig::Embedded { .. }), "{embedded:?}");
        let ConfigError(problems) = store(&[("RECORDINGS_STORE", "cosmos")]).unwrap_err();
        assert!(problems[0].contains("no usable Cosmos DB connection"), "{problems:?}");
        let ConfigError(problems) = store(&[("RECORDINGS_STORE", "disk")]).unwrap_err();
        assert!(problems[0].contains("\"memory\""), "{problems:?}");
    }

    #[test]
    fn memory_store_is_refused_in_azure() {
        let ConfigError(problems) = config(
            Purpose::Replay,
            &[("RECORDINGS_STORE", "memory"), ("WEBSITE_INSTANCE_ID", "abc")],
        )
        .unwrap_err();
        assert!(problems[0].contains("keeps nothing"), "{problems:?}");
    }

    const KEY: &str = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

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
        assert!(!format!("{c:?}").contains(&KEY[..12]), "Debug never shows the key");
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

    #[test]
    fn allowed_sources_are_a_comma_separated_list_of_resource_ids() {
        let c = config(
            Purpose::Replay,
            &[(
                "RECORDINGS_ALLOWED_SOURCES",
                " /subscriptions/a/x , /subscriptions/b/y,",
            )],
        )
        .unwrap();
        assert_eq!(
            c.allowed_sources,
            Some(vec!["/subscriptions/a/x".to_owned(), "/subscriptions/b/y".to_owned()])
        );
        assert!(config(Purpose::Replay, &[("RECORDINGS_ALLOWED_SOURCES", "contoso-acs")]).is_err());
        assert!(config(Purpose::Replay, &[("RECORDINGS_ALLOWED_SOURCES", " , ")]).is_err());
        assert_eq!(config(Purpose::Replay, &[]).unwrap().allowed_sources, None);
    }

    #[test]
    fn empty_settings_count_as_unset() {
        let c = config(
            Purpose::Replay,
            &[("RECORDINGS_DATA_DIR", " "), ("WEBSITE_INSTANCE_ID", "")],
        )
        .unwrap();
        assert_eq!(
            c.store,
            StoreConfig::Embedded {
                data_dir: PathBuf::from(".data")
            }
        );
    }
}
