//! A Cosmos DB NoSQL API endpoint for tests: by default a local server (`tests/cosmos-server`, installed with npm on
//! first use and started on a free loopback port, one per test); with `COSMOS_TEST_ENDPOINT` (and
//! `COSMOS_TEST_KEY`, the emulator's well-known key by default) a real account or emulator instead.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use acs_recording_handler::config::{CosmosAuth, CosmosConfig};
use acs_recording_handler::secret::Secret;
use acs_recording_handler::store::CosmosStore;
use azure_core::credentials::Secret as AzureSecret;
use azure_data_cosmos::options::{BinaryEncodingOptions, ConnectionPoolOptions};
use azure_data_cosmos::{AccountEndpoint, AccountReference, CosmosClient, CosmosRuntime, RoutingStrategy};

use super::npm::ServerProcess;
use super::ports::Port;
use super::wait::{Start, Tail, wait_for_start};

/// How long the test server may take to listen (Node.js starting on a loaded machine), and how often a start is
/// tried again when another process took its port.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
const START_ATTEMPTS: usize = 5;

/// The Cosmos DB emulator's documented key; the local server accepts any valid base64 key.
pub const EMULATOR_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

/// The SDK settings the local server needs: it speaks neither Cosmos binary JSON nor HTTP/2.
pub const LOCAL_SERVER_ENV: [(&str, &str); 2] = [
    ("AZURE_COSMOS_BINARY_ENCODING_ENABLED", "false"),
    ("AZURE_COSMOS_CONNECTION_POOL_IS_HTTP2_ALLOWED", "false"),
];

/// How the local server presents its account.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerOptions {
    /// Advertise an account that takes writes in two regions.
    pub multi_region_writes: bool,
}

pub struct CosmosTarget {
    server: Option<ServerProcess>,
    /// The local server's reserved port.
    port: Option<Port>,
    pub endpoint: String,
    key: String,
    /// One line per request the local server answered: `METHOD URL -> STATUS` (other server output is dropped).
    requests: Arc<Mutex<Vec<String>>>,
}

impl CosmosTarget {
    pub fn start() -> CosmosTarget {
        Self::start_with(ServerOptions::default())
    }

    /// Starts the local server (or uses the live target) with these options; the live target ignores them.
    pub fn start_with(options: ServerOptions) -> CosmosTarget {
        if let Ok(endpoint) = std::env::var("COSMOS_TEST_ENDPOINT") {
            return CosmosTarget {
                server: None,
                port: None,
                endpoint,
                key: std::env::var("COSMOS_TEST_KEY").unwrap_or_else(|_| EMULATOR_KEY.to_owned()),
                requests: Arc::default(),
            };
        }
        Self::start_local_with(options)
    }

    /// The local test server, even when `COSMOS_TEST_ENDPOINT` names a live account: for the tests of what only it
    /// can do (inject faults, count requests, advertise write regions, take a stand-in identity's token).
    pub fn start_local() -> CosmosTarget {
        Self::start_local_with(ServerOptions::default())
    }

