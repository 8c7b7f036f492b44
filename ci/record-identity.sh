#!/usr/bin/env bash
# Checks that a refactor leaves results alone: runs the quick preset, NIAH 16K and RULER 4K with
# every method and keeps what must not move (status, the deterministic metrics, predictions and
# other extras; wall-clock figures left out), so that two trees' snapshots can be compared.
#   ci/record-identity.sh snapshot BUILD_DIR OUT.json   run BUILD_DIR/attnbench, write OUT.json
#   ci/record-identity.sh compare BEFORE.json AFTER.json exit 1 and list the differences, if any
# Typical use: snapshot on the base commit's build, change the code, snapshot again, compare.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case "${1:-}" in
  snapshot)
    [[ $# -eq 3 ]] || { echo "usage: $0 snapshot BUILD_DIR OUT.json" >&2; exit 2; }
    bin=$2/attnbench out=$3
    [[ -x $bin ]] || { echo "record-identity: no attnbench in $2" >&2; exit 2; }
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "$bin" run --seed 0 --out "$work/quick" >/dev/null
    "$bin" run --suite niah --lengths 16k --seed 0 --out "$work/niah" >/dev/null
    "$bin" run --suite ruler --lengths 4k --seed 0 --out "$work/ruler" >/dev/null
    python3 "$here/record_identity.py" snapshot "$out" "$work/quick/report.json" \
      "$work/niah/report.json" "$work/ruler/report.json"
    ;;
  compare)
    [[ $# -eq 3 ]] || { echo "usage: $0 compare BEFORE.json AFTER.json" >&2; exit 2; }
    python3 "$here/record_identity.py" compare "$2" "$3"
    ;;
  *)
    echo "usage: $0 snapshot BUILD_DIR OUT.json | compare BEFORE.json AFTER.json" >&2
    exit 2
    ;;
esac
