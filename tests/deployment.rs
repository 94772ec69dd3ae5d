//! Ties the azd template (`azure.yaml`, `infra/`) to the code: the settings it gives the app are ones the handler
//! reads, its names are the code's, its roles are the built-in ones it means, and no key appears. The templates are
//! read as text: `cargo test` needs neither Python nor a Bicep compiler (`.ci/check-deployment` parses them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use acs_recording_handler::config::{
    DEFAULT_ARCHIVE_CONTAINER, DEFAULT_CONTAINER, DEFAULT_DATABASE, DEFAULT_QUARANTINE_CONTAINER, SETTINGS,
};
use acs_recording_handler::store::cosmos::{QUARANTINE_PARTITION_KEY, RECORDINGS_PARTITION_KEY};

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

/// The built-in roles the templates assign, by name, with their ids (Azure's built-in role reference; the Cosmos DB
/// one is the account's built-in data-plane role).
const ROLES: &[(&str, &str)] = &[
    ("Storage Blob Data Owner", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"),
    ("Storage Blob Data Contributor", "ba92f5b4-2d11-453d-a403-e96b0029c9fe"),
    ("Storage Queue Data Contributor", "974c5e8b-45b9-4653-ba55-5f855dd0fb88"),
    ("Monitoring Metrics Publisher", "3913510d-42f4-4e42-8a64-420c390055eb"),
    ("Contributor", "b24988ac-6180-42a0-ab88-20f7382dd24c"),
    (
        "Cosmos DB Built-in Data Contributor",
        "00000000-0000-0000-0000-000000000002",
    ),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: impl AsRef<Path>) -> String {
    let path = root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.bicep` file under `infra/`, with its text.
fn templates() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, found: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "bicep") {
                let text = std::fs::read_to_string(&path).unwrap();
                found.push((path, text));
            }
        }
    }
    let mut found = Vec::new();
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
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
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
    files.push((root().join("azure.yaml"), read("azure.yaml")));
    files.push((
        root().join("infra/main.parameters.json"),
        read("infra/main.parameters.json"),
    ));
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
            assert!(!lower.contains(forbidden), "{} contains {forbidden}", path.display());
        }
    }
    let storage = read("infra/modules/storage.bicep");
    assert!(storage.contains("allowSharedKeyAccess: false"), "shared keys are on");
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
    let (queues, triggers) = function_bindings();
    let main = read("infra/main.bicep");
    let created: BTreeSet<String> = list_after(&main, "queues:").into_iter().collect();
    assert_eq!(
        created, queues,
        "the queues the templates create (left) and the bindings use (right)"
    );

    let events = read("infra/modules/events.bicep");
    let target = events.split("/functions/").nth(1).expect("no function endpoint");
    let target = &target[..target.find('\'').unwrap()];
    assert!(
        triggers
            .iter()
            .any(|(name, kind)| name == target && kind == "eventGridTrigger"),
        "the subscription delivers to {target}, which is not an Event Grid function: {triggers:?}"
    );
    assert!(events.contains("'Microsoft.Communication.RecordingFileStatusUpdated'"));
    assert!(events.contains("maxDeliveryAttempts: 30") && events.contains("eventTimeToLiveInMinutes: 1440"));
    assert!(events.contains("blobContainerName: 'deadletter'"));

    let archive = main
        .split("module archiveStorage")
        .nth(1)
        .expect("no archive storage module");
    let archive_containers = list_after(archive, "containers:");
    assert!(
        archive_containers.contains(&DEFAULT_ARCHIVE_CONTAINER.to_owned()),
        "{archive_containers:?}"
    );
    assert!(
        archive_containers.contains(&"deadletter".to_owned()),
        "{archive_containers:?}"
    );
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
                let Some((name, _)) = ROLES.iter().find(|(_, id)| *id == word) else {
                    panic!(
                        "{}: {word} is not a built-in role the templates mean to assign",
                        path.display()
                    );
                };
                // Each id is declared once, beside the role's name.
                assert!(line.contains(&format!("// {name}")), "{}: {line}", path.display());
                seen.insert(*name);
            }
        }
    }
    let all: BTreeSet<&str> = ROLES.iter().map(|(name, _)| *name).collect();
    assert_eq!(seen, all, "roles assigned (left) and expected (right)");
}

#[test]
fn the_package_leaves_the_templates_and_azds_environments_out() {
    let ignored: BTreeSet<String> = read(".funcignore")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for path in ["infra/", "azure.yaml", ".azure/", "scripts/"] {
        assert!(ignored.contains(path), ".funcignore does not leave out {path}");
    }
    let azure_yaml = read("azure.yaml");
    assert!(azure_yaml.contains("language: custom") && azure_yaml.contains("host: function"));
    assert!(azure_yaml.contains("dist: target/azd-package"));
    assert!(azure_yaml.contains("run: scripts/azd-package.sh"));
}
