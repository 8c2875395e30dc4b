#!/usr/bin/env bash
# Chat gateway benchmark: one gateway replica on this machine, driven by bench/chat-load.
# Usage: bench/chat.sh CONNECTIONS ROOMS SENDERS RATE [SECONDS]
#   e.g. bench/chat.sh 5000 10 50 400 20     (deliveries/s = RATE x CONNECTIONS/ROOMS)
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-5000}; ROOMS=${2:-10}; SENDERS=${3:-50}; RATE=${4:-400}; DUR=${5:-20}
API=18281; CHAT=18282; DB=onair_chatbench
# The gateway gets core 0 to itself and the load generator core 1, so the figures are per gateway core.
PIN_GW=""; PIN_LOAD=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then PIN_GW="taskset -c 0"; PIN_LOAD="taskset -c 1"; fi
ulimit -n 400000 2>/dev/null || ulimit -n 65536 || true
./scripts/services.sh >/dev/null
cargo build --release -q -p onair-cli -p onair-chat-load
psql -h 127.0.0.1 -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
./target/release/onair migrate --database-url "postgres://127.0.0.1/$DB" 2>/dev/null
KEYS=$(mktemp -d)
export RUST_LOG=warn,sqlx=error
./target/release/onair apiserver --listen 127.0.0.1:$API --database-url "postgres://127.0.0.1/$DB" --redis-prefix chatbench: \
  --nats-prefix chatbench. --jwt-keys-dir "$KEYS" --background-tasks false --register-per-ip-per-hour 1000000 &
APID=$!
trap 'kill $APID $GPID 2>/dev/null; rm -rf "$KEYS"' EXIT
GPID=
for _ in $(seq 1 50); do curl -sf localhost:$API/healthz >/dev/null && break; sleep 0.2; done
$PIN_GW ./target/release/onair chat-gateway --listen 127.0.0.1:$CHAT --database-url "postgres://127.0.0.1/$DB" --redis-prefix chatbench: \
  --nats-prefix chatbench. --jwks-url "http://127.0.0.1:$API/.well-known/jwks.json" --rate-messages 100000000 \
  --mod-rate-messages 100000000 --connects-per-ip-per-minute 100000000 --sockets-per-user 1000000 --outbound-queue 1024 --tick-ms "${TICK_MS:-50}" &
GPID=$!
for _ in $(seq 1 50); do curl -sf localhost:$CHAT/healthz >/dev/null && break; sleep 0.2; done

register() { # name -> token
  curl -sf -XPOST localhost:$API/api/users/register -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"email\":\"$1@bench.example\",\"password\":\"correct horse battery\"}" \
    | sed -E 's/.*"access_token":"([^"]+)".*/\1/'
}
ROOM_ARGS=()
for r in $(seq 1 "$ROOMS"); do
  t=$(register "host$r")
  id=$(curl -sf -XPOST localhost:$API/api/streams/start -H "authorization: Bearer $t" -H 'content-type: application/json' \
    -d '{"title":"bench room","category":"games"}' | sed -E 's/.*"stream":\{"id":"([^"]+)".*/\1/')
  ROOM_ARGS+=(--room "$id")
done
TOKEN_ARGS=()
for s in $(seq 1 "$SENDERS"); do TOKEN_ARGS+=(--token "$(register "sender$s")"); done
echo "gateway pid $GPID: $CONNS sockets, $ROOMS rooms, $SENDERS senders, $RATE msg/s for ${DUR}s"
$PIN_LOAD ./target/release/chat-load --gateway 127.0.0.1:$CHAT "${ROOM_ARGS[@]}" "${TOKEN_ARGS[@]}" --connections "$CONNS" \
  --senders "$SENDERS" --rate "$RATE" --duration "$DUR" --source-ips 8 --gateway-pid "$GPID"
curl -s localhost:$CHAT/metrics | grep -E '^onair_chat_(coalesced_frames|slow_consumer|rejected)' || true
