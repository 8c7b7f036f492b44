#!/bin/bash
# The accuracy suites on both backends for every CUDA method (issue 20, item 5): a 16K NIAH grid
# (5 depths x 2 samples) and RULER, PosIR and fidelity at 4K, run with --backend cpu and
# --backend cuda, then tools/gpu/backend_agreement.py checks that accuracies are equal and
# rel_l2 within bf16 noise. Run from the repo root on a GPU machine with the binaries in $1
# (default gpu-bin). Methods with a `keep` parameter run at keep=0.125 (a budget of 1/8 of the
# context); SPECS="a b c" replaces the list; PARTS="niah" runs only the NIAH grid (default
# "niah rest"); BACKENDS="cuda" runs only the CUDA side (default "cpu cuda"), comparing with CPU
# reports already in $OUT (the CPU side gives the same records on any machine, so it can run on
# a development machine and save GPU time). Reports go to $OUT.
set -u
bin=${1:-gpu-bin}
out=${OUT:-/tmp/attnbench-agreement}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/$bin:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
ab=$bin/attnbench
if [[ -z ${SPECS:-} ]]; then
  SPECS=$("$ab" list methods --backend cuda --format json | python3 -c '
import json, sys
for m in json.load(sys.stdin)["methods"]:
    if m["name"] == "cublas_dense":
        continue  # the reference kernel: dense attention
    keep = any(p["name"] == "keep" for p in m["params"])
    print(m["name"] + (":keep=0.125" if keep else ""))')
fi
args=()
for s in $SPECS; do args+=(--method "$s"); done
parts=${PARTS:-niah rest}
rc=0
backends=${BACKENDS:-cpu cuda}
for backend in $backends; do
  [[ " $parts " == *" niah "* ]] || continue
  echo "== niah $backend $(date +%T)"
  "$ab" run --backend $backend --suite niah --lengths 16k --depths 0:1:5 --samples 2 "${args[@]}" \
    --out "$out/niah-$backend" --overwrite > "$out/niah-$backend.log" 2>&1 || rc=1
  tail -1 "$out/niah-$backend.log"
done
for backend in $backends; do
  [[ " $parts " == *" rest "* ]] || continue
  echo "== ruler, posir, fidelity $backend $(date +%T)"
  "$ab" run --backend $backend --suite ruler --suite posir --suite fidelity --lengths 4k \
    --samples 2 "${args[@]}" --out "$out/rest-$backend" --overwrite > "$out/rest-$backend.log" 2>&1 || rc=1
  tail -1 "$out/rest-$backend.log"
done
for part in $parts; do
  echo "== agreement: $part"
  python3 tools/gpu/backend_agreement.py "$out/$part-cpu/report.json" "$out/$part-cuda/report.json" || rc=1
done
exit $rc
