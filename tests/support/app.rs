//! The function app as the host sees it: an app root holding `host.json`, one folder per function with its
//! `function.json`, the handler executable, and `local.settings.json`.
//!
//! Each test gets an app root of its own, a temporary copy of the project's files (the executable is a link to
//! cargo's build of it), so that the host's view of "the app root" — what it watches, where the handler runs, where
//! relative settings point — is the same as under `func start` in the project folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::read_json;

/// The project's root, where the function app's files live.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One binding of a function, from its `function.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub kind: String,
    pub direction: String,
    pub name: String,
    /// Every other property (`queueName`, `connection`, …).
    pub properties: serde_json::Map<String, Value>,
}

impl Binding {
    pub fn is_trigger(&self) -> bool {
        self.direction == "in" && self.kind.ends_with("Trigger")
    }

    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(Value::as_str)
    }
}

/// One function: its folder's name and its bindings.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    pub name: String,
    pub bindings: Vec<Binding>,
}

impl FunctionInfo {
    pub fn trigger(&self) -> &Binding {
        let triggers: Vec<&Binding> = self.bindings.iter().filter(|b| b.is_trigger()).collect();
        assert_eq!(triggers.len(), 1, "{}: exactly one trigger binding", self.name);
        triggers[0]
    }

    pub fn outputs(&self) -> impl Iterator<Item = &Binding> {
        self.bindings.iter().filter(|b| b.direction == "out")
    }

    /// The `httpTrigger` binding, when the function has one.
    pub fn http_trigger(&self) -> Option<&Binding> {
        self.bindings
            .iter()
            .find(|b| b.direction == "in" && b.kind.eq_ignore_ascii_case("httpTrigger"))
    }

    /// Exactly one input binding, an `httpTrigger`, and one output binding, an `http`: the functions whose
    /// requests the host forwards with `enableForwardingHttpRequest`.
    /// Host: src/WebJobs.Script/Extensions/FunctionMetadataExtensions.cs, `IsHttpInAndOutFunction`.
    pub fn is_http_in_and_out(&self) -> bool {
        let inputs: Vec<&Binding> = self.bindings.iter().filter(|b| b.direction == "in").collect();
        let outputs: Vec<&Binding> = self.outputs().collect();
        inputs.len() == 1
            && outputs.len() == 1
            && inputs[0].kind.eq_ignore_ascii_case("httpTrigger")
            && outputs[0].kind.eq_ignore_ascii_case("http")
    }
}

/// What `host.json` says about HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOptions {
    /// `extensions.http.routePrefix`, without its slashes: `api` unless set; empty for no prefix.
    pub route_prefix: String,
    /// `customHandler.enableForwardingHttpRequest` (default `false`).
    pub forwarding: bool,
}

/// What the host reads from the app root.
#[derive(Debug, Clone)]
pub struct FunctionApp {
    pub root: PathBuf,
    /// `customHandler.description.defaultExecutablePath`, resolved against the app root.
    pub executable: PathBuf,
    /// `customHandler.description.workingDirectory`, resolved against the app root.
    pub working_directory: PathBuf,
    pub arguments: Vec<String>,
    /// `functionTimeout`: an invocation not answered within it fails, and the worker is killed and restarted.
    pub function_timeout: Duration,
    /// `extensions.queues`, with the extension's defaults for what is not set.
    pub queues: QueueOptions,
    pub http: HttpOptions,
    /// Every folder holding a `function.json`, by name.
    pub functions: BTreeMap<String, FunctionInfo>,
    /// `local.settings.json`'s `Values`, as `func start` reads them.
    pub local_settings: Vec<(String, String)>,
}

/// The Storage Queues extension's options the host applies to queue triggers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueOptions {
    /// How long a failed message stays invisible before it is delivered again (default 0).
    pub visibility_timeout: Duration,
    /// Deliveries before a message moves to the poison queue (default 5).
    pub max_dequeue_count: u32,
    /// Messages delivered at once per queue (default 16).
    pub batch_size: usize,
}

