//! Ties the azd template (`azure.yaml`, `infra/`, the hooks in `scripts/`) to the code and to Azure's published
//! rules, without Azure: the settings it gives the app are ones the handler reads; every Azure operation the app
//! performs is allowed by a role the template grants it, at the scope where it is granted (the role definitions are
//! a fixture copied from Azure's); every query the Cosmos DB store sends filters on paths the container indexes; the
//! hooks refuse bad parameters before anything is created, stage a binary any Functions Linux image can start, and
//! subscribe to Event Grid on every `azd up` — after `azd down` too — with stand-ins for `az` and `azd`. The templates
//! are read as text: `cargo test` needs Python 3.9 for the hooks but no Bicep compiler (`.ci/check-deployment` parses
//! them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acs_recording_handler::config::{
    DEFAULT_ARCHIVE_CONTAINER, DEFAULT_CONTAINER, DEFAULT_DATABASE, DEFAULT_QUARANTINE_CONTAINER, SETTINGS,
};
use acs_recording_handler::store::cosmos::queries::{self, Container};
use acs_recording_handler::store::cosmos::{QUARANTINE_PARTITION_KEY, RECORDINGS_PARTITION_KEY};
use serde_json::{Value, json};

/// The settings the Functions host and its extensions read, not the handler: identity-based host storage and
/// Application Insights. Its connection string holds no secret (the ingestion endpoint and the component's id); with
/// local authentication off, telemetry needs the identity the authentication string names.
const HOST_SETTINGS: &[&str] = &[
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
];

/// The identity-based settings every deployment needs: the store, ACS and the archive, each with the user-assigned
/// identity.
const IDENTITY_SETTINGS: &[&str] = &[
    "CosmosDbConnection__accountEndpoint",
    "CosmosDbConnection__credential",
    "CosmosDbConnection__clientId",
    "AcsConnection__endpoint",
    "AcsConnection__credential",
    "AcsConnection__clientId",
    "ArchiveStorage__blobServiceUri",
    "ArchiveStorage__credential",
    "ArchiveStorage__clientId",
];

/// The newest glibc symbol version the packaged binary may need.
const GLIBC_FLOOR: &str = "2.28";

