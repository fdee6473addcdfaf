#!/usr/bin/env bash
# Stops or starts the test rig's ClickHouse (same ports, same data) for outage tests:
#   SITETALLY_TEST_RIG_DIR=... scripts/rig-clickhouse.sh stop|start
set -euo pipefail
: "${SITETALLY_TEST_RIG_DIR:?run under scripts/test.sh (SITETALLY_TEST_RIG_DIR unset)}"
export SITETALLY_RIG_DIR="$SITETALLY_TEST_RIG_DIR"
source "$(dirname "$0")/rig.sh"
case "${1:-}" in
  stop) stop_clickhouse ;;
  start) launch_clickhouse ;;
  *) echo "usage: $0 stop|start" >&2; exit 2 ;;
esac
