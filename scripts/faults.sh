#!/usr/bin/env bash
# The fault-injection suite (bench/faults): the platform as separate processes under a load of
# its own, each process killed (SIGKILL) and restarted, each backing service paused (SIGSTOP)
# for 10 s and a publisher cut, one at a time; it prints what users lost per fault and fails
# when an acknowledged chat message was lost or a stream did not survive.
#
#   scripts/faults.sh                 every fault, the full load (~7 min; the table in bench/README.md)
#   scripts/faults.sh --quick         the test command's short run (~2 min)
#   scripts/faults.sh --faults kill-media,pause-postgres --phase-secs 30
#
# It runs its own Postgres, Redis and NATS on free ports (so pausing them disturbs nothing
# else); scripts/services.sh installs them. ONAIR_FAULTS_PROFILE picks the cargo profile
# (release by default; the test command uses its dev build).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh >/dev/null
PROFILE=${ONAIR_FAULTS_PROFILE:-release}
cargo build --quiet --profile "$PROFILE" -p onair-cli -p onair-faults
dir=$PROFILE; [[ $PROFILE == dev ]] && dir=debug
BIN=${CARGO_TARGET_DIR:-$PWD/target}/$dir
exec "$BIN/faults" --onair "$BIN/onair" "$@"
