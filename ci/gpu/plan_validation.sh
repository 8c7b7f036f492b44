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

if [[ ",${PART:-tests}," == *",tests,"* ]]; then  # PART=none skips the [gpu] tests
  for t in "$bin"/test_*_cuda; do [ -x "$t" ] && step "$(basename "$t")" 200 "$t" 2>&1 | tail -3; done
fi

# 1. Calibration: dense decode at batch 1, 4, 32 over 1K-256K tokens, dense causal prefill
#    4K-32K, and Quest's decode at a few shapes (its selection work per metadata byte).
step calibration-decode 300 "$ab" run --backend cuda --suite latency --method dense \
  --lengths 1k,4k,16k,64k,256k --param latency.phase=decode --param latency.batch=1,4,32 \
  --out "$out/cal-decode" 2>&1 | tail -1
step calibration-prefill 120 "$ab" run --backend cuda --suite latency --method dense \
  --lengths 4k,16k,32k --param latency.phase=prefill --out "$out/cal-prefill" 2>&1 | tail -1
step calibration-quest 120 "$ab" run --backend cuda --suite latency \
  --method quest:budget=4096,page=16 --lengths 16k,64k --param latency.phase=decode \
  --param latency.batch=1,4,32 --out "$out/cal-quest" 2>&1 | tail -1
"$ab" merge "$out/cal-decode/report.json" "$out/cal-prefill/report.json" \
  "$out/cal-quest/report.json" -o "$out/calibration.json"

# 2. Validation points, none of them a calibration shape: 8K, 32K, 128K x batch 2, 16; resident
#    bytes at batch 32 (whole MiB pages of the allocator are then well under 1%).
step validation-latency 300 "$ab" run --backend cuda --suite latency "${methods[@]}" \
  --method quest:budget=1024,page=16 --lengths 8k,32k,128k --param latency.phase=decode \
  --param latency.batch=2,16 --out "$out/val-latency" 2>&1 | tail -1
step validation-memory 200 "$ab" run --backend cuda --suite memory "${methods[@]}" \
  --lengths 32k,64k,128k --param memory.batch=32 --out "$out/val-memory" 2>&1 | tail -1
for what in latency memory; do
  "$ab" plan --validate "$out/val-$what/report.json" --calibration "$out/calibration.json" \
    | tee "$out/validation-$what.txt"
done

# 3. The SLO search, confirmed by measured probes of the attention on this GPU.
step plan-confirm 120 "$ab" plan --model llama-3.1-8b --gpu measured:"$out/calibration.json" \
  --calibration "$out/calibration.json" --method dense --method quest:budget=4096 \
  --context 32k,128k --slo-tpot-ms 30 --confirm --out "$out/plan-confirm" 2>&1 | tail -40

# The reports in one archive (the machine returns a few files).
tar -C "$out" -cJf "$out/../plan-gpu.tar.xz" calibration.json val-latency/report.json \
  val-memory/report.json plan-confirm/plan.json && mv "$out/../plan-gpu.tar.xz" "$out/"
