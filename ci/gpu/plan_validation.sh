#!/bin/bash
# The capacity planner's validation on a GPU (docs/planning.md): a dense calibration report of
# the device, then the decode time and resident bytes of dense, quest, snapkv and streaming_llm at
# shapes the calibration does not hold, each predicted by `attnbench plan --validate` from the
# calibration alone; then the SLO search confirmed with measured probes. Run from the repo root
# on the GPU machine with the binaries in $1 (attnbench, the [gpu] test executables and, where
# the machine lacks them, libgomp / libbenchmark). Reports, tables and logs go to $OUT.
set -u
bin=${1:-gpu-bin}
out=${OUT:-/tmp/attnbench-plan-gpu}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/$bin:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
ab=$bin/attnbench
step() {
  local name=$1 limit=$2
  shift 2
  echo "== $name ($(date +%T))"
  timeout "$limit" "$@"
  echo "rc=$? ($name)"
}
nvidia-smi -L
methods=(--method dense --method quest:budget=4096,page=16 --method snapkv:budget=2048
         --method streaming_llm:sinks=4,window=4092)

if [[ ",${PART:-tests}," == *",tests,"* ]]; then
  for t in "$bin"/test_*_cuda; do [ -x "$t" ] && step "$(basename "$t")" 200 "$t" 2>&1 | tail -3; done
fi

# 1. Calibration: dense decode at batch 1, 8, 64 over 4K-64K, dense causal prefill 4K-32K.
step calibration-decode 200 "$ab" run --backend cuda --suite latency --method dense \
  --lengths 4k,16k,64k --param latency.phase=decode --param latency.batch=1,8,64 \
  --out "$out/cal-decode" 2>&1 | tail -2
step calibration-prefill 120 "$ab" run --backend cuda --suite latency --method dense \
  --lengths 4k,16k,32k --param latency.phase=prefill --out "$out/cal-prefill" 2>&1 | tail -2
"$ab" merge "$out/cal-decode/report.json" "$out/cal-prefill/report.json" -o "$out/calibration.json"

# 2. Validation points, none of them a calibration shape: 8K, 32K, 128K x batch 2, 16.
step validation-latency 300 "$ab" run --backend cuda --suite latency "${methods[@]}" \
  --lengths 8k,32k,128k --param latency.phase=decode --param latency.batch=2,16 \
  --out "$out/val-latency" 2>&1 | tail -2
step validation-memory 200 "$ab" run --backend cuda --suite memory "${methods[@]}" \
  --lengths 16k,64k,128k --out "$out/val-memory" 2>&1 | tail -2
for what in latency memory; do
  "$ab" plan --validate "$out/val-$what/report.json" --calibration "$out/calibration.json" \
    | tee "$out/validation-$what.txt"
done

# 3. The SLO search, confirmed by measured probes of the attention on this GPU.
step plan-confirm 120 "$ab" plan --model llama-3.1-8b --gpu measured:"$out/calibration.json" \
  --calibration "$out/calibration.json" --method dense --method quest:budget=4096 \
  --context 32k,128k --slo-tpot-ms 30 --confirm --out "$out/plan-confirm" 2>&1 | tail -40
