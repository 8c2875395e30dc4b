#!/usr/bin/env bash
# Apiserver benchmark: GET /api/streams/{id}, search over 100k streams, login.
# Starts a release apiserver on its own database, seeds it, drives it with wrk, prints a table.
# Usage: bench/api.sh [duration-seconds]   (needs the services from scripts/services.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
PORT=18181
DB=onair_bench
command -v wrk >/dev/null || { sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd=sudo; $sudo_cmd apt-get install -y -qq wrk >/dev/null; }
./scripts/services.sh >/dev/null
cargo build --release -q -p onair-cli
psql -h 127.0.0.1 -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
./target/release/onair migrate --database-url "postgres://127.0.0.1/$DB" 2>/dev/null
psql -h 127.0.0.1 -d $DB -q -f bench/seed.sql

KEYS=$(mktemp -d)
RUST_LOG=warn,sqlx=error ./target/release/onair apiserver --listen 127.0.0.1:$PORT --database-url "postgres://127.0.0.1/$DB" \
  --redis-prefix bench: --jwt-keys-dir "$KEYS" --background-tasks false \
  --login-per-ip-per-minute 1000000 --login-failures-per-account 1000000 --register-per-ip-per-hour 1000 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$KEYS"' EXIT
for _ in $(seq 1 50); do curl -sf localhost:$PORT/healthz >/dev/null && break; sleep 0.2; done
curl -sf -XPOST localhost:$PORT/api/users/register -H 'content-type: application/json' \
  -d '{"username":"benchuser","email":"bench@bench.example","password":"correct horse battery"}' >/dev/null
STREAM=$(psql -h 127.0.0.1 -d $DB -Atc "SELECT id FROM streams WHERE status='live' ORDER BY current_viewers DESC LIMIT 1")

run() { # name, connections, wrk args...
  local name=$1 conns=$2; shift 2
  local threads=2; [ "$conns" -lt 2 ] && threads=1
  local out; out=$(wrk -t"$threads" -c"$conns" -d"${DUR}s" --latency "$@")
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out"); non2xx=${non2xx:-0}
  printf '| %-32s | %5s | %10s | %8s | %8s | %6s |\n' "$name" "$conns" "$rps" "$p50" "$p99" "$non2xx"
}
# Warm caches (Postgres buffers, the planner, connection pools) before measuring.
wrk -t1 -c2 -d3s -s bench/search.lua "http://127.0.0.1:$PORT" >/dev/null
echo "| endpoint                         | conns |      req/s |      p50 |      p99 | non-2xx |"
echo "|----------------------------------|-------|------------|----------|----------|---------|"
run "GET /api/streams/{id}" 64 "http://127.0.0.1:$PORT/api/streams/$STREAM"
run "GET /api/streams/search (mix)" 2 -s bench/search.lua "http://127.0.0.1:$PORT"
run "GET /api/streams/search (mix)" 16 -s bench/search.lua "http://127.0.0.1:$PORT"
run "POST /api/users/login" 8 -s bench/login.lua "http://127.0.0.1:$PORT/api/users/login"
