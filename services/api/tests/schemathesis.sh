#!/usr/bin/env bash
# Property-based test of the running API against its own OpenAPI document: installs
# schemathesis (PyPI, in a virtualenv under target/), starts `sitetally serve` on the
# sample world, and runs every operation with the admin token and then a tenant token.
# Fails on any 5xx or a response that does not match the document.
#
#   services/api/tests/schemathesis.sh            # report in target/test-output/api/
set -euo pipefail
source "$(dirname "$0")/serve-sample.sh"

VENV="${SITETALLY_ST_VENV:-$ROOT/target/schemathesis-venv}"
if [ ! -x "$VENV/bin/st" ]; then
  log "installing schemathesis into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet schemathesis
fi
log "$("$VENV/bin/st" --version 2>&1 | head -1)"

trap api_stop EXIT
api_start
curl -fsS "$API_URL/openapi.json" >"$API_OUT/openapi.json"

run_st() { # NAME TOKEN
  local name="$1" token="$2"
  log "schemathesis ($name token)"
  "$VENV/bin/st" run "$API_URL/openapi.json" \
      --header "Authorization: Bearer $token" \
      --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
      --max-examples "${SITETALLY_ST_EXAMPLES:-50}" \
      --seed 1 \
      --report junit --report-dir "$API_OUT/schemathesis-$name" \
      2>&1 | tee "$API_OUT/schemathesis-$name.log"
}
run_st admin "$ADMIN_TOKEN"
run_st tenant "$CONTOSO_TOKEN"
log "schemathesis passed; logs and reports in $API_OUT"
