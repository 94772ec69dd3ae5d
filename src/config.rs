//! The handler's settings, read once from the environment (the Function App's app settings) and validated together,
//! so that a misconfigured app reports every problem in one message at startup.

use std::fmt;
use std::path::PathBuf;

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
    /// A `tracing` filter directive (`RUST_LOG`): `info` by default when serving, `warn` when replaying (whose
    /// report already says what happened to each event).
    pub log_filter: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// Documents as files under this directory.
    Embedded { data_dir: PathBuf },
}

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

        if let Some(name) = COSMOS_VARIABLES.iter().find(|name| get(name).is_some()) {
            problems.push(format!(
                "{name} is set, but this version of the handler keeps recordings only in the embedded store; \
                 unset it to use the embedded store"
            ));
        }
        if get("WEBSITE_INSTANCE_ID").is_some() {
            problems.push(
                "the handler is running in Azure (WEBSITE_INSTANCE_ID is set) without a Cosmos DB connection: the \
                 embedded store would keep recordings on the instance's temporary disk, where they would be lost"
                    .to_owned(),
            );
        }
        let data_dir = PathBuf::from(get("RECORDINGS_DATA_DIR").unwrap_or_else(|| ".data".to_owned()));

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
            store: StoreConfig::Embedded { data_dir },
            log_format,
            log_filter,
        })
    }
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
