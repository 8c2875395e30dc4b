#!/usr/bin/env bash
# Run every test: unit tests and integration tests against real Postgres, Redis and NATS.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh --browser
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
export RUST_BACKTRACE=${RUST_BACKTRACE:-0}
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
./scripts/browser-test.sh
