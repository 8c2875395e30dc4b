#!/usr/bin/env bash
# Bytes a recorded broadcast stores per hour, per rendition and for the whole ladder, for
# docs/capacity.md (issue 15). Runs `onair up` (no demo) in a scratch directory with recording
# into it, publishes the demo's source (720p30 test pattern with a burned-in clock, 3 Mbps
# x264 veryfast, as OBS would) for SECONDS, stops the stream, waits for its VOD and sums what the
# recording holds under each rendition.
#
#   bench/recording-bytes.sh [seconds] [quality]     # defaults: 120 source
#
# Needs the services (scripts/services.sh), ffmpeg, and a built `onair` (ONAIR_BIN, default
# $CARGO_TARGET_DIR/debug/onair): the media is ffmpeg's, so a debug build measures the same bytes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-120}
quality=${2:-source}
bin=${ONAIR_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/onair}
work=$(mktemp -d)
db=onair_bench_recording
port=18390
api=http://127.0.0.1:$port
cleanup() {
  [ -n "${up:-}" ] && kill "$up" 2>/dev/null && wait "$up" 2>/dev/null || true
  [ -n "${pub:-}" ] && kill "$pub" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
psql -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
cd "$work"
"$bin" up --demo false --listen 127.0.0.1:$port --database-url "postgres://localhost/$db" \
  --redis-prefix "benchrec$$:" --nats-prefix "benchrec$$" >up.log 2>&1 &
up=$!
for _ in $(seq 100); do curl -fs "$api/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
token=$(curl -fs "$api/api/users/register" -H 'content-type: application/json' \
  -d '{"username":"bench","email":"bench@example.com","password":"correct horse battery"}' | json "['access_token']")
user=$(curl -fs "$api/api/users/me" -H "authorization: Bearer $token" | json "['id']")
started=$(curl -fs "$api/api/streams/start" -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d "{\"title\":\"recording bytes\",\"category\":\"software\",\"quality\":\"$quality\"}")
stream=$(echo "$started" | json "['stream']['id']")
ingest=$(echo "$started" | json "['ingest']['url']")/$(echo "$started" | json "['ingest']['stream_key']")
ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t "$seconds" \
  -vf "drawtext=text='%{localtime\:%T}':fontsize=64:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=12:x=40:y=40" \
  -c:v libx264 -preset veryfast -tune zerolatency -g 60 -b:v 3000k -c:a aac -f flv "$ingest" &
pub=$!
wait "$pub" || true
pub=
curl -fs -X POST "$api/api/streams/$stream/stop" -H "authorization: Bearer $token" -o /dev/null || true
vod=""
for _ in $(seq 120); do
  vod=$(curl -fs "$api/api/users/$user/vods" | python3 -c "import json,sys; i=json.load(sys.stdin)['items']; print(i[0]['id'] if i else '')")
  [ -n "$vod" ] && break
  sleep 1
done
[ -n "$vod" ] || { echo "no VOD after 120 s" >&2; tail -20 up.log >&2; exit 1; }
duration=$(curl -fs "$api/api/vods/$vod" | json "['duration_secs']")
rec=.onair/recordings/rec/$stream
printf 'published %s s (quality %s); VOD %.1f s; renditions:\n' "$seconds" "$quality" "$duration"
total=0
for dir in "$rec"/*/; do
  r=$(basename "$dir")
  bytes=$(du -sb --apparent-size "$dir/seg" | cut -f1)
  total=$((total + bytes))
  awk -v r="$r" -v b="$bytes" -v d="$duration" \
    'BEGIN { printf "  %-8s %12d bytes  %6.3f GB/h  %6.2f Mbit/s\n", r, b, b * 3600 / d / 1e9, b * 8 / d / 1e6 }'
done
awk -v b="$total" -v d="$duration" \
  'BEGIN { printf "  %-8s %12d bytes  %6.3f GB/h  %6.2f Mbit/s\n", "all", b, b * 3600 / d / 1e9, b * 8 / d / 1e6 }'
