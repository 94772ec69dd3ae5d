"""The `postdeploy` hook: subscribes the RecordingEvent function to the ACS resource's recording events, on the system
topic the template provisioned.

Event Grid checks an Azure Functions destination when the subscription is created or updated, and the function exists
only once the deployed code has been synced (seconds to minutes after `azd deploy`). So the hook creates or updates
the subscription (one idempotent PUT), waits for Event Grid to accept or refuse it, and tries again until the deadline
(SUBSCRIBE_TIMEOUT_SECONDS, 900 by default). It never provisions: later `azd provision` runs leave the subscription,
which the template does not declare, as it is.
"""

import os
import sys
import time

import azure_cli

API = "2022-06-15"
# One subscription per azd environment (`recording-event-ENV`): environments that share an ACS resource, and so its
# one system topic, never replace each other's.
SUBSCRIPTION_PREFIX = "recording-event"
FUNCTION = "RecordingEvent"
EVENT_TYPE = "Microsoft.Communication.RecordingFileStatusUpdated"
DEAD_LETTER_CONTAINER = "deadletter"
# Event Grid's longest retry: 30 attempts over 24 hours, then the dead-letter container.
MAX_DELIVERY_ATTEMPTS = 30
EVENT_TTL_MINUTES = 1440

DEFAULT_TIMEOUT_SECONDS = 900
DEFAULT_RETRY_SECONDS = 20
# How often a subscription Event Grid is still creating is looked at again (SUBSCRIBE_POLL_SECONDS).
DEFAULT_POLL_SECONDS = 5

# The provisioning outputs the hook reads (infra/main.bicep); azd puts them in the environment.
OUTPUTS = ["EVENT_GRID_SYSTEM_TOPIC_ID", "FUNCTION_APP_ID", "ARCHIVE_STORAGE_ACCOUNT_ID"]


def postdeploy():
    missing = [name for name in OUTPUTS if not os.environ.get(name)]
    if missing:
        print(f"azd postdeploy: {', '.join(missing)} not in the environment: run `azd provision` first",
              file=sys.stderr)
        return 1
    topic = os.environ["EVENT_GRID_SYSTEM_TOPIC_ID"]
    name = f"{SUBSCRIPTION_PREFIX}-{os.environ.get('AZURE_ENV_NAME', '')}".rstrip("-")
    url = f"{topic}/eventSubscriptions/{name}?api-version={API}"
    body = subscription_body(os.environ["FUNCTION_APP_ID"], os.environ["ARCHIVE_STORAGE_ACCOUNT_ID"])
    timeout = seconds("SUBSCRIBE_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
    retry = seconds("SUBSCRIBE_RETRY_SECONDS", DEFAULT_RETRY_SECONDS)
    poll = seconds("SUBSCRIBE_POLL_SECONDS", DEFAULT_POLL_SECONDS)
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        print(f"azd postdeploy: subscribing {FUNCTION} to {EVENT_TYPE} (attempt {attempt})", flush=True)
        reason = subscribe(url, body, deadline, poll)
        if reason is None:
            print(f"azd postdeploy: Event Grid delivers {EVENT_TYPE} to {FUNCTION}")
            return 0
        if time.monotonic() + retry > deadline:
            print(
                f"azd postdeploy: Event Grid did not accept {FUNCTION} within {timeout} s: {reason}\n"
                "  The code is deployed, but no recording event reaches it yet. Once the function app lists "
                f"{FUNCTION} (`az functionapp function list`), run `azd hooks run postdeploy`; raise "
                "SUBSCRIBE_TIMEOUT_SECONDS for a slower sync.",
                file=sys.stderr,
            )
            return 1
        print(f"azd postdeploy: not yet ({reason}); trying again in {retry} s", flush=True)
        time.sleep(retry)


def subscribe(url, body, deadline, poll):
    """One PUT of the subscription, then its provisioning state until it is final or the deadline passes: None when
    Event Grid accepted it, else why not."""
    try:
        answer = azure_cli.az_rest("put", url, body) or {}
    except azure_cli.CommandFailed as error:
        return error.detail
    while True:
        state = answer.get("properties", {}).get("provisioningState", "")
        if state == "Succeeded":
            return None
        if state in ("Failed", "Canceled"):
            return f"the subscription's provisioning state is {state}"
        if time.monotonic() + poll > deadline:
            return f"the subscription is still {state or 'being created'}"
        time.sleep(poll)
        try:
            answer = azure_cli.az_rest("get", url, quiet=True) or {}
        except azure_cli.CommandFailed as error:
            return error.detail


def subscription_body(function_app_id, archive_account_id):
    """The event subscription, as Azure Resource Manager takes it: one event per delivery to RecordingEvent, only
    recording events, the longest retry, and dead-lettering into the archive account's `deadletter` container with the
    topic's own identity (no key)."""
    return {
        "properties": {
            "destination": {
                "endpointType": "AzureFunction",
                "properties": {
                    "resourceId": f"{function_app_id}/functions/{FUNCTION}",
                    "maxEventsPerBatch": 1,
                    "preferredBatchSizeInKilobytes": 64,
                },
            },
            "eventDeliverySchema": "EventGridSchema",
            "filter": {"includedEventTypes": [EVENT_TYPE]},
            "retryPolicy": {"maxDeliveryAttempts": MAX_DELIVERY_ATTEMPTS, "eventTimeToLiveInMinutes": EVENT_TTL_MINUTES},
            "deadLetterWithResourceIdentity": {
                "identity": {"type": "SystemAssigned"},
                "deadLetterDestination": {
                    "endpointType": "StorageBlob",
                    "properties": {"resourceId": archive_account_id, "blobContainerName": DEAD_LETTER_CONTAINER},
                },
            },
        }
    }


def seconds(variable, default):
    value = os.environ.get(variable, "")
    try:
        return max(0, int(value)) if value.strip() else default
    except ValueError:
        print(f"azd postdeploy: {variable}={value!r} is not a number of seconds; using {default}", file=sys.stderr)
        return default
