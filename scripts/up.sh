#!/usr/bin/env bash
# Run the whole platform on this machine: services, migrations, every onair target.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh
cargo build --release -p onair-cli
./target/release/onair migrate
exec ./target/release/onair up "$@"
