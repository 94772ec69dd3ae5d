//! The handler's settings, read once from the environment (the Function App's app settings) and validated together,
//! so that a misconfigured app reports every problem in one message at startup.
//!
//! Each group of settings has a function (or a module) of its own; they all read through one [`Settings`] reader,
//! which trims values, treats empty ones as unset (as the Functions portal does) and collects problems.

mod archive;
mod cosmos;

use std::fmt;
use std::path::PathBuf;

use crate::secret::quoted;

pub use archive::{
    ACS_VARIABLES, AccessTier, AcsConnection, ArchiveConfig, ArchiveLocation, BLOB_VARIABLES, BlobAuth, BlobConfig,
    DEFAULT_ARCHIVE_CONTAINER, DEVELOPMENT_ACCOUNT, DEVELOPMENT_BLOB_ENDPOINT, DEVELOPMENT_KEY,
};
pub use cosmos::{
    COSMOS_VARIABLES, CosmosAuth, CosmosConfig, DEFAULT_CONTAINER, DEFAULT_DATABASE, DEFAULT_QUARANTINE_CONTAINER,
};

/// The port variable set by current Functions hosts, and the one older hosts set.
pub const PORT_VARIABLES: [&str; 2] = ["FUNCTIONS_CUSTOMHANDLER_PORT", "FUNCTIONS_HTTPWORKER_PORT"];

/// The worker id variable set by current Functions hosts, and the one older hosts set.
pub const WORKER_ID_VARIABLES: [&str; 2] = ["FUNCTIONS_CUSTOMHANDLER_WORKER_ID", "FUNCTIONS_HTTPWORKER_ID"];

/// Every setting the handler reads that a user sets: `local.settings.json.example` and the tables in `docs/SETTINGS.md`
/// list exactly these (a test holds all three together), and [`Settings`] refuses to read a name that is neither
/// here nor in [`HOST_VARIABLES`], so a new setting cannot be read without being listed.
pub const SETTINGS: &[&str] = &[
    COSMOS_VARIABLES[0],
    COSMOS_VARIABLES[1],
    "CosmosDbConnection__credential",
    "CosmosDbConnection__clientId",
    "RECORDINGS_DATABASE",
    "RECORDINGS_CONTAINER",
    "RECORDINGS_QUARANTINE_CONTAINER",
    "RECORDINGS_CREATE_IF_NOT_EXISTS",
    "RECORDINGS_ALLOW_MULTI_REGION_WRITES",
    "RECORDINGS_ALLOWED_SOURCES",
    "RECORDINGS_STORE",
    "RECORDINGS_DATA_DIR",
    ACS_VARIABLES[0],
    ACS_VARIABLES[1],
    "AcsConnection__credential",
    "AcsConnection__clientId",
    "RECORDINGS_ARCHIVE_SOURCES",
    "RECORDINGS_DELETE_AFTER_ARCHIVE",
    "RECORDINGS_LINK_MINUTES",
    "RECORDINGS_AT_RISK_HOURS",
    BLOB_VARIABLES[0],
    BLOB_VARIABLES[1],
    "ArchiveStorage__credential",
    "ArchiveStorage__clientId",
    "RECORDINGS_ARCHIVE_CONTAINER",
    "RECORDINGS_ARCHIVE_ACCESS_TIER",
    "RECORDINGS_LOG_FORMAT",
    "RUST_LOG",
];

/// The variables the Functions host or Azure sets, which the handler reads but a user does not set.
pub const HOST_VARIABLES: &[&str] = &[
    PORT_VARIABLES[0],
    PORT_VARIABLES[1],
    WORKER_ID_VARIABLES[0],
    WORKER_ID_VARIABLES[1],
    "FUNCTIONS_APP_ROOT_PATH",
    "WEBSITE_INSTANCE_ID",
    "REGION_NAME",
];

