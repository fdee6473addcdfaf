#!/usr/bin/env bash
# Browser test of the dashboard: installs Debian's chromium if missing, starts `sitetally
# serve` on the sample world, loads the dashboard headless with the admin token (passed
# in the URL fragment, which never reaches the server), checks that the sites table has
# the sample sites and the chart has drawn, and saves a screenshot.
#
#   services/api/tests/browser.sh          # screenshot: target/test-output/api/dashboard.png
set -euo pipefail
source "$(dirname "$0")/serve-sample.sh"

CHROMIUM="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$CHROMIUM" ]; then
  log "installing Debian's chromium (apt)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi
  CHROMIUM="$(command -v chromium)"
fi
log "$("$CHROMIUM" --version 2>/dev/null | head -1)"

trap api_stop EXIT
api_start

URL="$API_URL/#token=$ADMIN_TOKEN&tenant=contoso&site=plant-north"
PROFILE="$(mktemp -d "${TMPDIR:-/tmp}/sitetally-chromium.XXXXXX")"
chrome() {
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
      --user-data-dir="$PROFILE" --window-size=1280,1100 --virtual-time-budget=15000 "$@" 2>>"$API_OUT/chromium.log"
}
log "loading the dashboard"
chrome --dump-dom "$URL" >"$API_OUT/dashboard.html"
chrome --screenshot="$API_OUT/dashboard.png" "$URL" >/dev/null
# A first visit without a token: the page asks for one, no error state.
rm -rf "$PROFILE" && PROFILE="$(mktemp -d "${TMPDIR:-/tmp}/sitetally-chromium.XXXXXX")"
chrome --dump-dom "$API_URL/" >"$API_OUT/dashboard-no-token.html"
rm -rf "$PROFILE"

fail() { log "FAIL: $*"; exit 1; }
DOM="$API_OUT/dashboard.html"
grep -q 'data-state="chart-drawn"' "$DOM" || fail "the chart was not drawn (body data-state: $(grep -o 'data-state="[^"]*"' "$DOM" | head -1))"
for site in plant-north refinery lab; do
  grep -q "<tr data-site=\"$site\"" "$DOM" || fail "site $site missing from the table"
done
[ "$(grep -o '<tr data-site=' "$DOM" | wc -l)" -eq 3 ] || fail "expected 3 site rows"
grep -q 'OVER_TIER (buy S)' "$DOM" || fail "refinery's status missing"
grep -Eq '<polyline class="history" points="[0-9., ]{100,}' "$DOM" || fail "no daily-count line in the chart"
grep -q 'class="boundary target"' "$DOM" || fail "no target tier boundary in the chart"
grep -q 'class="trend"' "$DOM" || fail "no trend line in the chart"
grep -q 'class="crossing"' "$DOM" || fail "no projected crossing in the chart"
[ -s "$API_OUT/dashboard.png" ] || fail "no screenshot"
grep -q 'data-state="needs-token"' "$API_OUT/dashboard-no-token.html" \
  || fail "without a token the page does not ask for one ($(grep -o 'data-state="[^"]*"' "$API_OUT/dashboard-no-token.html" | head -1))"
grep -q 'Enter an API token' "$API_OUT/dashboard-no-token.html" || fail "no token prompt"
log "dashboard OK: 3 sites, chart with history, trend, boundaries and crossing; screenshot $API_OUT/dashboard.png"
