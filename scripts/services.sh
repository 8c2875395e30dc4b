#!/usr/bin/env bash
# Make sure what onair needs is installed and running on this machine:
# PostgreSQL (5432), Redis (6379), NATS with JetStream (4222) and ffmpeg.
# Installs missing pieces with apt (Debian/Ubuntu) and starts whatever is not reachable.
# Safe to run again and again: it only acts on what is missing.
set -euo pipefail

log() { printf '\033[1m[services]\033[0m %s\n' "$*"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ "$(id -u)" -eq 0 ]; then SUDO=(); AS_PG=(runuser -u postgres --); else SUDO=(sudo); AS_PG=(sudo -u postgres); fi

APT_UPDATED=0
apt_install() {
  if ! command -v apt-get >/dev/null; then
    log "apt-get not found: install $* yourself, then run this again"; exit 1
  fi
  if [ "$APT_UPDATED" = 0 ]; then "${SUDO[@]}" apt-get update -qq; APT_UPDATED=1; fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
  log "$2 did not come up on port $1"; exit 1
}

# --- PostgreSQL -------------------------------------------------------------
if ! port_open 5432; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql postgresql-contrib
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $ver"
  "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null \
    || "${SUDO[@]}" pg_ctlcluster "$ver" main start
  wait_port 5432 PostgreSQL
fi
command -v psql >/dev/null || apt_install postgresql-client
PGUSER_NAME=${PGUSER:-${USER:-$(id -un)}}
if ! psql -h 127.0.0.1 -U "$PGUSER_NAME" -d postgres -Atc 'select 1' >/dev/null 2>&1; then
  # A fresh Debian cluster knows only `postgres` and wants passwords over TCP. This is a
  # development machine: give the login user a superuser role and trust loopback connections.
  log "granting $PGUSER_NAME a local superuser role and trusting loopback connections"
  "${AS_PG[@]}" psql -q -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PGUSER_NAME') THEN CREATE ROLE \"$PGUSER_NAME\" SUPERUSER LOGIN; END IF; END \$\$;"
  hba=$("${AS_PG[@]}" psql -Atc 'show hba_file')
  if ! "${SUDO[@]}" grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    "${SUDO[@]}" sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    "${AS_PG[@]}" psql -q -c 'select pg_reload_conf()' >/dev/null
  fi
fi
if ! psql -h 127.0.0.1 -U "$PGUSER_NAME" -d postgres -Atc "select 1 from pg_available_extensions where name = 'pg_trgm'" | grep -q 1; then
  apt_install postgresql-contrib
fi

# --- Redis ------------------------------------------------------------------
if ! port_open 6379; then
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_port 6379 Redis
fi

# --- NATS with JetStream ----------------------------------------------------
if ! port_open 4222; then
  command -v nats-server >/dev/null || apt_install nats-server
  store="${XDG_DATA_HOME:-$HOME/.local/share}/onair/nats"
  mkdir -p "$store"
  log "starting NATS with JetStream (store: $store)"
  nohup nats-server -a 127.0.0.1 -p 4222 -js -sd "$store" >"$store/nats.log" 2>&1 &
  wait_port 4222 NATS
fi

# --- ffmpeg -----------------------------------------------------------------
command -v ffmpeg >/dev/null || apt_install ffmpeg
# The demo stream burns a clock into the picture (drawtext needs a font).
fc-list 2>/dev/null | grep -q . || apt_install fonts-dejavu-core fontconfig

# --- Python venvs (scripts/k8s-checks.sh and scripts/api-contract.sh install their tools in one) ---
# Debian splits `venv` (ensurepip) out of python3.
command -v python3 >/dev/null || apt_install python3
python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
# scripts/api-contract.sh drops its scratch database with `dropdb` (postgresql-client, above).

# --- browser tests (scripts/test.sh asks with --browser) -----------------------
if [ "${1:-}" = "--browser" ]; then
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  [ -x /usr/bin/chromium ] || apt_install chromium
  # Two nginx edges play two CDNs (web/tests/cdn.test.mjs, examples/edge): nginx with njs for
  # the signed-link check. Installed stopped: each test starts its own with its own config.
  if [ ! -x /usr/sbin/nginx ] || [ ! -f /usr/lib/nginx/modules/ngx_http_js_module.so ]; then
    apt_install nginx-light libnginx-mod-http-js
    "${SUDO[@]}" sh -c 'command -v service >/dev/null && service nginx stop >/dev/null 2>&1 || true'
  fi
fi

log "ready: postgres :5432, redis :6379, nats :4222 (JetStream), $(ffmpeg -version | head -n 1 | cut -d' ' -f1-3)"
