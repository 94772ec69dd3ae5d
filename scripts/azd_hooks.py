"""The azd hooks of this template (azure.yaml), one function per hook, in Python so that every platform runs the same
code: `scripts/hook.sh NAME` (Linux, macOS) and `scripts/hook.ps1 NAME` (Windows) find Python 3.9 or newer and run
`azd_hooks.py NAME`.

- `preprovision` refuses parameters Azure would reject, before anything is created; makes sure the archive's resource
  group exists (`azd down` leaves it, and the recordings in it); finds an existing Event Grid system topic of the ACS
  resource (an ACS resource has at most one).
- `package` (the service's `prepackage`) builds the handler for any Functions Linux image and stages the app in
  target/azd-package, then checks the binary it staged.
- `postdeploy` subscribes the RecordingEvent function to the ACS resource's recording events, retrying until Event
  Grid accepts the function's endpoint, within a deadline.
- `check-binary PATH` runs the package's binary check on any file (CI and the tests use it).
- `toolchain` makes the Rust toolchain rust-toolchain.toml pins available (CI runs it before any cargo command).

Azure is reached with the Azure CLI (`az`, signed in with `az login`) and azd's environment with `azd env set`; the
tests put stand-ins for both on PATH.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import handler_package  # noqa: E402  (the path above comes first)
import parameters  # noqa: E402
import subscription  # noqa: E402


def main(argv):
    hooks = {
        "preprovision": lambda _: parameters.preprovision(),
        "package": lambda _: handler_package.package(),
        "postdeploy": lambda _: subscription.postdeploy(),
        "check-binary": lambda args: handler_package.check_binary_command(args),
        "toolchain": lambda _: handler_package.toolchain_command(),
    }
    if len(argv) < 2 or argv[1] not in hooks:
        print(f"usage: azd_hooks.py {{{','.join(hooks)}}} [ARGS]", file=sys.stderr)
        return 2
    return hooks[argv[1]](argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
