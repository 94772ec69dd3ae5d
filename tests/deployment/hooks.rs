//! The hooks' logic (scripts/azd_hooks.py), run through scripts/hook.sh with stand-ins for `az` and `azd`
//! (tests/fixtures/fake_azure.py) that record every call and refuse the first attempts.

use super::*;

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
    "HANDLER_PACKAGE_DIR",
    "FAKE_AZURE_STATE",
];

const SUBSCRIPTION: &str = "11111111-1111-1111-1111-111111111111";
const ACS_SUBSCRIPTION: &str = "22222222-2222-2222-2222-222222222222";
const ACS_ID: &str = "/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/rg-calls/providers/\
                      Microsoft.Communication/communicationServices/acs-prod";

/// What a hook finished with.
pub(super) struct Ran {
    pub(super) status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    pub(super) fn stdout(&self) -> &str {
        &self.stdout
    }

    pub(super) fn stderr(&self) -> &str {
        &self.stderr
    }

    pub(super) fn text(&self) -> String {
        format!(
            "exit: {}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A folder with stand-ins for `az` and `azd` that answer from `state.json` (tests/fixtures/fake_azure.py), and the
/// azd environment the hooks see.
pub(super) struct World {
    dir: Option<tempfile::TempDir>,
    env: BTreeMap<String, String>,
}

impl World {
    /// No stand-ins: for the hooks that do not reach Azure.
    pub(super) fn none() -> Self {
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

    pub(super) fn with_env(mut self, name: &str, value: &str) -> Self {
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
pub(super) fn hook(args: &[&str], world: &World) -> Ran {
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