impl FunctionApp {
    /// Reads an app root as the host does.
    pub fn load(root: &Path) -> Self {
        let host = read_json(root.join("host.json"));
        assert_eq!(host["version"], "2.0", "host.json version");
        let description = &host["customHandler"]["description"];
        let executable = description["defaultExecutablePath"]
            .as_str()
            .expect("host.json names customHandler.description.defaultExecutablePath");
        let working_directory = description["workingDirectory"].as_str().unwrap_or_default();
        let arguments = description["arguments"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let function_timeout = host["functionTimeout"]
            .as_str()
            .map(parse_timespan)
            .unwrap_or(Duration::from_secs(30 * 60));
        let queues = &host["extensions"]["queues"];
        let queues = QueueOptions {
            visibility_timeout: queues["visibilityTimeout"]
                .as_str()
                .map(parse_timespan)
                .unwrap_or(Duration::ZERO),
            max_dequeue_count: queues["maxDequeueCount"].as_u64().map_or(5, |n| n as u32),
            batch_size: queues["batchSize"].as_u64().map_or(16, |n| n as usize),
        };

        let http = HttpOptions {
            route_prefix: host["extensions"]["http"]["routePrefix"]
                .as_str()
                .unwrap_or("api")
                .trim_matches('/')
                .to_owned(),
            forwarding: host["customHandler"]["enableForwardingHttpRequest"].as_bool() == Some(true),
        };

        let mut functions = BTreeMap::new();
        for entry in std::fs::read_dir(root).unwrap() {
            let path = entry.unwrap().path();
            let metadata = path.join("function.json");
            if !metadata.is_file() {
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bindings = read_json(&metadata)["bindings"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}/function.json has bindings"))
                .iter()
                .map(|b| {
                    let mut properties = b.as_object().expect("a binding is an object").clone();
                    let mut take = |key: &str| match properties.remove(key) {
                        Some(Value::String(s)) => s,
                        other => panic!("{name}/function.json: binding {key} is {other:?}"),
                    };
                    Binding {
                        kind: take("type"),
                        direction: take("direction"),
                        name: take("name"),
                        properties,
                    }
                })
                .collect();
            let function = FunctionInfo {
                name: name.clone(),
                bindings,
            };
            function.trigger();
            functions.insert(name, function);
        }

        let local_settings = match std::fs::read_to_string(root.join("local.settings.json")) {
            Ok(text) => {
                let settings: Value = serde_json::from_str(&text).expect("local.settings.json is JSON");
                settings["Values"]
                    .as_object()
                    .map(|values| {
                        values
                            .iter()
                            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default()
            }
            Err(_) => Vec::new(),
        };
        Self {
            root: root.to_owned(),
            executable: root.join(executable),
            working_directory: root.join(working_directory),
            arguments,
            function_timeout,
            queues,
            http,
            functions,
            local_settings,
        }
    }

    pub fn function(&self, name: &str) -> &FunctionInfo {
        self.functions
            .get(name)
            .unwrap_or_else(|| panic!("no function folder {name} in the app root"))
    }
}

/// A .NET `TimeSpan` text as host.json uses it: `hh:mm:ss`, or `d.hh:mm:ss`.
pub fn parse_timespan(text: &str) -> Duration {
    let (days, rest) = match text.split_once('.') {
        Some((days, rest)) if !days.contains(':') => (days.parse::<u64>().expect("days"), rest),
        _ => (0, text),
    };
    let parts: Vec<f64> = rest.split(':').map(|p| p.parse().expect("a TimeSpan")).collect();
    assert_eq!(parts.len(), 3, "a TimeSpan hh:mm:ss: {text}");
    Duration::from_secs(days * 86_400) + Duration::from_secs_f64(parts[0] * 3600.0 + parts[1] * 60.0 + parts[2])
}

/// A temporary app root made from the project's files: `host.json`, every function folder, the example settings as
/// `local.settings.json` (as docs/HOST.md tells users to copy them), and the executable host.json names, linked to
/// cargo's build. It lives in a temporary folder of its own (`{tmp}/app`), so that settings pointing outside the
/// app root (`../…`) stay inside the test's folder.
pub struct AppDir {
    dir: tempfile::TempDir,
}

impl AppDir {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        std::fs::create_dir(&root).unwrap();
        let project = project_root();
        std::fs::copy(project.join("host.json"), root.join("host.json")).unwrap();
        std::fs::copy(
            project.join("local.settings.json.example"),
            root.join("local.settings.json"),
        )
        .unwrap();
        for entry in std::fs::read_dir(&project).unwrap() {
            let path = entry.unwrap().path();
            if path.join("function.json").is_file() {
                let target = root.join(path.file_name().unwrap());
                std::fs::create_dir(&target).unwrap();
                for file in std::fs::read_dir(&path).unwrap() {
                    let file = file.unwrap().path();
                    std::fs::copy(&file, target.join(file.file_name().unwrap())).unwrap();
                }
            }
        }
        let app = FunctionApp::load(&root);
        let built = PathBuf::from(env!("CARGO_BIN_EXE_handler"));
        assert_eq!(
            app.executable.file_name(),
            built.file_name(),
            "host.json must name the binary cargo builds"
        );
        std::os::unix::fs::symlink(&built, &app.executable).unwrap();
        Self { dir }
    }

    /// The app root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("app")
    }

    /// The test's folder around the app root.
    pub fn outside(&self) -> &Path {
        self.dir.path()
    }

    /// Changes the app root's `host.json`, as a test would deploy another one.
    pub fn edit_host_json(&self, edit: impl FnOnce(&mut Value)) {
        let path = self.root().join("host.json");
        let mut host = read_json(&path);
        edit(&mut host);
        std::fs::write(&path, serde_json::to_string_pretty(&host).unwrap()).unwrap();
    }

    /// Chooses the host's HTTP mode whatever the project's `host.json` says: `true` forwards requests to HTTP
    /// functions as they came (`customHandler.enableForwardingHttpRequest`), `false` posts invocation payloads.
    pub fn with_forwarding(self, forwarding: bool) -> Self {
        self.edit_host_json(|host| host["customHandler"]["enableForwardingHttpRequest"] = Value::Bool(forwarding));
        self
    }

    /// Sets `extensions.http.routePrefix` (`""` for none).
    pub fn with_route_prefix(self, prefix: &str) -> Self {
        self.edit_host_json(|host| host["extensions"]["http"]["routePrefix"] = Value::from(prefix));
        self
    }

    /// Adds a function folder with these bindings (the `bindings` array of its `function.json`).
    pub fn with_function(self, name: &str, bindings: Value) -> Self {
        let folder = self.root().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        let metadata = serde_json::json!({ "bindings": bindings });
        std::fs::write(
            folder.join("function.json"),
            serde_json::to_string_pretty(&metadata).unwrap(),
        )
        .unwrap();
        self
    }
}

impl Default for AppDir {
    fn default() -> Self {
        Self::new()
    }
}
