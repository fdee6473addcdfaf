#!/usr/bin/env bash
# Fuzzes every target for SECONDS each (default 10: the short run of scripts/test.sh; run
# `fuzz/run.sh 600` for the long one), starting from the committed corpus, and fails on the
# first crash or disagreement (its input is left in fuzz/artifacts/TARGET/; copy it to
# fuzz/regressions/ and fix). Builds with nightly and libFuzzer's coverage instrumentation
# (what `cargo fuzz build` passes, without needing cargo-fuzz installed).
#
#   fuzz/run.sh [SECONDS] [TARGET...]      (FUZZ_MERGE=1: merge new coverage into corpus/)
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-10}"; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode_report json_scanner identity licence_file counts_csv)
log() { printf '[fuzz] %s\n' "$*" >&2; }

if ! cargo +nightly --version >/dev/null 2>&1; then
  log "no nightly toolchain (rustup toolchain install nightly): fuzzing SKIPPED"
  exit 0
fi
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR="$PWD/target/run-sh"
# An explicit --target keeps the flags off build scripts and proc macros (as cargo-fuzz does).
host="$(rustc +nightly -vV | sed -n 's/^host: //p')"
log "building ${targets[*]} (nightly, coverage-instrumented, $host)"
cargo +nightly build --quiet --release --target "$host" $(printf -- '--bin %s ' "${targets[@]}")
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  # New inputs go to a scratch directory: the committed corpus only changes on purpose.
  scratch="$(mktemp -d)"
  log "$t: ${secs}s from $(ls "corpus/$t" | wc -l) seeds"
  if ! "$CARGO_TARGET_DIR/$host/release/$t" "$scratch" "corpus/$t" -max_total_time="$secs" \
       -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"artifacts/$t/last-run.log" 2>&1; then
    tail -30 "artifacts/$t/last-run.log" >&2
    log "$t FAILED: the input is in fuzz/artifacts/$t/"
    rm -rf "$scratch"
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "artifacts/$t/last-run.log" | grep -o '[0-9]*$' || echo '?')
  log "$t: ok, $runs runs"
  if [ "${FUZZ_MERGE:-0}" = 1 ]; then
    # Keep only the new inputs that add coverage (the long run's corpus is committed).
    before=$(ls "corpus/$t" | wc -l)
    "$CARGO_TARGET_DIR/$host/release/$t" -merge=1 "corpus/$t" "$scratch" >"artifacts/$t/merge.log" 2>&1
    log "$t: corpus $before -> $(ls "corpus/$t" | wc -l) inputs"
  fi
  rm -rf "$scratch"
done
