#!/usr/bin/env bash
# Stops or starts the test rig's ClickHouse (same ports, same data) for outage tests:
#   SITETALLY_TEST_RIG_DIR=... scripts/rig-clickhouse.sh stop|start
# or, with an empty directory, starts a ClickHouse of its own there and prints its URL, so
# a test can take it down without disturbing the tests that share the rig's:
#   SITETALLY_TEST_RIG_DIR=EMPTY_DIR scripts/rig-clickhouse.sh new
set -euo pipefail
: "${SITETALLY_TEST_RIG_DIR:?run under scripts/test.sh (SITETALLY_TEST_RIG_DIR unset)}"
export SITETALLY_RIG_DIR="$SITETALLY_TEST_RIG_DIR"
source "$(dirname "$0")/rig.sh"
case "${1:-}" in
  stop) stop_clickhouse ;;
  start) launch_clickhouse ;;
  new) start_clickhouse >&2 && echo "$SITETALLY_TEST_CLICKHOUSE_URL" ;;
  *) echo "usage: $0 stop|start|new" >&2; exit 2 ;;
esac