/// The oldest azd the template runs with: the first whose `azd down` deletes only the resource groups a template
/// created (1.24.0) and whose zip keeps a file's executable bit (1.26.0).
const MINIMUM_AZD: &str = "1.26.0";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: impl AsRef<Path>) -> String {
    let path = root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.bicep` file under `infra/`, by its path relative to the project root, with its text.
fn templates() -> BTreeMap<String, String> {
    fn walk(dir: &Path, found: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "bicep") {
                let relative = path.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/");
                found.insert(relative, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut found = BTreeMap::new();
    walk(&root().join("infra"), &mut found);
    assert!(found.len() >= 2, "infra/ holds no templates");
    found
}

/// The app settings object of `function-app.bicep` (`var appSettings = { NAME: value … }`), as (name, value text).
fn app_settings() -> Vec<(String, String)> {
    let text = read("infra/modules/function-app.bicep");
    let start = text
        .find("var appSettings = {\n")
        .expect("function-app.bicep has no appSettings object");
    let body = &text[start..];
    let body = &body[body.find('\n').unwrap() + 1..body.find("\n}\n").unwrap()];
    body.lines()
        .map(|line| {
            let (name, value) = line.trim().split_once(':').expect("one `NAME: value` per line");
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect()
}

fn setting(name: &str) -> String {
    app_settings()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("the templates do not set {name}"))
        .1
}

/// The quoted strings in the first `[...]` list after `key`, in `text`.
fn list_after(text: &str, key: &str) -> Vec<String> {
    let start = text.find(key).unwrap_or_else(|| panic!("no {key}")) + key.len();
    let list = &text[start..];
    let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
    list.split('\'').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Every `queueName` in the function folders' bindings, and the type of the first binding of each function.
fn function_bindings() -> (BTreeSet<String>, Vec<(String, String)>) {
    let mut queues = BTreeSet::new();
    let mut triggers = Vec::new();
    for entry in std::fs::read_dir(root()).unwrap() {
        let path = entry.unwrap().path().join("function.json");
        if !path.is_file() {
            continue;
        }
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let bindings = json["bindings"].as_array().unwrap();
        let name = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        triggers.push((name, bindings[0]["type"].as_str().unwrap().to_owned()));
        queues.extend(
            bindings
                .iter()
                .filter_map(|b| b["queueName"].as_str().map(str::to_owned)),
        );
    }
    (queues, triggers)
}

/// The value of `var NAME = 'value'` in a template.
fn var_literal(text: &str, name: &str) -> String {
    let start = text
        .find(&format!("var {name} = '"))
        .unwrap_or_else(|| panic!("no literal var {name}"));
    text[start..].split('\'').nth(1).unwrap().to_owned()
}

#[test]
fn every_setting_the_templates_give_the_app_is_one_the_handler_reads_and_the_readme_documents() {
    let readme = read("README.md");
    let settings = app_settings();
    assert!(settings.len() >= IDENTITY_SETTINGS.len(), "{settings:?}");
    for (name, _) in &settings {
        if HOST_SETTINGS.contains(&name.as_str()) {
            continue;
        }
        assert!(
            SETTINGS.contains(&name.as_str()),
            "the templates set {name}, which the handler does not read (config::SETTINGS)"
        );
        assert!(
            readme.contains(&format!("`{name}`")),
            "the README does not document {name}"
        );
    }
    for name in IDENTITY_SETTINGS {
        assert!(
            settings.iter().any(|(n, _)| n == name),
            "the templates do not set {name}"
        );
    }
    for name in IDENTITY_SETTINGS.iter().filter(|n| n.ends_with("__credential")) {
        assert_eq!(setting(name), "'managedidentity'", "{name}");
    }
}

#[test]
fn the_templates_connect_nothing_with_a_key_or_a_connection_string() {
    // The plain connection-string forms of the handler's and the host's connections.
    for (name, _) in app_settings() {
        assert!(
            ![
                "CosmosDbConnection",
                "AcsConnection",
                "ArchiveStorage",
                "AzureWebJobsStorage"
            ]
            .contains(&name.as_str()),
            "the templates set {name}, a connection string"
        );
    }
    let mut files = templates();
    for path in ["azure.yaml", "infra/main.parameters.json"] {
        files.insert(path.to_owned(), read(path));
    }
    for (path, text) in files {
        let lower = text.to_ascii_lowercase();
        for forbidden in [
            "listkeys(",
            "listconnectionstrings(",
            "accountkey",
            "accesskey",
            "primarymasterkey",
            "primarykey",
            "primaryconnectionstring",
            "sharedaccesssignature",
            "defaultendpointsprotocol",
        ] {
            assert!(!lower.contains(forbidden), "{path} contains {forbidden}");
        }
    }
    for storage in ["infra/modules/host-storage.bicep", "infra/modules/archive.bicep"] {
        assert!(
            read(storage).contains("allowSharedKeyAccess: false"),
            "{storage}: shared keys are on"
        );
    }
    let cosmos = read("infra/modules/cosmos.bicep");
    assert!(cosmos.contains("disableLocalAuth: true"), "Cosmos DB keys are on");
    let monitoring = read("infra/modules/monitoring.bicep");
    assert!(
        monitoring.contains("DisableLocalAuth: true"),
        "Application Insights local auth is on"
    );
}

#[test]
fn the_templates_name_the_functions_queues_containers_and_partition_keys_the_code_uses() {
    let (queues, _) = function_bindings();
    let main = read("infra/main.bicep");
    let created: BTreeSet<String> = list_after(&main, "queues:").into_iter().collect();
    assert_eq!(
        created, queues,
        "the queues the templates create (left) and the bindings use (right)"
    );

    assert_eq!(var_literal(&main, "recordingsContainer"), DEFAULT_ARCHIVE_CONTAINER);
    assert_eq!(var_literal(&main, "deadLetterContainer"), "deadletter");
    assert_eq!(
        setting("RECORDINGS_ARCHIVE_CONTAINER"),
        format!("'{DEFAULT_ARCHIVE_CONTAINER}'")
    );

    let cosmos = read("infra/modules/cosmos.bicep");
    assert!(cosmos.contains(&format!("name: '{DEFAULT_DATABASE}'")));
    assert_eq!(setting("RECORDINGS_DATABASE"), format!("'{DEFAULT_DATABASE}'"));
    assert_eq!(setting("RECORDINGS_CONTAINER"), format!("'{DEFAULT_CONTAINER}'"));
    assert_eq!(
        setting("RECORDINGS_QUARANTINE_CONTAINER"),
        format!("'{DEFAULT_QUARANTINE_CONTAINER}'")
    );
    let containers: BTreeSet<(String, String)> = cosmos
        .split("containers@")
        .skip(1)
        .map(|resource| {
            let id = resource.split("id: '").nth(1).unwrap().split('\'').next().unwrap();
            let key = list_after(resource, "paths:").remove(0);
            (id.to_owned(), key)
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        (DEFAULT_CONTAINER, RECORDINGS_PARTITION_KEY),
        (DEFAULT_QUARANTINE_CONTAINER, QUARANTINE_PARTITION_KEY),
    ]
    .into_iter()
    .map(|(id, key)| (id.to_owned(), key.to_owned()))
    .collect();
    assert_eq!(containers, expected, "Cosmos DB containers and partition keys");
}

#[test]
fn every_role_the_templates_assign_is_the_built_in_one_it_names() {
    let fixture = RoleFixture::load();
    let mut seen = BTreeSet::new();
    for (path, text) in templates() {
        for line in text.lines() {
            for word in line.split(['\'', '/', ' ']) {
                let is_guid = word.len() == 36
                    && word.char_indices().all(|(i, c)| {
                        if [8, 13, 18, 23].contains(&i) {
                            c == '-'
                        } else {
                            c.is_ascii_hexdigit()
                        }
                    });
                if !is_guid {
                    continue;
                }
                let name = fixture
                    .name_of(word)
                    .unwrap_or_else(|| panic!("{path}: {word} is not a role of tests/fixtures/azure-roles.json"));
                // Each id is declared once, beside the role's name.
                assert!(line.contains(&format!("// {name}")), "{path}: {line}");
                seen.insert(name.to_owned());
            }
        }
    }
    for assigned in [
        "Storage Blob Data Owner",
        "Storage Blob Data Contributor",
        "Storage Blob Delegator",
        "Storage Queue Data Contributor",
        "Monitoring Metrics Publisher",
        "Contributor",
        "Cosmos DB Built-in Data Contributor",
    ] {
        assert!(seen.contains(assigned), "no template assigns {assigned}: {seen:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The package and azd.

#[test]
fn azure_yaml_needs_no_alpha_switch_and_an_azd_that_keeps_the_package_and_the_archive() {
    let azure_yaml = read("azure.yaml");
    assert!(
        !azure_yaml.contains("language: custom"),
        "`language: custom` needs azd's alpha switch alpha.language.custom"
    );
    // The Python packager deploys `dist` as it is, provided remote build is off (it defaults to on for Python).
    assert!(azure_yaml.contains("language: python") && azure_yaml.contains("remoteBuild: false"));
    assert!(azure_yaml.contains("host: function"));
    assert!(azure_yaml.contains("dist: target/azd-package"));
    assert!(
        azure_yaml.contains(&format!("azd: \">= {MINIMUM_AZD}\"")),
        "azure.yaml does not require azd {MINIMUM_AZD} or newer"
    );
    // Every hook in both forms, each running the same Python hook.
    for hook in ["package", "preprovision", "postdeploy"] {
        assert!(
            azure_yaml.contains(&format!("run: sh scripts/hook.sh {hook}")),
            "no posix {hook}"
        );
        assert!(
            azure_yaml.contains(&format!("run: ./scripts/hook.ps1 {hook}")),
            "no pwsh {hook}"
        );
    }
    assert_eq!(azure_yaml.matches("shell: sh").count(), 3);
    assert_eq!(azure_yaml.matches("shell: pwsh").count(), 3);
    // No hook provisions: the event subscription is not a second provisioning pass.
    assert!(!azure_yaml.contains("azd provision") && !azure_yaml.contains("SUBSCRIBE_TO_EVENTS"));
}

#[test]
fn the_package_leaves_the_templates_and_azds_environments_out() {
    let ignored: BTreeSet<String> = read(".funcignore")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for path in ["infra/", "azure.yaml", ".azure/", "scripts/", "rust-toolchain.toml"] {
        assert!(ignored.contains(path), ".funcignore does not leave out {path}");
    }
}

#[test]
fn the_toolchain_is_pinned_to_one_release() {
    let pin = read("rust-toolchain.toml");
    let channel = pin
        .lines()
        .find_map(|line| line.strip_prefix("channel = \""))
        .expect("rust-toolchain.toml names no channel")
        .trim_end_matches('"');
    assert!(
        channel.split('.').count() == 3 && channel.split('.').all(|part| part.parse::<u32>().is_ok()),
        "the toolchain is pinned to {channel}, not to one release"
    );
    assert!(
        pin.contains("\"x86_64-unknown-linux-gnu\""),
        "the package's target is not in the toolchain"
    );
}

/// A stand-in ELF file: a header and the section headers of `.dynstr` and `.gnu.version_r` needing `versions` of
/// libc.so.6, for `machine`.
fn elf(machine: u16, versions: &[&str]) -> Vec<u8> {
    let mut strings = b"\0libc.so.6\0".to_vec();
    let names: Vec<u32> = versions
        .iter()
        .map(|version| {
            let at = strings.len() as u32;
            strings.extend_from_slice(version.as_bytes());
            strings.push(0);
            at
        })
        .collect();
    let mut needed = Vec::new();
    // Elf64_Verneed: version, count, file, aux, next.
    needed.extend_from_slice(&1u16.to_le_bytes());
    needed.extend_from_slice(&(versions.len() as u16).to_le_bytes());
    needed.extend_from_slice(&1u32.to_le_bytes());
    needed.extend_from_slice(&16u32.to_le_bytes());
    needed.extend_from_slice(&0u32.to_le_bytes());
    for (i, name) in names.iter().enumerate() {
        // Elf64_Vernaux: hash, flags, other, name, next.
        needed.extend_from_slice(&0u32.to_le_bytes());
        needed.extend_from_slice(&0u16.to_le_bytes());
        needed.extend_from_slice(&(i as u16 + 2).to_le_bytes());
        needed.extend_from_slice(&name.to_le_bytes());
        let next: u32 = if i + 1 < names.len() { 16 } else { 0 };
        needed.extend_from_slice(&next.to_le_bytes());
    }
    let strings_at = 64u64;
    let needed_at = strings_at + strings.len() as u64;
    let sections_at = needed_at + needed.len() as u64;
    let mut file = vec![0u8; 64];
    file[..4].copy_from_slice(b"\x7fELF");
    file[4] = 2; // 64-bit
    file[5] = 1; // little-endian
    file[6] = 1;
    file[16..18].copy_from_slice(&2u16.to_le_bytes()); // an executable
    file[18..20].copy_from_slice(&machine.to_le_bytes());
    file[0x28..0x30].copy_from_slice(&sections_at.to_le_bytes());
    file[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
    file[0x3C..0x3E].copy_from_slice(&3u16.to_le_bytes());
    file.extend_from_slice(&strings);
    file.extend_from_slice(&needed);
    let section = |kind: u32, offset: u64, size: u64, link: u32, info: u32| {
        let mut header = Vec::new();
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&kind.to_le_bytes());
        header.extend_from_slice(&[0u8; 16]);
        header.extend_from_slice(&offset.to_le_bytes());
        header.extend_from_slice(&size.to_le_bytes());
        header.extend_from_slice(&link.to_le_bytes());
        header.extend_from_slice(&info.to_le_bytes());
        header.extend_from_slice(&[0u8; 16]);
        header
    };
    file.extend(section(0, 0, 0, 0, 0));
    file.extend(section(3, strings_at, strings.len() as u64, 0, 0));
    file.extend(section(0x6fff_fffe, needed_at, needed.len() as u64, 1, 1));
    file
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) {
    std::fs::write(path, bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = mode;
}

#[test]
fn the_binary_check_accepts_only_an_x86_64_executable_within_glibc_2_28() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, bytes: &[u8], mode: u32| {
        let path = dir.path().join(name);
        write_file(&path, bytes, mode);
        hook(&["check-binary", path.to_str().unwrap()], &World::none())
    };
    let accepted = check("within", &elf(62, &["GLIBC_2.2.5", "GLIBC_2.17", "GLIBC_2.28"]), 0o755);
    assert!(accepted.status.success(), "{}", accepted.text());
    assert!(
        accepted.stdout().contains("glibc symbol versions up to 2.28"),
        "{}",
        accepted.text()
    );

    let too_new = check("too-new", &elf(62, &["GLIBC_2.2.5", "GLIBC_2.34"]), 0o755);
    assert!(!too_new.status.success());
    assert!(
        too_new
            .stderr()
            .contains(&format!("newer than {GLIBC_FLOOR}: GLIBC_2.34")),
        "{}",
        too_new.text()
    );

    let arm = check("arm64", &elf(183, &["GLIBC_2.17"]), 0o755);
    assert!(
        !arm.status.success() && arm.stderr().contains("not x86-64"),
        "{}",
        arm.text()
    );

    #[cfg(unix)]
    {
        let plain = check("plain", &elf(62, &["GLIBC_2.17"]), 0o644);
        assert!(
            !plain.status.success() && plain.stderr().contains("not executable"),
            "{}",
            plain.text()
        );
    }

    let script = check("script", b"#!/bin/sh\n", 0o755);
    assert!(
        !script.status.success() && script.stderr().contains("not an ELF file"),
        "{}",
        script.text()
    );
}

#[test]
fn the_package_holds_what_funcignore_keeps_with_an_executable_handler_it_checked() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("handler");
    // Written without the execute bit: staging sets it.
    write_file(&binary, &elf(62, &["GLIBC_2.2.5", "GLIBC_2.28"]), 0o644);
    let world = World::none().with_env("HANDLER_BINARY", binary.to_str().unwrap());
    let packaged = hook(&["package"], &world);
    assert!(packaged.status.success(), "{}", packaged.text());
    let stage = root().join("target/azd-package");
    let mut staged = BTreeSet::new();
    for entry in walk_files(&stage) {
        staged.insert(entry.strip_prefix(&stage).unwrap().to_string_lossy().replace('\\', "/"));
    }
    let (_, triggers) = function_bindings();
    let mut expected: BTreeSet<String> = triggers
        .iter()
        .map(|(name, _)| format!("{name}/function.json"))
        .collect();
    expected.insert("host.json".to_owned());
    expected.insert("handler".to_owned());
    assert_eq!(staged, expected, "the staged package (left) and the app (right)");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(stage.join("handler")).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "the staged handler is not executable: {mode:o}");
    }

    // A binary the host's image could not start is never staged as a success.
    write_file(&binary, &elf(62, &["GLIBC_2.34"]), 0o755);
    let refused = hook(&["package"], &world);
    assert!(!refused.status.success(), "{}", refused.text());
    assert!(refused.stderr().contains("GLIBC_2.34"), "{}", refused.text());
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk_files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------------------------
// The hooks, with stand-ins for az and azd.

/// How long one hook may run here: it calls only the stand-ins, and the tests set its waits to 0.
const HOOK_DEADLINE: Duration = Duration::from_secs(120);

/// The environment variables the hooks read; each test starts without any of them.
const HOOK_VARIABLES: &[&str] = &[
    "AZURE_ENV_NAME",
    "AZURE_LOCATION",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_PRINCIPAL_ID",
    "AZURE_PRINCIPAL_TYPE",
    "ACS_RESOURCE_ID",
    "GRANT_DEPLOYER_DATA_ACCESS",
    "COSMOS_THROUGHPUT",
    "RECORDINGS_ARCHIVE_ACCESS_TIER",
    "RECORDINGS_DELETE_AFTER_ARCHIVE",
    "RECORDINGS_LINK_MINUTES",
    "MAXIMUM_INSTANCE_COUNT",
    "ARCHIVE_RESOURCE_GROUP",
    "EVENT_GRID_SYSTEM_TOPIC",
    "EVENT_GRID_SYSTEM_TOPIC_RESOURCE_GROUP",
    "ARCHIVE_COOL_AFTER_DAYS",
    "ARCHIVE_COLD_AFTER_DAYS",
    "ARCHIVE_ARCHIVE_AFTER_DAYS",
    "ARCHIVE_DELETE_AFTER_DAYS",
    "ARCHIVE_DELETED_RETENTION_DAYS",
    "EVENT_GRID_SYSTEM_TOPIC_ID",
    "FUNCTION_APP_ID",
    "ARCHIVE_STORAGE_ACCOUNT_ID",
    "SUBSCRIBE_TIMEOUT_SECONDS",
    "SUBSCRIBE_RETRY_SECONDS",
    "SUBSCRIBE_POLL_SECONDS",
    "HANDLER_BINARY",
    "FAKE_AZURE_STATE",
];

const SUBSCRIPTION: &str = "11111111-1111-1111-1111-111111111111";
const ACS_SUBSCRIPTION: &str = "22222222-2222-2222-2222-222222222222";
const ACS_ID: &str = "/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/rg-calls/providers/\
                      Microsoft.Communication/communicationServices/acs-prod";

/// What a hook finished with.
struct Ran {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn stdout(&self) -> &str {
        &self.stdout
    }

    fn stderr(&self) -> &str {
        &self.stderr
    }

    fn text(&self) -> String {
        format!(
            "exit: {}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A folder with stand-ins for `az` and `azd` that answer from `state.json` (tests/fixtures/fake_azure.py), and the
/// azd environment the hooks see.
struct World {
    dir: Option<tempfile::TempDir>,
    env: BTreeMap<String, String>,
}

impl World {
    /// No stand-ins: for the hooks that do not reach Azure.
    fn none() -> Self {
        Self {
            dir: None,
            env: BTreeMap::new(),
        }
    }

    /// Stand-ins answering from `state`, and an environment as `azd up` gives the hooks on a new environment.
    fn new(state: Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let fake = root().join("tests/fixtures/fake_azure.py");
        for tool in ["az", "azd"] {
            let script = format!("#!/bin/sh\nexec {} '{}' {tool} \"$@\"\n", python(), fake.display());
            write_file(&bin.join(tool), script.as_bytes(), 0o755);
        }
        std::fs::write(dir.path().join("state.json"), state.to_string()).unwrap();
        let env = [
            ("AZURE_ENV_NAME", "prod"),
            ("AZURE_LOCATION", "westeurope"),
            ("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION),
            ("ACS_RESOURCE_ID", ACS_ID),
            ("SUBSCRIBE_RETRY_SECONDS", "0"),
            ("SUBSCRIBE_POLL_SECONDS", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Self { dir: Some(dir), env }
    }

    fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    fn set(&mut self, name: &str, value: &str) {
        self.env.insert(name.to_owned(), value.to_owned());
    }

    fn state(&self) -> Value {
        let path = self.dir.as_ref().unwrap().path().join("state.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn edit_state(&self, edit: impl FnOnce(&mut Value)) {
        let mut state = self.state();
        edit(&mut state);
        let path = self.dir.as_ref().unwrap().path().join("state.json");
        std::fs::write(path, state.to_string()).unwrap();
    }

    /// Every call the stand-ins took, each as its words.
    fn calls(&self) -> Vec<Vec<String>> {
        serde_json::from_value(self.state()["calls"].clone()).unwrap_or_default()
    }

    /// What the hooks `azd env set`, taken into the environment as azd does after each hook.
    fn take_azd_env(&mut self) {
        let set: BTreeMap<String, String> = serde_json::from_value(self.state()["env"].clone()).unwrap_or_default();
        self.env.extend(set);
    }

    /// What provisioning gives the environment: the template's outputs, and the system topic it deploys when the ACS
    /// resource had none.
    fn provision(&mut self) {
        let topic_group = self
            .env
            .get("EVENT_GRID_SYSTEM_TOPIC_RESOURCE_GROUP")
            .cloned()
            .unwrap_or_else(|| "rg-calls".to_owned());
        let topic_name = self
            .env
            .get("EVENT_GRID_SYSTEM_TOPIC")
            .cloned()
            .unwrap_or_else(|| "evgt-token".to_owned());
        let topic_id = format!(
            "/subscriptions/{ACS_SUBSCRIPTION}/resourceGroups/{topic_group}/providers/Microsoft.EventGrid/systemTopics/{topic_name}"
        );
        self.edit_state(|state| {
            let topics = state["topics"].as_array_mut().unwrap();
            if !topics.iter().any(|t| t["id"] == topic_id.as_str()) {
                topics.push(json!({"id": topic_id, "name": topic_name, "properties": {"source": ACS_ID}}));
            }
        });
        self.set("EVENT_GRID_SYSTEM_TOPIC_ID", &topic_id);
        self.set(
            "FUNCTION_APP_ID",
            &format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-prod/providers/Microsoft.Web/sites/func-token"),
        );
        self.set(
            "ARCHIVE_STORAGE_ACCOUNT_ID",
            &format!(
                "/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-prod-archive/providers/Microsoft.Storage/storageAccounts/starctoken"
            ),
        );
    }

    /// `azd down`: the app's resource group goes, and azd drops the template's outputs from the environment; the
    /// archive's resource group and the ACS resource's topic stay.
    fn down(&mut self) {
        for output in [
            "EVENT_GRID_SYSTEM_TOPIC_ID",
            "FUNCTION_APP_ID",
            "ARCHIVE_STORAGE_ACCOUNT_ID",
        ] {
            self.env.remove(output);
        }
    }
}

fn python() -> &'static str {
    "python3"
}

/// Runs `scripts/azd_hooks.py ARGS` through `scripts/hook.sh` as azd would, with the world's environment and its
/// stand-ins first on PATH; fails after HOOK_DEADLINE.
fn hook(args: &[&str], world: &World) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdout");
    let err = dir.path().join("stderr");
    let mut command = Command::new("sh");
    command
        .arg(root().join("scripts/hook.sh"))
        .args(args)
        .current_dir(root());
    for name in HOOK_VARIABLES {
        command.env_remove(name);
    }
    command.envs(&world.env);
    if let Some(stand_ins) = &world.dir {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![stand_ins.path().join("bin")];
        paths.extend(std::env::split_paths(&path));
        command.env("PATH", std::env::join_paths(paths).unwrap());
        command.env("FAKE_AZURE_STATE", stand_ins.path().join("state.json"));
    }
    command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    let mut child = command.spawn().expect("sh");
    let deadline = Instant::now() + HOOK_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "waited {HOOK_DEADLINE:?} for the hook `{}`, in vain; it wrote:\n{}",
                args.join(" "),
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        status,
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap(),
    }
}

fn fresh_azure() -> Value {
    json!({"subscription": SUBSCRIPTION, "groups": [], "topics": [], "put_failures": 0})
}

fn is_az(call: &[String], words: &[&str]) -> bool {
    call.len() > words.len() && call[0] == "az" && call[1..=words.len()].iter().zip(words).all(|(a, b)| a == b)
}

#[test]
fn parameters_azure_would_reject_are_refused_before_anything_is_created() {
    let refused = [
        ("AZURE_LOCATION", "westus4", "AZURE_LOCATION='westus4': one of"),
        ("MAXIMUM_INSTANCE_COUNT", "39", "at least 40"),
        ("MAXIMUM_INSTANCE_COUNT", "1001", "at most 1000"),
        ("MAXIMUM_INSTANCE_COUNT", "many", "not a whole number"),
        ("COSMOS_THROUGHPUT", "399", "COSMOS_THROUGHPUT=399: 0 for serverless"),
        ("COSMOS_THROUGHPUT", "450", "COSMOS_THROUGHPUT=450"),
        ("RECORDINGS_LINK_MINUTES", "0", "at least 1"),
        ("RECORDINGS_ARCHIVE_ACCESS_TIER", "Glacier", "one of ''"),
        ("ARCHIVE_DELETED_RETENTION_DAYS", "366", "at most 365"),
        ("GRANT_DEPLOYER_DATA_ACCESS", "yes", "true or false"),
        (
            "ACS_RESOURCE_ID",
            "/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/rg-calls/providers/Microsoft.Storage/storageAccounts/x",
            "not an ACS resource id",
        ),
        ("ACS_RESOURCE_ID", "acs-prod", "not an ACS resource id"),
        ("ACS_RESOURCE_ID", "", "ACS_RESOURCE_ID is not set"),
    ];
    for (name, value, problem) in refused {
        let world = World::new(fresh_azure()).with_env(name, value);
        let ran = hook(&["preprovision"], &world);
        assert!(!ran.status.success(), "{name}={value:?} was accepted:\n{}", ran.text());
        assert!(ran.stderr().contains(problem), "{name}={value:?}:\n{}", ran.text());
        assert!(
            world.calls().is_empty(),
            "{name}={value:?} reached Azure: {:?}",
            world.calls()
        );
    }
    // The archive's lifecycle steps come in order: cool, cold, archive, delete.
    let world = World::new(fresh_azure())
        .with_env("ARCHIVE_COOL_AFTER_DAYS", "90")
        .with_env("ARCHIVE_COLD_AFTER_DAYS", "30");
    let ran = hook(&["preprovision"], &world);
    assert!(!ran.status.success());
    assert!(
        ran.stderr()
            .contains("ARCHIVE_COLD_AFTER_DAYS=30: must come after ARCHIVE_COOL_AFTER_DAYS=90"),
        "{}",
        ran.text()
    );
    // Every problem at once.
    let world = World::new(fresh_azure())
        .with_env("MAXIMUM_INSTANCE_COUNT", "1")
        .with_env("COSMOS_THROUGHPUT", "1");
    let ran = hook(&["preprovision"], &world);
    assert!(ran.stderr().contains("MAXIMUM_INSTANCE_COUNT") && ran.stderr().contains("COSMOS_THROUGHPUT"));
}

#[test]
fn the_parameter_rules_the_hook_applies_are_the_templates() {
    // The hook reads main.bicep's decorators: the limits it refuses are the ones Azure Resource Manager would.
    let main = read("infra/main.bicep");
    let decorators = |param: &str| {
        let at = main.find(&format!("param {param} ")).unwrap();
        let before = &main[..at];
        before[before.rfind("\n\n").unwrap_or(0)..].to_owned()
    };
    let count = decorators("maximumInstanceCount");
    assert!(
        count.contains("@minValue(40)") && count.contains("@maxValue(1000)"),
        "{count}"
    );
    let location = decorators("location");
    assert!(
        location.contains("@allowed(["),
        "the location is not limited to Flex Consumption regions"
    );
    assert!(
        location.contains("type: 'location'"),
        "azd does not offer the regions when it asks"
    );
    for region in ["westeurope", "eastus", "swedencentral"] {
        assert!(location.contains(&format!("'{region}'")), "{region}");
    }
    // What decorators cannot say is refused by the template too, before any resource: fail() in variables.
    assert!(main.contains("fail('acsResourceId must be"));
    assert!(main.contains("fail('cosmosThroughput must be"));
    for (name, value) in [
        ("COSMOS_THROUGHPUT", "400"),
        ("COSMOS_THROUGHPUT", "0"),
        ("MAXIMUM_INSTANCE_COUNT", "1000"),
    ] {
        let world = World::new(fresh_azure()).with_env(name, value);
        let ran = hook(&["preprovision"], &world);
        assert!(ran.status.success(), "{name}={value}: {}", ran.text());
    }
}

#[test]
fn preprovision_makes_the_archive_group_once_and_takes_the_acs_resources_existing_topic() {
    let existing = format!(
        "/subscriptions/{ACS_SUBSCRIPTION}/resourceGroups/rg-events/providers/Microsoft.EventGrid/systemTopics/acs-prod-topic"
    );
    let other = format!(
        "/subscriptions/{ACS_SUBSCRIPTION}/resourceGroups/rg-calls/providers/Microsoft.EventGrid/systemTopics/storage-topic"
    );
    let mut state = fresh_azure();
    state["topics"] = json!([
        {"id": other, "name": "storage-topic", "properties": {"source": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/z"}},
        {"id": existing, "name": "acs-prod-topic", "properties": {"source": ACS_ID.to_uppercase()}},
    ]);
    let mut world = World::new(state);
    let first = hook(&["preprovision"], &world);
    assert!(first.status.success(), "{}", first.text());
    world.take_azd_env();
    assert_eq!(world.env["EVENT_GRID_SYSTEM_TOPIC"], "acs-prod-topic");
    assert_eq!(world.env["EVENT_GRID_SYSTEM_TOPIC_RESOURCE_GROUP"], "rg-events");
    assert_eq!(world.state()["groups"], json!(["rg-prod-archive"]));

    let second = hook(&["preprovision"], &world);
    assert!(second.status.success(), "{}", second.text());
    let creates = world.calls().iter().filter(|c| is_az(c, &["group", "create"])).count();
    assert_eq!(creates, 1, "the archive's group was made again: {:?}", world.calls());
    let create = world
        .calls()
        .into_iter()
        .find(|c| is_az(c, &["group", "create"]))
        .unwrap();
    for expected in ["rg-prod-archive", "westeurope", SUBSCRIPTION] {
        assert!(create.iter().any(|word| word == expected), "{create:?}");
    }

    // A named group is used as it is.
    let world = World::new(fresh_azure()).with_env("ARCHIVE_RESOURCE_GROUP", "rg-recordings");
    assert!(hook(&["preprovision"], &world).status.success());
    assert_eq!(world.state()["groups"], json!(["rg-recordings"]));

    // Signed out of the Azure CLI: said, and nothing made.
    let mut state = fresh_azure();
    state["signed_in"] = json!(false);
    let world = World::new(state);
    let ran = hook(&["preprovision"], &world);
    assert!(
        !ran.status.success() && ran.stderr().contains("az login"),
        "{}",
        ran.text()
    );
    assert_eq!(world.state()["groups"], json!([]));
}

#[test]
fn postdeploy_retries_until_event_grid_takes_the_function_and_sends_the_subscription_the_code_needs() {
    let mut state = fresh_azure();
    state["put_failures"] = json!(3);
    let mut world = World::new(state);
    world.provision();
    let ran = hook(&["postdeploy"], &world);
    assert!(ran.status.success(), "{}", ran.text());
    let puts = world.state()["puts"].as_array().unwrap().clone();
    assert_eq!(puts.len(), 4, "3 refused, then accepted: {}", ran.text());
    assert!(
        ran.stdout().contains("Destination endpoint not found"),
        "the refusal is not shown: {}",
        ran.text()
    );

    let put = &puts[3];
    let url = put["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "{}/eventSubscriptions/",
            world.env["EVENT_GRID_SYSTEM_TOPIC_ID"]
        )),
        "{url}"
    );
    let body = &put["body"]["properties"];
    let target = body["destination"]["properties"]["resourceId"].as_str().unwrap();
    let function = target.rsplit("/functions/").next().unwrap();
    assert_eq!(target, format!("{}/functions/{function}", world.env["FUNCTION_APP_ID"]));
    let (_, triggers) = function_bindings();
    assert!(
        triggers
            .iter()
            .any(|(name, kind)| name == function && kind == "eventGridTrigger"),
        "the subscription delivers to {function}, which is not an Event Grid function: {triggers:?}"
    );
    assert_eq!(body["destination"]["endpointType"], "AzureFunction");
    assert_eq!(
        body["filter"]["includedEventTypes"],
        json!(["Microsoft.Communication.RecordingFileStatusUpdated"])
    );
    assert_eq!(
        body["retryPolicy"],
        json!({"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440})
    );
    let dead_letter = &body["deadLetterWithResourceIdentity"];
    assert_eq!(dead_letter["identity"]["type"], "SystemAssigned");
    assert_eq!(
        dead_letter["deadLetterDestination"]["properties"],
        json!({"resourceId": world.env["ARCHIVE_STORAGE_ACCOUNT_ID"], "blobContainerName": "deadletter"})
    );
    assert_eq!(
        var_literal(&read("infra/main.bicep"), "deadLetterContainer"),
        "deadletter"
    );

    // Accepted, then still being created: the hook waits for Event Grid's verdict, and a refusal is tried again.
    let mut state = fresh_azure();
    state["put_state"] = json!("Creating");
    state["get_states"] = json!(["Creating", "Failed", "Creating", "Succeeded"]);
    let mut world = World::new(state);
    world.provision();
    let ran = hook(&["postdeploy"], &world);
    assert!(ran.status.success(), "{}", ran.text());
    assert_eq!(world.state()["puts"].as_array().unwrap().len(), 2, "{}", ran.text());
    assert!(ran.stdout().contains("provisioning state is Failed"), "{}", ran.text());
}

#[test]
fn postdeploy_gives_up_at_its_deadline_saying_how_to_finish() {
    let mut state = fresh_azure();
    state["put_failures"] = json!(1000);
    let mut world = World::new(state).with_env("SUBSCRIBE_TIMEOUT_SECONDS", "0");
    world.provision();
    let ran = hook(&["postdeploy"], &world);
    assert!(!ran.status.success(), "{}", ran.text());
    assert_eq!(world.state()["puts"].as_array().unwrap().len(), 1, "{}", ran.text());
    for said in [
        "did not accept RecordingEvent within 0 s",
        "azd hooks run postdeploy",
        "SUBSCRIBE_TIMEOUT_SECONDS",
    ] {
        assert!(ran.stderr().contains(said), "{said}: {}", ran.text());
    }

    // Before provisioning there is nothing to subscribe to: said, and nothing sent.
    let world = World::new(fresh_azure());
    let ran = hook(&["postdeploy"], &world);
    assert!(
        !ran.status.success() && ran.stderr().contains("run `azd provision` first"),
        "{}",
        ran.text()
    );
    assert!(world.calls().is_empty());
}

/// One `azd up` as the hooks see it: preprovision, provisioning, then postdeploy once the code is deployed.
fn up(world: &mut World, refusals_before_the_function_is_synced: u64) -> (Ran, Ran) {
    let pre = hook(&["preprovision"], world);
    assert!(pre.status.success(), "{}", pre.text());
    world.take_azd_env();
    world.provision();
    world.edit_state(|state| state["put_failures"] = json!(refusals_before_the_function_is_synced));
    let post = hook(&["postdeploy"], world);
    assert!(post.status.success(), "{}", post.text());
    (pre, post)
}

#[test]
fn up_then_down_then_up_and_up_twice_each_end_subscribed_without_provisioning_from_a_hook() {
    let mut world = World::new(fresh_azure());
    let (first_pre, _) = up(&mut world, 2);
    assert!(
        first_pre.stdout().contains("has no system topic yet"),
        "{}",
        first_pre.text()
    );
    let first_puts = world.state()["puts"].as_array().unwrap().len();
    assert_eq!(first_puts, 3);

    world.down();
    let (second_pre, _) = up(&mut world, 1);
    // The topic the first `up` made stays with the ACS resource; the second takes it instead of making another one,
    // which Event Grid would refuse (one system topic per source).
    assert!(
        second_pre.stdout().contains("already has the system topic evgt-token"),
        "{}",
        second_pre.text()
    );
    assert_eq!(world.env["EVENT_GRID_SYSTEM_TOPIC"], "evgt-token");
    assert_eq!(world.state()["topics"].as_array().unwrap().len(), 1);
    let puts = world.state()["puts"].as_array().unwrap().clone();
    assert_eq!(puts.len(), first_puts + 2);

    // `azd up` again, nothing changed: one PUT replaces the subscription with the same one.
    up(&mut world, 0);
    let puts = world.state()["puts"].as_array().unwrap().clone();
    assert_eq!(puts.len(), first_puts + 3);
    assert_eq!(
        puts[first_puts - 1],
        puts[puts.len() - 1],
        "the subscription differs between runs"
    );

    let calls = world.calls();
    assert_eq!(
        calls.iter().filter(|c| is_az(c, &["group", "create"])).count(),
        1,
        "{calls:?}"
    );
    for call in &calls {
        let words = call.join(" ");
        assert!(!words.contains("provision"), "a hook ran {words}");
        assert!(!words.contains("SUBSCRIBE_TO_EVENTS"), "a hook ran {words}");
        assert!(
            call[0] == "az" || call[..2] == ["azd".to_owned(), "env".to_owned()],
            "{words}"
        );
    }
}

#[test]
fn no_provisioning_creates_the_event_subscription() {
    // Event Grid refuses a subscription to a function that does not exist yet, so the template never declares one: a
    // first `azd up`, and one after `azd down`, provision before any code is deployed.
    for (path, text) in templates() {
        assert!(
            !text.contains("eventSubscriptions"),
            "{path} declares an event subscription"
        );
    }
    assert!(!read("infra/main.parameters.json").contains("SUBSCRIBE_TO_EVENTS"));
}

// ---------------------------------------------------------------------------------------------------------------
// Where things live, what `azd down` leaves, what is kept and logged.

/// The text of the block that starts at the first `{` after `from` in `text` (Bicep: `'` strings with `\'`
/// escapes, `//` comments to the end of the line).
fn block_at(text: &str, from: usize) -> &str {
    enclosed(text, from, b'{', b'}')
}

/// The text from the first `opening` after `from` to the one that closes it, in Bicep.
fn enclosed(text: &str, from: usize, opening: u8, closing: u8) -> &str {
    let open = from + text[from..].find(opening as char).unwrap();
    let bytes = text.as_bytes();
    let (mut depth, mut i, mut in_string) = (0, open, false);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'\'' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => {
                i = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
                continue;
            }
            c if c == opening && !in_string => depth += 1,
            c if c == closing && !in_string => {
                depth -= 1;
                if depth == 0 {
                    return &text[open..=i];
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unclosed block at {from}: {}", &text[from..text.len().min(from + 80)])
}

/// The block of `module NAME` in main.bicep.
fn module_block(name: &str) -> String {
    let main = read("infra/main.bicep");
    let at = main
        .find(&format!("module {name} "))
        .unwrap_or_else(|| panic!("no module {name}"));
    let header_end = at + main[at..].find('\n').unwrap();
    format!("{}{}", &main[at..header_end], block_at(&main, at))
}

#[test]
fn azd_down_leaves_the_archive_and_the_acs_resources_topic_and_the_archive_resists_deletion() {
    let main = read("infra/main.bicep");
    // azd down deletes the resource groups the template creates: the app's, not the archive's.
    let created: Vec<&str> = main
        .match_indices("'Microsoft.Resources/resourceGroups@")
        .map(|(at, _)| main[..at].rsplit('\n').next().unwrap())
        .collect();
    assert_eq!(created.len(), 2, "{created:?}");
    assert!(
        created.iter().any(|line| line.starts_with("resource rg ")),
        "{created:?}"
    );
    let archive_group = main.find("resource archiveGroup ").unwrap();
    assert!(main[archive_group..].lines().next().unwrap().ends_with("existing = {"));
    assert!(module_block("archive").contains("scope: archiveGroup"));
    assert!(module_block("deadLetterAccess").contains("scope: archiveGroup"));
    assert!(main.contains("'rg-${environmentName}-archive'"));
    // The topic is with the ACS resource, in its subscription.
    assert!(module_block("events").contains("acs.subscriptionId"));
    assert!(module_block("acsAccess").contains("resourceGroup(acs.subscriptionId, acs.resourceGroup)"));

    let archive = read("infra/modules/archive.bicep");
    let lock = block_at(&archive, archive.find("'Microsoft.Authorization/locks@").unwrap());
    assert!(
        lock.contains("level: 'CanNotDelete'") && lock.contains("scope: account"),
        "{lock}"
    );
    let blobs = block_at(
        &archive,
        archive
            .find("'Microsoft.Storage/storageAccounts/blobServices@")
            .unwrap(),
    );
    assert!(blobs.contains("isVersioningEnabled: true"), "{blobs}");
    assert!(
        blobs.contains("deleteRetentionPolicy: { enabled: true, days: deletedRetentionDays }"),
        "{blobs}"
    );
    let lifecycle = &archive[archive.find("var earlierVersionsRule").unwrap()..];
    assert!(
        lifecycle.contains("version: { delete: { daysAfterCreationGreaterThan: deletedRetentionDays } }"),
        "an erased file's earlier version would stay for good"
    );
}

#[test]
fn the_archives_lifecycle_comes_from_parameters_each_step_off_by_default() {
    let parameters: Value = serde_json::from_str(&read("infra/main.parameters.json")).unwrap();
    let main = read("infra/main.bicep");
    let archive = module_block("archive");
    for (param, variable, action, module_param) in [
        (
            "archiveCoolAfterDays",
            "ARCHIVE_COOL_AFTER_DAYS",
            "tierToCool",
            "coolAfterDays",
        ),
        (
            "archiveColdAfterDays",
            "ARCHIVE_COLD_AFTER_DAYS",
            "tierToCold",
            "coldAfterDays",
        ),
        (
            "archiveArchiveAfterDays",
            "ARCHIVE_ARCHIVE_AFTER_DAYS",
            "tierToArchive",
            "archiveAfterDays",
        ),
        (
            "archiveDeleteAfterDays",
            "ARCHIVE_DELETE_AFTER_DAYS",
            "delete",
            "deleteAfterDays",
        ),
    ] {
        assert_eq!(parameters["parameters"][param]["value"], format!("${{{variable}=0}}"));
        assert!(main.contains(&format!("param {param} int = 0")), "{param}");
        assert!(archive.contains(&format!("{module_param}: {param}")), "{param}");
        let rule =
            format!("{module_param} > 0 ? {{ {action}: {{ daysAfterCreationGreaterThan: {module_param} }} }} : {{}}");
        assert!(read("infra/modules/archive.bicep").contains(&rule), "{rule}");
    }
}

#[test]
fn the_topic_the_archives_blobs_and_cosmos_db_log_into_the_workspace() {
    for (path, resource, categories) in [
        (
            "infra/modules/events.bicep",
            "scope: topic",
            vec!["DeliveryFailures", "AllMetrics"],
        ),
        (
            "infra/modules/archive.bicep",
            "scope: blobService",
            vec!["StorageRead", "StorageWrite", "StorageDelete"],
        ),
        (
            "infra/modules/cosmos.bicep",
            "scope: account",
            vec!["DataPlaneRequests", "ControlPlaneRequests"],
        ),
    ] {
        let text = read(path);
        let at = text
            .find("'Microsoft.Insights/diagnosticSettings@")
            .unwrap_or_else(|| panic!("{path} has no diagnostic settings"));
        let settings = block_at(&text, at);
        assert!(settings.contains(resource), "{path}: {settings}");
        assert!(settings.contains("workspaceId: workspaceId"), "{path}: {settings}");
        for category in categories {
            assert!(
                settings.contains(&format!("category: '{category}', enabled: true")),
                "{path}: {category}"
            );
        }
    }
    for module in ["archive", "cosmos", "events"] {
        assert!(
            module_block(module).contains("workspaceId: monitoring.outputs.workspaceId"),
            "{module} logs elsewhere"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Least privilege: every operation, its permission, and the role that grants it where it is granted.

/// Azure's built-in role definitions, as tests/fixtures/azure-roles.json keeps them.
struct RoleFixture {
    rbac: Value,
    cosmos: Value,
}

impl RoleFixture {
    fn load() -> Self {
        let fixture: Value = serde_json::from_str(&read("tests/fixtures/azure-roles.json")).unwrap();
        Self {
            rbac: fixture["rbac"].clone(),
            cosmos: fixture["cosmos"].clone(),
        }
    }

    fn find(&self, id: &str) -> Option<&Value> {
        self.rbac
            .as_array()
            .unwrap()
            .iter()
            .chain(self.cosmos.as_array().unwrap())
            .find(|role| role["id"] == id)
    }

    fn name_of(&self, id: &str) -> Option<&str> {
        self.find(id).map(|role| role["roleName"].as_str().unwrap())
    }

    /// Whether the role allows `permission`: an Azure RBAC role through its actions or data actions, less its not-
    /// actions; a Cosmos DB data-plane role through its data actions.
    fn allows(&self, id: &str, permission: &Permission) -> bool {
        let Some(role) = self.find(id) else {
            return false;
        };
        let matches = |patterns: &Value, action: &str| {
            patterns
                .as_array()
                .into_iter()
                .flatten()
                .any(|pattern| wildcard(pattern.as_str().unwrap(), action))
        };
        match permission {
            Permission::Role(name) => role["roleName"] == *name,
            Permission::Action(action) | Permission::DataAction(action) if role.get("permissions").is_some() => {
                let (allow, deny) = match permission {
                    Permission::Action(_) => ("actions", "notActions"),
                    _ => ("dataActions", "notDataActions"),
                };
                role["permissions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|grant| matches(&grant[allow], action) && !matches(&grant[deny], action))
            }
            Permission::DataAction(action) => matches(&role["dataActions"], action),
            Permission::Action(_) => false,
        }
    }
}

/// Azure's permission patterns: `*` stands for any text, and case does not matter.
fn wildcard(pattern: &str, action: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let action = action.to_ascii_lowercase();
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == action;
    }
    let mut rest = action.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(after) = rest.strip_prefix(part) else {
                return false;
            };
            rest = after;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

#[derive(Debug)]
enum Permission {
    Action(&'static str),
    DataAction(&'static str),
    /// An operation Azure publishes no permission for: the role that is documented to allow it.
    Role(&'static str),
}

/// One Azure operation the app performs (the handler, or the Functions host for it), what it needs, and where: a
/// resource as main.bicep makes it (`module.symbol`, or the expression naming an existing one), then the child
/// resources down to the one the request touches.
struct Operation {
    what: &'static str,
    needs: Permission,
    on: &'static [&'static str],
}

const ARCHIVE_RECORDINGS: &[&str] = &["archive.account", "blobServices/default", "containers/recordings"];
const ARCHIVE_BLOBS: &[&str] = &["archive.account", "blobServices/default"];
const COSMOS_RECORDINGS: &[&str] = &["cosmos.account", "sqlDatabases/recordings", "containers/recordings"];
const COSMOS_QUARANTINE: &[&str] = &["cosmos.account", "sqlDatabases/recordings", "containers/quarantine"];
const HOST_QUEUE: &[&str] = &[
    "hostStorage.account",
    "queueServices/default",
    "queues/recording-archive",
];
const HOST_POISON_QUEUE: &[&str] = &[
    "hostStorage.account",
    "queueServices/default",
    "queues/recording-archive-poison",
];
const HOST_BLOBS: &[&str] = &["hostStorage.account", "blobServices/default"];
const HOST_PACKAGE: &[&str] = &["hostStorage.account", "blobServices/default", "containers/app-package"];

const BLOB_READ: &str = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read";
const BLOB_WRITE: &str = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write";
const BLOB_DELETE: &str = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete";

/// Every Azure operation the app performs, with the permission Azure's documentation names for it.
const OPERATIONS: &[Operation] = &[
    // The archive in Blob Storage (src/archive/blob/).
    Operation {
        what: "Get Container Properties: the archive checks its container at startup",
        needs: Permission::Action("Microsoft.Storage/storageAccounts/blobServices/containers/read"),
        on: ARCHIVE_RECORDINGS,
    },
    Operation {
        what: "Get Block List (uncommitted): a job finds the blocks an earlier try staged",
        needs: Permission::DataAction(BLOB_READ),
        on: ARCHIVE_RECORDINGS,
    },
    Operation {
        what: "Put Block: each block of a file",
        needs: Permission::DataAction(BLOB_WRITE),
        on: ARCHIVE_RECORDINGS,
    },
    Operation {
        what: "Put Block List (If-None-Match, access tier, metadata): a file's commit",
        needs: Permission::DataAction(BLOB_WRITE),
        on: ARCHIVE_RECORDINGS,
    },
    Operation {
        what: "Get Blob Properties: the read-back after a commit, and a file archived before",
        needs: Permission::DataAction(BLOB_READ),
        on: ARCHIVE_RECORDINGS,
    },
    Operation {
        what: "List Blobs, committed and uncommitted: an erase finds a call's files",
        needs: Permission::DataAction(BLOB_READ),
        on: ARCHIVE_RECORDINGS,
    },
    Operation {
        what: "Delete Blob: an erase, and a file a late job committed after its recording was erased",
        needs: Permission::DataAction(BLOB_DELETE),
        on: ARCHIVE_RECORDINGS,
    },
    Operation {
        what: "Get Blob through a read link: a user delegation SAS reads only what its signer may read",
        needs: Permission::DataAction(BLOB_READ),
        on: ARCHIVE_RECORDINGS,
    },
    Operation {
        what: "Get User Delegation Key: the key that signs read links, asked of the blob service",
        needs: Permission::Action("Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"),
        on: ARCHIVE_BLOBS,
    },
    // Cosmos DB (src/store/cosmos/).
    Operation {
        what: "the account's properties (its write regions) and the containers' (their partition keys) at startup",
        needs: Permission::DataAction("Microsoft.DocumentDB/databaseAccounts/readMetadata"),
        on: COSMOS_RECORDINGS,
    },
    Operation {
        what: "create an item: a recording's first event",
        needs: Permission::DataAction("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/create"),
        on: COSMOS_RECORDINGS,
    },
    Operation {
        what: "read an item: a merge, an edit, an erase, a lookup",
        needs: Permission::DataAction("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/read"),
        on: COSMOS_RECORDINGS,
    },
    Operation {
        what: "replace an item with If-Match: a merge, an edit, a tombstone",
        needs: Permission::DataAction("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/replace"),
        on: COSMOS_RECORDINGS,
    },
    Operation {
        what: "query: listings, the sweep, tombstones (the SDK's queries need executeQuery)",
        needs: Permission::DataAction("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/executeQuery"),
        on: COSMOS_RECORDINGS,
    },
    Operation {
        what: "query: … and readChangeFeed too",
        needs: Permission::DataAction("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/readChangeFeed"),
        on: COSMOS_RECORDINGS,
    },
    Operation {
        what: "create a quarantine entry",
        needs: Permission::DataAction("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/create"),
        on: COSMOS_QUARANTINE,
    },
    Operation {
        what: "query the quarantine for a call's entries",
        needs: Permission::DataAction("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/executeQuery"),
        on: COSMOS_QUARANTINE,
    },
    Operation {
        what: "delete a quarantine entry: an erase",
        needs: Permission::DataAction("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/delete"),
        on: COSMOS_QUARANTINE,
    },
    // ACS (src/archive/acs/): no published data action; Contributor, as ACS's Entra ID samples use.
    Operation {
        what: "download a recording's metadata and content with a Microsoft Entra ID token",
        needs: Permission::Role("Contributor"),
        on: &["acs.name"],
    },
    Operation {
        what: "delete a recording at ACS (RECORDINGS_DELETE_AFTER_ARCHIVE)",
        needs: Permission::Role("Contributor"),
        on: &["acs.name"],
    },
    // The Functions host, for the app (AzureWebJobsStorage, Application Insights).
    Operation {
        what: "the queue trigger gets, updates and deletes archive jobs",
        needs: Permission::DataAction("Microsoft.Storage/storageAccounts/queueServices/queues/messages/process/action"),
        on: HOST_QUEUE,
    },
    Operation {
        what: "the queue trigger peeks at archive jobs",
        needs: Permission::DataAction("Microsoft.Storage/storageAccounts/queueServices/queues/messages/read"),
        on: HOST_QUEUE,
    },
    Operation {
        what: "RecordingEvent's queue output adds archive jobs",
        needs: Permission::DataAction("Microsoft.Storage/storageAccounts/queueServices/queues/messages/write"),
        on: HOST_QUEUE,
    },
    Operation {
        what: "the host deletes a job it finished",
        needs: Permission::DataAction("Microsoft.Storage/storageAccounts/queueServices/queues/messages/delete"),
        on: HOST_QUEUE,
    },
    Operation {
        what: "the host moves a job past its last retry to the poison queue",
        needs: Permission::DataAction("Microsoft.Storage/storageAccounts/queueServices/queues/messages/write"),
        on: HOST_POISON_QUEUE,
    },
    Operation {
        what: "the host reads the deployment package",
        needs: Permission::DataAction(BLOB_READ),
        on: HOST_PACKAGE,
    },
    Operation {
        what: "the host makes its own containers (leases, the timer's schedule)",
        needs: Permission::Action("Microsoft.Storage/storageAccounts/blobServices/containers/write"),
        on: HOST_BLOBS,
    },
    Operation {
        what: "the host writes its leases and the timer's schedule",
        needs: Permission::DataAction(BLOB_WRITE),
        on: HOST_BLOBS,
    },
    Operation {
        what: "the host sends telemetry to Application Insights with the identity (local auth is off)",
        needs: Permission::DataAction("Microsoft.Insights/Telemetry/Write"),
        on: &["monitoring.appInsights"],
    },
];

/// A role assignment a template makes: to whom, which role, where, and whether a condition guards it.
#[derive(Debug)]
struct Assignment {
    file: String,
    symbol: String,
    principal: String,
    role: String,
    scope: Vec<String>,
    conditional: bool,
}

/// A resource a template declares or refers to.
struct Declared {
    kind: String,
    name: String,
    parent: Option<String>,
}

/// Every `resource SYMBOL 'TYPE@VERSION' … {` of a template, with its block.
fn resources(text: &str) -> Vec<(String, String, bool, String)> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("\nresource ") {
        let line = text[at + 1..].lines().next().unwrap();
        let mut words = line.split_whitespace();
        words.next();
        let symbol = words.next().unwrap().to_owned();
        let kind = line.split('\'').nth(1).unwrap().split('@').next().unwrap().to_owned();
        let conditional = line.contains("= if (");
        found.push((symbol, kind, conditional, block_at(text, at + 1).to_owned()));
    }
    found
}

/// The first `key: value` of a block, its value trimmed.
fn field<'a>(block: &'a str, key: &str) -> Option<&'a str> {
    block
        .lines()
        .find_map(|line| line.trim().strip_prefix(&format!("{key}:")))
        .map(str::trim)
}

/// The role assignments of every template, each resolved against main.bicep: the principal and the scope as the
/// logical names `Operation::on` uses.
fn assignments(files: &BTreeMap<String, String>) -> Vec<Assignment> {
    let main = &files["infra/main.bicep"];
    // module symbol -> (file, params block)
    let mut modules = BTreeMap::new();
    for (at, _) in main.match_indices("\nmodule ") {
        let line = main[at + 1..].lines().next().unwrap();
        let symbol = line.split_whitespace().nth(1).unwrap().to_owned();
        let file = format!("infra/{}", line.split('\'').nth(1).unwrap());
        let block = block_at(main, at + 1);
        let params = block_at(block, block.find("params:").unwrap()).to_owned();
        modules.insert(symbol, (file, params));
    }
    let mut found = Vec::new();
    for (module, (file, params)) in &modules {
        let text = &files[file];
        let declared: BTreeMap<String, Declared> = resources(text)
            .into_iter()
            .map(|(symbol, kind, _, block)| {
                let name = field(&block, "name").unwrap_or_default().to_owned();
                let parent = field(&block, "parent").map(str::to_owned);
                (symbol, Declared { kind, name, parent })
            })
            .collect();
        // A module parameter's value in main.bicep, a main.bicep variable's literal in place of its name.
        let bound = |param: &str| -> String {
            let value = field(params, param).unwrap_or_else(|| panic!("{module}: no parameter {param}"));
            let literal = main
                .lines()
                .find_map(|line| line.strip_prefix(&format!("var {value} = '")))
                .map(|rest| format!("'{}", rest));
            literal.unwrap_or_else(|| value.to_owned())
        };
        let name_of = |expression: &str| -> String {
            if let Some(literal) = expression.strip_prefix('\'') {
                return literal.trim_end_matches('\'').to_owned();
            }
            let value = bound(expression);
            value.trim_matches('\'').to_owned()
        };
        let scope_of = |symbol: &str| -> Vec<String> {
            let mut chain = Vec::new();
            let mut current = symbol.to_owned();
            loop {
                let resource = &declared[&current];
                let Some(parent) = &resource.parent else {
                    let existing = text.contains(&format!("resource {current} '{}@", resource.kind))
                        && text.lines().any(|line| {
                            line.starts_with(&format!("resource {current} ")) && line.contains(" existing ")
                        });
                    let root = if existing {
                        // An existing resource named by a module parameter: what main.bicep passes names it.
                        let value = bound(&resource.name);
                        match value.strip_suffix(".outputs.name") {
                            Some(other) => {
                                let output = files[&modules[other].0]
                                    .lines()
                                    .find_map(|line| line.strip_prefix("output name string = "))
                                    .unwrap();
                                format!("{other}.{}", output.trim_end_matches(".name"))
                            }
                            None => value,
                        }
                    } else {
                        format!("{module}.{current}")
                    };
                    chain.push(root);
                    break;
                };
                let leaf = resource.kind.rsplit('/').next().unwrap();
                chain.push(format!("{leaf}/{}", name_of(&resource.name)));
                current = parent.clone();
            }
            chain.reverse();
            chain
        };
        for (symbol, kind, conditional, block) in resources(text) {
            let (role, scope) = match kind.as_str() {
                "Microsoft.Authorization/roleAssignments" => {
                    let role_var = field(&block, "roleDefinitionId")
                        .unwrap()
                        .rsplit(", ")
                        .next()
                        .unwrap()
                        .trim_end_matches(')');
                    (role_var.to_owned(), scope_of(field(&block, "scope").unwrap()))
                }
                "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments" => {
                    let definition = field(&block, "roleDefinitionId").unwrap();
                    let role_var = definition.rsplit("${").next().unwrap().trim_end_matches("}'");
                    let scope = field(&block, "scope").unwrap().trim_end_matches(".id");
                    (role_var.to_owned(), scope_of(scope))
                }
                _ => continue,
            };
            let principal_param = field(&block, "principalId").unwrap();
            let principal = match bound(principal_param).as_str() {
                "identity.outputs.principalId" => "app".to_owned(),
                "events.outputs.principalId" => "topic".to_owned(),
                other => other.to_owned(),
            };
            found.push(Assignment {
                file: file.clone(),
                symbol,
                principal,
                role: var_literal(text, &role),
                scope,
                conditional,
            });
        }
    }
    found
}

/// Whether `on` lies at or under `scope`: a role granted on a resource reaches its children, never its parent.
fn within(on: &[&str], scope: &[String]) -> bool {
    scope.len() <= on.len() && scope.iter().zip(on).all(|(granted, needed)| granted == needed)
}

/// The operations no unconditional role assignment to the app's identity allows where it is needed, with why.
fn uncovered(files: &BTreeMap<String, String>, fixture: &RoleFixture) -> Vec<String> {
    let granted = assignments(files);
    OPERATIONS
        .iter()
        .filter(|operation| {
            !granted.iter().any(|assignment| {
                assignment.principal == "app"
                    && !assignment.conditional
                    && within(operation.on, &assignment.scope)
                    && fixture.allows(&assignment.role, &operation.needs)
            })
        })
        .map(|operation| {
            format!(
                "{} ({:?} on {})",
                operation.what,
                operation.needs,
                operation.on.join("/")
            )
        })
        .collect()
}

#[test]
fn every_operation_the_app_performs_is_allowed_by_a_role_granted_where_it_is_needed() {
    let fixture = RoleFixture::load();
    let files = templates();
    let missing = uncovered(&files, &fixture);
    assert!(
        missing.is_empty(),
        "not allowed by any role granted to the app:\n{}",
        missing.join("\n")
    );

    // The app is granted nothing the operations do not use, and nothing wider than where they need it.
    let granted = assignments(&files);
    for assignment in granted.iter().filter(|a| a.principal == "app") {
        let used = OPERATIONS.iter().any(|operation| {
            within(operation.on, &assignment.scope) && fixture.allows(&assignment.role, &operation.needs)
        });
        assert!(
            used,
            "{} ({}) grants the app what no operation needs: {assignment:?}",
            assignment.symbol, assignment.file
        );
    }
    let recordings_writer = granted
        .iter()
        .find(|a| a.principal == "app" && fixture.name_of(&a.role) == Some("Storage Blob Data Contributor"))
        .unwrap();
    assert_eq!(
        recordings_writer.scope, ARCHIVE_RECORDINGS,
        "the app may write beyond the recordings container"
    );

    // The topic's identity writes dead-letters into its container, and only there.
    let topic: Vec<&Assignment> = granted.iter().filter(|a| a.principal == "topic").collect();
    assert_eq!(topic.len(), 1, "{topic:?}");
    assert_eq!(
        topic[0].scope,
        ["archive.account", "blobServices/default", "containers/deadletter"]
    );
    assert!(fixture.allows(&topic[0].role, &Permission::DataAction(BLOB_WRITE)));

    // The deploying user gets data access only when asked (GRANT_DEPLOYER_DATA_ACCESS, false by default).
    let deployer: Vec<&Assignment> = granted
        .iter()
        .filter(|a| a.principal == "deployerPrincipalId")
        .collect();
    assert!(
        deployer.len() >= 2 && deployer.iter().all(|a| a.conditional),
        "{deployer:?}"
    );
    let main = &files["infra/main.bicep"];
    assert!(main.contains("param grantDeployerDataAccess bool = false"));
    assert!(main.contains("var deployerPrincipalId = grantDeployerDataAccess ? principalId : ''"));
    assert!(read("infra/main.parameters.json").contains("${GRANT_DEPLOYER_DATA_ACCESS=false}"));
}

#[test]
fn the_role_check_fails_when_a_role_is_removed_narrowed_or_weakened() {
    let fixture = RoleFixture::load();
    let archive = "infra/modules/archive.bicep";
    let change = |edit: &dyn Fn(&str) -> String| {
        let mut files = templates();
        let text = edit(&files[archive]);
        assert_ne!(text, files[archive], "the edit changed nothing");
        files.insert(archive.to_owned(), text);
        uncovered(&files, &fixture)
    };
    let user_delegation_key = "Get User Delegation Key";

    // Without the Storage Blob Delegator role, read links cannot be signed.
    let removed = change(&|text| {
        let at = text.find("resource appDelegator ").unwrap();
        let block = block_at(text, at);
        text.replacen(
            &format!("{}{block}", &text[at..at + text[at..].find('{').unwrap()]),
            "",
            1,
        )
    });
    assert!(
        removed.iter().any(|m| m.starts_with(user_delegation_key)),
        "{removed:?}"
    );

    // Granted on the recordings container instead of the account, it cannot either.
    let narrowed = change(&|text| {
        let at = text.find("resource appDelegator ").unwrap();
        let block = block_at(text, at);
        text.replacen(block, &block.replacen("scope: account", "scope: recordings", 1), 1)
    });
    assert_eq!(narrowed.len(), 1, "{narrowed:?}");
    assert!(narrowed[0].starts_with(user_delegation_key), "{narrowed:?}");

    // A reader's role on the recordings: no block, commit or delete.
    let weakened = change(&|text| {
        text.replace(
            "var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor",
            "var storageBlobDataContributor = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1' // Storage Blob Data Reader",
        )
    });
    for operation in ["Put Block:", "Put Block List", "Delete Blob"] {
        assert!(
            weakened.iter().any(|m| m.starts_with(operation)),
            "{operation}: {weakened:?}"
        );
    }
    assert!(
        !weakened.iter().any(|m| m.starts_with("Get Blob Properties")),
        "{weakened:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The recordings container indexes what the store's queries filter on, and nothing else.

/// The indexing policy's included and excluded paths of a Cosmos DB container in cosmos.bicep; `None` for a
/// container without a policy (Cosmos DB's default indexes every path).
fn indexing_policy(cosmos: &str, container: &str) -> Option<(Vec<String>, Vec<String>)> {
    let block = cosmos
        .match_indices("'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@")
        .map(|(at, _)| block_at(cosmos, at))
        .find(|block| block.contains(&format!("id: '{container}'")))
        .unwrap_or_else(|| panic!("cosmos.bicep makes no container {container}"));
    let policy_at = block.find("indexingPolicy:")?;
    let policy = block_at(block, policy_at);
    let paths = |key: &str| -> Vec<String> {
        let list = enclosed(policy, policy.find(key).unwrap(), b'[', b']');
        list.split("path: '")
            .skip(1)
            .map(|p| p.split('\'').next().unwrap().to_owned())
            .collect()
    };
    Some((paths("includedPaths"), paths("excludedPaths")))
}

/// The property paths a query filters on: `(path, existence)`, where `existence` marks an IS_DEFINED test. `c.a.b`
/// is `/a/b`; an alias of `FROM x IN c.list` stands for `/list/[]`.
fn query_paths(sql: &str) -> Vec<(String, bool)> {
    let mut aliases = BTreeMap::from([("c".to_owned(), String::new())]);
    let words: Vec<&str> = sql.split_whitespace().collect();
    for window in words.windows(4) {
        if (window[0] == "FROM" || window[0] == "JOIN") && window[2] == "IN" {
            let source = window[3].trim_end_matches(')');
            let (alias, rest) = source.split_once('.').unwrap();
            aliases.insert(
                window[1].to_owned(),
                format!("{}/{}/[]", aliases[alias], rest.replace('.', "/")),
            );
        }
    }
    let mut found = Vec::new();
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < sql.len() {
        let starts_word =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b'.');
        let end = sql[i..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .map_or(sql.len(), |n| i + n);
        let token = &sql[i..end];
        if starts_word && token.contains('.') {
            let (alias, rest) = token.split_once('.').unwrap();
            let source_of_alias = sql[..i].trim_end().ends_with(" IN");
            if let (Some(base), false) = (aliases.get(alias), source_of_alias) {
                let path = format!("{base}/{}", rest.replace('.', "/"));
                let existence = sql[..i].trim_end().ends_with("IS_DEFINED(");
                found.push((path, existence));
            }
        }
        i = if end > i { end } else { i + 1 };
    }
    found
}

/// Whether the policy indexes the scalar at `path` (Cosmos DB applies the most precise matching path; `/?` beats
/// `/*` on the same prefix).
fn indexes_value(included: &[String], excluded: &[String], path: &str) -> bool {
    let precision = |pattern: &str| -> Option<usize> {
        if let Some(prefix) = pattern.strip_suffix("/?") {
            (prefix == path).then_some(prefix.len() * 2 + 1)
        } else {
            let prefix = pattern.strip_suffix("/*").unwrap();
            (path.starts_with(&format!("{prefix}/")) || prefix.is_empty()).then_some(prefix.len() * 2)
        }
    };
    let best = |patterns: &[String]| patterns.iter().filter_map(|p| precision(p)).max();
    match (best(included), best(excluded)) {
        (Some(i), Some(e)) => i > e,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Every (query, path) the recordings container's policy does not serve: a value a query compares must be indexed;
/// an IS_DEFINED test needs an indexed path at or under the property tested.
fn unindexed(included: &[String], excluded: &[String]) -> Vec<String> {
    let mut missing = Vec::new();
    for query in queries::all()
        .into_iter()
        .filter(|q| q.container == Container::Recordings)
    {
        for (path, existence) in query_paths(&query.sql) {
            let served = indexes_value(included, excluded, &path)
                || (existence && included.iter().any(|p| p != "/*" && p.starts_with(&format!("{path}/"))));
            if !served {
                missing.push(format!("{}: {path}", query.name));
            }
        }
    }
    missing
}

#[test]
fn every_query_the_store_sends_filters_on_paths_the_container_indexes() {
    let cosmos = read("infra/modules/cosmos.bicep");
    let (included, excluded) =
        indexing_policy(&cosmos, DEFAULT_CONTAINER).expect("the recordings container indexes everything");
    assert!(
        excluded.contains(&"/*".to_owned()),
        "the recordings container indexes every path: {excluded:?}"
    );
    let missing = unindexed(&included, &excluded);
    assert!(
        missing.is_empty(),
        "queries filter on paths the container does not index:\n{}",
        missing.join("\n")
    );

    // Every path indexed is one a query filters on, or the partition key (which Cosmos DB does not index by
    // itself): none costs writes for nothing.
    let queried: BTreeSet<String> = queries::all()
        .iter()
        .filter(|q| q.container == Container::Recordings)
        .flat_map(|q| query_paths(&q.sql))
        .map(|(path, _)| path)
        .collect();
    for path in &included {
        let scalar = path.strip_suffix("/?").unwrap_or(path);
        assert!(
            queried.contains(scalar) || scalar == RECORDINGS_PARTITION_KEY,
            "{path} is indexed, but no query filters on it"
        );
    }
    assert!(included.contains(&format!("{RECORDINGS_PARTITION_KEY}/?")));

    // The quarantine keeps Cosmos DB's default policy (it is queried by payload text): every path indexed.
    assert!(indexing_policy(&cosmos, DEFAULT_QUARANTINE_CONTAINER).is_none());
    assert!(queries::all().iter().any(|q| q.container == Container::Quarantine));
}

#[test]
fn the_index_check_reads_each_querys_paths_and_fails_for_a_path_left_out() {
    let paths = |sql: &str| {
        query_paths(sql)
            .into_iter()
            .map(|(p, e)| format!("{p}{}", if e { "?" } else { "" }))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        paths("SELECT * FROM c WHERE IS_DEFINED(c.chunks) AND c.serverCallId = @serverCallId"),
        ["/chunks?", "/serverCallId"]
    );
    assert_eq!(
        paths(
            "SELECT * FROM c WHERE EXISTS(SELECT VALUE ch FROM ch IN c.chunks WHERE ch.archive.state = 'pending' OR ch.archive.retryable = true)"
        ),
        ["/chunks/[]/archive/state", "/chunks/[]/archive/retryable"]
    );
    // A query that orders by a chunk's time, say, names that path too.
    assert_eq!(
        paths("SELECT * FROM c JOIN ch IN c.chunks WHERE ch.announcedAt < @before ORDER BY c._ts"),
        ["/chunks/[]/announcedAt", "/_ts"]
    );

    let cosmos = read("infra/modules/cosmos.bicep");
    let (included, excluded) = indexing_policy(&cosmos, DEFAULT_CONTAINER).unwrap();
    for left_out in [
        "/serverCallId/?",
        "/chunks/[]/archive/state/?",
        "/chunks/[]/archive/retryable/?",
    ] {
        let fewer: Vec<String> = included.iter().filter(|p| *p != left_out).cloned().collect();
        assert!(
            !unindexed(&fewer, &excluded).is_empty(),
            "leaving {left_out} out went unnoticed"
        );
    }
    assert!(!indexes_value(&included, &excluded, "/chunks/[]/contentLocation"));
    assert!(indexes_value(&["/*".to_owned()], &[], "/anything/at/all"));
}

// ---------------------------------------------------------------------------------------------------------------

#[test]
fn the_readme_says_how_the_app_signs_read_links_and_what_its_acs_role_allows() {
    let readme = read("README.md");
    assert!(
        !readme.contains("Blob Data Contributor role allows it"),
        "the README still says a container-scoped Blob Data Contributor role can make user delegation keys"
    );
    assert!(readme.contains("Storage Blob Delegator"));
    assert!(
        readme.contains("list the resource's access keys"),
        "the README does not say what Contributor on ACS allows"
    );
}
