#!/bin/sh
# Builds the handler for Linux x86-64 and stages exactly what `.funcignore` keeps — host.json, every function
# folder and the `handler` binary — in target/azd-package, which azd deploys (azure.yaml). A static musl build when
# the target is installed (`rustup target add x86_64-unknown-linux-musl`); otherwise the glibc build, which runs
# only where the C library is no older than this machine's (see the README, Deploying to Azure).
# HANDLER_BINARY=path skips the build and stages that file instead (the deployment check uses it).
set -eu
cd "$(dirname "$0")/.."
out=target/azd-package
if [ -z "${HANDLER_BINARY:-}" ]; then
  if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    cargo build --release --locked --target x86_64-unknown-linux-musl
    HANDLER_BINARY="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release/handler"
  else
    echo "azd-package: x86_64-unknown-linux-musl is not installed; building against this machine's glibc" >&2
    cargo build --release --locked --target x86_64-unknown-linux-gnu
    HANDLER_BINARY="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/handler"
  fi
fi
rm -rf "$out"
mkdir -p "$out"
cp host.json "$out/"
for function in */function.json; do
  mkdir -p "$out/$(dirname "$function")"
  cp "$function" "$out/$function"
done
cp "$HANDLER_BINARY" "$out/handler"
# The host starts `handler` directly: it must stay executable (azd's zip keeps the Unix mode).
chmod 755 "$out/handler"
echo "azd-package: staged $(find "$out" -type f | wc -l) files in $out"
