#!/bin/sh
# The Linux and macOS form of every azd hook in azure.yaml: runs `scripts/azd_hooks.py HOOK` with Python 3.9 or newer.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
for python in python3 python; do
  if command -v "$python" >/dev/null 2>&1 &&
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' >/dev/null 2>&1; then
    exec "$python" "$here/azd_hooks.py" "$@"
  fi
done
echo "azd hook $*: Python 3.9 or newer is needed on PATH (python3); see docs/DEPLOYMENT.md, Deploy with azd" >&2
exit 1
