//! Least privilege: every Azure operation the app performs, the permission Azure names for it, and a role the
//! templates grant where the operation happens that allows it (Azure's role definitions in
//! tests/fixtures/azure-roles.json).

use super::*;

/// Azure's built-in role definitions, as tests/fixtures/azure-roles.json keeps them.
pub(super) struct RoleFixture {
    rbac: Value,
    cosmos: Value,
}

impl RoleFixture {
    pub(super) fn load() -> Self {
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

    pub(super) fn name_of(&self, id: &str) -> Option<&str> {
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