/// The embedded store's folder when `RECORDINGS_DATA_DIR` is unset.
pub const DEFAULT_DATA_DIR: &str = ".data";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The loopback port the host dials; only `serve` needs one.
    pub port: Option<u16>,
    /// The function app's root folder (`FUNCTIONS_APP_ROOT_PATH`, set by the host); `None` outside the host.
    pub app_root: Option<PathBuf>,
    /// The id the host gave this worker process (`FUNCTIONS_CUSTOMHANDLER_WORKER_ID`), echoed on `GET /`.
    pub worker_id: Option<String>,
    pub store: StoreConfig,
    /// Archival of every chunk's files; `None` when no ACS connection is set (archival is off).
    pub archive: Option<ArchiveConfig>,
    pub log_format: LogFormat,
    /// The ACS resource ids whose events are accepted (`RECORDINGS_ALLOWED_SOURCES`); `None` accepts every source.
    pub allowed_sources: Option<Vec<String>>,
    /// A `tracing` filter directive (`RUST_LOG`): `info` by default when serving, `warn,audit=info` for the
    /// commands (whose report already says what happened; the audit lines of `handler erase` are kept).
    pub log_filter: String,
    /// How long before ACS's deadline a pending chunk counts as at risk (`RECORDINGS_AT_RISK_HOURS`).
    pub at_risk: time::Duration,
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

/// Reads settings through a lookup function and collects the problems found, so that tests never touch the
/// process environment and every problem is reported at once.
pub(crate) struct Settings<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
    /// Names read that [`SETTINGS`] and [`HOST_VARIABLES`] do not list: each is a problem, so that every test of the
    /// configuration fails until the new setting is listed (and documented).
    unlisted: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl<'a> Settings<'a> {
    fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            lookup,
            problems: Vec::new(),
            unlisted: Default::default(),
        }
    }

    /// A setting's value, trimmed; an empty value counts as unset, as in the Functions portal. A name that is not
    /// listed is never read.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        if !SETTINGS.contains(&name) && !HOST_VARIABLES.contains(&name) {
            self.unlisted.borrow_mut().insert(name.to_owned());
            return None;
        }
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// A `true`/`false` setting (any case), `default` when unset.
    pub(crate) fn flag(&mut self, name: &str, default: bool) -> bool {
        match self.get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => default,
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                self.problem(format!("{name} must be \"true\" or \"false\", not {}", quoted(other)));
                default
            }
        }
    }

    pub(crate) fn problem(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    /// Every problem found, an unlisted name read among them.
    fn into_problems(self) -> Vec<String> {
        let mut problems = self.problems;
        for name in self.unlisted.into_inner() {
            problems.push(format!(
                "the handler read {name}, a setting config::SETTINGS does not list (a defect in the handler)"
            ));
        }
        problems
    }

    /// Whether the handler runs in Azure, where the instance's disk is temporary.
    pub(crate) fn in_azure(&self) -> bool {
        self.get("WEBSITE_INSTANCE_ID").is_some()
    }

    /// How an identity-based connection signs in, from `{connection}__credential` and `{connection}__clientId` (the
    /// Functions convention): the app's managed identity when the credential says so or, unset, in Azure; the
    /// developer's Azure CLI sign-in outside Azure. `None`, with the problem reported, for any other credential.
    pub(crate) fn sign_in(&mut self, connection: &str) -> Option<SignIn> {
        let client_id = self.get(&format!("{connection}__clientId"));
        match self
            .get(&format!("{connection}__credential"))
            .map(|c| c.to_ascii_lowercase())
            .as_deref()
        {
            Some("managedidentity") => Some(SignIn::ManagedIdentity { client_id }),
            None if self.in_azure() => Some(SignIn::ManagedIdentity { client_id }),
            None => Some(SignIn::Developer),
            Some(other) => {
                self.problem(format!(
                    "{connection}__credential must be \"managedidentity\" or unset, not {}",
                    quoted(other)
                ));
                None
            }
        }
    }
}

