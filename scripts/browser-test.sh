#!/usr/bin/env bash
# The web app in a real browser: checks the committed bundle is built from the current
# sources, then runs web/tests against `onair up` (its own database, default ports).
set -euo pipefail
cd "$(dirname "$0")/.."
# Absolute: the tests start the binary from a temporary directory.
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
(cd web && npm ci --no-audit --no-fund --loglevel=error)
node web/scripts/stamp.mjs --check
cargo build --quiet -p onair-cli
ONAIR_BIN="$target/debug/onair" node --test --test-concurrency=1 web/tests/
