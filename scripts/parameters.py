"""The `preprovision` hook: refuses parameters Azure would reject before anything is created, makes sure the archive's
resource group exists, and finds the ACS resource's existing Event Grid system topic.

The rules come from the template itself: infra/main.parameters.json names each parameter's azd environment variable
and default, and the decorators of infra/main.bicep (`@allowed`, `@minValue`, `@maxValue`, `@minLength`,
`@maxLength`) bound it. What a decorator cannot say is checked here too: Cosmos DB throughput, the ACS resource id's
shape, and the order of the archive's lifecycle steps.
"""

import json
import os
import re
import sys
from pathlib import Path

import azure_cli

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "main.bicep"
PARAMETERS = ROOT / "infra" / "main.parameters.json"

EVENT_GRID_API = "2022-06-15"

# An ACS resource id, as Azure Resource Manager spells it (case-insensitive); a resource group name is 1 to 90
# characters, a Communication Services name 1 to 63 of letters, digits, `-` and `_`.
ACS_RESOURCE_ID = re.compile(
    r"^/subscriptions/(?P<subscription>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"/resourceGroups/(?P<group>[-\w.()]{0,89}[-\w()])"
    r"/providers/Microsoft\.Communication/communicationServices/(?P<name>[-\w]{1,63})$",
    re.IGNORECASE,
)

# Cosmos DB throughput: 0 for serverless, else provisioned RU/s from 400, in steps of 100.
MIN_THROUGHPUT = 400
THROUGHPUT_STEP = 100

# The archive's lifecycle steps, in the order they must happen; 0 leaves a step out.
LIFECYCLE_STEPS = ["archiveCoolAfterDays", "archiveColdAfterDays", "archiveArchiveAfterDays", "archiveDeleteAfterDays"]