/// How a connection signs in with Microsoft Entra ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SignIn {
    /// The system-assigned managed identity, or the user-assigned one with this client id.
    ManagedIdentity { client_id: Option<String> },
    /// The developer's own sign-in (Azure CLI), outside Azure.
    Developer,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env(purpose: Purpose) -> Result<Self, ConfigError> {
        Self::from_lookup(purpose, |name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`.
    pub fn from_lookup(purpose: Purpose, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut settings = Settings::new(&lookup);
        let port = port(&mut settings, purpose);
        let store = store(&mut settings);
        let archive = archive::read(&mut settings);
        let allowed_sources = allowed_sources(&mut settings);
        let (log_format, log_filter) = logging(&mut settings, purpose);
        let at_risk = at_risk(&mut settings);
        let app_root = settings.get("FUNCTIONS_APP_ROOT_PATH").map(PathBuf::from);
        let worker_id = WORKER_ID_VARIABLES.iter().find_map(|name| settings.get(name));
        let problems = settings.into_problems();
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Config {
            port,
            app_root,
            worker_id,
            store,
            archive,
            log_format,
            allowed_sources,
            log_filter,
            at_risk,
        })
    }
}

/// `RECORDINGS_AT_RISK_HOURS`: whole hours, 1 to 23, of the 24 ACS keeps a chunk's files.
fn at_risk(settings: &mut Settings<'_>) -> time::Duration {
    let Some(value) = settings.get("RECORDINGS_AT_RISK_HOURS") else {
        return crate::health::DEFAULT_AT_RISK;
    };
    match value.parse::<i64>() {
        Ok(hours @ 1..=23) => time::Duration::hours(hours),
        _ => {
            settings.problem(format!(
                "RECORDINGS_AT_RISK_HOURS must be a whole number of hours from 1 to 23 (of the 24 ACS keeps a \
                 recording's files), not {}",
                quoted(&value)
            ));
            crate::health::DEFAULT_AT_RISK
        }
    }
}

fn port(settings: &mut Settings<'_>, purpose: Purpose) -> Option<u16> {
    let Some((name, value)) = PORT_VARIABLES
        .iter()
        .find_map(|name| settings.get(name).map(|value| (*name, value)))
    else {
        if purpose == Purpose::Serve {
            settings.problem(format!(
                "{} is not set: the Functions host sets it when it starts the handler; to run the handler by hand, \
                 set it to a free port",
                PORT_VARIABLES[0]
            ));
        }
        return None;
    };
    match value.parse::<u16>() {
        Ok(port) if port > 0 => Some(port),
        _ => {
            settings.problem(format!(
                "{name} must be a TCP port number from 1 to 65535, not {}",
                quoted(&value)
            ));
            None
        }
    }
}

/// The store: `RECORDINGS_STORE` when set, else Cosmos DB when a connection is configured, else the embedded store.
fn store(settings: &mut Settings<'_>) -> StoreConfig {
    let in_azure = settings.in_azure();
    let cosmos = cosmos::read(settings);
    let chosen = settings.get("RECORDINGS_STORE").map(|v| v.to_ascii_lowercase());
    match (chosen.as_deref(), cosmos) {
        (None | Some("cosmos"), Some(cosmos)) => StoreConfig::Cosmos(cosmos),
        (Some("cosmos"), None) => {
            settings.problem(format!(
                "RECORDINGS_STORE is \"cosmos\" but no usable Cosmos DB connection is set; set {} or {}",
                COSMOS_VARIABLES[0], COSMOS_VARIABLES[1]
            ));
            StoreConfig::Memory
        }
        (Some("memory"), _) => {
            if in_azure {
                settings.problem(
                    "RECORDINGS_STORE is \"memory\" while running in Azure (WEBSITE_INSTANCE_ID is set): the memory \
                     store keeps nothing and is for benchmarks only",
                );
            }
            StoreConfig::Memory
        }
        (None | Some("embedded"), _) => {
            if in_azure {
                settings.problem(format!(
                    "the handler is running in Azure (WEBSITE_INSTANCE_ID is set) on the embedded store, which would \
                     keep recordings on the instance's temporary disk, where they would be lost; set {} or {}, and \
                     leave RECORDINGS_STORE unset or \"cosmos\"",
                    COSMOS_VARIABLES[0], COSMOS_VARIABLES[1]
                ));
            }
            StoreConfig::Embedded {
                data_dir: data_dir(settings),
            }
        }
        (Some(other), _) => {
            settings.problem(format!(
                "RECORDINGS_STORE must be \"cosmos\", \"embedded\" or \"memory\" (or unset: Cosmos DB when a \
                 connection is set, else embedded), not {}",
                quoted(other)
            ));
            StoreConfig::Memory
        }
    }
}

fn data_dir(settings: &Settings<'_>) -> PathBuf {
    PathBuf::from(
        settings
            .get("RECORDINGS_DATA_DIR")
            .unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned()),
    )
}

fn allowed_sources(settings: &mut Settings<'_>) -> Option<Vec<String>> {
    let sources: Vec<String> = settings
        .get("RECORDINGS_ALLOWED_SOURCES")?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if sources.is_empty() {
        settings.problem("RECORDINGS_ALLOWED_SOURCES lists no resource id; unset it to accept every source");
    }
    for source in sources.iter().filter(|s| !s.starts_with('/')) {
        settings.problem(format!(
            "RECORDINGS_ALLOWED_SOURCES must list resource ids such as /subscriptions/…/communicationServices/NAME, \
             not {}",
            quoted(source)
        ));
    }
    Some(sources)
}

fn logging(settings: &mut Settings<'_>, purpose: Purpose) -> (LogFormat, String) {
    let format = match settings.get("RECORDINGS_LOG_FORMAT").as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            settings.problem(format!(
                "RECORDINGS_LOG_FORMAT must be \"text\" or \"json\", not {}",
                quoted(other)
            ));
            LogFormat::Text
        }
    };
    let default_filter = match purpose {
        Purpose::Serve => "info",
        // Commands keep their output for the report; of their log, warnings and the audit lines (`handler erase`).
        Purpose::Replay => "warn,audit=info",
    };
    let filter = settings.get("RUST_LOG").unwrap_or_else(|| default_filter.to_owned());
    if let Err(error) = tracing_subscriber::EnvFilter::try_new(&filter) {
        settings.problem(format!(
            "RUST_LOG is not a valid log filter ({}): {}",
            quoted(&error.to_string()),
            quoted(&filter)
        ));
    }
    (format, filter)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) fn config(purpose: Purpose, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
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
        assert_eq!(c.app_root, None);
        assert_eq!(c.at_risk, time::Duration::hours(6));
    }

    #[test]
    fn the_at_risk_time_is_whole_hours_within_acs_day() {
        let at_risk = |value: &str| config(Purpose::Replay, &[("RECORDINGS_AT_RISK_HOURS", value)]).map(|c| c.at_risk);
        assert_eq!(at_risk(" 1 ").unwrap(), time::Duration::hours(1));
        assert_eq!(at_risk("23").unwrap(), time::Duration::hours(23));
        for wrong in ["0", "24", "-3", "6.5", "six"] {
            let ConfigError(problems) = at_risk(wrong).unwrap_err();
            assert!(
                problems[0].contains("RECORDINGS_AT_RISK_HOURS"),
                "{wrong}: {problems:?}"
            );
        }
    }

    #[test]
    fn the_hosts_app_root_is_read() {
        let c = config(
            Purpose::Serve,
            &[
                ("FUNCTIONS_CUSTOMHANDLER_PORT", "7072"),
                ("FUNCTIONS_APP_ROOT_PATH", "/home/site/wwwroot"),
            ],
        )
        .unwrap();
        assert_eq!(c.app_root, Some(PathBuf::from("/home/site/wwwroot")));
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

    pub(crate) const KEY: &str =
        "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

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

    #[test]
    fn problems_quote_values_without_their_query_strings_or_signatures() {
        const SIG: &str = "c2lnbmF0dXJl";
        let sas = format!("?sv=2024-11-04&sr=c&sig={SIG}");
        let acs = (
            "AcsConnection__endpoint",
            "https://contoso-acs.communication.azure.com/",
        );
        for (vars, setting) in [
            (
                vec![("RECORDINGS_ALLOWED_SOURCES", format!("https://x.example/{sas}"))],
                "RECORDINGS_ALLOWED_SOURCES",
            ),
            (vec![("RECORDINGS_STORE", format!("disk{sas}"))], "RECORDINGS_STORE"),
            (
                vec![("RECORDINGS_LOG_FORMAT", format!("xml{sas}"))],
                "RECORDINGS_LOG_FORMAT",
            ),
            (vec![("RUST_LOG", format!("=[{sas}"))], "RUST_LOG"),
            (
                vec![("FUNCTIONS_CUSTOMHANDLER_PORT", format!("7072{sas}"))],
                "FUNCTIONS_CUSTOMHANDLER_PORT",
            ),
            (
                vec![
                    (
                        "CosmosDbConnection__accountEndpoint",
                        "https://c.documents.azure.com/".into(),
                    ),
                    ("RECORDINGS_CREATE_IF_NOT_EXISTS", format!("yes{sas}")),
                ],
                "RECORDINGS_CREATE_IF_NOT_EXISTS",
            ),
            (
                vec![("CosmosDbConnection__accountEndpoint", format!("contoso{sas}"))],
                "Cosmos DB account endpoint",
            ),
            (
                vec![
                    (
                        "CosmosDbConnection__accountEndpoint",
                        "https://c.documents.azure.com/".into(),
                    ),
                    ("CosmosDbConnection__credential", format!("key{sas}")),
                ],
                "CosmosDbConnection__credential",
            ),
            (
                vec![("AcsConnection__endpoint", format!("http://x.example/{sas}"))],
                "AcsConnection__endpoint",
            ),
            (
                vec![
                    (acs.0, acs.1.into()),
                    ("RECORDINGS_ARCHIVE_SOURCES", format!("https://x.example/p{sas}")),
                ],
                "RECORDINGS_ARCHIVE_SOURCES",
            ),
            (
                vec![
                    (acs.0, acs.1.into()),
                    ("ArchiveStorage__blobServiceUri", format!("ftp://a.example/{sas}")),
                ],
                "ArchiveStorage__blobServiceUri",
            ),
            (
                vec![
                    (acs.0, acs.1.into()),
                    ("ArchiveStorage", "UseDevelopmentStorage=true".into()),
                    ("RECORDINGS_ARCHIVE_CONTAINER", format!("c{sas}")),
                ],
                "RECORDINGS_ARCHIVE_CONTAINER",
            ),
            (
                vec![
                    (acs.0, acs.1.into()),
                    ("ArchiveStorage", "UseDevelopmentStorage=true".into()),
                    (
                        "RECORDINGS_ARCHIVE_ACCESS_TIER",
                        format!("Hot;SharedAccessSignature=sv=1&sig={SIG}"),
                    ),
                ],
                "RECORDINGS_ARCHIVE_ACCESS_TIER",
            ),
        ] {
            let vars: Vec<(&str, &str)> = vars.iter().map(|(name, value)| (*name, value.as_str())).collect();
            let ConfigError(problems) = config(Purpose::Replay, &vars).unwrap_err();
            let problems = problems.concat();
            assert!(problems.contains(setting), "{vars:?}: {problems}");
            assert!(
                problems.contains("REDACTED"),
                "the value is quoted, redacted: {problems}"
            );
            assert!(!problems.contains(SIG), "{problems}");
        }
    }

    #[test]
    fn a_setting_that_is_not_listed_is_never_read_and_is_reported() {
        let lookup = |_: &str| Some("value".to_owned());
        let settings = Settings::new(&lookup);
        assert_eq!(settings.get("RECORDINGS_NEW_SETTING"), None);
        assert_eq!(settings.get("RECORDINGS_STORE").as_deref(), Some("value"));
        let problems = settings.into_problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("RECORDINGS_NEW_SETTING"), "{problems:?}");
    }

    #[test]
    fn every_listed_setting_is_read() {
        let read = std::cell::RefCell::new(std::collections::BTreeSet::new());
        let lookup = |name: &str| {
            read.borrow_mut().insert(name.to_owned());
            None
        };
        // Archival on (to the embedded archive, then to Blob Storage) and Cosmos DB, so that every group is read.
        let _ = Config::from_lookup(Purpose::Serve, |name| {
            lookup(name).or_else(|| (name == "AcsConnection__endpoint").then(|| "https://x/".to_owned()))
        });
        let _ = Config::from_lookup(Purpose::Serve, |name| {
            lookup(name).or_else(|| (name == "CosmosDbConnection__accountEndpoint").then(|| "https://x/".to_owned()))
        });
        let _ = Config::from_lookup(Purpose::Serve, |name| {
            let archive_to_blob = ["AcsConnection__endpoint", "ArchiveStorage__blobServiceUri"].contains(&name);
            lookup(name).or_else(|| archive_to_blob.then(|| "https://x/".to_owned()))
        });
        let read = read.into_inner();
        let never_read: Vec<_> = SETTINGS.iter().filter(|name| !read.contains(**name)).collect();
        assert!(never_read.is_empty(), "listed but never read: {never_read:?}");
    }

    #[test]
    fn flags_are_true_or_false_in_any_case() {
        let lookup = |name: &str| match name {
            "RECORDINGS_CREATE_IF_NOT_EXISTS" => Some("TRUE".to_owned()),
            "RECORDINGS_ALLOW_MULTI_REGION_WRITES" => Some(" false ".to_owned()),
            "RECORDINGS_DELETE_AFTER_ARCHIVE" => Some("yes".to_owned()),
            _ => None,
        };
        let mut settings = Settings::new(&lookup);
        assert!(settings.flag("RECORDINGS_CREATE_IF_NOT_EXISTS", false));
        assert!(!settings.flag("RECORDINGS_ALLOW_MULTI_REGION_WRITES", true));
        assert!(settings.flag("RECORDINGS_STORE", true));
        assert!(settings.problems.is_empty());
        assert!(!settings.flag("RECORDINGS_DELETE_AFTER_ARCHIVE", false));
        assert_eq!(settings.problems.len(), 1);
        assert!(
            settings.problems[0].contains("RECORDINGS_DELETE_AFTER_ARCHIVE must be"),
            "{:?}",
            settings.problems
        );
    }
}
