#!/usr/bin/env bash
# Fuzz the parsers that read bytes from the internet (fuzz/src/lib.rs says which) with cargo fuzz
# (libFuzzer). `scripts/fuzz.sh` runs every target for ONAIR_FUZZ_SECS seconds each (the test
# command: 10); `ONAIR_FUZZ_SECS=600 scripts/fuzz.sh` is the long run the issue asks for;
# `scripts/fuzz.sh rtmp_session` runs one target.
#
# cargo-fuzz comes from crates.io, installed once into ${ONAIR_TOOLS_CACHE:-~/.cache/onair-tools}.
# The corpus each run grows is kept there too (seeded from fuzz/seeds/), so long runs build on
# each other. A crash fails the run and leaves its input in fuzz/artifacts/{target}/: fix the
# bug, then keep the input as fuzz/regressions/{target}/{what-it-broke} (cargo test replays it).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${ONAIR_FUZZ_SECS:-10}
CACHE=${ONAIR_TOOLS_CACHE:-${HOME:-/root}/.cache/onair-tools}
FUZZ_VERSION=0.13.1
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(flv_reader fmp4_upload rtmp_session chat_frame)

log() { printf '\033[1m[fuzz]\033[0m %s\n' "$*" >&2; }

mkdir -p "$CACHE"
CARGO_FUZZ=$CACHE/cargo-fuzz-$FUZZ_VERSION/bin/cargo-fuzz
if [[ ! -x $CARGO_FUZZ ]]; then
  (
    flock 9
    if [[ ! -x $CARGO_FUZZ ]]; then
      log "installing cargo-fuzz $FUZZ_VERSION into $CACHE"
      # Its own target dir: never the workspace's, whatever CARGO_TARGET_DIR says.
      CARGO_TARGET_DIR=$CACHE/cargo-fuzz-build cargo install --quiet --locked --version "$FUZZ_VERSION" \
        --root "$CACHE/cargo-fuzz-$FUZZ_VERSION" cargo-fuzz
      rm -rf "$CACHE/cargo-fuzz-build"
    fi
  ) 9>"$CACHE/.lock-cargo-fuzz"
fi

export PATH=$(dirname "$CARGO_FUZZ"):$PATH

# libFuzzer's instrumentation needs flags only nightly compilers take (-Zsanitizer and friends).
# A nightly toolchain when there is one; otherwise this stable compiler, told to accept them
# (RUSTC_BOOTSTRAP), without a sanitizer (Rust code here forbids `unsafe`: panics are the crashes).
TOOLCHAIN=()
SANITIZER=(--sanitizer address)
# (Read whole first: `grep -q` in a pipe under pipefail can fail the pipe by closing it early.)
toolchains=$(rustup toolchain list 2>/dev/null || true)
if grep -q '^nightly' <<<"$toolchains"; then
  TOOLCHAIN=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
  SANITIZER=(--sanitizer none)
fi
# Fuzz builds (instrumented, release) in their own corner of the target dir.
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}/fuzz

failed=()
for target in "${TARGETS[@]}"; do
  corpus=$CACHE/fuzz-corpus/$target
  mkdir -p "$corpus" "fuzz/artifacts/$target"
  cp -n fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
  log "$target: ${SECS}s (corpus $(find "$corpus" -type f | wc -l) inputs)"
  # -rss_limit_mb and -timeout: a leak or a hang is a finding too. Regressions are replayed as
  # inputs as well (they must no longer crash).
  inputs=("$corpus" fuzz/seeds/"$target")
  [[ -d fuzz/regressions/$target ]] && inputs+=(fuzz/regressions/"$target")
  # Built first, apart, so a build failure says so instead of passing for a crash.
  if ! cargo "${TOOLCHAIN[@]}" fuzz build "${SANITIZER[@]}" --features libfuzzer \
    --fuzz-dir fuzz --target-dir "$TARGET_DIR" "$target"; then
    log "$target: the build failed"
    exit 2
  fi
  # libFuzzer's own log in a file (it is long); its summary, and any crash with the panic
  # message onair_fuzz::run printed, shown after.
  out=$TARGET_DIR/$target.log
  if cargo "${TOOLCHAIN[@]}" fuzz run "${SANITIZER[@]}" --features libfuzzer \
    --fuzz-dir fuzz --target-dir "$TARGET_DIR" "$target" "${inputs[@]}" -- \
    -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$target/" 2>"$out"; then
    grep -E '^Done|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$out" >&2 || true
  else
    failed+=("$target")
    grep -B2 -A12 -E 'panicked|ERROR: libFuzzer|SUMMARY|Failing input' "$out" | head -n 80 >&2 || tail -n 40 "$out" >&2
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  log "crashes in: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
log "no crash in ${TARGETS[*]} (${SECS}s each)"
