#!/usr/bin/env bash
# `.sqlx/` holds what the `sqlx::query!` macros know of each query (its columns, types and
# nullability), so the workspace builds without a database. This regenerates it against a
# throwaway database migrated from `migrations/` and fails if the committed copy differs.
#
#   scripts/sqlx-check.sh           # is `.sqlx/` current? (run by scripts/test.sh)
#   scripts/sqlx-check.sh --write   # regenerate it, after changing a query or a migration
#
# Postgres as the tests find it: ONAIR_TEST_DATABASE_URL (any database on the server), else
# 127.0.0.1:5432 as the local user (what scripts/services.sh sets up).
set -euo pipefail
cd "$(dirname "$0")/.."

write=false
case "${1:-}" in
  --write) write=true ;;
  "") ;;
  *) echo "usage: $0 [--write]" >&2; exit 2 ;;
esac

# The packages whose sources use the query macros, found rather than listed so a new one is
# not forgotten (its queries would be missing from `.sqlx/`).
macros='sqlx::query(_as|_scalar)?(_file)?(_unchecked)?!'
packages=()
while read -r manifest; do
  dir=$(dirname "$manifest")
  if [ "$dir" != . ] && grep -rqE --include='*.rs' "$macros" "$dir"; then
    packages+=("--package=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$manifest" | head -1)")
  fi
done < <(git ls-files --cached --others --exclude-standard '*Cargo.toml')
if [ ${#packages[@]} -eq 0 ]; then
  echo "sqlx-check: no crate uses the query macros" >&2
  exit 1
fi

admin_url=${ONAIR_TEST_DATABASE_URL:-postgres://${PGUSER:-${USER:-$(id -un)}}@127.0.0.1:5432/postgres}
# One database per checkout, so worktrees checking at once do not share one.
db=onair_sqlx_$(printf %s "$PWD" | sha256sum | cut -c1-10)
db_url="${admin_url%/*}/$db"
export PGOPTIONS='-c client_min_messages=warning'
psql_on() { psql "$1" -X -q -v ON_ERROR_STOP=1 "${@:2}"; }

tmp=$(mktemp -d)
cleanup() {
  psql_on "$admin_url" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

psql_on "$admin_url" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\""
# In version order, each in a transaction, as `sqlx migrate` applies them.
for m in migrations/*.sql; do
  case "$m" in *.down.sql) continue ;; esac
  psql_on "$db_url" --single-transaction -f "$m" >/dev/null
done

# A target dir of its own: cleaning the packages there makes their macros expand again (and
# write their data) without touching sources, which would rebuild them in the main one too.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/sqlx-check"
mkdir -p "$tmp/.sqlx"
cargo clean --quiet "${packages[@]}"
if ! SQLX_OFFLINE=false DATABASE_URL="$db_url" SQLX_OFFLINE_DIR="$tmp/.sqlx" \
  cargo check --quiet --all-targets "${packages[@]}"; then
  echo "sqlx-check: the build above failed against the schema migrations/ gives; fix the query or the migration" >&2
  exit 1
fi
if [ -z "$(ls -A "$tmp/.sqlx")" ]; then
  echo "sqlx-check: no query wrote its data; nothing compared" >&2
  exit 1
fi

if $write; then
  rm -rf .sqlx
  cp -r "$tmp/.sqlx" .sqlx
  echo "sqlx-check: wrote .sqlx/ ($(ls .sqlx | wc -l) queries); commit it with the change"
elif diff -ru .sqlx "$tmp/.sqlx" >"$tmp/diff" 2>&1; then
  echo "sqlx-check: .sqlx/ is current ($(ls .sqlx | wc -l) queries)"
else
  sed -e "s|$tmp/.sqlx|(regenerated)|g" "$tmp/diff" | head -n 60
  echo
  echo "sqlx-check: .sqlx/ does not match the queries and migrations. Regenerate and commit it:"
  echo "  scripts/sqlx-check.sh --write"
  exit 1
fi
