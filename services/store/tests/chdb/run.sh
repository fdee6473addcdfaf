#!/usr/bin/env bash
# Every ClickHouse migration and runtime statement on a current ClickHouse (chdb, the
# engine in-process; PyPI `chdb-core` in a virtualenv under target/), for the SQL rendered
# for 24.8 and for 18.16, checking results (chdb_test.py). No server needed.
#
#   services/store/tests/chdb/run.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="${SITETALLY_CHDB_VENV:-$TARGET/chdb-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import chdb" 2>/dev/null; then
  echo "installing chdb-core into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet chdb-core
fi
(cd "$ROOT" && cargo build --quiet -p sitetally)
"$VENV/bin/python" "$HERE/chdb_test.py" "$TARGET/debug/sitetally"
