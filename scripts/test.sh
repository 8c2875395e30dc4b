#!/usr/bin/env bash
# Run every test: unit tests and integration tests against real Postgres, Redis and NATS.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh --browser
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The committed `.sqlx/` (what the query macros compile against) is what the migrations give.
./scripts/sqlx-check.sh
export RUST_BACKTRACE=${RUST_BACKTRACE:-0}
# A real S3 server for the recording tests: moto's, from PyPI, in a venv outside the clone.
# shellcheck source=lib/venv.sh
source scripts/lib/venv.sh
tool_venv moto scripts/moto/requirements.txt
export ONAIR_MOTO_SERVER=$VENV/bin/moto_server
# Every object the operator and apiserver generate, dumped by their tests for the validators.
export ONAIR_K8S_OBJECTS_DIR="${CARGO_TARGET_DIR:-$PWD/target}/k8s-objects"
rm -rf "$ONAIR_K8S_OBJECTS_DIR"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
# The parsers of bytes from the internet under libFuzzer, briefly (~1 min with the build); a
# long run is `ONAIR_FUZZ_SECS=600 scripts/fuzz.sh`.
ONAIR_FUZZ_SECS=${ONAIR_FUZZ_SECS:-10} ./scripts/fuzz.sh
# Each part killed or paused under load, in the short version: 0 acknowledged chat messages
# lost, every stream live afterwards (~2 min; `scripts/faults.sh` is the full table).
ONAIR_FAULTS_PROFILE=dev ./scripts/faults.sh --quick
# The chart and those objects through helm 3 and 4, kubernetes-validate and the CRD's CEL rules.
./scripts/k8s-checks.sh "$ONAIR_K8S_OBJECTS_DIR"
# The OpenAPI document against the real server: schemathesis, every check, 0 failures (~30 s).
./scripts/api-contract.sh "${CARGO_TARGET_DIR:-$PWD/target}/debug/onair"
./scripts/browser-test.sh