    pub fn start_local_with(options: ServerOptions) -> CosmosTarget {
        let dir = server_dir();
        super::npm::install(&dir, "@vercel/cosmosdb-server");
        let tail = Tail::default();
        for _ in 0..START_ATTEMPTS {
            // A reserved port, so that no other test of this process is handed it while the server runs.
            let port = Port::reserve();
            let mut command = Command::new("node");
            command
                .arg("start.js")
                .arg(port.0.to_string())
                .current_dir(&dir)
                .env("COSMOS_SERVER_DEBUG", "1")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if options.multi_region_writes {
                command.env("COSMOS_MULTI_REGION_WRITES", "1");
            }
            let mut child = command
                .spawn()
                .expect("start the Cosmos DB test server: Node.js 20 or newer must be installed");
            let requests: Arc<Mutex<Vec<String>>> = Arc::default();
            let stderr = child.stderr.take().expect("stderr");
            let (log, errors) = (requests.clone(), tail.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains(" -> ") {
                        log.lock().unwrap().push(line);
                    } else {
                        errors.push(&line);
                    }
                }
            });
            let stdout = child.stdout.take().expect("stdout");
            let started = wait_for_start(stdout, START_TIMEOUT, &tail, |l| l.starts_with("listening "), |_| {});
            let Some(line) = started.ready_line(&mut child, "the Cosmos DB test server", START_TIMEOUT, &tail) else {
                continue;
            };
            let address = line.trim().trim_start_matches("listening ").to_owned();
            let server = ServerProcess::new(child);
            return CosmosTarget {
                server: Some(server),
                port: Some(port),
                endpoint: format!("http://{address}/"),
                key: EMULATOR_KEY.to_owned(),
                requests,
            };
        }
        panic!(
            "the Cosmos DB test server stopped before it listened, {START_ATTEMPTS} times; its last lines:\n{}",
            tail.text()
        );
    }

    pub fn is_local(&self) -> bool {
        self.server.is_some()
    }

    /// The account key the handler is given.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The local server's port (panics for a remote target).
    pub fn port(&self) -> u16 {
        self.port.as_ref().expect("a local server").0
    }

    /// The handler's settings for this target, with a database of its own; `endpoint` overrides the address (to
    /// put a proxy in the path).
    pub fn handler_settings(&self, database: &str, endpoint: Option<&str>) -> Vec<(String, String)> {
        let endpoint = endpoint.unwrap_or(&self.endpoint);
        let mut settings = vec![
            (
                "CosmosDbConnection".to_owned(),
                format!("AccountEndpoint={endpoint};AccountKey={};", self.key),
            ),
            ("RECORDINGS_DATABASE".to_owned(), database.to_owned()),
            ("RECORDINGS_CREATE_IF_NOT_EXISTS".to_owned(), "true".to_owned()),
        ];
        if self.is_local() {
            settings.extend(LOCAL_SERVER_ENV.map(|(k, v)| (k.to_owned(), v.to_owned())));
        }
        settings
    }

    pub fn config(&self, database: &str) -> CosmosConfig {
        CosmosConfig {
            endpoint: self.endpoint.clone(),
            auth: CosmosAuth::Key(Secret::new(self.key.clone())),
            database: database.to_owned(),
            container: "recordings".to_owned(),
            quarantine_container: "quarantine".to_owned(),
            create_if_not_exists: true,
            region: None,
            allow_multi_region_writes: false,
        }
    }

    /// A client for this target built in code (tests cannot set the process environment), with the options the
    /// local server needs; the handler binary gets the same through the SDK's environment variables.
    pub async fn client(&self) -> CosmosClient {
        let account = AccountReference::with_authentication_key(
            self.endpoint.parse::<AccountEndpoint>().unwrap(),
            AzureSecret::new(self.key.clone()),
        );
        let mut builder = CosmosClient::builder();
        if self.is_local() {
            let pool = ConnectionPoolOptions::builder()
                .with_is_http2_allowed(false)
                .build()
                .unwrap();
            let runtime = CosmosRuntime::builder()
                .with_connection_pool(pool)
                .build()
                .await
                .unwrap();
            builder = builder
                .with_runtime(runtime)
                .with_binary_encoding_options(BinaryEncodingOptions::new().with_enabled(false));
        }
        builder
            .build(account, RoutingStrategy::PreferredRegions(Vec::new()))
            .await
            .unwrap()
    }

    /// A store on a fresh database of this target.
    pub async fn store(&self, database: &str) -> CosmosStore {
        CosmosStore::open(&self.client().await, &self.config(database))
            .await
            .unwrap()
    }

    /// Every item of a container (system properties removed), through a cross-partition query.
    pub async fn all_items(&self, database: &str, container: &str) -> Vec<serde_json::Value> {
        use futures_util::TryStreamExt;
        let client = self.client().await;
        let container = client
            .database_client(database)
            .container_client(container, None)
            .await
            .unwrap();
        let items: Vec<serde_json::Map<String, serde_json::Value>> = container
            .query_items("SELECT * FROM c", azure_data_cosmos::FeedScope::full_container(), None)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        items
            .into_iter()
            .map(|mut item| {
                item.retain(|name, _| !name.starts_with('_'));
                serde_json::Value::Object(item)
            })
            .collect()
    }

    /// Sets the local server's fault rates (see `tests/cosmos-server/start.js`) and returns what it has injected.
    pub async fn faults(&self, rates: serde_json::Value) -> serde_json::Value {
        let response = reqwest::Client::new()
            .post(format!("{}_test/faults", self.endpoint))
            .body(rates.to_string())
            .send()
            .await
            .unwrap();
        serde_json::from_str(&response.text().await.unwrap()).unwrap()
    }

    /// The number of requests the local server has answered so far.
    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// The requests answered after the first `from`, once the server's log has been quiet for a moment (it logs
    /// a request just after answering it).
    pub async fn requests_since(&self, from: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        let mut seen = usize::MAX;
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "waited {START_TIMEOUT:?} for the Cosmos DB test server's request log to go quiet, in vain; the last \
                 requests:\n{}",
                self.requests.lock().unwrap()[from..]
                    .iter()
                    .rev()
                    .take(40)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            let count = self.request_count();
            if count == seen {
                return self.requests.lock().unwrap()[from..].to_vec();
            }
            seen = count;
        }
    }
}

/// A database name no other test uses.
pub fn unique_database() -> String {
    super::npm::unique_name()
}

fn server_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cosmos-server")
}
