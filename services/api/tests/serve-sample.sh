#!/usr/bin/env bash
# Sourced by schemathesis.sh and browser.sh: builds sitetally and the seed example,
# writes the API's sample world into a fresh embedded store, and starts
# `sitetally serve` on a free 127.0.0.1 port. Sets API_URL, API_OUT, ADMIN_TOKEN,
# CONTOSO_TOKEN; `api_stop` (run on EXIT) stops the server it started.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
API_OUT="${SITETALLY_TEST_OUT:-$ROOT/target/test-output}/api"
mkdir -p "$API_OUT"
log() { printf '[api-test] %s\n' "$*" >&2; }

api_start() {
  log "building sitetally and the seed example"
  (cd "$ROOT" && cargo build --quiet -p sitetally --bin sitetally && cargo build --quiet -p sitetally-api --example seed)
  local target="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
  API_DATA="$(mktemp -d "${TMPDIR:-/tmp}/sitetally-api-test.XXXXXX")"
  "$target/examples/seed" "$API_DATA" >&2
  ADMIN_TOKEN="$(sed -n 's/^admin_tokens = \["\(.*\)"\]/\1/p' "$API_DATA/tokens.toml")"
  CONTOSO_TOKEN="$(sed -n 's/^contoso = \["\(.*\)"\]/\1/p' "$API_DATA/tokens.toml")"
  local port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  API_URL="http://127.0.0.1:$port"
  "$target/sitetally" serve --listen "127.0.0.1:$port" --data-dir "$API_DATA" \
      --licences "$API_DATA/licences.toml" --tokens "$API_DATA/tokens.toml" --log warn \
      --rate-limit 100000 --rate-burst 100000 \
      >"$API_OUT/serve.log" 2>&1 &
  API_PID=$!
  for _ in $(seq 1 100); do
    if curl -fsS "$API_URL/healthz" >/dev/null 2>&1; then
      log "sitetally serve (pid $API_PID) at $API_URL, data in $API_DATA"
      return 0
    fi
    kill -0 "$API_PID" 2>/dev/null || { cat "$API_OUT/serve.log" >&2; return 1; }
    sleep 0.2
  done
  log "sitetally serve did not answer /healthz in 20 s"; cat "$API_OUT/serve.log" >&2; return 1
}

api_stop() {
  if [ -n "${API_PID:-}" ] && kill -0 "$API_PID" 2>/dev/null; then
    kill "$API_PID" 2>/dev/null || true
    wait "$API_PID" 2>/dev/null || true
  fi
  [ -n "${API_DATA:-}" ] && rm -rf "$API_DATA"
  return 0
}
