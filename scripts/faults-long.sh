#!/usr/bin/env bash
# The fault suite's long form (issue 16), on demand: starts the rig as scripts/test.sh does
# and runs the fault scenarios one at a time with SITETALLY_FAULTS_LONG=1 (4x the sites, a
# 20-round rebalance storm, ClickHouse down 60 s, each scenario on a fresh broker of its
# own). About 8 minutes here; each scenario prints FAULT-* lines (load-tests/RESULTS.md).
#
#   scripts/faults-long.sh                    # faults::* and outage::*
#   scripts/faults-long.sh faults::static     # only the scenarios matching these filters
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/rig.sh

filters=("$@")
[ ${#filters[@]} -gt 0 ] || filters=(faults:: outage::)

trap rig_stop EXIT
rig_start
log "fault suite, long form: ${filters[*]}"
SITETALLY_FAULTS_LONG=1 cargo test -p sitetally --test it -- \
  --include-ignored --test-threads 1 --nocapture "${filters[@]}"
log "fault suite, long form: passed"
