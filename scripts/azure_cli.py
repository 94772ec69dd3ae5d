"""Runs the Azure CLI (`az`) and azd for the hooks: every call on one line of the hook's output, JSON answers parsed,
a failure kept with what `az` said."""

import json
import os
import shutil
import subprocess
import tempfile


class CommandFailed(Exception):
    """A command that exited non-zero; `detail` is the last line it wrote to stderr."""

    def __init__(self, command, detail):
        super().__init__(f"`{' '.join(command)}` failed: {detail}")
        self.detail = detail


def executable(name):
    """`name` as the shell would find it (az is az.cmd on Windows, which subprocess does not look for)."""
    found = shutil.which(name)
    if found is None:
        raise CommandFailed([name], f"{name} is not on PATH")
    return found


def run(command, quiet=False):
    """Runs `command` (its first word found on PATH); returns its stdout, or raises CommandFailed."""
    if not quiet:
        print("  " + " ".join(command), flush=True)
    result = subprocess.run([executable(command[0])] + command[1:], capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise CommandFailed(command, lines[-1].strip() if lines else f"exit status {result.returncode}")
    return result.stdout


def az_json(args, quiet=False):
    """`az ARGS --output json`, parsed; None when `az` printed nothing."""
    text = run(["az"] + args + ["--output", "json"], quiet=quiet)
    return json.loads(text) if text.strip() else None


def az_rest(method, url, body=None, quiet=False):
    """`az rest`: an Azure Resource Manager request. A `url` starting with `/` is a resource path, which `az rest`
    sends to the current cloud's Resource Manager endpoint."""
    args = ["rest", "--method", method, "--url", url]
    if body is None:
        return az_json(args, quiet=quiet)
    # From a file: JSON's quotes do not survive the command line of az.cmd on Windows.
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "body.json")
        with open(path, "w", encoding="utf-8") as file:
            json.dump(body, file)
        return az_json(args + ["--body", "@" + path], quiet=quiet)


def azd_env_set(name, value):
    run(["azd", "env", "set", name, value])
    os.environ[name] = value
