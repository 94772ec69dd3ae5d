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

mod alerts;
mod hooks;
mod index;
mod package;
mod roles;

use hooks::{World, hook};
use roles::RoleFixture;

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
fn every_setting_the_templates_give_the_app_is_one_the_handler_reads_and_the_docs_document() {
    let documented = read("docs/SETTINGS.md");
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
            documented.contains(&format!("`{name}`")),
            "docs/SETTINGS.md does not document {name}"
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

#[test]
fn the_docs_say_how_the_app_signs_read_links_and_what_its_acs_role_allows() {
    let docs = ["docs/API.md", "docs/ARCHIVE.md", "docs/DEPLOYMENT.md"]
        .map(read)
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        !docs.contains("Blob Data Contributor role allows it"),
        "the docs still say a container-scoped Blob Data Contributor role can make user delegation keys"
    );
    assert!(docs.contains("Storage Blob Delegator"));
    assert!(
        docs.contains("list the resource's access keys"),
        "the docs do not say what Contributor on ACS allows"
    );
}

/// Writes a file with a Unix mode (ignored elsewhere).
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
