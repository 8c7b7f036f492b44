#!/bin/bash
# One GPU session for the figures of issue 6 (and the trace round trip of issue 5), through the
# latency and memory suites and the SDPA peer in the same run. Run from the repo root on the GPU
# machine with the binaries in $1 (a folder holding attnbench, test_adapters_cuda,
# test_sparse_decode_cuda and, on machines without one, libgomp.so.1). Reports and logs go to $OUT
# (at most 8 files: the reports are merged into one).
#   PART=tests,prefill,decode,memory,trace,sanitize (default: all of them)
set -u
bin=${1:-gpu-bin}
out=${OUT:-/tmp/attnbench-gpu}
part=${PART:-tests,prefill,decode,memory,trace,sanitize}
work=/tmp/attnbench-gpu-work
mkdir -p "$out" "$work"
export LD_LIBRARY_PATH=$PWD/$bin:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-}
if ldd "$bin/attnbench" | grep -q "not found"; then
  lib=$(find / -name 'libcublas.so.13*' -not -path '/proc/*' 2>/dev/null | head -1)
  [ -n "$lib" ] && export LD_LIBRARY_PATH=$(dirname "$lib"):$LD_LIBRARY_PATH
fi
export PYTHONUNBUFFERED=1
ab=$bin/attnbench
has() { [[ ",$part," == *",$1,"* ]]; }
step() {
  local name=$1 limit=$2
  shift 2
  echo "== $name ($(date +%T))"
  timeout "$limit" "$@"
  echo "rc=$? ($name)"
}
nvidia-smi -L
reports=()

if has tests; then
  step test_adapters_cuda 200 "$bin/test_adapters_cuda" 2>&1 | tail -3
  step test_sparse_decode_cuda 100 "$bin/test_sparse_decode_cuda" 2>&1 | tail -3
fi

# Prefill, bf16, head_dim 128, 32 / 8 heads, batch 1: ours (dense, cuBLAS reference) and SDPA.
if has prefill; then
  step latency-prefill 200 "$ab" run --backend cuda --suite latency --method dense \
    --method cublas_dense --lengths 4k,8k,16k --param latency.phase=prefill \
    --param latency.causal=1,0 --out "$work/prefill" 2>&1 | tail -3
  step sdpa-prefill 200 python3 tools/peers/sdpa_peer.py --phase prefill --lengths 4k,8k,16k --causal 1,0 \
    --out "$work/sdpa-prefill.json" 2>&1 | tail -3
  reports+=("$work/prefill/report.json" "$work/sdpa-prefill.json")
fi

# Decode, batch 8: dense, the shared sparse decode kernel alone over 1/8 of the rows (Quest's page
# lists chosen once, select=0), Quest with its selection timed, and SDPA.
if has decode; then
  step latency-decode 300 "$ab" run --backend cuda --suite latency --method dense \
    --method quest:keep=0.125,page=16,select=0 --method quest:keep=0.125,page=16 \
    --lengths 32k,64k,128k --param latency.phase=decode --param latency.batch=8 \
    --out "$work/decode" 2>&1 | tail -3
  step sdpa-decode 200 python3 tools/peers/sdpa_peer.py --phase decode --lengths 32k,64k,128k --batch 8 \
    --out "$work/sdpa-decode.json" 2>&1 | tail -3
  reports+=("$work/decode/report.json" "$work/sdpa-decode.json")
fi

# Resident and measured device bytes against length and budget; 16M tokens x batch 4 cannot fit
# on an 80 GB card and must become an oom record.
if has memory; then
  step memory 200 "$ab" run --backend cuda --suite memory --method dense --method quest:page=16 \
    --lengths 32k,128k,1m,16m --budgets 4096,16384 --param memory.batch=4 \
    --out "$work/memory" 2>&1 | tail -3
  reports+=("$work/memory/report.json")
fi

if [ ${#reports[@]} -gt 0 ]; then
  "$ab" merge "${reports[@]}" -o "$out/gpu-report.json"
  "$ab" report "$out/gpu-report.json" --format md >"$out/gpu-report.md"
fi

# Trace round trip: capture a tiny random Llama on the GPU, replay it through fidelity, posir's
# mass probe and probes (CPU methods).
if has trace; then
  step capture 200 python3 tools/traces/capture_trace.py --tiny-random --tokens 512 \
    --evidence 100:140 --out "$work/tiny_llama" 2>&1 | tail -4
  step capture-bf16 200 python3 tools/traces/capture_trace.py --tiny-random --tokens 512 \
    --dtype bf16 --model-dtype bf16 --evidence 100:140 --out "$work/tiny_llama_bf16" 2>&1 | tail -4
  cp "$work/tiny_llama.json" "$out/tiny_llama.json" 2>/dev/null
  step trace-run 200 "$ab" run --suite fidelity --suite posir --suite probes \
    --trace "$work/tiny_llama.safetensors" --method dense --method snapkv:budget=128,window=16 \
    --method streaming_llm:sinks=4,window=124 --method quest:budget=128,page=16 \
    --out "$work/trace" 2>&1 | tail -3
  cp "$work/trace/report.json" "$out/trace-report.json" 2>/dev/null
  "$ab" report "$work/trace/report.json" --format md >"$out/trace-report.md" 2>&1
fi

# compute-sanitizer on the CUDA adapter tests and the sparse decode tests.
if has sanitize; then
  step memcheck 240 compute-sanitizer --tool memcheck "$bin/test_sparse_decode_cuda" 2>&1 | tail -4
  step racecheck 240 compute-sanitizer --tool racecheck "$bin/test_sparse_decode_cuda" 2>&1 | tail -4
  step memcheck-adapters 300 compute-sanitizer --tool memcheck "$bin/test_adapters_cuda" 2>&1 | tail -4
fi