def preprovision():
    values = parameter_values()
    problems = check(values)
    if problems:
        print("azd preprovision: these parameters would be refused by Azure; nothing was created:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print("azd preprovision: parameters checked")
    try:
        signed_in()
        ensure_archive_group(values)
        find_system_topic(values)
    except azure_cli.CommandFailed as error:
        print(f"azd preprovision: {error}", file=sys.stderr)
        return 1
    return 0


def parameter_values():
    """Each Bicep parameter that main.parameters.json fills from the azd environment: (environment variable, value),
    the value being the variable's, or the file's default when it is unset."""
    values = {}
    for name, entry in json.loads(PARAMETERS.read_text())["parameters"].items():
        match = re.fullmatch(r"\$\{(\w+)(?:=([^}]*))?\}", str(entry.get("value", "")))
        if match:
            variable, default = match.group(1), match.group(2) or ""
            values[name] = (variable, os.environ.get(variable, default))
    return values


def declarations():
    """Every `param` of main.bicep: name -> (type, {decorator: argument text})."""
    params = {}
    decorators = {}
    text = TEMPLATE.read_text()
    position = 0
    while position < len(text):
        line_end = text.find("\n", position)
        line_end = len(text) if line_end < 0 else line_end
        line = text[position:line_end].strip()
        if line.startswith("@"):
            name = re.match(r"@(\w+)", line).group(1)
            start = text.index("(", position)
            end = closing_parenthesis(text, start)
            decorators[name] = text[start + 1:end].strip()
            position = text.find("\n", end)
            position = len(text) if position < 0 else position + 1
            continue
        declared = re.match(r"param\s+(\w+)\s+(\w+)", line)
        if declared:
            params[declared.group(1)] = (declared.group(2), decorators)
        if line and not line.startswith("//"):
            decorators = {}
        position = line_end + 1
    return params


def closing_parenthesis(text, start):
    """The index of the `)` that closes the `(` at `start`, skipping Bicep's single-quoted strings."""
    depth = 0
    index = start
    while index < len(text):
        character = text[index]
        if character == "'":
            index += 1
            while text[index] != "'":
                index += 2 if text[index] == "\\" else 1
        elif character == "(":
            depth += 1
        elif character == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise ValueError("unbalanced parentheses in main.bicep")


def check(values):
    """Every problem with the values, each naming its environment variable."""
    problems = []
    params = declarations()
    numbers = {}
    for name, (variable, value) in sorted(values.items()):
        kind, decorators = params.get(name, ("string", {}))
        problem, number = check_declared(kind, decorators, value)
        if problem and not value:
            problems.append(f"{variable} is not set ({problem}): `azd env set {variable} VALUE`")
        elif problem:
            problems.append(f"{variable}={value!r}: {problem}")
        numbers[name] = number
    acs = values.get("acsResourceId", ("ACS_RESOURCE_ID", ""))
    if not acs[1]:
        problems.append(f"{acs[0]} is not set: `azd env set {acs[0]} /subscriptions/…/communicationServices/NAME`")
    elif not ACS_RESOURCE_ID.match(acs[1]):
        problems.append(
            f"{acs[0]}={acs[1]!r}: not an ACS resource id "
            "(/subscriptions/GUID/resourceGroups/GROUP/providers/Microsoft.Communication/communicationServices/NAME)"
        )
    throughput = numbers.get("cosmosThroughput")
    if throughput is not None and throughput != 0 and (throughput < MIN_THROUGHPUT or throughput % THROUGHPUT_STEP):
        variable = values["cosmosThroughput"][0]
        problems.append(
            f"{variable}={throughput}: 0 for serverless, else {MIN_THROUGHPUT} RU/s or more in steps of {THROUGHPUT_STEP}"
        )
    steps = [(values[name][0], numbers[name]) for name in LIFECYCLE_STEPS if numbers.get(name)]
    for (earlier, before), (later, after) in zip(steps, steps[1:]):
        if after <= before:
            problems.append(f"{later}={after}: must come after {earlier}={before} (days since the file was archived)")
    return problems


def check_declared(kind, decorators, value):
    """A value against its Bicep type and decorators: (problem or None, the number for an int)."""
    number = None
    if kind == "int":
        if not re.fullmatch(r"-?\d+", value.strip()):
            return "not a whole number", None
        number = int(value)
        if "minValue" in decorators and number < int(decorators["minValue"]):
            return f"at least {decorators['minValue']}", number
        if "maxValue" in decorators and number > int(decorators["maxValue"]):
            return f"at most {decorators['maxValue']}", number
    elif kind == "bool":
        if value.strip().lower() not in ("true", "false"):
            return "true or false", None
    else:
        if "minLength" in decorators and len(value) < int(decorators["minLength"]):
            return f"at least {decorators['minLength']} characters", None
        if "maxLength" in decorators and len(value) > int(decorators["maxLength"]):
            return f"at most {decorators['maxLength']} characters", None
    if "allowed" in decorators:
        allowed = re.findall(r"'([^']*)'", decorators["allowed"])
        if value not in allowed and not (kind == "int" and str(number) in allowed):
            shown = ", ".join(repr(item) for item in allowed)
            return f"one of {shown}", number
    return None, number


def signed_in():
    try:
        azure_cli.az_json(["account", "show"], quiet=True)
    except azure_cli.CommandFailed as error:
        raise azure_cli.CommandFailed(["az", "account", "show"], "sign in with `az login` (" + error.detail + ")")


def ensure_archive_group(values):
    """The archive's resource group, made here when it is missing: the template deploys into it but does not create it,
    so `azd down`, which deletes the resource groups the template created, leaves it and the recordings in it."""
    subscription = os.environ.get("AZURE_SUBSCRIPTION_ID", "")
    group = values.get("archiveResourceGroup", ("ARCHIVE_RESOURCE_GROUP", ""))[1]
    group = group or f"rg-{os.environ.get('AZURE_ENV_NAME', '')}-archive"
    exists = azure_cli.az_json(["group", "exists", "--name", group, "--subscription", subscription])
    if exists:
        print(f"azd preprovision: the archive's resource group {group} exists")
        return
    location = values.get("location", ("AZURE_LOCATION", ""))[1]
    azure_cli.az_json([
        "group", "create", "--name", group, "--location", location, "--subscription", subscription,
        "--tags", f"acs-recording-archive={os.environ.get('AZURE_ENV_NAME', '')}",
    ])
    print(f"azd preprovision: created the archive's resource group {group} (azd down leaves it)")


def find_system_topic(values):
    """An ACS resource has at most one Event Grid system topic: when it has one and EVENT_GRID_SYSTEM_TOPIC is unset,
    the environment gets its name and resource group, and the template uses it."""
    topic_variable = values.get("eventGridSystemTopicName", ("EVENT_GRID_SYSTEM_TOPIC", ""))
    group_variable = values.get("eventGridSystemTopicResourceGroup", ("EVENT_GRID_SYSTEM_TOPIC_RESOURCE_GROUP", ""))
    if topic_variable[1]:
        print(f"azd preprovision: using the system topic {topic_variable[1]} ({topic_variable[0]})")
        return
    acs = values["acsResourceId"][1]
    subscription = ACS_RESOURCE_ID.match(acs).group("subscription")
    url = f"/subscriptions/{subscription}/providers/Microsoft.EventGrid/systemTopics?api-version={EVENT_GRID_API}"
    while url:
        page = azure_cli.az_rest("get", url) or {}
        for topic in page.get("value", []):
            if str(topic.get("properties", {}).get("source", "")).lower() == acs.lower():
                group = topic["id"].split("/")[4]
                azure_cli.azd_env_set(topic_variable[0], topic["name"])
                azure_cli.azd_env_set(group_variable[0], group)
                print(f"azd preprovision: the ACS resource already has the system topic {topic['name']} "
                      f"(resource group {group}); the template uses it")
                return
        url = page.get("nextLink")
    print("azd preprovision: the ACS resource has no system topic yet; the template creates one")
