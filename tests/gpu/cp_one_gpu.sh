#!/usr/bin/env bash
# attnbench_cp on one GPU (needs a GPU; registered with the [gpu] tests): every scheme at 1k and
# 4k must run through its code path and pass issue 21's error gate (rel_l2 at most twice the
# one-GPU bf16 error against the fp32 reference); a bad value must give exit code 2.
#   cp_one_gpu.sh ATTNBENCH_CP_BINARY
set -euo pipefail
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" --gpus 1 --lengths 1k,4k --repetitions 1 --ref-tokens 4 --out "$work/cp" >"$work/log" 2>&1 ||
  { cat "$work/log"; echo "cp_one_gpu: attnbench_cp failed"; exit 1; }
python3 - "$work/cp/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
recs = r["records"]
schemes = {x["axes"]["scheme"] for x in recs}
assert schemes == {"ring", "zigzag", "ulysses", "decode"}, schemes
# 2 lengths x (3 prefill schemes x 2 masks + decode x 2 keeps)
assert len(recs) == 16, len(recs)
for x in recs:
    assert x["status"] == "ok", (x["case_name"], x["status"], x.get("reason"))
    m = x["metrics"]
    assert m["error_gate"] == 1.0, (x["case_name"], m["rel_l2"], m["rel_l2_single_gpu"])
    assert 0 < m["rel_l2"] < 0.02 and m["time_ms"] > 0 and m["baseline_ms"] > 0, x["case_name"]
assert r["meta"]["NCCL_NVLS_ENABLE"] == "0", r["meta"]["NCCL_NVLS_ENABLE"]
print("cp_one_gpu: %d cases, all within the error gate" % len(recs))
PY
set +e
"$bin" --gpus 1 --keep 2 --out "$work/bad" >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || { echo "cp_one_gpu: --keep 2 gave exit $rc, not 2"; exit 1; }
